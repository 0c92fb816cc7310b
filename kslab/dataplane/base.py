"""The dataplane seam: what every backend (``sim``, ``netns``, a live ``kind`` cluster ...) implements.

:class:`kslab.Lab` holds the cluster, the control plane, one kube-proxy
(:class:`kslab.proxy.proxier.Proxier`) per node, and exactly one :class:`Dataplane`. The Lab
decides *what* the rules are (kube-proxy's sync: full or partial, stale chains); the dataplane
is the machine they run on: it loads them, carries connections through them, and explains one
connection. The Lab never asks which dataplane it has, so a new backend is one new subclass
plus one line in :func:`kslab.dataplane.create`; nothing in ``Lab`` or the chapters changes.

Contract for implementers (every method below is called by ``Lab``; names are node, pod and
client names of the Lab's :class:`~kslab.model.ClusterState`):

- Construction brings the machine up for the cluster (nodes, pods, their servers) with *no*
  kube-proxy rules yet; the Lab's first sync of every node follows at once (a full one).
- Errors a user causes are :class:`~kslab.errors.InputError`; a machine that cannot do what is
  asked raises :class:`~kslab.errors.EnvironmentProblem` (one line each, never a traceback).
- State that lives in the kernel (conntrack entries, ``recent`` lists, counters) carries over
  rule changes, as in a real kernel: only :meth:`reset` and :meth:`flush_conntrack` forget it.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import EnvironmentProblem

if TYPE_CHECKING:
    import pandas as pd

    from ..bandwidth import BandwidthPath
    from ..iperf3 import IperfOptions
    from ..loadbalancer import LBState
    from ..model import ClusterState, Service
    from ..proxy.iptables import RuleSet
    from ..shell import Command, ShellOutput
    from .trace import Trace


class Dataplane(ABC):
    """The machine a Lab's rules run on. See the module docstring for the shared contract."""

    #: the backend's name, as ``Lab(backend=...)`` takes it and as rows and traces report it
    backend: str = ""
    #: True if :meth:`sync_rules` and :meth:`nat_chains` of *different* nodes may run at the same
    #: time in threads (each node's kube-proxy syncs on its own node, as in a cluster); the Lab
    #: then syncs the nodes in parallel. Calls for one node never overlap.
    concurrent_syncs: bool = False
    #: False where the Lab's syncs load nothing because the machine runs its own kube-proxy (a live
    #: cluster): the Lab's Proxiers are then the prediction, and it never hand-edits the node's rules
    loads_rules: bool = True
    #: False where the machine's state is not kslab's to set (a live cluster): conntrack, ``recent``
    #: lists and rule counters are shared with the cluster's own traffic, the clock is real, pods'
    #: apps and readiness are their images' and kubelets'. An experiment that needs them exact runs
    #: on a sim twin instead (:meth:`kslab.Lab.exact`)
    exact: bool = True

    # ---- kube-proxy's rules --------------------------------------------------------------------------
    def kernel_features(self) -> dict[str, Any]:
        """:class:`~kslab.proxy.config.ProxyConfig` overrides that this machine imposes on every
        node's kube-proxy, as kube-proxy detects them at start (e.g. ``{"nfacct": False}`` where the
        nfacct counters cannot be created). They win over the user's options. Default: none."""
        return {}

    @abstractmethod
    def sync_rules(self, node: str, ruleset: RuleSet) -> None:
        """Load one kube-proxy sync into ``node``'s kernel, as kube-proxy does. A full sync
        (``ruleset.partial`` False) first ensures kube-proxy's canary chains and the jump rules from
        the built-in chains (``iptables -N`` / ``-C`` / ``-I``; see
        :func:`kslab.proxy.iptables.node.full_sync_jump_chains`), then restores the text; a partial sync
        (``ruleset.partial`` True) is the restore alone. Both restore with ``--noflush``: the
        chains the text declares are rewritten, every other chain and rule (a hand edit too)
        stays. Raise :class:`~kslab.errors.EnvironmentProblem` or ``ValueError`` when the kernel
        refuses the text; the tables are then as they were (a restore is atomic per table). The
        Proxier records the failure and retries with a full sync.

        A ruleset of kube-proxy's nftables mode (``ruleset.mode == "nftables"``,
        :class:`kslab.proxy.nftables.NftRuleSet`) is one ``nft -f`` transaction (``raw_text()``),
        after the separate one deleting stale chains (``cleanup_ops``). The first full sync in one
        mode on a node that held the other mode's rules removes those first, as kube-proxy's
        ``CleanupLeftovers`` does at start-up."""

    # Families: a node's kernel holds iptables' tables and ip6tables' (nftables: ``table ip
    # kube-proxy`` and ``table ip6 kube-proxy``), written by one kube-proxy per family (upstream's
    # NewDualStackProxier). ``sync_rules`` loads a ruleset into its own family's tables
    # (``ruleset.config.family``); the readers below take ``family`` (4, the default, or 6).

    @abstractmethod
    def nat_chains(self, node: str, family: int = 4) -> list[str]:
        """The chains of ``node``'s nat table now (``iptables-save -t nat``'s ``:CHAIN`` lines;
        ``family`` 6: ``ip6tables-save``'s); kube-proxy lists them before a sync to delete the
        service chains it no longer writes."""

    def existing_chains(self, node: str, mode: str = "iptables", family: int = 4) -> list[str]:
        """The chains kube-proxy in proxy mode ``mode`` lists on ``node`` before a sync, to find the
        service chains it no longer writes: the nat table's (:meth:`nat_chains`) for ``iptables``,
        the chains of ``table ip kube-proxy`` for ``nftables`` (default: read from
        :meth:`nft_list`; a backend with a cheaper listing overrides this); of ``family``'s tables."""
        if mode == "nftables":
            return re.findall(r"^\tchain (\S+) \{$", self._nft_list(node, family), re.M)
        return self.nat_chains(node) if family == 4 else self.nat_chains(node, family)

    def existing_sets(self, node: str, mode: str = "nftables", family: int = 4) -> list[str]:
        """The sets of ``node``'s ``table ip kube-proxy`` (kube-proxy deletes the affinity sets it
        no longer writes); ``[]`` in iptables mode. Default: read from :meth:`nft_list`."""
        if mode != "nftables":
            return []
        return re.findall(r"^\tset (\S+) \{$", self._nft_list(node, family), re.M)

    def _nft_list(self, node: str, family: int) -> str:
        return self.nft_list(node) if family == 4 else self.nft_list(node, family)  # type: ignore[call-arg]

    def nft_list(self, node: str, family: int = 4) -> str:
        """``node``'s ``table ip kube-proxy`` as ``nft list table ip kube-proxy`` prints it (``""``
        when the node has no such table: iptables mode; ``family`` 6: ``table ip6 kube-proxy``).
        A backend without nftables says so (this default)."""
        raise EnvironmentProblem(f"the {self.backend or type(self).__name__} backend cannot list nftables tables")

    @abstractmethod
    def save_text(self, node: str, family: int = 4) -> str:
        """``node``'s tables as ``iptables-save`` prints them (what the kernel holds, hand edits
        included); ``family`` 6: as ``ip6tables-save`` prints them."""

    @abstractmethod
    def delete_rules(self, pattern: re.Pattern[str], nodes: Sequence[str]) -> int:
        """Delete by hand (``iptables -t TABLE -D``) every rule of ``nodes`` whose ``iptables-save``
        line (``-A CHAIN ...``) matches ``pattern`` (``pattern.search``); on a node in nftables
        mode also every rule of ``table ip kube-proxy`` whose ``CHAIN RULE`` line (as ``nft list``
        prints the rule, :meth:`kslab.nft.state.NftTable.rules_matching`) matches, in one ``nft
        delete rule ... handle N`` transaction; return how many."""

    # ---- pods ----------------------------------------------------------------------------------------
    @abstractmethod
    def update_pods(self, cluster: ClusterState) -> None:
        """Bring pods in line with ``cluster`` after a control-plane change (scale, delete, readiness):
        new pods start answering, removed ones stop. Nodes do not change. Called before the
        Lab's kube-proxy syncs the new endpoints."""

    @abstractmethod
    def break_pod(self, pod: str, broken: bool = True) -> None:
        """Make ``pod``'s app answer with errors (HTTP 500) while TCP still works; ``broken=False`` heals it."""

    # ---- traffic -------------------------------------------------------------------------------------
    @abstractmethod
    def connect(self, clients: Sequence[str], dst: str, port: int, proto: str, n: int, *,
                seed: int | None, interval: float, timeout: float) -> pd.DataFrame:
        """Open ``n`` new connections from ``clients`` (used in turn) to ``dst:port/proto`` and return
        one row per connection with exactly the columns :data:`kslab.dataplane.rows.COLUMNS`
        (``backend`` = :attr:`backend`). ``seed`` restarts the dataplane's randomness where it
        can be seeded (equal seeds repeat exactly); ``interval`` is the time between connections
        on a simulated clock; ``timeout`` is how long a real connection may take before it counts
        as failed. A protocol the backend cannot open is an InputError. ``ingress_node`` is the
        node the connection entered: the node addressed (a NodePort), the client's own node, or,
        for a LoadBalancer ingress IP, the node the load balancer chose (:meth:`lb_status`)."""

    @abstractmethod
    def trace(self, src: str, dst: str, port: int, proto: str) -> Trace:
        """Open one new connection from ``src`` and explain it: a :class:`~kslab.dataplane.trace.Trace`
        with the rules its first packet matched node by node, the DNAT, the masquerade, the
        endpoint and the address the endpoint saw."""

    @abstractmethod
    def flush_conntrack(self) -> int:
        """Forget every node's conntrack entries (``conntrack -F``); return how many there were.
        Failed connections leave entries a new connection reusing a
        source port would follow."""

    @abstractmethod
    def reset(self) -> None:
        """Fresh kernel state on every node: conntrack, ``recent`` lists and counters (nfacct's and
        every rule's, ``iptables -Z``) forgotten (a simulated clock goes back to 0). The rules stay."""

    def reseed(self, seed: int) -> None:
        """Restart the dataplane's random choices (client ports, ``statistic`` draws) from ``seed``.
        A kernel's randomness cannot be seeded: such backends keep the default, which does nothing."""

    # ---- the study's commands ------------------------------------------------------------------------
    def sh(self, where: str, command: Command, cluster: ClusterState) -> ShellOutput:
        """Run one of the study's commands in ``where`` (a node, a pod or ``mypc``), parsed and
        checked by :mod:`kslab.shell` (``command.argv`` is what a real machine runs, names already
        resolved by the lab's DNS): what it prints, and its exit status. A non-zero exit status
        is an answer (a refused ``curl``), not an error.

        ``kubectl`` is answered here from ``cluster`` on every backend (:mod:`kslab.kubectl`; a
        live cluster's backend overrides this to ask its API server); every other tool runs on
        the machine: :meth:`run_tool`."""
        from ..shell import Kubectl, ShellOutput

        if isinstance(command, Kubectl):
            try:
                from .. import kubectl
            except ModuleNotFoundError as e:
                if e.name != "kslab.kubectl":
                    raise
                raise EnvironmentProblem("kubectl: this kslab has no kubectl emulation (kslab/kubectl.py)") from None
            res = kubectl.run_result(cluster, command.args)  # stderr: kubectl's warnings, as it prints them
            return ShellOutput(res.stdout, res.stderr)
        return self.run_tool(where, command, cluster)

    def run_tool(self, where: str, command: Command, cluster: ClusterState) -> ShellOutput:
        """Run a tool (``iptables``, ``conntrack``, ``ip``, ``curl``, ``hostname``) in ``where``:
        for real in the node's or pod's network namespace (with a timeout), or emulated in the
        real tool's output format. A backend that cannot says so (this default)."""
        raise EnvironmentProblem(f"the {self.backend or type(self).__name__} backend cannot run {command.tool}")

    # ---- bandwidth (iperf3) -------------------------------------------------------------------------
    def iperf3(self, path: BandwidthPath, options: IperfOptions, cluster: ClusterState, *,
               progress: Callable[[float], None] | None = None, json: bool = True) -> str:
        """Run one iperf3 test along ``path`` (:func:`kslab.bandwidth.path_to`): ``iperf3 -s`` in
        ``path.server_pod`` on ``path.server_port``, then ``iperf3 -c path.host -p path.port``
        with ``options`` in ``path.client``; return what the client printed: its ``-J`` JSON (or,
        ``json=False``, its human-readable report). ``progress(seconds_elapsed)`` is called while a
        real test runs (it may raise, e.g. KeyboardInterrupt: the test's processes are stopped).
        A machine that cannot run iperf3 says so in one line (this default)."""
        raise EnvironmentProblem(f"the {self.backend or type(self).__name__} backend cannot run iperf3")

    def iperf3_source(self) -> str:
        """Where :meth:`iperf3`'s figures come from, as a run prints it: ``measured now on BACKEND``
        (a recording says ``RECORDED on ... (not measured now)``)."""
        return f"measured now on {self.backend or type(self).__name__}"

    # ---- the cloud load balancer ----------------------------------------------------------------------
    def lb_status(self, service: Service, cluster: ClusterState) -> LBState:
        """The load balancer of ``service`` (a ``type: LoadBalancer`` Service with an ingress IP)
        as it stands now: its last probe of every node and the nodes it sends to
        (:mod:`kslab.loadbalancer`). A backend without a load balancer says so (this default)."""
        raise EnvironmentProblem(f"the {self.backend or type(self).__name__} backend has no load balancer for {service.key}")

    # ---- time and lifetime ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def now(self) -> float:
        """The dataplane's clock in seconds since it started (simulated or real)."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (``seconds`` >= 0, checked by the Lab): a simulated clock jumps, a
        real one is waited for, so conntrack and ``recent`` entries age."""

    def close(self) -> None:
        """Release what the dataplane made (namespaces, processes); idempotent. Default: nothing."""



class RealClock:
    """The clock of a dataplane whose kernel keeps real time (netns, a live cluster): ``now`` is
    the seconds since the dataplane started or was last reset (``self._t0``, set by both), and
    ``advance`` waits, so conntrack and ``recent`` entries age as they really do."""

    _t0: float

    @property
    def now(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)
