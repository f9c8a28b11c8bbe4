"""The gate's samples: per-process step times by cell, and what is done to them first.

One statistical sample is one worker process (its timed windows already summarised
to a median). This module turns a run into samples per cell (:func:`process_samples`,
:func:`per_cell`) and offers the two transformations the gate may apply before
judging:

* **within-run ratios** (:func:`within_run_ratio_samples`), for runs from different
  machines: process k of a loop over process k of the ladder's reference loop in the
  same run, so the machine's speed cancels out;
* **drift correction** (:func:`drift_corrected_samples`), for the two sides of one
  interleaved same-job A/B (:func:`measured_interleaved`): block k holds process k
  of every cell on both sides, measured together (:func:`block_grid`); each sample
  is divided by its block's drift (:func:`drift_factors`), read from the other cells.

Example::

    from reports.rundir import load_run
    samples = process_samples(load_run("results/RUN"))
    per_cell(samples, "step_time_s")      # {CellKey: array of per-process step times}
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from reports.rundir import AB_MARK, CELL_KEYS, SAMPLES_FILE, CellKey, Run


class IncomparableRunsError(Exception):
    """Two runs that cannot be compared; the message is one line fit to show as is."""


def sort_cells(cells: Iterable[tuple]) -> list[CellKey]:
    """Cells in the gate's order (by their printed form), each as a CellKey."""
    return [CellKey(*cell) for cell in sorted(cells, key=lambda cell: repr(tuple(cell)))]


def with_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``cell`` column holding each row's CellKey."""
    frame = frame.copy()
    for key in CELL_KEYS:
        if key not in frame.columns:
            frame[key] = None
    frame["cell"] = [
        CellKey.of(dict(zip(CELL_KEYS, values, strict=True)))
        for values in frame[list(CELL_KEYS)].itertuples(index=False, name=None)
    ]
    return frame


def process_samples(run: Run) -> pd.DataFrame:
    """The run's ok per-process samples with a ``cell`` column; reject unusable ones.

    Raises IncomparableRunsError if an ok process has no finite positive step time:
    such a run was damaged and judging it would hide that.
    """
    rows = run.process_samples()
    if rows.empty:
        return with_cell(pd.DataFrame(columns=["process", "step_time_s"]))
    if "step_time_s" not in rows.columns:
        raise IncomparableRunsError(f"{run.path / SAMPLES_FILE}: process rows without step_time_s")
    step_times = pd.to_numeric(rows["step_time_s"], errors="coerce")
    bad = ~(np.isfinite(step_times) & (step_times > 0))
    if bad.any():
        first = with_cell(rows[bad].head(1))["cell"].iloc[0]
        raise IncomparableRunsError(
            f"{run.path / SAMPLES_FILE}: {int(bad.sum())} ok process sample(s) have a NaN or "
            f"non-positive step_time_s (first in {first.name})"
        )
    rows = rows.assign(step_time_s=step_times)
    return with_cell(rows)


def per_cell(samples: pd.DataFrame, column: str) -> dict[CellKey, np.ndarray]:
    """``column`` of the samples (numbers; others dropped) grouped by cell."""
    if column not in samples.columns or samples.empty:
        return {}
    values = samples.assign(value=pd.to_numeric(samples[column], errors="coerce"))
    return {
        CellKey(*cell): group["value"].dropna().to_numpy(dtype=float)
        for cell, group in values.groupby("cell", sort=False)
    }


def within_run_ratio_samples(samples: pd.DataFrame, reference: str) -> dict[CellKey, np.ndarray]:
    """Per cell, the step time of each process over the ``reference`` loop's process of
    the same index (the same workload, device, batch size and width).

    Both come from one run, so the machine's speed cancels out; process k of every
    loop style is paired with process k of the reference. The reference's cells
    themselves are left out: their ratio is 1 by definition.
    """
    if samples.empty:
        return {}
    by_process = samples.groupby(["cell", "process"], sort=False)["step_time_s"].median()
    per_cell_times: dict[CellKey, pd.Series] = {
        CellKey(*cell): series.droplevel("cell")
        for cell, series in by_process.groupby(level="cell")
    }
    ratios: dict[CellKey, np.ndarray] = {}
    for cell, step_times in per_cell_times.items():
        if cell.loop == reference:
            continue
        reference_times = per_cell_times.get(cell._replace(loop=reference))
        if reference_times is None:
            continue
        common = step_times.index.intersection(reference_times.index)
        if len(common):
            ratios[cell] = (step_times[common] / reference_times[common]).to_numpy(dtype=float)
    return ratios


def measured_interleaved(baseline: Run, current: Run) -> bool:
    """Whether the two runs are the two sides of one interleaved same-job A/B: each
    names the other as its partner, so process k of a cell ran on both sides together."""
    marks = [run.metadata.get("soft", {}).get(AB_MARK) or {} for run in (baseline, current)]
    return (
        all(isinstance(mark, dict) and mark.get("interleaved") is True for mark in marks)
        and marks[0].get("partner") == current.run_id
        and marks[1].get("partner") == baseline.run_id
    )


def block_grid(
    samples: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[list[CellKey], np.ndarray]:
    """The cells both sides hold and their step times as a (cells, 2, blocks) array,
    block k = process k (NaN where a process is missing or failed)."""
    cells = sort_cells(set(samples[0]["cell"]) & set(samples[1]["cell"]))
    blocks = sorted(set(samples[0]["process"]) | set(samples[1]["process"]))
    block_index = {block: i for i, block in enumerate(blocks)}
    cell_index = {cell: i for i, cell in enumerate(cells)}
    grid = np.full((len(cells), 2, len(blocks)), np.nan)
    for side, frame in enumerate(samples):
        for cell, process, step_time in zip(
            frame["cell"], frame["process"], frame["step_time_s"], strict=True
        ):
            if cell in cell_index:
                grid[cell_index[cell], side, block_index[process]] = step_time
    return cells, grid


def drift_factors(step_times: np.ndarray) -> np.ndarray:
    """The machine's drift, block by block, for samples measured interleaved.

    ``step_times`` has shape (..., cells, 2, blocks): block k holds process k of every
    cell on both sides, measured together (the same-job A/B runs them seconds apart),
    NaN where a process is missing. The factor of cell c in block k is the median,
    over the *other* cells and both sides, of each sample over its cell's median
    (both sides pooled): how much slower than usual the machine ran during block k,
    read from cells that cannot carry c's own change. Both sides of a block get the
    same factor, so dividing by it removes the drift common to all cells (a slow
    minute of a shared VM) and keeps any difference between the sides, including a
    change that slows every cell. Fewer than 3 cells: factors of 1.

    >>> x = np.array([[[1.0, 2.0], [1.0, 2.0]]] * 4)   # 4 cells, block 1 twice as slow
    >>> drift_factors(x)[0].round(3).tolist()
    [[0.667, 1.333], [0.667, 1.333]]
    """
    step_times = np.asarray(step_times, dtype=float)
    n_cells = step_times.shape[-3]
    if n_cells < 3:
        return np.ones_like(step_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: missing blocks
        relative = step_times / np.nanmedian(step_times, axis=(-2, -1), keepdims=True)
        factors = np.empty_like(step_times)
        for cell in range(n_cells):
            others = np.delete(relative, cell, axis=-3)
            factors[..., cell, :, :] = np.nanmedian(others, axis=(-3, -2))[..., None, :]
    return np.where(np.isfinite(factors), factors, 1.0)


def drift_corrected_samples(
    samples: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[dict[CellKey, np.ndarray], dict[CellKey, np.ndarray], np.ndarray]:
    """Per-process step times of both sides divided by the drift of their block
    (:func:`drift_factors`; block k = process k of every cell on both sides); also
    returns each block's median factor, for the note."""
    cells, grid = block_grid(samples)
    if not cells or not grid.size:
        return {}, {}, np.array([])
    factors = drift_factors(grid)
    corrected = grid / factors
    per_side = tuple(
        {cell: corrected[i, side][np.isfinite(corrected[i, side])] for i, cell in enumerate(cells)}
        for side in (0, 1)
    )
    return per_side[0], per_side[1], np.median(factors, axis=(0, 1))
