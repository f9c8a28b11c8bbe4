"""Simulate the real coverage of the intervals tf-loopbench prints.

A developer tool (docs/decisions/0010-intervals-with-their-real-coverage.md holds its
table; tests/test_coverage.py re-runs a small part of it against the labels). Each
interval is computed by the suite's own functions on thousands of simulated cells at
once, from distributions shaped like step times across processes:

- ``lognormal``: sigma 0.1, the usual quiet cell;
- ``bimodal``: 70% near 1, 30% near 1.4 (a cell whose processes land on two speeds);
- ``heavy``: 1 + a Pareto tail of index 1.5 scaled 0.05 (rare, very slow processes).

The coverage of an interval is the share of simulated cells whose interval holds the
true figure: the population median for one cell, the ratio of the two populations'
medians for a speedup, median step + median epoch end / steps for an amortized step.

    python tools/coverage.py --draws 4000 --processes 2 3 4 5 6 8 12
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
from collections.abc import Callable

import numpy as np
from tf_loopbench.benchmarks.stats import median_ci
from tf_loopbench.reports.compare import (
    Amortized,
    amortized_interval,
    amortized_ratio_ci,
    bootstrap_interval,
    ratio_of_medians_ci,
)

#: name -> (draw(rng, shape), population median)
Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _lognormal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.lognormal(0.0, 0.1, shape)


def _bimodal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    slow = rng.random(shape) < 0.3
    return rng.lognormal(0.0, 0.03, shape) * np.where(slow, 1.4, 1.0)


def _heavy(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 1.0 + 0.05 * rng.pareto(1.5, shape)


def _median_of(draw: Draw) -> float:
    """The population median, from four million draws (to ~1e-4: far inside any interval)."""
    return float(np.median(draw(np.random.default_rng(12345), (4_000_000,))))


DISTRIBUTIONS: dict[str, Draw] = {"lognormal": _lognormal, "bimodal": _bimodal, "heavy": _heavy}
MEDIANS = {name: _median_of(draw) for name, draw in DISTRIBUTIONS.items()}


def median_coverage(name: str, n: int, draws: int, seed: int = 0) -> float:
    """Coverage of stats.median_ci (the order-statistic interval of a cell's median)."""
    rng = np.random.default_rng(seed)
    samples = DISTRIBUTIONS[name](rng, (draws, n))
    hits = [low <= MEDIANS[name] <= high for low, high, _ in map(median_ci, samples)]
    return float(np.mean(hits))


def bootstrap_median_coverage(name: str, n: int, draws: int, seed: int = 0) -> float:
    """Coverage of the percentile bootstrap of a cell's median: stats.py's interval for 2 to
    5 processes before it became the range (commit 0b674d9 and earlier)."""
    rng = np.random.default_rng(seed)
    samples = DISTRIBUTIONS[name](rng, (draws, n))
    low, high = bootstrap_interval((samples,), lambda a, axis=-1: np.median(a, axis=axis), seed)
    return float(np.mean((low <= MEDIANS[name]) & (MEDIANS[name] <= high)))


def ratio_coverage(subject: str, reference: str, n: int, draws: int, seed: int = 0) -> float:
    """Coverage of the core's ratio-of-medians interval (reports.compare.ratio_of_medians_ci,
    every speedup's), n processes a side; the reference is twice as slow."""
    rng = np.random.default_rng(seed)
    mine = DISTRIBUTIONS[subject](rng, (draws, n))
    theirs = 2.0 * DISTRIBUTIONS[reference](rng, (draws, n))
    low, high = ratio_of_medians_ci(mine, theirs, seed)
    truth = 2.0 * MEDIANS[reference] / MEDIANS[subject]
    return float(np.mean((low <= truth) & (truth <= high)))


#: the amortized simulations: an epoch's steps, and the median epoch end over them (a
#: large per-epoch cost, 15% of a step, so that the spans' uncertainty matters)
STEPS_PER_EPOCH, EPOCH_SHARE = 16, 0.15


def amortized_coverage(name: str, n: int, draws: int, seed: int = 0) -> float:
    """Coverage of compare.amortized_interval (summary.csv's amortized interval): n
    processes, one epoch-end span each (the quick run's mlp and gan), spans of the same
    shape as the steps."""
    rng = np.random.default_rng(seed)
    steady = DISTRIBUTIONS[name](rng, (draws, n))
    spans = EPOCH_SHARE * STEPS_PER_EPOCH * DISTRIBUTIONS[name](rng, (draws, n))
    low, high = amortized_interval(Amortized(steady, spans, STEPS_PER_EPOCH))
    truth = MEDIANS[name] * (1 + EPOCH_SHARE)
    return float(np.mean((low <= truth) & (truth <= high)))


def amortized_ratio_coverage(name: str, n: int, draws: int, seed: int = 0) -> float:
    """Coverage of compare.amortized_ratio_ci (every amortized "x fit"): a loop without
    epochs (lognormal steps) against a reference of ``name``'s shape with epoch ends."""
    rng = np.random.default_rng(seed)
    mine = DISTRIBUTIONS["lognormal"](rng, (draws, n))
    steady = 2.0 * DISTRIBUTIONS[name](rng, (draws, n))
    spans = 2.0 * EPOCH_SHARE * STEPS_PER_EPOCH * DISTRIBUTIONS[name](rng, (draws, n))
    low, high = amortized_ratio_ci(
        Amortized(mine, np.empty(0)), Amortized(steady, spans, STEPS_PER_EPOCH)
    )
    truth = 2.0 * MEDIANS[name] * (1 + EPOCH_SHARE) / MEDIANS["lognormal"]
    return float(np.mean((low <= truth) & (truth <= high)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8, 12])
    args = parser.parse_args(argv)
    names = list(DISTRIBUTIONS)
    print("| processes | interval | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for n in args.processes:
        cells = [f"{median_coverage(name, n, args.draws):.3f}" for name in names]
        print(f"| {n} | cell median (order statistics) | " + " | ".join(cells) + " |")
        cells = [f"{bootstrap_median_coverage(name, n, args.draws):.3f}" for name in names]
        print(f"| {n} | cell median, bootstrap (before) | " + " | ".join(cells) + " |")
        cells = [f"{ratio_coverage(name, name, n, args.draws):.3f}" for name in names]
        print(f"| {n}+{n} | ratio, same shapes | " + " | ".join(cells) + " |")
        cells = [f"{ratio_coverage(name, 'lognormal', n, args.draws):.3f}" for name in names]
        print(f"| {n}+{n} | ratio, against lognormal | " + " | ".join(cells) + " |")
        cells = [f"{amortized_coverage(name, n, args.draws):.3f}" for name in names]
        print(f"| {n} (+{n} spans) | amortized step | " + " | ".join(cells) + " |")
        cells = [f"{amortized_ratio_coverage(name, n, args.draws):.3f}" for name in names]
        print(f"| {n}+{n} (+{n} spans) | amortized ratio | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
