"""The cloud load balancer in front of a ``type: LoadBalancer`` Service, as every backend models it.

A cloud LB (and cloud-provider-kind, MetalLB in L2 mode) spreads connections over *nodes*, not
pods, and asks each node whether it should get traffic:

* ``externalTrafficPolicy: Local``: it probes the Service's ``healthCheckNodePort`` at
  ``/healthz`` on every node; kube-proxy's health check server answers 200 only where the node
  has a local ready endpoint (:func:`kslab.healthcheck.service_health`), so nodes without one
  get nothing.
* ``externalTrafficPolicy: Cluster``: it probes kube-proxy's own health server (port 10256,
  ``/healthz``), which answers 200 on every node whose kube-proxy is healthy: every node is
  eligible, and a node without a local pod forwards (with SNAT) to one elsewhere.

Pure: :class:`LBState` is what a backend's LB reports (``Dataplane.lb_status``), :func:`probe_target`
and :func:`eligible` are the rules every backend's LB follows. The sim probes through its own
netfilter, netns with real HTTP from a load balancer namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .healthcheck import HEALTHZ_PATH
from .model import Service

PROXY_HEALTHZ_PORT = 10256
"""kube-proxy's own health server (``--healthz-bind-address``, default ``0.0.0.0:10256``)."""


@dataclass(frozen=True)
class LBState:
    """One load balancer as it stands now: which nodes answered its probes, and how.

    ``probes`` maps node name -> HTTP status of the last probe (0: no answer, refused or timed
    out), in node order; ``healthy`` the nodes it sends new connections to (:func:`eligible`).

    When the last probe was depends on the backend: the sim's LB probes every node once after
    each change of the lab and before the next connection it balances (never stale: a probe
    interval of 0, thresholds of 1; :mod:`kslab.sim.network`); a real prober polls on its own
    clock, so after a change wait (``lab.advance(2)`` is enough on every backend)."""

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
