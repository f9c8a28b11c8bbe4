"""The custom training loop shared by eager, tf_function, tf_data and xla.

A Python ``for`` loop over steps calling a step function on the next batch.
The styles differ only in the two things passed in: the step function (the
workload's ``train_step``, bare or wrapped in ``tf.function``) and the batch
source (NumPy slices or a ``tf.data`` iterator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from loops.base import (
    Batch,
    StepHooks,
    StopTraining,
    Trainer,
    TrainState,
    Workload,
    steps_per_epoch,
)


def numpy_batches(train: Mapping[str, np.ndarray], batch_size: int) -> Iterator[Batch]:
    """Batch i = rows [(i % S) * B, (i % S + 1) * B), sliced from NumPy per step as the
    seed loop does (``x[i:i + B]``)."""
    per_epoch = steps_per_epoch(train, batch_size)
    step = 0
    while True:
        start = (step % per_epoch) * batch_size
        yield {name: array[start : start + batch_size] for name, array in train.items()}
        step += 1


def tf_data_batches(train: Mapping[str, np.ndarray], batch_size: int) -> Iterator[Batch]:
    """The same batches in the same order from a tf.data pipeline whose elements are
    whole batches: each array reshaped to [steps_per_epoch, B, ...] (a view, no copy),
    ``from_tensor_slices`` over that, ``repeat``, ``prefetch(AUTOTUNE)``. This is the
    tf.data guide's vectorised form; ``from_tensor_slices(arrays).batch(B)`` would
    gather every batch one row at a time.

    The pipeline runs on the host. When the device scope in effect is a GPU (the
    worker builds the trainer inside ``tf.device``), batches are prefetched to it.
    """
    per_epoch = steps_per_epoch(train, batch_size)
    batched = {
        name: array[: per_epoch * batch_size].reshape(per_epoch, batch_size, *array.shape[1:])
        for name, array in train.items()
    }
    target = tf.zeros(()).device  # where the step's ops are placed
    with tf.device("/CPU:0"):
        dataset = tf.data.Dataset.from_tensor_slices(batched).repeat().prefetch(tf.data.AUTOTUNE)
    if tf.DeviceSpec.from_string(target).device_type == "GPU":
        dataset = dataset.apply(tf.data.experimental.prefetch_to_device(target))
    return iter(dataset)


class CustomLoopTrainer(Trainer):
    def __init__(
        self,
        workload: Workload,
        state: TrainState,
        step_fn: Callable[[Batch], Mapping[str, Any]],
        batches: Iterator[Batch],
    ) -> None:
        super().__init__(workload, state)
        self.step_fn = step_fn
        self.batches = batches

    def run(self, n_steps: int, hooks: StepHooks) -> None:
        hooks.on_train_begin()
        try:
            for step in range(n_steps):
                hooks.on_step_begin(step)
                logs = self.step_fn(next(self.batches))
                if hooks.record_logs:
                    hooks.on_step_end(step, logs)
            hooks.on_step_begin(n_steps)
        except StopTraining:
            return

    def trace_counts(self) -> dict[str, int]:
        counter = getattr(self.step_fn, "experimental_get_tracing_count", None)
        return {"train_step": int(counter())} if counter else {}


def graph_step(workload: Workload, state: TrainState, jit_compile: bool) -> Callable:
    """The workload's step inside one ``tf.function`` (XLA-compiled if ``jit_compile``)."""

    def train_step(batch: Batch) -> Mapping[str, Any]:
        return workload.train_step(state, batch)

    return tf.function(train_step, jit_compile=jit_compile)
