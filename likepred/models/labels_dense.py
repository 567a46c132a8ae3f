"""The study's positivity net for image labels (approaches 3 and 5):
Dense 200 (L1 activity) - dropout 0.2 - Dense 100 (L1 activity) - Dense 50 - Dense 1."""

from likepred.errors import ConfigError
from dataclasses import dataclass

from likepred.config.schema import NetConfig, items, widths
from likepred.models import register
from likepred.models.dense import normalized_input


@dataclass
class LabelsDenseConfig(NetConfig):
    layers: list[int] = widths(200, 100, 50)
    l1: list[float] = items(1e-4, 1e-4, 0.0, lo=0)
    dropout: list[float] = items(0.2, 0.0, 0.0, lo=0, hi=1, hi_open=True)  # one per layer


@register("labels_dense", keras=True, schema=LabelsDenseConfig)
def labels_dense(specs, cfg, stats):
    import keras
    from keras import layers, regularizers

    if not len(cfg.layers) == len(cfg.l1) == len(cfg.dropout):
        raise ConfigError("model.layers, model.l1 and model.dropout must be lists of the same length")
    inputs, parts = {}, []
    for name in sorted(specs):  # every tabular block: labels alone, or with metadata
        inputs[name], x = normalized_input(name, specs[name], stats)
        parts.append(x)
    x = parts[0] if len(parts) == 1 else layers.Concatenate(name="blocks")(parts)
    for i, (width, l1, drop) in enumerate(zip(cfg.layers, cfg.l1, cfg.dropout)):
        reg = regularizers.L1(l1) if l1 else None
        x = layers.Dense(width, activation=cfg.activation, activity_regularizer=reg, name=f"dense_{i}")(x)
        if drop:
            x = layers.Dropout(drop)(x)
    out = layers.Dense(1, activation=cfg.output_activation, name="out")(x)
    return keras.Model(inputs, out, name="labels_dense")
