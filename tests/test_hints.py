"""Hints before solutions: every exercise has hints in both editions (written in notebooks/src,
generated into notebooks/<lang>/hints.json and exercises.json), ``kslab.check.hint`` shows them
in order, ``kslab.check.solution`` stays locked until the learner has tried and seen every hint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kslab import check, progress, resources, workbook

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
CHECK_CALL = re.compile(r"kslab\.check\.(ch\d\d)\.(\w+)\(")


def solution_cells(src: Path) -> list[str]:
    """The source's solution cells, read as text (not through the generator)."""
    cells = re.split(r"(?m)^(?=# %%)", src.read_text(encoding="utf-8"))
    return [c for c in cells if c.startswith('# %% tags=["solution"]')]


def exercises_in_sources() -> list[str]:
    return [f"{a}.{b}" for src in SOURCES for cell in solution_cells(src) for a, b in CHECK_CALL.findall(cell)]


def hint_cells(src: Path) -> list[tuple[str, str]]:
    return re.findall(r'(?m)^# %% \[markdown\] lang="(\w+)" hint="([\w.]+)"$', src.read_text(encoding="utf-8"))


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


def test_every_exercise_has_hints_in_both_editions():
    exercises = exercises_in_sources()
    assert len(exercises) == len(set(exercises)) == 52  # chapters 00-10: 44; chapter 11 (the capstone): 8
    for lang in resources.EDITIONS:
        hints = progress.hints(lang)
        missing = [ex for ex in exercises if not 1 <= len(hints.get(ex, [])) <= 3]
        assert not missing, f"{lang}: no hints (or more than 3) for {missing}"
    ko, en = progress.hints("ko"), progress.hints("en")
    assert all(len(ko[ex]) == len(en[ex]) for ex in exercises)  # a translation, hint for hint
    assert sum(map(len, en.values())) >= len(exercises)
    written = [pair for src in SOURCES for pair in hint_cells(src)]
    assert sorted(written) == sorted((lang, ex) for ex in exercises for lang in resources.EDITIONS)


def test_hints_are_in_their_language_and_say_something_new():
    for ex, items in progress.hints("ko").items():
        assert all(re.search("[가-힣]", h) for h in items), ex
    for ex, items in progress.hints("en").items():
        assert not any(re.search("[가-힣]", h) for h in items), ex
        assert len(set(items)) == len(items) and all(len(h) >= 60 for h in items), ex


def test_the_catalogue_matches_the_sources():
    expected = {}
    for src in SOURCES:
        for cell in solution_cells(src):
            (ex,) = [f"{a}.{b}" for a, b in CHECK_CALL.findall(cell)]
            body = cell.split("\n", 1)[1]
            expected[ex] = body.split("# EXERCISE-END", 1)[-1].strip("\n")
    for lang in resources.EDITIONS:
        catalogue = progress.catalogue(lang)
        assert list(catalogue) == exercises_in_sources()  # chapter order
        assert catalogue == expected
    assert all("answer = None" not in code for code in expected.values())


def test_hint_cells_stay_out_of_the_notebooks():
    first_hints = [items[0] for items in progress.hints("en").values()] + [items[0] for items in progress.hints("ko").values()]
    for nb in (ROOT / "notebooks").glob("*/**/[0-9][0-9]_*.ipynb"):
        text = "".join("".join(c["source"]) for c in json.loads(nb.read_text(encoding="utf-8"))["cells"])
        flat = " ".join(text.split())
        assert not any(h[:50] in flat for h in first_hints), nb
    for lang in resources.EDITIONS:  # but each chapter tells how to get them, once
        for nb in sorted((ROOT / "notebooks" / lang).glob("[0-9][0-9]_*.ipynb")):
            text = "".join("".join(c["source"]) for c in json.loads(nb.read_text(encoding="utf-8"))["cells"])
            assert text.count("kslab.check.hint(") == 1 and text.count("kslab.check.solution(") == 1, nb


def test_hints_come_in_order_then_say_none_is_left(store, capsys):
    items = progress.hints("en")["ch02.list_size"]
    shown = [check.hint("ch02.list_size", lang="en") for _ in items]
    assert shown == [f"Hint {i}/{len(items)} for ch02.list_size: {h}" for i, h in enumerate(items, 1)]
    last = check.hint("ch02.list_size", lang="en")
    assert last.startswith("No hints left for ch02.list_size") and "kslab.check.solution" in last
    assert capsys.readouterr().out.splitlines()[0] == shown[0]
    assert json.loads(store.read_text())["exercises"]["ch02.list_size"]["hints_seen"] == len(items)


def test_the_notebooks_language_picks_the_hints(store, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks" / "ko" / "solutions")
    assert check.hint("ch01.ladder") == f"ch01.ladder 힌트 1/2: {progress.hints('ko')['ch01.ladder'][0]}"
    monkeypatch.chdir(ROOT / "notebooks" / "en")
    assert check.hint("ch01.ladder").startswith("Hint 2/2 for ch01.ladder:")  # the count is the learner's, not the edition's


def test_the_solution_is_locked_until_tried_and_every_hint_seen(store, capsys):
    ex = "ch06.bands"
    n = len(progress.hints("en")[ex])
    locked = check.solution(ex, lang="en")
    assert locked.startswith(f"The solution of {ex} is locked") and "check an answer of your own" in locked
    assert f"{n} more hints" in locked
    with pytest.raises(check.WrongAnswer):
        check.ch06.bands([30000, 30001])
    locked = check.solution(ex, lang="en")
    assert "check an answer" not in locked and f"{n} more hints" in locked
    for _ in range(n - 1):
        check.hint(ex, lang="en")
    assert "1 more hint " in check.solution(ex, lang="en")
    check.hint(ex, lang="en")
    shown = check.solution(ex, lang="en")
    assert shown == f"Solution of {ex}:\n{progress.catalogue('en')[ex]}"
    assert json.loads(store.read_text())["exercises"][ex]["solution_revealed"] is True
    assert "static, _ = controlplane.node_port_bands" in capsys.readouterr().out


def test_a_right_answer_counts_as_trying(store):
    ex = "ch08.detection"
    assert check.ch08.detection(16)
    for _ in progress.hints("en")[ex]:
        check.hint(ex, lang="en")
    assert check.solution(ex, lang="ko").startswith(f"{ex} 풀이:")


@pytest.mark.parametrize("call", [check.hint, check.solution])
def test_an_unknown_exercise_is_one_line_with_the_closest_names(store, capsys, call):
    message = call("ch02.list_sise", lang="en")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("kslab: error: exercise: 'ch02.list_sise' is not an exercise")
    assert "did you mean ch02.list_size" in message
    assert "ch02.list_sise" not in json.loads(store.read_text() if store.exists() else '{"exercises": {}}')["exercises"]


# ---- the convention in the sources: the generator's checks --------------------------------------

EXERCISE = '''# %% [markdown] lang="en"
# Question

# %% [markdown] lang="ko"
# 질문

{hints}# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 3
kslab.check.ch99.probe(answer)
'''


def hint_cell(lang: str, ex: str, n: int) -> str:
    return f'# %% [markdown] lang="{lang}" hint="{ex}"\n' + "".join(f"# {i}. hint number {i}\n" for i in range(1, n + 1)) + "\n"


def probe(tmp_path, hints: str) -> Path:
    src = tmp_path / "99_probe.py"
    src.write_text(EXERCISE.format(hints=hints), encoding="utf-8")
    return src


def test_the_generator_reads_the_hint_cells(tmp_path):
    src = probe(tmp_path, hint_cell("en", "ch99.probe", 2) + hint_cell("ko", "ch99.probe", 2))
    exercises, hints = workbook.exercises_and_hints(src, "ko")
    assert exercises == {"ch99.probe": "answer = 3\nkslab.check.ch99.probe(answer)"}
    assert hints == {"ch99.probe": ["hint number 1", "hint number 2"]}
    learner, solution = workbook.build(src, "en")
    assert not any("hint number" in c.source for c in learner.cells + solution.cells)


@pytest.mark.parametrize("hints, message", [
    (hint_cell("en", "ch99.probe", 4) + hint_cell("ko", "ch99.probe", 4), "has 4 hints"),
    (hint_cell("en", "ch99.other", 1) + hint_cell("ko", "ch99.other", 1), "hints for ch99.other, which no solution cell"),
    (hint_cell("en", "ch99.probe", 2) + hint_cell("ko", "ch99.probe", 1), "1 ko, 2 en"),
    ("", "needs hints in every edition"),
])
def test_a_broken_hint_convention_is_a_one_line_error(tmp_path, monkeypatch, hints, message):
    src = probe(tmp_path, hints)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(workbook, "_checkout", lambda: tmp_path)
    with pytest.raises(workbook.InputError, match=re.escape(message)) as e:
        workbook.catalogue_outputs([src])
    assert "\n" not in str(e.value)
    assert not any((tmp_path / "notebooks").iterdir())
