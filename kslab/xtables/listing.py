"""iptables' listing commands, printed from kslab's tables: ``iptables -S`` (``--list-rules``),
``iptables -L`` (``--list``) and ``iptables-save``, as iptables v1.8.9 with the nf_tables backend
(Debian's default, what kind nodes and the netns lab run) prints them.

What the nf_tables backend prints that legacy does not: with ``-n``, the protocol column is a
number (``6``, not ``tcp``; ``0`` for any), and a built-in chain's policy counters are always
0 (nf_tables keeps no counters for a policy). Rule counters are the rules' own
(:class:`~kslab.xtables.Counters`). Column widths and each extension's words follow iptables'
``print_header``/``print_rule_details`` (xshared.c) and the extensions' ``print`` functions;
``tests/test_shell.py`` compares them with the real tool on every extension kslab models.

Only the numeric listing is printed: without ``-n`` iptables looks up every address in DNS,
which a lab without a DNS server for its addresses cannot answer (and kslab does not guess).

``ip6tables`` (``family=6``, or tables whose :attr:`~kslab.xtables.TableDump.family` is 6)
prints the same layout (measured, nf_tables 1.8.9): ``::/0`` for any address, ``/128``
dropped, the same column widths (a longer address pushes the next column), protocol 58 for
ICMPv6, and ``ip6tables`` / ``ip6tables-save`` in its messages and header.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from .rule import Match, Rule, Target
from .save import SAVE_TABLE_ORDER
from .state import Chain, Counters, TableDump

__all__ = ["NoSuchChain", "list_rules", "list_table", "save", "save_header", "IPTABLES_VERSION"]

IPTABLES_VERSION = "v1.8.9 (nf_tables)"
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58}


def _tool(family: int) -> str:
    return "iptables" if family == 4 else "ip6tables"


class NoSuchChain(ValueError):
    """The chain is not in the table; ``str()`` is iptables' own message (exit status 1)."""

    def __init__(self, table: str, chain: str, family: int = 4) -> None:
        # iptables-nft 1.8.9 says this for any chain it cannot find (ip6tables-nft likewise)
        super().__init__(f"{_tool(family)} {IPTABLES_VERSION}: chain `{chain}' in table `{table}' is incompatible, use 'nft' tool.")


def _table(tables: Mapping[str, TableDump], name: str, family: int = 4) -> TableDump:
    """The table, or an empty one: iptables-nft lists a table nobody created as its bare built-in chains."""
    return tables.get(name) or TableDump.empty(name, family)


def _chains(table: TableDump, chain: str | None) -> list[Chain]:
    if chain is None:
        return [table.chains[c] for c in table.chain_order()]
    if chain not in table.chains:
        raise NoSuchChain(table.name, chain, table.family)
    return [table.chains[chain]]


# ---- iptables -S ---------------------------------------------------------------------------------


def _rule_spec(rule: Rule, counters: Counters | None) -> str:
    """The rule's ``-A`` line; with counters (``-S -v``), ``-c PACKETS BYTES`` before the target."""
    text = rule.save_text()
    if counters is None:
        return text
    c = f"-c {counters.packets} {counters.bytes}"
    if rule.target is None:
        return f"{text} {c}"
    target = rule.target.save_text()
    return f"{text[: -len(target) - 1]} {c} {target}"


def list_rules(tables: Mapping[str, TableDump], table: str, chain: str | None = None, *, verbose: bool = False,
               family: int = 4) -> str:
    """``iptables -t TABLE -S [CHAIN] [-v]``: ``-P`` lines for built-in chains, ``-N`` for user
    chains, then every rule as ``-A`` (with ``-v``, its counters as ``-c P B``). Raises
    :class:`NoSuchChain`. ``family=6``: ``ip6tables -S`` (for a table ``tables`` does not hold)."""
    chains = _chains(_table(tables, table, family), chain)
    lines = []
    for c in chains:
        if c.builtin:
            lines.append(f"-P {c.name} {c.policy}" + (" -c 0 0" if verbose else ""))
        else:
            lines.append(f"-N {c.name}")
    for c in chains:
        lines += [_rule_spec(r, n if verbose else None) for r, n in zip(c.rules, c.counters)]
    return "".join(line + "\n" for line in lines)


# ---- iptables -L ---------------------------------------------------------------------------------


def _number(value: int, exact: bool) -> str:
    """``xtables_print_num``: exact (``-x``) or shortened to K, M, G, T over 99999."""
    if exact:
        return f"{value:8d} "
    if value <= 99999:
        return f"{value:5d} "
    for suffix in "KMGT":
        value = (value + 500) // 1000
        if value <= 9999 or suffix == "T":
            return f"{value:4d}{suffix} "
    raise AssertionError("unreachable")


def _address(cidr: str | None, family: int = 4) -> str:
    """An address as ``-L -n`` prints it: ``/32`` dropped, ``0.0.0.0/0`` for any (IPv6: ``/128``
    dropped, ``::/0`` for any)."""
    if cidr is None:
        return "0.0.0.0/0" if family == 4 else "::/0"
    host = "/32" if family == 4 else "/128"
    return cidr[: -len(host)] if cidr.endswith(host) else cidr


def _ports(label: str, text: str, negated: bool) -> str:
    inv = "!" if negated else ""
    lo, sep, hi = text.partition(":")
    if not sep:
        return f" {label}:{inv}{lo}"
    return f" {label}s:{inv}{lo}:{hi}"


def _match_words(m: Match) -> str:
    """What a match's ``print`` function prints (numeric)."""
    if m.verbatim:
        raise ValueError(f"-m {m.name} is not an extension kslab models, so it cannot print its listing")
    opts = {o.name: o for o in m.options}
    if m.name == "comment":
        return f" /* {opts['comment'].args[0]} */"
    if m.name in ("tcp", "udp", "sctp"):
        out = f" {m.name}"
        for name, label in (("sport", "spt"), ("dport", "dpt")):
            if name in opts:
                out += _ports(label, opts[name].args[0], opts[name].negated)
        return out
    if m.name == "addrtype":
        out = " ADDRTYPE match"
        for name in ("src-type", "dst-type"):
            if name in opts:
                out += f" {name} {'!' if opts[name].negated else ''}{opts[name].args[0]}"
        out += " limit-in" if "limit-iface-in" in opts else ""
        out += " limit-out" if "limit-iface-out" in opts else ""
        return out
    if m.name == "conntrack":
        o = opts["ctstate"]
        return f"{' !' if o.negated else ''} ctstate {o.args[0]}"
    if m.name == "mark":
        o = opts["mark"]
        return f" mark match{' !' if o.negated else ''} {o.args[0]}"
    if m.name == "statistic":
        if opts["mode"].args[0] == "random":
            o = opts["probability"]
            return f" statistic mode random{' !' if o.negated else ''} probability {o.args[0]}"
        every, packet = opts["every"], opts["packet"].args[0]
        return f" statistic mode nth{' !' if every.negated else ''} every {every.args[0]}" + (f" packet {packet}" if packet != "0" else "")
    if m.name == "recent":
        command = next(o for o in m.options if o.name in ("set", "rcheck", "update", "remove"))
        word = {"set": "SET", "rcheck": "CHECK", "update": "UPDATE", "remove": "REMOVE"}[command.name]
        out = f"{' !' if command.negated else ''} recent: {word}"
        out += f" seconds: {opts['seconds'].args[0]}" if "seconds" in opts else ""
        out += " reap" if "reap" in opts else ""
        out += f" hit_count: {opts['hitcount'].args[0]}" if "hitcount" in opts else ""
        out += " TTL-Match" if "rttl" in opts else ""
        out += f" name: {opts['name'].args[0]}"
        out += " side: dest" if "rdest" in opts else " side: source"
        return out + f" mask: {opts['mask'].args[0]}"
    if m.name == "nfacct":
        return f" nfacct-name  {opts['nfacct-name'].args[0]}"
    raise ValueError(f"kslab cannot print the listing of -m {m.name}")


def _mark_target(text: str) -> str:
    value_text, _, mask_text = text.partition("/")
    value, mask = int(value_text, 16), int(mask_text, 16)
    if value == 0:
        return f" MARK and 0x{~mask & 0xFFFFFFFF:x}"
    if value == mask:
        return f" MARK or 0x{value:x}"
    if mask == 0:
        return f" MARK xor 0x{value:x}"
    if mask == 0xFFFFFFFF:
        return f" MARK set 0x{value:x}"
    return f" MARK xset 0x{value:x}/0x{mask:x}"


def _target_words(t: Target) -> str:
    """What a target's ``print`` function prints (nothing for verdicts and jumps)."""
    if t.verbatim:
        raise ValueError(f"-j {t.name} is not a target kslab models, so it cannot print its listing")
    opts = {o.name: o for o in t.options}
    flags = "".join(f" {f}" for f in ("random", "random-fully", "persistent") if f in opts)
    if t.name in ("DNAT", "SNAT"):
        to = opts["to-destination" if t.name == "DNAT" else "to-source"].args[0]
        return f" to:{to}{flags}"
    if t.name == "MASQUERADE":
        ports = f" masq ports: {opts['to-ports'].args[0]}" if "to-ports" in opts else ""
        return ports + flags
    if t.name == "MARK":
        return _mark_target(opts["set-xmark"].args[0])
    if t.name == "REJECT":
        return f" reject-with {opts['reject-with'].args[0]}"
    return ""


def _rule_line(rule: Rule, counters: Counters, number: int, *, verbose: bool, exact: bool, line_numbers: bool) -> str:
    out = f"{number:<4} " if line_numbers else ""
    if verbose:
        out += _number(counters.packets, exact) + _number(counters.bytes, exact)
    target = rule.target
    out += f"{target.name if target else '':<9} "
    out += "!" if rule.proto_negated else " "
    out += f"{_PROTO_NUMBERS.get(rule.proto or '', 0)!s:<4} "
    out += "-- "
    if verbose:
        out += f" {('!' if rule.in_negated else '') + (rule.in_iface or '*'):<6} "
        out += f"{('!' if rule.out_negated else '') + (rule.out_iface or '*'):<6} "
    out += ("!" if rule.src_negated else " ") + f"{_address(rule.src, rule.family):<19} "
    out += ("!" if rule.dst_negated else " ") + f"{_address(rule.dst, rule.family):<19} "
    if target is not None and target.goto:
        out += "[goto] "
    out += "".join(_match_words(m) for m in rule.matches)
    if target is not None:
        out += _target_words(target)
    return out


def _references(table: TableDump, chain: str) -> int:
    """How many rules of the table jump (or go) to ``chain``: what ``-L`` shows as its references."""
    return sum(1 for r in table.rules() if r.target is not None and r.target.name == chain)


def _header(verbose: bool, exact: bool, line_numbers: bool) -> str:
    out = "num  " if line_numbers else ""
    if verbose:
        out += f"{'pkts':>8} {'bytes':>10} " if exact else f"{'pkts':>5} {'bytes':>5} "
    out += f"{'target':<9}  prot opt"
    if verbose:
        out += f" {'in':<6} {'out':<6} "
    return out + f" {'source':<19}  {'destination':<19} "


def list_table(
    tables: Mapping[str, TableDump],
    table: str,
    chain: str | None = None,
    *,
    verbose: bool = False,
    exact: bool = False,
    line_numbers: bool = False,
    family: int = 4,
) -> str:
    """``iptables -t TABLE -L [CHAIN] -n [-v] [-x] [--line-numbers]``. Raises :class:`NoSuchChain`,
    and ValueError for a rule with an extension kslab does not model. ``family=6``:
    ``ip6tables -L`` (for a table ``tables`` does not hold; a held table knows its family)."""
    t = _table(tables, table, family)
    blocks = []
    for c in _chains(t, chain):
        if c.builtin:
            head = f"Chain {c.name} (policy {c.policy}" + (" 0 packets, 0 bytes)" if verbose else ")")
        else:
            head = f"Chain {c.name} ({_references(t, c.name)} references)"
        lines = [head, _header(verbose, exact, line_numbers)]
        lines += [_rule_line(r, n, i, verbose=verbose, exact=exact, line_numbers=line_numbers)
                  for i, (r, n) in enumerate(zip(c.rules, c.counters), 1)]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


# ---- iptables-save -------------------------------------------------------------------------------


def save_header(when: float | None = None, family: int = 4) -> tuple[str, str]:
    """The comment lines iptables-save (``ip6tables-save`` for ``family=6``) prints around a
    table, stamped with ``when`` (now)."""
    stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(when))
    return f"# Generated by {_tool(family)}-save {IPTABLES_VERSION} on {stamp}", f"# Completed on {stamp}"


def save(tables: Mapping[str, TableDump], names: Iterable[str] | None = None, *, counters: bool = False,
         when: float | None = None, family: int = 4) -> str:
    """``iptables-save [-t TABLE] [-c]``: the tables that exist (``names=None``) in
    :data:`SAVE_TABLE_ORDER`, each between its ``# Generated``/``# Completed`` lines; a table
    named with ``-t`` is printed even if nothing created it (as iptables-nft does).
    ``family=6``: ``ip6tables-save``."""
    first, last = save_header(when, family)
    if names is None:
        chosen = [tables[n] for n in SAVE_TABLE_ORDER if n in tables]
    else:
        chosen = [_table(tables, n, family) for n in names]
    return "".join(f"{first}\n{t.save_text(counters)}{last}\n" for t in chosen)
