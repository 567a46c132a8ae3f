"""Which data and which code a run saw: its train / val / test rows as MLflow datasets, a digest
over the rows' full content and the reader's settings, the git commit (and whether the checkout
had uncommitted changes) and likepred's version. A sweep's resume compares the digest
(likepred.tracking.sweep.reuse_finished), so a job whose data changed runs again.

The digest (format 2, `likepred.data_digest_format`) hashes each column's bytes in C: numbers and
dates as they lie in memory, text and lists of text through Arrow (offsets and UTF-8 bytes), never
a text copy of the frame: 10-14x faster than format 1 (every cell's str()) at 700 k posts
(docs/scale.md). Runs tagged before format 2 are compared in format 1 on resume, computed then,
once per resume pass. MLflow's datasets get our digest, the real row count and a schema inferred
from SAMPLE rows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger("likepred")
DIGEST_TAG = "likepred.data_digest"  # bookkeeping tags live under likepred. (runs before: "data_digest")
FORMAT_TAG = "likepred.data_digest_format"  # absent: the first format (every cell's text), see _digest_v1
FORMAT = "2"
CHUNK = 1 << 20  # rows of an object column converted to Arrow at a time (bounds the copy)


def _settings(data_cfg) -> str:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(data_cfg, DictConfig):
        values = OmegaConf.to_container(data_cfg, resolve=True)
    else:
        values = dict(data_cfg or {})
    return json.dumps(values, sort_keys=True, default=str)


def _lengths(offsets) -> bytes:
    """Arrow offsets (int32 or int64) as each value's length, in the same bytes for both widths."""
    import numpy as np

    lengths = np.diff(offsets)
    return lengths.astype(np.int32, copy=False).tobytes() if len(lengths) and lengths.max() < 2**31 else \
        lengths.astype(np.int64).tobytes()


class _Streams:
    """One column's hashes, kept apart by what they hash (null positions, lengths, bytes; per
    nesting level), so that an Arrow column gives the same digest however it is chunked (object
    columns are cut at fixed rows, CHUNK)."""

    def __init__(self):
        self.hashes, self.rows = {}, {}

    def put(self, name: str, data) -> None:
        self.hashes.setdefault(name, hashlib.sha256()).update(data)

    def arrow(self, arr, path: str = "") -> None:
        """An Arrow string or list<string> array (or chunked): null positions, each value's length
        and the UTF-8 bytes, down the nesting."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        for chunk in (arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]):
            base = self.rows.get(path, 0)
            self.rows[path] = base + len(chunk)
            if chunk.null_count:
                nulls = pc.is_null(chunk).to_numpy(zero_copy_only=False)
                self.put(path + "nulls", (np.flatnonzero(nulls) + base).astype(np.int64).tobytes())
            kind = chunk.type
            if pa.types.is_list(kind) or pa.types.is_large_list(kind):
                off = chunk.offsets.to_numpy()
                self.put(path + "lengths", _lengths(off))
                self.arrow(chunk.values.slice(off[0], off[-1] - off[0]), path + "[]")
            elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
                _, offsets, data = chunk.buffers()
                width = np.int64 if pa.types.is_large_string(kind) else np.int32
                off = np.frombuffer(offsets, width)[chunk.offset:chunk.offset + len(chunk) + 1]
                self.put(path + "lengths", _lengths(off))
                if data is not None and off[-1] > off[0]:
                    self.put(path + "bytes", memoryview(data)[off[0]:off[-1]])
            else:
                raise TypeError(f"no digest for Arrow type {kind}")

    def objects(self, values) -> None:
        """An object column (lists of strings, strings, None; other values by their text), in
        pieces of CHUNK rows: each piece's value types, then the values of each type via Arrow."""
        import numpy as np
        import pyarrow as pa

        for start in range(0, len(values), CHUNK):
            piece = values[start:start + CHUNK]
            kinds = sorted(set(map(type, piece)), key=lambda t: (t.__module__, t.__qualname__))
            self.put("types", (",".join(t.__qualname__ for t in kinds) + ";").encode())
            if len(kinds) > 1:  # which row holds which type
                code = {t: i for i, t in enumerate(kinds)}
                codes = np.fromiter(map(code.__getitem__, map(type, piece)), np.uint8, len(piece))
                self.put("type of each", codes.tobytes())
            for i, t in enumerate(kinds):
                part = piece if len(kinds) == 1 else piece[codes == i]
                if t is type(None):
                    continue
                path = t.__qualname__ + ":"
                try:
                    if t is str:
                        self.arrow(pa.array(part, pa.string()), path)
                        continue
                    if t in (list, tuple, np.ndarray):
                        self.arrow(pa.array(part, pa.list_(pa.string())), path)
                        continue
                except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):  # lists of numbers, lone surrogates
                    pass
                text = [str(v).encode("utf-8", "surrogatepass") for v in part]  # rare: per value in Python
                self.arrow(pa.array(text, pa.binary()), path + "text:")

    def digest(self) -> bytes:
        return b"".join(name.encode() + b"=" + h.digest() for name, h in sorted(self.hashes.items()))


def _column(series) -> bytes:
    """One column's content hash: numbers, booleans and dates by their bytes, text via Arrow
    (no copy for pandas' Arrow strings), object columns (tags, mentions) by their values."""
    import numpy as np
    import pandas as pd

    s = _Streams()
    dtype = series.dtype
    if dtype == object:
        s.objects(series.to_numpy())
    elif isinstance(dtype, pd.StringDtype):
        import pyarrow as pa

        try:
            s.arrow(pa.array(series.array))  # pandas' Arrow strings: no copy
        except UnicodeEncodeError:  # Python-held text with a lone surrogate
            s = _Streams()
            s.objects(series.to_numpy(dtype=object))
    elif isinstance(dtype, np.dtype) and dtype.kind in "biufmM":
        s.put("bytes", np.ascontiguousarray(series.to_numpy()).view(np.uint8))
    else:  # categories, nullable integers, dates with a time zone, ...
        s.put("hashes", pd.util.hash_pandas_object(series, index=False).to_numpy().tobytes())
    return f"{dtype}:".encode() + s.digest()


def digest(posts, data_cfg=None) -> str:
    """16 hex digits over every cell of `posts` (in order) and the reader's settings (the
    format of FORMAT_TAG). Work per column is in C (Arrow, NumPy), not a text copy of the frame."""
    h = hashlib.sha256(f"likepred digest {FORMAT}\n".encode())
    h.update(_settings(data_cfg).encode())
    h.update(f"\n{len(posts)} rows\n".encode())
    for name in posts.columns:
        h.update(json.dumps(str(name)).encode() + b":" + hashlib.sha256(_column(posts[name])).digest())
    return h.hexdigest()[:16]


def _digest_v1(posts, data_cfg=None) -> str:
    """The first format (runs without FORMAT_TAG): every cell's text. Slow (a text copy of the
    frame); computed only to compare with such a run on resume."""
    import pandas as pd

    h = hashlib.sha256(_settings(data_cfg).encode())
    h.update(",".join(map(str, posts.columns)).encode())
    if len(posts):
        flat = posts.astype(str)  # lists (tags, mentions), timestamps: their text
        h.update(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def source_of(data_cfg) -> str:
    """Where the rows were read from: the reader's path, else the generator's name and seed."""
    path = data_cfg.get("path")
    if path:
        return str(Path(str(path)).expanduser().resolve())
    return f"{data_cfg.get('source')}:seed={data_cfg.get('seed')}"


SAMPLE = 100  # rows MLflow infers a dataset's schema from (its profile counts every row)


def _dataset(posts, source: str, name: str, digest_: str):
    """An MLflow pandas dataset of `posts` without handing MLflow every row: its schema is inferred
    from the first SAMPLE rows (lists and other objects as text), its profile counts all rows and
    cells, its digest is ours."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import PandasDataset

    head = posts.head(SAMPLE).reset_index(drop=True)
    head = head.assign(**{c: head[c].astype(str) for c in head.columns if head[c].dtype == object})
    profile = {"num_rows": len(posts), "num_elements": int(posts.size)}

    class Rows(PandasDataset):
        profile = property(lambda self: profile)

    with warnings.catch_warnings():  # "the source can be interpreted in multiple ways", integer-column
        warnings.simplefilter("ignore")  # hints, pandas deprecations inside MLflow's schema inference
        ds = Rows(head, resolve_dataset_source(source), name=name, digest=digest_)
        ds.schema  # inferred here, once (MLflow caches it)
    return ds


def log_datasets(frames: dict, data_cfg, name: str, all_posts) -> None:
    """Log each {context: posts rows} as an MLflow dataset input of the active run (contexts
    train, validation, test), and tag the run `likepred.data_digest`: the digest of every post read
    (`all_posts`, as `load_dataset` returns them), which a sweep's resume compares."""
    import mlflow

    source = source_of(data_cfg)
    for context, posts in frames.items():
        _log_input(_dataset(posts, source, f"{name}-{context}", digest(posts, data_cfg)), context)
    mlflow.set_tags({DIGEST_TAG: digest(all_posts, data_cfg), FORMAT_TAG: FORMAT})


def _log_input(ds, context, tries: int = 3) -> None:
    """mlflow.log_input, again when a sweep's other job inserted the same dataset at the same
    moment (MLflow's SQL store checks, then inserts: parallel jobs on one server race on the
    dataset's primary key); the second try finds the dataset and only links it to this run."""
    import time

    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(tries):
        try:
            mlflow.log_input(ds, context=context)
            return
        except MlflowException as e:
            text = str(e).lower()
            if attempt == tries - 1 or not ("unique" in text or "duplicate" in text or "integrity" in text):
                raise
            time.sleep(0.2 * (attempt + 1))


FORMATS = {"1": _digest_v1, FORMAT: digest}
_current: dict = {}  # (scope, data settings) -> {format: digest of what they read now}


def current_digest(data_cfg, fmt: str = FORMAT, scope=None) -> str:
    """The digest (format `fmt`) of what `data_cfg` reads now. Within one `scope` (a sweep's resume
    pass: its parent run) the data is read once per data settings, however many jobs ask."""
    key = (scope, _settings(data_cfg))
    if scope is None or next(iter(_current), key)[0] != scope:
        _current.clear()  # another pass: the files may have changed since
    known = _current.setdefault(key, {})
    if fmt not in known:
        from likepred.data import load_dataset

        known[fmt] = FORMATS[fmt](load_dataset(data_cfg).posts, data_cfg)
    return known[fmt]


def data_changed(run, data_cfg, scope=None) -> str | None:
    """Why a finished run's data differs from what `data_cfg` reads now (None: the same, or
    unknown). A run tagged before FORMAT_TAG is compared in its own (slow) format; `scope`:
    current_digest's."""
    old = run.data.tags.get(DIGEST_TAG) or run.data.tags.get("data_digest")
    fmt = run.data.tags.get(FORMAT_TAG, "1")
    if not old or fmt not in FORMATS:  # a later likepred's format: unknown here
        return None
    new = current_digest(data_cfg, fmt, scope)
    return None if new == old else f"its data changed (digest {old} -> {new})"


@functools.cache
def code_tags() -> dict:
    """likepred's version, and the git commit and dirty flag of the checkout likepred runs from (if any)."""
    import likepred

    tags = {"likepred.version": likepred.__version__}
    root = Path(likepred.__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode == 0 and git("rev-parse", "--show-toplevel").stdout.strip() == str(root):
            dirty = git("status", "--porcelain", "--untracked-files=no")
            tags["mlflow.source.git.commit"] = head.stdout.strip()  # where MLflow's UI shows a commit
            tags["likepred.git_dirty"] = str(bool(dirty.stdout.strip())).lower()
    except (OSError, subprocess.SubprocessError):  # no git: an installed package says its version only
        pass
    return tags
