"""The workbook as a static site: ``kslab site``.

jupyter-book 2 (mystmd, on node) executes the learner notebooks of each edition on the sim
backend and writes each page's AST as JSON (``_build/site/content/*.json``). mystmd's HTML
themes are downloaded from api.mystmd.org at build time, so kslab renders the pages itself,
offline: a small template, code and outputs, plotly outputs as interactive charts drawn by the
plotly.js of the installed plotly package (no CDN). Widget panels add a static plotly figure of
their default setting when ``KSLAB_SITE=1`` (:func:`kslab.views.display_panel`).

Then every internal link (pages, anchors, images, scripts) of the written site is checked;
external links are only listed (the build runs without internet). Cell errors and broken links
are collected in a :class:`SiteReport`; ``kslab site`` exits non-zero when there is any.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

from . import resources
from .errors import EnvironmentProblem, InputError

EDITIONS = resources.EDITIONS
LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}
INDEX_TITLE = {"ko": "kslab 워크북: 쿠버네티스 서비스 네트워킹", "en": "kslab workbook: Kubernetes Service networking"}
INDEX_INTRO = {
    "ko": "각 장은 sim 백엔드에서 실행한 학습자용 노트북입니다 (연습 문제는 풀지 않은 상태). 위젯 패널은 기본 설정의 차트로 보입니다.",
    "en": "Each chapter is the learner notebook executed on the sim backend (exercises left open). Widget panels show a chart of their default setting.",
}
PANEL_NOTE = {  # where a widget panel was: the chart after it is its default setting
    "ko": "대화형 패널: 컨트롤을 움직이려면 JupyterLab에서 노트북을 여세요. 아래 차트는 기본 설정입니다",
    "en": "interactive panel: open the notebook in JupyterLab to move its controls; the chart below is its default setting",
}
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATIC = "_static"
Say = Callable[[str], None]


@dataclass
class Page:
    lang: str
    stem: str  # the notebook's name without .ipynb: the page is <lang>/<stem>.html
    title: str
    charts: int = 0


@dataclass
class SiteReport:
    out: Path
    pages: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "<lang>/<stem>: cell N: Error: message"
    broken: list[str] = field(default_factory=list)  # "<page>: <link> (why)"
    external: list[str] = field(default_factory=list)  # external links, listed only

    @property
    def ok(self) -> bool:
        return not self.errors and not self.broken

    def summary(self) -> str:
        charts = sum(p.charts for p in self.pages)
        return (f"{len(self.pages)} pages, {charts} charts, {len(self.errors)} execution error(s), "
                f"{len(self.broken)} broken link(s), {len(self.external)} external link(s) listed")


def _say_stderr(line: str) -> None:
    print(f"kslab: site: {line}", file=sys.stderr, flush=True)


# --- mystmd: execute and export the AST ---------------------------------------------------------

def jupyter_book_command() -> list[str]:
    """How to run jupyter-book (its console script beside this Python), or a one-line error
    naming the extra that installs it."""
    if importlib.util.find_spec("jupyter_book") is None:  # run as a command, never imported (deptry: DEP002)
        raise EnvironmentProblem("kslab site needs jupyter-book 2 (mystmd): python3 -m pip install 'kslab[site]'")
    script = Path(sys.executable).parent / "jupyter-book"
    if not script.exists():
        found = shutil.which("jupyter-book")
        if not found:
            raise EnvironmentProblem("jupyter-book is installed but its command is not found; reinstall: python3 -m pip install 'kslab[site]'")
        script = Path(found)
    if not shutil.which("node"):
        raise EnvironmentProblem("kslab site needs node (jupyter-book 2 runs mystmd on node): apt-get install nodejs")
    return [str(script)]


def stage_edition(lang: str, work: Path, chapters: Iterable[str] | None = None, *, source: Path | None = None) -> list[str]:
    """Copy the learner notebooks of ``lang`` (from ``source``, by default ``notebooks/<lang>``)
    into ``work`` with a myst.yml listing them and an offline site template (a local folder:
    mystmd downloads nothing). Returns the stems."""
    source = source if source is not None else resources.notebooks() / lang
    stems = sorted(p.stem for p in source.glob("*.ipynb"))
    if chapters is not None:
        wanted = list(chapters)
        unknown = [c for c in wanted if c not in stems]
        if unknown:
            raise InputError("--chapter", f"no chapter {', '.join(unknown)} in notebooks/{lang}", f"use one of {', '.join(stems)}")
        stems = [s for s in stems if s in wanted]
    work.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy2(source / f"{stem}.ipynb", work / f"{stem}.ipynb")
    theme = work / "_theme"
    theme.mkdir(exist_ok=True)
    (theme / "template.yml").write_text("myst: v1\nkind: site\ntitle: kslab offline (pages rendered by kslab.site)\n")
    toc = "".join(f"    - file: {stem}.ipynb\n" for stem in stems)
    (work / "myst.yml").write_text(f"version: 1\nproject:\n  title: kslab ({lang})\n  toc:\n{toc}site:\n  template: ./_theme\n")
    return stems


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A Jupyter server on loopback for mystmd to execute on (mystmd's own launcher refuses to
    run as root and picks whatever ``python`` is on PATH): this Python, a random token."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvironmentProblem(f"the Jupyter server for executing the notebooks exited ({self.proc.returncode}); "
                                         f"try: {sys.executable} -m jupyter_server --help")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise EnvironmentProblem("the Jupyter server for executing the notebooks did not answer in 60 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_mystmd(work: Path, *, execute: bool, say: Say = _say_stderr) -> list[str]:
    """``jupyter-book build --site [--execute]`` in ``work``; returns mystmd's error lines (⛔️)."""
    command = jupyter_book_command() + ["build", "--site"] + (["--execute"] if execute else [])
    # the exercise checks record progress (kslab.progress): into the work folder, never the learner's file
    env = dict(os.environ, KSLAB_BACKEND="sim", KSLAB_SITE="1", PYTHONUNBUFFERED="1", KSLAB_PROGRESS=str(work / "progress.json"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("JUPYTER_BASE_URL", None)
    env.pop("JUPYTER_TOKEN", None)
    server = JupyterServer(work, env) if execute else None
    if server:
        env.update(JUPYTER_BASE_URL=server.url, JUPYTER_TOKEN=server.token)
    problems: list[str] = []
    try:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line or "Exception opening new comm" in line:  # widgets: no frontend, expected
                continue
            if line.startswith(("💿", "📖", "📚")):
                say(line)
            if line.startswith("⛔"):
                problems.append(line.lstrip("⛔️ ").strip())
                say(line)
        rc = proc.wait()
    finally:
        if server:
            server.close()
    if rc != 0:
        problems.append(f"jupyter-book build exited with status {rc} in {work}")
    return problems


# --- the AST to HTML ------------------------------------------------------------------------------

def _mime(entry: Any, public: Path) -> str | None:
    """An output's mime entry: inline ``content``, or a file mystmd wrote to ``public``."""
    if not isinstance(entry, dict):
        return None
    if "content" in entry:
        return entry["content"]
    if entry.get("path"):
        p = public / Path(entry["path"]).name
        if p.is_file():
            return p.read_text(errors="replace")
    return None


class Renderer:
    """One page's mdast (mystmd's JSON) as HTML. ``slugs`` maps mystmd's page slugs to stems (for
    links between pages); ``errors`` collects the cells' errors."""

    def __init__(self, page: Page, slugs: dict[str, str], public: Path, assets: Path):
        self.page, self.slugs, self.public, self.assets = page, slugs, public, assets
        self.errors: list[str] = []
        self.headings: list[tuple[int, str, str]] = []
        self.cell = 0
        self._ids: set[str] = set()

    def render(self, node: dict) -> str:
        return getattr(self, f"_n_{node.get('type')}", self._n_default)(node)

    def children(self, node: dict) -> str:
        return "".join(self.render(c) for c in node.get("children") or [])

    def _n_default(self, node: dict) -> str:
        if "value" in node and not node.get("children"):
            return html.escape(str(node["value"]))
        return self.children(node)

    def _n_root(self, node):
        return self.children(node)

    def _n_block(self, node):
        if node.get("kind") == "notebook-code":
            self.cell += 1
            return f'<div class="cell code" id="cell-{self.cell}">{self.children(node)}</div>\n'
        return f'<div class="cell markdown">{self.children(node)}</div>\n'

    def _n_text(self, node):
        return html.escape(node.get("value", ""))

    def _n_heading(self, node):
        depth = int(node.get("depth", 2))
        ident = node.get("html_id") or node.get("identifier") or f"h-{len(self.headings) + 1}"
        ident = self._unique(ident)
        inner = self.children(node)
        self.headings.append((depth, ident, inner))
        return f'<h{depth} id="{html.escape(ident)}">{inner} <a class="anchor" href="#{html.escape(ident)}">#</a></h{depth}>\n'

    def _unique(self, ident: str) -> str:
        base, n = ident, 1
        while ident in self._ids:
            n += 1
            ident = f"{base}-{n}"
        self._ids.add(ident)
        return ident

    def _n_paragraph(self, node):
        return f"<p>{self.children(node)}</p>\n"

    def _n_inlineCode(self, node):
        return f"<code>{html.escape(node.get('value', ''))}</code>"

    def _n_code(self, node):
        return f'<pre class="source"><code>{html.escape(node.get("value", ""))}</code></pre>\n'

    def _n_strong(self, node):
        return f"<strong>{self.children(node)}</strong>"

    def _n_emphasis(self, node):
        return f"<em>{self.children(node)}</em>"

    def _n_break(self, node):
        return "<br>"

    def _n_thematicBreak(self, node):
        return "<hr>\n"

    def _n_blockquote(self, node):
        return f"<blockquote>{self.children(node)}</blockquote>\n"

    def _n_list(self, node):
        tag = "ol" if node.get("ordered") else "ul"
        start = f' start="{int(node["start"])}"' if node.get("ordered") and node.get("start") not in (None, 1) else ""
        return f"<{tag}{start}>{self.children(node)}</{tag}>\n"

    def _n_listItem(self, node):
        return f"<li>{self.children(node)}</li>\n"

    def _n_table(self, node):
        return f"<table>{self.children(node)}</table>\n"

    def _n_tableRow(self, node):
        return f"<tr>{self.children(node)}</tr>\n"

    def _n_tableCell(self, node):
        tag = "th" if node.get("header") else "td"
        return f"<{tag}>{self.children(node)}</{tag}>"

    def _n_html(self, node):
        return node.get("value", "")

    def _n_inlineMath(self, node):
        return f'<code class="math">{html.escape(node.get("value", ""))}</code>'

    def _n_math(self, node):
        return f'<pre class="math">{html.escape(node.get("value", ""))}</pre>\n'

    def _n_admonition(self, node):
        return f'<div class="admonition {html.escape(str(node.get("kind", "note")))}">{self.children(node)}</div>\n'

    def _n_admonitionTitle(self, node):
        return f'<p class="admonition-title">{self.children(node)}</p>'

    def link_target(self, url: str) -> str:
        """A link of the markdown as a link of the site: mystmd's ``/slug`` of a page -> ``stem.html``
        (``#anchor`` kept); anything else stays as written (the link check judges it)."""
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            return url
        path = parts.path
        frag = f"#{parts.fragment}" if parts.fragment else ""
        if path.startswith("/") and path.strip("/") in self.slugs:
            return f"{self.slugs[path.strip('/')]}.html{frag}"
        if path.endswith((".ipynb", ".md")) and Path(path).stem in self.slugs.values():
            return f"{Path(path).stem}.html{frag}"
        return url

    def _n_link(self, node):
        return f'<a href="{html.escape(self.link_target(node.get("url", "")))}">{self.children(node)}</a>'

    def _n_crossReference(self, node):
        return self._n_link(dict(node, url=node.get("url") or f"#{node.get('identifier', '')}"))

    def _n_image(self, node):
        url = node.get("url", "")
        local = self.public / Path(url).name
        if url.startswith("/") and local.is_file():  # an image mystmd copied to public/
            self.assets.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, self.assets / local.name)
            url = f"../{STATIC}/{self.page.lang}/{local.name}"
        return f'<img src="{html.escape(url)}" alt="{html.escape(node.get("alt", ""))}">'

    def _n_outputs(self, node):
        return f'<div class="outputs">{self.children(node)}</div>\n'

    def _n_output(self, node):
        data = node.get("jupyter_data") or {}
        kind = data.get("output_type")
        if kind == "stream":
            text = data.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            return f'<pre class="output {html.escape(data.get("name", "stdout"))}">{html.escape(text)}</pre>\n'
        if kind == "error":
            self.errors.append(f"{self.page.lang}/{self.page.stem}: cell {self.cell}: {data.get('ename', 'Error')}: "
                               f"{' '.join(str(data.get('evalue', '')).split())}")
            tb = "\n".join(_strip_ansi(str(t)) for t in data.get("traceback") or [])
            return f'<pre class="output error">{html.escape(tb or data.get("ename", "Error"))}</pre>\n'
        return self.rich(data.get("data") or {})

    def rich(self, mimes: dict) -> str:
        plotly = _mime(mimes.get(PLOTLY_MIME), self.public)
        if plotly is not None:
            figure = plotly if isinstance(plotly, str) else json.dumps(plotly)
            self.page.charts += 1
            chart_id = f"chart-{self.page.charts}"
            payload = figure.replace("</", "<\\/")
            return (f'<div class="output chart" id="{chart_id}"></div>\n'
                    f'<script type="application/json" id="{chart_id}-data">{payload}</script>\n')
        for mime in ("image/png", "image/jpeg", "image/gif"):
            entry = mimes.get(mime)
            if isinstance(entry, dict) and entry.get("path"):
                src = self.public / Path(entry["path"]).name
                if src.is_file():
                    self.assets.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, self.assets / src.name)
                    return f'<img class="output" src="../{STATIC}/{self.page.lang}/{src.name}" alt="output">\n'
            if isinstance(entry, dict) and "content" in entry:
                return f'<img class="output" src="data:{mime};base64,{entry["content"]}" alt="output">\n'
        svg = _mime(mimes.get("image/svg+xml"), self.public)
        if svg is not None:
            return f'<div class="output">{svg}</div>\n'
        text_html = _mime(mimes.get("text/html"), self.public)
        if text_html is not None:
            return f'<div class="output html">{text_html}</div>\n'
        if WIDGET_MIME in mimes:  # the panel itself needs a kernel; its static chart follows it
            return f'<p class="output widget">({html.escape(PANEL_NOTE[self.page.lang])})</p>\n'
        plain = _mime(mimes.get("text/plain"), self.public)
        if plain is not None:
            return f'<pre class="output">{html.escape(plain)}</pre>\n'
        return ""


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


CSS = """
body{font-family:system-ui,"Noto Sans CJK KR",sans-serif;margin:0;color:#1f2328;line-height:1.55}
header{background:#24292f;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#fff}
main{max-width:60em;margin:0 auto;padding:1em 1.2em 4em}
nav.toc{font-size:.9em;border-left:3px solid #d0d7de;padding-left:.8em;margin:1em 0}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.85em}
pre.output{background:#fff;border-left:3px solid #d0d7de}
pre.error{border-left-color:#cf222e;background:#fff5f5}
.cell.code{margin:1em 0}
.chart{min-height:380px}
.widget{color:#57606a;font-style:italic}
a.anchor{visibility:hidden;text-decoration:none}
h1:hover a.anchor,h2:hover a.anchor,h3:hover a.anchor{visibility:visible}
footer{display:flex;justify-content:space-between;margin-top:3em}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.2em .5em}
"""

DRAW_CHARTS = """
document.querySelectorAll('.chart').forEach(function (div) {
  var fig = JSON.parse(document.getElementById(div.id + '-data').textContent);
  Plotly.newPlot(div, fig.data, fig.layout, {responsive: true});
});
"""


def _page_html(*, lang: str, title: str, body: str, nav: str, switch: str, depth: int, charts: bool) -> str:
    up = "../" * depth
    scripts = (f'<script src="{up}{STATIC}/plotly.min.js"></script>\n<script>{DRAW_CHARTS}</script>\n' if charts else "")
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
            f'<link rel="stylesheet" href="{up}{STATIC}/site.css">\n</head>\n<body>\n<header>{nav}{switch}</header>\n'
            f'<main>\n{body}</main>\n{scripts}</body>\n</html>\n')


def render_edition(lang: str, content: Path, public: Path, out: Path, stems: list[str], *,
                   other_editions: dict[str, set[str]]) -> tuple[list[Page], list[str]]:
    """Write ``out/<lang>/<stem>.html`` for every page mystmd exported, and ``out/<lang>/index.html``."""
    docs: dict[str, dict] = {}
    slugs: dict[str, str] = {}
    for path in sorted(content.glob("*.json")):
        doc = json.loads(path.read_text())
        stem = Path(doc.get("location", "")).stem
        if stem in stems:
            docs[stem], slugs[doc.get("slug", stem)] = doc, stem
    missing = [s for s in stems if s not in docs]
    errors = [f"{lang}/{s}: mystmd wrote no page" for s in missing]
    pages: list[Page] = []
    folder = out / lang
    folder.mkdir(parents=True, exist_ok=True)
    order = [s for s in stems if s in docs]
    for i, stem in enumerate(order):
        doc = docs[stem]
        page = Page(lang, stem, doc.get("frontmatter", {}).get("title") or stem)
        r = Renderer(page, slugs, public, out / STATIC / lang)
        body = r.render(doc["mdast"])
        errors += r.errors
        toc = "".join(f'<li><a href="#{html.escape(i_)}">{t}</a></li>' for d, i_, t in r.headings if d == 2)
        prev_link = f'<a href="{order[i - 1]}.html">← {html.escape(order[i - 1])}</a>' if i else "<span></span>"
        next_link = f'<a href="{order[i + 1]}.html">{html.escape(order[i + 1])} →</a>' if i + 1 < len(order) else "<span></span>"
        main = (f'<h1 id="top">{html.escape(page.title)}</h1>\n<nav class="toc"><ul>{toc}</ul></nav>\n{body}'
                f'<footer>{prev_link}<a href="index.html">{html.escape(INDEX_TITLE[lang])}</a>{next_link}</footer>\n')
        nav = f'<a href="index.html">{html.escape(INDEX_TITLE[lang])}</a>'
        (folder / f"{stem}.html").write_text(_page_html(lang=lang, title=page.title, body=main, nav=nav,
                                                        switch=_switch(lang, stem, other_editions), depth=1,
                                                        charts=page.charts > 0))
        pages.append(page)
    items = "".join(f'<li><a href="{p.stem}.html">{html.escape(p.title)}</a></li>\n' for p in pages)
    main = f'<h1 id="top">{html.escape(INDEX_TITLE[lang])}</h1>\n<p>{html.escape(INDEX_INTRO[lang])}</p>\n<ol start="0">\n{items}</ol>\n'
    (folder / "index.html").write_text(_page_html(lang=lang, title=INDEX_TITLE[lang], body=main,
                                                  nav=f'<a href="../index.html">kslab</a>',
                                                  switch=_switch(lang, "index", other_editions), depth=1, charts=False))
    return pages, errors


def _switch(lang: str, stem: str, editions: dict[str, set[str]]) -> str:
    """The language switch: the same page in the other editions (their index when it has none)."""
    links = []
    for other, stems in editions.items():
        if other == lang:
            continue
        target = f"{stem}.html" if stem in stems or stem == "index" else "index.html"
        links.append(f'<a class="lang" hreflang="{other}" href="../{other}/{target}">{LANGUAGE_NAMES[other]}</a>')
    return f'<span class="switch">{" · ".join(links)}</span>' if links else ""


def write_static(out: Path, langs: list[str]) -> None:
    import plotly

    static = out / STATIC
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    (static / "site.css").write_text(CSS)
    items = "".join(f'<li><a hreflang="{lang}" href="{lang}/index.html">{html.escape(INDEX_TITLE[lang])} '
                    f'({LANGUAGE_NAMES[lang]})</a></li>\n' for lang in langs)
    (out / "index.html").write_text(_page_html(lang=langs[0], title="kslab", body=f'<h1 id="top">kslab</h1>\n<ul>\n{items}</ul>\n',
                                               nav="<span>kslab</span>", switch="", depth=0, charts=False))


# --- the link check -----------------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for attr in ("href", "src"):
            if a.get(attr) is not None and not (tag == "a" and attr == "src"):
                self.links.append(a[attr])


def check_links(out: Path) -> tuple[list[str], list[str]]:
    """Every link and source of every page under ``out``: internal ones must name a file that
    exists (and, with ``#anchor``, an id on that page); external ones are listed, not fetched."""
    parsed: dict[Path, _Links] = {}

    def parse(path: Path) -> _Links:
        if path not in parsed:
            p = _Links()
            p.feed(path.read_text(errors="replace"))
            parsed[path] = p
        return parsed[path]

    broken: list[str] = []
    external: set[str] = set()
    root = out.resolve()
    for page in sorted(out.rglob("*.html")):
        for link in parse(page).links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto", "ftp") or parts.netloc:
                external.add(link)
                continue
            if parts.scheme == "data":
                continue
            name = page.relative_to(out).as_posix()
            if parts.scheme or not link.strip():
                broken.append(f"{name}: {link!r} (not a link the site can resolve)")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            if root not in target.parents and target != root:
                broken.append(f"{name}: {link} (outside the site)")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{name}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
                broken.append(f"{name}: {link} (no id {parts.fragment!r} on {target.relative_to(root).as_posix()})")
    return broken, sorted(external)


# --- the whole build --------------------------------------------------------------------------------

def build_site(out: Path, langs: Iterable[str] = EDITIONS, *, execute: bool = True, chapters: Iterable[str] | None = None,
               say: Say = _say_stderr, keep_work: bool = False) -> SiteReport:
    """Build the site of ``langs`` into ``out`` (replacing it): execute on sim, render, check links."""
    langs = list(langs)
    for lang in langs:
        if lang not in EDITIONS:
            raise InputError("--lang", f"{lang!r} is not an edition", f"use one of {', '.join(EDITIONS)} or all")
    jupyter_book_command()  # a one-line error before anything is written
    out = Path(out)
    if out.exists():
        if not (out / "index.html").is_file() and any(out.iterdir()):
            raise InputError("--out", f"{out} exists and is not a kslab site", "give an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    work = out.parent / f".{out.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    report = SiteReport(out)
    try:
        staged = {lang: stage_edition(lang, work / lang, chapters) for lang in langs}
        editions = {lang: set(stems) for lang, stems in staged.items()}
        for lang in langs:
            say(f"{lang}: {'executing' if execute else 'exporting'} {len(staged[lang])} notebooks with jupyter-book (sim backend)")
            started = time.monotonic()
            problems = run_mystmd(work / lang, execute=execute, say=say)
            built = work / lang / "_build" / "site"
            pages, errors = render_edition(lang, built / "content", built / "public", out, staged[lang], other_editions=editions)
            if errors:  # mystmd's own line for a cell's exception says less than the cell's error output
                problems = [p for p in problems if "exception occurred during code execution" not in p]
            report.errors += [f"{lang}: {p}" for p in problems]
            report.pages += pages
            report.errors += errors
            say(f"{lang}: {len(pages)} pages, {sum(p.charts for p in pages)} charts, {len(errors)} cell error(s) "
                f"in {time.monotonic() - started:.0f} s")
        write_static(out, langs)
        report.broken, report.external = check_links(out)
        for line in report.errors:
            say(f"error: {line}")
        for line in report.broken:
            say(f"broken link: {line}")
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return report
