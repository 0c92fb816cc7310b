"""Chapter 02 reruns in any order: after its set-up cell, every code cell of the solution
notebook runs reversed and shuffled without a claim failing (each experiment cell patches the
Service as it needs it; checks and panels work on copies)."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import plotly.graph_objects as go

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "en" / "solutions" / "02_session_affinity.ipynb"


def test_chapter_02_cells_rerun_in_any_order(monkeypatch):
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: None)
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    rest = list(range(1, len(cells)))
    shuffled = rest[:]
    random.Random(2).shuffle(shuffled)
    for order in ([0, *rest[::-1]], [0, *shuffled, *shuffled[:3]]):
        ns: dict = {}
        for i in order:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(compile(cells[i], f"cell {i}", "exec"), ns)
                except Exception as e:  # noqa: BLE001 - name the cell and the order
                    raise AssertionError(f"cell {i} failed in the order {order}: {e}") from e
