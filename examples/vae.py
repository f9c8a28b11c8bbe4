"""A variational autoencoder with its own training step (``train_step`` in the dict).

Encoder 784 -> 256 ReLU -> (mean, log-variance) of a 2-d latent; decoder
2 -> 256 ReLU -> 784 sigmoid. The step samples z = mean + sigma * noise and
minimises reconstruction cross-entropy plus the KL divergence, as Keras's VAE
example does. Every loop style runs this step (fit through a wrapper model).

The noise is data: drawn once with NumPy and fed beside the images, so every
loop style sees the same noise. TensorFlow's random ops give other numbers under
XLA than in eager or graph mode (stateless ones too), so noise drawn inside the
step would make the styles train differently.

``loss`` is only the yardstick every style's validation loss is compared on:
reconstruction cross-entropy of the decoded mean.

    loopbench run --model examples/vae.py:make --quick
"""

import keras
import numpy as np
import tensorflow as tf

LATENT = 2
PIXELS = 784


class VAE(keras.Model):
    def __init__(self):
        super().__init__(name="vae")
        self.encoder = keras.Sequential(
            [
                keras.Input((PIXELS,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(2 * LATENT),
            ],
            name="encoder",
        )
        self.decoder = keras.Sequential(
            [
                keras.Input((LATENT,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(PIXELS, activation="sigmoid"),
            ],
            name="decoder",
        )

    def encode(self, images):
        mean, log_var = tf.split(self.encoder(images), 2, axis=-1)
        return mean, log_var

    def call(self, inputs):
        mean, _ = self.encode(inputs["image"])
        return self.decoder(mean)


def train_step(model, optimizer, batch):
    inputs, _ = batch
    images, noise = inputs["image"], inputs["noise"]
    with tf.GradientTape() as tape:
        mean, log_var = model.encode(images)
        z = mean + tf.exp(0.5 * log_var) * noise
        reconstruction = model.decoder(z)
        reconstruction_loss = PIXELS * keras.losses.binary_crossentropy(images, reconstruction)
        kl = -0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), axis=1)
        loss = tf.reduce_mean(reconstruction_loss + kl)
    gradients = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
    return {"loss": loss, "kl": tf.reduce_mean(kl)}


def make():
    rng = np.random.default_rng(0)
    images = rng.random((20_000, PIXELS), dtype=np.float32)
    noise = rng.standard_normal((20_000, LATENT), dtype=np.float32)
    return {
        "name": "vae",
        "model": VAE(),
        "loss": "binary_crossentropy",
        "optimizer": keras.optimizers.Adam(learning_rate=1e-3),
        "x": {"image": images, "noise": noise},
        "y": images,
        "train_step": train_step,
        "batch_size": 128,
    }
