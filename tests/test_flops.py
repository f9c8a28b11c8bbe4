"""Model FLOPs: each workload's ``flops_per_example`` formula against TensorFlow's own count.

The count comes from the TF profiler (``tf.compat.v1.profiler.profile`` with
``ProfileOptionBuilder.float_operation()``) on the graph of the traced training
step, with the batch shape fixed so every op's shape is known. That tooling
counts FLOPs from each op type's registered statistics: ``MatMul`` as
2*m*n*k, and elementwise ops (``BiasAdd``, ``BiasAddGrad``, ``Mul``, ``Sub``,
``AddV2``, ``RealDiv``, ``Square``, ``Sum``, ``Mean`` ...) as one per output
element; ``Relu``/``Tanh``, their gradients and the cross-entropy kernels are
not counted. The formulas count dense layers only (loops/base.py), so they are
compared with the profiler's MatMul FLOPs.

The traced graph holds gradients no output needs: a tape watches every
variable the step reads, so the GAN's generator tape also builds the
discriminator's weight gradients. The function runtime prunes them before it
runs the step; the count does the same, keeping only nodes that the step's
outputs and stateful ops (the variable updates) depend on
(``graph_util.extract_sub_graph``).
"""

from __future__ import annotations

import pytest
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.loops.base import WORKLOADS, WorkloadConfig
from tf_loopbench.loops.flops import profiled_flops_per_example  # the count itself lives in loops

BATCH = 64
TOLERANCE = 0.10


CASES = [(name, None) for name in WORKLOADS.names()] + [("mlp", 32), ("gan", 48)]


@pytest.mark.parametrize(("name", "width"), CASES, ids=[f"{n}-w{w}" for n, w in CASES])
def test_formula_matches_the_profilers_matmul_count(name, width):
    workload = WORKLOADS.get(name)(WorkloadConfig(seed=0, data_size=BATCH, width=width))
    counted = profiled_flops_per_example(workload)
    formula = workload.flops_per_example()
    assert counted.get("MatMul", 0) > 0, f"{name}: the profiler counted no MatMul"
    assert formula == pytest.approx(counted["MatMul"], rel=TOLERANCE), (
        f"{name}: formula {formula:,.0f} FLOPs per example, profiler {counted['MatMul']:,.0f}"
    )


@pytest.mark.parametrize(("name", "width"), [("linear", None), ("mlp", None), ("mlp", 128)])
def test_supervised_formula_is_the_built_models_dense_layers(name, width):
    """The formula from the layer shapes of the model the workload builds: every dense
    layer n -> m costs 2nm forward and 2nm for its weight gradient, and 2nm for its
    input gradient unless its input is the data (the first layer)."""
    import keras

    workload = WORKLOADS.get(name)(WorkloadConfig(seed=0, data_size=BATCH, width=width))
    model = workload.build().models["model"]
    shapes = [layer.kernel.shape for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert shapes, name
    expected = sum(2 * n * m * (2 if i == 0 else 3) for i, (n, m) in enumerate(shapes))
    assert workload.flops_per_example() == expected


def test_every_registered_workload_is_checked():
    assert {name for name, _ in CASES} == set(WORKLOADS.names())


def test_peak_probe_rate_is_a_timed_matmuls_rate():
    """The probe's FLOP/s against an independent figure: two eager ``tf.matmul``s of the
    same size timed from the host as one span (4 n^3 FLOPs; the probe's calls chain two
    too, so both time spans of the same length), best of 20, fetched to the host. They
    agree within 1.5x either way (measured 0.91-0.93): a slip in the FLOP count (n^3,
    the chain's length) or in what is timed puts them 2x apart. A busy machine slows
    either side at random: the best of three tries counts."""
    import time

    import tensorflow as tf
    from tf_loopbench.benchmarks.metadata import PEAK_PROBE, matmul_peak_flops

    n, matmuls, _ = PEAK_PROBE["gpu"]
    assert n >= 4096 and matmuls > 1  # on GPU a call's work dwarfs its launch and sync
    n = 512
    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    tf.matmul(a, b).numpy()
    ratios = []
    for _ in range(3):
        peak = matmul_peak_flops("cpu", size=(n, 2, 20))
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            tf.matmul(a, b)  # eager on CPU: runs before the next op is dispatched
            tf.matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
        ratios.append(peak / (2 * 2 * n**3 / best))
        if 1 / 1.5 < ratios[-1] < 1.5:
            return
    raise AssertionError(f"probe / timed matmuls: {', '.join(f'{r:.2f}' for r in ratios)}")
