"""`loopbench ab` (benchmarks.ab) against fake `loopbench run` commands.

Each test builds a throwaway git repo whose base commit and work tree differ only
in one speed constant; no TensorFlow is imported. Run: ``pytest tests/test_ab.py``.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tf_loopbench.benchmarks import ab, cli
from tf_loopbench.benchmarks.ab import default_loops
from tf_loopbench.benchmarks.config import GATE_RUN_ARGS
from tf_loopbench.reports.rundir import load_run

from tests.fixtures.gate_runs import step_times, write_run

REPO = Path(__file__).resolve().parents[1]


def test_merge_pools_runs_and_recomputes_the_summary(tmp_path):
    runs = [
        write_run(
            tmp_path / f"r{i}",
            {("mlp", "fit"): step_times(0.01, 3, i), ("mlp", "xla"): step_times(0.005, 3, 10 + i)},
        )
        for i in range(3)
    ]
    merged = ab.merge_runs(runs, tmp_path / "merged", "merged-base")
    run = load_run(merged)
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


#: the `loopbench run` options both fake CLIs accept (the gate's settings among them)
FAKE_RUN_ARGS = """
parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("--quick", action="store_true")
parser.add_argument("--steps", type=int)
parser.add_argument("--windows", type=int)
parser.add_argument("--window-ms", type=float)
parser.add_argument("--no-report", action="store_true")
parser.add_argument("--processes", type=int)
parser.add_argument("--out", type=Path)
parser.add_argument("--loop", action="append")
"""

FAKE_CLI_BEFORE_TURNS = '''
"""A stand-in for a `loopbench run` older than turn-taking: writes a run directory
whose xla step time is SPEED x 10 ms (pandas only: scipy's import would double the
test's time)."""
import argparse, os, random, statistics, sys, uuid
from pathlib import Path
sys.path.append(os.environ["REAL_REPO"])  # reports.* (this fake repo has none)
from benchmarks.speed import SPEED
from tf_loopbench.reports import rundir

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
from tf_loopbench.reports import rundir

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


def make_fake_repo(path: Path, cli: str) -> Path:
    """A git repo whose base commit runs at SPEED 1.0 and whose work tree at 1.3."""
    (path / "benchmarks").mkdir(parents=True)
    (path / "benchmarks" / "__init__.py").write_text("")
    (path / "benchmarks" / "cli.py").write_text(
        textwrap.dedent(cli.replace("{run_args}", FAKE_RUN_ARGS))
    )
    (path / "benchmarks" / "speed.py").write_text("SPEED = 1.0\n")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    (path / "benchmarks" / "speed.py").write_text("SPEED = 1.3\n")
    return path


def run_loopbench_ab(repo: Path, out: Path, *options: str) -> int:
    return cli.main(["ab", "HEAD", "--repo", str(repo), "--out", str(out), *options])


def test_ab_interleaves_worker_processes_and_gates(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    status = run_loopbench_ab(repo, tmp_path / "out", "--processes", "6")
    out = capsys.readouterr().out
    assert status == 1, out
    assert "2 cells x 6 processes per side, worker processes interleaved" in out
    assert "SLOWER" in out and "mlp/xla/cpu/bs32/w64" in out
    commands = [line for line in out.splitlines() if line.startswith("[ab] base:")]
    assert f"run {' '.join(GATE_RUN_ARGS)} --no-report --processes 6" in commands[0]
    assert "".join(f" --loop {loop}" for loop in default_loops()) in commands[0]
    assert "eager" not in default_loops()  # the bottom rung is not timed by default
    base = load_run(tmp_path / "out" / "base").process_samples()
    current = load_run(tmp_path / "out" / "current").process_samples()
    assert len(base) == len(current) == 2 * 6
    # one job at a time, in ABBA order, and in every cell each side first in half the
    # blocks: block 0 base then current (cell 0), current then base (cell 1); block 1
    # the other way round
    stamps = sorted(
        [(t, "base") for t in base["started_at"]] + [(t, "current") for t in current["started_at"]]
    )
    order = [name for _, name in stamps]
    block_pair = ["base", "current", "current", "base", "current", "base", "base", "current"]
    assert order == (block_pair * 3)[: len(order)]
    assert (tmp_path / "out" / "logs" / "base.log").exists()
    assert "SLOWER" in (tmp_path / "out" / "compare.md").read_text()  # the default --markdown
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True
    )
    assert len(worktrees.stdout.strip().splitlines()) == 1  # the temporary worktree is gone


def test_ab_time_budget_stops_both_sides_after_a_whole_block(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    config = ab.ABConfig(
        base_ref="HEAD", repo=repo, out=tmp_path / "out", processes=6, time_budget_min=1e-4
    )
    ab.run_ab(config)
    out = capsys.readouterr().out
    assert "[ab] time budget: stopping both sides after 1 processes per cell" in out
    for side in ("base", "current"):
        samples = load_run(tmp_path / "out" / side).process_samples()
        assert sorted(samples["loop"]) == ["fit", "xla"]  # one whole block: every cell once


def test_a_base_ref_that_cannot_take_turns_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_BEFORE_TURNS)
    monkeypatch.setenv("REAL_REPO", str(REPO))
    assert run_loopbench_ab(repo, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "HEAD predates interleaved A/B" in err
    assert "predates interleaved A/B" in (tmp_path / "out" / "compare.md").read_text()


def test_ab_stops_cleanly_when_a_side_fails_to_start(tmp_path, monkeypatch):
    repo = make_fake_repo(tmp_path / "repo", FAKE_CLI_TAKING_TURNS)
    monkeypatch.delenv("REAL_REPO", raising=False)  # the fake CLI dies at its first line
    config = ab.ABConfig(base_ref="HEAD", repo=repo, out=tmp_path / "out", processes=3)
    with pytest.raises(
        ab.ABError, match=r"base side: loopbench run exited with status 1 .*base.log"
    ):
        ab.run_ab(config)
    assert "KeyError" in (tmp_path / "out" / "logs" / "base.log").read_text()


def test_a_base_ref_without_the_cli_has_nothing_to_regress_against(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "empty"], check=True)
    assert run_loopbench_ab(repo, tmp_path / "out") == 0
    assert (
        "has no loopbench command line: nothing to regress against yet" in capsys.readouterr().out
    )
    assert "nothing to regress against" in (tmp_path / "out" / "compare.md").read_text()


def test_an_unknown_base_ref_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["ab", "no-such-ref", "--repo", str(REPO), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot compare: git rev-parse" in err
