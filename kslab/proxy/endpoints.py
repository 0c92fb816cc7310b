"""Endpoints as kube-proxy sees them, whatever its mode.

Mirrors ``pkg/proxy/{endpoint.go,endpointslicecache.go}``: EndpointSlices become, per service
port, a sorted, de-duplicated list of :class:`BaseEndpointInfo`. A proxy mode extends the
endpoint with what it needs (the iptables mode adds its KUBE-SEP chain name:
:class:`kslab.proxy.iptables.chains.EndpointInfo`). Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..model import EndpointSlice
from .serviceport import ServicePortName
from .util import parse_ip_sloppy

_EMPTY: frozenset[str] = frozenset()


@dataclass(slots=True, eq=False)
class BaseEndpointInfo:
    """``proxy.BaseEndpointInfo``: one endpoint of one service port."""

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

    def __str__(self) -> str:  # net.JoinHostPort
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def addr(self) -> str:
        return str(self)

    def key(self) -> tuple:
        """What the change tracker compares (``reflect.DeepEqual`` of BaseEndpointInfo)."""
        return (self.ip, self.port, self.is_local, self.ready, self.serving, self.terminating,
                self.zone_hints, self.node_hints, self.node_name, self.zone)


MakeEndpointInfo = Callable[[ServicePortName], Callable[..., BaseEndpointInfo]]
"""``makeEndpointFunc``, per service port: given the service port, the function that builds one
of its endpoints from :class:`BaseEndpointInfo`'s fields (a mode adds its own, e.g. a chain name)."""


def _base_endpoint_info(svc_port_name: ServicePortName) -> Callable[..., BaseEndpointInfo]:
    return BaseEndpointInfo


EndpointsMap = dict[ServicePortName, list[BaseEndpointInfo]]


def build_endpoints_map(
    slices: Iterable[EndpointSlice],
    node_name: str,
    family: int = 4,
    make_endpoint_info: MakeEndpointInfo = _base_endpoint_info,
) -> EndpointsMap:
    """EndpointSliceCache: merge all slices of each service into per-port endpoint lists.

    Only ``addresses[0]`` of each endpoint counts; duplicates (same ``ip:port``) are merged,
    preferring a local copy, then a non-terminating one; the list is sorted as strings on
    ``ip:port`` (so ``10.1.1.11:11`` sorts before ``10.1.1.1:11``).
    """
    want_type = "IPv4" if family == 4 else "IPv6"
    grouped: dict[ServicePortName, dict[str, BaseEndpointInfo]] = {}
    makers: dict[ServicePortName, Callable[..., BaseEndpointInfo]] = {}
    for sl in sorted(slices, key=lambda s: (s.namespace, s.service_name, s.name)):
        if sl.address_type != want_type or not sl.service_name:
            continue
        for p in sl.ports:
            if p.port is None:
                continue
            spn = ServicePortName(sl.namespace, sl.service_name, p.name or "", (p.protocol or "TCP").upper())
            make = makers.get(spn)
            if make is None:
                make = makers[spn] = make_endpoint_info(spn)
            bucket = grouped.setdefault(spn, {})
            port = int(p.port)
            for ep in sl.endpoints:
                if not ep.addresses:
                    continue
                ip = parse_ip_sloppy(ep.addresses[0])
                if ip is None:
                    continue
                if family == 4:
                    if ":" in ip:
                        continue
                    key = f"{ip}:{port}"
                else:
                    if ":" not in ip:
                        continue
                    key = f"[{ip}]:{port}"
                node = ep.node_name
                info = make(
                    ip,
                    port,
                    bool(node) and node == node_name,
                    ep.ready is None or bool(ep.ready),
                    ep.serving is None or bool(ep.serving),
                    bool(ep.terminating),
                    frozenset(ep.hints_for_zones) if ep.hints_for_zones else _EMPTY,
                    frozenset(ep.hints_for_nodes) if ep.hints_for_nodes else _EMPTY,
                    node,
                    ep.zone,
                    ep.target_pod,
                )
                old = bucket.get(key)
                if old is not None and not (
                    (info.is_local and not old.is_local) or (old.terminating and not info.terminating)
                ):
                    continue
                bucket[key] = info
    return {spn: [b[k] for k in sorted(b)] for spn, b in grouped.items()}


def endpoint_slice_signature(sl: EndpointSlice) -> tuple:
    """Everything of an EndpointSlice that :func:`build_endpoints_map` reads, as a value the
    change tracker can compare cheaply (no parsing, no hashing)."""
    return (
        sl.address_type,
        tuple((p.port, p.name, p.protocol) for p in sl.ports),
        tuple(
            (tuple(e.addresses), e.ready, e.serving, e.terminating, e.node_name, e.zone,
             tuple(e.hints_for_zones) if e.hints_for_zones else None,
             tuple(e.hints_for_nodes) if e.hints_for_nodes else None, e.target_pod)
            for e in sl.endpoints
        ),
    )
