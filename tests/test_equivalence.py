"""Equivalence before speed: every (workload, loop) pair, from identical initial
weights over the same batches, follows the eager loss trajectory within the loop
style's documented tolerance (loops/equivalence.py), and ends with the same weights.

Pairs come from the registries, so a new workload or loop style is covered
without editing this file; a loop style without a documented tolerance fails.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import loops.styles  # noqa: F401
import loops.workloads  # noqa: F401
from loops.base import LOOPS, WORKLOADS
from loops.equivalence import REFERENCE, TOLERANCES, max_relative_deviation, trajectory

STEPS = 6  # fewer than one epoch (256 examples / batch 32); see the epoch test below
PAIRS = [(w, loop) for w in WORKLOADS.names() for loop in LOOPS.names()]


@functools.cache
def reference(workload: str):
    return trajectory(workload, REFERENCE, steps=STEPS)


def test_every_registered_loop_has_a_documented_tolerance():
    assert set(TOLERANCES) == set(LOOPS.names())


def test_every_registered_pair_is_parametrized():
    assert len(PAIRS) == len(WORKLOADS) * len(LOOPS) >= 15


@pytest.mark.parametrize(("workload", "loop"), PAIRS, ids=[f"{w}-{lp}" for w, lp in PAIRS])
def test_loss_trajectory_matches_eager(workload: str, loop: str):
    expected = reference(workload)
    got = trajectory(workload, loop, steps=STEPS)
    assert got.losses.shape == (STEPS,)
    assert np.all(np.isfinite(got.losses))
    # the trajectory must move, or matching it proves nothing
    assert abs(expected.losses[-1] - expected.losses[0]) > 1e-3 * abs(expected.losses[0])
    tolerance = TOLERANCES[loop]
    deviation = max_relative_deviation(got.losses, expected.losses)
    assert deviation <= tolerance, f"{workload}/{loop}: {deviation:.2e} > {tolerance:.0e}"
    for name, weights in expected.weights.items():
        for w_expected, w_got in zip(weights, got.weights[name], strict=True):
            np.testing.assert_allclose(w_got, w_expected, rtol=max(tolerance, 1e-6) * 10, atol=1e-6)


def test_fit_follows_eager_across_an_epoch_boundary():
    # 256 examples / batch 64 = 4 steps an epoch: 10 steps cross two epoch ends
    expected = trajectory("mlp", REFERENCE, steps=10, batch_size=64)
    got = trajectory("mlp", "fit", steps=10, batch_size=64)
    assert max_relative_deviation(got.losses, expected.losses) <= TOLERANCES["fit"]


def test_different_seeds_give_different_trajectories():
    a = trajectory("linear", REFERENCE, steps=3, seed=0).losses
    b = trajectory("linear", REFERENCE, steps=3, seed=1).losses
    assert max_relative_deviation(a, b) > 1e-3
