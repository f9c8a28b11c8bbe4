"""Derived figures of a RunSet, drawn from the comparison core's rows (``reports.compare``):
speedups along the ladder, break-even, time to train, FLOP/s and MFU, crossovers, later runs
against the first. docs/methodology.md says how each is made.

Example::

    derive(RunSet.of(load_runs(["results/RUN"]))).cells
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import (
    DEFAULT_THRESHOLD,
    GROUP_KEYS,
    RUN_KEY,
    RUN_SETTING_KEYS,
    Rule,
    against,
    against_each,
    break_even_step,
    compare,
    ladder_neighbours,
    ladder_reference,
    pair,
)
from tf_loopbench.reports.report.aggregate import TIME_TO_TRAIN_FIGURES, RunSet, aggregate_processes
from tf_loopbench.reports.rundir import DEFAULT_EPOCHS, Ladder

#: "Falls under 10%": the overhead threshold of the crossovers.
OVERHEAD_THRESHOLD = 0.10

#: The speedup columns ``derive`` adds to each cell, by (against, figure): against the
#: ladder's reference or the rung's neighbour (named in ``neighbour``), on the amortized
#: or the steady step.
SPEEDUP_COLUMNS = {
    (kind, figure): tuple(
        f"{prefix}speedup_vs_{kind}{suffix}" for suffix in ("", "_ci_low", "_ci_high")
    )
    for kind in ("reference", "neighbour")
    for figure, prefix in (("amortized", ""), ("steady", "steady_"))
}
SPEEDUP = ("speedup", "speedup_ci_low", "speedup_ci_high")
#: The core's ratio columns in this module's names.
AS_SPEEDUP = dict(zip(("ratio", "ci_low", "ci_high"), SPEEDUP, strict=True))


def ok_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that ran, with a positive step time."""
    step = cells["step_time_median_s"].astype(float)
    return cells[(cells["status"] == "ok") & np.isfinite(step) & (step > 0)]


def loop_order(ladder: Ladder | None, loops: Iterable[str]) -> list[str]:
    """``loops`` in ladder order; without a ladder, in the order they come."""
    loops = list(dict.fromkeys(loops))
    return ladder.order(loops) if ladder is not None else loops


def crossover_pairs(ladder: Ladder | None) -> list[tuple[str, str]]:
    """The (loop, reference) pairs the crossovers track: each loop against the reference,
    and each neighbour against the rung that changes it."""
    if ladder is None:
        return []
    by_reference = ladder_reference(ladder).pairs(ladder.loops)
    return by_reference + [(neighbour, rung) for rung, neighbour in ladder.neighbours()]


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as floats; NaN where absent or not a number."""
    return pd.to_numeric(frame.get(column, pd.Series(math.nan, index=frame.index)), "coerce")


def speedups(
    cells: pd.DataFrame, processes: pd.DataFrame, rule: Rule, figure: str = "amortized"
) -> pd.DataFrame:
    """The core's rows of each ok loop against the loop ``rule`` names, on the step-time
    ``figure``, in this table's names (speedup: above 1, the loop is faster).

    Example::

        speedups(run_set.cells, run_set.processes, ladder_reference(run_set.ladder))
    """
    rows = compare(ok_cells(cells), "loop", rule, samples=processes, figure=figure, keys=GROUP_KEYS)
    counts = {"n": "n_loop_processes", "n_against": "n_reference_processes"}
    names = {"against_loop": "reference", **AS_SPEEDUP, **counts}
    columns = [*GROUP_KEYS, "reference", "figure", *SPEEDUP, *counts.values()]
    return rows.rename(columns=names)[columns].reset_index(drop=True)


def break_even(cells: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Break-even (:func:`break_even_step`) of each loop against the loop ``rule`` names,
    per setting, on the amortized step, in steps, epochs and wall time on the loop."""
    ok = ok_cells(cells)
    pairs = pair(ok, "loop", rule, keys=GROUP_KEYS)
    mine = ok.loc[pairs["subject_row"]].reset_index(drop=True)
    theirs = ok.loc[pairs["reference_row"]].reset_index(drop=True)
    table = mine[list(GROUP_KEYS)].assign(reference=theirs["loop"])
    for column, source in (("compile_s", "compile_s"), ("step_time_s", "amortized_step_time_s")):
        table[column] = mine[source].astype(float)
        table[f"reference_{column}"] = theirs[source].astype(float)
    table["extra_compile_s"] = table["compile_s"] - table["reference_compile_s"]
    table["saving_per_step_s"] = table["reference_step_time_s"] - table["step_time_s"]
    figures = ["compile_s", "step_time_s", "reference_compile_s", "reference_step_time_s"]
    found = [break_even_step(*row) for row in table[figures].itertuples(index=False)]
    table["break_even_steps"] = pd.Series([steps for steps, _ in found], dtype=float)
    epoch_steps = _numbers(mine, "steps_per_epoch")
    table["break_even_epochs"] = (table["break_even_steps"] / epoch_steps).where(epoch_steps > 0)
    table["break_even_s"] = table["compile_s"] + table["break_even_steps"] * table["step_time_s"]
    table["outcome"] = pd.Series([outcome for _, outcome in found], dtype=object)
    return table


def train_time_s(
    epochs: int,
    *,
    build_s: float,
    first_step_s: float,
    step_time_s: float,
    steps_per_epoch: float,
    fit_setup_s: float = 0.0,
    epoch_end_s: float = 0.0,
) -> Any:
    """Set-up + compile + ``epochs`` epochs from a cold start, in seconds (figures or
    columns of them): build_s + fit_setup_s + first_step_s + (epochs * steps_per_epoch - 1) *
    step_time_s + epochs * epoch_end_s."""
    fit_setup_s = np.where(np.isfinite(fit_setup_s), fit_setup_s, 0.0)
    epoch_end_s = np.where(np.isfinite(epoch_end_s), np.maximum(epoch_end_s, 0.0), 0.0)
    steps = epochs * steps_per_epoch
    total = build_s + fit_setup_s + first_step_s + (steps - 1) * step_time_s
    return total + epochs * epoch_end_s


def time_to_train(
    cells: pd.DataFrame, processes: pd.DataFrame, epochs: int = DEFAULT_EPOCHS
) -> pd.DataFrame:
    """Time to train ``epochs`` epochs per ok cell (:func:`train_time_s`) and its parts:
    setup_s (build + the loop's set-up call), first_step_s, steps_s (the other steps with
    their per-epoch costs); NaN where a figure is missing."""
    names = list(TIME_TO_TRAIN_FIGURES)
    ok = ok_cells(cells).reset_index(drop=True)
    table = ok[list(GROUP_KEYS)].copy()
    for name in names:
        table[name] = _numbers(ok, name)
    if not processes.empty and set(names) <= set(processes.columns):
        medians = processes.groupby(list(GROUP_KEYS), sort=False)[names].median()
        found = medians.reindex(pd.MultiIndex.from_frame(table[list(GROUP_KEYS)]))
        table[names] = table[names].fillna(found.set_axis(table.index))
    # only some loops have a set-up call and epoch ends (Keras's): 0 where absent
    table[["fit_setup_s", "epoch_end_s"]] = table[["fit_setup_s", "epoch_end_s"]].fillna(0.0)
    # an epoch's steps depend on the data and the batch only: a loop that did not record
    # them (older runs did for some loops) has its setting's
    setting = table.groupby(list(RUN_SETTING_KEYS), sort=False, dropna=False)
    table["steps_per_epoch"] = table["steps_per_epoch"].fillna(
        setting["steps_per_epoch"].transform("first")
    )
    table["step_time_median_s"] = ok["step_time_median_s"].astype(float)
    step_time_s = table["step_time_median_s"]
    total = train_time_s(epochs, **{name: table[name] for name in names}, step_time_s=step_time_s)
    table["epochs"] = epochs
    table["steps"] = epochs * table["steps_per_epoch"]
    table["setup_s"] = table["build_s"] + table["fit_setup_s"]
    table["steps_s"] = total - table["setup_s"] - table["first_step_s"]
    table["time_to_train_s"] = total
    return table


def throughput(cells: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell: achieved FLOP/s on the steady step, and MFU per replica in the cell's
    compute dtype (docs/methodology.md, "MFU")::

        MFU = (model FLOPs per step / replicas) / step time / peak of a replica's device

    A replica's device peak is the run's probe peak of one physical device in the dtype
    the cell computes in (bfloat16 for mixed_bfloat16), shared evenly by the replicas on
    that device (logical CPU devices, worker processes on one CPU): a replica on a GPU
    of its own has the GPU's peak; each of N replicas on one CPU has 1/N of the CPU's.
    No matching peak: MFU is NaN and ``mfu_note`` says why."""
    ok = ok_cells(cells)
    table = ok[list(GROUP_KEYS)].copy()
    table["model_flops_per_step"] = _numbers(ok, "model_flops_per_step")
    table["step_time_median_s"] = ok["step_time_median_s"].astype(float)
    table["achieved_flops_per_s"] = table["model_flops_per_step"] / table["step_time_median_s"]
    replicas = _numbers(ok, "replicas")
    table["replicas"] = replicas
    table["flops_per_replica"] = table["model_flops_per_step"] / replicas
    table["peak_dtype"] = ok["peak_dtype"]
    table["peak_matmul_flops"] = ok["peak_matmul_flops"].astype(float)
    table["replicas_per_device"] = replicas / _numbers(ok, "replica_physical_devices")
    table["replica_peak_flops"] = table["peak_matmul_flops"] / table["replicas_per_device"]
    per_replica = table["flops_per_replica"] / table["step_time_median_s"]
    table["mfu"] = per_replica / table["replica_peak_flops"]
    table["mfu_note"] = ok["peak_note"].where(table["mfu"].isna())
    return table.reset_index(drop=True)


#: What :func:`throughput` adds to the report's cells.
THROUGHPUT_COLUMNS = [
    "achieved_flops_per_s",
    "flops_per_replica",
    "replicas_per_device",
    "replica_peak_flops",
    "mfu",
    "mfu_note",
]

#: The columns of :func:`crossovers` after the run's setting keys.
CROSSOVER_COLUMNS = (
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
)


def _log_interpolated(
    grid: np.ndarray, overheads: np.ndarray, index: int, threshold: float
) -> float:
    """Where the overhead, linear in log2 of the axis, meets the threshold between
    grid[index - 1] and grid[index]; NaN unless the crossover is inside the grid."""
    if not 0 < index < len(grid):
        return math.nan
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
    """Smallest ``axis`` value (batch_size or width) from which a loop's overhead against
    its reference (steady step ratio - 1) stays under ``threshold`` at every larger grid
    point, per setting without the two sweep keys; ``outcome`` "from", "always" or "never".

    Example::

        crossovers(run_set.cells, crossover_pairs(run_set.ladder), axis="batch_size")
    """
    if axis not in ("batch_size", "width"):
        raise ValueError(f"axis must be batch_size or width, not {axis!r}")
    fixed_key = "width" if axis == "batch_size" else "batch_size"
    setting = [k for k in RUN_SETTING_KEYS if k not in ("batch_size", "width")]
    rows = compare(ok_cells(cells), "loop", against_each(pairs), figure="steady", keys=GROUP_KEYS)
    out = []
    for values, group in rows.groupby([*setting, fixed_key], sort=True):
        for loop, reference in pairs:
            line = group[(group["loop"] == loop) & (group["against_loop"] == reference)]
            if len(line) < 2:
                continue
            line = line.sort_values(axis)
            grid = line[axis].to_numpy(dtype=float)
            overheads = (line["value"] / line["against_value"] - 1.0).to_numpy(dtype=float)
            under = overheads < threshold
            # the first index from which every larger grid point is under the threshold
            start = len(grid)
            while start > 0 and under[start - 1]:
                start -= 1
            outcome = "never" if start == len(grid) else "always" if start == 0 else "from"
            keys = dict(zip(setting, values[:-1], strict=True))
            keys["steps_per_call"] = int(keys["steps_per_call"])
            sweep = (fixed_key, int(values[-1]), axis, loop, reference, threshold, outcome)
            at = (math.nan, math.nan) if outcome == "never" else (grid[start], overheads[start])
            interpolated = _log_interpolated(grid, overheads, start, threshold)
            shape = (tuple(int(value) for value in grid), tuple(float(o) for o in overheads))
            out.append((*keys.values(), *sweep, at[0], interpolated, at[1], *shape))
    return pd.DataFrame(out, columns=[*setting, *CROSSOVER_COLUMNS])


#: The columns of :func:`run_comparison`.
RUN_COMPARISON_COLUMNS = (
    "baseline",
    RUN_KEY,
    *(key for key in GROUP_KEYS if key not in (RUN_KEY, "device")),
    "baseline_device",
    "device",
    *SPEEDUP,
)


def run_comparison(cells: pd.DataFrame, processes: pd.DataFrame) -> pd.DataFrame:
    """Each later run against the first, cell by cell, on the steady step: the core's
    rows as a speedup (above 1: the later run is faster) with its CI. Where each of the
    two runs has a single device, the device varies too ("cpu vs gpu")."""
    ok = ok_cells(cells)
    runs = list(dict.fromkeys(cells[RUN_KEY]))
    names = {"against_run": "baseline", "against_device": "baseline_device", **AS_SPEEDUP}
    parts = []
    for other in runs[1:]:
        both = ok[ok[RUN_KEY].isin([runs[0], other])]
        devices = [set(both.loc[both[RUN_KEY] == run, "device"]) for run in (runs[0], other)]
        if all(len(found) == 1 for found in devices):  # the cpu cell against the gpu cell
            (base_device,), (other_device,) = devices
            vary = (RUN_KEY, "device")
            rule = against_each([((other, other_device), (runs[0], base_device))])
        else:
            vary, rule = RUN_KEY, against(runs[0])
        rows = compare(both, vary, rule, samples=processes, figure="steady", keys=GROUP_KEYS)
        if "against_device" not in rows:
            rows["against_device"] = rows["device"]
        parts.append(rows.rename(columns=names)[list(RUN_COMPARISON_COLUMNS)])
    if not parts:
        return pd.DataFrame(columns=RUN_COMPARISON_COLUMNS)
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Derived:
    """Every derived table of a RunSet. ``cells``: one row per (run, cell) in ladder
    order, with process statistics, the SPEEDUP_COLUMNS (in place of summary.csv's
    speedup_vs_fit), time to train, FLOP/s and its equivalence reference's loss."""

    run_set: RunSet
    cells: pd.DataFrame
    speedups: pd.DataFrame
    break_even: pd.DataFrame
    crossovers: pd.DataFrame
    run_comparison: pd.DataFrame
    time_to_train: pd.DataFrame
    epochs: int = DEFAULT_EPOCHS
    #: the band of no practical difference (1 +- this) a claim's interval must clear
    threshold: float = DEFAULT_THRESHOLD
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def ladder(self) -> Ladder | None:
        return self.run_set.ladder

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per report (rows a section's tables and sentences share)."""
        if name not in self.memo:
            self.memo[name] = make()
        return self.memo[name]


def equal_work_reference(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with the loop and the equal-work loss of each setting's
    ``equivalence_reference`` cell (None/NaN where a run recorded none)."""
    marked = cells.get("equivalence_reference", pd.Series(False, index=cells.index))
    references = cells[marked.isin([True, "True"]) & (cells["status"] == "ok")]
    found = references[list(RUN_SETTING_KEYS)].assign(
        reference_equal_work_loop=references["loop"],
        reference_equal_work_loss=_numbers(references, "equal_work_loss"),
    )
    found = found.drop_duplicates(list(RUN_SETTING_KEYS), keep="last")
    cells = cells.merge(found, on=list(RUN_SETTING_KEYS), how="left")
    loops = cells["reference_equal_work_loop"].astype(object)
    return cells.assign(reference_equal_work_loop=loops.where(loops.notna(), None))


def derive(run_set: RunSet, epochs: int = DEFAULT_EPOCHS) -> Derived:
    """Every derived table of a RunSet; the time to train is for ``epochs`` epochs."""
    ladder = run_set.ladder
    cells = run_set.cells.drop(columns=["speedup_vs_fit"]).merge(
        aggregate_processes(run_set.processes), on=list(GROUP_KEYS), how="left"
    )
    rules = {"reference": ladder_reference(ladder), "neighbour": ladder_neighbours(ladder)}
    parts = []
    for (kind, figure), names in SPEEDUP_COLUMNS.items():
        part = speedups(run_set.cells, run_set.processes, rules[kind], figure)
        parts.append(part)
        part = part[[*GROUP_KEYS, *SPEEDUP]].rename(columns=dict(zip(SPEEDUP, names, strict=True)))
        cells = cells.merge(part, on=list(GROUP_KEYS), how="left")
    long_speedups = pd.concat(parts, ignore_index=True).drop_duplicates(
        [*GROUP_KEYS, "reference", "figure"]
    )
    neighbours = dict(ladder.neighbours()) if ladder is not None else {}
    cells["neighbour"] = cells["loop"].map(neighbours.get)
    trained = time_to_train(run_set.cells, run_set.processes, epochs)
    for table, columns in (
        (throughput(run_set.cells), THROUGHPUT_COLUMNS),
        (trained, ["time_to_train_s"]),
    ):
        cells = cells.merge(table[[*GROUP_KEYS, *columns]], on=list(GROUP_KEYS), how="left")
    cells = equal_work_reference(cells)
    ranks = {loop: i for i, loop in enumerate(loop_order(ladder, cells["loop"]))}
    cells["loop_rank"] = cells["loop"].map(ranks)
    cells = (
        cells.sort_values([*RUN_SETTING_KEYS, "loop_rank"], kind="stable")
        .drop(columns="loop_rank")
        .reset_index(drop=True)
    )
    pairs = crossover_pairs(ladder)
    sweeps = [crossovers(run_set.cells, pairs, axis) for axis in ("batch_size", "width")]
    # break-even in epochs: an epoch's steps as the time to train found them
    epoch_cells = run_set.cells.drop(columns=["steps_per_epoch"], errors="ignore").merge(
        trained[[*GROUP_KEYS, "steps_per_epoch"]], on=list(GROUP_KEYS), how="left"
    )
    return Derived(
        run_set=run_set,
        cells=cells,
        speedups=long_speedups.reset_index(drop=True),
        break_even=break_even(epoch_cells, rules["neighbour"]),
        crossovers=pd.concat(sweeps, ignore_index=True),
        run_comparison=run_comparison(run_set.cells, run_set.processes),
        time_to_train=trained,
        epochs=epochs,
    )


#: The derived-table functions; a test checks each returns rows on good input.
DERIVED_TABLES: dict[str, Callable[[RunSet], pd.DataFrame]] = {
    "speedups_vs_reference": lambda rs: speedups(
        rs.cells, rs.processes, ladder_reference(rs.ladder)
    ),
    "steady_speedups_vs_reference": lambda rs: speedups(
        rs.cells, rs.processes, ladder_reference(rs.ladder), "steady"
    ),
    "speedups_vs_neighbour": lambda rs: speedups(
        rs.cells, rs.processes, ladder_neighbours(rs.ladder)
    ),
    "break_even": lambda rs: break_even(rs.cells, ladder_neighbours(rs.ladder)),
    "time_to_train": lambda rs: time_to_train(rs.cells, rs.processes),
    "throughput": lambda rs: throughput(rs.cells),
    "crossovers_batch_size": lambda rs: crossovers(
        rs.cells, crossover_pairs(rs.ladder), "batch_size"
    ),
    "crossovers_width": lambda rs: crossovers(rs.cells, crossover_pairs(rs.ladder), "width"),
    "run_comparison": lambda rs: run_comparison(rs.cells, rs.processes),
}
