"""IPv6 and dual-stack rendering (issue 16): kube-proxy runs one proxier per IP family, and
``kslab render --family`` / ``Lab.render(node, family)`` render one of them.

- ``ProxyConfig.for_node(..., family=)``: the family's CIDRs of dual values, its node IPs;
- ``pkg/proxy/util/nodeport_addresses_test.go``: TestContainsIPv4Loopback, TestGetNodeIPs (both
  families), ``primary`` per family;
- ``pkg/proxy/iptables/proxier_test.go``: TestEnable/DisableLocalhostNodePortsIPv6 and the IPv4
  twins byte for byte through the CLI; TestNodePorts' IPv6 cases (rules and packet flows);
- ``pkg/proxy/nftables/proxier_test.go``: TestNodePorts (the nodeport-ips set, IPv6 flows);
- the notes on stderr (nothing of the other family dropped silently), every format of both
  families, nftables IPv6 through the real kernel, the dual-stack lab, ``kslab trace --family``.

Each ported case names its upstream test (kubernetes/kubernetes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kslab import cli
from kslab.errors import InputError
from kslab.model import ClusterConfig, ClusterState, Node
from kslab.proxy.config import ProxyConfig, cluster_primary_family
from kslab.proxy.util import cidrs_of_family, new_nodeport_addresses, nodeport_addresses_contain_ipv4_loopback


def _dual_state(pod_subnet="10.244.0.0/16,fd00:10:244::/56", service_subnet="10.96.0.0/16,fd00:10:96::/112"):
    node = Node(name="n1", internal_ip="172.18.0.2", pod_cidr="10.244.1.0/24,fd00:10:244:1::/64",
                extra_ips=("fc00:f853:ccd:e793::2",))
    return ClusterState(config=ClusterConfig(pod_subnet=pod_subnet, service_subnet=service_subnet), nodes=[node])


def test_for_node_picks_the_family_from_dual_values():
    st = _dual_state()
    v4 = ProxyConfig.for_node(st, "n1")
    assert (v4.family, v4.cluster_cidr, v4.service_cidrs, v4.node_ips, v4.node_pod_cidr) == (
        4, "10.244.0.0/16", ("10.96.0.0/16",), ("172.18.0.2",), "10.244.1.0/24")
    v6 = ProxyConfig.for_node(st, "n1", family=6)
    assert (v6.family, v6.cluster_cidr, v6.service_cidrs, v6.node_ips, v6.node_pod_cidr) == (
        6, "fd00:10:244::/56", ("fd00:10:96::/112",), ("fc00:f853:ccd:e793::2",), "fd00:10:244:1::/64")
    # family as an override (the old spelling) means the same
    assert ProxyConfig.for_node(st, "n1", family=6) == ProxyConfig.for_node(st, "n1", **{"family": 6})
    # upstream NewProxier: ContainsIPv4Loopback is false for the IPv6 proxier -> localhostNodePorts off
    assert v4.localhost_nodeports is True and v6.localhost_nodeports is False


def test_for_node_primary_family_of_an_ipv6_cluster():
    st = ClusterState(config=ClusterConfig(pod_subnet="fd00:10:244::/56", service_subnet="fd00:10:96::/112"),
                      nodes=[Node(name="n1", internal_ip="fc00::2", pod_cidr="fd00:10:244:1::/64")])
    assert cluster_primary_family(st) == 6
    cfg = ProxyConfig.for_node(st, "n1")
    assert (cfg.family, cfg.cluster_cidr, cfg.node_ips) == (6, "fd00:10:244::/56", ("fc00::2",))
    # the IPv4 proxier of an IPv6-only cluster: no CIDR, no node IP (upstream logs and goes on)
    v4 = ProxyConfig.for_node(st, "n1", family=4)
    assert (v4.cluster_cidr, v4.service_cidrs, v4.node_ips, v4.node_pod_cidr) == (None, (), (), None)


def test_for_node_explicit_overrides_per_family():
    st = _dual_state()
    cfg = ProxyConfig.for_node(st, "n1", family=6, cluster_cidr="10.0.0.0/8,fd00:1::/64",
                               service_cidrs=("10.96.0.0/16", "fd00:2::/112"))
    assert (cfg.cluster_cidr, cfg.service_cidrs) == ("fd00:1::/64", ("fd00:2::/112",))
    # an override without a value of the family: that proxier has none (upstream logs and runs
    # without a local detector / with the loopback as node IP); the CLI refuses it (D2, test_cli_errors)
    cfg = ProxyConfig.for_node(st, "n1", family=6, cluster_cidr="10.0.0.0/8", node_ips=("192.168.0.2",))
    assert (cfg.cluster_cidr, cfg.node_ips, cfg.node_ip, cfg.if_local()) == (None, (), None, None)
    with pytest.raises(InputError):
        ProxyConfig.for_node(st, "n1", family=5)


def test_cidrs_of_family():
    assert cidrs_of_family("10.244.0.0/16, fd00:10:244::/56", 6) == ("fd00:10:244::/56",)
    assert cidrs_of_family(("10.1.0.0/16", "fd00::/8", "10.2.0.0/16"), 4) == ("10.1.0.0/16", "10.2.0.0/16")
    assert cidrs_of_family(None, 4) == ()



REPO = Path(__file__).resolve().parents[1]
FAMILIES = REPO / "tests" / "data" / "kube-proxy" / "families"
TAIL = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
# upstream proxier_test.go's node: testNodeIP, testNodeIPAlt, testExternalIP, testNodeIPv6, testNodeIPv6Alt
NODE_IPS4 = ("192.168.0.2", "192.168.1.2", "192.168.99.11")
NODE_IPS6 = ("2001:db8::1", "2001:db8:1::2")


def kslab(capsys, *args: str) -> tuple[int, str, str]:
    """``kslab ARGS...`` in this process: exit status, stdout, stderr."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---- pkg/proxy/util/nodeport_addresses_test.go -------------------------------------------------------

# TestContainsIPv4Loopback: its 8 cases for the IPv4 proxier, and "ContainsIPv4Loopback should
# always be false for family=IPv6"
_OTHERS = ["224.0.0.0/24", "192.168.0.0/16", "fd00:1:d::/64"]


@pytest.mark.parametrize("cidrs, want", [
    ([], True),  # empty
    (_OTHERS + ["0.0.0.0/0"], True),  # all zeros ipv4
    (_OTHERS + ["::/0"], False),  # all zeros ipv6
    (_OTHERS + ["127.0.0.0/8"], True),  # ipv4 loopback
    (_OTHERS + ["::1/128"], False),  # ipv6 loopback
    (_OTHERS + ["127.0.2.0/28"], True),  # ipv4 loopback smaller range
    (_OTHERS + ["64.0.0.0/2"], True),  # ipv4 loopback within larger range
    (["128.0.2.0/28"] + _OTHERS, False),  # non loop loopback
], ids=["empty", "all zeros ipv4", "all zeros ipv6", "ipv4 loopback", "ipv6 loopback", "ipv4 loopback smaller range",
        "ipv4 loopback within larger range", "non loop loopback"])
def test_contains_ipv4_loopback(cidrs, want):  # upstream TestContainsIPv4Loopback
    assert new_nodeport_addresses(4, cidrs).contains_ipv4_loopback is want
    assert new_nodeport_addresses(6, cidrs).contains_ipv4_loopback is False
    # the wrapper the proxiers and ProxyConfig.for_node use says the same
    assert nodeport_addresses_contain_ipv4_loopback(tuple(cidrs)) is want
    assert nodeport_addresses_contain_ipv4_loopback(tuple(cidrs), 6) is False


# TestGetNodeIPs (TestGetNodeAddresses in older trees): 12 cases, each checked for both families:
# (cidrs, the interface addresses, {family: (matchAll, the GetNodeIPs set)})
GET_NODE_IPS = {
    "IPv4 single": (["10.20.30.0/24"], ["10.20.30.51", "100.200.201.1"],
                    {4: (False, {"10.20.30.51"}), 6: (True, set())}),
    "IPv4 zero CIDR": (["0.0.0.0/0"], ["10.20.30.51", "127.0.0.1"],
                       {4: (True, {"10.20.30.51", "127.0.0.1"}), 6: (True, set())}),
    "IPv6 multiple": (["2001:db8::/64", "::1/128"], ["2001:db8::1", "::1"],
                      {4: (True, set()), 6: (False, {"2001:db8::1", "::1"})}),
    "IPv6 zero CIDR": (["::/0"], ["2001:db8::1", "::1"],
                       {4: (True, set()), 6: (True, {"2001:db8::1", "::1"})}),
    "IPv4 localhost exact": (["127.0.0.1/32"], ["10.20.30.51", "127.0.0.1"],
                             {4: (False, {"127.0.0.1"}), 6: (True, set())}),
    "IPv4 localhost subnet": (["127.0.0.0/8"], ["127.0.1.1"],
                              {4: (False, {"127.0.1.1"}), 6: (True, set())}),
    "IPv4 multiple": (["10.20.30.0/24", "100.200.201.0/24"], ["10.20.30.51", "100.200.201.1"],
                      {4: (False, {"10.20.30.51", "100.200.201.1"}), 6: (True, set())}),
    "IPv4 multiple, no match": (["10.20.30.0/24", "100.200.201.0/24"], ["192.168.1.2", "127.0.0.1"],
                                {4: (False, set()), 6: (True, set())}),
    "empty list, IPv4 addrs": ([], ["192.168.1.2", "127.0.0.1"],
                               {4: (True, {"192.168.1.2", "127.0.0.1"}), 6: (True, set())}),
    "empty list, IPv6 addrs": ([], ["2001:db8::1", "::1"],
                               {4: (True, set()), 6: (True, {"2001:db8::1", "::1"})}),
    "IPv4 redundant CIDRs": (["1.2.3.0/24", "0.0.0.0/0"], ["1.2.3.4"],
                             {4: (True, {"1.2.3.4"}), 6: (True, set())}),
    "Dual-stack, redundant IPv4": (["0.0.0.0/0", "1.2.3.0/24", "2001:db8::1/128"], ["1.2.3.4", "2001:db8::1", "127.0.0.1", "::1"],
                                   {4: (True, {"1.2.3.4", "127.0.0.1"}), 6: (False, {"2001:db8::1"})}),
    "Dual-stack, redundant IPv6": (["::/0", "1.2.3.0/24", "2001:db8::1/128"], ["1.2.3.4", "2001:db8::1", "127.0.0.1", "::1"],
                                   {4: (False, {"1.2.3.4"}), 6: (True, {"2001:db8::1", "::1"})}),
}


@pytest.mark.parametrize("case", list(GET_NODE_IPS))
@pytest.mark.parametrize("family", [4, 6])
def test_get_node_ips(case, family):  # upstream TestGetNodeIPs (pkg/proxy/util/nodeport_addresses_test.go)
    """NewNodePortAddresses(family, cidrs): MatchAll and GetNodeIPs over the interface
    addresses, compared as sets (upstream collects them in a Go map)."""
    cidrs, addrs, expected = GET_NODE_IPS[case]
    npa = new_nodeport_addresses(family, cidrs)
    match_all, ips = expected[family]
    assert npa.match_all is match_all
    got = npa.node_ips(addrs)
    assert set(got) == ips and len(got) == len(ips)


def test_nodeport_addresses_primary_is_the_family_primary():
    """cmd/kube-proxy turns ``primary`` into the node's primary IP of each family (/32, /128)
    before NewNodePortAddresses: a family without a node IP is then MatchAll."""
    from kslab.proxy.util import node_port_addresses

    npa = node_port_addresses(("primary",), 6, ("192.168.0.2", "2001:db8::1", "2001:db8:1::2"))
    assert (npa.cidrs, npa.match_all) == (("2001:db8::1/128",), False)
    assert npa.node_ips(("::1", "2001:db8::1", "2001:db8:1::2")) == ["2001:db8::1"]
    assert node_port_addresses(("primary",), 6, ("192.168.0.2",)).match_all is True
    assert node_port_addresses(("primary",), 4, ("192.168.0.2", "2001:db8::1")).cidrs == ("192.168.0.2/32",)


# ---- TestEnableLocalhostNodePortsIPv6 / TestDisableLocalhostNodePortsIPv6, byte for byte, CLI ---------

def _expected(name: str) -> str:
    text = "".join(ln + "\n" for ln in (FAMILIES / name).read_text().splitlines() if not ln.startswith("#"))
    return text.replace("0x4000", "0x00004000")  # the unit tests' mark; a real kube-proxy writes %#08x


@pytest.mark.parametrize("localhost", ["true", "false"],
                         ids=["TestEnableLocalhostNodePortsIPv6", "TestDisableLocalhostNodePortsIPv6"])
def test_localhost_nodeports_ipv6_byte_for_byte(capsys, localhost):
    """Upstream TestEnableLocalhostNodePortsIPv6 and TestDisableLocalhostNodePortsIPv6 (v1.27-era
    file: no nfacct, fake iptables without --random-fully, NoOp local detector) through ``kslab
    render --family ipv6``: the same dump whatever --iptables-localhost-nodeports says (no
    KUBE-FIREWALL, ``! -d ::1/128``, the IPv6 SEP hashes, ``[ff06::c1]:80``)."""
    code, out, err = kslab(capsys, "render", "-f", str(FAMILIES / "localhost-nodeports-ipv6.yaml"), "--as-is",
                           "--node", "test-hostname", "--family", "ipv6", "--node-ip", "2001:db8::1",
                           "--detect-local-mode", "None", "--no-nfacct", "--no-random-fully",
                           "--iptables-localhost-nodeports", localhost)
    assert (code, err) == (0, "")
    assert out == _expected("localhost-nodeports-ipv6.expected.txt")
    # the family comes from the node IP too (D1): same text without --family
    code2, out2, _ = kslab(capsys, "render", "-f", str(FAMILIES / "localhost-nodeports-ipv6.yaml"), "--as-is",
                           "--node", "test-hostname", "--node-ip", "2001:db8::1", "--detect-local-mode", "None",
                           "--no-nfacct", "--no-random-fully", "--iptables-localhost-nodeports", localhost)
    assert (code2, out2) == (0, out)


IPV4_LOCALHOST_CASES = {  # upstream test: (--iptables-localhost-nodeports, --nodeport-addresses, expected file, the note)
    "TestEnableLocalhostNodePortsIPv4": ("true", None, "enable", None),
    "TestDisableLocalhostNodePortsIPv4": ("false", None, "disable", None),
    "TestDisableLocalhostNodePortsIPv4WithNodeAddress": ("false", "127.0.0.0/8", "with-node-address",
        "kslab: note: --nodeport-addresses 127.0.0.0/8 selects only 127.0.0.1: --iptables-localhost-nodeports=false "
        "leaves it out, so no NodePort is reachable through the IPv4 proxier"),
}


@pytest.mark.parametrize("test", list(IPV4_LOCALHOST_CASES))
def test_localhost_nodeports_ipv4_byte_for_byte(capsys, test):
    """The IPv4 twins (same file era): the localnet KUBE-FIREWALL rule only with localhost
    NodePorts on; off: ``! -d 127.0.0.0/8``; off with nodePortAddresses 127.0.0.0/8: no capture
    rule at all (GetNodeIPs gives 127.0.0.1, skipped), and kslab says why on stderr."""
    localhost, npa, name, note = IPV4_LOCALHOST_CASES[test]
    code, out, err = kslab(capsys, "render", "-f", str(FAMILIES / "localhost-nodeports-ipv4.yaml"), "--as-is",
                           "--node", "test-hostname", "--node-ip", "192.168.0.2", "--detect-local-mode", "None", "--no-nfacct",
                           "--no-random-fully", "--iptables-localhost-nodeports", localhost,
                           *(["--nodeport-addresses", npa] if npa else []))
    assert code == 0 and err.splitlines() == ([note] if note else [])
    assert out == _expected(f"localhost-nodeports-ipv4-{name}.expected.txt")


def test_localhost_nodeports_ipv6_in_the_ipv4_proxier_is_a_note(capsys):
    """The same input rendered for IPv4: nothing of the IPv6 Service, and a note on stderr for
    it (upstream's IPv4 proxier ignores it and logs), never silently."""
    code, out, err = kslab(capsys, "render", "-f", str(FAMILIES / "localhost-nodeports-ipv6.yaml"), "--as-is",
                           "--node", "test-hostname", "--node-ip", "192.168.0.2", "--no-nfacct")
    assert code == 0 and "ns1/svc1" not in out and "KUBE-SVC" not in out
    assert err.splitlines() == [
        "kslab: note: Service ns1/svc1 has no IPv4 ClusterIP (fd00:ab34::20): not in the IPv4 proxier's rules "
        "(render it with --family ipv6)"]


# ---- TestNodePorts (pkg/proxy/iptables/proxier_test.go): the IPv6 cases' rules ------------------------

NODE_PORT6_YAML = """apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec:
  type: NodePort
  clusterIP: fd00:172:30::41
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv6
endpoints:
- {addresses: ["fd00:10:180::1"]}
- {addresses: ["fd00:10:180::2:1"], nodeName: test-node}
ports: [{name: p80, port: 80, protocol: TCP}]
"""

# (case name, localhostNodePorts, nodePortAddresses, allowAltNodeIP, KUBE-SERVICES tail rules); expectFirewall
# is false in every IPv6 case
NODE_PORTS_IPV6 = [
    ("ipv6, localhost-nodeports enabled", True, (), True,
     [f"{TAIL} -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS"]),
    ("ipv6, localhost-nodeports disabled", False, (), True,
     [f"{TAIL} -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS"]),
    ("ipv6, localhost-nodeports disabled, multiple nodeport-addresses", False,
     ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"), False, [f"{TAIL} -d 2001:db8::1 -j KUBE-NODEPORTS"]),
]


POD6, EXT6, SVC6 = "fd00:10::2", "2600:5200::1", "fd00:172:30::41"  # podIP, externalClientIP, svcIP of the IPv6 cases
BOTH6 = "[fd00:10:180::1]:80, [fd00:10:180::2:1]:80"  # net.JoinHostPort(epIP1, "80") + ", " + net.JoinHostPort(epIP2, "80")


def flow6(nf, src: str, dst: str, dport: int) -> tuple[str, bool]:
    """upstream's ``runPacketFlowTests`` output through one node's tables: every endpoint a new
    connection can reach (sorted, ", "-joined; "" when kube-proxy's rules leave it alone) and
    whether those paths masquerade (kslab.sim.single.netfilter_candidates)."""
    from kslab.sim.single import netfilter_candidates

    cands = netfilter_candidates(nf, node_ip=NODE_IPS6[0], src=src, dst=dst, dport=dport, proto="tcp",
                                 local_addresses=set(NODE_IPS6))
    reached = [c for c in cands if c.endpoint]
    masq = {c.masquerade for c in reached}
    assert len(masq) <= 1
    return ", ".join(sorted({c.endpoint for c in reached})), masq == {True}


def _node_port6_state(tmp_path):
    from kslab.controlplane import load_cluster

    f = tmp_path / "np6.yaml"
    f.write_text(NODE_PORT6_YAML)
    return load_cluster([f], as_is=True)


@pytest.mark.parametrize("name, localhost, addresses, alt, tails", NODE_PORTS_IPV6, ids=[c[0] for c in NODE_PORTS_IPV6])
def test_upstream_node_ports_ipv6_rules(tmp_path, name, localhost, addresses, alt, tails):
    """TestNodePorts (iptables), its IPv6 cases (NewFakeProxier(IPv6): pod CIDR fd00:10::/64,
    the node's five addresses of which the IPv6 proxier sees 2001:db8::1 and 2001:db8:1::2):
    the NodePort capture rules, no KUBE-FIREWALL rule (expectFirewall false), and the rules the
    packet flows walk (pod to cluster IP unmasqueraded, external/node to NodePort masqueraded,
    both endpoints)."""
    from kslab.proxy.iptables import render

    st = _node_port6_state(tmp_path)
    cfg = ProxyConfig(node_name="test-node", node_ips=NODE_IPS4 + NODE_IPS6, cluster_cidr="fd00:10::/64", family=6,
                      localhost_nodeports=localhost, nodeport_addresses=addresses)
    assert cfg.node_ip == "2001:db8::1"  # nodeIPs[IPv6]
    text = render(st.services, st.endpoint_slices, cfg).restore_text()
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith(TAIL)] == tails
    assert not [ln for ln in lines if "KUBE-FIREWALL" in ln and "PROXY-FIREWALL" not in ln]
    assert "127.0.0.0/8" not in text and "nfacct-name localhost_nps_accepted_pkts" not in text
    # the rules the flows walk: masquerade unless from the pod CIDR, DNAT to [ip]:port, both endpoints
    assert ('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
            '-d fd00:172:30::41 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ') in lines
    assert [ln.split("--to-destination ")[1] for ln in lines if "DNAT" in ln] == ["[fd00:10:180::2:1]:80", "[fd00:10:180::1]:80"]
    assert "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O" in lines
    # the node's secondary IPv6 address is accepted exactly when nodePortAddresses selects it
    assert (cfg.nodeport_addrs.match_all or "2001:db8:1::2" in cfg.nodeport_ips()) is alt
    # runPacketFlowTests, through the simulator's ip6tables (every candidate of the ladder)
    from kslab.sim.netfilter import Netfilter

    nf = Netfilter.from_text(render(st.services, st.endpoint_slices, cfg).save_text(), family=6)
    assert flow6(nf, POD6, SVC6, 80) == (BOTH6, False), "pod to cluster IP"
    assert flow6(nf, EXT6, NODE_IPS6[0], 3001) == (BOTH6, True), "external to nodePort"
    assert flow6(nf, NODE_IPS6[0], NODE_IPS6[0], 3001) == (BOTH6, True), "node to nodePort"
    assert flow6(nf, "::1", "::1", 3001) == ("", False), "localhost to nodePort is ignored"  # IPv6: always
    if alt:
        assert flow6(nf, EXT6, NODE_IPS6[1], 3001) == (BOTH6, True), "external to nodePort on secondary IP"
    else:
        assert flow6(nf, EXT6, NODE_IPS6[1], 3001) == ("", False), "secondary nodeIP ignores NodePorts"


# ---- TestNodePorts (pkg/proxy/nftables/proxier_test.go): the nodeport-ips set per family ---------------

# NewFakeProxier(family) defaults nodePortAddresses to [testNodeIP/32, testNodeIPv6/128]
NFT_NODE_PORTS = [
    ("ipv4", 4, None, ["192.168.0.2"]),
    ("ipv4, multiple nodeport-addresses", 4, "192.168.0.0/24,192.168.1.0/24,2001:db8::/64", ["192.168.0.2", "192.168.1.2"]),
    ("ipv6", 6, None, ["2001:db8::1"]),
    ("ipv6, multiple nodeport-addresses", 6, "192.168.0.0/24,192.168.1.0/24,2001:db8::/64,2001:db8:1::2/128",
     ["2001:db8::1", "2001:db8:1::2"]),
]


@pytest.mark.parametrize("name, family, addresses, elements", NFT_NODE_PORTS, ids=[c[0] for c in NFT_NODE_PORTS])
def test_upstream_nftables_node_ports(tmp_path, capsys, name, family, addresses, elements):
    """nftables TestNodePorts: the ``nodeport-ips`` set holds the node's addresses of the
    proxier's family inside nodePortAddresses (allowAltNodeIP iff the secondary one is there),
    through ``kslab render --mode nftables``; the table is ``ip`` or ``ip6``."""
    f = tmp_path / "np.yaml"
    f.write_text(NODE_PORT6_YAML if family == 6 else NODE_PORT6_YAML.replace("fd00:172:30::41", "172.30.0.41").replace(
        "IPv6", "IPv4").replace('"fd00:10:180::1"', "10.180.0.1").replace('"fd00:10:180::2:1"', "10.180.2.1"))
    ips = NODE_IPS6 if family == 6 else NODE_IPS4
    npa = addresses or "192.168.0.2/32,2001:db8::1/128"
    code, out, err = kslab(capsys, "render", "-f", str(f), "--as-is", "--node", "test-node", "--mode", "nftables",
                           "--format", "nft", *[a for ip in ips for a in ("--node-ip", ip)], "--nodeport-addresses", npa,
                           "--cluster-cidr", "10.0.0.0/8,fd00:10::/64")  # NewFakeProxier's DetectLocalByCIDR per family
    assert (code, err) == (0, "")
    table = "ip6" if family == 6 else "ip"
    assert [ln.split("{ ")[1].rstrip(" }") for ln in out.splitlines()
            if ln.startswith(f"add element {table} kube-proxy nodeport-ips ")] == elements
    assert f"add table {table} kube-proxy" in out and (f"add table {'ip' if family == 6 else 'ip6'} " not in out)
    if family == 6:  # runPacketFlowTests of the IPv6 cases, through the simulator's ip6 table
        from kslab.sim.nftables import NftNetfilter

        nf = NftNetfilter.from_text(out, family="ip6")
        alt = "2001:db8:1::2" in elements
        assert flow6(nf, POD6, SVC6, 80) == (BOTH6, False), "pod to cluster IP"
        assert flow6(nf, EXT6, NODE_IPS6[0], 3001) == (BOTH6, True), "external to nodePort"
        assert flow6(nf, NODE_IPS6[0], NODE_IPS6[0], 3001) == (BOTH6, True), "node to nodePort"
        assert flow6(nf, EXT6, NODE_IPS6[1], 3001) == ((BOTH6, True) if alt else ("", False)), "secondary IP"


# ---- notes on stderr (never silently) and the family's own values of dual inputs --------------------

DUAL = str(FAMILIES / "dual-node.yaml")
NOTE_V4ONLY = ("kslab: note: Service ns/v4only has no IPv6 ClusterIP (10.96.0.30): not in the IPv6 proxier's rules "
               "(render it with --family ipv4)")
NOTE_ORPHAN = ("kslab: note: EndpointSlice ns/orphan-v6 (IPv6, of Service ns/gone) is not in the IPv4 proxier's rules "
               "(render it with --family ipv6)")


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_dual_stack_node_renders_each_family(capsys, family):
    """A dual-stack Service is in both proxiers (its slice of each family, the same KUBE-SVC
    hash: servicePortChainName hashes the port name, not the IP); the family's node IP, pod
    CIDR of a dual --cluster-cidr; only what the family's proxier leaves out is noted."""
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--family", family,
                           "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56")
    assert code == 0
    v6 = family == "ipv6"
    svc = "fd00:10:96::20" if v6 else "10.96.0.20"
    ep = "[fd00:10:244:1::5]:80" if v6 else "10.244.1.5:80"
    assert f"-d {svc} --dport 80 ! -s {'fd00:10:244::/56' if v6 else '10.244.0.0/16'} -j KUBE-MARK-MASQ" in out
    assert f"--to-destination {ep}" in out and ":KUBE-SVC-" in out
    assert ("10.96.0.30" in out) is (not v6)  # the IPv4-only Service
    assert ("fd00:10:244:1::9" in out) is v6 or "fd00:10:244:1::9" not in out  # the orphan slice has no Service: no rules
    assert err.splitlines() == ([NOTE_V4ONLY] if v6 else [NOTE_ORPHAN])
    # the same KUBE-SVC chain name in both families
    code2, out2, _ = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--family", "ipv4" if v6 else "ipv6")
    chains = {ln.split()[0] for ln in out.splitlines() if ln.startswith(":KUBE-SVC-")}
    assert chains and chains == {ln.split()[0] for ln in out2.splitlines() if ln.startswith(":KUBE-SVC-")}


def test_family_default_is_the_nodes_first_internal_ip(capsys):
    """D1: no --family, no --node-ip: the family of the Node's first InternalIP (IPv4 here),
    with the Node's addresses of that family only."""
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--nodeport-addresses", "172.18.0.0/16,fc00::/7")
    assert code == 0 and "10.96.0.20" in out and "fd00:10:96::20" not in out
    assert f"{TAIL} -d 172.18.0.3 -j KUBE-NODEPORTS" in out and "fc00:f853" not in out
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--family", "ipv6",
                           "--nodeport-addresses", "172.18.0.0/16,fc00::/7")
    assert code == 0 and f"{TAIL} -d fc00:f853:ccd:e793::3 -j KUBE-NODEPORTS" in out


def test_notes_for_what_the_family_lacks(tmp_path, capsys):
    """Where upstream only logs, kslab notes on stderr: a node without an address of the
    family (no --node-ip given), a cluster whose podSubnet has no CIDR of the family, a
    nodePortAddresses with no CIDR of the family (MatchAll, D3) or selecting none of the
    node's addresses."""
    f = tmp_path / "c.yaml"
    f.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}, {role: worker}]\n")
    code, out, err = kslab(capsys, "render", "-f", str(f), "--node", "kind-worker", "--family", "ipv6")
    assert code == 0
    notes = err.splitlines()
    assert len(notes) == 3 and all(n.startswith("kslab: note: ") for n in notes)
    assert notes[0] == ("kslab: note: Service default/kubernetes has no IPv6 ClusterIP (10.96.0.1): not in the IPv6 "
                        "proxier's rules (render it with --family ipv4)")
    assert "node kind-worker has no IPv6 address" in notes[1] and "::1" in notes[1]
    assert "podSubnet 10.244.0.0/16 has no IPv6 CIDR" in notes[2] and "--cluster-cidr" in notes[2]
    assert "! -s " not in out  # no local-traffic detector
    code, out, err = kslab(capsys, "render", "-f", str(f), "--node", "kind-worker", "--family", "ipv6", "--detect-local-mode",
                           "NodeCIDR")
    assert code == 0 and err.splitlines()[-1] == ("kslab: note: node kind-worker has no IPv6 pod CIDR (10.244.1.0/24): "
                                                  "--detect-local-mode NodeCIDR gives the IPv6 proxier no local-traffic detector")
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--family", "ipv6", "--detect-local-mode", "NodeCIDR")
    assert code == 0 and "! -s fd00:10:244:1::/64 -j KUBE-MARK-MASQ" in out and "pod CIDR" not in err  # spec.podCIDRs' IPv6 one
    code, out, err = kslab(capsys, "render", "-f", str(f), "--node", "kind-worker", "--family", "ipv6", "--mode", "nftables",
                           "--service-cidrs", "10.96.0.0/16", "--cluster-cidr", "fd00:10:244::/56")
    assert code == 0 and err.splitlines()[-1] == ("kslab: note: --service-cidrs 10.96.0.0/16 has no IPv6 CIDR: the IPv6 proxier "
                                                  "drops no traffic to unallocated ClusterIPs")
    assert "podSubnet" not in err  # --cluster-cidr gave the IPv6 one
    code, out, err = kslab(capsys, "render", "-f", str(f), "--node", "kind-worker", "--nodeport-addresses", "fd00::/8")
    assert code == 0 and f"{TAIL} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS" in out
    assert err.splitlines() == ["kslab: note: --nodeport-addresses fd00::/8 has no IPv4 CIDR: the IPv4 proxier accepts NodePorts "
                                "on every local address (kube-proxy's NewNodePortAddresses uses 0.0.0.0/0)"]
    code, out, err = kslab(capsys, "render", "-f", str(f), "--node", "kind-worker", "--nodeport-addresses", "192.168.0.0/16")
    assert code == 0 and TAIL not in out
    assert len(err.splitlines()) == 1 and "--nodeport-addresses 192.168.0.0/16 selects none of the node's IPv4 addresses" in err


def test_issue_crash_mixed_nodeport_addresses_save(capsys):
    """The issue's crash: an IPv6 node address and mixed-family nodePortAddresses in the IPv4
    proxier's ``--format save`` ended in an internal error; the IPv6 address now belongs to the
    IPv6 proxier only (NewNodePortAddresses keeps the family's CIDRs, GetNodeIPs its addresses)."""
    yaml = str(FAMILIES / "localhost-nodeports-ipv6.yaml")
    code, out, err = kslab(capsys, "render", "-f", yaml, "--as-is", "--node", "test-node", "--node-ip", "192.168.0.2",
                           "--nodeport-addresses", "192.168.0.0/16,fd00::/8", "--format", "save")
    assert code == 0 and "internal error" not in err
    assert [ln for ln in out.splitlines() if "KUBE-NODEPORTS" in ln and ln.startswith("-A KUBE-SERVICES")] == [
        '-A KUBE-SERVICES -d 192.168.0.2/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the '
        'last rule in this chain" -j KUBE-NODEPORTS']
    code, out, err = kslab(capsys, "render", "-f", yaml, "--as-is", "--node", "test-node", "--node-ip", "fd00::2",
                           "--nodeport-addresses", "192.168.0.0/16,fd00::/8", "--format", "restore")
    assert (code, err) == (0, "") and f"{TAIL} -d fd00::2 -j KUBE-NODEPORTS" in out and "192.168" not in out


# ---- the IPv6 proxier's nodeIP (allowFromNode) and the rule counts ---------------------------------------

LB6_YAML = """apiVersion: v1
kind: Service
metadata: {name: lb, namespace: ns1}
spec:
  type: LoadBalancer
  clusterIP: fd00:172:30::42
  loadBalancerSourceRanges: ["2001:db8::/64", "203.0.113.0/25"]
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3002}]
status: {loadBalancer: {ingress: [{ip: "fd00:99::1"}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: lb-1, namespace: ns1, labels: {kubernetes.io/service-name: lb}}
addressType: IPv6
endpoints:
- {addresses: ["fd00:10:180::1"]}
- {addresses: ["fd00:10:180::2:1"], nodeName: test-node}
ports: [{name: p80, port: 80, protocol: TCP}]
"""


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_ipv6_proxier_node_ip_is_the_nodes_ipv6_address(tmp_path, mode):
    """nodeIPs[IPv6] (NewDualStackProxier hands each proxier its family's node IP): with the
    IPv4 address listed first, the IPv6 proxier still allows its own node through a
    loadBalancerSourceRanges that holds 2001:db8::1 (allowFromNode); the IPv4 source range is
    the other proxier's and dropped."""
    from kslab.controlplane import load_cluster
    from kslab.proxy.iptables import render
    from kslab.proxy.nftables import render as nft_render

    f = tmp_path / "lb6.yaml"
    f.write_text(LB6_YAML)
    st = load_cluster([f], as_is=True)
    cfg = ProxyConfig(node_name="test-node", node_ips=NODE_IPS4 + NODE_IPS6, cluster_cidr="fd00:10::/64", family=6, mode=mode)
    assert cfg.node_ip == "2001:db8::1"
    if mode == "iptables":
        text = render(st.services, st.endpoint_slices, cfg).restore_text()
        fw = [ln for ln in text.splitlines() if ln.startswith("-A KUBE-FW-")]
        assert [ln.split(" -j ")[0].split("loadbalancer IP\" ")[-1] for ln in fw[:2]] == ["-s 2001:db8::/64", "-s fd00:99::1"]
    else:
        text = nft_render(st.services, st.endpoint_slices, cfg).text("nft")
        assert "fd00:99::1" in text and "2001:db8::/64" in text
        assert "203.0.113.0/25" not in text
    assert "203.0.113.0/25" not in text


@pytest.mark.parametrize("npa", [(), ("2001:db8::/64",), ("192.168.0.0/24",), ("primary",), ("::1/128", "2001:db8:1::/64")])
def test_rule_counts_equal_the_ipv6_render(tmp_path, npa):
    """kslab.proxy.rulecount for the IPv6 proxier: the fixed lines (capture rules per
    nodePortAddresses of the family, no KUBE-FIREWALL, no localhost rules) and one Service's
    lines equal the renderer's, as for IPv4 (tests/test_rulecount.py)."""
    from kslab.controlplane import load_cluster
    from kslab.proxy.iptables import render
    from kslab.proxy.rulecount import iptables_fixed, service_rules
    from kslab.proxy.serviceport import service_port_infos

    f = tmp_path / "lb6.yaml"
    f.write_text(LB6_YAML)
    st = load_cluster([f], as_is=True)
    cfg = ProxyConfig(node_name="test-node", node_ips=NODE_IPS4 + NODE_IPS6, cluster_cidr="fd00:10::/64", family=6,
                      nodeport_addresses=npa)

    def lines(rs) -> int:
        return rs.raw_text().count("\n")

    empty = render([], [], cfg)
    assert iptables_fixed(cfg).lines == lines(empty)
    info = service_port_infos(st.services[0], 6)[0]
    assert service_rules(info, 2, local_endpoints=1, config=cfg).lines == lines(render(st.services, st.endpoint_slices, cfg)) - lines(empty)


# ---- every format of both families: never an internal error -------------------------------------------

@pytest.mark.parametrize("fmt", ["restore", "raw", "save", "nft", "nft-raw", "nft-list"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_every_format_of_both_families(capsys, family, fmt):
    """The dual-stack node rendered per family in every format: exit 0, no internal error.
    The save form of IPv6 is ip6tables-save's (kslab/xtables, helper xt6: /128 hosts, its own
    kernel round trip); here: it is written, with the family's addresses only."""
    extra = ["--nodeport-addresses", "172.18.0.0/16,fc00::/7"] if fmt != "raw" else []
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1", "--family", family, "--format", fmt,
                           "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56", *extra)
    assert code == 0, err
    assert "internal error" not in err and out
    if family == "ipv6":
        assert "fd00:10:96::20" in out and "10.96.0.20" not in out and "172.18.0.3" not in out
        if fmt == "save":
            assert "-d fd00:10:96::20/128 " in out and "-d fc00:f853:ccd:e793::3/128 " in out
        if fmt.startswith("nft"):
            assert " ip6 kube-proxy" in out or "table ip6 kube-proxy" in out
    else:
        assert "10.96.0.20" in out and "fd00:" not in out and "fc00:" not in out


# ---- nftables mode, IPv6: the real nft lists the ip6 table as kslab's nft-list prints it -------------

@pytest.mark.netns
@pytest.mark.parametrize("case", ["dual-node", "lb6-affinity"])
def test_nft_ipv6_table_lists_back_in_the_kernel(tmp_path, capsys, case):
    """``kslab render --family ipv6 --mode nftables``: its ``nft-raw`` transaction loads into a
    real kernel (scratch namespace) and ``nft list table ip6 kube-proxy`` prints exactly its
    ``nft-list`` (the ip6 table: ipv6_addr sets, ``ip6 daddr``, ``dnat to [addr]:port``)."""
    import os

    from kslab.nft import kernel as nft_kernel
    from kslab.xtables import kernel as xt_kernel

    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if (why := nft_kernel.nft_problem()) is not None:
        pytest.skip(why)
    if case == "dual-node":
        args = ["-f", DUAL, "--node", "n1", "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56",
                "--nodeport-addresses", "172.18.0.0/16,fc00::/7"]
    else:
        f = tmp_path / "lb6.yaml"
        f.write_text(LB6_YAML.replace("  ports:", "  sessionAffinity: ClientIP\n  externalTrafficPolicy: Local\n"
                                      "  healthCheckNodePort: 30000\n  ports:", 1))
        args = ["-f", str(f), "--node", "test-node", *[a for ip in NODE_IPS6 for a in ("--node-ip", ip)],
                "--cluster-cidr", "fd00:10::/64", "--service-cidrs", "fd00:172:30::/112"]
    texts = {}
    for fmt in ("nft-raw", "nft-list"):
        code, out, err = kslab(capsys, "render", *args, "--as-is", "--family", "ipv6", "--mode", "nftables", "--format", fmt)
        assert code == 0 and all(ln.startswith("kslab: note: ") for ln in err.splitlines()), err
        texts[fmt] = out
    assert texts["nft-list"].startswith("table ip6 kube-proxy {")
    with xt_kernel.scratch_namespace("kslab-test-fam") as ns:
        nft_kernel.nft_apply(ns, texts["nft-raw"])
        assert nft_kernel.nft_list_table(ns, "ip6") == texts["nft-list"]
        assert nft_kernel.nft_list_table(ns, "ip") == ""  # the IPv4 proxier's table is another one


# ---- the dual-stack study lab (data/myk8s-dualstack): the CLI renders what Lab.render does ------------

@pytest.mark.parametrize("family", [4, 6])
def test_dual_stack_lab_cli_equals_lab_render(capsys, family):
    """``kslab render -f data/myk8s-dualstack --family ipvN`` is ``Lab.render(node, family=N)``
    (one proxier per family, ProxyConfig.for_node picking the family's podSubnet CIDR, node
    IP and pod CIDR); the single-stack ``kubernetes`` Service is noted for IPv6."""
    from kslab import Lab

    lab = Lab("myk8s-dualstack")
    node = lab.cluster.node("myk8s-worker")
    cfg = ProxyConfig.for_node(lab.cluster, "myk8s-worker", family=family)
    assert cfg.family == family and cfg.node_ip == node.ip_of(family) and cfg.node_pod_cidr == node.pod_cidr_of(family)
    assert cfg.cluster_cidr == lab.cluster.config.pod_subnet_of(family)
    assert cfg.service_cidrs == (lab.cluster.config.service_subnet_of(family),)
    code, out, err = kslab(capsys, "render", "-f", str(REPO / "data" / "myk8s-dualstack"), "--node", "myk8s-worker",
                           "--family", f"ipv{family}")
    assert code == 0
    assert out == lab.render("myk8s-worker", family=family).restore_text()
    if family == 6:
        assert [ln for ln in err.splitlines()] == [
            "kslab: note: Service default/kubernetes has no IPv6 ClusterIP (10.200.1.1): not in the IPv6 proxier's rules "
            "(render it with --family ipv4)"]
        assert "! -s fd00:10:244::/56 -j KUBE-MARK-MASQ" in out
    else:
        assert err == ""


def test_single_stack_service_values_of_the_other_family_are_noted(capsys):
    """newBaseServiceInfo drops a Service's externalIPs, load balancer IPs and source ranges of
    the other family (upstream logs "... don't match IP Family"): for a single-stack Service no
    proxier uses them, so kslab notes each; with only other-family source ranges left, the
    load balancer IP has no firewall chain (every source accepted), as upstream."""
    code, out, err = kslab(capsys, "render", "-f", str(FAMILIES / "single-stack-other-family-values.yaml"), "--as-is",
                           "--node", "n", "--node-ip", "192.168.0.2")
    assert code == 0 and "fd00" not in out and "KUBE-FW-" not in out
    assert "-d 192.168.99.1 " in out and "-d 1.2.3.4 " in out
    assert err.splitlines() == [
        "kslab: note: Service ns/lb is IPv4 only: its externalIPs fd00::99 is IPv6, in no proxier's rules",
        "kslab: note: Service ns/lb is IPv4 only: its status.loadBalancer.ingress IPs fd00::77 is IPv6, in no proxier's rules",
        "kslab: note: Service ns/lb is IPv4 only: its loadBalancerSourceRanges fd00::/8 is IPv6, in no proxier's rules: "
        "none of its own family is left, so its load balancer IPs accept every source"]
    # a dual-stack Service's other-family values are the other proxier's: no note (the dual node case)
    code, out, err = kslab(capsys, "render", "-f", DUAL, "--as-is", "--node", "n1")
    assert err.splitlines() == [NOTE_ORPHAN]


# ---- kslab trace --family: the dual-stack lab's Service/node address of a family ---------------------

def test_trace_family_picks_the_address_of_the_family(capsys):
    """``kslab trace --family ipv6`` on the dual-stack lab: the Service's IPv6 ClusterIP (its
    second clusterIP) and the node's IPv6 address, reaching IPv6 pod IPs only, every candidate
    of the family; ipv4 (the primary) is what no --family traces."""
    import json

    lab = str(REPO / "data" / "myk8s-dualstack")
    code, out, err = kslab(capsys, "trace", "-f", lab, "--from", "net-pod", "--to", "svc-clusterip", "--family", "ipv6", "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    text = json.dumps(doc)
    assert "fd00:10:96:" in text and "10.200.1." not in text
    assert doc["candidates"] and all(c["endpoint"]["ip"].startswith("fd00:10:244:") for c in doc["candidates"])
    assert abs(sum(c["probability"] for c in doc["candidates"]) - 1) < 1e-9
    code, out4, _ = kslab(capsys, "trace", "-f", lab, "--from", "net-pod", "--to", "svc-clusterip", "--family", "ipv4", "--json")
    code2, out0, _ = kslab(capsys, "trace", "-f", lab, "--from", "net-pod", "--to", "svc-clusterip", "--json")
    assert code == code2 == 0 and json.loads(out4) == json.loads(out0)
    code, out, err = kslab(capsys, "trace", "-f", lab, "--from", "mypc", "--to", "myk8s-worker:svc-nodeport", "--family", "ipv6")
    assert code == 0 and "-> [fc00:f853:ccd:e793::3]:" in out.splitlines()[0]


@pytest.mark.parametrize("args, needles", [
    (["-f", str(REPO / "data" / "myk8s-dualstack"), "--to", "kubernetes", "--family", "ipv6"],
     ["--to kubernetes", "Service default/kubernetes has no IPv6 ClusterIP (clusterIPs: 10.200.1.1)", "--family ipv4"]),
    (["--to", "svc-clusterip", "--family", "ipv6"], ["has no IPv6 ClusterIP", "data/myk8s-dualstack"]),  # the IPv4 study lab
    (["-f", str(REPO / "data" / "myk8s-dualstack"), "--to", "[fd00:10:96::1]:443", "--family", "ipv4"],
     ["is IPv6, not IPv4", "drop --family"]),
    (["--iptables-save", "x.txt", "--node-ip", "fd00::1", "--to", "[fd00::2]:80", "--family", "ipv6"],
     ["--family ipv6", "does not apply to --iptables-save/--nft"]),
])
def test_trace_family_mistakes_are_one_line(capsys, args, needles):
    code, out, err = kslab(capsys, "trace", "--from", "net-pod", *args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and "Traceback" not in err
    assert all(n in lines[0] for n in needles), lines[0]


# ---- TestHealthCheckNodePort (pkg/proxy/iptables/proxier_test.go), and its IPv6 twin ---------------------

HC_YAML = """apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec:
  type: LoadBalancer
  clusterIP: CLUSTER_IP
  externalTrafficPolicy: Local
  healthCheckNodePort: 30000
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]
"""


def _filter_output(nf, *, node_ip: str, src: str, dst: str, dport: int, local: set[str]) -> str:
    """runPacketFlowTests' output for a packet to the node itself: "ACCEPT" when one of
    kube-proxy's rules accepts it (a ``-j ACCEPT`` rule in a KUBE- chain of the filter table),
    "" when none of them touches it (the chain policy decides)."""
    from kslab.sim.single import trace_netfilter

    conn = trace_netfilter(nf, node_ip=node_ip, src=src, dst=dst, dport=dport, proto="tcp", local_addresses=local)
    assert conn.outcome == "local"
    hits = [s for s in conn.steps if s.event == "rule" and s.table == "filter" and s.chain.startswith("KUBE-")]
    return "ACCEPT" if hits and hits[-1].rule.endswith("-j ACCEPT") else ""


@pytest.mark.parametrize("family", [4, 6])
def test_upstream_health_check_node_port(tmp_path, family):
    """TestHealthCheckNodePort (nodePortAddresses 127.0.0.0/8): "firewall accepts
    HealthCheckNodePort" from 1.2.3.4 to the node's IP port 30000 -> ACCEPT; once the Service
    is deleted, "HealthCheckNodePort no longer has any rule" -> "". The IPv6 twin (kslab's):
    the same filter rule in the IPv6 proxier's table."""
    from kslab.controlplane import load_cluster
    from kslab.proxy.iptables import render
    from kslab.sim.netfilter import Netfilter

    f = tmp_path / "hc.yaml"
    f.write_text(HC_YAML.replace("CLUSTER_IP", "172.30.0.42" if family == 4 else "fd00:172:30::42"))
    st = load_cluster([f], as_is=True)
    node_ips, src = (NODE_IPS4, "1.2.3.4") if family == 4 else (NODE_IPS6, "2600:5200::1")
    cfg = ProxyConfig(node_name="test-node", node_ips=node_ips, family=family,
                      cluster_cidr="10.0.0.0/8" if family == 4 else "fd00:10::/64",
                      nodeport_addresses=("127.0.0.0/8",) if family == 4 else ("::1/128",))
    for services, want in ((st.services, "ACCEPT"), ([], "")):
        nf = Netfilter.from_text(render(services, st.endpoint_slices, cfg).save_text(), family=family)
        assert _filter_output(nf, node_ip=node_ips[0], src=src, dst=node_ips[0], dport=30000, local=set(node_ips)) == want


def test_render_takes_the_dual_stack_lab_by_name(capsys, tmp_path, monkeypatch):
    """``-f myk8s-dualstack`` (no such folder where kslab runs) is the lab of that name."""
    from kslab.resources import dualstack_lab

    monkeypatch.chdir(tmp_path)
    by_name = kslab(capsys, "render", "-f", "myk8s-dualstack", "--node", "myk8s-worker", "--family", "ipv6")
    by_path = kslab(capsys, "render", "-f", str(dualstack_lab()), "--node", "myk8s-worker", "--family", "ipv6")
    assert by_name[0] == 0 and by_name == by_path
    assert "fd00:10:96::" in by_name[1]
