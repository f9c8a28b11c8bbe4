"""The report of runs from several TensorFlow releases (reports/report/sections/releases.py).

Run directories written through reports.rundir's writers (tests/fixtures/gate_runs.py)
with TensorFlow and Keras versions in their metadata, given out of version order: the
upgrade to 2.20 slows tf_function by 30%, the one to 2.21 speeds xla up by 20%, every
other loop stays. On one machine the report compares step times; with 2.20 measured on
a machine 1.6x slower, it says so and compares within-run ratios to fit instead.
"""

from __future__ import annotations

import json

import pytest
from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.derived import derive
from tf_loopbench.reports.report.sections import sentences as decisions
from tf_loopbench.reports.report.sections.releases import ABSOLUTE, RATIOS, release_comparison
from tf_loopbench.reports.rundir import load_runs

from tests.fixtures.gate_runs import HARD, step_times, write_run
from tests.test_cli import main_in_process

BASE_MS = {"fit": 4.0, "eager": 20.0, "tf_function": 5.0, "tf_data": 4.5, "xla": 3.0}
RELEASES = {"2.19.0": "3.9.2", "2.20.0": "3.11.3", "2.21.0": "3.15.0"}
#: what each release does to a loop's step time, against the base
EFFECT = {"2.20.0": {"tf_function": 1.3}, "2.21.0": {"tf_function": 1.3, "xla": 0.8}}
SLOWER_MACHINE = 1.6


def _release_run(root, tensorflow, machine_factor=1.0, hard=None, peak=None):
    cells = {
        ("mlp", loop): step_times(
            ms / 1e3 * EFFECT.get(tensorflow, {}).get(loop, 1.0) * machine_factor,
            5,
            seed=10 * list(RELEASES).index(tensorflow) + list(BASE_MS).index(loop),
        )
        for loop, ms in BASE_MS.items()
    }
    soft = {
        "tensorflow": tensorflow,
        "keras": RELEASES[tensorflow],
        "git_commit": "c" * 40,
        "started_at": f"2026-11-29T0{list(RELEASES).index(tensorflow)}:00:00+00:00",
        **({"peak_matmul_flops": {"cpu": peak}} if peak else {}),
    }
    return write_run(root / f"tf-{tensorflow}", cells, hard=hard, soft=soft)


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return [_release_run(root, tensorflow) for tensorflow in ("2.21.0", "2.19.0", "2.20.0")]


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory):
    root = tmp_path_factory.mktemp("machines")
    other = {**HARD, "cpu_model": "Slower CPU 100"}
    return [
        _release_run(root, "2.21.0"),
        _release_run(root, "2.20.0", SLOWER_MACHINE, hard=other),
        _release_run(root, "2.19.0"),
    ]


def _steps(comparison):
    return {
        (row["loop"], row["before"][3:9], row["after"][3:9]): row
        for row in comparison.steps.to_dict("records")
    }


def test_releases_in_version_order_and_what_each_upgrade_did(one_machine):
    comparison = release_comparison(RunSet.of(load_runs(one_machine)))
    assert [r.tensorflow for r in comparison.releases] == ["2.19.0", "2.20.0", "2.21.0"]
    assert comparison.mode == ABSOLUTE and comparison.differing == ()
    steps = _steps(comparison)
    assert len(steps) == 2 * len(BASE_MS)  # every loop at both steps
    hurt = steps[("tf_function", "2.19.0", "2.20.0")]
    helped = steps[("xla", "2.20.0", "2.21.0")]
    assert hurt["verdict"] == "slower" and hurt["change_ci_low"] < 1.3 < hurt["change_ci_high"]
    assert helped["verdict"] == "faster"
    assert helped["change_ci_low"] < 0.8 < helped["change_ci_high"]
    others = [row for key, row in steps.items() if row is not hurt and row is not helped]
    assert {row["verdict"] for row in others} == {"same"}


def test_the_decisions_name_the_loop_each_upgrade_hurt_and_helped(one_machine):
    texts = [d.text for d in decisions(derive(RunSet.of(load_runs(one_machine)))) if "→" in d.text]
    first, second = texts
    assert first.startswith("TF 2.19.0 / Keras 3.9.2 → TF 2.20.0 / Keras 3.11.3")
    assert "hurt tf_function (mlp/cpu/bs32/w64: +3" in first and "helped" not in first
    assert "hurt no loop beyond ±5%" in second and "helped xla (mlp/cpu/bs32/w64: -" in second
    assert "4 of 5 cells stayed within ±5%" in second


def test_different_machines_fall_back_to_within_run_ratios(two_machines):
    comparison = release_comparison(RunSet.of(load_runs(two_machines)))
    assert [r.tensorflow for r in comparison.releases] == ["2.19.0", "2.20.0", "2.21.0"]
    assert comparison.mode == RATIOS and "cpu_model" in comparison.differing
    steps = _steps(comparison)
    assert "fit" not in {loop for loop, _, _ in steps}  # the ratios' denominator
    hurt = steps[("tf_function", "2.19.0", "2.20.0")]
    helped = steps[("xla", "2.20.0", "2.21.0")]
    assert hurt["verdict"] == "slower" and hurt["change_ci_low"] < 1.3 < hurt["change_ci_high"]
    assert helped["verdict"] == "faster"
    # the 1.6x slower machine of 2.20 cancels: every other ratio stays
    others = [row for row in steps.values() if row is not hurt and row is not helped]
    assert {row["verdict"] for row in others} == {"same"}
    said = [d.text for d in decisions(derive(RunSet.of(load_runs(two_machines))))]
    assert any("ran on different machines" in text and "cpu_model" in text for text in said)


def test_report_renders_the_releases_side_by_side(two_machines, tmp_path, capsys):
    result = main_in_process(["report", *map(str, two_machines), "--out", str(tmp_path)], capsys)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.md").read_text()
    section = text.split("\n## TensorFlow releases side by side", 1)[1].split("\n## ", 1)[0]
    assert "different machines (cpu_model differ)" in section
    assert "| setting | loop | 2.19.0 | 2.20.0 | 2.21.0 | 2.19.0 → 2.20.0 | 2.20.0 → 2.21.0 |" in (
        section
    )
    assert "| mlp/cpu/bs32/w64 | tf_function |" in section
    assert "<h2>TensorFlow releases side by side</h2>" in (tmp_path / "report.html").read_text()


def test_a_run_without_a_version_is_left_out_and_bad_runs_are_one_line(
    one_machine, tmp_path, capsys
):
    bare = tmp_path / "bare"
    write_run(bare, {("mlp", "fit"): step_times(0.004, 5, 1)}, soft={"tensorflow": None})
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.json").write_text("{not json")
    comparison = release_comparison(RunSet.of(load_runs([*one_machine, bare])))
    assert len(comparison.releases) == 3
    assert any("left out, its metadata records none" in note for note in comparison.notes)
    args = ["report", *map(str, one_machine), str(corrupt), "--out", str(tmp_path / "out")]
    result = main_in_process(args, capsys)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "## TensorFlow releases side by side" in (tmp_path / "out" / "report.md").read_text()
    # one release only: no section
    metadata = json.loads((one_machine[0] / "metadata.json").read_text())
    assert metadata["soft"]["tensorflow"] == "2.21.0"
    assert release_comparison(RunSet.of(load_runs(one_machine[:1]))) is None


def test_a_step_whose_runs_met_another_load_says_so_and_claims_nothing(tmp_path):
    """One machine, but 2.20's run met a loaded machine (its matmul probe 2.3x lower): the
    steps into and out of 2.20 carry the probe's warning, and their decisions claim nothing;
    the fixture without probes (above) carries none."""
    peaks = {"2.19.0": 263e9, "2.20.0": 113e9, "2.21.0": 260e9}
    runs = [_release_run(tmp_path, tf, peak=peaks[tf]) for tf in ("2.19.0", "2.20.0", "2.21.0")]
    comparison = release_comparison(RunSet.of(load_runs(runs)))
    assert comparison.mode == ABSOLUTE and len(comparison.load) == 2
    said = [d for d in decisions(derive(RunSet.of(load_runs(runs)))) if "→" in d.text]
    assert len(said) == 2
    for decision in said:
        assert "matmul probes differ" in decision.text and "263 -> 113" in said[0].text
        assert not decision.claim
    quiet = release_comparison(RunSet.of(load_runs(runs[::2])))  # 2.19 and 2.21: probes alike
    assert quiet.load == {}
