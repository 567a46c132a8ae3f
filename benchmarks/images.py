"""Benchmark the streaming image loader (likepred.images.dataset.ImageBatches).

Times Keras reading every batch of N synthetic JPEGs (decode, resize, scale)
through `model.predict` of a trivial net (global average pooling -> Dense 1),
for each image side and `images.workers`, and the peak memory the loader
allocated, against what all images would take at once.

    python benchmarks/images.py --n 512 --sizes 64 256 --workers 1 4
"""

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pandas as pd

from likepred.synthetic.images import render_images


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="images")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="image sides (drawn at this size)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import keras

    from likepred.images.dataset import ImageBatches

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = pd.DataFrame({"filename": [f"img{i:05d}.jpg" for i in range(args.n)],
                             "visual_class": [i % 8 for i in range(args.n)]})
        rows.to_csv(tmp / "latent.csv", index=False)
        for size in args.sizes:
            folder = tmp / f"s{size}"
            render_images(tmp / "latent.csv", folder, size=size, progress=False)
            paths = np.array([str(folder / f) for f in rows["filename"]], dtype=object)
            inp = keras.Input((size, size, 3), name="image")
            net = keras.Model({"image": inp}, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inp)))
            for workers in args.workers:
                ds = ImageBatches({"image": paths}, None, size=size, batch_size=args.batch_size, workers=workers)
                net.predict(ds, verbose=0)  # compile, warm the file cache
                t = time.perf_counter()
                net.predict(ds, verbose=0)
                seconds = time.perf_counter() - t
                tracemalloc.start()
                for i in range(len(ds)):
                    ds[i]
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                whole = args.n * size * size * 3 * 4
                print(f"{size}x{size}  workers {workers}:  {args.n / seconds:8.1f} img/s  "
                      f"({args.n * size * size * 3 * 4 / seconds / 2**20:6.1f} MiB/s of float32)   "
                      f"loader peak {peak / 2**20:5.1f} MiB vs all images {whole / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main()
