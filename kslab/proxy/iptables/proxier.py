"""kube-proxy's iptables mode: ``syncProxyRules`` for one node, as a pure function.

:func:`render` takes Services, EndpointSlices and a :class:`~kslab.proxy.config.ProxyConfig`
(what kube-proxy knows about its node and its flags) and returns a
:class:`~kslab.proxy.iptables.ruleset.RuleSet`: the lines kube-proxy would write with
``iptables-restore``, with their chains. :func:`sync_proxy_rules` does the same from a service
port map and an endpoints map (what :class:`kslab.proxy.proxier.Proxier` keeps across syncs).
The rule templates, their order, every string and the local names follow
``pkg/proxy/iptables/proxier.go`` (upstream cases and their sources: ``tests/data/kube-proxy/``).
Applying the result to a kernel, and how ``iptables-save`` prints it afterwards, is
:mod:`kslab.proxy.iptables.node` (with :mod:`kslab.xtables`).
"""

from __future__ import annotations

import ipaddress
from typing import Collection, Iterable, Mapping, Sequence

from ...model import ClusterState, EndpointSlice, Service
from ..config import ProxyConfig
from ..endpoints import EndpointColumns, build_endpoints_map
from ..serviceport import ServicePortName, service_ports_of
from ..topology import CategorizedEndpoints, categorize_endpoints
from ..util import cidr_contains
from . import constants as C
from .chains import EndpointInfo, ServicePortInfo, endpoint_chain_names, endpoint_chain_names_of, new_endpoint_info
from .ruleset import FIXED_NAT_CHAINS, LineBuffer, RuleSet


class ServicePortRules:
    """What the renderer decided for one service port (for traces, notebooks and tests).

    A service port whose endpoints came as :class:`~kslab.proxy.endpoints.EndpointColumns`
    gets its endpoint infos (``endpoints``, ``categorized``) made when first asked for."""

    __slots__ = ("info", "_endpoints", "_categorized", "has_internal_endpoints", "has_external_endpoints",
                 "uses_external_chain", "uses_fw_chain", "uses_cluster_chain", "uses_local_chain", "_endpoint_chains")

    def __init__(self, info: ServicePortInfo, endpoints: list[EndpointInfo] | EndpointColumns,
                 categorized: CategorizedEndpoints | None, has_internal_endpoints: bool, has_external_endpoints: bool,
                 uses_external_chain: bool, uses_fw_chain: bool, uses_cluster_chain: bool, uses_local_chain: bool,
                 endpoint_chains: list[str] | None = None) -> None:
        self.info = info
        self._endpoints = endpoints
        self._categorized = categorized  # None: all of the columns' endpoints, for the cluster policy
        self.has_internal_endpoints = has_internal_endpoints
        self.has_external_endpoints = has_external_endpoints
        self.uses_external_chain = uses_external_chain
        self.uses_fw_chain = uses_fw_chain
        self.uses_cluster_chain = uses_cluster_chain
        self.uses_local_chain = uses_local_chain
        self._endpoint_chains = endpoint_chains  # the columns' endpoints' KUBE-SEP chains, if the sync named them

    def __repr__(self) -> str:
        return f"ServicePortRules({self.info.name_string}, endpoints={len(self._endpoints)})"

    @property
    def endpoints(self) -> list[EndpointInfo]:
        eps = self._endpoints
        return eps.infos() if isinstance(eps, EndpointColumns) else eps  # type: ignore[return-value]

    @property
    def categorized(self) -> CategorizedEndpoints:
        if self._categorized is None:
            infos = self.endpoints
            self._categorized = CategorizedEndpoints(infos, _NO_ENDPOINTS, infos, bool(infos))
        return self._categorized

    def nat_chains(self) -> list[str]:
        """The service port's chains a sync keeps (``activeNATChains``), written or not."""
        info = self.info
        chains = [chain for chain, used in ((info.ext_chain, self.uses_external_chain), (info.fw_chain, self.uses_fw_chain),
                                            (info.svc_chain, self.uses_cluster_chain), (info.svl_chain, self.uses_local_chain))
                  if used]
        eps = self._endpoints
        if self._categorized is None and isinstance(eps, EndpointColumns):
            if self._endpoint_chains is None:
                self._endpoint_chains = endpoint_chain_names(info.name_string, info.protocol, eps.endpoints)
            return chains + list(self._endpoint_chains)
        return chains + [ep.chain for ep in self.categorized.all_reachable]


_NO_ENDPOINTS: tuple = ()


def _probability(n: int) -> str:
    """``computeProbability``: 1/n with exactly ten decimals."""
    return "%0.10f" % (1.0 / n)


def _ladder(n: int, ladders: dict[int, list[str]]) -> list[str]:
    """What precedes ``-j KUBE-SEP-...`` in each of the n rules of the ladder. The statistic
    matches of a ladder over n endpoints are the same for every service port with n
    endpoints: one sync formats them once per n, in ``ladders`` (kube-proxy formats them per rule)."""
    ladder = ladders.get(n)
    if ladder is None:
        ladder = ladders[n] = [f"-m statistic --mode random --probability {_probability(n - i)} -j "
                               for i in range(n - 1)] + ["-j "]
    return ladder


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
    service_ports = service_ports_of(services, config.family, ServicePortInfo)
    endpoints_map = build_endpoints_map(endpoint_slices, config.node_name, config.family, new_endpoint_info, columns=True)
    ruleset = sync_proxy_rules(service_ports, endpoints_map, config, partial_services=partial_services)
    if existing_nat_chains is not None:
        ruleset.delete_stale_chains(existing_nat_chains)
    return ruleset


def sync_proxy_rules(
    service_ports: Sequence[ServicePortInfo],
    endpoints_map: Mapping[ServicePortName, list[EndpointInfo]],
    config: ProxyConfig,
    *,
    partial_services: Collection[str] | None = None,
) -> RuleSet:
    """``syncProxyRules``: the restore input for ``service_ports`` (in the order given) and
    their endpoints; ``partial_services`` as in :func:`render`."""
    cfg = config
    fam = cfg.family
    mark = cfg.mark
    filterChains = filterRules = LineBuffer("filter")
    natChains = natRules = LineBuffer("nat")
    skippedNatChains = skippedNatRules = 0  # what NewDiscardLineBuffer would count
    tryPartialSync = partial_services is not None

    totalEndpoints = 0
    fromColumns: list[tuple[ServicePortInfo, EndpointColumns]] = []  # all endpoints ready, no hints, policy Cluster
    for svcInfo in service_ports:
        eps = endpoints_map.get(svcInfo.name, ())
        totalEndpoints += len(eps)
        if type(eps) is EndpointColumns and not svcInfo.uses_local_endpoints() and (
                not tryPartialSync or svcInfo.name.service_key in partial_services):  # type: ignore[operator]
            fromColumns.append((svcInfo, eps))
    largeClusterMode = totalEndpoints > C.LARGE_CLUSTER_ENDPOINTS_THRESHOLD
    # The KUBE-SEP chains of those service ports' endpoints, named in one batch (kube-proxy names
    # each endpoint's chain when it first sees the endpoint, in newEndpointInfo).
    sepChainsOf = dict(zip([svcInfo.name for svcInfo, _ in fromColumns], endpoint_chain_names_of(
        [(svcInfo.name_string, svcInfo.protocol, eps.endpoints) for svcInfo, eps in fromColumns])))
    del fromColumns

    # ---- fixed chains and rules --------------------------------------------------------------
    for chain in (C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_FORWARD, C.KUBE_NODEPORTS, C.KUBE_PROXY_FIREWALL):
        filterChains.write_chain(chain)
    for chain in FIXED_NAT_CHAINS:
        natChains.write_chain(chain)
    natRules.write(
        C.KUBE_POSTROUTING,
        f"-m mark ! --mark {mark}/{mark} -j RETURN",
        f"-j MARK --xor-mark {mark}",
        '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
        + (" --random-fully" if cfg.random_fully else ""),
    )
    natRules.write(C.KUBE_MARK_MASQ, f"-j MARK --or-mark {mark}")
    if fam == 4 and cfg.localhost_nodeports:
        filterChains.write_chain(C.KUBE_FIREWALL)
        filterRules.write(
            C.KUBE_FIREWALL,
            '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
            "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        )

    ifLocal = cfg.if_local()
    ifNotLocal = cfg.if_not_local()
    ifLocalArgs = " ".join(ifLocal) if ifLocal else ""
    ifNotLocalArgs = " ".join(ifNotLocal) if ifNotLocal else ""
    nodeIP = cfg.node_ip  # nodeIPs[family]: the family's first node IP
    localhostNodePortsNFAcct = cfg.localhost_nodeports and fam == 4 and cfg.nfacct

    writeBlock = natRules.write_block
    writeChainBlocks = natRules.write_chain_blocks
    ladders: dict[int, list[str]] = {}
    rendered: list[tuple] = []  # ServicePortRules' arguments, per service port (made into objects when asked)
    for svcInfo in service_ports:
        protocol = svcInfo.protocol
        svcPortNameString = svcInfo.name_string
        allEndpoints = endpoints_map.get(svcInfo.name, [])
        columns = None
        if type(allEndpoints) is EndpointColumns:
            if svcInfo.uses_local_endpoints():
                allEndpoints = allEndpoints.infos()
            else:
                columns = allEndpoints  # all ready, no hints: every endpoint is a cluster endpoint
        if columns is None:
            categorized = categorize_endpoints(allEndpoints, svcInfo, cfg.node_name, cfg.node_zone, cfg.prefer_same_node)
            clusterEndpoints = categorized.cluster
            localEndpoints = categorized.local
            allLocallyReachableEndpoints = categorized.all_reachable
            hasEndpoints = categorized.has_any
        else:
            categorized = None  # ServicePortRules makes it when asked
            clusterEndpoints = allLocallyReachableEndpoints = columns
            localEndpoints = _NO_ENDPOINTS
            hasEndpoints = bool(columns)

        # externally accessible: a nodePort, externalIPs or load-balancer VIPs (without any, the
        # external captures below have nothing to write, and the service port uses its cluster chain)
        externallyAccessible = svcInfo.externally_accessible()
        clusterPolicyChain = svcInfo.svc_chain
        usesClusterPolicyChain = bool(clusterEndpoints) and (externallyAccessible or not svcInfo.internal_policy_local)
        localPolicyChain = svcInfo.svl_chain
        usesLocalPolicyChain = bool(localEndpoints) and svcInfo.uses_local_endpoints()

        internalPolicyChain = clusterPolicyChain
        hasInternalEndpoints = hasEndpoints
        if svcInfo.internal_policy_local:
            internalPolicyChain = localPolicyChain
            if not localEndpoints:
                hasInternalEndpoints = False
        internalTrafficChain = internalPolicyChain

        externalPolicyChain = clusterPolicyChain
        hasExternalEndpoints = hasEndpoints
        if svcInfo.external_policy_local:
            externalPolicyChain = localPolicyChain
            if not localEndpoints:
                hasExternalEndpoints = False
        externalTrafficChain = svcInfo.ext_chain  # eventually jumps to externalPolicyChain
        usesExternalTrafficChain = hasEndpoints and externallyAccessible

        fwChain = svcInfo.fw_chain
        usesFWChain = hasEndpoints and bool(svcInfo.load_balancer_vips) and bool(svcInfo.load_balancer_source_ranges)
        loadBalancerTrafficChain = fwChain if usesFWChain else externalTrafficChain

        if not hasEndpoints:
            internalTrafficFilterTarget = externalTrafficFilterTarget = "REJECT"
            internalTrafficFilterComment = externalTrafficFilterComment = f'"{svcPortNameString} has no endpoints"'
        elif not hasInternalEndpoints or externallyAccessible:
            internalTrafficFilterTarget = externalTrafficFilterTarget = "DROP"
            internalTrafficFilterComment = externalTrafficFilterComment = f'"{svcPortNameString} has no local endpoints"'
        # (else no filter rule is written: neither is needed)
        proto = f"-m {protocol} -p {protocol}"
        dport = f"--dport {svcInfo.port}"
        clusterIP = svcInfo.cluster_ip

        # Capture the clusterIP.
        if hasInternalEndpoints:
            writeBlock(  # natRules.write(KUBE-SERVICES, ...), one rule per service port: its line written whole
                C.KUBE_SERVICES,
                f'-A {C.KUBE_SERVICES} -m comment --comment "{svcPortNameString} cluster IP" {proto} -d {clusterIP} {dport} '
                f"-j {internalTrafficChain}",
                1,
            )
        else:
            filterRules.write(
                C.KUBE_SERVICES,
                f"-m comment --comment {internalTrafficFilterComment} {proto} -d {clusterIP} {dport} -j {internalTrafficFilterTarget}",
            )

        if externallyAccessible:
            # Capture externalIPs.
            for externalIP in svcInfo.external_ips:
                if hasEndpoints:
                    natRules.write(
                        C.KUBE_SERVICES,
                        f'-m comment --comment "{svcPortNameString} external IP" {proto} -d {externalIP} {dport} -j {externalTrafficChain}',
                    )
                if not hasExternalEndpoints:
                    filterRules.write(
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-m comment --comment {externalTrafficFilterComment} {proto} -d {externalIP} {dport} -j {externalTrafficFilterTarget}",
                    )

            # Capture load-balancer ingress.
            for lbip in svcInfo.load_balancer_vips:
                if hasEndpoints:
                    natRules.write(
                        C.KUBE_SERVICES,
                        f'-m comment --comment "{svcPortNameString} loadbalancer IP" {proto} -d {lbip} {dport} -j {loadBalancerTrafficChain}',
                    )
                if usesFWChain:
                    filterRules.write(
                        C.KUBE_PROXY_FIREWALL,
                        f'-m comment --comment "{svcPortNameString} traffic not accepted by {fwChain}" {proto} -d {lbip} {dport} -j DROP',
                    )
            if not hasExternalEndpoints:
                # Either no endpoints at all (REJECT) or no endpoints for external traffic (DROP).
                for lbip in svcInfo.load_balancer_vips:
                    filterRules.write(
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-m comment --comment {externalTrafficFilterComment} {proto} -d {lbip} {dport} -j {externalTrafficFilterTarget}",
                    )

            # Capture nodeports.
            if svcInfo.node_port:
                nodePort = svcInfo.node_port
                if hasEndpoints:
                    # Jump to the external destination chain; for better or for worse, nodeports are
                    # not subject to loadBalancerSourceRanges.
                    if localhostNodePortsNFAcct:
                        natRules.write(
                            C.KUBE_NODEPORTS,
                            f"-m comment --comment {svcPortNameString} {proto} -d 127.0.0.0/8 --dport {nodePort} "
                            f"-m nfacct --nfacct-name {C.NFACCT_LOCALHOST_NODEPORTS} -j {externalTrafficChain}",
                        )
                    natRules.write(
                        C.KUBE_NODEPORTS,
                        f"-m comment --comment {svcPortNameString} {proto} --dport {nodePort} -j {externalTrafficChain}",
                    )
                if not hasExternalEndpoints:
                    filterRules.write(
                        C.KUBE_EXTERNAL_SERVICES,
                        f"-m comment --comment {externalTrafficFilterComment} -m addrtype --dst-type LOCAL "
                        f"{proto} --dport {nodePort} -j {externalTrafficFilterTarget}",
                    )

        # Capture healthCheckNodePorts.
        if svcInfo.health_check_node_port:
            filterRules.write(
                C.KUBE_NODEPORTS,
                f'-m comment --comment "{svcPortNameString} health check node port" -m tcp -p tcp '
                f"--dport {svcInfo.health_check_node_port} -j ACCEPT",
            )

        allowFromNode = usesFWChain and nodeIP is not None and any(
            cidr_contains(cidr, nodeIP) for cidr in svcInfo.load_balancer_source_ranges)

        # If the SVC/SVL/EXT/FW/SEP chains have not changed since the last sync then we can
        # omit them from the restore input. Their chains stay active, and the metrics count
        # the rules they hold, but nothing of them is written (upstream writes them into a
        # discard buffer; here they are counted without being formatted).
        skipped = tryPartialSync and svcInfo.name.service_key not in partial_services  # type: ignore[operator]
        if skipped:
            skippedNatChains += (usesExternalTrafficChain + usesFWChain + usesClusterPolicyChain + usesLocalPolicyChain
                                 + len(allLocallyReachableEndpoints))
            skippedNatRules += _service_chain_rule_count(
                svcInfo, cfg.masquerade_all, bool(ifLocal), bool(ifNotLocal), hasInternalEndpoints, hasExternalEndpoints,
                usesExternalTrafficChain, usesFWChain, allowFromNode,
                len(clusterEndpoints) if usesClusterPolicyChain else 0, len(localEndpoints) if usesLocalPolicyChain else 0,
                len(allLocallyReachableEndpoints),
            )
        else:
            # Set up internal traffic handling.
            if hasInternalEndpoints:
                args = f'-m comment --comment "{svcPortNameString} cluster IP" {proto} -d {clusterIP} {dport}'
                if cfg.masquerade_all:
                    natRules.write(internalTrafficChain, f"{args} -j {C.KUBE_MARK_MASQ}")
                elif ifNotLocal:
                    # This masquerades off-cluster traffic to a service VIP: pods' own traffic
                    # does not need it.
                    writeBlock(internalTrafficChain, f"-A {internalTrafficChain} {args} {ifNotLocalArgs} -j {C.KUBE_MARK_MASQ}", 1)

            # Set up external traffic handling (if any "external" destinations are enabled).
            if usesExternalTrafficChain:
                natChains.write_chain(externalTrafficChain)
                if not svcInfo.external_policy_local:
                    # If we are using non-local endpoints we need to masquerade, in case we cross nodes.
                    natRules.write(
                        externalTrafficChain,
                        f'-m comment --comment "masquerade traffic for {svcPortNameString} external destinations" -j {C.KUBE_MARK_MASQ}',
                    )
                else:
                    # If we are only using same-node endpoints, we can retain the source IP in most cases.
                    if ifLocal:
                        # Treat all locally-originated pod -> external destination traffic as a
                        # special-case: it is subject to neither form of traffic policy.
                        natRules.write(
                            externalTrafficChain,
                            f'-m comment --comment "pod traffic for {svcPortNameString} external destinations" '
                            f"{ifLocalArgs} -j {clusterPolicyChain}",
                        )
                    # Locally originated traffic (not a pod, but the host node) still needs masquerade.
                    natRules.write(
                        externalTrafficChain,
                        f'-m comment --comment "masquerade LOCAL traffic for {svcPortNameString} external destinations" '
                        f"-m addrtype --src-type LOCAL -j {C.KUBE_MARK_MASQ}",
                        f'-m comment --comment "route LOCAL traffic for {svcPortNameString} external destinations" '
                        f"-m addrtype --src-type LOCAL -j {clusterPolicyChain}",
                    )
                # Anything else falls thru to the appropriate policy chain.
                if hasExternalEndpoints:
                    natRules.write(externalTrafficChain, f"-j {externalPolicyChain}")

            # Set up firewall chain, if needed.
            if usesFWChain:
                natChains.write_chain(fwChain)
                args = f'-m comment --comment "{svcPortNameString} loadbalancer IP"'
                natRules.write(fwChain, *[f"{args} -s {cidr} -j {externalTrafficChain}"
                                          for cidr in svcInfo.load_balancer_source_ranges])
                # For VIP-like LBs, the VIP is often added as a local address (via an IP route
                # rule); traffic from the node to the VIP then has the VIP as its source.
                if allowFromNode:
                    natRules.write(fwChain, *[f"{args} -s {lbip} -j {externalTrafficChain}"
                                              for lbip in svcInfo.load_balancer_vips])
                # If the packet was able to reach the end of firewall chain, then it did not get
                # DNATed, so it will match the corresponding KUBE-PROXY-FIREWALL rule.
                natRules.write(fwChain, f'-m comment --comment "other traffic to {svcPortNameString} will be dropped by KUBE-PROXY-FIREWALL"')

            # The endpoints' chain names, each computed once.
            if columns is not None:
                epChains = sepChainsOf[svcInfo.name]

            # If Cluster policy is in use, create the chain and create rules jumping from
            # clusterPolicyChain to the clusterEndpoints.
            if usesClusterPolicyChain:
                natChains.write_chain(clusterPolicyChain)
                if columns is not None:
                    write_service_to_endpoint_rules(natRules, svcPortNameString, svcInfo, clusterPolicyChain, epChains,
                                                    columns.endpoints, largeClusterMode, ladders)
                else:
                    write_service_to_endpoint_rules(natRules, svcPortNameString, svcInfo, clusterPolicyChain,
                                                    [e.chain for e in clusterEndpoints], [e.endpoint for e in clusterEndpoints],
                                                    largeClusterMode, ladders)

            # If Local policy is in use, create the chain and create rules jumping from
            # localPolicyChain to the localEndpoints.
            if usesLocalPolicyChain:
                natChains.write_chain(localPolicyChain)
                write_service_to_endpoint_rules(natRules, svcPortNameString, svcInfo, localPolicyChain,
                                                [e.chain for e in localEndpoints], [e.endpoint for e in localEndpoints],
                                                largeClusterMode, ladders)

            # Generate the per-endpoint chains, each one block of two rules: handle traffic that
            # loops back to the originator with SNAT; update client-affinity lists; DNAT to the
            # final destination.
            if columns is not None:
                epRows = zip(epChains, columns.ips, columns.endpoints)
            else:
                epChains = [e.chain for e in allLocallyReachableEndpoints]
                epRows = ((e.chain, e.ip, e.endpoint) for e in allLocallyReachableEndpoints)
            comment = "" if largeClusterMode else f"-m comment --comment {svcPortNameString} "
            masq = f" {comment}-s "
            if svcInfo.session_affinity_client_ip:
                rest = f" {comment}-m recent --name "
                dnat = f" --set {proto} -j DNAT --to-destination "
                writeChainBlocks(epChains, [f"-A {c}{masq}{ip} -j {C.KUBE_MARK_MASQ}\n-A {c}{rest}{c}{dnat}{endpoint}"
                                            for c, ip, endpoint in epRows], 2)
            else:
                masqJump = f" -j {C.KUBE_MARK_MASQ}\n-A "
                dnat = f" {comment}{proto} -j DNAT --to-destination "
                writeChainBlocks(epChains, [f"-A {c}{masq}{ip}{masqJump}{c}{dnat}{endpoint}" for c, ip, endpoint in epRows], 2)

        rendered.append((svcInfo, allEndpoints, categorized, hasInternalEndpoints, hasExternalEndpoints,
                         usesExternalTrafficChain, usesFWChain, usesClusterPolicyChain, usesLocalPolicyChain,
                         epChains if columns is not None and not skipped else None))

    # ---- tail rules ---------------------------------------------------------------------------
    # Finally, tail-call to the nodePorts chain. This needs to be after all other service
    # portal rules.
    tail = f'-m comment --comment "{C.NODEPORTS_TAIL_COMMENT}"'
    if cfg.nodeport_addrs.match_all:
        destinations = "-m addrtype --dst-type LOCAL"
        if fam == 6:
            destinations += " ! -d ::1/128"
        elif not cfg.localhost_nodeports:
            destinations += " ! -d 127.0.0.0/8"
        natRules.write(C.KUBE_SERVICES, f"{tail} {destinations} -j {C.KUBE_NODEPORTS}")
    else:
        for ip in cfg.nodeport_ips():
            if ipaddress.ip_address(ip).is_loopback and (fam == 6 or not cfg.localhost_nodeports):
                continue
            natRules.write(C.KUBE_SERVICES, f"{tail} -d {ip} -j {C.KUBE_NODEPORTS}")

    # Drop the packets in INVALID state, which would potentially cause unexpected connection
    # reset if nf_conntrack_tcp_be_liberal is not set.
    if not cfg.conntrack_tcp_liberal:
        nfacct = f" -m nfacct --nfacct-name {C.NFACCT_CT_STATE_INVALID}" if cfg.nfacct else ""
        filterRules.write(C.KUBE_FORWARD, f"-m conntrack --ctstate INVALID{nfacct} -j DROP")
    filterRules.write(
        C.KUBE_FORWARD,
        f'-m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT',
        '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    )
    return RuleSet(
        cfg, filterRules, natRules, largeClusterMode, totalEndpoints, rendered, ServicePortRules,
        partial=tryPartialSync,
        skipped_nat_rules=skippedNatRules,
        skipped_nat_chains=skippedNatChains,
    )


def _service_chain_rule_count(
    svcInfo: ServicePortInfo,
    masqueradeAll: bool,
    hasLocalDetector: bool,
    hasNotLocalDetector: bool,
    hasInternalEndpoints: bool,
    hasExternalEndpoints: bool,
    usesExternalTrafficChain: bool,
    usesFWChain: bool,
    allowFromNode: bool,
    clusterPolicyEndpoints: int,
    localPolicyEndpoints: int,
    endpointChains: int,
) -> int:
    """How many rules :func:`sync_proxy_rules` writes into one service port's SVC/SVL/EXT/FW/SEP
    chains (what a partial sync counts for a Service it leaves alone); mirrors the writing."""
    n = 1 if hasInternalEndpoints and (masqueradeAll or hasNotLocalDetector) else 0
    if usesExternalTrafficChain:
        n += 1 if not svcInfo.external_policy_local else 2 + (1 if hasLocalDetector else 0)
        n += 1 if hasExternalEndpoints else 0
    if usesFWChain:
        n += len(svcInfo.load_balancer_source_ranges) + (len(svcInfo.load_balancer_vips) if allowFromNode else 0) + 1
    per_endpoint = 2 if svcInfo.session_affinity_client_ip else 1  # affinity rcheck + the ladder
    n += per_endpoint * (clusterPolicyEndpoints + localPolicyEndpoints)
    return n + 2 * endpointChains


def write_service_to_endpoint_rules(
    natRules: LineBuffer,
    svcPortNameString: str,
    svcInfo: ServicePortInfo,
    svcChain: str,
    endpointChains: Sequence[str],
    endpoints: Sequence[str],
    largeClusterMode: bool,
    ladders: dict[int, list[str]],
) -> None:
    """``writeServiceToEndpointRules``: affinity rcheck rules, then the probability ladder, for
    the endpoints (``ip:port``) and their KUBE-SEP chains; one block of rules."""
    head = "-A " + svcChain + " "
    rules = []
    if svcInfo.session_affinity_client_ip:
        # First write session affinity rules, if applicable.
        rules += [
            head + ("" if largeClusterMode else f'-m comment --comment "{svcPortNameString} -> {endpoint}" ')
            + f"-m recent --name {chain} --rcheck --seconds {svcInfo.sticky_seconds} --reap -j {chain}"
            for chain, endpoint in zip(endpointChains, endpoints)
        ]
    # Now write loadbalancing rules: each rule but the last is a probabilistic match; the
    # final (or only if n == 1) rule is a guaranteed match.
    ladder = _ladder(len(endpoints), ladders)
    if largeClusterMode:
        rules += [head + step + chain for step, chain in zip(ladder, endpointChains)]
    else:
        rules += [f'{head}-m comment --comment "{svcPortNameString} -> {endpoint}" {step}{chain}'
                  for step, chain, endpoint in zip(ladder, endpointChains, endpoints)]
    natRules.write_block(svcChain, "\n".join(rules), len(rules))


def render_node(state: ClusterState, node_name: str, **config_overrides) -> RuleSet:
    """Render the ruleset of one node of ``state`` (kind's kube-proxy configuration by default)."""
    return render(state.services, state.endpoint_slices, ProxyConfig.for_node(state, node_name, **config_overrides))


class IptablesMode:
    """The iptables mode as :class:`kslab.proxy.proxier.Proxier` drives it (a ``ProxyMode``)."""

    name = "iptables"
    make_service_info = ServicePortInfo
    make_endpoint_info = staticmethod(new_endpoint_info)

    @staticmethod
    def new_state() -> None:
        """The iptables mode keeps no state of its own between syncs."""
        return None

    @staticmethod
    def sync_rules(
        service_ports: Sequence[ServicePortInfo],
        endpoints_map: Mapping[ServicePortName, list[EndpointInfo]],
        config: ProxyConfig,
        *,
        partial_services: Collection[str] | None = None,
        state: None = None,
        now: float = 0.0,
    ) -> RuleSet:
        return sync_proxy_rules(service_ports, endpoints_map, config, partial_services=partial_services)


MODE = IptablesMode()
