"""fit: Keras ``Model.fit`` with Keras's defaults, as users run it.

linear and mlp compile their model with the workload's loss object, optimizer
and metrics and use Keras's own ``train_step``; the GAN uses a ``keras.Model``
subclass whose ``train_step`` is the workload's step. ``compile`` keeps Keras's
defaults (``jit_compile="auto"``: XLA on GPU, off on CPU-only machines;
``steps_per_execution=1``); ``facts()`` records what Keras actually chose.
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

from loops.base import LOOPS, LoopStyle, StepHooks, StopTraining, Trainer, steps_per_epoch


class _HookCallback(keras.callbacks.Callback):
    def __init__(self, hooks: StepHooks, n_steps: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.hooks = hooks
        self.n_steps = n_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_train_begin(self, logs=None) -> None:
        self.hooks.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None) -> None:
        step = self.epoch * self.steps_per_epoch + batch
        self.hooks.on_step_begin(step)
        if step >= self.n_steps:
            raise StopTraining  # fit trains exactly n_steps steps


class _RecordCallback(keras.callbacks.Callback):
    """Per-step logs for tests. Forces a host sync per step (disables async dispatch)."""

    def __init__(self, hooks: StepHooks, steps_per_epoch: int, running_mean: bool) -> None:
        super().__init__()
        self.hooks = hooks
        self.steps_per_epoch = steps_per_epoch
        self.running_mean = running_mean
        self.epoch = 0
        self.previous_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch
        self.previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None) -> None:
        logs = dict(logs or {})
        if self.running_mean:
            # Keras reports the mean loss over the epoch so far; recover this batch's.
            mean = float(logs["loss"])
            logs["loss"] = (batch + 1) * mean - batch * self.previous_mean
            self.previous_mean = mean
        self.hooks.on_step_end(self.epoch * self.steps_per_epoch + batch, logs)


def _tracing_counts(function: Any, depth: int = 3) -> list[int]:
    """Trace counts of the tf.functions Keras keeps in its train_function's closure."""
    counter = getattr(function, "experimental_get_tracing_count", None)
    if counter is not None:
        return [int(counter())]
    if depth == 0:
        return []
    found: list[int] = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            found += _tracing_counts(cell.cell_contents, depth - 1)
        except ValueError:  # empty cell
            continue
    wrapped = getattr(function, "__wrapped__", None)
    if wrapped is not None:
        found += _tracing_counts(wrapped, depth - 1)
    return found


class FitTrainer(Trainer):
    def __init__(self, workload, state, train, batch_size) -> None:
        super().__init__(workload, state)
        self.model = workload.fit_model(state)
        self.x, self.y = workload.fit_arguments(train)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch(train, batch_size)

    def run(self, n_steps: int, hooks: StepHooks) -> None:
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
            return
        raise RuntimeError("fit ended before the requested number of steps")

    @property
    def epoch_steps(self) -> int:
        return self.steps_per_epoch

    def trace_counts(self) -> dict[str, int]:
        function = self.model.train_function
        counts = _tracing_counts(function) if function is not None else []
        return {"train_function": max(counts)} if counts else {}

    def facts(self) -> dict[str, Any]:
        return {
            "keras_jit_compile": bool(self.model.jit_compile),
            "keras_steps_per_execution": int(self.model.steps_per_execution),
        }


@LOOPS.register("fit")
class Fit(LoopStyle):
    description = "keras Model.fit with Keras's defaults (the reference users know)"
    reference = True
    changes = "Keras Model.fit with Keras's defaults (the reference users know)"
    per_call_setup = True  # fit's set-up before its first batch, large in Keras 3

    def make_trainer(self, workload, state, train, batch_size):
        return FitTrainer(workload, state, train, batch_size)
