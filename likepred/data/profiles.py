"""Reader for a folder of one-JSON-per-user profiles (the scraper's format)."""

import json
import os
import re
import stat
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
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".json")  # .JSON too
    if not files:
        raise DataError(f"no *.json profile files in {folder}", field="data.path")
    for f in tqdm(files, desc="reading profiles", unit="file", disable=None, leave=False):
        name = shown(f.name)
        try:
            yield name, read_json(f, name), datetime.fromtimestamp(f.stat().st_mtime, timezone.utc)
        except DataError as e:
            yield name, e, None


def shown(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (kept by Python as lone surrogates, which
    cannot be printed or logged) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # a \uD800-\uDFFF escape in JSON text


def _valid_text(value):
    """`value` with lone surrogates (JSON escapes no UTF-8 can hold) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_valid_text(v) for v in value]
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    return value


class DuplicateKey(ValueError):
    """A key twice in one JSON object (which one counts?)."""


def _no_duplicate_keys(pairs):
    out = dict(pairs)  # in C; a key seen twice leaves fewer entries than pairs: find which
    if len(out) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out


MAX_DIGITS = 1000  # longer is no count of anything (Python refuses 4300+ digits with a traceback)


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS and len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number with {len(text.lstrip('-'))} digits ({text[:12]}...)")
    return int(text)


def loads(text: str):
    """JSON text as every likepred reader takes it: a key twice in one object raises DuplicateKey,
    a number of over MAX_DIGITS digits ValueError; lone surrogates become U+FFFD."""
    data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_int)
    return _valid_text(data) if _SURROGATE.search(text) else data


def read_json(f: Path, name: str | None = None):
    """One JSON file's content, or a DataError naming the file and what is wrong with it."""
    name = name or shown(f.name)
    try:
        mode = f.stat().st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a FIFO would block the read for ever
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
            raise DataError(f"{kind}, not a profile file", name)
        raw = f.read_bytes()
    except IsADirectoryError:
        raise DataError("a folder, not a profile file", name) from None
    except FileNotFoundError:
        raise DataError("a broken symbolic link" if f.is_symlink() else "vanished while reading", name) from None
    except OSError as e:
        raise DataError(f"cannot read it: {e.strerror or e}", name) from None
    if not raw.strip():
        raise DataError("an empty file", name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}): a binary file, or "
                        "another encoding (convert it: iconv -f latin1 -t utf-8)", name) from None
    try:
        return loads(text)
    except DuplicateKey as e:
        raise DataError(f"the key {e.args[0]!r} appears twice in one JSON object (which one counts?)", name) from None
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated")
        raise DataError(f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})"
                        + (": the file ends early (truncated?)" if cut else ""), name) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to be a profile", name) from None
    except ValueError as e:  # a number too long (ours, or Python's 4300-digit limit)
        raise DataError(f"not a readable profile: {str(e).splitlines()[0][:120]}", name) from None
