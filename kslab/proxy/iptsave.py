"""How ``iptables-save`` (iptables 1.8.9) prints a ruleset after kube-proxy loaded it.

kube-proxy writes iptables-restore text in its own dialect (``-m tcp -p tcp -d 10.0.0.1 --dport
80``, ``--or-mark 0x00004000``, ``--probability 0.3333333333``). The kernel stores each rule in a
normalised binary form, and ``iptables-save`` prints that form back in another dialect
(``-d 10.0.0.1/32 -p tcp -m tcp --dport 80``, ``--set-xmark 0x4000/0x4000``,
``--probability 0.33333333349``). A learner who compares kslab's rules with a real node's
``iptables-save`` must see the second dialect, so this module reproduces it without a kernel.

The module is pure (no I/O). It has three layers, each public because the sim interpreter
parses ``iptables-save`` text with the same structure:

- :func:`split_args` and :func:`parse_rule`: one rule line into a typed, *canonical*
  :class:`Rule`, i.e. the rule as the kernel holds it. Parsing follows iptables' own rules: an
  option binds to the most recently loaded extension that knows it, ``-p tcp --dport 80``
  loads ``-m tcp`` implicitly, values are normalised the way each ``libxt_*`` extension does.
  Because a :class:`Rule` is canonical, a rule from restore text and the same rule read back
  from ``iptables-save`` compare equal (that is also what ``iptables -C`` compares).
- :meth:`Rule.save_text`: the rule the way ``iptables-save`` prints it.
- :class:`IptablesState`: the tables of one network namespace, changed by the same operations
  kube-proxy performs (``-N``, ``-C``/``-I``, ``iptables-restore --noflush``), and printed with
  :meth:`IptablesState.save_text`. :func:`restore_to_save` runs kube-proxy's first full sync
  on a clean node through it; :func:`parse_restore` loads any restore or save text.

Every printed form was checked against iptables v1.8.9 (nf_tables and legacy backends) in a
network namespace; ``tests/test_kernel_roundtrip.py`` keeps checking it. Anything this module
cannot print exactly (an extension or option it does not model, a hostname to resolve, a rule
the kernel would refuse) raises :class:`ValueError` naming the rule, rather than guessing.

The two backends print kube-proxy's rules identically, but not everything (measured):
iptables-nft merges repeated port matches (``-m tcp --sport 5 -m tcp --dport 6`` prints as one
``-m tcp --sport 5 --dport 6``) where legacy keeps both, so kslab refuses a repeated ``-m tcp``;
legacy accepts and prints ``! -s 0.0.0.0/0``, nft refuses it, so kslab refuses it; legacy
creates a table for an empty ``*filter``/``COMMIT`` section, nft does not, and kslab follows
nft (Debian's default). Table order differs too (see :data:`SAVE_TABLE_ORDER`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from .iptables.constants import (
    BUILTIN_CHAINS,
    CANARY_TABLES,
    JUMP_CHAINS,
    KUBE_FIREWALL,
    KUBE_PROXY_CANARY,
    KUBELET_JUMP_CHAINS,
    JumpChain,
)

__all__ = [
    "SAVE_TABLE_ORDER",
    "STANDARD_TARGETS",
    "Option",
    "Match",
    "Target",
    "Rule",
    "Chain",
    "TableDump",
    "IptablesState",
    "split_args",
    "save_string",
    "save_probability",
    "parse_rule",
    "jump_rule",
    "full_sync_jump_chains",
    "parse_restore",
    "restore_to_save",
]

SAVE_TABLE_ORDER: tuple[str, ...] = ("mangle", "raw", "filter", "nat")
"""Order in which ``iptables-save`` (no ``-t``) prints tables, for the tables kslab knows.

Measured with iptables-nft 1.8.9: the order is fixed by iptables' own table list (mangle,
security, raw, filter, nat), *not* by creation order. kube-proxy's canary creates mangle, nat,
filter in that order and iptables-save still prints mangle, filter, nat. iptables-legacy-save
prints the kernel's registration order instead, so :func:`kslab.proxy.apply.iptables_save`
re-orders its output to this order.
"""
assert set(SAVE_TABLE_ORDER) == set(BUILTIN_CHAINS), "every table in BUILTIN_CHAINS needs a print position"

STANDARD_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN"})
"""Verdicts built into iptables; any other option-less target name is a jump to a user chain."""

MAX_CHAIN_NAME = 28  # "chain name too long (must be under 29 chars)"
MAX_IFACE_NAME = 15  # IFNAMSIZ - 1
MAX_COMMENT_BYTES = 255  # XT_MAX_COMMENT_LEN - 1; libxt_comment silently truncates longer ones
MAX_NFACCT_NAME = 31  # NFACCT_NAME_MAX - 1
MAX_RECENT_NAME = 199  # XT_RECENT_NAME_LEN - 1
U32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# The typed rule


@dataclass(frozen=True)
class Option:
    """One option of a match or target, e.g. ``! --dport 80`` -> ``Option("dport", ("80",), True)``.

    ``name`` has no leading dashes and is the canonical spelling (``dport``, never
    ``destination-port``); ``args`` are the canonical printed values.
    """

    name: str
    args: tuple[str, ...] = ()
    negated: bool = False


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
        return " ".join(["-m", self.name, *_format_options(_MATCHES.get(self.name), self.options, self.verbatim)])


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
        return self.name not in STANDARD_TARGETS and self.name not in _TARGETS and not self.verbatim

    def option(self, name: str) -> Option | None:
        """The option called ``name`` (canonical spelling, no dashes), or None."""
        return next((o for o in self.options if o.name == name), None)

    def save_text(self) -> str:
        """``-j NAME`` and its options as iptables-save prints them."""
        flag = "-g" if self.goto else "-j"
        return " ".join([flag, self.name, *_format_options(_TARGETS.get(self.name), self.options, self.verbatim)])


@dataclass(frozen=True)
class Rule:
    """One rule as the kernel holds it (canonical), in one chain of one table.

    Addresses are canonical CIDRs (``10.0.0.1/32``, ``10.0.0.0/8``; a non-contiguous mask stays
    dotted, ``10.0.0.0/255.0.255.0``); ``None`` means "any". ``proto`` is a lower-case name.
    ``target`` is None for a rule without ``-j`` (it only counts packets, like kube-proxy's last
    KUBE-FW rule). Equality is what ``iptables -C`` checks.
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
# Tokenising and small value parsers


def split_args(line: str) -> list[str]:
    """Split a rule line into arguments exactly like iptables-restore does.

    This is ``add_param_to_argv`` from iptables (xshared.c), not a shell: only double quotes
    quote, a backslash escapes the next character only inside double quotes, a closing quote
    ends the argument (so ``""`` is an empty argument), and single quotes are ordinary
    characters (``it's`` is one argument). kube-proxy's own quoting (``"kubernetes service
    portals"``) and iptables-save's (``"a\\"b"``) both read back correctly.
    """
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


_SAFE_STRING = re.compile(r"[A-Za-z0-9_-]+")


def save_string(value: str) -> str:
    """Quote a string as ``xtables_save_string`` does (comments, for instance).

    Bare only if non-empty and every character is in ``[A-Za-z0-9_-]``; otherwise wrapped in
    double quotes with ``"``, ``\\`` and ``'`` backslash-escaped. So ``ns1/svc1:p80`` (bare in
    kube-proxy's text) prints as ``"ns1/svc1:p80"`` and an empty comment as ``""``.
    """
    if _SAFE_STRING.fullmatch(value):
        return value
    return '"' + re.sub(r"([\"\\'])", r"\\\1", value) + '"'


def save_probability(text: str) -> str:
    """The ``--probability`` value iptables-save prints for a given input value.

    libxt_statistic stores ``lround(0x80000000 * p)`` and prints ``%.11f`` of that over
    ``0x80000000``: kube-proxy's ``0.3333333333`` comes back as ``0.33333333349``.
    """
    try:
        p = float(text)
    except ValueError:
        raise ValueError(f"bad probability {text!r}") from None
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"probability {text!r} out of range (0-1)")
    return "%.11f" % (math.floor(0x80000000 * p + 0.5) / 0x80000000)


_C_UINT = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _c_uint(text: str, what: str, maximum: int = U32) -> int:
    """An unsigned integer as C ``strtoul(s, NULL, 0)`` reads it (hex ``0x``, octal ``0``)."""
    if not _C_UINT.fullmatch(text):
        raise ValueError(f"bad {what} {text!r}")
    value = int(text, 16) if text[:2].lower() == "0x" else int(text, 8) if text.startswith("0") else int(text)
    if value > maximum:
        raise ValueError(f"{what} {text!r} out of range (max {maximum})")
    return value


def _dec_uint(text: str, what: str, minimum: int = 0, maximum: int = U32) -> int:
    """A plain decimal unsigned integer in [minimum, maximum]."""
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"bad {what} {text!r}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} {text!r} out of range ({minimum}-{maximum})")
    return value


def _ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    """A dotted-quad IPv4 address. Hostnames are refused: iptables would resolve them by DNS."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a dotted-quad IPv4 address (hostnames are not resolved)") from None


def _canon_address(text: str, negated: bool) -> str | None:
    """Canonical ``-s``/``-d`` value: network address plus ``/len`` (or dotted non-contiguous mask).

    ``10.0.0.1`` -> ``10.0.0.1/32``; ``10.1.2.3/8`` -> ``10.0.0.0/8``; ``/255.0.0.0`` -> ``/8``;
    a zero mask means "any" and is not printed (None).
    """
    if "," in text:
        raise ValueError(f"address list {text!r} makes iptables add one rule per address; write one rule each")
    addr_text, slash, mask_text = text.partition("/")
    addr = int(_ipv4(addr_text, "address"))
    if not slash:
        mask = U32
    elif "." in mask_text:
        mask = int(_ipv4(mask_text, "mask"))
    else:
        mask = (U32 << (32 - _c_uint(mask_text, "mask", 32))) & U32
    if mask == 0:
        if negated:
            raise ValueError(f"'! {text}' (negated zero mask) is refused by the kernel")
        return None
    network = ipaddress.IPv4Address(addr & mask)
    inverted = ~mask & U32
    if inverted & (inverted + 1) == 0:  # contiguous: 1...10...0
        return f"{network}/{32 - inverted.bit_length()}"
    return f"{network}/{ipaddress.IPv4Address(mask)}"


_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "all": 0}
_PROTOCOL_NAMES = {number: name for name, number in _PROTOCOLS.items()}


def _canon_proto(text: str, negated: bool) -> str | None:
    """Canonical ``-p`` value: a lower-case name; ``all``/``0`` means any (None)."""
    lowered = text.lower()
    if lowered in _PROTOCOLS:
        name = lowered
    elif text.isdigit() and int(text) in _PROTOCOL_NAMES:
        name = _PROTOCOL_NAMES[int(text)]
    else:
        raise ValueError(f"protocol {text!r} is not one kslab prints (tcp, udp, sctp, icmp, all)")
    if name == "all":
        if negated:
            raise ValueError("'! -p all' matches nothing")
        return None
    return name


def _canon_iface(text: str) -> str:
    if not text or len(text) > MAX_IFACE_NAME:
        raise ValueError(f"interface name {text!r} must be 1-{MAX_IFACE_NAME} characters")
    return text


def _check_chain_name(name: str) -> str:
    if not name or len(name) > MAX_CHAIN_NAME:
        raise ValueError(f"chain name {name!r} must be 1-{MAX_CHAIN_NAME} characters")
    if name.startswith(("-", "!")):
        raise ValueError(f"chain name {name!r} cannot start with '-' or '!'")
    return name


# --------------------------------------------------------------------------------------------
# Extensions: which options each knows, how its save function orders and prints them


@dataclass(frozen=True)
class _OptSpec:
    name: str
    nargs: int = 1
    invertible: bool = False
    aliases: tuple[str, ...] = ()


Canonicalizer = Callable[[dict[str, Option]], tuple[Option, ...]]


@dataclass(frozen=True)
class _Extension:
    """What kslab knows of one libxt extension: its options, normaliser and print quirks."""

    name: str
    options: tuple[_OptSpec, ...]
    canonical: Canonicalizer
    formatters: tuple[tuple[str, Callable[[Option], str]], ...] = ()

    def spec(self, flag: str) -> _OptSpec | None:
        """The option spec for ``--flag`` (any alias), or None."""
        if not flag.startswith("--"):
            return None
        word = flag[2:]
        return next((o for o in self.options if word == o.name or word in o.aliases), None)

    def format(self, opt: Option) -> str:
        for name, fmt in self.formatters:
            if name == opt.name:
                return fmt(opt)
        return _plain(opt)


def _plain(opt: Option) -> str:
    return " ".join((["!"] if opt.negated else []) + [f"--{opt.name}", *opt.args])


def _format_options(ext: _Extension | None, options: Iterable[Option], verbatim: bool) -> list[str]:
    if verbatim or ext is None:
        return [
            " ".join((["!"] if o.negated else []) + [f"--{o.name}"] + [_verbatim_arg(a) for a in o.args])
            for o in options
        ]
    return [ext.format(o) for o in options]


def _verbatim_arg(arg: str) -> str:
    return arg if arg and not re.search(r"[\s\"'\\]", arg) else save_string(arg)


def _only(opts: dict[str, Option], allowed: Iterable[str], ext: str) -> None:
    extra = set(opts) - set(allowed)
    if extra:
        raise ValueError(f"{ext}: option --{sorted(extra)[0]} is not supported by kslab")


def _exclusive(opts: dict[str, Option], names: Sequence[str], ext: str) -> Option | None:
    given = [opts[n] for n in names if n in opts]
    if len(given) > 1:
        raise ValueError(f'{ext}: option "--{given[0].name}" cannot be used together with "--{given[1].name}"')
    return given[0] if given else None


def _required(opts: dict[str, Option], name: str, ext: str) -> Option:
    if name not in opts:
        raise ValueError(f'{ext}: option "--{name}" must be specified')
    return opts[name]


# ---- matches


def _canon_comment(opts: dict[str, Option]) -> tuple[Option, ...]:
    text = _required(opts, "comment", "comment").args[0]
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_COMMENT_BYTES:
        # libxt_comment copies at most 255 bytes; cutting inside a UTF-8 sequence would print
        # bytes that are not text at all.
        try:
            text = raw[:MAX_COMMENT_BYTES].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"comment longer than {MAX_COMMENT_BYTES} bytes is cut inside a UTF-8 character") from None
    return (Option("comment", (text,)),)


def _port_range(text: str) -> tuple[int, int]:
    lo_text, colon, hi_text = text.partition(":")
    if not colon:
        port = _c_uint(text, "port (service names are not resolved)", 0xFFFF)
        return port, port
    lo = _c_uint(lo_text, "port", 0xFFFF) if lo_text else 0
    hi = _c_uint(hi_text, "port", 0xFFFF) if hi_text else 0xFFFF
    if lo > hi:
        raise ValueError(f"invalid portrange {text!r} (min > max)")
    return lo, hi


def _ports_canonical(ext: str, omit_full_range: bool) -> Canonicalizer:
    """libxt_tcp/udp print ``--sport`` then ``--dport``, dropping a full 0:65535 range; sctp keeps it."""

    def canonical(opts: dict[str, Option]) -> tuple[Option, ...]:
        _only(opts, ("sport", "dport"), ext)
        out = []
        for name in ("sport", "dport"):
            opt = opts.get(name)
            if opt is None:
                continue
            lo, hi = _port_range(opt.args[0])
            if omit_full_range and (lo, hi) == (0, 0xFFFF):
                if opt.negated:
                    raise ValueError(f"{ext}: '! --{name} 0:65535' is stored but not printed by iptables-save")
                continue
            out.append(Option(name, (str(lo) if lo == hi else f"{lo}:{hi}",), opt.negated))
        return tuple(out)

    return canonical


def _port_specs() -> tuple[_OptSpec, ...]:
    return (
        _OptSpec("sport", invertible=True, aliases=("source-port",)),
        _OptSpec("dport", invertible=True, aliases=("destination-port",)),
    )


_ADDRTYPES = (
    "UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
    "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE",
)  # fmt: skip


def _canon_type_list(text: str, names: Sequence[str], what: str) -> str:
    """A comma list of flag names, upper-cased, deduplicated and in the printer's bit order."""
    given = {t.upper() for t in text.split(",")}
    unknown = given - set(names)
    if unknown or not text:
        raise ValueError(f"bad {what} {text!r}")
    return ",".join(n for n in names if n in given)


def _canon_addrtype(opts: dict[str, Option]) -> tuple[Option, ...]:
    _exclusive(opts, ("limit-iface-in", "limit-iface-out"), "addrtype")
    if "src-type" not in opts and "dst-type" not in opts:
        raise ValueError("addrtype: you must specify --src-type or --dst-type")
    out = []
    for name in ("src-type", "dst-type"):
        if name in opts:
            types = _canon_type_list(opts[name].args[0], _ADDRTYPES, "address type")
            out.append(Option(name, (types,), opts[name].negated))
    out += [opts[n] for n in ("limit-iface-in", "limit-iface-out") if n in opts]
    return tuple(out)


_CTSTATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")


def _canon_conntrack(opts: dict[str, Option]) -> tuple[Option, ...]:
    _only(opts, ("ctstate",), "conntrack")
    opt = _required(opts, "ctstate", "conntrack")
    return (Option("ctstate", (_canon_type_list(opt.args[0], _CTSTATES, "ctstate"),), opt.negated),)


def _mark_value(text: str, what: str) -> tuple[int, int | None]:
    value, slash, mask = text.partition("/")
    return _c_uint(value, what), (_c_uint(mask, what + " mask") if slash else None)


def _canon_mark_match(opts: dict[str, Option]) -> tuple[Option, ...]:
    opt = _required(opts, "mark", "mark")
    value, mask = _mark_value(opt.args[0], "mark")
    mask = U32 if mask is None else mask
    printed = f"0x{value:x}" if mask == U32 else f"0x{value:x}/0x{mask:x}"
    return (Option("mark", (printed,), opt.negated),)


def _canon_statistic(opts: dict[str, Option]) -> tuple[Option, ...]:
    mode = _required(opts, "mode", "statistic").args[0]
    if mode == "random":
        _only(opts, ("mode", "probability"), "statistic (mode random)")
        p = _required(opts, "probability", "statistic")
        return (Option("mode", ("random",)), Option("probability", (save_probability(p.args[0]),), p.negated))
    if mode == "nth":
        _only(opts, ("mode", "every", "packet"), "statistic (mode nth)")
        every_opt = _required(opts, "every", "statistic")
        every = _dec_uint(every_opt.args[0], "--every", 1)
        packet = _dec_uint(_required(opts, "packet", "statistic").args[0], "--packet")
        if packet > every - 1:
            raise ValueError("statistic: the --packet p must be 0 <= p <= n-1")
        return (
            Option("mode", ("nth",)),
            Option("every", (str(every),), every_opt.negated),
            Option("packet", (str(packet),)),
        )
    raise ValueError(f"statistic: bad mode {mode!r}")


def _canon_recent(opts: dict[str, Option]) -> tuple[Option, ...]:
    command = _exclusive(opts, ("set", "rcheck", "update", "remove"), "recent")
    if command is None:
        raise ValueError("recent: you must specify one of --set, --rcheck, --update or --remove")
    side = _exclusive(opts, ("rsource", "rdest"), "recent")
    out = [Option(command.name, (), command.negated)]
    if "seconds" in opts:
        out.append(Option("seconds", (str(_dec_uint(opts["seconds"].args[0], "--seconds", 1)),)))
    if "reap" in opts:
        if "seconds" not in opts:
            raise ValueError('recent: option "--reap" also requires "--seconds"')
        out.append(opts["reap"])
    if "hitcount" in opts:
        out.append(Option("hitcount", (str(_dec_uint(opts["hitcount"].args[0], "--hitcount", 1)),)))
    if "rttl" in opts:
        if command.name not in ("rcheck", "update"):
            raise ValueError(f'recent: option "--rttl" cannot be used together with "--{command.name}"')
        out.append(opts["rttl"])
    name = opts["name"].args[0] if "name" in opts else "DEFAULT"
    if not name or len(name) > MAX_RECENT_NAME:
        raise ValueError(f"recent: --name must be 1-{MAX_RECENT_NAME} characters")
    out.append(Option("name", (name,)))
    mask = str(_ipv4(opts["mask"].args[0], "recent --mask")) if "mask" in opts else "255.255.255.255"
    out.append(Option("mask", (mask,)))
    out.append(Option(side.name if side else "rsource"))
    return tuple(out)


def _canon_nfacct(opts: dict[str, Option]) -> tuple[Option, ...]:
    name = _required(opts, "nfacct-name", "nfacct").args[0]
    if not name or len(name.encode()) > MAX_NFACCT_NAME:
        raise ValueError(f"nfacct: --nfacct-name must be 1-{MAX_NFACCT_NAME} bytes")
    return (Option("nfacct-name", (name,)),)


_MATCH_LIST = (
    _Extension(
        "comment",
        (_OptSpec("comment"),),
        _canon_comment,
        (("comment", lambda o: "--comment " + save_string(o.args[0])),),
    ),
    _Extension("tcp", _port_specs(), _ports_canonical("tcp", omit_full_range=True)),
    _Extension("udp", _port_specs(), _ports_canonical("udp", omit_full_range=True)),
    _Extension("sctp", _port_specs(), _ports_canonical("sctp", omit_full_range=False)),
    _Extension(
        "addrtype",
        (
            _OptSpec("src-type", invertible=True),
            _OptSpec("dst-type", invertible=True),
            _OptSpec("limit-iface-in", 0),
            _OptSpec("limit-iface-out", 0),
        ),
        _canon_addrtype,
    ),
    _Extension("conntrack", (_OptSpec("ctstate", invertible=True),), _canon_conntrack),
    _Extension("mark", (_OptSpec("mark", invertible=True),), _canon_mark_match),
    _Extension(
        "statistic",
        (
            _OptSpec("mode"),
            _OptSpec("probability", invertible=True),
            _OptSpec("every", invertible=True),
            _OptSpec("packet"),
        ),
        _canon_statistic,
    ),
    _Extension(
        "recent",
        (
            _OptSpec("set", 0, invertible=True),
            _OptSpec("rcheck", 0, invertible=True),
            _OptSpec("update", 0, invertible=True),
            _OptSpec("remove", 0, invertible=True),
            _OptSpec("seconds"),
            _OptSpec("reap", 0),
            _OptSpec("hitcount"),
            _OptSpec("rttl", 0),
            _OptSpec("name"),
            _OptSpec("mask"),
            _OptSpec("rsource", 0),
            _OptSpec("rdest", 0),
        ),
        _canon_recent,
    ),
    _Extension(
        "nfacct",
        (_OptSpec("nfacct-name"),),
        _canon_nfacct,
        # iptables 1.8.9 prints two spaces here (" --nfacct-name " then " %s").
        (("nfacct-name", lambda o: "--nfacct-name  " + o.args[0]),),
    ),
)
_MATCHES: dict[str, _Extension] = {e.name: e for e in _MATCH_LIST}
_PROTO_MATCHES = ("tcp", "udp", "sctp")  # loaded implicitly by "-p PROTO --dport ..."


# ---- targets

_REJECT_TYPES = {
    "icmp-net-unreachable": "net-unreach",
    "icmp-host-unreachable": "host-unreach",
    "icmp-proto-unreachable": "proto-unreach",
    "icmp-port-unreachable": "port-unreach",
    "icmp-net-prohibited": "net-prohib",
    "icmp-host-prohibited": "host-prohib",
    "tcp-reset": "tcp-rst",
    "icmp-admin-prohibited": "admin-prohib",
}


def _canon_reject(opts: dict[str, Option]) -> tuple[Option, ...]:
    if "reject-with" not in opts:
        return (Option("reject-with", ("icmp-port-unreachable",)),)
    given = opts["reject-with"].args[0].lower()
    for name, alias in _REJECT_TYPES.items():
        if given in (name, alias):
            return (Option("reject-with", (name,)),)
    raise ValueError(f"REJECT: unknown reject type {given!r}")


def _nat_range(text: str, what: str) -> tuple[str, bool]:
    """``IP[-IP][:PORT[-PORT]]`` in canonical form, and whether it names ports."""
    addr_text, colon, port_text = text.partition(":")
    first, dash, last = addr_text.partition("-")
    lo_ip, hi_ip = _ipv4(first, what), _ipv4(last, what) if dash else _ipv4(first, what)
    if hi_ip < lo_ip:
        raise ValueError(f"{what}: bad address range {addr_text!r}")
    out = str(lo_ip) if lo_ip == hi_ip else f"{lo_ip}-{hi_ip}"
    if not colon:
        return out, False
    if not port_text:
        raise ValueError(f"{what}: empty port after ':' in {text!r}")
    p_first, p_dash, p_last = port_text.partition("-")
    lo = _dec_uint(p_first, "port", 0, 0xFFFF)
    hi = _dec_uint(p_last, "port", 0, 0xFFFF) if p_dash else lo
    if hi < lo:
        raise ValueError(f"{what}: bad port range {port_text!r}")
    return f"{out}:{lo}" if lo == hi else f"{out}:{lo}-{hi}", True


def _nat_canonical(kind: str, to_option: str, flags: Sequence[str]) -> Canonicalizer:
    def canonical(opts: dict[str, Option]) -> tuple[Option, ...]:
        to = _required(opts, to_option, kind)
        value, _ = _nat_range(to.args[0], kind)
        return (Option(to_option, (value,)), *(opts[f] for f in flags if f in opts))

    return canonical


def _canon_masquerade(opts: dict[str, Option]) -> tuple[Option, ...]:
    out = []
    if "to-ports" in opts:
        first, dash, last = opts["to-ports"].args[0].partition("-")
        lo = _dec_uint(first, "port", 0, 0xFFFF)
        hi = _dec_uint(last, "port", 0, 0xFFFF) if dash else lo
        if hi < lo:
            raise ValueError("MASQUERADE: bad --to-ports range")
        out.append(Option("to-ports", (str(lo) if lo == hi else f"{lo}-{hi}",)))
    return (*out, *(opts[f] for f in ("random", "random-fully") if f in opts))


def _canon_mark_target(opts: dict[str, Option]) -> tuple[Option, ...]:
    """libxt_MARK (revision 2) stores (value, mask) and prints ``--set-xmark value/mask``."""
    op = _exclusive(opts, ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"), "MARK")
    if op is None:
        raise ValueError("MARK: one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark is required")
    value, mask = _mark_value(op.args[0], f"MARK --{op.name}")
    if op.name in ("and-mark", "or-mark", "xor-mark") and mask is not None:
        raise ValueError(f"MARK: --{op.name} takes a value without mask")
    if op.name == "set-xmark":
        value, mask = value, U32 if mask is None else mask
    elif op.name == "set-mark":
        value, mask = value, value | (U32 if mask is None else mask)
    elif op.name == "and-mark":
        value, mask = 0, ~value & U32
    elif op.name == "or-mark":
        value, mask = value, value
    else:  # xor-mark
        value, mask = value, 0
    return (Option("set-xmark", (f"0x{value:x}/0x{mask:x}",)),)


_TARGET_LIST = (
    _Extension("REJECT", (_OptSpec("reject-with"),), _canon_reject),
    _Extension(
        "DNAT",
        (_OptSpec("to-destination"), _OptSpec("random", 0), _OptSpec("persistent", 0)),
        _nat_canonical("DNAT", "to-destination", ("random", "persistent")),
    ),
    _Extension(
        "SNAT",
        (_OptSpec("to-source"), _OptSpec("random", 0), _OptSpec("random-fully", 0), _OptSpec("persistent", 0)),
        _nat_canonical("SNAT", "to-source", ("random", "random-fully", "persistent")),
    ),
    _Extension(
        "MASQUERADE",
        (_OptSpec("to-ports"), _OptSpec("random", 0), _OptSpec("random-fully", 0)),
        _canon_masquerade,
    ),
    _Extension(
        "MARK",
        tuple(_OptSpec(n) for n in ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")),
        _canon_mark_target,
    ),
)
_TARGETS: dict[str, _Extension] = {e.name: e for e in _TARGET_LIST}

# Table and built-in chain (hook) restrictions of the targets kslab prints. The kernel refuses
# such a target in a user chain too if a forbidden built-in chain reaches that chain by jumps
# (checked by IptablesState at COMMIT).
_TARGET_TABLES = {"DNAT": "nat", "SNAT": "nat", "MASQUERADE": "nat", "REJECT": "filter"}
_TARGET_BUILTINS = {
    "DNAT": ("PREROUTING", "OUTPUT"),
    "SNAT": ("POSTROUTING", "INPUT"),
    "MASQUERADE": ("POSTROUTING",),
}


# --------------------------------------------------------------------------------------------
# Parsing one rule


@dataclass
class _Loaded:
    """A match or target being parsed: options collected in input order."""

    kind: str  # "match" | "target"
    name: str
    ext: _Extension | None  # None: not modelled (verbatim)
    raw: list[tuple[str, Option]] = field(default_factory=list)  # (flag as written, canonical-name option)
    completed: bool = False  # a later "-m SAME" was loaded (iptables' matchp->completed)
    goto: bool = False


def parse_rule(line: str, table: str = "filter", *, strict: bool = True) -> Rule:
    """Parse one ``-A CHAIN ...`` line (kube-proxy restore text or iptables-save text).

    ``strict=True`` (for text that is about to be loaded or printed) refuses anything kslab
    cannot print exactly. ``strict=False`` (for reading a real node's ``iptables-save``) keeps
    unknown extensions and options verbatim instead and skips the checks the kernel would do.
    A leading ``[packets:bytes]`` counter is accepted and ignored. Raises ValueError naming the
    rule.
    """
    text = line.strip()
    counters = re.match(r"\[\d+:\d+\]\s+", text)
    if counters:
        text = text[counters.end() :]
    try:
        return _parse_tokens(split_args(text), table, strict)
    except ValueError as err:
        raise ValueError(f"{table} rule {line.strip()!r}: {err}") from None


def jump_rule(jump: JumpChain) -> Rule:
    """The rule kube-proxy's EnsureRule puts in a built-in chain for one :class:`JumpChain`."""
    return _parse_tokens(["-A", jump.src, *jump.args()], jump.table, True)


def _parse_tokens(tokens: Sequence[str], table: str, strict: bool) -> Rule:
    if table not in BUILTIN_CHAINS:
        raise ValueError(f"unknown table {table!r}")
    if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
        raise ValueError("a rule line starts with -A CHAIN")
    chain = _check_chain_name(tokens[1])
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
            ext = _MATCHES.get(name)
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
            target = _Loaded("target", name, _TARGETS.get(name), goto=tok in ("-g", "--goto"))
            loaded.append(target)
        elif tok in ("-c", "--set-counters"):  # counters are not kept: iptables-save here prints [0:0]
            for count in take(2, tok):
                _dec_uint(count, "counter", maximum=2**64 - 1)
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

    src, src_neg = value("-s", _canon_address)
    dst, dst_neg = value("-d", _canon_address)
    in_iface, in_neg = value("-i", lambda v, _n: _canon_iface(v))
    out_iface, out_neg = value("-o", lambda v, _n: _canon_iface(v))
    proto, proto_neg = value("-p", _canon_proto)

    matches = tuple(_finish_match(m, strict) for m in loaded if m.kind == "match")
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
        target=_finish_target(target, strict) if target else None,
    )
    if strict:
        _check_rule(rule)
    return rule


def _option_owner(
    flag: str, loaded: list[_Loaded], proto: tuple[str, bool] | None, strict: bool
) -> tuple[_Loaded, _OptSpec | None]:
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
        if proto_name in _PROTO_MATCHES and not any(m.name == proto_name for m in loaded if m.kind == "match"):
            spec = _MATCHES[proto_name].spec(flag)
            if spec is not None:
                implicit = _Loaded("match", proto_name, _MATCHES[proto_name])
                loaded.append(implicit)
                return implicit, spec
    if not strict and loaded:
        last = loaded[-1]
        last.ext = None  # an option kslab does not model: keep this extension verbatim
        return last, None
    raise ValueError(f"unknown option {flag!r}")


def _finish_match(m: _Loaded, strict: bool) -> Match:
    if m.ext is not None:
        try:
            return Match(m.name, m.ext.canonical({o.name: o for _, o in m.raw}))
        except ValueError:
            if strict:
                raise
    return Match(m.name, tuple(replace(o, name=flag[2:]) for flag, o in m.raw), verbatim=True)


def _finish_target(t: _Loaded, strict: bool) -> Target:
    if t.ext is not None:
        try:
            return Target(t.name, t.ext.canonical({o.name: o for _, o in t.raw}), goto=t.goto)
        except ValueError:
            if strict:
                raise
    elif not t.raw:
        if t.goto and t.name in STANDARD_TARGETS:
            raise ValueError(f"-g needs a user chain, not {t.name}")
        if t.name not in STANDARD_TARGETS:
            _check_chain_name(t.name)
        return Target(t.name, goto=t.goto)
    elif strict:
        raise ValueError(f"target -j {t.name} is not supported by kslab")
    return Target(t.name, tuple(replace(o, name=flag[2:]) for flag, o in t.raw), goto=t.goto, verbatim=True)


def _check_rule(rule: Rule) -> None:
    """Refuse rules iptables or the kernel would refuse (so nothing is printed for them)."""
    proto = None if rule.proto_negated else rule.proto
    seen: set[str] = set()
    for m in rule.matches:
        if m.name in _PROTO_MATCHES:
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
    if t.name in _TARGET_TABLES and rule.table != _TARGET_TABLES[t.name]:
        raise ValueError(f"target {t.name} is only valid in the {_TARGET_TABLES[t.name]} table")
    hooks = _TARGET_BUILTINS.get(t.name)
    if hooks and rule.chain in BUILTIN_CHAINS[rule.table] and rule.chain not in hooks:
        raise ValueError(f"target {t.name} is not valid in built-in chain {rule.chain}")
    needs_port_proto = (t.name in ("DNAT", "SNAT") and ":" in t.options[0].args[0]) or t.option("to-ports") is not None
    if needs_port_proto and proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"{t.name} with a port needs -p tcp, udp or sctp")
    reject = t.option("reject-with") if t.name == "REJECT" else None
    if reject and reject.args[0] == "tcp-reset" and proto != "tcp":
        raise ValueError("REJECT --reject-with tcp-reset needs -p tcp")


# --------------------------------------------------------------------------------------------
# Tables and the state of one namespace


@dataclass
class Chain:
    """One chain: ``policy`` is ACCEPT/DROP for a built-in chain and None for a user chain."""

    name: str
    policy: str | None = None
    rules: list[Rule] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass
class TableDump:
    """One table as the kernel holds it: chains (declaration order) with their rules."""

    name: str
    chains: dict[str, Chain] = field(default_factory=dict)

    def snapshot(self) -> TableDump:
        """A copy to roll back to: new chain objects and rule lists (rules are immutable)."""
        return TableDump(self.name, {n: Chain(c.name, c.policy, list(c.rules)) for n, c in self.chains.items()})

    @classmethod
    def empty(cls, name: str) -> TableDump:
        """A table as the kernel creates it: its built-in chains, policy ACCEPT, no rules."""
        if name not in BUILTIN_CHAINS:
            raise ValueError(f"unknown table {name!r}")
        return cls(name, {c: Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]})

    def chain_order(self) -> list[str]:
        """Chains in iptables-save order: built-ins in kernel hook order, then user chains in ASCII order."""
        builtins = [c for c in BUILTIN_CHAINS[self.name] if c in self.chains]
        return builtins + sorted(c for c in self.chains if not self.chains[c].builtin)

    def rules(self) -> Iterator[Rule]:
        """All rules, in iptables-save order."""
        for name in self.chain_order():
            yield from self.chains[name].rules

    def save_text(self) -> str:
        """The table as ``iptables-save -t TABLE`` prints it, without comment lines, counters 0."""
        order = self.chain_order()
        lines = [f"*{self.name}"]
        lines += [f":{c} {self.chains[c].policy or '-'} [0:0]" for c in order]
        lines += [rule.save_text() for c in order for rule in self.chains[c].rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


class IptablesState:
    """The iptables tables of one network namespace, changed the way kube-proxy changes them.

    Operations mirror the commands kube-proxy runs (``-N``, ``-C``, ``-I``,
    ``iptables-restore --noflush``) and raise ValueError where those commands would fail. A
    table exists once anything touched it (iptables-nft does not create a table for an empty
    ``*filter ... COMMIT``); :meth:`save_text` prints existing tables in
    :data:`SAVE_TABLE_ORDER`.
    """

    def __init__(self) -> None:
        self.tables: dict[str, TableDump] = {}

    def _table(self, name: str) -> TableDump:
        if name not in self.tables:
            self.tables[name] = TableDump.empty(name)
        return self.tables[name]

    def ensure_chain(self, table: str, chain: str) -> bool:
        """``iptables -t TABLE -N CHAIN`` where "already exists" is fine; returns whether it existed."""
        t = self._table(table)
        if chain in t.chains:
            return True
        t.chains[_check_chain_name(chain)] = Chain(chain)
        return False

    def ensure_rule_prepend(self, rule: Rule) -> bool:
        """kube-proxy's EnsureRule(Prepend): ``-C`` and, if missing, ``-I CHAIN 1``. Returns whether it existed."""
        chain = self._chain(rule.table, rule.chain)
        if rule in chain.rules:
            return True
        self._check_target(rule)
        chain.rules.insert(0, rule)
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
        restricted = [r for r in t.rules() if r.target is not None and r.target.name in _TARGET_BUILTINS]
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
            bad = sorted(reached_from.get(rule.chain, set()) - set(_TARGET_BUILTINS[rule.target.name]))
            if bad:
                raise ValueError(
                    f"{rule.target.name} is not allowed in {rule.chain}, reached from {bad[0]} "
                    f"(rule {rule.save_text()!r})"
                )

    def restore(self, text: str, *, strict: bool = True) -> None:
        """``iptables-restore --noflush``: apply each table section in order.

        ``:CHAIN - [..]`` creates a user chain or flushes it if it exists; ``:BUILTIN POLICY``
        sets the policy and keeps the rules; ``-A`` appends; ``-X`` deletes a chain that exists,
        is empty and is not referenced. ``#`` lines and counters are ignored.

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
            if policy not in ("ACCEPT", "DROP"):
                raise ValueError(f"bad policy {policy!r} for built-in chain {name}")
            t.chains[name].policy = policy
        elif policy != "-":
            raise ValueError(f"user chain {name} cannot have a policy ({line!r})")
        elif name in t.chains:
            t.chains[name].rules.clear()
        else:
            t.chains[_check_chain_name(name)] = Chain(name)

    def _command(self, table: str, line: str, strict: bool) -> None:
        counters = re.match(r"\[\d+:\d+\]\s+", line)
        body = line[counters.end() :] if counters else line
        args = split_args(body)
        if args and args[0] in ("-A", "--append"):
            rule = parse_rule(line, table, strict=strict)
            chain = self._chain(table, rule.chain)
            if strict:
                self._check_target(rule)
            chain.rules.append(rule)
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

    def full_sync(
        self,
        restore_text: str,
        *,
        jumps: bool = True,
        canary: bool = True,
        kubelet_firewall_jumps: bool | None = None,
    ) -> None:
        """kube-proxy's full sync: canary chains (ipt.Monitor), the jump rules
        (EnsureChain + EnsureRule), then ``iptables-restore --noflush`` of ``restore_text``."""
        if canary:
            for table in CANARY_TABLES:
                self.ensure_chain(table, KUBE_PROXY_CANARY)
        if jumps:
            for jump in full_sync_jump_chains(restore_text, kubelet_firewall_jumps):
                self.ensure_chain(jump.table, jump.dst)
                self.ensure_rule_prepend(jump_rule(jump))
        self.restore(restore_text)

    def partial_sync(self, restore_text: str) -> None:
        """kube-proxy's partial sync: only the restore (the jump rules are left as they are)."""
        self.restore(restore_text)

    def chains(self, table: str) -> list[str]:
        """The chains of ``table`` (``iptables-save -t TABLE`` chain lines), [] if it does not exist."""
        t = self.tables.get(table)
        return t.chain_order() if t else []

    def save_text(self, tables: Iterable[str] | None = None) -> str:
        """``iptables-save`` of the existing tables (or of ``tables`` that exist), in :data:`SAVE_TABLE_ORDER`."""
        wanted = SAVE_TABLE_ORDER if tables is None else tuple(tables)
        return "".join(self.tables[t].save_text() for t in SAVE_TABLE_ORDER if t in wanted and t in self.tables)


# --------------------------------------------------------------------------------------------
# kube-proxy's full sync


def _declares_chain(restore_text: str, table: str, chain: str) -> bool:
    current = None
    for line in restore_text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith(":") and line[1:].split()[:1] == [chain]:
            return True
    return False


def full_sync_jump_chains(restore_text: str, kubelet_firewall_jumps: bool | None = None) -> tuple[JumpChain, ...]:
    """The jump rules a full sync ensures, in the order kube-proxy ensures them.

    :data:`JUMP_CHAINS`, then :data:`KUBELET_JUMP_CHAINS` when kube-proxy writes KUBE-FIREWALL
    itself (IPv4 with localhostNodePorts, visible as ``:KUBE-FIREWALL`` in the filter section),
    unless ``kubelet_firewall_jumps`` says otherwise.
    """
    if kubelet_firewall_jumps is None:
        kubelet_firewall_jumps = _declares_chain(restore_text, "filter", KUBE_FIREWALL)
    return JUMP_CHAINS + (KUBELET_JUMP_CHAINS if kubelet_firewall_jumps else ())


def parse_restore(text: str, *, strict: bool = True) -> dict[str, TableDump]:
    """Load restore or save text into empty tables and return the tables that exist afterwards.

    For ``iptables-save`` text this is the node's tables as printed; for kube-proxy restore text
    it is what that text alone builds (chains it flushes or deletes, rules it appends). Use
    ``strict=False`` to read a real node's dump that contains extensions kslab does not model.
    """
    state = IptablesState()
    state.restore(text, strict=strict)
    return {name: state.tables[name] for name in SAVE_TABLE_ORDER if name in state.tables}


def restore_to_save(
    restore_text: str,
    *,
    jumps: bool = True,
    canary: bool = True,
    kubelet_firewall_jumps: bool | None = None,
) -> str:
    """What ``iptables-save`` prints after kube-proxy's first full sync on a clean node.

    The sync is (a) ``-N KUBE-PROXY-CANARY`` in each of :data:`CANARY_TABLES` (ipt.Monitor),
    (b) for each jump of :func:`full_sync_jump_chains`: EnsureChain, then EnsureRule(Prepend),
    (c) ``iptables-restore --noflush --counters`` of ``restore_text``. The result has no
    ``# Generated``/``# Completed`` lines and all counters ``[0:0]``, tables in
    :data:`SAVE_TABLE_ORDER`. Raises ValueError (naming the rule) for anything that would not
    load or that kslab cannot print exactly.
    """
    state = IptablesState()
    state.full_sync(restore_text, jumps=jumps, canary=canary, kubelet_firewall_jumps=kubelet_firewall_jumps)
    return state.save_text()
