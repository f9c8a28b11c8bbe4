"""The custom training loop shared by eager, tf_function, tf_data and xla.

A Python ``for`` loop over calls of a step function on the next batch.
The styles differ only in the two things passed in: the step function (the
workload's ``train_step``, bare or wrapped in ``tf.function``) and the batch
source (NumPy slices or a ``tf.data`` iterator, loops/feeders.py).

With K steps per call (K > 1; loops/knobs.py) the graph styles run K steps inside
one ``tf.function`` call, as Orbit's custom loops do: a ``tf.range`` loop (a
``tf.while_loop``) over a stacked batch of shape [K, B, ...], step ``k`` on slice
``k``. The NumPy-fed style slices K consecutive batches per call (one view of
K * B rows; the data holds whole calls, so a call never wraps around the epoch);
the tf.data style's pipeline yields the same [K, B, ...] elements. The graph
function is the same in both, so the input stays the one change between them,
and xla compiles that whole function, loop included (the input is an argument,
not an iterator op inside it). Batch order is unchanged: call ``c`` holds
batches ``cK .. cK + K - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tf_loopbench.loops import distribute, xla_random
from tf_loopbench.loops.base import (
    Batch,
    LoopStyle,
    StepHooks,
    StopTraining,
    Trainer,
    TrainState,
    Workload,
)
from tf_loopbench.loops.feeders import distributed_numpy_batches, numpy_batches


class CustomLoopTrainer(Trainer):
    """Calls ``step_fn`` on the next element of ``batches`` until ``n_steps`` are done;
    each call runs ``steps_per_call`` steps (``step_fn`` and ``batches`` agree on it)."""

    def __init__(
        self,
        workload: Workload,
        state: TrainState,
        step_fn: Callable[[Batch], Mapping[str, Any]],
        batches: Iterator[Batch],
        steps_per_call: int = 1,
    ) -> None:
        super().__init__(workload, state, steps_per_call)
        self.step_fn = step_fn
        self.batches = batches

    def run(self, n_steps: int, hooks: StepHooks) -> None:
        k = self.steps_per_call
        calls = -(-n_steps // k)
        hooks.on_train_begin()
        try:
            for call in range(calls):
                hooks.on_step_begin(call * k)
                logs = self.step_fn(next(self.batches))
                if hooks.record_logs:
                    hooks.on_step_end(call * k + k - 1, logs)
            hooks.on_step_begin(calls * k)
        except StopTraining:
            return

    def trace_counts(self) -> dict[str, int]:
        counter = getattr(self.step_fn, "experimental_get_tracing_count", None)
        return {"train_step": int(counter())} if counter else {}


def graph_step(
    workload: Workload, state: TrainState, jit_compile: bool, steps_per_call: int = 1
) -> Callable:
    """The workload's step inside one ``tf.function`` (XLA-compiled if ``jit_compile``).

    With ``steps_per_call`` K > 1 the function takes a stacked batch [K, B, ...] and
    runs K steps in a ``tf.range`` loop (a ``tf.while_loop`` in the graph, as Orbit
    runs several steps a call; Keras's steps_per_execution is the same loop over an
    iterator). It returns the last step's loss (as float32): a loop variable needs
    one fixed structure, and only tests look at logs.
    """

    def train_step(batch: Batch) -> Mapping[str, Any]:
        return workload.train_step(state, batch)

    if jit_compile:  # XLA draws dropout's masks as eager does (loops/xla_random.py)
        xla_random.install()
    if steps_per_call == 1:
        return tf.function(train_step, jit_compile=jit_compile)

    def train_steps(batches: Batch) -> Mapping[str, Any]:
        loss = tf.zeros((), tf.float32)
        for k in tf.range(steps_per_call):
            logs = workload.train_step(state, {name: value[k] for name, value in batches.items()})
            loss = tf.cast(logs["loss"], tf.float32)
        return {"loss": loss}

    return tf.function(train_steps, jit_compile=jit_compile)


def distributed_trainer(
    style: LoopStyle,
    workload: Workload,
    state: TrainState,
    train: Mapping[str, np.ndarray],
    batch_size: int,
    steps_per_call: int,
    strategy: Any,
    compiled: bool,
    feed: Callable[[Any, Mapping[str, np.ndarray], int], Any],
) -> CustomLoopTrainer:
    """A custom style under a strategy (loops/distribute.py): what the style cannot run
    there is a skip with its reason; else ``strategy.run`` of the workload's step, in a
    tf.function when ``compiled``, over the batches ``feed(strategy, train, batch_size)``."""
    reason = style.unsupported(steps_per_call, distribute.key_of(strategy))
    if reason:
        raise NotImplementedError(reason)
    step = distribute.distributed_step(strategy, workload, state, compiled=compiled)
    return CustomLoopTrainer(workload, state, step, feed(strategy, train, batch_size))


class GraphLoop(LoopStyle):
    """The compiled custom styles (tf_function, tf_data, xla): the workload's step in a
    tf.function (XLA-compiled when ``jit_compile``), K steps a call, over ``batches``;
    under a strategy, ``strategy.run`` over ``distributed_batches``. A subclass sets what
    its rung changes."""

    jit_compile = False
    batches = staticmethod(numpy_batches)
    distributed_batches = staticmethod(distributed_numpy_batches)

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
                feed=self.distributed_batches,
            )
        step = graph_step(
            workload, state, jit_compile=self.jit_compile, steps_per_call=steps_per_call
        )
        batches = self.batches(train, batch_size, steps_per_call)
        return CustomLoopTrainer(workload, state, step, batches, steps_per_call)
