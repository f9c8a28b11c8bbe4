"""Run the matrix: cells x repeats, each repeat in a fresh worker process.

Worker processes start in one of two ways (``--start-method``, recorded in the
run's config):

- ``forkserver`` (default): each worker is forked from a server process that has
  *imported* TensorFlow, Keras and the loops but has never started TensorFlow's
  runtime (no eager context, no thread pools, no device, no graph, no trace). A
  worker is a new process with cold TensorFlow state, like a spawned one, but it
  skips TensorFlow's import, most of a quick worker's life (docs/decisions/0003). The worker
  checks that its TensorFlow runtime is fresh (``tf_runtime_fresh`` in its row)
  and takes the parent's environment as it is when the job starts.
- ``spawn``: a new interpreter per worker (slower start, nothing shared at all).

The schedule interleaves loop styles and cells: repeat 0 of every cell, then
repeat 1 of every cell, and so on, so that a shared machine's drift spreads
over all of them instead of landing on one loop style. Jobs run one at a time
(two workers would compete for the same two cores).

After every job the run directory is rewritten atomically (samples.jsonl,
summary.csv), so Ctrl-C or a crash of the parent keeps every finished job. A
worker that raises, is killed (e.g. out of memory) or times out yields a
``failed`` row with its reason, and the run goes on.

A child's stderr (file descriptor 2: TensorFlow's native logging, Python's
warnings) goes to a file, ``<run>/logs/<cell>-p<process>.log`` for a worker,
and reaches the terminal only when that child fails. Every process that starts
TensorFlow's runtime on a machine without a GPU logs "failed call to cuInit" at
error level, which ``TF_CPP_MIN_LOG_LEVEL`` cannot hide without hiding real
errors too: one such line per worker and one for the metadata probe.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

from tf_loopbench.benchmarks import shards
from tf_loopbench.benchmarks.config import START_METHOD, START_METHODS, Cell, Job, RunConfig
from tf_loopbench.benchmarks.preload import PRELOAD_ENV
from tf_loopbench.benchmarks.stats import summarize
from tf_loopbench.reports import rundir

#: What the fork server runs once (imports TF and the loops, never starts TF's
#: runtime; makes the run's shared data): see benchmarks/server.py.
FORKSERVER_PRELOAD = ["tf_loopbench.benchmarks.server"]


def worker_context(start_method: str = START_METHOD) -> Any:
    """The multiprocessing context workers (and the metadata probe) start from."""
    if start_method not in START_METHODS:
        raise ValueError(f"unknown start method {start_method!r}; choose from {START_METHODS}")
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def schedule(cells: list[Cell], config: RunConfig, profile_root: Path | None) -> list[Job]:
    """Interleaved jobs: for each repeat, every cell once (loop styles alternate); with
    ``config.shard``, only that shard's share of them (benchmarks/shards.py)."""
    mine = None
    if config.shard is not None:
        description = shard_description(cells, config)
        mine = shards.shard_jobs(description)
    jobs: list[Job] = []
    for process in range(config.processes):
        for cell in cells:
            if mine is not None and (cell.key, process) not in mine:
                continue
            profile_dir = (
                str(profile_root / cell.label)
                if profile_root is not None and process == 0
                else None
            )
            jobs.append(Job(cell, process, len(jobs), config, profile_dir))
    return jobs


def shard_description(cells: list[Cell], config: RunConfig) -> dict[str, Any]:
    """metadata.json's ``shard`` for this run's shard of ``cells``; ShardError when the
    matrix has fewer jobs than shards."""
    index, count = config.shard
    return shards.describe([c.keys for c in cells], config.processes, shards.Shard(index, count))


def start_worker_server(
    start_method: str = START_METHOD, preload_request: str | None = None
) -> None:
    """Start the fork server now (it imports TensorFlow in the background), so its
    import overlaps the caller's own start-up; a no-op for ``spawn``.

    ``preload_request`` (``benchmarks.preload.preload_request``) names the training
    data the server makes once for all its workers."""
    if start_method != "forkserver":
        return
    worker_context(start_method)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the server's import logs
    if preload_request is not None:
        os.environ[PRELOAD_ENV] = preload_request
    from multiprocessing import forkserver

    forkserver.ensure_running()


#: lines of a failed child's stderr shown on the terminal (all of it stays in its log)
SHOWN_LOG_LINES = 40


def _answer_failed(answer: Any) -> bool:
    """No answer, or an answer reporting an error (the probe's ``{"error": ...}``)."""
    return answer is None or (isinstance(answer, dict) and "error" in answer)


def call_in_child(
    context: Any,
    target: Callable[..., None],
    args: tuple,
    timeout_s: float,
    log_path: Path | None = None,
    failed: Callable[[Any], bool] = _answer_failed,
) -> tuple[Any, Any]:
    """Run ``target(*args, connection)`` in a child process; (its one message or None,
    the finished process). ``call_in_children`` with one child."""
    answers, processes, _ = call_in_children(context, target, [args], timeout_s, [log_path], failed)
    return answers[0], processes[0]


def call_in_children(
    context: Any,
    target: Callable[..., None],
    calls: Sequence[tuple],
    timeout_s: float,
    log_paths: Sequence[Path | None],
    failed: Callable[[Any], bool] = _answer_failed,
) -> tuple[list[Any], list[Any], set[int]]:
    """Run ``target(*args, connection)`` in one child process per ``args`` in ``calls``,
    all at once (the workers of a multi-worker cell); (their messages, None where none
    came; the finished processes; the indices of those this function stopped). The one
    place that starts processes.

    The first child decides: this waits until it answers, or until another child
    answers (only a failing one does) or any child ends without answering, or for
    ``timeout_s``; then every child still running is killed (the first, if it answered,
    after up to 30 s to exit), so no process, and no port it holds, outlives the call.
    Each pipe is duplex so its child can see this end close (``worker.attach_to_parent``:
    a child whose parent is gone exits at once). The children are started inside the
    ``try``, so a Ctrl-C at any moment still stops them.

    A child's stderr goes to its ``log_paths`` entry (a temporary file when None) and is
    copied to this process's stderr if it failed (the first: ``failed(answer)``;
    another: it answered or ended before it was stopped).
    """
    with contextlib.ExitStack() as stack:
        # children end with os._exit (no atexit), so the files autograph writes for every
        # traced function would stay in /tmp: they get a temporary directory, removed here
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="loopbench-child-"))
        logs = []
        for log_path in log_paths:
            if log_path is None:
                log_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "child.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            logs.append(log_path)
        answers: list[Any] = [None] * len(calls)
        processes: list[Any] = []
        ends: dict[int, Any] = {}  # pipes of children that have not answered yet
        stopped: set[int] = set()
        try:
            for index, (args, log_path) in enumerate(zip(calls, logs, strict=True)):
                parent_end, child_end = context.Pipe(duplex=True)
                process = context.Process(
                    target=_stderr_to_file,
                    args=(str(log_path), scratch, target, *args, child_end),
                    daemon=True,
                )
                processes.append(process)
                ends[index] = parent_end
                process.start()
                child_end.close()
            _wait_for_first(answers, processes, ends, time.monotonic() + timeout_s)
            if answers[0] is not None:
                processes[0].join(timeout=30)
        finally:
            for index, process in enumerate(processes):
                if process.pid is None:  # Ctrl-C while it was being started: never ran here
                    continue
                if process.is_alive():
                    stopped.add(index)
                    process.kill()
                process.join()
            for end in ends.values():
                end.close()
        for index, log_path in enumerate(logs):
            if failed(answers[0]) if index == 0 else index not in stopped:
                show_log(log_path)
    return answers, processes, stopped


def _wait_for_first(
    answers: list[Any], processes: list[Any], ends: dict[int, Any], deadline: float
) -> None:
    """Fill ``answers`` until the first child answers, another child answers or any
    child ends without answering, or ``deadline`` (time.monotonic()) passes."""
    while answers[0] is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        wait_any([*ends.values(), *(p.sentinel for p in processes)], remaining)
        ended = False
        for index, end in list(ends.items()):
            if end.poll():  # a message, or the child's end closed
                with contextlib.suppress(EOFError, OSError):
                    answers[index] = end.recv()
                del ends[index]
                ended = ended or index > 0 or answers[index] is None
        if ended or any(not processes[i].is_alive() for i in ends):
            return


def _stderr_to_file(log_path: str, scratch: str, target: Callable[..., None], *args: Any) -> None:
    """In the child: point file descriptor 2 (native code and ``sys.stderr``) at
    ``log_path`` and Python's temporary files at ``scratch``, then run ``target(*args)``."""
    tempfile.tempdir = scratch
    sys.stderr.flush()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    target(*args)


def show_log(log_path: Path, lines: int = SHOWN_LOG_LINES) -> None:
    """The last ``lines`` of a failed child's stderr, on this process's stderr."""
    try:
        text = log_path.read_text(errors="replace").rstrip()
    except OSError:
        return
    if text:
        tail = text.splitlines()[-lines:]
        sys.stderr.write(f"stderr of the failed process ({log_path}):\n")
        sys.stderr.write("\n".join(tail) + "\n")
        sys.stderr.flush()


def _worker_failed(result: Any) -> bool:
    return result is None or result["process"].get("status") == "failed"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (the kernel's picks, released
    for the workers to bind; a port taken in between fails that cell, with its reason)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def cluster_jobs(job: Job) -> list[Job]:
    """The worker processes of one sample: ``job`` itself, or under multiworker:W, W
    copies with their task index and the cluster's loopback addresses (task 0 first)."""
    if job.cell.workers == 1:
        return [job]
    cluster = tuple(f"127.0.0.1:{port}" for port in free_ports(job.cell.workers))
    return [replace(job, task=task, cluster=cluster) for task in range(job.cell.workers)]


def _ended(process: Any, started: float, timeout_s: float, what: str = "worker") -> str:
    """Why a worker process ended (or did not) without a result."""
    if process.exitcode is None or process.exitcode == -9 and time.time() - started >= timeout_s:
        return f"timed out after {timeout_s:.0f} s"
    if process.exitcode < 0:
        signal_number = -process.exitcode
        return f"{what} killed by signal {signal_number}" + (
            " (out of memory?)" if signal_number == 9 else ""
        )
    return f"{what} exited with status {process.exitcode} without a result"


def run_in_worker(job: Job, timeout_s: float, log_path: Path | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh worker process (under multiworker:W, W of them: the chief's
    answer is the result, else the reason of the worker that failed or died first); a
    crash or timeout becomes a failed row. Worker i's stderr goes to ``log_path`` (``-w<i>`` added for i > 0),
    shown if it fails."""
    from tf_loopbench.benchmarks.worker import worker_main

    context = worker_context(job.config.start_method)
    # the parent's environment now (a fork server's own dates from its start)
    environ = dict(os.environ)
    jobs = cluster_jobs(job)
    log_paths = [
        log_path if log_path is None or i == 0 else log_path.with_stem(f"{log_path.stem}-w{i}")
        for i in range(len(jobs))
    ]
    started = time.time()
    answers, processes, stopped = call_in_children(
        context, worker_main, [(j, environ) for j in jobs], timeout_s, log_paths, _worker_failed
    )
    if answers[0] is not None:  # the chief could not finish its steps without the others
        return answers[0]
    others = [i for i in range(1, len(jobs)) if i not in stopped]
    if others:  # another worker failed or died first: the cell fails with its reason
        i = others[0]
        failed_row = answers[i]["process"] if answers[i] is not None else None
        reason = f"worker {i} of {len(jobs)}: " + (
            failed_row.get("error") or "failed"
            if failed_row is not None
            else _ended(processes[i], started, timeout_s)
        )
    else:
        reason = _ended(processes[0], started, timeout_s)
    row = {
        "kind": "process",
        **job.cell.keys,
        "process": job.process,
        "order": job.order,
        "status": "failed",
        "error": reason,
        "started_at": started,
        "wall_s": time.time() - started,
    }
    return {"process": row, "windows": []}


def unsupported(cell: Cell) -> str | None:
    """Why ``cell``'s loop style cannot run its keys, when it says so without TensorFlow
    (``LoopStyle.unsupported``: eager with several steps a call, a strategy a style
    cannot run), else None."""
    import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
    from tf_loopbench.loops.base import LOOPS

    if cell.loop not in LOOPS:  # a plugin's loop style: its worker decides
        return None
    return LOOPS.get(cell.loop).unsupported(cell.steps_per_call, cell.strategy)


def skipped_result(job: Job, reason: str) -> dict[str, Any]:
    row = {
        "kind": "process",
        **job.cell.keys,
        "process": job.process,
        "order": job.order,
        "status": "skipped",
        "error": reason,
    }
    return {"process": row, "windows": []}


@dataclass
class RunWriter:
    """Keeps every row and rewrites the run directory's files atomically."""

    run_dir: Path
    metadata: dict[str, Any]
    cells: list[Cell]
    rows: list[dict[str, Any]] = field(default_factory=list)

    #: rewrite summary.csv at most this often while a run goes on (every cell's
    #: intervals are recomputed for it); samples.jsonl, the raw record, after every job
    SUMMARY_EVERY_S = 10.0
    _summary_at: float = -math.inf

    def add(self, result: dict[str, Any]) -> None:
        self.rows.append(result["process"])
        self.rows.extend(result["windows"])
        self.flush()

    def summary(self):
        return summarize(
            self.rows, [c.keys for c in self.cells], rundir.reference_loop(self.metadata)
        )

    def flush(self, finished: bool = False, interrupted: bool = False) -> None:
        """Rewrite the files; summary.csv only at the end, on Ctrl-C, or every
        SUMMARY_EVERY_S (``samples.jsonl`` holds every finished job at once, and any
        reader can rebuild the summary from it)."""
        rundir.write_samples(self.run_dir, self.rows)
        if finished or interrupted or time.monotonic() - self._summary_at >= self.SUMMARY_EVERY_S:
            rundir.write_summary(self.run_dir, self.summary())
            self._summary_at = time.monotonic()
        meta = dict(self.metadata)
        meta["soft"] = {**meta["soft"], "ended_at": now_iso() if finished or interrupted else None}
        meta["complete"] = finished
        meta["interrupted"] = interrupted
        rundir.write_metadata(self.run_dir, meta)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_dir(out: str, devices: Iterable[str], shard: tuple[int, int] | None = None) -> Path:
    """<out>/<UTC timestamp>-<devices>[-shard<I>of<N>], created now; unique even within
    one second and among machines writing to one shared directory."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    suffix = f"-{shards.Shard(*shard).suffix}" if shard is not None else ""
    base = Path(out) / f"{stamp}-{'+'.join(devices)}{suffix}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def time_left(remaining: Iterable[Cell], durations: dict[Cell, list[float]]) -> float:
    """Seconds the jobs of the ``remaining`` cells should take: each its cell's mean
    finished process (a cell's processes do the same work), else the mean job so far;
    nan before any job ended. A run's cells differ by orders of magnitude, so one mean
    for every job misleads once the slow models come up.

    >>> from tf_loopbench.benchmarks.config import Cell
    >>> fast, slow = Cell("mlp", "fit", "cpu", 16, 0), Cell("gan", "fit", "cpu", 16, 0)
    >>> time_left([fast, slow], {fast: [1.0], slow: [8.0, 10.0]})
    10.0
    >>> time_left([fast, slow], {fast: [1.0, 3.0]}), time_left([slow], {})
    (4.0, nan)
    """
    done = [seconds for spent in durations.values() for seconds in spent]
    if not done:
        return math.nan
    mean = sum(done) / len(done)
    means = {cell: sum(spent) / len(spent) for cell, spent in durations.items() if spent}
    return float(sum(means.get(cell, mean) for cell in remaining))


def skip_reason(cell: Cell, config: RunConfig) -> str | None:
    """Why ``cell``'s jobs are skipped without starting a worker (no such device, or a
    combination the loops decline); None if they run."""
    if cell.device not in config.devices_present:
        return f"no {cell.device.upper()}"
    return unsupported(cell)  # known without starting its processes


def execute(
    config: RunConfig,
    cells: list[Cell],
    run_dir: Path,
    metadata: dict[str, Any],
    on_job: Callable[[Job, int, int, float], None] | None = None,
    on_result: Callable[[Job, dict[str, Any]], None] | None = None,
) -> RunWriter:
    """Run every job; returns the writer holding all rows. Re-raises KeyboardInterrupt
    after writing what finished."""
    profile_root = run_dir / "profile" if config.profile else None
    jobs = schedule(cells, config, profile_root)
    if config.shard is not None:  # the shard, the full matrix, and this shard's cells
        metadata = {**metadata, shards.SHARD_KEY: shard_description(cells, config)}
        cells = [cell for cell in cells if any(job.cell == cell for job in jobs)]
    writer = RunWriter(run_dir, metadata, cells)
    writer.flush()
    durations: dict[Cell, list[float]] = {}
    try:
        for index, job in enumerate(jobs):
            if on_job:  # skipped jobs take no time
                ahead = (j.cell for j in jobs[index:] if skip_reason(j.cell, config) is None)
                on_job(job, index, len(jobs), time_left(ahead, durations))
            reason = skip_reason(job.cell, config)
            if reason is not None:
                result = skipped_result(job, reason)
            else:
                log_path = run_dir / "logs" / f"{job.cell.label}-p{job.process}.log"
                started = time.perf_counter()
                result = run_in_worker(job, config.timeout_s, log_path)
                durations.setdefault(job.cell, []).append(time.perf_counter() - started)
            writer.add(result)
            if on_result:
                on_result(job, result)
    except KeyboardInterrupt:
        writer.flush(interrupted=True)
        raise
    writer.flush(finished=True)
    return writer
