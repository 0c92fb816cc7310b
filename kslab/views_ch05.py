"""Chapter 05's measurements as pure functions, and its minSyncPeriod panel over them.

- :func:`large_cluster_effect`: what large-cluster mode (> 1000 endpoints) removes from the text;
- :func:`rules_evaluated`: how many rules the first packet of a connection to a random ClusterIP
  is tested against, per proxy mode and number of Services (the simulator's count);
- :func:`sync_cost`: what one kube-proxy writes in a full sync, a partial sync after ONE Service
  changed, and a no-op sync, per mode and cluster size (the real Proxier);
- :func:`compute_min_sync` / :func:`min_sync_table`: the sync loop (``kslab.proxy.syncloop``)
  while a 100-pod Deployment is deleted, for one or several ``minSyncPeriod`` values;
- :func:`kernel_numbers`: the chapter's kernel figures, measured now on netns (QUICK sizes) or
  read from the recording (with its label) on any other backend;
- :class:`MinSyncPanel`: a ``minSyncPeriod`` slider over :func:`compute_min_sync`.

Everything here works on synthetic clusters (:func:`kslab.synthetic.synthetic_cluster`), never
on the learner's lab.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from . import charts_ch05
from .livefigure import LiveFigure
from .errors import InputError

MODES = ("iptables", "nftables")
DELETED_PODS = 100  # the study notes' Deployment of 100 pods
DELETE_OVER = 3.0  # seconds over which its pods' EndpointSlice updates arrive
# the chapter's sizes on netns: iptables-nft's restore of 1,000 Services alone takes 5-15 s here
NETNS_RESTORE = {"iptables-legacy": (200, 1000), "iptables-nft": (200, 500), "nft": (200, 1000)}
# iptables' first-packet cost grows with the Services ahead in KUBE-SERVICES; at 5,000 a loaded 2-core
# machine measured only 1.5x over 200 at p90 (CI, stop 22), at 10,000 the median grows 4-6x
NETNS_LATENCY = {"iptables": (200, 10000), "nftables": (200, 1000)}


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise InputError("mode", f"unknown proxy mode {mode!r}", "use iptables or nftables")
    return mode


def _config(state, mode: str):
    from .proxy.config import ProxyConfig

    return ProxyConfig.for_node(state, state.nodes[0].name, mode=mode)


def _render(state, mode: str):
    if mode == "nftables":
        from .proxy.nftables import render
    else:
        from .proxy.iptables import render
    return render(state.services, state.endpoint_slices, _config(state, mode))


# ---- large-cluster mode -----------------------------------------------------------------------


def large_cluster_effect(endpoints: int = 10, services: Sequence[int] = (100, 101)) -> pd.DataFrame:
    """iptables mode's text for ``services`` Services x ``endpoints`` (default 1,000 and 1,010
    endpoints: either side of the 1,000 threshold): large-cluster mode, lines, bytes and both
    per Service."""
    from .synthetic import synthetic_cluster

    rows = []
    for n in services:
        state = synthetic_cluster(n, endpoints)
        rs = _render(state, "iptables")
        text = rs.raw_text()
        rows.append({"services": n, "endpoints": n * endpoints, "large_cluster_mode": bool(rs.large_cluster_mode),
                     "lines": text.count("\n"), "bytes": len(text.encode()), "lines_per_service": text.count("\n") / n,
                     "bytes_per_service": len(text.encode()) / n, "comments": text.count("-m comment")})
    return pd.DataFrame(rows)


# ---- the first packet's lookup ----------------------------------------------------------------


def _netfilter(state, mode: str):
    rs = _render(state, mode)
    if mode == "nftables":
        from .sim.nftables import NftNetfilter

        return NftNetfilter.from_text(rs.raw_text())
    from .sim.netfilter import Netfilter

    return Netfilter.from_text(rs.text("save"))


def rules_evaluated(mode: str, services: int, *, connections: int = 20, endpoints: int = 1, seed: int = 0) -> pd.DataFrame:
    """One row per new connection from a pod to a ClusterIP chosen at random (``seed``) among
    ``services`` synthetic Services (``endpoints`` each: one by default, since the lookup's cost
    depends on the number of Services, not of endpoints), traced through one node's rules in
    ``mode`` by the simulator: ``rules_evaluated`` (every rule a packet of the connection was tested against on
    that node; a verdict-map lookup counts as one), the endpoint it reached."""
    from .sim.single import trace_netfilter
    from .synthetic import synthetic_cluster

    _check_mode(mode)
    state = synthetic_cluster(services, endpoints)
    nf = _netfilter(state, mode)
    node_ip = state.nodes[0].internal_ip
    client = "10.15.255.254"  # a pod address in the pod subnet, no endpoint of any Service
    rng = random.Random(seed)
    rows = []
    for i in range(connections):
        svc = rng.choice(state.services)
        conn = trace_netfilter(nf, node_ip=node_ip, src=client, dst=svc.cluster_ip, dport=svc.ports[0].port, proto="tcp",
                               seed=seed + i)
        rows.append({"mode": mode, "services": services, "service": svc.name, "position": state.services.index(svc) + 1,
                     "rules_evaluated": conn.rules_evaluated, "dnat_to": conn.dnat_to})
    return pd.DataFrame(rows)


def lookup_table(sizes: Sequence[int] = (10, 1000), modes: Sequence[str] = MODES, *, connections: int = 20,
                 endpoints: int = 1, seed: int = 0) -> pd.DataFrame:
    """Mean, min and max of :func:`rules_evaluated` per mode and size."""
    frames = [rules_evaluated(m, n, connections=connections, endpoints=endpoints, seed=seed) for m in modes for n in sizes]
    df = pd.concat(frames, ignore_index=True)
    return (df.groupby(["mode", "services"])["rules_evaluated"].agg(["mean", "min", "max"]).reset_index()
            .rename(columns={"mean": "rules_mean", "min": "rules_min", "max": "rules_max"}))


# ---- what a sync writes ----------------------------------------------------------------------


def sync_cost(mode: str, services: int, *, endpoints: int = 10) -> dict[str, int]:
    """What kube-proxy in ``mode`` writes for a synthetic cluster of ``services`` Services: the
    full sync, the partial sync after ONE Service's endpoints changed (a pod replaced), and the
    no-op sync after it (nothing changed). iptables counts restore lines, nftables operations
    (knftables' NumOperations), the numbers each mode's sync is timed on."""
    from .model import Endpoint
    from .proxy.proxier import Proxier
    from .synthetic import synthetic_cluster

    _check_mode(mode)
    state = synthetic_cluster(services, endpoints)
    proxier = Proxier(_config(state, mode))
    apply = lambda ruleset: None  # noqa: E731 (no kernel: count what would be written)
    full = proxier.sync(state.services, state.endpoint_slices, apply, now=0.0)
    changed = state.endpoint_slices[len(state.endpoint_slices) // 2]
    last = changed.endpoints[-1]
    ip = last.addresses[0].rsplit(".", 1)
    changed.endpoints = list(changed.endpoints[:-1]) + [Endpoint(addresses=[f"{ip[0]}.{(int(ip[1]) + 128) % 256}"],
                                                                 node_name=last.node_name)]
    partial = proxier.sync(state.services, state.endpoint_slices, apply, now=2.0)
    noop = proxier.sync(state.services, state.endpoint_slices, apply, now=4.0)
    assert not partial.full and not noop.full, "the Proxier did a full sync where a partial one was due"
    return {"full": _written_of(full, mode), "partial": _written_of(partial, mode), "noop": _written_of(noop, mode)}


def _written_of(result, mode: str) -> int:
    if mode == "nftables":
        return int(result.ruleset.operations)
    return result.lines


def sync_cost_table(sizes: Sequence[int] = (100, 1000, 3000), modes: Sequence[str] = MODES) -> pd.DataFrame:
    """:func:`sync_cost` per mode and size, one row per (mode, size, sync)."""
    rows = []
    for mode in modes:
        for n in sizes:
            for sync, written in sync_cost(mode, n).items():
                rows.append({"mode": mode, "services": n, "sync": sync, "written": written,
                             "unit": "operations" if mode == "nftables" else "lines"})
    return pd.DataFrame(rows)


# ---- minSyncPeriod ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MinSyncResult:
    """One sync-loop run while a Deployment's pods are deleted (:func:`compute_min_sync`)."""

    min_sync_period: float
    mode: str
    syncs: pd.DataFrame
    changes: pd.DataFrame
    summary: dict

    @property
    def count(self) -> int:
        """Syncs the deletion caused (kube-proxy's start-up sync, before it, left out)."""
        return int(self.summary["syncs"])

    def row(self) -> dict[str, Any]:
        s = self.summary
        return {"minSyncPeriod": self.min_sync_period, "mode": self.mode, "syncs": self.count,
                "written": int(s["operations_written" if self.mode == "nftables" else "lines_written"]),
                "staleness_mean": float(s["staleness_mean"]), "staleness_max": float(s["staleness_max"]),
                "done_at": float(self.changes["applied_at"].max())}


def _deletion_cluster(services: int, pods: int):
    from .synthetic import add_service, synthetic_cluster

    state = synthetic_cluster(services, 10)
    add_service(state, "web", pods)
    return state


def compute_min_sync(min_sync_period: float, *, mode: str = "iptables", services: int = 200, pods: int = DELETED_PODS,
                     over: float = DELETE_OVER, seed: int = 0) -> MinSyncResult:
    """The sync loop (:func:`kslab.proxy.syncloop.simulate`, the real Proxier on a simulated
    clock, sync durations from the model calibrated on the recorded kernel data) while the
    ``pods`` pods of Service ``web`` are deleted one by one over ``over`` seconds, in a cluster of
    ``services`` other Services, with ``minSyncPeriod`` = ``min_sync_period``."""
    from .proxy import syncloop

    _check_mode(mode)
    if isinstance(min_sync_period, bool) or not isinstance(min_sync_period, (int, float)) or min_sync_period < 0:
        raise InputError("min_sync_period", f"{min_sync_period!r} is not a number of seconds >= 0", "give e.g. 1.0")
    state = _deletion_cluster(services, pods)
    events = syncloop.delete_deployment(state, "web", n=pods, over=over, start=1.0)
    cfg = syncloop.SyncLoopConfig(mode=mode, min_sync_period=float(min_sync_period))
    result = syncloop.simulate(state, events, cfg)
    syncs = result.syncs[result.syncs["trigger"] != "startup"].reset_index(drop=True)
    return MinSyncResult(float(min_sync_period), mode, syncs, result.changes, result.summary())


def min_sync_table(periods: Sequence[float] = (0.0, 1.0, 5.0, 10.0), **kw) -> pd.DataFrame:
    """:func:`compute_min_sync` for each period: syncs, lines (operations) written, staleness."""
    return pd.DataFrame([compute_min_sync(p, **kw).row() for p in periods])


class MinSyncPanel:
    """A ``minSyncPeriod`` slider and a mode toggle over the sync timeline of a 100-pod
    Deployment's deletion (:func:`compute_min_sync`); results are cached per setting."""

    def __init__(self, *, min_sync_period: float = 1.0, mode: str = "iptables", services: int = 200) -> None:
        import ipywidgets as w

        self.services = services
        self.period = w.FloatSlider(value=min_sync_period, min=0.0, max=10.0, step=0.5, description="minSyncPeriod",
                                    continuous_update=False, readout_format=".1f")
        self.mode = w.ToggleButtons(options=list(MODES), value=_check_mode(mode), description="mode")
        self.summary = w.HTML()
        self.figure = LiveFigure(charts_ch05.sync_timeline_figure(pd.DataFrame({"start": [], "duration": [], "full": [],
                                                                                      "lines": []})))
        self.result: MinSyncResult | None = None
        self._cache: dict[tuple[float, str], MinSyncResult] = {}
        self.period.observe(lambda _c: self.update(), names="value")
        self.mode.observe(lambda _c: self.update(), names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.period, self.mode]), self.figure, self.summary])

    def update(self) -> MinSyncResult:
        key = (float(self.period.value), str(self.mode.value))
        r = self._cache.get(key)
        if r is None:
            r = self._cache[key] = compute_min_sync(key[0], mode=key[1], services=self.services)
        self.result = r
        fresh = charts_ch05.sync_timeline_figure(r.syncs, r.changes, title=(
            f"{r.mode}, minSyncPeriod {r.min_sync_period:g} s: {r.count} syncs for {DELETED_PODS} pod deletions"))
        with self.figure.batch_update():
            self.figure.data = []
            for trace in fresh.data:
                self.figure.add_trace(trace)
            self.figure.layout.title.text = fresh.layout.title.text
        row = r.row()
        self.summary.value = (f"<b>{row['syncs']} syncs</b>, {row['written']:,} {'operations' if r.mode == 'nftables' else 'lines'} "
                              f"written; a change waited {row['staleness_mean']:.2f} s on average, {row['staleness_max']:.2f} s at "
                              f"most; the last deletion reached the kernel at {row['done_at']:.2f} s")
        return r

    def _ipython_display_(self) -> None:
        from .views import display_panel

        display_panel(self.widget, self.figure)


# ---- kernel numbers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelNumbers:
    restore: pd.DataFrame
    latency: pd.DataFrame
    source: str  # the charts' subtitle: "measured now ..." or the recording's label
    measured: bool
    meta: dict | None


def kernel_numbers(backend: str, *, timeout: float = 60.0, n: int = 500, progress: bool = True) -> KernelNumbers:
    """The chapter's kernel figures: on ``netns`` measured now with small sizes (each sample in
    its own namespace, killed past ``timeout``); on any other backend the recording shipped
    in ``data/recorded/`` (:func:`kslab.scale.recorded`), its label as the source."""
    from . import scale

    if backend == "netns":
        restore = scale.restore_table(NETNS_RESTORE, timeout=timeout, progress=progress)
        latency = scale.latency_table(NETNS_LATENCY, n=n, timeout=2 * timeout, progress=progress)
        return KernelNumbers(restore, latency, f"measured now on netns (small sizes, timeout {timeout:g} s per sample)",
                             True, None)
    df, meta = scale.recorded()
    return KernelNumbers(df[df["measure"] == "restore"].reset_index(drop=True),
                         df[df["measure"] == "latency"].reset_index(drop=True), meta["label"], False, meta)
