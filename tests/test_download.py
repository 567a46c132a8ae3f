"""Downloader tests against a real local HTTP server."""

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT
from helpers import HTTPServer, send
from likepred.errors import ConfigError
from likepred.images.download import DownloadItem, distinct_name, download_images, items_from_posts

SIZE = (16, 16)


def _image_bytes(fmt, mode="RGB", size=(40, 30), colour=(200, 30, 60, 255)):
    img = Image.new(mode, size, colour[: len(mode)])
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


JPEG = _image_bytes("JPEG")
BLUE = _image_bytes("JPEG", mode="RGB", colour=(20, 40, 220))
PNG = _image_bytes("PNG", mode="RGBA")
HTML = b"<html><body>Please log in</body></html>"
_BOMB = []


def bomb_png():
    """A 9500x9500 PNG of 11 kB: over Pillow's 89M-pixel limit (which Pillow itself only warns about)."""
    if not _BOMB:
        out = io.BytesIO()
        Image.new("1", (9500, 9500)).save(out, "PNG", compress_level=9)
        _BOMB.append(out.getvalue())
    return _BOMB[0]


class Server:
    """Paths: /img/* JPEG, /png/* PNG, /missing 404, /flaky 500 then 200,
    /down always 500, /html HTML sent as image/jpeg, /blue/* a blue JPEG, /truncated half a JPEG,
    /empty 0 bytes; hostile ones: /drip a JPEG a byte every 0.1 s, /huge 300 MB announced,
    /endless zeros without a length, /toftp a redirect to ftp://, /bomb a decompression bomb."""

    def __init__(self):
        self.hits = Counter()
        self.lock = threading.Lock()
        server = self

        def do_get(handler):
            path = urlsplit(handler.path).path
            with server.lock:
                server.hits[path] += 1
                hits = server.hits[path]
            kind = path.split("/")[1]
            if kind in ("drip", "huge", "endless", "toftp"):
                return hostile(handler, kind)
            status, ctype, body = 200, "image/jpeg", JPEG
            if kind == "png":
                ctype, body = "image/png", PNG
            elif kind == "missing":
                status, ctype, body = 404, "text/html", b"not found"
            elif kind == "flaky" and hits == 1 or kind == "down":
                status, ctype, body = 500, "text/html", b"oops"
            elif kind == "html":
                body = HTML
            elif kind == "blue":
                body = BLUE
            elif kind == "truncated":
                body = JPEG[: len(JPEG) // 2]
            elif kind == "empty":
                body = b""
            elif kind == "bomb":
                ctype, body = "image/png", bomb_png()
            send(handler, status, ctype, body)

        self.http = HTTPServer(do_get)
        self.base = self.http.base

    def url(self, path):
        return self.base + path


def hostile(handler, kind):
    if kind == "toftp":
        handler.send_response(302)
        handler.send_header("Location", "ftp://127.0.0.1:9/x.jpg")
        handler.end_headers()
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    if kind != "endless":
        handler.send_header("Content-Length", str(300 << 20 if kind == "huge" else len(JPEG)))
    handler.end_headers()
    try:
        if kind == "drip":  # each byte well within the socket timeout: only a deadline stops it
            for b in JPEG[:600]:
                handler.wfile.write(bytes([b]))
                handler.wfile.flush()
                time.sleep(0.1)
        else:
            for _ in range(300 << 4):  # 300 MB
                handler.wfile.write(bytes(1 << 16))
    except OSError:  # the client hung up: what we want
        pass


@pytest.fixture
def server():
    s = Server()
    with s.http:
        yield s


def _run(items, out_dir, **kw):
    kw = {"size": SIZE, "workers": 4, "retries": 2, "backoff": 0, "timeout": 5, "progress": False} | kw
    return download_images(items, out_dir, **kw)


def _assert_jpeg(path, size=SIZE):
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert img.mode == "RGB"
        assert img.size == size
        img.load()


def test_downloads_resizes_and_records_failures(server, tmp_path):
    out = tmp_path / "images"
    items = [
        DownloadItem(server.url("/img/a.jpg"), "a.jpg"),
        DownloadItem(server.url("/png/b.png"), "b.png"),
        DownloadItem(server.url("/flaky/c.jpg"), "c.jpg"),
        DownloadItem(server.url("/missing/d.jpg"), "d.jpg"),
        DownloadItem(server.url("/down/e.jpg"), "e.jpg"),
        DownloadItem(server.url("/html/f.jpg"), "f.jpg"),
        DownloadItem(server.url("/truncated/g.jpg"), "g.jpg"),
        DownloadItem(server.url("/empty/h.jpg"), "h.jpg"),
    ]
    report = _run(items, out, failures_csv=tmp_path / "failures.csv")

    assert (report.ok, report.skipped, report.failed) == (3, 0, 5)
    for name in ("a.jpg", "b.png", "c.jpg"):
        _assert_jpeg(out / name)
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png", "c.jpg"]  # no partial/temp files

    assert server.hits["/flaky/c.jpg"] == 2  # 500 then retried
    assert server.hits["/missing/d.jpg"] == 1  # 404 is never retried
    assert server.hits["/down/e.jpg"] == 3  # 1 + retries
    assert server.hits["/html/f.jpg"] == 1  # bad bodies are not retried

    reasons = {fn: reason for _, fn, reason in report.failures}
    assert reasons["d.jpg"] == "HTTP 404"
    assert reasons["e.jpg"].startswith("HTTP 500")
    assert reasons["f.jpg"].startswith("not an image")
    assert "truncated" in reasons["g.jpg"]
    assert reasons["h.jpg"].startswith("empty response")

    with open(tmp_path / "failures.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["filename"] for r in rows] == ["d.jpg", "e.jpg", "f.jpg", "g.jpg", "h.jpg"]
    assert rows[0] == {"url": server.url("/missing/d.jpg"), "filename": "d.jpg", "reason": "HTTP 404"}
    assert "3 downloaded, 0 skipped" in report.summary() and "5 failed" in report.summary()


def test_second_run_skips_complete_files_without_requests(server, tmp_path):
    items = [DownloadItem(server.url(f"/img/{i}.jpg"), f"{i}.jpg") for i in range(5)]
    items.append(DownloadItem(server.url("/missing/x.jpg"), "x.jpg"))
    first = _run(items, tmp_path)
    assert (first.ok, first.skipped, first.failed) == (5, 0, 1)
    hits_after_first = dict(server.hits)

    second = _run(items, tmp_path)
    assert (second.ok, second.skipped, second.failed) == (0, 5, 1)
    assert server.hits["/img/0.jpg"] == hits_after_first["/img/0.jpg"] == 1
    assert server.hits["/missing/x.jpg"] == 2  # failures are tried again

    # A different size makes the files incomplete again.
    third = _run(items[:1], tmp_path, size=(8, 8))
    assert third.ok == 1
    _assert_jpeg(tmp_path / "0.jpg", size=(8, 8))


def test_resume_after_interruption(server, tmp_path):
    (tmp_path / ".a.jpg.k3j2x9_q.part").write_bytes(JPEG[:100])  # temp file of a killed run
    right_size = io.BytesIO()
    Image.effect_noise(SIZE, 80).convert("RGB").save(right_size, "JPEG")
    (tmp_path / "b.jpg").write_bytes(right_size.getvalue()[:-60])  # cut short under the final name
    (tmp_path / "c.jpg").write_bytes(_image_bytes("JPEG", size=(10, 10)))  # valid, wrong size
    (tmp_path / "d.jpg").write_bytes(b"")
    items = [DownloadItem(server.url(f"/img/{n}"), n) for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")]

    report = _run(items, tmp_path)
    assert (report.ok, report.skipped, report.failed) == (4, 0, 0)
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        _assert_jpeg(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_size_none_keeps_original_size(server, tmp_path):
    report = _run([DownloadItem(server.url("/png/p.png"), "p.png")], tmp_path, size=None)
    assert report.ok == 1
    _assert_jpeg(tmp_path / "p.png", size=(40, 30))


def test_bad_arguments_are_config_errors(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigError, match="image directory"):
        download_images([], not_a_dir / "images", progress=False)
    with pytest.raises(ConfigError, match="size"):
        download_images([], tmp_path, size=(0, 16), progress=False)
    with pytest.raises(ConfigError, match="workers"):
        download_images([], tmp_path, workers=0, progress=False)


def test_unsupported_scheme_is_a_failure(tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG)
    report = _run([DownloadItem(secret.as_uri(), "s.jpg")], tmp_path / "out")
    assert report.failed == 1 and "scheme" in report.failures[0][2]
    assert not (tmp_path / "out" / "s.jpg").exists()


def test_items_from_posts():
    posts = pd.DataFrame(
        {
            "url_image": [
                "https://cdn.example/x/one.jpg?sig=abc",
                "https://cdn.example/x/two.jpg",
                ["https://cdn.example/m/1.jpg?a=1", "https://cdn.example/m/2.jpg"],
                ["https://cdn.example/n/1.jpg", "https://cdn.example/n/2.jpg"],
                np.array(["https://cdn.example/k/k1.jpg", ""], dtype=object),
                "",
                "https://cdn.example/dup/one.jpg",
            ],
            "image": [
                None,
                "named.jpg",
                ["p3_a.jpg", "p3_b.jpg"],
                ["only_one.jpg"],  # length mismatch: names from URLs
                float("nan"),
                "ignored.jpg",
                np.nan,
            ],
        }
    )
    items = items_from_posts(posts)
    assert [(i.url.split("/", 3)[3], i.filename) for i in items] == [
        ("x/one.jpg?sig=abc", distinct_name("one.jpg", "https://cdn.example/x/one.jpg?sig=abc")),  # two URLs' name
        ("x/two.jpg", "named.jpg"),
        ("m/1.jpg?a=1", "p3_a.jpg"),
        ("m/2.jpg", "p3_b.jpg"),
        ("n/1.jpg", "1.jpg"),
        ("n/2.jpg", "2.jpg"),
        ("k/k1.jpg", "k1.jpg"),
        ("dup/one.jpg", distinct_name("one.jpg", "https://cdn.example/dup/one.jpg")),
    ]
    assert items[0].filename == "one-a7227a64.jpg"  # the same name in every run (a hash, not a counter)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our refusal
def test_hostile_servers_are_bounded(server, tmp_path):
    items = [DownloadItem(server.url(f"/{kind}/{kind}.jpg"), f"{kind}.jpg")
             for kind in ("drip", "huge", "endless", "toftp", "bomb")]
    items.append(DownloadItem(server.url("/img/ok.jpg"), "bad\0name.jpg"))  # one failure, not an abort
    items.append(DownloadItem(server.url("/img/a.jpg"), "a.jpg"))
    start = time.monotonic()
    report = _run(items, tmp_path / "out", timeout=1.5, retries=1, max_mb=1)
    took = time.monotonic() - start
    reasons = {fn: reason for _, fn, reason in report.failures}
    assert (report.ok, report.failed) == (1, 6), reasons
    assert reasons["drip.jpg"] == "too slow: not complete in 1.5s (images.download.timeout) (after 2 tries)"
    assert took < 2 * 1.5 + 2  # two tries of the drip, not its 60 s
    assert server.hits["/drip/drip.jpg"] == 2
    assert reasons["huge.jpg"] == "too big: 300 MB announced, more than 1 MB (images.download.max_mb)"
    assert reasons["endless.jpg"] == "too big: more than 1 MB (images.download.max_mb)"
    assert reasons["toftp.jpg"] == "redirected to an unsupported URL scheme 'ftp'"
    assert reasons["bomb.jpg"].startswith("decompression bomb: 9500x9500 pixels, more than Pillow's limit")
    assert reasons["bad\0name.jpg"].startswith("bad file name")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg"]


def test_failures_report_cannot_be_overwritten_by_a_post(server, tmp_path):
    report_path = tmp_path / "download_failures.csv"
    items = [DownloadItem(server.url("/img/x.jpg"), "download_failures.csv"),
             DownloadItem(server.url("/img/a.jpg"), "a.jpg")]
    report = _run(items, tmp_path, failures_csv=report_path)
    assert (report.ok, report.failed) == (1, 1)
    with open(report_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"url": server.url("/img/x.jpg"), "filename": "download_failures.csv",
                     "reason": "the file name is the failures report's (images.download.failures_csv)"}]


@pytest.mark.slow
def test_killed_download_leaves_its_failures(server, tmp_path):
    report_path = tmp_path / "failures.csv"
    code = (
        "import sys\nfrom likepred.images.download import DownloadItem, download_images\n"
        f"items = [DownloadItem({server.url('/missing/m.jpg')!r}, 'm.jpg'), "
        f"DownloadItem({server.url('/drip/d.jpg')!r}, 'd.jpg')]\n"
        f"download_images(items, {str(tmp_path / 'out')!r}, size=(16, 16), workers=2, retries=0, timeout=60, "
        f"progress=False, failures_csv={str(report_path)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (report_path.exists() and "HTTP 404" in report_path.read_text()):
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(report_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"url": server.url("/missing/m.jpg"), "filename": "m.jpg", "reason": "HTTP 404"}]


def test_same_file_name_from_different_urls_gets_each_its_own_picture(server, tmp_path):
    from likepred.features.images import image_names

    red, blue = server.url("/img/x/pic.jpg"), server.url("/blue/y/pic.jpg")
    posts = pd.DataFrame({"url_image": [red, blue, red, server.url("/img/z/other.jpg")],
                          "image": [None, None, "pic.jpg", None]})
    items = items_from_posts(posts)
    names = sorted(i.filename for i in items)
    assert len(names) == 3 and "pic.jpg" not in names and "other.jpg" in names  # the same URL twice is one item
    assert all(n.startswith("pic-") and len(n) == len("pic-12345678.jpg") for n in names if n != "other.jpg")
    assert sorted(i.filename for i in items_from_posts(posts.iloc[::-1])) == names  # in any order
    out = tmp_path / "images"
    assert _run(items, out).ok == 3

    def colour(name):
        with Image.open(out / name) as img:
            r, _, b = img.convert("RGB").getpixel((8, 8))
        return "red" if r > b else "blue"

    assert [colour(n) for n in image_names(posts, str(out))] == ["red", "blue", "red", "red"]
    # a subset that no longer sees the clash (the other post filtered out) still finds its own file
    assert [colour(n) for n in image_names(posts.iloc[[1]], str(out))] == ["blue"]
    assert image_names(posts.iloc[[1, 3]], str(out)) == image_names(posts, str(out))[1::2]


@pytest.mark.parametrize("setting, value, message", [
    ("timeout", float("nan"), "images.download.timeout=nan: must be a number from 0.001 to 3600"),
    ("retries", 10**9, "images.download.retries=1000000000: must be an integer from 0 to 10"),
    ("backoff", float("inf"), "images.download.backoff=inf: must be a number from 0 to 60"),
    ("workers", 0, "images.download.workers=0: must be an integer from 1 to 256"),
    ("max_mb", -1, "images.download.max_mb=-1: must be a number from"),
    ("size", ("a", 3), "images.size: must be a positive integer"),
])
def test_download_settings_are_refused_in_one_line(setting, value, message, tmp_path):
    with pytest.raises(ConfigError) as e:
        _run([DownloadItem("http://127.0.0.1:9/a.jpg", "a.jpg")], tmp_path / "out", **{setting: value})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()  # refused before anything is made


def test_download_command_checks_its_settings_before_reading_data(tmp_path, capsys):
    from likepred.images.__main__ import main

    args = ["download", f"images.dir={tmp_path}/img", "data=profiles", f"data.path={tmp_path}/nope"]
    assert main(args + ["images.download.timeout=nan"]) == 2
    assert capsys.readouterr().err.strip() == \
        "likepred.images: error: images.download.timeout=nan: must be a number from 0.001 to 3600"
    assert main(args + ["modle=gbm"]) == 2  # Hydra's own errors too: one line
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("likepred.images: error: Could not override 'modle'")


def test_ctrl_c_in_the_download_command_is_one_line(server, tmp_path, capsys):
    """A Ctrl-C while a server drips a picture: one line, exit 130, the complete picture kept."""
    import json
    import signal

    from likepred.images.__main__ import main

    folder = tmp_path / "profiles"
    folder.mkdir()
    posts = [{"date": "2017-01-01T10:00:00.000Z", "numberLikes": 5, "tags": [], "mentions": [],
              "urlImage": server.url(path)} for path in ("/img/a.jpg", "/drip/d.jpg")]
    (folder / "ann.json").write_text(json.dumps({"alias": "ann", "numberPosts": 2, "numberFollowers": 100,
                                                 "numberFollowing": 10, "posts": posts}))
    timer = threading.Timer(3, os.kill, (os.getpid(), signal.SIGINT))  # the drip takes 60 s
    timer.start()
    started = time.monotonic()
    try:
        rc = main(["download", "data=profiles", f"data.path={folder}", f"images.dir={tmp_path}/img",
                   "images.size=16", "images.download.retries=0", "images.download.timeout=60"])
    finally:
        timer.cancel()
    assert rc == 130 and time.monotonic() - started < 20  # the try in flight is cut, not waited for
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("likepred.images: interrupted (Ctrl-C)") and "Traceback" not in "\n".join(err)
    _assert_jpeg(tmp_path / "img" / "a.jpg")
    assert not (tmp_path / "img" / "d.jpg").exists()


def test_failures_report_into_a_fifo_is_not_replaced(server, tmp_path):
    """images.download.failures_csv=/dev/null: the report goes into it; the sorted rewrite (a write
    then rename) replaced it with a regular file (as root, /dev/null itself)."""
    import stat

    fifo = tmp_path / "failures.csv"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    report = _run([DownloadItem(server.url("/missing/m.jpg"), "m.jpg")], tmp_path / "out", failures_csv=fifo)
    reader.join(30)
    assert report.failed == 1 and stat.S_ISFIFO(fifo.stat().st_mode)
    assert got and "m.jpg,HTTP 404" in got[0]
