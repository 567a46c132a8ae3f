"""Choose the Keras backend before Keras is imported (Keras reads it once)."""

import importlib.util
import os
import sys

from likepred.errors import ConfigError, MissingDependencyError

BACKENDS = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}


def use_backend(name: str):
    if name not in BACKENDS:
        raise ConfigError(f"backend={name!r} is unknown; choose one of: {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise ConfigError(f"Keras is already loaded with backend {current!r}; cannot switch to {name!r} in this process")
        return
    if importlib.util.find_spec(BACKENDS[name]) is None:
        raise MissingDependencyError(BACKENDS[name], name, f"backend={name}")
    os.environ["KERAS_BACKEND"] = name
