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
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig
from tf_loopbench.loops.equivalence import (
    PRECISION_TOLERANCES,
    REFERENCE,
    TOLERANCES,
    max_relative_deviation,
    precision_floor,
    tolerance,
    trajectory,
)

STEPS = 6  # fewer than one epoch (256 examples / batch 32); see the epoch test below
PAIRS = [(w, loop) for w in WORKLOADS.names() for loop in LOOPS.names()]


@functools.cache
def reference(workload: str):
    return trajectory(workload, REFERENCE, steps=STEPS)


def test_every_registered_loop_has_a_documented_tolerance():
    assert set(TOLERANCES) == set(LOOPS.names())
    for precision, table in PRECISION_TOLERANCES.items():
        assert set(table) == set(LOOPS.names()), precision


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


def _assert_follows(got, expected, limit: float, what: str, weights: bool = True) -> None:
    """``got`` (any steps per call) against a one-step-a-call ``expected``: its
    per-call losses, its validation loss (a run's equal-work check) and its weights."""
    want = got.per_call(expected.losses)
    assert len(got.losses) == len(want) > 0 and np.all(np.isfinite(got.losses))
    deviation = max_relative_deviation(got.losses, want)
    assert deviation <= limit, f"{what}: losses {deviation:.2e} > {limit:.0e}"
    val = abs(got.val_loss - expected.val_loss) / abs(expected.val_loss)
    assert val <= limit, f"{what}: validation loss {val:.2e} > {limit:.0e}"
    for name, values in expected.weights.items() if weights else ():
        for w_expected, w_got in zip(values, got.weights[name], strict=True):
            np.testing.assert_allclose(w_got, w_expected, rtol=max(limit, 1e-6) * 10, atol=1e-5)


#: K steps a call: every graph style on mlp; fit on the GAN (its own train_step, whose
#: logs are the last step's) and on linear across fit's epoch ends (8 steps an epoch)
STEPS_PER_CALL_CASES = [("mlp", loop) for loop in ("tf_function", "tf_data", "xla", "fit")] + [
    ("gan", "fit"),
    ("linear", "fit"),
]


@pytest.mark.parametrize(
    ("workload", "loop"), STEPS_PER_CALL_CASES, ids=["-".join(c) for c in STEPS_PER_CALL_CASES]
)
def test_several_steps_per_call_follow_eager(workload: str, loop: str):
    steps = 12 if workload == "linear" else 8
    expected = trajectory(workload, REFERENCE, steps=steps, steps_multiple=4)
    got = trajectory(workload, loop, steps=steps, steps_per_call=4)
    assert list(got.steps) == list(range(3, steps, 4))  # one log a call, at its last step
    _assert_follows(got, expected, TOLERANCES[loop], f"{workload}/{loop} K=4")


def test_eager_declines_several_steps_per_call():
    with pytest.raises(NotImplementedError, match="one step per call"):
        trajectory("linear", REFERENCE, steps_per_call=2)


#: mixed precision: mlp in the graph styles that round differently (graph, XLA, fit's
#: compiled loss), and the GAN's two loss-scaled optimizers under fit
PRECISION_CASES = [
    (precision, "mlp", loop)
    for precision in ("mixed_bfloat16", "mixed_float16")
    for loop in ("tf_function", "xla", "fit")
] + [("mixed_float16", "gan", "fit")]


@functools.cache
def mixed_reference(workload: str, precision: str):
    return trajectory(workload, REFERENCE, steps=STEPS, precision=precision)


@pytest.mark.parametrize(
    ("precision", "workload", "loop"), PRECISION_CASES, ids=["-".join(c) for c in PRECISION_CASES]
)
def test_mixed_precision_follows_eager_in_the_same_precision(precision, workload, loop):
    import keras

    expected = mixed_reference(workload, precision)
    got = trajectory(workload, loop, steps=STEPS, precision=precision)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after
    # weights: Adam's step is about the learning rate whatever the gradient's size, so a
    # gradient rounded differently moves a weight by up to that; the losses tell
    what = f"{precision} {workload}/{loop}"
    _assert_follows(got, expected, tolerance(loop, precision), what, weights=False)
    # the same precision: the loss is farther from float32's than float32 rounding
    # goes, and within the tolerance of it
    floor = precision_floor(precision)
    if floor is not None:
        distance = abs(got.val_loss - reference(workload).val_loss) / reference(workload).val_loss
        assert floor < distance <= tolerance(loop, precision), f"{what}: {distance:.1e}"


def _process_rows(cells: dict[tuple[str, str], float]) -> list[dict]:
    """One process row per (loop, precision) cell of mlp with its equal-work loss, as
    the worker writes them (tolerance and floor from loops/equivalence.py)."""
    return [
        {
            "kind": "process",
            "workload": "mlp",
            "loop": loop,
            "device": "cpu",
            "batch_size": 32,
            "precision": precision,
            "process": 0,
            "status": "ok",
            "step_time_s": 1e-3,
            "equal_work_loss": loss,
            "equivalence_reference": loop == REFERENCE,
            "equivalence_rtol": tolerance(loop, precision),
            "precision_floor": precision_floor(precision),
        }
        for (loop, precision), loss in cells.items()
    ]


def test_a_float32_cell_labelled_bfloat16_is_caught():
    """A tf_function cell that trained in float32 but is labelled mixed_bfloat16 passes
    the same-precision check (it is within 5e-2 of bfloat16's eager loss) and is caught
    twice: its loss is as near float32's as float32 rounding, and its layers compute in
    float32. A true bfloat16 cell passes both."""
    from tf_loopbench.benchmarks.stats import summarize
    from tf_loopbench.loops.knobs import precision_not_run, precision_policy

    bf16 = "mixed_bfloat16"
    float32 = reference("mlp").val_loss
    in_bf16 = trajectory("mlp", "tf_function", steps=STEPS, precision=bf16).val_loss
    in_float32 = trajectory("mlp", "tf_function", steps=STEPS).val_loss
    references = {
        ("eager", "float32"): float32,
        ("eager", bf16): mixed_reference("mlp", bf16).val_loss,
    }
    assert abs(in_float32 - references[("eager", bf16)]) / references[("eager", bf16)] <= 5e-2

    def equivalent(loss: float) -> bool:
        summary = summarize(_process_rows({**references, ("tf_function", bf16): loss}))
        return summary.set_index(["loop", "precision"]).loc[("tf_function", bf16), "equivalent"]

    assert equivalent(in_bf16) is True
    assert equivalent(in_float32) is False
    workload = WORKLOADS.get("mlp")(WorkloadConfig(data_size=256))
    with precision_policy(bf16):
        assert precision_not_run(bf16, workload.build().models.values()) is None
    with precision_policy("float32"):
        built_before = workload.build().models.values()
    with precision_policy(bf16):  # the policy set after the model was built
        reason = precision_not_run(bf16, built_before)
    assert reason == "the model computed in float32, not mixed_bfloat16's bfloat16"
