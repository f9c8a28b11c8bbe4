"""linear: the seed guide's linear regression, 2 features -> 1, MSE, SGD(lr=0.01).

Data: x ~ N(0, 1) with 2 features, y = x @ W + b + N(0, 0.01^2) with the known
W = [2, -3.4] and b = 4.2, seeded. The default data size (131072 examples,
batch 4096) makes a step more than dispatch noise; the model is tiny by
design, so this workload shows a loop style's per-step overhead at its purest.
"""

from __future__ import annotations

import keras
import numpy as np
from tf_loopbench.loops.base import WORKLOADS, Dataset
from tf_loopbench.loops.workloads.supervised import SupervisedWorkload

TRUE_W = np.array([[2.0], [-3.4]], dtype=np.float32)
TRUE_B = np.float32(4.2)
DEFAULT_SIZE = 131_072


@WORKLOADS.register("linear")
class Linear(SupervisedWorkload):
    default_batch_size = 4096
    description = "linear regression 2 -> 1, MSE, SGD(0.01), synthetic data from known W, b"

    def n_examples(self) -> int:
        return self.config.data_size or DEFAULT_SIZE

    def make_data(self) -> Dataset:
        n = self.config.data_size or DEFAULT_SIZE
        rng = np.random.default_rng(self.config.seed)
        n_val = max(n // 8, 64)
        x = rng.standard_normal((n + n_val, 2), dtype=np.float32)
        y = (x @ TRUE_W + TRUE_B + 0.01 * rng.standard_normal((n + n_val, 1))).astype(np.float32)
        return Dataset(
            train={"x": x[:n], "y": y[:n]},
            val={"x": x[n:], "y": y[n:]},
            source=f"synthetic-linear(seed={self.config.seed}, W=[2,-3.4], b=4.2)",
        )

    def make_model(self) -> keras.Model:
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)], name="linear")

    def make_loss(self) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.SGD(learning_rate=0.01)

    def flops_per_example(self) -> float:
        # one dense layer 2 -> 1 on data: forward and weight gradient, no input gradient
        return 4.0 * 2 * 1
