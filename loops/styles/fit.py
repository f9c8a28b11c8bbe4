"""fit: Keras ``Model.fit`` with Keras's defaults, as users run it.

linear and mlp compile their model with the workload's loss object, optimizer
and metrics and use Keras's own ``train_step``; the GAN uses a ``keras.Model``
subclass whose ``train_step`` is the workload's step. ``compile`` keeps Keras's
defaults (``jit_compile="auto"``: XLA on GPU, off on CPU-only machines;
``steps_per_execution=1``) unless the cell asks otherwise (loops/knobs.py):
``steps_per_execution=K`` with K steps per call, and ``jit_compile`` off or on
with ``--fit-jit``. ``facts()`` records what Keras actually ran with, read back from
the run, not from the settings: ``keras_jit_compile`` from the step function Keras
traced (its ``tf.function``'s ``jit_compile``), ``keras_steps_per_execution`` from the
steps between Keras's batch-begin callbacks; a run that differs from its cell's key
fails. With
K > 1 Keras calls the batch-begin callback once per execution (at steps 0, K,
2K, ... of an epoch), and the data holds whole executions (``Dataset.whole_batches``),
so every epoch end falls on a call boundary.
``verbose=0`` (no progress bar: printing is not the loop's cost) and
``shuffle=False`` so that fit sees the same batches in the same order as the
custom loops.

All steps of one ``run`` happen inside one ``fit`` call: fit's per-call set-up
cost (large in Keras 3) is paid once, before ``hooks.on_train_begin``. The
harness's callback implements only ``on_train_begin``/``on_train_batch_begin``,
which keeps Keras's asynchronous dispatch of batch-end callbacks (the default)
intact. Fit is stopped by an exception from the callback when ``n_steps``
steps are done (or when the hooks raise ``StopTraining``), so it trains exactly
the steps asked for.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from tf_loopbench.loops import distribute, xla_random
from tf_loopbench.loops.base import (
    LOOPS,
    LoopStyle,
    StepHooks,
    StopTraining,
    Trainer,
    steps_per_epoch,
)
from tf_loopbench.loops.knobs import fit_jit_setting


class _HookCallback(keras.callbacks.Callback):
    def __init__(self, hooks: StepHooks, n_steps: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.hooks = hooks
        self.n_steps = n_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0
        self.previous_batch: int | None = None
        #: steps between consecutive batch-begin calls of an epoch: Keras calls it
        #: once per execution, so these are the steps per execution it ran
        self.call_steps: set[int] = set()

    def on_train_begin(self, logs=None) -> None:
        self.hooks.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch
        self.previous_batch = None

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if self.previous_batch is not None:
            self.call_steps.add(batch - self.previous_batch)
        self.previous_batch = batch
        step = self.epoch * self.steps_per_epoch + batch
        self.hooks.on_step_begin(step)
        if step >= self.n_steps:
            raise StopTraining  # fit trains exactly n_steps steps


class _RecordCallback(keras.callbacks.Callback):
    """Per-call logs for tests. Forces a host sync per call (disables async dispatch)."""

    def __init__(self, hooks: StepHooks, steps_per_epoch: int, running_mean: bool) -> None:
        super().__init__()
        self.hooks = hooks
        self.steps_per_epoch = steps_per_epoch
        self.running_mean = running_mean
        self.epoch = 0
        self.previous_mean = 0.0
        self.previous_done = 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch
        self.previous_mean = 0.0
        self.previous_done = 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        # ``batch`` is the last step of this call (of its epoch)
        logs = dict(logs or {})
        done = batch + 1
        if self.running_mean:
            # Keras reports the mean loss over the epoch so far; recover this call's
            # (one step's with one step a call, else the mean of the call's steps)
            mean = float(logs["loss"])
            logs["loss"] = (done * mean - self.previous_done * self.previous_mean) / (
                done - self.previous_done
            )
            self.previous_mean = mean
        self.previous_done = done
        self.hooks.on_step_end(self.epoch * self.steps_per_epoch + batch, logs)


def _step_functions(function: Any, depth: int = 3) -> list[Any]:
    """The ``tf.function``s in the closure of Keras's train function: the multi-step
    function and the one-step function it compiles with the model's ``jit_compile``
    (keras/src/backend/tensorflow/trainer.py ``_make_function``)."""
    if hasattr(function, "experimental_get_tracing_count"):
        return [function]
    if depth == 0:
        return []
    found: list[Any] = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            found += _step_functions(cell.cell_contents, depth - 1)
        except ValueError:  # empty cell
            continue
    wrapped = getattr(function, "__wrapped__", None)
    if wrapped is not None:
        found += _step_functions(wrapped, depth - 1)
    return found


def traced_jit_compile(model: keras.Model) -> bool | None:
    """Whether the step Keras traced for ``model.fit`` is XLA-compiled: the
    ``jit_compile`` of the traced step functions in its train function (TF keeps it
    as ``Function._jit_compile``), None when fit has not traced one or Keras keeps it
    elsewhere."""
    function = model.train_function
    settings = [
        getattr(f, "_jit_compile", None)
        for f in (_step_functions(function) if function is not None else [])
        if f.experimental_get_tracing_count() > 0
    ]
    known = [bool(s) for s in settings if s is not None]
    return any(known) if known else None


class FitTrainer(Trainer):
    def __init__(
        self, workload, state, train, batch_size, steps_per_call: int = 1, fit_jit: str = "auto"
    ) -> None:
        super().__init__(workload, state, steps_per_call)
        self.model = workload.fit_model(state)
        self.x, self.y = workload.fit_arguments(train)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch(train, batch_size)
        if self.steps_per_epoch % steps_per_call:
            raise ValueError(
                f"{self.steps_per_epoch} batches an epoch is not a whole number of "
                f"executions of {steps_per_call} steps"
            )
        # compile() has run (the workload's fit_model); Keras reads both when fit
        # makes its train function
        self.model.steps_per_execution = steps_per_call
        requested, jit_compile = fit_jit_setting(fit_jit)
        if requested != "auto":
            self.model.jit_compile = jit_compile  # Keras refuses (False) if it cannot
        #: what this cell's key says fit compiles with (Keras's choice, or as asked)
        self.expected_jit = bool(self.model.jit_compile) if jit_compile is None else jit_compile
        if self.expected_jit:  # XLA draws dropout's masks as eager does (loops/xla_random.py)
            xla_random.install()
        self.ran: dict[str, Any] = {}
        if jit_compile is not None and bool(self.model.jit_compile) != jit_compile:
            chosen = "on" if self.model.jit_compile else "off"
            raise NotImplementedError(
                f"fit runs with jit_compile {chosen} here, not the {fit_jit} this cell "
                + (
                    "asks for (Keras cannot compile this model with XLA)"
                    if requested == "on"
                    else f"expects (Keras's choice for this model); run it as --fit-jit {chosen}"
                )
            )

    def run(self, n_steps: int, hooks: StepHooks) -> None:
        n_steps = -(-n_steps // self.steps_per_call) * self.steps_per_call  # whole calls
        callbacks: list[keras.callbacks.Callback] = [
            _HookCallback(hooks, n_steps, self.steps_per_epoch)
        ]
        if hooks.record_logs:
            callbacks.append(
                _RecordCallback(hooks, self.steps_per_epoch, self.workload.fit_reports_running_mean)
            )
        # one more batch than needed: the callback stops fit as that batch begins
        epochs = math.ceil((n_steps + 1) / self.steps_per_epoch)
        try:
            self.model.fit(
                self.x,
                self.y,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        except StopTraining:
            self._read_back(callbacks[0].call_steps)
            return
        raise RuntimeError("fit ended before the requested number of steps")

    def _read_back(self, call_steps: set[int]) -> None:
        """What Keras ran with (``facts``); RuntimeError (a failed cell) when that is
        not what the cell's key says."""
        jit = traced_jit_compile(self.model)
        if call_steps:
            self.ran["keras_steps_per_execution"] = max(call_steps)
        if jit is not None:
            self.ran["keras_jit_compile"] = jit
        if jit is not None and jit != self.expected_jit:
            raise RuntimeError(
                f"fit traced its step with jit_compile {jit}, not the {self.expected_jit} "
                "of this cell's key"
            )
        if call_steps and call_steps != {self.steps_per_call}:
            raise RuntimeError(
                f"fit ran {sorted(call_steps)} steps per execution, not {self.steps_per_call}"
            )

    @property
    def epoch_steps(self) -> int:
        return self.steps_per_epoch

    def trace_counts(self) -> dict[str, int]:
        function = self.model.train_function
        found = _step_functions(function) if function is not None else []
        counts = [int(f.experimental_get_tracing_count()) for f in found]
        return {"train_function": max(counts)} if counts else {}

    def facts(self) -> dict[str, Any]:
        """What Keras ran with, read back from the last ``run`` (None: not observed:
        no traced step function found, or one call only)."""
        return {
            "keras_jit_compile": self.ran.get("keras_jit_compile"),
            "keras_steps_per_execution": self.ran.get("keras_steps_per_execution"),
        }


@LOOPS.register("fit")
class Fit(LoopStyle):
    description = "keras Model.fit with Keras's defaults (the reference users know)"
    reference = True
    changes = "Keras Model.fit with Keras's defaults (the reference users know)"
    per_call_setup = True  # fit's set-up before its first batch, large in Keras 3
    jit_setting = True  # jit_compile auto (Keras's choice), off or on: --fit-jit

    @classmethod
    def unsupported(cls, steps_per_call=1, strategy="none"):
        if strategy.startswith("multiworker"):
            # the guide's multi-worker fit fails in Keras 3 (keras-team/keras#20585, open)
            return (
                "Keras 3's fit does not train under MultiWorkerMirroredStrategy (it converts "
                "a PerReplica batch to a Tensor: keras-team/keras#20585)"
            )
        return super().unsupported(steps_per_call, strategy)

    def make_trainer(
        self, workload, state, train, batch_size, steps_per_call=1, fit_jit="auto", strategy=None
    ):
        reason = self.unsupported(steps_per_call, distribute.key_of(strategy))
        if reason:
            raise NotImplementedError(reason)
        # under a strategy, the worker built the state and calls this in its scope:
        # Keras compiles there and distributes fit's batches itself
        return FitTrainer(workload, state, train, batch_size, steps_per_call, fit_jit)
