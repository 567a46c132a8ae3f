"""The Predictor (planned posts -> likes, with everything fitted in training) and its files.

A packaged model is two folders: `predictor` (the fitted pipeline, the users' profile
numbers, interval quantiles: `state.json` + `arrays.npz`, read without running code from
them; see likepred.serving.state) and `estimator` (the model's weights in its own
non-executable format: a forest's arrays, a dense net's weights, a `.keras` file). A pipeline
holding something the state format does not store is written as `predictor.pkl` instead,
which runs code when read: it is read only when trusted (`read_model_files(trust_pickle=...)`).

No mlflow, Keras or scikit-learn import here: a fresh predict process stays short.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import pickle
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.data.schema import PLANNED_POST_FIELDS, POST_COLUMNS, PROFILE_NUMBERS, planned_post
from likepred.errors import ConfigError, DataError
from likepred.pipeline import ModelData

log = logging.getLogger(__name__)

LEVEL = 0.8  # the interval's coverage of validation rows
SMALL_BATCH = 256  # rows below which prediction runs on one thread
PROFILE = list(PROFILE_NUMBERS.values())
INPUTS = ["date", *PLANNED_POST_FIELDS]
ONE_HOT = ("weekday_", "script_")  # explained as one feature each
FAR_DAYS = 365  # a post this far outside the training dates gets a warning
FAR_RANGE = 0.25  # a number this far (x its training range) outside its training range gets a warning


class Predictor:
    """Planned posts -> likes, with everything fitted in the training process."""

    def __init__(self, estimator, pipeline, train: ModelData, val: ModelData, cfg):
        self.estimator, self.pipeline = estimator, pipeline
        self.backend = cfg.get("backend")
        self.info = {k: cfg[k].name for k in ("model", "features", "target")}
        self.users = train.posts.drop_duplicates("alias", keep="last").set_index("alias")[PROFILE]
        # what --explain occludes with; blocks of image paths are not explained
        self.means = {b: x.mean(axis=0) for b, x in train.inputs.items() if x.dtype != object}
        self.level = LEVEL
        if len(val) == 0:
            log.warning("packaged model: no validation rows; its interval comes from train rows (too narrow)")
        self.intervals = self._intervals(val if len(val) else train)
        dates = train.posts["date"]
        self.dates = (dates.min().isoformat(), dates.max().isoformat()) if len(dates) else None
        self.ranges = self._ranges(train)

    def _ranges(self, train: ModelData) -> dict | None:
        """Training min and max of each numeric `meta` feature that is one column (not one-hot,
        not an embedding) and does not follow the date (dates have their own check); `user`: the
        feature is the user's history (a new user gets cold-start values)."""
        x = train.inputs.get("meta")
        if x is None or x.dtype == object or not len(x):
            return None
        names = self.pipeline.names.get("meta", [])
        single = [cols["meta"][0] for label, cols in feature_groups({"meta": names})
                  if list(cols) == ["meta"] and len(cols["meta"]) == 1 and not label.startswith(ONE_HOT)]
        sample = train.posts.head(20)
        dated = users = np.zeros(x.shape[1], bool)
        try:  # the columns that move when only the date moves, and when the user is unknown
            base = self.pipeline.features.transform(sample)["meta"]

            def moves(posts):
                return np.abs(self.pipeline.features.transform(posts)["meta"] - base).max(axis=0) > 1e-9

            dated = moves(sample.assign(date=sample["date"] + pd.Timedelta(days=3650)))
            users = moves(sample.assign(alias=""))
        except Exception:  # noqa: BLE001 - a feature that cannot take such a post: check every column
            pass
        lo, hi = np.nanmin(x, axis=0).astype(float), np.nanmax(x, axis=0).astype(float)
        keep = [j for j in single if not dated[j] and np.isfinite(lo[j]) and np.isfinite(hi[j]) and hi[j] > lo[j]]
        return {"index": keep, "names": [names[j] for j in keep], "user": [bool(users[j]) for j in keep],
                "lo": [float(lo[j]) for j in keep], "hi": [float(hi[j]) for j in keep]}

    def far_inputs(self, inputs: dict, posts: pd.DataFrame) -> str | None:
        """One line if some posts have a numeric feature (followers, tag counts, ...) far outside
        its training range (more than FAR_RANGE times the range beyond min or max), else None."""
        ranges = getattr(self, "ranges", None)
        if not ranges or not ranges["index"] or "meta" not in inputs or not len(posts):
            return None
        x = inputs["meta"][:, ranges["index"]].astype(float)
        lo, hi = np.array(ranges["lo"]), np.array(ranges["hi"])
        margin = FAR_RANGE * (hi - lo)
        far = (x < lo - margin) | (x > hi + margin)
        # a new user's history statistics are the cold-start ones (said in its own note), not an extrapolation
        far[np.ix_(~posts["alias"].isin(self.users.index).to_numpy(), np.array(ranges["user"], bool))] = False
        rows = np.flatnonzero(far.any(axis=1))
        if not len(rows):
            return None
        i = rows[0]
        what = ", ".join(f"{ranges['names'][j]} {_num(x[i, j])} (training: {_num(lo[j])} to {_num(hi[j])})"
                         for j in np.flatnonzero(far[i])[:3])
        fields = sorted({ranges["names"][j] for j in np.flatnonzero(far.any(axis=0))})
        return (f"warning: {len(rows)} of {len(posts)} posts have inputs far outside the training posts' range "
                f"({', '.join(fields[:5])}{', ...' if len(fields) > 5 else ''}), e.g. {_where(posts, i)}: {what}: their predictions extrapolate")

    def _intervals(self, data: ModelData) -> dict:
        """Quantiles of likes / predicted on held-out rows: as they are (known users)
        and with every user treated as unknown (cold start, wider)."""
        likes = data.posts["likes"].to_numpy(dtype=float)
        known = data.posts["alias"].isin(self.users.index).to_numpy()
        q = [(1 - self.level) / 2, (1 + self.level) / 2]

        def ratio_quantiles(pred, mask):
            ok = mask & np.isfinite(pred) & (pred > 0)
            return [float(v) for v in np.quantile(likes[ok] / pred[ok], q)] if ok.sum() >= 5 else None

        cold = ratio_quantiles(self.predict_likes(data.posts.assign(alias="")), np.ones(len(likes), bool))
        return {"known": ratio_quantiles(self.predict_likes(data.posts), known) or cold, "cold": cold}

    def posts(self, records: list, file=None, labels=None) -> tuple[pd.DataFrame, np.ndarray]:
        """Validated posts table (errors name the file, post and field) and which users are known.
        labels: where each record came from (e.g. "line 7"), named in errors instead of its index."""
        posts, known, bad = self.check(records, file, labels, skip=False)
        return posts, known

    def check(self, records: list, file=None, labels=None, skip=True):
        """Like `posts`, but with skip=True a bad record is left out: returns (posts, known,
        [(record index, DataError)])."""
        rows, known, bad = [], [], []
        for i, rec in enumerate(records):
            if labels:  # "file posts.jsonl, line 7, field date: ..."
                where, index = f"{file}, {labels[i]}", None
            else:
                where, index = file, (i if len(records) > 1 else None)
            try:
                row = planned_post(rec, where, index)  # bounds the profile numbers too (schema.MAX_COUNT)
                known.append(self._user(row, where, index))
            except DataError as e:
                if not skip:
                    raise
                bad.append((i, e))
                continue
            rows.append(row)
        posts = pd.DataFrame(rows, columns=POST_COLUMNS + PROFILE)
        posts["date"] = pd.to_datetime(posts["date"], utc=True)
        posts["likes"] = posts["likes"].astype(float)
        posts[PROFILE] = posts[PROFILE].astype("int64")
        return posts, np.array(known, dtype=bool), bad

    def far_dates(self, posts: pd.DataFrame) -> str | None:
        """One line if some posts are dated far outside the training dates (their date
        features extrapolate), else None."""
        if not getattr(self, "dates", None) or not len(posts):
            return None
        lo, hi = (pd.Timestamp(d) for d in self.dates)
        margin = pd.Timedelta(days=FAR_DAYS)
        far = ((posts["date"] < lo - margin) | (posts["date"] > hi + margin)).to_numpy()
        if not far.any():
            return None
        first = posts["date"][far].iloc[0]
        return (f"warning: {far.sum()} of {len(posts)} posts are dated more than a year outside the training "
                f"posts ({lo:%Y-%m-%d} to {hi:%Y-%m-%d}), e.g. {first:%Y-%m-%d}: their predictions extrapolate")

    def _user(self, row: dict, file, index) -> bool:
        """Fill the user's profile numbers from training where not given; True for a known user."""
        alias = row["alias"]
        known = alias is not None and alias in self.users.index
        missing = [name for name, col in PROFILE_NUMBERS.items() if row[col] is None]
        if known:
            for name in missing:
                row[PROFILE_NUMBERS[name]] = int(self.users.at[alias, PROFILE_NUMBERS[name]])
        elif missing:
            what = (f"user {alias!r} is not known to the model: give these profile numbers for a cold-start "
                    "prediction" if alias else "no `alias`: give the alias of a user the model knows, or these "
                    "profile numbers for a cold-start prediction")
            raise DataError(what, file, index, ", ".join(missing))
        row["alias"] = alias or ""  # "" is nobody: cold-start statistics
        return known

    def predict_likes(self, posts: pd.DataFrame) -> np.ndarray:
        """Likes, never below 0 (a model extrapolating can go negative: `negative_likes` counts the
        predictions clipped in the last call; `extrapolated` is `far_inputs`' line for it)."""
        inputs = self.pipeline.features.transform(posts)
        likes = self._predict(ModelData(inputs, np.full(len(posts), np.nan, np.float32), posts))
        self.negative_likes = int((likes < 0).sum())
        self.extrapolated = self.far_inputs(inputs, posts)  # one line or None, for the last call
        return np.maximum(likes, 0)

    def _predict(self, data: ModelData) -> np.ndarray:
        # A few rows: OpenMP's thread start-up costs more than it saves (gbm: 5x on a busy machine).
        small = len(data) < SMALL_BATCH
        with threadpools().limit(limits=1, user_api="openmp") if small else contextlib.nullcontext():
            return self.pipeline.predict_likes(self.estimator, data)

    def predict(self, posts: pd.DataFrame, known: np.ndarray) -> pd.DataFrame:
        likes = self.predict_likes(posts)
        low, high = np.full(len(likes), np.nan), np.full(len(likes), np.nan)
        for flag, key in ((True, "known"), (False, "cold")):
            m = (known == flag) & (likes > 0)
            if self.intervals[key] and m.any():
                low[m], high[m] = likes[m] * self.intervals[key][0], likes[m] * self.intervals[key][1]
        return pd.DataFrame({"likes": likes, "likes_low": low, "likes_high": high, "known_user": known})

    def explain(self, posts: pd.DataFrame, top: int = 5) -> list[dict]:
        """Per post, the features that move its prediction most: the change in likes
        when a feature is set to its training mean (occlusion), largest first."""
        inputs = self.pipeline.features.transform(posts)
        groups = [g for g in feature_groups(self.pipeline.names) if set(g[1]) <= set(self.means)]
        reps = len(groups) + 2  # row 0: as is; 1..g: one feature at its mean; last: all at their means
        batch = {b: np.repeat(x, reps, axis=0) for b, x in inputs.items()}
        for k, (_, cols) in enumerate(groups, start=1):
            for b, idx in cols.items():
                batch[b][k::reps, idx] = self.means[b][idx]
        for b, mean in self.means.items():
            batch[b][reps - 1::reps] = mean
        rep = posts.loc[posts.index.repeat(reps)].reset_index(drop=True)
        pred = self._predict(ModelData(batch, np.full(len(rep), np.nan, np.float32), rep)).reshape(len(posts), reps)
        base = getattr(self.pipeline.target, "base", None)
        bases = base(posts) if base else None
        out = []
        for i in range(len(posts)):
            delta = pred[i, 0] - pred[i, 1:-1]
            order = [k for k in np.argsort(-np.abs(delta), kind="stable") if abs(delta[k]) >= 0.5][:top]
            out.append({
                "likes": float(pred[i, 0]), "at_means": float(pred[i, -1]),
                # one at a time, the changes need not add up to (likes - at_means): features interact
                "sum_all": float(delta.sum()), "moved": float(pred[i, 0] - pred[i, -1]),
                "contributions": [(groups[k][0], shown_value(inputs, i, groups[k][1], self.pipeline.names),
                                   float(delta[k])) for k in order],
                "target_base": None if bases is None else (getattr(self.pipeline.target, "base_stat", "mean"),
                                                           float(bases[i])),
            })
        return out


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _where(posts: pd.DataFrame, i: int) -> str:
    alias = posts["alias"].iloc[i] or "a new user"
    return f"{alias}'s post of {posts['date'].iloc[i]:%Y-%m-%d}"


@functools.cache
def threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scans the loaded libraries once (ms), not per prediction


def feature_groups(names: dict) -> list:
    """(label, {block: column indices}) per explained feature: one per column, except
    one-hot sets and numbered columns (embeddings: name_0, name_1, ...) and whole
    non-`meta` blocks (images), which are one each."""
    groups: dict = {}
    for block, cols in names.items():
        for j, name in enumerate(cols):
            if block != "meta":
                label = block
            else:
                label = next((p.rstrip("_") for p in ONE_HOT if name.startswith(p)), re.sub(r"_\d+$", "", name))
            groups.setdefault(label, {}).setdefault(block, []).append(j)
    return list(groups.items())


def shown_value(inputs: dict, i: int, cols: dict, names: dict):
    """A feature's value for display: the number, the active member of a one-hot set, or None."""
    if len(cols) != 1:
        return None
    (block, idx), = cols.items()
    if len(idx) == 1:
        return float(inputs[block][i, idx[0]])
    hot = [names[block][j] for j in idx if inputs[block][i, j] == 1]
    for p in ONE_HOT:
        if len(hot) == 1 and hot[0].startswith(p):
            return hot[0][len(p):]
    return None


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows back to post dicts: empty cells dropped, numpy values as Python
    ones (a count column with a gap holds floats), timestamps as ISO strings."""
    out = []
    for rec in frame.to_dict("records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, np.generic):
                v = v.item()
            if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
                continue
            if isinstance(v, datetime):
                v = v.isoformat()
            if k in PROFILE_NUMBERS and isinstance(v, float) and v.is_integer():
                v = int(v)
            clean[k] = v
        out.append(clean)
    return out


def write_model_files(folder, predictor: Predictor) -> dict:
    """Write the predictor's two folders under `folder`; return them as MLflow artifacts
    ({"predictor": path, "estimator": path})."""
    from likepred.serving import state

    folder = Path(folder)
    parts = {"predictor": folder / "predictor", "estimator": folder / "estimator"}
    for p in parts.values():
        p.mkdir(parents=True)
    try:
        state.dump(predictor, parts["predictor"])
    except state.Unsupported as e:
        for f in parts["predictor"].iterdir():
            f.unlink()
        log.warning("packaged model: the pipeline is written as a pickle, which needs --trust-pickle to "
                    "load from elsewhere (%s)", e)
        with open(parts["predictor"] / "predictor.pkl", "wb") as f:
            pickle.dump(predictor, f)
    predictor.estimator.save(parts["estimator"])
    return {k: str(v) for k, v in parts.items()}


def read_model_files(artifacts: dict, trust_pickle: bool = False, where: str = "the model") -> Predictor:
    """The Predictor from its folders. A pickle (older models, or a pipeline the state format
    does not store) runs code when read: refused unless `trust_pickle`."""
    from likepred.serving import state

    path = Path(artifacts["predictor"])
    pkl = path if path.is_file() else path / "predictor.pkl"
    if path.is_dir() and (path / state.STATE).is_file():
        predictor = state.load(path)
    elif pkl.is_file():
        if not trust_pickle:
            raise ConfigError(
                f"{where}: its pipeline is a pickle ({pkl.name}), which runs code when loaded; load it only "
                "if you trust where it came from: add --trust-pickle")
        with open(pkl, "rb") as f:
            predictor = pickle.load(f)
    else:
        raise ConfigError(f"{where}: no predictor files in {path}")
    if not isinstance(predictor, Predictor):
        raise ConfigError(f"{where}: not a likepred model (logged by python -m likepred)")
    try:
        predictor.estimator.load(Path(artifacts["estimator"]), predictor.backend)
    except (OSError, ValueError, KeyError, TypeError) as e:  # a missing or damaged weights file
        raise ConfigError(f"{where}: cannot read its weights in {artifacts['estimator']} ({e})") from None
    return predictor
