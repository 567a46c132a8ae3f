"""VGG19 fc2 extraction speed on this machine: each runtime on the same network and inputs.

Prints images/s and CPU seconds per image (a steadier figure on a busy machine) (224x224, random weights: the same FLOPs as ImageNet's) for
  keras-jax         Keras 3 on JAX, model.predict (a fresh process, KERAS_BACKEND=jax)
  keras-tensorflow  Keras 3 on TensorFlow (with --tf-python PY: another venv's python, since
                    TensorFlow pins numpy and ml_dtypes; skipped where it is not installed)
  onnxruntime       the same Keras net converted by likepred.images.runtime
  likepred          the `cnn_features` extractor end to end (synthetic 64x64 JPEGs, read, upscaled,
                    hashed, extracted, cached: what `python -m likepred model=vgg19_dense` runs)
and the extractor's speed over the fastest bare runtime (target >= 0.9).

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
    """Child process: images/s of one runtime's forward passes (after one warm-up batch)."""
    import numpy as np

    import keras

    base = keras.applications.VGG19(weights=None, include_top=True, input_shape=(224, 224, 3))
    model = keras.Model(base.input, base.get_layer("fc2").output, name="vgg19_fc2")
    if runtime == "onnxruntime":
        from likepred.images.runtime import runner

        fn, got = runner(model, "onnx")
        assert got == "onnx", got
    else:
        def fn(x):
            return model.predict(x, batch_size=len(x), verbose=0)
    x = np.random.default_rng(0).uniform(-120, 150, (batch, 224, 224, 3)).astype(np.float32)
    fn(x)  # compile / warm up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(max(1, n // batch)):
        np.asarray(fn(x))
    done = max(1, n // batch) * batch
    return done / (time.perf_counter() - start), (time.process_time() - cpu) / done


def through_likepred(n, batch):
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
        ex = CnnFeatures(dir=str(tmp / "img"), weights=None, cache_dir=str(tmp / "cache"), batch_size=batch)
        ex.fit(posts)
        ex.transform(posts.iloc[:batch])  # build + warm up, like the bare runs
        start, cpu = time.perf_counter(), time.process_time()
        ex.transform(posts.iloc[batch:])
        return n / (time.perf_counter() - start), (time.process_time() - cpu) / n, ex.runtime_


def child(args):
    if args.worker == "likepred":
        rate, cpu, runtime = through_likepred(args.n, args.batch_size)
        print(json.dumps({"rate": rate, "cpu": cpu, "runtime": runtime}))
    else:
        rate, cpu = bare(args.worker, args.n, args.batch_size)
        print(json.dumps({"rate": rate, "cpu": cpu}))


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
    ap.add_argument("--only", default="keras-jax,keras-tensorflow,onnxruntime", help="runtimes to time")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return child(args)
    print(f"VGG19 fc2, 224x224, batch {args.batch_size}, {args.n} images; {os.cpu_count()} CPUs "
          f"(load {os.getloadavg()[0]:.1f}: a shared machine gives upper bounds on time)")
    rates = {}
    for name, python, backend in (("keras-jax", None, "jax"), ("keras-tensorflow", args.tf_python, "tensorflow"),
                                  ("onnxruntime", None, "jax")):
        if name not in args.only.split(","):
            continue
        if name == "keras-tensorflow" and not args.tf_python:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None:
                print(f"  {name:18} skipped: tensorflow not installed (--tf-python PY)")
                continue
        got = run(name if name == "onnxruntime" else "keras", args, python, backend)
        if got:
            rates[name] = got["rate"]
            print(f"  {name:18} {got['rate']:6.2f} images/s  {got['cpu']:6.3f} CPU s/image", flush=True)
    got = run("likepred", args)
    if got and rates:
        best = max(rates, key=rates.get)
        print(f"  {'likepred (' + got['runtime'] + ')':18} {got['rate']:6.2f} images/s  {got['cpu']:6.3f} CPU s/image "
              f"end to end: {got['rate'] / rates[best]:.2f}x the fastest bare runtime ({best}; target >= 0.9)")


if __name__ == "__main__":
    main()
