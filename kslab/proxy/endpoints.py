"""Endpoints as kube-proxy sees them, whatever its mode.

Mirrors ``pkg/proxy/{endpoint.go,endpointslicecache.go}``: EndpointSlices become, per service
port, a sorted, de-duplicated list of :class:`BaseEndpointInfo`. A proxy mode extends the
endpoint with what it needs (the iptables mode adds its KUBE-SEP chain name:
:class:`kslab.proxy.iptables.chains.EndpointInfo`). Everything here is pure.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from operator import attrgetter
from typing import Callable, Iterable

from ..model import EndpointSlice
from .serviceport import ServicePortName
from .util import parse_ip_sloppy

_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET

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
    endpoint: str = ""  # "ip:port" (net.JoinHostPort), as upstream keeps it

    def __str__(self) -> str:
        return self.endpoint or (f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}")

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


def base_endpoint_info(svc_port_name: ServicePortName) -> Callable[..., BaseEndpointInfo]:
    return BaseEndpointInfo


EndpointsMap = dict[ServicePortName, list[BaseEndpointInfo]]


def build_endpoints_map(
    slices: Iterable[EndpointSlice],
    node_name: str,
    family: int = 4,
    make_endpoint_info: MakeEndpointInfo = base_endpoint_info,
) -> EndpointsMap:
    """EndpointSliceCache: merge all slices of each service into per-port endpoint lists.

    Only ``addresses[0]`` of each endpoint counts; duplicates (same ``ip:port``) are merged,
    preferring a local copy, then a non-terminating one; the list is sorted as strings on
    ``ip:port`` (so ``10.1.1.11:11`` sorts before ``10.1.1.1:11``).
    """
    want_type = "IPv4" if family == 4 else "IPv6"
    v4 = family == 4
    out: EndpointsMap = {}
    # A Service's slices are next to each other in this order: its buckets are sorted into
    # the map as soon as the next Service starts (short-lived buckets, less for the GC to see).
    service: tuple[str, str] | None = None
    grouped: dict[ServicePortName, dict[str, BaseEndpointInfo]] = {}
    makers: dict[ServicePortName, Callable[..., BaseEndpointInfo]] = {}
    for sl in sorted(slices, key=_slice_order):
        if sl.address_type != want_type or not sl.service_name:
            continue
        if (sl.namespace, sl.service_name) != service:
            service = (sl.namespace, sl.service_name)
            for spn, b in grouped.items():
                out[spn] = [b[k] for k in sorted(b)]
            grouped, makers = {}, {}
        for p in sl.ports:
            if p.port is None:
                continue
            spn = ServicePortName(sl.namespace, sl.service_name, p.name or "", (p.protocol or "TCP").upper())
            make = makers.get(spn)
            if make is None:
                make = makers[spn] = make_endpoint_info(spn)
            bucket = grouped.get(spn)
            if bucket is None:
                bucket = grouped[spn] = {}
            port = int(p.port)
            suffix = f":{port}"
            for addresses, ready, serving, terminating, node, zone, zone_hints, node_hints, pod in map(
                    _endpoint_fields, sl.endpoints):
                if not addresses:
                    continue
                ip = addresses[0]
                if v4:
                    try:
                        _inet_pton(_AF_INET, ip)  # canonical dotted quad: as Go prints it
                    except (OSError, TypeError):
                        ip = parse_ip_sloppy(ip)
                        if ip is None or ":" in ip:
                            continue
                    key = ip + suffix
                else:
                    ip = parse_ip_sloppy(ip)
                    if ip is None or ":" not in ip:
                        continue
                    key = f"[{ip}]{suffix}"
                is_local = node == node_name and bool(node)
                old = bucket.get(key)
                if old is not None and not (
                    (is_local and not old.is_local) or (old.terminating and not terminating)
                ):
                    continue
                bucket[key] = make(
                    ip,
                    port,
                    is_local,
                    ready is None or bool(ready),
                    serving is None or bool(serving),
                    bool(terminating),
                    frozenset(zone_hints) if zone_hints else _EMPTY,
                    frozenset(node_hints) if node_hints else _EMPTY,
                    node,
                    zone,
                    pod,
                    key,
                )
    for spn, b in grouped.items():
        out[spn] = [b[k] for k in sorted(b)]
    return out


_slice_order = attrgetter("namespace", "service_name", "name")
_endpoint_fields = attrgetter("addresses", "ready", "serving", "terminating", "node_name", "zone",
                              "hints_for_zones", "hints_for_nodes", "target_pod")
"""An Endpoint's fields that count, in :func:`build_endpoints_map`'s order."""


def endpoint_slice_signature(sl: EndpointSlice) -> tuple:
    """Everything of an EndpointSlice that :func:`build_endpoints_map` reads, as a value the
    change tracker compares cheaply (no parsing, no hashing). Lists inside an endpoint
    (addresses, hints) are compared by value but held by reference: like an informer's cache,
    the tracker expects them replaced, not edited in place."""
    return (sl.address_type, [(p.port, p.name, p.protocol) for p in sl.ports], list(map(_endpoint_fields, sl.endpoints)))
