"""A fitted object graph as JSON plus NumPy arrays, read back without running code from the file.

Pickle rebuilds objects by calling whatever the file names, so a downloaded pickle can run
anything. This format knows a fixed set of value types (numbers, strings, lists, dicts, sets,
NumPy arrays, pandas frames, series and indexes, timestamps, OmegaConf configs) and rebuilds
likepred's own classes (and two scikit-learn ones, FOREIGN) by setting their attributes: no
`__init__`, no `__setstate__`, no other class, arrays read with `allow_pickle=False`. `dump` raises
`Unsupported` for anything else (the caller then falls back to pickle, which needs trust).
"""

from __future__ import annotations

import collections
import importlib
import inspect
import json
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import ConfigError
from likepred.registry import trusted_plugin
from likepred.files import write_atomic, write_npz

FORMAT = "likepred-state/1"
STATE, ARRAYS = "state.json", "arrays.npz"
FACTORIES = {"list": list, "int": int, "float": float, "dict": dict, "set": set, "str": str}
# Fitted scikit-learn parts of feature extractors (text PCA, label clusters): rebuilt by setting
# their attributes (arrays and settings), as pickle does, but only these exact classes.
FOREIGN = {("sklearn.decomposition._pca", "PCA"), ("sklearn.cluster._kmeans", "KMeans")}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class Unsupported(TypeError):
    """A value this format does not store (the message names where it sits in the object)."""


def dump(obj, folder) -> None:
    folder = Path(folder)
    arrays: dict = {}
    doc = {"format": FORMAT, "root": _Enc(arrays).enc(obj, "root")}
    write_npz(folder / ARRAYS, **arrays)
    write_atomic(folder / STATE, json.dumps(doc))  # last: a folder without it is no model


def load(folder):
    folder = Path(folder)
    try:
        doc = json.loads((folder / STATE).read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        with np.load(folder / ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return _dec(doc["root"], arrays)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, ImportError, EOFError,
            zipfile.BadZipFile, RecursionError) as e:
        raise ConfigError(f"{folder / STATE}: not a readable likepred model state ({e})") from None


def _own_class(cls) -> bool:
    return isinstance(cls, type) and (cls.__module__.split(".")[0] == "likepred" or trusted_plugin(cls.__module__)
                                      or (cls.__module__, cls.__qualname__) in FOREIGN)


class _Enc:
    def __init__(self, arrays):
        self.arrays, self.open = arrays, set()

    def array(self, a: np.ndarray) -> dict:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return {"t": "nd", "a": key}

    def values(self, values, where) -> dict:
        """Values of a Series or Index: NumPy arrays as arrays, anything else as a list."""
        a = np.asarray(values)
        if a.dtype != object:
            return self.array(a)
        return {"t": "ndobj", "v": [self.enc(v, where) for v in a.tolist()]}

    def column(self, s, where) -> dict:
        """A Series or Index's values, kept with their dtype."""
        dtype = s.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            naive = pd.DatetimeIndex(s).tz_convert("UTC").tz_localize(None)
            return {"kind": "tz", "tz": str(dtype.tz), "v": self.array(naive.to_numpy())}
        if isinstance(dtype, pd.StringDtype):
            return {"kind": "string", "dtype": str(dtype),
                    "v": [None if v is pd.NA or v != v else str(v) for v in s.tolist()]}
        if isinstance(dtype, np.dtype):
            return {"kind": "numpy", "v": self.values(np.asarray(s), where)}
        raise Unsupported(f"{where}: pandas dtype {dtype} is not stored in the state format")

    def enc(self, obj, where):
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return self._enc(obj, where)
        if id(obj) in self.open:  # a cycle: written objects are trees (shared ones are copied)
            raise Unsupported(f"{where}: refers back to itself")
        self.open.add(id(obj))
        try:
            return self._enc(obj, where)
        finally:
            self.open.discard(id(obj))

    def _enc(self, obj, where):  # noqa: C901 (one flat dispatch reads better split no further)
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and type(obj) is int:
            return obj
        if type(obj) is float:
            return obj if obj == obj and abs(obj) != float("inf") else {"t": "float", "v": repr(obj)}
        if type(obj) in (list, tuple, set, frozenset):
            items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
            return {"t": type(obj).__name__, "v": [self.enc(v, f"{where}[{i}]") for i, v in enumerate(items)]}
        if type(obj) in (dict, collections.defaultdict, collections.Counter, collections.OrderedDict):
            out = {"t": type(obj).__name__, "k": [self.enc(k, where) for k in obj],
                   "v": [self.enc(v, f"{where}[{k!r}]") for k, v in obj.items()]}
            if isinstance(obj, collections.defaultdict):
                name = getattr(obj.default_factory, "__name__", None)
                if obj.default_factory is not None and FACTORIES.get(name) is not obj.default_factory:
                    raise Unsupported(f"{where}: defaultdict of {obj.default_factory!r}")
                out["f"] = name if obj.default_factory is not None else None
            return out
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                return {"t": "ndobj", "shape": list(obj.shape),
                        "v": [self.enc(v, f"{where}[...]") for v in obj.ravel().tolist()]}
            if obj.dtype.hasobject or obj.dtype.fields is not None:
                raise Unsupported(f"{where}: structured array")
            return self.array(obj)
        if isinstance(obj, np.generic):
            return {"t": "npscalar", "v": self.array(np.asarray(obj))}
        if isinstance(obj, np.dtype):
            return {"t": "dtype", "v": obj.str}
        if isinstance(obj, pd.DataFrame):
            if obj.columns.nlevels != 1 or obj.index.nlevels != 1:
                raise Unsupported(f"{where}: MultiIndex")
            return {"t": "frame", "index": self.enc(obj.index, where), "columns": self.enc(obj.columns, where),
                    "data": [self.column(obj.iloc[:, j], f"{where}[{c!r}]") for j, c in enumerate(obj.columns)]}
        if isinstance(obj, pd.Series):
            return {"t": "series", "index": self.enc(obj.index, where), "name": self.enc(obj.name, where),
                    "v": self.column(obj, where)}
        if type(obj) is pd.RangeIndex:
            return {"t": "range", "v": [obj.start, obj.stop, obj.step], "name": self.enc(obj.name, where)}
        if type(obj) in (pd.Index, pd.DatetimeIndex):
            return {"t": "index", "name": self.enc(obj.name, where), "v": self.column(obj, where)}
        if obj is pd.NaT:
            return {"t": "nat"}
        if isinstance(obj, pd.Timestamp):
            return {"t": "ts", "v": obj.isoformat()}
        if isinstance(obj, pd.Timedelta):
            return {"t": "td", "v": obj.value}
        if type(obj) is datetime:
            return {"t": "datetime", "v": obj.isoformat()}
        if type(obj) is date:
            return {"t": "date", "v": obj.isoformat()}
        if type(obj).__module__.startswith("omegaconf"):
            from omegaconf import DictConfig, ListConfig, OmegaConf

            if isinstance(obj, (DictConfig, ListConfig)):
                return {"t": "omegaconf", "v": self.enc(OmegaConf.to_container(obj, resolve=False), where)}
        if inspect.isfunction(obj) and obj.__module__.split(".")[0] == "likepred" and "<" not in obj.__qualname__:
            return {"t": "func", "m": obj.__module__, "n": obj.__qualname__}
        cls = type(obj)
        slots = any(getattr(k, "__slots__", ()) for k in cls.__mro__)  # state outside __dict__
        if _own_class(cls) and cls.__new__ is object.__new__ and not slots:
            custom = cls.__getstate__ is not object.__getstate__ and (cls.__module__, cls.__qualname__) not in FOREIGN
            state = obj.__getstate__() if custom else dict(vars(obj))
            if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
                raise Unsupported(f"{where}: {cls.__qualname__} keeps a non-dict state")
            return {"t": "obj", "m": cls.__module__, "n": cls.__qualname__,
                    "s": {k: self.enc(v, f"{where}.{k}") for k, v in state.items()}}
        raise Unsupported(f"{where}: {cls.__module__}.{cls.__qualname__} is not stored in the state format")


def _resolve(module: str, name: str):
    """A class or function of likepred's own or of a plugin package (one imported as a plugin in
    this process or installed with the `likepred.plugins` entry point), by module and qualified
    name; nothing else."""
    parts = [*module.split("."), *name.split(".")]
    if (module, name) in FOREIGN:
        return getattr(importlib.import_module(module), name)
    if (not (NAME.fullmatch(module) and NAME.fullmatch(name)) or (parts[0] != "likepred" and not trusted_plugin(module))
            or any(p.startswith("__") for p in parts)):
        raise ValueError(f"refused reference {module}:{name} "
                         "(only likepred's own and its plugins' classes and functions)")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) or inspect.isfunction(obj)) or obj.__module__ != module:
        raise ValueError(f"refused reference {module}:{name}")
    return obj


def _column(node, arrays):
    kind = node["kind"]
    if kind == "tz":
        return pd.DatetimeIndex(_dec(node["v"], arrays)).tz_localize("UTC").tz_convert(node["tz"])
    if kind == "string":
        return pd.array(node["v"], dtype=pd.api.types.pandas_dtype(node["dtype"]))
    if kind == "numpy":
        return _dec(node["v"], arrays)
    raise ValueError(f"unknown column kind {kind!r}")


def _dec(node, arrays):  # noqa: C901
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    t = node["t"]
    if t == "float":
        return float(node["v"])
    if t in ("list", "tuple", "set", "frozenset"):
        items = [_dec(v, arrays) for v in node["v"]]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[t](items)
    if t in ("dict", "defaultdict", "Counter", "OrderedDict"):
        pairs = dict(zip((_dec(k, arrays) for k in node["k"]), (_dec(v, arrays) for v in node["v"])))
        if t == "defaultdict":
            return collections.defaultdict(FACTORIES[node["f"]] if node["f"] else None, pairs)
        return {"dict": dict, "Counter": collections.Counter, "OrderedDict": collections.OrderedDict}[t](pairs)
    if t == "nd":
        return arrays[node["a"]]
    if t == "ndobj":
        a = np.empty(len(node["v"]), dtype=object)
        a[:] = [_dec(v, arrays) for v in node["v"]]
        return a.reshape(node["shape"]) if "shape" in node else a
    if t == "npscalar":
        return _dec(node["v"], arrays)[()]
    if t == "dtype":
        return np.dtype(node["v"])
    if t == "frame":
        data = {j: _column(c, arrays) for j, c in enumerate(node["data"])}
        frame = pd.DataFrame(data, index=_dec(node["index"], arrays))
        frame.columns = _dec(node["columns"], arrays)
        return frame
    if t == "series":
        return pd.Series(_column(node["v"], arrays), index=_dec(node["index"], arrays), name=_dec(node["name"], arrays))
    if t == "range":
        return pd.RangeIndex(*node["v"], name=_dec(node["name"], arrays))
    if t == "index":
        return pd.Index(_column(node["v"], arrays), name=_dec(node["name"], arrays))
    if t == "nat":
        return pd.NaT
    if t == "ts":
        return pd.Timestamp(node["v"])
    if t == "td":
        return pd.Timedelta(node["v"])
    if t == "datetime":
        return datetime.fromisoformat(node["v"])
    if t == "date":
        return date.fromisoformat(node["v"])
    if t == "omegaconf":
        from omegaconf import OmegaConf

        return OmegaConf.create(_dec(node["v"], arrays))
    if t == "func":
        return _resolve(node["m"], node["n"])
    if t == "obj":
        cls = _resolve(node["m"], node["n"])
        if not isinstance(cls, type) or cls.__new__ is not object.__new__:
            raise ValueError(f"refused class {node['m']}:{node['n']}")
        obj = object.__new__(cls)
        obj.__dict__.update({str(k): _dec(v, arrays) for k, v in node["s"].items()})
        return obj
    raise ValueError(f"unknown node type {t!r}")
