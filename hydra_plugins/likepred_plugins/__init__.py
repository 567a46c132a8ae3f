"""likepred's Hydra plugins: `hydra/launcher=ray` (jobs as Ray tasks) and
`hydra/sweeper=likepred_optuna` (Optuna >= 4 with a persistent, shareable study).

Hydra imports every module here when it scans for plugins, so these modules import neither
ray nor optuna at the top; the work is in the `_core` modules, which the scanner skips.
"""
