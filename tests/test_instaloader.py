"""data=instaloader: folders as Instaloader writes them, built with Instaloader's own save functions
from hand-made node data (no network), read into the one Dataset, trained on (pictures included)."""

from __future__ import annotations

import json
import lzma
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from likepred.data import load_dataset, read_posts
from likepred.errors import ConfigError, DataError

il = pytest.importorskip("instaloader")

START = datetime(2023, 3, 1, 18, 0, tzinfo=timezone.utc)


def _stamp(d: datetime) -> str:
    return d.strftime("%Y-%m-%d_%H-%M-%S") + "_UTC"  # Instaloader's default {date_utc}_UTC


def _picture(path, colour):
    Image.new("RGB", (24, 24), colour).save(path, "JPEG")


def _post_node(owner, i, date, likes, caption, kind="GraphImage", children=0):
    node = {
        "id": str(1000 * owner["n"] + i), "shortcode": f"{owner['username'][:3]}{i:04d}", "__typename": kind,
        "is_video": kind == "GraphVideo", "taken_at_timestamp": int(date.timestamp()),
        "edge_media_preview_like": {"count": likes},
        "edge_media_to_caption": {"edges": [{"node": {"text": caption}}] if caption else []},
        "display_url": f"https://example.invalid/{owner['username']}/{i}.jpg",
        "owner": {"id": owner["id"], "username": owner["username"]},
    }
    if children:
        node["edge_sidecar_to_children"] = {"edges": [
            {"node": {"is_video": c == 1, "display_url": f"https://example.invalid/{i}_{c}.jpg"}}
            for c in range(children)]}
    return node


def write_profile(root, username, n, followers, following, n_posts, media_count=None, sidecar_every=0,
                  video_every=0, seed=0):
    """One profile folder as `instaloader USERNAME` leaves it; returns the folder."""
    rng = np.random.default_rng(seed)
    ctx = il.InstaloaderContext(quiet=True)
    folder = root / username
    folder.mkdir(parents=True)
    owner = {"id": str(100 + n), "username": username, "n": n}
    pnode = {"id": owner["id"], "username": username, "full_name": username.title(), "is_private": False,
             "edge_followed_by": {"count": followers}, "edge_follow": {"count": following},
             "edge_owner_to_timeline_media": {"count": n_posts}}
    if media_count is not None:
        pnode["media_count"] = media_count
    il.save_structure_to_file(il.Profile(ctx, pnode), str(folder / f"{username}_{owner['id']}.json.xz"))
    for i in range(n_posts):
        date = START + timedelta(days=3 * i, hours=int(rng.integers(0, 12)))
        likes = int(followers * 0.05 * rng.lognormal(0, 0.4)) + 1
        base = folder / _stamp(date)
        if sidecar_every and i % sidecar_every == 1:
            node = _post_node(owner, i, date, likes, f"Two views #City #Night @{username}x", "GraphSidecar", 2)
            _picture(f"{base}_1.jpg", (200, 30, 30))
            _picture(f"{base}_2.jpg", (30, 30, 200))  # a video's thumbnail, beside its .mp4
            (folder / f"{_stamp(date)}_2.mp4").write_bytes(b"\x00")
        elif video_every and i % video_every == 2:
            node = _post_node(owner, i, date, likes, "Clip #dance", "GraphVideo")
            _picture(f"{base}.jpg", (30, 200, 30))
            (folder / f"{_stamp(date)}.mp4").write_bytes(b"\x00")
        else:
            node = _post_node(owner, i, date, likes, f"Sunny day #Beach #tag{i % 3} with @Friend{i % 2}" if i % 4
                              else "")
            _picture(f"{base}.jpg", tuple(int(c) for c in rng.integers(0, 255, 3)))
        il.save_structure_to_file(il.Post(ctx, node), str(folder / f"{_stamp(date)}.json.xz"))
        (folder / f"{_stamp(date)}.txt").write_text(node["edge_media_to_caption"]["edges"][0]["node"]["text"]
                                                    if node["edge_media_to_caption"]["edges"] else "")
    (folder / "id").write_text(owner["id"])  # Instaloader's id file, and a comments file: not structures
    (folder / f"{_stamp(START)}_comments.json").write_text(json.dumps([]))
    return folder


@pytest.fixture
def il_cfg(make_cfg):
    def _make(path, *overrides):
        return make_cfg("data=instaloader", f"data.path={path}", "trainer.epochs=2", "trainer.verbose=0",
                        "tracking.enabled=false", *overrides, tiny=False)
    return _make


@pytest.fixture
def downloads(tmp_path):
    """Two profiles as `instaloader alice bob` writes them: bob posts sidecars and videos."""
    root = tmp_path / "downloads"
    write_profile(root, "alice", 1, 1500, 300, 24, media_count=80, seed=1)
    write_profile(root, "bob", 2, 40_000, 900, 24, sidecar_every=4, video_every=5, seed=2)
    return root


def test_reads_posts_profiles_and_pictures(il_cfg, downloads):
    cfg = il_cfg(downloads)
    posts, users, skipped, _ = read_posts(cfg.data)
    assert (skipped.files, skipped.records) == (0, 0) and sorted(users["alias"]) == ["alice", "bob"] and len(posts) == 48
    u = users.set_index("alias")
    assert (u.loc["alice", "followers"], u.loc["alice", "following"], u.loc["alice", "posts_count"]) == (1500, 300, 80)
    assert u.loc["bob", "posts_count"] == 24  # no count saved: the posts downloaded
    a = posts[posts["alias"] == "alice"].sort_values("date").reset_index(drop=True)
    assert a["date"].iloc[0] == START + timedelta(hours=int(np.random.default_rng(1).integers(0, 12)))
    assert a["caption"].iloc[1] == "Sunny day #Beach #tag1 with @Friend1" and a["caption"].iloc[0] == ""
    assert a["tags"].iloc[1] == ["beach", "tag1"] and a["mentions"].iloc[1] == ["friend1"]
    assert (a["likes"] > 0).all() and not a["multiple_image"].any() and not a["is_video"].any()
    b = posts[posts["alias"] == "bob"]
    side = b[b["multiple_image"]]
    assert len(side) == 6 and side["tags"].map(lambda t: t == ["city", "night"]).all()
    assert side["image"].map(lambda f: [p.rsplit("_", 1)[1] for p in f] == ["1.jpg", "2.jpg"]).all()
    assert b["is_video"].sum() > 0 and b[b["is_video"]]["image"].map(lambda f: f[0].endswith("_UTC.jpg")).all()
    # names inside data.path (the image folder), so the schema's check on image names passes
    assert posts["image"].map(lambda f: all(p.split("/")[0] in ("alice", "bob") for p in f)).all()
    assert posts["image"].map(lambda f: all(os.path.isfile(downloads / p) for p in f)).all()


def test_relative_path_pictures_and_the_study_filters(il_cfg, downloads, monkeypatch):
    from likepred.checks import check
    from likepred.features import FeatureContext, build_features

    monkeypatch.chdir(downloads.parent)
    cfg = il_cfg("downloads", "features=metadata_image", "model=cnn_meta")  # a relative data.path
    check(cfg)  # the image model's config passes: the pictures' folder is data.path
    data = load_dataset(cfg.data)
    assert data.image_dir == "downloads" and not data.posts["multiple_image"].any()  # dropped by default
    paths = build_features(cfg.features, FeatureContext.of(data)).fit_transform(data.posts)["image"]
    assert len(paths) == len(data.posts) and all(os.path.isfile(p) for p in paths)  # the downloaded pictures
    bob = load_dataset(il_cfg(downloads / "bob", "data.drop_multi_image=false").data)  # one profile's folder
    assert set(bob.posts["alias"]) == {"bob"} and bob.posts["multiple_image"].sum() == 6


def test_bad_folders_say_which_file(il_cfg, downloads, tmp_path):
    def read(path):
        return read_posts(il_cfg(path).data)

    with pytest.raises(DataError, match="no Instaloader post metadata"):
        read(tmp_path)
    profile = next((downloads / "alice").glob("alice_*.json.xz"))
    profile.unlink()
    with pytest.raises(DataError, match="no profile metadata"):
        read(downloads / "alice")
    post = sorted((downloads / "bob").glob("*_UTC.json.xz"))[3]
    with lzma.open(post, "rt") as f:
        doc = json.load(f)
    del doc["node"]["edge_media_preview_like"]
    with lzma.open(post, "wt") as f:
        json.dump(doc, f)
    with pytest.raises(DataError, match=f"file {post.name}, field likes: no like count"):
        read(downloads / "bob")
    post.write_bytes(b"not xz")
    with pytest.raises(DataError, match=f"file {post.name}: cannot read Instaloader metadata"):
        read(downloads / "bob")


def test_path_is_required(make_cfg):
    from likepred.checks import check

    with pytest.raises(ConfigError, match="data.path: required"):
        check(make_cfg("data=instaloader", tiny=False))


@pytest.mark.slow
def test_image_model_trains_and_predicts_on_the_pictures(il_cfg, downloads, tmp_path, capsys):
    """Approach 2 (cnn_meta on metadata + pixels) end to end on the downloaded pictures, then the
    predict command on one planned post with its own picture."""
    import mlflow

    from likepred.commands.predict import main as predict_main
    from likepred.train import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = il_cfg(downloads, "data.drop_multi_image=false", "features=metadata_image", "model=cnn_meta",
                 "images.size=32", "images.workers=1", "model.conv=[4,8]", "model.dense=[16]",
                 "tracking.enabled=true", f"tracking.uri={uri}",
                 f"tracking.artifact_root={tmp_path}/artifacts", "trainer.epochs=1")
    m = train(cfg)
    assert np.isfinite(m["test_mape"])
    mlflow.set_tracking_uri(uri)
    run_id = mlflow.search_runs(experiment_names=[cfg.tracking.experiment]).iloc[0]["run_id"]
    picture = sorted((downloads / "alice").glob("*_UTC.jpg"))[0]
    post = tmp_path / "post.json"
    post.write_text(json.dumps({"alias": "alice", "date": "2023-06-01T18:00:00", "caption": "#beach",
                                "tags": ["beach"], "image": str(picture)}))
    capsys.readouterr()
    assert predict_main(["--model", f"runs:/{run_id}/model", "--tracking-uri", uri, str(post)]) == 0
    assert "likes" in capsys.readouterr().out


def test_cached_read_equals_the_plain_read_and_rereads_one_folder(downloads):
    """Instaloader folders through the columnar cache: the plain reader's tables; a second read
    parses nothing; a changed folder is parsed alone."""
    import time

    import pandas as pd

    from likepred.data import instaloader
    from likepred.data.columnar import InstaloaderFolder
    from likepred.data.schema import posts_and_users

    old = time.time() - 60  # files written just now are always re-read (racy mtimes)
    for f in downloads.rglob("*"):
        os.utime(f, (old, old))
    want = posts_and_users(instaloader.iter_profiles(downloads))
    reader = InstaloaderFolder(downloads)
    got = reader.read()
    assert sorted(reader.parsed) == ["alice", "bob"]
    for a, b in zip(got[:2], want[:2]):
        pd.testing.assert_frame_equal(a, b)
    assert any(isinstance(x, list) for x in got[0]["image"])  # bob's sidecars: lists of pictures
    reader.read()
    assert reader.parsed == []
    (downloads / "alice" / "id").write_text("101 ")  # any file of the folder counts
    os.utime(downloads / "alice" / "id", (old + 5, old + 5))
    pd.testing.assert_frame_equal(reader.read()[0], want[0])
    assert reader.parsed == ["alice"]


def _edit_post(folder, index, change):
    post = sorted(folder.glob("*_UTC.json.xz"))[index]
    with lzma.open(post, "rt") as f:
        doc = json.load(f)
    change(doc)
    with lzma.open(post, "wt") as f:
        json.dump(doc, f)
    return post


@pytest.mark.parametrize("change,says", [
    (lambda d: d["node"].update(taken_at_timestamp=10**30), "field date: taken_at_timestamp=1000000000000000000000000000000: no date"),
    (lambda d: d["node"].update(taken_at_timestamp="yesterday"), "field date: taken_at_timestamp='yesterday': not a number"),
    (lambda d: d["node"].update(edge_media_to_caption=None), "unreadable post metadata"),
    (lambda d: d.pop("node"), "post metadata without its 'node'"),
], ids=["absurd_timestamp", "mistyped_timestamp", "null_caption", "no_node"])
def test_damaged_post_metadata_is_one_line_or_skipped(il_cfg, downloads, change, says):
    post = _edit_post(downloads / "bob", 2, change)
    with pytest.raises(DataError) as e:
        read_posts(il_cfg(downloads).data)
    assert str(e.value).startswith(f"file {post.name}") and says in str(e.value) and "\n" not in str(e.value)
    posts, users, skips, _ = read_posts(il_cfg(downloads, "data.on_error=skip").data)
    assert skips.files == 1 and sorted(users["alias"]) == ["alice"]  # bob's folder skipped and counted


def test_decompression_bomb_is_refused_without_inflating_it(il_cfg, downloads, monkeypatch):
    from likepred.data import instaloader as reader

    monkeypatch.setattr(reader, "MAX_JSON_MB", 1)  # the cap, scaled down for a quick test
    post = sorted((downloads / "alice").glob("*_UTC.json.xz"))[0]
    with lzma.open(post, "wb") as f:
        f.write(b'{"node": {"pad": "' + b"0" * (3 * 2**20) + b'"}}')  # 3 MB in a few kB
    with pytest.raises(DataError, match=f"file {post.name}: decompresses to more than 1 MB"):
        read_posts(il_cfg(downloads).data)
