"""The Keras example "Text classification with Transformer"
(keras.io/examples/nlp/text_classification_with_transformer).

Token and position embeddings (vocabulary 20,000, 200 tokens, 32 dimensions)
-> one Transformer block (2-head self-attention, a 32-wide feed-forward layer,
layer normalization, Dropout(0.1) twice) -> global average pooling ->
Dropout(0.1) -> Dense(20, ReLU) -> Dropout(0.1) -> Dense(2, softmax); Adam,
sparse categorical cross-entropy, batch 32, accuracy, as in the example. The data
are random IMDB-shaped token ids (25,000 reviews of 200 tokens in the example), 30%
of them labelled positive (``POSITIVE``).

Dropout draws its masks inside the step; loops/xla_random.py makes XLA draw the
same masks as eager (docs/atlas.md, "Randomness in the step").

    loopbench run --model examples/atlas/text_transformer.py:make --quick
"""

import keras
import numpy as np

VOCAB, MAXLEN = 20_000, 200
EMBED, HEADS, FEED_FORWARD = 32, 2, 32
EXAMPLES = 12_000
#: the share of positive reviews (IMDB's is half): uneven, so that the loss moves from
#: the first steps (examples/atlas/lstm_imdb.py)
POSITIVE = 0.3


class TransformerBlock(keras.layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
        )
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = keras.ops.shape(x)[-1]
        positions = keras.ops.arange(start=0, stop=maxlen, step=1)
        return self.token_emb(x) + self.pos_emb(positions)


def make(maxlen=MAXLEN, examples=EXAMPLES):
    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    x = TokenAndPositionEmbedding(maxlen, VOCAB, EMBED)(inputs)
    x = TransformerBlock(EMBED, HEADS, FEED_FORWARD)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(20, activation="relu")(x)
    x = keras.layers.Dropout(0.1)(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="text_transformer")

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, size=(examples, maxlen), dtype=np.int32)
    labels = (rng.random(examples) < POSITIVE).astype(np.int64)
    return {
        "name": "text_transformer",
        "model": model,
        "loss": "sparse_categorical_crossentropy",
        "optimizer": "adam",
        "metrics": ["accuracy"],
        "x": tokens,
        "y": labels,
        "batch_size": 32,
    }


def tiny():
    """Reviews of 8 tokens, 256 of them: the same layers, for tests."""
    return make(maxlen=8, examples=256)
