"""`likepred report [SWEEP]`: a sweep's comparison table and chart, read back from MLflow.

SWEEP is a sweep dir (it holds likepred_sweep.json) or a parent run id (with --uri); without
it, the sweep started last in the store ($MLFLOW_TRACKING_URI, else the local SQLite file).
The sweep logs the same table and chart on its parent run when it ends.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from likepred.config.schema import DEFAULT_URI
from likepred.errors import LikepredError
from likepred.tracking.keys import OPTIMIZED, SWEEP_FILE, SWEEP_TAG, tag
from likepred.tracking.report import format_table, sweep_table, write_report


def _resolve(sweep: str | None, uri: str | None) -> tuple[str, str, str | None]:
    """(store, parent run id, optimised metric or None: the parent's tag says) of SWEEP."""
    from likepred.stores import default_store, store_path

    if sweep is None:
        uri = uri or default_store()
        path = store_path(uri)
        if path is not None and not path.exists():  # a mistyped local store is refused, not created empty
            raise LikepredError(f"no store {uri} ({path} does not exist; name one with --uri)")
        return uri, None, None
    path = Path(sweep)
    if path.is_dir():
        info_file = path / SWEEP_FILE
        if not info_file.exists():
            raise LikepredError(f"{path} holds no {SWEEP_FILE}: is it a sweep dir (hydra.sweep.dir) "
                                "of a multirun logged to MLflow?")
        info = json.loads(info_file.read_text())
        return uri or info["tracking_uri"], info["parent_run_id"], info.get("optimized_metric") or "val_mape"
    if path.suffix or "/" in sweep:
        raise LikepredError(f"{sweep}: no such sweep dir (give a sweep dir or a parent run id)")
    return uri or default_store(), sweep, None


def latest_sweep(client, uri: str) -> str:
    """The parent run id of the sweep started last in the store, in any experiment."""
    exps = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    found = client.search_runs(exps, filter_string=f"tags.`{SWEEP_TAG}` = 'true'",
                               order_by=["attributes.start_time DESC"], max_results=1) if exps else []
    if not found:
        raise LikepredError(f"no sweep in the store {uri} (run one with python -m likepred --multirun ..., "
                            "or name the store with --uri)")
    return found[0].info.run_id


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="likepred report", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", nargs="?", help="a sweep dir (outputs/multirun/DATE/TIME) or a sweep's parent run id "
                   "(default: the latest sweep in the store)")
    p.add_argument("--uri", help="MLflow tracking URI (default: the sweep dir's, else $MLFLOW_TRACKING_URI, "
                   f"else {DEFAULT_URI})")
    p.add_argument("--out", help="also write the table (CSV, text) and the chart (PNG) into this folder")
    args = p.parse_args(argv)
    try:
        uri, parent_id, metric = _resolve(args.sweep, args.uri)
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        try:
            parent_id = parent_id or latest_sweep(client, uri)
            metric = metric or tag(client.get_run(parent_id).data.tags, OPTIMIZED) or "val_mape"
            table = sweep_table(client, parent_id, metric)
        except MlflowException as e:
            raise LikepredError(f"cannot read sweep run {parent_id or '(latest)'} from {uri}: {e.message}") from None
    except LikepredError as e:
        print(f"likepred report: error: {e}", file=sys.stderr)
        return 2
    print(f"Sweep {parent_id} (store {uri})")
    print(format_table(table, metric))
    if args.out:
        written = write_report(table, Path(args.out), metric)
        print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
