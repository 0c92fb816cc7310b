"""Endpoints as kube-proxy sees them, whatever its mode.

Mirrors ``pkg/proxy/{endpoint.go,endpointslicecache.go}``: EndpointSlices become, per service
port, a sorted, de-duplicated list of :class:`BaseEndpointInfo`. A proxy mode extends the
endpoint with what it needs (the iptables mode adds its KUBE-SEP chain name:
:class:`kslab.proxy.iptables.chains.EndpointInfo`). Everything here is pure.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Callable, Iterable, Sequence

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
    without topology hints (what a large cluster mostly has), kept as columns (sequences of
    strings, sorted on "ip:port") instead of an endpoint info each; :meth:`infos` makes the
    endpoint infos when they are asked for (a renderer writes rules from :attr:`ips` and
    :attr:`endpoints` without them). :func:`build_endpoints_map` returns these only when asked to
    (``columns=True``).

    ``details`` gives each endpoint's node, zone and target pod (what only the infos need):
    ``(nodes, zones, pods)`` in the columns' order, or the one EndpointSlice that gave every
    endpoint (they are looked up in it when the infos are made)."""

    __slots__ = ("svc_port_name", "port", "node_name", "make_endpoint_info", "ips", "endpoints", "_details",
                 "_infos")

    def __init__(self, svc_port_name: ServicePortName, port: int, node_name: str, make_endpoint_info: MakeEndpointInfo,
                 ips: Sequence[str], endpoints: Sequence[str], details: tuple | EndpointSlice) -> None:
        self.svc_port_name = svc_port_name
        self.port = port
        self.node_name = node_name  # the node rendered for (is_local)
        self.make_endpoint_info = make_endpoint_info
        self.ips = ips  # per endpoint, sorted on "ip:port": the IP
        self.endpoints = endpoints  # and "ip:port"
        self._details = details
        self._infos: list[BaseEndpointInfo] | None = None

    def __len__(self) -> int:
        return len(self.ips)

    def __bool__(self) -> bool:
        return bool(self.ips)

    def details(self) -> tuple[Sequence, Sequence, Sequence]:
        """Each endpoint's node, zone and target pod, in the columns' order."""
        d = self._details
        if type(d) is not tuple:  # the slice: its endpoints by "ip:port"
            suffix = f":{self.port}"
            by_key = {e.addresses[0] + suffix: e for e in d.endpoints}
            eps = [by_key[k] for k in self.endpoints]
            d = self._details = ([e.node_name for e in eps], [e.zone for e in eps], [e.target_pod for e in eps])
        return d

    def infos(self) -> list[BaseEndpointInfo]:
        """The endpoint infos (made once)."""
        if self._infos is None:
            make = self.make_endpoint_info(self.svc_port_name)
            port, here = self.port, self.node_name
            nodes, zones, pods = self.details()
            self._infos = [make(ip, port, node == here and bool(node), True, True, False, _EMPTY, _EMPTY, node, zone, pod,
                                endpoint)
                           for ip, endpoint, node, zone, pod in zip(self.ips, self.endpoints, nodes, zones, pods)]
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

    Only slices of the proxier's ``family`` (``addressType``) count, as in upstream's
    per-family EndpointsChangeTracker; what is left out is said by
    :func:`kslab.proxy.serviceport.skipped_for_family` (``kslab render``'s notes).

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
    # With ``columns``, a service port first seen in a slice whose endpoints are all plain, with
    # canonical IPv4 addresses and no duplicate, is kept as that slice's columns (no row per
    # endpoint: what a large cluster mostly has); a second slice for it makes the columns rows.
    service: tuple[str, str] | None = None
    grouped: dict[ServicePortName, tuple[int, dict[str, tuple] | _SliceColumns]] = {}
    plain: dict[ServicePortName, bool] = {}

    def flush() -> None:
        for spn, (port, b) in grouped.items():
            if type(b) is _SliceColumns:
                # (tuples: of strings only, the garbage collector stops tracking them)
                keys = sorted(b.keys)
                ips = b.ips if keys == b.keys else [k[:b.cut] for k in keys]
                out[spn] = EndpointColumns(spn, port, node_name, make_endpoint_info, tuple(ips), tuple(keys), b.slice)
            elif columns and plain[spn]:
                ips, _, _, _, _, _, _, _, nodes, zones, pods, keys = zip(*sorted(b.values(), key=_row_key)) if b else _NO_ROWS
                out[spn] = EndpointColumns(spn, port, node_name, make_endpoint_info, ips, keys, (nodes, zones, pods))
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
        slice_ips: list[str] | None = None  # the slice's columns, once found plain (None: not looked at)
        for p in sl.ports:
            if p.port is None:
                continue
            spn = ServicePortName(sl.namespace, sl.service_name, p.name or "", (p.protocol or "TCP").upper())
            port = int(p.port)
            group = grouped.get(spn)
            suffix = f":{port}"
            if group is None and columns and v4:
                if slice_ips is None:
                    slice_ips = _plain_ipv4_columns(sl.endpoints)
                if slice_ips:
                    keys = [ip + suffix for ip in slice_ips]
                    if len(set(keys)) == len(keys):
                        grouped[spn] = (port, _SliceColumns(slice_ips, keys, sl, -len(suffix)))
                        plain[spn] = True
                        continue
            if group is None:
                group = grouped[spn] = (port, {})
                plain[spn] = True
            elif type(group[1]) is _SliceColumns:  # a second slice for this service port: rows after all
                group = grouped[spn] = (group[0], group[1].rows(group[0], node_name))
            bucket = group[1]
            all_plain = plain[spn] and port == group[0]  # (columns have one port: two ports of one name are rows)
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


class _SliceColumns:
    """A service port's endpoints as one slice gave them, all plain (see :func:`build_endpoints_map`):
    IPs and "ip:port" keys in the slice's order, the slice, and where a key's IP ends."""

    __slots__ = ("ips", "keys", "slice", "cut")

    def __init__(self, ips: list[str], keys: list[str], sl: EndpointSlice, cut: int) -> None:
        self.ips, self.keys, self.slice, self.cut = ips, keys, sl, cut

    def rows(self, port: int, node_name: str) -> dict[str, tuple]:
        """The bucket :func:`build_endpoints_map` would have made of them."""
        return {key: (ip, port, e.node_name == node_name and bool(e.node_name), True, True, False, _EMPTY, _EMPTY,
                      e.node_name, e.zone, e.target_pod, key)
                for ip, key, e in zip(self.ips, self.keys, self.slice.endpoints)}


def _plain_ipv4_columns(endpoints: list) -> list[str] | bool:
    """The first address of each endpoint, if every endpoint is plain (ready or unset, serving or
    unset, not terminating, no hints) and has a canonical IPv4 address first; else False."""
    try:
        ips = [e.addresses[0] for e in endpoints]
        if [e for e in endpoints if (e.ready is not True and e.ready is not None) or (
                e.serving is not True and e.serving is not None) or e.terminating or e.hints_for_zones
                or e.hints_for_nodes]:
            return False
        for _ in map(_inet_pton, repeat(_AF_INET, len(ips)), ips):  # raises on anything but a canonical dotted quad
            pass
    except (IndexError, TypeError, OSError):
        return False
    return ips


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
