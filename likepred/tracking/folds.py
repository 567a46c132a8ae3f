"""Cross-validation's parent run: a sweep over `split.fold` (the app turns `split.folds=K` into
one, likepred/__main__.py) ends with the folds summarised on the parent:
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


def fold_summary(client, parent_run_id: str, table, bootstrap: int, seed: int) -> dict:
    """Log the folds' summary on the parent run; return what was logged. `table`: the sweep's
    (tracking/report.py sweep_table), one row per job."""
    import pandas as pd

    from likepred.tracking.report import DONE

    done = table[table["status"].isin(DONE)]
    groups = done.assign(group=[FOLD.sub("", n).strip() for n in done["name"]]).groupby("group")
    if groups.ngroups != 1:  # a sweep over folds and other settings: each setting is its own CV
        return {}
    runs = [client.get_run(r) for r in done.sort_values("name")["run_id"]]
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
    client.log_batch(parent_run_id, metrics=_metrics(out))
    hashes = {r.data.tags.get("dataset_hash") for r in runs} - {None}
    if len(hashes) == 1:
        client.set_tag(parent_run_id, "dataset_hash", hashes.pop())
    client.set_tag(parent_run_id, "likepred.folds", str(len(runs)))
    with tempfile.TemporaryDirectory() as tmp:  # the pooled rows: `likepred compare` joins on them
        pd.concat([t.assign(fold=i) for i, t in enumerate(tables)]).to_csv(Path(tmp) / PREDICTIONS, index=False)
        client.log_artifacts(parent_run_id, tmp)
    return out


def _metrics(values: dict) -> list:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items()]
