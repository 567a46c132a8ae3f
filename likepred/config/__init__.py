"""The config room (a leaf: imports no registry): typed schemas (`likepred.config.schema`), `typed`
(values merged onto a schema: unknown keys, wrong types and out-of-range values refused, one line
naming the key) and the `@rule` decorator. The check that reads the registries and the list of
every cross-field rule live one floor up, in `likepred.checks`.
"""

from __future__ import annotations

import dataclasses
import math
import os

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from likepred.errors import ConfigError
from likepred.registry import closest


RULES: list = []  # cross-field checks: fn(cfg) raising ConfigError

# ${likepred.pid:} in hydra.run.dir: runs started in the same second get folders of their own
if not OmegaConf.has_resolver("likepred.pid"):
    OmegaConf.register_new_resolver("likepred.pid", lambda: str(os.getpid()), use_cache=True)


def rule(fn):
    """Register a cross-field check `fn(cfg)` (raising ConfigError); `likepred.checks` registers every built-in one."""
    if fn not in RULES:
        RULES.append(fn)
    return fn


def renamed(key: str) -> str | None:
    """The one-line hint for a key that moved (data.images_dir -> paths.images), else None."""
    from likepred.config.schema import RENAMED

    new = RENAMED.get(key)
    return f"{key}: renamed to {new} (give {new}=...)" if new else None


def _unknown_keys(values: dict, schema, prefix: str):
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in values.items():
        if renamed(f"{prefix}{key}"):
            raise ConfigError(renamed(f"{prefix}{key}"))
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key{closest(key, names)}; known: {', '.join(names)}")
        sub = next(f for f in dataclasses.fields(schema) if f.name == key)
        if dataclasses.is_dataclass(sub.default_factory() if callable(sub.default_factory) else None) \
                and isinstance(value, dict):
            _unknown_keys(value, type(sub.default_factory()), f"{prefix}{key}.")


def _allowed(lo, hi, lo_open, hi_open) -> str:
    return " and ".join(s for s in (None if lo is None else f"{'>' if lo_open else '>='} {lo}",
                                    None if hi is None else f"{'<' if hi_open else '<='} {hi}") if s)


def _outside(value, lo, hi, lo_open, hi_open) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False  # a type error is OmegaConf's to report
    if math.isnan(value):
        return True  # nan < lo is False: refuse it outright
    return (lo is not None and (value < lo or (lo_open and value == lo))) or \
        (hi is not None and (value > hi or (hi_open and value == hi)))


def _ranges(node, schema, prefix: str):
    for f in dataclasses.fields(schema):
        value = node.get(f.name)
        if "range" in f.metadata and value is not None and _outside(value, *f.metadata["range"]):
            raise ConfigError(f"{prefix}{f.name}={value!r}: must be {_allowed(*f.metadata['range'])}")
        if "each" in f.metadata and value is not None:
            for i, item in enumerate(value):
                if _outside(item, *f.metadata["each"]):
                    raise ConfigError(f"{prefix}{f.name}[{i}]={item!r}: each item must be "
                                      f"{_allowed(*f.metadata['each'])} (got {list(value)})")
            if len(value) < f.metadata.get("min_len", 0):
                raise ConfigError(f"{prefix}{f.name}=[]: needs at least {f.metadata['min_len']} item(s)")
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise ConfigError(f"{prefix}{f.name}={value!r}: not one of "
                              f"{', '.join(str(c) for c in f.metadata['choices'])}{closest(value, f.metadata['choices'])}")
        if isinstance(value, DictConfig) and callable(f.default_factory) and dataclasses.is_dataclass(f.default_factory()):
            _ranges(value, type(f.default_factory()), f"{prefix}{f.name}.")


def finite(values, prefix: str = ""):
    """No NaN or infinity anywhere in the settings (every number we take is finite)."""
    items = values.items() if isinstance(values, dict) else enumerate(values) if isinstance(values, list) else ()
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}{'.' if prefix else ''}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value!r}: must be a finite number")
        finite(value, name)


def typed(values: dict, schema, prefix: str) -> DictConfig:
    """`values` merged onto `schema`: unknown keys, wrong types and out-of-range values refused."""
    _unknown_keys(values, schema, prefix)
    try:
        node = OmegaConf.merge(OmegaConf.structured(schema), values)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        value = getattr(e, "value", None)
        msg = str(e).splitlines()[0]
        raise ConfigError(f"{prefix}{key}={value!r}: {msg}" if value is not None else f"{prefix}{key}: {msg}") from None
    _ranges(node, schema, prefix)
    return node


def resolved(cfg) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key}: required, and not set (add {e.full_key}=...)") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{getattr(e, 'full_key', '') or 'config'}: {str(e).splitlines()[0]}") from None
