"""The store rule, one leaf every room can import downward (serving/, tracking/, commands/,
preflight): which MLflow store a tool uses when none is named, where that came from, and the
file or folder of a local store. No mlflow import."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from likepred.config.schema import DEFAULT_URI

SQLITE = "sqlite:///"
STORE_ENV = "MLFLOW_TRACKING_URI"
SET_ENV = "LIKEPRED_SET_TRACKING_URI"  # "<the variable before>\n<the URI likepred set>"


def default_store() -> str:
    """The store when none is named: $MLFLOW_TRACKING_URI, else the local SQLite file. The one
    rule of every likepred tool (conf/tracking/local.yaml spells it for Hydra: tracking.uri when
    given, else the variable, else the file)."""
    return user_store_env() or DEFAULT_URI


def user_store_env() -> str | None:
    """$MLFLOW_TRACKING_URI as the user set it. mlflow.set_tracking_uri overwrites the variable
    (in this process and the job processes it starts); likepred.tracking.store.use_store records
    the value before and the value set in SET_ENV, so the overwritten value is seen through."""
    env = os.environ.get(STORE_ENV)
    recorded = os.environ.get(SET_ENV, "")
    before, sep, was_set = recorded.partition("\n")
    return (before or None) if sep and env == was_set else env


def store_source(uri: str) -> str:
    """Where the store `uri` came from, for people: the variable, the default, or tracking.uri."""
    env = user_store_env()
    if env and uri == env:
        return f"${STORE_ENV}"
    return "the default local store" if uri == DEFAULT_URI else "tracking.uri"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite URI, None for other stores."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def store_path(store: str) -> Path | None:
    """The file or folder of a local store (None for a server)."""
    if store.startswith("sqlite:///"):
        return Path(unquote(store[len("sqlite:///"):]))
    if store.startswith("file:"):
        return Path(unquote(urlparse(store).path))
    if "://" not in store:
        return Path(store)
    return None
