"""Benchmark the image downloader against a local HTTP server.

Serves one generated ~640x640 JPEG for every path, downloads N of them at
256x256, then runs again to time the resume (every file skipped).

    python benchmarks/download.py --n 500 --workers 8
"""

import argparse
import io
import tempfile
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.helpers
from tests.helpers import HTTPServer, send  # noqa: E402

from likepred.images.download import DownloadItem, download_images


def make_jpeg(side=640, seed=0):
    # Smooth gradients plus noise: compresses like a photo, not like a flat fill.
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([x * 255, y * 255, (1 - x) * 180 + 40 * np.sin(12 * y)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def serve(body) -> HTTPServer:
    return HTTPServer(lambda handler: send(handler, 200, "image/jpeg", body), queue=128, poll=0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="number of images")
    parser.add_argument("--workers", type=int, default=8, help="download threads")
    parser.add_argument("--size", type=int, default=256, help="output side in pixels")
    args = parser.parse_args()

    body = make_jpeg()
    httpd = serve(body)
    base = httpd.base
    items = [DownloadItem(f"{base}/p/{i}.jpg?sig=x", f"{i}.jpg") for i in range(args.n)]
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            kw = dict(size=(args.size, args.size), workers=args.workers, progress=False)
            first = download_images(items, out_dir, **kw)
            mb = args.n * len(body) / 1e6
            print(f"source image: 640x640 JPEG, {len(body) / 1e3:.1f} kB; n={args.n} workers={args.workers}")
            print(f"download: {first.ok} ok, {first.failed} failed in {first.seconds:.2f} s")
            print(f"  {first.ok / first.seconds:.1f} images/s, {mb / first.seconds:.2f} MB/s downloaded")
            second = download_images(items, out_dir, **kw)
            print(f"resume: {second.skipped} skipped in {second.seconds:.2f} s"
                  f" ({second.skipped / second.seconds:.0f} images/s)")
    finally:
        httpd.close()


if __name__ == "__main__":
    main()
