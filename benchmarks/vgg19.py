"""VGG19 fc2 extraction speed on this machine: each runtime on the same network and inputs.

Prints images/s and CPU seconds per image (a steadier figure on a busy machine) (224x224, random weights: the same FLOPs as ImageNet's) for
  keras-jax         Keras 3 on JAX, model.predict (a fresh process, KERAS_BACKEND=jax)
  keras-tensorflow  Keras 3 on TensorFlow (with --tf-python PY: another venv's python, since
                    TensorFlow pins numpy and ml_dtypes; skipped where it is not installed)
  onnxruntime       the same Keras net converted by likepred.images.runtime
  onnxruntime-int8  ... quantised to int8 (images.extract_precision=int8, the default), with the
                    time to quantise it and its features' cosine to fp32 on synthetic pictures
  likepred          the `cnn_features` extractor end to end (synthetic 64x64 JPEGs, read, upscaled,
                    hashed, extracted, cached: what `python -m likepred model=vgg19_dense` runs),
                    in fp32 and int8
and the extractor's speed over the fastest bare runtime of its precision (target >= 0.9).

    python benchmarks/vgg19.py [--n 64] [--batch-size 32] [--tf-python /tmp/tfvenv/bin/python]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare(runtime, n, batch):
    """Child process: images/s of one runtime's forward passes (after one warm-up batch), CPU s
    per image, and for int8 the seconds to quantise and the cosine of its features to fp32's."""
    import numpy as np

    import keras

    base = keras.applications.VGG19(weights=None, include_top=True, input_shape=(224, 224, 3))
    model = keras.Model(base.input, base.get_layer("fc2").output, name="vgg19_fc2")
    extra = {}
    if runtime.startswith("onnxruntime"):
        from likepred.images.runtime import calibration_images, runner

        fn, got = runner(model, "onnx")
        if runtime == "onnxruntime-int8":
            prep = keras.applications.vgg19.preprocess_input
            t = time.perf_counter()
            fn8, got = runner(model, "onnx", "int8", prep(calibration_images(224)))
            extra["quantise_s"] = time.perf_counter() - t
            pics = prep(_pictures(16))
            a, b = np.asarray(fn(pics)), np.asarray(fn8(pics))
            extra["cosine"] = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
            fn = fn8
        assert got.startswith("onnx"), got
    else:
        def fn(x):
            return model.predict(x, batch_size=len(x), verbose=0)
    x = np.random.default_rng(0).uniform(-120, 150, (batch, 224, 224, 3)).astype(np.float32)
    fn(x)  # compile / warm up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(max(1, n // batch)):
        np.asarray(fn(x))
    done = max(1, n // batch) * batch
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done, extra


def _pictures(n):
    """n synthetic 64x64 post pictures (the default data's), upscaled to 224 as the extractor does."""
    import numpy as np
    import pandas as pd

    from likepred.images.files import load_image
    from likepred.synthetic.images import render_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = [f"p{i:03d}.jpg" for i in range(n)]
        pd.DataFrame({"filename": names, "visual_class": [i % 8 for i in range(n)]}).to_csv(tmp / "l.csv", index=False)
        render_images(tmp / "l.csv", tmp / "img", size=64, progress=False)
        return np.stack([load_image(tmp / "img" / name, 224) for name in names]).astype(np.float32)


def through_likepred(n, batch, precision):
    """Child process: the cnn_features extractor on n synthetic 64x64 JPEGs, into an empty cache."""
    import pandas as pd

    from likepred.features.images import CnnFeatures
    from likepred.synthetic.images import render_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = [f"img{i:05d}.jpg" for i in range(n + batch)]
        pd.DataFrame({"filename": names, "visual_class": [i % 8 for i in range(len(names))]}).to_csv(
            tmp / "latent.csv", index=False)
        render_images(tmp / "latent.csv", tmp / "img", size=64, progress=False)
        posts = pd.DataFrame({"image": names})
        ex = CnnFeatures(dir=str(tmp / "img"), weights=None, cache_dir=str(tmp / "cache"), batch_size=batch,
                         precision=precision)
        ex.fit(posts)
        ex.transform(posts.iloc[:batch])  # build + warm up, like the bare runs
        start, cpu = time.perf_counter(), time.process_time()
        ex.transform(posts.iloc[batch:])
        return n / (time.perf_counter() - start), (time.process_time() - cpu) / n, ex.runtime_


def child(args):
    if args.worker.startswith("likepred"):
        rate, cpu, runtime = through_likepred(args.n, args.batch_size, args.worker.split("-")[1])
        print(json.dumps({"rate": rate, "cpu": cpu, "runtime": runtime}))
    else:
        rate, cpu, extra = bare(args.worker, args.n, args.batch_size)
        print(json.dumps({"rate": rate, "cpu": cpu, **extra}))


def run(worker, args, python=None, backend="jax"):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [python or sys.executable, __file__, "--worker", worker, "--n", str(args.n),
           "--batch-size", str(args.batch_size)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode or not lines:
        print(f"  {worker}: failed\n{p.stderr[-1500:]}")
        return None
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="images timed (after one warm-up batch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tf-python", default=None, help="a python with tensorflow (another venv)")
    ap.add_argument("--only", default="keras-jax,keras-tensorflow,onnxruntime,onnxruntime-int8",
                    help="runtimes to time")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return child(args)
    print(f"VGG19 fc2, 224x224, batch {args.batch_size}, {args.n} images; {os.cpu_count()} CPUs "
          f"(load {os.getloadavg()[0]:.1f}: a shared machine gives upper bounds on time)")
    rates = {}
    for name, python, backend in (("keras-jax", None, "jax"), ("keras-tensorflow", args.tf_python, "tensorflow"),
                                  ("onnxruntime", None, "jax"), ("onnxruntime-int8", None, "jax")):
        if name not in args.only.split(","):
            continue
        if name == "keras-tensorflow" and not args.tf_python:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None:
                print(f"  {name:18} skipped: tensorflow not installed (--tf-python PY)")
                continue
        got = run(name if name.startswith("onnxruntime") else "keras", args, python, backend)
        if got:
            rates[name] = got["rate"]
            more = (f"  (quantised in {got['quantise_s']:.0f} s; features' cosine to fp32 >= {got['cosine']:.4f})"
                    if "cosine" in got else "")
            print(f"  {name:18} {got['rate']:6.2f} images/s  {got['cpu']:6.3f} CPU s/image{more}", flush=True)
    for precision in ("fp32", "int8"):
        peers = {k: v for k, v in rates.items() if k.endswith("-int8") == (precision == "int8")}
        got = run(f"likepred-{precision}", args)
        if got and peers:
            best = max(peers, key=peers.get)
            print(f"  {'likepred (' + got['runtime'] + ')':18} {got['rate']:6.2f} images/s  {got['cpu']:6.3f} CPU "
                  f"s/image end to end: {got['rate'] / peers[best]:.2f}x the fastest bare {precision} runtime "
                  f"({best}; target >= 0.9)", flush=True)


if __name__ == "__main__":
    main()
