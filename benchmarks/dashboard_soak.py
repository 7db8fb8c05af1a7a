"""Soak the dashboard in headless Chromium: minutes of streaming at the fastest speed, memory and tick times.

    python benchmarks/dashboard_soak.py                 # 10 minutes, Live tab, simulated shopper at 4x
    python benchmarks/dashboard_soak.py --tab stream    # the Stream tab at 500 events/s
    python benchmarks/dashboard_soak.py --minutes 2     # a shorter run

Voilà serves notebooks/dashboard.ipynb on the synthetic shop (endless simulated
shoppers, so the stream never runs dry); Chromium (Debian's, at
/usr/bin/chromium) presses play and waits. Every ``--sample`` seconds it records
the kernel's resident memory (the ipykernel process under Voilà), the page's JS
heap, and the tick times the page reports (handler time per clock tick,
kernel side). Reports RSS growth after the warm-up, JS heap growth, tick
p50/p99 and page errors, against the targets: RSS growth <= 50 MB, zero
errors, tick p99 <= 50 ms. Model cache: a temporary folder, trained at start.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RECAPP_CHROMIUM", "/usr/bin/chromium")
TARGETS = {"rss_growth_mb": 50.0, "tick_p99_ms": 50.0, "errors": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_voila(port: int, models: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RECAPP_MODELS": models}
    env.pop("RECAPP_EVENTS", None)
    cmd = [sys.executable, "-m", "voila", "notebooks/dashboard.ipynb", "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--VoilaExecutor.timeout=180"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with code {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("voila did not answer")


def _kernel(voila: subprocess.Popen, seconds: float = 3.0):
    """The ipykernel serving the page: of Voilà's kernels (it may hold a spare one), the one using the CPU."""
    import psutil

    kernels = [c for c in psutil.Process(voila.pid).children(recursive=True) if "ipykernel" in " ".join(c.cmdline())]
    if not kernels:
        raise RuntimeError("no ipykernel process under voila")
    before = {k.pid: sum(k.cpu_times()[:2]) for k in kernels}
    time.sleep(seconds)
    return max(kernels, key=lambda k: sum(k.cpu_times()[:2]) - before[k.pid])


def _ticks(text: str) -> tuple[float, float] | tuple[None, None]:
    m = re.search(r"tick p50 (\d+) ms, p99 (\d+) ms", text) or re.search(r"tick p50 / p99\s+(\d+) / (\d+) ms", text)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


def soak(minutes: float, tab: str, sample_s: float, warmup_s: float) -> dict:
    """Run the soak and return the figures."""
    from playwright.sync_api import sync_playwright

    from recapp.dashboard.__main__ import prepare

    models = tempfile.mkdtemp(prefix="recapp-soak-models-")
    prepare(root=models, models=("EASE", "Popularity"))
    log = Path(tempfile.mkdtemp(prefix="recapp-soak-")) / "voila.log"
    port = _free_port()
    voila = _start_voila(port, models, log)
    errors: list[str] = []
    samples = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--enable-precise-memory-info"])
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}")
                    if m.type == "error" and "Failed to load resource: net::ERR_" not in m.text else None)
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            page.wait_for_selector(".recapp-recs table", timeout=180_000)
            page.select_option(".recapp-data select", label="Synthetic shop (simulated shoppers)")
            page.wait_for_function("() => document.querySelector('.recapp-profile').innerText.includes('synthetic shop')",
                                   timeout=120_000)
            if tab == "live":
                page.select_option(".recapp-app .widget-dropdown:has-text('Speed') select", label="4x")
                page.locator(".recapp-play button").first.click()
                status = ".recapp-status"
            else:
                page.get_by_text("Stream", exact=True).click()
                page.select_option(".recapp-app .widget-dropdown:has-text('Rate') select", label="500 events/s")
                page.locator(".recapp-stream-play button").first.click()
                status = ".recapp-stream"
            kernel = _kernel(voila)
            t0 = time.monotonic()
            while time.monotonic() - t0 < minutes * 60:
                page.wait_for_timeout(int(sample_s * 1000))
                heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : null")
                p50, p99 = _ticks(page.inner_text(status))
                samples.append({"t": time.monotonic() - t0, "rss_mb": kernel.memory_info().rss / 2**20,
                                "heap_mb": heap / 2**20 if heap else None, "tick_p50": p50, "tick_p99": p99,
                                "text": page.inner_text(status)[:200]})
                print(f"  {samples[-1]['t']:6.0f}s  kernel RSS {samples[-1]['rss_mb']:7.1f} MB  JS heap "
                      f"{samples[-1]['heap_mb'] or float('nan'):6.1f} MB  tick p50/p99 {p50}/{p99} ms", flush=True)
            body = page.inner_text("body")
            if re.search(r"Traceback|Something went wrong", body):
                errors.append("error text in the page")
            browser.close()
    finally:
        try:
            os.killpg(voila.pid, signal.SIGTERM)
            voila.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(voila.pid, signal.SIGKILL)
    after = [s for s in samples if s["t"] >= warmup_s] or samples
    heaps = [s["heap_mb"] for s in after if s["heap_mb"] is not None]
    last = samples[-1]
    return {"tab": tab, "minutes": minutes, "samples": len(samples),
            "rss_start_mb": after[0]["rss_mb"], "rss_end_mb": last["rss_mb"],
            "rss_growth_mb": last["rss_mb"] - after[0]["rss_mb"],
            "heap_growth_mb": (heaps[-1] - heaps[0]) if len(heaps) > 1 else None,
            "tick_p50_ms": last["tick_p50"], "tick_p99_ms": last["tick_p99"], "errors": len(errors),
            "error_text": errors[:5], "status": last["text"]}


def main(argv=None) -> int:
    """Command line; exit 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--tab", choices=("live", "stream"), default="live")
    ap.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline is taken")
    args = ap.parse_args(argv)
    r = soak(args.minutes, args.tab, args.sample, args.warmup)
    print(f"\n| tab | minutes | kernel RSS after warm-up → end (MB) | RSS growth (MB) | JS heap growth (MB) "
          f"| tick p50 / p99 (ms) | page errors |\n|---|---|---|---|---|---|---|\n"
          f"| {r['tab']} | {r['minutes']:g} | {r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} | {r['rss_growth_mb']:+.1f} | "
          f"{'–' if r['heap_growth_mb'] is None else format(r['heap_growth_mb'], '+.1f')} | "
          f"{r['tick_p50_ms']} / {r['tick_p99_ms']} | {r['errors']} |")
    print(f"last status: {r['status']!r}")
    if r["error_text"]:
        print("errors:", *r["error_text"], sep="\n  ")
    missed = [k for k, limit in TARGETS.items() if r[k] is None or r[k] > limit]
    print("targets:", "all met" if not missed else f"missed {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
