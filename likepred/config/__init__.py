"""Check a composed run config before any data is read: keys, types, ranges, registered names and
cross-field rules, each failure one line naming the key, the value and what is allowed.

Schemas are the dataclasses in `likepred.config.schema` (the model's comes from the model
registry); cross-field rules are functions registered with `@rule`.
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from likepred.errors import ConfigError
from likepred.registry import closest

RULES: list = []  # cross-field checks: fn(cfg) raising ConfigError


def rule(fn):
    RULES.append(fn)
    return fn


def _unknown_keys(values: dict, schema, prefix: str):
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key{closest(key, names)}; known: {', '.join(names)}")
        sub = next(f for f in dataclasses.fields(schema) if f.name == key)
        if dataclasses.is_dataclass(sub.default_factory() if callable(sub.default_factory) else None) \
                and isinstance(value, dict):
            _unknown_keys(value, type(sub.default_factory()), f"{prefix}{key}.")


def _ranges(node, schema, prefix: str):
    for f in dataclasses.fields(schema):
        value = node.get(f.name)
        if "range" in f.metadata and value is not None:
            lo, hi, lo_open, hi_open = f.metadata["range"]
            bad = (lo is not None and (value < lo or (lo_open and value == lo))) or \
                  (hi is not None and (value > hi or (hi_open and value == hi)))
            if bad:
                allowed = " and ".join(s for s in (
                    None if lo is None else f"{'>' if lo_open else '>='} {lo}",
                    None if hi is None else f"{'<' if hi_open else '<='} {hi}") if s)
                raise ConfigError(f"{prefix}{f.name}={value!r}: must be {allowed}")
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise ConfigError(f"{prefix}{f.name}={value!r}: not one of "
                              f"{', '.join(str(c) for c in f.metadata['choices'])}{closest(value, f.metadata['choices'])}")
        if isinstance(value, DictConfig) and callable(f.default_factory) and dataclasses.is_dataclass(f.default_factory()):
            _ranges(value, type(f.default_factory()), f"{prefix}{f.name}.")


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


def check(cfg) -> None:
    """Refuse a config that cannot work, fast (no data read, no heavy import)."""
    from likepred.config import schema as s
    from likepred.data import READERS
    from likepred.features import EXTRACTORS, check_params
    from likepred.models import MODELS
    from likepred.split import SPLITS
    from likepred.targets import TARGETS

    values = resolved(cfg)
    model = values.pop("model", None) or {}
    values.pop("hydra", None)
    root = typed(values, s.RootConfig, "")
    READERS.get(root.data.source)
    SPLITS.get(root.split.kind)
    TARGETS.get(root.target.name)
    typed(model, MODELS.schema(model.get("name")) or s.ModelConfig, "model.")
    for name, params in (values["features"].get("extractors") or {}).items():
        check_params(name, EXTRACTORS.get(name), params or {})
    for fn in RULES:
        fn(cfg)


@rule
def check_optimized_metric(cfg):
    name = cfg.get("optimized_metric")
    if name and not str(name).startswith("val_"):
        raise ConfigError(f"optimized_metric={name!r}: a sweeper may only optimise a validation metric "
                          "(val_mape, val_mae, ...); tuning on test rows would leak them into model selection")


@rule
def check_fractions(cfg):
    if cfg.split.test_frac + cfg.split.val_frac >= 1:
        raise ConfigError(f"split.test_frac + split.val_frac = {cfg.split.test_frac + cfg.split.val_frac:g}: "
                          "must be < 1 (train rows need the rest)")


@rule
def check_folds(cfg):
    folds, fold = cfg.split.get("folds") or 0, cfg.split.get("fold")
    if folds == 1:
        raise ConfigError("split.folds=1: cross-validation needs K >= 2 folds (0: one split, no folds)")
    if folds >= 2 and fold is None:
        raise ConfigError(f"split.folds={folds} without split.fold: give split.folds on the command line "
                          f"(likepred split.folds={folds} ...), which runs the folds as one sweep")
    if fold is not None and not 0 <= fold < max(folds, 1):
        raise ConfigError(f"split.fold={fold} needs split.folds=K with 0 <= fold < K (split.folds={folds})")
    if fold is not None and cfg.split.kind not in ("user", "chrono", "random"):
        raise ConfigError(f"split={cfg.split.kind} has no folds; cross-validation works with split=user, chrono or random")


@rule
def check_post_counts(cfg):
    if cfg.data.source == "synthetic" and cfg.data.min_posts > cfg.data.max_posts:
        raise ConfigError(f"data.min_posts={cfg.data.min_posts} > data.max_posts={cfg.data.max_posts}")


def _extractors(cfg):
    from likepred.features import EXTRACTORS

    return [(EXTRACTORS.get(n), dict(p or {})) for n, p in (cfg.features.get("extractors") or {}).items()]


@rule
def check_leaky_needs_legacy(cfg):
    leaky = [cls.name for cls, _ in _extractors(cfg) if cls.leaky]
    if leaky and cfg.split.kind != "legacy":
        raise ConfigError(f"features={cfg.features.name} uses likes of the predicted posts ({', '.join(leaky)}: "
                          "the study's leak); it is allowed only with split=legacy, to reproduce the study")


@rule
def check_model_inputs(cfg):
    from likepred.models import MODELS

    schema = MODELS.schema(cfg.model.name)
    needed = getattr(schema, "INPUTS", ())
    blocks = {p.get("block", cls.block) for cls, p in _extractors(cfg)}
    missing = [b for b in needed if b not in blocks]
    if missing:
        raise ConfigError(f"model={cfg.model.name} reads the input block(s) {', '.join(missing)}, which "
                          f"features={cfg.features.name} does not make (it makes: {', '.join(sorted(blocks))})")
