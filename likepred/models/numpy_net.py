"""A small Keras net of dense layers, run with NumPy from its weights (for serving).

Importing Keras and JAX and compiling the net costs a fresh predict process several
seconds; a net of Input, Normalization, Dense, Dropout, Activation and Concatenate layers is
a few matrix products. The packaged model keeps the `.keras` file and, beside it, this form
(`net.json`: layers and their inputs; `net.npz`: weights, read with allow_pickle=False), written
only when it reproduces the Keras net's output on probe rows (`from_keras` checks).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor on the std
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "exponential": np.exp,
    "softplus": lambda x: np.logaddexp(x, 0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
}
KINDS = {"InputLayer", "Normalization", "Dense", "Dropout", "Activation", "Concatenate"}


class NotDense(ValueError):
    """The net has a layer this module does not run."""


def _history(node) -> list:
    """Names of the layers whose outputs feed a layer (from its Keras config's inbound nodes)."""
    out = []
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            return [node["config"]["keras_history"][0]]
        for v in node.values():
            out += _history(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            out += _history(v)
    return out


class NumpyNet:
    def __init__(self, spec: dict, weights: dict):
        self.spec, self.weights = spec, weights
        for layer in spec["layers"]:
            if layer["kind"] not in KINDS:
                raise NotDense(f"layer kind {layer['kind']!r}")
            if layer.get("activation", "linear") not in ACTIVATIONS:
                raise NotDense(f"activation {layer['activation']!r}")

    @classmethod
    def from_keras(cls, model, probe_rows: int = 64, rtol: float = 1e-4) -> "NumpyNet":
        """The NumPy form of a Keras functional model; NotDense if a layer is not covered or the
        two disagree on probe rows drawn around the Normalization statistics."""
        config = model.get_config()
        layers, weights = [], {}
        for lc, layer in zip(config["layers"], model.layers):
            kind, name = lc["class_name"], lc["name"]
            entry = {"kind": kind, "name": name, "inputs": _history(lc["inbound_nodes"])}
            cfg = lc["config"]
            if kind not in KINDS:
                raise NotDense(f"layer {name} is a {kind}")
            if kind == "Normalization":
                if cfg.get("invert") or tuple(cfg.get("axis") or (-1,)) != (-1,):
                    raise NotDense(f"layer {name}: only axis=-1, invert=False")
                weights[f"{name}/mean"] = np.asarray(layer.mean, np.float32).reshape(-1)
                weights[f"{name}/variance"] = np.asarray(layer.variance, np.float32).reshape(-1)
            elif kind == "Dense":
                entry["activation"] = cfg["activation"] if isinstance(cfg["activation"], str) else "?"
                weights[f"{name}/kernel"] = np.asarray(layer.kernel, np.float32)
                if cfg.get("use_bias", True):
                    weights[f"{name}/bias"] = np.asarray(layer.bias, np.float32)
            elif kind == "Activation":
                entry["activation"] = cfg["activation"] if isinstance(cfg["activation"], str) else "?"
            elif kind == "Concatenate" and cfg.get("axis", -1) not in (-1, 1):
                raise NotDense(f"layer {name}: only axis=-1")
            layers.append(entry)
        outputs = config["output_layers"]
        if isinstance(outputs[0], list):
            if len(outputs) != 1:
                raise NotDense("more than one output")
            outputs = outputs[0]
        spec = {"layers": layers, "output": outputs[0]}
        net = cls(spec, weights)
        net._check(model, probe_rows, rtol)
        return net

    def _check(self, model, n, rtol):
        rng = np.random.default_rng(0)
        probe = {}
        for layer in self.spec["layers"]:
            if layer["kind"] == "InputLayer":
                shape = model.get_layer(layer["name"]).output.shape[1:]
                norm = next((f"{x['name']}/mean" for x in self.spec["layers"]
                             if x["kind"] == "Normalization" and x["inputs"] == [layer["name"]]), None)
                mean = self.weights[norm] if norm else 0.0
                std = np.sqrt(self.weights[norm.replace("/mean", "/variance")]) if norm else 1.0
                probe[layer["name"]] = (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)
        ours = self.predict(probe).reshape(-1)
        theirs = np.asarray(model.predict(probe, verbose=0)).reshape(-1)
        if not np.allclose(ours, theirs, rtol=rtol, atol=rtol * (np.abs(theirs).mean() + 1e-6)):
            raise NotDense(f"NumPy and Keras outputs differ (max {np.abs(ours - theirs).max():.3g})")

    def predict(self, x, verbose=0, batch_size=None) -> np.ndarray:
        """Keras `Model.predict`'s signature, for `KerasEstimator.predict`."""
        values = {}
        for layer in self.spec["layers"]:
            kind, name = layer["kind"], layer["name"]
            ins = [values[i] for i in layer["inputs"]]
            if kind == "InputLayer":
                out = np.asarray(x[name] if isinstance(x, dict) else x, dtype=np.float32)
            elif kind == "Normalization":
                mean, var = self.weights[f"{name}/mean"], self.weights[f"{name}/variance"]
                out = (ins[0] - mean) / np.maximum(np.sqrt(var), np.float32(EPSILON))
            elif kind == "Dense":
                out = ins[0] @ self.weights[f"{name}/kernel"]
                if f"{name}/bias" in self.weights:
                    out = out + self.weights[f"{name}/bias"]
                out = ACTIVATIONS[layer["activation"]](out)
            elif kind == "Activation":
                out = ACTIVATIONS[layer["activation"]](ins[0])
            elif kind == "Concatenate":
                out = np.concatenate(ins, axis=-1)
            else:  # Dropout: the identity at inference
                out = ins[0]
            values[name] = out.astype(np.float32, copy=False)
        return values[self.spec["output"]]

    def save(self, folder) -> None:
        folder = Path(folder)
        from likepred.files import write_atomic, write_npz

        write_npz(folder / "net.npz", **self.weights)
        write_atomic(folder / "net.json", json.dumps(self.spec))

    @classmethod
    def load(cls, folder) -> "NumpyNet":
        folder = Path(folder)
        spec = json.loads((folder / "net.json").read_text(encoding="utf-8"))
        with np.load(folder / "net.npz", allow_pickle=False) as z:
            return cls(spec, {k: z[k] for k in z.files})
