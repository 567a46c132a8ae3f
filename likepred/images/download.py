"""Download post images concurrently, resize them and write JPEGs atomically.

A second run over the same directory skips images already complete, so an
interrupted download can be restarted with the same call. The URLs come from
scraped data, so every try is bounded: its whole time (connect, redirects,
headers, body), its bytes, its pixels, and the schemes it may be redirected to.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from likepred.errors import ConfigError
from likepred.files import write_atomic

USER_AGENT = "likepred-image-downloader/1.0"
TEMP_SUFFIX = ".part"
JPEG_QUALITY = 90
MAX_MB = 50  # a post image is a few MB at most: a bigger body is not one (and would sit in memory)
SCHEMES = ("http", "https")


@dataclass
class DownloadItem:
    url: str
    filename: str


@dataclass
class DownloadReport:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list = field(default_factory=list)  # (url, filename, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"images: {self.ok} downloaded, {self.skipped} skipped (already complete), "
            f"{self.failed} failed in {self.seconds:.1f}s"
        )


class _Retryable(Exception):
    """A network error or HTTP 5xx: worth another try."""


class _Failed(Exception):
    """A failure that another try would not fix (4xx, not an image)."""


# ---------------------------------------------------------------- items


def is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def as_list(value) -> list:
    if is_missing(value):
        return []
    if isinstance(value, str):
        return [value]
    return list(value)  # list, tuple or numpy array from parquet/json


def safe_name(name: str) -> str:
    # Names come from the data; keep only the last path part so a name can
    # never point outside out_dir.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if name in ("", ".", "..") else name


def name_from_url(url: str) -> str:
    """The URL's last path part, without query string or fragment."""
    path = urllib.parse.urlsplit(url).path
    return safe_name(urllib.parse.unquote(path))


def post_images(urls, names) -> list[tuple[str, str]]:
    """One post's (url, file name) pairs as the downloader reads them: `names` (a name or a
    list) is paired with `urls` when the lengths match, else each name is its URL's last part;
    empty URLs are dropped. The names are before `distinct_name` (a clash is seen across posts)."""
    urls = [u.strip() for u in as_list(urls) if not is_missing(u)]
    names = as_list(names)
    if len(names) != len(urls):
        names = [None] * len(urls)
    pairs = []
    for url, name in zip(urls, names):
        filename = "" if is_missing(name) else safe_name(str(name))
        filename = filename or name_from_url(url)
        if filename:
            pairs.append((url, filename))
    return pairs


def distinct_name(name: str, url: str) -> str:
    """The file name of `url` when more than one URL claims `name`: a short hash of the URL
    before the extension (`pic.jpg` -> `pic-1a2b3c4d.jpg`), the same in every run, so the
    downloader and the image extractors (likepred.features.images.image_names) agree."""
    stem, ext = os.path.splitext(name)
    return f"{stem}-{hashlib.sha1(url.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}{ext}"


def clashing_names(pairs) -> set:
    """The file names that more than one distinct URL claims among (url, name) `pairs`."""
    first, clashes = {}, set()
    for url, name in pairs:
        if first.setdefault(name, url) != url:
            clashes.add(name)
    return clashes


def items_from_posts(posts) -> list[DownloadItem]:
    """One item per image URL in a DataFrame with `url_image` and `image` (`post_images`).

    A file name that different URLs claim (two posts' `pic.jpg` on two servers) is given to
    none of them: each gets `distinct_name` (its URL's hash in the name), so no post shares
    another's picture; a URL repeated under one name is one item.
    """
    pairs = [p for urls, names in zip(posts["url_image"], posts["image"]) for p in post_images(urls, names)]
    clashes = clashing_names(pairs)
    items, seen = [], set()
    for url, name in pairs:
        filename = distinct_name(name, url) if name in clashes else name
        if filename not in seen:
            seen.add(filename)
            items.append(DownloadItem(url, filename))
    if clashes:
        url, name = next((u, n) for u, n in pairs if n in clashes)
        logging.getLogger(__name__).info(
            "%d image file names are claimed by different URLs: each URL's file is named with its hash, "
            "e.g. %s -> %s", len(clashes), name, distinct_name(name, url))
    return items


# ---------------------------------------------------------------- one image


def _is_complete(path: Path, size) -> bool:
    try:
        with Image.open(path) as img:
            if size is not None and img.size != size:
                return False
            img.load()  # a file cut short opens fine but fails to decode
            return img.mode == "RGB"
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


class _Deadline:
    """Shuts a try's sockets down when its time is up. A socket timeout bounds one read only:
    a server dripping a byte a second keeps it alive for ever; this bounds the whole try."""

    def __init__(self, seconds):
        self.socks, self.expired, self._lock = [], False, threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock):
        with self._lock:
            self.socks.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)
        return sock

    def _expire(self):
        with self._lock:
            self.expired, socks = True, list(self.socks)
        for sock in socks:
            _shut(sock)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


class _Tries:
    """The tries in flight, so that a Ctrl-C cuts them at once (the pool would wait for each to
    time out) and starts no new one."""

    def __init__(self):
        self.lock, self.deadlines, self.stopped = threading.Lock(), set(), False

    def add(self, deadline):
        with self.lock:
            self.deadlines.add(deadline)
            stopped = self.stopped
        if stopped:
            deadline._expire()

    def remove(self, deadline):
        with self.lock:
            self.deadlines.discard(deadline)

    def stop(self):
        with self.lock:
            self.stopped, deadlines = True, list(self.deadlines)
        for deadline in deadlines:
            deadline._expire()


def _shut(sock):
    try:  # the plain socket's shutdown (an SSL socket's own would race the reading thread)
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(base):
    class Watched(base):
        def __init__(self, *args, deadline, **kw):
            super().__init__(*args, **kw)
            self._create_connection = lambda *a, **k: deadline.watch(socket.create_connection(*a, **k))

    return Watched


_HTTPConnection, _HTTPSConnection = _watched(http.client.HTTPConnection), _watched(http.client.HTTPSConnection)


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(partial(_HTTPConnection, deadline=self.deadline), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(partial(_HTTPSConnection, deadline=self.deadline), req, context=self._context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect to ftp://; only http(s) is fetched here."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in SCHEMES:
            fp.close()
            raise _Failed(f"redirected to an unsupported URL scheme {scheme!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_body(response, max_bytes) -> bytes:
    too_big = f"more than {max_bytes / 2**20:g} MB (images.download.max_mb)"
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise _Failed(f"too big: {int(length) / 2**20:.0f} MB announced, {too_big}")
    chunks, n = [], 0
    while chunk := response.read(1 << 16):
        n += len(chunk)
        if n > max_bytes:
            raise _Failed(f"too big: {too_big}")
        chunks.append(chunk)
    return b"".join(chunks)


def _fetch(url: str, timeout: float, max_bytes: int = MAX_MB << 20, tries: _Tries | None = None) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with _Deadline(timeout) as deadline:
        if tries is not None:
            tries.add(deadline)
        opener = urllib.request.build_opener(_HTTP(deadline), _HTTPS(deadline), _Redirects)
        try:
            with opener.open(request, timeout=timeout) as response:
                body = _read_body(response, max_bytes)
                if not deadline.expired:
                    return body, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            if e.code >= 500:
                raise _Retryable(f"HTTP {e.code}") from e
            raise _Failed(f"HTTP {e.code}") from e
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as e:
            if not deadline.expired:
                raise _Retryable(f"network error: {getattr(e, 'reason', None) or e!r}") from e
        finally:
            if tries is not None:
                tries.remove(deadline)
    if tries is not None and tries.stopped:
        raise _Failed("interrupted")
    raise _Retryable(f"too slow: not complete in {timeout:g}s (images.download.timeout)")


def _fetch_with_retries(url, timeout, retries, backoff, max_bytes, tries=None) -> tuple[bytes, str]:
    for attempt in range(retries + 1):
        if tries is not None and tries.stopped:
            raise _Failed("interrupted")
        try:
            return _fetch(url, timeout, max_bytes, tries)
        except _Retryable as e:
            if attempt == retries:
                raise _Failed(f"{e} (after {retries + 1} tries)") from e
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def _to_jpeg(body: bytes, content_type: str, size) -> bytes:
    if not body:
        raise _Failed("empty response (0 bytes)")
    try:
        img = Image.open(io.BytesIO(body))
        limit = Image.MAX_IMAGE_PIXELS  # Pillow only warns between its limit and twice it
        if limit and img.width * img.height > limit:
            raise _Failed(f"decompression bomb: {img.width}x{img.height} pixels, more than Pillow's limit of {limit}")
        if size is not None:
            img.draft("RGB", size)  # JPEG: decode at reduced scale, much faster
        img.load()
        img = ImageOps.exif_transpose(img).convert("RGB")
    except Image.UnidentifiedImageError as e:
        raise _Failed(f"not an image (content-type {content_type or 'missing'})") from e
    except Image.DecompressionBombError as e:
        raise _Failed(f"decompression bomb: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise _Failed(f"corrupt or truncated image: {e}") from e
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _download_one(item, out_dir, size, retries, backoff, timeout, max_bytes, reserved=None,
                  tries=None) -> tuple[str, str]:
    """Returns (status, reason) with status 'ok', 'skipped' or 'failed'."""
    if item.filename != safe_name(item.filename) or "\0" in item.filename:
        return "failed", f"bad file name {item.filename!r}"
    path = out_dir / item.filename
    if reserved is not None and path.resolve() == reserved:
        return "failed", "the file name is the failures report's (images.download.failures_csv)"
    if _is_complete(path, size):
        return "skipped", ""
    try:
        scheme = urllib.parse.urlsplit(item.url).scheme.lower()
        if scheme not in SCHEMES:
            raise _Failed(f"unsupported URL scheme {scheme!r}")
        body, content_type = _fetch_with_retries(item.url, timeout, retries, backoff, max_bytes, tries)
        write_atomic(path, _to_jpeg(body, content_type, size), suffix=TEMP_SUFFIX, fsync=False)
        return "ok", ""
    except _Failed as e:
        return "failed", str(e)
    except (OSError, ValueError) as e:  # writing failed (disk full, a name the filesystem refuses)
        return "failed", f"write error: {e}"


# ---------------------------------------------------------------- many images


MAX_RETRIES, MAX_BACKOFF, MAX_TIMEOUT = 10, 60.0, 3600.0  # beyond: a typo that would retry for ever


def check_settings(size=(256, 256), workers=8, retries=3, backoff=0.5, timeout=30.0, max_mb=MAX_MB):
    """The download settings, checked before any data is read: ConfigError naming the setting and
    what is allowed (NaN and infinity are no numbers here). Returns size as a (width, height)
    tuple or None."""

    def number(name, value, lo, hi, integer=False):
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if not (lo <= v <= hi) or (integer and not v.is_integer()):
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"images.download.{name}={value!r}: must be {kind} from {lo:g} to {hi:g}")
        return int(v) if integer else v

    if size is not None:
        given = size
        try:
            size = tuple(int(s) for s in size)
        except (TypeError, ValueError, OverflowError):
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"images.size: must be a positive integer (a [width, height] pair of them) or null, "
                              f"got {given!r}")
    number("workers", workers, 1, 256, integer=True)
    number("retries", retries, 0, MAX_RETRIES, integer=True)
    number("backoff", backoff, 0, MAX_BACKOFF)
    number("timeout", timeout, 0.001, MAX_TIMEOUT)
    number("max_mb", max_mb, 1e-6, 1e6)
    return size


def _check_args(out_dir, size, workers, retries, backoff, timeout, max_mb=MAX_MB):
    size = check_settings(size, workers, retries, backoff, timeout, max_mb)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the image directory {out_dir}: {e.strerror or e}") from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"the image directory {out_dir} is not writable")
    return out_dir, size


def _remove_stale_temps(out_dir: Path, filenames: set) -> None:
    # Leftovers of an interrupted run; only ours (named after our items).
    for entry in os.scandir(out_dir):
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            owner = entry.name[1:].rsplit(".", 2)[0]
            if owner in filenames:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass


FAILURE_COLUMNS = ["url", "filename", "reason"]


def write_failures_csv(path, failures) -> None:
    rows = [FAILURE_COLUMNS, *failures]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    write_atomic(path, out.getvalue(), fsync=False)


class _FailuresLog:
    """The failures CSV, appended as failures come in so that a killed download leaves what it
    found; rewritten sorted (atomically) at the end."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", newline="", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write the failures report {self.path}: {e.strerror or e}") from e
        self.writer = csv.writer(self.file)
        self.add(FAILURE_COLUMNS)

    def add(self, row):
        self.writer.writerow(row)
        self.file.flush()

    def close(self, failures=None):
        self.file.close()
        # rewritten sorted, atomically; not a device or FIFO (/dev/null), which the rename would replace
        if failures is not None and self.path.is_file():
            write_failures_csv(self.path, failures)


def download_images(
    items,
    out_dir,
    size=(256, 256),
    workers=8,
    retries=3,
    backoff=0.5,
    timeout=30.0,
    progress=True,
    failures_csv=None,
    max_mb=MAX_MB,
) -> DownloadReport:
    """Download `items` into `out_dir` as RGB JPEGs of `size` (width, height).

    `size=None` keeps each image's own size. Network errors, HTTP 5xx and tries
    longer than `timeout` seconds (all of it: connect, redirects, body) are retried
    `retries` times, sleeping `backoff * 2**attempt` seconds; 4xx, bodies over
    `max_mb`, redirects to other schemes than http(s), images over Pillow's pixel
    limit and bad bodies fail at once. Files already complete are skipped. Failures
    go to `failures_csv` (columns url, filename, reason) as they come, when it is given.
    """
    out_dir, size = _check_args(out_dir, size, workers, retries, backoff, timeout, max_mb)
    max_bytes = int(max_mb * 2**20)
    items = list(items)
    _remove_stale_temps(out_dir, {it.filename for it in items})
    report, tries = DownloadReport(), _Tries()
    log = _FailuresLog(failures_csv) if failures_csv is not None else None
    reserved = log.path.resolve() if log else None
    start = time.perf_counter()
    # Results are counted here in the calling thread only, so the counters
    # need no lock.
    with ThreadPoolExecutor(max_workers=int(workers)) as pool, tqdm(
        total=len(items), unit="img", desc="images", disable=not progress
    ) as bar:
        futures = {
            pool.submit(_download_one, it, out_dir, size, int(retries), backoff, timeout, max_bytes, reserved,
                        tries): it
            for it in items
        }
        try:
            for future in as_completed(futures):
                item = futures[future]
                status, reason = future.result()
                if status == "ok":
                    report.ok += 1
                elif status == "skipped":
                    report.skipped += 1
                else:
                    report.failed += 1
                    report.failures.append((item.url, item.filename, reason))
                    if log:
                        log.add(report.failures[-1])
                bar.update(1)
                bar.set_postfix(ok=report.ok, skipped=report.skipped, failed=report.failed, refresh=False)
        except BaseException:
            # Ctrl-C: drop queued downloads and cut the tries in flight instead of waiting for them.
            tries.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            if log:
                log.close()
            raise
    report.seconds = time.perf_counter() - start
    report.failures.sort(key=lambda row: row[1])
    if log:
        log.close(report.failures)
    if progress:
        tqdm.write(report.summary())
    return report
