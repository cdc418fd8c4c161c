"""The wire between a graded notebook's process (the *student* side) and the process that judges
it (the *judge*), both started by :mod:`helpers.course.grade_runner`.

The judge runs the exercise's checker with its own references; the checker calls a
:class:`Proxy` in place of the student's function. Calling the proxy sends the arguments to the
student's process (pickled: that process trusts the judge), which calls the real function and
sends back what it returned, and its arguments as they are after the call (a checker may look at
in-place changes), in the codec of this module: a small, explicit set of types, checked while
it is read. Nothing the student's process sends is ever unpickled, and every value read back is
built fresh by the judge (a ``float`` is a float, a tensor a tensor), so an object that lies
about equality cannot reach a checker.

Messages are JSON lines on a pair of pipes (binary data as base64). A callable argument (a
checker that hands the student ``model.learn``) stays in the judge: the student's process gets
a stand-in that calls back over the same pipes, so the judge's object sees the calls.
"""
from __future__ import annotations

import base64
import builtins
import io
import json
import math
import os
import pickle
import select
import time
import types

__all__ = ["WireError", "Unreadable", "GraderError", "StudentGone", "Lines", "encode", "decode", "dump_args",
           "load_args", "rebuild_exception", "Proxy", "Link", "serve", "arrays_in", "write_back", "ended", "exit_status",
           "MAX_BYTES", "MAX_DEPTH", "MAX_NODES"]

MAX_BYTES = 64 * 2**20
"""The most bytes of array data one value read back may hold."""
MAX_DEPTH = 32
"""The deepest nesting of containers read back."""
MAX_NODES = 1_000_000
"""The most values (container entries, array elements of object arrays) read back."""
LINE_CAP = 4 * MAX_BYTES // 3 + 8 * 2**20
"""The longest message line the judge reads (base64 of MAX_BYTES, and room for the rest)."""
_ARRAY_KINDS = "biufcmMUS"          # bool, ints, floats, complex, times, unicode, bytes
_TORCH_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                 "float32", "float64", "complex64", "complex128")
_PANDAS_EXT = ("str", "string", "category", "boolean", "Int8", "Int16", "Int32", "Int64", "UInt8",
               "UInt16", "UInt32", "UInt64", "Float32", "Float64")
_SUPPORTED = ("None, bool, int, float, complex, str, bytes, tuples, lists, dicts, sets, numpy "
              "arrays and numbers, torch tensors, or pandas Series, DataFrames and Indexes")


class WireError(Exception):
    """A message that breaks the protocol (malformed, too long, out of place)."""


class Unreadable(ValueError):
    """A value that the codec refuses (its message says why, for the student)."""


class GraderError(BaseException):
    """The judge could not send a checker's arguments (a checker passed something that cannot
    travel): the grader's fault, never the student's. A ``BaseException``, like
    :class:`StudentGone`, so that a checker's ``except Exception`` does not take it for
    something the student's function raised."""


class StudentGone(BaseException):
    """The student's process died or stopped answering; ``why`` says how."""

    def __init__(self, why: str, reason: str = "crashed"):
        super().__init__(why)
        self.why, self.reason = why, reason


# ----------------------------------------------------------------------------- framing
class Lines:
    """JSON lines over a pair of pipe ends: ``send`` and a buffered ``recv`` with a deadline."""

    def __init__(self, rfd: int, wfd: int, cap: int = LINE_CAP):
        for name, v in (("rfd", rfd), ("wfd", wfd), ("cap", cap)):
            if type(v) is not int or v < 0:
                raise ValueError(f"{name} must be a non-negative int (a file descriptor, a size), "
                                 f"got {v!r}")
        self.rfd, self.wfd, self.cap, self.buffer, self.closed = rfd, wfd, cap, b"", False

    def send(self, message: dict, deadline: float | None = None) -> None:
        """Write one message; with ``deadline`` (monotonic), never block past it."""
        data = (json.dumps(message, ensure_ascii=True) + "\n").encode()
        while data:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [self.wfd], [], left)[1]:
                    raise TimeoutError("the other side does not read")
            data = data[os.write(self.wfd, data[:1 << 16] if deadline is not None else data):]

    def recv(self, deadline: float | None = None):
        """The next message (a dict), ``None`` at end of file; ``TimeoutError`` past the
        deadline, :class:`WireError` for a line that is not a message or is too long."""
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                    raise TimeoutError("no answer in time")
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                self.closed = True
                if self.buffer:
                    self.buffer = b""
                    raise WireError("a line cut short")
                return None
            self.buffer += chunk
            if len(self.buffer) > self.cap and b"\n" not in self.buffer[-len(chunk):]:
                self.buffer = b""
                raise WireError(f"a line longer than {self.cap // 2**20} MiB")
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > self.cap:
            raise WireError(f"a line longer than {self.cap // 2**20} MiB")
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise WireError("a line that is not a message") from err
        if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
            raise WireError("a line that is not a message")
        return msg


# ----------------------------------------------------------------------------- the codec
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text) -> bytes:
    if not isinstance(text, str):
        raise WireError("binary data that is not text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise WireError("binary data that is not base64") from err


class _Budget:
    def __init__(self):
        self.nodes, self.bytes = 0, 0

    def node(self, what: str, refuse) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise refuse(f"{what} holds more than {MAX_NODES:,} values")

    def data(self, n: int, what: str, refuse) -> None:
        self.bytes += n
        if self.bytes > MAX_BYTES:
            raise refuse(f"{what} is larger than the {MAX_BYTES // 2**20} MiB the grader reads "
                         "back")


def encode(value, what: str = "the value") -> dict | list | str | int | float | bool | None:
    """``value`` as JSON-ready data of the codec (the student's side). Raises
    :class:`Unreadable` for a type the judge does not read, a value too large or too deep;
    ``what`` names it in the message (``"what your `mmr` returned"``)."""
    return _enc(value, 0, _Budget(), what)


def _refuse_type(value, what: str) -> Unreadable:
    name = type(value).__module__ + "." + type(value).__qualname__ \
        if type(value).__module__ not in ("builtins", "__main__") else type(value).__qualname__
    return Unreadable(f"{what} is or holds a {name[:80]}, which the grader cannot read back; "
                      f"it reads {_SUPPORTED}.")


def _enc(x, depth: int, budget: _Budget, what: str):
    if depth > MAX_DEPTH:
        raise Unreadable(f"{what} is nested more than {MAX_DEPTH} levels deep")
    budget.node(what, Unreadable)
    t = type(x)
    if x is None or t is bool or t is str:
        if t is str:
            budget.data(len(x), what, Unreadable)
        return x
    if t is int:
        return x if -2**63 <= x < 2**63 else {"$": "bigint", "v": str(x)}
    if t is float:
        return x if math.isfinite(x) else {"$": "float", "v": repr(x)}
    if t is complex:
        return {"$": "complex", "v": [_enc(x.real, depth, budget, what),
                                      _enc(x.imag, depth, budget, what)]}
    if t in (bytes, bytearray):
        budget.data(len(x), what, Unreadable)
        return {"$": t.__name__, "b": _b64(bytes(x))}
    if t in (list, tuple, set, frozenset):
        items = [_enc(v, depth + 1, budget, what) for v in x]
        return items if t is list else {"$": t.__name__, "v": items}
    if t is dict:
        keys, vals = [], []
        for k, v in x.items():
            keys.append(_enc(k, depth + 1, budget, what))
            vals.append(_enc(v, depth + 1, budget, what))
        return {"$": "dict", "k": keys, "v": vals}
    mod = t.__module__.split(".")[0]
    if mod == "numpy":
        return _enc_numpy(x, depth, budget, what)
    if mod == "torch":
        return _enc_torch(x, budget, what)
    if mod == "pandas":
        return _enc_pandas(x, depth, budget, what)
    raise _refuse_type(x, what)


def _enc_numpy(x, depth: int, budget: _Budget, what: str):
    import numpy as np

    if type(x) is np.ndarray:
        if x.dtype.kind == "O":
            budget.data(8 * x.size, what, Unreadable)
            return {"$": "ndo", "s": list(x.shape),
                    "v": [_enc(v, depth + 1, budget, what) for v in x.ravel(order="C").tolist()]}
        if x.dtype.kind not in _ARRAY_KINDS or x.dtype.fields is not None:
            raise Unreadable(f"{what} is a numpy array of dtype {x.dtype}, which the grader "
                             "cannot read back; return numbers, booleans or text.")
        budget.data(x.nbytes, what, Unreadable)
        return {"$": "nd", "d": x.dtype.str, "s": list(x.shape),
                "b": _b64(np.ascontiguousarray(x).tobytes())}
    if isinstance(x, np.generic) and type(x).__module__ == "numpy" and \
            np.dtype(type(x)).kind in _ARRAY_KINDS:
        arr = np.asarray(x)
        return {"$": "npv", "d": arr.dtype.str, "b": _b64(arr.tobytes())}
    raise _refuse_type(x, what)


def _enc_torch(x, budget: _Budget, what: str):
    import torch

    if type(x) not in (torch.Tensor, torch.nn.Parameter) or x.layout != torch.strided or \
            x.is_quantized:
        raise _refuse_type(x, what)
    name = str(x.dtype).replace("torch.", "")
    if name not in _TORCH_DTYPES:
        raise Unreadable(f"{what} is a tensor of dtype {x.dtype}, which the grader cannot read "
                         "back.")
    t = x.detach().cpu().contiguous()
    budget.data(t.numel() * t.element_size(), what, Unreadable)
    arr = t.view(torch.int16).numpy() if name == "bfloat16" else t.numpy()
    return {"$": "pt", "d": name, "s": list(t.shape), "b": _b64(arr.tobytes()),
            "g": bool(x.requires_grad)}


def _enc_values(values, depth: int, budget: _Budget, what: str):
    """A pandas column's values: a numpy array when plain, else (extension dtypes) an object
    array of its elements with ``pd.NA`` marked."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        return _enc_numpy(np.asarray(values), depth, budget, what), None
    name = str(dtype)
    if name not in _PANDAS_EXT:
        raise Unreadable(f"{what} holds a pandas column of dtype {name}, which the grader "
                         "cannot read back.")
    items = [{"$": "na"} if v is pd.NA else v for v in np.asarray(values, dtype=object).tolist()]
    cells = [_enc(v, depth + 1, budget, what) if not isinstance(v, dict) else v for v in items]
    return {"$": "ndo", "s": [len(items)], "v": cells}, name


def _enc_index(idx, depth: int, budget: _Budget, what: str):
    import pandas as pd

    if type(idx) is pd.RangeIndex:
        return {"$": "pdr", "r": [idx.start, idx.stop, idx.step],
                "n": _enc(idx.name, depth + 1, budget, what)}
    if type(idx) is pd.MultiIndex:
        raise Unreadable(f"{what} has a MultiIndex, which the grader cannot read back; use "
                         ".reset_index().")
    values, ext = _enc_values(idx.array if ext_dtype(idx.dtype) else idx.to_numpy(), depth,
                              budget, what)
    return {"$": "pdi", "v": values, "x": ext, "n": _enc(idx.name, depth + 1, budget, what)}


def ext_dtype(dtype) -> bool:
    """Whether ``dtype`` is a pandas extension dtype (not a numpy one)."""
    import numpy as np
    return not isinstance(dtype, np.dtype)


def _enc_pandas(x, depth: int, budget: _Budget, what: str):
    import pandas as pd

    if type(x) is pd.Series:
        values, ext = _enc_values(x.array if ext_dtype(x.dtype) else x.to_numpy(), depth,
                                  budget, what)
        return {"$": "pds", "v": values, "x": ext, "i": _enc_index(x.index, depth, budget, what),
                "n": _enc(x.name, depth + 1, budget, what)}
    if type(x) is pd.DataFrame:
        cols, exts = [], []
        for j in range(x.shape[1]):
            col = x.iloc[:, j]
            values, ext = _enc_values(col.array if ext_dtype(col.dtype) else col.to_numpy(),
                                      depth, budget, what)
            cols.append(values)
            exts.append(ext)
        return {"$": "pdf", "c": _enc_index(x.columns, depth, budget, what), "v": cols,
                "x": exts, "i": _enc_index(x.index, depth, budget, what)}
    if isinstance(x, pd.Index):
        return _enc_index(x, depth, budget, what)
    raise _refuse_type(x, what)


def decode(data, what: str = "the value"):
    """The value that ``data`` (from :func:`encode`, after JSON) stands for, built fresh by
    the judge. Raises :class:`WireError` for anything malformed, too large or too deep."""
    return _dec(data, 0, _Budget(), what)


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise WireError(why)


def _dec(x, depth: int, budget: _Budget, what: str):
    _need(depth <= MAX_DEPTH + 2, "a value nested too deep")
    budget.node(what, WireError)
    t = type(x)
    if x is None or t in (bool, int, float):
        return x
    if t is str:
        budget.data(len(x), what, WireError)
        return x
    if t is list:
        return [_dec(v, depth + 1, budget, what) for v in x]
    _need(t is dict and isinstance(x.get("$"), str), "a value of no known kind")
    tag = x["$"]
    if tag == "bigint":
        _need(isinstance(x.get("v"), str) and len(x["v"]) < 5000, "a malformed integer")
        try:
            return int(x["v"])
        except ValueError as err:
            raise WireError("a malformed integer") from err
    if tag == "float":
        _need(x.get("v") in ("nan", "inf", "-inf"), "a malformed float")
        return float(x["v"])
    if tag == "complex":
        re_im = x.get("v")
        _need(isinstance(re_im, list) and len(re_im) == 2 and
              all(type(v) in (int, float, dict) for v in re_im), "a malformed complex")
        re, im = (_dec(v, depth, budget, what) for v in re_im)
        _need(type(re) is float and type(im) is float, "a malformed complex")
        return complex(re, im)
    if tag in ("bytes", "bytearray"):
        data = _unb64(x.get("b"))
        budget.data(len(data), what, WireError)
        return data if tag == "bytes" else bytearray(data)
    if tag in ("tuple", "set", "frozenset"):
        _need(isinstance(x.get("v"), list), "a malformed container")
        items = [_dec(v, depth + 1, budget, what) for v in x["v"]]
        try:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        except TypeError as err:                            # an unhashable member
            raise WireError("a set of unhashable values") from err
    if tag == "dict":
        keys, vals = x.get("k"), x.get("v")
        _need(isinstance(keys, list) and isinstance(vals, list) and len(keys) == len(vals),
              "a malformed dict")
        out = {}
        for k, v in zip(keys, vals):
            key = _dec(k, depth + 1, budget, what)
            try:
                out[key] = _dec(v, depth + 1, budget, what)
            except TypeError as err:
                raise WireError("a dict with an unhashable key") from err
        return out
    if tag in ("nd", "ndo", "npv"):
        return _dec_numpy(x, depth, budget, what)
    if tag == "pt":
        return _dec_torch(x, budget, what)
    if tag in ("pds", "pdf", "pdi", "pdr"):
        return _dec_pandas(x, depth, budget, what)
    if tag == "na":
        import pandas as pd
        return pd.NA
    raise WireError(f"a value of unknown kind {tag[:20]!r}")


def _shape(s) -> tuple:
    _need(isinstance(s, list) and len(s) <= 32 and
          all(type(n) is int and 0 <= n < 2**40 for n in s), "a malformed shape")
    return tuple(s)


def _dtype(text):
    import numpy as np

    _need(isinstance(text, str) and len(text) < 32, "a malformed dtype")
    try:
        dt = np.dtype(text)
    except (TypeError, ValueError) as err:
        raise WireError("a malformed dtype") from err
    _need(dt.kind in _ARRAY_KINDS and not dt.hasobject and dt.fields is None and
          dt.subdtype is None and dt.itemsize > 0, "an array of a refused dtype")
    return dt


def _dec_numpy(x, depth: int, budget: _Budget, what: str):
    import numpy as np

    if x["$"] == "ndo":
        shape, vals = _shape(x.get("s")), x.get("v")
        _need(isinstance(vals, list) and math.prod(shape) == len(vals), "a malformed array")
        budget.data(8 * len(vals), what, WireError)
        out = np.empty(len(vals), dtype=object)
        for i, v in enumerate(vals):
            out[i] = _dec(v, depth + 1, budget, what)
        return out.reshape(shape)
    dt = _dtype(x.get("d"))
    data = _unb64(x.get("b"))
    budget.data(len(data), what, WireError)
    if x["$"] == "npv":
        _need(len(data) == dt.itemsize, "a malformed number")
        return np.frombuffer(data, dtype=dt)[0]
    shape = _shape(x.get("s"))
    _need(math.prod(shape) * dt.itemsize == len(data), "an array whose size does not match")
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()


def _dec_torch(x, budget: _Budget, what: str):
    import numpy as np
    import torch

    name = x.get("d")
    _need(name in _TORCH_DTYPES, "a tensor of a refused dtype")
    shape = _shape(x.get("s"))
    data = _unb64(x.get("b"))
    budget.data(len(data), what, WireError)
    dtype = getattr(torch, name)
    holder = torch.int16 if name == "bfloat16" else dtype
    np_dtype = np.dtype(str(torch.empty(0, dtype=holder).numpy().dtype))
    _need(math.prod(shape) * np_dtype.itemsize == len(data), "a tensor whose size does not match")
    t = torch.from_numpy(np.frombuffer(data, dtype=np_dtype).reshape(shape).copy())
    if name == "bfloat16":
        t = t.view(torch.bfloat16)
    if x.get("g") is True:
        _need(t.is_floating_point() or t.is_complex(), "an integer tensor that requires grad")
        t.requires_grad_(True)
    return t


def _dec_values(values, ext, depth: int, budget: _Budget, what: str):
    import numpy as np
    import pandas as pd

    arr = _dec(values, depth + 1, budget, what)
    _need(isinstance(arr, np.ndarray) and arr.ndim == 1, "a malformed pandas column")
    if ext is None:
        return arr
    _need(ext in _PANDAS_EXT and arr.dtype == object, "a pandas column of a refused dtype")
    try:
        return pd.array(arr, dtype=ext) if ext != "category" else pd.Categorical(arr)
    except (TypeError, ValueError) as err:
        raise WireError("a pandas column whose values do not fit its dtype") from err


def _dec_index(x, depth: int, budget: _Budget, what: str):
    import pandas as pd

    _need(isinstance(x, dict) and x.get("$") in ("pdi", "pdr"), "a malformed pandas index")
    name = _dec(x.get("n"), depth + 1, budget, what)
    try:
        if x["$"] == "pdr":
            r = x.get("r")
            _need(isinstance(r, list) and len(r) == 3 and all(type(v) is int for v in r),
                  "a malformed range index")
            _need(r[2] != 0, "a malformed range index")
            return pd.RangeIndex(*r, name=name)
        return pd.Index(_dec_values(x.get("v"), x.get("x"), depth, budget, what), name=name)
    except TypeError as err:                                # an unhashable name
        raise WireError("a pandas index with an unusable name") from err


def _dec_pandas(x, depth: int, budget: _Budget, what: str):
    import pandas as pd

    if x["$"] in ("pdi", "pdr"):
        return _dec_index(x, depth, budget, what)
    index = _dec_index(x.get("i"), depth, budget, what)
    try:
        if x["$"] == "pds":
            values = _dec_values(x.get("v"), x.get("x"), depth, budget, what)
            _need(len(values) == len(index), "a Series whose index does not match")
            return pd.Series(values, index=index, name=_dec(x.get("n"), depth + 1, budget, what),
                             copy=False)
        columns = _dec_index(x.get("c"), depth, budget, what)
        cols, exts = x.get("v"), x.get("x")
        _need(isinstance(cols, list) and isinstance(exts, list) and
              len(cols) == len(exts) == len(columns), "a malformed DataFrame")
        parts = [pd.Series(_dec_values(c, e, depth, budget, what), index=index, copy=False)
                 for c, e in zip(cols, exts)]
        _need(all(len(p) == len(index) for p in parts), "a DataFrame whose columns differ in "
                                                       "length")
        frame = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=index)
        frame.columns = columns
        return frame
    except (TypeError, ValueError) as err:
        raise WireError("a malformed pandas value") from err


# ----------------------------------------------------------------------------- exceptions
_DYNAMIC: dict = {}


def describe_exception(err: BaseException) -> dict:
    """What the student's process sends for an exception its function raised: the type's name,
    the nearest built-in exception class among its bases, and its message."""
    base = next((c.__name__ for c in type(err).__mro__ if c.__module__ == "builtins" and
                 issubclass(c, BaseException)), "Exception")
    try:
        text = str(err)
    except BaseException:                                   # noqa: BLE001 - a lying __str__
        text = f"<{type(err).__name__} whose message could not be shown>"
    return {"type": str(type(err).__name__)[:80], "base": base, "message": text[:4000]}


def rebuild_exception(info) -> Exception:
    """An exception of the judge's own making that reads like the student's: same type name
    and message (``str``), an instance of the same built-in class (``ValueError``,
    ``NotImplementedError``...), so the checker's ``except`` clauses see what they would have
    seen. A built-in class that is not an ``Exception`` (``SystemExit``) reads as ``Exception``."""
    if not isinstance(info, dict):
        raise WireError("a malformed exception")
    name, base_name, text = info.get("type"), info.get("base"), info.get("message")
    if not (isinstance(name, str) and name.isidentifier() and len(name) <= 80 and
            isinstance(base_name, str) and isinstance(text, str)):
        raise WireError("a malformed exception")
    base = getattr(builtins, base_name, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or base_name in (
            "StopIteration", "StopAsyncIteration", "GeneratorExit"):
        base = Exception
    key = (name, base)
    if key not in _DYNAMIC:
        _DYNAMIC[key] = type(name, (base,), {"__str__": lambda self: self.args[0],
                                             "__module__": "student"})
    return _DYNAMIC[key](text)


# ----------------------------------------------------------------------------- arguments
def _generator_state(gen):
    return (bytes(gen.get_state().numpy().tobytes()), str(gen.device))


def _rebuild_generator(state: bytes, device: str):
    import numpy as np
    import torch

    gen = torch.Generator(device=device)
    gen.set_state(torch.from_numpy(np.frombuffer(state, dtype=np.uint8).copy()))
    return gen


class _ArgPickler(pickle.Pickler):
    """Pickles a checker's arguments for the student's process: a function or bound method
    stays in the judge (a numbered callback), a torch.Generator travels as its state."""

    def __init__(self, fh, callbacks: list):
        super().__init__(fh, protocol=4)
        self.callbacks = callbacks

    def persistent_id(self, obj):
        if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinMethodType)) and \
                not isinstance(getattr(obj, "__self__", None), types.ModuleType) and \
                (isinstance(obj, types.MethodType) or "<" in getattr(obj, "__qualname__", "<")):
            self.callbacks.append(obj)
            return ("callback", len(self.callbacks) - 1)
        return None

    def reducer_override(self, obj):
        torch = _torch_if_loaded()
        if torch is not None and type(obj) is torch.Generator:
            return _rebuild_generator, _generator_state(obj)
        return NotImplemented


def _torch_if_loaded():
    import sys
    return sys.modules.get("torch")


def dump_args(args: tuple, kwargs: dict) -> tuple[str, list]:
    """(base64 pickle of the arguments, the callables kept in the judge, by number)."""
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise TypeError(f"args must be a tuple and kwargs a dict, got {type(args).__name__} and "
                        f"{type(kwargs).__name__}")
    callbacks: list = []
    fh = io.BytesIO()
    _ArgPickler(fh, callbacks).dump((tuple(args), dict(kwargs)))
    return _b64(fh.getvalue()), callbacks


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, fh, make_callback):
        super().__init__(fh)
        self.make_callback = make_callback

    def persistent_load(self, pid):
        kind, number = pid
        if kind != "callback":
            raise pickle.UnpicklingError("unknown persistent id")
        return self.make_callback(number)


def load_args(text: str, make_callback) -> tuple[tuple, dict]:
    """The student's side: the arguments the judge sent (it trusts the judge)."""
    return _ArgUnpickler(io.BytesIO(base64.b64decode(text)), make_callback).load()


def arrays_in(value, out: list | None = None, depth: int = 0) -> list:
    """The numpy arrays and torch tensors in ``value`` and the lists, tuples and dicts in it, in
    a fixed order (the same on both sides for equal structures)."""
    out = [] if out is None else out
    if depth > 8 or len(out) > 1000:
        return out
    kind = type(value).__module__.split(".")[0]
    if (kind == "numpy" and type(value).__name__ == "ndarray") or \
            (kind == "torch" and type(value).__name__ in ("Tensor", "Parameter")):
        out.append(value)
    elif type(value) in (list, tuple):
        for v in value:
            arrays_in(v, out, depth + 1)
    elif type(value) is dict:
        for v in value.values():
            arrays_in(v, out, depth + 1)
    return out


def write_back(targets: list, values: list) -> None:
    """Copy each array read back into the judge's own argument, in place, where shape and
    dtype still match (a changed shape cannot be written into the judge's object)."""
    import numpy as np
    import torch

    if not isinstance(targets, list) or not isinstance(values, list) or \
            len(targets) != len(values):
        raise ValueError("targets and values must be two lists of the same length, got "
                         f"{type(targets).__name__} and {type(values).__name__}")
    for target, value in zip(targets, values):
        try:
            if isinstance(target, np.ndarray) and isinstance(value, np.ndarray) and \
                    target.shape == value.shape and target.dtype == value.dtype and \
                    target.flags.writeable:
                np.copyto(target, value)
            elif isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor) and \
                    target.shape == value.shape and target.dtype == value.dtype:
                with torch.no_grad():
                    target.copy_(value)
        except (RuntimeError, ValueError):                  # a view that cannot be written
            pass


# ----------------------------------------------------------------------------- the judge's end
_write_back = write_back        # Link.call's keyword of the same name shadows it there


class Link:
    """The judge's end of the wire to the student's process ``pid``: calls with a deadline,
    callbacks served while waiting; once the student's side is lost (dead, hung, out of step)
    every later call raises :class:`StudentGone`."""

    def __init__(self, lines: Lines, pid: int, limits: tuple, incorrect: type,
                 grace: float = 3.0):
        self.lines, self.pid, self.grace = lines, pid, grace
        self.timeout_exc, self.flood_exc = limits     # the runner's CellTimeout, OutputFlood
        self.incorrect = incorrect
        self.seq, self.pending, self.gone = 0, None, None

    def call(self, item: str, var: str, args: tuple, kwargs: dict, deadline: float, *,
             write_back: bool = False):
        """Call the student's answer ``item`` with the arguments; returns what it returned.
        With ``write_back``, the arrays among the arguments are then overwritten, in place, with
        what they became in the notebook's process — only for a checker that took its
        reference before the call (``Exercise.inputs_checked_after_call``): otherwise the
        function could choose the inputs the reference is computed from after the call."""
        self._resync()
        try:
            payload, callbacks = dump_args(args, kwargs)
        except Exception as err:                            # noqa: BLE001 - a checker's argument
            raise GraderError(f"the arguments for `{var}` could not be sent to the notebook's "
                              f"process ({type(err).__name__}: {str(err)[:200]})") from None
        self.seq += 1
        self.pending = self.seq
        try:
            self.lines.send({"t": "call", "seq": self.seq, "item": item, "var": var,
                             "args": payload,
                             "seconds": max(deadline - time.monotonic() - 0.25, 0.05)},
                            deadline=time.monotonic() + 30)
        except (OSError, TimeoutError) as err:
            self._lose(f"the notebook's process stopped reading ({type(err).__name__})")
        while True:
            msg = self._recv()
            kind = msg["t"]
            if kind == "callback":
                self._callback(msg, callbacks, var)
                continue
            if msg.get("seq") != self.seq or kind not in ("return", "raised", "refused",
                                                         "timeout", "memory", "flood"):
                self._lose(f"the notebook's process sent a {kind[:20]!r} message out of place")
            self.pending = None
            return self._reply(msg, args, kwargs, var, write_back)

    def _reply(self, msg: dict, args: tuple, kwargs: dict, var: str, write_back: bool = False):
        kind = msg["t"]
        if kind == "timeout":
            raise self.timeout_exc()
        if kind == "memory":
            raise MemoryError(f"`{var}` ran out of memory")
        if kind == "flood":
            raise self.flood_exc(str(msg.get("message", ""))[:200])
        if kind == "raised":
            try:
                err = rebuild_exception(msg.get("error"))
            except WireError:
                self._lose("the notebook's process sent a malformed exception")
            raise err
        if kind == "refused":
            raise self.incorrect(str(msg.get("message", ""))[:2000])
        try:
            value = decode(msg.get("value"), f"what `{var}` returned")
            after = decode(msg.get("after"), "the arguments") if "after" in msg else None
        except WireError as err:
            raise self.incorrect(f"what your `{var}` returned could not be read back ({err}); "
                                 f"the grader reads {_SUPPORTED}.") from None
        mine = arrays_in((args, kwargs))
        if write_back and isinstance(after, list) and len(after) == len(mine):
            _write_back(mine, after)
        return value

    def _callback(self, msg: dict, callbacks: list, var: str) -> None:
        number = msg.get("n")
        if type(number) is not int or not 0 <= number < len(callbacks):
            self._lose("the notebook's process called a function the grader did not give it")
        try:
            args = decode(msg.get("args"), "a callback's arguments")
            kwargs = decode(msg.get("kwargs"), "a callback's arguments")
            if not isinstance(args, list) or not isinstance(kwargs, dict) or \
                    not all(isinstance(k, str) for k in kwargs):
                raise WireError("malformed callback arguments")
        except WireError as err:
            self._lose(f"the arguments of a call back could not be read ({err})")
        try:
            value = callbacks[number](*args, **kwargs)
            reply = {"t": "cbreturn", "value": _b64(pickle.dumps(value, protocol=4))}
        except Exception as err:                            # noqa: BLE001 - sent back to it
            reply = {"t": "cbraised", "error": describe_exception(err)}
        try:
            self.lines.send(reply, deadline=time.monotonic() + 30)
        except (OSError, TimeoutError) as err:
            self._lose(f"the notebook's process stopped reading ({type(err).__name__})")

    def _recv(self) -> dict:
        """The next message; the judge's own alarm (``CellTimeout``) may interrupt the wait."""
        while True:
            if self.gone:
                raise StudentGone(*self.gone)
            try:
                msg = self.lines.recv(deadline=time.monotonic() + 0.5)
            except TimeoutError:
                status = _reap(self.pid)
                if status is not None:
                    self._lose(status)
                continue
            except WireError as err:
                self._lose(f"the notebook's process sent {err}")
            if msg is None:
                self._lose(_wait_status(self.pid))
            return msg

    def _resync(self) -> None:
        """After a call cut short by the judge's alarm: wait ``grace`` seconds for its answer
        (the student's side has an alarm of its own, a little shorter), else stop it."""
        if self.gone:
            raise StudentGone(*self.gone)
        if self.pending is None:
            return
        end = time.monotonic() + self.grace
        while time.monotonic() < end:
            try:
                msg = self.lines.recv(deadline=end)
            except (TimeoutError, WireError):
                break
            if msg is None:
                break
            if msg.get("seq") == self.pending and msg["t"] != "callback":
                self.pending = None
                return
        self._lose("the notebook's process did not stop when an earlier check's time was up, "
                   "and was stopped", "timed out")

    def _lose(self, why: str, reason: str = "crashed"):
        self.gone = (why, reason)
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        raise StudentGone(why, reason)

    def close(self) -> None:
        """Tell the student's process to exit (it is killed with the jail anyway)."""
        if not self.gone:
            try:
                self.lines.send({"t": "bye"}, deadline=time.monotonic() + 1)
            except (OSError, TimeoutError):
                pass


_REAPED: dict = {}


def _reap(pid: int) -> str | None:
    """How the process ``pid`` ended, in words, or ``None`` while it runs (its status kept for
    :func:`exit_status`)."""
    if pid not in _REAPED:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "the notebook's process has ended"
        if not done:
            return None
        _REAPED[pid] = status
    return _status_text(_REAPED[pid])


def ended(pid: int) -> bool:
    """Whether the child process ``pid`` has ended (reaped here)."""
    return _reap(pid) is not None


def exit_status(pid: int) -> int | None:
    """The wait status of child ``pid``, waiting for it to end; ``None`` if it is not ours."""
    if pid not in _REAPED:
        try:
            _REAPED[pid] = os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None
    return _REAPED[pid]


def _wait_status(pid: int) -> str:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        status = _reap(pid)
        if status is not None:
            return status
        time.sleep(0.05)
    return "the notebook's process closed its end of the grader's pipe"


def _status_text(status: int) -> str:
    import signal
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = f"signal {os.WTERMSIG(status)}"
        return f"the notebook's process died of {name}"
    return f"the notebook's process exited (code {os.WEXITSTATUS(status)})"


class Proxy:
    """What a checker calls in place of the student's function: the call runs in the student's
    process, through ``link``, under the judge's deadline for this check."""

    def __init__(self, link: Link, item: str, var: str, deadline: float, *,
                 write_back: bool = False):
        if not isinstance(link, Link) or not isinstance(item, str) or not isinstance(var, str):
            raise TypeError("Proxy(link: Link, item: str, var: str, deadline: float, *, "
                            "write_back: bool = False)")
        self._link, self._item, self._var, self._deadline = link, item, var, deadline
        self._write_back = bool(write_back)
        self.__name__ = self.__qualname__ = var

    def __call__(self, *args, **kwargs):
        return self._link.call(self._item, self._var, args, kwargs, self._deadline,
                               write_back=self._write_back)

    def __repr__(self) -> str:
        return f"<your function `{self._var}`>"


# ----------------------------------------------------------------------------- the student's end
def serve(lines: Lines, answers: dict, run_call) -> None:
    """The student's process after its last cell: answer the judge's calls until it says
    ``bye`` (or goes). ``run_call(fn, args, kwargs, seconds)`` runs one call under the limits
    and returns ``("return", value)`` or ``(kind, detail)`` for a timeout, memory, flood or an
    exception."""
    while True:
        msg = lines.recv()
        if msg is None or msg.get("t") == "bye":
            return
        if msg.get("t") != "call":
            continue
        seq, item = msg.get("seq"), msg.get("item")
        try:
            args, kwargs = load_args(msg["args"], lambda n: _callback_stub(lines, n))
        except Exception as err:                            # noqa: BLE001 - tell the judge
            lines.send({"t": "raised", "seq": seq, "error": describe_exception(err)})
            continue
        kind, detail = run_call(answers.get(item, _missing_answer), args, kwargs,
                                float(msg.get("seconds", 1.0)))
        lines.send(_answer(kind, detail, seq, args, kwargs, str(msg.get("var", "answer"))))


def _missing_answer(*args, **kwargs):
    raise NameError("the answer is not defined")


def _answer(kind: str, detail, seq, args, kwargs, var: str) -> dict:
    if kind != "return":
        if kind == "raised":
            return {"t": "raised", "seq": seq, "error": describe_exception(detail)}
        return {"t": kind, "seq": seq, "message": str(detail)[:200]}
    try:
        out = {"t": "return", "seq": seq, "value": encode(detail, f"what your `{var}` returned")}
    except Unreadable as err:
        return {"t": "refused", "seq": seq, "message": str(err)}
    except RecursionError:
        return {"t": "refused", "seq": seq, "message": f"what your `{var}` returned is nested "
                                                       "too deep for the grader to read back."}
    try:                        # the arguments as they are now, for the checker to look at
        out["after"] = encode(arrays_in((args, kwargs)), "its arguments")
    except (Unreadable, RecursionError):
        pass
    return out


def _callback_stub(lines: Lines, number: int):
    """A function of the judge's (``model.learn``) as the student's code sees it."""
    def call_judge(*args, **kwargs):
        lines.send({"t": "callback", "n": number, "args": encode(list(args), "the arguments"),
                    "kwargs": encode(dict(kwargs), "the arguments")})
        msg = lines.recv()
        if msg is None:
            raise ConnectionError("the grader went away")
        if msg.get("t") == "cbreturn":
            return pickle.loads(base64.b64decode(msg["value"]))
        info = msg.get("error") or {}
        raise rebuild_exception(info) if isinstance(info, dict) else RuntimeError("callback")
    call_judge.__name__ = call_judge.__qualname__ = f"grader_callback_{number}"
    return call_judge
