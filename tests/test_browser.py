"""The workbook in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

One JupyterLab server for the module (the Korean edition: the study group's; the widgets and
charts are the same in both). Chapter 01: dismisses JupyterLab's "official Jupyter news" prompt,
runs every cell, moves the replica slider from 3 to 5 with the keyboard, and checks that the
chart now has 5 bars and that no text of the chapter's charts lies on another text or sticks out
of its chart (the bounding boxes the browser drew: bar labels, the uniform label, tick labels,
titles); saves a screenshot. Chapter 07: runs every cell, clicks "Local" on the traffic policy
panel and sees both charts redrawn (the load balancer stops sending to the control plane, the
pods see mypc's own address), enters at the control plane and sees every connection drawn as
dropped; the same text checks; saves a screenshot of the panel. Skips (with the reason) when chromium or the playwright
package is missing.
"""

from __future__ import annotations

import json
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
SHOT07 = REPO / "tests" / "artifacts" / "chapter07-local.png"


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


# Every drawn <text> of every plotly chart in the notebook: what it says, where, its box and
# the box of its chart's drawing (the svg that clips it).
TEXT_BOXES = """() => [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')].flatMap((plot, i) => {
  const svg = plot.querySelector('svg.main-svg').getBoundingClientRect();
  return [...plot.querySelectorAll('svg text')].filter(t => {
    const st = getComputedStyle(t), r = t.getBoundingClientRect();
    return t.textContent.trim() && r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none'
      && parseFloat(st.opacity || '1') > 0 && parseFloat(t.getAttribute('opacity') ?? '1') > 0;
  }).map(t => { const r = t.getBoundingClientRect();
    return {plot: i, text: t.textContent.trim(), cls: t.getAttribute('class') || t.parentNode.getAttribute('class') || '',
            x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, sx0: svg.left, sy0: svg.top, sx1: svg.right, sy1: svg.bottom}; }); })"""


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


def clipped(boxes: list[dict], slack: float = 1.0) -> list[str]:
    """Texts that stick out of their chart's drawing by more than ``slack`` px (the svg cuts them off)."""
    return [f"{b['text']!r} ({b['cls']})" for b in boxes
            if b["x0"] < b["sx0"] - slack or b["x1"] > b["sx1"] + slack or b["y0"] < b["sy0"] - slack or b["y1"] > b["sy1"] + slack]


def test_clipped_finds_text_cut_off():
    chart = dict(sx0=0, sy0=0, sx1=700, sy1=340)
    inside = dict(chart, plot=0, text="600 connections", cls="gtitle", x0=35, y0=10, x1=690, y1=30)
    cut = dict(chart, plot=0, text="600 connections ... 100% dropped", cls="gtitle", x0=35, y0=10, x1=760, y1=30)
    edge = dict(chart, plot=0, text="0", cls="ytick", x0=0.5, y0=320, x1=10, y1=340.5)  # within the slack
    assert clipped([inside, cut, edge]) == ["'600 connections ... 100% dropped' (gtitle)"]


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


def news_answered(url: str) -> bool:
    """True when this JupyterLab profile has answered the news question already (an earlier test
    of the module said No), so the toast will not come and waiting for it would only cost time."""
    with urllib.request.urlopen(f"{url}/lab/api/settings/@jupyterlab/apputils-extension:notification", timeout=10) as r:
        return json.load(r).get("settings", {}).get("fetchNews", "none") != "none"


# The notebook panel open on ``path`` (by path: the shell's current widget follows the focus,
# which a headless browser need not give it).
NOTEBOOK = """(path) => { for (const w of window.jupyterapp.shell.widgets('main'))
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  return null; }"""

# That notebook is the current tab (what run-all acts on) and its kernel is connected and idle.
KERNEL_IDLE = f"""(path) => {{ const w = ({NOTEBOOK})(path);
  if (!w) return false;
  if (window.jupyterapp.shell.currentWidget !== w) window.jupyterapp.shell.activateById(w.id);
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return window.jupyterapp.shell.currentWidget === w && !!k && w.sessionContext.isReady
    && k.connectionStatus === 'connected' && k.status === 'idle'; }}"""

# After run-all: "done" when every code cell of the notebook has run (an execution count, not
# running), the text of the first error output if one stopped the run, else null (running).
RUN_STATE = f"""(path) => {{ const cells = ({NOTEBOOK})(path).content.model.cells;
  let done = true;
  for (let i = 0; i < cells.length; i++) {{ const c = cells.get(i);
    if (c.type !== 'code') continue;
    const err = c.outputs.toJSON().find(o => o.output_type === 'error');
    if (err) return 'error in cell ' + i + ': ' + err.ename + ': ' + err.evalue;
    if (c.executionCount === null || c.executionState === 'running') done = false; }}
  return done ? 'done' : null; }}"""


def open_and_run_all(page, url: str, notebook: str) -> bool:
    """Open ``notebook`` in JupyterLab, answer the news prompt if asked (True if it was), wait for
    the kernel and run every cell (returns at once: callers wait for what they need)."""
    known = news_answered(url)
    page.goto(f"{url}/lab/tree/{notebook}?reset", timeout=90_000)  # reset: not the tabs an earlier test left open
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    asked = False if known else dismiss_news_prompt(page)
    assert page.locator(".Toastify__toast", has_text="news").count() == 0, "the news prompt is still shown"
    page.wait_for_function(KERNEL_IDLE, arg=notebook, timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return asked


def test_chapter01_replica_slider_in_chromium(jupyter, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        asked = open_and_run_all(page, jupyter, "01_clusterip.ipynb")
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
        assert not clipped(boxes) and not clipped(crowded), clipped(boxes) + clipped(crowded)
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(bars).first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOT), full_page=False)
        browser.close()
    assert SHOT.stat().st_size > 10_000
    print(f"news prompt {'dismissed' if asked else 'not shown'}; {len(boxes)} and {len(crowded)} chart texts "
          "(5 and 10 replicas), none overlapping or cut off")


# Chapter 07's traffic policy panel as the browser holds it: the pressed policy button, the
# entry, per ingress node the answered and dropped counts (the node chart's data) and the drawn
# height of each dropped bar, each pod's share (the pod chart's data), both titles as drawn and
# the summary line. null until the panel and both its charts are drawn.
PANEL_STATE = """() => {
  const toggle = [...document.querySelectorAll('.jp-Notebook .widget-toggle-buttons')]
    .find(e => e.textContent.includes('externalTrafficPolicy'));
  const box = toggle && toggle.closest('.widget-vbox');
  if (!box) return null;
  const plots = [...box.querySelectorAll('.js-plotly-plot')];
  if (plots.length !== 2 || !plots.every(p => p.data && p.data.length === 2 && p.querySelector('.gtitle'))) return null;
  const [nodes, pods] = plots;
  const heights = [...nodes.querySelectorAll('.barlayer .trace')].map(t =>
    [...t.querySelectorAll('.point')].map(pt => pt.getBoundingClientRect().height));
  return {policy: [...toggle.querySelectorAll('button.mod-active')].map(b => b.textContent.trim()),
          entry: box.querySelector('.widget-dropdown select').value,
          nodes: Array.from(nodes.data[0].x), ok: Array.from(nodes.data[0].y), dropped: Array.from(nodes.data[1].y),
          dropped_heights: heights[1] || [], node_title: nodes.querySelector('.gtitle').textContent,
          pods: Array.from(pods.data[0].x), shares: Array.from(pods.data[0].y),
          pod_title: pods.querySelector('.gtitle').textContent,
          summary: (box.querySelector('.widget-html-content') || {}).textContent || ''};
}"""


def _panel_when(page, condition: str, timeout: int = 60_000) -> dict:
    """The panel's state once ``condition`` (a JS expression over ``s``, the state) holds; on a
    timeout, an assertion naming the condition and the state the browser last had."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        handle = page.wait_for_function(f"() => {{ const s = ({PANEL_STATE})(); return s && ({condition}) ? s : null; }}",
                                        timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"the panel never showed {condition}: {page.evaluate(PANEL_STATE)}") from None
    return handle.json_value()


def test_chapter07_traffic_policy_toggle_in_chromium(jupyter):
    from playwright.sync_api import sync_playwright

    cp, mypc = "myk8s-control-plane", "172.18.0.100"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_and_run_all(page, jupyter, "07_traffic_policy_lb.ipynb")
        state = page.wait_for_function(RUN_STATE, arg="07_traffic_policy_lb.ipynb", timeout=240_000).json_value()
        assert state == "done", state
        panel = page.locator(".jp-Notebook .widget-vbox", has=page.locator(".widget-toggle-buttons",
                                                                          has_text="externalTrafficPolicy")).last
        panel.scroll_into_view_if_needed()  # the notebook skips drawing cells out of view (content-visibility)
        # as the chapter leaves it: Cluster, one pod per worker, mypc entering through the load balancer
        before = _panel_when(page, "s.node_title.includes('Cluster')")
        assert before["policy"] == ["Cluster"] and before["entry"] == "load balancer", before
        assert "load balancer" in before["node_title"] and "0% dropped" in before["node_title"], before
        ok = dict(zip(before["nodes"], before["ok"]))
        assert ok[cp] > 0 and sum(ok.values()) == 600 and not any(before["dropped"]), before  # every node healthy on 10256
        assert "SNAT" in before["summary"] and len(before["pods"]) == 3, before

        panel.locator(".widget-toggle-buttons").get_by_role("button", name="Local", exact=True).click()
        # each chart and the summary is its own widget: wait until all three were redrawn
        local = _panel_when(page, "s.node_title.includes('Local') && s.policy[0] === 'Local' && s.summary.includes('(mypc')"
                                  f" && JSON.stringify(s.shares) !== {json.dumps(json.dumps(before['shares'], separators=(',', ':')))}")
        ok = dict(zip(local["nodes"], local["ok"]))
        # the LB probes healthCheckNodePort now: the control plane (no pod) gets nothing, the workers all 600
        assert ok[cp] == 0 and sum(ok.values()) == 600 and not any(local["dropped"]), local
        assert local["shares"] != before["shares"], (before["shares"], local["shares"])  # the pod chart was redrawn
        assert f"{mypc} (mypc" in local["summary"] and "SNAT" not in local["summary"].split("load balancer")[0], local

        panel.locator(".widget-dropdown select").select_option(label=cp)
        at_cp = _panel_when(page, f"s.entry === '{cp}' && s.node_title.includes('via {cp}') && s.shares.every(x => x === 0)"
                                  " && s.summary.includes('no connection was answered')")
        dropped, heights = dict(zip(at_cp["nodes"], at_cp["dropped"])), dict(zip(at_cp["nodes"], at_cp["dropped_heights"]))
        # Local, entering at a node without a pod: all 600 dropped there, and the browser drew that bar
        assert "100% dropped" in at_cp["node_title"] and dropped[cp] == 600 and not any(at_cp["ok"]), at_cp
        assert heights[cp] > 50 and all(h < 1 for n, h in heights.items() if n != cp), heights
        assert "no connection was answered" in at_cp["summary"], at_cp

        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        boxes = page.evaluate(TEXT_BOXES)
        texts = [b["text"] for b in boxes]
        assert any(f"via {cp}" in t for t in texts) and any("Share per pod" in t for t in texts), texts  # the panel's, drawn
        assert not overlaps(boxes), overlaps(boxes)
        assert not clipped(boxes), clipped(boxes)
        SHOT07.parent.mkdir(parents=True, exist_ok=True)
        panel.screenshot(path=str(SHOT07))
        browser.close()
    assert SHOT07.stat().st_size > 10_000
    print(f"chapter 07: Cluster -> Local -> entering at {cp}; {len(boxes)} chart texts, none overlapping or cut off")


RESYNC_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": [
            "from IPython.display import display\n",
            "import plotly.graph_objects as go\n",
            "from kslab.livefigure import LiveFigure\n",
            "fig = LiveFigure(go.Figure(go.Bar(x=['a', 'b', 'c'], y=[1, 2, 3]), layout=dict(title='start')))\n",
            "display(fig)\n",
            "for k in range(1, 6):  # changes in the same instant: the page is still loading plotly's module\n",
            "    with fig.batch_update():\n",
            "        fig.data[0].y = [10 * k, 10 * k + 1, 10 * k + 2]\n",
            "        fig.layout.title.text = f'change {k}'\n"]},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def test_livefigure_changes_made_while_plotly_loads_reach_the_chart(jupyter):
    """kslab.livefigure: a figure changed before plotly's module has loaded in the page (the same
    cell that shows it) is drawn as the kernel holds it, the last change, not as it was created:
    the loader saw the changes go by and asked for the whole figure (its debug line says so)."""
    from playwright.sync_api import sync_playwright

    body = json.dumps({"type": "notebook", "format": "json", "content": RESYNC_NOTEBOOK}).encode()
    request = urllib.request.Request(f"{jupyter}/api/contents/livefigure_resync.ipynb", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        logs: list[str] = []
        page.on("console", lambda m: logs.append(m.text))
        open_and_run_all(page, jupyter, "livefigure_resync.ipynb")
        state = page.wait_for_function(
            "() => { const p = document.querySelector('.jp-Notebook .js-plotly-plot');"
            " return p && p.data && p.querySelector('.gtitle') ? {y: Array.from(p.data[0].y), title: p.querySelector('.gtitle').textContent} : null; }",
            timeout=120_000).json_value()
        page.wait_for_timeout(2_000)  # nothing redraws it back
        after = page.evaluate("() => { const p = document.querySelector('.jp-Notebook .js-plotly-plot');"
                              " return {y: Array.from(p.data[0].y), title: p.querySelector('.gtitle').textContent}; }")
        browser.close()
    assert state == after == {"y": [50, 51, 52], "title": "change 5"}, (state, after)
    assert any("[kslab] LiveFigure" in line and "resynced" in line for line in logs), logs
