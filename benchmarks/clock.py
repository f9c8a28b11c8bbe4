"""The clock: the only place in tf-loopbench that reads time around training steps.

``PhaseClock`` is the ``StepHooks`` a worker hands to a trainer. It reads
``time.perf_counter`` at phase boundaries only, and every boundary after the
first step starts with a host sync (``sync()``: on GPU ``sync_devices``, then a
host fetch of a variable that every step updates), so asynchronous dispatch
cannot push work from one window into the next. The phases of one run:

    train_begin | first call | warm-up | (sizing) | window 1 | ... | window W
                ^ trace/compile shows here         ^ steady state: W windows of N steps

A call runs one step, or K with several steps per call (loops/knobs.py): the
trainer reports call boundaries only, so every boundary the clock plans (the
first call, the end of the warm-up, sizing spans, windows, epoch gaps) is a
multiple of K, and windows hold whole calls. Step times stay per step.

For ``fit`` the time from calling ``fit`` to ``train_begin`` is fit's per-call
set-up, its own figure. The clock can add a known amount of extra work per
step to one loop style (``LOOPBENCH_INJECT_SLOWDOWN="loop=fraction"``, a test
knob for validating the regression gate): a busy spin of that fraction of the
steady step time, measured after the warm-up as the fastest of CALIBRATION_SPANS
untimed calibration spans (a window's steps each, at least 10): on a loaded
machine one span can be many times slower, and a fraction of it would inject
far more than asked. The spin runs on the host thread between steps: it
lengthens a step by about its own length where that thread does all the work in
turn, and hides in the input wait of a step fed by ``tf.data``, as real host work
would; so the gate is validated on a NumPy-fed graph rung, and the validation
reports the effect as measured (docs/gate.md, "The injected slowdown").
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tf_loopbench.benchmarks.config import INJECT_SLOWDOWN_ENV
from tf_loopbench.loops.base import StepHooks, StopTraining

now = time.perf_counter


def injected_fraction(loop: str, spec: str | None = None) -> float:
    """The extra-work fraction asked for ``loop`` by LOOPBENCH_INJECT_SLOWDOWN, else 0.

    >>> injected_fraction("loop_a", "loop_a=0.1")
    0.1
    >>> injected_fraction("loop_b", "loop_a=0.1")
    0.0
    """
    spec = os.environ.get(INJECT_SLOWDOWN_ENV, "") if spec is None else spec
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name.strip() == loop:
            fraction = float(value)
            if not 0 <= fraction < 10:
                raise ValueError(f"{INJECT_SLOWDOWN_ENV}: fraction {fraction} out of range")
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
    #: wall-clock time (time.time) at which each window started: comparable across processes
    window_started_at: list[float] = field(default_factory=list)
    end: float = float("nan")


#: untimed spans after the warm-up whose fastest sets the injected spin (each a window's
#: steps, at least CALIBRATION_SPAN_STEPS)
CALIBRATION_SPANS = 5
CALIBRATION_SPAN_STEPS = 10

#: bounds on the steps of one window when windows are sized by duration
MAX_STEPS_PER_WINDOW = 10_000


def steps_for_duration(window_s: float, step_estimate_s: float, min_steps: int = 1) -> int:
    """Steps per window so that a window lasts about ``window_s``, given an estimate
    of the step time, never fewer than ``min_steps`` or more than MAX_STEPS_PER_WINDOW.

    >>> steps_for_duration(0.05, 0.002)
    25
    >>> steps_for_duration(0.05, 0.047)
    1
    """
    if not step_estimate_s > 0:
        return min_steps
    return max(min_steps, min(MAX_STEPS_PER_WINDOW, round(window_s / step_estimate_s)))


class PhaseClock(StepHooks):
    """Times the first call, warm-up and ``windows`` windows of ``steps_per_window`` steps.

    With ``steps_per_call`` K every boundary is a multiple of K: the first call
    holds K steps (``first_step_s`` is its time), windows and spans are whole
    calls, the slowdown knob spins K times its per-step amount once a call, and an
    epoch must be whole calls (the data is cut so; ``Dataset.whole_batches``).

    With ``window_s`` the windows are sized by duration instead, as timeit's
    autorange and google/benchmark's min_time do: after the warm-up the clock
    times untimed sizing spans of 1, 2, 4, ... steps (each ended by a sync, like a
    window) until one lasts at least half of ``window_s``, and sets
    ``steps_per_window`` from that span's step time (the given ``steps_per_window``
    becomes the minimum). A fast step then gets many steps a window and a slow
    (eager) one few; the steady-state time per process is about the same for every
    loop style. Why spans and not the warm-up: a span of a few steps overstates the
    step by the sync's latency and an unfilled dispatch pipeline, and the warm-up's
    first steps are slower still (docs/decisions/0002-windows-sized-by-sizing-spans.md).
    The trainer is run with an upper bound (``max_total_steps``) and stopped by
    ``StopTraining`` when the last window ends, so it trains exactly ``total_steps``.

    With ``steps_per_epoch`` no window holds the end of a pass over the data. fit
    ends an epoch there (Keras flushes its batch-end work, fetches its metrics and
    starts a new iterator), many steps' worth, so a window's time would depend on
    how many epoch ends it happened to hold (docs/decisions/0005). A
    window that would cross one starts at the next epoch instead; the steps in
    between are timed as a gap (``gaps``), whose excess over its steps at the
    steady step time is the epoch end's cost (``epoch_end_s``, its own figure, like
    fit's per-call set-up). Windows are then at most ``(steps_per_epoch - 1) // 2``
    steps, so that at least two fit in an epoch. Keras's first epoch end costs more
    than later ones, and a user training many epochs pays the later ones, so the
    first is recorded apart (``first_epoch_end_s``) and ``epoch_end_spans`` holds
    the later ones only. When no gap held a later epoch end (an epoch longer than
    the windows), the clock trains on past the first epoch end and times one more
    span around the next one (``epoch_probes``; the first epoch end on the way gets
    a span too), so every loop with epochs gets its ``epoch_end_s``.

    ``at_equal_work`` is called once, untimed, when the first call and the warm-up
    are done, after ``equal_work_steps`` steps (default: 1 + ``warmup_steps``
    rounded up to whole calls; the worker passes the run's value, the same for
    every cell: the same batches in the same order for every loop style): the
    worker evaluates the model there, so that every style's loss after the same
    work can be compared in every run.

    ``meet`` (a duet A/B, ``benchmarks/duet.py``: ``Seat.meet``) is a barrier with the
    other side's worker of the same job: the two agree the steps a window once the sizing
    span is timed (the fewer of the two) and meet again before every timed window, so
    window k of both sides starts together and times the same steps. The wait is never
    timed: the window's clock starts after it.
    """

    def __init__(
        self,
        sync: Callable[[], object],
        warmup_steps: int,
        windows: int,
        steps_per_window: int,
        inject_fraction: float = 0.0,
        window_s: float | None = None,
        steps_per_epoch: int | None = None,
        at_equal_work: Callable[[], object] | None = None,
        steps_per_call: int = 1,
        equal_work_steps: int | None = None,
        probe_epoch_end: bool = True,
        meet: Callable[[str], str | None] | None = None,
    ) -> None:
        self.meet = meet
        k = self.steps_per_call = max(1, int(steps_per_call))
        #: train on to an epoch end when no window crossed one (``_plan``)
        self.probe_epoch_end = probe_epoch_end
        if equal_work_steps is None:
            equal_work_steps = self._whole_calls_up(1 + warmup_steps)
        if equal_work_steps < k or equal_work_steps % k:
            raise ValueError(f"equal work of {equal_work_steps} steps is not whole calls of {k}")
        if steps_per_epoch and steps_per_epoch % k:
            raise ValueError(f"an epoch of {steps_per_epoch} steps is not whole calls of {k}")
        self.sync = sync
        self.at_equal_work = at_equal_work
        #: steps after the first call, up to the equal-work point (untimed)
        self.equal_work_steps = equal_work_steps
        self.warmup_steps = equal_work_steps - k
        self.windows = windows
        self.min_steps_per_window = self._whole_calls_up(steps_per_window)
        self.window_s = window_s
        # windows fit between epoch ends only with at least two calls an epoch
        usable = steps_per_epoch and steps_per_epoch >= max(3, 2 * k)
        self.steps_per_epoch = steps_per_epoch if usable else None
        self.inject_fraction = inject_fraction
        self.inject_s = 0.0
        self.times = PhaseTimes()
        self.gaps: list[tuple[int, float]] = []  # (steps, seconds) between windows
        self.gap_epochs: list[int] = []  # the epoch end each gap holds (1: the first)
        self.sizing_spans: list[tuple[int, float]] = []  # (steps, seconds), sizing only
        self._span: tuple[int, int] | None = None  # the sizing span being timed
        self._plan(self.min_steps_per_window, equal_work_steps)
        self._last = float("nan")

    def _whole_calls_up(self, steps: int) -> int:
        """``steps`` rounded up to whole calls (at least one)."""
        k = self.steps_per_call
        return max(k, -(-int(steps) // k) * k)

    def _whole_calls(self, steps: int) -> int:
        """``steps`` rounded to the nearest whole number of calls (at least one)."""
        k = self.steps_per_call
        return k * max(1, round(steps / k))

    @property
    def sizing_steps(self) -> int:
        """Untimed steps spent sizing the windows (0 with a fixed step count)."""
        return sum(steps for steps, _ in self.sizing_spans)

    @property
    def _longest_window(self) -> int:
        """The most steps a window may hold: (steps per epoch - 1) // 2 with epochs
        (so that two windows fit between epoch ends), else MAX_STEPS_PER_WINDOW."""
        spe, k = self.steps_per_epoch, self.steps_per_call
        most = self._whole_calls_up(max(MAX_STEPS_PER_WINDOW, self.min_steps_per_window))
        return max(k, min(most, (spe - 1) // 2) // k * k) if spe is not None else most

    def _start_span(self, start: int, steps: int) -> None:
        self._span = (start, start + steps)
        self.boundaries = {start + steps}

    def _sized(self, step: int, elapsed: float) -> None:
        """A sizing span ended at ``step``: plan the windows from here if it was long
        enough, else time a longer one."""
        start, end = self._span
        steps, spe = end - start, self.steps_per_epoch
        if spe is not None and start // spe != end // spe:
            self._start_span(step, steps)  # it held one of fit's epoch ends: again
            return
        self.sizing_spans.append((steps, elapsed))
        if elapsed < self.window_s / 2 and steps < self._longest_window:
            # grow at least 2x, at most 10x, toward half a window
            factor = min(10.0, max(2.0, self.window_s / 2 / max(elapsed, 1e-9)))
            grown = self._whole_calls_up(math.ceil(steps * factor))
            self._start_span(step, min(self._longest_window, grown))
            return
        self._span = None
        estimate = elapsed / steps
        sized = steps_for_duration(self.window_s, estimate, self.min_steps_per_window)
        steps = max(self.min_steps_per_window, self._whole_calls(sized))
        if self.meet is not None:  # a duet: both sides time the fewer of their two counts
            answer = self.meet(f"size {steps}")
            if answer is not None and answer.startswith("size "):
                steps = min(steps, self._whole_calls_up(int(answer.split()[1])))
        self._plan(steps, step)

    def _plan(self, steps_per_window: int, start: int) -> None:
        """Place the calibration window (if any) and the timed windows from step ``start``."""
        spe = self.steps_per_epoch
        steps_per_window = min(steps_per_window, self._longest_window)
        self.steps_per_window = steps_per_window
        # With a slowdown to inject, untimed calibration spans after the warm-up
        # measure the steady step the extra work is a fraction of (the warm-up's
        # early steps are slower and would overstate it): the fastest span, as load
        # only ever adds time to one.
        span = self._whole_calls_up(max(steps_per_window, CALIBRATION_SPAN_STEPS))
        self.calibration_span = span if self.inject_fraction else 0
        self.calibration_steps = CALIBRATION_SPANS * self.calibration_span
        self.calibration_ends = (
            {start + i * self.calibration_span for i in range(1, CALIBRATION_SPANS + 1)}
            if self.inject_fraction
            else set()
        )
        self.calibration_s: list[float] = []
        self.first_window = start + self.calibration_steps
        self.window_spans: list[tuple[int, int]] = []
        self.gap_starts: dict[int, int] = {}  # a window's first step -> the gap's first
        start = self.first_window
        for _ in range(self.windows):
            # an epoch ends before step k when k % spe == 0; a window [a, b) holds
            # one if some such k lies in (a, b]
            if spe is not None and start // spe != (start + steps_per_window) // spe:
                self.gap_starts[(start // spe + 1) * spe] = start
                start = (start // spe + 1) * spe
            self.window_spans.append((start, start + steps_per_window))
            start += steps_per_window
        self.window_ends = {end for _, end in self.window_spans}
        self.window_begins = {begin for begin, _ in self.window_spans}
        # step counts at which a phase ends (a boundary: sync, then read the clock)
        self.boundaries = {self.steps_per_call, self.equal_work_steps, self.first_window}
        self.boundaries |= self.calibration_ends
        self.boundaries |= {begin for begin, _ in self.window_spans} | self.window_ends
        #: spans timed after the last window, each around an epoch end: (first, last step)
        self.epoch_probes: list[tuple[int, int]] = []
        if spe is not None and max(self.gap_starts, default=0) < 2 * spe and self.probe_epoch_end:
            # no gap holds a later epoch end: time a span around the next later one, and
            # around the first if it comes on the way (two windows' steps apart at least)
            last = self.window_spans[-1][1]
            later = max((last // spe + 1) * spe, 2 * spe)
            ends = ([spe] if last < spe and spe not in self.gap_starts else []) + [later]
            self.epoch_probes = [
                (max(last, end - steps_per_window), end + steps_per_window) for end in ends
            ]
            self.boundaries |= {step for span in self.epoch_probes for step in span}
        self.probe_ends = {end: start for start, end in self.epoch_probes}

    @property
    def total_steps(self) -> int:
        """Steps the run trains (final once the warm-up has ended)."""
        return self.epoch_probes[-1][1] if self.epoch_probes else self.window_spans[-1][1]

    @property
    def max_total_steps(self) -> int:
        """An upper bound of ``total_steps`` to give the trainer."""
        if self.window_s is None:
            return self.total_steps
        most = self._whole_calls_up(max(MAX_STEPS_PER_WINDOW, self.min_steps_per_window))
        calibration = (
            CALIBRATION_SPANS * self._whole_calls_up(max(most, CALIBRATION_SPAN_STEPS))
            if self.inject_fraction
            else 0
        )
        # sizing spans grow at least 2x up to ``most`` (a span that held an epoch
        # end is timed again, once per epoch at most): under 4x ``most`` in all
        sizing = 4 * most
        # the epoch probes: to the second epoch end at most, or one more epoch, and a window
        probe = (2 * self.steps_per_epoch + most) if self.steps_per_epoch else 0
        return self.equal_work_steps + sizing + calibration + 2 * self.windows * most + probe

    def _epoch_end_costs(self) -> list[tuple[int, float]]:
        """(epoch end, cost) of every timed gap: its time less its steps at the steady
        step time."""
        if not self.times.window_s:
            return []
        steady = statistics.median(self.times.window_s) / self.steps_per_window
        costs = [seconds - steps * steady for steps, seconds in self.gaps]
        return list(zip(self.gap_epochs, costs, strict=True))

    def epoch_end_spans(self) -> list[float]:
        """The cost of every timed epoch end after the first (s), in order."""
        return [cost for epoch, cost in self._epoch_end_costs() if epoch > 1]

    def first_epoch_end_s(self) -> float | None:
        """The cost of the first epoch end, when a gap held it (else None)."""
        return next((cost for epoch, cost in self._epoch_end_costs() if epoch == 1), None)

    def epoch_end_s(self) -> float | None:
        """Median cost of an epoch end after the first (None when none was timed)."""
        spans = self.epoch_end_spans()
        return statistics.median(spans) if spans else None

    def on_train_begin(self) -> None:
        self.times.train_begin = self._last = now()

    def on_step_begin(self, step: int) -> None:
        if step in self.boundaries:
            self.sync()
            t = now()
            elapsed, self._last = t - self._last, t
            if step == self.steps_per_call:
                self.times.first_step_s = elapsed
            if step == self.equal_work_steps:
                if step > self.steps_per_call:
                    self.times.warmup_s = elapsed
                if self.at_equal_work is not None:
                    self.at_equal_work()  # untimed: _last is read again below
                if self.window_s is not None:
                    self._start_span(step, self.steps_per_call)
            elif self._span is not None:
                self._sized(step, elapsed)
            elif step in self.calibration_ends:  # only when injecting
                self.calibration_s.append(elapsed)
                if step == self.first_window:  # calibration done: its fastest span
                    fastest = min(self.calibration_s) / self.calibration_span
                    self.inject_s = self.inject_fraction * fastest
            elif step in self.window_ends:
                self.times.window_s.append(elapsed)
            elif step in self.gap_starts:  # a window starts after a gap that held an epoch's end
                self.gaps.append((step - self.gap_starts[step], elapsed))
                self.gap_epochs.append(step // self.steps_per_epoch)
            elif step in self.probe_ends:
                self.gaps.append((step - self.probe_ends[step], elapsed))
                self.gap_epochs.append(step // self.steps_per_epoch)
            if step == self.total_steps and self._span is None:  # (sizing: not yet planned)
                self.times.end = t
                raise StopTraining
            if self._span is None and step in self.window_begins:
                if self.meet is not None:  # a duet: start the window with the other side
                    self.meet(f"window {len(self.times.window_started_at)}")
                self.times.window_started_at.append(time.time())
            self._last = now()  # exclude the bookkeeping above from the next phase
        if self.inject_s and step >= self.first_window:
            spin(self.inject_s * self.steps_per_call)  # once a call: its steps' worth
