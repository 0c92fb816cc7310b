"""The netfilter interpreter's semantics on small hand-written rulesets."""

from __future__ import annotations

import random

import pytest

from kslab.errors import InputError
from kslab.sim.netfilter import Netfilter
from kslab.sim.packet import HookContext, NamespaceState, Packet


def nf(text: str) -> Netfilter:
    return Netfilter.from_text(text, name="n1")


def ctx(hook: str, state: NamespaceState | None = None, ct: str = "NEW", now: float = 0.0, local=("192.168.0.2",)) -> HookContext:
    return HookContext(hook=hook, local_addresses=frozenset(local), now=now, state=state or NamespaceState(), ct_state=ct)


def pkt(src="10.0.0.1", dst="10.96.0.10", dport=80, proto="tcp", **kw) -> Packet:
    return Packet(src=src, dst=dst, proto=proto, sport=40000, dport=dport, **kw)


def test_jump_return_goto_and_policy():
    rules = nf("""*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A FORWARD -j A
-A FORWARD -s 10.0.0.1/32 -j ACCEPT
-A A -g B
-A A -j DROP
-A B -j C
-A B -j RETURN
-A C -j RETURN
COMMIT
""")
    res = rules.run_hook("FORWARD", pkt(), ctx("FORWARD"))
    # A goes to B (goto: no return point in A), B's RETURN goes back to FORWARD, which accepts
    assert res.verdict == "ACCEPT"
    assert res.chains == ["A", "B", "C"]
    res = rules.run_hook("FORWARD", pkt(src="10.0.0.9"), ctx("FORWARD"))
    assert res.verdict == "DROP"  # FORWARD's policy


def test_builtin_policy_dash_loads_as_accept():
    """A dump declaring ``:INPUT - [0:0]`` (issue 9) loads like iptables-restore loads it: the
    built-in chain keeps its policy (ACCEPT in a new table); a bad policy is one InputError line."""
    rules = nf("""*filter
:INPUT - [0:0]
:FORWARD DROP [0:0]
:OUTPUT - [0:0]
:A - [0:0]
-A INPUT -s 10.0.0.9/32 -j A
-A A -j DROP
COMMIT
""")
    assert rules.run_hook("INPUT", pkt(), ctx("INPUT")).verdict == "ACCEPT"  # INPUT's policy
    assert rules.run_hook("INPUT", pkt(src="10.0.0.9"), ctx("INPUT")).verdict == "DROP"
    assert rules.run_hook("FORWARD", pkt(), ctx("FORWARD")).verdict == "DROP"
    assert rules.run_hook("OUTPUT", pkt(), ctx("OUTPUT")).verdict == "ACCEPT"
    with pytest.raises(InputError) as e:
        nf("*filter\n:INPUT RETURN [0:0]\nCOMMIT\n")
    assert "bad policy 'RETURN' for built-in chain INPUT" in str(e.value) and "\n" not in str(e.value)


def test_nat_only_for_new_connections_and_dnat_is_applied_at_once():
    rules = nf("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.1.5:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 10.244.1.5/32 -j REJECT
COMMIT
""")
    p = pkt()
    res = rules.run_hook("PREROUTING", p, ctx("PREROUTING"))
    assert res.nat.kind == "DNAT" and (p.dst, p.dport) == ("10.244.1.5", 8080)
    assert rules.run_hook("FORWARD", p, ctx("FORWARD")).verdict == "REJECT"  # the filter table sees the new address
    p2 = pkt()
    assert rules.run_hook("PREROUTING", p2, ctx("PREROUTING", ct="ESTABLISHED")).nat is None
    assert p2.dst == "10.96.0.10"


def test_mark_arithmetic_and_mark_match():
    rules = nf("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -j KUBE-MARK-MASQ
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
COMMIT
""")
    p = pkt(mark=0x1)
    rules.run_hook("PREROUTING", p, ctx("PREROUTING"))
    assert p.mark == 0x4001
    res = rules.run_hook("POSTROUTING", p, ctx("POSTROUTING"))
    assert res.nat.kind == "MASQUERADE" and res.nat.random_fully and p.mark == 0x1
    q = pkt()
    assert rules.run_hook("POSTROUTING", q, ctx("POSTROUTING")).nat is None


def test_statistic_matches_like_the_kernel_and_repeats_per_seed():
    text = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 10.0.0.1:80
-A PREROUTING -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.0.0.2:80
-A PREROUTING -j DNAT --to-destination 10.0.0.3:80
COMMIT
"""
    rules = nf(text)

    def draws(seed: int, n: int) -> list[str]:
        state = NamespaceState(rng=random.Random(seed))
        out = []
        for _ in range(n):
            p = pkt()
            rules.run_hook("PREROUTING", p, ctx("PREROUTING", state))
            out.append(p.dst)
        return out

    d = draws(1, 30000)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert abs(d.count(ip) / 30000 - 1 / 3) < 0.012
    assert draws(7, 500) == draws(7, 500) and draws(7, 500) != draws(8, 500)


def test_recent_set_rcheck_seconds_reap_and_list_size():
    rules = nf("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m recent --name SEP --rcheck --seconds 10 --reap -j DNAT --to-destination 10.0.0.1:80
-A PREROUTING -m recent --name SEP --set -j DNAT --to-destination 10.0.0.2:80
COMMIT
""")
    state = NamespaceState()

    def go(src: str, now: float) -> str:
        p = pkt(src=src)
        rules.run_hook("PREROUTING", p, ctx("PREROUTING", state, now=now))
        return p.dst

    assert go("1.1.1.1", 0) == "10.0.0.2"  # first: --set
    assert go("1.1.1.1", 5) == "10.0.0.1"  # within 10 s: --rcheck hits
    assert go("1.1.1.1", 16) == "10.0.0.2"  # 11 s after the last stamp... the rcheck misses, --set renews
    assert go("1.1.1.1", 20) == "10.0.0.1"
    for i in range(150):  # xt_recent keeps at most 100 addresses per list, least recently used out
        go(f"2.2.{i // 250}.{i % 250}", 21)
    assert len(state.recent["SEP"]) == 100 and "1.1.1.1" not in state.recent["SEP"]


def test_addrtype_conntrack_interfaces_multiport_nfacct():
    rules = nf("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m addrtype --dst-type LOCAL -p udp -m multiport --dports 53,5000:5010 -m nfacct --nfacct-name c1 -j DROP
-A FORWARD -i veth+ ! -o eth0 -j REJECT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
""")
    state = NamespaceState()
    assert rules.run_hook("INPUT", pkt(dst="192.168.0.2", dport=5005, proto="udp"), ctx("INPUT", state)).verdict == "DROP"
    assert rules.run_hook("INPUT", pkt(dst="192.168.0.3", dport=53, proto="udp"), ctx("INPUT", state)).verdict == "ACCEPT"
    assert state.nfacct == {"c1": 1}
    assert rules.run_hook("FORWARD", pkt(in_iface="veth12", out_iface="veth9"), ctx("FORWARD")).verdict == "REJECT"
    assert rules.run_hook("FORWARD", pkt(in_iface="veth12", out_iface="eth0"), ctx("FORWARD", ct="INVALID")).verdict == "DROP"


def test_unknown_extension_fails_with_the_rule_named_only_when_reached():
    rules = nf("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 10.9.0.0/16 -m physdev --physdev-is-bridged -j ACCEPT
COMMIT
""")
    assert rules.run_hook("FORWARD", pkt(), ctx("FORWARD")).verdict == "ACCEPT"  # never reaches the rule's match
    with pytest.raises(InputError) as e:
        rules.run_hook("FORWARD", pkt(src="10.9.1.1"), ctx("FORWARD"))
    msg = str(e.value)
    assert "physdev" in msg and "-A FORWARD" in msg and "\n" not in msg


def test_indexed_chain_equals_linear_scan_and_counts_like_the_kernel():
    from kslab.model import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.iptables import render

    services, slices = [], []
    for i in range(300):
        services.append(Service(name=f"s{i}", namespace="ns", cluster_ip=f"10.96.{i // 200}.{i % 200 + 1}",
                                ports=[ServicePort(port=80 + i % 3, name="p")]))
        slices.append(EndpointSlice(name=f"s{i}-x", namespace="ns", service_name=f"s{i}", ports=[EndpointPort(80 + i % 3, "p", "TCP")],
                                    endpoints=[Endpoint([f"10.244.{i // 200}.{i % 200 + 1}"])]))
    text = render(services, slices, ProxyConfig(node_name="n", cluster_cidr="10.244.0.0/16")).save_text()
    indexed = Netfilter.from_text(text)
    assert indexed.chains["nat"]["KUBE-SERVICES"].index is not None
    linear = Netfilter.from_text(text)
    linear.chains["nat"]["KUBE-SERVICES"].index = None
    ks = linear.chains["nat"]["KUBE-SERVICES"].rules
    for i in (0, 7, 150, 299):
        for dst, port in ((f"10.96.{i // 200}.{i % 200 + 1}", 80 + i % 3), (f"10.96.{i // 200}.{i % 200 + 1}", 9999)):
            a, b = pkt(src="10.244.9.9", dst=dst, dport=port), pkt(src="10.244.9.9", dst=dst, dport=port)
            ra = indexed.run_hook("PREROUTING", a, ctx("PREROUTING", NamespaceState(rng=random.Random(1))))
            rb = linear.run_hook("PREROUTING", b, ctx("PREROUTING", NamespaceState(rng=random.Random(1))))
            assert (a.dst, a.dport, ra.chains, ra.rules_evaluated) == (b.dst, b.dport, rb.chains, rb.rules_evaluated)
            if port == 9999:  # a miss walks the whole chain in the kernel
                assert ra.rules_evaluated >= len(ks)
