"""xt_recent, the kernel module behind ``sessionAffinity: ClientIP``: the simulator's lists
(net/netfilter/xt_recent.c: 100 addresses per list, least recently updated evicted first, a ring
of 32 stamps per address, times in jiffies) and what ``cat /proc/net/xt_recent/LIST`` prints.

The kernel tests (``@pytest.mark.netns``) run the same packets through the same rules in a real
namespace and in the simulator and compare the lists, then the study's lab on both backends.
"""

from __future__ import annotations

import re

import pytest

from kslab.errors import InputError
from kslab.lab import Lab
from kslab.shell import Cat, ListRecent, parse
from kslab.sim.netfilter import RECENT_HZ, RECENT_INITIAL_JIFFIES, Netfilter, jiffies
from kslab.sim.packet import HookContext, NamespaceState, Packet, RecentEntry
from kslab.sim.tools import recent_line
from kslab.xtables import kernel

LINE = re.compile(r"src=(?P<src>[\d.]+) ttl: (?P<ttl>\d+) last_seen: (?P<last>\d+) oldest_pkt: (?P<index>\d+) (?P<stamps>\d+(?:, \d+)*)")


def parsed(text: str) -> dict[str, tuple[int, int, int, int]]:
    """address -> (ttl, oldest_pkt, number of stamps, ring slot of last_seen) of a list's lines."""
    out = {}
    for line in text.splitlines():
        m = LINE.fullmatch(line)
        assert m, line
        stamps = [int(s) for s in m["stamps"].split(", ")]
        assert int(m["last"]) == stamps[int(m["index"]) - 1]  # last_seen is the ring's slot index - 1
        out[m["src"]] = (int(m["ttl"]), int(m["index"]), len(stamps), int(m["index"]) - 1)
    return out


# ---- the simulator's lists ---------------------------------------------------------------------


RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 10.99.0.0/16 -p udp -m recent --set --name T --mask 255.255.255.255 --rdest -j DROP
COMMIT
"""


def sim_send(nf: Netfilter, state: NamespaceState, addrs: list[str], now: float = 0.0) -> None:
    for a in addrs:
        nf.run_hook("OUTPUT", Packet(src="10.99.255.254", dst=a, proto="udp", sport=5000, dport=9),
                    HookContext(hook="OUTPUT", local_addresses=frozenset({"10.99.255.254"}), now=now, state=state,
                                ct_state="NEW"), trace=False)


def test_the_line_is_the_kernels_ring_in_jiffies() -> None:
    e = RecentEntry([0.0], 0.0, 1, 64)
    assert recent_line("10.10.1.100", e) == f"src=10.10.1.100 ttl: 64 last_seen: {RECENT_INITIAL_JIFFIES} oldest_pkt: 1 {RECENT_INITIAL_JIFFIES}"
    nf, state = Netfilter.from_text(RULES), NamespaceState()
    for k in range(40):  # 40 stamps: the ring of 32 has wrapped, its next slot is 40 % 32 = 8
        sim_send(nf, state, ["10.99.0.1"], now=k)
    e = state.recent["T"]["10.99.0.1"]
    assert e.stamps == [float(k) for k in range(8, 40)] and e.updates == 40
    (ttl, index, n, _), = parsed(recent_line("10.99.0.1", e)).values()
    assert (ttl, index, n) == (64, 8, 32)
    ring = [int(s) for s in LINE.fullmatch(recent_line("10.99.0.1", e))["stamps"].split(", ")]
    assert ring[7] == jiffies(39) and ring[8] == jiffies(8) and ring[0] == jiffies(32)
    assert jiffies(1) - jiffies(0) == RECENT_HZ


def test_a_list_keeps_100_addresses_and_evicts_the_least_recently_updated() -> None:
    nf, state = Netfilter.from_text(RULES), NamespaceState()
    sim_send(nf, state, [f"10.99.0.{i}" for i in range(1, 101)])
    sim_send(nf, state, ["10.99.0.1"])  # refreshed: now the most recently updated
    sim_send(nf, state, [f"10.99.1.{i}" for i in range(1, 6)])  # five more evict 10.99.0.2 .. 10.99.0.6
    table = state.recent["T"]
    assert len(table) == 100 and "10.99.0.1" in table
    assert not any(f"10.99.0.{i}" in table for i in range(2, 7)) and "10.99.0.7" in table


def test_cat_and_ls_parse_and_refuse_other_files() -> None:
    cmd, stages = parse("cat /proc/net/xt_recent/KUBE-SEP-ABC")
    assert isinstance(cmd, Cat) and cmd.recent_list == "KUBE-SEP-ABC" and not stages
    assert parse("cat /sys/module/xt_recent/parameters/ip_list_tot")[0].recent_list is None
    assert isinstance(parse("ls /proc/net/xt_recent/")[0], ListRecent)
    for bad in ("cat /etc/passwd", "cat", "cat -n /proc/net/xt_recent/X", "ls /", "cat /sys/module/xt_recent/parameters/nope"):
        with pytest.raises(InputError):
            parse(bad)


def test_the_labs_lists_on_sim() -> None:
    lab = Lab()
    node = lab.cluster.pod("net-pod").node_name
    assert lab.sh(node, "ls /proc/net/xt_recent") == ""  # no ClientIP Service: no list
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
    names = str(lab.sh(node, "ls /proc/net/xt_recent")).split()
    assert len(names) == 3 and all(n.startswith("KUBE-SEP-") for n in names)
    df = lab.run("net-pod", "svc-clusterip", n=3, seed=1, interval=1)
    assert df["endpoint_pod"].nunique() == 1
    lines = {n: parsed(lab.sh(node, f"cat /proc/net/xt_recent/{n}")) for n in names}
    net_pod = lab.cluster.pod("net-pod").pod_ip
    assert sorted(len(v) for v in lines.values()) == [0, 0, 1]
    assert [v[net_pod][:3] for v in lines.values() if v] == [(64, 3, 3)]
    assert lab.sh(node, "cat /sys/module/xt_recent/parameters/ip_list_tot") == "100\n"
    missing = lab.sh(node, "cat /proc/net/xt_recent/NOPE")
    assert (missing, missing.stderr, missing.returncode) == ("", "cat: /proc/net/xt_recent/NOPE: No such file or directory\n", 1)
    lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
    assert lab.sh(node, "ls /proc/net/xt_recent") == ""  # the kernel frees a list with its last rule
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
    assert all(lab.sh(node, f"cat /proc/net/xt_recent/{n}") == "" for n in names)  # back, empty


# ---- the kernel --------------------------------------------------------------------------------


SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for a in sys.argv[1:]:
    try:
        s.sendto(b"x", (a, 9))
    except OSError:
        pass  # the rule drops it (EPERM): the list has it all the same
"""


def kernel_send(ns: str, addrs: list[str]) -> None:
    import sys

    r = kernel.run_in_namespace(ns, [sys.executable, "-c", SEND, *addrs])
    assert r.returncode == 0, r.stderr


@pytest.mark.netns
def test_kernel_lists_evict_and_stamp_as_the_sim() -> None:
    sequence = [[f"10.99.0.{i}" for i in range(1, 101)], ["10.99.0.1"], [f"10.99.1.{i}" for i in range(1, 6)],
                ["10.99.0.50"] * 40]
    nf, state = Netfilter.from_text(RULES), NamespaceState()
    with kernel.scratch_namespace("kslab-test") as ns:
        for line in ("link add v0 type veth peer name v1", "addr add 10.99.255.254/16 dev v0", "link set v1 up", "link set v0 up",
                     "link set lo up"):
            r = kernel.run_in_namespace(ns, ["ip", *line.split()])
            assert r.returncode == 0, r.stderr
        r = kernel.run_in_namespace(ns, [kernel.iptables_tools().restore], stdin=RULES)
        assert r.returncode == 0, r.stderr
        for k, addrs in enumerate(sequence):
            kernel_send(ns, addrs)
            sim_send(nf, state, addrs, now=k)
        real = kernel.run_in_namespace(ns, ["cat", "/proc/net/xt_recent/T"]).stdout
        limit = kernel.run_in_namespace(ns, ["cat", "/sys/module/xt_recent/parameters/ip_list_tot"]).stdout
    mine = "".join(recent_line(a, e) + "\n" for a, e in state.recent["T"].items())
    assert len(real.splitlines()) == 100 == int(limit)
    theirs, ours = parsed(real), parsed(mine)
    assert set(theirs) == set(ours)  # the same addresses kept, the same ones evicted
    assert {a: v[:3] for a, v in theirs.items()} == {a: v[:3] for a, v in ours.items()}  # ttl, ring index, stamps
    assert theirs["10.99.0.50"][1:3] == (9, 32)  # 41 stamps: the ring wrapped once


@pytest.mark.netns
def test_the_labs_lists_on_the_kernel_and_the_sim() -> None:
    sim = Lab()
    with Lab(backend="netns") as kern:
        node = sim.cluster.pod("net-pod").node_name
        out = {}
        for lab in (sim, kern):
            lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
            lab.clear_kernel_state()
            assert lab.run("net-pod", "svc-clusterip", n=3, seed=1, interval=0.2)["endpoint_pod"].nunique() == 1
            names = str(lab.sh(node, "ls /proc/net/xt_recent")).split()
            out[lab.backend] = (names, [parsed(lab.sh(node, f"cat /proc/net/xt_recent/{n}")) for n in names])
            assert lab.sh(node, "cat /sys/module/xt_recent/parameters/ip_list_tot") == "100\n"
            missing = lab.sh(node, "cat /proc/net/xt_recent/NOPE")
            assert (missing.stderr, missing.returncode) == ("cat: /proc/net/xt_recent/NOPE: No such file or directory\n", 1)
        assert out["sim"][0] == out["netns"][0] and len(out["sim"][0]) == 3
        shapes = {b: sorted((a, v[:3]) for lst in lists for a, v in lst.items()) for b, (_, lists) in out.items()}
        assert shapes["sim"] == shapes["netns"] == [(sim.cluster.pod("net-pod").pod_ip, (64, 3, 3))]


REAP_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 10.99.0.0/16 -p udp -m udp --dport 1 -m recent --set --name R --mask 255.255.255.255 --rdest -j DROP
-A OUTPUT -d 10.99.0.0/16 -p udp -m udp --dport 2 -m recent --rcheck --seconds 1 --reap --name R --mask 255.255.255.255 --rdest -j DROP
COMMIT
"""
REAP_STEPS = [(0.0, 1, "10.99.0.1"), (0.0, 1, "10.99.0.2"), (1.6, 1, "10.99.0.3"), (1.6, 2, "10.99.0.2"), (1.6, 2, "10.99.0.3"),
              (1.6, 2, "10.99.0.1")]
SEND_TIMED = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for step in sys.argv[1:]:
    at, port, addr = step.split(",")
    time.sleep(max(0.0, float(at) - (time.monotonic() - start)))
    try:
        s.sendto(b"x", (addr, int(port)))
        print("sent")
    except OSError:
        print("dropped")
"""


@pytest.mark.netns
def test_kernel_rcheck_seconds_and_reap_as_the_sim() -> None:
    """--rcheck --seconds 1 --reap after 1.6 s: a stale address does not match, and the check
    reaps the list's least recently updated address if it is stale too (one per check)."""
    import sys

    nf, state = Netfilter.from_text(REAP_RULES), NamespaceState()
    mine = []
    for at, port, addr in REAP_STEPS:
        res = nf.run_hook("OUTPUT", Packet(src="10.99.255.254", dst=addr, proto="udp", sport=5000, dport=port),
                          HookContext(hook="OUTPUT", local_addresses=frozenset({"10.99.255.254"}), now=at, state=state,
                                      ct_state="NEW"), trace=False)
        mine.append("dropped" if res.verdict == "DROP" else "sent")
    with kernel.scratch_namespace("kslab-test") as ns:
        for line in ("link add v0 type veth peer name v1", "addr add 10.99.255.254/16 dev v0", "link set v1 up",
                     "link set v0 up", "link set lo up"):
            assert kernel.run_in_namespace(ns, ["ip", *line.split()]).returncode == 0
        r = kernel.run_in_namespace(ns, [kernel.iptables_tools().restore], stdin=REAP_RULES)
        assert r.returncode == 0, r.stderr
        r = kernel.run_in_namespace(ns, [sys.executable, "-c", SEND_TIMED, *(f"{a},{p},{d}" for a, p, d in REAP_STEPS)])
        assert r.returncode == 0, r.stderr
        theirs = r.stdout.split()
        real = kernel.run_in_namespace(ns, ["cat", "/proc/net/xt_recent/R"]).stdout
    # set, set, set; rcheck of .2 (stale: sent; it reaps .1), of .3 (fresh: dropped; it reaps the now oldest, stale
    # .2), of .1 (gone: sent, and nothing is reaped for an address not listed)
    assert theirs == mine == ["dropped", "dropped", "dropped", "sent", "dropped", "sent"]
    assert set(parsed(real)) == set(state.recent["R"]) == {"10.99.0.3"}
