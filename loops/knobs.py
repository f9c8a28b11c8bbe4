"""The settings beside workload and loop that change what a step costs: steps per
call, numeric precision, and fit's compiler. Each is a cell key (reports/rundir.py).

- ``steps_per_call`` K: how many training steps one call of the loop's compiled
  function runs (fit: ``steps_per_execution=K``; tf_function, tf_data, xla: a
  ``tf.range`` loop over K batches inside one ``tf.function``; eager: only 1).
  Step times stay per step.
- ``precision``: a Keras mixed-precision policy, set before the models are built,
  the same for every loop style. ``mixed_float16`` trains with a
  ``keras.optimizers.LossScaleOptimizer`` in every style (the workload's step
  scales its loss with ``optimizer.scale_loss``, as Keras's own ``train_step`` does).
- ``fit_jit``: fit's ``jit_compile``. Asked for as ``auto`` (Keras's choice),
  ``off`` or ``on``; a fit cell's key is the setting it runs with: ``auto:off``,
  ``auto:on``, ``off`` or ``on``, ``auto`` keyed by what Keras will choose for that
  cell (``keras_auto_jit``: the machine's devices and the cell's strategy). Other
  loop styles have no such setting (``none``): one cell whatever was asked.

Names and key rules need no TensorFlow; the functions that set a policy or wrap an
optimizer import Keras when called.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from typing import Any

from tf_loopbench.loops.distribute import NONE

DEFAULT_STEPS_PER_CALL = 1

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DEFAULT_PRECISION = "float32"
#: the precision that needs loss scaling (float16's narrow exponent underflows gradients)
LOSS_SCALED_PRECISION = "mixed_float16"

FIT_JIT_CHOICES = ("auto", "off", "on")
DEFAULT_FIT_JIT = "auto"
#: the fit_jit key of a loop style that is not fit
FIT_JIT_NONE = "none"


def call_multiple(steps_per_call: Iterable[int]) -> int:
    """The least common multiple of a run's steps-per-call values: every cell's data
    is cut to a multiple of this many batches and its equal work is a multiple of it,
    so that every call boundary of every cell falls on the same steps.

    >>> call_multiple([1, 8, 32])
    32
    >>> call_multiple([3, 4])
    12
    """
    return math.lcm(*[int(k) for k in steps_per_call] or [1])


def round_up(steps: int, multiple: int) -> int:
    """``steps`` rounded up to a whole number of ``multiple`` (at least one).

    >>> round_up(11, 8), round_up(16, 8), round_up(0, 4)
    (16, 16, 4)
    """
    return max(multiple, -(-int(steps) // multiple) * multiple)


def keras_auto_jit(gpu_listed: bool, strategy: str) -> bool:
    """Keras's ``jit_compile="auto"`` for a model that supports XLA (Keras 3.15,
    ``Trainer._resolve_auto_jit_compile``): XLA exactly when
    ``tf.config.list_physical_devices()`` lists a device other than a CPU and the
    model is not made under a ``tf.distribute`` strategy.

    That list holds every GPU of the machine, hidden or not: a CPU cell hides the GPUs
    (``devices.hide_devices``) and Keras still sees them, so on a machine with a GPU a
    CPU cell's fit compiles with XLA (on the CPU). tests/test_knobs.py holds this rule
    to Keras's own choice on a GPU-present double.

    >>> keras_auto_jit(True, "none"), keras_auto_jit(True, "mirrored:2"), keras_auto_jit(False, "none")
    (True, False, False)
    """
    return gpu_listed and strategy == NONE


def fit_jit_key(
    requested: str, device: str, strategy: str = NONE, present: Iterable[str] = ("cpu",)
) -> str:
    """A fit cell's key: the ``jit_compile`` it runs with, on ``device`` under
    ``strategy``, on a machine with the devices ``present``.

    ``auto`` is Keras's choice (``keras_auto_jit``): a GPU cell sees a GPU; a CPU
    cell sees one when the machine has one (hiding it does not hide it from Keras);
    any strategy turns it off. Keras also declines XLA for a model with a layer that
    does not support it: the fit trainer checks Keras's actual choice against this
    key and declines the cell if they differ.

    >>> fit_jit_key("auto", "cpu"), fit_jit_key("auto", "gpu"), fit_jit_key("on", "cpu")
    ('auto:off', 'auto:on', 'on')
    >>> fit_jit_key("auto", "cpu", present=("cpu", "gpu")), fit_jit_key("auto", "gpu", "mirrored:2")
    ('auto:on', 'auto:off')
    """
    if requested not in FIT_JIT_CHOICES:
        raise ValueError(f"unknown fit-jit {requested!r}; choose from {', '.join(FIT_JIT_CHOICES)}")
    if requested == "auto":
        gpu_listed = device == "gpu" or "gpu" in present
        return "auto:on" if keras_auto_jit(gpu_listed, strategy) else "auto:off"
    return requested


def fit_jit_setting(key: str) -> tuple[str, bool | None]:
    """(what was asked, the jit_compile it means; None: Keras decides) for a fit_jit
    value, a cell key or a bare request.

    >>> fit_jit_setting("auto:off"), fit_jit_setting("on"), fit_jit_setting("auto")
    (('auto', False), ('on', True), ('auto', None))
    """
    requested, _, effective = key.partition(":")
    if requested not in FIT_JIT_CHOICES:
        raise ValueError(f"unknown fit-jit {key!r}; choose from {', '.join(FIT_JIT_CHOICES)}")
    if requested != "auto":
        return requested, requested == "on"
    return requested, {"on": True, "off": False}.get(effective)


# ----------------------------------------------------------------------------- precision


def set_precision(precision: str) -> None:
    """Make ``precision`` Keras's global dtype policy (read when layers are built)."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(precision)


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """``precision`` as the global policy inside the block, the previous one after
    (for in-process use: tests, ``python -m loops.equivalence``)."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    set_precision(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def loss_scaled(state: Any, workload: Any, precision: str) -> Any:
    """``state`` with each optimizer wrapped in a ``LossScaleOptimizer`` under
    ``mixed_float16`` (Keras's defaults: dynamic scale from 2**15), as fit's
    ``compile`` would wrap it; unchanged otherwise. Every loop style then applies
    gradients through the same wrapper (fit's compile sees it and does not wrap again).

    Raises NotImplementedError when the workload's step does not scale its loss
    (``Workload.scales_loss``): its gradients would be unscaled without having been
    scaled.
    """
    if precision != LOSS_SCALED_PRECISION:
        return state
    if not getattr(workload, "scales_loss", False):
        raise NotImplementedError(
            f"{precision} needs loss scaling, and this workload's step does not scale "
            "its loss (optimizer.scale_loss)"
        )
    import keras

    for name, optimizer in list(state.optimizers.items()):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            continue
        variables = list(optimizer._trainable_variables)  # what build() was given
        wrapped = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        wrapped.build(variables)  # the inner optimizer is built already and keeps its slots
        state.optimizers[name] = wrapped
    return state


#: what each precision computes in (its variables stay float32)
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def compute_dtypes(models: Iterable[Any]) -> list[str]:
    """The compute dtypes of the layers with weights in ``models`` (nested models
    walked), read from the built layers: what each layer casts its inputs to when the
    step calls it, whatever Keras's global policy says now.

    A model built before the policy was set, or with ``dtype="float32"`` on its layers,
    trains in float32 under a mixed global policy; this is how a cell shows it did not.
    """
    found: set[str] = set()
    pending = list(models)
    while pending:
        layer = pending.pop()
        pending += list(getattr(layer, "layers", []))
        if layer.weights and not getattr(layer, "layers", None):
            found.add(str(layer.compute_dtype))
    return sorted(found)


def precision_not_run(precision: str, models: Iterable[Any]) -> str | None:
    """Why ``models`` did not train in ``precision`` (none of their layers computes in
    its dtype), else None."""
    expected, dtypes = COMPUTE_DTYPES[precision], compute_dtypes(models)
    if expected in dtypes:
        return None
    return f"the model computed in {', '.join(dtypes) or 'nothing'}, not {precision}'s {expected}"


def unsupported_precision(precision: str) -> str | None:
    """Why ``precision`` cannot train on the current device (a tiny Dense layer's
    forward and backward pass under that policy fails), else None."""
    if precision == DEFAULT_PRECISION:
        return None
    import keras
    import tensorflow as tf

    try:
        layer = keras.layers.Dense(2, dtype=precision)
        inputs = tf.ones((2, 3))
        with tf.GradientTape() as tape:
            output = tf.reduce_sum(tf.cast(layer(inputs), tf.float32))
        gradients = tape.gradient(output, layer.trainable_variables)
        float(tf.reduce_sum(gradients[0]))
    except (tf.errors.OpError, NotImplementedError, TypeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return f"{precision} does not run on this device: {reason}"
    return None
