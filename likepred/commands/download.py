"""`likepred download [KEY=VALUE ...]` (old spelling: `python -m likepred.images download`): fetch every
post's image (see --help)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

CONF = str(Path(__file__).resolve().parents[1] / "conf")  # likepred/conf
USAGE = """usage: likepred download [KEY=VALUE ...]   (or: python -m likepred.images download ...)

Download the image of every post (each image of a multi-image post) of the data that the
same config as `python -m likepred` names, resized to images.size x images.size (RGB JPEG),
into images.dir under the file name the data uses (else the URL's last part). Bounded
concurrency; network errors and HTTP 5xx are retried with backoff, a 404 never. A second
run skips files already complete. Ends with the counts downloaded / skipped / failed and
a CSV of the failures with their reason; exit status 1 when any failed, 2 on a bad config.

examples:
  python -m likepred.images download data=profiles data.path=DIR images.dir=DIR/images
  python -m likepred.images download data=study_csv data.path=posts.csv images.dir=imgs images.size=128

settings (conf/images/default.yaml; any key of the run config can be overridden):
  images.dir                 where the files go (= paths.images)
  images.size                side in pixels (256, the study's); null keeps each image's size
  images.download.workers    concurrent downloads (16)
  images.download.retries    tries after the first on network errors and 5xx (3)
  images.download.backoff    seconds before the first retry, doubled each time (0.5)
  images.download.timeout    seconds per try, all of it: connect, redirects, body (30)
  images.download.max_mb     a bigger body fails (50); so does an image over Pillow's pixel limit
  images.download.failures_csv   null: <images.dir>/download_failures.csv, written as failures come
"""


def download(overrides):
    """Compose the run config with `overrides` and download its posts' images."""
    from hydra import compose, initialize_config_dir

    from likepred.data import read_posts
    from likepred.errors import ConfigError
    from likepred.images.download import check_settings, download_images, items_from_posts

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    img, dl = cfg.images, cfg.images.download
    out_dir = img.dir
    if not out_dir:
        raise ConfigError("images.dir is not set: name the folder for the images, e.g. images.dir=DIR/images")
    size = None if img.size is None else (int(img.size), int(img.size))
    check_settings(size, dl.workers, dl.retries, dl.backoff, dl.timeout, dl.max_mb)  # before any data is read
    posts, _, _, _ = read_posts(cfg.data)  # every post, before the experiment filters
    items = items_from_posts(posts)
    logging.getLogger("likepred").info("%d images of %d posts -> %s", len(items), len(posts), out_dir)
    failures_csv = dl.failures_csv or str(Path(out_dir) / "download_failures.csv")
    report = download_images(items, out_dir, size=size, workers=dl.workers, retries=dl.retries,
                             backoff=dl.backoff, timeout=dl.timeout, progress=True, failures_csv=failures_csv,
                             max_mb=dl.max_mb)
    if report.failed:
        print(f"{report.failed} failed; reasons in {failures_csv}", file=sys.stderr)
    return report


def main(argv=None) -> int:
    """`likepred download [KEY=VALUE ...]`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["help"] or "--help" in argv or "-h" in argv:
        print(USAGE)
        return 0
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from likepred.errors import LikepredError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = download(argv)
    except (LikepredError, HydraException, OmegaConfBaseException) as e:
        print(f"likepred.images: error: {' '.join(str(e).split())}", file=sys.stderr)  # Hydra's: several lines
        return 2
    except KeyboardInterrupt:  # Ctrl-C: complete images stay, a rerun skips them
        print("\nlikepred.images: interrupted (Ctrl-C); the images written so far are complete, and the same "
              "command goes on from there", file=sys.stderr)
        return 130
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
