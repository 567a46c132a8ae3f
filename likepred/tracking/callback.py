"""Hydra callback: before Hydra makes the output dir, check that every folder the run writes is
writable (likepred.preflight); create the experiment (and a sweep's parent run) before any job
starts, so jobs only create their own runs; summarise the sweep when it ends."""

from __future__ import annotations

import errno
import sys

from hydra.experimental.callback import Callback


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the disk, not the code: one line, exit 2


def or_exit(step, *args):
    """step(*args); a LikepredError, or a full or read-only disk, is one line and exit 2 (Hydra
    would turn any exception into a warning and exit 0); an open sweep parent ends FAILED saying why."""
    from likepred.errors import LikepredError

    try:
        return step(*args)
    except LikepredError as e:  # SystemExit passes Hydra's callback wrapper by
        print(f"likepred: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except OSError as e:
        if e.errno not in FULL:
            raise
        path = e.filename2 or e.filename or "a file"  # a copy's destination is the full one
        line = f"{path}: {e.strerror}; free some space (or point the option that names this folder elsewhere)"
        print(f"likepred: error: {line} and run again", file=sys.stderr, flush=True)
        from likepred.tracking.sweep import close_open_parents

        try:
            close_open_parents("FAILED", line)
        except Exception:  # noqa: BLE001 - the store may sit on the same full disk: the line above says it
            pass
        sys.exit(2)


class TrackingCallback(Callback):
    @staticmethod
    def _enabled(config):
        return bool(config.get("tracking")) and config.tracking.get("enabled", True)

    def on_run_start(self, config, **kwargs):
        from likepred.preflight import check

        or_exit(check, config, str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs):
        from likepred.preflight import check

        or_exit(check, config, str(config.hydra.sweep.dir), "hydra.sweep.dir")
        if self._enabled(config):
            from likepred.tracking.sweep import start_sweep

            or_exit(start_sweep, config)

    def on_multirun_end(self, config, **kwargs):
        if self._enabled(config):
            from likepred.tracking.sweep import close_open_parents, end_sweep

            try:
                or_exit(end_sweep, config)
            except Exception as e:  # noqa: BLE001 - Hydra would make it a warning and exit 0
                line = f"the sweep's summary failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                close_open_parents("FAILED", line)
                print(f"likepred: error: {line}; its jobs' runs are in the store", file=sys.stderr, flush=True)
                sys.exit(1)
