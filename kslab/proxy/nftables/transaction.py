"""One nftables transaction as kube-proxy builds it with knftables, and upstream's test helpers.

- :class:`NftOp`: one operation (``add``/``flush``/``delete`` of a table, chain, set, map,
  rule or element), written as knftables' ``writeOperation`` writes it, one line each: the
  transaction text kube-proxy hands ``nft -f``; ``NumOperations`` is the number of lines.
- :func:`sort_nft_transaction` and :func:`diff_nft_transaction`: ports of
  ``sortNFTablesTransaction`` / ``diffNFTablesTransaction`` of
  ``pkg/proxy/nftables/helpers_test.go`` (the order-insensitive comparison of the upstream tests).
- :class:`FakeNft`: a port of ``knftables.Fake`` for one table, the "kernel" of the upstream
  unit tests: it applies operations atomically (any error leaves it as it was) and ``dump()``
  prints what it holds as ``add`` operations, which is what the upstream tests compare
  (``assertNFTablesTransactionEqual(t, line, expected, nft.Dump())``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Iterable, NamedTuple

VERBS = ("add", "flush", "delete")
KINDS = ("table", "chain", "set", "map", "rule", "element")


class NftOp(NamedTuple):
    """One operation of a transaction (immutable, compared by value). ``name`` is the chain,
    set or map (for a rule: its chain; for an element: its set or map; for the table: empty);
    ``spec`` is what follows the name (a chain's or set's ``{ ... }``, a rule's text, an
    element's ``{ key : value }``). A tuple: a full sync of a large cluster makes millions."""

    verb: str
    kind: str
    name: str
    spec: str = ""

    def text(self, family: str = "ip", table: str = "kube-proxy") -> str:
        """The operation as knftables writes it (without the newline)."""
        head = f"{self.verb} {self.kind} {family} {table}"
        if self.name:
            head += " " + self.name
        return head + " " + self.spec if self.spec else head


def ops_text(ops: Iterable[NftOp], family: str = "ip", table: str = "kube-proxy") -> str:
    """The transaction text of ``ops``: one line each, every line ending with a newline."""
    head = f" {family} {table} "
    out = []
    for op in ops:  # NftOp.text inlined: a full sync of a large cluster has millions of operations
        line = op.verb + " " + op.kind + head + op.name if op.name else f"{op.verb} {op.kind} {family} {table}"
        out.append(line + " " + op.spec if op.spec else line)
    out.append("")
    return "\n".join(out) if len(out) > 1 else ""


def parse_ops(text: str) -> list[NftOp]:
    """The operations of a transaction text written by :func:`ops_text` (or an upstream test's
    expected dump), in order: blank lines and ``#`` comments are skipped (the family and table
    of each line are not kept);
    a line of another shape is a ValueError naming it."""
    ops = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        words = s.split(" ", 4)
        if len(words) < 4 or words[0] not in VERBS or words[1] not in KINDS:
            raise ValueError(f"line {n}: not an nftables operation: {s!r}")
        verb, kind = words[0], words[1]
        rest = s.split(" ", 4)[4] if len(words) == 5 else ""
        if kind == "table":
            ops.append(NftOp(verb, kind, "", rest))
            continue
        name, _, spec = rest.partition(" ")
        if not name:
            raise ValueError(f"line {n}: {kind} without a name: {s!r}")
        ops.append(NftOp(verb, kind, name, spec))
    return ops


# ---- helpers_test.go -------------------------------------------------------------------------

# objectOrder: the order object types sort into (higher = earlier)
_OBJECT_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def _less(li: str, lj: str) -> bool:
    wi, wj = li.split(" "), lj.split(" ")
    # every line starts "VERB OBJECTTYPE ip kube-proxy" and has at least 5 words
    if len(wi) < 5 or len(wj) < 5:
        return False
    if wi[1] != wj[1]:  # by object type first
        return _OBJECT_ORDER.get(wi[1], 0) >= _OBJECT_ORDER.get(wj[1], 0)
    if wi[4] != wj[4]:  # then by object name
        return wi[4] < wj[4]
    if wi[1] == "rule":  # rules stay in the order they were added
        return False
    return li < lj  # the whole line (elements of one set, ...)


def sort_nft_transaction(tx: str) -> str:
    """``sortNFTablesTransaction``: blank lines and ``#`` comments dropped, the lines stably
    sorted by object type (table, chain, rule, set, map, element), then object name, rules of
    one chain kept in order, anything else by the whole line; joined by newlines."""
    lines = [line for line in tx.split("\n") if line and line[0] != "#"]

    # sort.SliceStable with a "less" function: a stable merge sort over the same comparisons
    def cmp(a: str, b: str) -> int:
        return -1 if _less(a, b) else (1 if _less(b, a) else 0)

    return "\n".join(sorted(lines, key=cmp_to_key(cmp)))


def diff_nft_transaction(expected: str, result: str) -> str:
    """``diffNFTablesTransaction``: "" when the two sort equal, else a unified diff."""
    import difflib

    a, b = sort_nft_transaction(expected), sort_nft_transaction(result)
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(a.split("\n"), b.split("\n"), "expected", "result", lineterm=""))


# ---- knftables.Fake ---------------------------------------------------------------------------

@dataclass
class _FakeChain:
    spec: str = ""
    rules: list[str] = field(default_factory=list)


@dataclass
class _FakeSet:
    kind: str  # set or map
    spec: str = ""
    elements: dict[str, str] = field(default_factory=dict)  # key -> the element's whole "{ ... }"


def element_key(spec: str) -> str:
    """The key of an element spec ``{ KEY [comment "..."] [: VALUE] }``."""
    inner = spec.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1].strip()
    for sep in (' comment "', " : "):
        i = inner.find(sep)
        if i >= 0:
            inner = inner[:i]
    return inner.strip()


class FakeNft:
    """``knftables.Fake`` for one table: ``run`` applies operations atomically like ``nft -f``
    (an error -> ValueError, nothing changed); ``dump`` prints the table's contents;
    ``last_operations`` is ``LastTransaction.NumOperations()``."""

    def __init__(self, family: str = "ip", table: str = "kube-proxy") -> None:
        self.family = family
        self.table_name = table
        self.table: str | None = None  # the table's spec, None while it does not exist
        self.chains: dict[str, _FakeChain] = {}
        self.sets: dict[str, _FakeSet] = {}
        self.last_operations = 0

    # -- reading
    def list_chains(self) -> list[str]:
        return list(self.chains)

    def list_sets(self) -> list[str]:
        return [n for n, s in self.sets.items() if s.kind == "set"]

    def elements(self) -> dict[str, dict[str, str]]:
        """Per set or map, its elements: key -> value (``""`` for a set; comments dropped), as
        kube-proxy's element storage keeps them."""
        out: dict[str, dict[str, str]] = {}
        for name, s in self.sets.items():
            d = out[name] = {}
            for key, spec in s.elements.items():
                inner = spec.strip()[1:-1].strip()
                value = inner.split(" : ", 1)[1].strip() if " : " in inner else ""
                d[key] = value
        return out

    def dump(self) -> str:
        """``Fake.Dump()``: the table, its chains, sets and maps, rules and elements as ``add``
        operations (compare with :func:`sort_nft_transaction`)."""
        if self.table is None:
            return ""
        ops = [NftOp("add", "table", "", self.table)]
        ops += [NftOp("add", "chain", n, c.spec) for n, c in sorted(self.chains.items())]
        ops += [NftOp("add", s.kind, n, s.spec) for n, s in sorted(self.sets.items())]
        for n, c in sorted(self.chains.items()):
            ops += [NftOp("add", "rule", n, r) for r in c.rules]
        for n, s in sorted(self.sets.items()):
            ops += [NftOp("add", "element", n, e) for _, e in sorted(s.elements.items())]
        return ops_text(ops, self.family, self.table_name)

    def parse_dump(self, text: str) -> None:
        """``Fake.ParseDump``: load an expected-dump text (its ``add`` operations)."""
        self.run(parse_ops(text))

    # -- writing
    def run(self, ops: Iterable[NftOp] | str) -> None:
        """Apply a transaction (operations or their text) atomically."""
        ops = parse_ops(ops) if isinstance(ops, str) else list(ops)
        saved = (self.table, copy.deepcopy(self.chains), copy.deepcopy(self.sets))
        try:
            for op in ops:
                self._apply(op)
        except ValueError:
            self.table, self.chains, self.sets = saved
            raise
        self.last_operations = len(ops)

    def _need_table(self, op: NftOp) -> None:
        if self.table is None:
            raise ValueError(f"{op.verb} {op.kind} {op.name}: no such table {self.family} {self.table_name}")

    def _apply(self, op: NftOp) -> None:
        v, k, name = op.verb, op.kind, op.name
        if k == "table":
            if v == "add":
                self.table = self.table if self.table is not None else op.spec
            elif v == "flush":
                self._need_table(op)
                for c in self.chains.values():
                    c.rules.clear()
                for s in self.sets.values():
                    s.elements.clear()
            else:
                self._need_table(op)
                self.table, self.chains, self.sets = None, {}, {}
            return
        self._need_table(op)
        if k == "chain":
            if v == "add":
                self.chains.setdefault(name, _FakeChain(op.spec))
            elif name not in self.chains:
                raise ValueError(f"{v} chain {name}: no such chain")
            elif v == "flush":
                self.chains[name].rules.clear()
            else:
                if any(_refers(r, name) for c in self.chains.values() for r in c.rules) or any(
                        _refers(e, name) for s in self.sets.values() for e in s.elements.values()):
                    raise ValueError(f"delete chain {name}: chain is still referenced")
                del self.chains[name]
        elif k in ("set", "map"):
            if v == "add":
                s = self.sets.setdefault(name, _FakeSet(k, op.spec))
                if s.kind != k:
                    raise ValueError(f"add {k} {name}: a {s.kind} of that name exists")
            elif name not in self.sets:
                raise ValueError(f"{v} {k} {name}: no such {k}")
            elif v == "flush":
                self.sets[name].elements.clear()
            else:
                del self.sets[name]
        elif k == "rule":
            if name not in self.chains:
                raise ValueError(f"add rule {name}: no such chain")
            if v != "add":
                raise ValueError(f"{v} rule: only add is supported")
            for word in op.spec.split():  # what it jumps to and the sets it reads must exist
                if word.startswith("@") and word[1:] not in self.sets:
                    raise ValueError(f"add rule {name}: no such set {word[1:]}")
            for target in _targets(op.spec):
                if target not in self.chains:
                    raise ValueError(f"add rule {name}: no such chain {target}")
            self.chains[name].rules.append(op.spec)
        elif k == "element":
            s = self.sets.get(name)
            if s is None:
                raise ValueError(f"{v} element {name}: no such set or map")
            key = element_key(op.spec)
            if v == "add":
                for target in _targets(op.spec):
                    if target not in self.chains:
                        raise ValueError(f"add element {name}: no such chain {target}")
                s.elements.setdefault(key, op.spec)
            elif v == "delete":
                if key not in s.elements:
                    raise ValueError(f"delete element {name} {{ {key} }}: no such element")
                del s.elements[key]
            else:
                raise ValueError("flush element: not an operation")


def _targets(text: str) -> list[str]:
    words = text.replace(",", " ").replace("}", " ").split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("jump", "goto")]


def _refers(text: str, chain: str) -> bool:
    return chain in _targets(text)
