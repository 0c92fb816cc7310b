"""The static site (``kslab site``, kslab/site.py): the renderer and the link check on small inputs,
an execution error caught through a real jupyter-book run of a tiny notebook, the widget panels'
static fallback, and the real site (both editions, executed on sim) with zero execution errors
and zero broken links (built once per session: the ``built_site`` fixture, shared with
tests/test_browser_site.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import plotly.graph_objects as go
import pytest

from kslab import resources, site, views
from kslab.errors import EnvironmentProblem

pytestmark = pytest.mark.xdist_group("site")


def _renderer(tmp_path, slugs=None):
    page = site.Page("en", "01_x", "x")
    return site.Renderer(page, slugs or {"index": "01_x", "02-y": "02_y"}, tmp_path / "public", tmp_path / "assets")


def _output(data: dict) -> dict:
    return {"type": "block", "kind": "notebook-code", "children": [
        {"type": "code", "lang": "python", "value": "x = 1"},
        {"type": "outputs", "children": [{"type": "output", "children": [], "jupyter_data": data}]}]}


def test_plotly_output_is_a_chart_and_text_is_escaped(tmp_path):
    fig = go.Figure(go.Bar(x=["webpod1"], y=[1.0]))
    ast = {"type": "root", "children": [
        {"type": "block", "children": [{"type": "heading", "depth": 2, "identifier": "rules",
                                        "children": [{"type": "text", "value": "The <rules>"}]}]},
        _output({"output_type": "display_data", "data": {site.PLOTLY_MIME: {"content": fig.to_json()},
                                                         "text/plain": {"content": "Figure"}}}),
        _output({"output_type": "stream", "name": "stdout", "text": "a < b\n"})]}
    r = _renderer(tmp_path)
    out = r.render(ast)
    assert r.page.charts == 1 and r.errors == []
    assert '<div class="output chart" id="chart-1"></div>' in out
    payload = out.split('id="chart-1-data">')[1].split("</script>")[0]
    assert json.loads(payload)["data"][0]["x"] == ["webpod1"]
    assert 'id="rules"' in out and "The &lt;rules&gt;" in out and "a &lt; b" in out
    assert r.headings == [(2, "rules", "The &lt;rules&gt;")]


def test_error_output_is_an_execution_error(tmp_path):
    r = _renderer(tmp_path)
    r.render({"type": "root", "children": [
        _output({"output_type": "stream", "name": "stdout", "text": "fine\n"}),
        _output({"output_type": "error", "ename": "AssertionError", "evalue": "the claim\nfailed",
                 "traceback": ["\x1b[0;31mAssertionError\x1b[0m: the claim failed"]})]})
    assert r.errors == ["en/01_x: cell 2: AssertionError: the claim failed"]


def test_widget_output_says_the_panel_needs_a_kernel(tmp_path):
    out = _renderer(tmp_path).render(_output({"output_type": "display_data", "data": {
        site.WIDGET_MIME: {"content": {"model_id": "abc"}}, "text/plain": {"content": "VBox(...)"}}}))
    assert site.PANEL_NOTE["en"] in out and "VBox" not in out


def test_links_between_pages_become_html_files(tmp_path):
    r = _renderer(tmp_path)
    assert r.link_target("/02-y#ports") == "02_y.html#ports"
    assert r.link_target("/index") == "01_x.html"
    assert r.link_target("02_y.ipynb") == "02_y.html"
    assert r.link_target("https://kubernetes.io/ko/") == "https://kubernetes.io/ko/"
    assert r.link_target("missing.png") == "missing.png"  # left for the link check


def _write(path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>")


def test_link_check_reports_missing_pages_anchors_and_images(tmp_path):
    _write(tmp_path / "index.html", '<a href="en/index.html">en</a><a href="en/">dir</a>')
    _write(tmp_path / "en" / "index.html",
           '<h2 id="top">t</h2><a href="a.html#ports">ok</a><a href="#top">ok</a><a href="a.html#nope">anchor</a>'
           '<a href="gone.html">page</a><img src="../_static/x.png"><a href="https://kubernetes.io/ko/">ext</a>'
           '<img src="data:image/png;base64,AAAA"><a href="../../outside.html">out</a>')
    _write(tmp_path / "en" / "a.html", '<h2 id="ports">p</h2>')
    broken, external = site.check_links(tmp_path)
    assert broken == ["en/index.html: a.html#nope (no id 'nope' on en/a.html)",
                      "en/index.html: gone.html (no such file)",
                      "en/index.html: ../_static/x.png (no such file)",
                      "en/index.html: ../../outside.html (outside the site)"]
    assert external == ["https://kubernetes.io/ko/"]
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.png").write_bytes(b"png")
    assert len(site.check_links(tmp_path)[0]) == 3


def test_panels_add_a_static_chart_only_for_the_site(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    fig = go.FigureWidget(go.Figure(go.Bar(x=["a"], y=[1])))
    monkeypatch.delenv(views.SITE_VARIABLE, raising=False)
    views.display_panel("the widget", fig)
    assert shown == ["the widget"]
    shown.clear()
    monkeypatch.setenv(views.SITE_VARIABLE, "1")
    views.display_panel("the widget", fig)
    assert shown[0] == "the widget" and type(shown[1]) is go.Figure and list(shown[1].data[0].x) == ["a"]


def test_every_panel_shows_through_display_panel():
    """The fallback lives in one place: no panel displays its widget by itself."""
    for module in ("views.py", "views_ch05.py", "views_ch10.py"):
        text = (resources.checkout() / "kslab" / module).read_text()
        n = text.count("def _ipython_display_")
        assert n and text.count("display_panel(self.widget") == n, module
        assert "display(self.widget)" not in text, module


def test_without_jupyter_book_one_line_names_the_extra(monkeypatch):
    real = site.importlib.util.find_spec
    monkeypatch.setattr(site.importlib.util, "find_spec", lambda name, *a: None if name == "jupyter_book" else real(name, *a))
    with pytest.raises(EnvironmentProblem, match=r"kslab\[site\]"):
        site.jupyter_book_command()


def test_cli_refuses_an_unknown_chapter_in_one_line(tmp_path):
    pytest.importorskip("jupyter_book")
    if not shutil.which("node"):
        pytest.skip("node is not installed (apt-get install nodejs)")
    p = subprocess.run([sys.executable, "-m", "kslab.cli", "site", "--out", str(tmp_path / "s"), "--lang", "en",
                        "--chapter", "99_nope"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--chapter: no chapter 99_nope" in p.stderr
    assert "Traceback" not in p.stderr


def test_an_execution_error_fails_the_build(tmp_path):
    """A tiny notebook whose second cell raises, executed by jupyter-book on the kslab Jupyter server:
    the error is reported (with its cell), the good cells' outputs are rendered."""
    pytest.importorskip("jupyter_book", reason="python3 -m pip install 'kslab[site]'")
    if not shutil.which("node"):
        pytest.skip("node is not installed (apt-get install nodejs)")
    source = tmp_path / "src"
    source.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Tiny\n\n## Part"),
                                         nbformat.v4.new_code_cell("print('before')"),
                                         nbformat.v4.new_code_cell("raise ValueError('the claim failed')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, source / "01_tiny.ipynb")
    work = tmp_path / "work"
    stems = site.stage_edition("en", work, source=source)
    problems = site.run_mystmd(work, execute=True, say=lambda _: None)
    out = tmp_path / "out"
    pages, errors = site.render_edition("en", work / "_build" / "site" / "content", work / "_build" / "site" / "public",
                                        out, stems, other_editions={"en": set(stems)})
    assert [p.stem for p in pages] == ["01_tiny"]
    assert errors == ["en/01_tiny: cell 2: ValueError: the claim failed"], (errors, problems)
    text = (out / "en" / "01_tiny.html").read_text()
    assert "before" in text and 'class="output error"' in text


def test_the_real_site_builds_with_no_errors_and_no_broken_links(built_site):
    report, seconds, lines = built_site
    assert report.errors == [], report.errors
    assert report.broken == [], report.broken
    chapters = sorted(p.name for p in (resources.notebooks() / "en").glob("*.ipynb"))
    for lang in resources.EDITIONS:
        assert sorted(f"{p.stem}.ipynb" for p in report.pages if p.lang == lang) == chapters
        index = (report.out / lang / "index.html").read_text()
        assert all(f'href="{c[:-6]}.html"' in index for c in chapters)
    charts = {(p.lang, p.stem): p.charts for p in report.pages}
    # chapter 07's panel (two FigureWidgets) shows its static charts; every chapter draws one
    assert all(n > 0 for n in charts.values()), charts
    ko07 = (report.out / "ko" / "07_traffic_policy_lb.html").read_text()
    assert 'href="../en/07_traffic_policy_lb.html"' in ko07  # the language switch
    assert ko07.count(site.PANEL_NOTE["ko"]) >= 1
    assert any(f"executing {len(chapters)} notebooks" in line for line in lines), [l for l in lines if "executing" in l][:3]
    print(f"site build: {seconds:.0f} s")


def test_cli_fails_in_one_line_on_a_broken_link_or_an_error(tmp_path, monkeypatch, capsys):
    from kslab import cli

    def fake_build(out, langs, **kw):  # the build itself is tested above; this is the command's verdict
        report = site.SiteReport(out, pages=[site.Page("en", "01_x", "x", charts=1)])
        report.broken = ["en/01_x.html: gone.html (no such file)"] if kw["chapters"] == ["broken"] else []
        report.errors = ["en/01_x: cell 2: ValueError: boom"] if kw["chapters"] == ["error"] else []
        return report

    monkeypatch.setattr(site, "build_site", fake_build)
    for case, word in (("broken", "1 broken link(s)"), ("error", "1 execution error(s)")):
        assert cli.main(["site", "--out", str(tmp_path / "s"), "--chapter", case]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "kslab: site: FAILED:" in err and word in err
    assert cli.main(["site", "--out", str(tmp_path / "s"), "--chapter", "fine"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("index.html") and "0 broken link(s)" in captured.err
