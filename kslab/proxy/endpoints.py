"""Endpoints as kube-proxy sees them, whatever its mode.

Mirrors ``pkg/proxy/{endpoint.go,endpointslicecache.go}``: EndpointSlices become, per service
port, a sorted, de-duplicated list of :class:`BaseEndpointInfo`. A proxy mode extends the
endpoint with what it needs (the iptables mode adds its KUBE-SEP chain name:
:class:`kslab.proxy.iptables.chains.EndpointInfo`). Everything here is pure.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from operator import attrgetter, itemgetter
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


class EndpointColumns:
    """One service port's endpoints when all of them are ready, serving, not terminating and
    without topology hints (what a large cluster mostly has), kept as columns (tuples of
    strings) instead of an endpoint info each; :meth:`infos` makes the endpoint infos when they
    are asked for (a renderer writes rules from :attr:`ips` and :attr:`endpoints` without them).
    :func:`build_endpoints_map` returns these only when asked to (``columns=True``)."""

    __slots__ = ("svc_port_name", "port", "node_name", "make_endpoint_info", "ips", "endpoints", "nodes", "zones",
                 "pods", "_infos")

    def __init__(self, svc_port_name: ServicePortName, port: int, node_name: str, make_endpoint_info: MakeEndpointInfo,
                 ips: tuple[str, ...], endpoints: tuple[str, ...], nodes: tuple, zones: tuple, pods: tuple) -> None:
        self.svc_port_name = svc_port_name
        self.port = port
        self.node_name = node_name  # the node rendered for (is_local)
        self.make_endpoint_info = make_endpoint_info
        # per endpoint, sorted on "ip:port": the IP, "ip:port", its node, zone and target pod
        self.ips = ips
        self.endpoints = endpoints
        self.nodes = nodes
        self.zones = zones
        self.pods = pods
        self._infos: list[BaseEndpointInfo] | None = None

    def __len__(self) -> int:
        return len(self.ips)

    def __bool__(self) -> bool:
        return bool(self.ips)

    def infos(self) -> list[BaseEndpointInfo]:
        """The endpoint infos (made once)."""
        if self._infos is None:
            make = self.make_endpoint_info(self.svc_port_name)
            port, here = self.port, self.node_name
            self._infos = [make(ip, port, node == here and bool(node), True, True, False, _EMPTY, _EMPTY, node, zone, pod,
                                endpoint)
                           for ip, endpoint, node, zone, pod in zip(self.ips, self.endpoints, self.nodes, self.zones, self.pods)]
        return self._infos


EndpointsMap = dict[ServicePortName, list[BaseEndpointInfo]]


def build_endpoints_map(
    slices: Iterable[EndpointSlice],
    node_name: str,
    family: int = 4,
    make_endpoint_info: MakeEndpointInfo = base_endpoint_info,
    *,
    columns: bool = False,
) -> EndpointsMap:
    """EndpointSliceCache: merge all slices of each service into per-port endpoint lists.

    Only ``addresses[0]`` of each endpoint counts; duplicates (same ``ip:port``) are merged,
    preferring a local copy, then a non-terminating one; the list is sorted as strings on
    ``ip:port`` (so ``10.1.1.11:11`` sorts before ``10.1.1.1:11``). With ``columns``, a
    service port whose endpoints are all plain (ready, serving, no hints) gets an
    :class:`EndpointColumns` instead of a list (no object per endpoint).
    """
    want_type = "IPv4" if family == 4 else "IPv6"
    v4 = family == 4
    out: EndpointsMap = {}
    # A Service's slices are next to each other in this order: its buckets are sorted into
    # the map as soon as the next Service starts (short-lived buckets, less for the GC to see).
    # A bucket holds, per "ip:port", the endpoint's fields as a row: made into endpoint infos
    # (or columns) once the service port's endpoints are known.
    service: tuple[str, str] | None = None
    grouped: dict[ServicePortName, tuple[int, dict[str, tuple]]] = {}
    plain: dict[ServicePortName, bool] = {}

    def flush() -> None:
        for spn, (port, b) in grouped.items():
            if columns and plain[spn]:
                ips, _, _, _, _, _, _, _, nodes, zones, pods, keys = zip(*sorted(b.values(), key=_row_key)) if b else _NO_ROWS
                out[spn] = EndpointColumns(spn, port, node_name, make_endpoint_info, ips, keys, nodes, zones, pods)
            else:
                make = make_endpoint_info(spn)
                out[spn] = [make(*b[k]) for k in sorted(b)]

    for sl in sorted(slices, key=_slice_order):
        if sl.address_type != want_type or not sl.service_name:
            continue
        if (sl.namespace, sl.service_name) != service:
            service = (sl.namespace, sl.service_name)
            flush()
            grouped, plain = {}, {}
        for p in sl.ports:
            if p.port is None:
                continue
            spn = ServicePortName(sl.namespace, sl.service_name, p.name or "", (p.protocol or "TCP").upper())
            port = int(p.port)
            group = grouped.get(spn)
            if group is None:
                group = grouped[spn] = (port, {})
                plain[spn] = True
            bucket = group[1]
            all_plain = plain[spn]
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
                    (is_local and not old[2]) or (old[5] and not terminating)
                ):
                    continue
                if (ready is True or ready is None) and (serving is True or serving is None) and not terminating \
                        and not zone_hints and not node_hints:
                    bucket[key] = (ip, port, is_local, True, True, False, _EMPTY, _EMPTY, node, zone, pod, key)
                else:
                    all_plain = False
                    bucket[key] = (
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
            plain[spn] = all_plain
    flush()
    return out


_row_key = itemgetter(11)  # a row's "ip:port"
_NO_ROWS: tuple = ((),) * 12
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
