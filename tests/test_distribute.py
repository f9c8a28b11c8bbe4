"""Loop styles under tf.distribute (loops/distribute.py): one real run at tiny sizes.

The run covers none, mirrored:2 (two logical CPUs) and multiworker:2 (two worker
processes over loopback) on mlp with eager, tf_data and fit, and kills worker 1 of the
multi-worker tf_data cell after two steps: that cell fails with the reason, the run
goes on, and no process of the run survives it. Bad --strategy values are one-line
errors, checked in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tf_loopbench.loops.distribute import gpus_for
from tf_loopbench.loops.equivalence import tolerance
from tf_loopbench.reports.rundir import load_run

from tests.conftest import ROOT, assert_group_ends
from tests.test_cli import assert_one_line_error, main_in_process

STRATEGIES = ("none", "mirrored:2", "multiworker:2")
KILLED = "mlp-tf_data-cpu-b32-multiworker_2"


@pytest.fixture(scope="module")
def strategy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distribute")
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LOOPBENCH_INJECT_FAULT": f"{KILLED}#1=kill",
    }
    # its own process group, so that every process it started can be looked for after
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_loopbench", "run", "--workload", "mlp"]
        + ["--loop", "eager,tf_data,fit", "--strategy", ",".join(STRATEGIES)]
        + ["--device", "cpu", "--batch-size", "32", "--data-size", "256", "--processes", "1"]
        + ["--steps", "4", "--windows", "2", "--warmup-steps", "2", "--out", str(out)]
        + ["--no-report"],  # rendered in-process below
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _, stderr = process.communicate(timeout=300)
    return process, stderr, out


def test_every_strategy_runs_the_same_math(strategy_run):
    process, stderr, out = strategy_run
    assert process.returncode == 0, stderr[-3000:]
    (run_dir,) = out.iterdir()
    summary = load_run(run_dir).summary.set_index(["loop", "strategy"])
    assert set(summary.index.get_level_values("strategy")) == set(STRATEGIES)
    reference = summary.loc[("eager", "none"), "equal_work_loss"]
    ran = summary[summary["status"] == "ok"]
    assert len(ran) == 7  # all but the killed cell and fit under multiworker
    for (loop, strategy), row in ran.iterrows():
        deviation = abs(row["equal_work_loss"] - reference) / reference
        assert deviation <= tolerance(loop, strategy=strategy), (loop, strategy, deviation)
        assert row["equivalent"], (loop, strategy)


def test_the_report_reads_scaling_per_strategy(strategy_run):
    from tf_loopbench.reports.report import command

    _, _, out = strategy_run
    (run_dir,) = out.iterdir()
    command([str(run_dir)])
    report = (run_dir / "report.md").read_text()
    assert "## Strategies" in report
    assert "### mlp (cpu, batch 32, width 128, mirrored:2)" in report
    assert "under mirrored:2, tf_data runs at" in report
    assert "under multiworker:2, eager has no fit beside it" in report
    # the replicas share this machine's cores, as each worker recorded: said beside the
    # efficiency of both strategies
    cores = len(os.sched_getaffinity(0))
    assert f"which are 2 logical devices of one CPU sharing its {cores} cores" in report
    assert f"which are 2 worker processes of one CPU sharing the same {cores} cores" in report


def test_a_style_that_cannot_run_is_skipped_without_starting_processes(strategy_run):
    _, _, out = strategy_run
    (run_dir,) = out.iterdir()
    summary = load_run(run_dir).summary.set_index(["loop", "strategy"])
    fit = summary.loc[("fit", "multiworker:2")]
    assert fit["status"] == "skipped"
    assert "keras-team/keras#20585" in fit["error"]
    assert not list((run_dir / "logs").glob("mlp-fit-cpu-b32-multiworker_2*"))


def test_a_killed_worker_fails_its_cell_and_leaves_nothing_behind(strategy_run):
    process, _, out = strategy_run
    (run_dir,) = out.iterdir()
    killed = (
        load_run(run_dir).summary.set_index(["loop", "strategy"]).loc[("tf_data", "multiworker:2")]
    )
    assert killed["status"] == "failed"
    assert "worker 1 of 2" in killed["error"] and "signal 9" in killed["error"]
    # both workers' logs exist: both were started; the run went on to the later cells
    assert len(list((run_dir / "logs").glob(f"{KILLED}-p0*.log"))) == 2
    # no worker, fork server or port holder of the run is left in its process group
    assert_group_ends(process.pid, "the run")


def test_gpus_each_worker_uses():
    # the GPU path cannot run here; its device choice is plain logic
    assert gpus_for("mirrored:2", present=4) == [0, 1]
    assert [gpus_for("multiworker:2", present=2, task=t) for t in (0, 1)] == [[0], [1]]
    with pytest.raises(NotImplementedError, match="multiworker:3 needs 3 GPUs; 2 present"):
        gpus_for("multiworker:3", present=2)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("mirrored:0", "mirrored needs 1 or more"),
        ("mirrored:x", "mirrored needs a count"),
        ("multiworker:1", "multiworker needs 2 or more"),
        ("parameter_server:2", "unknown strategy 'parameter_server:2'"),
    ],
)
def test_bad_strategy(value, fragment, capsys):
    assert_one_line_error(main_in_process(["run", "--strategy", value], capsys), fragment)
