"""`loopbench run --shard I/N` and `loopbench merge`: one matrix over several machines.

The dealing and the schedule are checked on matrices of every shape without TensorFlow;
one tiny real matrix (linear, fit and eager, 2 processes a cell) runs as two shards (the
module fixture, both at once) and is merged; report and compare read the merge; bad
merges (a shard missing, given twice, from another machine or matrix, unfinished) are
one line and exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tf_loopbench.benchmarks import cli, shards
from tf_loopbench.benchmarks.config import Cell, RunConfig, UsageError
from tf_loopbench.benchmarks.matrix import count_jobs
from tf_loopbench.benchmarks.runner import schedule
from tf_loopbench.reports.rundir import CellKey, load_run

from tests.conftest import ROOT


def loopbench(capsys, *args: str) -> tuple[int, str, str]:
    """``loopbench ARGS`` in this process (merge, report and compare import no TensorFlow):
    (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


# ----------------------------------------------------------------------------- dealing


def matrix(
    workloads=("linear", "mlp", "gan"),
    loops=("fit", "eager", "tf_function", "tf_data", "xla"),
    batches=(64,),
    precisions=("float32",),
):
    """Cells as make_cells builds them: the first loop keyed by fit's jit_compile too."""
    return [
        Cell(w, loop, "cpu", b, 0, precision=p, fit_jit="auto:off" if loop == loops[0] else "none")
        for w in workloads
        for b in batches
        for p in precisions
        for loop in loops
    ]


def config(processes: int, shard: tuple[int, int] | None = None) -> RunConfig:
    return RunConfig(
        workloads=(),
        loops=(),
        devices=("cpu",),
        devices_present=("cpu",),
        batch_sizes=(None,),
        widths=(None,),
        steps=None,
        windows=2,
        warmup_steps=0,
        processes=processes,
        shard=shard,
    )


@pytest.mark.parametrize("text", ["1/1", "2/4", " 4 / 4 "])
def test_parse_shard(text):
    index, count = (int(part) for part in text.split("/"))
    assert shards.parse_shard(text) == shards.Shard(index, count)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0/4", "out of range"),
        ("5/4", "out of range"),
        ("1/0", "N must be at least 1"),
        ("-1/4", "is not I/N"),
        ("a/b", "is not I/N"),
        ("2", "is not I/N"),
        ("1/2/3", "is not I/N"),
    ],
)
def test_bad_shard_is_one_line_and_exit_2(text, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["run", f"--shard={text}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("count", range(1, 9))
@pytest.mark.parametrize("shape", [(3, 5, 5, 1), (1, 5, 12, 1), (2, 3, 4, 1), (1, 5, 4, 2)])
def test_shards_cover_the_jobs_once_each_with_every_loop(shape, count):
    n_workloads, n_loops, processes, n_precisions = shape
    cells = matrix(
        ("linear", "mlp", "gan")[:n_workloads],
        ("a", "b", "c", "d", "e")[:n_loops],
        precisions=("float32", "mixed_float16")[:n_precisions],
    )
    how, dealt = shards.deal([c.key for c in cells], processes, count)
    jobs = [job for shard in dealt for job in shard]
    assert len(jobs) == len(set(jobs)) == len(cells) * processes  # disjoint and complete
    sizes = [len(shard) for shard in dealt]
    assert how == "blocks" and max(sizes) - min(sizes) <= n_loops  # at most one block apart
    for shard in dealt:
        assert {cells[index].loop for index, _ in shard} == {c.loop for c in cells}
        # a loop's process k and the reference's process k (same group) on one machine
        blocks = {(cells[i].workload, cells[i].precision, p) for i, p in shard}
        assert len(shard) == len(blocks) * n_loops


def test_fewer_blocks_than_shards_deals_single_jobs():
    cells = matrix(("mlp",), ("a", "b", "c"))
    how, dealt = shards.deal([c.key for c in cells], 2, 4)  # 2 blocks, 6 jobs
    assert how == "jobs" and sorted(len(s) for s in dealt) == [1, 1, 2, 2]
    with pytest.raises(shards.ShardError, match="7 shards for a matrix of 6 jobs"):
        shards.deal([c.key for c in cells], 2, 7)


def test_schedule_of_the_shards_is_the_schedule_split():
    cells = matrix()
    whole = [(job.cell, job.process) for job in schedule(cells, config(5), None)]
    parts = [schedule(cells, config(5, (i, 4)), None) for i in range(1, 5)]
    # each shard's jobs keep the interleaved order; together they are the whole schedule once
    for part in parts:
        keys = [(job.cell, job.process) for job in part]
        assert keys == [key for key in whole if key in set(keys)]
        assert [job.order for job in part] == list(range(len(part)))
    assert sorted(whole, key=str) == sorted(
        [(job.cell, job.process) for part in parts for job in part], key=str
    )


def test_too_many_shards_is_a_usage_error():
    cells = matrix(("linear",), ("fit", "eager"))
    with pytest.raises(UsageError, match="--shard: 5 shards for a matrix of 4 jobs"):
        count_jobs(cells, config(2, (5, 5)))
    assert count_jobs(cells, config(2, (1, 3))) == 2


# ----------------------------------------------------------------------------- a real matrix

TINY = [
    "--workload",
    "linear",
    "--loop",
    "fit,eager",
    "--data-size",
    "256",
    "--batch-size",
    "64",
    "--steps",
    "4",
    "--windows",
    "2",
    "--warmup-steps",
    "1",
    "--processes",
    "2",
    "--no-report",
]


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory):
    """Shards 1/2 and 2/2 of the tiny matrix, run at the same time as two machines would."""
    out = tmp_path_factory.mktemp("shards")
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tf_loopbench",
                "run",
                *TINY,
                "--shard",
                f"{i}/2",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for child in children:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
    # the two started together: their timestamps may be a second apart either way
    runs = sorted(out.iterdir(), key=lambda p: p.name.rsplit("-", 1)[-1])
    assert [p.name.rsplit("-", 1)[-1] for p in runs] == ["shard1of2", "shard2of2"]
    return runs


EXPECTED_CELLS = [
    CellKey("linear", "fit", "cpu", 64, 0, fit_jit="auto:off"),  # fit as Keras runs it on CPU
    CellKey("linear", "eager", "cpu", 64, 0),
]


def test_a_shard_records_itself_and_runs_its_share(shard_runs):
    for index, path in enumerate(shard_runs, start=1):
        run = load_run(path)
        shard = run.metadata["shard"]
        assert (shard["index"], shard["count"], shard["processes"]) == (index, 2, 2)
        assert [CellKey.of(c) for c in shard["matrix"]] == EXPECTED_CELLS
        assert [CellKey.of(c) for c in run.metadata["config"]["cells"]] == EXPECTED_CELLS
        assert run.metadata["config"]["shard"] == [index, 2]
        processes = run.process_samples()
        # one block each: both loop styles, process index - 1 (the full matrix's numbers)
        assert sorted(processes["loop"]) == ["eager", "fit"]
        assert set(processes["process"]) == {index - 1}
        assert set(run.summary["status"]) == {"ok"} and len(run.summary) == 2


@pytest.fixture(scope="module")
def merged(shard_runs, tmp_path_factory):
    """The two shards merged by the console command, as a CI job runs it."""
    out = tmp_path_factory.mktemp("merged") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tf_loopbench", "merge", *map(str, shard_runs), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"merged 2 shards: {out}"
    return out


def test_merged_shards_are_the_unsharded_run(merged, shard_runs):
    run = load_run(merged)
    # the cells of one unsharded run of the same arguments, each with every process
    assert [CellKey.of(row) for row in run.summary.to_dict("records")] == EXPECTED_CELLS
    assert [CellKey.of(c) for c in run.metadata["config"]["cells"]] == EXPECTED_CELLS
    assert list(run.summary["n_processes"]) == [2, 2] and set(run.summary["status"]) == {"ok"}
    processes = run.process_samples()
    jobs = [(CellKey.of(r), r["process"]) for r in processes.to_dict("records")]
    assert sorted(jobs) == sorted((cell, p) for cell in EXPECTED_CELLS for p in (0, 1))
    assert sorted(processes["order"]) == [0, 1, 2, 3]  # the unsharded schedule's positions
    assert run.run_id == "run" and run.metadata["complete"] is True and "shard" not in run.metadata
    assert run.metadata["merged"]["shards"][1]["run_id"] == shard_runs[1].name
    (machine,) = run.metadata["machines"]
    assert machine["shards"] == [1, 2] and machine["hard"] == run.metadata["hard"]
    assert run.ladder is not None and run.ladder == load_run(shard_runs[0]).ladder
    assert run.summary["equivalent"].tolist() == [True, True]


def test_report_and_compare_read_the_merge(merged, shard_runs, tmp_path, capsys):
    status, _, err = loopbench(capsys, "report", merged, "--out", tmp_path / "report")
    assert status == 0, err
    assert (tmp_path / "report" / "report.md").read_text().startswith("# ")
    again = tmp_path / "again"
    assert loopbench(capsys, "merge", *shard_runs, "--out", again)[0] == 0
    status, out, err = loopbench(capsys, "compare", merged, again)
    assert status == 0, out + err
    assert "linear/eager/cpu/bs64" in out
    status, _, err = loopbench(capsys, "compare", shard_runs[0], merged)
    assert status in (0, 1), err


def copy_run(source: Path, target: Path, edit=None) -> Path:
    shutil.copytree(source, target)
    if edit is not None:
        path = target / "metadata.json"
        metadata = json.loads(path.read_text())
        edit(metadata)
        path.write_text(json.dumps(metadata))
    return target


def test_bad_merges_are_one_line_and_exit_2(shard_runs, tmp_path, capsys):
    first, second = map(str, shard_runs)

    def other_cpu(metadata):
        metadata["hard"]["cpu_model"] = "Another CPU"

    def other_matrix(metadata):
        metadata["shard"]["processes"] = 3

    def other_windows(metadata):
        metadata["config"]["windows"] = 16

    moved = copy_run(shard_runs[1], tmp_path / "moved", other_cpu)
    unfinished = copy_run(shard_runs[1], tmp_path / "unfinished")
    lines = (unfinished / "samples.jsonl").read_text().splitlines(keepends=True)
    kept = [row for row in lines if not ('"kind": "process"' in row and '"loop": "eager"' in row)]
    (unfinished / "samples.jsonl").write_text("".join(kept))
    swapped = copy_run(shard_runs[1], tmp_path / "swapped")  # shard 1's samples in shard 2
    shutil.copy(shard_runs[0] / "samples.jsonl", swapped / "samples.jsonl")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    cases = [
        ([first], "missing: shard 2/2"),
        ([first, first], "duplicated: shard 1/2 given 2 times"),
        ([first, str(moved)], "ran on a different machine"),
        ([first, str(copy_run(shard_runs[1], tmp_path / "m", other_matrix))], "matrices"),
        ([first, str(copy_run(shard_runs[1], tmp_path / "w", other_windows))], "settings differ"),
        (
            [first, str(unfinished)],
            "has no result for 1 of its 2 jobs (linear/eager/cpu/bs64 process 1)",
        ),
        ([first, str(swapped)], "holds results of jobs that are not its own"),
        ([first, str(tmp_path / "absent")], "no such run directory"),
        ([first, second, "--out", str(occupied)], "exists and is not empty"),
    ]
    for runs, fragment in cases:
        out = [] if "--out" in runs else ["--out", str(tmp_path / "out")]
        status, _, err = loopbench(capsys, "merge", *runs, *out)
        assert status == 2, (runs, err)
        assert fragment in err, (fragment, err)
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


@pytest.fixture
def mixed(shard_runs, tmp_path):
    """The two shards as if shard 2 had run on another machine, merged with the flag."""

    def other_cpu(metadata):
        metadata["hard"]["cpu_model"] = "Another CPU"
        metadata["soft"]["hostname"] = "node-b"

    moved = copy_run(shard_runs[1], tmp_path / "moved", other_cpu)
    out = tmp_path / "mixed"
    status = cli.main(
        ["merge", str(shard_runs[0]), str(moved), "--out", str(out), "--allow-different-machines"]
    )
    assert status == 0
    return out


def test_different_machines_merge_when_allowed(merged, mixed, capsys):
    run = load_run(mixed)
    assert [m["shards"] for m in run.metadata["machines"]] == [[1], [2]]
    assert " | " in run.metadata["hard"]["cpu_model"]
    assert "node-b" in run.metadata["soft"]["hostname"]
    # its times are of two machines: the gate refuses absolute times
    status, _, err = loopbench(capsys, "compare", merged, mixed)
    assert status == 2 and "different machines" in err


def test_a_merge_of_different_machines_compares_by_within_run_ratios(merged, mixed, capsys):
    status, _, err = loopbench(capsys, "compare", merged, mixed, "--allow-different-machines")
    assert status in (0, 1), err
