"""`--model URI` -> the local folder of the MLflow model, without importing mlflow when it can.

A local SQLite store is read directly (read-only: a mistyped store is refused, never created):
`runs:/RUN_ID/model` is the run's logged model (or its `model` artifact folder, as older runs
logged it), `models:/NAME/VERSION`, `models:/NAME/latest` (the highest version, as MLflow
resolves it) and `models:/NAME@ALIAS` a registered version's source.
Importing mlflow costs several seconds in a fresh process, longer than the prediction. Anything
else (a server, remote artifacts, a store layout this reader does not know) goes through mlflow.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from likepred.errors import ConfigError
from likepred.stores import store_path


class _Fallback(Exception):
    """This reader cannot resolve the URI: mlflow will."""


def check_store(store: str) -> None:
    """Refuse a local store that does not exist (MLflow would create an empty one)."""
    path = store_path(store)
    if path is not None and not path.exists():
        raise ConfigError(f"--tracking-uri {store}: no such store ({path} does not exist); check the path "
                          "(a run's summary prints its store), or train a model first")
    if store.startswith("sqlite:///") and path.is_dir():
        raise ConfigError(f"--tracking-uri {store}: {path} is a folder, not a SQLite file")
    if store.startswith("sqlite:///") and path.stat().st_size == 0:  # MLflow would make a store in it
        raise ConfigError(f"--tracking-uri {store}: {path} is empty, not a store; check the path (a run's "
                          "summary prints its store)")


def local_path(uri: str) -> Path:
    """A file:// URI or plain path as a path; _Fallback for anything remote."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri or ":" in uri.split("/")[0]:
        raise _Fallback(uri)
    return Path(uri)


def _one(db, query, args):
    row = db.execute(query, args).fetchone()
    return row[0] if row else None


def _from_sqlite(db_path: Path, uri: str) -> Path:
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open the store {db_path}: {e}") from None
    try:
        return _resolve(db, uri)
    except sqlite3.OperationalError as e:  # a schema this reader does not know (another MLflow version)
        raise _Fallback(str(e)) from None
    except sqlite3.DatabaseError as e:  # garbage, or cut short
        raise ConfigError(f"the store {db_path} is damaged: not a readable SQLite database ({e})") from None
    finally:
        db.close()


def _logged_model(db, model_id: str) -> Path:
    loc = _one(db, "SELECT artifact_location FROM logged_models WHERE model_id = ?", (model_id,))
    if loc is None:
        raise ConfigError(f"--model models:/{model_id}: no such logged model in the store")
    return local_path(loc)


def _resolve(db, uri: str) -> Path:
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/"):].partition("/")
        path = path.strip("/") or "model"
        if _one(db, "SELECT run_uuid FROM runs WHERE run_uuid = ?", (run_id,)) is None:
            raise ConfigError(f"--model {uri}: no run {run_id!r} in the store")
        if "/" not in path:
            loc = _one(db, "SELECT artifact_location FROM logged_models WHERE source_run_id = ? AND name = ? "
                           "ORDER BY creation_timestamp_ms DESC", (run_id, path))
            if loc is not None:
                return local_path(loc)
        return local_path(_one(db, "SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))) / path
    rest = uri[len("models:/"):].strip("/")
    if re.fullmatch(r"m-[0-9a-f]+", rest):
        return _logged_model(db, rest)
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = _one(db, "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?", (name, alias))
        if version is None:
            raise ConfigError(f"--model {uri}: no alias {alias!r} of a registered model {name!r}")
    else:
        name, _, version = rest.rpartition("/")
        if name and version.lower() == "latest":  # as MLflow: the highest version, whatever its stage
            version = _one(db, "SELECT MAX(version) FROM model_versions WHERE name = ? "
                               "AND current_stage != 'Deleted_Internal'", (name,))
            if version is None:
                raise ConfigError(f"--model {uri}: no version of a registered model {name!r} in the store")
            version = str(version)
        if not name or not version.isdigit():
            raise _Fallback(uri)  # stages (models:/NAME/Production): mlflow knows
    row = db.execute("SELECT source, storage_location FROM model_versions WHERE name = ? AND version = ?",
                     (name, int(version))).fetchone()
    if row is None:
        raise ConfigError(f"--model {uri}: no version {version} of a registered model {name!r}")
    source, storage = row
    logged = re.fullmatch(r"models:/(m-[0-9a-f]+)", source or "")
    if logged:  # MLflow 3 registers the logged model
        return _logged_model(db, logged.group(1))
    return local_path(storage or source)


def model_folder(uri: str, store: str) -> tuple[Path, bool]:
    """The local folder of `--model URI`, and whether it came from a local store (this user's
    own runs) rather than a folder or a server."""
    if not uri.startswith(("runs:/", "models:/")):
        try:
            folder = local_path(uri)
        except _Fallback:
            folder = None
        if folder is not None:
            if not (folder / "MLmodel").is_file():
                what = "no such folder" if not folder.is_dir() else "not an MLflow model folder (no MLmodel file)"
                raise ConfigError(f"--model {uri}: {what}")
            return folder, False
        return _with_mlflow(uri, store), False
    check_store(store)
    local = store_path(store) is not None
    if not local:  # a server that does not answer: one line in seconds, not MLflow's minutes of retries
        from omegaconf import OmegaConf

        from likepred.preflight import check_server

        check_server(OmegaConf.create({"uri": store}), f"--tracking-uri {store}")
    if store.startswith("sqlite:///"):
        try:
            folder = _from_sqlite(store_path(store), uri)
            if (folder / "MLmodel").is_file():
                return folder, True
        except _Fallback:
            pass
    return _with_mlflow(uri, store), local


def _with_mlflow(uri: str, store: str) -> Path:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model load is noise here
    import mlflow

    # models:/ is resolved in MLflow's global registry and tracking store (its own arguments are not
    # passed all the way down), else in the default store: a `mlflow.db` made in the working folder.
    # The named store is set for the download only (the caller's settings and variables come back).
    env = {k: os.environ.get(k) for k in (STORE_ENV, "MLFLOW_REGISTRY_URI")}
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        mlflow.set_tracking_uri(store)
        mlflow.set_registry_uri(store)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=store, registry_uri=store))
    except Exception as e:  # MlflowException, OSError: a wrong URI, store or folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--model {uri}: cannot load it ({first})") from None
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def model_artifacts(folder: Path, uri: str) -> dict:
    """The likepred parts named in the model's MLmodel file, as local paths."""
    import yaml

    try:
        meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
        arts = meta["flavors"]["python_function"]["artifacts"]
        out = {k: folder / arts[k]["path"] for k in ("predictor", "estimator")}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(f"--model {uri}: not a likepred model (logged by python -m likepred)") from None
    for k, p in out.items():
        if not p.resolve().is_relative_to(folder.resolve()):
            raise ConfigError(f"--model {uri}: its {k} path leaves the model folder")
    return out
