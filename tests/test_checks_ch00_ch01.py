"""Chapters 00 and 01's checks: the predict questions and the new-case exercises accept the
answer computed from the lab, hint on a wrong one, and never change the learner's lab."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kslab import check
from kslab.check import WrongAnswer
from kslab.lab import Lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab(seed=1)


def _b32(s: str) -> str:
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]


def test_source_seen_is_net_pods_own_address(lab: Lab) -> None:
    assert not check.ch00.source_seen(None, lab)
    assert check.ch00.source_seen("a", lab) and check.ch00.source_seen(" (A) ", lab)
    assert check.ch00.source_seen(lab.cluster.pod("net-pod").pod_ip, lab)  # the address itself
    for wrong in ("b", "c", lab.cluster.node("myk8s-control-plane").internal_ip, "x"):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch00.source_seen(wrong, lab)


def test_source_seen_follows_the_lab_not_a_typed_answer() -> None:
    """With kube-proxy's --masquerade-all the SVC chain marks every connection: the webpod then
    sees net-pod's node (its veth's address), which is neither option, so no answer is right."""
    masq = Lab(seed=1, proxy={"masquerade_all": True})
    t = masq.trace("net-pod", "svc-clusterip")
    assert t.masquerade and t.source_ip_seen != masq.cluster.pod("net-pod").pod_ip
    with pytest.raises(WrongAnswer):
        check.ch00.source_seen("a", masq)


def test_client_node_for_a_new_client(lab: Lab) -> None:
    assert check.ch00.client_node("myk8s-worker2", lab, client="webpod2")
    assert check.ch00.client_node("myk8s-control-plane", lab)  # net-pod, the chapter's own case
    with pytest.raises(WrongAnswer, match="Hint"):
        check.ch00.client_node("myk8s-control-plane", lab, client="webpod2")


def test_nodes_with_rules_from_the_studys_command(lab: Lab) -> None:
    counted = sum("svc-clusterip" in lab.sh(n.name, "iptables -t nat -S KUBE-SERVICES") for n in lab.cluster.nodes)
    assert counted == 4 and check.ch00.nodes_with_rules(counted, lab)
    with pytest.raises(WrongAnswer):
        check.ch00.nodes_with_rules(3, lab)


def test_middle_rule_share_is_read_from_the_counters(lab: Lab) -> None:
    share = check._middle_rule_share(lab)
    assert abs(share - 1 / 3) < 0.03
    assert not check.ch01.middle_rule(None, lab)
    assert check.ch01.middle_rule("b", lab) and check.ch01.middle_rule("(B)", lab)
    for wrong in ("a", "c"):
        with pytest.raises(WrongAnswer, match="Hint"):
            check.ch01.middle_rule(wrong, lab)
    with pytest.raises(WrongAnswer, match="'a', 'b' or 'c'"):
        check.ch01.middle_rule(0.33, lab)


def test_middle_rule_changes_with_the_ladder() -> None:
    """With two endpoints the 0.5 rule is the first rule: it counts half of all connections."""
    two = Lab(seed=1)
    two.delete_pod("webpod3")
    assert abs(check._middle_rule_share(two) - 1 / 2) < 0.03
    assert check.ch01.middle_rule("a", two)
    with pytest.raises(WrongAnswer):
        check.ch01.middle_rule("b", two)


def test_chain_name_is_the_formula_the_chapter_states() -> None:
    right = "KUBE-SVC-" + _b32("default/svc-nodeport:svc-webport" + "tcp")
    assert check.ch01.chain_name(right)
    for wrong in ("KUBE-SVC-" + _b32("default/svc-nodeport:svc-webport"),  # protocol left out
                  "KUBE-SVC-" + _b32("default/svc-nodeport:svc-webport/tcp"),  # a separator
                  "KUBE-SVC-KBDEBIL6IU6WL7RF"):  # svc-clusterip's
        with pytest.raises(WrongAnswer, match="hashlib.sha256"):
            check.ch01.chain_name(wrong)
    assert "KUBE-SVC-" + _b32("default/svc-clusterip:svc-webporttcp") == "KUBE-SVC-KBDEBIL6IU6WL7RF"


def test_checks_leave_the_learners_lab_unchanged(lab: Lab) -> None:
    before = (lab.sh("myk8s-control-plane", "iptables -t nat -L KUBE-SVC-KBDEBIL6IU6WL7RF -n -v -x"),
              lab.sh("myk8s-control-plane", "conntrack -L"), lab.now)
    check.ch01.middle_rule("b", lab)
    check.ch00.source_seen("a", lab)
    check.ch01.node_masquerade(True, lab)
    after = (lab.sh("myk8s-control-plane", "iptables -t nat -L KUBE-SVC-KBDEBIL6IU6WL7RF -n -v -x"),
             lab.sh("myk8s-control-plane", "conntrack -L"), lab.now)
    assert before == after


def all_third_ladder_shares(n: int = 27_000, seed: int = 1) -> tuple[list[float], float]:
    """Chapter 01's "what if all three rules said 1/3?": the control plane's rules as kube-proxy
    renders them, with svc-clusterip's three endpoint rules rewritten by hand to
    ``--probability 0.3333333333`` each (iptables-restore text), loaded into the simulator's
    netfilter, and ``n`` new connections from net-pod sent through PREROUTING. Returns the share
    each rule matched (in order) and the share no rule matched (no DNAT)."""
    import random
    import re

    from kslab.controlplane import load_cluster
    from kslab.proxy.iptables import render_node
    from kslab.sim.netfilter import Netfilter
    from kslab.sim.packet import HookContext, NamespaceState, Packet

    st = load_cluster(["data/myk8s"], seed=1)
    cp = "myk8s-control-plane"
    svc_chain = "KUBE-SVC-" + _b32("default/svc-clusterip:svc-webporttcp")
    lines = render_node(st, cp).save_text().splitlines()
    jumps = [i for i, line in enumerate(lines) if line.startswith(f"-A {svc_chain} ") and "-j KUBE-SEP-" in line]
    assert len(jumps) == 3
    for i in jumps:  # the ladder 1/3, 1/2, (none) becomes 1/3, 1/3, 1/3
        line = re.sub(r" -m statistic --mode random --probability [\d.]+", "", lines[i])
        lines[i] = line.replace(" -j KUBE-SEP-", " -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-")
    nf = Netfilter.from_text("\n".join(lines) + "\n", name=cp, strict=True)
    assert [r.count("--probability 0.33333333349") for r in nf.chain_rules("nat", svc_chain)[1:]] == [1, 1, 1]
    pods = [st.pod(f"webpod{i}").pod_ip for i in (1, 2, 3)]
    net_pod, svc = st.pod("net-pod"), st.service("svc-clusterip")
    state = NamespaceState(rng=random.Random(seed))
    local = frozenset({st.node(cp).internal_ip})
    landed = {ip: 0 for ip in pods}
    missed = 0
    for k in range(n):
        p = Packet(src=net_pod.pod_ip, dst=svc.cluster_ip, proto="tcp", sport=1024 + k % 60000, dport=9000, in_iface="veth-net-pod")
        res = nf.run_hook("PREROUTING", p, HookContext(hook="PREROUTING", local_addresses=local, now=0.0, state=state, ct_state="NEW"),
                          trace=False)
        if res.nat is None:
            assert p.dst == svc.cluster_ip  # no rule matched: the packet still heads for the ClusterIP
            missed += 1
        else:
            landed[p.dst] += 1
    return [landed[ip] / n for ip in pods], missed / n


def test_an_all_third_ladder_leaves_8_27_unmatched() -> None:
    """Measured, not computed: 1/3, 2/9, 4/27 to the three rules and 8/27 to none (chapter 01
    states these numbers from this run)."""
    shares, missed = all_third_ladder_shares()
    expected = [1 / 3, 2 / 9, 4 / 27]
    assert all(abs(got - want) < 0.01 for got, want in zip(shares, expected)), shares
    assert abs(missed - 8 / 27) < 0.01, missed
    assert abs(sum(shares) + missed - 1) < 1e-12
    print(f"all-1/3 ladder over 27,000 connections: rules {[f'{s:.2%}' for s in shares]}, unmatched {missed:.2%}")
