"""xla: the tf_data loop with the step XLA-compiled, ``tf.function(jit_compile=True)``
(one change: the compiler)."""

from __future__ import annotations

from tf_loopbench.loops.base import LOOPS
from tf_loopbench.loops.feeders import tf_data_batches
from tf_loopbench.loops.styles.custom import GraphLoop


@LOOPS.register("xla")
class Xla(GraphLoop):
    description = "as tf_data, with tf.function(jit_compile=True)"
    compares_with = "tf_data"
    changes = "the compiler"
    compiler = True
    jit_compile = True
    batches = staticmethod(tf_data_batches)  # the tf_data rung's input

    @classmethod
    def unsupported(cls, steps_per_call=1, strategy="none"):
        # both measured on CPU (TF 2.21); Keras turns XLA off for fit under a strategy too
        if strategy.startswith("mirrored"):
            return (
                "XLA cannot compile a step over MirroredStrategy's replicas: their variables "
                "live on other devices (XLA known issue: tf.Variable on a different device)"
            )
        if strategy.startswith("multiworker"):
            return "XLA cannot compile the cross-worker all-reduce (tf2xla conversion fails)"
        return super().unsupported(steps_per_call, strategy)
