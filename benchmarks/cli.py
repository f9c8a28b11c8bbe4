"""``loopbench``: time equivalent TensorFlow training loops, report them, gate on regressions.

The command line (the contract in shared/DESIGN.md): argparse below is the one
description of its subcommands and options; ``loopbench --help`` and
``loopbench COMMAND --help`` print it, and tests/test_usage.py checks README.md's
"Command line" block against it. Each command parses argv and calls the library:
``run`` builds a RunRequest (benchmarks/options.py) and calls benchmarks/run.py, as
``tf_loopbench.run`` does; ``report`` and ``compare`` never import TensorFlow.

Exit status: 0 success; 1 a confirmed regression (compare, ab); 2 bad input,
with one line on stderr and no traceback; 3 (compare, ab with --fail-if-blind) no
confirmed regression, but a cell could not have seen a slowdown of the threshold's
size; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tf_loopbench.benchmarks import options
from tf_loopbench.benchmarks.config import (
    AB_MODES,
    AB_OUT_DIR,
    AB_PROCESSES,
    AB_TIME_BUDGET_MIN,
    DEFAULT,
    FIT_JIT_CHOICES,
    INJECT_SLOWDOWN_ENV,
    OUT_DIR,
    PRECISIONS,
    QUICK,
    SEED,
    START_METHOD,
    START_METHODS,
    TIMEOUT_S,
    RunRequest,
    UsageError,
)
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
#: options of ``loopbench run`` that are no part of the user's command line (README's
#: block leaves them out): ``loopbench ab`` hands each side a pipe to take turns on
INTERNAL_OPTIONS = ("--take-turns",)


class LoopbenchParser(argparse.ArgumentParser):
    """argparse's parser with bad input as one line and exit 2, like every other bad
    input; it keeps the arguments and subcommands it was given (``commands``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.arguments: list[argparse.Action] = []  # argparse adds --help in __init__
        self.subcommands: dict[str, LoopbenchParser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments.append(action)
        return action

    def add_subparsers(self, **kwargs: Any) -> Any:
        action = super().add_subparsers(**kwargs)
        self.subcommands = action.choices  # filled as subcommands are added
        return action

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"loopbench: error: {message}\n")


def argument_type(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse type from an option parser of benchmarks/options.py: its one line
    becomes argparse's ``argument --X: ...`` error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except options.OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


positive_int = argument_type(options.positive_int)
positive_ints = argument_type(options.positive_ints)
positive_float = argument_type(options.positive_float)


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
        "a slowdown of twice the threshold (its detectable slowdown, the whole rule's, is "
        "larger; a slowdown of the threshold's size is flagged about half the time)",
    )


def add_run_options(run: argparse.ArgumentParser) -> None:
    """``loopbench run``'s options: one per RunRequest field, of the same name, parsed by
    the same functions as ``tf_loopbench.run``'s keyword arguments (benchmarks/options.py);
    the defaults are RunRequest's (None here: not given)."""
    parsed = options.RUN_OPTIONS
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
    run.add_argument(
        "--device",
        type=argument_type(parsed["device"]),
        help="cpu, gpu or all (default: every device present)",
    )
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
        type=argument_type(parsed["precision"]),
        metavar="P[,P...]",
        help=f"Keras dtype policies, the same for every loop style: {', '.join(PRECISIONS)} "
        "(default float32; mixed_float16 with loss scaling)",
    )
    run.add_argument(
        "--fit-jit",
        type=argument_type(parsed["fit_jit"]),
        metavar="J[,J...]",
        help=f"fit's jit_compile: {', '.join(FIT_JIT_CHOICES)} (auto: Keras's choice, "
        "recorded); other loop styles ignore it (default auto)",
    )
    run.add_argument(
        "--strategy",
        type=argument_type(parsed["strategy"]),
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
    run.add_argument(
        "--warmup-steps",
        type=argument_type(parsed["warmup_steps"]),
        help="untimed steps after the first",
    )
    run.add_argument(
        "--processes",
        type=positive_int,
        help=f"worker processes (samples) per cell (default {DEFAULT.processes}, "
        f"--quick {QUICK.processes})",
    )
    run.add_argument("--quick", action="store_true", help="a rougher answer, fast")
    run.add_argument("--profile", action="store_true", help="capture a profiler trace per cell")
    run.add_argument("--data-size", type=positive_int, help="training examples per workload")
    run.add_argument("--data", metavar="PATH", help="local MNIST .npz (mlp, gan)")
    run.add_argument(
        "--seed",
        type=argument_type(parsed["seed"]),
        help=f"the data's and models' seed (default {SEED})",
    )
    run.add_argument("--threads", type=positive_int, help="TF intra-op threads (default: cores)")
    run.add_argument(
        "--timeout",
        type=argument_type(parsed["timeout"]),
        help=f"seconds per worker process (default {TIMEOUT_S:g})",
    )
    run.add_argument(
        "--start-method",
        type=argument_type(parsed["start_method"]),
        metavar="{" + ",".join(START_METHODS) + "}",
        help="how worker processes start: forked from a server that imported TensorFlow "
        f"(default, {START_METHOD}) or a new interpreter each",
    )
    run.add_argument(
        "--out", metavar="DIR", help=f"parent directory of run directories (default {OUT_DIR})"
    )
    run.add_argument(
        "--shard",
        type=argument_type(parsed["shard"]),
        metavar="I/N",
        help="run shard I of N (1-based) of the jobs, to merge later (`loopbench merge`)",
    )
    run.add_argument("--no-report", action="store_true", help="skip report.md/report.html")
    run.add_argument(
        "--epochs",
        type=positive_int,
        help=f"the report's time to train E epochs (default {DEFAULT_EPOCHS})",
    )
    run.add_argument(
        "--wide",
        action="store_true",
        help="the terminal table with every column (batch, status, compile s, what Keras "
        "chose...); summary.csv has them all anyway",
    )
    run.add_argument(  # the same-job A/B's interleaving (benchmarks/turns.py)
        "--take-turns",
        type=argument_type(parsed["take_turns"]),
        metavar="FD",
        help=argparse.SUPPRESS,
    )


def run_request(args: argparse.Namespace) -> RunRequest:
    """The RunRequest of a parsed ``loopbench run`` (the same function builds
    ``tf_loopbench.run``'s from its keyword arguments)."""
    given = {name: getattr(args, name) for name in options.RUN_OPTIONS if name != "report"}
    return options.make_request(**given, report=not args.no_report)


def build_parser() -> argparse.ArgumentParser:
    """The ``loopbench`` parser: every subcommand and option (README.md's block is checked
    against it by tests/test_usage.py)."""
    parser = LoopbenchParser(
        prog="loopbench",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog=EXIT_HELP,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=LoopbenchParser)

    commands.add_parser("list", help="workloads, loop styles and devices present")

    run = commands.add_parser("run", help="time loop styles on workloads; write a run directory")
    add_run_options(run)

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
        help="time a git ref and this work tree in one job (side by side, or taking "
        "turns on 1 core), then gate",
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
    ab.add_argument(
        "--mode",
        choices=AB_MODES,
        help="duet: both sides' workers of a cell at once, each pinned to its own half of "
        "the cores, timed windows started together, judged in pairs (default with 2 cores "
        "or more); interleaved: one worker at a time, taking turns (1-core machines, or to "
        "time the threading users run)",
    )
    ab.add_argument(
        "--duet-cores",
        choices=("pinned", "shared"),
        default="pinned",
        help="duet: each side pinned to its own half of the cores, halves swapped every "
        "block (pinned, default), or both on every core with half the threads each (shared)",
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
    actions = baseline.add_subparsers(dest="action", required=True, parser_class=LoopbenchParser)
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


def commands(parser: LoopbenchParser | None = None, prefix: str = "loopbench") -> dict[str, Any]:
    """Every command of ``parser`` (default: ``loopbench``'s) by its words, with its
    arguments: ``{"loopbench run": [Action, ...], "loopbench baseline save": [...]}``.

    >>> sorted(commands())[:3]
    ['loopbench', 'loopbench ab', 'loopbench baseline']
    """
    parser = parser or build_parser()
    found = {prefix: parser.arguments}
    for name, subparser in parser.subcommands.items():
        found.update(commands(subparser, f"{prefix} {name}"))
    return found


# ----------------------------------------------------------------------------- run


def command_run(args: argparse.Namespace) -> int:
    """``loopbench run``: the library's run (benchmarks/run.py) of the parsed request."""
    from tf_loopbench.benchmarks.run import Interrupted, run

    try:
        run(run_request(args))
    except Interrupted:  # the run has said where its finished cells are
        return EXIT_INTERRUPTED
    return EXIT_OK


# ----------------------------------------------------------------------------- list


def command_list(args: argparse.Namespace) -> int:
    import tf_loopbench.benchmarks.tf_import  # noqa: F401
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.benchmarks.run import run_probe
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
            mode=args.mode,
            pinned=args.duet_cores == "pinned",
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
