"""Which data and which code a run saw: its train / val / test rows as MLflow datasets, a digest
over the rows' full content and the reader's settings, the git commit (and whether the checkout
had uncommitted changes) and likepred's version. A sweep's resume compares the digest
(likepred.tracking.sweep.reuse_finished), so a job whose data changed runs again."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger("likepred")
DIGEST_TAG = "likepred.data_digest"  # bookkeeping tags live under likepred. (runs before: "data_digest")


def _settings(data_cfg) -> str:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(data_cfg, DictConfig):
        values = OmegaConf.to_container(data_cfg, resolve=True)
    else:
        values = dict(data_cfg or {})
    return json.dumps(values, sort_keys=True, default=str)


def digest(posts, data_cfg=None) -> str:
    """16 hex digits over every cell of `posts` (in order) and the reader's settings."""
    import pandas as pd

    h = hashlib.sha256(_settings(data_cfg).encode())
    h.update(",".join(map(str, posts.columns)).encode())
    if len(posts):
        flat = posts.astype(str)  # lists (tags, mentions), timestamps: their text
        h.update(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def source_of(data_cfg) -> str:
    """Where the rows were read from: the reader's path, else the generator's name and seed."""
    path = data_cfg.get("path")
    if path:
        return str(Path(str(path)).expanduser().resolve())
    return f"{data_cfg.get('source')}:seed={data_cfg.get('seed')}"


def log_datasets(frames: dict, data_cfg, name: str, all_posts) -> None:
    """Log each {context: posts rows} as an MLflow dataset input of the active run (contexts
    train, validation, test), and tag the run `data_digest`: the digest of every post read
    (`all_posts`, as `load_dataset` returns them), which a sweep's resume compares."""
    import mlflow

    source = source_of(data_cfg)
    for context, posts in frames.items():
        flat = posts.reset_index(drop=True)
        flat = flat.assign(**{c: flat[c].astype(str) for c in flat.columns if flat[c].dtype == object})
        with warnings.catch_warnings():  # "the source can be interpreted in multiple ways", integer-column hints
            warnings.simplefilter("ignore", UserWarning)
            ds = mlflow.data.from_pandas(flat, source=source, name=f"{name}-{context}", digest=digest(posts, data_cfg))
            _log_input(ds, context)
    mlflow.set_tag(DIGEST_TAG, digest(all_posts, data_cfg))


def _log_input(ds, context, tries: int = 3) -> None:
    """mlflow.log_input, again when a sweep's other job inserted the same dataset at the same
    moment (MLflow's SQL store checks, then inserts: parallel jobs on one server race on the
    dataset's primary key); the second try finds the dataset and only links it to this run."""
    import time

    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(tries):
        try:
            mlflow.log_input(ds, context=context)
            return
        except MlflowException as e:
            text = str(e).lower()
            if attempt == tries - 1 or not ("unique" in text or "duplicate" in text or "integrity" in text):
                raise
            time.sleep(0.2 * (attempt + 1))


def data_changed(run, data_cfg) -> str | None:
    """Why a finished run's data differs from what `data_cfg` reads now (None: the same, or unknown)."""
    old = run.data.tags.get(DIGEST_TAG) or run.data.tags.get("data_digest")
    if not old:
        return None
    from likepred.data import load_dataset

    new = digest(load_dataset(data_cfg).posts, data_cfg)
    return None if new == old else f"its data changed (digest {old} -> {new})"


@functools.cache
def code_tags() -> dict:
    """likepred's version, and the git commit and dirty flag of the checkout likepred runs from (if any)."""
    import likepred

    tags = {"likepred.version": likepred.__version__}
    root = Path(likepred.__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode == 0 and git("rev-parse", "--show-toplevel").stdout.strip() == str(root):
            dirty = git("status", "--porcelain", "--untracked-files=no")
            tags["mlflow.source.git.commit"] = head.stdout.strip()  # where MLflow's UI shows a commit
            tags["likepred.git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.SubprocessError):  # no git: an installed package says its version only
        pass
    return tags
