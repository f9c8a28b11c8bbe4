"""Statistics of the regression gate's decision rule (docs/gate.md), one function per
ingredient; the median ratio is the comparison core's, re-exported. Every function works
along ``axis``, so tools/validate_gate.py applies the rule to thousands of comparisons at once.
"""

from __future__ import annotations

import bisect
import functools

import numpy as np
from scipy import special, stats
from tf_loopbench.reports.compare import BOOTSTRAP_SEED as BOOTSTRAP_SEED
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


def detectable_slowdown(baseline: np.ndarray, current: np.ndarray, level: float) -> float:
    """The smallest slowdown (0.08 = 8 %) that the one-sided test at ``level`` would
    flag in DETECTION_POWER of comparisons with these sample counts and this spread: a shift
    of the log step time, resampled from both sides' centred logs (docs/gate.md,
    "Power"). inf: the counts can never reach ``level``; nan: under two a side.

    >>> rng = np.random.default_rng(0)
    >>> noise = lambda n: np.exp(0.05 * rng.standard_normal(n))   # 5 % spread
    >>> round(detectable_slowdown(noise(20), noise(20), 0.01 / 15), 2)   # theory: 0.07
    0.06
    """
    baseline, current = (np.log(np.asarray(side, dtype=float)) for side in (baseline, current))
    if baseline.size < 2 or current.size < 2:
        return float("nan")
    needed = critical_u(baseline.size, current.size, level)
    if needed is None:
        return float("inf")
    noise = np.concatenate([baseline - np.median(baseline), current - np.median(current)])
    noise *= np.sqrt(noise.size / (noise.size - 2))  # centring on two medians shrank it
    rng = np.random.default_rng(POWER_SEED)
    draws = [rng.choice(noise, (POWER_RESAMPLES, side.size)) for side in (baseline, current)]
    differences = (draws[0][:, :, None] - draws[1][:, None, :]).reshape(POWER_RESAMPLES, -1)
    shift_needed = np.partition(differences, needed - 1, axis=1)[:, needed - 1]
    return float(np.expm1(np.quantile(shift_needed, DETECTION_POWER)))
