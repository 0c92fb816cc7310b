"""``kslab.Lab``: the study's cluster on a backend, with verbs a learner uses.

    lab = kslab.Lab()                       # sim backend (or $KSLAB_BACKEND), the study's lab
    lab.render("myk8s-worker")              # the node's rules (RuleSet; .restore_text(), .save_text())
    print(lab.trace("net-pod", "svc-clusterip"))
    df = lab.run("net-pod", "svc-clusterip", n=1000, seed=1)
    lab.scale("deploy-echo", 5); lab.patch_service("svc-clusterip", session_affinity="ClientIP")

Every change re-renders the nodes' rules and re-applies them to the dataplane, the way
kube-proxy re-syncs after a Service or EndpointSlice event; xt_recent lists and the simulated
clock carry over, as they do in a kernel.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from . import experiments
from .controlplane import ControlPlane, load_cluster
from .errors import EnvironmentProblem, InputError
from .manifests import load_documents
from .model import ClusterState
from .proxy.config import ProxyConfig
from .proxy.iptables import RuleSet, render
from .proxy.iptsave import IptablesState
from .proxy.proxier import Proxier, SyncResult
from .sim.network import Connection, Network, resolve_destination
from .sim.trace import trace_dict, trace_text

DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_LAB = DATA / "myk8s"
BACKENDS = ("sim", "netns", "kind")
HAIRPIN_RULES = r"^-A KUBE-SEP-\S+ -s \S+ .*-j KUBE-MARK-MASQ$"  # each SEP chain's first rule (iptables-save form)


class Trace:
    """One connection's trace: ``str()`` for people, ``.json()`` / ``.to_dict()`` for programs."""

    def __init__(self, conn: Connection):
        self.connection = conn

    def __str__(self) -> str:
        return trace_text(self.connection)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the text
        p.text(str(self))

    def to_dict(self) -> dict:
        return trace_dict(self.connection)

    def json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2)

    def __getattr__(self, name):
        return getattr(self.connection, name)


class Lab:
    """The study's lab (or any manifests) on the ``sim`` backend."""

    def __init__(
        self,
        manifests: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
        *,
        backend: str | None = None,
        seed: int = 0,
        proxy: dict | None = None,
    ) -> None:
        from_env = backend is None
        backend = backend or os.environ.get("KSLAB_BACKEND") or "sim"
        if backend not in BACKENDS:
            raise InputError("backend", f"{backend!r} is not a kslab backend", "use sim, netns or kind")
        if backend == "kind":
            raise EnvironmentProblem("the kind backend is not built yet; use backend='sim' or 'netns'")
        if backend == "netns":
            from .netns.topology import NetnsLab

            try:
                NetnsLab.check_environment()
            except EnvironmentProblem as e:
                if not from_env or os.environ.get("KSLAB_STRICT_BACKEND"):
                    raise
                # a notebook asked through KSLAB_BACKEND: say why in one line and run on sim
                print(f"kslab: netns backend unavailable ({e}); running on sim")
                backend = "sim"
        self.backend = backend
        self.kernel = None
        self.seed = seed
        paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests or [DEFAULT_LAB])
        self.cluster: ClusterState = load_cluster(paths, seed=seed)
        self.control = ControlPlane.of(self.cluster, seed)
        self.proxy_options = dict(proxy or {})
        self._rules: dict[str, RuleSet] = {}
        self._network: Network | None = None
        self.syncs: list[SyncResult] = []  # every simulated kube-proxy sync, per node, timed
        self._proxiers: dict[str, Proxier] = {}  # each node's kube-proxy across syncs
        self._tables: dict[str, IptablesState] = {}  # each node's iptables, as the simulator's kernel
        self._sync()
        if self.backend == "netns":
            from .netns.topology import NetnsLab

            self.kernel = NetnsLab(self.cluster, handle_signals=False, seed=seed, proxy_options=self.proxy_options)
            self.kernel.up()

    # ---- rules ---------------------------------------------------------------------------------
    def proxy_config(self, node: str) -> ProxyConfig:
        return ProxyConfig.for_node(self.cluster, node, **self.proxy_options)

    def render(self, node: str) -> RuleSet:
        """The ruleset kube-proxy programs on ``node`` (see :class:`kslab.proxy.iptables.RuleSet`)."""
        self.cluster.node(node)
        if node not in self._rules:  # after a partial sync: rendered when asked, not on every change
            self._rules[node] = render(self.cluster.services, self.cluster.endpoint_slices, self._proxiers[node].config)
        return self._rules[node]

    def _sync(self, full: bool = False) -> None:
        """kube-proxy's sync on every node, as kube-proxy decides it (full the first time and
        when forced, partial after a change), applied to each node's iptables (an
        :class:`~kslab.proxy.iptsave.IptablesState`, the simulator's kernel); then the dataplane
        reloads what the tables hold. Like a real node, a hand-edited rule survives partial
        syncs and is rewritten only by a full one."""
        now = self._network.now if self._network is not None else 0.0
        proxiers, tables = self._proxiers, self._tables
        self._rules = {}
        for n in self.cluster.nodes:
            if n.name not in proxiers:
                proxiers[n.name] = Proxier(self.proxy_config(n.name))
                tables[n.name] = tables.get(n.name) or IptablesState()
            proxier, table = proxiers[n.name], tables[n.name]
            if full:
                proxier.force_full_sync("forced")

            def apply(rs: RuleSet, table: IptablesState = table) -> None:
                (table.partial_sync if rs.partial else table.full_sync)(rs.raw_text())

            results = proxier.sync_and_retry(self.cluster.services, self.cluster.endpoint_slices, apply,
                                             list_nat_chains=lambda table=table: table.chains("nat"), now=now)
            self.syncs += results
            if not results[-1].ruleset.partial:
                self._rules[n.name] = results[-1].ruleset  # a full sync's text is the node's whole ruleset
        texts = {name: t.save_text() for name, t in tables.items()}
        if self._network is None:
            self._network = Network(self.cluster, texts, seed=self.seed)
        else:
            self._network.update_pods(self.cluster)
            self._network.update_rules(texts)
        if self.kernel is not None:
            self.kernel.update(self.cluster)  # re-render and re-apply in the kernel too

    def close(self) -> None:
        """Remove the real-kernel lab, if any (the sim needs no cleanup)."""
        if self.kernel is not None:
            self.kernel.down()
            self.kernel = None

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def network(self) -> Network:
        assert self._network is not None
        return self._network

    # ---- changes ---------------------------------------------------------------------------------
    def apply(self, *paths: str | os.PathLike) -> list[str]:
        changed = self.control.apply(load_documents(paths))
        self._sync()
        return changed

    def scale(self, deployment: str, replicas: int, namespace: str = "default") -> None:
        self.control.scale(deployment, replicas, namespace)
        self._sync()

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        self.control.delete_pod(name, namespace)
        self._sync()

    def set_ready(self, pod: str, ready: bool, namespace: str = "default") -> None:
        self.control.set_pod_ready(pod, ready, namespace)
        self._sync()

    def break_pod(self, name: str, broken: bool = True) -> None:
        """Make a pod's app answer with errors (it still accepts connections: TCP is fine, HTTP is not)."""
        self.cluster.pod(name)
        (self.network.broken.add if broken else self.network.broken.discard)(name)
        if self.kernel is not None:
            self.kernel.break_pod(name, broken)

    def patch_service(self, name: str, namespace: str = "default", **spec) -> None:
        self.control.patch_service(name, namespace, **spec)
        self._sync()

    def set_proxy(self, **options) -> None:
        """Change kube-proxy's configuration on every node (``masquerade_all=True`` ...)."""
        self.proxy_options.update(options)
        self._proxiers.clear()  # kube-proxy restarts with the new flags: a full sync
        self._sync()
        if self.kernel is not None:
            self.kernel.set_proxy_options(**options)

    def resync(self, full: bool = True) -> None:
        """Run kube-proxy's sync on every node now (``full=True``: rewrite every chain, as the
        hourly full sync or a restarted kube-proxy does; it undoes hand edits)."""
        self._sync(full=full)
        if self.kernel is not None:
            self.kernel.resync(full=full or None)

    def flush_conntrack(self) -> None:
        """Forget every node's conntrack entries (``conntrack -F``), in the simulator and, on
        netns, in the kernel, where failed connections leave entries that new connections
        reusing a source port would follow."""
        for node in self.network.nodes.values():
            node.conntrack.clear()
        if self.kernel is not None:
            self.kernel.flush_conntrack()

    def delete_rules(self, match: str, *, nodes: Iterable[str] | None = None) -> int:
        """Delete by hand (``iptables -D``) every rule whose ``iptables-save`` line contains
        ``match`` (a substring or a regular expression) on ``nodes`` (default all), in the
        simulator and, on netns, in the kernel. Returns how many rules were deleted per node
        in total. kube-proxy puts them back only with a full sync (:meth:`resync`)."""
        import re

        pattern = re.compile(match)
        names = list(nodes) if nodes is not None else [n.name for n in self.cluster.nodes]
        deleted = 0
        texts = {}
        for name in names:
            self.cluster.node(name)
            table = self._tables[name]
            for tname, dump in table.tables.items():
                for chain in dump.chains.values():
                    keep = [r for r in chain.rules if not pattern.search(r.save_text())]
                    deleted += len(chain.rules) - len(keep)
                    chain.rules[:] = keep
            texts[name] = table.save_text()
        self.network.update_rules(texts)
        if self.kernel is not None:
            kernel_deleted = self.kernel.delete_rules(pattern, names)
            if kernel_deleted != deleted:
                raise EnvironmentProblem(f"deleted {deleted} rules in the simulator but {kernel_deleted} in the kernel")
        return deleted

    def advance(self, seconds: float) -> None:
        """Move the clock: the simulator's jumps at once; on netns the kernel's clock is real, so
        this also waits ``seconds`` (conntrack and ``recent`` entries age in real time)."""
        if seconds < 0:
            raise InputError("seconds", f"{seconds} is negative", "the clock only moves forward")
        self.network.advance(seconds)
        if self.kernel is not None:
            import time

            time.sleep(seconds)

    @property
    def now(self) -> float:
        return self.network.now

    # ---- traffic -----------------------------------------------------------------------------------
    def pods(self, label: str | None = None) -> list[str]:
        """Pod names, optionally only those with ``key=value``."""
        out = []
        for p in self.cluster.pods:
            if label:
                k, _, v = label.partition("=")
                if p.labels.get(k) != v:
                    continue
            out.append(p.name)
        return out

    def destination(self, to: str) -> tuple[str, int, str]:
        return resolve_destination(self.cluster, to)

    def trace(self, src: str, to: str):
        """One connection, explained rule by rule: by the simulator on sim, by the kernel itself
        on netns (``xtables-monitor --trace``; :class:`kslab.netns.ktrace.KernelTrace`, the same
        attributes: outcome, reason, chains, dnat_to, masquerade, endpoint_pod, steps)."""
        dst, port, proto = self.destination(to)
        if self.kernel is not None and proto == "tcp":
            return self.kernel.trace(src, dst, port)
        return Trace(self.network.connect(src, dst, port, proto, trace=True))

    def run(
        self,
        src: str | Iterable[str],
        to: str,
        n: int = 1000,
        *,
        seed: int | None = None,
        interval: float = 0.001,
        timeout: float = 0.5,
    ) -> pd.DataFrame:
        """Open ``n`` connections from ``src`` (a client or a list of clients, used in turn) to ``to``.

        ``interval`` advances the simulated clock between connections. Equal seeds repeat exactly.
        ``timeout`` is how long a real connection may take on netns before it counts as failed.
        """
        if n < 0:
            raise InputError("n", f"{n} is negative", "open 0 or more connections")
        clients = [src] if isinstance(src, str) else list(src)
        if not clients:
            raise InputError("src", "no clients given", "name a pod, a node, mypc or an IP")
        dst, port, proto = self.destination(to)
        if self.kernel is not None:
            return self._run_kernel(clients, dst, port, proto, n, timeout)
        net = self.network
        if seed is not None:
            net.reseed(seed)
        resolved = [net.client(c) for c in clients]
        conns, times = [], []
        # The loop allocates many short-lived, acyclic objects (freed by reference counting);
        # with the cyclic GC paused they are not promoted to the old generation, which would
        # otherwise trigger a full collection of the process every few experiments.
        paused = gc.isenabled()
        gc.disable()
        try:
            for i in range(n):
                c = resolved[i % len(resolved)]
                conns.append(net.connect(c, dst, port, proto, trace=False))
                times.append(net.now)
                if interval:
                    net.advance(interval)
            return experiments.connections_frame(conns, self.backend, times)
        finally:
            if paused:
                gc.enable()

    def _run_kernel(self, clients: list[str], dst: str, port: int, proto: str, n: int, timeout: float = 0.5) -> pd.DataFrame:
        """Real TCP connections in the kernel lab: the same columns as the sim, plus latency."""
        if proto != "tcp":
            raise InputError("--to", f"the netns backend opens TCP connections, not {proto}", "use a TCP port")
        pods = {p.name: p for p in self.cluster.pods}
        node_by_ip = {node.internal_ip: node.name for node in self.cluster.nodes}
        rows = []
        share, extra = divmod(n, len(clients))
        i = 0
        for k, src in enumerate(clients):
            count = share + (1 if k < extra else 0)
            if not count:
                continue
            client = self.network.client(src)
            run = self.kernel.connect(src, dst, port, count, timeout=timeout)
            ingress = node_by_ip.get(dst) or client.node or ""
            for r in run.results:
                pod = pods.get(r.pod or "")
                answered = r.ok or (r.error == "http" and r.pod is not None)  # a broken app still identifies itself
                rows.append({
                    "conn": i, "backend": "netns", "client": client.name, "client_ip": client.ip, "ingress_node": ingress,
                    "destination": f"{dst}:{port}/tcp", "rules_path": "-", "chains": "",
                    "endpoint_pod": r.pod if answered else None, "endpoint_node": pod.node_name if pod and answered else None,
                    "endpoint_ip": pod.pod_ip if pod and answered else None, "source_ip_seen": r.seen_ip if answered else None,
                    "cross_node": bool(pod and answered and ingress and pod.node_name != ingress),
                    "masquerade": bool(answered and r.seen_ip != client.ip),
                    "outcome": "ok" if r.ok else ("error" if r.error == "http" else (r.error or "error")),
                    "reason": r.detail or "" if not r.ok else "", "t": float(i), "rules_evaluated": None, "latency_ms": r.ms,
                })
                i += 1
        return pd.DataFrame(rows, columns=[*experiments.COLUMNS, "latency_ms"])
