"""``kslab.Lab``: the study's cluster on a backend, with verbs a learner uses.

    lab = kslab.Lab()                       # sim backend (or $KSLAB_BACKEND), the study's lab
    lab.render("myk8s-worker")              # the node's rules (RuleSet; .restore_text(), .save_text())
    print(lab.trace("net-pod", "svc-clusterip"))
    df = lab.run("net-pod", "svc-clusterip", n=1000, seed=1)
    lab.run("mypc", "myk8s-worker:svc-nodeport")   # a Service's nodePort by the Service's name
    lab.scale("deploy-echo", 5); lab.patch_service("svc-clusterip", session_affinity="ClientIP")
    lab.place("deploy-echo", {"myk8s-worker": 2, "myk8s-worker2": 1})   # pods per node, exactly
    lab.apply(kslab.resources.study_lab() / "loadbalancer")   # chapter 07's svc-lb (data/myk8s/loadbalancer)
    kslab.Lab(node_port_range="30000-30100"); lab.set_node_port_range("30000-30100")
    lab.reset()                             # back to the study's lab, exactly as it was made
    dual = kslab.Lab("myk8s-dualstack")     # the same lab dual-stack (data/myk8s-dualstack): a Proxier per family
    dual.render("myk8s-worker", family=6)   # the IPv6 proxier's rules (ip6tables); family=None: the primary's
    twin = lab.copy()                       # an independent copy on the simulator (what checks use)

Every change re-renders the nodes' rules and re-applies them to the dataplane, the way
kube-proxy re-syncs after a Service or EndpointSlice event; xt_recent lists and the simulated
clock carry over, as they do in a kernel.

**One cluster, many experiments.** The cluster's allocations (ClusterIPs, nodePorts, pods' name
suffixes, scheduling and so pod IPs) come from ``cluster_seed``, fixed by default
(:data:`kslab.controlplane.CLUSTER_SEED`): every ``Lab()`` of the study's manifests, in every
chapter and every ``kslab`` command, is the same cluster. ``seed`` (and ``run(..., seed=)``)
only moves traffic: client ports and kube-proxy's random choices.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import ipaddress
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd

from .controlplane import CLUSTER_SEED, MAX_ENDPOINTS_PER_SLICE, BuildOptions, ControlPlane, NodePortUse, build_state, parse_port_range
from .dataplane import Dataplane, Trace, factory
from .dataplane.base import RealClock
from .kubelet import ENDPOINTSLICE_TIMER, Kubelet, LifecycleEvent, NetnsProber, SimProber, lifecycle_frame
from .endpointslice import check_max_endpoints_per_slice
from .errors import EnvironmentProblem, InputError
from .loadbalancer import LBState
from .manifests import Document, load_documents, parse_service
from .model import DEFAULT_NODE_PORT_RANGE, ClusterState, LoadBalancerIngress
from .proxy.config import DEFAULT_MIN_SYNC_PERIOD, PROXY_MODES, ProxyConfig, check_options as check_proxy_options
from .proxy.iptables import RuleSet, render
from .proxy.metrics import KubeProxyMetrics
from .proxy.metaproxier import MetaProxier, resolve_family
from .proxy.proxier import SyncResult
from .resources import named_lab, study_lab
from .shell import ShellOutput
from .sim.network import Client, resolve_client, resolve_destination

if TYPE_CHECKING:
    from .bandwidth import BandwidthRun
    from .iperf3 import IperfOptions

SYNC_HISTORY = 1000  # syncs a Lab remembers: a slider moved all afternoon must not grow the heap
LIFECYCLE_HISTORY = 10000  # lifecycle events a Lab remembers (lab.lifecycle)
PROXY_SYNC_TIMER = "kube-proxy/sync"  # a probe-driven change's kube-proxy sync, minSyncPeriod after the last one
REAL_BATCH = 0.2  # timeline on a real clock: connections due within this many seconds go out in one client run
BURST_SYNCS = 2  # pkg/proxy/iptables (1.33): burstSyncs, the burst of the sync runner's token bucket


def sync_tokens(tokens: float, since: float | None, now: float, min_interval: float, burst: int = BURST_SYNCS) -> float:
    """The tokens kube-proxy's ``BoundedFrequencyRunner`` limiter holds at ``now``: a token bucket
    (``flowcontrol.NewTokenBucketRateLimiter(1/minSyncPeriod, burstSyncs)``), full at start
    (``since`` None), ``tokens`` left at ``since``, refilled at one per ``min_interval``. A sync
    runs at once when a token is there (``TryAccept``), else at last sync + ``min_interval``."""
    if since is None or min_interval <= 0:
        return float(burst)
    return min(float(burst), tokens + (now - since) / min_interval)
HAIRPIN_RULES = r"^-A KUBE-SEP-\S+ -s \S+ .*-j KUBE-MARK-MASQ$"  # each SEP chain's first rule (iptables-save form)
HAIRPIN_RULES_NFT = r"^endpoint-\S+ ip saddr \S+ jump mark-for-masquerade$"  # the same rules in nftables mode (CHAIN RULE)


def hairpin_rules(mode: str = "iptables") -> str:
    """The :meth:`Lab.delete_rules` pattern of kube-proxy's hairpin rules in proxy ``mode``."""
    return HAIRPIN_RULES_NFT if mode == "nftables" else HAIRPIN_RULES
# every rule of a built-in chain: on a lab's node only kube-proxy's jumps, which its full sync puts back in its own order
BUILTIN_CHAIN_RULES = r"^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) "

class Lab:
    """The study's lab (or any manifests) on a backend: the cluster, its control plane, one
    kube-proxy (:class:`~kslab.proxy.proxier.Proxier`) per node, and one
    :class:`~kslab.dataplane.Dataplane` the rules run on (``sim``: the simulator, ``netns``: the
    kernel, ``kind``: a live kind cluster). Every verb works the same on every backend.

    ``backend="kind"`` reads the cluster of kube context ``context`` (default: the current one;
    a context not named ``kind-*`` only with ``allow_any_context=True``) instead of building it
    from ``manifests``, whose objects must be there, made by kslab (``kslab apply``: the line
    that refuses a cluster without them says so); read-only until a verb changes it;
    its own kube-proxy writes the rules and the Lab's Proxiers are the prediction
    (:mod:`kslab.kind.dataplane`). A backend named by ``KSLAB_BACKEND`` that cannot run here
    prints one line and runs on sim (:attr:`fallback` keeps why; ``KSLAB_STRICT_BACKEND=1`` makes
    it an error, as naming the backend as an argument does).

    ``seed`` seeds the traffic (client ports, ``statistic`` draws) where the backend can be
    seeded; ``cluster_seed`` seeds the cluster's allocations and is best left alone: with the
    default every lab of the same manifests is the same cluster (see the module docstring).

    ``node_port_range`` (``"30000-30100"``) is the API server's ``--service-node-port-range``
    (default 30000-32767; :meth:`set_node_port_range` changes it later); not on a live cluster,
    whose API server's flag it is.

    ``max_endpoints_per_slice`` (1..1000, default 100) is kube-controller-manager's
    ``--max-endpoints-per-slice``: how many endpoints the EndpointSlice controller puts in one
    slice (:mod:`kslab.endpointslice`); on a live cluster only its own value, 100 on kind.

    ``proxy_mode`` (``"iptables"``, the default, or ``"nftables"``) is kube-proxy's
    ``--proxy-mode`` on every node, kept as the proxy option ``mode`` (the same as
    ``proxy={"mode": ...}``; :meth:`set_proxy` ``(mode=...)`` switches a running lab, and each
    node's kube-proxy removes the other mode's rules first, as its ``CleanupLeftovers`` does).
    Unset, ``$KSLAB_PROXY_MODE`` decides (not on a live cluster, whose kube-proxy's own mode is read)."""

    def __init__(
        self,
        manifests: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
        *,
        backend: str | None = None,
        seed: int = 0,
        proxy: dict | None = None,
        cluster_seed: int = CLUSTER_SEED,
        context: str | None = None,
        allow_any_context: bool = False,
        node_port_range: str | tuple[int, int] | None = None,
        max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
        proxy_mode: str | None = None,
    ) -> None:
        self._max_endpoints_per_slice = check_max_endpoints_per_slice(max_endpoints_per_slice)
        # the API server's --service-node-port-range (default 30000-32767); checked before anything starts
        self._node_port_range = parse_port_range(node_port_range, "node_port_range") if node_port_range is not None else DEFAULT_NODE_PORT_RANGE
        from_env = backend is None
        backend = backend or os.environ.get("KSLAB_BACKEND") or "sim"
        self.fallback: str | None = None  # why the backend asked for by KSLAB_BACKEND could not run (then on sim)
        live = None  # a live cluster (kind): its state, its API server, its dataplane
        paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests or [study_lab()])
        paths = [named_lab(p) or p for p in paths]  # "myk8s-dualstack": the lab of that name (kslab.resources.LABS)
        self._documents: list[Document] = load_documents(paths)  # read once: reset() rebuilds the same cluster from them
        try:
            factory.check_environment(backend)
            live = factory.open_live(backend, context=context, allow_any_context=allow_any_context, seed=seed,
                                     documents=self._documents, paths=[str(p) for p in paths] if manifests else None)
        except EnvironmentProblem as e:
            if not from_env or os.environ.get("KSLAB_STRICT_BACKEND"):
                raise
            # a notebook asked through KSLAB_BACKEND: say why in one line and run on sim
            self.fallback = f"{backend} backend unavailable ({e})"
            print(f"kslab: {self.fallback}; running on sim")
            backend = "sim"
        if live and node_port_range is not None:
            live.dataplane.close()
            raise _live_range_error()
        if live and max_endpoints_per_slice != MAX_ENDPOINTS_PER_SLICE:
            live.dataplane.close()
            raise InputError(
                "max_endpoints_per_slice", "a live cluster's slice size is its kube-controller-manager's --max-endpoints-per-slice, which kslab does not change",
                f"try it on the simulator: kslab.Lab(backend=\"sim\", max_endpoints_per_slice={max_endpoints_per_slice})")
        proxy = _with_proxy_mode(proxy, proxy_mode, from_env=live is None)
        live_mode = (live.proxy_options.get("mode") or "iptables") if live else None
        if live and proxy.get("mode") not in (None, live_mode):
            live.dataplane.close()
            raise InputError("proxy_mode", f"{proxy['mode']!r}: the live cluster's kube-proxy runs {live_mode} mode "
                             "(its kube-system/kube-proxy ConfigMap), which kslab does not change",
                             f"drop proxy_mode on kind, or try the other mode on a sim twin: lab.copy().set_proxy(mode={proxy['mode']!r})")
        self._proxy_at_start = check_proxy_options({**(live.proxy_options if live else {}), **proxy})
        self.proxy_options = dict(self._proxy_at_start)
        self.backend = backend
        self.seed = seed  # the traffic's
        self.cluster_seed = cluster_seed  # the cluster's allocations'
        # on kind the cluster is the live one and its API server is the control plane (read-only until a verb changes it)
        self.cluster: ClusterState = live.cluster if live else self._build_cluster()
        self.control = live.control if live else ControlPlane.of(self.cluster, cluster_seed)
        self._rules: dict[tuple[str, int], RuleSet] = {}  # (node, family) -> its last full ruleset
        self.syncs: list[SyncResult] = []  # the last SYNC_HISTORY kube-proxy syncs, per node, timed (oldest first)
        # each node's kube-proxy across syncs: one Proxier per IP family of the cluster (MetaProxier)
        self._proxiers: dict[str, MetaProxier] = {}
        self._broken: set[str] = set()  # pods whose app break_pod broke
        # (namespace, name) -> the status.loadBalancer.ingress a manifest applied to a live cluster asked for (copy())
        self._lb_asked: dict[tuple[str, str], list[LoadBalancerIngress]] = {}
        self.generation = 0  # +1 on every change a connection could see (a sync, a hand edit, a broken pod)
        self.dataplane: Dataplane = live.dataplane if live else factory.create(backend, self.cluster, seed=seed)
        self.lifecycle: list[LifecycleEvent] = []  # the lifecycle timeline (lifecycle_frame())
        # kube-proxy's minSyncPeriod: a probe-driven change is synced at once while the sync runner
        # has a token (burst 2), else at last sync + this (sync_tokens)
        self.min_sync_period = DEFAULT_MIN_SYNC_PERIOD
        self._last_sync_at: float | None = None  # the cluster clock at kube-proxy's last sync
        self._sync_tokens = float(BURST_SYNCS)  # the runner's tokens left at its last sync
        self.kubelet: Kubelet | None = None
        try:
            self._sync()
            self._start_kubelet()
        except BaseException:
            self.dataplane.close()
            raise

    # ---- the kubelets and time -------------------------------------------------------------------
    def _start_kubelet(self) -> None:
        """The nodes' kubelets (readiness probes, :mod:`kslab.kubelet`): none on a live cluster,
        whose own kubelets probe; real probes on netns, simulated ones on sim."""
        self._real_anchor = (time.monotonic(), self.control.state.clock)
        if getattr(self.control, "live", False) or not hasattr(self.control, "schedule"):
            self.kubelet = None
            return
        kernel = getattr(self.dataplane, "kernel", None)
        prober = NetnsProber(kernel) if self.backend == "netns" and kernel is not None else SimProber(lambda: self._broken)
        self.kubelet = Kubelet(self.control, prober, seed=self.cluster_seed, on_ready_change=self._probe_changed,
                               record=self._record)
        self.kubelet.sync_pods(initial=True)

    def _record(self, event: LifecycleEvent) -> None:
        self.lifecycle.append(event)
        del self.lifecycle[:-LIFECYCLE_HISTORY]

    def _probe_changed(self, pod, at: float) -> None:
        """A probe changed a pod's readiness (the slices are reconciled): kube-proxy's
        BoundedFrequencyRunner syncs at once if its limiter has a token (a burst of 2 after a quiet
        spell), else when ``minSyncPeriod`` has passed since the last sync (``tryRun``)."""
        tokens = sync_tokens(self._sync_tokens, self._last_sync_at, at, self.min_sync_period)
        when = at if self._last_sync_at is None or tokens >= 1 else max(at, self._last_sync_at + self.min_sync_period)
        pending = [t for t in self.control.timers if t.what == PROXY_SYNC_TIMER]
        if pending and pending[0].at <= when:
            return
        self.control.cancel(PROXY_SYNC_TIMER)
        self.control.schedule(when, PROXY_SYNC_TIMER, self._timed_sync)

    def _timed_sync(self) -> bool:
        self._sync()
        return True

    def lifecycle_frame(self, since: float | None = None):
        """``lab.lifecycle`` as a DataFrame (columns t, kind, pod, node, detail; ``t`` on the
        cluster's clock, like ``kubectl``'s AGE), the events at or after ``since``."""
        return lifecycle_frame(self.lifecycle, since)

    def _build_cluster(self) -> ClusterState:
        """The cluster the lab's manifests make with its ``cluster_seed`` (the same every time)."""
        return build_state(_copy.deepcopy(self._documents), BuildOptions(seed=self.cluster_seed, node_port_range=self._node_port_range,
                                                                     max_endpoints_per_slice=self._max_endpoints_per_slice))

    # ---- rules ---------------------------------------------------------------------------------
    def proxy_config(self, node: str, options: dict[str, Any] | None = None, family: int | None = None) -> ProxyConfig:
        """Node ``node``'s kube-proxy configuration for one IP family (``family`` 4 or 6; None:
        the cluster's primary family): the cluster's facts, the lab's options, and what the
        dataplane's kernel supports."""
        opts = self.proxy_options if options is None else options
        return ProxyConfig.for_node(self.cluster, node, family=family, **{**opts, **self.dataplane.kernel_features()})

    @property
    def families(self) -> tuple[int, ...]:
        """The cluster's IP families (4, 6), the primary first: a dual-stack cluster's kube-proxy
        runs one proxier per family (``NewDualStackProxier``)."""
        return self.cluster.config.families()

    def _new_kube_proxy(self, node: str, options: dict[str, Any] | None = None) -> MetaProxier:
        """Node ``node``'s kube-proxy as it starts: a Proxier per family of the cluster."""
        return MetaProxier.for_configs(self.proxy_config(node, options, family=f) for f in self.families)

    def _family(self, family: int | str | None) -> int:
        """``family`` (4, 6, "ipv4", "IPv6"; None: the primary) as 4 or 6, checked against the cluster."""
        return resolve_family(family, self.families)

    @property
    def proxy_mode(self) -> str:
        """kube-proxy's ``--proxy-mode`` on the lab's nodes: ``"iptables"`` or ``"nftables"``."""
        return self.proxy_options.get("mode") or "iptables"

    def render(self, node: str, family: int | str | None = None) -> RuleSet:
        """The ruleset kube-proxy programs on ``node`` in the node's proxy mode (see
        :class:`kslab.proxy.iptables.RuleSet`; in nftables mode
        :class:`kslab.proxy.nftables.NftRuleSet`, whose ``raw_text()`` is ``nft -f`` input), for
        one IP family: ``family`` 4 or 6 (None: the cluster's primary family). On a dual-stack
        lab the IPv6 proxier's ruleset is ``ip6tables`` text (``table ip6 kube-proxy``)."""
        self.cluster.node(node)
        fam = self._family(family)
        key = (node, fam)
        if key not in self._rules:  # after a partial sync: rendered when asked, not on every change
            config = self._proxiers[node].proxier(fam).config
            if config.mode == "nftables":
                from .proxy.nftables import render as render_nft

                self._rules[key] = render_nft(self.cluster.services, self.cluster.endpoint_slices, config)
            else:
                self._rules[key] = render(self.cluster.services, self.cluster.endpoint_slices, config)
        return self._rules[key]

    def nft_list(self, node: str, family: int | str | None = None) -> str:
        """What ``nft list table ip kube-proxy`` prints on ``node`` now (``""`` in iptables mode):
        the kernel's own listing on netns, the simulator's (in nft's format) on sim;
        ``family=6`` on a dual-stack lab: ``table ip6 kube-proxy``."""
        self.cluster.node(node)
        fam = self._family(family)
        if family is None or not _takes_family(self.dataplane.nft_list):
            if fam != 4 and family is not None:
                raise InputError(f"nft_list(family={family!r})", f"the {self.backend} backend keeps IPv4 tables only",
                                 f"read kube-proxy's IPv6 rules as rendered: lab.render({node!r}, family=6)")
            return self.dataplane.nft_list(node)
        return self.dataplane.nft_list(node, family=fam)

    def metrics(self, node: str, family: int | str | None = None) -> KubeProxyMetrics:
        """``node``'s kube-proxy metrics (``curl NODE:10249/metrics``): what its Proxier recorded
        since kube-proxy (re)started (a new lab, :meth:`reset`, :meth:`set_proxy`), as a
        :class:`~kslab.proxy.metrics.KubeProxyMetrics`; ``print(lab.metrics(node).prometheus_text())``.
        Syncs, their latency (render + load time on this machine), full/partial, failures,
        rule counts, Services with a Local policy and no local endpoints; the change counters
        stay 0 (the Lab syncs per change without counting informer events). On sim and netns.
        On kind the node's real kube-proxy has the real ones and this Lab's Proxiers are only the
        prediction: an InputError says so (``lab.copy()`` gives a sim twin whose metrics are the
        prediction's). ``family`` (dual-stack): that family's proxier's (None: the primary's),
        labelled ``ip_family="IPv6"``."""
        self.cluster.node(node)
        if not self.dataplane.loads_rules:
            raise InputError("metrics", f"on {self.backend} the node's own kube-proxy serves the real metrics "
                             "and this lab's kube-proxy is only the prediction",
                             f"read them on the node (curl http://<node IP>:10249/metrics), or lab.copy().metrics({node!r}) "
                             "for the prediction's")
        fam = self._family(family)
        kube_proxy = self._proxiers.get(node)
        if kube_proxy is None:  # no sync yet on this node: a kube-proxy that registered its metrics
            return KubeProxyMetrics(mode=self.proxy_mode, family=fam)
        return kube_proxy.proxier(fam).metrics

    def _sync(self, full: bool = False, nodes: Iterable[str] | None = None) -> None:
        """kube-proxy's sync on every node, as kube-proxy decides it (full the first time and
        when forced, partial after a change), loaded into the dataplane's kernel. Like a real
        node, a hand-edited rule survives partial syncs and is rewritten only by a full one."""
        dp = self.dataplane
        wanted = set(nodes) if nodes is not None else None
        names = [n.name for n in self.cluster.nodes if wanted is None or n.name in wanted]
        self._rules = {}
        for name in names:
            if name not in self._proxiers:
                self._proxiers[name] = self._new_kube_proxy(name)
            elif self._proxiers[name].config.node_zone != (self.cluster.node(name).zone or ""):
                # kube-proxy's OnTopologyChange (OnNodeUpdate before 1.33): the node's zone label changed,
                # so it filters hints by the new zone from now on, in a full sync (upstream sets needFullSync)
                for proxier in self._proxiers[name].proxiers.values():
                    proxier.config = dataclasses.replace(proxier.config, node_zone=self.cluster.node(name).zone or "")
                self._proxiers[name].force_full_sync("node labels changed")
            if full:
                self._proxiers[name].force_full_sync("forced")

        def sync(node: str) -> list[SyncResult]:
            per_family = self._proxiers[node].sync_and_retry(
                self.cluster.services, self.cluster.endpoint_slices, lambda fam, rs: self._load_rules(node, fam, rs),
                list_chains=lambda fam: self._existing_chains(node, fam), now=dp.now)
            return [r for results in per_family.values() for r in results]  # the primary family's first

        if dp.concurrent_syncs and len(names) > 1:  # each node's kube-proxy on its own node
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                per_node = list(pool.map(sync, names))
        else:
            per_node = [sync(name) for name in names]
        self.generation += 1
        clock = getattr(self.control, "state", self.cluster).clock
        self._sync_tokens = max(0.0, sync_tokens(self._sync_tokens, self._last_sync_at, clock, self.min_sync_period) - 1)
        self._last_sync_at = clock
        for name, results in zip(names, per_node):
            if hasattr(self, "lifecycle"):
                last = [r for r in results if r.ruleset.config.family == self.families[0]][-1]
                self._record(LifecycleEvent(clock, "synced", "", name, f"kube-proxy {'partial' if last.ruleset.partial else 'full'} sync"))
            self.syncs += results
            del self.syncs[:-SYNC_HISTORY]
            for fam in self._proxiers[name].families:
                last = [r for r in results if r.ruleset.config.family == fam][-1]
                if last.error:  # even the full sync failed: the node's rules are not what kslab rendered
                    raise EnvironmentProblem(f"kube-proxy's sync failed on {name}" + (f" (IPv{fam})" if fam != 4 else "")
                                             + f": {last.error}")
                if not last.ruleset.partial:
                    self._rules[(name, fam)] = last.ruleset  # a full sync's text is the node's whole ruleset

    def _existing_chains(self, node: str, family: int | None = None) -> list[str]:
        """What node ``node``'s kube-proxy lists before a sync to find what went stale: the nat
        table's chains (iptables mode), the ``kube-proxy`` table's chains and sets (nftables).
        The primary family's from the dataplane as always; the other family's (``ip6tables``)
        where the dataplane keeps tables per family (:func:`_takes_family`), else none."""
        mode = self._proxiers[node].mode.name
        dp = self.dataplane
        if family is not None and family != self.families[0]:
            if mode == "iptables" and _takes_family(dp.nat_chains):
                return list(dp.nat_chains(node, family=family))
            if _takes_family(dp.existing_chains):
                chains = list(dp.existing_chains(node, mode, family=family))
                return chains + list(dp.existing_sets(node, mode, family=family)) if mode == "nftables" else chains
            return []
        chains = dp.existing_chains(node, mode)
        return chains + dp.existing_sets(node, mode) if mode == "nftables" else chains

    def _load_rules(self, node: str, family: int, ruleset) -> None:
        """One family's sync into ``node``'s kernel. The primary family's always; the other's
        (dual-stack) where the dataplane keeps tables per family (``Dataplane.save_text(node,
        family=)``): the IPv6 proxier's rules then go to the node's ``ip6tables``. A dataplane
        that keeps one family only gets the primary's; the other's stays a prediction
        (:meth:`render` ``(node, family=6)``)."""
        if family == self.families[0] or _takes_family(self.dataplane.save_text):
            self.dataplane.sync_rules(node, ruleset)

    def _changed(self) -> None:
        """After a control-plane change: pods first (new ones answer), then kube-proxy's sync."""
        self.cluster = self.control.state  # a live control plane re-reads the cluster after a change
        for gone in sorted(self._broken - {p.name for p in self.cluster.pods}):
            # repaired while its app still runs: a pod made later under the same name starts healthy
            self.dataplane.break_pod(gone, False)
            self._broken.discard(gone)
        self.dataplane.update_pods(self.cluster)
        if getattr(self, "kubelet", None) is not None:
            self.kubelet.sync_pods()
            self.control.cancel(PROXY_SYNC_TIMER)  # this sync covers a pending probe-driven one
        self._sync()

    def close(self) -> None:
        """Release the dataplane (the netns lab's namespaces and servers; the sim needs nothing)."""
        if getattr(self, "kubelet", None) is not None:
            self.kubelet.prober.close()
        self.dataplane.close()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- changes ---------------------------------------------------------------------------------
    def apply(self, *paths: str | os.PathLike) -> list[str]:
        """``kubectl apply`` of ``paths`` (default: the lab's own manifests). On kind (as ``kslab
        apply``): objects kslab creates carry its label, existing ones without it are never
        changed, and it waits for the Deployments' rollouts."""
        live = getattr(self.control, "live", False)
        docs = load_documents(paths) if paths else (_copy.deepcopy(self._documents) if live else [])
        self._catch_up()  # netns: the probes due while idle run first
        changed = self.control.apply(docs)
        if live:  # the API server drops a manifest's status: remembered for the sim twin (copy())
            for d in docs:
                if d.kind == "Service":
                    svc = parse_service(d)
                    if svc.load_balancer_ingress:
                        self._lb_asked[(svc.namespace, svc.name)] = svc.load_balancer_ingress
        self._changed()
        return changed

    def scale(self, deployment: str, replicas: int, namespace: str = "default") -> None:
        self._catch_up()  # netns: the probes due while idle run first
        self.control.scale(deployment, replicas, namespace)
        self._changed()

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        self._catch_up()  # netns: the probes due while idle run first
        self.control.delete_pod(name, namespace)
        self._changed()

    def rollout(self, deployment: str, *, image: str | None = None, template: Mapping | None = None,
                namespace: str = "default") -> list[str]:
        """A rolling update of ``deployment`` to a new pod template (``image=`` for its one
        container, as ``kubectl set image``, or the whole ``template=``): a new ReplicaSet, scaled
        up within ``maxSurge`` while old pods go within ``maxUnavailable`` (``spec.strategy``,
        default 25%/25%: surge rounded up, unavailable down; :mod:`kslab.rollout`). What can happen
        now happens now; the rest follows with :meth:`advance` as new pods become ready and old
        ones finish terminating (``terminationGracePeriodSeconds``; their endpoints stay in the
        slices, ``ready=false``, ``serving`` = readiness, ``terminating=true``). Returns the
        Deployment controller's ``ScalingReplicaSet`` messages of this step ([] if the template is
        the same). :meth:`rollout_status` says how far it is."""
        if getattr(self.control, "live", False) or not hasattr(self.control, "rollout"):
            raise InputError("rollout", f"not available on the {self.backend} backend yet",
                             'run it on the simulator copy: lab.exact("a rolling update").rollout(...)')
        done = self.control.rollout(deployment, namespace, image=image, template=template)
        self._changed()
        return done

    def rollout_status(self, deployment: str, namespace: str = "default") -> str:
        """``kubectl rollout status deployment/NAME``'s line now (without waiting)."""
        if not hasattr(self.control, "rollout_status"):
            raise InputError("rollout_status", f"not available on the {self.backend} backend yet", "use lab.sh(\"kubectl get pods\")")
        return self.control.rollout_status(deployment, namespace)[0]

    def set_ready(self, pod: str, ready: bool, namespace: str = "default") -> None:
        self._catch_up()  # netns: the probes due while idle run first
        self.control.set_pod_ready(pod, ready, namespace)
        self._changed()

    def set_allocatable_cpu(self, cpu: Mapping[str, int]) -> None:
        """Give nodes ``cpu[node]`` millicores of allocatable CPU (``status.allocatable.cpu``, 1000 =
        one core), as if they had been made with them: the EndpointSlice controller's topology
        cache re-reads the nodes and the hints follow (the zones' CPU ratios, chapter 09). On a
        live cluster (kind) a node's CPU is what its kubelet reports: a one-line InputError pointing
        to ``lab.exact(...)``. An unknown node or a bad count is a one-line InputError, nothing
        changed."""
        if getattr(self.control, "live", False) or not hasattr(self.control, "set_allocatable_cpu"):
            raise InputError("cpu", "a live node's allocatable CPU is what its kubelet reports",
                             'change it on the simulator copy: lab.exact("node CPUs").set_allocatable_cpu(...)')
        self.control.set_allocatable_cpu(cpu)
        self._changed()

    def set_zones(self, zones: Mapping[str, str | None]) -> None:
        """Put nodes in zones: label them ``topology.kubernetes.io/zone`` (``{node: zone}``; None
        or "" removes the label), as ``kubectl label node`` would. The EndpointSlice controller
        then writes each endpoint's ``zone`` (and hints, for a Service that asks for them) and
        kube-proxy reads its node's zone. kind's nodes have no zone label by default. On a live
        cluster (kind) kslab does not relabel kind's Nodes: a one-line InputError pointing to
        ``lab.exact(...)``. An unknown node or a bad zone is a one-line InputError, nothing
        changed."""
        self.control.set_zones(zones)
        self._changed()

    def break_pod(self, name: str, broken: bool = True) -> None:
        """Make a pod's app answer with errors (it still accepts connections: TCP is fine, HTTP is not)."""
        pod = self.cluster.pod(name)
        self._catch_up()
        self.dataplane.break_pod(name, broken)
        (self._broken.add if broken else self._broken.discard)(name)
        self.generation += 1
        if hasattr(self, "lifecycle"):
            self._record(LifecycleEvent(getattr(self.control, "state", self.cluster).clock, "app-broken" if broken else "app-healed",
                                        name, pod.node_name, "its app answers HTTP 500" if broken else "its app answers 200 again"))

    def patch_service(self, name: str, namespace: str = "default", **spec) -> None:
        self.control.patch_service(name, namespace, **spec)
        self._changed()

    def set_node_port_range(self, node_port_range: str | tuple[int, int]) -> list[NodePortUse]:
        """Restart the API server with ``--service-node-port-range`` = ``node_port_range``
        (``"30000-30100"``): as kube-apiserver does, every Service keeps the node ports it has,
        also one outside the new range (its repair controller only warns: ``PortOutOfRange``,
        kept in ``lab.cluster.warnings``); Services created or given a new nodePort later are
        checked against the new range, and automatic allocation uses its static/dynamic bands
        (:func:`kslab.controlplane.band_of`). Returns every node port held, with its band in
        the new range (``"outside"`` for a kept one). kube-proxy's rules do not depend on the
        range, so they stay. ``reset()`` goes back to the range the lab was made with. A bad
        range is a one-line InputError; on a live cluster (kind) the range is its API server's
        flag, which kslab does not change: an InputError too."""
        if getattr(self.control, "live", False):
            raise _live_range_error()
        rng = parse_port_range(node_port_range, "node_port_range")
        uses = self.control.set_node_port_range(rng)
        self.cluster = self.control.state
        return uses

    def place(self, deployment: str, per_node: Mapping[str, int], namespace: str = "default") -> list[str]:
        """Put exactly ``per_node[node]`` pods of ``deployment`` on each node (a node left out gets
        none), e.g. ``lab.place("deploy-echo", {"myk8s-worker": 2, "myk8s-worker2": 1,
        "myk8s-worker3": 0})``; returns the Deployment's pods in node order. The Deployment is
        scaled to the sum; pods already on a node stay, extra ones are deleted, missing ones are
        made from its template and bound to their node (``spec.nodeName``, which is what the
        scheduler's binding writes), so names and pod IPs are deterministic, like every other
        change. Every backend the Lab builds follows (the netns pods are started and stopped);
        ``reset()`` undoes it.

        The study does not do this: it scales and lets the scheduler spread the pods. A real
        user who wants an uneven placement would make one Deployment per node with a
        ``nodeSelector`` (``kubernetes.io/hostname: <node>``, the same ``app`` label, so one
        Service selects them all), or steer the scheduler with node affinity or
        ``topologySpreadConstraints`` (those spread evenly, they do not give 2/1/0), or cordon
        nodes while scaling. kslab forces the scheduler's decision instead, so the Deployment
        stays the study's one. On a live cluster (kind) its scheduler places the pods: a
        one-line InputError saying to run the experiment on ``lab.exact(...)``'s twin. Bad input
        (unknown deployment or node, a negative count) is a one-line InputError and changes
        nothing."""
        if getattr(self.control, "live", False):
            raise InputError(
                "lab.place", "a live cluster's scheduler places its pods; kslab does not bind them by hand",
                'run it on the simulator twin: on = lab.exact("pods pinned per node"); on.place(...)')
        names = self.control.place(deployment, per_node, namespace)
        self._changed()
        return names

    def lb_status(self, service: str, namespace: str = "default") -> LBState:
        """The cloud load balancer in front of the LoadBalancer Service ``service``: the status
        its last health probe got from every node and the nodes it sends connections to
        (:class:`kslab.loadbalancer.LBState`)."""
        return self.dataplane.lb_status(self.cluster.service(service, namespace), self.cluster)

    def set_proxy(self, **options) -> None:
        """Change kube-proxy's configuration on every node (``masquerade_all=True`` ...): a
        restarted kube-proxy, so a full sync. Checked first: an unknown option or a bad value
        is a one-line InputError and the lab is left as it was."""
        merged = {**self.proxy_options, **check_proxy_options(options)}
        if getattr(self.control, "live", False) and (merged.get("mode") or "iptables") != self.proxy_mode:
            raise InputError("mode", f"{merged.get('mode')!r}: the live cluster's kube-proxy runs {self.proxy_mode} mode "
                             "(its kube-system/kube-proxy ConfigMap), which kslab does not change",
                             f"try the other mode on a sim twin: lab.copy().set_proxy(mode={merged.get('mode')!r})")
        kube_proxies = {n.name: self._new_kube_proxy(n.name, merged) for n in self.cluster.nodes}
        self.proxy_options = merged
        self._proxiers = kube_proxies
        self._sync()

    def resync(self, full: bool = True, nodes: Iterable[str] | None = None) -> None:
        """Run kube-proxy's sync on ``nodes`` (default every node) now (``full=True``: rewrite
        every chain, as the hourly full sync or a restarted kube-proxy does; it undoes hand
        edits; ``full=False``: kube-proxy decides, usually a partial sync)."""
        names = list(nodes) if nodes is not None else None
        for name in names or ():
            self.cluster.node(name)
        self._sync(full=full, nodes=names)

    def flush_conntrack(self) -> int:
        """Forget every node's conntrack entries (``conntrack -F``); returns how many there were.
        On netns, failed connections leave entries that new connections reusing a source port
        would follow."""
        return self.dataplane.flush_conntrack()

    def delete_rules(self, match: str, *, nodes: Iterable[str] | None = None) -> int:
        """Delete by hand (``iptables -D``) every rule whose ``iptables-save`` line contains
        ``match`` (a substring or a regular expression) on ``nodes`` (default all). Returns how
        many rules were deleted on all nodes together. kube-proxy puts them back only with a
        full sync (:meth:`resync`).

        In nftables mode the rules are those of ``table ip kube-proxy`` and each one's line is
        ``CHAIN RULE``: the chain's name, then the rule as ``nft list`` prints it (the hairpin
        rules: :data:`HAIRPIN_RULES_NFT`); they go in one ``nft delete rule ip kube-proxy CHAIN handle N``
        transaction per node. An iptables-save pattern (``-A CHAIN ...``) there is an InputError."""
        if self.proxy_mode == "nftables" and re.match(r"\^?-A\b", match):
            raise InputError("delete_rules", f"{match!r} matches iptables-save lines, and this lab's kube-proxy runs nftables mode",
                             "match 'CHAIN RULE' as nft list prints them (hairpin: kslab.lab.hairpin_rules(lab.proxy_mode)),"
                             " or switch with lab.set_proxy(mode=\"iptables\")")
        pattern = re.compile(match)
        names = list(nodes) if nodes is not None else [n.name for n in self.cluster.nodes]
        for name in names:
            self.cluster.node(name)
        self.generation += 1
        return self.dataplane.delete_rules(pattern, names)

    def sh(self, where: str, command: str) -> ShellOutput:
        """Run one of the study's commands in ``where`` (a node, a pod or ``mypc``) and return what
        it printed, a ``str`` (:class:`kslab.shell.ShellOutput`, with ``.stderr`` and
        ``.returncode``)::

            print(lab.sh("net-pod", "curl -s svc-clusterip:9000"))
            print(lab.sh("myk8s-worker", "iptables -t nat -S | grep KUBE-SVC"))
            print(lab.sh("myk8s-worker", "iptables -v --numeric --table nat --list KUBE-SERVICES"))
            print(lab.sh("myk8s-control-plane", "conntrack -L -p tcp --dport 9000"))

        The real tools in the node's or pod's network namespace on netns; on sim, their output
        formats emulated from the simulated lab (rule counters, conntrack entries, routes, the
        pods' servers). Supported commands, flags and the ``| grep``/``head``/``tail``/``wc -l``
        tail: :data:`kslab.shell.SUPPORTED`; anything else is a one-line InputError. A ``curl``
        opens a real (or simulated) connection, like ``run(..., n=1)``."""
        from . import shell

        parsed, stages = shell.parse(command)
        bound = shell.bind(self.cluster, where, parsed)
        return shell.run_pipeline(self.dataplane.sh(where, bound, self.cluster), stages)

    def save_text(self, node: str, family: int | str | None = None) -> str:
        """What ``node``'s kernel holds now, as ``iptables-save`` prints it (hand edits included);
        ``family=6`` on a dual-stack lab: ``ip6tables-save``, where the backend keeps IPv6 tables."""
        self.cluster.node(node)
        fam = self._family(family)
        if fam == self.families[0] and family is None:
            return self.dataplane.save_text(node)
        if not _takes_family(self.dataplane.save_text):
            if fam == 4:
                return self.dataplane.save_text(node)
            raise InputError(f"save_text(family={family!r})", f"the {self.backend} backend keeps IPv4 tables only",
                             f"read kube-proxy's IPv6 rules as rendered: lab.render({node!r}, family=6).save_text()")
        return self.dataplane.save_text(node, family=fam)

    def verify(self, node: str, family: int | str | None = None):
        """Prediction vs reality on ``node``: what kube-proxy should have written for this lab's
        cluster and kube-proxy options, compared per chain with what the node holds now
        (:meth:`save_text`: on kind the node's real ``iptables-save``), other software's chains
        ignored. Returns a :class:`kslab.verify.VerifyReport` (``.ok()``, ``.text()``). In
        nftables mode the node's ``table ip kube-proxy`` (:meth:`nft_list`; on kind the node's
        real ``nft list table ip kube-proxy``) is compared per chain, set and map with the ``nft
        list`` form of kube-proxy's full sync (:func:`kslab.verify.verify_node_nft`).
        ``family``: the primary family's tables (None, the default); the other family's of a
        dual-stack lab are not compared yet (a one-line InputError says how to compare by hand)."""
        from .verify import verify_node, verify_node_nft

        fam = self._family(family)
        options = {**self.proxy_options, **self.dataplane.kernel_features()}
        options = {k: v for k, v in options.items() if v is not None}
        if self.proxy_mode == "nftables":
            return verify_node_nft(self.cluster, node, self.nft_list(node, family=fam), empty_ok=True, proxy=options, family=fam)
        # the lab's own prediction: an option left at None means the lab's default, as in proxy_config()
        return verify_node(self.cluster, node, self.save_text(node, family=fam), proxy=options, family=fam)

    def advance(self, seconds: float) -> None:
        """Move the clock: the simulator's jumps at once; on netns the kernel's clock is real, so
        this waits ``seconds`` (conntrack and ``recent`` entries age in real time).

        On the way, what is due happens at its time (:meth:`ControlPlane.run_due`): the kubelets'
        readiness probes (real ones on netns), a pod's Ready flipping and the EndpointSlice
        controller's reconcile, kube-proxy's sync ``min_sync_period`` after the last one, a
        rollout's steps. On a live cluster (kind) its own kubelets do this; the Lab only waits."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
            raise InputError("seconds", f"{seconds!r} is not a number of seconds", "give seconds as a number, 0 or more")
        if seconds < 0:
            raise InputError("seconds", f"{seconds} is negative", "the clock only moves forward")
        if not hasattr(self.control, "run_due"):  # a live cluster: its kubelets and kube-proxy keep their own time
            self.dataplane.advance(seconds)
            self.control.advance(seconds)  # the control plane's clock too (kubectl's AGE)
            return
        self._catch_up()
        self._run_until(self.control.state.clock + seconds)
        if isinstance(self.dataplane, RealClock):
            self.dataplane.advance(0)  # netns: until the load balancer's prober saw the last sync

    def _run_until(self, target: float, *, wait: bool = True) -> None:
        """Step the cluster's clock to ``target`` through every timer due on the way, the
        dataplane's clock kept in step (the simulator's jumps, a real one is waited for, unless
        ``wait=False``: catching up time that already passed)."""
        control = self.control
        offset = self.dataplane.now - control.state.clock

        def move(t: float) -> None:
            need = (t + offset) - self.dataplane.now
            if need > 0 and wait:
                if isinstance(self.dataplane, RealClock):
                    time.sleep(need)
                else:
                    self.dataplane.advance(need)
            if t > control.state.clock:
                control.advance(t - control.state.clock)

        while (due := control.next_due()) is not None and due <= target:
            move(due)
            pods_before = getattr(control, "pod_changes", 0)
            if control.run_due(due):
                self.cluster = control.state
                self.generation += 1
                if getattr(control, "pod_changes", 0) != pods_before:
                    # a controller made or removed pods at this instant (a rollout step, a terminating
                    # pod's grace period ended): their servers and probes first, then kube-proxy
                    self._changed()
        move(target)
        self._real_anchor = (time.monotonic(), control.state.clock)

    def _catch_up(self) -> None:
        """On a real clock (netns): the cluster's clock moves only in :meth:`advance`, but the
        kubelets probe in real time, also while a notebook sits idle. Before anything changes,
        the ticks that fell due since the last step run now, in order, the clock set to each
        (the pods' apps did not change meanwhile, so a probe now answers as it would have
        then). Only while timers are pending: a lab without probes keeps its clock as before."""
        anchor = getattr(self, "_real_anchor", None)
        if not isinstance(self.dataplane, RealClock) or not hasattr(self.control, "next_due") or anchor is None:
            return
        if self.control.next_due() is None:
            self._real_anchor = (time.monotonic(), self.control.state.clock)
            return
        target = anchor[1] + (time.monotonic() - anchor[0])
        if target > self.control.state.clock:
            self._run_until(target, wait=False)

    def timeline(self, src: str | Iterable[str], to: str, seconds: float, rate: float, *,
                 actions: Sequence[tuple[float, Any]] = (), seed: int | None = None,
                 timeout: float = 0.5) -> pd.DataFrame:
        """Connections from ``src`` to ``to`` at ``rate`` per second for ``seconds`` while time
        advances (the kubelets probe, pods turn Ready or not, kube-proxy syncs), one row per
        connection as :meth:`run` with ``t`` = seconds since the timeline began. ``actions``:
        ``(t, fn)`` pairs, ``fn(lab)`` run at ``t`` (``(5, lambda l: l.break_pod("mario-x"))``),
        before the connections of that instant. sim: simulated time (fast, ``seed`` repeats it);
        netns: real time and real probes; kind: real time, the live cluster's own kubelets.
        What happened meanwhile: :meth:`lifecycle_frame` (``since=`` the start's clock). On a
        real clock the connections due within ``REAL_BATCH`` (0.2 s) go out together in one
        client run (a process start per connection would cap the rate); ``t`` is when each was due."""
        for name, value in (("seconds", seconds), ("rate", rate)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise InputError(name, f"{value!r} is not a positive number", f"give {name} > 0, e.g. timeline(..., seconds=40, rate=5)")
        n = int(round(seconds * rate))
        if n > 100_000:
            raise InputError("rate", f"{n} connections ({seconds} s at {rate}/s) are too many", "use at most 100000 connections")
        acts = []
        for i, item in enumerate(actions):
            if not (isinstance(item, tuple) and len(item) == 2 and callable(item[1])):
                raise InputError(f"actions[{i}]", f"{item!r} is not (seconds, function)", "give (5, lambda lab: lab.break_pod(\"web-x\"))")
            if not isinstance(item[0], (int, float)) or not 0 <= item[0] <= seconds:
                raise InputError(f"actions[{i}]", f"time {item[0]!r} is outside the timeline", f"give a time from 0 to {seconds}")
            acts.append((float(item[0]), i, item[1]))
        acts.sort(key=lambda a: (a[0], a[1]))
        clients = [src] if isinstance(src, str) else list(src)
        if not clients:
            raise InputError("src", "no clients given", "name a pod, a node, mypc or an IP")
        dst, port, proto = self.destination(to)
        has_timers = hasattr(self.control, "run_due")
        if has_timers:
            self._catch_up()
        clock = (lambda: self.control.state.clock) if has_timers else (lambda: self.dataplane.now)
        t0 = clock()
        real = isinstance(self.dataplane, RealClock)

        def goto(t: float) -> None:
            if has_timers:
                self._run_until(t0 + t)
            else:
                need = t0 + t - self.dataplane.now
                if need > 0:
                    time.sleep(need)

        frames: list[pd.DataFrame] = []
        times = [i / rate for i in range(n)]
        i = a = 0
        first = True
        while i < n or a < len(acts):
            next_conn = times[i] if i < n else math.inf
            next_act = acts[a][0] if a < len(acts) else math.inf
            goto(min(next_conn, next_act))
            if next_act <= next_conn:
                acts[a][2](self)
                a += 1
                continue
            due = self.control.next_due() if has_timers else None
            limit = min(next_act, (due - t0) if due is not None else math.inf)
            if real:
                limit = min(limit, max(times[i], clock() - t0) + REAL_BATCH)
            j = i + 1
            while j < n and times[j] < limit:
                j += 1
            df = self.dataplane.connect(clients[i % len(clients):] + clients[:i % len(clients)], dst, port, proto, j - i,
                                        seed=seed if first else None, interval=1.0 / rate, timeout=timeout)
            first = False
            df["t"] = times[i:j][:len(df)]
            frames.append(df)
            i = j
        goto(float(seconds))
        out = pd.concat(frames, ignore_index=True) if frames else self.run(clients, to, n=0)
        out["conn"] = range(len(out))
        return out

    def clear_kernel_state(self) -> None:
        """Fresh kernel state on every node: conntrack, ``recent`` lists (ClientIP affinity) and
        counters forgotten, the simulated clock back to 0. The cluster and the rules stay. On kind
        only the clock restarts: a live node's kernel state is not kslab's to clear (flushing its
        conntrack would cut the cluster's own connections), so read its counters as differences."""
        self.dataplane.reset()

    def reset(self) -> None:
        """Back to the lab exactly as it was made: the same cluster (pods, names, IPs, ClusterIPs,
        nodePorts), kube-proxy's options from ``Lab(proxy=...)``, every node's rules as a
        fresh kube-proxy writes them (hand deletions undone), no broken pod, empty conntrack and
        ``recent`` lists, the clock at 0 and the traffic's random choices restarted from ``seed``.
        The backend stays up (on netns only the pods that differ are remade).

        Every change since is undone: ``place``, ``set_node_port_range`` (back to
        ``Lab(node_port_range=...)``), and objects ``apply`` added, such as chapter 07's
        ``svc-lb`` (``lab.apply(kslab.resources.study_lab() / "loadbalancer")``): apply it again
        after a reset, and it gets the very same ClusterIP, nodePort and healthCheckNodePort
        (the control plane's random sequence restarts too). On a live cluster (kind), whose
        objects kslab never deletes, an added object stays; applying it again is harmless."""
        dp = self.dataplane
        for name in sorted(self._broken):
            dp.break_pod(name, False)
        self._broken.clear()
        if getattr(self.control, "live", False):  # a live cluster: its API server re-applies what kslab changed
            self.cluster = self.control.reset(_copy.deepcopy(self._documents))
        else:
            self.cluster = self._build_cluster()
            self.control = ControlPlane.of(self.cluster, self.cluster_seed)
        self.proxy_options = dict(self._proxy_at_start)
        dp.update_pods(self.cluster)
        names = [n.name for n in self.cluster.nodes]
        if dp.loads_rules:
            dp.delete_rules(re.compile(BUILTIN_CHAIN_RULES), names)  # the full sync below puts kube-proxy's jumps back, in order
        dp.reset()  # the clock at 0 before kube-proxy's first sync, as in a new lab
        self._proxiers = {}  # a restarted kube-proxy on every node: its first sync is a full one
        if self.kubelet is not None:
            self.kubelet.prober.close()
        self.lifecycle = []
        self._last_sync_at = None
        self._sync_tokens = float(BURST_SYNCS)
        self._sync()
        self._start_kubelet()
        dp.reseed(self.seed)

    def copy(self) -> "Lab":
        """An independent copy of this lab, always on the ``sim`` backend (a second kernel lab
        would take seconds and root; the simulator matches the kernel, see
        tests/test_fidelity.py). It has this lab's cluster (with the control plane's random
        state, so a later ``scale`` makes the same pods), kube-proxy's options and per-node
        state, every node's tables exactly as they are now (hand edits and all), the broken
        pods, the clock's time and ``seed``. Connection state starts empty (no conntrack
        entries, empty ``recent`` lists), as after :meth:`clear_kernel_state`. Nothing done
        to the copy changes this lab: ``kslab.check`` runs its experiments on one.

        A live cluster (kind) without a load balancer controller leaves a LoadBalancer Service's
        ``EXTERNAL-IP`` ``<pending>``: the API server drops the ``status`` of the manifest
        ``lab.apply`` sent. The copy's Service gets that manifest's ``status.loadBalancer.ingress``
        (what a cloud load balancer, cloud-provider-kind or MetalLB would write), and its
        kube-proxies sync the VIP's rules, so the twin has the load balancer the cluster lacks.
        A status the live cluster has (a controller wrote it) is copied as it is."""
        twin = object.__new__(Lab)
        twin.backend = "sim"
        twin.seed, twin.cluster_seed = self.seed, self.cluster_seed
        twin._node_port_range = self._node_port_range
        twin._max_endpoints_per_slice = self._max_endpoints_per_slice
        twin._documents = self._documents  # read only: _build_cluster copies them
        twin._proxy_at_start = dict(self._proxy_at_start)
        twin.proxy_options = dict(self.proxy_options)
        twin.cluster = _copy.deepcopy(self.cluster)  # with its control plane (ControlPlane.of finds it)
        twin._lb_asked = dict(self._lb_asked)
        pending = [s for s in twin.cluster.services if s.type == "LoadBalancer" and not s.load_balancer_ingress
                   and (s.namespace, s.name) in self._lb_asked]
        for s in pending:  # the manifest's status, as a load balancer controller would write it (ipMode VIP by default)
            s.load_balancer_ingress = [LoadBalancerIngress(i.ip, i.hostname, i.ip_mode or ("VIP" if i.ip else None))
                                       for i in self._lb_asked[(s.namespace, s.name)]]
        twin.control = ControlPlane.of(twin.cluster, self.cluster_seed)
        twin._proxiers = _copy.deepcopy(self._proxiers)
        twin._rules = {}
        twin.syncs = []
        twin._broken = set(self._broken)
        twin.generation = self.generation
        tables = {n.name: self.dataplane.save_text(n.name) for n in self.cluster.nodes}
        nft = {name: self.dataplane.nft_list(name) for name, p in self._proxiers.items() if p.mode.name == "nftables"}
        twin.dataplane = factory.create("sim", twin.cluster, seed=self.seed, tables=tables, nft=nft)
        if _takes_family(twin.dataplane.save_text):  # dual-stack: the other family's tables, as kube-proxy last wrote them
            for name, kube_proxy in twin._proxiers.items():
                for fam in kube_proxy.families[1:]:
                    twin.dataplane.sync_rules(name, twin.render(name, fam))
        for name in sorted(twin._broken):
            twin.dataplane.break_pod(name, True)
        twin.dataplane.advance(max(0.0, self.now))
        # the kubelets: the same workers (results, runs, ticker phases), simulated probes; timers of
        # this lab's kubelet and kube-proxy re-scheduled on the twin's control plane
        twin.lifecycle = list(self.lifecycle)
        twin.min_sync_period = self.min_sync_period
        twin._last_sync_at = self._last_sync_at
        twin._sync_tokens = self._sync_tokens
        twin._real_anchor = (time.monotonic(), twin.control.state.clock)
        twin.kubelet = None
        if self.kubelet is not None:
            pending_sync = [t for t in twin.control.timers if t.what == PROXY_SYNC_TIMER]
            ticks = {t.what: t.at for t in twin.control.timers if t.what.startswith("kubelet/")}
            twin.control.cancel("kubelet/")
            twin.control.cancel(PROXY_SYNC_TIMER)
            twin.kubelet = Kubelet(twin.control, SimProber(lambda: twin._broken), seed=self.cluster_seed,
                                   on_ready_change=twin._probe_changed, record=twin._record,
                                   workers=_copy.deepcopy(self.kubelet.workers))
            twin.kubelet.reschedule(ticks)
            if self.kubelet.pending:  # pod statuses written this instant, the EndpointSlice controller's sync still due
                twin.kubelet.pending = {k: twin.cluster.pod(p.name, p.namespace) for k, p in self.kubelet.pending.items()
                                        if any(x.key == k for x in twin.cluster.pods)}
                twin.control.schedule(twin.control.state.clock, ENDPOINTSLICE_TIMER, twin.kubelet._reconcile)
            for t in pending_sync:
                twin.control.schedule(t.at, PROXY_SYNC_TIMER, twin._timed_sync)
        else:  # a live cluster's twin: simulated kubelets take over its probed pods, as they stand
            twin.kubelet = Kubelet(twin.control, SimProber(lambda: twin._broken), seed=self.cluster_seed,
                                   on_ready_change=twin._probe_changed, record=twin._record)
            twin.kubelet.sync_pods(initial=True)
        if pending:
            twin._changed()  # the twin's kube-proxies write the VIP's rules (KUBE-FW-..., the VIP in KUBE-SERVICES)
        return twin

    def exact(self, needs: str) -> "Lab":
        """The lab an experiment that needs exact state runs on (fresh conntrack entries, ``recent``
        lists or counters from zero, the clock moved by hand, a broken pod, a hand-edited rule, a
        made-up client address): this lab where kslab sets that state (sim, netns); on a live
        cluster (kind), whose state is the cluster's own, a fresh sim twin of it (:meth:`copy`:
        the nodes' real rules, empty conntrack and lists), after one line saying so::

            on = lab.exact("fresh conntrack entries, which a live node shares with the cluster")

        prints, on kind, ``kind: this experiment needs fresh conntrack entries, which a live node
        shares with the cluster; it runs on the simulator copy of this lab``."""
        if self.dataplane.exact:
            return self
        print(f"{self.backend}: this experiment needs {needs}; it runs on the simulator copy of this lab")
        return self.copy()

    def reseed(self, seed: int) -> None:
        """Restart the dataplane's random choices from ``seed`` (the simulator's; a kernel's cannot be seeded)."""
        self.dataplane.reseed(seed)

    @property
    def now(self) -> float:
        return self.dataplane.now

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

    def pods_per_node(self, selector: str, namespace: str = "default") -> dict[str, list[str]]:
        """The pods a label selector picks, grouped by the node they run on, as
        ``kubectl get pods -l SELECTOR -o wide`` would list them: e.g.
        ``lab.pods_per_node("app=deploy-websrv")`` -> ``{"myk8s-control-plane": [],
        "myk8s-worker": ["deploy-echo-..."], ...}``.

        ``selector``: a label selector in kubectl's syntax (``k=v``, ``k!=v``, ``k in (a,b)``,
        ``k``, ``!k``, comma-separated; see :func:`kslab.kubectl.parse_selector`). Every node of
        the cluster is a key, in the cluster's node order, with an empty list when no selected pod
        runs there; each list is sorted by pod name. Ready or not, terminating or not: every
        selected pod bound to a node (a pod not bound to any node runs nowhere and is left out).
        A selector that does not parse is a one-line InputError."""
        from .kubectl import _Failure, parse_selector

        if not isinstance(selector, str):
            raise InputError("selector", f"{selector!r} is not a label selector", 'give e.g. "app=deploy-websrv"')
        try:
            match = parse_selector(selector)
        except _Failure as err:
            raise InputError("selector", f"{selector!r}: {err.message.removeprefix('error: ')}",
                             'give a label selector as for kubectl get pods -l, e.g. "app=deploy-websrv"') from None
        out: dict[str, list[str]] = {n.name: [] for n in self.cluster.nodes}
        for p in sorted(self.cluster.pods, key=lambda p: p.name):
            if p.namespace == namespace and p.node_name in out and match(p.labels):
                out[p.node_name].append(p.name)
        return out

    def client(self, name: str) -> Client:
        """The client ``name`` stands for: a pod, a node, ``mypc`` or an IP (its address, kind and node)."""
        return resolve_client(self.cluster, name)

    def pod_gateway(self, node: str) -> str:
        """The node's end of every local pod's veth: the first address of its podCIDR (kindnet's
        ptp plugin); a pod masqueraded by its own node is seen from this address."""
        return str(ipaddress.ip_network(self.cluster.node(node).pod_cidr, strict=False).network_address + 1)

    def destination(self, to: str) -> tuple[str, int, str]:
        return resolve_destination(self.cluster, to)

    def trace(self, src: str, to: str) -> Trace:
        """One new connection, explained rule by rule (a :class:`kslab.dataplane.Trace`): by the
        simulator on sim, by the kernel itself on netns (``xtables-monitor --trace``)."""
        dst, port, proto = self.destination(to)
        return self.dataplane.trace(src, dst, port, proto)

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
        """Open ``n`` connections from ``src`` (a client or a list of clients, used in turn) to ``to``;
        one row per connection (columns: :data:`kslab.dataplane.rows.COLUMNS`).

        ``interval`` advances the simulated clock between connections. Equal seeds repeat exactly
        on the simulator. ``timeout`` is how long a real connection may take on netns before it
        counts as failed.
        """
        if n < 0:
            raise InputError("n", f"{n} is negative", "open 0 or more connections")
        clients = [src] if isinstance(src, str) else list(src)
        if not clients:
            raise InputError("src", "no clients given", "name a pod, a node, mypc or an IP")
        dst, port, proto = self.destination(to)
        return self.dataplane.connect(clients, dst, port, proto, n, seed=seed, interval=interval, timeout=timeout)

    def iperf3(self, client: str, to: str, options: "IperfOptions | str" = "", *, progress: bool = True) -> "BandwidthRun":
        """One iperf3 test from ``client`` (a pod, a node, ``mypc``, or a label selector picking one
        pod) to ``to`` (a pod, a Service such as ``iperf3-server``, or ``NODE:NODEPORT``):
        ``options`` as :class:`kslab.iperf3.IperfOptions` or iperf3's flags (``"-u -R -t 5"``).
        Returns a :class:`kslab.bandwidth.BandwidthRun`: the path and its hops
        (:func:`kslab.bandwidth.path_to`), the parsed client report, and where its figures come
        from (``run.source``: measured now on netns/kind; on sim the recording's label, as the
        simulator moves no bytes). ``progress``: a bar (stderr; under the cell in a notebook) for
        a real test longer than 2 s."""
        from .bandwidth import BandwidthRun, command_line, options_of, path_to
        from .iperf3 import parse

        opts = options_of(options)
        path = path_to(self, client, to, port=opts.port)
        opts = dataclasses.replace(opts, port=path.port)
        bar: list = []

        def tick(elapsed: float) -> None:
            if not bar:
                from .scale import Progress

                bar.append(Progress(max(1, int(round(opts.seconds))), "iperf3", enabled=progress and opts.seconds > 2))
            b = bar[0]
            b.done = min(b.total, int(elapsed))
            b.show(f"{path.client} -> {path.server_pod} {opts.flags()}")

        try:
            text = self.dataplane.iperf3(path, opts, self.cluster, progress=tick)
        finally:
            if bar and bar[0].enabled:
                bar[0].done = bar[0].total
                bar[0].close()
        result = parse(text, where=f"iperf3 -c {path.host} in {path.client}")
        return BandwidthRun(path=path, options=opts, result=result, backend=self.backend,
                            source=self.dataplane.iperf3_source(), command=command_line(path, opts))


def _takes_family(method) -> bool:
    """Whether a dataplane method takes ``family=`` (a backend that keeps each IP family's tables)."""
    import inspect

    try:
        return "family" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _with_proxy_mode(proxy: dict | None, proxy_mode: str | None, *, from_env: bool) -> dict:
    """``Lab(proxy=..., proxy_mode=...)``'s proxy options: ``proxy_mode`` as the option ``mode``
    (given twice, the two must agree), else ``$KSLAB_PROXY_MODE`` when ``from_env`` and the
    options name no mode. Values are checked with the other options (:func:`check_proxy_options`)."""
    out = dict(proxy or {})
    if proxy_mode is not None:
        if out.get("mode") not in (None, proxy_mode):
            raise InputError("proxy_mode", f"{proxy_mode!r} contradicts proxy={{'mode': {out['mode']!r}}}",
                             "give the mode once: Lab(proxy_mode=\"nftables\")")
        out["mode"] = proxy_mode
    elif from_env and out.get("mode") is None and (env := os.environ.get("KSLAB_PROXY_MODE", "").strip()):
        if env not in PROXY_MODES:
            raise InputError("KSLAB_PROXY_MODE", f"{env!r} is not a proxy mode kslab implements",
                             "set it to one of " + ", ".join(PROXY_MODES) + " or unset it")
        out["mode"] = env
    return out


def _live_range_error() -> InputError:
    return InputError(
        "node_port_range", "a live cluster's NodePort range is its API server's --service-node-port-range, which kslab does not change",
        "try ranges on the simulator: kslab.Lab(backend=\"sim\", node_port_range=\"30000-30100\")")
