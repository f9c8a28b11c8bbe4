"""Derived figures checked exactly on fixture runs with known numbers (tests/fixtures/report_runs.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from tf_loopbench.reports.compare import break_even_step
from tf_loopbench.reports.gate.stats import ratio_of_medians_ci
from tf_loopbench.reports.report import derived as derived_module
from tf_loopbench.reports.report.aggregate import RunSet, aggregate_processes, run_labels
from tf_loopbench.reports.report.derived import DERIVED_TABLES, derive
from tf_loopbench.reports.rundir import load_runs

from tests.fixtures.report_runs import (
    KNOWN_PEAK_FLOPS,
    KNOWN_STEP_TIMES_MS,
    PROCESS_SPREAD,
    CellSpec,
    known_cells,
    mlp_flops_per_step,
    write_known_run,
    write_run,
)


def load_run_set(paths) -> RunSet:
    return RunSet.of(load_runs(paths))


@pytest.fixture(scope="module")
def known_dir(tmp_path_factory):
    return write_known_run(tmp_path_factory.mktemp("runs") / "known")


@pytest.fixture(scope="module")
def known(known_dir):
    return derive(load_run_set([known_dir]))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, known_dir):
    # the same machine with tensorflow 2.21, twice as fast everywhere
    faster = write_run(
        tmp_path_factory.mktemp("runs") / "faster", known_cells(scale=0.5), tensorflow="2.21.0"
    )
    return load_run_set([known_dir, faster])


def _cell(derived, **keys) -> pd.Series:
    cells = derived.cells
    mask = np.logical_and.reduce([cells[k] == v for k, v in keys.items()])
    assert mask.sum() == 1, keys
    return cells[mask].iloc[0]


# --------------------------------------------------------------------------- loading


def test_run_set_cells_are_tidy_with_run_label(known_dir):
    cells = load_run_set([known_dir]).cells
    assert set(cells["run"]) == {"known"}
    assert {"workload", "loop", "device", "batch_size", "width", "peak_matmul_flops"} <= set(cells)
    assert len(cells) == len(known_cells())
    assert cells["width"].dtype.kind == "i"


def test_aggregate_processes_medians(known_dir):
    run_set = load_run_set([known_dir])
    table = aggregate_processes(run_set.processes).set_index(
        ["workload", "batch_size", "width", "loop"]
    )
    row = table.loc[("mlp", 128, 256, "eager")]
    assert row["n_ok_processes"] == 3
    assert row["process_step_time_median_s"] == pytest.approx(0.024)
    assert ("gan", 128, 64, "xla") not in table.index  # failed: no ok process


# --------------------------------------------------------------------------- speedups


def test_the_one_ratio_helper_is_current_over_baseline_exact_and_seeded():
    # median(current) / median(baseline); the report's speedups pass the loop as baseline
    assert ratio_of_medians_ci([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == (2.0, 2.0)
    low, high = ratio_of_medians_ci([0.5, 0.5], [1.0])
    assert math.isnan(low) and math.isnan(high)
    first = ratio_of_medians_ci([2.0, 2.1, 1.9], [1.0, 1.1, 1.2, 0.9], seed=5)
    assert first == ratio_of_medians_ci([2.0, 2.1, 1.9], [1.0, 1.1, 1.2, 0.9], seed=5)
    assert first[0] < 1.05 / 2.0 < first[1]


@pytest.mark.parametrize("loop", ["eager", "tf_function", "tf_data", "xla"])
@pytest.mark.parametrize("batch_size", [32, 128, 512])
def test_speedup_vs_the_reference_is_the_ratio_of_medians(known, loop, batch_size):
    cell = _cell(known, workload="mlp", loop=loop, batch_size=batch_size, width=256)
    expected = KNOWN_STEP_TIMES_MS["fit"][batch_size] / KNOWN_STEP_TIMES_MS[loop][batch_size]
    assert cell["speedup_vs_reference"] == pytest.approx(expected, rel=1e-12)
    # every process is the median times one of PROCESS_SPREAD: a resampled
    # ratio of medians lies within these bounds, and the CI holds the point
    spread = max(PROCESS_SPREAD) / min(PROCESS_SPREAD)
    rounding = 1 + 1e-12
    assert expected / spread / rounding <= cell["speedup_vs_reference_ci_low"] < expected
    assert expected < cell["speedup_vs_reference_ci_high"] <= expected * spread * rounding


@pytest.mark.parametrize(
    ("loop", "neighbour"),
    [("tf_function", "eager"), ("tf_data", "tf_function"), ("xla", "tf_data")],
)
def test_speedup_vs_the_neighbour_on_the_ladder(known, loop, neighbour):
    cell = _cell(known, workload="mlp", loop=loop, batch_size=128, width=256)
    assert cell["neighbour"] == neighbour
    expected = KNOWN_STEP_TIMES_MS[neighbour][128] / KNOWN_STEP_TIMES_MS[loop][128]
    assert cell["speedup_vs_neighbour"] == pytest.approx(expected, rel=1e-12)
    eager = _cell(known, workload="mlp", loop="eager", batch_size=128, width=256)
    assert math.isnan(eager["speedup_vs_neighbour"])  # eager compares with fit only


def test_speedups_on_the_amortized_and_the_steady_step(tmp_path):
    """fit's 32 ms epoch end over 32 steps doubles its 1 ms step: what a user pays."""
    cells = [
        CellSpec("mlp", "fit", (0.98e-3, 1e-3, 1.03e-3), width=8, epoch_end_s=0.032),
        CellSpec("mlp", "eager", (5e-3, 5e-3, 5e-3), width=8),
    ]
    derived = derive(load_run_set([write_run(tmp_path / "epochs", cells)]))
    long = derived.speedups.set_index("figure")
    assert long.at["amortized", "speedup"] == pytest.approx(2e-3 / 5e-3)
    assert long.at["steady", "speedup"] == pytest.approx(1e-3 / 5e-3)
    eager = _cell(derived, loop="eager")
    assert eager["speedup_vs_reference"] == pytest.approx(0.4)
    assert eager["steady_speedup_vs_reference"] == pytest.approx(0.2)
    assert eager["speedup_vs_reference_ci_low"] < 0.4 < eager["speedup_vs_reference_ci_high"]
    fit = _cell(derived, loop="fit")
    assert fit["amortized_step_time_s"] == pytest.approx(2e-3)


def test_a_run_without_per_epoch_costs_pays_its_steady_step(tmp_path):
    run = write_run(tmp_path / "old", [CellSpec("mlp", "fit", (1e-3, 1.1e-3), width=8)])
    summary = run / "summary.csv"
    pd.read_csv(summary).drop(columns=["amortized_step_time_s"]).to_csv(summary, index=False)
    cell = derive(load_run_set([run])).cells.iloc[0]
    assert cell["amortized_step_time_s"] == cell["step_time_median_s"]
    assert not cell["amortized_recorded"]


def test_the_equal_work_reference_of_each_cell(known):
    cell = _cell(known, workload="mlp", loop="xla", batch_size=128, width=256)
    assert cell["reference_equal_work_loop"] == "eager"
    assert cell["reference_equal_work_loss"] == 0.5


def test_failed_and_skipped_cells_get_no_speedup(known):
    assert math.isnan(_cell(known, workload="gan", loop="xla")["speedup_vs_reference"])
    assert math.isnan(_cell(known, workload="gan", loop="tf_data")["speedup_vs_reference"])


# --------------------------------------------------------------------------- compile


def test_break_even_step_cases():
    assert break_even_step(0.5, 0.001, 0.0, 0.003) == (251.0, "after")  # exact tie at 250
    assert break_even_step(0.61, 0.002, 0.0, 0.004) == (306.0, "after")
    assert break_even_step(0.1, 0.001, 0.2, 0.003) == (1.0, "immediately")
    assert break_even_step(0.1, 0.003, 0.0, 0.003)[1] == "never"
    assert break_even_step(1.0, 0.004, 0.0, 0.003)[1] == "never"
    assert break_even_step(math.nan, 0.001, 0.0, 0.003)[1] == "unknown"


@pytest.mark.parametrize(
    ("loop", "reference", "batch_size", "expected"),
    [
        ("xla", "tf_data", 512, 955.0),  # 1.05 s / 1.1 ms = 954.5
        ("tf_function", "eager", 32, 21.0),  # 0.35 s / 17 ms = 20.6
        ("tf_function", "eager", 512, 351.0),  # 0.35 s / 1 ms = 350 (tie)
        ("tf_data", "tf_function", 128, 501.0),  # 0.05 s / 0.1 ms = 500 (tie)
    ],
)
def test_break_even_steps(known, loop, reference, batch_size, expected):
    table = known.break_even
    row = table[
        (table["workload"] == "mlp")
        & (table["loop"] == loop)
        & (table["reference"] == reference)
        & (table["batch_size"] == batch_size)
        & (table["width"] == 256)
    ]
    assert len(row) == 1
    assert row["break_even_steps"].iloc[0] == expected
    assert row["outcome"].iloc[0] == "after"


def test_break_even_in_epochs(known):
    table = known.break_even.set_index(["loop", "batch_size", "width"])
    # 955 steps of a 32-step epoch (the fixture's steps_per_epoch)
    assert table.at[("xla", 512, 256), "break_even_epochs"] == pytest.approx(955 / 32)


def test_break_even_never(known):
    table = known.break_even
    row = table[
        (table["workload"] == "mlp")
        & (table["loop"] == "xla")
        & (table["reference"] == "tf_data")
        & (table["batch_size"] == 128)
        & (table["width"] == 256)
    ].iloc[0]
    assert row["outcome"] == "never" and math.isnan(row["break_even_steps"])


def test_break_even_only_between_ladder_neighbours(known):
    pairs = set(zip(known.break_even["loop"], known.break_even["reference"], strict=True))
    assert pairs == {("tf_function", "eager"), ("tf_data", "tf_function"), ("xla", "tf_data")}


# --------------------------------------------------------------------------- FLOP/s


def test_achieved_flops_and_mfu(known):
    cell = _cell(known, workload="mlp", loop="fit", batch_size=128, width=256)
    achieved = mlp_flops_per_step(128, 256) / 0.004
    assert cell["achieved_flops_per_s"] == pytest.approx(achieved, rel=1e-12)
    assert cell["mfu"] == pytest.approx(achieved / KNOWN_PEAK_FLOPS["cpu"], rel=1e-12)
    assert cell["mfu"] == pytest.approx(0.32)


def test_mfu_is_nan_without_a_measured_peak(tmp_path):
    run = write_run(
        tmp_path / "nopeak",
        [CellSpec("linear", "fit", (1e-3, 1e-3))],
        peak_matmul_flops={"gpu": 1e13},
    )
    cell = derive(load_run_set([run])).cells.iloc[0]
    assert cell["achieved_flops_per_s"] == pytest.approx(1e6 / 1e-3)
    assert math.isnan(cell["mfu"])


# --------------------------------------------------------------------------- crossovers


def _crossover(derived, axis, loop, reference="fit"):
    table = derived.crossovers
    rows = table[
        (table["axis"] == axis) & (table["loop"] == loop) & (table["reference"] == reference)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_batch_size_crossovers(known):
    tf_function = _crossover(known, "batch_size", "tf_function")
    assert (tf_function["outcome"], tf_function["crossover"]) == ("from", 128)
    # overheads 50% at 32 and 5% at 128: 10% is 8/9 of the way in log2 space
    assert tf_function["crossover_log_interpolated"] == pytest.approx(2 ** (5 + 2 * 0.4 / 0.45))
    tf_data = _crossover(known, "batch_size", "tf_data")
    assert (tf_data["outcome"], tf_data["crossover"]) == ("always", 32)
    xla = _crossover(known, "batch_size", "xla")
    assert (xla["outcome"], xla["crossover"]) == ("from", 512)
    eager = _crossover(known, "batch_size", "eager")
    assert eager["outcome"] == "never" and math.isnan(eager["crossover"])
    assert eager["overheads"] == pytest.approx((9.0, 5.0, 0.15))
    eager_vs_graph = _crossover(known, "batch_size", "eager", "tf_function")
    assert (eager_vs_graph["outcome"], eager_vs_graph["crossover"]) == ("from", 512)


def test_width_crossovers(known):
    xla = _crossover(known, "width", "xla")
    assert (xla["outcome"], xla["crossover"], xla["fixed_value"]) == ("from", 1024, 128)
    assert _crossover(known, "width", "eager", "tf_function")["crossover"] == 1024
    assert _crossover(known, "width", "eager")["outcome"] == "never"


def test_crossover_needs_the_rest_of_the_grid_under_the_threshold(tmp_path):
    # under at 64, over again at 256, under at 1024: the crossover is 1024
    times = {"fit": {64: 1.0, 256: 1.0, 1024: 1.0}, "eager": {64: 1.05, 256: 1.5, 1024: 1.02}}
    cells = [
        CellSpec("mlp", loop, (ms / 1e3,) * 2, batch_size=b, width=8)
        for loop, by_batch in times.items()
        for b, ms in by_batch.items()
    ]
    derived = derive(load_run_set([write_run(tmp_path / "zigzag", cells)]))
    row = _crossover(derived, "batch_size", "eager")
    assert (row["outcome"], row["crossover"]) == ("from", 1024)


# --------------------------------------------------------------------------- several runs


def test_run_labels_name_what_differs(two_runs, tmp_path):
    assert list(two_runs.labels) == ["tensorflow 2.20.0", "tensorflow 2.21.0"]
    assert two_runs.title == "tensorflow 2.20.0 vs tensorflow 2.21.0"
    cpu = write_run(tmp_path / "cpu", [CellSpec("linear", "fit", (1e-3, 1e-3))])
    gpu = write_run(tmp_path / "gpu", [CellSpec("linear", "fit", (1e-4, 1e-4), device="gpu")])
    labels, title = run_labels(load_run_set([cpu, gpu]).runs)
    assert (labels, title) == (["cpu", "gpu"], "cpu vs gpu")
    same = write_run(tmp_path / "cpu-again", [CellSpec("linear", "fit", (1e-3, 1e-3))])
    assert run_labels(load_run_set([cpu, same]).runs)[0] == ["cpu", "cpu-again"]


def test_run_comparison_ratio(two_runs):
    table = derive(two_runs).run_comparison
    assert len(table) == sum(cell.status == "ok" for cell in known_cells())
    assert table["speedup"].to_numpy() == pytest.approx(2.0, rel=1e-12)
    assert (table["speedup_ci_low"] <= 2.0).all() and (table["speedup_ci_high"] >= 2.0).all()


def test_cpu_vs_gpu_pairs_cells_across_devices(tmp_path):
    cpu = write_run(tmp_path / "cpu", [CellSpec("mlp", "fit", (4e-3,) * 3, width=256)])
    gpu = write_run(
        tmp_path / "gpu", [CellSpec("mlp", "fit", (1e-3,) * 3, device="gpu", width=256)]
    )
    table = derive(load_run_set([cpu, gpu])).run_comparison
    assert table[["baseline_device", "device", "speedup"]].values.tolist() == [["cpu", "gpu", 4.0]]


# --------------------------------------------------------------------------- nothing silent


@pytest.mark.parametrize("name", sorted(DERIVED_TABLES))
def test_no_derived_table_is_silently_empty(two_runs, name):
    table = DERIVED_TABLES[name](two_runs)
    assert len(table) > 0, f"{name} returned no rows on good input"
    numbers = table.select_dtypes("number")
    assert not numbers.empty and numbers.notna().any().all(), f"{name}: an all-NaN column"


def test_every_derived_table_function_is_registered():
    names = " ".join(DERIVED_TABLES)
    for function in ("speedups", "break_even", "throughput", "crossovers", "run_comparison"):
        assert callable(getattr(derived_module, function))
        assert function in names, f"{function} has no entry in DERIVED_TABLES"


# --------------------------------------------------------------------------- the ladder


def test_comparisons_are_the_ones_the_ladder_declares(tmp_path):
    """Reports name no loop: declare another ladder and the comparisons follow it."""
    ladder = {
        "reference": "eager",
        "rungs": [
            {"loop": "eager", "compares_with": None, "changes": "users'", "reference": True},
            {"loop": "fit", "compares_with": None, "changes": "Keras", "reference": False},
            {"loop": "xla", "compares_with": "fit", "changes": "XLA", "reference": False},
        ],
    }
    cells = [
        CellSpec("mlp", loop, (ms / 1e3,) * 3, width=8, compile_s=compile_s)
        for loop, ms, compile_s in (("fit", 2.0, 0.8), ("eager", 6.0, 0.1), ("xla", 1.0, 1.5))
    ]
    derived = derive(load_run_set([write_run(tmp_path / "other", cells, ladder=ladder)]))
    pairs = set(zip(derived.speedups["loop"], derived.speedups["reference"], strict=True))
    assert pairs == {("fit", "eager"), ("xla", "eager"), ("xla", "fit")}
    fit = _cell(derived, loop="fit")
    assert fit["speedup_vs_reference"] == pytest.approx(3.0)  # eager's 6 ms / fit's 2 ms
    assert list(derived.cells["loop"]) == ["eager", "fit", "xla"]  # ladder order
    assert list(zip(derived.break_even["loop"], derived.break_even["reference"], strict=True)) == [
        ("xla", "fit")
    ]


def test_a_run_without_a_ladder_compares_no_loops(tmp_path):
    run = write_run(tmp_path / "old", known_cells(), ladder=None)
    run_set = load_run_set([run])
    assert run_set.ladder is None and "declares no loop ladder" in run_set.ladder_note
    derived = derive(run_set)
    assert derived.speedups.empty and derived.break_even.empty and derived.crossovers.empty
    assert derived.cells["speedup_vs_reference"].isna().all()
    assert len(derived.cells) == len(known_cells())  # every cell is still there
    assert derived.cells["achieved_flops_per_s"].notna().any()


def test_runs_that_disagree_on_the_ladder_are_said_to(tmp_path, known_dir):
    old = write_run(tmp_path / "old", known_cells(), ladder=None, tensorflow="2.21.0")
    run_set = load_run_set([known_dir, old])
    assert run_set.ladder is not None
    assert run_set.ladder_note.startswith("old declares no loop ladder")
