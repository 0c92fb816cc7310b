"""iperf3 on a live kind cluster (chapter 10): what :meth:`kslab.kind.dataplane.KindDataplane.iperf3` runs.

On kind nothing is started on demand: the server is the ``iperf3-server`` Deployment's pod
(``data/myk8s/iperf3``: image ``networkstatic/iperf3``, ``args: ["-s"]``), whose own ``iperf3 -s``
serves one test at a time on 5201; the client runs ``iperf3 -c HOST -p PORT ... -J`` in the client
pod through the API server's exec (``kubectl exec``), or in ``mypc`` or a node by ``docker exec``.
kslab writes nothing to the cluster for a test: the pods are there only if the learner applied the
add-on (``lab.apply(kslab.resources.study_lab() / "iperf3")``, ``kslab apply -f data/myk8s/iperf3``,
kslab's label rules), and an exec needs RBAC's ``create``/``get`` on ``pods/exec``, asked up front
(``kubectl auth can-i``) as :func:`kslab.kind.dataplane.check_permissions` does.

The pure parts live here (which port a pod's container serves iperf3 on, the checks of the server
pod, the client's command, iperf3's answers turned into one-line errors naming the pods and the
fix); the exec itself is the dataplane's.

iperf3 3.12 prints its ``{"error": ...}`` JSON and exits 0 when a ``-J`` test fails (busy server,
refused connection), so the answer is read, not the exit status.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import EnvironmentProblem, InputError
from ..iperf3 import (
    DEFAULT_PORT,
    BadOutput,
    ConnectFailed,
    IperfError,
    IperfMissing,
    IperfOptions,
    ServerBusy,
    error_for,
    parse,
)

if TYPE_CHECKING:
    from ..bandwidth import BandwidthPath
    from ..model import ClusterState, Pod

SERVER_DEPLOYMENT = "iperf3-server"
SERVER_SELECTOR = "app=iperf3-server"
ADDON_HINT = 'lab.apply(kslab.resources.study_lab() / "iperf3") (or kslab apply -f data/myk8s/iperf3)'
EXEC_MARGIN = 30.0  # seconds beyond -t an exec may take: connecting, -P's streams, the final exchange of results
MISSING_MARKERS = ("executable file not found", "iperf3: not found", "iperf3: command not found", "no such file or directory")


def container_argv(container: dict[str, Any]) -> list[str]:
    """What a container runs, as far as its spec says: ``command`` + ``args``; an image whose name
    says iperf3 and that sets no ``command`` runs its entrypoint ``iperf3`` (networkstatic/iperf3's)."""
    command = [str(a) for a in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command and "iperf3" in str(container.get("image") or "").lower():
        command = ["iperf3"]
    return command + args


def served_port(pod: Pod) -> int | None:
    """The port the pod's ``iperf3 -s`` listens on (its ``-p``, default 5201), from the live pod's
    containers (``command``/``args``); None when no container runs ``iperf3 -s``."""
    spec = ((pod.manifest or {}).get("spec") or {}) if isinstance(pod.manifest, dict) else {}
    containers = spec.get("containers") or [{"image": c.image} for c in pod.containers]
    for c in containers:
        argv = container_argv(c)
        if not argv or os.path.basename(argv[0]) != "iperf3":
            continue
        try:
            _, server, opts = IperfOptions.from_argv(argv[1:])
        except InputError:
            continue  # a flag kslab does not model (-D, --logfile ...): not a server it can describe
        if server:
            return opts.port
    return None


def check_server(cluster: ClusterState, path: BandwidthPath) -> Pod:
    """The server pod of ``path`` is in the live cluster, running, ready, and its container runs
    ``iperf3 -s`` on the port the test reaches (``path.server_port``). Each failure is one line
    naming the pod and the fix."""
    pod = next((p for p in cluster.pods if path.server_pod in (p.name, p.key)), None)
    if pod is None:
        servers = [p.name for p in cluster.pods if p.labels.get("app") == SERVER_DEPLOYMENT]
        raise InputError("iperf3 server", f"pod {path.server_pod} is not in the live cluster",
                         f"servers there: {', '.join(servers)}" if servers else f"apply the iperf3 pods: {ADDON_HINT}")
    if pod.phase != "Running" or not pod.ready or pod.terminating:
        state = "terminating" if pod.terminating else pod.phase if pod.phase != "Running" else "not ready"
        raise EnvironmentProblem(f"iperf3 server {pod.name} is {state}: wait for it (kubectl get pod {pod.name} -o wide), "
                                 "then run the test again")
    port = served_port(pod)
    if port is None:
        images = ", ".join(c.image for c in pod.containers) or "no image"
        raise InputError("iperf3 server", f"pod {pod.name} runs no iperf3 server ({images}); on kind nothing is started on demand",
                         f"measure to the iperf3-server Deployment's pod ({SERVER_SELECTOR}): {ADDON_HINT}")
    if port != path.server_port:
        raise InputError("-p", f"iperf3 server {pod.name} listens on {port} (its container runs iperf3 -s), "
                               f"not on {path.server_port}", f"leave -p out ({DEFAULT_PORT}) on kind")
    return pod


def client_argv(path: BandwidthPath, options: IperfOptions, *, json: bool = True) -> list[str]:
    """``iperf3 -c HOST -p PORT ... -J`` as the client pod runs it: the host the learner types
    (the Service's DNS name from a pod, else the address) and the port the path reaches."""
    if options.port != path.port:
        options = replace(options, port=path.port)
    return options.client_argv(path.host_name or path.host, json=json)


def exec_timeout(options: IperfOptions) -> float:
    """How long the client's exec may take: the test, each extra stream's set-up, and a margin."""
    return float(options.seconds) + EXEC_MARGIN + 0.2 * options.parallel


def missing(stdout: str, stderr: str, exit_code: int) -> bool:
    """The client container has no iperf3 (the runtime's or the shell's words, exit 126/127)."""
    said = f"{stdout}\n{stderr}".lower()
    return exit_code in (126, 127) or (exit_code != 0 and not stdout.strip() and any(m in said for m in MISSING_MARKERS))


def answer(path: BandwidthPath, argv: list[str], stdout: str, stderr: str, exit_code: int, *, json: bool = True) -> str:
    """The client's output when the test ran; otherwise the one-line error for what went wrong:
    no iperf3 in the client's image (:class:`IperfMissing`), the server busy with another test
    (:class:`ServerBusy`: wait, or scale the server), the server not reachable
    (:class:`ConnectFailed`), output that is not iperf3's (:class:`BadOutput`)."""
    where = f"iperf3 in {path.client}"
    if missing(stdout, stderr, exit_code):
        raise IperfMissing(f"{where}: iperf3 is not installed in {path.client}'s image; run the test from an iperf3 "
                           f"client pod (app=iperf3-client, image networkstatic/iperf3: {ADDON_HINT}) or from mypc")
    if json:
        try:
            parse(stdout, where=where)
        except ServerBusy as e:
            raise ServerBusy(f"{where}: iperf3 server {path.server_pod} is busy running another test (iperf3 -s serves one "
                             "test at a time): wait for the other test or scale the server (kubectl scale deployment "
                             f"{SERVER_DEPLOYMENT} --replicas=2, then measure to the other pod)",
                             iperf_message=e.iperf_message) from None
        except ConnectFailed as e:
            raise ConnectFailed(f"{where}: cannot reach iperf3 server {path.server_pod} at {path.host_name or path.host}:"
                                f"{path.port}: iperf3 says: {e.iperf_message}; is it running and ready "
                                f"(kubectl get pod {path.server_pod}; kubectl logs {path.server_pod})?",
                                iperf_message=e.iperf_message) from None
        except BadOutput:
            if exit_code != 0 and stderr.strip():
                raise IperfError(f"{where} ended with exit code {exit_code}: {' '.join(stderr.split())[:200]} "
                                 f"(command: {shlex.join(argv)})") from None
            raise
        return stdout
    if exit_code != 0:  # the human-readable report: iperf3 writes "iperf3: error - ..." and exits 1
        said = " ".join((stderr.strip() or stdout.strip()).splitlines()[-1:]) if (stderr.strip() or stdout.strip()) else ""
        if said:
            err = error_for(said, where=where)
            if isinstance(err, ServerBusy):
                raise ServerBusy(f"{where}: iperf3 server {path.server_pod} is busy running another test: wait for the other "
                                 f"test or scale the server (kubectl scale deployment {SERVER_DEPLOYMENT} --replicas=2)",
                                 iperf_message=err.iperf_message)
            raise err
        raise IperfError(f"{where} ended with exit code {exit_code} and printed nothing (command: {shlex.join(argv)})")
    return stdout
