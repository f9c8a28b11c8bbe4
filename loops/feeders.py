"""Batch feeders: the batches every loop style trains on, in one order.

A feeder turns the training arrays (a dict of NumPy arrays cut to whole calls by
``Dataset.whole_batches``) into an endless iterator of batches. Batch ``i`` is rows
``[(i % S) * B, (i % S + 1) * B)`` (loops/base.py), whichever feeder yields it:

- ``numpy_batches``: NumPy slices per step (eager, tf_function);
- ``tf_data_batches``: the same batches from a prefetching ``tf.data`` pipeline
  (tf_data, xla);
- ``distributed_numpy_batches`` and ``distributed_tf_data_batches``: the same global
  batches under a ``tf.distribute`` strategy (loops/distribute.py), each replica
  getting its rows of them.

With K steps per call one element is a whole call, K consecutive batches as a
[K, B, ...] array (loops/styles/custom.py runs them in one ``tf.function``).

Example::

    train = workload.make_data().whole_batches(32)
    batches = numpy_batches(train, 32)
    first = next(batches)  # rows 0..31 of every array
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tf_loopbench.loops.base import Batch, steps_per_epoch


def calls_per_epoch(train: Mapping[str, np.ndarray], batch_size: int, steps_per_call: int) -> int:
    """Calls of ``steps_per_call`` steps in one pass over ``train``; ValueError unless the
    epoch is whole calls (the harness cuts the data so that it is)."""
    per_epoch = steps_per_epoch(train, batch_size)
    if per_epoch % steps_per_call:
        raise ValueError(
            f"{per_epoch} batches an epoch is not a whole number of calls of {steps_per_call} "
            "steps (cut the data with Dataset.whole_batches(batch_size, steps_per_call))"
        )
    return per_epoch // steps_per_call


def numpy_batches(
    train: Mapping[str, np.ndarray], batch_size: int, steps_per_call: int = 1
) -> Iterator[Batch]:
    """Batch i = rows [(i % S) * B, (i % S + 1) * B), sliced from NumPy per step as the
    seed loop does (``x[i:i + B]``). With K steps per call, one element per call: K
    consecutive batches, rows [(c % (S/K)) * K * B, ...) as a [K, B, ...] view.

    >>> batches = numpy_batches({"x": np.arange(10)}, 4)
    >>> [next(batches)["x"].tolist() for _ in range(3)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]
    """
    per_epoch = calls_per_epoch(train, batch_size, steps_per_call)
    rows = steps_per_call * batch_size
    call = 0
    while True:
        start = (call % per_epoch) * rows
        if steps_per_call == 1:
            yield {name: array[start : start + rows] for name, array in train.items()}
        else:
            yield {
                name: array[start : start + rows].reshape(
                    steps_per_call, batch_size, *array.shape[1:]
                )
                for name, array in train.items()
            }
        call += 1


def tf_data_batches(
    train: Mapping[str, np.ndarray], batch_size: int, steps_per_call: int = 1
) -> Iterator[Batch]:
    """The same batches in the same order from a tf.data pipeline whose elements are
    whole batches: each array reshaped to [steps_per_epoch, B, ...] (a view, no copy),
    ``from_tensor_slices`` over that, ``repeat``, ``prefetch(AUTOTUNE)``. This is the
    tf.data guide's vectorised form; ``from_tensor_slices(arrays).batch(B)`` would
    gather every batch one row at a time. With K steps per call the elements are
    whole calls, [K, B, ...] (the arrays reshaped to [S / K, K, B, ...]).

    The pipeline runs on the host. When the device scope in effect is a GPU (the
    worker builds the trainer inside ``tf.device``), batches are prefetched to it.

    Example::

        batches = tf_data_batches(train, 32)
        next(batches)["x"].numpy()  # == next(numpy_batches(train, 32))["x"]
    """
    per_epoch = calls_per_epoch(train, batch_size, steps_per_call)
    element = (batch_size,) if steps_per_call == 1 else (steps_per_call, batch_size)
    rows = steps_per_call * batch_size
    batched = {
        name: array[: per_epoch * rows].reshape(per_epoch, *element, *array.shape[1:])
        for name, array in train.items()
    }
    target = tf.zeros(()).device  # where the step's ops are placed
    with tf.device("/CPU:0"):
        dataset = tf.data.Dataset.from_tensor_slices(batched).repeat().prefetch(tf.data.AUTOTUNE)
    if tf.DeviceSpec.from_string(target).device_type == "GPU":
        dataset = dataset.apply(tf.data.experimental.prefetch_to_device(target))
    return iter(dataset)


# ----------------------------------------------------------------------------- under a strategy


def replica_rows(strategy: Any, batch_size: int) -> int:
    """Rows of a global batch each replica trains on; ValueError if they do not divide."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch size {batch_size} does not split over {replicas} replicas")
    return batch_size // replicas


def distributed_numpy_batches(
    strategy: Any, train: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[Any]:
    """Global batch i as NumPy slices per replica, sliced each step (the NumPy feed of
    eager and tf_function under a strategy): replica r gets rows [r * b, (r + 1) * b)
    of it (``experimental_distribute_values_from_function``).

    Example::

        with strategy.scope():
            batches = distributed_numpy_batches(strategy, train, 64)  # 32 rows a replica of 2
    """
    rows = replica_rows(strategy, batch_size)
    for batch in numpy_batches(train, batch_size):

        def replica_slice(context: Any, batch: Mapping[str, np.ndarray] = batch) -> Any:
            start = context.replica_id_in_sync_group * rows
            return {name: array[start : start + rows] for name, array in batch.items()}

        yield strategy.experimental_distribute_values_from_function(replica_slice)


def distributed_tf_data_batches(
    strategy: Any, train: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[Any]:
    """The same per-replica rows from one prefetching tf.data pipeline per worker
    (``distribute_datasets_from_function``, the tf_data feed under a strategy; xla
    is skipped under one):
    the pipeline of worker p yields, for each global batch in order, the slices of its
    local replicas, which the strategy hands to them in turn.

    Example::

        batches = distributed_tf_data_batches(strategy, train, 64)
    """
    rows = replica_rows(strategy, batch_size)
    steps = steps_per_epoch(train, batch_size)

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        mine = {
            name: array[: steps * batch_size]
            .reshape(steps, context.num_replicas_in_sync, rows, *array.shape[1:])[
                :, first : first + local
            ]
            .reshape(steps * local, rows, *array.shape[1:])
            for name, array in train.items()
        }
        with tf.device("/CPU:0"):
            return tf.data.Dataset.from_tensor_slices(mine).repeat().prefetch(tf.data.AUTOTUNE)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return iter(strategy.distribute_datasets_from_function(dataset, options))
