"""The clock: the only place in tf-loopbench that reads time around training steps.

``PhaseClock`` is the ``StepHooks`` a worker hands to a trainer. It reads
``time.perf_counter`` at phase boundaries only, and every boundary after the
first step starts with a host sync (``sync()``: on GPU ``sync_devices``, then a
host fetch of a variable that every step updates), so asynchronous dispatch
cannot push work from one window into the next. The phases of one run:

    train_begin | first step | warm-up steps | window 1 | ... | window W
                ^ trace/compile shows here      ^ steady state: W windows of K steps

For ``fit`` the time from calling ``fit`` to ``train_begin`` is fit's per-call
set-up, its own figure. The clock can add a known amount of extra work per
step to one loop style (``LOOPBENCH_INJECT_SLOWDOWN="loop=fraction"``, a test
knob for validating the regression gate): per timed step, a host sync and then
a busy spin, sized so that together they cost that fraction of the steady step.
Two untimed calibration windows after the warm-up measure the plain step (T0)
and the step with a sync before it (T1); the spin is ``(1 + f) * T0 - T1``
(never negative). The sync puts the spin on the step's critical path: a bare
spin between steps overlaps the previous step's graph (a "10 %" spin slowed
mlp/xla by 4.6 %), and a bare sync plus a 10 % spin slowed it by 16-20 %. Where
the step waits on a ``tf.data`` pipeline working on the other core (linear/xla,
input-bound), host work in the loop does not lengthen the step at all, as real
host work would not. The validation script reports the effect as measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loops.base import StepHooks

INJECT_ENV = "LOOPBENCH_INJECT_SLOWDOWN"

now = time.perf_counter


def injected_fraction(loop: str, spec: str | None = None) -> float:
    """The extra-work fraction asked for ``loop`` by LOOPBENCH_INJECT_SLOWDOWN, else 0.

    >>> injected_fraction("eager", "eager=0.1")
    0.1
    >>> injected_fraction("xla", "eager=0.1")
    0.0
    """
    spec = os.environ.get(INJECT_ENV, "") if spec is None else spec
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name.strip() == loop:
            fraction = float(value)
            if not 0 <= fraction < 10:
                raise ValueError(f"{INJECT_ENV}: fraction {fraction} out of range")
            return fraction
    return 0.0


def spin(seconds: float) -> None:
    """Busy-wait: extra CPU work on the host, as a slower step would do."""
    end = now() + seconds
    while now() < end:
        pass


@dataclass
class PhaseTimes:
    train_begin: float = float("nan")
    first_step_s: float = float("nan")
    warmup_s: float = float("nan")
    window_s: list[float] = field(default_factory=list)
    end: float = float("nan")


class PhaseClock(StepHooks):
    """Times first step, warm-up and ``windows`` windows of ``steps_per_window`` steps."""

    #: calibration window length of the slowdown knob (each of its two windows)
    MIN_CALIBRATION_STEPS = 50

    def __init__(
        self,
        sync: Callable[[], object],
        warmup_steps: int,
        windows: int,
        steps_per_window: int,
        inject_fraction: float = 0.0,
    ) -> None:
        self.sync = sync
        self.warmup_steps = warmup_steps
        self.windows = windows
        self.steps_per_window = steps_per_window
        self.inject_fraction = inject_fraction
        self.inject_s = 0.0
        self.calibration_s: tuple[float, float] = (float("nan"), float("nan"))  # (T0, T1)
        self.times = PhaseTimes()
        # With a slowdown to inject, two untimed calibration windows after the
        # warm-up (plain steps, then steps each preceded by a sync) size the spin;
        # the warm-up's early steps are slower and would overstate the step.
        self.calibration_steps = (
            max(steps_per_window, self.MIN_CALIBRATION_STEPS) if inject_fraction else 0
        )
        self.plain_calibrated = 1 + warmup_steps + self.calibration_steps
        self.first_window = 1 + warmup_steps + 2 * self.calibration_steps
        # step counts at which a phase ends (a boundary: sync, then read the clock)
        self.boundaries = {1, 1 + warmup_steps, self.first_window} | {
            self.first_window + (w + 1) * steps_per_window for w in range(windows)
        }
        if inject_fraction:
            self.boundaries.add(self.plain_calibrated)
        self._last = float("nan")

    @property
    def total_steps(self) -> int:
        return self.first_window + self.windows * self.steps_per_window

    def on_train_begin(self) -> None:
        self.times.train_begin = self._last = now()

    def on_step_begin(self, step: int) -> None:
        if step in self.boundaries:
            self.sync()
            t = now()
            elapsed, self._last = t - self._last, t
            if step == 1:
                self.times.first_step_s = elapsed
            elif step == 1 + self.warmup_steps:
                self.times.warmup_s = elapsed
            elif self.inject_fraction and step == self.plain_calibrated:
                self.calibration_s = (elapsed / self.calibration_steps, float("nan"))
            elif self.inject_fraction and step == self.first_window:
                plain = self.calibration_s[0]
                synced = elapsed / self.calibration_steps
                self.calibration_s = (plain, synced)
                self.inject_s = max(0.0, (1 + self.inject_fraction) * plain - synced)
            else:
                self.times.window_s.append(elapsed)
            if step == self.total_steps:
                self.times.end = t
                return
            self._last = now()  # exclude the bookkeeping above from the next phase
        if self.inject_fraction and self.plain_calibrated <= step < self.total_steps:
            self.sync()  # calibration window 2 and every timed step
            if step >= self.first_window:
                spin(self.inject_s)
