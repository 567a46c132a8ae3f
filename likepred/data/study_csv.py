"""Reader for the study's flat CSV: one row per post, user columns repeated.

List cells (`tags`, `mentions`, `urlImage`/`filename` of multi-image posts)
hold Python literals such as "['a', 'b']". Rows become profile dicts so the
same validation serves both formats; errors name the CSV row.
"""

import ast
from pathlib import Path

import pandas as pd

from likepred.errors import DataError

USER_INTS = ("numberPosts", "numberFollowers", "numberFollowing")
LIST_CELLS = ("tags", "mentions")
MAYBE_LIST_CELLS = ("urlImage", "filename")


def _literal_list(cell, file, row, name):
    try:
        v = ast.literal_eval(cell) if cell else []
    except (ValueError, SyntaxError):
        raise DataError(f"not a Python list literal: {cell!r:.60}", file, row, name) from None
    if not isinstance(v, list):
        raise DataError(f"must be a list, got {cell!r:.60}", file, row, name)
    return v


def _int(cell, file, row, name):
    try:
        return int(float(cell)) if float(cell).is_integer() else float(cell)
    except (TypeError, ValueError):
        raise DataError(f"not a number: {cell!r}", file, row, name) from None


def iter_profiles(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"study CSV not found: {path} (set data.path)", field="data.path")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("alias", "date", "numberLikes", "tags", "mentions") + USER_INTS:
        if col not in df.columns:
            raise DataError("missing column", path.name, field=col)
    profiles = {}
    for row, rec in enumerate(df.to_dict("records")):
        alias = rec["alias"]
        if alias not in profiles:
            profiles[alias] = {"alias": alias, "posts": []}
            for k in USER_INTS:
                profiles[alias][k] = _int(rec[k], path.name, row, k)
            profiles[alias]["private"] = rec.get("private") == "True"
        post = {"_record": row, "date": rec["date"], "description": rec.get("description", "")}
        post["numberLikes"] = _int(rec["numberLikes"], path.name, row, "numberLikes")
        for k in LIST_CELLS:
            post[k] = _literal_list(rec[k], path.name, row, k)
        for k in MAYBE_LIST_CELLS:
            cell = rec.get(k, "")
            post[k] = _literal_list(cell, path.name, row, k) if cell.startswith("[") else (cell or None)
        for k in ("isVideo", "multipleImage"):
            if k in rec:
                post[k] = rec[k] == "True"
        post["localization"] = rec.get("localization") or None
        profiles[alias]["posts"].append(post)
    for profile in profiles.values():
        yield path.name, profile
