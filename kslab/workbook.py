"""Chapters from sources: ``notebooks/src/NN_topic.py`` (jupytext percent scripts) become

- ``notebooks/NN_topic.ipynb``: the learner's notebook: every cell tagged ``solution`` is replaced
  by its exercise form (the lines between ``# EXERCISE-START`` and ``# EXERCISE-END`` comments in
  the cell, or ``answer = None``), so ``kslab.check`` says "not answered yet";
- ``notebooks/solutions/NN_topic.ipynb``: the same chapter with the solutions, which must pass.

Notebooks are written without outputs and with a normalised ``python3`` kernelspec, so diffs
stay reviewable; ``python3 -m kslab.workbook --check`` fails if a generated notebook is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from . import resources
from .errors import EnvironmentProblem, KslabError

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_EXERCISE = re.compile(r"^[ \t]*# EXERCISE-START\n(.*?)^[ \t]*# EXERCISE-END\n?", re.S | re.M)


def _normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags" and v}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def exercise_source(source: str) -> str:
    """A solution cell's exercise form: its EXERCISE block (else ``answer = None``), followed by the
    cell's ``kslab.check...`` lines, so the learner gets the same instant feedback."""
    m = _EXERCISE.search(source)
    block = m.group(1).rstrip("\n") if m else "answer = None  # your answer here"
    checks = [line for line in source.splitlines() if line.lstrip().startswith("kslab.check.")]
    return "\n".join([block, *checks])


def _jupytext():
    """jupytext, a developer tool (the ``[test]`` extra): only rebuilding the notebooks needs it."""
    try:
        import jupytext
    except ModuleNotFoundError:
        raise EnvironmentProblem(
            f"python3 -m kslab.workbook needs jupytext, a developer tool; run: {sys.executable} -m pip install -e '.[test]'"
        ) from None
    return jupytext


def _checkout() -> Path:
    root = resources.checkout()
    if root is None:
        raise EnvironmentProblem(
            "python3 -m kslab.workbook rebuilds a checkout's notebooks/ from notebooks/src; run it in a clone of kslab"
        )
    return root


def build(src: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(learner notebook, solution notebook) for one chapter source."""
    jupytext = _jupytext()
    solution = _normalise(jupytext.read(src, fmt="py:percent"))
    for cell in solution.cells:  # the solution keeps its code, minus the exercise block
        if "solution" in cell.metadata.get("tags", []):
            cell.source = _EXERCISE.sub("", cell.source).strip("\n")
    learner = _normalise(jupytext.read(src, fmt="py:percent"))
    for cell in learner.cells:
        if "solution" in cell.metadata.get("tags", []):
            cell.source = exercise_source(cell.source)
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"] + ["exercise"]
    return learner, solution


def _text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def targets() -> list[tuple[Path, Path, Path]]:
    """(source, learner notebook, solution notebook) of every chapter of the checkout."""
    notebooks = _checkout() / "notebooks"
    return [(src, notebooks / f"{src.stem}.ipynb", notebooks / "solutions" / f"{src.stem}.ipynb")
            for src in sorted((notebooks / "src").glob("[0-9][0-9]_*.py"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kslab.workbook", description="generate the chapter notebooks from notebooks/src")
    ap.add_argument("--check", action="store_true", help="only check that the generated notebooks are up to date")
    args = ap.parse_args(argv)
    try:
        return _generate(check=args.check)
    except KslabError as e:
        print(f"kslab.workbook: error: {e}", file=sys.stderr)
        return e.exit_code


def _generate(check: bool) -> int:
    root = _checkout()
    chapters = targets()
    stale = []
    for src, learner_path, solution_path in chapters:
        learner, solution = build(src)
        for path, nb in ((learner_path, learner), (solution_path, solution)):
            text = _text(nb)
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(root)))
                if not check:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
    if check and stale:
        print(f"stale notebooks (run python3 -m kslab.workbook): {', '.join(stale)}", file=sys.stderr)
        return 1
    print(f"{len(chapters)} chapters, {'checked' if check else 'written'}: {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
