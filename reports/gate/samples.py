"""The gate's samples: one per worker process, by cell; within-run ratios for runs of
different machines, drift correction for an interleaved A/B (docs/gate.md)::

    per_cell(process_samples(load_run("results/RUN")), "step_time_s")  # {CellKey: array}
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import CELL_KEYS, RUN_KEY, against, pair
from tf_loopbench.reports.gate.stats import block_disturbance
from tf_loopbench.reports.rundir import AB_MARK, SAMPLES_FILE, CellKey, Run


class IncomparableRunsError(Exception):
    """Two runs that cannot be compared; the message is one line fit to show as is."""


def sort_cells(cells: Iterable[tuple]) -> list[CellKey]:
    """Cells in the gate's order (by their printed form), each as a CellKey."""
    return [CellKey(*cell) for cell in sorted(cells, key=lambda cell: repr(tuple(cell)))]


def with_cell(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(cell=[CellKey.of(row) for row in frame.to_dict("records")])


def process_samples(run: Run) -> pd.DataFrame:
    """The run's ok per-process samples with a ``cell`` column, each step_time_s its
    fastest timed window (load only adds time to a window; a process without window rows
    keeps its own figure). Raises IncomparableRunsError if an ok process has no finite
    positive step time: judging a damaged run would hide that.
    """
    rows = run.process_samples()
    if rows.empty:
        return with_cell(pd.DataFrame(columns=["process", "step_time_s"]))
    if "step_time_s" not in rows.columns:
        raise IncomparableRunsError(f"{run.path / SAMPLES_FILE}: process rows without step_time_s")
    rows, windows = with_cell(rows), with_cell(run.samples[run.samples["kind"] == "window"])
    step_times = pd.to_numeric(windows["step_time_s"], errors="coerce")
    fastest = step_times.groupby([windows["cell"], windows["process"]], sort=False).min()
    found = [fastest.get(key, np.nan) for key in zip(rows["cell"], rows["process"], strict=True)]
    rows = rows.assign(step_time_s=np.where(np.isfinite(found), found, rows["step_time_s"]))
    step_times = pd.to_numeric(rows["step_time_s"], errors="coerce")
    bad = ~(np.isfinite(step_times) & (step_times > 0))
    if bad.any():
        raise IncomparableRunsError(
            f"{run.path / SAMPLES_FILE}: {int(bad.sum())} ok process sample(s) have a NaN or "
            f"non-positive step_time_s (first in {rows.loc[bad, 'cell'].iloc[0].name})"
        )
    return rows.assign(step_time_s=step_times)


def per_cell(samples: pd.DataFrame, column: str) -> dict[CellKey, np.ndarray]:
    """``column`` of the samples (numbers; others dropped) grouped by cell."""
    if column not in samples.columns or samples.empty:
        return {}
    values = samples.assign(value=pd.to_numeric(samples[column], errors="coerce"))
    return {
        CellKey(*cell): group["value"].dropna().to_numpy(dtype=float)
        for cell, group in values.groupby("cell", sort=False)
    }


def _cell_frame(sides: list[tuple[str, CellKey]]) -> pd.DataFrame:
    return pd.DataFrame([{RUN_KEY: run, **cell._asdict()} for run, cell in sides])


def paired_cells(baseline: Iterable[CellKey], current: Iterable[CellKey]) -> list[CellKey]:
    """The cells of ``current`` that have a cell of ``baseline`` to be judged against, in
    the gate's order: the comparison core pairs them along the run, every cell key a key
    of its own (``reports.compare.pair``)."""
    sides = [("baseline", c) for c in dict.fromkeys(baseline)]
    sides += [("current", c) for c in dict.fromkeys(current)]
    if not sides:
        return []
    pairs = pair(_cell_frame(sides), RUN_KEY, against("baseline"), keys=(RUN_KEY, *CELL_KEYS))
    return sort_cells(sides[row][1] for row in pairs["subject_row"])


def within_run_ratio_samples(samples: pd.DataFrame, reference: str) -> dict[CellKey, np.ndarray]:
    """Per cell, each process's step time over that of the same index in the
    ``reference`` loop's cell of its setting, paired by the comparison core: one run,
    so the machine's speed cancels out (the reference's own cells are left out)."""
    if samples.empty:
        return {}
    by_process = samples.groupby(["cell", "process"], sort=False)["step_time_s"].median()
    times = [(CellKey(*c), s.droplevel("cell")) for c, s in by_process.groupby(level="cell")]
    cells = _cell_frame([("", cell) for cell, _ in times])
    ratios: dict[CellKey, np.ndarray] = {}
    for row in pair(cells, "loop", against(reference), keys=CELL_KEYS).itertuples():
        (cell, step_times), (_, reference_times) = times[row.subject_row], times[row.reference_row]
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


def measured_duet(baseline: Run, current: Run) -> bool:
    """Whether the two runs are the two sides of one duet A/B: each names the other as
    its partner, and process k of a cell ran on both sides at once, windows together."""
    marks = [run.metadata.get("soft", {}).get(AB_MARK) or {} for run in (baseline, current)]
    return (
        all(isinstance(mark, dict) and mark.get("mode") == "duet" for mark in marks)
        and marks[0].get("partner") == current.run_id
        and marks[1].get("partner") == baseline.run_id
    )


#: how a duet block's matched windows become its one number (docs/decisions/0011):
#: the median over windows of log(current / base), or log(fastest current / fastest base)
BLOCK_SUMMARIES = ("median", "fastest")
BLOCK_SUMMARY = "fastest"


def matched_windows(
    runs: tuple[Run, Run], samples: tuple[pd.DataFrame, pd.DataFrame]
) -> dict[tuple[CellKey, int], tuple[np.ndarray, np.ndarray]]:
    """A duet A/B's blocks, (cell, process k) -> the step times of the windows both ok
    processes timed (window k of both sides started together): (base, current)."""
    sides: list[dict[tuple, dict[int, float]]] = []
    for run, ok in zip(runs, samples, strict=True):
        kept = set(zip(ok["cell"], ok["process"], strict=True))
        windows = with_cell(run.samples[run.samples["kind"] == "window"])
        step_times = pd.to_numeric(windows["step_time_s"], errors="coerce")
        by_block: dict[tuple, dict[int, float]] = {}
        for cell, process, window, value in zip(
            windows["cell"], windows["process"], windows["window"], step_times, strict=True
        ):
            if (cell, process) in kept and np.isfinite(value) and value > 0:
                by_block.setdefault((cell, process), {})[int(window)] = float(value)
        sides.append(by_block)
    matched: dict[tuple[CellKey, int], tuple[np.ndarray, np.ndarray]] = {}
    for (cell, process), base in sides[0].items():
        current = sides[1].get((cell, process), {})
        both = sorted(set(base) & set(current))
        if both:
            matched[cell, int(process)] = (
                np.array([base[w] for w in both]),
                np.array([current[w] for w in both]),
            )
    return matched


def paired_blocks(
    runs: tuple[Run, Run], samples: tuple[pd.DataFrame, pd.DataFrame], summary: str = BLOCK_SUMMARY
) -> dict[CellKey, tuple[np.ndarray, np.ndarray]]:
    """A duet A/B's blocks, per cell in block order (process k of the cell on both sides,
    run at once), from the windows both ok processes timed (window k of both sides
    started together): each block's log ratio current / base, summarised by ``summary``
    (BLOCK_SUMMARIES), and its ``stats.block_disturbance`` (of the two sides' fastest
    windows)."""
    if summary not in BLOCK_SUMMARIES:
        raise ValueError(f"unknown block summary {summary!r}; choose from {BLOCK_SUMMARIES}")
    by_cell: dict[CellKey, list[tuple[int, float, float, float]]] = {}
    for (cell, block), (b, c) in matched_windows(runs, samples).items():
        ratio = np.median(np.log(c / b)) if summary == "median" else np.log(c.min() / b.min())
        by_cell.setdefault(cell, []).append((block, float(ratio), float(b.min()), float(c.min())))
    out = {}
    for cell, rows in by_cell.items():
        rows.sort()
        ratios, base, current = (np.array([row[i] for row in rows]) for i in (1, 2, 3))
        out[cell] = (ratios, block_disturbance(base, current))
    return out


def paired_log_ratios(
    runs: tuple[Run, Run], samples: tuple[pd.DataFrame, pd.DataFrame], summary: str = BLOCK_SUMMARY
) -> dict[CellKey, np.ndarray]:
    """A duet A/B's blocks' log ratios current / base, per cell in block order
    (:func:`paired_blocks`)."""
    return {cell: ratios for cell, (ratios, _) in paired_blocks(runs, samples, summary).items()}


def block_grid(
    samples: tuple[pd.DataFrame, pd.DataFrame], column: str = "step_time_s"
) -> tuple[list[CellKey], np.ndarray]:
    """The cells both sides hold and their ``column`` as a (cells, 2, blocks) array,
    block k = process k (NaN where a process or its value is missing)."""
    cells = paired_cells(samples[0]["cell"], samples[1]["cell"])
    blocks = sorted(set(samples[0]["process"]) | set(samples[1]["process"]))
    block_index = {block: i for i, block in enumerate(blocks)}
    cell_index = {cell: i for i, cell in enumerate(cells)}
    grid = np.full((len(cells), 2, len(blocks)), np.nan)
    for side, frame in enumerate(samples):
        values = pd.to_numeric(frame.get(column, pd.Series(np.nan, frame.index)), errors="coerce")
        for cell, process, value in zip(frame["cell"], frame["process"], values, strict=True):
            if cell in cell_index:
                grid[cell_index[cell], side, block_index[process]] = value
    return cells, grid


#: Pairs on either side in time that a pair's drift is read from (a pair: one cell's
#: process k on both sides, run back to back): ~half a minute of the 2-core VM.
DRIFT_NEIGHBOURS = 4


def local_drift_factors(step_times: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """The machine's drift around each pair of an interleaved A/B (docs/decisions/0006): of
    ``step_times`` (cells, 2, blocks), ordered by ``times`` (cells, blocks; any NaN or None: in
    block order), exp of the median log(sample / cell median) of the DRIFT_NEIGHBOURS pairs of
    *other* cells on either side, the same for both sides. Under 3 cells: factors of 1.

    >>> x = np.array([[[1.0] * 3 + [2.0] * 3] * 2] * 4)   # 4 cells; the last 3 blocks slow
    >>> local_drift_factors(x)[0, 0].round(3).tolist()     # cell 0 on either side
    [0.707, 0.707, 0.707, 1.0, 1.414, 1.414]
    """
    step_times = np.asarray(step_times, dtype=float)
    n_cells, _, n_blocks = step_times.shape
    if n_cells < 3:
        return np.ones_like(step_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: missing samples
        logs = np.log(step_times)
        relative = logs - np.nanmedian(logs, axis=(1, 2), keepdims=True)
        pair_values = relative.mean(axis=1)  # NaN unless both sides ran
    # pairs in the order they ran: by time where every time is known, else block by block
    in_block_order = (np.arange(n_blocks)[None, :] * n_cells + np.arange(n_cells)[:, None]).ravel()
    when = None if times is None else np.asarray(times, float).ravel()
    if when is not None and np.isfinite(when).all():
        order = np.lexsort((in_block_order, when))
    else:
        order = np.argsort(in_block_order, kind="stable")
    values, cells = pair_values.ravel()[order], np.repeat(np.arange(n_cells), n_blocks)[order]
    factors_in_order = np.ones(values.size)
    for position in range(values.size):
        low, high = max(0, position - DRIFT_NEIGHBOURS), position + DRIFT_NEIGHBOURS + 1
        window = values[low:high][cells[low:high] != cells[position]]
        window = window[np.isfinite(window)]
        if window.size:
            factors_in_order[position] = np.exp(np.median(window))
    factors = np.empty(values.size)
    factors[order] = factors_in_order
    return np.repeat(factors.reshape(n_cells, 1, n_blocks), 2, axis=1)


def pair_times(samples: tuple[pd.DataFrame, pd.DataFrame]) -> np.ndarray:
    """When each pair ran: the earlier ``started_at`` of its processes, (cells, blocks)."""
    _, starts = block_grid(samples, "started_at")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair with no time: NaN
        return np.nanmin(starts, axis=1) if starts.size else starts[:, 0]


def drift_corrected_samples(
    samples: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[dict[CellKey, np.ndarray], dict[CellKey, np.ndarray], np.ndarray]:
    """Both sides' step times over their pair's drift factor, and each block's median factor."""
    cells, grid = block_grid(samples)
    if not cells or not grid.size:
        return {}, {}, np.array([])
    factors = local_drift_factors(grid, pair_times(samples))
    corrected = grid / factors
    base, cur = (
        {cell: corrected[i, side][np.isfinite(corrected[i, side])] for i, cell in enumerate(cells)}
        for side in (0, 1)
    )
    return base, cur, np.median(factors, axis=(0, 1))
