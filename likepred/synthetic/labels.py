"""Synthetic Cloud Vision labels for the synthetic dataset, in the study's label file format.

Each `visual_class` (0..7, ordered by the hidden post quality, see
`likepred.synthetic.profiles`) has a theme of labels, as real photos do (food,
pets, beaches...). An image mostly gets labels of its own theme, sometimes
one neighbouring theme's, plus generic noise labels that say nothing about
the class; `numFaces` depends on the class too. So the labels carry the class
(and with it part of the quality), and nothing else about the likes.

Each image has its own RNG seeded from (seed, filename): a file's labels do
not depend on row order, and chunks of images are drawn in parallel into the same bytes.
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


# numpy arrays built once: `Generator.choice` turns a list into one on every call (the same draws)
_THEME_ARRAYS = [np.array(t) for t in THEMES]
_NOISE_ARRAY = np.array(NOISE)
_SIGNS = np.array([-1, 1])
POOL_IMAGES = 50_000  # fewer images are drawn in this process: starting workers costs more than it saves
CHUNK_IMAGES = 20_000  # images per pool task (their text is held until written, in name order)


def labels_for(visual_class: int, rng: np.random.Generator) -> dict:
    """One image's record: {"numFaces": int, "labels": {description: score}}, or None
    for an image missing from the file (as when its annotation failed)."""
    last = len(THEMES) - 1
    u = rng.random()
    if u < 0.01:
        return None
    if u < 0.04:  # Vision finds nothing in a few images
        return {"numFaces": 0, "labels": {}}
    main = visual_class if rng.random() < 0.8 else min(max(visual_class + int(rng.choice(_SIGNS)), 0), last)
    # each description's score is drawn right after the descriptions, in their order, as n scalar draws
    drawn = rng.choice(_THEME_ARRAYS[main], size=int(rng.integers(3, 7)), replace=False).tolist()
    scored = dict(zip(drawn, rng.uniform(0.72, 0.98, len(drawn)).tolist()))
    if rng.random() < 0.3:  # a neighbouring theme, weaker
        other = min(max(main + int(rng.choice(_SIGNS)), 0), last)
        drawn = rng.choice(_THEME_ARRAYS[other], size=int(rng.integers(1, 3)), replace=False).tolist()
        for d, s in zip(drawn, rng.uniform(0.55, 0.75, len(drawn)).tolist()):
            scored.setdefault(d, s)
    drawn = rng.choice(_NOISE_ARRAY, size=int(rng.integers(1, 5)), replace=False).tolist()
    for d, s in zip(drawn, rng.uniform(0.5, 0.85, len(drawn)).tolist()):
        scored.setdefault(d, s)
    top = sorted(scored.items(), key=_score, reverse=True)[:MAX_LABELS]  # stable: ties keep their order
    return {"numFaces": int(rng.poisson(FACE_RATE[visual_class])),
            "labels": {d: round(s, 6) for d, s in top}}


def _score(kv):
    return kv[1]


def _record_text(name: str, record: dict) -> str:
    """`"\\n " + json.dumps(row, indent=1, ensure_ascii=False).replace("\\n", "\\n ")` for the image's row
    (filename, numFaces, labels), as `save_labels` lays it out, without json's pure-Python indent encoder."""
    from json.encoder import encode_basestring as quote

    labels = record["labels"]
    if labels:
        inner = ",\n   ".join(f"{quote(d)}: {float(s)!r}" for d, s in labels.items())
        labels = "{\n   " + inner + "\n  }"
    else:
        labels = "{}"
    return (f'\n {{\n  "filename": {quote(name)},\n  "numFaces": {int(record["numFaces"])},\n'
            f'  "labels": {labels}\n }}')


def _chunk_bytes(seed: int, names: list, classes: list) -> bytes:
    """The rows of these images (in this order), joined by commas, UTF-8; b"" when none has labels
    (bytes: a pool worker encodes its own chunk, the writer only writes)."""
    rows = []
    for name, cls in zip(names, classes):
        record = labels_for(int(cls), _rng_for(seed, name))
        if record is not None:
            rows.append(_record_text(name, record))
    return ",".join(rows).encode()


def write_labels(latent_csv, path, seed: int = 0, workers: int | None = None) -> Path:
    """Write the labels of every image in `latent_csv` (filename, visual_class) to `path`: the file
    `save_labels` writes for them (sorted by name, indent 1), streamed a chunk of images at a time, so
    memory does not grow with the images (10 M images would not fit as one list and one string).

    Each image has its own RNG, so chunks are drawn in a process pool (`workers`; None: every core
    when there are over POOL_IMAGES images, else in this process) and their text written in name order:
    the same bytes however they were drawn."""
    import multiprocessing as mp
    import os
    import time
    from collections import deque

    from likepred.files import open_atomic

    latent_csv, path = Path(latent_csv), Path(path)
    rows = read_latent(latent_csv, len(THEMES))
    visual = dict(zip(rows["filename"], rows["visual_class"].tolist()))  # a name twice: its last row, as a dict keeps
    del rows
    names = sorted(visual)
    classes = [visual[n] for n in names]
    del visual
    chunks = [(names[i:i + CHUNK_IMAGES], classes[i:i + CHUNK_IMAGES]) for i in range(0, len(names), CHUNK_IMAGES)]
    if workers is None:
        # a daemonic process (a launcher's pool worker) may not start children
        big = len(names) > POOL_IMAGES and not mp.current_process().daemon
        workers = (os.cpu_count() or 1) if big else 1
    workers = max(1, min(int(workers), len(chunks)))
    started = time.time()
    with open_atomic(path) as f:
        sep = b"["

        def write(text):
            nonlocal sep
            if text:
                f.write(sep)
                f.write(text)
                sep = b","

        if workers == 1:
            for c in chunks:
                write(_chunk_bytes(seed, *c))
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                pending = deque()  # at most 2 chunks per worker drawn ahead of the writer
                for c in chunks:
                    pending.append(pool.submit(_chunk_bytes, seed, *c))
                    if len(pending) >= 2 * workers:
                        write(pending.popleft().result())
                while pending:
                    write(pending.popleft().result())
        f.write(b"[]\n" if sep == b"[" else b"\n]\n")
    if len(names) > POOL_IMAGES:
        took = time.time() - started
        log.info("synthetic labels: %d images in %.0f s (%.0f images/s, %d processes)", len(names), took,
                 len(names) / max(took, 1e-9), workers)
    return path


def ensure_labels(folder, seed: int = 0) -> Path:
    """`folder/labels.json` for a synthetic dataset folder, written once (atomically)."""
    path = Path(folder) / "labels.json"
    if not path.exists():
        log.info("writing synthetic labels to %s", path)
        write_labels(Path(folder) / "latent.csv", path, seed)
    return path
