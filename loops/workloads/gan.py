"""gan: the seed GAN, two networks, two GradientTapes, two Adam(2e-4) optimizers.

Generator 100 -> width (128) ReLU -> 784 tanh; discriminator 784 -> width ReLU
-> 1 logit; sigmoid cross-entropy from logits (discriminator: real -> 1, fake
-> 0; generator: fake -> 1), as in TensorFlow's DCGAN tutorial. Real images
are the mlp data scaled to [-1, 1]. The generator's noise is a data column
``z`` drawn once from a seeded NumPy generator, so every loop style sees
identical noise in the same order (stateful TF RNGs differ between eager,
graph and XLA execution).

``fit`` trains it through a ``keras.Model`` subclass that overrides
``train_step`` to call this workload's step: fit can train a GAN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tf_loopbench.loops.base import WORKLOADS, Batch, Dataset, TrainState, Workload
from tf_loopbench.loops.data import IMAGE_PIXELS, mnist_like, mnist_train_size

NOISE_DIM = 100  # the seed's latent size
SEED_WIDTH = 128


class GANTrainerModel(keras.Model):
    """``Model.fit`` entry point for a GAN: ``train_step`` is the workload's step."""

    def __init__(self, workload: GAN, state: TrainState) -> None:
        super().__init__(name="gan")
        self.workload = workload
        self.state = state
        self.generator = state.models["generator"]
        self.discriminator = state.models["discriminator"]

    def call(self, inputs: Any, training: bool = False) -> Any:
        # fit's x is the batch dict; under a strategy Keras builds the model on one first
        noise = inputs["z"] if isinstance(inputs, Mapping) else inputs
        return self.discriminator(self.generator(noise, training=training), training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        if isinstance(data, tuple):  # Keras passes (x,) when y is None
            data = data[0]
        logs = self.workload.train_step(self.state, data)
        # under a strategy the losses are this replica's share of the global-batch mean
        # and Keras averages the replicas' logs: unscale them, as Keras's own train_step
        # does for its loss (1 replica without a strategy)
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        return {name: value * replicas for name, value in logs.items()}


@WORKLOADS.register("gan")
class GAN(Workload):
    default_batch_size = 128
    scales_loss = True
    distributable = True
    description = "GAN: G 100 -> 128 -> 784 tanh, D 784 -> 128 -> 1, two tapes, two Adam(2e-4)"

    def __init__(self, config=None) -> None:
        super().__init__(config)
        # per-example losses, averaged by the caller (``_losses``)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)

    @property
    def width(self) -> int:
        return self.config.width or SEED_WIDTH

    @property
    def fit_reports_running_mean(self) -> bool:
        return False

    def n_examples(self) -> int:
        return mnist_train_size(self.config.data_size, self.config.data_path)

    def make_data(self) -> Dataset:
        x_train, _, x_val, _, source = mnist_like(
            self.config.seed, self.config.data_size, self.config.data_path
        )
        rng = np.random.default_rng(self.config.seed + 7)
        z_train = rng.standard_normal((len(x_train), NOISE_DIM), dtype=np.float32)
        z_val = rng.standard_normal((len(x_val), NOISE_DIM), dtype=np.float32)
        return Dataset(
            train={"x": x_train * 2.0 - 1.0, "z": z_train},
            val={"x": x_val * 2.0 - 1.0, "z": z_val},
            source=f"{source}, noise(seed={self.config.seed + 7})",
        )

    def build(self) -> TrainState:
        keras.utils.set_random_seed(self.config.seed)
        generator = keras.Sequential(
            [
                keras.Input((NOISE_DIM,)),
                keras.layers.Dense(self.width, activation="relu"),
                keras.layers.Dense(IMAGE_PIXELS, activation="tanh"),
            ],
            name="generator",
        )
        discriminator = keras.Sequential(
            [
                keras.Input((IMAGE_PIXELS,)),
                keras.layers.Dense(self.width, activation="relu"),
                keras.layers.Dense(1),
            ],
            name="discriminator",
        )
        d_optimizer = keras.optimizers.Adam(learning_rate=2e-4)
        g_optimizer = keras.optimizers.Adam(learning_rate=2e-4)
        d_optimizer.build(discriminator.trainable_variables)
        g_optimizer.build(generator.trainable_variables)
        return TrainState(
            models={"generator": generator, "discriminator": discriminator},
            optimizers={"discriminator": d_optimizer, "generator": g_optimizer},
        )

    def _losses(self, state: TrainState, batch: Batch, training: bool) -> tuple[Any, Any]:
        """(discriminator loss, generator loss). Training: per-example losses averaged
        over the global batch (``tf.nn.compute_average_loss``: this replica's share under
        a strategy); evaluation: a plain mean."""
        generator, discriminator = state.models["generator"], state.models["discriminator"]
        mean = tf.nn.compute_average_loss if training else tf.reduce_mean
        fake = generator(batch["z"], training=training)
        real_logits = discriminator(batch["x"], training=training)
        fake_logits = discriminator(fake, training=training)
        d_loss = mean(self.bce(tf.ones_like(real_logits), real_logits)) + mean(
            self.bce(tf.zeros_like(fake_logits), fake_logits)
        )
        g_loss = mean(self.bce(tf.ones_like(fake_logits), fake_logits))
        return d_loss, g_loss

    def train_step(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        generator, discriminator = state.models["generator"], state.models["discriminator"]
        g_optimizer, d_optimizer = state.optimizers["generator"], state.optimizers["discriminator"]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            d_loss, g_loss = self._losses(state, batch, training=True)
            # each optimizer scales its own loss under mixed_float16 (identity otherwise)
            g_scaled, d_scaled = g_optimizer.scale_loss(g_loss), d_optimizer.scale_loss(d_loss)
        g_grads = g_tape.gradient(g_scaled, generator.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_grads, generator.trainable_variables, strict=True))
        d_optimizer.apply_gradients(zip(d_grads, discriminator.trainable_variables, strict=True))
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def evaluate(self, state: TrainState, data: Mapping[str, np.ndarray]) -> dict[str, float]:
        d_loss, g_loss = self._losses(state, data, training=False)
        return {"loss": float(d_loss + g_loss), "d_loss": float(d_loss), "g_loss": float(g_loss)}

    def fit_model(self, state: TrainState) -> keras.Model:
        model = GANTrainerModel(self, state)
        # The optimizers live in the state; compile() keeps Keras's defaults
        # (jit_compile="auto", steps_per_execution=1).
        model.compile()
        return model

    def fit_arguments(self, train: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        return {"x": train["x"], "z": train["z"]}, None

    def flops_per_example(self) -> float:
        g_hidden, g_out = NOISE_DIM * self.width, self.width * IMAGE_PIXELS
        d_hidden, d_out = IMAGE_PIXELS * self.width, self.width * 1
        # forward: the generator once, the discriminator on real and on fake
        forward = 2 * (g_hidden + g_out) + 2 * 2 * (d_hidden + d_out)
        # generator tape: input gradients back through the discriminator on fake,
        # then both generator weight gradients and g_out's input gradient (z is data)
        generator_step = 2 * (d_out + d_hidden) + 2 * 2 * g_out + 2 * g_hidden
        # discriminator tape, real and fake: weight gradients of both layers and
        # d_out's input gradient; d_hidden's input (the images) needs none
        discriminator_step = 2 * 2 * (d_hidden + d_out) + 2 * 2 * d_out
        return float(forward + generator_step + discriminator_step)
