"""Instant feedback for the chapters' exercises: ``kslab.check.ch01.ladder(answer)``.

A check prints one line: "not answered yet" for ``None`` (so a learner's notebook runs top to
bottom), a confirmation for a right answer, and raises :class:`WrongAnswer` with a hint for a
wrong one. The right answers are computed from kslab itself (the renderer, the sim), never
typed in, so a check stays true if the behaviour it asks about is true.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence


class WrongAnswer(AssertionError):
    """A wrong answer; the message says what was expected and gives a hint."""


def _pending(what: str) -> bool:
    print(f"… {what}: not answered yet (replace None with your answer and run the cell again)")
    return False


def _ok(msg: str) -> bool:
    print(f"✓ {msg}")
    return True


def _close(a: Sequence[float], b: Sequence[float], tol: float = 1e-3) -> bool:
    return len(a) == len(b) and all(math.isclose(float(x), float(y), abs_tol=tol) for x, y in zip(a, b))


# ---- chapter 01: ClusterIP and kube-proxy's chains -----------------------------------------------


def _ladder(answer: Any, n: int = 4) -> bool:
    from .proxy.iptables import _probability

    if answer is None:
        return _pending(f"the probabilities of the {n}-endpoint ladder")
    expected = [float(_probability(n - i)) for i in range(n - 1)]
    try:
        got = [float(x) for x in answer]
    except (TypeError, ValueError):
        raise WrongAnswer(f"give a list of {n - 1} numbers, one per statistic rule (the last rule has none)") from None
    if _close(got, expected):
        return _ok(f"rule i of {n} matches with 1/({n}-i): {', '.join(f'{p:.4f}' for p in expected)}, then the last rule "
                   "takes whatever is left, so every endpoint gets 1/{n}".replace("{n}", str(n)))
    raise WrongAnswer(f"not quite: {got}. Hint: the first rule sees all connections and must keep 1/{n} of them; "
                      f"the second sees the remaining {n - 1}/{n} and must keep 1/{n} of the total ...")


def _chain_name(answer: Any, service_port: str = "default/svc-nodeport:svc-webport", protocol: str = "tcp") -> bool:
    from .proxy.serviceport import chain_hash

    if answer is None:
        return _pending(f"the KUBE-SVC chain of {service_port}")
    expected = "KUBE-SVC-" + chain_hash(service_port + protocol)
    if str(answer).strip() == expected:
        return _ok(f"{expected} = KUBE-SVC- + base32(sha256('{service_port}{protocol}'))[:16]")
    raise WrongAnswer(f"{answer!r} is not it. Hint: hash the service port name and the lower-case protocol with no "
                      "separator, e.g. kslab.proxy.serviceport.chain_hash('ns/name:port' + 'tcp')")


def _node_masquerade(answer: Any, lab=None) -> bool:
    from .lab import Lab

    if answer is None:
        return _pending("is a connection from myk8s-worker (the node itself) to svc-clusterip masqueraded")
    lab = lab or Lab(seed=0)
    expected = lab.trace("myk8s-worker", "svc-clusterip").masquerade
    if bool(answer) == expected:
        return _ok("yes: the node's own address is outside --cluster-cidr (10.10.0.0/16), so the SVC chain's first rule "
                   "(! -s 10.10.0.0/16 -j KUBE-MARK-MASQ) marks it and KUBE-POSTROUTING masquerades it"
                   if expected else "no masquerade")
    raise WrongAnswer("not quite. Hint: look at the first rule of KUBE-SVC-KBDEBIL6IU6WL7RF and at the node's source address")


ch01 = SimpleNamespace(ladder=_ladder, chain_name=_chain_name, node_masquerade=_node_masquerade)
