"""The fake live cluster's iperf3 servers (chapter 10 on the kind backend): what a pod's exec of
``iperf3 -c HOST ... [-J]`` prints, from outputs of the REAL iperf3 (tests/data/kind/iperf3-exec.json,
made by tests/kindfake/record_iperf3.py between scratch namespaces standing for the fake's iperf3
pods at the same addresses).

What a live cluster decides, the fake decides from the objects it stores, as a kind cluster would:

- **where HOST:PORT leads**: a Service name (``iperf3-server``, ``iperf3-server.default.svc.cluster.local``)
  is its ClusterIP (the cluster DNS); a ClusterIP and TCP port lead to the Service's endpoints
  (the ready pods its selector picks), a node's InternalIP and a TCP nodePort too, a pod IP to the pod;
- **who serves**: a Running pod whose container runs ``iperf3 -s`` (networkstatic/iperf3's entrypoint
  with ``args: ["-s"]``, :func:`kslab.kind.iperf3.served_port`) on that port; nobody: iperf3's
  "Connection refused" answer, as recorded;
- **one test at a time**: a server answering a test is busy for :attr:`Iperf3Servers.hold` seconds
  (the exec's answer is delayed as long); a test arriving meanwhile gets iperf3's recorded "the server
  is busy running a test" answer.

The answer to a test is the recording of the same client address, host and options
(:meth:`kslab.iperf3.IperfOptions.from_argv`, so flag order does not matter). Otherwise (the
chapter's other runs), the run recorded on netns for the same path kind and flags
(``data/recorded/iperf3.json``, :func:`kslab.bandwidth.recorded_run`), else exit 1 and a line
saying nothing is recorded. Without ``-J``, the report :func:`kslab.iperf3.format_text` prints for
that JSON (iperf3's own layout); an error then is iperf3's ``iperf3: error - ...`` line, exit 1.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE.parents[0] / "data" / "kind" / "iperf3-exec.json"
CLUSTER_DOMAIN = "svc.cluster.local"


class Iperf3Servers:
    """Answers iperf3 client execs for a :class:`kindfake.server.FakeApiServer` (``server``)."""

    def __init__(self, server: Any, recordings: Path = RECORDINGS, *, hold: float = 0.3) -> None:
        from kslab.iperf3 import IperfOptions

        doc = json.loads(Path(recordings).read_text())
        self.server = server
        self.meta = doc["meta"]
        self.hold = hold
        self.runs: dict[tuple[str, str, Any], dict] = {}
        self.special: dict[str, dict] = {}
        for run in doc["runs"]:
            if run["name"] in ("busy", "refused", "unresolved"):
                self.special[run["name"]] = run
                continue
            host, _, opts = IperfOptions.from_argv(run["argv"])
            self.runs[(run["client_ip"], host, opts)] = run
        self.busy_until: dict[str, float] = {}  # server pod -> when its current test ends
        self.tests: list[tuple[str, str, str]] = []  # (client pod, server pod or "", answer name) in order
        self.lock = threading.Lock()

    # ---- the cluster as the server stores it ------------------------------------------------------
    def _objects(self, kind: str) -> list[dict]:
        return self.server.objects(kind)

    def _pod(self, namespace: str, name: str) -> dict | None:
        return next((o for o in self._objects("Pod") if (o["metadata"].get("namespace", "default"), o["metadata"]["name"])
                     == (namespace, name)), None)

    @staticmethod
    def _ready(pod: dict) -> bool:
        st = pod.get("status") or {}
        return st.get("phase") == "Running" and any(c.get("type") == "Ready" and c.get("status") == "True"
                                                    for c in st.get("conditions") or [])

    def _resolve(self, host: str, namespace: str) -> str | None:
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        parts = host.split(".")
        name, ns = parts[0], (parts[1] if len(parts) > 1 else namespace)
        if len(parts) > 2 and ".".join(parts[2:]) not in ("svc", CLUSTER_DOMAIN):
            return None
        svc = next((s for s in self._objects("Service") if (s["metadata"]["name"], s["metadata"].get("namespace", "default"))
                    == (name, ns)), None)
        ip = (svc or {}).get("spec", {}).get("clusterIP")
        return ip if ip and ip != "None" else None

    def _endpoints(self, svc: dict) -> list[dict]:
        sel = (svc.get("spec") or {}).get("selector") or {}
        ns = svc["metadata"].get("namespace", "default")
        return [p for p in self._objects("Pod") if sel and p["metadata"].get("namespace", "default") == ns
                and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items()) and self._ready(p)]

    def target(self, ip: str, port: int) -> tuple[str, dict | None, int]:
        """(path kind of the address, the pod it leads to or None, the port there)."""
        for s in self._objects("Service"):
            spec = s.get("spec") or {}
            for sp in spec.get("ports") or []:
                if sp.get("protocol", "TCP") != "TCP":
                    continue
                through = ("clusterip" if spec.get("clusterIP") == ip and sp.get("port") == port else
                           "nodeport" if sp.get("nodePort") == port and any(
                               a.get("address") == ip for n in self._objects("Node") for a in (n.get("status") or {}).get("addresses") or [])
                           else None)
                if through:
                    eps = self._endpoints(s)
                    tp = sp.get("targetPort", sp.get("port"))
                    return through, (eps[0] if eps else None), int(tp) if str(tp).isdigit() else port
        for p in self._objects("Pod"):  # a pod's own address (hostNetwork pods share their node's: not theirs)
            if (p.get("status") or {}).get("podIP") == ip and not (p.get("spec") or {}).get("hostNetwork"):
                return "pod", p, port
        return "none", None, port

    def _serves(self, pod: dict | None, port: int) -> bool:
        from kslab.kind.iperf3 import container_argv
        from kslab.iperf3 import IperfOptions

        if pod is None or not self._ready(pod):
            return False
        for c in (pod.get("spec") or {}).get("containers") or []:
            argv = container_argv(c)
            if argv[:1] == ["iperf3"]:
                _, server, opts = IperfOptions.from_argv(argv[1:])
                if server and opts.port == port:
                    return True
        return False

    # ---- one exec -------------------------------------------------------------------------------
    def __call__(self, req: Any) -> Any:
        """A pod's exec (a :class:`kindfake.server.ExecRequest`)."""
        client = self._pod(req.namespace, req.pod) or {}
        return self.answer(req.pod, (client.get("status") or {}).get("podIP", ""), (client.get("spec") or {}).get("nodeName", ""),
                           req.namespace, list(req.argv))

    def answer(self, who: str, client_ip: str, client_node: str, namespace: str, argv: list[str]) -> Any:
        """What ``argv`` (``iperf3 -c ...``) prints in ``who`` (a pod, or ``mypc`` by docker exec)."""
        from kindfake.server import ExecAnswer
        from kslab.errors import InputError
        from kslab.iperf3 import IperfOptions, format_text, parse

        try:
            host, server, opts = IperfOptions.from_argv(argv)
        except InputError as e:
            return ExecAnswer("", f"iperf3: parameter error - {e}\nUsage: iperf3 [-s|-c host] [options]\n", 1)
        if server or host is None:
            return ExecAnswer("", "iperf3: parameter error - kindfake plays clients only (the pods serve)\n", 1)
        json_out = "-J" in argv or "--json" in argv
        ip = self._resolve(host, namespace) if who != "mypc" else self._address(host)
        if ip is None:
            return self._answer(who, "", self.special["unresolved"], json_out, "unresolved")
        kind, pod, port = self.target(ip, opts.port)
        if not self._serves(pod, port):
            return self._answer(who, "", self.special["refused"], json_out, "refused")
        name = pod["metadata"]["name"]
        now = time.monotonic()
        with self.lock:
            if self.busy_until.get(name, 0.0) > now:
                return self._answer(who, name, self.special["busy"], json_out, "busy")
            self.busy_until[name] = now + self.hold
        run = self.runs.get((client_ip, host, opts))
        if run is None:
            if kind == "pod":
                kind = "same-node" if client_node == pod["spec"].get("nodeName") else "cross-node"
            try:
                from kslab.bandwidth import recorded_run

                text, _label = recorded_run(kind, opts)
            except (InputError, OSError) as e:
                with self.lock:
                    self.busy_until.pop(name, None)
                return ExecAnswer("", f"kindfake: no recorded iperf3 run of {opts.flags() or '(defaults)'} from {client_ip} "
                                      f"to {host} ({kind}): {e}\n", 1)
            run = {"name": f"recorded-{kind}", "stdout": text + "\n", "stderr": "", "exit_code": 0}
        self.tests.append((who, name, run["name"]))
        if json_out:
            return ExecAnswer(run["stdout"], run["stderr"], run["exit_code"], self.hold)
        return ExecAnswer(format_text(parse(run["stdout"])), "", 0, self.hold)

    @staticmethod
    def _address(host: str) -> str | None:
        """mypc resolves no Service names (docker's DNS knows containers, not the cluster)."""
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None

    def _answer(self, who: str, server: str, run: dict, json_out: bool, name: str) -> Any:
        from kindfake.server import ExecAnswer

        self.tests.append((who, server, name))
        if json_out:
            return ExecAnswer(run["stdout"], run["stderr"], run["exit_code"])
        return ExecAnswer("", f"iperf3: error - {json.loads(run['stdout'])['error']}\n", 1)


def is_iperf3_client(argv: tuple[str, ...] | list[str]) -> bool:
    return bool(argv) and argv[0] == "iperf3"
