"""Validate the regression gate on this machine's real per-process samples.

A developer tool (docs/gate.md holds its tables). It measures how often the gate (``reports.gate.stats``: one-sided Mann-Whitney U per
cell, Holm across cells, median ratio beyond the threshold) raises a false alarm
and how often it catches a real slowdown, beside two fixed-percentage rules of the
kind pytest-benchmark offers (``--benchmark-compare-fail=median:5%`` / ``mean:5%``),
judged on exactly the same resampled comparisons.

Scenarios (each comparison judges every cell of the pool at once, as the gate does):

* **A/A, pooled**: baseline and current groups drawn from the same pool of a cell
  (without replacement when the pool holds 2n processes, else with replacement).
  Target: the gate raises an alarm in at most 1 % of comparisons.
* **A/A, across runs** (two or more pool runs): the baseline group from one run, the
  current group from another: run-to-run drift included.
* **slowdown x(1+f), approximation**: as A/A pooled, with the current samples of
  the slowed loop's cells multiplied by 1 + f (default 5 % and 10 %). Multiplying assumes
  the slowdown scales the whole step time and leaves its noise shape alone; real
  slowed runs (below) do not assume that. Target: each slowed cell flagged in at
  least 95 % of comparisons.
* **slowdown, real runs** (``--slowed RUN``): current groups drawn from runs made
  with ``LOOPBENCH_INJECT_SLOWDOWN="loop=fraction"`` (the loop is read from their
  metadata), baseline groups from the pool. The other loops' cells of those runs
  are a real A/A across runs, and count as false alarms when flagged; cells the
  slowed runs lack are drawn A/A from the pool, keeping the Holm family whole.

Interleaved A/Bs (``--ab OUT [OUT ...]`` of unchanged code, their blocks pooled;
``--slowed-ab OUT [OUT ...]`` of A/Bs made with ``--inject-slowdown``): comparisons
of n blocks (block k = process k of every cell on both sides, measured together),
the same blocks for every cell, drawn without replacement when the A/Bs hold n
blocks (a bootstrap repeats blocks, and a rank test takes each repeat for a new
sample: it overstates false alarms and detection alike), judged by the gate on
raw samples, by the gate on samples corrected for the drift around each pair (what
``loopbench compare`` does with such an A/B: ``reports.gate.samples.local_drift_factors``)
and by the fixed rules; and
each A/B once on all its blocks, as ``loopbench compare`` judges it. Duet A/Bs
(``loopbench ab --mode duet``, the default) the same way, their block being the one
number the gate judges (the log ratio of the fastest windows, both sides at once):
judged by the paired gate (exact signed-rank test, Holm, the ratio beyond the
threshold) and by the fixed rules on the blocks' ratios. A/Bs of the two modes are
never pooled::

    python tools/validate_gate.py --ab results/aa1 results/aa2 results/aa3 \\
        --slowed-ab results/regression

Run it (pool from one or more run directories; ``loopbench ab BASE_REF --inject-slowdown
LOOP=0.10`` leaves a matching pair in ``<out>/base`` and ``<out>/current``)::

    python tools/validate_gate.py results/regression/base \\
        --slowed results/regression/current --markdown validation.md
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: `python tools/NAME.py` from a checkout imports the project from it
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import numpy as np
from scipy import stats
from tf_loopbench.benchmarks.config import AB_PROCESSES, INJECT_SLOWDOWN_ENV
from tf_loopbench.reports.gate import judge
from tf_loopbench.reports.gate import stats as gate_stats
from tf_loopbench.reports.gate.render import detectable_text
from tf_loopbench.reports.gate.samples import (
    block_grid,
    local_drift_factors,
    matched_windows,
    measured_duet,
    measured_interleaved,
    pair_times,
    process_samples,
)
from tf_loopbench.reports.rundir import CELL_KEYS, CellKey, RunDirError, atomic_write_text, load_run

FALSE_ALARM_TARGET = 0.01
NO_SLOWED_LOOP = "give --slowed-loop: no slowed run says which loop it slowed"
DETECTION_TARGET = 0.95


@dataclass(frozen=True)
class Pool:
    """Per cell, the ok per-process step times of each run (one array per run)."""

    runs: tuple[str, ...]
    samples: dict[CellKey, tuple[np.ndarray, ...]]
    keys: tuple[str, ...]

    def pooled(self, cell: CellKey) -> np.ndarray:
        return np.concatenate(self.samples[cell])


def load_pool(run_dirs: Sequence[str | Path]) -> Pool:
    """Read the ok per-process step times of ``run_dirs`` (cells present in all)."""
    keys = CELL_KEYS
    per_run = []
    for run_dir in run_dirs:
        run = load_run(run_dir)
        samples = process_samples(run)
        per_run.append(
            {
                cell: group["step_time_s"].to_numpy(float)
                for cell, group in samples.groupby("cell", sort=False)
            }
        )
    cells = sorted(set.intersection(*(set(run) for run in per_run)), key=repr)
    return Pool(
        runs=tuple(str(path) for path in run_dirs),
        samples={cell: tuple(run[cell] for run in per_run) for cell in cells},
        keys=keys,
    )


def slowed_loop_of(run_dirs: Sequence[str | Path]) -> str:
    """The loop named by the slowdown knob (INJECT_SLOWDOWN_ENV) in the runs' metadata."""
    loops = set()
    for run_dir in run_dirs:
        spec = load_run(run_dir).metadata.get("soft", {}).get("env", {}).get(INJECT_SLOWDOWN_ENV)
        if not spec or "=" not in spec:
            raise RunDirError(f"{run_dir}: no {INJECT_SLOWDOWN_ENV} in its metadata (soft.env)")
        loops.add(spec.split("=", 1)[0].strip())
    if len(loops) != 1:
        raise RunDirError(f"slowed runs disagree on the slowed loop: {sorted(loops)}")
    return loops.pop()


def draw(source: np.ndarray, n: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """``iterations`` groups of ``n`` samples from ``source``: shape (iterations, n)."""
    if len(source) >= n:
        return np.array([rng.choice(source, n, replace=False) for _ in range(iterations)])
    return rng.choice(source, (iterations, n), replace=True)


def split_draw(
    source: np.ndarray, n: int, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of ``n`` from one pool: disjoint when it holds 2n samples."""
    if len(source) >= 2 * n:
        both = np.array([rng.permutation(source)[: 2 * n] for _ in range(iterations)])
        return both[:, :n], both[:, n:]
    return (
        rng.choice(source, (iterations, n), replace=True),
        rng.choice(source, (iterations, n), replace=True),
    )


# --------------------------------------------------------------------------- rules

#: A rule maps (baseline, current) arrays of shape (iterations, cells, n) to a
#: boolean "flagged slower" array of shape (iterations, cells).
Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def gate_rule(threshold: float, alpha: float) -> Rule:
    def flagged(baseline: np.ndarray, current: np.ndarray) -> np.ndarray:
        p_slower = gate_stats.one_sided_mwu_p(baseline, current, "greater", axis=-1)
        p_adjusted = gate_stats.holm_adjust(p_slower, axis=-1)  # across cells
        ratio = gate_stats.median_ratio(baseline, current, axis=-1)
        return judge.confirmed_slower(p_adjusted, ratio, alpha, threshold)

    return flagged


def paired_gate_rule(threshold: float, alpha: float, drop_disturbed: bool = True) -> Rule:
    """The duet gate (``judge.judge_paired_blocks``) on blocks of the two sides' fastest
    windows: the most disturbed blocks left out (``drop_disturbed``; the gate's
    ``gate_stats.disturbed_to_drop`` of them, disturbance among the blocks drawn), the
    one-sided exact signed-rank test of the log ratios, Holm across cells, and
    exp(median log ratio) beyond 1 + threshold."""

    def flagged(baseline: np.ndarray, current: np.ndarray) -> np.ndarray:
        log_ratios = np.log(current / baseline)
        if drop_disturbed:
            level = alpha / log_ratios.shape[-2]  # Holm's first step over the cells
            drop = gate_stats.disturbed_to_drop(log_ratios.shape[-1], level)
            disturbance = gate_stats.block_disturbance(baseline, current)
            log_ratios = gate_stats.least_disturbed(log_ratios, disturbance, drop)
        p_slower = gate_stats.signed_rank_p(log_ratios, "greater", axis=-1)
        p_adjusted = gate_stats.holm_adjust(p_slower, axis=-1)  # across cells
        ratio = np.exp(np.median(log_ratios, axis=-1))
        return judge.confirmed_slower(p_adjusted, ratio, alpha, threshold)

    return flagged


def pair_corrected_gate_rule(threshold: float, alpha: float) -> Rule:
    """The gate on samples divided by the drift around their pair
    (``reports.gate.samples.local_drift_factors``), as ``loopbench compare`` judges an
    interleaved A/B. The factors need the A/B's whole time line, so they are taken
    once per A/B before blocks are drawn: the rule reads the scenario's corrected
    samples (``precorrected``)."""
    flagged = gate_rule(threshold, alpha)
    flagged.precorrected = True  # type: ignore[attr-defined]
    return flagged


def fixed_rule(
    statistic: Callable[..., np.ndarray], threshold: float, paired: bool = False
) -> Rule:
    """pytest-benchmark style: flag when statistic(current)/statistic(baseline) > 1+threshold
    (``paired``: statistic(current/baseline), on a duet's block ratios)."""

    def flagged(baseline: np.ndarray, current: np.ndarray) -> np.ndarray:
        if paired:
            return statistic(current / baseline, axis=-1) > 1 + threshold
        return statistic(current, axis=-1) / statistic(baseline, axis=-1) > 1 + threshold

    return flagged


@dataclass(frozen=True)
class Scenario:
    name: str
    baseline: np.ndarray  # (iterations, cells, n)
    current: np.ndarray
    slowed: np.ndarray  # (cells,) bool: cells where flagging is a detection
    #: the same samples divided by the drift around their pair (interleaved A/Bs)
    corrected_baseline: np.ndarray | None = None
    corrected_current: np.ndarray | None = None

    def arrays(self, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
        if getattr(rule, "precorrected", False):
            if self.corrected_baseline is None or self.corrected_current is None:
                raise ValueError(f"{self.name}: no pair-corrected samples")
            return self.corrected_baseline, self.corrected_current
        return self.baseline, self.current


@dataclass(frozen=True)
class Rates:
    false_alarm_per_comparison: float  # any unslowed cell flagged
    false_alarm_per_cell: float
    detection_per_cell: float  # nan when nothing is slowed
    # the gate's verdict on the slowed code: at least one slowed cell flagged (exit 1)
    detection_per_comparison: float


def rates(rule: Rule, scenario: Scenario) -> Rates:
    flagged = rule(*scenario.arrays(rule))
    unslowed = flagged[:, ~scenario.slowed]
    slowed = flagged[:, scenario.slowed]
    return Rates(
        false_alarm_per_comparison=float(unslowed.any(axis=1).mean()) if unslowed.size else np.nan,
        false_alarm_per_cell=float(unslowed.mean()) if unslowed.size else np.nan,
        detection_per_cell=float(slowed.mean()) if slowed.size else np.nan,
        detection_per_comparison=float(slowed.any(axis=1).mean()) if slowed.size else np.nan,
    )


# --------------------------------------------------------------------------- scenarios


def build_scenarios(
    pool: Pool,
    n: int,
    iterations: int,
    slowed_loop: str,
    fractions: Sequence[float],
    rng: np.random.Generator,
    slowed_pool: Pool | None = None,
) -> list[Scenario]:
    cells = list(pool.samples)
    loop_position = pool.keys.index("loop")
    is_slowed = np.array([cell[loop_position] == slowed_loop for cell in cells])
    nothing = np.zeros(len(cells), bool)
    pairs = [split_draw(pool.pooled(cell), n, iterations, rng) for cell in cells]
    baseline = np.stack([b for b, _ in pairs], axis=1)
    current = np.stack([c for _, c in pairs], axis=1)
    scenarios = [Scenario("A/A, pooled", baseline, current, nothing)]
    if len(pool.runs) >= 2:
        across_b, across_c = [], []
        for cell in cells:
            per_run = pool.samples[cell]
            order = [rng.permutation(len(per_run))[:2] for _ in range(iterations)]
            across_b.append(np.array([draw(per_run[i], n, 1, rng)[0] for i, _ in order]))
            across_c.append(np.array([draw(per_run[j], n, 1, rng)[0] for _, j in order]))
        scenarios.append(
            Scenario(
                "A/A, across runs",
                np.stack(across_b, axis=1),
                np.stack(across_c, axis=1),
                nothing,
            )
        )
    scenarios += approximations(
        f"{slowed_loop} {{factor}} (approximation)", baseline, current, is_slowed, fractions
    )
    if slowed_pool is not None:
        # cells the slowed runs did not time are drawn A/A from the pool, so that the
        # Holm family is the same size as in the other scenarios
        real_b, real_c, real_slowed = [], [], []
        for index, cell in enumerate(cells):
            if cell in slowed_pool.samples:
                real_b.append(draw(pool.pooled(cell), n, iterations, rng))
                real_c.append(draw(slowed_pool.pooled(cell), n, iterations, rng))
                real_slowed.append(bool(is_slowed[index]))
            else:
                real_b.append(baseline[:, index])
                real_c.append(current[:, index])
                real_slowed.append(False)
        scenarios.append(
            Scenario(
                f"{slowed_loop} slowed, real runs",
                np.stack(real_b, axis=1),
                np.stack(real_c, axis=1),
                np.array(real_slowed),
            )
        )
    return scenarios


@dataclass(frozen=True)
class ABBlocks:
    """A/Bs (each an ``OUT/base`` and ``OUT/current``) of the same cells, block by block
    (blocks with a missing process dropped), the blocks of several A/Bs side by side.
    Interleaved: step times of every cell on both sides. Duet: each side's fastest
    matched window of the block (``samples.matched_windows``), whose ratio current / base
    is the number the gate judges, and whose two values give the block's disturbance."""

    cells: list[CellKey]
    grid: np.ndarray  # (cells, 2, blocks)
    keys: tuple[str, ...]
    slowed_loop: str | None
    #: per A/B: its directory and its blocks' positions in ``grid``
    parts: tuple[tuple[str, slice], ...]
    #: ``grid`` divided by the drift around each pair, read on each A/B's own time line
    #: (interleaved; a duet's sides ran at once: ``grid`` itself)
    corrected: np.ndarray | None = None
    mode: str = "interleaved"

    @property
    def path(self) -> str:
        return ", ".join(path for path, _ in self.parts)


def load_ab(out_dir: str | Path) -> ABBlocks:
    keys = CELL_KEYS
    sides = [load_run(Path(out_dir) / side) for side in ("base", "current")]
    samples = tuple(process_samples(run) for run in sides)
    if measured_duet(*sides):
        mode = "duet"
        matched = matched_windows((sides[0], sides[1]), samples)
        cells = sorted({cell for cell, _ in matched}, key=repr)
        blocks = sorted({block for _, block in matched})
        grid = np.full((len(cells), 2, len(blocks)), np.nan)
        for row, cell in enumerate(cells):
            for column, block in enumerate(blocks):
                if (cell, block) in matched:  # the fastest matched windows, as the gate
                    grid[row, :, column] = [side.min() for side in matched[cell, block]]
        corrected = grid
    elif measured_interleaved(*sides):
        mode = "interleaved"
        cells, grid = block_grid(samples)
        corrected = grid / local_drift_factors(grid, pair_times(samples))
    else:
        raise RunDirError(
            f"{out_dir}: base and current are not the two sides of one A/B (duet or interleaved)"
        )
    complete = np.isfinite(grid).all(axis=(0, 1))
    spec = sides[1].metadata.get("soft", {}).get("env", {}).get(INJECT_SLOWDOWN_ENV)
    slowed_loop = spec.split("=")[0].strip() if spec else None
    grid, corrected = grid[:, :, complete], corrected[:, :, complete]
    part = ((str(out_dir), slice(0, grid.shape[-1])),)
    return ABBlocks(cells, grid, keys, slowed_loop, part, corrected, mode)


def load_abs(out_dirs: Sequence[str | Path]) -> ABBlocks:
    """Several interleaved A/Bs, their blocks pooled over the cells they all hold (each
    A/B's drift is read on its own whole matrix first)."""
    abs_ = [load_ab(path) for path in out_dirs]
    common = [cell for cell in abs_[0].cells if all(cell in ab.cells for ab in abs_)]
    if not common:
        raise RunDirError(f"{', '.join(map(str, out_dirs))}: no cell in common")
    abs_ = [_only_cells(ab, common) for ab in abs_]
    first = abs_[0]
    parts, start = [], 0
    for ab in abs_:
        if ab.mode != first.mode:
            raise RunDirError(
                f"{ab.path} ({ab.mode}) and {first.path} ({first.mode}) cannot be pooled: "
                "pool A/Bs of one mode"
            )
        if ab.slowed_loop != first.slowed_loop:

            def kind(blocks: ABBlocks) -> str:
                return f"slowed {blocks.slowed_loop}" if blocks.slowed_loop else "no slowdown"

            raise RunDirError(
                f"{ab.path} ({kind(ab)}) and {first.path} ({kind(first)}) cannot be pooled: "
                "pool A/Bs made with the same --inject-slowdown"
            )
        blocks = ab.grid.shape[-1]
        parts.append((ab.path, slice(start, start + blocks)))
        start += blocks
    grid = np.concatenate([ab.grid for ab in abs_], axis=-1)
    corrected = np.concatenate([ab.corrected for ab in abs_], axis=-1)
    return ABBlocks(
        first.cells, grid, first.keys, first.slowed_loop, tuple(parts), corrected, first.mode
    )


def _only_cells(ab: ABBlocks, cells: list[CellKey]) -> ABBlocks:
    rows = [ab.cells.index(cell) for cell in cells]
    corrected = ab.corrected[rows] if ab.corrected is not None else None
    return ABBlocks(cells, ab.grid[rows], ab.keys, ab.slowed_loop, ab.parts, corrected, ab.mode)


def approximations(
    name: str,
    baseline: np.ndarray,
    current: np.ndarray,
    is_slowed: np.ndarray,
    fractions: Sequence[float],
    corrected: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Scenario]:
    """A slowdown of each fraction applied to the slowed cells' current samples
    (``name`` is formatted with ``factor``, e.g. "x1.1"); to the pair-corrected
    samples too, when given (a slowed cell barely moves its neighbours' factors)."""
    scenarios = []
    for fraction in fractions:
        slow = np.where(is_slowed, 1.0 + fraction, 1.0)[None, :, None]
        scenarios.append(
            Scenario(
                name.format(factor=f"x{1 + fraction:g}"),
                baseline,
                current * slow,
                is_slowed,
                *((corrected[0], corrected[1] * slow) if corrected is not None else ()),
            )
        )
    return scenarios


def blocked_scenarios(
    unchanged: ABBlocks,
    slowed: ABBlocks | None,
    slowed_loop: str,
    fractions: Sequence[float],
    n: int,
    iterations: int,
    rng: np.random.Generator,
) -> list[Scenario]:
    """Comparisons of n blocks (the same blocks for every cell, as the drift
    correction needs), from A/Bs of unchanged and of slowed code.

    Blocks are drawn without replacement whenever the A/Bs hold n of them: a
    bootstrap (with replacement) repeats blocks, and a rank test counts each
    repeat as a new sample, so it overstates both false alarms and detection."""

    def draw_blocks(ab: ABBlocks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
        """Baseline and current groups, (iterations, cells, n) each, raw and
        pair-corrected, and how drawn."""
        blocks = ab.grid.shape[-1]
        if blocks >= n:
            chosen = np.argsort(rng.random((iterations, blocks)), axis=1)[:, :n]
            how = f"{n} of {blocks} blocks, without replacement" + (
                ": every comparison the same blocks, one comparison in truth" if blocks == n else ""
            )
        else:
            chosen = rng.integers(0, blocks, (iterations, n))
            how = f"{n} of {blocks} blocks, with replacement"
        groups = []
        for grid in (ab.grid, ab.corrected):
            drawn = np.moveaxis(grid[:, :, chosen], 2, 0)  # (iterations, cells, 2, n)
            groups += [drawn[:, :, 0, :], drawn[:, :, 1, :]]
        return (*groups, how)

    loop_position = unchanged.keys.index("loop")
    is_slowed = np.array([cell[loop_position] == slowed_loop for cell in unchanged.cells])
    baseline, current, corrected_b, corrected_c, how = draw_blocks(unchanged)
    scenarios = [
        Scenario(
            f"A/A: {unchanged.mode} A/Bs of unchanged code ({how})",
            baseline,
            current,
            np.zeros(len(unchanged.cells), bool),
            corrected_b,
            corrected_c,
        ),
        *approximations(
            f"{slowed_loop} {{factor}} on those A/As (approximation)",
            baseline,
            current,
            is_slowed,
            fractions,
            (corrected_b, corrected_c),
        ),
    ]
    if slowed is not None:
        if slowed.cells != unchanged.cells:
            raise RunDirError(f"{slowed.path}: other cells than {unchanged.path}")
        real_b, real_c, real_cb, real_cc, how = draw_blocks(slowed)
        scenarios.append(
            Scenario(
                f"{slowed_loop} slowed: {slowed.mode} A/B ({how})",
                real_b,
                real_c,
                is_slowed,
                real_cb,
                real_cc,
            )
        )
    return scenarios


def as_measured_rows(
    unchanged: ABBlocks, slowed: ABBlocks | None, rules: dict[str, Rule], slowed_loop: str
) -> list[str]:
    """Each A/B judged once on all its blocks, as ``loopbench compare`` judges it:
    which cells each rule flags (in a slowed A/B, a flagged cell of another loop is
    marked as a false alarm)."""
    lines = [
        "| A/B, all its blocks | blocks | " + " | ".join(rules) + " |",
        "|---|---|" + "---|" * len(rules),
    ]
    loop_position = unchanged.keys.index("loop")
    for ab, kind in ((unchanged, "unchanged"), (slowed, "slowed")):
        if ab is None:
            continue
        for path, part in ab.parts:
            verdicts = []
            for rule in rules.values():
                grid = (ab.corrected if getattr(rule, "precorrected", False) else ab.grid)[
                    :, :, part
                ]
                flagged = rule(grid[None, :, 0, :], grid[None, :, 1, :])[0]
                names = []
                for cell, hit in zip(ab.cells, flagged, strict=True):
                    if hit:
                        # a slowed A/B's other loops are unchanged code: a flag there is wrong
                        wrong = kind == "slowed" and cell[loop_position] != slowed_loop
                        names.append(
                            "/".join(map(str, cell[:2])) + (" (false alarm)" if wrong else "")
                        )
                listed = f": {', '.join(names)}" if 0 < len(names) <= 4 else ""
                verdicts.append(f"{len(names)} flagged{listed}")
            lines.append(f"| {kind}: {path} | {grid.shape[-1]} | " + " | ".join(verdicts) + " |")
    return lines


def _wall_minutes(run) -> float:
    """Minutes from the start of a run to its end (its metadata's soft times)."""
    soft = run.metadata.get("soft", {})
    mark = soft.get("ab") or {}
    if isinstance(mark, dict) and isinstance(mark.get("elapsed_s"), int | float):
        return mark["elapsed_s"] / 60
    try:
        start = datetime.fromisoformat(soft["started_at"])
        end = datetime.fromisoformat(soft["ended_at"])
    except (KeyError, TypeError, ValueError):
        return float("nan")
    return (end - start).total_seconds() / 60


def power_table(out_dirs: Sequence[str | Path], threshold: float, alpha: float) -> str:
    """Each A/B judged as ``loopbench compare`` judges it, side by side: every cell's
    detectable slowdown, the median over cells, how many were blind, blocks and time."""
    results = []
    for out_dir in out_dirs:
        base, current = Path(out_dir) / "base", Path(out_dir) / "current"
        results.append(judge.compare(base, current, threshold, alpha, allow_missing=True))
    cells = sorted({cell.cell for result in results for cell in result.cells}, key=repr)
    names = [str(path) for path in out_dirs]
    lines = [
        f"## Detectable slowdown per cell (80% power, Holm's first-step level; "
        f"threshold {threshold:.0%}, alpha {alpha:g}; sample: fastest window; "
        "drift read around each pair)",
        "",
        "| cell | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for cell in cells:
        figures = []
        for result in results:
            judged = {c.cell: c for c in result.cells}.get(cell)
            figures.append("-" if judged is None else detectable_text(judged.detectable))
        lines.append(f"| {cell.name} | " + " | ".join(figures) + " |")
    medians = [
        float(np.median([c.detectable for c in r.cells if not np.isnan(c.detectable)] or [np.nan]))
        for r in results
    ]
    lines.append("| **median over cells** | " + " | ".join(map(detectable_text, medians)) + " |")
    lines.append(
        "| blind (above the threshold) | "
        + " | ".join(f"{len(r.blind)} of {r.n_tested}" for r in results)
        + " |"
    )
    lines.append(
        "| samples a side (min-max over cells) | "
        + " | ".join(
            f"{min(c.n_current for c in r.cells if c.n_current)}-"
            f"{max(c.n_current for c in r.cells)}"
            for r in results
        )
        + " |"
    )
    lines.append(
        "| A/B wall time | "
        + " | ".join(f"{_wall_minutes(r.current):.1f} min" for r in results)
        + " |"
    )
    lines.append("| settings | " + " | ".join(f"`{_settings(r.current)}`" for r in results) + " |")
    if len(results) == 2 and all(np.isfinite(medians)) and medians[0] > 0:
        lines += [
            "",
            f"median detectable slowdown, second over first: {medians[1] / medians[0]:.2f}x",
        ]
    return "\n".join(lines) + "\n"


def _settings(run) -> str:
    """The A/B's run settings and loop styles, as its metadata (soft.ab) records them."""
    mark = run.metadata.get("soft", {}).get("ab") or {}
    loops = mark.get("loops") or ",".join(sorted(set(run.summary["loop"].astype(str))))
    return f"{mark.get('run_args', '?')} --loop {loops}"


def _percent(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.1f}%"


def injected_effects(pool: Pool, slowed_pool: Pool, slowed_loop: str) -> list[str]:
    """Per slowed cell, what the injected slowdown really did: the ratio of medians
    slowed/pool of all samples, with its 95 % bootstrap interval."""
    loop_position = pool.keys.index("loop")
    lines = []
    for cell in pool.samples:
        if cell[loop_position] != slowed_loop or cell not in slowed_pool.samples:
            continue
        base, slowed = pool.pooled(cell), slowed_pool.pooled(cell)
        ratio = float(gate_stats.median_ratio(base, slowed))
        low, high = gate_stats.ratio_of_medians_ci(base, slowed)
        name = "/".join(str(part) for part in cell)
        lines.append(f"{name} x{ratio:.3f} (95% CI {low:.3f}-{high:.3f})")
    return lines


def validation_table(
    pool: Pool,
    scenarios: Sequence[Scenario],
    n: int,
    iterations: int,
    threshold: float,
    alpha: float,
    effects: Sequence[str] = (),
) -> str:
    """The Markdown report: setup, then one row per (scenario, rule)."""
    rules = all_rules(threshold, alpha, drift_corrected=False)
    sizes = [len(pool.pooled(cell)) for cell in pool.samples]
    # the spread of the per-process samples bounds what any rule can detect
    spreads = [stats.variation(pool.pooled(cell)) for cell in pool.samples]
    lines = [
        "## Regression gate validation",
        "",
        f"- pool: {', '.join(pool.runs)}: {len(pool.samples)} cells, "
        f"{min(sizes)}-{max(sizes)} process samples per cell; per-process coefficient of "
        f"variation {min(spreads):.1%} to {max(spreads):.1%} (median {np.median(spreads):.1%})",
        f"- {iterations} comparisons per scenario, {n} processes per side, threshold "
        f"{threshold:.0%}, alpha {alpha:g} (Holm over {len(pool.samples)} cells); groups are drawn "
        "with replacement where a pool is smaller than needed",
        f"- targets: gate false alarms per comparison <= {FALSE_ALARM_TARGET:.0%}, "
        f"detection >= {DETECTION_TARGET:.0%} of comparisons (the gate flags a slowed cell, "
        "so it exits 1 on the slowed code); per slowed cell beside it",
        *(
            [f"- measured effect of the injected slowdown (all samples): {'; '.join(effects)}"]
            if effects
            else []
        ),
        "",
        *rate_rows(scenarios, rules),
    ]
    return "\n".join(lines) + "\n"


#: the rule ``loopbench compare`` applies to an interleaved A/B
COMPARE_RULE = "gate, drift-corrected around each pair (compare)"


#: the rule ``loopbench compare`` applies to a duet A/B
PAIRED_RULE = "gate, paired blocks (signed-rank + Holm + effect; compare)"
#: the paired gate before it left the most disturbed blocks out
PAIRED_EVERY_BLOCK = "gate, paired, every block (before 2026-12-07)"


def all_rules(
    threshold: float, alpha: float, drift_corrected: bool, mode: str = "interleaved"
) -> dict[str, Rule]:
    paired = mode == "duet"
    if paired:  # one ratio a block: the paired gate, and fixed rules on the ratios
        rules = {PAIRED_RULE: paired_gate_rule(threshold, alpha)}
        rules[PAIRED_EVERY_BLOCK] = paired_gate_rule(threshold, alpha, drop_disturbed=False)
    else:
        rules = {"gate (MWU + Holm + effect)": gate_rule(threshold, alpha)}
    if drift_corrected and not paired:
        rules[COMPARE_RULE] = pair_corrected_gate_rule(threshold, alpha)
    rules[f"median ratio > {threshold:.0%}"] = fixed_rule(np.median, threshold, paired)
    rules[f"mean ratio > {threshold:.0%}"] = fixed_rule(np.mean, threshold, paired)
    return rules


def rate_rows(scenarios: Sequence[Scenario], rules: dict[str, Rule]) -> list[str]:
    lines = [
        "| scenario | rule | false alarms / comparison | false alarms / cell "
        "| detection / slowed cell | detection / comparison |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        for name, rule in rules.items():
            result = rates(rule, scenario)
            lines.append(
                f"| {scenario.name} | {name} | {_percent(result.false_alarm_per_comparison)} | "
                f"{_percent(result.false_alarm_per_cell)} | {_percent(result.detection_per_cell)} | "
                f"{_percent(result.detection_per_comparison)} |"
            )
    return lines


def blocked_validation_table(
    unchanged: ABBlocks,
    slowed: ABBlocks | None,
    scenarios: Sequence[Scenario],
    n: int,
    iterations: int,
    threshold: float,
    alpha: float,
    slowed_loop: str,
) -> str:
    """The Markdown report of the A/B mode (interleaved or duet A/Bs)."""
    rules = all_rules(threshold, alpha, drift_corrected=True, mode=unchanged.mode)
    if unchanged.mode == "duet":
        ratios = unchanged.grid[:, 1] / unchanged.grid[:, 0]
        block_sd = np.std(np.log(ratios), axis=-1, ddof=1)  # (cells,)
        spread = (
            f"paired spread (SD of the block's log ratio current/base, fastest window over "
            f"fastest window) {np.median(block_sd):.1%} median over cells "
            f"({np.min(block_sd):.1%}-{np.max(block_sd):.1%})"
        )
    else:
        log_sd = np.std(np.log(unchanged.grid), axis=-1, ddof=1)  # (cells, 2)
        pair_sd = np.std(np.log(unchanged.corrected), axis=-1, ddof=1)
        spread = (
            f"per-process spread (SD of log step time, fastest window) {np.median(log_sd):.1%} "
            f"median, {np.median(pair_sd):.1%} after the drift correction around each pair"
        )
    lines = [
        f"## Regression gate validation ({unchanged.mode} A/Bs)",
        "",
        f"- unchanged code: {unchanged.path}: {len(unchanged.cells)} cells x "
        f"{unchanged.grid.shape[-1]} blocks; {spread}",
        *(
            [
                f"- slowed code: {slowed.path} ({slowed_loop}): {slowed.grid.shape[-1]} blocks; "
                + "measured effect: "
                + "; ".join(
                    f"{'/'.join(map(str, cell))} x{np.median(slowed.grid[i, 1] / slowed.grid[i, 0]):.3f}"
                    for i, cell in enumerate(slowed.cells)
                    if cell[slowed.keys.index("loop")] == slowed_loop
                )
            ]
            if slowed is not None
            else []
        ),
        f"- {iterations} comparisons per scenario of {n} blocks per side, the same blocks "
        f"for every cell, drawn without replacement where the A/Bs hold {n} blocks "
        f"(else with replacement, which repeats blocks and so overstates every rate); "
        f"threshold {threshold:.0%}, alpha {alpha:g} (Holm over {len(unchanged.cells)} cells)",
        f"- targets: gate false alarms per comparison <= {FALSE_ALARM_TARGET:.0%}, "
        f"detection >= {DETECTION_TARGET:.0%} of comparisons (the gate flags a slowed cell, "
        "so it exits 1 on the slowed code); per slowed cell beside it",
        "",
        *rate_rows(scenarios, rules),
        "",
        *as_measured_rows(unchanged, slowed, rules, slowed_loop),
    ]
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # bad input: one line, exit 2
        self.exit(2, f"validate_gate: {message}\n")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python tools/validate_gate.py",
        description="False-alarm and detection rates of the regression gate on real samples.",
    )
    parser.add_argument("pool", nargs="*", help="run directories of unchanged code")
    parser.add_argument(
        "--ab",
        nargs="+",
        help="A/Bs' --out directories (base/, current/) of unchanged code, all duet or all "
        "interleaved; "
        "their blocks are pooled",
    )
    parser.add_argument(
        "--slowed-ab",
        nargs="+",
        help="A/Bs' --out directories (the same mode) made with the same --inject-slowdown",
    )
    parser.add_argument(
        "--power",
        nargs="+",
        metavar="OUT",
        help="A/Bs' --out directories: each one's per-cell detectable slowdown as "
        "loopbench compare states it, side by side (e.g. old and new defaults)",
    )
    parser.add_argument("--slowed", nargs="*", default=[], help="runs made with a slowdown")
    parser.add_argument(
        "--slowed-loop", help="loop to slow (default: the one the slowed runs were made with)"
    )
    parser.add_argument(
        "--slowdown",
        type=float,
        nargs="+",
        default=[0.05, 0.10],
        help="fractions of the approximation scenarios (default 0.05 0.10)",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        help=f"processes (blocks) per cell per side in each comparison (default: the A/B's, "
        f"{AB_PROCESSES}; from run directories, more if the gate needs more at Holm's "
        "alpha/cells)",
    )
    parser.add_argument("--iterations", type=_positive_int, default=2000)
    parser.add_argument("--threshold", type=float, default=judge.DEFAULT_THRESHOLD)
    parser.add_argument("--alpha", type=float, default=judge.DEFAULT_ALPHA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.power:
        try:
            table = power_table(args.power, args.threshold, args.alpha)
        except (RunDirError, judge.IncomparableRunsError) as exc:
            print(f"validate_gate: {exc}", file=sys.stderr)
            return 2
        print(table, end="")
        if args.markdown:
            atomic_write_text(args.markdown, table)
        return 0
    if args.ab:
        return main_ab(args)
    if not args.pool:
        print("validate_gate: give pool run directories or --ab", file=sys.stderr)
        return 2
    try:
        pool = load_pool(args.pool)
        slowed_pool = load_pool(args.slowed) if args.slowed else None
        slowed_loop = args.slowed_loop or (slowed_loop_of(args.slowed) if args.slowed else None)
    except (RunDirError, judge.IncomparableRunsError) as exc:
        print(f"validate_gate: {exc}", file=sys.stderr)
        return 2
    if slowed_loop is None:
        print(f"validate_gate: {NO_SLOWED_LOOP}", file=sys.stderr)
        return 2
    if not pool.samples:
        print("validate_gate: the pool runs share no cell with ok samples", file=sys.stderr)
        return 2
    n = args.processes or max(
        AB_PROCESSES, gate_stats.samples_needed_per_side(args.alpha / len(pool.samples))
    )
    rng = np.random.default_rng(args.seed)
    scenarios = build_scenarios(
        pool, n, args.iterations, slowed_loop, args.slowdown, rng, slowed_pool
    )
    effects = injected_effects(pool, slowed_pool, slowed_loop) if slowed_pool else []
    table = validation_table(
        pool, scenarios, n, args.iterations, args.threshold, args.alpha, effects
    )
    print(table, end="")
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


def main_ab(args: argparse.Namespace) -> int:
    """The A/B mode: --ab (unchanged code) [--slowed-ab], duet or interleaved."""
    try:
        unchanged = load_abs(args.ab)
        slowed = load_abs(args.slowed_ab) if args.slowed_ab else None
        if slowed is not None and slowed.mode != unchanged.mode:
            raise RunDirError(
                f"{slowed.path} ({slowed.mode}) and {unchanged.path} ({unchanged.mode}): "
                "give A/As and slowed A/Bs of one mode"
            )
        slowed_loop = args.slowed_loop or (slowed.slowed_loop if slowed else None)
        if slowed_loop is None:
            raise RunDirError(NO_SLOWED_LOOP)
        n = args.processes or AB_PROCESSES
        rng = np.random.default_rng(args.seed)
        scenarios = blocked_scenarios(
            unchanged, slowed, slowed_loop, args.slowdown, n, args.iterations, rng
        )
    except (RunDirError, judge.IncomparableRunsError) as exc:
        print(f"validate_gate: {exc}", file=sys.stderr)
        return 2
    table = blocked_validation_table(
        unchanged,
        slowed,
        scenarios,
        n,
        args.iterations,
        args.threshold,
        args.alpha,
        slowed_loop,
    )
    print(table, end="")
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
