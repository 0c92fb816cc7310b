"""Chapter 08's checks (readiness probes, Endpoints, EndpointSlices): right answers accepted, wrong
ones refused with a hint, the right answer computed from the lab (on a copy), never typed in, and
the learner's lab left unchanged."""

from __future__ import annotations

import pytest

from kslab import check, views
from kslab.check import WrongAnswer, _after_failure_choice
from kslab.lab import Lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    return views.readiness_addon(Lab(seed=8))


def test_every_ch08_check_is_pending_on_none(lab):
    for fb in (check.ch08.after_failure(None, lab), check.ch08.watch_entries(None, lab), check.ch08.detection(None)):
        assert not fb and "not answered" in fb.message


def test_after_failure_explains_both_objects(lab):
    """Letters, case and the refusals are in tests/test_check_choices.py; here: what the message says."""
    fb = check.ch08.after_failure("b", lab)
    assert fb and "notReadyAddresses" in fb.message and "ready: false" in fb.message


def test_after_failure_leaves_the_learners_lab_alone(lab):
    before = {p: lab.cluster.pod(p).ready for p in lab.pods("app=mario")}
    check.ch08.after_failure("b", lab)
    assert {p: lab.cluster.pod(p).ready for p in lab.pods("app=mario")} == before and all(before.values())


def test_after_failure_works_without_the_addon_applied():
    """A lab without svc-mario (a reset): the check applies the add-on to its own copy."""
    bare = Lab(seed=8)
    assert check.ch08.after_failure("b", bare)
    assert not any(s.name == "svc-mario" for s in bare.cluster.services)


def test_the_after_failure_letter_follows_the_objects():
    """The letter is read from the objects, so the check follows the controllers if they changed."""
    sl = lambda ready: [{"endpoints": [{"addresses": ["10.10.1.4"], "conditions": {"ready": ready}}]}]  # noqa: E731
    ready = {"subsets": [{"addresses": [{"ip": "10.10.1.4"}]}]}
    not_ready = {"subsets": [{"notReadyAddresses": [{"ip": "10.10.1.4"}]}]}
    assert _after_failure_choice(not_ready, sl(False), "10.10.1.4") == "b"
    assert _after_failure_choice({}, [], "10.10.1.4") == "a"
    assert _after_failure_choice(ready, sl(True), "10.10.1.4") == "c"
    assert _after_failure_choice(ready, [{"endpoints": [{"addresses": ["10.10.1.4"], "conditions": {}}]}], "10.10.1.4") == "c"  # nil = true
    assert _after_failure_choice(not_ready, sl(True), "10.10.1.4") == "?"


def test_watch_entries_counts_the_whole_endpoints_object_and_one_slice(lab):
    from kslab.check import _private_lab, _watch_change

    pod, entries, in_slices, changed = _watch_change(_private_lab(lab), "deploy-echo", "svc-nodeport", 230)
    assert entries == 230 and len(changed) == 1 and 1 <= in_slices <= 100
    assert check.ch08.watch_entries((entries, in_slices), lab)
    assert check.ch08.watch_entries([str(entries), str(in_slices)], lab)
    with pytest.raises(WrongAnswer, match="first number"):
        check.ch08.watch_entries((229, in_slices), lab)
    with pytest.raises(WrongAnswer, match="second number"):
        check.ch08.watch_entries((entries, 230), lab)
    with pytest.raises(WrongAnswer, match="two numbers"):
        check.ch08.watch_entries(230, lab)
    assert len(lab.pods("app=deploy-websrv")) == 3  # the learner's lab is not scaled


def test_watch_entries_follows_the_lab_size():
    """Fewer replicas: one slice holds them all, so both numbers are the replica count."""
    small = Lab(seed=8)
    assert check.ch08.watch_entries((40, 40), small, replicas=40)
    with pytest.raises(WrongAnswer):
        check.ch08.watch_entries((40, 100), small, replicas=40)


def test_detection_is_the_kubelets_worst_case():
    kubelet = pytest.importorskip("kslab.kubelet", reason="kslab.kubelet (t-kubelet) is not merged yet")
    spec = kubelet.ProbeSpec.from_container({"name": "app", "readinessProbe": {
        "httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 1}}, "t")
    best, worst = kubelet.detection_window(spec)
    assert worst == 16  # k8s-semantics §3: F·P + T
    assert check.ch08.detection(worst)
    with pytest.raises(WrongAnswer, match="best case"):
        check.ch08.detection(best)
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch08.detection(15)
    assert check.ch08.detection(31, period_seconds=10, failure_threshold=3, timeout_seconds=1)  # the defaults
