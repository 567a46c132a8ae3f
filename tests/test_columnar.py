"""The columnar cache of a profiles folder (likepred.data.columnar): the same tables and the same
errors as a plain read, from a process pool or one process; a warm read parses nothing; a changed
or added file is re-read alone."""

import json
import os
import time

import pandas as pd
import pytest

from likepred.data import columnar, profiles
from likepred.data.schema import posts_and_users
from likepred.errors import DataError
from likepred.synthetic.profiles import generate
from test_data import post, profile, write


def age(folder, seconds=60, names=None):
    """Date the files `seconds` back: files written just now are always re-read (racy mtimes)."""
    t = time.time() - seconds
    for f in folder.iterdir():
        if names is None or f.name in names:
            os.utime(f, (t, t))


def plain(folder, on_error="error"):
    return posts_and_users(profiles.iter_profiles(folder), on_error)


def same(a, b):
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2].rows == b[2].rows and a[2].metrics() == b[2].metrics()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = generate(tmp_path_factory.mktemp("syn"), n_users=60, min_posts=5, max_posts=30, seed=3) / "profiles"
    age(folder)
    return folder


def test_cold_warm_and_changed_files(synthetic, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for f in synthetic.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    # a duplicated post, an image list and a bad post (skipped) exercise every column and the skips
    write(folder, profile("zed", posts=[post(0), post(0), post(1, filename=["a.jpg", "b.jpg"]),
                                        post(2, numberLikes=-1)]))
    age(folder)
    want = plain(folder, "skip")
    reader = columnar.ProfilesFolder(folder)
    same(reader.read("skip"), want)
    assert len(reader.parsed) == 61
    same(reader.read("skip"), want)  # warm: the assembled table
    assert reader.parsed == []
    with pytest.raises(DataError, match="file zed.json, post 3, field numberLikes"):
        reader.read("error")  # the index remembers the bad post; nothing is parsed again
    assert reader.parsed == []
    # one file changed, one added: parsed alone, the rest comes from the parts
    p = json.loads((folder / "user0007.json").read_text())
    p["posts"][0]["numberLikes"] = 123456
    (folder / "user0007.json").write_text(json.dumps(p))
    write(folder, profile("amy"))
    age(folder, 30, ["amy.json", "user0007.json"])
    (folder / "user0011.json").unlink()
    reader.read("skip")
    assert sorted(reader.parsed) == ["amy.json", "user0007.json"]
    same(reader.read("skip"), plain(folder, "skip"))
    assert reader.parsed == []
    posts = reader.read("skip")[0]
    assert 123456 in set(posts.loc[posts["alias"] == "user0007", "likes"])
    assert "user0011" not in set(posts["alias"])


def test_just_written_files_are_always_read(tmp_path):
    folder = write(tmp_path / "p", profile("alice"))
    reader = columnar.ProfilesFolder(folder)
    reader.read()
    (folder / "alice.json").write_text(json.dumps(profile("alice", numberFollowers=777)))  # same second
    _, users, _ = reader.read()
    assert reader.parsed == ["alice.json"] and users["followers"].tolist() == [777]


@pytest.mark.slow
def test_process_pool_reads_the_same(synthetic, monkeypatch):
    monkeypatch.setattr(columnar, "POOL_BYTES", 0)  # the pool even for a small folder
    reader = columnar.ProfilesFolder(synthetic)
    same(reader.read(workers=2), plain(synthetic))
    assert len(reader.parsed) == 60


def test_dtypes_are_what_pandas_makes_of_the_rows(synthetic):
    """The cached table's dtypes are those pandas infers from row dicts (as the reader always built it)."""
    from datetime import datetime, timezone

    posts, users, _ = columnar.ProfilesFolder(synthetic).read()
    rows = pd.DataFrame([{"alias": "a", "caption": "c", "image": "i.jpg", "localization": None,
                          "date": datetime.now(timezone.utc)}])
    rows["date"] = pd.to_datetime(rows["date"], utc=True)
    for c in rows.columns:
        assert posts[c].dtype == rows[c].dtype, c
    assert users["alias"].dtype == rows["alias"].dtype


def test_unwritable_cache_reads_the_files_without_it(tmp_path, monkeypatch, caplog):
    folder = write(tmp_path / "p", profile("alice"), profile("bob"))
    blocked = tmp_path / "afile"
    blocked.write_text("x")  # a folder under a regular file cannot be made, even by root
    monkeypatch.setenv("LIKEPRED_CACHE", str(blocked / "cache"))
    posts, users, _ = columnar.ProfilesFolder(folder).read()
    same((posts, users, _), plain(folder))
    assert "not usable" in caplog.text


@pytest.mark.parametrize("rows", [1, 2, 7, 1 << 20])
def test_list_columns_made_python_lists_a_slice_at_a_time(monkeypatch, rows):
    """Tag and mention lists come from Arrow a slice of LIST_ROWS rows at a time (bounded
    temporaries at 10 M posts): the same lists (nulls, empty lists, null values, sliced and
    chunked arrays) whatever the slice."""
    import pyarrow as pa

    monkeypatch.setattr(columnar, "LIST_ROWS", rows)
    arr = pa.array([["a", "b"], [], None, ["b"], ["c", None, "a"], []] * 5, pa.list_(pa.string()))
    ref = arr.to_pylist()
    assert columnar._lists(arr) == ref
    assert columnar._lists(arr.slice(3, 20)) == ref[3:23]
    assert columnar._lists(pa.chunked_array([arr.slice(0, 4), arr.slice(4)])) == ref
