"""The Keras example "Bidirectional LSTM on IMDB"
(keras.io/examples/nlp/bidirectional_lstm_imdb).

Embedding(20,000 words, 128) -> Bidirectional(LSTM(64), sequences) ->
Bidirectional(LSTM(64)) -> Dense(1, sigmoid); Adam, binary cross-entropy,
batch 32, accuracy, as in the example. The data are random IMDB-shaped token ids
(the example keeps 200 tokens a review; 25,000 reviews), 30% of them labelled
positive (``POSITIVE``).

    loopbench run --model examples/atlas/lstm_imdb.py:make --quick
"""

import keras
import numpy as np

MAX_FEATURES, MAXLEN = 20_000, 200
EXAMPLES = 6_000
#: the share of positive reviews (IMDB's is half): random labels split evenly keep the
#: loss at ln 2, where a few steps cannot move it and the equal-work check cannot
#: tell one step more; uneven, the output's bias learns from the first step
POSITIVE = 0.3


def make(maxlen=MAXLEN, examples=EXAMPLES):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(MAX_FEATURES, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs, name="lstm_imdb")

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, MAX_FEATURES, size=(examples, maxlen), dtype=np.int32)
    labels = (rng.random(examples) < POSITIVE).astype(np.float32)
    return {
        "name": "lstm_imdb",
        "model": model,
        "loss": "binary_crossentropy",
        "optimizer": "adam",
        "metrics": ["accuracy"],
        "x": tokens,
        "y": labels,
        "batch_size": 32,
    }


def tiny():
    """Reviews of 8 tokens, 256 of them: the same layers, for tests."""
    return make(maxlen=8, examples=256)
