"""Sim vs kernel around kube-proxy's nftables mode, beyond the connections (test_fidelity.py):
what a proxy-mode switch leaves in the node's iptables tables (iptables' ``CleanupLeftovers``
in both backends, :meth:`kslab.proxy.iptables.node.NodeIptables.cleanup_leftovers` on sim), and
``lab.delete_rules`` in nftables mode (the same rules selected and deleted, the same
``nft list`` afterwards). Needs root and nft (skipped otherwise)."""

from __future__ import annotations

import pytest

from kslab.lab import HAIRPIN_RULES_NFT
from kslab.nft import kernel as nft_kernel

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def pair(sim_and_kernel):
    if (why := nft_kernel.nft_problem()) is not None:
        pytest.skip(why)
    with sim_and_kernel(41) as labs:
        yield labs


def nodes_of(lab) -> list[str]:
    return [n.name for n in lab.cluster.nodes]


def tables(saved: str) -> dict[str, str]:
    """``iptables-save`` text per table (the kernel's dump and kslab's print tables in different orders)."""
    out: dict[str, str] = {}
    for section in saved.split("*")[1:]:
        out[section.split("\n", 1)[0]] = section
    return out


def test_iptables_save_after_mode_switches_equals_the_kernels(pair):
    """iptables -> nftables -> iptables -> nftables: after each switch every node's
    ``iptables-save`` on sim is the kernel's (nftables mode keeps KUBE-MARK-MASQ, the canaries,
    KUBE-PROXY-FIREWALL and kubelet's KUBE-FIREWALL with its jumps), and so is ``nft list``."""
    sim, kernel = pair
    for node in nodes_of(sim):
        assert tables(sim.save_text(node)) == tables(kernel.save_text(node))
    try:
        for mode in ("nftables", "iptables", "nftables"):
            sim.set_proxy(mode=mode)
            kernel.set_proxy(mode=mode)
            for node in nodes_of(sim):
                saved = kernel.save_text(node)
                assert tables(sim.save_text(node)) == tables(saved), (mode, node)
                assert sim.nft_list(node) == kernel.nft_list(node), (mode, node)
                if mode == "nftables":
                    assert ":KUBE-MARK-MASQ - [0:0]" in saved and ":KUBE-PROXY-FIREWALL - [0:0]" in saved
                    assert ":KUBE-SERVICES" not in saved and "KUBE-SVC-" not in saved
    finally:
        sim.set_proxy(mode="iptables")
        kernel.set_proxy(mode="iptables")


def test_delete_rules_in_nftables_mode_equal_on_sim_and_kernel(pair):
    """``lab.delete_rules`` in nftables mode: the same count on both backends, the same ``nft
    list`` afterwards (sim == kernel), the hairpin broken on the kernel too; a full sync restores."""
    sim, kernel = pair
    try:
        sim.set_proxy(mode="nftables")
        kernel.set_proxy(mode="nftables")
        nodes = nodes_of(sim)
        before = {n: kernel.nft_list(n) for n in nodes}
        assert {n: sim.nft_list(n) for n in nodes} == before
        deleted = kernel.delete_rules(HAIRPIN_RULES_NFT, nodes=["myk8s-worker", "myk8s-worker2"])
        assert deleted > 0 and sim.delete_rules(HAIRPIN_RULES_NFT, nodes=["myk8s-worker", "myk8s-worker2"]) == deleted
        for n in nodes:
            assert sim.nft_list(n) == kernel.nft_list(n), n
        assert kernel.nft_list("myk8s-worker") != before["myk8s-worker"] and kernel.nft_list("myk8s-control-plane") == before["myk8s-control-plane"]
        assert kernel.delete_rules(r"^masquerading masquerade fully-random$") == sim.delete_rules(r"^masquerading masquerade fully-random$") == len(nodes)
        for n in nodes:
            assert sim.nft_list(n) == kernel.nft_list(n) and "masquerade fully-random" not in kernel.nft_list(n)
        kernel.resync(full=True)
        sim.resync(full=True)
        assert {n: kernel.nft_list(n) for n in nodes} == {n: sim.nft_list(n) for n in nodes} == before
    finally:
        sim.set_proxy(mode="iptables")
        kernel.set_proxy(mode="iptables")


def test_lab_metrics_on_the_kernel(pair):
    """``lab.metrics(node)`` on netns: the node's Proxier's syncs (loaded with nft -f or
    iptables-restore in the kernel), in Prometheus' text format."""
    _, kernel = pair
    node = "myk8s-worker"
    m = kernel.metrics(node)
    before, seen = m.sync_proxy_rules_duration_seconds.count, len(kernel.syncs)
    assert before >= 1 and m.mode == kernel.proxy_mode
    kernel.scale("deploy-echo", 4)
    try:
        new = [s for s in kernel.syncs[seen:] if s.node == node]
        assert kernel.metrics(node).sync_proxy_rules_duration_seconds.count == before + len(new) > before
        assert m.sync_proxy_rules_last_timestamp_seconds > 0 and m.partial_syncs >= len([s for s in new if not s.full])
    finally:
        kernel.scale("deploy-echo", 3)
    text = m.prometheus_text()
    assert f'kubeproxy_sync_proxy_rules_duration_seconds_count{{ip_family="IPv4"}} {m.sync_proxy_rules_duration_seconds.count}' in text
