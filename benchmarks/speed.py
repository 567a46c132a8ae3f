"""Speed: data generation/reading, feature building and one training run on ~16.5k posts; with
--command, `--help` against `import hydra` and the default command (`python -m likepred`) warm,
and where its time goes.

    python benchmarks/speed.py [--users 550] [--model dense_meta] [overrides...]
    python benchmarks/speed.py --command [--runs 3] [overrides...]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
from hydra import compose, initialize_config_dir  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "likepred" / "conf")


# (label, "file:function" in the profile): the default command's parts, by cumulative time
PARTS = [
    ("imports (every module, all parts)", "<frozen importlib._bootstrap>:_find_and_load"),
    ("Hydra: compose the config", "hydra/_internal/config_loader_impl.py:load_configuration"),
    ("config check", "likepred/config/__init__.py:check"),
    ("MLflow run start + end", "likepred/tracking/run.py:open_run"),
    ("load data (cached)", "likepred/data/__init__.py:load_dataset"),
    ("features + target (fit, transform)", "likepred/pipeline.py:prepare"),
    ("model fit (Keras)", "likepred/models/keras_estimator.py:fit"),
    ("  JAX compiling", "jax/_src/compiler.py:compile_or_get_cached"),
    ("evaluate (model + baselines)", "likepred/evaluation/__init__.py:evaluate"),
    ("log results (metrics, files)", "likepred/tracking/run.py:log_folder"),
    ("package + log the model", "likepred/train.py:_log_model"),
]


def help_time(n=5):
    """`python -m likepred --help` against `import hydra, omegaconf` (target <= 2x), median of n."""
    import statistics
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))

    def median(cmd):
        walls, cpus = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), os.times()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            c1 = os.times()
            walls.append(time.perf_counter() - t0)
            cpus.append(c1.children_user - c0.children_user + c1.children_system - c0.children_system)
        return statistics.median(walls), statistics.median(cpus)

    base = median([sys.executable, "-c", "import hydra, omegaconf"])
    helped = median([sys.executable, "-m", "likepred", "--help"])
    print(f"--help: {helped[0]:.2f} s wall, {helped[1]:.2f} s CPU; import hydra, omegaconf: {base[0]:.2f} s, "
          f"{base[1]:.2f} s CPU: {helped[0] / base[0]:.2f}x wall, {helped[1] / base[1]:.2f}x CPU (target <= 2x)",
          flush=True)


def command(runs, overrides):
    """Time `python -m likepred` warm (median of `runs` after one warm-up), then profile one run."""
    import pstats
    import statistics
    import subprocess
    import sys

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as cwd:
        cmd = [sys.executable, "-m", "likepred", *overrides]
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)  # warm: data, caches, store
        walls, cpus = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), os.times()
            subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
            c1 = os.times()
            walls.append(time.perf_counter() - t0)
            cpus.append(c1.children_user - c0.children_user + c1.children_system - c0.children_system)
        print(f"python -m likepred {' '.join(overrides)}: warm, median of {runs}: {statistics.median(walls):.1f} s "
              f"wall, {statistics.median(cpus):.1f} s CPU ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})",
              flush=True)
        prof = Path(cwd) / "run.prof"
        code = ("import cProfile, runpy, sys; out = sys.argv[1]; sys.argv = ['likepred', *sys.argv[2:]]\n"
                "p = cProfile.Profile(); p.enable()\n"
                "try: runpy.run_module('likepred', run_name='__main__')\nexcept SystemExit: pass\n"
                "p.disable(); p.dump_stats(out)")
        subprocess.run([sys.executable, "-c", code, str(prof), *overrides], cwd=cwd, env=env, check=True,
                       capture_output=True)
        stats = pstats.Stats(str(prof)).stats
    total = max(ct for (_, _, _), (_, _, _, ct, _) in stats.items())
    print(f"one profiled run (cProfile slows Python code, not compiled code): {total:.1f} s")
    for label, where in PARTS:
        path, func = where.rsplit(":", 1)
        got = sum(v[3] for (f, _, fn), v in stats.items() if fn == func and f.endswith(path))
        print(f"  {label:38}{got:7.1f} s  {100 * got / total:4.0f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=550)
    ap.add_argument("--model", default="dense_meta")
    ap.add_argument("--command", action="store_true", help="time the default command instead, with a breakdown")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    if a.command:
        help_time()
        return command(a.runs, a.overrides)
    cache = tempfile.mkdtemp()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"data.path={cache}", f"data.n_users={a.users}", "data.min_posts=20",
                                           "data.max_posts=40", f"model={a.model}", "trainer.verbose=0",
                                           "tracking.enabled=false", *a.overrides])
    from likepred.backend import use_backend
    from likepred.data import load_dataset
    from likepred.features import build_features
    from likepred.models import build_model
    from likepred.pipeline import Pipeline
    from likepred.split import make_split
    from likepred.targets import build_target

    use_backend(cfg.backend)
    t = {}
    t0 = time.perf_counter()
    data = load_dataset(cfg.data)
    t["generate+read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = load_dataset(cfg.data)
    t["read (cached)"] = time.perf_counter() - t0
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    t0 = time.perf_counter()
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    tr = pipe.fit_transform(rows(split.train))
    va, te = pipe.transform(rows(split.val)), pipe.transform(rows(split.test))
    t["features fit+transform"] = time.perf_counter() - t0
    import keras  # noqa: F401  (import time is not training time)

    model = build_model(cfg)
    epochs = []
    t0 = time.perf_counter()
    model.fit(tr, va, on_epoch=lambda e, logs: epochs.append(e))
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.predict(te)
    t["predict test"] = time.perf_counter() - t0
    print(f"posts: {len(data.posts)} ({len(tr)} train), model {a.model}, {len(epochs)} epochs, features {cfg.features.name}")
    for k, v in t.items():
        print(f"{k:24}{v:8.2f} s")
    if epochs:
        print(f"{'per epoch':24}{t['train'] / len(epochs):8.3f} s")


if __name__ == "__main__":
    main()
