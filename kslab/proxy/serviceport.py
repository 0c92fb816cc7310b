"""Service ports and endpoints as kube-proxy sees them.

Mirrors ``pkg/proxy/{types.go,serviceport.go,endpoint.go,endpointslicecache.go,topology.go}`` and
``pkg/api/v1/service/util.go``: a Service becomes one :class:`ServicePortInfo` per ``spec.ports``
entry, EndpointSlices become a sorted, de-duplicated list of :class:`EndpointInfo` per service
port, and :func:`categorize_endpoints` decides which endpoints the cluster and local policy
chains use. Everything here is pure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import InputError
from ..model import DEFAULT_AFFINITY_TIMEOUT, EndpointSlice, Service

# ---------------------------------------------------------------------------------------------
# IP parsing the way kube-proxy does it (k8s.io/utils/net ParseIPSloppy / ParseCIDRSloppy)
# ---------------------------------------------------------------------------------------------


_CANONICAL_V4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_EMPTY: frozenset[str] = frozenset()


def _sloppy_v4(s: str) -> str | None:
    if _CANONICAL_V4.fullmatch(s):
        return s
    parts = s.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        # Go's pre-1.17 parser: decimal digits, leading zeros allowed and read as decimal.
        if not p or not p.isascii() or not p.isdigit():
            return None
        v = int(p)
        if v > 255:
            return None
        out.append(str(v))
    return ".".join(out)


@lru_cache(maxsize=65536)
def parse_ip_sloppy(s: str) -> str | None:
    """``netutils.ParseIPSloppy(s).String()``, or None if ``s`` is not an IP.

    Leading zeros are decimal (``10.180.00.001`` is ``10.180.0.1``), as in the legacy parser
    that kube-proxy keeps for objects created before the API server became strict.
    """
    if not isinstance(s, str) or not s:
        return None
    if ":" not in s:
        return _sloppy_v4(s)
    try:
        ip = ipaddress.IPv6Address(s)
    except ValueError:
        return None
    if ip.ipv4_mapped is not None:  # Go prints ::ffff:a.b.c.d as a.b.c.d
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_cidr_sloppy(s: str) -> str | None:
    """``netutils.ParseCIDRSloppy(strings.TrimSpace(s))`` printed canonically (network address)."""
    if not isinstance(s, str):
        return None
    s = s.strip()
    if "/" not in s:
        return None
    addr, _, plen = s.partition("/")
    ip = parse_ip_sloppy(addr)
    if ip is None or not plen.isdigit():
        return None
    try:
        net = ipaddress.ip_network(f"{ip}/{int(plen)}", strict=False)
    except ValueError:
        return None
    return str(net)


def ip_family(ip: str) -> int:
    return 6 if ":" in ip else 4


def cidr_contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Chain names (proxier.go servicePortChainName & co.)
# ---------------------------------------------------------------------------------------------


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # 10-bit groups -> two characters
_sha256 = hashlib.sha256


def chain_hash(s: str) -> str:
    """First 16 characters of base32(sha256(s)): the suffix of every per-service chain.

    Same as ``base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]``; the 16
    characters are exactly the first 80 bits of the digest, encoded here ten bits at a time
    because the renderer hashes every service port and endpoint.
    """
    n = int.from_bytes(_sha256(s.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (
        p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023] + p[(n >> 40) & 1023]
        + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023]
    )


@dataclass(frozen=True, order=True)
class ServicePortName:
    """``proxy.ServicePortName``: namespace/name plus port name and protocol."""

    namespace: str
    name: str
    port: str = ""
    protocol: str = "TCP"

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class EndpointInfo:
    """``proxy.BaseEndpointInfo`` plus the iptables proxier's SEP chain name."""

    ip: str
    port: int
    is_local: bool
    ready: bool
    serving: bool
    terminating: bool
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()
    node_name: str | None = None
    zone: str | None = None
    target_pod: str | None = None
    chain: str = ""

    def __str__(self) -> str:  # net.JoinHostPort
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def addr(self) -> str:
        return str(self)


def build_endpoints_map(
    slices: list[EndpointSlice], node_name: str, family: int = 4
) -> dict[ServicePortName, list[EndpointInfo]]:
    """EndpointSliceCache: merge all slices of each service into per-port endpoint lists.

    Only ``addresses[0]`` of each endpoint counts; duplicates (same ``ip:port``) are merged,
    preferring a local copy, then a non-terminating one; the list is sorted as strings on
    ``ip:port`` (so ``10.1.1.11:11`` sorts before ``10.1.1.1:11``).
    """
    want_type = "IPv4" if family == 4 else "IPv6"
    grouped: dict[ServicePortName, dict[str, EndpointInfo]] = {}
    for sl in sorted(slices, key=lambda s: (s.namespace, s.service_name, s.name)):
        if sl.address_type != want_type or not sl.service_name:
            continue
        for p in sl.ports:
            if p.port is None:
                continue
            spn = ServicePortName(sl.namespace, sl.service_name, p.name or "", (p.protocol or "TCP").upper())
            chain_prefix = str(spn) + spn.protocol.lower()
            bucket = grouped.setdefault(spn, {})
            for ep in sl.endpoints:
                if not ep.addresses:
                    continue
                ip = parse_ip_sloppy(ep.addresses[0])
                if ip is None or ip_family(ip) != family:
                    continue
                is_local = bool(ep.node_name) and ep.node_name == node_name
                key = f"[{ip}]:{p.port}" if family == 6 else f"{ip}:{p.port}"
                info = EndpointInfo(
                    ip=ip,
                    port=int(p.port),
                    is_local=is_local,
                    ready=ep.ready is None or bool(ep.ready),
                    serving=ep.serving is None or bool(ep.serving),
                    terminating=bool(ep.terminating),
                    zone_hints=frozenset(ep.hints_for_zones) if ep.hints_for_zones else _EMPTY,
                    node_hints=frozenset(ep.hints_for_nodes) if ep.hints_for_nodes else _EMPTY,
                    node_name=ep.node_name,
                    zone=ep.zone,
                    target_pod=ep.target_pod,
                    chain="KUBE-SEP-" + chain_hash(chain_prefix + key),
                )
                old = bucket.get(key)
                if old is not None and not (
                    (info.is_local and not old.is_local) or (old.terminating and not info.terminating)
                ):
                    continue
                bucket[key] = info
    return {spn: [b[k] for k in sorted(b)] for spn, b in grouped.items()}


# ---------------------------------------------------------------------------------------------
# Service ports
# ---------------------------------------------------------------------------------------------


def externally_accessible_service(svc: Service) -> bool:
    """``apiservice.ExternallyAccessible``."""
    return svc.type in ("LoadBalancer", "NodePort") or (svc.type == "ClusterIP" and bool(svc.external_ips))


@dataclass
class ServicePortInfo:
    """``servicePortInfo`` of the iptables proxier: one service port, addresses parsed."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str  # lower case: tcp, udp, sctp
    node_port: int = 0
    external_ips: list[str] = field(default_factory=list)
    load_balancer_vips: list[str] = field(default_factory=list)
    load_balancer_source_ranges: list[str] = field(default_factory=list)
    health_check_node_port: int = 0
    session_affinity_client_ip: bool = False
    sticky_seconds: int = DEFAULT_AFFINITY_TIMEOUT
    external_policy_local: bool = False
    internal_policy_local: bool = False
    service_type: str = "ClusterIP"
    target_port: int | str | None = None

    def __post_init__(self) -> None:
        self.name_string = str(self.name)
        h = chain_hash(self.name_string + self.protocol)
        self.svc_chain = "KUBE-SVC-" + h
        self.svl_chain = "KUBE-SVL-" + h
        self.ext_chain = "KUBE-EXT-" + h
        self.fw_chain = "KUBE-FW-" + h

    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or self.externally_accessible()

    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible())


def service_port_infos(svc: Service, family: int = 4) -> list[ServicePortInfo]:
    """``newBaseServiceInfo`` for every port of ``svc``; [] for services kube-proxy skips.

    Skipped: headless (clusterIP None or empty), ExternalName, a cluster IP of the other family.
    Values are parsed as kube-proxy parses them (sloppy IPs, trimmed CIDRs); unparseable
    addresses in lists are dropped, as kube-proxy drops them.
    """
    if svc.type == "ExternalName":
        return []
    cluster_ip = None
    candidates = svc.cluster_ips or ([svc.cluster_ip] if svc.cluster_ip else [])
    if not candidates or candidates[0] in ("", "None"):
        return []
    for raw in candidates:
        ip = parse_ip_sloppy(raw)
        if ip is None:
            raise InputError(
                f"Service {svc.key}: spec.clusterIP",
                f"{raw!r} is not an IP address",
                "write an IPv4/IPv6 address, or None for a headless Service",
            )
        if ip_family(ip) == family:
            cluster_ip = ip
            break
    if cluster_ip is None:
        return []

    ext_local = externally_accessible_service(svc) and svc.external_traffic_policy == "Local"
    int_local = svc.internal_traffic_policy == "Local"
    external_ips = [ip for ip in (parse_ip_sloppy(x) for x in svc.external_ips) if ip and ip_family(ip) == family]
    vips = []
    for ing in svc.load_balancer_ingress:
        if ing.ip and (ing.ip_mode is None or ing.ip_mode == "VIP"):
            ip = parse_ip_sloppy(ing.ip)
            if ip and ip_family(ip) == family:
                vips.append(ip)
    ranges = []
    for r in svc.load_balancer_source_ranges:
        c = parse_cidr_sloppy(r)
        if c and ip_family(c.split("/")[0]) == family:
            ranges.append(c)
    affinity = svc.session_affinity == "ClientIP"
    sticky = svc.session_affinity_timeout if svc.session_affinity_timeout is not None else DEFAULT_AFFINITY_TIMEOUT
    needs_hc = svc.type == "LoadBalancer" and ext_local

    out = []
    for p in svc.ports:
        out.append(
            ServicePortInfo(
                name=ServicePortName(svc.namespace, svc.name, p.name or "", (p.protocol or "TCP").upper()),
                cluster_ip=cluster_ip,
                port=int(p.port),
                protocol=(p.protocol or "TCP").lower(),
                node_port=int(p.node_port or 0),
                external_ips=list(external_ips),
                load_balancer_vips=list(vips),
                load_balancer_source_ranges=list(ranges),
                health_check_node_port=int(svc.health_check_node_port or 0) if needs_hc else 0,
                session_affinity_client_ip=affinity,
                sticky_seconds=int(sticky),
                external_policy_local=ext_local,
                internal_policy_local=int_local,
                service_type=svc.type,
                target_port=p.target_port,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# CategorizeEndpoints (pkg/proxy/topology.go)
# ---------------------------------------------------------------------------------------------


@dataclass
class CategorizedEndpoints:
    cluster: list[EndpointInfo]
    local: list[EndpointInfo]
    all_reachable: list[EndpointInfo]
    has_any: bool
    topology_mode: str = ""  # "", "PreferSameZone" or "PreferSameNode"


def topology_mode_from_hints(
    endpoints: list[EndpointInfo], node_name: str, zone: str, prefer_same_node: bool = True
) -> str:
    has_for_node = False
    all_node_hints = True
    has_for_zone = False
    all_zone_hints = True
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.node_hints:
            all_node_hints = False
        elif node_name in ep.node_hints:
            has_for_node = True
        if not ep.zone_hints:
            all_zone_hints = False
        elif zone in ep.zone_hints:
            has_for_zone = True
    if prefer_same_node and all_node_hints and has_for_node:
        return "PreferSameNode"
    if all_zone_hints and has_for_zone:
        return "PreferSameZone"
    return ""


def _available_for_topology(ep: EndpointInfo, mode: str, node_name: str, zone: str) -> bool:
    if mode == "PreferSameNode":
        return node_name in ep.node_hints
    if mode == "PreferSameZone":
        return zone in ep.zone_hints
    return True


def categorize_endpoints(
    endpoints: list[EndpointInfo],
    svc: ServicePortInfo,
    node_name: str,
    node_zone: str = "",
    prefer_same_node: bool = True,
) -> CategorizedEndpoints:
    cluster: list[EndpointInfo] = []
    local: list[EndpointInfo] = []
    has_any = False
    mode = ""
    use_serving_terminating = False

    if svc.uses_cluster_endpoints():
        mode = topology_mode_from_hints(endpoints, node_name, node_zone, prefer_same_node)
        cluster = [e for e in endpoints if e.ready and _available_for_topology(e, mode, node_name, node_zone)]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        if cluster:
            has_any = True

    if not svc.uses_local_endpoints():
        return CategorizedEndpoints(cluster, [], cluster, has_any, mode)

    local_ready = local_st = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.is_local
        elif e.serving and e.terminating:
            has_any = True
            local_st = local_st or e.is_local
    if local_ready:
        local = [e for e in endpoints if e.ready and e.is_local]
    elif local_st:
        use_serving_terminating = True
        local = [e for e in endpoints if e.serving and e.terminating and e.is_local]

    if not svc.uses_cluster_endpoints():
        return CategorizedEndpoints([], local, local, has_any, mode)
    if not mode and not use_serving_terminating:
        return CategorizedEndpoints(cluster, local, cluster, has_any, mode)
    merged = {str(e): e for e in cluster}
    merged.update({str(e): e for e in local})
    return CategorizedEndpoints(cluster, local, [merged[k] for k in sorted(merged)], has_any, mode)
