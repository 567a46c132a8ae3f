"""likepred from Python: compose a config, run an experiment, list runs, load a model.

    from likepred import api

    result = api.run(["model=gbm", "data.n_users=40"], tracking_uri="sqlite:///mlruns/mlflow.db")
    result.metrics["test_mape"], result.intervals, result.run_id
    api.runs(tracking_uri="sqlite:///mlruns/mlflow.db")        # one row a run: params, metrics, tags
    predictor = api.load(result.run_id, tracking_uri=...)      # = result.predictor
    predictor.predict_likes(posts)                              # posts: the posts table's columns

The overrides are the command line's (`python -m likepred OVERRIDES`); the run is the same
(plugins imported, config checked, the MLflow run opened by likepred.tracking), except that an
error is raised (a `likepred.errors.LikepredError` for people) instead of exiting. Sweeps stay on
the command line (`--multirun`); run() in a loop is the Python way to a small one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

    from likepred.serving.predictor import Predictor

RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Result:
    """What `run` returns."""

    metrics: dict[str, float]
    """Every figure the run logged (test_mape, val_mape, baseline_user_mean_mape, ...)."""
    run_id: str | None
    """The MLflow run's id (None with tracking.enabled=false)."""
    config: Any
    """The composed config (a DictConfig) the run used."""
    predictor: Predictor | None = field(default=None, repr=False)
    """The fitted model with its pipeline, as `load` returns it (None when no model was logged)."""

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """{metric: (low, high)} for each metric logged with its 95% interval (`NAME_ci_low`,
        `NAME_ci_high`: a bootstrap over users, likepred.evaluation.intervals)."""
        low, high = "_ci_low", "_ci_high"
        return {key[:-len(low)]: (value, self.metrics[key[:-len(low)] + high])
                for key, value in self.metrics.items() if key.endswith(low) and key[:-len(low)] + high in self.metrics}


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The run config of `python -m likepred OVERRIDES` (likepred's packaged conf, the installed
    plugins' conf/, and `hydra.searchpath=[...]` when given), not yet checked."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # e.g. inside a Hydra app or a test's own context
        GlobalHydra.instance().clear()
    with initialize_config_module("likepred.conf", version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def run(overrides: Sequence[str] = (), tracking_uri: str | None = None) -> Result:
    """Run one experiment in this process; return its metrics, run id and fitted predictor.

    `tracking_uri` sets tracking.uri (default: the config's, sqlite:///mlruns/mlflow.db)."""
    from likepred.checks import check
    from likepred.plugins import load as load_plugins
    from likepred.tracking.run import open_run
    from likepred.train import train

    extra = [f"tracking.uri={tracking_uri}"] if tracking_uri else []
    cfg = compose([*overrides, *extra])
    load_plugins(cfg)
    check(cfg)
    with open_run(cfg) as run:
        metrics = train(cfg, run)
    run_id = run.run_id
    predictor = None
    if run_id and cfg.tracking.log_model:
        predictor = load(run_id, tracking_uri=cfg.tracking.uri)
    return Result({k: float(v) for k, v in metrics.items()}, run_id, cfg, predictor)


def runs(experiment: str | None = None, filter: str | None = None,  # noqa: A002 (MLflow's word)
         tracking_uri: str | None = None) -> pd.DataFrame:
    """The runs of `experiment` (default: likepred's, "likepred") as a DataFrame, newest first:
    one row a run, columns run_id, status, start_time, ..., `params.*`, `metrics.*` (intervals as
    `metrics.NAME_ci_low` / `_ci_high` where logged), `tags.*`. `filter` is MLflow's search syntax, e.g.
    "metrics.test_mape < 40 and params.`model.name` = 'gbm'"."""
    import mlflow

    from likepred.errors import ConfigError
    from likepred.registry import closest
    from likepred.stores import default_store
    from likepred.tracking.store import use_store

    uri = tracking_uri or default_store()
    use_store(uri)
    name = experiment or "likepred"
    if mlflow.get_experiment_by_name(name) is None:
        known = [e.name for e in mlflow.search_experiments()]
        raise ConfigError(f"experiment={name!r}: not in {uri}{closest(name, known)}; "
                          f"known: {', '.join(known) or 'none'}")
    return mlflow.search_runs(experiment_names=[name], filter_string=filter or "", output_format="pandas")


def compare(run_a: str, run_b: str, tracking_uri: str | None = None, n_boot: int = 1000, seed: int = 0,
            mature: bool = False) -> dict:
    """`likepred compare` in Python: two runs' (or cross-validation parents') test MAPE on the rows
    they share, paired over users. Returns {"a", "b", "diff": Interval(value, low, high), "p",
    "rows", "users", ...}; a difference whose interval holds 0 is a tie."""
    from mlflow.tracking import MlflowClient

    from likepred.commands.compare import compare_runs
    from likepred.stores import default_store
    from likepred.tracking.store import prepare_uri

    return compare_runs(MlflowClient(prepare_uri(tracking_uri or default_store())), run_a, run_b, n_boot, seed, mature)


def load(run_or_model_uri: str, tracking_uri: str | None = None, trust_pickle: bool = False,
         plugins: Sequence[str] = ()) -> Predictor:
    """The fitted predictor of a run id, `runs:/ID/model`, `models:/NAME/VERSION` or a model folder
    (as `likepred-predict --model`). The installed plugins (entry points) and `plugins` (modules, as
    the run's `plugins` key) are imported first, so a model that uses a plugin's classes loads
    (without pickle, when the plugin's estimator has save/load)."""
    from likepred.plugins import load as load_plugins
    from likepred.commands.predict import load_model

    load_plugins({"plugins": list(plugins)})
    uri = f"runs:/{run_or_model_uri}/model" if RUN_ID.fullmatch(run_or_model_uri) else run_or_model_uri
    return load_model(uri, tracking_uri, trust_pickle)
