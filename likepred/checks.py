"""The config check: a composed run config refused before any data is read when it cannot work
(keys, types, ranges, registered names and cross-field rules), each failure one line naming the
key, the value and what is allowed.

It sits above every registry (data readers, splits, targets, extractors, models) and is the one
place that lists the cross-field rules: each `@rule` below, in the order they run (a plugin may
add its own with `likepred.config.rule`).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from likepred.config import RULES, rule
from likepred.errors import ConfigError
from likepred.registry import closest

log = logging.getLogger("likepred")


def check(cfg) -> None:
    """Refuse a config that cannot work, fast (no data read, no heavy import)."""
    from likepred.config import schema as s
    from likepred.config import finite, resolved, typed
    from likepred.data import READERS
    from likepred.features import EXTRACTORS, check_params
    from likepred.models import MODELS
    from likepred.split import SPLITS
    from likepred.targets import TARGETS

    values = resolved(cfg)
    values.pop("hydra", None)
    finite(values)
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


def extractors(cfg) -> list:
    """The run's extractors: (class, settings) per `features.extractors` entry."""
    from likepred.features import EXTRACTORS

    return [(EXTRACTORS.get(n), dict(p or {})) for n, p in (cfg.features.get("extractors") or {}).items()]


@rule
def check_leaky_needs_legacy(cfg):
    leaky = [cls.name for cls, _ in extractors(cfg) if cls.leaky]
    if leaky and cfg.split.kind != "legacy":
        raise ConfigError(f"features={cfg.features.name} uses likes of the predicted posts ({', '.join(leaky)}: "
                          "the study's leak); it is allowed only with split=legacy, to reproduce the study")


@rule
def check_model_inputs(cfg):
    from likepred.models import MODELS

    schema = MODELS.schema(cfg.model.name)
    needed = getattr(schema, "INPUTS", ())
    blocks = {p.get("block", cls.block) for cls, p in extractors(cfg)}
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
        raise ConfigError(f"data.path: required for data.source={data.source} (paths.data=FOLDER_OR_FILE)")
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
    for cls, _ in extractors(cfg):
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


# the rules of one extractor and one model, kept in their rooms as plain functions; run last


@rule
def check_ensemble_members(cfg):
    """An ensemble's members exist, learn the target and read blocks the features make (models/ensemble.py)."""
    if cfg.model.get("name") != "ensemble":
        return
    from likepred.models.ensemble import check_members

    check_members(cfg, {p.get("block", cls.block) for cls, p in extractors(cfg)})


@rule
def check_cnn_weights(cfg):
    """A frozen CNN's ImageNet weights are on disk or can be fetched (features/images.py)."""
    from likepred.features.images import check_cnn_weights as check_weights

    check_weights(cfg)
