"""Synthetic Cloud Vision labels for the synthetic dataset, in the study's label file format.

Each `visual_class` (0..7, ordered by the hidden post quality, see
`likepred.synthetic.profiles`) has a theme of labels, as real photos do (food,
pets, beaches...). An image mostly gets labels of its own theme, sometimes
one neighbouring theme's, plus generic noise labels that say nothing about
the class; `numFaces` depends on the class too. So the labels carry the class
(and with it part of the quality), and nothing else about the likes.

Each image has its own RNG seeded from (seed, filename): a file's labels do
not depend on row order.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from likepred.synthetic.profiles import read_latent

log = logging.getLogger(__name__)

THEMES = [  # one per visual class, lowest quality first
    ["text", "font", "screenshot", "document", "paper", "number", "handwriting"],
    ["food", "dish", "cuisine", "meal", "ingredient", "recipe", "produce"],
    ["room", "interior design", "furniture", "floor", "wall", "table", "house"],
    ["car", "vehicle", "road", "wheel", "automotive design", "street", "city"],
    ["dog", "cat", "pet", "mammal", "animal", "fur", "puppy"],
    ["beach", "sea", "sky", "water", "ocean", "vacation", "coast"],
    ["mountain", "nature", "landscape", "tree", "sunset", "wilderness", "lake"],
    ["people", "fun", "smile", "friendship", "event", "party", "dress"],
]
NOISE = ["photograph", "image", "color", "light", "pattern", "design", "art", "close-up",
         "darkness", "black", "white", "red", "blue", "green", "yellow", "photography",
         "snapshot", "still life", "line", "circle", "rectangle", "material", "texture",
         "sunlight", "night", "morning", "fashion", "style", "product", "brand"]
FACE_RATE = [0.05, 0.1, 0.1, 0.1, 0.2, 0.6, 0.4, 1.8]  # mean faces per image, by class
MAX_LABELS = 10  # Cloud Vision's max_results in the study


def _rng_for(seed: int, filename: str) -> np.random.Generator:
    digest = hashlib.sha1(f"labels:{seed}:{filename}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def labels_for(visual_class: int, rng: np.random.Generator) -> dict:
    """One image's record: {"numFaces": int, "labels": {description: score}}, or None
    for an image missing from the file (as when its annotation failed)."""
    n = len(THEMES)
    u = rng.random()
    if u < 0.01:
        return None
    if u < 0.04:  # Vision finds nothing in a few images
        return {"numFaces": 0, "labels": {}}
    main = visual_class if rng.random() < 0.8 else int(np.clip(visual_class + rng.choice([-1, 1]), 0, n - 1))
    scored = {}
    for d in rng.choice(THEMES[main], size=int(rng.integers(3, 7)), replace=False):
        scored[str(d)] = rng.uniform(0.72, 0.98)
    if rng.random() < 0.3:  # a neighbouring theme, weaker
        other = int(np.clip(main + rng.choice([-1, 1]), 0, n - 1))
        for d in rng.choice(THEMES[other], size=int(rng.integers(1, 3)), replace=False):
            scored.setdefault(str(d), rng.uniform(0.55, 0.75))
    for d in rng.choice(NOISE, size=int(rng.integers(1, 5)), replace=False):
        scored.setdefault(str(d), rng.uniform(0.5, 0.85))
    top = sorted(scored.items(), key=lambda kv: -kv[1])[:MAX_LABELS]
    return {"numFaces": int(rng.poisson(FACE_RATE[visual_class])),
            "labels": {d: round(float(s), 6) for d, s in top}}


def write_labels(latent_csv, path, seed: int = 0) -> Path:
    """Write the labels of every image in `latent_csv` (filename, visual_class) to `path`: the file
    `save_labels` writes for them (sorted by name, indent 1), streamed one image at a time, so memory
    does not grow with the images (10 M images would not fit as one list and one string)."""
    import json

    from likepred.files import open_atomic

    latent_csv, path = Path(latent_csv), Path(path)
    rows = read_latent(latent_csv, len(THEMES))
    visual = dict(zip(rows["filename"], rows["visual_class"]))  # a name twice: its last row, as a dict keeps
    del rows
    with open_atomic(path) as f:
        sep, buf = "[", []
        for name in sorted(visual):
            r = labels_for(int(visual[name]), _rng_for(seed, name))
            if r is None:
                continue
            row = {"filename": name, "numFaces": int(r["numFaces"]), "labels": dict(r["labels"])}
            buf.append(sep + "\n " + json.dumps(row, indent=1, ensure_ascii=False).replace("\n", "\n "))
            sep = ","
            if len(buf) >= 10_000:
                f.write("".join(buf).encode())
                buf = []
        f.write(("".join(buf) + ("[]" if sep == "[" else "\n]") + "\n").encode())
    return path


def ensure_labels(folder, seed: int = 0) -> Path:
    """`folder/labels.json` for a synthetic dataset folder, written once (atomically)."""
    path = Path(folder) / "labels.json"
    if not path.exists():
        log.info("writing synthetic labels to %s", path)
        write_labels(Path(folder) / "latent.csv", path, seed)
    return path
