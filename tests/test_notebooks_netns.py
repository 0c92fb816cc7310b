"""Every notebook of both editions (learner and solution versions) under nbval on the netns
backend: the same chapter code, real kernel, real TCP. The sim run is the plain nbval collection
of ``notebooks/`` (both editions) in the same pytest command (pyproject's testpaths); this test
re-runs each edition's notebooks in a subprocess with ``KSLAB_BACKEND=netns``, one test per
edition. The editions share every code cell (tests/test_workbook.py proves it), so the second
run proves that the English notebooks, as generated and shipped, run on the kernel too. Needs
root (skips without)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kslab.netns.records import lab_namespaces

ROOT = Path(__file__).resolve().parents[1]
EDITIONS = ("ko", "en")  # the study group's edition first
CHAPTERS = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


def notebooks(edition: str) -> list[Path]:
    folder = ROOT / "notebooks" / edition
    return sorted(folder.glob("*.ipynb")) + sorted((folder / "solutions").glob("*.ipynb"))


@pytest.mark.netns
@pytest.mark.parametrize("edition", EDITIONS)
def test_every_notebook_of_an_edition_passes_nbval_on_netns(tmp_path, edition):
    books = notebooks(edition)
    assert len(CHAPTERS) >= 7 and len(books) == 2 * len(CHAPTERS)
    before = set(lab_namespaces("kslab-"))
    env = dict(os.environ, KSLAB_BACKEND="netns", KSLAB_STRICT_BACKEND="1")  # no silent fallback to sim
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-o", "addopts=", "-o", "testpaths=", "--rootdir", str(ROOT), *map(str, books)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-40:])
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout
    # nbval kills each kernel (SIGKILL: no atexit), so a notebook's lab outlives it as a crashed
    # lab; the next lab's up() removes it, and `kslab netns down` removes the last one
    down = subprocess.run([sys.executable, "-m", "kslab.cli", "netns", "down"], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert set(lab_namespaces("kslab-")) <= before, "kslab netns down left a notebook's lab behind"
