"""A node with several addresses (issue 16, deliverable 2): ``--nodeport-addresses`` and
``--iptables-localhost-nodeports`` over every node IP, as kube-proxy's iptables proxier writes
and the kernel (here: kslab's netfilter simulator) handles them.

Ported from kubernetes/kubernetes ``pkg/proxy/iptables/proxier_test.go``; the upstream test
name is beside each case. Upstream's fake proxier (``NewFakeProxier``) gives the node the
interface addresses lo 127.0.0.1/8, eth0 192.168.0.2/24 (testNodeIP), 192.168.1.2/24
(testNodeIPAlt), 192.168.99.11/24 (testExternalIP) and two IPv6 ones, which ``GetNodeIPs``
filters by ``nodePortAddresses``: kslab's ``ProxyConfig.node_ips`` are those IPv4 addresses,
primary first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kslab.controlplane import load_cluster
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render
from kslab.proxy.util import nodeport_addresses_match_all, nodeport_ips
from kslab.sim.netfilter import Netfilter
from kslab.sim.single import trace_netfilter

REPO = Path(__file__).resolve().parents[1]
NODE_IP, NODE_IP_ALT, EXTERNAL_IP = "192.168.0.2", "192.168.1.2", "192.168.99.11"  # testNodeIP, testNodeIPAlt, testExternalIP
NODE_IPS = (NODE_IP, NODE_IP_ALT, EXTERNAL_IP)  # testNodeIPs (IPv4)
EXT = "203.0.113.2"  # testExternalClient
BOTH = "10.180.0.1:80, 10.180.2.1:80"
TAIL = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


def node_port_yaml(tmp_path: Path, *, node: str, etp: str = "Cluster") -> Path:
    """The Service and EndpointSlice of upstream's TestNodePorts / onlyLocalNodePorts: NodePort
    3001 on 172.30.0.41:80, endpoints 10.180.0.1 (no node) and 10.180.2.1 (on ``node``)."""
    p = tmp_path / "svc.yaml"
    p.write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: svc1, namespace: ns1}}
spec:
  type: NodePort
  clusterIP: 172.30.0.41
  externalTrafficPolicy: {etp}
  ports: [{{name: p80, port: 80, protocol: TCP, nodePort: 3001}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc1-1, namespace: ns1, labels: {{kubernetes.io/service-name: svc1}}}}
addressType: IPv4
endpoints:
- {{addresses: [10.180.0.1]}}
- {{addresses: [10.180.2.1], nodeName: {node}}}
ports: [{{name: p80, port: 80, protocol: TCP}}]
""")
    return p


def rendered(tmp_path: Path, cfg: ProxyConfig, etp: str = "Cluster"):
    st = load_cluster([node_port_yaml(tmp_path, node=cfg.node_name, etp=etp)], as_is=True)
    return render(st.services, st.endpoint_slices, cfg)


def flow(nf: Netfilter, src: str, dst: str, dport: int, seeds: int = 16) -> tuple[str, bool]:
    """upstream's ``runPacketFlowTests`` output: every endpoint reached (sorted, ", "-joined),
    DROP/REJECT, or "" (not touched by kube-proxy); and whether it is masqueraded."""
    outputs, masq = set(), set()
    for seed in range(seeds):
        conn = trace_netfilter(nf, node_ip=NODE_IP, src=src, dst=dst, dport=dport, proto="tcp", seed=seed,
                               local_addresses=set(NODE_IPS))
        if conn.outcome in ("dropped", "rejected"):
            outputs.add("DROP" if conn.outcome == "dropped" else "REJECT")
        else:
            outputs.add(conn.dnat_to or "")
        masq.add(bool(conn.masquerade and conn.dnat_to))
    assert len(masq) == 1
    return ", ".join(sorted(outputs)), masq.pop()


# ---- TestNodePorts (pkg/proxy/iptables/proxier_test.go, the v1.29+ table with localhostNodePorts) ----------

# (case name, localhostNodePorts, nodePortAddresses, allowAltNodeIP, expectFirewall, KUBE-SERVICES tail rules)
NODE_PORTS_IPV4 = [
    ("ipv4, localhost-nodeports enabled", True, (), True, True,
     [f"{TAIL} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"]),
    ("ipv4, localhost-nodeports disabled", False, (), True, False,
     [f"{TAIL} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]),
    ("ipv4, localhost-nodeports disabled, localhost in nodeport-addresses", False, ("192.168.0.0/24", "127.0.0.1/32"), False, False,
     [f"{TAIL} -d 192.168.0.2 -j KUBE-NODEPORTS"]),
    ("ipv4, localhost-nodeports enabled, multiple nodeport-addresses", False, ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"),
     True, False, [f"{TAIL} -d 192.168.0.2 -j KUBE-NODEPORTS", f"{TAIL} -d 192.168.1.2 -j KUBE-NODEPORTS"]),
]
FIREWALL = ('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
            '-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')


@pytest.mark.parametrize("name, localhost, addresses, alt, firewall, tails", NODE_PORTS_IPV4, ids=[c[0] for c in NODE_PORTS_IPV4])
def test_upstream_node_ports_ipv4(tmp_path, name, localhost, addresses, alt, firewall, tails):
    """TestNodePorts (iptables), its IPv4 cases: the node's several addresses under
    --nodeport-addresses and --iptables-localhost-nodeports, traced through the netfilter
    simulator (upstream's runPacketFlowTests cases), plus the KUBE-FIREWALL check."""
    cfg = ProxyConfig(node_name="test-node", node_ips=NODE_IPS, cluster_cidr="10.0.0.0/8", localhost_nodeports=localhost,
                      nodeport_addresses=addresses)
    rs = rendered(tmp_path, cfg)
    nat = [r for r in rs.restore_text().splitlines() if r.startswith(TAIL)]
    assert nat == tails  # how the node's addresses are written (upstream's GetNodeIPs, lo first then eth0)
    nf = Netfilter.from_text(rs.save_text())
    assert flow(nf, "10.0.0.2", "172.30.0.41", 80) == (BOTH, False), "pod to cluster IP"
    assert flow(nf, EXT, NODE_IP, 3001) == (BOTH, True), "external to nodePort"
    assert flow(nf, NODE_IP, NODE_IP, 3001) == (BOTH, True), "node to nodePort"
    if localhost:
        assert flow(nf, "127.0.0.1", "127.0.0.1", 3001) == (BOTH, True), "localhost to nodePort gets masqueraded"
    else:
        assert flow(nf, "127.0.0.1", "127.0.0.1", 3001) == ("", False), "localhost to nodePort is ignored"
    if alt:
        assert flow(nf, EXT, NODE_IP_ALT, 3001) == (BOTH, True), "external to nodePort on secondary IP"
    else:
        assert flow(nf, EXT, NODE_IP_ALT, 3001) == ("", False), "secondary nodeIP ignores NodePorts"
    fw = [r for r in rs.restore_text().splitlines() if r.startswith("-A KUBE-FIREWALL ")]
    assert fw == ([FIREWALL] if firewall else [])


# ---- TestOnlyLocalNodePorts / TestOnlyLocalNodePortsNoClusterCIDR (byte for byte) -----------------------
# pkg/proxy/iptables/proxier_test.go of the v1.28 era (before the nfacct counters: nfacct=False), fake
# iptables without --random-fully; nodePortAddresses 192.168.0.0/24,2001:db8::/64, localhostNodePorts false.

_ONLY_LOCAL_HEAD = """*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-ZX7GRIZKSNUQ3LAJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS
"""
_ONLY_LOCAL_EXT = """-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.2.1:80
"""
_ONLY_LOCAL_SVC = """-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
COMMIT
"""
ONLY_LOCAL = {
    "TestOnlyLocalNodePorts": ("10.0.0.0/8", _ONLY_LOCAL_HEAD
                               + '-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O\n'
                               + _ONLY_LOCAL_EXT
                               + '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n'
                               + _ONLY_LOCAL_SVC),
    "TestOnlyLocalNodePortsNoClusterCIDR": (None, _ONLY_LOCAL_HEAD + _ONLY_LOCAL_EXT + _ONLY_LOCAL_SVC),
}


@pytest.mark.parametrize("test", list(ONLY_LOCAL))
def test_upstream_only_local_node_ports(tmp_path, test):
    """TestOnlyLocalNodePorts / TestOnlyLocalNodePortsNoClusterCIDR: of the node's three IPv4
    addresses only 192.168.0.2 is inside nodePortAddresses (the IPv6 CIDR is the other
    proxier's): one ``-d 192.168.0.2`` rule; the dump byte for byte, then onlyLocalNodePorts'
    packet flows."""
    cluster_cidr, expected = ONLY_LOCAL[test]
    cfg = ProxyConfig(node_name="test-hostname", node_ips=NODE_IPS, cluster_cidr=cluster_cidr,
                      detect_local_mode="ClusterCIDR" if cluster_cidr else "None", localhost_nodeports=False,
                      nodeport_addresses=("192.168.0.0/24", "2001:db8::/64"), random_fully=False, nfacct=False)
    rs = rendered(tmp_path, cfg, etp="Local")
    assert rs.restore_text().replace("0x00004000", "0x4000") == expected
    nf = Netfilter.from_text(rs.save_text())
    assert flow(nf, "10.0.0.2", "172.30.0.41", 80) == (BOTH, False), "pod to cluster IP hit both endpoints"
    assert flow(nf, EXT, NODE_IP, 3001) == ("10.180.2.1:80", False), "external to NodePort hits only local endpoint"
    assert flow(nf, "10.0.0.2", "127.0.0.1", 3001) == ("", False), \
        "pod to localhost doesn't work because localhost is not in nodePortAddresses"
    if cluster_cidr:
        assert flow(nf, "10.0.0.2", NODE_IP, 3001) == (BOTH, False), "pod to NodePort hits both endpoints"
    else:
        assert flow(nf, "10.0.0.2", NODE_IP, 3001) == ("10.180.2.1:80", False), "pod to NodePort hits only local endpoint"
    # the node's other addresses are outside nodePortAddresses: untouched
    assert flow(nf, EXT, NODE_IP_ALT, 3001) == ("", False)


# ---- NewNodePortAddresses / GetNodeIPs per family (pkg/proxy/util/nodeport_addresses.go) ---------------


@pytest.mark.parametrize("addresses, family, match_all, ips", [
    ((), 4, True, None),
    (("2001:db8::/64",), 4, True, None),  # no IPv4 CIDR left: 0.0.0.0/0
    (("192.168.0.0/24", "2001:db8::/64"), 4, False, ["192.168.0.2"]),
    (("192.168.0.0/24", "2001:db8::/64"), 6, False, ["2001:db8::2"]),
    (("192.168.0.0/16",), 6, True, None),  # no IPv6 CIDR left: ::/0
    (("0.0.0.0/0", "2001:db8::/64"), 4, True, None),
    (("0.0.0.0/0", "2001:db8::/64"), 6, False, ["2001:db8::2"]),
    (("primary",), 4, False, ["192.168.0.2"]),
    (("primary",), 6, False, ["2001:db8::2"]),
])
def test_nodeport_addresses_per_family(addresses, family, match_all, ips):
    """NewNodePortAddresses keeps the proxier family's CIDRs (none left: the zero CIDR, MatchAll);
    GetNodeIPs only ever returns that family's node addresses."""
    node_ips = ("192.168.0.2", "2001:db8::2", "192.168.1.2")
    assert nodeport_addresses_match_all(addresses, family) is match_all
    if ips is not None:
        assert nodeport_ips(addresses, node_ips, family) == ips


# ---- kslab render: --node-ip repeatable, a Node's every InternalIP -----------------------------------------


def run_render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", "render", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_cli_node_ip_repeatable_writes_one_rule_per_address_in_nodeport_addresses():
    r = run_render("--node", "myk8s-worker", "--node-ip", "192.168.0.2", "--node-ip", "192.168.1.2,192.168.99.11",
                   "--nodeport-addresses", "192.168.0.0/24,192.168.1.0/24")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith(TAIL)] == [
        f"{TAIL} -d 192.168.0.2 -j KUBE-NODEPORTS", f"{TAIL} -d 192.168.1.2 -j KUBE-NODEPORTS"]


def test_cli_dual_stack_node_ips_each_proxier_takes_its_family():
    """A dual-stack node lists both families (cmd/kube-proxy's nodeIPs); the rendered family's
    proxier takes its own: --family (default: the first --node-ip's) picks which."""
    both = ("--node-ip", "192.168.0.2", "--node-ip", "2001:db8::2", "--nodeport-addresses", "192.168.0.0/24,2001:db8::/64")
    v4 = run_render("--node", "myk8s-worker", *both)
    assert v4.returncode == 0, v4.stderr
    assert [ln for ln in v4.stdout.splitlines() if ln.startswith(TAIL)] == [f"{TAIL} -d 192.168.0.2 -j KUBE-NODEPORTS"]
    v6 = run_render("--node", "myk8s-worker", *both, "--family", "ipv6", "--cluster-cidr", "fd00:10:244::/56")
    assert v6.returncode == 0, v6.stderr
    assert [ln for ln in v6.stdout.splitlines() if ln.startswith(TAIL)] == [f"{TAIL} -d 2001:db8::2 -j KUBE-NODEPORTS"]


@pytest.mark.parametrize("args, where", [
    (["--node-ip", "192.168.0.2", "--node-ip", "node-b"], "--node-ip node-b: is not an IP address"),
    (["--node-ip", ""], "--node-ip : is not an IP address"),
])
def test_cli_node_ip_bad_input_is_one_line_exit_2(args, where):
    r = run_render("--node", "myk8s-worker", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"kslab: error: {where}"), r.stderr


NODES_YAML = """apiVersion: v1
kind: Node
metadata: {name: n1}
spec: {podCIDR: 10.244.1.0/24}
status:
  addresses:
  - {type: InternalIP, address: 172.18.0.3}
  - {type: InternalIP, address: fc00:f853:ccd:e793::3}
  - {type: InternalIP, address: 172.19.0.3}
  - {type: Hostname, address: n1}
"""


def test_cli_uses_every_internal_ip_of_the_node_object(tmp_path):
    """Without --node-ip, the Node's InternalIP addresses of the primary's family are the node
    IPs (the IPv6 one belongs to the IPv6 proxier): both IPv4 addresses inside nodePortAddresses
    get their rule."""
    f = tmp_path / "nodes.yaml"
    f.write_text(NODES_YAML)
    r = run_render("-f", str(f), "--as-is", "--node", "n1", "--nodeport-addresses", "172.16.0.0/12,fc00::/7")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith(TAIL)] == [
        f"{TAIL} -d 172.18.0.3 -j KUBE-NODEPORTS", f"{TAIL} -d 172.19.0.3 -j KUBE-NODEPORTS"]


def test_node_object_keeps_every_internal_ip_and_rejects_a_bad_one(tmp_path):
    from kslab.errors import InputError

    f = tmp_path / "nodes.yaml"
    f.write_text(NODES_YAML)
    node = load_cluster([f], as_is=True).node("n1")
    assert node.internal_ip == "172.18.0.3" and node.ips == ("172.18.0.3", "fc00:f853:ccd:e793::3", "172.19.0.3")
    assert node.ips_of(4) == ("172.18.0.3", "172.19.0.3") and node.ips_of(6) == ("fc00:f853:ccd:e793::3",)
    f.write_text(NODES_YAML.replace("172.19.0.3", "172.19.0.300"))
    with pytest.raises(InputError, match="InternalIP 3.*'172.19.0.300' is not an IP address"):
        load_cluster([f], as_is=True)


# ---- the simulator: every address of a node is the node's ------------------------------------------------


def _network(extra: tuple[str, ...], **proxy):
    from kslab.resources import study_lab
    from kslab.sim.network import Network

    state = load_cluster([study_lab()], seed=1)
    state.node("myk8s-worker").extra_ips = extra
    rulesets = {n.name: render(state.services, state.endpoint_slices, ProxyConfig.for_node(state, n.name, **proxy)).save_text()
                for n in state.nodes}
    return state, Network(state, rulesets, seed=1)


@pytest.mark.parametrize("nodeport_addresses, alt_outcome", [(None, "ok"), ("primary", "refused")])
def test_sim_node_port_on_a_secondary_address(nodeport_addresses, alt_outcome):
    """A node with a secondary InternalIP (172.19.0.10): with the default nodePortAddresses
    (every local address, ``--dst-type LOCAL``) a NodePort answers on both addresses, from
    outside and from the node itself; with ``primary`` only on the primary one (the packet to
    the secondary is the node's own, nothing listens on the port: refused)."""
    npa = ["primary"] if nodeport_addresses else None
    state, net = _network(("172.19.0.10",), nodeport_addresses=npa)
    svc = next(s for s in state.services if s.type == "NodePort")
    port = svc.ports[0].node_port
    primary = state.node("myk8s-worker").internal_ip
    assert net.connect("mypc", primary, port).outcome == "ok"
    alt = net.connect("mypc", "172.19.0.10", port)
    assert alt.outcome == alt_outcome, alt.outcome
    if alt_outcome == "ok":
        assert alt.ingress_node == "myk8s-worker" and alt.dnat_to
        own = net.connect("myk8s-worker", "172.19.0.10", port)  # from the node to its own secondary address
        assert own.outcome == "ok" and own.masquerade
    # a client at the secondary address is the node itself
    assert net.client("172.19.0.10").kind == "node" and net.client("172.19.0.10").node == "myk8s-worker"


def test_every_nodeports_tail_rule_comes_after_the_deleted_chains():
    """syncProxyRules writes the ``-X`` lines of stale chains, then the nodeports tail rule of
    every node address in nodePortAddresses: in a sync that deletes a chain, all of them follow
    the ``-X`` lines (raw restore text, the order kube-proxy writes)."""
    import dataclasses

    from sync_repeated import CONFIG, Node, endpoint_slice, service

    cfg = dataclasses.replace(CONFIG, node_ips=NODE_IPS, nodeport_addresses=("192.168.0.0/16",))
    node = Node(cfg)
    node.services = {"a": service("ns", "a", "172.30.0.1", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.99.0.1")}
    node.sync()
    node.slices["a"] = endpoint_slice("ns", "a", 80, "10.99.0.2")
    r = node.sync()
    assert r.deleted_chains
    nat = r.ruleset.raw_text().split("*nat\n", 1)[1].splitlines()
    assert nat[-5:] == ["-X " + r.deleted_chains[0], *(f"{TAIL} -d {ip} -j KUBE-NODEPORTS" for ip in NODE_IPS), "COMMIT"]


def test_cli_trace_offline_takes_every_node_address(tmp_path):
    """``kslab trace --iptables-save`` with the node's every address (``--node-ip`` repeated):
    the secondary address is local (``--dst-type LOCAL``), so its NodePort is DNATed; named
    only once, the node is taken to have the primary alone and the packet is not kube-proxy's."""
    r = run_render("--node", "myk8s-worker", "--node-ip", "172.18.0.3", "--format", "save")
    assert r.returncode == 0, r.stderr
    dump = tmp_path / "worker.iptables-save"
    dump.write_text(r.stdout)
    port = next(ln.split("--dport ")[1].split()[0] for ln in r.stdout.splitlines() if ln.startswith("-A KUBE-NODEPORTS") and "KUBE-EXT" in ln)

    def trace(*ips: str) -> dict:
        import json

        args = [a for ip in ips for a in ("--node-ip", ip)]
        t = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--iptables-save", str(dump), *args, "--from", EXT,
                            "--to", f"172.19.0.3:{port}", "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert t.returncode == 0, t.stderr
        return json.loads(t.stdout)

    assert trace("172.18.0.3", "172.19.0.3")["dnat_to"]
    assert not trace("172.18.0.3")["dnat_to"]
    bad = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--iptables-save", str(dump), "--node-ip", "172.18.0.3",
                          "--node-ip", "fc00::3", "--from", EXT, "--to", f"172.19.0.3:{port}"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--node-ip fc00::3: is IPv6" in bad.stderr


def test_verify_node_ips_are_one_family_and_all_used():
    """``kslab verify --node-ip`` takes the same check (one place: proxy.util.node_ips_of_one_family)
    and hands every address to the expected rules."""
    from kslab.errors import InputError
    from kslab.resources import study_lab
    from kslab.verify import proxy_config_for

    state = load_cluster([study_lab()], seed=1)
    cfg = proxy_config_for(state, "myk8s-worker", {"nodeport_addresses": ["172.16.0.0/12"]}, ["172.18.0.3", "172.19.0.3"])
    assert cfg.node_ips == ("172.18.0.3", "172.19.0.3")
    with pytest.raises(InputError, match=r"^--node-ip fc00::3: is IPv6 but the primary node IP 172\.18\.0\.3 is IPv4; "):
        proxy_config_for(state, "myk8s-worker", None, ["172.18.0.3", "fc00::3"])


def test_cli_nftables_mode_lists_every_address_in_the_nodeport_ips_set():
    """nftables mode: the addresses of nodePortAddresses go into the ``nodeport-ips`` set, one
    element each (upstream TestNodePorts "multiple nodeport-addresses", pkg/proxy/nftables)."""
    r = run_render("--node", "myk8s-worker", "--mode", "nftables", "--format", "nft-raw", "--node-ip", "192.168.0.2",
                   "--node-ip", "192.168.1.2", "--node-ip", "192.168.99.11", "--nodeport-addresses", "192.168.0.0/24,192.168.1.0/24,2001:db8::/64")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("add element ip kube-proxy nodeport-ips")] == [
        "add element ip kube-proxy nodeport-ips { 192.168.0.2 }", "add element ip kube-proxy nodeport-ips { 192.168.1.2 }"]


@pytest.mark.parametrize("addresses, localhost", [
    ((), True), ((), False), (("192.168.0.0/24",), False), (("192.168.0.0/23",), False),
    (("192.168.0.0/16", "127.0.0.0/8"), True), (("192.168.99.0/24", "127.0.0.1/32"), False),
    (("2001:db8::/64",), True), (("primary",), False), (("0.0.0.0/0", "10.0.0.0/8"), False),
])
def test_every_node_address_is_answered_as_its_rules_say(tmp_path, addresses, localhost):
    """For each address of the node (lo and the three node IPs), an external client's (or, for
    127.0.0.1, the node's own) NodePort packet is DNATed exactly when upstream's
    nodePortAddresses semantics select that address: MatchAll (any local address; 127.0.0.1
    only with localhostNodePorts) or GetNodeIPs' list; every other address is left alone."""
    from kslab.proxy.config import ProxyConfig as PC
    from kslab.proxy.util import nodeport_addresses_contain_ipv4_loopback

    localhost = localhost and nodeport_addresses_contain_ipv4_loopback(addresses)  # NewProxier's rule
    cfg = PC(node_name="test-node", node_ips=NODE_IPS, cluster_cidr="10.0.0.0/8", nodeport_addresses=addresses,
             localhost_nodeports=localhost)
    nf = Netfilter.from_text(rendered(tmp_path, cfg).save_text())
    if nodeport_addresses_match_all(addresses, 4):
        selected = set(NODE_IPS) | ({"127.0.0.1"} if localhost else set())
    else:
        selected = {ip for ip in nodeport_ips(addresses, NODE_IPS, 4) if ip != "127.0.0.1" or localhost}
    for ip in ("127.0.0.1", *NODE_IPS):
        src = "127.0.0.1" if ip == "127.0.0.1" else EXT
        got, _ = flow(nf, src, ip, 3001, seeds=4)
        assert (got == BOTH) is (ip in selected) and got in (BOTH, ""), (ip, got, selected)
