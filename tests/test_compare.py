"""The regression gate (reports.gate: samples, stats, judge, render) and stored baselines.

Fixture run directories with known per-process samples are written with the
reports.rundir writers; no TensorFlow is imported. Run: ``pytest tests/test_compare.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm
from tf_loopbench.reports import gate
from tf_loopbench.reports.gate import samples, stats
from tf_loopbench.reports.rundir import (
    SAMPLES_FILE,
    SCHEMA_VERSION,
    load_run,
    write_metadata,
)

from tests.conftest import run_cli
from tests.fixtures.gate_runs import HARD, interleaved_pair, step_times, write_run


def run_gate(tmp_path: Path, baseline: Path, current: Path, capsys, **kwargs):
    markdown = tmp_path / "compare.md"
    status = gate.command(baseline, current, markdown=markdown, **kwargs)
    out, err = capsys.readouterr()
    return status, out, err, markdown


def table_verdicts(out: str) -> dict[str, str]:
    """The verdict column of the gate's terminal table, by cell name."""
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if "/cpu/" in line}


def assert_one_clean_line(err: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- statistics


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(stats.holm_adjust(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm_adjust(np.array([[0.5, 0.9]]), axis=-1), [[1.0, 1.0]])


def test_smallest_p_is_what_the_exact_test_returns_for_complete_separation():
    for n in (3, 5, 7):
        separated = mannwhitneyu(np.arange(n) + 100.0, np.arange(n), alternative="greater")
        assert stats.smallest_one_sided_p(n, n) == pytest.approx(separated.pvalue)
    assert stats.samples_needed_per_side(0.01) == 5  # 1/C(10,5) = 1/252, 1/C(8,4) = 1/70
    assert stats.samples_needed_per_side(0.01 / 15) == 7  # 1/C(14,7) = 1/3432


def test_critical_u_is_where_the_exact_test_reaches_the_level():
    for n_baseline, n_current, level in ((7, 7, 0.01 / 15), (10, 12, 0.01 / 12), (20, 20, 0.001)):
        needed = stats.critical_u(n_baseline, n_current, level)
        baseline = np.arange(n_baseline, dtype=float)
        # current samples above `u` baseline pairs: the first needed-1 fall short
        for u, reaches in ((needed, True), (needed - 1, False)):
            above = np.clip(u - n_baseline * np.arange(n_current), 0, n_baseline)
            current = above - 0.5 + np.arange(n_current) / (10 * n_current)
            p = mannwhitneyu(current, baseline, alternative="greater", method="exact").pvalue
            assert bool(p <= level) == reaches, (n_baseline, n_current, u, p)
    assert stats.critical_u(6, 6, 0.01 / 15) is None  # 1/C(12, 6) = 0.0011 > 0.00067
    assert stats.critical_u(7, 7, 0.01 / 15) == 48


def test_a_slowdown_of_the_detectable_size_is_flagged_80_percent_of_the_time():
    level, n, spread = 0.01 / 15, 12, 0.08
    # samples at the normal quantiles: their spread is the noise's, without luck
    quantiles = np.exp(spread * norm.ppf((np.arange(n) + 0.5) / n))
    detectable = stats.detectable_slowdown(quantiles, quantiles[::-1], level)
    # the normal-theory figure for the rank test: (z_level + z_power) * sd * sqrt(2/n) / 0.977
    assert detectable == pytest.approx(np.expm1(4.05 * spread * np.sqrt(2 / n) / 0.977), rel=0.15)
    # fresh comparisons from that noise, the current side slower by that much
    rng = np.random.default_rng(11)
    baseline = np.exp(spread * rng.standard_normal((4000, n)))
    current = (1 + detectable) * np.exp(spread * rng.standard_normal((4000, n)))
    flagged = stats.one_sided_mwu_p(baseline, current, "greater") <= level
    assert 0.72 < flagged.mean() < 0.88
    assert stats.detectable_slowdown(baseline[0, :6], current[0, :6], level) == np.inf
    assert np.isnan(stats.detectable_slowdown(baseline[0, :1], current[0], level))


# --------------------------------------------------------------------------- verdicts


def test_clear_slowdown_exits_1_and_says_slower(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1)})
    current = write_run(
        tmp_path / "cur",
        {("mlp", "xla"): step_times(0.013, 8, 2)},
        soft={"tensorflow": "2.18.0", "git_commit": "b" * 40},
    )
    status, out, err, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1, out + err
    assert "SLOWER" in out and "mlp/xla/cpu/bs32/w64" in out
    text = markdown.read_text()
    assert "| mlp/xla/cpu/bs32/w64 | **SLOWER** |" in text
    assert "tensorflow: 2.17.0 -> 2.18.0" in text  # the soft metadata line
    assert "git_commit:" in text


def power_runs(tmp_path: Path, spread: float, n: int = 10, slow: float = 1.0):
    """Three cells, the xla cell ``slow`` times slower in the current run."""
    loops = ("fit", "tf_function", "xla")
    baseline = write_run(
        tmp_path / "base",
        {("mlp", loop): step_times(0.01, n, i, spread) for i, loop in enumerate(loops)},
    )
    current = write_run(
        tmp_path / "cur",
        {
            ("mlp", loop): step_times(0.01 * (slow if loop == "xla" else 1), n, 10 + i, spread)
            for i, loop in enumerate(loops)
        },
    )
    return baseline, current


def test_every_cell_states_its_detectable_slowdown(tmp_path, capsys):
    baseline, current = power_runs(tmp_path, spread=0.01)
    status, out, _, markdown = run_gate(tmp_path, baseline, current, capsys, fail_if_blind=True)
    assert status == 0, out  # calm: every cell could have seen 10 % (twice the threshold)
    assert "power: a cell's detectable slowdown is the smallest that the whole rule" in out
    assert "Holm's first-step level alpha/3 = 0.0033" in out
    assert "every cell could have seen a 10% slowdown (median detectable slowdown" in out
    result = gate.compare(baseline, current)
    # the whole rule: the ratio must pass the 5 % threshold too, so never below it
    assert all(0.05 < cell.detectable < 0.10 for cell in result.cells)
    # stored runs met different moments of the machine: the A/B is named the better gate
    assert "stored runs: the two runs met different moments of the machine" in out
    assert "`loopbench ab BASE_REF`" in out
    header = next(line for line in markdown.read_text().splitlines() if line.startswith("| cell"))
    assert "| detectable |" in header
    assert "detectable" in result.to_frame().columns


def test_fail_if_blind_exits_3_on_a_run_too_noisy_to_see_the_threshold(tmp_path, capsys):
    baseline, current = power_runs(tmp_path, spread=0.15)
    status, out, _, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out  # blind, and said so, but not asked to fail
    assert (
        "RESULT: no confirmed regression; 3 of 3 cells blind: could not have seen a 10% slowdown"
        in out
    )
    assert out.count("(blind)") == 3
    status, out, _, markdown = run_gate(tmp_path, baseline, current, capsys, fail_if_blind=True)
    assert status == 3, out
    assert "(--fail-if-blind: exit 3)" in out and "exit 3" in markdown.read_text()
    gated = run_cli("compare", str(baseline), str(current), "--fail-if-blind")
    assert gated.returncode == 3, gated.stdout + gated.stderr
    # the GitHub Actions example tells exit 3 from nox's 1 by this text in compare.md
    workflow = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "regression.yml"
    assert "fail-if-blind: exit 3" in workflow.read_text()
    # too few samples for the Holm level: blind whatever the spread
    few_base, few_cur = power_runs(tmp_path / "few", spread=0.01, n=5)
    status, out, _, _ = run_gate(tmp_path, few_base, few_cur, capsys, fail_if_blind=True)
    assert status == 3 and "never (blind)" in out


def test_a_confirmed_regression_exits_1_even_when_other_cells_are_blind(tmp_path, capsys):
    baseline, current = power_runs(tmp_path, spread=0.12, n=12, slow=2.0)
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys, fail_if_blind=True)
    assert status == 1, out
    assert "RESULT: 1 confirmed regression(s): mlp/xla/cpu/bs32/w64; " in out


def test_identical_distributions_exit_0(tmp_path, capsys):
    cells = {
        (w, loop): step_times(0.01, 8, seed)
        for seed, (w, loop) in enumerate([("mlp", "fit"), ("mlp", "eager"), ("gan", "xla")])
    }
    baseline = write_run(tmp_path / "base", cells)
    current = write_run(tmp_path / "cur", {cell: list(reversed(t)) for cell, t in cells.items()})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out
    assert "no confirmed regression" in out
    assert list(table_verdicts(out).values()) == ["same"] * 3


def test_a_machine_speed_change_between_runs_is_warned(tmp_path, capsys):
    cells = {("mlp", "fit"): step_times(0.01, 8, 1)}
    soft = {"git_commit": "a" * 40, "peak_matmul_flops": {"cpu": 270e9}}
    baseline = write_run(tmp_path / "base", cells, soft=soft)
    loaded = {**soft, "peak_matmul_flops": {"cpu": 140e9}}
    current = write_run(tmp_path / "cur", cells, soft=loaded)
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert "warning: cpu peak matmul speed 270 -> 140 GFLOP/s" in out


def test_faster_cell_is_reported_and_does_not_fail(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.007, 8, 2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert " faster " in out


def test_too_few_samples_is_unclear_and_names_the_n_needed(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 3, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.020, 3, 2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0  # twice as slow, but 3 samples can never reach alpha = 0.01
    assert table_verdicts(out) == {"mlp/xla/cpu/bs32/w64": "unclear"}
    assert "need 5 per side" in out


def test_holm_correction_spans_the_cells(tmp_path, capsys):
    # 5 vs 5 completely separated: p = 1/252 = 0.004 passes alpha 0.01 alone, but not
    # Holm's 0.01 / 3 when three cells are compared
    steady = {("mlp", "fit"): step_times(0.01, 5, 1), ("gan", "fit"): step_times(0.02, 5, 2)}
    baseline = write_run(tmp_path / "base", {**steady, ("mlp", "xla"): step_times(0.010, 5, 3)})
    current = write_run(tmp_path / "cur", {**steady, ("mlp", "xla"): step_times(0.013, 5, 4)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out
    assert table_verdicts(out)["mlp/xla/cpu/bs32/w64"] == "unclear" and "need 6 per side" in out
    alone = write_run(tmp_path / "alone_base", {("mlp", "xla"): step_times(0.010, 5, 3)})
    alone_current = write_run(tmp_path / "alone_cur", {("mlp", "xla"): step_times(0.013, 5, 4)})
    status, out, _, _ = run_gate(tmp_path, alone, alone_current, capsys)
    assert status == 1, out


def test_noisy_cell_is_unclear_not_same(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 8, 1, spread=0.2)})
    current = write_run(tmp_path / "cur", {("mlp", "xla"): step_times(0.010, 8, 2, spread=0.2)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0
    assert table_verdicts(out) == {"mlp/xla/cpu/bs32/w64": "unclear"} and "too noisy" in out


def test_a_cell_that_was_ok_and_is_missing_now_is_a_regression(tmp_path, capsys):
    base_cells = {("mlp", "fit"): step_times(0.01, 8, 1), ("gan", "fit"): step_times(0.02, 8, 2)}
    baseline = write_run(tmp_path / "base", base_cells)
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 3)})
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1, out
    assert "MISSING" in out and "was ok, not in the current run" in out
    assert "RESULT: 1 confirmed regression(s): gan/fit/cpu/bs32/w64" in out
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys, allow_missing=True)
    assert status == 0, out
    assert "was ok, not in the current run (allowed: --allow-missing)" in out


def test_a_cell_that_was_ok_and_is_skipped_now_is_a_regression(tmp_path, capsys):
    cells = {("mlp", "fit"): step_times(0.01, 8, 1), ("mlp", "xla"): step_times(0.02, 8, 2)}
    baseline = write_run(tmp_path / "base", cells)
    current = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.01, 8, 3)},
        skipped={("mlp", "xla"): "NotImplementedError: xla cannot run mlp"},
    )
    status, out, _, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1, out
    assert "was ok, now skipped: NotImplementedError: xla cannot run mlp" in out
    assert "| mlp/xla/cpu/bs32/w64 | **MISSING** |" in markdown.read_text()
    # through the command line, as CI runs it
    gated = run_cli("compare", str(baseline), str(current))
    assert gated.returncode == 1, gated.stdout + gated.stderr
    allowed = run_cli("compare", str(baseline), str(current), "--allow-missing")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "(allowed: --allow-missing)" in allowed.stdout


def test_a_newly_failing_cell_is_a_regression_even_with_allow_missing(tmp_path, capsys):
    cells = {("mlp", "fit"): step_times(0.01, 8, 1), ("mlp", "xla"): step_times(0.02, 8, 2)}
    baseline = write_run(tmp_path / "base", cells)
    current = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.01, 8, 3)},
        failed={("mlp", "xla"): "ValueError: broken"},
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys, allow_missing=True)
    assert status == 1, out
    assert "newly fails (was ok): ValueError: broken" in out


def test_a_cell_skipped_in_the_baseline_may_stay_skipped(tmp_path, capsys):
    cells = {("mlp", "fit"): step_times(0.01, 8, 1)}
    reason = {("mlp", "xla"): "NotImplementedError: no"}
    baseline = write_run(tmp_path / "base", cells, skipped=reason)
    current = write_run(tmp_path / "cur", cells, skipped=reason)
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 0, out
    assert "1 skipped in both runs" in out


def test_newly_failed_cell_is_a_regression(tmp_path, capsys):
    baseline = write_run(
        tmp_path / "base",
        {("mlp", "fit"): step_times(0.01, 8, 1), ("mlp", "xla"): step_times(0.01, 8, 2)},
    )
    current = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.01, 8, 3)},
        failed={("mlp", "xla"): "ResourceExhaustedError: OOM"},
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "newly fails (was ok): ResourceExhaustedError: OOM" in out


def test_newly_failing_process_in_an_ok_cell_is_flagged(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    baseline = write_run(tmp_path / "base", {("mlp", "xla"): times})
    current = write_run(
        tmp_path / "cur", {("mlp", "xla"): times}, failed={("mlp", "xla"): "killed by signal 9"}
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "1 process(es) newly failed: killed by signal 9" in out


def test_retrace_increase_is_flagged(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    baseline = write_run(tmp_path / "base", {("mlp", "tf_function"): times})
    current = write_run(
        tmp_path / "cur", {("mlp", "tf_function"): times}, retraces={("mlp", "tf_function"): 3}
    )
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 1
    assert "retraces 1 -> 3" in out


def test_compile_regression_needs_threshold_floor_and_significance(tmp_path, capsys):
    times = step_times(0.01, 8, 1)
    cell = ("mlp", "xla")
    baseline = write_run(tmp_path / "base", {cell: times}, compile_s={cell: step_times(1.0, 8, 2)})
    slower = write_run(tmp_path / "cur", {cell: times}, compile_s={cell: step_times(2.0, 8, 3)})
    status, out, _, _ = run_gate(tmp_path, baseline, slower, capsys)
    assert status == 1
    assert "compile 1.00s -> 1.99s" in out

    small = write_run(tmp_path / "b2", {cell: times}, compile_s={cell: step_times(0.1, 8, 4)})
    tripled_but_tiny = write_run(
        tmp_path / "c2", {cell: times}, compile_s={cell: step_times(0.3, 8, 5)}
    )
    status, out, _, _ = run_gate(tmp_path, small, tripled_but_tiny, capsys)
    assert status == 0, out
    assert "compile 0" not in out

    # one process compiling slowly moves the median but is not a confirmed change
    jittery = [1.0, 1.0, 2.6, 1.0, 2.6, 2.6, 1.0, 2.6]
    same = write_run(tmp_path / "b3", {cell: times}, compile_s={cell: [1.0] * 4 + [2.6] * 4})
    noisy = write_run(tmp_path / "c3", {cell: times}, compile_s={cell: jittery[:3] + [2.6] * 5})
    status, out, _, _ = run_gate(tmp_path, same, noisy, capsys)
    assert status == 0, out


# --------------------------------------------------------------------------- machines


def test_different_hard_key_exits_2_naming_the_key(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    other_machine = {**HARD, "cpu_model": "Other CPU 1"}
    current = write_run(
        tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)}, hard=other_machine
    )
    status, out, err, markdown = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "cpu_model" in err and "Test CPU 9000" in err and "Other CPU 1" in err
    assert "cpu_model" in markdown.read_text()


def with_ladder(run: Path, reference: str = "fit") -> Path:
    """Add to a fixture run a ladder as benchmarks writes it, ``reference`` first."""
    metadata = json.loads((run / "metadata.json").read_text())
    others = [loop for loop in ("fit", "eager", "xla") if loop != reference]
    rungs = [{"loop": reference, "compares_with": None, "changes": "users'", "reference": True}]
    rungs += [{"loop": loop, "compares_with": None, "changes": loop} for loop in others]
    write_metadata(run, {**metadata, "ladder": {"reference": reference, "rungs": rungs}})
    return run


def test_allow_different_machines_compares_within_run_ratios(tmp_path, capsys):
    slower_machine = {**HARD, "cpu_model": "Other CPU 1", "visible_cores": 4}
    baseline = write_run(
        tmp_path / "base",
        {("mlp", "fit"): step_times(0.010, 8, 1), ("mlp", "xla"): step_times(0.005, 8, 2)},
    )
    # everything twice as slow on the other machine: the ratio to fit is unchanged
    same_ratio = write_run(
        tmp_path / "cur",
        {("mlp", "fit"): step_times(0.020, 8, 3), ("mlp", "xla"): step_times(0.010, 8, 4)},
        hard=slower_machine,
    )
    for run in (baseline, same_ratio):
        with_ladder(run)
    status, out, _, _ = run_gate(
        tmp_path, baseline, same_ratio, capsys, allow_different_machines=True
    )
    assert status == 0, out
    assert "within-run ratios to fit" in out and "cpu_model" in out
    assert table_verdicts(out) == {"mlp/fit/cpu/bs32/w64": "same", "mlp/xla/cpu/bs32/w64": "same"}
    assert "the reference loop: ratio 1 by definition" in out  # a note, not a verdict
    assert "x fit" in out  # medians are ratios to the ladder's reference

    # xla lost ground against fit on the other machine: 0.5x fit -> 0.65x fit
    worse_ratio = with_ladder(
        write_run(
            tmp_path / "cur2",
            {("mlp", "fit"): step_times(0.020, 8, 5), ("mlp", "xla"): step_times(0.013, 8, 6)},
            hard=slower_machine,
        )
    )
    status, out, _, _ = run_gate(
        tmp_path, baseline, worse_ratio, capsys, allow_different_machines=True
    )
    assert status == 1
    assert "SLOWER" in out


def test_within_run_ratios_take_the_reference_from_the_ladder(tmp_path, capsys):
    """The reference loop is the ladder's, not a name the gate knows: here xla's ratio
    to "eager" holds on the slower machine while fit's does not."""
    other_machine = {**HARD, "cpu_model": "Other CPU 1"}
    cells = {("mlp", "eager"): 0.010, ("mlp", "fit"): 0.002, ("mlp", "xla"): 0.005}
    baseline = write_run(
        tmp_path / "base", {c: step_times(t, 8, i) for i, (c, t) in enumerate(cells.items())}
    )
    slower = {("mlp", "eager"): 0.020, ("mlp", "fit"): 0.002, ("mlp", "xla"): 0.010}
    current = write_run(
        tmp_path / "cur",
        {c: step_times(t, 8, 10 + i) for i, (c, t) in enumerate(slower.items())},
        hard=other_machine,
    )
    for run in (baseline, current):
        with_ladder(run, reference="eager")
    status, out, _, _ = run_gate(tmp_path, baseline, current, capsys, allow_different_machines=True)
    assert status == 0, out  # fit got twice as fast against eager: faster is no regression
    assert "within-run ratios to eager" in out
    assert table_verdicts(out) == {
        "mlp/eager/cpu/bs32/w64": "same",  # the reference: ratio 1 by definition
        "mlp/fit/cpu/bs32/w64": "faster",
        "mlp/xla/cpu/bs32/w64": "same",
    }
    eager = next(line for line in out.splitlines() if line.startswith("mlp/eager/"))
    assert eager.endswith("the reference loop: ratio 1 by definition")


def test_within_run_ratios_need_a_ladder(tmp_path, capsys):
    other_machine = {**HARD, "cpu_model": "Other CPU 1"}
    cells = {("mlp", "fit"): step_times(0.01, 8, 1), ("mlp", "xla"): step_times(0.005, 8, 2)}
    baseline = write_run(tmp_path / "base", cells)
    current = write_run(tmp_path / "cur", cells, hard=other_machine)
    for run in (baseline, current):  # runs made before the ladder was recorded
        metadata = json.loads((run / "metadata.json").read_text())
        del metadata["ladder"]
        write_metadata(run, metadata)
    status, out, err, _ = run_gate(
        tmp_path, baseline, current, capsys, allow_different_machines=True
    )
    assert status == 2 and out == ""
    assert_one_clean_line(err)
    assert "declares a loop ladder" in err

    with_ladder(baseline, "fit")
    with_ladder(current, "xla")
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys, allow_different_machines=True)
    assert status == 2
    assert_one_clean_line(err)
    assert "different reference loops (fit, xla)" in err


# --------------------------------------------------------------------------- bad input


def test_cut_off_samples_exit_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)})
    samples_file = current / SAMPLES_FILE
    samples_file.write_text(samples_file.read_text()[:-40])
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "cut" in err


def test_nan_samples_exit_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): [0.01, float("nan"), 0.01, 0.01, 0.01]})
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "NaN" in err and "mlp/fit" in err


def test_newer_schema_exits_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    current = write_run(tmp_path / "cur", {("mlp", "fit"): step_times(0.01, 8, 2)})
    metadata = json.loads((current / "metadata.json").read_text())
    metadata["schema_version"] = SCHEMA_VERSION + 1
    (current / "metadata.json").write_text(json.dumps(metadata))
    status, _, err, _ = run_gate(tmp_path, baseline, current, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "newer" in err


def test_same_run_twice_exits_2(tmp_path, capsys):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    status, _, err, _ = run_gate(tmp_path, baseline, baseline, capsys)
    assert status == 2
    assert_one_clean_line(err)
    copy = tmp_path / "copy"
    shutil.copytree(baseline, copy)
    status, _, err, _ = run_gate(tmp_path, baseline, copy, capsys)
    assert status == 2
    assert_one_clean_line(err)
    assert "same run" in err


def test_missing_directory_exits_2_from_the_command_line(tmp_path):
    baseline = write_run(tmp_path / "base", {("mlp", "fit"): step_times(0.01, 8, 1)})
    result = run_cli("compare", str(baseline), str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr)
    assert "nowhere" in result.stderr


# --------------------------------------------------------------------------- baselines


def test_baseline_save_list_and_compare_through_the_cli(tmp_path):
    """A stored baseline is a validated copy; comparing against it is the gate."""
    store = tmp_path / "store"
    base = write_run(tmp_path / "base", {("mlp", "xla"): step_times(0.010, 10, 1)})
    slower = write_run(tmp_path / "slow", {("mlp", "xla"): step_times(0.013, 10, 2)})
    saved = run_cli("baseline", "save", str(base), "--name", "main", "--store", str(store))
    assert saved.returncode == 0, saved.stderr
    assert sorted(p.name for p in (store / "main").iterdir()) == [
        "metadata.json",
        "samples.jsonl",
        "summary.csv",
    ]
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no staging left
    listed = run_cli("baseline", "list", "--store", str(store))
    assert listed.returncode == 0 and listed.stdout.startswith("main ")
    gated = run_cli("baseline", "compare", "main", str(slower), "--store", str(store))
    assert gated.returncode == 1, gated.stdout + gated.stderr
    assert "SLOWER" in gated.stdout
    same = run_cli("baseline", "compare", "main", str(base), "--store", str(store))
    assert same.returncode == 2  # a run compared with itself

    again = run_cli("baseline", "save", str(slower), "--name", "main", "--store", str(store))
    assert again.returncode == 2 and "--force" in again.stderr
    assert_one_clean_line(again.stderr)
    forced = run_cli(
        "baseline", "save", str(slower), "--name", "main", "--force", "--store", str(store)
    )
    assert forced.returncode == 0
    assert load_run(store / "main").run_id == "slow"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "nope", "RUN"], "no baseline 'nope'"),
        (["save", "MISSING", "--name", "x"], "MISSING"),
        (["save", "RUN", "--name", "../escape"], "invalid baseline name"),
    ],
)
def test_baseline_bad_input_is_one_line_exit_2(tmp_path, args, message):
    run = write_run(tmp_path / "run", {("mlp", "xla"): step_times(0.010, 5, 1)})
    args = [str(run) if a == "RUN" else str(tmp_path / a) if a == "MISSING" else a for a in args]
    result = run_cli("baseline", *args, "--store", str(tmp_path / "store"))
    assert result.returncode == 2
    assert message in result.stderr
    assert_one_clean_line(result.stderr)
    assert not (tmp_path / "escape").exists()


def test_an_interrupted_run_is_not_saved_as_a_baseline(tmp_path):
    from tf_loopbench.reports.gate import baseline

    run = write_run(tmp_path / "run", {("mlp", "xla"): step_times(0.010, 5, 1)})
    metadata = json.loads((run / "metadata.json").read_text())
    write_metadata(run, {**metadata, "complete": False})
    with pytest.raises(baseline.BaselineError, match="did not finish"):
        baseline.save(run, "main", tmp_path / "store")
    assert not (tmp_path / "store" / "main").exists()


# --------------------------------------------------------------------------- drift correction


def test_interleaved_ab_reads_the_drift_from_other_cells(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.10)
    result = gate.compare(base, current)
    verdicts = {cell.cell[1]: cell.verdict for cell in result.cells}
    assert result.drift_corrected
    assert verdicts["xla"] == "slower"  # 10 % under a drift of +-25 %
    assert set(verdicts.values()) - {"slower"} == {"same"}
    assert any("drift" in note for note in result.notes)
    assert "drift-corrected around each pair" in gate.render_text(result)


def test_without_the_interleaved_mark_the_drift_stays_and_hides_the_slowdown(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.10, mark=False)
    result = gate.compare(base, current)
    assert not result.drift_corrected
    xla = next(cell for cell in result.cells if cell.cell[1] == "xla")
    assert xla.verdict == "unclear"  # raw samples: the drift swamps 10 %


def test_drift_correction_raises_no_alarm_on_identical_code(tmp_path):
    base, current = interleaved_pair(tmp_path, 1.0)
    result = gate.compare(base, current)
    assert result.drift_corrected and result.exit_status == 0
    assert all(cell.verdict in ("same", "unclear") for cell in result.cells)


def test_a_slowdown_of_every_cell_survives_the_correction_around_each_pair():
    rng = np.random.default_rng(4)
    position = np.arange(12)[None, :] * 5 + np.arange(5)[:, None]  # 5 cells x 12 blocks
    drift = 1 + 0.25 * np.sin(position / 8)  # load that changes within a block
    base = 0.002 * drift * (1 + 0.01 * rng.standard_normal((5, 12)))
    current = 1.10 * 0.002 * drift * (1 + 0.01 * rng.standard_normal((5, 12)))
    grid = np.stack([base, current], axis=1)
    factors = samples.local_drift_factors(grid, position.astype(float))
    assert np.array_equal(factors[:, 0], factors[:, 1])  # both sides of a pair alike
    corrected = grid / factors
    ratios = np.median(corrected[:, 1], axis=1) / np.median(corrected[:, 0], axis=1)
    assert np.allclose(ratios, 1.10, atol=0.02)
    spread = {
        "around each pair": np.std(np.log(corrected[:, 0]), axis=1).max(),
        "raw": np.std(np.log(base), axis=1).max(),
    }
    assert spread["around each pair"] < spread["raw"] / 2, spread


def test_a_process_is_judged_by_its_fastest_window(tmp_path):
    run_dir = write_run(tmp_path / "run", {("mlp", "xla"): [0.010, 0.012]})
    rows = [json.loads(line) for line in (run_dir / SAMPLES_FILE).read_text().splitlines()]
    window = next(row for row in rows if row["kind"] == "window" and row["process"] == 1)
    # process 1 gets two more windows, one faster than its median of 0.012
    rows += [
        {**window, "window": 1, "step_time_s": 0.009},
        {**window, "window": 2, "step_time_s": 0.02},
    ]
    (run_dir / SAMPLES_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = load_run(run_dir)
    assert samples.process_samples(run)["step_time_s"].tolist() == [0.010, 0.009]
    no_windows = [row for row in rows if row["kind"] == "process"]
    (run_dir / SAMPLES_FILE).write_text("".join(json.dumps(row) + "\n" for row in no_windows))
    assert samples.process_samples(load_run(run_dir))["step_time_s"].tolist() == [0.010, 0.012]
