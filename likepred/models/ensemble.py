"""An ensemble of registered models: a weighted geometric mean of their predictions.

Members (`model.members`, each with the hyperparameters of its own `conf/model/NAME.yaml`,
changed by `model.overrides.NAME`) are trained on the same rows; the weights (non-negative,
summing to 1, on a grid of `model.step`) are those with the least loss on the val rows, in log
space: log p = sum w_i log p_i. Dense nets and boosted trees err differently, so a mix can beat
both. Val metrics then read slightly optimistic (the weights were chosen on those rows), as the
calibration's would.
"""

from __future__ import annotations

import copy
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from omegaconf import OmegaConf, open_dict

from likepred.config.schema import ModelConfig, items, rng
from likepred.config.search import config_file
from likepred.errors import ConfigError
from likepred.models import MODELS, Estimator, register

log = logging.getLogger(__name__)


@dataclass
class EnsembleConfig(ModelConfig):
    INPUTS: ClassVar[tuple] = ("meta",)  # feature blocks it reads (members' own are checked too)
    members: list[str] = items("gbm", "dense_meta", min_len=1)
    overrides: Any = field(default_factory=dict)  # per member: {NAME: {key: value}} over conf/model/NAME.yaml
    step: float = rng(0.05, lo=0, hi=1, lo_open=True)  # grid step of the weights


def member_config(cfg, name: str):
    """The run config with `model` replaced by member `name`'s: its YAML plus model.overrides.NAME."""
    from likepred.config import typed

    if name == "ensemble" or name not in MODELS:
        known = ", ".join(n for n in MODELS.names() if n != "ensemble")
        raise ConfigError(f"model.members: {name!r} is not a model an ensemble can hold; known: {known}")
    yaml = config_file("model", name, cfg)  # on Hydra's search path: a plugin's model too
    values = OmegaConf.to_container(OmegaConf.create(yaml.read_text(encoding="utf-8")), resolve=True)
    values.pop("defaults", None)  # a member's feature defaults do not apply: the run's features are checked
    extra = (cfg.model.get("overrides") or {}).get(name) or {}
    values.update(OmegaConf.to_container(OmegaConf.create(extra), resolve=True))
    node = typed(values, MODELS.schema(name) or ModelConfig, f"model.overrides.{name}.")
    out = copy.deepcopy(cfg)
    with open_dict(out):
        out.model = node
    return out


def build_members(cfg) -> list:
    members = [MODELS.get(n)(member_config(cfg, n)) for n in cfg.model.members]
    likes = [n for n, m in zip(cfg.model.members, members) if m.predicts != "target"]
    if likes:
        raise ConfigError(f"model.members: {', '.join(likes)} predict likes, not the target; an ensemble "
                          "mixes models that learn the target (dense_meta, gbm, ...)")
    return members


def simplex(k: int, step: float) -> np.ndarray:
    """Every weight vector of k non-negative multiples of `step` summing to 1."""
    n = max(1, int(round(1 / step)))
    rows = [c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n] if k > 1 else [(n,)]
    return np.asarray(rows, dtype=float) / n


def loss(name: str, y, p) -> np.ndarray:
    """Loss of each column of p (rows x candidates) against y."""
    y = y[:, None]
    if name == "mape":
        return np.mean(np.abs(y - p) / np.maximum(np.abs(y), 1e-9), axis=0)
    if name == "mae":
        return np.mean(np.abs(y - p), axis=0)
    return np.mean((y - p) ** 2, axis=0)


class Ensemble(Estimator):

    def __init__(self, cfg):
        self.cfg = cfg
        self.names = list(cfg.model.members)
        self.members = build_members(cfg)
        self.weights_ = np.full(len(self.members), 1.0 / len(self.members))

    def fit(self, train, val=None, on_epoch=None):
        scores = {}
        for name, m in zip(self.names, self.members):
            out = m.fit(train, val)  # per-epoch logs are each member's own: not forwarded
            scores.update({f"{name}_{k}": v for k, v in (out or {}).items() if np.isscalar(v)})
        if val is not None and len(val):
            logp = self._log_preds(val)
            grid = simplex(len(self.members), float(self.cfg.model.step))
            cost = loss(self.cfg.loss.name, np.asarray(val.y, float), np.exp(logp @ grid.T))
            self.weights_ = grid[int(np.argmin(cost))]
        else:
            log.warning("ensemble: no val rows to fit the weights on: equal weights")
        log.info("ensemble weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(self.names, self.weights_)))
        return scores | {f"weight_{n}": float(w) for n, w in zip(self.names, self.weights_)}

    def _log_preds(self, data) -> np.ndarray:
        return np.stack([np.log(np.maximum(np.asarray(m.predict(data), float), 1e-9)) for m in self.members], axis=1)

    def predict(self, data):
        return np.exp(self._log_preds(data) @ self.weights_)

    def save(self, folder):
        for i, m in enumerate(self.members):
            sub = folder / f"member{i}"
            sub.mkdir(parents=True, exist_ok=True)
            m.save(sub)

    def load(self, folder, backend=None):
        for i, m in enumerate(self.members):
            m.load(folder / f"member{i}", backend)

    def requirements(self, backend=None):
        return sorted({r for m in self.members for r in m.requirements(backend)})


@register("ensemble", schema=EnsembleConfig)
def ensemble(cfg):
    return Ensemble(cfg)


def check_members(cfg, blocks: set):
    """Members exist, learn the target and read `blocks` (those the features make): before any data
    is read (likepred.checks runs it)."""
    for name in cfg.model.members:
        member_config(cfg, name)  # the member exists and its overrides fit its schema
        missing = [b for b in getattr(MODELS.schema(name), "INPUTS", ()) if b not in blocks]
        if missing:
            raise ConfigError(f"model.members: {name} reads the input block(s) {', '.join(missing)}, which "
                              f"features={cfg.features.name} does not make")
    build_members(cfg)
