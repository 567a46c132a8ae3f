"""The study's label file: a JSON list of
``{"filename": str, "numFaces": int, "labels": {description: score}}``."""

import json
import os

from likepred.errors import DataError
from likepred.files import write_atomic


def load_labels(path):
    """Read a label file into ``{filename: {"numFaces": int, "labels": {str: float}}}``.

    Keys other than the three above are ignored, so files from the study load as they are.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError("label file not found", file=path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", file=path) from None
    if not isinstance(data, list):
        raise DataError(f"expected a JSON list of records, got {type(data).__name__}", file=path)
    out = {}
    for i, rec in enumerate(data):
        name, entry = _check_record(rec, path, i)
        if name in out:
            raise DataError(f"duplicate filename {name!r}", file=path, record=i, field="filename")
        out[name] = entry
    return out


def _check_record(rec, path, i):
    def bad(field, message):
        return DataError(message, file=path, record=i, field=field)

    if not isinstance(rec, dict):
        raise bad(None, f"expected an object, got {type(rec).__name__}")
    for key in ("filename", "numFaces", "labels"):
        if key not in rec:
            raise bad(key, "missing")
    name, faces, labels = rec["filename"], rec["numFaces"], rec["labels"]
    if not isinstance(name, str) or not name:
        raise bad("filename", f"expected a non-empty string, got {name!r}")
    # Integral floats (2.0) are accepted: some JSON writers emit them.
    if isinstance(faces, float) and faces.is_integer():
        faces = int(faces)
    if isinstance(faces, bool) or not isinstance(faces, int) or faces < 0:
        raise bad("numFaces", f"expected a non-negative integer, got {faces!r}")
    if not isinstance(labels, dict):
        raise bad("labels", f"expected an object of description: score, got {type(labels).__name__}")
    for desc, score in labels.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise bad("labels", f"score of {desc!r} is not a number: {score!r}")
    return name, {"numFaces": faces, "labels": {d: float(s) for d, s in labels.items()}}


def save_labels(path, records):
    """Write records in the study's format, atomically.

    ``records`` is what `load_labels` returns, or a list of study-format records.
    """
    if isinstance(records, dict):
        records = [{"filename": name, **r} for name, r in sorted(records.items())]
    rows = [
        {"filename": r["filename"], "numFaces": int(r["numFaces"]), "labels": dict(r["labels"])}
        for r in records
    ]
    write_atomic(path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


