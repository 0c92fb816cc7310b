"""The workbook in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

Opens chapter 01 of the Korean edition (the study group's; the widgets and charts are the same
in both), dismisses JupyterLab's "official Jupyter news" prompt, runs every cell, moves the
replica slider from 3 to 5 with the keyboard, and checks that the chart now has 5 bars and that
no text of the chapter's charts lies on another text (the bounding boxes the browser drew: bar
labels, the uniform label, tick labels, titles); saves a screenshot. Skips (with the reason)
when chromium or the playwright package is missing.
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
    root = tmp_path_factory.mktemp("workbook") / "ko"  # a copy: JupyterLab autosaves what it runs
    shutil.copytree(REPO / "notebooks" / "ko", root)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "cfg"), JUPYTER_RUNTIME_DIR=str(home / "rt"),
               KSLAB_BACKEND="sim")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", "--allow-root",
           "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]
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


# Every drawn <text> of every plotly chart in the notebook: what it says, where, and its box.
TEXT_BOXES = """() => [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')].flatMap((plot, i) =>
  [...plot.querySelectorAll('svg text')].filter(t => {
    const st = getComputedStyle(t), r = t.getBoundingClientRect();
    return t.textContent.trim() && r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none'
      && parseFloat(st.opacity || '1') > 0 && parseFloat(t.getAttribute('opacity') ?? '1') > 0;
  }).map(t => { const r = t.getBoundingClientRect();
    return {plot: i, text: t.textContent.trim(), cls: t.getAttribute('class') || t.parentNode.getAttribute('class') || '',
            x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; }))"""


def overlaps(boxes: list[dict], slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts of one chart whose boxes intersect by more than ``slack`` px each way."""
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a["plot"] != b["plot"]:
                continue
            w = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            h = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if w > slack and h > slack:
                out.append((f"{a['text']!r} ({a['cls']})", f"{b['text']!r} ({b['cls']})"))
    return out


def test_overlaps_finds_text_on_text():
    a = dict(plot=0, text="uniform 1/5", cls="annotation-text", x0=10, y0=10, x1=80, y1=24)
    b = dict(plot=0, text="20.1% (603)", cls="bartext", x0=40, y0=18, x1=100, y1=40)
    c = dict(plot=1, text="webpod1", cls="xtick", x0=10, y0=10, x1=80, y1=24)  # another chart
    d = dict(plot=0, text="0%", cls="ytick", x0=100.5, y0=10, x1=110, y1=24)  # touching b is not overlapping
    assert overlaps([a, b, c, d]) == [("'uniform 1/5' (annotation-text)", "'20.1% (603)' (bartext)")]


@pytest.mark.parametrize("width", [800, 1100])
def test_chapter00_topology_text_apart_in_chromium(tmp_path, width):
    """Chapter 00's topology figure drawn by chromium: no text on another, every pod's label inside its node's box."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="python3 -m pip install playwright")
    from playwright.sync_api import sync_playwright

    from kslab import charts
    from kslab.lab import Lab

    page_file = tmp_path / "topology.html"
    charts.topology_figure(Lab().cluster).write_html(page_file, include_plotlyjs=True, default_width=f"{width}px")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width + 60, "height": 700})
        page.goto(page_file.as_uri())
        page.wait_for_selector(".js-plotly-plot .textpoint text", timeout=30_000)
        boxes = page.evaluate(TEXT_BOXES.replace(".jp-Notebook ", ""))
        nodes = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot .shapelayer path')].map(p => {"
                              " const r = p.getBoundingClientRect(); return {x0: r.left, x1: r.right, y0: r.top, y1: r.bottom}; })")
        browser.close()
    pods = [b for b in boxes if "textpoint" in b["cls"] and "10.10." in b["text"]]
    assert len(pods) == 7 and not overlaps(boxes), overlaps(boxes)
    for b in pods:
        assert any(n["x0"] <= b["x0"] and b["x1"] <= n["x1"] and n["y0"] <= b["y0"] and b["y1"] <= n["y1"] for n in nodes), b


def dismiss_news_prompt(page) -> bool:
    """JupyterLab 4 asks once whether to fetch official Jupyter news (a toast with Yes/No); say
    No, as a learner would, so it covers nothing. True if it was there."""
    toast = page.locator(".Toastify__toast", has_text="news")
    try:
        toast.first.wait_for(timeout=20_000)
    except Exception:  # playwright's TimeoutError: not asked (already answered in this profile)
        return False
    toast.first.get_by_role("button", name="No", exact=True).click()
    toast.first.wait_for(state="detached", timeout=10_000)
    return True


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
        asked = dismiss_news_prompt(page)
        assert page.locator(".Toastify__toast", has_text="news").count() == 0, "the news prompt is still shown"
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
        # the panel has redrawn for 5 replicas: its uniform label says 1/5; then no text on another text
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .annotation-text')]"
                               ".some(t => t.textContent.includes('1/5'))", timeout=60_000)
        time.sleep(1)  # plotly's transitions end
        boxes = page.evaluate(TEXT_BOXES)
        texts = [b["text"] for b in boxes]
        assert any("1/5" in t for t in texts) and any("1/3" in t for t in texts), texts  # the panel's and the static chart's
        assert sum(1 for b in boxes if "bartext" in b["cls"]) >= 3 + 5, texts  # every bar's count label was drawn
        assert not overlaps(boxes), overlaps(boxes)
        for _ in range(5):  # the slider's end, 10 replicas: the most labels side by side
            handle.press("ArrowRight")
        page.wait_for_function("(el) => el.textContent.trim() === '10'", arg=readout.element_handle(), timeout=30_000)
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .annotation-text')]"
                               ".some(t => t.textContent.includes('1/10'))", timeout=120_000)
        time.sleep(1)
        crowded = page.evaluate(TEXT_BOXES)
        assert sum(1 for b in crowded if "bartext" in b["cls"]) >= 3 + 10 and not overlaps(crowded), overlaps(crowded)
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(bars).first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOT), full_page=False)
        browser.close()
    assert SHOT.stat().st_size > 10_000
    print(f"news prompt {'dismissed' if asked else 'not shown'}; {len(boxes)} and {len(crowded)} chart texts "
          "(5 and 10 replicas), none overlapping")
