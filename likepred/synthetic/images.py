"""Draw one small JPEG per synthetic post, so that its picture shows its class.

Each `visual_class` (0..7, ordered by the hidden quality in
`likepred.synthetic.profiles`) is a background colour family plus a shape; the
shape's position and size, the colours' shades, some clutter (small dots and
lines in any colour, the same for every class) and pixel noise vary per image.
A CNN can learn the class from the picture, and nothing else about the likes.

Each image has its own RNG seeded from (seed, filename), so a file's bytes do
not depend on the row order or on which files a previous run already wrote.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from likepred.synthetic.profiles import read_latent
from likepred.files import write_atomic

# (name, background RGB, shape); backgrounds sit far apart in colour.
_CLASSES = [
    ("red_circle", (200, 40, 40), "circle"),
    ("orange_square", (230, 130, 20), "square"),
    ("yellow_triangle", (220, 210, 40), "triangle"),
    ("green_stripes", (40, 170, 60), "stripes"),
    ("cyan_circle", (30, 190, 200), "circle"),
    ("blue_square", (40, 60, 200), "square"),
    ("purple_triangle", (130, 40, 170), "triangle"),
    ("grey_stripes", (120, 120, 120), "stripes"),
]
VISUAL_CLASS_NAMES = [name for name, _, _ in _CLASSES]
JPEG_QUALITY = 90


def _shade(rng, rgb, spread):
    jitter = rng.integers(-spread, spread + 1, 3)
    return tuple(min(255, max(0, c + int(j))) for c, j in zip(rgb, jitter))


def draw(visual_class: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One picture of `visual_class`, size x size, varied by `rng`."""
    _, bg, shape = _CLASSES[visual_class]
    img = Image.new("RGB", (size, size), _shade(rng, bg, 25))
    d = ImageDraw.Draw(img)
    # Foreground: light or dark, whichever contrasts with the background.
    fg = _shade(rng, (235, 235, 235) if sum(bg) < 450 else (30, 30, 30), 20)
    r = size * rng.uniform(0.18, 0.32)
    cx, cy = rng.uniform(r, size - r, 2)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    else:
        width = max(1, int(size * rng.uniform(0.04, 0.08)))
        step = 3 * width
        for x in range(int(rng.integers(0, step)), size, step):
            d.line([(x, 0), (x, size)], fill=fg, width=width)
    # Clutter drawn from one distribution for all classes: no information.
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(rng.integers(0, 256, 3).tolist())
        x, y = rng.uniform(0, size, 2)
        s = size * rng.uniform(0.02, 0.07)
        if rng.random() < 0.5:
            d.ellipse([x - s, y - s, x + s, y + s], fill=colour)
        else:
            x2, y2 = rng.uniform(0, size, 2)
            d.line([(x, y), (x2, y2)], fill=colour, width=1)
    pixels = np.asarray(img, dtype=np.int16) + rng.normal(0, 8, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _rng_for(seed: int, filename: str) -> np.random.Generator:
    digest = hashlib.sha1(f"{seed}:{filename}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def render_images(latent_csv, out_dir, size=64, seed=0, progress=True) -> int:
    """Write `filename` for every row of `latent_csv` into `out_dir`.

    Files already there are kept (an interrupted run resumes; final names
    only ever hold complete JPEGs). Returns the number of files written.
    """
    latent_csv, out = Path(latent_csv), Path(out_dir)
    rows = read_latent(latent_csv, len(_CLASSES))
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, cls in tqdm(zip(rows["filename"], rows["visual_class"]), total=len(rows),
                          unit="img", desc="synthetic images", disable=not progress):
        path = out / name
        if path.exists():
            continue
        buf = io.BytesIO()
        draw(int(cls), size, _rng_for(seed, name)).save(buf, "JPEG", quality=JPEG_QUALITY)
        write_atomic(path, buf.getvalue(), suffix=".part", fsync=False)
        written += 1
    return written
