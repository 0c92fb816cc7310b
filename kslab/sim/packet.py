"""The vocabulary shared by the netfilter interpreter and the network model."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def host_port(ip: str, port: int | str) -> str:
    """``net.JoinHostPort``: ``10.0.0.1:80``, ``[fd00::1]:80``."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class Packet:
    """One packet's headers and the per-packet state netfilter can read or change."""

    src: str
    dst: str
    proto: str = "tcp"  # tcp, udp, sctp, icmp
    sport: int = 0
    dport: int = 0
    in_iface: str = ""  # set in PREROUTING/INPUT/FORWARD
    out_iface: str = ""  # set in OUTPUT/FORWARD/POSTROUTING
    mark: int = 0  # skb->mark
    # what the first packet of a connection carries, for -m tcp --tcp-flags/--syn and -m icmp
    tcp_flags: frozenset[str] = frozenset({"SYN"})  # SYN, ACK, FIN, RST, URG, PSH
    icmp_type: int = 8  # echo-request
    icmp_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The headers a trace shows before and after a NAT or MARK step."""
        return {"src": self.src, "sport": self.sport, "dst": self.dst, "dport": self.dport, "proto": self.proto,
                "mark": hex(self.mark)}

    def five_tuple(self) -> tuple[str, str, int, str, int]:
        return (self.proto, self.src, self.sport, self.dst, self.dport)

    def endpoint(self, which: str = "dst") -> str:
        ip, port = (self.dst, self.dport) if which == "dst" else (self.src, self.sport)
        return host_port(ip, port)


@dataclass
class NatAction:
    """A NAT target that fired: ``DNAT``/``SNAT`` to ``ip[:port]``, or ``MASQUERADE``."""

    kind: str  # DNAT, SNAT, MASQUERADE
    to_ip: str = ""
    to_port: int | None = None
    random_fully: bool = False


@dataclass
class RecentEntry:
    """One address in an xt_recent list (``struct recent_entry``)."""

    stamps: list[float] = field(default_factory=list)  # simulated-clock seconds, oldest first (the ring's last ``nstamps``)
    last_seen: float = 0.0
    updates: int = 1  # stamps ever written: places the newest in the kernel's ring (its ``index``)
    ttl: int = 64  # the TTL of the packet that last stamped it


PACKET_BYTES: dict[str, int] = {"tcp": 60, "udp": 28, "sctp": 52, "icmp": 84}
"""The size (IP length, what rule counters add up) of the packets the simulator walks: a
connection's first packet and its reply's first packet. TCP: 60, the SYN and SYN-ACK Linux sends
(20 bytes of IP, 20 of TCP, 20 of options: MSS, SACK permitted, timestamps, window scale). The
simulator carries no payloads: UDP counts 28 (the headers), SCTP 52 (an INIT chunk without
parameters), ICMP 84 (ping's default echo request)."""

STATISTIC_MASK = 0x7FFFFFFF  # xt_statistic compares prandom_u32() & this with the rule's threshold


@dataclass
class NamespaceState:
    """What persists in one network namespace between packets: xt_recent lists, nfacct
    counters, and the RNG behind ``-m statistic --mode random`` (seeded: runs repeat exactly)."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))
    recent: dict[str, dict[str, RecentEntry]] = field(default_factory=dict)  # list name -> address -> entry
    nfacct: dict[str, int] = field(default_factory=dict)  # counter name -> packets
    nfacct_bytes: dict[str, int] = field(default_factory=dict)  # counter name -> bytes (PACKET_BYTES per packet)
    nth_counters: dict[int, int] = field(default_factory=dict)  # statistic --mode nth, per rule id
    # nftables dynamic sets (kube-proxy's affinity sets): set name -> key -> expiry in jiffies
    # (inf: no timeout); what ``update @set { ip saddr }`` wrote, kept across table reloads
    nft_sets: dict[str, dict] = field(default_factory=dict)
    # For the simulator's flow memo (kslab.sim.network): every random draw is logged to
    # ``recorder`` while one is set, served from ``replay`` while it is not empty, and any
    # match that reads or writes persistent state (recent, nth, nfacct) sets ``stateful``.
    recorder: list | None = field(default=None, repr=False)
    replay: list = field(default_factory=list, repr=False)
    stateful: bool = False

    def statistic(self, threshold: int) -> bool:
        """``-m statistic --mode random``: xt_statistic's ``(prandom_u32() & 0x7FFFFFFF) < threshold``."""
        if self.replay:
            kind, owner, param, outcome, _ = self.replay.pop(0)
            assert kind == "stat" and owner is self and param == threshold, "flow memo replay out of step"
            return outcome
        hit = (self.rng.getrandbits(32) & STATISTIC_MASK) < threshold
        if self.recorder is not None:
            self.recorder.append(("stat", self, threshold, hit, None))
        return hit

    def numgen(self, modulus: int) -> int:
        """``numgen random mod N``: nft_ng_random_eval's ``reciprocal_scale(prandom_u32(), N)``,
        i.e. ``(r * N) >> 32`` of a 32-bit random number (logged and replayed like :meth:`statistic`)."""
        if self.replay:
            kind, owner, param, outcome, _ = self.replay.pop(0)
            assert kind == "numgen" and owner is self and param == modulus, "flow memo replay out of step"
            return outcome
        value = (self.rng.getrandbits(32) * modulus) >> 32
        if self.recorder is not None:
            self.recorder.append(("numgen", self, modulus, value, None))
        return value

    def random_port(self) -> int:
        """The port ``MASQUERADE --random-fully`` picks (it does not change where the connection goes)."""
        if self.replay:
            kind, owner, _, _, value = self.replay.pop(0)
            assert kind == "port" and owner is self, "flow memo replay out of step"
            return value
        value = self.rng.randint(1024, 65535)
        if self.recorder is not None:
            self.recorder.append(("port", self, None, None, value))
        return value


@dataclass
class HookContext:
    """What the interpreter needs to know about the packet's situation at one hook."""

    hook: str  # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    local_addresses: frozenset[str]  # addrtype LOCAL (127.0.0.0/8 is LOCAL anyway; ::1 and the IPv6 addresses are listed)
    now: float  # the simulated clock, seconds
    state: NamespaceState
    ct_state: str = "NEW"  # NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED
    ct_status: frozenset[str] = frozenset()  # DNAT, SNAT (what conntrack knows of NAT so far)
    broadcast_addresses: frozenset[str] = frozenset()
    multicast: bool = False
    # local addresses per interface, for addrtype --limit-iface-in/out (127.0.0.0/8 is lo's);
    # None when the caller does not model interfaces: then any local address counts on any
    iface_addresses: Mapping[str, frozenset[str]] | None = None


@dataclass
class TraceStep:
    """One thing netfilter did: a rule matched (and what it did), a chain was entered or left,
    a policy applied."""

    node: str  # the network namespace (node name)
    hook: str
    table: str
    chain: str
    event: str  # "rule", "jump", "goto", "return", "policy", "nat", "verdict", "note"
    rule: str = ""  # the rule as iptables-save prints it
    rule_number: int = 0  # 1-based position in its chain
    detail: str = ""
    packet_before: dict[str, Any] | None = None
    packet_after: dict[str, Any] | None = None


@dataclass
class HookResult:
    verdict: str  # ACCEPT, DROP, REJECT
    nat: NatAction | None = None
    steps: list[TraceStep] = field(default_factory=list)
    rules_evaluated: int = 0  # how many rules the kernel would have evaluated (linear scan)
    reject_with: str = ""
    chains: list[str] = field(default_factory=list)  # chains jumped (or gone) to, in order, traced or not
    counted: list = field(default_factory=list)  # the Counters of every rule the packet matched, in order
