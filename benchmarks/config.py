"""Frozen configuration and its defaults.

One ``RunConfig`` per ``loopbench run``, one ``Cell`` per (workload, loop, device,
batch size, width), one ``Job`` per worker process; built once from the command line
(``benchmarks/cli.py``) and passed down, no module-level flags. Every default of
``run`` and ``ab`` is defined here once: the parser and the dataclasses read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loops.model_spec import ModelSpec  # (no TensorFlow)
from reports.rundir import CellKey

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

#: ``loopbench ab``: processes per cell per side (the time budget may stop earlier)
AB_PROCESSES = 20
#: ``loopbench ab``: stop after the last whole block (one process of every cell on both
#: sides) that fits, so that ``nox -s regression`` ends within a CI job's 15 minutes
AB_TIME_BUDGET_MIN = 12.0
AB_OUT_DIR = "results/regression"
#: both sides' ``loopbench run`` settings in an A/B: the quick matrix, 16 windows of ~25 ms
#: per process (more processes a side buy more power than longer windows: docs/gate.md)
GATE_RUN_ARGS = ("--quick", "--windows", "16", "--window-ms", "25")

# ----------------------------------------------------------------------------- environment

#: "loop=fraction": extra work on that loop's every step (benchmarks/clock.py), to check
#: that the gate catches a known slowdown; ``loopbench ab --inject-slowdown`` sets it
INJECT_SLOWDOWN_ENV = "LOOPBENCH_INJECT_SLOWDOWN"


# ----------------------------------------------------------------------------- configuration


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

    @property
    def key(self) -> CellKey:
        return CellKey(self.workload, self.loop, self.device, self.batch_size, self.width)

    @property
    def keys(self) -> dict[str, Any]:
        """The key as the rows of samples.jsonl and metadata.json hold it."""
        return self.key._asdict()

    @property
    def label(self) -> str:
        """Also the profile run name: <workload>-<loop>-<device>-b<batch>[-w<width>]."""
        base = f"{self.workload}-{self.loop}-{self.device}-b{self.batch_size}"
        return base if self.width_option is None else f"{base}-w{self.width}"


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

    @property
    def steps_per_window(self) -> int:
        """Steps per window with a fixed step count; the minimum when sized by duration."""
        return max(1, self.steps // self.windows) if self.steps else 1

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
