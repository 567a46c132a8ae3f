"""Quality table: presets and models beside LightGBM peers and the leak-free baselines, cross-validated.

    python benchmarks/quality.py DATA_DIR [--runs profiles_fast,cold_start,...] [--folds 5] [--seeds 0]
                                          [--splits chrono,user] [--source profiles] [overrides...]

Each run is cross-validated (split.folds=K, likepred/split.py: `user` folds of users, so every
user is tested once; `chrono` rolling origin within each user's timeline). One row per fold
(test rows of that fold: MAPE with its 95% interval over users, the baselines and the peer on
the same rows, val MAPE), then a `pooled` row over every fold's test rows: MAPE with its
interval, and the paired differences (model - other, 95% interval, bootstrap over users) against
the best constant, the user mean and the peer (raw and calibrated on val) on the same rows.
`*` marks a difference whose interval excludes 0; any other is a tie.

Peers (LightGBM from the `bench` extra, else scikit-learn's HistGradientBoosting, named in the output):
- `split=user` (cold start): issue 14's recipe: likes / followers as target, L1 with weight 1/y,
  on log followers, following, posts, weekday, hour, tag, mention and caption counts; 7 leaves,
  >= 500 rows a leaf, 300 trees at lr 0.03.
- `split=chrono` / `random` (users seen in training): issue 19's recipe with per-user history:
  target = likes / the user's leave-one-out geometric mean of train likes (test and val rows: of
  all the user's train likes), features = the 8 above + the user's leave-one-out mean, sd and
  count of log likes; L1 with weight 1/target, 500 trees, lr 0.03, 15 leaves, >= 40 rows a leaf,
  bagging 0.8 every round, feature fraction 0.8, L2 1.0.
`peer cal` is the peer times the MAPE-optimal multiplier fitted on val rows, as likepred
calibrates. Model choices are made on `val MAPE` (fold means, before calibration), never on test
columns. Nothing is logged to MLflow.
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
DEFAULT_RUNS = "profiles_fast,cold_start,best_constant"
COLS = [("MAPE", "test_mape"), ("95% CI", None), ("mature", "test_mape_mature"),
        ("bl mean", "baseline_user_mean_mape"), ("bl best c", "baseline_best_constant_mape"),
        ("peer", "baseline_peer_mape"), ("peer cal", "baseline_peer_cal_mape"), ("val MAPE", "val_mape"),
        ("s", "seconds")]
OTHERS = [("best c", "best_constant"), ("user mean", "user_mean"), ("peer", "peer"), ("peer cal", "peer_cal")]
KEYS = ["alias", "post_index", "date"]


def peer_features(posts):
    d = posts["date"]
    return np.column_stack([
        np.log1p(posts["followers"].to_numpy(float)), np.log1p(posts["following"].to_numpy(float)),
        np.log1p(posts["posts_count"].to_numpy(float)), d.dt.day_of_week.to_numpy(float), d.dt.hour.to_numpy(float),
        posts["tags"].map(len).to_numpy(float), posts["mentions"].map(len).to_numpy(float),
        posts["caption"].map(len).to_numpy(float),
    ])


def peer_regressor(seed, history: bool):
    if history:
        params = dict(num_leaves=15, min_child_samples=40, n_estimators=500, learning_rate=0.03, subsample=0.8,
                      subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0)
        hgb = dict(max_leaf_nodes=15, min_samples_leaf=40, max_iter=500, learning_rate=0.03, l2_regularization=1.0)
    else:
        params = dict(num_leaves=7, min_child_samples=500, n_estimators=300, learning_rate=0.03)
        hgb = dict(max_leaf_nodes=7, min_samples_leaf=500, max_iter=300, learning_rate=0.03)
    try:
        import lightgbm

        return "lightgbm", lightgbm.LGBMRegressor(objective="l1", random_state=seed, verbose=-1, n_jobs=2, **params)
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return "sklearn-hgb", HistGradientBoostingRegressor(loss="absolute_error", early_stopping=False,
                                                            random_state=seed, **hgb)


def history(train, rows, own: bool):
    """Per row of `rows`: the mean, sd and count of log likes of the user's train posts (own: rows
    are the train rows, each left out of its own statistics), and the geometric mean they give
    (the train rows' overall one where the user has no other train post)."""
    import pandas as pd

    logl = np.log(train["likes"].to_numpy(float))
    by = pd.DataFrame({"u": train["alias"].to_numpy(), "x": logl, "xx": logl ** 2}).groupby("u")
    sums = by.agg(n=("x", "size"), s=("x", "sum"), ss=("xx", "sum"))
    st = sums.reindex(rows["alias"].to_numpy()).fillna(0.0).to_numpy()
    n, s1, s2 = st[:, 0], st[:, 1], st[:, 2]
    if own:
        x = np.log(rows["likes"].to_numpy(float))
        n, s1, s2 = n - 1, s1 - x, s2 - x ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / n, np.nan)
        sd = np.where(n > 1, np.sqrt(np.maximum(s2 - n * mean ** 2, 0) / (n - 1)), np.nan)
    base = np.exp(np.where(n > 0, mean, logl.mean()))
    return np.column_stack([mean, sd, n]), base


def peer(cfg):
    """The peer's predictions (raw, and calibrated on val) on the test rows this config's split gives."""
    from likepred.data import load_dataset
    from likepred.pipeline import mape_optimal_scale
    from likepred.split import make_split

    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    train, val, test = rows(split.train), rows(split.val), rows(split.test)
    with_history = cfg.split.kind != "user"
    if with_history:
        def inputs(p, own=False):
            stats, base = history(train, p, own)
            return np.column_stack([peer_features(p), stats]), base
    else:
        def inputs(p, own=False):
            return peer_features(p), np.maximum(p["followers"].to_numpy(float), 1.0)
    X, base = inputs(train, own=True)
    y = train["likes"].to_numpy(float) / base
    kind, reg = peer_regressor(int(cfg.seed), with_history)
    reg.fit(X, y, sample_weight=1.0 / y)

    def likes(p):
        X, base = inputs(p)
        return np.maximum(reg.predict(X), 1e-9) * base

    scale = mape_optimal_scale(likes(val), val["likes"]) if len(val) else 1.0
    table = test[KEYS].copy()
    table["peer"] = likes(test)
    table["peer_cal"] = table["peer"] * scale
    return kind, table


def pooled_row(tables, n_boot, seed):
    """Pooled test metrics over folds: MAPE with its interval and the paired differences."""
    import pandas as pd

    from likepred.evaluation.intervals import interval_metrics

    rows = pd.concat(tables, ignore_index=True)
    likes = rows["likes"].to_numpy(float)
    others = {name: rows[col].to_numpy(float) for name, col in
              (("best_constant", "baseline_best_constant"), ("user_mean", "baseline_user_mean"),
               ("peer", "peer"), ("peer_cal", "peer_cal"))}
    m = interval_metrics("test", likes, rows["predicted"].to_numpy(float), rows["alias"].to_numpy(), others,
                         n_boot, seed, rows["mature"].to_numpy(bool))
    ape = lambda p, w=slice(None): float(100 * np.mean(np.abs(likes[w] - p[w]) / likes[w]))  # noqa: E731
    mat = rows["mature"].to_numpy(bool)
    m |= {"test_mape": ape(rows["predicted"].to_numpy(float)), "test_mape_mature": ape(rows["predicted"].to_numpy(float), mat)}
    m |= {f"{name}_mape": ape(p) for name, p in others.items()}
    m |= {f"{name}_mape_mature": ape(p, mat) for name, p in others.items()}
    return m | {"posts": len(rows), "users": rows["alias"].nunique(), "mature_posts": int(mat.sum())}


def fmt_pooled(m, suffix=""):
    cells = [f"MAPE{suffix.replace('_', ' ')} {m['test_mape' + suffix]:.2f} "
             f"[{m['test_mape' + suffix + '_ci_low']:.2f}, {m['test_mape' + suffix + '_ci_high']:.2f}]"]
    for label, name in OTHERS:
        d, lo, hi = (m[f"test_mape_vs_{name}{suffix}{x}"] for x in ("", "_ci_low", "_ci_high"))
        star = "*" if lo > 0 or hi < 0 else ""
        cells.append(f"vs {label} ({m[name + '_mape' + suffix]:.2f}) {d:+.2f} [{lo:+.2f}, {hi:+.2f}]{star}")
    return "; ".join(cells)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", help="profiles folder (or CSV); omit for synthetic data")
    ap.add_argument("--source", default="profiles")
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated, from: {', '.join(RUNS)}")
    ap.add_argument("--splits", default="chrono,user")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds (>= 2)")
    ap.add_argument("--seeds", default="0", help="split seeds (split=user: which users share a fold)")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of users for the intervals")
    ap.add_argument("--save", help="write each run's pooled test predictions to SAVE/SPLIT-RUN-SEED.csv "
                    "(compare two: likepred.commands.compare.compare, paired over users)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    a = ap.parse_intermixed_args()
    if a.data_dir and "=" in a.data_dir:  # an override, not a folder: synthetic data
        a.overrides, a.data_dir = [a.data_dir, *a.overrides], None
    import pandas as pd

    from likepred.train import train

    data = [f"data={a.source}", f"data.path={a.data_dir}"] if a.data_dir else ["data=synthetic"]
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"{'split':7}{'run':19}{'seed':>5}{'fold':>6}" + "".join(c.rjust(16 if k is None else 10) for c, k in COLS))
    peers, kinds = {}, set()
    for split in a.splits.split(","):
        for run in a.runs.split(","):
            overrides, splits = RUNS[run]
            if splits is not None and split not in splits:
                continue
            for seed in seeds:
                tables, vals = [], []
                for fold in range(a.folds):
                    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
                        cfg = compose("config", overrides=data + [f"split={split}", *overrides, f"seed={seed}",
                                                                  f"split.folds={a.folds}", f"split.fold={fold}",
                                                                  "tracking.enabled=false", "trainer.verbose=0",
                                                                  f"evaluate.bootstrap={a.boot}", *a.overrides])
                    if (split, seed, fold) not in peers:
                        kind, peers[split, seed, fold] = peer(cfg)
                        kinds.add(kind)
                    t = time.perf_counter()
                    keep = {}
                    with contextlib.redirect_stdout(io.StringIO()):
                        m = train(cfg, keep=keep)
                    table = keep["table"].merge(peers[split, seed, fold], on=KEYS, validate="one_to_one")
                    assert len(table) == len(keep["table"]), "the peer's rows are not the run's"
                    tables.append(table)
                    vals.append(m.get("val_mape", np.nan))
                    likes = table["likes"].to_numpy(float)
                    for name in ("peer", "peer_cal"):
                        m[f"baseline_{name}_mape"] = float(100 * np.mean(np.abs(likes - table[name]) / likes))
                    m["seconds"] = time.perf_counter() - t
                    ci = f"[{m.get('test_mape_ci_low', np.nan):.2f}, {m.get('test_mape_ci_high', np.nan):.2f}]"
                    print(f"{split:7}{run:19}{seed:>5}{fold:>6}" + "".join(
                        f"{ci:>16}" if k is None else f"{m.get(k, np.nan):10.2f}" for _, k in COLS), flush=True)
                p = pooled_row(tables, a.boot, seed)
                if a.save:
                    Path(a.save).mkdir(parents=True, exist_ok=True)
                    pd.concat([t.assign(fold=i) for i, t in enumerate(tables)]).to_csv(
                        Path(a.save) / f"{split}-{run}-{seed}.csv", index=False)
                print(f"{split:7}{run:19}{seed:>5}{'pool':>6}  {p['posts']} test posts of {p['users']} users "
                      f"({p['mature_posts']} mature); fold-mean val MAPE {np.nanmean(vals):.2f}", flush=True)
                print(f"{'':37}{fmt_pooled(p)}", flush=True)
                if p["mature_posts"]:
                    print(f"{'':37}{fmt_pooled(p, '_mature')}", flush=True)
    print(f"peer: {', '.join(sorted(kinds))}; * : the 95% interval of the difference excludes 0 (else a tie)")


if __name__ == "__main__":
    sys.exit(main())
