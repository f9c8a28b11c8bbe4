"""Same-job A/B regression check: time a base git ref and this tree, interleaved.

Comparing a pull request with a run stored from another day or another CI machine
measures the machine as much as the code. This driver times both in one job, on one
machine, with one Python environment:

1. ``git worktree add`` the base ref (``BASE_REF``, e.g. ``origin/main``) into a
   temporary directory; nothing is installed for it: its code runs with the current
   environment (``python -m benchmarks.cli run`` with cwd and PYTHONPATH set to the
   worktree).
2. Start both sides as one ``loopbench run`` each, with the gate's settings
   (``GATE_RUN_ARGS``: the quick matrix, each worker timing 16 windows of ~25 ms,
   see below) and ``--samples`` processes per cell (default 20),
   and make them take turns (``benchmarks/turns.py``): their start-up probes one
   after the other, then one worker process at a time in ABBA order (job 0: base
   then current; job 1: current then base; ...). Process k of a cell is measured on
   both sides seconds apart, so slow drifts of the machine (thermal, noisy
   neighbours) fall on both alike, and each side starts up (imports TensorFlow,
   starts its fork server, makes its data) once. Each side's output goes to
   ``OUT/logs/<side>.log``; the driver prints one line per job pair.
   A base ref older than turn-taking falls back to whole runs in ABBA rounds of
   ``--processes`` processes (:func:`run_rounds`).
3. Copy each side's run into ``OUT/base`` and ``OUT/current`` (:func:`merge_runs`,
   which also pools rounds), mark them as each other's interleaved partner
   (``soft.ab``) and run the regression gate on the two
   (``reports.compare.command``), which then divides each sample by its block's
   drift first (``reports.gate_stats.drift_factors``).

Why 16 windows of ~25 ms and up to 20 samples: on a 2-core VM the per-process
step time of one cell varies by ~5-8 % (SD of log step time), and a one-sided
exact Mann-Whitney test at Holm's 0.01/15 with a 10 % slowdown catches it in ~60 %
of comparisons at 10 samples a side, ~80 % at 12 and ~98 % at 20 when that
spread is 5 % (simulated; ``benchmarks/validate_gate.py`` measures it on real
A/Bs). So samples matter more than steps: windows sized by duration give every
loop style ~0.4 s of steady steps a process (fixed counts spent ~45 % of a block
on the eager cells and gave the fastest cells 5 ms windows), and a block (one
process of every cell on both sides) fell from ~57 s to ~41 s here. (Until the
clock sized windows with sizing spans, "40 ms" gave windows of ~28 ms and "30 ms"
~21-26 ms in the graph styles; 25 ms keeps the block's length, ~46 s, and says
what it measures.)
``nox -s regression`` passes ``--time-budget-min 12`` so that the gate stops
after the last whole block that fits (18 blocks took 12.4-13.1 min here) rather than
overrunning 15 minutes.

Exit status: the gate's (0 no confirmed regression, 1 a confirmed regression, 2 the
runs cannot be compared or a run failed to start), or 0 with a note when the base
ref has no ``benchmarks/cli.py`` (nothing to regress against yet).

Run it (what ``nox -s regression -- origin/main`` does)::

    python -m benchmarks.ab origin/main --out results/regression \\
        --markdown results/regression/compare.md

``--inject-slowdown tf_function=0.10`` sets ``LOOPBENCH_INJECT_SLOWDOWN`` for the current
side only: an end-to-end check that the gate catches a known 10 % slowdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from benchmarks.stats import summarize
from reports import compare, gate_stats
from reports.compare import AB_MARK
from reports.rundir import (
    METADATA_FILE,
    SAMPLES_FILE,
    Run,
    RunDirError,
    atomic_write_text,
    load_run,
    write_metadata,
    write_samples,
    write_summary,
)

INJECT_SLOWDOWN_ENV = "LOOPBENCH_INJECT_SLOWDOWN"
CLI_MODULE = "benchmarks.cli"

#: ``loopbench run`` settings of both sides: the quick matrix, each worker timing 16
#: windows of ~25 ms (windows sized by duration: ~0.4 s of steady steps per process
#: whatever the loop style, see the module docstring).
GATE_RUN_ARGS = ("--quick", "--windows", "16", "--window-ms", "25")
#: the same for a base ref older than windows sized by duration: a fixed step count
FIXED_STEPS_GATE_RUN_ARGS = ("--quick", "--steps", "160", "--windows", "16")
DEFAULT_SAMPLES = 20  # the time budget of nox -s regression may stop earlier


class ABError(Exception):
    """The A/B could not be run; the message is one line fit to show as is."""


@dataclass(frozen=True)
class ABConfig:
    """One A/B comparison, built once from the command line."""

    base_ref: str
    repo: Path
    out: Path
    workloads: tuple[str, ...] = ()
    loops: tuple[str, ...] = ()
    processes: int = 2
    rounds: int | None = None  # None: as many as `samples` needs (see plan_rounds)
    samples: int = DEFAULT_SAMPLES  # per cell per side
    max_rounds: int = 8
    time_budget_min: float | None = None
    threshold: float = compare.DEFAULT_THRESHOLD
    alpha: float = compare.DEFAULT_ALPHA
    markdown: Path | None = None
    inject_slowdown: str | None = None
    python: str = sys.executable
    run_args: tuple[str, ...] = GATE_RUN_ARGS  # both sides' measurement settings


@dataclass(frozen=True)
class Side:
    """One side of the A/B: which code it runs and its extra environment."""

    name: str
    code_dir: Path
    extra_env: tuple[tuple[str, str], ...] = ()


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise ABError(f"git {' '.join(args)}: {reason}")
    return result.stdout.strip()


def repo_root(start: Path) -> Path:
    """The top of the git work tree holding ``start``."""
    return Path(_git(start, "rev-parse", "--show-toplevel"))


@contextmanager
def base_worktree(repo: Path, base_ref: str) -> Iterator[tuple[Path, str]]:
    """A detached git worktree of ``base_ref`` in a temporary directory: (path, commit).

    The worktree is removed (and git's record of it pruned) on exit.
    """
    commit = _git(repo, "rev-parse", "--verify", f"{base_ref}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix="loopbench-base-"))
    path = parent / commit[:12]
    _git(repo, "worktree", "add", "--detach", str(path), commit)
    try:
        yield path, commit
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "prune"], capture_output=True, check=False
        )


def run_command(config: ABConfig, out_dir: Path, processes: int) -> list[str]:
    """The ``loopbench run`` invocation of one side for one round."""
    command = [config.python, "-m", CLI_MODULE, "run", *config.run_args, "--no-report"]
    command += ["--processes", str(processes), "--out", str(out_dir)]
    for workload in config.workloads:
        command += ["--workload", workload]
    for loop in config.loops:
        command += ["--loop", loop]
    return command


def side_environment(side: Side) -> dict[str, str]:
    """The current environment, with PYTHONPATH led by the side's code and its extras."""
    env = dict(os.environ)
    env.pop(INJECT_SLOWDOWN_ENV, None)  # only a side that asks for it gets a slowdown
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(side.code_dir), os.environ.get("PYTHONPATH", "")) if part
    )
    env.update(dict(side.extra_env))
    return env


def find_run_dir(out_dir: Path) -> Path:
    """The run directory ``loopbench run --out out_dir`` wrote: out_dir or its one child."""
    if (out_dir / METADATA_FILE).exists():
        return out_dir
    runs = sorted(p for p in out_dir.glob("*") if (p / METADATA_FILE).exists())
    if len(runs) != 1:
        raise ABError(f"{out_dir}: expected one run directory, found {len(runs)}")
    return runs[0]


def run_side(config: ABConfig, side: Side, out_dir: Path, processes: int) -> Path:
    """Run one round of one side; return its run directory."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    command = run_command(config, out_dir, processes)
    print(f"[ab] {side.name}: {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, cwd=side.code_dir, env=side_environment(side), check=False)
    if result.returncode != 0:
        raise ABError(f"{side.name} side: loopbench run exited with status {result.returncode}")
    return find_run_dir(out_dir)


def _raw_sample_rows(run: Run) -> list[dict]:
    """samples.jsonl as written (types intact); load_run has already validated it."""
    path = run.path / SAMPLES_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def merge_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    run_id: str | None = None,
    soft_extra: dict | None = None,
) -> Path:
    """Pool several runs of the same code on the same machine into one run directory.

    Samples are concatenated with process numbers made unique (round r's process k
    becomes k plus the processes of the earlier rounds, so process k of every loop
    style still comes from the same round, as within-run ratios pair them); the
    summary is recomputed from all of them with ``benchmarks.stats.summarize``; the
    metadata is the first run's, with ``soft.merged_from`` listing the run ids (and
    ``soft_extra`` added to its soft keys).
    Example::

        merge_runs(["rounds/base/r00/RUN", "rounds/base/r01/RUN"], "results/base", "ab-base")
    """
    if not run_dirs:
        raise RunDirError("nothing to merge: no run directory given")
    runs = [load_run(path) for path in run_dirs]
    for run in runs[1:]:
        differences = compare.metadata_differences(
            runs[0].metadata.get("hard", {}), run.metadata.get("hard", {})
        )
        if differences:
            raise compare.IncomparableRunsError(
                f"cannot merge {run.path} with {runs[0].path}: machines differ "
                f"({'; '.join(differences)})"
            )
    rows: list[dict] = []
    cells: list[dict] = []
    offset = 0
    for run in runs:
        run_rows = _raw_sample_rows(run)
        processes = [row["process"] for row in run_rows if isinstance(row.get("process"), int)]
        for row in run_rows:
            if isinstance(row.get("process"), int):
                row["process"] += offset
        rows.extend(run_rows)
        offset += max(processes) + 1 if processes else 0
        for cell in run.metadata.get("config", {}).get("cells", []):
            if cell not in cells:
                cells.append(cell)

    metadata = json.loads(json.dumps(runs[0].metadata))
    soft = metadata.setdefault("soft", {})
    soft["merged_from"] = [run.run_id for run in runs]
    soft.update(soft_extra or {})
    ended = [run.metadata.get("soft", {}).get("ended_at") for run in runs]
    if all(isinstance(value, str) for value in ended):
        soft["ended_at"] = max(ended)
    metadata["complete"] = all(run.metadata.get("complete", True) for run in runs)
    out_dir = Path(out_dir)
    metadata["run_id"] = run_id or out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    write_samples(out_dir, rows)
    write_summary(out_dir, summarize(rows, cells or None))
    write_metadata(out_dir, metadata)
    return out_dir


def rounds_needed(alpha: float, n_cells: int, processes_per_round: int) -> int:
    """Rounds for each side to hold enough samples per cell to reach Holm's alpha/m."""
    per_side = gate_stats.samples_needed_per_side(alpha / max(n_cells, 1))
    return math.ceil(per_side / processes_per_round)


def plan_rounds(
    samples_needed: int,
    samples_done: int,
    processes_per_round: int,
    max_rounds: int,
) -> list[int]:
    """Processes of each remaining round: full rounds, then a last one of the remainder.

    >>> plan_rounds(7, 2, 2, 6)   # 2 done, 5 to go
    [2, 2, 1]
    """
    remaining = max(0, samples_needed - samples_done)
    plan = [processes_per_round] * (remaining // processes_per_round)
    if remaining % processes_per_round:
        plan.append(remaining % processes_per_round)
    return plan[: max(0, max_rounds - 1)]


def _ok_cells(run_dir: Path) -> int:
    summary = load_run(run_dir).summary
    return int((summary["status"] == "ok").sum())


def run_rounds(config: ABConfig, sides: Sequence[Side]) -> dict[str, list[Path]]:
    """Run the sides alternately, ABBA order, round after round; their run dirs by side.

    With ``config.rounds`` None, round 1 counts the cells and the remaining rounds
    bring each side to the samples the gate needs (capped by ``max_rounds`` and by
    ``time_budget_min``, with a warning that the gate may then be inconclusive).
    """
    run_dirs: dict[str, list[Path]] = {side.name: [] for side in sides}
    plan = [config.processes] * (config.rounds or 1)
    started = time.monotonic()
    round_index = 0
    while round_index < len(plan):
        processes = plan[round_index]
        order = sides if round_index % 2 == 0 else tuple(reversed(sides))
        for side in order:
            out_dir = config.out / "rounds" / side.name / f"r{round_index:02d}"
            run_dirs[side.name].append(run_side(config, side, out_dir, processes))
        round_index += 1
        elapsed = time.monotonic() - started
        if config.rounds is None and round_index == 1:
            n_cells = _ok_cells(run_dirs[sides[-1].name][0])
            reachable = gate_stats.samples_needed_per_side(config.alpha / max(n_cells, 1))
            needed = max(reachable, config.samples)
            plan += plan_rounds(needed, processes, config.processes, config.max_rounds)
            if config.time_budget_min is not None:
                seconds_per_process = elapsed / processes  # both sides, overheads included
                while plan[1:] and sum(plan) * seconds_per_process > 60 * config.time_budget_min:
                    plan.pop()
            print(
                f"[ab] {n_cells} cells: {needed} processes per side ({reachable} reach "
                f"Holm's alpha/{n_cells}); plan: rounds of {plan} processes",
                flush=True,
            )
            if sum(plan) < reachable:
                print(
                    f"[ab] warning: {sum(plan)} processes per side (max rounds / time budget) "
                    f"cannot reach the gate's alpha; expect 'inconclusive'",
                    flush=True,
                )
        print(
            f"[ab] round {round_index}/{len(plan)} done, {elapsed / 60:.1f} min elapsed",
            flush=True,
        )
    return run_dirs


TAKE_TURNS_OPTION = "--take-turns"


def _cli_has(code_dir: Path, option: str) -> bool:
    cli = code_dir / "benchmarks" / "cli.py"
    return cli.exists() and option in cli.read_text(encoding="utf-8", errors="replace")


def supports_turns(code_dir: Path) -> bool:
    """Whether that code's ``loopbench run`` can take turns (``benchmarks/turns.py``)."""
    return _cli_has(code_dir, TAKE_TURNS_OPTION)


def gate_run_args(base_dir: Path) -> tuple[str, ...]:
    """Both sides' ``loopbench run`` settings: windows by duration if the base ref
    has them, else a fixed step count (both sides must measure alike)."""
    return GATE_RUN_ARGS if _cli_has(base_dir, "--window-ms") else FIXED_STEPS_GATE_RUN_ARGS


@dataclass
class RunningSide:
    """One side's ``loopbench run --take-turns`` process, seen from the driver."""

    side: Side
    process: subprocess.Popen
    answers: TextIO
    log: Path
    out_dir: Path
    jobs: int = 0
    done: int = 0
    ended: bool = False

    def turn(self) -> str | None:
        """Give the side one turn; its answer line, or None if it has ended."""
        if self.ended:
            return None
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        except OSError:
            self.ended = True
            return None
        line = self.answers.readline()
        if not line:
            self.ended = True
            return None
        return line.strip()

    def finish(self) -> int:
        """Close its stdin (a side with jobs left ends as interrupted); its exit status."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        status = self.process.wait()
        self.answers.close()
        self.ended = True
        return status

    def failure(self, status: int) -> str:
        return (
            f"{self.side.name} side: loopbench run exited with status {status} "
            f"after {self.done} of {self.jobs or '?'} jobs (its output: {self.log})"
        )


def start_side(config: ABConfig, side: Side, out_dir: Path, processes: int) -> RunningSide:
    """Start one side's ``loopbench run`` taking turns; output goes to a log file."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    log = config.out / "logs" / f"{side.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    command = [*run_command(config, out_dir, processes), TAKE_TURNS_OPTION, str(write_fd)]
    print(f"[ab] {side.name}: {' '.join(command[1:])} (output: {log})", flush=True)
    with open(log, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command,
            cwd=side.code_dir,
            env=side_environment(side),
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            text=True,
        )
    os.close(write_fd)
    answers = os.fdopen(read_fd, "r", encoding="utf-8")
    return RunningSide(side, process, answers, log, out_dir)


def run_interleaved(config: ABConfig, sides: Sequence[Side]) -> dict[str, list[Path]]:
    """Both sides as one ``loopbench run`` each, their worker processes interleaved.

    The sides take turns (``benchmarks/turns.py``): first their start-up probes, one
    after the other, then job by job in ABBA order (job 0: base then current; job 1:
    current then base; ...), so that process k of a cell runs on both sides seconds
    apart and neither side goes first more often. Each side runs
    ``--samples`` processes per cell (``--rounds N`` gives N x ``--processes``).
    With ``--time-budget-min``, the driver stops both sides after the last whole
    process of every cell that the budget allows (the runs are then marked
    interrupted; the gate compares what finished).
    """
    processes = config.samples if config.rounds is None else config.rounds * config.processes
    running: list[RunningSide] = []
    try:
        for side in sides:
            out_dir = config.out / "rounds" / side.name / "interleaved"
            running.append(start_side(config, side, out_dir, processes))
        started = time.monotonic()
        for side in running:  # start-up turns: one probe at a time
            answer = side.turn()
            if answer is None or not answer.startswith("ready "):
                raise ABError(side.failure(side.finish()))
            side.jobs = int(answer.split()[1])
        cells = running[0].jobs // processes
        reachable = gate_stats.samples_needed_per_side(config.alpha / max(cells, 1))
        print(
            f"[ab] {cells} cells x {processes} processes per side, worker processes "
            f"interleaved ({reachable} per side reach Holm's alpha/{cells})",
            flush=True,
        )
        if processes < reachable:
            print(
                f"[ab] warning: {processes} processes per side cannot reach the gate's "
                f"alpha; expect 'inconclusive' (use --samples {reachable})",
                flush=True,
            )
        if len({side.jobs for side in running}) > 1:
            print(
                "[ab] note: the sides plan different matrices "
                f"({', '.join(f'{s.side.name} {s.jobs} jobs' for s in running)})",
                flush=True,
            )
        index = 0
        while any(side.done < side.jobs and not side.ended for side in running):
            order = running if index % 2 == 0 else list(reversed(running))
            answers = []
            for side in order:
                if side.done >= side.jobs or side.ended:
                    continue
                answer = side.turn()
                if answer is None or not answer.startswith("done "):
                    raise ABError(side.failure(side.finish()))
                side.done += 1
                _, label, process, status = (answer.split() + ["?"] * 4)[:4]
                answers.append(f"{side.side.name} {status}")
                if side.done == side.jobs:  # let it write its summary before the next turn
                    status_code = side.finish()
                    if status_code != 0:
                        raise ABError(side.failure(status_code))
            index += 1
            elapsed = time.monotonic() - started
            left = elapsed / index * (max(s.jobs for s in running) - index)
            print(
                f"[ab] {index}/{max(s.jobs for s in running)} {label} #{int(process) + 1}: "
                f"{', '.join(answers)} ({elapsed / 60:.1f} min, ~{left / 60:.1f} min left)",
                flush=True,
            )
            if (
                config.time_budget_min is not None
                and cells
                and index % cells == 0
                and index < min(s.jobs for s in running)
                and elapsed / index * (index + cells) > 60 * config.time_budget_min
            ):
                print(
                    f"[ab] time budget: stopping both sides after {index // cells} "
                    f"processes per cell ({elapsed / 60:.1f} min)",
                    flush=True,
                )
                break
    finally:
        for side in running:
            if not side.ended or side.process.poll() is None:
                side.finish()
    return {side.side.name: [find_run_dir(side.out_dir)] for side in running}


def _note(config: ABConfig, message: str) -> None:
    print(message, flush=True)
    if config.markdown is not None:
        atomic_write_text(config.markdown, f"## Regression gate\n\n{message}\n")


def run_ab(config: ABConfig) -> int:
    """Run the whole A/B and the gate; return the exit status."""
    with base_worktree(config.repo, config.base_ref) as (base_dir, base_commit):
        if not (base_dir / "benchmarks" / "cli.py").exists():
            _note(
                config,
                f"{config.base_ref} ({base_commit[:10]}) has no benchmarks/cli.py: "
                "nothing to compare against yet",
            )
            return 0
        current_env = (
            ((INJECT_SLOWDOWN_ENV, config.inject_slowdown),) if config.inject_slowdown else ()
        )
        sides = (
            Side("base", base_dir),
            Side("current", config.repo, current_env),
        )
        config = replace(config, run_args=gate_run_args(base_dir))
        interleaved = supports_turns(base_dir)  # this tree's code always can
        if interleaved:
            run_dirs = run_interleaved(config, sides)
        else:
            print(
                f"[ab] {config.base_ref} cannot take turns worker by worker: "
                "interleaving whole runs (ABBA rounds)",
                flush=True,
            )
            run_dirs = run_rounds(config, sides)
    current_commit = _git(config.repo, "rev-parse", "HEAD")
    merged = {}
    run_ids = {"base": f"ab-base-{base_commit[:10]}", "current": f"ab-current-{current_commit[:10]}"}
    for side, partner in (("base", "current"), ("current", "base")):
        out_dir = config.out / side
        if out_dir.exists():
            shutil.rmtree(out_dir)
        # worker by worker: compare may read the machine's drift from the blocks
        mark = {"interleaved": interleaved, "partner": run_ids[partner]}
        merged[side] = merge_runs(run_dirs[side], out_dir, run_ids[side], soft_extra={AB_MARK: mark})
    # the base side must have run the worktree's code, not the installed current code
    reported = load_run(merged["base"]).metadata.get("soft", {}).get("git_commit")
    if reported and reported != base_commit:
        raise ABError(
            f"the base side reports commit {reported[:10]}, not {base_commit[:10]}: "
            "it did not run the worktree's code"
        )
    return compare.command(
        merged["base"],
        merged["current"],
        threshold=config.threshold,
        alpha=config.alpha,
        markdown=config.markdown,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab",
        description="Time BASE_REF and this work tree interleaved on this machine, then gate.",
    )
    parser.add_argument("base_ref", help="git ref of the baseline, e.g. origin/main")
    parser.add_argument("--out", type=Path, default=Path("results/regression"))
    parser.add_argument("--markdown", type=Path, help="Markdown table for a CI job summary")
    parser.add_argument("--workload", action="append", default=[], help="repeatable")
    parser.add_argument("--loop", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker processes per cell per round (with --rounds N, or a base ref that "
        "cannot take turns)",
    )
    parser.add_argument(
        "--rounds",
        default="auto",
        help="rounds per side, or 'auto': enough for the gate to reach its alpha",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        help="processes per cell per side (rounds of a base ref that cannot take turns: "
        "raised to what the gate's alpha needs)",
    )
    parser.add_argument("--max-rounds", type=int, default=8, help="cap on 'auto' rounds")
    parser.add_argument(
        "--time-budget-min",
        type=float,
        help="stop after the last whole process of every cell (or round) that ends "
        "within this many minutes",
    )
    parser.add_argument("--threshold", type=float, default=compare.DEFAULT_THRESHOLD)
    parser.add_argument("--alpha", type=float, default=compare.DEFAULT_ALPHA)
    parser.add_argument(
        "--inject-slowdown",
        metavar="LOOP=FRACTION",
        help=f"set {INJECT_SLOWDOWN_ENV} on the current side only (a check of the gate)",
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the current work tree")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> ABConfig:
    args = build_parser().parse_args(argv)
    if args.rounds != "auto" and not (str(args.rounds).isdigit() and int(args.rounds) >= 1):
        raise ABError(f"--rounds must be a positive number or 'auto', got {args.rounds!r}")
    if args.processes < 1:
        raise ABError(f"--processes must be at least 1, got {args.processes}")
    if args.samples < 1:
        raise ABError(f"--samples must be at least 1, got {args.samples}")
    return ABConfig(
        base_ref=args.base_ref,
        repo=repo_root(args.repo.resolve()),
        out=args.out.resolve(),
        workloads=tuple(args.workload),
        loops=tuple(args.loop),
        processes=args.processes,
        rounds=None if args.rounds == "auto" else int(args.rounds),
        samples=args.samples,
        max_rounds=args.max_rounds,
        time_budget_min=args.time_budget_min,
        threshold=args.threshold,
        alpha=args.alpha,
        markdown=args.markdown.resolve() if args.markdown else None,
        inject_slowdown=args.inject_slowdown,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = None
    try:
        config = config_from_args(argv)
        return run_ab(config)
    except (ABError, RunDirError, compare.IncomparableRunsError) as exc:
        message = f"ab: cannot compare: {exc}"
        print(message, file=sys.stderr)
        if config is not None and config.markdown is not None:
            atomic_write_text(config.markdown, f"## Regression gate\n\n{message}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
