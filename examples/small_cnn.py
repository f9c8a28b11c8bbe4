"""A small CNN on MNIST-shaped images: convolutions, batch normalization, pooling, Dense.

Conv2D(16) -> BatchNormalization -> ReLU -> MaxPool -> Conv2D(32, ReLU) -> MaxPool
-> Flatten -> Dense(10, L2-regularised). Loss, optimizer and metric are given by
name, as ``compile`` takes them. BatchNormalization's moving statistics and the
L2 penalty are trained alike in every loop style:

    loopbench run --model examples/small_cnn.py:make --quick
"""

import keras
import numpy as np


def make():
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(16, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L2(1e-4)),
        ],
        name="small_cnn",
    )
    # random MNIST-shaped data: the step time does not depend on the values
    rng = np.random.default_rng(0)
    images = rng.random((20_000, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, size=20_000)
    return {
        "name": "small_cnn",
        "model": model,
        "loss": "sparse_categorical_crossentropy",
        "optimizer": "adam",
        "metrics": ["accuracy"],
        "x": images,
        "y": labels,
        "batch_size": 64,
    }
