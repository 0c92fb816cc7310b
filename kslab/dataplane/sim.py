"""The ``sim`` dataplane: the netfilter simulator (:mod:`kslab.sim`) as the cluster's kernel.

Each node's iptables is an :class:`~kslab.proxy.iptables.node.NodeIptables` (kube-proxy's restores
and hand deletions edit it, as they would a kernel's tables); the simulated
:class:`~kslab.sim.network.Network` interprets what the tables hold. The clock is simulated:
``advance`` jumps, and equal seeds repeat every random choice.

kube-proxy's service health check servers follow each node's syncs: after a sync loads, the
node's servers get what that sync decided (:func:`kslab.healthcheck.synced_health`; listening on
every address, or on the node IPs of ``nodePortAddresses``). The cloud load balancer of a
``type: LoadBalancer`` Service probes them through the simulated network (so hand-broken rules
count), once after every change of the lab and before the next connection it balances: its
view is never stale (see :mod:`kslab.sim.network`, "Probe timing"), and :meth:`lb_status`
reports that view.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Sequence

from .. import experiments
from ..errors import InputError
from ..healthcheck import synced_health
from ..proxy.iptables.node import NodeIptables
from ..sim.network import HealthServers, Network
from ..sim.nftables import NftNetfilter
from .trace import SIMULATOR
from ..sim.trace import trace_of
from .base import Dataplane

if TYPE_CHECKING:
    import pandas as pd

    from ..bandwidth import BandwidthPath
    from ..iperf3 import IperfOptions
    from ..loadbalancer import LBState
    from ..model import ClusterState, Service
    from ..nft import NftState
    from ..proxy.iptables import RuleSet
    from ..proxy.nftables import NftRuleSet
    from ..shell import Command, ShellOutput
    from .trace import Trace


def _nft_family(family: int) -> str:
    """nftables' family of kube-proxy's table for an IP family: ``ip`` or ``ip6``."""
    return "ip6" if family == 6 else "ip"


class SimDataplane(Dataplane):
    """Each node holds one set of tables per IP family, as a kernel does (iptables' and
    ip6tables'): a sync loads into the tables of its ruleset's family (``ruleset.config.family``),
    and the simulated network runs each packet through its own family's tables. ``tables`` are
    the IPv4 ones (every node has them); ``tables6`` are made at a node's first IPv6 sync."""

    backend = "sim"

    def __init__(self, cluster: ClusterState, *, seed: int = 0) -> None:
        self.tables: dict[str, NodeIptables] = {n.name: NodeIptables() for n in cluster.nodes}
        self.tables6: dict[str, NodeIptables] = {}  # ip6tables, per node, from its first IPv6 sync
        # the nodes whose kube-proxy runs nftables mode: their nftables state (kslab.nft.NftState),
        # one per node holding table ip kube-proxy and table ip6 kube-proxy; nft_families: which run it
        self.nft: dict[str, NftState] = {}
        self.nft_families: dict[str, set[int]] = {}
        self.network = Network(cluster, {name: "" for name in self.tables}, seed=seed)

    def tables_of(self, node: str, family: int = 4) -> NodeIptables:
        """``node``'s iptables (4) or ip6tables (6) tables (empty ones, kept, if it has none yet)."""
        if family != 6:
            return self.tables[node]
        table = self.tables6.get(node)
        if table is None:
            if node not in self.tables:
                raise KeyError(node)
            table = self.tables6[node] = NodeIptables(6)
        return table

    def _families(self, node: str) -> list[int]:
        return [4, 6] if node in self.tables6 else [4]

    # ---- rules ---------------------------------------------------------------------------------
    def sync_rules(self, node: str, ruleset: RuleSet | NftRuleSet) -> None:
        """Load one sync: iptables mode restores into the node's tables; nftables mode
        (``ruleset.mode == "nftables"``) applies kube-proxy's two transactions (the stale-chain
        cleanup, then the sync) to the node's :class:`~kslab.nft.NftState`, each atomic like
        ``nft -f``. Switching a node's mode does what kube-proxy's start-up cleanup does for the
        other mode, as the kernel backend does it: nftables mode runs iptables'
        ``CleanupLeftovers`` on the node's tables (:meth:`NodeIptables.cleanup_leftovers`: KUBE-MARK-MASQ,
        the canaries, KUBE-PROXY-FIREWALL and KUBE-FIREWALL stay), iptables mode deletes ``table ip
        kube-proxy``."""
        cfg = ruleset.config
        family = 6 if getattr(cfg, "family", 4) == 6 else 4  # each family's kube-proxy writes its own family's tables
        nft_mode = getattr(ruleset, "mode", "iptables") == "nftables"
        if nft_mode:
            self._sync_nft(node, ruleset, family)  # type: ignore[arg-type]
        else:
            table = self.tables_of(node, family)
            (table.partial_sync if ruleset.partial else table.full_sync)(ruleset.raw_text())
            self._drop_nft_table(node, family)  # iptables mode's CleanupLeftovers for nftables: its table goes
        # loaded: kube-proxy hands its health check servers what this sync decided (SyncServices, SyncEndpoints)
        addresses = None if cfg.nodeport_addrs.match_all else frozenset(cfg.nodeport_ips())
        rows = ruleset.service_port_rows  # (service port info, endpoints, ...) per service port: no objects made
        self.network.set_health(node, HealthServers(synced_health((r[0], r[1]) for r in rows if r[0].health_check_node_port),
                                                    addresses), family)
        if nft_mode:
            self.network.update_nft({node: self.nft[node]}, family)
        else:  # interprets what the tables hold (no text round trip)
            self.network.update_tables({node: self.tables_of(node, family).tables}, family)

    def _drop_nft_table(self, node: str, family: int) -> None:
        """iptables mode's cleanup of nftables mode's leftovers in ``family``: ``table ip[6] kube-proxy`` goes."""
        families = self.nft_families.get(node)
        if not families or family not in families:
            return
        families.discard(family)
        state = self.nft[node]
        if families:
            if state.has_table(_nft_family(family)):
                state.apply(f"delete table {_nft_family(family)} kube-proxy\n")
        else:
            del self.nft[node], self.nft_families[node]

    def _sync_nft(self, node: str, ruleset: NftRuleSet, family: int = 4) -> None:
        from ..nft import NftState

        state = self.nft.get(node)
        families = self.nft_families.get(node, set())
        if family not in families:  # this family's first nftables sync: kube-proxy cleans up iptables mode's chains
            if not ruleset.partial:  # before the transactions, as NetnsLab.apply_nft (a refused sync keeps it done)
                self.tables_of(node, family).cleanup_leftovers()
        if state is None:
            state = NftState()
        # the "delete chain" transaction of chains stale for >= 1 s (a failure is only recorded),
        # then the sync's transaction: each atomic, a refused one leaves the state as it was
        ruleset.apply_with(state.apply)
        if node not in self.nft:
            self.nft[node] = state
        self.nft_families.setdefault(node, set()).add(family)

    def load_nft(self, node: str, listing: str) -> None:
        """Make ``node`` hold the nftables tables of ``listing`` (``nft list`` output, e.g. another
        lab's :meth:`nft_list`): its kube-proxy runs nftables mode from now on (its iptables tables
        keep what iptables' ``CleanupLeftovers`` leaves). Dynamic sets
        (session affinity) start empty, as connection state does in a copied lab."""
        from ..sim.nftables import load_text

        state = load_text(listing, where=f"{node}'s nft list")
        flush = "".join(f"flush set {t.family} {t.name} {s.name}\n" for t in state.tables.values()
                        for s in t.sets.values() if ("dynamic" in s.flags or "timeout" in s.flags) and s.elements)
        if flush:
            state.apply(flush)
        self.nft[node] = state
        self.nft_families[node] = {4, 6} if state.has_table("ip6") else {4}
        for family in self.nft_families[node]:  # what kube-proxy started in nftables mode leaves (a no-op if it ran)
            self.tables_of(node, family).cleanup_leftovers()
        self.network.update_nft({node: state})

    def mode(self, node: str) -> str:
        """The proxy mode of ``node``'s last sync: "iptables" or "nftables"."""
        return "nftables" if node in self.nft else "iptables"

    def nat_chains(self, node: str, family: int = 4) -> list[str]:
        if family == 6 and node not in self.tables6:
            return []
        return self.tables_of(node, family).chains("nat")

    def existing_chains(self, node: str, mode: str = "iptables", family: int = 4) -> list[str]:
        """The chains kube-proxy in ``mode`` lists before a sync: the nat table's (iptables), or
        ``table ip kube-proxy``'s (nftables; none before the node's first nftables sync); of
        ``family``'s tables (6: ip6tables, ``table ip6 kube-proxy``)."""
        if mode == "nftables":
            state = self.nft.get(node)
            fam = _nft_family(family)
            return list(state.chains(fam)) if state is not None and state.has_table(fam) else []
        return self.nat_chains(node, family)

    def existing_sets(self, node: str, mode: str = "nftables", family: int = 4) -> list[str]:
        """The sets and maps of ``node``'s ``table ip kube-proxy`` (``nft list sets``: kube-proxy
        deletes the ``affinity-…`` sets no endpoint uses any more); ``[]`` in iptables mode.
        ``family`` 6: ``table ip6 kube-proxy``'s."""
        state = self.nft.get(node)
        fam = _nft_family(family)
        return list(state.sets(fam)) if mode == "nftables" and state is not None and state.has_table(fam) else []

    def nft_list(self, node: str, family: int = 4) -> str:
        """``nft list table ip kube-proxy`` on ``node`` ("" when the node runs iptables mode),
        the dynamic sets' live elements included, as the kernel lists them (``family`` 6:
        ``table ip6 kube-proxy``)."""
        state = self.listed_nft(node, family)
        fam = _nft_family(family)
        return state.list_table(fam) if state is not None and state.has_table(fam) else ""

    def listed_nft(self, node: str, family: int = 4) -> NftState | None:
        """``node``'s nftables state as ``nft list`` sees it: the tables kube-proxy wrote plus what
        the packet path added to ``family``'s dynamic (affinity) sets and is not expired yet,
        with the time it has left (``expires``). None when the node runs iptables mode."""
        state = self.nft.get(node)
        if state is None:
            return None
        ns = self.network.nodes[node]
        nf = ns.netfilter_of(family)
        if not ns.state.nft_sets or not isinstance(nf, NftNetfilter):
            return state
        live = nf.live_elements(ns.state, self.network.now)
        if not live:
            return state
        view = state.copy()  # copy-on-write: the node's own state is not touched
        view.apply("".join(
            f"add element {nf.family} {nf.table_name} {name} {{ "
            + ", ".join(key + ("" if left is None else f" expires {max(left, 1)}ms") for key, left in rows) + " }\n"
            for name, rows in live.items()))
        return view

    def save_text(self, node: str, family: int = 4) -> str:
        """``iptables-save`` on ``node`` (``family`` 6: ``ip6tables-save``; "" before its first IPv6 sync)."""
        if family == 6 and node not in self.tables6:
            return ""
        return self.tables_of(node, family).save_text()

    def delete_rules(self, pattern: re.Pattern[str], nodes: Sequence[str]) -> int:
        """Every rule whose ``iptables-save`` line matches; on a node in nftables mode also every
        rule of ``table ip kube-proxy`` whose ``CHAIN RULE`` text (the chain's name, then the rule
        as ``nft list`` prints it) matches, deleted as ``nft delete rule ip kube-proxy CHAIN
        handle N`` would (the two line forms never match the same pattern in practice: ``-A
        CHAIN ...`` against ``CHAIN RULE``; iptables' leftovers stay on an nftables node, and
        ``Lab.reset`` empties their built-in chains)."""
        deleted = 0
        for name in nodes:
            state = self.nft.get(name)
            for fam in ("ip", "ip6"):  # a dual-stack node's kube-proxy writes both tables
                if state is not None and state.has_table(fam):
                    table = state.table(fam)
                    rules = table.rules_matching(pattern)  # the selection NetnsLab.delete_rules makes too
                    if rules:
                        state.apply(table.delete_rules_text(rules))  # one transaction: all or none
                        deleted += len(rules)
                        self.network.update_nft({name: state})
            for family in self._families(name):
                for dump in self.tables_of(name, family).tables.values():
                    for chain in dump.chains.values():
                        keep = [(r, c) for r, c in zip(chain.rules, chain.counters) if not pattern.search(r.save_text())]
                        deleted += len(chain.rules) - len(keep)
                        chain.rules[:] = [r for r, _ in keep]
                        chain.counters[:] = [c for _, c in keep]  # the rules left keep their counters
        for family in (4, 6):
            self.network.update_tables({name: self.tables_of(name, family).tables for name in nodes
                                        if family in self._families(name) and family not in self.nft_families.get(name, ())},
                                       family)
        return deleted

    # ---- pods ----------------------------------------------------------------------------------
    def update_pods(self, cluster: ClusterState) -> None:
        self.network.update_pods(cluster)

    def break_pod(self, pod: str, broken: bool = True) -> None:
        (self.network.broken.add if broken else self.network.broken.discard)(pod)

    # ---- traffic -------------------------------------------------------------------------------
    def connect(self, clients: Sequence[str], dst: str, port: int, proto: str, n: int, *,
                seed: int | None, interval: float, timeout: float) -> pd.DataFrame:
        net = self.network
        if seed is not None:
            net.reseed(seed)
        resolved = [net.client(c) for c in clients]
        return experiments.batch_frame(net.connect_many(resolved, dst, port, proto, n, interval=interval), self.backend)

    def trace(self, src: str, dst: str, port: int, proto: str) -> Trace:
        from ..sim.candidates import network_candidates, source_of
        found = network_candidates(self.network, src, dst, port, proto)  # before the trace: the state it will see
        trace = trace_of(self.network.connect(src, dst, port, proto, trace=True), self.backend)
        trace.candidates, trace.candidates_source = found, source_of(found, SIMULATOR)
        return trace

    def flush_conntrack(self) -> int:
        total = self.network.closed.clear(self.network.now)  # what finished connections left (TIME_WAIT ...)
        for node in self.network.nodes.values():
            total += len(node.conntrack)
            node.conntrack.clear()
        return total

    def reset(self) -> None:
        self.network.reset()
        for table in (*self.tables.values(), *self.tables6.values()):
            table.zero_counters()

    # ---- the cloud load balancer ---------------------------------------------------------------
    def lb_status(self, service: Service, cluster: ClusterState) -> LBState:
        """The simulated load balancer's last probe of every node for ``service`` (made now if the
        lab changed since), and the nodes it sends new connections to."""
        if service.type != "LoadBalancer":
            raise InputError(f"service {service.key}", f"is type {service.type}, so no load balancer fronts it",
                             "ask for a type: LoadBalancer Service")
        if not any(i.ip for i in service.load_balancer_ingress):
            raise InputError(f"service {service.key}", "has no status.loadBalancer.ingress IP (its load balancer is pending)",
                             "set status.loadBalancer.ingress[0].ip in its manifest")
        return self.network.lb_state(service)

    # ---- bandwidth (iperf3) --------------------------------------------------------------------
    def iperf3(self, path: BandwidthPath, options: IperfOptions, cluster: ClusterState, *,
               progress: Callable[[float], None] | None = None, json: bool = True) -> str:
        """The simulator moves no bytes: the client's ``-J`` JSON of the same test (same flags,
        same path kind) recorded on netns (``data/recorded/iperf3.json``,
        :func:`kslab.bandwidth.recorded_run`); none recorded: a one-line InputError listing what is.
        ``json=False``: iperf3's human-readable report of it (:func:`kslab.iperf3.format_text`)."""
        from ..bandwidth import recorded_run
        from ..iperf3 import format_text, parse

        text, _label = recorded_run(path.kind, options)
        return text if json else format_text(parse(text, where="the recorded iperf3 -J output"))

    def iperf3_source(self) -> str:
        from ..bandwidth import recording, recording_label

        return recording_label(recording()["meta"])

    # ---- the study's commands ------------------------------------------------------------------
    def run_tool(self, where: str, command: Command, cluster: ClusterState) -> ShellOutput:
        """The tool's output emulated from the simulator's state (:mod:`kslab.sim.tools`)."""
        from ..sim import tools

        return tools.run(command, where, cluster, {name: t.tables for name, t in self.tables.items()}, self.network,
                         nft={name: self.listed_nft(name) for name in self.nft},
                         tables6={name: t.tables for name, t in self.tables6.items()})

    def reseed(self, seed: int) -> None:
        self.network.reseed(seed)

    @property
    def now(self) -> float:
        return self.network.now

    def advance(self, seconds: float) -> None:  # seconds >= 0: the Lab checks it (Dataplane.advance)
        self.network.advance(seconds)

