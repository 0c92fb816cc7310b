"""Every endpoint a new connection could reach, with its probability: the tracer's whole answer.

A connection through kube-proxy's rules is a function of the lab's state and of the random
draws made on its way: ``-m statistic --mode random --probability p`` (matches with the
kernel's chance ``threshold / 2^31``), nftables' ``numgen random mod N`` (each of N values),
the cloud load balancer's choice of node (each of n). The simulator logs every draw
(:class:`kslab.sim.packet.NamespaceState`'s recorder, the flow memo's) and can be served
chosen outcomes (its replay): :func:`explore` runs the connection once, then once more for
every other outcome of every draw it made, depth first, so every branch is run exactly once
and its probability is the product of its draws' chances (exact fractions: they sum to 1).

Whatever is not a draw is read from the state as it is: an ``-m recent --rcheck`` affinity
hit (the client is remembered) sends every branch to the one remembered endpoint, so there
is one candidate with probability 1; a local-only traffic policy's chain (``KUBE-SVL-``,
nftables ``local-``) lists only the node's endpoints, so only those appear. The lab is left
exactly as it was: each run's xt_recent/nft set/nth/nfacct state, RNG positions and rule
counters are put back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from fractions import Fraction

from ..dataplane.trace import Candidate
from .packet import NamespaceState

STAT_SCALE = 0x80000000  # xt_statistic: (prandom_u32() & 0x7FFFFFFF) < threshold, threshold = lround(p * 2^31)
MAX_BRANCHES = 2048  # a guard: kube-proxy's ladders have one branch per endpoint (each run walks the ladder: n^2)


class TooManyBranches(Exception):
    """The connection has more branches than :data:`MAX_BRANCHES`: no candidates are worked out."""


def _chance(kind: str, param, outcome) -> Fraction:
    if kind == "stat":
        hit = Fraction(min(max(param, 0), STAT_SCALE), STAT_SCALE)
        return hit if outcome else 1 - hit
    if kind in ("numgen", "lb"):
        return Fraction(1, param)
    return Fraction(1)  # "port": --random-fully's port does not change where the connection goes


def _others(kind: str, param, outcome) -> list:
    if kind == "stat":
        return [not outcome]
    if kind in ("numgen", "lb"):
        return [v for v in range(param) if v != outcome]
    return []


class _Saved:
    """What one run may change in the namespaces' persistent state, to put back afterwards."""

    def __init__(self, states: Sequence[NamespaceState], rngs: Sequence) -> None:
        self.states = [(st, st.rng.getstate(), copy.deepcopy(st.recent), dict(st.nfacct), dict(st.nfacct_bytes),
                        dict(st.nth_counters), copy.deepcopy(st.nft_sets), st.stateful, st.recorder, st.replay)
                       for st in states]
        self.rngs = [(r, r.getstate()) for r in rngs]

    def restore(self) -> None:
        for st, rng, recent, nfacct, nbytes, nth, sets, stateful, recorder, replay in self.states:
            st.rng.setstate(rng)
            st.recent, st.nfacct, st.nfacct_bytes, st.nth_counters, st.nft_sets = (
                copy.deepcopy(recent), dict(nfacct), dict(nbytes), dict(nth), copy.deepcopy(sets))
            st.stateful, st.recorder, st.replay = stateful, recorder, replay
        for r, state in self.rngs:
            r.setstate(state)


def explore(run: Callable[[list, list], object], states: Sequence[NamespaceState],
            rngs: Sequence = ()) -> list[tuple[Fraction, object]]:
    """Every branch of ``run``: (probability, its result). ``run(lb_replay, recorder)`` opens the
    connection once with the namespaces' recorder/replay already set (``lb_replay``/``recorder``
    are for a draw owner outside ``states``, the load balancer: pass them on). ``states``'s
    persistent state and ``rngs`` are put back after every run."""
    saved = _Saved(states, rngs)
    out: list[tuple[Fraction, object]] = []
    pending: list[list[tuple]] = [[]]
    try:
        while pending:
            made = pending.pop()
            recorder: list[tuple] = []
            for st in states:
                st.recorder, st.stateful = recorder, False
                st.replay = [d for d in made if d[1] is st]
            try:
                result = run([d for d in made if d[0] == "lb"], recorder)
            finally:
                saved.restore()
            draws = made + recorder
            p = Fraction(1)
            for kind, _, param, outcome, _ in draws:
                p *= _chance(kind, param, outcome)
            out.append((p, result))
            for i in range(len(draws) - 1, len(made) - 1, -1):  # every other outcome of every new draw
                kind, owner, param, outcome, value = draws[i]
                for other in _others(kind, param, outcome):
                    pending.append(draws[:i] + [(kind, owner, param, other, value)])
            if len(out) + len(pending) > MAX_BRANCHES:
                raise TooManyBranches(f"more than {MAX_BRANCHES} ways to go: not worked out")
    finally:
        saved.restore()
    return out


def _why(conn) -> list[str]:
    """The rules of one branch that decided where it went (from its trace steps)."""
    why: list[str] = []
    for s in conn.steps:
        rule = s.rule or ""
        if s.event != "rule":
            continue
        if "--mode random" in rule or "numgen random" in rule:
            why.append(f"{s.chain} #{s.rule_number}: {_short(rule)}" if s.rule_number else f"{s.chain}: {_short(rule)}")
        elif ("-j KUBE-SEP-" in rule or "goto endpoint-" in rule) and "--rcheck" not in rule and "@affinity" not in rule:
            at = f"{s.chain} #{s.rule_number}" if s.rule_number else s.chain
            why.append(f"{at}: no statistic match (takes every connection the rules before it left)")
        elif "--rcheck" in rule or ("@affinity" in rule and "saddr" in rule):
            why.append(f"affinity: {s.chain} #{s.rule_number} remembers the client" if s.rule_number
                       else f"affinity: {s.chain} remembers the client")
    if conn.outcome not in ("ok", "local", "forwarded") and conn.reason:
        why.append(conn.reason)
    local = next((c for c in conn.chains if c.startswith("KUBE-SVL-") or c.startswith("local-")), None)
    if local:
        why.append(f"local-only traffic policy: {local} lists this node's endpoints only")
    return why


def _short(rule: str) -> str:
    """The deciding part of a ladder rule: its statistic match, or numgen's map."""
    if "--probability" in rule:
        words = rule.split()
        return f"statistic --probability {words[words.index('--probability') + 1]}"
    i = rule.find("numgen random")
    if i >= 0:
        words = rule[i:].split()
        n = words[3] if len(words) > 3 and words[2] == "mod" else "N"
        return f"numgen random mod {n} (each value 1/{n})"
    return rule


def candidates_of(branches: list[tuple[Fraction, object]]) -> list[Candidate]:
    """The branches' connections as candidates: one per (endpoint, verdict, masquerade), their
    probabilities added (a load balancer's nodes, a ladder on each node, lead to the same pods),
    most likely first (then by endpoint). The SNAT address and the source the endpoint sees are
    kept when all branches to it agree, else listed in ``sources_seen``."""
    merged: dict[tuple, list] = {}
    for p, conn in branches:
        key = (getattr(conn, "endpoint_pod", ""), getattr(conn, "endpoint_node", ""), getattr(conn, "endpoint_ip", "") or "",
               getattr(conn, "endpoint_port", 0), conn.outcome, conn.masquerade)
        entry = merged.setdefault(key, [Fraction(0), [], [], [], []])  # probability, why, ingress, snat, seen
        entry[0] += p
        for w in _why(conn):
            if w not in entry[1]:
                entry[1].append(w)
        for value, into in ((conn.ingress_node, entry[2]), ((conn.snat_to or "").rsplit(":", 1)[0].strip("[]"), entry[3]),
                            (getattr(conn, "source_ip_seen", ""), entry[4])):
            if value and value not in into:
                into.append(value)
    out = []
    for (pod, node, ip, port, outcome, masq), (p, why, ingress, snat, seen) in merged.items():
        out.append((p, Candidate(probability=float(p), outcome=outcome, pod=pod, node=node, ip=ip, port=port,
                                 masquerade=masq, snat_to=snat[0] if len(snat) == 1 else None,
                                 source_ip_seen=seen[0] if len(seen) == 1 else "", sources_seen=sorted(seen),
                                 ingress_nodes=sorted(ingress), why=why)))
    out.sort(key=lambda pc: (-pc[0], pc[1].pod, pc[1].ip, pc[1].port))
    return [c for _, c in out]


def network_candidates(net, client, dst: str, dport: int, proto: str = "tcp", sport: int | None = None) -> list[Candidate] | None:
    """Every place a new connection from ``client`` to ``dst:dport`` could go through the lab
    ``net`` (a :class:`kslab.sim.network.Network`) as its state is now, which it leaves as it
    was (None: more than :data:`MAX_BRANCHES` ways). ``sport``: the client port (default: the
    one the next connection would draw)."""
    import random

    from .network import _add_counts, _ephemeral_port

    c = net.client(client) if isinstance(client, str) else client
    proto = proto.lower()
    if sport is None:
        peek = random.Random()
        peek.setstate(net.rng.getstate())
        sport = _ephemeral_port(peek.getrandbits)

    def run(lb_replay: list, recorder: list):
        saved = (net._recorder, net._lb_replay)
        net._recorder, net._lb_replay = recorder, lb_replay
        conn = None
        try:
            conn = net._interpret(c, dst, dport, proto, sport, True)
        finally:
            net._recorder, net._lb_replay = saved
            if conn is not None:
                _add_counts(conn.counted, -1)  # a look ahead, not a connection: the rule counters stay as they were
        return conn

    try:
        return candidates_of(explore(run, [n.state for n in net.nodes.values()], [net.rng]))
    except TooManyBranches:
        return None


RULES_SOURCE = "simulator over the nodes' real rules"
NOT_WORKED_OUT = f"none: more than {MAX_BRANCHES} ways to go, not worked out"


def source_of(found: list[Candidate] | None, source: str) -> str:
    """``candidates_source`` for ``found``: ``source``, or why there are none."""
    return source if found is not None else NOT_WORKED_OUT


def candidates_over(cluster, tables: dict[str, str], nft: dict[str, str] | None, src: str, dst: str, port: int,
                    proto: str, *, seed: int = 0, recent: dict[str, dict[str, dict]] | None = None) -> list[Candidate] | None:
    """The candidates of a connection through rules a real backend holds (each node's
    ``iptables-save``, and ``nft list table ip kube-proxy`` for nodes in nftables mode), worked
    out by the simulator: for the netns and kind backends, whose kernels trace the one
    connection they open but cannot say where the others would go. What the kernel remembers
    (conntrack) is not copied; ``recent``: node -> the kernel's xt_recent lists
    (:func:`parse_xt_recent`), copied in, so an affinity hit shows."""
    from ..dataplane import factory

    sim = factory.create("sim", cluster, seed=seed, tables=tables, nft=nft or None)
    sim.network.now = KERNEL_LISTS_AT
    for node, lists in (recent or {}).items():
        sim.network.nodes[node].state.recent.update(lists)
    for node, listing in (nft or {}).items():
        if listing.strip():
            _copy_dynamic_sets(sim.network.nodes[node], listing)
    return network_candidates(sim.network, src, dst, port, proto)


def _copy_dynamic_sets(node, listing: str) -> None:
    """The elements the kernel's packet path put in ``listing``'s dynamic sets (kube-proxy's
    ``affinity-…``: ``10.10.0.2 expires 4m59s784ms``), into the simulated node's live sets, each
    expiring as long after the simulated clock as nft said it has left (``load_nft`` empties them)."""
    from .netfilter import RECENT_HZ, jiffies
    from .nftables import _literal, load_text

    state = load_text(listing, where=f"{node.name}'s nft list")
    now = jiffies(KERNEL_LISTS_AT)
    compiled = getattr(node.netfilter, "sets", {})
    for table in state.tables.values():
        for s in table.sets.values():
            cs = compiled.get(s.name)
            if cs is None or not cs.dynamic or not s.elements:
                continue
            live = node.state.nft_sets.setdefault(s.name, {})
            for e in s.elements.values():
                lits = [_literal(kind, part) for kind, part in zip(cs.kinds, e.key)]
                if len(lits) != len(cs.kinds) or not all(lit.is_exact for lit in lits):
                    continue
                key = lits[0].exact if len(lits) == 1 else tuple(lit.exact for lit in lits)
                left = e.expires if e.expires is not None else e.timeout
                live[key] = float("inf") if left is None else now + left * RECENT_HZ // 1000


KERNEL_LISTS_AT = 86400.0  # the simulated clock when a kernel's xt_recent lists are copied in (stamps are before it)


def parse_xt_recent(text: str, jiffies_now: int) -> dict[str, dict]:
    """The xt_recent lists of ``for f in /proc/net/xt_recent/*; do echo "== $f"; cat "$f"; done``
    (``recent_seq_show``: ``src=IP ttl: T last_seen: J oldest_pkt: K j1, j2, ...``), as the
    simulator's :class:`~kslab.sim.packet.RecentEntry` lists, their stamps on the simulated
    clock at :data:`KERNEL_LISTS_AT` (a stamp ``d`` jiffies before ``jiffies_now`` is ``d / HZ``
    seconds before it), least recently updated first as the kernel keeps them."""
    from .netfilter import RECENT_HZ
    from .packet import RecentEntry

    lists: dict[str, dict] = {}
    current: dict | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("== "):
            current = lists.setdefault(line[3:].rsplit("/", 1)[-1], {})
            continue
        if current is None or not line.startswith("src="):
            continue
        head, _, rest = line.partition(" oldest_pkt: ")
        words = head.split()
        addr, ttl, last = words[0][4:], int(words[2]), int(words[4])
        stamps = sorted(int(j) for j in rest.replace(",", " ").split()[1:])

        def at(j: int) -> float:
            return KERNEL_LISTS_AT - ((jiffies_now - j) & 0xFFFFFFFFFFFFFFFF) / RECENT_HZ

        current[addr] = RecentEntry([at(j) for j in stamps], at(last), len(stamps), ttl)
    for name, entries in lists.items():
        lists[name] = dict(sorted(entries.items(), key=lambda kv: kv[1].last_seen))
    return lists
