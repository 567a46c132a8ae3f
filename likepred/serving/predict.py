"""Predict likes of planned posts with a model a run logged.

    python -m likepred.predict --model runs:/RUN_ID/model post.json
    python -m likepred.predict --model models:/likepred/1 posts.jsonl -o out.csv
    python -m likepred.predict --model runs:/RUN_ID/model --explain post.json

A post (profiles-format names): the user's `alias` (known to the model) or its
profile numbers (`numberFollowers`, `numberFollowing`, `numberPosts`), the
planned `date` (ISO 8601), `caption` (or `description`), `tags`, `mentions`,
optionally an `image` path. A .json file holds one post or a list; a .jsonl
file one post a line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from likepred.errors import ConfigError, DataError, LikepredError



def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m likepred.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("posts", help="a .json file (one post or a list) or a .jsonl file (one post a line)")
    ap.add_argument("--model", required=True, help="runs:/RUN_ID/model, models:/NAME/VERSION or a model folder")
    ap.add_argument("-o", "--output", help="write a CSV (one row per post) instead of printing")
    ap.add_argument("--explain", action="store_true", help="show the features that moved each prediction most")
    ap.add_argument("--top", type=int, default=5, help="features shown by --explain (default 5)")
    ap.add_argument("--tracking-uri", help="MLflow store of runs:/ and models:/ URIs "
                    "(default: $MLFLOW_TRACKING_URI, else the one in conf/tracking/local.yaml)")
    return ap.parse_args(argv)


def read_posts(path) -> list:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}", field="posts")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        posts = json.loads(text)
    except json.JSONDecodeError as e:
        line = e.lineno if p.suffix != ".jsonl" else "?"
        raise DataError(f"not valid JSON ({e.msg} at line {line})", p.name) from None
    return posts if isinstance(posts, list) else [posts]


def default_tracking_uri() -> str:
    from likepred.config.schema import DEFAULT_URI

    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def load_model(uri: str, tracking_uri: str | None):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or default_tracking_uri())
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as e:  # MlflowException, OSError: a wrong URI, store or folder
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--model {uri}: cannot load it ({first})") from None
    inner = model.unwrap_python_model()
    if not hasattr(inner, "predictor"):
        raise ConfigError(f"--model {uri}: not a likepred model (logged by python -m likepred)")
    return inner.predictor


def interval_text(row, level) -> str:
    if row.likes_low != row.likes_low:  # NaN: a prediction <= 0, or too few validation rows
        return f"~{row.likes:.0f} likes (no interval)"
    return f"~{row.likes:.0f} likes ({level:.0%} interval {row.likes_low:.0f}-{row.likes_high:.0f})"


def explanation_lines(e: dict) -> list[str]:
    if all(d == 0 for _, _, d in e["contributions"]):
        return ["  no feature moves this model's prediction (it uses the user's train likes alone)"]
    lines = ["  largest feature contributions (likes: the change when that feature is set to its training mean):"]
    for label, value, delta in e["contributions"]:
        if isinstance(value, float):
            value = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        shown = f"{label} = {value}" if value else label
        lines.append(f"  {delta:+8.0f}  {shown}")
    lines.append(f"  with every feature at its training mean: {e['at_means']:.0f} likes")
    if e["target_base"]:
        stat, value = e["target_base"]
        lines.append(f"  (the model predicts a multiple of the user's train {stat} likes: {value:.0f})")
    return lines


def explanation_cell(e: dict) -> str:
    return "; ".join(f"{label} {delta:+.0f}" for label, _, delta in e["contributions"])


def notes(records, posts, known) -> list[str]:
    out = []
    ignored = sorted({k for r in records if isinstance(r, dict) for k in r} - set(_fields()))
    if ignored:
        out.append(f"note: ignored fields (not used to predict): {', '.join(ignored)}")
    unknown = posts["alias"][~known]
    named = [a for a in unknown if a]
    for a in dict.fromkeys(named[:5]):
        out.append(f"note: user {a!r} is not known to the model: cold-start prediction from its profile numbers")
    if len(named) > 5 or len(unknown) > len(named):
        out.append(f"note: {len(unknown)} of {len(posts)} posts are from users unknown to the model (cold start)")
    return out


def _fields():
    from likepred.data.schema import PLANNED_POST_FIELDS

    return ["date", *PLANNED_POST_FIELDS]


def predict_file(predictor, path, output=None, explain=False, top=5) -> None:
    """The command after loading the model: read, validate, predict, print or write."""
    records = read_posts(path)
    if not records:
        raise DataError("no posts in the file", Path(path).name)
    posts, known = predictor.posts(records, Path(path).name)
    out = predictor.predict(posts, known)
    explained = predictor.explain(posts, top) if explain else None
    for line in notes(records, posts, known):
        print(line, file=sys.stderr)
    if output:
        table = posts[["alias", "date"]].copy().join(out)
        if explained:
            table["explain"] = [explanation_cell(e) for e in explained]
        table.to_csv(output, index=False)
        print(f"wrote {len(table)} predictions to {output}")
        return
    for i, row in enumerate(out.itertuples()):
        head = "" if len(out) == 1 else f"post {i} ({posts['alias'][i] or 'new user'}, {posts['date'][i]:%Y-%m-%d}): "
        print(head + interval_text(row, predictor.level))
        if explained:
            print("\n".join(explanation_lines(explained[i])))


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model load is noise here
    try:
        predict_file(load_model(args.model, args.tracking_uri), args.posts, args.output, args.explain, args.top)
    except LikepredError as e:
        print(f"likepred.predict: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
