"""pytest-benchmark over both registries: every (workload, loop) pair on CPU.

    nox -s pytest_benchmark                       # or:
    pytest tools/test_loop_benchmarks.py --benchmark-only --benchmark-save=base
    pytest tools/test_loop_benchmarks.py --benchmark-only --benchmark-compare

One round = ``STEPS_PER_ROUND`` steps followed by a host sync, inside one
``run`` call per pair (``benchmarks/stepping.py``), so a style's per-call
set-up is not in its rounds. The first step (trace / XLA compile) is timed
before the rounds and stored in ``extra_info`` with the retrace count and the
final loss. Stats are per round; divide by ``extra_info["steps_per_round"]``
for a step. The rigorous numbers (fresh process per sample, phases, CIs) come
from ``loopbench run``; this file is for users who keep pytest-benchmark
histories.
"""

from __future__ import annotations

import time

import pytest
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.benchmarks.stepping import SteppedTrainer
from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig

STEPS_PER_ROUND = 10
ROUNDS = 20
WARMUP_ROUNDS = 3


@pytest.mark.parametrize("loop", LOOPS.names())
@pytest.mark.parametrize("workload", WORKLOADS.names())
def test_training_steps(benchmark, workload: str, loop: str) -> None:
    instance = WORKLOADS.get(workload)(WorkloadConfig(seed=0))
    data = instance.make_data()
    batch_size = instance.default_batch_size
    state = instance.build()
    trainer = LOOPS.get(loop)().make_trainer(
        instance, state, data.whole_batches(batch_size), batch_size
    )
    total = 1 + (ROUNDS + WARMUP_ROUNDS) * STEPS_PER_ROUND
    stepped = SteppedTrainer(trainer, total, trainer.sync)
    try:
        start = time.perf_counter()
        stepped.advance(1)
        first_step_s = time.perf_counter() - start
        benchmark.group = workload
        benchmark.pedantic(
            stepped.advance,
            args=(STEPS_PER_ROUND,),
            rounds=ROUNDS,
            warmup_rounds=WARMUP_ROUNDS,
            iterations=1,
        )
    finally:
        stepped.close()
    steady_step_s = benchmark.stats.stats.median / STEPS_PER_ROUND
    traces = trainer.trace_counts()
    benchmark.extra_info.update(
        steps_per_round=STEPS_PER_ROUND,
        batch_size=batch_size,
        first_step_s=first_step_s,
        compile_s=max(0.0, first_step_s - steady_step_s),
        retraces=sum(max(0, n - 1) for n in traces.values()),
        final_loss=instance.evaluate(state, data.val)["loss"],
        **trainer.facts(),
    )
