"""nft texts kslab.nft and the real ``nft`` (v1.0.6) must agree on (tests/test_nft_state.py).

Every expected listing under tests/data/nft/ was printed by the real nft in a throw-away network
namespace (``unshare -n``; never the root namespace) by :func:`run_real`; regenerate them all
with ``python tests/nft_cases.py`` (as root). The scenario says which transactions were loaded,
in order, each by its own ``nft -f``, and which listing command ran:

- SCENARIOS: name -> (transaction files, list command, expected file);
- SHELL_SCENARIOS: name -> (shell script, expected file): tables other tools write
  (iptables-nft's docker-style nat/filter tables) next to kube-proxy's, for ``parse_ruleset``;
- ERROR_CASES: (base text, transaction, nft's first error: line and message);
- RULE_CASES: (rule as written, as ``nft list`` prints it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "nft"
CASE = DATA / "kube-proxy-nftables-overall.txt"   # copy of shared/reference/cases/, header kept


def declaration_first(text: str) -> str:
    """The reference case made loadable: ``#`` lines dropped, every ``add table|set|map|chain``
    moved before the rest (the test layout uses chains and sets before declaring them, which
    ``nft -f`` refuses: Could not process rule: No such file or directory)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    decl = [ln for ln in lines if re.match(r"add (table|set|map|chain) ", ln)]
    rest = [ln for ln in lines if not re.match(r"add (table|set|map|chain) ", ln)]
    return "\n".join(decl + rest) + "\n"


def transaction(name: str) -> str:
    """A transaction file's text; ``@overall`` is the reference case made loadable,
    ``@random:SEED`` is :func:`random_ruleset`."""
    if name == "@overall":
        return declaration_first(CASE.read_text())
    if name.startswith("@random:"):
        return random_ruleset(int(name.split(":", 1)[1]))
    return (DATA / name).read_text()


def random_ruleset(seed: int) -> str:
    """Table ``ip r`` with random addresses, ports, concatenated keys, comments, verdict maps
    and anonymous sets (element order and line wrapping are what this exercises)."""
    import random

    rng = random.Random(seed)

    def ip() -> str:
        return ".".join(str(rng.randrange(256)) for _ in range(4))

    def proto() -> str:
        return rng.choice(["tcp", "udp", "sctp"])

    def port() -> str:
        return str(rng.randrange(1, 65536))

    def some(make, lo: int, hi: int) -> list[str]:
        return list(dict.fromkeys(make() for _ in range(rng.randrange(lo, hi))))

    lines = ["add table ip r", "add chain ip r c", "add chain ip r d",
             "add set ip r a { type ipv4_addr ; }",
             "add element ip r a { %s }" % ", ".join(some(ip, 1, 30)),
             "add set ip r p { type inet_service ; }",
             "add element ip r p { %s }" % ", ".join(some(port, 1, 30)),
             "add map ip r m { type ipv4_addr . inet_proto . inet_service : verdict ; }"]
    for _ in range(rng.randrange(1, 25)):
        comment = f' comment "x{rng.randrange(9)}"' if rng.random() < 0.3 else ""
        verdict = rng.choice(["goto c", "jump d", "drop", "accept"])
        lines.append(f"add element ip r m {{ {ip()} . {proto()} . {port()}{comment} : {verdict} }}")
    lines += [
        "add map ip r n { type inet_proto . inet_service : verdict ; }",
        "add element ip r n { %s }" % ", ".join(f"{k} : drop" for k in some(lambda: f"{proto()} . {port()}", 1, 20)),
        "add map ip r v { type ipv4_addr : verdict ; }",
        "add element ip r v { %s }" % ", ".join(f"{k} : goto c" for k in some(ip, 1, 12)),
        "add set ip r q { type ipv4_addr . inet_service ; }",
        "add element ip r q { %s }" % ", ".join(some(lambda: f"{ip()} . {port()}", 1, 12)),
        "add rule ip r c ip saddr != { %s } drop" % ", ".join(some(lambda: f"{ip()}/{rng.randrange(8, 33)}", 1, 8)),
        "add rule ip r c tcp dport { %s } accept" % ", ".join(some(port, 1, 9)),
        "add rule ip r c ip daddr { %s } accept" % ", ".join(some(ip, 1, 9)),
    ]
    return "\n".join(lines) + "\n"


KP = "nft list table ip kube-proxy"
SCENARIOS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "overall": (("@overall",), KP, "kube-proxy-overall.list.txt"),
    "overall-handles": (("@overall",), "nft -a list table ip kube-proxy", "kube-proxy-overall.handles.txt"),
    "partial": (("@overall", "partial-1.nft"), KP, "kube-proxy-partial-1.list.txt"),
    "partial-stale-deleted": (("@overall", "partial-1.nft", "partial-2.nft"), "nft -a list table ip kube-proxy",
                              "kube-proxy-partial-2.handles.txt"),
    "objects": (("objects.nft",), "nft list table ip t", "objects.list.txt"),
    "objects-handles": (("objects.nft", "objects-2.nft"), "nft -a list table ip t", "objects-2.handles.txt"),
    "set-flags": (("set-flags.nft",), "nft list table ip t", "set-flags.list.txt"),
    "anonymous-sets": (("anonymous-sets.nft",), "nft list table ip t", "anonymous-sets.list.txt"),
    "ipv6": (("ipv6.nft",), "nft list table ip6 kube-proxy", "ipv6.list.txt"),
    "random-7": (("@random:7",), "nft list table ip r", "random-7.list.txt"),
    "random-11": (("@random:11",), "nft list table ip r", "random-11.list.txt"),
    "list-chain": (("objects.nft",), "nft list chain ip t b1", "objects-chain-b1.list.txt"),
    "list-set": (("objects.nft",), "nft list set ip t cset", "objects-set-cset.list.txt"),
    "list-map": (("objects.nft",), "nft -a list map ip t pm", "objects-map-pm.handles.txt"),
    "list-chain-handles": (("objects.nft", "objects-2.nft"), "nft -a list chain ip t c1", "objects-2-chain-c1.handles.txt"),
}

DOCKER = r"""set -e
iptables-nft -t nat -N DOCKER
iptables-nft -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables-nft -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
iptables-nft -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
iptables-nft -t nat -A DOCKER -i docker0 -j RETURN
iptables-nft -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
iptables-nft -t filter -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
nft -f "$OVERALL"
nft list ruleset
"""
SHELL_SCENARIOS: dict[str, tuple[str, str]] = {
    "docker": (DOCKER, "docker-kube-proxy.ruleset.txt"),
}

_BASE = """add table ip t
add chain ip t c
add set ip t s { type ipv4_addr ; }
add map ip t m { type ipv4_addr : verdict ; }
add element ip t m { 1.1.1.1 : goto c }
add rule ip t c ip saddr @s accept
"""
# (base, transaction, line of nft's first error, its message): printed by nft 1.0.6
ERROR_CASES: list[tuple[str, str, int, str]] = [
    (_BASE, "add rule ip t nochain accept", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add rule ip t c jump nochain", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add rule ip t c ip saddr @noset accept", 1, "No such file or directory"),
    (_BASE, "add element ip t noset { 1.1.1.1 }", 1, "No such file or directory"),
    (_BASE, "add element ip t m { 2.2.2.2 : goto nochain }", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add element ip t m { 1.1.1.1 : drop }", 1, "Could not process rule: File exists"),
    (_BASE, "create element ip t s { 1.1.1.1 }\ncreate element ip t s { 1.1.1.1 }", 2,
     "Could not process rule: File exists"),
    (_BASE, "create chain ip t c", 1, "Could not process rule: File exists"),
    (_BASE, "create table ip t", 1, "Could not process rule: File exists"),
    (_BASE, "delete chain ip t nochain", 1, "Could not process rule: No such file or directory"),
    (_BASE, "delete chain ip t c", 1, "Could not process rule: Device or resource busy"),
    (_BASE, "flush chain ip t c\ndelete chain ip t c", 2, "Could not process rule: Device or resource busy"),
    (_BASE, "add chain ip t d\nadd rule ip t d jump c\nflush map ip t m\ndelete chain ip t c", 4,
     "Could not process rule: Device or resource busy"),
    (_BASE, "delete set ip t s", 1, "Could not process rule: Device or resource busy"),
    (_BASE, "delete element ip t s { 9.9.9.9 }", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add element ip t s { 1.2.3.4 }\nadd rule ip t nochain accept", 2,
     "Could not process rule: No such file or directory"),
    (_BASE, "add set ip t s { type inet_service ; }", 1, "Could not process rule: File exists"),
    (_BASE, "add chain ip t c { type filter hook input priority 0 ; }", 1, "Could not process rule: File exists"),
    (_BASE, "add chain ip t b { type filter hook input priority 0 ; }\n"
            "add chain ip t b { type filter hook input priority 10 ; }", 2,
     "Could not process rule: Operation not supported"),
    (_BASE, "delete table ip nothere", 1, "Could not process rule: No such file or directory"),
    (_BASE, "flush table ip nothere", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add rule ip nothere c accept", 1, "Could not process rule: No such file or directory"),
    (_BASE, "add element ip t m { 1.2.3.4 }", 1, "Could not process rule: Invalid argument"),
    (_BASE, "delete rule ip t c handle 999", 1, "Could not process rule: No such file or directory"),
]
# transactions nft accepts on top of _BASE (kslab too, and lists the same table after them)
ACCEPTED: list[str] = [
    'add set ip t s { type ipv4_addr ; comment "changed" ; }',    # re-add: comment stays as it was
    "add element ip t m { 1.1.1.1 : goto c }",                     # the same element again: no-op
    "add chain ip t c\nadd chain ip t c",
    'add table ip t { comment "late" ; }',                         # comment not changed
    "add chain ip t x\nadd rule ip t x accept\ndelete chain ip t x",  # rules do not pin a chain
    "flush table ip t",                                            # rules only; sets keep elements
    "add chain ip t e { type filter hook input priority 0 ; policy drop ; }\n"
    "add chain ip t e { type filter hook input priority 0 ; }",    # policy kept
    "flush map ip t m\nflush chain ip t c\ndelete chain ip t c\ndelete set ip t s",
]

# (rule as written in a transaction, as nft list prints it): printed by nft 1.0.6 (objects.nft)
RULE_CASES: list[tuple[str, str]] = [
    ("mark set mark or 0x4000", "meta mark set meta mark | 0x00004000"),
    ("mark and 0x4000 == 0 return", "meta mark & 0x00004000 == 0x00000000 return"),
    ("mark set mark xor 0x4000", "meta mark set meta mark ^ 0x00004000"),
    ("meta mark 0x4000 accept", "meta mark 0x00004000 accept"),
    ("ip daddr { 172.30.0.0/16 } drop", "ip daddr 172.30.0.0/16 drop"),
    ("ip saddr != { 203.0.113.0/25 } drop", "ip saddr != 203.0.113.0/25 drop"),
    ("ip saddr != { 203.0.113.0/25, 10.0.0.0/8, 1.2.3.4 } drop",
     "ip saddr != { 1.2.3.4, 10.0.0.0/8, 203.0.113.0/25 } drop"),
    ("numgen random mod 2 vmap { 0 : goto a , 1 : goto b }", "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }"),
    ("ip daddr . meta l4proto . th dport vmap { 1.2.3.4 . tcp . 80 : goto c2, 1.2.3.5 . udp . 53 : drop }",
     "ip daddr . meta l4proto . th dport vmap { 1.2.3.5 . udp . 53 : drop, 1.2.3.4 . tcp . 80 : goto c2 }"),
    ("ip daddr { 5.6.7.8, 1.2.3.4, 10.1.1.1 } tcp dport { 443, 80, 8080 } accept",
     "ip daddr { 1.2.3.4, 5.6.7.8, 10.1.1.1 } tcp dport { 80, 443, 8080 } accept"),
    ("meta l4proto { tcp, udp } th dport 53 accept", "meta l4proto { tcp, udp } th dport 53 accept"),
    ("counter", "counter packets 0 bytes 0"),
    ("ct state new,established accept", "ct state established,new accept"),
    ("reject with icmp type host-unreachable", "reject with icmp host-unreachable"),
    ("reject with icmp port-unreachable", "reject"),
    ("ip protocol tcp tcp dport 80 accept", "tcp dport 80 accept"),
    ("meta l4proto tcp tcp dport 80 accept", "tcp dport 80 accept"),
    ("tcp dport 80 ip protocol tcp accept", "tcp dport 80 ip protocol tcp accept"),
    ("ip saddr 10.0.0.0/32 accept", "ip saddr 10.0.0.0 accept"),
    ("ip daddr != { 127.0.0.0/8 } meta l4proto 6 accept", "ip daddr != 127.0.0.0/8 meta l4proto tcp accept"),
    ("ip saddr { 10.0.0.0/25, 10.0.0.128/25 } accept", "ip saddr { 10.0.0.0/24 } accept"),
    ("ip saddr { 10.0.0.1-10.0.0.5, 10.0.0.4-10.0.0.9 } accept", "ip saddr { 10.0.0.1-10.0.0.9 } accept"),
    ("tcp dport { 80-85, 83-90 } accept", "tcp dport { 80-90 } accept"),
    ("meta l4proto tcp dnat to 10.180.0.1:80", "meta l4proto tcp dnat to 10.180.0.1:80"),
    ("ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
     "ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"),
    ("update @affinity-X { ip saddr }", "update @affinity-X { ip saddr }"),
    ("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
     "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"),
    ("masquerade fully-random", "masquerade fully-random"),
]


# ---------------------------------------------------------------------------------------------
# the real nft, in a throw-away network namespace
def real_problem() -> str | None:
    """Why the real nft cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (unshare -n)"
    for tool in ("nft", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian nftables / util-linux)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30)
    if r.returncode:
        return f"unshare -n failed: {r.stderr.strip()[:80]}"
    return None


def run_real(transactions: list[str], list_command: str, tmp: Path, *,
             script: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Load each text with its own ``nft -f`` inside ``unshare -n`` (a new, empty network
    namespace that dies with the process), then run the listing command there."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if script is None:
        cmds = []
        for k, text in enumerate(transactions):
            f = tmp / f"t{k}.nft"
            f.write_text(text)
            cmds.append(f"nft -f {f}")
        script = " && ".join(cmds + [list_command])
    else:
        f = tmp / "overall.nft"
        f.write_text(transaction("@overall"))
        env["OVERALL"] = str(f)
    return subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, env=env)


def first_error(stderr: str) -> tuple[int, str] | None:
    """nft's first ``FILE:LINE:COLS: Error: MESSAGE`` -> (line, message)."""
    m = re.search(r"^[^:\n]+:(\d+):[\d-]+: Error: (.*)$", stderr, re.M)
    return (int(m.group(1)), m.group(2).strip()) if m else None


def sources_md(nft_version: str) -> str:
    """tests/data/nft/SOURCES.md: which command printed each expected file."""
    rows = ["# Real nft listings (test data for tests/test_nft_state.py)", "",
            f"Printed by `{nft_version}` in a throw-away network namespace: each transaction "
            "loaded with its own `nft -f FILE`, then the listing command, all inside one "
            "`unshare -n sh -c '...'` (never the root namespace). Regenerate (root): "
            "`python tests/nft_cases.py`. `@overall` = kube-proxy-nftables-overall.txt (upstream "
            "TestOverallNFTablesRules) with its `#` lines dropped and every `add table|set|map|chain` "
            "moved first (`nft_cases.declaration_first`); `@random:N` = `nft_cases.random_ruleset(N)`.",
            "", "| file | transactions, in order | listing command |", "|---|---|---|"]
    for files, cmd, expected in SCENARIOS.values():
        rows.append(f"| {expected} | {', '.join(files)} | `{cmd}` |")
    for name, (_, expected) in SHELL_SCENARIOS.items():
        rows.append(f"| {expected} | `nft_cases.{name.upper().replace('-', '_')}` script "
                    "(iptables-nft docker-style rules, then `nft -f @overall`) | `nft list ruleset` |")
    return "\n".join(rows) + "\n"


def regenerate(tmp: Path) -> None:
    for name, (files, cmd, expected) in SCENARIOS.items():
        r = run_real([transaction(f) for f in files], cmd, tmp / name)
        if r.returncode:
            raise SystemExit(f"{name}: {r.stderr.strip()}")
        (DATA / expected).write_text(r.stdout)
        print(f"wrote {expected} ({len(r.stdout.splitlines())} lines)")
    for name, (script, expected) in SHELL_SCENARIOS.items():
        r = run_real([], "", tmp / name, script=script)
        if r.returncode:
            raise SystemExit(f"{name}: {r.stderr.strip()}")
        (DATA / expected).write_text(r.stdout)
        print(f"wrote {expected} ({len(r.stdout.splitlines())} lines)")
    version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    (DATA / "SOURCES.md").write_text(sources_md(version))
    print("wrote SOURCES.md")


if __name__ == "__main__":
    import tempfile

    problem = real_problem()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory() as d:
        regenerate(Path(d))
    sys.exit(0)
