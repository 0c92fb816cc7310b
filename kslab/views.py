"""Widget panels: a thin layer over pure functions.

Each panel builds its widgets and one plotly ``FigureWidget`` once, and its callbacks call a pure
``compute`` function and update the figure's traces in place (no ``clear_output``). Callbacks
are plain methods, so tests drive a panel by setting widget values in an ordinary Python
process, without a kernel or a browser.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from . import charts, experiments
from .livefigure import LiveFigure
from .lab import Lab
from .loadbalancer import LB_SETTLE_S, LBState


SITE_VARIABLE = "KSLAB_SITE"  # set by `kslab site`: the panels also show a static chart (kslab/site.py)


def display_panel(widget: Any, *figures: go.Figure) -> None:
    """Show a panel's widget; when the chapter runs for the static site (``KSLAB_SITE=1``, set by
    ``kslab site``), also each of its figures as a plain plotly figure of the panel's default
    setting: a page without a kernel draws no widget, but it draws that chart. In JupyterLab
    (the variable unset) only the widget is shown."""
    from IPython.display import display

    display(widget)
    if os.environ.get(SITE_VARIABLE) == "1":
        for figure in figures:
            display(go.Figure(figure))


@dataclass(frozen=True)
class DistributionResult:
    replicas: int
    connections: int
    df: pd.DataFrame
    pods: list[str]
    shares: pd.Series
    chi2: float
    p_value: float


def compute_distribution(lab: Lab, replicas: int, connections: int, *, deployment: str = "deploy-echo",
                         src: str = "net-pod", to: str = "svc-nodeport", seed: int = 1) -> DistributionResult:
    """Scale ``deployment`` to ``replicas``, open ``connections`` connections, summarise (pure in
    the sense that equal inputs give equal results: the run is seeded)."""
    current = sum(1 for p in lab.cluster.pods if p.owner == f"Deployment/{deployment}")
    if current != replicas:
        lab.scale(deployment, replicas)
    df = lab.run(src, to, n=connections, seed=seed, interval=0)
    pods = sorted(p.name for p in lab.cluster.pods if p.owner == f"Deployment/{deployment}")
    shares = experiments.shares(df, categories=pods)
    chi2, p = experiments.chi_square_uniform(df, categories=pods)
    return DistributionResult(replicas, connections, df, pods, shares, chi2, p)


class DistributionPanel:
    """Replica and connection sliders over a bar chart of where connections land."""

    def __init__(self, lab: Lab, *, deployment: str = "deploy-echo", src: str = "net-pod", to: str = "svc-nodeport",
                 replicas: int = 3, connections: int = 3000, seed: int = 1) -> None:
        import ipywidgets as w

        self.lab, self.deployment, self.src, self.to, self.seed = lab, deployment, src, to, seed
        self.replicas = w.IntSlider(value=replicas, min=1, max=10, description="replicas", continuous_update=False)
        self.connections = w.IntSlider(value=connections, min=100, max=10000, step=100, description="connections",
                                       continuous_update=False)
        self.summary = w.HTML()
        self.figure = LiveFigure(go.Figure(
            go.Bar(x=[], y=[], textposition="outside", cliponaxis=False, hovertemplate="%{customdata}: %{y:.2%}<extra></extra>"),
            layout=dict(template="plotly_white", height=380, xaxis_title="endpoint pod", yaxis_title="share of connections",
                        yaxis_tickformat=".0%", margin=charts.DISTRIBUTION_MARGIN)))
        self.result: DistributionResult | None = None
        self.replicas.observe(self._on_change, names="value")
        self.connections.observe(self._on_change, names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.replicas, self.connections]), self.figure, self.summary])

    def _on_change(self, _change=None) -> None:
        self.update()

    def update(self) -> DistributionResult:
        r = compute_distribution(self.lab, self.replicas.value, self.connections.value, deployment=self.deployment,
                                 src=self.src, to=self.to, seed=self.seed)
        d = charts.distribution_data(r.df, categories=r.pods)
        title = f"{r.connections} connections {self.src} -> {self.to}, {r.replicas} replicas ({self.lab.backend} backend)"
        layout = self.figure.layout
        with self.figure.batch_update():
            bar = self.figure.data[0]
            bar.x, bar.customdata, bar.y, bar.text, bar.marker.color = d["labels"], d["x"], d["y"], d["text"], d["colors"]
            if not layout.shapes or layout.shapes[0].y0 != d["uniform"]:  # the uniform line moves with the replicas
                layout.shapes, layout.annotations = charts.uniform_marks(d)
            layout.title.text = title
            layout.xaxis.title.text = d["axis_title"]
            layout.yaxis.range = [0, d["ymax"]]
        verdict = ("no evidence against an even split" if r.p_value > 0.01
                   else "evidence against an even split (p ≤ 0.01)")
        self.summary.value = (f"each pod should get 1/{r.replicas} = {1 / r.replicas:.1%}; observed "
                              f"{r.shares.min():.1%}–{r.shares.max():.1%}; chi-square {r.chi2:.2f}, p = {r.p_value:.3f}: "
                              f"{verdict}")
        self.result = r
        return r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.figure)


AFFINITY_MAX_CLIENTS = 250  # addresses of one node's /24 pod CIDR the clients can take


def affinity_clients(lab: Lab, n: int, node: str = "myk8s-worker") -> list[str]:
    """``n`` pod-like client addresses on ``node`` (its pod CIDR from the top down, skipping its
    pods and its gateway): clients whose connections all meet the same node's xt_recent lists."""
    import ipaddress

    cidr = ipaddress.ip_network(next(x for x in lab.cluster.nodes if x.name == node).pod_cidr)
    taken = {p.pod_ip for p in lab.cluster.pods if p.pod_ip} | {str(cidr.network_address + 1)}
    free = [str(a) for a in reversed(list(cidr.hosts())) if str(a) not in taken]
    if not 1 <= n <= min(len(free), AFFINITY_MAX_CLIENTS):
        from .errors import InputError

        raise InputError("clients", f"{n} is out of range", f"use 1-{min(len(free), AFFINITY_MAX_CLIENTS)} (one node's pod CIDR)")
    return free[:n]


@dataclass(frozen=True)
class AffinityResult:
    """Clients reconnecting in rounds to a Service, with or without ClientIP affinity.

    ``rows``: one row per connection (:data:`kslab.dataplane.rows.COLUMNS` plus ``round``);
    ``kept``: clients whose every round reached the pod of their first round; ``lists``: each
    xt_recent list of the Service on the clients' node after the run (named by its ``--rcheck``
    rules) and how many addresses it holds, read with the study's ``cat /proc/net/xt_recent/...``."""

    affinity: bool
    clients: tuple[str, ...]
    rounds: int
    timeout: int | None
    pause: float
    endpoints: tuple[str, ...]
    rows: pd.DataFrame
    kept: int
    lists: dict[str, int]
    node: str
    backend: str

    @property
    def kept_share(self) -> float:
        return self.kept / len(self.clients)


def compute_affinity(lab: Lab, affinity: bool, clients: int, *, rounds: int = 4, timeout: int = 10800, pause: float = 10.0,
                     endpoints: int | None = None, to: str = "svc-clusterip", node: str = "myk8s-worker",
                     seed: int = 1) -> AffinityResult:
    """On a simulated copy of ``lab`` (``lab.copy()``: the learner's lab is not changed, and a
    pause costs no real time): ``to`` with or without ``sessionAffinity: ClientIP`` and
    ``timeoutSeconds`` = ``timeout``, only its first ``endpoints`` pods ready (all if None);
    ``clients`` addresses on ``node`` connect once each, in the same order, ``rounds`` times,
    ``pause`` seconds apart. The copy starts with empty conntrack and xt_recent lists."""
    if rounds < 1 or pause < 0 or (affinity and not 1 <= timeout <= 86400):
        from .errors import InputError

        raise InputError("rounds/pause/timeout", f"rounds={rounds}, pause={pause}, timeout={timeout}",
                         "use rounds >= 1, pause >= 0 and 1 <= timeout <= 86400 (the API server's range)")
    twin = lab.copy()
    svc = twin.cluster.service(to)
    spec = {"session_affinity": "ClientIP" if affinity else "None", "session_affinity_timeout": timeout if affinity else None}
    if (svc.session_affinity, svc.session_affinity_timeout) != tuple(spec.values()):  # else kube-proxy would sync nothing
        twin.patch_service(to, **spec)
    backing = sorted({e.target_pod for sl in twin.cluster.slices_for(svc) for e in sl.endpoints
                      if e.target_pod and e.ready is not False})
    keep = backing if endpoints is None else backing[:max(endpoints, 1)]
    for pod in backing[len(keep):]:
        twin.set_ready(pod, False)
    twin.clear_kernel_state()
    ips = affinity_clients(twin, clients, node)
    frames = []
    for r in range(rounds):
        if r:
            twin.advance(pause)
        df = twin.run(ips, to, n=len(ips), seed=seed * 1000 + r, interval=0)
        frames.append(df.assign(round=r + 1))
    rows = pd.concat(frames, ignore_index=True)
    reached: dict[str, set] = {}  # client -> the pods it reached (None: a failed connection)
    for ip, pod in zip(rows["client_ip"], rows["endpoint_pod"]):
        reached.setdefault(ip, set()).add(pod if isinstance(pod, str) else None)
    kept = sum(1 for pods in reached.values() if len(pods) == 1 and None not in pods)
    mine = twin.sh(node, f"iptables -t nat -S | grep -- --rcheck | grep -F '\"{svc.namespace}/{svc.name}:'")
    names = sorted({line.split("--name ")[1].split()[0] for line in mine.splitlines()})  # this Service's lists only
    lists = {n: len(str(twin.sh(node, f"cat /proc/net/xt_recent/{n}")).splitlines()) for n in names}
    return AffinityResult(affinity, tuple(ips), rounds, timeout if affinity else None, pause, tuple(keep), rows, kept, lists,
                          node, twin.backend)


class AffinityPanel:
    """What a static chart cannot show about ClientIP affinity: a ``timeoutSeconds`` slider
    against the pause between a client's connections, and up to 250 clients on one node, past
    the 100 addresses an xt_recent list holds (``ip_list_tot``). A heatmap shows which pod each
    client reached in each round; the summary counts who kept their pod and how full the lists are.
    Every change reruns :func:`compute_affinity` on a fresh simulated copy of the lab."""

    def __init__(self, lab: Lab, *, clients: int = 8, timeout: int = 30, pause: float = 10.0, rounds: int = 3,
                 endpoints: int = 3, affinity: str = "ClientIP", to: str = "svc-clusterip", seed: int = 1) -> None:
        import ipywidgets as w

        self.lab, self.rounds, self.to, self.seed = lab, rounds, to, seed
        style = {"description_width": "initial"}
        self.affinity = w.ToggleButtons(options=["None", "ClientIP"], value=affinity, description="affinity")
        self.clients = w.IntSlider(value=clients, min=1, max=AFFINITY_MAX_CLIENTS, description="clients",
                                   continuous_update=False)
        self.timeout = w.IntSlider(value=timeout, min=1, max=120, description="timeoutSeconds", style=style,
                                   continuous_update=False)
        self.pause = w.IntSlider(value=int(pause), min=0, max=120, description="pause between rounds (s)", style=style,
                                 continuous_update=False)
        self.endpoints = w.IntSlider(value=endpoints, min=1, max=3, description="ready endpoints", style=style,
                                     continuous_update=False)
        self.summary = w.HTML()
        self.figure = LiveFigure(go.Figure(go.Heatmap(z=[], ygap=2,
                                                           hovertemplate="%{text}<extra></extra>"),
                                                layout=charts.AFFINITY_ROUNDS_LAYOUT))
        self.result: AffinityResult | None = None
        for control in (self.affinity, self.clients, self.timeout, self.pause, self.endpoints):
            control.observe(lambda _c: self.update(), names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.affinity, self.clients]), w.HBox([self.timeout, self.pause]), self.endpoints,
                              self.figure, self.summary])

    @property
    def df(self) -> pd.DataFrame | None:
        """The last run's rows."""
        return self.result.rows if self.result is not None else None

    def update(self) -> AffinityResult:
        r = compute_affinity(self.lab, self.affinity.value == "ClientIP", self.clients.value, rounds=self.rounds,
                             timeout=self.timeout.value, pause=self.pause.value, endpoints=self.endpoints.value,
                             to=self.to, seed=self.seed)
        d = charts.affinity_rounds_data(r)
        with self.figure.batch_update():
            hm = self.figure.data[0]
            hm.z, hm.x, hm.y, hm.text, hm.xgap = d["z"], d["x"], d["y"], d["text"], d["xgap"]
            hm.colorscale, hm.zmin, hm.zmax, hm.colorbar = d["colorscale"], d["zmin"], d["zmax"], d["colorbar"]
            self.figure.layout.title.text = d["title"]
        self.summary.value = charts.affinity_summary(r)
        self.result = r
        return r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.figure)


def _cross_node_step(twin: Lab, clients: tuple[str, ...], replicas: int, *, n: int, seed: int,
                     deployment: str, to: str) -> dict[str, dict]:
    """compute_cross_node's measurement on ``twin`` itself (a copy the caller owns: it is scaled)."""
    if sum(1 for p in twin.cluster.pods if p.owner == f"Deployment/{deployment}") != replicas:
        twin.scale(deployment, replicas)
    df = twin.run(list(clients), to, n=n * len(clients), seed=seed, interval=0)
    pods = [p for p in twin.cluster.pods if p.owner == f"Deployment/{deployment}"]
    out = {}
    for client in clients:
        who = twin.client(client)
        node = who.node
        local = sum(1 for p in pods if p.node_name == node)
        mine = df[df["client"] == who.name]
        out[client] = {"replicas": replicas, "client_node": node, "local_pods": local, "expected": 1 - local / len(pods),
                       "observed": experiments.cross_node_share(mine)}
    return out


def compute_cross_node(lab: Lab, clients: tuple[str, ...], replicas: int, *, n: int = 1500, seed: int = 1,
                       deployment: str = "deploy-echo", to: str = "svc-nodeport") -> dict[str, dict]:
    """On a simulated copy of ``lab`` (``lab.copy()``: the learner's lab is not changed), with
    ``deployment`` scaled to ``replicas`` pods: for each of ``clients``, the share of its ``n``
    connections whose endpoint runs on another node. One run opens every client's connections
    (the clients in turn), so all clients see the same placement."""
    return _cross_node_step(lab.copy(), tuple(clients), replicas, n=n, seed=seed, deployment=deployment, to=to)


class CrossNodePanel:
    """Client and replicas controls over the share of connections that cross to another node.

    The panel works on a simulated copy of the lab (``lab.copy()``), never on the lab itself. On
    that copy it grows ``deploy-echo`` one replica at a time from 1 to the slider's maximum
    (kube-proxy re-syncs at each step) and measures every client at every step, so all clients
    are compared on the same placements and moving a control only redraws (choosing another
    client, or "up to", shows that part of the growth). If the lab changed meanwhile (another
    cell scaled, patched or broke something), the next change copies it again and grows anew.
    """

    def __init__(self, lab: Lab, *, clients: tuple[str, ...] = ("webpod1", "webpod2", "webpod3", "net-pod"),
                 max_replicas: int = 10, seed: int = 1) -> None:
        import ipywidgets as w

        self.lab, self.seed, self.clients = lab, seed, tuple(clients)
        self.client = w.Dropdown(options=list(clients), value=clients[0], description="client")
        self.max_replicas = w.IntSlider(value=max_replicas, min=2, max=12, description="up to", continuous_update=False)
        self.figure = LiveFigure(
            [go.Scatter(x=[], y=[], mode="lines+markers", name="observed"),
             go.Scatter(x=[], y=[], mode="lines", line_dash="dot", name="1 − local pods / replicas")],
            layout=dict(xaxis_title="deploy-echo replicas", yaxis_title="cross-node share", yaxis_tickformat=".0%",
                        yaxis_range=[0, 1.05], template="plotly_white", height=360))
        self.rows: list[dict] = []
        self.growth: list[dict[str, dict]] = []  # step r-1: client -> compute_cross_node row with r replicas
        self._copied_at: int | None = None  # lab.generation when the copy was made (every sync, hand edit, broken pod)
        self.client.observe(lambda _c: self.update(), names="value")
        self.max_replicas.observe(lambda _c: self.update(), names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.client, self.max_replicas]), self.figure])

    def update(self) -> list[dict]:
        if self.lab.generation != self._copied_at:  # first time, or the lab changed since the copy
            twin, self._copied_at = self.lab.copy(), self.lab.generation
            self.growth = [_cross_node_step(twin, self.clients, r, n=1500, seed=self.seed, deployment="deploy-echo",
                                            to="svc-nodeport") for r in range(1, self.max_replicas.max + 1)]
        self.rows = [step[self.client.value] for step in self.growth[:self.max_replicas.value]]
        x = [r["replicas"] for r in self.rows]
        observed, expected = self.figure.data
        with self.figure.batch_update():
            observed.x, observed.y = x, [r["observed"] for r in self.rows]
            expected.x, expected.y = x, [r["expected"] for r in self.rows]
            self.figure.layout.title.text = (f"Connections from {self.client.value} that leave its node "
                                             f"({self.rows[0]['client_node']}), on a sim copy of the lab")
        return self.rows

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.figure)


@dataclass(frozen=True)
class SchedulerResult:
    scheduler: str
    rate: float
    df: pd.DataFrame
    matrix: pd.DataFrame  # clients x servers
    shares: dict
    endpoints_per_client: float
    variance: float


def compute_scheduler(name: str, rate: float, *, servers=None, clients=None, n: int = 3000, seed: int = 1,
                      duration: float = 2.0, persistence: float | None = None) -> SchedulerResult:
    """One IPVS scheduler (or iptables' random ladder) on the chapter's workload, with kube-proxy's
    real servers (weight 1 each) and scheduler flags unless told otherwise; ``persistence`` is the
    ClientIP affinity timeout in seconds (IPVS persistence), None for no affinity."""
    from . import ipvs

    servers = servers or default_servers()
    clients = clients or default_clients()
    df = ipvs.simulate(name, servers, clients, n, seed=seed, duration=duration, rate=rate, persistence=persistence)
    return SchedulerResult(name, rate, df, ipvs.client_matrix(df), ipvs.spread(df),
                           float(ipvs.per_client_endpoints(df).mean()), ipvs.active_variance(df))


def default_servers():
    """The chapter's real servers as kube-proxy programs them: webpod1..3, weight 1 each
    (Kubernetes has no per-endpoint weight)."""
    from . import ipvs

    return [ipvs.RealServer.endpoint(f"webpod{i}", f"10.10.{i}.2") for i in (1, 2, 3)]


def default_clients() -> list[str]:
    return [f"10.10.0.{10 + i}" for i in range(12)]


class SchedulerPanel:
    """A scheduler dropdown, a load slider and a sessionAffinity toggle over a clients x servers
    heatmap. ``ClientIP`` affinity is what kube-proxy's IPVS mode makes of it: IPVS persistence
    with the affinity's default timeout (``ipvsadm -p 10800``), on top of whichever scheduler."""

    def __init__(self, *, scheduler: str = "iptables", rate: float = 2.0, n: int = 3000, seed: int = 1,
                 affinity: str = "None") -> None:
        import ipywidgets as w

        from . import ipvs

        self.n, self.seed = n, seed
        self.scheduler = w.Dropdown(options=list(ipvs.SCHEDULERS), value=scheduler, description="scheduler")
        self.rate = w.FloatLogSlider(value=rate, base=10, min=-0.5, max=1.7, step=0.1, description="conn/s",
                                     continuous_update=False)
        self.affinity = w.ToggleButtons(options=["None", "ClientIP"], value=affinity, description="affinity",
                                        tooltips=["no sessionAffinity", "sessionAffinity: ClientIP = IPVS persistence (-p 10800)"])
        self.summary = w.HTML()
        self.figure = LiveFigure(go.Figure(go.Heatmap(z=[[0]], colorscale="Blues"), layout=dict(
            xaxis_title="real server (weight 1 each, as kube-proxy sets it)", yaxis_title="client", height=420, template="plotly_white")))
        self.result: SchedulerResult | None = None
        self.scheduler.observe(lambda _c: self.update(), names="value")
        self.rate.observe(lambda _c: self.update(), names="value")
        self.affinity.observe(lambda _c: self.update(), names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.scheduler, self.rate]), self.affinity, self.figure, self.summary])

    def update(self) -> SchedulerResult:
        from . import ipvs

        persistence = ipvs.DEFAULT_AFFINITY_TIMEOUT if self.affinity.value == "ClientIP" else None
        r = compute_scheduler(self.scheduler.value, float(self.rate.value), n=self.n, seed=self.seed, persistence=persistence)
        self.result = r
        m = r.matrix
        with self.figure.batch_update():
            heat = self.figure.data[0]
            heat.z = m.to_numpy().tolist()
            heat.x = list(m.columns)
            heat.y = list(m.index)
            how = "xt_recent list, chapter 02" if r.scheduler == "iptables" else "persistence"
            sticky = f", ClientIP affinity ({how} {persistence} s)" if persistence else ""
            self.figure.layout.title.text = f"Connections per client and server: {r.scheduler} at {r.rate:.1f} new connections/s{sticky}"
        shares = ", ".join(f"{k} {v:.0%}" for k, v in r.shares.items())
        self.summary.value = (f"<b>{r.scheduler}</b>{sticky}: {shares}; {r.endpoints_per_client:.1f} servers per client; "
                              f"active-count variance {r.variance:.2f} (how unevenly the servers' open connections "
                              "spread around their mean, averaged over arrivals; 0 = always even)")
        return r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.figure)


# ---- chapter 03: hairpin NAT -------------------------------------------------------------------------

HAIRPIN_COLUMNS = ["client", "client_node", "hairpin_rule", "connections", "ok", "success_share", "to_itself", "backend"]


def compute_hairpin(lab: Lab, to: str = "svc-clusterip", clients=None, *, nodes=None, n: int = 300,
                    seed: int = 1) -> pd.DataFrame:
    """The share of each client's connections to ``to`` that succeed with and without kube-proxy's
    hairpin rule (``-s POD_IP -j KUBE-MARK-MASQ``, the first rule of every ``KUBE-SEP`` chain).

    One row per client and case (columns :data:`HAIRPIN_COLUMNS`; ``hairpin_rule`` is ``"with"``
    or ``"without"``, ``to_itself`` the share of the client's connections whose endpoint was the
    client itself). ``clients`` defaults to every pod of the lab.

    Pure: it runs on two copies of ``lab`` (:meth:`Lab.copy`, the simulator), never on ``lab``.
    Both copies first get kube-proxy's own rules back (a full sync, so a hand edit made in ``lab``
    does not leak into the "with" case); the "without" copy then loses the hairpin rules on
    ``nodes`` (default: every node), as ``lab.delete_rules(HAIRPIN_RULES)`` does. Each copy runs
    the same seeded traffic: the clients in turn, ``n`` connections each."""
    from .errors import InputError
    from .lab import hairpin_rules

    if n < 1:
        raise InputError("n", f"{n} connections per client", "give at least 1")
    names = [p.name for p in lab.cluster.pods] if clients is None else ([clients] if isinstance(clients, str) else list(clients))
    if not names:
        raise InputError("clients", "no clients given", "name pods (or nodes, mypc, IPs), or leave clients=None for every pod")
    who = {c: lab.client(c) for c in names}  # unknown names fail here, before any traffic
    lab.destination(to)
    rows = []
    for case in ("with", "without"):
        twin = lab.copy()
        twin.resync(full=True)
        if case == "without":
            twin.delete_rules(hairpin_rules(twin.proxy_mode), nodes=nodes)
        df = twin.run(names, to, n=n * len(names), seed=seed, interval=0.001, timeout=0.2)
        for c in names:
            mine = df[df["client"] == who[c].name]
            ok = int((mine["outcome"] == "ok").sum())
            rows.append({"client": who[c].name, "client_node": who[c].node, "hairpin_rule": case,
                         "connections": len(mine), "ok": ok, "success_share": ok / len(mine) if len(mine) else float("nan"),
                         "to_itself": float((mine["endpoint_pod"] == who[c].name).mean()) if len(mine) else float("nan"),
                         "backend": twin.backend})
    return pd.DataFrame(rows, columns=HAIRPIN_COLUMNS)


# ---- chapter 07: externalTrafficPolicy and the load balancer -----------------------------------------

TRAFFIC_POLICIES = ("Cluster", "Local")
LB_ENTRY = "lb"  # compute_traffic_policy's entry for the LoadBalancer's VIP


@dataclass(frozen=True)
class TrafficPolicyResult:
    """Connections from outside (``mypc``) to the echo pods under one externalTrafficPolicy, one
    placement of the pods and one entry (a node's nodePort, or the load balancer's VIP).

    ``df``: one row per connection (:data:`kslab.dataplane.rows.COLUMNS`); ``per_node``: per
    ingress node (every node of the lab, then :data:`kslab.experiments.NO_NODE` if the LB had no
    healthy node) the connections ``ok`` (answered) and ``dropped`` (not answered); ``per_pod``:
    each pod of the deployment -> its share of the answered connections; ``seen_ips``: pod -> the
    client addresses it saw; ``dropped_share``: the share of all connections not answered;
    ``lb``: the load balancer's probes and healthy nodes when ``entry`` is the LB, else None.
    ``pods``: pod -> node; ``expected``: pod -> the share a per-node split predicts (the LB
    or the entry node spreads evenly over its choices, then over the pods the policy allows);
    ``addresses``: the client addresses a pod may see, named."""

    df: pd.DataFrame
    per_node: pd.DataFrame
    per_pod: pd.Series
    seen_ips: dict[str, list[str]]
    dropped_share: float
    lb: LBState | None
    policy: str = "Cluster"
    placement: dict[str, int] = field(default_factory=dict)
    entry: str = ""
    connections: int = 0
    service: str = ""
    nodes: tuple[str, ...] = ()
    pods: dict[str, str] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    backend: str = "sim"


def expected_pod_shares(policy: str, pods: Mapping[str, str], entry_nodes: list[str]) -> dict[str, float]:
    """Each pod's share of the answered connections when the connections are spread evenly over
    ``entry_nodes`` (one node: a nodePort; the load balancer's healthy nodes) and each node then
    spreads its share evenly over every pod (``Cluster``) or over its own pods (``Local``, a node
    without one answers nothing). ``pods``: pod -> node."""
    if policy == "Cluster":
        return {p: (1 / len(pods) if entry_nodes else 0.0) for p in pods}
    local = {n: [p for p, at in pods.items() if at == n] for n in entry_nodes}
    serving = [n for n in entry_nodes if local[n]]
    out = {p: 0.0 for p in pods}
    for n in serving:
        for p in local[n]:
            out[p] = 1 / len(serving) / len(local[n])
    return out


def _lb_service(lab: Lab, name: str):
    svc = next((s for s in lab.cluster.services if s.name == name and s.type == "LoadBalancer"
                and any(i.ip for i in s.load_balancer_ingress)), None)
    return svc


def _deployment_selector(lab: Lab, deployment: str) -> str:
    """``deployment``'s ``spec.selector.matchLabels`` as a label selector (``app=deploy-websrv``),
    for :meth:`Lab.pods_per_node`; an unknown Deployment is a one-line InputError."""
    from .errors import InputError

    dep = next((d for d in lab.cluster.deployments if d.name == deployment and d.namespace == "default"), None)
    if dep is None:
        names = ", ".join(d.name for d in lab.cluster.deployments) or "none"
        raise InputError("deployment", f"{deployment!r}: no such Deployment in namespace default", f"deployments are: {names}")
    return ",".join(f"{k}={v}" for k, v in sorted(dep.selector.items()))


def _check_policy(policy: object) -> None:
    from .errors import InputError

    if not isinstance(policy, str) or policy not in TRAFFIC_POLICIES:
        raise InputError("policy", f"{policy!r} is no externalTrafficPolicy", "use Cluster or Local")


def _check_placement(placement: object, nodes: list[str]) -> None:
    """``placement`` is a mapping node -> pods (a whole number, 0 or more) over ``nodes``, or a
    one-line InputError naming the entry that is not."""
    from .errors import InputError

    if not isinstance(placement, Mapping):
        raise InputError("placement", f"{placement!r} is not a mapping of node -> pods",
                         f'give e.g. {{"{nodes[-1]}": 2}} (a node left out keeps no pod)')
    for node, count in placement.items():
        if node not in nodes:
            raise InputError(f"placement[{node!r}]", "no such node", f"nodes are: {', '.join(nodes)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InputError(f"placement[{node!r}]", f"{count!r} pods", "give a whole number, 0 or more")


def compute_traffic_policy(lab: Lab, policy: str, placement: Mapping[str, int], entry: str, connections: int, *,
                           seed: int = 1, service: str = "svc-nodeport", lb_service: str = "svc-lb",
                           deployment: str = "deploy-echo", client: str = "mypc") -> TrafficPolicyResult:
    """``connections`` connections from ``client`` (outside the cluster) under
    ``externalTrafficPolicy: policy`` with ``deployment``'s pods placed ``placement`` (node ->
    pods; a node left out keeps none), entering at ``entry``: a node's name (its nodePort of
    ``service``) or ``"lb"`` (the VIP and port of the LoadBalancer Service ``lb_service``, whose
    policy is then the one set; the load balancer gets :data:`LB_SETTLE_S` seconds to probe).

    Pure: it runs on a simulated copy of ``lab`` (:meth:`Lab.copy`), never on ``lab``, and is
    seeded. Bad input is a one-line InputError before anything runs."""
    from .errors import InputError

    _check_policy(policy)
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 1:
        raise InputError("connections", f"{connections!r}", "open at least 1 connection")
    nodes = [n.name for n in lab.cluster.nodes]
    _check_placement(placement, nodes)
    if entry == LB_ENTRY:
        target = _lb_service(lab, lb_service)
        if target is None:
            raise InputError("entry", f"'lb': the lab has no LoadBalancer Service {lb_service!r} with an ingress IP",
                             "apply data/myk8s/loadbalancer first, or enter at a node")
        name = lb_service
    elif entry in nodes:
        lab.destination(f"{entry}:{service}")  # a Service with one nodePort, or a one-line InputError
        name = service
    else:
        raise InputError("entry", f"{entry!r} is neither a node nor 'lb'", f"use one of: {', '.join(nodes)}, lb")

    twin = lab.copy()
    svc = twin.cluster.service(name)
    if (svc.external_traffic_policy or "Cluster") != policy:  # the API server releases or allocates the HCNP
        twin.patch_service(name, external_traffic_policy=policy)
    selector = _deployment_selector(twin, deployment)
    now = {n: len(ps) for n, ps in twin.pods_per_node(selector).items() if ps}
    want = {**{n: 0 for n in now}, **dict(placement)}
    if {n: c for n, c in want.items() if c} != now:
        twin.place(deployment, want)
    lb = None
    if entry == LB_ENTRY:
        twin.advance(LB_SETTLE_S)
        lb = twin.lb_status(name)
        svc = twin.cluster.service(name)
        dst = f"{svc.load_balancer_ingress[0].ip}:{svc.ports[0].port}"
    else:
        dst = f"{entry}:{service}"
    df = twin.run(client, dst, n=connections, seed=seed, interval=0)

    pods = dict(sorted((p, n) for n, ps in twin.pods_per_node(selector).items() for p in ps))  # pod -> node, by name
    entry_nodes = list(lb.healthy) if lb is not None else [entry]
    addresses = {twin.client(client).ip: f"{client}, the client: its address kept"}
    for n in twin.cluster.nodes:
        addresses[n.internal_ip] = f"{n.name}'s IP: SNAT"
        if n.pod_cidr:
            addresses[twin.pod_gateway(n.name)] = f"{n.name}'s pod gateway: SNAT by the pod's own node"
    return TrafficPolicyResult(
        df=df, per_node=experiments.per_ingress_node(df, nodes), per_pod=experiments.shares(df, categories=list(pods)),
        seen_ips=experiments.seen_ips(df), dropped_share=float((df["outcome"] != "ok").mean()) if len(df) else 0.0,
        lb=lb, policy=policy, placement=dict(placement), entry=entry, connections=connections, service=name,
        nodes=tuple(nodes), pods=pods, expected=expected_pod_shares(policy, pods, entry_nodes), addresses=addresses,
        backend=twin.backend)


class _ResultCache:
    """A panel's experiment results per control setting: the ``size`` most recently used, all
    dropped when the lab changes (its ``generation``: earlier results may be stale)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._results: OrderedDict[tuple, Any] = OrderedDict()
        self._generation: int | None = None

    def get(self, generation: int, key: tuple, make: Callable[[], Any]) -> Any:
        if generation != self._generation:
            self._results.clear()
            self._generation = generation
        r = self._results.get(key)
        if r is None:
            r = self._results[key] = make()
            if len(self._results) > self.size:
                self._results.popitem(last=False)
        else:
            self._results.move_to_end(key)
        return r

class TrafficPolicyPanel:
    """externalTrafficPolicy, where the echo pods run and where mypc enters, over two charts:
    connections answered and dropped per ingress node, and each pod's share (the per-node split
    marked), and a line naming the client address each pod saw.

    Controls: ``policy`` (ToggleButtons Cluster/Local), ``sliders`` (node -> IntSlider: pods on
    each worker, 0-3), ``entry`` (Dropdown: the nodes, and "load balancer" when the lab has the
    LoadBalancer Service). Every change runs :func:`compute_traffic_policy` on a fresh simulated
    copy of the lab (never the lab itself); results are kept per (policy, placement, entry) until
    the lab changes, so going back is a redraw. ``set(policy=..., placement=..., entry=...)``
    changes several controls with one update (tests drive the panel with it or the widgets)."""

    LB_LABEL = "load balancer"
    CACHE = 128  # results kept (a result is ~600 rows)

    def __init__(self, lab: Lab, *, policy: str = "Cluster", placement: Mapping[str, int] | None = None,
                 entry: str | None = None, connections: int = 600, service: str = "svc-nodeport",
                 lb_service: str = "svc-lb", deployment: str = "deploy-echo", max_pods: int = 3, seed: int = 1) -> None:
        import ipywidgets as w

        self.lab, self.connections, self.service, self.lb_service = lab, connections, service, lb_service
        self.deployment, self.seed = deployment, seed
        workers = [n.name for n in lab.cluster.nodes if not n.is_control_plane]
        entries = [n.name for n in lab.cluster.nodes] + ([self.LB_LABEL] if _lb_service(lab, lb_service) else [])
        self._check_controls(policy, placement, entry, [n.name for n in lab.cluster.nodes], workers, entries, None)
        per_node = lab.pods_per_node(_deployment_selector(lab, deployment))
        start = {**{n: len(per_node[n]) for n in workers}, **dict(placement or {})}
        style = {"description_width": "initial"}
        self.policy = w.ToggleButtons(options=list(TRAFFIC_POLICIES), value=policy, description="externalTrafficPolicy",
                                      style=style)
        self.sliders = {n: w.IntSlider(value=start[n], min=0, max=max(max_pods, start[n]), description=f"pods on {n}",
                                       style=style, continuous_update=False) for n in workers}
        first = entry if entry is not None else (self.LB_LABEL if self.LB_LABEL in entries else entries[0])
        self.entry = w.Dropdown(options=entries, value=self.LB_LABEL if first == LB_ENTRY else first,
                                description="mypc enters at", style=style)
        self.summary = w.HTML()
        self._cache = _ResultCache(self.CACHE)
        self._quiet = False
        r = self._compute()
        self.node_figure = LiveFigure(charts.policy_node_figure(r))
        self.pod_figure = LiveFigure(charts.policy_pod_figure(r))
        self.result: TrafficPolicyResult | None = None
        self._draw(r)
        for control in (self.policy, self.entry, *self.sliders.values()):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.policy, self.entry]), w.HBox(list(self.sliders.values())),
                              self.node_figure, self.pod_figure, self.summary])

    @property
    def placement(self) -> dict[str, int]:
        return {n: s.value for n, s in self.sliders.items()}

    def _check_controls(self, policy: str | None, placement: Mapping[str, int] | None, entry: str | None,
                        nodes: list[str], workers: list[str], entries: list[str], most: Mapping[str, int] | None) -> None:
        """What the controls can show, or a one-line InputError before any control changes:
        ``policy`` Cluster/Local, ``placement`` pods on workers (at most ``most[node]``, a
        slider's maximum), ``entry`` a node, ``"lb"`` or :attr:`LB_LABEL` when the lab has the
        LoadBalancer Service."""
        from .errors import InputError

        if policy is not None:
            _check_policy(policy)
        if placement is not None:
            _check_placement(placement, nodes)
            for node, count in placement.items():
                if node not in workers:
                    raise InputError(f"placement[{node!r}]", "the panel places pods on the workers only",
                                     f"workers are: {', '.join(workers)}")
                if most is not None and count > most[node]:
                    raise InputError(f"placement[{node!r}]", f"{count} pods is more than the slider's maximum {most[node]}",
                                     f"give 0-{most[node]}, or make the panel with max_pods={count}")
        if entry is not None:
            shown = self.LB_LABEL if entry == LB_ENTRY else entry
            if shown == self.LB_LABEL and shown not in entries:
                raise InputError("entry", f"{entry!r}: the lab has no LoadBalancer Service {self.lb_service!r} with an ingress IP",
                                 "apply data/myk8s/loadbalancer first, or enter at a node")
            if not isinstance(shown, str) or shown not in entries:
                raise InputError("entry", f"{entry!r} is neither a node nor 'lb'", f"use one of: {', '.join(nodes)}, lb")

    def _key(self) -> tuple:
        entry = LB_ENTRY if self.entry.value == self.LB_LABEL else self.entry.value
        return self.policy.value, tuple(sorted(self.placement.items())), entry

    def _compute(self) -> TrafficPolicyResult:
        policy, placement, entry = key = self._key()
        return self._cache.get(self.lab.generation, key, lambda: compute_traffic_policy(
            self.lab, policy, dict(placement), entry, self.connections, seed=self.seed,
            service=self.service, lb_service=self.lb_service, deployment=self.deployment))

    def _on_change(self, _change=None) -> None:
        if not self._quiet:
            self.update()

    def set(self, *, policy: str | None = None, placement: Mapping[str, int] | None = None,
            entry: str | None = None) -> TrafficPolicyResult:
        """Change any of the controls (``entry``: a node, ``"lb"`` or "load balancer") with one update.
        Checked first: a bad value is a one-line InputError and no control changes."""
        self._check_controls(policy, placement, entry, [n.name for n in self.lab.cluster.nodes], list(self.sliders),
                             list(self.entry.options), {n: s.max for n, s in self.sliders.items()})
        self._quiet = True
        try:
            if policy is not None:
                self.policy.value = policy
            for node, count in (placement or {}).items():
                self.sliders[node].value = count
            if entry is not None:
                self.entry.value = self.LB_LABEL if entry == LB_ENTRY else entry
        finally:
            self._quiet = False
        return self.update()

    def update(self) -> TrafficPolicyResult:
        r = self._compute()
        self._draw(r)
        return r

    def _draw(self, r: TrafficPolicyResult) -> None:
        d = charts.policy_bars_data(r)
        with self.node_figure.batch_update():
            ok, dropped = self.node_figure.data
            ok.x, ok.y = d["nodes"], d["ok"]
            dropped.x, dropped.y = d["nodes"], d["dropped"]
            self.node_figure.layout.title.text = d["node_title"]
        with self.pod_figure.batch_update():
            bars, marks = self.pod_figure.data
            bars.x, bars.y, bars.customdata, bars.text, bars.marker.color = (d["labels"], d["shares"], d["pods"], d["text"],
                                                                            d["colors"])
            marks.x, marks.y = d["labels"], d["expected"]
            self.pod_figure.layout.title.text = d["pod_title"]
            self.pod_figure.layout.yaxis.range = [0, d["ymax"]]
        self.summary.value = charts.seen_line(r)
        self.result = r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.node_figure, self.pod_figure)


# ---- chapter 09: topology aware routing -----------------------------------------------------------------

TOPOLOGY_MODES = ("off", "Auto", "PreferClose", "PreferSameZone", "PreferSameNode")
"""What :func:`compute_topology` can switch on for a Service: nothing, the annotation
``service.kubernetes.io/topology-mode: Auto`` (topology aware hints, proportional to each zone's
CPU), or ``spec.trafficDistribution`` (hints for the endpoint's own zone, or node, and nothing else)."""
ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"  # v1.AnnotationTopologyMode (1.27+)
ANNOTATION_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"  # v1.DeprecatedAnnotationTopologyAwareHints (1.23-1.26)
ZONE_CLIENTS = ("net-2a", "net-2b", "net-2c")  # data/myk8s/topology: one netshoot pod per zone
NO_ZONE = "(no zone)"


def topology_patch(svc, mode: str) -> dict:
    """The Service patch (``lab.patch_service`` keyword arguments) that switches ``svc`` to ``mode``
    (one of :data:`TOPOLOGY_MODES`), keeping its other annotations. ``Auto`` sets the current
    annotation and drops the old one (which would take precedence, see
    :func:`kslab.topology.hints_enabled`); a trafficDistribution mode drops both annotations."""
    from .errors import InputError

    if mode not in TOPOLOGY_MODES:
        raise InputError("mode", f"{mode!r} is not a topology mode", f"use one of: {', '.join(TOPOLOGY_MODES)}")
    annotations = {k: v for k, v in (svc.annotations or {}).items()
                   if k not in (ANNOTATION_TOPOLOGY_MODE, ANNOTATION_TOPOLOGY_HINTS)}
    if mode == "Auto":
        annotations[ANNOTATION_TOPOLOGY_MODE] = "Auto"
    return {"annotations": annotations, "traffic_distribution": mode if mode.startswith("Prefer") else None}


def hints_table(cluster, service: str, namespace: str = "default") -> pd.DataFrame:
    """One row per endpoint of ``service``'s EndpointSlices, as ``kubectl get endpointslices -o yaml``
    shows them: ``slice``, ``pod`` (targetRef), ``address``, ``node``, ``zone``, ``ready``,
    ``for_zones`` and ``for_nodes`` (the hints, comma-joined; "" when the endpoint has none)."""
    svc = cluster.service(service, namespace)
    rows = []
    for s in cluster.slices_for(svc):
        for e in s.endpoints:
            rows.append({"slice": s.name, "pod": e.target_pod or "", "address": e.addresses[0] if e.addresses else "",
                         "node": e.node_name or "", "zone": e.zone or "", "ready": e.ready is not False,
                         "for_zones": ",".join(e.hints_for_zones or []), "for_nodes": ",".join(e.hints_for_nodes or [])})
    return pd.DataFrame(rows, columns=["slice", "pod", "address", "node", "zone", "ready", "for_zones", "for_nodes"])


def with_zones(df: pd.DataFrame, cluster) -> pd.DataFrame:
    """``lab.run``'s rows with three columns more: ``client_zone`` (the zone of the client's node),
    ``endpoint_zone`` (the zone of the node of the pod that answered) and ``cross_zone`` (both known
    and different); a node without a zone label gives :data:`NO_ZONE`."""
    zone = {n.name: (n.zone or NO_ZONE) for n in cluster.nodes}
    out = df.copy()
    pods = {p.name: p.node_name for p in cluster.pods}
    node_of = {c: pods.get(c, c if c in zone else "") for c in out["client"].unique()}
    out["client_zone"] = [zone.get(node_of.get(c, ""), NO_ZONE) for c in out["client"]]
    out["endpoint_zone"] = [zone.get(n, NO_ZONE) if isinstance(n, str) and n else "" for n in out["endpoint_node"]]
    out["cross_zone"] = ((out["outcome"] == "ok") & (out["endpoint_zone"] != out["client_zone"])
                         & (out["client_zone"] != NO_ZONE) & (out["endpoint_zone"] != NO_ZONE))
    return out


def cross_zone_shares(df: pd.DataFrame) -> pd.Series:
    """Per client zone, the share of its answered connections that an endpoint in another zone
    answered (``df`` from :func:`with_zones`)."""
    ok = df[df["outcome"] == "ok"]
    return ok.groupby("client_zone")["cross_zone"].mean().astype(float).rename("cross_zone_share")


@dataclass(frozen=True)
class TopologyResult:
    """One experiment of chapter 09: where ``deployment``'s pods run (``placement``: worker -> pods),
    which zone each node is in (``zones``: node -> zone, "" = no label), which topology mode the
    Service uses, and what follows: the controller's ``hints`` (:func:`hints_table`), its
    ``events`` on the Service ((type, reason, message); ``said``: those the changes made it
    report, :func:`new_events`), the zones' CPU (``zone_cpu``: the zones of the
    nodes the controller counts, ready workers, in millicores), the ``allocations`` (per zone the
    minimum and maximum endpoints, ``kslab.topology.allocations_table``; empty when hints are
    off), and ``connections`` connections from each of ``clients``: ``df`` (rows of
    :func:`with_zones`), ``cross_zone`` (per client zone, the share answered in another zone) and
    ``matrix`` (client zone x endpoint zone: shares of the client zone's answered connections)."""

    df: pd.DataFrame
    hints: pd.DataFrame
    events: list[tuple[str, str, str]]
    cross_zone: pd.Series
    matrix: pd.DataFrame
    zone_cpu: dict[str, int]
    allocations: pd.DataFrame
    mode: str = "Auto"
    placement: dict[str, int] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)
    said: list[tuple[str, str, str]] = field(default_factory=list)
    service: str = "svc-zone"
    connections: int = 0
    backend: str = "sim"

    @property
    def hinted(self) -> bool:
        """Whether the controller wrote hints (every ready endpoint has a zone hint)."""
        ready = self.hints[self.hints["ready"]]
        return bool(len(ready)) and bool((ready["for_zones"] != "").all())

    @property
    def message(self) -> str:
        """What the controller said about this setting, "reason: message": the last event the
        changes made it report (``said``), else the Service's last event ("" if it has none)."""
        last = self.said[-1] if self.said else self.events[-1] if self.events else None
        return f"{last[1]}: {last[2]}" if last else ""


def _check_zones(zones: object, nodes: list[str]) -> None:
    from .errors import InputError

    if not isinstance(zones, Mapping):
        raise InputError("zones", f"{zones!r} is not a mapping of node -> zone", 'give e.g. {"myk8s-worker3": "ap-northeast-2b"}')
    for node, zone in zones.items():
        if node not in nodes:
            raise InputError(f"zones[{node!r}]", "no such node", f"nodes are: {', '.join(nodes)}")
        if not isinstance(zone, str):
            raise InputError(f"zones[{node!r}]", f"{zone!r} is not a zone name", 'give a string, e.g. "ap-northeast-2a" ("" = no label)')


def service_events(cluster, service: str, namespace: str = "default") -> list[tuple[str, str, str]]:
    """The Events on Service ``service`` (``kubectl describe svc`` shows them): (type, reason, message), oldest first."""
    evs = [e for e in cluster.events if e.involved_kind == "Service" and e.name == service and e.namespace == namespace]
    return [(e.type, e.reason, e.message) for e in sorted(evs, key=lambda e: e.at)]


def event_counts(cluster, service: str, namespace: str = "default") -> dict[tuple[str, str, str], int]:
    """How many times each (type, reason, message) was reported on Service ``service`` so far
    (an Event's ``count``: the API server folds a repeated event into one object)."""
    return {(e.type, e.reason, e.message): e.count for e in cluster.events
            if e.involved_kind == "Service" and e.name == service and e.namespace == namespace}


def new_events(cluster, service: str, before: Mapping[tuple[str, str, str], int],
               namespace: str = "default") -> list[tuple[str, str, str]]:
    """The (type, reason, message) reported on ``service`` since ``before`` (:func:`event_counts`
    taken earlier): those new or counted again. What the controller said about a change::

        seen = views.event_counts(lab.cluster, "svc-zone")
        lab.scale("deploy-zone", 4)
        views.new_events(lab.cluster, "svc-zone", seen)   # [("Warning", "TopologyAwareHintsDisabled", "...")]
    """
    return [k for k, n in event_counts(cluster, service, namespace).items() if n > before.get(k, 0)]


def zone_cpu(cluster) -> dict[str, int]:
    """Each zone's allocatable CPU (millicores) over the nodes the EndpointSlice controller counts:
    ready, not labelled control-plane, with a zone ("" collects the nodes without one)."""
    out: dict[str, int] = {}
    for n in cluster.nodes:
        if n.is_control_plane or not n.ready:
            continue
        out[n.zone or ""] = out.get(n.zone or "", 0) + n.allocatable_cpu
    return dict(sorted(out.items()))


def compute_topology(lab: Lab, mode: str, placement: Mapping[str, int] | None = None,
                     zones: Mapping[str, str] | None = None, connections: int = 300, *, seed: int = 1,
                     service: str = "svc-zone", deployment: str = "deploy-zone",
                     clients: tuple[str, ...] = ZONE_CLIENTS, cpu: Mapping[str, int] | None = None) -> TopologyResult:
    """The Service ``service`` switched to ``mode`` (:data:`TOPOLOGY_MODES`), ``deployment``'s pods
    placed ``placement`` (node -> pods; None = as they are), the nodes' zones changed to ``zones``
    (node -> zone, "" removes the label; None = as they are), the nodes' allocatable CPU set to
    ``cpu`` (node -> millicores, :meth:`Lab.set_allocatable_cpu`; None = as they are), then
    ``connections`` connections from each of ``clients`` (one client pod per zone: data/myk8s/topology).

    Pure: it runs on a simulated copy of ``lab`` (:meth:`Lab.copy`), never on ``lab``, and is
    seeded. Bad input is a one-line InputError before anything runs."""
    from .errors import InputError

    if mode not in TOPOLOGY_MODES:
        raise InputError("mode", f"{mode!r} is not a topology mode", f"use one of: {', '.join(TOPOLOGY_MODES)}")
    if not isinstance(connections, int) or isinstance(connections, bool) or connections < 1:
        raise InputError("connections", f"{connections!r}", "open at least 1 connection per client")
    nodes = [n.name for n in lab.cluster.nodes]
    if placement is not None:
        _check_placement(placement, nodes)
    if zones is not None:
        _check_zones(zones, nodes)
    if cpu is not None:
        from .controlplane import check_allocatable_cpu

        check_allocatable_cpu(lab.cluster, cpu)
    lab.cluster.service(service)  # a one-line InputError when the add-on is not applied
    for c in clients:
        lab.client(c)
    return run_topology(lab.copy(), mode, placement, zones, connections, seed=seed, service=service,
                        deployment=deployment, clients=clients, cpu=cpu)


def run_topology(twin: Lab, mode: str, placement: Mapping[str, int] | None = None,
                 zones: Mapping[str, str] | None = None, connections: int = 300, *, seed: int = 1,
                 service: str = "svc-zone", deployment: str = "deploy-zone",
                 clients: tuple[str, ...] = ZONE_CLIENTS, cpu: Mapping[str, int] | None = None) -> TopologyResult:
    """:func:`compute_topology`'s experiment on ``twin`` itself, which it changes: for a caller
    that already holds a copy of the lab of its own (a check). Inputs as compute_topology's,
    unchecked."""
    svc = twin.cluster.service(service)
    seen = event_counts(twin.cluster, service)
    if zones is not None and any((twin.cluster.node(n).zone or "") != z for n, z in zones.items()):
        twin.set_zones(dict(zones))
    if cpu is not None and any(twin.cluster.node(n).allocatable_cpu != c for n, c in cpu.items()):
        twin.set_allocatable_cpu(dict(cpu))
    selector = _deployment_selector(twin, deployment)
    if placement is not None:
        now = {n: len(ps) for n, ps in twin.pods_per_node(selector).items() if ps}
        if {n: c for n, c in placement.items() if c} != now:
            twin.place(deployment, {**{n: 0 for n in now}, **dict(placement)})
    patch = topology_patch(svc, mode)
    if patch["annotations"] != (svc.annotations or {}) or patch["traffic_distribution"] != svc.traffic_distribution:
        twin.patch_service(service, **patch)

    df = with_zones(twin.run(list(clients), service, n=connections * len(clients), seed=seed, interval=0), twin.cluster)
    hints = hints_table(twin.cluster, service)
    cpu = zone_cpu(twin.cluster)
    n_ready = int(hints["ready"].sum())
    allocations = pd.DataFrame()
    if mode == "Auto" and "" not in cpu:
        from . import topology

        allocations = topology.allocations_table(cpu, n_ready)
    ok = df[df["outcome"] == "ok"]
    matrix = pd.crosstab(ok["client_zone"], ok["endpoint_zone"], normalize="index") if len(ok) else pd.DataFrame()
    workers = {n.name for n in twin.cluster.nodes if not n.is_control_plane}
    placed = {n: len(ps) for n, ps in twin.pods_per_node(selector).items() if n in workers}
    return TopologyResult(
        df=df, hints=hints, events=service_events(twin.cluster, service), cross_zone=cross_zone_shares(df),
        matrix=matrix, zone_cpu=cpu, allocations=allocations, mode=mode, placement=placed,
        said=new_events(twin.cluster, service, seen),
        zones={n.name: n.zone or "" for n in twin.cluster.nodes}, service=service, connections=connections,
        backend=twin.backend)


class TopologyPanel:
    """Topology aware routing, explored: the Service's mode (off, ``topology-mode: Auto``,
    ``trafficDistribution: PreferClose``), how many pods run on each worker and which zone each
    worker is in, over two charts: the endpoints per zone and the zone each is hinted for, and
    where each zone's client pod's connections were answered (client zone x endpoint zone); a line
    under them gives the share that crossed zones per client zone and the controller's last event.

    Controls: ``mode`` (ToggleButtons), ``sliders`` (worker -> IntSlider, 0-``max_pods``),
    ``zone_of`` (worker -> Dropdown of the lab's zones and "(no zone)"), ``cpu_of`` (worker ->
    IntSlider of allocatable cores, 1-``max_cores``: the zones' CPU ratios the controller
    allocates hints by). Every change runs :func:`compute_topology` on a fresh simulated copy of
    the lab (never the lab itself); ``set(mode=..., placement=..., zones=..., cpu=...)`` changes
    several controls with one update (``cpu`` in millicores, whole cores)."""

    MODES = ("off", "Auto", "PreferClose")

    def __init__(self, lab: Lab, *, mode: str = "Auto", placement: Mapping[str, int] | None = None,
                 zones: Mapping[str, str] | None = None, connections: int = 300, max_pods: int = 6, seed: int = 1,
                 service: str = "svc-zone", deployment: str = "deploy-zone", clients: tuple[str, ...] = ZONE_CLIENTS,
                 cpu: Mapping[str, int] | None = None, max_cores: int = 8) -> None:
        import ipywidgets as w

        self.lab, self.connections, self.seed = lab, connections, seed
        self.service, self.deployment, self.clients = service, deployment, clients
        workers = [n.name for n in lab.cluster.nodes if not n.is_control_plane]
        self.zone_names = sorted({n.zone for n in lab.cluster.nodes if n.zone} | set((zones or {}).values()) - {""})
        self._check(mode, placement, zones, workers, {n: max_pods for n in workers})
        self.max_cores = max_cores
        self._check_cpu(cpu, workers, max_cores)
        per_node = lab.pods_per_node(_deployment_selector(lab, deployment))
        start = {**{n: len(per_node[n]) for n in workers}, **dict(placement or {})}
        start_zones = {n: lab.cluster.node(n).zone or "" for n in workers} | dict(zones or {})
        style = {"description_width": "initial"}
        self.mode = w.ToggleButtons(options=list(self.MODES), value=mode, description="topology", style=style)
        self.sliders = {n: w.IntSlider(value=start[n], min=0, max=max(max_pods, start[n]), description=f"pods on {n}",
                                       style=style, continuous_update=False) for n in workers}
        self.zone_of = {n: w.Dropdown(options=[(z, z) for z in self.zone_names] + [(NO_ZONE, "")], value=start_zones[n],
                                      description=f"zone of {n}", style=style) for n in workers}
        start_cpu = {n: lab.cluster.node(n).allocatable_cpu for n in workers} | dict(cpu or {})
        self.cpu_of = {n: w.IntSlider(value=max(1, start_cpu[n] // 1000), min=1, max=max(max_cores, start_cpu[n] // 1000),
                                      description=f"cores of {n}", style=style, continuous_update=False) for n in workers}
        self.summary = w.HTML()
        self._cache = _ResultCache(self.CACHE)
        self._quiet = False
        r = self._compute()
        self.hints_figure = LiveFigure(charts.hints_figure(r.hints, self.zone_names, title=charts.hints_title(r)))
        self.matrix_figure = LiveFigure(charts.zone_matrix_figure(r.matrix, self.zone_names, title=charts.matrix_title(r)))
        self.result: TopologyResult | None = None
        self._draw(r)
        for control in (self.mode, *self.sliders.values(), *self.zone_of.values(), *self.cpu_of.values()):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([self.mode, w.HBox(list(self.sliders.values())), w.HBox(list(self.zone_of.values())),
                              w.HBox(list(self.cpu_of.values())),
                              w.HBox([self.hints_figure, self.matrix_figure]), self.summary])

    CACHE = 64

    @property
    def placement(self) -> dict[str, int]:
        return {n: s.value for n, s in self.sliders.items()}

    @property
    def zones(self) -> dict[str, str]:
        return {n: d.value for n, d in self.zone_of.items()}

    @property
    def cpu(self) -> dict[str, int]:
        """Each worker's allocatable CPU as the panel sets it, in millicores."""
        return {n: s.value * 1000 for n, s in getattr(self, "cpu_of", {}).items()}

    def _check_cpu(self, cpu, workers, max_cores) -> None:
        from .controlplane import check_allocatable_cpu
        from .errors import InputError

        if cpu is None:
            return
        check_allocatable_cpu(self.lab.cluster, cpu)
        for node, milli in cpu.items():
            if node not in workers:
                raise InputError(f"cpu[{node!r}]", "the panel sets the workers' CPU only", f"workers are: {', '.join(workers)}")
            if milli % 1000 or not 1 <= milli // 1000 <= max_cores:
                raise InputError(f"cpu[{node!r}]", f"{milli} millicores is not 1-{max_cores} whole cores",
                                 f"give 1000-{max_cores * 1000} in steps of 1000, or make the panel with max_cores=...")

    def _check(self, mode, placement, zones, workers, most) -> None:
        from .errors import InputError

        if mode is not None and mode not in self.MODES:
            raise InputError("mode", f"{mode!r} is not one of the panel's modes", f"use one of: {', '.join(self.MODES)}")
        nodes = [n.name for n in self.lab.cluster.nodes]
        if placement is not None:
            _check_placement(placement, nodes)
            for node, count in placement.items():
                if node not in workers:
                    raise InputError(f"placement[{node!r}]", "the panel places pods on the workers only",
                                     f"workers are: {', '.join(workers)}")
                if count > most[node]:
                    raise InputError(f"placement[{node!r}]", f"{count} pods is more than the slider's maximum {most[node]}",
                                     f"give 0-{most[node]}, or make the panel with max_pods={count}")
        if zones is not None:
            _check_zones(zones, nodes)
            for node, zone in zones.items():
                if node not in workers:
                    raise InputError(f"zones[{node!r}]", "the panel sets the workers' zones only", f"workers are: {', '.join(workers)}")
                if zone and zone not in self.zone_names:
                    raise InputError(f"zones[{node!r}]", f"{zone!r} is not one of the panel's zones",
                                     f"use one of: {', '.join(self.zone_names)}, or \"\" for no zone")

    def _key(self) -> tuple:
        return self.mode.value, tuple(sorted(self.placement.items())), tuple(sorted(self.zones.items())), tuple(sorted(self.cpu.items()))

    def _compute(self) -> TopologyResult:
        mode, placement, zones, cpu = key = self._key()
        return self._cache.get(self.lab.generation, key, lambda: compute_topology(
            self.lab, mode, dict(placement), dict(zones), self.connections, seed=self.seed,
            service=self.service, deployment=self.deployment, clients=self.clients, cpu=dict(cpu)))

    def _on_change(self, _change=None) -> None:
        if not self._quiet:
            self.update()

    def set(self, *, mode: str | None = None, placement: Mapping[str, int] | None = None,
            zones: Mapping[str, str] | None = None, cpu: Mapping[str, int] | None = None) -> TopologyResult:
        """Change any of the controls with one update. Checked first: a bad value is a one-line
        InputError and no control changes."""
        self._check(mode, placement, zones, list(self.sliders), {n: s.max for n, s in self.sliders.items()})
        self._check_cpu(cpu, list(self.cpu_of), self.max_cores)
        self._quiet = True
        try:
            if mode is not None:
                self.mode.value = mode
            for node, count in (placement or {}).items():
                self.sliders[node].value = count
            for node, zone in (zones or {}).items():
                self.zone_of[node].value = zone
            for node, milli in (cpu or {}).items():
                self.cpu_of[node].value = milli // 1000
        finally:
            self._quiet = False
        return self.update()

    def update(self) -> TopologyResult:
        r = self._compute()
        self._draw(r)
        return r

    def _draw(self, r: TopologyResult) -> None:
        h = charts.hints_data(r.hints, self.zone_names)
        with self.hints_figure.batch_update():
            for trace, y in zip(self.hints_figure.data, h["counts"]):
                trace.x, trace.y = h["zones"], y
            self.hints_figure.layout.title.text = charts.hints_title(r)
        m = charts.zone_matrix_data(r.matrix, self.zone_names)
        with self.matrix_figure.batch_update():
            heat = self.matrix_figure.data[0]
            heat.z, heat.text, heat.x, heat.y = m["z"], m["text"], m["x"], m["y"]
            self.matrix_figure.layout.title.text = charts.matrix_title(r)
        self.summary.value = charts.topology_line(r)
        self.result = r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.hints_figure, self.matrix_figure)


# ---- chapter 08: readiness probes, Endpoints and EndpointSlices -------------------------------------

READINESS_DEPLOYMENT = "mario"  # chapter 08's Deployment (data/myk8s/readiness)
READINESS_SERVICE = "svc-mario"
SETTLE_LIMIT_S = 600.0  # how long compute_readiness lets a probe change roll out on its copy (simulated seconds)


READY_LIMIT_S = 60  # how long readiness_addon waits for the new pods' readiness probes (seconds of the lab's clock)


def readiness_addon(lab: Lab) -> Lab:
    """``lab`` with chapter 08's add-on (``data/myk8s/readiness``: mario, svc-mario) applied once,
    and its pods Ready: a new pod with a readiness probe starts not ready, so the clock advances
    second by second (on netns in real time, the probes are real) until every mario pod passed
    its probe. Returns ``lab``. ``lab.reset()`` removes the add-on; call this again after it."""
    from .resources import study_lab

    if not any(s.name == READINESS_SERVICE for s in lab.cluster.services):
        lab.apply(study_lab() / "readiness")
    return wait_ready(lab, f"app={READINESS_DEPLOYMENT}")


def wait_ready(lab: Lab, label: str, limit: float = READY_LIMIT_S) -> Lab:
    """Advance ``lab``'s clock second by second until every pod with ``label`` is Ready (their
    readiness probes passed; pods without a probe are ready at once), at most ``limit`` seconds."""
    from .errors import EnvironmentProblem

    waited = 0
    while not all(lab.cluster.pod(p).ready for p in lab.pods(label)):
        if waited >= limit:
            late = [p for p in lab.pods(label) if not lab.cluster.pod(p).ready]
            raise EnvironmentProblem(f"{len(late)} pods with {label} were not ready {limit:g} s after they started, "
                                     f"e.g. {late[0]}: does their readiness probe pass?")
        lab.advance(1)
        waited += 1
    return lab


def _readiness_twin(lab: Lab) -> Lab:
    """A simulated copy of ``lab`` with chapter 08's add-on applied (once) and its pods ready."""
    return readiness_addon(lab.copy())


def _kubectl_json(lab: Lab, command: str) -> dict:
    import json

    return json.loads(str(lab.sh("net-pod", command + " -o json")))


def _compact_size(obj: object) -> int:
    """Bytes of an object as one compact JSON document (what a watch event carries of it)."""
    import json

    return len(json.dumps(obj, separators=(",", ":")).encode())


@dataclass(frozen=True)
class WatchChange:
    """One pod of a Service becoming not ready, seen by the watchers of each API: the Endpoints
    object (one object, every address) and the EndpointSlices that changed (the pod's slice)."""

    replicas: int
    pod: str
    slices: int  # the Service's EndpointSlices
    endpoints_entries: int  # addresses + notReadyAddresses of the Endpoints object
    slice_entries: int  # endpoints of the slices that changed
    changed: tuple[str, ...]  # their names
    endpoints_bytes: int  # the Endpoints object, compact JSON
    slice_bytes: int  # the changed slices, compact JSON
    watchers: int  # kube-proxies: one per node


def watch_change(lab: Lab, deployment: str, service: str, replicas: int) -> WatchChange:
    """Scale ``deployment`` to ``replicas`` **on** ``lab`` (give it a copy), make its first pod (by
    name) not ready, and measure what that one change sends to every watcher: the objects as
    ``kubectl get ... -o json`` prints them, compared before and after."""
    from .errors import InputError

    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise InputError("replicas", f"{replicas!r}", "give at least 1 replica")
    lab.scale(deployment, replicas)
    selector = lab.cluster.service(service).selector or {}
    label = ",".join(f"{k}={v}" for k, v in selector.items())
    wait_ready(lab, label)  # the new pods pass their readiness probes first
    pod = sorted(lab.pods(label))[0]
    query = f"kubectl get endpointslices -l kubernetes.io/service-name={service}"
    before = {s["metadata"]["name"]: s.get("endpoints") or [] for s in _kubectl_json(lab, query)["items"]}
    lab.set_ready(pod, False)
    items = {s["metadata"]["name"]: s for s in _kubectl_json(lab, query)["items"]}
    changed = tuple(sorted(n for n, s in items.items() if before.get(n) != (s.get("endpoints") or [])))
    ep = _kubectl_json(lab, f"kubectl get endpoints {service}")
    entries = sum(len(s.get(k) or []) for s in ep.get("subsets") or [] for k in ("addresses", "notReadyAddresses"))
    return WatchChange(replicas=replicas, pod=pod, slices=len(items), endpoints_entries=entries,
                       slice_entries=sum(len(items[n].get("endpoints") or []) for n in changed), changed=changed,
                       endpoints_bytes=_compact_size(ep), slice_bytes=sum(_compact_size(items[n]) for n in changed),
                       watchers=len(lab.cluster.nodes))


def compute_watch_cost(lab: Lab, replicas: Sequence[int] = (3, 100, 250, 300), *, deployment: str = READINESS_DEPLOYMENT,
                       service: str = READINESS_SERVICE) -> pd.DataFrame:
    """Per Service size: what one pod's readiness change sends to the kube-proxy of every node,
    watching Endpoints vs watching EndpointSlices (bytes of compact JSON; kube-proxy asks the API
    server for protobuf, smaller per object but growing the same way). Pure: each size runs on its
    own simulated copy of ``lab`` (with chapter 08's add-on for the default Deployment)."""
    rows = []
    for n in replicas:
        twin = _readiness_twin(lab) if service == READINESS_SERVICE else lab.copy()
        w = watch_change(twin, deployment, service, n)
        rows.append(dict(replicas=w.replicas, slices=w.slices, endpoints_entries=w.endpoints_entries,
                         slice_entries=w.slice_entries, endpoints_bytes=w.endpoints_bytes, slice_bytes=w.slice_bytes,
                         watchers=w.watchers, endpoints_bytes_total=w.endpoints_bytes * w.watchers,
                         slice_bytes_total=w.slice_bytes * w.watchers))
    return pd.DataFrame(rows)


def readiness_template(lab: Lab, deployment: str = READINESS_DEPLOYMENT, *, probe: bool = True,
                       period_seconds: int | None = None, failure_threshold: int | None = None) -> dict:
    """``deployment``'s pod template with its first container's readinessProbe changed: removed
    (``probe=False``) or with ``periodSeconds`` / ``failureThreshold`` set (a deep copy; the lab is
    not changed). What ``kubectl edit deployment`` would write; give it to ``lab.rollout(..., template=)``."""
    import copy

    from .errors import InputError

    dep = next((d for d in lab.cluster.deployments if d.name == deployment), None)
    if dep is None:
        raise InputError("deployment", f"{deployment!r} is not in the lab", "apply data/myk8s/readiness first")
    for name, v, lo in (("period_seconds", period_seconds, 1), ("failure_threshold", failure_threshold, 1)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
            raise InputError(name, f"{v!r}", f"give a whole number of at least {lo} (the API server's minimum)")
    template = copy.deepcopy(dep.template)
    container = template["spec"]["containers"][0]
    if not probe:
        container.pop("readinessProbe", None)
        return template
    rp = container.setdefault("readinessProbe", {"httpGet": {"path": "/", "port": 8080}})
    if period_seconds is not None:
        rp["periodSeconds"] = period_seconds
    if failure_threshold is not None:
        rp["failureThreshold"] = failure_threshold
    return template


def _settle(twin: Lab, deployment: str, template: dict) -> None:
    """Advance ``twin``'s clock until ``deployment`` runs only pods of ``template``, all ready and
    none terminating (a rollout on the copy, in simulated time)."""
    from .errors import InputError

    owner = f"Deployment/{deployment}"
    dep = next(d for d in twin.cluster.deployments if d.name == deployment)
    waited = 0.0
    while waited <= SETTLE_LIMIT_S:
        pods = [p for p in twin.cluster.pods if p.owner == owner]
        probe = template["spec"]["containers"][0].get("readinessProbe")
        if (len(pods) == dep.replicas and all(p.ready and not p.terminating for p in pods)
                and all(p.containers and p.containers[0].readiness_probe == probe for p in pods)):
            return
        twin.advance(1.0)
        waited += 1.0
    raise InputError("template", f"the rollout of {deployment} did not finish in {SETTLE_LIMIT_S:g} s",
                     "check the probe: a probe that never passes keeps the new pods not ready")


@dataclass(frozen=True)
class ReadinessResult:
    """Connections through ``svc-mario`` while some mario pods break (and maybe heal), and the
    lifecycle of the failure as kslab's kubelet, EndpointSlice controller and kube-proxy lived it.

    ``df``: the rows of ``lab.timeline`` (``t`` from the start of the run); ``lifecycle``: the
    lifecycle events of the run (``t`` from the same start; kinds as :data:`kslab.charts.LIFECYCLE_MARKS`);
    ``window``: the detection window (best, worst) the probe predicts, None without a probe;
    ``not_ready_at``: broken pod -> when its Ready condition went False (absent: never);
    ``removed_at``: the first kube-proxy sync after the last of them (None: never);
    ``errors``: failed connections from ``break_at`` on."""

    df: pd.DataFrame
    lifecycle: pd.DataFrame
    broken: tuple[str, ...]
    break_at: float
    heal_at: float | None
    probe: dict | None
    window: tuple[float, float] | None
    not_ready_at: dict[str, float]
    removed_at: float | None
    errors: int
    backend: str = "sim"


def compute_readiness(lab: Lab, *, broken: int = 1, probe: bool = True, period_seconds: int = 5,
                      failure_threshold: int = 3, break_at: float = 5.0, heal_at: float | None = None,
                      seconds: float = 40.0, rate: float = 10.0, entry: str = "myk8s-worker", seed: int = 1,
                      deployment: str = READINESS_DEPLOYMENT, service: str = READINESS_SERVICE) -> ReadinessResult:
    """``broken`` mario pods break at ``break_at`` (and heal at ``heal_at``) while ``mypc`` opens
    ``rate`` connections per second to ``entry``'s nodePort of ``service`` for ``seconds``, the pods'
    readiness probe set to ``period_seconds`` / ``failure_threshold`` (or removed: ``probe=False``).

    Pure: it runs on a simulated copy of ``lab`` (the probe change rolls out there first, in
    simulated time), never on ``lab``, and is seeded. Needs kslab's kubelet (``lab.timeline``,
    ``lab.lifecycle_frame``, ``kslab.kubelet``)."""
    from .errors import InputError
    from .kubelet import ProbeSpec, detection_window

    for name, v, lo in (("broken", broken, 0), ("seconds", seconds, 1), ("rate", rate, 0.1), ("break_at", break_at, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
            raise InputError(name, f"{v!r}", f"give a number of at least {lo}")
    if heal_at is not None and heal_at <= break_at:
        raise InputError("heal_at", f"{heal_at!r} is not after break_at {break_at!r}", "heal after the break, or None")
    twin = _readiness_twin(lab)
    template = readiness_template(twin, deployment, probe=probe, period_seconds=period_seconds,
                                  failure_threshold=failure_threshold)
    dep = next(d for d in twin.cluster.deployments if d.name == deployment)
    if template != dep.template:
        twin.rollout(deployment, template=template)
        _settle(twin, deployment, template)
    pods = sorted(p.name for p in twin.cluster.pods if p.owner == f"Deployment/{deployment}")
    if broken > len(pods):
        raise InputError("broken", f"{broken} pods, but {deployment} runs {len(pods)}", f"give 0-{len(pods)}")
    victims = tuple(pods[:broken])

    def set_broken(value: bool):
        return lambda l: [l.break_pod(p, value) for p in victims]

    actions = [(break_at, set_broken(True))] + ([(heal_at, set_broken(False))] if heal_at is not None else [])
    start = float(twin.cluster.clock)  # the lifecycle's clock (the cluster's); the timeline's t counts from here
    df = twin.timeline("mypc", f"{entry}:{service}", seconds, rate, actions=actions, seed=seed)
    lifecycle = twin.lifecycle_frame(since=start)
    lifecycle = lifecycle[lifecycle["t"].astype(float) > start].copy()  # the copy's earlier events may share its first instant
    lifecycle["t"] = lifecycle["t"].astype(float) - start
    spec_doc = template["spec"]["containers"][0].get("readinessProbe")
    window = detection_window(ProbeSpec.from_container(template["spec"]["containers"][0], "template")) if spec_doc else None
    not_ready = {}
    for _, r in lifecycle[lifecycle["kind"] == "not-ready"].sort_values("t").iterrows():
        if r["pod"] in victims and r["pod"] not in not_ready and r["t"] >= break_at:
            not_ready[r["pod"]] = float(r["t"])
    removed = None
    if victims and len(not_ready) == len(victims):
        last = max(not_ready.values())
        synced = lifecycle[(lifecycle["kind"] == "synced") & (lifecycle["t"] >= last)]
        removed = float(synced["t"].min()) if len(synced) else None
    errors = int(((df["t"].astype(float) >= break_at) & (df["outcome"] != "ok")).sum()) if len(df) else 0
    return ReadinessResult(df=df, lifecycle=lifecycle, broken=victims, break_at=break_at, heal_at=heal_at, probe=spec_doc,
                           window=window, not_ready_at=not_ready, removed_at=removed, errors=errors, backend=twin.backend)


def readiness_summary(r: ReadinessResult) -> str:
    """One line under the timeline: what broke, the predicted window, what was measured."""
    if not r.broken:
        return f"no pod broken: {len(r.df)} connections, {r.errors} failed"
    parts = [f"{len(r.broken)} pod(s) broke at {r.break_at:g} s"]
    if r.window is None:
        parts.append(f"no readiness probe: nothing takes them out, {r.errors} connections failed")
    else:
        best, worst = r.window
        got = ", ".join(f"{t - r.break_at:.1f} s" for t in r.not_ready_at.values()) or "never"
        parts.append(f"predicted Ready=False {best:g}-{worst:g} s later, measured {got}")
        parts.append(f"kube-proxy synced at {r.removed_at:.1f} s" if r.removed_at is not None else "not yet synced")
        parts.append(f"{r.errors} connections failed")
    return "; ".join(parts)


class ReadinessPanel:
    """Break and heal mario pods, set the readiness probe's ``periodSeconds`` and
    ``failureThreshold`` (or remove the probe), and watch the timeline: connections per pod, the
    failed ones, and the lifecycle marks (app breaks, failed probes, Ready=False, the slice update,
    kube-proxy's sync).

    Controls: ``broken`` (IntSlider 0-3: pods that break), ``heal`` (Checkbox: they heal halfway),
    ``probe`` (Checkbox), ``period`` (IntSlider 1-10), ``failure`` (IntSlider 1-5). Every change runs
    :func:`compute_readiness` on a fresh simulated copy of the lab; results are cached per setting
    until the lab changes. ``set(...)`` changes several controls with one update."""

    CACHE = 32

    def __init__(self, lab: Lab, *, broken: int = 1, heal: bool = False, probe: bool = True, period_seconds: int = 5,
                 failure_threshold: int = 3, seconds: float = 40.0, rate: float = 10.0, seed: int = 1) -> None:
        import ipywidgets as w

        self.lab, self.seconds, self.rate, self.seed = lab, seconds, rate, seed
        style = {"description_width": "initial"}
        self.broken = w.IntSlider(value=broken, min=0, max=3, description="pods that break", style=style,
                                  continuous_update=False)
        self.heal = w.Checkbox(value=heal, description=f"they heal at {seconds / 2:g} s")
        self.probe = w.Checkbox(value=probe, description="readinessProbe")
        self.period = w.IntSlider(value=period_seconds, min=1, max=10, description="periodSeconds", style=style,
                                  continuous_update=False)
        self.failure = w.IntSlider(value=failure_threshold, min=1, max=5, description="failureThreshold", style=style,
                                   continuous_update=False)
        self.summary = w.HTML()
        self._cache = _ResultCache(self.CACHE)
        self._quiet = False
        r = self._compute()
        self.figure = LiveFigure(charts.readiness_timeline(r.df, r.lifecycle, backend=r.backend))
        self.result: ReadinessResult | None = None
        self._draw(r)
        for control in (self.broken, self.heal, self.probe, self.period, self.failure):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.broken, self.heal]), w.HBox([self.probe, self.period, self.failure]),
                              self.figure, self.summary])

    def _key(self) -> tuple:
        return self.broken.value, self.heal.value, self.probe.value, self.period.value, self.failure.value

    def _compute(self) -> ReadinessResult:
        broken, heal, probe, period, failure = key = self._key()
        return self._cache.get(self.lab.generation, key, lambda: compute_readiness(
            self.lab, broken=broken, probe=probe, period_seconds=period, failure_threshold=failure,
            heal_at=self.seconds / 2 if heal else None, seconds=self.seconds, rate=self.rate, seed=self.seed))

    def _on_change(self, _change=None) -> None:
        if not self._quiet:
            self.update()

    def set(self, *, broken: int | None = None, heal: bool | None = None, probe: bool | None = None,
            period_seconds: int | None = None, failure_threshold: int | None = None) -> ReadinessResult:
        """Change any of the controls with one update; a value outside a control's range is a
        one-line InputError and no control changes."""
        from .errors import InputError

        for name, v, control in (("broken", broken, self.broken), ("period_seconds", period_seconds, self.period),
                                 ("failure_threshold", failure_threshold, self.failure)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not control.min <= v <= control.max):
                raise InputError(name, f"{v!r}", f"give a whole number {control.min}-{control.max}")
        self._quiet = True
        try:
            for v, control in ((broken, self.broken), (heal, self.heal), (probe, self.probe),
                               (period_seconds, self.period), (failure_threshold, self.failure)):
                if v is not None:
                    control.value = v
        finally:
            self._quiet = False
        return self.update()

    def update(self) -> ReadinessResult:
        r = self._compute()
        self._draw(r)
        return r

    def _draw(self, r: ReadinessResult) -> None:
        fresh = charts.readiness_timeline(r.df, r.lifecycle, backend=r.backend)
        with self.figure.batch_update():
            self.figure.data = ()
            for trace in fresh.data:
                self.figure.add_trace(trace)
            self.figure.layout.title = fresh.layout.title
        self.period.disabled = self.failure.disabled = not self.probe.value
        self.summary.value = readiness_summary(r)
        self.result = r

    def _ipython_display_(self) -> None:
        display_panel(self.widget, self.figure)
