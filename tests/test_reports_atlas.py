"""The atlas (reports/report/sections/atlas.py, tools/atlas_report.py) on the two real
golden runs (linear, mlp, gan x five loop styles, four processes a cell): every ratio,
interval, label and payback is the comparison core's, the passes' processes are pooled,
and per-epoch costs are spread over the epoch the caller names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tf_loopbench.reports.compare import (
    RATIO_COVERAGE,
    Amortized,
    amortized_ratio_ci,
    payback,
    ratio_label,
)
from tf_loopbench.reports.report import report_runs
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.render import render_markdown
from tf_loopbench.reports.report.sections import atlas
from tf_loopbench.reports.rundir import load_runs

from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
#: linear's epoch in the atlas: 100 steps of its batch (4096), not the run's 32
EPOCH_EXAMPLES = {"linear": 4096 * 100}


@pytest.fixture(scope="module")
def passes():
    return load_runs([GOLDEN / "base", GOLDEN / "current"])


@pytest.fixture(scope="module")
def built(passes, tmp_path_factory):
    plot = tmp_path_factory.mktemp("atlas") / "images" / "atlas.png"
    derived, blocks = atlas.document(passes, plot, epoch_examples=EPOCH_EXAMPLES)
    return derived, render_markdown(blocks, plot.parent.parent), plot


def cell_processes(passes, workload, loop):
    """Both passes' processes of one cell, read as the report reads them."""
    processes = RunSet.of(passes).processes
    return processes[(processes["workload"] == workload) & (processes["loop"] == loop)]


def amortized(processes, steps):
    spans = np.array([v for spans in processes["epoch_end_spans_s"] for v in spans], float)
    return Amortized(processes["step_time_s"].to_numpy(float), spans, float(steps))


def test_each_ratio_is_the_cores_over_both_passes_processes_and_the_named_epoch(passes, built):
    derived, _, _ = built
    rows = atlas.loop_rows(derived)
    fit = cell_processes(passes, "linear", "fit")
    assert len(fit) == 8  # four processes a pass, pooled
    reference = amortized(fit, 100)
    assert reference.epochs  # linear's fit has epoch ends: the named epoch matters
    for loop in ("eager", "tf_function", "xla"):
        mine = amortized(cell_processes(passes, "linear", loop), 100)
        row = rows[(rows["workload"] == "linear") & (rows["loop"] == loop)].iloc[0]
        # by hand: fit's steady median plus its pooled epoch ends' median over 100 steps
        steady = np.median(fit["step_time_s"]) + np.median(reference.spans) / 100
        assert row["ratio"] == pytest.approx(steady / np.median(mine.steady), rel=1e-12)
        low, high = amortized_ratio_ci(mine, reference)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-12)
        assert (row["n"], row["n_against"]) == (8, 8)
    # over the run's own epoch (32 steps) the ratio would differ: the named one was used
    runs_epoch = amortized(fit, 32).point / np.median(
        cell_processes(passes, "linear", "eager")["step_time_s"]
    )
    eager = rows[(rows["workload"] == "linear") & (rows["loop"] == "eager")].iloc[0]
    assert eager["ratio"] != pytest.approx(runs_epoch, rel=1e-6)


def test_the_intervals_carry_the_cores_coverage_label(passes, built, tmp_path):
    derived, text, _ = built
    assert atlas.interval_name(atlas.loop_rows(derived)) == ratio_label(8, 8)
    assert f"{RATIO_COVERAGE[8]:.0%} interval" in text
    _, one = atlas.document(passes[:1], tmp_path / "atlas.png")  # one pass: four a side
    assert f"by its {ratio_label(4, 4)}" in render_markdown(one, tmp_path)


def test_xla_payback_within_one_epoch_is_the_cores(passes, built):
    derived, text, _ = built
    table = atlas.settings(derived).set_index("workload")
    for workload in ("linear", "mlp", "gan"):
        xla, fit = (cell_processes(passes, workload, loop) for loop in ("xla", "fit"))
        steps = 100 if workload == "linear" else float(fit["steps_per_epoch"].max())
        expected = payback(
            float(np.median(xla["compile_s"])),
            amortized(xla, steps).point,
            float(np.median(fit["compile_s"])),
            amortized(fit, steps).point,
            within_steps=steps,
        )
        found = table.loc[workload, "payback"]
        assert found.outcome == expected.outcome and found.within is expected.within
        assert found.extra_compile_s == pytest.approx(expected.extra_compile_s, rel=1e-12)
        assert atlas.payback_text(found, "fit") in text


def test_the_rule_and_the_table_are_drawn_from_the_rows(built):
    derived, text, plot = built
    table = atlas.settings(derived)
    best = []
    for loops in table["loops"]:
        compiled = [row["ratio"] for loop, row in loops.items() if loop != "eager"]
        best.append(max(compiled))
    low = atlas.rule_splits(table["reference_step_s"])[0]
    fast = [b for b, step in zip(best, table["reference_step_s"], strict=True) if step < low]
    assert fast, "the golden runs have settings under the first split"
    assert f"runs at {np.median(fast):.2f}x fit (median of {len(fast)}," in text
    for row in table.to_dict("records"):
        assert row["best_ratio"] == max([1.0, *(r["ratio"] for r in row["loops"].values())])
    label = ratio_label(8, 8)
    assert f"| model | batch | fit step | best (x fit) [{label}] |" in text
    assert plot.is_file() and plot.stat().st_size > 10_000
    assert "None: every cell ran and was equivalent." in text


def test_the_section_appears_in_a_report_of_two_or_more_models(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "base", run)
    metadata = json.loads((run / "metadata.json").read_text())
    assert not atlas.applies_to(metadata)  # three seed workloads, no --model: no atlas
    metadata["config"]["models"] = [{"name": "mlp"}, {"name": "gan"}]
    (run / "metadata.json").write_text(json.dumps(metadata))
    out = report_runs(load_runs([run]))
    text = (out / "report.md").read_text()
    assert "## Atlas" in text and "### The rule" in text
    assert (out / "plots" / atlas.PLOT_FILE).is_file()


def test_the_tool_writes_the_document_and_refuses_a_bad_run(tmp_path):
    doc, figure = tmp_path / "atlas.md", tmp_path / "images" / "atlas.png"
    command = [sys.executable, "tools/atlas_report.py", str(GOLDEN / "base")]
    done = subprocess.run(
        [*command, "--doc", str(doc), "--figure", str(figure), "--note", "Load: quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert "![Atlas: every cell against the reference's step](images/atlas.png)" in text
    assert "- Load: quiet" in text and figure.is_file()
    bad = subprocess.run(
        [sys.executable, "tools/atlas_report.py", str(tmp_path / "missing")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr
