"""Hydra callback: create the experiment (and a sweep's parent run) before any job starts,
so jobs only create their own runs (no SQLite race); summarise the sweep when it ends."""

from __future__ import annotations

from hydra.experimental.callback import Callback


class TrackingCallback(Callback):
    @staticmethod
    def _enabled(config):
        return bool(config.get("tracking")) and config.tracking.get("enabled", True)

    def on_multirun_start(self, config, **kwargs):
        if self._enabled(config):
            from likepred.tracking.sweep import start_sweep

            start_sweep(config)

    def on_multirun_end(self, config, **kwargs):
        if self._enabled(config):
            from likepred.tracking.sweep import end_sweep

            end_sweep(config)
