"""The estimator convention (scikit-learn's): ``__init__`` stores the settings under their own
names and checks nothing, ``fit`` checks them (ParameterError) before it touches the data,
``get_params`` / ``set_params`` / ``clone`` read and copy them."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pandas as pd
import pytest
import torch

import helpers
from helpers.core.checks import DataError, ParameterError
from helpers.core.params import Estimator
from helpers.models import cf, interest as I, multimodal as M, sequential
from helpers.reasons.explainers import PETERExplainer


def _estimators() -> list[type]:
    found = set()
    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if info.name.endswith(("serving.scale", "serving.app")):
            continue                     # import Ray / widgets; their classes are not estimators
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if inspect.isclass(obj) and issubclass(obj, Estimator) and obj.__module__ == mod.__name__ \
                    and not obj.__name__.startswith("_") and "fit" in dir(obj):
                found.add(obj)
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


EMB, IDS = torch.randn(3, 4), [10, 11, 12]
REQUIRED = {I.TextInterestRecommender: (EMB, IDS), I.TwoTowerRecommender: (EMB, IDS),
            M.AttentionFusionTwoTower: (torch.randn(3, 6), IDS, (4, 2)),
            M.VBPR: (EMB, IDS), M.LateFusion: ([cf.MostPopular(), cf.EASE()],)}
KEYWORDS = {cf.TorchRecommender: dict(n_epochs=1, lr=0.01, batch_size=8)}   # the shared base


def _make(cls, **settings):
    return cls(*REQUIRED.get(cls, ()), **{**KEYWORDS.get(cls, {}), **settings})


def test_every_recommender_and_fitted_explainer_is_an_estimator():
    names = {c.__name__ for c in _estimators()}
    for want in ("BPR", "EASE", "KNN", "ImplicitALS", "SASRecRecommender", "BERT4RecRecommender",
                 "TwoTowerRecommender", "VBPR", "LateFusion", "PETERExplainer"):
        assert want in names, f"{want} is not an Estimator"


@pytest.mark.parametrize("cls", _estimators(), ids=lambda c: c.__name__)
def test_settings_round_trip_through_get_params_and_clone(cls):
    model = _make(cls)
    params = model.get_params()
    assert set(params) == set(cls.param_names())
    twin = model.clone()
    assert type(twin) is cls and twin is not model
    assert twin.get_params().keys() == params.keys()
    assert all(twin.get_params()[k] is v for k, v in params.items())


def test_init_stores_and_fit_checks():
    model = cf.BPR(n_factors=0, lr="fast")          # stored, not checked: no error yet
    assert model.get_params()["n_factors"] == 0
    ev = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10]})
    with pytest.raises(ParameterError, match="n_factors|lr"):
        model.fit(ev)
    model.set_params(n_factors=2, lr=0.01, n_epochs=1)
    assert model.fit(ev).P.shape == (2, 2)
    with pytest.raises(ParameterError, match="no setting"):
        model.set_params(n_factor=3)


def test_clone_changes_only_what_it_is_told():
    base = sequential.SASRecRecommender(max_len=8, n_epochs=3, seed=0)
    other = base.clone(seed=1)
    assert other.seed == 1 and base.seed == 0
    assert {k: v for k, v in other.get_params().items() if k != "seed"} == \
        {k: v for k, v in base.get_params().items() if k != "seed"}
    with pytest.raises(ParameterError, match="no setting"):
        base.clone(seeds=2)


def test_a_device_the_machine_lacks_fails_at_fit_not_at_construction():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    model = cf.BPR(device="cuda")                   # building it anywhere is fine
    with pytest.raises(RuntimeError, match="CUDA"):
        model.fit(pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11]}))


def test_parameter_and_data_errors_are_distinct_value_errors():
    assert issubclass(ParameterError, ValueError) and issubclass(DataError, ValueError)
    assert not issubclass(ParameterError, DataError) and not issubclass(DataError, ParameterError)
    with pytest.raises(ParameterError):
        PETERExplainer(n_epochs=0).fit(pd.DataFrame({"user_id": [1], "item_id": [1],
                                                     "rating": [5.0], "reason": ["good"]}))
    with pytest.raises(DataError):
        cf.EASE().fit(pd.DataFrame({"user_id": [1, np.nan], "item_id": [1, 2]}))


@pytest.mark.parametrize("cls", _estimators(), ids=lambda c: c.__name__)
def test_check_params_leaves_the_settings_as_given(cls):
    """Checking may derive working forms (a normalised weight vector, a config), never rewrite
    a setting the user passed."""
    model = _make(cls)
    before = model.get_params()
    model.check_params()
    assert all(model.get_params()[k] is v for k, v in before.items())
