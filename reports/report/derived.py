"""Derived figures per cell: speedups with CIs, compile break-even, time to train,
FLOP/s and MFU, crossovers.

Every comparison between loop styles follows the runs' ladder (``reports.rundir.Ladder``,
from metadata.json): each loop against the reference, and each rung against the one
it compares with (its neighbour: the two differ in one thing). Without a ladder no
loop is compared with another. What it computes (every function takes the tidy tables
of ``reports.report.aggregate``):

Two step-time figures. The *amortized* step (``amortized_step_time_s``: the steady step
plus per-epoch costs such as Keras's epoch end spread over an epoch's steps) is what a
user pays over whole epochs; the *steady* step (``step_time_s``) is the timed step
alone. Speedups are given on both; the report leads with the amortized one.

``speedups(cells, processes, pairs, figure)``
    For each (loop, against) pair: speedup = median step time of ``against`` /
    median step time of the loop (above 1: the loop is faster), per (run,
    workload, device, batch_size, width), on the ``figure`` ("amortized" or
    "steady"): the comparison core's rows (``reports.compare.compare``, the loop
    varying). The 95% CI comes from a seeded percentile bootstrap of that ratio
    of medians over the per-process samples (``reports.compare.ratio_with_interval``,
    the two loops resampled independently). Percentile rather than BCa because a
    cell has only a handful of processes: BCa's jackknife acceleration is unstable
    there. A loop or reference with fewer than two ok processes gets the point
    estimate and a NaN CI (intervals come from processes only).

``break_even(cells, pairs)``
    For each rung against its neighbour: total time after n steps is ``compile_s +
    n * amortized step`` for each; ``break_even_steps`` is the first n >= 1 at
    which the rung's total is strictly lower, ``break_even_epochs`` that in epochs.
    NaN when it never is (its steps are not faster; ``outcome`` then says "never").

``time_to_train(cells, processes, epochs)``
    What training ``epochs`` epochs costs from a cold start, per cell: set-up
    (``build_s`` + ``fit_setup_s`` where the loop has one) + the first step (trace and
    compile) + ``(epochs * steps_per_epoch - 1)`` steady steps + ``epochs *
    epoch_end_s`` where the loop has per-epoch costs. Medians of the run; a figure
    summary.csv lacks (an older run) is the median of its processes.

``throughput(cells)``
    achieved FLOP/s = model_flops_per_step / steady step, and
    MFU = achieved / the run's measured matmul peak (metadata soft.peak_matmul_flops[device]).

``run_comparison(cells, processes)``
    Several runs: each later run against the first, cell by cell, as a
    speedup (steady step) with the same bootstrap CI (the core's rows, the run varying).

``crossovers(cells, axis, pairs)``
    Over a sweep (``axis`` = "batch_size" or "width", the other cell keys
    fixed): overhead = loop steady step / reference steady step - 1. The crossover
    is the FIRST GRID POINT from which on the overhead stays under the
    threshold (10%) for every larger grid point; no interpolation is used for
    it. ``crossover_log_interpolated`` adds, for information, the point where
    the straight line between the neighbouring grid points (overhead against
    log2 of the axis) meets the threshold. Pairs (:func:`crossover_pairs`):
    every loop against the reference, and each rung's neighbour against the rung
    ("where its change stops mattering").

Run it::

    python -c "from reports.rundir import load_runs; from reports.report.aggregate import RunSet; \
from tf_loopbench.reports.report.derived import derive; print(derive(RunSet.of(load_runs(['results/RUN']))).cells)"
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tf_loopbench.reports import compare as core
from tf_loopbench.reports.compare import (
    BOOTSTRAP_SEED,
    DEFAULT_THRESHOLD,
    GROUP_KEYS,
    RUN_KEY,
    against,
    against_each,
)
from tf_loopbench.reports.report.aggregate import RunSet, aggregate_processes
from tf_loopbench.reports.report.versions import ReleaseComparison, release_comparison
from tf_loopbench.reports.rundir import DEFAULT_EPOCHS, Ladder

if TYPE_CHECKING:
    from tf_loopbench.reports.report.knobs import KnobTables

#: Keys of a comparison group: the run and its setting (GROUP_KEYS but the loop).
SETTING_KEYS = (RUN_KEY, *core.SETTING_KEYS)

# BOOTSTRAP_SEED, the one seed of every interval, is the comparison core's (re-exported).
#: "Falls under 10%": the overhead threshold of the crossovers.
OVERHEAD_THRESHOLD = 0.10
#: The band of no practical difference: a claim stands when its 95% interval lies wholly
#: outside 1 +- this (the regression gate's threshold; the core holds it).
PRACTICAL_DIFFERENCE = DEFAULT_THRESHOLD

#: The step-time figures a speedup is computed on (``reports.compare.FIGURES``), as
#: (per-process column in samples.jsonl, per-cell column in summary.csv).
FIGURES = {
    name: (figure.sample_column, figure.cell_column) for name, figure in core.FIGURES.items()
}

#: The speedup columns ``derive`` adds to each cell, by (against, figure): against the
#: ladder's reference, and against the rung's neighbour (named in ``neighbour``); on the
#: amortized step (what a user pays over whole epochs) and on the steady step.
SPEEDUP_COLUMNS = {
    (kind, figure): tuple(
        f"{prefix}speedup_vs_{kind}{suffix}" for suffix in ("", "_ci_low", "_ci_high")
    )
    for kind in ("reference", "neighbour")
    for figure, prefix in (("amortized", ""), ("steady", "steady_"))
}


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    finite = np.isfinite(cells["step_time_median_s"].astype(float)) & (
        cells["step_time_median_s"] > 0
    )
    return cells[(cells["status"] == "ok") & finite]


# --------------------------------------------------------------------------- the ladder


def reference_pairs(ladder: Ladder | None) -> list[tuple[str, str]]:
    """(loop, the reference) for every other loop on the ladder."""
    if ladder is None:
        return []
    return [(loop, ladder.reference) for loop in ladder.loops if loop != ladder.reference]


def neighbour_pairs(ladder: Ladder | None) -> list[tuple[str, str]]:
    """(rung, the rung it compares with): neighbours that differ in one thing."""
    return ladder.neighbours() if ladder is not None else []


def crossover_pairs(ladder: Ladder | None) -> list[tuple[str, str]]:
    """(loop, reference) pairs whose overhead the crossovers track: each loop against
    the ladder's reference, and each neighbour against the rung that changes it
    (where that change stops mattering)."""
    return reference_pairs(ladder) + [
        (neighbour, rung) for rung, neighbour in neighbour_pairs(ladder)
    ]


def loop_order(ladder: Ladder | None, loops: Iterable[str]) -> list[str]:
    """``loops`` in ladder order; without a ladder, in the order they come."""
    loops = list(dict.fromkeys(loops))
    return ladder.order(loops) if ladder is not None else loops


# --------------------------------------------------------------------------- speedups


def speedups(
    cells: pd.DataFrame,
    processes: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    figure: str = "amortized",
) -> pd.DataFrame:
    """Speedup of each ok loop against the loop it is paired with, in the same setting,
    on the step-time ``figure`` ("amortized": what a user pays over whole epochs, or
    "steady"), with a 95% CI: the comparison core's rows (``reports.compare.compare``,
    the loop varying), in this table's names.

    One row per (run, workload, device, batch_size, width, loop, reference) where
    both loops are ok. Columns: GROUP_KEYS, reference (the loop compared against),
    figure, speedup, speedup_ci_low, speedup_ci_high, n_loop_processes,
    n_reference_processes. The point estimate is the ratio of the medians of the
    per-process samples (the statistic the bootstrap resamples); a cell without
    process samples falls back to summary.csv's median, with a NaN CI.

    Example::

        speedups(run_set.cells, run_set.processes, reference_pairs(run_set.ladder))
    """
    rows = core.compare(
        _ok(cells),
        "loop",
        against_each(pairs),
        samples=processes,
        figure=figure,
        keys=GROUP_KEYS,
    )
    names = {
        "against_loop": "reference",
        "ratio": "speedup",
        "ci_low": "speedup_ci_low",
        "ci_high": "speedup_ci_high",
        "n": "n_loop_processes",
        "n_against": "n_reference_processes",
    }
    columns = [*GROUP_KEYS, *names.values()]
    columns.insert(columns.index("speedup"), "figure")
    return rows.rename(columns=names)[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- compile


def break_even_step(
    compile_s: float, step_time_s: float, reference_compile_s: float, reference_step_time_s: float
) -> tuple[float, str]:
    """First n >= 1 with compile_s + n*step < reference_compile_s + n*reference_step.

    Returns (steps, outcome): outcome is "after" (steps > 1), "immediately"
    (steps == 1), "never" (steps NaN: not faster per step) or "unknown" (a
    figure is missing).

    >>> break_even_step(0.5, 0.001, 0.0, 0.003)
    (251.0, 'after')
    """
    figures = (compile_s, step_time_s, reference_compile_s, reference_step_time_s)
    if not all(np.isfinite(figures)):
        return math.nan, "unknown"
    extra_compile_s = compile_s - reference_compile_s
    saving_per_step_s = reference_step_time_s - step_time_s
    if saving_per_step_s <= 0:
        if saving_per_step_s == 0 and extra_compile_s < 0:
            return 1.0, "immediately"
        return math.nan, "never"
    # Tie at exactly x steps; the tiny relative tolerance keeps float division
    # (0.5 / 0.002 = 250.00000000000003) from moving an exact tie by one step.
    tie = extra_compile_s / saving_per_step_s
    steps = max(1.0, float(math.floor(tie * (1 + 1e-12) + 1e-12)) + 1.0)
    return steps, "immediately" if steps == 1 else "after"


def break_even(cells: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Break-even steps of each (loop, reference) pair (the ladder's neighbours), per
    setting, on the amortized step (what a user pays per step over whole epochs).

    Columns: GROUP_KEYS, reference, compile_s, reference_compile_s,
    step_time_s, reference_step_time_s (amortized), extra_compile_s,
    saving_per_step_s, break_even_steps (NaN: never), break_even_epochs (of the
    loop's epoch; NaN without steps_per_epoch), break_even_s (wall time at
    break-even on the loop), outcome.
    """
    rows = []
    for setting, group in _ok(cells).groupby(list(SETTING_KEYS), sort=True):
        by_loop = group.set_index("loop")
        for loop, reference in pairs:
            if loop not in by_loop.index or reference not in by_loop.index:
                continue
            compile_s = float(by_loop.at[loop, "compile_s"])
            step_time_s = float(by_loop.at[loop, "amortized_step_time_s"])
            reference_compile_s = float(by_loop.at[reference, "compile_s"])
            reference_step_time_s = float(by_loop.at[reference, "amortized_step_time_s"])
            steps, outcome = break_even_step(
                compile_s, step_time_s, reference_compile_s, reference_step_time_s
            )
            epoch_steps = _float(by_loop.loc[loop].get("steps_per_epoch"))
            rows.append(
                {
                    **dict(zip(SETTING_KEYS, setting, strict=True)),
                    "loop": loop,
                    "reference": reference,
                    "compile_s": compile_s,
                    "reference_compile_s": reference_compile_s,
                    "step_time_s": step_time_s,
                    "reference_step_time_s": reference_step_time_s,
                    "extra_compile_s": compile_s - reference_compile_s,
                    "saving_per_step_s": reference_step_time_s - step_time_s,
                    "break_even_steps": steps,
                    "break_even_epochs": steps / epoch_steps if epoch_steps > 0 else math.nan,
                    "break_even_s": compile_s + steps * step_time_s,
                    "outcome": outcome,
                }
            )
    columns = [
        *GROUP_KEYS,
        "reference",
        "compile_s",
        "reference_compile_s",
        "step_time_s",
        "reference_step_time_s",
        "extra_compile_s",
        "saving_per_step_s",
        "break_even_steps",
        "break_even_epochs",
        "break_even_s",
        "outcome",
    ]
    return pd.DataFrame(rows, columns=columns)


def _float(value) -> float:
    """A number, or NaN for None, text and the like."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------- time to train

#: The figures the time to train adds up, read from summary.csv (or, where an older
#: run's summary lacks one, the median of its processes).
TIME_TO_TRAIN_FIGURES = ("build_s", "fit_setup_s", "first_step_s", "epoch_end_s", "steps_per_epoch")
#: Figures that only some loops have (Keras's set-up call and epoch ends): 0 where absent.
PER_LOOP_FIGURES = ("fit_setup_s", "epoch_end_s")


def train_time_s(
    epochs: int,
    *,
    build_s: float,
    first_step_s: float,
    step_time_s: float,
    steps_per_epoch: float,
    fit_setup_s: float = 0.0,
    epoch_end_s: float = 0.0,
) -> float:
    """Set-up + compile + ``epochs`` epochs from a cold start, in seconds: build_s +
    fit_setup_s + first_step_s + (epochs * steps_per_epoch - 1) * step_time_s +
    epochs * epoch_end_s.

    >>> round(train_time_s(2, build_s=0.1, first_step_s=0.5, step_time_s=0.01,
    ...                    steps_per_epoch=10, fit_setup_s=0.05, epoch_end_s=0.02), 9)
    0.88
    """
    fit_setup_s = 0.0 if not np.isfinite(fit_setup_s) else fit_setup_s
    epoch_end_s = 0.0 if not np.isfinite(epoch_end_s) else max(0.0, epoch_end_s)
    steps = epochs * steps_per_epoch
    total = build_s + fit_setup_s + first_step_s + (steps - 1) * step_time_s
    return float(total + epochs * epoch_end_s)


def time_to_train(
    cells: pd.DataFrame, processes: pd.DataFrame, epochs: int = DEFAULT_EPOCHS
) -> pd.DataFrame:
    """Time to train ``epochs`` epochs per ok cell (see :func:`train_time_s`).

    Columns: GROUP_KEYS, epochs, steps (epochs * steps_per_epoch), setup_s (build +
    the loop's own set-up call), first_step_s, steps_s (the other steps, per-epoch costs included),
    time_to_train_s (NaN where a figure is missing, e.g. steps_per_epoch in a run made
    before it was recorded), plus the figures it adds up.
    """
    ok = _ok(cells)
    medians = (
        processes.groupby(list(GROUP_KEYS), sort=False)[list(TIME_TO_TRAIN_FIGURES)].median()
        if not processes.empty and set(TIME_TO_TRAIN_FIGURES) <= set(processes.columns)
        else pd.DataFrame(columns=list(TIME_TO_TRAIN_FIGURES))
    )
    found: dict[tuple, dict[str, float]] = {}
    for row in ok.to_dict("records"):
        key = tuple(row[k] for k in GROUP_KEYS)
        figures = {}
        for name in TIME_TO_TRAIN_FIGURES:
            value = _float(row.get(name))
            if not np.isfinite(value) and key in medians.index:
                value = _float(medians.at[key, name])
            if name in PER_LOOP_FIGURES and not np.isfinite(value):
                value = 0.0
            figures[name] = value
        found[key] = figures
    # an epoch's steps depend on the data and the batch only: a loop that did not record
    # them (older runs recorded them for some loops) has its setting's
    epoch_steps: dict[tuple, float] = {}
    for key, figures in found.items():
        if np.isfinite(figures["steps_per_epoch"]):
            epoch_steps.setdefault(key[:-1], figures["steps_per_epoch"])
    rows = []
    for row in ok.to_dict("records"):
        key = tuple(row[k] for k in GROUP_KEYS)
        figures = found[key]
        if not np.isfinite(figures["steps_per_epoch"]):
            figures["steps_per_epoch"] = epoch_steps.get(key[:-1], math.nan)
        step_time_s = float(row["step_time_median_s"])
        total = train_time_s(
            epochs,
            build_s=figures["build_s"],
            first_step_s=figures["first_step_s"],
            step_time_s=step_time_s,
            steps_per_epoch=figures["steps_per_epoch"],
            fit_setup_s=figures["fit_setup_s"],
            epoch_end_s=figures["epoch_end_s"],
        )
        steps = epochs * figures["steps_per_epoch"]
        setup_s = figures["build_s"] + figures["fit_setup_s"]
        rows.append(
            {
                **{k: row[k] for k in GROUP_KEYS},
                **figures,
                "step_time_median_s": step_time_s,
                "epochs": epochs,
                "steps": steps,
                "setup_s": setup_s,
                "steps_s": total - setup_s - figures["first_step_s"],
                "time_to_train_s": total,
            }
        )
    columns = [
        *GROUP_KEYS,
        *TIME_TO_TRAIN_FIGURES,
        "step_time_median_s",
        "epochs",
        "steps",
        "setup_s",
        "steps_s",
        "time_to_train_s",
    ]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- FLOP/s


def throughput(cells: pd.DataFrame) -> pd.DataFrame:
    """Achieved FLOP/s (on the steady step) and MFU (against the run's matmul probe
    peak) per ok cell.

    Columns: GROUP_KEYS, model_flops_per_step, step_time_median_s,
    achieved_flops_per_s, peak_matmul_flops, mfu (NaN without a measured peak
    or a FLOP count).
    """
    ok = _ok(cells)
    flops = (
        ok["model_flops_per_step"].astype(float)
        if "model_flops_per_step" in ok
        else pd.Series(math.nan, index=ok.index)
    )
    table = ok[list(GROUP_KEYS)].copy()
    table["model_flops_per_step"] = flops
    table["step_time_median_s"] = ok["step_time_median_s"].astype(float)
    table["achieved_flops_per_s"] = flops / table["step_time_median_s"]
    table["peak_matmul_flops"] = ok["peak_matmul_flops"].astype(float)
    table["mfu"] = table["achieved_flops_per_s"] / table["peak_matmul_flops"]
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- sweeps


def _log_interpolated(
    grid: np.ndarray, overheads: np.ndarray, index: int, threshold: float
) -> float:
    """Where overhead (linear in log2 axis) crosses threshold between grid[index-1] and grid[index]."""
    low, high = grid[index - 1], grid[index]
    over, under = overheads[index - 1], overheads[index]
    if low <= 0 or over == under:
        return float(high)
    fraction = (over - threshold) / (over - under)
    return float(2 ** (math.log2(low) + fraction * (math.log2(high) - math.log2(low))))


def crossovers(
    cells: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    axis: str = "batch_size",
    threshold: float = OVERHEAD_THRESHOLD,
) -> pd.DataFrame:
    """Smallest ``axis`` value (batch_size or width) from which a loop's overhead stays under threshold.

    One row per (run, workload, device, fixed other key, loop, reference) with
    at least two grid points where both loops are ok. Columns: run, workload,
    device, fixed_key, fixed_value, axis, loop, reference, threshold, outcome
    ("from": crosses inside the grid, "always": under at the smallest grid
    point, "never": over at the largest), crossover (first grid point, NaN for
    never), crossover_log_interpolated, overhead_at_crossover, grid, overheads.

    Example::

        crossovers(run_set.cells, crossover_pairs(run_set.ladder), axis="batch_size")
    """
    if axis not in ("batch_size", "width"):
        raise ValueError(f"axis must be batch_size or width, not {axis!r}")
    fixed_key = "width" if axis == "batch_size" else "batch_size"
    ok = _ok(cells)
    rows = []
    for (
        run,
        workload,
        device,
        steps_per_call,
        precision,
        strategy,
        fixed_value,
    ), group in ok.groupby(
        ["run", "workload", "device", "steps_per_call", "precision", "strategy", fixed_key],
        sort=True,
    ):
        times = group.pivot_table(
            index=axis, columns="loop", values="step_time_median_s", aggfunc="first"
        ).sort_index()
        for loop, reference in pairs:
            if loop not in times.columns or reference not in times.columns:
                continue
            pair = times[[loop, reference]].dropna()
            if len(pair) < 2:
                continue
            grid = pair.index.to_numpy(dtype=float)
            overheads = (pair[loop] / pair[reference] - 1.0).to_numpy(dtype=float)
            under = overheads < threshold
            # first index from which every larger grid point is under the threshold
            start = len(grid)
            while start > 0 and under[start - 1]:
                start -= 1
            if start == len(grid):
                outcome, crossover, interpolated, at = "never", math.nan, math.nan, math.nan
            elif start == 0:
                outcome, crossover, interpolated = "always", grid[0], math.nan
                at = overheads[0]
            else:
                outcome, crossover = "from", grid[start]
                interpolated = _log_interpolated(grid, overheads, start, threshold)
                at = overheads[start]
            rows.append(
                {
                    "run": run,
                    "workload": workload,
                    "device": device,
                    "steps_per_call": int(steps_per_call),
                    "precision": precision,
                    "strategy": strategy,
                    "fixed_key": fixed_key,
                    "fixed_value": int(fixed_value),
                    "axis": axis,
                    "loop": loop,
                    "reference": reference,
                    "threshold": threshold,
                    "outcome": outcome,
                    "crossover": crossover,
                    "crossover_log_interpolated": interpolated,
                    "overhead_at_crossover": at,
                    "grid": tuple(int(value) for value in grid),
                    "overheads": tuple(float(value) for value in overheads),
                }
            )
    columns = [
        "run",
        "workload",
        "device",
        "steps_per_call",
        "precision",
        "strategy",
        "fixed_key",
        "fixed_value",
        "axis",
        "loop",
        "reference",
        "threshold",
        "outcome",
        "crossover",
        "crossover_log_interpolated",
        "overhead_at_crossover",
        "grid",
        "overheads",
    ]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- between runs

#: The keys a cell of one run matches a cell of another on (and the device, unless
#: each run has a single device): GROUP_KEYS but the run and the device, the loop second
#: (the order of run_comparison's columns).
MATCH_KEYS = (
    "workload",
    "loop",
    *(k for k in core.SETTING_KEYS if k not in ("workload", "device")),
)


def run_comparison(cells: pd.DataFrame, processes: pd.DataFrame) -> pd.DataFrame:
    """Each later run against the first, cell by cell: baseline step time / run step time.

    Cells match on workload, loop, batch_size and width, and on device too
    unless each of the two runs has a single device (then "cpu vs gpu" pairs
    the cpu cell with the gpu cell: the run and the device vary together). Above 1:
    the later run is faster. The comparison core's rows on the steady step, the run
    varying, against the first run (CI as in ``speedups``). Columns: baseline, run,
    MATCH_KEYS, baseline_device, device, speedup, speedup_ci_low, speedup_ci_high.
    """
    columns = [
        "baseline",
        "run",
        *MATCH_KEYS,
        "baseline_device",
        "device",
        "speedup",
        "speedup_ci_low",
        "speedup_ci_high",
    ]
    ok = _ok(cells)
    runs = list(dict.fromkeys(cells[RUN_KEY]))
    if len(runs) < 2:
        return pd.DataFrame(columns=columns)
    baseline = runs[0]
    parts = []
    for other in runs[1:]:
        both = ok[ok[RUN_KEY].isin([baseline, other])]
        devices = both.groupby(RUN_KEY)["device"].nunique()
        single_devices = devices.get(baseline, 0) == 1 and devices.get(other, 0) == 1
        if single_devices:  # one device a run: the cpu cell against the gpu cell
            base_device = both.loc[both[RUN_KEY] == baseline, "device"].iloc[0]
            other_device = both.loc[both[RUN_KEY] == other, "device"].iloc[0]
            vary, rule = (
                (RUN_KEY, "device"),
                against_each([((other, other_device), (baseline, base_device))]),
            )
        else:
            vary, rule = RUN_KEY, against(baseline)
        rows = core.compare(both, vary, rule, samples=processes, figure="steady", keys=GROUP_KEYS)
        if not single_devices:
            rows["against_device"] = rows["device"]
        parts.append(
            pd.DataFrame(
                {
                    "baseline": rows[f"against_{RUN_KEY}"],
                    "run": rows[RUN_KEY],
                    **{key: rows[key] for key in MATCH_KEYS},
                    "baseline_device": rows["against_device"],
                    "device": rows["device"],
                    "speedup": rows["ratio"],
                    "speedup_ci_low": rows["ci_low"],
                    "speedup_ci_high": rows["ci_high"],
                },
                columns=columns,
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


# --------------------------------------------------------------------------- all of it


@dataclass(frozen=True)
class Derived:
    """Every derived table of a RunSet.

    ``cells``: one row per (run, cell) with summary columns, process statistics,
    speedups against the ladder's reference and against the rung this loop compares
    with (``neighbour``), on the amortized and the steady step, each with its CI (the
    names in SPEEDUP_COLUMNS; they replace summary.csv's own speedup_vs_fit, which has
    none), ``time_to_train_s`` for ``epochs`` epochs, ``achieved_flops_per_s`` and
    ``mfu``, and the equal-work loss of the equivalence reference of its setting
    (``reference_equal_work_loss``, ``reference_equal_work_loop``); in ladder order.
    ``speedups`` holds every (loop, reference, figure) the ladder draws.
    """

    run_set: RunSet
    cells: pd.DataFrame
    speedups: pd.DataFrame
    break_even: pd.DataFrame
    crossovers: pd.DataFrame
    run_comparison: pd.DataFrame
    time_to_train: pd.DataFrame
    epochs: int = DEFAULT_EPOCHS
    #: the band of no practical difference (1 +- this) a claim's interval must clear
    threshold: float = PRACTICAL_DIFFERENCE
    #: runs of several TensorFlow/Keras releases, step by step (reports.report.versions)
    releases: ReleaseComparison | None = None
    #: ratios across steps per call, precision, the reference's compiler (reports.report.knobs)
    knobs: KnobTables | None = None

    @property
    def ladder(self) -> Ladder | None:
        return self.run_set.ladder


def _speedup_columns(
    long_speedups: pd.DataFrame, pairs: Sequence[tuple[str, str]], kind: str, figure: str
) -> pd.DataFrame:
    """The speedups of ``pairs`` on ``figure`` as one row per cell with the
    (``kind``, ``figure``) columns."""
    wanted = pd.DataFrame(pairs, columns=["loop", "reference"])
    part = long_speedups[long_speedups["figure"] == figure].merge(
        wanted, on=["loop", "reference"], how="inner"
    )
    names = SPEEDUP_COLUMNS[(kind, figure)]
    part = part[[*GROUP_KEYS, "speedup", "speedup_ci_low", "speedup_ci_high"]].rename(
        columns=dict(zip(("speedup", "speedup_ci_low", "speedup_ci_high"), names, strict=True))
    )
    return part


def equal_work_reference(cells: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the loop its equal-work loss was checked against (the cell of its setting
    marked ``equivalence_reference``) and that loop's loss; None/NaN where the run has
    none (runs made before equal work was recorded)."""
    cells = cells.copy()
    marked = (
        cells["equivalence_reference"].map(lambda value: value is True or value == "True")
        if "equivalence_reference" in cells
        else pd.Series(False, index=cells.index)
    )
    references = cells[marked & (cells["status"] == "ok")]
    by_setting = {
        tuple(row[k] for k in SETTING_KEYS): (row["loop"], _float(row.get("equal_work_loss")))
        for row in references.to_dict("records")
    }
    found = [
        by_setting.get(tuple(row[k] for k in SETTING_KEYS)) for row in cells.to_dict("records")
    ]
    cells["reference_equal_work_loop"] = [f[0] if f else None for f in found]
    cells["reference_equal_work_loss"] = [f[1] if f else math.nan for f in found]
    return cells


def derive(run_set: RunSet, epochs: int = DEFAULT_EPOCHS) -> Derived:
    """Compute every derived table for a RunSet (see the module docstring); the time to
    train is for ``epochs`` epochs."""
    from tf_loopbench.reports.report.knobs import knob_tables  # it reads this module's keys

    ladder = run_set.ladder
    cells = run_set.cells.drop(columns=["speedup_vs_fit"]).merge(
        aggregate_processes(run_set.processes), on=list(GROUP_KEYS), how="left"
    )
    against_reference, against_neighbour = reference_pairs(ladder), neighbour_pairs(ladder)
    long_speedups = pd.concat(
        [
            speedups(run_set.cells, run_set.processes, against_reference + against_neighbour, f)
            for f in FIGURES
        ],
        ignore_index=True,
    )
    for kind, pairs in (("reference", against_reference), ("neighbour", against_neighbour)):
        for figure in FIGURES:
            part = _speedup_columns(long_speedups, pairs, kind, figure)
            cells = cells.merge(part, on=list(GROUP_KEYS), how="left")
    neighbours = dict(against_neighbour)
    cells["neighbour"] = cells["loop"].map(lambda loop: neighbours.get(loop))
    rates = throughput(run_set.cells)[[*GROUP_KEYS, "achieved_flops_per_s", "mfu"]]
    cells = cells.merge(rates, on=list(GROUP_KEYS), how="left")
    trained = time_to_train(run_set.cells, run_set.processes, epochs)
    cells = cells.merge(trained[[*GROUP_KEYS, "time_to_train_s"]], on=list(GROUP_KEYS), how="left")
    cells = equal_work_reference(cells)
    ranks = {loop: i for i, loop in enumerate(loop_order(ladder, cells["loop"]))}
    cells["loop_rank"] = cells["loop"].map(ranks)
    cells = (
        cells.sort_values([*SETTING_KEYS, "loop_rank"], kind="stable")
        .drop(columns="loop_rank")
        .reset_index(drop=True)
    )
    sweeps = [
        crossovers(run_set.cells, crossover_pairs(ladder), axis) for axis in ("batch_size", "width")
    ]
    # break-even in epochs: an epoch's steps as the time to train found them
    epoch_cells = run_set.cells.drop(columns=["steps_per_epoch"], errors="ignore").merge(
        trained[[*GROUP_KEYS, "steps_per_epoch"]], on=list(GROUP_KEYS), how="left"
    )
    return Derived(
        run_set=run_set,
        cells=cells,
        speedups=long_speedups,
        break_even=break_even(epoch_cells, against_neighbour),
        crossovers=pd.concat(sweeps, ignore_index=True),
        run_comparison=run_comparison(run_set.cells, run_set.processes),
        time_to_train=trained,
        epochs=epochs,
        knobs=knob_tables(run_set),
        releases=release_comparison(run_set),
    )


#: The derived-table functions; a test checks each returns rows on good input.
DERIVED_TABLES: dict[str, Callable[[RunSet], pd.DataFrame]] = {
    "speedups_vs_reference": lambda rs: speedups(
        rs.cells, rs.processes, reference_pairs(rs.ladder)
    ),
    "steady_speedups_vs_reference": lambda rs: speedups(
        rs.cells, rs.processes, reference_pairs(rs.ladder), "steady"
    ),
    "speedups_vs_neighbour": lambda rs: speedups(
        rs.cells, rs.processes, neighbour_pairs(rs.ladder)
    ),
    "break_even": lambda rs: break_even(rs.cells, neighbour_pairs(rs.ladder)),
    "time_to_train": lambda rs: time_to_train(rs.cells, rs.processes),
    "throughput": lambda rs: throughput(rs.cells),
    "crossovers_batch_size": lambda rs: crossovers(
        rs.cells, crossover_pairs(rs.ladder), "batch_size"
    ),
    "crossovers_width": lambda rs: crossovers(rs.cells, crossover_pairs(rs.ladder), "width"),
    "run_comparison": lambda rs: run_comparison(rs.cells, rs.processes),
}

__all__ = [
    "BOOTSTRAP_SEED",
    "DEFAULT_EPOCHS",
    "DERIVED_TABLES",
    "FIGURES",
    "PRACTICAL_DIFFERENCE",
    "Derived",
    "break_even",
    "break_even_step",
    "crossover_pairs",
    "crossovers",
    "derive",
    "loop_order",
    "neighbour_pairs",
    "reference_pairs",
    "run_comparison",
    "speedups",
    "throughput",
    "time_to_train",
    "train_time_s",
]
