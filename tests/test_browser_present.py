"""Presenter mode in a real browser, and every presenter page executed.

``kslab present 07`` (the real command, a subprocess, on sim) serves chapter 07's presenter page
with Voila; Debian's chromium (Playwright, no browser download) opens it, sees the traffic policy
panel drawn with the code hidden, clicks "Local" and then enters at the control plane, and checks
that both charts were redrawn from the new runs (the data plotly holds and the bars it drew).
Ctrl-C (SIGINT) then stops kslab and Voila with it. Skips (with the reason) when chromium, the
playwright package or Voila is missing.

The presenter pages (``notebooks/<lang>/present``) are executed by the repository's nbval run
(``testpaths`` includes ``notebooks``), both editions, on sim: the same cells as the chapters'
solutions, ~50 s per edition. Running them again here would only double that; the last test
checks that the pages cover chapters 00-10 and that nbval collects each of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_browser import CHROMIUM, FLAGS, PANEL_STATE, TEXT_BOXES, _free_port, clipped, overlaps

REPO = Path(__file__).resolve().parents[1]
SHOT = REPO / "tests" / "artifacts" / "present07-local.png"
STATE = PANEL_STATE.replace(".jp-Notebook ", "")  # a Voila page: the panel without JupyterLab around it


def _kslab() -> list[str]:
    script = Path(sys.executable).with_name("kslab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kslab.cli"]


@pytest.fixture
def presenter():
    """``kslab present 07 --lang en --no-browser --port P`` running; yields (url, process, seconds to ready)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="python3 -m pip install playwright")
    pytest.importorskip("voila", reason="pip install -e '.[present]'")
    port = _free_port()
    env = dict(os.environ, KSLAB_BACKEND="sim", PYTHONPATH=str(REPO))
    started = time.monotonic()
    proc = subprocess.Popen([*_kslab(), "present", "07", "--lang", "en", "--no-browser", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()  # the URL line, once Voila serves
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        yield f"http://127.0.0.1:{port}/", proc, time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_present07_traffic_policy_in_chromium(presenter):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, proc, ready = presenter
    cp = "myk8s-control-plane"

    def panel_when(page, condition: str, timeout: int = 120_000) -> dict:
        try:
            handle = page.wait_for_function(f"() => {{ const s = ({STATE})(); return s && ({condition}) ? s : null; }}",
                                            timeout=timeout)
        except PlaywrightTimeout:
            raise AssertionError(f"the panel never showed {condition}: {page.evaluate(STATE)}") from None
        return handle.json_value()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.monotonic()
        page.goto(url, timeout=180_000)
        before = panel_when(page, "s.node_title.includes('Cluster')", timeout=240_000)
        shown = time.monotonic() - t0
        # Voila has run every cell (its spinner, #loading, is gone) and the page's kernel connection is up
        page.wait_for_function("() => !document.getElementById('loading') && document.readyState === 'complete'", timeout=120_000)
        page.wait_for_timeout(8_000)  # the charts settle (plotly autosize) before a control moves
        # the page: the chapter's title, the panel, no code (--strip_sources) and no error output
        body = page.inner_text("body")
        assert "07 · externalTrafficPolicy" in body and "Presenter mode" in body, body[:500]
        assert "TrafficPolicyPanel(" not in page.content() and page.locator(".jp-InputArea-editor").count() == 0
        assert "Traceback" not in body and page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
        assert before["policy"] == ["Cluster"] and before["entry"] == "load balancer", before
        assert sum(before["ok"]) == 600 and not any(before["dropped"]) and len(before["pods"]) == 3, before

        shares_before = json.dumps(json.dumps(before["shares"], separators=(",", ":")))  # as JSON.stringify writes it
        toggle = page.locator(".widget-toggle-buttons", has_text="externalTrafficPolicy")
        toggle.get_by_role("button", name="Local", exact=True).click()
        local = panel_when(page, "s.node_title.includes('Local') && s.policy[0] === 'Local' && s.summary.includes('(mypc')"
                                 f" && JSON.stringify(s.shares) !== {shares_before}")
        ok = dict(zip(local["nodes"], local["ok"]))
        assert ok[cp] == 0 and sum(ok.values()) == 600 and local["shares"] != before["shares"], local

        page.locator(".widget-dropdown select").first.select_option(label=cp)
        at_cp = panel_when(page, f"s.entry === '{cp}' && s.node_title.includes('via {cp}') && s.shares.every(x => x === 0)")
        dropped, heights = dict(zip(at_cp["nodes"], at_cp["dropped"])), dict(zip(at_cp["nodes"], at_cp["dropped_heights"]))
        assert dropped[cp] == 600 and heights[cp] > 50 and "100% dropped" in at_cp["node_title"], at_cp  # drawn, not only data

        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        boxes = page.evaluate(TEXT_BOXES.replace(".jp-Notebook ", ""))
        assert any(f"via {cp}" in b["text"] for b in boxes) and not overlaps(boxes) and not clipped(boxes), boxes
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT), full_page=True)
        browser.close()

    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert "kslab: stopping presenter mode" in err and "Traceback" not in err, err
    port = int(url.rsplit(":", 1)[1].strip("/"))
    import socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "Voila still serves after Ctrl-C"
    print(f"kslab present 07: serving after {ready:.1f} s, panel drawn {shown:.1f} s after opening the page; "
          f"Cluster -> Local -> entering at {cp} redrawn; stopped by Ctrl-C")


def test_presenter_pages_cover_chapters_and_nbval_runs_them():
    """Chapters 00-10 have a presenter page in both editions (chapter 11 and later: not yet, a
    present.toml entry adds one), and the repository's nbval run collects every page of both
    editions: nbval executes them on sim (KSLAB_BACKEND unset: sim) and fails on any error."""
    covered = {lang: sorted(p.name[:2] for p in (REPO / "notebooks" / lang / "present").glob("[0-9][0-9]_*.ipynb"))
               for lang in ("en", "ko")}
    assert covered["en"] == covered["ko"] == [f"{n:02d}" for n in range(11)], covered
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider",
                          "notebooks/en/present", "notebooks/ko/present"], cwd=REPO, capture_output=True, text=True, timeout=300)
    collected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    assert collected == {f"notebooks/{lang}/present/{p.name}" for lang in ("en", "ko")
                         for p in (REPO / "notebooks" / lang / "present").glob("*.ipynb")}, out.stdout[-2000:]
