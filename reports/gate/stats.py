"""Statistics of the regression gate's decision rule (docs/gate.md), one function per
ingredient; the median ratio is the comparison core's, re-exported. Every function works
along ``axis``, so tools/validate_gate.py applies the rule to thousands of comparisons at once.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable

import numpy as np
from scipy import special, stats
from tf_loopbench.reports.compare import BOOTSTRAP_SEED as BOOTSTRAP_SEED
from tf_loopbench.reports.compare import bootstrap_interval
from tf_loopbench.reports.compare import median_ratio as median_ratio
from tf_loopbench.reports.compare import ratio_of_medians_ci as ratio_of_medians_ci


def holm_adjust(p_values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Holm step-down adjusted p-values along ``axis`` (reject where adjusted <= alpha).

    >>> holm_adjust(np.array([0.01, 0.04, 0.03]))
    array([0.03, 0.06, 0.06])
    """
    p = np.moveaxis(np.asarray(p_values, dtype=float), axis, -1)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    stepped_down = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    adjusted = np.empty_like(stepped_down)
    np.put_along_axis(adjusted, order, stepped_down, axis=-1)
    return np.moveaxis(adjusted, -1, axis)


def smallest_one_sided_p(n_baseline: int, n_current: int) -> float:
    """The smallest p an exact one-sided MWU can return: 1 / C(n_baseline + n_current,
    n_baseline), every current sample above every baseline sample."""
    if n_baseline < 1 or n_current < 1:
        return 1.0
    return 1.0 / special.comb(n_baseline + n_current, n_baseline, exact=True)


def samples_needed_per_side(alpha: float) -> int:
    """The fewest samples per side with which the exact one-sided MWU can reach ``alpha``.

    >>> samples_needed_per_side(0.01)   # one cell: 1 / C(10, 5) = 0.004
    5
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = 1
    while smallest_one_sided_p(n, n) > alpha:
        n += 1
    return n


#: Up to this many samples a side the exact null distribution (milliseconds at this size).
EXACT_MAX_N = 200


def one_sided_mwu_p(
    baseline: np.ndarray, current: np.ndarray, alternative: str = "greater", axis: int = -1
) -> np.ndarray:
    """p-value that ``current`` is stochastically greater (slower) than ``baseline``
    (``alternative="less"``: faster). Exact up to ``EXACT_MAX_N`` a side: scipy's "auto"
    approximates above 8 samples or on any tie of a vectorised call, conservatively in
    the gate's tail (7 a side, complete separation: p = 0.00087, exact 0.00029).
    """
    largest = max(np.shape(current)[axis], np.shape(baseline)[axis])
    method = "exact" if largest <= EXACT_MAX_N else "auto"
    return stats.mannwhitneyu(
        current, baseline, alternative=alternative, axis=axis, method=method
    ).pvalue


#: The power at which a cell's detectable slowdown is stated ("minimum detectable effect").
DETECTION_POWER = 0.80
#: Resampled comparisons per cell for it, seeded (resampling error ~1 % of the figure).
POWER_RESAMPLES = 2000
POWER_SEED = 20261129


@functools.lru_cache(maxsize=512)
def critical_u(n_baseline: int, n_current: int, level: float) -> int | None:
    """The smallest U (pairs where the current sample is the slower) at which
    :func:`one_sided_mwu_p` reaches ``level``, asking the test itself; None if no U can.

    >>> critical_u(7, 7, 0.01 / 15)   # 48 of 49 pairs: one sample may be out of order
    48
    >>> critical_u(4, 4, 0.01) is None   # 1/C(8, 4) = 0.014 is the best 4 a side can do
    True
    """
    if n_baseline < 1 or n_current < 1:
        return None
    baseline = np.arange(n_baseline, dtype=float)
    # current sample j lies above k_j baseline samples; the k_j sum to u; no ties
    offsets = np.arange(n_current) / (10 * n_current)

    def p_at(u: int) -> float:
        above = np.clip(u - n_baseline * np.arange(n_current), 0, n_baseline)
        return float(one_sided_mwu_p(baseline, above - 0.5 + offsets, "greater"))

    us = range(n_baseline * n_current + 1)
    if p_at(us[-1]) > level:
        return None
    # p falls as u grows: the first u whose p reaches the level
    return bisect.bisect_left(us, True, key=lambda u: p_at(u) <= level)


def detectable_slowdown(
    baseline: np.ndarray,
    current: np.ndarray,
    level: float,
    threshold: float | None = None,
    size: int | None = None,
) -> float:
    """The smallest slowdown (0.08 = 8 %) that the one-sided test at ``level`` would
    flag in DETECTION_POWER of comparisons with these sample counts and this spread: a shift
    of the log step time, resampled from both sides' centred logs (docs/gate.md,
    "Power"). inf: the counts can never reach ``level``; nan: under two a side.

    With ``threshold`` it models the gate's whole rule: a comparison flags only when the
    test rejects AND its ratio of medians is beyond 1 + threshold, so each comparison
    needs the larger of the two shifts. ``size``: samples a side to model (default: as
    many as given; the plan asks how many would do).

    >>> rng = np.random.default_rng(0)
    >>> noise = lambda n: np.exp(0.05 * rng.standard_normal(n))   # 5 % spread
    >>> round(detectable_slowdown(noise(20), noise(20), 0.01 / 15), 2)   # theory: 0.07
    0.06
    """
    baseline, current = (np.log(np.asarray(side, dtype=float)) for side in (baseline, current))
    if baseline.size < 2 or current.size < 2:
        return float("nan")
    sizes = (size, size) if size else (baseline.size, current.size)
    needed = critical_u(*sizes, level)
    if needed is None:
        return float("inf")
    noise = np.concatenate([baseline - np.median(baseline), current - np.median(current)])
    noise *= np.sqrt(noise.size / (noise.size - 2))  # centring on two medians shrank it
    rng = np.random.default_rng(POWER_SEED)
    draws = [rng.choice(noise, (POWER_RESAMPLES, n)) for n in sizes]
    differences = (draws[0][:, :, None] - draws[1][:, None, :]).reshape(POWER_RESAMPLES, -1)
    shift_needed = np.partition(differences, needed - 1, axis=1)[:, needed - 1]
    if threshold is not None:  # and the ratio of medians beyond 1 + threshold
        ratio = np.log(median_ratio(*(np.exp(draw) for draw in draws), axis=1))
        shift_needed = np.maximum(shift_needed, np.log1p(threshold) - ratio)
    return float(np.expm1(np.quantile(shift_needed, DETECTION_POWER)))


# ----------------------------------------------------------------------------- paired blocks
# A duet A/B (benchmarks/duet.py) times both sides of block k at once, so the gate judges
# one number per block: the log ratio current/base of its matched windows (samples.py).


def signed_rank_p(log_ratios: np.ndarray, alternative: str = "greater", axis: int = -1):
    """p-value that the blocks' log ratios lie above 0 (current slower; ``"less"``:
    faster): the one-sided exact Wilcoxon signed-rank test."""
    return stats.wilcoxon(log_ratios, alternative=alternative, method="exact", axis=axis).pvalue


def blocks_needed(level: float) -> int:
    """The fewest blocks with which the exact one-sided signed-rank test can reach
    ``level`` (its smallest p is 2**-n, every block slower).

    >>> blocks_needed(0.01 / 12)
    11
    """
    return max(1, int(np.ceil(-np.log2(level))))


#: the share of a duet cell's blocks, its most disturbed, that the paired gate leaves out
#: (docs/gate.md, "Disturbed blocks"; docs/results/2026-12-07-duet-tails.md)
DISTURBED_SHARE = 0.25


def block_disturbance(base: np.ndarray, current: np.ndarray) -> np.ndarray:
    """How disturbed each block (last axis) was: max(base, current) over the median of
    both sides' values. The same whichever side holds which number, so under no change
    a selection by it leaves each kept block's sign a fair coin.

    >>> block_disturbance(np.array([1.0, 1.0, 2.0]), np.array([1.0, 3.0, 1.0])).tolist()
    [1.0, 3.0, 2.0]
    """
    scale = np.median(np.concatenate([base, current], axis=-1), axis=-1, keepdims=True)
    return np.maximum(base, current) / scale


def disturbed_to_drop(blocks: int, level: float, share: float = DISTURBED_SHARE) -> int:
    """How many of ``blocks`` the paired gate leaves out: ``share`` of them, but never so
    many that the exact test can no longer reach ``level``.

    >>> disturbed_to_drop(20, 0.01 / 12), disturbed_to_drop(12, 0.01 / 12), disturbed_to_drop(8, 0.01)
    (5, 1, 1)
    """
    return max(0, min(int(share * blocks), blocks - blocks_needed(level)))


def least_disturbed(values: np.ndarray, disturbance: np.ndarray, drop: int) -> np.ndarray:
    """``values`` without the ``drop`` most disturbed blocks of the last axis (ties: the
    later block goes), in block order.

    >>> least_disturbed(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 3.0, 1.1, 3.0]), 1)
    array([0.1, 0.2, 0.3])
    """
    if drop <= 0:
        return values
    keep = np.argsort(disturbance, axis=-1, kind="stable")[..., : disturbance.shape[-1] - drop]
    return np.take_along_axis(values, np.sort(keep, axis=-1), axis=-1)


@functools.lru_cache(maxsize=512)
def critical_signed_rank(n: int, level: float) -> int | None:
    """The smallest signed-rank statistic T+ (the rank sum of the positive values) at
    which :func:`signed_rank_p` reaches ``level`` with ``n`` blocks, asking the test
    itself; None if none can.

    >>> critical_signed_rank(12, 0.01 / 12)   # of 78: blocks of rank 1 and 2 may be negative
    76
    """
    if n < 1 or 0.5**n > level:
        return None
    ranks = np.arange(1, n + 1, dtype=float)

    def p_at(t: int) -> float:
        signs, left = -np.ones(n), t
        for rank in range(n, 0, -1):  # the largest ranks first: any sum 0..n(n+1)/2
            if rank <= left:
                signs[rank - 1], left = 1.0, left - rank
        return float(signed_rank_p(signs * ranks))

    ts = range(n * (n + 1) // 2 + 1)
    return bisect.bisect_left(ts, True, key=lambda t: p_at(t) <= level)


def paired_detectable_slowdown(
    log_ratios: np.ndarray, level: float, threshold: float, blocks: int | None = None
) -> float:
    """The smallest slowdown (0.08 = 8 %) the paired gate's whole rule flags in
    DETECTION_POWER of comparisons of ``blocks`` blocks (default: as many as given) with
    this spread: the signed-rank test at ``level`` AND the ratio (exp of the blocks'
    median log ratio) beyond 1 + ``threshold`` (docs/gate.md, "Power").

    The blocks' log ratios, centred on their median (widened by sqrt(n / (n - 1)) for
    it), are the noise; each of POWER_RESAMPLES seeded comparisons draws the blocks from
    it. T+ of values shifted by s counts their Walsh averages (x_i + x_j) / 2, i <= j,
    above -s; so the test needs s above minus the c-th largest Walsh average (c: the
    critical T+), exactly, and the ratio needs s above log(1 + threshold) minus the
    draw's median. The larger of the two, at the DETECTION_POWER quantile. inf: the
    blocks can never reach ``level``; nan: under two blocks.

    >>> rng = np.random.default_rng(0)
    >>> round(paired_detectable_slowdown(0.03 * rng.standard_normal(20), 0.01 / 12, 0.05), 3)
    0.058
    """
    log_ratios = np.asarray(log_ratios, dtype=float)
    log_ratios = log_ratios[np.isfinite(log_ratios)]
    if log_ratios.size < 2:
        return float("nan")
    n = blocks or log_ratios.size
    needed = critical_signed_rank(n, level)
    if needed is None:
        return float("inf")
    noise = log_ratios - np.median(log_ratios)
    noise *= np.sqrt(noise.size / (noise.size - 1))
    draws = np.random.default_rng(POWER_SEED).choice(noise, (POWER_RESAMPLES, n))
    first, second = np.triu_indices(n)
    test_shift = np.empty(POWER_RESAMPLES)
    chunk = max(1, 2_000_000 // first.size)  # Walsh averages a chunk of draws at a time
    for start in range(0, POWER_RESAMPLES, chunk):
        part = draws[start : start + chunk]
        walsh = (part[:, first] + part[:, second]) / 2
        largest = walsh.shape[1] - needed  # the c-th largest, counted from the bottom
        test_shift[start : start + chunk] = -np.partition(walsh, largest, axis=1)[:, largest]
    ratio_shift = np.log1p(threshold) - np.median(draws, axis=1)
    return float(np.expm1(np.quantile(np.maximum(test_shift, ratio_shift), DETECTION_POWER)))


#: the most blocks the plan (``blocks_to_see``) looks at
PLAN_MOST_BLOCKS = 120


def blocks_to_see(
    detectable: Callable[[int], float], threshold: float, have: int, most: int = PLAN_MOST_BLOCKS
) -> int | None:
    """The fewest blocks (at least ``have``) at which ``detectable(blocks)`` is at most
    ``threshold`` (the plan: how long a cell must run to see a slowdown of that size);
    None if not even ``most`` do."""
    if detectable(most) > threshold:
        return None
    blocks = range(max(2, have), most + 1)
    return blocks[bisect.bisect_left(blocks, True, key=lambda n: detectable(n) <= threshold)]


def median_log_ratio_ci(log_ratios: np.ndarray) -> tuple[float, float]:
    """Percentile-bootstrap interval over blocks of exp(median log ratio), the paired
    gate's ratio; (nan, nan) under two blocks."""
    log_ratios = np.asarray(log_ratios, dtype=float)
    if log_ratios.size < 2:
        return (float("nan"), float("nan"))
    if np.ptp(log_ratios) == 0:
        point = float(np.exp(log_ratios[0]))
        return (point, point)
    low, high = bootstrap_interval((log_ratios,), np.median)
    return float(np.exp(low)), float(np.exp(high))
