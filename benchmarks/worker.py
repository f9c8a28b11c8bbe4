"""One worker process: one repeat of one cell, measured in phases.

Runs in a fresh process (see ``benchmarks/runner.py``: forked from a fork server
that has only imported TensorFlow, or spawned) so that every statistical sample
starts with a cold TensorFlow runtime: no traces, caches, thread pools or
allocator state inherited from other cells (``tf_runtime_fresh`` records that
the runtime had not started when the worker set its thread pools). Thread
settings are fixed before TensorFlow's runtime starts and recorded. Phases, each its own figure:

- data: make the workload's data (not a loop cost; recorded only)
- build: models, optimizers, trainer (fit: compile)
- fit set-up (fit only): from calling ``fit`` to its first batch
- first call (one step, or K with several steps per call): trace (and XLA
  compile); ``compile_s`` = first call - K steady steps
- warm-up, then ``windows`` timed windows (see ``benchmarks/clock.py``: sized by
  duration unless ``--steps`` fixes the count; no window holds one of fit's
  epoch ends, whose cost is ``epoch_end_spans_s``, every timed epoch end after
  the first, and their median ``epoch_end_s``; the first is ``first_epoch_end_s``)
- final evaluation: the same eager code for every loop style (final_loss)
- profile (with --profile): a few more steps under the TensorFlow Profiler,
  after the timed windows, never overlapping them.

A failure inside the worker (an exception, a NaN loss) becomes a ``failed``
row with its reason. Only a loop style that declines a pair or a setting
(NotImplementedError from ``make_trainer``, e.g. eager with several steps per
call), a precision the device or the workload cannot train in (loops/knobs.py),
an absent device, or XLA's unsupported-op error at a
step's first call (``xla_unsupported``: this model cannot run under XLA) makes a
``skipped`` row: a NotImplementedError from inside TensorFlow or Keras while
training is a failure.

The cell's precision is Keras's global policy from before the data and models are
made. Its steps per call are whole calls everywhere: the data is cut to a
multiple of the run's K values (their least common multiple), and
``equal_work_steps`` is 1 + warm-up steps rounded up to that multiple, the same
for every cell of the run.

Equal work: when the first step and the warm-up are done (the same batches in the
same order for every loop style), the workload's equal-work loss is taken once,
untimed (``equal_work_loss`` after ``equal_work_steps``; ``Workload.equal_work_loss``:
the validation loss, or a user model's training-mode loss), so each run shows whether its
loop styles trained alike; ``benchmarks/stats.py`` checks it per cell against the
equivalence reference within the loop style's tolerance (loops/equivalence.py), and
a mixed-precision cell's against float32's beyond ``precision_floor``. A cell whose
layers did not compute in its precision (``compute_dtypes``, read from the built
layers) fails.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import signal
import statistics
import threading
import time
import traceback
from typing import Any

from tf_loopbench.benchmarks.config import EPOCH_PROBE_PROCESSES, Job

FAULT_ENV = "LOOPBENCH_INJECT_FAULT"


class CellSkipped(Exception):
    """This cell cannot run here (a loop style declined the pair, or no such device)."""


def injected_fault(label: str) -> str | None:
    """Test knob: LOOPBENCH_INJECT_FAULT="<cell label>=raise|kill|nan[,...]" makes that
    cell's workers fail for real (an exception, SIGKILL as the OOM killer sends, NaN data);
    "<cell label>#<task>=kill" kills that task of a multi-worker cell after two steps."""
    for part in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        name, _, kind = part.partition("=")
        if name.strip() == label:
            return kind.strip()
    return None


#: TensorFlow's message when XLA meets an op it cannot compile, and each such op
XLA_UNSUPPORTED = re.compile(r"Detected unsupported operations when trying to compile graph")
XLA_UNSUPPORTED_OP = re.compile(r"(\w+) \(No registered '\w+' OpKernel for (XLA_\w+?)_JIT")


def xla_unsupported(message: str) -> str | None:
    """The skip reason for XLA's unsupported-op compile error, else None.

    >>> xla_unsupported("Detected unsupported operations when trying to compile graph f on "
    ...     "XLA_CPU_JIT: PyFunc (No registered 'PyFunc' OpKernel for XLA_CPU_JIT devices)")
    'XLA cannot compile this step: no XLA_CPU kernel for PyFunc'
    """
    if not XLA_UNSUPPORTED.search(message):
        return None
    ops = dict.fromkeys(op for op, _ in XLA_UNSUPPORTED_OP.findall(message))
    devices = dict.fromkeys(device for _, device in XLA_UNSUPPORTED_OP.findall(message))
    what = f"no {'/'.join(devices) or 'XLA'} kernel for {', '.join(ops) or 'an op'}"
    return f"XLA cannot compile this step: {what}"


def configure_threads(intra: int, inter: int) -> dict[str, int]:
    """Fix TF's thread pools before TF starts (environment first, then tf.config)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    intra = intra or int(cores or 1)
    inter = inter or int(cores or 1)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return {"intra_op_threads": intra, "inter_op_threads": inter}


def cell_workload(job: Job) -> Any:
    """The job's cell's workload, built from the run's seed, data and the cell's width."""
    from tf_loopbench.loops.base import WORKLOADS, WorkloadConfig

    cell, config = job.cell, job.config
    config = WorkloadConfig(
        seed=config.seed,
        data_size=config.data_size,
        width=cell.width_option,
        data_path=config.data_path,
    )
    return WORKLOADS.get(cell.workload)(config)


def peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def run_job(job: Job) -> dict[str, Any]:
    """Measure one job; returns {"process": row, "windows": [rows]} (never raises).

    In a duet A/B (benchmarks/duet.py) the worker first takes its seat: pinned to its
    half of the cores before TensorFlow starts, so the threads below are that half's."""
    from tf_loopbench.benchmarks.duet import Seat

    seat = Seat.for_job(job.order)
    duet: dict[str, Any] = {}
    if seat is not None:
        try:
            duet = {"cores": seat.take()}
        except OSError as exc:  # cores it may not use, a directory gone: timed unpinned
            duet, seat = {"duet_error": f"cannot take its seat: {exc}"}, None
    intra, inter = job.config.intra_op_threads, job.config.inter_op_threads
    if seat is not None and seat.threads:  # a duet: the seat's share of the machine
        intra = inter = seat.threads
    threads = configure_threads(intra, inter)
    base = {**job.cell.keys, "process": job.process, "order": job.order, "pid": os.getpid()}
    started = time.time()
    try:
        result = _measure(job, threads, seat)
    except CellSkipped as exc:
        result = {"status": "skipped", "error": str(exc) or "not implemented"}
    except Exception as exc:  # a crashed cell is recorded, the run goes on
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}{where}"}
    finally:
        if seat is not None:
            seat.close()
            duet.update(seat.facts())
    windows = result.pop("windows", [])
    process_row = {
        "kind": "process",
        **base,
        **threads,
        **duet,
        "started_at": started,
        "wall_s": time.time() - started,
        "peak_rss_bytes": peak_rss_bytes(),
        **result,
    }
    window_rows = [
        {
            "kind": "window",
            **base,
            "window": i,
            "steps": steps,
            "seconds": seconds,
            "step_time_s": seconds / steps,
            "started_at": started_at,
        }
        for i, (steps, seconds, started_at) in enumerate(windows)
    ]
    return {"process": process_row, "windows": window_rows}


def _measure(job: Job, threads: dict[str, int], seat: Any = None) -> dict[str, Any]:
    from tf_loopbench.benchmarks.clock import PhaseClock, injected_fraction, now

    t_import = now()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads["intra_op_threads"])
        tf.config.threading.set_inter_op_parallelism_threads(threads["inter_op_threads"])
        runtime_fresh = True
    except RuntimeError:
        # TF's runtime already started in this process: only when a test calls
        # run_job in-process; worker processes always get here first
        runtime_fresh = False
    import tf_loopbench.loops.styles  # noqa: F401  (registers loop styles)
    import tf_loopbench.loops.workloads  # noqa: F401  (registers workloads)
    from tf_loopbench.benchmarks import preload
    from tf_loopbench.loops import devices
    from tf_loopbench.loops.base import LOOPS, WORKLOADS, steps_per_epoch

    import_s = now() - t_import
    cell, config = job.cell, job.config
    if config.models or cell.workload not in WORKLOADS:  # users' models, plugin workloads
        from tf_loopbench.loops.user_model import register_run_workloads

        register_run_workloads(config.models, cell.workload)
    from tf_loopbench.loops import distribute
    from tf_loopbench.loops.equivalence import REFERENCE as EQUIVALENCE_REFERENCE
    from tf_loopbench.loops.equivalence import precision_floor, tolerance
    from tf_loopbench.loops.knobs import (
        compute_dtypes,
        loss_scaled,
        precision_not_run,
        set_precision,
        unsupported_precision,
    )

    if cell.device not in devices.present_devices():
        raise CellSkipped(f"no {cell.device.upper()} present")
    hidden_devices = devices.hide_devices(cell.device) if runtime_fresh else []
    if job.cluster:  # this worker's place in the multi-worker cluster
        os.environ["TF_CONFIG"] = distribute.tf_config(job.cluster, job.task)
    try:  # logical CPUs for mirrored:N (before the runtime starts), a GPU per worker
        distribute.configure_devices(cell.strategy, cell.device)
    except NotImplementedError as exc:
        raise CellSkipped(str(exc)) from None
    # Keras reads the policy when layers are built (a user's model: when its data is made)
    set_precision(cell.precision)
    workload = cell_workload(job)
    style = LOOPS.get(cell.loop)()
    if cell.strategy != distribute.NONE and not workload.distributable:
        raise CellSkipped(
            f"{cell.workload}'s step does not average its losses over the global batch "
            "(tf.nn.compute_average_loss), so it runs without a strategy only"
        )

    t = now()
    data, data_preloaded = preload.make_data(cell.workload, workload)
    # whole calls of every K in the run: every cell sees the same batches in the same order
    train = data.whole_batches(cell.batch_size, config.call_multiple)
    data_s = now() - t
    fault = injected_fault(cell.label)
    if fault == "raise":
        raise RuntimeError("injected fault")
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "nan":  # poisoned data: the loss really becomes NaN
        train = {k: v.copy() for k, v in train.items()}
        train["x"][0] = float("nan")

    # a strategy places its replicas itself; one device otherwise
    placement = (
        contextlib.nullcontext()
        if cell.strategy != distribute.NONE
        else tf.device(devices.tf_device_name(cell.device))
    )
    with placement:
        reason = unsupported_precision(cell.precision)  # untimed: a tiny layer's step
        if reason is not None:
            raise CellSkipped(reason)
        # multiworker: starts this worker's server and waits for the others
        strategy = distribute.make_strategy(cell.strategy, cell.device)
        t = now()
        try:
            with distribute.scope(strategy):
                # mixed_float16: every optimizer behind a LossScaleOptimizer, in every style
                state = loss_scaled(workload.build(), workload, cell.precision)
                trainer = style.make_trainer(
                    workload,
                    state,
                    train,
                    cell.batch_size,
                    steps_per_call=cell.steps_per_call,
                    fit_jit=cell.fit_jit,
                    strategy=strategy,
                )
        except NotImplementedError as exc:  # the loop style (or the precision) declines
            raise CellSkipped(str(exc) or f"{cell.loop} cannot run {cell.workload}") from None
        build_s = now() - t
        if job.task > 0:
            # a worker that is not the chief trains in step with it (every step is an
            # all-reduce among all workers) until the harness stops it
            trainer.run(FOLLOWER_STEPS, _Follower(injected_fault(f"{cell.label}#{job.task}")))
            raise RuntimeError("a worker ran out of steps before its chief finished")
        equal_work: dict[str, float] = {}

        def evaluate_equal_work() -> None:
            equal_work["loss"] = workload.equal_work_loss(state, data.val)

        def sync() -> None:
            devices.sync_device(cell.device)
            trainer.sync()

        clock = PhaseClock(
            sync,
            warmup_steps=config.warmup_steps,
            windows=config.windows,
            steps_per_window=config.steps_per_window,
            inject_fraction=injected_fraction(cell.loop),
            window_s=config.window_s,
            at_equal_work=evaluate_equal_work,
            steps_per_call=cell.steps_per_call,
            equal_work_steps=config.equal_work_steps,
            # no window holds fit's epoch ends; with a fixed step count every loop
            # style gets the same layout, so all train the same steps
            steps_per_epoch=(
                trainer.epoch_steps if config.window_s else steps_per_epoch(train, cell.batch_size)
            ),
            probe_epoch_end=job.process < EPOCH_PROBE_PROCESSES,
            meet=seat.meet if seat is not None else None,
        )
        devices.reset_gpu_peak(cell.device)
        t_run = now()
        try:
            trainer.run(clock.max_total_steps, clock)
        except tf.errors.InvalidArgumentError as exc:
            # a step XLA cannot compile (an op it has no kernel for) fails at its first
            # call: this style cannot run this model, the other styles still can
            reason = xla_unsupported(str(exc))
            if reason is None or not math.isnan(clock.times.first_step_s):
                raise
            raise CellSkipped(reason) from None
        times = clock.times
        if len(times.window_s) != config.windows:
            raise RuntimeError(
                f"trainer stopped early: {len(times.window_s)} of {config.windows} windows timed"
            )
        peak_gpu = devices.gpu_peak_bytes(cell.device)
        # the precision read back from the layers the step ran through, not the policy set
        not_run = precision_not_run(cell.precision, state.models.values())
        if not_run is not None:
            raise RuntimeError(f"{cell.precision} cell: {not_run}")
        trace_counts_after_timing = trainer.trace_counts()
        evaluation = workload.evaluate(state, data.val)
        # a run without the reference loop still compares every cell with it: the first
        # process of each cell trains a fresh copy the reference's way, untimed
        reference_loss = (
            equal_work_reference_loss(job, train, data.val, clock.equal_work_steps)
            if EQUIVALENCE_REFERENCE not in config.loops
            and job.process == 0
            and cell.strategy == distribute.NONE
            else None
        )

        profile: dict[str, Any] = {}
        if job.profile_dir and cell.workers > 1:
            # the other workers stopped with the chief's clock: no steps to profile
            profile = {"profile_error": "not profiled under a multi-worker strategy"}
        elif job.profile_dir and cell.steps_per_call > 1:
            # the profiler's step markers come from the hooks, which see calls only
            profile = {"profile_error": "not profiled with several steps per call"}
        elif job.profile_dir:
            from tf_loopbench.benchmarks.profiling import profile_trainer

            window_step_times_s = [w / clock.steps_per_window for w in times.window_s]
            profile = profile_trainer(
                trainer, job, sync, window_step_times_s, clock.steps_per_window
            )

    spw = clock.steps_per_window
    step_times = [w / spw for w in times.window_s]
    steady = statistics.median(step_times)
    final_loss = evaluation.get("loss", float("nan"))
    if not math.isfinite(final_loss):
        raise FloatingPointError(f"loss is {final_loss} after training (diverged)")
    # this loop's per-epoch work (fit's epoch ends after the first); benchmarks/stats.py
    # spreads the median of the cell's spans over an epoch's steps (amortized_step_time_s)
    # and resamples them with the steady steps for its interval
    epochs = bool(trainer.epoch_steps)
    epoch_end_s = clock.epoch_end_s() if epochs else None
    data_steps_per_epoch = steps_per_epoch(train, cell.batch_size)
    traces = trace_counts_after_timing
    retraces = sum(max(0, n - 1) for n in traces.values())
    row: dict[str, Any] = {
        "status": "ok",
        "error": None,
        "step_time_s": steady,
        "n_windows": len(step_times),
        "steps_per_window": spw,
        "warmup_steps": clock.warmup_steps,
        "import_s": import_s,
        "tf_runtime_fresh": runtime_fresh,
        "data_s": data_s,
        "data_preloaded": data_preloaded,
        "build_s": build_s,
        "fit_setup_s": (times.train_begin - t_run) if style.per_call_setup else None,
        "first_step_s": times.first_step_s,
        # the first call holds steps_per_call steps
        "compile_s": max(0.0, times.first_step_s - cell.steps_per_call * steady),
        "warmup_s": times.warmup_s,
        "sizing_steps": clock.sizing_steps,
        "steps_per_epoch": data_steps_per_epoch,
        "epoch_end_s": epoch_end_s,
        "epoch_end_spans_s": clock.epoch_end_spans() if epochs else None,
        "first_epoch_end_s": clock.first_epoch_end_s() if epochs else None,
        "hidden_devices": hidden_devices,
        "equal_work_steps": clock.equal_work_steps,
        "equal_work_loss": equal_work.get("loss"),
        "equivalence_reference": (
            cell.loop == EQUIVALENCE_REFERENCE and cell.strategy == distribute.NONE
        ),
        "equivalence_rtol": tolerance(
            cell.loop, cell.precision, cell.fit_jit, cell.strategy, workload.equal_work_rtol
        ),
        "equal_work_reference_loss": reference_loss,
        "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        **distribute.replica_devices(cell.strategy, cell.device),
        "keras_policy": keras_policy(),
        "compute_dtypes": compute_dtypes(state.models.values()),
        "precision_floor": precision_floor(cell.precision),
        **loss_scales(state),
        "injected_s_per_step": clock.inject_s,
        "final_loss": final_loss,
        "val_metrics": evaluation,
        "trace_counts": traces,
        "retraces": retraces,
        "peak_gpu_bytes": peak_gpu,
        "model_flops_per_step": workload.flops_per_example() * cell.batch_size,
        "n_train": data.n_train,
        "data_source": data.source,
        **trainer.facts(),
        **profile,
        "windows": list(
            zip([spw] * len(times.window_s), times.window_s, times.window_started_at, strict=True)
        ),
    }
    return row


def equal_work_reference_loss(
    job: Job, train: dict[str, Any], val: dict[str, Any], equal_work_steps: int
) -> float:
    """The equal-work loss of the equivalence reference loop (eager) for ``job``'s
    setting, untimed: a fresh workload from the same seed (its own initial weights,
    checked as every worker's are) trains ``equal_work_steps`` steps on the same
    batches, one a call, and is evaluated as every cell is. For a run whose loops do
    not include the reference, so that ``equivalent`` is still filled."""
    from tf_loopbench.loops.base import LOOPS, StepHooks
    from tf_loopbench.loops.equivalence import REFERENCE
    from tf_loopbench.loops.knobs import loss_scaled

    cell = job.cell
    workload = cell_workload(job)
    state = loss_scaled(workload.build(), workload, cell.precision)
    trainer = LOOPS.get(REFERENCE)().make_trainer(workload, state, train, cell.batch_size)
    trainer.run(equal_work_steps, StepHooks())
    return workload.equal_work_loss(state, val)


#: steps a worker that is not the chief is asked to train (it is stopped long before)
FOLLOWER_STEPS = 10**12


class _Follower:
    """The hooks of a worker that is not the chief: no clock; the test fault "kill"
    (``injected_fault``) kills it after two steps, mid-run."""

    record_logs = False

    def __init__(self, fault: str | None) -> None:
        self.fault = fault

    def on_train_begin(self) -> None:
        pass

    def on_step_begin(self, step: int) -> None:
        if self.fault == "kill" and step == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_step_end(self, step: int, logs: Any) -> None:
        pass


def keras_policy() -> str:
    """Keras's global dtype policy as the worker ran (the cell's precision)."""
    import keras

    return keras.mixed_precision.global_policy().name


def loss_scales(state: Any) -> dict[str, float]:
    """The final dynamic loss scale of each loss-scaled optimizer (mixed_float16): a
    scale that halved many times means many skipped (overflowing) steps."""
    return {
        f"loss_scale_{name}": float(optimizer.dynamic_scale)
        for name, optimizer in state.optimizers.items()
        if hasattr(optimizer, "dynamic_scale")
    }


def worker_main(job: Job, environ: dict[str, str] | None, connection: Any) -> None:
    """Entry point of a worker process: take the parent's environment, measure, send
    the result, exit."""
    attach_to_parent(connection)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    send_to_parent(connection, run_job(job))


def attach_to_parent(connection: Any) -> None:
    """Set up a child process (a worker, the metadata probe) that answers its parent
    on ``connection`` (a duplex pipe the parent only reads from).

    Ctrl-C belongs to the parent (it records what finished and stops the child), so
    the child ignores SIGINT. If the parent is gone (its end of the pipe closes, as
    when it exits), the child exits at once instead of measuring for nobody: a
    daemon thread blocks on the pipe (no polling, no cost to the timed steps).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_parent_leaves, args=(connection,), daemon=True).start()


def send_to_parent(connection: Any, message: Any) -> None:
    """Send the answer; if nobody is listening any more, exit quietly."""
    try:
        connection.send(message)
        connection.close()
    except OSError:  # BrokenPipeError, ConnectionResetError
        os._exit(0)


def _exit_when_parent_leaves(connection: Any) -> None:
    # the parent never writes, so readable means its end closed
    with contextlib.suppress(OSError, EOFError):
        connection.poll(None)
    os._exit(0)
