"""Predict likes of planned posts with a model a run logged.

    python -m likepred.predict --model runs:/RUN_ID/model post.json
    python -m likepred.predict --model models:/likepred/1 posts.jsonl -o out.csv
    python -m likepred.predict --model runs:/RUN_ID/model --explain post.json

A post (profiles-format names): the user's `alias` (known to the model) or its
profile numbers (`numberFollowers`, `numberFollowing`, `numberPosts`), the
planned `date` (ISO 8601), `caption` (or `description`), `tags`, `mentions`,
optionally an `image` path. A .json file holds one post or a list; a .jsonl
file one post a line (UTF-8).

A model is code as much as data: load only models you trust. likepred writes a
model's parts as data (arrays, weights, JSON) that loading does not execute; a
part written as a pickle (models logged before this format, or a pipeline part
the data format does not cover: training warns) runs code when loaded, so it is
read only from your own local store (runs:/, models:/) or with --trust-pickle.
MLflow's own wrapper in the model folder (python_model.pkl) is a pickle too:
this command never reads it; mlflow.pyfunc.load_model does.

Exit status: 0 all posts predicted, 1 some posts skipped (--on-error skip),
2 an error (one line saying what and where).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from likepred.errors import DataError, LikepredError


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m likepred.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("posts", help="a .json file (one post or a list) or a .jsonl file (one post a line)")
    ap.add_argument("--model", required=True, help="runs:/RUN_ID/model, models:/NAME/VERSION or a model folder "
                    "(a model is code: load only trusted ones)")
    ap.add_argument("-o", "--output", help="write a CSV (one row per post) instead of printing")
    ap.add_argument("--explain", action="store_true", help="show the features that moved each prediction most")
    ap.add_argument("--top", type=int, default=5, help="features shown by --explain (default 5)")
    ap.add_argument("--on-error", choices=("error", "skip"), default="error",
                    help="a bad post: stop (error, default) or leave it out, list it on stderr, predict the "
                         "others and exit 1 (skip)")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="load a model whose pipeline is a pickle from a folder or a remote store (a pickle "
                         "runs code when loaded: only for models you trust)")
    ap.add_argument("--tracking-uri", help="MLflow store of runs:/ and models:/ URIs, which must exist "
                    "(default: $MLFLOW_TRACKING_URI, else the one in conf/tracking/local.yaml)")
    return ap.parse_args(argv)


def _decode(raw: bytes, where, one_line: bool = False) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = raw.count(b"\n", 0, e.start) + 1, e.start - raw.rfind(b"\n", 0, e.start)
        at = f"column {col}" if one_line else f"line {line}, column {col}"
        raise DataError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at {at}); save the file as UTF-8 "
                        "(Latin-1?)", where) from None


def _json(text: str, where, one_line: bool = False):
    from likepred.data.profiles import DuplicateKey, loads  # the data readers' rules: no key twice, ...

    try:
        return loads(text)
    except json.JSONDecodeError as e:
        at = f"column {e.colno}" if one_line else f"line {e.lineno}, column {e.colno}"
        raise DataError(f"not valid JSON ({e.msg} at {at})", where) from None
    except DuplicateKey as e:
        raise DataError(f"the key {e.args[0]!r} appears twice in one post (which one counts?)", where) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", where) from None
    except ValueError as e:  # a number of thousands of digits
        raise DataError(f"not a readable post: {str(e).splitlines()[0][:120]}", where) from None


def read_posts(path, skip: bool = False) -> tuple[list, list | None, list]:
    """The file's posts, their labels ("line N" for .jsonl, else None) and, with skip, the
    [(label, DataError)] of lines that are not JSON (without skip the first one raises)."""
    p = Path(path)
    if p.is_dir():
        raise DataError("is a folder, not a .json or .jsonl file", p.name)
    if not p.exists():
        raise DataError(f"file not found: {p}", field="posts")
    if not p.is_file():  # a FIFO or a device would block the read, or never end
        raise DataError("not a regular file (a FIFO, a device?), not a .json or .jsonl file", p.name)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read it ({e.strerror})", p.name) from None
    if p.suffix != ".jsonl":
        text = _decode(raw, p.name)
        if raw[:3] == b"\xef\xbb\xbf":
            text = text[1:]
        posts = _json(text, p.name)
        return (posts if isinstance(posts, list) else [posts]), None, []
    records, labels, bad = [], [], []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            where = f"{p.name}, line {n}"
            records.append(_json(_decode(line, where, one_line=True), where, one_line=True))
            labels.append(f"line {n}")
        except DataError as e:
            if not skip:
                raise
            bad.append((f"line {n}", e))
    return records, labels, bad


def check_output(path) -> None:
    """Refuse an output the CSV cannot be written to, before any work."""
    p = Path(path)
    if p.is_dir():
        raise DataError("is a folder: give a file name", str(p), field="-o")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"the folder {parent} does not exist", str(p), field="-o")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{p.name}.", suffix=".tmp"):
            pass
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError
    except OSError as e:
        raise DataError(f"cannot write there ({e.strerror or 'permission denied'})", str(p), field="-o") from None


def load_model(uri: str, tracking_uri: str | None = None, trust_pickle: bool = False):
    """The Predictor of `--model URI` (a run's, a registered version's, or a folder's)."""
    from likepred.serving.locate import model_artifacts, model_folder
    from likepred.stores import default_store
    from likepred.serving.predictor import read_model_files

    folder, from_store = model_folder(uri, tracking_uri or default_store())
    # a pickle from the user's own local store is their own training run's
    return read_model_files(model_artifacts(folder, uri), trust_pickle or from_store, f"--model {uri}")


def interval_text(row, level) -> str:
    if row.likes_low != row.likes_low:  # NaN: a prediction <= 0, or too few validation rows
        return f"~{row.likes:.0f} likes (no interval)"
    return f"~{row.likes:.0f} likes ({level:.0%} interval {row.likes_low:.0f}-{row.likes_high:.0f})"


def explanation_lines(e: dict) -> list[str]:
    if not e["contributions"]:  # every change rounds to 0 likes
        return ["  no feature moves this model's prediction by a whole like (it uses the user's train likes alone)"]
    lines = ["  largest feature contributions (likes: the change when that feature is set to its training mean):"]
    for label, value, delta in e["contributions"]:
        if isinstance(value, float):
            value = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        shown = f"{label} = {value}" if value else label
        lines.append(f"  {delta:+8.0f}  {shown}")
    lines.append(f"  with every feature at its training mean: {e['at_means']:.0f} likes")
    total, moved = e.get("sum_all"), e.get("moved")
    if total is not None and abs(total - moved) > max(1.0, 0.1 * abs(moved)):
        lines.append(f"  (these changes do not add up to the prediction: all of them sum to {total:+.0f} likes, "
                     f"while the prediction is {moved:+.0f} from the all-means one; the features interact)")
    if e["likes"] < 0:
        lines.append(f"  (the model's raw prediction is {e['likes']:.0f} likes, shown as 0)")
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


def predict_file(predictor, path, output=None, explain=False, top=5, on_error="error", parsed=None) -> int:
    """The command after loading the model: read, validate, predict, print or write; returns the
    exit status (1: some posts skipped)."""
    name = Path(path).name
    skip = on_error == "skip"
    records, labels, unreadable = parsed or read_posts(path, skip)
    if not records and not unreadable:
        raise DataError("no posts in the file", name)
    posts, known, invalid = predictor.check(records, name, labels, skip=skip)
    kept = [i for i in range(len(records)) if i not in {j for j, _ in invalid}]
    bad = sorted(unreadable + [(labels[i] if labels else f"post {i}", e) for i, e in invalid],
                 key=lambda b: int(b[0].split()[-1]))
    for _, e in bad:
        print(f"likepred.predict: skipped {e}", file=sys.stderr)
    if not len(posts):
        raise DataError(f"no valid posts ({len(bad)} skipped)", name)
    far = predictor.far_dates(posts)
    for line in notes(records, posts, known) + ([far] if far else []):
        print(line, file=sys.stderr)
    out = predictor.predict(posts, known)
    if getattr(predictor, "extrapolated", None):
        print(predictor.extrapolated, file=sys.stderr)
    clipped = getattr(predictor, "negative_likes", 0)
    if clipped:
        print(f"note: {clipped} of {len(posts)} predictions came out below 0 likes and are shown as 0: "
              "the model extrapolates there (dates or numbers far from its training posts)", file=sys.stderr)
    explained = predictor.explain(posts, top) if explain else None
    where = [labels[i] for i in kept] if labels else [f"post {i}" for i in kept]
    if output:
        table = posts[["alias", "date"]].copy().join(out)
        if labels:  # .jsonl: the input line of each row (skipped lines leave gaps)
            table.insert(0, "line", [int(w.split()[-1]) for w in where])
        if explained:
            table["explain"] = [explanation_cell(e) for e in explained]
        from likepred.files import write_atomic

        buf = io.StringIO()
        table.to_csv(buf, index=False)
        try:
            if os.path.exists(output) and not os.path.isfile(output):  # /dev/stdout, a FIFO: written into,
                with open(output, "w", encoding="utf-8") as f:     # never replaced by a renamed file
                    f.write(buf.getvalue())
            else:
                write_atomic(output, buf.getvalue(), fsync=False)
        except OSError as e:  # a full disk: no half-written file stays (write then rename)
            raise DataError(f"cannot write it ({e.strerror or e})", str(output), field="-o") from None
        print(f"wrote {len(table)} predictions to {output}", file=sys.stderr if output.startswith("/dev/") else sys.stdout)
    else:
        for i, row in enumerate(out.itertuples()):
            head = "" if len(records) == 1 else \
                f"{where[i]} ({posts['alias'][i] or 'new user'}, {posts['date'][i]:%Y-%m-%d}): "
            print(head + interval_text(row, predictor.level))
            if explained:
                print("\n".join(explanation_lines(explained[i])))
    if bad:
        print(f"likepred.predict: skipped {len(bad)} of {len(records) + len(unreadable)} posts ({', '.join(b[0] for b in bad[:10])}"
              f"{', ...' if len(bad) > 10 else ''}); predicted the other {len(posts)}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.top < 1:
        print(f"likepred.predict: error: --top {args.top}: must be >= 1 (how many features --explain lists)",
              file=sys.stderr)
        return 2
    try:
        if args.output:
            check_output(args.output)
        parsed = read_posts(args.posts, args.on_error == "skip")  # a bad file fails before the model loads
        predictor = load_model(args.model, args.tracking_uri, args.trust_pickle)
        return predict_file(predictor, args.posts, args.output, args.explain, args.top, args.on_error, parsed)
    except LikepredError as e:
        print(f"likepred.predict: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; -o is written whole or not at all
        print(f"\nlikepred.predict: interrupted (Ctrl-C){f'; {args.output} not written' if args.output else ''}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
