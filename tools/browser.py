"""Open a report in headless Debian Chromium: screenshot it, check its images and console.

``screenshot(url_or_path, png_path)`` loads a page (a file path, ``file://`` or
``http://127.0.0.1`` URL) in a fresh headless Chromium profile driven by
Selenium + chromedriver, saves a full-page PNG and returns the problems it
found: images that did not load (``naturalWidth == 0``) and console errors.
An empty list means the page rendered cleanly. ``check_report(path)`` does the
same for a report.html and raises if anything is wrong.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the Python
package ``selenium``. Nothing is fetched from the network: the driver path is
given explicitly (so Selenium Manager never downloads one) and Chromium runs
with background networking, component updates and sync off.

Run it::

    python tools/browser.py RUN_DIR/report.html /tmp/report.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW_WIDTH = 1280
MAX_PAGE_HEIGHT = 16000

#: Returns the <img> elements that did not load, after the page's load event.
BROKEN_IMAGES_SCRIPT = """
return Array.from(document.images)
  .filter(img => !img.complete || img.naturalWidth === 0)
  .map(img => (img.alt || '(no alt)') + ' <' + img.src.slice(0, 60) + '>');
"""


def _url(url_or_path: str | os.PathLike[str]) -> str:
    text = str(url_or_path)
    if text.startswith(("http://", "https://", "file://")):
        return text
    return Path(text).resolve().as_uri()


def _chromedriver(chromium: str) -> str:
    beside = Path(chromium).with_name("chromedriver")
    if beside.exists():
        return str(beside)
    found = shutil.which("chromedriver")
    if not found:
        raise FileNotFoundError("chromedriver not found (apt-get install chromium-driver)")
    return found


def screenshot(
    url_or_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    chromium: str = "/usr/bin/chromium",
) -> list[str]:
    """Load a page in headless Chromium, save a full-page PNG, return the problems found.

    Problems: one string per image that did not load and per console message
    of level SEVERE (errors). An empty list: no broken image, no console error.

    Example::

        problems = screenshot("results/RUN/report.html", "/tmp/report.png")
        assert not problems, problems
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="loopbench-chromium-")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW_WIDTH},900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_chromedriver(chromium))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        driver.get(_url(url_or_path))
        height = driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        )
        driver.set_window_size(WINDOW_WIDTH, min(int(height) + 40, MAX_PAGE_HEIGHT))
        problems = [
            f"broken image: {image}" for image in driver.execute_script(BROKEN_IMAGES_SCRIPT)
        ]
        problems += [
            f"console {entry.get('level')}: {entry.get('message')}"
            for entry in driver.get_log("browser")
            if entry.get("level") == "SEVERE"
        ]
        Path(png_path).parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(png_path)):
            problems.append(f"could not save the screenshot to {png_path}")
        return problems
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def check_report(
    report_html: str | os.PathLike[str],
    png_path: str | os.PathLike[str] | None = None,
    chromium: str = "/usr/bin/chromium",
) -> Path:
    """Screenshot a report.html (beside it, as report.png, by default); raise if it has problems."""
    report_html = Path(report_html)
    png = Path(png_path) if png_path is not None else report_html.with_suffix(".png")
    problems = screenshot(report_html, png, chromium=chromium)
    if problems:
        raise AssertionError(f"{report_html}: " + "; ".join(problems))
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/browser.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("page", metavar="REPORT_HTML_OR_URL")
    parser.add_argument("png", nargs="?", default="report.png", metavar="PNG")
    args = parser.parse_args(argv)
    try:
        problems = screenshot(args.page, args.png)
    except (ImportError, FileNotFoundError) as exc:  # no selenium, chromium or chromedriver
        print(f"browser: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"screenshot: {args.png}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
