"""Cost of the bootstrap intervals a run logs (likepred.evaluation.intervals), as `evaluate` calls it:
the model's MAPE interval and paired differences against both baselines, for all and mature rows.

    python benchmarks/intervals.py [--boot 1000] [--sizes 10000,2000000]
Test posts per user ~ 5 (real profiles: 522 test posts of 188 users), so users = posts / 5.
"""

import argparse
import os
import time

import numpy as np

from likepred.evaluation.intervals import interval_metrics


def case(n_posts, n_boot, posts_per_user=5, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(1, n_posts // posts_per_user), n_posts)
    likes = rng.integers(1, 10_000, n_posts).astype(float)
    preds = [likes * rng.lognormal(0, 0.4, n_posts) for _ in range(3)]
    mature = rng.random(n_posts) < 0.9
    t, c = time.perf_counter(), time.process_time()
    interval_metrics("test", likes, preds[0], users, {"best_constant": preds[1], "user_mean": preds[2]}, n_boot, 0,
                     mature)
    return time.perf_counter() - t, time.process_time() - c


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--sizes", default="10000,100000,2000000")
    args = p.parse_args()
    case(1000, 10)  # warm up imports
    for n in map(int, args.sizes.split(",")):
        wall, cpu = min(case(n, args.boot) for _ in range(3 if n <= 100_000 else 1))
        print(f"{n:>9,} test posts, {n // 5:>7,} users, B={args.boot}: {wall:7.3f} s wall, {cpu:7.3f} s CPU "
              f"(all + mature rows, model CI + 2 paired differences each; load {os.getloadavg()[0]:.1f})", flush=True)
