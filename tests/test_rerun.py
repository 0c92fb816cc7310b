"""Every chapter reruns in any order: after its set-up cell, every code cell of the solution
notebook runs reversed, and in two shuffled orders (fixed seeds; three cells then run a second
time), without a claim or a check
failing (each experiment cell makes the lab state it needs; checks and panels work on copies).

The English solution notebooks suffice: both editions share their code cells (see
tests/test_workbook.py). Each order runs in a fresh namespace, no kernel, on the default backend
(sim)."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import plotly.graph_objects as go
import pytest

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "en" / "solutions"
NOTEBOOKS = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
SETUP = 1  # the first code cell makes the lab and imports what the chapter uses
SEEDS = (2, 7)


def _param(path: Path):
    return pytest.param(path, id=path.stem)


def _orders(n: int) -> list[tuple[str, list[int]]]:
    rest = list(range(SETUP, n))
    orders = [("reversed", [*range(SETUP), *rest[::-1]])]
    for seed in SEEDS:
        shuffled = rest[:]
        random.Random(seed).shuffle(shuffled)
        orders.append((f"shuffled (seed {seed})", [*range(SETUP), *shuffled, *shuffled[:3]]))  # then three again
    return orders


def test_every_chapter_has_a_solution_notebook():
    """One solution notebook per chapter source (the course's numbering has gaps while chapters are
    written: 05 comes after 06-07), so this test reruns every chapter there is."""
    sources = sorted(p.stem for p in (SOLUTIONS.parents[1] / "src").glob("[0-9][0-9]_*.py"))
    assert [p.stem for p in NOTEBOOKS] == sources and len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("notebook", [_param(p) for p in NOTEBOOKS])
def test_solution_cells_rerun_in_any_order(notebook, monkeypatch):
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: None)
    cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    assert len(cells) > SETUP + 2
    for name, order in _orders(len(cells)):
        ns: dict = {"__name__": "__main__"}
        for i in order:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(compile(cells[i], f"{notebook.stem} cell {i}", "exec"), ns)
                except Exception as e:  # noqa: BLE001 - name the chapter, the cell and the order
                    raise AssertionError(f"{notebook.stem}: cell {i} failed in the {name} order {order}: "
                                         f"{type(e).__name__}: {e}") from e
