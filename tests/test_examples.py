"""The examples users start from: each trains alike in all five loop styles, at tiny sizes.

Each example is inspected as ``loopbench run --model`` does, then trained for the
quick preset's equal-work steps (1 + 5) in every loop style from its own fresh
FUNCTION call, in-process; per-step losses and the validation loss after those
steps must match the eager reference within the tolerance the run's
``equivalent`` column uses (loops/equivalence.py). The Keras guide's MLP is
trained in all five styles by the README's example, in worker processes, and
checked there by the run's own ``equivalent`` column (tests/test_api.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.benchmarks.config import QUICK
from tf_loopbench.loops.base import LOOPS, StepHooks, WorkloadConfig
from tf_loopbench.loops.equivalence import REFERENCE, TOLERANCES, max_relative_deviation
from tf_loopbench.loops.user_model import inspect, workload_class

from tests.conftest import ROOT

EXAMPLES = {
    "small_cnn": "examples/small_cnn.py:make",
    "vae": "examples/vae.py:make",
}
#: examples trained in worker processes by tests/test_api.py (the README's example)
RUN_BY_THE_README = {"keras_guide_mlp"}
DATA_SIZE, BATCH = 256, 32
EQUAL_WORK_STEPS = 1 + QUICK.warmup_steps
#: model FLOPs of a training step per example as TensorFlow's profiler counts them.
#: The VAE (dense layers) matches the convention of loops/base.py exactly. For small_cnn,
#: TF counts the gradient convolutions of an unpadded Conv2D from its input size,
#: not its output size: 4,698,624 against 3,782,784 layer by layer.
FLOPS = {"vae": 2_016_256, "small_cnn": 4_698_624}


class _Losses(StepHooks):
    record_logs = True

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, step: int, logs: Mapping[str, Any]) -> None:
        self.losses.append(float(logs["loss"]))


@pytest.fixture(scope="module")
def trained():
    """Per example: its spec and, per loop style, (per-step losses, validation loss)."""
    results = {}
    for name, source in EXAMPLES.items():
        spec = inspect(source, seed=0, data_size=DATA_SIZE)
        per_loop = {}
        for loop in LOOPS:
            workload = workload_class(spec)(WorkloadConfig(seed=0, data_size=DATA_SIZE))
            data = workload.make_data()
            state = workload.build()
            trainer = LOOPS.get(loop)().make_trainer(
                workload, state, data.whole_batches(BATCH), BATCH
            )
            hooks = _Losses()
            trainer.run(EQUAL_WORK_STEPS, hooks)
            per_loop[loop] = (np.array(hooks.losses), workload.evaluate(state, data.val)["loss"])
        results[name] = (spec, per_loop)
    return results


def test_every_example_is_tested():
    on_disk = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert on_disk == set(EXAMPLES) | RUN_BY_THE_README
    readme = (ROOT / "README.md").read_text()
    assert all(f"examples/{name}.py" in readme for name in RUN_BY_THE_README)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_loop_style_trains_alike(trained, name):
    _, per_loop = trained[name]
    assert set(per_loop) == set(LOOPS)
    reference_losses, reference_val = per_loop[REFERENCE]
    assert len(reference_losses) == EQUAL_WORK_STEPS
    assert np.isfinite(reference_losses).all()
    for loop, (losses, val_loss) in per_loop.items():
        tolerance = TOLERANCES[loop]
        deviation = max_relative_deviation(losses, reference_losses)
        assert deviation <= max(tolerance, 1e-6), f"{name}/{loop}: step losses {deviation:.2e}"
        val_deviation = abs(val_loss - reference_val) / abs(reference_val)
        # the run's `equivalent` column: validation loss after the equal-work steps
        assert val_deviation <= tolerance, f"{name}/{loop}: validation loss {val_deviation:.2e}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_inspection_describes_the_example(trained, name):
    spec, _ = trained[name]
    assert spec.name == name
    assert spec.n_train == DATA_SIZE
    assert spec.custom_train_step == (name == "vae")
    assert spec.flops_per_example == pytest.approx(FLOPS[name], rel=1e-6)
    assert Path(spec.source.rpartition(":")[0]).is_file()
