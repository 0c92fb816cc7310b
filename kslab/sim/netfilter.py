"""An interpreter of one network namespace's iptables ruleset, executed the way netfilter does.

:meth:`Netfilter.from_text` loads ``iptables-save`` output (kslab's own or a real node's, other
software's chains such as DOCKER or FLANNEL included) or kube-proxy's restore text through
:func:`kslab.xtables.parse_restore`, then compiles every rule once. :meth:`Netfilter.run_hook`
walks a packet through the tables registered at one hook, in kernel priority order:

==============  ============================================
PREROUTING      raw (-300), mangle (-150), nat/DNAT (-100)
INPUT           mangle (-150), filter (0), nat/SNAT (100)
FORWARD         mangle (-150), filter (0)
OUTPUT          raw (-300), mangle (-150), nat/DNAT (-100), filter (0)
POSTROUTING     mangle (-150), nat/SNAT (100)
==============  ============================================

Kernel semantics kept (``ipt_do_table`` and the nat hooks):

- the nat table sees only the first packet of a connection (``ctx.ct_state == "NEW"``); later
  packets are translated by conntrack, which is the caller's business;
- DNAT rewrites the packet at once, so later tables and routing see the new destination, and
  conntrack's DNAT status becomes visible to ``--ctstate DNAT`` in later tables; SNAT and
  MASQUERADE are only recorded in :attr:`HookResult.nat` (``to_ip`` empty for MASQUERADE):
  the source is chosen after routing, from the out interface's address, which the caller knows;
- a NAT target, like ACCEPT, ends its table; DROP and REJECT end the hook;
- ``-j CHAIN`` pushes a return point, ``-g CHAIN`` does not, so a RETURN (or the end) of a
  chain entered by goto resumes after the last ``-j`` still on the stack; with the stack empty,
  RETURN or the end of a chain applies the built-in chain's policy;
- rules are tested criterion by criterion in kernel order (``-s -d -i -o -p``, then matches in
  order) and stop at the first that fails, so ``statistic``, ``recent`` and ``nfacct`` have
  their side effects exactly when the kernel's would.

Each rule's criteria compile to one Python function (generated once per *shape* of rule and
filled with the rule's constants), so testing a rule is one call. Long chains (KUBE-SERVICES,
KUBE-NODEPORTS) get an index on (destination, protocol, port): only the rules that can match a
packet are tested, in chain order, and :attr:`HookResult.rules_evaluated` still counts what a
linearly scanning kernel evaluates.

A match or target kslab does not execute raises :class:`~kslab.errors.InputError` naming the
rule. By default that happens when a packet's fate first depends on the rule (a real node's
dump may hold chains the packet never enters); ``from_text(..., strict=True)`` refuses it at load.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..xtables import SAVE_TABLE_ORDER, Counters, Match, Option, Rule, TableDump, Target, parse_restore
from .packet import PACKET_BYTES, HookContext, host_port, HookResult, NatAction, Packet, RecentEntry, TraceStep

HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
INDEX_MIN_RULES = 16  # shorter chains are scanned: an index would not pay for itself
RECENT_LIST_TOTAL = 100  # xt_recent ip_list_tot: addresses per list
RECENT_STAMPS = 32  # time stamps per address: ip_pkt_list_tot=0 (Linux >= 4.14's default) gives a ring of 32
RECENT_HZ = 250  # jiffies per second (CONFIG_HZ of Debian's and Ubuntu's kernels): xt_recent's clock
RECENT_INITIAL_JIFFIES = (1 << 32) - 300 * RECENT_HZ  # the kernel's INITIAL_JIFFIES: jiffies at boot (sim clock 0)
SENDER_TTL = 64  # net.ipv4.ip_default_ttl: what a recent list records (see _match_recent)
# Targets that do not change the packet's path in the sim: noted in the trace, then the next rule.
NOTE_TARGETS = frozenset({"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CHECKSUM", "TCPMSS"})
TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "URG", "PSH"})
ICMP_TYPES = {  # iptables' names (iptables-save prints numbers): name -> (type, code or None for any)
    "any": (255, None), "echo-reply": (0, None), "pong": (0, None), "destination-unreachable": (3, None),
    "network-unreachable": (3, 0), "host-unreachable": (3, 1), "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3), "fragmentation-needed": (3, 4), "source-quench": (4, None),
    "redirect": (5, None), "echo-request": (8, None), "ping": (8, None), "router-advertisement": (9, None),
    "router-solicitation": (10, None), "time-exceeded": (11, None), "ttl-exceeded": (11, None),
    "parameter-problem": (12, None), "timestamp-request": (13, None), "timestamp-reply": (14, None),
}  # fmt: skip

# What a compiled rule does once its criteria match.
OP_CONTINUE, OP_NOTE, OP_MARK, OP_NOTRACK, OP_JUMP, OP_GOTO, OP_RETURN, OP_ACCEPT, OP_DROP, OP_REJECT, OP_NAT = range(11)

Test = Callable[[Packet, HookContext, int, int], bool]  # (packet, context, source int, destination int)
Check = Callable[[Packet, HookContext], bool]


class _IpInts(dict[str, int]):
    """Address text -> integer, parsed once: a dict hit is several times cheaper than ipaddress."""

    def __missing__(self, ip: str) -> int:
        if len(self) > 1 << 16:
            self.clear()
        value = self[ip] = int(ipaddress.ip_address(ip))
        return value


_IP = _IpInts()
_RULE_IDS = itertools.count(1)  # distinct per compiled rule: xt_statistic's nth counter is per rule


class _Unsupported(Exception):
    """A match, target or option the interpreter cannot execute (message: what it is)."""


# --------------------------------------------------------------------------------------------
# Criteria: each compiles to an expression fragment; a rule's fragments fuse into one function


Fragment = tuple[str, tuple[object, ...]]  # (expression template with {} per constant, constants)
_FACTORIES: dict[tuple[str, ...], Callable[..., Test]] = {}


def _fuse(fragments: Sequence[Fragment]) -> Test | None:
    """One function testing all fragments in order with short-circuit ``and`` (None: always true).

    The source depends only on the templates (the rule's *shape*), never on rule text, so it is
    generated and compiled once per shape and each rule only fills in its constants.
    """
    if not fragments:
        return None
    shape = tuple(t for t, _ in fragments)
    make = _FACTORIES.get(shape)
    if make is None:
        exprs, n = [], 0
        for template, values in fragments:
            exprs.append(template.format(*(f"k{n + i}" for i in range(len(values)))))
            n += len(values)
        params = ", ".join(f"k{i}" for i in range(n))
        source = f"def make({params}):\n    def test(p, c, s, d):\n        return {' and '.join(exprs)}\n    return test\n"
        namespace: dict[str, Callable[..., Test]] = {}
        exec(compile(source, "<netfilter rule shape>", "exec"), namespace)  # the templates are ours, never rule text
        make = _FACTORIES[shape] = namespace["make"]
    return make(*(v for _, values in fragments for v in values))


U128 = (1 << 128) - 1


def _full_mask(text: str) -> int:
    """The all-ones mask of ``text``'s family: 32 bits for IPv4, 128 for IPv6 (``:`` in it)."""
    return U128 if ":" in text else 0xFFFFFFFF


def _cidr(text: str) -> tuple[int, int]:
    """(network, mask) of ``a.b.c.d/nn``, ``a.b.c.d/m.m.m.m`` or ``fd00::/nn`` (kslab.xtables'
    canonical forms; ip6tables prints ``/128`` for a host)."""
    addr, _, plen = text.partition("/")
    full = _full_mask(addr)
    if not plen:
        return _IP[addr], full
    bits = 128 if full == U128 else 32
    mask = _IP[plen] if ("." in plen or ":" in plen) else (full << (bits - int(plen))) & full
    return _IP[addr] & mask, mask


def _address(var: str, text: str, negated: bool) -> Fragment:
    net, mask = _cidr(text)
    op = "!=" if negated else "=="
    if mask == _full_mask(text.partition("/")[0]):
        return f"{var} {op} {{}}", (net,)
    return f"({var} & {{}}) {op} {{}}", (mask, net)


def host_address(text: str | None) -> str | None:
    """The address of a one-host ``-d``/``-s`` value (``10.0.0.1/32``, ``fd00::1/128``), else None."""
    if text is None:
        return None
    if text.endswith("/32") and ":" not in text:
        return text[:-3]
    if text.endswith("/128") and ":" in text:
        return text[:-4]
    return None


def _iface(attr: str, pattern: str, negated: bool) -> Fragment:
    if pattern.endswith("+"):
        return f"{'not ' if negated else ''}p.{attr}.startswith({{}})", (pattern[:-1],)
    return f"p.{attr} {'!=' if negated else '=='} {{}}", (pattern,)


def _port_range(text: str) -> tuple[int, int]:
    """``80`` -> (80, 80); ``80:90`` -> (80, 90); open ends as iptables allows."""
    lo, sep, hi = text.partition(":")
    if not sep:
        return int(lo, 0), int(lo, 0)
    return int(lo or "0", 0), int(hi or "65535", 0)


def _port(attr: str, text: str, negated: bool) -> Fragment:
    lo, hi = _port_range(text)
    if lo == hi:
        return f"p.{attr} {'!=' if negated else '=='} {{}}", (lo,)
    return f"{'not ' if negated else ''}{{}} <= p.{attr} <= {{}}", (lo, hi)


def _opaque(check: Check) -> Fragment:
    return "{}(p, c)", (check,)


def _opts(m: Match | Target) -> dict[str, Option]:
    return {o.name: o for o in m.options}


def _only(opts: dict[str, Option], allowed: set[str], what: str) -> None:
    extra = sorted(set(opts) - allowed)
    if extra:
        raise _Unsupported(f"{what} option --{extra[0]}")


def _arg(opts: dict[str, Option], name: str, what: str) -> str:
    o = opts.get(name)
    if o is None or not o.args:
        raise _Unsupported(f"{what} without --{name}")
    return o.args[0]


def _int(text: str) -> int:
    return int(text, 0)


def _mark_pair(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return _int(value), _int(mask) if mask else 0xFFFFFFFF


# ---- matches: each returns its fragments, in the order the kernel tests them


def _match_ports(m: Match, opts: dict[str, Option]) -> list[Fragment]:
    """``-m tcp|udp|sctp``: ports (canonical ``sport``/``dport`` or verbatim long names), TCP flags."""
    out: list[Fragment] = []
    known = {"sport", "dport", "source-port", "destination-port"}
    if m.name == "tcp":
        known |= {"tcp-flags", "syn"}
    _only(opts, known, f"-m {m.name}")
    for attr, names in (("sport", ("sport", "source-port")), ("dport", ("dport", "destination-port"))):
        o = next((opts[n] for n in names if n in opts), None)
        if o is not None:
            out.append(_port(attr, o.args[0], o.negated))
    if "tcp-flags" in opts or "syn" in opts:
        o = opts.get("tcp-flags") or opts["syn"]
        if o.name == "syn":
            mask, comp = frozenset({"SYN", "RST", "ACK", "FIN"}), frozenset({"SYN"})
        else:
            if len(o.args) != 2:
                raise _Unsupported("--tcp-flags without MASK COMP")
            mask, comp = (_flag_set(a) for a in o.args)

        def flags(p: Packet, c: HookContext, mask: frozenset[str] = mask, comp: frozenset[str] = comp,
                  negated: bool = o.negated) -> bool:
            return ((p.tcp_flags & mask) == comp) != negated

        out.append(_opaque(flags))
    return out


def _flag_set(text: str) -> frozenset[str]:
    words = {w.upper() for w in text.split(",")}
    if "ALL" in words:
        return TCP_FLAGS
    if "NONE" in words:
        return frozenset()
    if not words <= TCP_FLAGS:
        raise _Unsupported(f"TCP flags {text!r}")
    return frozenset(words)


def _match_multiport(opts: dict[str, Option]) -> list[Fragment]:
    out: list[Fragment] = []
    for names, attrs in ((("dports", "destination-ports"), ("dport",)), (("sports", "source-ports"), ("sport",)),
                         (("ports",), ("sport", "dport"))):
        o = next((opts[n] for n in names if n in opts), None)
        if o is None:
            continue
        ranges = tuple(_port_range(x) for x in ",".join(o.args).split(",") if x)
        if len(attrs) == 1 and all(lo == hi for lo, hi in ranges):
            out.append((f"p.{attrs[0]} {'not in' if o.negated else 'in'} {{}}", (frozenset(lo for lo, _ in ranges),)))
        else:
            out.append(_opaque(_in_port_ranges(attrs, ranges, o.negated)))
    _only(opts, {"dports", "destination-ports", "sports", "source-ports", "ports"}, "-m multiport")
    if not out:
        raise _Unsupported("-m multiport without ports")
    return out


def _in_port_ranges(attrs: tuple[str, ...], ranges: tuple[tuple[int, int], ...], negated: bool) -> Check:
    def check(p: Packet, c: HookContext) -> bool:
        return any(lo <= getattr(p, a) <= hi for a in attrs for lo, hi in ranges) != negated

    return check


def _match_ctstate(m: Match, opts: dict[str, Option]) -> list[Fragment]:
    """``-m conntrack --ctstate`` / ``-m state --state``: ctx.ct_state, plus the SNAT/DNAT pseudo-states."""
    key = "state" if m.name == "state" else "ctstate"
    _only(opts, {key}, f"-m {m.name}")
    o = opts.get(key)
    if o is None:
        raise _Unsupported(f"-m {m.name} without --{key}")
    states = frozenset(s.upper() for s in o.args[0].split(","))
    if states & {"SNAT", "DNAT"}:
        template = "(c.ct_state in {} or not {}.isdisjoint(c.ct_status))"
        return [(f"not {template}" if o.negated else template, (states, states))]
    return [(f"c.ct_state {'not in' if o.negated else 'in'} {{}}", (states,))]


def _match_mark(opts: dict[str, Option]) -> list[Fragment]:
    _only(opts, {"mark"}, "-m mark")
    o = opts.get("mark")
    if o is None:
        raise _Unsupported("-m mark without --mark")
    value, mask = _mark_pair(o.args[0])
    return [(f"(p.mark & {{}}) {'!=' if o.negated else '=='} {{}}", (mask, value & mask))]


def _match_addrtype(opts: dict[str, Option]) -> list[Fragment]:
    _only(opts, {"src-type", "dst-type", "limit-iface-in", "limit-iface-out"}, "-m addrtype")
    dev_attr = "in_iface" if "limit-iface-in" in opts else "out_iface" if "limit-iface-out" in opts else ""
    out: list[Fragment] = []
    for key, attr in (("src-type", "src"), ("dst-type", "dst")):
        o = opts.get(key)
        if o is not None:
            types = frozenset(t.upper() for t in o.args[0].split(","))
            out.append(_opaque(_addr_type_check(attr, types, o.negated, dev_attr)))
    if not out:
        raise _Unsupported("-m addrtype without --src-type/--dst-type")
    return out


def _addr_type_check(attr: str, types: frozenset[str], negated: bool, dev_attr: str) -> Check:
    def check(p: Packet, c: HookContext) -> bool:
        return (_addr_type(getattr(p, attr), c, getattr(p, dev_attr) if dev_attr else "") in types) != negated

    return check


def _addr_type(ip: str, ctx: HookContext, dev: str) -> str:
    """The route type ``inet_dev_addr_type`` gives: BROADCAST, MULTICAST, LOCAL or UNICAST.

    Like the kernel it looks at the local routing table only: 0.0.0.0/8 and 255.255.255.255 are
    BROADCAST, 224.0.0.0/4 MULTICAST, the namespace's addresses and 127.0.0.0/8 LOCAL, subnet
    broadcast addresses BROADCAST, anything else UNICAST. With ``--limit-iface-*`` a local
    route counts only if it belongs to that interface.
    """
    if ":" in ip:
        if ip == "::1" or ip in ctx.local_addresses:
            return "LOCAL"
        return "MULTICAST" if ip.lower().startswith("ff") else "UNICAST"
    first = int(ip.split(".", 1)[0])
    if first == 0 or ip == "255.255.255.255":
        return "BROADCAST"
    if 224 <= first <= 239:
        return "MULTICAST"
    kind = ("LOCAL" if first == 127 or ip in ctx.local_addresses
            else "BROADCAST" if ip in ctx.broadcast_addresses else "UNICAST")
    if kind != "UNICAST" and dev and ctx.iface_addresses is not None:
        owned = ctx.iface_addresses.get(dev, frozenset())
        if not (ip in owned or (first == 127 and dev == "lo")):
            return "UNICAST"
    return kind


def _match_statistic(opts: dict[str, Option]) -> list[Fragment]:
    mode = _arg(opts, "mode", "-m statistic")
    if mode == "random":
        _only(opts, {"mode", "probability"}, "-m statistic --mode random")
        o = opts.get("probability")
        if o is None:
            raise _Unsupported("-m statistic --mode random without --probability")
        # libxt_statistic stores lround(p * 2^31); xt_statistic matches (prandom_u32() & 0x7FFFFFFF) < that
        threshold = int(float(o.args[0]) * 0x80000000 + 0.5)
        template = "c.state.statistic({})"
        return [(f"not {template}" if o.negated else template, (threshold,))]
    if mode == "nth":
        _only(opts, {"mode", "every", "packet"}, "-m statistic --mode nth")
        every = int(_arg(opts, "every", "-m statistic --mode nth"))
        packet = int(opts["packet"].args[0]) if "packet" in opts else 0
        negated = opts["every"].negated
        rule_id = next(_RULE_IDS)

        def nth(p: Packet, c: HookContext) -> bool:
            # xt_statistic counts this rule's packets 0, 1, ..., every-1, 0, ...: packet k matches when k % every == packet
            c.state.stateful = True
            k = c.state.nth_counters.get(rule_id, -1) + 1
            c.state.nth_counters[rule_id] = k % every
            return ((k % every) == packet) != negated

        return [_opaque(nth)]
    raise _Unsupported(f"-m statistic --mode {mode}")


def recent_list_names(tables: Mapping[str, TableDump]) -> set[str]:
    """The xt_recent lists the rules in ``tables`` name (each is a file in /proc/net/xt_recent)."""
    names = set()
    for t in tables.values():
        for rule in t.rules():
            for m in rule.matches:
                if m.name == "recent":
                    o = m.option("name")
                    names.add(o.args[0] if o and o.args else "DEFAULT")
    return names


def jiffies(t: float) -> int:
    """The kernel's ``jiffies`` at simulated time ``t`` (seconds): the sim's clock 0 is a boot."""
    return RECENT_INITIAL_JIFFIES + int(t * RECENT_HZ + 1e-6)


def _ring(hitcount: int) -> int:
    """Stamps kept per address (``nstamps_max_mask + 1``): 32, or a larger power of two for a
    ``--hitcount`` above 32 (``recent_mt_check`` with ip_pkt_list_tot=0)."""
    return max(RECENT_STAMPS, 1 << max(hitcount - 1, 0).bit_length())


def _match_recent(opts: dict[str, Option]) -> list[Fragment]:
    """xt_recent (``recent_mt`` of net/netfilter/xt_recent.c), with ctx.now for jiffies and
    ctx.state.recent for /proc/net/xt_recent.

    A list maps an address to its time stamps (a ring of the last 32) and is kept in
    least-recently-updated order (at most ``ip_list_tot`` = 100 addresses: adding one more
    evicts the least recently updated, whatever its age). --set adds a stamp and matches;
    --rcheck matches if the address is listed (with --seconds S, if a stamp is at most S*HZ
    jiffies old; with --hitcount H, if H such stamps); --update is --rcheck plus a new stamp
    when it matches; --remove deletes and matches if listed. --reap (with --seconds) is the
    kernel's: after a check of a listed address, the list's least recently updated address
    goes if its newest stamp is older than S. Times compare in jiffies (HZ = 250), as the
    kernel's do. The TTL recorded is the sender's (64): kube-proxy's rules stamp a connection's
    first packet in PREROUTING or in OUTPUT from a local socket, where the kernel records the
    TTL unchanged.
    """
    allowed = {"set", "rcheck", "update", "remove", "seconds", "reap", "hitcount", "name", "mask", "rsource", "rdest"}
    _only(opts, allowed, "-m recent")
    command = next((k for k in ("set", "rcheck", "update", "remove") if k in opts), None)
    if command is None:
        raise _Unsupported("-m recent without --set/--rcheck/--update/--remove")
    list_name = opts["name"].args[0] if "name" in opts else "DEFAULT"
    # --mask: 255.255.255.255 (iptables) or ffff:…:ffff (ip6tables) by default, i.e. none
    mask_text = opts["mask"].args[0] if "mask" in opts else ""
    mask = _IP[mask_text] if mask_text else -1
    if mask == _full_mask(mask_text):
        mask = -1
    mask6 = ":" in mask_text
    mask_type = ipaddress.IPv6Address if mask6 else ipaddress.IPv4Address
    use_dst = "rdest" in opts
    seconds = int(opts["seconds"].args[0]) if "seconds" in opts else 0
    hitcount = int(opts["hitcount"].args[0]) if "hitcount" in opts else 0
    reap = "reap" in opts and seconds > 0
    invert = opts[command].negated
    ring = _ring(hitcount)

    def recent(p: Packet, c: HookContext) -> bool:
        c.state.stateful = True
        table = c.state.recent.get(list_name)
        if table is None:
            table = c.state.recent[list_name] = {}
        addr = p.dst if use_dst else p.src
        if mask != -1 and (":" in addr) == mask6:  # a table holds one family's rules and packets
            addr = str(mask_type(_IP[addr] & mask))
        now = c.now
        ret = invert
        e = table.get(addr)
        if e is None:
            if command != "set":
                return ret
            if len(table) >= RECENT_LIST_TOTAL:
                del table[next(iter(table))]  # the least recently updated address
            table[addr] = RecentEntry([now], now, 1, SENDER_TTL)
            return not ret
        if command == "set":
            ret = not ret
        elif command == "remove":
            del table[addr]
            return not ret
        else:
            horizon = jiffies(now) - seconds * RECENT_HZ  # the kernel's: time = jiffies - seconds * HZ
            hits = 0
            for stamp in e.stamps:
                if seconds and jiffies(stamp) < horizon:
                    continue
                hits += 1
                if hits >= hitcount:
                    ret = not ret
                    break
            if reap:
                oldest_addr = next(iter(table))
                oldest = table[oldest_addr]
                if not (oldest is e and command == "update" and ret) and jiffies(oldest.stamps[-1]) < horizon:
                    del table[oldest_addr]
        if command == "set" or (command == "update" and ret):
            e.stamps.append(now)
            del e.stamps[:-ring]
            e.last_seen = now
            e.updates += 1
            e.ttl = SENDER_TTL
            table[addr] = table.pop(addr, e)  # now the most recently updated
        return ret

    return [_opaque(recent)]


def _match_nfacct(opts: dict[str, Option]) -> list[Fragment]:
    counter = _arg(opts, "nfacct-name", "-m nfacct")

    def count(p: Packet, c: HookContext) -> bool:
        c.state.stateful = True
        c.state.nfacct[counter] = c.state.nfacct.get(counter, 0) + 1
        c.state.nfacct_bytes[counter] = c.state.nfacct_bytes.get(counter, 0) + PACKET_BYTES.get(p.proto, 40)
        return True

    return [_opaque(count)]


def _match_icmp(opts: dict[str, Option]) -> list[Fragment]:
    _only(opts, {"icmp-type"}, "-m icmp")
    o = opts.get("icmp-type")
    if o is None:
        raise _Unsupported("-m icmp without --icmp-type")
    text = o.args[0]
    if text in ICMP_TYPES:
        itype, code = ICMP_TYPES[text]
    else:
        t, _, cd = text.partition("/")
        if not t.isdigit() or (cd and not cd.isdigit()):
            raise _Unsupported(f"--icmp-type {text}")
        itype, code = int(t), int(cd) if cd else None
    if itype == 255:
        return [("True", ())] if not o.negated else [("False", ())]
    if code is None:
        return [(f"p.icmp_type {'!=' if o.negated else '=='} {{}}", (itype,))]
    return [(f"(p.icmp_type, p.icmp_code) {'!=' if o.negated else '=='} {{}}", ((itype, code),))]


PURE_MATCHES = frozenset({"comment", "tcp", "udp", "sctp", "multiport", "conntrack", "state", "mark", "addrtype", "icmp"})


def _compile_match(m: Match) -> list[Fragment]:
    opts = _opts(m)
    name = m.name
    if name == "comment":
        return []
    if name in ("tcp", "udp", "sctp"):
        return _match_ports(m, opts)
    if name == "multiport":
        return _match_multiport(opts)
    if name in ("conntrack", "state"):
        return _match_ctstate(m, opts)
    if name == "mark":
        return _match_mark(opts)
    if name == "addrtype":
        return _match_addrtype(opts)
    if name == "statistic":
        return _match_statistic(opts)
    if name == "recent":
        return _match_recent(opts)
    if name == "nfacct":
        return _match_nfacct(opts)
    if name == "icmp":
        return _match_icmp(opts)
    raise _Unsupported(f"-m {name}")


# --------------------------------------------------------------------------------------------
# Compiled rules and chains


@dataclass(eq=False, slots=True)
class CompiledRule:
    """One rule, ready to run: ``test`` (None: matches every packet) and what to do (``op``)."""

    rule: Rule
    number: int  # 1-based position in its chain
    test: Test | None
    op: int = OP_CONTINUE
    jump: CompiledChain | None = None  # for OP_JUMP and OP_GOTO
    nat: NatAction | None = None  # for OP_NAT (DNAT: to_ip/to_port; SNAT; MASQUERADE)
    dnat_ports: tuple[int, int] | None = None  # DNAT port range: the original port stays if inside
    mark: tuple[int, int] = (0, 0)  # for OP_MARK: (value, mask) of --set-xmark
    reject_with: str = ""
    index_key: tuple[int | None, str, int] | None = None  # (dst /32 or None, proto, dport) selecting the rule
    _text: str = ""
    reusable: bool = True  # a later load may copy it (not if it failed to compile or keeps per-rule state)
    counter: Counters | None = None  # the rule's counters in the namespace's tables (set by Netfilter)

    @property
    def text(self) -> str:
        """The rule as ``iptables-save`` prints it (computed when first asked: traces, errors)."""
        if not self._text:
            self._text = self.rule.save_text()
        return self._text

    @property
    def target(self) -> str:
        """The target's name (a chain name for jumps), "" for a rule without one."""
        return self.rule.target.name if self.rule.target else ""


@dataclass(eq=False)
class ChainIndex:
    """Candidate rules of a long chain for a packet, in chain order, without scanning it.

    A rule whose protocol and single destination port are selective (and, if it has one, whose
    ``-d`` is one address) is filed under (address or None, protocol, port); every other rule is
    *generic* and is a candidate for every packet. Each keyed list is stored already merged with
    the generic rules, so a lookup is one or two dict hits.
    """

    by_dst: dict[tuple[int, str, int], list[CompiledRule]]
    by_port: dict[tuple[str, int], list[CompiledRule]]
    generic: list[CompiledRule]

    @classmethod
    def build(cls, rules: list[CompiledRule]) -> ChainIndex | None:
        generic = [r for r in rules if r.index_key is None]
        if len(generic) > max(8, len(rules) // 4):
            return None  # mostly unindexable: the merged lists would cost more than a scan
        by_dst: dict[tuple[int, str, int], list[CompiledRule]] = {}
        by_port: dict[tuple[str, int], list[CompiledRule]] = {}
        for r in rules:
            if r.index_key is not None:
                dst, proto, dport = r.index_key
                if dst is None:
                    by_port.setdefault((proto, dport), []).append(r)
                else:
                    by_dst.setdefault((dst, proto, dport), []).append(r)
        return cls({k: sorted(v + generic, key=_number) for k, v in by_dst.items()},
                   {k: sorted(v + generic, key=_number) for k, v in by_port.items()}, generic)

    def candidates(self, d: int, proto: str, dport: int) -> list[CompiledRule]:
        a = self.by_dst.get((d, proto, dport))
        b = self.by_port.get((proto, dport))
        if a is None:
            return self.generic if b is None else b
        if b is None:
            return a
        return sorted({*a, *b}, key=_number)


def _number(r: CompiledRule) -> int:
    return r.number


@dataclass(eq=False)
class CompiledChain:
    """A chain: ``policy`` ACCEPT/DROP for a built-in chain, None for a user chain."""

    name: str
    policy: str | None
    rules: list[CompiledRule] = field(default_factory=list)
    index: ChainIndex | None = None  # set to None to force a plain scan (tests compare the two)


# --------------------------------------------------------------------------------------------
# The interpreter


class Netfilter:
    """The iptables tables of one network namespace, compiled, ready to run packets through."""

    def __init__(self, tables: dict[str, TableDump], name: str = "", *, strict: bool = False,
                 previous: Netfilter | None = None, family: int = 4) -> None:
        self.name = name
        self.family = family  # 4: iptables' tables, 6: ip6tables' (the packets it is given are of this family)
        self.tables = tables
        self.chains: dict[str, dict[str, CompiledChain]] = {
            t: {c: CompiledChain(c, chain.policy) for c, chain in dump.chains.items()} for t, dump in tables.items()
        }
        known = previous._compiled if previous is not None else {}
        self._compiled: dict[tuple[str, int], tuple[Rule, CompiledRule]] = {}  # (table, id(rule)) -> (rule, compiled)
        for tname, dump in tables.items():
            for cname, chain in dump.chains.items():
                cc = self.chains[tname][cname]
                cc.rules = [self._compile_reusing(tname, r, i + 1, strict, known) for i, r in enumerate(chain.rules)]
                for cr, counter in zip(cc.rules, chain.counters):
                    cr.counter = counter
                if len(cc.rules) >= INDEX_MIN_RULES:
                    cc.index = ChainIndex.build(cc.rules)
            self._check_loops(tname)
        # per hook, the tables with something to do there (an empty built-in chain with policy ACCEPT has nothing)
        self._plan: dict[str, list[tuple[str, CompiledChain]]] = {
            hook: [(t, self.chains[t][hook]) for t in tnames
                   if t in self.chains and hook in self.chains[t]
                   and (self.chains[t][hook].rules or self.chains[t][hook].policy != "ACCEPT")]
            for hook, tnames in HOOK_TABLES.items()
        }

    @classmethod
    def from_text(cls, text: str, *, name: str = "", strict: bool = False, family: int = 4) -> Netfilter:
        """Load ``iptables-save`` or restore text (comments, counters, policies as printed);
        ``family=6``: ``ip6tables-save`` or ip6tables restore text.

        ``strict=True`` refuses, at load, any rule the interpreter cannot execute (right for
        kslab's own rulesets); by default such a rule raises only when a packet reaches it.
        """
        try:
            tables = parse_restore(text, family, strict=False)
        except ValueError as e:
            tool = "ip6tables-save" if family == 6 else "iptables-save"
            raise InputError(f"ruleset{' of ' + name if name else ''}", str(e), f"check the {tool} text") from None
        return cls(tables, name, strict=strict, family=family)

    @classmethod
    def from_tables(cls, tables: Mapping[str, TableDump], *, name: str = "", strict: bool = False,
                    previous: Netfilter | None = None, family: int | None = None) -> Netfilter:
        """Load a namespace's tables as they are held in memory (an ``IptablesState``'s
        ``tables``): what :meth:`from_text` of their ``iptables-save`` text builds, without
        printing and parsing it again. The chains are copied (rules are immutable), so later
        changes to ``tables`` do not reach the loaded ruleset. With ``previous`` (the ruleset
        these tables replace), a rule that is the very same object as one ``previous`` compiled
        (a chain a partial sync left alone) is copied from it instead of compiled again."""
        if family is None:  # the tables' own (ip6tables' TableDumps say 6)
            family = next((getattr(d, "family", 4) for d in tables.values()), 4)
        snapshot = {}
        for tname in SAVE_TABLE_ORDER:
            dump = tables.get(tname)
            if dump is not None:
                snapshot[tname] = TableDump(tname, {c: dump.chains[c].copy() for c in dump.chain_order()}, dump.family)
        return cls(snapshot, name, strict=strict, previous=previous, family=family)

    def chain_rules(self, table: str, chain: str) -> list[str]:
        """The chain's rules as ``iptables-save`` prints them (empty if there is no such chain)."""
        c = self.chains.get(table, {}).get(chain)
        return [r.text for r in c.rules] if c else []

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.chains.values() for c in t.values())

    # ---- compiling ----------------------------------------------------------------------------

    def _error(self, table: str, rule: Rule, number: int, what: str) -> InputError:
        return InputError(
            f"{self.name + ': ' if self.name else ''}{table} {rule.chain} rule {number} {rule.save_text()!r}",
            f"kslab cannot execute {what}",
            "the sim runs kube-proxy's matches and targets (see kslab.sim.netfilter); trace a packet that avoids this rule",
        )

    def _compile_reusing(self, table: str, r: Rule, number: int, strict: bool,
                         known: dict[tuple[str, int], tuple[Rule, CompiledRule]]) -> CompiledRule:
        """:meth:`_compile`, or a copy of what an earlier load compiled from the same Rule object
        (rules are immutable), its jump bound to this load's chain of that name."""
        key = (table, id(r))
        hit = known.get(key)
        cr = None
        if hit is not None and hit[0] is r:
            done = hit[1]
            jump = None
            if done.jump is not None:  # the target must still be a user chain of this table
                jump = self.chains[table].get(done.jump.name)
            if done.jump is None or (jump is not None and jump.policy is None):
                cr = CompiledRule(r, number, done.test, done.op, jump, done.nat, done.dnat_ports, done.mark,
                                  done.reject_with, done.index_key)
        if cr is None:
            cr = self._compile(table, r, number, strict)
        if cr.reusable:
            self._compiled[key] = (r, cr)
        return cr

    def _compile(self, table: str, r: Rule, number: int, strict: bool) -> CompiledRule:
        fragments: list[Fragment] = []
        if r.src is not None:
            fragments.append(_address("s", r.src, r.src_negated))
        if r.dst is not None:
            fragments.append(_address("d", r.dst, r.dst_negated))
        if r.in_iface is not None:
            fragments.append(_iface("in_iface", r.in_iface, r.in_negated))
        if r.out_iface is not None:
            fragments.append(_iface("out_iface", r.out_iface, r.out_negated))
        if r.proto is not None:
            fragments.append((f"p.proto {'!=' if r.proto_negated else '=='} {{}}", (r.proto,)))
        cr = CompiledRule(r, number, None)
        dport: int | None = None
        pure = True  # nothing before the port match has side effects: an index may skip the rule
        try:
            for m in r.matches:
                fragments += _compile_match(m)
                if pure and m.name == r.proto and not r.proto_negated:
                    o = _opts(m).get("dport") or _opts(m).get("destination-port")
                    if o is not None and not o.negated and ":" not in o.args[0]:
                        dport = _int(o.args[0])
                pure = pure and m.name in PURE_MATCHES
                if m.name == "statistic" and "nth" in getattr(_opts(m).get("mode"), "args", ()):
                    cr.reusable = False  # its packet counter belongs to this rule instance (a reload starts at 0)
            self._compile_target(r, cr)
        except (_Unsupported, ValueError) as e:
            err = self._error(table, r, number, str(e))
            if strict:
                raise err from None

            def fail(p: Packet, c: HookContext) -> bool:
                raise err

            fragments.append(_opaque(fail))  # reached only if every criterion before it matched
            cr.op, cr.jump, cr.nat, cr.reusable = OP_CONTINUE, None, None, False
        cr.test = _fuse(fragments)
        if dport is not None and r.proto in ("tcp", "udp", "sctp"):
            host = host_address(r.dst) if not r.dst_negated else None
            dst = _IP[host] if host is not None else None
            cr.index_key = (dst, r.proto, dport)
        return cr

    def _compile_target(self, r: Rule, cr: CompiledRule) -> None:
        t: Target | None = r.target
        if t is None:
            return
        name = t.name
        if not t.options and not t.verbatim and name in ("ACCEPT", "DROP", "RETURN"):
            cr.op = {"ACCEPT": OP_ACCEPT, "DROP": OP_DROP, "RETURN": OP_RETURN}[name]
            return
        if t.is_chain:
            chain = self.chains[r.table].get(name)
            if chain is not None and chain.policy is None:
                cr.op, cr.jump = (OP_GOTO if t.goto else OP_JUMP), chain
                return
            if chain is not None:
                raise _Unsupported(f"a jump to the built-in chain {name} (iptables-restore refuses it)")
            if name == "NOTRACK":
                cr.op = OP_NOTRACK
                return
            if name in NOTE_TARGETS:
                cr.op = OP_NOTE
                return
            raise _Unsupported(f"-j {name} (no such chain in the {r.table} table, nor a target kslab knows)")
        opts = _opts(t)
        if t.verbatim:
            if name in NOTE_TARGETS:
                cr.op = OP_NOTE
            elif name == "CT":
                cr.op = OP_NOTRACK if "notrack" in opts else OP_NOTE
            else:
                raise _Unsupported(f"-j {name}" + (f" --{t.options[0].name}" if t.options else ""))
            return
        if name == "REJECT":
            cr.op, cr.reject_with = OP_REJECT, opts["reject-with"].args[0]
        elif name == "MARK":
            cr.op, cr.mark = OP_MARK, _mark_pair(_arg(opts, "set-xmark", "-j MARK"))
        elif name == "DNAT":
            ip, ports = _nat_to(_arg(opts, "to-destination", "-j DNAT"), "DNAT")
            cr.op, cr.nat = OP_NAT, NatAction("DNAT", ip, ports[0] if ports else None)
            cr.dnat_ports = ports if ports and ports[0] != ports[1] else None
        elif name in ("SNAT", "MASQUERADE"):
            if name == "SNAT":
                ip, ports = _nat_to(_arg(opts, "to-source", "-j SNAT"), "SNAT")
            else:
                ip, ports = "", _nat_ports(opts["to-ports"].args[0]) if "to-ports" in opts else None
            if ports and ports[0] != ports[1]:
                raise _Unsupported(f"{name} to a port range (the kernel picks a free port at random)")
            cr.op, cr.nat = OP_NAT, NatAction(name, ip, ports[0] if ports else None, "random-fully" in opts)
        else:
            raise _Unsupported(f"-j {name}")

    def _check_loops(self, table: str) -> None:
        """Refuse a jump loop, as the kernel does when the table is loaded (ELOOP)."""
        done: set[str] = set()

        def visit(chain: CompiledChain, path: list[str]) -> None:
            if chain.name in path:
                loop = " -> ".join(path[path.index(chain.name):] + [chain.name])
                raise InputError(f"{self.name + ': ' if self.name else ''}{table} table", f"chains jump in a loop: {loop}",
                                 "iptables-restore refuses such a ruleset (Too many levels of links)")
            if chain.name in done:
                return
            for r in chain.rules:
                if r.jump is not None:
                    visit(r.jump, path + [chain.name])
            done.add(chain.name)

        for chain in self.chains[table].values():
            visit(chain, [])

    # ---- running ------------------------------------------------------------------------------

    def run_hook(self, hook: str, pkt: Packet, ctx: HookContext, *, tables: Sequence[str] | None = None,
                 trace: bool = True) -> HookResult:
        """Walk ``pkt`` through the tables at ``hook``; DNAT and MARK change ``pkt`` in place.

        ``ctx`` is updated as conntrack would be: ``ct_status`` gains DNAT/SNAT once the nat
        table bound the connection, ``ct_state`` becomes UNTRACKED after NOTRACK.
        """
        plan = self._plan.get(hook)
        if plan is None:
            raise ValueError(f"unknown hook {hook!r}: one of {', '.join(HOOK_TABLES)}")
        result = HookResult("ACCEPT")
        for tname, builtin in plan:
            if tables is not None and tname not in tables:
                continue
            if tname == "nat" and ctx.ct_state != "NEW":
                if trace:
                    result.steps.append(TraceStep(self.name, hook, "nat", hook, "note", detail=(
                        f"nat table not consulted: ctstate {ctx.ct_state} (rules NAT only a connection's first packet)")))
                continue
            verdict = self._walk(tname, builtin, hook, pkt, ctx, result, trace)
            if trace:
                result.steps.append(TraceStep(self.name, hook, tname, hook, "verdict", detail=verdict))
            if verdict != "ACCEPT":
                result.verdict = verdict
                return result
        return result

    def _walk(self, tname: str, builtin: CompiledChain, hook: str, pkt: Packet, ctx: HookContext,
              result: HookResult, trace: bool) -> str:
        """One table's traversal (``ipt_do_table``); returns ACCEPT, DROP or REJECT."""
        chain = builtin
        stack: list[tuple[CompiledChain, int]] = []  # return points pushed by -j: (chain, rules done there)
        pos = 0  # rules of ``chain`` already evaluated
        s, d = _IP[pkt.src], _IP[pkt.dst]
        steps = result.steps
        count = result.counted.append  # the counters of the rules the packet matched (the caller adds to them)
        evaluated = 0
        while True:
            rules = chain.rules
            if chain.index is not None:
                candidates = chain.index.candidates(d, pkt.proto, pkt.dport)
                if pos:
                    candidates = [r for r in candidates if r.number > pos]
            else:
                candidates = rules[pos:] if pos else rules
            for r in candidates:
                test = r.test
                if test is None or test(pkt, ctx, s, d):
                    evaluated += r.number - pos
                    op = r.op
                    count(r.counter)
                    if trace:
                        steps.append(TraceStep(self.name, hook, tname, chain.name, "rule", r.text, r.number))
                    break
            else:  # the end of the chain: an implicit RETURN
                evaluated += len(rules) - pos
                op = OP_RETURN
            if op == OP_RETURN:
                if stack:
                    caller, pos = stack.pop()
                    if trace:
                        steps.append(TraceStep(self.name, hook, tname, chain.name, "return", detail=caller.name))
                    chain = caller
                    continue
                result.rules_evaluated += evaluated
                policy = builtin.policy or "ACCEPT"
                if trace:
                    steps.append(TraceStep(self.name, hook, tname, builtin.name, "policy", detail=policy))
                return policy
            # from here on a rule matched: ``r`` is it
            if op in (OP_JUMP, OP_GOTO):
                nxt: CompiledChain = r.jump  # type: ignore[assignment]
                if op == OP_JUMP:
                    stack.append((chain, r.number))
                result.chains.append(nxt.name)
                if trace:
                    event = "jump" if op == OP_JUMP else "goto"
                    steps.append(TraceStep(self.name, hook, tname, chain.name, event, detail=nxt.name))
                chain, pos = nxt, 0
                continue
            if op == OP_CONTINUE:
                pos = r.number
                continue
            if op == OP_MARK:
                before = pkt.as_dict() if trace else None
                value, mask = r.mark
                pkt.mark = (pkt.mark & ~mask & 0xFFFFFFFF) ^ value
                if trace:
                    step = steps[-1]
                    step.packet_before, step.packet_after = before, pkt.as_dict()
                    step.detail = f"mark {before['mark']} -> {hex(pkt.mark)}"  # type: ignore[index]
                pos = r.number
                continue
            if op == OP_NAT:
                result.rules_evaluated += evaluated
                apply_nat(r.nat, pkt, ctx, result, steps[-1] if trace else None,  # type: ignore[arg-type]
                          masquerade="MASQUERADE", dnat_ports=r.dnat_ports)
                return "ACCEPT"
            if op in (OP_NOTE, OP_NOTRACK):
                if op == OP_NOTRACK:
                    ctx.ct_state = "UNTRACKED"
                if trace:
                    steps[-1].detail = ("NOTRACK: the connection is untracked (no nat table, ctstate UNTRACKED)"
                                        if op == OP_NOTRACK else f"{r.target}: noted, the packet goes on")
                pos = r.number
                continue
            result.rules_evaluated += evaluated
            if op == OP_REJECT:
                result.reject_with = r.reject_with
                return "REJECT"
            return "ACCEPT" if op == OP_ACCEPT else "DROP"

def apply_nat(nat: NatAction, pkt: Packet, ctx: HookContext, result: HookResult, step: TraceStep | None, *,
              masquerade: str, note_fully_random: bool = False, dnat_ports: tuple[int, int] | None = None) -> None:
    """A NAT action that fired (iptables' DNAT/SNAT/MASQUERADE targets, nft's dnat/snat/masquerade
    statements): DNAT rewrites the packet now, to a port in ``dnat_ports`` when the rule gave a port
    range (an in-range port stays, else the first), else to the action's port; SNAT/masquerade only
    mark the connection, the caller rewrites the source. ``step`` (tracing) gets the detail;
    ``masquerade`` is the masquerade's name in it (``MASQUERADE``, ``masquerade``), and
    ``note_fully_random`` adds " (fully-random port)" when the action has the flag."""
    result.nat = nat
    if nat.kind != "DNAT":
        ctx.ct_status = ctx.ct_status | {"SNAT"}
        if step is not None:
            step.detail = (f"SNAT to {host_port(nat.to_ip, nat.to_port) if nat.to_port is not None else nat.to_ip}"
                           if nat.kind == "SNAT" else f"{masquerade}: the source becomes the out interface's address"
                           + (" (fully-random port)" if note_fully_random and nat.random_fully else ""))
        return
    before = pkt.as_dict() if step is not None else None
    old = (pkt.dst, pkt.dport)
    pkt.dst = nat.to_ip
    if dnat_ports is not None:
        lo, hi = dnat_ports
        pkt.dport = pkt.dport if lo <= pkt.dport <= hi else lo  # nf_nat keeps an in-range port, else the first
    elif nat.to_port is not None:
        pkt.dport = nat.to_port
    if (pkt.dst, pkt.dport) != old:
        ctx.ct_status = ctx.ct_status | {"DNAT"}
    if step is not None:
        step.packet_before, step.packet_after = before, pkt.as_dict()
        step.detail = f"DNAT {host_port(*old)} -> {host_port(pkt.dst, pkt.dport)}"


def _nat_ports(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def split_host_port(spec: str) -> tuple[str, str]:
    """``IP[:PORT…]``, ``[IPv6][:PORT…]`` or a bare IPv6 address (ip6tables' forms of
    --to-destination/--to-source, and ``IP-IP`` / ``[a]-[b]`` ranges) -> (host part, port part)."""
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep:
            raise ValueError(f"{spec!r}: a '[' without its ']'")
        if rest.startswith("-["):  # [a]-[b]:ports
            last, sep2, rest = rest[2:].partition("]")
            if not sep2:
                raise ValueError(f"{spec!r}: a '[' without its ']'")
            host = f"{host}-{last}"
        if rest and not rest.startswith(":"):
            raise ValueError(f"{spec!r}: after ']' comes ':PORT'")
        return host, rest[1:]
    if spec.count(":") > 1:  # an IPv6 address without brackets: no port
        return spec, ""
    host, _, ports = spec.partition(":")
    return host, ports


def _nat_to(spec: str, kind: str) -> tuple[str, tuple[int, int] | None]:
    """``IP[:PORT[-PORT]]`` (``[IPv6]:PORT`` in ip6tables) of --to-destination/--to-source; an
    address range is refused.

    The kernel picks an address from a range by a hash of the connection, which kslab does not
    reproduce, so guessing would make traces lie.
    """
    host, ports = split_host_port(spec)
    first, dash, last = host.partition("-")
    if dash and last != first:
        raise _Unsupported(f"{kind} to an address range {host} (the kernel picks one by a hash of the connection)")
    return first, _nat_ports(ports) if ports else None
