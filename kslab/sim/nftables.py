"""An interpreter of kube-proxy's nftables ruleset (``table ip kube-proxy``), run the way the
kernel's nf_tables runs it.

The table's structure (chains, sets, maps, elements) comes from :class:`kslab.nft.NftState`
(``nft -f`` transactions applied atomically, or ``nft list`` output parsed); each rule's TEXT is
parsed here into expressions and compiled once into Python closures. :meth:`NftNetfilter.run_hook`
has the contract of :meth:`kslab.sim.netfilter.Netfilter.run_hook` (a
:class:`~kslab.sim.packet.HookResult`, the same trace steps), so the simulated
:class:`~kslab.sim.network.Network` runs a node in nftables mode exactly as it runs one in
iptables mode.

Kernel semantics kept (``nft_do_chain`` and the nat hooks):

- every base chain registered at a hook runs, in priority order (kube-proxy's: prerouting
  filter -110 then nat -100; input filter 0; forward filter 0; output filter -110, nat -100,
  filter 0; postrouting nat 100); ``accept`` ends only its own base chain, ``drop`` and
  ``reject`` end the hook;
- nat chains see only a connection's first packet (``ctx.ct_state == "NEW"``), as iptables'
  nat table; ``dnat to`` rewrites the packet at once (later chains and routing see the new
  destination) and, like ``masquerade``, ends its base chain with accept; ``masquerade`` is
  recorded in :attr:`HookResult.nat` (the caller picks the address after routing);
- ``jump`` pushes a return point, ``goto`` does not; ``return`` (or the end of a chain) pops
  one, and with none left the base chain's policy applies;
- ``reject`` is ``reject with icmp type port-unreachable`` (what nft's bare ``reject`` means
  for IPv4): the client sees "connection refused";
- verdict maps (``vmap @service-ips``, ``numgen random mod N vmap { 0 : goto …, … }``) are one
  hash lookup: however many Services the map holds, the lookup is ONE rule evaluated — the
  flat cost that is nftables mode's point (:attr:`HookResult.rules_evaluated`);
- ``numgen random mod N`` draws through the namespace's seeded RNG
  (:meth:`~kslab.sim.packet.NamespaceState.numgen`, the kernel's ``reciprocal_scale`` of a
  32-bit random number), so runs repeat and the flow memo can record and replay the draw;
- ``update @affinity-… { ip saddr }`` adds (or re-arms) the client address in a dynamic set
  with the set's timeout on the simulated clock; the elements live in the namespace
  (:attr:`~kslab.sim.packet.NamespaceState.nft_sets`) and survive later syncs as long as the
  set exists, as the kernel's do (and as xt_recent lists do in iptables mode);
- statements run left to right and a rule stops at the first expression that does not match,
  so ``mark set`` and ``update`` have their effects exactly when the kernel's would.

The rule language understood is kube-proxy's subset, in both spellings: the transaction text
kube-proxy writes (``mark set mark or 0x4000``, ``ip daddr { 172.30.0.0/16 } drop``) and what
``nft list`` prints back (``meta mark set meta mark | 0x00004000``, ``ip daddr 172.30.0.0/16
drop``). Anything else raises :class:`~kslab.errors.InputError` naming the rule: when a packet
first reaches it by default (a real node's listing may hold rules the packet never meets), at
load with ``strict=True``.

Loading is cheap at any size: a chain's rules are parsed when a packet first enters the chain
(a 10,000-Service table holds 220,000 rules, a connection meets a dozen chains), and a reload
(``from_state(previous=...)``, every kube-proxy sync) reuses the rules and sets it already
compiled. ``strict=True`` compiles everything at once and refuses jump loops as the kernel does
at load; otherwise a loop is refused when a packet runs into it.
"""

from __future__ import annotations

import gc
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InputError
from .netfilter import _IP, _addr_type, apply_nat, jiffies, split_host_port, RECENT_HZ
from .packet import HookContext, HookResult, NatAction, Packet, TraceStep

HOOKS = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
         "postrouting": "POSTROUTING"}
"""nft hook names -> the simulator's hook names."""

NAMED_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
"""What nft's named priorities stand for in the ip family (``dstnat - 10`` = -110)."""

KUBE_PROXY_TABLE = ("ip", "kube-proxy")
TRANSPORT = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})  # protocols with a th dport
PROTO_NUMBERS = {"6": "tcp", "17": "udp", "132": "sctp", "1": "icmp", "136": "udplite", "33": "dccp"}
CT_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
JUMP_STACK = 16  # NFT_JUMP_STACK_SIZE: jumps deeper than this are refused at load (ELOOP)
MAX_CHAIN_ENTRIES = 10_000  # a walk entering chains more often than this is looping (gotos push nothing)
REJECT_DEFAULT = "icmp-port-unreachable"  # nft's bare `reject` in the ip family (iptables' name for it)
REJECT_DEFAULT6 = "icmp6-port-unreachable"  # ... and in the ip6 family (ip6tables' name for it)
_REJECT_PREFIX = {"icmp": "icmp-", "icmpv6": "icmp6-"}  # `reject with icmpv6 type X` is ip6tables' icmp6-X

# what a compiled rule ends with (its verdict statement); V_NONE: the rule falls through to the next
V_NONE, V_ACCEPT, V_DROP, V_REJECT, V_RETURN, V_CONTINUE, V_JUMP, V_GOTO, V_DNAT, V_MASQ, V_SNAT, V_VMAP = range(12)
_VERDICT_WORDS = {"accept": V_ACCEPT, "drop": V_DROP, "return": V_RETURN, "continue": V_CONTINUE}


class _Unsupported(Exception):
    """An expression or statement the interpreter cannot execute (message: what it is)."""


# --------------------------------------------------------------------------------------------
# Tokens


_TOKEN = re.compile(r'"[^"]*"|[{},;]|[^\s{},;"]+|"')


def tokenize(text: str) -> list[str]:
    """Words of a rule: quoted strings stay whole (quotes kept), ``{ } ,`` stand alone."""
    out = _TOKEN.findall(text)
    if '"' in out:
        raise _Unsupported(f"an unterminated string in {text!r}")
    return out


# --------------------------------------------------------------------------------------------
# Values: each selector has a kind that says how its literals parse and compare


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise _Unsupported(f"{text!r} is not a number") from None


def _addr(text: str) -> int:
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        a, b, c, d = (int(p) for p in parts)
        if a < 256 and b < 256 and c < 256 and d < 256:
            return (a << 24) | (b << 16) | (c << 8) | d
    raise _Unsupported(f"{text!r} is not an IPv4 address")


def _addr6(text: str) -> int:
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        raise _Unsupported(f"{text!r} is not an IPv6 address") from None


_ADDR_KINDS = {"addr": (_addr, 32, "IPv4"), "addr6": (_addr6, 128, "IPv6")}  # kind -> (parse, bits, name)


@dataclass(frozen=True)
class _Lit:
    """One literal of a selector's kind: an exact value, or a range ``lo..hi`` (CIDR or a-b)."""

    exact: Any = None
    lo: int = 0
    hi: int = -1

    @property
    def is_exact(self) -> bool:
        return self.hi < self.lo

    def matches(self, v: Any) -> bool:
        return v == self.exact if self.hi < self.lo else (isinstance(v, int) and self.lo <= v <= self.hi)


def _literal(kind: str, text: str) -> _Lit:
    """``text`` as a literal of ``kind``: addr (IP, CIDR, a-b), int (number, a-b), proto,
    ctstate, fibtype, iface (a quoted or bare name; ``*`` suffix is a prefix match)."""
    if kind in _ADDR_KINDS:  # addr: IPv4 (table ip), addr6: IPv6 (table ip6)
        parse, bits, name = _ADDR_KINDS[kind]
        if "/" in text:
            addr, _, plen = text.partition("/")
            if not plen.isdigit() or int(plen) > bits:
                raise _Unsupported(f"{text!r} is not an {name} prefix")
            host = (1 << (bits - int(plen))) - 1
            lo = parse(addr) & ~host & ((1 << bits) - 1)
            return _Lit(lo=lo, hi=lo | host)
        if "-" in text:
            a, _, b = text.partition("-")
            return _Lit(lo=parse(a), hi=parse(b))
        return _Lit(parse(text))
    if kind == "int":
        if "-" in text[1:]:
            a, _, b = text.partition("-")
            return _Lit(lo=_int(a), hi=_int(b))
        return _Lit(_int(text))
    if kind == "proto":
        return _Lit(PROTO_NUMBERS.get(text, text))
    if kind == "ctstate":
        if text not in CT_STATES:
            raise _Unsupported(f"ct state {text}")
        return _Lit(text.upper())
    if kind == "fibtype":
        return _Lit(text.upper())
    if kind == "iface":
        return _Lit(text.strip('"'))
    raise _Unsupported(f"a literal of {kind}")


KEY_KINDS = {"ipv4_addr": "addr", "ipv6_addr": "addr6", "inet_proto": "proto", "inet_service": "int", "mark": "int", "ifname": "iface",
             "ct_state": "ctstate"}
"""nft data types of set keys -> selector kinds."""

Getter = Callable[[Packet, HookContext], Any]  # a selector's value for the packet, None if it has none


@dataclass
class _Selector:
    text: str
    kind: str
    get: Getter
    random: bool = False  # numgen: the value is drawn (once per evaluation)


def _selector(tokens: list[str], i: int) -> tuple[_Selector, int] | None:
    """The selector starting at ``tokens[i]`` (None if none does): (selector, next index)."""
    t = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if t in ("ip", "ip6") and nxt in ("saddr", "daddr"):
        attr = "src" if nxt == "saddr" else "dst"
        return _Selector(f"{t} {nxt}", "addr" if t == "ip" else "addr6", lambda p, c, a=attr: _IP[getattr(p, a)]), i + 2
    if t == "meta" and nxt in ("l4proto", "protocol"):
        return _Selector(f"meta {nxt}", "proto", lambda p, c: p.proto), i + 2
    if t == "meta" and nxt == "mark" or t == "mark":
        return _Selector("meta mark", "int", lambda p, c: p.mark), i + (2 if t == "meta" else 1)
    if t == "meta" and nxt in ("iifname", "oifname") or t in ("iifname", "oifname"):
        name = nxt if t == "meta" else t
        attr = "in_iface" if name == "iifname" else "out_iface"
        return _Selector(name, "iface", lambda p, c, a=attr: getattr(p, a)), i + (2 if t == "meta" else 1)
    if t in ("th", "tcp", "udp", "sctp") and nxt in ("dport", "sport"):
        attr = nxt

        if t == "th":
            def get(p: Packet, c: HookContext, a: str = attr) -> Any:
                return getattr(p, a) if p.proto in TRANSPORT else None
        else:
            def get(p: Packet, c: HookContext, a: str = attr, proto: str = t) -> Any:
                return getattr(p, a) if p.proto == proto else None
        return _Selector(f"{t} {nxt}", "int", get), i + 2
    if t == "ct" and nxt == "state":
        return _Selector("ct state", "ctstate", lambda p, c: c.ct_state), i + 2
    if t == "fib" and nxt in ("saddr", "daddr"):
        j = i + 2
        dev = ""
        if j + 1 < len(tokens) and tokens[j] == "." and tokens[j + 1] in ("iif", "oif"):
            dev = "in_iface" if tokens[j + 1] == "iif" else "out_iface"
            j += 2
        if j >= len(tokens) or tokens[j] != "type":
            raise _Unsupported(f"fib {nxt} without type")
        attr = "src" if nxt == "saddr" else "dst"
        return _Selector(f"fib {nxt} type", "fibtype",
                         lambda p, c, a=attr, d=dev: _addr_type(getattr(p, a), c, getattr(p, d) if d else "")), j + 1
    if t == "numgen":
        if nxt != "random":
            raise _Unsupported(f"numgen {nxt} (only numgen random)")
        if i + 3 >= len(tokens) or tokens[i + 2] != "mod":
            raise _Unsupported("numgen random without mod N")
        modulus = _int(tokens[i + 3])
        j = i + 4
        offset = 0
        if j + 1 < len(tokens) and tokens[j] == "offset":
            offset = _int(tokens[j + 1])
            j += 2
        if modulus <= 0:
            raise _Unsupported("numgen random mod 0")

        def draw(p: Packet, c: HookContext, m: int = modulus, o: int = offset) -> Any:
            return c.state.numgen(m) + o
        return _Selector(f"numgen random mod {modulus}", "int", draw, random=True), j
    return None


def _concat(tokens: list[str], i: int) -> tuple[list[_Selector], int] | None:
    """A selector or a concatenation ``a . b . c`` of them starting at ``tokens[i]``."""
    first = _selector(tokens, i)
    if first is None:
        return None
    parts, j = [first[0]], first[1]
    while j < len(tokens) and tokens[j] == ".":
        nxt = _selector(tokens, j + 1)
        if nxt is None:
            raise _Unsupported(f"a concatenation with {tokens[j + 1] if j + 1 < len(tokens) else 'nothing'}")
        parts.append(nxt[0])
        j = nxt[1]
    return parts, j


def _key_getter(parts: list[_Selector]) -> Getter:
    """The packet's key for a lookup: the value, or a tuple of them for a concatenation (None if any is missing)."""
    if len(parts) == 1:
        return parts[0].get
    gets = tuple(s.get for s in parts)

    def key(p: Packet, c: HookContext) -> Any:
        values = []
        for g in gets:
            v = g(p, c)
            if v is None:
                return None
            values.append(v)
        return tuple(values)

    return key


# --------------------------------------------------------------------------------------------
# Sets and maps


@dataclass(frozen=True)
class Verdict:
    """A verdict: in a rule, a vmap element or a base chain's policy."""

    code: int  # V_ACCEPT, V_DROP, V_REJECT, V_RETURN, V_CONTINUE, V_JUMP, V_GOTO
    chain: str = ""
    reject_with: str = ""

    @property
    def text(self) -> str:
        if self.code in (V_JUMP, V_GOTO):
            return f"{'jump' if self.code == V_JUMP else 'goto'} {self.chain}"
        return {V_ACCEPT: "accept", V_DROP: "drop", V_REJECT: "reject", V_RETURN: "return", V_CONTINUE: "continue"}[self.code]


def _parse_verdict(tokens: list[str], i: int) -> tuple[Verdict, int] | None:
    t = tokens[i]
    if t in _VERDICT_WORDS:
        return Verdict(_VERDICT_WORDS[t]), i + 1
    if t in ("jump", "goto"):
        if i + 1 >= len(tokens):
            raise _Unsupported(f"{t} without a chain")
        return Verdict(V_JUMP if t == "jump" else V_GOTO, tokens[i + 1].strip('"')), i + 2
    if t == "reject":
        j = i + 1
        with_ = REJECT_DEFAULT
        if j < len(tokens) and tokens[j] == "with":
            words = tokens[j + 1:j + 4]
            if words[:1] == ["tcp"] and words[1:2] == ["reset"]:
                with_, j = "tcp-reset", j + 3
            elif words[:2] in (["icmp", "type"], ["icmpv6", "type"]) and len(words) == 3:
                with_, j = f"{_REJECT_PREFIX[words[0]]}{words[2]}", j + 4
            elif words[:1] in (["icmp"], ["icmpv6"]) and len(words) >= 2:
                with_, j = f"{_REJECT_PREFIX[words[0]]}{words[1]}", j + 3
            else:
                raise _Unsupported(f"reject with {' '.join(words)}")
        return Verdict(V_REJECT, reject_with=with_), j
    return None


def verdict_of(text: str) -> Verdict:
    """A verdict written as text (``goto service-…``, ``drop``): a map element's value."""
    tokens = tokenize(text)
    got = _parse_verdict(tokens, 0) if tokens else None
    if got is None or got[1] != len(tokens):
        raise _Unsupported(f"the verdict {text!r}")
    return got[0]


class CompiledSet:
    """A named set or map, compiled for lookups: exact keys in a dict, ranges (CIDRs, a-b) scanned.

    ``dynamic`` sets (``flags dynamic,timeout``) also hold what ``update``/``add`` statements put
    there at run time: those elements live in the namespace (``ctx.state.nft_sets[name]``:
    key -> expiry on the simulated clock), so a reload of the table keeps them."""

    def __init__(self, name: str, kinds: Sequence[str], *, is_map: bool, timeout: float | None = None,
                 dynamic: bool = False) -> None:
        self.name = name
        self.kinds = tuple(kinds)
        self.is_map = is_map
        self.timeout = timeout
        self.dynamic = dynamic
        self.exact: dict[Any, tuple[Any, str]] = {}  # key -> (value, element text)
        self.ranges: list[tuple[tuple[_Lit, ...], Any, str]] = []

    def add(self, key: Sequence[str], value: Any, text: str) -> None:
        if len(key) != len(self.kinds):
            raise _Unsupported(f"element {text!r} of @{self.name}: {len(key)} key parts for {len(self.kinds)}")
        lits = tuple(_literal(k, part) for k, part in zip(self.kinds, key))
        if all(lit.is_exact for lit in lits):
            exact = lits[0].exact if len(lits) == 1 else tuple(lit.exact for lit in lits)
            self.exact[exact] = (value, text)
        else:
            self.ranges.append((lits, value, text))

    def __len__(self) -> int:
        return len(self.exact) + len(self.ranges)

    def lookup(self, key: Any, ctx: HookContext) -> tuple[Any, str] | None:
        """(value, element text) of the element ``key`` falls in, None if none."""
        if key is None:
            return None
        hit = self.exact.get(key)
        if hit is not None:
            return hit
        if self.ranges:
            parts = key if len(self.kinds) > 1 else (key,)
            for lits, value, text in self.ranges:
                if all(lit.matches(v) for lit, v in zip(lits, parts)):
                    return value, text
        if self.dynamic:
            ctx.state.stateful = True
            live = ctx.state.nft_sets.get(self.name)
            if live is not None:
                expires = live.get(key)
                if expires is not None:
                    if expires is _NEVER or jiffies(ctx.now) < expires:
                        return None, _key_text(key, self.kinds)
                    del live[key]  # expired: the kernel's gc would have removed it
        return None


_NEVER: Any = float("inf")


def _key_text(key: Any, kinds: Sequence[str]) -> str:
    """A lookup key as nft prints it: ``172.30.0.41 . tcp . 80``."""
    parts = key if len(kinds) > 1 else (key,)
    return " . ".join(str(ipaddress.IPv4Address(v)) if k == "addr" else str(ipaddress.IPv6Address(v)) if k == "addr6"
                      else str(v).lower() for v, k in zip(parts, kinds))


def _anonymous(tokens: list[str], i: int, kinds: Sequence[str], *, verdicts: bool) -> tuple[CompiledSet, int]:
    """An anonymous set ``{ a, b }`` or vmap ``{ k : verdict, … }`` starting at ``tokens[i] == "{"``."""
    s = CompiledSet("", kinds, is_map=verdicts)
    j = i + 1
    current: list[str] = []

    def flush() -> None:
        if not current:
            return
        text = " ".join(current)
        if verdicts:
            if ":" not in current:
                raise _Unsupported(f"vmap element {text!r} without ': verdict'")
            k = current.index(":")
            key, value = current[:k], verdict_of(" ".join(current[k + 1:]))
        else:
            key, value = current, None
        s.add([w for w in key if w != "."], value, text)
        current.clear()

    while j < len(tokens) and tokens[j] != "}":
        if tokens[j] == ",":
            flush()
        else:
            current.append(tokens[j])
        j += 1
    if j >= len(tokens):
        raise _Unsupported("an anonymous set without its closing }")
    flush()
    return s, j + 1


# --------------------------------------------------------------------------------------------
# Rules


@dataclass
class _Stmt:
    """One step of a rule: a test (False: the rule stops), or an effect that returns nothing."""

    kind: str  # "test", "effect"
    run: Callable[[Packet, HookContext, dict], Any]
    text: str = ""


@dataclass(eq=False)
class CompiledRule:
    source: str  # the rule as given (kube-proxy's text, or nft list's)
    number: int  # 1-based position in its chain
    stmts: list[_Stmt] = field(default_factory=list)
    verdict: int = V_NONE
    target: Verdict | None = None  # V_ACCEPT..V_GOTO: the verdict
    vmap: tuple[Getter, CompiledSet, str] | None = None  # V_VMAP: (key, map, selector text)
    nat: NatAction | None = None  # V_DNAT/V_MASQ/V_SNAT
    error: InputError | None = None  # set: the rule cannot run (raised when a packet reaches it)
    comment: str = ""
    listed: Callable[[], str] | None = None  # the text traces show (nft list's form), made when first asked
    _text: str = ""

    @property
    def text(self) -> str:
        """The rule as ``nft list`` prints it (computed when a trace first shows it)."""
        if not self._text:
            self._text = self.listed() if self.listed is not None else self.source
        return self._text


@dataclass(eq=False)
class CompiledChain:
    name: str
    rules: list[CompiledRule] = field(default_factory=list)
    type: str = ""  # filter, nat, route (base chains)
    hook: str = ""  # PREROUTING ... ("" for a regular chain)
    priority: int = 0
    policy: str = "accept"
    order: int = 0  # creation order: ties in priority run in registration order
    pending: list[RuleSpec | str] | None = None  # rules not compiled yet (compiled when a packet first enters)

    @property
    def is_base(self) -> bool:
        return bool(self.hook)


class _RuleCompiler:
    """Parses one rule's text against a table's named sets."""

    def __init__(self, sets: Mapping[str, CompiledSet]) -> None:
        self.sets = sets

    def compile(self, text: str, number: int) -> CompiledRule:
        cr = CompiledRule(text, number)
        tokens = tokenize(text)
        i, n = 0, len(tokens)
        while i < n:
            t = tokens[i]
            if cr.verdict != V_NONE:
                if t == "comment" and i + 1 < n:
                    cr.comment = tokens[i + 1].strip('"')
                    i += 2
                    continue
                raise _Unsupported(f"{' '.join(tokens[i:])!r} after the verdict")
            if t == "comment":
                if i + 1 >= n:
                    raise _Unsupported("comment without text")
                cr.comment = tokens[i + 1].strip('"')
                i += 2
                continue
            if t == "counter":
                i += 1
                while i + 1 < n and tokens[i] in ("packets", "bytes"):
                    i += 2
                continue
            if t == "log":
                i += 1
                while i + 1 < n and tokens[i] in ("prefix", "level", "group", "flags", "snaplen"):
                    i += 2
                continue
            if t == "meta" and i + 1 < n and tokens[i + 1] == "nftrace":
                if tokens[i + 2:i + 3] != ["set"]:
                    raise _Unsupported("meta nftrace without set")
                i += 4
                continue
            v = _parse_verdict(tokens, i)
            if v is not None:
                cr.target, i = v
                cr.verdict = cr.target.code
                continue
            if t in ("dnat", "snat"):
                i = self._nat(cr, tokens, i)
                continue
            if t == "masquerade":
                i += 1
                flags: set[str] = set()
                while i < n and tokens[i] in ("fully-random", "random", "persistent", ","):
                    flags.add(tokens[i])
                    i += 1
                cr.verdict, cr.nat = V_MASQ, NatAction("MASQUERADE", "", None, "fully-random" in flags)
                continue
            if t in ("update", "add") and i + 1 < n and tokens[i + 1].startswith("@"):
                i = self._update(cr, tokens, i)
                continue
            if t in ("mark", "meta") and (tokens[i + 1:i + 2] == ["set"] or tokens[i + 1:i + 3] == ["mark", "set"]):
                i = self._mark_set(cr, tokens, i)
                continue
            sel = _concat(tokens, i)
            if sel is None:
                raise _Unsupported(f"{' '.join(tokens[i:i + 3])!r}")
            parts, i = sel
            i = self._relation(cr, parts, tokens, i)
        return cr

    # ---- statements ---------------------------------------------------------------------------

    def _nat(self, cr: CompiledRule, tokens: list[str], i: int) -> int:
        kind = tokens[i].upper()
        j = i + 1
        if j < len(tokens) and tokens[j] in ("ip", "ip6"):
            j += 1
        if j >= len(tokens) or tokens[j] != "to" or j + 1 >= len(tokens):
            raise _Unsupported(f"{tokens[i]} without 'to ADDRESS'")
        spec = tokens[j + 1]
        try:
            host, port = split_host_port(spec)  # 10.0.0.1:80, [fd00::1]:80 (nft's IPv6 form), fd00::1
        except ValueError as e:
            raise _Unsupported(str(e)) from None
        if "-" in host or "-" in port:
            raise _Unsupported(f"{tokens[i]} to a range {spec} (the kernel picks one by a hash of the connection)")
        (_addr6 if ":" in host else _addr)(host)
        cr.verdict = V_DNAT if kind == "DNAT" else V_SNAT
        cr.nat = NatAction(kind, host, _int(port) if port else None)
        j += 2
        while j < len(tokens) and tokens[j] in ("fully-random", "random", "persistent", ","):
            j += 1
        return j

    def _update(self, cr: CompiledRule, tokens: list[str], i: int) -> int:
        verb, name = tokens[i], tokens[i + 1][1:]
        s = self.sets.get(name)
        if s is None:
            raise _Unsupported(f"{verb} @{name}: no such set in the table")
        if tokens[i + 2:i + 3] != ["{"]:
            raise _Unsupported(f"{verb} @{name} without {{ key }}")
        sel = _concat(tokens, i + 3)
        if sel is None:
            raise _Unsupported(f"{verb} @{name} {{ {tokens[i + 3]} … }}")
        parts, j = sel
        timeout = s.timeout
        if j + 1 < len(tokens) and tokens[j] == "timeout":
            timeout = parse_duration(tokens[j + 1])
            j += 2
        if tokens[j:j + 1] != ["}"]:
            raise _Unsupported(f"{verb} @{name} {{ … {tokens[j] if j < len(tokens) else ''}")
        key = _key_getter(parts)
        s.dynamic = True
        refresh = verb == "update"
        ticks = None if timeout is None else int(timeout * RECENT_HZ + 1e-6)

        def run(p: Packet, c: HookContext, scratch: dict) -> None:
            c.state.stateful = True
            k = key(p, c)
            if k is None:
                return
            live = c.state.nft_sets.setdefault(name, {})
            if k in live and not refresh and (live[k] is _NEVER or jiffies(c.now) < live[k]):
                return
            live[k] = _NEVER if ticks is None else jiffies(c.now) + ticks
            scratch["detail"] = f"{_key_text(k, s.kinds)} in @{name}" + ("" if timeout is None else f" for {format_duration(timeout)}")

        cr.stmts.append(_Stmt("effect", run, f"{verb} @{name}"))
        return j + 1

    def _mark_set(self, cr: CompiledRule, tokens: list[str], i: int) -> int:
        j = i + (3 if tokens[i] == "meta" else 2)  # past "meta mark set" / "mark set"
        # the value: a literal, or "[meta] mark OP literal" with OP or/| xor/^ and/&
        if j < len(tokens) and tokens[j] in ("mark", "meta"):
            j += 2 if tokens[j] == "meta" else 1
            if j + 1 >= len(tokens):
                raise _Unsupported("mark set mark without an operation")
            op, value = tokens[j], _int(tokens[j + 1])
            j += 2
            if op in ("or", "|"):
                def apply(m: int, v: int = value) -> int: return m | v
            elif op in ("xor", "^"):
                def apply(m: int, v: int = value) -> int: return m ^ v
            elif op in ("and", "&"):
                def apply(m: int, v: int = value) -> int: return m & v
            else:
                raise _Unsupported(f"mark set mark {op}")
        else:
            if j >= len(tokens):
                raise _Unsupported("mark set without a value")
            value = _int(tokens[j])
            j += 1

            def apply(m: int, v: int = value) -> int: return v

        def run(p: Packet, c: HookContext, scratch: dict) -> None:
            p.mark = apply(p.mark) & 0xFFFFFFFF
            scratch["mark"] = True

        cr.stmts.append(_Stmt("effect", run, "mark set"))
        return j

    # ---- expressions --------------------------------------------------------------------------

    def _relation(self, cr: CompiledRule, parts: list[_Selector], tokens: list[str], i: int) -> int:
        n = len(tokens)
        key = _key_getter(parts)
        text = " . ".join(s.text for s in parts)
        kinds = [s.kind for s in parts]
        t = tokens[i] if i < n else ""
        if t == "vmap":
            if i + 1 >= n:
                raise _Unsupported(f"{text} vmap without a map")
            if tokens[i + 1] == "{":
                m, j = _anonymous(tokens, i + 1, kinds, verdicts=True)
            elif tokens[i + 1].startswith("@"):
                m = self._named(tokens[i + 1][1:], kinds, want_map=True)
                j = i + 2
            else:
                raise _Unsupported(f"{text} vmap {tokens[i + 1]}")
            cr.verdict, cr.vmap = V_VMAP, (key, m, text)
            return j
        if len(parts) > 1 and t not in ("@",) and not t.startswith("@") and t != "{" and t not in ("!=", "=="):
            raise _Unsupported(f"a concatenation {text} compared with {t!r}")
        # a bitwise and before the comparison: "mark and 0x4000 == 0", "meta mark & 0x00004000 == 0x00000000"
        mask = None
        if t in ("and", "&"):
            if i + 1 >= n:
                raise _Unsupported(f"{text} and without a mask")
            mask = _int(tokens[i + 1])
            i += 2
            t = tokens[i] if i < n else ""
        negated = False
        if t in ("!=", "ne"):
            negated, i = True, i + 1
        elif t in ("==", "eq"):
            i += 1
        if i >= n:
            raise _Unsupported(f"{text} without a value")
        rhs = tokens[i]
        if mask is not None:
            base = key
            key = lambda p, c, b=base, m=mask: (lambda v: None if v is None else v & m)(b(p, c))  # noqa: E731
        random = any(s.random for s in parts)
        if rhs.startswith("@"):
            s = self._named(rhs[1:], kinds, want_map=False)
            i += 1

            def test(p: Packet, c: HookContext, scratch: dict, k: Getter = key, s: CompiledSet = s, neg: bool = negated) -> bool:
                v = k(p, c)
                if v is None:
                    return False
                return (s.lookup(v, c) is not None) != neg
        elif rhs == "{":
            s, i = _anonymous(tokens, i, kinds, verdicts=False)

            def test(p: Packet, c: HookContext, scratch: dict, k: Getter = key, s: CompiledSet = s, neg: bool = negated) -> bool:
                v = k(p, c)
                if v is None:
                    return False
                return (s.lookup(v, c) is not None) != neg
        else:
            if len(parts) > 1:
                raise _Unsupported(f"a concatenation {text} compared with one value")
            values = [_literal(kinds[0], rhs)]
            i += 1
            while kinds[0] == "ctstate" and i + 1 < n and tokens[i] == "," and tokens[i + 1] in CT_STATES:
                values.append(_literal("ctstate", tokens[i + 1]))
                i += 2
            if len(values) == 1 and values[0].is_exact:
                want = values[0].exact

                def test(p: Packet, c: HookContext, scratch: dict, k: Getter = key, w: Any = want, neg: bool = negated) -> bool:
                    v = k(p, c)
                    return v is not None and (v == w) != neg
            else:
                lits = tuple(values)

                def test(p: Packet, c: HookContext, scratch: dict, k: Getter = key, ls: tuple = lits, neg: bool = negated) -> bool:
                    v = k(p, c)
                    return v is not None and any(lit.matches(v) for lit in ls) != neg
        if random:
            raise _Unsupported(f"{text} outside a vmap")
        cr.stmts.append(_Stmt("test", test, text))
        return i

    def _named(self, name: str, kinds: Sequence[str], *, want_map: bool) -> CompiledSet:
        s = self.sets.get(name)
        if s is None:
            raise _Unsupported(f"@{name}: no such {'map' if want_map else 'set'} in the table")
        if want_map and not s.is_map:
            raise _Unsupported(f"vmap @{name}: {name} is a set, not a verdict map")
        if len(s.kinds) != len(kinds) or any(a != b for a, b in zip(s.kinds, kinds)):
            raise _Unsupported(f"@{name} holds {' . '.join(s.kinds)} keys, the rule looks up {' . '.join(kinds)}")
        return s


def parse_duration(text: str) -> float:
    """nft's time: ``10800s``, ``3h``, ``1d2h3m4s``, ``250ms``, or plain seconds."""
    if text.isdigit():
        return float(text)
    total, num = 0.0, ""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    j = 0
    while j < len(text):
        ch = text[j]
        if ch.isdigit():
            num += ch
            j += 1
            continue
        unit = "ms" if text.startswith("ms", j) else ch
        if unit not in units or not num:
            raise _Unsupported(f"the time {text!r}")
        total += int(num) * units[unit]
        num = ""
        j += len(unit)
    if num:
        raise _Unsupported(f"the time {text!r}")
    return total


def format_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"


# --------------------------------------------------------------------------------------------
# The table, as the interpreter needs it (built from kslab.nft's NftState, or by hand in tests)


@dataclass
class RuleSpec:
    """A rule's text to compile (as written), how to get the text traces show (nft list's form;
    None: the same) and a cache key (a reload reuses the rule compiled from an equal key)."""

    text: str
    listed: Callable[[], str] | None = None
    key: Any = None  # what identifies the rule's compiled form across loads ((text, comment)); None: not cached


@dataclass
class ChainSpec:
    """A chain as the table holds it: base chains have type/hook/priority/policy."""

    name: str
    rules: list[RuleSpec | str] = field(default_factory=list)
    type: str = ""
    hook: str = ""  # nft's name (prerouting ...) or ""
    priority: int | str = 0
    policy: str = "accept"


@dataclass
class SetSpec:
    """A named set or map: key types (``ipv4_addr``, ``inet_proto``, ``inet_service`` …),
    elements as (key parts, value text or None)."""

    name: str
    key_types: tuple[str, ...]
    is_map: bool = False
    flags: tuple[str, ...] = ()
    timeout: float | None = None  # seconds
    elements: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)
    origin: object = None  # the NftSet it came from (identity lets a reload reuse the compiled set)


def priority_value(p: int | str) -> int:
    """A chain priority as a number: ``-110``, ``dstnat - 10``, ``filter``, ``srcnat + 5``."""
    if isinstance(p, int):
        return p
    words = str(p).replace("+", " + ").replace("- ", " - ").split()
    if not words:
        raise _Unsupported("an empty priority")
    try:
        value = int(words[0])
    except ValueError:
        if words[0] not in NAMED_PRIORITIES:
            raise _Unsupported(f"the priority {p!r}") from None
        value = NAMED_PRIORITIES[words[0]]
    rest = words[1:]
    while rest:
        if len(rest) < 2 or rest[0] not in "+-":
            raise _Unsupported(f"the priority {p!r}")
        value += int(rest[1]) if rest[0] == "+" else -int(rest[1])
        rest = rest[2:]
    return value


class NftNetfilter:
    """One network namespace's nftables table (``ip kube-proxy``), compiled, ready to run packets
    through. Same contract as :class:`kslab.sim.netfilter.Netfilter` for :class:`Network`."""

    table_name = "kube-proxy"

    def __init__(self, chains: Iterable[ChainSpec], sets: Iterable[SetSpec], *, name: str = "", table: str = "kube-proxy",
                 strict: bool = False, skipped: Sequence[str] = (), previous: NftNetfilter | None = None,
                 family: str = "ip") -> None:
        self.name = name
        self.family = family
        self.table_name = table
        self.tables: dict = {}  # no iptables tables (Network's xt_recent bookkeeping reads this)
        self.skipped = tuple(skipped)  # other tables of a listing, not run ("table ip nat" ...)
        known_sets = previous._set_cache if previous is not None else {}
        self._set_cache: dict[int, tuple[object, CompiledSet]] = {}
        self.sets: dict[str, CompiledSet] = {}
        for s in sets:
            hit = known_sets.get(id(s.origin)) if s.origin is not None else None
            cs = hit[1] if hit is not None and hit[0] is s.origin else self._compile_set(s, strict)
            if s.origin is not None:
                self._set_cache[id(s.origin)] = (s.origin, cs)
            self.sets[s.name] = cs
        self._known_rules = previous._rule_cache if previous is not None else {}
        self._rule_cache: dict[Any, CompiledRule] = {}
        self.chains: dict[str, CompiledChain] = {}
        specs = list(chains)
        for order, spec in enumerate(specs):
            hook = ""
            if spec.hook:
                hook = HOOKS.get(spec.hook.lower(), "")
                if not hook:
                    raise InputError(self._where(f"chain {spec.name}"), f"unknown hook {spec.hook!r}",
                                     f"hooks are {', '.join(HOOKS)}")
            try:
                prio = priority_value(spec.priority) if hook else 0
            except _Unsupported as e:
                raise InputError(self._where(f"chain {spec.name}"), str(e), "write a number or a name like dstnat - 10") from None
            self.chains[spec.name] = CompiledChain(spec.name, [], spec.type, hook, prio, (spec.policy or "accept").lower(), order)
        self._compiler = _RuleCompiler(self.sets)
        for spec in specs:
            self.chains[spec.name].pending = list(spec.rules)
        if strict:  # every rule now, and the kernel's load-time checks; else each chain when a packet first enters it
            for chain in self.chains.values():
                self._compile_chain(chain, strict=True)
            self._check_loops()
        self._plan: dict[str, list[CompiledChain]] = {h: [] for h in HOOKS.values()}
        for c in self.chains.values():
            if c.hook:
                self._plan[c.hook].append(c)
        for plan in self._plan.values():
            plan.sort(key=lambda c: (c.priority, c.order))

    # ---- loading ------------------------------------------------------------------------------

    @classmethod
    def from_state(cls, state: Any, *, name: str = "", previous: NftNetfilter | None = None, family: str = "ip",
                   table: str = "kube-proxy", strict: bool = False) -> NftNetfilter:
        """The table ``family table`` of a :class:`kslab.nft.NftState` (no chains at all if the
        state has no such table: every hook accepts). Other tables are listed in
        :attr:`skipped`. With ``previous`` (the ruleset this one replaces), a rule that is the
        same text and comment as one ``previous`` compiled and names no set is reused instead of
        compiled again; likewise an unchanged set (the very NftSet object)."""
        paused = gc.isenabled()
        gc.disable()  # tens of thousands of small objects: the cyclic collector's passes would cost more than the load
        try:
            chains, sets, skipped = specs_of(state, family, table)
            return cls(chains, sets, name=name, table=table, strict=strict, skipped=skipped, previous=previous,
                       family=family)
        finally:
            if paused:
                gc.enable()

    @classmethod
    def from_text(cls, text: str, *, name: str = "", strict: bool = False, family: str = "ip",
                  table: str = "kube-proxy", where: str | None = None) -> NftNetfilter:
        """Load kube-proxy's transaction text (``nft -f`` input, in its own order or upstream's
        test layout) or ``nft list ruleset``/``nft list table`` output."""
        state = load_text(text, where=where or f"ruleset{' of ' + name if name else ''}")
        return cls.from_state(state, name=name, family=family, table=table, strict=strict)

    def _where(self, what: str) -> str:
        return f"{self.name + ': ' if self.name else ''}table {self.table_name} {what}"

    def _compile_set(self, s: SetSpec, strict: bool) -> CompiledSet:
        kinds = []
        for t in s.key_types:
            kind = KEY_KINDS.get(t)
            if kind is None:
                raise InputError(self._where(f"set {s.name}"), f"kslab cannot look up keys of type {t}",
                                 f"the sim knows {', '.join(KEY_KINDS)}")
            kinds.append(kind)
        cs = CompiledSet(s.name, kinds, is_map=s.is_map, timeout=s.timeout,
                         dynamic="dynamic" in s.flags or "timeout" in s.flags)
        for key, value in s.elements:
            text = " . ".join(key) + (f" : {value}" if value is not None else "")
            try:
                cs.add(key, verdict_of(value) if (s.is_map and value is not None) else value, text)
            except _Unsupported as e:
                raise InputError(self._where(f"set {s.name} element {text!r}"), f"kslab cannot read it: {e}",
                                 "elements are keys of the set's types (and a verdict for a verdict map)") from None
        return cs

    def _compile_chain(self, chain: CompiledChain, strict: bool = False) -> list[CompiledRule]:
        """``chain``'s rules, compiled now if they were not yet (a 10,000-Service table has
        220,000 rules; a packet meets a dozen chains)."""
        if chain.pending is not None:
            specs, chain.pending = chain.pending, None
            chain.rules = [self._compile_rule(self._compiler, chain, text, k + 1, strict) for k, text in enumerate(specs)]
        return chain.rules

    def _compile_rule(self, compiler: _RuleCompiler, chain: CompiledChain, rule: RuleSpec | str, number: int,
                      strict: bool) -> CompiledRule:
        spec = rule if isinstance(rule, RuleSpec) else RuleSpec(rule)
        key = spec.key
        if key is not None:
            hit = self._known_rules.get(key)
            if hit is not None:
                cr = hit if hit.number == number else replace(hit, number=number)
                self._rule_cache[key] = cr
                return cr
        text = spec.text
        try:
            cr = compiler.compile(text, number)
            cr.listed = spec.listed
            if cr.target is not None and cr.target.code in (V_JUMP, V_GOTO):
                self._check_target(cr.target.chain)
            if cr.vmap is not None:
                for value, _ in list(cr.vmap[1].exact.values()) + [(v, t) for _, v, t in cr.vmap[1].ranges]:
                    if value is not None and value.code in (V_JUMP, V_GOTO):
                        self._check_target(value.chain)
            if cr.verdict in (V_DNAT, V_MASQ, V_SNAT) and chain.hook and chain.type != "nat":
                raise _Unsupported(f"{cr.nat.kind.lower()} in a {chain.type or 'regular'} chain")  # type: ignore[union-attr]
            if key is not None and "@" not in text:  # a rule naming a set is bound to this load's sets
                self._rule_cache[key] = cr
            return cr
        except _Unsupported as e:
            err = InputError(self._where(f"chain {chain.name} rule {number} {text!r}"), f"kslab cannot execute {e}",
                             "the sim runs kube-proxy's nftables expressions (see kslab.sim.nftables); trace a packet that avoids this rule")
            if strict:
                raise err from None
            return CompiledRule(text, number, error=err, listed=spec.listed)

    def _check_target(self, chain: str) -> None:
        target = self.chains.get(chain)
        if target is None:
            raise _Unsupported(f"a jump to {chain}: no such chain in the table")
        if target.hook:
            raise _Unsupported(f"a jump to the base chain {chain} (nft refuses it)")

    def _check_loops(self) -> None:
        """Refuse a jump loop, as the kernel does when the table is loaded (ELOOP)."""
        done: set[str] = set()

        def targets(c: CompiledChain) -> Iterable[str]:
            for r in c.rules:
                if r.target is not None and r.target.code in (V_JUMP, V_GOTO):
                    yield r.target.chain
                if r.vmap is not None:
                    for value, _ in r.vmap[1].exact.values():
                        if value is not None and value.code in (V_JUMP, V_GOTO):
                            yield value.chain

        def visit(c: CompiledChain, path: list[str]) -> None:
            if c.name in path:
                loop = " -> ".join(path[path.index(c.name):] + [c.name])
                raise InputError(self._where("chains"), f"jump in a loop: {loop}", "nft refuses such a ruleset (Too many levels of symbolic links)")
            if c.name in done:
                return
            for t in targets(c):
                if t in self.chains:
                    visit(self.chains[t], path + [c.name])
            done.add(c.name)

        for c in self.chains.values():
            visit(c, [])

    # ---- what Network and the tools read ----------------------------------------------------

    def rule_count(self) -> int:
        return sum(len(c.pending) if c.pending is not None else len(c.rules) for c in self.chains.values())

    def chain_rules(self, chain: str) -> list[str]:
        c = self.chains.get(chain)
        return [r.text for r in self._compile_chain(c)] if c else []

    def base_chains(self, hook: str) -> list[str]:
        """The base chains registered at ``hook`` (PREROUTING ...), in the order they run."""
        return [c.name for c in self._plan.get(hook, [])]

    def dynamic_sets(self) -> set[str]:
        return {name for name, s in self.sets.items() if s.dynamic}

    def live_elements(self, state: Any, now: float) -> dict[str, list[tuple[str, int | None]]]:
        """What the packet path put in this table's dynamic sets (``update @affinity-… { ip saddr
        }``) and is still live at ``now``: set name -> [(key as nft prints it, milliseconds left,
        None without a timeout)], as ``nft list`` shows them (``10.10.0.2 expires 2h59m58s768ms``)."""
        out: dict[str, list[tuple[str, int | None]]] = {}
        tick = jiffies(now)
        for name, live in state.nft_sets.items():
            cs = self.sets.get(name)
            if cs is None:
                continue
            rows = [(_key_text(k, cs.kinds), None if exp is _NEVER else (exp - tick) * 1000 // RECENT_HZ)
                    for k, exp in live.items() if exp is _NEVER or exp > tick]
            if rows:
                out[name] = rows
        return out

    # ---- running ------------------------------------------------------------------------------

    def run_hook(self, hook: str, pkt: Packet, ctx: HookContext, *, tables: Sequence[str] | None = None,
                 trace: bool = True) -> HookResult:
        """Walk ``pkt`` through the base chains at ``hook``; ``dnat`` and ``mark set`` change ``pkt``
        in place; ``ctx.ct_status`` gains DNAT/SNAT as conntrack's would. ``tables``, if given,
        names the chain types to run (``filter``, ``nat``), as iptables' table names do."""
        plan = self._plan.get(hook)
        if plan is None:
            raise ValueError(f"unknown hook {hook!r}: one of {', '.join(HOOKS.values())}")
        result = HookResult("ACCEPT")
        for chain in plan:
            if tables is not None and chain.type not in tables:
                continue
            if chain.type == "nat" and ctx.ct_state != "NEW":
                if trace:
                    result.steps.append(TraceStep(self.name, hook, self.table_name, chain.name, "note", detail=(
                        f"nat chain {chain.name} not consulted: ct state {ctx.ct_state.lower()} (nat chains see only a connection's first packet)")))
                continue
            verdict = self._walk(chain, hook, pkt, ctx, result, trace)
            if trace:
                result.steps.append(TraceStep(self.name, hook, self.table_name, chain.name, "verdict", detail=verdict))
            if verdict != "ACCEPT":
                result.verdict = verdict
                return result
        return result

    def _walk(self, base: CompiledChain, hook: str, pkt: Packet, ctx: HookContext, result: HookResult, trace: bool) -> str:
        """One base chain (``nft_do_chain``): ACCEPT, DROP or REJECT."""
        chain = base
        stack: list[tuple[CompiledChain, int]] = []  # return points pushed by jump: (chain, rules done there)
        pos = 0
        steps = result.steps
        name, table = self.name, self.table_name
        entered = 0
        while True:
            rules = chain.rules if chain.pending is None else self._compile_chain(chain)
            verdict: Verdict | None = None
            matched: CompiledRule | None = None
            while pos < len(rules):
                r = rules[pos]
                pos += 1
                result.rules_evaluated += 1
                if r.error is not None:
                    raise r.error
                scratch: dict = {}
                before = None
                for st in r.stmts:
                    if st.kind == "test":
                        if not st.run(pkt, ctx, scratch):
                            break
                    else:
                        if trace and before is None:
                            before = pkt.as_dict()
                        st.run(pkt, ctx, scratch)
                else:
                    # every expression matched (the kernel traces the rule only then): its verdict, if it has one
                    code = r.verdict
                    if code == V_NONE:
                        if trace:
                            step = TraceStep(name, hook, table, chain.name, "rule", r.text, r.number, detail=scratch.get("detail", ""))
                            if scratch.get("mark"):
                                self._marked(step, before, pkt)
                            steps.append(step)
                        continue
                    if code == V_VMAP:
                        getter, vmap, seltext = r.vmap  # type: ignore[misc]
                        key = getter(pkt, ctx)
                        hit = vmap.lookup(key, ctx)
                        if hit is None:
                            continue  # no element: the rule does not match
                        verdict = hit[0]
                        if trace:
                            where = f"@{vmap.name}" if vmap.name else "the rule's map"
                            steps.append(TraceStep(name, hook, table, chain.name, "rule", r.text, r.number,
                                                   detail=f"{seltext} = {_key_text(key, vmap.kinds)}: element {{ {hit[1]} }} of {where}"))
                    else:
                        if trace:
                            step = TraceStep(name, hook, table, chain.name, "rule", r.text, r.number, detail=scratch.get("detail", ""))
                            if scratch.get("mark"):
                                self._marked(step, before, pkt)
                            steps.append(step)
                        if code in (V_DNAT, V_MASQ, V_SNAT):
                            apply_nat(r.nat, pkt, ctx, result, steps[-1] if trace else None,  # type: ignore[arg-type]
                                      masquerade="masquerade", note_fully_random=True)
                            return "ACCEPT"
                        verdict = r.target
                    matched = r
                    break
            if verdict is None:
                verdict = Verdict(V_RETURN)  # the end of the chain
            code = verdict.code
            if code == V_CONTINUE:
                continue
            if code == V_RETURN:
                if stack:
                    caller, pos = stack.pop()
                    if trace:
                        steps.append(TraceStep(name, hook, table, chain.name, "return", detail=caller.name))
                    chain = caller
                    continue
                policy = base.policy.upper()
                if trace:
                    steps.append(TraceStep(name, hook, table, base.name, "policy", detail=policy))
                return policy
            if code in (V_JUMP, V_GOTO):
                nxt = self.chains.get(verdict.chain)
                entered += 1
                if nxt is None or entered > MAX_CHAIN_ENTRIES or len(stack) >= JUMP_STACK:
                    why = (f"{verdict.text}: no such chain" if nxt is None else
                           f"{verdict.text}: the chains jump in a loop (nft refuses such a ruleset: Too many levels of symbolic links)")
                    raise InputError(self._where(f"chain {chain.name}"), why, "fix the ruleset (kslab checks it at load with strict=True)")
                if code == V_JUMP:
                    stack.append((chain, pos))
                result.chains.append(nxt.name)
                if trace:
                    steps.append(TraceStep(name, hook, table, chain.name, "jump" if code == V_JUMP else "goto", detail=nxt.name))
                chain, pos = nxt, 0
                continue
            if code == V_REJECT:
                with_ = verdict.reject_with or REJECT_DEFAULT
                result.reject_with = REJECT_DEFAULT6 if with_ == REJECT_DEFAULT and self.family == "ip6" else with_
                return "REJECT"
            assert matched is not None or code in (V_ACCEPT, V_DROP)
            return "ACCEPT" if code == V_ACCEPT else "DROP"

    @staticmethod
    def _marked(step: TraceStep, before: dict[str, Any] | None, pkt: Packet) -> None:
        """A rule that set the mark: the packet before and after, and the change as its detail."""
        step.packet_before, step.packet_after = before, pkt.as_dict()
        if before is not None:
            change = f"mark {before['mark']} -> {hex(pkt.mark)}"
            step.detail = f"{step.detail}; {change}" if step.detail else change


# --------------------------------------------------------------------------------------------
# kslab.nft's model -> the specs above


def specs_of(state: Any, family: str = "ip", table: str = "kube-proxy") -> tuple[list[ChainSpec], list[SetSpec], list[str]]:
    """The chains and sets of ``state``'s table ``family table`` (a :class:`kslab.nft.NftState`),
    and the names of its other tables (``table ip nat`` ...)."""
    tables = state.tables
    skipped = [f"table {f} {n}" for (f, n) in tables if (f, n) != (family, table)]
    t = tables.get((family, table))
    if t is None:
        return [], [], skipped
    sets = []
    for s in t.sets.values():
        elements = [(e.key, e.value) for e in s.elements.values()]
        sets.append(SetSpec(s.name, tuple(s.key_types), s.value_type is not None, tuple(s.flags),
                            None if s.timeout is None else s.timeout / 1000.0, elements, origin=s))
        if s.value_type is not None and s.value_type != "verdict":
            sets[-1].is_map = False  # a data map (not a vmap): lookups only test membership
    chains = []
    for c in t.chains.values():
        rules = [RuleSpec(r.text, _listed_of(r), (r.text, r.comment)) for r in c.rules]
        chains.append(ChainSpec(c.name, rules, c.type or "", c.hook or "", c.priority or 0, c.policy or "accept"))
    return chains, sets, skipped


def _listed_of(rule: Any) -> Callable[[], str]:
    return lambda: rule.listed


def _hoisted(text: str) -> str:
    """Declarations first: upstream's test layout (not loadable as is: rules use chains and sets
    declared further down) in the order ``nft -f`` accepts, the rest in its own order."""
    lines = text.splitlines()
    decl = [ln for ln in lines if ln.startswith(("add table ", "add chain ", "add set ", "add map "))]
    rest = [ln for ln in lines if not ln.startswith(("add table ", "add chain ", "add set ", "add map "))]
    return "\n".join(decl + rest) + "\n"


def load_text(text: str, *, where: str = "ruleset") -> Any:
    """An :class:`kslab.nft.NftState` from nftables text: ``nft list ruleset|table`` output
    (blocks), or transaction text (``add table ...`` lines: kube-proxy's raw text, or upstream's
    test layout, whose declarations are hoisted if it does not load as written)."""
    from ..nft import NftState

    state = NftState()
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        return state
    try:
        if body[0].startswith("table "):
            state.load_listing(text)
        else:
            try:
                state.apply(text)
            except ValueError as first:
                state = NftState()
                try:
                    state.apply(_hoisted(text))
                except ValueError:
                    raise first from None
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else "nft cannot read it"
        raise InputError(where, first, "give `nft list ruleset` output or kube-proxy's nft text (add table/chain/rule/element lines)") from None
    return state
