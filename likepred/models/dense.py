"""The study's metadata net (approach 1): Dense 80-30-10-1, ReLU."""

from dataclasses import dataclass
from typing import ClassVar

from likepred.config.schema import NetConfig, dropout_field, widths
from likepred.models import register


@dataclass
class DenseConfig(NetConfig):
    INPUTS: ClassVar[tuple] = ("meta",)  # feature blocks it reads
    layers: list[int] = widths(80, 30, 10)
    dropout: float = dropout_field(0.2)


def normalized_input(name, shape, stats):
    import keras

    inp = keras.Input(shape=shape, name=name)
    mean, var = stats[name]
    return inp, keras.layers.Normalization(mean=mean, variance=var, name=f"{name}_norm")(inp)


@register("dense_meta", keras=True, schema=DenseConfig)
def dense_meta(specs, cfg, stats):
    import keras
    from keras import layers

    inp, x = normalized_input("meta", specs["meta"], stats)
    for i, width in enumerate(cfg.layers):
        x = layers.Dense(width, activation=cfg.activation, name=f"dense_{i}")(x)
        if cfg.dropout:
            x = layers.Dropout(cfg.dropout)(x)
    out = layers.Dense(1, activation=cfg.output_activation, name="out")(x)
    return keras.Model({"meta": inp}, out, name="dense_meta")
