"""A snapshot of the root network namespace, to prove the lab leaves it untouched.

The lab's promise (DESIGN.md section 3) is that nothing is created or changed in the root
namespace: only ``ip netns add/del`` entries under /run/netns and processes started with ``ip
netns exec``. :func:`snapshot` reads everything a careless implementation could change there
(links, addresses, routes, rules, iptables and nftables rules of both backends, the sysctls the
lab sets inside its namespaces), normalised so that it is stable while nothing changes
(counters, address lifetimes and date headers removed). Tests compare a snapshot taken before
``up`` with one taken after ``down``; :func:`diff` says what differs.

Everything here only reads; it runs in the root namespace on purpose.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"

_COMMANDS: dict[str, list[str]] = {
    "ip -d link": ["ip", "-d", "link", "show"],
    "ip addr": ["ip", "addr", "show"],
    "ip route table all": ["ip", "route", "show", "table", "all"],
    "ip rule": ["ip", "rule", "show"],
    "ip -6 route table all": ["ip", "-6", "route", "show", "table", "all"],
    "ip -6 rule": ["ip", "-6", "rule", "show"],
    "iptables-nft-save": ["iptables-nft-save"],
    "ip6tables-nft-save": ["ip6tables-nft-save"],
    "iptables-legacy-save": ["iptables-legacy-save"],
    "ip6tables-legacy-save": ["ip6tables-legacy-save"],
    "nft list ruleset": ["nft", "list", "ruleset"],
}

SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/conf/default/route_localnet",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
)

_VOLATILE = [
    (re.compile(r"(valid_lft|preferred_lft) \S+"), r"\1 -"),  # DHCP/RA lifetimes count down
    (re.compile(r"expires \d+sec"), "expires -"),
    (re.compile(r"^(:\S+ \S+) \[\d+:\d+\]", re.MULTILINE), r"\1 [0:0]"),  # iptables-save chain counters
    (re.compile(r"^\[\d+:\d+\] ", re.MULTILINE), ""),  # iptables-save -c rule counters
    (re.compile(r"^# (Generated|Completed) .*$", re.MULTILINE), "#"),
    (re.compile(r"^# Warning: .*$", re.MULTILINE), "#"),
]


def _run(argv: list[str]) -> str:
    exe = shutil.which(argv[0], path=_SBIN)
    if exe is None:
        return f"({argv[0]} not installed)"
    result = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=60, check=False)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def _normalise(text: str) -> str:
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def snapshot() -> dict[str, str]:
    """What the root namespace looks like now: one normalised text per command or sysctl."""
    snap = {name: _normalise(_run(argv)) for name, argv in _COMMANDS.items()}
    procsys = Path("/proc/sys")
    for key in SYSCTLS:
        path = procsys / key
        snap[f"sysctl {key}"] = path.read_text().strip() if path.exists() else "(absent)"
    bridge = procsys / "net/bridge"
    if bridge.is_dir():
        for path in sorted(bridge.iterdir()):
            snap[f"sysctl net/bridge/{path.name}"] = path.read_text().strip()
    else:
        snap["sysctl net/bridge"] = "(absent)"
    return snap


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Unified-diff lines of every part that changed (empty if the snapshots are identical)."""
    out: list[str] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, "(missing)"), after.get(key, "(missing)")
        if a != b:
            out += [f"== {key}"] + list(difflib.unified_diff(a.splitlines(), b.splitlines(), "before", "after", lineterm="", n=1))
    return out


def root_veths() -> list[str]:
    """veth interfaces in the root namespace (the lab never makes any)."""
    text = _run(["ip", "-o", "link", "show", "type", "veth"])
    return [line.split(":")[1].strip() for line in text.splitlines()[1:] if ":" in line]
