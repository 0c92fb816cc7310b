"""Chapter 07's checks (externalTrafficPolicy, LoadBalancer): right answers accepted, wrong ones
refused with a hint, the right answer computed from the lab (on a copy), never typed in, and the
learner's lab left unchanged."""

from __future__ import annotations

import pytest

from kslab import check
from kslab.check import WrongAnswer, _local_drop_choice
from kslab.lab import Lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab(seed=7)


def test_every_ch07_check_is_pending_on_none(lab):
    for fn in (check.ch07.local_drop, check.ch07.sep_count, check.ch07.from_node, check.ch07.share,
               check.ch07.source_ranges):
        fb = fn(None, lab)
        assert not fb and "not answered" in fb.message


def test_local_drop_is_the_has_no_local_endpoints_drop(lab):
    fb = check.ch07.local_drop("c", lab)
    assert fb and "has no local endpoints" in fb.message
    assert check.ch07.local_drop(" (C) ", lab)
    for wrong in ("a", "b"):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch07.local_drop(wrong, lab)
    with pytest.raises(WrongAnswer, match="'a', 'b' or 'c'"):
        check.ch07.local_drop("d", lab)


def test_local_drop_for_a_node_with_a_pod_is_the_client_address(lab):
    """The same question for a worker (one echo pod each): answered, mypc's address kept."""
    assert check.ch07.local_drop("b", lab, node="myk8s-worker2")
    with pytest.raises(WrongAnswer):
        check.ch07.local_drop("c", lab, node="myk8s-worker2")


def test_the_local_drop_letter_follows_what_the_connection_did():
    assert _local_drop_choice("dropped", None, "172.18.0.100") == "c"
    assert _local_drop_choice("timeout", None, "172.18.0.100") == "c"
    assert _local_drop_choice("ok", "172.18.0.100", "172.18.0.100") == "b"
    assert _local_drop_choice("ok", "172.18.0.2", "172.18.0.100") == "a"


def test_local_drop_follows_the_lab_not_a_typed_answer():
    """worker2's only echo pod not ready: worker2 drops under Local, so (c) is right there, (b) is not."""
    unready = Lab(seed=7)
    pod = next(p for p in unready.pods("app=deploy-websrv") if unready.cluster.pod(p).node_name == "myk8s-worker2")
    unready.set_ready(pod, False)
    assert check.ch07.local_drop("c", unready, node="myk8s-worker2")
    with pytest.raises(WrongAnswer):
        check.ch07.local_drop("b", unready, node="myk8s-worker2")


def test_from_node_is_false_the_node_routes_its_own_traffic_to_the_cluster_chain(lab):
    fb = check.ch07.from_node(False, lab)
    assert fb and "route LOCAL traffic" in fb.message
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch07.from_node(True, lab)
    with pytest.raises(WrongAnswer, match="True or False"):
        check.ch07.from_node("no", lab)


def test_ch07_checks_leave_the_learners_lab_unchanged(lab):
    before = {n.name: lab.save_text(n.name) for n in lab.cluster.nodes}
    policy = lab.cluster.service("svc-nodeport").external_traffic_policy
    check.ch07.local_drop("c", lab)
    check.ch07.from_node(False, lab)
    assert {n.name: lab.save_text(n.name) for n in lab.cluster.nodes} == before
    assert lab.cluster.service("svc-nodeport").external_traffic_policy == policy and lab.now == 0
