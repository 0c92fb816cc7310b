"""The EndpointSlice controller's reconciler, ported from upstream.

Upstream: ``staging/src/k8s.io/endpointslice/reconciler.go`` (``Reconcile``,
``reconcileByAddressType``, ``reconcileByPortMapping``, ``finalize``) and ``utils.go``
(``podToEndpoint``, ``getEndpointPorts``, ``newEndpointSlice``, ``getSliceToFill``,
``setEndpointSliceLabels``, ``getAddressTypesForService``, ``unchangedSlices``), with
``util/endpointset.go``'s endpoint identity (``hashEndpoint``: addresses and the target pod) and
``EndpointsEqualBeyondHash`` (nodeName, zone, ready, serving, terminating).

What the port keeps, as upstream does:

- one group of slices per address type and per distinct set of resolved ports (a named
  targetPort can resolve to different numbers on different pods);
- existing slices are updated in place, never rebalanced: endpoints no longer wanted are removed
  (a slice left empty is deleted), changed ones rewritten; new endpoints fill the slices already
  being updated (fullest first), then, when fewer than ``max_endpoints_per_slice`` are left, the
  one unchanged slice that ends closest to full, else new slices;
- a Service with no endpoints keeps one empty placeholder slice (an existing placeholder is kept);
- ``finalize`` turns creates into updates of slices that would be deleted (names are recycled);
- slice labels are the Service's labels (reserved keys skipped) plus
  ``kubernetes.io/service-name``, ``endpointslice.kubernetes.io/managed-by`` and, for a headless
  Service, ``service.kubernetes.io/headless``;
- hints: after the slices are computed, :func:`kslab.topology.apply_hints` (Topology Aware
  Routing's annotation, else ``spec.trafficDistribution``, else hints removed).

Go's map and set iteration order (``EndpointSet.PopAny``, ``sets.UnsortedList``) is not part of
the algorithm's contract; kslab iterates in a fixed order instead (endpoints in the order of the
pods, slices in the order they exist), so a lab's slices list their endpoints the way the pods
were created, every time. Only new slices' names are random: ``<service>-`` plus 5 characters of
``k8s.io/apimachinery/pkg/util/rand``'s alphabet, drawn from the ``rng`` passed in.
"""

from __future__ import annotations

import copy as _copy
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .errors import InputError
from .model import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    ClusterState,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Event,
    Node,
    Pod,
    Service,
    ServicePort,
)

DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager --max-endpoints-per-slice
MAX_MAX_ENDPOINTS_PER_SLICE = 1000  # its validation: 1..1000
LABEL_HEADLESS = "service.kubernetes.io/headless"  # v1.IsHeadlessService
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
MAX_GENERATED_NAME_PREFIX = 63 - 5  # names.SimpleNameGenerator: the prefix is cut to 58 characters
DNS1123_SUBDOMAIN_MAX = 253


def check_max_endpoints_per_slice(value: Any, where: str = "max_endpoints_per_slice") -> int:
    """kube-controller-manager's ``--max-endpoints-per-slice`` validation: a whole number 1..1000."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(where, f"{value!r} is not a whole number", f"give 1..{MAX_MAX_ENDPOINTS_PER_SLICE} (default {DEFAULT_MAX_ENDPOINTS_PER_SLICE})")
    if not 1 <= value <= MAX_MAX_ENDPOINTS_PER_SLICE:
        raise InputError(where, f"{value} is out of range", f"give 1..{MAX_MAX_ENDPOINTS_PER_SLICE} as kube-controller-manager accepts (default {DEFAULT_MAX_ENDPOINTS_PER_SLICE})")
    return value


@dataclass
class ReconcileResult:
    """What one reconcile of one Service writes: slices to create (named), to update (new
    objects replacing the stored ones of the same name), to delete, and the Events it records
    on the Service."""

    to_create: list[EndpointSlice] = field(default_factory=list)
    to_update: list[EndpointSlice] = field(default_factory=list)
    to_delete: list[EndpointSlice] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.to_create or self.to_update or self.to_delete)


# ---- utils.go -------------------------------------------------------------------------------------


def ip_family(ip: str) -> str:
    """"IPv4" or "IPv6" of an address (sloppy: leading zeros allowed, as ``ParseIPSloppy``)."""
    try:
        return "IPv6" if ipaddress.ip_address(ip.split("%")[0]).version == 6 else "IPv4"
    except ValueError:
        return "IPv6" if ":" in ip else "IPv4"


def is_service_ip_set(svc: Service) -> bool:
    return svc.cluster_ip not in ("None", "")


def address_types_for_service(svc: Service) -> list[str]:
    """``getAddressTypesForService``: from ``spec.ipFamilies``; else the ClusterIP's family; else
    (headless, families not defaulted) both."""
    types: list[str] = []
    for fam in svc.ip_families:
        if fam in ("IPv4", "IPv6") and fam not in types:
            types.append(fam)
    if types:
        return types
    if is_service_ip_set(svc):
        return [ip_family(svc.cluster_ip)]
    return ["IPv4", "IPv6"]


def find_port(pod: Pod, sp: ServicePort) -> int | None:
    """``FindPort``: a number is used as is; a name is looked up among the pod's container ports
    of the same protocol; None when not found (the port is left out for that pod)."""
    tp = sp.target_port
    if tp is None or tp == "":
        return sp.port  # the API server defaults targetPort to port
    if isinstance(tp, int):
        return tp
    if isinstance(tp, str) and tp.isdigit():
        return int(tp)
    for c in pod.containers:
        for p in c.ports:
            if p.name == tp and p.protocol == sp.protocol:
                return p.container_port
    return None


def endpoint_ports(svc: Service, pod: Pod) -> list[EndpointPort]:
    """``getEndpointPorts``: one EndpointPort per Service port that resolves on this pod."""
    if not svc.ports and svc.cluster_ip == "None":
        return []
    out = []
    for sp in svc.ports:
        num = find_port(pod, sp)
        if num is None:
            continue
        out.append(EndpointPort(port=num, name=sp.name or "", protocol=sp.protocol))
    return out


def port_map_key(ports: Iterable[EndpointPort]) -> tuple:
    """``NewPortMapKey``: the set of ports, whatever their order."""
    return tuple(sorted((p.name or "", p.port or 0, p.protocol or "") for p in ports))


def should_pod_be_in_endpoints(pod: Pod, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``: not when Succeeded/Failed or without an IP; a terminating pod
    only when ``include_terminating``."""
    if pod.phase in ("Succeeded", "Failed") or not pod.pod_ip:
        return False
    if not include_terminating and pod.terminating:
        return False
    return True


def endpoint_addresses(pod: Pod, address_type: str) -> list[str]:
    """``getEndpointAddresses``: the pod's IPs (``status.podIPs``) of the slice's address type."""
    return [a for a in pod.pod_ips if ip_family(a) == address_type]


def pod_to_endpoint(pod: Pod, node: Node | None, svc: Service, address_type: str) -> Endpoint:
    """``podToEndpoint``: serving = the pod's Ready condition; terminating = it has a
    deletionTimestamp; ready = publishNotReadyAddresses or (serving and not terminating)."""
    serving = bool(pod.ready)
    terminating = bool(pod.terminating)
    ready = bool(svc.publish_not_ready_addresses) or (serving and not terminating)
    return Endpoint(
        addresses=endpoint_addresses(pod, address_type),
        ready=ready,
        serving=serving,
        terminating=terminating,
        node_name=pod.node_name or None,
        zone=(node.zone if node is not None else None) or None,
        target_pod=pod.name,
    )


def endpoint_key(ep: Endpoint) -> tuple:
    """``hashEndpoint``: an endpoint is the same one when its addresses and its target are."""
    return (tuple(sorted(ep.addresses)), ep.target_pod or "")


def endpoints_equal_beyond_hash(a: Endpoint, b: Endpoint) -> bool:
    """``EndpointsEqualBeyondHash``: nodeName, zone and the three conditions (hints not compared)."""
    return (a.node_name, a.zone, a.ready, a.serving, a.terminating) == (b.node_name, b.zone, b.ready, b.serving, b.terminating)


def _reserved(key: str) -> bool:
    return key in (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS)


def slice_labels(sl_labels: dict[str, str], svc: Service, controller: str = CONTROLLER_NAME) -> tuple[dict[str, str], bool]:
    """``setEndpointSliceLabels``: the labels a slice of ``svc`` must have, and whether its
    current non-reserved labels differ from the Service's."""
    ep = {k: v for k, v in sl_labels.items() if not _reserved(k)}
    want = {k: v for k, v in svc.labels.items() if not _reserved(k)}
    updated = ep != want
    if not is_service_ip_set(svc):
        want[LABEL_HEADLESS] = ""
    want[LABEL_SERVICE_NAME] = svc.name
    want[LABEL_MANAGED_BY] = controller
    return want, updated


def slice_name_prefix(service_name: str) -> str:
    """``getEndpointSlicePrefix``: ``<service>-`` when that is a valid DNS subdomain prefix."""
    prefix = service_name + "-"
    if len(prefix) > DNS1123_SUBDOMAIN_MAX:
        prefix = service_name
    return prefix


def generate_name(prefix: str, rng: random.Random) -> str:
    """The API server's ``generateName``: the prefix (cut to 58 characters) and 5 random characters."""
    return prefix[:MAX_GENERATED_NAME_PREFIX] + "".join(rng.choice(SAFE_ALPHABET) for _ in range(5))


def owned_by(sl: EndpointSlice, svc: Service) -> bool:
    """``ownedBy``: kslab's slices carry no ownerReferences of their own; a slice the controller
    made (``managed``) for a Service of this name in this namespace is that Service's."""
    return sl.managed and sl.namespace == svc.namespace and sl.service_name == svc.name


def new_endpoint_slice(svc: Service, ports: list[EndpointPort], address_type: str, controller: str = CONTROLLER_NAME) -> EndpointSlice:
    """``newEndpointSlice``: no name yet (``finalize`` recycles one or the API server generates it)."""
    labels, _ = slice_labels({}, svc, controller)
    return EndpointSlice(name="", namespace=svc.namespace, service_name=svc.name, address_type=address_type,
                         ports=list(ports), endpoints=[], labels=labels, managed=True)


def get_slice_to_fill(slices: Sequence[EndpointSlice], num_endpoints: int, max_endpoints: int) -> EndpointSlice | None:
    """``getSliceToFill``: the slice that is closest to full once ``num_endpoints`` are added."""
    closest_diff = max_endpoints
    closest = None
    for sl in slices:
        diff = max_endpoints - (num_endpoints + len(sl.endpoints))
        if 0 <= diff < closest_diff:
            closest_diff, closest = diff, sl
            if closest_diff == 0:
                return closest
    return closest


def unchanged_slices(existing: Sequence[EndpointSlice], to_update: Sequence[EndpointSlice], to_delete: Sequence[EndpointSlice]) -> list[EndpointSlice]:
    changed = {s.name for s in to_update} | {s.name for s in to_delete}
    return [s for s in existing if s.name not in changed]


def _is_placeholder_of(sl: EndpointSlice, placeholder: EndpointSlice) -> bool:
    """``placeholderSliceCompare.DeepEqual``: namespace, labels, address type, no ports, no endpoints."""
    return (sl.namespace == placeholder.namespace and sl.labels == placeholder.labels and sl.address_type == placeholder.address_type
            and not sl.ports and not sl.endpoints and sl.service_name == placeholder.service_name)


def _strip_hints(slices: Iterable[EndpointSlice]) -> None:
    for sl in slices:
        for ep in sl.endpoints:
            ep.hints_for_zones = ep.hints_for_nodes = None


def _remove_hints_from_slices(to_create, to_update, unchanged):
    """``topologycache.RemoveHintsFromSlices`` (used only while kslab.topology is not there)."""
    _strip_hints(list(to_create) + list(to_update))
    to_update = list(to_update)
    for sl in unchanged:
        if any(ep.hints_for_zones is not None or ep.hints_for_nodes is not None for ep in sl.endpoints):
            c = _copy.deepcopy(sl)
            _strip_hints([c])
            to_update.append(c)
    return list(to_create), to_update


def _topology_module():
    try:
        from . import topology  # noqa: PLC0415 (owned by another part of kslab; optional until it lands)
    except ImportError:
        return None
    return topology


# ---- reconciler.go --------------------------------------------------------------------------------


class Reconciler:
    """``endpointslice.Reconciler``: turns a Service's pods and its existing slices into the
    slices to create, update and delete (see the module's docstring)."""

    def __init__(self, max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE, topology: Any | None = None,
                 prefer_same_traffic_distribution: bool = True, controller_name: str = CONTROLLER_NAME):
        self.max_endpoints_per_slice = check_max_endpoints_per_slice(max_endpoints_per_slice)
        self.topology = topology  # a kslab.topology.TopologyCache, or None (hints only from trafficDistribution)
        self.prefer_same_traffic_distribution = prefer_same_traffic_distribution
        self.controller_name = controller_name

    def valid_traffic_distribution(self, value: str | None) -> bool:
        """``validTrafficDistribution``: PreferClose always; PreferSameZone/PreferSameNode only
        with the PreferSameTrafficDistribution gate."""
        if value is None:
            return False
        if value == "PreferClose":
            return True
        return self.prefer_same_traffic_distribution and value in ("PreferSameZone", "PreferSameNode")

    # ---- Reconcile ------------------------------------------------------------------------------
    def reconcile(self, state: ClusterState, svc: Service, pods: Sequence[Pod], existing: Sequence[EndpointSlice],
                  rng: random.Random) -> ReconcileResult:
        """``Reconcile``: ``pods`` are the pods matching the Service's selector, ``existing`` the
        slices the controller manages for it. Nothing in ``existing`` is changed: updates are
        copies. New slices are named from ``rng`` (unique in ``state``)."""
        result = ReconcileResult()
        supported = address_types_for_service(svc)
        by_type: dict[str, list[EndpointSlice]] = {}
        to_delete_types: list[EndpointSlice] = []
        for sl in existing:
            if sl.address_type not in supported:
                if self.topology is not None:
                    self.topology.remove_hints(svc.key, sl.address_type)
                to_delete_types.append(sl)
                continue
            by_type.setdefault(sl.address_type, []).append(sl)
        nodes = {n.name: n for n in state.nodes}
        taken = {s.name for s in state.endpoint_slices if s.namespace == svc.namespace}
        for address_type in supported:
            self._reconcile_by_address_type(result, svc, pods, by_type.get(address_type, []), address_type, nodes, taken, rng)
        result.to_delete += to_delete_types
        return result

    def _reconcile_by_address_type(self, result: ReconcileResult, svc: Service, pods: Sequence[Pod], existing: list[EndpointSlice],
                                   address_type: str, nodes: dict[str, Node], taken: set[str], rng: random.Random) -> None:
        to_create: list[EndpointSlice] = []
        to_update: list[EndpointSlice] = []
        to_delete: list[EndpointSlice] = []
        existing_by_ports: dict[tuple, list[EndpointSlice]] = {}
        for sl in existing:
            if owned_by(sl, svc):
                existing_by_ports.setdefault(port_map_key(sl.ports), []).append(sl)
            else:
                to_delete.append(sl)

        desired_meta: dict[tuple, list[EndpointPort]] = {}
        desired: dict[tuple, dict[tuple, Endpoint]] = {}  # port map -> EndpointSet (ordered)
        for pod in pods:
            if not should_pod_be_in_endpoints(pod, True):
                continue
            ports = endpoint_ports(svc, pod)
            key = port_map_key(ports)
            desired.setdefault(key, {})
            desired_meta.setdefault(key, ports)
            node = nodes.get(pod.node_name)
            if node is None and not svc.publish_not_ready_addresses:
                continue  # "skipping Pod for Service, Node not found" (the Service is retried later)
            ep = pod_to_endpoint(pod, node, svc, address_type)
            if ep.addresses:
                desired[key][endpoint_key(ep)] = ep

        for key, want in desired.items():
            c, u, d = self._reconcile_by_port_mapping(svc, existing_by_ports.get(key, []), want, desired_meta[key], address_type)
            to_create += c
            to_update += u
            to_delete += d
        for key, slices in existing_by_ports.items():
            if key not in desired:
                to_delete += slices

        # When no endpoint slices would usually exist, we need to add a placeholder.
        if len(existing) == len(to_delete) and not to_create:
            placeholder = new_endpoint_slice(svc, [], address_type, self.controller_name)
            if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], placeholder):
                to_delete = []  # the existing placeholder stays
            else:
                to_create.append(placeholder)

        # hints, per address type
        events: list[Event] = []
        to_create, to_update = self._hints(svc, address_type, to_create, to_update, unchanged_slices(existing, to_update, to_delete), rng, events)
        self._finalize(result, svc, to_create, to_update, to_delete, taken, rng)
        result.events += events

    def _hints(self, svc, address_type, to_create, to_update, unchanged, rng, events):
        """The hints step: :func:`kslab.topology.apply_hints` (the annotation with the cache,
        else ``trafficDistribution``, else no hints)."""
        topo = _topology_module()
        if topo is None:
            return _remove_hints_from_slices(to_create, to_update, unchanged)
        si = topo.SliceInfo(service_key=svc.key, address_type=address_type, to_create=to_create, to_update=to_update, unchanged=unchanged)
        c, u, ev = topo.apply_hints(svc, si, self.topology, rng, prefer_same=self.prefer_same_traffic_distribution)
        events += ev
        return list(c), list(u)

    # ---- reconcileByPortMapping -----------------------------------------------------------------
    def _reconcile_by_port_mapping(self, svc: Service, existing: list[EndpointSlice], want: dict[tuple, Endpoint],
                                   ports: list[EndpointPort], address_type: str):
        maxn = self.max_endpoints_per_slice
        by_name: dict[str, EndpointSlice] = {}
        unchanged: list[str] = []  # ordered sets of names
        to_update: list[str] = []
        to_delete: list[str] = []

        # 1. remove endpoints no longer desired, update the ones that changed
        for sl in existing:
            by_name[sl.name] = sl
            new_eps: list[Endpoint] = []
            updated = False
            for ep in sl.endpoints:
                got = want.get(endpoint_key(ep))
                if got is not None:
                    new_eps.append(got)
                    if not endpoints_equal_beyond_hash(got, ep):
                        updated = True
                    del want[endpoint_key(ep)]
            labels, labels_changed = slice_labels(sl.labels, svc, self.controller_name)
            if updated or len(sl.endpoints) != len(new_eps):
                if not new_eps:
                    to_delete.append(sl.name)
                else:
                    c = _copy.deepcopy(sl)
                    c.endpoints, c.labels = new_eps, labels
                    by_name[sl.name] = c
                    to_update.append(sl.name)
            elif labels_changed:
                c = _copy.deepcopy(sl)
                c.labels = labels
                by_name[sl.name] = c
                to_update.append(sl.name)
            else:
                unchanged.append(sl.name)

        pending = list(want.values())  # PopAny, in the pods' order

        # 2. fill the slices already being updated, the fullest first
        if pending and to_update:
            slices = sorted((by_name[n] for n in to_update), key=lambda s: -len(s.endpoints))
            for sl in slices:
                while pending and len(sl.endpoints) < maxn:
                    sl.endpoints.append(pending.pop(0))

        # 3. the rest: into the unchanged slice that ends closest to full, else new slices
        to_create: list[EndpointSlice] = []
        while pending:
            fill = None
            if len(pending) < maxn and unchanged:
                fill = get_slice_to_fill([by_name[n] for n in unchanged], len(pending), maxn)
            if fill is None:
                fill = new_endpoint_slice(svc, ports, address_type, self.controller_name)
            else:
                fill = _copy.deepcopy(fill)
                by_name[fill.name] = fill
            while pending and len(fill.endpoints) < maxn:
                fill.endpoints.append(pending.pop(0))
            if fill.name:
                if fill.name not in to_update:
                    to_update.append(fill.name)
                unchanged.remove(fill.name)
            else:
                to_create.append(fill)
        return to_create, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]

    # ---- finalize -------------------------------------------------------------------------------
    def _finalize(self, result: ReconcileResult, svc: Service, to_create: list[EndpointSlice], to_update: list[EndpointSlice],
                  to_delete: list[EndpointSlice], taken: set[str], rng: random.Random) -> None:
        """``finalize``: a create becomes an update of a slice that would be deleted (same
        address type, same owner), taking its name; the other creates get generated names."""
        to_create, to_update, to_delete = list(to_create), list(to_update), list(to_delete)
        i = 0
        while i < len(to_delete) and to_create:
            old = to_delete[i]
            new = to_create[-1]
            if old.address_type == new.address_type and owned_by(old, svc):
                new.name = old.name
                to_create.pop()
                to_update.append(new)
                del to_delete[i]
            else:
                i += 1
        for sl in to_create:
            name = generate_name(slice_name_prefix(svc.name), rng)
            while name in taken:  # the API server refuses a taken name; the controller retries
                name = generate_name(slice_name_prefix(svc.name), rng)
            taken.add(name)
            sl.name = name
        result.to_create += to_create
        result.to_update += to_update
        result.to_delete += to_delete


def apply_result(state: ClusterState, result: ReconcileResult) -> None:
    """Write a reconcile's result into the stored slices: updates replace the stored slice of
    the same name where it is, deletes go, creates are appended."""
    by_key = {(s.namespace, s.name): s for s in result.to_update}
    gone = {(s.namespace, s.name) for s in result.to_delete}
    kept = []
    for s in state.endpoint_slices:
        k = (s.namespace, s.name)
        if k in gone:
            continue
        kept.append(by_key.pop(k, s))
    kept += list(by_key.values())  # (an update of a slice that is not stored: stored now)
    kept += result.to_create
    state.endpoint_slices[:] = kept
