"""kube-proxy's iptables mode: ``syncProxyRules`` for one node, as a pure function.

:func:`render` takes Services, EndpointSlices and a :class:`ProxyConfig` (what kube-proxy knows
about its node and its flags) and returns a :class:`RuleSet`: the lines kube-proxy would write
with ``iptables-restore``, with their chains. The rule templates, their order and every string
follow ``pkg/proxy/iptables/proxier.go`` (see ``../shared/reference/kube-proxy.md`` §2-§4).
Applying the result to a kernel is :mod:`kslab.proxy.apply`; how ``iptables-save`` prints it
afterwards is :mod:`kslab.proxy.iptsave`.

Three text forms of a :class:`RuleSet`:

- :meth:`RuleSet.raw_text`: kube-proxy's restore input in emission order (services visited in
  ServicePortName order, where kube-proxy's Go map order would be random);
- :meth:`RuleSet.restore_text`: the same lines normalised like the upstream tests
  (``sortIPTablesRules``), i.e. the form of the expected dumps in ``reference/cases``;
- :meth:`RuleSet.save_text`: what ``iptables-save`` prints once kube-proxy has synced it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Collection, Iterable

from ...model import ClusterState, EndpointSlice, Service
from . import constants as C
from ..serviceport import (
    CategorizedEndpoints,
    EndpointInfo,
    ServicePortInfo,
    build_endpoints_map,
    categorize_endpoints,
    cidr_contains,
    parse_cidr_sloppy,
    parse_ip_sloppy,
    service_port_infos,
)

DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None")


@dataclass(frozen=True)
class ProxyConfig:
    """What one kube-proxy knows: its node, its flags, and facts about its kernel."""

    node_name: str
    node_ips: tuple[str, ...] = ()  # primary first; used for FW allow-from-node and nodePortAddresses
    cluster_cidr: str | None = None  # --cluster-cidr (DetectLocalByCIDR); None: no local detector
    detect_local_mode: str = "ClusterCIDR"
    node_pod_cidr: str | None = None  # for detect-local-mode NodeCIDR
    bridge_interface: str = ""  # for BridgeInterface
    interface_name_prefix: str = ""  # for InterfaceNamePrefix
    masquerade_all: bool = False
    masquerade_bit: int = C.DEFAULT_MASQUERADE_BIT
    random_fully: bool = True  # iptables >= 1.6.2 (HasRandomFully)
    localhost_nodeports: bool = True  # --iptables-localhost-nodeports
    nodeport_addresses: tuple[str, ...] = ()  # () = match all; CIDRs or "primary"
    conntrack_tcp_liberal: bool = False  # net.netfilter.nf_conntrack_tcp_be_liberal
    nfacct: bool = True  # the nfacct counters could be created
    node_zone: str = ""  # the node's topology.kubernetes.io/zone label
    prefer_same_node: bool = True  # feature gate PreferSameTrafficDistribution
    family: int = 4

    @property
    def mark(self) -> str:
        """The masquerade mark as kube-proxy writes it (Go ``%#08x``): ``0x00004000``."""
        return "0x%08x" % (1 << self.masquerade_bit)

    # LocalTrafficDetector (pkg/proxy/util/localdetector.go)
    def if_local(self) -> list[str] | None:
        m = self.detect_local_mode
        if m == "ClusterCIDR" and self.cluster_cidr:
            return ["-s", self.cluster_cidr]
        if m == "NodeCIDR" and self.node_pod_cidr:
            return ["-s", self.node_pod_cidr]
        if m == "BridgeInterface" and self.bridge_interface:
            return ["-i", self.bridge_interface]
        if m == "InterfaceNamePrefix" and self.interface_name_prefix:
            return ["-i", self.interface_name_prefix + "+"]
        return None

    def if_not_local(self) -> list[str] | None:
        loc = self.if_local()
        return None if loc is None else ["!"] + loc

    @classmethod
    def for_node(cls, state: ClusterState, node_name: str, **overrides) -> "ProxyConfig":
        """The configuration a kind node's kube-proxy runs with (``--cluster-cidr`` = podSubnet)."""
        node = state.node(node_name)
        kw: dict = dict(
            node_name=node.name,
            node_ips=(node.internal_ip,) if node.internal_ip else (),
            cluster_cidr=state.config.pod_subnet or None,
            node_pod_cidr=node.pod_cidr or None,
            node_zone=node.zone or "",
        )
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


@dataclass
class ServicePortRules:
    """What the renderer decided for one service port (for traces, notebooks and tests)."""

    info: ServicePortInfo
    endpoints: list[EndpointInfo]
    categorized: CategorizedEndpoints
    has_internal_endpoints: bool
    has_external_endpoints: bool
    uses_external_chain: bool
    uses_fw_chain: bool
    uses_cluster_chain: bool
    uses_local_chain: bool


@dataclass
class Table:
    name: str
    chains: list[str] = field(default_factory=list)  # declared with ':CHAIN - [0:0]', in order
    rules: list[tuple[str, str]] = field(default_factory=list)  # (chain, full '-A ...' line)
    deleted: list[str] = field(default_factory=list)  # '-X CHAIN'

    def rules_in(self, chain: str) -> list[str]:
        return [line for c, line in self.rules if c == chain]


@dataclass
class RuleSet:
    config: ProxyConfig
    filter: Table
    nat: Table
    large_cluster_mode: bool
    total_endpoints: int
    service_ports: list[ServicePortRules]
    partial: bool = False  # a partial sync's text (unchanged services' chains left out)
    skipped_nat_rules: int = 0  # rules of unchanged services a partial sync did not write
    skipped_nat_chains: int = 0
    active_nat_chains: frozenset[str] = frozenset()  # every nat chain this sync keeps, written or not

    @property
    def deleted_chains(self) -> list[str]:
        return list(self.nat.deleted)

    def delete_stale_chains(self, existing_nat_chains: Iterable[str]) -> list[str]:
        """Flush (``:CHAIN``) and delete (``-X``) every service chain of the kernel's nat table
        (``iptables-save -t nat``) that this sync does not keep, in sorted order (kube-proxy
        walks a Go map). Returns the chains added."""
        stale = sorted({c for c in existing_nat_chains
                        if c.startswith(C.SERVICE_CHAIN_PREFIXES) and c not in self.active_nat_chains})
        self.nat.chains.extend(stale)
        self.nat.deleted.extend(stale)
        return stale

    def iptables_last(self) -> dict[str, int]:
        """``sync_proxy_rules_iptables_last``: rules written by this sync (nat: minus the ``-X`` lines)."""
        return {"filter": len(self.filter.rules), "nat": len(self.nat.rules)}

    def iptables_total(self) -> dict[str, int]:
        """``sync_proxy_rules_iptables_total``: rules kube-proxy owns after this sync. proxier.go
        computes nat as lines written + skipped − deleted chains, its written lines counting
        the ``-X`` lines; :attr:`Table.rules` holds no ``-X`` lines, so here it is written + skipped."""
        return {"filter": len(self.filter.rules), "nat": len(self.nat.rules) + self.skipped_nat_rules}

    @property
    def tables(self) -> tuple[Table, Table]:
        return (self.filter, self.nat)

    def rule_count(self) -> int:
        return len(self.filter.rules) + len(self.nat.rules)

    def raw_text(self) -> str:
        """kube-proxy's iptables-restore input, in the order kube-proxy writes it."""
        out: list[str] = []
        for t in self.tables:
            out.append("*" + t.name)
            out.extend(f":{c} - [0:0]" for c in t.chains)
            if t.name == "nat":
                # the nodeports tail rule comes after the -X lines
                body = [line for _, line in t.rules]
                tail = body.pop() if body and C.NODEPORTS_TAIL_COMMENT in body[-1] else None
                out.extend(body)
                out.extend(f"-X {c}" for c in t.deleted)
                if tail:
                    out.append(tail)
            else:
                out.extend(line for _, line in t.rules)
                out.extend(f"-X {c}" for c in t.deleted)
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def restore_text(self) -> str:
        """The restore input normalised like ``sortIPTablesRules`` in ``proxier_test.go``."""
        out: list[str] = []
        for t in sorted(self.tables, key=lambda t: t.name):
            chains = sorted(t.chains, key=_chain_sort_key)
            by_chain: dict[str, list[str]] = {c: [] for c in chains}
            for c, line in t.rules:
                by_chain.setdefault(c, []).append(line)
            for c in (C.KUBE_NODEPORTS, C.KUBE_SERVICES):
                if c in by_chain:
                    last_rule = t.name == "nat" and c == C.KUBE_SERVICES
                    by_chain[c].sort(key=lambda line, lr=last_rule: _service_sort_key(line, lr))
            out.append("*" + t.name)
            out.extend(f":{c} - [0:0]" for c in chains)
            for c in chains:
                out.extend(by_chain[c])
            out.extend(f"-X {c}" for c in t.deleted)
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def save_text(self) -> str:
        """What ``iptables-save`` prints on the node after kube-proxy's full sync of this ruleset."""
        from ..iptsave import restore_to_save

        return restore_to_save(self.raw_text())

    def text(self, fmt: str) -> str:
        if fmt == "restore":
            return self.restore_text()
        if fmt == "raw":
            return self.raw_text()
        if fmt == "save":
            return self.save_text()
        raise ValueError(f"unknown format {fmt!r}: use restore, raw or save")


def _chain_sort_key(name: str) -> tuple[int, str]:
    if name == C.KUBE_NODEPORTS:
        return (0, "")
    if name == C.KUBE_SERVICES:
        return (1, "")
    return (2 if name.startswith("KUBE-") else 3, name)


def _comment_value(line: str) -> str | None:
    i = line.find("--comment ")
    if i < 0:
        return None
    rest = line[i + 10 :]
    if rest.startswith('"'):
        return rest[1 : rest.index('"', 1)]
    return rest.split(" ", 1)[0]


def _service_sort_key(line: str, last_rule_last: bool) -> tuple[int, str]:
    """``getServiceName``: the comment up to the first space or ':'."""
    v = _comment_value(line)
    if v is None:
        return (0, "")
    if last_rule_last and "must be the last rule" in v:
        return (1, "")
    return (0, v.split(" ", 1)[0].split(":", 1)[0])


def _probability(n: int) -> str:
    """``computeProbability``: 1/n with exactly ten decimals."""
    return "%0.10f" % (1.0 / n)


class _Writer:
    """A LineBuffer per table; rules remember their chain."""

    def __init__(self) -> None:
        self.filter = Table("filter")
        self.nat = Table("nat")

    @staticmethod
    def line(chain: str, args: Iterable[str]) -> str:
        return "-A " + chain + " " + " ".join(args)


def render(
    services: Iterable[Service],
    endpoint_slices: Iterable[EndpointSlice],
    config: ProxyConfig,
    *,
    partial_services: Collection[str] | None = None,
    existing_nat_chains: Iterable[str] | None = None,
) -> RuleSet:
    """Render the ruleset kube-proxy (iptables mode) writes on ``config.node_name``.

    By default this is a full sync's text. ``partial_services`` (``namespace/name`` keys)
    makes it a partial sync (KEP-3453, ``MinimizeIPTablesRestore``): the top-level chains
    and every Service's KUBE-SERVICES / KUBE-NODEPORTS / filter rules are written as always,
    but the SVC/SVL/EXT/FW/SEP chains only for the Services named there (those whose spec or
    EndpointSlices changed since the last sync); ``iptables-restore --noflush`` leaves the
    others as they are in the kernel. ``existing_nat_chains`` is what ``iptables-save -t nat``
    lists on the node: every service chain there that is no longer active gets a
    ``:CHAIN - [0:0]`` line (flush) and a ``-X CHAIN`` line, in sorted order (kube-proxy
    walks a Go map). Decide full vs partial with :class:`kslab.proxy.proxier.Proxier`.
    """
    cfg = config
    fam = cfg.family
    mark = cfg.mark
    filt = Table("filter")
    nat = Table("nat")
    fr = filt.rules
    nr = nat.rules
    skipped_rules: list[tuple[str, str]] = []  # NewDiscardLineBuffer
    skipped_chains: list[str] = []

    # ---- service ports (svcPortMap) and endpoints (endpointsMap) ---------------------------
    ports: list[ServicePortInfo] = []
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        ports.extend(service_port_infos(svc, fam))
    endpoints_map = build_endpoints_map(list(endpoint_slices), cfg.node_name, fam)
    total_endpoints = sum(len(endpoints_map.get(p.name, ())) for p in ports)
    large = total_endpoints > C.LARGE_CLUSTER_ENDPOINTS_THRESHOLD

    # ---- fixed chains and rules --------------------------------------------------------------
    filt.chains += [C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_FORWARD, C.KUBE_NODEPORTS, C.KUBE_PROXY_FIREWALL]
    nat.chains += [C.KUBE_SERVICES, C.KUBE_NODEPORTS, C.KUBE_POSTROUTING, C.KUBE_MARK_MASQ]
    active: set[str] = set(nat.chains)  # activeNATChains
    nr.append((C.KUBE_POSTROUTING, f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN"))
    nr.append((C.KUBE_POSTROUTING, f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}"))
    masq = '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
    nr.append((C.KUBE_POSTROUTING, masq + (" --random-fully" if cfg.random_fully else "")))
    nr.append((C.KUBE_MARK_MASQ, f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}"))
    if fam == 4 and cfg.localhost_nodeports:
        filt.chains.append(C.KUBE_FIREWALL)
        fr.append(
            (
                C.KUBE_FIREWALL,
                '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
                "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            )
        )

    if_local = cfg.if_local()
    if_not_local = cfg.if_not_local()
    if_local_s = " ".join(if_local) if if_local else ""
    if_not_local_s = " ".join(if_not_local) if if_not_local else ""
    node_ip = parse_ip_sloppy(cfg.node_ips[0]) if cfg.node_ips else None
    localhost_nfacct = cfg.localhost_nodeports and fam == 4 and cfg.nfacct

    rendered: list[ServicePortRules] = []
    for svc in ports:
        proto = svc.protocol
        spn = svc.name_string
        eps = endpoints_map.get(svc.name, [])
        cat = categorize_endpoints(eps, svc, cfg.node_name, cfg.node_zone, cfg.prefer_same_node)
        has_endpoints = cat.has_any
        cluster_chain = svc.svc_chain
        local_chain = svc.svl_chain
        uses_cluster_chain = bool(cat.cluster) and svc.uses_cluster_endpoints()
        uses_local_chain = bool(cat.local) and svc.uses_local_endpoints()

        internal_chain = cluster_chain
        has_internal = has_endpoints
        if svc.internal_policy_local:
            internal_chain = local_chain
            if not cat.local:
                has_internal = False
        external_policy_chain = cluster_chain
        has_external = has_endpoints
        if svc.external_policy_local:
            external_policy_chain = local_chain
            if not cat.local:
                has_external = False
        ext_chain = svc.ext_chain
        uses_ext = has_endpoints and svc.externally_accessible()
        uses_fw = has_endpoints and bool(svc.load_balancer_vips) and bool(svc.load_balancer_source_ranges)
        lb_chain = svc.fw_chain if uses_fw else ext_chain

        if has_endpoints:
            int_target, ext_target = "DROP", "DROP"
            int_cmt = ext_cmt = f'"{spn} has no local endpoints"'
        else:
            int_target, ext_target = "REJECT", "REJECT"
            int_cmt = ext_cmt = f'"{spn} has no endpoints"'
        mp = f"-m {proto} -p {proto}"
        dport = f"--dport {svc.port}"
        cip = svc.cluster_ip

        # 1. cluster IP
        if has_internal:
            nr.append(
                (C.KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" {mp} -d {cip} {dport} -j {internal_chain}')
            )
        else:
            fr.append((C.KUBE_SERVICES, f"-A KUBE-SERVICES -m comment --comment {int_cmt} {mp} -d {cip} {dport} -j {int_target}"))

        # 2. external IPs
        for eip in svc.external_ips:
            if has_endpoints:
                nr.append(
                    (C.KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{spn} external IP" {mp} -d {eip} {dport} -j {ext_chain}')
                )
            if not has_external:
                fr.append(
                    (
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_cmt} {mp} -d {eip} {dport} -j {ext_target}",
                    )
                )

        # 3. load-balancer ingress IPs
        for lbip in svc.load_balancer_vips:
            if has_endpoints:
                nr.append(
                    (C.KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{spn} loadbalancer IP" {mp} -d {lbip} {dport} -j {lb_chain}')
                )
            if uses_fw:
                fr.append(
                    (
                        C.KUBE_PROXY_FIREWALL,
                        f'-A KUBE-PROXY-FIREWALL -m comment --comment "{spn} traffic not accepted by {svc.fw_chain}" '
                        f"{mp} -d {lbip} {dport} -j DROP",
                    )
                )
        if not has_external:
            for lbip in svc.load_balancer_vips:
                fr.append(
                    (
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_cmt} {mp} -d {lbip} {dport} -j {ext_target}",
                    )
                )

        # 4. node port
        if svc.node_port:
            np = svc.node_port
            if has_endpoints:
                if localhost_nfacct:
                    nr.append(
                        (
                            C.KUBE_NODEPORTS,
                            f"-A KUBE-NODEPORTS -m comment --comment {spn} {mp} -d 127.0.0.0/8 --dport {np} "
                            f"-m nfacct --nfacct-name {C.NFACCT_LOCALHOST_NODEPORTS} -j {ext_chain}",
                        )
                    )
                nr.append((C.KUBE_NODEPORTS, f"-A KUBE-NODEPORTS -m comment --comment {spn} {mp} --dport {np} -j {ext_chain}"))
            if not has_external:
                fr.append(
                    (
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_cmt} -m addrtype --dst-type LOCAL "
                        f"{mp} --dport {np} -j {ext_target}",
                    )
                )

        # 5. health check node port
        if svc.health_check_node_port:
            fr.append(
                (
                    C.KUBE_NODEPORTS,
                    f'-A KUBE-NODEPORTS -m comment --comment "{spn} health check node port" -m tcp -p tcp '
                    f"--dport {svc.health_check_node_port} -j ACCEPT",
                )
            )

        # Steps 6-10 (the SVC/SVL/EXT/FW/SEP chains) are left out of a partial sync for a
        # Service whose spec and endpoints did not change; they are still computed, to count
        # them and to know which chains are active (kube-proxy's discard buffers).
        skip = partial_services is not None and svc.name.service_key not in partial_services
        svc_rules = skipped_rules if skip else nr
        svc_chains = skipped_chains if skip else nat.chains
        # 6. internal traffic masquerade
        if has_internal:
            base = f'-A {internal_chain} -m comment --comment "{spn} cluster IP" {mp} -d {cip} {dport}'
            if cfg.masquerade_all:
                svc_rules.append((internal_chain, f"{base} -j KUBE-MARK-MASQ"))
            elif if_not_local:
                svc_rules.append((internal_chain, f"{base} {if_not_local_s} -j KUBE-MARK-MASQ"))

        # 7. external traffic chain
        if uses_ext:
            svc_chains.append(ext_chain)
            active.add(ext_chain)
            if not svc.external_policy_local:
                svc_rules.append(
                    (ext_chain, f'-A {ext_chain} -m comment --comment "masquerade traffic for {spn} external destinations" -j KUBE-MARK-MASQ')
                )
            else:
                if if_local:
                    svc_rules.append(
                        (
                            ext_chain,
                            f'-A {ext_chain} -m comment --comment "pod traffic for {spn} external destinations" '
                            f"{if_local_s} -j {cluster_chain}",
                        )
                    )
                svc_rules.append(
                    (
                        ext_chain,
                        f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {spn} external destinations" '
                        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
                    )
                )
                svc_rules.append(
                    (
                        ext_chain,
                        f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {spn} external destinations" '
                        f"-m addrtype --src-type LOCAL -j {cluster_chain}",
                    )
                )
            if has_external:
                svc_rules.append((ext_chain, f"-A {ext_chain} -j {external_policy_chain}"))

        # 8. firewall chain (loadBalancerSourceRanges)
        if uses_fw:
            fw = svc.fw_chain
            svc_chains.append(fw)
            active.add(fw)
            head = f'-A {fw} -m comment --comment "{spn} loadbalancer IP"'
            allow_from_node = False
            for cidr in svc.load_balancer_source_ranges:
                svc_rules.append((fw, f"{head} -s {cidr} -j {ext_chain}"))
                if node_ip and cidr_contains(cidr, node_ip):
                    allow_from_node = True
            if allow_from_node:
                for lbip in svc.load_balancer_vips:
                    svc_rules.append((fw, f"{head} -s {lbip} -j {ext_chain}"))
            svc_rules.append((fw, f'-A {fw} -m comment --comment "other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"'))

        # 9. service -> endpoint chains
        if uses_cluster_chain:
            svc_chains.append(cluster_chain)
            active.add(cluster_chain)
            _write_service_to_endpoint_rules(svc_rules, spn, svc, cluster_chain, cat.cluster, large)
        if uses_local_chain:
            svc_chains.append(local_chain)
            active.add(local_chain)
            _write_service_to_endpoint_rules(svc_rules, spn, svc, local_chain, cat.local, large)

        # 10. endpoint chains
        cmt = "" if large else f" -m comment --comment {spn}"
        affinity = svc.session_affinity_client_ip
        for ep in cat.all_reachable:
            sep = ep.chain
            svc_chains.append(sep)
            active.add(sep)
            svc_rules.append((sep, f"-A {sep}{cmt} -s {ep.ip} -j KUBE-MARK-MASQ"))
            rec = f" -m recent --name {sep} --set" if affinity else ""
            svc_rules.append((sep, f"-A {sep}{cmt}{rec} {mp} -j DNAT --to-destination {ep}"))

        rendered.append(
            ServicePortRules(
                info=svc,
                endpoints=eps,
                categorized=cat,
                has_internal_endpoints=has_internal,
                has_external_endpoints=has_external,
                uses_external_chain=uses_ext,
                uses_fw_chain=uses_fw,
                uses_cluster_chain=uses_cluster_chain,
                uses_local_chain=uses_local_chain,
            )
        )

    # ---- tail rules ---------------------------------------------------------------------------
    tail = f'-A KUBE-SERVICES -m comment --comment "{C.NODEPORTS_TAIL_COMMENT}"'
    if nodeport_addresses_match_all(cfg):
        dest = "-m addrtype --dst-type LOCAL"
        if fam == 6:
            dest += " ! -d ::1/128"
        elif not cfg.localhost_nodeports:
            dest += " ! -d 127.0.0.0/8"
        nr.append((C.KUBE_SERVICES, f"{tail} {dest} -j KUBE-NODEPORTS"))
    else:
        for ip in nodeport_ips(cfg):
            if ipaddress.ip_address(ip).is_loopback and (fam == 6 or not cfg.localhost_nodeports):
                continue
            nr.append((C.KUBE_SERVICES, f"{tail} -d {ip} -j KUBE-NODEPORTS"))

    if not cfg.conntrack_tcp_liberal:
        nf = f" -m nfacct --nfacct-name {C.NFACCT_CT_STATE_INVALID}" if cfg.nfacct else ""
        fr.append((C.KUBE_FORWARD, f"-A KUBE-FORWARD -m conntrack --ctstate INVALID{nf} -j DROP"))
    fr.append(
        (C.KUBE_FORWARD, f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT')
    )
    fr.append(
        (
            C.KUBE_FORWARD,
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        )
    )
    ruleset = RuleSet(
        cfg, filt, nat, large, total_endpoints, rendered,
        partial=partial_services is not None,
        skipped_nat_rules=len(skipped_rules),
        skipped_nat_chains=len(skipped_chains),
        active_nat_chains=frozenset(active),
    )
    if existing_nat_chains is not None:
        ruleset.delete_stale_chains(existing_nat_chains)
    return ruleset


def _write_service_to_endpoint_rules(
    nr: list[tuple[str, str]],
    spn: str,
    svc: ServicePortInfo,
    chain: str,
    endpoints: list[EndpointInfo],
    large: bool,
) -> None:
    """``writeServiceToEndpointRules``: affinity rcheck rules, then the probability ladder."""
    if svc.session_affinity_client_ip:
        for ep in endpoints:
            cmt = "" if large else f' -m comment --comment "{spn} -> {ep}"'
            nr.append(
                (
                    chain,
                    f"-A {chain}{cmt} -m recent --name {ep.chain} --rcheck --seconds {svc.sticky_seconds} --reap -j {ep.chain}",
                )
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        cmt = "" if large else f' -m comment --comment "{spn} -> {ep}"'
        stat = f" -m statistic --mode random --probability {_probability(n - i)}" if i < n - 1 else ""
        nr.append((chain, f"-A {chain}{cmt}{stat} -j {ep.chain}"))


def nodeport_addresses_match_all(cfg: ProxyConfig) -> bool:
    """``NodePortAddresses.MatchAll``: unset, ``all``, or a 0.0.0.0/0 (::/0) CIDR."""
    if not cfg.nodeport_addresses:
        return True
    for spec in cfg.nodeport_addresses:
        if spec == "all":
            return True
        c = parse_cidr_sloppy(spec)
        if c and c.endswith("/0"):
            return True
    return False


def nodeport_ips(cfg: ProxyConfig) -> list[str]:
    """``NodePortAddresses.GetNodeIPs``: the node's addresses inside the given CIDRs.

    Upstream collects them in a Go map (random order); kslab lists them in interface order,
    ``lo`` first, then the node IPs.
    """
    addrs = (["127.0.0.1"] if cfg.family == 4 else ["::1"]) + [
        ip for ip in (parse_ip_sloppy(x) for x in cfg.node_ips) if ip
    ]
    primary = addrs[1:2]
    cidrs = [parse_cidr_sloppy(spec) for spec in cfg.nodeport_addresses if spec not in ("primary", "localhost")]
    out: list[str] = []
    for a in addrs:
        hit = (a in primary and "primary" in cfg.nodeport_addresses) or (
            "localhost" in cfg.nodeport_addresses and ipaddress.ip_address(a).is_loopback
        ) or any(c and cidr_contains(c, a) for c in cidrs)
        if hit and a not in out:
            out.append(a)
    return out


def render_node(state: ClusterState, node_name: str, **config_overrides) -> RuleSet:
    """Render the ruleset of one node of ``state`` (kind's kube-proxy configuration by default)."""
    return render(state.services, state.endpoint_slices, ProxyConfig.for_node(state, node_name, **config_overrides))
