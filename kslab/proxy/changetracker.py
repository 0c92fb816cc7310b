"""Change tracking (``pkg/proxy/servicechangetracker.go``, ``endpointschangetracker.go``): the
service port map and the endpoints map a proxier keeps across syncs, and which Services
(``namespace/name``) changed since the last update (``UpdatedServices``).

kube-proxy is told of each change by an informer; kslab's proxiers are handed the whole cluster
at each sync instead, so the trackers compare a cheap signature of every Service and
EndpointSlice with the one they saw last, and rebuild service ports and endpoints only for what
changed. A Service counts as updated only if what kube-proxy derives from it changed (its
service ports, or its endpoints as ``BaseEndpointInfo`` compares them), as upstream drops a
change whose previous and current states are equal.
"""

from __future__ import annotations

from typing import Iterable

from ..model import EndpointSlice, Service
from .endpoints import EndpointsMap, MakeEndpointInfo, base_endpoint_info, build_endpoints_map, endpoint_slice_signature
from .serviceport import BaseServicePortInfo, MakeServiceInfo, ServicePortName, service_port_infos, service_signature


class ServiceChangeTracker:
    """Per Service, the service ports kube-proxy built from it (``svcPortMap``)."""

    def __init__(self, family: int = 4, make_service_info: MakeServiceInfo = BaseServicePortInfo) -> None:
        self.family = family
        self.make_service_info = make_service_info
        self.service_ports: dict[str, list[BaseServicePortInfo]] = {}  # namespace/name -> its ports
        self._signatures: dict[str, tuple] = {}
        self._order: dict[str, tuple[str, str]] = {}
        self._sorted: list[BaseServicePortInfo] | None = []

    def update(self, services: Iterable[Service]) -> set[str]:
        """Take the current Services; return those whose service ports changed (added,
        removed or different)."""
        seen: set[str] = set()
        changed: set[str] = set()
        signatures = self._signatures
        dirty = False
        for svc in services:
            key = f"{svc.namespace}/{svc.name}"
            seen.add(key)
            sig = service_signature(svc)
            if signatures.get(key) == sig:  # (the equal signature is dropped at once: nothing new to keep)
                continue
            signatures[key] = sig
            dirty = True
            infos = service_port_infos(svc, self.family, self.make_service_info)
            if infos != self.service_ports.get(key, []):
                changed.add(key)
            if infos:
                self.service_ports[key] = infos
                self._order[key] = (svc.namespace, svc.name)
            else:
                self.service_ports.pop(key, None)
                self._order.pop(key, None)
        for key in signatures.keys() - seen:
            del signatures[key]
            dirty = True
            if self.service_ports.pop(key, None):
                changed.add(key)
            self._order.pop(key, None)
        if dirty:
            self._sorted = None
        return changed

    def ordered(self) -> list[BaseServicePortInfo]:
        """Every service port, Services in (namespace, name) order, ports in spec order."""
        if self._sorted is None:
            order = self._order
            self._sorted = [p for key in sorted(self.service_ports, key=order.__getitem__) for p in self.service_ports[key]]
        return self._sorted


class EndpointsChangeTracker:
    """Per service port, its endpoints on this node (``endpointsMap``), built from EndpointSlices."""

    def __init__(self, node_name: str, family: int = 4, make_endpoint_info: MakeEndpointInfo = base_endpoint_info) -> None:
        self.node_name = node_name
        self.family = family
        self.make_endpoint_info = make_endpoint_info
        self.endpoints_map: EndpointsMap = {}
        self._signatures: dict[tuple[str, str, str], tuple] = {}  # slice key -> its signature
        self._slices: dict[tuple[str, str, str], EndpointSlice] = {}  # slice key -> the slice last seen
        self._by_service: dict[str, list[ServicePortName]] = {}  # namespace/name -> its service ports in the map

    def update(self, slices: Iterable[EndpointSlice]) -> set[str]:
        """Take the current EndpointSlices; return the Services whose endpoints changed."""
        seen: dict[tuple[str, str, str], EndpointSlice] = {}
        touched: set[str] = set()
        signatures = self._signatures
        for sl in slices:
            key = (sl.namespace, sl.service_name, sl.name)
            seen[key] = sl
            sig = endpoint_slice_signature(sl)
            if signatures.get(key) != sig:  # (an equal signature is dropped at once: nothing new to keep)
                signatures[key] = sig
                touched.add(f"{sl.namespace}/{sl.service_name}")
        for key in self._slices.keys() - seen.keys():
            del signatures[key]
            touched.add(f"{key[0]}/{key[1]}")
        self._slices = seen
        if not touched:
            return set()
        by_service: dict[str, list[EndpointSlice]] = {}
        for (ns, svc_name, _), sl in seen.items():
            skey = f"{ns}/{svc_name}"
            if skey in touched:
                by_service.setdefault(skey, []).append(sl)
        fresh = build_endpoints_map([sl for s in by_service.values() for sl in s], self.node_name, self.family,
                                    self.make_endpoint_info)
        fresh_by_service: dict[str, list[ServicePortName]] = {}
        for spn in fresh:
            fresh_by_service.setdefault(spn.service_key, []).append(spn)
        changed: set[str] = set()
        emap = self.endpoints_map
        for skey in touched:
            old_spns = self._by_service.pop(skey, [])
            new_spns = fresh_by_service.get(skey, [])
            before = {spn: [e.key() for e in emap[spn]] for spn in old_spns}
            after = {spn: [e.key() for e in fresh[spn]] for spn in new_spns}
            if before != after:
                changed.add(skey)
            for spn in old_spns:
                del emap[spn]
            for spn in new_spns:
                emap[spn] = fresh[spn]
            if new_spns:
                self._by_service[skey] = new_spns
        return changed
