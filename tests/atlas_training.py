"""Train an atlas model (examples/atlas/) a few steps in every loop style, at tiny sizes.

The shared half of tests/test_atlas.py and tests/test_atlas_text.py (two files of
about equal cost, so that pytest-xdist's ``loadfile`` can put them on different workers). Each model's
``tiny()`` variant is inspected as ``loopbench run --model`` does, then trained
``EQUAL_WORK_STEPS`` steps in every loop style from its own fresh FUNCTION call,
in-process; its per-step losses and its equal-work loss after those steps
(``Workload.equal_work_loss``, what a run's ``equivalent`` column compares) must
match the eager reference within the tolerance the run uses (loops/equivalence.py),
and the eager reference one step further must be farther than that tolerance by
``ONE_MORE_STEP_MARGIN``: the check can tell other work from equal work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.loops.base import LOOPS, StepHooks, WorkloadConfig
from tf_loopbench.loops.equivalence import REFERENCE, max_relative_deviation, tolerance
from tf_loopbench.loops.user_model import inspect, workload_class

from tests.conftest import ROOT

ATLAS = ROOT / "examples" / "atlas"
#: two groups of about equal cost (traces and XLA compiles), one per test file
IMAGE_AND_TABLE_MODELS = ("mnist_convnet", "resnet_cifar", "conv_vae", "wide_deep")
TEXT_MODELS = ("text_transformer", "lstm_imdb")
DATA_SIZE, BATCH, EQUAL_WORK_STEPS = 16, 4, 3
#: one step more must move the equal-work loss by this many times the model's
#: largest tolerance at least
ONE_MORE_STEP_MARGIN = 2


class EqualWorkHooks(StepHooks):
    """Per-step losses, and the equal-work loss after ``EQUAL_WORK_STEPS`` steps and
    after each step past them."""

    record_logs = True

    def __init__(self, workload: Any, state: Any, val: Mapping[str, np.ndarray]) -> None:
        self.workload, self.state, self.val = workload, state, val
        self.losses: list[float] = []
        self.equal_work_losses: list[float] = []

    def on_step_begin(self, step: int) -> None:
        if step >= EQUAL_WORK_STEPS:  # ``step`` steps are done
            self.equal_work_losses.append(self.workload.equal_work_loss(self.state, self.val))

    def on_step_end(self, step: int, logs: Mapping[str, Any]) -> None:
        self.losses.append(float(logs["loss"]))


@dataclass
class Training:
    """One atlas model trained in every loop style."""

    name: str
    #: the model's own ``equal_work_rtol`` (None: the loop styles' tolerances)
    workload_rtol: float | None
    #: per loop style: the per-step losses of the equal-work steps
    losses: dict[str, np.ndarray]
    #: per loop style: the equal-work loss after them
    equal_work_loss: dict[str, float]
    #: eager's equal-work loss one step later
    one_more_step_loss: float

    def rtol(self, loop: str) -> float:
        value = tolerance(loop, workload_rtol=self.workload_rtol)
        assert value is not None
        return value


def train(name: str) -> Training:
    spec = inspect(f"{ATLAS / name}.py:tiny", seed=0, data_size=DATA_SIZE)
    losses, equal_work_loss, one_more = {}, {}, float("nan")
    for loop in LOOPS:
        workload = workload_class(spec)(WorkloadConfig(seed=0, data_size=DATA_SIZE))
        data = workload.make_data()
        # a few validation examples: the check needs equal work, not a good estimate
        val = {k: v[:8] for k, v in data.val.items()}
        state = workload.build()
        trainer = LOOPS.get(loop)().make_trainer(workload, state, data.whole_batches(BATCH), BATCH)
        hooks = EqualWorkHooks(workload, state, val)
        trainer.run(EQUAL_WORK_STEPS + (loop == REFERENCE), hooks)
        losses[loop] = np.array(hooks.losses[:EQUAL_WORK_STEPS])
        equal_work_loss[loop] = hooks.equal_work_losses[0]
        if loop == REFERENCE:
            one_more = hooks.equal_work_losses[1]
    return Training(name, spec.equal_work_rtol, losses, equal_work_loss, one_more)


def check_trains_alike(name: str) -> None:
    """Every loop style's losses match eager's; one step more does not."""
    got = train(name)
    assert set(got.losses) == set(LOOPS)
    reference_losses = got.losses[REFERENCE]
    reference = got.equal_work_loss[REFERENCE]
    assert len(reference_losses) == EQUAL_WORK_STEPS
    assert np.isfinite(reference_losses).all()
    for loop, losses in got.losses.items():
        rtol = got.rtol(loop)
        deviation = max_relative_deviation(losses, reference_losses)
        assert deviation <= max(rtol, 1e-6), f"{name}/{loop}: step losses {deviation:.2e}"
        deviation = abs(got.equal_work_loss[loop] - reference) / abs(reference)
        assert deviation <= rtol, f"{name}/{loop}: equal-work loss {deviation:.2e}"
    other_work = abs(got.one_more_step_loss - reference) / abs(reference)
    largest = max(got.rtol(loop) for loop in LOOPS)
    assert other_work > ONE_MORE_STEP_MARGIN * largest, (
        f"{name}: one step more moves the equal-work loss {other_work:.2e} only "
        f"(tolerance up to {largest:.0e}): the check could not tell"
    )
