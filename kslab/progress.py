"""Self-paced progress: what a learner did with each exercise, kept in a small JSON file in the
learner's working copy of the workbook (no server).

The file is ``.kslab-progress.json`` at the working copy's root: the folder holding the editions'
folders (``ko/``, ``en/``) that ``kslab lab`` copies, or the checkout's root in a checkout (git ignores it).
``$KSLAB_PROGRESS`` names another file (the test suite points it at a temporary file).

Each exercise is named ``chNN.function`` (``ch02.list_size``: the check's chapter namespace in
:mod:`kslab.check` and the function's name) and records its attempts (answered checks), wrong
answers, whether and when it was solved, the hints seen and whether the solution was shown.
:mod:`kslab.check` records every check; :func:`hint` and :func:`solution` (re-exported as
``kslab.check.hint`` and ``kslab.check.solution``) give hints first, then the solution once the
learner has tried and seen every hint. The catalogue of exercises (``notebooks/<lang>/exercises.json``)
and their hints (``notebooks/<lang>/hints.json``) are generated from the chapter sources by
:mod:`kslab.workbook`.

Writes are atomic (a temporary file renamed over the old one); a corrupt file is kept as
``.bak`` with a one-line warning, and progress starts afresh.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from . import resources
from .resources import WORKBOOK_COPY
from .errors import InputError

FILENAME = ".kslab-progress.json"
ENV = "KSLAB_PROGRESS"  # a file that overrides the working copy's
LANG_ENV = "KSLAB_LANG"  # the edition whose hints are shown, when the notebook's folder does not say
VERSION = 1


@dataclass
class ExerciseRecord:
    """One exercise's history."""

    attempts: int = 0  # answered checks (right or wrong); an unanswered one (None) is not an attempt
    wrong: int = 0
    solved: bool = False
    solved_at: str | None = None  # UTC, ISO 8601, the first right answer
    hints_seen: int = 0  # hints are shown in order: the first ``hints_seen`` of them
    solution_revealed: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExerciseRecord":
        known = {f.name for f in fields(cls)}
        rec = cls(**{k: v for k, v in data.items() if k in known})
        if not (isinstance(rec.attempts, int) and isinstance(rec.wrong, int) and isinstance(rec.hints_seen, int)
                and isinstance(rec.solved, bool) and isinstance(rec.solution_revealed, bool)):
            raise ValueError(f"bad field types in {dict(data)!r}")
        return rec


@dataclass
class Progress:
    """Every exercise's record, by exercise id (``ch02.list_size``)."""

    exercises: dict[str, ExerciseRecord] = field(default_factory=dict)
    version: int = VERSION

    def record(self, exercise: str) -> ExerciseRecord:
        return self.exercises.setdefault(exercise, ExerciseRecord())

    def to_json(self) -> str:
        data = {"version": self.version, "exercises": {k: asdict(v) for k, v in sorted(self.exercises.items())}}
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Progress":
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("exercises"), dict):
            raise ValueError("not a kslab progress file (no 'exercises' object)")
        return cls({str(k): ExerciseRecord.from_dict(v) for k, v in data["exercises"].items()},
                   int(data.get("version", VERSION)))


# ---- where ------------------------------------------------------------------------------------


def _edition_folder(start: Path) -> Path | None:
    """The edition folder (``.../ko`` or ``.../en``) that ``start`` is in, if any."""
    for p in (start, *start.parents):
        if p.name in resources.EDITIONS and (any(p.glob("*.ipynb")) or (p / "solutions").is_dir()):
            return p
    return None


def workbook_root(start: Path | None = None) -> Path:
    """The working copy's root for a notebook running in ``start`` (default: the current folder):
    the parent of its edition folder (in a checkout: the checkout itself, not ``notebooks/``, which
    the wheel carries); else ``./kslab-workbook`` if there is one (where ``kslab lab`` was run);
    else a checkout's root; else ``start``."""
    start = (start or Path.cwd()).resolve()
    root = resources.checkout()
    edition = _edition_folder(start)
    if edition is not None:
        if root is not None and edition.parent == root / "notebooks":
            return root  # a checkout is its own working copy (and notebooks/ goes into the wheel)
        return edition.parent
    if (start / WORKBOOK_COPY).is_dir():
        return start / WORKBOOK_COPY
    return root if root is not None else start


def progress_path(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The progress file: ``$KSLAB_PROGRESS`` if set, else ``.kslab-progress.json`` at :func:`workbook_root`."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV):
        return Path(environ[ENV]).expanduser()
    return workbook_root(start) / FILENAME


def current_lang(lang: str | None = None, start: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The edition whose words to show: ``lang`` if given, else the notebook's folder
    (``.../ko/...``), else ``$KSLAB_LANG``, else the locale's (:func:`resources.edition_for_locale`)."""
    environ = os.environ if environ is None else environ
    if lang is not None:
        if lang not in resources.EDITIONS:
            raise InputError("lang", f"{lang!r} is not an edition of the workbook", f"use one of {', '.join(resources.EDITIONS)}")
        return lang
    edition = _edition_folder((start or Path.cwd()).resolve())
    if edition is not None:
        return edition.name
    if environ.get(LANG_ENV) in resources.EDITIONS:
        return environ[LANG_ENV]
    return resources.edition_for_locale(environ)


def _warn(message: str) -> None:
    print(f"kslab: warning: {' '.join(message.split())}", file=sys.stderr)


def load(path: Path | None = None) -> Progress:
    """The progress in ``path`` (default :func:`progress_path`); an empty one if there is no file.
    A corrupt file is moved to ``<file>.bak`` with a one-line warning."""
    path = path or progress_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Progress()
    try:
        return Progress.from_json(text)
    except (ValueError, TypeError) as e:
        bak = path.with_name(path.name + ".bak")
        os.replace(path, bak)
        _warn(f"{path} was not a readable progress file ({e}); kept it as {bak.name} and started afresh")
        return Progress()


def save(progress: Progress, path: Path | None = None) -> Path:
    """Write ``progress`` atomically (a temporary file in the same folder, renamed over ``path``)."""
    path = path or progress_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(progress.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def record_check(exercise: str, outcome: str, path: Path | None = None) -> ExerciseRecord:
    """Record one answered check of ``exercise``: ``outcome`` is ``"right"`` or ``"wrong"``."""
    if outcome not in ("right", "wrong"):
        raise InputError("outcome", f"{outcome!r} is not an outcome", "use 'right' or 'wrong'")
    progress = load(path)
    rec = progress.record(exercise)
    rec.attempts += 1
    if outcome == "wrong":
        rec.wrong += 1
    elif not rec.solved:
        rec.solved, rec.solved_at = True, _now()
    save(progress, path)
    return rec


def reset(path: Path | None = None) -> Path:
    """Forget everything: removes the progress file. Returns its path."""
    path = path or progress_path()
    path.unlink(missing_ok=True)
    return path


# ---- the catalogue (generated by kslab.workbook) ---------------------------------------------


def _catalogue_file(lang: str, name: str) -> dict:
    path = resources.notebooks() / lang / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        from .errors import EnvironmentProblem

        raise EnvironmentProblem(f"the workbook's {lang}/{name} is missing ({path}); in a checkout run: python3 -m kslab.workbook") from None


def catalogue(lang: str = "en") -> dict[str, str]:
    """Every exercise of the workbook, in chapter order: id -> its solution code (``exercises.json``)."""
    return _catalogue_file(lang, "exercises.json")


def hints(lang: str = "en") -> dict[str, list[str]]:
    """Every exercise's hints, in the order they are shown (``hints.json``)."""
    return _catalogue_file(lang, "hints.json")


def chapter_of(exercise: str) -> str:
    return exercise.split(".", 1)[0]


def _known(exercise: Any, ids: list[str]) -> str:
    name = str(exercise).strip()
    if name in ids:
        return name
    close = difflib.get_close_matches(name, ids, n=3, cutoff=0.5)
    fix = f"did you mean {' or '.join(close)}?" if close else "names look like ch02.list_size (chapter + check function)"
    raise InputError("exercise", f"{name!r} is not an exercise of the workbook", fix)


# ---- hints, then the solution -------------------------------------------------------------------

_WORDS = {
    "en": {
        "hint": "Hint {i}/{n} for {ex}: {text}",
        "none_left": "No hints left for {ex} (you have seen all {n}); after you have tried, kslab.check.solution(\"{ex}\") shows the solution.",
        "locked": "The solution of {ex} is locked; still needed: {needs}.",
        "need_try": "check an answer of your own (run the exercise cell with your answer)",
        "need_hints": "{k} more hint{s} (kslab.check.hint(\"{ex}\"))",
        "solution": "Solution of {ex}:",
    },
    "ko": {
        "hint": "{ex} 힌트 {i}/{n}: {text}",
        "none_left": "{ex}의 힌트를 모두({n}개) 보았습니다. 답을 시도한 뒤에는 kslab.check.solution(\"{ex}\")로 풀이를 볼 수 있습니다.",
        "locked": "{ex}의 풀이는 아직 잠겨 있습니다. 남은 조건: {needs}.",
        "need_try": "직접 답을 한 번 확인하기(연습 문제 셀에 답을 넣고 실행)",
        "need_hints": "힌트 {k}개 더 보기(kslab.check.hint(\"{ex}\"))",
        "solution": "{ex} 풀이:",
    },
}


def _print_warning_safe(fn, *args):
    """Run a progress update; an I/O problem is one warning line, never an error."""
    try:
        return fn(*args)
    except OSError as e:
        _warn(f"could not save your progress ({e})")
        return None


def hint(exercise: str, lang: str | None = None) -> str:
    """Print (and return) the next hint of ``exercise`` that the learner has not seen, in the
    notebook's language; once all are seen, say so."""
    lang = current_lang(lang)
    all_hints = hints(lang)
    try:
        ex = _known(exercise, list(all_hints))
    except InputError as e:  # one line in the notebook, not a traceback
        print(f"kslab: error: {e}")
        return str(e)
    words = _WORDS[lang]
    items = all_hints[ex]
    progress = load()
    rec = progress.record(ex)
    if rec.hints_seen >= len(items):
        message = words["none_left"].format(ex=ex, n=len(items))
    else:
        message = words["hint"].format(ex=ex, i=rec.hints_seen + 1, n=len(items), text=items[rec.hints_seen])
        rec.hints_seen += 1
        _print_warning_safe(save, progress)
    print(message)
    return message


def missing_for_solution(exercise: str, rec: ExerciseRecord, n_hints: int, lang: str) -> list[str]:
    """What the learner still has to do before the solution of ``exercise`` is shown (nothing: [])."""
    words = _WORDS[lang]
    needs = []
    if rec.attempts < 1:
        needs.append(words["need_try"])
    left = n_hints - rec.hints_seen
    if left > 0:
        needs.append(words["need_hints"].format(k=left, s="s" * (left != 1), ex=exercise))
    return needs


def solution(exercise: str, lang: str | None = None) -> str:
    """Print (and return) the solution code of ``exercise``, once the learner has tried it (one
    answered check) and seen every hint; otherwise say exactly what is still needed."""
    lang = current_lang(lang)
    solutions = catalogue(lang)
    try:
        ex = _known(exercise, list(solutions))
    except InputError as e:  # one line in the notebook, not a traceback
        print(f"kslab: error: {e}")
        return str(e)
    words = _WORDS[lang]
    progress = load()
    rec = progress.record(ex)
    needs = missing_for_solution(ex, rec, len(hints(lang).get(ex, [])), lang)
    if needs:
        message = words["locked"].format(ex=ex, needs="; ".join(needs))
    else:
        message = f"{words['solution'].format(ex=ex)}\n{solutions[ex]}"
        if not rec.solution_revealed:
            rec.solution_revealed = True
            _print_warning_safe(save, progress)
    print(message)
    return message


# ---- the progress page -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChapterRow:
    chapter: str
    solved: int
    total: int
    attempts: int
    hints_used: int
    solutions_shown: int


def summary(progress: Progress | None = None, lang: str = "en") -> list[ChapterRow]:
    """One row per chapter of the catalogue (totals from the catalogue, not from what was recorded)."""
    progress = load() if progress is None else progress
    by_chapter: dict[str, list[str]] = {}
    for ex in catalogue(lang):
        by_chapter.setdefault(chapter_of(ex), []).append(ex)
    rows = []
    for chapter, exercises in by_chapter.items():
        recs = [progress.exercises.get(ex, ExerciseRecord()) for ex in exercises]
        rows.append(ChapterRow(chapter, sum(r.solved for r in recs), len(exercises), sum(r.attempts for r in recs),
                               sum(r.hints_seen for r in recs), sum(r.solution_revealed for r in recs)))
    return rows


def table(rows: list[ChapterRow]):
    """The rows as a pandas DataFrame (one row per chapter, plus the total)."""
    import pandas as pd

    df = pd.DataFrame([asdict(r) for r in rows])
    total = {"chapter": "total", **{c: int(df[c].sum()) for c in df.columns if c != "chapter"}}
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def figure(rows: list[ChapterRow], lang: str = "en"):
    """A plotly bar chart: exercises solved and left, per chapter."""
    import plotly.graph_objects as go

    ko = lang == "ko"
    chapters = [r.chapter for r in rows]
    fig = go.Figure([
        go.Bar(name="풀었음" if ko else "solved", x=chapters, y=[r.solved for r in rows], marker_color="#2ca02c"),
        go.Bar(name="남음" if ko else "left", x=chapters, y=[r.total - r.solved for r in rows], marker_color="#d3d3d3"),
    ])
    fig.update_layout(barmode="stack", title="장별 진도" if ko else "Your progress, per chapter",
                      yaxis_title="연습 문제" if ko else "exercises", height=320, margin=dict(t=50, b=40, l=50, r=20))
    return fig


def show(lang: str | None = None):
    """The progress page: the bar chart and the table. Returns (figure, table)."""
    from IPython.display import display

    lang = current_lang(lang)
    rows = summary(lang=lang)
    fig, df = figure(rows, lang), table(rows)
    display(fig)
    display(df)
    return fig, df
