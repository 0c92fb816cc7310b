"""Chapter 06's checks (NodePort): right answers accepted, wrong ones refused with a hint, the
right answer computed from the lab (on a copy) rather than typed in."""

from __future__ import annotations

import types

import pytest

from kslab import check
from kslab.check import WrongAnswer
from kslab.lab import Lab


@pytest.fixture
def lab() -> Lab:
    return Lab(seed=6)


def test_every_ch06_check_is_pending_on_none(lab):
    for fn in (check.ch06.control_plane, check.ch06.seen_ip, check.ch06.masq_chain):
        fb = fn(None, lab)
        assert not fb and "not answered" in fb.message
    assert not check.ch06.bands(None)


def test_the_expected_choice_follows_the_trace():
    """The letter is read from the trace, so the check would follow the lab if the behaviour changed."""
    from kslab.check import _control_plane_choice

    def t(outcome: str):
        return types.SimpleNamespace(outcome=outcome)

    assert [_control_plane_choice(t(o)) for o in ("ok", "refused", "timeout", "dropped")] == ["b", "a", "c", "c"]


def test_control_plane_follows_a_lab_without_nodeport_rules(lab):
    """With every KUBE-NODEPORTS jump deleted by hand, nothing DNATs the SYN and nothing listens: refused."""
    lab.delete_rules(r"^-A KUBE-NODEPORTS ")
    assert check.ch06.control_plane("a", lab)
    with pytest.raises(WrongAnswer):
        check.ch06.control_plane("b", lab)


def test_seen_ip_is_the_ingress_nodes_address(lab):
    ip = {n.name: n.internal_ip for n in lab.cluster.nodes}
    assert check.ch06.seen_ip(ip["myk8s-worker3"], lab)
    assert check.ch06.seen_ip(ip["myk8s-worker"], lab, pod_node="myk8s-worker3", ingress="myk8s-worker")
    for wrong in ("172.18.0.100", ip["myk8s-worker2"], "10.10.2.1"):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch06.seen_ip(wrong, lab)


def test_seen_ip_says_when_no_pod_answers_there(lab):
    lab.scale("deploy-echo", 1)  # one pod left, on one worker
    left = next(p.node_name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
    other = next(n for n in ("myk8s-worker", "myk8s-worker2", "myk8s-worker3") if n != left)
    with pytest.raises(WrongAnswer, match="lab.reset"):
        check.ch06.seen_ip("172.18.0.5", lab, pod_node=other)


def test_masq_chain_is_the_services_ext_chain(lab):
    assert check.ch06.masq_chain("KUBE-EXT-KBDEBIL6IU6WL7RF", lab)  # svc-clusterip made NodePort on a copy
    assert check.ch06.masq_chain("KUBE-EXT-VTR7MTHHNMFZ3OFS", lab, service="svc-nodeport")
    for wrong, hint in (("KUBE-SVC-KBDEBIL6IU6WL7RF", "before it"), ("KUBE-MARK-MASQ", "which chain jumps"),
                        ("KUBE-EXT-VTR7MTHHNMFZ3OFS", "wrong hash"), ("KUBE-NODEPORTS", "KUBE-EXT-")):
        with pytest.raises(WrongAnswer, match=hint):
            check.ch06.masq_chain(wrong, lab)
    assert lab.cluster.service("svc-clusterip").type == "ClusterIP"  # the learner's lab is unchanged


def test_bands_follow_the_api_servers_formula():
    assert check.ch06.bands([30000, 30030])
    assert check.ch06.bands((30000, 30085), node_port_range="30000-32767")
    assert check.ch06.bands([30000, 30015], node_port_range="30000-30100")  # 101 // 32 = 3 < 16: the minimum
    for wrong in ([30000, 30085], [30000, 30031], [30031, 30999]):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch06.bands(wrong)
    with pytest.raises(WrongAnswer, match="first and the last"):
        check.ch06.bands("30000-30030")


@pytest.mark.parametrize("answer", ["30000", "30000-30030", 30000, 30000.0, [30000], [30000, 30030, 30999],
                                    {30000, 30030}, ["30000", "last"]])
def test_bands_asks_for_first_and_last_when_the_answer_is_not_a_pair(answer):
    """A string is not read character by character, a number or a set is not a [first, last] pair."""
    with pytest.raises(WrongAnswer, match=r"\[first, last\]"):
        check.ch06.bands(answer)


def test_bands_accepts_any_pair_of_whole_numbers():
    import numpy as np

    assert check.ch06.bands(np.array([30000, 30030]))
    assert check.ch06.bands(["30000", "30030"])  # numbers typed as text, one each, are read as numbers
