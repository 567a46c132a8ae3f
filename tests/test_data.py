import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from likepred.data import load_dataset
from likepred.synthetic.profiles import generate
from likepred.errors import DataError


def data_cfg(**kw):
    base = {"source": "profiles", "path": None, "on_error": "error", "scrape_date": None, "min_age_days": 0,
            "drop_multi_image": True, "drop_videos": False, "max_followers": 1000000, "drop_zero_likes": True}
    base.update(kw)
    return OmegaConf.create(base)


def post(i, likes=10, date="2017-04-01T05:00:00.000Z", **kw):
    p = {"url": f"u{i}", "urlImage": f"https://x/img{i}.jpg", "isVideo": False, "multipleImage": False,
         "tags": ["Sun", "beach"], "mentions": ["@a"], "description": "hi #sun", "localization": None,
         "date": date, "numberLikes": likes, "filename": f"img{i}.jpg"}
    p.update(kw)
    return p


def profile(alias="alice", posts=None, **kw):
    p = {"alias": alias, "username": alias, "numberPosts": 10, "numberFollowers": 500,
         "numberFollowing": 100, "private": False,
         "posts": posts if posts is not None else [post(0), post(1, likes=20, date="2017-03-30T05:00:00.000Z")]}
    p.update(kw)
    return p


def write(folder, *profiles):
    folder.mkdir(parents=True, exist_ok=True)
    for p in profiles:
        (folder / f"{p['alias']}.json").write_text(json.dumps(p))
    return folder


def test_profiles_reader_shape(tmp_path):
    folder = write(tmp_path / "p", profile("alice"), profile("bob", numberFollowers=900))
    d = load_dataset(data_cfg(path=str(folder)))
    assert len(d.posts) == 4 and set(d.users["alias"]) == {"alice", "bob"}
    row = d.posts[d.posts["alias"] == "bob"].iloc[0]
    assert row["followers"] == 900 and row["tags"] == ["sun", "beach"] and row["caption"] == "hi #sun"
    assert str(d.posts["date"].dt.tz) == "UTC"
    assert d.scrape_date == pd.Timestamp("2017-04-01T05:00:00Z")


@pytest.mark.parametrize("mutate, field, post_ix", [
    (lambda p: p["posts"][1].pop("numberLikes"), "numberLikes", 1),
    (lambda p: p["posts"][0].update(numberLikes=-3), "numberLikes", 0),
    (lambda p: p["posts"][1].update(numberLikes="12"), "numberLikes", 1),
    (lambda p: p["posts"][0].update(date="yesterday"), "date", 0),
    (lambda p: p["posts"][1].update(tags="sun"), "tags", 1),
    (lambda p: p["posts"][0].update(mentions=[1]), "mentions", 0),
    (lambda p: p.update(numberFollowers=-1), "numberFollowers", None),
    (lambda p: p.pop("numberFollowing"), "numberFollowing", None),
    (lambda p: p.update(posts={}), "posts", None),
])
def test_validation_names_file_post_field(tmp_path, mutate, field, post_ix):
    bad = profile("carol")
    mutate(bad)
    folder = write(tmp_path / "p", profile("alice"), bad)
    with pytest.raises(DataError) as e:
        load_dataset(data_cfg(path=str(folder)))
    msg = str(e.value)
    assert "carol.json" in msg and f"field {field}" in msg
    if post_ix is not None:
        assert f"post {post_ix}" in msg
    assert e.value.field == field and e.value.record == post_ix


def test_malformed_json_names_file(tmp_path):
    folder = write(tmp_path / "p", profile("alice"))
    (folder / "broken.json").write_text('{"alias": "x", ')
    with pytest.raises(DataError, match=r"broken\.json.*not valid JSON"):
        load_dataset(data_cfg(path=str(folder)))


def test_on_error_skip_counts(tmp_path):
    bad = profile("carol")
    bad["posts"][0]["numberLikes"] = -1
    folder = write(tmp_path / "p", profile("alice"), bad, profile("dave", numberFollowers="many"))
    d = load_dataset(data_cfg(path=str(folder), on_error="skip"))
    assert d.skipped == 2  # one post of carol, the whole of dave
    assert sorted(d.posts["alias"]) == ["alice", "alice", "carol"]


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(DataError, match="profiles folder not found"):
        load_dataset(data_cfg(path=str(tmp_path / "nope")))


def test_filters(tmp_path):
    posts = [post(0, likes=0), post(1, multipleImage=True), post(2, date="2017-04-10T05:00:00.000Z"),
             post(3, date="2017-04-09T12:00:00.000Z"), post(4)]
    folder = write(tmp_path / "p", profile("alice", posts=posts), profile("star", numberFollowers=2_000_000))
    d = load_dataset(data_cfg(path=str(folder), min_age_days=2))
    # dropped: 0 likes, multi-image, the >=1M user, and posts under 2 days before the scrape
    # (the scrape is the latest post, 04-10: that one and the one of 04-09 12:00)
    assert sorted(d.posts["post_index"]) == [4] and set(d.posts["alias"]) == {"alice"}
    assert d.scrape_date == pd.Timestamp("2017-04-10T05:00:00Z")
    d = load_dataset(data_cfg(path=str(folder), min_age_days=2, scrape_date="2017-04-13"))
    assert sorted(d.posts["post_index"]) == [2, 3, 4]


def profiles_to_study_csv(folder, out):
    rows = []
    for f in sorted(folder.glob("*.json")):
        p = json.loads(f.read_text())
        for q in p["posts"]:
            rows.append({**{k: p[k] for k in ("alias", "username", "numberPosts", "numberFollowers",
                                             "numberFollowing", "private")}, **q})
    df = pd.DataFrame(rows)
    for col in ("tags", "mentions"):
        df[col] = df[col].map(repr)
    df.to_csv(out, index=False)


def test_study_csv_matches_profiles(tmp_path):
    folder = write(tmp_path / "p", profile("alice"), profile("bob", numberFollowers=900))
    profiles_to_study_csv(folder, tmp_path / "study.csv")
    a = load_dataset(data_cfg(path=str(folder)))
    b = load_dataset(data_cfg(source="study_csv", path=str(tmp_path / "study.csv")))
    cols = ["alias", "date", "likes", "tags", "mentions", "caption", "followers"]
    pd.testing.assert_frame_equal(a.posts[cols], b.posts[cols])


def test_study_csv_fixture_and_errors(tmp_path):
    fixture = str(Path(__file__).parent / "fixtures" / "study_small.csv")
    d = load_dataset(data_cfg(source="study_csv", path=fixture, max_followers=None))
    assert len(d.posts) == 5 and d.posts["tags"].map(len).sum() == 5
    bad = pd.read_csv(fixture, dtype=str, keep_default_na=False)
    bad.loc[3, "tags"] = "['unclosed'"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv, post 3, field tags"):
        load_dataset(data_cfg(source="study_csv", path=str(tmp_path / "bad.csv")))


def test_synthetic_is_deterministic_and_reads_like_profiles(tmp_path):
    a = generate(tmp_path / "a", n_users=5, min_posts=5, max_posts=8, seed=3)
    b = generate(tmp_path / "b", n_users=5, min_posts=5, max_posts=8, seed=3)
    for f in sorted((a / "profiles").glob("*.json")):
        assert f.read_bytes() == (b / "profiles" / f.name).read_bytes()
    d = load_dataset(data_cfg(path=str(a / "profiles")))
    assert d.users["alias"].nunique() == 5 and (d.posts["likes"] > 0).all()
    latent = pd.read_csv(a / "latent.csv")
    assert set(latent.columns) >= {"alias", "filename", "quality", "visual_class"}
    shutil.rmtree(b)


@pytest.mark.parametrize("users_kind", ["all", "one missing", "none", "object aliases"])
def test_user_counts_join_like_a_left_merge(make_cfg, users_kind):
    """join_user_counts adds the three counts without copying the table; the result is what
    pandas' left merge gives (dtypes too: NaN, so floats, where a user has no row)."""
    from likepred.data import join_user_counts, read_posts

    posts, users, _, _ = read_posts(make_cfg().data)
    cols = ["alias", "followers", "following", "posts_count"]
    if users_kind == "one missing":
        users = users[users["alias"] != posts["alias"].iloc[3]]
    elif users_kind == "none":
        users = users.iloc[:0]
    elif users_kind == "object aliases":
        posts = posts.assign(alias=posts["alias"].astype(object))
        users = users.assign(alias=users["alias"].astype(object))
    got = join_user_counts(posts, users)
    want = posts.merge(users[cols], on="alias", how="left")
    pd.testing.assert_frame_equal(got, want)
    assert users_kind in ("all", "object aliases") or got["followers"].isna().any()
