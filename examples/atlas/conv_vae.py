"""The Keras example "Variational AutoEncoder" (keras.io/examples/generative/vae):
a convolutional VAE on MNIST-shaped images with its own training step.

Encoder: Conv2D(32, 3, stride 2) -> Conv2D(64, 3, stride 2) -> Flatten ->
Dense(16) -> (mean, log-variance) of a 2-d latent. Decoder: Dense(7*7*64) ->
Conv2DTranspose(64, 3, stride 2) -> Conv2DTranspose(32, 3, stride 2) ->
Conv2DTranspose(1, 3, sigmoid). The step minimises the summed reconstruction
cross-entropy plus the KL divergence with Adam, batch 128, as the example does.

The example draws the sampling noise inside the step (``keras.random.normal``);
here it is data, drawn once with NumPy and fed beside the images (as
examples/vae.py does): TensorFlow's normal draws differ under XLA (only the
uniform ones, dropout's, are made equal, loops/xla_random.py), and fed noise is
the same in every loop style.

    loopbench run --model examples/atlas/conv_vae.py:make --quick
"""

import keras
import numpy as np
import tensorflow as tf

LATENT = 2
EXAMPLES = 12_000  # MNIST has 70,000 (the example trains on all of them)
INK = 0.2  # MNIST: about a fifth of the pixels are not background


class ConvVAE(keras.Model):
    def __init__(self):
        super().__init__(name="conv_vae")
        self.encoder = keras.Sequential(
            [
                keras.Input(shape=(28, 28, 1)),
                keras.layers.Conv2D(32, 3, activation="relu", strides=2, padding="same"),
                keras.layers.Conv2D(64, 3, activation="relu", strides=2, padding="same"),
                keras.layers.Flatten(),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(2 * LATENT),
            ],
            name="encoder",
        )
        self.decoder = keras.Sequential(
            [
                keras.Input(shape=(LATENT,)),
                keras.layers.Dense(7 * 7 * 64, activation="relu"),
                keras.layers.Reshape((7, 7, 64)),
                keras.layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same"),
                keras.layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same"),
                keras.layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same"),
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
        z_mean, z_log_var = model.encode(images)
        z = z_mean + tf.exp(0.5 * z_log_var) * noise
        reconstruction = model.decoder(z)
        reconstruction_loss = tf.reduce_mean(
            tf.reduce_sum(keras.losses.binary_crossentropy(images, reconstruction), axis=(1, 2))
        )
        kl = -0.5 * (1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
        kl_loss = tf.reduce_mean(tf.reduce_sum(kl, axis=1))
        loss = reconstruction_loss + kl_loss
    gradients = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights, strict=True))
    return {"loss": loss, "kl_loss": kl_loss}


def make(examples=EXAMPLES):
    rng = np.random.default_rng(0)
    shape = (examples, 28, 28, 1)
    # MNIST-like pixels: mostly background (0), a fifth ink in (0, 1]; uniform noise
    # everywhere would sit at the reconstruction loss's floor (ln 2 a pixel) from step 0
    images = np.where(rng.random(shape) < INK, rng.random(shape, dtype=np.float32), 0)
    images = images.astype(np.float32)
    noise = rng.standard_normal((examples, LATENT), dtype=np.float32)
    return {
        "name": "conv_vae",
        "model": ConvVAE(),
        "loss": "binary_crossentropy",
        "optimizer": keras.optimizers.Adam(),
        "x": {"image": images, "noise": noise},
        "y": images,
        "train_step": train_step,
        "batch_size": 128,
    }


def tiny():
    """256 examples: the same model, for tests."""
    return make(examples=256)
