"""`python -m likepred [overrides]`: the Hydra app; the command around it (fast --help, one-line
errors, Ctrl-C) is likepred/commands/train.py."""

import hydra

import likepred.config  # noqa: F401 - its resolvers (${likepred.pid:}) before Hydra composes
from likepred.backend import quiet_logs
from likepred.runner import run_job

quiet_logs()  # before MLflow or JAX is imported: their INFO lines are noise by default


@hydra.main(version_base="1.3", config_path="pkg://likepred.conf", config_name="config")
def app(cfg):
    return run_job(cfg)


def main():
    from likepred.commands.train import main as command

    command(app)


if __name__ == "__main__":
    main()
