"""mlp: the seed MLP on MNIST-shaped data.

784 -> width (128) ReLU -> 10 logits, softmax cross-entropy from logits,
Adam(1e-3), batch 128, accuracy tracked during training and on a validation
set. Uses MNIST when a local copy exists (``--data PATH`` or the Keras cache
file); otherwise deterministic synthetic MNIST-shaped data (loops/data.py).
"""

from __future__ import annotations

import keras
from tf_loopbench.loops.base import WORKLOADS, Dataset
from tf_loopbench.loops.data import IMAGE_PIXELS, N_CLASSES, mnist_like, mnist_train_size
from tf_loopbench.loops.workloads.supervised import SupervisedWorkload

SEED_WIDTH = 128


@WORKLOADS.register("mlp")
class MLP(SupervisedWorkload):
    default_batch_size = 128
    description = "MLP 784 -> 128 ReLU -> 10, softmax cross-entropy, Adam(1e-3), MNIST-shaped"
    val_metric_name = "accuracy"

    @property
    def width(self) -> int:
        return self.config.width or SEED_WIDTH

    def n_examples(self) -> int:
        return mnist_train_size(self.config.data_size, self.config.data_path)

    def make_data(self) -> Dataset:
        x_train, y_train, x_val, y_val, source = mnist_like(
            self.config.seed, self.config.data_size, self.config.data_path
        )
        return Dataset(
            train={"x": x_train, "y": y_train}, val={"x": x_val, "y": y_val}, source=source
        )

    def make_model(self) -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((IMAGE_PIXELS,)),
                keras.layers.Dense(self.width, activation="relu"),
                keras.layers.Dense(N_CLASSES),
            ],
            name="mlp",
        )

    def make_loss(self) -> keras.losses.Loss:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(learning_rate=1e-3)

    def make_metrics(self) -> dict[str, keras.metrics.Metric]:
        return {"accuracy": keras.metrics.SparseCategoricalAccuracy(name="accuracy")}

    def flops_per_example(self) -> float:
        hidden, logits = IMAGE_PIXELS * self.width, self.width * N_CLASSES
        # both layers: forward and weight gradient; only the logits layer also needs
        # its input gradient (the hidden layer's input is data)
        return 4.0 * hidden + 6.0 * logits
