"""Quality table: presets and models beside a LightGBM peer and the leak-free baselines, per seed.

    python benchmarks/quality.py DATA_DIR [--runs dense_meta,gbm,cold_start,...] [--seeds 0,1,2]
                                          [--splits chrono,user] [--source profiles] [overrides...]

Every row is one run on one split and seed (test rows; the split's seed draws the users under
`split=user`), with on the same rows: `bl mean` / `bl best c` (the leak-free baselines) and
`peer` (issue 14's 20-line recipe: likes / followers as target, L1 with weight 1/y, i.e. MAPE,
on log followers, following, posts, weekday, hour, tag, mention and caption counts; 7 leaves,
>= 500 rows a leaf, 300 trees at lr 0.03; LightGBM from the `bench` extra, else scikit-learn's
HistGradientBoosting with the same settings, named in the output). `peer cal` is the peer times
the MAPE-optimal multiplier fitted on val rows, as likepred calibrates. A `mean` row follows each
run's seeds. Model choices are made on `val MAPE` (before calibration), never on test columns.
Nothing is logged to MLflow.
"""

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
from hydra import compose, initialize_config_dir  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "likepred" / "conf")
# name: (overrides, splits it runs on; None: every split asked for)
RUNS = {
    "dense_meta": (["model=dense_meta"], None),
    "gbm": (["model=gbm"], None),
    "ensemble": (["model=ensemble"], None),
    "best_constant": (["model=best_constant"], None),
    "lognormal_constant": (["model=lognormal_constant"], None),
    "profiles_fast": (["+experiment=profiles_fast"], ("chrono",)),
    "cold_start": (["+experiment=cold_start"], ("user",)),
    "profiles_best": (["+experiment=profiles_best"], None),  # needs the `text` extra (~12 min a run)
}
DEFAULT_RUNS = "dense_meta,gbm,lognormal_constant,profiles_fast,cold_start"
COLS = [("MAPE", "test_mape"), ("mature", "test_mape_mature"), ("MdAPE", "test_mdape"),
        ("RMSE log", "test_rmse_log"), ("Sp/user", "test_spearman_within_user"),
        ("bl mean", "baseline_user_mean_mape"), ("bl best c", "baseline_best_constant_mape"),
        ("bl bc mat", "baseline_best_constant_mape_mature"), ("peer", "peer_mape"),
        ("peer mat", "peer_mape_mature"), ("peer cal", "peer_cal_mape"), ("peer cal mat", "peer_cal_mape_mature"),
        ("val MAPE", "val_mape"), ("s", "seconds")]


def peer_features(posts):
    d = posts["date"]
    return np.column_stack([
        np.log1p(posts["followers"].to_numpy(float)), np.log1p(posts["following"].to_numpy(float)),
        np.log1p(posts["posts_count"].to_numpy(float)), d.dt.day_of_week.to_numpy(float), d.dt.hour.to_numpy(float),
        posts["tags"].map(len).to_numpy(float), posts["mentions"].map(len).to_numpy(float),
        posts["caption"].map(len).to_numpy(float),
    ])


def peer_regressor(seed):
    try:
        import lightgbm

        return "lightgbm", lightgbm.LGBMRegressor(objective="l1", num_leaves=7, min_child_samples=500,
                                                  n_estimators=300, learning_rate=0.03, random_state=seed,
                                                  verbose=-1, n_jobs=2)
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return "sklearn-hgb", HistGradientBoostingRegressor(
            loss="absolute_error", max_leaf_nodes=7, min_samples_leaf=500, max_iter=300, learning_rate=0.03,
            early_stopping=False, random_state=seed)


def peer(cfg):
    """The peer's test metrics on the rows this config's split gives (raw, and calibrated on val)."""
    from likepred.data import load_dataset
    from likepred.evaluation import evaluate
    from likepred.pipeline import mape_optimal_scale
    from likepred.split import make_split

    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    train, val, test = rows(split.train), rows(split.val), rows(split.test)
    followers = lambda p: np.maximum(p["followers"].to_numpy(float), 1.0)  # noqa: E731
    y = train["likes"].to_numpy(float) / followers(train)
    kind, reg = peer_regressor(int(cfg.seed))
    reg.fit(peer_features(train), y, sample_weight=1.0 / y)
    likes = lambda p: np.maximum(reg.predict(peer_features(p)), 1e-9) * followers(p)  # noqa: E731
    scale = mape_optimal_scale(likes(val), val["likes"]) if len(val) else 1.0
    out = {"peer_kind": kind}
    for name, s in (("peer", 1.0), ("peer_cal", scale)):
        m, _ = evaluate(test, {"model": likes(test) * s}, data.scrape_date, cfg.evaluate.mature_days)
        out |= {f"{name}_mape": m["test_mape"], f"{name}_mape_mature": m.get("test_mape_mature", np.nan)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", help="profiles folder (or CSV); omit for synthetic data")
    ap.add_argument("--source", default="profiles")
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated, from: {', '.join(RUNS)}")
    ap.add_argument("--splits", default="chrono,user")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    a = ap.parse_intermixed_args()
    from likepred.train import train

    data = [f"data={a.source}", f"data.path={a.data_dir}"] if a.data_dir else ["data=synthetic"]
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"{'split':7}{'run':19}{'seed':>5}" + "".join(f"{c:>13}" for c, _ in COLS))
    peers = {}
    for split in a.splits.split(","):
        for run in a.runs.split(","):
            overrides, splits = RUNS[run]
            if splits is not None and split not in splits:
                continue
            rows = []
            for seed in seeds:
                with initialize_config_dir(config_dir=CONF, version_base="1.3"):
                    cfg = compose("config", overrides=data + [f"split={split}", *overrides, f"seed={seed}",
                                                              "tracking.enabled=false", "trainer.verbose=0",
                                                              *a.overrides])
                if (split, seed) not in peers:
                    peers[split, seed] = peer(cfg)
                t = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    m = train(cfg)
                m = m | peers[split, seed] | {"seconds": time.perf_counter() - t}
                rows.append(m)
                print(f"{split:7}{run:19}{seed:>5}" + "".join(f"{m.get(k, np.nan):13.3f}" for _, k in COLS), flush=True)
            if len(rows) > 1:
                print(f"{split:7}{run:19}{'mean':>5}" + "".join(
                    f"{np.nanmean([r.get(k, np.nan) for r in rows]):13.3f}" for _, k in COLS), flush=True)
    kinds = {p["peer_kind"] for p in peers.values()}
    print(f"peer: {', '.join(sorted(kinds))}")


if __name__ == "__main__":
    sys.exit(main())
