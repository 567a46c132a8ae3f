"""A deterministic synthetic Instagram: users and posts in the profiles format.

Likes follow the real data's shape: heavy-tailed followers, likes driven by
followers and a per-user engagement rate, plus effects a model can learn
beyond the user's median: weekday, hashtag appeal, mentions, a per-user
trend over time, and a hidden post `quality`. Part of the quality shows in
the post's `visual_class` (what later image and label generators draw),
the rest is noise. Posts younger than ~2 days have not collected their likes
yet, as in the real scrape.

The latent variables go to `latent.csv` beside the profiles; no reader
looks at it, tests and the image/label generators do (a run whose features read labels
writes `labels.json` from it with `likepred.synthetic.labels`, on first use).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import DataError
from likepred.files import open_atomic, write_atomic

log = logging.getLogger(__name__)

N_VISUAL_CLASSES = 8
SCRAPE = datetime(2017, 5, 1, tzinfo=timezone.utc)


def params_key(n_users: int, min_posts: int, max_posts: int, seed: int) -> str:
    raw = f"v2-{n_users}-{min_posts}-{max_posts}-{seed}"
    return hashlib.sha1(raw.encode()).hexdigest()[:10]


def damage(out) -> str | None:
    """What is wrong with a generated folder: None if every file is as written (COMPLETE lists them
    with their sha1), else what is missing or changed."""
    out = Path(out)
    try:
        files = json.loads((out / "COMPLETE").read_text())["files"]
    except FileNotFoundError:
        return "it is incomplete"
    except (OSError, ValueError, KeyError, TypeError):
        return "its COMPLETE list of files is unreadable (written by an older version?)"
    for rel, digest in files.items():
        try:
            if hashlib.sha1((out / rel).read_bytes()).hexdigest() != digest:
                return f"{rel} was changed"
        except OSError:
            return f"{rel} is missing"
    return None


def generate(out_dir, n_users=300, min_posts=8, max_posts=40, seed=0) -> Path:
    """Write the dataset under out_dir (once; a complete, unchanged folder is reused, a damaged one
    written again: a cache is never trusted blindly)."""
    out = Path(out_dir)
    done = out / "COMPLETE"
    if done.exists():
        problem = damage(out)
        if problem is None:
            return out
        log.warning("synthetic data %s: %s; writing it again", out, problem)
    written = {}  # relative path -> sha1 of the bytes written, for COMPLETE

    def write(rel, text):
        # no fsync per file (one per user costs more than drawing it): COMPLETE's sha1s catch a
        # file a crash left torn, and the folder is written again
        write_atomic(out / rel, text, fsync=False)
        written[rel] = hashlib.sha1(text.encode()).hexdigest()
    rng = np.random.default_rng(seed)
    (out / "profiles").mkdir(parents=True, exist_ok=True)

    n_tags = 400
    tag_pop = 1.0 / np.arange(1, n_tags + 1) ** 0.9  # Zipf-like use
    tag_pop /= tag_pop.sum()
    tag_cdf = np.cumsum(tag_pop)
    tag_cdf /= tag_cdf[-1]
    tag_appeal = rng.normal(0, 0.25, n_tags)
    class_effect = np.linspace(-0.6, 0.6, N_VISUAL_CLASSES)
    weekday_effect = np.array([-0.1, -0.15, -0.08, 0.0, 0.08, 0.25, 0.2])

    # latent.csv is written as users are drawn (a few thousand rows held at a time, whatever n_users)
    latent_sha, latent, started = hashlib.sha1(), [], time.time()
    with open_atomic(out / "latent.csv") as latent_file:
        def flush(header):
            text = pd.DataFrame(latent, columns=LATENT_COLUMNS).to_csv(index=False, header=header)
            latent_file.write(text.encode())
            latent_sha.update(text.encode())
            latent.clear()

        for u in range(n_users):
            alias = f"user{u:04d}"
            followers = int(np.clip(np.exp(rng.normal(8.5, 1.6)), 30, 990_000))
            following = int(np.exp(rng.normal(6.0, 1.0)))
            engagement = np.exp(rng.normal(np.log(0.05), 0.6))
            trend = rng.normal(0.0, 0.0015)  # log-likes per day
            tag_rate = rng.uniform(0, 12)
            n_posts = int(rng.integers(min_posts, max_posts + 1))
            span = rng.uniform(60, 400)
            ages = np.sort(rng.uniform(0, span, n_posts))  # days before the scrape
            base = np.log(followers * engagement)
            posts = []
            for i, age in enumerate(ages.tolist()):
                date = SCRAPE - timedelta(days=age, hours=float(rng.uniform(0, 1)))
                quality = rng.normal()
                visual = min(max(round((quality + rng.normal(0, 0.5)) * 1.6 + 3.5), 0), 7)
                k = int(rng.poisson(tag_rate))
                tags = _draw_tags(rng, tag_pop, tag_cdf, min(k, 30))
                n_mentions = int(rng.poisson(0.6))
                # Popular tags bring reach (learnable from the hashtag score); appeal is hidden.
                n_popular = sum(1 for t in tags if t < 40)
                tag_effect = 0.08 * n_popular + (0.2 * float(np.tanh(tag_appeal[tags].sum())) if tags else 0.0)
                log_likes = base + weekday_effect[date.weekday()] + tag_effect
                log_likes += class_effect[visual] + 0.25 * quality - 0.06 * n_mentions
                log_likes += -trend * age + rng.normal(0, 0.2)
                maturity = 1 - np.exp(-age / 0.7)  # likes still arriving on young posts
                likes = max(1, int(np.exp(log_likes) * maturity))
                fname = f"{alias}_{i:03d}.jpg"
                posts.append({
                    "url": f"https://example.invalid/p/{alias}/{i}",
                    "urlImage": f"https://example.invalid/img/{fname}",
                    "isVideo": False, "multipleImage": bool(rng.random() < 0.03),
                    "tags": [f"tag{t}" for t in tags],
                    "mentions": [f"@friend{int(m)}" for m in rng.integers(0, 50, n_mentions)],
                    "description": " ".join(["#" + f"tag{t}" for t in tags]) or "a post",
                    "localization": None,
                    "date": date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "numberLikes": likes, "filename": fname,
                })
                latent.append((alias, fname, quality, visual))
            profile = {
                "alias": alias, "username": alias.title(), "numberPosts": n_posts + int(rng.integers(0, 300)),
                "numberFollowers": followers, "numberFollowing": following, "private": False,
                "posts": posts[::-1],  # newest first, as the scraper wrote them
            }
            write(f"profiles/{alias}.json", json.dumps(profile))
            if len(latent) >= LATENT_ROWS or u == n_users - 1:
                flush(header=latent_file.tell() == 0)
                if n_users >= 1000:
                    log.info("synthetic data: %d of %d users written (%.0f s)", u + 1, n_users, time.time() - started)
        if n_users == 0:
            flush(header=True)
    written["latent.csv"] = latent_sha.hexdigest()
    write_atomic(done, json.dumps({"files": written}, indent=0))
    return out


LATENT_COLUMNS = ["alias", "filename", "quality", "visual_class"]
LATENT_ROWS = 100_000  # latent.csv rows held before they are written


def _draw_tags(rng, p, cdf, size) -> list:
    """`rng.choice(len(p), size, replace=False, p=p)` as a list, drawing the same numbers from `rng`
    (tested equal) in a tenth of the time: numpy's own loop, with the first pass's cdf computed once."""
    x = rng.random(size)
    found = list(dict.fromkeys(cdf.searchsorted(x, side="right").tolist()))
    if len(found) == size:
        return found
    p = p.copy()
    while len(found) < size:  # numpy's loop: zero the drawn, redraw the rest
        x = rng.random(size - len(found))
        p[found] = 0
        c = np.cumsum(p)
        c /= c[-1]
        new = c.searchsorted(x, side="right")
        _, first = np.unique(new, return_index=True)
        first.sort()
        found += new.take(first).tolist()
    return found


IMAGE_SIZE = 64  # side of the drawn images (data.image_size); small: the classes show at 32


def image_dir(folder, size=None) -> Path:
    """Where the posts' images go: `images/` at the default size, `images_<size>/` otherwise."""
    size = int(size or IMAGE_SIZE)
    return Path(folder) / ("images" if size == IMAGE_SIZE else f"images_{size}")


def draw_images(folder, size=None, seed=0) -> Path:
    """Draw one picture per post (its `visual_class`) into `image_dir`; files there are kept."""
    from likepred.synthetic.images import render_images

    out = image_dir(folder, size)
    drawn = render_images(Path(folder) / "latent.csv", out, size=int(size or IMAGE_SIZE), seed=seed,
                          progress=sys.stderr.isatty())  # a bar on a terminal, not in a log file
    if drawn:
        log.info("synthetic images: drew %d into %s", drawn, out)
    return out


def read_latent(latent_csv, n_classes: int = N_VISUAL_CLASSES) -> pd.DataFrame:
    """The generator's per-image truth (filename, visual_class), checked, for image/label generators."""
    try:
        rows = pd.read_csv(latent_csv, usecols=["filename", "visual_class"])
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the latent table: {e}", file=str(latent_csv)) from e
    bad = ~rows["visual_class"].isin(range(n_classes))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"visual_class must be 0..{n_classes - 1}, got {rows['visual_class'].iloc[i]!r}",
                        file=str(latent_csv), record=i, field="visual_class")
    return rows
