"""Speed: data generation/reading, feature building and one training run on ~16.5k posts.

    python benchmarks/speed.py [--users 550] [--model dense_meta] [overrides...]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
from hydra import compose, initialize_config_dir  # noqa: E402

CONF = str(Path(__file__).resolve().parents[1] / "likepred" / "conf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=550)
    ap.add_argument("--model", default="dense_meta")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
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
