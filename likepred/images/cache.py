"""A persistent cache of image features, keyed by extractor and image content.

Layout, per extractor key, under the cache folder:

    <stem>.h5          merged features: datasets `hashes` (S40) and `features`
                       (n, dim) float32; attrs `extractor_key`, `dim`
    <stem>.pending/    one small .npz shard per extracted batch, not merged yet
    <stem>.lock        flock target

Why this shape: an HDF5 file written in place can be left unreadable by a
kill mid-write, so no named file is ever written in place. Each batch goes to
a new shard (temp file, fsync, os.replace), and `compact()` merges the shards
into a new .h5 written beside the old one and swapped in with os.replace,
then deletes the shards it merged. A kill at any moment leaves the old or the
new .h5 plus complete shards (maybe already merged: duplicates are harmless),
so the cache always opens and a rerun computes only what is missing.

Concurrency (sweeps): writing a shard needs no lock (unique names).
`compact()` holds an exclusive flock on <stem>.lock; readers hold a shared
one while they read the .h5 and the shards, so a merge cannot delete a shard
between a reader's two looks. HDF5's own file locking is off: named files
are never modified, and it fails on some network filesystems.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from likepred.errors import ConfigError, DataError, LikepredError
from likepred.files import atomic_path, open_atomic

log = logging.getLogger(__name__)

BLOCK = 1024  # rows read or copied at a time: bounded memory for big caches
STALE_TEMP_S = 3600  # temp files older than this belong to dead writers


def extractor_key(name: str, weights: str, input_size) -> str:
    """The identity of an extractor: same key <=> same features for an image."""
    w, h = (input_size, input_size) if isinstance(input_size, int) else input_size
    return f"{name}|weights={weights}|input={w}x{h}"


def content_hash(path) -> str:
    """sha1 of the file's bytes; a missing or unreadable file is a DataError."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"cannot read the image: {e.strerror or e}", file=path) from e
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0  # images whose features came from the cache
    computed: int = 0  # images the extractor ran on
    failed: int = 0  # images left as NaN rows (errors="nan")
    seconds: float = 0.0


class FeatureCache:
    def __init__(self, path, extractor_key: str, dim: int):
        self.root = Path(path)
        self.key, self.dim = extractor_key, int(dim)
        # Readable stem plus a digest: distinct keys never share files.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", extractor_key)[:60]
        stem = f"{slug}-{hashlib.sha1(extractor_key.encode()).hexdigest()[:10]}"
        self.file = self.root / f"{stem}.h5"
        self.pending = self.root / f"{stem}.pending"
        self.lockfile = self.root / f"{stem}.lock"
        self.stats = CacheStats()  # of the latest cached_features call
        try:
            self.pending.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the feature cache folder {self.root}: {e.strerror or e}") from e
        self._check_file()

    # ------------------------------------------------------------ checks

    def _damage(self) -> str | None:
        """What is wrong with the merged file (None: sound). Another extractor's file is a ConfigError."""
        try:
            with h5py.File(self.file, "r", locking=False) as f:
                key, d = f.attrs.get("extractor_key"), int(f.attrs.get("dim", -1))
                if isinstance(key, str) and (key != self.key or d != self.dim):
                    raise ConfigError(
                        f"feature cache {self.file} holds key {key!r} dim {d}, "
                        f"not {self.key!r} dim {self.dim}: delete it or use another cache folder"
                    )
                if key is None or "hashes" not in f or "features" not in f:
                    return "its key or datasets are missing"
                n, shape = len(f["hashes"]), f["features"].shape
                if shape != (n, self.dim):
                    return f"{n} hashes but features of shape {shape}"
                if n:
                    f["features"][n - 1]  # the last row: a file cut short fails here if not at open
        except FileNotFoundError:
            return None
        except (OSError, KeyError, ValueError, TypeError) as e:
            return f"unreadable: {e}"
        return None

    def _check_file(self) -> None:
        """A damaged merged file (truncated, garbled) is set aside and its rows recomputed, never trusted."""
        if not self.file.exists():
            return
        with self._lock(exclusive=False):
            problem = self._damage()
        if problem is not None:
            self._set_aside(problem)

    def _set_aside(self, problem: str, inode=None) -> None:
        """Move the damaged merged file to <name>.bad, unless another process replaced it meanwhile
        (`inode`: the file found damaged; None: check it again)."""
        bad = self.file.with_name(f"{self.file.name}.bad")
        try:
            with self._lock(exclusive=True):
                try:
                    now = self.file.stat().st_ino
                except FileNotFoundError:
                    return
                if (now != inode) if inode is not None else self._damage() is None:
                    return
                os.replace(self.file, bad)
        except OSError as e:
            raise LikepredError(f"feature cache {self.file} is damaged ({problem}) and cannot be set aside "
                                f"({e.strerror or e}): delete it to rebuild") from e
        log.warning("feature cache %s is damaged (%s): moved to %s, its features will be recomputed",
                    self.file, problem, bad.name)

    def _warn_non_finite(self, n: int) -> None:
        log.warning("feature cache %s: %d cached row(s) hold NaN or inf; recomputing them", self.root, n)

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _lock(self, exclusive: bool):
        try:
            fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            if exclusive:
                raise
            fd = None  # read-only cache folder: nobody can be merging into it
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock

    def _open(self, path=None):
        path = path or self.file
        try:
            return h5py.File(path, "r", locking=False)
        except OSError as e:
            raise LikepredError(f"feature cache {path} cannot be read ({e}): delete it to rebuild") from e

    def _shards(self) -> list[Path]:
        return sorted(self.pending.glob("*.npz"))

    def _shard_hashes(self, shard: Path):
        try:
            with np.load(shard) as z:
                return z["hashes"].astype(str)
        except Exception as e:  # noqa: BLE001 - any damage: set it aside, keep going
            warnings.warn(f"feature cache: ignoring unreadable shard {shard}: {e}", stacklevel=3)
            try:
                os.replace(shard, shard.with_suffix(".bad"))
            except OSError:
                pass
            return None

    # ------------------------------------------------------------ API

    def __len__(self) -> int:
        with self._lock(exclusive=False):
            n = 0
            if self.file.exists():
                with self._open() as f:
                    n = len(f["hashes"])
            seen = set()
            for shard in self._shards():
                hs = self._shard_hashes(shard)
                seen.update([] if hs is None else hs)
            return n + len(seen)  # approximate only if shards repeat merged rows

    def get_many(self, hashes):
        """(features [n, dim] float32 with NaN rows where absent, found mask [n])."""
        hashes = list(hashes)
        out = np.full((len(hashes), self.dim), np.nan, np.float32)
        found = np.zeros(len(hashes), bool)
        want: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            want.setdefault(h, []).append(i)
        with self._lock(exclusive=False):
            damaged = self._take_merged(want, out, found)
            for shard in [] if damaged else self._shards():
                if not want:
                    break
                hs = self._shard_hashes(shard)
                if hs is not None and not want.keys().isdisjoint(hs.tolist()):
                    with np.load(shard) as z:
                        self._take(hs, z["features"], want, out, found)
        if damaged:
            self._set_aside(*damaged)
            return self.get_many(hashes)
        broken = found & ~np.isfinite(out).all(axis=1)  # written by a faulty extractor or damaged
        if broken.any():
            self._warn_non_finite(len({hashes[i] for i in np.flatnonzero(broken)}))
            out[broken], found[broken] = np.nan, False
        return out, found

    def _take_merged(self, want, out, found):
        """Rows of the merged file into `out`; (problem, inode) if it could not be read."""
        try:
            inode = self.file.stat().st_ino
        except FileNotFoundError:
            return None
        try:
            with h5py.File(self.file, "r", locking=False) as f:
                self._take(f["hashes"][()].astype(str), f["features"], want, out, found)
        except (OSError, KeyError, ValueError) as e:
            return f"unreadable: {e}", inode
        return None

    @staticmethod
    def _take(stored_hashes, features, want, out, found):
        """Copy rows of `features` whose hash is in `want` (and drop them from it)."""
        rows = [(r, want.pop(h)) for r, h in enumerate(stored_hashes.tolist()) if h in want]
        i = 0
        while i < len(rows):  # rows are in stored order: walk them block by block
            start = rows[i][0] // BLOCK * BLOCK
            block = features[start:start + BLOCK]
            while i < len(rows) and rows[i][0] < start + BLOCK:
                r, idx = rows[i]
                out[idx] = block[r - start]
                found[idx] = True
                i += 1

    def put_many(self, hashes, features) -> None:
        """Save one batch as a new shard, atomically."""
        hashes = np.asarray(list(hashes), dtype="S40")
        features = np.asarray(features, dtype=np.float32)
        if features.shape != (len(hashes), self.dim):
            raise LikepredError(
                f"extractor {self.key!r} returned features of shape {features.shape}, "
                f"expected ({len(hashes)}, {self.dim})"
            )
        if not len(hashes):
            return
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # No fsync: a kill cannot undo a finished write; after an OS crash a shard may be empty,
        # and an unreadable shard is set aside and recomputed. The merged .h5 is fsynced: it is
        # the one that counts.
        with open_atomic(self.pending / f"{name}.npz", suffix=".part", fsync=False) as f:
            np.savez(f, hashes=hashes, features=features)

    def compact(self) -> int:
        """Merge pending shards into the .h5 file; returns the rows added."""
        self._check_file()  # a damaged file is set aside, not merged into the new one
        with self._lock(exclusive=True):
            self._remove_stale_temps()
            shards = self._shards()
            if not shards:
                return 0
            old = self._open() if self.file.exists() else None
            try:
                keep = self._finite_rows(old["features"]) if old else np.zeros(0, bool)
                have = set(old["hashes"][()].astype(str)[keep].tolist()) if old else set()
                plan = []  # (shard, rows to add)
                for shard in shards:
                    hs = self._shard_hashes(shard)
                    if hs is None:
                        continue
                    with np.load(shard) as z:
                        finite = np.isfinite(z["features"]).all(axis=1)
                    rows = []
                    for r, h in enumerate(hs.tolist()):
                        if h not in have and finite[r]:
                            have.add(h)
                            rows.append(r)
                    plan.append((shard, rows))
                n_new = sum(len(rows) for _, rows in plan)
                if n_new or not keep.all():
                    self._write_merged(old, keep, plan)
            finally:
                if old:
                    old.close()
            for shard, _ in plan:  # only after the new .h5 is in place
                shard.unlink(missing_ok=True)
            return n_new

    @staticmethod
    def _finite_rows(features) -> np.ndarray:
        """Mask of the rows without NaN or inf, read block by block."""
        return np.concatenate([np.isfinite(features[s:s + BLOCK]).all(axis=1)
                               for s in range(0, len(features), BLOCK)] or [np.zeros(0, bool)])

    def _write_merged(self, old, keep, plan) -> None:
        """The old file's `keep` rows plus the plan's shard rows, into a new file swapped in."""
        n_old = int(keep.sum())
        n = n_old + sum(len(rows) for _, rows in plan)
        with atomic_path(self.file, durable_rename=True) as tmp:
            with h5py.File(tmp, "w", locking=False) as f:
                f.attrs["extractor_key"], f.attrs["dim"] = self.key, self.dim
                # fletcher32: a checksum per chunk, so garbled bytes fail on reading instead of
                # passing as features (the file is then set aside and rebuilt)
                hs = f.create_dataset("hashes", (n,), dtype="S40", chunks=(max(1, min(n, BLOCK)),),
                                      maxshape=(None,), fletcher32=True)
                ft = f.create_dataset("features", (n, self.dim), np.float32, chunks=(max(1, min(n, 64)), self.dim),
                                      maxshape=(None, self.dim), fletcher32=True)
                at = 0
                for start in range(0, len(keep), BLOCK):
                    stop = min(start + BLOCK, len(keep))
                    k = keep[start:stop]
                    hs[at:at + k.sum()] = old["hashes"][start:stop][k]
                    ft[at:at + k.sum()] = old["features"][start:stop][k]
                    at += int(k.sum())
                for shard, rows in plan:
                    if rows:
                        with np.load(shard) as z:
                            hs[at:at + len(rows)] = z["hashes"][rows]
                            ft[at:at + len(rows)] = z["features"][rows]
                        at += len(rows)

    def _remove_stale_temps(self) -> None:
        now = time.time()
        for p in [*self.pending.glob(".*.part"), *self.root.glob(f".{self.file.name}.*.tmp")]:
            try:
                if now - p.stat().st_mtime > STALE_TEMP_S:
                    p.unlink()
            except FileNotFoundError:
                pass


def _extract(fn, paths, dim, errors):
    """fn(paths) as float32 [n, dim]; on failure find the culprit image(s)."""
    try:
        return np.asarray(fn([str(p) for p in paths]), dtype=np.float32), []
    except ConfigError:  # the extractor cannot run at all (weights, settings): no image is to blame
        raise
    except Exception as batch_error:  # noqa: BLE001 - retried one by one below
        if len(paths) == 1:
            if errors == "raise":
                raise DataError(f"cannot extract image features: {batch_error}", file=paths[0]) from batch_error
            return np.full((1, dim), np.nan, np.float32), [0]
    rows, bad = [], []
    for i, p in enumerate(paths):
        row, failed = _extract(fn, [p], dim, errors)
        rows.append(row)
        bad += [i] if failed else []
    return np.concatenate(rows), bad


def cached_features(paths, fn, cache: FeatureCache, batch_size=32, progress=True, errors="raise"):
    """Features [len(paths), dim] float32 for `paths`, in order.

    `fn(list_of_path_strings) -> [n, dim]` runs only on images whose content
    is not cached yet, `batch_size` at a time; each batch is saved as it
    completes, so an interrupted call loses at most one batch. Identical
    files are extracted once. `errors="raise"`: a missing or unreadable image
    raises DataError naming it; `errors="nan"`: its row is NaN (not cached).
    Counts go to `cache.stats`.
    """
    if errors not in ("raise", "nan"):
        raise ConfigError(f"errors must be 'raise' or 'nan', got {errors!r}")
    start = time.perf_counter()
    paths = [Path(p) for p in paths]
    stats = CacheStats()
    hashes = []
    for p in paths:
        try:
            hashes.append(content_hash(p))
        except DataError:
            if errors == "raise":
                raise
            hashes.append(None)
    ok = [i for i, h in enumerate(hashes) if h is not None]
    out = np.full((len(paths), cache.dim), np.nan, np.float32)
    feats, found = cache.get_many([hashes[i] for i in ok])
    out[ok] = feats
    stats.hits = int(found.sum())
    stats.failed = len(paths) - len(ok)

    todo: dict[str, list[int]] = {}  # hash -> positions, first position extracted
    for i, f in zip(ok, found):
        if not f:
            todo.setdefault(hashes[i], []).append(i)
    items = list(todo.items())
    with tqdm(total=len(items), unit="img", desc="image features", disable=not progress) as bar:
        for b in range(0, len(items), batch_size):
            batch = items[b:b + batch_size]
            rows, bad = _extract(fn, [paths[pos[0]] for _, pos in batch], cache.dim, errors)
            if rows.shape != (len(batch), cache.dim):
                raise LikepredError(
                    f"extractor {cache.key!r} returned features of shape {rows.shape}, "
                    f"expected ({len(batch)}, {cache.dim})"
                )
            for j in range(len(batch)):  # NaN features are never cached: say which image gave them
                if j not in bad and not np.isfinite(rows[j]).all():
                    if errors == "raise":
                        raise DataError(f"extractor {cache.key!r} returned NaN or inf features for this image",
                                        file=paths[batch[j][1][0]])
                    rows[j], bad = np.nan, [*bad, j]
            keep = [j for j in range(len(batch)) if j not in bad]
            cache.put_many([batch[j][0] for j in keep], rows[keep])
            for j, (_, pos) in enumerate(batch):
                out[pos] = rows[j]
            stats.computed += len(keep)
            stats.failed += sum(len(batch[j][1]) for j in bad)
            bar.update(len(batch))
    if items:
        cache.compact()
    stats.seconds = time.perf_counter() - start
    cache.stats = stats
    return out
