"""Control-plane emulation: what the API server, scheduler and controllers would fill in.

``build_state`` turns manifests into a :class:`~kslab.model.ClusterState`:

- **nodes** from a kind ``Cluster`` config (names, IPs on the "docker network", podCIDRs,
  labels and the control-plane taint, as kind makes them) or from ``Node`` objects;
- **admission** of Services as the API server does it (defaults, validation errors, ClusterIP
  and NodePort allocation with the static/dynamic bands), unless ``as_is``;
- **Deployments** expanded into Pods; **scheduling** (``nodeName``, ``nodeSelector`` and taints,
  else spread); **pod IPs** from each node's podCIDR;
- the **EndpointSlice controller** for Services with selectors (EndpointSlices given in the input
  are used exactly as given).

Every random choice (ClusterIPs, nodePorts, pods' name suffixes, scheduling, hence pod IPs) comes
from one ``random.Random(seed)``, so a given input and seed always produce the same cluster. The
seed is the *cluster's* (:data:`CLUSTER_SEED` unless asked), never an experiment's: the study's
lab is one cluster, the same in every chapter and every ``kslab`` command, whatever traffic
seed an experiment uses.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import hashlib
import functools
import heapq
import ipaddress
import json
import random
import re
import types
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .errors import AdmissionError, InputError
from .manifests import (
    Document,
    check_kind,
    load_documents,
    parse_deployment,
    parse_endpoint_slice,
    parse_kind_cluster,
    parse_node,
    parse_pod,
    parse_service,
    pod_from_template,
    validate,
)
from .model import (
    CONTROLLER_NAME,
    DEFAULT_NODE_PORT_RANGE,
    LABEL_CONTROL_PLANE,
    LABEL_HOSTNAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    ClusterConfig,
    ClusterState,
    Deployment,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Event,
    Node,
    ObjectRecord,
    Pod,
    ReplicaSet,
    Service,
    ServicePort,
    IP_FAMILY_POLICIES,
    PREFER_DUAL_STACK,
    REQUIRE_DUAL_STACK,
    SINGLE_STACK,
    family_name,
)
from .endpointslice import (DEFAULT_MAX_ENDPOINTS_PER_SLICE, SAFE_ALPHABET, Reconciler, apply_result,
                            check_max_endpoints_per_slice, generate_name)
from .proxy.util import ip_family, parse_cidr_sloppy, parse_ip_sloppy

NODE_SUBNET = "172.18.0.0/16"  # kind's "docker network"
NODE_SUBNET6 = "fc00:f853:ccd:e793::/64"  # its IPv6 range (the ULA kind gives the network "kind")
MAX_ENDPOINTS_PER_SLICE = DEFAULT_MAX_ENDPOINTS_PER_SLICE  # kube-controller-manager --max-endpoints-per-slice
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def is_port_name(text: str) -> bool:
    """``validation.IsValidPortName``: 1-15 characters, lower-case letters, digits and '-', at
    least one letter, no '--', not beginning or ending with '-' (a Service's targetPort, a probe's port)."""
    return len(text) <= 15 and bool(IANA_SVC_NAME.match(text)) and "--" not in text
VALID_PROTOCOLS = ("TCP", "UDP", "SCTP")
CLUSTER_SEED = 0  # the allocation seed of every lab kslab builds, unless one asks for another

# The cluster's history on its clock (ClusterState.clock, seconds since `kind create cluster`):
# kind registers the control-plane node at 0 s and the workers when they have joined; the study
# applies its manifests once the cluster is up. Everything a change makes later is created at
# the clock's time then (Lab.advance moves it). kubectl's AGE and creationTimestamp read these.
KIND_WORKERS_JOIN_AT = 15.0
MANIFESTS_APPLIED_AT = 120.0


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` (an optional sign, then decimal digits), its error as a ValueError."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def parse_port_range(text: str | tuple[int, int], field: str = "--service-node-port-range") -> tuple[int, int]:
    """``--service-node-port-range`` as the API server parses it (``utilnet.ParsePortRange``):
    ``A-B``, ``A+N`` (``A`` to ``A+N``) or one port ``A``, spaces around it ignored; a ``(lo,
    hi)`` pair is checked the same way. A bad range is a one-line InputError naming ``field``
    with upstream's words ("end port cannot be less than start port: 32767-30000"); a range
    starting at port 0 is refused too (0 is no port a Service can be given)."""
    fix = "write it as A-B, e.g. 30000-32767"
    if isinstance(text, (tuple, list)) and len(text) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
        lo, hi = text
        shown = f"{lo}-{hi}"
    elif isinstance(text, str) and text.strip():
        shown = value = text.strip()
        hyphen, plus = value.find("-"), value.find("+")
        try:
            if hyphen == -1 and plus == -1:
                lo = hi = _atoi(value)
            elif hyphen != -1 and plus == -1:
                lo, hi = _atoi(value[:hyphen]), _atoi(value[hyphen + 1:])
            elif plus != -1 and hyphen == -1:
                lo = _atoi(value[:plus])
                hi = lo + _atoi(value[plus + 1:])
            else:
                raise ValueError(f"unable to parse port range: {value}")
        except ValueError as e:
            raise InputError(field, f"invalid argument {text!r}: {e}", fix) from None
    else:
        raise InputError(field, f"{text!r} is not a port range", fix)
    if lo > 65535 or hi > 65535:
        raise InputError(field, f"the port range cannot be greater than 65535: {shown}", "ports end at 65535, e.g. 30000-32767")
    if hi < lo:
        raise InputError(field, f"end port cannot be less than start port: {shown}", "write the lower port first, e.g. 30000-32767")
    if lo < 1:
        raise InputError(field, f"{shown} starts below port 1", "use 1 <= A <= B <= 65535, e.g. 30000-32767")
    return lo, hi


def band_offset(size: int, lo_min: int, lo_max: int, divisor: int) -> int:
    """KEP-3070/3668 static band size: min(max(lo_min, size/divisor), lo_max); no split when small."""
    if size <= lo_min:
        return 0
    return min(max(lo_min, size // divisor), lo_max)


def node_port_bands(rng_: tuple[int, int]) -> tuple[range, range]:
    """The (static, dynamic) bands of a NodePort range (KEP-3668): the static band, the first
    min(max(16, size/32), 128) ports, is where automatic allocation goes only when the dynamic
    band is full, so it is the band to pick ports from by hand. ``rng_``: ``(lo, hi)`` or a
    range as :func:`parse_port_range` reads it; a reversed or out-of-bounds one is a one-line
    InputError."""
    lo, hi = parse_port_range(rng_, "node_port_range")
    size = hi - lo + 1
    off = band_offset(size, 16, 128, 32)
    return range(lo, lo + off), range(lo + off, hi + 1)


def band_of(port: int, rng_: tuple[int, int]) -> str:
    """``"static"`` or ``"dynamic"``: the band of ``rng_`` (a NodePort range) that ``port`` is in
    (:func:`node_port_bands`). A port outside the range is a one-line InputError."""
    static, dynamic = node_port_bands(rng_)
    if port in static:
        return "static"
    if port in dynamic:
        return "dynamic"
    raise InputError("port", f"{port} is not in the NodePort range {rng_[0]}-{rng_[1]}", f"give a port from {rng_[0]} to {rng_[1]}")


@dataclass(frozen=True)
class NodePortUse:
    """One node port a Service holds: ``field`` is ``spec.ports[i].nodePort`` or
    ``spec.healthCheckNodePort``; ``band`` is ``"static"``, ``"dynamic"`` or ``"outside"`` (a port
    allocated under an earlier, wider range: the Service keeps it, see
    :meth:`ControlPlane.set_node_port_range`)."""

    service: str  # namespace/name
    field: str
    port: int
    band: str


def node_port_uses(state: ClusterState) -> list[NodePortUse]:
    """Every node port the cluster's Services hold, with its band in the cluster's range."""
    rng_ = state.config.node_port_range
    out = []
    for s in state.services:
        held = [(f"spec.ports[{i}].nodePort", p.node_port) for i, p in enumerate(s.ports) if p.node_port]
        if s.health_check_node_port:
            held.append(("spec.healthCheckNodePort", s.health_check_node_port))
        for field, port in held:
            band = band_of(port, rng_) if rng_[0] <= port <= rng_[1] else "outside"
            out.append(NodePortUse(s.key, field, port, band))
    return out


class _BandAllocator:
    """``randomScanStrategyWithOffset`` over the offsets ``0..size-1`` of a range (the API server's
    bitmap allocator): a random start in the upper band, a scan with wrap-around, then the lower
    band. Explicit requests may use any free offset of the whole range. Only the offsets in use
    are stored, so a range of any size costs nothing until it fills up."""

    def __init__(self, size: int, offset: int, rng: random.Random):
        self.size = size
        self.offset = offset
        self.rng = rng
        self.used: set[int] = set()

    def allocate_next(self) -> int | None:
        for lo, n in ((self.offset, self.size - self.offset), (0, self.offset)):
            if n <= 0:
                continue
            start = self.rng.randrange(n)
            for i in range(n):
                v = lo + (start + i) % n
                if v not in self.used:
                    self.used.add(v)
                    return v
        return None


@dataclass
class BuildOptions:
    as_is: bool = False
    seed: int = CLUSTER_SEED  # the cluster's allocation seed (not an experiment's)
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE
    validate: bool = True
    max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE  # kube-controller-manager --max-endpoints-per-slice


def load_cluster(
    paths: Iterable[str],
    *,
    as_is: bool = False,
    seed: int = CLUSTER_SEED,
    node_port_range: tuple[int, int] | str | None = None,
) -> ClusterState:
    """Read manifests (files or folders) and build the cluster state (see module docstring);
    ``seed`` is the cluster's allocation seed."""
    if isinstance(node_port_range, str):
        node_port_range = parse_port_range(node_port_range)
    opts = BuildOptions(as_is=as_is, seed=seed, node_port_range=node_port_range or DEFAULT_NODE_PORT_RANGE)
    return build_state(load_documents(paths), opts)


def build_state(docs: list[Document], opts: BuildOptions | None = None) -> ClusterState:
    opts = opts or BuildOptions()
    rng = random.Random(opts.seed)
    state = ClusterState()
    state.config.node_port_range = opts.node_port_range

    for d in docs:
        check_kind(d)
        if opts.validate and not opts.as_is:
            validate(d)

    seen: dict[tuple[str, str, str], str] = {}
    for d in docs:
        if d.kind in ("Cluster", "Namespace"):
            continue
        md = d.obj.get("metadata") or {}
        key = (d.kind, str(md.get("namespace") or "default"), str(md.get("name") or ""))
        if key in seen:
            raise InputError(d.where("metadata.name"), f"{d.kind} {key[1]}/{key[2]} is defined twice (also in {seen[key]})", "rename or remove one")
        seen[key] = d.source

    # ---- nodes ---------------------------------------------------------------------------------
    clusters = [d for d in docs if d.kind == "Cluster"]
    if len(clusters) > 1:
        raise InputError(clusters[1].source, "more than one kind Cluster config", "give one cluster at a time")
    if clusters:
        cfg, kind_nodes, _mode = parse_kind_cluster(clusters[0])
        cfg.node_port_range = opts.node_port_range
        state.config = cfg
        state.nodes = kind_nodes_to_nodes(cfg, kind_nodes, clusters[0])
    state.nodes += [parse_node(d) for d in docs if d.kind == "Node"]

    services = [(d, parse_service(d)) for d in docs if d.kind == "Service"]
    slices = [parse_endpoint_slice(d) for d in docs if d.kind == "EndpointSlice"]
    pods = [(d, parse_pod(d)) for d in docs if d.kind == "Pod"]
    deployments = [(d, parse_deployment(d)) for d in docs if d.kind == "Deployment"]

    state.endpoint_slices = slices
    if opts.as_is:
        state.services = [s for _, s in services]
        state.pods = [p for _, p in pods]
        state.deployments = [dep for _, dep in deployments]
        return state

    # ---- admission -----------------------------------------------------------------------------
    cp = ControlPlane(state, rng, max_endpoints_per_slice=opts.max_endpoints_per_slice)
    for n in state.nodes:  # registered when kind brings the cluster up
        record(state, "Node", "", n, at=KIND_WORKERS_JOIN_AT if clusters and not n.is_control_plane else 0.0)
    if state.nodes and not any(s.namespace == "default" and s.name == "kubernetes" for _, s in services):
        state.services.append(cp.allocator.kubernetes_service())
        record(state, "Service", "default", state.services[-1], at=0.0)
    state.clock = MANIFESTS_APPLIED_AT
    cp.admit(services, pods, deployments)
    if state.nodes:
        cpn = next((n for n in state.nodes if n.is_control_plane), state.nodes[0])
        if not any(s.service_name == "kubernetes" and s.namespace == "default" for s in state.endpoint_slices):
            state.endpoint_slices.append(kubernetes_endpoint_slice(cpn))
            record(state, "EndpointSlice", "default", state.endpoint_slices[-1], at=0.0)
    cp.reconcile()
    state.control_plane = cp  # type: ignore[attr-defined]
    return state


class ControlPlane:
    """The API server, scheduler and controllers of one emulated cluster, kept between changes.

    Changes made through it (apply, scale, delete a pod, flip readiness, patch a Service) are
    admitted like the API server would, keep every existing allocation, and end with the
    EndpointSlice controller's reconcile, so kube-proxy's view follows the way it would.
    """

    def __init__(self, state: ClusterState, rng: random.Random, max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE):
        self.state = state
        self.rng = rng
        self.allocator = ServiceAllocator(state.config, rng)
        for s in state.services:  # what is already allocated stays allocated
            self.allocator.mark_used(s)
        self.scalings: list[str] = []  # every ScalingReplicaSet message so far (kslab.rollout)
        # +1 whenever the controllers make or remove pods by themselves (a rollout step, a grace
        # period over): whoever runs the timers then updates the dataplane's pods and the kubelets
        self.pod_changes = 0
        # the EndpointSlice controller: its reconciler and its TopologyCache (kslab.topology,
        # when that part of kslab is there), fed the nodes whenever they change
        self.topology = _new_topology_cache()
        self._nodes_seen: tuple | None = None
        self.endpoint_slices = Reconciler(check_max_endpoints_per_slice(max_endpoints_per_slice), topology=self.topology)

    @classmethod
    def of(cls, state: ClusterState, seed: int = CLUSTER_SEED) -> "ControlPlane":
        """The control plane that built ``state`` (it goes on with the same random sequence), or a
        new one seeded with the cluster's ``seed`` for a state built without one (``as_is``)."""
        cp = getattr(state, "control_plane", None)
        if cp is None:
            cp = cls(state, random.Random(f"{seed}/changes"))
            state.control_plane = cp  # type: ignore[attr-defined]
        return cp

    def admit(self, services, pods, deployments, replacing: dict[int, Service] | None = None) -> None:
        """Create ``services`` (or update: ``replacing`` maps ``id(service)`` to the stored
        Service it replaces), ``pods`` and ``deployments``, then schedule the new pods."""
        for d, s in services:
            admit_service(d, s, self.state.config)
            self.allocator.allocate(d, s, (replacing or {}).get(id(s)))
            self.state.services.append(s)
        new_pods: list[Pod] = []
        for d, dep in deployments:
            admit_deployment(d, dep)
            self.state.deployments.append(dep)
        docs_by_pod = {}
        for d, p in pods:
            check_probes(d, "spec", d.obj.get("spec") or {})
        for d, p in pods:
            self.state.pods.append(p)
            new_pods.append(p)
            docs_by_pod[id(p)] = d
        for _, dep in deployments:
            made = pods_for_deployment(dep, self.rng)
            self.state.pods.extend(made)
            new_pods.extend(made)
        schedule(self.state, docs_by_pod, self.rng, only=new_pods)

    def apply(self, docs: list[Document]) -> list[str]:
        """``kubectl apply``: create new objects, update Services and Deployments in place. All
        or nothing: an object refused (say a nodePort out of range) leaves the cluster as it was."""
        saved = self._save()
        try:
            return self._apply(docs)
        except InputError:
            self._restore(saved)
            raise

    def _save(self) -> tuple:
        """What a change may touch before it is refused: the objects, the allocators' books and
        the random sequence (a refused change draws nothing, as in the API server)."""
        st, al = self.state, self.allocator
        return (_copy.deepcopy((st.services, st.pods, st.deployments, st.endpoint_slices, st.replica_sets)), list(st.warnings),
                ({f: set(r.ips.used) for f, r in al.ranges.items()}, set(al.ports.used), dict(al.ip_owner), dict(al.port_owner)),
                self.rng.getstate())

    def _restore(self, saved: tuple) -> None:
        (services, pods, deployments, slices, replica_sets), warnings, books, rng_state = saved
        st, al = self.state, self.allocator
        st.services[:], st.pods[:], st.deployments[:], st.endpoint_slices[:] = services, pods, deployments, slices
        st.replica_sets[:] = replica_sets
        st.warnings[:] = warnings
        ips_used, al.ports.used, al.ip_owner, al.port_owner = books
        for f, used in ips_used.items():
            al.ranges[f].ips.used = used
        self.rng.setstate(rng_state)

    def _apply(self, docs: list[Document]) -> list[str]:
        changed: list[str] = []
        services, pods, deployments = [], [], []
        replacing: dict[int, Service] = {}  # id(new Service) -> the stored one it updates
        for d in docs:
            check_kind(d)
            validate(d)
            if d.kind == "Service":
                new = parse_service(d)
                old = next((x for x in self.state.services if x.key == new.key), None)
                if old is not None:  # keep allocations the new spec does not set, drop what no longer applies
                    drop_type_dependent_fields(new, old)
                    self.state.services.remove(old)
                    replacing[id(new)] = old
                services.append((d, new))
                changed.append(f"service/{new.name}")
            elif d.kind == "Pod":
                new = parse_pod(d)
                if any(p.key == new.key for p in self.state.pods):
                    raise InputError(d.where("metadata.name"), f"pod {new.key} already exists and pods are immutable", "delete it first")
                pods.append((d, new))
                changed.append(f"pod/{new.name}")
            elif d.kind == "Deployment":
                new = parse_deployment(d)
                old = next((x for x in self.state.deployments if x.key == new.key), None)
                if old is not None:
                    admit_deployment(d, new)
                    # a new template is a new ReplicaSet, rolled out by the Deployment controller
                    # (kslab.rollout) in the reconcile below; a new replica count scales
                    old.template, old.selector, old.manifest = new.template, new.selector, new.manifest
                    self.scale(old.name, new.replicas, namespace=old.namespace, reconcile=False)
                else:
                    deployments.append((d, new))
                changed.append(f"deployment/{new.name}")
            elif d.kind in ("Namespace",):
                continue
            else:
                raise InputError(d.where("kind"), f"{d.kind} cannot be applied to a running lab", "apply Services, Pods, Deployments")
        self.admit(services, pods, deployments, replacing)
        self.reconcile()
        return changed

    def scale(self, name: str, replicas: int, namespace: str = "default", reconcile: bool = True) -> None:
        dep = next((d for d in self.state.deployments if d.name == name and d.namespace == namespace), None)
        if dep is None:
            known = ", ".join(d.name for d in self.state.deployments) or "none"
            raise InputError(f"deployment {name!r}", "no such deployment", f"deployments are: {known}")
        if replicas < 0:
            raise InputError("replicas", f"{replicas} is negative", "use 0 or more")
        # the Deployment controller scales its ReplicaSet(s), the ReplicaSet controller makes or
        # deletes (gracefully) the pods: both run in reconcile()
        dep.replicas = replicas
        if reconcile:
            self.reconcile()

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        """``kubectl delete pod``: graceful (:meth:`terminate_pod`); a Deployment's ReplicaSet
        makes a replacement at once (a terminating pod is no longer one of its active pods)."""
        pod = self.state.pod(name, namespace)
        if not pod.terminating:
            self.terminate_pod(pod)
        self.reconcile()

    def set_zones(self, zones: Mapping[str, str | None]) -> None:
        """Label nodes ``topology.kubernetes.io/zone`` (``kubectl label node N
        topology.kubernetes.io/zone=Z --overwrite``; None or "" removes the label), then
        reconcile: the endpoints' ``zone`` and the topology cache follow. Checked first (unknown
        node, bad label value): one InputError, nothing changed."""
        check_zones(self.state, zones)
        for name, zone in zones.items():
            node = self.state.node(name)
            if zone:
                node.labels[LABEL_ZONE] = zone
            else:
                node.labels.pop(LABEL_ZONE, None)
        self.reconcile()

    def set_allocatable_cpu(self, cpu: Mapping[str, int]) -> None:
        """Nodes that report ``cpu[node]`` millicores as ``status.allocatable.cpu`` (what a node's
        kubelet reports; a kind node reports the host's CPUs): the cluster as if its nodes had been
        made with these CPUs, so the topology cache re-reads them at once. (Upstream's controller
        re-reads nodes only when one is added or deleted or its Ready status or zone changes; on
        a running cluster a CPU change alone reaches the hints at the next such event.) Checked
        first: an unknown node or a count that is not a positive integer is one InputError."""
        check_allocatable_cpu(self.state, cpu)
        for name, milli in cpu.items():
            self.state.node(name).allocatable_cpu = int(milli)
        if self.topology is not None:
            self._nodes_seen = tuple((n.name, n.ready, n.zone) for n in self.state.nodes)
            self.topology.set_nodes(self.state.nodes)
        self.reconcile()

    # ---- Deployments: ReplicaSets, rolling updates, graceful termination (kslab.rollout) ---------
    def terminate_pod(self, pod: Pod) -> None:
        """Delete ``pod`` gracefully: with a grace period of 0 it is gone at once; otherwise it
        gets its deletionTimestamp (``terminating``, ``deleted_at`` = now) and is removed
        ``terminationGracePeriodSeconds`` later by a timer (its endpoint stays, terminating,
        until then). The caller reconciles."""
        grace = self.grace_period_of(pod)
        if grace == 0:
            self.state.pods.remove(pod)
            return
        pod.terminating = True
        pod.deleted_at = self.state.clock
        from functools import partial

        from .rollout import timers_of

        timers_of(self).schedule(self.state.clock + grace, f"pod-gone/{pod.key}", partial(self._pod_gone, pod.key))

    def _pod_gone(self, key: str) -> bool:
        """The grace period is over: the kubelet killed the containers and the pod object goes."""
        pod = next((p for p in self.state.pods if p.key == key and p.terminating), None)
        if pod is None:
            return False
        self.state.pods.remove(pod)
        self.pod_changes += 1
        self.reconcile()
        return True

    def grace_period_of(self, pod: Pod) -> int:
        """``spec.terminationGracePeriodSeconds`` of the pod (its manifest, or its ReplicaSet's template)."""
        from .rollout import grace_period

        if pod.manifest:
            return grace_period(pod.manifest.get("spec"), f"Pod {pod.key}: spec")
        h = pod.labels.get("pod-template-hash")
        rs = next((r for r in self.state.replica_sets if r.namespace == pod.namespace and r.template_hash == h
                   and pod.owner == f"Deployment/{r.deployment}"), None)
        if rs is not None:
            return grace_period(rs.template.get("spec"), f"ReplicaSet {rs.key}: spec.template.spec")
        dep = next((d for d in self.state.deployments if pod.owner == f"Deployment/{d.name}" and d.namespace == pod.namespace), None)
        return grace_period((dep.template.get("spec") if dep else None), "spec")

    def replica_sets(self, dep: Deployment) -> list[ReplicaSet]:
        """The Deployment's ReplicaSets, oldest first. A Deployment made before any rollout gets
        the ReplicaSet that made its pods (adopted: its template, ``replicas``, revision 1)."""
        mine = [r for r in self.state.replica_sets if r.deployment == dep.name and r.namespace == dep.namespace]
        if not mine:
            # the hash the pods carry (a live cluster's own ComputeHash), else kslab's
            seen = {p.labels.get("pod-template-hash") for p in self.state.pods
                    if p.owner == f"Deployment/{dep.name}" and p.namespace == dep.namespace} - {None, ""}
            h = seen.pop() if len(seen) == 1 else pod_template_hash(dep)
            rec = self.state.records.get(("Deployment", dep.namespace, dep.name))
            rs = ReplicaSet(f"{dep.name}-{h}", dep.namespace, dep.name, h, _copy.deepcopy(dep.template), dep.replicas,
                            rec.created if rec else self.state.clock, 1)
            self.state.replica_sets.append(rs)
            mine = [rs]
        return sorted(mine, key=lambda r: (r.created, r.revision))

    def _rs_pods(self, rs: ReplicaSet, active: bool = True) -> list[Pod]:
        return [p for p in self.state.pods if p.namespace == rs.namespace and p.owner == f"Deployment/{rs.deployment}"
                and p.labels.get("pod-template-hash") == rs.template_hash
                and (not active or (not p.terminating and p.phase not in ("Succeeded", "Failed")))]

    def _manage_replicas(self, dep: Deployment) -> bool:
        """The ReplicaSet controller (``manageReplicas``) for each of ``dep``'s ReplicaSets:
        make the missing pods from its template, delete the extra ones gracefully. Victims: the
        not-ready first, then those on the node with most of the Deployment's pods, newest first."""
        changed = False
        for rs in self.replica_sets(dep):
            pods = self._rs_pods(rs)
            if len(pods) < rs.replicas:
                made = pods_for_deployment(Deployment(dep.name, dep.namespace, rs.replicas - len(pods), dep.selector, rs.template), self.rng,
                                           template_hash=rs.template_hash)
                self.state.pods.extend(made)
                schedule(self.state, {}, self.rng, only=made)
                for p in made:
                    p.started_at = self.state.clock
                changed = True
                self.pod_changes += 1
            elif len(pods) > rs.replicas:
                related = [p for r in self.replica_sets(dep) for p in self._rs_pods(r)]
                order = {id(p): i for i, p in enumerate(self.state.pods)}
                for _ in range(len(pods) - rs.replicas):
                    per_node: dict[str, int] = {}
                    for p in related:
                        per_node[p.node_name] = per_node.get(p.node_name, 0) + 1
                    victim = min(pods, key=lambda p: (bool(p.node_name), p.phase == "Running", p.ready,
                                                      -per_node.get(p.node_name, 0), -order[id(p)]))
                    pods.remove(victim)
                    related.remove(victim)
                    self.terminate_pod(victim)
                changed = True
                self.pod_changes += 1
        return changed

    def _sync_deployment(self, dep: Deployment) -> list[str]:
        """One sync of the Deployment controller (``rolloutRolling`` / ``rolloutRecreate``):
        find or make the new ReplicaSet (the one of the current template), scale, record the
        ``ScalingReplicaSet`` events. Returns their messages."""
        from .rollout import RSCount, recreate_sync, rolling_sync, strategy_of

        strategy = strategy_of((dep.manifest or {}).get("spec"), f"deployment {dep.key}: spec")
        rss = self.replica_sets(dep)
        new = new_replica_set(self.state, dep)  # FindNewReplicaSet: the one whose template is the Deployment's
        top = max(r.revision for r in rss)
        if new is None:
            h = pod_template_hash(dep)
            new = ReplicaSet(f"{dep.name}-{h}", dep.namespace, dep.name, h, _copy.deepcopy(dep.template), 0, self.state.clock, top + 1)
            self.state.replica_sets.append(new)
        elif new.revision < top:  # a rollback: the old ReplicaSet becomes the newest revision
            new.revision = top + 1
        olds = [r for r in self.replica_sets(dep) if r is not new]
        counts = {r.name: RSCount(r.name, r.replicas, sum(1 for p in self._rs_pods(r) if p.ready), r.created) for r in [*olds, new]}
        if strategy.type == "Recreate":
            running = any(self._rs_pods(r, active=False) for r in olds)
            steps = recreate_sync(dep.replicas, counts[new.name], [counts[r.name] for r in olds], running)
        else:
            steps = rolling_sync(dep.replicas, strategy, counts[new.name], [counts[r.name] for r in olds])
        for r in [*olds, new]:
            r.replicas = counts[r.name].replicas
        for s in steps:
            self._event(dep, "ScalingReplicaSet", s.message)
        return [s.message for s in steps]

    def _event(self, dep: Deployment, reason: str, message: str) -> None:
        for e in self.state.events:
            if (e.involved_kind, e.namespace, e.name, e.reason, e.message) == ("Deployment", dep.namespace, dep.name, reason, message):
                e.count += 1
                e.at = self.state.clock
                return
        self.state.events.append(Event("Deployment", dep.namespace, dep.name, "Normal", reason, message,
                                       source="deployment-controller", at=self.state.clock))

    def sync_deployments(self) -> list[str]:
        """The Deployment and ReplicaSet controllers until nothing changes (each change
        re-queues the Deployment, as their informers do). Returns the scaling messages."""
        done: list[str] = []
        for dep in list(self.state.deployments):
            for _ in range(1000):
                steps = self._sync_deployment(dep)  # the Deployment controller first: it owns the ReplicaSets' sizes
                made = self._manage_replicas(dep)
                done += steps
                if not made and not steps:
                    break
            current = new_replica_set(self.state, dep)
            old = [r for r in self.replica_sets(dep) if r.replicas == 0 and r is not current and not self._rs_pods(r, active=False)]
            limit = ((dep.manifest or {}).get("spec") or {}).get("revisionHistoryLimit", 10)
            if isinstance(limit, int) and len(old) > limit:  # cleanupDeployment: the oldest go
                for r in old[: len(old) - limit]:
                    self.state.replica_sets.remove(r)
        self.scalings += done
        return done

    def rollout(self, name: str, namespace: str = "default", *, image: str | None = None,
                template: Mapping | None = None) -> list[str]:
        """A new pod template for Deployment ``name`` (``kubectl set image`` with ``image``, or the
        whole ``template``): a new ReplicaSet, rolled out by :meth:`sync_deployments` as far as
        it can go now (the rest as pods become ready and old ones finish terminating). Returns
        the ``ScalingReplicaSet`` messages of this step; [] if the template is unchanged."""
        dep = next((d for d in self.state.deployments if d.name == name and d.namespace == namespace), None)
        if dep is None:
            known = ", ".join(d.name for d in self.state.deployments if d.namespace == namespace) or "none"
            raise InputError(f"deployment {name!r}", "no such deployment", f"deployments are: {known}")
        if (image is None) == (template is None):
            raise InputError("rollout", "give exactly one of image= and template=", f'e.g. lab.rollout("{name}", image="traefik/whoami:v1.10")')
        if image is not None:
            if not isinstance(image, str) or not image.strip():
                raise InputError("image", f"{image!r} is not an image name", 'give e.g. "traefik/whoami:v1.10"')
            new = _copy.deepcopy(dep.template)
            containers = (new.get("spec") or {}).get("containers") or []
            if len(containers) != 1:
                raise InputError("image", f"deployment {name} has {len(containers)} containers", "give the whole template= instead")
            containers[0]["image"] = image
        else:
            if not isinstance(template, Mapping):
                raise InputError("template", f"{template!r} is not a mapping", "give a pod template: {metadata: {labels: ...}, spec: {containers: [...]}}")
            new = _copy.deepcopy(dict(template))
            where = f"deployment {name}: spec.template"
            pod_from_template("check", namespace, new.get("metadata") or {}, new.get("spec") or {}, where=where)
            labels = (new.get("metadata") or {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in dep.selector.items()):
                raise InputError(f"{where}.metadata.labels", "`selector` does not match template `labels`",
                                 "keep every selector label in the template")
        from .rollout import grace_period

        grace_period(new.get("spec"), f"deployment {name}: spec.template.spec")
        if new == dep.template:
            return []
        # the ReplicaSets of the template as it is, first: a cluster read from a live API server has
        # pods but no ReplicaSets yet, and they must be adopted under the old template's hash
        self.sync_deployments()
        dep.template = new
        if dep.manifest is not None:
            dep.manifest = _copy.deepcopy(dep.manifest)
            dep.manifest.setdefault("spec", {})["template"] = _copy.deepcopy(new)
        n0 = len(self.scalings)
        self.reconcile()
        return self.scalings[n0:]

    def rollout_status(self, name: str, namespace: str = "default") -> tuple[str, bool]:
        """``kubectl rollout status deployment/NAME``'s line now, and whether it is done."""
        from .rollout import rollout_status

        dep = next((d for d in self.state.deployments if d.name == name and d.namespace == namespace), None)
        if dep is None:
            known = ", ".join(d.name for d in self.state.deployments if d.namespace == namespace) or "none"
            raise InputError(f"deployment {name!r}", "no such deployment", f"deployments are: {known}")
        rss = self.replica_sets(dep)
        new = new_replica_set(self.state, dep)
        updated = sum(len(self._rs_pods(r)) for r in rss if r is new)
        current = sum(len(self._rs_pods(r)) for r in rss)
        available = sum(1 for r in rss for p in self._rs_pods(r) if p.ready)
        return rollout_status(name, dep.replicas, updated, current, available)

    def set_pod_ready(self, name: str, ready: bool, namespace: str = "default") -> None:
        self.state.pod(name, namespace).ready = ready
        self.reconcile()

    def patch_service(self, name: str, namespace: str = "default", **spec) -> None:
        """Change Service fields (``session_affinity="ClientIP"``, ``external_traffic_policy="Local"``...)
        as an update through the API server: fields that no longer apply are dropped
        (:func:`drop_type_dependent_fields`), then admission and allocation (a LoadBalancer
        switched to Local gets a healthCheckNodePort, switched back to Cluster it loses it).
        All or nothing: a refused patch leaves the Service as it was."""
        old = self.state.service(name, namespace)
        for k in spec:
            if not hasattr(old, k):
                raise InputError(f"service {name}: {k}", "no such field", "use a kslab.model.Service field name")
        spec = check_service_patch(name, spec)
        new = _copy.deepcopy(old)
        for k, v in spec.items():
            setattr(new, k, v)
        drop_type_dependent_fields(new, old)
        d = Document(f"patch of service {old.key}", old.manifest or {"kind": "Service", "metadata": {"name": name}})
        admit_service(d, new, self.state.config)
        self.allocator.allocate(d, new, old)
        self.state.services[next(i for i, x in enumerate(self.state.services) if x is old)] = new
        self.reconcile()

    def set_node_port_range(self, rng_: tuple[int, int]) -> list[NodePortUse]:
        """The API server restarted with ``--service-node-port-range`` = ``rng_``: its allocator
        is rebuilt from the stored Services (upstream's portallocator repair controller). Every
        Service keeps its node ports, also one outside the new range: the repair controller only
        records a ``PortOutOfRange`` warning event ("Port N is not within the port range A-B;
        please recreate service", kept here in ``state.warnings``), and an update that keeps the
        port is not checked again. New requests are checked against the new range, and automatic
        allocation uses its bands. Returns every node port held, with its band."""
        lo, hi = parse_port_range(rng_, "node_port_range")
        self.state.config.node_port_range = (lo, hi)
        self.allocator = ServiceAllocator(self.state.config, self.rng)
        for s in self.state.services:
            self.allocator.mark_used(s)
        uses = node_port_uses(self.state)
        for u in uses:
            if u.band == "outside":
                self.state.warnings.append(
                    f"Service {u.service}: Port {u.port} is not within the port range {lo}-{hi}; please recreate service "
                    f"(PortOutOfRange, {u.field}: the Service keeps the port)")
        return uses

    def place(self, name: str, per_node: Mapping[str, int], namespace: str = "default") -> list[str]:
        """Deployment ``name`` ends up with exactly ``per_node[node]`` pods on each node (a node
        left out gets none): scaled to the sum, its pods bound to those nodes. Pods already on a
        node stay (the oldest first), the extra ones are deleted (the newest first), the missing
        ones are made from the ReplicaSet's template (its name suffixes from the cluster's random
        sequence) and bound to their node (``spec.nodeName``, as the scheduler's binding writes
        it), with the node's next free pod IP. Checked first: nothing changes on a bad input.
        Returns the Deployment's pods in node order."""
        dep = next((d for d in self.state.deployments if d.name == name and d.namespace == namespace), None)
        if dep is None:
            known = ", ".join(d.name for d in self.state.deployments if d.namespace == namespace) or "none"
            raise InputError(f"deployment {name!r}", "no such deployment", f"deployments are: {known}")
        if not isinstance(per_node, Mapping):
            raise InputError("per_node", f"{per_node!r} is not a mapping", 'give {node: pods}, e.g. {"myk8s-worker": 2, "myk8s-worker2": 1}')
        nodes = [n.name for n in self.state.nodes]
        for node, count in per_node.items():
            if node not in nodes:
                raise InputError(f"per_node[{node!r}]", "there is no such node", f"nodes are: {', '.join(nodes)}")
            if not isinstance(count, int) or isinstance(count, bool):
                raise InputError(f"per_node[{node!r}]", f"{count!r} is not a number of pods", "give a whole number, 0 or more")
            if count < 0:
                raise InputError(f"per_node[{node!r}]", f"{count} is negative", "give 0 or more pods")
        self.replica_sets(dep)  # adopted before the pods change (the hash they carry)
        current = new_replica_set(self.state, dep)
        mine = [p for p in self.state.pods if p.owner == f"Deployment/{dep.name}" and p.namespace == dep.namespace]
        made: list[Pod] = []
        for node in nodes:
            here = [p for p in mine if p.node_name == node]
            want = per_node.get(node, 0)
            for victim in here[want:]:
                self.state.pods.remove(victim)
            if want > len(here):
                new = pods_for_deployment(Deployment(dep.name, dep.namespace, want - len(here), dep.selector, dep.template), self.rng,
                                          template_hash=current.template_hash if current else None)
                for p in new:
                    p.node_name = node
                made += new
        for p in mine:  # pods on no node (Pending) are not part of a placement
            if p.node_name not in nodes and p in self.state.pods:
                self.state.pods.remove(p)
        self.state.pods.extend(made)
        schedule(self.state, {}, self.rng, only=made)
        dep.replicas = sum(per_node.values())
        self.reconcile()
        placed = [p for p in self.state.pods if p.owner == f"Deployment/{dep.name}" and p.namespace == dep.namespace]
        return [p.name for node in nodes for p in placed if p.node_name == node]

    def reconcile(self) -> None:
        self.sync_deployments()
        self._sync_nodes()
        reconcile_endpoint_slices(self.state, self.rng, self.endpoint_slices)
        record_writes(self.state)

    # ---- time: what happens later (kubelet probes, rollout steps, kube-proxy's delayed syncs) ----
    @property
    def timers(self) -> list["Timer"]:
        """The pending timers, soonest first (ties in the order they were scheduled)."""
        return sorted(self.__dict__.setdefault("_timers", []), key=lambda t: (t.at, t.seq))

    def schedule(self, at: float, what: str, fire: Callable[[], bool]) -> "Timer":
        """Call ``fire`` when the clock reaches ``at`` (seconds on :attr:`ClusterState.clock`; a
        time already past fires at the next :meth:`run_due`). ``what`` names it
        (``"kubelet/probe/default/web-x/web"``: :meth:`cancel` takes a prefix of it); ``fire``
        returns whether it changed the cluster."""
        timers = self.__dict__.setdefault("_timers", [])
        self._timer_seq = getattr(self, "_timer_seq", 0) + 1
        timer = Timer(float(at), what, fire, self._timer_seq)
        heapq.heappush(timers, timer)
        return timer

    def cancel(self, what_prefix: str) -> int:
        """Drop every pending timer whose name starts with ``what_prefix``; returns how many."""
        timers = self.__dict__.setdefault("_timers", [])
        keep = [t for t in timers if not t.what.startswith(what_prefix)]
        gone = len(timers) - len(keep)
        heapq.heapify(keep)
        timers[:] = keep
        return gone

    def next_due(self) -> float | None:
        """When the soonest pending timer is due (None: nothing is pending)."""
        timers = self.__dict__.get("_timers") or []
        return timers[0].at if timers else None

    def run_due(self, until: float) -> bool:
        """Fire every timer due at or before ``until`` in time order (ties: the order they were
        scheduled), the clock set to each timer's time first (never backwards); a timer a fire
        schedules within ``until`` fires too. Returns whether any changed the cluster."""
        timers = self.__dict__.setdefault("_timers", [])
        changed = False
        while timers and timers[0].at <= until:
            timer = heapq.heappop(timers)
            self.state.clock = max(self.state.clock, timer.at)
            changed = bool(timer.fire()) or changed
        return changed

    def _sync_nodes(self) -> None:
        """The controller's node handlers: ``TopologyCache.SetNodes`` when a node was added or
        deleted, or its Ready status or zone label changed (a change of CPU alone does not call it)."""
        if self.topology is None:
            return
        seen = tuple((n.name, n.ready, n.zone) for n in self.state.nodes)
        if seen != self._nodes_seen:
            self._nodes_seen = seen
            self.topology.set_nodes(self.state.nodes)

    def advance(self, seconds: float) -> None:
        """Move the control plane's clock (what kubectl's AGE counts from)."""
        if seconds < 0:
            raise InputError("seconds", f"{seconds} is negative", "the clock only moves forward")
        self.state.clock += seconds


@dataclass
class Timer:
    """Something the cluster does later (:meth:`ControlPlane.schedule`): at ``at`` seconds on
    the cluster's clock, ``fire()`` runs (it returns whether it changed the cluster)."""

    at: float
    what: str
    fire: Callable[[], bool]
    seq: int = 0

    def __lt__(self, other: "Timer") -> bool:  # the control plane's heap: soonest first, then scheduling order
        return (self.at, self.seq) < (other.at, other.seq)

    def __deepcopy__(self, memo) -> "Timer":
        # A copied cluster keeps the callback, bound to the copy when its owner is copied with it (the
        # control plane's own timers: a terminating pod's end acts on the copy's pods); a callback of
        # an owner outside the copy (the Lab's kubelet, kube-proxy) stays, and that owner re-schedules.
        return Timer(self.at, self.what, _rebind(self.fire, memo), self.seq)


def _rebind(fn: Callable, memo: dict) -> Callable:
    """``fn`` with its bound object replaced by that object's copy in ``memo``, if it has one."""
    if isinstance(fn, functools.partial):
        return functools.partial(_rebind(fn.func, memo), *fn.args, **fn.keywords)
    owner = getattr(fn, "__self__", None)
    if owner is not None and id(owner) in memo and hasattr(fn, "__func__"):
        return types.MethodType(fn.__func__, memo[id(owner)])
    return fn


# ---- the API server's bookkeeping ----------------------------------------------------------------

RECORDED_KINDS = ("Node", "Service", "EndpointSlice", "Pod", "Deployment")


def _stored(state: ClusterState):
    """Every stored object as (kind, namespace, object); cluster-scoped kinds have namespace ""."""
    for n in state.nodes:
        yield "Node", "", n
    for kind, objs in (("Service", state.services), ("EndpointSlice", state.endpoint_slices), ("Pod", state.pods), ("Deployment", state.deployments)):
        for o in objs:
            yield kind, o.namespace, o


def _fingerprint(obj) -> bytes:
    return hashlib.blake2b(repr(obj).encode(), digest_size=16).digest()


def record(state: ClusterState, kind: str, namespace: str, obj, at: float | None = None) -> ObjectRecord:
    """The API server stores ``obj``: a new object gets its creation time (``at``, default the
    clock), a uid and the next revision; a changed one the next revision and generation."""
    key = (kind, namespace, obj.name)
    fp = _fingerprint(obj)
    rec = state.records.get(key)
    if rec is None:
        state.revision += 1
        created = state.clock if at is None else at
        seed = f"{state.config.name}/{kind}/{namespace}/{obj.name}/{created}/{state.revision}".encode()
        uid = str(uuid.UUID(bytes=hashlib.sha256(seed).digest()[:16], version=4))
        rec = state.records[key] = ObjectRecord(created=created, uid=uid, resource_version=state.revision, fingerprint=fp)
    elif rec.fingerprint != fp:
        state.revision += 1
        rec.resource_version = state.revision
        rec.generation += 1
        rec.fingerprint = fp
    return rec


def record_writes(state: ClusterState) -> None:
    """After a change: record every new or changed object (see :func:`record`) and forget the
    deleted ones. Deterministic: the same changes give the same uids and resourceVersions."""
    seen = set()
    for kind, ns, obj in _stored(state):
        record(state, kind, ns, obj)
        seen.add((kind, ns, obj.name))
    for key in [k for k in state.records if k not in seen]:
        del state.records[key]


# ---- nodes ---------------------------------------------------------------------------------------


# status.allocatable.cpu of a node made from a kind Cluster config, in millicores. A real kind node
# is a container on the host and reports the host's CPUs (kind reserves none: allocatable =
# capacity = the host's CPU count), so it depends on the machine; kslab fixes it at 2 CPUs, what
# the kind cluster recorded in tests/data/kind reports (a 2-core host), so every lab is the same
# everywhere. All kind nodes share the host, so they weigh the same in the topology cache's zone
# ratios whatever the value. Node objects given with -f DIR keep theirs.
KIND_NODE_ALLOCATABLE_CPU = 2000

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_zones(state: ClusterState, zones: Mapping[str, str | None]) -> None:
    """The nodes exist and each zone is a valid label value (at most 63 characters: letters,
    digits, '-', '_', '.', beginning and ending with a letter or digit), as the API server checks
    a label; else one InputError naming the node."""
    if not isinstance(zones, Mapping):
        raise InputError("zones", f"{zones!r} is not a mapping", 'give {node: zone}, e.g. {"myk8s-worker": "zone-a"}')
    for name, zone in zones.items():
        state.node(str(name))
        if zone is None or zone == "":
            continue
        if not isinstance(zone, str) or len(zone) > 63 or not _LABEL_VALUE.match(zone):
            raise InputError(f"zones[{name!r}]", f"{zone!r} is not a valid label value",
                             "use at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit")


def check_allocatable_cpu(state: ClusterState, cpu: Mapping[str, int]) -> None:
    """The nodes exist and each CPU is a whole number of millicores, 1 to 1,000,000 (1000 = one
    core); else one InputError naming the node."""
    if not isinstance(cpu, Mapping):
        raise InputError("cpu", f"{cpu!r} is not a mapping", 'give {node: millicores}, e.g. {"myk8s-worker": 4000}')
    for name, milli in cpu.items():
        state.node(str(name))
        if not isinstance(milli, int) or isinstance(milli, bool) or not 1 <= milli <= 1_000_000:
            raise InputError(f"cpu[{name!r}]", f"{milli!r} is not a number of millicores",
                             "give a whole number from 1 to 1000000 (4000 = 4 cores)")


def kind_nodes_to_nodes(cfg: ClusterConfig, kind_nodes, doc: Document) -> list[Node]:
    """Name, address and label nodes as kind does: ``<name>-control-plane``, ``<name>-worker2`` ...

    Per CIDR of the pod subnet (one per family, the primary first) each node gets an address on
    the docker network (IPv4 ``172.18.0.{2+i}``, IPv6 ``fc00:f853:ccd:e793::{2+i}``) and a pod
    CIDR cut from the pod subnet as kube-controller-manager's range allocator does: a /24 per node
    for IPv4 (``--node-cidr-mask-size-ipv4``) and a /64 for IPv6 (``--node-cidr-mask-size-ipv6``,
    kubeadm's default for a /56 or wider)."""
    counts = {"control-plane": 0, "worker": 0}
    nodes = []
    per_family = []  # (node network, pod CIDRs) per family, the primary first
    for pod_subnet in cfg.pod_subnets():
        pod_net = ipaddress.ip_network(pod_subnet, strict=False)
        fam = pod_net.version
        size = 24 if fam == 4 else 64
        cidrs = pod_net.subnets(new_prefix=size) if pod_net.prefixlen <= size else iter(())
        per_family.append((ipaddress.ip_network(NODE_SUBNET if fam == 4 else NODE_SUBNET6), pod_subnet, size, cidrs))
    # control planes first, as kind creates and kubeadm registers them
    ordered = [k for k in kind_nodes if k.role == "control-plane"] + [k for k in kind_nodes if k.role == "worker"]
    for i, kn in enumerate(ordered):
        counts[kn.role] += 1
        n = counts[kn.role]
        name = f"{cfg.name}-{kn.role}" + (str(n) if n > 1 else "")
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            LABEL_HOSTNAME: name,
        }
        taints = []
        if kn.role == "control-plane":
            labels[LABEL_CONTROL_PLANE] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
            taints = [{"key": LABEL_CONTROL_PLANE, "effect": "NoSchedule"}]
        labels.update(kn.labels)
        addresses, pod_cidrs = [], []
        for node_net, pod_subnet, size, cidrs in per_family:
            cidr = next(cidrs, None)
            if cidr is None:
                raise InputError(doc.where("networking.podSubnet"), f"{pod_subnet} has no /{size} left for node {name}", "use a larger podSubnet")
            addresses.append(str(node_net.network_address + 2 + i))
            pod_cidrs.append(str(cidr))
        node = Node(name=name, labels=labels, taints=taints, allocatable_cpu=KIND_NODE_ALLOCATABLE_CPU)
        node.addresses, node.pod_cidrs = addresses, pod_cidrs
        nodes.append(node)
    return nodes


# ---- services ------------------------------------------------------------------------------------


LB_SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
"""``core.AnnotationLoadBalancerSourceRangesKey``: the annotation that came before
``spec.loadBalancerSourceRanges`` (comma-separated CIDRs); validated only when the field is empty."""

INVALID_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"  # validation.IsValidCIDR


def validate_source_ranges(s: Service) -> list[tuple[str, str]]:
    """``ValidateService``'s check of ``spec.loadBalancerSourceRanges`` (or, when that is empty,
    of the :data:`LB_SOURCE_RANGES_ANNOTATION` annotation): (field path, error) pairs in the API
    server's words, the path spelled as upstream spells it (``specPath.Child("LoadBalancerSourceRanges")``).
    Only a LoadBalancer Service may have them (Forbidden), and each value, spaces trimmed, must
    parse as a CIDR (``netutils.ParseCIDRSloppy``: ``172.18.0.100`` without a prefix length is
    refused, host bits after the prefix are allowed)."""
    errs: list[tuple[str, str]] = []
    forbidden = "Forbidden: may only be used when `type` is 'LoadBalancer'"
    if s.load_balancer_source_ranges:
        path = "spec.LoadBalancerSourceRanges"
        if s.type != "LoadBalancer":
            errs.append((path, forbidden))
        for i, value in enumerate(s.load_balancer_source_ranges):
            value = str(value).strip()
            if parse_cidr_sloppy(value) is None:
                errs.append((f"{path}[{i}]", f"Invalid value: {json.dumps(value)}: {INVALID_CIDR}"))
    elif LB_SOURCE_RANGES_ANNOTATION in (s.annotations or {}):
        path = f"metadata.annotations[{LB_SOURCE_RANGES_ANNOTATION}]"
        if s.type != "LoadBalancer":
            errs.append((path, forbidden))
        value = str(s.annotations[LB_SOURCE_RANGES_ANNOTATION]).strip()
        if value:
            for cidr in value.split(","):
                cidr = cidr.strip()
                if parse_cidr_sloppy(cidr) is None:
                    errs.append((path, f"Invalid value: {json.dumps(cidr)}: {INVALID_CIDR}"))
    return errs


def admit_service(d: Document, s: Service, cfg: ClusterConfig) -> None:
    """Defaults and the validation errors the API server would give (``ValidateService``)."""
    if s.type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise AdmissionError(d.where("spec.type"), f"unsupported value {s.type!r}", "use ClusterIP, NodePort, LoadBalancer or ExternalName")
    if not DNS1035.match(s.name) or len(s.name) > 63:
        raise AdmissionError(d.where("metadata.name"), f"{s.name!r} is not a valid Service name (DNS-1035 label)", "use lower-case letters, digits and '-', starting with a letter")
    if s.type != "ExternalName" and not s.ports:
        raise AdmissionError(d.where("spec.ports"), "a Service needs at least one port", "add spec.ports")
    if s.type == "ExternalName":  # ValidateService: the family fields are the API server's to leave unset
        family_errs = [(f"spec.{k}", "Forbidden: may not be set for ExternalName services")
                       for k, v in (("ipFamilies", s.ip_families), ("ipFamilyPolicy", s.ip_family_policy)) if v]
        if family_errs:
            raise invalid_service(s, family_errs)
    names: dict[str, int] = {}
    seen_pp: dict[tuple[int, str], int] = {}
    seen_np: set[tuple[int, str]] = set()
    for i, p in enumerate(s.ports):
        f = f"spec.ports[{i}]"
        p.protocol = p.protocol or "TCP"
        if p.protocol not in VALID_PROTOCOLS:
            raise AdmissionError(d.where(f + ".protocol"), f"unsupported value {p.protocol!r}", "use TCP, UDP or SCTP")
        if len(s.ports) > 1 and not p.name:
            raise AdmissionError(d.where(f + ".name"), "a name is required when a Service has more than one port", "name every port")
        if p.name:
            if not DNS1123_LABEL.match(p.name) or len(p.name) > 63:
                raise AdmissionError(d.where(f + ".name"), f"{p.name!r} is not a valid port name (DNS-1123 label)", "use lower-case letters, digits and '-'")
            if p.name in names:
                raise AdmissionError(
                    d.where(f + ".name"), f"duplicate port name {p.name!r} (also spec.ports[{names[p.name]}])", "give every port its own name"
                )
            names[p.name] = i
        if not 1 <= p.port <= 65535:
            raise AdmissionError(d.where(f + ".port"), f"{p.port} is not a valid port", "use 1-65535")
        if (p.port, p.protocol) in seen_pp:
            raise AdmissionError(d.where(f + ".port"), f"port {p.port}/{p.protocol} is listed twice", "each port/protocol once")
        seen_pp[(p.port, p.protocol)] = i
        if p.target_port in (None, "", 0):
            p.target_port = p.port
        elif isinstance(p.target_port, str) and not is_port_name(p.target_port):
            raise AdmissionError(d.where(f + ".targetPort"), f"{p.target_port!r} is neither a number nor a port name", "use a container port number or name")
        elif isinstance(p.target_port, int) and not 1 <= p.target_port <= 65535:
            raise AdmissionError(d.where(f + ".targetPort"), f"{p.target_port} is not a valid port", "use 1-65535")
        if p.node_port and s.type not in ("NodePort", "LoadBalancer"):
            raise AdmissionError(d.where(f + ".nodePort"), f"nodePort may not be set on a {s.type} Service", "remove it, or use type NodePort")
        if p.node_port:  # ValidateService: duplicate NodePorts, considering (protocol, port) pairs
            if (p.node_port, p.protocol) in seen_np:
                raise api_invalid(s, f + ".nodePort", f"Duplicate value: {p.node_port}")
            seen_np.add((p.node_port, p.protocol))
    source_range_errors = validate_source_ranges(s)
    if len(source_range_errors) == 1:
        raise api_invalid(s, *source_range_errors[0])
    if source_range_errors:  # the API server lists every error of the field: kubectl prints them as one list
        raise AdmissionError(f'The Service "{s.name}" is invalid', "[" + ", ".join(f"{f}: {e}" for f, e in source_range_errors) + "]")
    if s.type in ("NodePort", "LoadBalancer") and s.cluster_ip == "None":
        raise AdmissionError(d.where("spec.clusterIP"), f"may not be None for type {s.type}", "remove clusterIP: None")
    ext = s.type in ("NodePort", "LoadBalancer") or bool(s.external_ips)
    if s.external_traffic_policy and s.external_traffic_policy not in ("Cluster", "Local"):
        raise AdmissionError(d.where("spec.externalTrafficPolicy"), f"unsupported value {s.external_traffic_policy!r}", "use Cluster or Local")
    if s.external_traffic_policy and not ext:
        raise AdmissionError(
            d.where("spec.externalTrafficPolicy"), "may only be set for externally-accessible services", "remove it, or use type NodePort/LoadBalancer"
        )
    if ext and not s.external_traffic_policy:
        s.external_traffic_policy = "Cluster"
    if s.internal_traffic_policy and s.internal_traffic_policy not in ("Cluster", "Local"):
        raise AdmissionError(d.where("spec.internalTrafficPolicy"), f"unsupported value {s.internal_traffic_policy!r}", "use Cluster or Local")
    if s.type != "ExternalName" and not s.internal_traffic_policy:
        s.internal_traffic_policy = "Cluster"
    if s.session_affinity not in ("None", "ClientIP"):
        raise AdmissionError(d.where("spec.sessionAffinity"), f"unsupported value {s.session_affinity!r}", "use None or ClientIP")
    if s.session_affinity == "ClientIP":
        if s.session_affinity_timeout is None:
            s.session_affinity_timeout = 10800
        if not 1 <= s.session_affinity_timeout <= 86400:
            raise AdmissionError(
                d.where("spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
                f"{s.session_affinity_timeout} is out of range",
                "use 1-86400 seconds (default 10800)",
            )
    elif s.session_affinity_timeout is not None:
        raise AdmissionError(d.where("spec.sessionAffinityConfig"), "only allowed with sessionAffinity: ClientIP", "remove it or set sessionAffinity: ClientIP")
    for i, ip in enumerate(s.external_ips):
        if parse_ip_sloppy(ip) is None or ip != parse_ip_sloppy(ip):
            raise AdmissionError(d.where(f"spec.externalIPs[{i}]"), f"{ip!r} is not a valid IP address", "write it like 192.168.99.22 (no leading zeros)")
    if s.type == "LoadBalancer":  # SetDefaults_Service (LoadBalancerIPMode, GA in 1.32): an ingress IP is a VIP
        for ing in s.load_balancer_ingress:
            if ing.ip and ing.ip_mode is None:
                ing.ip_mode = "VIP"
    if s.health_check_node_port and not (s.type == "LoadBalancer" and s.external_traffic_policy == "Local"):
        raise AdmissionError(
            d.where("spec.healthCheckNodePort"), "only allowed for type LoadBalancer with externalTrafficPolicy Local", "remove it"
        )


class _ServiceIPRange:
    """One family's ClusterIP allocator (the API server's ``ipallocator`` over one CIDR of
    ``--service-cluster-ip-range``): the allocatable addresses are ``net.hosts()`` (no network or,
    for IPv4, broadcast address), kept as offsets from the first of them."""

    def __init__(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network, rng: random.Random):
        self.net = net
        first = int(net.network_address)
        last = int(net.broadcast_address)
        if net.num_addresses > 2:
            first, last = first + 1, (last - 1 if net.version == 4 else last)
        self.first_host = first
        n_hosts = last - first + 1
        self.ips = _BandAllocator(n_hosts, band_offset(n_hosts, 16, 256, 16), rng)

    def offset_of(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        i = int(addr) - self.first_host
        if addr.version != self.net.version or not 0 <= i < self.ips.size:
            return None
        return i

    def ip(self, offset: int) -> str:
        return str(ipaddress.ip_address(self.first_host + offset))


class ServiceAllocator:
    """The API server's ClusterIP (one allocator per IP family) and NodePort allocators for one
    cluster."""

    def __init__(self, cfg: ClusterConfig, rng: random.Random):
        self.cfg = cfg
        self.rng = rng
        # one ClusterIP allocator per family of --service-cluster-ip-range (serviceIPAllocatorsByFamily),
        # the primary (defaultServiceIPFamily) first
        self.ranges: dict[int, _ServiceIPRange] = {}
        for cidr in cfg.service_subnets() or [cfg.service_subnet]:
            r = _ServiceIPRange(ipaddress.ip_network(cidr, strict=False), rng)
            self.ranges.setdefault(r.net.version, r)
        primary = next(iter(self.ranges.values()))
        self.net = primary.net
        lo, hi = cfg.node_port_range
        self.ports = _BandAllocator(hi - lo + 1, len(node_port_bands(cfg.node_port_range)[0]), rng)
        self.ip_owner: dict[str, str] = {}
        self.port_owner: dict[int, str] = {}

    @property
    def ips(self) -> "_BandAllocator":
        """The primary family's ClusterIP bitmap."""
        return self.ranges[self.net.version].ips

    @property
    def families(self) -> list[str]:
        """The families the cluster serves (``IPv4``/``IPv6``), the primary first."""
        return [family_name(f) for f in self.ranges]

    def _range_of(self, ip: str) -> "_ServiceIPRange | None":
        try:
            return self.ranges.get(ipaddress.ip_address(ip).version)
        except ValueError:
            return None

    def _ip_offset(self, ip: str) -> int | None:
        """The offset of a service IP in its family's allocatable range, or None outside it."""
        r = self._range_of(ip)
        return None if r is None else r.offset_of(ip)

    def _ip(self, offset: int) -> str:
        return self.ranges[self.net.version].ip(offset)

    def _port_offset(self, port: int) -> int | None:
        """The offset of a node port in the range's bitmap, or None outside the range."""
        lo, hi = self.cfg.node_port_range
        return port - lo if lo <= port <= hi else None

    def _take_port(self, port: int, owner: str) -> None:
        off = self._port_offset(port)
        if off is not None:
            self.ports.used.add(off)
        self.port_owner[port] = owner

    def _free_port(self, port: int, owner: str) -> None:
        if port and self.port_owner.get(port) == owner:
            del self.port_owner[port]
            off = self._port_offset(port)
            if off is not None:
                self.ports.used.discard(off)

    def _free_ip(self, ip: str, owner: str) -> None:
        if ip and self.ip_owner.get(ip) == owner:
            del self.ip_owner[ip]
            r = self._range_of(ip)
            off = None if r is None else r.offset_of(ip)
            if off is not None:
                r.ips.used.discard(off)

    def mark_used(self, s: Service) -> None:
        """``s``'s allocations are taken (what the repair controller rebuilds after a restart; a
        port outside the range stays the Service's, it is just not in the range's bitmap)."""
        for ip in held_cluster_ips(s):
            r = self._range_of(ip)
            i = None if r is None else r.offset_of(ip)
            if i is not None:
                r.ips.used.add(i)
            self.ip_owner[ip] = s.key
        for port in held_node_ports(s):
            self._take_port(port, s.key)

    def release(self, s: Service) -> None:
        for ip in held_cluster_ips(s):
            self._free_ip(ip, s.key)
        for port in held_node_ports(s):
            self._free_port(port, s.key)

    def kubernetes_service(self) -> Service:
        """``default/kubernetes``, which the API server creates with the first service IP."""
        ip = self._ip(0)
        self.ips.used.add(0)
        self.ip_owner[ip] = "default/kubernetes"
        return Service(
            name="kubernetes",
            namespace="default",
            cluster_ip=ip,
            cluster_ips=[ip],
            ip_families=[family_name(self.net.version)],
            ip_family_policy=SINGLE_STACK,
            ports=[ServicePort(port=443, name="https", protocol="TCP", target_port=6443)],
            internal_traffic_policy="Cluster",
            labels={"component": "apiserver", "provider": "kubernetes"},
        )

    def allocate(self, d: Document, s: Service, old: Service | None = None) -> None:
        """The API server's allocation for a created Service (``old`` None) or an updated one
        (``old``: the stored Service, whose allocations ``s`` may keep: a kept nodePort is not
        checked against the range again, as upstream's ``updateNodePorts``). All or nothing: on
        an error nothing stays taken; on success what ``old`` held and ``s`` does not is freed."""
        taken_ports: list[int] = []
        taken_ips: list[str] = []
        try:
            self._allocate_cluster_ips(d, s, old, taken_ips)
            self._allocate_node_ports(d, s, old, taken_ports)
        except AdmissionError:
            for port in taken_ports:
                self._free_port(port, s.key)
            for ip in taken_ips:
                self._free_ip(ip, s.key)
            raise
        if old is not None:
            keep_ports = set(held_node_ports(s))
            for port in held_node_ports(old):
                if port not in keep_ports:
                    self._free_port(port, old.key)
            keep_ips = set(held_cluster_ips(s))
            for ip in held_cluster_ips(old):
                if ip not in keep_ips:
                    self._free_ip(ip, old.key)

    def _allocate_cluster_ips(self, d: Document, s: Service, old: Service | None, taken: list[str]) -> None:
        """``allocateCreate``/``allocateUpdate``'s ClusterIP part (``pkg/registry/core/service/storage/alloc.go``):
        ``clusterIP``/``clusterIPs`` made one (the strategy's ``normalizeClusterIPs``), the IP
        family fields defaulted and checked (:func:`init_ip_family_fields`), then one address per
        entry of ``ipFamilies`` from that family's allocator (``allocClusterIPs``): a requested one
        is checked and taken, a missing one allocated. An address ``old`` holds stays its own."""
        if s.type == "ExternalName":
            return
        normalize_cluster_ips(s, old)
        for i, ip in enumerate(s.cluster_ips):
            at = "spec.clusterIP" if i == 0 else f"spec.clusterIPs[{i}]"
            if ip != "None" and (parse_ip_sloppy(ip) is None or parse_ip_sloppy(ip) != ip):
                raise AdmissionError(d.where(at), f"{ip!r} is not a valid IP address", "write it like 10.200.1.10, or leave it out")
        errs = init_ip_family_fields(s, old, self.families)
        if errs:
            raise invalid_service(s, errs)
        if s.cluster_ips[:1] == ["None"]:
            return  # headless: families, no addresses
        held = set(held_cluster_ips(old)) if old is not None else set()
        ips = list(s.cluster_ips)
        for i, fam in enumerate(s.ip_families):
            r = self.ranges[6 if fam == "IPv6" else 4]
            at = "spec.clusterIP" if i == 0 else f"spec.clusterIPs[{i}]"
            if i < len(ips) and ips[i]:
                ip = ips[i]
                if ip in held and self.ip_owner.get(ip) == s.key:
                    continue  # kept by the update
                offset = r.offset_of(ip)
                if offset is None:
                    raise AdmissionError(d.where(at), f"{ip} is not in the service CIDR {r.net}",
                                         "pick an address inside it, or leave clusterIP out to have one allocated")
                if ip in self.ip_owner:
                    raise AdmissionError(d.where(at), f"{ip} is already allocated to {self.ip_owner[ip]}", "pick another address or leave it out")
                r.ips.used.add(offset)
            else:
                offset = r.ips.allocate_next()
                if offset is None:
                    raise AdmissionError(d.where(at), f"the service CIDR {r.net} is full", "use a larger serviceSubnet")
                ip = r.ip(offset)
                ips[i:i + 1] = [ip]
            self.ip_owner[ip] = s.key
            taken.append(ip)
        s.cluster_ips = ips
        s.cluster_ip = ips[0]

    def _allocate_node_ports(self, d: Document, s: Service, old: Service | None, taken: list[int]) -> None:
        """``initNodePorts``/``updateNodePorts`` and the health check node port
        (``allocHealthCheckNodePort``/``updateHealthCheckNodePort``), with the API server's errors."""
        kept = set(held_node_ports(old)) if old is not None else set()
        if needs_node_ports(s):
            wants = s.type == "NodePort" or s.allocate_load_balancer_node_ports is not False  # shouldAllocateNodePorts
            for i, p in enumerate(s.ports):
                field = f"spec.ports[{i}].nodePort"
                if p.node_port:
                    if p.node_port in kept or p.node_port in taken:
                        continue  # the Service's own port (kept from before, or the same nodePort for another protocol)
                    self._claim(s, field, p.node_port)
                    taken.append(p.node_port)
                elif wants:
                    p.node_port = self._next(s, "failed to allocate a nodePort")
                    taken.append(p.node_port)
        if needs_health_check(s):
            hc = s.health_check_node_port
            if hc and old is not None and needs_health_check(old) and hc == old.health_check_node_port:
                return  # kept
            if hc:
                problem = self._port_problem(hc)
                if problem:  # allocHealthCheckNodePort's error is an internal one, not a field's
                    raise AdmissionError("Internal error occurred", f"failed to allocate requested HealthCheck NodePort {hc}: {problem}")
                self._take_port(hc, s.key)
                taken.append(hc)
            else:
                # upstream prints the (shadowed, zero) port in this message
                s.health_check_node_port = self._next(s, "failed to allocate a HealthCheck NodePort 0")
                taken.append(s.health_check_node_port)

    def _port_problem(self, port: int) -> str | None:
        """Why ``portallocator.Allocate(port)`` fails, in its words (``ErrNotInRange``,
        ``ErrAllocated``; upstream ``pkg/registry/core/service/portallocator``), or None."""
        lo, hi = self.cfg.node_port_range
        if not lo <= port <= hi:
            return f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
        if port in self.port_owner:
            return "provided port is already allocated"
        return None

    def _claim(self, s: Service, field: str, port: int) -> None:
        """A requested nodePort, as the Service REST storage reports a refusal (``initNodePorts``:
        ``field.Invalid(spec.ports[i].nodePort, port, err)`` in a 422)."""
        problem = self._port_problem(port)
        if problem:
            raise api_invalid(s, field, f"Invalid value: {port}: {problem}")
        self._take_port(port, s.key)

    def _next(self, s: Service, what: str) -> int:
        """``AllocateNext``: a free port, the dynamic band first; a full range is the API server's
        internal error."""
        offset = self.ports.allocate_next()
        if offset is None:
            raise AdmissionError("Internal error occurred", f"{what}: range is full")
        port = self.cfg.node_port_range[0] + offset
        self.port_owner[port] = s.key
        return port


_STRING_LIST_FIELDS = ("cluster_ips", "external_ips", "load_balancer_source_ranges", "ip_families")


def check_service_patch(name: str, spec: Mapping[str, object]) -> dict[str, object]:
    """The shapes of :meth:`ControlPlane.patch_service`'s fields before anything changes: a list
    field (``load_balancer_source_ranges``, ``external_ips``, ``ports``...) takes a list (a tuple
    is read as one; a string is refused, not read letter by letter), the address lists take
    strings, a mapping field (``selector``, ``annotations``, ``labels``) a mapping. Returns the
    patch with tuples made lists; else a one-line InputError naming the field."""
    kinds = {f.name: f.default_factory for f in dataclasses.fields(Service)}
    out = dict(spec)
    for k, v in spec.items():
        if kinds.get(k) is list:
            if not isinstance(v, (list, tuple)):
                example = ' e.g. ["172.18.0.0/24"]' if k in _STRING_LIST_FIELDS else ""
                raise InputError(f"service {name}: {k}", f"{v!r} is not a list", f"give a list,{example}" if example else "give a list")
            if k in _STRING_LIST_FIELDS:
                for i, item in enumerate(v):
                    if not isinstance(item, str):
                        raise InputError(f"service {name}: {k}[{i}]", f"{item!r} is not a string", 'write each one as text, e.g. "172.18.0.0/24"')
            out[k] = list(v)
        elif (kinds.get(k) is dict or k == "selector") and v is not None and not isinstance(v, Mapping):
            raise InputError(f"service {name}: {k}", f"{v!r} is not a mapping", 'give {key: value}, e.g. {"app": "deploy-websrv"}')
    return out


def api_invalid(s: Service, field: str, detail: str) -> AdmissionError:
    """The API server's 422 as kubectl prints it: ``The Service "NAME" is invalid: FIELD: DETAIL``."""
    return AdmissionError(f'The Service "{s.name}" is invalid: {field}', detail)


def _go_value(v) -> str:
    """A field error's value as the API server prints it (``field.Error``: ``%q`` for a string,
    ``%#v`` for a list of strings)."""
    if isinstance(v, (list, tuple)):
        return "[]string{" + ", ".join(json.dumps(str(x)) for x in v) + "}"
    return json.dumps(str(v))


def invalid_service(s: Service, errs: list[tuple[str, str]]) -> AdmissionError:
    """The API server's 422 for a list of (field path, error) pairs, as kubectl prints it: one
    error after ``FIELD: ``, several as ``[FIELD: ERROR, ...]``."""
    if len(errs) == 1:
        return api_invalid(s, *errs[0])
    return AdmissionError(f'The Service "{s.name}" is invalid', "[" + ", ".join(f"{f}: {e}" for f, e in errs) + "]")


def held_cluster_ips(s: Service | None) -> list[str]:
    """The service IPs ``s`` holds (``clusterIPs``, or ``clusterIP`` alone; none when headless)."""
    if s is None:
        return []
    ips = s.cluster_ips or ([s.cluster_ip] if s.cluster_ip else [])
    return [ip for ip in ips if ip and ip != "None"]


def normalize_cluster_ips(s: Service, old: Service | None = None) -> None:
    """The Service strategy's ``normalizeClusterIPs`` on create (and on an update that changed
    ``clusterIP`` without touching ``clusterIPs``): ``clusterIP`` alone becomes ``clusterIPs[0]``,
    ``clusterIPs`` alone gives ``clusterIP``."""
    if old is not None and s.cluster_ip != old.cluster_ip and s.cluster_ips == old.cluster_ips:
        s.cluster_ips = [s.cluster_ip] if s.cluster_ip else []
        return
    if s.cluster_ip and not s.cluster_ips:
        s.cluster_ips = [s.cluster_ip]
    elif not s.cluster_ip and s.cluster_ips:
        s.cluster_ip = s.cluster_ips[0]


def validate_cluster_ips_related_fields(s: Service) -> list[tuple[str, str]]:
    """``ValidateServiceClusterIPsRelatedFields`` (``pkg/apis/core/validation/validation.go``):
    ``clusterIPs`` against ``clusterIP``, ``ipFamilies`` and ``ipFamilyPolicy`` values, at most two
    cluster IPs, one per family, each of its ``ipFamilies`` entry's family. (Field path, error)
    pairs in the API server's words. (Malformed addresses are refused before, in kslab's words.)"""
    if s.type == "ExternalName":
        return []
    errs: list[tuple[str, str]] = []
    ips = list(s.cluster_ips)
    if s.cluster_ip:
        if not ips:
            errs.append(("spec.clusterIPs", "Required value"))
        elif ips[0] != s.cluster_ip:
            errs.append(("spec.clusterIPs", f"Invalid value: {_go_value(ips)}: first value must match `clusterIP`"))
    elif ips:
        errs.append(("spec.clusterIPs", f"Invalid value: {_go_value(ips)}: must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, fam in enumerate(s.ip_families):
        if fam not in ("IPv4", "IPv6"):
            errs.append((f"spec.ipFamilies[{i}]", f'Unsupported value: {_go_value(fam)}: supported values: "IPv4", "IPv6"'))
        if fam in seen:
            errs.append((f"spec.ipFamilies[{i}]", f"Duplicate value: {_go_value(fam)}"))
        seen.add(fam)
    if s.ip_family_policy and s.ip_family_policy not in IP_FAMILY_POLICIES:
        errs.append(("spec.ipFamilyPolicy", f"Unsupported value: {_go_value(s.ip_family_policy)}: supported values: "
                     + ", ".join(_go_value(p) for p in sorted(IP_FAMILY_POLICIES))))
    if ips[:1] == ["None"] and len(ips) > 1:
        errs.append(("spec.clusterIPs", f"Invalid value: {_go_value(ips)}: 'None' must be the first and only value"))
        return errs
    if len(ips) > 2:
        errs.append(("spec.clusterIPs", f"Invalid value: {_go_value(ips)}: may only hold up to 2 values"))
    if len(ips) > 1 and len({ip_family(ip) for ip in ips}) != len(ips):
        errs.append(("spec.clusterIPs", f"Invalid value: {_go_value(ips)}: may specify no more than one IP for each IP family"))
    if ips and ips != ["None"] and s.ip_families:
        for i, ip in enumerate(ips[:len(s.ip_families)]):
            want = s.ip_families[i]
            if want in ("IPv4", "IPv6") and family_name(ip_family(ip)) != want:
                errs.append((f"spec.clusterIPs[{i}]", f"Invalid value: {_go_value(ip)}: expected an {want} value as indicated by `ipFamilies[{i}]`"))
    return errs


def init_ip_family_fields(s: Service, old: Service | None, families: list[str]) -> list[tuple[str, str]]:
    """The API server's ``initIPFamilyFields`` (``pkg/registry/core/service/storage/alloc.go``):
    default ``ipFamilyPolicy`` (SingleStack; RequireDualStack for a headless Service without a
    selector; on an update the stored one) and ``ipFamilies`` (from ``clusterIPs``, else the
    cluster's primary family, plus the other family when the policy is not SingleStack and the
    cluster has both), and check them against the families the cluster serves (``families``, the
    primary first). Returns the (field path, error) pairs; empty = ``s`` is now filled in."""
    if s.type == "ExternalName":
        return []
    headless_selectorless = s.cluster_ip == "None" and not s.selector
    if old is not None and s.type == old.type and old.ip_family_policy == PREFER_DUAL_STACK \
            and (s.ip_family_policy or PREFER_DUAL_STACK) == PREFER_DUAL_STACK \
            and s.cluster_ips == old.cluster_ips and (not s.ip_families or s.ip_families == old.ip_families):
        # isMatchingPreferDualStackClusterIPFields: a PreferDualStack Service is not up- or
        # downgraded by a change of the cluster (kslab's update carries the stored policy and
        # families over when the new manifest leaves them out, as kubectl apply's patch does)
        s.ip_family_policy, s.ip_families = old.ip_family_policy, list(old.ip_families)
        return []
    if not s.ip_family_policy:
        if old is not None and old.ip_family_policy:
            s.ip_family_policy = old.ip_family_policy
        elif headless_selectorless:
            s.ip_family_policy = REQUIRE_DUAL_STACK
        else:
            s.ip_family_policy = SINGLE_STACK
    errs = validate_cluster_ips_related_fields(s)
    if errs:
        return errs
    policy = s.ip_family_policy
    value = _go_value(policy)
    if old is not None:
        if policy == SINGLE_STACK:
            if s.cluster_ips == old.cluster_ips and len(s.cluster_ips) > 1:
                s.cluster_ips = s.cluster_ips[:1]
            if s.ip_families == old.ip_families and len(s.ip_families) > 1:
                s.ip_families = s.ip_families[:1]
        else:
            if len(s.cluster_ips) < len(old.cluster_ips) and s.cluster_ips != ["None"]:
                errs.append(("spec.ipFamilyPolicy", f"Invalid value: {value}: must be 'SingleStack' to release the secondary cluster IP"))
            if 0 < len(s.ip_families) < len(old.ip_families):
                errs.append(("spec.ipFamilyPolicy", f"Invalid value: {value}: must be 'SingleStack' to release the secondary IP family"))
    if policy == SINGLE_STACK:
        if len(s.cluster_ips) == 2:
            errs.append(("spec.ipFamilyPolicy", f"Invalid value: {value}: must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
        if len(s.ip_families) == 2:
            errs.append(("spec.ipFamilyPolicy", f"Invalid value: {value}: must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
    for i, ip in enumerate(s.cluster_ips):
        if ip == "None":
            break
        fam = family_name(ip_family(ip))
        if i >= len(s.ip_families):
            if fam not in families:
                errs.append((f"spec.clusterIPs[{i}]", f"Invalid value: {_go_value(s.cluster_ips)}: {fam} is not configured on this cluster"))
            else:
                s.ip_families.append(fam)
    if errs:
        return errs
    if headless_selectorless:
        if not s.ip_families:
            s.ip_families = [families[0]]
        if len(s.ip_families) < 2 and policy != SINGLE_STACK:
            s.ip_families.append("IPv6" if s.ip_families[0] == "IPv4" else "IPv4")
        return []
    if policy == REQUIRE_DUAL_STACK and len(families) < 2:
        errs.append(("spec.ipFamilyPolicy", f"Invalid value: {value}: this cluster is not configured for dual-stack services"))
    for i, fam in enumerate(s.ip_families):
        if fam not in families:
            errs.append((f"spec.ipFamilies[{i}]", f"Invalid value: {_go_value(fam)}: not configured on this cluster"))
    if errs:
        return errs
    if not s.ip_families:
        s.ip_families = [families[0]]
    if policy != SINGLE_STACK and len(s.ip_families) == 1 and len(families) == 2:
        s.ip_families.append("IPv6" if s.ip_families[0] == "IPv4" else "IPv4")
    return []


def held_node_ports(s: Service | None) -> list[int]:
    """The node ports ``s`` holds (its ports' nodePorts, then its healthCheckNodePort)."""
    if s is None:
        return []
    return [p.node_port for p in s.ports if p.node_port] + ([s.health_check_node_port] if s.health_check_node_port else [])


def needs_node_ports(s: Service) -> bool:
    return s.type in ("NodePort", "LoadBalancer")


def needs_health_check(s: Service) -> bool:
    """``needsHCNodePort``: only a LoadBalancer Service with externalTrafficPolicy Local."""
    return s.type == "LoadBalancer" and s.external_traffic_policy == "Local"


def externally_accessible(s: Service) -> bool:
    return s.type in ("NodePort", "LoadBalancer") or (s.type == "ClusterIP" and bool(s.external_ips))


def drop_type_dependent_fields(new: Service, old: Service) -> None:
    """What the API server does to an updated Service before validation (upstream
    ``pkg/registry/core/service/strategy.go`` ``dropTypeDependentFields``, then the REST
    storage's ``patchAllocatedValues``): a field that no longer applies and that the update left
    as it was is cleared, and released by the allocation that follows (a LoadBalancer switched to
    externalTrafficPolicy Cluster loses its healthCheckNodePort; a NodePort Service switched to
    ClusterIP its nodePorts); allocations that still apply and that the update left out are kept."""
    if old.type != "ExternalName" and new.type == "ExternalName" and new.cluster_ip == old.cluster_ip:
        new.cluster_ip, new.cluster_ips, new.ip_families = "", [], []
        if new.ip_family_policy == old.ip_family_policy:
            new.ip_family_policy = ""
    old_ports = {p.node_port for p in old.ports if p.node_port}
    if needs_node_ports(old) and not needs_node_ports(new) and {p.node_port for p in new.ports if p.node_port} <= old_ports:
        for p in new.ports:
            p.node_port = 0
    if needs_health_check(old) and not needs_health_check(new) and new.health_check_node_port == old.health_check_node_port:
        new.health_check_node_port = 0
    if old.type == "LoadBalancer" and new.type != "LoadBalancer" and new.allocate_load_balancer_node_ports == old.allocate_load_balancer_node_ports:
        new.allocate_load_balancer_node_ports = None
    if externally_accessible(old) and not externally_accessible(new) and new.external_traffic_policy == old.external_traffic_policy:
        new.external_traffic_policy = ""
    if new.type != "LoadBalancer":
        new.load_balancer_ingress = []
    # patchAllocatedValues: what the update left out keeps its allocation
    if needs_node_ports(old) and needs_node_ports(new):
        by_name = {p.name: p.node_port for p in old.ports}
        used = old_ports & {p.node_port for p in new.ports if p.node_port}
        for p in new.ports:
            if not p.node_port and by_name.get(p.name) and by_name[p.name] not in used:
                p.node_port = by_name[p.name]
    if needs_health_check(old) and needs_health_check(new) and not new.health_check_node_port:
        new.health_check_node_port = old.health_check_node_port
    if old.type != "ExternalName" and new.type != "ExternalName" and not new.cluster_ip:
        new.cluster_ip, new.cluster_ips = old.cluster_ip, list(old.cluster_ips)


# ---- workloads -----------------------------------------------------------------------------------


def admit_deployment(d: Document, dep: Deployment) -> None:
    labels = ((dep.template.get("metadata") or {}).get("labels")) or {}
    if not dep.selector:
        raise AdmissionError(d.where("spec.selector"), "a Deployment needs spec.selector.matchLabels", "add matchLabels equal to the template labels")
    for k, v in dep.selector.items():
        if labels.get(k) != v:
            raise AdmissionError(
                d.where("spec.template.metadata.labels"), "`selector` does not match template `labels`", "make the template carry every selector label"
            )
    if dep.replicas < 0:
        raise AdmissionError(d.where("spec.replicas"), "must be >= 0", "set replicas to 0 or more")
    from .rollout import grace_period, strategy_of

    strategy_of((dep.manifest or {}).get("spec"), d.where("spec"))
    grace_period((dep.template or {}).get("spec"), d.where("spec.template.spec"))
    check_probes(d, "spec.template.spec", dep.template.get("spec") or {})


def check_probes(d: Document, at: str, spec: Mapping) -> None:
    """The API server's validation of every container's readinessProbe (kslab.kubelet.ProbeSpec):
    a bad one is refused with the field named, before anything is created."""
    from .kubelet import ProbeSpec

    for i, c in enumerate(spec.get("containers") or []):
        if isinstance(c, Mapping):
            ProbeSpec.from_container(c, d.where(f"{at}.containers[{i}]"))


def _safe_encode(data: bytes, n: int) -> str:
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in data[:n])


def pod_template_hash(dep: Deployment) -> str:
    """A stable stand-in for ``ComputeHash(template)``: 10 safe characters from the template."""
    import json

    return _safe_encode(hashlib.sha256(json.dumps(dep.template, sort_keys=True).encode()).digest(), 10)


def new_replica_set(state: ClusterState, dep: Deployment) -> ReplicaSet | None:
    """``FindNewReplicaSet``: the Deployment's ReplicaSet whose template is the Deployment's (the
    pod-template-hash label aside), if it has one yet."""
    def bare(t):
        t = _copy.deepcopy(t or {})
        ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
        return t

    want = bare(dep.template)
    return next((r for r in state.replica_sets if r.deployment == dep.name and r.namespace == dep.namespace
                 and bare(r.template) == want), None)


def pods_for_deployment(dep: Deployment, rng: random.Random, start: int = 0, template_hash: str | None = None) -> list[Pod]:
    """ReplicaSet ``<deploy>-<hash>`` and its pods ``<deploy>-<hash>-<5 random>`` (``template_hash``:
    the ReplicaSet's, when it is not kslab's hash of the template: a live cluster's)."""
    h = template_hash or pod_template_hash(dep)
    meta = dict(dep.template.get("metadata") or {})
    spec = dict(dep.template.get("spec") or {})
    pods = []
    for _ in range(dep.replicas):
        p = pod_from_template(generate_name(f"{dep.name}-{h}-", rng), dep.namespace, meta, spec)  # the ReplicaSet's generateName
        p.labels["pod-template-hash"] = h
        p.owner = f"Deployment/{dep.name}"
        pods.append(p)
    return pods


def _tolerates(pod: Pod, node: Node) -> bool:
    for t in node.taints:
        if t.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        ok = False
        for tol in pod.tolerations:
            if tol.get("operator") == "Exists" and not tol.get("key"):
                ok = True
            elif tol.get("key") == t.get("key") and (tol.get("operator") == "Exists" or tol.get("value", "") == t.get("value", "")):
                if not tol.get("effect") or tol.get("effect") == t.get("effect"):
                    ok = True
        if not ok:
            return False
    return True


MAX_PODS_PER_NODE = 110  # kubelet --max-pods default (kind keeps it): a node's allocatable pods


def schedule(state: ClusterState, docs_by_pod: dict[int, Document], rng: random.Random, only: list[Pod] | None = None) -> None:
    """Bind pods to nodes and give them IPs; pods run and are Ready, except a pod made after the
    cluster was built that has a readinessProbe: the kubelet (:mod:`kslab.kubelet`) makes it Ready.

    ``only``: the pods to place (default: every pod without an IP); the others count as load.
    """
    per_node_count = {n.name: 0 for n in state.nodes}
    for p in state.pods:
        if p.pod_ip and p.node_name in per_node_count:
            per_node_count[p.node_name] += 1
    next_host = {n.name: 2 for n in state.nodes}  # host-local IPAM: .1 is the gateway
    used_ips = {a for p in state.pods for a in p.pod_ips}
    todo = only if only is not None else [p for p in state.pods if not p.pod_ip]
    for pod in todo:
        d = docs_by_pod.get(id(pod))
        where = d.where if d else (lambda f="": f"Pod {pod.key}: {f}")
        if pod.pod_ip and pod.phase != "Pending":
            continue  # a recorded pod: keep it as it was
        if pod.node_name:
            if not state.has_node(pod.node_name):
                known = ", ".join(n.name for n in state.nodes) or "none"
                raise InputError(where("spec.nodeName"), f"there is no node named {pod.node_name!r}", f"nodes are: {known}")
            node = state.node(pod.node_name)
        else:
            cands = [
                n
                for n in state.nodes
                if all(n.labels.get(k) == v for k, v in pod.node_selector.items()) and _tolerates(pod, n)
            ]
            if not cands:
                state.warnings.append(
                    f"Pod {pod.key}: no node fits (nodeSelector {pod.node_selector or '{}'}, taints); it stays Pending and gets no IP"
                )
                continue
            # the scheduler's NodeResourcesFit: a node holds at most its allocatable pods (kubelet maxPods)
            roomy = [n for n in cands if per_node_count[n.name] < MAX_PODS_PER_NODE]
            if not roomy:
                state.warnings.append(f"Pod {pod.key}: every node that fits holds {MAX_PODS_PER_NODE} pods already "
                                      "(Too many pods: kubelet maxPods); it stays Pending and gets no IP")
                continue
            cands = roomy
            least = min(per_node_count[n.name] for n in cands)
            node = rng.choice([n for n in cands if per_node_count[n.name] == least])
            pod.node_name = node.name
        per_node_count[node.name] = per_node_count.get(node.name, 0) + 1
        pod.pod_ips = _next_pod_ips(node, next_host, used_ips)
        pod.phase = "Running"
        pod.started_at = state.clock
        # a pod of the cluster as built (state.control_plane not yet set) is up before the lab's clock
        # starts; a pod made later with a readinessProbe is not ready until its probes pass (kslab.kubelet);
        # a probe whose named port no container has never passes (the prober errs), so never ready
        from .kubelet import probe_of

        probes = [spec for _, spec in probe_of(pod)]
        pod.ready = not probes or (getattr(state, "control_plane", None) is None
                                   and not any(spec.port_error(pod) for spec in probes))


def _next_pod_ips(node: Node, next_host: dict[str, int], used: set[str]) -> list[str]:
    """The pod's IPs, one from each of the node's pod CIDRs (``spec.podCIDRs``, the primary family
    first), as host-local IPAM hands them out with one range per family: the next free host of
    each range (.1 / ::1 is the bridge's gateway)."""
    if not node.pod_cidr:
        raise InputError(f"node {node.name}", "has no podCIDR, so its pods cannot get IPs", "give spec.podCIDR or use a kind Cluster config")
    out = []
    for k, cidr in enumerate(node.pod_cidrs):
        key = node.name if k == 0 else f"{node.name}#{k}"
        net = ipaddress.ip_network(cidr, strict=False)
        while True:
            i = next_host.get(key, 2)
            next_host[key] = i + 1
            if i >= net.num_addresses - 1:
                raise InputError(f"node {node.name}", f"podCIDR {cidr} is full", "use fewer pods or a larger podSubnet")
            ip = str(net.network_address + i)
            if ip not in used:
                used.add(ip)
                out.append(ip)
                break
    return out


# ---- EndpointSlice controller --------------------------------------------------------------------


def _new_topology_cache():
    """The EndpointSlice controller's ``TopologyCache`` (kube-controller-manager makes one when
    the TopologyAwareHints gate is on, as it is by default), or None while kslab.topology is
    not part of kslab."""
    try:
        from .topology import TopologyCache  # noqa: PLC0415
    except ImportError:
        return None
    return TopologyCache()


def kubernetes_endpoint_slice(cp: Node) -> EndpointSlice:
    return EndpointSlice(
        name="kubernetes",
        namespace="default",
        service_name="kubernetes",
        ports=[EndpointPort(port=6443, name="https", protocol="TCP")],
        endpoints=[Endpoint(addresses=[cp.internal_ip], ready=True, serving=True, terminating=False)],
        labels={LABEL_SERVICE_NAME: "kubernetes", LABEL_MANAGED_BY: "endpointslicemirroring-controller.k8s.io"},
        managed=True,
    )


def reconcile_endpoint_slices(state: ClusterState, rng: random.Random, reconciler: Reconciler | None = None) -> None:
    """The EndpointSlice controller's sync of every Service with a selector
    (:class:`kslab.endpointslice.Reconciler`, upstream's reconciler): each Service's managed slices
    are updated in place, created and deleted as upstream decides, never rebuilt.

    Slices given in the input for a Service are left exactly as they are (and the controller
    leaves that Service alone), the way kube-proxy sees whatever the API server holds. Managed
    slices of a Service that no longer exists go with it (the garbage collector follows their
    ownerReference); a Service that lost its selector, or became ExternalName, keeps the slices
    it had (upstream's ``syncService`` returns early for it and deletes nothing).
    """
    r = reconciler or Reconciler()
    given = {(s.namespace, s.service_name) for s in state.endpoint_slices if not s.managed}
    services = {(s.namespace, s.name) for s in state.services}
    state.endpoint_slices[:] = [s for s in state.endpoint_slices
                                if not s.managed or s.service_name == "kubernetes" or (s.namespace, s.service_name) in services]
    for svc in state.services:
        if svc.selector is None or svc.type == "ExternalName" or (svc.namespace, svc.name) in given:
            continue
        if svc.namespace == "default" and svc.name == "kubernetes":
            continue
        matching = [
            p for p in state.pods if p.namespace == svc.namespace and svc.selector and all(p.labels.get(k) == v for k, v in svc.selector.items())
        ]
        if not matching and svc.selector:
            sel = ",".join(f"{k}={v}" for k, v in svc.selector.items())
            state.warnings.append(
                f"Service {svc.key}: selector {sel} matches no pod, so it has no endpoints (kube-proxy renders REJECT for it)"
            )
        existing = [s for s in state.endpoint_slices if s.managed and s.namespace == svc.namespace and s.service_name == svc.name
                    and s.labels.get(LABEL_MANAGED_BY) == CONTROLLER_NAME]
        result = r.reconcile(state, svc, matching, existing, rng)
        apply_result(state, result)
        if result.events:  # only kslab.topology's hints step makes events
            from .topology import record_events  # noqa: PLC0415

            record_events(state, result.events)
