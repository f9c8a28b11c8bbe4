"""The MLP of the Keras guide "Writing a training loop from scratch in TensorFlow".

784 -> 64 ReLU -> 64 ReLU -> 10 logits, sparse categorical cross-entropy from
logits, Adam(1e-3), batch 32, accuracy tracked; the last 10,000 of 60,000
examples held out for validation, as in the guide. Run it in every loop style:

    loopbench run --model examples/keras_guide_mlp.py:make --quick
"""

import keras
import numpy as np


def mnist_shaped(n, seed=0):
    """n random 28x28 images (flattened to 784 floats in [0, 1]) and labels 0-9.

    The step time does not depend on the values; for the real digits use
    ``keras.datasets.mnist.load_data()`` (it downloads them once).
    """
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, size=n)


def make():
    inputs = keras.Input(shape=(784,), name="digits")
    x1 = keras.layers.Dense(64, activation="relu")(inputs)
    x2 = keras.layers.Dense(64, activation="relu")(x1)
    outputs = keras.layers.Dense(10, name="predictions")(x2)
    model = keras.Model(inputs=inputs, outputs=outputs)

    x, y = mnist_shaped(60_000)
    return {
        "name": "keras_guide_mlp",
        "model": model,
        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "optimizer": keras.optimizers.Adam(learning_rate=1e-3),
        "metrics": [keras.metrics.SparseCategoricalAccuracy()],
        "x": x[:-10_000],
        "y": y[:-10_000],
        "validation": (x[-10_000:], y[-10_000:]),
        "batch_size": 32,
    }
