"""Estimators the scikit-learn way: ``__init__`` only stores its settings, ``fit`` checks them
(:meth:`Estimator.check_params`) and learns; :meth:`~Estimator.get_params`,
:meth:`~Estimator.set_params` and :meth:`~Estimator.clone` read and copy the settings, so a
notebook can rebuild a model (for cross-validation, or one per seed) without a lambda.

    model = cf.BPR(n_factors=64, lr=0.01)          # nothing is checked or allocated yet
    model.get_params()["n_factors"]                # 64
    twin = model.clone(seed=1)                     # same settings, another seed, not fitted
    model.fit(train)                               # a bad setting raises ParameterError here

>>> class Shrink(Estimator):
...     def __init__(self, alpha: float = 1.0):
...         self.alpha = alpha
>>> Shrink(alpha=3.0).get_params()
{'alpha': 3.0}
>>> Shrink(alpha=3.0).clone(alpha=0.5).alpha
0.5

Settings are the ``__init__`` arguments, stored under their own names; what ``fit`` learns is
stored separately (``device_``, the learned weights). A subclass that passes ``**kw`` to its parent
gets its parent's settings too.
"""
from __future__ import annotations

import inspect
from typing import Any, TypeVar

from helpers.core.checks import ParameterError

__all__ = ["Estimator"]

E = TypeVar("E", bound="Estimator")


class Estimator:
    """The settings protocol every recommender and fitted explainer shares."""

    @classmethod
    def param_names(cls) -> list[str]:
        """The names of the settings: the ``__init__`` arguments of the class and, where it
        passes ``**kw`` on, of its parents'."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names += [p.name for p in params if p.name != "self"
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return names

    def get_params(self) -> dict[str, Any]:
        """``{setting: value}`` as given to ``__init__`` (after :meth:`set_params`)."""
        missing = [n for n in self.param_names() if not hasattr(self, n)]
        if missing:
            raise AttributeError(f"{type(self).__name__}.__init__ must store its settings "
                                 f"under their own names; {missing} are not stored.")
        return {n: getattr(self, n) for n in self.param_names()}

    def set_params(self: E, **params: Any) -> E:
        """Change settings by name; the next ``fit`` checks them. Returns the model."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise ParameterError(f"{type(self).__name__} has no setting(s) {unknown}; its "
                                 f"settings are {self.param_names()}.")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self: E, **overrides: Any) -> E:
        """A new, unfitted model with the same settings, some of them changed by name."""
        params = self.get_params()
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise ParameterError(f"{type(self).__name__} has no setting(s) {unknown}; its "
                                 f"settings are {sorted(params)}.")
        return type(self)(**{**params, **overrides})

    def check_params(self) -> None:
        """Raise :class:`~helpers.core.checks.ParameterError` for a bad setting; ``fit`` calls
        it first. Subclasses check their own settings and call ``super().check_params()``."""
