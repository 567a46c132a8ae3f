"""`hydra/sweeper=likepred_optuna`: an Optuna (>= 4) search whose study lives in a storage.

hydra-optuna-sweeper pins optuna 2.10, whose database storage fails beside MLflow 3; this
sweeper keeps its config shape (params, n_trials, direction, storage, study_name, sampler)
and adds what a long search needs: resume after a kill, several workers on one study,
batches of the launcher's parallelism, and pruning of trials that report per epoch.
"""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    def __init__(self, sampler: Any = None, pruner: Any = None, direction: Any = "minimize",
                 storage: Optional[str] = None, study_name: Optional[str] = None, n_trials: int = 20,
                 n_jobs: Optional[int] = None, max_failure_rate: float = 1.0, heartbeat_interval: float = 10.0,
                 grace_period: Optional[float] = None, params: Optional[DictConfig] = None) -> None:
        self.settings = dict(sampler=sampler, pruner=pruner, direction=direction, storage=storage,
                             study_name=study_name, n_trials=n_trials, n_jobs=n_jobs,
                             max_failure_rate=max_failure_rate, heartbeat_interval=heartbeat_interval,
                             grace_period=grace_period, params=params)
        self.config = self.hydra_context = self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: List[str]) -> None:
        from ._optuna_core import sweep

        return sweep(self, arguments)
