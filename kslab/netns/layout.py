"""The lab's plan: namespace names and addresses, a pure function of the cluster state.

Every namespace is ``kslab-<8 hex>-<role>`` (``fabric``, ``mypc``, ``node-<name>``,
``pod-<name>`` or ``pod-<k8s ns>.<name>``, ``lb`` for the load balancer, ``cli-<hash>`` for extra
clients); see :mod:`kslab.netns.lab` for what each holds.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError
from ..model import ClusterConfig, ClusterState, Node, Pod

PREFIX_ROOT = "kslab-"
BRIDGE = "br-kind"
MYPC_IP = "172.18.0.100"
# the second family of a dual-stack lab: kind's docker network "kind" gets this IPv6 ULA (derived
# from the network name; `docker network inspect kind`: fc00:f853:ccd:e793::/64, gateway ::1);
# ClusterConfig.node_subnet6 holds it
FABRIC6 = ClusterConfig.node_subnet6
MYPC_IP6 = "fc00:f853:ccd:e793::100"

def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class NodeLayout:
    name: str
    ns: str
    ip: str
    prefix_len: int  # of the "docker network"
    pod_cidr: str
    gateway: str  # the pod CIDR's first address: on every local pod's veth (ptp)
    fabric_if: str  # the node's port on the bridge, in the fabric namespace
    # IPv6 (a dual-stack cluster; "" when single-stack, and in records of labs made before them)
    ip6: str = ""
    prefix_len6: int = 0  # of the IPv6 node network
    pod_cidr6: str = ""
    gateway6: str = ""  # the IPv6 pod CIDR's first address: on every local pod's veth (/128)

    def ip_of(self, family: int) -> str:
        """The node's address of one family ("" when it has none)."""
        return self.ip6 if family == 6 else self.ip


@dataclass(frozen=True)
class PodLayout:
    name: str
    namespace: str  # Kubernetes namespace
    node: str
    ns: str  # network namespace
    ip: str
    prefix_len: int  # of the node's pod CIDR
    gateway: str
    host_if: str  # veth<8 hex>, the node's end
    server: str | None  # "whoami", "echo", "mario" or None (no TCP container port)
    ports: tuple[int, ...]
    ip6: str = ""  # the pod's IPv6 address (status.podIPs of a dual-stack pod; "" when none)
    prefix_len6: int = 0  # of the node's IPv6 pod CIDR
    gateway6: str = ""

    def ip_of(self, family: int) -> str:
        """The pod's address of one family ("" when it has none)."""
        return self.ip6 if family == 6 else self.ip


@dataclass(frozen=True)
class Layout:
    prefix: str
    fabric_ns: str
    fabric_cidr: str
    gateway: str
    mypc_ns: str
    mypc_ip: str
    mypc_if: str
    nodes: tuple[NodeLayout, ...]
    pods: tuple[PodLayout, ...]
    skipped: tuple[str, ...] = ()  # pods that get no namespace, with the reason
    # the cloud load balancer (kslab.netns.lbprober), made when a LoadBalancer Service has an
    # ingress IP: its namespace, its address on the node network, its port on the bridge
    lb_ns: str = ""
    lb_ip: str = ""
    lb_if: str = ""
    # the IPv6 node network of a dual-stack cluster ("" when single-stack, and in older records)
    fabric_cidr6: str = ""
    gateway6: str = ""
    mypc_ip6: str = ""

    @property
    def dual_stack(self) -> bool:
        """Whether the lab has IPv6 addresses and routes too (the nodes', pods' and mypc's)."""
        return bool(self.fabric_cidr6)

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, in creation order."""
        return [self.fabric_ns, *(n.ns for n in self.nodes), self.mypc_ns, *(p.ns for p in self.pods)]

    def node(self, name: str) -> NodeLayout:
        for n in self.nodes:
            if n.name == name:
                return n
        raise InputError(f"node {name!r}", "not in the lab", "nodes are: " + ", ".join(n.name for n in self.nodes))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Layout:
        doc = dict(doc)
        doc["nodes"] = tuple(NodeLayout(**n) for n in doc["nodes"])
        doc["pods"] = tuple(PodLayout(**{**p, "ports": tuple(p["ports"])}) for p in doc["pods"])
        doc["skipped"] = tuple(doc.get("skipped") or ())
        return cls(**doc)


def _server_for(pod: Pod) -> tuple[str | None, tuple[int, ...]]:
    """Which server a pod runs: echo for mendhak-like images, mario for the Super Mario image
    (chapter 08), whoami for any other pod with a TCP container port (so custom manifests get an
    answering pod too), none without ports, and none for an iperf3 image (data/myk8s/iperf3: the
    real ``iperf3 -s`` is started in the pod for each test, so the port stays free)."""
    ports = tuple(sorted({p.container_port for c in pod.containers for p in c.ports if (p.protocol or "TCP").upper() == "TCP"}))
    if not ports:
        return None, ()
    images = " ".join(c.image for c in pod.containers).lower()
    if "iperf3" in images:  # chapter 10's iperf3 pods: the real `iperf3 -s` starts in the pod on demand
        return None, ports
    if "supermario" in images:
        return "mario", ports
    return ("echo" if "echo" in images else "whoami"), ports


def pod_namespace_name(prefix: str, pod: Pod) -> str:
    return f"{prefix}pod-{pod.name}" if pod.namespace == "default" else f"{prefix}pod-{pod.namespace}.{pod.name}"


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _fabric6(state: ClusterState) -> ipaddress.IPv6Network:
    """The IPv6 node network (``ClusterConfig.node_subnet6``, kind's :data:`FABRIC6` by default)."""
    text = state.config.node_subnet6 or FABRIC6
    try:
        return ipaddress.IPv6Network(text, strict=False)
    except ValueError:
        raise InputError("node_subnet6", f"{text!r} is not an IPv6 CIDR", f"write it like {FABRIC6}") from None


def _node_ipv6(node: Node, fabric6: ipaddress.IPv6Network, taken: set[str]) -> tuple[str, str]:
    """(IPv6 address, IPv6 pod CIDR) of a dual-stack node ("", "" for a single-stack one)."""
    ips6 = node.ips_of(6)
    cidrs6 = [c for c in node.pod_cidrs if _family(c) == 6]
    if not ips6 and not cidrs6:
        return "", ""
    if not ips6 or not cidrs6:
        has, lacks = ("an IPv6 podCIDR", "IPv6 InternalIP") if cidrs6 else ("an IPv6 InternalIP", "IPv6 podCIDR")
        raise InputError(f"node {node.name}", f"has {has} but no {lacks}", "give a dual-stack node both (status.addresses, spec.podCIDRs)")
    try:
        ip6 = ipaddress.IPv6Address(ips6[0])
        cidr6 = ipaddress.IPv6Network(cidrs6[0], strict=False)
    except ValueError:
        raise InputError(f"node {node.name}", f"IPv6 address {ips6[0]!r} or podCIDR {cidrs6[0]!r} is not valid") from None
    if ip6 not in fabric6 or str(ip6) in taken:
        raise InputError(f"node {node.name}", f"IPv6 address {ip6} is not a free address of the IPv6 node network {fabric6}",
                         f"use an address of {fabric6} other than {', '.join(sorted(taken))}")
    return str(ip6), str(cidr6)


def plan(state: ClusterState, prefix: str) -> Layout:
    """Names and addresses of the lab for ``state`` (see the module docstring). A dual-stack
    cluster (nodes with an IPv6 InternalIP and podCIDR besides the IPv4 ones) gets the IPv6
    fields too: every node, pod and mypc one address of each family."""
    fabric = ipaddress.ip_network((state.config.node_subnet or "172.18.0.0/16").split(",")[0].strip(), strict=False)
    gateway = str(next(fabric.hosts()))
    if not state.nodes:
        raise InputError("manifests", "the cluster has no nodes", "give a kind Cluster config (data/myk8s/kind-cluster.yaml) or Node objects")
    dual = any(n.ips_of(6) or n.pod_cidr_of(6) for n in state.nodes)
    fabric6 = _fabric6(state) if dual else None
    gateway6 = str(fabric6.network_address + 1) if fabric6 else ""
    taken6 = {gateway6, MYPC_IP6}
    nodes = []
    for node in state.nodes:
        try:
            ip = ipaddress.ip_address(node.internal_ip)
            cidr = ipaddress.ip_network(node.pod_cidr, strict=False)
        except ValueError:
            raise InputError(f"node {node.name}", f"needs an IPv4 InternalIP and podCIDR (has {node.internal_ip!r}, {node.pod_cidr!r})") from None
        if ip.version == 6 or cidr.version == 6:
            raise InputError(f"node {node.name}", f"has an IPv6 primary address or podCIDR ({ip}, {cidr}): the netns lab runs IPv4 "
                             "and dual-stack clusters, not IPv6-only ones", "use ipFamily: dual (IPv4 first) or ipv4")
        if ip not in fabric or str(ip) in (gateway, MYPC_IP):
            raise InputError(f"node {node.name}", f"IP {ip} is not a free address of the node network {fabric}")
        ip6, cidr6 = _node_ipv6(node, fabric6, taken6) if fabric6 else ("", "")
        if fabric6 and not ip6:
            raise InputError(f"node {node.name}", "has no IPv6 InternalIP and podCIDR while other nodes have",
                             "give every node of a dual-stack cluster both families")
        taken6.add(ip6)
        nodes.append(NodeLayout(
            name=node.name, ns=f"{prefix}node-{node.name}", ip=str(ip), prefix_len=fabric.prefixlen,
            pod_cidr=str(cidr), gateway=str(next(cidr.hosts())), fabric_if="veth" + _hash("node/" + node.name, 7),
            ip6=ip6, prefix_len6=fabric6.prefixlen if fabric6 else 0, pod_cidr6=cidr6,
            gateway6=str(ipaddress.IPv6Network(cidr6).network_address + 1) if cidr6 else "",
        ))
    by_name = {n.name: n for n in nodes}
    pods, skipped = [], []
    for pod in state.pods:
        home = by_name.get(pod.node_name)
        if home is None or not pod.pod_ip:
            skipped.append(f"{pod.key}: not scheduled or no pod IP")
            continue
        pod_net = ipaddress.ip_network(home.pod_cidr)
        if ipaddress.ip_address(pod.pod_ip) not in pod_net or pod.pod_ip == home.gateway:
            skipped.append(f"{pod.key}: IP {pod.pod_ip} is not a pod address of {home.name}'s podCIDR {pod_net}")
            continue
        ip6 = pod.pod_ip_of(6) if home.pod_cidr6 else ""
        net6 = ipaddress.IPv6Network(home.pod_cidr6) if home.pod_cidr6 else None
        if ip6 and (ipaddress.ip_address(ip6) not in net6 or ip6 == home.gateway6):
            skipped.append(f"{pod.key}: IPv6 {ip6} is not a pod address of {home.name}'s podCIDR {net6}")
            continue
        server, ports = _server_for(pod)
        pods.append(PodLayout(
            name=pod.name, namespace=pod.namespace, node=home.name, ns=pod_namespace_name(prefix, pod), ip=pod.pod_ip,
            prefix_len=pod_net.prefixlen, gateway=home.gateway, host_if="veth" + _hash(pod.key, 8), server=server, ports=ports,
            ip6=ip6, prefix_len6=net6.prefixlen if ip6 else 0, gateway6=home.gateway6 if ip6 else "",
        ))
    return Layout(
        prefix=prefix, fabric_ns=f"{prefix}fabric", fabric_cidr=str(fabric), gateway=gateway,
        mypc_ns=f"{prefix}mypc", mypc_ip=MYPC_IP, mypc_if="veth" + _hash("mypc", 7),
        nodes=tuple(nodes), pods=tuple(pods), skipped=tuple(skipped),
        lb_ns=f"{prefix}lb", lb_ip=str(fabric.broadcast_address - 1), lb_if="veth" + _hash("lb", 7),
        fabric_cidr6=str(fabric6) if fabric6 else "", gateway6=gateway6, mypc_ip6=MYPC_IP6 if fabric6 else "",
    )
