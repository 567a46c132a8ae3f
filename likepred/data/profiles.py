"""Reader for a folder of one-JSON-per-user profiles (the scraper's format)."""

import json
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from likepred.errors import DataError


def iter_profiles(path):
    """Yield (file name, parsed JSON or the DataError that stopped it, last written) for every
    *.json in `path`, sorted by name; `posts_and_users` decides whether a bad file stops the run."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"profiles folder not found: {folder} (set data.path)", field="data.path")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"no *.json profile files in {folder}", field="data.path")
    for f in tqdm(files, desc="reading profiles", unit="file", disable=None, leave=False):
        try:
            yield f.name, read_json(f), datetime.fromtimestamp(f.stat().st_mtime, timezone.utc)
        except DataError as e:
            yield f.name, e, None


def read_json(f: Path):
    """One JSON file's content, or a DataError naming the file and what is wrong with it."""
    try:
        raw = f.read_bytes()
    except IsADirectoryError:
        raise DataError("a folder, not a profile file", f.name) from None
    except FileNotFoundError:
        raise DataError("a broken symbolic link" if f.is_symlink() else "vanished while reading", f.name) from None
    except OSError as e:
        raise DataError(f"cannot read it: {e.strerror or e}", f.name) from None
    if not raw.strip():
        raise DataError("an empty file", f.name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}): a binary file, or "
                        "another encoding (convert it: iconv -f latin1 -t utf-8)", f.name) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated")
        raise DataError(f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})"
                        + (": the file ends early (truncated?)" if cut else ""), f.name) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to be a profile", f.name) from None
