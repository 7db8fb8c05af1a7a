"""The dashboard in a real browser: Voilà serves notebooks/dashboard.ipynb, headless Chromium drives it.

`make test` installs Debian's chromium (the `browser` target) and the playwright
package, so this test runs there; it only skips where chromium is absent, and
says so. It saves screenshots under pytest's tmp folder; with
RECAPP_UPDATE_SCREENSHOTS=1 (`make screenshots`) it also refreshes the ones the
README shows (docs/screenshots/), so an ordinary test run never rewrites tracked files.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RECAPP_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("RECAPP_UPDATE_SCREENSHOTS") == "1"
ERROR_TEXT = re.compile(r"Traceback|\b[A-Z][A-Za-z]*Error\b|\bException\b|There was an error")
STDERR = "[data-mime-type='application/vnd.jupyter.stderr']"

def _publish(shot: Path) -> None:
    """Copy a screenshot to docs/screenshots/ when asked to refresh the README's pictures."""
    print(f"screenshot: {shot}")
    if UPDATE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / shot.name)


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: run `make browser` (make test does)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"voila did not answer on {url} within {timeout:.0f}s")


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """Start Voilà on a free port (the default model cached first) and stop it afterwards."""
    from recapp.dashboard import prepare

    prepare()  # a no-op when `make dashboard` already cached the model; otherwise trains once
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "voila", "notebooks/dashboard.ipynb", "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--VoilaExecutor.timeout=120", "--show_tracebacks=True"]
    with open(log, "wb") as fh:
        # Its own process group, so teardown stops voila and the kernel it started.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc, timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        print(f"voila log: {log}")


def _events(page) -> int:
    m = re.search(r"(\d+) events", page.inner_text(".recapp-status"))
    return int(m.group(1)) if m else 0


def test_dashboard_plays_in_chromium(voila_url, tmp_path):
    from playwright.sync_api import sync_playwright

    page_errors: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.goto(voila_url, timeout=90_000)
            # The app, or the error output Voilà shows when the notebook fails: fail fast with its text.
            page.wait_for_selector(f".recapp-recs table, {STDERR}", timeout=90_000)
            assert page.locator(STDERR).count() == 0, f"the notebook failed in Voilà:\n{page.inner_text(STDERR)}"
            page.wait_for_selector(".js-plotly-plot", timeout=30_000)

            # An unknown user is a message in the page, not a traceback.
            user_input = page.locator(".recapp-user input")
            user_input.fill("99999")
            user_input.press("Enter")
            page.wait_for_function("() => document.querySelector('.recapp-message').innerText.includes('Unknown user')",
                                   timeout=30_000)

            # Pick a user by typing into the searchable box, as an analyst would.
            user_input.fill("393")
            user_input.press("Enter")
            page.wait_for_function("() => document.querySelector('.recapp-profile').innerText.includes('User 393')",
                                   timeout=30_000)
            before = page.inner_text(".recapp-recs")

            page.locator(".recapp-play button").first.click()
            page.wait_for_function("(b) => document.querySelector('.recapp-recs').innerText !== b", arg=before,
                                   timeout=30_000)
            t0, n0 = time.monotonic(), _events(page)
            page.wait_for_timeout(6_000)
            rate = (_events(page) - n0) / (time.monotonic() - t0)
            assert page.locator(".recapp-feed tr").count() > 1, "the event feed shows no events"

            # Pause: with no backlog, no queued tick is still being processed a moment later.
            page.locator(".recapp-play button").first.click()
            page.wait_for_timeout(1_500)
            paused = _events(page)
            page.wait_for_timeout(2_000)
            assert _events(page) == paused, "events kept arriving after pause: ticks were queued"
            print(f"browser: {rate:.1f} events/s at 1x; status: {page.inner_text('.recapp-status')}")
            # Loose on purpose (the machine is shared): the clock asks for 6.7/s and the kernel needs ~10 ms a tick.
            assert rate >= 3.0, f"only {rate:.1f} events/s reached the page"

            text = page.inner_text("body")
            assert not ERROR_TEXT.search(text), f"error text in the page: {ERROR_TEXT.search(text).group(0)}"
            assert page.locator(STDERR).count() == 0
            assert not page_errors, f"page errors: {page_errors}"

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            _publish(shot)

            # The A/B tab: two policies on simulated traffic, CTR with bands.
            page.get_by_text("A/B test", exact=True).click()
            page.locator(".recapp-ab-play button").first.click()
            page.wait_for_function("() => document.querySelector('.recapp-ab-summary').innerText.includes('CTR')",
                                   timeout=30_000)
            page.wait_for_timeout(4_000)
            page.locator(".recapp-ab-play button").first.click()
            page.wait_for_timeout(500)
            ab_shot = tmp_path / "ab_test.png"
            page.screenshot(path=str(ab_shot), full_page=True)
            _publish(ab_shot)

            # A simulated shopper who reacts to the list: the CTR panel fills in.
            page.get_by_text("Live", exact=True).click()
            page.get_by_text("Simulated shopper", exact=True).click()
            page.wait_for_function("() => document.querySelector('.recapp-profile').innerText.includes('synthetic shop')",
                                   timeout=60_000)
            before = page.inner_text(".recapp-recs")
            page.locator(".recapp-play button").first.click()
            page.wait_for_function("(b) => document.querySelector('.recapp-recs').innerText !== b", arg=before,
                                   timeout=30_000)
            page.wait_for_timeout(5_000)
            page.locator(".recapp-play button").first.click()
            page.wait_for_timeout(500)
            sim_shot = tmp_path / "simulated.png"
            page.screenshot(path=str(sim_shot), full_page=True)
            _publish(sim_shot)

            text = page.inner_text("body")
            assert not ERROR_TEXT.search(text), f"error text in the page: {ERROR_TEXT.search(text).group(0)}"
            assert page.locator(STDERR).count() == 0
            assert not page_errors, f"page errors: {page_errors}"
            # Only failed loads of CDN fonts (no network here) are tolerated in the console.
            other = [m for m in console_errors if "Failed to load resource: net::ERR_" not in m]
            assert not other, f"console errors: {other}"
        finally:
            browser.close()
    for png in (shot, ab_shot, sim_shot):
        assert png.stat().st_size < 500_000, f"{png.name} is {png.stat().st_size:,} bytes; keep it under 500 KB"
