"""The multiple-choice checks of chapters 06-09, one table: the right letter accepted (any
case, spaces and parentheses around it), with a message that explains it; every other letter
refused with a hint; a letter that is no choice refused saying which ones are. The right letter
is read from the lab (tests/test_check_ch06.py, tests/test_check_ch07.py, tests/test_check_ch08.py,
tests/test_check_ch09.py check that it follows it)."""

from __future__ import annotations

import pytest

from kslab import check
from kslab.check import WrongAnswer
from kslab.lab import Lab

CHOICES = [
    # check, the lab's seed, the right letter, in its message, the wrong letters, what a non-choice is told
    pytest.param(check.ch06.control_plane, 6, "b", "worker", ("a", "c"), "which one", id="ch06.control_plane"),
    pytest.param(check.ch07.local_drop, 7, "c", "has no local endpoints", ("a", "b"), "'a', 'b' or 'c'", id="ch07.local_drop"),
    pytest.param(check.ch08.after_failure, 8, "b", "notReadyAddresses", ("a", "c"), "'a', 'b' or 'c'", id="ch08.after_failure"),
    pytest.param(check.ch09.four_endpoints, 9, "b", "Unable to allocate minimum required endpoints", ("a", "c"), "'a', 'b' or 'c'",
                 id="ch09.four_endpoints"),
]


@pytest.mark.parametrize("fn, seed, right, says, wrongs, no_choice", CHOICES)
def test_the_right_letter_is_accepted_and_the_others_refused(fn, seed, right, says, wrongs, no_choice):
    lab = Lab(seed=seed)
    fb = fn(right, lab)
    assert fb and says in fb.message
    assert fn(f" ({right.upper()}) ", lab)
    for wrong in wrongs:
        with pytest.raises(WrongAnswer, match="Hint"):
            fn(wrong, lab)
    with pytest.raises(WrongAnswer, match=no_choice):
        fn("d", lab)
