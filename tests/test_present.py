"""Presenter mode without a browser: ``notebooks/src/present.toml`` and the pages the generator
builds from it (kslab/presenter.py), and ``kslab present``'s one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

from kslab import cli, presenter
from kslab.errors import EnvironmentProblem, InputError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "notebooks" / "src"


def _solution(*codes: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 · A chapter\n\nwords"),
                *[nbformat.v4.new_code_cell(c) for c in codes]]
    return nb


def test_spec_names_chapters_00_to_10_with_their_setup_cell_first():
    spec = presenter.load_spec(SRC)
    assert sorted(spec) == [f"{n:02d}" for n in range(11)]  # chapter 11 (the capstone): no entry yet
    for nn, picks in spec.items():
        assert len(picks) >= 1, nn


def test_page_is_the_title_and_the_picked_cells_in_order():
    nb = presenter.build(Path("07_x.py"), "en", _solution("import kslab\nlab = 1", "other = 2", "panel = Panel(lab)\npanel"),
                         ["import kslab", "Panel("])
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert nb.cells[0].source.startswith("# 07 · A chapter") and "kslab present 07" in nb.cells[0].source
    assert [c.source for c in nb.cells[1:]] == ["import kslab\nlab = 1", "panel = Panel(lab)\npanel"]
    ko = presenter.build(Path("07_x.py"), "ko", _solution("import kslab"), ["import kslab"])
    assert "발표 모드" in ko.cells[0].source


@pytest.mark.parametrize("picks, problem", [(["nowhere"], "occurs in no code cell"), (["lab"], "occurs in 2 code cells"),
                                            (["Panel(", "import kslab"], "not in chapter order")])
def test_a_pick_must_name_one_cell_in_order(picks, problem):
    with pytest.raises(InputError, match=problem) as e:
        presenter.build(Path("07_x.py"), "en", _solution("import kslab\nlab = 1", "panel = Panel(lab)"), picks)
    assert "present.toml [chapters.07]" in str(e.value) and "\n" not in str(e.value)


def test_malformed_spec_is_one_line(tmp_path):
    (tmp_path / "present.toml").write_text('[chapters.7]\ncells = ["x"]\n')
    with pytest.raises(InputError, match=r"\[chapters.7\]: needs a two-digit chapter"):
        presenter.load_spec(tmp_path)
    (tmp_path / "present.toml").write_text("[chapters.07\n")
    with pytest.raises(InputError, match="not valid TOML"):
        presenter.load_spec(tmp_path)
    assert presenter.load_spec(tmp_path / "none") == {}  # no file: no presenter pages


def test_generated_pages_match_the_spec():
    """Each page: the chapter's heading, then exactly the code cells present.toml picks."""
    spec = presenter.load_spec(SRC)
    for lang in ("en", "ko"):
        for page in sorted((REPO / "notebooks" / lang / "present").glob("*.ipynb")):
            nb = nbformat.read(page, as_version=4)
            assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {page.name[:2]} ·"), page
            code = [c.source for c in nb.cells[1:]]
            picks = spec[page.name[:2]]
            assert len(code) == len(picks) and all(p in c for p, c in zip(picks, code)), page


def test_present_without_voila_says_how_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "voila" else real(name, *a))
    assert cli.main(["present", "07", "--lang", "en", "--no-browser"]) == EnvironmentProblem.exit_code
    err = capsys.readouterr().err.strip()
    assert "pip install -e '.[present]'" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("chapter", ["99", "7x", "", "11"])
def test_present_unknown_chapter_lists_the_chapters(chapter, capsys):
    pytest.importorskip("voila")
    assert cli.main(["present", chapter, "--lang", "en", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a chapter with a presenter page" in err and "00, 01, 02" in err and "10" in err, err
    assert len(err.splitlines()) == 1


def test_present_chapter_number_forms():
    folder = REPO / "notebooks" / "en" / "present"
    assert presenter.chapter_path(folder, "7").name == presenter.chapter_path(folder, "07").name == "07_traffic_policy_lb.ipynb"
    assert presenter.chapter_path(folder, "007") is None and presenter.chapter_path(folder, "x") is None
