"""Reader for a folder of one-JSON-per-user profiles (the scraper's format)."""

import json
from pathlib import Path

from tqdm import tqdm

from likepred.errors import DataError


def iter_profiles(path):
    """Yield (file name, parsed JSON) for every *.json in `path`, sorted by name."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"profiles folder not found: {folder} (set data.path)", field="data.path")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"no *.json profile files in {folder}", field="data.path")
    for f in tqdm(files, desc="reading profiles", unit="file", disable=None, leave=False):
        try:
            with open(f, encoding="utf-8") as fh:
                yield f.name, json.load(fh)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg} at line {e.lineno})", f.name) from None
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text", f.name) from None
