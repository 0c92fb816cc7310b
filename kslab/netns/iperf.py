"""Real iperf3 tests between the lab's namespaces (chapter 10 on the netns backend).

One test is two real processes, both the lab's (recorded in its ``state.json`` as daemons, so a
crash is cleaned up with the lab, and in :attr:`NetnsLab._procs`, so ``close``/``down`` stop them):

1. ``iperf3 -s -1 -J -p PORT`` in the server pod's namespace (``-1``: one test, then it exits);
   ready once its socket listens, read from ``/proc/PID/net/tcp{,6}`` of the server itself (its
   network namespace's table), polled every 10 ms: no fixed sleep. A port some other process
   of the pod already listens on is a :class:`~kslab.iperf3.PortInUse` naming the pod and the
   port (``-p``), before anything starts.
2. ``iperf3 -c HOST -p PORT ... -J --connect-timeout 5000`` in the client's namespace, waited
   for with a deadline of the test's seconds plus a margin; ``progress(elapsed)`` is called every
   0.25 s meanwhile. A path that drops the connection fails within the connect timeout, in
   iperf3's own words (``unable to connect to server``: :class:`~kslab.iperf3.ConnectFailed`).

Whatever happens (a finished test, iperf3's own error, a timeout, an exception or a
KeyboardInterrupt raised while waiting, even from ``progress``), both processes are killed and
reaped in ``finally`` and their records removed: nothing is left running in any namespace.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EnvironmentProblem
from ..iperf3 import IperfMissing, IperfOptions, PortInUse
from ..xtables import kernel
from . import client as _client

if TYPE_CHECKING:
    from .lab import NetnsLab

READY_TIMEOUT = 5.0  # seconds for the server to listen
MARGIN = 10.0  # seconds a client may take beyond -t (connection set-up, the end exchange)
CONNECT_TIMEOUT = 5.0  # seconds the client may take to open its control connection (iperf3 --connect-timeout)
_counter = itertools.count(1)


def iperf3_executable() -> str:
    """The iperf3 on this machine's PATH, or :class:`~kslab.iperf3.IperfMissing` (one line)."""
    exe = shutil.which("iperf3")
    if exe is None:
        raise IperfMissing("iperf3 is not installed: apt-get install iperf3; `kslab doctor` lists what this machine can run")
    return exe


def _listening(pid: int, port: int) -> bool:
    """Whether the network namespace of ``pid`` has a TCP socket listening on ``port``."""
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rpartition(":")[2], 16) == port:
                return True
    return False


def _same_netns(pid: int, ns: str) -> bool:
    try:
        a, b = os.stat(f"/proc/{pid}/ns/net"), os.stat(f"/run/netns/{ns}")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def port_taken(ns: str, port: int) -> bool:
    """Whether something in the namespace ``ns`` listens on TCP ``port`` (its /proc/net/tcp{,6})."""
    r = kernel.run_in_namespace(ns, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) > 3 and f[3] == "0A" and ":" in f[1]:
            try:
                if int(f[1].rpartition(":")[2], 16) == port:
                    return True
            except ValueError:
                continue
    return False


def _stop(proc: subprocess.Popen[bytes] | None, *, grace: float = 0.0) -> None:
    """Wait up to ``grace`` s for ``proc`` to end by itself, then SIGKILL its process group; reap it."""
    if proc is None:
        return
    if proc.poll() is None and grace > 0:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:  # reap it even when interrupted again
            continue


def _tail(path: Path) -> str:
    try:
        return kernel.one_line(path.read_text(errors="replace"))
    except OSError:
        return ""


@dataclass(frozen=True)
class IperfOutput:
    """What the client printed, and its exit status."""

    stdout: str
    stderr: str
    returncode: int


def run_iperf3(lab: NetnsLab, *, client: str, server_pod: str, host: str, options: IperfOptions, server_port: int,
               progress: Callable[[float], None] | None = None, json: bool = True) -> IperfOutput:
    """One real iperf3 test (see the module docstring): what the client printed (``-J`` JSON, or
    its text report with ``json=False``). iperf3's own errors are in that output (the caller
    parses it); the server not starting, a timeout, a missing iperf3 raise one line."""
    exe = iperf3_executable()
    if lab._record is None:
        raise EnvironmentProblem("the lab is not up")
    server_ns, client_ns = lab.namespace_of(server_pod), lab.namespace_of(client)
    if port_taken(server_ns, server_port):
        raise PortInUse(f"pod {server_pod}: port {server_port} is already taken (something listens on it), so iperf3 -s cannot "
                        f"listen there; use another port: -p {server_port + 1 if server_port < 65535 else 5201}")
    n = next(_counter)
    server_key, client_key = f"iperf3-server/{server_pod}#{n}", f"iperf3-client/{client}#{n}"
    server_log = lab.record_dir / f"iperf3-server-{n}.json"
    client_out, client_err = lab.record_dir / f"iperf3-client-{n}.out", lab.record_dir / f"iperf3-client-{n}.err"
    server = cproc = None
    try:
        server = lab._spawn(server_key, server_ns, [exe, "-s", "-1", "-J", "-p", str(server_port)], server_log)
        deadline = time.monotonic() + READY_TIMEOUT
        while not (_same_netns(server.pid, server_ns) and _listening(server.pid, server_port)):
            if server.poll() is not None:
                text = server_log.read_text(errors="replace") if server_log.exists() else ""
                if "Address already in use" in text:
                    raise PortInUse(f"pod {server_pod}: port {server_port} is already taken, so iperf3 -s cannot listen there; "
                                    f"use another port: -p {server_port + 1 if server_port < 65535 else 5201}")
                raise EnvironmentProblem(f"iperf3 -s in pod {server_pod} exited with status {server.returncode}: "
                                         f"{_tail(server_log) or 'no output'}")
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"iperf3 -s in pod {server_pod} did not listen on {server_port} within {READY_TIMEOUT:g} s")
            time.sleep(0.01)
        # --connect-timeout: a path that drops the SYN (a rule deleted by hand) fails in seconds, as iperf3's
        # own "unable to connect" (ConnectFailed), instead of waiting out TCP's two minutes
        argv = [kernel.require_tool("ip"), "netns", "exec", client_ns, exe, *options.client_argv(host, json=json)[1:],
                "--connect-timeout", str(int(CONNECT_TIMEOUT * 1000))]
        with open(client_out, "wb") as out, open(client_err, "wb") as err:
            cproc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                                     env=_client.helper_env(), close_fds=True)
        lab._track(client_key, cproc, client_ns, client_out)
        t0 = time.monotonic()
        limit = options.seconds + MARGIN + 0.1 * options.parallel
        while True:
            try:
                cproc.wait(0.25)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - t0
            if progress is not None:
                progress(elapsed)
            if elapsed > limit:
                raise EnvironmentProblem(f"iperf3 -c {host} in {client} did not finish within {limit:g} s "
                                         f"(-t {options.seconds:g} plus {limit - options.seconds:g} s)")
        return IperfOutput(client_out.read_text(errors="replace"), client_err.read_text(errors="replace"), cproc.returncode)
    finally:  # also what an interrupt between a Popen and its assignment here left in the lab's records
        _stop(cproc or lab._procs.get(client_key))
        _stop(server or lab._procs.get(server_key), grace=2.0 if cproc is not None and cproc.returncode == 0 else 0.0)
        lab._untrack(client_key, server_key)
        for path in (server_log, client_out, client_err):
            try:
                path.unlink()
            except OSError:
                pass
