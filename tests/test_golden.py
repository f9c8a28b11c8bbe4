"""Golden outputs: behaviour-preserving changes keep them byte for byte.

Two real quick runs (linear, mlp, gan x five loop styles, four processes a cell,
CPU) are stored under tests/fixtures/golden/. From them the test renders
summary.csv (recomputed from samples.jsonl), report.md and the text and Markdown
output of ``loopbench compare`` and matches each with the stored expectation.

A change that is meant to alter these outputs regenerates them on purpose:

    python -m tests.test_golden --regenerate

and the diff of tests/fixtures/golden/expected/ shows what changed for review.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from tf_loopbench.benchmarks.stats import summarize
from tf_loopbench.reports.rundir import load_run, reference_loop, write_summary

from tests.conftest import ROOT, run_cli

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
EXPECTED = GOLDEN / "expected"
RUNS = ("base", "current")


def _copy_runs(tmp: Path) -> dict[str, Path]:
    """Copies without any rendered output (report.md, plots), so rendering starts clean."""
    copies = {}
    for name in RUNS:
        target = tmp / name
        target.mkdir(parents=True)
        for file in ("metadata.json", "samples.jsonl", "summary.csv"):
            shutil.copy(GOLDEN / name / file, target / file)
        copies[name] = target
    return copies


def render_all(tmp: Path) -> dict[str, str]:
    """Every golden output, rendered now from the stored runs: file name -> text."""
    runs = _copy_runs(tmp)
    outputs: dict[str, str] = {}
    run = load_run(runs["current"])
    summary_dir = tmp / "summary"
    summary_dir.mkdir()
    rows = [row for _, row in run.samples.iterrows()]
    cell_order = run.metadata["config"]["cells"]
    reference = reference_loop(run.metadata)
    write_summary(
        summary_dir, summarize([r.dropna().to_dict() for r in rows], cell_order, reference)
    )
    outputs["summary.csv"] = (summary_dir / "summary.csv").read_text()

    report = run_cli("report", str(runs["current"]), timeout=300)
    assert report.returncode == 0, report.stderr
    outputs["report.md"] = (runs["current"] / "report.md").read_text()

    markdown = tmp / "compare.md"
    compared = run_cli(
        "compare",
        str(runs["base"]),
        str(runs["current"]),
        "--markdown",
        str(markdown),
        timeout=300,
    )
    assert compared.returncode in (0, 1), compared.stderr
    outputs["compare.txt"] = f"exit {compared.returncode}\n{compared.stdout}"
    outputs["compare.md"] = markdown.read_text()
    return outputs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    return render_all(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", ["summary.csv", "report.md", "compare.txt", "compare.md"])
def test_output_matches_the_stored_golden_file(rendered, name):
    expected = (EXPECTED / name).read_text()
    assert rendered[name] == expected, (
        f"{name} differs from tests/fixtures/golden/expected/{name}; if the change is "
        "intended, regenerate with `python -m tests.test_golden --regenerate` and review the diff"
    )


def test_the_fixture_runs_hold_every_loop_style_of_every_workload():
    """A golden test that covers nothing would pass on nothing."""
    run = load_run(GOLDEN / "current")
    ok = run.summary[run.summary["status"] == "ok"]
    assert len(ok) == 15
    assert ok["n_processes"].min() >= 3  # one gan/xla process failed: a flag to render


def main(argv: list[str]) -> int:
    if argv != ["--regenerate"]:
        print("usage: python -m tests.test_golden --regenerate", file=sys.stderr)
        return 2
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        outputs = render_all(Path(tmp))
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for name, text in outputs.items():
        (EXPECTED / name).write_text(text)
        print(f"wrote {EXPECTED / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
