"""The iptables tables of one network namespace: :class:`Chain`, :class:`TableDump` and
:class:`IptablesState`, changed the way ``iptables -N``/``-C``/``-I`` and
``iptables-restore --noflush`` change them, printed as ``iptables-save`` prints them.
:func:`parse_restore` loads any restore or save text into empty tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .constants import BUILTIN_CHAINS
from .extensions import TARGET_BUILTINS, check_family
from .rule import Rule, check_chain_name, parse_rule, split_args
from .save import SAVE_TABLE_ORDER

__all__ = ["Counters", "Chain", "TableDump", "IptablesState", "parse_restore"]

_COUNTERS = re.compile(r"\[\d+:\d+\]\s+")  # a leading [packets:bytes]
_APPEND_PREFIXES = ("-A ", "-A\t", "--append ", "--append\t")


# --------------------------------------------------------------------------------------------
# Tables and the state of one namespace


@dataclass(slots=True)
class Counters:
    """One rule's packet and byte counters, as the kernel keeps them beside the rule (what
    ``iptables -L -v`` and ``iptables-save -c`` print). A rule starts at 0; a restore that
    declares the rule's chain replaces its rules, and so their counters; ``iptables -Z`` zeroes them."""

    packets: int = 0
    bytes: int = 0


@dataclass
class Chain:
    """One chain: ``policy`` is ACCEPT/DROP for a built-in chain and None for a user chain.

    ``counters[i]`` are the counters of ``rules[i]`` (every change to ``rules`` keeps them side
    by side; a chain built without them starts every rule at 0). The policy's own counters are
    not kept: iptables-nft (Debian's default) prints them as 0 whatever passes.
    """

    name: str
    policy: str | None = None
    rules: list[Rule] = field(default_factory=list)
    counters: list[Counters] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.counters) != len(self.rules):
            self.counters = [Counters() for _ in self.rules]

    @property
    def builtin(self) -> bool:
        return self.policy is not None

    def copy(self) -> Chain:
        """A copy with its own rule list, sharing the counters (the same rules, still counting)."""
        return Chain(self.name, self.policy, list(self.rules), list(self.counters))

    def zero(self) -> None:
        """``iptables -Z CHAIN``."""
        for c in self.counters:
            c.packets = c.bytes = 0


@dataclass
class TableDump:
    """One table as the kernel holds it: chains (declaration order) with their rules.

    ``family`` is 4 for an iptables table and 6 for an ip6tables one (its rules are of that
    family). The two families have the same tables and built-in chains.
    """

    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    family: int = 4

    def snapshot(self) -> TableDump:
        """A copy to roll back to: new chain objects and rule lists (rules are immutable)."""
        return TableDump(self.name, {n: c.copy() for n, c in self.chains.items()}, self.family)

    @classmethod
    def empty(cls, name: str, family: int = 4) -> TableDump:
        """A table as the kernel creates it: its built-in chains, policy ACCEPT, no rules."""
        if name not in BUILTIN_CHAINS:
            raise ValueError(f"unknown table {name!r}")
        return cls(name, {c: Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]}, check_family(family))

    def chain_order(self) -> list[str]:
        """Chains in iptables-save order: built-ins in kernel hook order, then user chains in ASCII order."""
        builtins = [c for c in BUILTIN_CHAINS[self.name] if c in self.chains]
        return builtins + sorted(c for c in self.chains if not self.chains[c].builtin)

    def rules(self) -> Iterator[Rule]:
        """All rules, in iptables-save order."""
        for name in self.chain_order():
            yield from self.chains[name].rules

    def save_text(self, counters: bool = False) -> str:
        """The table as ``iptables-save -t TABLE`` prints it, without comment lines, counters 0;
        ``counters=True``: as ``iptables-save -c`` prints it, each rule after its ``[packets:bytes]``."""
        order = self.chain_order()
        lines = [f"*{self.name}"]
        lines += [f":{c} {self.chains[c].policy or '-'} [0:0]" for c in order]
        if counters:
            lines += [f"[{n.packets}:{n.bytes}] {rule.save_text()}"
                      for c in order for rule, n in zip(self.chains[c].rules, self.chains[c].counters)]
        else:
            lines += [rule.save_text() for c in order for rule in self.chains[c].rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


class IptablesState:
    """The iptables tables of one network namespace, changed the way the iptables tools change them.

    Operations mirror the commands kube-proxy runs (``-N``, ``-C``, ``-I``,
    ``iptables-restore --noflush``; kube-proxy's sequence of them is
    :class:`kslab.proxy.iptables.node.NodeIptables`) and raise ValueError where those commands
    would fail. A
    table exists once anything touched it (iptables-nft does not create a table for an empty
    ``*filter ... COMMIT``); :meth:`save_text` prints existing tables in
    :data:`SAVE_TABLE_ORDER`.

    ``family=6`` makes it the ip6tables tables of the namespace (``ip6tables -N``/``-C``/``-I``,
    ``ip6tables-restore``): each family has its own tables in the kernel.
    """

    def __init__(self, family: int = 4) -> None:
        self.family = check_family(family)
        self.tables: dict[str, TableDump] = {}

    def _table(self, name: str) -> TableDump:
        if name not in self.tables:
            self.tables[name] = TableDump.empty(name, self.family)
        return self.tables[name]

    def ensure_chain(self, table: str, chain: str) -> bool:
        """``iptables -t TABLE -N CHAIN`` where "already exists" is fine; returns whether it existed."""
        t = self._table(table)
        if chain in t.chains:
            return True
        t.chains[check_chain_name(chain)] = Chain(chain)
        return False

    def ensure_rule_prepend(self, rule: Rule) -> bool:
        """kube-proxy's EnsureRule(Prepend): ``-C`` and, if missing, ``-I CHAIN 1``. Returns whether it existed."""
        if rule.family != self.family:
            raise ValueError(f"an IPv{rule.family} rule cannot go into the IPv{self.family} tables ({rule.save_text()!r})")
        chain = self._chain(rule.table, rule.chain)
        if rule in chain.rules:
            return True
        self._check_target(rule)
        chain.rules.insert(0, rule)
        chain.counters.insert(0, Counters())
        self._check_hooks(rule.table)
        return False

    def _chain(self, table: str, chain: str) -> Chain:
        t = self._table(table)
        if chain not in t.chains:
            raise ValueError(f"chain {chain!r} does not exist in table {table}")
        return t.chains[chain]

    def _check_target(self, rule: Rule) -> None:
        if rule.target is None or not rule.target.is_chain:
            return
        t = self.tables[rule.table]
        dest = t.chains.get(rule.target.name)
        if dest is None:
            raise ValueError(f"chain {rule.target.name!r} does not exist (rule {rule.save_text()!r})")
        if dest.builtin:
            raise ValueError(f"cannot jump to built-in chain {dest.name} (rule {rule.save_text()!r})")

    def _check_hooks(self, table: str) -> None:
        """Refuse DNAT/SNAT/MASQUERADE where a built-in chain that may not use them reaches them.

        iptables-restore fails for ``-A PREROUTING -j KUBE-X`` when KUBE-X holds a MASQUERADE
        rule (measured on both backends), so such text has no iptables-save output.
        """
        t = self.tables.get(table)
        if t is None:
            return
        restricted = [r for r in t.rules() if r.target is not None and r.target.name in TARGET_BUILTINS]
        if not restricted:
            return
        reached_from: dict[str, set[str]] = {}
        for builtin in BUILTIN_CHAINS[table]:
            todo, seen = [builtin], {builtin}
            while todo:
                name = todo.pop()
                reached_from.setdefault(name, set()).add(builtin)
                for r in t.chains[name].rules if name in t.chains else ():
                    if r.target is not None and r.target.is_chain and r.target.name not in seen:
                        seen.add(r.target.name)
                        todo.append(r.target.name)
        for rule in restricted:
            assert rule.target is not None
            bad = sorted(reached_from.get(rule.chain, set()) - set(TARGET_BUILTINS[rule.target.name]))
            if bad:
                raise ValueError(
                    f"{rule.target.name} is not allowed in {rule.chain}, reached from {bad[0]} "
                    f"(rule {rule.save_text()!r})"
                )

    def restore(self, text: str, *, strict: bool = True) -> None:
        """``iptables-restore --noflush``: apply each table section in order.

        ``:CHAIN - [..]`` creates a user chain or flushes it if it exists; ``:BUILTIN POLICY``
        sets the policy and keeps the rules, and ``:BUILTIN - [..]`` keeps both (a table it
        creates starts with policy ACCEPT); ``-A`` appends; ``-X`` deletes a chain that exists,
        is empty and is not referenced. ``#`` lines and counters are ignored (as without
        ``--counters``; with it, iptables-nft refuses a built-in chain line without ``[p:b]``).

        Each table section is atomic, as in the kernel (measured on both backends): if a line
        fails, that table keeps its state from before the section, tables committed earlier
        in the same input keep their changes, and the error is raised.
        """
        table: str | None = None
        before: TableDump | None = None
        for lineno, raw_line in enumerate(text.splitlines(), 1):
            line = raw_line.strip()
            try:
                if not line or line.startswith("#"):
                    continue
                if line.startswith("*"):
                    if table is not None:
                        raise ValueError(f"COMMIT expected before {line!r}")
                    table = line[1:]
                    if table not in BUILTIN_CHAINS:
                        raise ValueError(f"unknown table {table!r}")
                    before = self.tables[table].snapshot() if table in self.tables else None
                    continue
                if table is None:
                    raise ValueError(f"{line!r} outside a *table section")
                if line == "COMMIT":
                    if strict:
                        self._check_hooks(table)
                    table = None
                elif line.startswith(":"):
                    self._declare(table, line)
                else:
                    self._command(table, line, strict)
            except ValueError as err:
                if table is not None:  # roll the table back
                    if before is None:
                        self.tables.pop(table, None)
                    else:
                        self.tables[table] = before
                raise ValueError(f"restore line {lineno}: {err}") from None
        if table is not None:
            if before is None:
                self.tables.pop(table, None)
            else:
                self.tables[table] = before
            raise ValueError(f"restore: table {table} has no COMMIT")

    def _declare(self, table: str, line: str) -> None:
        m = re.fullmatch(r":(\S+)\s+(\S+)(?:\s+\[\d+:\d+\])?", line)
        if not m:
            raise ValueError(f"bad chain line {line!r}")
        name, policy = m.groups()
        t = self._table(table)
        if name in BUILTIN_CHAINS[table]:
            # "-" keeps the current policy: iptables-restore (both backends, measured) accepts it
            # for any chain, and iptables-save prints the policy the chain has.
            if policy not in ("ACCEPT", "DROP", "-"):
                raise ValueError(f"bad policy {policy!r} for built-in chain {name} (ACCEPT, DROP or -)")
            if policy != "-":
                t.chains[name].policy = policy
        elif policy != "-":
            raise ValueError(f"user chain {name} cannot have a policy ({line!r})")
        elif name in t.chains:
            t.chains[name].rules.clear()
            t.chains[name].counters.clear()
        else:
            t.chains[check_chain_name(name)] = Chain(name)

    def _command(self, table: str, line: str, strict: bool) -> None:
        counters = _COUNTERS.match(line)
        body = line[counters.end() :] if counters else line
        # an -A line (nearly all of them) goes to the parser, which caches it, without splitting
        # it here first: its first argument is -A exactly when it starts "-A " or "-A<TAB>"
        args = ["-A"] if body.startswith(_APPEND_PREFIXES) else split_args(body)
        if args and args[0] in ("-A", "--append"):
            rule = parse_rule(line, table, family=self.family, strict=strict)
            chain = self._chain(table, rule.chain)
            if strict:
                self._check_target(rule)
            chain.rules.append(rule)
            chain.counters.append(Counters())
        elif args and args[0] in ("-X", "--delete-chain"):
            if len(args) != 2:
                raise ValueError(f"{line!r}: -X takes exactly one chain")
            self._delete_chain(table, args[1])
        else:
            raise ValueError(f"{table} line {line!r}: only -A and -X commands are supported")

    def _delete_chain(self, table: str, name: str) -> None:
        t = self._table(table)
        chain = t.chains.get(name)
        if chain is None:
            raise ValueError(f"-X {name}: no chain by that name in {table}")
        if chain.builtin:
            raise ValueError(f"-X {name}: built-in chains cannot be deleted")
        if chain.rules:
            raise ValueError(f"-X {name}: chain is not empty")
        users = [r for r in t.rules() if r.target is not None and r.target.name == name]
        if users:
            raise ValueError(f"-X {name}: chain is still referenced by {users[0].save_text()!r}")
        del t.chains[name]

    def zero_counters(self) -> None:
        """``iptables -Z`` in every table: every rule's counters back to 0."""
        for t in self.tables.values():
            for chain in t.chains.values():
                chain.zero()

    def chains(self, table: str) -> list[str]:
        """The chains of ``table`` (``iptables-save -t TABLE`` chain lines), [] if it does not exist."""
        t = self.tables.get(table)
        return t.chain_order() if t else []

    def save_text(self, tables: Iterable[str] | None = None) -> str:
        """``iptables-save`` of the existing tables (or of ``tables`` that exist), in :data:`SAVE_TABLE_ORDER`."""
        wanted = SAVE_TABLE_ORDER if tables is None else tuple(tables)
        return "".join(self.tables[t].save_text() for t in SAVE_TABLE_ORDER if t in wanted and t in self.tables)


def parse_restore(text: str, family: int = 4, *, strict: bool = True) -> dict[str, TableDump]:
    """Load restore or save text into empty tables and return the tables that exist afterwards.

    For ``iptables-save`` text this is the node's tables as printed; for kube-proxy restore text
    it is what that text alone builds (chains it flushes or deletes, rules it appends). Use
    ``strict=False`` to read a real node's dump that contains extensions kslab does not model.
    ``family=6`` reads ip6tables text (``ip6tables-save``, the IPv6 proxier's restore text).
    """
    state = IptablesState(family)
    state.restore(text, strict=strict)
    return {name: state.tables[name] for name in SAVE_TABLE_ORDER if name in state.tables}
