"""Check a composed run config before any data is read: keys, types, ranges, registered names and
cross-field rules, each failure one line naming the key, the value and what is allowed.

Schemas are the dataclasses in `likepred.config.schema` (the model's comes from the model
registry); cross-field rules are functions registered with `@rule`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from likepred.errors import ConfigError
from likepred.registry import closest

log = logging.getLogger("likepred")

RULES: list = []  # cross-field checks: fn(cfg) raising ConfigError

# ${likepred.pid:} in hydra.run.dir: runs started in the same second get folders of their own
if not OmegaConf.has_resolver("likepred.pid"):
    OmegaConf.register_new_resolver("likepred.pid", lambda: str(os.getpid()), use_cache=True)


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


def _finite(values, prefix: str = ""):
    """No NaN or infinity anywhere in the settings (every number we take is finite)."""
    items = values.items() if isinstance(values, dict) else enumerate(values) if isinstance(values, list) else ()
    for key, value in items:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}{'.' if prefix else ''}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value!r}: must be a finite number")
        _finite(value, name)


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
    values.pop("hydra", None)
    _finite(values)
    model = values.pop("model", None) or {}
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


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False


@rule
def check_data_path(cfg):
    """A source read from disk needs its path to exist: a typo must not create a FAILED run."""
    data = cfg.data
    if data.source == "synthetic":
        return
    if not data.get("path"):
        raise ConfigError(f"data.path: required for data.source={data.source} (data.path=FOLDER_OR_FILE)")
    if not Path(str(data.path)).expanduser().exists():
        raise ConfigError(f"data.path={data.path}: no such file or folder")


@rule
def check_scrape_date(cfg):
    from likepred.data import parse_scrape_date
    from likepred.errors import DataError

    try:
        parse_scrape_date(cfg.data)
    except DataError:
        raise ConfigError(f"data.scrape_date={cfg.data.scrape_date!r}: not a date (e.g. 2017-05-01)") from None


@rule
def check_packages(cfg):
    """Every optional package the run imports is installed, before any data is read."""
    from likepred.backend import BACKENDS
    from likepred.errors import MissingDependencyError

    needed = [(BACKENDS.get(cfg.backend, "jax"), cfg.backend, f"backend={cfg.backend}")]
    if cfg.data.source == "instaloader":
        needed.append(("instaloader", "instaloader", "data.source=instaloader"))
    for cls, _ in _extractors(cfg):
        needed += [(module, extra, f"features={cfg.features.name} ({cls.name})") for module, extra in cls.requires]
    for module, extra, purpose in needed:
        if not _have(module):
            raise MissingDependencyError(module, extra, purpose)


# tracking URI schemes MLflow serves (a database's with its SQLAlchemy driver) and the artifact
# stores that need a client library of their own
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")
DB_DRIVERS = {"postgresql": ("psycopg", "psycopg2"), "mysql": ("pymysql", "MySQLdb"), "mssql": ("pyodbc", "pymssql")}
ARTIFACT_LIBS = {"s3": ("boto3", "boto3"), "gs": ("google.cloud.storage", "google-cloud-storage"),
                 "wasbs": ("azure.storage.blob", "azure-storage-blob"),
                 "abfss": ("azure.storage.filedatalake", "azure-storage-file-datalake"),
                 "hdfs": ("pyarrow", "pyarrow"), "viewfs": ("pyarrow", "pyarrow"), "sftp": ("pysftp", "pysftp"),
                 "b2": ("boto3", "boto3"), "r2": ("boto3", "boto3")}


@rule
def check_tracking(cfg):
    import posixpath

    t = cfg.get("tracking")
    if t is None or not t.enabled:
        return
    if not str(t.experiment or "").strip():
        raise ConfigError("tracking.experiment='': give the experiment a name (tracking.experiment=NAME)")
    uri = str(t.uri or "").strip()
    if not uri:
        raise ConfigError("tracking.uri='': give a store, e.g. tracking.uri=sqlite:///mlruns/mlflow.db or http://HOST:5000")
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else uri.lower()  # "databricks"
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(f"tracking.uri={uri}: unsupported scheme {scheme + ':' if ':' in uri else '(none)'}; use one of "
                          f"{', '.join(s + '://' for s in TRACKING_SCHEMES)}{closest(scheme, TRACKING_SCHEMES)}"
                          + ("" if ":" in uri else f" (a folder: tracking.uri=sqlite:///{uri}/mlflow.db)"))
    driver = uri.split(":", 1)[0].split("+", 1)[1] if "+" in uri.split(":", 1)[0] else None
    drivers = (driver,) if driver else DB_DRIVERS.get(scheme, ())
    if drivers and not any(_have(d) for d in drivers):
        raise ConfigError(f"tracking.uri={uri}: needs a {scheme} driver for SQLAlchemy, none installed "
                          f"(pip install {drivers[0]})")
    root = str(t.get("artifact_root") or "")
    lib = ARTIFACT_LIBS.get(root.split("://", 1)[0].lower()) if "://" in root else None
    if lib and not _have(lib[0]):
        raise ConfigError(f"tracking.artifact_root={root}: needs the package '{lib[1]}', which is not installed "
                          f"(pip install {lib[1]})")
    name = t.get("register")
    if name is not None:
        name = str(name)
        norm = posixpath.normpath(name) if name.strip() else ""
        if not name.strip() or any(c in name for c in "/:") or norm != name or norm in (".", "..") \
                or norm.startswith(".."):
            raise ConfigError(f"tracking.register={name!r}: not a registered-model name (no '/' or ':', "
                              "not empty, '.' or '..'; e.g. tracking.register=likes_gbm)")


# sizes that are allowed but almost surely a typo: one line of warning, the run goes on
HUGE_USERS = 100_000
HUGE_EPOCHS = 10_000


@rule
def warn_absurd_sizes(cfg):
    data, trainer = cfg.data, cfg.trainer
    if data.source == "synthetic" and data.n_users > HUGE_USERS:
        log.warning("data.n_users=%d: a synthetic folder of that many users takes hours and ~%d GB; "
                    "the default is 300", data.n_users, max(1, data.n_users * data.max_posts // 2_000_000))
    if trainer.epochs > HUGE_EPOCHS and trainer.patience == 0:
        log.warning("trainer.epochs=%d with trainer.patience=0 (no early stopping): every epoch runs; "
                    "set trainer.patience=8 to stop when validation stops improving", trainer.epochs)
