"""The packaged model and the predict command, on tiny models a real run logged."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT, TINY

pytestmark = pytest.mark.slow


def train_and_log(store, experiment, *overrides):
    """Run the app's `train` in-process into `store`; return (run id, config)."""
    from mlflow.tracking import MlflowClient

    from likepred.train import train

    uri = f"sqlite:///{store}/mlflow.db"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=TINY + ["tracking.enabled=true", f"tracking.uri={uri}",
                                                  f"tracking.artifact_root={store}/artifacts",
                                                  f"tracking.experiment={experiment}", *overrides])
    train(cfg)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run.info.run_id, cfg


def held_out_rows(run_id, cfg):
    """The run's test rows as post.json records, and the training process's predictions for them."""
    import mlflow

    from likepred.data import load_dataset

    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions.csv",
                                                            tracking_uri=cfg.tracking.uri))
    posts = load_dataset(cfg.data).posts.merge(table[["alias", "post_index", "predicted"]], on=["alias", "post_index"])
    assert len(posts) == len(table)
    records = [{"alias": p.alias, "numberFollowers": int(p.followers), "numberFollowing": int(p.following),
                "numberPosts": int(p.posts_count), "caption": p.caption, "tags": list(p.tags),
                "mentions": list(p.mentions), "date": p.date.isoformat()} for p in posts.itertuples()]
    return records, posts["predicted"].to_numpy()


@pytest.fixture(scope="module")
def logged(tmp_path_factory, cache_dir):
    """One MLflow store for the module (creating one costs seconds) and a gbm run in it, registered."""
    store = tmp_path_factory.mktemp("mlruns")
    run_id, cfg = train_and_log(store, "predict", "model=gbm", "model.max_iter=40", "tracking.register=tiny")
    return store, run_id, cfg


@pytest.fixture(scope="module")
def predictor(logged):
    from likepred.commands.predict import load_model

    store, run_id, cfg = logged
    return load_model(f"runs:/{run_id}/model", cfg.tracking.uri)


def cli(logged, *args, model=None):
    from likepred.commands.predict import main

    store, run_id, cfg = logged
    return main(["--model", model or f"runs:/{run_id}/model", "--tracking-uri", cfg.tracking.uri, *args])


def write(path, posts):
    path.write_text("\n".join(json.dumps(p) for p in posts) if path.suffix == ".jsonl" else json.dumps(posts))
    return path


def test_loaded_pyfunc_predicts_as_the_training_process(logged, tmp_path):
    import mlflow

    store, run_id, cfg = logged
    records, expected = held_out_rows(run_id, cfg)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    for r in records[::2]:  # known users need no profile numbers: the model kept them
        for k in ("numberFollowers", "numberFollowing", "numberPosts"):
            del r[k]
    out = model.predict(pd.DataFrame(records))
    np.testing.assert_allclose(out["likes"].to_numpy(), expected, rtol=1e-9)
    assert out["known_user"].all()
    assert (out["likes_low"] < out["likes"]).all() and (out["likes"] < out["likes_high"]).all()
    assert model.metadata.get_input_schema().input_names()[0] == "date"
    inner = model.unwrap_python_model().predictor
    assert all("context" not in vars(e) for e in inner.pipeline.features.extractors)  # the data stayed behind


def test_keras_model_round_trips(logged, tmp_path):
    import mlflow

    store = logged[0]
    run_id, cfg = train_and_log(store, "keras", "model=dense_meta", "trainer.epochs=2")
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", tracking_uri=cfg.tracking.uri)
    files = {str(p.relative_to(folder)) for p in Path(folder, "artifacts").rglob("*.*")}
    # the net beside the pipeline as .keras and as NumPy weights; no pickle of likepred's
    assert files == {"artifacts/predictor/state.json", "artifacts/predictor/arrays.npz",
                     "artifacts/estimator/model.keras", "artifacts/estimator/net.json",
                     "artifacts/estimator/net.npz"}
    records, expected = held_out_rows(run_id, cfg)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(model.predict(pd.DataFrame(records))["likes"].to_numpy(), expected, rtol=1e-5)


KNOWN = "user0001"
SATURDAY = "2017-06-03T18:00:00"


def test_known_user_prints_likes_with_interval(logged, predictor, tmp_path, capsys):
    post = {"alias": KNOWN, "date": SATURDAY, "caption": "sun #beach", "tags": ["beach", "tag4"], "mentions": []}
    assert cli(logged, str(write(tmp_path / "post.json", post))) == 0
    out, err = capsys.readouterr()
    m = re.fullmatch(r"~(\d+) likes \(80% interval (\d+)-(\d+)\)\n", out)
    assert m, out
    n, low, high = map(int, m.groups())
    assert low <= n <= high and "not known" not in err
    expected = predictor.predict(*predictor.posts([post]))["likes"][0]
    assert n == round(expected)


def test_unknown_user_is_a_cold_start_and_says_so(logged, predictor, tmp_path, capsys):
    post = {"alias": "newcomer", "numberFollowers": 1500, "numberFollowing": 300, "numberPosts": 80, "date": SATURDAY}
    assert cli(logged, str(write(tmp_path / "post.json", post))) == 0
    out, err = capsys.readouterr()
    assert "user 'newcomer' is not known to the model: cold-start prediction" in err
    n, low, high = map(int, re.fullmatch(r"~(\d+) likes \(80% interval (\d+)-(\d+)\)\n", out).groups())
    lo_q, hi_q = predictor.intervals["cold"]  # the wider, cold-start residuals
    # n is rounded (by up to 0.5), so n * q may be off by 0.5 * q, plus the bounds' own rounding
    assert low == pytest.approx(n * lo_q, abs=0.5 * lo_q + 1) and high == pytest.approx(n * hi_q, abs=0.5 * hi_q + 1)

    del post["numberPosts"], post["numberFollowing"]
    assert cli(logged, str(write(tmp_path / "post.json", post))) == 2
    err = capsys.readouterr().err
    assert "field numberFollowing, numberPosts: user 'newcomer' is not known to the model" in err


@pytest.mark.parametrize("field, value, message", [
    ("date", "tomorrow", "field date: unparseable date 'tomorrow'"),
    ("tags", "beach", "field tags: must be a list of strings, got 'beach'"),
    ("numberFollowers", -3, "field numberFollowers: must be a non-negative integer, got -3"),
])
def test_bad_field_is_one_clear_line(logged, tmp_path, capsys, field, value, message):
    post = {"alias": KNOWN, "date": SATURDAY, field: value}
    assert cli(logged, str(write(tmp_path / "bad.json", post))) == 2
    err = capsys.readouterr().err
    if field == "numberFollowers":  # the wording of the bound belongs to likepred.data.schema
        assert re.fullmatch(r"likepred.predict: error: file bad.json, field numberFollowers: must be .*, got -3\n", err)
    else:
        assert f"likepred.predict: error: file bad.json, {message}" in err


def test_bad_field_exit_code_without_traceback(logged, tmp_path):
    store, run_id, cfg = logged
    path = write(tmp_path / "posts.jsonl", [{"alias": KNOWN, "date": SATURDAY}, {"alias": KNOWN, "date": "soon"}])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "likepred.predict", "--model", f"runs:/{run_id}/model",
                           "--tracking-uri", cfg.tracking.uri, str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "file posts.jsonl, line 2, field date: unparseable date 'soon'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_batch_jsonl_to_csv_from_the_registry(logged, predictor, tmp_path, capsys):
    import mlflow

    store, run_id, cfg = logged
    records, _ = held_out_rows(run_id, cfg)
    records = records[:20] + [{"alias": f"new{i}", "numberFollowers": 100 * (i + 1), "numberFollowing": 50,
                               "numberPosts": 10 + i, "date": SATURDAY, "numberLikes": 7} for i in range(3)]
    out = tmp_path / "out.csv"
    assert cli(logged, str(write(tmp_path / "posts.jsonl", records)), "-o", str(out), "--explain",
               model="models:/tiny/1") == 0
    stdout, err = capsys.readouterr()
    assert f"wrote 23 predictions to {out}" in stdout and "ignored fields (not used to predict): numberLikes" in err
    table = pd.read_csv(out)
    assert list(table.columns) == ["line", "alias", "date", "likes", "likes_low", "likes_high", "known_user",
                                   "explain"]
    assert table["line"].tolist() == list(range(1, 24))
    expected = mlflow.pyfunc.load_model("models:/tiny/1").predict(pd.DataFrame(records))
    version = mlflow.tracking.MlflowClient(cfg.tracking.uri).get_model_version("tiny", "1")
    assert version.run_id == run_id and float(version.tags["val_mape"]) > 0
    np.testing.assert_allclose(table["likes"], expected["likes"], rtol=1e-9)
    assert table["known_user"].tolist() == [True] * 20 + [False] * 3
    assert all(re.match(r"[\w ]+ [+-]\d+(; [\w ]+ [+-]\d+)*$", e) for e in table["explain"])


def test_explain_lists_features_by_effect(logged, predictor, tmp_path, capsys):
    from likepred.data import load_dataset
    from likepred.serving.predictor import feature_groups
    from likepred.split import make_split

    store, run_id, cfg = logged
    post = {"alias": KNOWN, "date": SATURDAY, "tags": ["tag1", "tag4"], "mentions": ["@a"]}
    assert cli(logged, "--explain", "--top", "100", str(write(tmp_path / "post.json", post))) == 0
    lines = capsys.readouterr().out.splitlines()
    end = next(i for i, line in enumerate(lines) if "with every feature at its training mean" in line)
    rows = [re.fullmatch(r"\s+([+-]\d+)\s+(\w+)(?: = (.+))?", line) for line in lines[2:end]]
    assert all(rows), lines
    labels = [r.group(2) for r in rows]
    assert set(labels) <= {label for label, _ in feature_groups(predictor.pipeline.names)}
    deltas = [abs(int(r.group(1))) for r in rows]
    assert deltas == sorted(deltas, reverse=True) and 0 not in deltas  # no +0 / -0 rows
    # honest about the sum: the listed changes add up to the prediction, or a line says they do not
    e = predictor.explain(predictor.check([post], "post.json")[0], 100)[0]
    adds_up = abs(e["sum_all"] - e["moved"]) <= max(1.0, 0.1 * abs(e["moved"]))
    assert adds_up != any("do not add up to the prediction" in line for line in lines)
    assert dict((r.group(2), r.group(3)) for r in rows).get("weekday", "sat") == "sat"  # listed if it moves it
    # positivity: the prediction is a multiple of the user's mean likes in the train rows
    data = load_dataset(cfg.data)
    train = data.posts.iloc[make_split(data.posts, cfg.split).train]
    mean = train.loc[train["alias"] == KNOWN, "likes"].mean()
    assert lines[-1] == f"  (the model predicts a multiple of the user's train mean likes: {mean:.0f})"


def test_jsonl_with_bad_lines_skips_them_and_names_each_line(logged, predictor, tmp_path, capsys):
    good = {"alias": KNOWN, "date": SATURDAY}
    lines = [json.dumps(good)] * 3 + ['{"alias": "user0001", "date": '] + [json.dumps(good)] * 2
    lines += [json.dumps({"alias": KNOWN, "date": "soon"}), json.dumps({"alias": KNOWN, "date": SATURDAY})]
    path = tmp_path / "posts.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n" + '{"alias": "caf\u00e9", "date": "2017-06-03"}'.encode("latin-1"))
    assert cli(logged, str(path)) == 2  # by default the first bad line stops, naming it
    assert capsys.readouterr().err == ("likepred.predict: error: file posts.jsonl, line 4: not valid JSON "
                                       "(Expecting value at column 31)\n")
    out = tmp_path / "out.csv"
    assert cli(logged, str(path), "--on-error", "skip", "-o", str(out)) == 1
    stdout, err = capsys.readouterr()
    assert "wrote 6 predictions" in stdout
    assert err.splitlines() == [
        "likepred.predict: skipped file posts.jsonl, line 4: not valid JSON (Expecting value at column 31)",
        "likepred.predict: skipped file posts.jsonl, line 7, field date: unparseable date 'soon'",
        "likepred.predict: skipped file posts.jsonl, line 9: not UTF-8 text (byte 0xe9 at column 15); "
        "save the file as UTF-8 (Latin-1?)",
        "likepred.predict: skipped 3 of 9 posts (line 4, line 7, line 9); predicted the other 6"]
    table = pd.read_csv(out)
    assert table["line"].tolist() == [1, 2, 3, 5, 6, 8]
    expected = predictor.predict(*predictor.posts([good]))["likes"][0]
    np.testing.assert_allclose(table["likes"], expected, rtol=1e-9)


def test_dates_far_from_training_warn_in_one_line(logged, tmp_path, capsys):
    posts = [{"alias": KNOWN, "date": d} for d in ("1990-01-01T12:00:00", SATURDAY, "2035-01-01T12:00:00")]
    assert cli(logged, str(write(tmp_path / "posts.json", posts))) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3
    (line,) = [x for x in err.splitlines() if x.startswith("warning")]
    assert re.fullmatch(r"warning: 2 of 3 posts are dated more than a year outside the training posts "
                        r"\(\d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d\), e.g. 1990-01-01: their predictions extrapolate", line)
    assert cli(logged, str(write(tmp_path / "post.json", posts[1]))) == 0
    assert "warning" not in capsys.readouterr().err


def test_numbers_far_from_training_warn_naming_the_feature(logged, predictor, tmp_path, capsys):
    posts = [{"alias": "bigstar", "numberFollowers": 10**9, "numberFollowing": 300, "numberPosts": 80,
              "date": SATURDAY},
             {"alias": KNOWN, "date": SATURDAY, "tags": [f"t{i}" for i in range(200)]},
             {"alias": KNOWN, "date": SATURDAY, "tags": ["beach"]}]
    assert cli(logged, str(write(tmp_path / "posts.json", posts))) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3
    (line,) = [x for x in err.splitlines() if x.startswith("warning")]
    m = re.fullmatch(r"warning: 2 of 3 posts have inputs far outside the training posts' range \((.*)\), "
                     r"e\.g\. bigstar's post of 2017-06-03: log_followers 20\.7 \(training: [\d.]+ to [\d.]+\)"
                     r".*: their predictions extrapolate", line)
    assert m and {"log_followers", "n_tags"} <= set(m.group(1).split(", ")), line
    assert predictor.ranges["names"] and "days" not in predictor.ranges["names"]  # dates: their own check
    for post in posts[2], {"alias": "small", "numberFollowers": 900, "numberFollowing": 300, "numberPosts": 80,
                           "date": SATURDAY}:
        assert cli(logged, str(write(tmp_path / "post.json", post))) == 0
        assert "warning" not in capsys.readouterr().err


def test_bad_inputs_are_one_line_before_any_prediction(logged, tmp_path, capsys):
    huge = write(tmp_path / "huge.json", {"alias": "x", "numberFollowers": 10**30, "numberFollowing": 1,
                                          "numberPosts": 1, "date": SATURDAY})
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"alias": "user0001",\n "caption": "caf\u00e9", "date": "2017-06-03"}'.encode("latin-1"))
    post = write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY})
    fifo = tmp_path / "fifo.json"  # reading it would wait for a writer for ever
    os.mkfifo(fifo)
    twice = tmp_path / "twice.jsonl"
    twice.write_text(f'{{"alias": "{KNOWN}", "date": "{SATURDAY}", "alias": "user0002"}}\n')
    digits = tmp_path / "digits.json"
    digits.write_text(f'{{"alias": "{KNOWN}", "date": "{SATURDAY}", "numberFollowers": {"1" * 5000}}}')
    cases = [
        ([str(huge)], re.compile(r"file huge\.json, field numberFollowers: must be an integer from 0 to 1e\+12, got 1")),
        ([str(latin)], "file latin.json: not UTF-8 text (byte 0xe9 at line 2, column 17); save the file as UTF-8 (Latin-1?)"),
        ([str(post), "-o", str(tmp_path / "nowhere" / "out.csv")],
         f"file {tmp_path}/nowhere/out.csv, field -o: the folder {tmp_path}/nowhere does not exist"),
        ([str(post), "-o", str(tmp_path)], f"file {tmp_path}, field -o: is a folder: give a file name"),
        ([str(tmp_path)], f"file {tmp_path.name}: is a folder, not a .json or .jsonl file"),
        ([str(fifo)], "file fifo.json: not a regular file (a FIFO, a device?), not a .json or .jsonl file"),
        ([str(twice)], "file twice.jsonl, line 1: the key 'alias' appears twice in one post (which one counts?)"),
        ([str(digits)], "file digits.json: not a readable post: a number with 5000 digits (111111111111...)"),
    ]
    for args, message in cases:
        assert cli(logged, *args) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("likepred.predict: error: ")
        assert message.match(err[25:]) if isinstance(message, re.Pattern) else err[25:] == f"{message}\n"
    # the output and the posts are checked before the model is looked for
    from likepred.commands.predict import main

    assert main(["--model", "runs:/nope/model", str(latin)]) == 2
    assert "latin.json: not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["runs:/0123456789abcdef/model", "models:/tiny/1"])
def test_an_unreachable_tracking_server_is_one_line_in_seconds(model, tmp_path, capsys, monkeypatch):
    """MLflow retries a server that does not answer for minutes (runs:/), and resolves models:/ in
    its default registry (a store in the working folder, created if missing): neither happens."""
    import socket
    import time

    from likepred.commands.predict import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = time.monotonic()
    path = write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY})
    assert main(["--model", model, "--tracking-uri", f"http://127.0.0.1:{port}", str(path)]) == 2
    assert time.monotonic() - started < 30
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"likepred.predict: error: --tracking-uri http://127.0.0.1:{port}: no "
                                        "tracking server answers") and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["post.json"]  # no store made here


def test_lone_surrogates_in_a_post_are_read_as_replacement_characters(logged, predictor, tmp_path, capsys):
    path = tmp_path / "post.json"
    path.write_text(f'{{"alias": "{KNOWN}", "date": "{SATURDAY}", "caption": "sun \\ud800 #beach", "tags": ["beach"]}}')
    assert cli(logged, str(path)) == 0
    out, err = capsys.readouterr()
    plain = {"alias": KNOWN, "date": SATURDAY, "caption": "sun \ufffd #beach", "tags": ["beach"]}
    assert out.startswith(f"~{predictor.predict(*predictor.posts([plain]))['likes'][0]:.0f} likes"), err


def test_output_into_a_fifo_is_written_into_not_replaced(logged, tmp_path, capsys):
    """-o /dev/stdout or a FIFO: the CSV goes into it (a write-then-rename replaced the device, as
    root even /dev/full, with a regular file)."""
    import stat
    import threading

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    path = write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY})
    assert cli(logged, str(path), "-o", str(fifo)) == 0
    reader.join(30)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and got and got[0].startswith("alias,date,likes,")


def test_a_full_disk_for_the_output_is_one_line(logged, tmp_path, capsys):
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (folder / "filler").write_bytes(bytes(60 * 1024))
        path = write(tmp_path / "posts.jsonl", [{"alias": KNOWN, "date": SATURDAY, "caption": "x" * 50}] * 2000)
        assert cli(logged, str(path), "-o", str(folder / "out.csv")) == 2
        err = capsys.readouterr().err
        assert err == f"likepred.predict: error: file {folder}/out.csv, field -o: cannot write it (No space left on " \
                      "device)\n", err
        assert sorted(p.name for p in folder.iterdir()) == ["filler"]  # no half-written file, no temp file
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_ctrl_c_is_one_line_and_writes_no_partial_output(logged, tmp_path, capsys):
    import signal
    import threading

    post = {"alias": KNOWN, "date": SATURDAY, "caption": "sun #beach"}
    path = write(tmp_path / "posts.jsonl", [post] * 200_000)  # seconds of work: Ctrl-C comes in the middle
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        rc = cli(logged, str(path), "-o", str(tmp_path / "out.csv"))
    finally:
        timer.cancel()
    assert rc == 130
    assert capsys.readouterr().err.strip() == f"likepred.predict: interrupted (Ctrl-C); {tmp_path / 'out.csv'} not written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts.jsonl"]


def test_a_missing_store_is_refused_not_created(logged, tmp_path, capsys):
    from likepred.commands.predict import main

    post = str(write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY}))
    for uri, path in ((f"sqlite:///{tmp_path}/typo/mlflow.db", tmp_path / "typo"),
                      (f"sqlite:///{tmp_path}/mlfow.db", tmp_path / "mlfow.db"),
                      (str(tmp_path / "mlrun"), tmp_path / "mlrun")):
        assert main(["--model", "runs:/abc/model", "--tracking-uri", uri, post]) == 2
        assert f"--tracking-uri {uri}: no such store ({path}" in capsys.readouterr().err
        assert not path.exists()
    assert cli(logged, post, model="runs:/0123abc/model") == 2
    assert "--model runs:/0123abc/model: no run '0123abc' in the store" in capsys.readouterr().err
    assert cli(logged, post, model="models:/tiny/9") == 2
    assert "no version 9 of a registered model 'tiny'" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
@pytest.mark.parametrize("model", ["runs:/0123456789abcdef/model", "models:/tiny/1"])
def test_a_damaged_or_empty_store_is_one_line_and_nothing_else_is_read(damage, model, logged, tmp_path, capsys,
                                                                     monkeypatch):
    """A damaged store fell back to MLflow, which resolved models:/ in its default store: the working
    folder's `mlflow.db` (made if missing, or another store's model predicted); an empty file was made
    into a store."""
    from likepred.commands.predict import main

    store = logged[0] / "mlflow.db"
    db = tmp_path / "store.db"
    db.write_bytes({"garbage": os.urandom(50_000), "truncated": store.read_bytes()[:len(store.read_bytes()) // 3],
                    "empty": b""}[damage])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    post = str(write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY}))
    before = db.read_bytes()
    assert main(["--model", model, "--tracking-uri", f"sqlite:///{db}", post]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and str(db) in err, err
    assert list(work.iterdir()) == [] and db.read_bytes() == before  # no store made or changed


def test_the_model_is_a_logged_model_and_data_not_code(logged, tmp_path, capsys):
    import mlflow
    from mlflow.tracking import MlflowClient

    store, run_id, cfg = logged
    mlflow.set_tracking_uri(cfg.tracking.uri)
    exp = MlflowClient().get_experiment_by_name("predict")
    (found,) = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert found.name == "model" and found.source_run_id == run_id
    assert MlflowClient().get_model_version("tiny", "1").source == f"models:/{found.model_id}"
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    parts = sorted(str(p.relative_to(folder / "artifacts")) for p in (folder / "artifacts").rglob("*.*"))
    assert parts == ["estimator/forest.npz", "predictor/arrays.npz", "predictor/state.json"]
    post = str(write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY}))
    assert cli(logged, post, model=f"models:/{found.model_id}") == 0
    expected = capsys.readouterr().out

    # a folder holding a pickle that runs code: refused unless trusted, and nothing runs
    import shutil

    bad = tmp_path / "downloaded"
    shutil.copytree(folder, bad)
    shutil.rmtree(bad / "artifacts" / "predictor")
    marker = tmp_path / "ran"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR."  # pickle protocol 0: os.system(...)
    (bad / "artifacts" / "predictor").write_bytes(payload.encode())  # as older models named it
    shutil.move(bad / "artifacts" / "predictor", bad / "artifacts" / "predictor.pkl")
    text = (bad / "MLmodel").read_text().replace("path: artifacts/predictor\n", "path: artifacts/predictor.pkl\n")
    (bad / "MLmodel").write_text(text)
    assert cli(logged, post, model=str(bad)) == 2
    assert "which runs code when loaded; load it only if you trust where it came from: add --trust-pickle" in \
        capsys.readouterr().err
    assert not marker.exists()
    # the same folder as written: loads from anywhere, no trust needed
    assert cli(logged, post, model=str(folder)) == 0 and capsys.readouterr().out == expected


def test_a_fresh_process_imports_neither_mlflow_nor_scikit_learn(logged, tmp_path):
    store, run_id, cfg = logged
    post = write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY})
    code = ("import sys; from likepred.commands.predict import main; rc = main(['--model', 'runs:/%s/model', "
            "'--tracking-uri', '%s', '%s']); print(sorted(m for m in ('mlflow', 'sklearn', 'keras', 'jax') "
            "if m in sys.modules), rc)" % (run_id, cfg.tracking.uri, post))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout.splitlines()[-1] == "[] 0", proc.stderr[-2000:]


def test_top_0_is_refused_in_one_line(logged, tmp_path, capsys):
    post = {"alias": KNOWN, "date": SATURDAY}
    assert cli(logged, "--explain", "--top", "0", str(write(tmp_path / "post.json", post))) == 2
    assert capsys.readouterr().err.strip() == \
        "likepred.predict: error: --top 0: must be >= 1 (how many features --explain lists)"


def test_predictions_are_never_negative_and_say_so(logged, predictor, tmp_path, capsys):
    """A dense net fitted on log likes can still come out below 0 on inputs far from its training
    rows: the prediction is clipped to 0 with a note. Here the net's last layer is pushed down."""
    import copy

    neg = copy.copy(predictor)
    neg.pipeline = copy.copy(predictor.pipeline)
    real = predictor.pipeline.predict_likes
    neg.pipeline.predict_likes = lambda est, data, **kw: real(est, data, **kw) - 1e6  # any model gone astray
    from likepred.commands.predict import predict_file

    path = write(tmp_path / "post.json", {"alias": KNOWN, "date": SATURDAY})
    assert predict_file(neg, path) == 0
    out, err = capsys.readouterr()
    assert out.startswith("~0 likes") and "-" not in out.split("likes")[0]
    assert "note: 1 of 1 predictions came out below 0 likes and are shown as 0" in err


def test_damaged_model_files_are_one_line(logged, tmp_path, capsys):
    import shutil

    import mlflow

    store, run_id, cfg = logged
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path / "m"),
                                                     tracking_uri=cfg.tracking.uri))
    bad = tmp_path / "bad"
    shutil.copytree(local, bad)
    forest = next(bad.rglob("forest.npz"))
    forest.write_bytes(forest.read_bytes()[:100])  # truncated
    assert cli(logged, str(write(tmp_path / "p.json", {"alias": KNOWN, "date": SATURDAY})), model=str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "forest.npz: not a readable model file" in err, err
    shutil.rmtree(bad)
    shutil.copytree(local, bad)
    state = next(bad.rglob("state.json"))
    state.write_text('{"format": "likepred-state/1", "root": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert cli(logged, str(write(tmp_path / "p.json", {"alias": KNOWN, "date": SATURDAY})), model=str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "state.json: not a readable likepred model state" in err, err
