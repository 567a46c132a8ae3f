"""Quality table: every metadata model and baseline, split=chrono and split=user.

    python benchmarks/quality.py DATA_DIR [--source profiles|study_csv|synthetic] [extra overrides...]

Prints one table (MAPE all/mature, MdAPE, RMSE log, within-user Spearman, and the
leak-free baselines on the same rows). Nothing is logged to MLflow.
"""

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
from hydra import compose, initialize_config_dir  # noqa: E402

from likepred.train import train  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "likepred" / "conf")
MODELS = ["dense_meta", "gbm", "user_mean", "user_median", "best_constant", "lognormal_constant"]
COLS = [("MAPE", "test_mape"), ("MAPE mat", "test_mape_mature"), ("MdAPE", "test_mdape"),
        ("RMSE log", "test_rmse_log"), ("Spearman/u", "test_spearman_within_user"),
        ("bl mean", "baseline_user_mean_mape"), ("bl best c", "baseline_best_constant_mape"),
        ("bl best c mat", "baseline_best_constant_mape_mature"), ("val MAPE", "val_mape")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", help="profiles folder (or CSV); omit for synthetic data")
    ap.add_argument("--source", default="profiles")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--splits", default="chrono,user")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    a = ap.parse_intermixed_args()
    data = [f"data={a.source}", f"data.path={a.data_dir}"] if a.data_dir else ["data=synthetic"]
    print(f"{'split':7}{'model':15}" + "".join(f"{c:>14}" for c, _ in COLS))
    for split in a.splits.split(","):
        for model in a.models.split(","):
            with initialize_config_dir(config_dir=CONF, version_base="1.3"):
                cfg = compose("config", overrides=data + [f"split={split}", f"model={model}",
                                                          "tracking.enabled=false", "trainer.verbose=0", *a.overrides])
            with contextlib.redirect_stdout(io.StringIO()):
                m = train(cfg)
            print(f"{split:7}{model:15}" + "".join(f"{m.get(k, float('nan')):14.3f}" for _, k in COLS), flush=True)


if __name__ == "__main__":
    sys.exit(main())
