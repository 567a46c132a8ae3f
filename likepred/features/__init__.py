"""Feature extractors, registered by name, and the FeatureSet that runs them.

`conf/features/NAME.yaml` lists extractors by registered name with their
settings. Every extractor is fitted on train rows only (scikit-learn's
fit/transform boundary); `fit_transform` on the train rows may differ from
`fit().transform()` where a train row must not see its own likes
(leave-one-out), as scikit-learn's TargetEncoder does.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from likepred.errors import ConfigError
from likepred.registry import Registry, closest

EXTRACTORS = Registry("features.extractors", package=__name__)
log = logging.getLogger(__name__)


def register(name: str):
    """Class decorator: `@register("profile")` adds an extractor under that name."""
    def deco(cls):
        cls.name = name
        EXTRACTORS.add(name, cls)
        return cls
    return deco


@dataclass(frozen=True)
class FeatureContext:
    """What an extractor may know besides the rows it is given: side files and the scrape date.
    `all_posts` (every post, test rows included) is for leaky extractors only (study reproduction)."""

    image_dir: str | None = None
    labels_path: str | None = None
    scrape_date: pd.Timestamp | None = None
    all_posts: pd.DataFrame | None = None

    @classmethod
    def of(cls, data) -> "FeatureContext":
        """The context of a Dataset (or anything with its attributes); None: an empty one."""
        if data is None or isinstance(data, cls):
            return data or cls()
        return cls(data.image_dir, data.labels_path, data.scrape_date, data.posts)


class Extractor:
    """Base class. Settings are the subclass's `__init__` keywords (checked against the config);
    `block` names the model input the columns feed."""

    block = "meta"
    requires: tuple = ()  # (module, extra) pairs it imports: the config check finds a missing one up front
    leaky = False  # True: sees likes of the rows it describes (study reproduction only)
    paths = False  # True: one column of file paths (images) that the model reads batch by batch
    uses_images = False  # True: needs the image folder filled before fit (synthetic data draws it)
    uses_labels = False  # True: reads the label file (context.labels_path; synthetic data draws it before fit)
    transient: tuple = ()  # attributes rebuilt on demand (encoders, caches): not pickled
    context = FeatureContext()

    def __getstate__(self):
        # A fitted extractor is pickled into the packaged model (likepred.serving):
        # it keeps what transform needs, not the data it was fitted beside.
        state = dict(self.__dict__)
        state.pop("context", None)
        for k in self.transient:
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

    def forget_posts(self) -> None:
        """Once fitted: drop the context's table of every post (only `fit` reads `all_posts`), so
        the full table is not held beside the train, val and test rows (GBs at 10 M posts)."""
        import dataclasses

        for e in self.extractors:
            if getattr(e, "context", None) is not None and e.context.all_posts is not None:
                e.context = dataclasses.replace(e.context, all_posts=None)

    @property
    def needs_images(self) -> bool:
        return any(e.uses_images for e in self.extractors)

    @property
    def needs_labels(self) -> bool:
        return any(e.uses_labels for e in self.extractors)

    @property
    def blocks(self) -> set:
        return {e.block for e in self.extractors}

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

    SLOW_S = 5.0  # long runs show progress: an extractor's step is logged (name, rows, seconds) when it took
    # longer, or when the steps since the last such line did (many quick extractors on many rows)

    def _each(self, step: str, posts: pd.DataFrame) -> list:
        out, said = [], time.monotonic()
        for e in self.extractors:
            started = time.monotonic()
            out.append(getattr(e, step)(posts))
            now = time.monotonic()
            if now - said > self.SLOW_S:
                said = now
                log.info("features: %s %s on %d rows in %.1f s", e.name, step.replace("_", "+"), len(posts),
                         now - started)
        return out

    def fit(self, train: pd.DataFrame) -> "FeatureSet":
        self._each("fit", train)
        return self

    def fit_transform(self, train: pd.DataFrame) -> dict:
        return self._collect(self._each("fit_transform", train))

    def transform(self, posts: pd.DataFrame) -> dict:
        return self._collect(self._each("transform", posts))

    def reports(self, **rows: pd.DataFrame) -> dict:
        """Every extractor's report on each set of rows, as `{set}_{extractor}_{figure}` metrics."""
        out = {f"{part}_{e.name}_{k}": float(v) for part, posts in rows.items()
               for e in self.extractors for k, v in e.report(posts).items()}
        for k, v in out.items():
            log.info("features: %s = %.4g", k, v)
        return out

    def write_artifacts(self, folder) -> list:
        return [p for e in self.extractors for p in e.artifacts(folder)]


def check_params(name: str, cls, params: dict) -> None:
    """Refuse settings the extractor does not take, naming the key and the closest known one."""
    known = []
    for klass in cls.__mro__:  # **kwargs pass settings on to the base class's __init__
        if "__init__" not in vars(klass) or klass is Extractor:
            continue
        sig = inspect.signature(klass.__init__).parameters.values()
        known += [p.name for p in sig if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in sig):
            break
    for key in params:
        if key not in known:
            raise ConfigError(f"features.extractors.{name}.{key}: unknown setting{closest(key, known)}; "
                              f"known: {', '.join(known) or '(none)'}")


def build_features(cfg, context=None) -> FeatureSet:
    """cfg: the `features` config node (`extractors: {name: {settings}}`); context: a
    FeatureContext (or a Dataset, whose context is taken)."""
    context = FeatureContext.of(context)
    extractors = []
    for name, params in (cfg.get("extractors") or {}).items():
        cls = EXTRACTORS.get(name)
        params = dict(params or {})
        check_params(name, cls, params)
        try:
            ex = cls(**params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"features.extractors.{name}: {e}") from None
        ex.context = context
        extractors.append(ex)
    if not extractors:
        raise ConfigError("features.extractors is empty: list at least one extractor")
    return FeatureSet(extractors)
