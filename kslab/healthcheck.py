"""kube-proxy's service health check server: what a node answers on a Service's healthCheckNodePort.

A ``type: LoadBalancer`` Service with ``externalTrafficPolicy: Local`` gets a healthCheckNodePort;
kube-proxy listens on it on every node and a cloud load balancer probes it to send traffic only
to nodes that have a local endpoint. Everything here is pure (no sockets, no files): the sim,
the netns server and the charts all call these functions.

Upstream, kubernetes/kubernetes (read with the project's search tools):

* ``pkg/proxy/healthcheck/service_health.go`` at 124526cf4904abf16a60f7cfb3404f1bfd3d8e5e,
  ``hcHandler.ServeHTTP``: the three headers, 200 only if ``count != 0 && kubeProxyHealthy``
  else 503, and the body ``strings.Trim(dedent.Dedent(fmt.Sprintf(`...`)), "\\n")``: one tab
  per level, no trailing newline, names through Go's ``%q``. Any path and any method get the
  same answer (the handler never looks at the request). :func:`service_health` is that handler.
* ``pkg/proxy/healthcheck/healthcheck_test.go`` at 02f8803abc6620715c52992335334ea7278122b5,
  ``TestServer`` and ``tHandler``: the cases tests/test_healthcheck.py repeats (0 -> 503,
  18 -> 200, 0 -> 503 again, an unhealthy proxy -> 503 with the count kept) and the header
  assertions.
* ``pkg/proxy/endpointschangetracker.go`` at f2963eff6352cb5e4fc986d54e642f3fead7ff2b,
  ``EndpointsMap.LocalReadyEndpoints`` / ``getLocalReadyEndpointIPs``: the count the proxier
  hands to ``SyncEndpoints`` is, per Service (namespace/name, over all its ports), the number of
  distinct IPs of endpoints that are local and ready (an unset Ready counts as ready, as
  ``pkg/proxy/endpointslicecache.go`` at c2c7d507620b919d8c6cd5d43e689e7656186df5 reads it). Terminating endpoints are left out because the
  EndpointSlice controller marks them not ready ("the health check signal should fail if there
  are only terminating endpoints on a node"), serving or not; upstream tests Ready only, so a
  hand-written endpoint both ready and terminating is counted. :func:`local_endpoints` counts
  the same way, on the endpoints map :func:`kslab.proxy.endpoints.build_endpoints_map` builds as
  ``endpointslicecache.go`` does.
* ``pkg/proxy/healthcheck/proxy_health.go`` at 0645f0e50ec848af731c8f5a33b86f9e1aa39879:
  kube-proxy's own health server (``--healthz-bind-address``, port 10256 on every address), a
  ``ServeMux`` of ``healthzHandler`` and ``livezHandler``: ``/healthz`` answers
  ``{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}`` (200 when the proxy is healthy and
  the node eligible, ``lastUpdated`` then the current time; 503 otherwise), ``/livez`` the same
  without ``nodeEligible`` (the node's eligibility aside), the times Go's ``time.Time`` strings;
  any other path Go's ``http.NotFound``. :func:`proxy_health` is that server's mux, with
  :func:`go_time` and :func:`proxy_healthz_body`; the netns node servers and the sim both answer
  with it.
* ``apiservice.NeedsHealthCheck`` (LoadBalancer and external policy Local) through
  ``newBaseServiceInfo``'s ``healthCheckNodePort``, collected by the service change tracker into
  ``HCServiceNodePorts`` for ``SyncServices``: :func:`hc_targets`, read from
  :func:`kslab.proxy.serviceport.service_port_infos`.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

from .errors import InputError
from .model import ClusterState, Service
from .proxy.endpoints import build_endpoints_map
from .proxy.serviceport import service_port_infos

HEALTHZ_PATH = "/healthz"
"""The path load balancers probe (the server answers any path the same)."""


@dataclass(frozen=True)
class HealthResponse:
    """One answer of the health check server: the status code, the headers the handler sets (in
    the order it sets them; Go's server adds ``Date`` and ``Content-Length`` on the wire) and the
    body, byte for byte."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def reason(self) -> str:
        """The status line's reason phrase (Go's ``http.StatusText``)."""
        return _REASONS[self.status]

    def header(self, name: str) -> str | None:
        """A header's value, the name matched case-insensitively as HTTP does."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}

PROXY_HEALTHZ_PATHS = ("/healthz", "/livez")
"""The paths kube-proxy's own health server (10256) serves; any other gets Go's 404."""


def service_health(namespace: str, name: str, local_endpoints: int, proxy_healthy: bool = True) -> HealthResponse:
    """What ``hcHandler.ServeHTTP`` answers for the Service ``namespace/name`` when the node has
    ``local_endpoints`` local ready endpoints and kube-proxy's own health is ``proxy_healthy``."""
    if not isinstance(local_endpoints, numbers.Integral) or isinstance(local_endpoints, bool):
        raise InputError("local_endpoints", f"{local_endpoints!r} is not a number of endpoints",
                         "give the number of local ready endpoints as a whole number, e.g. 2")
    count = int(local_endpoints)
    if count < 0:
        raise InputError("local_endpoints", f"{count} is negative",
                         "give the number of local ready endpoints (0 or more)")
    if isinstance(proxy_healthy, str) or proxy_healthy not in (True, False):
        raise InputError("proxy_healthy", f"{proxy_healthy!r} is not True or False",
                         "give True (kube-proxy is healthy) or False")
    healthy = bool(proxy_healthy)
    headers = (
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Load-Balancing-Endpoint-Weight", str(count)),  # strconv.Itoa(count)
    )
    status = 200 if count != 0 and healthy else 503
    body = (
        "{\n"
        '\t"service": {\n'
        f'\t\t"namespace": {go_quote(namespace)},\n'
        f'\t\t"name": {go_quote(name)}\n'
        "\t},\n"
        f'\t"localEndpoints": {count},\n'
        f'\t"serviceProxyHealthy": {"true" if healthy else "false"}\n'
        "}"
    )
    return HealthResponse(status, headers, body)


def go_time(epoch_ns: int, monotonic_ns: int | None = None) -> str:
    """Go's ``time.Time.String()`` of a UTC time (kube-proxy's container runs in UTC):
    ``2006-01-02 15:04:05.999999999 +0000 UTC`` (trailing zeros of the fraction dropped) and, for
    a time read from the clock, its monotonic reading `` m=+SECONDS.NNNNNNNNN``."""
    secs, frac = divmod(int(epoch_ns), 1_000_000_000)
    t = time.gmtime(secs)
    digits = f"{frac:09d}".rstrip("0")
    out = time.strftime("%Y-%m-%d %H:%M:%S", t) + (f".{digits}" if digits else "") + " +0000 UTC"
    if monotonic_ns is not None:
        sign = "+" if monotonic_ns >= 0 else "-"
        m_s, m_ns = divmod(abs(int(monotonic_ns)), 1_000_000_000)
        out += f" m={sign}{m_s}.{m_ns:09d}"
    return out


def proxy_healthz_body(last_updated: str, current: str, node_eligible: bool) -> str:
    """``healthzHandler.ServeHTTP``'s body (no trailing newline):
    ``{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}``."""
    return f'{{"lastUpdated": "{last_updated}","currentTime": "{current}", "nodeEligible": {"true" if node_eligible else "false"}}}'


def proxy_health(path: str, current: str, last_updated: str | None = None, *, proxy_healthy: bool = True,
                 node_eligible: bool = True) -> HealthResponse:
    """What kube-proxy's own health server (10256) answers a request for ``path`` (a query
    string is ignored) at the time ``current`` (a :func:`go_time` string); ``last_updated`` is
    the time of the proxy's last sync (shown only when unhealthy: a healthy proxy reports the
    current time, as upstream keeps for compatibility)."""
    route = path.split("?", 1)[0]
    if route not in PROXY_HEALTHZ_PATHS:  # http.NotFound -> http.Error
        return HealthResponse(404, (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")),
                              "404 page not found\n")
    healthy = bool(proxy_healthy) and (bool(node_eligible) or route == "/livez")
    last = current if healthy else (last_updated or current)
    body = (proxy_healthz_body(last, current, node_eligible) if route == "/healthz"
            else f'{{"lastUpdated": "{last}","currentTime": "{current}"}}')
    return HealthResponse(200 if healthy else 503, (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")),
                          body)


def go_quote(s: str) -> str:
    """Go's ``%q`` of a string (``strconv.Quote``): double quotes, ``\\"`` and ``\\\\``, the C
    escapes, ``\\xNN`` for other control bytes, printable Unicode kept as is. Namespaces and
    Service names are DNS labels, for which this is just ``"name"``."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def local_endpoints(cluster: ClusterState, service: Service, node: str, family: int = 4) -> int:
    """How many local endpoints kube-proxy on ``node`` reports for ``service``
    (``LocalReadyEndpoints``): distinct IPs, over all of the Service's ports, of the endpoints of
    its EndpointSlices that are on ``node`` and ready (terminating ones are not ready)."""
    endpoints_map = build_endpoints_map(cluster.slices_for(service), node, family)
    ips = {e.ip for eps in endpoints_map.values() for e in eps if e.is_local and e.ready}
    return len(ips)


def hc_targets(cluster: ClusterState, family: int = 4) -> dict[int, Service]:
    """healthCheckNodePort -> Service, for every Service kube-proxy opens a health check for
    (``type: LoadBalancer`` with ``externalTrafficPolicy: Local`` and a healthCheckNodePort, and a
    cluster IP of the proxy's family), in (namespace, name) order."""
    out: dict[int, Service] = {}
    for svc in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
        ports = {p.health_check_node_port for p in service_port_infos(svc, family)}
        port = max(ports, default=0)
        if port:
            out[port] = svc
    return out


def synced_health(service_ports) -> dict[int, tuple[str, str, int]]:
    """What one kube-proxy sync hands its health check servers, from the sync's own decisions:
    ``service_ports`` are ``(service port info, its endpoints)`` pairs of every service port the
    sync saw, full or partial (a ``RuleSet``'s ``service_port_rows`` start so). Returns
    healthCheckNodePort -> (namespace, name, local ready endpoints), as upstream's
    ``syncProxyRules`` calls ``SyncServices(svcPortMap.HealthCheckNodePorts())`` and
    ``SyncEndpoints(endpointsMap.LocalReadyEndpoints())`` after a successful restore. The count is
    :func:`local_endpoints`' (distinct local ready IPs over all of the Service's ports), read from
    what kube-proxy synced rather than from the cluster now."""
    ports: dict[tuple[str, str], int] = {}
    ips: dict[tuple[str, str], set[str]] = {}
    for info, endpoints in service_ports:
        if not info.health_check_node_port:  # the servers drop the counts of Services without one
            continue
        key = (info.name.namespace, info.name.name)
        ports[key] = info.health_check_node_port
        infos = endpoints.infos() if hasattr(endpoints, "infos") else endpoints  # EndpointColumns or a list
        ips.setdefault(key, set()).update(e.ip for e in infos if e.is_local and e.ready)
    return {port: (ns, name, len(ips.get((ns, name), ()))) for (ns, name), port in sorted(ports.items())}
