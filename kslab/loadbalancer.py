"""The cloud load balancer in front of a ``type: LoadBalancer`` Service, as every backend models it.

What it models: a *passthrough network load balancer* (a cloud's NLB, GCE's external passthrough
load balancer, MetalLB in BGP mode, whose routers spread flows over the nodes by ECMP). It spreads
connections over *nodes*, not pods, weighting every healthy node the same; it forwards the packet
unchanged (the client's address reaches the node, so under ``externalTrafficPolicy: Local`` the pod
sees it); and it asks each node whether it should get traffic:

* ``externalTrafficPolicy: Local``: it probes the Service's ``healthCheckNodePort`` at
  ``/healthz`` on every node; kube-proxy's health check server answers 200 only where the node
  has a local ready endpoint (:func:`kslab.healthcheck.service_health`), so nodes without one
  get nothing.
* ``externalTrafficPolicy: Cluster``: it probes kube-proxy's own health server (port 10256,
  ``/healthz``), which answers 200 on every node whose kube-proxy is healthy: every node is
  eligible, and a node without a local pod forwards (with SNAT) to one elsewhere.

What it does not model: MetalLB in L2 mode does not spread at all (one elected node answers ARP for
the VIP and takes all of its traffic; under ``Local`` it announces from a node with a local
endpoint). cloud-provider-kind runs one Envoy proxy container per load balancer (its health checks
are these: ``/healthz`` on the healthCheckNodePort under Local, 10256 under Cluster), and a proxy
opens its own connection to the node, so the source address is rewritten; every proxy-type LB, and
a VIP whose ``status.loadBalancer.ingress[].ipMode`` is ``Proxy``, replaces the client's address
even under ``Local``. An LB that weights nodes (kube-proxy's ``X-Load-Balancing-Endpoint-Weight``
header carries the local endpoint count for that) is not modelled either.

Pure: :class:`LBState` is what a backend's LB reports (``Dataplane.lb_status``), :func:`probe_target`
and :func:`eligible` are the rules every backend's LB follows. The sim probes through its own
netfilter, netns with real HTTP from a load balancer namespace.

Fidelity, backend by backend:

* **Probe source.** The sim's probe comes from the VIP itself (source port 40000,
  ``kslab.sim.network.LB_PROBE_PORT``) and walks each node's rules; netns's prober sends real HTTP
  from the LB namespace's own address, 172.18.255.254 (ephemeral ports). A real cloud LB probes from
  its own ranges (which a node firewall must let in); none of these sources is in a Service's
  ``loadBalancerSourceRanges`` unless listed, and kube-proxy does not filter the healthCheckNodePort
  by them.
* **Live flows when the healthy set changes.** netns's LB picks a node by ``HMARK`` over the
  5-tuple *mod N* healthy nodes, without per-flow state on the forward path: when N changes, most
  established flows hash to another node mid-connection, which has no state for them (the
  connection breaks). Real LBs keep established flows on their node (connection tracking, consistent
  hashing as in Maglev) or drain them, and only new connections avoid an unhealthy node. The sim
  chooses the node once per connection, when it opens (its connections are not long-lived), so
  a flow never moves there. The chapters
  measure new connections after a change, where the backends agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .healthcheck import HEALTHZ_PATH
from .model import Service

PROXY_HEALTHZ_PORT = 10256
"""kube-proxy's own health server (``--healthz-bind-address``, default ``0.0.0.0:10256``)."""

LB_SETTLE_S = 2.0
"""Seconds a load balancer needs to follow a change of the lab (its next probes):
``lab.advance(LB_SETTLE_S)`` after ``set_ready``, ``scale``, ``place`` or a policy change is
enough on every backend (the sim's LB is never stale, netns's prober polls every 0.3 s)."""


@dataclass(frozen=True)
class LBState:
    """One load balancer as it stands now: which nodes answered its probes, and how.

    ``probes`` maps node name -> HTTP status of the last probe (0: no answer, refused or timed
    out), in node order; ``healthy`` the nodes it sends new connections to (:func:`eligible`).

    When the last probe was depends on the backend: the sim's LB probes every node once after
    each change of the lab and before the next connection it balances (never stale: a probe
    interval of 0, thresholds of 1; :mod:`kslab.sim.network`); a real prober polls on its own
    clock, so after a change wait (``lab.advance(LB_SETTLE_S)``, 2 s, is enough on every backend)."""

    service: str  # namespace/name
    vip: str  # status.loadBalancer.ingress[0].ip
    port: int  # the Service port the LB listens on
    policy: str  # externalTrafficPolicy: "Cluster" or "Local"
    probe_port: int  # healthCheckNodePort under Local, 10256 under Cluster
    probe_path: str
    probes: Mapping[str, int] = field(default_factory=dict)
    healthy: tuple[str, ...] = ()

    @property
    def unhealthy(self) -> tuple[str, ...]:
        return tuple(n for n in self.probes if n not in self.healthy)


def probe_target(service: Service) -> tuple[int, str]:
    """(port, path) the LB probes on every node for ``service``: the healthCheckNodePort under
    externalTrafficPolicy Local, kube-proxy's 10256 under Cluster, both at ``/healthz``."""
    if (service.external_traffic_policy or "Cluster") == "Local" and service.health_check_node_port:
        return service.health_check_node_port, HEALTHZ_PATH
    return PROXY_HEALTHZ_PORT, HEALTHZ_PATH


def eligible(probes: Mapping[str, int], nodes: Iterable[str] | None = None) -> list[str]:
    """The nodes that answered 200, in ``nodes`` order (default: the probes' order)."""
    order = list(nodes) if nodes is not None else list(probes)
    return [n for n in order if probes.get(n) == 200]
