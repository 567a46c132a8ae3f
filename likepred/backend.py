"""Choose the Keras backend before Keras is imported (Keras reads it once), and keep third-party
INFO lines out of a run's output."""

import importlib.util
import logging
import os
import sys

from likepred.errors import ConfigError, MissingDependencyError

BACKENDS = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}
# Loggers whose INFO lines say nothing a user acts on (e.g. JAX's "Unable to initialize backend
# 'tpu'" on every CPU run): WARNING and up only.
QUIET = ("jax._src.xla_bridge", "absl", "alembic")


def quiet_logs():
    """Third-party INFO off by default; a variable already set (MLFLOW_LOGGING_LEVEL=INFO, ...) wins."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING lines
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def use_backend(name: str):
    if name not in BACKENDS:
        raise ConfigError(f"backend={name!r} is unknown; choose one of: {', '.join(BACKENDS)}")
    quiet_logs()
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise ConfigError(f"Keras is already loaded with backend {current!r}; cannot switch to {name!r} in this process")
        return
    if importlib.util.find_spec(BACKENDS[name]) is None:
        raise MissingDependencyError(BACKENDS[name], name, f"backend={name}")
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":  # JAX's compiled programs kept on disk: a rerun (or a sweep's next job) skips
        # compiling the same net again
        from likepred.files import cache_root

        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache_root() / "jax"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
