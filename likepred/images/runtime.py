"""Run a frozen Keras feature network on the fastest runtime at hand.

On CPUs, ONNX Runtime runs VGG-style nets (convolutions, pooling, dense layers) faster than
Keras on JAX, whose CPU convolutions are slow (`benchmarks/vgg19.py` prints both, and Keras on
TensorFlow where it is installed). So a plain sequential net is converted once, in memory, to
an ONNX graph with its weights, and run by onnxruntime. Anything else (branches, batch norm,
another layer kind), or onnxruntime missing (`pip install -e ".[onnx]"`), runs on Keras, with
a log line saying why (`images.extract_runtime=onnx` refuses to).

No Keras import here: the caller hands over the built model.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "keras")


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


def keras_runner(model):
    """model.predict without its per-call overhead: one jitted call per batch shape."""
    def run(x):
        return np.asarray(model.predict(x, batch_size=len(x), verbose=0))
    return run


def runner(model, runtime: str = "auto"):
    """(fn: float32 NHWC batch -> features, the runtime's name) for a built Keras model."""
    if runtime not in RUNTIMES:
        from likepred.errors import ConfigError

        raise ConfigError(f"images.extract_runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime in ("auto", "onnx"):
        why = None
        if not available():
            why = "onnxruntime is not installed (pip install -e \".[onnx]\")"
        else:
            try:
                # a sweep job's thread cap (OMP_NUM_THREADS, set by likepred.tracking.sweep) holds here too
                session = onnx_session(to_onnx(model), os.environ.get("OMP_NUM_THREADS"))
            except Unsupported as e:
                why = f"the converter does not handle {e}"
            else:
                log.info("image features: %s on ONNX Runtime", model.name)
                return (lambda x: session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]), "onnx"
        if runtime == "onnx":
            from likepred.errors import ConfigError

            raise ConfigError(f"images.extract_runtime=onnx: {why}; use auto or keras")
        log.info("image features: %s on Keras (%s)", model.name, why)
    return keras_runner(model), "keras"
