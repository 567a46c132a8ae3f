"""Profiles and Instaloader folders read in parallel into a Parquet cache: the next read is a column load.

The first read of a folder parses its units (a profile file; an Instaloader profile folder) in a
process pool (one task per chunk of units, all cores), each worker validating with
`schema.parse_profile` and writing its chunk's posts to one Parquet part; the index (`index.json`)
records, per unit, its size and modification time, its part and what was wrong with it. A later read re-parses only files that changed or were added (a file
written in the last seconds is always re-read: its time cannot tell a quick rewrite apart) and
loads the rest from the parts. Problems are reported exactly as `schema.posts_and_users` reports
them (the same `assemble`), and the assembled table is cached too, so a warm read of an unchanged
folder is one Parquet load. Every cache file is written atomically (likepred/files.py), and a build
holds a lock on `build.lock` beside them: processes sharing the cache (sweep workers) wait for the
one building it and then load what it built, instead of each parsing the folder.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.data import schema
from likepred.errors import DataError
from likepred.files import cache_root, file_lock, open_atomic, write_atomic

log = logging.getLogger(__name__)

VERSION = 1  # bump when what a part or the index holds changes
RACY_S = 3.0  # files written this recently are re-read every time (mtime granularity)
CHUNK_BYTES = 32 << 20  # at most this much JSON per task (a worker holds its chunk's objects)
LIST_ROWS = 1 << 20  # rows of a list column made Python lists at a time
POOL_BYTES = 64 << 20  # smaller folders are parsed in this process (a pool costs 1-3 s to start)


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # bytes Python kept as lone surrogates
        return False


def _arrow_table(results, alias_of=None):
    """FileResults' good posts as one Arrow table (with a `file` column)."""
    import pyarrow as pa

    cols = {k: [] for k in schema.COLUMN_NAMES}
    alias, files = [], []
    for r in results:
        if r.columns is None:
            continue
        n = len(r.columns["post_index"])
        alias += [r.user[0]] * n
        files += [getattr(r, "unit", r.file)] * n
        for k in schema.COLUMN_NAMES:
            cols[k] += r.columns[k]
    data = {"file": pa.array(files, pa.string()).dictionary_encode(),
            "alias": pa.array(alias, pa.string()).dictionary_encode(),
            "post_index": pa.array(cols["post_index"], pa.int64()),
            "date_us": pa.array(cols["date_us"], pa.int64()),
            "likes": pa.array(cols["likes"], pa.int64()),
            "tags": pa.array(cols["tags"], pa.list_(pa.string())),
            "mentions": pa.array(cols["mentions"], pa.list_(pa.string())),
            "caption": pa.array(cols["caption"], pa.string())}
    for name in ("image", "url_image"):  # None, a string or a list of strings: a kind and a list
        vals = cols[name]
        data[name + "_kind"] = pa.array([0 if v is None else 1 if isinstance(v, str) else 2 for v in vals], pa.int8())
        data[name] = pa.array([v if v is None or not isinstance(v, str) else [v] for v in vals], pa.list_(pa.string()))
    data["multiple_image"] = pa.array(cols["multiple_image"], pa.bool_())
    data["is_video"] = pa.array(cols["is_video"], pa.bool_())
    data["localization"] = pa.array(cols["localization"], pa.string())
    return pa.table(data)


def _lists(arr) -> list:
    """An Arrow list<string> column as Python lists (None for null), without a Python call per value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    # one Python string per distinct value, shared by every list holding it (a tag used a million
    # times is one object, not a million)
    enc = pc.dictionary_encode(arr.flatten())
    names = np.array(enc.dictionary.to_pylist() + [None], dtype=object)
    codes = enc.indices.fill_null(len(enc.dictionary)).to_numpy()
    offsets = arr.offsets.to_numpy()
    offsets = offsets - offsets[0]
    out = []
    for start in range(0, len(arr), LIST_ROWS):  # the flat values a slice at a time: bounded temporaries
        off = offsets[start:start + LIST_ROWS + 1]
        flat = names[codes[off[0]:off[-1]]].tolist()
        off = (off - off[0]).tolist()
        out.extend(flat[a:b] for a, b in zip(off[:-1], off[1:]))
    if arr.null_count:
        for i in np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False)):
            out[i] = None
    return out


def _text(arr):
    """A string column as pandas makes it from Python values: its str dtype (NaN for None), or
    object Nones when every value is None."""
    import pyarrow as pa

    arr = arr.cast(pa.string())
    if len(arr) and arr.null_count == len(arr):
        return pd.Series([None] * len(arr), dtype=object)
    return arr.to_pandas()


def _mixed(table, name):
    import pyarrow.compute as pc

    kind = table[name + "_kind"].to_numpy()
    if not (kind == 2).any():  # all None or strings: the first element, no Python per value
        return _text(pc.list_element(table[name], 0)) if len(kind) else []
    vals = _lists(table[name])
    return [v[0] if k == 1 else v for v, k in zip(vals, kind)]


def to_posts(table) -> tuple[pd.DataFrame, np.ndarray]:
    """The posts DataFrame (schema.POST_COLUMNS) and each post's unit name, from an Arrow table."""
    import pyarrow as pa

    cols = {"post_index": table["post_index"].to_numpy(), "date_us": table["date_us"].to_numpy(),
            "likes": table["likes"].to_numpy(), "tags": _lists(table["tags"]),
            "mentions": _lists(table["mentions"]), "caption": _text(table["caption"]),
            "image": _mixed(table, "image"), "url_image": _mixed(table, "url_image"),
            "multiple_image": table["multiple_image"].to_numpy(zero_copy_only=False),
            "is_video": table["is_video"].to_numpy(zero_copy_only=False),
            "localization": _text(table["localization"])}
    return schema.posts_frame(_text(table["alias"]), None, cols), _files(table)


def _files(table) -> np.ndarray:
    """Each post's unit name: one Python string per unit, shared by its posts (not one per post)."""
    import pyarrow as pa

    col = table["file"]
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    names = np.array(col.dictionary.to_pylist(), dtype=object)
    return names[col.indices.to_numpy(zero_copy_only=False)] if len(col) else names[:0]


def _parse_profiles(folder: str, names: list, scrape_date):
    """(unit, FileResult) per profile file."""
    from likepred.data.profiles import read_json, shown

    for name in names:
        f = Path(folder) / name
        try:
            profile = read_json(f)
            written = datetime.fromtimestamp(f.stat().st_mtime, timezone.utc)
        except DataError as e:
            profile, written = e, None
        except OSError as e:
            profile, written = DataError(f"cannot read it: {e.strerror or e}", shown(name)), None
        yield name, schema.parse_profile(shown(name), profile, written, scrape_date)


def _parse_instaloader(folder: str, names: list, scrape_date):
    """(unit, FileResult) per Instaloader profile folder (named relative to `folder`, data.path)."""
    from likepred.data import instaloader

    il = instaloader._instaloader()
    context = il.InstaloaderContext(quiet=True)
    root = Path(folder)
    for name in names:
        try:
            file, profile = instaloader._folder(il, context, root / name, root)
        except DataError as e:  # data.on_error=skip drops the folder, as it drops a bad profile file
            file, profile = (root / name).name, e
        # Instaloader stamps each file with its post's date: no bound on dates but data.scrape_date
        yield name, schema.parse_profile(file, profile, None, scrape_date)


PARSERS = {"profiles": _parse_profiles, "instaloader": _parse_instaloader}


def _parse_chunk(kind: str, folder: str, names: list, scrape_date, part_path: str):
    """Worker: read and validate the units `names` of `folder`; write their posts to `part_path`;
    return the units' index entries."""
    import pyarrow.parquet as pq

    gc.disable()  # millions of small objects, none cyclic: collection only costs time
    try:
        results, entries = [], []
        for unit, r in PARSERS[kind](folder, names, scrape_date):
            r.unit = unit
            results.append(r)
            entries.append(r.meta() | {"n": 0 if r.columns is None else len(r.columns["post_index"])})
        table = _arrow_table(results)
        del results
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        write_atomic(part_path, buf.getvalue(), fsync=False)
        return entries
    finally:
        gc.enable()


class ProfilesFolder:
    """A folder of one-JSON-per-user profiles, read through the columnar cache (`read`). A unit
    (what is parsed, cached and re-read alone) is one file; for `InstaloaderFolder`, one profile
    folder."""

    kind = "profiles"

    def __init__(self, path):
        self.path = Path(path)
        self.parsed = []

    def _stats(self):
        """{unit name: (bytes, newest mtime in ns, ...)}, sorted by name: what says a unit changed."""
        folder = self.path
        if not folder.is_dir():
            raise DataError(f"profiles folder not found: {folder} (set data.path)", field="data.path")
        stats = {}
        with os.scandir(folder) as it:
            for e in it:
                if e.name.lower().endswith(".json"):  # .JSON too (as data.profiles reads them)
                    try:
                        st = e.stat()
                        stats[e.name] = (st.st_size, st.st_mtime_ns)
                    except OSError:
                        stats[e.name] = (-1, -1)  # a broken link: read (and reported) every time
        if not stats:
            raise DataError(f"no *.json profile files in {folder}", field="data.path")
        return dict(sorted(stats.items()))

    def read(self, on_error="error", scrape_date=None, workers=None):
        """Posts, users and Skips, as `schema.posts_and_users` gives them for this folder.
        `self.parsed` then lists the files parsed (not taken from the cache)."""
        gc.disable()  # millions of new objects, none cyclic: collection passes only cost time
        try:
            return self._read(on_error, scrape_date, workers)
        except OSError as e:  # a read-only or full cache: the files are still readable (bad ones are DataErrors)
            log.warning("data cache under %s not usable (%s): reading %s without it", cache_root(), e, self.path)
            self.parsed = list(self._stats())
            return schema.posts_and_users(self._plain(), on_error, scrape_date)
        finally:
            gc.enable()

    def _plain(self):
        from likepred.data.profiles import iter_profiles

        return iter_profiles(self.path)

    def _read(self, on_error, scrape_date, workers, locked=False):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if on_error not in ("error", "skip"):
            raise DataError(f"on_error must be 'error' or 'skip', got {on_error!r}", field="data.on_error")
        stats = self._stats()
        if not all(map(_utf8, stats)):  # a file name that is not UTF-8 has no text key: read without the cache
            self.parsed = list(stats)
            return schema.posts_and_users(self._plain(), on_error, scrape_date)
        cache = cache_root() / "tables" / _key(VERSION, self.kind, str(self.path.resolve()), scrape_date)
        cache.mkdir(parents=True, exist_ok=True)
        state = _key(VERSION, stats, on_error)
        final = cache / f"posts-{state}.arrow"  # Arrow IPC, lz4: a warm read is a near copy-free load
        now_ns = time.time_ns()
        racy = any(st[1] < 0 or now_ns - st[1] < RACY_S * 1e9 for st in stats.values())
        self.parsed = []
        if final.exists() and not racy:
            try:
                meta = json.loads((cache / f"posts-{state}.json").read_text())
                with pa.OSFile(str(final)) as source:  # read into memory: pandas may keep Arrow's buffers
                    table = pa.ipc.open_file(source).read_all()
                posts = to_posts(table)[0]
                del table
                schema.release_unused()
                skips = schema.Skips()
                skips.rows, skips.files, skips.records, skips.duplicates = (
                    [tuple(r) for r in meta["rows"]], meta["files"], meta["records"], meta["duplicates"])
                users = pd.DataFrame([tuple(u) for u in meta["users"]], columns=schema.USER_COLUMNS)
                users["private"] = users["private"].astype(bool)
                log.info("data: %d posts from the cache %s", len(posts), final)
                return posts, users, skips
            except (OSError, ValueError, KeyError, pa.ArrowException) as e:
                if locked:  # else tried again under the lock: one warning
                    log.warning("data cache %s unreadable (%s); reading the files again", final, e)
        if not locked:  # one process (sweep workers on a shared cache) builds; the others wait, then load it
            with file_lock(cache / "build.lock", f"waiting for another process to build the cache of {self.path}"):
                return self._read(on_error, scrape_date, workers, locked=True)
        index_path = cache / "index.json"
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
        entries, todo = {}, []
        for name, st in stats.items():
            e = index.get(name)
            if (e and e["stat"] == list(st) and st[1] >= 0 and now_ns - st[1] >= RACY_S * 1e9
                    and (e["part"] is None or (cache / e["part"]).exists())):
                entries[name] = e
            else:
                todo.append(name)
        self.parsed = todo
        fresh = self._parse(todo, stats, scrape_date, cache, workers) if todo else {}
        entries.update(fresh)
        units = list(stats)
        ordered = [entries[name] for name in units]
        users, skips, kept = schema.assemble(ordered, on_error)  # raises the first problem ("error")
        keep_files = {units[i] for i in kept}
        parts = list(dict.fromkeys(e["part"] for e in ordered if e["part"] and e["n"]))  # in unit order: no sort
        tables = []
        for part in parts:
            t = pq.read_table(cache / part)
            live = [f for f in t["file"].combine_chunks().dictionary.to_pylist()
                    if f in keep_files and entries[f]["part"] == part]
            if len(live) < len(t["file"].combine_chunks().dictionary):
                import pyarrow.compute as pc

                t = t.filter(pc.is_in(t["file"].cast(pa.string()), pa.array(live, pa.string())))
            tables.append(t)
        table = pa.concat_tables(tables, promote_options="default") if tables else _arrow_table([])
        table = table.unify_dictionaries() if tables else table
        rank = {name: i for i, name in enumerate(stats)}
        order = np.array([rank.get(f, -1) for f in table["file"].combine_chunks().dictionary.to_pylist()], dtype=np.int64)
        file_rank = order[table["file"].combine_chunks().indices.to_numpy()] if len(table) else order[:0]
        sort = np.lexsort((table["post_index"].to_numpy(), file_rank))
        if (np.diff(sort) != 1).any():
            table = table.take(pa.array(sort))
        posts, files = to_posts(table)
        if any(entries[u]["file"] != u for u in units):  # messages name the unit's file, not the unit
            files = pd.Series(files).map({u: entries[u]["file"] for u in units}).to_numpy()
        n_before = len(posts)
        posts = schema._drop_duplicates(posts, files, skips)
        index = {name: entries[name] for name in stats}
        write_atomic(index_path, json.dumps(index), fsync=False)
        if not any(now_ns - st[1] < RACY_S * 1e9 or st[1] < 0 for st in stats.values()):
            if len(posts) < n_before:
                table = table.filter(pa.array(_kept_mask(posts, table)))
            write_atomic(cache / f"posts-{state}.json", json.dumps({  # before the table: `final` says both are there
                "rows": skips.rows, "files": skips.files, "records": skips.records,
                "duplicates": skips.duplicates, "users": users.astype(object).values.tolist()}), fsync=False)
            with open_atomic(final, fsync=False) as f:
                with pa.ipc.new_file(f, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
                    w.write_table(table, max_chunksize=1 << 20)
            for old in cache.glob("posts-*"):
                if state not in old.name:
                    old.unlink(missing_ok=True)
            live_parts = {e["part"] for e in index.values()}
            for old in cache.glob("part-*.parquet"):
                if old.name not in live_parts:
                    old.unlink(missing_ok=True)
        del table, tables
        schema.release_unused()
        return posts, users, skips

    def _parse(self, names, stats, scrape_date, cache, workers):
        """Parse `names` in chunks (in a process pool for big folders); their index entries."""
        total = sum(max(stats[n][0], 0) for n in names)
        chunks, cur, size = [], [], 0
        for n in names:
            cur.append(n)
            size += max(stats[n][0], 0)
            if size >= CHUNK_BYTES:
                chunks.append(cur)
                cur, size = [], 0
        if cur:
            chunks.append(cur)
        workers = workers or os.cpu_count() or 1
        # more chunks than workers keeps both cores busy to the end
        if total > POOL_BYTES and len(chunks) < 4 * workers:
            step = max(1, -(-len(names) // (4 * workers)))
            chunks = [names[i:i + step] for i in range(0, len(names), step)]
        jobs = [(str(self.path), c, None, str(cache / f"part-{_key(c[0], c[-1], time.time_ns())}.parquet"))
                for c in chunks]
        kind = self.kind
        out, started = {}, time.time()
        from tqdm import tqdm

        bar = tqdm(total=len(names), desc="reading profiles", unit="file", disable=None, leave=False)
        if total > POOL_BYTES and workers > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_parse_chunk, kind, folder, c, scrape_date, part)
                           for folder, c, _, part in jobs]
                for (_, c, _, part), fut in zip(jobs, futures):
                    out.update(self._entries(c, fut.result(), part, stats))
                    bar.update(len(c))
        else:
            for folder, c, _, part in jobs:
                out.update(self._entries(c, _parse_chunk(kind, folder, c, scrape_date, part), part, stats))
                bar.update(len(c))
        bar.close()
        n = sum(e["n"] for e in out.values())
        took = time.time() - started
        log.info("data: parsed %d files (%d posts) in %.1f s, %.0f posts/s", len(names), n, took, n / max(took, 1e-9))
        return out

    @staticmethod
    def _entries(names, entries, part, stats):
        name_of = Path(part).name
        return {name: e | {"stat": list(stats[name]), "part": name_of if e["n"] else None}
                for name, e in zip(names, entries)}


def _kept_mask(posts, table):
    """Which rows of `table` survived duplicate removal (posts keeps (file order, post_index) order)."""
    key_t = pd.MultiIndex.from_arrays([table["alias"].to_pandas().astype(object), table["post_index"].to_numpy()])
    key_p = pd.MultiIndex.from_arrays([posts["alias"].astype(object), posts["post_index"].to_numpy()])
    return key_t.isin(key_p)


class InstaloaderFolder(ProfilesFolder):
    """Folders written by Instaloader (`likepred.data.instaloader`), one unit per profile folder,
    changed when any file in it is (name, size or time)."""

    kind = "instaloader"

    def _plain(self):
        from likepred.data.instaloader import iter_profiles

        return iter_profiles(self.path)

    def _stats(self):
        from likepred.data.instaloader import _instaloader, profile_folders

        _instaloader()  # the missing package named before anything is read
        root = self.path.absolute()
        stats = {}
        for folder in profile_folders(root):  # the DataError for a folder without metadata
            files = []
            with os.scandir(folder) as it:
                for e in it:
                    try:
                        st = e.stat()
                        files.append((e.name, st.st_size, st.st_mtime_ns))
                    except OSError:
                        files.append((e.name, -1, -1))
            files.sort()
            name = folder.relative_to(root).as_posix() if folder != root else "."
            stats[name] = (sum(max(f[1], 0) for f in files), min(f[2] for f in files) if any(f[2] < 0 for f in files)
                           else max(f[2] for f in files), _key(files))
        return dict(sorted(stats.items()))
