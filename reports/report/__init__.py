"""The report of one or more run directories: report.md, report.html and plots/.

The data flows one way: ``aggregate`` (``RunSet``) -> ``reports.compare`` -> ``derived``
-> ``sections`` (with ``common``'s helpers) -> ``render`` (Markdown and HTML). A single run
reports into its own directory; several into ``<first run's parent>/report-<id1>-vs-<id2>``.

    loopbench report results/RUN_A [results/RUN_B ...] [--out DIR] [--epochs E]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tf_loopbench.reports.report.aggregate import RunSet
from tf_loopbench.reports.report.derived import DEFAULT_EPOCHS, derive
from tf_loopbench.reports.report.render import render_html, render_markdown
from tf_loopbench.reports.report.sections import document
from tf_loopbench.reports.rundir import Run, RunDirError, atomic_write_text, load_run, load_runs

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"


def report_runs(
    runs: Sequence[Run], out: str | os.PathLike[str] | None = None, epochs: int = DEFAULT_EPOCHS
) -> Path:
    """Render loaded runs (``reports.rundir.load_runs``) into ``out``; the time to train is
    for ``epochs`` epochs."""
    if out is None and len(runs) > 1:
        out = runs[0].path.resolve().parent / ("report-" + "-vs-".join(r.run_id for r in runs))
    out_dir = Path(out) if out is not None else runs[0].path
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = document(derive(RunSet.of(runs), epochs), out_dir / PLOTS_DIR)
    atomic_write_text(out_dir / REPORT_MD, render_markdown(blocks, out_dir))
    atomic_write_text(out_dir / REPORT_HTML, render_html(blocks))
    return out_dir


def write_report(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    epochs: int = DEFAULT_EPOCHS,
) -> Path:
    """Write report.md, report.html and plots/ for one or several runs; return the output dir.

    Raises ``reports.rundir.RunDirError`` (one-line message) if a run cannot be read.

    Example::

        write_report(["results/cpu-run", "results/gpu-run"], "results/cpu-vs-gpu")
        write_report(["results/cpu-run"], epochs=10)   # time to train 10 epochs
    """
    return report_runs(load_runs(run_dirs), out, epochs)


def command(run_dirs: list[str], out: str | None = None, epochs: int = DEFAULT_EPOCHS) -> int:
    """``loopbench report``: 0 when every run is reported; 2 for an unreadable run (one
    line on stderr each, no traceback; the readable ones are still reported) or bad input."""
    if not run_dirs:
        print("loopbench report: no run directory given", file=sys.stderr)
        return 2
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        message = f"--epochs must be a positive integer, not {epochs!r}"
        print(f"loopbench report: {message}", file=sys.stderr)
        return 2
    runs, errors = [], 0
    for run_dir in run_dirs:
        try:
            runs.append(load_run(run_dir))
        except RunDirError as exc:
            print(f"loopbench report: {exc}", file=sys.stderr)
            errors += 1
    if not runs:
        return 2
    try:
        out_dir = report_runs(runs, out, epochs)
    except OSError as exc:
        print(f"loopbench report: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {out_dir / REPORT_MD}\nreport: {out_dir / REPORT_HTML}")
    return 2 if errors else 0
