"""The regression gate's judgement: compare two run directories cell by cell and decide
(:func:`compare`; the rule and its evidence: docs/gate.md). Beside step time, new failures,
more retraces and slower compilation are flagged.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import DEFAULT_THRESHOLD, FASTER, MISSING, SAME, SLOWER, UNCLEAR
from tf_loopbench.reports.gate import stats
from tf_loopbench.reports.gate.samples import (
    DRIFT_NEIGHBOURS,
    IncomparableRunsError,
    drift_corrected_samples,
    measured_duet,
    measured_interleaved,
    paired_blocks,
    paired_cells,
    per_cell,
    process_samples,
    sort_cells,
    with_cell,
    within_run_ratio_samples,
)
from tf_loopbench.reports.rundir import AB_MARK, CellKey, Run, load_run, reference_loop

#: The gate's default level, read by the command line too (the threshold is the core's).
DEFAULT_ALPHA = 0.01

#: A compile-time change smaller than this (seconds) is never flagged: tracing a small
#: model varies by tens of milliseconds with the load of the machine.
COMPILE_FLOOR_S = 0.5

#: Soft metadata keys that differ between any two runs and say nothing about them.
IGNORED_SOFT_KEYS = frozenset({"started_at", "ended_at", "command", "merged_from", AB_MARK})

#: A cell is blind when its detectable slowdown (the whole rule's) exceeds this many times
#: the threshold. Not the threshold itself: the rule flags only ratios beyond it, so a true
#: slowdown of the threshold's size is flagged in about half of comparisons however calm
#: the cell, and every cell would be blind to it (docs/decisions/0011).
BLIND_FACTOR = 2.0

#: Exit statuses of compare (and ab); 2 is a run that cannot be compared.
EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE, EXIT_BLIND = 0, 1, 2, 3


@dataclass(frozen=True)
class CellComparison:
    """The gate's judgement of one cell: ``verdict`` is the core's word (VERDICTS) for
    current against baseline; ``ratio`` is current/baseline (above 1: slower)."""

    cell: CellKey
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
    #: stats.detectable_slowdown (0.08 = 8 %); inf: never; nan: not judged
    detectable: float = float("nan")
    flags: tuple[str, ...] = ()
    #: a duet A/B's plan: blocks at which this spread would see the threshold (inf: more
    #: than stats.PLAN_MOST_BLOCKS; nan: not planned, or it sees it already)
    blocks_to_see: float = float("nan")

    @property
    def is_regression(self) -> bool:
        return self.verdict == SLOWER or bool(self.flags)


@dataclass(frozen=True)
class Comparison:
    """Everything the gate found comparing two runs; ``exit_status`` is the verdict."""

    baseline: Run
    current: Run
    cells: tuple[CellComparison, ...]
    threshold: float
    alpha: float
    #: the runs' reference loop, the denominator of within-run ratios (None: not used)
    reference: str | None = None
    hard_differences: tuple[str, ...] = ()
    soft_differences: tuple[str, ...] = ()
    cells_skipped_in_both: int = 0
    notes: tuple[str, ...] = ()
    #: step times divided by the drift around their pair (an interleaved A/B)
    drift_corrected: bool = False
    fail_if_blind: bool = False
    #: a duet A/B judged in pairs: one log ratio per block, signed-rank test
    paired: bool = False
    #: a duet A/B's seconds per block (its wall time over its blocks), for the plan
    block_s: float = float("nan")

    @property
    def regressions(self) -> tuple[CellComparison, ...]:
        return tuple(cell for cell in self.cells if cell.is_regression)

    @property
    def must_see(self) -> float:
        """The slowdown every cell should be able to see: BLIND_FACTOR x the threshold."""
        return BLIND_FACTOR * self.threshold

    @property
    def blind(self) -> tuple[CellComparison, ...]:
        """Judged cells that could not have seen a slowdown of ``must_see``'s size."""
        return tuple(cell for cell in self.cells if cell.detectable > self.must_see)

    @property
    def exit_status(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        if self.fail_if_blind and self.blind:
            return EXIT_BLIND
        return EXIT_OK

    @property
    def n_tested(self) -> int:
        return sum(1 for cell in self.cells if not math.isnan(cell.p_value))

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: the cell keys, verdict, figures, flags and note."""
        rows = [{**c.cell._asdict(), **vars(c), "flags": "; ".join(c.flags)} for c in self.cells]
        return pd.DataFrame(rows).drop(columns="cell", errors="ignore")


@dataclass(frozen=True)
class SideFacts:
    """What one run says per cell beside step time: status, failures, retraces, compile."""

    statuses: dict[CellKey, str]
    #: why a cell did not run (summary.csv's error: a skip's reason, a failure's error)
    reasons: dict[CellKey, str]
    failed_processes: dict[CellKey, int]
    first_errors: dict[CellKey, str]
    retraces: dict[CellKey, np.ndarray]
    compile_times: dict[CellKey, np.ndarray]

    @classmethod
    def of(cls, run: Run, ok_samples: pd.DataFrame) -> SideFacts:
        samples = run.samples
        # samples.get: a run without failures may have no status column at all
        failed = with_cell(
            samples[(samples["kind"] == "process") & (samples.get("status") == "failed")]
        )
        summary = with_cell(run.summary)
        for frame in (failed, summary):
            if "error" not in frame.columns:
                frame["error"] = None
        errors, reasons = failed.dropna(subset=["error"]), summary.dropna(subset=["error"])
        return cls(
            statuses=dict(zip(summary["cell"], summary["status"].fillna("failed"), strict=True)),
            reasons=dict(zip(reasons["cell"], reasons["error"].astype(str), strict=True)),
            failed_processes=failed.groupby("cell").size().to_dict(),
            first_errors=errors.groupby("cell")["error"].first().astype(str).to_dict(),
            retraces=per_cell(ok_samples, "retraces"),
            compile_times=per_cell(ok_samples, "compile_s"),
        )


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any, width: int = 24) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def metadata_differences(
    baseline: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """``key: baseline -> current`` for each (flattened) key whose value differs."""
    ignored = set(ignore)
    old, new = _flatten(baseline), _flatten(current)
    return [
        f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
        for key in sorted(set(old) | set(new))
        if key.split(".")[0] not in ignored and old.get(key) != new.get(key)
    ]


def _tested(baseline: Mapping[CellKey, np.ndarray], current: Mapping[CellKey, np.ndarray]):
    return paired_cells(*([c for c, v in side.items() if len(v)] for side in (baseline, current)))


def _holm(baseline, current, cells, alternative: str = "greater") -> tuple[np.ndarray, np.ndarray]:
    raw = np.array([stats.one_sided_mwu_p(baseline[c], current[c], alternative) for c in cells])
    return raw, stats.holm_adjust(raw)


def confirmed_slower(p_slower_adjusted, ratio, alpha: float, threshold: float):
    """The gate's slowdown: the Holm-adjusted one-sided p within ``alpha`` AND the ratio
    (current over base) beyond 1 + ``threshold``. Element-wise on arrays, so that
    tools/validate_gate.py judges thousands of resampled comparisons by this same rule.

    >>> bool(confirmed_slower(0.001, 1.2, 0.01, 0.05)), bool(confirmed_slower(0.001, 1.04, 0.01, 0.05))
    (True, False)
    """
    return (p_slower_adjusted <= alpha) & (ratio > 1 + threshold)


def rule_verdict(
    p_adjusted: tuple[float, float],
    ratio: tuple[float, float, float],
    alpha: float,
    threshold: float,
    too_few: str | None,
) -> tuple[str, str]:
    """(verdict, note) of one cell by the gate's rule: slower (faster) when the Holm-adjusted
    one-sided p of a slowdown (speed-up) is within ``alpha`` AND the ratio (value, low, high;
    current over base) lies beyond 1 +- ``threshold``; else unclear with ``too_few`` when the
    test could not reach its level, same when the interval lies within the band, else unclear.

    >>> rule_verdict((0.001, 1.0), (1.2, 1.1, 1.3), 0.01, 0.05, None)
    ('slower', '')
    >>> rule_verdict((0.5, 0.5), (1.0, 0.9, 1.2), 0.01, 0.05, None)[1]
    'too noisy: interval 0.900-1.200 reaches beyond ±5%'
    """
    (p_slower, p_faster), (value, low, high) = p_adjusted, ratio
    # significant after Holm AND the ratio beyond 1 +- threshold
    if confirmed_slower(p_slower, value, alpha, threshold):
        return SLOWER, ""
    if p_faster <= alpha and value < 1 - threshold:
        return FASTER, ""
    if too_few is not None:
        return UNCLEAR, too_few
    if 1 - threshold <= low and high <= 1 + threshold:
        return SAME, ""
    return UNCLEAR, f"too noisy: interval {low:.3f}-{high:.3f} reaches beyond ±{threshold:.0%}"


def judge_step_times(
    baseline: Mapping[CellKey, np.ndarray],
    current: Mapping[CellKey, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    plan: bool = False,
) -> dict[CellKey, CellComparison]:
    """The step-time verdict of every cell with per-process samples (seconds, or
    within-run ratios) on both sides; the Holm family is the cells judged here. With
    ``plan`` (an interleaved A/B), a blind cell's plan: the processes a side (blocks)
    at which this spread would see twice the threshold (up to INTERLEAVED_PLAN_MOST). The
    detectable slowdown is stated at Holm's first-step level, alpha over the cells (the
    level a cell meets when it alone is slower: if anything an overstatement).
    """
    tested = _tested(baseline, current)
    if not tested:
        return {}
    # slow-downs decide the exit status; speed-ups are a separate, reported-only family
    p_slower, p_slower_adjusted = _holm(baseline, current, tested)
    _, p_faster_adjusted = _holm(baseline, current, tested, "less")
    first_step_alpha = alpha / len(tested)  # the level Holm holds the smallest p to
    needed_per_side = stats.samples_needed_per_side(first_step_alpha)

    judged = {}
    for index, cell in enumerate(tested):
        base, cur = np.asarray(baseline[cell], float), np.asarray(current[cell], float)
        ratio = float(stats.median_ratio(base, cur))
        ci_low, ci_high = stats.ratio_of_medians_ci(base, cur)
        too_few = (
            f"too few samples ({len(base)} vs {len(cur)}): the exact test cannot reach "
            f"the Holm level {first_step_alpha:.2g}; need {needed_per_side} per side"
            if stats.smallest_one_sided_p(len(base), len(cur)) > first_step_alpha
            else None
        )
        verdict, note = rule_verdict(
            (p_slower_adjusted[index], p_faster_adjusted[index]),
            (ratio, ci_low, ci_high),
            alpha,
            threshold,
            too_few,
        )
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
            detectable=stats.detectable_slowdown(base, cur, first_step_alpha, threshold),
        )
        if plan and judged[cell].detectable > BLIND_FACTOR * threshold:
            found = stats.blocks_to_see(
                lambda n, b=base, c=cur: stats.detectable_slowdown(
                    b, c, first_step_alpha, threshold, n
                ),
                BLIND_FACTOR * threshold,
                min(len(base), len(cur)),
                INTERLEAVED_PLAN_MOST,
            )
            blocks = float("inf") if found is None else float(found)
            judged[cell] = replace(judged[cell], blocks_to_see=blocks)
    return judged


#: the most blocks an interleaved A/B's plan looks at (each look compares n x n pairs
#: of 2000 resamples)
INTERLEAVED_PLAN_MOST = 60


def judge_paired_blocks(
    log_ratios: Mapping[CellKey, np.ndarray],
    step_times: tuple[Mapping[CellKey, np.ndarray], Mapping[CellKey, np.ndarray]],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    disturbance: Mapping[CellKey, np.ndarray] | None = None,
) -> dict[CellKey, CellComparison]:
    """The step-time verdict of every cell of a duet A/B from its blocks' log ratios
    current/base (``samples.paired_log_ratios``): with each block's ``disturbance``
    (``samples.paired_blocks``), the most disturbed blocks left out
    (``stats.disturbed_to_drop``: a quarter, never below what the test needs); then the
    one-sided exact signed-rank test, Holm over the cells, and the ratio exp(median log
    ratio) beyond 1 +- threshold, with its bootstrap interval over blocks. ``step_times``
    (each side's per-process samples) only fill the table's medians. The detectable
    slowdown simulates this whole rule at Holm's first-step level on the blocks kept; a
    blind cell's plan says how many blocks would see the threshold.
    """
    tested = sort_cells(cell for cell, values in log_ratios.items() if len(values))
    if not tested:
        return {}
    values = {cell: np.asarray(log_ratios[cell], dtype=float) for cell in tested}
    ran = {cell: len(v) for cell, v in values.items()}
    first_step_alpha = alpha / len(tested)

    def dropped(n: int) -> int:
        return stats.disturbed_to_drop(n, first_step_alpha) if disturbance is not None else 0

    if disturbance is not None:
        values = {
            cell: stats.least_disturbed(v, np.asarray(disturbance[cell]), dropped(len(v)))
            for cell, v in values.items()
        }
    p_slower, p_faster = (
        np.array([stats.signed_rank_p(values[cell], alternative) for cell in tested])
        for alternative in ("greater", "less")
    )
    p_slower_adjusted, p_faster_adjusted = stats.holm_adjust(p_slower), stats.holm_adjust(p_faster)
    needed = stats.blocks_needed(first_step_alpha)
    judged = {}
    for index, cell in enumerate(tested):
        blocks = values[cell]
        ratio = float(np.exp(np.median(blocks)))
        ci_low, ci_high = stats.median_log_ratio_ci(blocks)
        too_few = (
            f"too few blocks ({len(blocks)}): the exact signed-rank test cannot reach the "
            f"Holm level {first_step_alpha:.2g}; need {needed}"
            if len(blocks) < needed
            else None
        )
        verdict, note = rule_verdict(
            (p_slower_adjusted[index], p_faster_adjusted[index]),
            (ratio, ci_low, ci_high),
            alpha,
            threshold,
            too_few,
        )
        detectable = stats.paired_detectable_slowdown(blocks, first_step_alpha, threshold)
        plan = float("nan")
        if detectable > BLIND_FACTOR * threshold and len(blocks) >= 2:
            found = stats.blocks_to_see(  # n blocks run, of which the least disturbed judged
                lambda n, b=blocks: stats.paired_detectable_slowdown(
                    b, first_step_alpha, threshold, n - dropped(n)
                ),
                BLIND_FACTOR * threshold,
                ran[cell],
            )
            plan = float("inf") if found is None else float(found)
        judged[cell] = CellComparison(
            cell=cell,
            verdict=verdict,
            note=note,
            n_baseline=len(blocks),
            n_current=len(blocks),
            baseline_median=_median(step_times[0].get(cell)),
            current_median=_median(step_times[1].get(cell)),
            ratio=ratio,
            ci_low=ci_low,
            ci_high=ci_high,
            p_value=float(p_slower[index]),
            p_adjusted=float(p_slower_adjusted[index]),
            detectable=detectable,
            blocks_to_see=plan,
        )
    return judged


def duet_note(baseline: Run, current: Run, samples: tuple[pd.DataFrame, pd.DataFrame]) -> str:
    """What a duet A/B measured: both sides at once, each on half the machine, and the
    threads each side's workers had (read from their process rows)."""
    threads = []
    for name, side in zip(("base", "current"), samples, strict=True):
        # rows written without thread counts (older workers) say "?", never fail
        threads_column = side.get("intra_op_threads", pd.Series([], dtype=float))
        counts = pd.to_numeric(threads_column, errors="coerce").dropna()
        cores = side["cores"].dropna() if "cores" in side.columns else pd.Series([], dtype=object)
        n_cores = sorted({len(c) for c in cores if isinstance(c, list)})
        threads.append(
            f"{name} {'/'.join(str(int(t)) for t in sorted(set(counts))) or '?'} TF threads "
            f"on {'/'.join(map(str, n_cores)) or '?'} core(s)"
        )
    mark = current.metadata.get("soft", {}).get(AB_MARK) or {}
    where = (
        "each pinned to its own half of the cores (swapped every block)"
        if mark.get("pinned", True)
        else "both on every core with half the threads each"
    )
    return (
        f"duet A/B: both sides' workers of a cell ran at once, {where}, timed windows "
        f"started together ({'; '.join(threads)}). "
        "Each side was timed on half the machine: this answers 'did the code get slower', "
        "not 'how fast is a step on the whole machine'. Each cell is judged on its blocks "
        "less the most disturbed quarter (a block's slower side against the cell's median), "
        "which another job's load would otherwise turn into heavy tails (docs/gate.md)"
    )


def _median(values: np.ndarray | None) -> float:
    return float(np.median(values)) if values is not None and len(values) else float("nan")


def cell_flags(
    cell: CellKey,
    baseline: SideFacts,
    current: SideFacts,
    threshold: float,
    alpha: float,
    compile_p_adjusted: Mapping[CellKey, float],
) -> tuple[str, ...]:
    """Regressions beside step time: new failures, more retraces, slower compilation
    (``compile_p_adjusted``: Holm-adjusted p-values of compiling slower; absent: unjudged)."""
    flags = []
    baseline_status, current_status = baseline.statuses.get(cell), current.statuses.get(cell)
    error = current.first_errors.get(cell, "")
    because = f": {_short(error, 60)}" if error else ""
    if current_status == "failed" and baseline_status != "failed":
        before = f"was {baseline_status}" if baseline_status else "new cell"
        flags.append(f"newly fails ({before}){because}")
    elif current.failed_processes.get(cell, 0) and not baseline.failed_processes.get(cell, 0):
        flags.append(f"{current.failed_processes[cell]} process(es) newly failed{because}")
    old, new = (_median(side.retraces.get(cell)) for side in (baseline, current))
    if new > old:  # NaN on either side compares False
        flags.append(f"retraces {old:g} -> {new:g}")
    p_adjusted = compile_p_adjusted.get(cell, math.inf)
    old, new = (_median(side.compile_times.get(cell)) for side in (baseline, current))
    if p_adjusted <= alpha and new > old * (1 + threshold) and new - old > COMPILE_FLOOR_S:
        flags.append(f"compile {old:.2f}s -> {new:.2f}s (p {p_adjusted:.2g})")
    return tuple(flags)


def lost_cell(cell: CellKey, baseline: SideFacts, current: SideFacts) -> str:
    """Why a cell that ran ok in the baseline is missing or skipped now ("" when it is
    not): a loop that stops running must not pass the gate unless ``--allow-missing``."""
    if baseline.statuses.get(cell) != "ok":
        return ""
    status = current.statuses.get(cell)
    if status is None:
        return "was ok, not in the current run"
    if status == "skipped":
        reason = current.reasons.get(cell)
        return "was ok, now skipped" + (f": {_short(reason, 60)}" if reason else "")
    return ""


def _missing_note(cell: CellKey, statuses, counts: tuple[int, int], reference: str | None) -> str:
    for side, side_statuses, count in zip(("baseline", "current"), statuses, counts, strict=True):
        status = side_statuses.get(cell)
        if status is None and not count:
            return f"not in the {side} run"
        if status in ("failed", "skipped"):
            return f"{status} in the {side} run"
        if not count:
            what = f"{reference}-paired samples" if reference else "ok samples"
            return f"no {what} in the {side} run"
    return ""


def machine_speed_notes(baseline: Run, current: Run, threshold: float) -> list[str]:
    """A warning per device whose measured peak speed (soft.peak_matmul_flops) moved by
    more than ``threshold``: the machine was loaded differently between the runs."""
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


def step_time_samples(
    baseline: Run, current: Run, samples: tuple[pd.DataFrame, pd.DataFrame], reference: str | None
) -> tuple[tuple[dict[CellKey, np.ndarray], dict[CellKey, np.ndarray]], str | None]:
    """Each side's per-cell samples as the gate judges them, and a note on how: within-run
    ratios to ``reference``; drift-corrected for the two sides of an interleaved A/B with
    3 cells or more in common; else as measured."""
    if reference is not None:
        return tuple(within_run_ratio_samples(side, reference) for side in samples), None
    if (
        not measured_interleaved(baseline, current)
        or len(paired_cells(*(side["cell"] for side in samples))) < 3
    ):
        return tuple(per_cell(side, "step_time_s") for side in samples), None
    base, cur, block_factors = drift_corrected_samples(samples)
    note = (
        "interleaved A/B: each process's step time is divided by the drift around its pair "
        f"(cell c's process k on both sides), read from the {DRIFT_NEIGHBOURS} pairs of other "
        "cells before and after it (samples.local_drift_factors): median factor per block "
        f"{block_factors.min():.3f}-{block_factors.max():.3f}"
    )
    return (base, cur), note


def compare(
    baseline_dir: str | os.PathLike[str],
    current_dir: str | os.PathLike[str],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    allow_different_machines: bool = False,
    allow_missing: bool = False,
    fail_if_blind: bool = False,
) -> Comparison:
    """Judge every cell of ``current_dir`` against ``baseline_dir`` (the options and exit
    statuses: docs/gate.md); runs of different machines compare only with
    ``allow_different_machines``, as within-run ratios to the runs' reference loop. Raises
    RunDirError or IncomparableRunsError (one-line messages) when the two cannot be compared::

        result = compare("results/base", "results/head")
        result.exit_status  # 0 no confirmed regression, 1 a regression, 3 blind (opt-in)
    """
    if not 0 < alpha < 1:
        raise IncomparableRunsError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 <= threshold < 1:
        raise IncomparableRunsError(f"threshold must be in [0, 1), got {threshold}")
    baseline, current = load_run(baseline_dir), load_run(current_dir)
    if baseline.run_id == current.run_id:  # the same directory twice, or a copy of it
        raise IncomparableRunsError(
            f"{baseline_dir} and {current_dir} are the same run (run_id {baseline.run_id})"
        )
    hard_differences, soft_differences = (
        tuple(metadata_differences(baseline.metadata.get(k, {}), current.metadata.get(k, {}), skip))
        for k, skip in (("hard", ()), ("soft", IGNORED_SOFT_KEYS))
    )
    try:
        reference, disagreement = reference_loop(baseline, current, must_agree=True), None
    except ValueError as exc:
        reference, disagreement = None, f"{exc}: their within-run ratios do not compare"
    if hard_differences and not allow_different_machines:
        raise IncomparableRunsError(
            "runs come from different machines, their times do not compare ("
            + "; ".join(hard_differences)
            + "); pass --allow-different-machines to compare within-run ratios to "
            + (reference or "the reference loop")
        )
    if not allow_different_machines:
        reference = None
    elif disagreement:
        raise IncomparableRunsError(disagreement)
    elif reference is None:
        raise IncomparableRunsError(
            "within-run ratios need the reference loop, and neither run's metadata.json "
            "declares a loop ladder (runs made before tf-loopbench recorded it)"
        )

    samples = (process_samples(baseline), process_samples(current))
    if samples[0].empty and samples[1].empty:
        raise IncomparableRunsError(f"{baseline_dir} and {current_dir} hold no ok process samples")
    facts = (SideFacts.of(baseline, samples[0]), SideFacts.of(current, samples[1]))
    step_samples, drift_note = step_time_samples(baseline, current, samples, reference)
    paired = reference is None and measured_duet(baseline, current)
    if paired:
        blocks = paired_blocks((baseline, current), samples)
        log_ratios = {cell: ratios for cell, (ratios, _) in blocks.items()}
        disturbance = {cell: values for cell, (_, values) in blocks.items()}
        judged = judge_paired_blocks(log_ratios, step_samples, threshold, alpha, disturbance)
    else:
        interleaved = reference is None and measured_interleaved(baseline, current)
        judged = judge_step_times(*step_samples, threshold, alpha, plan=interleaved)
    statuses = (facts[0].statuses, facts[1].statuses)
    compile_times = (facts[0].compile_times, facts[1].compile_times)
    # compile times, like step times, do not carry across machines
    compiled = [] if allow_different_machines else _tested(*compile_times)
    compile_p_adjusted = dict(zip(compiled, _holm(*compile_times, compiled)[1], strict=True))

    cells = []
    skipped_in_both = 0
    for cell in sort_cells(set(statuses[0]) | set(statuses[1]) | set(judged)):
        flags = cell_flags(cell, *facts, threshold, alpha, compile_p_adjusted)
        lost = lost_cell(cell, *facts)
        if lost and not allow_missing:
            flags = (*flags, lost)
        if cell in judged:
            cells.append(replace(judged[cell], flags=flags))
        elif statuses[0].get(cell) == statuses[1].get(cell) == "skipped" and not flags:
            skipped_in_both += 1
        elif reference is not None and cell.loop == reference:
            # the reference's within-run ratio is 1 in both runs: the same by definition
            note = "the reference loop: ratio 1 by definition"
            cells.append(CellComparison(cell=cell, verdict=SAME, note=note, flags=flags))
        else:
            counts = (len(step_samples[0].get(cell, ())), len(step_samples[1].get(cell, ())))
            note = _missing_note(cell, statuses, counts, reference)
            if lost and allow_missing:
                note = f"{lost} (allowed: --allow-missing)"
            cells.append(CellComparison(cell, MISSING, note, *counts, flags=flags))
    if not judged and not any(cell.flags for cell in cells):
        raise IncomparableRunsError(
            f"{baseline_dir} and {current_dir} have no cell with samples on both sides"
        )
    notes = [
        f"the {side} run is incomplete (interrupted or still running): finished cells only"
        for side, run in (("baseline", baseline), ("current", current))
        if run.metadata.get("complete") is False
    ]
    notes += machine_speed_notes(baseline, current, threshold)
    block_s = float("nan")
    mark = current.metadata.get("soft", {}).get(AB_MARK) or {}
    blocks = max((c.n_current for c in judged.values()), default=0)
    if isinstance(mark, dict) and isinstance(mark.get("elapsed_s"), int | float) and blocks:
        block_s = float(mark["elapsed_s"]) / blocks  # an A/B: its pace, for the plan
    if paired:
        notes.append(duet_note(baseline, current, samples))
    elif drift_note:
        notes.append(drift_note)
    if not paired and not measured_interleaved(baseline, current):
        notes.append(
            "stored runs: the two runs met different moments of the machine, so its load "
            "differences land in the ratio; for a pull request, `loopbench ab BASE_REF` "
            "(both sides in one job, side by side) is the better gate"
        )
    if reference is not None:
        notes.append(
            f"within-run ratios: each loop's step time over {reference}'s in the same run "
            "(process k with process k); they carry across machines, absolute and compile times do not"
        )
    return Comparison(
        baseline=baseline,
        current=current,
        cells=tuple(cells),
        threshold=threshold,
        alpha=alpha,
        reference=reference,
        hard_differences=hard_differences,
        soft_differences=soft_differences,
        cells_skipped_in_both=skipped_in_both,
        notes=tuple(notes),
        drift_corrected=drift_note is not None and not paired,
        fail_if_blind=fail_if_blind,
        paired=paired,
        block_s=block_s,
    )
