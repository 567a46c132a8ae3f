"""`hydra/launcher=ray`: each job of a multirun is a Ray task, on a local Ray or a cluster.

hydra-ray-launcher 1.2.2 does not work with current Ray; this is the part of it likepred needs,
on Ray's public API (ray.init, ray.remote, ray.get).
"""

from typing import Any, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class RayLauncher(Launcher):
    def __init__(self, ray: Any = None) -> None:
        cfg = OmegaConf.to_container(ray, resolve=True) if isinstance(ray, DictConfig) else dict(ray or {})
        self.init = dict(cfg.get("init") or {})
        self.remote = dict(cfg.get("remote") or {})
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def parallelism(self) -> int:
        """Jobs the cluster runs at once: its CPUs over each job's num_cpus (sweepers size batches by it)."""
        from ._ray_core import parallelism

        return parallelism(self)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ._ray_core import launch

        return launch(self, job_overrides, initial_job_idx)
