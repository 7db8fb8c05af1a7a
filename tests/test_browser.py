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
def sample_log(tmp_path_factory):
    """The analyst's own small shop log and catalogue, written by the script the README names."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_sample_log import write_sample
    finally:
        sys.path.pop(0)
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory, sample_log):
    """Start Voilà on the sample log (RECAPP_EVENTS/RECAPP_ITEMS), its default model cached first; stop it afterwards."""
    from recapp.dashboard.__main__ import prepare

    events, items = sample_log
    models = tmp_path_factory.mktemp("models")   # never the user's ~/.cache/recapp
    prepare(events, items, root=models)
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RECAPP_EVENTS": str(events), "RECAPP_ITEMS": str(items), "RECAPP_MODELS": str(models)}
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


def _events(page, selector: str = ".recapp-status") -> int:
    m = re.search(r"([\d,]+) events", page.inner_text(selector))
    return int(m.group(1).replace(",", "")) if m else 0


def _stream_events(page) -> int:
    m = re.search(r"events\s+([\d,]+)", page.inner_text(".recapp-stream"))
    return int(m.group(1).replace(",", "")) if m else 0


def _drawn(page, trace_name: str, timeout: float = 30_000) -> bool:
    """Whether a plotly figure in the page draws points for a trace named ``trace_name...`` (waiting for the redraw)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("(n) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(d => (d.data || [])"
                               ".some(t => (t.name || '').startsWith(n) && (t.y || []).some(v => v !== null)))",
                               arg=trace_name, timeout=timeout)
        return True
    except PlaywrightTimeout:
        return False


def _traces(page) -> list:
    """Each plotly figure's traces as (name, points), for a failure's message."""
    return page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => (d.data || [])"
                         ".map(t => [t.name, (t.y || []).filter(v => v !== null).length]))")


def _toggle(page, css: str) -> None:
    page.locator(f"{css} button").first.click()


def test_dashboard_on_the_analysts_own_log(voila_url, tmp_path):
    from playwright.sync_api import sync_playwright

    page_errors: list[str] = []
    console_errors: list[str] = []
    shots = []
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
            info = page.inner_text(".recapp-data-info")
            assert "events.csv" in info and "dropped" in info, f"no validation report for the log: {info!r}"

            # An unknown user is a message in the page, not a traceback.
            user_input = page.locator(".recapp-user input")
            user_input.fill("99999")
            user_input.press("Enter")
            page.wait_for_function("() => document.querySelector('.recapp-message').innerText.includes('Unknown user')",
                                   timeout=30_000)

            # Pick ALS: it trains in the background (a progress message), then serves.
            page.select_option(".recapp-model select", label="ALS")
            page.wait_for_function("() => document.querySelector('.recapp-profile').innerText.includes('model ALS')",
                                   timeout=90_000)
            before = page.inner_text(".recapp-recs")
            _toggle(page, ".recapp-play")
            page.wait_for_function("(b) => document.querySelector('.recapp-recs').innerText !== b", arg=before,
                                   timeout=30_000)
            page.wait_for_timeout(4_000)
            assert page.locator(".recapp-feed tr").count() > 1, "the event feed shows no events"
            # Pause: with no backlog, no queued tick is still being processed a moment later.
            _toggle(page, ".recapp-play")
            page.wait_for_timeout(1_500)
            paused = _events(page)
            page.wait_for_timeout(2_000)
            assert paused > 0 and _events(page) == paused, "events kept arriving after pause: ticks were queued"
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            shots.append(shot)

            # The Stream tab: every shopper's events at 100/s; the counters rise.
            page.get_by_text("Stream", exact=True).click()
            _toggle(page, ".recapp-stream-play")
            page.wait_for_function("() => /events\\s*\\/\\s*s\\s*[1-9]/.test(document.querySelector('.recapp-stream').innerText)",
                                   timeout=30_000)
            first = _stream_events(page)
            page.wait_for_timeout(3_000)
            assert _stream_events(page) > first, "the stream's event count did not rise"
            assert _drawn(page, "live"), "the Stream tab's hit-rate panel shows nothing"
            _toggle(page, ".recapp-stream-play")
            page.wait_for_timeout(500)
            stream_shot = tmp_path / "stream.png"
            page.screenshot(path=str(stream_shot), full_page=True)
            shots.append(stream_shot)

            # The A/B tab: two models on simulated traffic, with an always-valid verdict.
            page.get_by_text("A/B test", exact=True).click()
            _toggle(page, ".recapp-ab-play")
            page.wait_for_function("() => document.querySelector('.recapp-ab-summary').innerText.includes('Verdict')",
                                   timeout=120_000)
            page.wait_for_timeout(3_000)
            assert _drawn(page, "A:") and _drawn(page, "B − A"), f"the A/B figure shows no CTR or difference line: {_traces(page)}"
            _toggle(page, ".recapp-ab-play")
            page.wait_for_timeout(500)
            ab_shot = tmp_path / "ab_test.png"
            page.screenshot(path=str(ab_shot), full_page=True)
            shots.append(ab_shot)

            text = page.inner_text("body")
            assert not ERROR_TEXT.search(text), f"error text in the page: {ERROR_TEXT.search(text).group(0)}"
            assert page.locator(STDERR).count() == 0
            assert not page_errors, f"page errors: {page_errors}"
            # Only failed loads of CDN fonts (no network here) are tolerated in the console.
            other = [m for m in console_errors if "Failed to load resource: net::ERR_" not in m]
            assert not other, f"console errors: {other}"
        finally:
            browser.close()
    for png in shots:
        _publish(png)
        assert png.stat().st_size < 500_000, f"{png.name} is {png.stat().st_size:,} bytes; keep it under 500 KB"
