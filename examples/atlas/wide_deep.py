"""The wide-and-deep model of the Keras example "Structured data learning with Wide,
Deep, and Cross networks" (keras.io/examples/structured_data/wide_deep_cross_networks).

Covertype-shaped rows: ten numeric features and two categorical ones
(Wilderness_Area, 4 values; Soil_Type, 40), each a named input. Wide part: the
categories one-hot beside the numbers, batch-normalized. Deep part: the
categories embedded (sqrt(vocabulary) dimensions) beside the numbers, then
twice Dense(32) -> BatchNormalization -> ReLU -> Dropout(0.1). Both joined into
Dense(7, softmax); Adam(1e-3), sparse categorical cross-entropy, batch 265,
accuracy, as in the example: many small layers, a step where dispatch weighs
more than arithmetic. The data are random; the example feeds the categories as
strings through StringLookup, here they come as their indices.

    loopbench run --model examples/atlas/wide_deep.py:make --quick
"""

import math

import keras
import numpy as np

NUMERIC = (
    "Elevation",
    "Aspect",
    "Slope",
    "Horizontal_Distance_To_Hydrology",
    "Vertical_Distance_To_Hydrology",
    "Horizontal_Distance_To_Roadways",
    "Hillshade_9am",
    "Hillshade_Noon",
    "Hillshade_3pm",
    "Horizontal_Distance_To_Fire_Points",
)
CATEGORICAL = {"Wilderness_Area": 4, "Soil_Type": 40}
CLASSES = 7
HIDDEN_UNITS = (32, 32)
EXAMPLES = 20_000  # Covertype has 581,012 rows


def encode(inputs, use_embedding):
    encoded = []
    for name, vocabulary in CATEGORICAL.items():
        if use_embedding:
            dims = int(math.sqrt(vocabulary))
            value = keras.layers.Embedding(vocabulary, dims)(inputs[name])
            encoded.append(keras.layers.Flatten()(value))
        else:
            encoded.append(keras.layers.CategoryEncoding(vocabulary, "one_hot")(inputs[name]))
    encoded += [inputs[name] for name in NUMERIC]
    return keras.layers.concatenate(encoded)


def make(examples=EXAMPLES):
    inputs = {name: keras.Input(shape=(1,), name=name) for name in NUMERIC}
    inputs |= {name: keras.Input(shape=(1,), name=name, dtype="int32") for name in CATEGORICAL}
    wide = keras.layers.BatchNormalization()(encode(inputs, use_embedding=False))
    deep = encode(inputs, use_embedding=True)
    for units in HIDDEN_UNITS:
        deep = keras.layers.Dense(units)(deep)
        deep = keras.layers.BatchNormalization()(deep)
        deep = keras.layers.ReLU()(deep)
        deep = keras.layers.Dropout(0.1)(deep)
    merged = keras.layers.concatenate([wide, deep])
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(merged)
    model = keras.Model(inputs=inputs, outputs=outputs, name="wide_deep")

    rng = np.random.default_rng(0)
    x = {name: rng.standard_normal((examples, 1), dtype=np.float32) for name in NUMERIC}
    x |= {
        name: rng.integers(0, vocabulary, size=(examples, 1), dtype=np.int32)
        for name, vocabulary in CATEGORICAL.items()
    }
    return {
        "name": "wide_deep",
        "model": model,
        "loss": keras.losses.SparseCategoricalCrossentropy(),
        "optimizer": keras.optimizers.Adam(learning_rate=1e-3),
        "metrics": [keras.metrics.SparseCategoricalAccuracy()],
        "x": x,
        "y": rng.integers(0, CLASSES, size=examples),
        "batch_size": 265,
    }


def tiny():
    """256 examples: the same model, for tests."""
    return make(examples=256)
