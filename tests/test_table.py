"""The table at the end of ``loopbench run`` (benchmarks/progress.py): it answers first
in a 120-column terminal, nothing wrapped or cut; ``--wide`` shows every column.

The summary is a real run's (tests/fixtures/golden/current: the quick CPU matrix)
with what a run writes today (the equal-work loss) and the rows that make a table
wide: a user's model with a long name, a failed cell with a long error, a skipped one.
"""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console
from tf_loopbench.benchmarks.progress import TABLE_WIDTH, print_summary
from tf_loopbench.reports.rundir import load_run

from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "current"
#: the columns only --wide shows
REST = ("device", "batch", "status", "w/ epoch ms", "x fit steady", "compile s", "keras chose")


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    frame = load_run(GOLDEN).summary.copy()
    frame["equal_work_steps"] = 6
    frame["equal_work_loss"] = frame["workload"].map(
        {"linear": 23.33, "mlp": 1.0863, "gan": 1.9118}
    )
    frame["equivalent"] = True
    frame["equivalence_reference"] = frame["loop"].eq("eager")
    mlp = frame[frame["workload"].eq("mlp")]
    user = mlp.assign(workload="keras_guide_mlp", retraces=2)
    no_numbers = {column: float("nan") for column in frame if column.startswith("step_time")}
    failed = mlp.iloc[[0]].assign(
        **no_numbers,
        loop="xla",
        status="failed",
        error="InvalidArgumentError: XLA compilation requires a fixed tensor list size " * 2,
    )
    skipped = mlp.iloc[[0]].assign(**no_numbers, device="gpu", status="skipped", error="no GPU")
    return pd.concat([frame, user, failed, skipped], ignore_index=True)


def render(summary: pd.DataFrame, wide: bool = False, width: int = TABLE_WIDTH) -> list[str]:
    console = Console(width=width, record=True)
    print_summary(summary, "fit", wide=wide, console=console)
    return console.export_text().splitlines()


def data_rows(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("│")]


def header(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("┃"))


def test_the_default_table_fits_120_columns_whole(summary):
    lines = render(summary)
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    rows = data_rows(lines)
    assert len(rows) == len(summary), "a row wrapped onto a second line"
    assert not any("…" in line for line in lines), "rich cut a cell"
    for (_, cell), line in zip(summary.iterrows(), rows, strict=True):
        assert f"│ {cell['workload']} " in line and f" {cell['loop']} " in line
        if cell["status"] == "ok":
            assert f" {1000 * cell['step_time_median_s']:.3f} " in line
            assert f" {cell['speedup_vs_fit']:.2f} " in line
            assert f" {cell['equal_work_loss']:.5g} yes " in line
    columns = [name.strip() for name in header(lines).strip("┃").split("┃")]
    assert columns == ["workload", "loop", "device", "step ms", "interval ms", "x fit"] + [
        "loss @6, equal",
        "note",
    ]  # device: the run has a GPU cell too
    assert " failed [1] " in rows[-2] and "skipped: no GPU" in rows[-1]
    error = summary["error"].iloc[-2]
    assert lines[-4] == f"[1] {error}"[: TABLE_WIDTH - 3] + "..."  # under the table, cut
    assert "retraced 2x" in rows[-3]


def test_a_name_too_long_for_any_table_wraps_in_its_cell(summary):
    lines = render(
        summary.assign(workload="a_users_model_with_a_name_of_60_characters_" + "x" * 17)
    )
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    assert not any("…" in line for line in lines), "numbers are never cut"


def test_the_quick_matrix_needs_no_key_column(summary):
    lines = render(summary[summary["device"].eq("cpu") & summary["status"].eq("ok")])
    columns = [name.strip() for name in header(lines).strip("┃").split("┃")]
    assert columns == ["workload", "loop", "step ms", "interval ms", "x fit", "loss @6, equal"] + [
        "note"
    ]
    assert lines[-1] == "every column: summary.csv, or loopbench run --wide"


def test_wide_shows_the_rest(summary):
    default = header(render(summary))
    wide_lines = render(summary, wide=True, width=400)
    wide = header(wide_lines)
    for column in REST:
        assert f" {column} " in wide
        if column != "device":
            assert f" {column} " not in default
    assert "jit off, spe 1" in "\n".join(wide_lines)
    assert len(data_rows(wide_lines)) == len(summary)


def test_keys_a_run_varies_join_while_they_fit(summary):
    ok = load_run(GOLDEN).summary  # the quick matrix
    knobs = pd.concat(
        [ok.assign(precision="float32"), ok.assign(precision="mixed_bfloat16")], ignore_index=True
    )
    lines = render(knobs)
    assert " precision " in header(lines)
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    # every key varied at once is more than 120 columns: the last to join stay out, named
    crowded = knobs.assign(
        steps_per_call=[1, 8] * (len(knobs) // 2),
        strategy=["none", "multiworker:2"] * (len(knobs) // 2),
        fit_jit=["off", "on"] * (len(knobs) // 2),
        batch_size=knobs["batch_size"] * ([1, 2] * (len(knobs) // 2)),
    )
    lines = render(crowded)
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    assert len(data_rows(lines)) == len(crowded)
    assert lines[-1].startswith("every column: summary.csv, or loopbench run --wide; this run ")
    assert "precision" in lines[-1] or "fit jit" in lines[-1]
    wide = header(render(crowded, wide=True, width=400))
    for column in ("batch", "strategy", "K", "precision", "fit jit"):
        assert f" {column} " in wide


def test_the_table_says_what_its_intervals_cover(summary):
    # a run made before coverage was stated (a bootstrap of 3 or 4 processes): no claim
    assert not any(line.startswith("interval:") for line in render(summary))
    ok = summary[summary["status"].eq("ok")]
    five = ok.assign(n_processes=5, ci_coverage=0.9375, ci_basis="processes")
    lines = render(five)
    assert "interval: the range of 5 processes covers the median with probability 93.8% " in (
        "\n".join(lines)
    )
    assert "95% CI" not in "\n".join(lines)
    twelve = five.assign(n_processes=12, ci_coverage=0.961)
    assert any(
        "order statistics of 12 processes covers the median with probability 96.1%" in line
        for line in render(twelve)
    )


def test_a_run_in_which_no_cell_ran_has_no_interval_line(summary):
    failed = summary[summary["status"].ne("ok")].drop(columns=["ci_coverage"], errors="ignore")
    assert not any(line.startswith("interval:") for line in render(failed))
