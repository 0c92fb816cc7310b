"""Real connections for experiments: N sequential HTTP GETs from inside one network namespace.

Why one helper process per run rather than a process per connection: starting ``curl`` under
``ip netns exec`` costs milliseconds, which would cap an experiment at a few hundred
connections per second and measure process start-up rather than the kernel. So the parent
starts this module *once* inside the client's namespace::

    ip netns exec NS python3 -m kslab.netns.client --to 10.200.1.51:9000 -n 1000 --timeout 0.5 --json

and it loops, opening a fresh TCP connection per GET (``Connection: close``; kube-proxy balances
connections, not requests) and printing one JSON line per connection, then a summary line:

- ``{"i": 0, "ok": true, "status": 200, "pod": "webpod2", "remote_addr": "10.10.0.2:40312",
  "seen_ip": "10.10.0.2", "local": "10.10.0.2:40312", "ms": 0.61}`` - ``pod`` and
  ``remote_addr`` are what the server reported (whoami's ``Hostname``/``RemoteAddr``, the echo
  server's ``os.hostname``/``ip``); ``local`` is the client's own socket address, so a
  difference from ``remote_addr`` shows SNAT;
- ``{"i": 1, "ok": false, "error": "timeout", "detail": "...", "local": "10.10.0.2:40313", "ms": 500.2}``
  with ``error`` one of ``timeout``, ``refused``, ``reset``, ``unreachable``, ``closed``, ``http``,
  ``error`` (``local`` when the socket got a port, so a failed attempt can be found in conntrack);
- ``{"summary": true, "n": 1000, "ok": 998, "seconds": 0.71, "rate": 1408.5}``.

``--health IP:PORT ...`` is the lab's readiness check: poll every target until it answers 200
or ``--deadline`` passes, print one line per target, exit 0 only if all answered.

The parent-side API is :func:`run_client` / :func:`health_check` (they run the helper with
``ip netns exec`` and parse its output). The helper part imports nothing from kslab, so it
starts fast in any namespace.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ERRORS = ("timeout", "refused", "reset", "unreachable", "closed", "http", "error")
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


# --------------------------------------------------------------------------------------------
# Inside the namespace


def _classify(err: BaseException) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(err, OSError) and err.errno in _UNREACHABLE:
        return "unreachable"
    return "error"


def parse_answer(body: str) -> tuple[str | None, str | None]:
    """(pod name, client address the server saw) from a whoami text or an echo JSON body."""
    text = body.lstrip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None, None
        pod = (doc.get("os") or {}).get("hostname")
        conn = doc.get("connection") or {}
        ip = conn.get("remoteAddress") or str(doc.get("ip") or "").removeprefix("::ffff:") or None
        port = conn.get("remotePort")
        return pod, (join_host_port(ip, port) if ip and port else ip)
    pod = remote = None
    for line in text.splitlines():
        if line.startswith("Hostname:"):
            pod = line.split(":", 1)[1].strip()
        elif line.startswith("RemoteAddr:"):
            remote = line.split(":", 1)[1].strip()
            break
    return pod, remote


def join_host_port(ip: str, port: int | str) -> str:
    """``ip:port``, an IPv6 address in brackets (``[fd00::5]:80``), as Go's ``net.JoinHostPort``."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def split_host_port(text: str) -> tuple[str, str]:
    """(host, port) of ``ip:port`` or ``[ipv6]:port`` (the port ``""`` when there is none); the
    brackets are dropped."""
    host, sep, port = text.rpartition(":")
    if text.startswith("[") and "]" in text:
        inside, _, rest = text[1:].partition("]")
        return inside, rest[1:] if rest.startswith(":") else ""
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return text, ""
    return host, port


def http_get(ip: str, port: int, timeout: float, path: str = "/") -> dict[str, object]:
    """One GET on a new TCP connection; the result as a JSON-able dict (see module docstring).
    An IPv6 ``ip`` connects over IPv6; addresses are written ``[ip]:port`` then."""
    t0 = time.perf_counter()
    out: dict[str, object] = {}
    try:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect((ip, port))
            finally:  # connect() bound the socket: its address names the attempt in conntrack even if no answer came
                local = s.getsockname()
                if local[1]:
                    out["local"] = join_host_port(local[0], local[1])
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {join_host_port(ip, port)}\r\nUser-Agent: kslab\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            deadline = t0 + timeout
            while True:
                s.settimeout(max(deadline - time.perf_counter(), 0.001))
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        if not head:
            out.update(ok=False, error="closed", detail="connection closed without an answer")
        else:
            status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            parts = status_line.split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            out["status"] = status
            pod, remote = parse_answer(body.decode(errors="replace"))
            seen_ip = split_host_port(remote)[0] if remote else remote
            out.update(pod=pod, remote_addr=remote, seen_ip=seen_ip)
            if status != 200:  # the pod answered, with an error (a broken app)
                out.update(ok=False, error="http", detail=status_line)
            else:
                out.update(ok=True)
    except OSError as err:
        out.update(ok=False, error=_classify(err), detail=str(err) or type(err).__name__)
    out["ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return out


def _split_target(text: str) -> tuple[str, int]:
    host, port = split_host_port(text)
    if not host or not port.isdigit():
        raise SystemExit(f"target {text!r} is not IP:PORT or [IPV6]:PORT")
    return host, int(port)


def _loop(target: str, n: int, timeout: float, path: str, interval: float) -> int:
    ip, port = _split_target(target)
    out = sys.stdout
    ok = 0
    t0 = time.perf_counter()
    for i in range(n):
        result = http_get(ip, port, timeout, path)
        ok += bool(result["ok"])
        out.write(json.dumps({"i": i, **result}) + "\n")
        if interval:
            time.sleep(interval)
    seconds = time.perf_counter() - t0
    out.write(json.dumps({"summary": True, "n": n, "ok": ok, "seconds": round(seconds, 6), "rate": round(n / seconds, 1) if seconds else None}) + "\n")
    out.flush()
    return 0


def _health(targets: Sequence[str], deadline: float, timeout: float) -> int:
    end = time.monotonic() + deadline
    pending = {t: _split_target(t) for t in targets}
    last: dict[str, dict[str, object]] = {}
    attempts = dict.fromkeys(targets, 0)
    while pending:
        for t, (ip, port) in list(pending.items()):
            attempts[t] += 1
            last[t] = http_get(ip, port, timeout)
            if last[t]["ok"]:
                del pending[t]
        if not pending or time.monotonic() >= end:
            break
        time.sleep(0.02)
    for t in targets:
        print(json.dumps({"target": t, "attempts": attempts[t], **last.get(t, {"ok": False, "error": "timeout"})}))
    return 0 if not pending else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kslab.netns.client", description=__doc__.split("\n\n")[0])
    ap.add_argument("--to", help="IP:PORT to connect to")
    ap.add_argument("-n", type=int, default=1, help="number of sequential connections")
    ap.add_argument("--timeout", type=float, default=0.5, help="seconds per connection (connect + answer)")
    ap.add_argument("--path", default="/")
    ap.add_argument("--interval", type=float, default=0.0, help="seconds to wait between connections")
    ap.add_argument("--json", action="store_true", help="JSON lines (the only output format; kept for clarity)")
    ap.add_argument("--health", nargs="+", metavar="IP:PORT", help="readiness check of these targets")
    ap.add_argument("--deadline", type=float, default=5.0, help="seconds the readiness check may take")
    a = ap.parse_args(argv)
    if a.health:
        return _health(a.health, a.deadline, a.timeout)
    if not a.to:
        ap.error("give --to IP:PORT or --health IP:PORT ...")
    return _loop(a.to, a.n, a.timeout, a.path, a.interval)


# --------------------------------------------------------------------------------------------
# In the parent


@dataclass
class ConnResult:
    """One connection as the helper reported it."""

    i: int
    ok: bool
    pod: str | None = None
    remote_addr: str | None = None  # ip:port the server saw
    seen_ip: str | None = None  # the IP part of remote_addr
    local: str | None = None  # the client's own socket address
    status: int | None = None
    error: str | None = None  # one of ERRORS when not ok
    detail: str | None = None
    ms: float = 0.0


@dataclass
class ClientRun:
    """N connections from one namespace to one target."""

    namespace: str
    target: str
    results: list[ConnResult] = field(default_factory=list)
    seconds: float = 0.0  # the helper's loop only: the connection rate the kernel sustained
    wall_seconds: float = 0.0  # including the helper's start under ip netns exec

    @property
    def rate(self) -> float:
        """Connections per second inside the helper's loop."""
        return len(self.results) / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.ok

    def by_pod(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            if r.ok and r.pod:
                out[r.pod] = out.get(r.pod, 0) + 1
        return dict(sorted(out.items()))

    def seen_ips(self) -> dict[str, list[str]]:
        """pod name -> distinct client IPs it saw."""
        out: dict[str, set[str]] = {}
        for r in self.results:
            if r.ok and r.pod and r.seen_ip:
                out.setdefault(r.pod, set()).add(r.seen_ip)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            if not r.ok:
                out[r.error or "error"] = out.get(r.error or "error", 0) + 1
        return out

    def records(self) -> list[dict[str, object]]:
        """One dict per connection (for a pandas DataFrame)."""
        return [{"namespace": self.namespace, "target": self.target, **asdict(r)} for r in self.results]


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def helper_env() -> dict[str, str]:
    """The environment of helpers run under ``ip netns exec``: kslab importable even from a
    plain checkout, and no buffering surprises."""
    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _ip_tool() -> str:
    from ..xtables.kernel import require_tool

    return require_tool("ip")


def run_client(
    namespace: str, ip: str, port: int, n: int = 1, *, timeout: float = 0.5, path: str = "/", interval: float = 0.0
) -> ClientRun:
    """Open ``n`` sequential connections from ``namespace`` to ``ip:port`` with one helper process."""
    from ..errors import EnvironmentProblem

    argv = [_ip_tool(), "netns", "exec", namespace, sys.executable, "-m", "kslab.netns.client",
            "--to", join_host_port(ip, port), "-n", str(n), "--timeout", str(timeout), "--path", path, "--json"]
    if interval:
        argv += ["--interval", str(interval)]
    t0 = time.perf_counter()
    budget = 30.0 + n * (timeout + interval) * 1.5
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=budget, env=helper_env(), check=False)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"client in {namespace} to {join_host_port(ip, port)} did not finish within {budget:.0f} s") from None
    run = ClientRun(namespace=namespace, target=join_host_port(ip, port), wall_seconds=time.perf_counter() - t0)
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        if doc.get("summary"):
            run.seconds = float(doc["seconds"])
            continue
        run.results.append(ConnResult(**{k: v for k, v in doc.items() if k in ConnResult.__dataclass_fields__}))
    if proc.returncode != 0 or len(run.results) != n:
        detail = " / ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
        raise EnvironmentProblem(f"client in {namespace} to {join_host_port(ip, port)} failed: {detail}")
    return run


def health_check(namespace: str, targets: Sequence[str], *, deadline: float = 5.0, timeout: float = 0.5) -> dict[str, dict[str, object]]:
    """Poll ``targets`` (``IP:PORT``) from ``namespace`` until each answers 200 or ``deadline``
    passes; return target -> the last result (``ok`` says whether it answered)."""
    from ..errors import EnvironmentProblem

    argv = [_ip_tool(), "netns", "exec", namespace, sys.executable, "-m", "kslab.netns.client",
            "--health", *targets, "--deadline", str(deadline), "--timeout", str(timeout)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=deadline + 30, env=helper_env(), check=False)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"readiness check in {namespace} did not finish") from None
    out: dict[str, dict[str, object]] = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        out[str(doc["target"])] = doc
    if set(out) != set(targets):
        detail = " / ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
        raise EnvironmentProblem(f"readiness check in {namespace} failed: {detail}")
    return out


if __name__ == "__main__":
    sys.exit(main())
