"""The netns backend on a dual-stack cluster: IPv6 on the real kernel (kslab.netns, issue 16).

A dual-stack cluster (kind ``ipFamily: dual``) gives every node, pod and mypc a second, IPv6
address; the lab routes both families (no DAD: ``nodad``/``accept_dad=0``, IPv6 forwarding on
the nodes) and its pods' servers answer on both. These tests check the plan (pure), then bring a
dual lab up on the kernel: IPv6 pod to pod across nodes without SNAT, the IPv4 family unchanged
beside it, the IPv6 proxier's rules through ip6tables (ClusterIP, NodePort with SNAT, the kernel's
trace with ``xtables-monitor`` reading ``-6`` rules, conntrack per family), and that down leaves no
namespace. The cluster is the study's (data/myk8s/clusterip) with its kind config switched to
``ipFamily: dual`` and kind's IPv6 defaults; the IPv6 Service and its slice are written here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kslab.controlplane import load_cluster
from kslab.errors import EnvironmentProblem, InputError
from kslab.lab import Lab
from kslab.model import ClusterState, Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from kslab.netns import layout
from kslab.netns.client import join_host_port, parse_answer, split_host_port
from kslab.netns.ktrace import MONITOR_FAILED, parse_monitor
from kslab.netns.lab import NetnsLab, parse_conntrack
from kslab.netns.servers import response_body
from kslab.proxy.iptables import render_node
from kslab.xtables import kernel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "myk8s"
OK = 2.0  # per-connection timeout where success is expected (the machine may be busy)
SVC6_IP = "fd00:10:96::51"
NODE_PORT6 = 30006
WEBPODS6 = {"webpod1": "fd00:10:244:1::2", "webpod2": "fd00:10:244:2::2", "webpod3": "fd00:10:244:3::2"}


def dual_kind_config(directory: Path) -> Path:
    """The study's kind config with ``ipFamily: dual``: kind's IPv6 pod and service subnets after the study's IPv4 ones."""
    text = (DATA / "kind-cluster.yaml").read_text()
    text = text.replace("  podSubnet: 10.10.0.0/16", "  ipFamily: dual\n  podSubnet: 10.10.0.0/16,fd00:10:244::/56")
    text = text.replace("  serviceSubnet: 10.200.1.0/24", "  serviceSubnet: 10.200.1.0/24,fd00:10:96::/112")
    assert "ipFamily: dual" in text and "fd00:10:96::/112" in text
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kind-cluster.yaml"
    path.write_text(text)
    return path


def with_ipv6_service(state: ClusterState) -> ClusterState:
    """svc6: a NodePort Service on the IPv6 ClusterIP fd00:10:96::51, its slice holding the
    webpods' IPv6 addresses (what the API server and the EndpointSlice controller give an IPv6
    Service in a dual-stack cluster)."""
    state.services.append(Service(
        name="svc6", type="NodePort", cluster_ip=SVC6_IP, cluster_ips=[SVC6_IP], ip_families=["IPv6"],
        ip_family_policy="SingleStack", selector={"app": "webpod"},
        ports=[ServicePort(port=9000, target_port=80, node_port=NODE_PORT6, name="svc-webport")]))
    webpods = [p for p in state.pods if p.name in WEBPODS6]
    state.endpoint_slices.append(EndpointSlice(
        name="svc6-v6", service_name="svc6", address_type="IPv6", labels={"kubernetes.io/service-name": "svc6"},
        ports=[EndpointPort(port=80, name="svc-webport", protocol="TCP")],
        endpoints=[Endpoint(addresses=[p.pod_ip_of(6)], ready=True, serving=True, terminating=False, node_name=p.node_name,
                            target_pod=p.name) for p in webpods]))
    return state


def dual_state(tmp: Path) -> ClusterState:
    return with_ipv6_service(load_cluster([str(dual_kind_config(tmp)), str(DATA / "clusterip")], seed=1))


def v6_rules(state: ClusterState, node: str) -> str:
    """The IPv6 proxier's restore text for ``node`` (kind's kube-proxy: cluster CIDR the IPv6 pod subnet)."""
    n = state.node(node)
    return render_node(state, node, family=6, cluster_cidr="fd00:10:244::/56", node_pod_cidr=n.pod_cidr_of(6),
                       service_cidrs=("fd00:10:96::/112",)).raw_text()


# --------------------------------------------------------------------------------------------
# The plan (pure)


def test_plan_gives_a_dual_stack_cluster_ipv6_addresses(tmp_path: Path) -> None:
    lay = layout.plan(dual_state(tmp_path), "kslab-x-")
    assert lay.dual_stack and lay.fabric_cidr6 == "fc00:f853:ccd:e793::/64"
    assert (lay.gateway6, lay.mypc_ip6) == ("fc00:f853:ccd:e793::1", "fc00:f853:ccd:e793::100")
    nodes = {n.name: (n.ip, n.ip6, n.prefix_len6, n.pod_cidr6, n.gateway6) for n in lay.nodes}
    assert nodes["myk8s-control-plane"] == ("172.18.0.2", "fc00:f853:ccd:e793::2", 64, "fd00:10:244::/64", "fd00:10:244::1")
    assert nodes["myk8s-worker3"] == ("172.18.0.5", "fc00:f853:ccd:e793::5", 64, "fd00:10:244:3::/64", "fd00:10:244:3::1")
    pods = {p.name: (p.ip, p.ip6, p.prefix_len6, p.gateway6) for p in lay.pods}
    assert pods["webpod1"] == ("10.10.1.2", "fd00:10:244:1::2", 64, "fd00:10:244:1::1")
    assert pods["net-pod"] == ("10.10.0.2", "fd00:10:244::2", 64, "fd00:10:244::1")
    assert lay.node("myk8s-worker").ip_of(6) == "fc00:f853:ccd:e793::3" and lay.pods[0].ip_of(4) == lay.pods[0].ip


def test_plan_of_an_ipv4_cluster_is_unchanged() -> None:
    state = load_cluster([str(DATA / "kind-cluster.yaml"), str(DATA / "clusterip")], seed=1)
    lay = layout.plan(state, "kslab-x-")
    assert not lay.dual_stack and (lay.fabric_cidr6, lay.gateway6, lay.mypc_ip6) == ("", "", "")
    assert all((n.ip6, n.pod_cidr6, n.gateway6, n.prefix_len6) == ("", "", "", 0) for n in lay.nodes)
    assert all((p.ip6, p.gateway6, p.prefix_len6) == ("", "", 0) for p in lay.pods)


def test_old_records_load_with_the_ipv6_fields_empty(tmp_path: Path) -> None:
    """A lab recorded before the IPv6 fields existed (R6): its layout still loads."""
    doc = layout.plan(load_cluster([str(DATA / "kind-cluster.yaml"), str(DATA / "clusterip")], seed=1), "kslab-x-").to_json()
    for key in ("fabric_cidr6", "gateway6", "mypc_ip6"):
        doc.pop(key)
    for n in doc["nodes"]:
        for key in ("ip6", "prefix_len6", "pod_cidr6", "gateway6"):
            n.pop(key)
    for p in doc["pods"]:
        for key in ("ip6", "prefix_len6", "gateway6"):
            p.pop(key)
    old = layout.Layout.from_json(json.loads(json.dumps(doc)))
    assert not old.dual_stack and old.nodes[1].ip6 == "" and old.pods[0].ip6 == ""
    assert old == layout.plan(load_cluster([str(DATA / "kind-cluster.yaml"), str(DATA / "clusterip")], seed=1), "kslab-x-")
    dual = layout.plan(dual_state(tmp_path), "kslab-x-")
    assert layout.Layout.from_json(json.loads(json.dumps(dual.to_json()))) == dual


def test_plan_refuses_ipv6_only_and_half_dual_nodes(tmp_path: Path) -> None:
    state = dual_state(tmp_path)
    state.nodes[1].pod_cidrs = [state.nodes[1].pod_cidr]  # an IPv6 address but no IPv6 pod CIDR
    with pytest.raises(InputError, match="myk8s-worker.*no IPv6 podCIDR"):
        layout.plan(state, "kslab-x-")
    state = dual_state(tmp_path)
    state.nodes[2].addresses, state.nodes[2].pod_cidrs = [state.nodes[2].ip_of(4)], [state.nodes[2].pod_cidr_of(4)]
    with pytest.raises(InputError, match="myk8s-worker2.*no IPv6 InternalIP and podCIDR while other nodes have"):
        layout.plan(state, "kslab-x-")
    state = dual_state(tmp_path)
    state.nodes[0].addresses = list(reversed(state.nodes[0].addresses))
    state.nodes[0].pod_cidrs = list(reversed(state.nodes[0].pod_cidrs))
    with pytest.raises(InputError, match="not IPv6-only ones"):
        layout.plan(state, "kslab-x-")
    state = dual_state(tmp_path)
    state.nodes[3].addresses = [state.nodes[3].ip_of(4), "fd99::5"]
    with pytest.raises(InputError, match="fd99::5 is not a free address of the IPv6 node network"):
        layout.plan(state, "kslab-x-")


def test_a_pod_ipv6_outside_its_node_cidr_is_skipped(tmp_path: Path) -> None:
    state = dual_state(tmp_path)
    pod = next(p for p in state.pods if p.name == "webpod2")
    pod.pod_ips = [pod.pod_ip, "fd00:10:244:7::2"]
    lay = layout.plan(state, "kslab-x-")
    assert "webpod2" not in {p.name for p in lay.pods}
    assert any("fd00:10:244:7::2 is not a pod address" in s for s in lay.skipped)


def test_host_port_helpers_write_ipv6_in_brackets() -> None:
    """Go's net.JoinHostPort / SplitHostPort, as whoami's RemoteAddr and kube-proxy's DNAT write them."""
    assert join_host_port("10.10.0.2", 80) == "10.10.0.2:80"
    assert join_host_port("fd00:10:244::2", 80) == "[fd00:10:244::2]:80"
    assert split_host_port("[fd00:10:244::2]:41234") == ("fd00:10:244::2", "41234")
    assert split_host_port("10.10.0.2:41234") == ("10.10.0.2", "41234")
    assert split_host_port("fd00::2") == ("fd00::2", "") and split_host_port("10.0.0.1") == ("10.0.0.1", "")


def test_servers_answer_an_ipv6_client_as_the_images_do() -> None:
    body, _ = response_body("whoami", "webpod1", ["10.10.1.2", "fd00:10:244:1::2"], "GET", "/", "HTTP/1.1", [],
                            "fd00:10:244::2", 41234)
    text = body.decode()
    assert "RemoteAddr: [fd00:10:244::2]:41234" in text and "IP: fd00:10:244:1::2" in text
    assert parse_answer(text) == ("webpod1", "[fd00:10:244::2]:41234")
    body, _ = response_body("echo", "e", ["fd00::5"], "GET", "/", "HTTP/1.1", [("Host", "x")], "fd00:10:244::2", 5)
    doc = json.loads(body)
    assert doc["ip"] == "fd00:10:244::2"  # Express prints an IPv6 client as it is (an IPv4 one as ::ffff:a.b.c.d)
    assert parse_answer(body.decode()) == ("e", "[fd00:10:244::2]:5")
    body, _ = response_body("whoami", "w", ["10.10.1.2"], "GET", "/", "HTTP/1.1", [], "10.10.0.2", 7)
    assert "RemoteAddr: 10.10.0.2:7" in body.decode()  # IPv4 as before


def test_parse_conntrack_and_monitor_read_ipv6() -> None:
    text = ("tcp      6 117 SYN_SENT src=fd00:10:244::2 dst=fd00:10:96::51 sport=45678 dport=9000 [UNREPLIED] "
            "src=fd00:10:244:1::2 dst=fd00:10:244::2 sport=80 dport=45678 mark=0 use=1\n")
    [entry] = parse_conntrack(text)
    assert entry.orig == ("fd00:10:244::2", "fd00:10:96::51", 45678, 9000)
    assert entry.reply == ("fd00:10:244:1::2", "fd00:10:244::2", 80, 45678)
    monitor = (" PACKET: 10 1234abcd OUT=eth0 SRC=fd00:10:244::2 DST=fd00:10:96::51 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=1 "
               "PROTO=TCP SPORT=45678 DPORT=9000 SYN\n"
               " TRACE: 10 1234abcd nat:KUBE-SERVICES:rule:0x20:JUMP:KUBE-SVC-X  -6 -t nat -A KUBE-SERVICES -d "
               "fd00:10:96::51/128 -p tcp -m tcp --dport 9000 -j KUBE-SVC-X\n")
    [steps] = parse_monitor(monitor, "n").values()
    assert steps[0].rule == "-A KUBE-SERVICES -d fd00:10:96::51/128 -p tcp -m tcp --dport 9000 -j KUBE-SVC-X"
    assert (steps[0].packet["SRC"], steps[0].target) == ("fd00:10:244::2", "KUBE-SVC-X")


# --------------------------------------------------------------------------------------------
# A dual-stack lab on the kernel


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, netns_unavailable: str | None) -> Iterator[NetnsLab]:
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    state = dual_state(tmp_path_factory.mktemp("dual"))
    run = tmp_path_factory.mktemp("run")
    with NetnsLab(state, directory=run, handle_signals=False) as the_lab:
        prefix = the_lab.prefix
        yield the_lab
    assert [n for n in kernel.netns_list() if n.startswith(prefix)] == []


@pytest.mark.netns
def test_dual_lab_is_up_with_both_families(lab: NetnsLab) -> None:
    assert lab.layout.dual_stack and lab.families() == (4, 6)
    addrs = lab.exec("webpod1", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert "inet 10.10.1.2/24" in addrs and "inet6 fd00:10:244:1::2/64" in addrs and "tentative" not in addrs
    sysctl = lab.exec("myk8s-worker", ["cat", "/proc/sys/net/ipv6/conf/all/forwarding", "/proc/sys/net/ipv6/conf/eth0/accept_dad"])
    assert sysctl.stdout.split() == ["1", "0"]


@pytest.mark.netns
def test_ipv6_pod_to_pod_across_nodes_without_snat(lab: NetnsLab) -> None:
    for pod, ip6 in WEBPODS6.items():
        run = lab.connect("net-pod", ip6, 80, 2, timeout=OK)
        assert run.by_pod() == {pod: 2}, run.errors()
        assert run.seen_ips() == {pod: ["fd00:10:244::2"]}  # routed, not NATed
        assert all(r.local and r.local.startswith("[fd00:10:244::2]:") for r in run.results)


@pytest.mark.netns
def test_ipv4_beside_ipv6_is_unchanged(lab: NetnsLab) -> None:
    run = lab.connect("net-pod", "10.10.2.2", 80, 2, timeout=OK)
    assert run.by_pod() == {"webpod2": 2} and run.seen_ips() == {"webpod2": ["10.10.0.2"]}
    assert lab.address_of("mypc") == "172.18.0.100" and lab.address_of("mypc", 6) == "fc00:f853:ccd:e793::100"
    assert lab.address_of("myk8s-worker", 6) == "fc00:f853:ccd:e793::3" and lab.pod_ip("webpod3", 6) == WEBPODS6["webpod3"]
    assert lab.namespace_of("fd00:10:244:1::2") == lab.namespace_of("webpod1")


@pytest.mark.netns
def test_ipv6_node_to_its_pod_and_a_remote_pod(lab: NetnsLab) -> None:
    local = lab.connect("myk8s-worker", WEBPODS6["webpod1"], 80, 1, timeout=OK)
    assert local.seen_ips() == {"webpod1": ["fd00:10:244:1::1"]}  # the veth's gateway address: the route's source
    remote = lab.connect("myk8s-worker", WEBPODS6["webpod2"], 80, 1, timeout=OK)
    assert remote.seen_ips() == {"webpod2": ["fc00:f853:ccd:e793::3"]}  # the node's eth0


@pytest.fixture(scope="module")
def synced6(lab: NetnsLab) -> NetnsLab:
    """The IPv6 proxier's rules in every node (full syncs through ip6tables-restore)."""
    for node in lab.layout.nodes:
        lab.restore(node.name, v6_rules(lab.state, node.name), full=True, family=6)
    return lab


@pytest.mark.netns
def test_ipv6_clusterip_reaches_every_webpod_without_snat(synced6: NetnsLab) -> None:
    synced6.flush_conntrack()
    run = synced6.connect("net-pod", SVC6_IP, 9000, 60, timeout=OK)
    assert set(run.by_pod()) == set(WEBPODS6), run.errors()
    assert {ip for ips in run.seen_ips().values() for ip in ips} == {"fd00:10:244::2"}
    entries = synced6.conntrack_entries("myk8s-control-plane", orig_src="fd00:10:244::2")
    assert entries and all(e.orig[1] == SVC6_IP and e.reply[0] in WEBPODS6.values() for e in entries)
    assert not [e for e in synced6.conntrack_entries("myk8s-control-plane") if ":" in e.orig[0]]  # -f ipv4: none of them
    assert synced6.flush_conntrack() >= len(entries)  # conntrack -F empties both families
    assert synced6.conntrack_entries("myk8s-control-plane", family=6) == []


@pytest.mark.netns
def test_ipv6_nodeport_from_mypc_is_snat_to_the_ingress_node(synced6: NetnsLab) -> None:
    for node in synced6.layout.nodes:
        run = synced6.connect("mypc", node.ip6, NODE_PORT6, 12, timeout=OK)
        assert run.ok == 12, run.errors()
        assert {ip for ips in run.seen_ips().values() for ip in ips} <= {node.ip6, *(n.gateway6 for n in synced6.layout.nodes)}
        assert any(node.ip6 in ips or node.gateway6 in ips for ips in run.seen_ips().values())


@pytest.mark.netns
def test_ipv4_clusterip_untouched_by_the_ipv6_sync(synced6: NetnsLab) -> None:
    """The IPv6 sync writes ip6tables only: the IPv4 tables stay empty (no IPv4 rules were loaded)."""
    assert "KUBE-SERVICES" in synced6.nat_chains("myk8s-worker", 6)
    assert "KUBE-SERVICES" not in synced6.nat_chains("myk8s-worker")
    assert "-A KUBE-SERVICES" not in synced6.save_text("myk8s-worker")


@pytest.mark.netns
def test_kernel_ip6tables_save_equals_kslab_model(synced6: NetnsLab) -> None:
    from kslab.proxy.iptables.node import restore_to_save

    for node in synced6.layout.nodes:
        expected = restore_to_save(v6_rules(synced6.state, node.name), family=6)
        assert synced6.save_text(node.name, ("mangle", "filter", "nat"), family=6) == expected, node.name


@pytest.mark.netns
def test_kernel_trace_of_an_ipv6_clusterip_connection(synced6: NetnsLab) -> None:
    if kernel.iptables_tools(None).iptables.endswith("legacy"):
        pytest.skip("kernel traces need the nf_tables backend")
    version = kernel.run_in_namespace(synced6.layout.nodes[0].ns, [kernel.require_tool("xtables-monitor"), "--version"]).stdout
    if "1.8.9" in version:  # measured: it cannot print ip6tables' -p tcp rules, so the trace is one line, never partial
        with pytest.raises(EnvironmentProblem, match=MONITOR_FAILED) as err:
            synced6.trace("net-pod", SVC6_IP, 9000, timeout=OK)
        assert "\n" not in str(err.value) and "1.8.9" in str(err.value)
        return
    trace = synced6.trace("net-pod", SVC6_IP, 9000, timeout=OK)
    assert trace.ok and trace.client_ip == "fd00:10:244::2"
    assert trace.endpoint_pod in WEBPODS6 and trace.endpoint_ip == WEBPODS6[trace.endpoint_pod]
    assert trace.dnat_to == f"[{WEBPODS6[trace.endpoint_pod]}]:80" and trace.endpoint_port == 80
    rules = [s.rule for s in trace.steps if s.rule]
    assert any(re.match(rf"-A KUBE-SERVICES -d {SVC6_IP}/128 ", r) for r in rules), rules
    assert not trace.masquerade


@pytest.mark.netns
def test_family_the_lab_lacks_is_one_line(lab: NetnsLab, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not 4 or 6"):
        lab.save_text("myk8s-worker", family=5)
    ipv4 = NetnsLab(load_cluster([str(DATA / "kind-cluster.yaml"), str(DATA / "clusterip")], seed=1), directory=tmp_path, servers=False)
    with pytest.raises(InputError, match="has no IPv6 addresses"):
        ipv4._check_family(6)
    assert ipv4.families() == (4,) and dataclasses.asdict(ipv4.layout)["mypc_ip6"] == ""


# --------------------------------------------------------------------------------------------
# data/myk8s-dualstack through the Lab: its kube-proxy runs a proxier per family (MetaProxier),
# the netns dataplane loads the IPv6 one's syncs into ip6tables


@pytest.fixture(scope="module")
def dual_lab(netns_run_dir, netns_unavailable: str | None) -> Iterator[Lab]:
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    with Lab("myk8s-dualstack", backend="netns", seed=1) as the_lab:
        prefix = the_lab.dataplane.kernel.prefix
        yield the_lab
    assert [n for n in kernel.netns_list() if n.startswith(prefix)] == []  # down leaves no namespace


def _v6(lab: Lab, service: str) -> str:
    ips = [ip for ip in lab.cluster.service(service).cluster_ips if ":" in ip]
    assert len(ips) == 1, lab.cluster.service(service).cluster_ips
    return ips[0]


@pytest.mark.netns
def test_dual_lab_loads_both_proxiers_into_the_kernel(dual_lab: Lab) -> None:
    assert dual_lab.families == (4, 6) and dual_lab.dataplane.kernel.families() == (4, 6)
    for node in dual_lab.cluster.nodes:
        for family in (4, 6):
            want = dual_lab.render(node.name, family).save_text()
            got = dual_lab.save_text(node.name, family=family)
            for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):  # kube-proxy's rules, as rendered, in each family's tables
                assert [l for l in got.splitlines() if l.startswith(f"-A {chain} ")] == \
                       [l for l in want.splitlines() if l.startswith(f"-A {chain} ")], (node.name, family, chain)
        assert _v6(dual_lab, "svc-clusterip") + "/128" in dual_lab.save_text(node.name, family=6)
        assert _v6(dual_lab, "svc-clusterip") not in dual_lab.save_text(node.name)
    assert dual_lab.verify("myk8s-worker").ok()  # the IPv4 tables unchanged by the IPv6 syncs


@pytest.mark.netns
def test_dual_lab_ipv6_clusterip_from_a_pod(dual_lab: Lab) -> None:
    dst = _v6(dual_lab, "svc-clusterip")
    df = dual_lab.dataplane.connect(["net-pod"], dst, 9000, "tcp", 40, seed=1, interval=0.0, timeout=OK)
    assert set(df.outcome) == {"ok"} and set(df.endpoint_pod) == {"webpod1", "webpod2", "webpod3"}
    assert set(df.client_ip) == {dual_lab.cluster.pod("net-pod").pod_ip_of(6)} == set(df.source_ip_seen)
    assert not df.masquerade.any()
    ips6 = {p.name: p.pod_ip_of(6) for p in dual_lab.cluster.pods}
    assert all(ip == ips6[pod] for pod, ip in zip(df.endpoint_pod, df.endpoint_ip))


@pytest.mark.netns
def test_dual_lab_ipv6_nodeport_from_mypc_is_masqueraded(dual_lab: Lab) -> None:
    svc = dual_lab.cluster.service("svc-nodeport")
    for node in dual_lab.cluster.nodes:
        df = dual_lab.dataplane.connect(["mypc"], node.ip_of(6), svc.ports[0].node_port, "tcp", 6, seed=1, interval=0.0, timeout=OK)
        assert set(df.outcome) == {"ok"}, df.reason.tolist()
        assert set(df.client_ip) == {dual_lab.dataplane.kernel.layout.mypc_ip6} and df.masquerade.all()
        assert set(df.ingress_node) == {node.name}
        assert all(":" in ip for ip in df.endpoint_ip) and all(":" in ip for ip in df.source_ip_seen)


@pytest.mark.netns
def test_dual_lab_ipv4_beside_it_unchanged(dual_lab: Lab) -> None:
    v4 = [ip for ip in dual_lab.cluster.service("svc-clusterip").cluster_ips if ":" not in ip][0]
    df = dual_lab.dataplane.connect(["net-pod"], v4, 9000, "tcp", 20, seed=1, interval=0.0, timeout=OK)
    assert set(df.outcome) == {"ok"} and set(df.client_ip) == {"10.10.0.2"} == set(df.source_ip_seen)
    assert all(":" not in ip for ip in df.endpoint_ip)


@pytest.mark.netns
def test_dual_lab_in_nftables_mode_has_a_table_per_family(tmp_path: Path, netns_unavailable: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """kube-proxy's nftables mode on a dual-stack node: ``table ip kube-proxy`` and ``table ip6 kube-proxy``."""
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    from kslab.nft.kernel import nft_problem

    if nft_problem():
        pytest.skip(nft_problem())
    monkeypatch.setenv("KSLAB_RUN_DIR", str(tmp_path))
    with Lab("myk8s-dualstack", backend="netns", seed=1, proxy_mode="nftables") as lab:
        dp = lab.dataplane
        assert "table ip6 kube-proxy" in dp.nft_list("myk8s-worker", 6) and _v6(lab, "svc-clusterip") in dp.nft_list("myk8s-worker", 6)
        assert _v6(lab, "svc-clusterip") not in dp.nft_list("myk8s-worker")
        chains6, chains4 = dp.existing_chains("myk8s-worker", "nftables", family=6), dp.existing_chains("myk8s-worker", "nftables")
        assert any("__fd00.10.244." in c for c in chains6) and not any("fd00" in c for c in chains4)  # endpoint chains per family
        # the same service chains (hashed without the family), but for the IPv4-only kubernetes Service
        assert {c for c in chains6 if not c.startswith("endpoint-")} == {c for c in chains4 if not c.startswith("endpoint-")
                                                                         and "/kubernetes/" not in c}
        df = dp.connect(["net-pod"], _v6(lab, "svc-clusterip"), 9000, "tcp", 20, seed=1, interval=0.0, timeout=OK)
        assert set(df.outcome) == {"ok"} and not df.masquerade.any()
        with pytest.raises(InputError, match="needs kube-proxy's iptables mode"):  # nft monitor trace reads table ip only
            dp.kernel.trace("net-pod", _v6(lab, "svc-clusterip"), 9000)
        lab.resync()  # a full sync of both families again: the ip6 table replaced, not doubled
        assert dp.nft_list("myk8s-worker", 6).count("table ip6 kube-proxy") == 1


@pytest.mark.netns
def test_dual_lab_scaled_pods_get_ipv6_and_answer(dual_lab: Lab) -> None:
    """update(): a pod made after up gets its IPv6 address and routes too (the readiness check asks both families)."""
    dual_lab.scale("deploy-echo", 4)
    try:
        new = [p for p in dual_lab.dataplane.kernel.layout.pods if p.name.startswith("deploy-echo")]
        assert len(new) == 4 and all(p.ip6 for p in new)
        svc = dual_lab.cluster.service("svc-nodeport")
        df = dual_lab.dataplane.connect(["net-pod"], _v6(dual_lab, "svc-nodeport"), 9000, "tcp", 80, seed=1, interval=0.0, timeout=OK)
        assert set(df.outcome) == {"ok"} and set(df.endpoint_pod) == {p.name for p in new}, svc.key
    finally:
        dual_lab.scale("deploy-echo", 3)


@pytest.mark.netns
def test_cli_up_of_the_dual_lab_names_both_families(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], netns_unavailable: str | None) -> None:
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    from kslab.netns import cli as netns_cli

    monkeypatch.setenv("KSLAB_RUN_DIR", str(tmp_path))
    assert netns_cli.netns_up(["myk8s-dualstack"], seed=1) == 0
    out = capsys.readouterr().out
    lab_id = out.split()[2]
    attached = NetnsLab.attach(lab_id=lab_id, directory=tmp_path)
    prefix = attached.prefix
    try:
        assert "mypc 172.18.0.100 fc00:f853:ccd:e793::100" in out and "myk8s-worker (IPv6) " in out
        assert re.search(r"service default/svc-clusterip\s+10\.200\.1\.\d+:9000/TCP \[fd00:10:96::[0-9a-f]+\]:9000", out), out
        assert attached.layout.dual_stack  # the record's layout keeps the IPv6 fields
        run = attached.connect("net-pod", WEBPODS6["webpod2"], 80, timeout=OK)
        assert run.by_pod() == {"webpod2": 1} and run.seen_ips() == {"webpod2": ["fd00:10:244::2"]}
    finally:
        attached.down()  # this lab only (its own record directory)
    assert [n for n in kernel.netns_list() if n.startswith(prefix)] == []


@pytest.mark.netns
def test_dual_lab_status_counts_each_familys_rules(dual_lab: Lab) -> None:
    status = dual_lab.dataplane.kernel.status()
    for node in dual_lab.cluster.nodes:
        want6 = dual_lab.render(node.name, 6).save_text()
        assert status.rules[node.name]["nat6"] == want6.split("*nat", 1)[1].count("\n-A ") > 0
        assert status.rules[node.name]["nat"] > 0
    assert " ip6 filter " in status.text() and "fd00" not in status.text().splitlines()[0]


@pytest.mark.netns
def test_ipv6_addresses_as_clients(synced6: NetnsLab) -> None:
    """An IPv6 address as the client (the sim's "an IP as a client"): one of a node's IPv6 pod CIDR
    is a pod-like namespace on that node, one of the IPv6 node network a host on the bridge."""
    pod_like = "fd00:10:244:1::50"
    run = synced6.connect(pod_like, SVC6_IP, 9000, 12, timeout=OK)
    assert run.ok == 12 and {ip for ips in run.seen_ips().values() for ip in ips} == {pod_like}  # a pod's: no SNAT
    assert synced6.namespace_of(pod_like).startswith(synced6.prefix + "cli-")
    host = "fc00:f853:ccd:e793::200"
    node = synced6.layout.node("myk8s-worker2")
    run = synced6.connect(host, node.ip6, NODE_PORT6, 6, timeout=OK)
    assert run.ok == 6 and host not in {ip for ips in run.seen_ips().values() for ip in ips}  # NodePort: masqueraded
    with pytest.raises(InputError, match="neither in a node's IPv6 pod CIDR nor on the IPv6 node network"):
        synced6.namespace_of("2001:db8::9")


@pytest.mark.netns
def test_ipv6_hairpin_is_masqueraded_to_the_veths_gateway(synced6: NetnsLab) -> None:
    """A pod reaching itself through the IPv6 ClusterIP: kube-proxy's ``-s POD_IP6/128 -j
    KUBE-MARK-MASQ`` rule masquerades it to its veth's IPv6 gateway (ptp, as in IPv4)."""
    run = synced6.connect("webpod1", SVC6_IP, 9000, 40, timeout=OK)
    assert run.ok == 40 and "webpod1" in run.by_pod(), run.by_pod()
    assert run.seen_ips()["webpod1"] == ["fd00:10:244:1::1"]
    assert all(ips == ["fd00:10:244:1::2"] for pod, ips in run.seen_ips().items() if pod != "webpod1")


@pytest.mark.netns
def test_dual_lab_ip6tables_commands_and_verify_per_family(dual_lab: Lab) -> None:
    """The study's commands in IPv6: ``ip6tables -t nat -S CHAIN`` and ``ip6tables-save`` run the
    kernel's ip6tables in the node's namespace and print what the simulator prints for the same
    lab; ``verify(node, family=6)`` compares the kernel's ip6tables with kube-proxy's prediction."""
    sim = Lab("myk8s-dualstack", backend="sim", seed=1)
    for cmd in ("ip6tables -t nat -S KUBE-SERVICES", "ip6tables -t nat -S KUBE-NODEPORTS",
                "ip6tables-save -t nat | grep -c KUBE-SEP"):
        kernel_out, sim_out = dual_lab.sh("myk8s-worker", cmd), sim.sh("myk8s-worker", cmd)
        assert kernel_out.returncode == 0 and kernel_out.stdout == sim_out.stdout, (cmd, kernel_out, sim_out)
    assert _v6(dual_lab, "svc-clusterip") + "/128" in dual_lab.sh("myk8s-worker", "ip6tables -t nat -S KUBE-SERVICES").stdout
    report = dual_lab.verify("myk8s-worker", family=6)
    assert report.ok(), report.text()
