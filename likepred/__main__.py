"""`python -m likepred [overrides]`: see `--help`."""

import hydra

from likepred.runner import run_job


@hydra.main(version_base="1.3", config_path="pkg://likepred.conf", config_name="config")
def main(cfg):
    return run_job(cfg)


if __name__ == "__main__":
    main()
