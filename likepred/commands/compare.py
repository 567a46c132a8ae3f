"""`likepred compare RUN_A RUN_B`: are two runs' test scores really different?

    likepred compare RUN_A RUN_B [--uri URI] [--boot 1000] [--seed 0] [--mature]

Each RUN is an MLflow run id: a run, or the parent of a cross-validated run (split.folds=K; its
pooled predictions). The two are joined on the test rows they share (alias, post_index, date of
predictions.csv) and compared there, paired: both MAPEs with 95% intervals, A - B with its
interval, and a two-sided p-value, from one bootstrap over users. Runs on different data
(their likepred.dataset_hash tags differ) or with no test rows in common are refused, saying why.
"""

from __future__ import annotations

import argparse
import logging
import sys

from likepred.errors import LikepredError

log = logging.getLogger("likepred")

KEYS = ["alias", "post_index", "date"]


def shared_rows(a, b):
    """The rows two predictions tables share, joined on KEYS (likes must agree)."""
    import numpy as np

    joined = a.merge(b, on=KEYS, suffixes=("_a", "_b"), validate="one_to_one")
    if len(joined) == 0:
        raise LikepredError(f"the two runs share no test rows (A has {len(a)}, B has {len(b)}; joined on "
                            f"{', '.join(KEYS)}): a paired comparison needs the same rows, e.g. the same split")
    if not np.allclose(joined["likes_a"], joined["likes_b"]):
        raise LikepredError("the shared test rows have different likes in the two runs: not the same data")
    return joined


def compare(a, b, n_boot: int = 1000, seed: int = 0, mature: bool = False) -> dict:
    """Scores of two predictions tables on the rows they share, paired over users."""
    from likepred.evaluation.intervals import UserBootstrap

    rows = shared_rows(a, b)
    if mature:
        rows = rows[rows["mature_a"].astype(bool) & rows["mature_b"].astype(bool)]
        if len(rows) == 0:
            raise LikepredError("the two runs share no mature test rows")
    boot = UserBootstrap(rows["alias"].to_numpy(), n_boot, seed)
    ma, mb, d, p = boot.compare(rows["likes_a"].to_numpy(float), rows["predicted_a"].to_numpy(float),
                                rows["predicted_b"].to_numpy(float))
    return {"a": ma, "b": mb, "diff": d, "p": p, "rows": len(rows), "users": rows["alias"].nunique(),
            "rows_a": len(a), "rows_b": len(b)}


def format_result(r: dict, name_a="A", name_b="B") -> str:
    from likepred.evaluation.intervals import describe, verdict_word

    d = r["diff"]
    word = verdict_word(d.low, d.high)
    said = {"better": "A is better than B", "worse": "A is worse than B",
            "not significant": "not significant: a tie"}[word]
    return "\n".join([
        f"{r['rows']} shared test rows of {r['users']} users (A has {r['rows_a']}, B has {r['rows_b']})",
        f"A {name_a}: test MAPE {describe(r['a'].value, r['a'].low, r['a'].high, digits=2)}",
        f"B {name_b}: test MAPE {describe(r['b'].value, r['b'].low, r['b'].high, digits=2)}",
        f"A - B: {describe(d.value, d.low, d.high, signed=True, digits=2)} (95% interval, paired bootstrap over users), "
        f"p = {r['p']:.3g}: {said}",
    ])


def load_run(client, run_id):
    """(the MLflow run, its test predictions table), or a LikepredError saying why not."""
    from mlflow.exceptions import MlflowException

    from likepred.tracking.folds import read_predictions

    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise LikepredError(f"no run {run_id}: {e.message}") from None
    try:
        table = read_predictions(client, run_id)
    except (MlflowException, OSError):
        raise LikepredError(f"run {run_id} has no predictions.csv artifact (a finished run logs one; a "
                            "cross-validation parent once all its folds have ended)") from None
    return run, table


def compare_runs(client, run_a: str, run_b: str, n_boot: int = 1000, seed: int = 0, mature: bool = False) -> dict:
    """`compare` of two MLflow runs' test predictions (runs or cross-validation parents), refused
    in one line when they are on different data; adds the runs' names (`name_a`, `name_b`)."""
    from likepred.data.schema import fingerprint_version
    from likepred.tracking.keys import DATASET_HASH, tag

    (ra, a), (rb, b) = load_run(client, run_a), load_run(client, run_b)
    ha, hb = tag(ra.data.tags, DATASET_HASH), tag(rb.data.tags, DATASET_HASH)
    if ha and hb and fingerprint_version(ha) != fingerprint_version(hb):  # made by different versions: unknown
        log.warning("the runs' data fingerprints were made by different likepred versions (%s, %s): "
                    "it cannot tell whether they are on the same data", ha, hb)
    elif ha and hb and ha != hb:
        raise LikepredError(f"the runs are on different data (dataset_hash {ha} vs {hb}): "
                            "their scores are not comparable")
    if n_boot < 1:
        raise LikepredError("--boot must be >= 1")
    return compare(a, b, n_boot, seed, mature) | {"name_a": ra.info.run_name or run_a, "name_b": rb.info.run_name or run_b}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="likepred compare", description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", help="an MLflow run id (a run or a cross-validation parent)")
    p.add_argument("run_b")
    p.add_argument("--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of users (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mature", action="store_true", help="only the mature test rows")
    args = p.parse_args(argv)
    try:
        from mlflow.tracking import MlflowClient

        from likepred.stores import default_store
        from likepred.tracking.store import prepare_uri

        client = MlflowClient(prepare_uri(args.uri or default_store()))
        result = compare_runs(client, args.run_a, args.run_b, args.boot, args.seed, args.mature)
    except LikepredError as e:
        print(f"likepred compare: error: {e}", file=sys.stderr)
        return 2
    print(format_result(result, result["name_a"], result["name_b"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
