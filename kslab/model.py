"""Cluster state as plain typed data.

These dataclasses hold what kube-proxy and the control-plane emulation need from Kubernetes
objects, under the names Kubernetes uses. They are built from YAML by :mod:`kslab.manifests`
(or from a live cluster), filled in by :mod:`kslab.controlplane`, and read by the renderer in
:mod:`kslab.proxy`. Field values are kept as the API carries them (strings for IPs, exactly as
written), so that ``--as-is`` input reaches the renderer untouched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .proxy.util import ip_family, split_cidrs  # 4 or 6 of an address or CIDR; a comma list of CIDRs

# Kubernetes minor the manifests are validated against and the kind node image runs.
KUBERNETES_MINOR = "1.33"
KIND_NODE_IMAGE = "kindest/node:v1.33.1"

DEFAULT_NODE_PORT_RANGE = (30000, 32767)
DEFAULT_AFFINITY_TIMEOUT = 10800  # sessionAffinityConfig.clientIP.timeoutSeconds default

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"

# spec.ipFamilyPolicy values (core.IPFamilyPolicy)
SINGLE_STACK = "SingleStack"
PREFER_DUAL_STACK = "PreferDualStack"
REQUIRE_DUAL_STACK = "RequireDualStack"
IP_FAMILY_POLICIES = (SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK)
# kind's networking.ipFamily values
KIND_IP_FAMILIES = ("ipv4", "ipv6", "dual")


def family_name(family: int) -> str:
    """``IPv4``/``IPv6``: the API's name of an IP family (``spec.ipFamilies``, ``addressType``)."""
    return "IPv6" if family == 6 else "IPv4"


@dataclass
class Node:
    name: str
    internal_ip: str = ""
    pod_cidr: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    ready: bool = True
    # status.allocatable.cpu in millicores; 0 = not known (the topology cache then disables hints)
    allocatable_cpu: int = 0
    # the node's further InternalIP addresses (status.addresses after the first InternalIP): a
    # secondary address or the other family's; kube-proxy's node addresses are all of them
    extra_ips: tuple[str, ...] = ()
    # spec.podCIDRs after the first (``pod_cidr``): on a dual-stack node the other family's range
    extra_pod_cidrs: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The node's InternalIP addresses in ``status.addresses`` order (the same as :attr:`ips`);
        on a dual-stack node one of each family, the primary family first."""
        return self.ips

    @addresses.setter
    def addresses(self, value) -> None:
        vals = [str(a) for a in value if a]
        self.internal_ip = vals[0] if vals else ""
        self.extra_ips = tuple(dict.fromkeys(vals[1:]))

    @property
    def pod_cidrs(self) -> tuple[str, ...]:
        """``spec.podCIDRs``: ``pod_cidr`` first, then the other family's (dual-stack)."""
        return tuple(dict.fromkeys(c for c in (self.pod_cidr, *self.extra_pod_cidrs) if c))

    @pod_cidrs.setter
    def pod_cidrs(self, value) -> None:
        vals = [str(c) for c in value if c]
        self.pod_cidr = vals[0] if vals else ""
        self.extra_pod_cidrs = tuple(dict.fromkeys(vals[1:]))

    def pod_cidr_of(self, family: int) -> str:
        """The node's pod CIDR of one IP family (4 or 6), or "" when it has none."""
        return next((c for c in self.pod_cidrs if ip_family(c) == family), "")

    def ip_of(self, family: int) -> str:
        """The node's primary address of one IP family (4 or 6), or "" when it has none."""
        return next(iter(self.ips_of(family)), "")

    @property
    def ips(self) -> tuple[str, ...]:
        """Every address of the node, the primary (``internal_ip``) first, no repeats."""
        return tuple(dict.fromkeys(a for a in (self.internal_ip, *self.extra_ips) if a))

    def ips_of(self, family: int) -> tuple[str, ...]:
        """The node's addresses of one IP family (4 or 6), primary first: the node IPs that
        family's proxier knows."""
        return tuple(a for a in self.ips if ip_family(a) == family)

    @property
    def zone(self) -> str | None:
        return self.labels.get(LABEL_ZONE) or None

    @property
    def is_control_plane(self) -> bool:
        return LABEL_CONTROL_PLANE in self.labels


@dataclass
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass
class Container:
    name: str
    image: str = ""
    ports: list[ContainerPort] = field(default_factory=list)
    readiness_probe: dict[str, Any] | None = None


@dataclass
class Pod:
    name: str
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    node_name: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    pod_ip: str = ""
    # status.podIPs after the first (``pod_ip``): the other family's address on a dual-stack cluster
    extra_pod_ips: tuple[str, ...] = ()
    phase: str = "Pending"
    ready: bool = False
    terminating: bool = False
    owner: str = ""  # "Deployment/<name>" for pods made from a Deployment
    # when the container started and (if terminating) when the pod was deleted, on ClusterState.clock
    started_at: float = 0.0
    deleted_at: float | None = None
    manifest: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_ips(self) -> tuple[str, ...]:
        """``status.podIPs``: ``pod_ip`` first, then the other family's (dual-stack)."""
        return tuple(dict.fromkeys(a for a in (self.pod_ip, *self.extra_pod_ips) if a))

    @pod_ips.setter
    def pod_ips(self, value) -> None:
        vals = [str(a) for a in value if a]
        self.pod_ip = vals[0] if vals else ""
        self.extra_pod_ips = tuple(dict.fromkeys(vals[1:]))

    def pod_ip_of(self, family: int) -> str:
        """The pod's IP of one family (4 or 6), or "" when it has none."""
        return next((a for a in self.pod_ips if ip_family(a) == family), "")

    def container_port_named(self, name: str) -> ContainerPort | None:
        for c in self.containers:
            for p in c.ports:
                if p.name == name:
                    return p
        return None


@dataclass
class Deployment:
    name: str
    namespace: str = "default"
    replicas: int = 1
    selector: dict[str, str] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ReplicaSet:
    """A Deployment's ReplicaSet ``<deployment>-<pod-template-hash>``: the pods of one template.
    ``replicas`` is ``spec.replicas`` (what the Deployment controller asks for; the ReplicaSet
    controller makes or deletes pods to match); ``created`` orders old ReplicaSets (scaled down
    oldest first); ``revision`` is the ``deployment.kubernetes.io/revision`` annotation."""

    name: str
    namespace: str
    deployment: str
    template_hash: str
    template: dict[str, Any]
    replicas: int = 0
    created: float = 0.0
    revision: int = 1

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ServicePort:
    """One entry of ``spec.ports``: kube-proxy's unit of work (a "service port")."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str | None = None
    node_port: int = 0


@dataclass
class LoadBalancerIngress:
    ip: str = ""
    hostname: str = ""
    ip_mode: str | None = None  # "VIP" or "Proxy"


@dataclass
class Service:
    name: str
    namespace: str = "default"
    type: str = "ClusterIP"
    cluster_ip: str = ""
    cluster_ips: list[str] = field(default_factory=list)
    ports: list[ServicePort] = field(default_factory=list)
    selector: dict[str, str] | None = None
    external_ips: list[str] = field(default_factory=list)
    load_balancer_ingress: list[LoadBalancerIngress] = field(default_factory=list)
    load_balancer_source_ranges: list[str] = field(default_factory=list)
    external_traffic_policy: str = ""
    internal_traffic_policy: str = ""
    health_check_node_port: int = 0
    session_affinity: str = "None"
    session_affinity_timeout: int | None = None
    publish_not_ready_addresses: bool = False
    traffic_distribution: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    ip_families: list[str] = field(default_factory=list)
    # spec.ipFamilyPolicy: SingleStack, PreferDualStack or RequireDualStack; "" = not given (the
    # API server defaults it when it allocates the Service's IPs)
    ip_family_policy: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def port_named(self, name: str) -> ServicePort | None:
        for p in self.ports:
            if p.name == name:
                return p
        return None


@dataclass
class EndpointPort:
    port: int | None
    name: str | None = ""
    protocol: str | None = "TCP"


@dataclass
class Endpoint:
    addresses: list[str]
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    node_name: str | None = None
    zone: str | None = None
    hints_for_zones: list[str] | None = None
    hints_for_nodes: list[str] | None = None
    target_pod: str | None = None  # targetRef name, when it is a Pod


@dataclass
class EndpointSlice:
    name: str
    namespace: str = "default"
    service_name: str = ""
    address_type: str = "IPv4"
    ports: list[EndpointPort] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    managed: bool = False  # made by kslab's EndpointSlice controller (vs given in the input)
    manifest: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Event:
    """A Kubernetes Event (``kubectl get events``, the Events of ``kubectl describe``): what a
    controller reported about an object, e.g. the EndpointSlice controller's
    ``TopologyAwareHintsDisabled`` warning on a Service."""

    involved_kind: str  # "Service", "Pod", ...
    namespace: str
    name: str
    type: str  # "Normal" or "Warning"
    reason: str
    message: str
    source: str = "endpoint-slice-controller"
    at: float = 0.0  # ClusterState.clock when it was (last) emitted
    count: int = 1
    first_at: float | None = None  # when it was first emitted (kubectl's FIRST SEEN); None = at
    event_name: str = ""  # metadata.name as the API server holds it; "" = client-go's <object>.<first time, hex ns>


@dataclass
class ClusterConfig:
    """What a kind ``Cluster`` config (or a live cluster) says about the cluster as a whole."""

    name: str = "kind"
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/16"
    node_subnet: str = "172.18.0.0/16"
    # the docker network's IPv6 range (kind's ULA for the network "kind"): the nodes' IPv6 addresses
    node_subnet6: str = "fc00:f853:ccd:e793::/64"
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE
    # kind's networking.ipFamily: ipv4, ipv6 or dual. pod_subnet/service_subnet then hold one CIDR
    # per family, comma-separated, the primary family first (kind: "10.244.0.0/16,fd00:10:244::/56")
    ip_family: str = "ipv4"

    def pod_subnets(self) -> list[str]:
        """The pod subnet's CIDRs (one per family, the primary first)."""
        return list(split_cidrs(self.pod_subnet))

    def service_subnets(self) -> list[str]:
        """The service subnet's CIDRs (one per family, the primary first): the API server's
        ``--service-cluster-ip-range``."""
        return list(split_cidrs(self.service_subnet))

    def families(self) -> tuple[int, ...]:
        """The cluster's IP families (4, 6), the primary first: those of its service CIDRs, else
        of its pod CIDRs, else of ``ip_family``."""
        cidrs = self.service_subnets() or self.pod_subnets()
        if cidrs:
            return tuple(dict.fromkeys(ip_family(c) for c in cidrs))
        return {"ipv6": (6,), "dual": (4, 6)}.get(self.ip_family, (4,))

    @property
    def primary_family(self) -> int:
        return self.families()[0]

    @property
    def dual_stack(self) -> bool:
        return len(self.families()) > 1

    def pod_subnet_of(self, family: int) -> str:
        return next((c for c in self.pod_subnets() if ip_family(c) == family), "")

    def service_subnet_of(self, family: int) -> str:
        return next((c for c in self.service_subnets() if ip_family(c) == family), "")


@dataclass
class ObjectRecord:
    """What the API server keeps about a stored object besides the object itself: when it was
    created (seconds on :attr:`ClusterState.clock`), its ``metadata.uid``, the etcd revision of
    its last write (``metadata.resourceVersion``) and how many times it was written
    (``metadata.generation`` for the kinds that have one). Kept by
    :func:`kslab.controlplane.record_writes`; read by :mod:`kslab.apiobjects`."""

    created: float
    uid: str
    resource_version: int
    generation: int = 1
    fingerprint: bytes = b""  # of the object as last recorded: a write is a change of it


# (kind, namespace or "" for cluster-scoped kinds, name)
ObjectKey = tuple[str, str, str]


@dataclass
class ClusterState:
    config: ClusterConfig = field(default_factory=ClusterConfig)
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    replica_sets: list[ReplicaSet] = field(default_factory=list)  # see kslab.rollout
    services: list[Service] = field(default_factory=list)
    endpoint_slices: list[EndpointSlice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # the control plane's clock (seconds since the cluster was created) and its bookkeeping of
    # every stored object; see kslab.controlplane.record_writes
    clock: float = 0.0
    revision: int = 0  # etcd's revision: +1 on every write
    records: dict[ObjectKey, ObjectRecord] = field(default_factory=dict)

    # ---- lookups -------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        from .errors import InputError

        known = ", ".join(n.name for n in self.nodes) or "none (give a kind Cluster config or Node objects)"
        raise InputError(f"node {name!r}", "no such node in the cluster", f"nodes are: {known}")

    def has_node(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)

    def pod(self, name: str, namespace: str | None = None) -> Pod:
        for p in self.pods:
            if p.name == name and (namespace is None or p.namespace == namespace):
                return p
        from .errors import InputError

        known = ", ".join(p.name for p in self.pods) or "none"
        raise InputError(f"pod {name!r}", "no such pod in the cluster", f"pods are: {known}")

    def service(self, name: str, namespace: str | None = None) -> Service:
        if namespace is None and "/" in name:
            namespace, name = name.split("/", 1)
        for s in self.services:
            if s.name == name and (namespace is None or s.namespace == namespace):
                return s
        from .errors import InputError

        known = ", ".join(s.key for s in self.services) or "none"
        raise InputError(f"service {name!r}", "no such service", f"services are: {known}")

    def slices_for(self, service: Service) -> list[EndpointSlice]:
        return [
            s for s in self.endpoint_slices if s.namespace == service.namespace and s.service_name == service.name
        ]

    def copy(self) -> "ClusterState":
        return copy.deepcopy(self)
