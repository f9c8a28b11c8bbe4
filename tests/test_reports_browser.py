"""report.html in headless Chromium: every image loads, no console error, a screenshot is saved.

Skipped where Debian's Chromium or chromedriver is missing (apt-get install chromium
chromium-driver), except where LOOPBENCH_REQUIRE_BROWSER is set: CI (.ci/run) installs
them and sets it, so there a missing browser fails instead of passing unseen.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tf_loopbench.reports.report import REPORT_HTML, write_report

from tests.fixtures.report_runs import CellSpec, write_run
from tools.browser import screenshot

CHROMIUM = "/usr/bin/chromium"

BROWSER_PRESENT = Path(CHROMIUM).exists() and bool(shutil.which("chromedriver"))
REQUIRED = bool(os.environ.get("LOOPBENCH_REQUIRE_BROWSER"))

pytestmark = pytest.mark.skipif(
    not BROWSER_PRESENT and not REQUIRED, reason="needs Debian chromium and chromium-driver"
)


def test_the_browser_is_there_where_it_is_required():
    """Where CI requires the browser tests, a missing Chromium is a failure, not a skip."""
    assert BROWSER_PRESENT, f"{CHROMIUM} or chromedriver is missing"


def test_report_renders_without_broken_images_or_console_errors(tmp_path):
    cells = [
        CellSpec(
            "mlp",
            loop,
            (ms * 0.98e-3, ms * 1e-3, ms * 1.03e-3),
            batch_size=batch,
            width=128,
            compile_s=compile_s,
        )
        for loop, compile_s, by_batch in (
            ("fit", 0.5, {32: 2.0, 256: 6.0}),
            ("eager", 0.05, {32: 9.0, 256: 8.0}),
            ("xla", 1.2, {32: 1.5, 256: 5.0}),
        )
        for batch, ms in by_batch.items()
    ]
    out = write_report([write_run(tmp_path / "run", cells)])
    png = tmp_path / "report.png"
    assert screenshot(out / REPORT_HTML, png, chromium=CHROMIUM) == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_image_and_a_console_error_are_reported(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img alt="missing" src="missing.png">'
        "<script>console.error('boom')</script></body></html>"
    )
    problems = screenshot(page, tmp_path / "broken.png", chromium=CHROMIUM)
    assert any(p.startswith("broken image: missing") for p in problems), problems
    assert any("boom" in p for p in problems), problems
