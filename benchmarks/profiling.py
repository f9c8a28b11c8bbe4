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

- ``profile_step_time_s``: the profiler's step time (mean over traced steps,
  input_pipeline_analyzer's step table: the step marker's span);
- ``profile_input_wait_s``: time waiting for input (its "Input" column);
- ``profile_op_time_s``: time TF spends *executing kernels*: the device-side
  columns of the step table (device compute, device-to-device, collectives;
  zero on CPU) plus the host's kernel-execution time from the trace viewer's
  events (``trace_viewer`` JSON): the union, within each step, of the
  ``EagerKernelExecute`` events (TF's eager runtime wraps exactly the
  ``kernel->Run`` of an op or of a whole ``tf.function``/XLA program in this
  TraceMe, after op lookup, kernel caching, placement and input checks), less
  input, which is the input column's: eager input ops (tf_data's ``next``) are
  left out, and input events inside a function's run (fit reads its iterator
  in the graph: ``IteratorGetNextOp::DoCompute``) are cut out; at most step -
  input;
- the rest, ``profile_overhead_fraction`` = (step - op - input) / step: host
  and framework overhead: Python (the loop, Keras layers, ``tf.function``'s
  call), eager dispatch (``TFE_Py_FastPathExecute``, ``EagerExecute`` up to the
  kernel run, tensor conversion and handles), compile, and the profiler's own
  cost;
- ``profile_host_compute_s`` (process rows only): the step table's "Host
  compute", for comparison (see below);
- ``profile_top_ops``: ops by self time (``framework_op_stats``); an XLA
  program, which that table lists as one op, by its HLO ops (the trace's thunk
  events, ``hlo_op``); where that table is empty (eager), eager ops by
  kernel-execution time from the trace;
- ``profile_cost_fraction``: what profiling itself costs, (wall-clock step time
  while tracing, ``profile_wall_step_time_s``, - steady step time of the timed
  windows) / steady step time.

Why not the step table's "Host compute" column: it is the time inside TF's C++
runtime, dispatch included, and on CPU every eager op runs as a one-op function
whose kernel gets no event of its own, so for eager it mixes dispatch and run.
``EagerKernelExecute`` marks kernel execution the same way in every loop style
(an eager op's kernel, a ``tf.function``'s graph run, an XLA program's run); with
it the profiler's overhead fraction agrees with the clock's. The evidence and
the figures: docs/profiling.md ("What counts as what") and
docs/results/2026-11-21-profiler-breakdown.md. On GPU the host part is kernel
launch, overlapping device compute: the cap at step - input keeps the parts
adding up, but that case is not validated here.

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
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tf_loopbench.benchmarks.clock import now
from tf_loopbench.loops.base import StepHooks, Trainer
from tf_loopbench.loops.styles.custom import CustomLoopTrainer

#: steps run between the evaluation and the traced steps, outside the trace: the first
#: step after the evaluation (and, for fit, of a new fit call) touches cold caches
UNTRACED_WARMUP_STEPS = 2
#: ops listed in ``profile_top_ops``
TOP_OPS = 5

# Columns of the profiler's step-time breakdown (input_pipeline_analyzer), in ms.
_STEP_TIME_COLUMN = "stepTimeMs"
_STEP_NAME_COLUMN = "stepnum"
#: device-side op time; the host side comes from the trace's kernel-execution events
_DEVICE_OP_TIME_COLUMNS = (
    "deviceComputeTimeMs",
    "deviceToDeviceTimeMs",
    "deviceCollectivesTimeMs",
)
_INPUT_COLUMN = "infeedTimeMs"

# Trace viewer events (TF's TraceMe names and stats).
#: TF's eager runtime around ``kernel->Run`` of an op or a function (execute.cc)
_KERNEL_EVENT = "EagerKernelExecute"
#: the enclosing dispatch event; its ``eager_op`` stat names the op or function
_DISPATCH_EVENT = "EagerExecute"
#: eager ops that fetch input: their time is the input column's, not op time
_INPUT_OP_PREFIXES = ("IteratorGetNext", "MultiDeviceIteratorGetNext")
#: host events the profiler's step analysis counts as waiting for input (xprof's
#: ClassifyCpuEvent: names starting with this, case-insensitive), e.g. the
#: ``IteratorGetNextOp::DoCompute`` of an iterator read inside a tf.function (fit)
_INPUT_EVENT_PREFIX = "iteratorgetnext"


#: the args XLA's CPU runtime gives the event of every thunk it runs: the HLO op and
#: its module (named after the compiled function, e.g. ``a_inference_train_step_689__Xla...``)
_HLO_OP_ARG, _HLO_MODULE_ARG = "hlo_op", "hlo_module"


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
    #: the step table's host compute (TF's C++ runtime, dispatch included), for comparison
    host_compute_s: float = math.nan

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
                raise ProfileError(
                    f"the profiler could not write its trace: {exc.message}"
                ) from None


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
    trainer: Trainer,
    logdir: str,
    sync: Callable[[], object],
    n_steps: int,
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


def _convert(paths: Sequence[str], tool: str) -> Any:
    """One xprof tool's JSON output for the trace ``paths``, parsed."""
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
    return json.loads(data)


def _tool_tables(paths: Sequence[str], tool: str) -> list[dict[str, Any]]:
    """One xprof tool's output (a list of DataTable-like dicts) for the trace ``paths``."""
    tables = _convert(paths, tool)
    return tables if isinstance(tables, list) else [tables]


def _rows(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A DataTable's rows as dicts keyed by column id."""
    ids = [column["id"] for column in table.get("cols", [])]
    return [
        {name: (cell or {}).get("v") for name, cell in zip(ids, row["c"], strict=False)}
        for row in table.get("rows", [])
    ]


def step_rows(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The input_pipeline_analyzer's step table of the trace ``paths``: one row per
    traced step (``stepnum``, ``stepTimeMs``, ``infeedTimeMs`` (input), device and
    host columns), in milliseconds."""
    for table in _tool_tables(paths, "input_pipeline_analyzer"):
        ids = {column["id"] for column in table.get("cols", [])}
        if _STEP_TIME_COLUMN in ids:
            return _rows(table)
    return []


def trace_events(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The trace viewer's complete events (``ph == "X"``: name, ts and dur in us, pid,
    tid, args) for the trace ``paths``, from xprof's ``trace_viewer`` converter (JSON)."""
    events = _convert(paths, "trace_viewer").get("traceEvents", [])
    return [e for e in events if e.get("ph") == "X"]


@dataclass(frozen=True)
class KernelTime:
    """Host kernel-execution time of a trace, from its ``EagerKernelExecute`` events."""

    #: per step name ("train 3"): length of the union of the step's kernel executions
    #: less the time of its input events inside them, s
    by_step: dict[str, float]
    #: per eager op type (primitive ops only, not functions): summed kernel time, s
    by_eager_op: dict[str, float]


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def kernel_time(events: Sequence[Mapping[str, Any]]) -> KernelTime:
    """Per step, the host time in ``EagerKernelExecute`` (the kernel run of an eager op,
    or of a whole ``tf.function``/XLA program), input excluded; nested or parallel
    executions count once (union), clipped to the step marker's span.

    Input time belongs to the input column, so it is left out wherever it appears:
    eager input ops (``IteratorGetNext`` called from Python, tf_data's ``next``) are
    not counted, and input events inside a counted kernel execution (an iterator read
    inside a ``tf.function``, as fit's step does) are cut out of it.

    Steps are the step-marker events (``step_num`` stat); an event belongs to the step
    the profiler grouped it with (``group_id`` stat), or else to the step whose span
    contains its start. Each kernel event is named by its nearest enclosing
    ``EagerExecute`` on the same thread (``eager_op``, ``is_func`` stats).
    """
    steps: dict[str, tuple[float, float, str]] = {}
    input_events: list[Mapping[str, Any]] = []
    by_thread: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for event in events:
        args = event.get("args") or {}
        if "step_num" in args and "group_id" in args:
            start = float(event["ts"])
            steps[str(args["group_id"])] = (
                start,
                start + float(event.get("dur", 0)),
                event["name"],
            )
        if event.get("name") in (_KERNEL_EVENT, _DISPATCH_EVENT):
            by_thread.setdefault((event.get("pid"), event.get("tid")), []).append(event)
        elif str(event.get("name", "")).lower().startswith(_INPUT_EVENT_PREFIX):
            input_events.append(event)

    def step_of(event: Mapping[str, Any]) -> str | None:
        group = (event.get("args") or {}).get("group_id")
        if group is not None and str(group) in steps:
            return str(group)
        ts = float(event["ts"])
        return next((g for g, (a, b, _) in steps.items() if a <= ts < b), None)

    def clipped(event: Mapping[str, Any]) -> tuple[str, tuple[float, float]] | None:
        group = step_of(event)
        if group is None:
            return None
        ts, dur = float(event["ts"]), float(event.get("dur", 0))
        start, end, _ = steps[group]
        if min(ts + dur, end) <= max(ts, start):
            return None
        return group, (max(ts, start), min(ts + dur, end))

    intervals: dict[str, list[tuple[float, float]]] = {g: [] for g in steps}
    inputs: dict[str, list[tuple[float, float]]] = {g: [] for g in steps}
    for event in input_events:
        found = clipped(event)
        if found:
            inputs[found[0]].append(found[1])
    by_op: dict[str, float] = {}
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (float(e["ts"]), -float(e.get("dur", 0))))
        open_dispatch: list[Mapping[str, Any]] = []  # enclosing EagerExecute events
        for event in thread_events:
            ts, dur = float(event["ts"]), float(event.get("dur", 0))
            while open_dispatch and (
                float(open_dispatch[-1]["ts"]) + float(open_dispatch[-1].get("dur", 0)) <= ts
            ):
                open_dispatch.pop()
            if event["name"] == _DISPATCH_EVENT:
                open_dispatch.append(event)
                continue
            dispatch_args = (open_dispatch[-1].get("args") or {}) if open_dispatch else {}
            op = str(dispatch_args.get("eager_op", ""))
            if op.startswith(_INPUT_OP_PREFIXES):
                continue
            found = clipped(event)
            if found:
                intervals[found[0]].append(found[1])
            if op and dispatch_args.get("is_func") == "0":
                by_op[op] = by_op.get(op, 0.0) + dur * 1e-6
    # |kernels less input| = |kernels or input| - |input|
    return KernelTime(
        by_step={
            steps[g][2]: (_union_us(iv + inputs[g]) - _union_us(inputs[g])) * 1e-6
            for g, iv in intervals.items()
        },
        by_eager_op=by_op,
    )


@dataclass(frozen=True)
class XlaOpTime:
    """The HLO ops XLA's CPU runtime ran in a trace, from their thunks' events."""

    #: per HLO op: summed self time (its own event less the events nested in it on the
    #: same thread: a while loop's body ops are theirs), s
    by_op: dict[str, float]
    #: the HLO modules they ran in (one per compiled function)
    modules: frozenset[str]

    def runs(self, function: str) -> bool:
        """Whether ``function`` (a framework op's name: ``__inference_train_step_689``)
        is one of the compiled programs, which the profiler's op table lists as one op."""
        name = function.lstrip("_")
        ends = re.compile(re.escape(name) + r"(__|\.|$)")  # the module's name goes on with "__"
        return bool(name) and any(ends.search(module) for module in self.modules)


def xla_op_time(events: Sequence[Mapping[str, Any]]) -> XlaOpTime:
    """Self time per HLO op of the XLA programs in a trace: XLA's CPU runtime records
    every thunk it runs as an event with ``hlo_op`` and ``hlo_module`` args, while the
    profiler's op table shows the whole program as one op (the function's). Thunks run
    on several threads at once, so their sum may exceed the wall-clock span.

    >>> ev = lambda op, ts, dur: {"ts": ts, "dur": dur, "tid": 1, "args": {"hlo_op": op, "hlo_module": "m"}}
    >>> xla_op_time([ev("while", 0, 10), ev("fusion", 2, 6), ev("fusion", 20, 3)]).by_op
    {'while': 4e-06, 'fusion': 9e-06}
    """
    by_thread: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    modules: set[str] = set()
    for event in events:
        args = event.get("args") or {}
        if _HLO_OP_ARG in args:
            by_thread.setdefault((event.get("pid"), event.get("tid")), []).append(event)
            modules.add(str(args.get(_HLO_MODULE_ARG, "")))
    self_us: dict[str, float] = {}
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (float(e["ts"]), -float(e.get("dur", 0))))
        open_ops: list[tuple[float, str]] = []  # (end, op) of the enclosing thunks
        for event in thread_events:
            ts, dur = float(event["ts"]), float(event.get("dur", 0))
            while open_ops and open_ops[-1][0] <= ts:
                open_ops.pop()
            op = str(event["args"][_HLO_OP_ARG])
            self_us[op] = self_us.get(op, 0.0) + dur
            if open_ops:  # nested: its time is its own, not its parent's
                parent = open_ops[-1][1]
                self_us[parent] -= dur
            open_ops.append((ts + dur, op))
    return XlaOpTime({op: us * 1e-6 for op, us in self_us.items()}, frozenset(modules - {""}))


def _top_ops(
    paths: Sequence[str],
    n_steps: int,
    kernels: KernelTime,
    xla: XlaOpTime,
    limit: int = TOP_OPS,
) -> list[dict[str, Any]]:
    """Ops by total self time (framework_op_stats), per step; ``fraction`` is the share
    of all ops' self time (idle time excluded). An XLA program, which that table lists
    as one op, is replaced by its HLO ops from the trace. Without any ops (eager: the
    profiler has no per-kernel events), eager ops by kernel-execution time from the
    trace."""
    tables = _tool_tables(paths, "framework_op_stats")
    ops = [
        {
            "name": f"{row['operation']} ({row['type']})" if row.get("type") else row["operation"],
            "time_us": float(row["total_self_time"]),
        }
        for row in _rows(tables[0])
        if row.get("type") != "IDLE"
        and float(row.get("total_self_time") or 0) > 0
        and not xla.runs(str(row["operation"]))
    ]
    ops += [
        {"name": f"{op} (XLA)", "time_us": seconds * 1e6}
        for op, seconds in xla.by_op.items()
        if seconds > 0
    ]
    if not ops:
        ops = [
            {"name": f"{op} (eager op)", "time_us": seconds * 1e6}
            for op, seconds in kernels.by_eager_op.items()
            if seconds > 0
        ]
    total_us = sum(op["time_us"] for op in ops)
    ops.sort(key=lambda op: op["time_us"], reverse=True)
    return [
        {
            "name": op["name"],
            "self_time_s": op["time_us"] * 1e-6 / n_steps,
            "fraction": op["time_us"] / total_us,
        }
        for op in ops[:limit]
    ]


def analyze_trace(paths: Sequence[str]) -> StepBreakdown:
    """The per-step breakdown of a trace: step time and input wait from the profiler's
    input_pipeline_analyzer, op time from its trace viewer's kernel-execution events
    (plus the step table's device columns), top ops from framework_op_stats.

    >>> analyze_trace(trace_files("/tmp/run/profile/mlp-eager-cpu-b128")).overhead_fraction  # doctest: +SKIP
    0.85
    """
    if not paths:
        raise ProfileError("the profiler wrote no trace (no *.xplane.pb file)")
    steps = [row for row in step_rows(paths) if float(row.get(_STEP_TIME_COLUMN) or 0) > 0]
    if not steps:
        raise ProfileError(
            "the trace has no steps (the profiler observed no step marker): " + ", ".join(paths)
        )
    events = trace_events(paths)
    kernels = kernel_time(events)
    missing = [
        s.get(_STEP_NAME_COLUMN) for s in steps if s.get(_STEP_NAME_COLUMN) not in kernels.by_step
    ]
    if missing:
        raise ProfileError(
            f"the trace viewer has no step marker for steps {missing}: {', '.join(paths)}"
        )

    def ms(step: Mapping[str, Any], columns: Sequence[str]) -> float:
        return sum(float(step.get(c) or 0) for c in columns) * 1e-3

    step_s = [ms(s, [_STEP_TIME_COLUMN]) for s in steps]
    input_s = [ms(s, [_INPUT_COLUMN]) for s in steps]
    op_s = [
        min(ms(s, _DEVICE_OP_TIME_COLUMNS) + kernels.by_step[s[_STEP_NAME_COLUMN]], total - wait)
        for s, total, wait in zip(steps, step_s, input_s, strict=True)
    ]
    return StepBreakdown(
        n_steps=len(steps),
        step_time_s=statistics.fmean(step_s),
        op_time_s=statistics.fmean(op_s),
        input_wait_s=statistics.fmean(input_s),
        top_ops=_top_ops(paths, len(steps), kernels, xla_op_time(events)),
        host_compute_s=statistics.fmean(ms(s, ["hostComputeTimeMs"]) for s in steps),
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
            tf.summary.scalar(
                "timing/step_time_s", step_time_s, step=(window + 1) * steps_per_window
            )
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
    steps_per_window: int = 1,
) -> dict[str, Any]:
    """Profile ``job.config.profile_steps`` more steps of ``trainer`` into ``job.profile_dir``;
    returns the ``profile_*`` columns of the worker's process row.

    ``window_step_times_s`` are the step times of the timed windows: their median is
    the steady step time that ``profile_cost_fraction`` compares with, and they are
    written as TensorBoard scalars (x: steps done, ``steps_per_window`` a window). A profile that cannot be taken or analysed gives
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
        write_scalars(logdir, window_step_times_s, steps_per_window, traced, breakdown)
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
            profile_host_compute_s=breakdown.host_compute_s,
        )
    return row
