"""Writing files so that a crash never leaves a half-written one under the final name."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where likepred keeps what it computes once (synthetic data, features, compiled programs)."""
    return Path(os.environ.get("LIKEPRED_CACHE") or "~/.cache/likepred").expanduser()


@contextmanager
def file_lock(path, waiting: str | None = None):
    """Hold an exclusive flock on `path` (created if missing) for the block: one process at a time,
    across machines too where the shared file system supports flock (NFS v4, CephFS, GPFS, Lustre
    mounted with -o flock). When another process holds it, logs `waiting` (one INFO line) and
    blocks until it is released; the kernel releases a holder's lock when it ends, killed too, so
    a dead holder never leaves it held. Where flock is not supported (no fcntl; ENOLCK, ENOSYS,
    EOPNOTSUPP, EINVAL from the file system) the block runs unlocked (one DEBUG line). A lock
    file that cannot be opened (a read-only folder) raises OSError."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        log.debug("no flock on this platform: %s not locked", path)
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                log.info("%s", waiting)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            log.debug("flock not supported on %s (%s): not locked", path, e.strerror or e)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path, suffix: str = ".tmp", fsync: bool = True, durable_rename: bool = False):
    """The one atomic writer: yields a temp path beside `path` (a hidden `.NAME.*SUFFIX`) for the
    block to write (by name: h5py, np.savez, ...); when the block ends without error it is
    fsynced (unless `fsync=False`), made 0644 and renamed over `path`, and with `durable_rename`
    the folder is fsynced too (the rename survives a power cut). The rename is atomic on one
    filesystem: readers see the old file or the new one. On an error the temp file is deleted;
    a crash leaves at most the temp file, which writers that resume can recognise and delete.
    A full disk names the file it was for."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; caches are shared
        os.replace(tmp, path)
        if durable_rename:
            _fsync(path.parent)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not e.filename:  # a full disk: name the file it was for
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def write_atomic(path, data: bytes | str, suffix: str = ".tmp", fsync: bool = True) -> None:
    """Write `data` (text as UTF-8) to `path` atomically (`atomic_path`)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, suffix, fsync) as tmp:
        tmp.write_bytes(raw)


@contextmanager
def open_atomic(path, suffix: str = ".tmp", fsync: bool = True):
    """A binary file to write in pieces (a table too big to hold), renamed over `path` when the
    block ends without error (`atomic_path`)."""
    with atomic_path(path, suffix, fsync) as tmp, open(tmp, "wb") as f:
        yield f


def write_npz(path, **arrays) -> None:
    """np.savez, atomically (a full disk leaves no truncated .npz under the final name)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())
