"""Hydra's task around `train`: config checks, the job's MLflow run (opened here, handed to
`train`), failures, resume, thread caps."""

from __future__ import annotations

import errno
import logging
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from likepred.errors import LikepredError

log = logging.getLogger("likepred")
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the disk, not the code: one line, exit 2


def run_job(cfg: DictConfig):
    """Train inside the job's MLflow run; return the optimised metric.

    The one owner of failure handling. The config is checked first (a typo costs seconds, not
    a data load). In a sweep a failing job ends its run FAILED (error tag, traceback artifact)
    and returns None, so the other jobs go on, a sweeper records the trial as failed, and the
    sweep exits 1 at its end naming the job. A finished job with the same config is skipped
    (resume). Alone, a LikepredError is one line for people, not a traceback.
    """
    from likepred.checks import check
    from likepred.plugins import load as load_plugins
    from likepred.tracking.run import open_run
    from likepred.tracking.sweep import current_job, prepare_job, reuse_finished, score
    from likepred.tracking.trial import Pruned
    from likepred.train import train

    job = current_job()
    try:
        load_plugins(cfg)  # the user's models, features, readers: before anything looks them up
        if job is None:
            check(cfg)
        else:
            prepare_job(cfg, job)
            done, value = reuse_finished(cfg, job)
            if done:
                return value
        with open_run(cfg, job) as run:  # the one owner of the job's MLflow run
            if job is not None:
                check(cfg)  # inside the run: the sweep's summary lists the job as FAILED
            metrics = train(cfg, run)
    except Pruned as e:  # an Optuna trial stopped early: not a failure
        log.info("job #%s: %s", job.num if job else "-", e)
        return None
    except LikepredError as e:
        if job is not None:
            log.error("job #%s: %s", job.num, e)
            return None
        print(f"likepred: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full, read-only or over-quota disk: one line naming the file
        if e.errno not in FULL:
            if job is None:
                raise
            log.exception("job #%s failed", job.num)
            return None
        line = (f"{e.filename2 or e.filename or 'a file'}: {e.strerror}; free some space (or point the option "
                "that names this folder elsewhere) and run again")  # a copy's destination is the full one
        if job is not None:  # its run ended FAILED with the error; the sweep's end names the job
            log.error("job #%s: %s", job.num, line)
            return None
        print(f"likepred: error: {line}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        if job is None:
            raise
        log.exception("job #%s failed", job.num)
        return None
    return score(metrics, cfg.optimized_metric)


# ---- a sweep's check, before its parent run exists (a Hydra callback listed before tracking's)

class SweepCheck(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks.checks): refuse a multirun that would
    run nothing or whose every job would fail the config check, before any run is created."""

    def on_multirun_start(self, config, **kwargs):
        from likepred.tracking.callback import or_exit

        or_exit(check_sweep, config)


def check_sweep(config):
    """Refuse, before the parent run exists, a sweep that would run nothing, and one whose jobs
    would all fail the config check (a mistyped `data.path`, a missing extra), each leaving a
    FAILED run. The first and the last job are checked: a setting that fails both is not one of
    the swept values, so every job would fail; a bad swept value fails only its own jobs."""
    from likepred.errors import ConfigError, LikepredError

    n = (config.hydra.get("sweeper") or {}).get("n_trials")
    if isinstance(n, (int, float)) and n < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n}: must be >= 1 (the sweep would run nothing)")
    launcher = config.hydra.get("launcher") or {}
    n_jobs = launcher.get("n_jobs")
    if str(launcher.get("_target_", "")).endswith("JoblibLauncher") and n_jobs is not None and (
            isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        raise ConfigError(f"hydra.launcher.n_jobs={n_jobs!r}: must be a whole number of parallel jobs, not 0 "
                          "(-1: all cores, -2: all but one)")
    try:
        _check_job(job_config(config, 0))
    except LikepredError as first:
        if job_overrides(config, -1) != job_overrides(config, 0) and _passes(job_config(config, -1)):
            return  # a bad swept value: its jobs end FAILED in their own runs, the others go on
        raise first from None


def _passes(cfg) -> bool:
    from likepred.errors import LikepredError

    try:
        _check_job(cfg)
    except LikepredError:
        return False
    return True


def _check_job(cfg):
    if cfg is None:
        return
    from likepred.checks import check
    from likepred.plugins import load as load_plugins

    load_plugins(cfg)
    check(cfg)


def job_overrides(config, which: int = 0) -> list:
    """The overrides of the sweep's first (`which=0`) or last (-1) job, as far as they can be told
    before the sweeper runs: every fixed override, and the first or last value of each discrete
    sweep (`a,b`, `choice(...)`, `range(...)`, `glob(...)`, on the command line or in
    `hydra.sweeper.params`); a key swept over an interval keeps its configured value."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = (config.hydra.get("sweeper") or {}).get("params") or {}
    given = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    out = {}
    for text, o in zip(given, OverridesParser.create(config_loader=loader).parse_overrides(given)):
        if not o.is_sweep_override():
            out[o.key_or_group] = text
            continue
        out.pop(o.key_or_group, None)
        if o.is_discrete_sweep():
            values = list(o.sweep_string_iterator())
            if values:
                out[o.key_or_group] = f"{o.get_key_element()}={values[which]}"
    return list(out.values())


def job_config(config, which: int = 0):
    """The first (`which=0`) or last (-1) job's config as Hydra composes a job's, or None where it
    cannot be told here (outside Hydra's app, or a sweep value Hydra itself refuses in the job)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    if not GlobalHydra.instance().is_initialized():
        return None
    try:
        job = GlobalHydra.instance().config_loader().load_sweep_config(config, job_overrides(config, which))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError, IndexError):
        return None  # the job meets it and says so itself
    with read_write(job), open_dict(job):  # the task's config, as Hydra hands it to the job
        del job["hydra"]
    return job
