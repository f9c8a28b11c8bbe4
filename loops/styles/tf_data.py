"""tf_data: the tf_function loop fed by a tf.data pipeline (one change: the input)."""

from __future__ import annotations

from loops import distribute
from loops.base import LOOPS, LoopStyle
from loops.styles.custom import CustomLoopTrainer, distributed_trainer, graph_step, tf_data_batches


@LOOPS.register("tf_data")
class TfData(LoopStyle):
    description = "as tf_function, fed whole batches by a prefetching tf.data pipeline"
    compares_with = "tf_function"
    changes = "the input"

    def make_trainer(
        self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto", strategy=None
    ):
        if strategy is not None:
            return distributed_trainer(
                self,
                workload,
                state,
                train,
                batch_size,
                steps_per_call,
                strategy,
                compiled=True,
                feed=distribute.tf_data_batches,
            )
        step = graph_step(workload, state, jit_compile=False, steps_per_call=steps_per_call)
        batches = tf_data_batches(train, batch_size, steps_per_call)
        return CustomLoopTrainer(workload, state, step, batches, steps_per_call)
