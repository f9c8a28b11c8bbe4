"""End to end: report.md, report.html (self-contained), plots, decisions, several runs, speed, no TF."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from tf_loopbench.reports.compare import DEFAULT_THRESHOLD, verdict
from tf_loopbench.reports.gate import judge
from tf_loopbench.reports.report import REPORT_HTML, REPORT_MD, command, write_report
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.common import compiler_rung, points
from tf_loopbench.reports.report.derived import derive, train_time_s
from tf_loopbench.reports.report.plots import BAND_GID, write_plots
from tf_loopbench.reports.report.sections import sentences as decisions
from tf_loopbench.reports.rundir import load_runs

from tests.fixtures.report_runs import (
    KERAS_CHOICE,
    LOOPS,
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
    header = "| workload | device | batch | width | fit (reference) | eager | tf_function | tf_data | xla |"
    assert text.count(header) == 2  # amortized, then steady
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


def test_points_have_whiskers_only_where_there_is_an_interval():
    figure, axis = plt.subplots()
    points(axis, [0, 1], [2.0, 3.0], [1.5, float("nan")], [2.5, float("nan")], "black")
    whiskers = [c for c in axis.collections if c.get_segments()]
    assert len(whiskers) == 1  # the point without an interval has none
    drawn = [line for line in axis.lines if line.get_marker() == "o"]
    assert [len(line.get_xdata()) for line in drawn] == [1, 1]  # both points drawn
    assert not axis.patches  # no bars
    plt.close(figure)


def test_no_bars_on_a_log_axis(known_report):
    derived = derive(load_run_set([known_report]))
    drawn = []
    original = plt.Figure.savefig

    def keep(figure, *args, **kwargs):
        drawn.append(figure)
        return original(figure, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        write_plots(derived, known_report / "plots-again")
    finally:
        plt.Figure.savefig = original
    log_axes = [a for f in drawn for a in f.axes if a.get_yscale() == "log" and a.get_visible()]
    assert log_axes
    for axis in log_axes:
        bars = [p for p in axis.patches if p.get_gid() != BAND_GID]
        assert not bars, axis.get_title()


# --------------------------------------------------------------------------- decisions


MLP_128 = "mlp (cpu, batch 128, width 256)"
MLP_512 = "mlp (cpu, batch 512, width 256)"
FIT = "fit (Keras: jit_compile off, steps_per_execution 1)"


def test_decisions_state_numbers_with_uncertainty(known_decisions):
    assert f"eager costs 6.0x {FIT} (amortized, interval 5.7x-6.3x)." in _texts(
        known_decisions, MLP_128
    )
    [pays] = [t for t in _texts(known_decisions, MLP_512) if t.startswith("xla (the compiler)")]
    assert pays.startswith(
        "xla (the compiler) against tf_data: 12% faster per step (amortized, interval "
    )
    assert "its 1.50 s compile (tf_data: 450 ms) pays back after 955 steps (30 epochs)" in pays
    # 1 epoch of 32 steps: 0.2 + 1.509 + 31 x 9 ms against 0.2 + 0.4601 + 31 x 10.1 ms
    assert "xla takes 1.99 s and tf_data 973 ms: not paid back." in pays
    [never] = [t for t in _texts(known_decisions, MLP_128) if t.startswith("xla (the compiler)")]
    assert "slower per step" in never and "never pays back" in never
    crossings = _texts(known_decisions, "Crossovers")
    assert any(
        "tf_function's overhead against fit falls under 10% on mlp (width 256) from batch 128 on"
        in text
        for text in crossings
    )


def test_decisions_are_a_short_answer_per_setting(known_decisions):
    """One topic per setting, the setting said in its heading and not in its sentences."""
    topics = list(dict.fromkeys(d.topic for d in known_decisions))
    assert topics == [
        "gan (cpu, batch 128, width 64)",
        "linear (cpu, batch 128)",
        "mlp (cpu, batch 32, width 256)",
        MLP_128,
        "mlp (cpu, batch 128, width 1024)",
        MLP_512,
        "Crossovers",
    ]
    for decision in known_decisions:
        if decision.topic != "Crossovers":
            assert "batch" not in decision.text and "cpu" not in decision.text, decision.text
    first = _texts(known_decisions, "mlp (cpu, batch 128, width 1024)")[0]
    assert first.startswith(f"Fastest loop: xla is 20% faster than {FIT} (amortized, interval")


def test_decisions_follow_the_ladder(known_decisions):
    """Each loop against the reference, each rung against its neighbour: never two
    changes at once (xla is compared with tf_data, never with tf_function)."""
    assert not [d.text for d in known_decisions if "xla" in d.text and "tf_function" in d.text]
    texts = _texts(known_decisions, MLP_128)
    assert any(t.startswith("tf_function (graph mode) is 5.7x faster than eager") for t in texts)
    assert any(t.startswith("xla (the compiler) against tf_data") for t in texts)
    crossings = _texts(known_decisions, "Crossovers")
    assert any(
        "graph mode stops mattering (eager within 10% of tf_function)" in t for t in crossings
    )


def test_the_report_shows_the_ladder_it_follows(known_report):
    text = (known_report / REPORT_MD).read_text()
    assert "## Loop ladder" in text
    assert "- xla (against tf_data): the compiler" in text
    assert (
        "| x fit, amortized [interval] | x fit, steady [interval] | x neighbour, amortized [interval] |"
        in text
    )


def test_a_run_without_a_ladder_is_reported_without_loop_comparisons(tmp_path, capsys):
    run = write_run(tmp_path / "old", known_cells(), ladder=None)
    assert command([str(run)]) == 0
    assert capsys.readouterr().err == ""
    text = (run / REPORT_MD).read_text()
    assert text.count("declares no loop ladder in its metadata.json") == 1
    assert "## Speedup against" not in text and "## Compile break-even" not in text
    assert "x neighbour" not in text and "## Decisions" in text
    assert "## Throughput" in text and "## Time to train 1 epoch" in text  # need no ladder
    assert "xla failed: InternalError" in text  # failures are still said
    assert not (run / "plots" / "speedup_vs_fit.png").exists()


def test_decisions_do_not_claim_what_the_data_cannot_carry(known_decisions):
    for decision in known_decisions:
        text = decision.text
        if "does not clear" in text or "reaches across" in text or "failed" in text:
            assert not decision.claim, text
    failed = [d for d in known_decisions if "xla failed" in d.text]
    assert len(failed) == 1 and not failed[0].claim and failed[0].info
    assert "XLA compilation failed" in failed[0].text


def _decide(tmp_path, cells, name="run", epochs=1):
    run = write_run(tmp_path / name, cells)
    derived = derive(load_run_set([run]), epochs)
    return run, derived, decisions(derived)


def _five(median_s, spread=0.02):
    """Five processes around a median (+-spread), the quick preset's count."""
    return tuple(median_s * (1 + spread * f) for f in (-1.0, -0.5, 0.0, 0.5, 1.0))


def test_a_claim_outside_the_band_stands_though_noisy(tmp_path):
    cells = [
        CellSpec("mlp", "fit", _five(10e-3, 0.15), width=64, noisy=True, **KERAS_CHOICE),
        CellSpec("mlp", "tf_function", _five(5e-3, 0.15), width=64, noisy=True),
    ]
    _, _, found = _decide(tmp_path, cells)
    [fastest] = [d for d in found if d.text.startswith("Fastest loop")]
    assert fastest.claim
    assert fastest.text.startswith(f"Fastest loop: tf_function is 2.0x faster than {FIT}")
    assert "noisy: tf_function, fit" in fastest.text


def test_no_claim_when_the_interval_reaches_into_the_band(tmp_path):
    cells = [
        CellSpec("mlp", "fit", _five(1.00e-3, 0.10), width=64),
        CellSpec("mlp", "tf_function", _five(1.06e-3, 0.10), width=64),
    ]
    _, derived, found = _decide(tmp_path, cells)
    row = derived.cells.set_index("loop").loc["tf_function"]
    low, high = row["speedup_vs_reference_ci_low"], row["speedup_vs_reference_ci_high"]
    assert low < 1 - DEFAULT_THRESHOLD < high  # straddles the band's edge
    [closest] = [d for d in found if "tf_function" in d.text]
    assert not closest.claim and "an interval that does not clear ±5%" in closest.text


def test_within_the_band_is_a_claim(tmp_path):
    cells = [
        CellSpec("mlp", "fit", (1.000e-3, 1.002e-3, 1.004e-3), width=64),
        CellSpec("mlp", "tf_function", (1.003e-3, 1.005e-3, 1.007e-3), width=64),
    ]
    _, _, found = _decide(tmp_path, cells)
    [within] = [d for d in found if "tf_function" in d.text]
    assert within.claim
    assert re.search(
        r"No loop beats fit by more than ±5%: the fastest, tf_function is within ±5% of fit "
        r"\(amortized, interval 0\.99x-1\.00x\)",
        within.text,
    )


def test_the_band_is_the_gates_threshold():
    assert judge.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
    assert [verdict(*ci, 0.05) for ci in ((1.06, 2), (0.5, 0.94), (0.96, 1.04), (0.9, 1.1))] == [
        "faster",
        "slower",
        "same",
        "unclear",
    ]
    assert verdict(float("nan"), float("nan"), 0.05) == "missing"


def test_a_cell_that_is_not_equivalent_is_marked_and_not_decided_on(tmp_path):
    cells = [
        CellSpec("mlp", "fit", _five(4e-3), width=64, equal_work_loss=0.5, **KERAS_CHOICE),
        CellSpec("mlp", "eager", _five(20e-3), width=64, equal_work_loss=0.5),
        CellSpec("mlp", "tf_function", _five(3e-3), width=64, equal_work_loss=0.5),
        # the fastest on time, but it trained differently
        CellSpec("mlp", "tf_data", _five(1e-3), width=64, equal_work_loss=0.75, equivalent=False),
    ]
    run, _, found = _decide(tmp_path, cells)
    [marked] = [d for d in found if "not equivalent" in d.text]
    assert marked.text == (
        "tf_data is not equivalent here: its loss after 6 equal steps is 0.75, eager's 0.5 "
        "(relative tolerance 0.0001); no decision is drawn from it."
    )
    assert not marked.claim
    assert not [d for d in found if "tf_data" in d.text and d is not marked]
    [fastest] = [d for d in found if d.text.startswith("Fastest loop")]
    assert fastest.text.startswith("Fastest loop: tf_function")
    write_report([run])
    text = (run / REPORT_MD).read_text()
    assert "4.0x [3.9x-4.1x] (not equivalent)" in text  # tf_data in the speedup tables
    assert "0.75 @6, NOT equivalent" in text


def test_amortized_and_steady_are_both_shown_and_labelled(tmp_path):
    # fit: 1 ms steps and a 32 ms epoch end every 32 steps: 2 ms a step over whole epochs
    cells = [
        CellSpec("mlp", "fit", _five(1e-3), width=64, epoch_end_s=0.032, **KERAS_CHOICE),
        CellSpec("mlp", "tf_function", _five(0.5e-3), width=64),
    ]
    run, derived, found = _decide(tmp_path, cells)
    row = derived.cells.set_index("loop").loc["tf_function"]
    assert row["speedup_vs_reference"] == pytest.approx(4.0)
    assert row["steady_speedup_vs_reference"] == pytest.approx(2.0)
    [fastest] = [d for d in found if d.text.startswith("Fastest loop")]
    assert fastest.text.startswith(
        f"Fastest loop: tf_function is 4.0x faster than {FIT} (amortized, interval "
    )
    assert "; steady step 2.0x, interval " in fastest.text
    write_report([run])
    text = (run / REPORT_MD).read_text()
    assert "x fit is per step over whole epochs (amortized" in text
    assert "Steady step alone (per-epoch costs left out), against fit:" in text
    assert "| x fit, amortized [interval] | x fit, steady [interval] |" in text
    assert "| 2 ms |" in text  # fit's amortized step in the cells table
    # what the intervals cover, and that this run's epoch ends are first ones (its rows
    # have no later spans): said, not hidden
    assert "Intervals: a cell's step time, " in text
    assert "at 5+5 processes is about 94% (simulated" in text
    assert "made before later epoch ends were timed" in text


def test_time_to_train_adds_up_exactly(tmp_path):
    cells = [
        CellSpec(
            "mlp",
            "fit",
            (1e-3,) * 3,
            width=64,
            compile_s=0.1,
            build_s=0.2,
            fit_setup_s=0.05,
            epoch_end_s=0.032,
            steps_per_epoch=32,
            **KERAS_CHOICE,
        ),
        CellSpec("mlp", "xla", (0.5e-3,) * 3, width=64, compile_s=0.9, build_s=0.3),
    ]
    run, derived, _ = _decide(tmp_path, cells, epochs=3)
    trained = derived.time_to_train.set_index("loop")
    # build + set-up call + first step (compile + one step) + 95 steps + 3 epoch ends
    assert trained.at["fit", "time_to_train_s"] == pytest.approx(
        0.2 + 0.05 + (0.1 + 1e-3) + 95 * 1e-3 + 3 * 0.032, rel=1e-12
    )
    assert trained.at["xla", "time_to_train_s"] == pytest.approx(
        0.3 + (0.9 + 0.5e-3) + 95 * 0.5e-3, rel=1e-12
    )
    assert trained.at["xla", "steps"] == 96
    assert train_time_s(
        2, build_s=1.0, first_step_s=0.5, step_time_s=0.25, steps_per_epoch=4, epoch_end_s=1.0
    ) == pytest.approx(1.0 + 0.5 + 7 * 0.25 + 2 * 1.0)
    # an older run's summary without steps_per_epoch: the processes still tell
    summary = run / "summary.csv"
    frame = pd.read_csv(summary).drop(columns=["steps_per_epoch"])
    frame.to_csv(summary, index=False)
    again = derive(load_run_set([run]), 3).time_to_train.set_index("loop")
    assert again.at["fit", "time_to_train_s"] == trained.at["fit", "time_to_train_s"]
    assert command([str(run)], epochs=3) == 0
    text = (run / REPORT_MD).read_text()
    assert "## Time to train 3 epochs" in text
    assert (
        "| mlp | cpu | 128 | 64 | fit | 250 ms | 101 ms | 96 | 191 ms | 542 ms | 1.00x | " in text
    )


def test_fit_says_what_keras_chose(known_report, known_decisions):
    about_fit = [d.text for d in known_decisions if " fit" in d.text and d.topic != "Crossovers"]
    assert about_fit and all(FIT in text for text in about_fit)
    text = (known_report / REPORT_MD).read_text()
    # the reference's column of both speedup tables, the time-to-train and the cells tables
    assert text.count("| jit_compile off, steps_per_execution 1 |") >= 2 * 6
    assert "| Keras chose |" in text


def test_when_keras_compiled_fit_with_xla_it_is_set_against_the_compiler_rung(tmp_path):
    cells = [
        CellSpec(
            "mlp", "fit", _five(2e-3), width=64, keras_jit_compile=True, keras_steps_per_execution=1
        ),
        CellSpec("mlp", "tf_function", _five(1e-3), width=64),
        CellSpec("mlp", "tf_data", _five(1e-3), width=64),
        CellSpec("mlp", "xla", _five(1.6e-3), width=64, compile_s=1.0),
    ]
    _, derived, found = _decide(tmp_path, cells)
    assert compiler_rung(derived.ladder).loop == "xla"  # read from the ladder's text
    [also] = [d for d in found if d.text.startswith("Keras compiled fit with XLA")]
    assert also.claim
    assert also.text.startswith(
        "Keras compiled fit with XLA here, so it is also set against xla, the ladder's "
        "compiler rung: xla is 25% faster than fit (Keras: jit_compile on, "
        "steps_per_execution 1) (amortized, interval "
    )


def test_one_process_prints_dashes_and_makes_no_claim(tmp_path):
    cells = [
        CellSpec("linear", "fit", (1e-3,), **KERAS_CHOICE),
        CellSpec("linear", "eager", (5e-3,)),
        CellSpec("linear", "tf_function", (0.5e-3,)),
    ]
    run, _, found = _decide(tmp_path, cells)
    assert found and not [d for d in found if d.claim]
    write_report([run])
    text = (run / REPORT_MD).read_text()
    assert "Every cell ran one worker process" in text
    assert text.count("Every cell ran one worker process") == 1  # said once
    assert "0.20x [—]" in text and "2.0x [—]" in text  # the speedup tables
    assert "1 ms [—]" in text  # the cells table's step time
    reason = "[—]: no interval, because a cell ran fewer than two worker processes"
    assert reason in text
    decisions_part = text.split("## Decisions")[1].split("## Speedup against")[0]
    assert "interval" not in decisions_part.split("### ")[1]  # not repeated per sentence


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
    assert "gpu against cpu on mlp, steady step: median over 10 matching cells 4.0x faster" in text
    assert "### mlp (gpu, gpu: batch 128, width 256)" not in text
    assert "### mlp (cpu: cpu, batch 128, width 256)" in text
    assert (out / REPORT_HTML).exists() and "report:" in capsys.readouterr().out


def test_reports_never_import_tensorflow_loops_or_benchmarks():
    modules = sorted(
        "tf_loopbench."
        + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "reports").rglob("*.py")
    )
    assert {"tf_loopbench.reports.gate.judge", "tf_loopbench.reports.rundir"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_loopbench.loops', 'tf_loopbench.benchmarks')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_loopbench_report_and_compare_run_without_tensorflow(tmp_path):
    """`python -m tf_loopbench report|compare` (what `nox -s report` and CI run) never
    import TensorFlow, so a job that only renders or compares stored runs needs none."""
    base = write_run(tmp_path / "base", known_cells())
    current = write_run(tmp_path / "current", known_cells(scale=1.01))
    code = (
        "import sys\n"
        "from tf_loopbench.benchmarks.cli import main\n"
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


def test_the_report_code_names_no_loop_style():
    """Reports read the ladder from metadata.json; the code names no loop style."""
    pattern = re.compile(r"\b(" + "|".join(LOOPS) + r")\b")
    paths = sorted((ROOT / "reports" / "report").rglob("*.py"))
    assert any(path.parent.name == "sections" for path in paths)
    for path in paths:
        found = pattern.findall(path.read_text())
        assert not found, f"{path.relative_to(ROOT)} names {sorted(set(found))}"


def test_a_run_with_knobs_renders_one_setting_per_knob_value(tmp_path):
    """Steps per call and precision are settings of their own, and a second fit cell
    in one setting (fit with XLA on) is a loop label of its own: no crash, no merge."""
    import json

    import pandas as pd
    from tf_loopbench.reports.rundir import write_metadata, write_samples, write_summary

    from tests.test_golden import GOLDEN

    source = GOLDEN / "current"
    metadata = json.loads((source / "metadata.json").read_text())
    rows = [json.loads(line) for line in (source / "samples.jsonl").read_text().splitlines()]
    summary = pd.read_csv(source / "summary.csv")
    knobbed_rows, knobbed_summary = [], []
    for steps_per_call in (1, 8):
        for row in rows:
            knobbed_rows.append({**row, "steps_per_call": steps_per_call})
        knobbed_summary.append(summary.assign(steps_per_call=steps_per_call))
    fit = summary[summary["loop"] == "fit"].assign(steps_per_call=1, fit_jit="on")
    knobbed_rows += [
        {**row, "steps_per_call": 1, "fit_jit": "on"} for row in rows if row["loop"] == "fit"
    ]
    run_dir = tmp_path / "knobs"
    write_metadata(run_dir, metadata)
    write_samples(run_dir, knobbed_rows)
    write_summary(run_dir, pd.concat([*knobbed_summary, fit], ignore_index=True))
    out = write_report([run_dir], tmp_path / "report")
    text = (out / REPORT_MD).read_text()
    assert "### mlp (cpu, batch 128, width 128)\n" in text
    assert "### mlp (cpu, batch 128, width 128, 8 steps a call)\n" in text
    assert "fit (jit on)" in text
