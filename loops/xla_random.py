"""The same uniform random numbers under XLA as in eager and graph mode.

TensorFlow's stateless uniform floats (``tf.random.stateless_uniform``, hence
``tf.nn.experimental.stateless_dropout`` and Keras 3's ``Dropout`` and
``keras.random.uniform`` on the TensorFlow backend) come from the same Philox
key, counter and bits in every mode, but the bits become floats differently:
TensorFlow's kernel keeps the low 23 bits as the mantissa
(``tensorflow/core/lib/random/random_distributions_utils.h``, ``Uint32ToFloat``),
XLA's lowering the high 23 (``xla/.../lib/prng.cc``,
``ConvertRandomBitsToUniformFloatingPoint``). So a model with Dropout trains on
other masks under ``jit_compile`` and its loss drifts from eager's.

``install()`` makes the float32 op, when traced for XLA, draw the same Philox
bits (``StatelessRandomUniformFullIntV2``) and keep the low 23 bits as
TensorFlow's kernel does: the same numbers as eager, bit for bit, at the same
cost (one bit generator and three element-wise ops, fused by XLA, as XLA's own
conversion is). Outside XLA nothing changes: eager and graph mode run
TensorFlow's own kernel. Other dtypes and distributions (normal, truncated
normal) are left as they are (docs/atlas.md, "Randomness in the step").
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.ops import control_flow_util, gen_stateless_random_ops_v2

#: TensorFlow's own op, kept for everything the patch does not take over
_TF_UNIFORM = gen_stateless_random_ops_v2.stateless_random_uniform_v2
MANTISSA_BITS = 0x7FFFFF
ONE_BITS = 0x3F800000  # 1.0f: exponent 127, mantissa 0


def in_xla_trace() -> bool:
    """Is the graph being traced now (or one it nests in) compiled by XLA?"""
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


def tensorflow_uniform_float32(shape: Any, key: Any, counter: Any, alg: Any) -> tf.Tensor:
    """Floats in [0, 1) from Philox bits, mapped as TensorFlow's CPU/GPU kernel maps them."""
    bits = gen_stateless_random_ops_v2.stateless_random_uniform_full_int_v2(
        shape, key=key, counter=counter, alg=alg, dtype=tf.uint32
    )
    mantissa = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_and(bits, tf.constant(MANTISSA_BITS, tf.uint32)),
        tf.constant(ONE_BITS, tf.uint32),
    )
    return tf.bitcast(mantissa, tf.float32) - 1.0


def _uniform_v2(shape, key, counter, alg, dtype=tf.float32, name=None):
    if tf.as_dtype(dtype) == tf.float32 and in_xla_trace():
        return tensorflow_uniform_float32(shape, key, counter, alg)
    return _TF_UNIFORM(shape, key=key, counter=counter, alg=alg, dtype=dtype, name=name)


def install() -> None:
    """Route TensorFlow's stateless uniform op through ``_uniform_v2`` (idempotent;
    effective for steps traced afterwards)."""
    gen_stateless_random_ops_v2.stateless_random_uniform_v2 = _uniform_v2


def installed() -> bool:
    return gen_stateless_random_ops_v2.stateless_random_uniform_v2 is _uniform_v2
