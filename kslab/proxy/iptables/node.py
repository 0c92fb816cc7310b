"""kube-proxy's iptables on one node: the jump rules, the canary chains, the nfacct counters and
the full-sync sequence, on kslab's model (:class:`NodeIptables`) and in a kernel (:func:`full_sync`).

A full sync is (``pkg/proxy/iptables/proxier.go``, ``reference/kube-proxy.md`` section 2):
nfacct counters (proxier creation, kernel only), ``-N KUBE-PROXY-CANARY`` in each of
:data:`~kslab.proxy.iptables.constants.CANARY_TABLES` (``ipt.Monitor``), EnsureChain +
EnsureRule(Prepend) for each jump of :func:`full_sync_jump_chains`, then one
``iptables-restore --noflush --counters``. A partial sync is the restore alone. The generic
iptables parts (rules, tables, the real tools) are :mod:`kslab.xtables`.

Families: each function takes ``family=4`` (iptables) or ``family=6`` (ip6tables). kube-proxy
runs one proxier per family (``NewDualStackProxier``), and each does all of the above in its
own family's tables: the canaries (``ipt.Monitor`` per proxier), every jump rule including
kubelet's KUBE-FIREWALL jumps, and the restore.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...xtables import IptablesState, Rule, kernel, parse_argv
from .constants import (
    CANARY_TABLES,
    JUMP_CHAINS,
    KUBE_PROXY_CANARY,
    KUBELET_JUMP_CHAINS,
    NFACCT_COUNTERS,
    JumpChain,
)

__all__ = [
    "full_sync_jump_chains",
    "jump_rule",
    "NodeIptables",
    "restore_to_save",
    "ensure_canary_chains",
    "ensure_jump_chains",
    "full_sync",
    "counters_present",
]


# --------------------------------------------------------------------------------------------
# The jump rules


def full_sync_jump_chains(restore_text: str = "", kubelet_firewall_jumps: bool | None = None) -> tuple[JumpChain, ...]:
    """The jump rules a full sync ensures, in the order kube-proxy ensures them:
    :data:`JUMP_CHAINS`, then :data:`KUBELET_JUMP_CHAINS` (KUBE-FIREWALL from INPUT and OUTPUT).

    Upstream ensures both lists on every full sync, in each family, with no condition
    (``pkg/proxy/iptables/proxier.go``, ``syncProxyRules``)::

        if !tryPartialSync {          // doFullSync in newer trees
            for _, jump := range append(iptablesJumpChains, iptablesKubeletJumpChains...) {
                if _, err := proxier.iptables.EnsureChain(jump.table, jump.dstChain); err != nil {
                ...
                if _, err := proxier.iptables.EnsureRule(utiliptables.Prepend, jump.table, jump.srcChain, args...); err != nil {

    with ``var iptablesKubeletJumpChains = []iptablesJumpChain{{utiliptables.TableFilter,
    kubeletFirewallChain, utiliptables.ChainInput, "", nil}, {utiliptables.TableFilter,
    kubeletFirewallChain, utiliptables.ChainOutput, "", nil}}``. Only the localnet DROP rule
    *inside* KUBE-FIREWALL is conditional (IPv4 with localhostNodePorts; that is the rendered
    text's business, :mod:`kslab.proxy.iptables.proxier`). So ip6tables, and iptables with
    ``--iptables-localhost-nodeports=false``, get an empty KUBE-FIREWALL and the two jumps too
    (decision D6 of issue 16; kslab used to infer the jumps from ``:KUBE-FIREWALL`` in the text).

    ``restore_text`` is not used (kept for older callers). ``kubelet_firewall_jumps=False``
    leaves out the kubelet jumps (a what-if; kube-proxy has no such switch).
    """
    return JUMP_CHAINS + (KUBELET_JUMP_CHAINS if kubelet_firewall_jumps in (None, True) else ())


def jump_rule(jump: JumpChain, family: int = 4) -> Rule:
    """The rule kube-proxy's EnsureRule puts in a built-in chain for one :class:`JumpChain`."""
    return parse_argv(["-A", jump.src, *jump.args()], jump.table, family=family)


# --------------------------------------------------------------------------------------------
# On kslab's model


class NodeIptables(IptablesState):
    """A node's iptables as the simulator's kernel: :class:`~kslab.xtables.IptablesState` plus
    kube-proxy's two kinds of sync. ``NodeIptables(6)`` is the node's ip6tables."""

    def full_sync(
        self,
        restore_text: str,
        *,
        jumps: bool = True,
        canary: bool = True,
        kubelet_firewall_jumps: bool | None = None,
    ) -> None:
        """kube-proxy's full sync: canary chains (ipt.Monitor), the jump rules
        (EnsureChain + EnsureRule), then ``iptables-restore --noflush`` of ``restore_text``."""
        if canary:
            for table in CANARY_TABLES:
                self.ensure_chain(table, KUBE_PROXY_CANARY)
        if jumps:
            for jump in full_sync_jump_chains(restore_text, kubelet_firewall_jumps):
                self.ensure_chain(jump.table, jump.dst)
                self.ensure_rule_prepend(jump_rule(jump, self.family))
        self.restore(restore_text)

    def partial_sync(self, restore_text: str) -> None:
        """kube-proxy's partial sync: only the restore (the jump rules are left as they are)."""
        self.restore(restore_text)

    def cleanup_leftovers(self) -> None:
        """iptables' ``CleanupLeftovers`` (kube-proxy started in another mode), the steps
        :meth:`kslab.netns.lab.NetnsLab.apply_nft` runs in a kernel
        (:mod:`kslab.proxy.iptables.cleanup`): each jump rule deleted (``-D``: the first equal
        rule; none, or no such chain, is fine), then kube-proxy's nat and filter chains flushed
        and deleted in one ``iptables-restore --noflush`` per table. KUBE-MARK-MASQ, the canaries,
        KUBE-PROXY-FIREWALL and KUBE-FIREWALL stay, as in the kernel."""
        from . import cleanup

        existing = {t: set(self.chains(t)) for t in ("nat", "filter")}
        for jump in cleanup.cleanup_jumps():
            if jump.dst not in existing[jump.table]:
                continue  # no such chain, so no jump to it
            chain = self.tables[jump.table].chains.get(jump.src)
            rule = jump_rule(jump, self.family)
            if chain is not None and rule in chain.rules:
                k = chain.rules.index(rule)
                del chain.rules[k]
                del chain.counters[k]
        for table in ("nat", "filter"):
            text = cleanup.cleanup_restore(table, existing[table])
            if text:
                self.restore(text)


def restore_to_save(
    restore_text: str,
    family: int = 4,
    *,
    jumps: bool = True,
    canary: bool = True,
    kubelet_firewall_jumps: bool | None = None,
) -> str:
    """What ``iptables-save`` (``ip6tables-save`` for ``family=6``) prints after kube-proxy's
    first full sync on a clean node.

    The sync is (a) ``-N KUBE-PROXY-CANARY`` in each of :data:`CANARY_TABLES` (ipt.Monitor),
    (b) for each jump of :func:`full_sync_jump_chains`: EnsureChain, then EnsureRule(Prepend),
    (c) ``iptables-restore --noflush --counters`` of ``restore_text``. The result has no
    ``# Generated``/``# Completed`` lines and all counters ``[0:0]``, tables in
    :data:`~kslab.xtables.SAVE_TABLE_ORDER`. Raises ValueError (naming the rule) for anything
    that would not load or that kslab cannot print exactly.
    """
    state = NodeIptables(family)
    state.full_sync(restore_text, jumps=jumps, canary=canary, kubelet_firewall_jumps=kubelet_firewall_jumps)
    return state.save_text()


# --------------------------------------------------------------------------------------------
# In a kernel (a network namespace, with the real iptables tools)


def ensure_canary_chains(
    ns: str, tables: Iterable[str] = CANARY_TABLES, *, backend: str | None = None, family: int = 4
) -> None:
    """ipt.Monitor's canaries: an empty KUBE-PROXY-CANARY chain in each of ``tables``."""
    for table in tables:
        kernel.ensure_chain(ns, table, KUBE_PROXY_CANARY, backend=backend, family=family)


def ensure_jump_chains(
    ns: str,
    restore_text: str = "",
    *,
    kubelet_firewall_jumps: bool | None = None,
    backend: str | None = None,
    family: int = 4,
) -> None:
    """The jump rules of a full sync (see :func:`full_sync_jump_chains`)."""
    for jump in full_sync_jump_chains(restore_text, kubelet_firewall_jumps):
        kernel.ensure_chain(ns, jump.table, jump.dst, backend=backend, family=family)
        kernel.ensure_rule_prepend(ns, jump.table, jump.src, jump.args(), backend=backend, family=family)


def full_sync(
    ns: str,
    restore_text: str,
    *,
    jumps: bool = True,
    canary: bool = True,
    kubelet_firewall_jumps: bool | None = None,
    nfacct: bool = True,
    backend: str | None = None,
    family: int = 4,
) -> dict[str, bool]:
    """kube-proxy's start-up and first full sync in ``ns``; returns the nfacct counters present.

    Order: nfacct counters (proxier creation), canary chains (ipt.Monitor), jump chains and
    rules, then the restore, all in ``family``'s tables (the nfacct counters belong to the
    namespace, shared by both families). ``kernel.iptables_save(ns, family=family)`` afterwards
    equals :func:`restore_to_save` of ``restore_text`` with the same flags and family.

    ``nfacct=False`` skips the counters; the text must then be rendered without ``-m nfacct``
    (as kube-proxy renders it when its counters are missing), or the restore fails.
    """
    kernel.require_root()
    counters = kernel.create_nfacct_counters(ns, NFACCT_COUNTERS) if nfacct else dict.fromkeys(NFACCT_COUNTERS, False)
    if canary:
        ensure_canary_chains(ns, backend=backend, family=family)
    if jumps:
        ensure_jump_chains(ns, restore_text, kubelet_firewall_jumps=kubelet_firewall_jumps, backend=backend, family=family)
    kernel.iptables_restore(ns, restore_text, backend=backend, family=family)
    return counters


def counters_present(counters: Mapping[str, bool]) -> bool:
    """True if every counter kube-proxy uses exists (render with nfacct on)."""
    return all(counters.get(name, False) for name in NFACCT_COUNTERS)
