"""xla: the tf_data loop with the step XLA-compiled, ``tf.function(jit_compile=True)``
(one change: the compiler)."""

from __future__ import annotations

from loops.base import LOOPS, LoopStyle
from loops.styles.custom import CustomLoopTrainer, graph_step, tf_data_batches


@LOOPS.register("xla")
class Xla(LoopStyle):
    description = "as tf_data, with tf.function(jit_compile=True)"
    compares_with = "tf_data"
    changes = "the compiler"
    compiler = True

    def make_trainer(self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto"):
        step = graph_step(workload, state, jit_compile=True, steps_per_call=steps_per_call)
        batches = tf_data_batches(train, batch_size, steps_per_call)
        return CustomLoopTrainer(workload, state, step, batches, steps_per_call)
