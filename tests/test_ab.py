"""The same-job A/B driver (benchmarks.ab) against fake `loopbench run` commands.

Each test builds a throwaway git repo whose base commit and work tree differ only
in one speed constant; no TensorFlow is imported. Run: ``pytest tests/test_ab.py``.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks import ab
from reports import compare
from tests.fixtures.gate_runs import step_times, write_run

REPO = Path(__file__).resolve().parents[1]


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
