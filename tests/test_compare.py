"""The regression gate (reports.compare, reports.gate_stats) and the A/B driver (benchmarks.ab).

Fixture run directories with known per-process samples are written with the
reports.rundir writers; no TensorFlow is imported. Run: ``pytest tests/test_compare.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks import ab
from benchmarks.stats import summarize
from reports import compare, gate_stats
from reports.rundir import (
    SAMPLES_FILE,
    SCHEMA_VERSION,
    write_metadata,
    write_samples,
    write_summary,
)

REPO = Path(__file__).resolve().parents[1]

HARD = {
    "platform": "Linux-x86_64",
    "machine": "x86_64",
    "cpu_model": "Test CPU 9000",
    "visible_cores": 2,
    "cgroup_cpu_quota": None,
    "gpus": [],
    "intra_op_threads": 2,
    "inter_op_threads": 2,
    "python": "3.11.7",
}


def step_times(median_s: float, n: int, seed: int, spread: float = 0.01) -> list[float]:
    """n per-process step times around ``median_s`` with a relative spread."""
    rng = np.random.default_rng(seed)
    return list(median_s * (1 + spread * rng.standard_normal(n)))


def write_run(
    path: Path,
    cells: dict[tuple[str, str], list[float]],
    run_id: str | None = None,
    hard: dict | None = None,
    soft: dict | None = None,
    failed: dict[tuple[str, str], str] | None = None,
    retraces: dict[tuple[str, str], int] | None = None,
    compile_s: dict[tuple[str, str], list[float]] | None = None,
) -> Path:
    """A run directory: per (workload, loop), one ok process row per step time.

    ``failed`` maps a cell to the error of its one failed process.
    """
    failed, retraces, compile_s = failed or {}, retraces or {}, compile_s or {}
    rows = []
    for (workload, loop), times in cells.items():
        cell = {"workload": workload, "loop": loop, "device": "cpu", "batch_size": 32, "width": 64}
        for process, step_time in enumerate(times):
            rows.append(
                {"kind": "window", **cell, "process": process, "window": 0, "steps": 10}
                | {"seconds": 10 * step_time, "step_time_s": step_time}
            )
            rows.append(
                {"kind": "process", **cell, "process": process, "status": "ok", "error": None}
                | {"step_time_s": step_time}
                | {"compile_s": compile_s.get((workload, loop), [0.2] * len(times))[process]}
                | {"final_loss": 0.5, "retraces": retraces.get((workload, loop), 1)}
                | {"peak_rss_bytes": 10**9}
            )
    for (workload, loop), error in failed.items():
        cell = {"workload": workload, "loop": loop, "device": "cpu", "batch_size": 32, "width": 64}
        rows.append({"kind": "process", **cell, "process": 0, "status": "failed", "error": error})
    path.mkdir(parents=True)
    write_samples(path, rows)
    write_summary(path, summarize(rows))
    write_metadata(
        path,
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id or path.name,
            "hard": hard or HARD,
            "soft": soft or {"tensorflow": "2.17.0", "git_commit": "a" * 40},
            "config": {"quick": True},
        },
    )
    return path


def run_gate(tmp_path: Path, baseline: Path, current: Path, capsys, **kwargs):
    markdown = tmp_path / "compare.md"
    status = compare.command(baseline, current, markdown=markdown, **kwargs)
    out, err = capsys.readouterr()
    return status, out, err, markdown


def assert_one_clean_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- statistics


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(gate_stats.holm_adjust(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(
        gate_stats.holm_adjust(np.array([[0.5, 0.9]]), axis=-1), [[1.0, 1.0]]
    )


def test_smallest_p_is_what_the_exact_test_returns_for_complete_separation():
    for n in (3, 5, 7):
        separated = stats.mannwhitneyu(np.arange(n) + 100.0, np.arange(n), alternative="greater")
        assert gate_stats.smallest_one_sided_p(n, n) == pytest.approx(separated.pvalue)
    assert gate_stats.samples_needed_per_side(0.01) == 5  # 1/C(10,5) = 1/252, 1/C(8,4) = 1/70
    assert gate_stats.samples_needed_per_side(0.01 / 15) == 7  # 1/C(14,7) = 1/3432


# --------------------------------------------------------------------------- verdicts


def test_clear_slowdown_exits_1_and_says_slower(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1)})
    current = write_run(
        tmp_path / "cur",
        {("mlp", "xla"): step_times(0.013, 8, 2)},
        soft={"tensorflow": "2.18.0", "git_commit": "b" * 40},
    )
    status, out, err, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1, out + err
    assert "SLOWER" in out and "mlp/xla/cpu/bs32/w64" in out
    text = markdown.read_text()
    assert "| mlp/xla/cpu/bs32/w64 | **SLOWER** |" in text
    assert "tensorflow: 2.17.0 -> 2.18.0" in text  # the soft metadata line
    assert "git_commit:" in text


def test_identical_distributions_exit_0(tmp_path, capsys):
    cells = {
        (w, loop): step_times(0.01, 8, seed)
        for seed, (w, loop) in enumerate([("mlp", "fit"), ("mlp", "eager"), ("gan", "xla")])
    }
    baseline = write_run(tmp_path / "base", cells)
    current = write_run(tmp_path / "cur", {cell: list(reversed(t)) for cell, t in cells.items()})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out
    assert "no confirmed regression" in out
    assert out.count("unchanged") >= 3


def test_a_machine_speed_change_between_runs_is_warned(tmp_path, capsys):
    cells = {("mlp", "fit"): step_times(0.01, 8, 1)}
    soft = {"git_commit": "a" * 40, "peak_matmul_flops": {"cpu": 270e9}}
    baseline = write_run(tmp_path / "base", cells, soft=soft)
    loaded = {**soft, "peak_matmul_flops": {"cpu": 140e9}}
    current = write_run(tmp_path / "cur", cells, soft=loaded)
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert "warning: cpu peak matmul speed 270 -> 140 GFLOP/s" in out


def test_faster_cell_is_reported_and_does_not_fail(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.007, 8, 2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert " faster " in out


def test_too_few_samples_is_inconclusive_and_names_the_n_needed(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 3, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.020, 3, 2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0  # twice as slow, but 3 samples can never reach alpha = 0.01
    assert "inconclusive" in out
    assert "need 5 per side" in out


def test_holm_correction_spans_the_cells(tmp_path, capsys):
    # 5 vs 5 completely separated: p = 1/252 = 0.004 passes alpha 0.01 alone, but not
    # Holm's 0.01 / 3 when three cells are compared
    steady = {("mlp", "fit"): step_times(0.01, 5, 1), ("gan", "fit"): step_times(0.02, 5, 2)}
    baseline = write_run(tmp_path / "base", {**steady, ("mlp", "xla"): step_times(0.010, 5, 3)})
    current = write_run(tmp_path / "cur", {**steady, ("mlp", "xla"): step_times(0.013, 5, 4)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out
    assert "inconclusive" in out and "need 6 per side" in out
    alone = write_run(tmp_path / "alone_base", {("mlp", "xla"): step_times(0.010, 5, 3)})
    alone_current = write_run(tmp_path / "alone_cur", {("mlp", "xla"): step_times(0.013, 5, 4)})
    status, out, _, _ = run_gate(tmp_path, alone, alone_current, capsys)
    assert status == 1, out


def test_noisy_cell_is_inconclusive_not_unchanged(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1, spread=0.2)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.010, 8, 2, spread=0.2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert "too noisy" in out


def test_cell_only_in_one_run_is_missing(tmp_path, capsys):
    base_cells = {("mlp", "fit"): step_times(0.01, 8, 1), ("gan", "fit"): step_times(0.02, 8, 2)}
    baseline = write_run(tmp_path / "base", base_cells)
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 3)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert "missing" in out and "not in the current run" in out


def test_newly_failed_cell_is_a_regression(tmp_path, capsys):
    baseline = write_run(
        tmp_path / "base",
        {("mlp", "fit"): step_times(0.01, 8, 1), ("mlp", "xla"): step_times(0.01, 8, 2)},
    )
    current = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.01, 8, 3)},
        failed={("mlp", "xla"): "ResourceExhaustedError: OOM"},
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "newly fails (was ok): ResourceExhaustedError: OOM" in out


def test_newly_failing_process_in_an_ok_cell_is_flagged(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): times})
    current = write_run(
        tmp_path / "cur", {("mlp", "xla"): times}, failed={("mlp", "xla"): "killed by signal 9"}
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "1 process(es) newly failed: killed by signal 9" in out


def test_retrace_increase_is_flagged(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    baseline = write_run(tmp_path / "base", {("mlp", "tf_function"): times})
    current = write_run(
        tmp_path / "cur", {("mlp", "tf_function"): times}, retraces={("mlp", "tf_function"): 3}
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "retraces 1 -> 3" in out


def test_compile_regression_needs_threshold_floor_and_significance(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    cell = ("mlp", "xla")
    baseline = write_run(tmp_path / "base", {cell: times}, compile_s={cell: step_times(1.0, 8, 2)})
    slower = write_run(tmp_path / "cur", {cell: times}, compile_s={cell: step_times(2.0, 8, 3)})
    status, out, _, _ = run_gate(tmp_path, baseline, slower, capsys)
    assert status == 1
    assert "compile 1.00s -> 1.99s" in out

    small = write_run(tmp_path / "b2", {cell: times}, compile_s={cell: step_times(0.1, 8, 4)})
    tripled_but_tiny = write_run(
        tmp_path / "c2", {cell: times}, compile_s={cell: step_times(0.3, 8, 5)}
    )
    status, out, _, _ = run_gate(tmp_path, small, tripled_but_tiny, capsys)
    assert status == 0, out
    assert "compile 0" not in out

    # one process compiling slowly moves the median but is not a confirmed change
    jittery = [1.0, 1.0, 2.6, 1.0, 2.6, 2.6, 1.0, 2.6]
    same = write_run(tmp_path / "b3", {cell: times}, compile_s={cell: [1.0] * 4 + [2.6] * 4})
    noisy = write_run(tmp_path / "c3", {cell: times}, compile_s={cell: jittery[:3] + [2.6] * 5})
    status, out, _, _ = run_gate(tmp_path, same, noisy, capsys)
    assert status == 0, out


# --------------------------------------------------------------------------- machines


def test_different_hard_key_exits_2_naming_the_key(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    other_machine = {**HARD, "cpu_model": "Other CPU 1"}
    current = write_run(
        tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)}, hard=other_machine
    )
    status, out, err, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "cpu_model" in err and "Test CPU 9000" in err and "Other CPU 1" in err
    assert "cpu_model" in markdown.read_text()


def test_allow_different_machines_compares_within_run_ratios(tmp_path, capsys):
    slower_machine = {**HARD, "cpu_model": "Other CPU 1", "visible_cores": 4}
    baseline = write_run(
        tmp_path / "base",
        {("mlp", "fit"): step_times(0.010, 8, 1), ("mlp", "xla"): step_times(0.005, 8, 2)},
    )
    # everything twice as slow on the other machine: the ratio to fit is unchanged
    same_ratio = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.020, 8, 3), ("mlp", "xla"): step_times(0.010, 8, 4)},
        hard=slower_machine,
    )
    status, out, _, _ = run_gate(
        tmp_path, baseline, same_ratio, capsys, allow_different_machines=True
    )
    assert status == 0, out
    assert "within-run ratios to fit" in out and "cpu_model" in out
    assert "unchanged" in out and "reference" in out

    # xla lost ground against fit on the other machine: 0.5x fit -> 0.65x fit
    worse_ratio = write_run(
        tmp_path / "cur2",
        {("mlp", "fit"): step_times(0.020, 8, 5), ("mlp", "xla"): step_times(0.013, 8, 6)},
        hard=slower_machine,
    )
    status, out, _, _ = run_gate(
        tmp_path, baseline, worse_ratio, capsys, allow_different_machines=True
    )
    assert status == 1
    assert "SLOWER" in out


# --------------------------------------------------------------------------- bad input


def test_cut_off_samples_exit_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)})
    samples = current / SAMPLES_FILE
    samples.write_text(samples.read_text()[:-40])
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "cut" in err


def test_nan_samples_exit_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): [0.01, float("nan"), 0.01, 0.01, 0.01]})
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "NaN" in err and "mlp/fit" in err


def test_newer_schema_exits_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)})
    metadata = json.loads((current / "metadata.json").read_text())
    metadata["schema_version"] = SCHEMA_VERSION + 1
    (current / "metadata.json").write_text(json.dumps(metadata))
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "newer" in err


def test_same_run_twice_exits_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    status, _, err, _ = run_gate(tmp_path, baseline, baseline, capsys)
    assert status == 2
    assert_one_clean_line(err)
    copy = tmp_path / "copy"
    shutil.copytree(baseline, copy)
    status, _, err, _ = run_gate(tmp_path, baseline, copy, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "same run" in err


def test_missing_directory_exits_2_from_the_command_line(tmp_path):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    result = subprocess.run(
        [sys.executable, "-m", "reports.compare", str(baseline), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    assert_one_clean_line(result.stderr)
    assert "nowhere" in result.stderr


# --------------------------------------------------------------------------- merging


def test_merge_pools_rounds_and_recomputes_the_summary(tmp_path):
    rounds = [
        write_run(
            tmp_path / f"r{i}",
            {("mlp", "fit"): step_times(0.01, 3, i), ("mlp", "xla"): step_times(0.005, 3, 10 + i)},
        )
        for i in range(3)
    ]
    merged = ab.merge_runs(rounds, tmp_path / "merged", "merged-base")
    run = compare.load_run(merged)
    processes = run.process_samples()
    assert run.run_id == "merged-base"
    assert run.metadata["soft"]["merged_from"] == ["r0", "r1", "r2"]
    fit = processes[processes["loop"] == "fit"]
    assert sorted(fit["process"]) == list(range(9))  # unique process numbers
    row = run.summary[run.summary["loop"] == "fit"].iloc[0]
    assert row["n_processes"] == 9
    assert row["step_time_median_s"] == pytest.approx(np.median(fit["step_time_s"]))
    xla = run.summary[run.summary["loop"] == "xla"].iloc[0]
    assert xla["speedup_vs_fit"] == pytest.approx(
        row["step_time_median_s"] / xla["step_time_median_s"]
    )


# --------------------------------------------------------------------------- A/B driver

#: the `loopbench run` options both fake CLIs accept
FAKE_RUN_ARGS = '''
parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("--quick", action="store_true")
parser.add_argument("--steps", type=int)
parser.add_argument("--windows", type=int)
parser.add_argument("--no-report", action="store_true")
parser.add_argument("--processes", type=int)
parser.add_argument("--out", type=Path)
'''

FAKE_CLI = '''
"""A stand-in for `loopbench run`: writes a run directory whose xla step time is
SPEED x 10 ms, so that base and current code differ only in benchmarks/speed.py.
(pandas only: scipy's import would double the test's time.)"""
import argparse, os, random, statistics, sys, uuid
from pathlib import Path
sys.path.append(os.environ["REAL_REPO"])  # reports.* (this fake repo has none)
from benchmarks.speed import SPEED
from reports import rundir

{run_args}args = parser.parse_args()
rows, summary = [], []
for loop, median_s in (("fit", 0.010), ("xla", 0.010 * SPEED)):
    cell = {"workload": "mlp", "loop": loop, "device": "cpu", "batch_size": 32, "width": 64}
    times = [median_s * random.gauss(1, 0.01) for _ in range(args.processes)]
    rows += [{"kind": "process", **cell, "process": k, "status": "ok", "step_time_s": t,
              "compile_s": 0.2, "retraces": 1} for k, t in enumerate(times)]
    summary.append({**cell, "status": "ok", "step_time_median_s": statistics.median(times)})
run_dir = args.out / uuid.uuid4().hex[:8]
run_dir.mkdir(parents=True)
rundir.write_samples(run_dir, rows)
frame = rundir.pd.DataFrame(summary).reindex(columns=[*rundir.SUMMARY_COLUMNS, "width"])
rundir.write_summary(run_dir, frame)
rundir.write_metadata(run_dir, {"run_id": run_dir.name, "hard": {"machine": "x"},
                                "soft": {"speed": SPEED}, "config": {}})
'''


FAKE_CLI_TAKING_TURNS = '''
"""A stand-in for `loopbench run --take-turns FD` (benchmarks/turns.py): one job per
turn, each process row stamped with the time its turn came."""
import argparse, os, random, statistics, sys, time, uuid
from pathlib import Path
sys.path.append(os.environ["REAL_REPO"])
from benchmarks.speed import SPEED
from reports import rundir

{run_args}parser.add_argument("--take-turns", type=int)
args = parser.parse_args()
answers = os.fdopen(args.take_turns, "w", buffering=1)

def wait():
    if sys.stdin.readline().strip() != "go":
        sys.exit(130)

wait()
answers.write(f"ready {2 * args.processes}\\n")
run_dir = args.out / uuid.uuid4().hex[:8]
run_dir.mkdir(parents=True)
rows, times = [], {"fit": [], "xla": []}
for k in range(args.processes):
    for loop, median_s in (("fit", 0.010), ("xla", 0.010 * SPEED)):
        wait()
        cell = {"workload": "mlp", "loop": loop, "device": "cpu", "batch_size": 32, "width": 64}
        t = median_s * random.gauss(1, 0.01)
        times[loop].append(t)
        rows.append({"kind": "process", **cell, "process": k, "status": "ok", "step_time_s": t,
                     "compile_s": 0.2, "retraces": 1, "started_at": time.time()})
        time.sleep(0.01)
        # like loopbench run: the run directory holds every finished job
        summary = [{"workload": "mlp", "loop": name, "device": "cpu", "batch_size": 32,
                    "width": 64, "status": "ok", "step_time_median_s": statistics.median(t)}
                   for name, t in times.items() if t]
        rundir.write_samples(run_dir, rows)
        frame = rundir.pd.DataFrame(summary).reindex(columns=[*rundir.SUMMARY_COLUMNS, "width"])
        rundir.write_summary(run_dir, frame)
        rundir.write_metadata(run_dir, {"run_id": run_dir.name, "hard": {"machine": "x"},
                                        "soft": {"speed": SPEED}, "config": {}})
        answers.write(f"done mlp-{loop} {k} ok\\n")
'''


def make_fake_repo(path: Path, cli: str = FAKE_CLI) -> Path:
    """A git repo whose base commit runs at SPEED 1.0 and whose work tree at 1.3."""
    (path / "benchmarks").mkdir(parents=True)
    (path / "benchmarks" / "__init__.py").write_text("")
    (path / "benchmarks" / "cli.py").write_text(textwrap.dedent(cli.replace("{run_args}", FAKE_RUN_ARGS)))
    (path / "benchmarks" / "speed.py").write_text("SPEED = 1.0\n")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    (path / "benchmarks" / "speed.py").write_text("SPEED = 1.3\n")
    return path


def test_ab_runs_base_and_current_code_interleaved_and_gates(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo")
    monkeypatch.setenv("REAL_REPO", str(REPO))
    config = ab.ABConfig(
        base_ref="HEAD",
        repo=repo,
        out=tmp_path / "out",
        processes=4,
        rounds=None,  # auto: 2 cells need 5 per side (1/C(10,5) <= 0.01/2): rounds of 4, 1
        samples=3,  # fewer than the alpha needs: raised to 5
        markdown=tmp_path / "out" / "compare.md",
    )
    status = ab.run_ab(config)
    out = capsys.readouterr().out
    assert status == 1, out
    commands = [
        line
        for line in out.splitlines()
        if line.startswith("[ab] base:") or line.startswith("[ab] current:")
    ]
    assert [line.split(":")[0] for line in commands] == [
        "[ab] base",
        "[ab] current",
        "[ab] current",
        "[ab] base",
    ]
    assert "mlp/xla/cpu/bs32/w64" in out and "SLOWER" in out
    base = compare.load_run(tmp_path / "out" / "base")
    assert len(base.process_samples()) == 2 * 5  # 2 cells x (4 + 1) processes
    assert "--processes 1" in commands[-1]
    assert " ".join(ab.FIXED_STEPS_GATE_RUN_ARGS) in commands[0]  # a base without --window-ms
    assert "SLOWER" in (tmp_path / "out" / "compare.md").read_text()
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True
    )
    assert len(worktrees.stdout.strip().splitlines()) == 1  # the temporary worktree is gone


def test_ab_interleaves_worker_processes_when_both_sides_take_turns(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    config = ab.ABConfig(base_ref="HEAD", repo=repo, out=tmp_path / "out", samples=6)
    status = ab.run_ab(config)
    out = capsys.readouterr().out
    assert status == 1, out
    assert "2 cells x 6 processes per side, worker processes interleaved" in out
    assert "SLOWER" in out
    base = compare.load_run(tmp_path / "out" / "base").process_samples()
    current = compare.load_run(tmp_path / "out" / "current").process_samples()
    assert len(base) == len(current) == 2 * 6
    # one job at a time, in ABBA order: job 0 base then current, job 1 current then base
    stamps = sorted(
        [(t, "base") for t in base["started_at"]] + [(t, "current") for t in current["started_at"]]
    )
    order = [name for _, name in stamps]
    assert order[:8] == ["base", "current", "current", "base"] * 2
    assert order == (["base", "current", "current", "base"] * 6)[: len(order)]
    assert (tmp_path / "out" / "logs" / "base.log").exists()


def test_ab_time_budget_stops_both_sides_after_a_whole_block(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    config = ab.ABConfig(
        base_ref="HEAD", repo=repo, out=tmp_path / "out", samples=6, time_budget_min=1e-4
    )
    ab.run_ab(config)
    out = capsys.readouterr().out
    assert "[ab] time budget: stopping both sides after 1 processes per cell" in out
    for side in ("base", "current"):
        samples = compare.load_run(tmp_path / "out" / side).process_samples()
        assert sorted(samples["loop"]) == ["fit", "xla"]  # one whole block: every cell once


def test_ab_stops_cleanly_when_a_side_fails_to_start(tmp_path, monkeypatch):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.delenv("REAL_REPO", raising=False)  # the fake CLI dies at its first line
    config = ab.ABConfig(base_ref="HEAD", repo=repo, out=tmp_path / "out", samples=3)
    with pytest.raises(ab.ABError, match=r"base side: loopbench run exited with status 1 .*base.log"):
        ab.run_ab(config)
    assert "KeyError" in (tmp_path / "out" / "logs" / "base.log").read_text()


def test_ab_rounds_auto_reaches_the_holm_level():
    # 15 cells at alpha 0.01 need 7 processes per side: 4 rounds of 2
    assert ab.rounds_needed(0.01, 15, 2) == 4
    assert ab.rounds_needed(0.01, 1, 5) == 1
    assert ab.plan_rounds(7, 2, 2, max_rounds=8) == [2, 2, 1]
    assert ab.plan_rounds(7, 2, 2, max_rounds=2) == [2]  # the cap counts the first round
    assert ab.plan_rounds(5, 6, 2, max_rounds=8) == []


# --------------------------------------------------------------------------- validation


def test_validation_script_reports_gate_and_fixed_rule_rates(tmp_path, capsys):
    from benchmarks import validate_gate

    loops = ("fit", "eager", "xla")
    pool = write_run(
        tmp_path / "pool",
        {("mlp", loop): step_times(0.01, 16, i, 0.02) for i, loop in enumerate(loops)},
    )
    slowed = write_run(
        tmp_path / "slowed",
        {
            ("mlp", loop): step_times(0.013 if loop == "xla" else 0.01, 16, 10 + i, 0.02)
            for i, loop in enumerate(loops)
        },
        soft={"env": {"LOOPBENCH_INJECT_SLOWDOWN": "xla=0.30"}},
    )
    status = validate_gate.main(
        [str(pool), "--slowed", str(slowed), "--iterations", "300", "--slowdown", "0.3"]
    )
    table = capsys.readouterr().out
    assert status == 0
    assert f"{ab.DEFAULT_SAMPLES} samples per side" in table  # the A/B's default
    assert "measured effect of the injected slowdown (all samples): mlp/xla/" in table
    effect = float(table.split("mlp/xla/")[1].split(" x")[1].split(" ")[0])
    assert effect == pytest.approx(1.3, abs=0.03)
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
        for line in table.splitlines()
        if line.startswith("| ") and "scenario" not in line
    }
    assert set(rule for _, rule in rows) == {
        "gate (MWU + Holm + effect)",
        "median ratio > 5%",
        "mean ratio > 5%",
    }
    gate_aa = rows[("A/A, pooled", "gate (MWU + Holm + effect)")].split("|")
    assert float(gate_aa[3].strip(" %")) <= 5.0
    gate_real = rows[("xla slowed, real runs", "gate (MWU + Holm + effect)")].split("|")
    assert float(gate_real[5].strip(" %")) >= 90.0  # a 30% slowdown, 5 samples per side


# --------------------------------------------------------------------------- baselines


def test_baseline_save_list_and_compare_through_the_cli(tmp_path):
    """A stored baseline is a validated copy; comparing against it is the gate."""
    from tests.conftest import run_cli

    store = tmp_path / "store"
    base = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 10, 1)})
    slower = write_run(tmp_path / "slow", {("mlp", "xla"): step_times(0.013, 10, 2)})
    saved = run_cli("baseline", "save", str(base), "--name", "main", "--store", str(store))
    assert saved.returncode == 0, saved.stderr
    assert sorted(p.name for p in (store / "main").iterdir()) == [
        "metadata.json", "samples.jsonl", "summary.csv"
    ]
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no staging left
    listed = run_cli("baseline", "list", "--store", str(store))
    assert listed.returncode == 0 and listed.stdout.startswith("main ")
    gate = run_cli("baseline", "compare", "main", str(slower), "--store", str(store))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "SLOWER" in gate.stdout
    same = run_cli("baseline", "compare", "main", str(base), "--store", str(store))
    assert same.returncode == 2  # a run compared with itself

    again = run_cli("baseline", "save", str(slower), "--name", "main", "--store", str(store))
    assert again.returncode == 2 and "--force" in again.stderr
    assert_one_clean_line(again.stderr)
    forced = run_cli("baseline", "save", str(slower), "--name", "main", "--force",
                     "--store", str(store))
    assert forced.returncode == 0
    assert compare.load_run(store / "main").run_id == "slow"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "nope", "RUN"], "no baseline 'nope'"),
        (["save", "MISSING", "--name", "x"], "MISSING"),
        (["save", "RUN", "--name", "../escape"], "invalid baseline name"),
    ],
)
def test_baseline_bad_input_is_one_line_exit_2(tmp_path, args, message):
    from tests.conftest import run_cli

    run = write_run(tmp_path / "run", {("mlp", "xla"): step_times(0.010, 5, 1)})
    args = [str(run) if a == "RUN" else str(tmp_path / a) if a == "MISSING" else a for a in args]
    result = run_cli("baseline", *args, "--store", str(tmp_path / "store"))
    assert result.returncode == 2
    assert message in result.stderr
    assert_one_clean_line(result.stderr)
    assert not (tmp_path / "escape").exists()


def test_an_interrupted_run_is_not_saved_as_a_baseline(tmp_path):
    from reports import baseline

    run = write_run(tmp_path / "run", {("mlp", "xla"): step_times(0.010, 5, 1)})
    metadata = json.loads((run / "metadata.json").read_text())
    write_metadata(run, {**metadata, "complete": False})
    with pytest.raises(baseline.BaselineError, match="did not finish"):
        baseline.save(run, "main", tmp_path / "store")
    assert not (tmp_path / "store" / "main").exists()


# --------------------------------------------------------------------------- drift correction


def interleaved_pair(
    tmp_path: Path, slow_cell_factor: float, mark: bool = True, seed: int = 7,
    inject: str | None = None,
):
    """Two sides of an interleaved A/B over 6 cells x 10 blocks: the machine drifts by
    up to +-25 % from block to block (on both sides alike), each sample has ~2 % noise
    of its own, and the current side's mlp/xla cell is ``slow_cell_factor`` slower."""
    rng = np.random.default_rng(seed)
    drift = 1 + 0.25 * np.sin(np.arange(10))
    loops = ("fit", "eager", "tf_function", "tf_data", "xla", "custom")
    sides = {}
    for side in ("base", "current"):
        cells = {}
        for index, loop in enumerate(loops):
            median = 0.002 * (index + 1)
            factor = slow_cell_factor if side == "current" and loop == "xla" else 1.0
            noise = 1 + 0.02 * rng.standard_normal(10)
            cells[("mlp", loop)] = list(median * factor * drift * noise)
        sides[side] = cells
    ids = {"base": "ab-base-x", "current": "ab-current-y"}
    dirs = []
    for side, partner in (("base", "current"), ("current", "base")):
        soft = {"ab": {"interleaved": True, "partner": ids[partner]}} if mark else {}
        if inject and side == "current":
            soft["env"] = {"LOOPBENCH_INJECT_SLOWDOWN": inject}
        dirs.append(write_run(tmp_path / side, sides[side], run_id=ids[side], soft=soft))
    return dirs


def test_interleaved_ab_reads_the_drift_from_other_cells(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.10)
    result = compare.compare(base, current)
    verdicts = {cell.cell[1]: cell.verdict for cell in result.cells}
    assert result.drift_corrected
    assert verdicts["xla"] == "slower"  # 10 % under a drift of +-25 %
    assert set(verdicts.values()) - {"slower"} == {"unchanged"}
    assert any("drift" in note for note in result.notes)
    assert "drift-corrected per block" in compare.render_text(result)


def test_without_the_interleaved_mark_the_drift_stays_and_hides_the_slowdown(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.10, mark=False)
    result = compare.compare(base, current)
    assert not result.drift_corrected
    xla = next(cell for cell in result.cells if cell.cell[1] == "xla")
    assert xla.verdict == "inconclusive"  # raw samples: the drift swamps 10 %


def test_drift_correction_raises_no_alarm_on_identical_code(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.0)
    result = compare.compare(base, current)
    assert result.drift_corrected and result.exit_status == 0
    assert all(cell.verdict in ("unchanged", "inconclusive") for cell in result.cells)


def test_a_change_that_slows_every_cell_survives_the_correction():
    # both sides of a block share its factor: a uniform 10 % slowdown is kept
    rng = np.random.default_rng(3)
    drift = 1 + 0.25 * np.sin(np.arange(10))
    base = 0.002 * drift * (1 + 0.01 * rng.standard_normal((5, 10)))
    current = 1.10 * 0.002 * drift * (1 + 0.01 * rng.standard_normal((5, 10)))
    grid = np.stack([base, current], axis=1)  # (cells, sides, blocks)
    corrected = grid / gate_stats.drift_factors(grid)
    ratios = np.median(corrected[:, 1], axis=1) / np.median(corrected[:, 0], axis=1)
    assert np.allclose(ratios, 1.10, atol=0.02)
    assert np.std(np.log(corrected[:, 0]), axis=1).max() < 0.03  # the drift is gone


def test_validation_of_interleaved_abs_reports_the_drift_corrected_gate(tmp_path, capsys):
    from benchmarks import validate_gate

    interleaved_pair(tmp_path / "aa", 1.0)
    interleaved_pair(tmp_path / "slowed", 1.10)
    status = validate_gate.main(
        ["--ab", str(tmp_path / "aa"), "--slowed-ab", str(tmp_path / "slowed"),
         "--slowed-loop", "xla", "--iterations", "200"]
    )
    table = capsys.readouterr().out
    assert status == 0, table
    assert "6 cells x 10 blocks" in table
    rows = {
        tuple(part.strip() for part in line.strip("|").split("|")[:2]): line
        for line in table.splitlines()
        if line.startswith("| ") and "scenario" not in line
    }
    detection = {
        rule: float(line.strip("|").split("|")[4].strip().rstrip("%"))
        for (scenario, rule), line in rows.items()
        if scenario.startswith("xla slowed: interleaved A/B")
    }
    # the machine drifts by +-25 % between blocks: only the corrected gate sees 10 %
    assert detection["gate, drift-corrected (interleaved A/B)"] > 90
    assert detection["gate (MWU + Holm + effect)"] < 50
    false_alarms = {
        rule: float(line.strip("|").split("|")[2].strip().rstrip("%"))
        for (scenario, rule), line in rows.items()
        if scenario.startswith("A/A")
    }
    assert false_alarms["gate, drift-corrected (interleaved A/B)"] <= 1.0


def test_validation_pools_the_blocks_of_several_a_as_and_judges_each_as_measured(
    tmp_path, capsys
):
    from benchmarks import validate_gate

    interleaved_pair(tmp_path / "aa1", 1.0, seed=1)
    interleaved_pair(tmp_path / "aa2", 1.0, seed=2)
    interleaved_pair(tmp_path / "slowed", 1.10)
    status = validate_gate.main(
        ["--ab", str(tmp_path / "aa1"), str(tmp_path / "aa2"), "--slowed-ab",
         str(tmp_path / "slowed"), "--slowed-loop", "xla", "--n-per-side", "8",
         "--iterations", "200"]
    )
    table = capsys.readouterr().out
    assert status == 0, table
    assert "6 cells x 20 blocks" in table
    # 8 of the 20 pooled blocks: no block twice in a comparison
    assert "A/A: interleaved A/Bs of unchanged code (8 of 20 blocks, without replacement)" in table
    assert "xla slowed: interleaved A/B (8 of 10 blocks, without replacement)" in table
    # the issue's two injected slowdowns, as approximations on the A/As' samples
    assert "xla x1.1 on those A/As" in table and "xla x1.2 on those A/As" in table
    measured = {
        line.split("|")[1].strip(): [part.strip() for part in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| unchanged:") or line.startswith("| slowed:")
    }
    assert list(measured) == [f"unchanged: {tmp_path / 'aa1'}", f"unchanged: {tmp_path / 'aa2'}",
                              f"slowed: {tmp_path / 'slowed'}"]
    # columns: A/B, blocks, gate, drift-corrected gate, median, mean
    assert measured[f"unchanged: {tmp_path / 'aa1'}"][1:4] == ["10", "0 flagged", "0 flagged"]
    assert measured[f"slowed: {tmp_path / 'slowed'}"][3] == "1 flagged: mlp/xla"


def test_validation_refuses_to_pool_a_as_with_slowed_a_bs(tmp_path, capsys):
    from benchmarks import validate_gate

    interleaved_pair(tmp_path / "aa", 1.0)
    interleaved_pair(tmp_path / "slowed", 1.10, inject="xla=0.10")
    assert validate_gate.main(["--ab", str(tmp_path / "aa"), str(tmp_path / "slowed")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(slowed xla) and" in err and "cannot be pooled" in err


def test_validation_refuses_runs_that_were_not_interleaved(tmp_path, capsys):
    from benchmarks import validate_gate

    interleaved_pair(tmp_path / "aa", 1.0, mark=False)
    assert validate_gate.main(["--ab", str(tmp_path / "aa")]) == 2
    assert "not the two sides of one interleaved A/B" in capsys.readouterr().err


def test_ab_sizes_windows_by_duration_only_when_the_base_ref_can(tmp_path):
    from benchmarks import ab

    old, new = tmp_path / "old", tmp_path / "new"
    for path, option in ((old, "--steps"), (new, "--window-ms")):
        (path / "benchmarks").mkdir(parents=True)
        (path / "benchmarks" / "cli.py").write_text(f'parser.add_argument("{option}")\n')
    # both sides measure alike: a base from before --window-ms gets a fixed step count
    assert ab.gate_run_args(old) == ab.FIXED_STEPS_GATE_RUN_ARGS
    assert ab.gate_run_args(new) == ab.GATE_RUN_ARGS
    assert ab.gate_run_args(REPO) == ab.GATE_RUN_ARGS  # this tree
    config = ab.ABConfig("main", tmp_path, tmp_path / "out", run_args=ab.gate_run_args(old))
    assert "--steps" in ab.run_command(config, tmp_path / "x", 3)
