"""kube-proxy's sync metrics (``pkg/proxy/metrics/metrics.go``) as a simulated or lab kube-proxy
would export them on ``:10249/metrics``: names, HELP texts, buckets and the ``ip_family`` label
as in Kubernetes v1.33's metrics reference.

:class:`KubeProxyMetrics` is fed by the sync loop (:func:`kslab.proxy.syncloop.simulate`):
:meth:`~KubeProxyMetrics.queued` when a change asks for a sync (``proxier.Sync()``),
:meth:`~KubeProxyMetrics.endpoints_changed` / :meth:`~KubeProxyMetrics.service_changed` for the
change trackers, :meth:`~KubeProxyMetrics.observe_sync` after each ``syncProxyRules``.
:meth:`~KubeProxyMetrics.prometheus_text` prints the Prometheus text format; which metrics are
registered depends on the mode, as in ``RegisterMetrics(mode)`` (the full/partial latencies and
the iptables counters only in iptables mode, the nftables failure counters only in nftables mode).
Timestamps are seconds on the caller's clock.
"""

from __future__ import annotations

import bisect
import math
from decimal import Decimal
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

SUBSYSTEM = "kubeproxy"


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """``prometheus.ExponentialBuckets``: start, start*factor, ... (count of them)."""
    out, b = [], start
    for _ in range(count):
        out.append(b)
        b *= factor
    return tuple(out)


def linear_buckets(start: float, width: float, count: int) -> tuple[float, ...]:
    """``prometheus.LinearBuckets``."""
    return tuple(start + i * width for i in range(count))


def merge_buckets(*buckets: Sequence[float]) -> tuple[float, ...]:
    """``metrics.MergeBuckets``: note that it starts with a 0 bucket (``make([]float64, 1)``)."""
    out = [0.0]
    for b in buckets:
        out += list(b)
    return tuple(out)


BUCKETS = exponential_buckets(0.001, 2, 15)  # sync_proxy_rules_duration_seconds & co: 1 ms .. 16.384 s
NETWORK_PROGRAMMING_BUCKETS = merge_buckets(
    linear_buckets(0.25, 0.25, 2),  # 0.25s, 0.50s
    linear_buckets(1, 1, 59),  # 1s, 2s, ... 59s
    linear_buckets(60, 5, 12),  # 60s, 65s, ... 115s
    linear_buckets(120, 30, 7),  # 2min, 2.5min, ... 5min
)

# name (without the subsystem) -> (type, HELP), as registered upstream (component-base adds "[ALPHA] ")
HELP = {
    "sync_proxy_rules_duration_seconds": ("histogram", "SyncProxyRules latency in seconds"),
    "sync_full_proxy_rules_duration_seconds": ("histogram", "SyncProxyRules latency in seconds for full resyncs"),
    "sync_partial_proxy_rules_duration_seconds": ("histogram", "SyncProxyRules latency in seconds for partial resyncs"),
    "sync_proxy_rules_last_timestamp_seconds": ("gauge", "The last time proxy rules were successfully synced"),
    "sync_proxy_rules_last_queued_timestamp_seconds": ("gauge", "The last time a sync of proxy rules was queued"),
    "network_programming_duration_seconds": ("histogram", "In Cluster Network Programming Latency in seconds"),
    "sync_proxy_rules_endpoint_changes_pending": ("gauge", "Pending proxy rules Endpoint changes"),
    "sync_proxy_rules_endpoint_changes_total": ("counter", "Cumulative proxy rules Endpoint changes"),
    "sync_proxy_rules_service_changes_pending": ("gauge", "Pending proxy rules Service changes"),
    "sync_proxy_rules_service_changes_total": ("counter", "Cumulative proxy rules Service changes"),
    "sync_proxy_rules_iptables_restore_failures_total": ("counter", "Cumulative proxy iptables restore failures"),
    "sync_proxy_rules_iptables_partial_restore_failures_total": ("counter", "Cumulative proxy iptables partial restore failures"),
    "sync_proxy_rules_iptables_total": ("gauge", "Total number of iptables rules owned by kube-proxy"),
    "sync_proxy_rules_iptables_last": ("gauge", "Number of iptables rules written by kube-proxy in last sync"),
    "sync_proxy_rules_nftables_sync_failures_total": ("counter", "Cumulative proxy nftables sync failures"),
    "sync_proxy_rules_nftables_cleanup_failures_total": ("counter", "Cumulative proxy nftables cleanup failures"),
}
_COMMON = ("sync_proxy_rules_duration_seconds", "sync_proxy_rules_last_queued_timestamp_seconds",
           "sync_proxy_rules_last_timestamp_seconds", "sync_proxy_rules_endpoint_changes_pending",
           "sync_proxy_rules_endpoint_changes_total", "sync_proxy_rules_service_changes_pending",
           "sync_proxy_rules_service_changes_total", "network_programming_duration_seconds")
REGISTERED = {  # RegisterMetrics(mode)
    "iptables": _COMMON + ("sync_full_proxy_rules_duration_seconds", "sync_partial_proxy_rules_duration_seconds",
                           "sync_proxy_rules_iptables_restore_failures_total",
                           "sync_proxy_rules_iptables_partial_restore_failures_total",
                           "sync_proxy_rules_iptables_total", "sync_proxy_rules_iptables_last"),
    "nftables": _COMMON + ("sync_proxy_rules_nftables_sync_failures_total", "sync_proxy_rules_nftables_cleanup_failures_total"),
}
_UNLABELLED = {"sync_proxy_rules_endpoint_changes_pending", "sync_proxy_rules_endpoint_changes_total",
               "sync_proxy_rules_service_changes_pending", "sync_proxy_rules_service_changes_total"}


def _fmt(v: float) -> str:
    """A sample value or bucket bound as Prometheus' Go client prints it:
    ``strconv.FormatFloat(v, 'g', -1, 64)`` (shortest digits; exponent form below 1e-4 and
    from 1e+06 on, e.g. a timestamp ``1.7e+09``), ``+Inf``/``-Inf``/``NaN``."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(v)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    exp = len(ds) + exponent - 1  # scientific exponent
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    dp = exp + 1  # digits before the point
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return neg + ds + "0" * (dp - len(ds))
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    buckets: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last = +Inf
    sum: float = 0.0
    count: int = 0
    values: list[float] = field(default_factory=list, repr=False)  # every observation (for tables and quantiles)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1  # le: a value equal to a bound counts in it
        self.sum += value
        self.count += 1
        self.values.append(value)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count)`` per bucket, +Inf last, as the ``_bucket`` samples."""
        out, total = [], 0
        for le, n in zip(list(self.buckets) + [math.inf], self.counts):
            total += n
            out.append((le, total))
        return out

    def quantile(self, q: float) -> float:
        """The q-quantile of the observations themselves (not the bucket estimate)."""
        if not self.values:
            return math.nan
        v = sorted(self.values)
        return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]

    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


@dataclass
class KubeProxyMetrics:
    """One kube-proxy's sync metrics (one IP family)."""

    mode: str = "iptables"
    family: int = 4
    sync_proxy_rules_duration_seconds: Histogram = field(default_factory=Histogram)
    sync_full_proxy_rules_duration_seconds: Histogram = field(default_factory=Histogram)
    sync_partial_proxy_rules_duration_seconds: Histogram = field(default_factory=Histogram)
    network_programming_duration_seconds: Histogram = field(default_factory=lambda: Histogram(NETWORK_PROGRAMMING_BUCKETS))
    sync_proxy_rules_last_timestamp_seconds: float = 0.0
    sync_proxy_rules_last_queued_timestamp_seconds: float = 0.0
    sync_proxy_rules_endpoint_changes_total: int = 0
    sync_proxy_rules_service_changes_total: int = 0
    sync_proxy_rules_iptables_restore_failures_total: int = 0
    sync_proxy_rules_iptables_partial_restore_failures_total: int = 0
    sync_proxy_rules_nftables_sync_failures_total: int = 0
    sync_proxy_rules_nftables_cleanup_failures_total: int = 0
    sync_proxy_rules_iptables_total: dict[str, int] = field(default_factory=dict)
    sync_proxy_rules_iptables_last: dict[str, int] = field(default_factory=dict)
    full_syncs: int = 0  # kslab's counts (upstream: the _count of the full/partial histograms)
    partial_syncs: int = 0
    _pending_endpoints: set[str] = field(default_factory=set, repr=False)
    _pending_services: set[str] = field(default_factory=set, repr=False)

    @property
    def ip_family(self) -> str:
        return "IPv4" if self.family == 4 else "IPv6"

    @property
    def sync_proxy_rules_endpoint_changes_pending(self) -> int:
        return len(self._pending_endpoints)

    @property
    def sync_proxy_rules_service_changes_pending(self) -> int:
        return len(self._pending_services)

    # ---- what the sync loop reports --------------------------------------------------------
    def queued(self, now: float) -> None:
        """``proxier.Sync()``: a sync was asked for (``SetToCurrentTime``)."""
        self.sync_proxy_rules_last_queued_timestamp_seconds = now

    def endpoints_changed(self, service: str) -> None:
        """An EndpointSlice of ``service`` changed (EndpointsChangeTracker)."""
        self.sync_proxy_rules_endpoint_changes_total += 1
        self._pending_endpoints.add(service)

    def service_changed(self, service: str) -> None:
        """``service`` itself changed (ServiceChangeTracker)."""
        self.sync_proxy_rules_service_changes_total += 1
        self._pending_services.add(service)

    def observe_sync(self, *, start: float, end: float, full: bool, ok: bool, trigger_times: Iterable[float] = (),
                     rules_last: Mapping[str, int] | None = None, rules_total: Mapping[str, int] | None = None) -> None:
        """One ``syncProxyRules`` from ``start`` to ``end``: the latency histograms (every sync,
        failed or not), and on success the last-sync timestamp and one network-programming
        latency per endpoint change it carried (``end - trigger``, from each EndpointSlice's
        last-change-trigger-time); on failure the mode's failure counter."""
        seconds = max(0.0, end - start)
        self.sync_proxy_rules_duration_seconds.observe(seconds)
        (self.sync_full_proxy_rules_duration_seconds if full else self.sync_partial_proxy_rules_duration_seconds).observe(seconds)
        if full:
            self.full_syncs += 1
        else:
            self.partial_syncs += 1
        self._pending_endpoints.clear()  # the trackers were read at the sync's start
        self._pending_services.clear()
        if not ok:
            if self.mode == "nftables":
                self.sync_proxy_rules_nftables_sync_failures_total += 1
            else:
                self.sync_proxy_rules_iptables_restore_failures_total += 1
                if not full:
                    self.sync_proxy_rules_iptables_partial_restore_failures_total += 1
            return
        self.sync_proxy_rules_last_timestamp_seconds = end
        for t in trigger_times:
            if end >= t:
                self.network_programming_duration_seconds.observe(end - t)
        if rules_last is not None:
            self.sync_proxy_rules_iptables_last = dict(rules_last)
        if rules_total is not None:
            self.sync_proxy_rules_iptables_total = dict(rules_total)

    # ---- export ----------------------------------------------------------------------------
    def registered(self) -> tuple[str, ...]:
        """The metric names this mode registers (without ``kubeproxy_``)."""
        return REGISTERED.get(self.mode, REGISTERED["iptables"])

    def value(self, name: str):
        """A metric's value by its upstream name (with or without ``kubeproxy_``)."""
        name = name.removeprefix(SUBSYSTEM + "_")
        if name not in HELP:
            raise KeyError(f"{name!r} is not a kube-proxy sync metric kslab keeps")
        return getattr(self, name)

    def prometheus_text(self) -> str:
        """The registered metrics in the Prometheus text exposition format, as ``curl
        http://NODE:10249/metrics | grep kubeproxy_`` shows them (metric families sorted by
        name, like the Go client)."""
        fam = f'ip_family="{self.ip_family}"'
        out: list[str] = []
        for name in sorted(self.registered()):
            kind, help_text = HELP[name]
            full = f"{SUBSYSTEM}_{name}"
            out.append(f"# HELP {full} [ALPHA] {help_text}")
            out.append(f"# TYPE {full} {kind}")
            labels = "" if name in _UNLABELLED else fam
            value = getattr(self, name)
            if kind == "histogram":
                for le, n in value.cumulative():
                    sep = "," if labels else ""
                    out.append(f'{full}_bucket{{{labels}{sep}le="{_fmt(le)}"}} {n}')
                suffix = f"{{{labels}}}" if labels else ""
                out.append(f"{full}_sum{suffix} {_fmt(value.sum)}")
                out.append(f"{full}_count{suffix} {value.count}")
            elif isinstance(value, dict):
                for table in sorted(value):
                    out.append(f'{full}{{{fam},table="{table}"}} {value[table]}')
            else:
                suffix = f"{{{labels}}}" if labels else ""
                out.append(f"{full}{suffix} {_fmt(value)}")
        return "\n".join(out) + "\n"

    def summary(self) -> dict:
        """The numbers a chapter table shows."""
        d = self.sync_proxy_rules_duration_seconds
        npl = self.network_programming_duration_seconds
        return {
            "syncs": d.count, "full_syncs": self.full_syncs, "partial_syncs": self.partial_syncs,
            "sync_seconds_mean": d.mean(), "sync_seconds_max": max(d.values) if d.values else math.nan,
            "network_programming_p50": npl.quantile(0.5), "network_programming_p99": npl.quantile(0.99),
            "failures": (self.sync_proxy_rules_nftables_sync_failures_total if self.mode == "nftables"
                         else self.sync_proxy_rules_iptables_restore_failures_total),
        }
