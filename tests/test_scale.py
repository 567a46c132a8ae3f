"""The generator at scale: the same files as ever, drawn faster and streamed."""

import json

import numpy as np

from likepred.synthetic import profiles


def test_tag_draw_is_numpy_choice():
    p = 1.0 / np.arange(1, 401) ** 0.9
    p /= p.sum()
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3000):
        k = int(a.integers(0, 31))
        b.integers(0, 31)
        assert [int(v) for v in a.choice(400, size=k, replace=False, p=p)] == profiles._draw_tags(b, p, cdf, k)
    assert a.random() == b.random()  # the same numbers were consumed


def test_latent_streamed_in_pieces_is_the_same_file(tmp_path, monkeypatch):
    whole = profiles.generate(tmp_path / "a", n_users=40, min_posts=3, max_posts=9, seed=2)
    monkeypatch.setattr(profiles, "LATENT_ROWS", 7)  # many pieces
    pieces = profiles.generate(tmp_path / "b", n_users=40, min_posts=3, max_posts=9, seed=2)
    assert (whole / "latent.csv").read_bytes() == (pieces / "latent.csv").read_bytes()
    assert json.loads((whole / "COMPLETE").read_text()) == json.loads((pieces / "COMPLETE").read_text())
    assert profiles.damage(pieces) is None


def test_same_files_as_before_the_rewrite(tmp_path):
    """The sha1 of every file of a small data set, as the per-post generator wrote it (v2)."""
    import hashlib

    out = profiles.generate(tmp_path, n_users=20, min_posts=8, max_posts=40, seed=0)
    files = json.loads((out / "COMPLETE").read_text())["files"]
    digest = hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()
    assert digest == "526fc3163922ba2ad9af2f003180aab9498c2292"


def test_hashtag_score_on_columns_is_the_per_row_sum():
    """Ranking by train frequency ('#Sun' and 'sun' are one tag; ties by name) and the score, as the
    per-row definition gives them."""
    from collections import Counter

    import pandas as pd

    from likepred.features.metadata import HashtagScore, bare_tag

    rng = np.random.default_rng(1)
    vocab = ["#Sun", "sun", "Beach", "#beach", "x", "Y", "#y", *(f"t{i}" for i in range(40))]
    posts = pd.DataFrame({"tags": [[vocab[j] for j in rng.integers(0, len(vocab), rng.integers(0, 6))]
                                   for _ in range(500)]})
    h = HashtagScore(top_k=10).fit(posts)
    counts = Counter(bare_tag(t) for ts in posts["tags"] for t in ts)
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:10]
    assert h.rank_ == {t: r for r, t in enumerate(ranked)}
    want = posts["tags"].map(lambda ts: sum(10 - h.rank_.get(bare_tag(t), 10) for t in ts))
    assert np.array_equal(h.transform(posts)["log_hashtag_score"], np.log1p(want.to_numpy(dtype=float)))
    assert h.transform(pd.DataFrame({"tags": [[], []]}))["log_hashtag_score"].tolist() == [0.0, 0.0]


def test_leave_one_out_stats_from_running_sums_are_the_full_layout():
    """_loo_stats (one sort, running sums) against every leave-one-out subset laid out in full:
    median and best constant exactly (ties and weighted-median boundaries included), the rest
    to 1e-12; a user of 2 posts has no spread."""
    from likepred.userstats import _loo_rows, _loo_stats

    rng = np.random.default_rng(0)
    for t in range(300):
        n = int(rng.integers(2, 40))
        x = (rng.integers(1, 12, n) if t % 2 else np.exp(rng.normal(5, 2, n)).round(1) + 1).astype(float)
        got, want = _loo_stats(x), _loo_rows(x, np.arange(n))
        np.testing.assert_array_equal(got[:, [0, 2, 5]], want[:, [0, 2, 5]])
        np.testing.assert_allclose(got[:, [1, 3, 4]], want[:, [1, 3, 4]], rtol=1e-12, atol=1e-12)
    assert np.isnan(_loo_stats(np.array([3.0, 5.0]))[:, 4]).all()


def test_labels_streamed_are_the_file_save_labels_writes(tmp_path):
    """write_labels streams one image at a time; the file is the one save_labels writes for the same
    records (sorted by name, indent 1), byte for byte, missing images left out; and none at all is []."""
    import pandas as pd

    from likepred.labels.labelfile import load_labels, save_labels
    from likepred.synthetic.labels import _rng_for, labels_for, write_labels

    names = [f"u{i % 7}_{i}.jpg" for i in range(400)][::-1]  # not in name order
    classes = np.random.default_rng(0).integers(0, 8, len(names))
    pd.DataFrame({"filename": names, "visual_class": classes}).to_csv(tmp_path / "latent.csv", index=False)
    write_labels(tmp_path / "latent.csv", tmp_path / "streamed.json", seed=3)
    records = {n: labels_for(int(c), _rng_for(3, n)) for n, c in zip(names, classes)}
    kept = {n: r for n, r in records.items() if r is not None}
    assert 0 < len(kept) < len(names)  # some images are missing, as when annotation failed
    save_labels(tmp_path / "whole.json", kept)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()
    assert set(load_labels(tmp_path / "streamed.json")) == set(kept)
    pd.DataFrame({"filename": [], "visual_class": []}).to_csv(tmp_path / "none.csv", index=False)
    save_labels(tmp_path / "none_whole.json", {})
    write_labels(tmp_path / "none.csv", tmp_path / "none.json")
    assert (tmp_path / "none.json").read_bytes() == (tmp_path / "none_whole.json").read_bytes()


def test_labels_drawn_in_a_pool_are_the_same_bytes(tmp_path, monkeypatch):
    """Chunks of images drawn by 2 worker processes and written in name order give the bytes one
    process writes, and the bytes the one-image-at-a-time writer wrote before (sha1 pinned)."""
    import hashlib

    from likepred.synthetic import labels

    out = profiles.generate(tmp_path / "d", n_users=20, min_posts=8, max_posts=40, seed=0)
    one = labels.write_labels(out / "latent.csv", tmp_path / "one.json", seed=0, workers=1)
    assert hashlib.sha1(one.read_bytes()).hexdigest() == "c1642ea1d61d27fa8abd47be05752b241de09fa4"
    monkeypatch.setattr(labels, "CHUNK_IMAGES", 37)  # 15 chunks
    pool = labels.write_labels(out / "latent.csv", tmp_path / "pool.json", seed=0, workers=2)
    assert pool.read_bytes() == one.read_bytes()
