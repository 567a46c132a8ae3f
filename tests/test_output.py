"""What a run prints: one line per epoch off a terminal, a bar on one, no third-party INFO lines,
and a summary that names the baselines the model beats or loses to."""

import io
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from likepred.evaluation.summary import format_summary, verdict


def test_summary_names_the_baselines_beaten_and_lost_to():
    metrics = {"test_mape": 50.0, "baseline_user_mean_mape": 78.04, "baseline_best_constant_mape": 47.5,
               "mape_vs_baseline": -28.04}
    said = verdict(metrics)
    assert said == ("test MAPE 50.00 beats the user mean (78.04) by 28.04 points and "
                    "loses to the best constant (47.50) by 2.50 points")
    text = format_summary("t", metrics, {"train": 1})
    assert said in text and "better than user mean" not in text
    assert verdict({**metrics, "test_mape": 40.0}).count("beats") == 2
    assert verdict({"test_mape": 40.0}) == ""  # no baselines: nothing to say
    assert "ties with the best constant" in verdict({"test_mape": 47.5, "baseline_best_constant_mape": 47.5})
    # with intervals: a difference whose 95% interval holds 0 is a tie, not a win
    tie = verdict({"test_mape": 45.0, "baseline_best_constant_mape": 47.5, "test_mape_vs_best_constant_ci_low": -6.0,
                   "test_mape_vs_best_constant_ci_high": 1.0})
    assert tie == "test MAPE 45.00 ties with the best constant (47.50): -2.50 points, 95% interval [-6.00, +1.00]"
    assert "beats" in verdict({"test_mape": 45.0, "baseline_best_constant_mape": 47.5,
                               "test_mape_vs_best_constant_ci_low": -4.0, "test_mape_vs_best_constant_ci_high": -1.0})


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_epoch_progress(tty):
    import keras

    from likepred.models.keras_estimator import epoch_progress

    stream = Terminal() if tty else io.StringIO()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    model.fit(x, x[:, 0], epochs=3, verbose=0, callbacks=[epoch_progress(3, stream)])
    out = stream.getvalue()
    if tty:  # one tqdm bar, redrawn in place
        assert "training" in out and "3/3" in out and "\r" in out
    else:
        lines = out.splitlines()
        assert len(lines) == 3 and all(re.fullmatch(r"epoch \d/3: loss [0-9.e+-]+ \(\d+\.\ds\)", l) for l in lines)


@pytest.mark.slow
def test_redirected_run_prints_one_line_per_epoch_and_no_noise(tmp_path, cache_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "likepred", "data.n_users=20", "data.min_posts=10", "data.max_posts=15",
         "trainer.epochs=3", "trainer.patience=0", "tracking.log_model=false",
         f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr  # both redirected: neither is a terminal
    assert "\x1b" not in out and "\r" not in out and "━" not in out  # no ANSI codes, no Keras bars
    assert len(re.findall(r"^epoch \d+/3: loss .*val_loss", out, re.M)) == 3
    noise = [l for l in out.splitlines() if re.search(r"\bINFO\b", l) and "][likepred" not in l]
    assert not noise, noise  # INFO lines only from likepred's own loggers
    assert re.search(r"(beats|loses to|ties with) the user mean", out)
    assert re.search(r"^test MAPE [0-9.]+ \[[0-9.]+, [0-9.]+\]; vs best constant [+-][0-9.]+ \[", out, re.M)
