"""The regression gate: compare two run directories cell by cell and decide.

What it computes, per cell (workload, loop, device, batch_size, width):

* **step time**: the per-process samples of the baseline and the current run (one
  sample = one fresh worker process), a one-sided Mann-Whitney U test "current is
  slower", Holm-corrected across the cells compared, and an effect-size gate: the
  ratio of medians current/baseline beyond ``1 + threshold``. Both must hold for a
  *confirmed* regression. The ratio comes with a 95 % percentile-bootstrap interval.
  Each cell comes out ``slower``, ``faster``, ``unchanged`` (interval inside
  ±threshold), ``inconclusive`` (too noisy, or too few samples for the exact test to
  ever reach the Holm-adjusted alpha: the table says how many are needed per side)
  or ``missing`` (no usable samples on one side). The rule is in
  ``reports.gate_stats``.
* **flags** beside step time, each a regression too: a cell that newly fails (or
  whose processes newly fail), more retraces (median per process), and a
  compile-time regression: median compile_s up by more than ``threshold`` AND by
  more than ``COMPILE_FLOOR_S`` seconds AND confirmed by the same one-sided test,
  Holm-corrected across cells (per-process compile times vary by a second on a
  busy 2-core machine, so a difference of medians alone would raise false alarms).

Runs from different machines (any "hard" metadata key differs) are not compared,
unless ``allow_different_machines``: then each run's step times become within-run
ratios to ``fit`` (process k of a loop over process k of fit, same run), which carry
across machines; the absolute times and compile times do not, and are not judged.

Exit status of :func:`command` / ``python -m reports.compare``: 0 no confirmed
regression, 1 a confirmed regression, 2 the runs cannot be compared (one line on
stderr naming why).

Run it::

    python -m reports.compare BASELINE_RUN CURRENT_RUN --markdown compare.md

The same-job A/B driver ``benchmarks/ab.py`` feeds it the two sides of one A/B.
When both runs say they are the two sides of one A/B interleaved worker by worker
(``soft.ab``: each names the other), process k of every cell ran on both sides
within the same minute or so, and the gate first takes out the machine's drift:
each sample is divided by its block's factor (``gate_stats.drift_factors``: how
much slower than usual the *other* cells ran in block k, both sides pooled). Both
sides of a block get the same factor, so a real difference between them, even one
that slows every cell, stays; the drift of a shared VM within the A/B (on this
machine +-5-10 % from minute to minute) goes. The table's medians are then the
corrected ones, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import gate_stats
from reports.rundir import (
    CELL_KEYS,
    SAMPLES_FILE,
    Run,
    RunDirError,
    atomic_write_text,
    load_run,
)

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01

#: A compile-time change smaller than this (seconds) is never flagged, whatever its
#: percentage: tracing a small model takes well under a second and varies by tens of
#: milliseconds from process to process with the load of the machine.
COMPILE_FLOOR_S = 0.5

#: The loop style whose step time is the denominator of within-run ratios.
REFERENCE_LOOP = "fit"

#: Soft metadata keys that differ between any two runs and say nothing about them.
AB_MARK = "ab"  # soft metadata the same-job A/B leaves on both sides (benchmarks/ab.py)
IGNORED_SOFT_KEYS = frozenset({"started_at", "ended_at", "command", "merged_from", AB_MARK})

VERDICTS = ("slower", "faster", "unchanged", "inconclusive", "missing", "reference")

#: A cell: its CELL_KEYS values (plus width), NaN widths normalised to 0.
Cell = tuple


class IncomparableRunsError(Exception):
    """Two runs that cannot be compared; the message is one line fit to show as is."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CellComparison:
    """The gate's judgement of one cell."""

    cell: Cell
    verdict: str
    note: str = ""
    n_baseline: int = 0
    n_current: int = 0
    baseline_median: float = float("nan")
    current_median: float = float("nan")
    ratio: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    p_value: float = float("nan")  # one-sided "slower", raw
    p_adjusted: float = float("nan")  # Holm across cells
    flags: tuple[str, ...] = ()

    @property
    def is_regression(self) -> bool:
        return self.verdict == "slower" or bool(self.flags)


@dataclass(frozen=True)
class Comparison:
    """Everything the gate found comparing two runs. ``exit_status`` is the verdict."""

    baseline: Run
    current: Run
    cell_keys: tuple[str, ...]
    cells: tuple[CellComparison, ...]
    threshold: float
    alpha: float
    within_run_ratios: bool
    hard_differences: tuple[str, ...] = ()
    soft_differences: tuple[str, ...] = ()
    cells_skipped_in_both: int = 0
    notes: tuple[str, ...] = field(default=())
    #: step times divided by their block's drift (an interleaved A/B; see drift_factors)
    drift_corrected: bool = False

    @property
    def regressions(self) -> tuple[CellComparison, ...]:
        return tuple(cell for cell in self.cells if cell.is_regression)

    @property
    def exit_status(self) -> int:
        return 1 if self.regressions else 0

    @property
    def n_tested(self) -> int:
        return sum(1 for cell in self.cells if not math.isnan(cell.p_value))

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: the cell keys, verdict, figures and flags."""
        rows = []
        for cell in self.cells:
            row = dict(zip(self.cell_keys, cell.cell, strict=True))
            row.update(
                verdict=cell.verdict,
                ratio=cell.ratio,
                ci_low=cell.ci_low,
                ci_high=cell.ci_high,
                p_value=cell.p_value,
                p_adjusted=cell.p_adjusted,
                n_baseline=cell.n_baseline,
                n_current=cell.n_current,
                baseline_median=cell.baseline_median,
                current_median=cell.current_median,
                flags="; ".join(cell.flags),
                note=cell.note,
            )
            rows.append(row)
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- reading


def cell_keys_of() -> tuple[str, ...]:
    """CELL_KEYS, plus ``width`` when the contract does not list it yet."""
    keys = list(CELL_KEYS)
    if "width" not in keys:
        keys.append("width")
    return tuple(keys)


def _key_value(key: str, value: Any) -> Any:
    if key == "width" and (value is None or (isinstance(value, float) and math.isnan(value))):
        return 0
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _with_cell(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``frame`` with a ``cell`` column holding each row's normalised cell tuple."""
    frame = frame.copy()
    for key in keys:
        if key not in frame.columns:
            frame[key] = None
    frame["cell"] = [
        tuple(_key_value(key, value) for key, value in zip(keys, values, strict=True))
        for values in frame[list(keys)].itertuples(index=False, name=None)
    ]
    return frame


def cell_label(cell: Cell, keys: Sequence[str] = ()) -> str:
    """A short name for a cell, e.g. ``mlp/xla/cpu/bs64/w256``."""
    named = dict(zip(keys or cell_keys_of(), cell, strict=False))
    parts = [str(named.get(k, "?")) for k in ("workload", "loop", "device")]
    parts.append(f"bs{named.get('batch_size', '?')}")
    if named.get("width"):
        parts.append(f"w{named['width']}")
    return "/".join(parts)


def process_samples(run: Run, keys: Sequence[str]) -> pd.DataFrame:
    """The run's ok per-process samples with a ``cell`` column; reject unusable ones.

    Raises IncomparableRunsError if an ok process has no finite positive step time:
    such a run was damaged and judging it would hide that.
    """
    rows = run.process_samples()
    if rows.empty:
        return _with_cell(pd.DataFrame(columns=["process", "step_time_s"]), keys)
    if "step_time_s" not in rows.columns:
        raise IncomparableRunsError(f"{run.path / SAMPLES_FILE}: process rows without step_time_s")
    step_times = pd.to_numeric(rows["step_time_s"], errors="coerce")
    bad = ~(np.isfinite(step_times) & (step_times > 0))
    if bad.any():
        first = _with_cell(rows[bad].head(1), keys)["cell"].iloc[0]
        raise IncomparableRunsError(
            f"{run.path / SAMPLES_FILE}: {int(bad.sum())} ok process sample(s) have a NaN or "
            f"non-positive step_time_s (first in {cell_label(first, keys)})"
        )
    rows = rows.assign(step_time_s=step_times)
    return _with_cell(rows, keys)


def cell_statuses(run: Run, keys: Sequence[str]) -> dict[Cell, str]:
    """Status per cell from summary.csv (ok, failed, skipped)."""
    summary = _with_cell(run.summary, keys)
    return dict(zip(summary["cell"], summary["status"].fillna("failed"), strict=True))


def _per_cell(samples: pd.DataFrame, column: str) -> dict[Cell, np.ndarray]:
    if column not in samples.columns or samples.empty:
        return {}
    values = samples.assign(value=pd.to_numeric(samples[column], errors="coerce"))
    return {
        cell: group["value"].dropna().to_numpy(dtype=float)
        for cell, group in values.groupby("cell", sort=False)
    }


@dataclass(frozen=True)
class SideFacts:
    """What one run says per cell beside step time: status, failures, retraces, compile."""

    statuses: dict[Cell, str]
    failed_processes: dict[Cell, int]
    first_errors: dict[Cell, str]
    retraces: dict[Cell, np.ndarray]
    compile_times: dict[Cell, np.ndarray]

    @classmethod
    def of(cls, run: Run, ok_samples: pd.DataFrame, keys: Sequence[str]) -> SideFacts:
        samples = run.samples
        failed = samples.iloc[0:0]
        if not samples.empty and "status" in samples.columns:
            failed = _with_cell(
                samples[(samples["kind"] == "process") & (samples["status"] == "failed")], keys
            )
        errors = failed.dropna(subset=["error"]) if "error" in failed.columns else failed.iloc[0:0]
        return cls(
            statuses=cell_statuses(run, keys),
            failed_processes=failed.groupby("cell").size().to_dict() if len(failed) else {},
            first_errors=errors.groupby("cell")["error"].first().astype(str).to_dict()
            if len(errors)
            else {},
            retraces=_per_cell(ok_samples, "retraces"),
            compile_times=_per_cell(ok_samples, "compile_s"),
        )


def within_run_ratio_samples(samples: pd.DataFrame, keys: Sequence[str]) -> dict[Cell, np.ndarray]:
    """Per cell, the step time of each process over fit's process of the same index.

    Both come from one run, so the machine's speed cancels out; process k of every
    loop style is paired with process k of fit (in the same cell group). The fit cells
    themselves are left out: their ratio is 1 by definition.
    """
    if samples.empty:
        return {}
    loop_position = list(keys).index("loop")
    by_process = samples.groupby(["cell", "process"], sort=False)["step_time_s"].median()
    per_cell: dict[Cell, pd.Series] = {
        cell: series.droplevel("cell") for cell, series in by_process.groupby(level="cell")
    }
    ratios: dict[Cell, np.ndarray] = {}
    for cell, step_times in per_cell.items():
        if cell[loop_position] == REFERENCE_LOOP:
            continue
        reference_cell = cell[:loop_position] + (REFERENCE_LOOP,) + cell[loop_position + 1 :]
        reference = per_cell.get(reference_cell)
        if reference is None:
            continue
        common = step_times.index.intersection(reference.index)
        if len(common):
            ratios[cell] = (step_times[common] / reference[common]).to_numpy(dtype=float)
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
) -> tuple[list[Cell], np.ndarray]:
    """The cells both sides hold and their step times as a (cells, 2, blocks) array,
    block k = process k (NaN where a process is missing or failed)."""
    cells = sorted(set(samples[0]["cell"]) & set(samples[1]["cell"]), key=repr)
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


def drift_corrected_samples(
    samples: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[dict[Cell, np.ndarray], dict[Cell, np.ndarray], np.ndarray]:
    """Per-process step times of both sides divided by the drift of their block
    (``gate_stats.drift_factors``; block k = process k of every cell on both sides);
    also returns each block's median factor, for the note."""
    cells, grid = block_grid(samples)
    if not cells or not grid.size:
        return {}, {}, np.array([])
    factors = gate_stats.drift_factors(grid)
    corrected = grid / factors
    per_side = tuple(
        {
            cell: corrected[i, side][np.isfinite(corrected[i, side])]
            for i, cell in enumerate(cells)
        }
        for side in (0, 1)
    )
    return per_side[0], per_side[1], np.median(factors, axis=(0, 1))


# --------------------------------------------------------------------------- metadata


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _short(value: Any, width: int = 24) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def metadata_differences(
    baseline: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """``key: baseline -> current`` for each (flattened) key whose value differs."""
    ignored = set(ignore)
    flat_baseline, flat_current = _flatten(baseline), _flatten(current)
    differences = []
    for key in sorted(set(flat_baseline) | set(flat_current)):
        if key.split(".")[0] in ignored:
            continue
        old, new = flat_baseline.get(key), flat_current.get(key)
        if old != new:
            differences.append(f"{key}: {_short(old)} -> {_short(new)}")
    return differences


# --------------------------------------------------------------------------- judging


def judge_step_times(
    baseline: Mapping[Cell, np.ndarray],
    current: Mapping[Cell, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
) -> dict[Cell, CellComparison]:
    """The step-time verdict of every cell that has samples on both sides.

    ``baseline`` and ``current`` map a cell to its per-process samples (seconds, or
    within-run ratios). The Holm family is the set of cells judged here.
    """
    tested = [
        cell for cell in baseline if cell in current and len(baseline[cell]) and len(current[cell])
    ]
    if not tested:
        return {}
    p_slower = np.array(
        [gate_stats.one_sided_mwu_p(baseline[c], current[c], "greater") for c in tested]
    )
    p_faster = np.array(
        [gate_stats.one_sided_mwu_p(baseline[c], current[c], "less") for c in tested]
    )
    # slow-downs decide the exit status; speed-ups are a separate, reported-only family
    p_slower_adjusted = gate_stats.holm_adjust(p_slower)
    p_faster_adjusted = gate_stats.holm_adjust(p_faster)
    first_step_alpha = alpha / len(tested)  # the level Holm holds the smallest p to
    needed_per_side = gate_stats.samples_needed_per_side(first_step_alpha)

    judged = {}
    for index, cell in enumerate(tested):
        base, cur = np.asarray(baseline[cell], float), np.asarray(current[cell], float)
        ratio = float(gate_stats.median_ratio(base, cur))
        ci_low, ci_high = gate_stats.ratio_of_medians_ci(base, cur)
        if gate_stats.confirmed_slower(p_slower_adjusted[index], ratio, alpha, threshold):
            verdict, note = "slower", ""
        elif gate_stats.confirmed_faster(p_faster_adjusted[index], ratio, alpha, threshold):
            verdict, note = "faster", ""
        elif gate_stats.smallest_one_sided_p(len(base), len(cur)) > first_step_alpha:
            verdict = "inconclusive"
            note = (
                f"too few samples ({len(base)} vs {len(cur)}): the exact test cannot reach "
                f"the Holm level {first_step_alpha:.2g}; need {needed_per_side} per side"
            )
        elif 1 - threshold <= ci_low and ci_high <= 1 + threshold:
            verdict, note = "unchanged", ""
        else:
            verdict = "inconclusive"
            note = f"too noisy: 95% CI {ci_low:.3f}-{ci_high:.3f} reaches beyond ±{threshold:.0%}"
        judged[cell] = CellComparison(
            cell=cell,
            verdict=verdict,
            note=note,
            n_baseline=len(base),
            n_current=len(cur),
            baseline_median=float(np.median(base)),
            current_median=float(np.median(cur)),
            ratio=ratio,
            ci_low=ci_low,
            ci_high=ci_high,
            p_value=float(p_slower[index]),
            p_adjusted=float(p_slower_adjusted[index]),
        )
    return judged


def _median(values: np.ndarray | None) -> float:
    return float(np.median(values)) if values is not None and len(values) else float("nan")


def compile_time_p_values(baseline: SideFacts, current: SideFacts) -> dict[Cell, float]:
    """Holm-adjusted p-values that a cell compiles slower, over cells timed on both sides."""
    cells = [
        cell
        for cell, times in current.compile_times.items()
        if len(times) and len(baseline.compile_times.get(cell, ()))
    ]
    if not cells:
        return {}
    p_values = np.array(
        [
            gate_stats.one_sided_mwu_p(baseline.compile_times[cell], current.compile_times[cell])
            for cell in cells
        ]
    )
    return dict(zip(cells, gate_stats.holm_adjust(p_values), strict=True))


def cell_flags(
    cell: Cell,
    baseline: SideFacts,
    current: SideFacts,
    threshold: float,
    alpha: float,
    compile_p_adjusted: Mapping[Cell, float] | None = None,
) -> tuple[str, ...]:
    """Regressions beside step time: new failures, more retraces, slower compilation.

    ``compile_p_adjusted`` holds the Holm-adjusted p-values of "compiles slower"
    (:func:`compile_time_p_values`); None leaves compile time unjudged.
    """
    flags = []
    baseline_status, current_status = baseline.statuses.get(cell), current.statuses.get(cell)
    error = current.first_errors.get(cell, "")
    because = f": {_short(error, 60)}" if error else ""
    if current_status == "failed" and baseline_status != "failed":
        before = f"was {baseline_status}" if baseline_status else "new cell"
        flags.append(f"newly fails ({before}){because}")
    elif current.failed_processes.get(cell, 0) and not baseline.failed_processes.get(cell, 0):
        flags.append(f"{current.failed_processes[cell]} process(es) newly failed{because}")
    old_retraces = _median(baseline.retraces.get(cell))
    new_retraces = _median(current.retraces.get(cell))
    if new_retraces > old_retraces:  # NaN on either side compares False
        flags.append(f"retraces {old_retraces:g} -> {new_retraces:g}")
    if compile_p_adjusted is not None and cell in compile_p_adjusted:
        old_compile = _median(baseline.compile_times.get(cell))
        new_compile = _median(current.compile_times.get(cell))
        p_adjusted = compile_p_adjusted[cell]
        if (
            new_compile > old_compile * (1 + threshold)
            and new_compile - old_compile > COMPILE_FLOOR_S
            and p_adjusted <= alpha
        ):
            flags.append(f"compile {old_compile:.2f}s -> {new_compile:.2f}s (p {p_adjusted:.2g})")
    return tuple(flags)


def _missing_note(
    cell: Cell,
    statuses: tuple[dict[Cell, str], dict[Cell, str]],
    has_samples: tuple[bool, bool],
    ratios: bool,
) -> str:
    for side, status, present in zip(
        ("baseline", "current"),
        (statuses[0].get(cell), statuses[1].get(cell)),
        has_samples,
        strict=True,
    ):
        if status is None and not present:
            return f"not in the {side} run"
        if status in ("failed", "skipped"):
            return f"{status} in the {side} run"
        if not present:
            what = f"{REFERENCE_LOOP}-paired samples" if ratios else "ok samples"
            return f"no {what} in the {side} run"
    return ""


def machine_speed_notes(baseline: Run, current: Run, threshold: float) -> list[str]:
    """A warning per device whose measured peak speed (soft.peak_matmul_flops) moved by
    more than ``threshold`` between the runs: the machine was loaded differently, and
    step times of separate runs then differ for reasons other than the code."""
    notes = []
    peaks = [
        run.metadata.get("soft", {}).get("peak_matmul_flops") or {} for run in (baseline, current)
    ]
    if not all(isinstance(peak, Mapping) for peak in peaks):
        return notes
    for device in sorted(set(peaks[0]) & set(peaks[1])):
        old, new = peaks[0][device], peaks[1][device]
        numbers = all(isinstance(v, int | float) and v > 0 for v in (old, new))
        if numbers and abs(new / old - 1) > threshold:
            notes.append(
                f"warning: {device} peak matmul speed {old / 1e9:.0f} -> {new / 1e9:.0f} "
                f"GFLOP/s (x{new / old:.2f}): the machine's load differed between the runs"
            )
    return notes


def compare(
    baseline_dir: str | os.PathLike[str],
    current_dir: str | os.PathLike[str],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    allow_different_machines: bool = False,
) -> Comparison:
    """Judge every cell of ``current_dir`` against ``baseline_dir``.

    Raises RunDirError or IncomparableRunsError (one-line messages) when the two
    cannot be compared. Example::

        result = compare("results/base", "results/head")
        print(render_text(result)); raise SystemExit(result.exit_status)
    """
    if not 0 < alpha < 1:
        raise IncomparableRunsError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 <= threshold < 1:
        raise IncomparableRunsError(f"threshold must be in [0, 1), got {threshold}")
    baseline_path, current_path = Path(baseline_dir), Path(current_dir)
    if baseline_path.exists() and baseline_path.resolve() == current_path.resolve():
        raise IncomparableRunsError(f"{baseline_path}: a run cannot be compared with itself")
    baseline, current = load_run(baseline_path), load_run(current_path)
    if baseline.run_id == current.run_id:
        raise IncomparableRunsError(
            f"{baseline_path} and {current_path} are the same run (run_id {baseline.run_id})"
        )
    hard_differences = tuple(
        metadata_differences(baseline.metadata.get("hard", {}), current.metadata.get("hard", {}))
    )
    if hard_differences and not allow_different_machines:
        raise IncomparableRunsError(
            "runs come from different machines, their times do not compare ("
            + "; ".join(hard_differences)
            + "); pass --allow-different-machines to compare within-run ratios to fit"
        )
    soft_differences = tuple(
        metadata_differences(
            baseline.metadata.get("soft", {}), current.metadata.get("soft", {}), IGNORED_SOFT_KEYS
        )
    )

    keys = cell_keys_of()
    samples = (process_samples(baseline, keys), process_samples(current, keys))
    if samples[0].empty and samples[1].empty:
        raise IncomparableRunsError(
            f"{baseline_path} and {current_path} hold no ok process samples"
        )
    facts = (SideFacts.of(baseline, samples[0], keys), SideFacts.of(current, samples[1], keys))
    drift_note = None
    if allow_different_machines:
        step_samples = tuple(within_run_ratio_samples(side, keys) for side in samples)
    elif measured_interleaved(baseline, current) and len(
        set(samples[0]["cell"]) & set(samples[1]["cell"])
    ) >= 3:
        *step_samples, block_factors = drift_corrected_samples(samples)
        step_samples = tuple(step_samples)
        drift_note = (
            "interleaved A/B: each process's step time is divided by its block's drift "
            "(process k of every other cell, both sides; gate_stats.drift_factors): "
            f"block factors {block_factors.min():.3f}-{block_factors.max():.3f}"
        )
    else:
        step_samples = tuple(_per_cell(side, "step_time_s") for side in samples)
    judged = judge_step_times(step_samples[0], step_samples[1], threshold, alpha)
    statuses = (facts[0].statuses, facts[1].statuses)
    loop_position = keys.index("loop")
    # compile times, like step times, do not carry across machines
    compile_p_adjusted = None if allow_different_machines else compile_time_p_values(*facts)

    all_cells = sorted(set(statuses[0]) | set(statuses[1]) | set(judged), key=repr)
    cells = []
    skipped_in_both = 0
    for cell in all_cells:
        flags = cell_flags(cell, *facts, threshold, alpha, compile_p_adjusted)
        if cell in judged:
            cells.append(replace(judged[cell], flags=flags))
            continue
        if statuses[0].get(cell) == statuses[1].get(cell) == "skipped" and not flags:
            skipped_in_both += 1
            continue
        if allow_different_machines and cell[loop_position] == REFERENCE_LOOP:
            cells.append(
                CellComparison(
                    cell=cell, verdict="reference", note="ratio 1 by definition", flags=flags
                )
            )
            continue
        counts = (len(step_samples[0].get(cell, ())), len(step_samples[1].get(cell, ())))
        note = _missing_note(
            cell, statuses, (counts[0] > 0, counts[1] > 0), allow_different_machines
        )
        cells.append(
            CellComparison(
                cell=cell,
                verdict="missing",
                note=note,
                n_baseline=counts[0],
                n_current=counts[1],
                flags=flags,
            )
        )
    if not judged and not any(cell.flags for cell in cells):
        raise IncomparableRunsError(
            f"{baseline_path} and {current_path} have no cell with samples on both sides"
        )
    notes = [
        f"the {side} run is incomplete (interrupted or still running): finished cells only"
        for side, run in (("baseline", baseline), ("current", current))
        if run.metadata.get("complete") is False
    ]
    notes += machine_speed_notes(baseline, current, threshold)
    if drift_note:
        notes.append(drift_note)
    if allow_different_machines:
        notes.append(
            f"within-run ratios: each loop's step time over {REFERENCE_LOOP}'s in the same run "
            "(process k with process k); they carry across machines, absolute and compile times do not"
        )
    return Comparison(
        baseline=baseline,
        current=current,
        cell_keys=keys,
        cells=tuple(cells),
        threshold=threshold,
        alpha=alpha,
        within_run_ratios=allow_different_machines,
        hard_differences=hard_differences,
        soft_differences=soft_differences,
        cells_skipped_in_both=skipped_in_both,
        notes=tuple(notes),
        drift_corrected=drift_note is not None,
    )


# --------------------------------------------------------------------------- output


def _commit(run: Run) -> str:
    soft = run.metadata.get("soft", {})
    commit = str(soft.get("git_commit") or "?")[:10]
    return commit + ("+dirty" if soft.get("git_dirty") else "")


def _figure(value: float, ratios: bool) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}x fit" if ratios else f"{value * 1e3:.3g} ms"


def display_rows(result: Comparison) -> list[dict[str, str]]:
    """The table as strings, one dict per cell, regressions first."""
    order = {verdict: rank for rank, verdict in enumerate(VERDICTS)}
    ranked = sorted(result.cells, key=lambda c: (not c.is_regression, order[c.verdict]))
    rows = []
    for cell in ranked:
        ci = "-" if math.isnan(cell.ci_low) else f"{cell.ci_low:.3f}-{cell.ci_high:.3f}"
        rows.append(
            {
                "cell": cell_label(cell.cell, result.cell_keys),
                "verdict": cell.verdict.upper() if cell.is_regression else cell.verdict,
                "ratio": "-" if math.isnan(cell.ratio) else f"{cell.ratio:.3f}",
                "95% CI": ci,
                "p (Holm)": "-" if math.isnan(cell.p_adjusted) else f"{cell.p_adjusted:.2g}",
                "n base/cur": f"{cell.n_baseline}/{cell.n_current}",
                "baseline": _figure(cell.baseline_median, result.within_run_ratios),
                "current": _figure(cell.current_median, result.within_run_ratios),
                "flags / note": "; ".join([*cell.flags, *([cell.note] if cell.note else [])]),
            }
        )
    return rows


def summary_lines(result: Comparison) -> list[str]:
    """The lines above the table: runs, mode, rule, metadata differences, outcome."""
    baseline, current = result.baseline, result.current
    lines = [
        f"baseline {baseline.run_id} ({_commit(baseline)}) vs current {current.run_id} ({_commit(current)})"
    ]
    if result.within_run_ratios:
        machines = "; ".join(result.hard_differences) or "none differ"
        lines.append(
            f"mode: within-run ratios to {REFERENCE_LOOP} (allow different machines; hard keys: {machines})"
        )
    else:
        lines.append(
            "mode: absolute step times (same machine: hard metadata keys match)"
            + (", drift-corrected per block (interleaved A/B)" if result.drift_corrected else "")
        )
    lines.extend(result.notes)
    lines.append(
        f"rule: one-sided Mann-Whitney U per cell on per-process samples, Holm-corrected over "
        f"{result.n_tested} cells at alpha={result.alpha:g}, and median ratio beyond "
        f"±{result.threshold:.0%}; also flagged: newly failing cells, more retraces"
        + (
            ""
            if result.within_run_ratios
            else f", compile time up >{result.threshold:.0%} and >{COMPILE_FLOOR_S:g}s "
            "(same test, Holm over cells)"
        )
    )
    lines.append(
        "soft metadata differs: " + "; ".join(result.soft_differences)
        if result.soft_differences
        else "soft metadata: no difference"
    )
    counts = pd.Series([cell.verdict for cell in result.cells]).value_counts()
    lines.append(
        "cells: "
        + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
        + (
            f"; {result.cells_skipped_in_both} skipped in both runs"
            if result.cells_skipped_in_both
            else ""
        )
    )
    regressions = result.regressions
    if regressions:
        named = ", ".join(cell_label(cell.cell, result.cell_keys) for cell in regressions)
        lines.append(f"RESULT: {len(regressions)} confirmed regression(s): {named}")
    else:
        lines.append("RESULT: no confirmed regression")
    return lines


def render_text(result: Comparison) -> str:
    """Summary lines and a fixed-width table, for a terminal."""
    table = pd.DataFrame(display_rows(result))
    body = table.to_string(index=False) if not table.empty else "(no cells)"
    return "\n".join(summary_lines(result)) + "\n\n" + body + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: Comparison) -> str:
    """GitHub-flavoured Markdown fit for a CI job summary."""
    lines = ["## Regression gate", ""]
    lines += [f"- {_markdown_cell(line)}" for line in summary_lines(result)]
    rows = display_rows(result)
    if rows:
        header = list(rows[0])
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [_markdown_cell(row[name]) for name in header]
            cells[1] = f"**{cells[1]}**" if cells[1].isupper() else cells[1]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command


def command(
    baseline: str | os.PathLike[str],
    current: str | os.PathLike[str],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    markdown: str | os.PathLike[str] | None = None,
    allow_different_machines: bool = False,
) -> int:
    """Compare, print the table, write the Markdown; return the exit status (0, 1 or 2).

    Example::

        status = command("results/base", "results/head", markdown="compare.md")
    """
    try:
        result = compare(baseline, current, threshold, alpha, allow_different_machines)
    except (RunDirError, IncomparableRunsError) as exc:
        message = f"cannot compare: {exc}"
        print(message, file=sys.stderr)
        if markdown is not None:
            atomic_write_text(markdown, f"## Regression gate\n\n{_markdown_cell(message)}\n")
        return 2
    print(render_text(result), end="")
    if markdown is not None:
        atomic_write_text(markdown, render_markdown(result))
    return result.exit_status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopbench compare",
        description="Compare two run directories; exit 1 on a confirmed regression, 2 if they cannot be compared.",
    )
    parser.add_argument("baseline", help="baseline run directory")
    parser.add_argument("current", help="current run directory")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="effect size, e.g. 0.05 = 5%%"
    )
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help="family-wise error rate (Holm)"
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write a Markdown table here")
    parser.add_argument(
        "--allow-different-machines",
        action="store_true",
        help="compare within-run ratios to fit when hard metadata keys differ",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return command(
        args.baseline,
        args.current,
        args.threshold,
        args.alpha,
        args.markdown,
        args.allow_different_machines,
    )


if __name__ == "__main__":
    raise SystemExit(main())
