"""Feature cache: reuse, key separation, crash safety, errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from likepred.errors import ConfigError, DataError
from likepred.images.cache import FeatureCache, cached_features, content_hash

DIM = 8


def _files(folder, n, start=0):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = folder / f"img{i:03d}.jpg"
        p.write_bytes(np.random.default_rng(i).integers(0, 256, 64, dtype=np.uint8).tobytes())
        paths.append(p)
    return paths


def fake_features(paths):
    """Deterministic features from the file's bytes."""
    if not paths:
        return np.zeros((0, DIM), np.float32)
    return np.stack([np.frombuffer(open(p, "rb").read()[:DIM], np.uint8) for p in paths]).astype(np.float32)


class Counting:
    def __init__(self, fn=fake_features):
        self.fn, self.calls, self.images = fn, 0, 0

    def __call__(self, paths):
        self.calls += 1
        self.images += len(paths)
        return self.fn(paths)


def test_second_run_reads_cache_only(tmp_path):
    paths = _files(tmp_path / "img", 10)
    fn = Counting()
    cache = FeatureCache(tmp_path / "c", "fake|w=0|8", DIM)
    first = cached_features(paths, fn, cache, batch_size=3, progress=False)
    assert fn.images == 10 and fn.calls == 4
    np.testing.assert_array_equal(first, fake_features(paths))

    cache = FeatureCache(tmp_path / "c", "fake|w=0|8", DIM)  # a new process would do this
    again = cached_features(paths[::-1], fn, cache, progress=False)
    assert fn.images == 10  # nothing extracted
    np.testing.assert_array_equal(again, first[::-1])
    assert (cache.stats.hits, cache.stats.computed) == (10, 0)
    assert not list(cache.pending.glob("*.npz"))  # merged into the .h5


def test_only_new_images_extracted_and_duplicates_once(tmp_path):
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    paths = _files(tmp_path / "img", 6)
    cached_features(paths[:4], fake_features, cache, progress=False)
    dup = tmp_path / "img" / "copy.jpg"
    dup.write_bytes(paths[5].read_bytes())
    fn = Counting()
    out = cached_features(paths + [dup], fn, cache, progress=False)
    assert fn.images == 2  # img004, img005; the copy shares img005's hash
    np.testing.assert_array_equal(out[-1], out[5])
    assert (cache.stats.hits, cache.stats.computed) == (4, 2)
    assert len(cache) == 6


def test_extractor_keys_do_not_mix(tmp_path):
    paths = _files(tmp_path / "img", 3)
    a = FeatureCache(tmp_path / "c", "vgg19|weights=imagenet|224x224", DIM)
    b = FeatureCache(tmp_path / "c", "vgg19|weights=imagenet|112x112", DIM)
    cached_features(paths, fake_features, a, progress=False)
    feats, found = b.get_many([content_hash(p) for p in paths])
    assert not found.any() and np.isnan(feats).all()
    fn = Counting(lambda ps: -fake_features(ps))
    out = cached_features(paths, fn, b, progress=False)
    assert fn.images == 3
    np.testing.assert_array_equal(out, -cached_features(paths, fake_features, a, progress=False))


def test_dim_mismatch_is_a_config_error(tmp_path):
    paths = _files(tmp_path / "img", 2)
    cached_features(paths, fake_features, FeatureCache(tmp_path / "c", "k", DIM), progress=False)
    with pytest.raises(ConfigError, match="dim"):
        FeatureCache(tmp_path / "c", "k", DIM + 1)


def test_wrong_shape_from_extractor(tmp_path):
    paths = _files(tmp_path / "img", 2)
    with pytest.raises(Exception, match="shape"):
        cached_features(paths, lambda ps: np.zeros((len(ps), 3)), FeatureCache(tmp_path / "c", "k", DIM),
                        progress=False)


def test_missing_and_unreadable_images(tmp_path):
    paths = _files(tmp_path / "img", 4)
    missing = tmp_path / "img" / "gone.jpg"
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    with pytest.raises(DataError, match="gone.jpg"):
        cached_features(paths + [missing], fake_features, cache, progress=False)

    def picky(ps):  # the extractor cannot decode img002
        if any(p.endswith("img002.jpg") for p in ps):
            raise OSError("cannot identify image file")
        return fake_features(ps)

    with pytest.raises(DataError, match="img002.jpg.*cannot identify"):
        cached_features(paths, picky, cache, batch_size=4, progress=False)
    out = cached_features(paths + [missing], picky, cache, batch_size=4, progress=False, errors="nan")
    assert np.isnan(out[[2, 4]]).all() and not np.isnan(out[[0, 1, 3]]).any()
    assert (cache.stats.failed, cache.stats.hits + cache.stats.computed) == (2, 3)
    _, found = cache.get_many([content_hash(paths[2])])
    assert not found[0]  # failures are not cached


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    from likepred.images.cache import FeatureCache, cached_features
    root, *paths = sys.argv[1:]
    def slow(ps):
        time.sleep(0.05)
        return np.stack([np.frombuffer(open(p, "rb").read()[:8], np.uint8) for p in ps]).astype(np.float32)
    cached_features(paths, slow, FeatureCache(root, "k", 8), batch_size=2, progress=False)
""")


def test_survives_sigkill_mid_extraction(tmp_path):
    paths = _files(tmp_path / "img", 200)
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    cached_features(paths[:10], fake_features, cache, progress=False)  # an .h5 exists before the kill
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "c"), *map(str, paths)])
    deadline = time.time() + 30
    while len(list(cache.pending.glob("*.npz"))) < 5 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    cache = FeatureCache(tmp_path / "c", "k", DIM)
    feats, found = cache.get_many([content_hash(p) for p in paths])
    done = int(found.sum())
    assert 10 + 2 * 5 <= done < 200  # the .h5 and the shards saved before the kill
    np.testing.assert_array_equal(feats[found], fake_features([p for p, f in zip(paths, found) if f]))
    fn = Counting()
    out = cached_features(paths, fn, cache, progress=False)
    assert fn.images == 200 - done
    np.testing.assert_array_equal(out, fake_features(paths))


KILLED_MERGE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import likepred.files
    import likepred.images.cache as c
    root, flag, *paths = sys.argv[1:]
    def stall(path):  # the new .h5 is written, not yet swapped in: get killed here
        open(flag, "w").close()
        time.sleep(60)
    likepred.files._fsync = stall  # the one atomic writer (likepred.files.atomic_path)
    fn = lambda ps: np.stack([np.frombuffer(open(p, "rb").read()[:8], np.uint8) for p in ps]).astype(np.float32)
    c.cached_features(paths, fn, c.FeatureCache(root, "k", 8), batch_size=2, progress=False)
""")


def test_survives_sigkill_mid_merge(tmp_path):
    paths = _files(tmp_path / "img", 12)
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    cached_features(paths[:4], fake_features, cache, progress=False)
    flag = tmp_path / "merging"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MERGE, str(tmp_path / "c"), str(flag),
                             *map(str, paths)])
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob("c/.*.tmp"))  # the unfinished merge

    cache = FeatureCache(tmp_path / "c", "k", DIM)
    fn = Counting()
    out = cached_features(paths, fn, cache, progress=False)  # the exclusive lock died with the process
    assert fn.images == 0
    np.testing.assert_array_equal(out, fake_features(paths))


def test_crash_debris_is_ignored(tmp_path):
    """What a kill can leave: half-written temps, shards already merged."""
    paths = _files(tmp_path / "img", 6)
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    cached_features(paths[:3], fake_features, cache, progress=False)
    # killed after the .h5 swap, before deleting the merged shards
    cache.put_many([content_hash(p) for p in paths[:3]], fake_features(paths[:3]))
    (cache.pending / ".123-1-abc.part").write_bytes(b"PK\x03\x04 half a shard")
    cache.file.with_name(f".{cache.file.name}.99.abc.tmp").write_bytes(b"\x89HDF\r\n half a file")
    (cache.pending / "bad.npz").write_bytes(b"not a zip")  # disk damage, not a kill
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    fn = Counting()
    with pytest.warns(UserWarning, match="unreadable shard"):
        out = cached_features(paths, fn, cache, progress=False)
    assert fn.images == 3
    np.testing.assert_array_equal(out, fake_features(paths))
    assert len(cache) == 6


def test_concurrent_writers_and_readers(tmp_path):
    """Two processes filling one cache while this one reads: all complete, none lost."""
    paths = _files(tmp_path / "img", 30)
    cache = FeatureCache(tmp_path / "c", "k", DIM)
    procs = [subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "c"), *map(str, ps)])
             for ps in (paths, paths[::-1])]
    hashes = [content_hash(p) for p in paths]
    while any(p.poll() is None for p in procs):
        feats, found = cache.get_many(hashes)
        np.testing.assert_array_equal(feats[found], fake_features([p for p, f in zip(paths, found) if f]))
    assert [p.returncode for p in procs] == [0, 0]
    feats, found = cache.get_many(hashes)
    assert found.all() and len(cache) == 30
