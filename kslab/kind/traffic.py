"""Traffic and commands on a live kind cluster: curl loops by exec, ``mypc``, ``docker exec`` on nodes.

- :func:`curl_loop` is the one shell command a batch of connections runs in a client (a pod by
  the API server's exec, ``mypc`` or a node by ``docker exec``): ``n`` curls one after another,
  each followed by a marker line with curl's own numbers (exit status, HTTP code, local address,
  time). One exec per batch, not per connection.
- :func:`parse_curl_loop` splits what the loop printed into one :class:`Reply` per connection,
  reading the server's answer: traefik/whoami's text (``Hostname:``, ``RemoteAddr:``; the
  study's webpods) or mendhak/http-https-echo's JSON (``os.hostname``, ``ip``; ``deploy-echo``).
- :func:`rows` turns replies into exactly :data:`kslab.dataplane.rows.COLUMNS`.
- :class:`Docker` runs the ``docker`` command with a timeout: ``docker exec`` into kind's node
  containers, and ``mypc`` (an external client on kind's docker network, created on request with
  ``docker run`` as the study does).
- :class:`Progress`: a progress bar for long runs (a widget in a notebook, a line on stderr in a
  terminal, nothing otherwise).

Pure functions, no kubernetes import: the exec itself is :class:`kslab.kind.client.KindClient`'s.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import EnvironmentProblem, InputError

if TYPE_CHECKING:
    from ..model import ClusterState
    from ..sim.network import Client

MARK = "@@kslab-curl"  # starts the line curl's -w prints after each connection
# curl's exit statuses (man curl, EXIT CODES) -> the rows' outcome
CURL_OUTCOMES = {6: "unresolved", 7: "refused", 28: "timeout", 52: "error", 56: "reset", 35: "error"}
MYPC = "mypc"
MYPC_IMAGE = "nicolaka/netshoot"  # the study's client image (net-pod runs it too)
KIND_NETWORK = "kind"  # the docker network kind puts its node containers on
MYPC_HOST = 100  # mypc is host .100 of kind's docker network (the study's 172.18.0.100 on 172.18.0.0/16)
DOCKER_TIMEOUT = 30.0  # seconds for one docker command that is not a batch of connections


# ---- the curl loop ---------------------------------------------------------------------------------
def curl_loop(url: str, n: int, timeout: float) -> list[str]:
    """argv of one exec that opens ``n`` connections to ``url`` one after another (``sh`` and
    ``curl``: in netshoot, in kind's node image, in most images). After each connection curl
    prints ``MARK exit=E code=C local=IP:PORT time=S`` on a line of its own (``-w``; the body
    before it is the server's answer), so a failed connection still has its row."""
    if n < 1:
        raise InputError("n", f"{n} connections in a batch", "open 1 or more")
    fmt = f"\\n{MARK} code=%{{http_code}} local=%{{local_ip}}:%{{local_port}} time=%{{time_total}} exit="
    script = (f'i=0; while [ "$i" -lt {int(n)} ]; do i=$((i+1)); '
              f'curl -s -m {timeout:g} -w "{fmt}" "$1"; echo "$?"; done')
    return ["sh", "-c", script, "kslab-curl-loop", url]


@dataclass
class Reply:
    """One connection of a curl loop, as the client saw it."""

    exit_code: int  # curl's exit status (0: an HTTP answer came)
    http_code: int  # 0 when no answer
    local: str  # the client's IP:PORT curl used ("" when it never connected)
    seconds: float  # curl's time_total
    hostname: str | None  # who answered (whoami's Hostname, echo's os.hostname)
    seen_ip: str | None  # the client address the server saw (whoami's RemoteAddr, echo's ip)
    body: str

    @property
    def outcome(self) -> str:
        if self.exit_code == 0:
            return "ok" if 200 <= self.http_code < 400 else "error"
        return CURL_OUTCOMES.get(self.exit_code, "error")

    @property
    def reason(self) -> str:
        if self.outcome == "ok":
            return ""
        if self.exit_code == 0:
            return f"HTTP {self.http_code}"
        return f"curl exit {self.exit_code} ({CURL_OUTCOMES.get(self.exit_code, 'error')})"


_MARK_LINE = re.compile(rf"^{re.escape(MARK)} code=(\d+) local=(\S*) time=([\d.]+) exit=(\d+)\s*$")


def _ip_of(addr: str) -> str | None:
    """``10.10.0.5:41234``, ``[::ffff:10.10.0.5]:41234``, ``::ffff:10.10.0.5`` -> ``10.10.0.5``."""
    addr = addr.strip()
    if addr.startswith("["):
        addr = addr[1:].partition("]")[0]
    elif addr.count(":") == 1:
        addr = addr.partition(":")[0]
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def parse_answer(body: str) -> tuple[str | None, str | None]:
    """(hostname, client IP the server saw) from one server answer: traefik/whoami's text
    (``Hostname: webpod1`` ... ``RemoteAddr: 10.10.0.5:41234``) or http-https-echo's JSON
    (``"os": {"hostname": ...}``, ``"ip": "::ffff:10.10.0.5"``); (None, None) for anything else."""
    text = body.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None, None
        host = (doc.get("os") or {}).get("hostname") if isinstance(doc, dict) else None
        ip = doc.get("ip") if isinstance(doc, dict) else None
        return (str(host) if host else None), (_ip_of(str(ip)) if ip else None)
    host = seen = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "Hostname" and host is None:
            host = value.strip()
        elif key == "RemoteAddr" and seen is None:
            seen = _ip_of(value)
    return host, seen


def parse_curl_loop(stdout: str) -> list[Reply]:
    """One :class:`Reply` per connection of :func:`curl_loop`'s output, in order."""
    replies: list[Reply] = []
    body: list[str] = []
    for line in stdout.splitlines():
        m = _MARK_LINE.match(line)
        if not m:
            body.append(line)
            continue
        text = "\n".join(body)
        host, seen = parse_answer(text)
        local = m[2] if m[2] not in (":", ":0") else ""
        replies.append(Reply(int(m[4]), int(m[1]), local, float(m[3]), host, seen, text))
        body = []
    return replies


def rows(replies: Sequence[Reply], *, client: Client, cluster: ClusterState, dst: str, port: int, proto: str,
         ingress_node: str, first: int, t0: float, backend: str = "kind") -> list[dict[str, Any]]:
    """Rows (:data:`kslab.dataplane.rows.COLUMNS`) for one client's replies: the endpoint pod is the
    pod whose name the server printed (its node and IP from the live cluster), ``source_ip_seen``
    the address it printed. ``t`` is the time since the dataplane started, at each connection's
    start (the batch's start plus curl's times before it); ``latency_ms`` curl's time."""
    pods = {p.name: p for p in cluster.pods}
    out: list[dict[str, Any]] = []
    t = t0
    for k, r in enumerate(replies):
        pod = pods.get(r.hostname or "")
        answered = r.hostname is not None
        out.append({
            "conn": first + k, "backend": backend, "client": client.name, "client_ip": client.ip,
            "ingress_node": ingress_node, "destination": f"{dst}:{port}/{proto}", "rules_path": "-", "chains": "",
            "endpoint_pod": r.hostname if answered else None,
            "endpoint_node": pod.node_name if pod and answered else None,
            "endpoint_ip": pod.pod_ip if pod and answered else None,
            "source_ip_seen": r.seen_ip if answered else None,
            "cross_node": bool(pod and answered and ingress_node and pod.node_name != ingress_node),
            "masquerade": bool(answered and r.seen_ip and r.seen_ip != client.ip),
            "outcome": r.outcome, "reason": r.reason, "t": round(t, 6),
            "rules_evaluated": None, "latency_ms": round(r.seconds * 1000, 3),
        })
        t += r.seconds
    return out


# ---- docker ----------------------------------------------------------------------------------------
@dataclass
class Completed:
    stdout: str
    stderr: str
    exit_code: int


class Docker:
    """The ``docker`` command, with a timeout on every call. Errors a machine causes are one-line
    :class:`~kslab.errors.EnvironmentProblem`\\ s naming the fix."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    @classmethod
    def find(cls) -> "Docker":
        exe = shutil.which("docker")
        if not exe:
            raise EnvironmentProblem("docker: not found on PATH (the kind backend reads each node's iptables by "
                                     "`docker exec`); install Docker, or use backend='sim'")
        return cls(exe)

    def run(self, argv: Sequence[str], *, timeout: float = DOCKER_TIMEOUT, stdin: str | None = None) -> Completed:
        try:
            r = subprocess.run([self.executable, *argv], input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"docker {argv[0]}: no answer within {timeout:g} s (is the Docker daemon running?)") from None
        except OSError as e:
            raise EnvironmentProblem(f"docker: cannot run {self.executable}: {e.strerror or e}") from None
        return Completed(r.stdout, r.stderr, r.returncode)

    def check(self) -> None:
        """The daemon answers (``docker version``)."""
        r = self.run(["version", "--format", "{{.Server.Version}}"])
        if r.exit_code != 0:
            raise EnvironmentProblem(f"docker: the daemon does not answer ({_one_line(r.stderr) or 'docker version failed'}); "
                                     "start Docker, or use backend='sim'")

    def running(self, names: Sequence[str]) -> dict[str, bool]:
        """Which of the containers ``names`` run (a missing one is False)."""
        out: dict[str, bool] = {}
        for name in names:
            r = self.run(["inspect", "--format", "{{.State.Running}}", name])
            out[name] = r.exit_code == 0 and r.stdout.strip() == "true"
        return out

    def check_nodes(self, nodes: Sequence[str], context: str) -> None:
        missing = [n for n, up in self.running(nodes).items() if not up]
        if missing:
            raise EnvironmentProblem(f"docker: node container {', '.join(missing)} is not running here (context {context}'s "
                                     "nodes must be kind's containers on this machine's Docker)")

    def exec(self, container: str, argv: Sequence[str], *, timeout: float) -> Completed:
        """``docker exec CONTAINER ARGV...``: what it printed and its exit status (a non-zero status
        is an answer; docker's own failures, 125-127 with no output, are EnvironmentProblems)."""
        r = self.run(["exec", container, *argv], timeout=timeout)
        if r.exit_code in (125, 126, 127) and not r.stdout and ("Error" in r.stderr or "error" in r.stderr):
            raise EnvironmentProblem(f"docker exec {container}: {_one_line(r.stderr)}")
        return r

    def network_subnets(self, network: str = KIND_NETWORK) -> list[str]:
        """The subnets of docker network ``network`` (``docker network inspect``), IPv4 and IPv6."""
        r = self.run(["network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"])
        if r.exit_code != 0:
            raise EnvironmentProblem(f"docker network {network}: {_one_line(r.stderr) or 'cannot be inspected'} "
                                     "(kind creates it with the cluster: kind get clusters)")
        return r.stdout.split()

    def ensure_mypc(self, ip: str, *, network: str = KIND_NETWORK, image: str = MYPC_IMAGE) -> bool:
        """Start the external client ``mypc`` on kind's docker network at ``ip`` unless it runs
        (the study's ``docker run -d --rm --name mypc --network kind --ip IP nicolaka/netshoot sleep
        infinity``). True if it was started now."""
        if self.running([MYPC])[MYPC]:
            return False
        r = self.run(["run", "-d", "--rm", "--name", MYPC, "--network", network, "--ip", ip, image, "sleep", "infinity"],
                     timeout=300.0)  # may pull the image
        if r.exit_code != 0:
            raise EnvironmentProblem(f"docker run mypc: {_one_line(r.stderr) or 'failed'}")
        return True

    def remove(self, container: str) -> None:
        self.run(["rm", "-f", container])


def mypc_address(subnets: Sequence[str], taken: Sequence[str] = ()) -> str:
    """mypc's address on kind's docker network: host .100 (:data:`MYPC_HOST`) of its IPv4 subnet
    (172.18.0.100 on 172.18.0.0/16, as in the study), or the next host after it that no node
    holds (``taken``)."""
    nets = []
    for s in subnets:
        try:
            net = ipaddress.ip_network(s, strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.num_addresses > MYPC_HOST + 2:
            nets.append(net)
    if not nets:
        raise EnvironmentProblem(f"docker network {KIND_NETWORK} has no IPv4 subnet with room for mypc "
                                 f"(subnets: {', '.join(subnets) or 'none'})")
    net = nets[0]
    used = set(taken)
    for k in range(MYPC_HOST, net.num_addresses - 1):
        ip = str(net.network_address + k)
        if ip not in used:
            return ip
    raise EnvironmentProblem(f"docker network {KIND_NETWORK} ({net}) has no free address for mypc")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---- progress --------------------------------------------------------------------------------------
class Progress:
    """A progress bar for a long live run: an ipywidgets bar in a notebook, a ``\\r`` line on a
    terminal's stderr, nothing otherwise (a pipe, a test)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self._bar = None
        self._tty = False
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and "IPKernelApp" in shell.config:
                import ipywidgets as w
                from IPython.display import display

                self._bar = w.IntProgress(value=0, min=0, max=max(total, 1), description=label[:20])
                display(self._bar)
        except ImportError:  # pragma: no cover - IPython is a dependency
            pass
        if self._bar is None:
            self._tty = sys.stderr.isatty()

    def update(self, done: int) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.value = done
        elif self._tty:
            sys.stderr.write(f"\r{self.label}: {done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.bar_style = "success"
        elif self._tty:
            sys.stderr.write("\n")
