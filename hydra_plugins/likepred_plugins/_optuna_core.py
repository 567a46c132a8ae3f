"""The Optuna sweeper's work (optuna is imported here only, when a search runs).

A study is "full" when it holds n_trials trials that count: finished, pruned, running (in
this worker or another one) or failed by their job. Trials of a killed sweep stay RUNNING in
the storage; every worker marks its running trials with a heartbeat, and a RUNNING trial
whose heartbeat is older than the grace period is marked FAIL (it does not count, so the
search runs another trial in its place). Several workers share a study safely: the storage
numbers trials atomically, and a trial asked beyond n_trials is failed at once as surplus.
"""

import logging
import os
import threading
import time
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Transformer
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from likepred.tracking import trial as job_side

log = logging.getLogger(__name__)

HEARTBEAT = "likepred:heartbeat"    # system attr: when this trial's sweep last said it runs
JOB_FAILED = "likepred:job_failed"  # user attr: failed by its job (counts towards n_trials)
SURPLUS = "likepred:surplus"        # user attr: asked beyond n_trials by a concurrent worker


# ---- search space: Hydra's sweep syntax to Optuna distributions

def distribution(override):
    """choice(...) -> categorical; range(a,b[,s]) -> int (or categorical if shuffled or float);
    interval(a,b) -> float or int; tag(log, interval(a,b)) -> log scale; a plain value stays fixed."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and (value.shuffle or any(
            isinstance(v, float) for v in (value.start, value.stop, value.step)))):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():  # Hydra's range excludes its stop, Optuna's high is included
        step = int(value.step)
        return IntDistribution(int(value.start), int(value.stop) - step, step=step)
    if override.is_interval_sweep():
        lo, hi, logscale = value.start, value.end, "log" in value.tags
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=logscale)
        return FloatDistribution(float(lo), float(hi), log=logscale)
    raise ValueError(f"{override.input_line}: not a sweep the Optuna sweeper understands")


def search_space(arguments):
    space, fixed = {}, {}
    for o in OverridesParser.create().parse_overrides(arguments):
        d = distribution(o)
        if isinstance(d, str):
            fixed[o.get_key_element()] = d
        else:
            space[o.get_key_element()] = d
    for key in fixed:
        space.pop(key, None)  # the command line fixes what the config would search
    return space, fixed


# ---- heartbeats and stale trials

class Heartbeat:
    """Marks this worker's running trials every `interval` seconds, in a thread."""

    def __init__(self, storage, interval):
        self.storage, self.interval, self.ids = storage, float(interval), set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="optuna-heartbeat")

    def add(self, trial_id):
        self.ids.add(trial_id)
        self._beat(trial_id)

    def _beat(self, trial_id):
        try:
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
        except Exception:  # finished meanwhile (told, or failed as stale by another worker)
            self.ids.discard(trial_id)

    def _run(self):
        while not self._stop.wait(self.interval):
            for trial_id in list(self.ids):
                self._beat(trial_id)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


def fail_stale(study, storage, grace, mine):
    """Mark FAIL the RUNNING trials whose sweep stopped beating (killed): resume starts here."""
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = t.system_attrs.get(HEARTBEAT) or (t.datetime_start.timestamp() if t.datetime_start else now)
        if t._trial_id in mine or now - last <= grace:
            continue
        try:
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            log.warning("Optuna trial %d was RUNNING with no heartbeat for %.0f s (its sweep was killed): "
                        "marked FAIL, another trial runs in its place", t.number, now - last)
        except Exception:  # another worker marked it first
            pass


def counted(study):
    def counts(t):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
            return True
        return t.state == TrialState.FAIL and t.user_attrs.get(JOB_FAILED, False)
    return sorted(t.number for t in study.get_trials(deepcopy=False) if counts(t))


# ---- the search

def parallelism(sweeper) -> int:
    """Trials per batch: hydra.sweeper.n_jobs, else what the launcher runs at once."""
    if sweeper.settings["n_jobs"]:
        return int(sweeper.settings["n_jobs"])
    own = getattr(sweeper.launcher, "parallelism", None)
    if callable(own):
        return own()
    launcher = sweeper.config.hydra.launcher
    n = launcher.get("n_jobs")  # joblib
    if n:
        return int(n) if int(n) > 0 else max(1, len(os.sched_getaffinity(0)) + 1 + int(n))
    return int(launcher.get("array_parallelism") or 1)  # submitit; the basic launcher: 1


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _built(node):
    """Hydra instantiates the sweeper's nested _target_ nodes itself; a plain dict still needs it."""
    return instantiate(node) if isinstance(node, dict) or OmegaConf.is_dict(node) else node


def sweep(sweeper, arguments):
    s = sweeper.settings
    params = OmegaConf.to_container(s["params"], resolve=True) if s["params"] is not None else {}
    space, fixed = search_space([f"{k}={v}" for k, v in (params or {}).items()] + list(arguments))
    storage = job_side.open_storage(s["storage"]) or optuna.storages.InMemoryStorage()
    directions = list(s["direction"]) if isinstance(s["direction"], (list, tuple)) or OmegaConf.is_list(
        s["direction"]) else [s["direction"]]
    study = optuna.create_study(
        storage=storage, study_name=s["study_name"], directions=directions, load_if_exists=True,
        sampler=_built(s["sampler"]), pruner=_built(s["pruner"]) or optuna.pruners.NopPruner())
    job_side._in_memory[study.study_name] = storage
    n_trials, batch = int(s["n_trials"]), parallelism(sweeper)
    grace = float(s["grace_period"] or 3 * s["heartbeat_interval"])
    log.info("Optuna study %r in %s: %d trials there, n_trials=%d, batches of %d, sampler %s, pruner %s",
             study.study_name, s["storage"] or "memory", len(study.trials), n_trials, batch,
             type(study.sampler).__name__, type(study.pruner).__name__)
    job_idx = 0
    with Heartbeat(storage, s["heartbeat_interval"]) as beat:
        while True:
            fail_stale(study, storage, grace, beat.ids)
            todo = n_trials - len(counted(study))
            if todo <= 0:
                break
            trials = []
            for _ in range(min(todo, batch)):
                t = study.ask(space)
                beat.add(t._trial_id)
                if counted(study).index(t.number) >= n_trials:  # a concurrent worker filled the study
                    t.set_user_attr(SURPLUS, True)
                    study.tell(t, state=TrialState.FAIL)
                    beat.ids.discard(t._trial_id)
                    break
                trials.append(t)
            if not trials:
                continue
            overrides = [tuple(f"{k}={v}" for k, v in {**t.params, **fixed}.items())
                         + (f"++hydra.job.env_set.{job_side.STUDY_ENV}={_quote(study.study_name)}",
                            f"++hydra.job.env_set.{job_side.TRIAL_ENV}={t._trial_id}") for t in trials]
            returns = sweeper.launcher.launch(overrides, initial_job_idx=job_idx)
            job_idx += len(returns)
            failures = [t.number for t, r in zip(trials, returns) if not tell(study, storage, t, r)]
            beat.ids.difference_update(t._trial_id for t in trials)
            if len(failures) / len(trials) > s["max_failure_rate"]:
                raise RuntimeError(f"Optuna trials {failures} failed: more than hydra.sweeper.max_failure_rate="
                                   f"{s['max_failure_rate']} of the batch")
    write_results(study, Path(str(sweeper.config.hydra.sweep.dir)))
    log_study_plots(study, Path(str(sweeper.config.hydra.sweep.dir)))


def tell(study, storage, trial, ret) -> bool:
    """Record a job's result on its trial; False when the trial failed."""
    try:
        value = ret.return_value  # raises the job's exception if it failed outside likepred's runner
    except Exception as e:
        value = None
        log.warning("Failed experiment: trial %d raised %s", trial.number, e)
    if value is not None:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        study.tell(trial, [float(v) for v in values], skip_if_finished=True)
        return True
    if storage.get_trial(trial._trial_id).user_attrs.get(job_side.PRUNED_ATTR) is not None:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        log.info("Optuna trial %d pruned", trial.number)
        return True
    trial.set_user_attr(JOB_FAILED, True)
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    log.warning("Failed experiment: trial %d (its job returned no value)", trial.number)
    return False


def write_results(study, sweep_dir):
    """optimization_results.yaml in the sweep dir, as hydra-optuna-sweeper writes it."""
    try:
        best = study.best_trial if len(study.directions) == 1 else None
    except ValueError:  # no finished trial
        best = None
    results = {"name": "optuna", "study_name": study.study_name,
               "best_params": best.params if best else None, "best_value": best.value if best else None}
    if len(study.directions) > 1:
        results["best_trials"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
    shown = {k: v for k, v in results.items() if k != "best_trials"}  # for people: 4 significant digits
    shown["best_params"] = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in (best.params if best else {}).items()}
    shown["best_value"] = f"{best.value:.4g}" if best else None
    log.info("Best trial: %s (full values in %s)", shown, sweep_dir / "optimization_results.yaml")


def log_study_plots(study, sweep_dir):
    """Optuna's own matplotlib figures of the study, logged to the sweep's parent run under
    `optuna/`: optimization_history.png and, with 2+ finished trials, param_importances.png (which
    parameters explain the objective; fANOVA). Nothing without a tracked parent run."""
    import json
    import tempfile
    import warnings

    from likepred.tracking.keys import SWEEP_FILE

    info_path = sweep_dir / SWEEP_FILE
    if not info_path.exists() or len(study.directions) > 1:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient
    from optuna.visualization import matplotlib as ovm

    info = json.loads(info_path.read_text())
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    plots = {"optimization_history.png": ovm.plot_optimization_history}
    if len(done) >= 2 and len({k for t in done for k in t.params}) >= 1:
        plots["param_importances.png"] = ovm.plot_param_importances
    with tempfile.TemporaryDirectory() as tmp:
        for name, plot in plots.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ExperimentalWarning: the matplotlib backend is "experimental"
                    ax = plot(study)
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                fig.set_size_inches(7, 4)
                fig.tight_layout()
                fig.savefig(Path(tmp) / name, dpi=100)
                plt.close(fig)
            except (ValueError, RuntimeError, ImportError) as e:  # e.g. one value for every trial: no importance
                log.warning("Optuna %s not drawn: %s", name, e)
        if any(Path(tmp).iterdir()):
            MlflowClient(info["tracking_uri"]).log_artifacts(info["parent_run_id"], tmp, "optuna")
