"""eager: GradientTape in a plain Python loop, no tf.function, NumPy batches sliced per step.

The reference every other style's losses are checked against.
"""

from __future__ import annotations

import functools

from tf_loopbench.loops.base import LOOPS, LoopStyle
from tf_loopbench.loops.feeders import distributed_numpy_batches, numpy_batches
from tf_loopbench.loops.styles.custom import CustomLoopTrainer, distributed_trainer


@LOOPS.register("eager")
class Eager(LoopStyle):
    description = "custom loop, step runs eagerly op by op, NumPy slices"
    changes = "custom loop, the step runs eagerly op by op, NumPy slices"

    @classmethod
    def unsupported(cls, steps_per_call=1, strategy="none"):
        if steps_per_call != 1:
            return (
                "eager runs one step per call: without tf.function there is no call "
                "that could hold several steps"
            )
        return super().unsupported(steps_per_call, strategy)

    def make_trainer(
        self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto", strategy=None
    ):
        if strategy is not None:  # strategy.run called eagerly, op by op on each replica
            return distributed_trainer(
                self,
                workload,
                state,
                train,
                batch_size,
                steps_per_call,
                strategy,
                compiled=False,
                feed=distributed_numpy_batches,
            )
        reason = self.unsupported(steps_per_call)
        if reason:
            raise NotImplementedError(reason)
        step = functools.partial(workload.train_step, state)
        return CustomLoopTrainer(workload, state, step, numpy_batches(train, batch_size))
