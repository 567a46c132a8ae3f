"""The study's image nets: approach 2 (`cnn_meta`) and approach 4 (`alexnet_cnn`, `vgg19_dense`).

`cnn_meta` and `alexnet_cnn` read pixels: their `image` block streams from disk
(`likepred.images.dataset`). `vgg19_dense` reads the cached features of a frozen
pretrained CNN (the `cnn_features` extractor), so it trains like any dense net.
"""

from likepred.errors import ConfigError
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from likepred.config.schema import NetConfig, choice, dropout_field, rng, widths
from likepred.models import register
from likepred.models.dense import normalized_input


@dataclass
class CnnMetaConfig(NetConfig):
    INPUTS: ClassVar[tuple] = ("meta", "image")  # feature blocks it reads
    conv: list[int] = widths(16, 32, 64, 128, 256)
    kernel: int = rng(3, lo=1)
    pool: int = rng(2, lo=1)
    conv_dropout: float = dropout_field(0.25)
    meta_units: int = rng(10, lo=1)
    dense: list[int] = widths(500, 10)


@dataclass
class AlexNetConfig(NetConfig):
    INPUTS: ClassVar[tuple] = ("image",)  # feature blocks it reads
    conv: Any = field(default_factory=list)  # [{filters, kernel, strides, pool}, ...]
    batch_norm: bool = True
    pool_size: int = rng(3, lo=1)
    pool_strides: int = rng(2, lo=1)
    dense: list[int] = widths(1024, 256)
    dropout: float = dropout_field(0.5)


@dataclass
class Vgg19DenseConfig(NetConfig):
    INPUTS: ClassVar[tuple] = ("image_features",)  # feature blocks it reads
    network: str = "vgg19"
    layer: Optional[str] = None
    input_size: Optional[int] = rng(None, lo=32)
    weights: Optional[str] = choice("imagenet", None)
    weights_path: Optional[str] = None
    layers: list[int] = widths(2000, 1000, 50)


def _need(specs, block, model, features):
    if block not in specs:
        raise ConfigError(f"model={model} needs the `{block}` input block, which features has not got "
                          f"(it has: {', '.join(specs) or 'none'}); use features={features}")


def _dense_head(x, widths, activation, dropout, out_activation):
    from keras import layers

    for i, width in enumerate(widths):
        x = layers.Dense(width, activation=activation, name=f"dense_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return layers.Dense(1, activation=out_activation, name="out")(x)


@register("cnn_meta", keras=True, schema=CnnMetaConfig)
def cnn_meta(specs, cfg, stats):
    import keras
    from keras import layers

    _need(specs, "image", "cnn_meta", "metadata_image")
    _need(specs, "meta", "cnn_meta", "metadata_image")
    image = keras.Input(shape=specs["image"], name="image")
    x = image
    for i, filters in enumerate(cfg.conv):
        x = layers.Conv2D(filters, cfg.kernel, padding="same", activation=cfg.activation, name=f"conv_{i}")(x)
        x = layers.MaxPooling2D(cfg.pool, padding="same")(x)  # "same": small inputs never shrink to 0
        if cfg.conv_dropout:
            x = layers.Dropout(cfg.conv_dropout)(x)
    x = layers.Flatten()(x)
    meta, m = normalized_input("meta", specs["meta"], stats)
    m = layers.Dense(cfg.meta_units, activation=cfg.activation, name="meta_dense")(m)
    x = layers.Concatenate()([x, m])
    out = _dense_head(x, cfg.dense, cfg.activation, cfg.dropout, cfg.output_activation)
    return keras.Model({"image": image, "meta": meta}, out, name="cnn_meta")


@register("alexnet_cnn", keras=True, schema=AlexNetConfig)
def alexnet_cnn(specs, cfg, stats):
    import keras
    from keras import layers

    _need(specs, "image", "alexnet_cnn", "image")
    image = keras.Input(shape=specs["image"], name="image")
    x = image
    for i, c in enumerate(cfg.conv):
        x = layers.Conv2D(c.filters, c.kernel, strides=c.get("strides", 1), padding="same", name=f"conv_{i}")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization()(x)
        x = layers.Activation(cfg.activation)(x)
        if c.get("pool"):
            x = layers.MaxPooling2D(cfg.pool_size, strides=cfg.pool_strides, padding="same")(x)
    x = layers.Flatten()(x)
    out = _dense_head(x, cfg.dense, cfg.activation, cfg.dropout, cfg.output_activation)
    return keras.Model({"image": image}, out, name="alexnet_cnn")


@register("vgg19_dense", keras=True, schema=Vgg19DenseConfig)
def vgg19_dense(specs, cfg, stats):
    import keras
    from keras import layers

    _need(specs, "image_features", "vgg19_dense", "image_cnn")
    inputs, parts = {}, []
    for name, shape in specs.items():
        if name == "image_features":  # raw CNN activations, as the study fed them
            inputs[name] = keras.Input(shape=shape, name=name)
            parts.append(inputs[name])
        elif len(shape) == 1:  # any tabular block beside them, standardised
            inputs[name], x = normalized_input(name, shape, stats)
            parts.append(x)
        else:
            raise ConfigError(f"model=vgg19_dense reads feature vectors; the `{name}` block is images: "
                              "use features=image_cnn")
    x = parts[0] if len(parts) == 1 else layers.Concatenate()(parts)
    out = _dense_head(x, cfg.layers, cfg.activation, cfg.dropout, cfg.output_activation)
    return keras.Model(inputs, out, name="vgg19_dense")
