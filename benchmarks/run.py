"""One ``loopbench run`` as a library call: ``run(request)`` -> the run directory.

The command line (benchmarks/cli.py) and the Python API (``tf_loopbench.run``) both
build a RunRequest (benchmarks/options.py) and call ``run``. It starts the fork
server, inspects users' models, probes the machine (devices, matmul peak), resolves
the RunConfig and its cells (benchmarks/matrix.py), times every job in worker
processes (benchmarks/runner.py), writes the run directory, prints the table
(benchmarks/progress.py) and renders the report.

Example::

    from tf_loopbench.benchmarks.options import make_request
    from tf_loopbench.benchmarks.run import run

    run_dir = run(make_request(workload="linear", loop=["fit", "xla"], quick=True))
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tf_loopbench.benchmarks.config import RunRequest, UsageError
from tf_loopbench.benchmarks.matrix import count_jobs, make_cells, make_config
from tf_loopbench.benchmarks.preload import preload_request
from tf_loopbench.benchmarks.runner import (
    call_in_child,
    execute,
    new_run_dir,
    now_iso,
    start_worker_server,
    worker_context,
)
from tf_loopbench.loops.knobs import COMPUTE_DTYPES
from tf_loopbench.loops.model_spec import ModelSpec, ModelSpecError, parse_source


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the finished cells are kept in ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def run(request: RunRequest) -> Path:
    """Time ``request``'s matrix; returns its run directory (metadata.json,
    samples.jsonl, summary.csv and, unless ``request.report`` is false, report.md and
    report.html). Prints the per-cell table on stdout and progress on stderr.

    Raises UsageError (one line) for bad input before any worker starts, and
    Interrupted (a KeyboardInterrupt) on Ctrl-C after writing what finished.

    Example::

        run_dir = run(make_request(model="examples/vae.py:make", loop="fit,xla", quick=True))
    """
    # the fork server imports TensorFlow (and makes the shared data) on the other
    # core while this process imports TensorFlow
    sources = model_sources(request.model)  # a missing file: one line before anything starts
    start_worker_server(
        request.start_method,
        preload_request(
            list(request.workload) or (None if not sources else []),
            request.seed,
            request.data_size,
            request.data,
        ),
    )
    import tf_loopbench.benchmarks.tf_import  # noqa: F401  (before the registries, which import TF)
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.benchmarks import metadata as meta
    from tf_loopbench.benchmarks.progress import Progress, print_summary
    from tf_loopbench.benchmarks.worker import configure_threads
    from tf_loopbench.loops.base import LOOPS
    from tf_loopbench.loops.devices import DeviceError, resolve_devices
    from tf_loopbench.reports import rundir

    models = inspect(request, sources)
    config = make_config(request, models=models)  # validates names before the slow probe
    cells = make_cells(config)
    count_jobs(cells, config)  # too many shards: say so before the slow probe
    check_writable(request.out)
    threads = configure_threads(config.intra_op_threads, config.inter_op_threads)
    turns = None
    if request.take_turns is not None:
        from tf_loopbench.benchmarks.turns import TurnTaker

        try:
            turns = TurnTaker(request.take_turns)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        turns.wait()  # the start-up probe times a matmul: never at the same time as the other side
    # the matmul peak of each device, in float32 and in the compute dtype of each precision
    dtypes = sorted({COMPUTE_DTYPES[precision] for precision in config.precisions})
    facts = run_probe(["cpu", "gpu"], threads, config.start_method, dtypes)
    try:
        devices = resolve_devices(request.device, facts["devices_present"])
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    config = make_config(request, devices, facts["devices_present"], models)
    cells = make_cells(config)
    jobs = count_jobs(cells, config)
    peaks = {k: v for k, v in facts.items() if k.startswith("peak_matmul_")}
    hard, soft = meta.host_metadata(threads)
    hard["gpus"] = [g["name"] for g in facts["gpus"]]
    soft.update({k: v for k, v in facts.items() if k != "gpus" and k not in peaks})
    soft.update(
        gpus=facts["gpus"],
        **{
            k: {d: v for d, v in by_device.items() if d in devices}
            for k, by_device in peaks.items()
        },
        command=" ".join(config.command),
        started_at=now_iso(),
    )
    try:
        run_dir = new_run_dir(config.out, devices, config.shard)
    except OSError as exc:
        raise UsageError(
            f"cannot create a run directory in {config.out}: {exc.strerror or exc}"
        ) from None
    metadata = {
        "run_id": run_dir.name,
        "tool_version": version(),
        "hard": hard,
        "soft": soft,
        "config": {**config.as_dict(), "cells": [c.keys for c in cells]},
        "ladder": LOOPS.ladder(),  # the reference and each rung's neighbour, for reports
    }
    progress = Progress(total=jobs)
    shard = f" (shard {config.shard[0]}/{config.shard[1]}: {jobs} jobs)" if config.shard else ""
    print(
        f"loopbench: {len(cells)} cells x {config.processes} processes{shard} -> {run_dir}",
        file=sys.stderr,
    )
    on_job, on_result = progress.on_job, progress.on_result
    if turns is not None:
        turns.ready(jobs)

        def on_job(job, index, total, eta, turns=turns):
            turns.wait()
            progress.on_job(job, index, total, eta)

        def on_result(job, result, turns=turns):
            progress.on_result(job, result)
            turns.done(job.cell.label, job.process, result["process"].get("status"))

    try:
        with progress:
            writer = execute(config, cells, run_dir, metadata, on_job, on_result)
    except KeyboardInterrupt:
        print(f"\nloopbench: interrupted; finished cells kept in {run_dir}", file=sys.stderr)
        raise Interrupted(run_dir) from None
    except OSError as exc:
        raise UsageError(f"cannot write results to {run_dir}: {exc.strerror or exc}") from None
    print_summary(writer.summary(), rundir.reference_loop(metadata), wide=request.wide)
    if request.report:
        render_report(run_dir, request.epochs)
    print(f"results: {run_dir}")
    return run_dir


def model_sources(texts: Sequence[str]) -> list[tuple[str, str]]:
    """(source with an absolute path, as given) for each --model; UsageError for a
    missing file or a malformed source."""
    try:
        return [(parse_source(text).text, text) for text in texts]
    except ModelSpecError as exc:
        raise UsageError(str(exc)) from None


def inspect(request: RunRequest, sources: list[tuple[str, str]]) -> tuple[ModelSpec, ...]:
    """--model sources and plugin models named by --workload, inspected in child
    processes and registered as workloads (benchmarks/user_models.py)."""
    from tf_loopbench.benchmarks.user_models import ModelRequest, inspect_models, plugin_requests
    from tf_loopbench.benchmarks.worker import configure_threads
    from tf_loopbench.loops.base import WORKLOADS

    unknown = [name for name in request.workload if name not in WORKLOADS]
    requests = [ModelRequest(source, label=f"--model {text}") for source, text in sources]
    if unknown:  # installed plugins (loops/plugins.py)
        requests += plugin_requests(unknown)
    if not requests:
        return ()
    try:
        return tuple(
            inspect_models(
                requests,
                request.seed,
                request.data_size,
                request.batch_size[0] if request.batch_size else None,
                configure_threads(request.threads or 0, 0),
                request.start_method,
            )
        )
    except ModelSpecError as exc:
        raise UsageError(str(exc)) from None


def run_probe(
    devices_wanted: list[str] | None,
    threads: dict[str, int],
    start_method: str = "forkserver",
    dtypes: Sequence[str] = ("float32",),
) -> dict[str, Any]:
    """The machine as a child process sees it (devices present, GPUs, matmul peak of
    ``devices_wanted`` in float32 and ``dtypes``); UsageError when TensorFlow cannot start."""
    from tf_loopbench.benchmarks.metadata import probe

    arguments = (devices_wanted, threads, tuple(dtypes))
    answer, _ = call_in_child(worker_context(start_method), probe, arguments, 300)
    if answer is None:
        answer = {"error": "the probe process died or timed out"}
    if "error" in answer:
        raise UsageError(f"cannot start TensorFlow: {answer['error']}")
    return answer["ok"]


def check_writable(out: str) -> None:
    """UsageError unless ``out`` can be created and written to."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_file = path / f".loopbench-write-test-{os.getpid()}"
        probe_file.write_bytes(b"x" * 4096)
        probe_file.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None


def render_report(run_dir: Path, epochs: int) -> None:
    """report.md, report.html and plots/ (skipped when the report's extras are missing)."""
    try:
        from tf_loopbench.reports.report import command as report_command
    except ImportError:
        return
    report_command([str(run_dir)], epochs=epochs)


def version() -> str:
    """The installed tf-loopbench's version ("unknown" in a bare checkout)."""
    try:
        from importlib.metadata import version as installed

        return installed("tf-loopbench")
    except Exception:
        return "unknown"
