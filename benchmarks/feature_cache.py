"""Benchmark the image feature cache.

Times, on the same synthetic JPEGs and batches:
  bare    fn(batch) for every batch (load + extract), no cache;
  cold    cached_features into an empty cache (hash + extract + save shards + merge);
  warm    cached_features again from a new FeatureCache (hash + read only).
Reports images/s, cold/bare (target >= 0.9) and warm speedup over cold (>= 50x).

    python benchmarks/feature_cache.py                 # cheap stand-in extractor
    python benchmarks/feature_cache.py --real --n 32   # VGG19 fc2, weights=None
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pandas as pd
from PIL import Image

from likepred.images.cache import FeatureCache, cached_features, extractor_key
from likepred.synthetic.images import render_images


def load(paths, size):
    """RGB float32 [n, size, size, 3], resized when the file differs."""
    out = np.empty((len(paths), size, size, 3), np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(img, np.float32)
    return out


def vgg19_fc2(size):
    import keras

    base = keras.applications.VGG19(weights=None, include_top=True, input_shape=(size, size, 3))
    model = keras.Model(base.input, base.get_layer("fc2").output)
    pre = keras.applications.vgg19.preprocess_input

    def fn(paths):
        x = pre(load(paths, size))
        return np.asarray(model.predict(x, batch_size=len(x), verbose=0))

    return fn, 4096, extractor_key("vgg19_fc2", "none-seed0", size)


def stand_in(size, dim=4096):
    """Load + a random projection of 8x8-pooled pixels: cheap but not free."""
    proj = np.random.default_rng(0).normal(size=(8 * 8 * 3, dim)).astype(np.float32)

    def fn(paths):
        x = load(paths, size)
        pooled = x.reshape(len(x), 8, size // 8, 8, size // 8, 3).mean((2, 4)).reshape(len(x), -1)
        return np.maximum(pooled @ proj, 0)

    return fn, dim, extractor_key("stand_in", "proj-seed0", size)


def make_images(folder, n, size):
    rows = pd.DataFrame({"filename": [f"img{i:05d}.jpg" for i in range(n)],
                         "visual_class": [i % 8 for i in range(n)]})
    rows.to_csv(folder / "latent.csv", index=False)
    render_images(folder / "latent.csv", folder / "img", size=size, progress=False)
    return [folder / "img" / f for f in rows["filename"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", action="store_true", help="VGG19 (weights=None) truncated at fc2")
    ap.add_argument("--n", type=int, default=None, help="images (default 32 real, 2048 stand-in)")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=None, help="best of R timings (default 1 real, 3 stand-in)")
    args = ap.parse_args()
    n = args.n or (32 if args.real else 2048)
    repeat = args.repeat or (1 if args.real else 3)
    fn, dim, key = vgg19_fc2(args.size) if args.real else stand_in(args.size)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_images(tmp, n, args.size)
        batches = [paths[i:i + args.batch_size] for i in range(0, n, args.batch_size)]
        fn(batches[0])  # compile / warm up before any timing

        # Best of `repeat`: this machine's timings are noisy; cold runs each
        # start from an empty cache folder.
        t_bare = t_cold = float("inf")
        for r in range(repeat):
            t = time.perf_counter()
            bare = np.concatenate([fn(b) for b in batches])
            t_bare = min(t_bare, time.perf_counter() - t)

            t = time.perf_counter()
            cold = cached_features(paths, fn, FeatureCache(tmp / f"cache{r}", key, dim), args.batch_size,
                                   progress=False)
            t_cold = min(t_cold, time.perf_counter() - t)

        t_warm = float("inf")
        for _ in range(repeat):
            cache = FeatureCache(tmp / "cache0", key, dim)  # as a new process would
            t = time.perf_counter()
            warm = cached_features(paths, fn, cache, args.batch_size, progress=False)
            t_warm = min(t_warm, time.perf_counter() - t)
        assert cache.stats.computed == 0 and cache.stats.hits == n
        np.testing.assert_allclose(cold, bare, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(warm, cold)
        size_mb = (cache.file.stat().st_size) / 2**20

    name = "vgg19_fc2 (weights=None)" if args.real else "stand-in"
    print(f"{name}: {n} images {args.size}x{args.size}, batch {args.batch_size}, dim {dim}, "
          f"cache {size_mb:.1f} MiB, best of {repeat}")
    print(f"  bare extract   {n / t_bare:10.1f} img/s  ({t_bare:.3f}s)")
    print(f"  cache, cold    {n / t_cold:10.1f} img/s  ({t_cold:.3f}s)  "
          f"cold/bare = {t_bare / t_cold:.3f}  (target >= 0.9)")
    print(f"  cache, warm    {n / t_warm:10.1f} img/s  ({t_warm:.3f}s)  "
          f"warm speedup = {t_cold / t_warm:.0f}x over cold, {t_bare / t_warm:.0f}x over bare  (target >= 50x)")


if __name__ == "__main__":
    main()
