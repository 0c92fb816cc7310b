"""How many rules kube-proxy writes, per service port, as formulas — checked against the renderer.

Where chapter 05's "rules grow with Services x endpoints" comes from, without rendering 30,000
Services: the count for one service port depends only on its type (ClusterIP, NodePort,
LoadBalancer with or without ``loadBalancerSourceRanges``, externalIPs), its traffic policies,
session affinity and its number of endpoints (and how many of them are on this node). The
formulas below mirror :func:`kslab.proxy.iptables.proxier.sync_proxy_rules` branch by branch;
``tests/test_rulecount.py`` checks them against the rendered text on a grid of all of these.

iptables mode (:class:`RuleCount`) — per service port, in a full sync:

======================  ==============================================================  =====
what                    when                                                            lines
======================  ==============================================================  =====
KUBE-SERVICES jump      has internal endpoints (else a filter REJECT/DROP rule)         1
masquerade rule         has internal endpoints and (masqueradeAll or a local detector)  1
KUBE-SVC chain          cluster policy used: ``:chain`` + 1 rule per endpoint           1+E
  (ClientIP affinity)   + 1 ``recent --rcheck`` rule per endpoint                       +E
KUBE-SVL chain          local policy used: as KUBE-SVC over the local endpoints         1+L
KUBE-SEP chains         per reachable endpoint: ``:chain`` + masquerade + DNAT          3 each
KUBE-EXT chain          externally reachable with endpoints: ``:chain`` + 1..4 rules    2..5
KUBE-FW chain           LB VIPs with source ranges: ``:chain`` + ranges (+VIPs) + 1     3+
external IPs, LB VIPs   1 nat jump each (+ filter DROP/REJECT without endpoints)
NodePort                1 nat jump (+ the 127.0.0.0/8 nfacct one with localhost NodePorts)
healthCheckNodePort     1 filter ACCEPT
======================  ==============================================================  =====

Large-cluster mode (more than 1,000 endpoints in all) writes the same number of lines but
drops the per-endpoint ``-m comment`` of the KUBE-SVC/SVL and KUBE-SEP rules
(:attr:`RuleCount.endpoint_comments` counts them). A partial sync writes every Service's
top-level rules but only the changed Services' chains (``service_rules(..., written=False)``
is what it writes for an unchanged one).

nftables mode (:class:`NftCount`) counts what kube-proxy's transaction holds: chains, rules,
map/set elements and the number of operations (``nft -f`` lines, knftables' ``NumOperations``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Sequence

from ..errors import InputError
from .config import ProxyConfig
from .serviceport import BaseServicePortInfo
from .util import cidr_contains

MODES = ("iptables", "nftables")
LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000  # largeClusterEndpointsThreshold (iptables mode)


@dataclass(frozen=True)
class RuleCount:
    """iptables-restore input of one service port (or of the fixed part): rules per table,
    ``:CHAIN`` declarations, and the lines they make (rules + declarations); ``endpoint_comments``:
    per-endpoint ``-m comment`` matches among those rules (0 in large-cluster mode)."""

    filter: int = 0
    nat: int = 0
    chains: int = 0
    lines: int = 0
    endpoint_comments: int = 0

    def __add__(self, other: "RuleCount") -> "RuleCount":
        return RuleCount(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scaled(self, k: int) -> "RuleCount":
        return RuleCount(*(getattr(self, f.name) * k for f in fields(self)))


@dataclass(frozen=True)
class NftCount:
    """One service port's share of an nftables transaction: chains and sets it adds, rules,
    map/set elements, and operations (every ``add``/``flush``/``delete`` line of ``nft -f``)."""

    chains: int = 0
    rules: int = 0
    elements: int = 0
    sets: int = 0
    operations: int = 0

    def __add__(self, other: "NftCount") -> "NftCount":
        return NftCount(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scaled(self, k: int) -> "NftCount":
        return NftCount(*(getattr(self, f.name) * k for f in fields(self)))


# ---- iptables -----------------------------------------------------------------------------------

def iptables_fixed(config: ProxyConfig) -> RuleCount:
    """The lines every iptables sync writes whatever the Services: the table headers and
    COMMITs, kube-proxy's own chains, KUBE-FORWARD / KUBE-POSTROUTING / KUBE-MARK-MASQ rules and
    the KUBE-SERVICES -> KUBE-NODEPORTS tail rule(s)."""
    cfg = config
    v4_localhost = cfg.family == 4 and cfg.localhost_nodeports
    filter_chains = 5 + v4_localhost  # KUBE-SERVICES, -EXTERNAL-SERVICES, -FORWARD, -NODEPORTS, -PROXY-FIREWALL (+ KUBE-FIREWALL)
    filter_rules = v4_localhost + (0 if cfg.conntrack_tcp_liberal else 1) + 2
    nat_chains = 4  # KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ
    if cfg.nodeport_addrs.match_all:
        tails = 1
    else:
        import ipaddress

        tails = sum(1 for ip in cfg.nodeport_ips()
                    if not (ipaddress.ip_address(ip).is_loopback and (cfg.family == 6 or not cfg.localhost_nodeports)))
    nat_rules = 3 + 1 + tails
    chains = filter_chains + nat_chains
    return RuleCount(filter_rules, nat_rules, chains, 4 + chains + filter_rules + nat_rules, 0)


def _iptables_port(svc: BaseServicePortInfo, n_cluster: int, n_local: int, n_reachable: int, has_any: bool,
                   cfg: ProxyConfig, large_cluster: bool, written: bool) -> RuleCount:
    """The rules :func:`~kslab.proxy.iptables.proxier.sync_proxy_rules` writes for one service
    port whose categorized endpoints number ``n_cluster`` (cluster policy), ``n_local`` (local
    policy) and ``n_reachable`` (KUBE-SEP chains); ``written=False``: a partial sync's unchanged
    Service (its chains are left out)."""
    ea = svc.externally_accessible()
    has_endpoints = has_any
    uses_cluster_chain = n_cluster > 0 and (ea or not svc.internal_policy_local)
    uses_local_chain = n_local > 0 and svc.uses_local_endpoints()
    has_internal = has_endpoints and not (svc.internal_policy_local and n_local == 0)
    has_external = has_endpoints and not (svc.external_policy_local and n_local == 0)
    uses_ext_chain = has_endpoints and ea
    vips, ranges = len(svc.load_balancer_vips), len(svc.load_balancer_source_ranges)
    uses_fw_chain = has_endpoints and vips > 0 and ranges > 0
    if_local = cfg.if_local() is not None
    filt = nat = chains = comments = 0

    # top-level chains: written in every sync
    if has_internal:
        nat += 1  # KUBE-SERVICES -> internal traffic chain
    else:
        filt += 1  # KUBE-SERVICES REJECT / DROP
    if ea:
        n_ext = len(svc.external_ips)
        nat += n_ext * has_endpoints + vips * has_endpoints
        filt += n_ext * (not has_external) + vips * uses_fw_chain + vips * (not has_external)
        if svc.node_port:
            if has_endpoints:
                nat += 1 + (cfg.localhost_nodeports and cfg.family == 4 and cfg.nfacct)
            if not has_external:
                filt += 1
    if svc.health_check_node_port:
        filt += 1

    if written:
        if has_internal and (cfg.masquerade_all or if_local):
            nat += 1
        if uses_ext_chain:
            chains += 1
            nat += 1 if not svc.external_policy_local else 2 + if_local
            nat += has_external
        if uses_fw_chain:
            node_ip = cfg.node_ip
            allow_from_node = node_ip is not None and any(cidr_contains(c, node_ip) for c in svc.load_balancer_source_ranges)
            chains += 1
            nat += ranges + (vips if allow_from_node else 0) + 1
        per_endpoint = 2 if svc.session_affinity_client_ip else 1
        ladder = n_cluster * uses_cluster_chain + n_local * uses_local_chain
        chains += uses_cluster_chain + uses_local_chain + n_reachable
        nat += per_endpoint * ladder + 2 * n_reachable
        if not large_cluster:
            comments = per_endpoint * ladder + 2 * n_reachable
    return RuleCount(filt, nat, chains, filt + nat + chains, comments)


def _categories(svc: BaseServicePortInfo, endpoints: int, local_endpoints: int) -> tuple[int, int, int, bool]:
    """(cluster, local, reachable, has_any) for ``endpoints`` ready endpoints without topology
    hints, ``local_endpoints`` of them on this node (``CategorizeEndpoints``)."""
    n_cluster = endpoints if svc.uses_cluster_endpoints() else 0
    n_local = local_endpoints if svc.uses_local_endpoints() else 0
    reachable = n_cluster if svc.uses_cluster_endpoints() else n_local
    return n_cluster, n_local, reachable, endpoints > 0


def service_rules(svc: BaseServicePortInfo, endpoints: int, *, local_endpoints: int = 0, mode: str = "iptables",
                  large_cluster: bool = False, config: ProxyConfig, written: bool = True) -> RuleCount | NftCount:
    """What a sync writes for the service port ``svc`` with ``endpoints`` ready endpoints
    (``local_endpoints`` of them on ``config.node_name``): a :class:`RuleCount` (iptables) or an
    :class:`NftCount` (nftables). ``large_cluster``: the node's sync is in large-cluster mode
    (iptables: no per-endpoint comments). ``written=False``: a partial sync that leaves this
    Service alone (iptables: its top-level rules only; nftables: nothing)."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}", "is not a proxy mode", "use iptables or nftables")
    for name, value in (("endpoints", endpoints), ("local_endpoints", local_endpoints)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{name}={value!r}", "is not a count", "give an integer >= 0")
    if local_endpoints > endpoints:
        raise InputError(f"local_endpoints={local_endpoints}", f"is more than endpoints={endpoints}", "give at most endpoints")
    n_cluster, n_local, reachable, has_any = _categories(svc, endpoints, local_endpoints)
    if mode == "nftables":
        return _nft_port(svc, n_cluster, n_local, reachable, has_any, config, written)
    return _iptables_port(svc, n_cluster, n_local, reachable, has_any, config, large_cluster, written)


# ---- nftables -------------------------------------------------------------------------------------

def _nft_port(svc: BaseServicePortInfo, n_cluster: int, n_local: int, n_reachable: int, has_any: bool,
              cfg: ProxyConfig, written: bool, cluster_ip_element: bool = True) -> NftCount:
    """What :func:`kslab.proxy.nftables.sync_nft_rules` adds for one service port in a sync that
    writes every element (a full sync on a fresh node): ``add chain`` + ``flush chain`` per
    chain, its rules, one affinity set per endpoint with ClientIP affinity, and its map/set
    elements. ``written=False``: a partial sync that leaves the Service alone writes nothing
    (its elements are unchanged: the element storage adds no operation)."""
    if not written:
        return NftCount()
    ea = svc.externally_accessible()
    has_endpoints = has_any
    uses_cluster = n_cluster > 0 and svc.uses_cluster_endpoints()
    uses_local = n_local > 0 and svc.uses_local_endpoints()
    has_internal = has_endpoints and not (svc.internal_policy_local and n_local == 0)
    has_external = has_endpoints and not (svc.external_policy_local and n_local == 0)
    uses_external = has_endpoints and ea
    vips, ranges, n_ext = len(svc.load_balancer_vips), len(svc.load_balancer_source_ranges), len(svc.external_ips)
    uses_fw = vips > 0 and ranges > 0  # (unlike iptables, whether or not there are endpoints)
    affinity = svc.session_affinity_client_ip
    chains = n_reachable + uses_cluster + uses_local + uses_external + uses_fw
    elements = int(cluster_ip_element) + 1  # cluster-ips, and service-ips or no-endpoint-services
    elements += n_ext * has_endpoints + n_ext * (not has_external)
    elements += vips * has_endpoints + vips * uses_fw + vips * (not has_external)
    if svc.node_port:
        elements += has_endpoints + (not has_external)
    rules = 1 if has_internal and (cfg.masquerade_all or cfg.if_not_local_nft() is not None) else 0
    if uses_external:
        rules += 1 if not svc.external_policy_local else 2 + (cfg.if_local_nft() is not None)
        rules += has_external
    rules += uses_fw
    for n, used in ((n_cluster, uses_cluster), (n_local, uses_local)):
        if used:
            rules += 1 + (n if affinity else 0)  # numgen vmap (+ the affinity lookups)
    rules += n_reachable * (3 if affinity else 2)
    sets = n_reachable if affinity else 0
    return NftCount(chains, rules, elements, sets, 2 * chains + rules + elements + sets)


def nft_fixed(config: ProxyConfig, *, fresh: bool = True) -> NftCount:
    """The operations of a first full sync whatever the Services (``setupNFTables``: the table,
    base chains recreated, top-level chains and their rules, the sets and maps), counted from
    the renderer's own setup transaction. ``fresh``: on a node without kube-proxy's table
    (:func:`kslab.proxy.nftables.render`); False: kube-proxy's first sync over a table it does
    not know, which also flushes every set and map."""
    from .nftables import sync_nft_rules

    rs = sync_nft_rules([], {}, config, existing_elements={} if fresh else None)
    ops = rs.ops
    return NftCount(chains=sum(op.kind == "chain" and op.verb == "add" for op in ops),
                    rules=sum(op.kind == "rule" for op in ops),
                    elements=sum(op.kind == "element" and op.verb == "add" for op in ops),
                    sets=sum(op.kind in ("set", "map") and op.verb == "add" for op in ops),
                    operations=rs.operations)


# ---- a rendered ruleset, per service port -------------------------------------------------------

def _port_counts(rules: Any) -> tuple[int, int, int, bool]:
    """(cluster, local, reachable, has_any) of a rendered service port (a ServicePortRules)."""
    if getattr(rules, "_categorized", True) is None:  # all endpoints ready, cluster policy (columns)
        n = len(rules._endpoints)
        return n, 0, n, n > 0
    c = rules.categorized
    return len(c.cluster), len(c.local), len(c.all_reachable), bool(c.has_any)


def _policy(local: bool) -> str:
    return "Local" if local else "Cluster"


def count_rules(ruleset: Any) -> "Any":
    """Per service port of a rendered ``ruleset`` (``lab.render(node)``,
    :func:`kslab.proxy.iptables.render`): its type, policies, endpoints and what the formulas
    say the sync wrote for it; plus a ``(fixed)`` row and, if the sync deletes stale chains, a
    ``(stale chains)`` row, so that the ``lines`` column sums to the lines of
    ``ruleset.raw_text()``. ``written`` is False for the Services a partial sync left alone."""
    import pandas as pd

    mode = getattr(ruleset, "mode", "iptables")
    cfg: ProxyConfig = ruleset.config
    if mode == "nftables":
        return _count_nft(ruleset)
    rows = []
    large = bool(ruleset.large_cluster_mode)
    declared = set(ruleset.nat.chains) if ruleset.partial else None
    for rules in ruleset.service_ports:
        info = rules.info
        n_cluster, n_local, reachable, has_any = _port_counts(rules)
        written = declared is None or any(c in declared for c in rules.nat_chains())
        count = _iptables_port(info, n_cluster, n_local, reachable, has_any, cfg, large, written)
        rows.append({
            "service_port": info.name_string, "type": info.service_type,
            "internal_policy": _policy(info.internal_policy_local), "external_policy": _policy(info.external_policy_local),
            "affinity": info.session_affinity_client_ip, "source_ranges": len(info.load_balancer_source_ranges),
            "endpoints": max(n_cluster, reachable), "local_endpoints": n_local, "written": written,
            "filter": count.filter, "nat": count.nat, "chains": count.chains, "lines": count.lines,
            "endpoint_comments": count.endpoint_comments,
        })
    fixed = iptables_fixed(cfg)
    rows.append({"service_port": "(fixed)", "type": "", "written": True, "filter": fixed.filter, "nat": fixed.nat,
                 "chains": fixed.chains, "lines": fixed.lines, "endpoint_comments": 0})
    stale = len(ruleset.deleted_chains)
    if stale:
        rows.append({"service_port": "(stale chains)", "type": "", "written": True, "filter": 0, "nat": 0, "chains": stale,
                     "lines": 2 * stale, "endpoint_comments": 0})
    columns = ["service_port", "type", "internal_policy", "external_policy", "affinity", "source_ranges", "endpoints",
               "local_endpoints", "written", "filter", "nat", "chains", "lines", "endpoint_comments"]
    return _int_columns(pd.DataFrame(rows, columns=columns))


def _int_columns(df: "Any") -> "Any":
    """The per-service-port counts as integers (pandas' nullable Int64 where the summary rows have none)."""
    for c in ("source_ranges", "endpoints", "local_endpoints"):
        df[c] = df[c].astype("Int64")
    return df


def _count_nft(ruleset: Any) -> "Any":
    """:func:`count_rules` of an nftables sync: per service port chains, rules, elements, sets
    and operations; ``(setup)``, ``(stale chains)`` (flushes, affinity-set deletions) and
    ``(leftover elements)`` rows from the transaction itself, so ``operations`` sums to
    ``ruleset.operations``. In a partial sync the elements of a rewritten Service are the
    element storage's differences (what changed since the last sync), read from the
    transaction: they depend on the previous state, not on the Service alone."""
    import pandas as pd

    from .topology import categorize_endpoints

    cfg: ProxyConfig = ruleset.config
    rows = []
    seen_ips: set[str] = set()
    segments = {id(info): (first, end) for info, first, end in ruleset._segments}
    service_ops = ruleset._service_ops
    for rules in ruleset.service_ports:
        info = rules.info
        cat = categorize_endpoints(list(rules.endpoints), info, cfg.node_name, cfg.node_zone, cfg.prefer_same_node)
        span = segments.get(id(info), (0, 0))
        written = not ruleset.partial or bool(rules.chains) or span[1] > span[0]
        first_ip = info.cluster_ip not in seen_ips
        seen_ips.add(info.cluster_ip)
        count = _nft_port(info, len(cat.cluster), len(cat.local), len(cat.all_reachable), bool(cat.has_any), cfg,
                          written, cluster_ip_element=first_ip)
        if ruleset.partial and written:
            elements = sum(op.kind == "element" for op in service_ops[span[0]:span[1]])
            count = NftCount(count.chains, count.rules, elements, count.sets,
                             count.operations - count.elements + elements)
            if not rules.chains:  # only elements changed: its chains were not rewritten
                count = NftCount(0, 0, elements, 0, elements)
        rows.append({
            "service_port": info.name_string, "type": info.service_type,
            "internal_policy": _policy(info.internal_policy_local), "external_policy": _policy(info.external_policy_local),
            "affinity": info.session_affinity_client_ip, "source_ranges": len(info.load_balancer_source_ranges),
            "endpoints": len(cat.cluster) if info.uses_cluster_endpoints() else len(cat.all_reachable),
            "local_endpoints": len(cat.local), "written": written,
            "chains": count.chains, "rules": count.rules, "elements": count.elements, "sets": count.sets,
            "operations": count.operations,
        })
    extra = (("(setup)", ruleset._setup_ops), ("(stale chains)", ruleset._stale_ops),
             ("(leftover elements)", ruleset._leftover_ops))
    for label, ops in extra:
        if ops or label == "(setup)":
            rows.append({"service_port": label, "type": "", "written": True,
                         "chains": sum(op.kind == "chain" and op.verb == "add" for op in ops),
                         "rules": sum(op.kind == "rule" for op in ops),
                         "elements": sum(op.kind == "element" for op in ops),
                         "sets": sum(op.kind in ("set", "map") and op.verb == "add" for op in ops), "operations": len(ops)})
    columns = ["service_port", "type", "internal_policy", "external_policy", "affinity", "source_ranges", "endpoints",
               "local_endpoints", "written", "chains", "rules", "elements", "sets", "operations"]
    return _int_columns(pd.DataFrame(rows, columns=columns))


# ---- growth ---------------------------------------------------------------------------------------

def _synthetic_config() -> tuple[ProxyConfig, BaseServicePortInfo]:
    from ..synthetic import synthetic_cluster
    from .serviceport import service_port_infos

    state = synthetic_cluster(1, 1)
    return ProxyConfig.for_node(state, "node-1"), service_port_infos(state.services[0])[0]


def growth(services: Sequence[int], endpoints: int = 10, modes: Iterable[str] = MODES, *,
           config: ProxyConfig | None = None) -> "Any":
    """What one full sync writes for ``N`` ClusterIP Services x ``endpoints`` endpoints
    (:func:`kslab.synthetic.synthetic_cluster`), per N and mode, from the formulas (30,000
    Services take no time; nftables: the first sync on a fresh node, as the kernel benchmarks
    load it): ``lines`` (iptables-restore lines / nft operations), ``rules``,
    ``chains``, ``large_cluster`` and ``partial_lines``, what a partial sync writes after one
    Service's endpoints changed; ``per_service`` = lines / N."""
    import pandas as pd

    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InputError(f"mode {bad[0]!r}", "is not a proxy mode", "use iptables or nftables")
    if isinstance(endpoints, bool) or not isinstance(endpoints, int) or endpoints < 0:
        raise InputError(f"endpoints={endpoints!r}", "is not a count", "give an integer >= 0")
    cfg, svc = _synthetic_config()
    if config is not None:
        cfg = config
    rows = []
    for n in services:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"services={n!r}", "is not a count", "give integers >= 0")
        large = n * endpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
        for mode in modes:
            if mode == "iptables":
                one = service_rules(svc, endpoints, config=cfg, large_cluster=large)
                kept = service_rules(svc, endpoints, config=cfg, large_cluster=large, written=False)
                fixed = iptables_fixed(cfg)
                full = fixed + one.scaled(n)
                partial = fixed + kept.scaled(max(n - 1, 0)) + (one if n else RuleCount())
                rows.append({"services": n, "endpoints": endpoints, "mode": mode, "lines": full.lines,
                             "rules": full.filter + full.nat, "chains": full.chains, "large_cluster": large,
                             "partial_lines": partial.lines, "per_service": one.lines})
            else:
                one = service_rules(svc, endpoints, config=cfg, mode="nftables")
                rows.append(_nft_growth_row(n, endpoints, cfg, one))
    return pd.DataFrame(rows, columns=["services", "endpoints", "mode", "lines", "rules", "chains", "large_cluster",
                                       "partial_lines", "per_service"])


def _nft_growth_row(n: int, endpoints: int, cfg: ProxyConfig, one: NftCount) -> dict:
    fixed = nft_fixed(cfg)
    full = fixed + one.scaled(n)
    # a partial sync after one Service's endpoints changed: that Service's chains and rules
    # again (its map elements keep their values); nothing for the others, no setup
    partial = (one.operations - one.elements) if n else 0
    return {"services": n, "endpoints": endpoints, "mode": "nftables", "lines": full.operations, "rules": full.rules,
            "chains": full.chains, "large_cluster": False, "partial_lines": partial, "per_service": one.operations}
