"""The phase clock: boundaries, syncs, windows and the slowdown knob, driven by a real
custom-loop trainer on the linear workload."""

from __future__ import annotations

import pytest

import loops.styles  # noqa: F401
import loops.workloads  # noqa: F401
from benchmarks.clock import PhaseClock, injected_fraction
from loops.base import LOOPS, WORKLOADS, WorkloadConfig


def make_trainer(loop: str = "tf_function"):
    workload = WORKLOADS.get("linear")(WorkloadConfig(data_size=256))
    state = workload.build()
    trainer = LOOPS.get(loop)().make_trainer(workload, state, workload.make_data().whole_batches(32), 32)
    return trainer


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
    # a sync ends the first step, the warm-up's first half (1 of 3 steps), the
    # warm-up and every window, after exactly those steps
    assert synced_at == [1, 3, 4, 9, 14, 19, 24]
    assert trainer.sync() == 24  # fit stops after exactly total_steps


def test_injected_slowdown_spins_in_timed_steps_only():
    trainer = make_trainer()
    plain = PhaseClock(trainer.sync, warmup_steps=5, windows=3, steps_per_window=10)
    trainer.run(plain.total_steps, plain)
    slowed = PhaseClock(trainer.sync, warmup_steps=5, windows=3, steps_per_window=10,
                        inject_fraction=1.0)
    trainer.run(slowed.total_steps, slowed)
    assert slowed.total_steps == plain.total_steps + 50  # one calibration window
    assert len(slowed.times.window_s) == 3
    assert slowed.inject_s > 0
    assert min(slowed.times.window_s) >= 10 * slowed.inject_s
    assert slowed.first_window == 1 + 5 + 50
    assert sum(slowed.times.window_s) > sum(plain.times.window_s)


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
    # steps per window from the warm-up's step time, at least the given minimum
    assert clock.steps_per_window >= 2
    assert len(clock.times.window_s) == 4
    # the trainer stopped after exactly the last window
    assert trainer.sync() == clock.total_steps == 1 + 3 + 4 * clock.steps_per_window
    # windows last about the target (a loaded machine may stretch them, never by 10x)
    assert 0.001 < sorted(clock.times.window_s)[1] < 0.2


def test_windows_are_sized_from_the_warm_up_s_last_half():
    # a pure-Python "trainer": warm-up steps 1-3 take 20 ms (as first steps often
    # run slower), every later step 2 ms; the clock must size windows from the 2 ms
    from benchmarks.clock import spin
    from loops.base import StopTraining

    clock = PhaseClock(lambda: None, warmup_steps=6, windows=3, steps_per_window=1, window_s=0.02)
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(clock.max_total_steps):
            clock.on_step_begin(step)
            spin(0.02 if 1 <= step <= 3 else 0.002)
    assert 0.066 <= clock.times.warmup_s < 0.2  # the whole warm-up is still reported
    # 20 ms / 2 ms = 10 steps (the whole warm-up's mean, 11 ms, would give 2)
    assert 8 <= clock.steps_per_window <= 10
    assert clock.total_steps == 1 + 6 + 3 * clock.steps_per_window
    assert all(0.015 < t < 0.1 for t in clock.times.window_s)


def test_steps_for_duration_bounds():
    from benchmarks.clock import MAX_STEPS_PER_WINDOW, steps_for_duration

    assert steps_for_duration(0.05, 0.001) == 50
    assert steps_for_duration(0.05, 0.2) == 1
    assert steps_for_duration(0.05, 0.2, min_steps=3) == 3
    assert steps_for_duration(10.0, 1e-9) == MAX_STEPS_PER_WINDOW
    assert steps_for_duration(0.05, float("nan"), min_steps=4) == 4


def test_no_window_holds_an_epoch_end_and_fit_s_epoch_end_is_its_own_figure():
    # linear with 256 examples in batches of 32: a pass over the data every 8 steps
    trainer = make_trainer("fit")
    clock = PhaseClock(trainer.sync, warmup_steps=2, windows=6, steps_per_window=5,
                       steps_per_epoch=trainer.epoch_steps)
    assert trainer.epoch_steps == 8
    assert clock.steps_per_window == 3  # at most (8 - 1) // 2: two windows an epoch
    assert clock.window_spans == [(3, 6), (8, 11), (11, 14), (16, 19), (19, 22), (24, 27)]
    trainer.run(clock.max_total_steps, clock)
    assert trainer.sync() == clock.total_steps == 27
    assert len(clock.times.window_s) == 6
    assert [steps for steps, _ in clock.gaps] == [2, 2, 2]  # 6-8, 14-16, 22-24
    # fit's epoch end (batch-end work flushed, metrics fetched, a new iterator) costs
    # more than a step; the windows do not hold it
    step = sorted(clock.times.window_s)[3] / 3
    assert clock.epoch_end_s() > step
    assert max(clock.times.window_s) < min(clock.times.window_s) + clock.epoch_end_s()
    # custom loops stream batches: no epoch ends to avoid
    assert make_trainer("tf_function").epoch_steps is None
