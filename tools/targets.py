"""Check the measurement targets on this machine and print the figures (Markdown).

    python tools/targets.py overhead      # harness vs a minimal hand-written loop
    python tools/targets.py repro [N]     # N back-to-back `loopbench run --workload mlp`
    python tools/targets.py time          # wall time of the quick and default matrices
    python tools/targets.py report-time   # `loopbench report` on a default-matrix run
    python tools/targets.py sweep         # wall time of the default mlp batch sweep

Targets (issue "Measurement you can trust"):
- harness overhead: the suite's steady step time for tf_function on mlp is within
  2% of a minimal timing loop of the same step in the same process;
- reproducibility: over 5 back-to-back mlp runs, per-cell medians spread (max/min - 1)
  at most 5% for fit, tf_function, tf_data, xla and at most 10% for eager;
- time to an answer: quick matrix <= 2 min, default matrix <= 10 min;
- `loopbench report` on a run of the default matrix: at most 10 s;
- the default sweep (mlp, batch sizes 32,128,512,2048, 5 loop styles, CPU): at most
  10 min (issue "Reports that decide").
Timings are never asserted in tests; this script reports them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: `python tools/NAME.py` from a checkout imports the project from it
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import statistics
import subprocess
import tempfile
import time

import pandas as pd
from tf_loopbench.reports.rundir import load_run

GRAPH_LIMIT, EAGER_LIMIT = 0.05, 0.10


def bottom_and_graph_rungs() -> tuple[str, str]:
    """(the ladder's bottom custom rung, the rung that puts it in graph mode): the loop
    styles' own declarations, so this tool names no loop style."""
    import tf_loopbench.loops.styles  # noqa: F401
    from tf_loopbench.loops.base import LOOPS

    rungs = LOOPS.ladder()["rungs"]
    bottom = next(r["loop"] for r in rungs if not r["reference"] and r["compares_with"] is None)
    graph = next(r["loop"] for r in rungs if r["compares_with"] == bottom)
    return bottom, graph


def overhead(rounds: int = 15, steps: int = 200) -> None:
    """Alternate the suite's clock and a bare loop on one graph-mode trainer."""
    from tf_loopbench.benchmarks.clock import PhaseClock, now
    from tf_loopbench.benchmarks.worker import configure_threads

    configure_threads(0, 0)
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig
    from tf_loopbench.loops.feeders import numpy_batches

    workload = WORKLOADS.get("mlp")(WorkloadConfig())
    data = workload.make_data()
    train = data.whole_batches(128)
    state = workload.build()
    trainer = LOOPS.get(bottom_and_graph_rungs()[1])().make_trainer(workload, state, train, 128)
    step, batches = trainer.step_fn, numpy_batches(train, 128)

    def minimal() -> float:
        start = now()
        for _ in range(steps):
            loss = step(next(batches))["loss"]
        loss.numpy()
        return (now() - start) / steps

    def suite() -> float:
        windows = 10
        clock = PhaseClock(
            trainer.sync, warmup_steps=0, windows=windows, steps_per_window=steps // windows
        )
        trainer.run(clock.total_steps, clock)
        return statistics.median(clock.times.window_s) / (steps // windows)

    minimal(), suite()  # trace and warm up both
    pairs = [(suite(), minimal()) for _ in range(rounds)]
    suite_s = statistics.median(p[0] for p in pairs)
    minimal_s = statistics.median(p[1] for p in pairs)
    ratios = [s / m for s, m in pairs]
    print("| figure | value |\n|---|---|")
    print(f"| suite steady step (median of {rounds} rounds) | {suite_s * 1e3:.4f} ms |")
    print(f"| minimal loop step (median of {rounds} rounds) | {minimal_s * 1e3:.4f} ms |")
    print(f"| suite / minimal, median of paired rounds | {statistics.median(ratios):.4f} |")
    print(f"| paired ratio range | {min(ratios):.4f} - {max(ratios):.4f} |")
    verdict = abs(statistics.median(ratios) - 1) <= 0.02
    print(f"\ntarget (within 2%): {'met' if verdict else 'NOT met'}")


def _run(args: list[str], out: Path, report: bool = False) -> tuple[float, Path]:
    """`loopbench run ARGS` in a fresh interpreter: (wall seconds, run directory)."""
    start = time.perf_counter()
    extra = [] if report else ["--no-report"]
    result = subprocess.run(
        [sys.executable, "-m", "tf_loopbench", "run", *args, *extra, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run failed: {result.stderr.strip().splitlines()[-1]}")
    run_dir = Path(result.stdout.strip().splitlines()[-1].removeprefix("results: "))
    return wall, run_dir


def repro(n_runs: int, extra: list[str]) -> None:
    out = Path(tempfile.mkdtemp(prefix="loopbench-repro-"))
    medians = []
    for i in range(n_runs):
        wall, run_dir = _run(["--workload", "mlp", *extra], out)
        summary = load_run(run_dir).summary
        medians.append(summary.set_index("loop")["step_time_median_s"].rename(f"run {i + 1}"))
        print(f"run {i + 1}: {wall:.0f} s -> {run_dir}", file=sys.stderr)
    table = pd.concat(medians, axis=1) * 1e3
    spread = table.max(axis=1) / table.min(axis=1) - 1
    print("| loop | " + " | ".join(table.columns) + " | max/min - 1 | limit |")
    print("|---" * (len(table.columns) + 3) + "|")
    met = True
    bottom, _ = bottom_and_graph_rungs()  # its steps run op by op: a looser limit
    for loop, row in table.iterrows():
        limit = EAGER_LIMIT if loop == bottom else GRAPH_LIMIT
        met &= spread[loop] <= limit
        cells = " | ".join(f"{v:.3f}" for v in row)
        print(f"| {loop} | {cells} | {spread[loop]:.1%} | {limit:.0%} |")
    print(f"\n(step time in ms) target: {'met' if met else 'NOT met'}")


def wall_times() -> None:
    out = Path(tempfile.mkdtemp(prefix="loopbench-time-"))
    quick, _ = _run(["--quick", "--device", "cpu"], out)
    default, _ = _run(["--device", "cpu"], out)
    print("| matrix | wall time | limit |\n|---|---|---|")
    print(f"| quick (3 workloads x 5 loops, CPU) | {quick:.0f} s | 120 s |")
    print(f"| default (3 workloads x 5 loops, CPU) | {default:.0f} s | 600 s |")


def report_time(repeats: int = 3) -> None:
    """Time `loopbench report` (a fresh interpreter, as users run it) on a run of the
    default matrix's shape: 3 workloads x 5 loops, the default processes a cell."""
    from tf_loopbench.benchmarks.config import DEFAULT

    from tests.fixtures.report_runs import default_matrix_cells, write_run

    out = Path(tempfile.mkdtemp(prefix="loopbench-report-time-"))
    run = write_run(
        out / "default", default_matrix_cells(batch_sizes=(128,), processes=DEFAULT.processes)
    )
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tf_loopbench", "report", str(run)],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - start)
    print("| figure | value | limit |\n|---|---|---|")
    print(
        f"| loopbench report, default matrix (median of {repeats}) | "
        f"{statistics.median(walls):.1f} s | 10 s |"
    )


SWEEP_BATCH_SIZES = "32,128,512,2048"


def sweep_time() -> None:
    """The default sweep, timed end to end (report included), as a user runs it."""
    out = Path(tempfile.mkdtemp(prefix="loopbench-sweep-"))
    args = ["--workload", "mlp", "--batch-size", SWEEP_BATCH_SIZES, "--device", "cpu"]
    wall, run_dir = _run(args, out, report=True)
    print("| figure | value | limit |\n|---|---|---|")
    print(
        f"| default sweep (mlp x batch {SWEEP_BATCH_SIZES} x 5 loops, CPU), report included | "
        f"{wall:.0f} s | 600 s |"
    )
    print(f"\nrun directory (report.md holds the crossovers): {run_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("overhead")
    rep = sub.add_parser("repro")
    rep.add_argument("runs", type=int, nargs="?", default=5)
    rep.add_argument("extra", nargs=argparse.REMAINDER, help="more `loopbench run` arguments")
    sub.add_parser("time")
    sub.add_parser("report-time")
    sub.add_parser("sweep")
    args = parser.parse_args()
    if args.what == "overhead":
        overhead()
    elif args.what == "repro":
        repro(args.runs, args.extra)
    elif args.what == "report-time":
        report_time()
    elif args.what == "sweep":
        sweep_time()
    else:
        wall_times()


if __name__ == "__main__":
    main()
