"""The TensorFlow Profiler beside the clock (benchmarks/profiling.py), for real.

One tiny profiled run of every loop style through the CLI (shared by the
tests below: captures are slow), then: the trace layout TensorBoard expects,
the breakdown columns in summary.csv adding up in every style, input wait
counted once (not also in op time), a real TensorBoard server listing every
cell with its profile tools, and the per-cell error when another profiling
session is already running.

    pytest tests/test_profile.py
"""

from __future__ import annotations

import glob
import gzip
import json
import math
import statistics
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
from tf_loopbench.loops.base import LOOPS as LOOP_STYLES

from tests.conftest import run_cli
from tools.browser_profile import tensorboard_server

pytestmark = pytest.mark.slow

LOOPS = tuple(LOOP_STYLES.names())
#: styles that read a tf.data iterator (fit's inside its tf.function, tf_data and
#: xla from Python): their steps have input wait
FED_BY_TF_DATA = ("fit", "tf_data", "xla")
BATCH = 64
LABELS = [f"mlp-{loop}-cpu-b{BATCH}" for loop in LOOPS]
PROFILE_TOOLS = {"overview_page", "input_pipeline_analyzer", "framework_op_stats"}


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("profiled")
    options = (
        f"run --workload mlp --loop {','.join(LOOPS)} --data-size 512 --batch-size {BATCH} "
        "--steps 12 --windows 6 --warmup-steps 2 --processes 1 --profile --no-report"
    )
    result = run_cli(*options.split(), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def process_rows(run_dir: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return {r["loop"]: r for r in rows if r["kind"] == "process"}


def test_one_trace_per_cell_in_tensorboard_layout(profiled_run):
    for label in LABELS:
        cell_dir = profiled_run / "profile" / label
        traces = glob.glob(str(cell_dir / "plugins" / "profile" / "*" / "*.xplane.pb"))
        assert len(traces) == 1, f"{label}: {traces}"
        assert Path(traces[0]).stat().st_size > 0
        assert glob.glob(str(cell_dir / "events.out.tfevents.*")), f"{label}: no scalars"
    assert sorted(p.name for p in (profiled_run / "profile").iterdir()) == sorted(LABELS)


@pytest.mark.parametrize("loop", LOOPS)
def test_op_and_wait_are_measured_apart_and_fit_in_the_step(profiled_run, loop):
    """Op time (the trace's kernel executions), input wait (the step table's input
    column) and the step (the step markers) come from three sources; read again from
    the trace here, op and wait are what the summary says, and they fit in the step
    without the cap at step - wait: a kernel time that counted dispatch or input, or a
    wait counted twice, would not fit."""
    from tf_loopbench.benchmarks.profiling import (
        kernel_time,
        step_rows,
        trace_events,
        trace_files,
        xla_op_time,
    )

    row = pd.read_csv(profiled_run / "summary.csv").set_index("loop").loc[loop]
    assert row["status"] == "ok"
    paths = trace_files(str(profiled_run / "profile" / f"mlp-{loop}-cpu-b{BATCH}"))
    steps = {r["stepnum"]: r for r in step_rows(paths)}
    op_s = kernel_time(trace_events(paths)).by_step
    wait_s = {n: float(r.get("infeedTimeMs") or 0) * 1e-3 for n, r in steps.items()}
    step_s = {n: float(r["stepTimeMs"]) * 1e-3 for n, r in steps.items()}
    assert set(op_s) == set(steps) and len(steps) == 5
    for n in steps:
        assert op_s[n] > 0 and op_s[n] + wait_s[n] <= step_s[n] * (1 + 1e-6), (n, loop)
    assert row["profile_op_time_s"] == pytest.approx(statistics.fmean(op_s.values()))
    assert row["profile_input_wait_s"] == pytest.approx(statistics.fmean(wait_s.values()))
    assert row["profile_step_time_s"] == pytest.approx(statistics.fmean(step_s.values()))
    assert (row["profile_input_wait_s"] > 0) == (loop in FED_BY_TF_DATA), row
    assert math.isfinite(row["profile_cost_fraction"])
    process = process_rows(profiled_run)[loop]
    assert not process.get("profile_error"), process["profile_error"]
    assert process["profile_steps"] == 5
    # top ops are named, timed and ranked (graph styles: the profiler's op table;
    # eager: the trace's kernel executions)
    top = process["profile_top_ops"]
    assert top and all(op["name"] and op["self_time_s"] > 0 for op in top), loop
    assert [op["self_time_s"] for op in top] == sorted(
        (op["self_time_s"] for op in top), reverse=True
    )
    assert sum(op["fraction"] for op in top) <= 1 + 1e-9
    assert all(op["name"].endswith("(eager op)") for op in top) == (loop == "eager")
    # xla: the compiled program by its HLO ops from the trace, never as the one op the
    # profiler's op table makes of it (at tiny sizes input ops may outrank the HLO ops)
    assert not any("__inference" in op["name"] for op in top), top
    assert any(op["name"].endswith("(XLA)") for op in top) <= (loop == "xla"), top
    if loop == "xla":
        events = trace_events(paths)
        xla = xla_op_time(events)
        assert xla.by_op and sum(xla.by_op.values()) > 0, xla
        prefix = "EagerLocalExecute: "
        programs = {e["name"][len(prefix) :] for e in events if e["name"].startswith(prefix)}
        assert any(xla.runs(name) for name in programs), (programs, xla.modules)


def test_the_report_names_where_each_cells_time_goes(profiled_run, tmp_path):
    from tf_loopbench.reports.report.sections.profile import short_name

    result = run_cli("report", str(profiled_run), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Where the time goes", 1)[1].split("\n## ", 1)[0]
    rows = {r.split(" | ")[4]: r for r in section.splitlines() if r.startswith("| mlp |")}
    assert sorted(rows) == sorted(LOOPS), section
    tops = {loop: row.split(" | ")[-1] for loop, row in rows.items()}
    assert "(eager op)" in tops["eager"] and "__inference" not in section, tops
    for loop in ("tf_function", "xla"):  # each row: its first process's top ops, in order
        first = process_rows(profiled_run)[loop]["profile_top_ops"][0]
        assert tops[loop].startswith(short_name(first["name"])), (first, tops[loop])
        assert f"({first['fraction']:.0%})" in tops[loop].split(";")[0], (first, tops[loop])


def test_eager_op_time_is_kernel_execution_not_dispatch(profiled_run):
    summary = pd.read_csv(profiled_run / "summary.csv").set_index("loop")
    # eager: op time is kernel execution, well below the step table's host compute
    # (TF's runtime, per-op dispatch included)
    eager = process_rows(profiled_run)["eager"]
    assert eager["profile_op_time_s"] < 0.8 * eager["profile_host_compute_s"], eager
    assert (
        summary.loc["eager", "profile_overhead_fraction"]
        > summary.loc["tf_function", "profile_overhead_fraction"]
    )


def test_eagers_overhead_agrees_with_the_clock(profiled_run):
    """An independent figure for eager's overhead: the clock's steady steps, eager
    against tf_function (the same kernels without per-op dispatch), (eager -
    tf_function) / eager; docs/profiling.md records 0.84-0.86 against 0.91. The two
    come from other processes at other moments, so a loaded machine moves them apart
    (0.72 against 0.96 seen under four engineers' tests): 0.3 still fails the
    figure's likely slips (op time's share, 0.1-0.3, in its place). And the
    profiler's step against the clock's wall step while tracing, the same steps
    timed two ways."""
    summary = pd.read_csv(profiled_run / "summary.csv").set_index("loop")
    eager, graph = (summary.loc[loop, "step_time_median_s"] for loop in ("eager", "tf_function"))
    by_clock = (eager - graph) / eager
    by_profiler = summary.loc["eager", "profile_overhead_fraction"]
    assert abs(by_profiler - by_clock) < 0.3, (by_profiler, by_clock)
    for loop, process in process_rows(profiled_run).items():
        ratio = process["profile_step_time_s"] / process["profile_wall_step_time_s"]
        assert 0.8 < ratio < 1.25, (loop, ratio)


def busy_by_step(events) -> dict[str, float]:
    """Per step marker: seconds in which TF ran a kernel or read input (the union of
    EagerKernelExecute and IteratorGetNext* events, clipped to the marker's span)."""
    marks = [e for e in events if "step_num" in (e.get("args") or {})]
    busy = [
        e
        for e in events
        if e["name"] == "EagerKernelExecute" or e["name"].lower().startswith("iteratorgetnext")
    ]
    result = {}
    for mark in marks:
        start, end = float(mark["ts"]), float(mark["ts"]) + float(mark["dur"])
        spans = sorted(
            (max(start, float(e["ts"])), min(end, float(e["ts"]) + float(e["dur"]))) for e in busy
        )
        total, covered = 0.0, start
        for a, b in spans:
            if b > max(a, covered):
                total += b - max(a, covered)
                covered = b
        result[mark["name"]] = total * 1e-6
    return result


@pytest.mark.parametrize("loop", LOOPS)
def test_input_wait_is_not_also_op_time(profiled_run, loop):
    # per traced step: op time + the profiler's input column fit in the time TF was
    # busy running kernels or reading input; an iterator read counted in both (fit
    # reads its input inside its tf.function) would exceed it by the read's length
    from tf_loopbench.benchmarks.profiling import kernel_time, step_rows, trace_events, trace_files

    paths = trace_files(str(profiled_run / "profile" / f"mlp-{loop}-cpu-b{BATCH}"))
    events = trace_events(paths)
    op_s = kernel_time(events).by_step
    input_s = {
        row["stepnum"]: float(row.get("infeedTimeMs") or 0) * 1e-3 for row in step_rows(paths)
    }
    busy_s = busy_by_step(events)
    assert set(op_s) == set(input_s) and len(op_s) == 5
    for step, op in op_s.items():
        assert (input_s[step] > 0) == (loop in FED_BY_TF_DATA), (step, input_s)
        assert op > 0 and op + input_s[step] <= busy_s[step] + 2e-6, (
            step,
            op,
            input_s[step],
            busy_s[step],
        )


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":  # the profile plugin gzips
            body = gzip.decompress(body)
        return json.loads(body)


def test_tensorboard_lists_every_cell_with_its_tools(profiled_run):
    with tensorboard_server(profiled_run / "profile") as base:
        assert get_json(f"{base}/data/plugins_listing")["profile"]["enabled"]
        runs = get_json(f"{base}/data/plugin/profile/runs")
        for label in LABELS:
            cell_runs = [r for r in runs if r.split("/")[0] == label]
            assert len(cell_runs) == 1, f"{label} not among profile runs {runs}"
            query = urllib.parse.urlencode({"run": cell_runs[0]})
            tools = get_json(f"{base}/data/plugin/profile/run_tools?{query}")
            assert set(tools) >= PROFILE_TOOLS, f"{label}: {tools}"
        # the scalars beside the traces: one TensorBoard run per cell in the Scalars tab too
        scalar_runs = get_json(f"{base}/data/plugin/scalars/tags")
        for label in LABELS:
            assert "timing/step_time_s" in scalar_runs.get(label, {}), scalar_runs.keys()


def tiny_trainer(loop: str = "tf_function"):
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.loops.base import LOOPS as LOOP_STYLES
    from tf_loopbench.loops.base import WORKLOADS, StepHooks, WorkloadConfig

    workload = WORKLOADS.get("mlp")(WorkloadConfig(data_size=256, width=16))
    train = workload.make_data().whole_batches(32)
    trainer = LOOP_STYLES.get(loop)().make_trainer(workload, workload.build(), train, 32)
    trainer.run(2, StepHooks())
    return trainer


def fake_job(profile_dir: Path) -> SimpleNamespace:
    config = SimpleNamespace(profile_steps=3, steps_per_window=2)
    cell = SimpleNamespace(label=profile_dir.name)
    return SimpleNamespace(profile_dir=str(profile_dir), config=config, cell=cell)


def test_another_profiling_session_is_a_clear_per_cell_error(tmp_path):
    import tensorflow as tf
    from tf_loopbench.benchmarks.profiling import profile_trainer

    trainer = tiny_trainer()
    cell_dir = tmp_path / "profile" / "mlp-tf_function-cpu-b32"
    tf.profiler.experimental.start(str(tmp_path / "someone-else"))
    try:
        row = profile_trainer(trainer, fake_job(cell_dir), trainer.sync, [0.001, 0.001])
    finally:
        tf.profiler.experimental.stop()
    assert "another profiling session is already running" in row["profile_error"]
    assert "profile_op_time_s" not in row
    assert not glob.glob(str(cell_dir / "plugins" / "profile" / "*" / "*.xplane.pb"))
    # the profiler is usable again afterwards: the next cell is profiled
    row = profile_trainer(trainer, fake_job(tmp_path / "profile" / "next"), trainer.sync, [0.001])
    assert "profile_error" not in row and row["profile_steps"] == 3


def test_trace_without_step_markers_is_an_error(tmp_path):
    import tensorflow as tf
    from tf_loopbench.benchmarks.profiling import ProfileError, analyze_trace, trace_files
    from tf_loopbench.loops.base import StepHooks

    trainer = tiny_trainer()
    tf.profiler.experimental.start(str(tmp_path))
    trainer.run(2, StepHooks())  # steps run, but nobody marks them
    trainer.sync()
    tf.profiler.experimental.stop()
    with pytest.raises(ProfileError, match="no step marker"):
        analyze_trace(trace_files(str(tmp_path)))
    with pytest.raises(ProfileError, match="no trace"):
        analyze_trace(trace_files(str(tmp_path / "empty")))


def event(name, ts, dur, tid=1, **args):
    return {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": ts, "dur": dur, "args": args}


def test_kernel_time_unions_kernel_executions_per_step():
    from tf_loopbench.benchmarks.profiling import kernel_time

    events = [
        event("train 0", 0, 100, group_id="0", step_num="0", step_name="train 0"),
        event("train 1", 100, 100, group_id="1", step_num="1", step_name="train 1"),
        # step 0: two eager ops, 10 + 20 us of kernel, the rest dispatch
        event("EagerExecute", 5, 20, group_id="0", eager_op="MatMul", is_func="0"),
        event("EagerKernelExecute", 10, 10, group_id="0"),
        event("EagerExecute", 40, 30, group_id="0", eager_op="Relu", is_func="0"),
        event("EagerKernelExecute", 45, 20, group_id="0"),
        # input: not op time
        event("EagerExecute", 75, 20, group_id="0", eager_op="IteratorGetNext", is_func="0"),
        event("EagerKernelExecute", 80, 10, group_id="0"),
        # step 1: a function call (40 us) overlapping a kernel on another thread (counted once),
        # and one running past the step's end (clipped), grouped by time (no group_id):
        # 55 us, less 15 us of input
        event("EagerExecute", 110, 50, group_id="1", eager_op="__inference_f", is_func="1"),
        event("EagerKernelExecute", 115, 40, group_id="1"),
        event("EagerKernelExecute", 150, 10, tid=2, group_id="1"),
        event("EagerKernelExecute", 190, 30, tid=3),
        # an iterator read inside the function's run (fit): input, cut out of op time
        event("IteratorGetNextOp::DoCompute", 120, 15, tid=4, group_id="1"),
    ]
    kernels = kernel_time(events)
    assert kernels.by_step == pytest.approx({"train 0": 30e-6, "train 1": 40e-6})
    assert kernels.by_eager_op == pytest.approx({"MatMul": 10e-6, "Relu": 20e-6})


def test_xla_ops_take_their_own_time_and_replace_their_program():
    from tf_loopbench.benchmarks.profiling import xla_op_time

    module = "a_inference_train_step_689__XlaMustCompile_true.34"
    events = [
        event("ThunkExecutor::Execute", 0, 100),
        event("while.1", 0, 50, hlo_op="while.1", hlo_module=module),
        event("fusion.2", 10, 30, hlo_op="fusion.2", hlo_module=module),
        event("fusion.2", 60, 20, hlo_op="fusion.2", hlo_module=module),
        event("fusion.3", 60, 25, tid=2, hlo_op="fusion.3", hlo_module=module),
        event("EagerKernelExecute", 0, 100),
    ]
    xla = xla_op_time(events)
    assert xla.by_op == pytest.approx({"while.1": 20e-6, "fusion.2": 50e-6, "fusion.3": 25e-6})
    assert xla.runs("__inference_train_step_689") and not xla.runs("__inference_train_step_68")
    assert not xla.runs("MatMul") and not xla_op_time(events[-1:]).runs("__inference_f")


@pytest.mark.parametrize("loop", ["eager", "tf_function"])
def test_kernel_time_on_a_real_trace(tmp_path, loop):
    from tf_loopbench.benchmarks.profiling import (
        analyze_trace,
        capture,
        kernel_time,
        trace_events,
        trace_files,
    )

    trainer = tiny_trainer(loop)
    capture(trainer, str(tmp_path), trainer.sync, 3, warmup=1)
    paths = trace_files(str(tmp_path))
    events = trace_events(paths)
    kernels = kernel_time(events)
    assert sorted(kernels.by_step) == ["train 0", "train 1", "train 2"]
    breakdown = analyze_trace(paths)
    # each step's kernels against that step's own marker, not the median step: a step the
    # loaded machine stretched has its kernels stretched too (2x: threads run side by side)
    spans = {e["name"]: e["dur"] * 1e-6 for e in events if "step_num" in (e.get("args") or {})}
    assert all(0 < seconds < 2 * spans[step] for step, seconds in kernels.by_step.items())
    assert 0 < breakdown.op_time_s <= breakdown.step_time_s - breakdown.input_wait_s
    if loop == "eager":  # one kernel execution per eager op, named by its EagerExecute
        assert {"MatMul", "ReadVariableOp"} <= set(kernels.by_eager_op)
        assert breakdown.op_time_s < breakdown.host_compute_s
    else:  # the step's kernels run inside the function's run, not as eager ops
        assert "MatMul" not in kernels.by_eager_op
