"""Per-cell statistics: order-statistic CI, spread, noisy flag, speedup vs the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from tf_loopbench.benchmarks.stats import median_ci, summarize


def test_median_ci_ranks_and_coverage():
    low, high, coverage = median_ci(range(1, 11))
    assert (low, high) == (2.0, 9.0)
    assert coverage == pytest.approx(1 - 2 * stats.binom.cdf(1, 10, 0.5))
    assert coverage >= 0.95


def test_below_95_percent_the_interval_is_the_range_with_its_exact_coverage():
    # no order-statistic interval of 5 reaches 95%: the range, 1 - 2^(1-5) = 93.75%
    assert median_ci([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0, 0.9375)
    assert median_ci([2.0, 1.0])[2] == 0.5
    assert all(math.isnan(v) for v in median_ci([1.0]))
    low, high, coverage = median_ci([5.0, 1.0, 3.0, 2.0, 6.0, 4.0])
    assert (low, high) == (1.0, 6.0) and coverage == pytest.approx(1 - 2 / 64)


def test_median_ci_covers_the_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        low, high, _ = median_ci(rng.exponential(size=15))
        hits += low <= math.log(2) <= high
    assert 0.95 <= hits / 2000 <= 0.995


def rows_for(loop: str, step_times: list[float], windows_per_process: int = 4) -> list[dict]:
    keys = {"workload": "mlp", "loop": loop, "device": "cpu", "batch_size": 128, "width": 128}
    rows = []
    for k, t in enumerate(step_times):
        rows.append(
            {
                "kind": "process",
                **keys,
                "process": k,
                "status": "ok",
                "step_time_s": t,
                "compile_s": 0.5,
                "first_step_s": 0.5 + t,
                "final_loss": 0.3,
                "retraces": 0,
                "peak_rss_bytes": 1000,
                "n_windows": windows_per_process,
            }
        )
        rows += [
            {
                "kind": "window",
                **keys,
                "process": k,
                "window": j,
                "steps": 10,
                "seconds": 10 * t,
                "step_time_s": t,
            }
            for j in range(windows_per_process)
        ]
    return rows


def test_summary_from_processes():
    rows = rows_for("fit", [0.010] * 6) + rows_for(
        "eager", [0.020, 0.021, 0.019, 0.020, 0.022, 0.018]
    )
    summary = summarize(rows, reference="fit").set_index("loop")
    eager = summary.loc["eager"]
    assert eager["n_processes"] == 6 and eager["ci_basis"] == "processes"
    assert eager["step_time_median_s"] == pytest.approx(0.020)
    assert eager["step_time_ci_low_s"] == pytest.approx(0.018)
    assert eager["step_time_ci_high_s"] == pytest.approx(0.022)
    assert eager["examples_per_s"] == pytest.approx(128 / 0.020)
    assert eager["speedup_vs_fit"] == pytest.approx(0.5)
    assert summary.loc["fit", "speedup_vs_fit"] == 1.0
    assert not eager["noisy"]


def test_noisy_cell_is_flagged():
    rows = rows_for("eager", [0.010, 0.020, 0.010, 0.030, 0.015, 0.025])
    assert bool(summarize(rows)["noisy"].iloc[0])


def test_failed_and_skipped_cells():
    keys = {"workload": "gan", "device": "cpu", "batch_size": 8, "width": 128}
    rows = [
        {
            "kind": "process",
            **keys,
            "loop": "xla",
            "process": 0,
            "status": "failed",
            "error": "boom",
        },
        {
            "kind": "process",
            **keys,
            "loop": "fit",
            "process": 0,
            "status": "skipped",
            "error": "no GPU present",
        },
    ]
    summary = summarize(rows).set_index("loop")
    assert summary.loc["xla", "status"] == "failed" and summary.loc["xla", "error"] == "boom"
    assert summary.loc["fit", "status"] == "skipped"
    assert math.isnan(summary.loc["xla", "step_time_median_s"])


def test_five_processes_get_their_range_and_its_exact_coverage():
    rows = rows_for("eager", [0.020, 0.024, 0.019, 0.022, 0.021], windows_per_process=3)
    row = summarize(rows).iloc[0]
    assert row["ci_basis"] == "processes" and row["ci_coverage"] == 0.9375
    assert (row["step_time_ci_low_s"], row["step_time_ci_high_s"]) == (0.019, 0.024)
    # no epochs: the amortized step and its interval are the steady step's
    assert row["amortized_step_time_s"] == row["step_time_median_s"]
    assert row["amortized_step_time_ci_low_s"] == 0.019
    assert row["amortized_step_time_ci_high_s"] == 0.024
    assert row["amortized_ci_coverage"] == 0.9375


def with_epoch_ends(rows: list[dict], spans: list[list[float]], steps: int = 10) -> list[dict]:
    """fit's process rows with these epoch-end spans (one list a process)."""
    processes = [r for r in rows if r["kind"] == "process"]
    for row, mine in zip(processes, spans, strict=True):
        row.update(epoch_end_spans_s=mine, epoch_end_s=float(np.median(mine)) if mine else None)
        row["steps_per_epoch"] = steps
    return rows


def test_the_amortized_interval_carries_the_epoch_end_uncertainty():
    steady = [0.010, 0.0102, 0.0098, 0.0101, 0.0099]
    # the per-epoch cost, 0.1 s over 10 steps: as much as a step, and uncertain
    rows = with_epoch_ends(rows_for("fit", steady), [[0.03], [0.5], [0.1], [0.02], [0.45]])
    row = summarize(rows).iloc[0]
    assert row["amortized_step_time_s"] == pytest.approx(0.010 + 0.1 / 10)
    assert row["epoch_end_s"] == 0.1 and row["n_epoch_end_spans"] == 5
    assert row["epoch_end_basis"] == "later epoch ends"
    low, high = row["amortized_step_time_ci_low_s"], row["amortized_step_time_ci_high_s"]
    assert low <= row["amortized_step_time_s"] <= high
    # the old way (one pooled epoch end taken as known) gave the steady spread only,
    # ~0.4 ms wide; resampling the spans widens it by their spread over 10 steps
    assert high - low > 0.02
    assert row["amortized_ci_coverage"] < 0.95
    # the same spans, all alike: the interval is the steady steps' plus a known cost
    alike = with_epoch_ends(rows_for("fit", steady), [[0.1]] * 5)
    tight = summarize(alike).iloc[0]
    assert tight["amortized_step_time_ci_high_s"] - tight["amortized_step_time_ci_low_s"] < 0.001


def test_a_run_made_before_later_epoch_ends_were_timed_resamples_each_process_s_first():
    rows = with_epoch_ends(rows_for("fit", [0.010] * 5), [[0.7], [0.6], [0.8], [0.7], [0.9]])
    for row in rows:
        row.pop("epoch_end_spans_s", None)
    summary = summarize(rows).iloc[0]
    assert summary["epoch_end_basis"].startswith("first epoch ends")
    assert summary["amortized_step_time_s"] == pytest.approx(0.010 + 0.07)
    assert summary["amortized_step_time_ci_low_s"] < summary["amortized_step_time_ci_high_s"]


def test_speedups_are_against_the_reference_the_ladder_names():
    rows = rows_for("fit", [0.010] * 6) + rows_for("eager", [0.020] * 6)
    against_eager = summarize(rows, reference="eager").set_index("loop")
    assert against_eager.loc["fit", "speedup_vs_fit"] == pytest.approx(2.0)
    assert against_eager.loc["eager", "steady_speedup_vs_fit"] == 1.0
    # a run without a ladder names no reference: the columns exist and are empty
    unreferenced = summarize(rows)
    assert unreferenced[["speedup_vs_fit", "steady_speedup_vs_fit"]].isna().all().all()
