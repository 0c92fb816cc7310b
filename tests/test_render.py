"""The kube-proxy iptables renderer: names, probabilities and the rule templates per feature.

Full upstream expected dumps are compared in test_render_upstream.py; here each feature of
reference/kube-proxy.md is checked on its own, with the rules written out by hand from the
templates in §2-§4.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from kslab.model import Endpoint, EndpointPort, EndpointSlice, LoadBalancerIngress, Service, ServicePort
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render
from kslab.proxy.iptables.chains import chain_hash
from kslab.proxy.util import parse_cidr_sloppy, parse_ip_sloppy

CFG = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8", random_fully=False)


def svc(name="svc1", ns="ns1", ip="172.30.0.41", port=80, pname="p80", proto="TCP", **kw) -> Service:
    return Service(name=name, namespace=ns, cluster_ip=ip, ports=[ServicePort(port=port, name=pname, protocol=proto, **kw.pop("port_kw", {}))], **kw)


def eps(name="svc1", ns="ns1", *endpoints: Endpoint, port=80, pname="p80", proto="TCP") -> EndpointSlice:
    return EndpointSlice(name=f"{name}-1", namespace=ns, service_name=name, ports=[EndpointPort(port, pname, proto)], endpoints=list(endpoints))


def ep(ip: str, node: str | None = None, **kw) -> Endpoint:
    return Endpoint(addresses=[ip], node_name=node, **kw)


def nat(rs, chain):
    return rs.nat.rules_in(chain)


def filt(rs, chain):
    return rs.filter.rules_in(chain)


# ---- §1 chain names ------------------------------------------------------------------------------

WORKED_PAIRS = {
    "ns1/svc1:p80tcp": "XPGD46QRK7WJZT7O",
    "ns2/svc2:p80tcp": "GNZBNJ2PO5MGZ6GT",
    "ns3/svc3:p80tcp": "X27LE4BHSL4DOUIK",
    "ns4/svc4:p80tcp": "4SW47YFZTEDKD3PK",
    "ns5/svc5:p80tcp": "NUKIZ6OKUXPJNT4C",
    "ns2/svc2:p8080tcp": "2VJB64SDSIJUP5T6",
    "ns4/svc4:p8082tcp": "EBDQOQU5SJFXRIL3",
    "ns1/svc1:p80tcp10.180.0.1:80": "SXIVWICOYRO3J4NJ",
    "ns2/svc2:p80tcp10.180.0.2:80": "RS4RBKLTHTF2IUXJ",
    "ns3/svc3:p80tcp10.180.0.3:80": "OYPFS5VJICHGATKP",
    "ns4/svc4:p80tcp10.180.0.4:80": "UKSFD7AGPMPPLUHC",
    "ns4/svc4:p80tcp10.180.0.5:80": "C6EBXVWJJZMIWKLZ",
    "ns5/svc5:p80tcp10.180.0.3:80": "I77PXRDZVX7PMWMN",
    "ns1/svc1:p80tcp10.0.1.1:80": "SNQ3ZNILQDEJNDQO",
    "ns2/svc2:p8080tcp10.0.2.1:8080": "UHEGFW77JX3KXTOV",
    "ns1/svc1:p80tcp10.0.0.0:80": "DKGQUZGBKLTPAR56",
    "ns3/svc3:p8081tcp203.0.113.4:8081": "RUVVH7YV3PHQBDOS",
    # the study's lab (reference/k8s-semantics.md §9)
    "default/svc-clusterip:svc-webporttcp": "KBDEBIL6IU6WL7RF",
}


@pytest.mark.parametrize("text,expected", WORKED_PAIRS.items())
def test_chain_hash_worked_pairs(text, expected):
    assert chain_hash(text) == expected
    # and the plain definition, so the fast encoder cannot drift from it
    assert base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16] == expected


def test_lab_service_chain_name():
    rs = render([svc("svc-clusterip", "default", "10.200.1.10", 9000, "svc-webport")],
                [eps("svc-clusterip", "default", ep("10.10.1.2"), port=80, pname="svc-webport")], CFG)
    assert "KUBE-SVC-KBDEBIL6IU6WL7RF" in rs.nat.chains


# ---- §4 probabilities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,text", [(2, "0.5000000000"), (3, "0.3333333333"), (4, "0.2500000000"), (6, "0.1666666667"), (7, "0.1428571429"), (100001, "0.0000099999")]
)
def test_probability_strings(n, text):
    from kslab.proxy.iptables.proxier import _probability

    assert _probability(n) == text


def test_probability_ladder_three_endpoints():
    rs = render([svc()], [eps("svc1", "ns1", ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"))], CFG)
    rules = nat(rs, "KUBE-SVC-XPGD46QRK7WJZT7O")
    assert "--probability 0.3333333333" in rules[1]
    assert "--probability 0.5000000000" in rules[2]
    assert "statistic" not in rules[3]
    assert len(rules) == 4  # masquerade rule + 3 endpoints


def test_endpoints_sorted_as_strings_and_deduplicated():
    rs = render(
        [svc(port=11, pname="p11")],
        [eps("svc1", "ns1", ep("10.1.1.1"), ep("10.1.1.11"), ep("10.1.1.1"), port=11, pname="p11")],
        CFG,
    )
    rules = [r for r in nat(rs, rs.service_ports[0].info.svc_chain) if "->" in r]
    assert [r.split('-> ')[1].split('"')[0] for r in rules] == ["10.1.1.11:11", "10.1.1.1:11"]


# ---- masquerade variants ------------------------------------------------------------------------------


def test_masquerade_all_and_no_detector():
    s, e = [svc()], [eps("svc1", "ns1", ep("10.180.0.1"))]
    all_ = render(s, e, ProxyConfig(node_name="n", masquerade_all=True, cluster_cidr="10.0.0.0/8"))
    assert nat(all_, "KUBE-SVC-XPGD46QRK7WJZT7O")[0] == (
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ'
    )
    none = render(s, e, ProxyConfig(node_name="n"))
    assert not any("KUBE-MARK-MASQ" in r for r in nat(none, "KUBE-SVC-XPGD46QRK7WJZT7O"))


@pytest.mark.parametrize(
    "mode,kw,frag",
    [
        ("NodeCIDR", {"node_pod_cidr": "10.10.1.0/24"}, "! -s 10.10.1.0/24"),
        ("BridgeInterface", {"bridge_interface": "cbr0"}, "! -i cbr0"),
        ("InterfaceNamePrefix", {"interface_name_prefix": "veth"}, "! -i veth+"),
    ],
)
def test_local_detectors(mode, kw, frag):
    rs = render([svc()], [eps("svc1", "ns1", ep("10.180.0.1"))], ProxyConfig(node_name="n", detect_local_mode=mode, **kw))
    assert nat(rs, "KUBE-SVC-XPGD46QRK7WJZT7O")[0].endswith(f"--dport 80 {frag} -j KUBE-MARK-MASQ")


def test_random_fully_and_mark():
    rs = render([], [], ProxyConfig(node_name="n"))
    assert nat(rs, "KUBE-POSTROUTING") == [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    assert nat(rs, "KUBE-MARK-MASQ") == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000"]
    rs = render([], [], ProxyConfig(node_name="n", masquerade_bit=0, random_fully=False))
    assert nat(rs, "KUBE-MARK-MASQ") == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000001"]
    assert nat(rs, "KUBE-POSTROUTING")[-1].endswith("-j MASQUERADE")


# ---- hairpin, affinity ---------------------------------------------------------------------------------


def test_hairpin_rule_in_every_sep_chain():
    rs = render([svc()], [eps("svc1", "ns1", ep("10.180.0.1"), ep("10.180.0.2"))], CFG)
    for e in rs.service_ports[0].categorized.all_reachable:
        assert nat(rs, e.chain)[0] == f"-A {e.chain} -m comment --comment ns1/svc1:p80 -s {e.ip} -j KUBE-MARK-MASQ"


def test_session_affinity_rules():
    s = svc(session_affinity="ClientIP", session_affinity_timeout=60)
    rs = render([s], [eps("svc1", "ns1", ep("10.180.0.1"), ep("10.180.0.2"))], CFG)
    info = rs.service_ports[0]
    a, b = info.categorized.cluster
    rules = nat(rs, info.info.svc_chain)
    assert rules[1] == (
        f'-A {info.info.svc_chain} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name {a.chain} '
        f"--rcheck --seconds 60 --reap -j {a.chain}"
    )
    assert "--rcheck" in rules[2] and b.chain in rules[2]
    assert "--probability 0.5000000000" in rules[3]
    assert nat(rs, a.chain)[1] == (
        f"-A {a.chain} -m comment --comment ns1/svc1:p80 -m recent --name {a.chain} --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80"
    )


# ---- traffic policies ------------------------------------------------------------------------------------


def nodeport_local(*endpoints):
    s = svc(type="NodePort", external_traffic_policy="Local", port_kw={"node_port": 30080})
    return render([s], [eps("svc1", "ns1", *endpoints)], CFG)


def test_external_policy_local_with_local_endpoint_uses_svl():
    rs = nodeport_local(ep("10.180.0.1", "test-node"), ep("10.180.0.2", "other"))
    info = rs.service_ports[0].info
    assert info.svl_chain in rs.nat.chains and info.svc_chain in rs.nat.chains
    assert nat(rs, info.ext_chain)[-1] == f"-A {info.ext_chain} -j {info.svl_chain}"
    svl = nat(rs, info.svl_chain)
    assert svl == [f'-A {info.svl_chain} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j {rs.service_ports[0].categorized.local[0].chain}']
    assert not filt(rs, "KUBE-EXTERNAL-SERVICES")


def test_external_policy_local_without_local_endpoint_drops():
    rs = nodeport_local(ep("10.180.0.2", "other"))
    info = rs.service_ports[0].info
    assert info.svl_chain not in rs.nat.chains
    assert all(f"-j {info.svl_chain}" not in r for r in nat(rs, info.ext_chain))
    assert filt(rs, "KUBE-EXTERNAL-SERVICES") == [
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP'
    ]


def test_internal_policy_local():
    s = svc(internal_traffic_policy="Local")
    rs = render([s], [eps("svc1", "ns1", ep("10.180.0.1", "test-node"), ep("10.180.0.2", "other"))], CFG)
    info = rs.service_ports[0].info
    assert nat(rs, "KUBE-SERVICES")[0].endswith(f"-j {info.svl_chain}")
    assert info.svc_chain not in rs.nat.chains
    assert "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ" in nat(rs, info.svl_chain)[0]
    rs = render([s], [eps("svc1", "ns1", ep("10.180.0.2", "other"))], CFG)
    assert filt(rs, "KUBE-SERVICES") == [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP'
    ]


def test_no_endpoints_rejects_everywhere():
    s = svc(type="LoadBalancer", external_ips=["192.168.99.1"], load_balancer_ingress=[LoadBalancerIngress(ip="1.2.3.4")],
            port_kw={"node_port": 30001})
    rs = render([s], [], CFG)
    assert [r.split(" -j ")[1] for r in filt(rs, "KUBE-SERVICES")] == ["REJECT"]
    ext = filt(rs, "KUBE-EXTERNAL-SERVICES")
    assert len(ext) == 3 and all(r.endswith("-j REJECT") and '"ns1/svc1:p80 has no endpoints"' in r for r in ext)
    assert not [c for c in rs.nat.chains if c.startswith(("KUBE-SVC", "KUBE-EXT", "KUBE-SEP"))]


# ---- terminating endpoints and topology ------------------------------------------------------------------


def test_terminating_fallback_only_when_nothing_is_ready():
    s = [svc()]
    serving_term = ep("10.180.0.2", ready=False, serving=True, terminating=True)
    not_serving = ep("10.180.0.3", ready=False, serving=False, terminating=True)
    rs = render(s, [eps("svc1", "ns1", ep("10.180.0.1"), serving_term, not_serving)], CFG)
    assert [e.ip for e in rs.service_ports[0].categorized.cluster] == ["10.180.0.1"]
    rs = render(s, [eps("svc1", "ns1", serving_term, not_serving)], CFG)
    assert [e.ip for e in rs.service_ports[0].categorized.cluster] == ["10.180.0.2"]
    rs = render(s, [eps("svc1", "ns1", not_serving)], CFG)
    assert filt(rs, "KUBE-SERVICES")[0].endswith("-j REJECT")


def test_topology_hints_filter_cluster_endpoints():
    a = ep("10.180.0.1", "n1", hints_for_zones=["zone-a"])
    b = ep("10.180.0.2", "n2", hints_for_zones=["zone-b"])
    cfg = ProxyConfig(node_name="test-node", cluster_cidr="10.0.0.0/8", node_zone="zone-a")
    rs = render([svc()], [eps("svc1", "ns1", a, b)], cfg)
    assert [e.ip for e in rs.service_ports[0].categorized.cluster] == ["10.180.0.1"]
    # one endpoint without a hint: hints are ignored
    c = ep("10.180.0.3", "n3")
    rs = render([svc()], [eps("svc1", "ns1", a, b, c)], cfg)
    assert len(rs.service_ports[0].categorized.cluster) == 3
    # node missing the zone label: ignored as well
    rs = render([svc()], [eps("svc1", "ns1", a, b)], ProxyConfig(node_name="test-node"))
    assert len(rs.service_ports[0].categorized.cluster) == 2


# ---- large-cluster mode -----------------------------------------------------------------------------------


def test_large_cluster_mode_drops_endpoint_comments():
    many = [ep(f"10.{i // 250}.{i % 250}.1") for i in range(1001)]
    rs = render([svc()], [eps("svc1", "ns1", *many)], CFG)
    assert rs.large_cluster_mode and rs.total_endpoints == 1001
    sep = rs.service_ports[0].categorized.cluster[0].chain
    assert all("--comment" not in r for r in nat(rs, sep))
    assert all("--comment" not in r for r in nat(rs, "KUBE-SVC-XPGD46QRK7WJZT7O")[1:])
    assert "--comment" in nat(rs, "KUBE-SVC-XPGD46QRK7WJZT7O")[0]  # the masquerade rule keeps it
    # unready endpoints count toward the threshold
    few = [ep(f"10.0.{i // 250}.{i % 250 + 1}", ready=False) for i in range(1000)] + [ep("10.9.9.9")]
    assert render([svc()], [eps("svc1", "ns1", *few)], CFG).large_cluster_mode


# ---- addresses ----------------------------------------------------------------------------------------------


def test_sloppy_ip_parsing():
    assert parse_ip_sloppy("10.180.00.001") == "10.180.0.1"
    assert parse_ip_sloppy("010.001.002.003") == "10.1.2.3"
    assert parse_ip_sloppy("10.1.2") is None and parse_ip_sloppy("256.1.1.1") is None
    assert parse_cidr_sloppy(" 203.0.113.0/25") == "203.0.113.0/25"
    assert parse_cidr_sloppy("203.0.113.000/025") == "203.0.113.0/25"
    s = svc(ip="172.30.000.041", external_ips=["192.168.099.022"], type="NodePort")
    rs = render([s], [eps("svc1", "ns1", ep("10.180.00.001"))], CFG)
    text = rs.restore_text()
    assert "-d 172.30.0.41 " in text and "-d 192.168.99.22 " in text
    assert "--to-destination 10.180.0.1:80" in text and "KUBE-SEP-SXIVWICOYRO3J4NJ" in text


def test_lb_ip_mode_proxy_is_skipped_and_source_ranges():
    s = svc(type="LoadBalancer", load_balancer_ingress=[LoadBalancerIngress(ip="1.2.3.4", ip_mode="Proxy"), LoadBalancerIngress(ip="5.6.7.8")],
            load_balancer_source_ranges=["192.168.0.0/24"], port_kw={"node_port": 30002})
    rs = render([s], [eps("svc1", "ns1", ep("10.180.0.1"))], CFG)
    text = rs.restore_text()
    assert "1.2.3.4" not in text
    fw = rs.service_ports[0].info.fw_chain
    # the node IP 192.168.0.2 is inside the range, so the LB IP itself is allowed as a source
    assert nat(rs, fw) == [
        f'-A {fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 192.168.0.0/24 -j KUBE-EXT-XPGD46QRK7WJZT7O',
        f'-A {fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-XPGD46QRK7WJZT7O',
        f'-A {fw} -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ]


def test_nodeport_addresses_and_localhost_nodeports():
    tail = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    rs = render([], [], ProxyConfig(node_name="n", node_ips=("172.18.0.3",), nodeport_addresses=("172.18.0.0/16", "127.0.0.0/8")))
    assert nat(rs, "KUBE-SERVICES") == [f"{tail} -d 127.0.0.1 -j KUBE-NODEPORTS", f"{tail} -d 172.18.0.3 -j KUBE-NODEPORTS"]
    rs = render([], [], ProxyConfig(node_name="n", node_ips=("172.18.0.3",), nodeport_addresses=("primary",), localhost_nodeports=False))
    assert nat(rs, "KUBE-SERVICES") == [f"{tail} -d 172.18.0.3 -j KUBE-NODEPORTS"]
    rs = render([], [], ProxyConfig(node_name="n", localhost_nodeports=False))
    assert nat(rs, "KUBE-SERVICES") == [f"{tail} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]
    assert "KUBE-FIREWALL" not in rs.filter.chains


@pytest.mark.parametrize("addresses,localhost", [
    ((), True), (("172.18.0.0/16",), False), (("primary",), False), (("172.18.0.0/16", "127.0.0.0/8"), True),
    (("127.0.0.1/32",), True), (("64.0.0.0/2",), True), (("fd00::/64",), True),  # no IPv4 CIDR: 0.0.0.0/0
])
def test_nodeport_addresses_without_loopback_turn_localhost_nodeports_off(addresses, localhost):
    """NewProxier: "If the nodePortAddresses doesn't contain loopback, disable localhostNodePorts":
    no 127.0.0.0/8 NodePort rule, no nfacct counter, no "block incoming localnet" rule."""
    from kslab.controlplane import load_cluster
    from kslab.resources import study_lab

    state = load_cluster([study_lab()], seed=1)
    cfg = ProxyConfig.for_node(state, "myk8s-worker", nodeport_addresses=addresses)
    assert cfg.localhost_nodeports is localhost
    text = render(state.services, state.endpoint_slices, cfg).raw_text()
    assert ("-d 127.0.0.0/8" in text) is localhost and ("localhost_nps_accepted_pkts" in text) is localhost
    assert ("block incoming localnet connections" in text) is localhost


def test_localhost_nodeport_rule_needs_nfacct_and_conntrack_liberal():
    s = svc(type="NodePort", port_kw={"node_port": 30080})
    rs = render([s], [eps("svc1", "ns1", ep("10.180.0.1"))], ProxyConfig(node_name="n", nfacct=False, conntrack_tcp_liberal=True))
    assert nat(rs, "KUBE-NODEPORTS") == ["-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 -j KUBE-EXT-XPGD46QRK7WJZT7O"]
    assert not any("INVALID" in r for r in filt(rs, "KUBE-FORWARD"))


def test_udp_and_headless_and_externalname():
    dns = svc("kube-dns", "kube-system", "10.96.0.10", 53, "dns", "UDP")
    headless = svc("h", "ns1", "None")
    ext = Service(name="x", namespace="ns1", type="ExternalName")
    rs = render([dns, headless, ext], [eps("kube-dns", "kube-system", ep("10.244.0.2"), port=53, pname="dns", proto="UDP")], CFG)
    assert [p.info.name_string for p in rs.service_ports] == ["kube-system/kube-dns:dns"]
    assert "-m udp -p udp -d 10.96.0.10 --dport 53" in rs.restore_text()
    assert "-m udp -p udp -j DNAT --to-destination 10.244.0.2:53" in rs.restore_text()


# ---- scenarios the kernel round trip also loads (tests/render_cases.py) ------------------------------------


def feature_scenarios() -> dict[str, tuple[list[Service], list[EndpointSlice], ProxyConfig]]:
    """One ruleset per renderer feature, for tests/test_kernel_roundtrip.py."""
    real = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8")
    two = [eps("svc1", "ns1", ep("10.180.0.1", "test-node"), ep("10.180.0.2", "other"))]
    lb = svc(type="LoadBalancer", external_traffic_policy="Local", health_check_node_port=30999,
             load_balancer_ingress=[LoadBalancerIngress(ip="5.6.7.8")], load_balancer_source_ranges=["192.168.0.0/24"],
             external_ips=["192.168.99.1"], session_affinity="ClientIP", session_affinity_timeout=30, port_kw={"node_port": 30080})
    term = [eps("svc1", "ns1", ep("10.180.0.2", "test-node", ready=False, serving=True, terminating=True))]
    hints = [eps("svc1", "ns1", ep("10.180.0.1", "n1", hints_for_zones=["zone-a"]), ep("10.180.0.2", "n2", hints_for_zones=["zone-b"]))]
    return {
        "etp-local-lb-affinity-fw": ([lb], two, real),
        "etp-local-no-local": ([lb], [eps("svc1", "ns1", ep("10.180.0.2", "other"))], real),
        "itp-local": ([svc(internal_traffic_policy="Local")], two, real),
        "itp-local-none": ([svc(internal_traffic_policy="Local")], [eps("svc1", "ns1", ep("10.180.0.2", "other"))], real),
        "masquerade-all-udp": ([svc(proto="UDP")], [eps("svc1", "ns1", ep("10.180.0.1"), proto="UDP")],
                               ProxyConfig(node_name="n", masquerade_all=True)),
        "terminating-fallback": ([svc(type="NodePort", external_traffic_policy="Local", port_kw={"node_port": 30081})], term, real),
        "topology-hints": ([svc()], hints, ProxyConfig(node_name="n", cluster_cidr="10.0.0.0/8", node_zone="zone-a")),
        "nodeport-addresses": ([svc(type="NodePort", port_kw={"node_port": 30082})], two,
                               ProxyConfig(node_name="n", node_ips=("172.18.0.3",), nodeport_addresses=("172.18.0.0/16", "127.0.0.0/8"),
                                           localhost_nodeports=False, nfacct=False, conntrack_tcp_liberal=True)),
        # a node with three addresses, two inside nodePortAddresses (upstream TestNodePorts' "multiple nodeport-addresses")
        "nodeport-addresses-several": ([svc(type="NodePort", port_kw={"node_port": 30083})], two,
                                       ProxyConfig(node_name="test-node", node_ips=("192.168.0.2", "192.168.1.2", "192.168.99.11"),
                                                   cluster_cidr="10.0.0.0/8", nodeport_addresses=("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"),
                                                   localhost_nodeports=False)),
        "large-cluster": ([svc()], [eps("svc1", "ns1", *[ep(f"10.{i // 250}.{i % 250}.1") for i in range(1001)])], real),
    }


@pytest.mark.parametrize("case_id", list(feature_scenarios()))
def test_feature_scenarios_render(case_id):
    services, slices, cfg = feature_scenarios()[case_id]
    text = render(services, slices, cfg).raw_text()
    assert text.startswith("*filter\n") and text.endswith("COMMIT\n")


@pytest.mark.parametrize("case_id", list(feature_scenarios()))
def test_partial_sync_counts_the_chains_it_leaves_out(case_id):
    """A partial sync formats nothing of an unchanged Service's chains, yet keeps them active and
    counts their rules exactly as a full sync writes them (the iptables_total metric)."""
    services, slices, cfg = feature_scenarios()[case_id]
    full = render(services, slices, cfg)
    partial = render(services, slices, cfg, partial_services=set())
    assert full.active_nat_chains == set(full.nat.chains)  # a full sync declares every chain it keeps
    assert partial.active_nat_chains == full.active_nat_chains
    assert partial.skipped_nat_chains == len(full.nat.chains) - len(partial.nat.chains)
    assert partial.skipped_nat_rules == len(full.nat) - len(partial.nat)
    assert partial.iptables_total() == full.iptables_total()
    assert not [c for c in partial.nat.chains if c.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"))]
    assert partial.nat.rules_in("KUBE-SERVICES") == full.nat.rules_in("KUBE-SERVICES")
    assert partial.filter.lines == full.filter.lines


def test_batch_chain_names_equal_one_at_a_time():
    """The renderer names a sync's KUBE-SEP chains in one batch (hashes one by one, base32 column
    by column); each name is base32(sha256(...))[:16] of its own string, as upstream computes it."""
    import random

    from kslab.proxy.iptables.chains import chain_names, endpoint_chain_names, endpoint_chain_names_of

    rnd = random.Random(7)
    ports = [(f"ns{rnd.randrange(9)}/s{rnd.randrange(999)}:p{i}", rnd.choice(["tcp", "udp", "sctp"]),
              [f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}:{rnd.randrange(65536)}"
               for _ in range(rnd.randrange(0, 7))]) for i in range(300)]
    ports.append(("odd\nname", "tcp", ["1.2.3.4:5"]))  # a newline in a name: still one name per endpoint
    expected = [["KUBE-SEP-" + base64.b32encode(hashlib.sha256((n + p + e).encode()).digest()).decode()[:16] for e in eps]
                for n, p, eps in ports]
    assert [list(names) for names in endpoint_chain_names_of(ports)] == expected
    assert [endpoint_chain_names(n, p, eps) for n, p, eps in ports] == expected
    assert chain_names("X-", []) == [] and endpoint_chain_names_of([]) == []
    assert chain_names("", [b"\xff" * 40]) == [base64.b32encode(hashlib.sha256(b"\xff" * 40).digest()).decode()[:16]]


def test_kube_services_sort_by_one_regex_equals_get_service_name():
    from kslab.proxy.iptables.ruleset import _service_sort_key, _sorted_by_service

    lines = [
        '-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -m tcp -p tcp -d 10.0.0.2 --dport 80 -j KUBE-SVC-B',
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        "-A KUBE-SERVICES -m comment --comment ns1/a:p -m tcp -p tcp --dport 30001 -j KUBE-EXT-A",
        "-A KUBE-SERVICES -d 10.0.0.9 -j ACCEPT",
        '-A KUBE-SERVICES -m comment --comment "a-b/x:p external IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-X',
        '-A KUBE-SERVICES -m comment --comment "ns1/a:q cluster IP" -m udp -p udp -d 10.0.0.1 --dport 53 -j KUBE-SVC-Q',
        '-A KUBE-SERVICES -m comment --comment "" -j RETURN',
    ]
    for last in (True, False):
        assert _sorted_by_service(lines, last) == sorted(lines, key=lambda line: _service_sort_key(line, last))
