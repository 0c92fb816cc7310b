"""kube-proxy's sync loop state: when a sync is full or partial, and what a partial sync rewrites.

A proxy mode (:class:`ProxyMode`: :data:`kslab.proxy.iptables.MODE` or
:data:`kslab.proxy.nftables.MODE`) turns a service port map, an endpoints map and the mode's own
state from the previous syncs (the nftables mode's element storage and stale chains; the
iptables mode has none) into rules, as a pure function. The ``Proxier`` adds what
kube-proxy keeps across syncs, whatever the mode (``pkg/proxy/iptables/proxier.go``'s sync
loop; reference ``kube-proxy.md`` §8):

- **change tracking**: the ServiceChangeTracker and EndpointsChangeTracker keep, per Service
  (``namespace/name``), the previous and current service ports and endpoints, and drop the
  entry when both are equal; what is left are ``UpdatedServices``
  (:mod:`kslab.proxy.changetracker`, which rebuilds only what changed);
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
``apply`` callable (:func:`kslab.proxy.iptables.node.full_sync` for a network namespace, a
:class:`~kslab.proxy.iptables.node.NodeIptables` for the simulator) and times it. Time is a
parameter (``now``, in seconds) so that simulated clocks work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping, Protocol, Sequence

from ..model import EndpointSlice, Service
from .changetracker import EndpointsChangeTracker, ServiceChangeTracker
from .config import DEFAULT_SYNC_PERIOD, FULL_SYNC_PERIOD, ProxyConfig
from .endpoints import MakeEndpointInfo
from .serviceport import BaseServicePortInfo, MakeServiceInfo, ServicePortName


class SyncedRules(Protocol):
    """What a proxy mode's sync produces, as the sync loop sees it (the iptables mode's
    :class:`kslab.proxy.iptables.RuleSet`, the nftables mode's
    :class:`kslab.proxy.nftables.NftRuleSet`).

    ``rules_last()``/``rules_total()`` are the mode's ``sync_proxy_rules_*_last/total`` counts
    (iptables: rules per table; nftables: operations, rules, elements, chains); the iptables
    names ``iptables_last``/``iptables_total`` stay as aliases. ``operations`` is what the sync
    wrote: iptables-restore lines, or the nft transaction's ``NumOperations``."""

    partial: bool
    large_cluster_mode: bool

    @property
    def deleted_chains(self) -> list[str]: ...

    def delete_stale_chains(self, existing_chains: Iterable[str]) -> list[str]:
        """Add the deletion of every chain of ``existing_chains`` this sync does not keep."""

    def raw_text(self) -> str:
        """The input the mode's tool loads (iptables-restore, nft -f)."""

    def rules_last(self) -> dict[str, int]: ...

    def rules_total(self) -> dict[str, int]: ...

    def iptables_last(self) -> dict[str, int]: ...

    def iptables_total(self) -> dict[str, int]: ...


class ProxyMode(Protocol):
    """A kube-proxy mode (iptables today, nftables next) as the mode-agnostic sync loop drives it.

    ``make_service_info`` and ``make_endpoint_info`` extend the base service port and endpoint
    with what the mode needs (chain names); ``sync_rules`` is the mode's ``syncProxyRules``: a
    pure function of the service ports (in order), the endpoints map, the configuration and the
    mode's state (``new_state()`` at start-up; the ruleset's ``state`` after each sync that
    loaded). With ``partial_services`` (``namespace/name`` keys) it writes the per-service rules
    of those Services only. ``now`` is the sync's start on the proxier's clock.
    """

    name: str
    make_service_info: MakeServiceInfo
    make_endpoint_info: MakeEndpointInfo

    def new_state(self) -> object | None: ...

    def sync_rules(
        self,
        service_ports: Sequence[BaseServicePortInfo],
        endpoints_map: Mapping[ServicePortName, list],
        config: ProxyConfig,
        *,
        partial_services: Collection[str] | None = None,
        state: object | None = None,
        now: float = 0.0,
    ) -> SyncedRules: ...


@dataclass
class SyncResult:
    """One call of ``syncProxyRules``."""

    node: str
    full: bool
    reason: str  # why full or partial: "first sync", "forced", "after a failed sync", "hourly", "partial"
    ruleset: SyncedRules  # the mode's rules (an iptables RuleSet or an nftables NftRuleSet)
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
        """Lines of input written (iptables-restore; for nftables, ``nft -f`` lines, one per operation)."""
        return self.ruleset.raw_text().count("\n")

    @property
    def operations(self) -> int:
        """What the sync wrote: nft operations (``NumOperations``), or iptables-restore lines."""
        ops = getattr(self.ruleset, "operations", None)
        return self.lines if ops is None else ops

    def summary(self) -> str:
        kind = "full" if self.full else "partial"
        if getattr(self.ruleset, "mode", "iptables") == "nftables":
            last = self.ruleset.rules_last()
            text = (f"{self.node}: {kind} sync ({self.reason}) {self.seconds * 1000:.1f} ms, "
                    f"{last['operations']} nft operations ({last['rules']} rules, {last['elements']} elements added), "
                    f"{len(self.updated_services)} service(s) rewritten, {len(self.deleted_chains)} chain(s) deleted")
            return text + (f"; FAILED: {self.error}" if self.error else "")
        last = self.ruleset.iptables_last()
        text = (f"{self.node}: {kind} sync ({self.reason}) {self.seconds * 1000:.1f} ms, "
                f"{last['filter']} filter + {last['nat']} nat rules written, "
                f"{len(self.updated_services)} service(s) rewritten, {len(self.deleted_chains)} chain(s) deleted")
        return text + (f"; FAILED: {self.error}" if self.error else "")


@dataclass
class ProxierMetrics:
    """The kube-proxy metrics of §8.5 that a lab can observe (names without ``kubeproxy_``).

    ``rules_last``/``rules_total`` are the mode's counts (:meth:`SyncedRules.rules_last`); the
    iptables mode's metric names ``sync_proxy_rules_iptables_last/total`` read the same dicts.
    Failures: iptables-restore failures in iptables mode, ``nftables_sync_failures_total`` (the
    transaction) and ``nftables_cleanup_failures_total`` (the stale-chain deletion) in nftables mode."""

    sync_full_proxy_rules_duration_seconds: list[float] = field(default_factory=list)
    sync_partial_proxy_rules_duration_seconds: list[float] = field(default_factory=list)
    sync_proxy_rules_iptables_restore_failures_total: int = 0
    sync_proxy_rules_iptables_partial_restore_failures_total: int = 0
    sync_proxy_rules_nftables_sync_failures_total: int = 0
    sync_proxy_rules_nftables_cleanup_failures_total: int = 0
    rules_total: dict[str, int] = field(default_factory=dict)
    rules_last: dict[str, int] = field(default_factory=dict)
    operations_last: int = 0  # what the last successful sync wrote (nft operations / restore lines)
    # sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"|"external"} (nftables mode)
    sync_proxy_rules_no_local_endpoints_total: dict[str, int] = field(default_factory=lambda: {"internal": 0, "external": 0})

    @property
    def sync_proxy_rules_duration_seconds(self) -> list[float]:
        return self.sync_full_proxy_rules_duration_seconds + self.sync_partial_proxy_rules_duration_seconds

    @property
    def sync_proxy_rules_iptables_total(self) -> dict[str, int]:
        return self.rules_total

    @sync_proxy_rules_iptables_total.setter
    def sync_proxy_rules_iptables_total(self, value: dict[str, int]) -> None:
        self.rules_total = value

    @property
    def sync_proxy_rules_iptables_last(self) -> dict[str, int]:
        return self.rules_last

    @sync_proxy_rules_iptables_last.setter
    def sync_proxy_rules_iptables_last(self, value: dict[str, int]) -> None:
        self.rules_last = value


def mode_named(name: str) -> ProxyMode:
    """The :class:`ProxyMode` for kube-proxy's ``--proxy-mode`` value (imported lazily)."""
    if name == "nftables":
        from .nftables import MODE as nft_mode

        return nft_mode
    from .iptables import MODE as ipt_mode  # the default mode, as kube-proxy's

    return ipt_mode


class Proxier:
    """One node's kube-proxy across syncs, in one proxy mode (iptables by default).

    ``minimize_restore=False`` behaves like kube-proxy before v1.26 (every sync is full).
    ``sync_period`` only matters for the stale-chain cleanup in large-cluster mode (and for
    the retry delay, which the caller decides). ``mode_state`` is the mode's state across
    syncs (``mode.new_state()``; replaced by each loaded sync's, its stale chains forgotten
    after a failed one, as kube-proxy clears ``staleChains``).
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        mode: ProxyMode | None = None,
        minimize_restore: bool = True,
        sync_period: float = DEFAULT_SYNC_PERIOD,
        full_sync_period: float = FULL_SYNC_PERIOD,
    ) -> None:
        if mode is None:
            mode = mode_named(config.mode)
        self.config = config
        self.mode = mode
        self.minimize_restore = minimize_restore
        self.sync_period = sync_period
        self.full_sync_period = full_sync_period
        self.need_full_sync = True
        self.forced_reason = "first sync"
        self.last_full_sync = -math.inf
        self.last_cleanup = -math.inf
        self.metrics = ProxierMetrics()
        self.history: list[SyncResult] = []
        new_state = getattr(mode, "new_state", None)
        self.mode_state = new_state() if new_state is not None else None
        self.service_changes = ServiceChangeTracker(config.family, mode.make_service_info)
        self.endpoints_changes = EndpointsChangeTracker(config.node_name, config.family, mode.make_endpoint_info)

    def force_full_sync(self, reason: str = "forced") -> None:
        """``forceSyncProxyRules``: the next sync is full (canary gone, node labels changed...)."""
        self.need_full_sync = True
        self.forced_reason = reason

    # ---- one sync --------------------------------------------------------------------------
    def sync(
        self,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
        apply: Callable[[SyncedRules], None],
        *,
        list_nat_chains: Callable[[], Iterable[str]] | None = None,
        now: float | None = None,
        list_chains: Callable[[], Iterable[str]] | None = None,
    ) -> SyncResult:
        """Render this sync (full or partial), hand it to ``apply``, record the outcome.

        ``list_chains`` (or its older name ``list_nat_chains``) returns the chains kube-proxy's
        tables hold on the node: iptables, the nat table's (``iptables-save -t nat``);
        nftables, the ``kube-proxy`` table's chains and sets (``nft list chains``/``sets``).
        Without it no stale chains are deleted. An exception from ``apply`` fails the sync
        (recorded in the result and the metrics, never raised): the next sync is full. An
        nftables ruleset's ``cleanup_error`` (set by ``NftRuleSet.apply_with``) counts a failed
        stale-chain deletion, which does not fail the sync.
        """
        list_nat_chains = list_chains if list_chains is not None else list_nat_chains
        now = time.monotonic() if now is None else now
        t0 = time.perf_counter()
        # UpdatedServices: service and endpoint changes since the last sync
        updated = self.service_changes.update(services) | self.endpoints_changes.update(slices)
        if not self.minimize_restore:
            full, reason = True, "MinimizeIPTablesRestore off"
        elif self.need_full_sync:
            full, reason = True, self.forced_reason
        elif now - self.last_full_sync > self.full_sync_period:
            full, reason = True, "hourly"
        else:
            full, reason = False, "partial"
        if self.mode_state is None:
            ruleset = self.mode.sync_rules(self.service_changes.ordered(), self.endpoints_changes.endpoints_map, self.config,
                                           partial_services=None if full else updated)
        else:
            ruleset = self.mode.sync_rules(self.service_changes.ordered(), self.endpoints_changes.endpoints_map, self.config,
                                           partial_services=None if full else updated, state=self.mode_state, now=now)
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
        services_now = self.service_changes.service_ports
        rewritten = frozenset(services_now) if full else frozenset(k for k in updated if k in services_now)
        result = SyncResult(
            node=self.config.node_name, full=full, reason=reason, ruleset=ruleset, updated_services=rewritten,
            deleted_chains=list(ruleset.deleted_chains), render_seconds=t1 - t0, apply_seconds=t2 - t1, at=now, error=error,
        )
        m = self.metrics
        (m.sync_full_proxy_rules_duration_seconds if full else m.sync_partial_proxy_rules_duration_seconds).append(result.seconds)
        nft = getattr(ruleset, "mode", "iptables") == "nftables"
        if nft and getattr(ruleset, "cleanup_error", None):
            m.sync_proxy_rules_nftables_cleanup_failures_total += 1
        if error is None:
            self.need_full_sync = False
            if full:
                self.last_full_sync = now
            if cleanup:
                self.last_cleanup = now
            if self.mode_state is not None:
                self.mode_state = getattr(ruleset, "state", self.mode_state)
            m.rules_last = ruleset.iptables_last()
            m.rules_total = ruleset.iptables_total()
            m.operations_last = result.operations
            no_local = getattr(ruleset, "no_local_endpoints", None)
            if no_local is not None:
                m.sync_proxy_rules_no_local_endpoints_total = dict(no_local)
        else:
            if nft:
                m.sync_proxy_rules_nftables_sync_failures_total += 1
                stale = getattr(self.mode_state, "stale_chains", None)
                if stale is not None:
                    stale.clear()  # "staleChains is now incorrect since we didn't actually flush the chains"
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
        apply: Callable[[SyncedRules], None],
        *,
        list_nat_chains: Callable[[], Iterable[str]] | None = None,
        now: float | None = None,
        list_chains: Callable[[], Iterable[str]] | None = None,
    ) -> list[SyncResult]:
        """:meth:`sync`, and if it failed, at once the full sync that follows (kube-proxy waits
        ``syncPeriod`` before retrying; a lab does not). Returns one or two results."""
        services, slices = list(services), list(slices)
        list_chains = list_chains if list_chains is not None else list_nat_chains
        results = [self.sync(services, slices, apply, list_chains=list_chains, now=now)]
        if not results[-1].ok:
            results.append(self.sync(services, slices, apply, list_chains=list_chains, now=now))
        return results

