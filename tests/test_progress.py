"""A long run shows its progress: one line per stage with its seconds (split, features and target,
training, evaluation, MLflow), the gbm's rounds while it fits, slow extractors and long
permutation-importance passes by name; the default command's output stays short."""

import logging
import re
import subprocess
import sys

import numpy as np
import pytest

STAGES = [r"data: \d+ posts from \d+ users", r"split: train \d+ rows, val \d+ rows, test \d+ rows \(\d+\.\d s\)",
          r"features and target: \d+ columns in \d+\.\d s", r"training dense_meta on \d+ rows x \d+ features",
          r"trained in \d+\.\d s", r"permutation importance: \d+ features x 5 shuffles of \d+ val rows in",
          r"predicted the test rows", r"evaluated val and test rows in \d+\.\d s \(intervals: 1000 resamples",
          r"MLflow: logged \d+ result files", r"packaged the model in", r"MLflow: logged the model in"]


@pytest.mark.slow
def test_default_command_logs_each_stage_in_order_and_stays_short(tmp_path, cache_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "likepred", "data.n_users=20", "data.min_posts=10", "data.max_posts=15",
         "trainer.epochs=3", "trainer.patience=0", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
         f"hydra.run.dir={tmp_path}/out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "][likepred" in l]
    at = [next((i for i, l in enumerate(lines) if re.search(p, l)), None) for p in STAGES]
    assert None not in at, [p for p, i in zip(STAGES, at) if i is None]
    assert at == sorted(at), lines  # in the order the flow runs them
    assert len(lines) <= 16, lines  # short: no per-extractor or per-round lines on a small run
    assert not any("features: " in l and " rows in " in l for l in lines)  # no extractor took > SLOW_S


def test_gbm_logs_its_rounds_while_it_fits(make_cfg, caplog, monkeypatch):
    from likepred.models.gbm import GBM
    from likepred.train import train

    monkeypatch.setattr(GBM, "PROGRESS_S", 0.005)
    cfg = make_cfg("model=gbm", "model.max_iter=30", "model.n_iter_no_change=30", "model.min_samples_leaf=5",
                   "evaluate.importance_repeats=0", "evaluate.bootstrap=0")
    from threadpoolctl import threadpool_limits

    with caplog.at_level(logging.INFO, logger="likepred"), threadpool_limits(1):  # OpenMP on a busy machine: slow
        train(cfg)
    said = [r.getMessage() for r in caplog.records]
    rounds = [int(m.group(1)) for s in said if (m := re.fullmatch(
        r"gbm: round (\d+) of at most 30, val loss [0-9.e+-]+ \(best [0-9.e+-]+ at round \d+\) \(\d+ s\)", s))]
    assert rounds, said
    assert rounds == sorted(rounds) and rounds[-1] <= 30
    final = [s for s in said if re.fullmatch(r"gbm: 30 rounds, val loss .* \(\d+ s\)", s)]
    assert len(final) == 1, said  # the last line: every round ran (no early stop at 30 patience)
    order = [next(i for i, s in enumerate(said) if s.startswith(p)) for p in ("training gbm on", "gbm: round",
                                                                             "gbm: 30 rounds", "trained in")]
    assert order == sorted(order)


def test_slow_extractors_are_named_with_their_rows_and_seconds(make_cfg, caplog, monkeypatch):
    from likepred.data import load_dataset
    from likepred.features import FeatureSet, build_features

    posts = load_dataset(make_cfg().data).posts
    fs = build_features({"extractors": {"profile": {}, "post_time": {}}})
    monkeypatch.setattr(FeatureSet, "SLOW_S", -1.0)  # every step counts as slow
    with caplog.at_level(logging.INFO, logger="likepred.features"):
        fs.fit_transform(posts)
        fs.transform(posts.head(3))
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"features: profile fit+transform on {len(posts)} rows in 0.0 s",
                    f"features: post_time fit+transform on {len(posts)} rows in 0.0 s",
                    "features: profile transform on 3 rows in 0.0 s", "features: post_time transform on 3 rows in 0.0 s"]
    caplog.clear()
    monkeypatch.setattr(FeatureSet, "SLOW_S", 5.0)
    with caplog.at_level(logging.INFO, logger="likepred.features"):
        fs.transform(posts)
    assert not caplog.records


def test_long_permutation_importance_says_how_far_it_is(caplog, monkeypatch):
    import likepred.evaluation.importance as importance

    x = np.random.default_rng(0).normal(size=(50, 4))
    likes = 10 + x[:, 0] ** 2
    groups = [(f"f{i}", {"meta": [i]}) for i in range(4)]
    predict = lambda inputs: 10 + inputs["meta"][:, 0] ** 2  # noqa: E731
    monkeypatch.setattr(importance, "PROGRESS_S", -1.0)  # every feature: a line
    with caplog.at_level(logging.INFO, logger="likepred.evaluation"):
        table = importance.permutation_importance(predict, {"meta": x}, likes, groups, repeats=2)
    assert [r.getMessage().rsplit(" (", 1)[0] for r in caplog.records] == [
        f"permutation importance: {i} of 4 features" for i in range(4)]
    assert table["feature"].iloc[0] == "f0"  # the pass itself unchanged: the one feature used ranks first


def test_heartbeat_says_a_long_stage_is_still_running_and_stops_between_stages(caplog, monkeypatch):
    import time

    from likepred.train import Heartbeat

    monkeypatch.setattr(Heartbeat, "EVERY_S", 0.05)
    with caplog.at_level(logging.INFO, logger="likepred"):
        beat = Heartbeat()
        beat("features and target")
        time.sleep(0.5)
        beat(None)  # training: it prints its own progress
        time.sleep(0.01)
        n = len(caplog.records)
        time.sleep(0.3)
        beat.stop()
    said = [r.getMessage() for r in caplog.records]
    assert n >= 2 and len(said) == n, said  # lines while the stage ran, none after beat(None)
    assert all(re.fullmatch(r"features and target: still running \(\d+ s\)", s) for s in said), said
    assert not beat._thread.is_alive()
