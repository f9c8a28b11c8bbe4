"""Frozen configuration and its defaults.

One ``RunRequest`` per ``loopbench run`` or ``tf_loopbench.run`` (what was asked,
option by option: benchmarks/options.py builds it), one ``RunConfig`` per run (the
request resolved against the machine: devices present, users' models inspected;
benchmarks/matrix.py), one ``Cell`` per (workload, loop, device, batch size, width,
steps per call, precision, fit's jit, strategy), one ``Job`` per statistical sample
(one worker process, or a multi-worker cluster's W); each built once and passed
down, no module-level flags. Every default of ``run`` and ``ab`` is defined here
once: the parser and the dataclasses read it (the knobs' names and defaults come
from loops/knobs.py, which needs no TensorFlow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tf_loopbench.loops.distribute import DEFAULT_STRATEGY as DEFAULT_STRATEGY
from tf_loopbench.loops.distribute import parse as parse_strategy

# the knobs' names and defaults (no TensorFlow), re-exported for the command line
from tf_loopbench.loops.knobs import DEFAULT_FIT_JIT as DEFAULT_FIT_JIT
from tf_loopbench.loops.knobs import DEFAULT_PRECISION as DEFAULT_PRECISION
from tf_loopbench.loops.knobs import DEFAULT_STEPS_PER_CALL as DEFAULT_STEPS_PER_CALL
from tf_loopbench.loops.knobs import FIT_JIT_CHOICES as FIT_JIT_CHOICES
from tf_loopbench.loops.knobs import FIT_JIT_NONE as FIT_JIT_NONE
from tf_loopbench.loops.knobs import PRECISIONS as PRECISIONS
from tf_loopbench.loops.knobs import call_multiple, round_up
from tf_loopbench.loops.model_spec import ModelSpec  # (no TensorFlow)
from tf_loopbench.reports.rundir import CELL_KEYS, DEFAULT_EPOCHS, CellKey

# ----------------------------------------------------------------------------- defaults

SEED = 0
TIMEOUT_S = 900.0  # per worker process
START_METHODS = ("forkserver", "spawn")  # how worker processes start (benchmarks/runner.py)
START_METHOD = "forkserver"
OUT_DIR = "results"  # parent of run directories


@dataclass(frozen=True)
class Preset:
    """The measurement settings a preset fixes; ``--quick`` picks the rougher one."""

    processes: int  # worker processes (statistical samples) per cell
    windows: int  # timed windows per process
    window_ms: float  # target window duration; steps per window from an untimed sizing span
    warmup_steps: int  # untimed steps after the first


DEFAULT = Preset(processes=12, windows=10, window_ms=50.0, warmup_steps=10)
#: quick: 5 processes, the fewest that give an interval across processes for every
#: claim the report makes, within 2 minutes for the CPU matrix (docs/methodology.md)
QUICK = Preset(processes=5, windows=8, window_ms=25.0, warmup_steps=5)

#: processes of a cell that train on past the first epoch end to the second when no gap
#: held a later one (fit on mlp and gan: two epochs, 936 steps at batch 128); the cell's
#: per-epoch cost comes from the spans those timed (benchmarks/stats.py
#: amortized_samples; docs/methodology.md)
EPOCH_PROBE_PROCESSES = 5

#: ``loopbench ab``: processes per cell per side (the time budget may stop earlier)
AB_PROCESSES = 20
#: ``loopbench ab``: stop after the last whole block (one process of every cell on both
#: sides) that fits, so that ``nox -s regression`` ends within a CI job's 15 minutes
AB_TIME_BUDGET_MIN = 12.0
AB_OUT_DIR = "results/regression"
#: both sides' ``loopbench run`` settings in an A/B: the quick matrix, 16 windows of ~25 ms
#: per process (the gate judges each process's fastest window; on the loaded 2-core VM 32
#: or 64 windows cut its spread but cost as many blocks as they gained: docs/gate.md)
GATE_RUN_ARGS = ("--quick", "--windows", "16", "--window-ms", "25")
#: ``loopbench ab --mode``: duet (both sides' workers at once, each pinned to its own half
#: of the cores, windows started together; the default with 2 cores or more) or
#: interleaved (one worker at a time, taking turns: 1-core machines)
AB_MODES = ("duet", "interleaved")

# ----------------------------------------------------------------------------- environment

#: "loop=fraction": extra work on that loop's every step (benchmarks/clock.py), to check
#: that the gate catches a known slowdown; ``loopbench ab --inject-slowdown`` sets it
INJECT_SLOWDOWN_ENV = "LOOPBENCH_INJECT_SLOWDOWN"
#: set on each side of a duet A/B (benchmarks/duet.py): the directory where the driver
#: writes each job's cores and the two sides' workers meet, and which side this is
DUET_DIR_ENV = "LOOPBENCH_DUET_DIR"
DUET_SIDE_ENV = "LOOPBENCH_DUET_SIDE"


# ----------------------------------------------------------------------------- configuration


class UsageError(ValueError):
    """Bad input for a run: one line. ``loopbench`` prints it and exits 2;
    ``tf_loopbench.run`` raises it as a ValueError."""


@dataclass(frozen=True)
class RunRequest:
    """What a ``loopbench run`` asks for: one field per long option of the command,
    named as the option (``--batch-size`` -> ``batch_size``; ``--no-report`` ->
    ``report=False``); None or empty: the default. The keyword arguments of
    ``tf_loopbench.run`` are these fields. benchmarks/options.py ``make_request``
    builds one from text or Python values; benchmarks/run.py runs it.
    """

    workload: tuple[str, ...] = ()  # names; empty: every registered workload
    loop: tuple[str, ...] = ()  # names; empty: every loop style
    model: tuple[str, ...] = ()  # PATH.py:FUNCTION, module:FUNCTION or pickle:FILE
    device: str | None = None  # cpu, gpu, all; None: every device present
    batch_size: tuple[int, ...] = ()  # empty: each workload's default
    width: tuple[int, ...] = ()  # empty: each workload's default
    steps_per_call: tuple[int, ...] = ()
    precision: tuple[str, ...] = ()
    fit_jit: tuple[str, ...] = ()
    strategy: tuple[str, ...] = ()
    steps: int | None = None
    windows: int | None = None
    window_ms: float | None = None
    warmup_steps: int | None = None
    processes: int | None = None
    quick: bool = False
    profile: bool = False
    data_size: int | None = None
    data: str | None = None  # a local MNIST .npz
    seed: int = SEED
    threads: int | None = None
    timeout: float = TIMEOUT_S
    start_method: str = START_METHOD
    out: str = OUT_DIR
    shard: tuple[int, int] | None = None
    report: bool = True
    epochs: int = DEFAULT_EPOCHS
    wide: bool = False  # the terminal table with every column
    #: a file descriptor for ``loopbench ab``'s turn-taking (benchmarks/turns.py)
    take_turns: int | None = None


@dataclass(frozen=True)
class Cell:
    """A cell as the harness runs it: the contract's key (``reports.rundir.CellKey``)
    plus what was asked for the width."""

    workload: str
    loop: str
    device: str
    batch_size: int
    width: int  # hidden width (0: the workload has none)
    width_option: int | None = None  # what was asked for (None: the workload's default)
    steps_per_call: int = DEFAULT_STEPS_PER_CALL
    precision: str = DEFAULT_PRECISION
    #: fit's jit_compile as it runs (loops/knobs.py fit_jit_key); "none" for other loops
    fit_jit: str = FIT_JIT_NONE
    #: the tf.distribute strategy (loops/distribute.py): none, mirrored:N, multiworker:W
    strategy: str = DEFAULT_STRATEGY

    @property
    def workers(self) -> int:
        """Worker processes one sample of this cell takes (W under multiworker:W)."""
        return parse_strategy(self.strategy).workers

    @property
    def key(self) -> CellKey:
        return CellKey(*(getattr(self, name) for name in CELL_KEYS))

    @property
    def keys(self) -> dict[str, Any]:
        """The key as the rows of samples.jsonl and metadata.json hold it."""
        return self.key._asdict()

    @property
    def label(self) -> str:
        """Also the profile run name and the log file's:
        <workload>-<loop>-<device>-b<batch>[-w<width>][-k<K>][-<precision>][-jit_<off|on>]
        [-<strategy>_<N>] (a part only where the cell differs from the default)."""
        label = f"{self.workload}-{self.loop}-{self.device}-b{self.batch_size}"
        if self.width_option is not None:
            label += f"-w{self.width}"
        if self.steps_per_call != DEFAULT_STEPS_PER_CALL:
            label += f"-k{self.steps_per_call}"
        if self.precision != DEFAULT_PRECISION:
            label += f"-{self.precision}"
        if self.fit_jit in ("off", "on"):  # asked for; auto:... is the default
            label += f"-jit_{self.fit_jit}"
        if self.strategy != DEFAULT_STRATEGY:
            label += "-" + self.strategy.replace(":", "_")
        return label


@dataclass(frozen=True)
class RunConfig:
    workloads: tuple[str, ...]
    loops: tuple[str, ...]
    devices: tuple[str, ...]
    devices_present: tuple[str, ...]
    batch_sizes: tuple[int | None, ...]  # None: each workload's default
    widths: tuple[int | None, ...]  # None: each workload's default
    steps: int | None  # timed (steady-state) steps per worker process; None: by duration
    windows: int  # timed windows per worker process
    warmup_steps: int
    processes: int  # worker processes (statistical samples) per cell
    seed: int = SEED
    data_size: int | None = None
    data_path: str | None = None
    intra_op_threads: int = 0  # 0: the number of visible cores
    inter_op_threads: int = 0
    quick: bool = False
    profile: bool = False
    profile_steps: int = 5
    timeout_s: float = TIMEOUT_S
    start_method: str = START_METHOD
    window_s: float | None = None  # target duration of a window (when steps is None)
    out: str = OUT_DIR
    command: tuple[str, ...] = field(default_factory=tuple)
    #: users' models (--model, plugin models), inspected; each is a workload of the run
    models: tuple[ModelSpec, ...] = ()
    #: (I, N): run only shard I of N (1-based) of the jobs (benchmarks/shards.py)
    shard: tuple[int, int] | None = None
    steps_per_call: tuple[int, ...] = (DEFAULT_STEPS_PER_CALL,)
    precisions: tuple[str, ...] = (DEFAULT_PRECISION,)
    fit_jit: tuple[str, ...] = (DEFAULT_FIT_JIT,)  # as asked for: auto, off, on
    strategies: tuple[str, ...] = (DEFAULT_STRATEGY,)

    @property
    def steps_per_window(self) -> int:
        """Steps per window with a fixed step count; the minimum when sized by duration."""
        return max(1, self.steps // self.windows) if self.steps else 1

    @property
    def call_multiple(self) -> int:
        """Every cell's data holds a multiple of this many batches (the least common
        multiple of the steps-per-call values), so all cells see the same batches."""
        return call_multiple(self.steps_per_call)

    @property
    def equal_work_steps(self) -> int:
        """Steps every cell of the run trains before its equal-work evaluation: the
        first step and the warm-up, rounded up to a multiple of ``call_multiple``, so
        that it is whole calls for every K and the same for every cell."""
        return round_up(1 + self.warmup_steps, self.call_multiple)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    """One worker process: one repeat of one cell."""

    cell: Cell
    process: int  # repeat index, 0-based
    order: int  # position in the interleaved schedule
    config: RunConfig
    profile_dir: str | None = None
    #: under multiworker:W, this process's task index (0: the chief, which runs the
    #: clock) and the cluster's loopback addresses (benchmarks/runner.py picks the ports)
    task: int = 0
    cluster: tuple[str, ...] = ()
