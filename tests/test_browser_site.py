"""The static site in a real browser: the site the ``built_site`` fixture built (both editions,
executed on sim; shared with tests/test_site.py) served over http from a thread, opened in
Debian's chromium driven by Playwright (no browser download). Chapter 01 (English) must draw its
plotly charts from the site's own plotly.js (no network), with bars in them; chapter 07 (Korean)
must draw the static charts of its widget panel, and its language switch must lead to the
English page. Skips (with the reason) when chromium or the playwright package is missing."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.xdist_group("site")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

# every drawn plotly chart of the page: its traces (from the data plotly.js holds) and the marks it drew
CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => ({
  id: p.id, traces: (p.data || []).length, svg: p.querySelectorAll('.main-svg').length,
  marks: p.querySelectorAll('.point, .trace path, .heatmaplayer image, .scatterlayer .js-line').length}))"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on the test's stderr
        pass


@pytest.fixture(scope="module")
def site_url(built_site):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="python3 -m pip install playwright")
    report = built_site[0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(report.out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_site_pages_draw_plotly_charts_in_chromium(site_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{site_url}/en/01_clusterip.html")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            charts = page.evaluate(CHARTS)
            assert charts and all(c["traces"] > 0 and c["svg"] > 0 for c in charts), charts
            assert any(c["marks"] > 0 for c in charts), charts  # bars drawn, not only axes
            assert errors == []
            assert all(u.startswith(site_url) for u in requests), [u for u in requests if not u.startswith(site_url)]

            page.goto(f"{site_url}/ko/07_traffic_policy_lb.html")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            after_panel = page.evaluate("""() => [...document.querySelectorAll('.output.widget')].map(w => {
              let n = 0, el = w;
              while ((el = el.nextElementSibling)) { if (el.classList.contains('js-plotly-plot')) n++; }
              return n; })""")
            assert after_panel and after_panel[0] >= 2, after_panel  # the panel's two static charts follow it
            assert errors == []
            page.click("header a.lang")
            page.wait_for_url(f"{site_url}/en/07_traffic_policy_lb.html")
            assert page.locator("html").get_attribute("lang") == "en"
        finally:
            browser.close()
