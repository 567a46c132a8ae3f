"""Posts -> model inputs and targets: features and target fitted on train rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class ModelData:
    """What a model sees: named input blocks, the target, and the rows they came from."""

    inputs: dict
    y: np.ndarray
    posts: pd.DataFrame

    def __len__(self):
        return len(self.posts)

    def sample(self, max_rows: int | None, seed: int = 0) -> "ModelData":
        """At most `max_rows` of these rows, drawn without replacement (seeded), in their order;
        all of them (self) when there are no more than that or `max_rows` is None."""
        if max_rows is None or len(self) <= max_rows:
            return self
        ix = np.sort(np.random.default_rng(seed).choice(len(self), int(max_rows), replace=False))
        return ModelData({b: x[ix] for b, x in self.inputs.items()}, self.y[ix], self.posts.iloc[ix].reset_index(drop=True))


def mape_optimal_scale(pred, likes) -> float:
    """The c minimising MAPE of c * pred: sum |y - c p| / y = sum (p / y) |y / p - c|,
    so c is the (p / y)-weighted median of y / p."""
    from likepred.userstats import weighted_median

    pred, likes = np.asarray(pred, float), np.asarray(likes, float)
    ok = pred > 0
    return weighted_median(likes[ok] / pred[ok], pred[ok] / likes[ok]) if ok.any() else 1.0


UNSEEN = "\x00unseen"  # appended to train aliases: no fitted table knows them


class Pipeline:
    scale_ = 1.0  # set by calibrate(); 1 means predictions as the model made them

    def __init__(self, features, target, train_as_unseen: bool = False):
        self.features, self.target = features, target
        self.train_as_unseen = train_as_unseen

    def fit_transform(self, train: pd.DataFrame) -> ModelData:
        if not self.train_as_unseen:
            y = self.target.fit_transform(train)
            return ModelData(self.features.fit_transform(train), y, train)
        # Cold start: test users are unseen, so train rows are described as an unseen
        # user's would be (no like history, habits from their own posts only). Under
        # fresh aliases every extractor and the target take their cold-start path.
        self.features.fit(train)
        self.target.fit(train)
        unseen = train.assign(alias=train["alias"].astype(str) + UNSEEN)
        return ModelData(self.features.transform(unseen), self.target.transform(unseen), train)

    def prepare(self, posts: pd.DataFrame, split) -> tuple[ModelData, ModelData, ModelData]:
        """Fit on the split's train rows; return train, val and test model data."""
        rows = lambda ix: posts.iloc[ix].reset_index(drop=True)  # noqa: E731
        return self.fit_transform(rows(split.train)), self.transform(rows(split.val)), self.transform(rows(split.test))

    def transform(self, posts: pd.DataFrame) -> ModelData:
        return ModelData(self.features.transform(posts), self.target.transform(posts), posts)

    @property
    def names(self) -> dict:
        return self.features.names_

    def to_likes(self, pred, posts) -> np.ndarray:
        return self.target.inverse(pred, posts)

    def predict_likes(self, model, data: ModelData, calibrated: bool = True) -> np.ndarray:
        """The model's predictions on these rows, in likes (times the calibration scale)."""
        pred = model.predict(data)
        if model.predicts == "target":
            pred = self.to_likes(pred, data.posts)
        return np.asarray(pred, dtype=float) * (self.scale_ if calibrated else 1.0)

    def calibrate(self, pred_likes, likes):
        """Fit one multiplier on validation rows so the MAPE there is least (val metrics used for
        model selection are measured before it: on the same rows they would read optimistic).

        Under MAPE an uncertain prediction should lean low (over-predicting
        costs without bound, under-predicting at most 100%); how far depends
        on how uncertain, which validation rows cut like the test rows tell.
        """
        self.scale_ = self.scale_ * mape_optimal_scale(pred_likes, likes)
        return self.scale_
