"""The workbook's sources and generated notebooks agree; notebooks are committed clean."""

from __future__ import annotations

import json

import pytest

from kslab import workbook


def test_generated_notebooks_are_up_to_date():
    assert workbook.main(["--check"]) == 0, "run: python3 -m kslab.workbook"


@pytest.mark.parametrize("path", [p for _, a, b in workbook.targets() for p in (a, b)], ids=lambda p: p.name + "@" + p.parent.name)
def test_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_learner_and_solution_versions_differ_only_in_exercises():
    for src, learner_path, solution_path in workbook.targets():
        learner, solution = workbook.build(src)
        assert len(learner.cells) == len(solution.cells)
        exercises = 0
        for a, b in zip(learner.cells, solution.cells):
            if "exercise" in a.metadata.get("tags", []):
                exercises += 1
                assert "answer = None" in a.source and "answer = None" not in b.source
                assert [l for l in a.source.splitlines() if l.startswith("kslab.check.")] == \
                       [l for l in b.source.splitlines() if l.startswith("kslab.check.")]
            else:
                assert a.source == b.source
        assert 2 <= exercises <= 4, src.name


def test_checks_give_feedback():
    from kslab.check import WrongAnswer, ch01

    assert ch01.ladder(None) is False
    assert ch01.ladder([0.25, 1 / 3, 0.5]) is True
    with pytest.raises(WrongAnswer, match="Hint"):
        ch01.ladder([0.25, 0.25, 0.25])
