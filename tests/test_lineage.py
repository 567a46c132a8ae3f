"""Lineage: a run's rows as MLflow datasets with a content digest, the code it ran, and a sweep's
resume that reruns a job whose data changed."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from test_sweeps import parent_and_children, store  # noqa: F401 (store: a fixture)


def sweep(args, tmp_path, cache_dir, store, name):
    """test_sweeps.sweep without its synthetic-data sizes (these runs read a profiles folder)."""
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    uri = f"sqlite:///{store}/mlflow.db"
    cmd = [sys.executable, "-m", "likepred", *args, f"tracking.uri={uri}", f"tracking.experiment={tmp_path.name}",
           f"tracking.artifact_root={store}/artifacts", f"hydra.sweep.dir={tmp_path / name}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return proc, uri, tmp_path / name


def reads(proc) -> int:
    """How many times a command read its data: load_dataset's line, one a read."""
    return len(re.findall(r"data: \d+ posts from \d+ users", proc.stdout + proc.stderr))


def test_digest_covers_every_cell_and_the_reader_settings():
    from likepred.tracking.lineage import digest

    posts = pd.DataFrame({"alias": ["a", "b"], "likes": [3, 4], "tags": [["x"], []], "caption": ["hi", ""]})
    base = digest(posts, {"path": "p", "min_posts": 1})
    assert base == digest(posts.copy(), {"min_posts": 1, "path": "p"})  # the same rows and settings
    assert len(base) == 16
    changed = posts.copy()
    changed.loc[1, "caption"] = "!"  # a column the old dataset_hash never looked at
    tagged = posts.copy()
    tagged.at[1, "tags"] = ["y"]
    assert len({base, digest(changed, {"path": "p", "min_posts": 1}), digest(tagged, {"path": "p", "min_posts": 1}),
                digest(posts, {"path": "p", "min_posts": 2}), digest(posts.iloc[::-1], {"path": "p", "min_posts": 1})}) == 5


def test_digest_sees_list_boundaries_nulls_and_value_types():
    from likepred.tracking.lineage import digest

    alias = pd.Series(["a", "b", "c"], dtype="str")

    def d(tags, **more):
        return digest(pd.DataFrame({"alias": alias, "tags": pd.Series(tags, dtype=object), **more}))

    base = d([["x", "y"], [], None])
    variants = [d([["xy"], [], None]), d([["x"], ["y"], None]), d([["x", "y"], None, []]),
                d([["x", "y"], [], ["z"]]), d(["xy", [], None]), d([["x", "y"], [], None], n=[1, 2, 3])]
    assert base == d([["x", "y"], [], None]) and len({base, *variants}) == 7
    # Arrow text read in pieces (pandas keeps chunks after a concat) or sliced: the same rows, the same digest
    joined = pd.concat([pd.Series(["a", "bb"], dtype="str"), pd.Series(["ccc", None], dtype="str")], ignore_index=True)
    assert digest(pd.DataFrame({"s": joined})) == digest(pd.DataFrame({"s": pd.Series(["a", "bb", "ccc", None],
                                                                                        dtype="str")}))
    frame = pd.DataFrame({"s": pd.Series(["q", "bb", "ccc", "d"], dtype="str"),
                          "t": pd.Series([["q"], ["r", "s"], [], ["u"]], dtype=object)})
    assert digest(frame.iloc[1:3].reset_index(drop=True)) == digest(frame.iloc[[1, 2]].copy().reset_index(drop=True))
    mixed = pd.Series(["a.jpg", ["a.jpg", "b.jpg"], None, 3, ["x", 1], "\udc80", ["\udc80"]], dtype=object)  # any
    assert digest(pd.DataFrame({"m": mixed})) == digest(pd.DataFrame({"m": mixed.copy()})) != digest(
        pd.DataFrame({"m": mixed.iloc[[1, 0, 2, 3, 4, 5, 6]].reset_index(drop=True)}))


def test_resume_reads_the_data_once_per_pass_and_compares_old_runs_in_their_format(make_cfg, caplog):
    import logging
    from types import SimpleNamespace

    from likepred.data import load_dataset
    from likepred.tracking.lineage import DIGEST_TAG, FORMAT, FORMAT_TAG, _digest_v1, data_changed, digest

    cfg = make_cfg()
    posts = load_dataset(cfg.data).posts
    new, old = digest(posts, cfg.data), _digest_v1(posts, cfg.data)
    assert new != old

    def run(**tags):  # what the resume reads of an MLflow run
        return SimpleNamespace(data=SimpleNamespace(tags=tags))

    def reads():  # load_dataset's line: one a read
        return len(re.findall(r"data: \d+ posts from \d+ users", caplog.text))

    caplog.set_level(logging.INFO, logger="likepred")
    caplog.clear()
    finished = [run(**{DIGEST_TAG: new, FORMAT_TAG: FORMAT}), run(**{DIGEST_TAG: new, FORMAT_TAG: FORMAT}),
                run(**{DIGEST_TAG: "0" * 16, FORMAT_TAG: FORMAT})]
    assert [data_changed(r, cfg.data, scope="pass-1") for r in finished] == [
        None, None, f"its data changed (digest {'0' * 16} -> {new})"]
    assert reads() == 1  # three finished jobs checked, the data read once
    assert data_changed(run(**{DIGEST_TAG: new, FORMAT_TAG: FORMAT}), cfg.data, scope="pass-2") is None
    assert reads() == 2  # a new pass reads again (the files may have changed in between)
    other = make_cfg("data.min_posts=15")  # other data settings: their own digest
    assert data_changed(run(**{DIGEST_TAG: new, FORMAT_TAG: FORMAT}), other.data, scope="pass-2").startswith(
        "its data changed")
    # runs tagged before the format tag carry the first format: compared in it, not rerun for it
    assert data_changed(run(**{DIGEST_TAG: old}), cfg.data, scope="pass-2") is None
    assert data_changed(run(data_digest=old), cfg.data, scope="pass-2") is None
    assert data_changed(run(**{DIGEST_TAG: old, FORMAT_TAG: FORMAT}), cfg.data, scope="pass-2")
    assert data_changed(run(**{DIGEST_TAG: new, FORMAT_TAG: "99"}), cfg.data) is None  # a later format: unknown
    assert data_changed(run(), cfg.data) is None


def test_code_tags_name_the_checkout():
    from likepred.tracking.lineage import code_tags

    import likepred

    tags = code_tags()
    assert tags["likepred.version"] == likepred.__version__
    if "mlflow.source.git.commit" in tags:  # run from a checkout (CI is one)
        assert len(tags["mlflow.source.git.commit"]) == 40 and tags["likepred.git_dirty"] in ("true", "false")


@pytest.mark.slow
def test_runs_log_their_rows_and_resume_reruns_a_job_whose_data_changed(tmp_path, cache_dir, store):
    from likepred.synthetic import ensure

    folder = ensure(tmp_path / "generated", n_users=30, min_posts=10, max_posts=15, seed=3) / "profiles"
    args = ["--multirun", "model=user_median", "data=profiles", f"data.path={folder}", "seed=0,1"]
    proc, uri, sweep_dir = sweep(args, tmp_path, cache_dir, store, "multi")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, _, (first, *_) = parent_and_children(uri, sweep_dir)
    inputs = {i.dataset.name: (i.dataset, [t.value for t in i.tags]) for i in first.inputs.dataset_inputs}
    assert sorted(inputs) == ["profiles-test", "profiles-train", "profiles-validation"]
    assert [inputs[f"profiles-{c}"][1] for c in ("train", "validation", "test")] == [["train"], ["validation"], ["test"]]
    assert json.loads(inputs["profiles-train"][0].source)["uri"] == str(folder.resolve())
    assert len({d.digest for d, _ in inputs.values()}) == 3
    tags = first.data.tags
    assert tags["likepred.version"] and len(tags["likepred.data_digest"]) == 16 and "mlflow.source.git.commit" in tags

    proc, _, _ = sweep(args, tmp_path, cache_dir, store, name="same")  # unchanged: reused
    assert proc.returncode == 0 and proc.stdout.count("already FINISHED as run") == 2, proc.stderr[-3000:]
    assert reads(proc) == 1, proc.stdout  # two finished jobs checked against one read of the data

    path = sorted(folder.glob("*.json"))[0]  # one post's likes change, nothing in the config does
    profile = json.loads(path.read_text())
    profile["posts"][0]["numberLikes"] += 1
    path.write_text(json.dumps(profile))
    proc, _, sweep_dir3 = sweep(args, tmp_path, cache_dir, store, name="changed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"FINISHED as run {first.info.run_id}, but its data changed (digest {tags['likepred.data_digest']} -> " in proc.stdout
    assert proc.stdout.count("but its data changed") == 2 and reads(proc) == 1 + 2  # the check's read, 2 trainings
    _, _, (again, *_) = parent_and_children(uri, sweep_dir3)
    assert again.info.status == "FINISHED" and again.data.tags["likepred.data_digest"] != tags["likepred.data_digest"]
