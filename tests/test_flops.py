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


def test_mlp_at_width_128_is_409088_per_example():
    assert WORKLOADS.get("mlp")(WorkloadConfig(width=128)).flops_per_example() == 409_088


def test_every_registered_workload_is_checked():
    assert {name for name, _ in CASES} == set(WORKLOADS.names())


def test_peak_probe_chains_large_matmuls_in_one_call():
    from tf_loopbench.benchmarks.metadata import PEAK_PROBE, matmul_peak_flops

    n, matmuls, _ = PEAK_PROBE["gpu"]
    assert n >= 4096 and matmuls > 1
    peak = matmul_peak_flops("cpu", size=(256, 3, 2))
    assert 1e8 < peak < 1e14  # a CPU's float32 matmul rate, not a unit slip
