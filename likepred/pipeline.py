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


class Pipeline:
    def __init__(self, features, target):
        self.features, self.target = features, target

    def fit_transform(self, train: pd.DataFrame) -> ModelData:
        self.target.fit(train)
        return ModelData(self.features.fit_transform(train), self.target.transform(train), train)

    def transform(self, posts: pd.DataFrame) -> ModelData:
        return ModelData(self.features.transform(posts), self.target.transform(posts), posts)

    @property
    def names(self) -> dict:
        return self.features.names_

    def to_likes(self, pred, posts) -> np.ndarray:
        return self.target.inverse(pred, posts)
