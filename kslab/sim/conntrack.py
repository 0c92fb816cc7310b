"""What a node's conntrack table holds after the simulator's connections: the entries
``conntrack -L`` lists.

The simulator's live conntrack (:class:`kslab.sim.network.Conntrack`) holds a connection's
entries only while its packets are walked, and drops them when the connection is done. A
kernel keeps them a while longer: a closed TCP connection stays in ``TIME_WAIT`` for
``nf_conntrack_tcp_timeout_time_wait`` (120 s), a SYN nobody answered in ``SYN_SENT`` with
``[UNREPLIED]`` (120 s), a UDP exchange 30 s; a SYN answered by a RST (refused) leaves nothing
(the RST kills an entry that never got established; measured on the netns lab). :class:`ConntrackLog`
keeps those entries on the simulated clock, so that ``conntrack -L`` on the simulator lists
what the kernel would list after the same connections. It is a record to show, never consulted
to forward a packet: a kernel also treats a new SYN on a ``TIME_WAIT`` entry as a new connection.

Connections are recorded as the network opened them: one :class:`~kslab.sim.network.Connection`
(with its client port and, if ``MASQUERADE --random-fully`` drew one, its SNAT port), or a whole
:class:`~kslab.sim.network.ConnectionBatch`, whose connections share a few results; their entries
are made when asked (:meth:`ConntrackLog.entries`). At most :data:`CONNTRACK_MAX` connections
are kept, the oldest forgotten first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .network import Connection, ConnectionBatch

# Linux's nf_conntrack timeouts (seconds), as kind nodes have them
TCP_TIME_WAIT = 120
TCP_SYN_SENT = 120
UDP_TIMEOUT = 30
CONNTRACK_MAX = 131072  # kube-proxy's default floor for nf_conntrack_max (conntrack.min)

_ANSWERED = frozenset({"ok", "error"})  # the TCP handshake completed ("error": the app answered HTTP 500)


@dataclass(frozen=True)
class FlowEntry:
    """One conntrack entry as ``conntrack -L`` shows it: the original and the reply direction."""

    node: str
    proto: str
    orig: tuple[str, int, str, int]  # src, sport, dst, dport as the first packet arrived
    reply: tuple[str, int, str, int]  # what the reply looks like (after the NAT of the original)
    state: str  # TCP: TIME_WAIT, SYN_SENT; "" for UDP
    timeout: int  # seconds left, as the kernel prints them
    assured: bool
    unreplied: bool
    src_nat: bool
    dst_nat: bool


def _status(proto: str, outcome: str) -> tuple[str, int, bool, bool] | None:
    """(state, timeout, assured, unreplied) a finished connection leaves, None if not listed."""
    if proto == "tcp":
        if outcome in _ANSWERED:
            return "TIME_WAIT", TCP_TIME_WAIT, True, False
        if outcome == "refused":  # the RST killed the entry
            return None
        return "SYN_SENT", TCP_SYN_SENT, False, True  # dropped, no route, reply lost: the SYN was never answered
    if proto == "udp":
        return "", UDP_TIMEOUT, False, outcome not in _ANSWERED
    return None  # SCTP and ICMP entries are not listed


def _expand(conn: Connection, sport: int, drawn: int | None, opened: float, now: float) -> Iterator[FlowEntry]:
    """The entries ``conn``'s path left, for a connection with client port ``sport``.

    ``conn`` may be a result shared by many connections (the flow memo's): its entries carry
    *its* client port. Only two fields of an entry hold the client's side port: the original
    source port, and the reply's destination port. Before the node that SNATs (and on it, for the
    original direction) that is the client's port; after it, the SNAT port: ``drawn`` if
    ``--random-fully`` drew one, else the client's port (SNAT keeps a free port) or the fixed
    ``--to-ports``.
    """
    status = _status(conn.proto, conn.outcome)
    if status is None or not conn.conntrack:
        return
    state, timeout, assured, unreplied = status
    left = timeout - (now - opened)
    if left <= 0:
        return
    shown = max(0, math.ceil(left) - 1)  # the kernel prints whole seconds left, rounded down
    own_sport = conn.conntrack[0][1].orig[2]
    snat_port = sport
    for _, entry in conn.conntrack:
        if entry.snat is not None:
            snat_port = drawn if drawn is not None else (sport if entry.snat[1] == own_sport else entry.snat[1])
            break
    port = sport
    for node, entry in conn.conntrack:
        proto, osrc, _, odst, odport = entry.orig
        _, rsrc, rsport, rdst, _ = entry.reply
        orig_port = port
        if entry.snat is not None:
            port = snat_port
        yield FlowEntry(node, proto, (osrc, orig_port, odst, odport), (rsrc, rsport, rdst, port), state, shown,
                        assured, unreplied, entry.snat is not None, entry.dnat is not None)


class ConntrackLog:
    """The conntrack entries the simulator's finished connections left (see the module docstring)."""

    def __init__(self, limit: int = CONNTRACK_MAX) -> None:
        self.limit = limit
        self._items: deque[tuple] = deque()  # ("one", conn, sport, drawn, opened) or ("batch", batch, first index)
        self._count = 0  # connections recorded

    def add(self, conn: Connection, sport: int, drawn: int | None, opened: float) -> None:
        """One connection: ``conn`` (or the shared result it copies), its client port, the SNAT port drawn."""
        self._items.append(("one", conn, sport, drawn, opened))
        self._count += 1
        self._trim()

    def add_batch(self, batch: ConnectionBatch) -> None:
        if len(batch):
            self._items.append(("batch", batch, 0))
            self._count += len(batch)
            self._trim()

    def _trim(self) -> None:
        while self._count > self.limit:
            item = self._items[0]
            if item[0] == "one":
                self._items.popleft()
                self._count -= 1
                continue
            batch, first = item[1], item[2]
            drop = min(len(batch) - first, self._count - self.limit)
            if first + drop >= len(batch):
                self._items.popleft()
            else:
                self._items[0] = ("batch", batch, first + drop)
            self._count -= drop

    def _connections(self) -> Iterator[tuple[Connection, int, int | None, float]]:
        for item in self._items:
            if item[0] == "one":
                yield item[1], item[2], item[3], item[4]
                continue
            batch, first = item[1], item[2]
            results, index, sports, times, drawn = batch.results, batch.index, batch.sports, batch.times, batch.snat_ports
            for i in range(first, len(batch)):
                yield results[index[i]], sports[i], drawn.get(i), times[i]

    def entries(self, now: float) -> list[FlowEntry]:
        """Every entry still in the nodes' tables at simulated time ``now``, oldest connection first."""
        self._forget_before(now)
        return [e for conn, sport, drawn, opened in self._connections() for e in _expand(conn, sport, drawn, opened, now)]

    def _forget_before(self, now: float) -> None:
        """Drop recorded connections whose entries have all expired (none lasts longer than 120 s)."""
        horizon = now - max(TCP_TIME_WAIT, TCP_SYN_SENT, UDP_TIMEOUT)
        while self._items:
            item = self._items[0]
            if item[0] == "one":
                if item[4] > horizon:
                    return
                self._items.popleft()
                self._count -= 1
                continue
            batch, first = item[1], item[2]
            times = batch.times
            last = first
            while last < len(batch) and times[last] <= horizon:
                last += 1
            if last < len(batch):
                if last > first:
                    self._items[0] = ("batch", batch, last)
                    self._count -= last - first
                return
            self._items.popleft()
            self._count -= len(batch) - first

    def clear(self, now: float) -> int:
        """``conntrack -F`` of what the log holds: forget it all; returns how many entries there were."""
        count = len(self.entries(now))
        self._items.clear()
        self._count = 0
        return count
