"""Hydra's task around `train`: config checks, the job's MLflow run (opened here, handed to
`train`), failures, resume, thread caps."""

from __future__ import annotations

import errno
import logging
import sys

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
        if job is not None or e.errno not in FULL:
            if job is None:
                raise
            log.exception("job #%s failed", job.num)
            return None
        print(f"likepred: error: {e.filename or 'a file'}: {e.strerror}; free some space (or point the option "
              "that names this folder elsewhere) and run again",
              file=sys.stderr)
        sys.exit(2)
    except Exception:
        if job is None:
            raise
        log.exception("job #%s failed", job.num)
        return None
    return score(metrics, cfg.optimized_metric)
