"""Service ports as kube-proxy sees them, whatever its mode.

Mirrors ``pkg/proxy/{types.go,serviceport.go}`` and ``pkg/api/v1/service/util.go``: a Service
becomes one :class:`BaseServicePortInfo` per ``spec.ports`` entry, addresses parsed the way
kube-proxy parses them. A proxy mode extends it with what it needs (the iptables mode adds its
chain names: :class:`kslab.proxy.iptables.chains.ServicePortInfo`). Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Callable, NamedTuple

from ..errors import InputError
from ..model import DEFAULT_AFFINITY_TIMEOUT, Service
from .util import ip_family, parse_cidr_sloppy, parse_ip_sloppy


class ServicePortName(NamedTuple):
    """``proxy.ServicePortName``: namespace/name plus port name and protocol (a tuple: hashed,
    compared and ordered field by field)."""

    namespace: str
    name: str
    port: str = ""
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"


def externally_accessible_service(svc: Service) -> bool:
    """``apiservice.ExternallyAccessible``."""
    return svc.type in ("LoadBalancer", "NodePort") or (svc.type == "ClusterIP" and bool(svc.external_ips))


@dataclass(slots=True)
class BaseServicePortInfo:
    """``BaseServicePortInfo``: one service port, addresses parsed."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str  # lower case: tcp, udp, sctp
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_vips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int = 0
    session_affinity_client_ip: bool = False
    sticky_seconds: int = DEFAULT_AFFINITY_TIMEOUT
    external_policy_local: bool = False
    internal_policy_local: bool = False
    service_type: str = "ClusterIP"
    target_port: int | str | None = None
    name_string: str = field(init=False, repr=False, compare=False)  # str(name), used in every rule

    def __post_init__(self) -> None:
        self.name_string = str(self.name)

    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or self.externally_accessible()

    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible())


MakeServiceInfo = Callable[..., BaseServicePortInfo]
"""``makeServicePortFunc``: a mode's service port class, built with :class:`BaseServicePortInfo`'s fields."""


def service_port_infos(svc: Service, family: int = 4,
                       make_service_info: MakeServiceInfo = BaseServicePortInfo) -> list[BaseServicePortInfo]:
    """``newBaseServiceInfo`` for every port of ``svc``; [] for services kube-proxy skips
    (:func:`service_port_fields` made into ``make_service_info``'s)."""
    return [make_service_info(*row) for row in service_port_fields(svc, family)]


def service_port_fields(svc: Service, family: int = 4) -> list[tuple]:
    """:class:`BaseServicePortInfo`'s fields, in order, for every port of ``svc``; [] for services
    kube-proxy skips.

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
    external_ips: tuple[str, ...] = ()
    if svc.external_ips:
        external_ips = tuple(ip for ip in (parse_ip_sloppy(x) for x in svc.external_ips) if ip and ip_family(ip) == family)
    vips: tuple[str, ...] = ()
    if svc.load_balancer_ingress:
        vips = tuple(ip for ip in (parse_ip_sloppy(ing.ip) for ing in svc.load_balancer_ingress
                                   if ing.ip and (ing.ip_mode is None or ing.ip_mode == "VIP"))
                     if ip and ip_family(ip) == family)
    ranges: tuple[str, ...] = ()
    if svc.load_balancer_source_ranges:
        ranges = tuple(c for c in (parse_cidr_sloppy(r) for r in svc.load_balancer_source_ranges)
                       if c and ip_family(c.split("/")[0]) == family)
    affinity = svc.session_affinity == "ClientIP"
    sticky = svc.session_affinity_timeout if svc.session_affinity_timeout is not None else DEFAULT_AFFINITY_TIMEOUT
    needs_hc = svc.type == "LoadBalancer" and ext_local

    out = []
    for p in svc.ports:
        proto = p.protocol or "TCP"
        out.append(
            (
                ServicePortName(svc.namespace, svc.name, p.name or "", proto.upper()),
                cluster_ip,
                int(p.port),
                proto.lower(),
                int(p.node_port or 0),
                external_ips,
                vips,
                ranges,
                int(svc.health_check_node_port or 0) if needs_hc else 0,
                affinity,
                int(sticky),
                ext_local,
                int_local,
                svc.type,
                p.target_port,
            )
        )
    return out


_service_order = attrgetter("namespace", "name")


def service_ports_of(services, family: int = 4,
                     make_service_info: MakeServiceInfo = BaseServicePortInfo) -> list[BaseServicePortInfo]:
    """Every service port of ``services``, Services in (namespace, name) order, ports in spec
    order (the order kslab writes them in; kube-proxy walks its ``svcPortMap`` in Go map order).
    A ``make_service_info`` with a ``make_many`` (a mode's class that names chains in a batch) makes
    them all at once."""
    rows: list[tuple] = []
    for svc in sorted(services, key=_service_order):
        rows += service_port_fields(svc, family)
    make_many = getattr(make_service_info, "make_many", None)
    return make_many(rows) if make_many is not None else [make_service_info(*row) for row in rows]


def service_signature(svc: Service) -> tuple:
    """Everything of a Service that :func:`service_port_infos` reads, as a value the change
    tracker compares cheaply (no parsing, no hashing)."""
    return (
        svc.type, svc.cluster_ip, tuple(svc.cluster_ips), svc.external_traffic_policy, svc.internal_traffic_policy,
        tuple(svc.external_ips), tuple((i.ip, i.ip_mode) for i in svc.load_balancer_ingress),
        tuple(svc.load_balancer_source_ranges), svc.session_affinity, svc.session_affinity_timeout,
        svc.health_check_node_port, tuple((p.name, p.protocol, p.port, p.node_port, p.target_port) for p in svc.ports),
    )


def _cluster_ip_families(svc: Service) -> tuple[int, ...] | None:
    """The families of a Service's cluster IPs (primary first); None for a Service kube-proxy
    never programs (ExternalName, headless) or whose cluster IPs do not parse."""
    if svc.type == "ExternalName":
        return None
    raw = svc.cluster_ips or ([svc.cluster_ip] if svc.cluster_ip else [])
    if not raw or raw[0] in ("", "None"):
        return None
    ips = [parse_ip_sloppy(x) for x in raw]
    if any(ip is None for ip in ips):
        return None
    return tuple(dict.fromkeys(ip_family(ip) for ip in ips))


def skipped_for_family(services, slices, family: int) -> list[str]:
    """What the ``family`` proxier leaves out, one note per object, for stderr: a Service with
    cluster IPs but none of ``family`` (upstream's ServiceChangeTracker ignores it for this
    proxier), and an EndpointSlice of the other family whose Service is not in this proxier
    either and is not served by the other one (a dual-stack Service's other slices are
    expected: no note). Other-family values inside a rendered Service (externalIPs, LB VIPs,
    source ranges) are dropped silently, as upstream drops them."""
    want = "IPv4" if family == 4 else "IPv6"
    other = "IPv6" if family == 4 else "IPv4"
    flag = "--family ipv6" if family == 4 else "--family ipv4"
    notes: list[str] = []
    fams: dict[tuple[str, str], tuple[int, ...] | None] = {}
    for svc in sorted(services, key=_service_order):
        f = _cluster_ip_families(svc)
        fams[(svc.namespace, svc.name)] = f
        if f is not None and family not in f:
            ips = ",".join(svc.cluster_ips or [svc.cluster_ip])
            notes.append(f"Service {svc.key} has no {want} ClusterIP ({ips}): not in the {want} proxier's rules "
                         f"(render it with {flag})")
        elif f is not None and len(f) == 1:
            # a single-stack Service's values of the other family: no proxier uses them
            # (newBaseServiceInfo drops them, logging "... don't match IP Family")
            for what, values in (("externalIPs", [parse_ip_sloppy(x) for x in svc.external_ips]),
                                 ("status.loadBalancer.ingress IPs", [parse_ip_sloppy(i.ip) for i in svc.load_balancer_ingress
                                                                      if i.ip and (i.ip_mode is None or i.ip_mode == "VIP")]),
                                 ("loadBalancerSourceRanges", [parse_cidr_sloppy(r) for r in svc.load_balancer_source_ranges])):
                dropped = [v for v in values if v and ip_family(v) != family]
                if dropped:
                    extra = ""
                    if what == "loadBalancerSourceRanges" and len(dropped) == len([v for v in values if v]):
                        extra = ": none of its own family is left, so its load balancer IPs accept every source"
                    notes.append(f"Service {svc.key} is {want} only: its {what} {', '.join(dropped)} "
                                 f"{'are' if len(dropped) > 1 else 'is'} {other}, in no proxier's rules{extra}")
    for sl in sorted(slices, key=lambda s: (s.namespace, s.name)):
        if sl.address_type != other or not sl.endpoints:
            continue
        key = (sl.namespace, sl.service_name)
        f = fams.get(key, ())
        if f is None:  # headless or ExternalName: no proxier programs it
            continue
        slice_family = 6 if family == 4 else 4
        if f and slice_family in f:
            continue  # its Service's other-family proxier uses it
        whose = f"of Service {sl.namespace}/{sl.service_name}" if sl.service_name else "of no Service"
        notes.append(f"EndpointSlice {sl.key} ({other}, {whose}) is not in the {want} proxier's rules"
                     + (f" (render it with {flag})" if not f else f": the Service has no {other} ClusterIP"))
    return notes
