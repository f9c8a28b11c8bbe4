"""``loopbench``: the command line (the contract in shared/DESIGN.md).

    loopbench list
    loopbench run     [--workload W]... [--loop L]... [--device cpu|gpu|all]
                      [--batch-size N[,N...]] [--width N[,N...]] [--quick]
                      [--steps-per-call K[,K...]] [--precision P[,P...]] [--fit-jit J[,J...]]
                      [--strategy none,mirrored:N,multiworker:W]
                      [--processes N] [--windows N] [--window-ms MS | --steps N]
                      [--profile] [--out DIR]
    loopbench run     --model PATH.py:FUNCTION | module:FUNCTION   (a user's model)
    loopbench report  RUN_DIR [RUN_DIR...]
    loopbench compare BASELINE_RUN CURRENT_RUN [--threshold 0.05] [--alpha 0.01] [--markdown FILE]
    loopbench ab      BASE_REF [--processes N] [--time-budget-min M] [--workload W]... [--loop L]...
                      [--out DIR] [--markdown FILE] [--inject-slowdown LOOP=FRACTION]
    loopbench baseline save RUN_DIR --name NAME [--force] | list | compare NAME CURRENT_RUN
    loopbench run ... --shard I/N                  (shard I of N of the jobs)
    loopbench merge   RUN... --out DIR [--allow-different-machines]
    loopbench history [--store DIR] [--name PATTERN] [--out DIR] [--repo DIR]

Exit status: 0 success; 1 a confirmed regression (compare, ab); 2 bad input,
with one line on stderr and no traceback; 3 (compare, ab with --fail-if-blind) no
confirmed regression, but a cell could not have seen a slowdown of the threshold's
size. ``report`` and ``compare`` never
import TensorFlow.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tf_loopbench.benchmarks.config import (
    AB_OUT_DIR,
    AB_PROCESSES,
    AB_TIME_BUDGET_MIN,
    DEFAULT,
    DEFAULT_FIT_JIT,
    DEFAULT_PRECISION,
    DEFAULT_STEPS_PER_CALL,
    DEFAULT_STRATEGY,
    FIT_JIT_CHOICES,
    INJECT_SLOWDOWN_ENV,
    OUT_DIR,
    PRECISIONS,
    QUICK,
    SEED,
    START_METHOD,
    START_METHODS,
    TIMEOUT_S,
    Cell,
    RunConfig,
)
from tf_loopbench.benchmarks.shards import shard_argument
from tf_loopbench.reports.gate.judge import (  # the gate owns its defaults
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
)
from tf_loopbench.reports.history import DEFAULT_MIN_CHANGE as HISTORY_MIN_CHANGE
from tf_loopbench.reports.history import DEFAULT_OUT as HISTORY_OUT
from tf_loopbench.reports.rundir import DEFAULT_EPOCHS

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_HELP = (
    "exit status: 0 success; 1 a confirmed regression (compare, ab); 2 bad input or runs "
    "that cannot be compared; 3 (compare, ab with --fail-if-blind) no confirmed regression, "
    "but a cell could not have seen a slowdown of the threshold's size"
)


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"loopbench: error: {message}\n")


def positive_ints(text: str) -> tuple[int, ...]:
    """'32,128' -> (32, 128); every value a positive integer."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a positive integer") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
        values.append(value)
    return tuple(values)


def choices_of(option: str, choices: Sequence[str]):
    """An argparse type: 'a,b' -> ('a', 'b'), each one of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        for value in values or (text,):
            if value not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {option} {value!r}; choose from {', '.join(choices)}"
                )
        return values

    return parse


def strategies(text: str) -> tuple[str, ...]:
    """An argparse type: 'none,mirrored:2' -> ('none', 'mirrored:2'), each a strategy
    loops/distribute.py parses (bad input: its one-line reason)."""
    from tf_loopbench.loops.distribute import StrategyError, parse

    parts = [part.strip() for part in text.split(",") if part.strip()] or [text]
    try:
        return tuple(dict.fromkeys(parse(part).key for part in parts))
    except StrategyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    (value,) = positive_ints(text) if "," not in text else (None,)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _gate_options(parser: argparse.ArgumentParser, markdown: str = "") -> None:
    """The gate's settings, shared by compare, baseline compare and ab."""
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="smallest slowdown that counts (default %(default)s = 5%%)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help="family-wise error rate over the cells, Holm (default %(default)s)",
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help=f"also write a Markdown table here{markdown}"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="a cell ok in the baseline may be missing or skipped in the current run "
        "(default: that is a regression, exit 1; a newly failing cell always is)",
    )
    parser.add_argument(
        "--fail-if-blind",
        action="store_true",
        help="exit 3 when there is no confirmed regression but a cell could not have seen "
        "a slowdown of the threshold's size (its detectable slowdown is larger)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loopbench",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_HELP,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("list", help="workloads, loop styles and devices present")

    run = commands.add_parser("run", help="time loop styles on workloads; write a run directory")
    run.add_argument(
        "--workload", action="append", help="repeatable or comma-separated; default all"
    )
    run.add_argument("--loop", action="append", help="repeatable or comma-separated; default all")
    run.add_argument(
        "--model",
        action="append",
        metavar="PATH.py:FUNCTION",
        help="a user's model through every loop style (or module:FUNCTION; repeatable); "
        "FUNCTION returns a dict, see docs/user-models.md. This runs the file's code",
    )
    run.add_argument("--device", help="cpu, gpu or all (default: every device present)")
    run.add_argument("--batch-size", type=positive_ints, help="N[,N...]; default per workload")
    run.add_argument("--width", type=positive_ints, help="hidden width(s) of mlp and gan, N[,N...]")
    run.add_argument(
        "--steps-per-call",
        type=positive_ints,
        metavar="K[,K...]",
        help="training steps per call of the loop's function: fit's steps_per_execution, a "
        "loop over K batches in one tf.function for the graph styles; eager runs only 1 "
        "(default 1)",
    )
    run.add_argument(
        "--precision",
        type=choices_of("precision", PRECISIONS),
        metavar="P[,P...]",
        help=f"Keras dtype policies, the same for every loop style: {', '.join(PRECISIONS)} "
        "(default float32; mixed_float16 with loss scaling)",
    )
    run.add_argument(
        "--fit-jit",
        type=choices_of("fit-jit", FIT_JIT_CHOICES),
        metavar="J[,J...]",
        help="fit's jit_compile: auto (Keras's choice, recorded), off, on; other loop "
        "styles ignore it (default auto)",
    )
    run.add_argument(
        "--strategy",
        type=strategies,
        metavar="S[,S...]",
        help="tf.distribute strategies: none, mirrored:N (N devices: GPUs, or logical CPUs), "
        "multiworker:W (W worker processes over loopback); --batch-size is the global batch "
        "(default none; docs/distribute.md)",
    )
    run.add_argument(
        "--steps",
        type=positive_int,
        help="timed steps per worker process, the same for every loop style "
        "(default: windows sized by duration, see --window-ms)",
    )
    run.add_argument("--windows", type=positive_int, help="timed windows per worker process")
    run.add_argument(
        "--window-ms",
        type=positive_float,
        help="target duration of a timed window; steps per window from an untimed span of "
        f"half that after the warm-up (default {DEFAULT.window_ms:g}, --quick {QUICK.window_ms:g})",
    )
    run.add_argument("--warmup-steps", type=int, help="untimed steps after the first")
    run.add_argument("--processes", type=positive_int, help="worker processes (samples) per cell")
    run.add_argument("--quick", action="store_true", help="a rougher answer, fast")
    run.add_argument("--profile", action="store_true", help="capture a profiler trace per cell")
    run.add_argument("--data-size", type=positive_int, help="training examples per workload")
    run.add_argument("--data", dest="data_path", help="local MNIST .npz (mlp, gan)")
    run.add_argument("--seed", type=int, default=SEED)
    run.add_argument("--threads", type=positive_int, help="TF intra-op threads (default: cores)")
    run.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per worker process")
    run.add_argument(
        "--start-method",
        choices=START_METHODS,
        default=START_METHOD,
        help="how worker processes start: forked from a server that imported TensorFlow "
        "(default) or a new interpreter each",
    )
    run.add_argument("--out", default=OUT_DIR, help="parent directory of run directories")
    run.add_argument(
        "--shard",
        type=shard_argument,
        metavar="I/N",
        help="run shard I of N (1-based) of the jobs, to merge later (`loopbench merge`)",
    )
    run.add_argument("--no-report", action="store_true", help="skip report.md/report.html")
    run.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help="the report's time to train E epochs",
    )
    run.add_argument(  # the same-job A/B's interleaving (benchmarks/turns.py)
        "--take-turns", type=int, metavar="FD", help=argparse.SUPPRESS
    )

    merge = commands.add_parser(
        "merge", help="the shards of one matrix (run --shard I/N) into one run directory"
    )
    merge.add_argument("runs", nargs="+", metavar="RUN")
    merge.add_argument("--out", required=True, help="the merged run directory (must not exist)")
    merge.add_argument("--run-id", help="run_id of the merged run (default: the --out name)")
    merge.add_argument(
        "--allow-different-machines",
        action="store_true",
        help="merge shards whose hard metadata keys differ (they then compare by within-run ratios)",
    )

    history = commands.add_parser(
        "history", help="stored runs of one machine in commit order: trends and change points"
    )
    history.add_argument(
        "--store", help="baseline store (default: $LOOPBENCH_BASELINES or .loopbench/baselines)"
    )
    history.add_argument("--name", help="only baselines whose name matches this glob pattern")
    history.add_argument(
        "--out",
        default=str(HISTORY_OUT),
        help="where history.md/html and plots go (default %(default)s)",
    )
    history.add_argument(
        "--repo", default=".", help="git work tree to order commits by ancestry (default: here)"
    )
    history.add_argument(
        "--min-change",
        type=positive_float,
        default=HISTORY_MIN_CHANGE,
        help="smallest step that counts as a change point (default the gate's threshold, "
        "%(default)s)",
    )

    report = commands.add_parser("report", help="render report.md/html and plots for runs")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", help="output directory when several runs are given")
    report.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help="time to train E epochs (default %(default)s)",
    )

    compare = commands.add_parser(
        "compare", help="statistical regression gate between two runs", epilog=EXIT_HELP
    )
    compare.add_argument("baseline", metavar="BASELINE_RUN")
    compare.add_argument("current", metavar="CURRENT_RUN")
    _gate_options(compare)
    compare.add_argument("--allow-different-machines", action="store_true")

    ab = commands.add_parser(
        "ab",
        help="time a git ref and this work tree interleaved in one job, then gate",
        epilog=EXIT_HELP,
    )
    ab.add_argument(
        "base_ref", metavar="BASE_REF", help="git ref of the baseline, e.g. origin/main"
    )
    ab.add_argument(
        "--processes",
        type=positive_int,
        default=AB_PROCESSES,
        help="worker processes (samples) per cell per side (default %(default)s)",
    )
    ab.add_argument(
        "--time-budget-min",
        type=positive_float,
        default=AB_TIME_BUDGET_MIN,
        help="stop both sides after the last whole block (one process of every cell) "
        "that fits in this many minutes (default %(default)g)",
    )
    ab.add_argument("--workload", action="append", default=[], help="repeatable; default all")
    ab.add_argument(
        "--loop",
        action="append",
        default=[],
        help="repeatable; default every rung of the ladder but the bottom, op-by-op one "
        "(benchmarks/ab.py default_loops)",
    )
    ab.add_argument(
        "--out",
        default=AB_OUT_DIR,
        help="where base/, current/, logs/ and compare.md go (default %(default)s)",
    )
    _gate_options(ab, markdown=" (default OUT/compare.md)")
    ab.add_argument(
        "--inject-slowdown",
        metavar="LOOP=FRACTION",
        help=f"set {INJECT_SLOWDOWN_ENV} on the current side only (a check of the gate)",
    )
    ab.add_argument("--repo", default=".", help="the current work tree (default: here)")

    baseline = commands.add_parser(
        "baseline",
        help="stored baselines for trends on one fixed machine (reports/gate/baseline.py)",
    )
    actions = baseline.add_subparsers(dest="action", required=True, parser_class=_Parser)
    save = actions.add_parser("save", help="store a run directory as a named baseline")
    save.add_argument("run", metavar="RUN_DIR")
    save.add_argument("--name", required=True)
    save.add_argument("--force", action="store_true", help="replace a baseline of that name")
    actions.add_parser("list", help="the saved baselines")
    against = actions.add_parser(
        "compare", help="gate a run against a saved baseline", epilog=EXIT_HELP
    )
    against.add_argument("name", metavar="NAME")
    against.add_argument("current", metavar="CURRENT_RUN")
    _gate_options(against)
    for action in (save, actions.choices["list"], against):
        action.add_argument(
            "--store", help="baseline store (default: $LOOPBENCH_BASELINES or .loopbench/baselines)"
        )
    return parser


# ----------------------------------------------------------------------------- run


def _names(values: list[str] | None, registry: Any) -> tuple[str, ...]:
    if not values:
        return tuple(registry.names())
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    for name in names:
        registry.get(name)  # raises UnknownNameError listing the choices
    return tuple(dict.fromkeys(names))


def make_config(
    args: argparse.Namespace, devices: Sequence[str], present: Sequence[str] = ("cpu",)
) -> RunConfig:
    from tf_loopbench.loops.base import LOOPS, WORKLOADS

    preset = QUICK if args.quick else DEFAULT
    if args.steps and args.window_ms:
        raise UsageError(
            "give --steps (a fixed step count) or --window-ms (windows by duration), not both"
        )
    steps = args.steps
    windows = args.windows or preset.windows
    if steps:
        windows = min(windows, steps)
    window_ms = None if steps else args.window_ms or preset.window_ms
    warmup = preset.warmup_steps if args.warmup_steps is None else args.warmup_steps
    if warmup < 0:
        raise UsageError(f"--warmup-steps {warmup}: must be 0 or more")
    models = tuple(getattr(args, "models", ()))  # inspected by command_run
    workloads = _names(args.workload, WORKLOADS) if args.workload or not models else ()
    workloads += tuple(m.name for m in models if m.name not in workloads)
    return RunConfig(
        workloads=workloads,
        loops=_names(args.loop, LOOPS),
        devices=tuple(devices),
        devices_present=tuple(present),
        batch_sizes=args.batch_size or (None,),
        widths=args.width or (None,),
        steps=steps,
        window_s=window_ms / 1000 if window_ms else None,
        windows=windows,
        warmup_steps=warmup,
        processes=args.processes or preset.processes,
        seed=args.seed,
        data_size=args.data_size,
        data_path=args.data_path,
        intra_op_threads=args.threads or 0,
        quick=args.quick,
        profile=args.profile,
        timeout_s=args.timeout,
        start_method=args.start_method,
        out=args.out,
        command=tuple(sys.argv),
        models=models,
        shard=getattr(args, "shard", None),
        steps_per_call=getattr(args, "steps_per_call", None) or (DEFAULT_STEPS_PER_CALL,),
        precisions=getattr(args, "precision", None) or (DEFAULT_PRECISION,),
        fit_jit=getattr(args, "fit_jit", None) or (DEFAULT_FIT_JIT,),
        strategies=getattr(args, "strategy", None) or (DEFAULT_STRATEGY,),
    )


def make_cells(config: RunConfig) -> list[Cell]:
    """The product of the axes, validated (batch size against the data size). The
    fit-jit axis multiplies only the loop style whose compiler is that setting
    (``LoopStyle.jit_setting``); the others get one cell."""
    from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig
    from tf_loopbench.loops.data import DataError
    from tf_loopbench.loops.distribute import parse as parse_strategy
    from tf_loopbench.loops.knobs import FIT_JIT_NONE, fit_jit_key

    cells = []
    for workload_name in config.workloads:
        workload_class = WORKLOADS.get(workload_name)
        for width in config.widths:
            workload = workload_class(
                WorkloadConfig(config.seed, config.data_size, width, config.data_path)
            )
            try:
                n_examples = workload.n_examples()
            except DataError as exc:
                raise UsageError(str(exc)) from None
            width_option = width if workload.width else None  # linear has no width
            for batch_size in config.batch_sizes:
                batch = batch_size or workload_class.default_batch_size
                if batch > n_examples:
                    raise UsageError(
                        f"batch size {batch} is larger than the {workload_name} data "
                        f"({n_examples} examples); use a smaller --batch-size or a larger --data-size"
                    )
                if batch * config.call_multiple > n_examples:
                    raise UsageError(
                        f"{config.call_multiple} steps per call at batch size {batch} need "
                        f"{batch * config.call_multiple} examples; the {workload_name} data has "
                        f"{n_examples} (use a larger --data-size or fewer --steps-per-call)"
                    )
                for strategy in config.strategies:
                    replicas = parse_strategy(strategy).replicas
                    if batch % replicas:
                        raise UsageError(
                            f"batch size {batch} does not split over the {replicas} replicas "
                            f"of {strategy} (--batch-size is the global batch)"
                        )
                for device, strategy in itertools.product(config.devices, config.strategies):
                    for k in config.steps_per_call:
                        for precision in config.precisions:
                            for loop in config.loops:
                                jit_keys = (
                                    [fit_jit_key(j, device) for j in config.fit_jit]
                                    if LOOPS.get(loop).jit_setting
                                    else [FIT_JIT_NONE]
                                )
                                for jit in jit_keys:
                                    cell = Cell(
                                        workload_name,
                                        loop,
                                        device,
                                        batch,
                                        workload.width,
                                        width_option,
                                        k,
                                        precision,
                                        jit,
                                        strategy,
                                    )
                                    if cell not in cells:
                                        cells.append(cell)
    return cells


def run_probe(
    devices_wanted: list[str] | None, threads: dict[str, int], start_method: str = "forkserver"
) -> dict[str, Any]:
    from tf_loopbench.benchmarks.metadata import probe
    from tf_loopbench.benchmarks.runner import call_in_child, worker_context

    answer, _ = call_in_child(worker_context(start_method), probe, (devices_wanted, threads), 300)
    if answer is None:
        answer = {"error": "the probe process died or timed out"}
    if "error" in answer:
        raise UsageError(f"cannot start TensorFlow: {answer['error']}")
    return answer["ok"]


def _check_writable(out: str) -> None:
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_file = path / f".loopbench-write-test-{os.getpid()}"
        probe_file.write_bytes(b"x" * 4096)
        probe_file.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None


def command_run(args: argparse.Namespace) -> int:
    from tf_loopbench.benchmarks.preload import preload_request
    from tf_loopbench.benchmarks.runner import start_worker_server

    # the fork server imports TensorFlow (and makes the shared data) on the other
    # core while this process imports TensorFlow
    workloads = [w.strip() for part in args.workload or [] for w in part.split(",") if w.strip()]
    sources = _model_sources(args.model)  # a missing file: one line before anything starts
    start_worker_server(
        args.start_method,
        preload_request(
            workloads or (None if not sources else []), args.seed, args.data_size, args.data_path
        ),
    )
    import tf_loopbench.benchmarks.tf_import  # noqa: F401  (before the registries, which import TF)
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.benchmarks import metadata as meta
    from tf_loopbench.benchmarks.progress import Progress, print_summary
    from tf_loopbench.benchmarks.runner import execute, new_run_dir, now_iso
    from tf_loopbench.benchmarks.worker import configure_threads
    from tf_loopbench.loops.base import LOOPS
    from tf_loopbench.loops.devices import DEVICE_CHOICES, DeviceError, resolve_devices
    from tf_loopbench.reports import rundir

    if args.device is not None and args.device not in DEVICE_CHOICES:
        raise UsageError(
            f"unknown device {args.device!r}; choose from: {', '.join(DEVICE_CHOICES)}"
        )
    args.models = _inspect_models(args, sources, workloads)
    config = make_config(args, devices=("cpu",))  # validates names before the slow probe
    cells = make_cells(config)
    _shard_jobs(cells, config)  # too many shards: say so before the slow probe
    _check_writable(args.out)
    threads = configure_threads(config.intra_op_threads, config.inter_op_threads)
    turns = None
    if args.take_turns is not None:
        from tf_loopbench.benchmarks.turns import TurnTaker

        try:
            turns = TurnTaker(args.take_turns)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        turns.wait()  # the start-up probe times a matmul: never at the same time as the other side
    facts = run_probe(
        ["cpu", "gpu"], threads, config.start_method
    )  # matmul peak of every device present
    try:
        devices = resolve_devices(args.device, facts["devices_present"])
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    config = make_config(args, devices, facts["devices_present"])
    cells = make_cells(config)
    jobs = _shard_jobs(cells, config)
    peak = {d: f for d, f in facts["peak_matmul_flops"].items() if d in devices}
    hard, soft = meta.host_metadata(threads)
    hard["gpus"] = [g["name"] for g in facts["gpus"]]
    soft.update({k: v for k, v in facts.items() if k not in ("gpus", "peak_matmul_flops")})
    soft.update(
        gpus=facts["gpus"],
        peak_matmul_flops=peak,
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
        "tool_version": _version(),
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
        return EXIT_INTERRUPTED
    except OSError as exc:
        raise UsageError(f"cannot write results to {run_dir}: {exc.strerror or exc}") from None
    summary = writer.summary()
    print_summary(summary, rundir.reference_loop(metadata))
    if not args.no_report:
        _render_report(run_dir, args.epochs)
    print(f"results: {run_dir}")
    args.run_dir = run_dir  # for tf_loopbench.run
    return EXIT_OK


def _shard_jobs(cells: list[Cell], config: RunConfig) -> int:
    """How many jobs this run runs (its shard's share with --shard)."""
    from tf_loopbench.benchmarks.runner import schedule
    from tf_loopbench.benchmarks.shards import ShardError

    try:
        return len(schedule(cells, config, None))
    except ShardError as exc:
        raise UsageError(f"--shard: {exc}") from None


def _model_sources(texts: list[str] | None) -> list[tuple[str, str]]:
    """(source with an absolute path, as given) for each --model."""
    from tf_loopbench.loops.model_spec import ModelSpecError, parse_source

    try:
        return [(parse_source(text).text, text) for text in texts or []]
    except ModelSpecError as exc:
        raise UsageError(str(exc)) from None


def _inspect_models(args: argparse.Namespace, sources: list[tuple[str, str]], workloads: list[str]):
    """--model sources and plugin models named by --workload, inspected in child
    processes and registered as workloads (benchmarks/user_models.py)."""
    from tf_loopbench.benchmarks.user_models import ModelRequest, inspect_models, plugin_requests
    from tf_loopbench.benchmarks.worker import configure_threads
    from tf_loopbench.loops.base import WORKLOADS
    from tf_loopbench.loops.model_spec import ModelSpecError

    unknown = [name for name in workloads if name not in WORKLOADS]
    requests = [ModelRequest(source, label=f"--model {text}") for source, text in sources]
    if unknown:  # installed plugins (loops/plugins.py)
        requests += plugin_requests(unknown)
    if not requests:
        return ()
    try:
        return tuple(
            inspect_models(
                requests,
                args.seed,
                args.data_size,
                args.batch_size[0] if args.batch_size else None,
                configure_threads(args.threads or 0, 0),
                args.start_method,
            )
        )
    except ModelSpecError as exc:
        raise UsageError(str(exc)) from None


def _render_report(run_dir: Path, epochs: int = DEFAULT_EPOCHS) -> None:
    try:
        from tf_loopbench.reports.report import command as report_command
    except ImportError:
        return
    report_command([str(run_dir)], epochs=epochs)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tf-loopbench")
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------- list


def command_list(args: argparse.Namespace) -> int:
    import tf_loopbench.benchmarks.tf_import  # noqa: F401
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.benchmarks.worker import configure_threads
    from tf_loopbench.loops.base import LOOPS, WORKLOADS
    from tf_loopbench.loops.plugins import load_plugins

    plugins = {plugin.name: plugin for plugin in load_plugins()}
    print("workloads:")
    for name in WORKLOADS:
        cls = WORKLOADS.get(name)
        source = f"  (plugin from {plugins[name].package})" if name in plugins else ""
        print(f"  {name:<12} batch {cls.default_batch_size:<5} {cls.description}{source}")
    for plugin in plugins.values():
        if plugin.kind == "model" and plugin.name not in WORKLOADS:
            print(f"  {plugin.name:<12} model {plugin.value}  (plugin from {plugin.package})")
        elif plugin.kind == "broken":
            print(f"  {plugin.name:<12} cannot load {plugin.value}: {plugin.error}")
    print("loops:")
    for name in LOOPS:
        print(f"  {name:<12} {LOOPS.get(name).description}")
    facts = run_probe(None, configure_threads(0, 0))
    print("devices:")
    for device in facts["devices_present"]:
        names = ", ".join(g["name"] for g in facts["gpus"]) if device == "gpu" else ""
        print(f"  {device}" + (f"  ({names})" if names else ""))
    if "gpu" not in facts["devices_present"]:
        print("  gpu          skipped: no GPU (install the gpu extra on a machine with one)")
    return EXIT_OK


# ----------------------------------------------------------------------------- baseline


def command_baseline(args: argparse.Namespace) -> int:
    from tf_loopbench.reports.gate import baseline
    from tf_loopbench.reports.gate import command as compare_command
    from tf_loopbench.reports.rundir import RunDirError

    try:
        if args.action == "save":
            path = baseline.save(args.run, args.name, args.store, args.force)
            print(f"baseline {args.name!r} saved: {path}")
            return EXIT_OK
        if args.action == "list":
            saved = baseline.listing(args.store)
            if not saved:
                print(f"no baselines in {baseline.store_path(args.store)}")
            for entry in saved:
                print(
                    f"{entry.name:<20} run {entry.run_id}  started {entry.started_at}  "
                    f"commit {entry.commit}  {entry.cells} cells"
                )
            return EXIT_OK
        path = baseline.find(args.name, args.store)
    except (baseline.BaselineError, RunDirError) as exc:
        raise UsageError(str(exc)) from None
    return compare_command(
        path,
        args.current,
        threshold=args.threshold,
        alpha=args.alpha,
        markdown=args.markdown,
        allow_missing=args.allow_missing,
        fail_if_blind=args.fail_if_blind,
    )


# ----------------------------------------------------------------------------- ab


def command_ab(args: argparse.Namespace) -> int:
    from tf_loopbench.benchmarks.ab import ABConfig, ABError, repo_root, run_ab, write_note
    from tf_loopbench.reports.gate import IncomparableRunsError
    from tf_loopbench.reports.rundir import RunDirError

    out = Path(args.out).resolve()
    markdown = Path(args.markdown).resolve() if args.markdown else out / "compare.md"
    try:
        config = ABConfig(
            base_ref=args.base_ref,
            repo=repo_root(Path(args.repo).resolve()),
            out=out,
            workloads=tuple(args.workload),
            loops=tuple(args.loop),
            processes=args.processes,
            time_budget_min=args.time_budget_min,
            threshold=args.threshold,
            alpha=args.alpha,
            markdown=markdown,
            inject_slowdown=args.inject_slowdown,
            allow_missing=args.allow_missing,
            fail_if_blind=args.fail_if_blind,
        )
        return run_ab(config)
    except (ABError, RunDirError, IncomparableRunsError) as exc:
        message = f"cannot compare: {exc}"
        write_note(markdown, message)  # the CI job summary says why there is no table
        raise UsageError(message) from None


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return command_list(args)
        if args.command == "run":
            return command_run(args)
        if args.command == "merge":
            from tf_loopbench.benchmarks.shards import command as merge_command

            return merge_command(args.runs, args.out, args.allow_different_machines, args.run_id)
        if args.command == "history":
            from tf_loopbench.reports.history import command as history_command

            return history_command(
                args.store, args.name, args.out, args.repo, min_change=args.min_change
            )
        if args.command == "report":
            from tf_loopbench.reports.report import command as report_command

            return report_command(args.runs, args.out, args.epochs)
        if args.command == "compare":
            from tf_loopbench.reports.gate import command as compare_command

            return compare_command(
                args.baseline,
                args.current,
                threshold=args.threshold,
                alpha=args.alpha,
                markdown=args.markdown,
                allow_different_machines=args.allow_different_machines,
                allow_missing=args.allow_missing,
                fail_if_blind=args.fail_if_blind,
            )
        if args.command == "ab":
            return command_ab(args)
        if args.command == "baseline":
            return command_baseline(args)
    except UsageError as exc:
        print(f"loopbench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyError as exc:  # UnknownNameError from a registry
        print(f"loopbench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C before any result (a run's own handler keeps those)
        print("\nloopbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
