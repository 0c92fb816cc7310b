"""Fixed names and jump rules of kube-proxy's iptables mode (``pkg/proxy/iptables/proxier.go``).

Mode-agnostic settings (sync periods, the masquerade bit's default) are in :mod:`kslab.proxy.config`."""

from __future__ import annotations

from typing import NamedTuple

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
KUBE_FIREWALL = "KUBE-FIREWALL"

LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000

NFACCT_CT_STATE_INVALID = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"
NFACCT_COUNTERS = (NFACCT_CT_STATE_INVALID, NFACCT_LOCALHOST_NODEPORTS)

# Tables in which ipt.Monitor creates the canary chain.
CANARY_TABLES = ("mangle", "nat", "filter")


class JumpChain(NamedTuple):
    table: str
    dst: str  # the KUBE-* chain jumped to
    src: str  # the built-in chain holding the jump
    comment: str
    extra_args: tuple[str, ...]

    def args(self) -> list[str]:
        """The rule's arguments as kube-proxy passes them to ``iptables -C/-I``."""
        a = list(self.extra_args)
        if self.comment:
            a += ["-m", "comment", "--comment", self.comment]
        return a + ["-j", self.dst]


_NEW = ("-m", "conntrack", "--ctstate", "NEW")

# iptablesJumpChains, in source order. Each is *prepended* (EnsureRule(Prepend)), so a built-in
# chain ends up holding them in reverse order.
JUMP_CHAINS: tuple[JumpChain, ...] = (
    JumpChain("filter", KUBE_EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals", _NEW),
    JumpChain("filter", KUBE_EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals", _NEW),
    JumpChain("filter", KUBE_NODEPORTS, "INPUT", "kubernetes health check service ports", ()),
    JumpChain("filter", KUBE_SERVICES, "FORWARD", "kubernetes service portals", _NEW),
    JumpChain("filter", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", _NEW),
    JumpChain("filter", KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules", ()),
    JumpChain("filter", KUBE_PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall", _NEW),
    JumpChain("filter", KUBE_PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall", _NEW),
    JumpChain("filter", KUBE_PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall", _NEW),
    JumpChain("nat", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", ()),
    JumpChain("nat", KUBE_SERVICES, "PREROUTING", "kubernetes service portals", ()),
    JumpChain("nat", KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules", ()),
)

# iptablesKubeletJumpChains: kubelet's KUBE-FIREWALL jumps, which kube-proxy also ensures on
# every full sync, in each family (kslab.proxy.iptables.node.full_sync_jump_chains, D6).
KUBELET_JUMP_CHAINS: tuple[JumpChain, ...] = (
    JumpChain("filter", KUBE_FIREWALL, "INPUT", "", ()),
    JumpChain("filter", KUBE_FIREWALL, "OUTPUT", "", ()),
)

NODEPORTS_TAIL_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

# isServiceChainName: the chains a sync may find stale and delete (flush + -X)
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")
