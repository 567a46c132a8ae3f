"""Download post images concurrently, resize them and write JPEGs atomically.

A second run over the same directory skips images already complete, so an
interrupted download can be restarted with the same call.
"""

from __future__ import annotations

import csv
import http.client
import io
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from likepred.errors import ConfigError
from likepred.files import write_atomic

USER_AGENT = "likepred-image-downloader/1.0"
TEMP_SUFFIX = ".part"
JPEG_QUALITY = 90


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


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_list(value) -> list:
    if _is_missing(value):
        return []
    if isinstance(value, str):
        return [value]
    return list(value)  # list, tuple or numpy array from parquet/json


def _safe_name(name: str) -> str:
    # Names come from the data; keep only the last path part so a name can
    # never point outside out_dir.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "" if name in ("", ".", "..") else name


def name_from_url(url: str) -> str:
    """The URL's last path part, without query string or fragment."""
    path = urllib.parse.urlsplit(url).path
    return _safe_name(urllib.parse.unquote(path))


def items_from_posts(posts) -> list[DownloadItem]:
    """One item per image URL in a DataFrame with `url_image` and `image`.

    List-valued `url_image` is paired with list-valued `image` when the
    lengths match; otherwise names come from the URLs. Empty URLs are
    skipped and the first item wins for a repeated file name.
    """
    items, seen = [], set()
    for urls, names in zip(posts["url_image"], posts["image"]):
        urls = [u.strip() for u in _as_list(urls) if not _is_missing(u)]
        names = _as_list(names)
        if len(names) != len(urls):
            names = [None] * len(urls)
        for url, name in zip(urls, names):
            filename = "" if _is_missing(name) else _safe_name(str(name))
            filename = filename or name_from_url(url)
            if filename and filename not in seen:
                seen.add(filename)
                items.append(DownloadItem(url, filename))
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


def _fetch(url: str, timeout: float) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise _Retryable(f"HTTP {e.code}") from e
        raise _Failed(f"HTTP {e.code}") from e
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError) as e:
        raise _Retryable(f"network error: {getattr(e, 'reason', None) or e!r}") from e


def _fetch_with_retries(url, timeout, retries, backoff) -> tuple[bytes, str]:
    for attempt in range(retries + 1):
        try:
            return _fetch(url, timeout)
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
        if size is not None:
            img.draft("RGB", size)  # JPEG: decode at reduced scale, much faster
        img.load()
        img = ImageOps.exif_transpose(img).convert("RGB")
    except Image.UnidentifiedImageError as e:
        raise _Failed(f"not an image (content-type {content_type or 'missing'})") from e
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise _Failed(f"corrupt or truncated image: {e}") from e
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _download_one(item, out_dir, size, retries, backoff, timeout) -> tuple[str, str]:
    """Returns (status, reason) with status 'ok', 'skipped' or 'failed'."""
    path = out_dir / item.filename
    if _is_complete(path, size):
        return "skipped", ""
    try:
        scheme = urllib.parse.urlsplit(item.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise _Failed(f"unsupported URL scheme {scheme!r}")
        body, content_type = _fetch_with_retries(item.url, timeout, retries, backoff)
        write_atomic(path, _to_jpeg(body, content_type, size), suffix=TEMP_SUFFIX, fsync=False)
        return "ok", ""
    except _Failed as e:
        return "failed", str(e)
    except OSError as e:  # writing failed, e.g. disk full
        return "failed", f"write error: {e}"


# ---------------------------------------------------------------- many images


def _check_args(out_dir, size, workers, retries, backoff, timeout):
    if size is not None:
        try:
            size = tuple(int(s) for s in size)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"image size must be [width, height] of positive integers or null, got {size!r}")
    if int(workers) < 1:
        raise ConfigError(f"download workers must be at least 1, got {workers}")
    if int(retries) < 0 or backoff < 0 or timeout <= 0:
        raise ConfigError(
            f"download retries and backoff must be >= 0 and timeout > 0, "
            f"got retries={retries}, backoff={backoff}, timeout={timeout}"
        )
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


def write_failures_csv(path, failures) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "filename", "reason"])
        writer.writerows(failures)


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
) -> DownloadReport:
    """Download `items` into `out_dir` as RGB JPEGs of `size` (width, height).

    `size=None` keeps each image's own size. Network errors and HTTP 5xx are
    retried `retries` times, sleeping `backoff * 2**attempt` seconds; 4xx and
    bad bodies fail at once. Files already complete are skipped. Failures
    go to `failures_csv` (columns url, filename, reason) when it is given.
    """
    out_dir, size = _check_args(out_dir, size, workers, retries, backoff, timeout)
    items = list(items)
    _remove_stale_temps(out_dir, {it.filename for it in items})
    report = DownloadReport()
    start = time.perf_counter()
    # Results are counted here in the calling thread only, so the counters
    # need no lock.
    with ThreadPoolExecutor(max_workers=int(workers)) as pool, tqdm(
        total=len(items), unit="img", desc="images", disable=not progress
    ) as bar:
        futures = {
            pool.submit(_download_one, it, out_dir, size, int(retries), backoff, timeout): it
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
                bar.update(1)
                bar.set_postfix(ok=report.ok, skipped=report.skipped, failed=report.failed, refresh=False)
        except BaseException:
            # Ctrl-C: drop queued downloads instead of waiting for them all.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    report.seconds = time.perf_counter() - start
    report.failures.sort(key=lambda row: row[1])
    if failures_csv is not None:
        write_failures_csv(failures_csv, report.failures)
    if progress:
        tqdm.write(report.summary())
    return report
