"""kslab.sim.nftables: kube-proxy's nftables ruleset executed the way nf_tables executes it.

The rulesets are the renderer's (kslab.proxy.nftables) or upstream's reference case; the cases
of upstream's own packet tracer (``runPacketFlowTests`` in pkg/proxy/nftables/proxier_test.go)
are ported at the end.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from kslab.controlplane import load_cluster
from kslab.errors import InputError
from kslab.nft import NftState
from kslab.proxy.config import ProxyConfig
from kslab.proxy.nftables import render
from kslab.sim.nftables import NftNetfilter
from kslab.sim.packet import HookContext, NamespaceState, Packet
from kslab.sim.single import trace_netfilter

REPO = Path(__file__).resolve().parents[1]
CASE = REPO / "tests" / "data" / "kube-proxy" / "nftables-overall.expected.txt"
FLOWS = REPO / "tests" / "data" / "nftables-packet-flow"
NODE_IP = "192.168.0.2"
NODE_IPS = {"192.168.0.2", "192.168.1.2", "192.168.99.11"}  # upstream's testNodeIPs (IPv4)
LOCAL = frozenset(NODE_IPS | {"127.0.0.1"})


def upstream_config(**kw) -> ProxyConfig:
    """NewFakeProxier's settings (pkg/proxy/nftables/proxier_test.go)."""
    base = dict(node_name="test-node", node_ips=("192.168.0.2", "192.168.1.2", "192.168.99.11"), cluster_cidr="10.0.0.0/8",
                service_cidrs=("172.30.0.0/16",), nodeport_addresses=("192.168.0.2/32",))
    base.update(kw)
    return ProxyConfig(**base)


def loaded(ruleset) -> tuple[NftState, NftNetfilter]:
    state = NftState()
    state.apply(ruleset.raw_text())
    return state, NftNetfilter.from_state(state, name="test-node", strict=True)


def rendered(yaml_path: Path, **kw) -> NftNetfilter:
    st = load_cluster([yaml_path], as_is=True)
    return loaded(render(st.services, st.endpoint_slices, upstream_config(**kw)))[1]


def write_yaml(tmp_path: Path, docs: list[str]) -> Path:
    p = tmp_path / "cluster.yaml"
    p.write_text("\n---\n".join(docs) + "\n")
    return p


def service_doc(name: str, ip: str, *, endpoints: int = 1, port: int = 80, affinity: int | None = None,
                net: str = "10.180") -> list[str]:
    aff = (f"\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {affinity}}}}}"
           if affinity else "")
    svc = (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\n"
           f"spec:\n  clusterIP: {ip}{aff}\n  ports: [{{name: p, port: {port}, protocol: TCP}}]")
    idx = int(ip.rsplit(".", 1)[1]) + 250 * int(ip.split(".")[2])  # up to 5 endpoints per Service, distinct addresses
    eps = ", ".join(f"{{addresses: [{net}.{idx // 50}.{(idx % 50) * 5 + k + 1}]}}" for k in range(endpoints))
    slc = (f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
           f"metadata: {{name: {name}-1, namespace: ns, labels: {{kubernetes.io/service-name: {name}}}}}\n"
           f"addressType: IPv4\nendpoints: [{eps}]\nports: [{{name: p, port: 8080, protocol: TCP}}]")
    return [svc, slc]


@pytest.fixture(scope="module")
def case() -> NftNetfilter:
    return NftNetfilter.from_text(CASE.read_text(), name="test-node", strict=True)


def trace(nf, src: str, to: str, *, seed: int = 0, local=NODE_IPS):
    host, _, rest = to.partition(":")
    port, _, proto = rest.partition("/")
    return trace_netfilter(nf, node_ip=NODE_IP, src=src, dst=host, dport=int(port), proto=proto or "tcp", seed=seed,
                           local_addresses=set(local))


def first_packet(nf: NftNetfilter, state: NamespaceState, src: str, dst: str, dport: int, now: float = 0.0):
    """One new connection's first packet through PREROUTING (where kube-proxy's DNAT happens)."""
    pkt = Packet(src, dst, "tcp", 40000, dport, in_iface="eth0")
    res = nf.run_hook("PREROUTING", pkt, HookContext("PREROUTING", LOCAL, now, state))
    return res, pkt


def matched(conn) -> list[str]:
    return [s.rule for s in conn.steps if s.event == "rule"]


# ---- dispatch ------------------------------------------------------------------------------


def test_vmap_dispatch_is_one_rule_naming_its_element(case):
    conn = trace(case, "10.0.0.2", "172.30.0.41:80")
    assert conn.dnat_to == "10.180.0.1:80" and not conn.masquerade
    step = next(s for s in conn.steps if s.chain == "services" and s.event == "rule")
    assert step.rule == "ip daddr . meta l4proto . th dport vmap @service-ips"
    assert "172.30.0.41 . tcp . 80" in step.detail and "@service-ips" in step.detail
    assert conn.chains[:2] == ["firewall-check", "services"]
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80" in conn.chains
    assert "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80" in conn.chains


def test_rules_evaluated_stay_flat_as_services_grow(tmp_path):
    """nftables: a verdict-map lookup is one rule whatever the number of Services; iptables
    mode scans KUBE-SERVICES (one rule per Service port) before it finds the Service."""
    from kslab.proxy.iptables import render as render_iptables
    from kslab.sim.netfilter import Netfilter

    nft_cost, ipt_cost = {}, {}
    for n in (10, 400):
        docs = []
        for i in range(n):
            docs += service_doc(f"s{i}", f"172.30.{i // 250}.{i % 250 + 1}")
        st = load_cluster([write_yaml(tmp_path, docs)], as_is=True)
        cfg = upstream_config()
        nf = loaded(render(st.services, st.endpoint_slices, cfg))[1]
        last = max(st.services, key=lambda sv: sv.name).cluster_ip  # the last one KUBE-SERVICES lists (sorted by name)
        nft_cost[n] = trace(nf, "10.0.0.2", f"{last}:80").rules_evaluated
        ipt = Netfilter.from_text(render_iptables(st.services, st.endpoint_slices, cfg).save_text())
        ipt_conn = trace(ipt, "10.0.0.2", f"{last}:80")
        assert ipt_conn.dnat_to and ipt_conn.dnat_to == trace(nf, "10.0.0.2", f"{last}:80").dnat_to
        ipt_cost[n] = ipt_conn.rules_evaluated
    assert nft_cost[10] == nft_cost[400]
    assert ipt_cost[400] - ipt_cost[10] >= 300


# ---- numgen --------------------------------------------------------------------------------


CHI2_999 = {1: 10.83, 2: 13.82, 4: 18.47}  # chi-square quantile 0.999 by degrees of freedom


@pytest.mark.parametrize("endpoints", [2, 3, 5])
def test_numgen_spreads_evenly_chi_square(tmp_path, endpoints):
    st = load_cluster([write_yaml(tmp_path, service_doc("web", "172.30.0.10", endpoints=endpoints))], as_is=True)
    nf = loaded(render(st.services, st.endpoint_slices, upstream_config()))[1]
    state = NamespaceState(rng=random.Random(11))
    n = 3000
    counts = Counter()
    for _ in range(n):
        _, pkt = first_packet(nf, state, "10.0.0.2", "172.30.0.10", 80)
        counts[pkt.dst] += 1
    assert len(counts) == endpoints
    expected = n / endpoints
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < CHI2_999[endpoints - 1], counts


def test_numgen_draw_is_the_kernels_reciprocal_scale_and_repeats_with_the_seed():
    state = NamespaceState(rng=random.Random(5))
    drawn = [state.numgen(3) for _ in range(50)]
    ref = random.Random(5)
    assert drawn == [(ref.getrandbits(32) * 3) >> 32 for _ in range(50)]
    again = NamespaceState(rng=random.Random(5))
    assert [again.numgen(3) for _ in range(50)] == drawn


def test_numgen_draws_are_recorded_and_replayed():
    state = NamespaceState(rng=random.Random(1))
    state.recorder = []
    values = [state.numgen(4) for _ in range(5)]
    assert [d[0] for d in state.recorder] == ["numgen"] * 5 and [d[3] for d in state.recorder] == values
    replayed = NamespaceState(rng=random.Random(99))  # another generator: every value must come from the log
    replayed.replay = [(kind, replayed, param, outcome, value) for kind, _, param, outcome, value in state.recorder]
    assert [replayed.numgen(4) for _ in range(5)] == values


# ---- session affinity ----------------------------------------------------------------------


def test_affinity_set_sticks_until_its_timeout_and_survives_a_reload(tmp_path):
    st = load_cluster([write_yaml(tmp_path, service_doc("sticky", "172.30.0.20", endpoints=3, affinity=10))], as_is=True)
    ruleset = render(st.services, st.endpoint_slices, upstream_config())
    assert "flags dynamic,timeout ; timeout 10s" in ruleset.raw_text()
    nft_state, nf = loaded(ruleset)
    state = NamespaceState(rng=random.Random(3))
    res, pkt = first_packet(nf, state, "10.0.0.7", "172.30.0.20", 80, now=100.0)
    first = pkt.dst
    assert any(s.rule.startswith("numgen random mod 3") for s in res.steps if s.event == "rule")
    assert any(s.rule.startswith("update @affinity-") for s in res.steps if s.event == "rule")
    # within the timeout every connection of that client goes to the same endpoint, by the set
    for now in (100.5, 104.0, 109.9):
        res, pkt = first_packet(nf, state, "10.0.0.7", "172.30.0.20", 80, now=now)
        assert pkt.dst == first
        assert any(s.rule.startswith("ip saddr @affinity-") for s in res.steps if s.event == "rule")
        assert not any(s.rule.startswith("numgen") for s in res.steps if s.event == "rule")
    # the last update was at 109.9: the element lives 10 s from then, a reload keeps it
    nf2 = NftNetfilter.from_state(nft_state, name="test-node", previous=nf)
    res, pkt = first_packet(nf2, state, "10.0.0.7", "172.30.0.20", 80, now=119.8)
    assert pkt.dst == first and any(s.rule.startswith("ip saddr @affinity-") for s in res.steps if s.event == "rule")
    # 10 s after the last update (119.8): expired, numgen draws again
    res, pkt = first_packet(nf2, state, "10.0.0.7", "172.30.0.20", 80, now=129.8)
    assert any(s.rule.startswith("numgen random mod 3") for s in res.steps if s.event == "rule")
    # another client is not affected by the first one's element
    res, _ = first_packet(nf2, state, "10.0.0.8", "172.30.0.20", 80, now=130.0)
    assert any(s.rule.startswith("numgen") for s in res.steps if s.event == "rule")
    assert state.stateful  # the flow memo must not cache such a connection


# ---- verdicts ------------------------------------------------------------------------------


def test_no_endpoints_reject_vs_local_policy_drop(case):
    conn = trace(case, "10.0.0.2", "172.30.0.46:80")  # svc6: no endpoints at all
    assert conn.outcome == "rejected" and conn.dnat_to is None
    assert "reject-chain" in conn.chains and "reject" in matched(conn)
    # svc2 (externalTrafficPolicy Local, no local endpoint): outside traffic to its external IP is dropped
    conn = trace(case, "203.0.113.2", "192.168.99.22:80")
    assert conn.outcome == "dropped" and conn.dnat_to is None
    assert "ip daddr . meta l4proto . th dport vmap @no-endpoint-services" in matched(conn)
    # ... while a pod's connection short-circuits to the Service's endpoints
    conn = trace(case, "10.0.0.2", "192.168.99.22:80")
    assert conn.dnat_to == "10.180.0.2:80" and not conn.masquerade


def test_reject_is_icmp_port_unreachable(case):
    pkt = Packet("10.0.0.2", "172.30.0.46", "tcp", 40000, 80, in_iface="eth0", out_iface="eth0")
    res = case.run_hook("FORWARD", pkt, HookContext("FORWARD", LOCAL, 0.0, NamespaceState()))
    assert res.verdict == "REJECT" and res.reject_with == "icmp-port-unreachable"


def test_firewall_check_drops_sources_outside_load_balancer_source_ranges(case):
    blocked = trace(case, "203.0.113.130", "5.6.7.8:80")
    assert blocked.outcome == "dropped" and blocked.reason == "DROP in PREROUTING"
    assert 'ip saddr != 203.0.113.0/25 drop' in matched(blocked) or 'ip saddr != { 203.0.113.0/25 } drop' in matched(blocked)
    allowed = trace(case, "203.0.113.2", "5.6.7.8:80")
    assert allowed.dnat_to == "10.180.0.3:80" and allowed.masquerade


def test_cluster_ips_check_rejects_wrong_ports_and_drops_unallocated_ips(case):
    wrong_port = trace(case, "10.0.0.2", "172.30.0.41:443")
    assert wrong_port.outcome == "rejected"
    assert any("Reject traffic to invalid ports of ClusterIPs" in r for r in matched(wrong_port))
    unallocated = trace(case, "10.0.0.2", "172.30.0.50:80")
    assert unallocated.outcome == "dropped"
    assert any("Drop traffic to unallocated ClusterIPs" in r for r in matched(unallocated))
    # without --service-cidrs kube-proxy does not know the range: no such rule, the packet goes on
    nf = rendered(REPO / "tests" / "data" / "kube-proxy" / "overall-rules.yaml", service_cidrs=())
    assert trace(nf, "10.0.0.2", "172.30.0.50:80").outcome == "forwarded"


def test_fib_saddr_local_short_circuits_the_nodes_own_traffic(case):
    conn = trace(case, NODE_IP, "192.168.99.22:80")  # from the node itself, svc2's external IP (eTP Local)
    rules = matched(conn)
    assert 'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"' in rules
    assert 'fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"' in rules
    assert conn.dnat_to == "10.180.0.2:80" and conn.masquerade
    assert conn.steps[0].hook == "OUTPUT"


def test_masquerade_mark_set_in_prerouting_and_cleared_by_masquerading(case):
    state = NamespaceState(rng=random.Random(0))
    res, pkt = first_packet(case, state, "203.0.113.2", NODE_IP, 3003)  # svc3's NodePort
    assert pkt.dst == "10.180.0.3" and pkt.mark == 0x4000
    assert any(s.detail == "mark 0x0 -> 0x4000" for s in res.steps)
    ctx = HookContext("POSTROUTING", LOCAL, 0.0, state, ct_status=frozenset({"DNAT"}))
    post = case.run_hook("POSTROUTING", pkt, ctx)
    assert post.nat is not None and post.nat.kind == "MASQUERADE" and post.nat.random_fully
    assert pkt.mark == 0 and "SNAT" in ctx.ct_status
    # an unmarked packet returns from masquerading untouched
    pkt2 = Packet("10.0.0.2", "10.180.0.1", "tcp", 40001, 80, out_iface="eth0")
    post = case.run_hook("POSTROUTING", pkt2, HookContext("POSTROUTING", LOCAL, 0.0, state))
    assert post.nat is None


def test_nat_chains_see_only_new_connections(case):
    pkt = Packet("10.0.0.2", "172.30.0.41", "tcp", 40000, 80, in_iface="eth0")
    res = case.run_hook("PREROUTING", pkt, HookContext("PREROUTING", LOCAL, 0.0, NamespaceState(), ct_state="ESTABLISHED"))
    assert pkt.dst == "172.30.0.41" and res.nat is None
    assert any(s.event == "note" and "nat-prerouting" in s.detail for s in res.steps)


def test_list_form_and_transaction_form_run_alike(case):
    listed = NftNetfilter.from_text((REPO / "tests" / "data" / "nft" / "kube-proxy-overall.list.txt").read_text(), strict=True)
    assert listed.rule_count() == case.rule_count()
    for src, to in [("10.0.0.2", "172.30.0.41:80"), ("203.0.113.2", "192.168.0.2:3001"), ("203.0.113.130", "5.6.7.8:80"),
                    ("10.0.0.2", "172.30.0.41:443"), (NODE_IP, "192.168.99.22:80"), ("10.0.0.2", "172.30.0.44:80")]:
        a, b = trace(case, src, to, seed=4), trace(listed, src, to, seed=4)
        assert (a.outcome, a.dnat_to, a.masquerade, a.chains, a.rules_evaluated) == \
            (b.outcome, b.dnat_to, b.masquerade, b.chains, b.rules_evaluated), (src, to)


# ---- what the interpreter refuses ------------------------------------------------------------

ODD_RULE = """add table ip kube-proxy
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy odd
add rule ip kube-proxy nat-prerouting ip daddr 10.9.9.9 jump odd
add rule ip kube-proxy odd meta skuid 0 accept
"""


def test_an_unknown_expression_fails_at_load_when_strict_else_when_reached():
    with pytest.raises(InputError) as e:
        NftNetfilter.from_text(ODD_RULE, strict=True)
    assert "odd rule 1" in str(e.value) and "meta skuid 0 accept" in str(e.value) and "\n" not in str(e.value)
    nf = NftNetfilter.from_text(ODD_RULE)
    assert trace(nf, "10.0.0.2", "172.30.0.41:80").outcome == "forwarded"  # never reaches the rule
    with pytest.raises(InputError):
        trace(nf, "10.0.0.2", "10.9.9.9:80")


def test_a_jump_loop_is_refused_like_the_kernel_does():
    text = ODD_RULE.replace("add rule ip kube-proxy odd meta skuid 0 accept", "add rule ip kube-proxy odd goto odd")
    try:
        NftNetfilter.from_text(text, strict=True)
    except (InputError, ValueError) as e:  # at load, like nft (kslab.nft may refuse it already)
        assert "\n" not in str(e)
    else:
        raise AssertionError("a goto loop loaded")
    try:
        nf = NftNetfilter.from_text(text)  # without strict, rules compile when a packet first reaches them
    except (InputError, ValueError):
        return
    with pytest.raises(InputError, match="loop"):
        trace(nf, "10.0.0.2", "10.9.9.9:80")


def test_rules_compile_when_a_packet_first_enters_their_chain(case):
    lazy = NftNetfilter.from_text(CASE.read_text())
    assert lazy.rule_count() == case.rule_count()
    assert all(c.pending is not None for c in lazy.chains.values())
    conn = trace(lazy, "10.0.0.2", "172.30.0.41:80")
    assert conn.dnat_to == "10.180.0.1:80"
    compiled = {n for n, c in lazy.chains.items() if c.pending is None}
    assert "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80" in compiled
    assert "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80" not in compiled  # never entered


# ---- the simulated lab in nftables mode ----------------------------------------------------


@pytest.fixture(scope="module")
def nft_lab():
    from kslab.lab import Lab

    return Lab(proxy={"mode": "nftables"}, seed=3)


def test_lab_trace_json_keys_equal_iptables_mode(nft_lab):
    from kslab.lab import Lab

    ipt = Lab(seed=3).trace("net-pod", "svc-clusterip").to_dict()
    nft = nft_lab.trace("net-pod", "svc-clusterip").to_dict()
    assert nft.keys() == ipt.keys()
    assert nft["verdict"] == ipt["verdict"] == "ok"
    assert nft["dnat_to"] and nft["masquerade"] == ipt["masquerade"] is False
    assert {k for s in nft["steps"] for k in s} <= {k for s in ipt["steps"] for k in s} | {"rule_number", "rule", "detail"}
    assert any(s.get("table") == "kube-proxy" for s in nft["steps"])


def test_lab_connections_with_and_without_the_flow_memo_agree(nft_lab):
    net = nft_lab.dataplane.network
    client = net.client("net-pod")
    proto = "tcp"
    dst = nft_lab.cluster.service("svc-clusterip").cluster_ip
    port = nft_lab.cluster.service("svc-clusterip").ports[0].port
    net.reseed(21)
    net.memo, hits = True, net.memo_hits
    with_memo = [c.endpoint_pod for c in net.connect_many([client], dst, port, proto, 300)]
    assert net.memo_hits > hits
    net.reseed(21)
    net.memo = False
    try:
        without = [c.endpoint_pod for c in net.connect_many([client], dst, port, proto, 300)]
    finally:
        net.memo = True
    assert with_memo == without and len(set(with_memo)) == 3


def test_lab_shell_lists_the_nft_table_and_no_iptables_rules(nft_lab):
    node = "myk8s-worker"
    out = nft_lab.sh(node, "nft list table ip kube-proxy")
    assert out.returncode == 0 and out.startswith("table ip kube-proxy {\n")
    assert out == nft_lab.dataplane.nft_list(node)
    assert nft_lab.sh(node, "nft list ruleset") == out
    assert nft_lab.sh(node, "nft list tables") == "table ip kube-proxy\n"
    missing = nft_lab.sh(node, "nft list table ip nope")
    assert missing.returncode == 1 and missing.stderr.startswith("Error: No such file or directory\n")
    assert "KUBE-" not in nft_lab.sh(node, "iptables-save")
    assert int(nft_lab.sh(node, "nft list ruleset | grep -c svc-clusterip")) > 0
    with pytest.raises(InputError):
        nft_lab.sh(node, "nft flush ruleset")


def test_mode_switch_leaves_no_rules_of_the_other_mode():
    from kslab.dataplane.sim import SimDataplane
    from kslab.proxy.iptables import render_node as render_iptables_node
    from kslab.proxy.nftables import render_node as render_nft_node

    st = load_cluster([REPO / "data" / "myk8s"])
    dp = SimDataplane(st)
    node = "myk8s-worker"
    dp.sync_rules(node, render_iptables_node(st, node))
    assert any(c.startswith("KUBE-SVC-") for c in dp.nat_chains(node)) and dp.nft_list(node) == ""
    dp.sync_rules(node, render_nft_node(st, node))
    assert dp.mode(node) == "nftables" and not any(c.startswith("KUBE-") for c in dp.nat_chains(node))
    assert "services" in dp.existing_chains(node, "nftables")
    assert dp.network.nodes[node].netfilter.rule_count() > 0
    dp.sync_rules(node, render_iptables_node(st, node))
    assert dp.mode(node) == "iptables" and dp.nft_list(node) == "" and dp.existing_chains(node, "nftables") == []


# ---- upstream's packet-flow tests (pkg/proxy/nftables/proxier_test.go runPacketFlowTests) ----

EXT = "203.0.113.2"  # testExternalClient
BLOCKED = "203.0.113.130"  # testExternalClientBlocked
BOTH = "10.180.0.1:80, 10.180.2.1:80"

# (upstream test, its input file, extra config, [(case name, source, destination[/proto], output, masq)])
PACKET_FLOWS = [
    ("TestNoEndpointsReject", "no-endpoints-reject.yaml", {}, [
        ("pod to cluster IP with no endpoints", "10.0.0.2", "172.30.0.41:80", "REJECT", False),
        ("external to external IP with no endpoints", EXT, "192.168.99.11:80", "REJECT", False),
        ("pod to NodePort with no endpoints", "10.0.0.2", "192.168.0.2:3001", "REJECT", False),
        ("external to NodePort with no endpoints", EXT, "192.168.0.2:3001", "REJECT", False),
        ("pod to LoadBalancer IP with no endpoints", "10.0.0.2", "1.2.3.4:80", "REJECT", False),
        ("external to LoadBalancer IP with no endpoints", EXT, "1.2.3.4:80", "REJECT", False),
    ]),
    ("TestClusterIPGeneral", "cluster-ip-general.yaml", {}, [
        ("simple clusterIP", "10.180.0.2", "172.30.0.41:80", "10.180.0.1:80", False),
        ("hairpin to cluster IP", "10.180.0.1", "172.30.0.41:80", "10.180.0.1:80", True),
        ("clusterIP with multiple endpoints", "10.180.0.2", "172.30.0.42:80", BOTH, False),
        ("clusterIP with TargetPort", "10.180.0.2", "172.30.0.42:443", "10.180.0.1:8443, 10.180.2.1:8443", False),
        ("clusterIP with TCP, UDP, and SCTP on same port (TCP)", "10.180.0.2", "172.30.0.42:53/tcp",
         "10.180.0.1:5353, 10.180.2.1:5353", False),
        ("clusterIP with TCP, UDP, and SCTP on same port (UDP)", "10.180.0.2", "172.30.0.42:53/udp",
         "10.180.0.1:53, 10.180.2.1:53", False),
        ("clusterIP with TCP, UDP, and SCTP on same port (SCTP)", "10.180.0.2", "172.30.0.42:53/sctp",
         "10.180.0.1:53, 10.180.2.1:53", False),
        ("TCP-only port does not match UDP traffic", "10.180.0.2", "172.30.0.42:80/udp", "REJECT", False),
        ("svc1 does not accept svc2's ports", "10.180.0.2", "172.30.0.41:443", "REJECT", False),
        ("packet to unallocated cluster ip", "10.180.0.2", "172.30.0.50:80", "DROP", False),
    ]),
    ("TestLoadBalancer", "load-balancer.yaml", {}, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41:80", "10.180.0.1:80", False),
        ("external to nodePort", EXT, "192.168.0.2:3001", "10.180.0.1:80", True),
        ("nodePort bypasses LoadBalancerSourceRanges", BLOCKED, "192.168.0.2:3001", "10.180.0.1:80", True),
        ("accepted external to LB1", EXT, "1.2.3.4:80", "10.180.0.1:80", True),
        ("accepted external to LB2", EXT, "5.6.7.8:80", "10.180.0.1:80", True),
        ("blocked external to LB1", BLOCKED, "1.2.3.4:80", "DROP", False),
        ("blocked external to LB2", BLOCKED, "5.6.7.8:80", "DROP", False),
        ("pod to LB1 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "1.2.3.4:80", "DROP", False),
        ("pod to LB2 (blocked by LoadBalancerSourceRanges)", "10.0.0.2", "5.6.7.8:80", "DROP", False),
        ("node to LB1 (allowed by LoadBalancerSourceRanges)", NODE_IP, "1.2.3.4:80", "10.180.0.1:80", True),
        ("node to LB2 (allowed by LoadBalancerSourceRanges)", NODE_IP, "5.6.7.8:80", "10.180.0.1:80", True),
        ("same node to LB1, SNATted to LB1 (implicitly allowed)", "1.2.3.4", "1.2.3.4:80", "10.180.0.1:80", True),
        ("same node to LB2, SNATted to LB2 (implicitly allowed)", "5.6.7.8", "5.6.7.8:80", "10.180.0.1:80", True),
    ]),
    ("TestNodePorts/ipv4", "node-ports.yaml", {}, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41:80", BOTH, False),
        ("external to nodePort", EXT, "192.168.0.2:3001", BOTH, True),
        ("node to nodePort", NODE_IP, "192.168.0.2:3001", BOTH, True),
        ("secondary nodeIP ignores NodePorts", EXT, "192.168.1.2:3001", "", False),
    ]),
    ("TestNodePorts/ipv4, multiple nodeport-addresses", "node-ports.yaml",
     {"nodeport_addresses": ("192.168.0.0/24", "192.168.1.0/24")}, [
        ("pod to cluster IP", "10.0.0.2", "172.30.0.41:80", BOTH, False),
        ("external to nodePort", EXT, "192.168.0.2:3001", BOTH, True),
        ("node to nodePort", NODE_IP, "192.168.0.2:3001", BOTH, True),
        ("external to nodePort on secondary IP", EXT, "192.168.1.2:3001", BOTH, True),
    ]),
    ("TestExternalTrafficPolicyLocal", "etp-local.yaml", {}, [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41:80", BOTH, False),
        ("pod to external IP hits both endpoints, unmasqueraded", "10.0.0.2", "192.168.99.11:80", BOTH, False),
        ("external to external IP hits only local endpoint, unmasqueraded", EXT, "192.168.99.11:80", "10.180.2.1:80", False),
        ("pod to LB IP hits only both endpoints, unmasqueraded", "10.0.0.2", "1.2.3.4:80", BOTH, False),
        ("external to LB IP hits only local endpoint, unmasqueraded", EXT, "1.2.3.4:80", "10.180.2.1:80", False),
        ("pod to NodePort hits both endpoints, unmasqueraded", "10.0.0.2", "192.168.0.2:3001", BOTH, False),
        ("external to NodePort hits only local endpoint, unmasqueraded", EXT, "192.168.0.2:3001", "10.180.2.1:80", False),
    ]),
    ("TestExternalTrafficPolicyCluster", "etp-cluster.yaml", {}, [
        ("pod to cluster IP hits both endpoints, unmasqueraded", "10.0.0.2", "172.30.0.41:80", BOTH, False),
        ("pod to external IP hits both endpoints, masqueraded", "10.0.0.2", "192.168.99.11:80", BOTH, True),
        ("external to external IP hits both endpoints, masqueraded", EXT, "192.168.99.11:80", BOTH, True),
        ("pod to LB IP hits both endpoints, masqueraded", "10.0.0.2", "1.2.3.4:80", BOTH, True),
        ("external to LB IP hits both endpoints, masqueraded", EXT, "1.2.3.4:80", BOTH, True),
        ("pod to NodePort hits both endpoints, masqueraded", "10.0.0.2", "192.168.0.2:3001", BOTH, True),
        ("external to NodePort hits both endpoints, masqueraded", EXT, "192.168.0.2:3001", BOTH, True),
    ]),
]

_FLOW_CASES = [pytest.param(test, yaml, cfg, case, id=f"{test}: {case[0]}")
               for test, yaml, cfg, cases in PACKET_FLOWS for case in cases]
_loaded: dict[tuple, NftNetfilter] = {}


def _flow_table(yaml: str, cfg: dict) -> NftNetfilter:
    key = (yaml, tuple(sorted(cfg.items())))
    if key not in _loaded:
        _loaded[key] = rendered(FLOWS / yaml, **cfg)
    return _loaded[key]


def upstream_output(nf: NftNetfilter, src: str, to: str, seeds: int = 24) -> tuple[str, bool]:
    """What upstream's tracer reports: every endpoint the packet can be DNATed to (sorted,
    joined with ", "), or DROP/REJECT, or "" (accepted untouched); and whether it is masqueraded.
    kslab draws numgen, so the endpoints are gathered over several seeds."""
    outputs, masq = set(), set()
    for seed in range(seeds):
        conn = trace(nf, src, to, seed=seed)
        if conn.outcome in ("dropped", "rejected"):
            outputs.add("DROP" if conn.outcome == "dropped" else "REJECT")
        else:
            outputs.add(conn.dnat_to or "")
        masq.add(conn.masquerade)
    assert len(masq) == 1, "masquerading must not depend on the endpoint drawn"
    if len(outputs) > 1:
        assert not outputs & {"DROP", "REJECT", ""}, outputs
    return ", ".join(sorted(outputs)), masq.pop()


@pytest.mark.parametrize("test, yaml, cfg, case", _FLOW_CASES)
def test_upstream_packet_flow(test, yaml, cfg, case):
    name, src, to, output, masq = case
    got, got_masq = upstream_output(_flow_table(yaml, cfg), src, to)
    assert (got, got_masq) == (output, masq), f"{test} {name!r}"


def test_load_nft_keeps_the_table_and_empties_affinity_sets(tmp_path):
    """SimDataplane.load_nft (what a sim copy of a lab starts from: each node's nft listing);
    dynamic sets are connection state, so they start empty as conntrack does."""
    from kslab.dataplane.sim import SimDataplane

    st = load_cluster([write_yaml(tmp_path, service_doc("sticky", "172.30.0.20", endpoints=2, affinity=60))], as_is=True)
    ruleset = render(st.services, st.endpoint_slices, upstream_config())
    state, nf = loaded(ruleset)
    name = "affinity-" + ruleset.raw_text().split("add set ip kube-proxy affinity-", 1)[1].split(" ", 1)[0]
    state.apply(f"add element ip kube-proxy {name} {{ 10.0.0.7 }}\n")
    element = "\n\t\telements = { 10.0.0.7 }"
    assert element in state.list_table()
    cluster = load_cluster([REPO / "data" / "myk8s"])
    node = cluster.nodes[0].name
    dp = SimDataplane(cluster)
    dp.load_nft(node, state.list_table())
    assert dp.mode(node) == "nftables" and dp.nft_list(node) == state.list_table().replace(element, "")
    assert name in dp.existing_sets(node) and "services" in dp.existing_chains(node, "nftables")
    assert dp.network.nodes[node].netfilter.rule_count() == nf.rule_count()


def test_lab_client_ip_affinity_sticks_across_syncs_and_goes_with_its_set():
    from kslab.lab import Lab

    lab = Lab(proxy={"mode": "nftables"}, seed=8)
    if not hasattr(lab, "_existing_chains"):  # until the Lab lists nftables sets itself (issue 14, W4)
        dp = lab.dataplane
        dp.nat_chains = lambda node: dp.existing_chains(node, "nftables") + dp.existing_sets(node)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=600)
    chosen = {}
    for client in ("net-pod", "webpod1", "myk8s-worker3"):
        df = lab.run(client, "svc-clusterip", n=40)
        assert (df["outcome"] == "ok").all() and df["endpoint_pod"].nunique() == 1
        chosen[client] = df["endpoint_pod"].iloc[0]
    nodes = lab.dataplane.network.nodes
    assert any(k.startswith("affinity-") for n in nodes.values() for k in n.state.nft_sets)
    lab.scale("deploy-echo", 4)  # another Service's change: a partial sync that leaves the affinity sets alone
    for client, pod in chosen.items():
        assert set(lab.run(client, "svc-clusterip", n=20)["endpoint_pod"]) == {pod}
    lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
    assert not any(k.startswith("affinity-") for n in nodes.values() for k in n.state.nft_sets)
    assert lab.run("net-pod", "svc-clusterip", n=60)["endpoint_pod"].nunique() == 3


# TestInternalTrafficPolicy, TestTerminatingEndpointsTrafficPolicyLocal/Cluster: one Service
# (ns1/svc1, 172.30.1.1:80, unnamed port) per case, its EndpointSlice written out here:
# (address, nodeName, ready, serving, terminating); after each case upstream deletes the slice
# and both flows must REJECT.

def _svc1_docs(spec_extra: str, endpoints: list[tuple]) -> list[str]:
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: svc1, namespace: ns1}\nspec:\n  clusterIP: 172.30.1.1\n"
           f"{spec_extra}  ports: [{{name: '', port: 80, protocol: TCP, targetPort: 80}}]")
    if "LoadBalancer" in spec_extra:
        svc += "\nstatus:\n  loadBalancer:\n    ingress: [{ip: 1.2.3.4}]"
    if not endpoints:
        return [svc]
    eps = "".join(f"\n- addresses: [{ip}]\n  nodeName: {node}\n  conditions: {{ready: {str(r).lower()}, serving: "
                  f"{str(s).lower()}, terminating: {str(t).lower()}}}" for ip, node, r, s, t in endpoints)
    slc = ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
           "metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}\n"
           f"addressType: IPv4\nendpoints:{eps}\nports: [{{name: '', port: 80, protocol: TCP}}]")
    return [svc, slc]


T, F = True, False
ITP_CLUSTER, ITP_LOCAL = "  internalTrafficPolicy: Cluster\n", "  internalTrafficPolicy: Local\n"
LB_LOCAL = "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30000\n"
LB_CLUSTER = "  type: LoadBalancer\n  externalTrafficPolicy: Cluster\n  healthCheckNodePort: 30000\n"
TERMINATING_CASES = {
    "ready endpoints exist": [("10.0.1.1", "test-node", T, T, F), ("10.0.1.2", "test-node", T, T, F),
                              ("10.0.1.3", "another-node", F, T, T), ("10.0.1.4", "another-node", F, F, T),
                              ("10.0.1.5", "another-node", T, T, F)],
    "only terminating endpoints exist": [("10.0.1.2", "test-node", F, T, T), ("10.0.1.3", "test-node", F, T, T),
                                         ("10.0.1.4", "another-node", F, F, T), ("10.0.1.5", "another-node", F, T, T)],
    "terminating endpoints on remote node": [("10.0.1.5", "node-1", F, T, T)],
    "no usable endpoints on any node": [("10.0.1.5", "test-node", F, F, T), ("10.0.1.5", "node-1", F, F, T)],
}
LOCAL_CASES = {
    "ready endpoints exist": [("10.0.1.1", "test-node", T, T, F), ("10.0.1.2", "test-node", T, T, F),
                              ("10.0.1.3", "test-node", F, T, T), ("10.0.1.4", "test-node", F, F, T),
                              ("10.0.1.5", "node-1", T, T, F)],
    "only terminating endpoints exist": [("10.0.1.2", "test-node", F, T, T), ("10.0.1.3", "test-node", F, T, T),
                                         ("10.0.1.4", "test-node", F, F, T), ("10.0.1.5", "node-1", T, T, F)],
    "terminating endpoints on remote node": TERMINATING_CASES["terminating endpoints on remote node"],
    "no usable endpoints on any node": TERMINATING_CASES["no usable endpoints on any node"],
}
SVC1 = "172.30.1.1:80"
LB1 = "1.2.3.4:80"
ENDPOINT_FLOWS = [
    # (upstream test / case, service spec, endpoints, [(source, destination, output, masq)])
    ("TestInternalTrafficPolicy/internalTrafficPolicy is cluster", ITP_CLUSTER,
     [("10.0.1.1", "test-node", T, None, None), ("10.0.1.2", "node1", T, None, None), ("10.0.1.3", "node2", T, None, None)],
     [("10.0.0.2", SVC1, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80", False)]),
    ("TestInternalTrafficPolicy/internalTrafficPolicy is local and there is one local endpoint", ITP_LOCAL,
     [("10.0.1.1", "test-node", T, None, None), ("10.0.1.2", "node1", T, None, None), ("10.0.1.3", "node2", T, None, None)],
     [("10.0.0.2", SVC1, "10.0.1.1:80", False)]),
    ("TestInternalTrafficPolicy/internalTrafficPolicy is local and there are multiple local endpoints", ITP_LOCAL,
     [("10.0.1.1", "test-node", T, None, None), ("10.0.1.2", "test-node", T, None, None), ("10.0.1.3", "node2", T, None, None)],
     [("10.0.0.2", SVC1, "10.0.1.1:80, 10.0.1.2:80", False)]),
    ("TestInternalTrafficPolicy/internalTrafficPolicy is local and there are no local endpoints", ITP_LOCAL,
     [("10.0.1.1", "node0", T, None, None), ("10.0.1.2", "node1", T, None, None), ("10.0.1.3", "node2", T, None, None)],
     [("10.0.0.2", SVC1, "DROP", False)]),
    ("TestTerminatingEndpointsTrafficPolicyLocal/ready endpoints exist", LB_LOCAL, LOCAL_CASES["ready endpoints exist"],
     [("10.0.0.2", SVC1, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", False), (EXT, LB1, "10.0.1.1:80, 10.0.1.2:80", False)]),
    ("TestTerminatingEndpointsTrafficPolicyLocal/only terminating endpoints exist", LB_LOCAL,
     LOCAL_CASES["only terminating endpoints exist"],
     [("10.0.0.2", SVC1, "10.0.1.5:80", False), (EXT, LB1, "10.0.1.2:80, 10.0.1.3:80", False)]),
    ("TestTerminatingEndpointsTrafficPolicyLocal/terminating endpoints on remote node", LB_LOCAL,
     LOCAL_CASES["terminating endpoints on remote node"], [("10.0.0.2", SVC1, "10.0.1.5:80", False), (EXT, LB1, "DROP", False)]),
    ("TestTerminatingEndpointsTrafficPolicyLocal/no usable endpoints on any node", LB_LOCAL,
     LOCAL_CASES["no usable endpoints on any node"], [("10.0.0.2", SVC1, "REJECT", False), (EXT, LB1, "REJECT", False)]),
    ("TestTerminatingEndpointsTrafficPolicyCluster/ready endpoints exist", LB_CLUSTER, TERMINATING_CASES["ready endpoints exist"],
     [("10.0.0.2", SVC1, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", False), (EXT, LB1, "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80", True)]),
    ("TestTerminatingEndpointsTrafficPolicyCluster/only terminating endpoints exist", LB_CLUSTER,
     TERMINATING_CASES["only terminating endpoints exist"],
     [("10.0.0.2", SVC1, "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", False), (EXT, LB1, "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80", True)]),
    ("TestTerminatingEndpointsTrafficPolicyCluster/terminating endpoints on remote node", LB_CLUSTER,
     TERMINATING_CASES["terminating endpoints on remote node"],
     [("10.0.0.2", SVC1, "10.0.1.5:80", False), (EXT, LB1, "10.0.1.5:80", True)]),
    ("TestTerminatingEndpointsTrafficPolicyCluster/no usable endpoints on any node", LB_CLUSTER,
     TERMINATING_CASES["no usable endpoints on any node"], [("10.0.0.2", SVC1, "REJECT", False), (EXT, LB1, "REJECT", False)]),
]


@pytest.mark.parametrize("name, spec, endpoints, flows", ENDPOINT_FLOWS, ids=[c[0] for c in ENDPOINT_FLOWS])
def test_upstream_endpoint_condition_flows(tmp_path, name, spec, endpoints, flows):
    eps = [(ip, node, r, T if s is None else s, F if t is None else t) for ip, node, r, s, t in endpoints]
    nf = rendered(write_yaml(tmp_path, _svc1_docs(spec, eps)))
    for src, to, output, masq in flows:
        assert upstream_output(nf, src, to) == (output, masq), (name, src, to)
    # then upstream deletes the EndpointSlice: every flow is rejected
    nf = rendered(write_yaml(tmp_path, _svc1_docs(spec, [])))
    for src, to, _, _ in flows:
        assert upstream_output(nf, src, to) == ("REJECT", False), (name, "after endpoints deleted", src, to)


# TestInternalExternalMasquerade: one table of flows (the normal case: a working local-traffic
# detector, no masqueradeAll) and, per variant, the flows whose output or masquerade differ.
IEM_ALL1, IEM_ALL2, IEM_ALL3 = "10.180.0.1:80, 10.180.1.1:80", "10.180.0.2:80, 10.180.1.2:80", "10.180.0.3:80, 10.180.1.3:80"
IEM_FLOWS = [
    ("pod to ClusterIP", "10.0.0.2", "172.30.0.41:80", IEM_ALL1, False),
    ("pod to NodePort", "10.0.0.2", "192.168.0.2:3001", IEM_ALL1, True),
    ("pod to LB", "10.0.0.2", "1.2.3.4:80", IEM_ALL1, True),
    ("node to ClusterIP", NODE_IP, "172.30.0.41:80", IEM_ALL1, True),
    ("node to NodePort", NODE_IP, "192.168.0.2:3001", IEM_ALL1, True),
    ("node to LB", NODE_IP, "1.2.3.4:80", IEM_ALL1, True),
    ("external to ClusterIP", EXT, "172.30.0.41:80", IEM_ALL1, True),
    ("external to NodePort", EXT, "192.168.0.2:3001", IEM_ALL1, True),
    ("external to LB", EXT, "1.2.3.4:80", IEM_ALL1, True),
    ("pod to ClusterIP with eTP:Local", "10.0.0.2", "172.30.0.42:80", IEM_ALL2, False),
    ("pod to NodePort with eTP:Local", "10.0.0.2", "192.168.0.2:3002", IEM_ALL2, False),
    ("pod to LB with eTP:Local", "10.0.0.2", "5.6.7.8:80", IEM_ALL2, False),
    ("node to ClusterIP with eTP:Local", NODE_IP, "172.30.0.42:80", IEM_ALL2, True),
    ("node to NodePort with eTP:Local", NODE_IP, "192.168.0.2:3001", IEM_ALL1, True),
    ("node to LB with eTP:Local", NODE_IP, "5.6.7.8:80", IEM_ALL2, True),
    ("external to ClusterIP with eTP:Local", EXT, "172.30.0.42:80", IEM_ALL2, True),
    ("external to NodePort with eTP:Local", EXT, "192.168.0.2:3002", "10.180.0.2:80", False),
    ("external to LB with eTP:Local", EXT, "5.6.7.8:80", "10.180.0.2:80", False),
    ("pod to ClusterIP with iTP:Local", "10.0.0.2", "172.30.0.43:80", "10.180.0.3:80", False),
    ("pod to NodePort with iTP:Local", "10.0.0.2", "192.168.0.2:3003", IEM_ALL3, True),
    ("pod to LB with iTP:Local", "10.0.0.2", "9.10.11.12:80", IEM_ALL3, True),
    ("node to ClusterIP with iTP:Local", NODE_IP, "172.30.0.43:80", "10.180.0.3:80", True),
    ("node to NodePort with iTP:Local", NODE_IP, "192.168.0.2:3003", IEM_ALL3, True),
    ("node to LB with iTP:Local", NODE_IP, "9.10.11.12:80", IEM_ALL3, True),
    ("external to ClusterIP with iTP:Local", EXT, "172.30.0.43:80", "10.180.0.3:80", True),
    ("external to NodePort with iTP:Local", EXT, "192.168.0.2:3003", IEM_ALL3, True),
    ("external to LB with iTP:Local", EXT, "9.10.11.12:80", IEM_ALL3, True),
]
_NO_DETECTOR = {"node to ClusterIP": (None, False), "node to ClusterIP with eTP:Local": (None, False),
                "node to ClusterIP with iTP:Local": (None, False), "external to ClusterIP": (None, False),
                "external to ClusterIP with eTP:Local": (None, False), "external to ClusterIP with iTP:Local": (None, False),
                "pod to NodePort with eTP:Local": ("10.180.0.2:80", None), "pod to LB with eTP:Local": ("10.180.0.2:80", None)}
_MASQ_ALL = {"pod to ClusterIP": (None, True), "pod to ClusterIP with eTP:Local": (None, True),
             "pod to ClusterIP with iTP:Local": (None, True)}
IEM_VARIANTS = [  # (name, config, overrides: flow -> (output or None, masq or None))
    ("base", {}, {}),
    ("no LocalTrafficDetector", {"cluster_cidr": None}, _NO_DETECTOR),
    ("masqueradeAll", {"masquerade_all": True}, _MASQ_ALL),
    ("masqueradeAll, no LocalTrafficDetector", {"cluster_cidr": None, "masquerade_all": True},
     {**_MASQ_ALL, **{k: v for k, v in _NO_DETECTOR.items() if k.startswith("pod to")}}),
]
_IEM_CASES = [pytest.param(cfg, flow, overrides.get(flow[0], (None, None)), id=f"{variant}: {flow[0]}")
              for variant, cfg, overrides in IEM_VARIANTS for flow in IEM_FLOWS]


@pytest.mark.parametrize("cfg, flow, override", _IEM_CASES)
def test_upstream_internal_external_masquerade(cfg, flow, override):
    name, src, to, output, masq = flow
    output = override[0] if override[0] is not None else output
    masq = override[1] if override[1] is not None else masq
    assert upstream_output(_flow_table("internal-external-masquerade.yaml", cfg), src, to) == (output, masq)


def test_statements_run_left_to_right_and_a_rule_is_traced_once_when_it_completes():
    text = """add table ip kube-proxy
add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
add rule ip kube-proxy filter-input meta mark set 0x10 ip daddr 10.9.9.9 drop
add rule ip kube-proxy filter-input mark set mark or 0x2 accept
"""
    nf = NftNetfilter.from_text(text, strict=True)
    pkt = Packet("10.0.0.2", "192.168.0.2", "tcp", 40000, 22)
    res = nf.run_hook("INPUT", pkt, HookContext("INPUT", LOCAL, 0.0, NamespaceState()))
    # rule 1 set the mark, then its daddr did not match: the mark stays, the rule is not traced
    assert res.verdict == "ACCEPT" and pkt.mark == 0x12 and res.rules_evaluated == 2
    rules = [s for s in res.steps if s.event == "rule"]
    assert [s.rule_number for s in rules] == [2] and rules[0].rule == "meta mark set meta mark | 0x00000002 accept"
    assert rules[0].detail == "mark 0x10 -> 0x12" and rules[0].packet_after["mark"] == "0x12"


def test_lab_shell_nft_list_chain_set_map_and_handles(nft_lab):
    node = "myk8s-worker"
    state = nft_lab.dataplane.nft[node]
    assert nft_lab.sh(node, "nft list chain ip kube-proxy services") == state.list_chain("ip", "kube-proxy", "services")
    assert nft_lab.sh(node, "nft list map kube-proxy service-ips") == state.list_set("ip", "kube-proxy", "service-ips", kind="map")
    assert nft_lab.sh(node, "nft list set ip kube-proxy cluster-ips").startswith("table ip kube-proxy {\n\tset cluster-ips {")
    assert "# handle" in nft_lab.sh(node, "nft -a list table ip kube-proxy")
    # nft's own errors, caret under the missing name (as nft 1.0.6 prints them)
    out = nft_lab.sh(node, "nft list chain ip kube-proxy nope")
    assert out.returncode == 1 and out.stderr == ("Error: No such file or directory\nlist chain ip kube-proxy nope\n"
                                                  "                         ^^^^\n")
    out = nft_lab.sh(node, "nft list set ip kube-proxy service-ips")  # a map, not a set
    assert out.returncode == 1 and out.stderr.endswith("list set ip kube-proxy service-ips\n                       ^^^^^^^^^^^\n")
    out = nft_lab.sh(node, "nft list table kube-proxy-x")
    assert out.stderr == "Error: No such file or directory\nlist table kube-proxy-x\n           ^^^^^^^^^^^^\n"
    assert nft_lab.sh("net-pod", "nft list ruleset") == ""  # a pod's namespace has no tables
    for bad in ("nft -s list ruleset", "nft list chain services", "nft list table inet6 kube-proxy"):
        with pytest.raises(InputError):
            nft_lab.sh(node, bad)


def test_nft_list_shows_the_affinity_sets_live_elements_with_their_time_left():
    from kslab.lab import Lab

    lab = Lab(proxy={"mode": "nftables"}, seed=8)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=600)
    pod = lab.run("net-pod", "svc-clusterip", n=1)["endpoint_pod"].iloc[0]
    node = lab.cluster.pod("net-pod").node_name
    ip = lab.cluster.pod(pod).pod_ip
    name = next(s for s in lab.dataplane.nft[node].sets() if s.startswith("affinity-") and f"__{ip}/" in s)
    listed = lab.sh(node, f"nft list set ip kube-proxy {name}")
    client = lab.cluster.pod("net-pod").pod_ip
    assert f"elements = {{ {client}" in listed and "timeout 10m" in listed
    lab.advance(60)
    assert lab.dataplane.nft_list(node).count(client) == 1
    left = lab.sh(node, f"nft list set ip kube-proxy {name}")
    probe = NftState()  # does kslab.nft keep an element's `expires` (nft 1.0.6 does)? then the time left shows
    probe.apply("add table ip t\nadd set ip t a { type ipv4_addr ; flags timeout ; timeout 1h ; }\n"
                "add element ip t a { 10.0.0.7 expires 1000ms }\n")
    assert (f"{client} expires 9m" if "expires" in probe.list_table("ip", "t") else f"{{ {client} }}") in left
    lab.advance(600)  # past the timeout: gone from the listing as from the kernel's set
    assert client not in lab.sh(node, f"nft list set ip kube-proxy {name}")
    assert lab.dataplane.nft[node].list_set("ip", "kube-proxy", name, kind="set").count(client) == 0  # kube-proxy's state never held it


def test_sim_dataplane_deletes_nft_rules_by_hand():
    """SimDataplane.delete_rules in nftables mode (the Lab verb may refuse it: the kernel side
    edits iptables only)."""
    import re

    from kslab.lab import Lab

    lab = Lab(proxy={"mode": "nftables"}, seed=2)
    node = lab.cluster.pod("webpod1").node_name
    before = lab.dataplane.nft_list(node).count("jump mark-for-masquerade")
    # the hairpin rules (an endpoint's own address jumps to mark-for-masquerade)
    n = lab.dataplane.delete_rules(re.compile(r"^endpoint-\S+ ip saddr \S+ jump mark-for-masquerade$"), [node])
    assert n > 0 and lab.dataplane.nft_list(node).count("jump mark-for-masquerade") == before - n
    for _ in range(30):  # without them a pod reaching itself through the Service is not masqueraded: the hairpin fails
        t = lab.trace("webpod1", "svc-clusterip")
        if t.endpoint_pod == "webpod1":
            break
        lab.reseed(lab.seed + 1)
    assert t.endpoint_pod == "webpod1" and not t.masquerade and t.outcome == "dropped"
    lab.resync(full=True, nodes=[node])  # kube-proxy's full sync writes them back
    assert lab.dataplane.nft_list(node).count("jump mark-for-masquerade") == before
