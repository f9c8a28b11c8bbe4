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
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import shards
from benchmarks.config import START_METHOD, START_METHODS, Cell, Job, RunConfig
from benchmarks.preload import PRELOAD_ENV
from benchmarks.stats import summarize
from reports import rundir

#: What the fork server runs once (imports TF and the loops, never starts TF's
#: runtime; makes the run's shared data): see benchmarks/server.py.
FORKSERVER_PRELOAD = ["benchmarks.server"]


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
    the finished process).

    The pipe is duplex so the child can see this end close (``worker.attach_to_parent``:
    a child whose parent is gone exits at once). The child is started inside the
    ``try``, so a Ctrl-C at any moment still stops it; a child still running after
    ``timeout_s`` (or 30 s after answering) is killed.

    The child's stderr goes to ``log_path`` (a temporary file when None) and is
    copied to this process's stderr only if ``failed(answer)``.
    """
    with contextlib.ExitStack() as stack:
        if log_path is None:
            log_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "child.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_stderr_to_file,
            args=(str(log_path), target, *args, child_end),
            daemon=True,
        )
        answer = None
        try:
            process.start()
            child_end.close()
            if parent_end.poll(timeout_s):
                with contextlib.suppress(EOFError):
                    answer = parent_end.recv()
            process.join(timeout=30)
        finally:
            if process.is_alive():
                process.kill()
                process.join()
            parent_end.close()
        if failed(answer):
            show_log(log_path)
    return answer, process


def _stderr_to_file(log_path: str, target: Callable[..., None], *args: Any) -> None:
    """In the child: point file descriptor 2 (native code and ``sys.stderr``) at
    ``log_path``, then run ``target(*args)``."""
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


def run_in_worker(job: Job, timeout_s: float, log_path: Path | None = None) -> dict[str, Any]:
    """Run ``job`` in a fresh worker process; a crash or timeout becomes a failed row.
    The worker's stderr goes to ``log_path`` (shown if the job fails)."""
    from benchmarks.worker import worker_main

    context = worker_context(job.config.start_method)
    # the parent's environment now (a fork server's own dates from its start)
    environ = dict(os.environ)
    started = time.time()
    result, process = call_in_child(
        context, worker_main, (job, environ), timeout_s, log_path, _worker_failed
    )
    if result is not None:
        return result
    if process.exitcode is None or process.exitcode == -9 and time.time() - started >= timeout_s:
        reason = f"timed out after {timeout_s:.0f} s"
    elif process.exitcode is not None and process.exitcode < 0:
        signal_number = -process.exitcode
        reason = f"worker killed by signal {signal_number}" + (
            " (out of memory?)" if signal_number == 9 else ""
        )
    else:
        reason = f"worker exited with status {process.exitcode} without a result"
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
    started = time.perf_counter()
    try:
        for index, job in enumerate(jobs):
            if on_job:
                elapsed = time.perf_counter() - started
                eta = elapsed / index * (len(jobs) - index) if index else math.nan
                on_job(job, index, len(jobs), eta)
            if job.cell.device not in config.devices_present:
                result = skipped_result(job, f"no {job.cell.device.upper()}")
            else:
                log_path = run_dir / "logs" / f"{job.cell.label}-p{job.process}.log"
                result = run_in_worker(job, config.timeout_s, log_path)
            writer.add(result)
            if on_result:
                on_result(job, result)
    except KeyboardInterrupt:
        writer.flush(interrupted=True)
        raise
    writer.flush(finished=True)
    return writer
