"""Self-paced progress (kslab.progress): recorded through the real checks, kept in a JSON file
(atomic writes, a corrupt file survives as .bak), found through $KSLAB_PROGRESS or the working
copy, and shown by ``kslab progress``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from kslab import check, cli, progress


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A progress file of this test's own (the run's shared one is left alone)."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


def records(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))["exercises"]


def test_the_test_run_never_writes_into_the_repository():
    path = progress.progress_path()
    root = Path(__file__).resolve().parents[1]
    assert os.environ.get(progress.ENV) and root not in path.resolve().parents


def test_checks_record_attempts_wrong_answers_and_the_first_right_one(store, capsys):
    assert not check.ch01.ladder(None)  # unanswered: not an attempt
    assert not store.exists()
    with pytest.raises(check.WrongAnswer):
        check.ch01.ladder([0.5, 0.5, 0.5])
    with pytest.raises(check.WrongAnswer):
        check.ch06.bands([30000, 30015])
    assert check.ch01.ladder([1 / 4, 1 / 3, 1 / 2])
    first = records(store)["ch01.ladder"]["solved_at"]
    assert check.ch01.ladder([1 / 4, 1 / 3, 1 / 2])  # solved again: one more attempt, the first time stays
    recs = records(store)
    assert recs["ch01.ladder"] == {"attempts": 3, "wrong": 1, "solved": True, "solved_at": first,
                                   "hints_seen": 0, "solution_revealed": False}
    assert recs["ch06.bands"]["attempts"] == 1 and recs["ch06.bands"]["wrong"] == 1 and not recs["ch06.bands"]["solved"]
    assert set(recs) == {"ch01.ladder", "ch06.bands"}


def test_every_function_of_every_chapter_namespace_is_recorded():
    namespaces = {name: ns for name, ns in vars(check).items() if name[:2] == "ch" and isinstance(ns, SimpleNamespace)}
    expected = sorted(f"{name}.{fn}" for name, ns in namespaces.items() for fn in vars(ns))
    assert sorted(check.RECORDED) == expected and len(expected) >= 44
    assert all(getattr(fn, "_kslab_recorded", False) for ns in namespaces.values() for fn in vars(ns).values())
    assert check.ch01.ladder.__name__ == "_ladder"  # functools.wraps: the check keeps its name and docstring


def test_a_namespace_added_later_is_wrapped_too_and_nothing_twice(store, monkeypatch):
    def _probe(answer):
        return check._ok("probe") if answer == 1 else check._pending("probe")

    monkeypatch.setattr(check, "ch11", SimpleNamespace(probe=_probe), raising=False)
    assert check._record_progress() == ["ch11.probe"]  # the others are already wrapped
    check.ch11.probe(1)
    assert records(store)["ch11.probe"]["solved"]


def test_recording_never_breaks_a_check(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(progress.ENV, str(blocker / "progress.json"))  # its folder is a file: saving fails
    assert check.ch01.ladder([1 / 4, 1 / 3, 1 / 2])
    with pytest.raises(check.WrongAnswer, match="not quite"):
        check.ch01.ladder([1, 1, 1])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("kslab: warning: could not save your progress for ch01.ladder") for line in err)


def test_a_corrupt_file_is_kept_as_bak_with_one_warning_and_progress_starts_afresh(store, capsys):
    store.write_text('{"exercises": {"ch01.ladder": {"attempts": "many"', encoding="utf-8")
    assert check.ch01.ladder([1 / 4, 1 / 3, 1 / 2])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kept it as progress.json.bak" in err[0]
    assert store.with_name("progress.json.bak").read_text(encoding="utf-8").startswith('{"exercises"')
    assert records(store)["ch01.ladder"]["attempts"] == 1


@pytest.mark.parametrize("text", ['[]', '{"exercises": {"ch01.ladder": {"attempts": "3"}}}', '{"version": 1}'])
def test_valid_json_of_the_wrong_shape_is_corrupt_too(store, text, capsys):
    store.write_text(text, encoding="utf-8")
    assert progress.load() == progress.Progress()
    assert store.with_name("progress.json.bak").exists() and "warning" in capsys.readouterr().err


def test_writes_are_atomic(store, monkeypatch):
    progress.record_check("ch01.ladder", "right")
    before = store.read_text(encoding="utf-8")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(progress.os, "replace", crash)
    with pytest.raises(OSError):
        progress.record_check("ch01.ladder", "wrong")
    assert store.read_text(encoding="utf-8") == before  # the old file is whole
    assert sorted(p.name for p in store.parent.iterdir()) == ["progress.json"]  # no temporary file left


def test_the_file_is_found_in_the_working_copy_unless_the_environment_names_one(tmp_path):
    copy = tmp_path / "kslab-workbook"
    for lang in ("ko", "en"):
        (copy / lang / "solutions").mkdir(parents=True)
        (copy / lang / "00_lab_tour.ipynb").write_text("{}")
    for start in (copy / "ko", copy / "en" / "solutions"):
        assert progress.progress_path(start, environ={}) == copy / progress.FILENAME
    assert progress.progress_path(tmp_path, environ={}) == copy / progress.FILENAME  # where kslab lab was run
    assert progress.progress_path(copy / "ko", environ={progress.ENV: str(tmp_path / "mine.json")}) == tmp_path / "mine.json"
    checkout = Path(__file__).resolve().parents[1]
    assert progress.progress_path(checkout / "notebooks" / "ko", environ={}) == checkout / progress.FILENAME
    assert progress.current_lang(start=copy / "ko" / "solutions", environ={}) == "ko"
    assert progress.current_lang(start=tmp_path, environ={progress.LANG_ENV: "ko"}) == "ko"
    assert progress.current_lang(start=tmp_path, environ={"LANG": "C"}) == "en"


# ---- kslab progress ----------------------------------------------------------------------------


@pytest.fixture
def kslab(capsys):
    def call(*args: str):
        capsys.readouterr()  # only this command's output
        try:
            code = cli.main(["progress", *args])
        except SystemExit as e:  # argparse's usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_the_table_counts_from_the_catalogue(store, kslab):
    catalogue = progress.catalogue()
    assert check.ch01.ladder([1 / 4, 1 / 3, 1 / 2])
    with pytest.raises(check.WrongAnswer):
        check.ch01.ladder([0.3, 0.3, 0.3])
    progress.hint("ch02.list_size", lang="en")
    code, out, err = kslab()
    assert code == 0 and err == ""
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:-1]}
    chapters = sorted({progress.chapter_of(ex) for ex in catalogue})
    assert list(rows) == [*chapters, "total"]
    assert rows["ch01"] == ["1/4", "2", "0", "0"] and rows["ch02"][:3] == ["0/4", "0", "1"]
    assert rows["total"][0] == f"1/{len(catalogue)}"
    assert str(store) in out.splitlines()[-1]


def test_json_lists_every_chapter_and_the_recorded_exercises(store, kslab):
    check.ch06.bands([30000, 30030])
    code, out, _ = kslab("--json")
    data = json.loads(out)
    assert code == 0 and data["file"] == str(store)
    assert sum(c["total"] for c in data["chapters"]) == len(progress.catalogue())
    assert data["exercises"]["ch06.bands"]["solved"] and [c["solved"] for c in data["chapters"]].count(1) == 1


def test_reset_needs_yes(store, kslab):
    progress.record_check("ch01.ladder", "right")
    code, out, err = kslab("--reset")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--yes" in err and store.exists()
    code, _, err = kslab("--yes")
    assert code == 2 and "--reset" in err and err.count("\n") == 1
    code, out, _ = kslab("--reset", "--yes")
    assert code == 0 and "removed" in out and not store.exists()


@pytest.mark.parametrize("args, needle", [(("--file", "{tmp}"), "is a folder"), (("--bogus",), "unrecognized")])
def test_bad_input_is_one_line(tmp_path, store, kslab, args, needle):
    code, out, err = kslab(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_a_corrupt_file_still_shows_the_table(store, kslab):
    store.write_text("not json", encoding="utf-8")
    code, out, err = kslab()
    assert code == 0 and out.splitlines()[-2].split()[1] == f"0/{len(progress.catalogue())}"
    assert err.count("\n") == 1 and "warning" in err


def test_the_progress_page_has_a_bar_per_chapter(store):
    progress.record_check("ch03.hairpin_failures", "right")
    rows = progress.summary()
    fig, df = progress.figure(rows), progress.table(rows)
    assert list(fig.data[0].x) == [r.chapter for r in rows] and list(fig.data[0].y)[3] == 1
    assert [a + b for a, b in zip(fig.data[0].y, fig.data[1].y)] == [r.total for r in rows]
    assert df.iloc[-1]["chapter"] == "total" and int(df.iloc[-1]["solved"]) == 1
