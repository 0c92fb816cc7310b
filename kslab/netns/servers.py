"""The workloads of the lab's pods: small real HTTP servers, one process per pod.

The study's pods run ``traefik/whoami`` (webpod1..3, port 80) and ``mendhak/http-https-echo``
(deploy-echo, port 8080). What the lessons read from them is *who answered* and *which client
address the pod saw* (to see kube-proxy's DNAT and SNAT), so this module answers the same two
ways, with the standard library only:

- ``whoami``: text like traefik/whoami::

      Hostname: webpod1
      IP: 127.0.0.1
      IP: 10.10.1.2
      RemoteAddr: 10.10.0.2:41234
      GET / HTTP/1.1
      Host: 10.200.1.51:9000
      ...

- ``echo``: JSON like mendhak/http-https-echo (``path``, ``headers``, ``method``, ``hostname``,
  ``ip`` as Express prints it, ``::ffff:10.10.0.2``, ``os.hostname``), plus ``connection``
  with the remote address and port.
- ``mario``: the stand-in for ``pengbai/docker-supermario`` (chapter 08's Deployment, port 8080):
  a small HTML page on every path (the real image serves the game's page), with the pod's
  ``Hostname:`` and ``RemoteAddr:`` lines as whoami writes them, so experiments tell the pods apart.

Run inside a pod's network namespace, in the foreground until killed::

    ip netns exec kslab-1a2b3c4d-pod-webpod1 \\
        python3 -m kslab.netns.servers --kind whoami --name webpod1 --ip 10.10.1.2 --port 80

``--port`` may be repeated (one listener per container port, one process per pod). SIGUSR1 breaks
the app (it still accepts connections, but answers HTTP 500 with the same body: what a pod
without a readiness probe does when its app fails), SIGUSR2 repairs it. The server
binds ``0.0.0.0`` like a container does, and ``::`` too (an IPv6-only socket) when an ``--ip`` is
IPv6 (a dual-stack pod; an IPv6 client's address is written ``[addr]:port``, as Go writes it); it writes one ``listening`` line to stdout once every
port is bound, and logs no requests (thousands of connections per experiment).

The third kind, ``kube-proxy``, is not a pod's server but kube-proxy's own listeners on a node
(one process per node namespace, started by :class:`kslab.netns.lab.NetnsLab`)::

    ip netns exec kslab-1a2b3c4d-node-myk8s-worker \\
        python3 -m kslab.netns.servers --kind kube-proxy --name myk8s-worker --port 10256 --state FILE

- ``--port`` (10256): kube-proxy's healthz server (``pkg/proxy/healthcheck/proxy_health.go``):
  ``/healthz`` and ``/livez`` answer 200 with ``{"lastUpdated": "...","currentTime": "...",
  "nodeEligible": true}`` (Go's ``time.Time`` strings), any other path Go's ``404 page not
  found``: :func:`kslab.healthcheck.proxy_health`, which the sim answers with too;
- every healthCheckNodePort in ``--state`` (a JSON file the lab rewrites after each of the node's
  kube-proxy syncs: ``{"generation": g, "proxy_healthy": true, "ports": {"32000": {"status": 200,
  "headers": [[k, v], ...], "body": "..."}}, "addresses": null}``, the answers :func:`kslab.healthcheck.service_health`
  computed from that sync): the stored answer, for any path and any method, read from the file
  per request, so the count follows kube-proxy's syncs. On SIGHUP the server re-reads the file,
  opens the listeners of new ports and closes the ones gone (``SyncServices``), then writes
  ``FILE.ack`` (``{"generation": g, "ports": [...], "errors": {...}}``).

The answers go out as Go's net/http writes them: the status line (``HTTP/1.0`` to a 1.0 client),
the handler's headers sorted by name, then ``Date`` and ``Content-Length`` (and ``Connection:
close`` when an HTTP/1.1 client asked to close); a HEAD request gets the same headers and no body.

This module imports nothing from kslab at import time but :mod:`kslab.netns.client` (the standard library only): it starts in every pod, so it has to
start fast (the ``kube-proxy`` kind, one per node, loads :mod:`kslab.healthcheck` when it starts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .client import join_host_port  # Go's net.JoinHostPort: whoami's RemoteAddr ([ipv6]:port); a light module

KINDS = ("whoami", "echo", "mario", "kube-proxy")
PROXY_HEALTHZ_PORT = 10256


def response_body(kind: str, pod_name: str, pod_ips: list[str], method: str, path: str, version: str,
                  headers: list[tuple[str, str]], remote_ip: str, remote_port: int, body: str = "") -> tuple[bytes, str]:
    """What the pod's server answers to one request (the body and its Content-Type): the whoami
    text or the echo JSON. ``headers`` as the client sent them, in order. The simulator answers
    its ``curl`` with the same function (:mod:`kslab.sim.tools`)."""
    if kind == "whoami":
        lines = [f"Hostname: {pod_name}"]
        lines += [f"IP: {ip}" for ip in ["127.0.0.1", *pod_ips]]
        lines.append(f"RemoteAddr: {join_host_port(remote_ip, remote_port)}")
        lines.append(f"{method} {path} {version}")
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\n".join(lines) + "\n\n").encode(), "text/plain; charset=utf-8"
    if kind == "mario":
        return mario_page(pod_name, remote_ip, remote_port).encode(), "text/html; charset=utf-8"
    url = urlsplit(path)
    host = next((v for k, v in headers if k.lower() == "host"), "").rsplit(":", 1)[0]
    doc = {
        "path": url.path,
        "headers": {k.lower(): v for k, v in headers},
        "method": method,
        "body": body,
        "fresh": False,
        "hostname": host,
        "ip": remote_ip if ":" in remote_ip else f"::ffff:{remote_ip}",  # Express on a dual-stack socket prints IPv4 clients so
        "ips": [],
        "protocol": "http",
        "query": dict(parse_qsl(url.query)),
        "subdomains": [],
        "xhr": False,
        "os": {"hostname": pod_name},
        "connection": {"remoteAddress": remote_ip, "remotePort": remote_port},
    }
    return (json.dumps(doc, indent=2) + "\n").encode(), "application/json; charset=utf-8"


def mario_page(pod_name: str, remote_ip: str, remote_port: int) -> str:
    """The stand-in for the Super Mario image's page: HTML whose ``Hostname:`` and ``RemoteAddr:``
    lines (each on a line of its own, as whoami writes them) name the pod and the client address it saw."""
    return ("<!DOCTYPE html>\n<html>\n<head><title>Super Mario</title></head>\n<body>\n"
            "<p>kslab's stand-in for pengbai/docker-supermario (the real image serves the game here)</p>\n<pre>\n"
            f"Hostname: {pod_name}\nRemoteAddr: {join_host_port(remote_ip, remote_port)}\n</pre>\n</body>\n</html>\n")


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows the pod it runs in (on ``::`` an IPv6-only socket: the
    IPv4 one beside it keeps IPv4 clients' addresses as they are)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # experiments open connections back to back

    broken = False  # SIGUSR1: the app breaks (answers 500, TCP still accepted); SIGUSR2: healthy again

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], kind: str, name: str, ips: list[str]):
        self.kind = kind
        self.pod_name = name
        self.pod_ips = ips
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    """One request: the whoami text or the echo JSON, then the connection closes or is kept
    alive as the client asked (HTTP/1.1, Content-Length always set)."""

    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # status line, headers and body leave in one send() (flushed per request)
    disable_nagle_algorithm = True
    server_version = "kslab-netns"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """No request log: experiments make thousands of connections."""

    def _body(self) -> tuple[bytes, str]:
        length = int(self.headers.get("Content-Length") or 0) if self.server.kind != "whoami" else 0
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        return response_body(self.server.kind, self.server.pod_name, self.server.pod_ips, self.command, self.path,
                             self.request_version, list(self.headers.items()), self.client_address[0],
                             self.client_address[1], body)

    def _answer(self) -> None:
        data, ctype = self._body()
        self.send_response(500 if _Server.broken else 200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer
    do_PUT = _answer
    do_DELETE = _answer
    do_HEAD = _answer


def serve(kind: str, name: str, ports: list[int], ips: list[str]) -> None:
    """Bind every port (on ``0.0.0.0``, and on ``::`` too when the pod has an IPv6 address: a
    dual-stack pod), say so on stdout, then serve until SIGTERM/SIGINT."""
    wildcards = ["0.0.0.0", *(["::"] if any(":" in ip for ip in ips) else [])]
    servers = [_Server((addr, port), _Handler, kind, name, ips) for port in ports for addr in wildcards]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True) for s in servers]
    for t in threads:
        t.start()
    print(f"listening {kind} {name} on {' '.join(str(p) for p in ports)}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: setattr(_Server, "broken", True))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(_Server, "broken", False))
    while not stop.wait(3600):
        pass
    for s in servers:
        s.server_close()


# --------------------------------------------------------------------------------------------
# kube-proxy's listeners on a node: healthz (10256) and the service health checks (healthCheckNodePorts)


_GO_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


class _ProxyServer(ThreadingHTTPServer):
    """One listener of the node's kube-proxy: its healthz port, or one healthCheckNodePort."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: str, port: int, state_path: str, healthz: bool, started_ns: int):
        self.port = port
        self.state_path = state_path
        self.healthz = healthz
        self.started_ns = started_ns
        super().__init__((address, port), _ProxyHandler)

    def state(self) -> dict:
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


class _ProxyHandler(BaseHTTPRequestHandler):
    """Answers as Go's net/http server writes a handler's answer (see the module docstring)."""

    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    disable_nagle_algorithm = True
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """No request log (a load balancer probes every 0.3 s)."""

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        one_one = self.request_version not in ("HTTP/0.9", "HTTP/1.0")
        lines = [f"{'HTTP/1.1' if one_one else 'HTTP/1.0'} {status} {_GO_REASONS.get(status, '')}"]
        lines += [f"{k}: {v}" for k, v in sorted(headers, key=lambda kv: kv[0])]  # Header.WriteSubset: sorted keys
        lines.append(f"Date: {self.date_time_string()}")
        lines.append(f"Content-Length: {len(body)}")
        if one_one and self.close_connection and "close" in (self.headers.get("Connection") or "").lower():
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)

    def _answer(self) -> None:
        server = self.server
        state = server.state()
        if server.healthz:
            from ..healthcheck import go_time, proxy_health  # imported when kube-proxy's server starts (serve_kube_proxy)

            now_ns = time.time_ns()
            current = go_time(now_ns, time.monotonic_ns() - server.started_ns)
            r = proxy_health(self.path, current, go_time(int(state.get("last_updated_ns") or now_ns)),
                             proxy_healthy=bool(state.get("proxy_healthy", True)),
                             node_eligible=bool(state.get("node_eligible", True)))
            self._reply(r.status, list(r.headers), r.body.encode())
            return
        answer = (state.get("ports") or {}).get(str(server.port))
        if answer is None:  # the Service is gone and the listener is closing: no answer
            self.close_connection = True
            return
        self._reply(int(answer["status"]), [(str(k), str(v)) for k, v in answer["headers"]], str(answer["body"]).encode())

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._answer()
            self.wfile.flush()
        except (TimeoutError, ConnectionError):
            self.close_connection = True


def serve_kube_proxy(node: str, healthz_port: int, state_path: str) -> None:
    """kube-proxy's listeners on one node, until SIGTERM/SIGINT (see the module docstring). The
    healthCheckNodePorts listen on ``0.0.0.0`` or, when the state names ``addresses`` (the node
    IPs inside kube-proxy's nodePortAddresses), on each of those (``newServiceHealthServer``)."""
    from .. import healthcheck  # noqa: F401  kube-proxy's answers: loaded before the first request (not in pods)

    started_ns = time.monotonic_ns()
    servers: dict[tuple[str, int], _ProxyServer] = {}

    def start(address: str, port: int, healthz: bool) -> None:
        srv = _ProxyServer(address, port, state_path, healthz, started_ns)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        servers[(address, port)] = srv

    def reconcile() -> None:
        try:
            with open(state_path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
        addresses = state.get("addresses")
        addresses = ["0.0.0.0"] if addresses is None else addresses  # [] (no node IP in nodePortAddresses): none
        wanted = {(a, int(p)) for p in (state.get("ports") or {}) for a in addresses}
        errors: dict[str, str] = {}
        healthz = ("0.0.0.0", healthz_port)
        for key in sorted(set(servers) - wanted - {healthz}):
            srv = servers.pop(key)
            srv.shutdown()
            srv.server_close()
        for address, port in sorted(wanted - set(servers)):
            try:
                start(address, port, False)
            except OSError as err:  # upstream logs an event ("FailedToStartServiceHealthcheck") and goes on
                errors[f"{address}:{port}"] = str(err)
        ack = {"generation": state.get("generation"), "ports": sorted({p for _, p in servers}),
               "listeners": sorted(f"{a}:{p}" for a, p in servers), "errors": errors}
        tmp = state_path + ".ack.tmp"
        with open(tmp, "w") as f:
            json.dump(ack, f)
        os.replace(tmp, state_path + ".ack")

    wake = threading.Event()
    stop = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: wake.set())  # before the first ack: the lab signals only after it
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
    start("0.0.0.0", healthz_port, True)
    reconcile()
    print(f"listening kube-proxy {node} on {' '.join(f'{a}:{p}' for a, p in sorted(servers))}", flush=True)
    while not stop.is_set():
        wake.wait(3600)
        wake.clear()
        if not stop.is_set():
            reconcile()
    for srv in servers.values():
        srv.server_close()


def _own_ips() -> list[str]:
    """The pod's addresses when ``--ip`` is not given (best effort: the address of the default route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            return [s.getsockname()[0]]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kslab.netns.servers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--name", required=True, help="the pod name the server reports (Hostname / os.hostname)")
    ap.add_argument("--port", type=int, action="append", required=True, help="TCP port to listen on (repeatable)")
    ap.add_argument("--ip", action="append", default=None, help="the pod's IP, reported as 'IP:' (repeatable)")
    ap.add_argument("--state", help="kube-proxy: the health check answers the lab writes after each sync")
    a = ap.parse_args(argv)
    if a.kind == "kube-proxy":
        if not a.state:
            ap.error("--kind kube-proxy needs --state FILE")
        try:
            serve_kube_proxy(a.name, a.port[0], a.state)
        except OSError as err:
            print(f"cannot serve kube-proxy for {a.name} on {a.port[0]}: {err}", file=sys.stderr, flush=True)
            return 1
        return 0
    try:
        serve(a.kind, a.name, a.port, a.ip if a.ip is not None else _own_ips())
    except OSError as err:
        print(f"cannot serve {a.kind} for {a.name} on {a.port}: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
