"""Presenter mode: each chapter's main panels and charts on one page, served by Voila with the code
hidden (``kslab present NN``).

Which cells a chapter's presenter notebook runs is declared in ONE place, ``notebooks/src/present.toml``:
per chapter, a list of texts, each occurring in exactly one code cell of the chapter source (the
setup cell first, then the cells that draw the panels and charts), in chapter order. The workbook
generator (``python3 -m kslab.workbook``) builds ``notebooks/<lang>/present/NN_topic.ipynb`` from
each edition's solution notebook: a title cell (the chapter's heading in that language and a line
saying what the page is) and the chosen cells, as the solution has them. A chapter without an entry
has no presenter notebook; an entry matching no cell, or several, is a one-line error.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import webbrowser
from pathlib import Path
from typing import Callable

import nbformat

from .errors import EnvironmentProblem, InputError

SPEC = "present.toml"  # in notebooks/src, beside the chapter sources
FOLDER = "present"  # notebooks/<lang>/present/NN_topic.ipynb
NOTE = {
    "en": "*Presenter mode* (`kslab present {nn}`): this chapter's panels and charts, code hidden. "
          "The full chapter, with its explanations and exercises, is `en/{stem}.ipynb`.",
    "ko": "*발표 모드* (`kslab present {nn}`): 이 장의 패널과 차트만 코드 없이 보여 줍니다. "
          "설명과 연습 문제가 있는 장 전체는 `ko/{stem}.ipynb`입니다.",
}


def load_spec(src_dir: Path) -> dict[str, list[str]]:
    """``present.toml``: chapter number (``"07"``) -> the texts that pick its cells. No file: no
    presenter notebooks. A malformed entry is a one-line error naming the file and the chapter."""
    path = src_dir / SPEC
    if not path.is_file():
        return {}
    where = f"notebooks/src/{SPEC}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(where, f"not valid TOML: {e}", "fix the syntax (see docs/writing-chapters.md, Presenter mode)") from None
    chapters = data.get("chapters", {})
    spec: dict[str, list[str]] = {}
    for nn, entry in chapters.items():
        cells = entry.get("cells") if isinstance(entry, dict) else None
        if not (len(nn) == 2 and nn.isdigit()) or not isinstance(cells, list) or not cells \
                or not all(isinstance(c, str) and c for c in cells):
            raise InputError(f"{where} [chapters.{nn}]", "needs a two-digit chapter and cells = a non-empty list of texts",
                             'write e.g. [chapters.07] cells = ["import base64", "TrafficPolicyPanel("]')
        spec[nn] = cells
    return spec


def build(src: Path, lang: str, solution: nbformat.NotebookNode, picks: list[str]) -> nbformat.NotebookNode:
    """The presenter notebook of one chapter edition: a title cell, then the code cells of
    ``solution`` that ``picks`` name (each text must occur in exactly one code cell), in order."""
    code = [c for c in solution.cells if c.cell_type == "code"]
    chosen: list[int] = []
    for text in picks:
        hits = [i for i, c in enumerate(code) if text in c.source]
        if len(hits) != 1:
            problem = "occurs in no code cell" if not hits else f"occurs in {len(hits)} code cells"
            raise InputError(f"notebooks/src/{SPEC} [chapters.{src.name[:2]}]", f"{text!r} {problem} of {src.name}",
                             "give a text that occurs in exactly one code cell")
        chosen.append(hits[0])
    if chosen != sorted(set(chosen)):
        raise InputError(f"notebooks/src/{SPEC} [chapters.{src.name[:2]}]", f"the cells of {src.name} are not in chapter order",
                         "list them in the order the chapter runs them")
    heading = next((line for c in solution.cells if c.cell_type == "markdown"
                    for line in c.source.splitlines() if line.startswith("# ")), f"# {src.stem}")
    title = nbformat.v4.new_markdown_cell(f"{heading}\n\n{NOTE[lang].format(nn=src.name[:2], stem=src.stem)}")
    cells = [title]
    for i in chosen:
        cell = nbformat.v4.new_code_cell(code[i].source)
        cells.append(cell)
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb


def chapter_path(folder: Path, chapter: str) -> Path | None:
    """The presenter notebook of ``chapter`` (``"07"`` or ``"7"``) in an edition's ``present/`` folder, or None."""
    nn = chapter.zfill(2) if chapter.isdigit() else chapter
    hits = sorted(folder.glob(f"{nn}_*.ipynb")) if len(nn) == 2 and nn.isdigit() else []
    return hits[0] if hits else None


def chapters(folder: Path) -> list[str]:
    """The chapters with a presenter notebook in an edition's ``present/`` folder: ``["00", ...]``."""
    return sorted(p.name[:2] for p in folder.glob("[0-9][0-9]_*.ipynb"))


def _free_port(first: int = 8866, tries: int = 100) -> int:
    for port in range(first, first + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise EnvironmentProblem(f"kslab present: no free port in {first}-{first + tries - 1}; give one with --port")


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def voila_command(notebook: Path, port: int) -> list[str]:
    """How ``kslab present`` starts Voila: on loopback, sources stripped, no browser of its own."""
    return [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0", "--strip_sources=True", "--Voila.log_level=WARN", str(notebook)]


def serve(chapter: str, *, lang: str, port: int | None, browser: bool, backend: str | None,
          folder: Callable[[], Path], ready_timeout: float = 120.0) -> int:
    """``kslab present NN``: Voila on the presenter page of ``chapter`` in edition ``lang`` (the
    folder ``folder()`` returns: the checkout's or the working copy's), until Ctrl-C."""
    if importlib.util.find_spec("voila") is None:
        raise EnvironmentProblem(f"kslab present: Voila is not installed in {sys.executable}; run: pip install -e '.[present]' "
                                 f"(in a checkout; else {sys.executable} -m pip install 'voila>=0.5')")
    if port is not None and not 0 < port < 65536:
        raise InputError("--port", f"{port} is not a TCP port", "give a port from 1 to 65535, or leave --port out")
    present = folder() / FOLDER
    notebook = chapter_path(present, chapter)
    if notebook is None:
        have = chapters(present)
        raise InputError("NN", f"{chapter!r} is not a chapter with a presenter page",
                         f"use one of {', '.join(have) if have else '(none: run python3 -m kslab.workbook)'}")
    port = port or _free_port()
    env = dict(os.environ, KSLAB_BACKEND=backend or os.environ.get("KSLAB_BACKEND") or "sim")
    cmd = voila_command(notebook, port)
    url = f"http://127.0.0.1:{port}/"
    print(f"kslab: presenting {notebook.parent.parent.name}/{FOLDER}/{notebook.name} on the {env['KSLAB_BACKEND']} backend: "
          f"KSLAB_BACKEND={env['KSLAB_BACKEND']} {shlex.join(cmd)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    # its own session: Ctrl-C reaches kslab only, which stops Voila (no question from the server)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        while not _accepting(port):
            if proc.poll() is not None:
                raise EnvironmentProblem(f"kslab present: Voila exited with status {proc.returncode} before serving "
                                         f"(see its message above); is port {port} taken? try --port")
            if time.monotonic() - started > ready_timeout:
                raise EnvironmentProblem(f"kslab present: Voila did not serve on port {port} within {ready_timeout:.0f} s")
            time.sleep(0.2)
        print(f"kslab: presenter mode for chapter {notebook.name[:2]} at {url} (ready in {time.monotonic() - started:.1f} s; "
              "Ctrl-C stops it)", flush=True)
        if browser:
            webbrowser.open(url)
        return proc.wait()
    except KeyboardInterrupt:
        print("kslab: stopping presenter mode", file=sys.stderr, flush=True)
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
