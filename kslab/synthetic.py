"""Synthetic clusters for scale experiments: N Services x M endpoints, built directly as the
objects kube-proxy reads (Services, EndpointSlices and Nodes; no Pods, no control plane), so
that 10,000 or 30,000 Services take a fraction of a second to make.

:func:`synthetic_cluster` is the builder the benchmarks, :mod:`kslab.proxy.rulecount`,
:mod:`kslab.proxy.syncloop` and :mod:`kslab.scale` share. Addresses are sequential and
deterministic: ClusterIPs from ``10.96.0.1`` (service subnet ``10.96.0.0/12``), endpoints from
``10.10.0.1`` (pod subnet ``10.0.0.0/12``, room for ~390k endpoints), node IPs ``172.18.0.2`` ...,
NodePorts from 30000, load-balancer IPs from ``198.18.0.1`` (RFC 2544's benchmarking range).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Sequence

from .errors import InputError
from .model import (ClusterConfig, ClusterState, Endpoint, EndpointPort, EndpointSlice, LoadBalancerIngress, Node,
                    Service, ServicePort)

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
NAMESPACE = "bench"
SERVICE_SUBNET = "10.96.0.0/12"
POD_SUBNET = "10.0.0.0/12"
_SVC_BASE = int(ipaddress.IPv4Address("10.96.0.0"))
_POD_BASE = int(ipaddress.IPv4Address("10.10.0.0"))
_POD_LAST = int(ipaddress.IPv4Address("10.15.255.254"))
_LB_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
_NODE_BASE = int(ipaddress.IPv4Address("172.18.0.1"))
_NODE_PORTS = (30000, 32767)
PEER_NODES = 3  # nodes besides the proxy's own: endpoints are spread over 4 nodes


def synthetic_cluster(services: int, endpoints: int = 10, *, node: str = "node-1", types: Sequence[str] = ("ClusterIP",),
                      seed: int = 0, nodes: int = PEER_NODES + 1) -> ClusterState:
    """A cluster of ``services`` Services (namespace ``bench``, ``svc00000`` ...), each with one TCP
    port 80 -> 8080 named ``http`` and ``endpoints`` ready endpoints in one EndpointSlice.

    ``types`` are the Service types, used in turn (``("ClusterIP", "NodePort")``: every other
    Service is a NodePort); NodePort and LoadBalancer Services get NodePorts 30000, 30001, ...
    (at most 2,768 of them), LoadBalancer ones an ingress IP. ``node`` is the node kube-proxy
    runs on, the first of ``nodes`` nodes; each Service's endpoints are spread over the nodes
    round-robin from a node chosen with ``seed`` (which endpoints are local to ``node`` is what
    traffic policy Local depends on)."""
    for name, value, low in (("services", services, 0), ("endpoints", endpoints, 0), ("nodes", nodes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"synthetic cluster {name}={value!r}", f"is not an integer >= {low}", f"give a whole number >= {low}")
    bad = [t for t in types if t not in SERVICE_TYPES]
    if not types or bad:
        raise InputError(f"synthetic cluster types={tuple(types)!r}", f"{bad[0] if bad else 'nothing'} is not a Service type kslab builds",
                         "use " + ", ".join(SERVICE_TYPES))
    external = sum(1 for i in range(services) if types[i % len(types)] != "ClusterIP")
    if external > _NODE_PORTS[1] - _NODE_PORTS[0] + 1:
        raise InputError(f"synthetic cluster services={services}", f"needs {external} NodePorts, the range has "
                         f"{_NODE_PORTS[1] - _NODE_PORTS[0] + 1}", "use fewer NodePort/LoadBalancer Services (types)")
    if services * endpoints > _POD_LAST - _POD_BASE:
        raise InputError(f"synthetic cluster services x endpoints={services * endpoints}", "is more endpoints than the pod subnet holds",
                         f"stay below {_POD_LAST - _POD_BASE}")
    node_names = [node] + [f"{node}-peer{i}" for i in range(1, nodes)]
    state = ClusterState(config=ClusterConfig(name="synthetic", pod_subnet=POD_SUBNET, service_subnet=SERVICE_SUBNET))
    state.nodes = [Node(name=n, internal_ip=str(ipaddress.IPv4Address(_NODE_BASE + 1 + i))) for i, n in enumerate(node_names)]
    rng = random.Random(seed)
    k = 0
    node_port = _NODE_PORTS[0]
    svcs, slices = state.services, state.endpoint_slices
    for i in range(services):
        name = f"svc{i:05d}"
        kind = types[i % len(types)]
        port = ServicePort(port=80, name="http", protocol="TCP", target_port=8080)
        svc = Service(name=name, namespace=NAMESPACE, type=kind, cluster_ip=str(ipaddress.IPv4Address(_SVC_BASE + 1 + i)),
                      ports=[port], selector={"app": name})
        if kind != "ClusterIP":
            port.node_port = node_port
            node_port += 1
        if kind == "LoadBalancer":
            svc.load_balancer_ingress = [LoadBalancerIngress(ip=str(ipaddress.IPv4Address(_LB_BASE + 1 + i)))]
        svcs.append(svc)
        first = rng.randrange(nodes) if seed else 0
        eps = []
        for j in range(endpoints):
            k += 1
            eps.append(Endpoint(addresses=[str(ipaddress.IPv4Address(_POD_BASE + k))], node_name=node_names[(first + j) % nodes]))
        slices.append(EndpointSlice(name=f"{name}-abcde", namespace=NAMESPACE, service_name=name,
                                    ports=[EndpointPort(port=8080, name="http", protocol="TCP")], endpoints=eps,
                                    labels={"kubernetes.io/service-name": name}))
    return state


def add_service(state: ClusterState, name: str, endpoints: int, *, type: str = "ClusterIP", namespace: str = NAMESPACE,
                **spec) -> Service:
    """Add one more Service (``name``, port 80 -> 8080 ``http``) with ``endpoints`` ready
    endpoints spread over the nodes, addressed after the ones already there. ``spec``: further
    :class:`~kslab.model.Service` fields (``external_traffic_policy="Local"``,
    ``session_affinity="ClientIP"``, ``load_balancer_source_ranges=[...]``)."""
    if any(s.name == name and s.namespace == namespace for s in state.services):
        raise InputError(f"service {namespace}/{name}", "already exists", "pick another name")
    if type not in SERVICE_TYPES:
        raise InputError(f"service type {type!r}", "is not a Service type kslab builds", "use " + ", ".join(SERVICE_TYPES))
    used_ips = {int(ipaddress.IPv4Address(s.cluster_ip)) for s in state.services if s.cluster_ip}
    cluster_ip = max(used_ips | {_SVC_BASE}) + 1
    last_ep = max((int(ipaddress.IPv4Address(a)) for sl in state.endpoint_slices for e in sl.endpoints for a in e.addresses),
                  default=_POD_BASE)
    port = ServicePort(port=80, name="http", protocol="TCP", target_port=8080)
    svc = Service(name=name, namespace=namespace, type=type, cluster_ip=str(ipaddress.IPv4Address(cluster_ip)),
                  ports=[port], selector={"app": name}, **spec)
    if type != "ClusterIP":
        used = {p.node_port for s in state.services for p in s.ports if p.node_port}
        port.node_port = next(p for p in range(_NODE_PORTS[0], _NODE_PORTS[1] + 1) if p not in used)
    if type == "LoadBalancer" and not svc.load_balancer_ingress:
        svc.load_balancer_ingress = [LoadBalancerIngress(ip=str(ipaddress.IPv4Address(_LB_BASE + cluster_ip - _SVC_BASE)))]
    names = [n.name for n in state.nodes] or ["node-1"]
    eps = [Endpoint(addresses=[str(ipaddress.IPv4Address(last_ep + 1 + j))], node_name=names[j % len(names)], target_pod=f"{name}-{j}")
           for j in range(endpoints)]
    state.services.append(svc)
    state.endpoint_slices.append(EndpointSlice(name=f"{name}-abcde", namespace=namespace, service_name=name,
                                               ports=[EndpointPort(port=8080, name="http", protocol="TCP")], endpoints=eps,
                                               labels={"kubernetes.io/service-name": name}))
    return svc
