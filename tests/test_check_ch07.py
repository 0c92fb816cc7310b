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


def test_sep_count_is_read_from_kube_svl_after_the_placement(lab):
    fb = check.ch07.sep_count(2, lab)
    assert fb and "myk8s-worker2" in fb.message
    assert check.ch07.sep_count(1, lab, node="myk8s-worker3")  # a new case: the other node of the placement
    assert check.ch07.sep_count(0, lab, per_node={"myk8s-worker": 3}, node="myk8s-worker2")
    with pytest.raises(WrongAnswer, match="KUBE-SVC's ladder"):
        check.ch07.sep_count(3, lab)  # every endpoint: the SVC chain, not SVL
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch07.sep_count(1, lab)
    with pytest.raises(WrongAnswer, match="number"):
        check.ch07.sep_count("two", lab)


def test_source_ranges_are_tried_on_the_lab(lab):
    assert check.ch07.source_ranges({"172.18.0.100", "172.18.0.101"}, lab)
    assert check.ch07.source_ranges(["mypc", "172.18.0.101"], lab)  # mypc is 172.18.0.100
    # a new range: a /24 lets the third candidate in as well, not the 192.168 host
    assert check.ch07.source_ranges({"172.18.0.100", "172.18.0.101", "172.18.0.120"}, lab, ranges=("172.18.0.0/24",))
    for wrong in ({"172.18.0.100"}, {"172.18.0.100", "172.18.0.101", "172.18.0.120"}, set()):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch07.source_ranges(wrong, lab)
    with pytest.raises(WrongAnswer, match="list or set"):
        check.ch07.source_ranges("172.18.0.100", lab)
    with pytest.raises(WrongAnswer, match="IP addresses"):
        check.ch07.source_ranges({"my laptop"}, lab)


def test_share_of_the_lone_pod_behind_the_lb_is_half(lab):
    fb = check.ch07.share(0.5, lab)
    assert fb and "2 nodes" in fb.message
    assert check.ch07.share(50, lab)  # a percentage
    with pytest.raises(WrongAnswer, match="even split per pod"):
        check.ch07.share(0.25, lab)  # 1 of 4 pods: what Cluster would give
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch07.share(1 / 3, lab)
    # a new placement: 1/1/1 -> a third each
    assert check.ch07.share(1 / 3, lab, per_node={"myk8s-worker": 1, "myk8s-worker2": 1, "myk8s-worker3": 1})


def test_lb_checks_leave_the_learners_lab_unchanged(lab):
    services = sorted(s.name for s in lab.cluster.services)
    pods = sorted(lab.pods())
    check.ch07.sep_count(2, lab)
    check.ch07.source_ranges({"172.18.0.100", "172.18.0.101"}, lab)
    assert sorted(s.name for s in lab.cluster.services) == services and sorted(lab.pods()) == pods
