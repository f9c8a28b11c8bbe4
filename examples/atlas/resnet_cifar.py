"""ResNet-20 (v1) on CIFAR-10-shaped images, after the Keras example "Trains a ResNet
on the CIFAR10 dataset" (keras-team/keras, examples/cifar10_resnet.py, 2018).

Conv(16) -> BatchNorm -> ReLU, then three stages of three residual blocks
(16, 32, 64 filters; each block conv-BN-ReLU-conv-BN, a strided 1x1 projection
where the shape changes, the sum, ReLU) -> global average pooling -> Dense(10,
softmax): 0.27 M parameters, He-normal kernels with L2(1e-4) as in the example;
Adam(1e-3), sparse categorical cross-entropy, batch 128. BatchNormalization's
moving statistics train alike in every loop style. The data are random
32x32x3 bytes, rescaled and centred in the model (the example subtracts the mean pixel).

    loopbench run --model examples/atlas/resnet_cifar.py:make --quick
"""

import keras
import numpy as np

EXAMPLES = 6_000  # CIFAR-10 has 50,000; fewer keep each worker's data small
STAGES = (16, 32, 64)
BLOCKS_PER_STAGE = 3  # depth 6 * 3 + 2 = 20


def conv_bn(x, filters, strides=1, activation=True):
    x = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(1e-4),
    )(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation("relu")(x) if activation else x


def make(blocks_per_stage=BLOCKS_PER_STAGE, examples=EXAMPLES):
    inputs = keras.Input(shape=(32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255, offset=-0.5)(inputs)  # the example subtracts the mean
    x = conv_bn(x, STAGES[0])
    for stage, filters in enumerate(STAGES):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, strides)
            y = conv_bn(y, filters, activation=False)
            if strides != 1:  # project the shortcut to the new shape
                x = keras.layers.Conv2D(
                    filters,
                    1,
                    strides=strides,
                    kernel_initializer="he_normal",
                    kernel_regularizer=keras.regularizers.L2(1e-4),
                )(x)
            x = keras.layers.Activation("relu")(keras.layers.add([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", kernel_initializer="he_normal")(x)
    model = keras.Model(inputs, outputs, name=f"resnet{6 * blocks_per_stage + 2}")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(examples, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=examples)
    return {
        "name": "resnet_cifar",
        "model": model,
        "loss": "sparse_categorical_crossentropy",
        "optimizer": keras.optimizers.Adam(learning_rate=1e-3),
        "metrics": ["accuracy"],
        "x": images,
        "y": labels,
        "batch_size": 128,
    }


def tiny():
    """ResNet-8 (one block a stage) on 256 images: the same layers, for tests."""
    return make(blocks_per_stage=1, examples=256)
