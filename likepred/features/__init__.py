"""Feature extractors, registered by name, and the FeatureSet that runs them.

`conf/features/NAME.yaml` lists extractors by registered name with their
settings. Every extractor is fitted on train rows only (scikit-learn's
fit/transform boundary); `fit_transform` on the train rows may differ from
`fit().transform()` where a train row must not see its own likes
(leave-one-out), as scikit-learn's TargetEncoder does.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import numpy as np
import pandas as pd

from likepred.errors import ConfigError

EXTRACTORS: dict[str, type] = {}
log = logging.getLogger(__name__)


def register(name: str):
    def deco(cls):
        EXTRACTORS[name] = cls
        cls.name = name
        return cls
    return deco


class Extractor:
    """Base class. `block` names the model input the columns feed."""

    block = "meta"
    leaky = False  # True: sees likes of the rows it describes (study reproduction only)
    paths = False  # True: one column of file paths (images) that the model reads batch by batch
    transient: tuple = ()  # attributes rebuilt on demand (encoders, caches): not pickled

    def __init__(self, dataset=None, **params):
        self.dataset = dataset
        self.params = params

    def __getstate__(self):
        # A fitted extractor is pickled into the packaged model (likepred.packaging):
        # it keeps what transform needs, not the whole Dataset it was built with.
        state = dict(self.__dict__)
        for k in ("dataset", *self.transient):
            if k in state:
                state[k] = None
        return state

    def fit(self, train: pd.DataFrame) -> "Extractor":
        return self

    def transform(self, posts: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def fit_transform(self, train: pd.DataFrame) -> pd.DataFrame:
        return self.fit(train).transform(train)

    def report(self, posts: pd.DataFrame) -> dict:
        """Figures on how the fitted extractor does on these rows (logged as metrics)."""
        return {}

    def artifacts(self, folder) -> list:
        """Write files that show the fitted extractor into `folder`; return their paths."""
        return []


class FeatureSet:
    """Runs the configured extractors; output: {block: float32 array}, names per block."""

    def __init__(self, extractors: list[Extractor]):
        self.extractors = extractors

    @property
    def leaky(self) -> bool:
        return any(e.leaky for e in self.extractors)

    def _collect(self, frames):
        blocks, names = {}, {}
        for ex, frame in zip(self.extractors, frames):
            blocks.setdefault(ex.block, []).append(frame)
        out = {}
        for block, parts in blocks.items():
            frame = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
            names[block] = list(frame.columns)
            if any(e.paths and e.block == block for e in self.extractors):
                out[block] = frame.iloc[:, 0].to_numpy(dtype=object)  # 1-D: block_stats skips it
            else:
                out[block] = frame.to_numpy(dtype=np.float32)
        self.names_ = names
        return out

    def fit(self, train: pd.DataFrame) -> "FeatureSet":
        for e in self.extractors:
            e.fit(train)
        return self

    def fit_transform(self, train: pd.DataFrame) -> dict:
        return self._collect([e.fit_transform(train) for e in self.extractors])

    def transform(self, posts: pd.DataFrame) -> dict:
        return self._collect([e.transform(posts) for e in self.extractors])

    def reports(self, **rows: pd.DataFrame) -> dict:
        """Every extractor's report on each set of rows, as `{set}_{extractor}_{figure}` metrics."""
        out = {f"{part}_{e.name}_{k}": float(v) for part, posts in rows.items()
               for e in self.extractors for k, v in e.report(posts).items()}
        for k, v in out.items():
            log.info("features: %s = %.4g", k, v)
        return out

    def write_artifacts(self, folder) -> list:
        return [p for e in self.extractors for p in e.artifacts(folder)]


def build_features(cfg, dataset=None) -> FeatureSet:
    """cfg: the `features` config node (`extractors: {name: {settings}}`)."""
    for mod in pkgutil.iter_modules(__path__):  # each module registers its extractors on import
        importlib.import_module(f"{__name__}.{mod.name}")

    extractors = []
    for name, params in (cfg.get("extractors") or {}).items():
        if name not in EXTRACTORS:
            raise ConfigError(
                f"features.extractors.{name}: unknown extractor; known: {', '.join(sorted(EXTRACTORS))}"
            )
        params = dict(params or {})
        try:
            extractors.append(EXTRACTORS[name](dataset=dataset, **params))
        except TypeError as e:
            raise ConfigError(f"features.extractors.{name}: {e}") from None
    if not extractors:
        raise ConfigError("features.extractors is empty: list at least one extractor")
    return FeatureSet(extractors)
