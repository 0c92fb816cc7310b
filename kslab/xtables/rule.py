"""One iptables rule: the typed, canonical :class:`Rule` and the parser that builds it.

:func:`split_args` splits a line as iptables-restore does; :func:`parse_rule` (or
:func:`parse_argv` for an argument list) turns it into a :class:`Rule` as the kernel holds it.
Parsing follows iptables' own rules: an option binds to the most recently loaded extension that
knows it, ``-p tcp --dport 80`` loads ``-m tcp`` implicitly, values are normalised the way each
``libxt_*`` extension does (:mod:`kslab.xtables.extensions`). Because a :class:`Rule` is
canonical, a rule from restore text and the same rule read back from ``iptables-save`` compare
equal (that is also what ``iptables -C`` compares). :meth:`Rule.save_text` prints it the way
``iptables-save`` does.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .constants import BUILTIN_CHAINS, MAX_CHAIN_NAME, MAX_IFACE_NAME, STANDARD_TARGETS, U32
from .extensions import (
    MATCHES,
    PROTO_MATCHES,
    TARGET_BUILTINS,
    TARGET_TABLES,
    TARGETS,
    Extension,
    Option,
    OptSpec,
    c_uint,
    check_family,
    dec_uint,
    format_options,
    ipv4,
    ipv6,
    ntop6,
)

__all__ = ["Match", "Target", "Rule", "split_args", "parse_rule", "parse_argv", "check_chain_name"]


# --------------------------------------------------------------------------------------------
# The typed rule


@dataclass(frozen=True)
class Match:
    """A ``-m NAME`` match with its options in the order iptables-save prints them.

    ``verbatim`` marks an extension kslab does not model (only with ``strict=False``): its
    options are kept as written and printed back unchanged, which is exact only when the input
    already was iptables-save text.
    """

    name: str
    options: tuple[Option, ...] = ()
    verbatim: bool = False

    def option(self, name: str) -> Option | None:
        """The option called ``name`` (canonical spelling, no dashes), or None."""
        return next((o for o in self.options if o.name == name), None)

    def save_text(self) -> str:
        """``-m NAME`` and its options as iptables-save prints them."""
        return " ".join(["-m", self.name, *format_options(MATCHES.get(self.name), self.options, self.verbatim)])


@dataclass(frozen=True)
class Target:
    """What a rule does: a verdict, an extension target (DNAT, MARK, ...) or a user chain."""

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False  # -g instead of -j
    verbatim: bool = False

    @property
    def is_chain(self) -> bool:
        """True for a jump (or goto) to a user-defined chain."""
        return self.name not in STANDARD_TARGETS and self.name not in TARGETS and not self.verbatim

    def option(self, name: str) -> Option | None:
        """The option called ``name`` (canonical spelling, no dashes), or None."""
        return next((o for o in self.options if o.name == name), None)

    def save_text(self) -> str:
        """``-j NAME`` and its options as iptables-save prints them."""
        flag = "-g" if self.goto else "-j"
        return " ".join([flag, self.name, *format_options(TARGETS.get(self.name), self.options, self.verbatim)])


@dataclass(frozen=True)
class Rule:
    """One rule as the kernel holds it (canonical), in one chain of one table.

    Addresses are canonical CIDRs (``10.0.0.1/32``, ``10.0.0.0/8``; a non-contiguous mask stays
    dotted, ``10.0.0.0/255.0.255.0``); ``None`` means "any". ``proto`` is a lower-case name.
    ``target`` is None for a rule without ``-j`` (it only counts packets, like kube-proxy's last
    KUBE-FW rule). Equality is what ``iptables -C`` checks.

    ``family`` is 4 for an iptables rule and 6 for an ip6tables rule. An IPv6 rule's addresses
    are ``inet_ntop`` text with a prefix length (``fd00::1/128``, ``fd00::/64``; a
    non-contiguous mask is written as an address, ``2001::/ffff:0:ffff::``), its ``recent
    --mask``, ``REJECT --reject-with`` and ``DNAT``/``SNAT`` values are ip6tables' (the
    ``ffff:...`` mask, ``icmp6-port-unreachable``, ``[addr]:port``). Every value is already
    in its printed form, so :meth:`save_text` is the same for both families.
    """

    table: str
    chain: str
    src: str | None = None
    src_negated: bool = False
    dst: str | None = None
    dst_negated: bool = False
    in_iface: str | None = None
    in_negated: bool = False
    out_iface: str | None = None
    out_negated: bool = False
    proto: str | None = None
    proto_negated: bool = False
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    family: int = 4

    def match(self, name: str) -> Match | None:
        """The first match called ``name`` (``tcp``, ``comment``, ...), or None."""
        return next((m for m in self.matches if m.name == name), None)

    @property
    def comment(self) -> str | None:
        """The text of the first ``-m comment``, or None."""
        m = self.match("comment")
        opt = m.option("comment") if m else None
        return opt.args[0] if opt and opt.args else None

    def save_text(self) -> str:
        """The rule line exactly as ``iptables-save`` v1.8.9 prints it (``-A CHAIN ...``).

        Field order is fixed by iptables, not by the input: ``[!] -s``, ``[!] -d``, ``[!] -i``,
        ``[!] -o``, ``[!] -p``, the matches in load order, then the target.
        """
        parts = ["-A", self.chain]
        for flag, value, negated in (
            ("-s", self.src, self.src_negated),
            ("-d", self.dst, self.dst_negated),
            ("-i", self.in_iface, self.in_negated),
            ("-o", self.out_iface, self.out_negated),
            ("-p", self.proto, self.proto_negated),
        ):
            if value is not None:
                parts += ["!", flag, value] if negated else [flag, value]
        parts += [m.save_text() for m in self.matches]
        if self.target is not None:
            parts.append(self.target.save_text())
        return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Tokenising (iptables-restore's argv splitting)

# whitespace str.split() splits at but iptables-restore does not (it splits at " \t\n\r" only)
_OTHER_WHITESPACE = re.compile(r"[^\S \t\n\r]")


def split_args(line: str) -> list[str]:
    """Split a rule line into arguments exactly like iptables-restore does.

    This is ``add_param_to_argv`` from iptables (xshared.c), not a shell: only double quotes
    quote, a backslash escapes the next character only inside double quotes, a closing quote
    ends the argument (so ``""`` is an empty argument), and single quotes are ordinary
    characters (``it's`` is one argument). kube-proxy's own quoting (``"kubernetes service
    portals"``) and iptables-save's (``"a\\"b"``) both read back correctly.

    A line without a double quote (most rules: a backslash outside quotes is an ordinary
    character) and without whitespace other than space, tab, CR and LF splits like
    :meth:`str.split`, which is what the loop below does for it, only faster.
    """
    if '"' not in line and _OTHER_WHITESPACE.search(line) is None:
        return line.split()
    return _split_quoted(line)


def _split_quoted(line: str) -> list[str]:
    """:func:`split_args` character by character: any line, quotes and escapes included."""
    args: list[str] = []
    buf: list[str] = []
    in_quote = escaped = False
    for ch in line:
        if in_quote:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
                args.append("".join(buf))
                buf = []
            else:
                buf.append(ch)
        elif ch == '"':
            in_quote = True
        elif ch in " \t\n\r":
            if buf:
                args.append("".join(buf))
                buf = []
        else:
            buf.append(ch)
    if in_quote:
        raise ValueError("unterminated quote")
    if buf:
        args.append("".join(buf))
    return args


# --------------------------------------------------------------------------------------------
# The fields every rule has (-s, -d, -i, -o, -p)


def _canon_address(text: str, negated: bool, family: int = 4) -> str | None:
    """Canonical ``-s``/``-d`` value: network address plus ``/len`` (or dotted non-contiguous mask).

    ``10.0.0.1`` -> ``10.0.0.1/32``; ``10.1.2.3/8`` -> ``10.0.0.0/8``; ``/255.0.0.0`` -> ``/8``;
    a zero mask means "any" and is not printed (None). ``family=6``: see :func:`_canon_address6`.
    """
    if "," in text:
        raise ValueError(f"address list {text!r} makes iptables add one rule per address; write one rule each")
    if family == 6:
        return _canon_address6(text, negated)
    addr_text, slash, mask_text = text.partition("/")
    addr = int(ipv4(addr_text, "address"))
    if not slash:
        mask = U32
    elif "." in mask_text:
        mask = int(ipv4(mask_text, "mask"))
    else:
        mask = (U32 << (32 - c_uint(mask_text, "mask", 32))) & U32
    if mask == 0:
        if negated:
            raise ValueError(f"'! {text}' (negated zero mask) is refused by the kernel")
        return None
    network = ipaddress.IPv4Address(addr & mask)
    inverted = ~mask & U32
    if inverted & (inverted + 1) == 0:  # contiguous: 1...10...0
        return f"{network}/{32 - inverted.bit_length()}"
    return f"{network}/{ipaddress.IPv4Address(mask)}"


U128 = (1 << 128) - 1


def _canon_address6(text: str, negated: bool) -> str | None:
    """An ip6tables ``-s``/``-d`` value as ip6tables-save prints it (measured, iptables 1.8.9, both backends).

    ``2001:DB8::1`` -> ``2001:db8::1/128``; ``fd00:0:0:0::1/64`` -> ``fd00::/64`` (network
    address applied); the prefix length is read like ``strtoul(s, 0, 0)`` (``/0x20`` is 32,
    ``/032`` is octal 26); a mask written as an address (``/ffff:ffff::``) is allowed and
    printed as a length when contiguous, else as the address; a dotted mask, a hostname, an
    IPv4 address, ``[..]`` and ``%scope`` are refused; ``::/0`` means "any" (None).
    """
    addr_text, slash, mask_text = text.partition("/")
    addr = int(ipv6(addr_text, "address"))
    if not slash:
        mask = U128
    elif ":" in mask_text:
        mask = int(ipv6(mask_text, "mask"))
    else:
        try:
            mask = (U128 << (128 - c_uint(mask_text, "mask", 128))) & U128
        except ValueError:
            raise ValueError(f"invalid mask {mask_text!r} (an IPv6 prefix length 0-128)") from None
    if mask == 0:
        if negated:
            raise ValueError(f"'! {text}' (negated zero mask) is refused by the kernel")
        return None
    inverted = ~mask & U128
    if inverted & (inverted + 1) == 0:
        return f"{ntop6(addr & mask)}/{128 - inverted.bit_length()}"
    return f"{ntop6(addr & mask)}/{ntop6(mask)}"


_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "all": 0}
_PROTOCOL_NAMES = {number: name for name, number in _PROTOCOLS.items()}
# ip6tables also knows ICMPv6 (58): ``-p icmpv6``, ``-p ipv6-icmp`` and ``-p 58`` all print
# ``-p ipv6-icmp`` (measured); ``-p icmp`` prints as given.
_PROTOCOLS6 = {**_PROTOCOLS, "ipv6-icmp": 58, "icmpv6": 58}
_PROTOCOL_NAMES6 = {**_PROTOCOL_NAMES, 58: "ipv6-icmp"}


def _canon_proto(text: str, negated: bool, family: int = 4) -> str | None:
    """Canonical ``-p`` value: a lower-case name; ``all``/``0`` means any (None)."""
    lowered = text.lower()
    protocols, names = (_PROTOCOLS, _PROTOCOL_NAMES) if family == 4 else (_PROTOCOLS6, _PROTOCOL_NAMES6)
    if lowered in protocols:
        name = names[protocols[lowered]]
    elif text.isdigit() and int(text) in names:
        name = names[int(text)]
    else:
        known = "tcp, udp, sctp, icmp, all" if family == 4 else "tcp, udp, sctp, icmp, ipv6-icmp, all"
        raise ValueError(f"protocol {text!r} is not one kslab prints ({known})")
    if name == "all":
        if negated:
            raise ValueError("'! -p all' matches nothing")
        return None
    return name


def _canon_iface(text: str) -> str:
    if not text or len(text) > MAX_IFACE_NAME:
        raise ValueError(f"interface name {text!r} must be 1-{MAX_IFACE_NAME} characters")
    return text


def check_chain_name(name: str) -> str:
    if not name or len(name) > MAX_CHAIN_NAME:
        raise ValueError(f"chain name {name!r} must be 1-{MAX_CHAIN_NAME} characters")
    if name.startswith(("-", "!")):
        raise ValueError(f"chain name {name!r} cannot start with '-' or '!'")
    return name


# --------------------------------------------------------------------------------------------
# Parsing one rule


@dataclass
class _Loaded:
    """A match or target being parsed: options collected in input order."""

    kind: str  # "match" | "target"
    name: str
    ext: Extension | None  # None: not modelled (verbatim)
    raw: list[tuple[str, Option]] = field(default_factory=list)  # (flag as written, canonical-name option)
    completed: bool = False  # a later "-m SAME" was loaded (iptables' matchp->completed)
    goto: bool = False


def parse_rule(line: str, table: str = "filter", *, family: int = 4, strict: bool = True) -> Rule:
    """Parse one ``-A CHAIN ...`` line (kube-proxy restore text or iptables-save text).

    ``family`` is 4 for iptables text and 6 for ip6tables text: addresses, ``recent --mask``,
    ``REJECT`` types and NAT ``[addr]:port`` follow that family's tool (see :class:`Rule`).

    ``strict=True`` (for text that is about to be loaded or printed) refuses anything kslab
    cannot print exactly. ``strict=False`` (for reading a real node's ``iptables-save``) keeps
    unknown extensions and options verbatim instead and skips the checks the kernel would do.
    A leading ``[packets:bytes]`` counter is accepted and ignored. Raises ValueError naming the
    rule.

    Parsed rules are cached by ``(line, table, strict, family)`` (:data:`PARSE_CACHE_SIZE` lines, least
    recently used dropped): a sync re-reads mostly the lines it wrote before, on every node. The
    same :class:`Rule` object is then returned for the same line, which is safe because rules
    are immutable (frozen dataclasses all the way down), and it lets the simulator's reload
    (``Netfilter.from_tables(previous=...)``) reuse the compiled form of a rewritten but
    unchanged rule. Lines that fail are not cached (the error is raised again).
    """
    return _parse_line(line, table, strict, check_family(family))


PARSE_CACHE_SIZE = 4096  # distinct lines (about 1.2 kB each); the study lab and its syncs use a few hundred


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_line(line: str, table: str, strict: bool, family: int = 4) -> Rule:
    """The parse behind :func:`parse_rule`, cached (``_parse_line.__wrapped__`` is the uncached function)."""
    text = line.strip()
    counters = re.match(r"\[\d+:\d+\]\s+", text)
    if counters:
        text = text[counters.end() :]
    try:
        return parse_argv(split_args(text), table, family=family, strict=strict)
    except ValueError as err:
        raise ValueError(f"{table} rule {line.strip()!r}: {err}") from None


def parse_argv(tokens: Sequence[str], table: str = "filter", *, family: int = 4, strict: bool = True) -> Rule:
    """Parse a rule given as arguments (``["-A", CHAIN, ...]``, as passed to ``iptables``).

    The same as :func:`parse_rule` without the line splitting: for rules a program builds as
    argument lists, like the ones ``iptables -C``/``-I`` receive.
    """
    check_family(family)
    if table not in BUILTIN_CHAINS:
        raise ValueError(f"unknown table {table!r}")
    if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
        raise ValueError("a rule line starts with -A CHAIN")
    chain = check_chain_name(tokens[1])
    base: dict[str, tuple[str, bool]] = {}  # -s/-d/-i/-o/-p -> (value, negated)
    loaded: list[_Loaded] = []  # matches and target, in load order
    target: _Loaded | None = None
    invert = False
    i = 2

    def take(n: int, flag: str) -> list[str]:
        nonlocal i
        if i + n > len(tokens):
            raise ValueError(f"option {flag} requires {n} argument{'s' if n > 1 else ''}")
        values = list(tokens[i : i + n])
        i += n
        return values

    base_flags = {
        "-s": "-s", "--source": "-s", "--src": "-s",
        "-d": "-d", "--destination": "-d", "--dst": "-d",
        "-i": "-i", "--in-interface": "-i",
        "-o": "-o", "--out-interface": "-o",
        "-p": "-p", "--protocol": "-p",
    }  # fmt: skip
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "!":
            if invert:
                raise ValueError("multiple consecutive ! not allowed")
            invert = True
            continue
        if tok in base_flags:
            flag = base_flags[tok]
            if flag in base:
                raise ValueError(f"multiple {flag} flags not allowed")
            base[flag] = (take(1, flag)[0], invert)
        elif tok in ("-m", "--match"):
            if invert:
                raise ValueError("unexpected ! flag before --match")
            name = take(1, tok)[0]
            ext = MATCHES.get(name)
            if ext is None and strict:
                raise ValueError(f"match -m {name} is not supported by kslab")
            for earlier in loaded:
                if earlier.kind == "match" and earlier.name == name:
                    earlier.completed = True
            loaded.append(_Loaded("match", name, ext))
        elif tok in ("-j", "--jump", "-g", "--goto"):
            if invert:
                raise ValueError(f"cannot have ! before {tok}")
            if target is not None:
                raise ValueError("multiple -j flags not allowed")
            name = take(1, tok)[0]
            target = _Loaded("target", name, TARGETS.get(name), goto=tok in ("-g", "--goto"))
            loaded.append(target)
        elif tok in ("-c", "--set-counters"):  # counters are not kept: iptables-save here prints [0:0]
            for count in take(2, tok):
                dec_uint(count, "counter", maximum=2**64 - 1)
        elif tok.startswith("--"):
            owner, spec = _option_owner(tok, loaded, base.get("-p"), strict)
            if spec is None:  # verbatim extension: arguments run up to the next option
                args = []
                while i < len(tokens) and tokens[i] != "!" and not tokens[i].startswith("-"):
                    args.append(tokens[i])
                    i += 1
                owner.raw.append((tok, Option(tok[2:], tuple(args), invert)))
            else:
                if invert and not spec.invertible:
                    raise ValueError(f"{owner.name}: option {tok} cannot be inverted")
                if any(opt.name == spec.name for _, opt in owner.raw):
                    raise ValueError(f'{owner.name}: option "--{spec.name}" can only be used once')
                owner.raw.append((tok, Option(spec.name, tuple(take(spec.nargs, tok)), invert)))
        else:
            raise ValueError(f"unexpected argument {tok!r}")
        invert = False
    if invert:
        raise ValueError("nothing appropriate following !")

    def value(flag: str, canon: Callable[[str, bool], str | None]) -> tuple[str | None, bool]:
        if flag not in base:
            return None, False
        raw, negated = base[flag]
        result = canon(raw, negated)
        return result, negated and result is not None

    src, src_neg = value("-s", lambda v, n: _canon_address(v, n, family))
    dst, dst_neg = value("-d", lambda v, n: _canon_address(v, n, family))
    in_iface, in_neg = value("-i", lambda v, _n: _canon_iface(v))
    out_iface, out_neg = value("-o", lambda v, _n: _canon_iface(v))
    proto, proto_neg = value("-p", lambda v, n: _canon_proto(v, n, family))

    matches = tuple(_finish_match(m, strict, family) for m in loaded if m.kind == "match")
    rule = Rule(
        table=table,
        chain=chain,
        src=src,
        src_negated=src_neg,
        dst=dst,
        dst_negated=dst_neg,
        in_iface=in_iface,
        in_negated=in_neg,
        out_iface=out_iface,
        out_negated=out_neg,
        proto=proto,
        proto_negated=proto_neg,
        matches=matches,
        target=_finish_target(target, strict, family) if target else None,
        family=family,
    )
    if strict:
        _check_rule(rule)
    return rule


def _option_owner(
    flag: str, loaded: list[_Loaded], proto: tuple[str, bool] | None, strict: bool
) -> tuple[_Loaded, OptSpec | None]:
    """Which loaded extension an option belongs to, as iptables decides it.

    iptables merges each newly loaded extension's options in front of the older ones, so an
    option belongs to the most recently loaded extension (match or target) that knows it. If
    none does and ``-p tcp|udp|sctp`` was given, the protocol's match is loaded implicitly at
    this point (``-p tcp --dport 80`` prints as ``-p tcp -m tcp --dport 80``). Without
    ``strict``, options after an extension kslab does not model stay with it (in
    iptables-save text every option follows its own extension).
    """
    if not strict and loaded and loaded[-1].ext is None:
        return loaded[-1], None
    for ext in reversed(loaded):
        if ext.completed or ext.ext is None:
            continue
        spec = ext.ext.spec(flag)
        if spec is not None:
            return ext, spec
    if proto is not None:
        proto_name = proto[0].lower()
        proto_name = _PROTOCOL_NAMES.get(int(proto_name), proto_name) if proto_name.isdigit() else proto_name
        if proto_name in PROTO_MATCHES and not any(m.name == proto_name for m in loaded if m.kind == "match"):
            spec = MATCHES[proto_name].spec(flag)
            if spec is not None:
                implicit = _Loaded("match", proto_name, MATCHES[proto_name])
                loaded.append(implicit)
                return implicit, spec
    if not strict and loaded:
        last = loaded[-1]
        last.ext = None  # an option kslab does not model: keep this extension verbatim
        return last, None
    raise ValueError(f"unknown option {flag!r}")


def _finish_match(m: _Loaded, strict: bool, family: int = 4) -> Match:
    if m.ext is not None:
        try:
            return Match(m.name, m.ext.canonicalize({o.name: o for _, o in m.raw}, family))
        except ValueError:
            if strict:
                raise
    return Match(m.name, tuple(replace(o, name=flag[2:]) for flag, o in m.raw), verbatim=True)


def _finish_target(t: _Loaded, strict: bool, family: int = 4) -> Target:
    if t.ext is not None:
        try:
            return Target(t.name, t.ext.canonicalize({o.name: o for _, o in t.raw}, family), goto=t.goto)
        except ValueError:
            if strict:
                raise
    elif not t.raw:
        if t.goto and t.name in STANDARD_TARGETS:
            raise ValueError(f"-g needs a user chain, not {t.name}")
        if t.name not in STANDARD_TARGETS:
            check_chain_name(t.name)
        return Target(t.name, goto=t.goto)
    elif strict:
        raise ValueError(f"target -j {t.name} is not supported by kslab")
    return Target(t.name, tuple(replace(o, name=flag[2:]) for flag, o in t.raw), goto=t.goto, verbatim=True)


def _check_rule(rule: Rule) -> None:
    """Refuse rules iptables or the kernel would refuse (so nothing is printed for them)."""
    proto = None if rule.proto_negated else rule.proto
    seen: set[str] = set()
    for m in rule.matches:
        if m.name in PROTO_MATCHES:
            if proto != m.name:
                raise ValueError(f"-m {m.name} requires -p {m.name}")
            if m.name in seen:
                # iptables-nft merges repeated port matches into one, iptables-legacy does not
                raise ValueError(f"-m {m.name} given twice prints differently per backend")
        elif m.name != "comment" and m.name in seen:
            raise ValueError(f"-m {m.name} given twice is not supported by kslab")
        seen.add(m.name)
    t = rule.target
    if t is None:
        return
    if t.name in TARGET_TABLES and rule.table != TARGET_TABLES[t.name]:
        raise ValueError(f"target {t.name} is only valid in the {TARGET_TABLES[t.name]} table")
    hooks = TARGET_BUILTINS.get(t.name)
    if hooks and rule.chain in BUILTIN_CHAINS[rule.table] and rule.chain not in hooks:
        raise ValueError(f"target {t.name} is not valid in built-in chain {rule.chain}")
    # a NAT address with a port: "10.0.0.1:80" (iptables), "[fd00::1]:80" (ip6tables)
    nat_port = t.name in ("DNAT", "SNAT") and (":" in t.options[0].args[0] if rule.family == 4
                                               else t.options[0].args[0].startswith("["))
    needs_port_proto = nat_port or t.option("to-ports") is not None
    if needs_port_proto and proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"{t.name} with a port needs -p tcp, udp or sctp")
    reject = t.option("reject-with") if t.name == "REJECT" else None
    if reject and reject.args[0] == "tcp-reset" and proto != "tcp":
        raise ValueError("REJECT --reject-with tcp-reset needs -p tcp")
