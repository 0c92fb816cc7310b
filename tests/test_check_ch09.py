"""Chapter 09's checks (topology aware routing): right answers accepted, wrong ones refused with a
hint, the right answer computed from the lab (on a copy, the add-on applied there if missing),
never typed in, and the learner's lab left unchanged."""

from __future__ import annotations

import pandas as pd
import pytest

from kslab import check
from kslab.check import WrongAnswer, _hint_choice
from kslab.lab import Lab
from kslab.resources import study_lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = Lab(seed=9)
    lab.apply(study_lab() / "topology")
    return lab


def test_every_ch09_check_is_pending_on_none(lab):
    for fn in (check.ch09.four_endpoints, check.ch09.smallest_hinted, check.ch09.cross_zone_share, check.ch09.precedence):
        fb = fn(None, lab)
        assert not fb and "not answered" in fb.message


def test_the_hint_letter_follows_the_slice():
    def table(*hints):
        return pd.DataFrame({"ready": [True] * len(hints) + [False], "for_zones": [*hints, ""]})

    assert _hint_choice(table("a", "b", "c")) == "a"  # an unready endpoint without a hint does not count
    assert _hint_choice(table("", "", "")) == "b"
    assert _hint_choice(table("a", "", "c")) == "c"


def test_four_endpoints_follows_the_lab_not_a_typed_answer(lab):
    """Six endpoints fit three equal zones (minimum 2 each): (a) is then right, (b) is not."""
    assert check.ch09.four_endpoints("a", lab, replicas=6)
    with pytest.raises(WrongAnswer):
        check.ch09.four_endpoints("b", lab, replicas=6)


def test_smallest_hinted_above_7_is_9(lab):
    fb = check.ch09.smallest_hinted(9, lab)
    assert fb and "8 did not" in fb.message
    with pytest.raises(WrongAnswer, match="8 gets no hints"):
        check.ch09.smallest_hinted(8, lab)
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch09.smallest_hinted(12, lab)
    with pytest.raises(WrongAnswer, match="number"):
        check.ch09.smallest_hinted("nine", lab)
    assert check.ch09.smallest_hinted(6, lab, above=3)  # 4 and 5 get none


def test_cross_zone_share_is_measured_after_the_placement(lab):
    fb = check.ch09.cross_zone_share(0.5, lab)
    assert fb and "2 endpoints are hinted for ap-northeast-2a, 1 of them in another zone" in fb.message
    assert check.ch09.cross_zone_share(50, lab)  # a percentage
    for wrong in (0, 2 / 3, 1):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch09.cross_zone_share(wrong, lab)
    # zone c's own client in the same placement: its 4 pods keep 2 for itself, nothing crosses
    assert check.ch09.cross_zone_share(0, lab, client="net-2c")
    with pytest.raises(WrongAnswer):
        check.ch09.cross_zone_share(0.5, lab, client="net-2c")


def test_precedence_the_old_key_wins(lab):
    fb = check.ch09.precedence(False, lab)
    assert fb and "topology-aware-hints first" in fb.message
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch09.precedence(True, lab)
    with pytest.raises(WrongAnswer, match="True or False"):
        check.ch09.precedence("no", lab)
    assert check.ch09.precedence(True, lab, old="auto", new="Disabled")  # the old key says auto: hints


def test_ch09_checks_leave_the_learners_lab_unchanged(lab):
    before = {n.name: lab.save_text(n.name) for n in lab.cluster.nodes}
    annotations = dict(lab.cluster.service("svc-zone").annotations)
    pods = lab.pods("app=zone-websrv")
    check.ch09.four_endpoints("b", lab)
    check.ch09.precedence(False, lab)
    check.ch09.cross_zone_share(0.5, lab)
    assert {n.name: lab.save_text(n.name) for n in lab.cluster.nodes} == before
    assert lab.cluster.service("svc-zone").annotations == annotations and lab.pods("app=zone-websrv") == pods


def test_ch09_checks_apply_the_addon_to_their_copy():
    bare = Lab(seed=9)
    assert check.ch09.precedence(False, bare)
    assert not any(s.name == "svc-zone" for s in bare.cluster.services)
