"""kube-proxy's sync loop on a simulated clock: how long a change waits before it is in the
kernel, and how many syncs (and lines) a burst of changes costs, for a given minSyncPeriod.

:func:`simulate` drives the **real** :class:`kslab.proxy.proxier.Proxier` (its full/partial
decisions, its stale-chain cleanup, the lines or nft operations it writes) through a
:class:`~kslab.proxy.runner.BoundedFrequencyRunner` on a clock that jumps from event to event.
Only the time a sync takes is modelled: :class:`DurationModel` (``a + b * lines`` for iptables,
``a + c * operations`` for nftables), or ``"measured"`` (the real render time here), or any
callable. Everything else is kube-proxy's behaviour:

- every change (an Event) calls ``Sync()``: the runner's ``Run()`` and the
  ``sync_proxy_rules_last_queued_timestamp_seconds`` gauge;
- kube-proxy's first sync is a direct call (``OnEndpointSlicesSynced``) made ``warmup`` seconds
  before time 0, so the simulated kube-proxy is up and idle when the events start;
- **syncPeriod** is not a periodic resync. It is (1) the retry delay after a failed sync
  (``RetryAfter(syncPeriod)``; the retry is a full sync), (2) in iptables mode the poll interval
  of the canary monitor (``ipt.Monitor(KUBE-PROXY-CANARY, ...)``): after an outside flush of the
  node's iptables (``outside_edits``) the next poll forces a full sync, while partial syncs in
  between fail (they jump to chains the flush removed); nftables mode has no canary (kube-proxy
  owns its table), so a deleted table is noticed only when a partial sync fails or at the next
  full sync; (3) in large-cluster mode, the minimum interval between stale-chain cleanups;
- **FullSyncPeriod** (1 h): the runner's maxInterval, and the age after which a sync is full.

The result (:class:`SyncLoopResult`) has one row per sync and one per change (when it was
applied, its staleness), and the :class:`~kslab.proxy.metrics.KubeProxyMetrics` kube-proxy
would export. Deterministic: the same inputs give the same tables (``duration="measured"`` aside).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..errors import InputError
from ..model import ClusterState, Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from .config import DEFAULT_MIN_SYNC_PERIOD, DEFAULT_SYNC_PERIOD, FULL_SYNC_PERIOD, ProxyConfig
from .metrics import KubeProxyMetrics
from .proxier import Proxier, SyncResult
from .runner import BURST_SYNCS, VARIANTS, BoundedFrequencyRunner

ENDPOINT_KINDS = frozenset({"delete_pod", "endpoint_not_ready", "endpoint_ready", "service_add", "service_delete"})
SERVICE_KINDS = frozenset({"service_add", "service_delete"})
_EPS = 1e-9


# ---- events ---------------------------------------------------------------------------------------

@dataclass
class Event:
    """A change to the cluster at time ``t`` (seconds): ``change`` applies it to a ClusterState."""

    t: float
    kind: str  # delete_pod, endpoint_not_ready, endpoint_ready, service_add, service_delete, ...
    service: str  # namespace/name
    change: Callable[[ClusterState], None] = field(repr=False)


def _service_key(cluster: ClusterState, service: str) -> tuple[str, str]:
    svc = cluster.service(service)  # InputError naming the Services there are
    return svc.namespace, svc.name


def _endpoint_ips(cluster: ClusterState, ns: str, name: str) -> list[str]:
    return [ep.addresses[0] for sl in cluster.endpoint_slices if sl.namespace == ns and sl.service_name == name
            for ep in sl.endpoints if ep.addresses]


def _remove_endpoint(ns: str, name: str, ip: str, state: ClusterState) -> None:
    for sl in state.endpoint_slices:
        if sl.namespace == ns and sl.service_name == name:
            kept = [ep for ep in sl.endpoints if not ep.addresses or ep.addresses[0] != ip]
            if len(kept) != len(sl.endpoints):
                sl.endpoints = kept
                return


def _set_ready(ns: str, name: str, ip: str, ready: bool, state: ClusterState) -> None:
    for sl in state.endpoint_slices:
        if sl.namespace == ns and sl.service_name == name:
            for ep in sl.endpoints:
                if ep.addresses and ep.addresses[0] == ip:
                    ep.ready = ready
                    ep.serving = ready
                    return


def _check_times(**values: float) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
            raise InputError(f"{name}={v!r}", "is not a duration", "give seconds >= 0")


def delete_deployment(cluster: ClusterState, service: str, n: int = 100, over: float = 3.0, start: float = 0.0) -> list[Event]:
    """Deleting a Deployment of ``n`` pods behind ``service``: the EndpointSlice controller
    removes one endpoint after another, evenly spread over ``over`` seconds from ``start``
    (``over / n`` apart). The Service must have at least ``n`` endpoints."""
    _check_times(over=over, start=start)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n={n!r}", "is not a number of pods", "give an integer >= 1")
    ns, name = _service_key(cluster, service)
    ips = _endpoint_ips(cluster, ns, name)
    if len(ips) < n:
        raise InputError(f"service {ns}/{name}", f"has {len(ips)} endpoints, fewer than the {n} pods to delete",
                         f"give n <= {len(ips)} or a Service with more endpoints")
    step = over / n
    return [Event(start + i * step, "delete_pod", f"{ns}/{name}", functools.partial(_remove_endpoint, ns, name, ip))
            for i, ip in enumerate(ips[:n])]


def _add_service(ns: str, name: str, cluster_ip: str, ips: tuple[str, ...], nodes: tuple[str, ...], state: ClusterState) -> None:
    state.services.append(Service(name=name, namespace=ns, cluster_ip=cluster_ip, selector={"app": name},
                                  ports=[ServicePort(port=80, name="http", protocol="TCP", target_port=8080)]))
    state.endpoint_slices.append(EndpointSlice(
        name=f"{name}-abcde", namespace=ns, service_name=name, ports=[EndpointPort(port=8080, name="http", protocol="TCP")],
        endpoints=[Endpoint(addresses=[ip], node_name=nodes[j % len(nodes)]) for j, ip in enumerate(ips)],
        labels={"kubernetes.io/service-name": name}))


def _delete_service(ns: str, name: str, state: ClusterState) -> None:
    state.services = [s for s in state.services if not (s.namespace == ns and s.name == name)]
    state.endpoint_slices = [s for s in state.endpoint_slices if not (s.namespace == ns and s.service_name == name)]


def service_churn(cluster: ClusterState, rate: float, duration: float, seed: int = 0, *, endpoints: int = 3,
                  namespace: str = "churn") -> list[Event]:
    """Services created and deleted at random (a Poisson process of ``rate`` changes per second
    for ``duration`` seconds, seeded): each change creates a Service ``churn-NNNN`` with
    ``endpoints`` endpoints or deletes one created earlier, half and half."""
    _check_times(rate=rate, duration=duration)
    import ipaddress

    rng = random.Random(seed)
    used_ips = [int(ipaddress.IPv4Address(s.cluster_ip)) for s in cluster.services if s.cluster_ip and ":" not in s.cluster_ip]
    next_ip = max(used_ips, default=int(ipaddress.IPv4Address("10.96.0.0"))) + 1
    ep_base = int(ipaddress.IPv4Address("10.15.0.0"))  # above synthetic_cluster's endpoints
    nodes = tuple(n.name for n in cluster.nodes) or ("node-1",)
    events, live, t, k = [], [], 0.0, 0
    while rate > 0:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        if live and rng.random() < 0.5:
            name = live.pop(rng.randrange(len(live)))
            events.append(Event(t, "service_delete", f"{namespace}/{name}", functools.partial(_delete_service, namespace, name)))
        else:
            name = f"churn-{k:04d}"
            ips = tuple(str(ipaddress.IPv4Address(ep_base + k * endpoints + j + 1)) for j in range(endpoints))
            change = functools.partial(_add_service, namespace, name, str(ipaddress.IPv4Address(next_ip + k)), ips, nodes)
            events.append(Event(t, "service_add", f"{namespace}/{name}", change))
            live.append(name)
            k += 1
    return events


def endpoint_flapping(cluster: ClusterState, service: str, period: float, duration: float, start: float = 0.0) -> list[Event]:
    """One endpoint of ``service`` failing its readiness probe and recovering, again and again:
    not ready at ``start``, ready half a ``period`` later, and so on for ``duration`` seconds."""
    _check_times(period=period, duration=duration, start=start)
    if period <= 0:
        raise InputError(f"period={period!r}", "must be positive", "give seconds > 0")
    ns, name = _service_key(cluster, service)
    ips = _endpoint_ips(cluster, ns, name)
    if not ips:
        raise InputError(f"service {ns}/{name}", "has no endpoints to flap", "pick a Service with endpoints")
    events, k = [], 0
    while k * period / 2 < duration:
        ready = k % 2 == 1
        events.append(Event(start + k * period / 2, "endpoint_ready" if ready else "endpoint_not_ready", f"{ns}/{name}",
                            functools.partial(_set_ready, ns, name, ips[0], ready)))
        k += 1
    return events


# ---- how long a sync takes --------------------------------------------------------------------------

@dataclass(frozen=True)
class DurationModel:
    """Seconds per sync: ``base + per_line * lines`` (iptables: iptables-restore input lines) or
    ``base + per_operation * operations`` (nftables: transaction operations).

    Defaults are this lab machine's orders of magnitude (kernel 6.18, 2 cores; the plan's
    measurements): iptables-legacy restored 1,000 Services x 10 endpoints (43k lines) in 0.23 s,
    about 5 us a line; ``nft -f`` of 1,000 Services (35k operations) took 2.1 s, about 60 us an
    operation, and a one-Service partial transaction on a 2,000-Service table 0.13 s. Refit them
    with :meth:`fit` from recorded samples (``kslab.scale.recorded()``)."""

    base: float = 0.010
    per_line: float = 5e-6
    nft_base: float = 0.05
    per_operation: float = 6e-5

    def seconds(self, mode: str, lines: int, operations: int) -> float:
        if mode == "nftables":
            return self.nft_base + self.per_operation * operations
        return self.base + self.per_line * lines

    def __call__(self, result: SyncResult) -> float:
        mode = getattr(result.ruleset, "mode", "iptables")
        n = result.operations  # iptables-restore lines, or nft operations
        return self.seconds(mode, n, n)

    @classmethod
    def fit(cls, sizes: Sequence[float], seconds: Sequence[float], mode: str = "iptables",
            start: "DurationModel | None" = None) -> "DurationModel":
        """Least-squares ``a + b x`` through samples (``x`` = lines for iptables, operations for
        nftables); the other mode's coefficients are kept from ``start`` (default: the defaults)."""
        xs, ys = [float(x) for x in sizes], [float(y) for y in seconds]
        if len(xs) != len(ys) or len(xs) < 2 or len(set(xs)) < 2:
            raise InputError("duration samples", "need at least two samples of different sizes", "record more sizes")
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        a = max(0.0, my - b * mx)
        b = max(0.0, b)
        base = start or cls()
        if mode == "nftables":
            return cls(base.base, base.per_line, a, b)
        return cls(a, b, base.nft_base, base.per_operation)

    @classmethod
    def from_recorded(cls, rows: Any, *, iptables_backend: str = "iptables-legacy", nft_backend: str = "nft") -> "DurationModel":
        """Fit both modes on a recording's ``restore`` rows (``kslab.scale.recorded()[0]``: columns
        measure, backend, seconds, lines, operations, timed_out): iptables on ``iptables_backend``'s
        loads against their lines, nftables on ``nft_backend``'s against their operations. The
        loads alone: the render time (small next to them at scale) is not in the recording.
        A mode without two usable sizes keeps the default coefficients."""
        model = cls()
        frame = rows[rows["measure"] == "restore"] if "measure" in rows else rows
        for mode, backend, x in (("iptables", iptables_backend, "lines"), ("nftables", nft_backend, "operations")):
            sel = frame[(frame["backend"] == backend) & frame["seconds"].notna()]
            if "timed_out" in sel:
                sel = sel[~sel["timed_out"].fillna(False).astype(bool)]
            xs = sel[x] if x in sel and sel[x].notna().all() else sel.get("lines")
            if xs is None or xs.isna().any() or xs.nunique() < 2:
                continue
            model = cls.fit(list(xs), list(sel["seconds"]), mode, start=model)
        return model


# ---- the simulation ----------------------------------------------------------------------------------

@dataclass
class SyncLoopConfig:
    """kube-proxy's timing flags and the simulator's knobs.

    ``duration``: ``"model"`` (:class:`DurationModel` defaults), a DurationModel, ``"measured"``
    (the real render + apply seconds of each sync here: not deterministic) or a callable
    ``SyncResult -> seconds``."""

    mode: str = "iptables"
    min_sync_period: float = DEFAULT_MIN_SYNC_PERIOD
    sync_period: float = DEFAULT_SYNC_PERIOD
    full_sync_period: float = FULL_SYNC_PERIOD
    burst: int = BURST_SYNCS
    runner: str = "1.33"
    duration: Any = "model"
    warmup: float = 10.0  # the first (direct) sync happens this long before time 0

    def __post_init__(self) -> None:
        if self.mode not in ("iptables", "nftables"):
            raise InputError(f"mode={self.mode!r}", "is not a proxy mode", "use iptables or nftables")
        if self.runner not in VARIANTS:
            raise InputError(f"runner={self.runner!r}", "is not a runner version kslab models", "use " + " or ".join(VARIANTS))
        _check_times(min_sync_period=self.min_sync_period, sync_period=self.sync_period,
                     full_sync_period=self.full_sync_period, warmup=self.warmup)
        if self.sync_period <= 0:
            raise InputError(f"sync_period={self.sync_period}", "must be positive", "kube-proxy's default is 30 s")
        if self.full_sync_period < self.min_sync_period:
            raise InputError(f"full_sync_period={self.full_sync_period}", "is shorter than min_sync_period",
                             "keep full_sync_period >= min_sync_period")
        if not (callable(self.duration) or self.duration in ("model", "measured")):
            raise InputError(f"duration={self.duration!r}", "is not a duration model",
                             'use "model", "measured", a DurationModel or a function of the SyncResult')

    def duration_of(self) -> Callable[[SyncResult], float]:
        if self.duration == "model":
            return DurationModel()
        if self.duration == "measured":
            return lambda r: r.seconds
        return self.duration


@dataclass
class SyncLoopResult:
    """What :func:`simulate` saw: ``syncs`` (one row per sync: start, end, full, reason, trigger
    (startup, changes, retry, max interval, canary), lines and operations (what it wrote: the
    iptables-restore lines, or the nft transaction's operations, one ``nft -f`` line each),
    services rewritten, changes read, stale chains deleted, duration, ok, error), ``changes`` (one row per event: t, kind,
    service, applied_at, staleness) and kube-proxy's ``metrics``."""

    syncs: Any
    changes: Any
    metrics: KubeProxyMetrics
    config: SyncLoopConfig

    def summary(self) -> dict:
        """Counts after start-up (the first, direct sync left out) and staleness of the changes."""
        s = self.syncs[self.syncs["trigger"] != "startup"]
        st = self.changes["staleness"]
        return {
            "mode": self.config.mode, "min_sync_period": self.config.min_sync_period,
            "syncs": int(len(s)), "full_syncs": int(s["full"].sum()), "partial_syncs": int((~s["full"]).sum()),
            "failed_syncs": int((~s["ok"]).sum()), "lines_written": int(s["lines"].sum()),
            "operations_written": int(s["operations"].sum()), "changes": int(len(self.changes)),
            "unapplied": int(st.isna().sum()),
            "staleness_mean": float(st.mean()) if st.notna().any() else math.nan,
            "staleness_max": float(st.max()) if st.notna().any() else math.nan,
            "sync_seconds_max": float(s["duration"].max()) if len(s) else math.nan,
        }


def _as_times(name: str, values: Iterable[float]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise InputError(f"{name}={v!r}", "is not a time", "give seconds on the simulation clock")
        out.append(float(v))
    return sorted(out)


def simulate(cluster: ClusterState, events: Sequence[Event], cfg: SyncLoopConfig | None = None, *, node: str | None = None,
             fail_at: Iterable[float] = (), outside_edits: Iterable[float] = (), until: float | None = None,
             proxy: dict | None = None) -> SyncLoopResult:
    """Run ``node``'s kube-proxy (default: the cluster's first node) through ``events``.

    ``fail_at``: times; the first sync starting at or after each one fails (its restore or nft
    transaction is refused; the kernel keeps its rules). ``outside_edits``: times at which
    someone flushes kube-proxy's rules on the node (``iptables -F`` / ``nft delete table``).
    ``until``: when to stop (default: a little after the last event, retry or poll that could
    matter). ``proxy``: further ProxyConfig options. The caller's cluster is not changed."""
    import pandas as pd

    cfg = cfg or SyncLoopConfig()
    if not isinstance(cfg, SyncLoopConfig):
        raise InputError("cfg", f"{type(cfg).__name__} is not a SyncLoopConfig", "pass SyncLoopConfig(...)")
    state = cluster.copy()
    if node is None:
        if not state.nodes:
            raise InputError("cluster", "has no nodes", "build it with kslab.synthetic.synthetic_cluster or a Lab")
        node = state.nodes[0].name
    options = dict(proxy or {})
    if options.get("mode", cfg.mode) != cfg.mode:
        raise InputError(f"proxy option mode={options['mode']!r}", f"differs from the config's mode {cfg.mode!r}",
                         "set the mode in SyncLoopConfig(mode=...)")
    options["mode"] = cfg.mode
    config = ProxyConfig.for_node(state, node, **options)
    events = sorted(events, key=lambda e: e.t)
    for e in events:
        if not isinstance(e, Event):
            raise InputError("events", f"{e!r} is not an Event", "build events with delete_deployment, service_churn, ...")
        _check_times(t=e.t)
    fails = _as_times("fail_at", fail_at)
    edits = _as_times("outside_edits", outside_edits)
    last = max([e.t for e in events] + fails + edits + [0.0])
    horizon = until if until is not None else last + 2 * cfg.sync_period + 2 * cfg.min_sync_period + 1.0
    duration_of = cfg.duration_of()

    proxier = Proxier(config, sync_period=cfg.sync_period, full_sync_period=cfg.full_sync_period)
    t0 = -cfg.warmup
    runner = BoundedFrequencyRunner(cfg.min_sync_period, cfg.full_sync_period, burst=cfg.burst,
                                    retry_interval=cfg.sync_period, variant=cfg.runner, start=t0)
    metrics = KubeProxyMetrics(mode=cfg.mode, family=config.family)
    iptables = cfg.mode == "iptables"
    kernel_chains: set[str] = set()  # iptables: the nat table's chains; nftables: the table's chains and sets
    flushed = False  # kube-proxy's rules were flushed by someone else and not yet rewritten in full
    canary_gone = False
    next_tick = t0 + cfg.sync_period if iptables else math.inf
    applied_at = [math.nan] * len(events)
    edit_rows: list[dict] = []
    unsynced: list[int] = []  # events applied to the cluster that no sync has read yet
    sync_rows: list[dict] = []
    i = j = 0  # next event, next outside edit
    fail_i = 0
    requested = False  # a change asked for a sync since the last one started
    retry_due = False  # a failed sync asked for a retry the runner has not run yet
    forced_direct = False  # the canary monitor asked for a sync while one was running

    def apply(ruleset) -> None:
        nonlocal flushed
        if fail_now:
            raise RuntimeError("iptables-restore: line 1 failed (injected)" if iptables
                               else "nft: Could not process rule: Device or resource busy (injected)")
        if flushed and ruleset.partial:
            if iptables and getattr(ruleset, "skipped_nat_chains", 0):
                raise RuntimeError("iptables-restore: Couldn't load target of KUBE-SERVICES: the chains were flushed")
            if not iptables and ruleset.operations:
                raise RuntimeError("nft: Could not process rule: No such file or directory (table ip kube-proxy is gone)")
        if iptables:
            kernel_chains.update(ruleset.nat.chains)
            kernel_chains.difference_update(ruleset.deleted_chains)
        else:
            kernel_chains.difference_update(op.name for op in ruleset.cleanup_ops)
            for op in ruleset.ops:
                if op.kind in ("chain", "set"):
                    if op.verb == "add":
                        kernel_chains.add(op.name)
                    elif op.verb == "delete":
                        kernel_chains.discard(op.name)
        if not ruleset.partial:
            flushed = False

    def take_event(k: int) -> None:
        nonlocal requested
        e = events[k]
        e.change(state)
        unsynced.append(k)
        requested = True
        metrics.queued(e.t)
        if e.kind in SERVICE_KINDS:
            metrics.service_changed(e.service)
        if e.kind in ENDPOINT_KINDS:
            metrics.endpoints_changed(e.service)
        runner.request(e.t)

    def take_edit(t: float) -> None:
        nonlocal flushed, canary_gone
        flushed = True
        canary_gone = iptables
        kernel_chains.clear()
        edit_rows.append({"t": t, "kind": "outside_edit", "service": "*", "applied_at": math.nan})

    def tick(t: float) -> bool:
        """The canary monitor polls; True if it found the canary gone (a forced full sync)."""
        nonlocal canary_gone, next_tick
        next_tick += cfg.sync_period
        if canary_gone:
            canary_gone = False
            proxier.force_full_sync("canary chain gone")
            return True
        return False

    def run_sync(start: float, direct: bool, trigger: str) -> None:
        nonlocal fail_now, fail_i, i, j, forced_direct, requested, retry_due
        runner.started(start, direct=direct)
        if not direct:
            requested = retry_due = False
        fail_now = fail_i < len(fails) and fails[fail_i] <= start + _EPS
        if fail_now:
            fail_i += 1
        read = list(unsynced)
        unsynced.clear()
        result = proxier.sync(state.services, state.endpoint_slices, apply, list_chains=lambda: sorted(kernel_chains),
                              now=start)
        seconds = float(duration_of(result))
        end = start + seconds
        # what happens while the sync runs: it reads nothing more; requests wait in the runner
        while True:
            t_event = events[i].t if i < len(events) else math.inf
            t_edit = edits[j] if j < len(edits) else math.inf
            t = min(t_event, t_edit, next_tick)
            if t >= end:
                break
            if t == t_event:
                take_event(i)
                i += 1
            elif t == t_edit:
                take_edit(t)
                j += 1
            elif tick(t):
                forced_direct = True
        runner.finished(end, result.ok)
        ok = result.ok
        if ok:
            for k in read:
                applied_at[k] = end
            if result.full:
                for row in edit_rows:
                    if math.isnan(row["applied_at"]) and row["t"] <= start:
                        row["applied_at"] = end
        else:
            unsynced[:0] = read  # the next (full) sync writes them
        triggers = [events[k].t for k in read if events[k].kind in ENDPOINT_KINDS]
        last = result.ruleset.rules_last() if iptables else None
        total = result.ruleset.rules_total() if iptables else None
        metrics.observe_sync(start=start, end=end, full=result.full, ok=ok, trigger_times=triggers,
                             rules_last=last, rules_total=total)
        sync_rows.append({"start": start, "end": end, "full": result.full, "reason": result.reason, "trigger": trigger,
                          "lines": result.operations, "operations": result.operations,
                          "services": len(result.updated_services), "changes": len(read),
                          "deleted_chains": len(result.deleted_chains), "duration": seconds, "ok": ok,
                          "error": result.error or ""})
        if not ok:
            retry_due = True

    fail_now = False
    run_sync(t0, True, "startup")
    while True:
        ns = runner.next_start()
        t_run = ns if ns is not None else math.inf
        t_event = events[i].t if i < len(events) else math.inf
        t_edit = edits[j] if j < len(edits) else math.inf
        if forced_direct:
            forced_direct = False
            run_sync(max(sync_rows[-1]["end"], t0), True, "canary")
            continue
        t = min(t_run, t_event, t_edit, next_tick)
        if t > horizon:
            break
        if t == t_event:  # changes first: a sync starting at the same instant reads them
            take_event(i)
            i += 1
        elif t == t_edit:
            take_edit(t)
            j += 1
        elif t == next_tick and next_tick <= t_run:
            if tick(t):
                run_sync(t, True, "canary")
        else:
            trigger = "changes" if requested else "retry" if retry_due else "max interval"
            run_sync(t, False, trigger)

    syncs = pd.DataFrame(sync_rows, columns=["start", "end", "full", "reason", "trigger", "lines", "operations", "services",
                                             "changes", "deleted_chains", "duration", "ok", "error"])
    rows = [{"t": e.t, "kind": e.kind, "service": e.service, "applied_at": applied_at[k]} for k, e in enumerate(events)]
    rows += edit_rows
    changes = pd.DataFrame(rows, columns=["t", "kind", "service", "applied_at"])
    changes["staleness"] = changes["applied_at"] - changes["t"]
    changes = changes.sort_values("t", kind="stable").reset_index(drop=True)
    return SyncLoopResult(syncs, changes, metrics, cfg)


def staleness_bound(min_sync_period: float, longest_sync: float, *, during_sync: bool = True, runner: str = "1.33") -> float:
    """The longest a change can wait before it is in the kernel, with syncs of at most
    ``longest_sync`` seconds and no failures: ``max(minSyncPeriod, d) + d`` for a change that
    arrives while no sync runs; one that arrives just after a sync started waits for that sync
    too: ``minSyncPeriod + 2d`` (1.33: ``2d`` once ``d >= minSyncPeriod``, a token being back
    by the time the sync ends)."""
    m, d = min_sync_period, longest_sync
    if not during_sync:
        return max(m, d) + d
    if runner == "1.33" and d >= m:
        return 2 * d
    return m + 2 * d


__all__ = ["Event", "delete_deployment", "service_churn", "endpoint_flapping", "DurationModel", "SyncLoopConfig",
           "SyncLoopResult", "simulate", "staleness_bound"]

