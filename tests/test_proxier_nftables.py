"""kube-proxy's nftables mode across syncs (kslab.proxy.proxier driving kslab.proxy.nftables).

Ports of upstream tests of pkg/proxy/nftables/proxier_test.go (the v1.34+ file; sources in
tests/data/kube-proxy/SOURCES.md):

- TestSyncProxyRulesRepeated: every step's table and NumOperations (10, 4, 0, 2, 10, 9, 12, 5,
  14, 0) and the stale chains (tests/nft_sync_repeated.py);
- TestSyncProxyRulesStartup: a first sync on a table that already holds most of the state writes
  setupOps + 14 operations;
- TestNoEndpointsMetric: sync_proxy_rules_no_local_endpoints_total for the 7 cases.

The "kernel" is kslab's port of knftables.Fake (kslab.proxy.nftables.FakeNft).
"""

from __future__ import annotations

import pytest
from nft_sync_repeated import CONFIG, NftNode, assert_table, replay_sync_repeated, sections
from sync_repeated import endpoint_slice, service

from kslab.manifests import Document, parse_endpoint_slice, parse_service
from kslab.proxy.config import ProxyConfig
from kslab.proxy.nftables import FakeNft, render, sort_nft_transaction
from kslab.proxy.proxier import Proxier


def test_sync_repeated_matches_upstream_at_every_step():
    node = replay_sync_repeated()
    m = node.proxier.metrics
    assert m.sync_proxy_rules_nftables_sync_failures_total == 0 and m.sync_proxy_rules_iptables_restore_failures_total == 0
    assert len(m.sync_full_proxy_rules_duration_seconds) == 1


def _root_nft_skip() -> str | None:
    import os
    import shutil

    if os.geteuid() != 0:
        return "needs root (a throw-away network namespace)"
    missing = [t for t in ("nft", "unshare") if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None


@pytest.mark.netns
@pytest.mark.skipif(_root_nft_skip() is not None, reason=str(_root_nft_skip()))
def test_sync_repeated_in_a_real_nft_table():
    """The same replay with every transaction (cleanups included) loaded by nft 1.0.6, in a
    child process under ``unshare -n`` (its own network namespace, gone when it exits)."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from nft_sync_repeated import RealNftKernel, replay_sync_repeated\n"
            "k = RealNftKernel(); replay_sync_repeated(k); print('transactions', k.transactions)\n") % str(tests)
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tests.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "transactions 14"  # 13 syncs, 2 of them with nothing to write, + 3 cleanups


def test_sync_proxy_rules_startup_writes_only_what_the_table_lacks():
    """TestSyncProxyRulesStartup: a restarted kube-proxy finds its table; its first (full) sync
    keeps the elements and endpoint chains already there."""
    secs = sections("nftables-sync-startup.txt")
    base = sections("nftables-sync-repeated-steps.txt")["baseRules"]
    cfg = CONFIG
    empty = FakeNft()
    first = render([], [], cfg, existing_chains=[], existing_sets=[], existing_elements={})
    empty.run(first.raw_text())
    setup_ops = first.operations

    fake = FakeNft()
    fake.parse_dump((base + secs["existing"]).replace("0x4000", "0x00004000"))
    services = [service("ns1", "svc1", "172.30.0.41", 80), service("ns2", "svc2", "172.30.0.42", 8080),
                service("ns3", "svc3", "172.30.0.43", 80)]
    slices = [endpoint_slice("ns1", "svc1", 80, "10.0.1.1", "10.0.1.2"), endpoint_slice("ns2", "svc2", 8080, "10.0.2.1")]
    rs = render(services, slices, cfg, existing_chains=fake.list_chains(), existing_sets=fake.list_sets(),
                existing_elements=fake.elements())
    fake.run(rs.raw_text())
    assert_table(base + secs["expected"], fake.dump(), "after the first sync")
    assert rs.operations == setup_ops + 14, rs.raw_text()
    # a fresh node gets everything: the same table
    fresh = FakeNft()
    fresh.run(render(services, slices, cfg).raw_text())
    assert_table(base + secs["expected"], fresh.dump(), "fresh node")


def _metric_service(itp: str | None, etp: str | None):
    spec: dict = {"clusterIP": "172.30.1.1", "selector": {"foo": "bar"},
                  "ports": [{"name": "", "port": 80, "protocol": "TCP", "nodePort": 123}]}
    if itp:
        spec["internalTrafficPolicy"] = itp
    if etp:
        spec["type"] = "NodePort"
        spec["externalTrafficPolicy"] = etp
    else:
        spec["type"] = "ClusterIP"
    return parse_service(Document("test", {"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": "svc1", "namespace": "ns1"}, "spec": spec}))


def _metric_slice(endpoints: list[tuple[str, str]]):
    return parse_endpoint_slice(Document("test", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "svc1-1", "namespace": "ns1", "labels": {"kubernetes.io/service-name": "svc1"}},
        "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node} for ip, node in endpoints]}))


LOCAL = [("10.0.1.1", "test-node"), ("10.0.1.2", "node1"), ("10.0.1.3", "node2")]
REMOTE = [("10.0.1.1", "node0"), ("10.0.1.2", "node1"), ("10.0.1.3", "node2")]


@pytest.mark.parametrize("itp, etp, endpoints, internal, external", [
    pytest.param("Local", None, LOCAL, 0, 0, id="internalTrafficPolicy is set and there are local endpoints"),
    pytest.param(None, "Local", LOCAL, 0, 0, id="externalTrafficPolicy is set and there are local endpoints"),
    pytest.param("Local", "Local", LOCAL, 0, 0, id="both policies are set and there are local endpoints"),
    pytest.param("Local", None, REMOTE, 1, 0, id="internalTrafficPolicy is set and there are no local endpoints"),
    pytest.param(None, "Local", REMOTE, 0, 1, id="externalTrafficPolicy is set and there are no local endpoints"),
    pytest.param("Local", "Local", REMOTE, 1, 1, id="both policies are set and there are no local endpoints"),
    pytest.param("Local", "Local", [], 0, 0, id="both policies are set and there are no endpoints at all"),
])
def test_no_endpoints_metric(itp, etp, endpoints, internal, external):
    """TestNoEndpointsMetric: sync_proxy_rules_no_local_endpoints_total{internal,external}."""
    node = NftNode()
    node.services = {"svc1": _metric_service(itp, etp)}
    node.slices = {"svc1": _metric_slice(endpoints)}
    r = node.sync()
    assert r.ok
    assert node.proxier.metrics.sync_proxy_rules_no_local_endpoints_total == {"internal": internal, "external": external}


def test_failed_sync_counts_forgets_stale_chains_and_forces_a_full_sync():
    node = NftNode()
    node.services = {"a": service("ns", "a", "172.30.0.1", 80), "b": service("ns", "b", "172.30.0.2", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.0.0.1"), "b": endpoint_slice("ns", "b", 80, "10.0.0.2")}
    assert node.sync().ok
    del node.services["b"]
    r = node.sync()
    assert r.ok and not r.full and len(node.proxier.mode_state.stale_chains) == 2
    before = node.kernel.dump()
    state = node.proxier.mode_state

    def refuse(text: str) -> None:
        raise RuntimeError("Error: Could not process rule: Device or resource busy")

    node.services["c"] = service("ns", "c", "172.30.0.3", 80)
    r = node.proxier.sync(node.services.values(), node.slices.values(), lambda rs: rs.apply_with(refuse),
                          list_chains=node.kernel.names, now=node.now + 0.1)
    assert not r.ok and "Device or resource busy" in r.error
    m = node.proxier.metrics
    assert m.sync_proxy_rules_nftables_sync_failures_total == 1
    assert m.sync_proxy_rules_iptables_restore_failures_total == 0  # iptables' metric is not nftables'
    assert node.kernel.dump() == before
    assert node.proxier.mode_state is state and state.stale_chains == {}  # upstream clears staleChains
    r = node.sync()
    assert r.ok and r.full and r.reason == "after a failed sync"
    assert "172.30.0.3" in node.kernel.dump()


def test_cleanup_failure_is_counted_and_the_sync_goes_on():
    node = NftNode()
    node.services = {"a": service("ns", "a", "172.30.0.1", 80), "b": service("ns", "b", "172.30.0.2", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.0.0.1"), "b": endpoint_slice("ns", "b", 80, "10.0.0.2")}
    node.sync()
    del node.services["b"]
    node.sync()
    node.age_stale_chains()
    calls: list[str] = []

    def run(text: str) -> None:
        calls.append(text)
        if text.startswith("delete chain"):
            raise RuntimeError("Error: Could not process rule: Device or resource busy")
        node.kernel.run(text)

    node.services["c"] = service("ns", "c", "172.30.0.3", 80)
    r = node.proxier.sync(node.services.values(), node.slices.values(), lambda rs: rs.apply_with(run),
                          list_chains=node.kernel.names, now=node.now + 0.1)
    assert r.ok and len(calls) == 2 and r.ruleset.cleanup_error.startswith("Error: Could not process rule")
    assert node.proxier.metrics.sync_proxy_rules_nftables_cleanup_failures_total == 1
    # the chains are still in the table: listed again, they are stale again (deleted a second later)
    assert set(node.proxier.mode_state.stale_chains) == {c for c in node.kernel.names() if "/b/" in c}


def test_metrics_count_what_the_table_holds_and_what_a_sync_wrote():
    node = NftNode()
    node.services = {f"s{i}": service("ns", f"s{i}", f"172.30.0.{i + 1}", 80) for i in range(20)}
    node.slices = {f"s{i}": endpoint_slice("ns", f"s{i}", 80, f"10.1.0.{i + 1}", f"10.2.0.{i + 1}") for i in range(20)}
    full = node.sync()
    node.slices["s7"] = endpoint_slice("ns", "s7", 80, "10.9.0.1", "10.9.0.2", "10.9.0.3")
    part = node.sync()
    assert full.full and not part.full and part.updated_services == {"ns/s7"}
    m = node.proxier.metrics
    # what the partial sync wrote: s7's service chain (add, flush, 2 rules) and 3 endpoint chains
    # (add, flush, 2 rules each); 2 old endpoint chains flushed; no element changed
    assert m.rules_last == {"operations": 4 + 12 + 2, "rules": 2 + 6, "elements": 0, "chains": 2 + 6 + 2}
    assert m.operations_last == part.operations == part.lines == 18
    assert m.sync_proxy_rules_iptables_last is m.rules_last  # the iptables name is an alias
    total = part.ruleset.rules_total()
    fake = node.kernel.nft
    assert total["chains"] == len(fake.chains)
    assert total["rules"] == sum(len(c.rules) for c in fake.chains.values())
    assert total["elements"] == sum(len(s.elements) for s in fake.sets.values())
    assert total["sets"] == len(fake.sets)
    assert total == full.ruleset.rules_total() | {"chains": total["chains"], "rules": total["rules"]}
    assert "nft operations" in part.summary() and "18 nft operations" in part.summary()


def test_iptables_mode_is_unchanged_by_the_mode_state():
    """The iptables mode has no state: its Proxier passes none, and its metrics keep their names."""
    p = Proxier(ProxyConfig(node_name="n"))
    assert p.mode.name == "iptables" and p.mode_state is None
    r = p.sync([service("ns", "a", "172.30.0.1", 80)], [endpoint_slice("ns", "a", 80, "10.0.0.1")], lambda rs: None, now=1.0)
    assert r.ok and set(p.metrics.sync_proxy_rules_iptables_last) == {"filter", "nat"}
    assert r.operations == r.lines == r.ruleset.raw_text().count("\n")


# ---- random clusters: every sync loads, and a partial sync leaves a full sync's table -----------

def _random_cluster(rng, n: int):
    from kslab.model import Endpoint, EndpointPort, EndpointSlice, LoadBalancerIngress, Service, ServicePort

    services, slices = [], []
    for i in range(n):
        kind = rng.choice(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer"])
        ports = [ServicePort(port=80, name="http", protocol="TCP", node_port=30000 + i if kind != "ClusterIP" else 0)]
        if rng.random() < 0.3:
            ports.append(ServicePort(port=53, name="dns", protocol=rng.choice(["UDP", "SCTP"]),
                                     node_port=31000 + i if kind != "ClusterIP" else 0))
        svc = Service(name=f"s{i}", namespace="ns", type=kind, cluster_ip=f"172.30.1.{i + 1}", ports=ports,
                      external_ips=[f"192.168.99.{i + 1}"] if rng.random() < 0.2 else [],
                      external_traffic_policy=rng.choice(["Cluster", "Local"]) if kind != "ClusterIP" else "",
                      internal_traffic_policy=rng.choice(["", "", "Local"]),
                      session_affinity=rng.choice(["None", "None", "ClientIP"]),
                      session_affinity_timeout=rng.choice([None, 60]))
        if kind == "LoadBalancer":
            svc.load_balancer_ingress = [LoadBalancerIngress(ip=f"5.6.{i}.1")]
            if rng.random() < 0.5:
                svc.load_balancer_source_ranges = rng.choice([["203.0.113.0/25"], ["192.168.0.0/24", "10.9.0.0/16"]])
        services.append(svc)
        eps = [Endpoint(addresses=[f"10.{i % 200}.{j}.{rng.randint(1, 9)}"], node_name=rng.choice(["test-node", "other"]),
                        ready=rng.random() < 0.85, serving=True, terminating=rng.random() < 0.2)
               for j in range(rng.choice([0, 1, 2, 3]))]
        slices.append(EndpointSlice(name=f"s{i}-x", namespace="ns", service_name=f"s{i}", endpoints=eps,
                                    ports=[EndpointPort(port=8080, name="http", protocol="TCP"),
                                           EndpointPort(port=53, name="dns", protocol=ports[-1].protocol) if len(ports) > 1
                                           else EndpointPort(port=9, name="unused", protocol="TCP")]))
    return services, slices


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_partial_syncs_converge_to_a_fresh_full_sync(seed):
    import random

    rng = random.Random(seed)
    services, slices = _random_cluster(rng, 12)
    node = NftNode()
    node.services = {s.name: s for s in services}
    node.slices = {s.service_name: s for s in slices}
    assert node.sync().ok
    for step in range(8):
        more, more_slices = _random_cluster(random.Random(seed * 100 + step), 12)
        for _ in range(rng.randint(1, 3)):  # replace, drop or add a few Services / EndpointSlices
            i = rng.randrange(12)
            what = rng.random()
            if what < 0.4:
                node.slices[f"s{i}"] = more_slices[i]
            elif what < 0.7:
                node.services[f"s{i}"] = more[i]
            elif what < 0.85:
                node.services.pop(f"s{i}", None)
            else:
                node.slices.pop(f"s{i}", None)
        if rng.random() < 0.3:
            node.age_stale_chains()
        r = node.sync()
        assert r.ok and not r.full, r.error
        fresh = FakeNft()
        full = render(list(node.services.values()), list(node.slices.values()), CONFIG)
        fresh.run(full.raw_text())
        stale = set(node.proxier.mode_state.stale_chains)
        assert stale == {c for c in node.kernel.names() if "/" in c and not c.startswith("affinity-")} - full.active_chains
        got = node.kernel.nft
        for c in stale:  # flushed, waiting to be deleted
            assert got.chains[c].rules == []
        kept = FakeNft()
        kept.run(got.dump())
        for c in stale:
            del kept.chains[c]
        assert sort_nft_transaction(kept.dump()) == sort_nft_transaction(fresh.dump()), (seed, step)
        assert r.ruleset.rules_total()["elements"] == sum(len(s.elements) for s in got.sets.values())
        assert r.ruleset.rules_total()["rules"] == sum(len(c.rules) for c in got.chains.values())


@pytest.mark.parametrize("seed", range(4))
def test_rule_count_mirror_equals_what_a_full_sync_writes(seed):
    """A partial sync that skips a service port it has no count for counts its rules by the
    mirror (_rule_count): the totals equal a full sync's."""
    import random

    from kslab.proxy.nftables import NftSyncState

    services, slices = _random_cluster(random.Random(seed), 12)
    full = render(services, slices, CONFIG)
    blind = render(services, slices, CONFIG, partial_services=set(), state=NftSyncState(flushed=True))
    assert blind.partial and not any(op.kind == "rule" for op in blind.ops)
    assert blind.rules_total()["rules"] == full.rules_total()["rules"]
    assert blind.rules_total()["chains"] == full.rules_total()["chains"]


def test_a_full_sync_repairs_what_someone_else_changed_in_the_table():
    """Elements kube-proxy believes are there but someone deleted (or a map flushed by hand):
    a partial sync does not notice; the next full sync (forced, or the hourly one) writes every
    element again."""
    node = NftNode()
    node.services = {"a": service("ns", "a", "172.30.0.1", 80), "b": service("ns", "b", "172.30.0.2", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.0.0.1"), "b": endpoint_slice("ns", "b", 80, "10.0.0.2")}
    node.sync()
    healthy = node.kernel.dump()
    node.kernel.run("flush map ip kube-proxy service-ips\n")
    assert node.sync().operations == 0 and node.kernel.dump() != healthy
    node.now += 3600.0  # FullSyncPeriod
    r = node.sync()
    assert r.full and r.reason == "hourly" and node.kernel.dump() == healthy
