"""End to end: report.md, report.html (self-contained), plots, decisions, several runs, speed, no TF."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.report import REPORT_HTML, REPORT_MD, command, write_report
from reports.report.aggregate import RunSet
from reports.report.decisions import decisions
from reports.report.derived import derive
from reports.report.plots import write_plots
from reports.rundir import load_runs
from tests.fixtures.report_runs import (
    CellSpec,
    known_cells,
    write_known_run,
    write_run,
)

ROOT = Path(__file__).resolve().parent.parent


def load_run_set(paths) -> RunSet:
    return RunSet.of(load_runs(paths))


@pytest.fixture(scope="module")
def known_report(tmp_path_factory):
    run = write_known_run(tmp_path_factory.mktemp("runs") / "known")
    write_report([run])
    return run


@pytest.fixture(scope="module")
def known_decisions(known_report):
    return decisions(derive(load_run_set([known_report])))


def _texts(found, topic=None):
    return [d.text for d in found if topic is None or d.topic == topic]


# --------------------------------------------------------------------------- files


def test_report_files_and_plots(known_report):
    plots = sorted(path.name for path in (known_report / "plots").glob("*.png"))
    assert plots == [
        "batch_sweep.png",
        "break_even.png",
        "speedup_vs_fit.png",
        "step_times.png",
        "width_sweep.png",
    ]
    for path in (known_report / "plots").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_has_decisions_tables_and_relative_images(known_report):
    text = (known_report / REPORT_MD).read_text()
    assert text.startswith("# tf-loopbench report: known")
    assert "## Decisions" in text
    assert (
        "| workload | device | batch | width | fit | eager | tf_function | tf_data | xla |" in text
    )
    assert "![Step time per loop style](plots/step_times.png)" in text
    assert "<details><summary>All cells</summary>" in text
    assert "0.17x [0.16x-0.18x]" in text  # eager vs fit at mlp batch 128


def test_html_is_self_contained(known_report):
    page = (known_report / REPORT_HTML).read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower()
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == len(list((known_report / "plots").glob("*.png")))
    for source in images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_plot_when_profile_columns_exist(tmp_path):
    profile = {
        "profile_op_time_s": 6e-4,
        "profile_input_wait_s": 2e-4,
        "profile_overhead_fraction": 0.2,
    }
    cells = [
        CellSpec("linear", loop, (1e-3, 1e-3, 1.1e-3), profile=profile) for loop in ("fit", "eager")
    ]
    derived = derive(load_run_set([write_run(tmp_path / "profiled", cells)]))
    written = {plot.path.name: plot for plot in write_plots(derived, tmp_path / "plots")}
    assert "profile.png" in written and written["profile.png"].title == "Profiler breakdown"
    assert "break_even.png" not in written  # no compiled loop in this run: no empty plot


# --------------------------------------------------------------------------- decisions


def test_decisions_state_numbers_with_uncertainty(known_decisions):
    costs = _texts(known_decisions, "Cost against fit")
    assert (
        "On this machine (cpu), on mlp (width 256) at batch 128, eager costs 6.0x fit "
        "(95% CI 5.7x-6.3x)." in costs
    )
    breaks = _texts(known_decisions, "Compile break-even")
    assert any(
        "on mlp (width 256) at batch 512, xla pays back its 1.50 s compile (tf_data: 450 ms) "
        "after 955 steps against tf_data" in text
        for text in breaks
    )
    assert any("xla never pays back" in text and "batch 128" in text for text in breaks)
    crossings = _texts(known_decisions, "Crossovers")
    assert any(
        "tf_function's overhead against fit falls under 10% on mlp (width 256) from batch 128 on"
        in text
        for text in crossings
    )
    assert any("MFU 32.0%" in text for text in _texts(known_decisions, "Throughput"))


def test_decisions_follow_the_ladder(known_decisions):
    """Each loop against the reference, each rung against its neighbour: never two
    changes at once (xla is compared with tf_data, never with tf_function)."""
    topics = dict.fromkeys(d.topic for d in known_decisions if d.topic.startswith("Cost"))
    assert list(topics) == [
        "Cost against fit",
        "Cost against eager",
        "Cost against tf_function",
        "Cost against tf_data",
    ]
    assert not [d.text for d in known_decisions if "xla" in d.text and "tf_function" in d.text]
    assert any(
        "on mlp (width 256) at batch 512, xla is 12% faster than tf_data" in d.text
        for d in known_decisions
    )
    crossings = _texts(known_decisions, "Crossovers")
    assert any(
        "graph mode stops mattering (eager within 10% of tf_function)" in t for t in crossings
    )


def test_the_report_shows_the_ladder_it_follows(known_report):
    text = (known_report / REPORT_MD).read_text()
    assert "## Loop ladder" in text
    assert "- xla (against tf_data): the compiler" in text
    assert "| vs fit [95% CI] | vs neighbour [95% CI] |" in text


def test_a_run_without_a_ladder_is_reported_without_loop_comparisons(tmp_path, capsys):
    run = write_run(tmp_path / "old", known_cells(), ladder=None)
    assert command([str(run)]) == 0
    assert capsys.readouterr().err == ""
    text = (run / REPORT_MD).read_text()
    assert text.count("declares no loop ladder in its metadata.json") == 1
    assert "## Speedup against" not in text and "## Compile break-even" not in text
    assert "vs neighbour" not in text and "## Decisions" in text
    assert "### Throughput" in text  # what needs no ladder is still there
    assert not (run / "plots" / "speedup_vs_fit.png").exists()


def test_decisions_do_not_claim_what_the_data_cannot_carry(known_decisions):
    for decision in known_decisions:
        text = decision.text
        if (
            "cannot be told apart" in text
            or " noisy " in text
            or "failed" in text
            or "skipped" in text
        ):
            assert not decision.claim, text
    noisy = [
        d
        for d in known_decisions
        if "linear at batch 128, eager" in d.text and d.topic == "Cost against fit"
    ]
    assert len(noisy) == 1 and not noisy[0].claim and "noisy" in noisy[0].text
    failed = [d for d in known_decisions if "xla failed on gan" in d.text]
    assert len(failed) == 1 and not failed[0].claim and "XLA compilation failed" in failed[0].text


def test_within_a_few_percent_is_a_claim(tmp_path):
    cells = [
        CellSpec("mlp", "fit", (1.000e-3, 1.002e-3, 1.004e-3), width=64),
        CellSpec("mlp", "tf_function", (1.003e-3, 1.005e-3, 1.007e-3), width=64),
    ]
    found = decisions(derive(load_run_set([write_run(tmp_path / "close", cells)])))
    [within] = [d for d in found if d.topic == "Cost against fit"]
    assert within.claim
    assert re.search(
        r"tf_function is within [1-2]% of fit \(1\.00x its speed, 95% CI 0\.99x-1\.00x\)",
        within.text,
    )


def test_one_process_gives_no_claim(tmp_path):
    cells = [CellSpec("linear", "fit", (1e-3,)), CellSpec("linear", "eager", (5e-3,))]
    found = decisions(derive(load_run_set([write_run(tmp_path / "single", cells)])))
    [cost] = [d for d in found if d.topic == "Cost against fit"]
    assert not cost.claim and "fewer than two processes" in cost.text


# --------------------------------------------------------------------------- several runs


def test_several_runs_side_by_side(tmp_path, capsys):
    def mlp_at_batch_128(cells):
        return [cell for cell in cells if cell.workload == "mlp" and cell.batch_size == 128]

    cpu = write_run(tmp_path / "cpu-run", mlp_at_batch_128(known_cells()))
    gpu = write_run(
        tmp_path / "gpu-run",
        mlp_at_batch_128(known_cells(device="gpu", scale=0.25)),
        peak_matmul_flops={"gpu": 1e13},
    )
    assert command([str(cpu), str(gpu)]) == 0
    out = tmp_path / "report-cpu-run-vs-gpu-run"
    text = (out / REPORT_MD).read_text()
    assert text.startswith("# tf-loopbench report: cpu vs gpu")
    assert "| run | workload | device |" in text
    assert "gpu against cpu on mlp: median over 10 matching cells 4.0x faster" in text
    assert (out / REPORT_HTML).exists() and "report:" in capsys.readouterr().out


def test_reports_never_import_tensorflow_loops_or_benchmarks():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "reports").rglob("*.py")
    )
    assert {"reports.gate.judge", "reports.report.derived", "reports.rundir"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'loops', 'benchmarks') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_loopbench_report_and_compare_run_without_tensorflow(tmp_path):
    """`python -m benchmarks.cli report|compare` (what `nox -s report` and CI run) never
    import TensorFlow, so a job that only renders or compares stored runs needs none."""
    base = write_run(tmp_path / "base", known_cells())
    current = write_run(tmp_path / "current", known_cells(scale=1.01))
    code = (
        "import sys\n"
        "from benchmarks.cli import main\n"
        f"statuses = [main(['report', {str(current)!r}]),\n"
        f"            main(['compare', {str(base)!r}, {str(current)!r}])]\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert statuses[0] == 0 and statuses[1] in (0, 1), statuses\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert (current / REPORT_MD).exists()
