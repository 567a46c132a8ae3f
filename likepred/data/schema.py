"""The one in-memory shape every source is read into, and its validation.

Validation happens here, once, at read time: every problem names the file,
the post (or row) and the field. Readers turn their format into profile
dicts (the profiles-folder format) and hand them to `posts_and_users`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from likepred.errors import DataError

log = logging.getLogger(__name__)

POST_COLUMNS = [
    "alias", "post_index", "date", "likes", "tags", "mentions", "caption",
    "image", "url_image", "multiple_image", "is_video", "localization",
]
USER_COLUMNS = ["alias", "followers", "following", "posts_count", "private"]


@dataclass
class Dataset:
    """Posts (one row per post, user counts joined) and users, plus side files."""

    posts: pd.DataFrame
    users: pd.DataFrame
    source: str
    scrape_date: pd.Timestamp
    image_dir: str | None = None
    labels_path: str | None = None
    skipped: int = 0
    synthetic_images: object = None  # likepred.synthetic.ImageSpec: images to draw before first use

    def ensure_images(self) -> str | None:
        """The image folder, after drawing synthetic images there if not done yet."""
        if self.synthetic_images is not None:
            self.synthetic_images.draw()
        return self.image_dir

    def fingerprint(self) -> str:
        """A short hash of what a model sees, to tell datasets apart in MLflow."""
        cols = self.posts[["alias", "date", "likes"]].astype(str)
        h = pd.util.hash_pandas_object(cols, index=False).to_numpy()
        return f"{int(np.bitwise_xor.reduce(h)) & 0xFFFFFFFFFFFF:012x}"


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _str_or_list(v):
    return isinstance(v, str) or _is_str_list(v)


_USER_FIELDS = {  # field: (check, what it must be)
    "alias": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "numberPosts": (_is_count, "a non-negative integer"),
    "numberFollowers": (_is_count, "a non-negative integer"),
    "numberFollowing": (_is_count, "a non-negative integer"),
    "posts": (lambda v: isinstance(v, list), "a list of posts"),
}
_POST_FIELDS = {
    "date": (lambda v: isinstance(v, str), "an ISO 8601 date string"),
    "numberLikes": (_is_count, "a non-negative integer"),
    "tags": (_is_str_list, "a list of strings"),
    "mentions": (_is_str_list, "a list of strings"),
}
_OPTIONAL_POST_FIELDS = {
    "description": (lambda v: v is None or isinstance(v, str), "a string"),
    "urlImage": (lambda v: v is None or _str_or_list(v), "a string or a list of strings"),
    "filename": (lambda v: v is None or _str_or_list(v), "a string or a list of strings"),
    "multipleImage": (lambda v: isinstance(v, bool), "true or false"),
    "isVideo": (lambda v: isinstance(v, bool), "true or false"),
    "localization": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


def parse_date(value: str) -> datetime:
    d = datetime.fromisoformat(value)
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _check(record: dict, fields: dict, required: bool, file, index):
    for name, (ok, what) in fields.items():
        if name not in record:
            if required:
                raise DataError("missing field", file, index, name)
            continue
        if not ok(record[name]):
            raise DataError(f"must be {what}, got {record[name]!r:.60}", file, index, name)


def _date_field(p: dict, file, rec) -> datetime:
    try:
        return parse_date(p["date"])
    except ValueError:
        raise DataError(f"unparseable date {p['date']!r}", file, rec, "date") from None


# A post to predict (not posted yet, so no likes), in the profiles format's names.
PROFILE_NUMBERS = {"numberFollowers": "followers", "numberFollowing": "following", "numberPosts": "posts_count"}
PLANNED_POST_FIELDS = {
    **{k: _USER_FIELDS[k] for k in ("alias", *PROFILE_NUMBERS)},
    "caption": _OPTIONAL_POST_FIELDS["description"], "description": _OPTIONAL_POST_FIELDS["description"],
    "tags": _POST_FIELDS["tags"], "mentions": _POST_FIELDS["mentions"],
    "image": (lambda v: v is None or isinstance(v, str), "an image path or null"),
}


def planned_post(p: dict, file=None, index=None) -> dict:
    """Validate a post to predict into a posts-table row, plus the user's profile
    numbers (None where not given): `date` is required, everything else optional."""
    if not isinstance(p, dict):
        raise DataError("a post must be a JSON object", file, index)
    _check(p, {"date": _POST_FIELDS["date"]}, True, file, index)
    _check(p, PLANNED_POST_FIELDS, False, file, index)
    row = {
        "alias": p.get("alias"), "post_index": 0, "date": _date_field(p, file, index), "likes": None,
        "tags": [t.lower() for t in p.get("tags", [])], "mentions": p.get("mentions", []),
        "caption": p.get("caption", p.get("description")) or "", "image": p.get("image"),
        "url_image": None, "multiple_image": False, "is_video": False, "localization": None,
    }
    return row | {col: p.get(name) for name, col in PROFILE_NUMBERS.items()}


def _post_row(alias: str, i: int, p: dict, file) -> dict:
    if not isinstance(p, dict):
        raise DataError("a post must be a JSON object", file, i)
    rec = p.get("_record", i)  # flat sources name their own row number
    _check(p, _POST_FIELDS, True, file, rec)
    _check(p, _OPTIONAL_POST_FIELDS, False, file, rec)
    date = _date_field(p, file, rec)
    filename = p.get("filename")
    return {
        "alias": alias, "post_index": i, "date": date, "likes": p["numberLikes"],
        "tags": [t.lower() for t in p["tags"]], "mentions": p["mentions"],
        "caption": p.get("description") or "", "image": filename,
        "url_image": p.get("urlImage"), "multiple_image": bool(p.get("multipleImage", False)),
        "is_video": bool(p.get("isVideo", False)), "localization": p.get("localization"),
    }


def posts_and_users(profiles, on_error: str = "error"):
    """Validate (file, profile) pairs into posts and users tables.

    With on_error="skip" a bad post is dropped (a bad profile: the whole
    file), counted and logged; with "error" the first problem raises.
    """
    if on_error not in ("error", "skip"):
        raise DataError(f"on_error must be 'error' or 'skip', got {on_error!r}", field="data.on_error")
    rows, users, skipped = [], [], 0
    for file, profile in profiles:
        try:
            if not isinstance(profile, dict):
                raise DataError("a profile must be a JSON object", file)
            _check(profile, _USER_FIELDS, True, file, None)
        except DataError as e:
            if on_error == "error":
                raise
            log.warning("skipped %s", e)
            skipped += 1
            continue
        alias = profile["alias"]
        users.append({
            "alias": alias, "followers": profile["numberFollowers"],
            "following": profile["numberFollowing"], "posts_count": profile["numberPosts"],
            "private": bool(profile.get("private", False)),
        })
        for i, p in enumerate(profile["posts"]):
            try:
                rows.append(_post_row(alias, i, p, file))
            except DataError as e:
                if on_error == "error":
                    raise
                log.warning("skipped %s", e)
                skipped += 1
    users_df = pd.DataFrame(users, columns=USER_COLUMNS)
    dup = users_df["alias"].duplicated()
    if dup.any():
        raise DataError(f"user {users_df['alias'][dup].iloc[0]!r} appears in more than one file", field="alias")
    posts = pd.DataFrame(rows, columns=POST_COLUMNS)
    posts["date"] = pd.to_datetime(posts["date"], utc=True)
    posts["likes"] = posts["likes"].astype("int64")
    return posts, users_df, skipped
