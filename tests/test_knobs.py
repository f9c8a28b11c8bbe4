"""The knobs beside workload and loop (loops/knobs.py): steps per call, precision and
fit's jit_compile, from the command line to the cells, the clock, the summary and
runs made before them. Training with them is checked in tests/test_equivalence.py
(equivalence), tests/test_clock.py and tests/test_worker.py (real trainers)."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest
import tf_loopbench.loops.styles  # noqa: F401  (registers the loop styles)
import tf_loopbench.loops.workloads  # noqa: F401  (registers the workloads)
from tf_loopbench.benchmarks.clock import PhaseClock
from tf_loopbench.benchmarks.config import Cell, RunConfig
from tf_loopbench.benchmarks.stats import summarize
from tf_loopbench.loops.knobs import call_multiple, fit_jit_key, fit_jit_setting, round_up
from tf_loopbench.reports.rundir import CELL_KEYS, CellKey, load_run

from tests.conftest import ROOT
from tests.test_cli import assert_one_line_error, main_in_process

GOLDEN = ROOT / "tests" / "fixtures" / "golden"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--steps-per-call", "0"], ["--steps-per-call", "0 is not a positive integer"]),
        (["run", "--steps-per-call", "8,-2"], ["--steps-per-call", "not a positive integer"]),
        (["run", "--steps-per-call", "x"], ["--steps-per-call", "'x' is not a positive integer"]),
        (
            ["run", "--precision", "float32,float64"],
            ["unknown precision 'float64'", "float32, mixed_bfloat16, mixed_float16"],
        ),
        (["run", "--precision", "bf16"], ["unknown precision 'bf16'"]),
        (["run", "--fit-jit", "xla"], ["unknown fit-jit 'xla'", "auto, off, on"]),
        (["run", "--fit-jit", ","], ["unknown fit-jit ','"]),
    ],
)
def test_bad_knob_values_are_one_line_and_exit_2(args, fragments, capsys):
    assert_one_line_error(main_in_process(args, capsys), *fragments)


def test_a_bad_knob_through_the_console_entry_point(cli):
    assert_one_line_error(cli("run", "--precision", "int8"), "unknown precision 'int8'")


def test_data_too_small_for_whole_calls_is_bad_input():
    from tf_loopbench.benchmarks.config import UsageError
    from tf_loopbench.benchmarks.matrix import make_cells

    with pytest.raises(UsageError, match="12 steps per call at batch size 32 need 384 examples"):
        make_cells(config(data_size=256, steps_per_call=(3, 4)))


def config(**changes) -> RunConfig:
    base = dict(
        workloads=("linear",),
        loops=("fit", "eager", "xla"),
        devices=("cpu",),
        devices_present=("cpu",),
        batch_sizes=(32,),
        widths=(None,),
        steps=None,
        windows=2,
        warmup_steps=10,
        processes=1,
        data_size=4096,
    )
    return RunConfig(**{**base, **changes})


def test_the_product_of_the_axes_gives_fit_one_cell_per_jit_setting_and_others_one():
    from tf_loopbench.benchmarks.matrix import make_cells

    cells = make_cells(
        config(
            steps_per_call=(1, 8),
            precisions=("float32", "mixed_bfloat16"),
            fit_jit=("auto", "off", "on"),
        )
    )
    assert len(cells) == 2 * 2 * (3 + 1 + 1)
    fits = {(c.steps_per_call, c.precision, c.fit_jit) for c in cells if c.loop == "fit"}
    assert {jit for _, _, jit in fits} == {"auto:off", "off", "on"}  # a CPU cell: auto is off
    assert {c.fit_jit for c in cells if c.loop != "fit"} == {"none"}
    # eager's K=8 cells are made: the worker skips them with eager's own reason
    assert any(c.loop == "eager" and c.steps_per_call == 8 for c in cells)
    labels = {c.label for c in cells}
    assert len(labels) == len(cells)
    assert "linear-fit-cpu-b32-k8-mixed_bfloat16-jit_off" in labels
    assert "linear-fit-cpu-b32" in labels  # the default cell keeps its old label
    key = next(c for c in cells if c.label == "linear-xla-cpu-b32-k8").key
    assert key == CellKey("linear", "xla", "cpu", 32, 0, 8, "float32", "none")
    assert key.name == "linear/xla/cpu/bs32/k8"
    assert tuple(Cell("linear", "fit", "cpu", 32, 0, fit_jit="on").keys) == CELL_KEYS


def test_equal_work_and_the_data_are_whole_calls_of_every_k_in_the_run():
    assert config().equal_work_steps == 11  # 1 + 10 warm-up steps, as before the knobs
    assert config(steps_per_call=(1, 8, 32)).equal_work_steps == 32
    assert config(steps_per_call=(3, 4)).call_multiple == 12
    assert config(steps_per_call=(3, 4)).equal_work_steps == 12
    assert call_multiple([]) == 1 and round_up(33, 32) == 64


def test_fit_jit_keys_say_what_fit_runs_with():
    assert [fit_jit_key(j, "cpu") for j in ("auto", "off", "on")] == ["auto:off", "off", "on"]
    assert fit_jit_key("auto", "gpu") == "auto:on"
    assert fit_jit_setting("auto:on") == ("auto", True)
    with pytest.raises(ValueError, match="unknown fit-jit"):
        fit_jit_setting("maybe")


def test_fit_cells_on_a_gpu_machine_are_keyed_by_what_keras_will_choose():
    from tf_loopbench.benchmarks.matrix import make_cells

    cells = make_cells(
        config(
            loops=("fit",),
            devices=("cpu", "gpu"),
            devices_present=("cpu", "gpu"),
            strategies=("none", "mirrored:2"),
        )
    )
    keys = {(c.device, c.strategy): c.fit_jit for c in cells}
    # a hidden GPU is still listed to Keras; any strategy turns Keras's XLA off
    assert keys == {
        ("cpu", "none"): "auto:on",
        ("cpu", "mirrored:2"): "auto:off",
        ("gpu", "none"): "auto:on",
        ("gpu", "mirrored:2"): "auto:off",
    }


@pytest.mark.parametrize("gpus", [0, 1])
@pytest.mark.parametrize("strategy", ["none", "mirrored:1"])
def test_the_keys_auto_rule_is_kerass_own_choice(gpu_machine, gpus, strategy):
    """keras_auto_jit against what Keras 3's compile resolves jit_compile="auto" to, on
    this machine and on a GPU-present double, with and without a strategy."""
    import keras
    import tensorflow as tf
    from tf_loopbench.loops.knobs import keras_auto_jit

    if gpus:
        gpu_machine(gpus)
    made = tf.distribute.MirroredStrategy(["/CPU:0"]) if strategy != "none" else None
    with made.scope() if made is not None else contextlib.nullcontext():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
    assert bool(model.jit_compile) is keras_auto_jit(bool(gpus), strategy)


def test_the_clock_ends_every_phase_on_a_call_boundary(monkeypatch):
    """A scripted trainer with 4 steps a call and an epoch every 24 steps: every
    boundary is a multiple of 4, no window holds an epoch end, windows are whole calls."""
    import tf_loopbench.benchmarks.clock
    from tf_loopbench.loops.base import StopTraining

    now = [0.0]
    monkeypatch.setattr(tf_loopbench.benchmarks.clock, "now", lambda: now[0])
    seen_at, evaluated_at = [], []
    clock = PhaseClock(
        lambda: seen_at.append(step),
        warmup_steps=5,
        windows=5,
        steps_per_window=6,
        steps_per_epoch=24,
        steps_per_call=4,
        at_equal_work=lambda: evaluated_at.append(step),
    )
    assert clock.equal_work_steps == 8 and clock.warmup_steps == 4  # 1 + 5 -> 8
    assert clock.steps_per_window == 8  # 6 rounded up to whole calls
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(0, clock.max_total_steps + 1, 4):
            if step and step % 24 == 0:
                now[0] += 0.05  # the epoch end before step 24, 48, ...
            clock.on_step_begin(step)
            now[0] += 4 * 0.001  # one call of 4 steps of 1 ms
    assert all(s % 4 == 0 for s in seen_at) and evaluated_at == [8]
    assert clock.times.first_step_s == pytest.approx(0.004)
    assert clock.times.window_s == pytest.approx([0.008] * 5)  # no window holds an epoch end
    assert all(a % 4 == 0 and b - a == 8 for a, b in clock.window_spans)
    assert clock.epoch_end_s() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="not whole calls"):
        PhaseClock(
            lambda: None,
            warmup_steps=1,
            windows=1,
            steps_per_window=1,
            steps_per_epoch=10,
            steps_per_call=4,
        )


def test_the_clock_sizes_windows_by_duration_in_whole_calls(monkeypatch):
    import tf_loopbench.benchmarks.clock
    from tf_loopbench.loops.base import StopTraining

    now = [0.0]
    monkeypatch.setattr(tf_loopbench.benchmarks.clock, "now", lambda: now[0])
    monkeypatch.setattr(
        tf_loopbench.benchmarks.clock, "spin", lambda seconds: now.__setitem__(0, now[0] + seconds)
    )
    clock = PhaseClock(
        lambda: None,
        warmup_steps=3,
        windows=2,
        steps_per_window=1,
        window_s=0.05,
        steps_per_call=8,
        inject_fraction=0.5,
    )
    clock.on_train_begin()
    with pytest.raises(StopTraining):
        for step in range(0, clock.max_total_steps + 1, 8):
            clock.on_step_begin(step)  # spins 8 steps' worth of injected work once a call
            now[0] += 8 * 0.001
    assert [steps % 8 for steps, _ in clock.sizing_spans] == [0] * len(clock.sizing_spans)
    assert clock.steps_per_window == 48  # 50 ms of 1 ms steps, to whole calls of 8
    assert clock.calibration_steps == 5 * 48  # 5 spans of a window's steps, whole calls
    assert clock.inject_s == pytest.approx(0.0005)  # half a 1 ms step
    assert clock.total_steps % 8 == 0
    assert clock.times.window_s == pytest.approx([48 * 0.0015] * 2)  # 1 ms + half of it


def _rows(cells: list[tuple], seconds: dict[tuple, float], loss: dict[tuple, float]):
    rows = []
    for cell in cells:
        keys = CellKey(*cell)._asdict()  # keys the tuple leaves out read as their defaults
        for process in range(3):
            rows.append(
                {
                    "kind": "process",
                    **keys,
                    "process": process,
                    "status": "ok",
                    "step_time_s": seconds[cell] * (1 + 0.001 * process),
                    "equal_work_loss": loss[cell],
                    "equal_work_steps": 32,
                    "equivalence_reference": cell[1] == "eager",
                    "equivalence_rtol": 1e-4,
                }
            )
    return rows


def test_speedups_compare_within_a_k_and_equivalence_across_them():
    mlp = ("mlp", None, "cpu", 32, 128)
    cells = [
        (*mlp[:1], "fit", *mlp[2:], 1, "float32", "auto:off"),
        (*mlp[:1], "fit", *mlp[2:], 1, "float32", "on"),
        (*mlp[:1], "eager", *mlp[2:], 1, "float32", "none"),
        (*mlp[:1], "xla", *mlp[2:], 1, "float32", "none"),
        (*mlp[:1], "fit", *mlp[2:], 8, "float32", "auto:off"),
        (*mlp[:1], "xla", *mlp[2:], 8, "float32", "none"),
        (*mlp[:1], "xla", *mlp[2:], 8, "mixed_bfloat16", "none"),
    ]
    seconds = dict(zip(cells, [2.0, 1.6, 8.0, 1.0, 1.2, 0.6, 0.5], strict=True))
    losses = dict(zip(cells, [1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.0], strict=True))
    frame = summarize(_rows(cells, seconds, losses), reference="fit")
    by = {CellKey.of(r): r for _, r in frame.iterrows()}
    cells = [CellKey(*cell) for cell in cells]  # the strategy key as its default
    speedup = {c: by[c]["steady_speedup_vs_fit"] for c in cells}
    assert speedup[cells[3]] == pytest.approx(2.0, rel=0.01)  # K=1 xla against fit auto:off
    assert speedup[cells[1]] == pytest.approx(1.25, rel=0.01)  # fit with XLA against Keras's
    assert speedup[cells[5]] == pytest.approx(2.0, rel=0.01)  # K=8 xla against K=8 fit
    assert pd.isna(speedup[cells[6]])  # no bfloat16 fit cell
    equivalent = {c: by[c]["equivalent"] for c in cells}
    assert equivalent[cells[4]] is True  # K=8 fit against eager (K=1): the same work
    assert equivalent[cells[5]] is False  # 10% off
    assert equivalent[cells[6]] is None  # no bfloat16 eager cell to compare with
    assert list(frame.columns[: len(CELL_KEYS)]) == list(CELL_KEYS)


def test_a_run_from_before_the_knobs_reads_with_their_defaults():
    run = load_run(GOLDEN / "base")
    summary = run.summary
    assert (summary["steps_per_call"] == 1).all() and (summary["precision"] == "float32").all()
    assert set(summary.loc[summary["loop"] == "fit", "fit_jit"]) == {"auto:off"}  # Keras's choice
    assert set(summary.loc[summary["loop"] != "fit", "fit_jit"]) == {"none"}
    samples = run.samples
    fit_rows = samples[samples["loop"] == "fit"]
    assert set(fit_rows["kind"]) == {"process", "window"}
    assert set(fit_rows["fit_jit"]) == {"auto:off"}  # window rows too, from the summary
    assert CellKey.of({"workload": "mlp", "loop": "eager", "device": "cpu", "batch_size": 8}) == (
        CellKey("mlp", "eager", "cpu", 8, 0, 1, "float32", "none")
    )


def test_mixed_float16_puts_one_loss_scale_optimizer_behind_every_style():
    import keras
    from tf_loopbench.loops.base import WORKLOADS, WorkloadConfig
    from tf_loopbench.loops.knobs import loss_scaled, precision_policy, unsupported_precision

    with precision_policy("mixed_float16"):
        workload = WORKLOADS.get("mlp")(WorkloadConfig(data_size=256))
        inner = workload.build().optimizers["optimizer"]
        state = loss_scaled(workload.build(), workload, "mixed_float16")
        optimizer = state.optimizers["optimizer"]
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert float(optimizer.scale_loss(1.0)) == 2.0**15  # the custom loops' scaling
        assert workload.fit_model(state).optimizer is optimizer  # fit does not wrap it again
        assert type(inner) is type(optimizer.inner_optimizer)
        # this CPU trains in both mixed precisions (slowly or not: that is a result)
        assert unsupported_precision("mixed_float16") is None
        assert unsupported_precision("mixed_bfloat16") is None
    assert keras.mixed_precision.global_policy().name == "float32"

    class NoScaling:
        scales_loss = False

    with pytest.raises(NotImplementedError, match="does not scale its loss"):
        loss_scaled(state, NoScaling(), "mixed_float16")
