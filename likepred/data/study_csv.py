"""Reader for the study's flat CSV: one row per post, user columns repeated.

List cells (`tags`, `mentions`, `urlImage`/`filename` of multi-image posts)
hold Python literals such as "['a', 'b']". Rows become profile dicts so the
same validation serves both formats; errors name the CSV row.
"""

import ast
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from likepred.errors import DataError

USER_INTS = ("numberPosts", "numberFollowers", "numberFollowing")
LIST_CELLS = ("tags", "mentions")
MAYBE_LIST_CELLS = ("urlImage", "filename")


def _literal_list(cell, file, row, name):
    try:
        v = ast.literal_eval(cell) if cell else []
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataError(f"not a Python list literal: {cell!r:.60}", file, row, name) from None
    if not isinstance(v, list):
        raise DataError(f"must be a list, got {cell!r:.60}", file, row, name)
    return v


def _int(cell, file, row, name):
    try:
        return int(float(cell)) if float(cell).is_integer() else float(cell)
    except (TypeError, ValueError):
        raise DataError(f"not a number: {cell!r}", file, row, name) from None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (at byte offset {e.start}): a binary file, or another encoding "
                        "(convert it: iconv -f latin1 -t utf-8)", path.name) from None
    except pd.errors.EmptyDataError:
        raise DataError("an empty file", path.name) from None
    except pd.errors.ParserError as e:
        raise DataError(f"not a valid CSV ({str(e).strip()})", path.name) from None
    except OSError as e:
        raise DataError(f"cannot read it: {e.strerror or e}", path.name) from None


def iter_profiles(path):
    """Yield (file name, profile, last written) per user; a row that does not parse carries its
    DataError (`_error`) so that data.on_error=skip drops that row (or that user) only."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise DataError(f"study CSV is a broken symbolic link: {path}", field="data.path")
    if not path.is_file():
        raise DataError(f"study CSV not found: {path} (set data.path)", field="data.path")
    written = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    df = _read_csv(path)
    for col in ("alias", "date", "numberLikes", "tags", "mentions") + USER_INTS:
        if col not in df.columns:
            raise DataError("missing column", path.name, field=col)
    profiles = {}
    for row, rec in enumerate(df.to_dict("records")):
        alias = rec["alias"]
        if alias not in profiles:
            profiles[alias] = {"alias": alias, "posts": []}
            try:
                for k in USER_INTS:
                    profiles[alias][k] = _int(rec[k], path.name, row, k)
            except DataError as e:
                profiles[alias]["_error"] = e
            profiles[alias]["private"] = rec.get("private") == "True"
        post = {"_record": row, "date": rec["date"], "description": rec.get("description", "")}
        try:
            post["numberLikes"] = _int(rec["numberLikes"], path.name, row, "numberLikes")
            for k in LIST_CELLS:
                post[k] = _literal_list(rec[k], path.name, row, k)
            for k in MAYBE_LIST_CELLS:
                cell = rec.get(k, "")
                post[k] = _literal_list(cell, path.name, row, k) if cell.startswith("[") else (cell or None)
        except DataError as e:
            post["_error"] = e
        for k in ("isVideo", "multipleImage"):
            if k in rec:
                post[k] = rec[k] == "True"
        post["localization"] = rec.get("localization") or None
        profiles[alias]["posts"].append(post)
    for profile in profiles.values():
        yield path.name, profile, written
