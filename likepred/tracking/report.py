"""A sweep's comparison table and bar chart, read back from MLflow (`likepred report`,
likepred/commands/report.py, prints them; the sweep logs them on its parent run when it ends)."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.tracking.alive import gone
from likepred.tracking.keys import JOB, JOB_NUM, OLD_REUSED_TAG, OVERRIDES, REUSED_TAG, for_people, tag

METRICS = ["test_mape", "test_mape_mature", "baseline_user_mean_mape", "baseline_best_constant_mape",
           "mape_vs_baseline"]
DONE = ("FINISHED", "REUSED", "PRUNED")  # REUSED: skipped on resume, an earlier FINISHED run stands for it;
# PRUNED: an Optuna trial its pruner stopped early (run KILLED, tagged pruned=true)
STUDY_NOTE = ("The 2017 study reported {yardstick}% MAPE for its yardstick (user mean, leaky: the predicted "
              "post included) and {best}% for its best model (the presets' `study:` settings). Ours are "
              "leak-free except rows with leaky=true (the study's setting, reproduced), on the data named in "
              "column 'data' (synthetic until real images/labels are given).")


def columns(optimized_metric: str) -> list:
    return ["job", "name", "status", *METRICS, optimized_metric, *_ci(optimized_metric), "study_yardstick", "study_best", "data", "leaky", "duration_s",
            "run_id", "error"]


def _ci(metric: str) -> tuple:
    return f"{metric}_ci_low", f"{metric}_ci_high"


def ties(table: pd.DataFrame, metric: str) -> pd.Series:
    """Per job: "best" (lowest `metric` among finished jobs), "tie" (its 95% interval overlaps the
    best one's: not shown to differ), "worse" (no overlap), "" (unscored, or no intervals logged)."""
    low, high = _ci(metric)
    out = pd.Series("", index=table.index)
    done = table[table["status"].isin(DONE) & table[metric].notna()]
    if done.empty:
        return out
    best = done[metric].idxmin()
    out[best] = "best"
    if pd.isna(table.at[best, low]):
        return out
    for i, r in done.drop(best).iterrows():
        if pd.notna(r[low]):
            overlap = r[low] <= table.at[best, high] and table.at[best, low] <= r[high]
            out[i] = "tie" if overlap else "worse"
    return out


def _row(run, optimized_metric, status=None) -> dict:
    m, t, info = run.data.metrics, run.data.tags, run.info
    dead = gone(t) if info.status == "RUNNING" else None  # killed, not yet marked by a later run
    return {
        "job": int(tag(t, JOB_NUM, -1)),
        "name": tag(t, JOB) or tag(t, OVERRIDES) or info.run_name,
        "status": status or ("PRUNED" if t.get("pruned") == "true" else "KILLED" if dead else info.status),
        **{k: m.get(k, np.nan) for k in METRICS},
        optimized_metric: m.get(optimized_metric, np.nan),
        **{k: m.get(k, np.nan) for k in _ci(optimized_metric)},
        "study_yardstick": pd.to_numeric(run.data.params.get("study.yardstick_mape"), errors="coerce"),
        "study_best": pd.to_numeric(run.data.params.get("study.best_mape"), errors="coerce"),
        "data": t.get("data_source", ""),
        "leaky": t.get("leaky", ""),
        "duration_s": (info.end_time - info.start_time) / 1000 if info.end_time else np.nan,
        "run_id": info.run_id,
        "error": t.get("error", "") or (f"killed: {dead}" if dead else ""),
    }


def sweep_table(client, parent_run_id: str, optimized_metric: str = "val_mape") -> pd.DataFrame:
    """One row per job: the parent's child runs, plus the earlier runs that resumed jobs reused."""

    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=50000)
    rows = [_row(r, optimized_metric) for r in children]
    for key, value in parent.data.tags.items():
        prefix = next((p for p in (REUSED_TAG, OLD_REUSED_TAG) if key.startswith(p)), None)
        if prefix:
            reused = json.loads(value)
            rows.append(_row(client.get_run(reused["run_id"]), optimized_metric, "REUSED")
                        | {"job": int(key[len(prefix):]), "name": reused["job"]})
    table = pd.DataFrame(rows, columns=columns(optimized_metric))
    return table.sort_values(["job", "name"]).reset_index(drop=True)


def _short(name: str, width: int = 60) -> str:
    """A job's overrides for a table cell: long floats (Optuna's) cut to 4 significant digits."""
    name = re.sub(r"\d+\.\d{5,}(e-?\d+)?", lambda m: f"{float(m.group()):.4g}", name)
    return name if len(name) <= width else name[:width - 1] + "…"


def _fmt(v, digits=2):
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def format_table(table: pd.DataFrame, optimized_metric: str = "val_mape") -> str:
    if table.empty:
        return "(no jobs recorded)"
    head = ["#", "job", "status", "test MAPE", "mature", "user mean", "best const", optimized_metric, "95% CI", "vs best"]
    head += ["data", "leaky", "time s"]
    lines = []
    low, high = _ci(optimized_metric)
    said = ties(table, optimized_metric)
    for i, r in zip(table.index, table.to_dict("records")):
        cells = [str(r["job"]), _short(r["name"]), r["status"], *(_fmt(r[k]) for k in (*METRICS[:4], optimized_metric))]
        cells += ["-" if r[low] != r[low] else f"[{_fmt(r[low])}, {_fmt(r[high])}]", said[i]]
        cells += [r["data"], r["leaky"], _fmt(r["duration_s"], 1)]
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    out = ["  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
           for row in [head, *lines]]
    out.insert(1, "-" * len(out[0]))
    for r in table[~table["status"].isin(DONE)].to_dict("records"):
        out.append(f"#{r['job']} {r['status']}: {r['error'] or '(no error recorded: killed or still running?)'}"[:300])
    out.append("MAPE in %, on likes; 'user mean' and 'best const' are the leak-free baselines on the same rows.")
    if (said == "tie").any():
        out.append(f"'tie': the job's 95% interval of {optimized_metric} (bootstrap over users) overlaps the best "
                   "job's: not shown to differ, so not ranked (likepred compare RUN_A RUN_B pairs two runs).")
    study = table.dropna(subset=["study_yardstick", "study_best"])
    if len(study):
        out.append(STUDY_NOTE.format(yardstick=_fmt(study["study_yardstick"].iloc[0], 0),
                                     best=_fmt(study["study_best"].iloc[0], 0)))
    return "\n".join(out)


def plot_table(table: pd.DataFrame, path):
    """Bar chart of test_mape per job, each job's baselines drawn as lines across its bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(table) + 2), 4.5), dpi=100)
    bars = ax.bar(x, table["test_mape"].fillna(0), label="test_mape",
                  color=["C0" if s in DONE else "lightgrey" for s in table["status"]])
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    base = table[["baseline_user_mean_mape", "baseline_best_constant_mape"]].max().max()
    if table["test_mape"].max() > 5 * base:  # a runaway job would flatten the others
        ax.set_yscale("log")
    for col, color, label in (("baseline_user_mean_mape", "C3", "user mean (leak-free)"),
                              ("baseline_best_constant_mape", "C2", "best constant")):
        ax.hlines(table[col], x - 0.45, x + 0.45, colors=color, lw=2, label=label)
    for i, s in enumerate(table["status"]):
        if s not in DONE:
            ax.text(i, 0, s, rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [_short(n, 40) for n in table["name"]], rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="test MAPE %", title="sweep: test MAPE per job")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(table: pd.DataFrame, folder: Path, optimized_metric: str = "val_mape") -> list:
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "sweep_summary.csv", index=False)
    (folder / "sweep_summary.txt").write_text(format_table(table, optimized_metric) + "\n")
    if len(table):
        plot_table(table, folder / "sweep_test_mape.png")
    return sorted(p.name for p in folder.iterdir())


def log_summary(client, parent_run_id: str, optimized_metric: str | None, register: str | None = None,
                alias: str = "champion") -> pd.DataFrame:
    """Log the table and chart on the parent run and tag its best job (lowest optimised metric);
    with `register` (the registered model the jobs' versions went to), point `alias` at the
    best job's version."""
    optimized_metric = optimized_metric or "val_mape"
    table = sweep_table(client, parent_run_id, optimized_metric)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(table, Path(tmp), optimized_metric)
        client.log_artifacts(parent_run_id, tmp)
    done = table[table["status"].isin(DONE)]
    client.log_metric(parent_run_id, "jobs_failed", float(len(table) - len(done)))
    scored = done[done[optimized_metric].notna()]
    if len(scored):
        best = scored.loc[scored[optimized_metric].idxmin()]
        for k, v in {"best_run_id": best["run_id"], "best_job": best["name"], "best_job_num": str(best["job"])}.items():
            client.set_tag(parent_run_id, k, v)
        client.log_metric(parent_run_id, f"best_{optimized_metric}", for_people(best[optimized_metric]))
        client.log_metric(parent_run_id, "best_test_mape", for_people(best.test_mape))
        if register:
            set_alias(client, register, alias or "champion", best, optimized_metric)
    return table


def set_alias(client, name: str, alias: str, best, optimized_metric: str):
    """Point models:/NAME@ALIAS at the version the best job's run registered (said on stdout)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{best['run_id']}'")
        if not versions:
            print(f"likepred: no version of registered model {name!r} comes from the best job "
                  f"({best['name']}, run {best['run_id']}); alias {alias!r} not set", file=sys.stderr, flush=True)
            return
        version = max(int(v.version) for v in versions)
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as e:
        print(f"likepred: could not set alias {alias!r} of registered model {name!r}: {e.message}",
              file=sys.stderr, flush=True)
        return
    print(f"likepred: models:/{name}@{alias} is version {version}, the best job by {optimized_metric} "
          f"({_fmt(best[optimized_metric])}): #{best['job']} {best['name']}", flush=True)
