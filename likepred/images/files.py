"""Reading post images, and what to do about missing or unreadable ones (`images.on_missing`).

No Keras here: the feature cache's warm path and the error grid need none.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
from PIL import Image

from likepred.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ON_MISSING = ("error", "skip")
READ_ERRORS = (OSError, ValueError, Image.DecompressionBombError)  # what a bad image file raises
_reported: set = set()  # paths already reported in this process: each is named once
_lock = threading.Lock()


def load_image(path, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]; raises one of READ_ERRORS for a missing or bad file."""
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much bigger
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img)


def names(paths, shown=5) -> str:
    out = [os.path.basename(p) if isinstance(p, str) and p else "(a post without an image name)"
           for p in list(paths)[:shown]]
    return ", ".join(out) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def check_on_missing(on_missing):
    if on_missing not in ON_MISSING:
        raise ConfigError(f"images.on_missing={on_missing!r} is unknown; choose one of: {', '.join(ON_MISSING)}")


def report_once(paths, what: str) -> None:
    """Warn about bad images, naming each file once per process."""
    with _lock:
        new = [p for p in dict.fromkeys(paths) if p not in _reported]
        _reported.update(new)
    if new:
        log.warning("%s %d image(s), going on without them (images.on_missing=skip): %s",
                    what, len(new), names(new))


def missing_files(paths, on_missing: str) -> set:
    """Paths that are not files: DataError for on_missing=error, else reported once and returned."""
    check_on_missing(on_missing)
    missing = [p for p in dict.fromkeys(paths) if not (isinstance(p, str) and os.path.isfile(p))]
    if missing and on_missing == "error":
        raise DataError(
            f"{len(missing)} of {len(paths)} images are missing ({names(missing)}): download them with "
            "`python -m likepred.images download ...`, point images.dir at them, or set images.on_missing=skip",
            file=missing[0])
    report_once(missing, "missing:")
    return set(missing)


def unreadable(path, error, on_missing: str) -> None:
    """An image that would not decode: DataError for on_missing=error, else reported once."""
    if on_missing == "error":
        raise DataError(f"cannot read the image ({error}); set images.on_missing=skip to go on without it",
                        file=path)
    report_once([path], "unreadable:")
