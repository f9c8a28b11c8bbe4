"""The gate-validation tool: false-alarm and detection rates from stored runs.

Run directories with known samples come from tests/fixtures/gate_runs.py; no
TensorFlow is imported. Run: ``pytest tests/test_validate_gate.py``.
"""

from __future__ import annotations

import pytest
from tf_loopbench.benchmarks.config import AB_PROCESSES

from tests.fixtures.gate_runs import duet_pair, interleaved_pair, step_times, write_run
from tools import validate_gate


def test_validation_script_reports_gate_and_fixed_rule_rates(tmp_path, capsys):
    loops = ("fit", "eager", "xla")
    pool = write_run(
        tmp_path / "pool",
        {("mlp", loop): step_times(0.01, 16, i, 0.02) for i, loop in enumerate(loops)},
    )
    slowed = write_run(
        tmp_path / "slowed",
        {
            ("mlp", loop): step_times(0.013 if loop == "xla" else 0.01, 16, 10 + i, 0.02)
            for i, loop in enumerate(loops)
        },
        soft={"env": {"LOOPBENCH_INJECT_SLOWDOWN": "xla=0.30"}},
    )
    status = validate_gate.main(
        [str(pool), "--slowed", str(slowed), "--iterations", "300", "--slowdown", "0.3"]
    )
    table = capsys.readouterr().out
    assert status == 0
    assert f"{AB_PROCESSES} processes per side" in table  # the A/B's default
    assert "measured effect of the injected slowdown (all samples): mlp/xla/" in table
    effect = float(table.split("mlp/xla/")[1].split(" x")[1].split(" ")[0])
    assert effect == pytest.approx(1.3, abs=0.03)
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
        for line in table.splitlines()
        if line.startswith("| ") and "scenario" not in line
    }
    assert set(rule for _, rule in rows) == {
        "gate (MWU + Holm + effect)",
        "median ratio > 5%",
        "mean ratio > 5%",
    }
    gate_aa = rows[("A/A, pooled", "gate (MWU + Holm + effect)")].split("|")
    assert float(gate_aa[3].strip(" %")) <= 5.0
    gate_real = rows[("xla slowed, real runs", "gate (MWU + Holm + effect)")].split("|")
    assert float(gate_real[5].strip(" %")) >= 90.0  # a 30% slowdown


def test_validation_of_interleaved_abs_reports_the_drift_corrected_gate(tmp_path, capsys):
    interleaved_pair(tmp_path / "aa", 1.0)
    interleaved_pair(tmp_path / "slowed", 1.10)
    status = validate_gate.main(
        [
            "--ab",
            str(tmp_path / "aa"),
            "--slowed-ab",
            str(tmp_path / "slowed"),
            "--slowed-loop",
            "xla",
            "--iterations",
            "200",
        ]
    )
    table = capsys.readouterr().out
    assert status == 0, table
    assert "6 cells x 10 blocks" in table
    rows = {
        tuple(part.strip() for part in line.strip("|").split("|")[:2]): line
        for line in table.splitlines()
        if line.startswith("| ") and "scenario" not in line
    }
    detection = {
        rule: float(line.strip("|").split("|")[4].strip().rstrip("%"))
        for (scenario, rule), line in rows.items()
        if scenario.startswith("xla slowed: interleaved A/B")
    }
    # the machine drifts by +-25 % between blocks: only the corrected gate sees 10 %
    assert detection[validate_gate.COMPARE_RULE] > 90
    assert detection["gate (MWU + Holm + effect)"] < 50
    false_alarms = {
        rule: float(line.strip("|").split("|")[2].strip().rstrip("%"))
        for (scenario, rule), line in rows.items()
        if scenario.startswith("A/A")
    }
    assert false_alarms[validate_gate.COMPARE_RULE] <= 1.0


def test_validation_pools_the_blocks_of_several_a_as_and_judges_each_as_measured(tmp_path, capsys):
    interleaved_pair(tmp_path / "aa1", 1.0, seed=1)
    interleaved_pair(tmp_path / "aa2", 1.0, seed=2)
    interleaved_pair(tmp_path / "slowed", 1.10)
    status = validate_gate.main(
        [
            "--ab",
            str(tmp_path / "aa1"),
            str(tmp_path / "aa2"),
            "--slowed-ab",
            str(tmp_path / "slowed"),
            "--slowed-loop",
            "xla",
            "--processes",
            "8",
            "--iterations",
            "200",
        ]
    )
    table = capsys.readouterr().out
    assert status == 0, table
    assert "6 cells x 20 blocks" in table
    # 8 of the 20 pooled blocks: no block twice in a comparison
    assert "A/A: interleaved A/Bs of unchanged code (8 of 20 blocks, without replacement)" in table
    assert "xla slowed: interleaved A/B (8 of 10 blocks, without replacement)" in table
    # a 5 % and a 10 % slowdown, as approximations on the A/As' samples
    assert "xla x1.05 on those A/As" in table and "xla x1.1 on those A/As" in table
    measured = {
        line.split("|")[1].strip(): [part.strip() for part in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| unchanged:") or line.startswith("| slowed:")
    }
    assert list(measured) == [
        f"unchanged: {tmp_path / 'aa1'}",
        f"unchanged: {tmp_path / 'aa2'}",
        f"slowed: {tmp_path / 'slowed'}",
    ]
    # columns: A/B, blocks, gate, corrected around each pair, median, mean
    assert measured[f"unchanged: {tmp_path / 'aa1'}"][1:4] == ["10", "0 flagged", "0 flagged"]
    assert measured[f"slowed: {tmp_path / 'slowed'}"][3] == "1 flagged: mlp/xla"


def test_validation_refuses_to_pool_a_as_with_slowed_a_bs(tmp_path, capsys):
    interleaved_pair(tmp_path / "aa", 1.0)
    interleaved_pair(tmp_path / "slowed", 1.10, inject="xla=0.10")
    assert validate_gate.main(["--ab", str(tmp_path / "aa"), str(tmp_path / "slowed")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(slowed xla) and" in err and "cannot be pooled" in err


def test_validation_refuses_runs_that_were_not_interleaved(tmp_path, capsys):
    interleaved_pair(tmp_path / "aa", 1.0, mark=False)
    assert validate_gate.main(["--ab", str(tmp_path / "aa")]) == 2
    assert "not the two sides of one A/B (duet or interleaved)" in capsys.readouterr().err


def test_validation_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert validate_gate.main([]) == 2
    assert capsys.readouterr().err == "validate_gate: give pool run directories or --ab\n"
    interleaved_pair(tmp_path / "aa", 1.0)
    assert validate_gate.main(["--ab", str(tmp_path / "aa")]) == 2  # nothing says which loop
    assert capsys.readouterr().err == f"validate_gate: {validate_gate.NO_SLOWED_LOOP}\n"
    assert validate_gate.main(["--ab", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "missing") in err
    with pytest.raises(SystemExit) as exit_info:
        validate_gate.main(["--ab", str(tmp_path), "--processes", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "validate_gate: argument --processes: '0' is not a positive integer\n"
    )


def test_power_mode_sets_the_detectable_slowdowns_of_a_bs_side_by_side(tmp_path, capsys):
    interleaved_pair(tmp_path / "old", 1.0, seed=1)
    interleaved_pair(tmp_path / "new", 1.0, seed=2)
    markdown = tmp_path / "power.md"
    status = validate_gate.main(
        ["--power", str(tmp_path / "old"), str(tmp_path / "new"), "--markdown", str(markdown)]
    )
    table = capsys.readouterr().out
    assert status == 0, table
    assert markdown.read_text() == table
    rows = {
        line.strip("|").split("|")[0].strip(): [
            part.strip() for part in line.strip("|").split("|")[1:]
        ]
        for line in table.splitlines()
        if line.startswith("| ")
    }
    assert len([name for name in rows if name.startswith("mlp/")]) == 6
    assert all(figure.endswith("%") for figure in rows["mlp/xla/cpu/bs32/w64"])
    assert [blind.endswith(" of 6") for blind in rows["blind (above the threshold)"]] == [True] * 2
    assert rows["samples a side (min-max over cells)"] == ["10-10", "10-10"]
    assert "median detectable slowdown, second over first: " in table


def test_validation_of_duet_abs_judges_paired_blocks_as_compare_does(tmp_path, capsys):
    duet_pair(tmp_path / "aa1", 1.0, seed=1)
    duet_pair(tmp_path / "aa2", 1.0, seed=2)
    duet_pair(tmp_path / "slowed", 1.10, seed=3)
    args = ["--ab", str(tmp_path / "aa1"), str(tmp_path / "aa2")]
    args += ["--slowed-ab", str(tmp_path / "slowed"), "--slowed-loop", "xla"]
    status = validate_gate.main([*args, "--iterations", "300"])
    table = capsys.readouterr().out
    assert status == 0, table
    assert "## Regression gate validation (duet A/Bs)" in table
    assert "6 cells x 40 blocks; paired spread" in table
    rule = validate_gate.PAIRED_RULE
    rows = {
        tuple(part.strip() for part in line.strip("|").split("|")[:2]): [
            part.strip() for part in line.strip("|").split("|")
        ]
        for line in table.splitlines()
        if line.startswith("| ") and "scenario" not in line
    }
    # the machine's +-40 % drift falls on both sides of a block: the pairs see 2 % noise
    aa = rows[("A/A: duet A/Bs of unchanged code (20 of 40 blocks, without replacement)", rule)]
    assert aa[2] == "0.0%"
    real = rows[
        (
            "xla slowed: duet A/B (20 of 20 blocks, without replacement: every comparison the same blocks, one comparison in truth)",
            rule,
        )
    ]
    assert real[5] == "100.0%"
    assert rows[("xla x1.1 on those A/As (approximation)", rule)][4] == "100.0%"
    # each A/B once on all its blocks, as loopbench compare judges it
    measured = {
        line.split("|")[1].strip(): [part.strip() for part in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| unchanged:") or line.startswith("| slowed:")
    }
    assert measured[f"unchanged: {tmp_path / 'aa1'}"][1:3] == ["20", "0 flagged"]
    assert measured[f"slowed: {tmp_path / 'slowed'}"][2] == "1 flagged: mlp/xla"
    compared = validate_gate.judge.compare(
        tmp_path / "slowed" / "base", tmp_path / "slowed" / "current"
    )
    assert [cell.cell.name.split("/")[:2] for cell in compared.regressions] == [["mlp", "xla"]]


def test_validation_refuses_to_pool_duet_and_interleaved_a_bs(tmp_path, capsys):
    duet_pair(tmp_path / "duet", 1.0)
    interleaved_pair(tmp_path / "inter", 1.0)
    assert validate_gate.main(["--ab", str(tmp_path / "duet"), str(tmp_path / "inter")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pool A/Bs of one mode" in err
    args = ["--ab", str(tmp_path / "duet"), "--slowed-ab", str(tmp_path / "inter")]
    assert validate_gate.main([*args, "--slowed-loop", "xla"]) == 2
    assert "give A/As and slowed A/Bs of one mode" in capsys.readouterr().err
