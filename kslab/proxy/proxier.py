"""kube-proxy's sync loop state: when a sync is full or partial, and what a partial sync rewrites.

:func:`kslab.proxy.iptables.render` is a pure function of Services, EndpointSlices and a
:class:`~kslab.proxy.iptables.ProxyConfig`. kube-proxy's ``Proxier`` adds state across syncs
(``pkg/proxy/iptables/proxier.go``; reference ``kube-proxy.md`` §8):

- **change tracking**: the ServiceChangeTracker and EndpointsChangeTracker keep, per Service
  (``namespace/name``), the previous and current service ports and endpoints, and drop the
  entry when both are equal; what is left are ``UpdatedServices``. Here that is a diff of
  snapshots taken at the last successful sync (:meth:`Proxier.changes`);
- **full or partial** (KEP-3453 ``MinimizeIPTablesRestore``, GA in v1.28): a full sync at
  start-up, after any failed sync, when forced (the canary chain vanished, node labels
  changed) and at least once per ``FullSyncPeriod`` (1 hour); otherwise a partial sync that
  rewrites the top-level chains and only the changed Services' SVC/SVL/EXT/FW/SEP chains;
- **stale chains**: service chains listed by ``iptables-save -t nat`` that are no longer
  active are flushed and deleted, on every sync, or at most once per ``syncPeriod`` in
  large-cluster mode (more than 1,000 endpoints);
- **failures**: a failed restore sets ``needFullSync`` (and, for a partial one, bumps
  ``sync_proxy_rules_iptables_partial_restore_failures_total``); kube-proxy retries after
  ``syncPeriod``.

Applying the text to a kernel is not this module's business: :meth:`Proxier.sync` takes an
``apply`` callable (``kslab.proxy.apply`` for a network namespace, an
:class:`~kslab.proxy.iptsave.IptablesState` for the simulator) and times it. Time is a
parameter (``now``, in seconds) so that simulated clocks work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..model import EndpointSlice, Service
from .iptables import constants as C
from .iptables import ProxyConfig, RuleSet, render
from .serviceport import EndpointInfo, ServicePortInfo, build_endpoints_map, service_port_infos


@dataclass
class SyncResult:
    """One call of ``syncProxyRules``."""

    node: str
    full: bool
    reason: str  # why full or partial: "first sync", "forced", "after a failed sync", "hourly", "partial"
    ruleset: RuleSet
    updated_services: frozenset[str]  # Services whose chains this sync rewrote (every one in a full sync)
    deleted_chains: list[str]
    render_seconds: float
    apply_seconds: float
    at: float  # the sync's start, on the proxier's clock
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def seconds(self) -> float:
        """``sync_proxy_rules_duration_seconds``: the whole sync, render and restore."""
        return self.render_seconds + self.apply_seconds

    @property
    def lines(self) -> int:
        """Lines of iptables-restore input written."""
        return self.ruleset.raw_text().count("\n")

    def summary(self) -> str:
        kind = "full" if self.full else "partial"
        last = self.ruleset.iptables_last()
        text = (f"{self.node}: {kind} sync ({self.reason}) {self.seconds * 1000:.1f} ms, "
                f"{last['filter']} filter + {last['nat']} nat rules written, "
                f"{len(self.updated_services)} service(s) rewritten, {len(self.deleted_chains)} chain(s) deleted")
        return text + (f"; FAILED: {self.error}" if self.error else "")


@dataclass
class ProxierMetrics:
    """The kube-proxy metrics of §8.5 that a lab can observe (names without ``kubeproxy_``)."""

    sync_full_proxy_rules_duration_seconds: list[float] = field(default_factory=list)
    sync_partial_proxy_rules_duration_seconds: list[float] = field(default_factory=list)
    sync_proxy_rules_iptables_restore_failures_total: int = 0
    sync_proxy_rules_iptables_partial_restore_failures_total: int = 0
    sync_proxy_rules_iptables_total: dict[str, int] = field(default_factory=dict)
    sync_proxy_rules_iptables_last: dict[str, int] = field(default_factory=dict)

    @property
    def sync_proxy_rules_duration_seconds(self) -> list[float]:
        return self.sync_full_proxy_rules_duration_seconds + self.sync_partial_proxy_rules_duration_seconds


ServiceSnapshot = dict[str, list[ServicePortInfo]]
EndpointsSnapshot = dict[str, list[tuple[str, list[tuple]]]]


def _endpoint_key(e: EndpointInfo) -> tuple:
    """What BaseEndpointInfo compares (reflect.DeepEqual in the change tracker)."""
    return (e.ip, e.port, e.is_local, e.ready, e.serving, e.terminating, e.zone_hints, e.node_hints, e.node_name, e.zone)


class Proxier:
    """One node's kube-proxy (iptables mode) across syncs.

    ``minimize_restore=False`` behaves like kube-proxy before v1.26 (every sync is full).
    ``sync_period`` only matters for the stale-chain cleanup in large-cluster mode (and for
    the retry delay, which the caller decides).
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        minimize_restore: bool = True,
        sync_period: float = C.DEFAULT_SYNC_PERIOD,
        full_sync_period: float = C.FULL_SYNC_PERIOD,
    ) -> None:
        self.config = config
        self.minimize_restore = minimize_restore
        self.sync_period = sync_period
        self.full_sync_period = full_sync_period
        self.need_full_sync = True
        self.forced_reason = "first sync"
        self.last_full_sync = -math.inf
        self.last_cleanup = -math.inf
        self.metrics = ProxierMetrics()
        self.history: list[SyncResult] = []
        self._services: ServiceSnapshot = {}
        self._endpoints: EndpointsSnapshot = {}

    # ---- change tracking -------------------------------------------------------------------
    def _snapshot(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> tuple[ServiceSnapshot, EndpointsSnapshot]:
        svc_snap: ServiceSnapshot = {}
        for svc in services:
            infos = service_port_infos(svc, self.config.family)
            if infos:
                svc_snap[f"{svc.namespace}/{svc.name}"] = infos
        ep_snap: EndpointsSnapshot = {}
        for spn, eps in build_endpoints_map(list(slices), self.config.node_name, self.config.family).items():
            ep_snap.setdefault(spn.service_key, []).append((str(spn), [_endpoint_key(e) for e in eps]))
        for v in ep_snap.values():
            v.sort(key=lambda item: item[0])
        return svc_snap, ep_snap

    def changes(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> frozenset[str]:
        """``UpdatedServices`` (service and endpoint changes) since the last successful sync."""
        svc_snap, ep_snap = self._snapshot(services, slices)
        return _diff(self._services, svc_snap) | _diff(self._endpoints, ep_snap)

    def force_full_sync(self, reason: str = "forced") -> None:
        """``forceSyncProxyRules``: the next sync is full (canary gone, node labels changed...)."""
        self.need_full_sync = True
        self.forced_reason = reason

    # ---- one sync --------------------------------------------------------------------------
    def sync(
        self,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
        apply: Callable[[RuleSet], None],
        *,
        list_nat_chains: Callable[[], Iterable[str]] | None = None,
        now: float | None = None,
    ) -> SyncResult:
        """Render this sync (full or partial), hand it to ``apply``, record the outcome.

        ``list_nat_chains`` returns the chains of the node's nat table (``iptables-save -t
        nat``); without it no stale chains are deleted. An exception from ``apply`` fails the
        sync (recorded in the result and the metrics, never raised): the next sync is full.
        """
        now = time.monotonic() if now is None else now
        services = list(services)
        slices = list(slices)
        t0 = time.perf_counter()
        svc_snap, ep_snap = self._snapshot(services, slices)
        updated = _diff(self._services, svc_snap) | _diff(self._endpoints, ep_snap)
        if not self.minimize_restore:
            full, reason = True, "MinimizeIPTablesRestore off"
        elif self.need_full_sync:
            full, reason = True, self.forced_reason
        elif now - self.last_full_sync > self.full_sync_period:
            full, reason = True, "hourly"
        else:
            full, reason = False, "partial"
        ruleset = render(services, slices, self.config, partial_services=None if full else updated)
        # stale chains: every sync, or at most once per syncPeriod in large-cluster mode
        cleanup = list_nat_chains is not None and (not ruleset.large_cluster_mode or now - self.last_cleanup > self.sync_period)
        if cleanup:
            ruleset.delete_stale_chains(list_nat_chains())  # type: ignore[misc]  (cleanup implies list_nat_chains)
        t1 = time.perf_counter()
        error = None
        try:
            apply(ruleset)
        except Exception as exc:  # the restore failed: the kernel kept its old rules
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        t2 = time.perf_counter()
        rewritten = frozenset(svc_snap) if full else frozenset(updated & set(svc_snap))
        result = SyncResult(
            node=self.config.node_name, full=full, reason=reason, ruleset=ruleset, updated_services=rewritten,
            deleted_chains=list(ruleset.nat.deleted), render_seconds=t1 - t0, apply_seconds=t2 - t1, at=now, error=error,
        )
        m = self.metrics
        (m.sync_full_proxy_rules_duration_seconds if full else m.sync_partial_proxy_rules_duration_seconds).append(result.seconds)
        if error is None:
            self._services, self._endpoints = svc_snap, ep_snap
            self.need_full_sync = False
            if full:
                self.last_full_sync = now
            if cleanup:
                self.last_cleanup = now
            m.sync_proxy_rules_iptables_last = ruleset.iptables_last()
            m.sync_proxy_rules_iptables_total = ruleset.iptables_total()
        else:
            m.sync_proxy_rules_iptables_restore_failures_total += 1
            if not full:
                m.sync_proxy_rules_iptables_partial_restore_failures_total += 1
            self.force_full_sync("after a failed sync")
        self.history.append(result)
        return result


    def sync_and_retry(
        self,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
        apply: Callable[[RuleSet], None],
        *,
        list_nat_chains: Callable[[], Iterable[str]] | None = None,
        now: float | None = None,
    ) -> list[SyncResult]:
        """:meth:`sync`, and if it failed, at once the full sync that follows (kube-proxy waits
        ``syncPeriod`` before retrying; a lab does not). Returns one or two results."""
        services, slices = list(services), list(slices)
        results = [self.sync(services, slices, apply, list_nat_chains=list_nat_chains, now=now)]
        if not results[-1].ok:
            results.append(self.sync(services, slices, apply, list_nat_chains=list_nat_chains, now=now))
        return results


def _diff(old: dict, new: dict) -> frozenset[str]:
    return frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))

