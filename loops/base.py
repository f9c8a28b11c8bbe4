"""The two axes and what they hand each other.

A *workload* owns data, model/optimizer factories and the per-batch training
math (``train_step``), written once, as Keras's ``Model.train_step`` is. A
*loop style* owns only how that step is wrapped (eager, ``tf.function``,
``jit_compile``, ``Model.fit``) and fed (NumPy slices or ``tf.data``). A loop
style turns (workload, state, data, batch size) into a :class:`Trainer` whose
``run(n_steps, hooks)`` trains; the benchmark harness owns the clock and sees
the loop only through :class:`StepHooks` and :meth:`Trainer.sync`.

Batches are dicts of arrays. Every loop style visits the same batches in the
same order: batch ``i`` is rows ``[(i % S) * B, (i % S + 1) * B)`` of the
training arrays, with ``S = n_examples // B`` (data is cut to whole batches,
and to a whole number of calls when a call runs several steps: see
``Dataset.whole_batches`` and loops/knobs.py).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from tf_loopbench.loops.distribute import unsupported as strategy_unsupported
from tf_loopbench.loops.registry import LoopRegistry, Registry

Batch = Mapping[str, Any]


@dataclass(frozen=True)
class WorkloadConfig:
    """Everything that decides a workload's data and models, fixed per cell."""

    seed: int = 0
    #: number of training examples (None: the workload's default / the real data set)
    data_size: int | None = None
    #: hidden width of mlp and gan (None: the seed's 128); ignored by linear
    width: int | None = None
    #: a local MNIST .npz (x_train, y_train, x_test, y_test); None: the Keras cache if present
    data_path: str | None = None


@dataclass
class Dataset:
    """Training and validation arrays (dicts of NumPy arrays with equal first dims)."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    source: str  # e.g. "synthetic(seed=0)" or "mnist:/root/.keras/datasets/mnist.npz"

    @property
    def n_train(self) -> int:
        return len(next(iter(self.train.values())))

    def whole_batches(self, batch_size: int, steps_multiple: int = 1) -> dict[str, np.ndarray]:
        """The training arrays cut to a whole number of batches (no partial batch), and
        that number cut to a multiple of ``steps_multiple``: with K steps per call an
        epoch is then whole calls, so no call straddles an epoch's end and fit never
        runs a shorter last execution (the harness passes the least common multiple
        of a run's K values, so every cell of a run sees the same batches)."""
        steps = steps_per_epoch(self.train, batch_size)
        steps -= steps % steps_multiple
        if steps < 1:
            raise ValueError(
                f"batch size {batch_size} x {steps_multiple} steps is larger than the data "
                f"({self.n_train} examples)"
                if steps_multiple > 1
                else f"batch size {batch_size} is larger than the data ({self.n_train} examples)"
            )
        return {k: v[: steps * batch_size] for k, v in self.train.items()}


@dataclass
class TrainState:
    """Models, optimizers and metrics of one training run, created by ``Workload.build``."""

    models: dict[str, Any]
    optimizers: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def step_counter(self) -> Any:
        """A variable every training step updates (the first optimizer's iterations)."""
        return next(iter(self.optimizers.values())).iterations

    def weights(self) -> dict[str, list[np.ndarray]]:
        return {name: [np.array(w) for w in m.get_weights()] for name, m in self.models.items()}


class Workload(abc.ABC):
    """One training problem. Subclasses register with ``@WORKLOADS.register(name)``."""

    name: ClassVar[str]
    default_batch_size: ClassVar[int]
    description: ClassVar[str]
    #: metric reported after training by ``evaluate`` besides the loss
    val_metric_name: ClassVar[str | None] = None
    #: ``train_step`` averages per-example losses over the global batch
    #: (``tf.nn.compute_average_loss``), so it trains under a tf.distribute strategy
    #: (loops/distribute.py); a workload without it runs with the strategy ``none`` only
    distributable: ClassVar[bool] = False
    #: ``train_step`` scales each loss with ``optimizer.scale_loss`` before taking its
    #: gradient, as Keras's ``train_step`` does; needed for mixed_float16 (loops/knobs.py)
    scales_loss: ClassVar[bool] = False
    #: the least relative tolerance of the equal-work check for this workload: for a
    #: model whose training amplifies float rounding (docs/atlas-method.md); None: the
    #: loop styles' own (loops/equivalence.py)
    equal_work_rtol: ClassVar[float | None] = None

    def __init__(self, config: WorkloadConfig | None = None) -> None:
        self.config = config or WorkloadConfig()

    @property
    def width(self) -> int:
        """The hidden width that identifies the model size in results (0: no hidden layer)."""
        return 0

    @abc.abstractmethod
    def make_data(self) -> Dataset:
        """Deterministic data from ``config.seed``; never downloads anything."""

    def n_examples(self) -> int:
        """Training examples ``make_data`` will give (cheap: used to validate batch sizes)."""
        return self.make_data().n_train

    @abc.abstractmethod
    def build(self) -> TrainState:
        """Fresh models and optimizers with every variable created, seeded."""

    @abc.abstractmethod
    def train_step(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        """The per-batch math: forward, loss, gradients, updates. Returns scalar tensors,
        at least ``loss``. Must run eagerly, in ``tf.function`` and under XLA alike."""

    @abc.abstractmethod
    def evaluate(self, state: TrainState, data: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Loss (and metric) of the current weights on ``data``; no update. Same code
        for every loop style, so final losses compare across styles."""

    def equal_work_loss(self, state: TrainState, data: Mapping[str, np.ndarray]) -> float:
        """The yardstick of equal work: a loss of the current weights on ``data`` that
        every loop style's cell compares after the same steps (``evaluate``'s loss
        unless the workload needs a better-conditioned one); leaves the state as it was."""
        return float(self.evaluate(state, data)["loss"])

    @abc.abstractmethod
    def fit_model(self, state: TrainState) -> Any:
        """A compiled ``keras.Model`` whose ``fit`` trains ``state`` as users would."""

    @abc.abstractmethod
    def fit_arguments(self, train: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        """(x, y) to pass to ``Model.fit`` for these training arrays."""

    @abc.abstractmethod
    def flops_per_example(self) -> float:
        """Model FLOPs of one training step per example (forward + backward), by formula.

        Convention: a dense layer n -> m costs 2*n*m FLOPs forward, 2*n*m for its
        weight gradient, and 2*n*m for its input gradient only where that gradient
        is needed (not for a layer whose input is data, e.g. the first layer). The
        mlp at width 128 is 4*784*128 + 6*128*10 = 409,088. Elementwise ops, losses
        and optimizer updates are not counted. tests/test_flops.py checks each
        formula against TensorFlow's profiler count of the traced step's MatMuls.
        """

    @property
    def fit_reports_running_mean(self) -> bool:
        """True when ``fit``'s ``logs['loss']`` is Keras's running mean over the epoch
        (compiled losses), False when it is this batch's loss (custom train_step)."""
        return True


def steps_per_epoch(train: Mapping[str, np.ndarray], batch_size: int) -> int:
    """Whole batches in one pass over ``train`` (a dict of arrays with equal first dims)."""
    return len(next(iter(train.values()))) // batch_size


class StopTraining(Exception):
    """Raised by ``StepHooks.on_step_begin(i)`` to end ``Trainer.run`` after ``i`` steps
    (the harness's clock does, when windows are sized by duration); ``run`` returns."""


class StepHooks:
    """How a trainer tells the harness where it is. The default does nothing.

    ``on_step_begin(i)`` is called when ``i`` steps are complete (dispatched) and
    step ``i`` is about to start, and once more with ``i == n_steps`` at the end;
    it may raise ``StopTraining`` to end the run there. With K steps per call
    (``Trainer.steps_per_call``) it is called at call boundaries only, ``i`` a
    multiple of K: the hooks cannot act inside a call.
    ``on_step_end(i, logs)`` is called only when ``record_logs`` is true (tests),
    because looking at every step's logs forces a host sync per step. With K steps
    per call it is called once a call, ``i`` the call's last step, with that
    call's logs (a custom loop's: its last step's loss; fit's compiled loss: the
    mean over the call's steps, recovered from Keras's running mean).
    """

    record_logs: bool = False

    def on_train_begin(self) -> None:
        """Set-up is done; the first step is next (for fit: after fit's per-call set-up)."""

    def on_step_begin(self, step: int) -> None:
        """``step`` steps are done."""

    def on_step_end(self, step: int, logs: Mapping[str, Any]) -> None:
        """Step ``step`` finished with ``logs`` (only if ``record_logs``)."""


class Trainer(abc.ABC):
    """A workload's state wrapped and fed by one loop style."""

    def __init__(self, workload: Workload, state: TrainState, steps_per_call: int = 1) -> None:
        self.workload = workload
        self.state = state
        #: training steps one call of the loop's function runs (loops/knobs.py)
        self.steps_per_call = steps_per_call

    @abc.abstractmethod
    def run(self, n_steps: int, hooks: StepHooks) -> None:
        """Train ``n_steps`` steps, rounded up to whole calls (continuing from where the
        last call stopped), fewer if ``hooks`` raise ``StopTraining``."""

    def sync(self) -> int:
        """Block until every dispatched step has finished; returns the step count read
        from the device (a host fetch of a variable every step updates)."""
        return int(self.state.step_counter.numpy())

    def trace_counts(self) -> dict[str, int]:
        """How many times each ``tf.function`` of this trainer was traced."""
        return {}

    @property
    def epoch_steps(self) -> int | None:
        """Steps between the ends of passes over the data, where this loop does
        per-epoch work (fit); None for a loop that streams batches without epochs."""
        return None

    def facts(self) -> dict[str, Any]:
        """Settings the loop actually used (e.g. Keras's jit_compile for fit)."""
        return {}


class LoopStyle(abc.ABC):
    """One rung of the ladder. Subclasses register with ``@LOOPS.register(name)``.

    Each style declares its place on the ladder; ``LOOPS.ladder()`` collects the
    declarations (benchmarks writes them into metadata.json, reports read them there).
    Every comparison a report draws is between the reference and another loop, or
    between a rung and the one it ``compares_with``, which differ in one thing.
    """

    name: ClassVar[str]
    #: one line for ``loopbench list``: what this style is
    description: ClassVar[str]
    #: the loop users know, which every other loop is compared with (exactly one)
    reference: ClassVar[bool] = False
    #: the rung this one differs from in one thing (registered before it); None:
    #: compared with the reference only
    compares_with: ClassVar[str | None] = None
    #: one line: what changes against ``compares_with`` (the reference: what it is)
    changes: ClassVar[str]
    #: True for the rung whose one change is the XLA compiler (reports ask whether its
    #: compile time pays back, and set an XLA-compiled reference against it)
    compiler: ClassVar[bool] = False
    #: its trainer pays a per-call set-up between ``run`` and ``on_train_begin``
    #: (fit's), which the worker records as ``fit_setup_s``
    per_call_setup: ClassVar[bool] = False
    #: its compiler is a setting of the cell (fit's jit_compile: ``--fit-jit``,
    #: loops/knobs.py); a style without one gets one cell whatever was asked
    jit_setting: ClassVar[bool] = False

    @classmethod
    def unsupported(cls, steps_per_call: int = 1, strategy: str = "none") -> str | None:
        """Why this style cannot run a cell with these keys, when that is known without
        TensorFlow (the runner then skips the cell without starting its processes)."""
        return strategy_unsupported(strategy, steps_per_call)

    @abc.abstractmethod
    def make_trainer(
        self,
        workload: Workload,
        state: TrainState,
        train: Mapping[str, np.ndarray],
        batch_size: int,
        steps_per_call: int = 1,
        fit_jit: str = "auto",
        strategy: Any = None,
    ) -> Trainer:
        """Wrap ``workload.train_step`` for ``state``, ``steps_per_call`` steps a call;
        raise NotImplementedError with a reason if this style truly cannot run this
        workload or setting. ``fit_jit`` (loops/knobs.py) concerns fit only; other
        styles ignore it. ``train`` holds a whole number of calls. ``strategy``: a
        ``tf.distribute.Strategy`` (loops/distribute.py) in whose scope ``state`` was
        built and this is called, ``batch_size`` then being the global batch; None: one
        device."""


WORKLOADS: Registry[type[Workload]] = Registry("workload")
LOOPS: LoopRegistry[type[LoopStyle]] = LoopRegistry("loop")
