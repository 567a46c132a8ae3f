"""Broken data folders, as a tester makes them: each stops with one DataError naming the file (the
post and the field where there is one), or with data.on_error=skip is dropped, counted and listed."""

import csv
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from likepred.data import load_dataset, read_posts
from likepred.errors import DataError
from test_data import data_cfg, post, profile, profiles_to_study_csv, write

LATIN1 = '{"alias": "zoe", "username": "Zo\xe9", "numberPosts": 1}'.encode("latin-1")


def deep(n=200_000):
    return '{"alias": "deep", "posts": ' + "[" * n + "]" * n + "}"


# name -> (make the bad thing in folder, what the error says): one broken file beside a good one
BAD_FILES = {
    "truncated": (lambda d: (d / "t.json").write_text(json.dumps(profile("t"))[:-40]), r"t\.json: .*truncated"),
    "empty": (lambda d: (d / "e.json").write_text(""), r"e\.json: an empty file"),
    "binary": (lambda d: (d / "b.json").write_bytes(bytes(range(256)) * 4), r"b\.json: not UTF-8 text"),
    "latin-1": (lambda d: (d / "zoe.json").write_bytes(LATIN1), r"zoe\.json: not UTF-8 text .*latin1"),
    "deep nesting": (lambda d: (d / "deep.json").write_text(deep()), r"deep\.json: JSON nested too deeply"),
    "folder": (lambda d: (d / "x.json").mkdir(), r"x\.json: a folder, not a profile file"),
    "broken link": (lambda d: (d / "l.json").symlink_to(d / "gone.json"), r"l\.json: a broken symbolic link"),
    "duplicate alias": (lambda d: (d / "zz_copy.json").write_text(json.dumps(profile("alice"))),
                        r"zz_copy\.json, field alias: user 'alice' is also in alice\.json"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_is_one_data_error(tmp_path, name):
    folder = write(tmp_path / "p", profile("alice"))
    make, says = BAD_FILES[name]
    make(folder)
    with pytest.raises(DataError, match=says):
        load_dataset(data_cfg(path=str(folder)))


def test_skip_drops_whole_bad_files_and_lists_them(tmp_path):
    folder = write(tmp_path / "p", profile("alice"), profile("bob"))
    for make, _ in BAD_FILES.values():
        make(folder)
    d = load_dataset(data_cfg(path=str(folder), on_error="skip"))
    assert sorted(set(d.posts["alias"])) == ["alice", "bob"] and len(d.posts) == 4
    assert (d.skips.files, d.skips.records) == (len(BAD_FILES), 0) and d.skipped == len(BAD_FILES)
    rows = {r[0]: r for r in d.skips.rows}
    assert set(rows) == {"t.json", "e.json", "b.json", "zoe.json", "deep.json", "x.json", "l.json", "zz_copy.json"}
    assert rows["zz_copy.json"][2:] == ("alias", "user 'alice' is also in alice.json (one file per user: remove one)")
    written = d.skips.write_csv(tmp_path)
    with open(written[0], newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["file", "post", "field", "reason"] and len(table) == len(BAD_FILES)


@pytest.mark.parametrize("bad_post, field, says", [
    ({"numberLikes": 10**30}, "numberLikes", "must be an integer from 0 to 1e+12"),
    ({"date": "2031-01-01T00:00:00Z"}, "date", "date 2031-01-01T00:00:00Z is after the file was last written"),
    ({"date": "9999-12-31"}, "date", "date 9999-12-31 is after the file was last written"),
    ({"date": "0001-01-01"}, "date", "date 0001-01-01 is before 1970"),
    ({"filename": "/etc/passwd"}, "filename", "must be a file name inside the image folder"),
    ({"filename": ["ok.jpg", "../../secret.png"]}, "filename", "must be a file name inside the image folder"),
    ({"filename": "C:\\secret.png"}, "filename", "must be a file name inside the image folder"),
    ({"tags": [[[["x"] * 3] * 3] * 3] * 3}, "tags", "must be a list of strings"),
])
def test_bad_post_names_file_post_field(tmp_path, bad_post, field, says):
    folder = write(tmp_path / "p", profile("alice", posts=[post(0), post(1, **bad_post), post(2)]))
    with pytest.raises(DataError) as e:
        load_dataset(data_cfg(path=str(folder)))
    assert f"alice.json, post 1, field {field}: {says}" in str(e.value)
    assert len(str(e.value)) < 300  # one line, whatever the value
    d = load_dataset(data_cfg(path=str(folder), on_error="skip"))
    assert sorted(d.posts["post_index"]) == [0, 2] and d.skips.records == 1
    assert d.skips.rows[0][:3] == ("alice.json", 1, field)


def test_huge_user_count_is_refused(tmp_path):
    folder = write(tmp_path / "p", profile("alice", numberFollowers=10**30))
    with pytest.raises(DataError, match=r"alice\.json, field numberFollowers: must be an integer from 0"):
        load_dataset(data_cfg(path=str(folder)))


def test_future_post_cannot_move_the_scrape_date(tmp_path):
    # Before: the 2031 post became the scrape date and every real post counted as mature.
    posts = [post(0, date="2017-04-01T05:00:00Z"), post(1, date="2017-03-01T05:00:00Z"),
             post(2, date="2031-06-01T00:00:00Z")]
    folder = write(tmp_path / "p", profile("alice", posts=posts))
    d = load_dataset(data_cfg(path=str(folder), on_error="skip", min_age_days=2))
    assert d.scrape_date == pd.Timestamp("2017-04-01T05:00:00Z")
    assert list(d.posts["post_index"]) == [1]  # post 0 is too young: the maturity filter still works
    # data.scrape_date bounds the dates instead of the file's time
    with pytest.raises(DataError, match=r"post 0, field date: .* is after data\.scrape_date=2017-03-15 00:00"):
        load_dataset(data_cfg(path=str(folder), scrape_date="2017-03-15"))
    with pytest.raises(DataError, match=r"field data\.scrape_date: not a date"):
        load_dataset(data_cfg(path=str(folder), scrape_date="someday"))


def test_duplicated_posts_are_dropped_with_a_count(tmp_path, caplog):
    posts = [post(0), post(1, date="2017-03-30T05:00:00Z"), post(0), post(0, likes=11)]  # scraped twice
    folder = write(tmp_path / "p", profile("alice", posts=posts), profile("bob"))
    with caplog.at_level("WARNING"):
        d = load_dataset(data_cfg(path=str(folder)))
    assert len(d.posts) == 4 and d.skips.duplicates == 2 and d.skipped == 0
    assert not d.posts.duplicated(["alias", "date", "caption"]).any()
    assert "dropped 2 duplicated posts" in caplog.text and "file alice.json, post 2" in caplog.text
    assert d.skips.rows[0] == ("alice.json", 2, None, "duplicate of file alice.json, post 0")
    assert d.skips.metrics() == {"data_skipped_files": 0, "data_skipped_records": 0, "data_duplicate_posts": 2}
    # the same in the flat CSV: a row pasted twice
    profiles_to_study_csv(folder, tmp_path / "study.csv")
    d = load_dataset(data_cfg(source="study_csv", path=str(tmp_path / "study.csv")))
    assert len(d.posts) == 4 and d.skips.duplicates == 2


def test_flat_csv_bad_rows_and_files(tmp_path):
    folder = write(tmp_path / "p", profile("alice"), profile("bob"))
    out = tmp_path / "study.csv"
    profiles_to_study_csv(folder, out)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df.loc[1, "numberLikes"] = str(10**30)
    df.loc[2, "tags"] = "[" * 5000 + "]" * 5000
    df.to_csv(out, index=False)
    with pytest.raises(DataError, match=r"study\.csv, post 1, field numberLikes"):
        load_dataset(data_cfg(source="study_csv", path=str(out)))
    d = load_dataset(data_cfg(source="study_csv", path=str(out), on_error="skip"))
    assert len(d.posts) == 2 and d.skips.records == 2
    out.write_bytes("alias,date\nZo\xe9,2017\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"study\.csv: not UTF-8 text"):
        load_dataset(data_cfg(source="study_csv", path=str(out)))
    out.write_text("")
    with pytest.raises(DataError, match=r"study\.csv: an empty file"):
        load_dataset(data_cfg(source="study_csv", path=str(out)))


def test_nothing_left_says_why(tmp_path):
    folder = write(tmp_path / "p", profile("alice", posts=[post(0, likes=0), post(1, multipleImage=True)]))
    with pytest.raises(DataError, match=r"the filters left none of the 2 posts; they dropped 1 multi-image posts "
                       r"\(data.drop_multi_image\), 1 posts with 0 likes \(data.drop_zero_likes\): "
                       r"data.drop_zero_likes took the last ones"):
        load_dataset(data_cfg(path=str(folder)))
    write(folder, profile("alice"))
    with pytest.raises(DataError, match=r"data.min_age_days took the last ones"):
        load_dataset(data_cfg(path=str(folder), min_age_days=1000, scrape_date="2017-04-02"))
    folder = write(tmp_path / "q", profile("carol", posts=[post(0, numberLikes=-1)]))
    with pytest.raises(DataError, match=r"field data.path: no posts in .* 1 posts skipped as bad"):
        read_posts(data_cfg(path=str(folder), on_error="skip"))


@pytest.mark.slow
def test_app_says_one_line(tmp_path, cache_dir):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "deep.json").write_text(deep())
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir))
    proc = subprocess.run([sys.executable, "-m", "likepred", "data=profiles", f"data.path={folder}",
                           "tracking.enabled=false", f"hydra.run.dir={tmp_path}/out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "likepred: error: file deep.json: JSON nested too deeply to be a profile"
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_skipped_files_and_posts_are_logged_to_mlflow(tmp_path, cache_dir):
    from mlflow.tracking import MlflowClient

    from likepred.synthetic.profiles import generate

    folder = generate(tmp_path / "syn", n_users=12, min_posts=10, max_posts=12, seed=1) / "profiles"
    first = sorted(folder.glob("*.json"))[0]
    good = json.loads(first.read_text())
    good["posts"][0]["numberLikes"] = 10**30
    good["posts"].append(dict(good["posts"][1]))  # a duplicate
    first.write_text(json.dumps(good))
    (folder / "empty.json").write_text("")
    (folder / "x.json").mkdir()
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = subprocess.run([sys.executable, "-m", "likepred", "data=profiles", f"data.path={folder}",
                           "data.on_error=skip", "model=user_median", f"tracking.uri={uri}",
                           "tracking.experiment=bad", f"tracking.artifact_root={tmp_path}/artifacts",
                           "tracking.log_model=false", f"hydra.run.dir={tmp_path}/out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped 2 bad files and 1 bad posts (data.on_error=skip)" in proc.stdout + proc.stderr
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("bad").experiment_id])[0]
    m = run.data.metrics
    assert (m["data_skipped_files"], m["data_skipped_records"], m["data_duplicate_posts"]) == (2, 1, 1)
    with open(client.download_artifacts(run.info.run_id, "skipped.csv", str(tmp_path))) as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["post"], r["field"]) for r in rows] == [
        ("empty.json", "", ""), (first.name, "0", "numberLikes"), ("x.json", "", ""),
        (first.name, str(len(good["posts"]) - 1), "")]
    assert rows[0]["reason"] == "an empty file" and rows[3]["reason"] == f"duplicate of file {first.name}, post 1"


def _with(post_kw=None, **profile_kw):
    """A folder maker: alice with one post changed by post_kw, or her profile changed by profile_kw."""
    def make(d):
        p = profile("alice", posts=[post(0), post(1, **(post_kw or {}))])
        (d / "alice.json").write_text(json.dumps(p | profile_kw))
    return make


def _raw(text, name="r.json"):
    return lambda d: (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())


# More of what a tester tries (beside BAD_FILES and the cases above): each is one DataError line
# naming the file (and the post and field where there is one).
SURVEY = {
    "whitespace only": (_raw("  \n\t "), "r.json: an empty file"),
    "UTF-16": (_raw(json.dumps(profile("u16")).encode("utf-16")), "r.json: not UTF-8 text"),
    "a list, not an object": (_raw("[1, 2]"), "r.json: a profile must be a JSON object"),
    "null": (_raw("null"), "r.json: a profile must be a JSON object"),
    "NaN followers": (_raw('{"alias": "n", "numberPosts": 1, "numberFollowers": NaN, "numberFollowing": 1, '
                           '"posts": []}'), "r.json, field numberFollowers: must be an integer"),
    "no alias": (lambda d: (d / "r.json").write_text(json.dumps({k: v for k, v in profile("r").items()
                                                                 if k != "alias"})),
                 "r.json, field alias: missing field"),
    "empty alias": (_with(alias=""), "alice.json, field alias: must be a non-empty string"),
    "alias a number": (_with(alias=7), "alice.json, field alias: must be a non-empty string"),
    "followers a float": (_with(numberFollowers=1.5), "alice.json, field numberFollowers"),
    "followers true": (_with(numberFollowers=True), "alice.json, field numberFollowers"),
    "posts a string": (_with(posts="many"), "alice.json, field posts: must be a list of posts"),
    "post a string": (lambda d: write(d, profile("alice", posts=[post(0), "p"])),
                      "alice.json, post 1: a post must be a JSON object"),
    "no date": (lambda d: write(d, profile("alice", posts=[post(0), {k: v for k, v in post(1).items()
                                                                     if k != "date"}])),
                "alice.json, post 1, field date: missing field"),
    "date a number": (_with({"date": 20170401}), "alice.json, post 1, field date: must be an ISO 8601"),
    "offset +25:00": (_with({"date": "2017-04-01T05:00:00+25:00"}), "alice.json, post 1, field date: unparseable"),
    "likes true": (_with({"numberLikes": True}), "alice.json, post 1, field numberLikes"),
    "likes 1e30 (float)": (_with({"numberLikes": 1e30}), "alice.json, post 1, field numberLikes"),
    "likes Infinity": (_raw(json.dumps(profile("inf")).replace('"numberLikes": 10', '"numberLikes": Infinity', 1)),
                       "r.json, post 0, field numberLikes"),
    "tags of numbers": (_with({"tags": [1, 2]}), "alice.json, post 1, field tags"),
    "caption an object": (_with({"description": {"a": 1}}), "alice.json, post 1, field description"),
    "multipleImage 'yes'": (_with({"multipleImage": "yes"}), "alice.json, post 1, field multipleImage"),
    "NUL in filename": (_with({"filename": "a\0b.jpg"}), "alice.json, post 1, field filename"),
    # issue 23
    "a FIFO": (lambda d: os.mkfifo(d / "r.json"), "r.json: a FIFO, not a profile file"),  # and no hang
    "a device": (lambda d: (d / "r.json").symlink_to("/dev/zero"), "r.json: a device, not a profile file"),
    "5000-digit likes": (_raw(json.dumps(profile("big")).replace('"numberLikes": 10', '"numberLikes": ' + "9" * 5000, 1)),
                         "r.json: not a readable profile: a number with 5000 digits"),
    "duplicated key": (_raw('{"alias": "d", "numberPosts": 1, "numberPosts": 2}'),
                       "r.json: the key 'numberPosts' appears twice in one JSON object"),
    "case variant of a user": (_raw(json.dumps(profile("Bob")), "zz.json"),
                               "zz.json, field alias: user 'Bob' is also in bob.json as 'bob'"),
    "Unicode look-alike of a user": (_raw(json.dumps(profile("\uff42ob")), "zz.json"),  # a fullwidth b
                                     "is also in bob.json as 'bob'"),
    "upper-case .JSON is read": (_raw('{"alias": 7}', name="R.JSON"), "R.JSON, field alias: must be a non-empty"),
}


@pytest.mark.parametrize("name", SURVEY)
def test_survey_of_bad_inputs(tmp_path, name):
    folder = tmp_path / "p"
    write(folder, profile("bob"))
    make, says = SURVEY[name]
    make(folder)
    with pytest.raises(DataError) as e:
        load_dataset(data_cfg(path=str(folder)))
    assert says in str(e.value) and "\n" not in str(e.value)


def test_flat_csv_ragged_row_is_one_line(tmp_path):
    out = tmp_path / "study.csv"
    profiles_to_study_csv(write(tmp_path / "p", profile("alice")), out)
    out.write_text(out.read_text() + "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u\n")
    with pytest.raises(DataError, match=r"study\.csv: not a valid CSV \(Error tokenizing data"):
        load_dataset(data_cfg(source="study_csv", path=str(out)))


def test_lone_surrogates_and_non_utf8_file_names_are_read_as_text(tmp_path, cache_dir):
    """Accepted and correct: a lone surrogate (a JSON escape no UTF-8 holds) becomes U+FFFD, and
    a file name that is not UTF-8 is shown with U+FFFD; the run logs both to MLflow."""
    folder = tmp_path / "p"
    write(folder, profile("bob"))
    text = json.dumps(profile("al\\ud800ice", posts=[post(0, description="hi \\udfff there"), post(1)]))
    (folder / "al.json").write_text(text.replace("\\\\u", "\\u"))
    os.rename(folder / "bob.json", os.path.join(os.fsencode(folder), b"b\xffb.json"))
    d = load_dataset(data_cfg(path=str(folder)))
    assert set(d.posts["alias"]) == {"al\ufffdice", "bob"}
    assert "hi \ufffd there" in set(d.posts["caption"])
    d.posts["caption"].str.encode("utf-8")  # every string is text again
    proc = subprocess.run([sys.executable, "-m", "likepred", "data=profiles", f"data.path={folder}", "model=user_mean",
                           "data.min_age_days=0", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                           f"hydra.run.dir={tmp_path}/out"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, LIKEPRED_CACHE=str(cache_dir)))
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_fifo_under_skip_is_counted_not_waited_on(tmp_path):
    folder = write(tmp_path / "p", profile("alice"))
    os.mkfifo(folder / "pipe.json")
    d = load_dataset(data_cfg(path=str(folder), on_error="skip"))
    assert d.skips.files == 1 and [r[0] for r in d.skips.rows] == ["pipe.json"]
