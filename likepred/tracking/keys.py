"""Names and hashes shared by every part of tracking (a leaf: imports nothing of likepred).

Metric names are API (tests, sweeps and dashboards read them): see DESIGN.md.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

SWEEP_FILE = "likepred_sweep.json"
# Bookkeeping tags live under one prefix, which the UI's tag filter hides or shows at once; the
# tags a user compares runs by (data_source, leaky, target, error, pruned, best_*) stay unprefixed.
# Runs logged before the prefix carry the bare names: read them with `tag()`.
PREFIX = "likepred."
CONFIG_HASH, OVERRIDES, JOB, JOB_NUM, THREADS, DATASET_HASH = (
    PREFIX + k for k in ("config_hash", "overrides", "job", "job_num", "threads_per_job", "dataset_hash"))
SWEEP_TAG, SWEEP_DIR, SWEEPER, LAUNCHER, OPTIMIZED = (
    PREFIX + k for k in ("tracking.sweep", "sweep_dir", "sweeper", "launcher", "optimized_metric"))
REUSED_TAG = PREFIX + "reused."  # + job num, on the parent: {run_id, job} of the earlier run a skipped job reuses
OLD_REUSED_TAG = "reused."


def tag(tags: dict, key: str, default=None):
    """A run's bookkeeping tag `key` (a PREFIX name), also from runs logged under its bare name."""
    if key in tags:
        return tags[key]
    return tags.get(key[len(PREFIX):], default) if key.startswith(PREFIX) else tags.get(key, default)
# Keys that do not change a job's result: left out of the config hash that resume matches on.
UNHASHED = ("tracking", "sweep", "trainer.verbose")


def config_hash(cfg) -> str:
    """Hash of the resolved config minus keys that do not change results (resume matches it)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for key in UNHASHED:
        *path, last = key.split(".")
        node = c
        for p in path:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flat_params(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = str(node)[:6000]

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def data_name(data) -> str:
    """The data a run read, as its name says it: `synthetic`, else the folder's (or file's) name,
    prefixed by the source unless it is the profiles folder (`instaloader:NAME`, `study_csv:FILE`)."""
    path = str(data.get("path") or "").rstrip("/\\")
    if data.source == "synthetic" or not path:
        return str(data.source)
    name = path.replace("\\", "/").rsplit("/", 1)[-1] or path
    return name if data.source == "profiles" else f"{data.source}:{name}"


def run_name(cfg) -> str:
    """What differs between runs a user compares: model, features, loss and split, on which data."""
    return f"{cfg.model.name}-{cfg.features.name}-{cfg.loss.name}-{cfg.split.kind} on {data_name(cfg.data)}"


DIGITS = 6  # significant digits of a logged metric: MLflow's UI shows a float whole (31.2345678901234)


def for_people(value: float) -> float:
    """A metric rounded to DIGITS significant digits, as logged (a MAPE of 31.2346 %, a loss
    of 0.0123457): far finer than any interval on these scores, and readable in the UI."""
    return float(f"{float(value):.{DIGITS}g}")
