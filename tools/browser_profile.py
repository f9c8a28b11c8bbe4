"""TensorBoard's Profile page for a run, checked in headless Chromium.

Starts a real TensorBoard server on 127.0.0.1 (a free port) over
``<run>/profile``, opens ``#profile`` in a fresh headless Debian Chromium
driven by Selenium + chromedriver, waits for the profile plugin (an iframe)
to list its runs, saves a screenshot as ``<run>/profile_page.png`` and fails
when the page shows no runs or misses a cell that has a trace. Nothing is
fetched from the network: the Chromium flags of ``tools/browser.py`` apply.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the Python
packages ``selenium`` and ``tensorboard``. Run it::

    loopbench run --workload mlp --quick --profile --out results
    python tools/browser_profile.py results/<run-id> [PNG]
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: `python tools/NAME.py` from a checkout imports the project from it
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import contextlib
import glob
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from tools.browser import CHROMIUM_FLAGS

SERVER_START_TIMEOUT_S = 90
PAGE_TIMEOUT_S = 60
WINDOW_SIZE = (1400, 900)
#: what the profile plugin shows when it finds no trace under the logdir
NO_PROFILE_TEXT = "No profile data was found"
#: the plugin's run list heading: one session per profiled cell
SESSIONS_HEADING = re.compile(r"Sessions \((\d+)\)")


class ProfilePageError(RuntimeError):
    """The Profile page did not show the run's profiles."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard_server(
    logdir: str | Path, timeout_s: float = SERVER_START_TIMEOUT_S
) -> Iterator[str]:
    """A TensorBoard server on 127.0.0.1 over ``logdir``, ready; yields its base URL.

    >>> with tensorboard_server("results/RUN/profile") as url:  # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:40123
    """
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise ProfilePageError(f"tensorboard exited: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/data/plugins_listing", timeout=10):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise ProfilePageError(
                        f"tensorboard not ready after {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def profiled_cells(run_dir: Path) -> list[str]:
    """Cells of the run with a trace: ``profile/<label>/plugins/profile/*/*.xplane.pb``."""
    traces = glob.glob(str(run_dir / "profile" / "*" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    return sorted({Path(t).parents[3].name for t in traces})


def _driver(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromedriver = shutil.which("chromedriver")
    if chromedriver is None:
        raise ProfilePageError("chromedriver not found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument("--window-size={},{}".format(*WINDOW_SIZE))
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def _profile_frame_text(driver) -> str:
    """Text of the page's iframes (the profile plugin draws in one); '' until they exist."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    texts = []
    try:
        for frame in driver.find_elements(By.TAG_NAME, "iframe"):
            driver.switch_to.frame(frame)
            texts.append(driver.find_element(By.TAG_NAME, "body").text)
            driver.switch_to.default_content()
    except WebDriverException:
        pass
    finally:
        driver.switch_to.default_content()
    return "\n".join(texts)


def sessions_shown(text: str) -> int | None:
    """The number in the plugin's "Sessions (N)" heading; None while it is not drawn."""
    match = SESSIONS_HEADING.search(text)
    return int(match.group(1)) if match else None


def check_profile_page(run_dir: str | Path, png_path: str | Path | None = None) -> Path:
    """Screenshot TensorBoard's Profile page for ``run_dir``; raise ProfilePageError if it
    shows no runs. Returns the PNG path (``<run_dir>/profile_page.png`` by default).

    >>> check_profile_page("results/20260101-120000-cpu")  # doctest: +SKIP
    PosixPath('results/20260101-120000-cpu/profile_page.png')
    """
    run_dir = Path(run_dir)
    png = Path(png_path) if png_path is not None else run_dir / "profile_page.png"
    cells = profiled_cells(run_dir)
    if not cells:
        raise ProfilePageError(f"{run_dir}: no trace under profile/ (run with --profile)")
    user_data_dir = tempfile.mkdtemp(prefix="loopbench-chromium-")
    try:
        with tensorboard_server(run_dir / "profile") as base:
            with urllib.request.urlopen(f"{base}/data/plugin/profile/runs", timeout=60) as r:
                body = r.read()
            if r.headers.get("Content-Encoding") == "gzip":
                import gzip

                body = gzip.decompress(body)
            server_runs = json.loads(body)
            driver = _driver(user_data_dir)
            try:
                driver.set_page_load_timeout(PAGE_TIMEOUT_S)
                driver.get(f"{base}/#profile")
                deadline = time.monotonic() + PAGE_TIMEOUT_S
                text = ""
                while time.monotonic() < deadline:
                    text = _profile_frame_text(driver)
                    if NO_PROFILE_TEXT in text or sessions_shown(text) is not None:
                        break
                    time.sleep(1)
                time.sleep(2)  # let the selected run's first tool finish drawing
                png.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(png))
                text = _profile_frame_text(driver) or text
            finally:
                driver.quit()
    finally:
        shutil.rmtree(user_data_dir, ignore_errors=True)
    shown = sessions_shown(text)
    if NO_PROFILE_TEXT in text or not shown:
        raise ProfilePageError(
            f"the Profile page shows no runs (server lists {len(server_runs)}: {server_runs}); "
            f"screenshot {png}"
        )
    if shown != len(cells):
        raise ProfilePageError(
            f"the Profile page shows {shown} sessions for {len(cells)} profiled cells; "
            f"screenshot {png}"
        )
    missing = [cell for cell in cells if not any(r.startswith(f"{cell}/") for r in server_runs)]
    if missing:
        raise ProfilePageError(f"the profile plugin does not list {missing}; screenshot {png}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/browser_profile.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run made with --profile")
    parser.add_argument("png", nargs="?", metavar="PNG", help="default RUN_DIR/profile_page.png")
    args = parser.parse_args(argv)
    try:
        png = check_profile_page(args.run_dir, args.png)
    except ImportError as exc:  # no selenium
        print(f"browser_profile: {exc}", file=sys.stderr)
        return 2
    except ProfilePageError as exc:
        print(f"browser_profile: {exc}", file=sys.stderr)
        return 1
    print(f"Profile page screenshot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
