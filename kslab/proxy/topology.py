"""``CategorizeEndpoints`` (``pkg/proxy/topology.go``): which endpoints a service port's cluster
and local policy chains use, by traffic policy, readiness and topology hints. Pure, and the same
for every proxy mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .endpoints import BaseEndpointInfo
from .serviceport import BaseServicePortInfo



_NONE: tuple = ()  # no endpoints (shared: nothing is ever added to a category)


@dataclass(slots=True)
class CategorizedEndpoints:
    cluster: Sequence[BaseEndpointInfo]
    local: Sequence[BaseEndpointInfo]
    all_reachable: Sequence[BaseEndpointInfo]
    has_any: bool
    topology_mode: str = ""  # "", "PreferSameZone" or "PreferSameNode"


def topology_mode_from_hints(
    endpoints: list[BaseEndpointInfo], node_name: str, zone: str, prefer_same_node: bool = True
) -> str:
    has_for_node = False
    all_node_hints = True
    has_for_zone = False
    all_zone_hints = True
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.node_hints:
            all_node_hints = False
        elif node_name in ep.node_hints:
            has_for_node = True
        if not ep.zone_hints:
            all_zone_hints = False
            if not all_node_hints:
                return ""  # an endpoint without hints: no topology
        elif zone in ep.zone_hints:
            has_for_zone = True
    if prefer_same_node and all_node_hints and has_for_node:
        return "PreferSameNode"
    if all_zone_hints and has_for_zone:
        return "PreferSameZone"
    return ""


def _available_for_topology(ep: BaseEndpointInfo, mode: str, node_name: str, zone: str) -> bool:
    if mode == "PreferSameNode":
        return node_name in ep.node_hints
    if mode == "PreferSameZone":
        return zone in ep.zone_hints
    return True


def categorize_endpoints(
    endpoints: list[BaseEndpointInfo],
    svc: BaseServicePortInfo,
    node_name: str,
    node_zone: str = "",
    prefer_same_node: bool = True,
) -> CategorizedEndpoints:
    cluster: list[BaseEndpointInfo] = []
    local: list[BaseEndpointInfo] = []
    has_any = False
    mode = ""
    use_serving_terminating = False

    if svc.uses_cluster_endpoints():
        mode = topology_mode_from_hints(endpoints, node_name, node_zone, prefer_same_node)
        if not mode:
            cluster = [e for e in endpoints if e.ready]
            if len(cluster) == len(endpoints):
                cluster = endpoints  # all ready: the same list (one object less per service port)
        else:
            cluster = [e for e in endpoints if e.ready and _available_for_topology(e, mode, node_name, node_zone)]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        if cluster:
            has_any = True

    if not svc.uses_local_endpoints():
        return CategorizedEndpoints(cluster, _NONE, cluster, has_any, mode)

    local_ready = local_st = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.is_local
        elif e.serving and e.terminating:
            has_any = True
            local_st = local_st or e.is_local
    if local_ready:
        local = [e for e in endpoints if e.ready and e.is_local]
    elif local_st:
        use_serving_terminating = True
        local = [e for e in endpoints if e.serving and e.terminating and e.is_local]

    if not svc.uses_cluster_endpoints():
        return CategorizedEndpoints([], local, local, has_any, mode)
    if not mode and not use_serving_terminating:
        return CategorizedEndpoints(cluster, local, cluster, has_any, mode)
    merged = {str(e): e for e in cluster}
    merged.update({str(e): e for e in local})
    return CategorizedEndpoints(cluster, local, [merged[k] for k in sorted(merged)], has_any, mode)
