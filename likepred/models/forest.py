"""A fitted histogram GBM as plain arrays, predicted with NumPy.

The packaged gbm keeps its trees as arrays (`forest.npz`, read with allow_pickle=False)
rather than a pickled scikit-learn estimator: a downloaded model cannot run code, it does not
depend on the scikit-learn version, and serving needs no scikit-learn import (seconds in a
fresh process). `Forest.predict` walks every tree at once, one level per step, with the
same rule as scikit-learn's predictor (x <= threshold goes left; NaN follows
missing_go_to_left), so it returns the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")
LINKS = ("IdentityLink",)  # the losses gbm uses (absolute_error, squared_error)


class Forest:
    def __init__(self, arrays: dict):
        self.value = arrays["value"].astype(np.float64)
        self.feature = arrays["feature_idx"].astype(np.intp)
        self.threshold = arrays["num_threshold"].astype(np.float64)
        self.missing_left = arrays["missing_go_to_left"].astype(bool)
        self.is_leaf = arrays["is_leaf"].astype(bool)
        self.roots = arrays["roots"].astype(np.intp)
        # children as indices into the concatenated nodes
        offsets = np.repeat(self.roots, np.diff(np.append(self.roots, len(self.value))))
        self.left = arrays["left"].astype(np.intp) + offsets
        self.right = arrays["right"].astype(np.intp) + offsets
        self.baseline = float(arrays["baseline"])
        self.n_features = int(arrays["n_features"])
        self.depth = int(arrays["depth"])
        if len(self.roots) and (self.left[~self.is_leaf].max(initial=0) >= len(self.value)
                                or self.feature[~self.is_leaf].max(initial=0) >= self.n_features):
            raise ValueError("forest arrays are inconsistent")

    @classmethod
    def from_sklearn(cls, model) -> "Forest":
        """The arrays of a fitted HistGradientBoostingRegressor (numeric features, identity link)."""
        link = type(model._loss.link).__name__
        if link not in LINKS or getattr(model, "_preprocessor", None) is not None or model.n_trees_per_iteration_ != 1:
            raise ValueError(f"cannot store this gradient boosting model as arrays (link {link})")
        nodes = [p[0].nodes for p in model._predictors]
        if any(n["is_categorical"].any() for n in nodes):
            raise ValueError("cannot store categorical splits as arrays")
        arrays = {f: np.concatenate([n[f] for n in nodes]) if nodes else np.zeros(0) for f in FIELDS}
        arrays["roots"] = np.cumsum([0] + [len(n) for n in nodes[:-1]]) if nodes else np.zeros(0, np.intp)
        arrays["baseline"] = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(())
        arrays["n_features"] = np.asarray(model.n_features_in_)
        arrays["depth"] = np.asarray(max((int(n["depth"].max()) for n in nodes), default=0))
        return cls(arrays)

    def arrays(self) -> dict:
        return {"value": self.value, "feature_idx": self.feature, "num_threshold": self.threshold,
                "missing_go_to_left": self.missing_left, "is_leaf": self.is_leaf, "roots": self.roots,
                "left": self.left - np.repeat(self.roots, np.diff(np.append(self.roots, len(self.value)))),
                "right": self.right - np.repeat(self.roots, np.diff(np.append(self.roots, len(self.value)))),
                "baseline": np.asarray(self.baseline), "n_features": np.asarray(self.n_features),
                "depth": np.asarray(self.depth)}

    def save(self, path) -> None:
        from likepred.files import write_npz

        write_npz(path, **self.arrays())

    @classmethod
    def load(cls, path) -> "Forest":
        import zipfile

        from likepred.errors import ConfigError

        try:
            with np.load(Path(path), allow_pickle=False) as z:
                return cls({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ConfigError(f"{path}: not a readable model file ({type(e).__name__}: {e}); "
                              "the model folder is damaged (log the model again)") from None

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {X.shape}")
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        rows = np.arange(len(X))[:, None]
        for _ in range(self.depth):
            inner = ~self.is_leaf[node]
            if not inner.any():
                break
            x = X[rows, self.feature[node]]
            left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(inner, np.where(left, self.left[node], self.right[node]), node)
        raw = np.full(len(X), self.baseline)
        for t in range(node.shape[1]):  # tree by tree, as scikit-learn adds them
            raw += self.value[node[:, t]]
        return raw
