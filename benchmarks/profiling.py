"""The TensorFlow Profiler beside the clock: a trace of a few steady-state steps per cell.

What it measures: after a worker's timed windows (never overlapping them), a
few more training steps of the same trainer run under
``tf.profiler.experimental.start``/``stop``, each step wrapped in a step marker
``tf.profiler.experimental.Trace("train", step_num=i, _r=1)``, so that the
profiler's step analysis works for custom loops and on CPU as well as for
``fit`` (without markers it reports "No step marker observed"). The markers
come from the trainer's ordinary ``StepHooks``: custom loops call
``on_step_begin(i)`` before every step and ``fit`` calls it from
``on_train_batch_begin``, so step ``i``'s marker spans from the start of batch
``i`` to the start of batch ``i + 1`` (the loop's own per-step work included).

From the trace, the profiler's own converters (xprof's ``xspace_to_tool_data``,
the code behind TensorBoard's Profile tab) give, per step:

- ``profile_op_time_s``: time the profiler attributes to TF ops (host and
  device compute, device-to-device and collective transfers);
- ``profile_input_wait_s``: time waiting for input (the "Input" column);
- the rest, ``profile_overhead_fraction`` = (step - op - input) / step: host
  and framework overhead (Python, eager dispatch, kernel launch, compile);
- ``profile_step_time_s``: the profiler's step time (mean over traced steps);
- ``profile_top_ops``: ops by self time (``framework_op_stats``);
- ``profile_cost_fraction``: what profiling itself costs, (wall-clock step time
  while tracing, ``profile_wall_step_time_s``, - steady step time of the timed
  windows) / steady step time.

On CPU with TF 2.21 an eager op runs as a one-op function and the profiler
emits no per-kernel event for it: eager cells get no top ops, and their op time
is TF's whole C++ dispatch-and-run time ("Host compute"), so the rest is the
Python between ops, not all of eager's overhead against ``tf.function``.

Beside each trace, TensorBoard scalars (step time of every timed window, the
step times and losses of the traced steps) go to the same per-cell logdir, so
``tensorboard --logdir <run>/profile`` shows one run per cell in both the
Profile and the Scalars tabs. Layout::

    <run>/profile/<workload>-<loop>-<device>-b<batch>/
        events.out.tfevents...                   (scalars)
        plugins/profile/<timestamp>/<host>.xplane.pb

Run it with ``loopbench run --workload mlp --loop eager,tf_function --profile``.
A cell whose profile cannot be captured or analysed keeps its timing and gets
a ``profile_error`` (the profiler unavailable, another profiling session
already running in the process, a trace without steps).
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from benchmarks.clock import now
from loops.base import StepHooks, Trainer
from loops.styles.custom import CustomLoopTrainer

#: steps run between the evaluation and the traced steps, outside the trace: the first
#: step after the evaluation (and, for fit, of a new fit call) touches cold caches
UNTRACED_WARMUP_STEPS = 2
#: ops listed in ``profile_top_ops``
TOP_OPS = 5

# Columns of the profiler's step-time breakdown (input_pipeline_analyzer), in ms.
_STEP_TIME_COLUMN = "stepTimeMs"
_OP_TIME_COLUMNS = (
    "deviceComputeTimeMs",
    "hostComputeTimeMs",
    "deviceToDeviceTimeMs",
    "deviceCollectivesTimeMs",
)
_INPUT_COLUMN = "infeedTimeMs"


class ProfileError(RuntimeError):
    """A cell's profile could not be captured or analysed (its timing still stands)."""


@dataclass(frozen=True)
class StepBreakdown:
    """Per-step means over the traced steps, from the profiler's own analysis."""

    n_steps: int
    step_time_s: float
    op_time_s: float
    input_wait_s: float
    top_ops: list[dict[str, Any]]

    @property
    def overhead_s(self) -> float:
        return self.step_time_s - self.op_time_s - self.input_wait_s

    @property
    def overhead_fraction(self) -> float:
        return self.overhead_s / self.step_time_s


class ProfiledSteps(StepHooks):
    """StepHooks that profile steps ``[warmup, warmup + n_steps)`` of one ``Trainer.run``.

    The profiler starts after the untraced warm-up steps (and after fit's per-call
    set-up) and stops after a host sync at the end, so asynchronously dispatched
    work of the last step is inside the trace. Each traced step gets a step marker.
    Losses of the traced steps are kept as tensors and read only after the trace.
    """

    def __init__(
        self,
        logdir: str,
        sync: Callable[[], object],
        warmup: int,
        n_steps: int,
        record_logs: bool = False,
    ) -> None:
        self.logdir = logdir
        self.sync = sync
        self.warmup = warmup
        self.n_steps = n_steps
        self.record_logs = record_logs
        self.losses: list[Any] = []
        self.profiling = False
        self.traced_wall_s = math.nan
        self._marker: Any = None
        self._started_at = math.nan

    def on_step_begin(self, step: int) -> None:
        self._close_marker()
        if step == self.warmup:
            self.sync()
            start_profiler(self.logdir)
            self.profiling = True
            self._started_at = now()
        if step == self.warmup + self.n_steps:
            self.sync()
            self.traced_wall_s = now() - self._started_at
            self.stop()
        elif self.profiling:
            self._marker = tf.profiler.experimental.Trace(
                "train", step_num=step - self.warmup, _r=1
            )
            self._marker.__enter__()

    def on_step_end(self, step: int, logs: Mapping[str, Any]) -> None:
        if self.profiling and "loss" in logs:
            self.losses.append(logs["loss"])

    def _close_marker(self) -> None:
        if self._marker is not None:
            self._marker.__exit__(None, None, None)
            self._marker = None

    def stop(self) -> None:
        """Close the open step marker and stop the profiler (writes the trace); idempotent."""
        self._close_marker()
        if self.profiling:
            self.profiling = False
            try:
                tf.profiler.experimental.stop()
            except tf.errors.OpError as exc:
                raise ProfileError(f"the profiler could not write its trace: {exc.message}") from None


def start_profiler(logdir: str) -> None:
    """``tf.profiler.experimental.start`` with its failures turned into ProfileError."""
    try:
        tf.profiler.experimental.start(logdir)
    except tf.errors.AlreadyExistsError:
        raise ProfileError(
            "another profiling session is already running in this process "
            "(tf.profiler or a TensorBoard callback with profile_batch); no trace taken"
        ) from None
    except (tf.errors.OpError, AttributeError) as exc:
        raise ProfileError(f"the TensorFlow Profiler is unavailable: {exc}") from None


def capture(
    trainer: Trainer, logdir: str, sync: Callable[[], object], n_steps: int,
    warmup: int = UNTRACED_WARMUP_STEPS,
) -> ProfiledSteps:
    """Run ``warmup + n_steps`` more steps of ``trainer``, the last ``n_steps`` traced
    into ``logdir``. Returns the hooks (wall time and losses of the traced steps).

    >>> hooks = capture(trainer, "/tmp/run/profile/mlp-eager-cpu-b128", sync, 5)  # doctest: +SKIP
    """
    # Custom loops hand each step's logs (tensors) over without a host sync; fit's
    # per-step logs would turn off its asynchronous dispatch, so fit is not asked.
    record_logs = isinstance(trainer, CustomLoopTrainer)
    hooks = ProfiledSteps(logdir, sync, warmup, n_steps, record_logs)
    try:
        trainer.run(warmup + n_steps, hooks)
    finally:
        hooks.stop()  # an exception inside the traced steps must not leave the profiler on
    if math.isnan(hooks.traced_wall_s):
        raise ProfileError(f"the trainer stopped before the {n_steps} traced steps were done")
    return hooks


def trace_files(logdir: str) -> list[str]:
    """The newest profile session's ``*.xplane.pb`` files under ``logdir``."""
    sessions = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*")))
    if not sessions:
        return []
    return sorted(glob.glob(os.path.join(sessions[-1], "*.xplane.pb")))


def _tool_tables(paths: Sequence[str], tool: str) -> list[dict[str, Any]]:
    """One xprof tool's output (a list of DataTable-like dicts) for the trace ``paths``."""
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError as exc:
        raise ProfileError(
            f"the profiler's analysis is unavailable (install tensorboard-plugin-profile): {exc}"
        ) from None
    data, _content_type = raw_to_tool_data.xspace_to_tool_data(
        list(paths), tool, {"use_saved_result": False}
    )
    if not data:
        raise ProfileError(f"the profiler's {tool} found nothing in {', '.join(paths)}")
    tables = json.loads(data)
    return tables if isinstance(tables, list) else [tables]


def _rows(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A DataTable's rows as dicts keyed by column id."""
    ids = [column["id"] for column in table.get("cols", [])]
    return [
        {name: (cell or {}).get("v") for name, cell in zip(ids, row["c"], strict=False)}
        for row in table.get("rows", [])
    ]


def _step_rows(paths: Sequence[str]) -> list[dict[str, Any]]:
    for table in _tool_tables(paths, "input_pipeline_analyzer"):
        ids = {column["id"] for column in table.get("cols", [])}
        if _STEP_TIME_COLUMN in ids:
            return _rows(table)
    return []


def _top_ops(paths: Sequence[str], n_steps: int, limit: int = TOP_OPS) -> list[dict[str, Any]]:
    """Ops by total self time (framework_op_stats), per step; ``fraction`` is the share
    of all ops' self time (idle time excluded)."""
    tables = _tool_tables(paths, "framework_op_stats")
    ops = [
        row for row in _rows(tables[0])
        if row.get("type") != "IDLE" and float(row.get("total_self_time") or 0) > 0
    ]
    total_us = sum(float(row["total_self_time"]) for row in ops)
    ops.sort(key=lambda row: float(row["total_self_time"]), reverse=True)
    return [
        {
            "name": f"{row['operation']} ({row['type']})" if row.get("type") else row["operation"],
            "self_time_s": float(row["total_self_time"]) * 1e-6 / n_steps,
            "fraction": float(row["total_self_time"]) / total_us,
        }
        for row in ops[:limit]
    ]


def analyze_trace(paths: Sequence[str]) -> StepBreakdown:
    """The per-step breakdown of a trace, from the profiler's input_pipeline_analyzer
    (step-time breakdown) and framework_op_stats (top ops).

    >>> analyze_trace(trace_files("/tmp/run/profile/mlp-eager-cpu-b128")).overhead_fraction  # doctest: +SKIP
    0.49
    """
    if not paths:
        raise ProfileError("the profiler wrote no trace (no *.xplane.pb file)")
    steps = [row for row in _step_rows(paths) if float(row.get(_STEP_TIME_COLUMN) or 0) > 0]
    if not steps:
        raise ProfileError(
            "the trace has no steps (the profiler observed no step marker): "
            + ", ".join(paths)
        )

    def mean_s(columns: Sequence[str]) -> float:
        return statistics.fmean(sum(float(s.get(c) or 0) for c in columns) for s in steps) * 1e-3

    return StepBreakdown(
        n_steps=len(steps),
        step_time_s=mean_s([_STEP_TIME_COLUMN]),
        op_time_s=mean_s(_OP_TIME_COLUMNS),
        input_wait_s=mean_s([_INPUT_COLUMN]),
        top_ops=_top_ops(paths, len(steps)),
    )


def write_scalars(
    logdir: str,
    window_step_times_s: Sequence[float],
    steps_per_window: int,
    traced: ProfiledSteps,
    breakdown: StepBreakdown | None,
) -> None:
    """TensorBoard scalars beside the trace: every timed window's step time (x: steps
    done at the window's end), the traced steps' losses, and the breakdown."""
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for window, step_time_s in enumerate(window_step_times_s):
            tf.summary.scalar("timing/step_time_s", step_time_s, step=(window + 1) * steps_per_window)
        for step, loss in enumerate(traced.losses):
            tf.summary.scalar("profile/loss", float(loss), step=step)
        if breakdown is not None:
            for name, value in (
                ("profile/step_time_s", breakdown.step_time_s),
                ("profile/op_time_s", breakdown.op_time_s),
                ("profile/input_wait_s", breakdown.input_wait_s),
                ("profile/overhead_fraction", breakdown.overhead_fraction),
            ):
                tf.summary.scalar(name, value, step=0)
    writer.close()


def profile_trainer(
    trainer: Trainer,
    job: Any,
    sync: Callable[[], object],
    window_step_times_s: Sequence[float] = (),
) -> dict[str, Any]:
    """Profile ``job.config.profile_steps`` more steps of ``trainer`` into ``job.profile_dir``;
    returns the ``profile_*`` columns of the worker's process row.

    ``window_step_times_s`` are the step times of the timed windows: their median is
    the steady step time that ``profile_cost_fraction`` compares with, and they are
    written as TensorBoard scalars. A profile that cannot be taken or analysed gives
    ``profile_error`` (the cell's timing stands).

    >>> profile_trainer(trainer, job, sync, [0.0102, 0.0099])["profile_op_time_s"]  # doctest: +SKIP
    0.0031
    """
    logdir = str(job.profile_dir)
    row: dict[str, Any] = {"profile_dir": logdir}
    n_steps = int(job.config.profile_steps)
    try:
        traced = capture(trainer, logdir, sync, n_steps)
    except ProfileError as exc:
        return {**row, "profile_error": str(exc)}
    breakdown: StepBreakdown | None = None
    try:
        breakdown = analyze_trace(trace_files(logdir))
    except ProfileError as exc:
        row["profile_error"] = str(exc)
    try:
        write_scalars(logdir, window_step_times_s, job.config.steps_per_window, traced, breakdown)
    except Exception as exc:  # e.g. tensorboard missing: tf.summary has no implementation
        problem = f"TensorBoard scalars not written: {type(exc).__name__}: {exc}"
        row["profile_error"] = "; ".join(filter(None, [row.get("profile_error"), problem]))
    traced_step_s = traced.traced_wall_s / n_steps
    steady_step_s = statistics.median(window_step_times_s) if window_step_times_s else math.nan
    row["profile_wall_step_time_s"] = traced_step_s
    row["profile_cost_fraction"] = (traced_step_s - steady_step_s) / steady_step_s
    if breakdown is not None:
        row.update(
            profile_steps=breakdown.n_steps,
            profile_step_time_s=breakdown.step_time_s,
            profile_op_time_s=breakdown.op_time_s,
            profile_input_wait_s=breakdown.input_wait_s,
            profile_overhead_fraction=breakdown.overhead_fraction,
            profile_top_ops=breakdown.top_ops,
        )
    return row
