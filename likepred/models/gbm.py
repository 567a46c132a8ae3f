"""Gradient boosting on the metadata block (scikit-learn's histogram GBM).

For MAPE it minimises L1 with sample weight 1/y, which is exactly MAPE;
LightGBM's built-in `mape` objective silently clips and is not used.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from likepred.errors import ConfigError
from likepred.config.schema import ModelConfig, rng
from likepred.models import Estimator, register

log = logging.getLogger(__name__)



@dataclass
class GBMConfig(ModelConfig):
    INPUTS: ClassVar[tuple] = ("meta",)  # feature blocks it reads
    learning_rate: float = rng(0.05, lo=0, lo_open=True)
    max_iter: int = rng(500, lo=1)
    max_leaf_nodes: int = rng(15, lo=2)
    min_samples_leaf: int = rng(20, lo=1)
    l2_regularization: float = rng(0.0, lo=0)
    n_iter_no_change: int = rng(30, lo=1)


LOSSES = {"mape": "absolute_error", "mae": "absolute_error", "mse": "squared_error"}


class GBM(Estimator):
    weights = ("model",)  # the trees travel as arrays (forest.npz) beside the pipeline
    PROGRESS_S = 15.0  # a fit that runs longer logs its round (and val loss) this often

    def __init__(self, cfg):
        self.cfg = cfg

    def _weights(self, y):
        return 1.0 / np.maximum(np.abs(y), 1e-9) if self.cfg.loss.name == "mape" else None

    def fit(self, train, val=None, on_epoch=None):
        from sklearn.ensemble import HistGradientBoostingRegressor

        m, name = self.cfg.model, self.cfg.loss.name
        if name not in LOSSES:
            raise ConfigError(f"loss={name!r} is unknown for gbm; known: {', '.join(LOSSES)}")
        has_val = val is not None and len(val) > 0
        n = len(train.y)
        if 2 * m.min_samples_leaf > n:  # no split leaves two such leaves: every tree is one leaf
            log.warning("model.min_samples_leaf=%d is over half the %d training rows: no tree can split, the "
                        "model learns a constant; lower it for a data set this small (e.g. model.min_samples_leaf=%d)",
                        m.min_samples_leaf, n, max(1, n // 20))
        self.model = HistGradientBoostingRegressor(
            loss=LOSSES[name], learning_rate=m.learning_rate, max_iter=m.max_iter,
            max_leaf_nodes=m.max_leaf_nodes, min_samples_leaf=m.min_samples_leaf,
            l2_regularization=m.l2_regularization, early_stopping=has_val,
            n_iter_no_change=m.n_iter_no_change, random_state=int(self.cfg.seed),
        )
        kw = {}
        if has_val:
            kw = {"X_val": val.inputs["meta"], "y_val": val.y, "sample_weight_val": self._weights(val.y)}
        with _progress(self.model, m.max_iter, self.PROGRESS_S):
            self.model.fit(train.inputs["meta"], train.y, sample_weight=self._weights(train.y), **kw)
        scores = {}
        if on_epoch is not None:
            for i, (tr, va) in enumerate(zip(self.model.train_score_, self.model.validation_score_ if has_val else self.model.train_score_)):
                on_epoch(i, {"loss": -float(tr), "val_loss": -float(va)})
        scores["n_iter"] = self.model.n_iter_
        return scores

    def predict(self, data):
        return self.model.predict(data.inputs["meta"])

    def save(self, folder):
        from likepred.models.forest import Forest

        model = self.model if isinstance(self.model, Forest) else Forest.from_sklearn(self.model)
        model.save(folder / "forest.npz")

    def load(self, folder, backend=None):
        """The trees as arrays, predicted with NumPy (no scikit-learn, no pickle); a model packaged
        before forest.npz existed kept its estimator in the pipeline's pickle."""
        from likepred.models.forest import Forest

        if (folder / "forest.npz").is_file():
            self.model = Forest.load(folder / "forest.npz")
        elif getattr(self, "model", None) is None:
            raise ConfigError(f"{folder}: forest.npz is missing (the gbm's trees)")


class _progress:
    """While scikit-learn fits `model` (it takes no callback), a daemon thread logs every `every`
    seconds how many boosting rounds are done and the latest val loss (early stopping on), read
    from the lists the estimator appends to as it goes; then one line with the rounds and time."""

    def __init__(self, model, max_iter: int, every: float):
        self.model, self.max_iter, self.every = model, max_iter, every
        self.stop = threading.Event()

    def _said(self, final: bool = False) -> str:
        done = len(getattr(self.model, "_predictors", None) or ())
        if final:
            done = getattr(self.model, "n_iter_", done)
        val = getattr(self.model, "validation_score_", None)
        val = list(val) if val is not None else []  # -loss, one a round (round 0: before the first tree)
        said = f"gbm: {done} rounds" if final else f"gbm: round {done} of at most {self.max_iter}"
        if len(val) > 1:
            best = int(max(range(len(val)), key=val.__getitem__))
            said += f", val loss {-val[-1]:.4g} (best {-val[best]:.4g} at round {best})"
        return said + f" ({time.monotonic() - self.started:.0f} s)"

    def _watch(self):
        while not self.stop.wait(self.every):
            if getattr(self.model, "_predictors", None) is None:
                log.info("gbm: binning the features (%.0f s)", time.monotonic() - self.started)
            else:
                log.info("%s", self._said())

    def __enter__(self):
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._watch, name="gbm-progress", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, kind, *_):
        self.stop.set()
        self.thread.join()
        if kind is None and time.monotonic() - self.started > self.every:
            stopped = getattr(self.model, "n_iter_", self.max_iter) < self.max_iter
            log.info("%s%s", self._said(final=True), ": stopped early" if stopped else "")


@register("gbm", schema=GBMConfig)
def gbm(cfg):
    return GBM(cfg)
