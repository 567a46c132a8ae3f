"""A deterministic synthetic Instagram: users and posts in the profiles format.

Likes follow the real data's shape: heavy-tailed followers, likes driven by
followers and a per-user engagement rate, plus effects a model can learn
beyond the user's median: weekday, hashtag appeal, mentions, a per-user
trend over time, and a hidden post `quality`. Part of the quality shows in
the post's `visual_class` (what later image and label generators draw),
the rest is noise. Posts younger than ~2 days have not collected their likes
yet, as in the real scrape.

The latent variables go to `latent.csv` beside the profiles; no reader
looks at it, tests and the image/label generators do (`load_dataset` writes
`labels.json` from it with `likepred.synthetic.labels`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import DataError
from likepred.files import write_atomic

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
        write_atomic(out / rel, text)
        written[rel] = hashlib.sha1(text.encode()).hexdigest()
    rng = np.random.default_rng(seed)
    (out / "profiles").mkdir(parents=True, exist_ok=True)

    n_tags = 400
    tag_pop = 1.0 / np.arange(1, n_tags + 1) ** 0.9  # Zipf-like use
    tag_pop /= tag_pop.sum()
    tag_appeal = rng.normal(0, 0.25, n_tags)
    class_effect = np.linspace(-0.6, 0.6, N_VISUAL_CLASSES)
    weekday_effect = np.array([-0.1, -0.15, -0.08, 0.0, 0.08, 0.25, 0.2])

    latent = []
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
        posts = []
        for i, age in enumerate(ages):
            date = SCRAPE - timedelta(days=float(age), hours=float(rng.uniform(0, 1)))
            quality = rng.normal()
            visual = int(np.clip(np.round((quality + rng.normal(0, 0.5)) * 1.6 + 3.5), 0, 7))
            k = int(rng.poisson(tag_rate))
            tags = list(rng.choice(n_tags, size=min(k, 30), replace=False, p=tag_pop))
            n_mentions = int(rng.poisson(0.6))
            # Popular tags bring reach (learnable from the hashtag score); appeal is hidden.
            n_popular = sum(1 for t in tags if t < 40)
            tag_effect = 0.08 * n_popular + (0.2 * float(np.tanh(tag_appeal[tags].sum())) if tags else 0.0)
            log_likes = np.log(followers * engagement) + weekday_effect[date.weekday()] + tag_effect
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
            latent.append({"alias": alias, "filename": fname,
                           "quality": quality, "visual_class": visual})
        profile = {
            "alias": alias, "username": alias.title(), "numberPosts": n_posts + int(rng.integers(0, 300)),
            "numberFollowers": followers, "numberFollowing": following, "private": False,
            "posts": posts[::-1],  # newest first, as the scraper wrote them
        }
        write(f"profiles/{alias}.json", json.dumps(profile))
    write("latent.csv", pd.DataFrame(latent).to_csv(index=False))
    write_atomic(done, json.dumps({"files": written}, indent=0))
    return out


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
