"""What one iptables-mode sync writes: per table, the chains it declares and the rules it
appends (upstream's ``natChains``/``natRules``/``filterChains``/``filterRules`` LineBuffers),
and the three text forms of the result.

- :meth:`RuleSet.raw_text`: kube-proxy's restore input in emission order (services visited in
  ServicePortName order, where kube-proxy's Go map order would be random);
- :meth:`RuleSet.restore_text`: the same lines normalised like the upstream tests
  (``sortIPTablesRules``), i.e. the form of the expected dumps in ``tests/data``;
- :meth:`RuleSet.save_text`: what ``iptables-save`` prints once kube-proxy has synced it.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import islice
from operator import eq
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..config import ProxyConfig
from . import constants as C


FIXED_NAT_CHAINS = (C.KUBE_SERVICES, C.KUBE_NODEPORTS, C.KUBE_POSTROUTING, C.KUBE_MARK_MASQ)


_MERGE_BELOW = 512
"""A write to the chain of the last block joins that block while it is shorter than this (a
service chain's rules stay one block; a long chain is not copied again at every write)."""


class LineBuffer:
    """One table's restore input: ``:CHAIN - [0:0]`` declarations, ``-A`` rules, ``-X`` lines.

    Rules are written like upstream's ``proxier.natRules.Write("-A", chain, args...)``: the
    chain once, then the rest of the rule; :meth:`write` takes several rules of one chain at
    once, :meth:`write_block` rules already formatted as ``-A chain ...`` lines. The buffer
    keeps the rules as blocks of lines (newline-joined) in emission order, consecutive writes
    to one chain in one block: neither text parses a rule again, and a chain written in one go
    (every per-service chain) is one string.

    Which blocks belong to which chain: :meth:`write_block` indexes its chain at once;
    :meth:`write_chain_blocks` (a batch of new chains declared with one block each, every
    endpoint's KUBE-SEP chain) keeps each chain's block beside its declaration instead, and
    the whole index is made only when a chain's rules are asked for (:meth:`blocks_of`).
    """

    __slots__ = ("name", "chains", "deleted", "_blocks", "_count", "_last", "_at", "_runs", "_own", "_batch_chains", "_batch_first",
                 "_index", "_declared")

    def __init__(self, name: str) -> None:
        self.name = name
        self.chains: list[str] = []  # declared with ':CHAIN - [0:0]', in order
        self.deleted: list[str] = []  # '-X CHAIN'
        self._blocks: list[str] = []  # '-A ...' lines joined by newlines, in emission order
        self._count = 0  # rules written
        self._last: str | None = None  # the chain of the last block (write_block's)
        self._at: dict[str, int | None] = {}  # write_block's chains -> index of its block, None if several (in _runs)
        self._runs: dict[str, list[int]] = {}  # chain -> its blocks, for chains of several blocks
        self._own: list[str] = []  # write_chain_blocks' blocks (also in _blocks), one per batch chain
        self._batch_chains: list[Sequence[str]] = []  # write_chain_blocks' chains, per call
        self._batch_first: list[int] = []  # and the index of their first block
        self._index: tuple[dict[str, int | None], dict[str, list[int]]] | None = None  # every chain's blocks
        self._declared: set[str] = set()  # write_chain's chains

    def write_chain(self, chain: str) -> None:
        """``natChains.Write(utiliptables.MakeChainLine(chain))``."""
        self.chains.append(chain)
        self._declared.add(chain)

    def write(self, chain: str, *rules: str) -> None:
        """Append ``-A chain rule`` for each rule (the rule's arguments after the chain)."""
        if rules:
            head = "-A " + chain + " "
            self.write_block(chain, head + ("\n" + head).join(rules), len(rules))

    def write_block(self, chain: str, block: str, n: int) -> None:
        """Append ``block``: ``n`` rules of ``chain``, each a whole ``-A chain ...`` line,
        joined by newlines."""
        self._count += n
        blocks = self._blocks
        if chain == self._last and len(blocks[-1]) < _MERGE_BELOW:
            blocks[-1] += "\n" + block
            return
        self._last = chain
        self._index = None
        i = len(blocks)
        blocks.append(block)
        at = self._at.get(chain, -1)
        if at == -1:
            self._at[chain] = i
        elif at is None:
            self._runs[chain].append(i)
        else:
            self._runs[chain] = [at, i]
            self._at[chain] = None  # in _runs

    def write_chain_blocks(self, chains: list[str], blocks: list[str], n: int) -> None:
        """Declare ``chains`` and append ``blocks[i]`` (``n`` whole ``-A chains[i] ...`` lines)
        to each: one block per chain (every endpoint's KUBE-SEP chain). The chains are new:
        a chain declared twice, or written by :meth:`write_block` too, is still listed right
        (its blocks in emission order), only more slowly."""
        mine = self._blocks
        self._batch_chains.append(chains)
        self._batch_first.append(len(mine))
        self.chains += chains
        self._own += blocks
        mine += blocks
        self._count += n * len(chains)
        self._last = None
        self._index = None

    def __len__(self) -> int:
        """``LineBuffer.Lines()`` of the rules buffer: the rules written."""
        return self._count

    @property
    def lines(self) -> list[str]:
        """The ``-A`` lines in emission order."""
        return "\n".join(self._blocks).split("\n") if self._blocks else []

    @property
    def rules(self) -> list[tuple[str, str]]:
        """``(chain, line)`` of every rule, in emission order."""
        return [(line.split(" ", 2)[1], line) for line in self.lines]

    def _chain_index(self) -> tuple[dict[str, int | None], dict[str, list[int]]]:
        """Every chain's blocks: chain -> its block's index, or None with its indices in the runs."""
        if self._index is None:
            at, runs = dict(self._at), {c: list(r) for c, r in self._runs.items()}
            for chains, first in zip(self._batch_chains, self._batch_first):
                for i, c in enumerate(chains, first):
                    j = at.get(c, -1)
                    if j == -1:
                        at[c] = i
                    elif j is None:
                        runs[c].append(i)
                    else:
                        runs[c] = [j, i]
                        at[c] = None
            for r in runs.values():
                r.sort()  # emission order
            self._index = (at, runs)
        return self._index

    def blocks_of(self, chains: Sequence[str]) -> list[str]:
        """The rules of ``chains``, chain after chain, as blocks of newline-joined lines."""
        blocks = self._blocks
        at, runs = self._chain_index()
        try:  # each chain one block (a chain without rules: KeyError; several blocks: None, a TypeError)
            return list(map(blocks.__getitem__, map(at.__getitem__, chains)))
        except (KeyError, TypeError):
            pass
        out: list[str] = []
        for c in chains:
            i = at.get(c, -1)
            if i is None:
                out += [blocks[j] for j in runs[c]]
            elif i >= 0:
                out.append(blocks[i])
        return out

    def rules_of(self, chains: Sequence[str]) -> list[str]:
        """The rules of ``chains``, chain after chain."""
        blocks = self.blocks_of(chains)
        return "\n".join(blocks).split("\n") if blocks else []

    def rules_in(self, chain: str) -> list[str]:
        """The rules of ``chain``, in order."""
        return self.rules_of((chain,))

    def sorted_blocks(self) -> tuple[list[str], list[list[str]], list[str], list[str]]:
        """``sortIPTablesRules``' order of the declared chains: ``(head, head_rules, rest, blocks)``:
        head the declared ones of KUBE-NODEPORTS and KUBE-SERVICES and the rules of each (sorted
        by service by the caller), rest the other chains as :func:`_sorted_chains` orders them,
        blocks the rules of the rest, chain after chain.

        The blocks are put in order by sorting them, not by looking each chain up: each chain of
        the rest is one block (its blocks joined) starting ``-A CHAIN ``, and a space sorts before
        any character of a chain name, so the blocks sort as their chains do."""
        chains, at, runs, blocks, declared = self.chains, self._at, self._runs, self._blocks, self._declared
        head, rest = _sorted_chains(chains)
        if any(map(eq, rest, islice(rest, 1, None))) or not declared.issuperset(at) or any(
                c not in declared or chains.count(c) > 1 for c in head):
            # a chain declared twice, written by write_block without write_chain (a batch's chain?),
            # or KUBE-NODEPORTS / KUBE-SERVICES in a batch: the general way
            return head, [self.rules_in(c) for c in head], rest, self.blocks_of(rest)

        def blocks_of(c: str) -> list[str]:  # write_block's chain
            i = at.get(c, -1)
            return [blocks[j] for j in runs[c]] if i is None else [blocks[i]] if i >= 0 else []

        head_rules = [("\n".join(b).split("\n") if b else []) for b in map(blocks_of, head)]
        mine = list(self._own)  # the batches' chains: one block each
        mine += ["\n".join(map(blocks.__getitem__, runs[c])) if i is None else blocks[i]
                 for c, i in at.items() if c not in head]  # write_block's: its blocks joined
        mine.sort()
        return head, head_rules, rest, _kube_first(mine, (), "-A ")


@dataclass
class RuleSet:
    config: ProxyConfig
    filter: LineBuffer
    nat: LineBuffer
    large_cluster_mode: bool
    total_endpoints: int
    service_port_rows: list[tuple] = field(repr=False)  # per service port, the arguments of ...
    service_port_type: type = field(repr=False)  # ... this type (ServicePortRules), made when asked for
    partial: bool = False  # a partial sync's text (unchanged services' chains left out)
    skipped_nat_rules: int = 0  # rules of unchanged services a partial sync did not write
    skipped_nat_chains: int = 0
    _active_nat_chains: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _service_ports: list | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def service_ports(self) -> list:
        """What the sync decided per service port (``ServicePortRules``), in the order written."""
        if self._service_ports is None:
            make = self.service_port_type
            self._service_ports = [make(*row) for row in self.service_port_rows]
        return self._service_ports

    @property
    def active_nat_chains(self) -> frozenset[str]:
        """``activeNATChains``: every nat chain this sync keeps, written or not (computed when
        first asked: a sync that deletes no stale chains never needs it)."""
        if self._active_nat_chains is None:
            active = set(FIXED_NAT_CHAINS)
            for rules in self.service_ports:
                active.update(rules.nat_chains())
            self._active_nat_chains = frozenset(active)
        return self._active_nat_chains

    @property
    def deleted_chains(self) -> list[str]:
        return list(self.nat.deleted)

    def delete_stale_chains(self, existing_nat_chains: Iterable[str]) -> list[str]:
        """Flush (``:CHAIN``) and delete (``-X``) every service chain of the kernel's nat table
        (``iptables-save -t nat``) that this sync does not keep, in sorted order (kube-proxy
        walks a Go map). Returns the chains added."""
        stale = sorted({c for c in existing_nat_chains
                        if c.startswith(C.SERVICE_CHAIN_PREFIXES) and c not in self.active_nat_chains})
        self.nat.chains.extend(stale)
        self.nat.deleted.extend(stale)
        return stale

    def iptables_last(self) -> dict[str, int]:
        """``sync_proxy_rules_iptables_last``: rules written by this sync (nat: minus the ``-X`` lines)."""
        return {"filter": len(self.filter), "nat": len(self.nat)}

    def iptables_total(self) -> dict[str, int]:
        """``sync_proxy_rules_iptables_total``: rules kube-proxy owns after this sync. proxier.go
        computes nat as lines written + skipped − deleted chains, its written lines counting
        the ``-X`` lines; the rules buffer holds no ``-X`` lines, so here it is written + skipped."""
        return {"filter": len(self.filter), "nat": len(self.nat) + self.skipped_nat_rules}

    # the mode-neutral names (kslab.proxy.proxier.SyncedRules)
    rules_last = iptables_last
    rules_total = iptables_total

    @property
    def operations(self) -> int:
        """Lines of iptables-restore input this sync writes (``*table``, declarations, rules,
        ``-X`` lines and ``COMMIT`` of each table), counted without writing the text."""
        return sum(2 + len(t.chains) + len(t) + len(t.deleted) for t in self.tables)

    @property
    def tables(self) -> tuple[LineBuffer, LineBuffer]:
        return (self.filter, self.nat)

    def rule_count(self) -> int:
        return len(self.filter) + len(self.nat)

    def raw_text(self) -> str:
        """kube-proxy's iptables-restore input, in the order kube-proxy writes it."""
        out: list[str] = []
        for t in self.tables:
            out.append("*" + t.name)
            out.extend([f":{c} - [0:0]" for c in t.chains])
            body = t.lines
            tails = 0  # the nodeports tail rules (one per node address in nodePortAddresses) come after the -X lines
            while t.name == "nat" and tails < len(body) and C.NODEPORTS_TAIL_COMMENT in body[-1 - tails]:
                tails += 1
            if tails:
                out.extend(body[:-tails])
                out.extend([f"-X {c}" for c in t.deleted])
                out.extend(body[-tails:])
            else:
                out.extend(body)
                out.extend([f"-X {c}" for c in t.deleted])
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def restore_text(self) -> str:
        """The restore input normalised like ``sortIPTablesRules`` in ``proxier_test.go``."""
        out: list[str] = []
        for t in sorted(self.tables, key=lambda t: t.name):
            head, head_rules, rest, blocks = t.sorted_blocks()
            out.append("*" + t.name)
            chains = head + rest
            if chains:
                out.append(":" + " - [0:0]\n:".join(chains) + " - [0:0]")
            for c, rules in zip(head, head_rules):  # KUBE-NODEPORTS, KUBE-SERVICES: rules sorted by service name
                out += _sorted_by_service(rules, t.name == "nat" and c == C.KUBE_SERVICES)
            out += blocks
            out.extend([f"-X {c}" for c in t.deleted])
            out.append("COMMIT")
        out.append("")  # the text ends with a newline
        return "\n".join(out)

    def save_text(self) -> str:
        """What ``iptables-save`` (``ip6tables-save`` for an IPv6 proxier's ruleset, ``config.family``)
        prints on the node after kube-proxy's full sync of this ruleset."""
        from .node import restore_to_save

        return restore_to_save(self.raw_text(), self.config.family)

    def text(self, fmt: str) -> str:
        if fmt == "restore":
            return self.restore_text()
        if fmt == "raw":
            return self.raw_text()
        if fmt == "save":
            return self.save_text()
        raise ValueError(f"unknown format {fmt!r}: use restore, raw or save")


def _sorted_chains(chains: list[str]) -> tuple[list[str], list[str]]:
    """``sortIPTablesRules``' chain order: KUBE-NODEPORTS and KUBE-SERVICES (if declared), then
    the other KUBE-* chains sorted, then the rest sorted."""
    head = [c for c in (C.KUBE_NODEPORTS, C.KUBE_SERVICES) if c in chains]
    return head, _kube_first(sorted(chains), head)


def _kube_first(items: list[str], head: Sequence[str], prefix: str = "") -> list[str]:
    """``items`` (sorted; chain names, or blocks starting ``prefix`` + chain) with the KUBE-* ones
    first, without those of the chains in ``head``, then the others, each part still sorted."""
    # the KUBE-* items are one run of the sorted list
    lo = bisect_left(items, prefix + "KUBE-")
    hi = bisect_left(items, prefix + "KUBE.", lo)  # "." follows "-"
    kube = items[lo:hi]
    for c in head:
        del kube[bisect_left(kube, c):bisect_right(kube, c)]
    if len(kube) + len(head) != len(items):
        kube += items[:lo] + items[hi:]
    return kube


_SERVICE_NAME = re.compile(r'^(?:[^\n]*?--comment "?([^ ":\n]*))?[^\n]*$', re.M)
"""Per line of a text: ``getServiceName``'s answer ('' for a line without a comment)."""


def _sorted_by_service(lines: list[str], last_rule_last: bool) -> list[str]:
    """``lines`` stably sorted on :func:`_service_sort_key` (the service names found by one regex
    over the lines, not a Python call per line)."""
    names = _SERVICE_NAME.findall("\n".join(lines))
    if len(names) != len(lines):  # (a line with a newline inside: never written by the renderer)
        return sorted(lines, key=lambda line: _service_sort_key(line, last_rule_last))
    order = sorted(range(len(lines)), key=names.__getitem__)
    out = [lines[i] for i in order]
    if last_rule_last:
        last = [line for line in out if "must be the last rule" in line and _service_sort_key(line, True)[0]]
        if last:
            out = [line for line in out if line not in last] + last
    return out


def _comment_value(line: str) -> str | None:
    i = line.find("--comment ")
    if i < 0:
        return None
    rest = line[i + 10 :]
    if rest.startswith('"'):
        return rest[1 : rest.index('"', 1)]
    return rest.split(" ", 1)[0]


def _service_sort_key(line: str, last_rule_last: bool) -> tuple[int, str]:
    """``getServiceName``: the comment up to the first space or ':'."""
    v = _comment_value(line)
    if v is None:
        return (0, "")
    if last_rule_last and "must be the last rule" in v:
        return (1, "")
    return (0, v.split(" ", 1)[0].split(":", 1)[0])
