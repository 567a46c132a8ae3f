"""Your own models, features, readers and targets from your own package (docs/extending.md).

A plugin is a module that registers components when imported (`@likepred.models.register`,
`@likepred.features.register`, ...). It is named either by the run config's `plugins:
[pkg.module, ...]` or by an installed package's `likepred.plugins` entry point (in its
pyproject: `[project.entry-points."likepred.plugins"] NAME = "pkg.module"`). `load` imports
them at the start of every job process (likepred.runner.run_job: local, joblib, Ray, SLURM
workers), before the config check, as fairseq's `import_user_module` does.

A plugin package's `conf/` folder (beside its `__init__.py`) holds config groups like
likepred's own (`conf/model/NAME.yaml`, `conf/features/NAME.yaml`): an entry-point package's
joins Hydra's search path by itself (hydra_plugins/likepred_plugins/searchpath.py); a package
named only by `plugins:` adds it with `hydra.searchpath=[pkg://pkg/conf]`. `likepred.config.search.config_file`
finds a group's option on that same search path (ensemble members read theirs so).
"""

from __future__ import annotations

import importlib
import logging

from likepred.config.search import configured
from likepred.errors import ConfigError
from likepred.registry import TRUSTED_PLUGINS, entry_point_modules

log = logging.getLogger("likepred")
_loaded: set = set()


def load(cfg=None) -> list[str]:
    """Import every plugin module (once per process); return their names.

    A module that cannot be imported is one line naming it and why (exit 2 on the command line)."""
    names = configured(cfg)
    for name in names:
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            where = "plugins" if name not in entry_point_modules() else "the likepred.plugins entry point"
            raise ConfigError(f"{where}: cannot import {name!r} ({e}); is its package installed or on "
                              "PYTHONPATH in every job process?") from None
        TRUSTED_PLUGINS.add(name.split(".")[0])
        _loaded.add(name)
        log.debug("plugin %s imported", name)
    return names
