"""Chapter 03's checks (hairpin NAT): right answers accepted, wrong ones refused with a hint, the
right answer computed from the lab (on a copy) rather than typed in."""

from __future__ import annotations

import pandas as pd
import pytest

from kslab import check
from kslab.check import WrongAnswer
from kslab.dataplane.reasons import hairpin_without_masquerade
from kslab.lab import HAIRPIN_RULES, Lab


@pytest.fixture
def lab() -> Lab:
    return Lab(seed=3)


def test_every_ch03_check_is_pending_on_none(lab):
    for fn in (check.ch03.hairpin_source, check.ch03.hairpin_failures, check.ch03.without_masquerade,
               check.ch03.affected_pods):
        fb = fn(None, lab)
        assert not fb and "not answered" in fb.message


def test_hairpin_source_for_another_pod_is_its_nodes_gateway(lab):
    assert check.ch03.hairpin_source("10.10.2.1", lab, pod="webpod2")
    for wrong in ("10.10.1.1", "10.10.2.2"):  # webpod1's gateway, webpod2's own address
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch03.hairpin_source(wrong, lab, pod="webpod2")


def test_without_masquerade_is_the_martian_drop(lab):
    assert "martian" in check.ch03.without_masquerade("c", lab).message
    assert check.ch03.without_masquerade(" (C) ", lab)
    for wrong in ("a", "b", "d"):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch03.without_masquerade(wrong, lab)
    with pytest.raises(WrongAnswer, match="which one"):
        check.ch03.without_masquerade("e", lab)


def test_the_expected_choice_follows_what_the_run_shows():
    """The letter is read from the rows, so the check would follow the lab if the behaviour changed."""
    from kslab.check import _hairpin_choice

    def rows(outcome: str, reason: str) -> pd.DataFrame:
        return pd.DataFrame({"endpoint_pod": ["webpod1", "webpod2"], "outcome": [outcome, "ok"], "reason": [reason, ""]})

    assert _hairpin_choice(rows("dropped", hairpin_without_masquerade("webpod1", "10.10.1.2"))) == "c"
    assert _hairpin_choice(rows("timeout", hairpin_without_masquerade("webpod1", "10.10.1.2", accept_local=True))) == "b"
    assert _hairpin_choice(rows("ok", "")) == "a"
    assert _hairpin_choice(rows("refused", "connection refused")) == "d"


def test_affected_pods_are_the_endpoint_pods_of_that_node(lab):
    echo2 = next(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo" and p.node_name == "myk8s-worker2")
    assert check.ch03.affected_pods({"webpod2", echo2}, lab)
    assert check.ch03.affected_pods(["webpod1", "deploy-echo-gtc48pc688-clvtq"], lab, node="myk8s-worker")
    for wrong in ({"webpod2"}, {"webpod2", echo2, "net-pod"}, {"webpod1", "webpod2", "webpod3"}):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch03.affected_pods(wrong, lab)
    with pytest.raises(WrongAnswer, match="which ones"):
        check.ch03.affected_pods("webpod2", lab)


def test_ch03_checks_leave_the_learners_lab_unchanged(lab):
    lab.delete_rules(HAIRPIN_RULES, nodes=["myk8s-worker"])
    before = {n.name: lab.save_text(n.name) for n in lab.cluster.nodes}
    check.ch03.without_masquerade("c", lab)
    check.ch03.affected_pods({"webpod1", "deploy-echo-gtc48pc688-clvtq"}, lab, node="myk8s-worker")
    check.ch03.hairpin_failures(1 / 3, lab)
    assert {n.name: lab.save_text(n.name) for n in lab.cluster.nodes} == before and lab.now == 0



def test_hairpin_source_says_when_the_pod_cannot_reach_itself_in_the_lab_as_it_is(lab):
    lab.delete_rules(HAIRPIN_RULES)
    with pytest.raises(WrongAnswer, match="lab.reset"):
        check.ch03.hairpin_source("10.10.1.1", lab)
    lab.reset()
    assert check.ch03.hairpin_source("10.10.1.1", lab)


def test_without_masquerade_holds_with_affinity_or_without_webpod1_as_an_endpoint(lab):
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)
    assert check.ch03.without_masquerade("c", lab)
    lab.break_pod("webpod1")  # not ready: no endpoint, no hairpin in this lab; the study's lab answers
    assert check.ch03.without_masquerade("c", lab)
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch03.without_masquerade("b", lab)
