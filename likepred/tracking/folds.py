"""Cross-validation's parent run: a sweep over `split.fold` (the app turns `split.folds=K` into
one, likepred/commands/train.py) ends with the folds summarised on the parent:
- `{metric}_fold_mean` and `{metric}_fold_sd` of every test_ / val_ / baseline_ metric over folds;
- the val_* metrics themselves as fold means (what a search over folds parents optimises);
- the POOLED test metrics over every predicted post (the children's predictions.csv), named as a
  single run's are (test_mape, its interval, baselines, paired differences), so `likepred
  compare` and the runs view read a parent as they read a run.
Logs what it is given; the scoring is likepred.evaluation's.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from likepred.tracking.keys import DATASET_HASH, tag

FOLD = re.compile(r"(^|\s)split\.fold=\S+")
PREDICTIONS = "predictions.csv"


def is_fold_sweep(overrides) -> bool:
    return any(o.startswith("split.fold=") for o in overrides)


def fold_sweep_argv(argv: list) -> list:
    """`split.folds=K` (K >= 2) on the command line without `split.fold`: the same command as a
    multirun over split.fold=0..K-1 (each fold a child run of one parent, through the launcher)."""
    folds = [a for a in argv if re.fullmatch(r"\+{0,2}split\.folds=\d+", a)]
    if not folds or any(re.match(r"\+{0,2}split\.fold=", a) for a in argv):
        return argv
    k = int(folds[-1].split("=")[1])
    if k < 2:
        return argv  # the config check says why
    if any(re.match(r"\+{0,2}hparams_search=(?!null)", a) for a in argv):
        from likepred.errors import ConfigError

        raise ConfigError("split.folds with hparams_search: an Optuna trial is one job, so it cannot average "
                          "folds; cross-validate the search's best settings as a grid (docs/evaluation.md)")
    out = [*argv, f"split.fold=range(0,{k})"]
    return out if {"-m", "--multirun"} & set(argv) else ["--multirun", *out]


def read_predictions(client, run_id: str):
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, PREDICTIONS, tmp)
        return pd.read_csv(path, parse_dates=["date"])


def pooled_metrics(tables: list, bootstrap: int, seed: int) -> dict:
    """Test metrics of the predictions of all folds together, with intervals over users."""
    import pandas as pd

    from likepred.evaluation import evaluate

    rows = pd.concat(tables, ignore_index=True)
    preds = {"model": rows["predicted"].to_numpy(float)}
    preds |= {c[len("baseline_"):]: rows[c].to_numpy(float) for c in rows.columns if c.startswith("baseline_")}
    metrics, _ = evaluate(rows, preds, None, None, bootstrap=bootstrap, seed=seed, mature=rows["mature"].to_numpy(bool))
    return metrics | {"pooled_posts": float(len(rows)), "pooled_users": float(rows["alias"].nunique())}


def summarise(client, run_ids: list, bootstrap: int, seed: int):
    """The folds' runs -> (metrics: fold means and sds, fold-mean val_*, pooled test metrics; the
    pooled predictions table, with each row's fold)."""
    import pandas as pd

    runs = [client.get_run(r) for r in run_ids]
    tables = [read_predictions(client, r.info.run_id) for r in runs]
    per_fold = pd.DataFrame([r.data.metrics for r in runs])
    keys = [c for c in per_fold.columns if c.startswith(("test_", "val_", "baseline_")) or c == "mape_vs_baseline"]
    out = {}
    for k in keys:
        out[f"{k}_fold_mean"] = float(per_fold[k].mean())
        out[f"{k}_fold_sd"] = float(per_fold[k].std(ddof=1)) if per_fold[k].count() > 1 else float("nan")
        if k.startswith("val_"):
            out[k] = out[f"{k}_fold_mean"]
    out |= pooled_metrics(tables, bootstrap, seed)
    out["folds_done"] = float(len(runs))
    out = {k: v for k, v in out.items() if v == v}
    hashes = {tag(r.data.tags, DATASET_HASH) for r in runs} - {None}
    return out, pd.concat([t.assign(fold=i) for i, t in enumerate(tables)]), hashes


def fold_summary(client, parent_run_id: str, table, bootstrap: int, seed: int, metric: str = "val_mape") -> str:
    """Summarise the folds on the parent run; return the lines to print. `table`: the sweep's
    (tracking/report.py sweep_table), one row per job.

    A sweep over the folds alone: the parent gets the metrics (see the module's doc) and the
    pooled predictions.csv, so it reads as a run. A sweep over folds and other settings (a grid
    cross-validated): each setting's line goes into `cv_summary.csv` on the parent, and the
    setting with the lowest fold-mean `metric` is tagged `best_setting` (ties by interval are
    for `likepred compare` to judge)."""
    import pandas as pd

    from likepred.evaluation.summary import interval_line
    from likepred.tracking.report import DONE

    done = table[table["status"].isin(DONE)].sort_values("name")
    done = done.assign(setting=[FOLD.sub(" ", n).strip() for n in done["name"]])
    groups = {k: list(g["run_id"]) for k, g in done.groupby("setting", sort=True)}
    if not groups:  # no fold finished: the sweep's end says which jobs failed
        return ""
    if len(groups) == 1:
        out, pooled, hashes = summarise(client, next(iter(groups.values())), bootstrap, seed)
        client.log_batch(parent_run_id, metrics=_metrics(out))
        if len(hashes) == 1:
            client.set_tag(parent_run_id, DATASET_HASH, hashes.pop())
        client.set_tag(parent_run_id, "likepred.folds", str(int(out["folds_done"])))
        with tempfile.TemporaryDirectory() as tmp:  # the pooled rows: `likepred compare` joins on them
            pooled.to_csv(Path(tmp) / PREDICTIONS, index=False)
            client.log_artifacts(parent_run_id, tmp)
        head = (f"{int(out['folds_done'])} folds pooled ({int(out['pooled_posts'])} test posts, "
                f"{int(out['pooled_users'])} users); fold-mean {metric} {out.get(metric, float('nan')):.2f}")
        return "\n".join([head, *(t for t in (interval_line(out), interval_line(out, suffix="_mature")) if t)])
    rows = []
    for setting, run_ids in groups.items():
        out, _, _ = summarise(client, run_ids, bootstrap, seed)
        rows.append({"setting": setting, "folds": out["folds_done"], metric: out.get(metric, float("nan")),
                     f"{metric}_fold_sd": out.get(f"{metric}_fold_sd", float("nan"))}
                    | {k: out.get(k, float("nan")) for k in ("test_mape", "test_mape_ci_low", "test_mape_ci_high",
                       "test_mape_vs_best_constant", "test_mape_vs_best_constant_ci_low",
                       "test_mape_vs_best_constant_ci_high")})
    cv = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        cv.to_csv(Path(tmp) / "cv_summary.csv", index=False)
        client.log_artifacts(parent_run_id, tmp)
    if cv[metric].notna().any():
        client.set_tag(parent_run_id, "best_setting", cv.loc[cv[metric].idxmin(), "setting"])
    lines = [f"cross-validated settings (fold-mean {metric}; pooled test MAPE and vs best constant, 95% intervals):"]
    for r in cv.to_dict("records"):
        lines.append(f"  {r['setting']}: {metric} {r[metric]:.2f} (sd {r[f'{metric}_fold_sd']:.2f}); test MAPE "
                     f"{r['test_mape']:.2f} [{r['test_mape_ci_low']:.2f}, {r['test_mape_ci_high']:.2f}]; vs best "
                     f"constant {r['test_mape_vs_best_constant']:+.2f} [{r['test_mape_vs_best_constant_ci_low']:+.2f}, "
                     f"{r['test_mape_vs_best_constant_ci_high']:+.2f}]")
    return "\n".join(lines)


def _metrics(values: dict) -> list:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items()]
