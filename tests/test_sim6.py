"""The simulator over IPv6 (issue 16): ip6tables restore text and ``table ip6 kube-proxy``
interpreted on IPv6 packets, the single-node tracer on ip6tables-save dumps, and the dual-stack
lab end to end (each family's packets through that family's tables, as a kernel keeps them)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from kslab.errors import InputError
from kslab.manifests import Document, parse_endpoint_slice, parse_service
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render as render_iptables
from kslab.proxy.nftables import render as render_nft
from kslab.sim.netfilter import Netfilter, split_host_port
from kslab.sim.nftables import NftNetfilter
from kslab.sim.packet import HookContext, NamespaceState, Packet
from kslab.sim.single import netfilter_candidates, trace_netfilter

REPO = Path(__file__).resolve().parents[1]
NODE6 = "fd00::2"  # the node's IPv6 address
POD_CIDR6 = "fd00:10:244::/56"
EP1, EP2 = "fd00:10:244:1::5", "fd00:10:244:2::6"
POD_CLIENT = "fd00:10:244:1::9"  # inside the cluster CIDR
OUTSIDE = "2001:db8::77"  # outside it


def _service(name: str, ip: str, port: int = 80, *, type: str = "ClusterIP", node_port: int | None = None,
             affinity: bool = False):
    spec = {"type": type, "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv6"],
            "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP", **({"nodePort": node_port} if node_port else {})}]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return parse_service(Document("test", {"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": name, "namespace": "ns"}, "spec": spec}))


def _slice(name: str, port: int, *ips: str):
    return parse_endpoint_slice(Document("test", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-v6", "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv6", "endpoints": [{"addresses": [ip]} for ip in ips],
        "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"}]}))


def _objects():
    services = [_service("a", "fd00:10:96::10"), _service("np", "fd00:10:96::11", type="NodePort", node_port=30080),
                _service("aff", "fd00:10:96::12", affinity=True), _service("none", "fd00:10:96::13")]
    slices = [_slice("a", 80, EP1, EP2), _slice("np", 80, EP1), _slice("aff", 80, EP1, EP2)]
    return services, slices


def _config(**kw) -> ProxyConfig:
    return ProxyConfig(node_name="n1", node_ips=(NODE6,), cluster_cidr=POD_CIDR6, family=6,
                       service_cidrs=("fd00:10:96::/112",), **kw)


@pytest.fixture(scope="module")
def ip6tables_text() -> str:
    """What ip6tables-save prints on the node after kube-proxy's full sync of the IPv6 proxier's
    rules (canary and jump chains, then the restore)."""
    from kslab.proxy.iptables.node import NodeIptables

    tables = NodeIptables(6)
    tables.full_sync(render_iptables(*_objects(), _config()).raw_text())
    return tables.save_text()


@pytest.fixture(scope="module")
def nft6_text() -> str:
    return render_nft(*_objects(), _config(mode="nftables")).raw_text()


def _trace(nf, src: str, dst: str, dport: int = 80, state: NamespaceState | None = None, now: float = 0.0):
    return trace_netfilter(nf, node_ip=NODE6, src=src, dst=dst, dport=dport, proto="tcp", state=state)


def _endpoints(nf, src: str, dst: str, dport: int = 80) -> dict[str, float]:
    cands = netfilter_candidates(nf, node_ip=NODE6, src=src, dst=dst, dport=dport, proto="tcp")
    return {c.ip: round(c.probability, 6) for c in cands}


# ---- ip6tables restore text on IPv6 packets --------------------------------------------------------


def test_ip6tables_clusterip_reaches_both_ipv6_endpoints(ip6tables_text):
    nf = Netfilter.from_text(ip6tables_text, name="n1", family=6, strict=True)
    assert nf.family == 6
    assert _endpoints(nf, POD_CLIENT, "fd00:10:96::10") == {EP1: 0.5, EP2: 0.5}
    conn = _trace(nf, POD_CLIENT, "fd00:10:96::10")
    assert conn.outcome == "forwarded" and conn.dnat_to in (f"[{EP1}]:80", f"[{EP2}]:80") and not conn.masquerade
    assert any("--to-destination [fd00:10:244:" in s.rule for s in conn.steps)
    # from outside the cluster CIDR: ! -s fd00:10:244::/56 marks it for masquerade
    assert _trace(nf, OUTSIDE, "fd00:10:96::10").masquerade


def test_ip6tables_nodeport_is_masqueraded_and_loopback_is_not_a_nodeport(ip6tables_text):
    nf = Netfilter.from_text(ip6tables_text, name="n1", family=6, strict=True)
    conn = _trace(nf, OUTSIDE, NODE6, 30080)
    assert conn.dnat_to == f"[{EP1}]:80" and conn.masquerade and conn.snat_to == NODE6
    # upstream writes ! -d ::1/128 on the NodePorts tail: IPv6 has no route_localnet
    local = _trace(nf, "::1", "::1", 30080)
    assert local.dnat_to is None and local.outcome == "local"


def test_ip6tables_reject_is_icmp6_port_unreachable(ip6tables_text):
    nf = Netfilter.from_text(ip6tables_text, name="n1", family=6, strict=True)
    conn = _trace(nf, POD_CLIENT, "fd00:10:96::13")
    assert conn.outcome == "rejected"
    ctx = HookContext("FORWARD", frozenset({NODE6}), 0.0, NamespaceState())
    res = nf.run_hook("FORWARD", Packet(POD_CLIENT, "fd00:10:96::13", "tcp", 40000, 80), ctx)
    assert res.verdict == "REJECT" and res.reject_with == "icmp6-port-unreachable"


def test_ip6tables_session_affinity_with_the_full_ffff_mask(ip6tables_text):
    """kube-proxy's affinity (recent --set/--rcheck, ip6tables-save prints the mask as
    ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff): every later connection of a client goes where its
    first went; another client draws again."""
    nf = Netfilter.from_text(ip6tables_text, name="n1", family=6, strict=True)
    assert "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in "\n".join(nf.chain_rules("nat", "KUBE-SVC-RE5A67LFJIMVYMC5"))
    state = NamespaceState(rng=random.Random(3))
    first = _trace(nf, POD_CLIENT, "fd00:10:96::12", state=state).dnat_to
    assert all(_trace(nf, POD_CLIENT, "fd00:10:96::12", state=state).dnat_to == first for _ in range(20))
    listed = {addr for lst in state.recent.values() for addr in lst}
    assert listed == {POD_CLIENT}  # the full mask keeps the address as it is
    others = {_trace(nf, f"fd00:10:244:3::{i:x}", "fd00:10:96::12", state=state).dnat_to for i in range(1, 40)}
    assert others == {f"[{EP1}]:80", f"[{EP2}]:80"}


RECENT_64 = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
-A PREROUTING -d fd00:10:96::20/128 -p tcp -m recent --rcheck --seconds 100 --name L --mask ffff:ffff:ffff:ffff:: --rsource -j KUBE-SEP-A
-A PREROUTING -d fd00:10:96::20/128 -p tcp -m statistic --mode random --probability 0.5 -j KUBE-SEP-B
-A PREROUTING -d fd00:10:96::20/128 -p tcp -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m recent --set --name L --mask ffff:ffff:ffff:ffff:: --rsource -j DNAT --to-destination [fd00:10:244:1::5]:80
-A KUBE-SEP-B -p tcp -j DNAT --to-destination fd00:10:244:2::6
COMMIT
"""


def test_recent_ipv6_mask_groups_a_64():
    """xt_recent's --mask on IPv6: the list keeps the masked address, so every client of that /64
    matches --rcheck after one of them was --set; DNAT to [addr]:port and to a bare IPv6 address."""
    nf = Netfilter.from_text(RECENT_64, family=6, strict=True)
    state = NamespaceState(rng=random.Random(0))
    ctx = HookContext("PREROUTING", frozenset(), 0.0, state)
    seen = set()
    for _ in range(40):  # until the ladder reaches KUBE-SEP-A, which lists the /64
        p = Packet("2001:db8:0:1::1", "fd00:10:96::20", "tcp", 40000, 80)
        nf.run_hook("PREROUTING", p, HookContext("PREROUTING", frozenset(), 0.0, state))
        seen.add((p.dst, p.dport))
        if state.recent.get("L"):
            break
    assert set(state.recent["L"]) == {"2001:db8:0:1::"}
    assert seen <= {("fd00:10:244:1::5", 80), ("fd00:10:244:2::6", 80)}  # the bare address keeps the port
    def matched(src: str) -> list[str]:
        res = nf.run_hook("PREROUTING", Packet(src, "fd00:10:96::20", "tcp", 40000, 80), ctx)
        return [s.rule for s in res.steps if s.event == "rule"]

    for host in ("2001:db8:0:1::2", "2001:db8:0:1:ffff::9"):  # the same /64: listed
        assert "--rcheck" in matched(host)[0]
    assert "--rcheck" not in matched("2001:db8:0:2::1")[0]  # another /64: not listed


def test_host_destinations_index_on_128_like_32():
    """A long chain of ``-d X/128 -p tcp --dport P`` rules gets the same index as /32 ones, and
    the index answers exactly what a plain scan does."""
    lines = [f"-A KUBE-SERVICES -d fd00:10:96::{i:x}/128 -p tcp -m tcp --dport 80 -j ACCEPT" for i in range(1, 60)]
    text = "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A INPUT -j KUBE-SERVICES\n" + "\n".join(lines) + "\n" \
           "-A KUBE-SERVICES -d fd00:10:96::/112 -j DROP\nCOMMIT\n"
    nf = Netfilter.from_text(text, family=6, strict=True)
    chain = nf.chains["filter"]["KUBE-SERVICES"]
    assert chain.index is not None and all(r.index_key and r.index_key[0] is not None for r in chain.rules[:-1])
    results = []
    for index in (chain.index, None):
        chain.index = index
        out = []
        for dst, port in (("fd00:10:96::7", 80), ("fd00:10:96::7", 81), ("fd00:10:96::3b", 80), ("fd00:10:96::99", 80)):
            r = nf.run_hook("INPUT", Packet("2001:db8::1", dst, "tcp", 40000, port), HookContext("INPUT", frozenset(), 0.0, NamespaceState()))
            out.append((r.verdict, r.rules_evaluated, r.steps[-3].rule_number if len(r.steps) > 2 else 0))
        results.append(out)
    assert results[0] == results[1]
    assert [v for v, _, _ in results[0]] == ["ACCEPT", "DROP", "ACCEPT", "DROP"]


@pytest.mark.parametrize("spec, host, port", [
    ("10.0.0.1:80", "10.0.0.1", "80"), ("[fd00::5]:80", "fd00::5", "80"), ("fd00::5", "fd00::5", ""),
    ("[fd00::5]", "fd00::5", ""), ("[fd00::5]:80-90", "fd00::5", "80-90"), ("[fd00::5]-[fd00::6]:80", "fd00::5-fd00::6", "80"),
])
def test_split_host_port(spec, host, port):
    assert split_host_port(spec) == (host, port)


def test_an_ipv6_nat_range_is_refused_naming_the_rule():
    text = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination [fd00::5]-[fd00::6]:80\nCOMMIT\n"
    with pytest.raises(InputError, match="DNAT"):
        Netfilter.from_text(text, family=6, strict=True)


# ---- table ip6 kube-proxy on IPv6 packets ----------------------------------------------------------


def test_nft_ip6_table_clusterip_nodeport_and_reject(nft6_text):
    nf = NftNetfilter.from_text(nft6_text, name="n1", family="ip6", strict=True)
    assert nf.chains, "table ip6 kube-proxy was loaded"
    assert _endpoints(nf, POD_CLIENT, "fd00:10:96::10") == {EP1: 0.5, EP2: 0.5}
    conn = _trace(nf, OUTSIDE, NODE6, 30080)
    assert conn.dnat_to == f"[{EP1}]:80" and conn.masquerade
    assert _trace(nf, "::1", "::1", 30080).dnat_to is None  # ip6 daddr != ::1
    assert _trace(nf, POD_CLIENT, "fd00:10:96::13").outcome == "rejected"
    assert _trace(nf, POD_CLIENT, "fd00:10:96::77").outcome == "dropped"  # an unallocated ClusterIP of the ServiceCIDR
    ctx = HookContext("FORWARD", frozenset({NODE6}), 0.0, NamespaceState())
    res = nf.run_hook("FORWARD", Packet(POD_CLIENT, "fd00:10:96::13", "tcp", 40000, 80), ctx)
    assert res.reject_with == "icmp6-port-unreachable"


def test_nft_ip6_affinity_set_holds_ipv6_clients(nft6_text):
    nf = NftNetfilter.from_text(nft6_text, name="n1", family="ip6", strict=True)
    state = NamespaceState(rng=random.Random(5))
    first = _trace(nf, POD_CLIENT, "fd00:10:96::12", state=state).dnat_to
    assert all(_trace(nf, POD_CLIENT, "fd00:10:96::12", state=state).dnat_to == first for _ in range(10))
    live = nf.live_elements(state, 1.0)
    assert [k for rows in live.values() for k, _ in rows] == [POD_CLIENT]


def test_nft_ipv4_table_does_not_run_an_ip6_table(nft6_text):
    nf = NftNetfilter.from_text(nft6_text, name="n1", family="ip", strict=True)
    assert not nf.chains and nf.skipped == ("table ip6 kube-proxy",)


# ---- kslab trace --iptables-save / --nft of an IPv6 dump -------------------------------------------


@pytest.fixture(scope="module")
def dual_lab():
    import kslab

    return kslab.Lab("myk8s-dualstack")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", *args], capture_output=True, text=True, timeout=180)


def test_cli_trace_of_an_ip6tables_save_dump(dual_lab, tmp_path):
    node = dual_lab.cluster.node("myk8s-worker")
    svc = dual_lab.cluster.service("svc-clusterip")
    v6 = next(ip for ip in svc.cluster_ips if ":" in ip)
    dump = tmp_path / "worker.ip6tables-save"
    dump.write_text("# Generated by ip6tables-save v1.8.9 (nf_tables)\n" + dual_lab.dataplane.save_text(node.name, 6))
    web6 = {p.pod_ip_of(6) for p in dual_lab.cluster.pods if p.name.startswith("webpod")}
    r = _cli("trace", "--iptables-save", str(dump), "--node-ip", node.ip_of(6), "--from", "fd00:10:244:1::99",
             "--to", f"[{v6}]:{svc.ports[0].port}", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dnat_to"].startswith("[fd00:10:244:") and out["dnat_to"].split("]")[0][1:] in web6
    cands = out["candidates"]
    assert {c["endpoint"]["ip"] for c in cands} == web6 and abs(sum(c["probability"] for c in cands) - 1) < 1e-9


@pytest.mark.parametrize("args, needle", [
    (["--node-ip", "172.18.0.3", "--from", "fd00:10:244:1::99", "--to", "[fd00:10:96::1]:443"],
     "--node-ip: no IPv6 address among the node's (172.18.0.3) for the IPv6 destination fd00:10:96::1"),
    (["--node-ip", "fc00:f853:ccd:e793::3", "--from", "10.10.1.9", "--to", "[fd00:10:96::1]:443"],
     "--from: 10.10.1.9 is IPv4 but the destination fd00:10:96::1 is IPv6"),
    (["--node-ip", "fc00:f853:ccd:e793::3", "--from", "fd00::9", "--to", "fd00:10:96::1:443"],
     "--to fd00:10:96::1:443: with --iptables-save or --nft the destination must be IP:PORT[/proto] ([IPv6]:PORT)"),
])
def test_trace_dump_family_mistakes_are_one_line(tmp_path, args, needle):
    dump = tmp_path / "d"
    dump.write_text("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    r = _cli("trace", "--iptables-save", str(dump), *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


def test_trace_nft_of_an_ip6_table(nft6_text, tmp_path):
    from kslab.sim.single import trace_nft

    p = tmp_path / "nft6.txt"
    p.write_text(nft6_text)
    conn = trace_nft(str(p), node_ip=NODE6, src=POD_CLIENT, to="[fd00:10:96::10]:80")
    assert conn.dnat_to in (f"[{EP1}]:80", f"[{EP2}]:80")
    assert {c.ip for c in conn.candidates} == {EP1, EP2}


# ---- the dual-stack lab, end to end -----------------------------------------------------------------


def test_dual_lab_ipv6_clusterip_lands_on_ipv6_pod_ips(dual_lab):
    lab = dual_lab
    svc = lab.cluster.service("svc-clusterip")
    v4, v6 = (next(ip for ip in svc.cluster_ips if (":" in ip) == six) for six in (False, True))
    port = svc.ports[0].port
    web6 = {p.pod_ip_of(6) for p in lab.cluster.pods if p.name.startswith("webpod")}
    web4 = {p.pod_ip_of(4) for p in lab.cluster.pods if p.name.startswith("webpod")}
    t = lab.trace("net-pod", f"[{v6}]:{port}")
    assert t.outcome == "ok" and t.endpoint_ip in web6 and t.source_ip_seen == lab.cluster.pod("net-pod").pod_ip_of(6)
    assert {c.ip for c in t.candidates} == web6 and abs(sum(c.probability for c in t.candidates) - 1) < 1e-9
    assert "[fd00:10:244:" in str(t) and f"-> [{v6}]:{port}/tcp" in str(t)
    df = lab.run("net-pod", f"[{v6}]:{port}", n=300, seed=2)
    assert (df["outcome"] == "ok").all() and set(df["endpoint_ip"]) == web6
    df4 = lab.run("net-pod", f"{v4}:{port}", n=300, seed=2)  # the same Service's IPv4 ClusterIP: IPv4 pods
    assert (df4["outcome"] == "ok").all() and set(df4["endpoint_ip"]) == web4


def test_dual_lab_ipv6_nodeport_from_mypc_is_masqueraded_with_the_node_ipv6(dual_lab):
    lab = dual_lab
    svc = lab.cluster.service("svc-nodeport")
    node = lab.cluster.node("myk8s-worker")
    t = lab.trace("mypc", f"[{node.ip_of(6)}]:{svc.ports[0].node_port}")
    assert t.outcome == "ok" and t.masquerade and t.client_ip == "fc00:f853:ccd:e793::100"
    assert t.source_ip_seen in (node.ip_of(6), lab.cluster.node("myk8s-worker").pod_cidr_of(6).replace("::/64", "::1"))
    assert all(":" in c.ip for c in t.candidates) and abs(sum(c.probability for c in t.candidates) - 1) < 1e-9


def test_dual_lab_keeps_each_familys_tables(dual_lab):
    lab = dual_lab
    node = "myk8s-worker"
    save6, save4 = lab.dataplane.save_text(node, 6), lab.dataplane.save_text(node)
    assert "--to-destination [fd00:10:244:" in save6 and "fd00:" not in save4
    assert lab.dataplane.nat_chains(node, 6) and set(lab.dataplane.nat_chains(node, 6)) != set(lab.dataplane.nat_chains(node))
    ns = lab.dataplane.network.nodes[node]
    assert ns.netfilter.family == 4 and ns.netfilter6.family == 6
    # tables held in memory say their family: ip6tables' load as IPv6 without being told
    assert Netfilter.from_tables(lab.dataplane.tables_of(node, 6).tables).family == 6
    assert Netfilter.from_tables(lab.dataplane.tables_of(node).tables).family == 4


def test_a_client_without_an_ipv6_address_has_no_route(dual_lab):
    from kslab.sim.network import Client

    net = dual_lab.dataplane.network
    conn = net.connect(Client("v4only", "172.18.0.200", "external"), "fd00:10:96::1", 443)
    assert conn.outcome == "no-route" and "has no IPv6 address" in conn.reason


@pytest.mark.parametrize("spec, needle", [
    ("fd00:10:96::1", "an IP destination needs a port"),
    ("[fd00:10:96::1]", "an IP destination needs a port"),
    ("[fd00:10:96::x]:80", "not an [IPv6]:PORT destination"),
    ("[fd00:10:96::1]:99999", "port '99999' is not a port number"),
])
def test_ipv6_destination_mistakes(dual_lab, spec, needle):
    from kslab.sim.network import resolve_destination

    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        resolve_destination(dual_lab.cluster, spec)


def test_dual_lab_in_nftables_mode_runs_the_ip6_table():
    import kslab

    lab = kslab.Lab("myk8s-dualstack", proxy_mode="nftables")
    svc = lab.cluster.service("svc-clusterip")
    v6 = next(ip for ip in svc.cluster_ips if ":" in ip)
    web6 = {p.pod_ip_of(6) for p in lab.cluster.pods if p.name.startswith("webpod")}
    t = lab.trace("net-pod", f"[{v6}]:{svc.ports[0].port}")
    assert t.outcome == "ok" and t.endpoint_ip in web6 and {c.ip for c in t.candidates} == web6
    node = "myk8s-worker"
    assert "table ip6 kube-proxy" in lab.dataplane.nft_list(node, 6) and "table ip kube-proxy" in lab.dataplane.nft_list(node)
    assert isinstance(lab.dataplane.network.nodes[node].netfilter6, NftNetfilter)


# ---- upstream TestNodePorts, its IPv6 cases, through the single-node tracer -------------------------
# pkg/proxy/iptables/proxier_test.go TestNodePorts and pkg/proxy/nftables/proxier_test.go TestNodePorts:
# runPacketFlowTests' output is every endpoint a connection can reach (JoinHostPort, sorted, ", "),
# "" when no rule took it; here the sim's candidates (kslab.sim.candidates) give that answer.

TEST_NODE_IPS = ("192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2")  # testNodeIPs
NODE_IPV6, NODE_IPV6_ALT = "2001:db8::1", "2001:db8:1::2"  # testNodeIPv6, testNodeIPv6Alt
SVC6, EP6_1, EP6_2 = "fd00:172:30::41", "fd00:10:180::1", "fd00:10:180::2:1"
POD6, EXTERNAL6 = "fd00:10::2", "2600:5200::1"


def _node_ports_objects():
    svc = parse_service(Document("test", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc1", "namespace": "ns1"},
                                          "spec": {"type": "NodePort", "clusterIP": SVC6, "clusterIPs": [SVC6], "ipFamilies": ["IPv6"],
                                                   "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}]}}))
    sl = parse_endpoint_slice(Document("test", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "svc1-1", "namespace": "ns1", "labels": {"kubernetes.io/service-name": "svc1"}},
        "addressType": "IPv6", "endpoints": [{"addresses": [EP6_1]}, {"addresses": [EP6_2], "nodeName": "test-node"}],
        "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}))
    return [svc], [sl]


def _node_ports_netfilter(mode: str, localhost_nodeports: bool, npa: tuple[str, ...]):
    from kslab.proxy.iptables.node import NodeIptables

    cfg = ProxyConfig(node_name="test-node", node_ips=TEST_NODE_IPS, cluster_cidr="fd00:10::/64", family=6, mode=mode,
                      localhost_nodeports=localhost_nodeports, nodeport_addresses=npa, service_cidrs=("fd00:10:96::/112",))
    if mode == "nftables":
        return NftNetfilter.from_text(render_nft(*_node_ports_objects(), cfg).raw_text(), family="ip6", strict=True)
    tables = NodeIptables(6)
    tables.full_sync(render_iptables(*_node_ports_objects(), cfg).raw_text())
    return Netfilter.from_text(tables.save_text(), family=6, strict=True)


def _flow(nf, src: str, dst: str, dport: int) -> tuple[str, bool | None]:
    """runPacketFlowTests' (output, masq) for one flow, from the sim's candidates."""
    local = {a for a in TEST_NODE_IPS if ":" in a}
    cands = netfilter_candidates(nf, node_ip=NODE_IPV6, src=src, dst=dst, dport=dport, proto="tcp", local_addresses=local)
    assert cands is not None and abs(sum(c.probability for c in cands) - 1) < 1e-9
    reached = [c for c in cands if c.outcome == "forwarded" and c.ip and (c.ip, c.port) != (dst, dport)]
    if not reached:
        return "", None
    masq = {c.masquerade for c in reached}
    assert len(masq) == 1
    return ", ".join(sorted(c.endpoint for c in reached)), masq.pop()


@pytest.mark.parametrize("mode, localhost_nodeports, npa, allow_alt", [
    # iptables TestNodePorts: "ipv6, localhost-nodeports enabled" / "... disabled" / "... disabled, multiple nodeport-addresses"
    ("iptables", True, (), True),
    ("iptables", False, (), True),
    ("iptables", False, ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"), False),
    # nftables TestNodePorts: "ipv6" (NewFakeProxier's [testNodeIP/32, testNodeIPv6/128]) / "ipv6, multiple nodeport-addresses"
    ("nftables", True, ("192.168.0.2/32", "2001:db8::1/128"), False),
    ("nftables", True, ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64", "2001:db8:1::2/128"), True),
], ids=["ipt-ipv6-localhost-on", "ipt-ipv6-localhost-off", "ipt-ipv6-multiple-npa", "nft-ipv6", "nft-ipv6-multiple-npa"])
def test_upstream_node_ports_ipv6_flows(mode, localhost_nodeports, npa, allow_alt):
    nf = _node_ports_netfilter(mode, localhost_nodeports, npa)
    output = f"[{EP6_1}]:80, [{EP6_2}]:80"
    assert _flow(nf, POD6, SVC6, 80) == (output, False)  # pod to cluster IP
    assert _flow(nf, EXTERNAL6, NODE_IPV6, 3001) == (output, True)  # external to nodePort
    assert _flow(nf, NODE_IPV6, NODE_IPV6, 3001) == (output, True)  # node to nodePort
    if mode == "iptables":  # localhost to nodePort is only allowed in IPv4: ignored
        assert _flow(nf, "::1", "::1", 3001) == ("", None)
    if allow_alt:  # external to nodePort on secondary IP
        assert _flow(nf, EXTERNAL6, NODE_IPV6_ALT, 3001) == (output, True)
    else:  # secondary nodeIP ignores NodePorts
        assert _flow(nf, EXTERNAL6, NODE_IPV6_ALT, 3001) == ("", None)


def test_dual_lab_switches_proxy_mode_in_both_families():
    """kube-proxy's start-up cleanup of the other mode happens per family: nftables -> iptables
    deletes table ip and table ip6 kube-proxy; iptables -> nftables leaves each family's
    iptables tables as CleanupLeftovers does. IPv6 connections follow the mode."""
    import kslab

    lab = kslab.Lab("myk8s-dualstack", proxy_mode="nftables")
    svc = lab.cluster.service("svc-clusterip")
    to = f"[{next(ip for ip in svc.cluster_ips if ':' in ip)}]:{svc.ports[0].port}"
    dp, node = lab.dataplane, "myk8s-worker"
    assert dp.nft_families[node] == {4, 6}
    lab.set_proxy(mode="iptables")
    assert not dp.nft and isinstance(dp.network.nodes[node].netfilter6, Netfilter)
    t = lab.trace("net-pod", to)
    assert t.outcome == "ok" and any(c.startswith("KUBE-SVC-") for c in t.chains)
    lab.set_proxy(mode="nftables")
    assert dp.nft_families[node] == {4, 6} and isinstance(dp.network.nodes[node].netfilter6, NftNetfilter)
    assert not [ln for ln in dp.save_text(node, 6).splitlines() if ln.startswith("-A KUBE-SERVICES")]
    t = lab.trace("net-pod", to)
    assert t.outcome == "ok" and any(c.startswith("service-") for c in t.chains)


# ---- IPv6 twins of upstream TestExternalTrafficPolicyLocal / TestExternalTrafficPolicyCluster ----------
# (pkg/proxy/{iptables,nftables}/proxier_test.go: the IPv4 flows with IPv6 addresses; the external IP
# is a node address, as upstream's testExternalIP is one of testNodeIPs)

EXTERNAL_IP6, LB_IP6 = "2001:db8:99::11", "2001:db8:1234::4"


def _etp_netfilter(mode: str, policy: str):
    from kslab.proxy.iptables.node import NodeIptables

    spec = {"type": "LoadBalancer", "clusterIP": SVC6, "clusterIPs": [SVC6], "ipFamilies": ["IPv6"],
            "externalTrafficPolicy": policy, "externalIPs": [EXTERNAL_IP6],
            "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001, "targetPort": 80}]}
    if policy == "Local":
        spec["healthCheckNodePort"] = 30000
    svc = parse_service(Document("test", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc1", "namespace": "ns1"},
                                          "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": LB_IP6}]}}}))
    _, slices = _node_ports_objects()
    npa = ("192.168.0.2/32", "2001:db8::1/128") if mode == "nftables" else ()  # each NewFakeProxier's default
    cfg = ProxyConfig(node_name="test-node", node_ips=(*TEST_NODE_IPS, EXTERNAL_IP6), cluster_cidr="fd00:10::/64", family=6,
                      mode=mode, nodeport_addresses=npa, service_cidrs=("fd00:10:96::/112",))
    if mode == "nftables":
        return NftNetfilter.from_text(render_nft([svc], slices, cfg).raw_text(), family="ip6", strict=True)
    tables = NodeIptables(6)
    tables.full_sync(render_iptables([svc], slices, cfg).raw_text())
    return Netfilter.from_text(tables.save_text(), family=6, strict=True)


def _etp_flow(nf, src: str, dst: str, dport: int):
    local = {a for a in TEST_NODE_IPS if ":" in a} | {EXTERNAL_IP6}
    cands = netfilter_candidates(nf, node_ip=NODE_IPV6, src=src, dst=dst, dport=dport, proto="tcp", local_addresses=local)
    assert cands is not None and abs(sum(c.probability for c in cands) - 1) < 1e-9
    reached = [c for c in cands if c.ip and (c.ip, c.port) != (dst, dport)]
    masq = {c.masquerade for c in reached}
    assert len(masq) == 1
    return ", ".join(sorted(c.endpoint for c in reached)), masq.pop()


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("policy", ["Local", "Cluster"])
def test_external_traffic_policy_ipv6_twins(mode, policy):
    nf = _etp_netfilter(mode, policy)
    both, local_only = f"[{EP6_1}]:80, [{EP6_2}]:80", f"[{EP6_2}]:80"
    ext = policy == "Cluster"  # Cluster: every external path is masqueraded and reaches both endpoints
    flows = [  # (name, source, destination, port, output, masq)
        ("pod to cluster IP", POD6, SVC6, 80, both, False),
        ("pod to external IP", POD6, EXTERNAL_IP6, 80, both, ext),
        ("external to external IP", EXTERNAL6, EXTERNAL_IP6, 80, both if ext else local_only, ext),
        ("pod to LB IP", POD6, LB_IP6, 80, both, ext),
        ("external to LB IP", EXTERNAL6, LB_IP6, 80, both if ext else local_only, ext),
        ("pod to NodePort", POD6, NODE_IPV6, 3001, both, ext),
        ("external to NodePort", EXTERNAL6, NODE_IPV6, 3001, both if ext else local_only, ext),
    ]
    for name, src, dst, port, output, masq in flows:
        assert _etp_flow(nf, src, dst, port) == (output, masq), name


def test_ip6tables_commands_in_the_simulated_dual_lab():
    """``lab.sh(node, "ip6tables ...")`` lists the IPv6 proxier's tables (what ``render(node, 6)``
    loaded), ``iptables`` the IPv4 one's; a single-stack lab's ip6tables are empty."""
    import kslab

    lab = kslab.Lab("myk8s-dualstack", backend="sim", seed=1)
    v6 = lab.sh("myk8s-worker", "ip6tables -t nat -S KUBE-SERVICES").stdout
    v4 = lab.sh("myk8s-worker", "iptables -t nat -S KUBE-SERVICES").stdout
    want6 = [l for l in lab.render("myk8s-worker", 6).save_text().splitlines() if l.startswith("-A KUBE-SERVICES ")]
    assert [l for l in v6.splitlines() if l.startswith("-A ")] == want6 and "/128" in v6 and "/128" not in v4
    save = lab.sh("myk8s-worker", "ip6tables-save -t nat").stdout
    assert save.startswith("# Generated by ip6tables-nft-save") or save.startswith("# Generated by ip6tables-save")
    assert lab.verify("myk8s-worker", family=6).ok()
    single = kslab.Lab(backend="sim", seed=1)
    assert "KUBE-" not in single.sh("myk8s-worker", "ip6tables -t nat -S").stdout
    import pytest
    from kslab.errors import InputError

    with pytest.raises(InputError, match=r"^ip6tables: no command specified"):
        single.sh("myk8s-worker", "ip6tables -t nat")
