"""xla: the tf_data loop with the step XLA-compiled, ``tf.function(jit_compile=True)``
(one change: the compiler)."""

from __future__ import annotations

from loops import distribute
from loops.base import LOOPS, LoopStyle
from loops.styles.custom import CustomLoopTrainer, graph_step, tf_data_batches


@LOOPS.register("xla")
class Xla(LoopStyle):
    description = "as tf_data, with tf.function(jit_compile=True)"
    compares_with = "tf_data"
    changes = "the compiler"
    compiler = True

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

    def make_trainer(
        self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto", strategy=None
    ):
        if strategy is not None:
            raise NotImplementedError(self.unsupported(steps_per_call, distribute.key_of(strategy)))
        step = graph_step(workload, state, jit_compile=True, steps_per_call=steps_per_call)
        batches = tf_data_batches(train, batch_size, steps_per_call)
        return CustomLoopTrainer(workload, state, step, batches, steps_per_call)
