"""Upstream's TestSyncProxyRulesRepeated (kubernetes pkg/proxy/iptables/proxier_test.go),
replayable against any kernel: kslab's model of a node (:class:`SimKernel`, tests/test_proxier.py)
or a real network namespace (tests/test_netns_sync.py). The expected restore text of every step
is transcribed in tests/data/kube-proxy/sync-repeated-steps.txt (sources in SOURCES.md there).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from kslab.manifests import Document, parse_endpoint_slice, parse_service
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render
from kslab.proxy.iptables.node import NodeIptables
from kslab.proxy.proxier import Proxier
from kslab.xtables import parse_rule

DATA = Path(__file__).parent / "data" / "kube-proxy" / "sync-repeated-steps.txt"
CONFIG = ProxyConfig(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                     random_fully=False, nfacct=False)


def expected_steps() -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for block in DATA.read_text().split("### step ")[1:]:
        title, _, body = block.partition("\n")
        steps.append((title, body))
    return steps


def service(ns: str, name: str, ip: str, port: int):
    return parse_service(Document("test", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"}]}}))


def endpoint_slice(ns: str, name: str, port: int, *ips: str):
    return parse_endpoint_slice(Document("test", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": [{"addresses": [ip]} for ip in ips],
        "ports": [{"name": f"p{port}", "port": port, "protocol": "TCP"}]}))


class SimKernel:
    """kslab's model of a node's iptables (what the simulator loads)."""

    def __init__(self) -> None:
        self.state = NodeIptables()

    def full_sync(self, text: str) -> None:
        self.state.full_sync(text)

    def partial_sync(self, text: str) -> None:
        self.state.partial_sync(text)

    def nat_chains(self) -> list[str]:
        return self.state.chains("nat")

    def append_rule(self, table: str, line: str) -> None:
        self.state.tables[table].chains[line.split()[1]].rules.append(parse_rule(line, table))

    def save(self) -> str:
        return self.state.save_text()


class Node:
    """One node: a Proxier and the kernel it writes to."""

    def __init__(self, config: ProxyConfig = CONFIG, kernel=None):
        self.proxier = Proxier(config)
        self.kernel = kernel or SimKernel()
        self.services: dict[str, object] = {}
        self.slices: dict[str, object] = {}
        self.now = 0.0
        self.saves: list[str] = []  # the kernel's iptables-save after every sync

    def apply(self, ruleset) -> None:
        text = ruleset.raw_text()
        try:
            if ruleset.partial:
                self.kernel.partial_sync(text)
            else:
                self.kernel.full_sync(text)
        except ValueError as err:
            raise RuntimeError(f"iptables-restore failed: {err}") from None

    def sync(self):
        self.now += 2.0
        result = self.proxier.sync(self.services.values(), self.slices.values(), self.apply,
                                   list_nat_chains=self.kernel.nat_chains, now=self.now)
        self.saves.append(self.kernel.save())
        return result


def sorted_text(ruleset) -> str:
    return ruleset.restore_text().replace("0x00004000", "0x4000")


def assert_text(expected: str, got: str, what: str) -> None:
    assert got == expected, what + "\n" + "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True), "upstream", "kslab"))



def replay_sync_repeated(kernel) -> Node:
    """TestSyncProxyRulesRepeated against ``kernel``; returns the node (``saves`` per sync)."""
    steps = expected_steps()
    assert len(steps) == 9
    node = Node(kernel=kernel)
    results = []

    def check(i: int, full: bool):
        title, expected = steps[i - 1]
        r = node.sync()
        results.append(r)
        assert r.ok, r.error
        assert r.full is full, f"step {i} ({title}): full={r.full}, reason {r.reason}"
        assert_text(expected, sorted_text(r.ruleset), f"step {i}: {title}")
        return r

    node.services = {"svc1": service("ns1", "svc1", "172.30.0.41", 80), "svc2": service("ns2", "svc2", "172.30.0.42", 8080)}
    node.slices = {"svc1": endpoint_slice("ns1", "svc1", 80, "10.0.1.1"), "svc2": endpoint_slice("ns2", "svc2", 8080, "10.0.2.1")}
    r = check(1, True)
    assert r.reason == "first sync"

    node.services["svc3"] = service("ns3", "svc3", "172.30.0.43", 80)
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.1")
    r = check(2, False)
    assert r.updated_services == {"ns3/svc3"}

    del node.services["svc2"]  # OnServiceDelete: the slice stays in the cache
    r = check(3, False)
    assert r.deleted_chains == ["KUBE-SEP-UHEGFW77JX3KXTOV", "KUBE-SVC-2VJB64SDSIJUP5T6"]

    node.services["svc4"] = service("ns4", "svc4", "172.30.0.44", 80)
    check(4, False)
    node.slices["svc4"] = endpoint_slice("ns4", "svc4", 80, "10.0.4.1")
    check(5, False)
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2")
    r = check(6, False)
    assert r.deleted_chains == ["KUBE-SEP-BSWRHOQ77KEXZLNL"]
    node.slices["svc3"] = endpoint_slice("ns3", "svc3", 80, "10.0.3.2", "10.0.3.3")
    check(7, False)
    r = check(8, False)
    assert r.updated_services == frozenset()

    # A dangling jump from svc3's chain into svc4's endpoint chain, then delete svc4: the
    # partial restore cannot -X the endpoint chain and fails; the next sync is full.
    node.kernel.append_rule("nat", "-A KUBE-SVC-X27LE4BHSL4DOUIK -j KUBE-SEP-AYCN5HPXMIRJNJXU")
    before = node.kernel.save()
    del node.services["svc4"]
    failed = node.sync()
    assert not failed.ok and not failed.full
    assert node.kernel.save().split("*nat")[1] == before.split("*nat")[1], "a failed table must keep its old rules"
    assert node.proxier.need_full_sync
    m = node.proxier.metrics
    assert m.sync_proxy_rules_iptables_partial_restore_failures_total == 1
    assert m.sync_proxy_rules_iptables_restore_failures_total == 1
    r = check(9, True)
    assert r.reason == "after a failed sync"

    # after the repair, the kernel holds exactly what a fresh node gets from one full sync
    fresh = NodeIptables()
    fresh.full_sync(render(node.services.values(), node.slices.values(), CONFIG).raw_text())
    assert node.kernel.save() == fresh.save_text()
    assert m.sync_full_proxy_rules_duration_seconds.count == 2 and m.sync_partial_proxy_rules_duration_seconds.count == 8
    assert all(x.seconds > 0 for x in results)
    return node
