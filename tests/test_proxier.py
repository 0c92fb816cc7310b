"""kube-proxy's sync loop (kslab.proxy.proxier): full vs partial syncs, stale chains, failures.

The main test replays TestSyncProxyRulesRepeated (kubernetes pkg/proxy/iptables/proxier_test.go)
step by step: the same changes, the same restore text at every sync (upstream's expected
dumps, transcribed in tests/data/kube-proxy/sync-repeated-steps.txt), including the partial
sync that fails because of a dangling jump and the full sync that repairs it. The "kernel" is
kslab's NodeIptables here (tests/sync_repeated.py); tests/test_netns_sync.py replays the same steps in a real one.
"""

from __future__ import annotations

import copy

import pytest
from sync_repeated import CONFIG, Node, SimKernel, endpoint_slice, replay_sync_repeated, service

from kslab.proxy.iptables import render
from kslab.proxy.iptables.node import NodeIptables

def test_sync_repeated_matches_upstream_at_every_step():
    node = replay_sync_repeated(SimKernel())
    failed = node.proxier.history[8]
    assert "-X KUBE-SEP-AYCN5HPXMIRJNJXU" in failed.error and "referenced" in failed.error


def test_partial_sync_writes_less_and_converges_to_a_full_sync():
    """1 changed Service out of 200: the partial sync writes that one's chains (plus every
    KUBE-SERVICES rule), and the kernel ends up equal to a fresh full sync."""
    node = Node()
    for i in range(200):
        node.services[f"s{i}"] = service("ns", f"s{i}", f"172.30.{i // 250}.{i % 250 + 1}", 80)
        node.slices[f"s{i}"] = endpoint_slice("ns", f"s{i}", 80, f"10.1.{i // 250}.{i % 250 + 1}", f"10.2.{i // 250}.{i % 250 + 1}")
    full = node.sync()
    node.slices["s7"] = endpoint_slice("ns", "s7", 80, "10.9.0.1", "10.9.0.2", "10.9.0.3")
    part = node.sync()
    assert full.full and not part.full and part.updated_services == {"ns/s7"}
    last = part.ruleset.iptables_last()
    # KUBE-SERVICES: 200 service rules + tail; fixed 4; s7: SVC 1 masq + 3 jumps, 3 SEPs x 2
    assert last["nat"] == 201 + 4 + 4 + 6
    assert part.deleted_chains == ["KUBE-SEP-" + c for c in sorted(
        x[len("KUBE-SEP-"):] for x in full.ruleset.nat.chains if x.startswith("KUBE-SEP-")
        and any(ep in line for _, line in full.ruleset.nat.rules if line.startswith(f"-A {x} ") for ep in ("10.1.0.8:", "10.2.0.8:")))]
    assert part.lines < full.lines / 4
    total = part.ruleset.iptables_total()
    assert total["nat"] == full.ruleset.iptables_total()["nat"] + 3  # one more endpoint: SVC jump + SEP 2 rules
    in_kernel = sum(len(c.rules) for name, c in node.kernel.state.tables["nat"].chains.items() if name.startswith("KUBE-"))
    assert total["nat"] == in_kernel  # the metric counts what the kernel holds
    fresh = NodeIptables()
    fresh.full_sync(render(node.services.values(), node.slices.values(), CONFIG).raw_text())
    assert node.kernel.save() == fresh.save_text()


def test_hourly_full_sync_and_minimize_off():
    node = Node()
    node.services = {"a": service("ns", "a", "172.30.0.1", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.0.0.1")}
    assert node.sync().full
    assert not node.sync().full
    node.now += 3600
    r = node.sync()
    assert r.full and r.reason == "hourly"
    old = Node(CONFIG)
    old.proxier.minimize_restore = False
    old.services, old.slices = node.services, node.slices
    assert old.sync().full and old.sync().full


def test_forced_full_sync_and_service_change_detection():
    node = Node()
    node.services = {"a": service("ns", "a", "172.30.0.1", 80), "b": service("ns", "b", "172.30.0.2", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, "10.0.0.1"), "b": endpoint_slice("ns", "b", 80, "10.0.0.2")}
    node.sync()
    patched = copy.deepcopy(node.services["b"])
    patched.session_affinity = "ClientIP"
    node.services["b"] = patched
    r = node.sync()
    assert not r.full and r.updated_services == {"ns/b"}
    assert any("--rcheck" in line for _, line in r.ruleset.nat.rules)
    node.proxier.force_full_sync("canary chain vanished")
    r = node.sync()
    assert r.full and r.reason == "canary chain vanished" and r.updated_services == {"ns/a", "ns/b"}


@pytest.mark.parametrize("large", [False, True])
def test_stale_chain_cleanup_throttled_in_large_cluster_mode(large):
    """Large-cluster mode (> 1,000 endpoints) deletes stale chains at most once per syncPeriod."""
    node = Node()
    n_eps = 1001 if large else 3
    node.services = {"a": service("ns", "a", "172.30.0.1", 80), "b": service("ns", "b", "172.30.0.2", 80)}
    node.slices = {"a": endpoint_slice("ns", "a", 80, *[f"10.{1 + i // 250}.0.{i % 250 + 1}" for i in range(n_eps)]),
                   "b": endpoint_slice("ns", "b", 80, "10.99.0.1")}
    node.sync()
    node.slices["b"] = endpoint_slice("ns", "b", 80, "10.99.0.2")
    r = node.sync()  # 2 s later: within syncPeriod (30 s)
    if large:
        assert r.deleted_chains == [] and "KUBE-SEP-" in " ".join(node.kernel.nat_chains())
        node.now += 30
        node.slices["b"] = endpoint_slice("ns", "b", 80, "10.99.0.3")
        r = node.sync()
        assert len(r.deleted_chains) == 2  # the SEPs of 10.99.0.1 and 10.99.0.2
    else:
        assert len(r.deleted_chains) == 1
