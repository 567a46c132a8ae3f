"""The deterministic synthetic Instagram: profiles (with their hidden variables), Vision-style
labels and post images, written in the profiles format so that `data/` reads it like any folder.

`profiles` draws users and posts (and `latent.csv`, the hidden truth); `labels` and `images`
derive labels.json and JPEGs from that truth, on first use (only runs that read them pay).
Nothing here imports the readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from likepred.synthetic.profiles import draw_images, generate, image_dir, params_key


def ensure(path, n_users=300, min_posts=8, max_posts=40, seed=0) -> Path:
    """The dataset folder for these settings, written once: profiles/ and latent.csv (labels and
    images are drawn on first use: `LabelSpec`, `ImageSpec`)."""
    folder = Path(path) / params_key(n_users, min_posts, max_posts, seed)
    generate(folder, n_users, min_posts, max_posts, seed)
    return folder


@dataclass(frozen=True)
class ImageSpec:
    """Images a synthetic dataset can draw on first use (only image runs pay for them)."""

    folder: str
    size: int | None
    seed: int

    def draw(self) -> Path:
        return draw_images(self.folder, self.size, self.seed)


@dataclass(frozen=True)
class LabelSpec:
    """Vision labels a synthetic dataset can draw on first use (only label runs pay for them):
    `folder/labels.json`, written once; an existing file is reused."""

    folder: str
    seed: int

    @property
    def path(self) -> Path:
        return Path(self.folder) / "labels.json"

    def draw(self) -> Path:
        from likepred.synthetic.labels import ensure_labels

        return ensure_labels(self.folder, self.seed)


__all__ = ["ImageSpec", "LabelSpec", "draw_images", "ensure", "generate", "image_dir", "params_key"]
