"""Lineage: a run's rows as MLflow datasets with a content digest, the code it ran, and a sweep's
resume that reruns a job whose data changed."""

import json
import os
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
    args = ["--multirun", "model=user_median", "data=profiles", f"data.path={folder}", "seed=0"]
    proc, uri, sweep_dir = sweep(args, tmp_path, cache_dir, store, "multi")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, _, (first,) = parent_and_children(uri, sweep_dir)
    inputs = {i.dataset.name: (i.dataset, [t.value for t in i.tags]) for i in first.inputs.dataset_inputs}
    assert sorted(inputs) == ["profiles-test", "profiles-train", "profiles-validation"]
    assert [inputs[f"profiles-{c}"][1] for c in ("train", "validation", "test")] == [["train"], ["validation"], ["test"]]
    assert json.loads(inputs["profiles-train"][0].source)["uri"] == str(folder.resolve())
    assert len({d.digest for d, _ in inputs.values()}) == 3
    tags = first.data.tags
    assert tags["likepred.version"] and len(tags["likepred.data_digest"]) == 16 and "mlflow.source.git.commit" in tags

    proc, _, _ = sweep(args, tmp_path, cache_dir, store, name="same")  # unchanged: reused
    assert proc.returncode == 0 and "already FINISHED as run" in proc.stdout, proc.stderr[-3000:]

    path = sorted(folder.glob("*.json"))[0]  # one post's likes change, nothing in the config does
    profile = json.loads(path.read_text())
    profile["posts"][0]["numberLikes"] += 1
    path.write_text(json.dumps(profile))
    proc, _, sweep_dir3 = sweep(args, tmp_path, cache_dir, store, name="changed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"FINISHED as run {first.info.run_id}, but its data changed (digest {tags['likepred.data_digest']} -> " in proc.stdout
    _, _, (again,) = parent_and_children(uri, sweep_dir3)
    assert again.info.status == "FINISHED" and again.data.tags["likepred.data_digest"] != tags["likepred.data_digest"]
