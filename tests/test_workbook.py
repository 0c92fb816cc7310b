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
    from kslab.check import Feedback, WrongAnswer, ch01

    pending = ch01.ladder(None)
    assert isinstance(pending, Feedback) and not pending and "not answered" in pending.message
    assert ch01.ladder([0.25, 1 / 3, 0.5])
    with pytest.raises(WrongAnswer, match="Hint"):
        ch01.ladder([0.25, 0.25, 0.25])


def _right_and_wrong():
    """(check, right answer, wrong answer) for every exercise, answers worked out independently."""
    from kslab import check
    from kslab.lab import Lab

    lab = Lab(seed=0)
    web1 = lab.cluster.pod("webpod1")
    return [
        (lambda a: check.ch00.nodes_with_rules(a, lab), len(lab.cluster.nodes), 1),
        (lambda a: check.ch00.client_node(a, lab), lab.cluster.pod("net-pod").node_name, "myk8s-worker3"),
        (check.ch01.ladder, [0.25, 1 / 3, 0.5], [0.25, 0.25, 0.25]),
        (check.ch01.chain_name, "KUBE-SVC-VTR7MTHHNMFZ3OFS", "KUBE-SVC-KBDEBIL6IU6WL7RF"),
        (lambda a: check.ch01.node_masquerade(a, lab), True, False),
        (check.ch02.affinity_match, "recent", "statistic"),
        (check.ch02.may_move, True, False),
        (lambda a: check.ch02.behind_nat(a, Lab(seed=0)), 1, 3),
        (lambda a: check.ch03.hairpin_source(a, Lab(seed=0)), "10.10.1.1", web1.pod_ip),
        (check.ch03.hairpin_failures, 1 / 3, 0.0),
        (lambda a: check.ch04.error_rate(a, Lab(seed=0)), 1 / 3, 0.0),
        (check.ch04.sticky_scheduler, "sh", "rr"),
        (check.ch04.ipvs_affinity, "persistence", "sh"),
        (check.ch04.wrr_share, 1 / 3, 0.5),
        (lambda a: check.ch04.cross_node(a, lab=Lab(seed=0)), None, 1.0),  # right answer computed below
    ]


def test_every_exercise_check_accepts_the_right_answer_and_hints_on_a_wrong_one():
    from kslab.check import WrongAnswer
    from kslab.lab import Lab

    cases = _right_and_wrong()
    scaled = Lab(seed=0)
    scaled.scale("deploy-echo", 6)
    node = scaled.cluster.pod("webpod1").node_name
    local = sum(p.node_name == node for p in scaled.cluster.pods if p.owner == "Deployment/deploy-echo")
    for i, (fn, right, wrong) in enumerate(cases):
        if right is None:
            right = 1 - local / 6
        assert not fn(None), f"case {i}: None must be 'not answered'"
        assert fn(right), f"case {i}: {right!r} should be right"
        with pytest.raises(WrongAnswer) as err:
            fn(wrong)
        assert "Hint" in str(err.value) or "which one" in str(err.value), f"case {i}: {err.value}"


def test_mh_is_not_the_256_bucket_scheduler():
    from kslab.check import WrongAnswer, ch04

    with pytest.raises(WrongAnswer, match="256") as err:
        ch04.sticky_scheduler("mh")
    assert "4093-entry" in str(err.value) and "mh-port" in str(err.value) and "251" not in str(err.value)
    assert "256-bucket" in ch04.sticky_scheduler("sh").message


def test_ipvs_affinity_is_persistence_whatever_the_scheduler():
    from kslab.check import WrongAnswer, ch04

    for right in ("persistence", "ipvsadm -p", " Persistent ", "connection template"):
        fb = ch04.ipvs_affinity(right)
        assert fb and "1 server per client" in fb.message
    for wrong in ("sh", "mh", "recent"):
        with pytest.raises(WrongAnswer, match="Hint"):
            ch04.ipvs_affinity(wrong)


def test_wrr_share_is_a_third_because_kube_proxy_weights_every_endpoint_1():
    from kslab.check import WrongAnswer, ch04

    assert ch04.wrr_share(0.33) and ch04.wrr_share(1 / 3)
    for wrong in (0.5, 0.25, 0.0):  # 0.5 was webpod3's share with a hand-set weight 2
        with pytest.raises(WrongAnswer, match="weight"):
            ch04.wrr_share(wrong)


def test_feedback_shows_nothing_more_in_a_notebook():
    from kslab.check import ch02

    result = ch02.may_move(True)
    assert result and hasattr(result, "_ipython_display_") and result._ipython_display_() is None
