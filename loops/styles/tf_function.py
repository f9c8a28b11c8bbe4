"""tf_function: the eager loop with the step inside ``tf.function`` (one change: graph mode)."""

from __future__ import annotations

from loops import distribute
from loops.base import LOOPS, LoopStyle
from loops.styles.custom import CustomLoopTrainer, distributed_trainer, graph_step, numpy_batches


@LOOPS.register("tf_function")
class TfFunction(LoopStyle):
    description = "as eager, with the step in tf.function (graph mode)"
    compares_with = "eager"
    changes = "graph mode"

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
                feed=distribute.numpy_batches,
            )
        step = graph_step(workload, state, jit_compile=False, steps_per_call=steps_per_call)
        batches = numpy_batches(train, batch_size, steps_per_call)
        return CustomLoopTrainer(workload, state, step, batches, steps_per_call)
