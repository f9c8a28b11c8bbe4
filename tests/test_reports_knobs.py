"""The report across knob settings (reports/report/sections/knobs.py) on a stored real run.

tests/fixtures/knob_run/ is a real quick run (see its README.md for the command):
linear at batch 32 on CPU, K = 1 and 4, float32 and mixed_bfloat16, fit with Keras's
choice (jit off on CPU) and with jit on, five processes a cell. Its figures are fixed,
so the sentences drawn from them are too (the bootstrap is seeded).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tf_loopbench.reports.report import REPORT_MD, report_runs
from tf_loopbench.reports.report.aggregate import GROUP_KEYS, RunSet
from tf_loopbench.reports.report.derived import derive
from tf_loopbench.reports.report.plots import plot_against as plot_knob
from tf_loopbench.reports.report.sections import sentences as decisions
from tf_loopbench.reports.report.sections.knobs import knob_table as steps_table
from tf_loopbench.reports.report.sections.knobs import (
    knob_tables,
    precision_table,
)
from tf_loopbench.reports.report.sections.knobs import sentences as knob_decisions
from tf_loopbench.reports.rundir import load_runs

from tests.conftest import ROOT

KNOB_RUN = ROOT / "tests" / "fixtures" / "knob_run"
GOLDEN_BASE = ROOT / "tests" / "fixtures" / "golden" / "base"
RUN_FILES = ("metadata.json", "samples.jsonl", "summary.csv")


@pytest.fixture(scope="module")
def derived():
    return derive(RunSet.of(load_runs([KNOB_RUN])))


@pytest.fixture(scope="module")
def knob_sentences(derived):
    return knob_decisions(derived)


def _copy(target: Path, keep_process=None, faster_fit_at_k4: float | None = None) -> Path:
    """The stored run; with one worker process a cell (``keep_process``), or with fit
    (Keras's choice) at K=4 in float32 ``faster_fit_at_k4`` times faster."""
    target.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy(KNOB_RUN / name, target / name)
    rows = [json.loads(line) for line in (target / "samples.jsonl").read_text().splitlines()]
    if keep_process is not None:
        rows = [r for r in rows if r.get("kind") != "process" or r["process"] == keep_process]
    if faster_fit_at_k4 is not None:
        for row in rows:
            cell = (row["loop"], row["steps_per_call"], row["precision"], row["fit_jit"])
            if row.get("kind") == "process" and cell == ("fit", 4, "float32", "auto:off"):
                for figure in ("step_time_s", "epoch_end_s"):
                    row[figure] = row[figure] / faster_fit_at_k4
    (target / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target


def _process_medians(figure_column: str = "step_time_s") -> dict[tuple, float]:
    """Each cell's median over its processes, straight from samples.jsonl."""
    rows = [json.loads(line) for line in (KNOB_RUN / "samples.jsonl").read_text().splitlines()]
    frame = pd.DataFrame([r for r in rows if r.get("kind") == "process"])
    frame = frame[frame["status"] == "ok"]
    keys = ["workload", "loop", "device", "batch_size", "steps_per_call", "precision", "fit_jit"]
    return {
        key: float(np.median(group[figure_column]))
        for key, group in frame.groupby(keys, sort=False)
    }


# --------------------------------------------------------------------------- the ratios


#: What may differ between the two cells of each kind of ratio (the fairness rule).
DIFFERS = {
    "steps_own": {"steps_per_call"},
    "steps_same_k": {"loop"},
    "steps_fit_k": {"loop", "steps_per_call"},
    "precision": {"precision"},
    "fit_compiler": {"loop"},
}


def test_each_ratio_sets_cells_apart_in_only_what_its_kind_says(derived):
    ratios = knob_tables(derived).ratios
    assert set(ratios["kind"]) == set(DIFFERS)
    for row in ratios.to_dict("records"):
        differ = {key for key in GROUP_KEYS if row[key] != row[f"against_{key}"]}
        if row["kind"] == "steps_fit_k" and row["against_steps_per_call"] == 1:
            assert differ == {"loop"}, row  # at K=1 both cells are one step a call
        else:
            assert differ == DIFFERS[row["kind"]], row


def test_ratios_are_the_ratio_of_process_medians(derived):
    medians = _process_medians()
    steady = knob_tables(derived).ratios[knob_tables(derived).ratios["figure"] == "steady"]
    assert len(steady) > 40

    def key(row: dict, prefix: str) -> tuple:
        loop = row[f"{prefix}loop"].split(" (")[0]  # "fit (jit on)" is fit, jit on
        names = ("workload", "device", "batch_size", "steps_per_call", "precision", "fit_jit")
        workload, device, batch, k, precision, jit = (row[f"{prefix}{n}"] for n in names)
        return (workload, loop, device, batch, k, precision, jit)

    for row in steady.to_dict("records"):
        expected = medians[key(row, "against_")] / medians[key(row, "")]
        assert row["ratio"] == pytest.approx(expected, rel=1e-9), row
        assert row["ci_low"] <= row["ratio"] <= row["ci_high"]


def test_what_more_steps_per_call_buys_each_loop_is_a_table_of_loops_at_k4(derived):
    own = steps_table(knob_tables(derived), False, "steps_own")
    assert list(own["K"]) == ["4", "4"]  # float32 and mixed_bfloat16, K=4 against K=1
    assert set(own["precision"]) == {"float32", "mixed_bfloat16"}
    assert "eager" not in own.columns  # eager runs one step a call only
    for loop in ("fit", "fit (jit on)", "tf_function", "tf_data", "xla"):
        assert own[loop].str.fullmatch(r"[\d.]+x \[[\d.]+x-[\d.]+x\]").all(), own[loop]
    fit_k = steps_table(knob_tables(derived), False, "steps_fit_k")
    assert list(fit_k["K"]) == ["1", "4", "1", "4"]  # fit at K against each loop at K=1
    assert fit_k["eager"].str.endswith("]").all()


def test_precision_table_has_a_row_per_setting_and_the_loops_as_columns(derived):
    table = precision_table(knob_tables(derived), False)
    assert list(table["precision"]) == ["mixed_bfloat16", "mixed_bfloat16"]
    assert list(table["K"]) == ["1", "4"]
    assert table.loc[0, "eager"] and not table.loc[1, "eager"]  # eager: K=1 only
    loops = ["fit", "eager", "tf_function", "tf_data", "xla", "fit (jit on)"]
    assert list(table.columns[-6:]) == loops  # ladder order, the second fit cell last


# --------------------------------------------------------------------------- the sentences


def _topic(sentences, topic):
    return [d for d in sentences if d.topic == topic]


def test_steps_per_call_sentences_name_what_differs(knob_sentences):
    steps = _topic(knob_sentences, "Steps per call")
    # per precision and compiled custom loop: the user's question and the gap at equal K
    assert len(steps) == 2 * 3 * 2
    for decision in steps:
        assert not re.search(r"\beager\b|jit on\)", decision.text), decision.text
        ks = re.findall(r"at K=(\d+)", decision.text)
        if decision.text.startswith("At equal steps per call"):
            assert "the loop the one difference" in decision.text
            # every comparison in it pairs the same K: "x at K=a ... than fit at K=a"
            assert ks[0::2] == ks[1::2], decision.text
        elif len(set(ks)) > 1:
            assert "which differ in the loop and in K" in decision.text, decision.text


def test_one_process_a_cell_claims_nothing_across_knobs(tmp_path, knob_sentences):
    """The same run with one worker process a cell: no interval, so no claim, and the
    same sentences are still given."""
    single = derive(RunSet.of(load_runs([_copy(tmp_path / "single", keep_process=0)])))
    sentences = knob_decisions(single)
    assert [d.topic for d in sentences] == [d.topic for d in knob_sentences]
    assert not any(d.claim for d in sentences)
    assert any(d.claim for d in knob_sentences)


def test_the_compiler_sentences_say_which_fit_setting_they_use(knob_sentences):
    compiler = _topic(knob_sentences, "fit's compiler")
    with_xla = [d.text for d in compiler if re.search(r"\bxla\b", d.text)]
    without = [d.text for d in compiler if "tf_function" in d.text]
    # one of each per setting: (K=1, K=4) x (float32, mixed_bfloat16)
    assert len(with_xla) == len(without) == 4 and len(compiler) == 8
    for text in with_xla:
        assert "the loop around the same XLA compiler" in text
        assert "fit (jit_compile on, asked for with fit_jit on)" in text
    for text in without:
        assert "neither compiled by XLA" in text
        assert "fit (jit_compile off, Keras's choice)" in text


def test_a_run_without_knob_axes_gets_no_knob_section(tmp_path):
    derived = derive(RunSet.of(load_runs([GOLDEN_BASE])))
    assert knob_tables(derived).ratios.empty
    assert knob_decisions(derived) == []
    assert plot_knob(derived, tmp_path / "k.png", "steps_per_call") is None
    assert not (tmp_path / "k.png").exists()


def test_the_report_has_the_knob_sections_and_plots(tmp_path, derived):
    out = report_runs(load_runs([_copy(tmp_path / "run")]), tmp_path / "report")
    text = (out / REPORT_MD).read_text()
    for heading in (
        "### Steps per call",
        "### Precision",
        "### fit's compiler",
        "## Steps per call",
        "## Precision",
        "### Step time against steps per call",
        "### Step time against precision",
    ):
        assert f"\n{heading}\n" in text, heading
    speedups = text.split("## Speedup against fit\n")[1].split("\n\n")[1].splitlines()
    assert speedups[0].startswith("| workload | device | batch | width | K | precision |")
    assert len(speedups) == 2 + 4  # a row per (K, precision), none merged
    for plot in ("steps_per_call.png", "precision.png"):
        assert (out / "plots" / plot).stat().st_size > 5000
        assert f"(plots/{plot})" in text
    assert len(decisions(derived)) > len(knob_decisions(derived))


def _about(sentences, *fragments):
    found = [d for d in sentences if all(f in d.text for f in fragments)]
    assert len(found) == 1, (fragments, [d.text for d in found])
    return found[0]


def test_a_claim_where_the_interval_clears_the_band_and_none_where_it_does_not(
    knob_sentences,
):
    """On the stored run (float32): xla at K=4 runs 5.0x fit at K=4 [1.55x-8.0x], a
    claim; xla at one step a call against fit at K=4 runs at 0.70x [0.31x-1.77x], none.
    (The amortized intervals resample fit's epoch ends with its steps: 7.6x and 1.68x before.)"""
    ahead = _about(knob_sentences, "At equal steps per call on linear (cpu, batch 32) ", "xla")
    assert ahead.claim
    assert "xla stays ahead of fit up to K=4" in ahead.text
    assert "xla at K=4 is 5.0x faster than fit at K=4 (amortized, interval 1.55x-8.0x" in ahead.text
    question = _about(knob_sentences, "On linear (cpu, batch 32), raising", "to xla")
    assert not question.claim
    assert "is not shown to close the gap to xla at one step a call" in question.text
    assert "0.70x" in question.text and "interval 0.31x-1.77x" in question.text


def test_when_fit_at_k4_catches_up_the_gap_closes_at_k4(tmp_path):
    """The stored run with fit at K=4 ten times faster: each loop at one step a call is
    then slower than fit at K=4 beyond the band, so the gap closes there (a claim)."""
    run = _copy(tmp_path / "fast-fit", faster_fit_at_k4=10.0)
    sentences = knob_decisions(derive(RunSet.of(load_runs([run]))))
    for loop in ("tf_function", "tf_data", "xla"):
        closes = _about(sentences, "On linear (cpu, batch 32), raising", f"to {loop} at")
        assert closes.claim, closes.text
        assert (
            f"raising fit's steps_per_execution to 4 closes the gap to {loop} at one step a call"
            in closes.text
        )
        assert "which differ in the loop and in K" in closes.text
