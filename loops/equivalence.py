"""Equivalence of the loop styles: same initial weights, same batches, same losses.

``trajectory`` trains a workload for N steps with one loop style and returns
its losses (one per call) and the final weights; every style is compared with
the ``eager`` reference. ``TOLERANCES`` holds the relative tolerance per loop
style in float32, ``PRECISION_TOLERANCES`` per loop style under each mixed
precision; ``tolerance()`` gives the one for a cell. All were set from
measurement (run ``python -m loops.equivalence [--precision P] [--steps-per-call K]``
to measure again; it prints the largest relative deviation per pair; the figures
are in docs/methodology.md; ``--model PATH.py:FUNCTION --nudges N`` measures how
far float rounding alone moves a model's equal-work loss, docs/atlas-method.md):

- ``tf_function``/``tf_data``: graph mode runs the same kernels as eager, but
  Grappler may fuse or reorder float32 arithmetic; measured <= 1.2e-7 over 20
  steps on all three workloads (2 cores, TF 2.21) -> 1e-5.
- ``fit``: Keras's train_step does the same math; for compiled losses fit
  reports a running mean over the epoch, and recovering each batch's loss
  from it, (k+1) m_k - k m_(k-1), amplifies float32 rounding by ~k; measured
  <= 2.1e-6 -> 1e-4.
- ``xla``: XLA fuses and reorders reductions differently; measured <= 1.9e-6
  over 20 steps -> 1e-4 (headroom for other CPUs' vector widths). fit with
  ``jit_compile`` on gets the larger of fit's and xla's.
- Several steps per call run the same step in a graph loop: the same tolerances.
- Mixed precision: a forward pass rounds activations to 8 (bfloat16) or 11
  (float16) significant bits, and a graph or XLA that fuses or reorders the
  casts rounds at other places than eager does: measured over 32 steps at
  batch 32 and 128, 1, 8 and 32 steps a call, all three workloads
  (``PRECISION_TOLERANCES``: about 2.5x the largest deviation seen).
- A mixed-precision cell must also differ from float32: its loss lies farther from
  float32's than ``PRECISION_FLOORS`` and nearer than its tolerance, so a cell that
  silently trained in float32 (as close to float32 as float32 rounding) is caught.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tf_loopbench.loops import distribute
from tf_loopbench.loops.base import LOOPS, WORKLOADS, StepHooks, WorkloadConfig
from tf_loopbench.loops.knobs import (
    DEFAULT_PRECISION,
    PRECISIONS,
    fit_jit_setting,
    loss_scaled,
    precision_policy,
)

REFERENCE = "eager"
TOLERANCES: dict[str, float] = {
    "eager": 0.0,
    "tf_function": 1e-5,
    "tf_data": 1e-5,
    "fit": 1e-4,
    "xla": 1e-4,
}
#: per mixed precision, per loop style (float32: ``TOLERANCES``)
PRECISION_TOLERANCES: dict[str, dict[str, float]] = {
    # graph mode already rounds bfloat16 at other places than eager (per-step losses
    # <= 1.5e-2 over 32 steps; xla and fit with XLA <= 2.0e-2; validation <= 2.2e-3)
    "mixed_bfloat16": {
        "eager": 0.0,
        "tf_function": 5e-2,
        "tf_data": 5e-2,
        "fit": 5e-2,
        "xla": 5e-2,
    },
    # graph mode as eager; fit's running-mean recovery <= 1.0e-4; XLA <= 1.1e-3
    "mixed_float16": {"eager": 0.0, "tf_function": 1e-3, "tf_data": 1e-3, "fit": 1e-3, "xla": 5e-3},
}


#: per mixed precision: the least relative distance of a cell's loss from float32's
#: (the float32 eager reference's validation loss after the same steps) that shows it
#: trained in that precision. float16 (11 bits) comes too near float32 to tell by the
#: loss (gan: 5.9e-6): no floor; its layers' compute dtype tells (knobs.precision_not_run)
# bf16 (mlp, gan; seeds 0-2; 11 and 32 steps): >= 9.5e-5 from float32; float32 cells <= 1.1e-7
PRECISION_FLOORS: dict[str, float] = {"mixed_bfloat16": 1e-5}


def precision_floor(precision: str) -> float | None:
    """How far from float32's loss a cell at ``precision`` must be (relative), at the
    least; None: no floor (float32, or a precision too close to it to tell).

    >>> precision_floor("mixed_bfloat16"), precision_floor("float32")
    (1e-05, None)
    """
    return PRECISION_FLOORS.get(precision)


#: per strategy kind (loops/distribute.py), against eager without one: the replicas'
#: gradients are summed by an all-reduce, in another order than one device's batch sum
STRATEGY_TOLERANCES: dict[str, float] = {"mirrored": 1e-5, "multiworker": 1e-5}


def tolerance(
    loop: str,
    precision: str = DEFAULT_PRECISION,
    fit_jit: str = "auto",
    strategy: str = "none",
    workload_rtol: float | None = None,
) -> float | None:
    """The relative tolerance of ``loop``'s loss against the eager reference's (on one
    device) at ``precision`` (None: a loop without one); fit with XLA on takes xla's
    when larger, a cell under a strategy its strategy's when larger, and every cell of
    a workload that declares an ``equal_work_rtol`` (a model whose training amplifies
    float rounding: docs/atlas-method.md) that one when larger.

    >>> tolerance("fit"), tolerance("fit", fit_jit="on"), tolerance("eager", strategy="mirrored:2")
    (0.0001, 0.0001, 1e-05)
    >>> tolerance("tf_function", workload_rtol=0.02)
    0.02
    """
    table = TOLERANCES if precision == DEFAULT_PRECISION else PRECISION_TOLERANCES.get(precision)
    if table is None or loop not in table:
        return None
    value = table[loop]
    if loop == "fit" and fit_jit_setting(fit_jit)[1]:
        value = max(value, table.get("xla", value))
    kind = strategy.partition(":")[0]
    if kind in STRATEGY_TOLERANCES:
        value = max(value, STRATEGY_TOLERANCES[kind])
    if workload_rtol is not None:
        value = max(value, workload_rtol)
    return value


class _Recorder(StepHooks):
    record_logs = True

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []

    def on_step_end(self, step: int, logs: Mapping[str, Any]) -> None:
        self.steps.append(step)
        self.losses.append(float(logs["loss"]))


@dataclass
class Trajectory:
    #: one loss per call: the call's last step's, or (fit with a compiled loss and
    #: several steps a call) the mean over the call's steps; see ``per_step_view``
    losses: np.ndarray
    weights: dict[str, list[np.ndarray]]
    #: the last step of each call
    steps: np.ndarray
    steps_per_call: int = 1
    call_means: bool = False
    #: the equal-work loss after the last step (``Workload.equal_work_loss``)
    val_loss: float = float("nan")

    def per_call(self, per_step: np.ndarray) -> np.ndarray:
        """A one-step-a-call trajectory's losses (``per_step``) in this one's terms."""
        k = self.steps_per_call
        calls = per_step[: len(self.losses) * k].reshape(-1, k)
        return calls.mean(axis=1) if self.call_means else calls[:, -1]


def trajectory(
    workload: str,
    loop: str,
    steps: int = 5,
    batch_size: int = 32,
    data_size: int = 256,
    seed: int = 0,
    steps_per_call: int = 1,
    precision: str = DEFAULT_PRECISION,
    fit_jit: str = "auto",
    steps_multiple: int | None = None,
    strategy: Any = None,
) -> Trajectory:
    """Train ``steps`` steps (whole calls) of ``workload`` with ``loop`` from seeded
    initial weights, K steps a call, under ``precision``. The data is cut to a
    multiple of ``steps_multiple`` batches (default K), as a run cuts it for every
    cell, so that trajectories with different K see the same batches. ``strategy``: a
    ``tf.distribute.Strategy`` (loops/distribute.py) to train under, ``batch_size`` the
    global batch."""
    with precision_policy(precision):
        instance = WORKLOADS.get(workload)(WorkloadConfig(seed=seed, data_size=data_size))
        data = instance.make_data()
        with distribute.scope(strategy):
            state = loss_scaled(instance.build(), instance, precision)
            trainer = LOOPS.get(loop)().make_trainer(
                instance,
                state,
                data.whole_batches(batch_size, steps_multiple or steps_per_call),
                batch_size,
                steps_per_call=steps_per_call,
                fit_jit=fit_jit,
                strategy=strategy,
            )
        recorder = _Recorder()
        trainer.run(steps, recorder)
        val_loss = instance.equal_work_loss(state, data.val)
        call_means = loop == "fit" and steps_per_call > 1 and instance.fit_reports_running_mean
        return Trajectory(
            losses=np.array(recorder.losses),
            weights=state.weights(),
            steps=np.array(recorder.steps),
            steps_per_call=steps_per_call,
            call_means=call_means,
            val_loss=float(val_loss),
        )


def max_relative_deviation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def nudge_weights(state: Any, seed: int) -> None:
    """Move every trainable float weight of ``state`` by one unit in the last place,
    up or down at random (``seed``): a change of the size float rounding makes, and
    the same work."""
    rng = np.random.default_rng(seed)
    for model in state.models.values():
        for variable in model.trainable_variables:
            value = np.asarray(variable.numpy())
            if not np.issubdtype(value.dtype, np.floating):
                continue
            sign = rng.choice(np.array([-1, 1], dtype=value.dtype), size=value.shape)
            variable.assign(value + sign * np.spacing(value))


class _ValidationLosses(StepHooks):
    """The equal-work loss after every step (untimed; ``Workload.equal_work_loss``)."""

    def __init__(self, workload: Any, state: Any, val: Mapping[str, np.ndarray]) -> None:
        self.workload, self.state, self.val = workload, state, val
        self.losses: list[float] = []

    def on_step_begin(self, step: int) -> None:
        if step > len(self.losses):  # ``step`` steps are done
            self.losses.append(self.workload.equal_work_loss(self.state, self.val))


def validation_losses(
    workload_class: Any,
    config: WorkloadConfig,
    loop: str,
    steps: int,
    batch_size: int,
    nudge_seed: int | None = None,
) -> np.ndarray:
    """The equal-work loss after each of ``steps`` steps of ``loop`` (one a call), from
    the seeded initial weights, nudged by ``nudge_weights`` when ``nudge_seed`` is set."""
    workload = workload_class(config)
    data = workload.make_data()
    state = workload.build()
    if nudge_seed is not None:
        nudge_weights(state, nudge_seed)
    trainer = LOOPS.get(loop)().make_trainer(
        workload, state, data.whole_batches(batch_size), batch_size
    )
    hooks = _ValidationLosses(workload, state, data.val)
    trainer.run(steps, hooks)
    return np.array(hooks.losses)


def conditioning(
    workload_class: Any, config: WorkloadConfig, steps: int, batch_size: int, nudges: int
) -> dict[str, np.ndarray]:
    """How far the equal-work loss moves after 1..``steps`` steps, relative to eager's:
    ``rounding``, the largest over ``nudges`` eager copies from nudged initial weights
    (what float rounding alone does to this model); each loop style; and
    ``one_more_step``, eager's loss after one step more (what other work does)."""
    reference = validation_losses(workload_class, config, REFERENCE, steps + 1, batch_size)

    def deviation(losses: np.ndarray) -> np.ndarray:
        return np.abs(losses[:steps] - reference[:steps]) / np.abs(reference[:steps])

    rounding = [
        deviation(
            validation_losses(
                workload_class, config, REFERENCE, steps, batch_size, nudge_seed=seed + 1
            )
        )
        for seed in range(nudges)
    ]
    result = {"rounding": np.max(rounding, axis=0) if rounding else np.zeros(steps)}
    for loop in LOOPS:
        if loop != REFERENCE:
            result[loop] = deviation(
                validation_losses(workload_class, config, loop, steps, batch_size)
            )
    result["one_more_step"] = np.abs(reference[1:] - reference[:-1]) / np.abs(reference[:-1])
    return result


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (else argparse's one line, exit 2)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401

    parser = argparse.ArgumentParser(prog="python -m loops.equivalence", description=__doc__)
    parser.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS)
    parser.add_argument("--steps-per-call", type=_positive, default=1)
    parser.add_argument("--steps", type=_positive, default=20, help="rounded up to whole calls")
    parser.add_argument("--fit-jit", default="auto")
    parser.add_argument(
        "--strategy", default="none", help="none or mirrored:N (N logical CPUs; in-process)"
    )
    parser.add_argument(
        "--model",
        help="PATH.py:FUNCTION: measure this model's conditioning instead (rounding spread "
        "from --nudges nudged eager copies, each style, one step more), per step",
    )
    parser.add_argument("--nudges", type=_positive, default=4)
    parser.add_argument("--batch-size", type=_positive, default=32)
    parser.add_argument("--data-size", type=_positive, default=None)
    args = parser.parse_args(argv)
    if args.model:
        from tf_loopbench.loops.model_spec import ModelSpecError

        try:
            print_conditioning(args.model, args.steps, args.batch_size, args.data_size, args.nudges)
        except ModelSpecError as exc:  # bad input: one line, exit 2
            parser.error(str(exc))
        return
    k = args.steps_per_call
    steps = -(-args.steps // k) * k
    if distribute.parse(args.strategy).workers > 1:
        parser.error("multiworker runs in worker processes: measure it with loopbench run")
    distribute.configure_devices(args.strategy, "cpu")  # before TensorFlow's runtime starts
    strategy = distribute.make_strategy(args.strategy, "cpu")
    print(
        f"| workload | loop | max relative loss deviation from eager ({steps} steps, "
        f"{args.precision}, {k} a call, {args.strategy}) | validation loss deviation |"
    )
    print("|---|---|---|---|")
    for workload in WORKLOADS:
        reference = trajectory(
            workload, REFERENCE, steps=steps, precision=args.precision, steps_multiple=k
        )
        for loop in LOOPS:
            if loop == REFERENCE and strategy is None:
                continue
            if LOOPS.get(loop).unsupported(k, args.strategy):
                continue
            got = trajectory(
                workload,
                loop,
                steps=steps,
                steps_per_call=k,
                precision=args.precision,
                fit_jit=args.fit_jit,
                strategy=strategy,
            )
            deviation = max_relative_deviation(got.losses, got.per_call(reference.losses))
            val = abs(got.val_loss - reference.val_loss) / abs(reference.val_loss)
            print(f"| {workload} | {loop} | {deviation:.2e} | {val:.2e} |")


def print_conditioning(
    source: str, steps: int, batch_size: int, data_size: int | None, nudges: int
) -> None:
    """``conditioning`` of a ``--model`` as a markdown table, one row per step count."""
    from tf_loopbench.loops.user_model import inspect, workload_class

    spec = inspect(source, seed=0, data_size=data_size)
    config = WorkloadConfig(seed=0, data_size=data_size)
    result = conditioning(workload_class(spec), config, steps, batch_size, nudges)
    columns = list(result)
    print(
        f"{spec.name}, batch {batch_size}: relative deviation of the equal-work loss from "
        f"eager's after N steps ({nudges} nudged eager copies: their largest)"
    )
    print("| N | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for n in range(steps):
        print(f"| {n + 1} | " + " | ".join(f"{result[c][n]:.1e}" for c in columns) + " |")


if __name__ == "__main__":
    main()
