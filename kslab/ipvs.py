"""The IPVS schedulers kube-proxy's IPVS mode can use, IPVS persistence, and iptables mode's random
ladder, in pure Python.

``kube-proxy --proxy-mode ipvs --ipvs-scheduler NAME`` creates one IPVS virtual service per
ClusterIP:port with the Service's endpoints as real servers, and the kernel's scheduler module
picks a real server for each *new* connection. This module re-implements those modules line by
line from the Linux sources, so that a learner can compare them with iptables mode on the same
workload:

=========  ==========================================  ===========================================
name       follows                                     picks
=========  ==========================================  ===========================================
iptables   kube-proxy's ``-m statistic --mode random``  uniform random, independent per connection
           ladder + ``net/netfilter/xt_statistic.c``   (weights ignored)
rr         ``net/netfilter/ipvs/ip_vs_rr.c``            next server in list order
wrr        ``net/netfilter/ipvs/ip_vs_wrr.c``           round robin in passes of decreasing weight
lc         ``net/netfilter/ipvs/ip_vs_lc.c``            least ``activeconns<<8 + inactconns``
wlc        ``net/netfilter/ipvs/ip_vs_wlc.c``           least overhead / weight
lblc       ``net/netfilter/ipvs/ip_vs_lblc.c``          the server cached for the destination IP,
                                                       until it is overloaded; else as wlc
lblcr      ``net/netfilter/ipvs/ip_vs_lblcr.c``         least loaded of the destination IP's server
                                                       set, which grows under overload
sh         ``net/netfilter/ipvs/ip_vs_sh.c``            256-bucket table indexed by the source address
dh         ``net/netfilter/ipvs/ip_vs_dh.c``            256-bucket table indexed by the destination
sed        ``net/netfilter/ipvs/ip_vs_sed.c``           least (activeconns + 1) / weight
nq         ``net/netfilter/ipvs/ip_vs_nq.c``            an idle server, else as sed
mh         ``net/netfilter/ipvs/ip_vs_mh.c``            Maglev table of 4093 entries, source address
                                                       (and, as kube-proxy sets it, source port)
=========  ==========================================  ===========================================

**What kube-proxy programs is the default here.** Kubernetes has no per-endpoint weight: kube-proxy
(``pkg/proxy/ipvs/proxier.go`` ``syncEndpoint``) adds every endpoint as a real server with weight 1,
and its graceful deletion (``graceful_termination.go`` ``GracefulDeleteRS``) sets weight 0 on an
endpoint that left the Service (a terminating pod) until its connections are gone. So under
kube-proxy wrr behaves exactly like rr and wlc exactly like lc. :class:`RealServer` therefore takes
weight 1 (or 0) unless it is explicitly a plain IPVS server with a hand-set weight
(``ipvsadm -a ... -w WEIGHT``: :meth:`RealServer.plain`); :func:`service_servers` builds the real
servers of a lab Service from its EndpointSlices. kube-proxy also sets one scheduler flag: ``mh-port``
for mh (``FlagSourceHash``, 0x10 = ``IP_VS_SVC_F_SCHED2``, Kubernetes PR #115527, v1.27), so kube-proxy's
mh hashes the source address *and port* and does not pin a client; :data:`KUBE_PROXY_SCHED_FLAGS` is
the default of ``flags`` (pass ``flags=()`` for a plain ipvsadm service without flags).

**Stickiness is persistence, whatever the scheduler.** ``sessionAffinity: ClientIP`` makes kube-proxy
mark the virtual service persistent with the affinity's ``timeoutSeconds`` (``ipvsadm -p TIMEOUT``;
``serv.Flags |= FlagPersistent; serv.Timeout = StickyMaxAgeSeconds()``), and the kernel's
``ip_vs_sched_persist()`` (``ip_vs_core.c``) keeps a connection template per client address that
sends the client's new connections to the same real server: :class:`Persistence`, and
``simulate(..., persistence=TIMEOUT)``.

The overhead used by lc, wlc, lblc and lblcr is ``ip_vs_dest_conn_overhead()`` in
``include/net/ip_vs.h``. The hashes are the kernel's: ``hash_32()`` (``include/linux/hash.h``,
multiply by ``GOLDEN_RATIO_32`` and keep the top bits) for sh/dh/lblc/lblcr, and ``hsiphash()``
(``lib/siphash.c``) for mh. Mainline's ``ip_vs_mh.c`` does *not* use a random key:
``generate_hash_secret()`` sets the fixed keys ``{2654435761, 2654435761}`` and
``{2654446892, 2654446892}``, so the Maglev table is reproduced exactly here (as a 64-bit kernel
computes it, where ``hsiphash`` is SipHash-1-3 truncated to 32 bits; a 32-bit kernel uses
HalfSipHash-1-3 and builds a different table). Scheduler ``seed`` therefore only matters for
``iptables``.

What is *not* modelled (kube-proxy sets none of it): the ``IP_VS_DEST_F_OVERLOAD`` flag (upper/lower
connection thresholds), persistence netmasks other than /32 with their FTP and firewall-mark
variants, IPv6 address folding, and adding or deleting real servers after the scheduler is built
(``Scheduler.set_weight`` does model ``ipvsadm -e`` weight changes, with each module's
``upd_dest`` hook). Weight 0 means *quiesced*: the kernel keeps serving existing connections but
gives the server no new ones. In iptables mode the equivalent is an endpoint left out of the
ladder.

:func:`simulate` runs a scheduler on a Poisson stream of connections with exponential lifetimes and
returns one row per connection; :func:`spread`, :func:`per_client_endpoints` and
:func:`active_variance` summarise that frame.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import math
import operator
import random
from dataclasses import dataclass, replace
from typing import ClassVar, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputError

__all__ = [
    "SCHEDULERS", "SCHED_FLAGS", "KUBE_PROXY_SCHED_FLAGS", "KUBE_PROXY_WEIGHTS", "DEFAULT_RATE", "DEFAULT_VIP",
    "EPHEMERAL_PORTS", "SH_TAB_SIZE", "DH_TAB_SIZE", "MH_PRIMES", "MH_TAB_INDEX", "MH_TAB_SIZE",
    "DEFAULT_LBLC_EXPIRATION", "DEFAULT_AFFINITY_TIMEOUT", "RealServer", "Connection", "Scheduler", "Template",
    "Persistence", "scheduler", "service_servers", "simulate", "spread", "per_client_endpoints", "active_variance",
    "compare", "client_matrix", "hash_32", "hsiphash", "iptables_thresholds",
]

SCHEDULERS: tuple[str, ...] = ("iptables", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh")
"""Every name :func:`scheduler` and :func:`simulate` accept: iptables' ladder, then the schedulers
kube-proxy's ``--ipvs-scheduler`` accepts, in ipvsadm's order."""

SCHED_FLAGS: dict[str, tuple[str, ...]] = {"sh": ("sh-fallback", "sh-port"), "mh": ("mh-fallback", "mh-port")}
"""``ipvsadm --sched-flags`` each hashing scheduler understands."""

KUBE_PROXY_SCHED_FLAGS: dict[str, tuple[str, ...]] = {"mh": ("mh-port",)}
"""The scheduler flags kube-proxy sets (the default of ``flags``): ``mh-port`` for mh only
(``pkg/proxy/ipvs/proxier.go``: "Set the source hash flag needed for the distribution method mh",
``FlagSourceHash = 0x10``, which is ``IP_VS_SVC_F_SCHED2`` = ``IP_VS_SVC_F_SCHED_MH_PORT``; since
Kubernetes v1.27, PR #115527). It never sets ``mh-fallback``, nor any flag for sh."""

KUBE_PROXY_WEIGHTS: tuple[int, ...] = (0, 1)
"""The only weights kube-proxy programs: 1 for every endpoint, 0 for one that is terminating."""

DEFAULT_AFFINITY_TIMEOUT = 10800
"""``sessionAffinityConfig.clientIP.timeoutSeconds``' default (3 hours): the persistence timeout
kube-proxy gives a ``sessionAffinity: ClientIP`` Service."""

DEFAULT_RATE = 2.0
"""New connections per second in :func:`simulate`: with the default 2 s lifetime, about 4 are open
at once, a small Service where the load-aware schedulers visibly beat random choice (see
:func:`active_variance`)."""

DEFAULT_VIP = "10.200.1.100"
EPHEMERAL_PORTS = (32768, 60999)
"""Linux's default ``net.ipv4.ip_local_port_range``: the clients' source ports."""

SH_TAB_SIZE = 1 << 8  # CONFIG_IP_VS_SH_TAB_BITS = 8
DH_TAB_SIZE = 1 << 8  # CONFIG_IP_VS_DH_TAB_BITS = 8
MH_PRIMES: tuple[int, ...] = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
"""``primes[]`` in net/netfilter/ipvs/ip_vs_mh.c: the Maglev table sizes ``CONFIG_IP_VS_MH_TAB_INDEX``
8..17 choose (251 is the smallest, index 8)."""
MH_TAB_INDEX = 12
"""``CONFIG_IP_VS_MH_TAB_INDEX``: 12 is the default in net/netfilter/ipvs/Kconfig (range 8..17) and
in ip_vs_mh.c's ``#ifndef`` fallback."""
MH_TAB_SIZE = MH_PRIMES[MH_TAB_INDEX - 8]
"""``IP_VS_MH_TAB_SIZE = primes[IP_VS_MH_TAB_INDEX]`` with ``IP_VS_MH_TAB_INDEX = CONFIG_IP_VS_MH_TAB_INDEX - 8``:
primes[4] = 4093 entries with the default configuration."""
_MH_TAB_BITS = MH_TAB_INDEX // 2  # IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2 = 6
_MAX_WEIGHT = 65535  # ipvsadm refuses weights outside 0..65535

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
GOLDEN_RATIO_32 = 0x61C88647  # include/linux/hash.h
# ip_vs_mh.c generate_hash_secret(): hash1 gives the lookup slot and each server's offset, hash2 its skip
_MH_KEY1 = (2654435761, 2654435761)
_MH_KEY2 = (2654446892, 2654446892)

# ip_vs_lblc.c / ip_vs_lblcr.c: the destination-address tables and their garbage collection
_LBLC_TAB_BITS = 10  # CONFIG_IP_VS_LBLC_TAB_BITS / CONFIG_IP_VS_LBLCR_TAB_BITS default
_LBLC_TAB_SIZE = 1 << _LBLC_TAB_BITS
_LBLC_MAX_SIZE = _LBLC_TAB_SIZE * 16  # tbl->max_size
_CHECK_EXPIRE_INTERVAL = 60.0  # CHECK_EXPIRE_INTERVAL (60*HZ): the periodic timer
_ENTRY_TIMEOUT = 6 * 60.0  # ENTRY_TIMEOUT: idle time after which an entry may go when the table is full
_COUNT_FOR_FULL_EXPIRATION = 30  # a full expiration check every 30 ticks
DEFAULT_LBLC_EXPIRATION = 24 * 60 * 60.0
"""``DEFAULT_EXPIRATION`` (24 hours), the default of the sysctls ``net.ipv4.vs.lblc_expiration`` and
``lblcr_expiration``: how long lblc/lblcr keep an unused destination entry, and after how long
without change lblcr drops the most loaded server of a set."""
_EXPIRE_LATER = 60.0  # ip_vs_conn_expire(): a template that still controls connections retries every 60 s


# ---- input ----------------------------------------------------------------------------------------


def _ipv4(value: object, where: str) -> int:
    """An IPv4 address in dotted form, as the host-order integer ``ntohl(addr)`` the kernel hashes."""
    addr = _ipv4_int(value) if isinstance(value, str) else None
    if addr is None:
        raise InputError(where, f"{value!r} is not an IPv4 address", "write it like 10.10.1.2")
    return addr


@functools.lru_cache(maxsize=1 << 14)
def _ipv4_int(text: str) -> int | None:
    """``_ipv4`` parsed once per address (a simulation checks the same few addresses thousands of times)."""
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _int(value: object, where: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise InputError(where, f"{value!r} is not an integer", f"give a whole number >= {lo}")
    try:
        v = operator.index(value)  # int, numpy integer
    except TypeError:
        raise InputError(where, f"{value!r} is not an integer", f"give a whole number >= {lo}") from None
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise InputError(where, f"{v} is out of range", f"give a whole number {rng}")
    return v


def _float(value: object, where: str, *, positive: bool) -> float:
    v = float("nan")
    if not isinstance(value, (bool, str)):
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InputError(where, f"{value!r} is not a usable number", "give a finite number " + ("> 0" if positive else ">= 0"))
    return v


@dataclass(frozen=True)
class RealServer:
    """One IPVS real server (``ipvsadm -a -t VIP:PORT -r IP:PORT -w WEIGHT``): one endpoint.

    ``weight`` is what kube-proxy programs, 1, or 0 for a terminating endpoint (quiesced: existing
    connections go on, new ones never go there); Kubernetes has no per-endpoint weight. Any other
    weight (ipvsadm's 0..65535) needs ``plain_ipvs=True``: a plain IPVS service configured by hand,
    which :meth:`plain` builds. ``port`` is the real server's port (the Service's targetPort); only
    mh hashes it.
    """

    name: str
    ip: str
    weight: int = 1
    port: int = 80
    plain_ipvs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("RealServer.name", f"{self.name!r} is not a name", "give a non-empty string like 'webpod1'")
        _ipv4(self.ip, f"RealServer {self.name}: ip")
        w = _int(self.weight, f"RealServer {self.name}: weight", 0, _MAX_WEIGHT)
        _int(self.port, f"RealServer {self.name}: port", 1, 65535)
        if not isinstance(self.plain_ipvs, bool):
            raise InputError(f"RealServer {self.name}: plain_ipvs", f"{self.plain_ipvs!r} is not True or False", "pass a bool")
        if not self.plain_ipvs and w not in KUBE_PROXY_WEIGHTS:
            raise InputError(f"RealServer {self.name}: weight", _NOT_KUBE_PROXY_WEIGHT.format(w=w), _PLAIN_FIX)

    @classmethod
    def endpoint(cls, name: str, ip: str, port: int = 80, *, terminating: bool = False) -> RealServer:
        """A Service endpoint as kube-proxy programs it: weight 1, or 0 while it is terminating."""
        return cls(name=name, ip=ip, weight=0 if terminating else 1, port=port)

    @classmethod
    def plain(cls, name: str, ip: str, weight: int, port: int = 80) -> RealServer:
        """A real server of a plain IPVS service with a hand-set weight (``ipvsadm -a ... -w WEIGHT``),
        something kube-proxy never programs."""
        return cls(name=name, ip=ip, weight=weight, port=port, plain_ipvs=True)

    @property
    def addr(self) -> int:
        """``ntohl(dest->addr.ip)``."""
        return _ipv4(self.ip, "RealServer.ip")


_NOT_KUBE_PROXY_WEIGHT = "{w} is not a weight kube-proxy programs (1 per endpoint, 0 while terminating: Kubernetes has no per-endpoint weight)"
_PLAIN_FIX = "for a weight set by hand with ipvsadm -w, build the server with ipvs.RealServer.plain(name, ip, weight)"


@dataclass(frozen=True)
class Connection:
    """The first packet of a new connection, as far as a scheduler looks at it."""

    client: str
    client_port: int = EPHEMERAL_PORTS[0]
    vip: str = DEFAULT_VIP
    port: int = 80

    def __post_init__(self) -> None:
        _ipv4(self.client, "Connection.client")
        _ipv4(self.vip, "Connection.vip")
        _int(self.client_port, "Connection.client_port", 0, 65535)
        _int(self.port, "Connection.port", 1, 65535)


def _check_servers(servers: Iterable[RealServer]) -> tuple[RealServer, ...]:
    try:
        out = tuple(servers)
    except TypeError:
        raise InputError("servers", f"{servers!r} is not a list of RealServer", "pass a list of ipvs.RealServer") from None
    names: set[str] = set()
    dests: set[tuple[str, int]] = set()
    for s in out:
        if not isinstance(s, RealServer):
            raise InputError("servers", f"{s!r} is not a RealServer", "build each with ipvs.RealServer(name=..., ip=..., weight=...)")
        if s.name in names:
            raise InputError("servers", f"two servers are named {s.name!r}", "give each real server its own name")
        if (s.ip, s.port) in dests:  # ipvsadm: "Destination already exists"
            raise InputError("servers", f"{s.ip}:{s.port} is listed twice", "a real server (ip, port) can be added once")
        names.add(s.name)
        dests.add((s.ip, s.port))
    return out


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in SCHEDULERS:
        raise InputError("scheduler", f"unknown scheduler {name!r}", "use one of: " + ", ".join(SCHEDULERS))
    return name


# ---- the kernel's hashes --------------------------------------------------------------------------


def hash_32(val: int, bits: int) -> int:
    """``hash_32()`` from include/linux/hash.h: ``(val * GOLDEN_RATIO_32) >> (32 - bits)`` in u32."""
    return ((val * GOLDEN_RATIO_32) & _U32) >> (32 - bits)


def _rol64(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _U64


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _U64; v1 = _rol64(v1, 13); v1 ^= v0; v0 = _rol64(v0, 32)  # noqa: E702
    v2 = (v2 + v3) & _U64; v3 = _rol64(v3, 16); v3 ^= v2  # noqa: E702
    v0 = (v0 + v3) & _U64; v3 = _rol64(v3, 21); v3 ^= v0  # noqa: E702
    v2 = (v2 + v1) & _U64; v1 = _rol64(v1, 17); v1 ^= v2; v2 = _rol64(v2, 32)  # noqa: E702
    return v0, v1, v2, v3


def hsiphash(data: bytes, key: tuple[int, int]) -> int:
    """``hsiphash()`` as lib/siphash.c computes it on a 64-bit kernel: SipHash-1-3, low 32 bits.

    ``key`` is ``hsiphash_key_t.key[0], key[1]`` (two unsigned longs). Checked against the kernel's
    self-test vectors (lib/siphash_kunit.c).
    """
    k0, k1 = key[0] & _U64, key[1] & _U64
    v0 = 0x736F6D6570736575 ^ k0
    v1 = 0x646F72616E646F6D ^ k1
    v2 = 0x6C7967656E657261 ^ k0
    v3 = 0x7465646279746573 ^ k1
    b = (len(data) << 56) & _U64
    end = len(data) - len(data) % 8
    for off in range(0, end, 8):
        m = int.from_bytes(data[off:off + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    b |= int.from_bytes(data[end:], "little")
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3) & _U32


def _mh_hashkey(addr: int, port: int, key: tuple[int, int], offset: int) -> int:
    """``ip_vs_mh_hashkey()``: hsiphash of the u32 ``offset + ntohs(port) + ntohl(addr)`` (x86 byte order)."""
    v = (offset + port + addr) & _U32
    return hsiphash(v.to_bytes(4, "little"), key)


def iptables_thresholds(n: int) -> tuple[int, ...]:
    """The ``n - 1`` statistic-match thresholds of kube-proxy's ladder over ``n`` endpoints.

    kube-proxy writes ``--probability %0.10f`` of ``1/(n-i)`` for rule i (the last rule has no
    match); libxt_statistic stores ``lround(0x80000000 * p)`` and xt_statistic.c matches when
    ``(get_random_u32() & 0x7FFFFFFF) < threshold``.
    """
    return tuple(math.floor(0x80000000 * float("%0.10f" % (1.0 / (n - i))) + 0.5) for i in range(n - 1))


# ---- schedulers -----------------------------------------------------------------------------------


class Scheduler:
    """A scheduler bound to one virtual service's real servers (the kernel's ``svc->sched_data``).

    Besides the algorithm's own state it keeps each server's ``activeconns`` and ``inactconns``, the
    counters the kernel's connection table maintains and lc/wlc/lblc/lblcr/sed/nq read. :func:`simulate`
    moves them with :meth:`bind`, :meth:`finish` and :meth:`expire`; tests set them with
    :meth:`set_conns`. It also keeps a clock, :attr:`now` (seconds since the service was created),
    that :meth:`schedule` moves forward; lblc and lblcr age their tables by it.
    """

    name: ClassVar[str] = ""
    flags_allowed: ClassVar[tuple[str, ...]] = ()

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        self.servers: tuple[RealServer, ...] = _check_servers(servers)
        self.seed: int = _int(seed, "seed", 0)
        fl = (flags,) if isinstance(flags, str) else tuple(flags)
        for f in fl:
            if f not in self.flags_allowed:
                ok = ", ".join(self.flags_allowed) if self.flags_allowed else "none"
                raise InputError("flags", f"{self.name} does not understand sched flag {f!r}", f"valid for {self.name}: {ok}")
        self.flags: frozenset[str] = frozenset(fl)
        self.now: float = 0.0
        self._index: dict[str, int] = {s.name: i for i, s in enumerate(self.servers)}
        self._weight: list[int] = [s.weight for s in self.servers]
        self._last_weight: list[int] = list(self._weight)  # dest->last_weight: the latest non-0 weight
        self._active: list[int] = [0] * len(self.servers)
        self._inactive: list[int] = [0] * len(self.servers)

    def __repr__(self) -> str:
        return f"<ipvs {self.name} scheduler over {', '.join(s.name for s in self.servers) or 'no servers'}>"

    # -- the connection counters
    def _i(self, server: RealServer | str) -> int:
        key = server.name if isinstance(server, RealServer) else server
        try:
            return self._index[key]
        except KeyError:
            raise InputError("server", f"{key!r} is not a real server of this service", "use one of: " + ", ".join(self._index)) from None

    def activeconns(self, server: RealServer | str) -> int:
        return self._active[self._i(server)]

    def inactconns(self, server: RealServer | str) -> int:
        return self._inactive[self._i(server)]

    def set_conns(self, server: RealServer | str, active: int, inactive: int = 0) -> None:
        """Set a server's ``activeconns``/``inactconns`` (a hand-built state)."""
        i = self._i(server)
        self._active[i] = _int(active, "active", 0)
        self._inactive[i] = _int(inactive, "inactive", 0)

    def bind(self, server: RealServer | str) -> None:
        """A new connection to ``server`` is established: ``activeconns++``."""
        self._active[self._i(server)] += 1

    def finish(self, server: RealServer | str, linger: bool = False) -> None:
        """A connection to ``server`` closed: ``activeconns--``, and ``inactconns++`` if it lingers
        (FIN_WAIT/TIME_WAIT in the IPVS connection table)."""
        i = self._i(server)
        if self._active[i] <= 0:
            raise InputError("server", f"{self.servers[i].name} has no active connection to finish", "bind one first")
        self._active[i] -= 1
        if linger:
            self._inactive[i] += 1

    def expire(self, server: RealServer | str) -> None:
        """A lingering connection to ``server`` left the connection table: ``inactconns--``."""
        i = self._i(server)
        if self._inactive[i] <= 0:
            raise InputError("server", f"{self.servers[i].name} has no inactive connection to expire", "finish one with linger=True first")
        self._inactive[i] -= 1

    def overhead(self, i: int) -> int:
        """``ip_vs_dest_conn_overhead()``: ``(activeconns << 8) + inactconns``."""
        return (self._active[i] << 8) + self._inactive[i]

    def _weighted_least(self, candidates: Iterable[int]) -> int | None:
        """The loop of ip_vs_wlc.c (and lblc/lblcr's ``__ip_vs_lblc*_schedule``): the first candidate
        with weight > 0 starts; a later one replaces it if ``loh * w_dest > doh * w_least``, so ties
        keep the earlier server and a weight-0 server never wins."""
        least: int | None = None
        loh = 0
        for i in candidates:
            if least is None:
                if self._weight[i] > 0:
                    least, loh = i, self.overhead(i)
                continue
            doh = self.overhead(i)
            if loh * self._weight[i] > doh * self._weight[least]:
                least, loh = i, doh
        return least

    # -- weights
    def set_weight(self, server: RealServer | str, weight: int) -> None:
        """Change a server's weight (``ipvsadm -e``), then run the scheduler's ``upd_dest`` hook.

        kube-proxy only ever sets 0 (graceful deletion of a terminating endpoint, :meth:`terminate`)
        or 1; other weights are for servers built with :meth:`RealServer.plain`.
        """
        i = self._i(server)
        w = _int(weight, f"{self.servers[i].name}: weight", 0, _MAX_WEIGHT)
        if not self.servers[i].plain_ipvs and w not in KUBE_PROXY_WEIGHTS:
            raise InputError(f"{self.servers[i].name}: weight", _NOT_KUBE_PROXY_WEIGHT.format(w=w), _PLAIN_FIX)
        self._weight[i] = w
        if w != 0:  # __ip_vs_update_dest keeps the last non-zero weight
            self._last_weight[i] = w
        self.servers = tuple(replace(s, weight=w) if j == i else s for j, s in enumerate(self.servers))
        self._dest_changed()

    def terminate(self, server: RealServer | str) -> None:
        """kube-proxy's graceful deletion of an endpoint that left the Service (a terminating pod):
        weight 0, so it keeps its connections but gets no new one (``GracefulDeleteRS``)."""
        self.set_weight(server, 0)

    def _dest_changed(self) -> None:
        """The ``add_dest``/``del_dest``/``upd_dest`` hook; rr, lc, wlc, lblc, lblcr, sed and nq have none."""

    # -- the clock
    def advance(self, now: float) -> None:
        """Move the clock to ``now`` (seconds, never backwards), running what the kernel's timers
        do meanwhile (lblc/lblcr's periodic garbage collection)."""
        t = _float(now, "now", positive=False)
        if t < self.now:
            raise InputError("now", f"{t} is before the scheduler's clock ({self.now})", "give times in increasing order")
        self._tick(t)
        self.now = t

    def _tick(self, now: float) -> None:
        """The timers up to ``now``; only lblc and lblcr have one."""

    # -- the algorithm
    def schedule(self, conn: Connection, now: float | None = None) -> RealServer | None:
        """The real server for a new connection, or None (the kernel's "no destination available").

        ``now`` (seconds) first moves the clock (:meth:`advance`); without it the connection
        arrives at the current :attr:`now`.
        """
        if not isinstance(conn, Connection):
            raise InputError("conn", f"{conn!r} is not a Connection", "build it with ipvs.Connection(client=..., client_port=...)")
        if now is not None:
            self.advance(now)
        i = self._pick(conn)
        return None if i is None else self.servers[i]

    def _pick(self, conn: Connection) -> int | None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def table(self) -> tuple[str | None, ...]:
        """The lookup table of a hashing scheduler (server name per bucket); empty for the others."""
        return ()


class IptablesRandom(Scheduler):
    """kube-proxy's iptables mode (not IPVS): ``KUBE-SVC-*`` jumps to endpoint i with probability
    ``1/(n-i)`` (``-m statistic --mode random``), the last endpoint unconditionally, so each endpoint
    gets 1/n, independently per connection. Weights are ignored; weight-0 servers are left out of
    the ladder, as kube-proxy leaves out terminating endpoints. Random bits come from
    ``random.Random(seed)`` in place of the kernel's ``get_random_u32()``.
    """

    name = "iptables"

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        super().__init__(servers, seed, flags)
        self._rng = random.Random(self.seed)
        self._dest_changed()

    def _dest_changed(self) -> None:  # kube-proxy rewrites the KUBE-SVC chain
        self._ladder = [i for i, w in enumerate(self._weight) if w > 0]
        self._thresholds = iptables_thresholds(len(self._ladder)) if self._ladder else ()

    def _pick(self, conn: Connection) -> int | None:
        for rung, threshold in zip(self._ladder, self._thresholds):
            if (self._rng.getrandbits(32) & 0x7FFFFFFF) < threshold:
                return rung
        return self._ladder[-1] if self._ladder else None


class RoundRobin(Scheduler):
    """ip_vs_rr.c: continue after the last server picked (``sched_data``, the list head at first),
    skip weight-0 servers; two passes at most."""

    name = "rr"

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        super().__init__(servers, seed, flags)
        self._cl = -1  # index of svc->sched_data; -1 is the list head

    def _pick(self, conn: Connection) -> int | None:
        p = last = self._cl
        start = p
        passes = 0
        while True:
            for i in range(start + 1, len(self.servers)):  # list_for_each_entry_continue from `dest`
                if self._weight[i] > 0:
                    self._cl = i
                    return i
                if i == last:
                    return None
            passes += 1
            start = -1  # dest stopped at the head: the next pass continues from the first entry
            if not (passes < 2 and p != -1):
                return None


class WeightedRoundRobin(Scheduler):
    """ip_vs_wrr.c: ``di`` = gcd of the positive weights, ``mw`` = max weight - (di - 1), ``cw``
    starts at ``mw``; pick the next server with weight >= ``cw``, lowering ``cw`` by ``di`` at the
    end of each pass and wrapping to ``mw`` after ``cw`` reaches 0 (with the kernel's ``last_pass``
    / ``stop`` guards for servers below ``di``).

    With kube-proxy's weights (all 1, or 0) every pass has ``cw = 1``: the same sequence as rr. One
    difference remains: a weight change (kube-proxy quiescing a terminating endpoint) restarts wrr
    at the head of the list (``ip_vs_wrr_dest_changed``), while rr carries on where it was."""

    name = "wrr"

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        super().__init__(servers, seed, flags)
        self.di, self.mw = self._marks()
        self.cw = self.mw
        self._cl = -1  # mark->cl: the list head

    def _marks(self) -> tuple[int, int]:
        """``di`` (ip_vs_wrr_gcd_weight) and ``mw`` (ip_vs_wrr_max_weight - (di - 1))."""
        g = 0
        for w in self._weight:
            if w > 0:
                g = math.gcd(w, g) if g > 0 else w
        di = g or 1
        return di, max(self._weight, default=0) - (di - 1)

    def _dest_changed(self) -> None:  # ip_vs_wrr_dest_changed
        self._cl = -1
        self.di, self.mw = self._marks()
        if self.cw > self.mw or not self.cw:
            self.cw = self.mw
        elif self.di > 1:
            self.cw = (self.cw // self.di) * self.di + 1

    def _pick(self, conn: Connection) -> int | None:
        dest = self._cl
        if self.mw == 0:
            return None
        last = dest
        stop: int | None = None
        last_pass = restarted = False
        while True:
            for i in range(dest + 1, len(self.servers)):
                if self._weight[i] >= self.cw:
                    self._cl = i
                    return i
                if i == stop:
                    self._cl = i
                    return None
            dest = -1
            self.cw -= self.di
            if self.cw <= 0:
                self.cw = self.mw
                if last_pass or last == -1:
                    self._cl = -1
                    return None
                restarted = True
            last_pass = self.cw <= self.di
            if last_pass and restarted and last != -1:
                stop = last


class LeastConnection(Scheduler):
    """ip_vs_lc.c: the first server (list order) with the least ``activeconns<<8 + inactconns``
    among those with weight > 0; weights otherwise do not count (so under kube-proxy, whose
    weights are all 1 or 0, lc and wlc choose alike)."""

    name = "lc"

    def _pick(self, conn: Connection) -> int | None:
        least: int | None = None
        loh = 0
        for i, w in enumerate(self._weight):
            if w == 0:
                continue
            doh = self.overhead(i)
            if least is None or doh < loh:
                least, loh = i, doh
        return least


class WeightedLeastConnection(Scheduler):
    """ip_vs_wlc.c: least overhead/weight, compared as ``loh * w_dest > doh * w_least`` (no floats);
    the first server with weight > 0 starts, later ties keep the earlier server. With kube-proxy's
    weights (1, or 0) this is exactly lc."""

    name = "wlc"

    def _cost(self, i: int) -> int:
        return self.overhead(i)

    def _pick(self, conn: Connection) -> int | None:
        first = next((i for i, w in enumerate(self._weight) if w > 0), None)
        if first is None:
            return None
        least, loh = first, self._cost(first)
        for i in range(first + 1, len(self.servers)):
            doh = self._cost(i)
            if loh * self._weight[i] > doh * self._weight[least]:
                least, loh = i, doh
        return least


class ShortestExpectedDelay(WeightedLeastConnection):
    """ip_vs_sed.c: as wlc, with the cost ``activeconns + 1`` (the new connection included,
    inactive connections ignored)."""

    name = "sed"

    def _cost(self, i: int) -> int:
        return self._active[i] + 1


class NeverQueue(ShortestExpectedDelay):
    """ip_vs_nq.c: the first server with weight > 0 and no active connection, if any; otherwise
    least ``(activeconns + 1) / weight`` as sed."""

    name = "nq"

    def _pick(self, conn: Connection) -> int | None:
        idle = next((i for i, w in enumerate(self._weight) if w > 0 and self._active[i] == 0), None)
        return idle if idle is not None else super()._pick(conn)


@dataclass
class _LocalityEntry:
    """``struct ip_vs_lblc_entry`` / ``ip_vs_lblcr_entry``: one destination address's cache."""

    daddr: int
    lastuse: float
    dests: list[int]  # lblc: the one cached server; lblcr: the server set, newest first (list_add_rcu)
    lastmod: float = 0.0  # lblcr: set->lastmod


class _Locality(Scheduler):
    """What ip_vs_lblc.c and ip_vs_lblcr.c share: a table of destination addresses (``iph->daddr``,
    the VIP for a Service), the overload rule and the periodic garbage collection.

    ``is_overloaded(dest)``: ``dest->activeconns > dest->weight`` *and* some server of the service
    has ``activeconns * 2 < weight`` (it is under half its weight). The new server is always the
    weighted least-connection one over the whole service (``__ip_vs_lblc_schedule``, wlc's loop).

    The table's timer runs every 60 s from the service's creation (``CHECK_EXPIRE_INTERVAL``):
    every 30th run removes the entries unused for ``expiration`` seconds (the ``lblc_expiration`` /
    ``lblcr_expiration`` sysctl, 24 hours by default); in between, only a table over
    ``16 * 1024`` entries drops entries idle for 6 minutes, bucket by bucket from ``rover``.
    """

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = (),
                 expiration: float = DEFAULT_LBLC_EXPIRATION) -> None:
        super().__init__(servers, seed, flags)
        self.expiration: float = _float(expiration, "expiration", positive=True)
        self._table: dict[int, _LocalityEntry] = {}
        self._counter = 1  # tbl->counter
        self._rover = 0  # tbl->rover
        self._next_check = _CHECK_EXPIRE_INTERVAL

    def entries(self) -> dict[str, tuple[str, ...]]:
        """The cache: destination address -> its server (lblc) or server set, newest first (lblcr)."""
        return {str(ipaddress.IPv4Address(e.daddr)): tuple(self.servers[d].name for d in e.dests) for e in self._table.values()}

    def _is_overloaded(self, d: int) -> bool:
        if self._active[d] > self._weight[d]:
            return any(a * 2 < w for a, w in zip(self._active, self._weight))
        return False

    def _tick(self, now: float) -> None:
        while self._next_check <= now:  # ip_vs_lblc{,r}_check_expire
            t = self._next_check
            if self._counter % _COUNT_FOR_FULL_EXPIRATION == 0:
                self._collect(t, self.expiration, goal=None)  # ip_vs_lblc{,r}_full_check
                self._counter = 1
            elif len(self._table) <= _LBLC_MAX_SIZE:
                self._counter += 1
            else:
                goal = min((len(self._table) - _LBLC_MAX_SIZE) * 4 // 3, _LBLC_MAX_SIZE // 2)
                self._collect(t, _ENTRY_TIMEOUT, goal=goal)
            self._next_check += _CHECK_EXPIRE_INTERVAL

    def _collect(self, now: float, idle: float, goal: int | None) -> None:
        """Walk the buckets from ``rover + 1``, dropping entries unused for ``idle`` seconds
        (``!time_before(now, lastuse + idle)``); a partial check stops after the bucket that
        reached its goal."""
        buckets: dict[int, list[int]] = {}
        for daddr in self._table:
            buckets.setdefault(hash_32(daddr, _LBLC_TAB_BITS), []).append(daddr)
        j = self._rover
        for _ in range(_LBLC_TAB_SIZE):
            j = (j + 1) & (_LBLC_TAB_SIZE - 1)
            for daddr in buckets.get(j, ()):
                if now >= self._table[daddr].lastuse + idle:
                    del self._table[daddr]
                    if goal is not None:
                        goal -= 1
            if goal is not None and goal <= 0:
                break
        self._rover = j


class LocalityBasedLeastConnection(_Locality):
    """ip_vs_lblc.c: the destination address's cached server, if it has weight > 0 and is not
    overloaded; otherwise the weighted least-connection server, which replaces the cache entry.

    For a Service every connection has the same destination, the VIP, so lblc sends all of them to
    one server until that server is overloaded: with kube-proxy's weight 1, until it holds two or
    more active connections while another server is idle.
    """

    name = "lblc"

    def _pick(self, conn: Connection) -> int | None:
        daddr = _ipv4(conn.vip, "Connection.vip")
        en = self._table.get(daddr)
        if en is not None:
            en.lastuse = self.now
            d = en.dests[0]
            if self._weight[d] > 0 and not self._is_overloaded(d):
                return d
        d = self._weighted_least(range(len(self.servers)))
        if d is None:
            return None
        if en is None or en.dests[0] != d:  # ip_vs_lblc_new: a new entry replaces the old one
            self._table.pop(daddr, None)
            self._table[daddr] = _LocalityEntry(daddr, self.now, [d])
        return d


class LocalityBasedLeastConnectionReplication(_Locality):
    """ip_vs_lblcr.c: each destination address has a *set* of servers. A connection goes to the
    weighted least-connection server of the set; if there is none (all weight 0) or it is
    overloaded, to the weighted least-connection server of the whole service, which joins the set
    (at its head). A set of more than one server that has not changed for ``expiration`` seconds
    loses its most loaded server (weighted, ``ip_vs_dest_set_max``) when the next connection comes.

    For a Service (one destination, the VIP) the set starts with one server and grows only while
    its servers are overloaded.
    """

    name = "lblcr"

    def _set_min(self, en: _LocalityEntry) -> int | None:  # ip_vs_dest_set_min
        return self._weighted_least(en.dests)

    def _set_max(self, en: _LocalityEntry) -> int | None:  # ip_vs_dest_set_max
        most: int | None = None
        moh = 0
        for d in en.dests:
            if most is None:
                if self._weight[d] > 0:
                    most, moh = d, self.overhead(d)
                continue
            doh = self.overhead(d)
            if moh * self._weight[d] < doh * self._weight[most] and self._weight[d] > 0:
                most, moh = d, doh
        return most

    def server_set(self, vip: str) -> tuple[str, ...]:
        """The server set of a destination address, newest first (empty if none)."""
        en = self._table.get(_ipv4(vip, "vip"))
        return () if en is None else tuple(self.servers[d].name for d in en.dests)

    def _pick(self, conn: Connection) -> int | None:
        daddr = _ipv4(conn.vip, "Connection.vip")
        en = self._table.get(daddr)
        if en is not None:
            en.lastuse = self.now
            dest = self._set_min(en)
            if len(en.dests) > 1 and self.now > en.lastmod + self.expiration:  # time_after(jiffies, lastmod + expiration)
                m = self._set_max(en)
                if m is not None:
                    en.dests.remove(m)  # ip_vs_dest_set_erase
                    en.lastmod = self.now
            if dest is not None and not self._is_overloaded(dest):
                return dest
            dest = self._weighted_least(range(len(self.servers)))
            if dest is None:
                return None
            if dest not in en.dests:  # ip_vs_dest_set_insert(check=true)
                en.dests.insert(0, dest)
                en.lastmod = self.now
            return dest
        dest = self._weighted_least(range(len(self.servers)))
        if dest is None:
            return None
        self._table[daddr] = _LocalityEntry(daddr, self.now, [dest], lastmod=self.now)  # ip_vs_lblcr_new
        return dest


class _BucketHash(Scheduler):
    """The 256-bucket table of ip_vs_sh.c / ip_vs_dh.c."""

    _size: ClassVar[int] = 256
    _weighted_fill: ClassVar[bool] = False

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        super().__init__(servers, seed, flags)
        self._buckets: list[int | None] = self._reassign()

    def _dest_changed(self) -> None:
        self._buckets = self._reassign()

    def _reassign(self) -> list[int | None]:
        """``ip_vs_{sh,dh}_reassign()``: walk the server list round robin; sh repeats each server
        ``weight`` times (a weight-0 server still takes one bucket), dh once."""
        n = len(self.servers)
        if n == 0:
            return [None] * self._size
        out: list[int | None] = []
        p = d_count = 0
        for _ in range(self._size):
            out.append(p)
            if self._weighted_fill:
                d_count += 1
                if d_count >= self._weight[p]:
                    p, d_count = (p + 1) % n, 0
            else:
                p = (p + 1) % n
        return out

    def table(self) -> tuple[str | None, ...]:
        return tuple(None if i is None else self.servers[i].name for i in self._buckets)

    def _available(self, i: int | None) -> bool:
        return i is not None and self._weight[i] > 0


class SourceHashing(_BucketHash):
    """ip_vs_sh.c (mainline): bucket ``hash_32(ntohs(port) + ntohl(saddr), 8)``, port 0 unless the
    ``sh-port`` flag is set. A bucket whose server has weight 0 gives no server, unless
    ``sh-fallback`` is set: then ``(offset + hash_32(...)) & 255`` for offset = ihash, ihash+1, ...
    until an available server. (Kernels before hash_32 used ``(ntohl(saddr) * 2654435761) & 255``,
    which depends on the last octet only.)"""

    name = "sh"
    flags_allowed = SCHED_FLAGS["sh"]
    _weighted_fill = True

    def _hashkey(self, addr: int, port: int, offset: int) -> int:
        return (offset + hash_32((port + addr) & _U32, 8)) & (self._size - 1)

    def _pick(self, conn: Connection) -> int | None:
        addr = _ipv4(conn.client, "Connection.client")
        port = conn.client_port if "sh-port" in self.flags else 0
        ihash = self._hashkey(addr, port, 0)
        dest = self._buckets[ihash]
        if dest is None:
            return None
        if self._available(dest):
            return dest
        if "sh-fallback" not in self.flags:
            return None
        for offset in range(self._size):  # ip_vs_sh_get_fallback
            dest = self._buckets[self._hashkey(addr, port, (offset + ihash) % self._size)]
            if dest is None:
                return None
            if self._available(dest):
                return dest
        return None

    def bucket(self, client: str, client_port: int = 0) -> int:
        """The bucket a client's connections index (``client_port`` counts only with sh-port)."""
        port = client_port if "sh-port" in self.flags else 0
        return self._hashkey(_ipv4(client, "client"), port, 0)


class DestinationHashing(_BucketHash):
    """ip_vs_dh.c (mainline): bucket ``hash_32(ntohl(daddr), 8)``; the table repeats the server list
    ignoring weights; a weight-0 server gives no server. Every connection to one ClusterIP has the
    same destination, so the whole Service goes to one real server."""

    name = "dh"

    def _pick(self, conn: Connection) -> int | None:
        dest = self._buckets[hash_32(_ipv4(conn.vip, "Connection.vip"), 8)]
        return dest if self._available(dest) else None


class MaglevHashing(Scheduler):
    """ip_vs_mh.c: a Maglev lookup table of :data:`MH_TAB_SIZE` = 4093 entries (``primes[]`` at the
    default ``CONFIG_IP_VS_MH_TAB_INDEX`` 12).

    Each server with weight > 0 gets ``offset = hsiphash(port + addr, key1) % 4093`` and
    ``skip = hsiphash(port + addr, key2) % 4092 + 1``; servers take turns (``weight / gcd``, shifted
    right so the largest fits in ``IP_VS_MH_TAB_BITS`` = 6 bits) claiming their next free preferred
    slot until the table is full. A connection looks up ``hsiphash(ntohl(saddr) [+ sport with
    mh-port], key1) % 4093``; a weight-0 server there gives no server unless ``mh-fallback`` (then
    slots ``hsiphash(offset + ...)`` for offset = ihash, ihash+1, ...). kube-proxy sets ``mh-port``
    (:data:`KUBE_PROXY_SCHED_FLAGS`), so under kube-proxy one client's connections spread over the
    servers by source port. The keys are the kernel's fixed ones, so the table is the one a 64-bit
    kernel builds; ``seed`` is not used.
    """

    name = "mh"
    flags_allowed = SCHED_FLAGS["mh"]

    def __init__(self, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] = ()) -> None:
        super().__init__(servers, seed, flags)
        self._dest_changed()

    def _dest_changed(self) -> None:  # ip_vs_mh_dest_changed: gcd and shift of last_weight, then reassign
        g = 0
        for w in self._last_weight:  # ip_vs_mh_gcd_weight
            if w > 0:
                g = math.gcd(w, g) if g > 0 else w
        self.gcd = g
        self.rshift = 0
        if g >= 1:  # ip_vs_mh_shift_weight
            shift = (max(self._last_weight) // g).bit_length() - _MH_TAB_BITS
            self.rshift = shift if shift >= 0 else 0
        self._lookup: list[int | None] = self._populate()

    def _populate(self) -> list[int | None]:
        """``ip_vs_mh_permutate()`` then ``ip_vs_mh_populate()``."""
        size = MH_TAB_SIZE
        lookup: list[int | None] = [None] * size
        if self.gcd < 1:
            return lookup
        offset, skip, perm, turns = [], [], [], []
        for s, lw in zip(self.servers, self._last_weight):
            addr = s.addr
            offset.append(_mh_hashkey(addr, s.port, _MH_KEY1, 0) % size)
            skip.append(_mh_hashkey(addr, s.port, _MH_KEY2, 0) % (size - 1) + 1)
            perm.append(offset[-1])
            turns.append(((lw // self.gcd) >> self.rshift) or int(lw != 0))
        taken = [False] * size
        n = dt_count = 0
        while n < size:
            ds = 0
            while ds < len(self.servers):
                if turns[ds] < 1:  # a server added with weight 0
                    ds += 1
                    continue
                c = perm[ds]
                while taken[c]:
                    perm[ds] += skip[ds]
                    if perm[ds] >= size:
                        perm[ds] -= size
                    c = perm[ds]
                taken[c] = True
                lookup[c] = ds
                n += 1
                if n == size:
                    return lookup
                dt_count += 1
                if dt_count >= turns[ds]:
                    dt_count = 0
                    ds += 1
        return lookup

    def table(self) -> tuple[str | None, ...]:
        return tuple(None if i is None else self.servers[i].name for i in self._lookup)

    def slot(self, client: str, client_port: int = 0) -> int:
        """The lookup slot of a client (``client_port`` counts only with mh-port)."""
        port = client_port if "mh-port" in self.flags else 0
        return _mh_hashkey(_ipv4(client, "client"), port, _MH_KEY1, 0) % MH_TAB_SIZE

    def _pick(self, conn: Connection) -> int | None:
        addr = _ipv4(conn.client, "Connection.client")
        port = conn.client_port if "mh-port" in self.flags else 0
        ihash = _mh_hashkey(addr, port, _MH_KEY1, 0) % MH_TAB_SIZE
        dest = self._lookup[ihash]
        if dest is None:
            return None
        if self._weight[dest] > 0:
            return dest
        if "mh-fallback" not in self.flags:
            return None
        for offset in range(MH_TAB_SIZE):  # ip_vs_mh_get_fallback
            roffset = (offset + ihash) % MH_TAB_SIZE
            dest = self._lookup[_mh_hashkey(addr, port, _MH_KEY1, roffset) % MH_TAB_SIZE]
            if dest is None:
                return None
            if self._weight[dest] > 0:
                return dest
        return None


_CLASSES: dict[str, type[Scheduler]] = {
    "iptables": IptablesRandom, "rr": RoundRobin, "wrr": WeightedRoundRobin, "lc": LeastConnection,
    "wlc": WeightedLeastConnection, "lblc": LocalityBasedLeastConnection,
    "lblcr": LocalityBasedLeastConnectionReplication, "sh": SourceHashing, "dh": DestinationHashing,
    "sed": ShortestExpectedDelay, "nq": NeverQueue, "mh": MaglevHashing,
}


def scheduler(name: str, servers: Sequence[RealServer], seed: int = 0, flags: Iterable[str] | None = None, *,
              expiration: float | None = None) -> Scheduler:
    """A fresh scheduler ``name`` (one of :data:`SCHEDULERS`) over ``servers``, in list order.

    ``seed`` drives iptables' random choice (the IPVS schedulers are deterministic); ``flags`` are
    ipvsadm ``--sched-flags`` (:data:`SCHED_FLAGS`: ``sh-fallback``, ``sh-port``, ``mh-fallback``,
    ``mh-port``), by default the ones kube-proxy sets (:data:`KUBE_PROXY_SCHED_FLAGS`: ``mh-port`` for
    mh); ``flags=()`` is a plain ipvsadm service without flags. ``expiration`` is lblc/lblcr's
    ``lblc_expiration``/``lblcr_expiration`` sysctl in seconds (default 24 hours).
    """
    name = _check_name(name)
    cls = _CLASSES[name]
    fl = KUBE_PROXY_SCHED_FLAGS.get(name, ()) if flags is None else flags
    if expiration is not None:
        if not issubclass(cls, _Locality):
            raise InputError("expiration", f"{name} has no expiration", "only lblc and lblcr keep a destination table")
        return cls(servers, seed, fl, expiration=expiration)  # type: ignore[call-arg]
    return cls(servers, seed, fl)


# ---- persistence (sessionAffinity: ClientIP) ------------------------------------------------------


@dataclass(eq=False)
class Template:
    """An IPVS connection template (``IP_VS_CONN_F_TEMPLATE``): client network -> real server.

    ``expires`` is when its timer fires; ``timeout`` what the next use re-arms it with (the
    service's persistence timeout, or 60 s once the timer has found it still controlling
    connections); ``n_control`` the connections it controls that are still in the connection table.
    """

    client: str  # the client's address & the service's netmask
    vip: str
    port: int
    server: RealServer
    created: float
    expires: float
    timeout: float
    n_control: int = 0
    valid: bool = True  # False once ip_vs_check_template() invalidated it (no longer found)


class Persistence:
    """A persistent virtual service (``ipvsadm -A ... -p TIMEOUT``, what kube-proxy programs for
    ``sessionAffinity: ClientIP`` with ``timeoutSeconds``): ``ip_vs_sched_persist()`` in ip_vs_core.c
    in front of any :class:`Scheduler`.

    A new connection from a client whose template exists goes to the template's server and re-arms
    the template's timer (``ip_vs_conn_put(ct)``: now + its timeout); the scheduler is not asked.
    Without a template the scheduler picks a server and a template ``<client & netmask, VIP, port>``
    is created with the service's timeout (none is created if the scheduler finds no server). When
    the timer fires, a template that still controls connections in the connection table lives on
    and is checked again every 60 s (``ip_vs_conn_expire``: ``cp->timeout = 60*HZ``, which later
    uses re-arm with too); otherwise it is gone. A template whose server has weight 0 is invalidated
    when next used if ``expire_quiescent_template`` is set (``ip_vs_check_template``; kube-proxy sets
    ``net.ipv4.vs.expire_quiescent_template=1``, the kernel's default is 0), so the client is
    scheduled again. kube-proxy's netmask is /32 (one template per client address).

    Stickiness is therefore the same whatever the scheduler: rr, lc, ... only choose a client's
    first server. The caller reports when a connection leaves the IPVS connection table
    (:meth:`release`); :func:`simulate` does it.
    """

    def __init__(self, sched: Scheduler, timeout: float = DEFAULT_AFFINITY_TIMEOUT, *,
                 netmask: str = "255.255.255.255", expire_quiescent_template: bool = True) -> None:
        if not isinstance(sched, Scheduler):
            raise InputError("scheduler", f"{sched!r} is not an ipvs scheduler", "build one with ipvs.scheduler(name, servers)")
        self.scheduler = sched
        self.timeout: float = _float(timeout, "persistence timeout", positive=True)
        self.netmask: int = _ipv4(netmask, "netmask")
        if not isinstance(expire_quiescent_template, bool):
            raise InputError("expire_quiescent_template", f"{expire_quiescent_template!r} is not True or False", "pass a bool")
        self.expire_quiescent_template = expire_quiescent_template
        self._templates: dict[tuple[int, int, int], Template] = {}
        self._timers: list[tuple[float, int, Template]] = []  # (expires, seq, template); stale entries skipped
        self._seq = 0

    @property
    def now(self) -> float:
        return self.scheduler.now

    def templates(self) -> list[Template]:
        """The templates a new connection can find now (valid and not expired)."""
        return [t for t in self._templates.values() if t.valid]

    def advance(self, now: float) -> None:
        """Move the clock to ``now``, firing the templates' timers due by then in order."""
        t = _float(now, "now", positive=False)
        while self._timers and self._timers[0][0] <= t:
            when, _, tmpl = heapq.heappop(self._timers)
            if when != tmpl.expires:
                continue  # re-armed since
            self.scheduler.advance(when)
            if tmpl.n_control > 0:  # "do I control anybody?": expire_later
                tmpl.timeout = _EXPIRE_LATER
                self._arm(tmpl, when)
            else:
                key = self._key_of(tmpl)
                if self._templates.get(key) is tmpl:
                    del self._templates[key]
                tmpl.valid = False
                tmpl.expires = when
        self.scheduler.advance(t)

    def _key_of(self, tmpl: Template) -> tuple[int, int, int]:
        return (_ipv4(tmpl.client, "client"), _ipv4(tmpl.vip, "vip"), tmpl.port)

    def _arm(self, tmpl: Template, now: float) -> None:
        tmpl.expires = now + tmpl.timeout
        self._seq += 1
        heapq.heappush(self._timers, (tmpl.expires, self._seq, tmpl))

    def schedule(self, conn: Connection, now: float | None = None) -> tuple[RealServer | None, Template | None]:
        """The real server of a new connection and the template that controls it (``None, None``
        when the scheduler finds no server). The connection counts in the template's ``n_control``
        until :meth:`release`."""
        if not isinstance(conn, Connection):
            raise InputError("conn", f"{conn!r} is not a Connection", "build it with ipvs.Connection(client=..., client_port=...)")
        if now is not None:
            self.advance(now)
        now = self.now
        snet = _ipv4(conn.client, "Connection.client") & self.netmask
        key = (snet, _ipv4(conn.vip, "Connection.vip"), conn.port)
        tmpl = self._templates.get(key)
        if tmpl is not None:
            i = self.scheduler._i(tmpl.server)
            if self.expire_quiescent_template and self.scheduler._weight[i] == 0:  # ip_vs_check_template
                tmpl.valid = False
                del self._templates[key]
                tmpl = None
        if tmpl is None:
            dest = self.scheduler.schedule(conn)
            if dest is None:
                return None, None
            tmpl = Template(client=str(ipaddress.IPv4Address(snet)), vip=conn.vip, port=conn.port, server=dest,
                            created=now, expires=now, timeout=self.timeout)
            self._templates[key] = tmpl
        tmpl.n_control += 1  # ip_vs_control_add
        self._arm(tmpl, now)  # ip_vs_conn_put(ct)
        return self.scheduler.servers[self.scheduler._i(tmpl.server)], tmpl

    def release(self, tmpl: Template) -> None:
        """A connection ``tmpl`` controls left the IPVS connection table (``ip_vs_control_del``)."""
        if not isinstance(tmpl, Template) or tmpl.n_control <= 0:
            raise InputError("template", f"{tmpl!r} controls no connection", "release the template schedule() returned, once per connection")
        tmpl.n_control -= 1


# ---- a lab Service's real servers -----------------------------------------------------------------


def service_servers(cluster: object, service: str, *, namespace: str = "default", port: str | int | None = None) -> list[RealServer]:
    """The real servers kube-proxy programs for a Service of a lab (``Lab.cluster``), from its
    EndpointSlices as kube-proxy reads them (sorted on ``ip:port``): weight 1 for each endpoint it
    uses (the ready ones; the serving terminating ones if none is ready, as ``CategorizeEndpoints``
    does for cluster traffic policy), weight 0 for the other terminating endpoints, which kube-proxy
    keeps quiesced while they have connections (graceful deletion). Names are the endpoints' pods.
    ``port`` (name or number) picks the service port when there are several. Topology hints and
    ``internalTrafficPolicy: Local`` are not applied. (kube-proxy adds real servers in a Go set's
    order, so a node's list order, which rr, sh and the others walk, may differ from this one.)
    """
    from .proxy.endpoints import build_endpoints_map  # kube-proxy's own view of the slices

    services = getattr(cluster, "services", None)
    slices = getattr(cluster, "endpoint_slices", None)
    if services is None or slices is None:
        raise InputError("cluster", f"{cluster!r} is not a cluster state", "pass lab.cluster")
    svc = next((s for s in services if s.name == service and s.namespace == namespace), None)
    if svc is None:
        names = ", ".join(sorted(f"{s.namespace}/{s.name}" for s in services))
        raise InputError("service", f"no Service {namespace}/{service}", f"use one of: {names}")
    ports = svc.ports if port is None else [p for p in svc.ports if port in (p.name, p.port)]
    if len(ports) != 1:
        which = ", ".join(f"{p.name or '-'} ({p.port})" for p in svc.ports)
        raise InputError("port", f"Service {service} has ports {which}" if ports else f"Service {service} has no port {port!r}",
                         "pick one with port=NAME or port=NUMBER")
    sp = ports[0]
    eps = [e for k, v in build_endpoints_map([sl for sl in slices if sl.namespace == namespace], "").items()
           if k.name == service and k.port == sp.name and k.protocol == sp.protocol for e in v]
    used = [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]
    out = []
    for e in eps:
        if e in used or e.terminating:
            out.append(RealServer.endpoint(e.target_pod or e.ip, e.ip, e.port, terminating=e not in used))
    return out


# ---- the experiment -------------------------------------------------------------------------------


def simulate(
    name: str,
    servers: Sequence[RealServer],
    clients: Sequence[str],
    n: int,
    seed: int = 1,
    duration: float = 2.0,
    rate: float = DEFAULT_RATE,
    vip: str = DEFAULT_VIP,
    port: int = 80,
    *,
    flags: Iterable[str] | None = None,
    inactive_timeout: float = 0.0,
    persistence: float | None = None,
    expiration: float | None = None,
) -> pd.DataFrame:
    """Schedule ``n`` new connections to ``vip:port`` with scheduler ``name``; one row per connection.

    The workload (from ``numpy.random.default_rng(seed)``): arrivals are a Poisson process of
    ``rate`` per second; each connection comes from a client drawn uniformly from ``clients``, from a
    source port uniform in :data:`EPHEMERAL_PORTS`, and stays established for an exponential time of
    mean ``duration`` seconds. The scheduler gets the same ``seed``, and the arrival times as its
    clock. Before each arrival, connections that ended by then are closed (``activeconns--``). A
    closed connection lingers in ``inactconns`` for ``inactive_timeout`` seconds (IPVS keeps
    FIN_WAIT/TIME_WAIT entries; its default TCP timeouts are 120 s): the default 0 drops it at once,
    so ``inactconns`` stays 0 and lc/wlc compare active connections only. (In the kernel a new TCP
    connection counts in ``inactconns`` until its handshake completes; here it is active at once.)
    A connection the scheduler refuses (None) has ``server == ""``.

    ``flags`` default to kube-proxy's (:data:`KUBE_PROXY_SCHED_FLAGS`). ``persistence`` makes the
    virtual service persistent with that timeout in seconds (kube-proxy's ``sessionAffinity:
    ClientIP``, :data:`DEFAULT_AFFINITY_TIMEOUT` by default there; :class:`Persistence`): a
    connection leaves the connection table when it closes, or ``inactive_timeout`` later.
    ``expiration`` is lblc/lblcr's table expiration (seconds).

    Columns: ``conn``, ``time`` (s), ``client``, ``client_port``, ``vip``, ``vip_port``, ``server``
    (name or ""), ``server_ip`` (or ""), ``lifetime`` (s), and ``active:<server>`` for every server
    in list order: its ``activeconns`` just before this connection was scheduled. ``df.attrs`` holds
    the scheduler name, its flags, the servers' weights and the persistence timeout (or None).
    """
    name = _check_name(name)
    sched = scheduler(name, servers, seed, flags, expiration=expiration)
    n = _int(n, "n", 0)
    duration = _float(duration, "duration", positive=False)
    rate = _float(rate, "rate", positive=True)
    inactive_timeout = _float(inactive_timeout, "inactive_timeout", positive=False)
    pers = None if persistence is None else Persistence(sched, persistence)
    _ipv4(vip, "vip")
    port = _int(port, "port", 1, 65535)
    if isinstance(clients, str):
        clients = [clients]
    clients = list(clients)
    if not clients:
        raise InputError("clients", "no clients given", "pass a list of client IPv4 addresses")
    for c in clients:
        _ipv4(c, "clients")

    rng = np.random.default_rng(_int(seed, "seed", 0))
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    who = rng.integers(0, len(clients), n)
    sports = rng.integers(EPHEMERAL_PORTS[0], EPHEMERAL_PORTS[1] + 1, n)
    lifetimes = rng.exponential(duration, n) if duration > 0 else np.zeros(n)

    names = [s.name for s in sched.servers]
    active = np.zeros((n, len(names)), dtype=np.int64)
    chosen: list[str] = []
    chosen_ip: list[str] = []
    # (when, tie-break, lingering-ends, server index, template): a connection closes, then (lingering) leaves the table
    events: list[tuple[float, int, bool, int, Template | None]] = []
    seq = 0
    for k in range(n):
        now = float(times[k])
        while events and events[0][0] <= now:
            when, _, lingering, i, tmpl = heapq.heappop(events)
            if pers is not None:
                pers.advance(when)
            if lingering:
                sched.expire(names[i])
            else:
                sched.finish(names[i], linger=inactive_timeout > 0)
                if inactive_timeout > 0:
                    heapq.heappush(events, (when + inactive_timeout, seq, True, i, tmpl))
                    seq += 1
                    continue
            if tmpl is not None:
                pers.release(tmpl)  # type: ignore[union-attr]
        active[k] = sched._active
        conn = Connection(clients[who[k]], int(sports[k]), vip, port)
        if pers is None:
            dest, tmpl = sched.schedule(conn, now), None
        else:
            dest, tmpl = pers.schedule(conn, now)
        if dest is None:
            chosen.append("")
            chosen_ip.append("")
            continue
        chosen.append(dest.name)
        chosen_ip.append(dest.ip)
        sched.bind(dest)
        heapq.heappush(events, (now + float(lifetimes[k]), seq, False, sched._index[dest.name], tmpl))
        seq += 1

    df = pd.DataFrame({
        "conn": np.arange(n, dtype=np.int64),
        "time": times.astype(float),
        "client": pd.Series([clients[i] for i in who], dtype=object),
        "client_port": sports.astype(np.int64),
        "vip": pd.Series([vip] * n, dtype=object),
        "vip_port": np.full(n, port, dtype=np.int64),
        "server": pd.Series(chosen, dtype=object),
        "server_ip": pd.Series(chosen_ip, dtype=object),
        "lifetime": lifetimes.astype(float),
        **{f"active:{s}": active[:, j] for j, s in enumerate(names)},
    })
    df.attrs["scheduler"] = name
    df.attrs["flags"] = tuple(sorted(sched.flags))
    df.attrs["weights"] = {s.name: s.weight for s in sched.servers}
    df.attrs["persistence"] = None if pers is None else pers.timeout
    return df


def _server_names(df: pd.DataFrame) -> list[str]:
    cols = [c[len("active:"):] for c in df.columns if isinstance(c, str) and c.startswith("active:")]
    if not cols and "server" not in df.columns:
        raise InputError("df", "not a frame from ipvs.simulate (no server / active:<name> columns)", "pass what ipvs.simulate returned")
    return cols


def spread(df: pd.DataFrame) -> dict[str, float]:
    """Share of all connections each server got, every server listed (0.0 if it got none).

    Connections no server took count in the total, so the shares sum to 1 only when every
    connection was scheduled.
    """
    names = _server_names(df)
    counts = df["server"].value_counts()
    for extra in counts.index:
        if extra != "" and extra not in names:
            names.append(extra)
    total = len(df)
    return {s: (float(counts.get(s, 0)) / total if total else 0.0) for s in names}


def per_client_endpoints(df: pd.DataFrame) -> pd.Series:
    """For each client, how many distinct servers its connections reached (0 if none was scheduled)."""
    _server_names(df)
    served = df["server"].where(df["server"] != "")
    out = served.groupby(df["client"], sort=True).nunique()
    out.name = "endpoints"
    return out.astype(np.int64)


def active_variance(df: pd.DataFrame, per_weight: bool = False) -> float:
    """Variance (population, ddof=0) across servers of ``activeconns``, averaged over arrivals.

    Measured on the ``active:<server>`` columns, i.e. just before each new connection is scheduled;
    0.0 for an empty frame. By default raw counts: a scheduler that rightly loads a weight-2 server
    twice as much as the others scores higher than one that loads them all alike, which shows once
    many connections are open at once. ``per_weight=True`` divides each count by the server's weight
    first (weights from ``df.attrs["weights"]``, set by :func:`simulate`; weight-0 servers left out),
    the load the weighted schedulers actually equalise.
    """
    names = _server_names(df)
    if per_weight:
        weights = df.attrs.get("weights")
        if not isinstance(weights, dict) or any(s not in weights for s in names):
            raise InputError("df", "the frame has lost the servers' weights (df.attrs['weights'])", "pass the frame ipvs.simulate returned")
        names = [s for s in names if weights[s] > 0]
    if df.empty or not names:
        return 0.0
    a = df[[f"active:{s}" for s in names]].to_numpy(dtype=float)
    if per_weight:
        a = a / np.array([float(df.attrs["weights"][s]) for s in names])
    return float(a.var(axis=1).mean())


def compare(
    servers: Sequence[RealServer],
    clients: Sequence[str],
    n: int,
    *,
    names: Sequence[str] = SCHEDULERS,
    seed: int = 1,
    duration: float = 2.0,
    rate: float = DEFAULT_RATE,
    flags: Iterable[str] | None = None,
    persistence: float | None = None,
) -> pd.DataFrame:
    """The same workload under each scheduler in ``names``: one row per scheduler with each
    server's share, the mean number of servers per client, and the active-count variance (raw
    and per unit of weight). ``flags`` (default: kube-proxy's for each scheduler) and
    ``persistence`` are :func:`simulate`'s."""
    rows = []
    for name in names:
        fl = flags if flags is None or name in SCHED_FLAGS else ()
        df = simulate(name, servers, clients, n, seed=seed, duration=duration, rate=rate, flags=fl, persistence=persistence)
        rows.append({"scheduler": name,
                     **{k: round(float(v), 3) for k, v in spread(df).items()},
                     "endpoints per client": float(per_client_endpoints(df).mean()),
                     "active-count variance": round(active_variance(df), 2),
                     "variance per weight": round(active_variance(df, per_weight=True), 2)})
    return pd.DataFrame(rows).set_index("scheduler")


def client_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Connections per (client, server) of one :func:`simulate` run: rows clients, columns servers."""
    names = _server_names(df)
    served = df[df["server"] != ""]
    m = served.groupby(["client", "server"]).size().unstack(fill_value=0)
    return m.reindex(columns=names, fill_value=0).reindex(sorted(df["client"].unique()), fill_value=0)
