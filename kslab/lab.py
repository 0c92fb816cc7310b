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

import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from . import experiments
from .controlplane import ControlPlane, load_cluster
from .errors import EnvironmentProblem, InputError
from .manifests import load_documents
from .model import ClusterState
from .proxy.iptables import ProxyConfig, RuleSet, render
from .sim.network import Connection, Network, resolve_destination
from .sim.trace import trace_dict, trace_text

DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_LAB = DATA / "myk8s"
BACKENDS = ("sim", "netns", "kind")


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
        backend = backend or os.environ.get("KSLAB_BACKEND") or "sim"
        if backend not in BACKENDS:
            raise InputError("backend", f"{backend!r} is not a kslab backend", "use sim, netns or kind")
        if backend != "sim":
            raise EnvironmentProblem(f"the {backend} backend is not built yet; use backend='sim' (or unset KSLAB_BACKEND)")
        self.backend = backend
        self.seed = seed
        paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests or [DEFAULT_LAB])
        self.cluster: ClusterState = load_cluster(paths, seed=seed)
        self.control = ControlPlane.of(self.cluster, seed)
        self.proxy_options = dict(proxy or {})
        self._rules: dict[str, RuleSet] = {}
        self._network: Network | None = None
        self._sync()

    # ---- rules ---------------------------------------------------------------------------------
    def proxy_config(self, node: str) -> ProxyConfig:
        return ProxyConfig.for_node(self.cluster, node, **self.proxy_options)

    def render(self, node: str) -> RuleSet:
        """The ruleset kube-proxy programs on ``node`` (see :class:`kslab.proxy.iptables.RuleSet`)."""
        self.cluster.node(node)
        return self._rules[node]

    def _sync(self) -> None:
        """kube-proxy's sync on every node, then the dataplane reloads the rules."""
        self._rules = {n.name: render(self.cluster.services, self.cluster.endpoint_slices, self.proxy_config(n.name))
                       for n in self.cluster.nodes}
        texts = {name: rs.save_text() for name, rs in self._rules.items()}
        if self._network is None:
            self._network = Network(self.cluster, texts, seed=self.seed)
        else:
            self._network.update_pods(self.cluster)
            self._network.update_rules(texts)

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

    def patch_service(self, name: str, namespace: str = "default", **spec) -> None:
        self.control.patch_service(name, namespace, **spec)
        self._sync()

    def set_proxy(self, **options) -> None:
        """Change kube-proxy's configuration on every node (``masquerade_all=True`` ...)."""
        self.proxy_options.update(options)
        self._sync()

    def advance(self, seconds: float) -> None:
        self.network.advance(seconds)

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

    def trace(self, src: str, to: str) -> Trace:
        dst, port, proto = self.destination(to)
        return Trace(self.network.connect(src, dst, port, proto, trace=True))

    def run(
        self,
        src: str | Iterable[str],
        to: str,
        n: int = 1000,
        *,
        seed: int | None = None,
        interval: float = 0.001,
    ) -> pd.DataFrame:
        """Open ``n`` connections from ``src`` (a client or a list of clients, used in turn) to ``to``.

        ``interval`` advances the simulated clock between connections. Equal seeds repeat exactly.
        """
        if n < 0:
            raise InputError("n", f"{n} is negative", "open 0 or more connections")
        clients = [src] if isinstance(src, str) else list(src)
        if not clients:
            raise InputError("src", "no clients given", "name a pod, a node, mypc or an IP")
        dst, port, proto = self.destination(to)
        net = self.network
        if seed is not None:
            net.reseed(seed)
        resolved = [net.client(c) for c in clients]
        rows = []
        for i in range(n):
            c = resolved[i % len(resolved)]
            conn = net.connect(c, dst, port, proto, trace=False)
            rows.append(experiments.connection_row(i, conn, self.backend, net.now))
            if interval:
                net.advance(interval)
        return experiments.frame(rows)
