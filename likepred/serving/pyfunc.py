"""The packaged model: the fitted feature pipeline and the model as one MLflow pyfunc.

Every run logs it as an MLflow logged model named `model` (`runs:/RUN_ID/model`, listed on the
experiment's Models page); `mlflow.pyfunc.load_model` is all it takes to use (likepred must be
importable). Input: one row per planned post, with the profiles format's field names
(`likepred.data.schema.planned_post`). Output: likes, an interval from the validation
residuals, and whether the user was known.

The parts likepred writes are data (likepred.serving.predictor); MLflow's own wrapper,
`python_model.pkl`, is a pickle that `mlflow.pyfunc.load_model` unpickles: the likepred
predict command reads the parts directly and never loads it.

mlflow is imported at the top: this module is only imported to save or load through MLflow.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from likepred.pipeline import ModelData
from likepred.serving.predictor import (  # noqa: F401 (older pickles name likepred.serving.pyfunc.Predictor)
    INPUTS, LEVEL, Predictor, feature_groups, frame_records, read_model_files, shown_value, threadpools,
    write_model_files,
)

OUTPUTS = {"likes": "double", "likes_low": "double", "likes_high": "double", "known_user": "boolean"}


class LikesModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a `Predictor`: posts DataFrame in, likes DataFrame out."""

    def load_context(self, context):
        # Whoever calls mlflow.pyfunc.load_model has already unpickled MLflow's wrapper: trusted.
        self.predictor = read_model_files(context.artifacts, trust_pickle=True)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """A bad input is MLflow's INVALID_PARAMETER_VALUE (HTTP 400 from `mlflow models serve`,
        no stack trace) with likepred's one line naming the row (0-based, as in the DataFrame)
        and the field."""
        from likepred.errors import DataError

        try:
            posts, known = self.predictor.posts(frame_records(pd.DataFrame(model_input)))
        except DataError as e:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            where = ", ".join(f"{k} {v}" for k, v in (("row", e.record if e.record is not None else 0),
                                                       ("field", e.field)) if v is not None)
            raise MlflowException(f"likepred: {where}: {e.reason}", error_code=INVALID_PARAMETER_VALUE) from None
        return self.predictor.predict(posts, known)


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # Inputs are typed Any: likepred validates them per field with errors for people
    # (MLflow's own checks refuse an int column for a double and a gap in a list column).
    inputs = Schema([ColSpec(AnyType(), name, required=name == "date") for name in INPUTS])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(t, n) for n, t in OUTPUTS.items()]))


def requirements(estimator, backend) -> list[str]:
    # likepred itself is not on PyPI: install it (pip install -e .) where the model is loaded.
    names = ["mlflow", "numpy", "pandas", "scikit-learn", "omegaconf", *estimator.requirements(backend)]
    out = []
    for n in names:
        try:
            out.append(f"{n}=={metadata.version(n)}")
        except metadata.PackageNotFoundError:
            out.append(n)
    return out


def package(folder, estimator, pipeline, train: ModelData, val: ModelData, cfg) -> tuple[Predictor, dict]:
    """Write the model's parts under `folder`; return its Predictor and the keyword arguments
    of `mlflow.pyfunc.save_model` / `log_model` (python_model, artifacts, signature, ...)."""
    predictor = Predictor(estimator, pipeline, train, val, cfg)
    artifacts = write_model_files(folder, predictor)
    return predictor, {
        "python_model": LikesModel(), "artifacts": artifacts, "signature": signature(),
        "pip_requirements": requirements(estimator, predictor.backend),
        "metadata": {"likepred": predictor.info | {"interval_level": LEVEL}},
    }


@contextmanager
def saving():
    """What MLflow does on every model save that is of no use here, turned off for the save:
    - its warnings about CloudPickle and a missing input example (the signature is explicit;
      the pickle is MLflow's own wrapper);
    - its check of the pinned requirements against this environment, which first maps every
      installed module to its distribution (~1 s with a few hundred packages): `requirements`
      read the pins from this same environment. Given an empty map, MLflow reads versions by
      name; the map is put back after the save, so other MLflow calls in the process still infer."""
    from mlflow.utils import requirements_utils

    quiet = logging.getLogger("mlflow.pyfunc")
    level, scanned = quiet.level, requirements_utils._MODULES_TO_PACKAGES
    quiet.setLevel(logging.ERROR)
    if scanned is None:
        requirements_utils._MODULES_TO_PACKAGES = {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example.*")
            yield
    finally:
        quiet.setLevel(level)
        if scanned is None:
            requirements_utils._MODULES_TO_PACKAGES = requirements_utils._PACKAGES_TO_MODULES = None


def save_pyfunc(path, estimator, pipeline, train: ModelData, val: ModelData, cfg) -> Predictor:
    """Write the packaged model (an MLflow model folder) to `path`; return its Predictor."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        predictor, kwargs = package(Path(tmp), estimator, pipeline, train, val, cfg)
        with saving():
            mlflow.pyfunc.save_model(str(path), **kwargs)
    return predictor
