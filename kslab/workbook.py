"""Chapters from sources: one jupytext percent script per chapter, ``notebooks/src/NN_topic.py``,
whose markdown cells carry both languages (code cells are shared), becomes four notebooks, two
per edition (``resources.EDITIONS``: ``ko``, ``en``):

- ``notebooks/<lang>/NN_topic.ipynb``: the learner's notebook: every cell tagged ``solution`` is
  replaced by its exercise form (the lines between ``# EXERCISE-START`` and ``# EXERCISE-END``
  comments in the cell, or ``answer = None``), so ``kslab.check`` says "not answered yet";
- ``notebooks/<lang>/solutions/NN_topic.ipynb``: the same chapter with the solutions, which must pass;
- ``notebooks/<lang>/present/NN_topic.ipynb``: presenter mode's page (``kslab present NN``), for the
  chapters ``notebooks/src/present.toml`` names (:mod:`kslab.presenter`).

The bilingual convention (docs/writing-chapters.md): every markdown cell names its language in
its header, ``# %% [markdown] lang="ko"`` or ``lang="en"`` (``lang="any"``: a cell without words,
in both editions). Each run of markdown cells between two code cells holds as many ``ko`` cells
as ``en`` cells, so the two editions have the same cells in the same places. A markdown cell
without a language, or a run missing a translation, is an error naming the source line.

Notebooks are written without outputs and with a normalised ``python3`` kernelspec, so diffs
stay reviewable; ``python3 -m kslab.workbook --check`` fails if a generated notebook is stale or
a chapter notebook is no longer generated (the generator deletes those).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import presenter, resources
from .errors import EnvironmentProblem, InputError, KslabError

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ANY = "any"  # lang="any": a markdown cell that is in both editions (no words to translate)
LANG_FIX = f'start the cell with # %% [markdown] lang="ko" or lang="en" (lang="{ANY}" for a cell without words)'
_EXERCISE = re.compile(r"^[ \t]*# EXERCISE-START\n(.*?)^[ \t]*# EXERCISE-END\n?", re.S | re.M)
_CELL_MARKER = re.compile(r"^# %%")
_CHAPTER = "[0-9][0-9]_*.ipynb"
HINT = "hint"  # a markdown cell's hint="ch02.list_size": that exercise's hints, kept out of the notebooks
_CHECK_CALL = re.compile(r"kslab\.check\.(ch\d\d)\.(\w+)\(")
_HINT_ITEM = re.compile(r"^\d+\.\s+", re.M)
MAX_HINTS = 3


@dataclass(frozen=True)
class Target:
    """One edition of one chapter: its source and the two notebooks generated from it."""

    src: Path
    lang: str
    learner: Path
    solution: Path


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


def _display(src: Path) -> str:
    root = resources.checkout()
    try:
        return src.resolve().relative_to(root).as_posix() if root else str(src)
    except ValueError:
        return str(src)


def _cell_lines(src: Path, text: str, cells: int) -> list[str]:
    """Where each cell starts, for error messages: ``path:line`` (``path, cell N`` if the source
    has cells without a ``# %%`` header, which jupytext allows before the first one)."""
    name = _display(src)
    lines = [i for i, line in enumerate(text.splitlines(), 1) if _CELL_MARKER.match(line)]
    if len(lines) == cells:
        return [f"{name}:{n}" for n in lines]
    return [f"{name}, cell {i + 1}" for i in range(cells)]


def cell_languages(src: Path, nb: nbformat.NotebookNode, text: str) -> list[str | None]:
    """Each cell's language (``ko``, ``en``, ``any``; None for a code cell), after checking the
    bilingual convention: raises a one-line InputError at the first cell that breaks it."""
    where = _cell_lines(src, text, len(nb.cells))
    allowed = (*resources.EDITIONS, ANY)
    langs: list[str | None] = []
    for i, cell in enumerate(nb.cells):
        lang = cell.metadata.get("lang")
        bad = cell.metadata.get("incorrectly_encoded_metadata", "")
        if "lang" in bad:
            raise InputError(where[i], f"cell header option {bad!r} is not valid jupytext metadata", 'quote the value: lang="ko"')
        if cell.cell_type != "markdown":
            if lang is not None:
                raise InputError(where[i], f"a {cell.cell_type} cell has lang={lang!r}; code is shared by both editions",
                                 "drop lang= (only markdown cells have a language)")
            langs.append(None)
            continue
        if lang is None:
            raise InputError(where[i], "markdown cell without a language", LANG_FIX)
        if lang not in allowed:
            raise InputError(where[i], f"lang={lang!r} is not an edition", f"use one of {', '.join(allowed)}")
        langs.append(lang)
    # each run of markdown cells between code cells: as many ko cells as en cells
    start = 0
    while start < len(nb.cells):
        end = start
        while end < len(nb.cells) and langs[end] is not None:
            end += 1
        run = langs[start:end]
        counts = {lang: run.count(lang) + run.count(ANY) for lang in resources.EDITIONS}
        if len(set(counts.values())) > 1:
            parts = " and ".join(f"{n} {lang}" for lang, n in counts.items())
            raise InputError(where[start], f"these {len(run)} markdown cells have {parts} parts",
                             "add the missing translation: every run of markdown cells between two code cells "
                             "needs as many lang=\"ko\" cells as lang=\"en\" cells")
        start = end + 1 if end > start else start + 1
    return langs


def build(src: Path, lang: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(learner notebook, solution notebook) of one chapter source in one edition."""
    if lang not in resources.EDITIONS:
        raise InputError("lang", f"{lang!r} is not an edition of the workbook", f"use one of {', '.join(resources.EDITIONS)}")
    jupytext = _jupytext()
    text = src.read_text(encoding="utf-8")
    source = jupytext.reads(text, fmt="py:percent")
    langs = cell_languages(src, source, text)
    source.cells = [c for c, cell_lang in zip(source.cells, langs)
                    if cell_lang in (None, lang, ANY) and HINT not in c.metadata]  # hints go to hints.json
    solution = _normalise(nbformat.from_dict(source))
    for cell in solution.cells:  # the solution keeps its code, minus the exercise block
        if "solution" in cell.metadata.get("tags", []):
            cell.source = _EXERCISE.sub("", cell.source).strip("\n")
    learner = _normalise(nbformat.from_dict(source))
    for cell in learner.cells:
        if "solution" in cell.metadata.get("tags", []):
            cell.source = exercise_source(cell.source)
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"] + ["exercise"]
    return learner, solution


def _text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def sources() -> list[Path]:
    """The chapter sources of the checkout, in chapter order."""
    return sorted((_checkout() / "notebooks" / "src").glob("[0-9][0-9]_*.py"))


def targets() -> list[Target]:
    """Every edition of every chapter of the checkout: chapter by chapter, editions in
    ``resources.EDITIONS`` order."""
    notebooks = _checkout() / "notebooks"
    return [Target(src, lang, notebooks / lang / f"{src.stem}.ipynb", notebooks / lang / "solutions" / f"{src.stem}.ipynb")
            for src in sources() for lang in resources.EDITIONS]


def orphans(wanted: set[Path]) -> list[Path]:
    """Chapter notebooks in the generated places (``notebooks/``, ``notebooks/solutions/``, each
    edition's folder and its ``solutions/``) that no source generates any more: a renamed
    chapter, or the single-edition layout before the editions. Other notebooks are left alone."""
    notebooks = _checkout() / "notebooks"
    places = [notebooks, notebooks / "solutions"]
    places += [notebooks / lang / sub for lang in resources.EDITIONS for sub in ("", "solutions", presenter.FOLDER)]
    return sorted(p for place in places for p in place.glob(_CHAPTER) if p not in wanted)


def exercises_and_hints(src: Path, lang: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A chapter's exercises (id ``chNN.function`` -> the solution code: the solution cell's lines
    after ``# EXERCISE-END``) and their hints in ``lang`` (id -> the items of the numbered list in
    its ``# %% [markdown] lang="..." hint="chNN.function"`` cell), in source order."""
    jupytext = _jupytext()
    text = src.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    where = _cell_lines(src, text, len(nb.cells))
    exercises: dict[str, str] = {}
    hints: dict[str, list[str]] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            code = cell.source.split("# EXERCISE-END", 1)[-1].strip("\n")
            for chapter, name in _CHECK_CALL.findall(cell.source):
                exercises[f"{chapter}.{name}"] = code
        elif cell.cell_type == "markdown" and HINT in cell.metadata:
            if cell.metadata.get("lang") != lang:
                continue
            items = [" ".join(part.split()) for part in _HINT_ITEM.split(cell.source)[1:]]
            if not 1 <= len(items) <= MAX_HINTS or not all(items):
                raise InputError(where[i], f"hint cell of {cell.metadata[HINT]} has {len(items)} hints",
                                 f"write 1 to {MAX_HINTS} hints as a numbered list (1. ... 2. ...)")
            hints[cell.metadata[HINT]] = items
    for ex in hints:
        if ex not in exercises:
            raise InputError(_display(src), f"hints for {ex}, which no solution cell of this chapter checks",
                             'name the exercise as in its check call: hint="chNN.function"')
    return exercises, hints


def catalogue_outputs(chapters: list[Path]) -> list[tuple[Path, str]]:
    """``notebooks/<lang>/exercises.json`` and ``hints.json`` of every edition (the catalogue
    ``kslab.progress`` and ``kslab progress`` read); every exercise needs as many hints in each edition."""
    notebooks = _checkout() / "notebooks"
    per_lang = {}
    for lang in resources.EDITIONS:
        exercises: dict[str, str] = {}
        hints: dict[str, list[str]] = {}
        for src in chapters:
            ex, hi = exercises_and_hints(src, lang)
            exercises.update(ex)
            hints.update(hi)
        per_lang[lang] = (exercises, hints)
    counts = {lang: {ex: len(h.get(ex, [])) for ex in e} for lang, (e, h) in per_lang.items()}
    for ex in per_lang[resources.EDITIONS[0]][0]:
        n = {lang: c[ex] for lang, c in counts.items()}
        if 0 in n.values() or len(set(n.values())) > 1:
            raise InputError(ex, "needs hints in every edition, as many in each: " + ", ".join(f"{v} {k}" for k, v in n.items()),
                             f'add a # %% [markdown] lang="..." {HINT}="{ex}" cell per edition before its solution cell')
    out = []
    for lang, (exercises, hints) in per_lang.items():
        for name, data in (("exercises.json", exercises), ("hints.json", hints)):
            out.append((notebooks / lang / name, json.dumps(data, indent=1, ensure_ascii=False) + "\n"))
    return out


EXTRA_OUTPUTS = [catalogue_outputs]  # (chapter sources) -> [(path, text)]: generated beside the notebooks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kslab.workbook",
                                 description="generate both editions (ko, en) of the chapter notebooks from notebooks/src")
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
    writes: list[tuple[Path, str]] = []
    present = presenter.load_spec(root / "notebooks" / "src")
    unknown = sorted(set(present) - {t.src.name[:2] for t in chapters})
    if unknown:
        raise InputError(f"notebooks/src/{presenter.SPEC}", f"no chapter source for [chapters.{unknown[0]}]",
                         "remove the entry, or add the chapter's notebooks/src/NN_topic.py")
    for t in chapters:  # everything is built (and checked) before anything is written
        learner, solution = build(t.src, t.lang)
        writes += [(t.learner, _text(learner)), (t.solution, _text(solution))]
        if t.src.name[:2] in present:  # the hook for extra outputs: presenter mode's page of the chapter
            page = _normalise(presenter.build(t.src, t.lang, solution, present[t.src.name[:2]]))
            writes.append((t.learner.parent / presenter.FOLDER / t.learner.name, _text(page)))
    notebooks_written = len(writes)
    for extra_output in EXTRA_OUTPUTS:  # other generated files (written and checked like the notebooks)
        writes += extra_output(sources())
    stale = [path for path, text in writes if not path.exists() or path.read_text(encoding="utf-8") != text]
    extra = orphans({path for path, _ in writes})
    if check:
        problems = [f"stale: {', '.join(str(p.relative_to(root)) for p in stale)}"] if stale else []
        if extra:
            problems.append(f"no longer generated: {', '.join(str(p.relative_to(root)) for p in extra)}")
        if problems:
            print(f"notebooks out of date (run python3 -m kslab.workbook): {'; '.join(problems)}", file=sys.stderr)
            return 1
    else:
        for path, text in writes:
            if path in stale:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        for path in extra:
            path.unlink()
        for folder in {p.parent for p in extra}:
            if folder != root / "notebooks" and not any(folder.iterdir()):
                folder.rmdir()
    sources_ = len({t.src for t in chapters})
    others = {path for path, _ in writes[notebooks_written:]}  # the EXTRA_OUTPUTS files, counted apart
    changed = [p for p in stale if p not in others]
    print(f"{sources_} chapters x {len(resources.EDITIONS)} editions, {'checked' if check else 'written'}: "
          f"{len(changed)} changed, {len(extra)} removed"
          + (f"; {len(stale) - len(changed)} other generated files changed" if len(stale) > len(changed) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
