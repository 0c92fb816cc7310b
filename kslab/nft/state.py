"""The nftables state of one network namespace, as text in and text out.

:class:`NftState` holds tables of sets/maps and chains. :meth:`NftState.apply` runs a transaction
the way ``nft -f`` does: every command in order, all or nothing; a refused transaction raises a
one-line ``ValueError`` (the line and nft's error, e.g. ``Could not process rule: No such file or
directory`` for a rule in a chain not declared yet) and leaves the state as it was.
:meth:`NftState.list_table` prints what ``nft list table`` prints (nft v1.0.6), byte for byte.

Rules are kept as text (:class:`NftRule`); the simulator (kslab.sim.nftables) parses them.
Objects are never changed in place once a transaction committed: a transaction copies the
tables, chains and sets it touches, so earlier snapshots (``state.table(...)`` results) stay valid.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace

from kslab.nft.parse import (
    ElementSpec,
    NftCommand,
    _parse_object_spec,
    _quote,
    _strip_hash_comment,
    chain_refs,
    dynset_refs,
    key_sort_value,
    listing_blocks,
    normalize_rule,
    normalize_value,
    parse_commands,
    per_line,
    priority_text,
    set_refs,
    split_rule_comment,
    time_text,
    tokenize,
)

ENOENT = "Could not process rule: No such file or directory"
EEXIST = "Could not process rule: File exists"
EBUSY = "Could not process rule: Device or resource busy"
EOPNOTSUPP = "Could not process rule: Operation not supported"
EINVAL = "Could not process rule: Invalid argument"
DYNSET_SIZE = 65535   # the kernel's size for a set a rule adds to (nft_dynset), listed as "size 65535"


@dataclass(frozen=True)
class NftRule:
    """One rule: its text without the trailing ``comment "..."`` (as written: transaction form
    from :meth:`NftState.apply`, list form from :func:`~kslab.nft.parse.parse_ruleset`), the
    comment, and the kernel-style handle."""

    text: str
    comment: str | None = None
    handle: int = 0
    from_listing: bool = False     # text came from ``nft list``: print it as it is

    @property
    def listed(self) -> str:
        """The rule as ``nft list`` prints it (comment included)."""
        s = self.text if self.from_listing else normalize_rule(self.text)
        if self.comment is not None:
            s += f" comment {_quote(self.comment)}"
        return s


@dataclass(frozen=True)
class NftElement:
    """A set/map element: normalized key components, value (``goto X``, ``drop``; maps only)."""

    key: tuple[str, ...]
    value: str | None = None
    comment: str | None = None
    timeout: int | None = None      # ms, per-element timeout if given
    expires: int | None = None      # ms left (listings of timeout sets; nft prints "expires X")

    def text(self) -> str:
        s = " . ".join(self.key)
        if self.timeout is not None:
            s += f" timeout {time_text(self.timeout)}"
        if self.expires is not None:
            s += f" expires {time_text(self.expires)}"
        if self.comment is not None:
            s += f" comment {_quote(self.comment)}"
        if self.value is not None:
            s += f" : {self.value}"
        return s


@dataclass
class NftSet:
    """A named set (``kind="set"``) or map (``kind="map"``; ``value_type`` e.g. ``verdict``)."""

    name: str
    key_types: tuple[str, ...]
    value_type: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None      # ms
    size: int | None = None
    comment: str | None = None
    elements: dict[tuple[str, ...], NftElement] = field(default_factory=dict)
    handle: int = 0
    typeof: str | None = None
    policy: str | None = None
    gc_interval: int | None = None

    @property
    def kind(self) -> str:
        return "map" if self.value_type is not None else "set"

    def lookup(self, key: tuple[str, ...] | str) -> NftElement | None:
        if isinstance(key, str):
            key = (key,)
        return self.elements.get(tuple(normalize_value(k, t) for k, t in zip(key, self.key_types)))

    def sorted_elements(self) -> list[NftElement]:
        """Elements in the order nft 1.0.6 lists them."""
        return sorted(self.elements.values(), key=lambda e: key_sort_value(e.key, self.key_types))

    def _copy(self) -> "NftSet":
        return replace(self, elements=dict(self.elements))


@dataclass
class NftChain:
    """A chain; base chains have ``type``/``hook``/``priority`` (int) and a ``policy``."""

    name: str
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    comment: str | None = None
    rules: list[NftRule] = field(default_factory=list)
    handle: int = 0

    @property
    def is_base(self) -> bool:
        return self.hook is not None

    def _copy(self) -> "NftChain":
        return replace(self, rules=list(self.rules))


@dataclass
class NftTable:
    """A table: sets/maps and chains, each in creation order (the order ``nft list`` uses)."""

    family: str
    name: str
    comment: str | None = None
    flags: tuple[str, ...] = ()
    sets: dict[str, NftSet] = field(default_factory=dict)
    chains: dict[str, NftChain] = field(default_factory=dict)
    handle_seq: int = 0
    preamble: tuple[str, ...] = ()   # "# Warning: table ip nat is managed by iptables-nft, ..."
    handle: int = 0

    @property
    def maps(self) -> dict[str, NftSet]:
        return {n: s for n, s in self.sets.items() if s.value_type is not None}

    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())

    def element_count(self) -> int:
        return sum(len(s.elements) for s in self.sets.values())

    def _copy(self) -> "NftTable":
        return replace(self, sets=dict(self.sets), chains=dict(self.chains))

    # -- references (for delete checks) ------------------------------------------------------
    def chain_users(self, name: str) -> list[str]:
        """Where chain ``name`` is referenced: ``chain X`` (jump/goto) or ``map M`` (verdicts)."""
        users = []
        for c in self.chains.values():
            for r in c.rules:
                if ("jump" in r.text or "goto" in r.text) and name in chain_refs(r.text):
                    users.append(f"chain {c.name}")
                    break
        for s in self.sets.values():
            if s.value_type == "verdict":
                for e in s.elements.values():
                    if e.value and name in chain_refs(e.value):
                        users.append(f"map {s.name}")
                        break
        return users

    def set_users(self, name: str) -> list[str]:
        return [f"chain {c.name}" for c in self.chains.values()
                if any("@" in r.text and name in set_refs(r.text) for r in c.rules)]

    # -- printing ----------------------------------------------------------------------------
    def listing(self, handles: bool = False) -> str:
        """``nft list table FAMILY NAME`` (nft v1.0.6), with the final newline; ``handles``
        adds the ``# handle N`` annotations of ``nft -a list``."""
        h = (lambda n: f" # handle {n}") if handles else (lambda n: "")
        out = list(self.preamble) + [f"table {self.family} {self.name} {{{h(self.handle)}"]
        if self.comment is not None:
            out.append(f"\tcomment {_quote(self.comment)}")
        if self.flags:
            out.append(f"\tflags {','.join(self.flags)}")
        blocks = [_set_lines(s, h) for s in self.sets.values()]
        blocks += [_chain_lines(c, self.family, h) for c in self.chains.values()]
        for k, b in enumerate(blocks):
            if k:
                out.append("")
            out.extend(b)
        out.append("}")
        return "\n".join(out) + "\n"


_FLAG_ORDER = ("constant", "dynamic", "interval", "timeout")


def _set_lines(s: NftSet, h=lambda n: "") -> list[str]:
    out = [f"\t{s.kind} {s.name} {{{h(s.handle)}"]
    if s.typeof is not None:
        out.append(f"\t\ttypeof {s.typeof}")
    else:
        t = " . ".join(s.key_types)
        if s.value_type is not None:
            t += f" : {s.value_type}"
        out.append(f"\t\ttype {t}")
    if s.policy is not None:
        out.append(f"\t\tpolicy {s.policy}")
    if s.size is not None:
        out.append(f"\t\tsize {s.size}")
    flags = [f for f in _FLAG_ORDER if f in s.flags] + [f for f in s.flags if f not in _FLAG_ORDER]
    if flags == ["timeout"] and s.timeout:
        flags = []   # "timeout 1h" already says it (nft prints no flags line then)
    if flags:
        out.append(f"\t\tflags {','.join(flags)}")
    if s.timeout:
        out.append(f"\t\ttimeout {time_text(s.timeout)}")
    if s.gc_interval:
        out.append(f"\t\tgc-interval {time_text(s.gc_interval)}")
    if s.comment is not None:
        out.append(f"\t\tcomment {_quote(s.comment)}")
    if s.elements:
        n = per_line(s.key_types)
        items = [e.text() for e in s.sorted_elements()]
        text = ""
        for k, item in enumerate(items):
            if k:
                text += ",\n\t\t\t     " if k % n == 0 else ", "
            text += item
        out.append("\t\telements = { " + text + " }")
    out.append("\t}")
    return ["\n".join(out)]


def _chain_lines(c: NftChain, family: str, h=lambda n: "") -> list[str]:
    out = [f"\tchain {c.name} {{{h(c.handle)}"]
    if c.comment is not None:
        out.append(f"\t\tcomment {_quote(c.comment)}")
    if c.is_base:
        out.append(f"\t\ttype {c.type} hook {c.hook} priority "
                   f"{priority_text(c.priority or 0, family, c.hook or '')}; "
                   f"policy {c.policy or 'accept'};")
    out.extend(f"\t\t{r.listed}{h(r.handle)}" for r in c.rules)
    out.append("\t}")
    return out


class _Refused(Exception):
    pass


class NftState:
    """All nftables tables of one namespace. ``apply`` = ``nft -f``; ``list_*`` = ``nft list``."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], NftTable] = {}
        self._table_handles = 0      # table handles count per namespace

    # -- reading -------------------------------------------------------------------------------
    @property
    def tables(self) -> dict[tuple[str, str], NftTable]:
        return dict(self._tables)

    def has_table(self, family: str = "ip", name: str = "kube-proxy") -> bool:
        return (family, name) in self._tables

    def table(self, family: str = "ip", name: str = "kube-proxy") -> NftTable:
        try:
            return self._tables[(family, name)]
        except KeyError:
            raise ValueError(f"Error: No such file or directory: list table {family} {name}") from None

    def chains(self, family: str = "ip", name: str = "kube-proxy") -> list[str]:
        t = self._tables.get((family, name))
        return list(t.chains) if t else []

    def sets(self, family: str = "ip", name: str = "kube-proxy") -> list[str]:
        """Names of the table's sets and maps (creation order)."""
        t = self._tables.get((family, name))
        return list(t.sets) if t else []

    def list_table(self, family: str = "ip", name: str = "kube-proxy", *,
                   handles: bool = False) -> str:
        """Exactly what ``nft list table FAMILY NAME`` prints (nft v1.0.6); ``handles=True``:
        ``nft -a list table``."""
        return self.table(family, name).listing(handles)

    def list_chain(self, family: str, table: str, chain: str, *, handles: bool = False) -> str:
        """``nft list chain FAMILY TABLE CHAIN``: the chain inside its table's braces."""
        t = self._tables.get((family, table))
        if t is None or chain not in t.chains:
            raise ValueError(f"Error: No such file or directory: list chain {family} {table} {chain}")
        h = (lambda n: f" # handle {n}") if handles else (lambda n: "")
        return "\n".join([f"table {family} {table} {{"]      # (no table handle here, as nft)
                         + _chain_lines(t.chains[chain], family, h) + ["}"]) + "\n"

    def list_set(self, family: str, table: str, name: str, *, kind: str = "set",
                 handles: bool = False) -> str:
        """``nft list set|map FAMILY TABLE NAME`` (``kind`` must match, as nft insists)."""
        t = self._tables.get((family, table))
        s = t.sets.get(name) if t is not None else None
        if s is None or s.kind != kind:
            raise ValueError(f"Error: No such file or directory: list {kind} {family} {table} {name}")
        h = (lambda n: f" # handle {n}") if handles else (lambda n: "")
        return "\n".join([f"table {family} {table} {{"] + _set_lines(s, h) + ["}"]) + "\n"

    def list_ruleset(self, *, handles: bool = False) -> str:
        """``nft list ruleset``: every table, in creation order."""
        return "".join(t.listing(handles) for t in self._tables.values())

    def copy(self) -> "NftState":
        new = NftState()
        new._tables = dict(self._tables)   # objects are copy-on-write: sharing is safe
        new._table_handles = self._table_handles
        return new

    def __deepcopy__(self, memo) -> "NftState":
        new = NftState()
        new._tables = copy.deepcopy(self._tables, memo)
        new._table_handles = self._table_handles
        return new

    # -- writing -------------------------------------------------------------------------------
    def apply(self, text: str) -> None:
        """Run ``text`` as one ``nft -f`` transaction: all commands or none.

        Raises ``ValueError("line N: Error: <nft's error>: <command>")`` and keeps the state.
        """
        commands = parse_commands(text)
        self.apply_commands(commands)

    def apply_commands(self, commands: list[NftCommand]) -> None:
        txn = _Txn(self._tables, self._table_handles)
        for cmd in commands:
            try:
                txn.run(cmd)
            except (_Refused, ValueError) as e:    # ValueError: a value nft cannot parse either
                raise ValueError(f"line {cmd.line}: Error: {e}: {cmd.text.strip()[:160]}") from None
        self._tables = txn.tables
        self._table_handles = txn.table_handles

    def load_listing(self, text: str) -> None:
        """Add the tables of an ``nft list ruleset|table`` output (replacing same-named ones)."""
        new = dict(self._tables)
        for family, name, body, preamble, handle in listing_blocks(text):
            new.pop((family, name), None)
            t = _table_from_listing(family, name, body)
            t.preamble = preamble
            if handle is None:
                self._table_handles += 1
                handle = self._table_handles
            t.handle = handle
            self._table_handles = max(self._table_handles, handle)
            new[(family, name)] = t
        self._tables = new


class _Txn:
    """Working copy of the tables: copy-on-write per table, chain and set."""

    def __init__(self, tables: dict[tuple[str, str], NftTable], table_handles: int = 0):
        self.tables = dict(tables)
        self.table_handles = table_handles
        self._own_tables: set[tuple[str, str]] = set()
        self._own: set[int] = set()       # ids of chain/set objects copied in this transaction

    # -- lookups -------------------------------------------------------------------------------
    def _table(self, cmd: NftCommand, write: bool = True) -> NftTable:
        key = (cmd.family, cmd.table)
        t = self.tables.get(key)
        if t is None:
            raise _Refused(ENOENT)
        if write and key not in self._own_tables:
            t = t._copy()
            self.tables[key] = t
            self._own_tables.add(key)
        return t

    def _chain(self, t: NftTable, name: str) -> NftChain:
        c = t.chains.get(name)
        if c is None:
            raise _Refused(ENOENT)
        if id(c) not in self._own:
            c = c._copy()
            t.chains[name] = c
            self._own.add(id(c))
        return c

    def _set(self, t: NftTable, name: str, missing: str = "No such file or directory") -> NftSet:
        s = t.sets.get(name)
        if s is None:
            raise _Refused(missing)
        if id(s) not in self._own:
            s = s._copy()
            t.sets[name] = s
            self._own.add(id(s))
        return s

    @staticmethod
    def _handle(t: NftTable) -> int:
        t.handle_seq += 1
        return t.handle_seq

    # -- commands ------------------------------------------------------------------------------
    def run(self, cmd: NftCommand) -> None:
        handler = {"table": self._table_cmd, "chain": self._chain_cmd, "set": self._set_cmd,
                   "map": self._set_cmd, "rule": self._rule_cmd,
                   "element": self._element_cmd}[cmd.kind]
        handler(cmd)

    def _table_cmd(self, cmd: NftCommand) -> None:
        key = (cmd.family, cmd.table)
        t = self.tables.get(key)
        if cmd.verb in ("add", "create"):
            if t is not None:
                if cmd.verb == "create":
                    raise _Refused(EEXIST)
                return
            self.table_handles += 1
            self.tables[key] = NftTable(cmd.family, cmd.table, comment=cmd.spec.get("comment"),
                                        flags=tuple(cmd.spec.get("flags", ())),
                                        handle=self.table_handles)
            self._own_tables.add(key)
        elif cmd.verb in ("delete", "destroy"):
            if t is None:
                if cmd.verb == "destroy":
                    return
                raise _Refused(ENOENT)
            del self.tables[key]
            self._own_tables.discard(key)
        elif cmd.verb == "flush":
            if t is None:
                raise _Refused(ENOENT)
            t = self._table(cmd)
            for name in list(t.chains):
                c = self._chain(t, name)
                c.rules = []
        else:
            raise _Refused(f"syntax error: {cmd.verb} table")

    def _chain_cmd(self, cmd: NftCommand) -> None:
        t = self._table(cmd)
        spec = cmd.spec
        c = t.chains.get(cmd.name)
        if cmd.verb in ("add", "create"):
            if c is not None:
                if cmd.verb == "create":
                    raise _Refused(EEXIST)
                if "hook" in spec or "type" in spec:
                    if not c.is_base or spec.get("hook") != c.hook or spec.get("type") != c.type:
                        raise _Refused(EEXIST)
                    if spec.get("priority") != c.priority:
                        raise _Refused(EOPNOTSUPP)
                if "policy" in spec:
                    if not c.is_base:
                        raise _Refused(EOPNOTSUPP)
                    c = self._chain(t, cmd.name)
                    c.policy = spec["policy"]
                return
            if "policy" in spec and "hook" not in spec:
                raise _Refused("policy is only valid on base chains")
            c = NftChain(cmd.name, type=spec.get("type"), hook=spec.get("hook"),
                         priority=spec.get("priority"),
                         policy=spec.get("policy", "accept" if "hook" in spec else None),
                         comment=spec.get("comment"), handle=self._handle(t))
            t.chains[cmd.name] = c
            self._own.add(id(c))
        elif cmd.verb in ("delete", "destroy"):
            if c is None:
                if cmd.verb == "destroy":
                    return
                raise _Refused(ENOENT)
            if t.chain_users(cmd.name):
                raise _Refused(EBUSY)
            del t.chains[cmd.name]
        elif cmd.verb == "flush":
            if c is None:
                raise _Refused(ENOENT)
            self._chain(t, cmd.name).rules = []
        else:
            raise _Refused(f"syntax error: {cmd.verb} chain")

    def _set_cmd(self, cmd: NftCommand) -> None:
        t = self._table(cmd)
        spec = cmd.spec
        s = t.sets.get(cmd.name)
        if cmd.verb in ("add", "create"):
            if not spec.get("key_types"):
                if s is None:
                    raise _Refused(f"{cmd.kind} {cmd.name} needs a type")
            if s is not None:
                if cmd.verb == "create":
                    raise _Refused(EEXIST)
                if spec.get("key_types") and (
                        tuple(spec["key_types"]) != s.key_types
                        or spec.get("value_type") != s.value_type
                        or set(spec.get("flags", ())) != set(s.flags)
                        and set(spec.get("flags", ())) - {"timeout"} != set(s.flags) - {"timeout"}):
                    raise _Refused(EEXIST)
                if (cmd.kind == "map") != (s.value_type is not None):
                    raise _Refused(EEXIST)
            else:
                flags = tuple(spec.get("flags", ()))
                if spec.get("timeout") and "timeout" not in flags:
                    flags += ("timeout",)
                s = NftSet(cmd.name, tuple(spec["key_types"]), spec.get("value_type"),
                           flags=flags, timeout=spec.get("timeout"), size=spec.get("size"),
                           comment=spec.get("comment"), handle=self._handle(t),
                           typeof=spec.get("typeof"), policy=spec.get("policy"),
                           gc_interval=spec.get("gc_interval"))
                if cmd.kind == "map" and s.value_type is None:
                    raise _Refused("map needs 'type KEY : VALUE'")
                t.sets[cmd.name] = s
                self._own.add(id(s))
            if spec.get("elements"):
                self._add_elements(t, cmd.name, spec["elements"], create=False)
        elif cmd.verb in ("delete", "destroy"):
            if s is None:
                if cmd.verb == "destroy":
                    return
                raise _Refused(ENOENT)
            if t.set_users(cmd.name):
                raise _Refused(EBUSY)
            del t.sets[cmd.name]
        elif cmd.verb == "flush":
            if s is None:
                raise _Refused(ENOENT)
            self._set(t, cmd.name).elements = {}
        else:
            raise _Refused(f"syntax error: {cmd.verb} {cmd.kind}")

    def _element_cmd(self, cmd: NftCommand) -> None:
        t = self._table(cmd)
        if cmd.verb in ("add", "create"):
            self._add_elements(t, cmd.name, cmd.spec["elements"], create=cmd.verb == "create")
        elif cmd.verb in ("delete", "destroy"):
            s = self._set(t, cmd.name)
            for spec in cmd.spec["elements"]:
                key = _norm_key(s, spec)
                if key not in s.elements:
                    if cmd.verb == "destroy":
                        continue
                    raise _Refused(ENOENT)
                del s.elements[key]
        else:
            raise _Refused(f"syntax error: {cmd.verb} element")

    def _add_elements(self, t: NftTable, name: str, specs: list[ElementSpec], create: bool) -> None:
        s = self._set(t, name)
        for spec in specs:
            key = _norm_key(s, spec)
            if s.value_type is None and spec.value is not None:
                raise _Refused("set is not a map")
            if s.value_type is not None and spec.value is None:
                raise _Refused(EINVAL)
            value = " ".join(spec.value.split()) if spec.value is not None else None
            if value is not None and s.value_type != "verdict":
                value = normalize_value(value, s.value_type)
            if value is not None and s.value_type == "verdict":
                for target in chain_refs(value):
                    if target not in t.chains:
                        raise _Refused(ENOENT)
            old = s.elements.get(key)
            if old is not None:
                if create or (old.value != value):
                    raise _Refused(EEXIST)
                continue
            s.elements[key] = NftElement(key, value, spec.comment, spec.timeout)

    def _rule_cmd(self, cmd: NftCommand) -> None:
        t = self._table(cmd)
        if cmd.name not in t.chains:
            raise _Refused(ENOENT)
        spec = cmd.spec
        if cmd.verb in ("delete", "destroy"):
            c = self._chain(t, cmd.name)
            for k, r in enumerate(c.rules):
                if r.handle == spec["handle"]:
                    del c.rules[k]
                    return
            if cmd.verb == "destroy":
                return
            raise _Refused(ENOENT)
        text = spec["text"]
        for target in chain_refs(text):
            if target not in t.chains:
                raise _Refused(ENOENT)
        for ref in set_refs(text):
            if ref not in t.sets:
                raise _Refused("No such file or directory")
        for ref in dynset_refs(text):
            s = t.sets[ref]
            if s.size is None:
                self._set(t, ref).size = DYNSET_SIZE
        c = self._chain(t, cmd.name)
        if cmd.verb == "replace":
            for k, r in enumerate(c.rules):
                if r.handle == spec.get("handle"):
                    for _ in range(_anonymous_sets(text)):
                        self._handle(t)
                    c.rules[k] = NftRule(text, spec.get("comment"), r.handle)   # handle kept
                    return
            raise _Refused(ENOENT)
        for _ in range(_anonymous_sets(text)):
            self._handle(t)           # the kernel numbers the rule's anonymous sets first
        rule = NftRule(text, spec.get("comment"), self._handle(t))
        pos = len(c.rules) if cmd.verb in ("add", "create") else 0
        if "handle" in spec:
            idx = next((k for k, r in enumerate(c.rules) if r.handle == spec["handle"]), None)
            if idx is None:
                raise _Refused(ENOENT)
            pos = idx + 1 if cmd.verb == "add" else idx
        elif "index" in spec:
            if spec["index"] >= len(c.rules):
                raise _Refused(ENOENT)
            pos = spec["index"] + 1 if cmd.verb == "add" else spec["index"]
        c.rules.insert(pos, rule)


def _anonymous_sets(text: str) -> int:
    """Anonymous sets/maps nft creates for a rule (one-element sets are folded, not created)."""
    if "{" not in text:
        return 0
    listed = normalize_rule(text)
    return listed.count("{ ") - len(dynset_refs(listed))


def _norm_key(s: NftSet, spec: ElementSpec) -> tuple[str, ...]:
    if s.typeof is None and len(spec.key) != len(s.key_types):
        raise _Refused(f"element {' . '.join(spec.key)} does not match type {' . '.join(s.key_types)}")
    try:
        return tuple(normalize_value(k, s.key_types[i] if i < len(s.key_types) else None)
                     for i, k in enumerate(spec.key))
    except ValueError as e:
        raise _Refused(f"Could not parse {' . '.join(spec.key)}: {e}") from None


# ---------------------------------------------------------------------------------------------
# nft list output -> objects
def _table_from_listing(family: str, name: str, body: list[tuple[int, str]]) -> NftTable:
    t = NftTable(family, name)
    i = 0
    while i < len(body):
        lineno, raw = body[i]
        s = _strip_hash_comment(raw).strip()
        i += 1
        if not s:
            continue
        words = s.split()
        if words[0] == "comment":
            t.comment = _unquote_all(s[len("comment"):].strip())
            continue
        if words[0] == "flags":
            t.flags = tuple(words[1].split(","))
            continue
        if words[0] in ("set", "map", "chain") and s.endswith("{"):
            obj_name = s[len(words[0]):-1].strip()
            obj_handle = _handle_of(raw)
            inner: list[tuple[int, str]] = []
            depth = 1
            while i < len(body):
                ln, line = body[i]
                i += 1
                st = _strip_hash_comment(line).strip()
                d = sum((tok.text == "{") - (tok.text == "}") for tok in tokenize(st))
                depth += d
                if depth == 0:
                    break
                inner.append((ln, st, _handle_of(line)))
            if words[0] == "chain":
                obj = _chain_from_listing(obj_name, inner, t)
                t.chains[obj_name] = obj
            else:
                obj = _set_from_listing(obj_name, inner, words[0], t)
                t.sets[obj_name] = obj
            if obj_handle is not None:
                obj.handle = obj_handle
                t.handle_seq = max(t.handle_seq, obj_handle)
            continue
        if words[0] in ("flowtable", "counter", "quota", "ct", "limit", "secmark", "synproxy"):
            raise ValueError(f"line {lineno}: table {family} {name}: {words[0]} objects are not "
                             f"modelled; only sets, maps and chains")
        raise ValueError(f"line {lineno}: table {family} {name}: unexpected {s[:60]!r}")
    return t


def _handle_of(line: str) -> int | None:
    m = re.search(r"#\s*handle\s+(\d+)\s*$", line)
    return int(m.group(1)) if m else None


def _unquote_all(s: str) -> str:
    s = s.strip()
    return s[1:-1].replace('\\"', '"') if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _set_from_listing(name: str, inner: list[tuple[int, str]], kind: str, t: NftTable) -> NftSet:
    stmts: list[str] = []
    depth = 0
    for _, line, _h in inner:
        if depth > 0:
            stmts[-1] += " " + line
        else:
            stmts.append(line)
        depth += sum((tok.text == "{") - (tok.text == "}") for tok in tokenize(line))
    text = " ; ".join(stmts)
    try:
        spec = _parse_object_spec(kind, tokenize(text), text)
    except ValueError as e:
        raise ValueError(f"line {inner[0][0] if inner else 0}: {kind} {name}: {e}") from None
    t.handle_seq += 1
    flags = tuple(spec.get("flags", ()))
    if spec.get("timeout") and "timeout" not in flags:
        flags += ("timeout",)
    s = NftSet(name, tuple(spec.get("key_types", ())), spec.get("value_type"), flags=flags,
               timeout=spec.get("timeout"), size=spec.get("size"), comment=spec.get("comment"),
               handle=t.handle_seq, typeof=spec.get("typeof"), policy=spec.get("policy"),
               gc_interval=spec.get("gc_interval"))
    for e in spec.get("elements", ()):
        key = tuple(normalize_value(k, s.key_types[i] if i < len(s.key_types) else None)
                    for i, k in enumerate(e.key))
        value = " ".join(e.value.split()) if e.value is not None else None
        s.elements[key] = NftElement(key, value, e.comment, e.timeout, e.expires)
    return s


def _chain_from_listing(name: str, inner: list[tuple[int, str]], t: NftTable) -> NftChain:
    t.handle_seq += 1
    c = NftChain(name, handle=t.handle_seq)
    for ln, s, handle in inner:
        if not s:
            continue
        if s.startswith("comment ") and not c.rules and c.type is None:
            c.comment = _unquote_all(s[len("comment "):])
            continue
        if s.startswith("type ") and " hook " in s and not c.rules:
            spec = _parse_object_spec("chain", tokenize(s), s)
            c.type, c.hook, c.priority = spec["type"], spec["hook"], spec["priority"]
            c.policy = spec.get("policy", "accept")
            continue
        text, comment = split_rule_comment(s)
        if handle is None:
            t.handle_seq += 1
            handle = t.handle_seq
        t.handle_seq = max(t.handle_seq, handle)
        c.rules.append(NftRule(text, comment, handle, from_listing=True))
    return c


__all__ = ["NftState", "NftTable", "NftChain", "NftSet", "NftRule", "NftElement"]
