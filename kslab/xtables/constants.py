"""What the kernel and iptables 1.8.9 fix: the tables kslab knows with their built-in chains,
the standard verdicts, and the length limits of names."""

from __future__ import annotations

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
"""Each table's built-in chains, in the kernel's hook order (the order iptables-save prints them)."""

STANDARD_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN"})
"""Verdicts built into iptables; any other option-less target name is a jump to a user chain."""

MAX_CHAIN_NAME = 28  # "chain name too long (must be under 29 chars)"
MAX_IFACE_NAME = 15  # IFNAMSIZ - 1
MAX_COMMENT_BYTES = 255  # XT_MAX_COMMENT_LEN - 1; libxt_comment silently truncates longer ones
MAX_NFACCT_NAME = 31  # NFACCT_NAME_MAX - 1
MAX_RECENT_NAME = 199  # XT_RECENT_NAME_LEN - 1
U32 = 0xFFFFFFFF
