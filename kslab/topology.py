"""Topology Aware Routing on the controller side: the EndpointSlice controller's topology cache,
its hint allocation, the ``spec.trafficDistribution`` hint writer and the Events they emit.

A port of upstream ``staging/src/k8s.io/endpointslice``:

* ``topologycache/topologycache.go`` -> :class:`TopologyCache` (``SetNodes``, ``getAllocations``,
  ``AddHints``, ``SetHints``/``RemoveHints``, ``GetOverloadedServices``),
* ``topologycache/utils.go`` -> :func:`remove_hints_from_slices`, :func:`redistribute_hints`,
  :func:`giving_and_receiving_zones`, :func:`hints_by_zone`, :func:`service_overloaded`,
* ``topologycache/sliceinfo.go`` -> :class:`SliceInfo`,
* ``topologycache/event.go`` -> the message constants below,
* ``trafficdist/trafficdist.go`` -> :func:`trafficdist_hints`,
* ``reconciler.go`` (the hints part of ``reconcileByAddressType``) and ``utils.go hintsEnabled``
  -> :func:`apply_hints` and :func:`hints_enabled`.

kube-proxy's side (which endpoints a node uses given the hints) is :mod:`kslab.proxy.topology`.

Go map iteration order is random; where upstream's result depends on it (which receiving zone an
endpoint is re-hinted to, ties in the largest-giver/receiver scan) the order comes from a seeded
``random.Random``. The per-zone totals never depend on it.

Slices in ``to_create``/``to_update`` are changed in place (the reconciler built them for this
sync); slices in ``unchanged`` are never changed: a copy goes to ``to_update`` instead, as
upstream deep-copies informer objects.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import LABEL_ZONE, EndpointSlice, Event, Node, Service

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .model import ClusterState, Endpoint

# overloadThreshold: the maximum overload any individual endpoint should be exposed to
OVERLOAD_THRESHOLD = 0.2

# topologycache/event.go: TopologyAwareHints event messages (verbatim)
NO_ZONE_SPECIFIED = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES = "No hints allocated for zones"
TOPOLOGY_AWARE_HINTS_ENABLED = "Topology Aware Hints has been enabled"
TOPOLOGY_AWARE_HINTS_DISABLED = "Topology Aware Hints has been disabled"
INSUFFICIENT_NODE_INFO = "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes"
NODES_READY_IN_ONE_ZONE_ONLY = "Nodes only ready in one zone"
INSUFFICIENT_NUMBER_OF_ENDPOINTS = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD = (
    "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold"
)

# event reasons and types (v1.EventTypeNormal / v1.EventTypeWarning)
REASON_ENABLED = "TopologyAwareHintsEnabled"
REASON_DISABLED = "TopologyAwareHintsDisabled"
NORMAL = "Normal"
WARNING = "Warning"
EVENT_SOURCE = "endpoint-slice-controller"

# v1.DeprecatedAnnotationTopologyAwareHints and v1.AnnotationTopologyMode
ANNOTATION_TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"
ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"

# spec.trafficDistribution values (corev1.ServiceTrafficDistribution*)
PREFER_CLOSE = "PreferClose"
PREFER_SAME_ZONE = "PreferSameZone"
PREFER_SAME_NODE = "PreferSameNode"
CLOSE_TRAFFIC_DISTRIBUTION = frozenset({PREFER_CLOSE, PREFER_SAME_ZONE, PREFER_SAME_NODE})

# nodes with any of these labels (any value) are left out of the CPU ratios (hasExcludedLabels)
EXCLUDED_NODE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


@dataclass(frozen=True)
class Allocation:
    """How many endpoints a zone should get (upstream ``allocation``)."""

    minimum: int
    maximum: int
    desired: float


@dataclass(frozen=True)
class HintEvent:
    """Upstream ``EventBuilder``: an event the controller records on the Service."""

    type: str
    reason: str
    message: str


@dataclass
class SliceInfo:
    """The slices of one Service and address type in one sync (upstream ``SliceInfo``)."""

    service_key: str
    address_type: str
    to_create: list[EndpointSlice] = field(default_factory=list)
    to_update: list[EndpointSlice] = field(default_factory=list)
    unchanged: list[EndpointSlice] = field(default_factory=list)

    def total_ready_endpoints(self) -> int:
        """``getTotalReadyEndpoints``: endpoints with ready == true in all three lists."""
        return sum(num_ready_endpoints(s.endpoints) for s in (*self.to_create, *self.to_update, *self.unchanged))

    def allocated_hints_by_zone(self, allocations: Mapping[str, Allocation]) -> dict[str, int]:
        """``getAllocatedHintsByZone``: count the hints of the unchanged slices that can stay as
        they are; a copy of every other unchanged slice moves to ``to_update``."""
        allocated: dict[str, int] = {}
        keep: list[EndpointSlice] = []
        for sl in self.unchanged:
            by_zone = hints_by_zone(sl, allocated, allocations)
            if by_zone is None:
                self.to_update.append(copy.deepcopy(sl))
            else:
                keep.append(sl)
                for zone, n in by_zone.items():
                    allocated[zone] = allocated.get(zone, 0) + n
        self.unchanged = keep
        return allocated


# ---- small helpers (utils.go) ----------------------------------------------------------------


def endpoint_ready(ep: Endpoint) -> bool:
    """``EndpointReady``: conditions.ready is explicitly true (nil does not count)."""
    return ep.ready is True


def num_ready_endpoints(endpoints: Iterable[Endpoint]) -> int:
    return sum(1 for ep in endpoints if endpoint_ready(ep))


def _has_hints(ep: Endpoint) -> bool:
    """``endpoint.Hints != nil``."""
    return ep.hints_for_zones is not None or ep.hints_for_nodes is not None


def _clear_hints(ep: Endpoint) -> None:
    ep.hints_for_zones = None
    ep.hints_for_nodes = None


def _set_zone_hint(ep: Endpoint, zone: str) -> None:
    """``Hints = &EndpointHints{ForZones: [{Name: zone}]}`` (a new struct: no node hints)."""
    ep.hints_for_zones = [zone]
    ep.hints_for_nodes = None


def _go_order(keys: Iterable[str], rng: random.Random) -> list[str]:
    """The keys of a Go map in one iteration: a random order, here from the seeded ``rng``."""
    out = sorted(keys)
    rng.shuffle(out)
    return out


def format_with_address_type(message: str, address_type: str) -> str:
    """``FormatWithAddressType``: ``"<message>, addressType: IPv4"``."""
    return f"{message}, addressType: {address_type}"


def hints_enabled(annotations: Mapping[str, str]) -> bool:
    """``hintsEnabled``: the old ``topology-aware-hints`` key is read first and, only when it is
    absent, ``topology-mode``; enabled only for exactly ``"Auto"`` or ``"auto"``. So the old key
    wins even when it says ``Disabled``."""
    if ANNOTATION_TOPOLOGY_AWARE_HINTS in annotations:
        val = annotations[ANNOTATION_TOPOLOGY_AWARE_HINTS]
    elif ANNOTATION_TOPOLOGY_MODE in annotations:
        val = annotations[ANNOTATION_TOPOLOGY_MODE]
    else:
        return False
    return val in ("Auto", "auto")


def valid_traffic_distribution(traffic_distribution: str | None, prefer_same: bool = True) -> bool:
    """``Reconciler.validTrafficDistribution``: PreferClose always; PreferSameZone and
    PreferSameNode only with the PreferSameTrafficDistribution gate (``prefer_same``)."""
    if traffic_distribution is None:
        return False
    if traffic_distribution == PREFER_CLOSE:
        return True
    if not prefer_same:
        return False
    return traffic_distribution in (PREFER_SAME_ZONE, PREFER_SAME_NODE)


def remove_hints_from_slices(si: SliceInfo) -> tuple[list[EndpointSlice], list[EndpointSlice]]:
    """``RemoveHintsFromSlices``: clear the hints of every slice to create or update; an
    unchanged slice that had hints moves (as a copy without them) to ``to_update``."""
    for sl in (*si.to_create, *si.to_update):
        for ep in sl.endpoints:
            _clear_hints(ep)
    keep: list[EndpointSlice] = []
    for sl in si.unchanged:
        if any(_has_hints(ep) for ep in sl.endpoints):
            new = copy.deepcopy(sl)
            for ep in new.endpoints:
                _clear_hints(ep)
            si.to_update.append(new)
        else:
            keep.append(sl)
    si.unchanged = keep
    return si.to_create, si.to_update


def redistribute_hints(
    slices: Sequence[EndpointSlice], giving: dict[str, int], receiving: dict[str, int], rng: random.Random
) -> dict[str, int]:
    """``redistributeHints``: walk the endpoints in order; a ready endpoint whose own zone still
    has endpoints to give is re-hinted to a receiving zone (the first one in Go map order that
    still needs endpoints). ``giving`` and ``receiving`` are consumed. Returns the change in
    hints per zone."""
    redistributions: dict[str, int] = {}
    for sl in slices:
        for ep in sl.endpoints:
            if not endpoint_ready(ep):
                continue  # upstream sets Hints = nil on a copy of the endpoint: no effect
            if not giving or not receiving:
                return redistributions
            if not ep.zone:
                continue  # caught earlier in add_hints
            giving_zone = ep.zone
            to_give = giving.get(giving_zone)
            if to_give is not None and to_give > 0:
                for receiving_zone in _go_order(receiving, rng):
                    to_receive = receiving[receiving_zone]
                    if to_receive > 0:
                        _set_zone_hint(ep, receiving_zone)
                        if to_give == 1:
                            del giving[giving_zone]
                        else:
                            giving[giving_zone] -= 1
                        if to_receive == 1:
                            del receiving[receiving_zone]
                        else:
                            receiving[receiving_zone] -= 1
                        redistributions[receiving_zone] = redistributions.get(receiving_zone, 0) + 1
                        redistributions[giving_zone] = redistributions.get(giving_zone, 0) - 1
                        break
    return redistributions


def _get_most(zones: Mapping[str, float], rng: random.Random) -> tuple[str, float]:
    """``getMost``: the zone with the greatest value (> 0), ties broken by Go map order."""
    zone, num = "", 0.0
    for z in _go_order(zones, rng):
        if zones[z] > num:
            zone, num = z, zones[z]
    return zone, num


def giving_and_receiving_zones(
    allocations: Mapping[str, Allocation], allocated_hints_by_zone: Mapping[str, int], rng: random.Random | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """``getGivingAndReceivingZones``: how many whole endpoints each zone gives and receives."""
    rng = rng if rng is not None else random.Random(0)
    giving_desired: dict[str, float] = {}
    receiving_desired: dict[str, float] = {}
    for zone in _go_order(allocations, rng):
        allocated = float(allocated_hints_by_zone.get(zone, 0))
        target = allocations[zone].desired
        if allocated > target:
            giving_desired[zone] = allocated - target
        elif allocated < target:
            receiving_desired[zone] = target - allocated
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        giving_zone, to_give = _get_most(giving_desired, rng)
        receiving_zone, to_receive = _get_most(receiving_desired, rng)
        if (giving_zone == "" or receiving_zone == "" or (to_give < 1.0 and to_receive < 1.0)
                or to_give < 0.5 or to_receive < 0.5):
            break
        giving[giving_zone] = giving.get(giving_zone, 0) + 1
        giving_desired[giving_zone] -= 1
        receiving[receiving_zone] = receiving.get(receiving_zone, 0) + 1
        receiving_desired[receiving_zone] -= 1
    return giving, receiving


def hints_by_zone(
    sl: EndpointSlice, allocated_hints_by_zone: Mapping[str, int], allocations: Mapping[str, Allocation]
) -> dict[str, int] | None:
    """``getHintsByZone``: the hints per zone of an unchanged slice, or None when the slice must
    be rewritten (a ready endpoint without a zone hint, a hint for a zone not in the
    allocations, or more hints for a zone than its maximum)."""
    counts: dict[str, int] = {}
    for ep in sl.endpoints:
        if not endpoint_ready(ep):
            continue
        if not ep.hints_for_zones:
            return None
        for zone in ep.hints_for_zones:
            if zone not in allocations:
                return None
            counts[zone] = counts.get(zone, 0) + 1
    for zone, n in counts.items():
        alloc = allocations.get(zone)
        if alloc is None or n + allocated_hints_by_zone.get(zone, 0) > alloc.maximum:
            return None
    return counts


def service_overloaded(ezi: Mapping[str, int], zone_ratios: Mapping[str, float] | None) -> bool:
    """``serviceOverloaded``: a zone gets fewer hinted endpoints than its minimum."""
    if not ezi:
        return False
    if not zone_ratios:
        return True
    total = float(sum(ezi.values()))
    for zone, ratio in zone_ratios.items():
        if zone not in ezi:
            return True
        if ezi[zone] < int(math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD)))):
            return True
    return False


# ---- the cache -------------------------------------------------------------------------------


class TopologyCache:
    """Upstream ``TopologyCache``: the CPU share of every zone (from the Nodes) and the hints
    allocated per Service and address type."""

    def __init__(self) -> None:
        self.sufficient_node_info = False
        self.cpu_by_zone: dict[str, int] | None = {}  # millicores
        # NewTopologyCache starts with an empty (not nil) map: "Nodes only ready in one zone"
        self.cpu_ratios: dict[str, float] | None = {}
        self.endpoints_by_service: dict[str, dict[str, dict[str, int]]] = {}
        self.hints_populated_by_service: set[str] = set()

    # SetNodes
    def set_nodes(self, nodes: Sequence[Node]) -> None:
        """Zone CPU ratios from the nodes: control-plane/master-labelled and not-ready nodes are
        skipped; one counted node without a zone or without allocatable CPU disables hints
        cluster-wide; fewer than 2 zones -> no ratios."""
        cpu_by_zone: dict[str, int] = {}
        sufficient = True
        total = 0
        for node in nodes:
            if any(k in node.labels for k in EXCLUDED_NODE_LABELS):
                continue
            if not node.ready:
                continue
            zone = node.labels.get(LABEL_ZONE, "")
            if zone == "" or node.allocatable_cpu == 0:
                cpu_by_zone = {}
                sufficient = False
                break
            total += node.allocatable_cpu
            cpu_by_zone[zone] = cpu_by_zone.get(zone, 0) + node.allocatable_cpu
        if total == 0 or not sufficient or len(cpu_by_zone) < 2:
            self.sufficient_node_info = False
            self.cpu_by_zone = None
            self.cpu_ratios = None
        else:
            self.sufficient_node_info = True
            self.cpu_by_zone = cpu_by_zone
            self.cpu_ratios = {zone: float(cpu) / float(total) for zone, cpu in cpu_by_zone.items()}

    # getAllocations
    def get_allocations(self, n_ready: int) -> tuple[dict[str, Allocation] | None, str | None]:
        """Minimum/maximum/desired endpoints per zone for ``n_ready`` ready endpoints, or
        ``(None, message)`` (the event message, without the address type) when hints must be
        disabled."""
        ratios = self.cpu_ratios
        if ratios is None:
            return None, INSUFFICIENT_NODE_INFO
        if len(ratios) < 2:
            return None, NODES_READY_IN_ONE_ZONE_ONLY
        if len(ratios) > n_ready:
            return None, f"{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({n_ready} endpoints, {len(ratios)} zones)"
        remaining = n_ready
        min_total = 0
        partial: dict[str, tuple[int, float]] = {}
        for zone, ratio in ratios.items():  # the outcome does not depend on the order
            desired = ratio * float(n_ready)
            minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD))))
            partial[zone] = (minimum, max(desired, float(minimum)))
            min_total += minimum
            remaining -= minimum
            if remaining < 0:
                return None, f"{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({n_ready} endpoints, {len(ratios)} zones)"
        allocations = {
            zone: Allocation(minimum=m, maximum=m + n_ready - min_total, desired=d) for zone, (m, d) in partial.items()
        }
        return allocations, None

    # AddHints
    def add_hints(
        self, si: SliceInfo, rng: random.Random | None = None
    ) -> tuple[list[EndpointSlice], list[EndpointSlice], list[HintEvent]]:
        """Hint every ready endpoint of ``si`` for one zone, in proportion to the zones' CPU
        (``AddHints``); on failure remove all hints of the Service and address type. Returns
        (to_create, to_update, events)."""
        rng = rng if rng is not None else random.Random(0)
        events: list[HintEvent] = []
        allocations, message = self.get_allocations(si.total_ready_endpoints())
        if allocations is None:
            assert message is not None
            events.append(HintEvent(WARNING, REASON_DISABLED, format_with_address_type(message, si.address_type)))
            self.remove_hints(si.service_key, si.address_type)
            to_create, to_update = remove_hints_from_slices(si)
            return to_create, to_update, events

        allocated = si.allocated_hints_by_zone(allocations)
        allocatable = [*si.to_create, *si.to_update]

        # step 1: same-zone hints for all ready endpoints as a starting point
        for sl in allocatable:
            for ep in sl.endpoints:
                if not endpoint_ready(ep):
                    continue  # upstream clears the hints of a copy: the endpoint keeps its own
                if not ep.zone:
                    events.append(HintEvent(WARNING, REASON_DISABLED,
                                            format_with_address_type(NO_ZONE_SPECIFIED, si.address_type)))
                    self.remove_hints(si.service_key, si.address_type)
                    to_create, to_update = remove_hints_from_slices(si)
                    return to_create, to_update, events
                allocated[ep.zone] = allocated.get(ep.zone, 0) + 1
                _set_zone_hint(ep, ep.zone)

        # step 2: which zones give endpoints and which receive them
        giving, receiving = giving_and_receiving_zones(allocations, allocated, rng)
        # step 3: re-hint endpoints from giving zones to receiving zones
        for zone, diff in redistribute_hints(allocatable, giving, receiving, rng).items():
            allocated[zone] = allocated.get(zone, 0) + diff

        if not allocated:
            events.append(HintEvent(WARNING, REASON_DISABLED,
                                    format_with_address_type(NO_ALLOCATED_HINTS_FOR_ZONES, si.address_type)))
            self.remove_hints(si.service_key, si.address_type)
            to_create, to_update = remove_hints_from_slices(si)
            return to_create, to_update, events

        was_enabled = self.has_populated_hints(si.service_key)
        self.set_hints(si.service_key, si.address_type, allocated)
        if not was_enabled:
            events.append(HintEvent(NORMAL, REASON_ENABLED,
                                    format_with_address_type(TOPOLOGY_AWARE_HINTS_ENABLED, si.address_type)))
        return si.to_create, si.to_update, events

    def set_hints(self, service_key: str, address_type: str, allocated_hints_by_zone: Mapping[str, int]) -> None:
        """``SetHints``: remember the hinted endpoints per zone of a Service and address type."""
        self.endpoints_by_service.setdefault(service_key, {})[address_type] = dict(allocated_hints_by_zone)
        self.hints_populated_by_service.add(service_key)

    def remove_hints(self, service_key: str, address_type: str) -> None:
        """``RemoveHints``: forget a Service's hints for an address type."""
        by_type = self.endpoints_by_service.get(service_key)
        if by_type is not None:
            by_type.pop(address_type, None)
            if not by_type:
                del self.endpoints_by_service[service_key]
        self.hints_populated_by_service.discard(service_key)

    def has_populated_hints(self, service_key: str) -> bool:
        return service_key in self.hints_populated_by_service

    def overloaded_services(self) -> list[str]:
        """``GetOverloadedServices``: the Services (keys, sorted; upstream's order is Go map
        order) whose hints leave a zone below its minimum under the current zone ratios; the
        controller re-queues them after a node change."""
        return sorted(
            key for key, by_type in self.endpoints_by_service.items()
            if any(service_overloaded(ezi, self.cpu_ratios) for ezi in by_type.values())
        )


# ---- trafficDistribution (trafficdist.go) ---------------------------------------------------


def _prefer_close_needs_update(sl: EndpointSlice, node_hints: bool) -> bool:
    for ep in sl.endpoints:
        if not endpoint_ready(ep):
            continue
        if ep.zone is not None:
            if ep.hints_for_zones is None or len(ep.hints_for_zones) != 1 or ep.hints_for_zones[0] != ep.zone:
                return True
        elif ep.hints_for_zones:
            return True
        if ep.node_name is not None and node_hints:
            if ep.hints_for_nodes is None or len(ep.hints_for_nodes) != 1 or ep.hints_for_nodes[0] != ep.node_name:
                return True
        elif ep.hints_for_nodes:
            return True
    return False


def _prefer_close_update(sl: EndpointSlice, node_hints: bool) -> None:
    for ep in sl.endpoints:
        if not endpoint_ready(ep):
            continue
        for_zones = [ep.zone] if ep.zone is not None else None
        for_nodes = [ep.node_name] if ep.node_name is not None and node_hints else None
        ep.hints_for_zones = for_zones
        ep.hints_for_nodes = for_nodes


def trafficdist_hints(
    si: SliceInfo, traffic_distribution: str | None, prefer_same: bool = True
) -> tuple[list[EndpointSlice], list[EndpointSlice]]:
    """``trafficdist.ReconcileHints``: PreferClose / PreferSameZone / PreferSameNode hint every
    ready endpoint for its own zone (and, for PreferSameNode, its own node); any other value or
    none strips all hints. ``prefer_same=False`` (the PreferSameTrafficDistribution gate off)
    treats PreferSameZone/PreferSameNode as unknown values. Unchanged slices move (as copies) to
    ``to_update`` only when a hint is missing, wrong or stale. Returns (to_create, to_update) and
    leaves ``si.unchanged`` holding the slices still unchanged."""
    close = traffic_distribution is not None and traffic_distribution in CLOSE_TRAFFIC_DISTRIBUTION
    if close and traffic_distribution != PREFER_CLOSE and not prefer_same:
        close = False
    node_hints = close and traffic_distribution == PREFER_SAME_NODE

    def needs_update(sl: EndpointSlice) -> bool:
        if close:
            return _prefer_close_needs_update(sl, node_hints)
        return any(_has_hints(ep) for ep in sl.endpoints)

    def update(sl: EndpointSlice) -> None:
        if close:
            _prefer_close_update(sl, node_hints)
        else:
            for ep in sl.endpoints:
                _clear_hints(ep)

    keep: list[EndpointSlice] = []
    for sl in si.unchanged:
        if needs_update(sl):
            si.to_update.append(copy.deepcopy(sl))
        else:
            keep.append(sl)
    si.unchanged = keep
    for sl in si.to_create:
        update(sl)
    for sl in si.to_update:
        update(sl)
    return si.to_create, si.to_update


# ---- the reconciler's entry point -----------------------------------------------------------


def _service_event(svc: Service, ev: HintEvent) -> Event:
    return Event(involved_kind="Service", namespace=svc.namespace, name=svc.name, type=ev.type, reason=ev.reason,
                 message=ev.message, source=EVENT_SOURCE)


def apply_hints(
    svc: Service, si: SliceInfo, cache: TopologyCache | None, rng: random.Random | None = None, *,
    prefer_same: bool = True,
) -> tuple[list[EndpointSlice], list[EndpointSlice], list[Event]]:
    """The hints step of upstream ``reconcileByAddressType``, after the reconciler computed ``si``
    for one Service and address type:

    * the topology annotation says Auto (:func:`hints_enabled`) and there is a cache ->
      :meth:`TopologyCache.add_hints` (the annotation wins over ``trafficDistribution``);
    * else the cache forgets the Service (a Warning "Topology Aware Hints has been disabled" if
      it had hints), and then a valid ``trafficDistribution`` -> :func:`trafficdist_hints`,
      otherwise all hints are removed (:func:`remove_hints_from_slices`).

    Returns (to_create, to_update, events): ``model.Event``s on the Service with ``at`` = 0;
    :func:`record_events` stamps and stores them. ``prefer_same`` is the reconciler's
    preferSameTrafficDistribution option."""
    rng = rng if rng is not None else random.Random(0)
    enabled = hints_enabled(svc.annotations)
    can_use_td = valid_traffic_distribution(svc.traffic_distribution, prefer_same) and not enabled
    hint_events: list[HintEvent] = []
    to_create, to_update = si.to_create, si.to_update
    if cache is not None and enabled:
        to_create, to_update, hint_events = cache.add_hints(si, rng)
    else:
        if cache is not None:
            if cache.has_populated_hints(si.service_key):
                hint_events.append(HintEvent(WARNING, REASON_DISABLED,
                                             format_with_address_type(TOPOLOGY_AWARE_HINTS_DISABLED, si.address_type)))
            cache.remove_hints(si.service_key, si.address_type)
        if not can_use_td:
            to_create, to_update = remove_hints_from_slices(si)
    if can_use_td:
        to_create, to_update = trafficdist_hints(si, svc.traffic_distribution, prefer_same)
    return to_create, to_update, [_service_event(svc, e) for e in hint_events]


def record_events(state: ClusterState, events: Iterable[Event]) -> None:
    """Store events in ``state.events`` as the API server's event aggregation does: an event
    equal to a stored one (same object, type, reason, message, source) bumps its ``count`` and
    its last-seen time; otherwise it is added. Times are ``state.clock``."""
    for ev in events:
        for old in state.events:
            if (old.involved_kind, old.namespace, old.name, old.type, old.reason, old.message, old.source) == (
                    ev.involved_kind, ev.namespace, ev.name, ev.type, ev.reason, ev.message, ev.source):
                old.count += 1
                old.at = state.clock
                break
        else:
            ev.at = state.clock
            ev.first_at = state.clock
            state.events.append(ev)


# ---- pure helpers for chapter 09 ------------------------------------------------------------


def _cache_for(zone_cpu: Mapping[str, int]) -> TopologyCache:
    """A cache whose ratios come from one node per zone with that zone's CPU (millicores)."""
    cache = TopologyCache()
    cache.set_nodes([Node(name=f"node-{z}", labels={LABEL_ZONE: z}, allocatable_cpu=int(cpu))
                     for z, cpu in zone_cpu.items()])
    return cache


def allocations_table(zone_cpu: Mapping[str, int], n_ready: int) -> pd.DataFrame:
    """Per zone: CPU (millicores), ratio, desired, minimum and maximum endpoints for ``n_ready``
    ready endpoints, as :meth:`TopologyCache.get_allocations` computes them. When hints would be
    disabled, ``maximum`` is empty and ``df.attrs["message"]`` holds the event message
    (``df.attrs["hinted"]`` says which)."""
    import pandas as pd

    cache = _cache_for(zone_cpu)
    allocations, message = cache.get_allocations(n_ready)
    rows = []
    for zone in sorted(zone_cpu):
        ratio = (cache.cpu_ratios or {}).get(zone)
        desired = ratio * float(n_ready) if ratio is not None else None
        minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))) if desired is not None else None
        alloc = (allocations or {}).get(zone)
        rows.append({
            "zone": zone, "cpu (m)": int(zone_cpu[zone]), "ratio": ratio, "desired": desired,
            "minimum": alloc.minimum if alloc else minimum, "maximum": alloc.maximum if alloc else None,
        })
    df = pd.DataFrame(rows, columns=["zone", "cpu (m)", "ratio", "desired", "minimum", "maximum"])
    df = df.astype({"minimum": "Int64", "maximum": "Int64"})
    df.attrs["hinted"] = allocations is not None
    df.attrs["message"] = message
    return df


def feasibility(zone_cpu: Mapping[str, int], counts: Iterable[int]) -> pd.DataFrame:
    """For each number of ready endpoints ``n``: whether the controller hints at all, each
    zone's minimum and maximum, and the reason (the event message) when it does not."""
    import pandas as pd

    cache = _cache_for(zone_cpu)
    zones = sorted(zone_cpu)
    rows = []
    for n in counts:
        allocations, message = cache.get_allocations(int(n))
        row: dict[str, object] = {"n": int(n), "hinted": allocations is not None}
        ratios = cache.cpu_ratios or {}
        for z in zones:
            alloc = (allocations or {}).get(z)
            # the minimum by getAllocations' expression, shown also when hints are off (it is
            # why they are: the minimums add up to more than n)
            minimum = int(math.ceil(ratios[z] * float(n) * (1 / (1 + OVERLOAD_THRESHOLD)))) if z in ratios else None
            row[f"{z} min"] = alloc.minimum if alloc else minimum
            row[f"{z} max"] = alloc.maximum if alloc else None
        row["reason"] = message or ""
        rows.append(row)
    cols = ["n", "hinted", *[f"{z} {m}" for z in zones for m in ("min", "max")], "reason"]
    df = pd.DataFrame(rows, columns=cols)
    return df.astype({c: "Int64" for c in cols[2:-1]})
