"""Names and hashes shared by every part of tracking (a leaf: imports nothing of likepred).

Metric names are API (tests, sweeps and dashboards read them): see DESIGN.md.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

SWEEP_FILE = "likepred_sweep.json"
REUSED_TAG = "reused."  # + job num, on the parent: {run_id, job} of the earlier run a skipped job reuses
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


def run_name(cfg) -> str:
    return f"{cfg.model.name}-{cfg.features.name}-{cfg.loss.name}-{cfg.split.kind}"
