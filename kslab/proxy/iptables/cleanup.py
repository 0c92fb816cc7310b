"""kube-proxy's iptables ``CleanupLeftovers``: what a node's kube-proxy removes of the iptables
mode's rules when it starts in another mode (nftables), as ``pkg/proxy/iptables/proxier.go`` does.

1. Unlink: ``iptables -t TABLE -D SRC ARGS`` for every jump of ``iptablesJumpChains``
   (:data:`~kslab.proxy.iptables.constants.JUMP_CHAINS`; "not found" is fine).
2. nat: flush (``:CHAIN - [0:0]``) and delete (``-X``) KUBE-SERVICES, KUBE-NODEPORTS,
   KUBE-POSTROUTING and every service chain (KUBE-SVC/SVL/EXT/FW/SEP-) the table has, in one
   ``iptables-restore --noflush``.
3. filter: the same for KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS.

What it leaves, as upstream does: KUBE-MARK-MASQ (nat), KUBE-PROXY-FIREWALL (filter, unlinked),
the KUBE-PROXY-CANARY chains and kubelet's KUBE-FIREWALL. Pure: the callers run it
(:meth:`kslab.netns.lab.NetnsLab.apply_nft` in a kernel).
"""

from __future__ import annotations

from collections.abc import Iterable

from .constants import (
    JUMP_CHAINS,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_SERVICES,
    SERVICE_CHAIN_PREFIXES,
    JumpChain,
)

__all__ = ["CLEANUP_JUMPS", "CLEANUP_CHAINS", "cleanup_jumps", "cleanup_restore"]

CLEANUP_JUMPS: tuple[JumpChain, ...] = JUMP_CHAINS  # iptablesJumpChains + iptablesCleanupOnlyChains (none)
CLEANUP_CHAINS = {
    "nat": (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING),
    "filter": (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS),
}


def cleanup_jumps() -> tuple[JumpChain, ...]:
    """The jump rules CleanupLeftovers deletes, in its order."""
    return CLEANUP_JUMPS


def cleanup_restore(table: str, existing_chains: Iterable[str]) -> str | None:
    """The ``iptables-restore --noflush`` input that flushes and deletes kube-proxy's chains of
    ``table`` among ``existing_chains`` (``iptables-save -t TABLE``'s chains), or None when there
    is nothing to remove. Service chains (nat) come sorted (upstream walks a Go map)."""
    existing = list(existing_chains)
    have = set(existing)
    chains = [c for c in CLEANUP_CHAINS.get(table, ()) if c in have]
    if table == "nat":
        chains += sorted(c for c in have if c.startswith(SERVICE_CHAIN_PREFIXES))
    if not chains:
        return None
    return "".join([f"*{table}\n", *(f":{c} - [0:0]\n" for c in chains), *(f"-X {c}\n" for c in chains), "COMMIT\n"])
