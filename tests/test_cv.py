"""Cross-validation as one command (split.folds=K) and `likepred compare`."""

import numpy as np
import pandas as pd
import pytest

from likepred.commands.compare import compare, main as compare_main
from likepred.errors import LikepredError
from likepred.tracking.folds import fold_sweep_argv

from test_sweeps import parent_and_children, store, sweep  # noqa: F401 (store: a fixture)


def test_folds_on_the_command_line_become_a_sweep_over_the_folds():
    assert fold_sweep_argv(["split.folds=5", "model=gbm"]) == ["--multirun", "split.folds=5", "model=gbm",
                                                               "split.fold=range(0,5)"]
    assert fold_sweep_argv(["-m", "split.folds=3", "seed=0,1"])[-1] == "split.fold=range(0,3)"
    assert fold_sweep_argv(["split.folds=3", "split.fold=1"]) == ["split.folds=3", "split.fold=1"]  # one fold
    assert fold_sweep_argv(["model=gbm"]) == ["model=gbm"]
    with pytest.raises(LikepredError, match="cannot average folds"):
        fold_sweep_argv(["split.folds=5", "hparams_search=dense_meta_optuna"])


def test_a_folds_setting_outside_the_command_line_is_refused(make_cfg):
    from likepred.checks import check
    from likepred.errors import ConfigError

    with pytest.raises(ConfigError, match="on the command line"):
        check(make_cfg("split.folds=3"))
    with pytest.raises(ConfigError, match="K >= 2"):
        check(make_cfg("split.folds=1"))
    check(make_cfg("split.folds=3", "split.fold=2"))


def table(aliases, likes, pred, start=0):
    n = len(aliases)
    return pd.DataFrame({"alias": aliases, "post_index": np.arange(start, start + n),
                         "date": pd.Timestamp("2021-01-01") + pd.to_timedelta(np.arange(start, start + n), "D"),
                         "likes": likes, "predicted": pred, "mature": True})


def test_compare_pairs_shared_rows_and_refuses_disjoint_ones():
    rng = np.random.default_rng(0)
    users = np.repeat([f"u{i}" for i in range(20)], 5)
    likes = rng.integers(10, 1000, 100).astype(float)
    a = table(users, likes, likes * rng.lognormal(0, 0.1, 100))
    b = table(users, likes, likes * rng.lognormal(0, 0.8, 100))
    r = compare(a, b.iloc[10:], n_boot=500)  # B lacks 10 rows: compared on the 90 shared
    assert r["rows"] == 90 and r["diff"].high < 0 and r["p"] < 0.05
    assert r["diff"].value == pytest.approx(r["a"].value - r["b"].value)
    with pytest.raises(LikepredError, match="share no test rows"):
        compare(a.iloc[:50], b.iloc[50:])
    with pytest.raises(LikepredError, match="different likes"):
        compare(a, b.assign(likes=b["likes"] + 1))


@pytest.mark.slow
def test_three_folds_leave_one_parent_three_finished_children_and_pooled_metrics(tmp_path, cache_dir, store, capsys):
    proc, uri, sweep_dir = sweep(["split.folds=3", "split=user", "model=gbm", "evaluate.bootstrap=200",
                                  "tracking.log_model=false"], tmp_path, cache_dir, store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, children = parent_and_children(uri, sweep_dir)
    assert [c.info.status for c in children] == ["FINISHED"] * 3
    assert sorted(c.data.params["split.fold"] for c in children) == ["0", "1", "2"]
    m = parent.data.metrics
    assert m["folds_done"] == 3 and m["pooled_users"] == 30  # split=user: every user tested once
    assert m["pooled_posts"] == sum(len(pd.read_csv(client.download_artifacts(c.info.run_id, "predictions.csv", str(tmp_path / c.info.run_id)))) for c in children)
    assert m["test_mape_ci_low"] < m["test_mape"] < m["test_mape_ci_high"]
    assert {"test_mape_vs_best_constant_ci_low", "test_mape_fold_mean", "test_mape_fold_sd", "val_mape"} <= set(m)
    folds = [c.data.metrics["test_mape"] for c in children]
    assert m["test_mape_fold_mean"] == pytest.approx(np.mean(folds))
    assert m["val_mape"] == pytest.approx(np.mean([c.data.metrics["val_mape"] for c in children]))
    assert "folds pooled" in proc.stdout and "vs best constant" in proc.stdout
    # compare: the parent's pooled rows against one fold's (the rows they share), same data
    assert compare_main([parent.info.run_id, children[0].info.run_id, "--uri", uri, "--boot", "100"]) == 0
    out = capsys.readouterr().out
    n0 = len(pd.read_csv(client.download_artifacts(children[0].info.run_id, "predictions.csv", str(tmp_path))))
    assert out.startswith(f"{n0} shared test rows") and "A - B: +0.00 [+0.00, +0.00]" in out
    assert compare_main([parent.info.run_id, "nosuchrun", "--uri", uri]) == 2


def test_sweep_report_marks_overlapping_intervals_as_ties():
    from likepred.tracking.report import columns, format_table, ties

    rows = [(0, "FINISHED", 30.0, 28.0, 32.0), (1, "FINISHED", 31.0, 29.5, 33.0), (2, "FINISHED", 40.0, 36.0, 44.0),
            (3, "FAILED", np.nan, np.nan, np.nan)]
    t = pd.DataFrame([{"job": j, "name": f"seed={j}", "status": s, "val_mape": v, "val_mape_ci_low": lo,
                       "val_mape_ci_high": hi} for j, s, v, lo, hi in rows], columns=columns("val_mape"))
    assert list(ties(t, "val_mape")) == ["best", "tie", "worse", ""]
    text = format_table(t, "val_mape")
    assert "[29.50, 33.00]" in text and "'tie'" in text


@pytest.mark.slow
def test_a_grid_cross_validated_ranks_settings_by_fold_mean_val(tmp_path, cache_dir, store):
    proc, uri, sweep_dir = sweep(["split.folds=2", "model=best_constant,user_mean", "evaluate.bootstrap=100",
                                  "tracking.log_model=false"], tmp_path, cache_dir, store, name="grid")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, children = parent_and_children(uri, sweep_dir)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    cv = pd.read_csv(client.download_artifacts(parent.info.run_id, "cv_summary.csv", str(tmp_path)))
    assert sorted(cv["setting"]) == ["model=best_constant", "model=user_mean"] and (cv["folds"] == 2).all()
    for r in cv.itertuples():
        vals = [c.data.metrics.get("val_mape") for c in children if c.data.tags["likepred.job"].startswith(r.setting)]
        assert None not in vals, [(c.data.tags["likepred.job"], sorted(c.data.metrics)[:8]) for c in children]
        assert r.val_mape == pytest.approx(np.mean(vals))
    assert parent.data.tags["best_setting"] == cv.loc[cv["val_mape"].idxmin(), "setting"]
    assert "cross-validated settings" in proc.stdout


def test_compare_command_refuses_runs_on_different_data(tmp_path, store, capsys, caplog):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment(f"compare-{tmp_path.name}", artifact_location=str(tmp_path / "artifacts"))
    users = np.repeat([f"u{i}" for i in range(10)], 3)
    likes = np.arange(1, 31, dtype=float) * 10
    ids = []
    for h, pred in (("aaaa", likes * 1.1), ("bbbb", likes * 0.8), ("aaaa", likes * 0.8), ("2-bbbb", likes * 0.8),
                    ("2-cccc", likes * 0.8)):
        run = client.create_run(exp, tags={"dataset_hash": h})
        path = tmp_path / "predictions.csv"
        table(users, likes, pred).to_csv(path, index=False)
        client.log_artifact(run.info.run_id, str(path))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    assert compare_main([ids[0], ids[1], "--uri", uri]) == 2
    assert "different data (dataset_hash aaaa vs bbbb)" in capsys.readouterr().err
    assert compare_main([ids[0], ids[2], "--uri", uri, "--boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "30 shared test rows of 10 users" in out and "A - B: -10.00 [-10.00, -10.00]" in out  # 10% vs 20% off
    # a fingerprint of another form (Dataset.fingerprint's version 2) cannot be compared: said, not refused
    assert compare_main([ids[0], ids[3], "--uri", uri, "--boot", "200"]) == 0
    assert "made by different likepred versions (aaaa, 2-bbbb)" in caplog.text
    assert compare_main([ids[3], ids[4], "--uri", uri]) == 2
    assert "different data (dataset_hash 2-bbbb vs 2-cccc)" in capsys.readouterr().err
