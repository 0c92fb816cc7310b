"""kslab.proxy.rulecount: the per-service-port formulas equal the renderer's line counts.

A grid of Service types x internal/external traffic policy x 0/1/3/1001 endpoints (some on the
node, some not) x session affinity x loadBalancerSourceRanges: for each, the lines one Service
adds to the rendered restore input (rendered with it minus rendered without it) must equal
``service_rules``; ``count_rules`` of a rendered ruleset sums to its lines; large-cluster mode
(TestSyncProxyRulesLargeClusterMode) drops exactly the per-endpoint comments.
"""

from __future__ import annotations

import itertools
import re

import pytest

from kslab.errors import InputError
from kslab.proxy import rulecount
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import constants as C
from kslab.proxy.iptables import render
from kslab.proxy.proxier import Proxier
from kslab.proxy.nftables import render as nft_render
from kslab.proxy.rulecount import RuleCount, count_rules, growth, iptables_fixed, nft_fixed, service_rules
from kslab.proxy.serviceport import service_port_infos
from kslab.synthetic import add_service, synthetic_cluster

NODE = "node-1"
TYPES = ("ClusterIP", "ClusterIP+externalIPs", "NodePort", "LoadBalancer", "LoadBalancer+sourceRanges",
         "LoadBalancer+sourceRanges(node)")


def lines(rs) -> int:
    return rs.raw_text().count("\n")


def make(kind: str, endpoints: int, local: int, itp: str, etp: str, affinity: bool):
    """A 2-node cluster with one Service ``web`` of ``kind``; ``local`` of its endpoints on the node."""
    state = synthetic_cluster(0, 0, node=NODE, nodes=2)
    base = kind.split("+")[0]
    spec: dict = {"internal_traffic_policy": itp}
    if base != "ClusterIP":
        spec["external_traffic_policy"] = etp
    if affinity:
        spec["session_affinity"] = "ClientIP"
    if "externalIPs" in kind:
        spec["external_ips"] = ["192.0.2.10", "192.0.2.11"]
    if "sourceRanges(node)" in kind:
        spec["load_balancer_source_ranges"] = ["203.0.113.0/25", "172.18.0.0/16"]  # holds the node's IP
    elif "sourceRanges" in kind:
        spec["load_balancer_source_ranges"] = ["203.0.113.0/25"]
    if base == "LoadBalancer" and etp == "Local":
        spec["health_check_node_port"] = 32000
    add_service(state, "web", endpoints, type=base, **spec)
    eps = state.endpoint_slices[-1].endpoints
    for j, ep in enumerate(eps):
        ep.node_name = NODE if j < local else f"{NODE}-peer1"
    return state


GRID = [(kind, e, loc, itp, etp, aff)
        for kind, (e, loc), itp, etp, aff in itertools.product(
            TYPES, [(0, 0), (1, 0), (1, 1), (3, 0), (3, 1), (1001, 2)], ("Cluster", "Local"), ("Cluster", "Local"),
            (False, True))
        if not (kind.startswith("ClusterIP") and etp == "Local")]


@pytest.mark.parametrize("kind", TYPES)
def test_formula_equals_rendered_lines_on_the_grid(kind):
    cases = [c for c in GRID if c[0] == kind]
    assert cases
    for _, e, loc, itp, etp, aff in cases:
        state = make(kind, e, loc, itp, etp, aff)
        cfg = ProxyConfig.for_node(state, NODE)
        rs = render(state.services, state.endpoint_slices, cfg)
        empty = render([], [], cfg)
        assert lines(empty) == iptables_fixed(cfg).lines
        info = service_port_infos(state.services[0])[0]
        got = service_rules(info, e, local_endpoints=loc, config=cfg, large_cluster=rs.large_cluster_mode)
        assert got.lines == lines(rs) - lines(empty), (kind, e, loc, itp, etp, aff, got)
        assert got.filter == len(rs.filter) - len(empty.filter)
        assert got.nat == len(rs.nat) - len(empty.nat)
        assert got.chains == len(rs.filter.chains) + len(rs.nat.chains) - len(empty.filter.chains) - len(empty.nat.chains)
        table = count_rules(rs)
        assert table["lines"].sum() == lines(rs)
        assert rs.large_cluster_mode == (e > 1000)
        assert got.endpoint_comments == endpoint_comments(rs.raw_text())


@pytest.mark.parametrize("kind", TYPES)
def test_nft_formula_equals_rendered_operations_on_the_grid(kind):
    for _, e, loc, itp, etp, aff in [c for c in GRID if c[0] == kind]:
        state = make(kind, e, loc, itp, etp, aff)
        cfg = ProxyConfig.for_node(state, NODE, mode="nftables")
        rs = nft_render(state.services, state.endpoint_slices, cfg)
        empty = nft_render([], [], cfg)
        assert empty.operations == nft_fixed(cfg).operations
        info = service_port_infos(state.services[0])[0]
        got = service_rules(info, e, local_endpoints=loc, config=cfg, mode="nftables")
        assert got.operations == rs.operations - empty.operations, (kind, e, loc, itp, etp, aff, got)
        ops = rs.ops
        assert got.rules == sum(op.kind == "rule" for op in ops) - sum(op.kind == "rule" for op in empty.ops)
        assert got.elements == sum(op.kind == "element" for op in ops) - sum(op.kind == "element" for op in empty.ops)
        assert got.sets == sum(op.kind == "set" and op.name.startswith("affinity-") for op in ops)
        assert got.chains == (sum(op.kind == "chain" and op.verb == "add" for op in ops)
                              - sum(op.kind == "chain" and op.verb == "add" for op in empty.ops))
        table = count_rules(rs)
        assert table["operations"].sum() == rs.operations == rs.raw_text().count("\n")


def test_nft_count_rules_on_partial_syncs():
    state = synthetic_cluster(6, 3, node=NODE, types=("ClusterIP", "NodePort", "LoadBalancer"))
    cfg = ProxyConfig.for_node(state, NODE, mode="nftables")
    proxier = Proxier(cfg)
    full = proxier.sync(state.services, state.endpoint_slices, lambda rs: None, now=0.0)
    assert count_rules(full.ruleset)["operations"].sum() == full.ruleset.operations
    noop = proxier.sync(state.services, state.endpoint_slices, lambda rs: None, now=1.0)
    assert noop.ruleset.operations == 0 and count_rules(noop.ruleset)["operations"].sum() == 0
    state.endpoint_slices[1].endpoints.pop()  # a NodePort Service loses an endpoint
    state.endpoint_slices[5].endpoints.clear()  # a LoadBalancer Service loses all of them
    part = proxier.sync(state.services, state.endpoint_slices, lambda rs: None, list_chains=lambda: sorted(
        full.ruleset.active_chains), now=2.0)
    table = count_rules(part.ruleset)
    assert table["operations"].sum() == part.ruleset.operations
    written = table[table["written"] & ~table["service_port"].str.startswith("(")]
    assert set(written["service_port"]) == {"bench/svc00001:http", "bench/svc00005:http"}
    assert table.loc[table["service_port"] == "(stale chains)", "operations"].item() == 1 + 3 + 2  # flushes


def endpoint_comments(text: str) -> int:
    """Per-endpoint comments: on KUBE-SEP rules, and the ``-> ip:port`` ones of KUBE-SVC/SVL rules."""
    n = 0
    for line in text.splitlines():
        if line.startswith("-A KUBE-SEP-") and "--comment" in line:
            n += 1
        elif line.startswith(("-A KUBE-SVC-", "-A KUBE-SVL-")) and " -> " in line:
            n += 1
    return n


@pytest.mark.parametrize("cfg_kw", [
    {"masquerade_all": True},
    {"cluster_cidr": None},
    {"nodeport_addresses": ("172.18.0.0/16",)},
    {"nodeport_addresses": ("127.0.0.0/8", "172.18.0.0/16")},
    {"conntrack_tcp_liberal": True, "nfacct": False},
    {"detect_local_mode": "None"},
])
def test_formula_follows_the_proxy_flags(cfg_kw):
    for kind in ("ClusterIP", "NodePort", "LoadBalancer+sourceRanges(node)"):
        for etp in ("Cluster", "Local"):
            if kind == "ClusterIP" and etp == "Local":
                continue
            state = make(kind, 3, 1, "Cluster", etp, False)
            cfg = ProxyConfig.for_node(state, NODE, **cfg_kw)
            rs = render(state.services, state.endpoint_slices, cfg)
            empty = render([], [], cfg)
            assert iptables_fixed(cfg).lines == lines(empty)
            info = service_port_infos(state.services[0])[0]
            assert service_rules(info, 3, local_endpoints=1, config=cfg).lines == lines(rs) - lines(empty), (kind, etp, cfg_kw)


def test_large_cluster_mode_drops_exactly_the_per_endpoint_comments(monkeypatch):
    """The same cluster rendered below and above the threshold: the texts differ by exactly
    the per-endpoint comments (the KUBE-SEP ones and the ``->`` ones of the ladder)."""
    state = synthetic_cluster(5, 3, node=NODE)
    add_service(state, "sticky", 4, session_affinity="ClientIP")
    cfg = ProxyConfig.for_node(state, NODE)
    normal = render(state.services, state.endpoint_slices, cfg)
    assert not normal.large_cluster_mode
    monkeypatch.setattr(C, "LARGE_CLUSTER_ENDPOINTS_THRESHOLD", 10)
    from kslab.proxy.iptables import proxier as ipt_proxier

    monkeypatch.setattr(ipt_proxier.C, "LARGE_CLUSTER_ENDPOINTS_THRESHOLD", 10)
    large = render(state.services, state.endpoint_slices, cfg)
    assert large.large_cluster_mode
    stripped = re.sub(r'-m comment --comment (?:"[^"]* -> [^"]*"|[^ "]+) (?=.*)', "",
                      "\n".join(line if line.startswith(("-A KUBE-SEP-", "-A KUBE-SVC-", "-A KUBE-SVL-")) else line
                                for line in normal.raw_text().splitlines()))
    # the masquerade rule of KUBE-SVC keeps its "cluster IP" comment in both
    assert stripped + "\n" == large.raw_text()
    n = endpoint_comments(normal.raw_text())
    assert n == count_rules(normal)["endpoint_comments"].sum() == 5 * (3 + 2 * 3) + (2 * 4 + 2 * 4)
    assert endpoint_comments(large.raw_text()) == count_rules(large)["endpoint_comments"].sum() == 0
    assert lines(normal) == lines(large)  # same lines, fewer bytes
    assert len(large.raw_text()) < len(normal.raw_text())


def test_count_rules_on_partial_syncs_and_stale_chains():
    state = synthetic_cluster(6, 3, node=NODE, types=("ClusterIP", "NodePort"))
    cfg = ProxyConfig.for_node(state, NODE)
    proxier = Proxier(cfg)
    kernel: set[str] = set()

    def apply(rs):
        kernel.update(rs.nat.chains)
        kernel.difference_update(rs.deleted_chains)

    full = proxier.sync(state.services, state.endpoint_slices, apply, list_nat_chains=lambda: sorted(kernel), now=0.0)
    assert count_rules(full.ruleset)["lines"].sum() == full.lines
    # one Service loses an endpoint, another is deleted: a partial sync with stale chains
    state.endpoint_slices[2].endpoints.pop()
    gone = state.services.pop(4)
    state.endpoint_slices = [s for s in state.endpoint_slices if s.service_name != gone.name]
    part = proxier.sync(state.services, state.endpoint_slices, apply, list_nat_chains=lambda: sorted(kernel), now=1.0)
    assert not part.full and part.deleted_chains
    table = count_rules(part.ruleset)
    assert table["lines"].sum() == part.lines
    written = table[table["written"] & ~table["service_port"].str.startswith("(")]
    assert list(written["service_port"]) == ["bench/svc00002:http"]
    assert table.loc[table["service_port"] == "(stale chains)", "chains"].item() == len(part.deleted_chains)


def test_nft_growth_matches_rendered_synthetic_clusters():
    table = growth([0, 3, 40, 120], 10, modes=("nftables",))
    for row in table.itertuples():
        state = synthetic_cluster(row.services, 10)
        cfg = ProxyConfig.for_node(state, "node-1", mode="nftables")
        rs = nft_render(state.services, state.endpoint_slices, cfg)
        assert row.lines == rs.operations, row
        assert row.rules == sum(op.kind == "rule" for op in rs.ops)
        if row.services:
            proxier = Proxier(cfg)
            proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=0.0)
            state.endpoint_slices[0].endpoints.pop()
            part = proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=1.0)
            # one endpoint fewer: its chain (add + flush) and its two rules
            assert row.partial_lines - 4 == part.ruleset.operations
    # flat in N for a partial sync, linear for a full one
    assert table["partial_lines"].iloc[1:].nunique() == 1
    both = growth([1000, 10000], 10)
    ipt, nft = both[both["mode"] == "iptables"], both[both["mode"] == "nftables"]
    assert list(ipt["partial_lines"])[1] > 9 * list(ipt["partial_lines"])[0] / 10 * 9  # O(Services)
    assert list(nft["partial_lines"])[0] == list(nft["partial_lines"])[1]  # O(changes)


def test_growth_matches_rendered_synthetic_clusters():
    table = growth([0, 3, 40, 120], 10, modes=("iptables",))
    for row in table.itertuples():
        state = synthetic_cluster(row.services, 10)
        cfg = ProxyConfig.for_node(state, "node-1")
        rs = render(state.services, state.endpoint_slices, cfg)
        assert row.lines == lines(rs), row
        assert row.rules == rs.rule_count()
        assert row.large_cluster == rs.large_cluster_mode == (row.services * 10 > 1000)
        if row.services:
            proxier = Proxier(cfg)
            proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=0.0)
            state.endpoint_slices[0].endpoints.pop()
            part = proxier.sync(state.services, state.endpoint_slices, lambda r: None, now=1.0)
            # the changed Service lost an endpoint: its KUBE-SEP chain (declaration + 2 rules) and
            # its ladder rule fewer than the formula's
            assert row.partial_lines - 4 == part.lines
    assert list(table["per_service"].unique()) == [1 + 1 + 1 + 10 + 3 * 10]


def test_service_rules_examples_and_bad_input():
    state = make("NodePort", 3, 1, "Cluster", "Local", False)
    cfg = ProxyConfig.for_node(state, NODE)
    info = service_port_infos(state.services[0])[0]
    # NodePort, eTP Local, 3 endpoints, 1 local (the chapter's exercise): KUBE-SERVICES jump,
    # NodePort jump + its 127.0.0.0/8 nfacct twin (localhost NodePorts), masquerade rule, KUBE-EXT
    # (pod short-circuit, masquerade LOCAL, route LOCAL, -> SVL), SVC ladder 3, SVL ladder 1, SEP 2 x 3
    assert cfg.localhost_nodeports
    assert service_rules(info, 3, local_endpoints=1, config=cfg) == RuleCount(
        filter=0, nat=1 + 2 + 1 + 4 + 3 + 1 + 6, chains=1 + 1 + 1 + 3, lines=24, endpoint_comments=3 + 1 + 6)
    with pytest.raises(InputError, match="local_endpoints"):
        service_rules(info, 1, local_endpoints=2, config=cfg)
    with pytest.raises(InputError, match="mode"):
        service_rules(info, 1, mode="ipvs", config=cfg)
    with pytest.raises(InputError, match="services"):
        growth([-1], 10, modes=("iptables",))
    assert rulecount.RuleCount(1, 2, 3, 6, 0) + rulecount.RuleCount(1, 1, 1, 3, 1) == RuleCount(2, 3, 4, 9, 1)
