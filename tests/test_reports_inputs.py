"""Bad run directories give exit status 2 and one clear line on stderr, never a traceback."""

from __future__ import annotations

import json

import pytest
from tf_loopbench.reports.report import REPORT_HTML, REPORT_MD, command
from tf_loopbench.reports.rundir import METADATA_FILE, SAMPLES_FILE, SUMMARY_FILE

from tests.fixtures.report_runs import CellSpec, write_run

SMALL_CELLS = [
    CellSpec("linear", "fit", (1.0e-3, 1.1e-3, 1.2e-3)),
    CellSpec("linear", "eager", (3.0e-3, 3.1e-3, 3.3e-3)),
]


def _small_run(path):
    return write_run(path, SMALL_CELLS)


def _cut_off(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])


def _newer_schema(run):
    meta = json.loads((run / METADATA_FILE).read_text())
    meta["schema_version"] = 99
    (run / METADATA_FILE).write_text(json.dumps(meta))


def _corrupt_number(run):
    text = (run / SUMMARY_FILE).read_text()
    lines = text.splitlines()
    header = lines[0].split(",")
    fields = lines[1].split(",")
    fields[header.index("step_time_median_s")] = "fast"
    lines[1] = ",".join(fields)
    (run / SUMMARY_FILE).write_text("\n".join(lines) + "\n")


def _corrupt_sample_key(run):
    rows = [json.loads(line) for line in (run / SAMPLES_FILE).read_text().splitlines()]
    rows[0]["steps_per_call"] = "many"
    (run / SAMPLES_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))


def _drop_contract_column(run):
    lines = (run / SUMMARY_FILE).read_text().splitlines()
    (run / SUMMARY_FILE).write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")


BREAKERS = {
    "missing dir": (lambda run: None, "no such run directory"),
    "empty dir": (lambda run: run.mkdir(), "not a run directory"),
    "no summary": (
        lambda run: (_small_run(run), (run / SUMMARY_FILE).unlink()),
        "empty run directory",
    ),
    "newer schema": (lambda run: (_small_run(run), _newer_schema(run)), "newer tf-loopbench"),
    "cut-off samples.jsonl": (lambda run: (_small_run(run), _cut_off(run / SAMPLES_FILE)), "cut"),
    "cut-off summary.csv": (lambda run: (_small_run(run), _cut_off(run / SUMMARY_FILE)), "cut off"),
    "corrupted summary number": (
        lambda run: (_small_run(run), _corrupt_number(run)),
        "not a number",
    ),
    "corrupted cell key in samples.jsonl": (
        lambda run: (_small_run(run), _corrupt_sample_key(run)),
        "steps_per_call holds 'many', not a number",
    ),
    "corrupted summary columns": (
        lambda run: (_small_run(run), _drop_contract_column(run)),
        "missing columns",
    ),
    "corrupted metadata": (
        lambda run: (_small_run(run), (run / METADATA_FILE).write_text('{"schema_')),
        "corrupted metadata",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_run_dir_exits_2_with_one_line(tmp_path, capsys, case):
    breaker, expected = BREAKERS[case]
    run = tmp_path / "run"
    breaker(run)
    status = command([str(run)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err
    assert not (run / REPORT_MD).exists()


def test_readable_runs_are_still_reported_beside_a_bad_one(tmp_path, capsys):
    good = _small_run(tmp_path / "good")
    out = tmp_path / "out"
    status = command([str(good), str(tmp_path / "missing")], str(out))
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().count("\n") == 0 and "no such run directory" in captured.err
    assert (out / REPORT_MD).exists() and (out / REPORT_HTML).exists()


def test_good_run_exits_0_and_reports_into_the_run(tmp_path, capsys):
    run = _small_run(tmp_path / "good")
    assert command([str(run)]) == 0
    assert capsys.readouterr().err == ""
    assert (run / REPORT_MD).exists() and (run / REPORT_HTML).exists()


def test_no_run_dir_given(capsys):
    assert command([]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("epochs", ["0", "-2", "1.5", "many"])
def test_epochs_must_be_a_positive_integer(tmp_path, capsys, epochs):
    from tf_loopbench.benchmarks.cli import main

    run = _small_run(tmp_path / "good")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(run), "--epochs", epochs])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert len(captured.err.strip().splitlines()) == 1 and "--epochs" in captured.err
    assert "Traceback" not in captured.err
    assert not (run / REPORT_MD).exists()


def test_epochs_reach_the_report(tmp_path, capsys):
    from tf_loopbench.benchmarks.cli import main

    run = _small_run(tmp_path / "good")
    assert main(["report", str(run), "--epochs", "4"]) == 0
    assert "## Time to train 4 epochs" in (run / REPORT_MD).read_text()
    assert command([str(run)], epochs=0) == 2  # the Python entry checks it too
    assert "positive integer" in capsys.readouterr().err
