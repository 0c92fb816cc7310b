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
from ..model import ClusterState, Pod

PREFIX_ROOT = "kslab-"
BRIDGE = "br-kind"
MYPC_IP = "172.18.0.100"



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


def plan(state: ClusterState, prefix: str) -> Layout:
    """Names and addresses of the lab for ``state`` (see the module docstring)."""
    fabric = ipaddress.ip_network(state.config.node_subnet or "172.18.0.0/16", strict=False)
    gateway = str(next(fabric.hosts()))
    if not state.nodes:
        raise InputError("manifests", "the cluster has no nodes", "give a kind Cluster config (data/myk8s/kind-cluster.yaml) or Node objects")
    nodes = []
    for node in state.nodes:
        try:
            ip = ipaddress.ip_address(node.internal_ip)
            cidr = ipaddress.ip_network(node.pod_cidr, strict=False)
        except ValueError:
            raise InputError(f"node {node.name}", f"needs an IPv4 InternalIP and podCIDR (has {node.internal_ip!r}, {node.pod_cidr!r})") from None
        if ip not in fabric or str(ip) in (gateway, MYPC_IP):
            raise InputError(f"node {node.name}", f"IP {ip} is not a free address of the node network {fabric}")
        nodes.append(NodeLayout(
            name=node.name, ns=f"{prefix}node-{node.name}", ip=str(ip), prefix_len=fabric.prefixlen,
            pod_cidr=str(cidr), gateway=str(next(cidr.hosts())), fabric_if="veth" + _hash("node/" + node.name, 7),
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
        server, ports = _server_for(pod)
        pods.append(PodLayout(
            name=pod.name, namespace=pod.namespace, node=home.name, ns=pod_namespace_name(prefix, pod), ip=pod.pod_ip,
            prefix_len=pod_net.prefixlen, gateway=home.gateway, host_if="veth" + _hash(pod.key, 8), server=server, ports=ports,
        ))
    return Layout(
        prefix=prefix, fabric_ns=f"{prefix}fabric", fabric_cidr=str(fabric), gateway=gateway,
        mypc_ns=f"{prefix}mypc", mypc_ip=MYPC_IP, mypc_if="veth" + _hash("mypc", 7),
        nodes=tuple(nodes), pods=tuple(pods), skipped=tuple(skipped),
        lb_ns=f"{prefix}lb", lb_ip=str(fabric.broadcast_address - 1), lb_if="veth" + _hash("lb", 7),
    )
