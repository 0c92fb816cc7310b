"""The ``netns`` dataplane: the Linux kernel itself, one network namespace per node and pod.

:class:`~kslab.netns.lab.NetnsLab` is the kernel: namespaces, servers, ``iptables-restore`` and
``iptables-save``, conntrack, real clients and the kernel's own traces. It runs no kube-proxy:
it loads the rulesets the Lab's Proxiers produce. The clock is the real one (``advance``
waits); the kernel's randomness cannot be seeded, so runs repeat only statistically.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from ..errors import InputError
from ..netns.lab import NetnsLab
from ..sim.network import resolve_client
from .base import Dataplane
from .rows import COLUMNS

if TYPE_CHECKING:
    from ..model import ClusterState
    from ..proxy.iptables import RuleSet
    from .trace import Trace


class NetnsDataplane(Dataplane):
    backend = "netns"
    concurrent_syncs = True  # each node's restore is its own iptables-restore in its own namespace

    def __init__(self, cluster: ClusterState, *, seed: int = 0) -> None:
        self.cluster = cluster
        # a notebook kernel's "interrupt" is SIGINT: it stops a cell, it does not remove the lab
        self.kernel = NetnsLab(cluster, handle_signals=False, seed=seed)
        self.kernel.up()
        self._t0 = time.monotonic()

    @staticmethod
    def check_environment() -> None:
        """Raise EnvironmentProblem (one line) unless this machine can run the lab."""
        NetnsLab.check_environment()

    # ---- rules ---------------------------------------------------------------------------------
    def kernel_features(self) -> dict[str, Any]:
        return {} if self.kernel.nfacct else {"nfacct": False}

    def sync_rules(self, node: str, ruleset: RuleSet) -> None:
        self.kernel.restore(node, ruleset.raw_text(), full=not ruleset.partial)

    def nat_chains(self, node: str) -> list[str]:
        return self.kernel.nat_chains(node)

    def save_text(self, node: str) -> str:
        return self.kernel.save_text(node)

    def delete_rules(self, pattern: re.Pattern[str], nodes: Sequence[str]) -> int:
        return self.kernel.delete_rules(pattern, nodes)

    # ---- pods ----------------------------------------------------------------------------------
    def update_pods(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.kernel.update(cluster)

    def break_pod(self, pod: str, broken: bool = True) -> None:
        self.kernel.break_pod(pod, broken)

    # ---- traffic -------------------------------------------------------------------------------
    def connect(self, clients: Sequence[str], dst: str, port: int, proto: str, n: int, *,
                seed: int | None, interval: float, timeout: float) -> pd.DataFrame:
        """Real TCP connections (``seed`` and ``interval`` do not apply to the kernel): one helper
        process per client (:func:`kslab.netns.client.run_client`), the clients' processes side by
        side, each opening its share one connection after another; rows in client order."""
        if proto != "tcp":
            raise InputError("--to", f"the netns backend opens TCP connections, not {proto}", "use a TCP port")
        pods = {p.name: p for p in self.cluster.pods}
        node_by_ip = {node.internal_ip: node.name for node in self.cluster.nodes}
        rows = []
        share, extra = divmod(n, len(clients))
        counts = [share + (1 if k < extra else 0) for k in range(len(clients))]
        jobs = [(src, count) for src, count in zip(clients, counts) if count]
        for src, _count in jobs:  # a client IP's namespace is made on first use: one at a time
            self.kernel.namespace_of(src)
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            runs = list(pool.map(lambda job: self.kernel.connect(job[0], dst, port, job[1], timeout=timeout), jobs))
        i = 0
        for (src, _count), run in zip(jobs, runs):
            client = resolve_client(self.cluster, src)
            ingress = node_by_ip.get(dst) or client.node or ""
            unanswered = [r.local for r in run.results if not r.ok and r.pod is None]
            why = self.kernel.explain_failures(client.name, dst, port, unanswered) if unanswered and client.kind == "pod" else {}
            for r in run.results:
                pod = pods.get(r.pod or "")
                answered = r.ok or (r.error == "http" and r.pod is not None)  # a broken app still identifies itself
                rows.append({
                    "conn": i, "backend": self.backend, "client": client.name, "client_ip": client.ip, "ingress_node": ingress,
                    "destination": f"{dst}:{port}/tcp", "rules_path": "-", "chains": "",
                    "endpoint_pod": r.pod if answered else None, "endpoint_node": pod.node_name if pod and answered else None,
                    "endpoint_ip": pod.pod_ip if pod and answered else None, "source_ip_seen": r.seen_ip if answered else None,
                    "cross_node": bool(pod and answered and ingress and pod.node_name != ingress),
                    "masquerade": bool(answered and r.seen_ip != client.ip),
                    "outcome": "ok" if r.ok else ("error" if r.error == "http" else (r.error or "error")),
                    "reason": (why.get(r.local or "") or r.detail or "") if not r.ok else "", "t": float(i),
                    "rules_evaluated": None, "latency_ms": r.ms,
                })
                i += 1
        return pd.DataFrame(rows, columns=COLUMNS)

    def trace(self, src: str, dst: str, port: int, proto: str) -> Trace:
        if proto != "tcp":
            raise InputError("--to", f"the netns backend traces TCP connections, not {proto}", "use a TCP port")
        return self.kernel.trace(src, dst, port, client_kind=resolve_client(self.cluster, src).kind)

    def flush_conntrack(self) -> int:
        return self.kernel.flush_conntrack()

    def reset(self) -> None:
        self.kernel.flush_conntrack()
        self.kernel.clear_recent()
        self._t0 = time.monotonic()

    @property
    def now(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self.kernel.close()  # down, unless the lab was detached (kslab netns up)
