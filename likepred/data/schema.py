"""The one in-memory shape every source is read into, and its validation.

Validation happens here, once, at read time: every problem names the file,
the post (or row) and the field. Readers turn their format into profile
dicts (the profiles-folder format) and hand them to `posts_and_users`.
"""

from __future__ import annotations

import csv
import logging
import reprlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from likepred.errors import DataError

log = logging.getLogger(__name__)

POST_COLUMNS = [
    "alias", "post_index", "date", "likes", "tags", "mentions", "caption",
    "image", "url_image", "multiple_image", "is_video", "localization",
]
USER_COLUMNS = ["alias", "followers", "following", "posts_count", "private"]


FINGERPRINT_VERSION = "2"  # Dataset.fingerprint's form; fingerprints of other forms cannot be compared


def fingerprint_version(value: str) -> str:
    """The form a fingerprint was made in ("1": the first, with no prefix)."""
    return value.split("-", 1)[0] if "-" in value else "1"


@dataclass
class Dataset:
    """Posts (one row per post, user counts joined) and users, plus side files."""

    posts: pd.DataFrame
    users: pd.DataFrame
    source: str
    scrape_date: pd.Timestamp
    image_dir: str | None = None
    labels_path: str | None = None
    skips: Skips = field(default_factory=lambda: Skips())
    synthetic_images: object = None  # likepred.synthetic.ImageSpec: images to draw before first use
    synthetic_labels: object = None  # likepred.synthetic.LabelSpec: the label file to draw before first use

    @property
    def skipped(self) -> int:
        """Bad files and posts dropped by data.on_error=skip."""
        return self.skips.files + self.skips.records

    def ensure_images(self) -> str | None:
        """The image folder, after drawing synthetic images there if not done yet."""
        if self.synthetic_images is not None:
            self.synthetic_images.draw()
        return self.image_dir

    def ensure_labels(self) -> str | None:
        """The label file, after drawing synthetic labels there if not done yet."""
        if self.synthetic_labels is not None:
            self.synthetic_labels.draw()
        return self.labels_path

    def fingerprint(self) -> str:
        """A short hash of what a model sees, to tell datasets apart in MLflow: `2-` and 12 hex
        digits over each post's user, date and likes, hashed as columns (version 1, 12 hex digits
        and no prefix, hashed their text: seconds per million posts)."""
        h = pd.util.hash_pandas_object(self.posts[["alias", "date", "likes"]], index=False).to_numpy()
        return f"{FINGERPRINT_VERSION}-{int(np.bitwise_xor.reduce(h)) & 0xFFFFFFFFFFFF:012x}"


MAX_COUNT = 10**12  # no account has this many likes or followers; bigger is a broken value (and overflows int64)
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # older is no post date (and pandas cannot hold year 1)
CLOCK_SLACK = timedelta(days=1)  # a naive date is read as UTC: allow a day past the file's write time
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict = 3, 4, 4


def _short(v) -> str:
    """A value in a message: short, and safe for deeply nested JSON."""
    r = _repr.repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


def _is_image_name(v):
    # a name inside the image folder: never absolute, never `..`, so a profile cannot make us read
    # (and publish, in error_grid.png) a file from anywhere
    if not isinstance(v, str) or "\0" in v or v.startswith(("/", "\\")) or v[1:3] in (":\\", ":/"):
        return False
    return ".." not in v.replace("\\", "/").split("/")


def _image_names(v):
    return v is None or _is_image_name(v) or (isinstance(v, list) and all(_is_image_name(x) for x in v))


def _all_str(items: list) -> bool:
    """Every item a str (the fast path's check: one join in C, not a loop of type checks)."""
    try:
        "".join(items)
    except TypeError:
        return False
    return True


def _is_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _str_or_list(v):
    return isinstance(v, str) or _is_str_list(v)


def user_key(alias: str) -> str:
    """The identity of a user name: NFKC-normalised and case-folded."""
    import unicodedata

    return unicodedata.normalize("NFKC", alias).casefold()


_USER_FIELDS = {  # field: (check, what it must be)
    "alias": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "numberPosts": (_is_count, f"an integer from 0 to {MAX_COUNT:.0e}"),
    "numberFollowers": (_is_count, f"an integer from 0 to {MAX_COUNT:.0e}"),
    "numberFollowing": (_is_count, f"an integer from 0 to {MAX_COUNT:.0e}"),
    "posts": (lambda v: isinstance(v, list), "a list of posts"),
}
_POST_FIELDS = {
    "date": (lambda v: isinstance(v, str), "an ISO 8601 date string"),
    "numberLikes": (_is_count, f"an integer from 0 to {MAX_COUNT:.0e}"),
    "tags": (_is_str_list, "a list of strings"),
    "mentions": (_is_str_list, "a list of strings"),
}
_OPTIONAL_POST_FIELDS = {
    "description": (lambda v: v is None or isinstance(v, str), "a string"),
    "urlImage": (lambda v: v is None or _str_or_list(v), "a string or a list of strings"),
    "filename": (_image_names, "a file name inside the image folder (not absolute, no '..') or a list of them"),
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
            raise DataError(f"must be {what}, got {_short(record[name])}", file, index, name)


def _date_field(p: dict, file, rec, latest=None, after=None) -> datetime:
    """The post's date; `latest`: the newest it can be (else DataError saying `after` what)."""
    try:
        date = parse_date(p["date"])
    except ValueError:
        raise DataError(f"unparseable date {_short(p['date'])}", file, rec, "date") from None
    if date < EARLIEST:
        raise DataError(f"date {p['date']} is before 1970", file, rec, "date")
    if latest is not None and date > latest:
        raise DataError(f"date {p['date']} is after {after}: a post cannot be newer than its scrape "
                        "(fix it, or drop such posts with data.on_error=skip)", file, rec, "date")
    return date


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


def _post_row(alias: str, i: int, p: dict, file, latest=None, after=None) -> dict:
    if not isinstance(p, dict):
        raise DataError("a post must be a JSON object", file, i)
    if isinstance(p.get("_error"), DataError):  # a flat source's row that did not parse
        raise p["_error"]
    rec = p.get("_record", i)  # flat sources name their own row number
    _check(p, _POST_FIELDS, True, file, rec)
    _check(p, _OPTIONAL_POST_FIELDS, False, file, rec)
    date = _date_field(p, file, rec, latest, after)
    filename = p.get("filename")
    return {
        "alias": alias, "post_index": i, "date": date, "likes": p["numberLikes"],
        "tags": [t.lower() for t in p["tags"]], "mentions": p["mentions"],
        "caption": p.get("description") or "", "image": filename,
        "url_image": p.get("urlImage"), "multiple_image": bool(p.get("multipleImage", False)),
        "is_video": bool(p.get("isVideo", False)), "localization": p.get("localization"),
    }


class Skips:
    """What reading dropped: bad files and posts (data.on_error=skip) and duplicated posts.

    One row per file or post (file, post, field, reason); `metrics()` and `write_csv(folder)`
    are what the run logs to MLflow.
    """

    COLUMNS = ("file", "post", "field", "reason")
    SHOWN = 10  # problems named one by one in the log; the rest only in skipped.csv

    def __init__(self):
        self.rows, self.files, self.records, self.duplicates = [], 0, 0, 0

    def add(self, e: DataError, whole_file: bool):
        if whole_file:
            self.files += 1
        else:
            self.records += 1
        if self.files + self.records <= self.SHOWN:
            log.warning("skipped %s%s", "the whole file: " if whole_file else "", e)
        self.rows.append((e.file, e.record, e.field, e.reason))

    def metrics(self) -> dict:
        return {"data_skipped_files": self.files, "data_skipped_records": self.records,
                "data_duplicate_posts": self.duplicates}

    def write_csv(self, folder) -> list:
        """`skipped.csv` in `folder` when anything was dropped (the job's results folder)."""
        if not self.rows:
            return []
        path = f"{folder}/skipped.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([self.COLUMNS, *self.rows])
        return [path]


def _drop_duplicates(posts: pd.DataFrame, files: list, skips: Skips) -> pd.DataFrame:
    """Keep the first of posts with the same user, date, caption and image (a profile scraped twice,
    a row pasted twice): a copy would count twice and can land in train and test."""
    key = pd.DataFrame({"alias": posts["alias"], "date": posts["date"], "caption": posts["caption"],
                        "image": posts["image"].map(str) + posts["url_image"].map(str)})
    dup = key.duplicated().to_numpy()
    if not dup.any():
        return posts
    group = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(posts))).groupby(group).transform("min").to_numpy()
    for ix in np.flatnonzero(dup):
        j = first[ix]
        skips.rows.append((files[ix], int(posts.at[ix, "post_index"]), None,
                           f"duplicate of file {files[j]}, post {posts.at[j, 'post_index']}"))
    skips.duplicates = int(dup.sum())
    ix = np.flatnonzero(dup)[0]
    log.warning("data: dropped %d duplicated posts (same user, date, caption and image as an earlier one), "
                "the first: file %s, post %s", skips.duplicates, files[ix], posts.at[ix, "post_index"])
    return posts[~dup].reset_index(drop=True)


# A file's posts as columns (lists), in POST_COLUMNS order save `date` (microseconds since 1970,
# UTC) and `image`/`url_image` (None, a string or a list of strings, as in the files).
COLUMN_NAMES = ("post_index", "date_us", "likes", "tags", "mentions", "caption", "image", "url_image",
                "multiple_image", "is_video", "localization")


@dataclass
class FileResult:
    """One file's validated content: the user (alias, followers, following, posts_count, private)
    or the whole-file problem (reason, record, field, file), the bad posts (record, field, reason, file) and
    the good posts' columns (not kept in a cache's index; the cache holds them in Parquet)."""

    file: str
    user: tuple | None = None
    error: tuple | None = None
    post_errors: list = field(default_factory=list)
    columns: dict | None = None

    def meta(self) -> dict:
        return {"file": self.file, "user": self.user, "error": self.error, "post_errors": self.post_errors}


def _bound(written, scrape_date):
    if scrape_date is not None:
        return scrape_date, f"data.scrape_date={scrape_date:%Y-%m-%d %H:%M}"
    if written is not None:
        return written + CLOCK_SLACK, f"the file was last written ({written:%Y-%m-%d %H:%M} UTC)"
    return None, None


def parse_profile(file, profile, written=None, scrape_date=None) -> FileResult:
    """Validate one reader item (file, profile dict or DataError, last written) into a FileResult.

    Every post is checked as `_post_row` checks it: a fast path accepts the common well-formed
    post; anything else goes through `_post_row`, which names the post and field of the problem.
    """
    out = FileResult(file)
    try:
        if isinstance(profile, DataError):
            raise profile
        if not isinstance(profile, dict):
            raise DataError("a profile must be a JSON object", file)
        if isinstance(profile.get("_error"), DataError):
            raise profile["_error"]
        _check(profile, _USER_FIELDS, True, file, None)
    except DataError as e:
        out.error = (e.reason, e.record, e.field, e.file)
        return out
    alias = profile["alias"]
    out.user = (alias, profile["numberFollowers"], profile["numberFollowing"], profile["numberPosts"],
                bool(profile.get("private", False)))
    latest, after = _bound(written, scrape_date)
    cols = {k: [] for k in COLUMN_NAMES}
    (ix, dates, likes, tags, mentions, caption, image, url, multi, video, loc) = (cols[k] for k in COLUMN_NAMES)
    fromiso, utc, earliest = datetime.fromisoformat, timezone.utc, EARLIEST
    for i, p in enumerate(profile["posts"]):
        if type(p) is dict and "_record" not in p and "_error" not in p:  # the fast path
            n, t, m, d = p.get("numberLikes"), p.get("tags"), p.get("mentions"), p.get("date")
            desc, u, f, lo = p.get("description"), p.get("urlImage"), p.get("filename"), p.get("localization")
            mi, vi = p.get("multipleImage", False), p.get("isVideo", False)
            if (type(n) is int and 0 <= n <= MAX_COUNT and type(t) is list and type(m) is list and type(d) is str
                    and (desc is None or type(desc) is str) and (u is None or type(u) is str)
                    and (f is None or (type(f) is str and _is_image_name(f))) and (lo is None or type(lo) is str)
                    and type(mi) is bool and type(vi) is bool
                    and _all_str(t) and _all_str(m)):
                try:
                    date = fromiso(d)
                except ValueError:
                    date = None
                if date is not None:
                    if date.tzinfo is None:
                        date = date.replace(tzinfo=utc)
                    if date >= earliest and (latest is None or date <= latest):
                        ix.append(i)
                        dates.append(date.timestamp())
                        likes.append(n)
                        tags.append([x.lower() for x in t])
                        mentions.append(m)
                        caption.append(desc or "")
                        image.append(f)
                        url.append(u)
                        multi.append(mi)
                        video.append(vi)
                        loc.append(lo)
                        continue
        try:  # the slow path: the exact check, and the message naming the problem
            row = _post_row(alias, i, p, file, latest, after)
        except DataError as e:
            out.post_errors.append((e.record, e.field, e.reason, e.file))
            continue
        ix.append(i)
        dates.append(row["date"].timestamp())
        likes.append(row["likes"])
        tags.append(row["tags"])
        mentions.append(row["mentions"])
        caption.append(row["caption"])
        image.append(row["image"])
        url.append(row["url_image"])
        multi.append(row["multiple_image"])
        video.append(row["is_video"])
        loc.append(row["localization"])
    cols["date_us"] = [round(t * 1e6) for t in dates]
    out.columns = cols
    return out


def assemble(results, on_error: str = "error"):
    """Apply on_error to FileResults in file order: the first problem raises ("error"), or every bad
    file and post is dropped and counted ("skip"); a user in two files is a problem of the second.
    Returns the users table, the Skips and the positions (in `results`) of the files whose posts are kept."""
    if on_error not in ("error", "skip"):
        raise DataError(f"on_error must be 'error' or 'skip', got {on_error!r}", field="data.on_error")
    users, skips, seen, kept = [], Skips(), {}, []
    for pos, r in enumerate(results):
        file = r["file"]
        try:
            if r["error"] is not None:
                reason, record, fld, where = r["error"]
                raise DataError(reason, where, record, fld)
            alias = r["user"][0]
            same = user_key(alias)  # Instagram's names ignore case (and Unicode look-alikes)
            if same in seen:
                where, earlier = seen[same]
                also = "" if earlier == alias else f" as {earlier!r} (names ignore case and look-alikes)"
                raise DataError(f"user {alias!r} is also in {where}{also} (one file per user: remove one)",
                                file, field="alias")
        except DataError as e:
            if on_error == "error":
                raise
            skips.add(e, whole_file=True)
            continue
        seen[same] = (file, alias)
        users.append(tuple(r["user"]))
        kept.append(pos)
        for record, fld, reason, where in r["post_errors"]:
            e = DataError(reason, where, record, fld)
            if on_error == "error":
                raise e
            skips.add(e, whole_file=False)
    if skips.files + skips.records > Skips.SHOWN:
        log.warning("... and %d more skipped", skips.files + skips.records - Skips.SHOWN)
    users_df = pd.DataFrame(users, columns=USER_COLUMNS)
    users_df["private"] = users_df["private"].astype(bool)
    return users_df, skips, kept


_DATE_UNIT = pd.to_datetime([EARLIEST], utc=True).unit  # what pandas makes of datetimes (us in pandas 3)


def release_unused() -> None:
    """Hand Arrow's freed pages back to the system (its pool keeps them: GBs after a read or a copy
    of a table of millions of posts)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def posts_frame(alias, file, columns) -> pd.DataFrame:
    """The posts table from concatenated FileResult columns (`alias` and `file`: one per post).
    Text columns are Python lists (pandas infers their dtype, as it did from row dicts) or pandas
    Series already typed (the columnar cache)."""
    def col(v):
        return v.to_numpy() if isinstance(v, pd.Series) and v.dtype == object else v

    posts = pd.DataFrame({
        "alias": col(alias), "post_index": np.asarray(columns["post_index"], dtype="int64"),
        "date": pd.to_datetime(np.asarray(columns["date_us"], dtype="int64"), unit="us", utc=True).as_unit(_DATE_UNIT),
        "likes": np.asarray(columns["likes"], dtype="int64"),
        **{k: col(columns[k]) for k in ("tags", "mentions", "caption", "image", "url_image")},
        "multiple_image": np.asarray(columns["multiple_image"], dtype=bool),
        "is_video": np.asarray(columns["is_video"], dtype=bool),
        "localization": col(columns["localization"]),
    }, columns=POST_COLUMNS)
    return posts


def posts_and_users(profiles, on_error: str = "error", scrape_date=None):
    """Validate (file, profile, written) triples into posts and users tables, plus their Skips.

    A reader hands a DataError instead of a profile for a file it could not read, and
    `written` (the file's modification time, or None) bounds its post dates unless
    `scrape_date` is given. With on_error="skip" a bad post is dropped (a bad profile or
    file: the whole file), counted and logged; with "error" the first problem raises.
    Duplicated posts are dropped (and counted) either way. (Folders read through
    `likepred.data.columnar` do the same work in parallel, cached.)
    """
    if on_error not in ("error", "skip"):
        raise DataError(f"on_error must be 'error' or 'skip', got {on_error!r}", field="data.on_error")
    results = []
    for file, profile, written in profiles:
        r = parse_profile(file, profile, written, scrape_date)
        results.append(r)
        if on_error == "error" and (r.error or r.post_errors):
            break  # the first problem raises below, before later files are read
    users, skips, kept = assemble([r.meta() for r in results], on_error)
    cols = {k: [] for k in COLUMN_NAMES}
    alias, files = [], []
    for r in (results[i] for i in kept):
        if r.columns is not None:
            n = len(r.columns["post_index"])
            alias += [r.user[0]] * n
            files += [r.file] * n
            for k in COLUMN_NAMES:
                cols[k] += r.columns[k]
    posts = posts_frame(alias, files, cols)
    posts = _drop_duplicates(posts, files, skips)
    return posts, users, skips
