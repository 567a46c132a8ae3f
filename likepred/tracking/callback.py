"""Hydra callback: before Hydra makes the output dir, check that every folder the run writes is
writable (likepred.preflight); create the experiment (and a sweep's parent run) before any job
starts, so jobs only create their own runs; summarise the sweep when it ends."""

from __future__ import annotations

import sys

from hydra.experimental.callback import Callback


def _or_exit(step, *args):
    """step(*args); a LikepredError is one line and exit 2 (Hydra would turn it into a warning)."""
    from likepred.errors import LikepredError

    try:
        return step(*args)
    except LikepredError as e:  # SystemExit passes Hydra's callback wrapper by
        print(f"likepred: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


class TrackingCallback(Callback):
    @staticmethod
    def _enabled(config):
        return bool(config.get("tracking")) and config.tracking.get("enabled", True)

    def on_run_start(self, config, **kwargs):
        from likepred.preflight import check

        _or_exit(check, config, str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs):
        from likepred.preflight import check

        _or_exit(check, config, str(config.hydra.sweep.dir), "hydra.sweep.dir")
        from likepred.tracking.sweep import check_sweep

        _or_exit(check_sweep, config)
        if self._enabled(config):
            from likepred.tracking.sweep import start_sweep

            _or_exit(start_sweep, config)

    def on_multirun_end(self, config, **kwargs):
        if self._enabled(config):
            from likepred.tracking.sweep import end_sweep

            end_sweep(config)
