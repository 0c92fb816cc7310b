"""The libxt extensions kslab models: which options each match and target knows, how each
normalises its values (as the kernel stores them) and how its save function prints them.

Matches: comment, tcp, udp, sctp, addrtype, conntrack, mark, statistic, recent, nfacct. Targets:
REJECT, DNAT, SNAT, MASQUERADE, MARK (the standard verdicts and jumps to user chains need no
extension). Each canonicaliser takes the options as given (canonical names, any order) and
returns them in the order and spelling iptables-save prints; it raises ValueError where
iptables would refuse the rule or where kslab could not print it exactly.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .constants import MAX_COMMENT_BYTES, MAX_NFACCT_NAME, MAX_RECENT_NAME, U32
from .save import save_probability, save_string


@dataclass(frozen=True)
class Option:
    """One option of a match or target, e.g. ``! --dport 80`` -> ``Option("dport", ("80",), True)``.

    ``name`` has no leading dashes and is the canonical spelling (``dport``, never
    ``destination-port``); ``args`` are the canonical printed values.
    """

    name: str
    args: tuple[str, ...] = ()
    negated: bool = False


# --------------------------------------------------------------------------------------------
# Option values as libxtables reads them


_C_UINT = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def c_uint(text: str, what: str, maximum: int = U32) -> int:
    """An unsigned integer as C ``strtoul(s, NULL, 0)`` reads it (hex ``0x``, octal ``0``)."""
    if not _C_UINT.fullmatch(text):
        raise ValueError(f"bad {what} {text!r}")
    value = int(text, 16) if text[:2].lower() == "0x" else int(text, 8) if text.startswith("0") else int(text)
    if value > maximum:
        raise ValueError(f"{what} {text!r} out of range (max {maximum})")
    return value


def dec_uint(text: str, what: str, minimum: int = 0, maximum: int = U32) -> int:
    """A plain decimal unsigned integer in [minimum, maximum]."""
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"bad {what} {text!r}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} {text!r} out of range ({minimum}-{maximum})")
    return value


def ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    """A dotted-quad IPv4 address. Hostnames are refused: iptables would resolve them by DNS."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        hint = "; an IPv6 address belongs in ip6tables text (family 6)" if ":" in text else ""
        raise ValueError(f"{what} {text!r} is not a dotted-quad IPv4 address (hostnames are not resolved){hint}") from None


def ipv6(text: str, what: str) -> ipaddress.IPv6Address:
    """An IPv6 address literal (ip6tables' ``inet_pton``). Hostnames, ``[..]`` and ``%scope`` are
    refused: ip6tables would look them up by DNS (measured: ``host/network `fe80::1%eth0' not found``)."""
    try:
        if "%" in text:
            raise ValueError
        return ipaddress.IPv6Address(text)
    except ValueError:
        hint = "; an IPv4 address belongs in iptables text (family 4)" if "." in text and ":" not in text else ""
        raise ValueError(f"{what} {text!r} is not an IPv6 address (hostnames are not resolved){hint}") from None


def ntop6(addr: ipaddress.IPv6Address | int) -> str:
    """An IPv6 address as glibc's ``inet_ntop`` writes it, which is how ip6tables-save prints it.

    That is RFC 5952's compressed form (what :attr:`IPv6Address.compressed` gives) except for
    embedded IPv4: ``::ffff:a.b.c.d`` and ``::a.b.c.d`` (first 96 bits zero, 7th word not zero)
    end in a dotted quad. Measured: ``-d ::ffff:0:0/96`` saves as ``-d ::ffff:0.0.0.0/96``.
    """
    value = int(addr)
    words = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    if words[:5] == [0] * 5 and (words[5] == 0xFFFF or (words[5] == 0 and words[6] != 0)):
        v4 = ipaddress.IPv4Address(value & U32)
        return f"::ffff:{v4}" if words[5] == 0xFFFF else f"::{v4}"
    return ipaddress.IPv6Address(value).compressed


def ip_text(text: str, what: str, family: int) -> str:
    """One address of ``family`` (4 or 6) in the form iptables-save prints it."""
    return str(ipv4(text, what)) if family == 4 else ntop6(ipv6(text, what))


FAMILIES = (4, 6)


def check_family(family: object) -> int:
    """``family`` itself if it is 4 or 6 (iptables or ip6tables); ValueError otherwise."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not 4 (iptables) or 6 (ip6tables)")
    return family  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Extensions: which options each knows, how its save function orders and prints them


@dataclass(frozen=True)
class OptSpec:
    name: str
    nargs: int = 1
    invertible: bool = False
    aliases: tuple[str, ...] = ()


Canonicalizer = Callable[[dict[str, Option]], tuple[Option, ...]]


@dataclass(frozen=True)
class Extension:
    """What kslab knows of one libxt extension: its options, normaliser and print quirks."""

    name: str
    options: tuple[OptSpec, ...]
    canonical: Canonicalizer
    formatters: tuple[tuple[str, Callable[[Option], str]], ...] = ()
    canonical6: Canonicalizer | None = None  # ip6tables' libip6t_/libxt_ variant where it differs

    def canonicalize(self, opts: dict[str, Option], family: int = 4) -> tuple[Option, ...]:
        """The options as the kernel holds them for a rule of ``family`` (4: iptables, 6: ip6tables)."""
        if family == 6 and self.canonical6 is not None:
            return self.canonical6(opts)
        return self.canonical(opts)

    def spec(self, flag: str) -> OptSpec | None:
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


def format_options(ext: Extension | None, options: Iterable[Option], verbatim: bool) -> list[str]:
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
        port = c_uint(text, "port (service names are not resolved)", 0xFFFF)
        return port, port
    lo = c_uint(lo_text, "port", 0xFFFF) if lo_text else 0
    hi = c_uint(hi_text, "port", 0xFFFF) if hi_text else 0xFFFF
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


def _port_specs() -> tuple[OptSpec, ...]:
    return (
        OptSpec("sport", invertible=True, aliases=("source-port",)),
        OptSpec("dport", invertible=True, aliases=("destination-port",)),
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
    return c_uint(value, what), (c_uint(mask, what + " mask") if slash else None)


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
        every = dec_uint(every_opt.args[0], "--every", 1)
        packet = dec_uint(_required(opts, "packet", "statistic").args[0], "--packet")
        if packet > every - 1:
            raise ValueError("statistic: the --packet p must be 0 <= p <= n-1")
        return (
            Option("mode", ("nth",)),
            Option("every", (str(every),), every_opt.negated),
            Option("packet", (str(packet),)),
        )
    raise ValueError(f"statistic: bad mode {mode!r}")


_RECENT_FULL_MASK = {4: "255.255.255.255", 6: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}


def _canon_recent(opts: dict[str, Option], family: int = 4) -> tuple[Option, ...]:
    """libxt_recent: ``--mask`` is an address of the rule's family, all ones by default (measured:
    ip6tables prints ``--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff``; a prefix length or a
    dotted mask is refused there)."""
    command = _exclusive(opts, ("set", "rcheck", "update", "remove"), "recent")
    if command is None:
        raise ValueError("recent: you must specify one of --set, --rcheck, --update or --remove")
    side = _exclusive(opts, ("rsource", "rdest"), "recent")
    out = [Option(command.name, (), command.negated)]
    if "seconds" in opts:
        out.append(Option("seconds", (str(dec_uint(opts["seconds"].args[0], "--seconds", 1)),)))
    if "reap" in opts:
        if "seconds" not in opts:
            raise ValueError('recent: option "--reap" also requires "--seconds"')
        out.append(opts["reap"])
    if "hitcount" in opts:
        out.append(Option("hitcount", (str(dec_uint(opts["hitcount"].args[0], "--hitcount", 1)),)))
    if "rttl" in opts:
        if command.name not in ("rcheck", "update"):
            raise ValueError(f'recent: option "--rttl" cannot be used together with "--{command.name}"')
        out.append(opts["rttl"])
    name = opts["name"].args[0] if "name" in opts else "DEFAULT"
    if not name or len(name) > MAX_RECENT_NAME:
        raise ValueError(f"recent: --name must be 1-{MAX_RECENT_NAME} characters")
    out.append(Option("name", (name,)))
    mask = ip_text(opts["mask"].args[0], "recent --mask", family) if "mask" in opts else _RECENT_FULL_MASK[family]
    out.append(Option("mask", (mask,)))
    out.append(Option(side.name if side else "rsource"))
    return tuple(out)


def _canon_nfacct(opts: dict[str, Option]) -> tuple[Option, ...]:
    name = _required(opts, "nfacct-name", "nfacct").args[0]
    if not name or len(name.encode()) > MAX_NFACCT_NAME:
        raise ValueError(f"nfacct: --nfacct-name must be 1-{MAX_NFACCT_NAME} bytes")
    return (Option("nfacct-name", (name,)),)


_MATCH_LIST = (
    Extension(
        "comment",
        (OptSpec("comment"),),
        _canon_comment,
        (("comment", lambda o: "--comment " + save_string(o.args[0])),),
    ),
    Extension("tcp", _port_specs(), _ports_canonical("tcp", omit_full_range=True)),
    Extension("udp", _port_specs(), _ports_canonical("udp", omit_full_range=True)),
    Extension("sctp", _port_specs(), _ports_canonical("sctp", omit_full_range=False)),
    Extension(
        "addrtype",
        (
            OptSpec("src-type", invertible=True),
            OptSpec("dst-type", invertible=True),
            OptSpec("limit-iface-in", 0),
            OptSpec("limit-iface-out", 0),
        ),
        _canon_addrtype,
    ),
    Extension("conntrack", (OptSpec("ctstate", invertible=True),), _canon_conntrack),
    Extension("mark", (OptSpec("mark", invertible=True),), _canon_mark_match),
    Extension(
        "statistic",
        (
            OptSpec("mode"),
            OptSpec("probability", invertible=True),
            OptSpec("every", invertible=True),
            OptSpec("packet"),
        ),
        _canon_statistic,
    ),
    Extension(
        "recent",
        (
            OptSpec("set", 0, invertible=True),
            OptSpec("rcheck", 0, invertible=True),
            OptSpec("update", 0, invertible=True),
            OptSpec("remove", 0, invertible=True),
            OptSpec("seconds"),
            OptSpec("reap", 0),
            OptSpec("hitcount"),
            OptSpec("rttl", 0),
            OptSpec("name"),
            OptSpec("mask"),
            OptSpec("rsource", 0),
            OptSpec("rdest", 0),
        ),
        _canon_recent,
        canonical6=lambda opts: _canon_recent(opts, 6),
    ),
    Extension(
        "nfacct",
        (OptSpec("nfacct-name"),),
        _canon_nfacct,
        # iptables 1.8.9 prints two spaces here (" --nfacct-name " then " %s").
        (("nfacct-name", lambda o: "--nfacct-name  " + o.args[0]),),
    ),
)
MATCHES: dict[str, Extension] = {e.name: e for e in _MATCH_LIST}
PROTO_MATCHES = ("tcp", "udp", "sctp")  # loaded implicitly by "-p PROTO --dport ..."


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


# libip6t_REJECT's names and aliases; every one measured on iptables 1.8.9 (both backends) to
# print as its name. There is no ``tcp-rst`` alias in ip6tables (measured: "unknown reject type").
_REJECT6_TYPES = {
    "icmp6-no-route": "no-route",
    "icmp6-adm-prohibited": "adm-prohibited",
    "icmp6-addr-unreachable": "addr-unreach",
    "icmp6-port-unreachable": "port-unreach",
    "icmp6-policy-fail": "policy-fail",
    "icmp6-reject-route": "reject-route",
    "tcp-reset": "tcp-reset",
}
_REJECT_DEFAULT = {4: "icmp-port-unreachable", 6: "icmp6-port-unreachable"}


def _canon_reject(opts: dict[str, Option], family: int = 4) -> tuple[Option, ...]:
    if "reject-with" not in opts:
        return (Option("reject-with", (_REJECT_DEFAULT[family],)),)
    given = opts["reject-with"].args[0].lower()
    for name, alias in (_REJECT_TYPES if family == 4 else _REJECT6_TYPES).items():
        if given in (name, alias):
            return (Option("reject-with", (name,)),)
    raise ValueError(f"REJECT: unknown reject type {given!r}" + (" for ip6tables (icmp6-...)" if family == 6 else ""))


def _nat_range(text: str, what: str) -> tuple[str, bool]:
    """``IP[-IP][:PORT[-PORT]]`` in canonical form, and whether it names ports."""
    addr_text, colon, port_text = text.partition(":")
    first, dash, last = addr_text.partition("-")
    lo_ip, hi_ip = ipv4(first, what), ipv4(last, what) if dash else ipv4(first, what)
    if hi_ip < lo_ip:
        raise ValueError(f"{what}: bad address range {addr_text!r}")
    out = str(lo_ip) if lo_ip == hi_ip else f"{lo_ip}-{hi_ip}"
    if not colon:
        return out, False
    return f"{out}:{_nat_ports(port_text, text, what)}", True


def _nat_ports(port_text: str, text: str, what: str) -> str:
    """``PORT[-PORT]`` of a NAT range, each read like ``strtoul(s, 0, 0)`` (measured on both
    families and backends: ``:010`` is port 8, ``:0x10`` is 16, ``:080`` is refused)."""
    if not port_text:
        raise ValueError(f"{what}: empty port after ':' in {text!r}")
    p_first, p_dash, p_last = port_text.partition("-")
    lo = c_uint(p_first, "port", 0xFFFF)
    hi = c_uint(p_last, "port", 0xFFFF) if p_dash else lo
    if hi < lo:
        raise ValueError(f"{what}: bad port range {port_text!r}")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _nat_range6(text: str, what: str) -> tuple[str, bool]:
    """ip6tables' ``ADDR[-ADDR]`` or ``[ADDR[-ADDR]]:PORT[-PORT]`` in canonical form, and whether it names ports.

    Measured on iptables 1.8.9 (both backends): a port needs the brackets (``fd00::1:80`` is the
    address ``fd00::1:80``); brackets without a port are dropped (``[fd00::5]`` prints
    ``fd00::5``); libxt_DNAT's ``parse_to`` takes the first ``:`` after ``]`` as the port and
    ignores anything else there (``[fd00::1]x`` prints ``fd00::1``, ``[fd00::1]x:80`` prints
    ``[fd00::1]:80``, ``[a]-[b]:p`` is refused as port ``b]:p``); an address range is not ordered
    (``fd00::5-fd00::1`` prints as given) and ``a-a`` prints ``a``; addresses print as
    ``inet_ntop`` writes them.
    """
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{what}: missing ']' in {text!r}")
        _, colon, port_text = rest.partition(":")
        ports = _nat_ports(port_text, text, what) if colon else None
    else:
        inner, ports = text, None
    first, dash, last = inner.partition("-")
    lo, hi = ip_text(first, what, 6), ip_text(last, what, 6) if dash else None
    out = lo if hi is None or hi == lo else f"{lo}-{hi}"
    return (f"[{out}]:{ports}", True) if ports is not None else (out, False)


def _nat_canonical(kind: str, to_option: str, flags: Sequence[str], family: int = 4) -> Canonicalizer:
    parse = _nat_range if family == 4 else _nat_range6

    def canonical(opts: dict[str, Option]) -> tuple[Option, ...]:
        to = _required(opts, to_option, kind)
        value, _ = parse(to.args[0], kind)
        return (Option(to_option, (value,)), *(opts[f] for f in flags if f in opts))

    return canonical


def _canon_masquerade(opts: dict[str, Option]) -> tuple[Option, ...]:
    out = []
    if "to-ports" in opts:
        first, dash, last = opts["to-ports"].args[0].partition("-")
        lo = dec_uint(first, "port", 0, 0xFFFF)
        hi = dec_uint(last, "port", 0, 0xFFFF) if dash else lo
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
    Extension("REJECT", (OptSpec("reject-with"),), _canon_reject, canonical6=lambda opts: _canon_reject(opts, 6)),
    Extension(
        "DNAT",
        (OptSpec("to-destination"), OptSpec("random", 0), OptSpec("persistent", 0)),
        _nat_canonical("DNAT", "to-destination", ("random", "persistent")),
        canonical6=_nat_canonical("DNAT", "to-destination", ("random", "persistent"), 6),
    ),
    Extension(
        "SNAT",
        (OptSpec("to-source"), OptSpec("random", 0), OptSpec("random-fully", 0), OptSpec("persistent", 0)),
        _nat_canonical("SNAT", "to-source", ("random", "random-fully", "persistent")),
        canonical6=_nat_canonical("SNAT", "to-source", ("random", "random-fully", "persistent"), 6),
    ),
    Extension(
        "MASQUERADE",
        (OptSpec("to-ports"), OptSpec("random", 0), OptSpec("random-fully", 0)),
        _canon_masquerade,
    ),
    Extension(
        "MARK",
        tuple(OptSpec(n) for n in ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")),
        _canon_mark_target,
    ),
)
TARGETS: dict[str, Extension] = {e.name: e for e in _TARGET_LIST}

# Table and built-in chain (hook) restrictions of the targets kslab prints. The kernel refuses
# such a target in a user chain too if a forbidden built-in chain reaches that chain by jumps
# (checked by IptablesState at COMMIT).
TARGET_TABLES = {"DNAT": "nat", "SNAT": "nat", "MASQUERADE": "nat", "REJECT": "filter"}
TARGET_BUILTINS = {
    "DNAT": ("PREROUTING", "OUTPUT"),
    "SNAT": ("POSTROUTING", "INPUT"),
    "MASQUERADE": ("POSTROUTING",),
}
