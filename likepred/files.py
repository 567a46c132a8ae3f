"""Writing files so that a crash never leaves a half-written one under the final name."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """Where likepred keeps what it computes once (synthetic data, features, compiled programs)."""
    return Path(os.environ.get("LIKEPRED_CACHE") or "~/.cache/likepred").expanduser()


def write_atomic(path, data: bytes | str, suffix: str = ".tmp", fsync: bool = True) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path`.

    The rename is atomic on one filesystem: readers see the old file or the
    new one. A crash leaves at most a hidden `.NAME.*SUFFIX` temp file, which
    writers that resume can recognise and delete.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; caches are shared
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not e.filename:  # a full disk: name the file it was for
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


@contextmanager
def open_atomic(path, suffix: str = ".tmp", fsync: bool = True):
    """A binary file to write in pieces (a table too big to hold), renamed over `path` when the
    block ends without error, as `write_atomic` does; on an error the temp file is deleted."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_npz(path, **arrays) -> None:
    """np.savez, atomically (a full disk leaves no truncated .npz under the final name)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())
