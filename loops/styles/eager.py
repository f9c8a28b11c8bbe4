"""eager: GradientTape in a plain Python loop, no tf.function, NumPy batches sliced per step.

The reference every other style's losses are checked against.
"""

from __future__ import annotations

import functools

from loops.base import LOOPS, LoopStyle
from loops.styles.custom import CustomLoopTrainer, numpy_batches


@LOOPS.register("eager")
class Eager(LoopStyle):
    description = "custom loop, step runs eagerly op by op, NumPy slices"
    changes = "custom loop, the step runs eagerly op by op, NumPy slices"

    def make_trainer(self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto"):
        if steps_per_call != 1:
            raise NotImplementedError(
                "eager runs one step per call: without tf.function there is no call "
                "that could hold several steps"
            )
        step = functools.partial(workload.train_step, state)
        return CustomLoopTrainer(workload, state, step, numpy_batches(train, batch_size))
