"""Benchmark the predict command with a model loaded once.

Trains tiny models on synthetic data into a temporary MLflow store (or takes
--model URI), then times, in this process:
  single   one post: read post.json, validate, predict, print (median and p95 of --repeat)
  batch    --n posts from a .jsonl file to a CSV (best of 3), posts/s; also with --explain
and the whole command on one post in a fresh process (interpreter, imports, model load: the
median of --fresh runs), beside a fresh `python -c "import mlflow"` (the same number of runs).
A tenth of the posts are from users the model has not seen (cold start).

    python benchmarks/predict.py                       # gbm and dense_meta, 10k posts
    python benchmarks/predict.py --models gbm --n 2000
    python benchmarks/predict.py --model runs:/RUN_ID/model --tracking-uri sqlite:///mlruns/mlflow.db
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import numpy as np
from hydra import compose, initialize_config_dir

from likepred.commands.predict import load_model, predict_file

ROOT = Path(__file__).resolve().parents[1]


def train_tiny(model, store, users):
    from mlflow.tracking import MlflowClient

    from likepred.train import train

    uri = f"sqlite:///{store}/mlflow.db"
    with initialize_config_dir(config_dir=str(ROOT / "likepred" / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"model={model}", f"data.n_users={users}", "trainer.epochs=5", "trainer.verbose=0",
            f"tracking.uri={uri}", f"tracking.artifact_root={store}/artifacts", f"tracking.experiment=bench-{model}"])
    with contextlib.redirect_stdout(io.StringIO()):
        train(cfg)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(f"bench-{model}").experiment_id])
    return f"runs:/{run.info.run_id}/model", uri, cfg


def make_posts(cfg, n, seed=0):
    """n post.json records drawn from the dataset; a tenth from new users (profile numbers only)."""
    from likepred.data import load_dataset

    posts = load_dataset(cfg.data).posts
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(posts.iloc[rng.integers(0, len(posts), n)].itertuples()):
        rec = {"alias": p.alias if i % 10 else f"new{i}", "date": p.date.isoformat(), "caption": p.caption,
               "tags": list(p.tags), "mentions": list(p.mentions)}
        if i % 2 == 0:  # known users need no profile numbers; new users must give them
            rec |= {"numberFollowers": int(p.followers), "numberFollowing": int(p.following),
                    "numberPosts": int(p.posts_count)}
        out.append(rec)
    return out


def quiet(fn, *args, **kw):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kw)


def bench(uri, tracking_uri, records, tmp, repeat, fresh_runs):
    one, many, out = tmp / "post.json", tmp / "posts.jsonl", tmp / "out.csv"
    one.write_text(json.dumps(records[1]))
    many.write_text("\n".join(json.dumps(r) for r in records))

    t = time.perf_counter()
    predictor = load_model(uri, tracking_uri)
    load_s = time.perf_counter() - t
    for _ in range(3):  # warm up: first calls compile (JAX) and fill caches
        quiet(predict_file, predictor, one)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        quiet(predict_file, predictor, one)
        times.append(time.perf_counter() - t)
    batch = {}
    for explain in (False, True):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            quiet(predict_file, predictor, many, out, explain)
            best = min(best, time.perf_counter() - t)
        batch[explain] = best

    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    fresh, answer = [], None
    for _ in range(fresh_runs):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "likepred.predict", "--model", uri, str(one)],
                              env=env, capture_output=True, text=True)
        fresh.append(time.perf_counter() - t)
        assert proc.returncode == 0, proc.stderr[-2000:]
        answer = proc.stdout.strip()
    return {"load_s": load_s, "single_ms": 1e3 * statistics.median(times),
            "single_p95_ms": 1e3 * float(np.percentile(times, 95)), "batch": batch[False],
            "batch_explain": batch[True], "cold_s": statistics.median(fresh), "answer": answer}


def import_mlflow_s(runs) -> float:
    """The yardstick: a fresh interpreter that only imports mlflow (median of `runs`)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlflow"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="gbm,dense_meta", help="registered models to train and time")
    ap.add_argument("--model", help="time this logged model instead (posts come from the default synthetic data)")
    ap.add_argument("--tracking-uri", help="the store of --model")
    ap.add_argument("--n", type=int, default=10000, help="posts in the batch")
    ap.add_argument("--users", type=int, default=100, help="synthetic users to train on")
    ap.add_argument("--repeat", type=int, default=50, help="single-post timings")
    ap.add_argument("--fresh", type=int, default=5, help="fresh-process runs of the command (median)")
    args = ap.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            with initialize_config_dir(config_dir=str(ROOT / "likepred" / "conf"), version_base="1.3"):
                cfg = compose("config")
            jobs = [(args.model, args.model, args.tracking_uri, cfg)]
        else:
            jobs = [(m, *train_tiny(m, tmp / "mlruns", args.users)) for m in args.models.split(",")]
        for name, uri, tracking_uri, cfg in jobs:
            results[name] = bench(uri, tracking_uri, make_posts(cfg, args.n), tmp, args.repeat, args.fresh)
        mlflow_s = import_mlflow_s(args.fresh)

    print(f"predict: {args.n} posts in the batch (10% from unseen users), single post median of {args.repeat}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'model':12}{'load s':>8}{'single ms':>11}{'p95 ms':>9}{'batch posts/s':>15}"
          f"{'+explain posts/s':>18}{'command s':>11}")
    for name, r in results.items():
        print(f"{name:12}{r['load_s']:8.2f}{r['single_ms']:11.1f}{r['single_p95_ms']:9.1f}"
              f"{args.n / r['batch']:15.0f}{args.n / r['batch_explain']:18.0f}{r['cold_s']:11.1f}")
    print(f"{'import mlflow':12}{'':>62}{mlflow_s:11.1f}")
    print(f"command s: the whole `python -m likepred.predict` on one post in a fresh process (interpreter, "
          f"imports, load), median of {args.fresh}; import mlflow: `python -c \"import mlflow\"`, median of {args.fresh}")
    for name, r in results.items():
        print(f"  {name} on one post: {r['answer']}")


if __name__ == "__main__":
    main()
