"""The training math shared by the single-model workloads (linear, mlp).

One model, one optimizer, one loss object, optional metrics: the same step
Keras's default ``Model.train_step`` takes (forward, loss, gradients,
``apply_gradients``, metric update). ``fit`` compiles the same model with the
same loss object, optimizer and metrics, so both run the same math; the
equivalence tests check it step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tf_loopbench.loops.base import Batch, TrainState, Workload


class SupervisedWorkload(Workload):
    """x -> model -> loss(y, prediction); subclasses supply model, loss, optimizer, data."""

    scales_loss = True
    distributable = True

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.loss_fn = self.make_loss()  # fit's compiled loss (a mean over the batch)
        # the custom step's: one loss per example, averaged over the global batch
        self.per_example_loss_fn = type(self.loss_fn).from_config(
            {**self.loss_fn.get_config(), "reduction": None}
        )

    def make_loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def make_model(self) -> keras.Model:
        raise NotImplementedError

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        raise NotImplementedError

    def make_metrics(self) -> dict[str, keras.metrics.Metric]:
        return {}

    def build(self) -> TrainState:
        keras.utils.set_random_seed(self.config.seed)
        model = self.make_model()
        optimizer = self.make_optimizer()
        optimizer.build(model.trainable_variables)
        return TrainState(
            models={"model": model},
            optimizers={"optimizer": optimizer},
            metrics=self.make_metrics(),
        )

    def train_step(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        model, optimizer = state.models["model"], state.optimizers["optimizer"]
        x, y = batch["x"], batch["y"]
        with tf.GradientTape() as tape:
            prediction = model(x, training=True)
            # the mean over the global batch: this replica's share under a strategy, the
            # batch mean without one (the distributed-training guides' form)
            loss = tf.nn.compute_average_loss(self.per_example_loss_fn(y, prediction))
            # as Keras's train_step: the loss itself under float32 and bfloat16, times
            # the dynamic loss scale under mixed_float16 (the optimizer unscales)
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        for metric in state.metrics.values():
            metric.update_state(y, prediction)
        return {"loss": loss}

    def evaluate(self, state: TrainState, data: Mapping[str, np.ndarray]) -> dict[str, float]:
        model = state.models["model"]
        prediction = model(data["x"], training=False)
        # a plain mean (Keras's reducing losses divide by the replicas inside a scope)
        result = {"loss": float(tf.reduce_mean(self.per_example_loss_fn(data["y"], prediction)))}
        for name, metric in self.make_metrics().items():
            metric.update_state(data["y"], prediction)
            result[name] = float(metric.result())
        return result

    def fit_model(self, state: TrainState) -> keras.Model:
        model = state.models["model"]
        # Keras's defaults otherwise: jit_compile="auto", steps_per_execution=1.
        model.compile(
            optimizer=state.optimizers["optimizer"],
            loss=self.loss_fn,
            metrics=list(state.metrics.values()) or None,
        )
        return model

    def fit_arguments(self, train: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        return train["x"], train["y"]
