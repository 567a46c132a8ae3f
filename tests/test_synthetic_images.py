"""Synthetic post images: deterministic, resumable, and their class shows."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from likepred.errors import DataError
from likepred.synthetic.images import VISUAL_CLASS_NAMES, render_images

SIZE = 24


@pytest.fixture
def latent(tmp_path):
    n = 64
    rows = pd.DataFrame({
        "alias": [f"user{i % 4:04d}" for i in range(n)],
        "filename": [f"user{i % 4:04d}_{i:03d}.jpg" for i in range(n)],
        "quality": np.linspace(-2, 2, n),
        "visual_class": [i % 8 for i in range(n)],
    })
    path = tmp_path / "latent.csv"
    rows.to_csv(path, index=False)
    return path, rows


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_deterministic_and_resumable(tmp_path, latent):
    path, rows = latent
    assert render_images(path, tmp_path / "a", size=SIZE, progress=False) == len(rows)
    first = _bytes(tmp_path / "a")
    assert sorted(first) == sorted(rows["filename"])
    with Image.open(tmp_path / "a" / rows["filename"][0]) as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (SIZE, SIZE))

    # Resume: delete some, they alone are written again, byte for byte.
    for name in rows["filename"][:5]:
        (tmp_path / "a" / name).unlink()
    assert render_images(path, tmp_path / "a", size=SIZE, progress=False) == 5
    assert _bytes(tmp_path / "a") == first
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]

    # A file's bytes do not depend on row order; the seed changes them.
    rows.iloc[::-1].to_csv(tmp_path / "rev.csv", index=False)
    render_images(tmp_path / "rev.csv", tmp_path / "b", size=SIZE, progress=False)
    assert _bytes(tmp_path / "b") == first
    render_images(path, tmp_path / "c", size=SIZE, seed=1, progress=False)
    assert _bytes(tmp_path / "c") != first


def test_classes_differ_visibly(tmp_path, latent):
    path, rows = latent
    render_images(path, tmp_path / "img", size=SIZE, progress=False)
    means = np.stack([
        np.mean([np.asarray(Image.open(tmp_path / "img" / f), np.float32).mean((0, 1))
                 for f in rows.loc[rows["visual_class"] == c, "filename"]], axis=0)
        for c in range(8)
    ])  # [class, rgb]
    gaps = np.abs(means[:, None] - means[None]).max(-1) + np.eye(8) * 1e3
    assert gaps.min() > 15, means.round()  # every pair of classes apart in some channel

    # Images of one class vary (jitter, clutter, noise).
    a, b = (np.asarray(Image.open(tmp_path / "img" / f), np.float32) for f in rows["filename"][[0, 8]])
    assert np.abs(a - b).mean() > 3


def test_names_and_bad_class(tmp_path, latent):
    assert len(VISUAL_CLASS_NAMES) == len(set(VISUAL_CLASS_NAMES)) == 8
    assert VISUAL_CLASS_NAMES[0] == "red_circle"
    path, rows = latent
    rows.loc[3, "visual_class"] = 9
    rows.to_csv(path, index=False)
    with pytest.raises(DataError, match="visual_class"):
        render_images(path, tmp_path / "img", size=SIZE, progress=False)
    with pytest.raises(DataError, match="latent"):
        render_images(tmp_path / "nope.csv", tmp_path / "img", progress=False)


def test_drawing_off_a_terminal_logs_one_line_and_no_bar(tmp_path, latent, capsys, caplog):
    import logging

    from likepred.synthetic.profiles import draw_images

    path, rows = latent
    caplog.set_level(logging.INFO, logger="likepred.synthetic")
    out = draw_images(path.parent, size=SIZE)  # pytest's stderr is not a terminal, as in a log file
    assert len(list(out.iterdir())) == len(rows)
    assert "synthetic images" not in capsys.readouterr().err  # no tqdm bar in the log
    assert f"synthetic images: drew {len(rows)} into {out}" in caplog.text
