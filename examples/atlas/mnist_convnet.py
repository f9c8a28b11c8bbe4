"""The Keras example "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet).

Conv2D(32, 3, ReLU) -> MaxPool -> Conv2D(64, 3, ReLU) -> MaxPool -> Flatten
-> Dropout(0.5) -> Dense(10, softmax); categorical cross-entropy on one-hot
labels, Adam, batch 128, accuracy, as in the example. The data are random and
MNIST-shaped (28x28x1 floats in [0, 1]); a step's time does not depend on the values.

    loopbench run --model examples/atlas/mnist_convnet.py:make --quick
"""

import keras
import numpy as np

EXAMPLES = 12_000  # the example trains on 60,000; fewer keep each worker's data small


def make(examples=EXAMPLES):
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="mnist_convnet",
    )
    rng = np.random.default_rng(0)
    images = rng.random((examples, 28, 28, 1), dtype=np.float32)
    labels = keras.utils.to_categorical(rng.integers(0, 10, size=examples), 10)
    return {
        "name": "mnist_convnet",
        "model": model,
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "metrics": ["accuracy"],
        "x": images,
        "y": labels,
        "batch_size": 128,
    }


def tiny():
    """256 examples: the same model, for tests."""
    return make(examples=256)
