"""The workbook in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

Opens chapter 01 of the Korean edition (the study group's; the widgets and charts are the same
in both), runs every cell, moves the replica slider from 3 to 5 with the keyboard, and checks
that the chart now has 5 bars; saves a screenshot. Skips (with the reason) when chromium
or the playwright package is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SHOT = REPO / "tests" / "artifacts" / "chapter01-replicas5.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="python3 -m pip install playwright")
    port = _free_port()
    home = tmp_path_factory.mktemp("jhome")
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "cfg"), JUPYTER_RUNTIME_DIR=str(home / "rt"),
               KSLAB_BACKEND="sim")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", "--allow-root",
           "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           f"--ServerApp.root_dir={REPO / 'notebooks' / 'ko'}", "--LabApp.expose_app_in_browser=True"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_chapter01_replica_slider_in_chromium(jupyter, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{jupyter}/lab/tree/01_clusterip.ipynb", timeout=90_000)
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_function(
            "document.querySelector('.jp-Notebook') && !document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"busy\"]')",
            timeout=60_000)
        time.sleep(3)  # let the kernel come up
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        slider = page.locator(".widget-slider:has(label:text-is('replicas'))").first
        slider.wait_for(timeout=180_000)
        bars = ".widget-slider:has(label:text-is('replicas')) >> xpath=ancestor::div[contains(@class,'widget-vbox')][1] >> .js-plotly-plot .bars .point"
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .bars .point').length > 0", timeout=180_000)
        page.locator(bars).first.wait_for(timeout=120_000)
        assert page.locator(bars).count() == 3
        handle = slider.locator(".noUi-handle")
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        readout = slider.locator(".widget-readout")
        page.wait_for_function("(el) => el.textContent.trim() === '5'", arg=readout.element_handle(), timeout=30_000)
        page.wait_for_function(
            "() => { const vb = [...document.querySelectorAll('.widget-vbox')].find(v => v.querySelector('.widget-slider label')"
            " && v.textContent.includes('replicas')); return vb && vb.querySelectorAll('.js-plotly-plot .bars .point').length === 5; }",
            timeout=120_000)
        assert page.locator(bars).count() == 5
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(bars).first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOT), full_page=False)
        browser.close()
    assert SHOT.stat().st_size > 10_000
