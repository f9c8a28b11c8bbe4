"""The strategy axis: loop styles under ``tf.distribute``, as TensorFlow's guides write them.

A cell's ``strategy`` key is one of

- ``none``: one device, no strategy (every run before this axis).
- ``mirrored:N``: ``tf.distribute.MirroredStrategy`` over N devices in one process:
  the first N GPUs of a GPU cell, or N logical CPU devices
  (``tf.config.set_logical_device_configuration``) of a CPU cell.
- ``multiworker:W``: ``tf.distribute.MultiWorkerMirroredStrategy`` with W worker
  processes on this machine (one device each), talking over 127.0.0.1 ports the
  harness picks; each worker reads its ``TF_CONFIG`` (benchmarks/runner.py starts
  them; task 0, the chief, runs the clock).

``--batch-size`` is the global batch: each of the N replicas trains on B / N rows of
global batch i (replica r: rows [r * B / N, (r + 1) * B / N)), the workloads average
per-example losses over the global batch (``tf.nn.compute_average_loss``) and the
Keras optimizer sums the replicas' gradients, so a step is the single-device step's
math with the sums in another order. The custom styles call ``strategy.run`` on the
workload's step and log ``strategy.reduce(SUM, ...)`` of its losses; eager and
tf_function feed NumPy slices per replica
(``experimental_distribute_values_from_function``), tf_data a pipeline per worker
(``distribute_datasets_from_function``; both feeders are in loops/feeders.py); xla is
skipped under a strategy (loops/styles/xla.py says why); fit builds and compiles the
model in ``strategy.scope()`` and lets Keras distribute the arrays.

Parsing needs no TensorFlow; the functions that make devices or strategies import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NONE = "none"
KINDS = ("none", "mirrored", "multiworker")
DEFAULT_STRATEGY = NONE


class StrategyError(ValueError):
    """A strategy that cannot be parsed; the message is one line for the user."""


@dataclass(frozen=True)
class Strategy:
    """A parsed ``strategy`` key: its kind and its replica count (devices or workers)."""

    kind: str = NONE
    replicas: int = 1

    @property
    def key(self) -> str:
        return NONE if self.kind == NONE else f"{self.kind}:{self.replicas}"

    @property
    def workers(self) -> int:
        """Worker processes one sample of a cell takes."""
        return self.replicas if self.kind == "multiworker" else 1


def parse(text: str) -> Strategy:
    """A strategy key -> ``Strategy``; StrategyError (one line) for bad input.

    >>> parse("none"), parse("mirrored:2").replicas, parse("multiworker:3").workers
    (Strategy(kind='none', replicas=1), 2, 3)
    """
    kind, colon, count = str(text).strip().partition(":")
    if kind == NONE and not colon:
        return Strategy()
    if kind not in KINDS[1:]:
        raise StrategyError(
            f"unknown strategy {text!r}; choose from none, mirrored:N, multiworker:W"
        )
    if not count.isdigit():
        raise StrategyError(f"strategy {text!r}: {kind} needs a count, e.g. {kind}:2")
    # mirrored:1 is MirroredStrategy on one device (its overhead alone); a multi-worker
    # cluster of one worker is no cluster: MultiWorkerMirroredStrategy would run local
    least = 1 if kind == "mirrored" else 2
    if int(count) < least:
        raise StrategyError(f"strategy {text!r}: {kind} needs {least} or more")
    return Strategy(kind, int(count))


def unsupported(strategy: str, steps_per_call: int) -> str | None:
    """Why no loop style runs under ``strategy`` with this setting (known without
    TensorFlow), else None."""
    if strategy != NONE and steps_per_call != 1:
        return "several steps per call under a strategy are not built (one step per call)"
    return None


# ----------------------------------------------------------------------------- devices


def gpus_for(strategy: str, present: int, task: int = 0) -> list[int]:
    """Indices of the GPUs a worker of a GPU cell under ``strategy`` uses, of ``present``
    GPUs: the first N under ``mirrored:N``, GPU ``task`` for worker ``task`` of
    ``multiworker:W``. NotImplementedError (the cell is skipped) with too few GPUs.

    >>> gpus_for("mirrored:2", 4), gpus_for("multiworker:2", 2, task=1), gpus_for("none", 1)
    ([0, 1], [1], [0])
    """
    spec = parse(strategy)
    if present < spec.replicas:
        raise NotImplementedError(f"{spec.key} needs {spec.replicas} GPUs; {present} present")
    if spec.kind == "multiworker":
        return [task]
    return list(range(spec.replicas))


def configure_devices(strategy: str, device: str) -> None:
    """Before TensorFlow's runtime starts: N logical CPU devices for ``mirrored:N`` on
    CPU; on GPU, only the GPUs ``gpus_for`` names stay visible (a multi-worker worker
    sees only its own: its TF_CONFIG is set before this is called), so that a cell
    neither takes memory on GPUs it does not use nor reads their memory figures.
    Raises NotImplementedError (the cell is skipped) when the machine lacks the devices."""
    import tensorflow as tf

    spec = parse(strategy)
    if device == "cpu":
        if spec.kind == "mirrored" and spec.replicas > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * spec.replicas
            )
        return
    gpus = tf.config.list_physical_devices("GPU")
    used = [gpus[i] for i in gpus_for(strategy, len(gpus), task_index())]
    if used != tf.config.get_visible_devices("GPU"):  # TF allows an unchanged list later
        tf.config.set_visible_devices(used, "GPU")


def replica_devices(strategy: str, device: str) -> dict[str, Any]:
    """Where a cell's replicas run, read back from TensorFlow once its devices are
    configured (every worker process row records it):

    - ``replica_physical_devices``: the physical devices the replicas run on, every
      worker's together (the GPUs of a GPU cell, this machine's one CPU of a CPU cell);
    - ``replicas_share``: how several replicas share one physical device, or None:
      ``"logical devices"`` (``mirrored:N`` on CPU: N logical devices carved from one
      CPU, sharing its cores and TF's one thread pool) or ``"worker processes"``
      (``multiworker:W`` on CPU: W processes on the same cores);
    - ``replica_shared_cores``: the cores they share (this process's CPU affinity), or None.

    MFU divides each replica's FLOPs by a replica's share of its physical device's
    peak (docs/methodology.md, "MFU"); the report's efficiency figures say when
    replicas share cores (docs/distribute.md).
    """
    import tensorflow as tf

    spec = parse(strategy)
    if device == "gpu":  # one GPU per replica: gpus_for never gives two the same one
        gpus = len(tf.config.get_visible_devices("GPU")) if spec.kind != NONE else 1
        physical = gpus * spec.workers
        return {
            "replica_physical_devices": physical,
            "replicas_share": None,
            "replica_shared_cores": None,
        }
    cpus = len(tf.config.list_physical_devices("CPU"))
    share = None
    if spec.kind == "mirrored" and len(tf.config.list_logical_devices("CPU")) > cpus:
        share = "logical devices"
    elif spec.kind == "multiworker":  # the harness starts every worker on this machine
        share = "worker processes"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "replica_physical_devices": cpus,
        "replicas_share": share,
        "replica_shared_cores": cores if share else None,
    }


def task_index() -> int:
    """This worker's index in its ``TF_CONFIG`` (0: the chief, or no cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return int(config.get("task", {}).get("index", 0))


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` of a cluster at ``addresses``.

    >>> tf_config(["127.0.0.1:5000", "127.0.0.1:5001"], 1)
    '{"cluster": {"worker": ["127.0.0.1:5000", "127.0.0.1:5001"]}, "task": {"type": "worker", "index": 1}}'
    """
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


def make_strategy(strategy: str, device: str) -> Any:
    """The ``tf.distribute.Strategy`` of a cell (None for ``none``). ``multiworker``
    reads TF_CONFIG and starts this worker's server (it fails if its port is taken)."""
    import tensorflow as tf

    spec = parse(strategy)
    if spec.kind == NONE:
        return None
    if spec.kind == "mirrored":
        kind = device.upper()
        return tf.distribute.MirroredStrategy([f"/{kind}:{i}" for i in range(spec.replicas)])
    # ring all-reduce over gRPC between the CPU workers; NCCL between GPUs
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.NCCL
        if device == "gpu"
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )


# ----------------------------------------------------------------------------- custom loops


def key_of(strategy: Any) -> str:
    """The key of a ``tf.distribute.Strategy`` made by ``make_strategy`` (None: none)."""
    if strategy is None:
        return NONE
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return f"multiworker:{strategy.extended._num_workers}"
    return f"mirrored:{strategy.num_replicas_in_sync}"


def scope(strategy: Any) -> Any:
    """``strategy.scope()``, or a block that does nothing without a strategy: models,
    optimizers and fit's ``compile`` are made inside it."""
    import contextlib

    return contextlib.nullcontext() if strategy is None else strategy.scope()


def distributed_step(
    strategy: Any, workload: Any, state: Any, compiled: bool, jit_compile: bool = False
) -> Callable:
    """``strategy.run`` of the workload's step on a distributed batch; the logs are the
    replicas' global-batch-averaged losses summed (``strategy.reduce``). Eager when not
    ``compiled``, else one ``tf.function`` (XLA-compiled if ``jit_compile``)."""
    import tensorflow as tf

    def step(batch: Any) -> Mapping[str, Any]:
        per_replica = strategy.run(workload.train_step, args=(state, batch))
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in per_replica.items()
        }

    return tf.function(step, jit_compile=jit_compile) if compiled else step
