"""`loopbench run` end to end at tiny sizes: the run directory, the 15-cell table,
agreeing final losses, faults recorded as failed cells, Ctrl-C keeping finished cells.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from tf_loopbench.reports.rundir import SUMMARY_COLUMNS, load_run

from tests.conftest import ROOT, assert_group_ends, run_cli

TINY = [
    "--data-size",
    "512",
    "--batch-size",
    "64",
    "--steps",
    "12",
    "--windows",
    "6",
    "--warmup-steps",
    "2",
    "--processes",
    "1",
    "--no-report",
]


def only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    scratch = tmp_path_factory.mktemp("tmp")
    # fit (Keras's own loop), eager (the equivalence reference) and xla (the most
    # transformed) on every workload; all 15 pairs are proven equivalent in-process
    # by test_equivalence.py, and every run shows it again (equal_work_loss)
    result = run_cli(
        "run", *TINY, "--loop", "fit,eager,xla", "--out", str(out), env={"TMPDIR": str(scratch)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # workers exit without atexit: their autograph files went to a directory of the job,
    # which the parent removed (before, every run left thousands in /tmp)
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("pymp-")]
    assert left == [], left[:5]
    return result, load_run(only_run_dir(out))


def test_ok_cells_with_the_contract_columns(tiny_run):
    _, run = tiny_run
    summary = run.summary
    assert list(summary.columns[: len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert len(summary) == 9
    assert set(summary["status"]) == {"ok"}, summary[["workload", "loop", "error"]]
    assert summary.groupby("workload")["loop"].nunique().to_dict() == {
        "linear": 3,
        "mlp": 3,
        "gan": 3,
    }
    assert (summary["step_time_median_s"] > 0).all()
    assert (summary["examples_per_s"] - 64 / summary["step_time_median_s"]).abs().max() < 1e-6
    # one process a cell: no interval (the windows of one process would overstate
    # the precision) and no noisy flag
    assert (
        summary["step_time_ci_low_s"].isna().all() and summary["step_time_ci_high_s"].isna().all()
    )
    assert set(summary["ci_basis"]) == {"none"} and not summary["noisy"].any()
    assert (summary["amortized_step_time_s"] >= summary["step_time_median_s"]).all()
    assert (summary["compile_s"] >= 0).all()
    assert (summary["retraces"] == 0).all()
    fit = summary[summary["loop"] == "fit"]
    assert (fit["speedup_vs_fit"] == 1.0).all()
    assert fit["keras_jit_compile"].eq(False).all()  # "auto" is off on CPU-only machines
    assert fit["fit_setup_s"].gt(0).all()
    # fit pays an epoch end every 8 steps (512 examples / 64); its amortized step holds it
    assert fit["epoch_end_s"].gt(0).all()
    assert (fit["amortized_step_time_s"] > fit["step_time_median_s"]).all()
    custom = summary[summary["loop"] != "fit"]
    assert (custom["amortized_step_time_s"] == custom["step_time_median_s"]).all()


def test_every_run_shows_equal_work(tiny_run):
    _, run = tiny_run
    summary = run.summary
    assert (summary["equal_work_steps"] == 3).all()  # the first step and 2 warm-up steps
    assert summary["equivalent"].astype(bool).all(), summary[
        ["workload", "loop", "equal_work_loss"]
    ]
    for workload, group in summary.groupby("workload"):
        losses = group["equal_work_loss"]
        assert (losses.max() - losses.min()) / losses.abs().max() < 1e-4, (workload, losses)


def test_final_losses_agree_across_loop_styles(tiny_run):
    _, run = tiny_run
    for workload, group in run.summary.groupby("workload"):
        losses = group["final_loss"]
        spread = (losses.max() - losses.min()) / losses.abs().median()
        assert spread < 1e-3, f"{workload}: {group[['loop', 'final_loss']]}"


def test_samples_hold_a_row_per_window_and_per_process(tiny_run):
    _, run = tiny_run
    kinds = run.samples["kind"].value_counts().to_dict()
    assert kinds == {"process": 9, "window": 9 * 6}
    windows = run.samples[run.samples["kind"] == "window"]
    assert (windows["steps"] == 2).all()
    processes = run.process_samples()
    assert {
        "build_s",
        "first_step_s",
        "compile_s",
        "warmup_s",
        "trace_counts",
        "peak_rss_bytes",
        "intra_op_threads",
    } <= set(processes.columns)
    # forked from the fork server, every worker still set up TF's runtime itself
    assert processes["tf_runtime_fresh"].eq(True).all()
    assert run.metadata["config"]["start_method"] == "forkserver"
    # mlp and gan workers used the data the fork server made once; linear makes its own
    preloaded = processes.groupby("workload")["data_preloaded"].all().to_dict()
    assert preloaded == {"gan": True, "linear": False, "mlp": True}


def test_spawned_workers_measure_the_same_training(tiny_run, tmp_path):
    """--start-method spawn (a new interpreter per worker, which makes its own data)
    trains to the same loss as workers forked from the fork server (which share the
    data the server made)."""
    _, forked = tiny_run
    result = run_cli(
        "run",
        *TINY,
        "--workload",
        "mlp",
        "--loop",
        "xla",
        "--start-method",
        "spawn",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    spawned = load_run(only_run_dir(tmp_path))
    assert spawned.metadata["config"]["start_method"] == "spawn"
    assert spawned.process_samples()["data_preloaded"].eq(False).all()
    row = spawned.summary.iloc[0]
    assert row["status"] == "ok"
    before = forked.summary.set_index(["workload", "loop"]).loc[("mlp", "xla"), "final_loss"]
    assert row["final_loss"] == pytest.approx(before, rel=1e-6)


def test_windows_sized_by_duration_give_fast_steps_more_steps(tmp_path):
    # the presets' mode: steps per window from each worker's warm-up step time
    result = run_cli(
        "run",
        "--workload",
        "linear",
        "--loop",
        "eager,tf_function",
        "--data-size",
        "512",
        "--batch-size",
        "64",
        "--windows",
        "4",
        "--window-ms",
        "30",
        "--warmup-steps",
        "3",
        "--processes",
        "1",
        "--no-report",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = load_run(only_run_dir(tmp_path))
    processes = run.process_samples().set_index("loop")
    steps = processes["steps_per_window"]
    # the same duration takes several times more graph steps than eager ones
    assert steps["tf_function"] > 2 * steps["eager"] >= 2
    assert run.metadata["config"]["steps"] is None
    assert run.metadata["config"]["window_s"] == 0.03
    windows = run.samples[run.samples["kind"] == "window"]
    assert windows.groupby("loop")["steps"].unique().map(len).eq(1).all()
    assert windows.groupby("loop").size().eq(4).all()
    summary = run.summary.set_index("loop")
    assert summary.loc["tf_function", "steps_per_window"] == steps["tf_function"]


def test_metadata_records_the_machine(tiny_run):
    _, run = tiny_run
    meta = run.metadata
    assert meta["schema_version"] == 1 and meta["complete"] is True
    for key in ("cpu_model", "visible_cores", "platform", "python", "intra_op_threads"):
        assert key in meta["hard"]
    for key in (
        "tensorflow",
        "keras",
        "numpy",
        "git_commit",
        "code_hash",
        "command",
        "started_at",
        "ended_at",
        "peak_matmul_flops",
        "tf_build",
    ):
        assert key in meta["soft"]
    assert meta["soft"]["peak_matmul_flops"]["cpu"] > 1e8
    # float32 always; the dtype of every precision a cell uses besides (float32 only here)
    by_dtype = meta["soft"]["peak_matmul_flops_by_dtype"]
    assert by_dtype == {"cpu": {"float32": meta["soft"]["peak_matmul_flops"]["cpu"]}}


def test_printed_table(tiny_run):
    result, run = tiny_run
    for name in ("fit", "xla", "linear", "mlp", "gan", "step ms", "x fit", "loss @3, equal"):
        assert name in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 9 and max(len(line) for line in result.stdout.splitlines()) <= 120
    assert result.stdout.count(" yes ") == 9  # every cell equivalent
    # the rest of the columns, as `loopbench run --wide` prints them
    from rich.console import Console
    from tf_loopbench.benchmarks.progress import print_summary

    console = Console(width=300, record=True)
    print_summary(run.summary, "fit", wide=True, console=console)
    wide = console.export_text()
    assert wide.count(" ok ") == 9 and "jit off, spe 1" in wide and " compile s " in wide


def test_report_on_a_real_run(tiny_run):
    _, run = tiny_run
    result = run_cli("report", str(run.path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run.path / "report.md").stat().st_size > 0
    html = (run.path / "report.html").read_text()
    assert "data:image/png;base64," in html
    markdown = (run.path / "report.md").read_text()
    for workload in ("linear", "mlp", "gan"):
        assert workload in markdown
    assert list((run.path / "plots").glob("*.png"))


def test_failed_cells_are_recorded_and_the_run_goes_on(tmp_path):
    faults = "linear-eager-cpu-b64=kill,mlp-eager-cpu-b64=raise,gan-eager-cpu-b64=nan"
    result = run_cli(
        "run",
        *TINY,
        "--loop",
        "eager",
        "--device",
        "all",
        "--out",
        str(tmp_path),
        # INFO logging: a worker's log is not empty on any machine
        env={"LOOPBENCH_INJECT_FAULT": faults, "TF_CPP_MIN_LOG_LEVEL": "0"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = load_run(only_run_dir(tmp_path)).summary
    gpu = summary[summary["device"] == "gpu"]
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        assert len(gpu) == 3 and (gpu["status"] == "skipped").all()
        assert (gpu["error"] == "no GPU").all()
    summary = summary[summary["device"] == "cpu"].set_index("workload")
    assert (summary["status"] == "failed").all()
    assert "signal 9" in summary.loc["linear", "error"]
    assert "injected fault" in summary.loc["mlp", "error"]
    assert "nan" in summary.loc["gan", "error"].lower()
    # a failed worker's stderr (a log in the run directory) reaches the terminal
    log = only_run_dir(tmp_path) / "logs" / "mlp-eager-cpu-b64-p0.log"
    text = log.read_text().strip()
    assert text, "the worker wrote nothing to stderr"
    assert f"stderr of the failed process ({log})" in result.stderr
    assert text.splitlines()[-1] in result.stderr


def test_a_clean_run_prints_no_cuda_probe_errors(tiny_run):
    # every process that starts TF's runtime on a machine without a GPU logs
    # "failed call to cuInit" at error level; a child's stderr goes to <run>/logs/
    # and reaches the terminal only when that child fails
    result, run = tiny_run
    assert "cuInit" not in result.stderr, result.stderr
    assert "stderr of the failed process" not in result.stderr
    logs = sorted(p.name for p in (run.path / "logs").iterdir())
    assert len(logs) == 9 and "linear-fit-cpu-b64-p0.log" in logs


def test_ctrl_c_keeps_finished_cells(tmp_path):
    process = subprocess.Popen(
        # 5 cells x 40 processes: minutes of work, so Ctrl-C lands mid-run (a tiny
        # linear worker takes well under a second)
        [
            sys.executable,
            "-m",
            "tf_loopbench",
            "run",
            *TINY,
            "--workload",
            "linear",
            "--processes",
            "40",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        # as from a terminal: a shell's background job (e.g. CI run with `&`) starts
        # with SIGINT ignored, and Python then keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    samples = None
    while time.time() < deadline:
        found = list(tmp_path.glob("*/samples.jsonl"))
        if (
            found
            and sum('"kind": "process"' in line for line in found[0].read_text().splitlines()) >= 2
        ):
            samples = found[0]
            break
        time.sleep(0.2)
    assert samples is not None, "no cell finished in time"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    # nothing of the run keeps going: no worker, no fork server left in its group
    assert_group_ends(process.pid, "the interrupted run")
    run = load_run(samples.parent)
    assert run.metadata["interrupted"] is True
    assert (run.summary["status"] == "ok").sum() >= 2
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert all(isinstance(r, dict) for r in rows)
    assert isinstance(run.summary, pd.DataFrame)


def test_ctrl_c_while_a_child_is_being_started_is_still_a_ctrl_c():
    """Ctrl-C can land inside Process.start() (waiting for the fork server's answer):
    the child never ran here, and the caller must see the KeyboardInterrupt, not a
    failure to join a process that was never started."""
    import multiprocessing

    from tf_loopbench.benchmarks.runner import call_in_children

    real = multiprocessing.get_context("spawn")

    class InterruptedStart(real.Process):
        def start(self):
            raise KeyboardInterrupt

    class Context:
        Pipe = staticmethod(real.Pipe)
        Process = InterruptedStart

    with pytest.raises(KeyboardInterrupt):
        call_in_children(Context(), print, [()], timeout_s=5, log_paths=[None])
