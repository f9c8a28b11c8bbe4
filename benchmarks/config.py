"""Frozen configuration: one ``RunConfig`` per ``loopbench run``, one ``Cell`` per
(workload, loop, device, batch size, width), one ``Job`` per worker process.

Built once from the command line (``benchmarks/cli.py``) and passed down; no
module-level flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: what --quick changes (a rougher answer, fast). Windows are sized by duration
#: (``window_ms``: steps per window from an untimed sizing span after the warm-up, so
#: every loop style gets about the same steady time); ``--steps N`` fixes the count instead.
QUICK = {"processes": 1, "windows": 8, "window_ms": 25.0, "warmup_steps": 5}
DEFAULT = {"processes": 12, "windows": 10, "window_ms": 50.0, "warmup_steps": 10}


@dataclass(frozen=True)
class Cell:
    workload: str
    loop: str
    device: str
    batch_size: int
    width: int  # hidden width (0: the workload has none)
    width_option: int | None = None  # what was asked for (None: the workload's default)

    @property
    def keys(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "loop": self.loop,
            "device": self.device,
            "batch_size": self.batch_size,
            "width": self.width,
        }

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
    seed: int = 0
    data_size: int | None = None
    data_path: str | None = None
    intra_op_threads: int = 0  # 0: the number of visible cores
    inter_op_threads: int = 0
    quick: bool = False
    profile: bool = False
    profile_steps: int = 5
    timeout_s: float = 900.0
    start_method: str = "forkserver"  # how worker processes start (benchmarks/runner.py)
    window_s: float | None = None  # target duration of a window (when steps is None)
    out: str = "results"
    command: tuple[str, ...] = field(default_factory=tuple)

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
