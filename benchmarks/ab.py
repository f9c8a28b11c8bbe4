"""Same-job A/B: time a base git ref and this work tree side by side (duet) or
interleaved, then gate.

``loopbench ab BASE_REF`` (``benchmarks/cli.py``) builds an :class:`ABConfig` and
calls :func:`run_ab`. A run stored on another day or another machine measures the
machine as much as the code; this times both sides in one job, on one machine, with
one Python environment:

1. ``git worktree add`` the base ref into a temporary directory. Nothing is installed
   for it: its ``python -m tf_loopbench run`` (``benchmarks.cli`` before 0007) runs with the current environment,
   its work tree first on PYTHONPATH.
2. Start both sides as one ``loopbench run --take-turns FD`` each, with the gate's
   settings (``GATE_RUN_ARGS``) and ``--processes`` per cell, and let them take turns
   (``benchmarks/turns.py``): their start-up probes one after the other, then, in
   duet mode (the default with 2 cores or more, ``benchmarks/duet.py``), job k of
   both sides at once, each worker pinned to its own half of the cores (swapped every
   block) and its timed windows started together with the other's; interleaved
   (``--mode interleaved``, 1 core, a base that predates duet), one worker process at
   a time in ABBA order. Process k of a cell on both sides is block k, so what else
   the machine does falls on both alike. Each side's output goes to
   ``OUT/logs/<side>.log``.
3. Copy each side's run to ``OUT/base`` and ``OUT/current``, mark them as each
   other's partner (``soft.ab``, with the mode) and run the regression gate on them
   (``reports.gate.command``): a duet's blocks judged in pairs (docs/decisions/0011),
   an interleaved A/B's samples corrected for the machine's drift read around each
   pair (docs/decisions/0006).

Exit status: the gate's (0 no confirmed regression, 1 a confirmed regression, 3 with
``--fail-if-blind`` a cell that could not have seen a slowdown of the threshold's size), 2 when
the runs cannot be compared or a side fails (a base ref whose ``loopbench run`` cannot
take turns "predates interleaved A/B"), and 0 with a note when the base ref has no
command line (nothing to regress against yet). Why these settings and how
the gate was validated: docs/gate.md.

Example (what ``nox -s regression -- origin/main`` runs)::

    loopbench ab origin/main --out results/regression

``--inject-slowdown LOOP=0.10`` sets ``LOOPBENCH_INJECT_SLOWDOWN`` on the current
side only: an end-to-end check that the gate catches a known slowdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tf_loopbench.benchmarks.config import (
    AB_MODES,
    AB_PROCESSES,
    AB_TIME_BUDGET_MIN,
    DUET_DIR_ENV,
    DUET_SIDE_ENV,
    GATE_RUN_ARGS,
    INJECT_SLOWDOWN_ENV,
)
from tf_loopbench.benchmarks.duet import (
    available_cores,
    block_cores,
    core_halves,
    supported,
    write_seat,
)
from tf_loopbench.benchmarks.stats import summarize
from tf_loopbench.reports import gate
from tf_loopbench.reports.gate import judge, stats
from tf_loopbench.reports.rundir import (
    AB_MARK,
    METADATA_FILE,
    SAMPLES_FILE,
    Run,
    RunDirError,
    atomic_write_text,
    load_run,
    reference_loop,
    write_metadata,
    write_samples,
    write_summary,
)

#: how a side's code runs its command line, newest layout first: one namespace since
#: docs/decisions/0007, the top-level ``benchmarks`` package before it
CLI_MODULES = (
    ("tf_loopbench/__main__.py", "tf_loopbench"),
    ("benchmarks/cli.py", "benchmarks.cli"),
)
TAKE_TURNS_OPTION = "--take-turns"


class ABError(Exception):
    """The A/B could not be run; the message is one line fit to show as is."""


@dataclass(frozen=True)
class ABConfig:
    """One A/B comparison, built once from the command line."""

    base_ref: str
    repo: Path  # the current work tree (its git top level)
    out: Path
    workloads: tuple[str, ...] = ()
    loops: tuple[str, ...] = ()  # empty: default_loops()
    processes: int = AB_PROCESSES  # per cell per side
    time_budget_min: float | None = AB_TIME_BUDGET_MIN
    threshold: float = gate.DEFAULT_THRESHOLD
    alpha: float = gate.DEFAULT_ALPHA
    markdown: Path | None = None
    inject_slowdown: str | None = None
    allow_missing: bool = False
    fail_if_blind: bool = False
    python: str = sys.executable
    run_args: tuple[str, ...] = GATE_RUN_ARGS  # both sides' measurement settings
    mode: str | None = None  # AB_MODES; None: duet with 2 cores or more, else interleaved
    pinned: bool = True  # duet: each side pinned to its half (False: all cores, half the threads)
    cores: tuple[int, ...] | None = None  # the cores a duet splits; None: this process's


@dataclass(frozen=True)
class Duet:
    """A duet's shared directory (seat files, barrier sockets) and its two core halves."""

    directory: Path
    halves: tuple[tuple[int, ...], tuple[int, ...]]
    #: each side pinned to its half; False: both on every core, each with half the threads
    pinned: bool = True

    def seat(self, side: str, job: int, block: int) -> None:
        """Tell ``side``'s worker of ``job`` its half for ``block`` (swapped every block),
        or, unpinned, its threads."""
        if self.pinned:
            write_seat(self.directory, side, job, block_cores(self.halves, block, side))
        else:
            write_seat(self.directory, side, job, (), len(self.halves[0]))

    def describe(self) -> str:
        if not self.pinned:
            return (
                f"both on every core, {len(self.halves[0])} TensorFlow thread(s) each; "
                "windows started together"
            )
        first, second = (",".join(map(str, half)) for half in self.halves)
        return (
            f"each pinned to half the cores, {first} and {second}, swapped every block; "
            "windows started together"
        )


def choose_mode(config: ABConfig, base_dir: Path) -> tuple[str, str | None]:
    """The mode this A/B runs in and, when it is not what was asked or is the default's
    fallback, the line that says why."""
    if config.mode is not None and config.mode not in AB_MODES:
        raise ABError(f"unknown mode {config.mode!r}; choose from {', '.join(AB_MODES)}")
    if config.mode == "interleaved":
        return "interleaved", None
    cores = config.cores if config.cores is not None else available_cores()
    if core_halves(cores) is None:
        return "interleaved", (
            f"{len(cores)} core: duet needs 2 or more (one half a side); running interleaved"
        )
    if not supported(base_dir):
        return "interleaved", (
            f"{config.base_ref} predates duet A/B (its workers cannot take a seat on half "
            "the cores or start windows together); running interleaved"
        )
    return "duet", None


@dataclass(frozen=True)
class Side:
    """One side of the A/B: which code it runs and its extra environment."""

    name: str
    code_dir: Path
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


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


def default_loops() -> tuple[str, ...]:
    """The loop styles an A/B times unless ``--loop`` says otherwise: every rung of the
    ladder the styles declare but the bottom one (its op-by-op step costs ~15 % of a
    block, and what only it runs, the step's math and the NumPy batches, regresses in
    the graph rungs' and the reference's cells too; ``--loop`` can add it)."""
    import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
    from tf_loopbench.loops.base import LOOPS

    rungs = LOOPS.ladder()["rungs"]
    return tuple(r["loop"] for r in rungs if r["reference"] or r["compares_with"] is not None)


def cli_module(code_dir: Path) -> str | None:
    """The module that runs a side's command line from its work tree (None: it has none)."""
    for path, module in CLI_MODULES:
        if (code_dir / path).exists():
            return module
    return None


def run_command(config: ABConfig, out_dir: Path, code_dir: Path) -> list[str]:
    """One side's ``loopbench run`` invocation (without the turn-taking option)."""
    module = cli_module(code_dir)
    command = [config.python, "-m", module, "run", *config.run_args, "--no-report"]
    command += ["--processes", str(config.processes), "--out", str(out_dir)]
    for workload in config.workloads:
        command += ["--workload", workload]
    for loop in config.loops or default_loops():
        command += ["--loop", loop]
    return command


def side_environment(side: Side) -> dict[str, str]:
    """The current environment, with PYTHONPATH led by the side's code and its extras."""
    env = dict(os.environ)
    for name in (INJECT_SLOWDOWN_ENV, DUET_DIR_ENV, DUET_SIDE_ENV):
        env.pop(name, None)  # only a side that is given them has them
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
    """Pool runs of the same code on the same machine into one run directory.

    Samples are concatenated with process numbers made unique (run r's process k
    becomes k plus the processes of the earlier runs, so process k of every loop
    style still comes from the same run, as within-run ratios pair them); the
    summary is recomputed from all of them; the metadata is the first run's, with
    ``soft.merged_from`` listing the run ids and ``soft_extra`` added. The A/B uses it
    with one run per side, to copy and mark it. Example::

        merge_runs(["results/RUN_A", "results/RUN_B"], "results/pooled", "pooled")
    """
    if not run_dirs:
        raise RunDirError("nothing to merge: no run directory given")
    runs = [load_run(path) for path in run_dirs]
    for run in runs[1:]:
        differences = judge.metadata_differences(
            runs[0].metadata.get("hard", {}), run.metadata.get("hard", {})
        )
        if differences:
            raise gate.IncomparableRunsError(
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
    write_summary(out_dir, summarize(rows, cells or None, reference_loop(metadata)))
    write_metadata(out_dir, metadata)
    return out_dir


# ----------------------------------------------------------------------------- turns


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

    def go(self) -> bool:
        """Tell the side to take its turn; False if it has ended."""
        if self.ended:
            return False
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        except OSError:
            self.ended = True
            return False
        return True

    def answer(self) -> str | None:
        """The side's answer to its turn, or None if it has ended."""
        line = self.answers.readline()
        if not line:
            self.ended = True
            return None
        return line.strip()

    def turn(self) -> str | None:
        """Give the side one turn; its answer line, or None if it has ended."""
        return self.answer() if self.go() else None

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

    def last_output_line(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""


def start_side(config: ABConfig, side: Side, out_dir: Path) -> RunningSide:
    """Start one side's ``loopbench run`` taking turns; output goes to a log file."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    log = config.out / "logs" / f"{side.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    command = [*run_command(config, out_dir, side.code_dir), TAKE_TURNS_OPTION, str(write_fd)]
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


def _start_up_failure(config: ABConfig, side: RunningSide) -> ABError:
    """Why a side ended before its start-up turn: a base too old to take turns, or else."""
    status = side.finish()
    reason = side.last_output_line()
    if status == 2 and side.side.name == "base" and TAKE_TURNS_OPTION in reason:
        return ABError(
            f"{config.base_ref} predates interleaved A/B: its loopbench run has no "
            f"{TAKE_TURNS_OPTION} ({reason})"
        )
    if status == 2 and reason:  # bad input: its one line says why
        return ABError(f"{side.side.name} side: {reason} (its output: {side.log})")
    return ABError(side.failure(status))


def goes_first(index: int, cells: int) -> int:
    """Which side (0 base, 1 current) is given job ``index`` first: the sides alternate
    job by job, and for each cell (job ``block * cells + cell``) block by block, so that
    no cell has the same side first in every block (with an even number of cells,
    alternating job by job alone would).

    >>> [goes_first(i, 2) for i in range(8)]   # cell 0: 0 1 0 1 by block; cell 1: 1 0 1 0
    [0, 1, 1, 0, 0, 1, 1, 0]
    >>> [goes_first(i, 3) for i in range(6)]
    [0, 1, 0, 1, 0, 1]
    """
    cells = max(cells, 1)
    return (index // cells + index % cells) % 2


def run_interleaved(
    config: ABConfig, sides: Sequence[Side], duet: Duet | None = None
) -> dict[str, Path]:
    """Both sides as one ``loopbench run`` each, their worker processes interleaved (or,
    with ``duet``, side by side); each side's run directory by side name.

    The sides take turns (``benchmarks/turns.py``): first their start-up probes, one
    after the other, then job by job. Interleaved, in ABBA order (``goes_first``), so
    that neither side goes first more often, in any cell.
    In a duet both sides get job k's turn at once, each told its half of the cores
    first (``benchmarks/duet.py``; the halves swap every block), and the driver waits
    for both. With a time budget the driver stops both sides after the last whole block
    (one process of every cell) that fits; the runs are then marked interrupted and the
    gate compares what finished.
    """
    running: list[RunningSide] = []
    try:
        for side in sides:
            out_dir = config.out / "runs" / side.name
            running.append(start_side(config, side, out_dir))
        started = time.monotonic()
        for side in running:  # start-up turns: one probe at a time
            answer = side.turn()
            if answer is None or not answer.startswith("ready "):
                raise _start_up_failure(config, side)
            side.jobs = int(answer.split()[1])
        cells = running[0].jobs // config.processes
        reachable = stats.samples_needed_per_side(config.alpha / max(cells, 1))
        how = "interleaved" if duet is None else f"side by side ({duet.describe()})"
        print(
            f"[ab] {cells} cells x {config.processes} processes per side, worker processes "
            f"{how} ({reachable} per side reach Holm's alpha/{cells})",
            flush=True,
        )
        if config.processes < reachable:
            print(
                f"[ab] warning: {config.processes} processes per side cannot reach the "
                f"gate's alpha; expect 'unclear' (use --processes {reachable})",
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
            order = running if goes_first(index, cells) == 0 else list(reversed(running))
            order = [side for side in order if side.done < side.jobs and not side.ended]
            if duet is not None:  # both at once: each told its cores, then both go
                for side in order:
                    duet.seat(side.side.name, index, index // max(cells, 1))
                told = [side for side in order if side.go()]
            answers = []
            for side in order:
                answer = side.answer() if duet is not None and side in told else side.turn()
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
    return {side.side.name: find_run_dir(side.out_dir) for side in running}


# ----------------------------------------------------------------------------- the A/B


def write_note(markdown: Path | None, message: str) -> None:
    """The one line a CI job summary shows when there is no comparison table."""
    if markdown is not None:
        atomic_write_text(markdown, f"## Regression gate\n\n{message}\n")


def run_ab(config: ABConfig) -> int:
    """Run the whole A/B and the gate; return the exit status. Raises ABError (and
    the run-directory errors) when the sides cannot be run or compared."""
    with base_worktree(config.repo, config.base_ref) as (base_dir, base_commit):
        if cli_module(base_dir) is None:
            message = (
                f"{config.base_ref} ({base_commit[:10]}) has no loopbench command line: "
                "nothing to regress against yet"
            )
            print(message, flush=True)
            write_note(config.markdown, message)
            return 0
        current_env = (
            ((INJECT_SLOWDOWN_ENV, config.inject_slowdown),) if config.inject_slowdown else ()
        )
        mode, why = choose_mode(config, base_dir)
        if why:
            print(f"[ab] {why}", flush=True)
        with tempfile.TemporaryDirectory(prefix="loopbench-duet-") as duet_dir:
            duet = None
            sides = [("base", base_dir, ()), ("current", config.repo, current_env)]
            if mode == "duet":
                cores = config.cores if config.cores is not None else available_cores()
                duet = Duet(Path(duet_dir), core_halves(cores), config.pinned)
                sides = [
                    (name, code, (*env, (DUET_DIR_ENV, duet_dir), (DUET_SIDE_ENV, name)))
                    for name, code, env in sides
                ]
            started = time.monotonic()
            run_dirs = run_interleaved(config, [Side(*side) for side in sides], duet)
            elapsed_s = round(time.monotonic() - started, 1)
    current_commit = _git(config.repo, "rev-parse", "HEAD")
    run_ids = {
        "base": f"ab-base-{base_commit[:10]}",
        "current": f"ab-current-{current_commit[:10]}",
    }
    merged = {}
    for side, partner in (("base", "current"), ("current", "base")):
        out_dir = config.out / side
        if out_dir.exists():
            shutil.rmtree(out_dir)
        # interleaved worker by worker: compare may read the machine's drift from the
        # blocks; side by side (duet): compare judges the paired windows of each block
        mark = {
            "mode": mode,
            "interleaved": mode == "interleaved",
            "cores": [list(half) for half in duet.halves] if duet is not None else None,
            "pinned": duet.pinned if duet is not None else None,
            "partner": run_ids[partner],
            "elapsed_s": elapsed_s,  # both sides' start-up and every block
            "run_args": " ".join(config.run_args),
            "loops": ",".join(config.loops or default_loops()),
        }
        merged[side] = merge_runs([run_dirs[side]], out_dir, run_ids[side], {AB_MARK: mark})
    # the base side must have run the worktree's code, not the installed current code
    reported = load_run(merged["base"]).metadata.get("soft", {}).get("git_commit")
    if reported and reported != base_commit:
        raise ABError(
            f"the base side reports commit {reported[:10]}, not {base_commit[:10]}: "
            "it did not run the worktree's code"
        )
    return gate.command(
        merged["base"],
        merged["current"],
        threshold=config.threshold,
        alpha=config.alpha,
        markdown=config.markdown,
        allow_missing=config.allow_missing,
        fail_if_blind=config.fail_if_blind,
    )
