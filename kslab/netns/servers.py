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

Run inside a pod's network namespace, in the foreground until killed::

    ip netns exec kslab-1a2b3c4d-pod-webpod1 \\
        python3 -m kslab.netns.servers --kind whoami --name webpod1 --ip 10.10.1.2 --port 80

``--port`` may be repeated (one listener per container port, one process per pod). SIGUSR1 breaks
the app (it still accepts connections, but answers HTTP 500 with the same body: what a pod
without a readiness probe does when its app fails), SIGUSR2 repairs it. The server
binds ``0.0.0.0`` like a container does; it writes one ``listening`` line to stdout once every
port is bound, and logs no requests (thousands of connections per experiment).

This module imports nothing from kslab: it starts in every pod, so it has to start fast.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

KINDS = ("whoami", "echo")


def response_body(kind: str, pod_name: str, pod_ips: list[str], method: str, path: str, version: str,
                  headers: list[tuple[str, str]], remote_ip: str, remote_port: int, body: str = "") -> tuple[bytes, str]:
    """What the pod's server answers to one request (the body and its Content-Type): the whoami
    text or the echo JSON. ``headers`` as the client sent them, in order. The simulator answers
    its ``curl`` with the same function (:mod:`kslab.sim.tools`)."""
    if kind == "whoami":
        lines = [f"Hostname: {pod_name}"]
        lines += [f"IP: {ip}" for ip in ["127.0.0.1", *pod_ips]]
        lines.append(f"RemoteAddr: {remote_ip}:{remote_port}")
        lines.append(f"{method} {path} {version}")
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\n".join(lines) + "\n\n").encode(), "text/plain; charset=utf-8"
    url = urlsplit(path)
    host = next((v for k, v in headers if k.lower() == "host"), "").rsplit(":", 1)[0]
    doc = {
        "path": url.path,
        "headers": {k.lower(): v for k, v in headers},
        "method": method,
        "body": body,
        "fresh": False,
        "hostname": host,
        "ip": f"::ffff:{remote_ip}",  # Express on a dual-stack socket prints IPv4 clients so
        "ips": [],
        "protocol": "http",
        "query": dict(parse_qsl(url.query)),
        "subdomains": [],
        "xhr": False,
        "os": {"hostname": pod_name},
        "connection": {"remoteAddress": remote_ip, "remotePort": remote_port},
    }
    return (json.dumps(doc, indent=2) + "\n").encode(), "application/json; charset=utf-8"


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows the pod it runs in."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # experiments open connections back to back

    broken = False  # SIGUSR1: the app breaks (answers 500, TCP still accepted); SIGUSR2: healthy again

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], kind: str, name: str, ips: list[str]):
        self.kind = kind
        self.pod_name = name
        self.pod_ips = ips
        super().__init__(address, handler)


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
    """Bind every port, say so on stdout, then serve until SIGTERM/SIGINT."""
    servers = [_Server(("0.0.0.0", port), _Handler, kind, name, ips) for port in ports]
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
    a = ap.parse_args(argv)
    try:
        serve(a.kind, a.name, a.port, a.ip if a.ip is not None else _own_ips())
    except OSError as err:
        print(f"cannot serve {a.kind} for {a.name} on {a.port}: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
