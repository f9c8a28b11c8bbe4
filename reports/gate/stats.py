"""Statistics of the regression gate: the decision rule, one function per ingredient.

Per cell, on each side's per-process samples: (1) a one-sided Mann-Whitney U test,
current slower than baseline, exact for small samples; (2) Holm's step-down correction
across the cells compared, at ``alpha``; (3) the ratio of medians current/baseline beyond
``1 + threshold``. A cell is a confirmed regression only when 2 and 3 both hold. The
ratio and its seeded bootstrap interval are the comparison core's (``reports.compare``),
re-exported here. Every function takes arrays and works along ``axis``, so the
validation tool (``tools/validate_gate.py``) applies exactly the gate's rule to
thousands of resampled comparisons at once.

    >>> samples_needed_per_side(0.01)   # one cell: the exact one-sided p can reach 1 %
    5
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special, stats
from tf_loopbench.reports.compare import BOOTSTRAP_RESAMPLES as BOOTSTRAP_RESAMPLES
from tf_loopbench.reports.compare import BOOTSTRAP_SEED as BOOTSTRAP_SEED
from tf_loopbench.reports.compare import CONFIDENCE_LEVEL as CONFIDENCE_LEVEL
from tf_loopbench.reports.compare import median_ratio as median_ratio
from tf_loopbench.reports.compare import ratio_of_medians_ci as ratio_of_medians_ci


def holm_adjust(p_values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Holm step-down adjusted p-values along ``axis`` (reject where adjusted <= alpha).

    The i-th smallest of m p-values is multiplied by (m - i), the running maximum keeps
    the step-down monotone, and values are capped at 1.

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
    """The smallest p-value an exact one-sided Mann-Whitney U test can return.

    It is reached when every current sample exceeds every baseline sample: one
    ordering out of C(n_baseline + n_current, n_baseline) equally likely ones.
    """
    if n_baseline < 1 or n_current < 1:
        return 1.0
    return 1.0 / special.comb(n_baseline + n_current, n_baseline, exact=True)


def samples_needed_per_side(alpha: float) -> int:
    """The fewest samples per side with which the exact one-sided MWU can reach ``alpha``.

    With n per side the smallest p is 1 / C(2n, n); below that n no result, however
    clear, can be significant.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = 1
    while smallest_one_sided_p(n, n) > alpha:
        n += 1
    return n


#: Both sides at most this many samples: the exact null distribution (scipy computes it
#: in milliseconds at this size). Beyond it scipy's normal approximation is accurate.
EXACT_MAX_N = 200


def one_sided_mwu_p(
    baseline: np.ndarray, current: np.ndarray, alternative: str = "greater", axis: int = -1
) -> np.ndarray:
    """p-value that ``current`` is stochastically greater (slower) than ``baseline``.

    ``alternative="less"`` asks whether ``current`` is faster. Exact up to
    ``EXACT_MAX_N`` a side: scipy's ``method="auto"`` takes the normal approximation
    above 8 samples or on ANY tie of a vectorised call, and it is conservative in the
    gate's tail (7 a side, complete separation: p = 0.00087, exact 0.00029). Ties,
    which real timings almost never have, count as half a pair each.
    """
    n_current = np.shape(current)[axis]
    n_baseline = np.shape(baseline)[axis]
    method = "exact" if max(n_current, n_baseline) <= EXACT_MAX_N else "auto"
    return stats.mannwhitneyu(
        current, baseline, alternative=alternative, axis=axis, method=method
    ).pvalue


#: The power at which a cell's detectable slowdown is stated: the slowdown the test
#: flags in 80 % of repeats, the usual "minimum detectable effect".
DETECTION_POWER = 0.80
#: Resampled comparisons per cell for the detectable slowdown (seeded: the same runs
#: always give the same figure; its resampling error is about 1 % of the figure).
POWER_RESAMPLES = 2000
POWER_SEED = 20261129


@functools.lru_cache(maxsize=512)
def critical_u(n_baseline: int, n_current: int, level: float) -> int | None:
    """The smallest U (pairs where the current sample is the slower) at which the
    one-sided test of :func:`one_sided_mwu_p` reaches ``level``; None if no U can.

    Found by asking the test itself about samples built to have each U, so it holds
    whatever method the test uses.

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

    low, high = 0, n_baseline * n_current
    if p_at(high) > level:
        return None
    while low < high:  # p falls as u grows: the first u whose p reaches the level
        middle = (low + high) // 2
        if p_at(middle) <= level:
            high = middle
        else:
            low = middle + 1
    return low


def detectable_slowdown(
    baseline: np.ndarray,
    current: np.ndarray,
    level: float,
    power: float = DETECTION_POWER,
    n_resamples: int = POWER_RESAMPLES,
    seed: int = POWER_SEED,
) -> float:
    """The smallest slowdown (0.08 = 8 %) that the one-sided test at ``level`` would
    flag in ``power`` of comparisons with these sample counts and this spread.

    A location shift of the log step time: both sides' log samples, centred on their
    medians (widened by sqrt(N / (N - 2))), are the cell's noise; each resampled
    comparison draws both sides from it. The test rejects when U reaches
    ``c = critical_u(...)``, and with the current side shifted by d, U counts the pairs
    with baseline - current < d: the shift a comparison needs is the c-th smallest of
    those differences; the detectable shift is their ``power`` quantile (docs/gate.md,
    "Power"). inf: the counts can never reach ``level``; nan: under two a side.

    >>> rng = np.random.default_rng(0)
    >>> noise = lambda n: np.exp(0.05 * rng.standard_normal(n))   # 5 % spread
    >>> round(detectable_slowdown(noise(20), noise(20), 0.01 / 15), 2)   # theory: 0.07
    0.06
    """
    baseline = np.log(np.asarray(baseline, dtype=float))
    current = np.log(np.asarray(current, dtype=float))
    if baseline.size < 2 or current.size < 2:
        return float("nan")
    needed = critical_u(baseline.size, current.size, level)
    if needed is None:
        return float("inf")
    noise = np.concatenate([baseline - np.median(baseline), current - np.median(current)])
    noise *= np.sqrt(noise.size / (noise.size - 2))  # centring on two medians shrank it
    rng = np.random.default_rng(seed)
    draws_baseline = rng.choice(noise, (n_resamples, baseline.size))
    draws_current = rng.choice(noise, (n_resamples, current.size))
    differences = (draws_baseline[:, :, None] - draws_current[:, None, :]).reshape(n_resamples, -1)
    shift_needed = np.partition(differences, needed - 1, axis=1)[:, needed - 1]
    return float(np.expm1(np.quantile(shift_needed, power)))


def confirmed_slower(
    p_adjusted: np.ndarray, ratio: np.ndarray, alpha: float, threshold: float
) -> np.ndarray:
    """The gate: significant after Holm AND the median ratio beyond ``1 + threshold``."""
    return (np.asarray(p_adjusted) <= alpha) & (np.asarray(ratio) > 1.0 + threshold)


def confirmed_faster(
    p_adjusted: np.ndarray, ratio: np.ndarray, alpha: float, threshold: float
) -> np.ndarray:
    """Mirror of :func:`confirmed_slower` for speed-ups (ratio below ``1 - threshold``)."""
    return (np.asarray(p_adjusted) <= alpha) & (np.asarray(ratio) < 1.0 - threshold)
