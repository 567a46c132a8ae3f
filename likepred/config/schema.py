"""Typed configs: one dataclass per config group (each model's beside its builder, in likepred/models/).

Each field has its type and default as in `likepred/conf`; `rng(...)` adds the allowed range.
They are stored in Hydra's ConfigStore under `schema/<group>` and checked by
`likepred.checks.check` before any data is read. OmegaConf gives unknown keys and wrong types;
ranges and cross-field rules are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


def rng(default, lo=None, hi=None, lo_open=False, hi_open=False):
    """A field with an allowed range: lo <= v (lo < v if lo_open), v <= hi (v < hi if hi_open)."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open)})


def choice(default, *options):
    return field(default=default, metadata={"choices": (default, *options)})


def items(*values, lo=None, hi=None, hi_open=False, min_len=0):
    """A list field; each item in [lo, hi] (hi excluded if hi_open), at least `min_len` items."""
    return field(default_factory=lambda: list(values),
                 metadata={"each": (lo, hi, False, hi_open), "min_len": min_len})


SEED_MAX = 2**32 - 1  # NumPy's and JAX's seeds are unsigned 32-bit


def seed_field(default=0):
    return rng(default, lo=0, hi=SEED_MAX)


# Keras 3's activations usable by name without arguments (tests/test_config.py holds this to
# keras.activations); the check refuses others before any data is read.
ACTIVATIONS = ("celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish",
               "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu",
               "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
               "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink")


def activation_field(default):
    return field(default=default, metadata={"choices": ACTIVATIONS})


DEFAULT_URI = "sqlite:///mlruns/mlflow.db"  # the one-machine store (conf/tracking/local.yaml)


# ---- paths: every folder and file, named once (conf/paths/default.yaml); other groups interpolate them
@dataclass
class PathsConfig:
    data: Optional[str] = None
    images: Optional[str] = None
    labels: Optional[str] = None
    cache: str = "~/.cache/likepred"
    output: str = "outputs"


# keys that moved: the old spelling is refused with a one-line hint naming the new one
RENAMED = {"data.images_dir": "paths.images", "data.labels_path": "paths.labels"}


# ---- data
@dataclass
class DataConfig:
    source: str = "synthetic"
    path: Optional[str] = None
    on_error: str = choice("error", "skip")
    scrape_date: Optional[str] = None
    min_age_days: float = rng(2.0, lo=0)
    drop_multi_image: bool = True
    drop_videos: bool = False
    max_followers: Optional[int] = rng(1_000_000, lo=1)
    drop_zero_likes: bool = True
    # synthetic only
    n_users: int = rng(300, lo=2)
    min_posts: int = rng(8, lo=1)
    max_posts: int = rng(40, lo=1)
    seed: int = seed_field()
    image_size: int = rng(64, lo=8)


@dataclass
class SplitConfig:
    kind: str = "chrono"
    test_frac: float = rng(0.2, lo=0, hi=1, lo_open=True, hi_open=True)
    val_frac: float = rng(0.15, lo=0, hi=1, hi_open=True)
    seed: int = seed_field()
    train_as_unseen: bool = False
    # cross-validation: folds=K (>= 2) runs fold=0..K-1 as child runs of one parent (a sweep
    # dimension); a run with fold set tests that fold (likepred/split.py); 0 = one split, no folds
    folds: int = rng(0, lo=0)
    fold: Optional[int] = rng(None, lo=0)


@dataclass
class FeaturesConfig:
    name: str = "metadata"
    extractors: Any = field(default_factory=dict)  # each extractor's settings: its __init__ keywords


@dataclass
class TargetConfig:
    name: str = "positivity"
    base: str = choice("mean", "median", "best_constant", "lognormal")


@dataclass
class LossConfig:
    name: str = choice("mape", "mae", "mse")


@dataclass
class OptimizerConfig:
    name: str = choice("adam", "sgd", "rmsprop", "adamw")
    lr: float = rng(0.001, lo=0, hi=1, lo_open=True, hi_open=True)
    momentum: float = rng(0.0, lo=0, hi=1, hi_open=True)


@dataclass
class TrainerConfig:
    epochs: int = rng(60, lo=1)
    batch_size: int = rng(64, lo=1)
    max_steps_per_epoch: Optional[int] = rng(2000, lo=1)  # larger data: the batch doubles until an epoch fits (null: off)
    patience: int = rng(8, lo=0)
    verbose: Any = "auto"  # auto | 0 | 1 | 2


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = DEFAULT_URI
    artifact_root: Optional[str] = None
    experiment: str = "likepred"
    log_model: bool = True
    register: Optional[str] = None
    alias: str = "champion"  # a sweep with `register` sets it on its best job's version
    connect_timeout: float = rng(5.0, lo=0, lo_open=True)  # seconds for a server/database to answer


@dataclass
class DownloadConfig:
    workers: int = rng(16, lo=1)
    retries: int = rng(3, lo=0)
    backoff: float = rng(0.5, lo=0)
    timeout: float = rng(30.0, lo=0, lo_open=True)
    max_mb: float = rng(50.0, lo=0, lo_open=True)
    failures_csv: Optional[str] = None


@dataclass
class ImagesConfig:
    dir: Optional[str] = None
    size: int = rng(256, lo=8)
    scale: str = choice("unit", "signed", "raw")
    on_missing: str = choice("error", "skip")
    workers: int = rng(4, lo=1)
    cache_dir: Optional[str] = None
    extract_batch_size: int = rng(32, lo=1)
    extract_runtime: str = choice("auto", "onnx", "keras")
    extract_precision: str = choice("int8", "fp32")
    download: DownloadConfig = field(default_factory=DownloadConfig)


@dataclass
class SweepConfig:
    rerun: bool = False
    threads_per_job: Optional[int] = rng(None, lo=1)


@dataclass
class StudyConfig:
    yardstick_mape: Optional[float] = None
    best_mape: Optional[float] = None


@dataclass
class EvaluateConfig:
    mature_days: float = rng(7.0, lo=0)
    calibrate: bool = True
    importance_repeats: int = rng(5, lo=0)
    importance_max_rows: Optional[int] = rng(50_000, lo=1)
    bootstrap: int = rng(1000, lo=0)
    seed: int = seed_field()


@dataclass
class RootConfig:
    """The run config's top level; `model` is typed by the model's own registered schema."""

    seed: int = seed_field()
    plugins: list[str] = field(default_factory=list)  # modules imported first (likepred.plugins)
    backend: str = choice("jax", "tensorflow", "torch")
    optimized_metric: str = "val_mape"
    sweep: SweepConfig = field(default_factory=SweepConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    model: Any = None
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)


# ---- models: each model's dataclass lives beside its builder (likepred/models/NAME.py), registered
# with it (`@register(NAME, schema=...)`); these are the bases they share
@dataclass
class ModelConfig:
    name: str = ""


def widths(*values):
    """A list of layer widths (each >= 1), e.g. `layers: list[int] = widths(80, 30, 10)`."""
    return items(*values, lo=1)


def dropout_field(default=0.0):
    return rng(default, lo=0, hi=1, hi_open=True)


@dataclass
class NetConfig(ModelConfig):
    """The fields every Keras net here shares: hidden and output activation, dropout."""

    activation: str = activation_field("relu")
    dropout: float = dropout_field(0.0)
    output_activation: str = activation_field("linear")


GROUPS = {  # group -> schema, for the ConfigStore
    "paths": PathsConfig, "data": DataConfig, "split": SplitConfig, "features": FeaturesConfig, "target": TargetConfig,
    "loss": LossConfig, "optimizer": OptimizerConfig, "trainer": TrainerConfig, "tracking": TrackingConfig,
    "images": ImagesConfig,
}


def store():
    """Register the schemas in Hydra's ConfigStore (schema/<group>, schema/model/<name>)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, schema in GROUPS.items():
        cs.store(group=f"schema/{group}", name=group, node=schema)
    cs.store(group="schema", name="root", node=RootConfig)
