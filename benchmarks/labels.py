"""The label autoencoder on synthetic labels: reconstruction and fit time per setting,
how well k-means clusters of its codes recover the hidden image classes, and
(with --compare) approach 3 (labels_ae) against approach 5 (labels_clusters) on test_mape.

    python benchmarks/labels.py [--n-users 300] [--compare --seeds 0,1,2]

Train = the train rows of the default chrono split; test = its test rows.
"""

import argparse
import contextlib
import io
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

from likepred.data import load_dataset  # noqa: E402
from likepred.features import build_features  # noqa: E402
from likepred.split import make_split  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "likepred", "conf")


def config(*overrides):
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        return compose("config", overrides=["tracking.enabled=false", "trainer.verbose=0", *overrides])


def purity(clusters, classes):
    """Share of images whose cluster's most common hidden class is their own."""
    hit = 0
    for c in np.unique(clusters):
        hit += np.bincount(classes[clusters == c]).max()
    return hit / len(classes)


def reconstruction(data_args):
    cfg = config(*data_args)
    data = load_dataset(cfg.data)
    data.ensure_labels()  # synthetic labels are drawn on first use
    split = make_split(data.posts, cfg.split)
    train, test = (data.posts.iloc[ix].reset_index(drop=True) for ix in (split.train, split.test))
    latent = pd.read_csv(os.path.join(os.path.dirname(data.labels_path), "latent.csv")).set_index("filename")
    print(f"{len(train)} train / {len(test)} test posts")
    print(f"{'encoding':8s} {'dim':>4s} {'vocab':>5s} {'labels':>6s} {'fit s':>6s} {'bce train':>9s} {'bce test':>8s} "
          f"{'symdiff train':>13s} {'symdiff test':>12s} {'purity k=8':>10s} {'k=50':>5s}")
    for encoding in ("onehot", "score"):
        for dim in (50, 100):
            fcfg = config(*data_args, "features=labels_ae", f"features.extractors.label_ae.encoding={encoding}",
                          f"features.extractors.label_ae.encoding_dim={dim}").features
            ex = build_features(fcfg, data).extractors[0]
            t = time.perf_counter()
            ex.fit(train)
            fit_s = time.perf_counter() - t
            tr, te = ex.report(train), ex.report(test)
            z, has, _ = ex._codes_of(test)
            classes = latent.loc[test["image"][has], "visual_class"].to_numpy()
            pur = [purity(KMeans(n_clusters=k, random_state=0, n_init=4).fit_predict(z[has]), classes) for k in (8, 50)]
            print(f"{encoding:8s} {dim:4d} {len(ex.vocab_):5d} {tr['n_labels']:6.2f} {fit_s:6.1f} {tr['bce']:9.4f} "
                  f"{te['bce']:8.4f} {tr['symdiff']:13.3f} {te['symdiff']:12.3f} {pur[0]:10.3f} {pur[1]:5.3f}")


def compare(data_args, seeds, variants):
    from likepred.train import train

    print(f"{'features':44s} {'seed':>4s} {'test_mape':>9s} {'val_mape':>8s} {'s':>4s}")
    for name, overrides in variants:
        for seed in seeds:
            cfg = config(*data_args, "model=labels_dense", "target=positivity", f"seed={seed}", *overrides)
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                m = train(cfg)
            print(f"{name:44s} {seed:4d} {m['test_mape']:9.2f} {m['val_mape']:8.2f} "
                  f"{time.perf_counter() - t:4.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-users", type=int, default=300)
    ap.add_argument("--compare", action="store_true", help="also train approaches 3 and 5 (minutes)")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    data_args = [f"data.n_users={args.n_users}"]
    reconstruction(data_args)
    if args.compare:
        cl = "features.extractors.label_clusters"
        compare(data_args, [int(s) for s in args.seeds.split(",")], [
            ("labels_ae", ["features=labels_ae"]),
            ("labels_clusters (k=50, alpha=0.5: the study)", ["features=labels_clusters"]),
            ("labels_clusters (k=50, alpha=0.2)", ["features=labels_clusters", f"{cl}.alpha=0.2"]),
            ("labels_clusters (k=8, alpha=0.5)", ["features=labels_clusters", f"{cl}.k=8"]),
            ("labels_clusters (k=8, alpha=0.2)", ["features=labels_clusters", f"{cl}.k=8", f"{cl}.alpha=0.2"]),
        ])


if __name__ == "__main__":
    main()
