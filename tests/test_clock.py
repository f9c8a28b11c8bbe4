"""The phase clock: boundaries, syncs, windows and the slowdown knob, driven by a real
custom-loop trainer on the linear workload."""

from __future__ import annotations

from itertools import pairwise

import pytest
import tf_loopbench.loops.styles  # noqa: F401
import tf_loopbench.loops.workloads  # noqa: F401
from tf_loopbench.benchmarks.clock import PhaseClock, injected_fraction
from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig


class FakeTime:
    """A clock that moves only when the test says a step took time: timing tests of the
    clock's logic that a busy machine cannot disturb."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def spin(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def fake_time(monkeypatch):
    import tf_loopbench.benchmarks.clock

    fake = FakeTime()
    monkeypatch.setattr(tf_loopbench.benchmarks.clock, "now", fake.now)
    return fake


def make_trainer(loop: str = "tf_function", steps_per_call: int = 1):
    workload = WORKLOADS.get("linear")(WorkloadConfig(data_size=256))
    state = workload.build()
    train = workload.make_data().whole_batches(32, steps_per_call)
    return LOOPS.get(loop)().make_trainer(workload, state, train, 32, steps_per_call=steps_per_call)


@pytest.mark.parametrize("loop", ["fit", "tf_function"])
def test_phases_and_syncs(loop):
    trainer = make_trainer(loop)
    synced_at = []

    def sync():
        synced_at.append(trainer.sync())  # the step count read from the device

    clock = PhaseClock(sync, warmup_steps=3, windows=4, steps_per_window=5)
    assert clock.total_steps == 1 + 3 + 20
    trainer.run(clock.total_steps, clock)
    times = clock.times
    assert times.first_step_s > 0 and times.warmup_s > 0
    assert len(times.window_s) == 4 and all(t > 0 for t in times.window_s)
    # a sync ends the first step, the warm-up and every window, after exactly those steps
    assert synced_at == [1, 4, 9, 14, 19, 24]
    assert trainer.sync() == 24  # fit stops after exactly total_steps


def test_injected_slowdown_spins_in_timed_steps_only(fake_time, monkeypatch):
    # fake time: steps of 1 ms, and the injected spin moves the same clock (no speed
    # is asserted of a busy machine)
    import tf_loopbench.benchmarks.clock
    from tf_loopbench.loops.base import StopTraining

    monkeypatch.setattr(tf_loopbench.benchmarks.clock, "spin", fake_time.spin)

    def driven(clock: PhaseClock) -> PhaseClock:
        clock.on_train_begin()
        with pytest.raises(StopTraining):
            for step in range(clock.max_total_steps + 1):
                clock.on_step_begin(step)
                fake_time.spin(0.001)
        return clock

    plain = driven(PhaseClock(lambda: None, warmup_steps=5, windows=3, steps_per_window=10))
    slowed = driven(
        PhaseClock(
            lambda: None, warmup_steps=5, windows=3, steps_per_window=10, inject_fraction=1.0
        )
    )
    assert slowed.total_steps == plain.total_steps + 50  # five calibration spans of 10
    assert slowed.first_window == 1 + 5 + 50
    assert slowed.calibration_s == pytest.approx([0.010] * 5)  # no spin while calibrating
    assert slowed.inject_s == pytest.approx(0.001)  # the fraction 1.0 of a 1 ms step
    assert plain.times.window_s == pytest.approx([0.010] * 3)
    assert slowed.times.window_s == pytest.approx([0.020] * 3)  # every timed step spun


def test_the_injected_spin_is_a_fraction_of_the_fastest_calibration_span(fake_time, monkeypatch):
    # steps of 1 ms, but another job takes the core during one calibration span (10x):
    # one span's mean would inject 10 % of 10 ms, far more than the 10 % asked
    import tf_loopbench.benchmarks.clock
    from tf_loopbench.loops.base import StopTraining

    spin = fake_time.spin
    monkeypatch.setattr(tf_loopbench.benchmarks.clock, "spin", spin)  # the injected spin too

    clock = PhaseClock(
        lambda: None, warmup_steps=4, windows=2, steps_per_window=10, inject_fraction=0.1
    )
    slow_span = range(clock.first_window - 50, clock.first_window - 40)  # the first span
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps + 1):
            clock.on_step_begin(step)
            spin(0.010 if step in slow_span else 0.001)
    assert len(clock.calibration_s) == 5 and max(clock.calibration_s) == pytest.approx(0.1)
    assert clock.inject_s == pytest.approx(0.1 * 0.001)


def test_injected_fraction_parsing():
    assert injected_fraction("eager", "eager=0.1,xla=0.2") == 0.1
    assert injected_fraction("xla", "eager=0.1,xla=0.2") == 0.2
    assert injected_fraction("fit", "eager=0.1") == 0.0
    with pytest.raises(ValueError):
        injected_fraction("eager", "eager=-1")


@pytest.mark.parametrize("loop", ["fit", "eager"])
def test_windows_sized_by_duration_stop_the_trainer_after_the_last_window(loop):
    trainer = make_trainer(loop)
    clock = PhaseClock(trainer.sync, warmup_steps=3, windows=4, steps_per_window=2, window_s=0.02)
    assert clock.max_total_steps > 1000  # an upper bound until the warm-up has ended
    trainer.run(clock.max_total_steps, clock)
    # sizing spans of 1, 2, 4, ... steps until one lasts half a window; steps per
    # window from the last one's step time, at least the given minimum
    steps, seconds = clock.sizing_spans[-1]
    assert seconds >= 0.01 or steps == clock._longest_window
    spans = [s for s, _ in clock.sizing_spans]
    assert spans[0] == 1 and all(2 * a <= b <= 10 * a for a, b in pairwise(spans))
    assert clock.steps_per_window == max(2, round(0.02 / (seconds / steps)))
    assert len(clock.times.window_s) == 4
    # the trainer stopped after exactly the last window
    assert trainer.sync() == clock.total_steps
    assert clock.total_steps >= 1 + 3 + clock.sizing_steps + 4 * clock.steps_per_window
    # windows last about the target (a loaded machine may stretch them, never by 10x)
    assert 0.001 < sorted(clock.times.window_s)[1] < 0.2


def test_windows_are_sized_by_spans_that_last_half_a_window(fake_time):
    # a pure-Python "trainer": warm-up steps take 20 ms (first steps often run
    # slower) and every later step 2 ms plus 3 ms of latency at each sync, as a
    # short timed span pays for the sync and an unfilled dispatch pipeline
    spin = fake_time.spin
    from tf_loopbench.loops.base import StopTraining

    clock = PhaseClock(
        lambda: spin(0.003), warmup_steps=4, windows=3, steps_per_window=1, window_s=0.04
    )
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps):
            clock.on_step_begin(step)
            spin(0.02 if 1 <= step <= 4 else 0.002)
    assert 0.08 <= clock.times.warmup_s < 0.2  # the warm-up is its own figure
    spans = [steps for steps, _ in clock.sizing_spans]
    assert spans[0] == 1 and spans == sorted(spans) and len(spans) >= 2
    assert clock.sizing_spans[-1][1] >= 0.02  # the last lasted half a window
    # ~(2 ms + 3 ms / n) a step over n >= 8 steps: 16-20 steps of a 40 ms window
    # (the warm-up's mean, 20 ms, would give 2; one step's 5 ms, 8)
    # (bounds allow a busy machine: a preempted span only lowers the count)
    assert 10 <= clock.steps_per_window <= 20
    assert clock.total_steps == 1 + 4 + clock.sizing_steps + 3 * clock.steps_per_window
    assert all(0.02 < t < 0.15 for t in clock.times.window_s)


def test_sizing_never_stops_the_trainer_where_the_provisional_layout_ended(fake_time):
    # before sizing, 0 warm-up steps and 1 window of 1 step end at step 2, where
    # the first sizing span ends too: the clock must go on until its real last window
    spin = fake_time.spin
    from tf_loopbench.loops.base import StopTraining

    clock = PhaseClock(lambda: None, warmup_steps=0, windows=1, steps_per_window=1, window_s=0.02)
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps):
            clock.on_step_begin(step)
            spin(0.001)
    assert len(clock.times.window_s) == 1 and clock.steps_per_window >= 10
    assert step == clock.total_steps == 1 + clock.sizing_steps + clock.steps_per_window


def test_sizing_spans_skip_fit_s_epoch_ends(fake_time):
    # an epoch every 10 steps; a span that holds an epoch end is timed again
    spin = fake_time.spin
    from tf_loopbench.loops.base import StopTraining

    clock = PhaseClock(
        lambda: None,
        warmup_steps=1,
        windows=2,
        steps_per_window=1,
        window_s=0.1,
        steps_per_epoch=10,
    )
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps):
            if step and step % 10 == 0:
                spin(0.05)  # the epoch end before step 10, 20, ...
            clock.on_step_begin(step)
            spin(0.002)
    assert clock.steps_per_window == 4  # at most (10 - 1) // 2
    assert all(seconds < 0.04 for _, seconds in clock.sizing_spans)  # no epoch end in any


def test_steps_for_duration_bounds():
    from tf_loopbench.benchmarks.clock import MAX_STEPS_PER_WINDOW, steps_for_duration

    assert steps_for_duration(0.05, 0.001) == 50
    assert steps_for_duration(0.05, 0.2) == 1
    assert steps_for_duration(0.05, 0.2, min_steps=3) == 3
    assert steps_for_duration(10.0, 1e-9) == MAX_STEPS_PER_WINDOW
    assert steps_for_duration(0.05, float("nan"), min_steps=4) == 4


def test_no_window_holds_an_epoch_end_and_fit_s_epoch_end_is_its_own_figure():
    # linear with 256 examples in batches of 32: a pass over the data every 8 steps
    trainer = make_trainer("fit")
    clock = PhaseClock(
        trainer.sync,
        warmup_steps=2,
        windows=6,
        steps_per_window=5,
        steps_per_epoch=trainer.epoch_steps,
    )
    assert trainer.epoch_steps == 8
    assert clock.steps_per_window == 3  # at most (8 - 1) // 2: two windows an epoch
    assert clock.window_spans == [(3, 6), (8, 11), (11, 14), (16, 19), (19, 22), (24, 27)]
    trainer.run(clock.max_total_steps, clock)
    assert trainer.sync() == clock.total_steps == 27
    assert len(clock.times.window_s) == 6
    assert [steps for steps, _ in clock.gaps] == [2, 2, 2]  # 6-8, 14-16, 22-24
    # the first epoch end is its own figure; those after it are the ones charged
    assert clock.gap_epochs == [1, 2, 3] and len(clock.epoch_end_spans()) == 2
    assert clock.first_epoch_end_s() is not None and not clock.epoch_probes
    # fit's epoch end (batch-end work flushed, metrics fetched, a new iterator) costs
    # more than a step; the windows do not hold it
    step = sorted(clock.times.window_s)[3] / 3
    assert clock.epoch_end_s() > step
    # (the median window: a busy machine may preempt one window by as much)
    assert sorted(clock.times.window_s)[3] < min(clock.times.window_s) + clock.epoch_end_s()
    # custom loops stream batches: no epoch ends to avoid
    assert make_trainer("tf_function").epoch_steps is None


def test_an_epoch_longer_than_the_windows_gets_a_later_epoch_end_timed(fake_time):
    # an epoch every 40 steps, windows of 3: no window layout crosses an epoch end, so
    # the clock trains on past the first epoch end (timed apart: it costs more) and
    # times a span around the second, the one charged per epoch
    spin = fake_time.spin
    from tf_loopbench.loops.base import StopTraining

    clock = PhaseClock(
        lambda: None, warmup_steps=1, windows=2, steps_per_window=3, steps_per_epoch=40
    )
    assert not clock.gap_starts and clock.epoch_probes == [(37, 43), (77, 83)]
    assert clock.total_steps == 83 <= clock.max_total_steps
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps + 1):  # as Trainer.run ends
            if step in (40, 80):
                spin(0.3 if step == 40 else 0.03)  # the first epoch end costs more
            clock.on_step_begin(step)
            spin(0.001)
    assert step == 83 and len(clock.times.window_s) == 2
    assert clock.gap_epochs == [1, 2]
    assert 0.2 < clock.first_epoch_end_s() < 0.5
    [later] = clock.epoch_end_spans()
    assert 0.01 < later < 0.2 and clock.epoch_end_s() == later  # ~30 ms; a loaded machine
    # a cell's later processes (EPOCH_PROBE_PROCESSES) stop after their windows
    later = PhaseClock(
        lambda: None,
        warmup_steps=1,
        windows=2,
        steps_per_window=3,
        steps_per_epoch=40,
        probe_epoch_end=False,
    )
    assert later.epoch_probes == [] and later.total_steps == 8
    assert later.window_spans == clock.window_spans
    assert later.epoch_end_spans() == [] and later.epoch_end_s() is None


def test_equal_work_is_evaluated_once_after_the_warm_up_and_is_not_timed(fake_time):
    spin = fake_time.spin
    from tf_loopbench.loops.base import StopTraining

    seen = []
    clock = PhaseClock(
        lambda: None,
        warmup_steps=3,
        windows=2,
        steps_per_window=2,
        at_equal_work=lambda: (seen.append(current[0]), spin(0.05)),
    )
    current = [None]
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps + 1):  # as Trainer.run ends
            current[0] = step
            clock.on_step_begin(step)
            spin(0.001)
    assert seen == [4]  # 1 + warm-up steps done, the same for every loop style
    assert max(clock.times.window_s) < 0.02  # the 50 ms evaluation is in no window


@pytest.mark.parametrize("loop", ["fit", "tf_data"])
def test_with_several_steps_per_call_every_phase_ends_on_a_call(loop):
    # linear, 256 examples in batches of 32: 8 steps an epoch, two calls of 4 steps
    trainer = make_trainer(loop, steps_per_call=4)
    synced_at = []
    clock = PhaseClock(
        lambda: synced_at.append(trainer.sync()),
        warmup_steps=2,
        windows=3,
        steps_per_window=3,
        steps_per_epoch=trainer.epoch_steps,
        steps_per_call=4,
    )
    assert clock.equal_work_steps == 4 and clock.steps_per_window == 4  # whole calls
    trainer.run(clock.max_total_steps, clock)
    assert len(clock.times.window_s) == 3 and trainer.sync() == clock.total_steps
    if loop == "fit":  # a window and a gap an epoch: no window holds fit's epoch end
        assert clock.window_spans == [(8, 12), (16, 20), (24, 28)]
        assert synced_at == [4, 8, 12, 16, 20, 24, 28]
        assert [steps for steps, _ in clock.gaps] == [4, 4, 4] and clock.epoch_end_s() > 0
    else:
        assert synced_at == [4, 8, 12, 16]  # the step counter read at each call boundary
