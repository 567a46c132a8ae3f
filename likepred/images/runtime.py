"""Run a frozen Keras feature network on the fastest runtime at hand.

On CPUs, ONNX Runtime runs VGG-style nets (convolutions, pooling, dense layers) faster than
Keras on JAX, whose CPU convolutions are slow (`benchmarks/vgg19.py` prints both, and Keras on
TensorFlow where it is installed). So a plain sequential net is converted once, in memory, to
an ONNX graph with its weights, and run by onnxruntime. Anything else (branches, batch norm,
another layer kind), or onnxruntime missing (a core dependency; absent on some platforms), runs on Keras, with
a log line saying why (`images.extract_runtime=onnx` refuses to).

`precision="int8"` runs that graph quantised (weights per channel, activations per tensor,
static ranges): about 4x less CPU per image than fp32 for VGG19 on AVX2 cores, with features
within ~0.1% of fp32 in cosine (`benchmarks/vgg19.py` prints both). The ranges are calibrated on
`calibration_images`: procedural colour noise with a natural image's 1/f spectrum, the same in
every run, so the quantised network depends on the network alone, never on the data or the
split, and one cache of its features serves every run. It is built once (~35 s for VGG19) and
kept beside the feature cache.

No Keras import here: the caller hands over the built model.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "keras")
PRECISIONS = ("int8", "fp32")
QUANTISATION = "int8-pink32"  # names the recipe below in cache keys: change it when the recipe changes


class Unsupported(Exception):
    """The network has a layer the converter does not handle."""


def available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _activation(layer) -> str:
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "linear") if act is not None else "linear"
    if name not in ("linear", "relu", "softmax"):
        raise Unsupported(f"activation {name!r} of layer {layer.name}")
    return name


def to_onnx(model):
    """An onnx ModelProto computing `model` (NHWC float32 in, its output out); Unsupported otherwise."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    shape = list(model.inputs[0].shape)
    if len(shape) != 4:
        raise Unsupported(f"input of shape {shape}, not an image batch")
    cur = "input"
    # ONNX convolutions are channels-first: transpose once at the start.
    nodes.append(helper.make_node("Transpose", [cur], ["x_nchw"], perm=[0, 3, 1, 2]))
    cur, nchw = "x_nchw", True

    def add(op, inputs, **attrs):
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def act(x, layer):
        name = _activation(layer)
        return x if name == "linear" else add("Relu" if name == "relu" else "Softmax", [x])

    def pads(layer, kernel):
        if layer.padding == "valid":
            return [0, 0, 0, 0]
        if any(s != 1 for s in layer.strides) or any(k % 2 == 0 for k in kernel):
            raise Unsupported(f"'same' padding with strides/even kernels in {layer.name}")
        return [kernel[0] // 2, kernel[1] // 2, kernel[0] // 2, kernel[1] // 2]

    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer" or kind == "Dropout":
            continue
        if kind == "Conv2D":
            if not nchw or layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1) \
                    or layer.groups != 1:
                raise Unsupported(f"Conv2D settings of {layer.name}")
            kernel, *bias = [np.asarray(w) for w in layer.get_weights()]
            w = f"{layer.name}_w"
            inits.append(numpy_helper.from_array(kernel.transpose(3, 2, 0, 1).astype(np.float32), w))
            ins = [cur, w]
            if bias:
                inits.append(numpy_helper.from_array(bias[0].astype(np.float32), f"{layer.name}_b"))
                ins.append(f"{layer.name}_b")
            k = list(kernel.shape[:2])
            cur = act(add("Conv", ins, kernel_shape=k, strides=list(layer.strides), pads=pads(layer, k)), layer)
        elif kind == "MaxPooling2D":
            if layer.padding != "valid" or not nchw:
                raise Unsupported(f"MaxPooling2D settings of {layer.name}")
            cur = add("MaxPool", [cur], kernel_shape=list(layer.pool_size), strides=list(layer.strides))
        elif kind == "Flatten":
            if nchw:  # Keras flattens channels-last
                cur = add("Transpose", [cur], perm=[0, 2, 3, 1])
                nchw = False
            cur = add("Flatten", [cur], axis=1)
        elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D") and nchw:
            cur = add("GlobalAveragePool" if "Average" in kind else "GlobalMaxPool", [cur])
            cur = add("Flatten", [cur], axis=1)
            nchw = False
        elif kind == "Dense":
            if nchw:
                raise Unsupported(f"Dense {layer.name} on a 4-D tensor")
            kernel, *bias = [np.asarray(w) for w in layer.get_weights()]
            inits.append(numpy_helper.from_array(kernel.astype(np.float32), f"{layer.name}_w"))
            cur = add("MatMul", [cur, f"{layer.name}_w"])
            if bias:
                inits.append(numpy_helper.from_array(bias[0].astype(np.float32), f"{layer.name}_b"))
                cur = add("Add", [cur, f"{layer.name}_b"])
            cur = act(cur, layer)
        else:
            raise Unsupported(f"layer {layer.name} ({kind})")
    if nchw:
        raise Unsupported("the output is a feature map, not a vector")
    nodes.append(helper.make_node("Identity", [cur], ["output"]))
    graph = helper.make_graph(
        nodes, model.name or "net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, *shape[1:]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, None])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = min(proto.ir_version, 9)  # readable by older onnxruntime builds too
    onnx.checker.check_model(proto)
    return proto


def onnx_session(proto, threads=None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads and str(threads).isdigit():
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def calibration_images(side: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """n RGB images (0..255, NHWC float32) of coloured noise with a 1/f^a spectrum (a in 0.8-1.4),
    varied contrast and mean: a photograph's statistics without a photograph."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij"))
    f[0, 0] = 1.0
    out = np.empty((n, side, side, 3), np.float32)
    for i in range(n):
        spectrum = rng.normal(size=(3, side, side)) + 1j * rng.normal(size=(3, side, side))
        im = np.real(np.fft.ifft2(spectrum / f ** rng.uniform(0.8, 1.4)))
        im = (im - im.mean(axis=(1, 2), keepdims=True)) / (im.std(axis=(1, 2), keepdims=True) + 1e-9)
        out[i] = np.moveaxis(im, 0, -1) * rng.uniform(20, 80) + rng.uniform(60, 190, 3)
    return np.clip(out, 0, 255)


def quantize(proto, calibration: np.ndarray, batch: int = 8) -> bytes:
    """The int8 form of an fp32 graph from `to_onnx`, its activation ranges read off `calibration`
    (inputs as the graph takes them); serialized."""
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.left = iter([{"input": calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.left, None)

    # onnxruntime logs advice to run its shape pre-processing first to the root logger on every
    # call: measured on VGG19, it made the int8 graph no faster here.
    def advice(record):
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, src)
        root.addFilter(advice)
        try:
            quantize_static(str(src), str(dst), Batches(), quant_format=QuantFormat.QOperator,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            extra_options={"WeightSymmetric": True})
        finally:
            root.removeFilter(advice)
        return dst.read_bytes()


def _int8_session(model, calibration, saved, threads):
    """A session on the int8 graph: read from `saved` when it is there and loads, else quantised
    now and written there atomically (a damaged file is rebuilt, never trusted)."""
    import onnx

    from likepred.files import write_atomic

    if saved is not None and os.path.exists(saved):
        try:
            return onnx_session(onnx.load(saved), threads)
        except Exception as e:  # onnx and onnxruntime raise their own kinds on a damaged file
            log.warning("image features: the int8 network %s does not load (%s): rebuilding it", saved,
                        str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
    log.info("image features: quantising %s to int8 (once; ~35 s for VGG19)", model.name)
    raw = quantize(to_onnx(model), calibration)
    if saved is not None:
        write_atomic(saved, raw)
    return onnx_session(onnx.load_from_string(raw), threads)


def keras_runner(model):
    """model.predict without its per-call overhead: one jitted call per batch shape."""
    def run(x):
        return np.asarray(model.predict(x, batch_size=len(x), verbose=0))
    return run


def runner(model, runtime: str = "auto", precision: str = "fp32", calibration=None, saved=None):
    """(fn: float32 NHWC batch -> features, the runtime's name) for a built Keras model.

    `precision="int8"` (ONNX Runtime only; the name is then "onnx-int8") needs `calibration`,
    inputs as the model takes them (see `calibration_images`); `saved`: where the int8 graph
    is kept between runs."""
    if runtime not in RUNTIMES:
        from likepred.errors import ConfigError

        raise ConfigError(f"images.extract_runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime in ("auto", "onnx"):
        why = None
        if not available():
            why = "onnxruntime is not installed (pip install onnx onnxruntime)"
        else:
            try:
                # a sweep job's thread cap (OMP_NUM_THREADS, set by likepred.tracking.sweep) holds here too
                threads = os.environ.get("OMP_NUM_THREADS")
                if precision == "int8":
                    session = _int8_session(model, calibration, saved, threads)
                else:
                    session = onnx_session(to_onnx(model), threads)
            except Unsupported as e:
                why = f"the converter does not handle {e}"
            else:
                name = "onnx-int8" if precision == "int8" else "onnx"
                log.info("image features: %s on ONNX Runtime%s", model.name, ", int8" if precision == "int8" else "")
                return (lambda x: session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]), name
        if runtime == "onnx":
            from likepred.errors import ConfigError

            raise ConfigError(f"images.extract_runtime=onnx: {why}; use auto or keras")
        log.info("image features: %s on Keras (%s)", model.name, why)
    return keras_runner(model), "keras"
