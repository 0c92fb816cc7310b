"""kube-proxy's nftables mode in a real kernel: ``nft -f`` transactions in network namespaces
(:mod:`kslab.nft.kernel`, :meth:`kslab.netns.lab.NetnsLab.apply_nft`), read back with the real
``nft list table ip kube-proxy`` and compared with kslab's model of the same table
(:class:`kslab.nft.state.NftState`).

What is checked: a full sync loads and lists back as the model lists it; a partial sync on top
of it too; a refused transaction leaves the table as it was (in the kernel and in the model);
a stale chain is flushed by one sync and deleted by the cleanup transaction of a later one; no
command touches the root namespace; switching a node between iptables and nftables mode removes
the other mode's rules (kube-proxy's ``CleanupLeftovers``). Needs root and nft (skipped
otherwise, with the reason).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from kslab.nft import kernel as nft_kernel
from kslab.xtables import kernel as xt_kernel

pytestmark = pytest.mark.netns
PREFIX = "kslab-test-nft"


@pytest.fixture(autouse=True)
def _needs_nft() -> None:
    if (why := nft_kernel.nft_problem()) is not None:
        pytest.skip(why)


# A small transaction in kube-proxy's shape, declaration before use (tables, sets, maps and
# chains added before any rule or element refers to them), as knftables writes it.
FULL = """\
add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy masquerading
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy reject-chain reject
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add chain ip kube-proxy endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80
add set ip kube-proxy affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add set ip kube-proxy affinity-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr @affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr @affinity-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 goto endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 , 1 : goto endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 }
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 update @affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 { ip saddr }
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
add rule ip kube-proxy endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 update @affinity-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 { ip saddr }
add rule ip kube-proxy endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
"""

# A partial sync: ns1/svc1 loses its second endpoint (the chain flushed: stale), ns2/svc2 appears.
PARTIAL = """\
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
flush chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
flush chain ip kube-proxy endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80
delete set ip kube-proxy affinity-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80
add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
"""

STALE = "endpoint-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80"


def model_listing(*transactions: str) -> str:
    """kslab's model of the table after ``transactions``, listed as nft 1.0.6 lists it."""
    from kslab.nft.state import NftState

    state = NftState()
    for text in transactions:
        state.apply(text)
    return state.list_table("ip", "kube-proxy")


@pytest.fixture
def ns():
    with xt_kernel.scratch_namespace(PREFIX) as name:
        yield name


# --------------------------------------------------------------------------------------------
# kslab.nft.kernel in a scratch namespace


def test_full_sync_loads_and_lists_back_as_the_model_lists_it(ns):
    seconds = nft_kernel.nft_apply(ns, FULL)
    assert 0 < seconds < 30
    listed = nft_kernel.nft_list_table(ns)
    assert listed.startswith("table ip kube-proxy {\n") and "numgen random mod 2 vmap" in listed
    assert listed == model_listing(FULL)
    chains = nft_kernel.nft_chains(ns)
    assert chains[:3] == ["nat-prerouting", "nat-output", "nat-postrouting"] and STALE in chains and len(chains) == 10
    assert nft_kernel.nft_sets(ns) == ["cluster-ips", "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
                                       "affinity-SGOXE6O3-ns1/svc1/tcp/p80__10.180.0.2/80"]  # maps are not sets


def test_partial_sync_on_top_lists_back_as_the_model_lists_it(ns):
    nft_kernel.nft_apply(ns, FULL)
    nft_kernel.nft_apply(ns, PARTIAL)
    listed = nft_kernel.nft_list_table(ns)
    assert listed == model_listing(FULL, PARTIAL)
    assert f"chain {STALE} {{\n\t}}" in listed  # flushed, still there
    assert "affinity-SGOXE6O3" not in listed.replace(STALE, "")  # the stale affinity set went at once
    assert "172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80" in listed


def test_refused_transaction_leaves_the_table_as_it_was(ns):
    nft_kernel.nft_apply(ns, FULL)
    before = nft_kernel.nft_list_table(ns)
    bad = ("add chain ip kube-proxy service-NEW-ns9/svc9/tcp/p80\n"
           "add element ip kube-proxy cluster-ips { 172.30.0.99 }\n"
           "add rule ip kube-proxy services jump endpoint-MISSING-ns9/svc9/tcp/p80__10.180.0.9/80\n")
    with pytest.raises(ValueError, match=r"/dev/stdin:3:.*Error: Could not process rule: No such file or directory: add rule"):
        nft_kernel.nft_apply(ns, bad)
    assert nft_kernel.nft_list_table(ns) == before  # nothing of lines 1-2 either: one transaction
    from kslab.nft.state import NftState

    model = NftState()
    model.apply(FULL)
    with pytest.raises(ValueError):
        model.apply(bad)
    assert model.list_table() == before  # the model refuses it too, and keeps its table


def test_listing_a_missing_table_and_deleting_it(ns):
    assert nft_kernel.nft_list_table(ns) == "" and nft_kernel.nft_chains(ns) == [] and nft_kernel.nft_sets(ns) == []
    assert nft_kernel.delete_table(ns) is False
    nft_kernel.nft_apply(ns, FULL)
    assert nft_kernel.delete_table(ns) is True and nft_kernel.nft_list_table(ns) == ""


def test_a_transaction_past_its_timeout_is_killed(ns):
    with pytest.raises(Exception, match=r"did not finish within 0.001 s \(killed\)"):
        nft_kernel.nft_apply(ns, FULL, timeout=0.001)


def test_missing_nft_names_the_debian_package(monkeypatch):
    from kslab.errors import EnvironmentProblem

    real = xt_kernel.require_tool

    def missing(name: str) -> str:
        if name == "nft":
            raise EnvironmentProblem(f"command {name!r} not found")
        return real(name)

    monkeypatch.setattr(xt_kernel, "require_tool", missing)
    with pytest.raises(EnvironmentProblem, match=r"install the Debian package nftables"):
        nft_kernel.nft_apply("kslab-nowhere", FULL)


def test_no_namespace_no_nft():
    with pytest.raises(AssertionError, match="root namespace"):
        nft_kernel.nft_apply("", FULL)


def test_commands_run_only_inside_namespaces(monkeypatch):
    """Apart from ``ip netns add/del/list`` and ``nft --version``, every command runs under
    ``ip netns exec NS``; the root namespace's nftables and iptables rules are the same after."""
    from kslab.netns import rootcheck

    seen: list[list[str]] = []
    real_nft_run, real_xt_run = nft_kernel._run, xt_kernel._run

    def recording(real):
        def run(argv, **kwargs):
            seen.append(list(argv))
            return real(argv, **kwargs)
        return run

    monkeypatch.setattr(nft_kernel, "_run", recording(real_nft_run))
    monkeypatch.setattr(xt_kernel, "_run", recording(real_xt_run))
    before = rootcheck.snapshot()
    with xt_kernel.scratch_namespace(PREFIX) as name:
        nft_kernel.nft_apply(name, FULL)
        nft_kernel.nft_apply(name, PARTIAL)
        nft_kernel.nft_list_table(name)
        nft_kernel.nft_list_ruleset(name)
        nft_kernel.nft_chains(name)
        nft_kernel.nft_sets(name)
        nft_kernel.nft_run(name, ["list", "ruleset"])
        nft_kernel.delete_table(name)
        nft_kernel.nft_version()
    after = rootcheck.snapshot()
    assert len(seen) >= 11
    for argv in seen:
        if os.path.basename(argv[0]) == "nft":
            assert argv[1:] == ["--version"], argv
            continue
        assert os.path.basename(argv[0]) == "ip", argv
        assert argv[1] == "netns" and argv[2] in ("add", "del", "list", "exec"), argv
        if argv[2] == "exec":
            assert argv[3] == name and os.path.basename(argv[4]) == "nft", argv
    assert rootcheck.diff(before, after) == []


# --------------------------------------------------------------------------------------------
# NetnsLab: a node's syncs, stale chains, mode switches


@dataclass
class HandRuleSet:
    """A sync of the nftables mode as the dataplane sees one (``mode``, ``partial``,
    ``raw_text()``, ``cleanup_ops``): the transactions above, written by hand."""

    raw: str
    partial: bool = False
    cleanup: list[Any] = field(default_factory=list)
    mode: str = "nftables"

    def raw_text(self) -> str:
        return self.raw

    @property
    def cleanup_ops(self) -> list[Any]:
        return self.cleanup


@dataclass(frozen=True)
class DeleteChain:
    name: str

    def text(self, family: str = "ip", table: str = "kube-proxy") -> str:
        return f"delete chain {family} {table} {self.name}"


@pytest.fixture(scope="module")
def node_lab(tmp_path_factory):
    """The study's cluster in namespaces without servers (only the nodes' tables matter here)."""
    from kslab.controlplane import load_cluster
    from kslab.netns.lab import NetnsLab
    from kslab.resources import study_lab

    if (why := nft_kernel.nft_problem()) is not None:
        pytest.skip(why)
    state = load_cluster([str(study_lab())], seed=1)
    with NetnsLab(state, servers=False, directory=tmp_path_factory.mktemp("run"), handle_signals=False) as lab:
        yield lab


NODE = "myk8s-worker"


def iptables_render(lab, node: str):
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.iptables import render

    config = ProxyConfig.for_node(lab.state, node, nfacct=lab.nfacct)
    return render(lab.state.services, lab.state.endpoint_slices, config)


def kube_chains(lab, node: str) -> dict[str, list[str]]:
    ns = lab.layout.node(node).ns
    return {t: [c for c in xt_kernel.chains(ns, t, backend=lab.backend) if c.startswith("KUBE-")] for t in ("nat", "filter")}


def test_stale_chain_flushed_then_deleted_by_a_later_cleanup(node_lab):
    lab = node_lab
    assert lab.apply_nft(NODE, HandRuleSet(FULL)) > 0
    lab.apply_nft(NODE, HandRuleSet(PARTIAL, partial=True))
    assert STALE in lab.nft_chains(NODE) and f"chain {STALE} {{\n\t}}" in lab.nft_list(NODE)
    lab.apply_nft(NODE, HandRuleSet("", partial=True, cleanup=[DeleteChain(STALE)]))
    assert STALE not in lab.nft_chains(NODE)
    assert lab.nft_list(NODE) == model_listing(FULL, PARTIAL, f"delete chain ip kube-proxy {STALE}\n")
    # a cleanup the kernel refuses (the chain is gone already) is counted; the sync itself goes on
    failures = lab.nft_cleanup_failures.get(NODE, 0)
    lab.apply_nft(NODE, HandRuleSet("add element ip kube-proxy cluster-ips { 172.30.0.43 }\n", partial=True,
                                    cleanup=[DeleteChain(STALE)]))
    assert lab.nft_cleanup_failures[NODE] == failures + 1 and "172.30.0.43" in lab.nft_list(NODE)
    assert lab._record.sync_seconds[NODE] > 0


def test_refused_sync_raises_and_keeps_the_nodes_table(node_lab):
    lab = node_lab
    lab.apply_nft(NODE, HandRuleSet(FULL))
    before = lab.nft_list(NODE)
    with pytest.raises(ValueError, match="refused the transaction"):
        lab.apply_nft(NODE, HandRuleSet("add rule ip kube-proxy services goto nowhere\n", partial=True))
    assert lab.nft_list(NODE) == before


def test_mode_switch_removes_the_other_modes_rules(node_lab):
    """iptables -> nftables: iptables' CleanupLeftovers (jumps unlinked, kube-proxy's nat and
    filter chains gone; KUBE-MARK-MASQ and the canaries stay, as upstream leaves them);
    nftables -> iptables: ``table ip kube-proxy`` deleted."""
    lab = node_lab
    node = "myk8s-worker2"
    ns = lab.layout.node(node).ns
    lab.restore(node, iptables_render(lab, node).raw_text(), full=True)
    have = kube_chains(lab, node)
    assert "KUBE-SERVICES" in have["nat"] and any(c.startswith("KUBE-SVC-") for c in have["nat"])
    assert "KUBE-FORWARD" in have["filter"]
    lab.apply_nft(node, HandRuleSet(FULL))
    assert lab.proxy_mode_of(node) == "nftables"
    left = kube_chains(lab, node)
    assert sorted(left["nat"]) == ["KUBE-MARK-MASQ", "KUBE-PROXY-CANARY"]
    assert sorted(left["filter"]) == ["KUBE-FIREWALL", "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL"]
    saved = xt_kernel.iptables_save(ns, ("nat", "filter"), backend=lab.backend)
    assert "-j KUBE-SERVICES" not in saved and "-j KUBE-POSTROUTING" not in saved and "-j KUBE-FORWARD" not in saved
    assert lab.nft_list(node) == model_listing(FULL)
    lab.restore(node, iptables_render(lab, node).raw_text(), full=True)
    assert lab.proxy_mode_of(node) == "iptables" and lab.nft_list(node) == ""
    assert "KUBE-SERVICES" in kube_chains(lab, node)["nat"]
    # and a node whose mode this process never saw (an attached lab) is cleaned on its first full sync
    lab._proxy_modes.pop(node)
    lab.apply_nft(node, HandRuleSet(FULL))
    assert "KUBE-SERVICES" not in kube_chains(lab, node)["nat"]


def test_nft_in_the_nodes_shell(node_lab):
    """``nft list ruleset`` as the study's shell runs it on netns: in the node's namespace."""
    lab = node_lab
    lab.apply_nft(NODE, HandRuleSet(FULL))
    r = nft_kernel.nft_run(lab.layout.node(NODE).ns, ["list", "table", "ip", "kube-proxy"])
    assert r.returncode == 0 and r.stdout == lab.nft_list(NODE)
    r = nft_kernel.nft_run(lab.layout.node(NODE).ns, ["list", "table", "ip", "nope"])
    assert r.returncode == 1 and "No such file or directory" in r.stderr


# --------------------------------------------------------------------------------------------
# The Lab in nftables mode on the kernel: kslab's renderer, the Proxier's syncs, nft -f


@pytest.fixture(scope="module")
def nft_lab():
    from kslab.lab import Lab

    if (why := nft_kernel.nft_problem()) is not None:
        pytest.skip(why)
    with Lab(backend="netns", proxy_mode="nftables", seed=7) as lab:
        yield lab


def replayed(lab, node: str) -> str:
    """kslab's model of ``node``'s table: every sync the Lab loaded there (cleanup transaction,
    then the sync's), applied in order to an empty :class:`NftState`, listed."""
    from kslab.nft.state import NftState

    state = NftState()
    for sync in (s for s in lab.syncs if s.node == node and s.ok):
        if cleanup := sync.ruleset.cleanup_text():
            state.apply(cleanup)
        state.apply(sync.ruleset.raw_text())
    return state.list_table()


def test_lab_full_and_partial_syncs_list_back_as_the_model(nft_lab):
    lab = nft_lab
    nodes = [n.name for n in lab.cluster.nodes]
    assert lab.proxy_mode == "nftables" and all(s.full and s.ok for s in lab.syncs[:len(nodes)])
    for node in nodes:
        listed = lab.nft_list(node)
        assert "chain services {" in listed and listed == replayed(lab, node)
        assert ":KUBE-SERVICES" not in lab.save_text(node)  # no iptables mode rules
    lab.scale("deploy-echo", 5)
    try:
        assert {s.full for s in lab.syncs[-len(nodes):]} == {False}
        for node in nodes:
            assert lab.nft_list(node) == replayed(lab, node)
        assert (lab.run("net-pod", "svc-clusterip", n=200)["outcome"] == "ok").all()
    finally:
        lab.scale("deploy-echo", 3)


def test_lab_stale_service_chains_are_flushed_then_deleted(nft_lab):
    """Scaling down leaves endpoint chains no Service uses: the partial sync flushes them, a sync
    a second or more later deletes them in its cleanup transaction (kernels < 6.2 need the pause)."""
    lab = nft_lab
    node = "myk8s-worker"
    lab.scale("deploy-echo", 5)
    lab.scale("deploy-echo", 3)
    existing = set(lab.dataplane.existing_chains(node, "nftables"))
    stale = {c for c in existing - set(lab.render(node).active_chains) if c.startswith("endpoint-")}
    assert len(stale) >= 2  # the 2 pods gone (svc-nodeport's endpoints), flushed but still there
    listed = lab.nft_list(node)
    assert all(f"chain {c} {{\n\t}}" in listed for c in stale)
    time.sleep(1.1)
    lab.resync(full=False)
    assert not stale & set(lab.dataplane.existing_chains(node, "nftables"))
    assert set(lab.syncs[-1].ruleset.deleted_chains) | set().union(*(s.ruleset.deleted_chains for s in lab.syncs[-4:])) >= stale
    assert lab.nft_list(node) == replayed(lab, node)


def test_lab_refused_sync_keeps_the_table_and_the_next_full_sync_repairs(nft_lab, monkeypatch):
    """A transaction the kernel refuses leaves the node's table as it was; the Proxier records
    the failure and its full sync follows at once (Proxier.sync_and_retry)."""
    from kslab.proxy.nftables import proxier as nft_proxier

    lab = nft_lab
    node = "myk8s-worker3"
    before = lab.nft_list(node)
    real = nft_proxier.NftRuleSet.raw_text
    broken = {"left": 1}

    def once_broken(self):
        text = real(self)
        if broken["left"] and self.config.node_name == node:
            broken["left"] -= 1
            return text + "add rule ip kube-proxy services goto no-such-chain\n"
        return text

    monkeypatch.setattr(nft_proxier.NftRuleSet, "raw_text", once_broken)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=60)
    try:
        results = [s for s in lab.syncs if s.node == node][-2:]
        assert not results[0].ok and "refused the transaction" in results[0].error and results[1].ok and results[1].full
        assert "affinity-" in lab.nft_list(node) and lab.nft_list(node) != before
    finally:
        monkeypatch.undo()
        lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)


def test_lab_mode_switch_both_ways(nft_lab):
    """``set_proxy(mode=...)``: a restarted kube-proxy in the other mode removes the old mode's
    rules (CleanupLeftovers), then syncs in full; connections work in both."""
    lab = nft_lab
    try:
        lab.set_proxy(mode="iptables")
        for node in (n.name for n in lab.cluster.nodes):
            assert lab.nft_list(node) == "" and ":KUBE-SERVICES" in lab.save_text(node)
        assert (lab.run("net-pod", "svc-clusterip", n=100)["outcome"] == "ok").all()
    finally:
        lab.set_proxy(mode="nftables")
    for node in (n.name for n in lab.cluster.nodes):
        saved = lab.save_text(node)
        assert ":KUBE-SERVICES" not in saved and "KUBE-SVC-" not in saved and "chain services {" in lab.nft_list(node)
    assert (lab.run("net-pod", "svc-clusterip", n=100)["outcome"] == "ok").all()


def test_lab_copy_onto_sim_holds_the_kernels_tables(nft_lab):
    """``lab.copy()`` (what checks run on): the sim twin's nodes hold the kernel's nftables tables
    (loaded from ``nft list table``), and a connection goes where it would."""
    twin = nft_lab.copy()
    for node in (n.name for n in nft_lab.cluster.nodes):
        assert twin.nft_list(node) == nft_lab.nft_list(node)
    assert set(twin.run("net-pod", "svc-clusterip", n=60, seed=1)["endpoint_pod"]) == {"webpod1", "webpod2", "webpod3"}


def test_lab_shell_nft_list_ruleset(nft_lab):
    out = nft_lab.sh("myk8s-worker", "nft list table ip kube-proxy")
    assert out.returncode == 0 and str(out) == nft_lab.nft_list("myk8s-worker")


def test_lab_status_counts_the_nft_rules(nft_lab):
    """``kslab netns status``: per node, the rules of ``table ip kube-proxy`` (as the model counts them)."""
    from kslab.nft.state import NftState

    status = nft_lab.dataplane.kernel.status()
    for node in (n.name for n in nft_lab.cluster.nodes):
        model = NftState()
        model.load_listing(nft_lab.nft_list(node))
        assert status.rules[node]["nft"] == model.table().rule_count() > 20
    assert " nft " in status.text()
