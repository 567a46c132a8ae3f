"""Reader for folders written by Instaloader (`instaloader PROFILE`), through Instaloader's own
`load_structure_from_file` (the `instaloader` extra).

Instaloader writes, per profile folder: `<name>_<id>.json.xz` (the profile), and per post
`<date>_UTC.json.xz` beside its picture `<date>_UTC.jpg` (a video: its thumbnail `.jpg` and
`.mp4`; a multi-image "sidecar" post: `<date>_UTC_1.jpg`, `_2.jpg`, ...). `data.path` is one such
folder or a folder of them. Each becomes one profile dict in the profiles format, validated by
`posts_and_users` as every source is. Fields are read from the saved node only: a field missing
there is an error naming the file, never a request to Instagram.
"""

from __future__ import annotations

import lzma
from datetime import timezone
from pathlib import Path

from likepred.data import READERS
from likepred.errors import DataError, MissingDependencyError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


def _instaloader():
    try:
        import instaloader
    except ImportError:
        raise MissingDependencyError("instaloader", "instaloader", "data=instaloader") from None
    return instaloader


def _node_count(node: dict, *paths):
    """The first count found at any of `paths` (tuples of keys) in a saved node, else None."""
    for path in paths:
        d = node
        for key in path:
            d = d.get(key) if isinstance(d, dict) else None
        if isinstance(d, int) and not isinstance(d, bool):
            return d
    return None


def _images(meta: Path, root: Path) -> list[str]:
    """The post's picture(s) beside its metadata file: `<stem>.jpg`, else `<stem>_1.jpg`, `_2.jpg`...,
    named relative to `root` (data.path, the image folder): image names never leave it."""
    stem = meta.name[: -len(".json.xz")] if meta.name.endswith(".xz") else meta.name[: -len(".json")]
    for ext in IMAGE_EXTS:
        if (meta.parent / f"{stem}{ext}").is_file():
            return [(meta.parent / f"{stem}{ext}").relative_to(root).as_posix()]
    out, i = [], 1
    while True:
        found = [meta.parent / f"{stem}_{i}{ext}" for ext in IMAGE_EXTS if (meta.parent / f"{stem}_{i}{ext}").is_file()]
        video = (meta.parent / f"{stem}_{i}.mp4").is_file()
        if not found and not video:
            return out
        out += [f.relative_to(root).as_posix() for f in found[:1]]
        i += 1


MAX_JSON_MB = 64  # one post's or profile's metadata is kilobytes: more is a decompression bomb


def _load(il, context, file: Path):
    if file.name.endswith(".xz"):
        try:
            with lzma.open(file) as f:
                big = len(f.read(MAX_JSON_MB * 2**20 + 1)) > MAX_JSON_MB * 2**20
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise DataError(f"cannot read Instaloader metadata ({type(e).__name__}: {e})", file.name) from None
        if big:
            raise DataError(f"decompresses to more than {MAX_JSON_MB} MB: no Instaloader metadata "
                            "(a decompression bomb?)", file.name)
    try:
        return il.load_structure_from_file(context, str(file))
    except il.InvalidArgumentException:
        if file.name.endswith(("_UTC.json", "_UTC.json.xz")):  # named as a post's metadata, yet no post: say so, do not drop it unseen
            raise DataError("post metadata without its 'node' (a damaged or hand-edited file)", file.name) from None
        return None  # not an Instaloader structure (comments, stamps): not ours to read
    except (OSError, EOFError, ValueError, KeyError, AssertionError, lzma.LZMAError) as e:
        raise DataError(f"cannot read Instaloader metadata ({type(e).__name__}: {e})", file.name) from None


def _post(il, post, file: Path, root: Path) -> dict:
    try:
        return _post_fields(il, post, file, root)
    except (TypeError, ValueError, OverflowError, OSError, AttributeError, KeyError, IndexError) as e:
        # null or mistyped nested fields, absurd timestamps: Instaloader's properties raise
        raise DataError(f"unreadable post metadata ({type(e).__name__}: {str(e)[:200]})", file.name) from None


def _date(post, node, file: Path) -> str:
    stamp = node.get("taken_at_timestamp", node.get("date"))
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        raise DataError(f"taken_at_timestamp={stamp!r}: not a number of seconds", file.name, field="date")
    try:
        return post.date_utc.replace(tzinfo=timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError) as e:
        raise DataError(f"taken_at_timestamp={stamp!r}: no date ({e})", file.name, field="date") from None


def _post_fields(il, post, file: Path, root: Path) -> dict:
    node = il.get_json_structure(post)["node"]
    likes = _node_count(node, ("edge_media_preview_like", "count"), ("edge_liked_by", "count"), ("like_count",))
    if likes is None:
        raise DataError("no like count in the saved post (edge_media_preview_like.count)", file.name, field="likes")
    if "date" not in node and "taken_at_timestamp" not in node:
        raise DataError("no date in the saved post (taken_at_timestamp)", file.name, field="date")
    typename = node.get("__typename", "GraphImage")
    children = (node.get("edge_sidecar_to_children") or {}).get("edges") or []
    images = _images(file, root)
    return {
        "date": _date(post, node, file),
        "numberLikes": likes,
        "tags": list(post.caption_hashtags), "mentions": list(post.caption_mentions),
        "description": post.caption or "",
        "filename": images or None,
        "urlImage": node.get("display_url"),
        "multipleImage": typename == "GraphSidecar" and len(children) > 1,
        "isVideo": bool(node.get("is_video", False)),
        "localization": (node.get("location") or {}).get("name"),
    }


def _profile(il, profile, file: Path, posts: list) -> dict:
    node = il.get_json_structure(profile)["node"]
    counts = {
        "numberFollowers": _node_count(node, ("edge_followed_by", "count"), ("follower_count",)),
        "numberFollowing": _node_count(node, ("edge_follow", "count"), ("following_count",)),
        # Instaloader leaves the post count out of the saved profile (it drops the timeline edge)
        "numberPosts": _node_count(node, ("edge_owner_to_timeline_media", "count"), ("media_count",),
                                   ("all_media_count",)),
    }
    for field, value in counts.items():
        if value is None and field != "numberPosts":
            raise DataError("no follower counts in the saved profile", file.name, field=field)
    if counts["numberPosts"] is None:
        counts["numberPosts"] = len(posts)  # the posts downloaded: a lower bound
    return {"alias": node.get("username") or profile.username, **counts,
            "private": bool(node.get("is_private", False)), "posts": posts}


def profile_folders(path) -> list[Path]:
    """`path` itself when it holds post metadata, else its sub-folders that do."""
    root = Path(path).absolute()
    if not root.is_dir():
        raise DataError(f"Instaloader folder not found: {root} (set data.path)", field="data.path")
    has_posts = lambda d: any(d.glob("*_UTC.json.xz")) or any(d.glob("*_UTC.json"))  # noqa: E731
    folders = [root] if has_posts(root) else sorted(d for d in root.iterdir() if d.is_dir() and has_posts(d))
    if not folders:
        raise DataError(f"no Instaloader post metadata (*_UTC.json.xz) in {root} or its sub-folders: download "
                        "with `instaloader PROFILE` (metadata JSON is on by default)", field="data.path")
    return folders


def iter_profiles(path):
    """Yield (profile file name, profile dict in the profiles format or its DataError, last written)
    per Instaloader folder, as every reader does (likepred.data.READERS)."""
    il = _instaloader()
    root = Path(path).absolute()
    context = il.InstaloaderContext(quiet=True)  # no login, no request: everything comes from the files
    for folder in profile_folders(path):
        try:
            name, profile = _folder(il, context, folder, root)
        except DataError as e:  # data.on_error=skip drops the folder, as it drops a bad profile file
            yield folder.name, e, None
            continue
        # Instaloader stamps each file with its post's date, not the download's: no bound on dates
        # here beyond data.scrape_date
        yield name, profile, None


def _folder(il, context, folder: Path, root: Path):
    profile, profile_file, posts = None, None, []
    files = sorted(f for f in folder.iterdir() if f.name.endswith((".json.xz", ".json")) and f.is_file())
    for f in files:
        s = _load(il, context, f)
        if isinstance(s, il.Post):
            posts.append(_post(il, s, f, root))
        elif isinstance(s, il.Profile):
            if profile is not None:
                raise DataError(f"two profile files in one folder ({profile_file.name}, {f.name})", f.name)
            profile, profile_file = s, f
    if profile is None:
        raise DataError(f"no profile metadata (<name>_<id>.json.xz) in {folder}: download without "
                        "--no-profile-metadata-json", folder.name)
    return profile_file.name, _profile(il, profile, profile_file, posts)


@READERS.register("instaloader")
def _read(cfg):
    from likepred.data.columnar import InstaloaderFolder

    return InstaloaderFolder(cfg.path), None  # iter_profiles' work, in parallel and cached
