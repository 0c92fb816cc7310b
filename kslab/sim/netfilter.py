"""An interpreter of one network namespace's iptables ruleset, executed the way netfilter does.

:meth:`Netfilter.from_text` loads ``iptables-save`` output (a real node's, other software's
chains included) or kube-proxy's restore text through :func:`kslab.proxy.iptsave.parse_restore`,
then compiles every rule once into primitive checks. :meth:`Netfilter.run_hook` walks a packet
through the tables registered at one hook, in kernel priority order:

==============  ============================================
PREROUTING      raw (-300), mangle (-150), nat/DNAT (-100)
INPUT           mangle (-150), filter (0), nat/SNAT (100)
FORWARD         mangle (-150), filter (0)
OUTPUT          raw (-300), mangle (-150), nat/DNAT (-100), filter (0)
POSTROUTING     mangle (-150), nat/SNAT (100)
==============  ============================================

Kernel semantics kept: the nat table sees only the first packet of a connection (``ct_state``
NEW); DNAT rewrites the packet at once (later tables and routing see the new destination);
SNAT/MASQUERADE are returned for the caller, who knows the out interface's address; a NAT
target ends the nat table's traversal with ACCEPT; ``-g`` (goto) does not push a return point,
so a RETURN from the goto'd chain goes back to the last ``-j`` caller; a RETURN (or the end) of
a built-in chain applies its policy; ACCEPT ends one table, DROP/REJECT end the hook.

Big chains (KUBE-SERVICES with thousands of rules) are indexed by (destination, protocol,
port) for rules that select only on those, so a lookup does not scan in Python; the result
still reports :attr:`HookResult.rules_evaluated`, the number of rules a linearly scanning
kernel would have evaluated.

An extension kslab does not execute is not refused at load time (a real node's dump may hold
chains the packet never enters); the first packet that reaches such a rule raises
:class:`~kslab.errors.InputError` naming the rule.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

from ..errors import InputError
from ..proxy.iptsave import Rule, TableDump, parse_restore
from .packet import HookContext, HookResult, NatAction, Packet, RecentEntry, TraceStep

HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
INDEX_MIN_RULES = 16  # chains shorter than this are scanned
RECENT_LIST_TOTAL = 100  # xt_recent ip_list_tot
RECENT_PKT_TOTAL = 20  # xt_recent ip_pkt_list_tot
NON_TERMINATING_TARGETS = {"LOG", "NFLOG", "TRACE", "CONNMARK", "CHECKSUM", "TCPMSS", "CT", "NOTRACK", "AUDIT"}

Check = Callable[[Packet, HookContext], bool]


@lru_cache(maxsize=1 << 16)
def ip_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip)) if ":" not in ip else int(ipaddress.IPv6Address(ip))


def _cidr(text: str) -> tuple[int, int]:
    """(network, mask) of ``a.b.c.d/nn`` or ``a.b.c.d/m.m.m.m``."""
    addr, _, plen = text.partition("/")
    bits = 128 if ":" in addr else 32
    if not plen:
        mask = (1 << bits) - 1
    elif "." in plen:
        mask = ip_int(plen)
    else:
        n = int(plen)
        mask = ((1 << bits) - 1) ^ ((1 << (bits - n)) - 1) if n else 0
    return ip_int(addr) & mask, mask


def _iface_check(pattern: str) -> Callable[[str], bool]:
    if pattern.endswith("+"):
        prefix = pattern[:-1]
        return lambda name: name.startswith(prefix)
    return lambda name: name == pattern


def _ports(text: str) -> tuple[int, int]:
    """``80`` -> (80, 80); ``80:90`` -> (80, 90); open ends as iptables allows."""
    lo, sep, hi = text.partition(":")
    if not sep:
        return int(lo), int(lo)
    return int(lo or 0), int(hi or 65535)


@dataclass
class CompiledRule:
    rule: Rule
    number: int  # 1-based position in its chain
    checks: tuple[Check, ...]
    target: str  # "", ACCEPT, DROP, REJECT, RETURN, chain name, DNAT, SNAT, MASQUERADE, MARK, NOTE
    is_jump: bool = False
    goto: bool = False
    action: Callable[[Packet, HookContext], object] | None = None
    text: str = ""
    index_key: tuple[int, str, int] | None = None


@dataclass
class CompiledChain:
    name: str
    policy: str | None
    rules: list[CompiledRule]
    index: dict[tuple[int, str, int], list[int]] | None = None
    generic: list[int] | None = None

    def candidates(self, pkt: Packet, start: int) -> Sequence[int]:
        if self.index is None:
            return range(start, len(self.rules))
        hit = self.index.get((ip_int(pkt.dst), pkt.proto, pkt.dport), ())
        merged = sorted([*hit, *self.generic]) if hit else self.generic  # type: ignore[list-item]
        return [i for i in merged if i >= start] if start else merged


class Netfilter:
    """The iptables tables of one network namespace, ready to run packets through."""

    def __init__(self, tables: dict[str, TableDump], name: str = "") -> None:
        self.name = name
        self.tables = tables
        self.chains: dict[str, dict[str, CompiledChain]] = {}
        for tname, table in tables.items():
            compiled = {}
            for cname, chain in table.chains.items():
                rules = [self._compile(tname, r, i + 1) for i, r in enumerate(chain.rules)]
                cc = CompiledChain(cname, chain.policy, rules)
                if len(rules) >= INDEX_MIN_RULES:
                    _build_index(cc)
                compiled[cname] = cc
            self.chains[tname] = compiled
        # per hook, the tables that have something to walk (an empty ACCEPT built-in chain has not)
        self._plan: dict[str, list[tuple[str, dict[str, CompiledChain]]]] = {}
        for hook, tnames in HOOK_TABLES.items():
            plan = []
            for tname in tnames:
                chains = self.chains.get(tname)
                if chains and hook in chains and (chains[hook].rules or chains[hook].policy != "ACCEPT"):
                    plan.append((tname, chains))
            self._plan[hook] = plan

    @classmethod
    def from_text(cls, text: str, *, name: str = "") -> "Netfilter":
        try:
            tables = parse_restore(text, strict=False)
        except ValueError as e:
            raise InputError(f"ruleset{' of ' + name if name else ''}", " ".join(str(e).split()), "check the iptables-save text") from None
        return cls(tables, name)

    def chain_rules(self, table: str, chain: str) -> list[str]:
        """The chain's rules as ``iptables-save`` prints them."""
        c = self.chains.get(table, {}).get(chain)
        return [r.text for r in c.rules] if c else []

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.chains.values() for c in t.values())

    # ---- compiling ----------------------------------------------------------------------------
    def _compile(self, table: str, r: Rule, number: int) -> CompiledRule:
        checks: list[Check] = []
        text = r.save_text()
        if r.src is not None:
            net, mask = _cidr(r.src)
            neg = r.src_negated
            checks.append(lambda p, c, n=net, m=mask, g=neg: ((ip_int(p.src) & m) == n) != g)
        if r.dst is not None:
            net, mask = _cidr(r.dst)
            neg = r.dst_negated
            checks.append(lambda p, c, n=net, m=mask, g=neg: ((ip_int(p.dst) & m) == n) != g)
        if r.in_iface is not None:
            f = _iface_check(r.in_iface)
            checks.append(lambda p, c, f=f, g=r.in_negated: f(p.in_iface) != g)
        if r.out_iface is not None:
            f = _iface_check(r.out_iface)
            checks.append(lambda p, c, f=f, g=r.out_negated: f(p.out_iface) != g)
        if r.proto is not None and r.proto != "all":
            checks.append(lambda p, c, v=r.proto, g=r.proto_negated: (p.proto == v) != g)
        for m in r.matches:
            checks.extend(self._compile_match(table, r, m, text, number))
        cr = CompiledRule(r, number, tuple(checks), "", text=text)
        self._compile_target(table, r, cr)
        cr.index_key = _index_key(r)
        return cr

    def _unsupported(self, what: str, table: str, r: Rule, text: str) -> Check:
        def fail(p: Packet, c: HookContext) -> bool:
            raise InputError(
                f"{self.name + ': ' if self.name else ''}{table} rule {text!r}",
                f"kslab cannot execute {what}",
                "the sim interprets kube-proxy's matches and targets; trace a packet that avoids this rule",
            )

        return fail

    def _compile_match(self, table: str, r: Rule, m, text: str, number: int) -> list[Check]:
        opts = {o.name: o for o in m.options}
        name = m.name
        if name == "comment":
            return []
        if name in ("tcp", "udp", "sctp"):
            out: list[Check] = []
            for key, attr in (("dport", "dport"), ("sport", "sport")):
                o = opts.get(key) or opts.get({"dport": "destination-port", "sport": "source-port"}[key])
                if o is None:
                    continue
                lo, hi = _ports(o.args[0])
                out.append(lambda p, c, a=attr, lo=lo, hi=hi, g=o.negated: (lo <= getattr(p, a) <= hi) != g)
            unknown = set(opts) - {"dport", "sport", "destination-port", "source-port"}
            if unknown:
                out.append(self._unsupported(f"the {name} options {sorted(unknown)}", table, r, text))
            return out
        if name == "multiport":
            out = []
            for key, attrs in (("dports", ("dport",)), ("destination-ports", ("dport",)), ("sports", ("sport",)),
                               ("source-ports", ("sport",)), ("ports", ("sport", "dport"))):
                o = opts.get(key)
                if o is None:
                    continue
                ranges = [_ports(x) for x in ",".join(o.args).split(",") if x]
                out.append(lambda p, c, rs=ranges, at=attrs, g=o.negated:
                           any(lo <= getattr(p, a) <= hi for a in at for lo, hi in rs) != g)
            return out
        if name == "nfacct":
            counter = opts["nfacct-name"].args[0] if "nfacct-name" in opts else ""

            def count(p: Packet, c: HookContext, k=counter) -> bool:
                c.state.nfacct[k] = c.state.nfacct.get(k, 0) + 1
                return True

            return [count]
        if name == "mark":
            o = opts.get("mark")
            if o is None:
                return [self._unsupported("this mark match", table, r, text)]
            value, _, mask = o.args[0].partition("/")
            v, mk = int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF
            return [lambda p, c, v=v, mk=mk, g=o.negated: ((p.mark & mk) == v) != g]
        if name in ("conntrack", "state"):
            o = opts.get("ctstate") or opts.get("state")
            extra = set(opts) - {"ctstate", "state"}
            if o is None or extra:
                return [self._unsupported(f"the conntrack options {sorted(extra) or ['(none)']}", table, r, text)]
            states = frozenset(o.args[0].split(","))
            return [lambda p, c, s=states, g=o.negated: (c.ct_state in s or bool(c.ct_status & s)) != g]
        if name == "addrtype":
            out = []
            for key, attr in (("src-type", "src"), ("dst-type", "dst")):
                o = opts.get(key)
                if o is None:
                    continue
                types = frozenset(o.args[0].split(","))
                out.append(lambda p, c, a=attr, t=types, g=o.negated: (_addr_type(getattr(p, a), c) in t) != g)
            return out
        if name == "statistic":
            mode = opts["mode"].args[0] if "mode" in opts else "random"
            if mode == "random":
                o = opts["probability"]
                threshold = int(float(o.args[0]) * 0x80000000 + 0.5)
                return [lambda p, c, t=threshold, g=o.negated: ((c.state.rng.getrandbits(32) & 0x7FFFFFFF) < t) != g]
            every = int(opts["every"].args[0])
            packet = int(opts["packet"].args[0]) if "packet" in opts else 0
            rid = id(r)

            def nth(p: Packet, c: HookContext, every=every, packet=packet, rid=rid) -> bool:
                n = c.state.nth_counters.get(rid, -1)
                n = n + 1 if n < every - 1 else 0  # xt_statistic: count cycles 0..every-1
                c.state.nth_counters[rid] = n
                return n == packet

            return [nth]
        if name == "recent":
            return [self._recent(opts, table, r, text)]
        if name == "icmp":
            return []
        return [self._unsupported(f"-m {name}", table, r, text)]

    def _recent(self, opts, table: str, r: Rule, text: str) -> Check:
        list_name = opts["name"].args[0] if "name" in opts else "DEFAULT"
        mask = ip_int(opts["mask"].args[0]) if "mask" in opts else 0xFFFFFFFF
        use_dst = "rdest" in opts
        seconds = int(opts["seconds"].args[0]) if "seconds" in opts else 0
        hitcount = int(opts["hitcount"].args[0]) if "hitcount" in opts else 0
        reap = "reap" in opts
        mode = next((k for k in ("set", "rcheck", "update", "remove") if k in opts), None)
        if mode is None:
            return self._unsupported("this recent match", table, r, text)
        negated = opts[mode].negated

        def check(p: Packet, c: HookContext) -> bool:
            table_ = c.state.recent.setdefault(list_name, {})
            addr_int = ip_int(p.dst if use_dst else p.src) & mask
            key = str(ipaddress.ip_address(addr_int)) if ":" not in p.src else p.src
            now = c.now
            if mode == "set":
                e = table_.pop(key, None) or RecentEntry()
                e.stamps.append(now)
                del e.stamps[:-RECENT_PKT_TOTAL]
                e.last_seen = now
                table_[key] = e  # most recently used last
                while len(table_) > RECENT_LIST_TOTAL:
                    del table_[next(iter(table_))]
                return not negated
            e = table_.get(key)
            if e is None:
                return negated
            if mode == "remove":
                del table_[key]
                return not negated
            hit = True
            if seconds or hitcount:
                recent_stamps = [t for t in e.stamps if not seconds or t + seconds >= now]
                hit = len(recent_stamps) >= max(hitcount, 1)
                if reap and seconds:
                    e.stamps = [t for t in e.stamps if t + seconds >= now]
                    if not e.stamps:
                        del table_[key]
            if hit and mode == "update":
                e.stamps.append(now)
                del e.stamps[:-RECENT_PKT_TOTAL]
                e.last_seen = now
                table_[key] = table_.pop(key, e)
            return hit != negated

        return check

    def _compile_target(self, table: str, r: Rule, cr: CompiledRule) -> None:
        t = r.target
        if t is None:
            return
        opts = {o.name: o for o in t.options}
        name = t.name
        if name in ("ACCEPT", "DROP", "REJECT", "RETURN"):
            cr.target = name
            return
        if t.is_chain:
            cr.target, cr.is_jump, cr.goto = name, True, t.goto
            return
        if name == "DNAT":
            to = opts["to-destination"].args[0] if "to-destination" in opts else ""
            ip, port = _split_hostport(to)
            cr.target = "DNAT"
            cr.action = lambda p, c, ip=ip, port=port: NatAction("DNAT", ip, port)
            return
        if name == "SNAT":
            to = opts["to-source"].args[0] if "to-source" in opts else ""
            ip, port = _split_hostport(to)
            cr.target = "SNAT"
            cr.action = lambda p, c, ip=ip, port=port, rf="random-fully" in opts: NatAction("SNAT", ip, port, rf)
            return
        if name == "MASQUERADE":
            port = None
            if "to-ports" in opts:
                port = int(opts["to-ports"].args[0].split("-")[0])
            cr.target = "MASQUERADE"
            cr.action = lambda p, c, port=port, rf="random-fully" in opts: NatAction("MASQUERADE", "", port, rf)
            return
        if name == "MARK":
            o = opts.get("set-xmark")
            if o is None:
                cr.checks = (*cr.checks, self._unsupported("this MARK target", table, r, cr.text))
                return
            value, _, mask = o.args[0].partition("/")
            v, mk = int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF
            cr.target = "MARK"
            cr.action = lambda p, c, v=v, mk=mk: setattr(p, "mark", (p.mark & ~mk & 0xFFFFFFFF) ^ v)
            return
        if name in NON_TERMINATING_TARGETS:
            cr.target = "NOTE"
            return
        cr.checks = (*cr.checks, self._unsupported(f"-j {name}", table, r, cr.text))

    # ---- running ------------------------------------------------------------------------------------
    def run_hook(self, hook: str, pkt: Packet, ctx: HookContext, *, tables: Sequence[str] | None = None,
                 trace: bool = True) -> HookResult:
        result = HookResult("ACCEPT")
        new = ctx.ct_state == "NEW"
        for tname, chains in self._plan[hook]:
            if (tname == "nat" and not new) or (tables is not None and tname not in tables):
                continue  # the nat table sees only a connection's first packet
            verdict = self._traverse(tname, chains, hook, pkt, ctx, result, trace and bool(chains[hook].rules))
            if trace and chains[hook].rules:
                result.steps.append(TraceStep(self.name, hook, tname, hook, "verdict", detail=verdict))
            if tname == "nat" and result.nat is not None:
                # conntrack now knows the binding: later tables see --ctstate DNAT/SNAT
                ctx.ct_status = ctx.ct_status | {"DNAT" if result.nat.kind == "DNAT" else "SNAT"}
            if verdict in ("DROP", "REJECT"):
                result.verdict = verdict
                return result
        return result

    def _traverse(self, tname: str, chains: dict[str, CompiledChain], hook: str, pkt: Packet, ctx: HookContext,
                  result: HookResult, trace: bool) -> str:
        builtin = chains[hook]
        chain = builtin
        stack: list[tuple[CompiledChain, int]] = []  # return points pushed by -j
        start = 0
        steps = result.steps
        while True:
            matched: CompiledRule | None = None
            for i in (range(start, len(chain.rules)) if chain.index is None else chain.candidates(pkt, start)):
                cr = chain.rules[i]
                for chk in cr.checks:
                    if not chk(pkt, ctx):
                        break
                else:
                    matched = cr
                    break
            if matched is None:  # fell off the end of the chain
                result.rules_evaluated += len(chain.rules) - start
                target = "RETURN"
            else:
                result.rules_evaluated += matched.number - start
                target = matched.target
                if trace:
                    steps.append(TraceStep(self.name, hook, tname, chain.name, "rule", matched.text, matched.number))
            if target == "" or target == "NOTE":
                start = matched.number  # type: ignore[union-attr]
                continue
            if target == "MARK":
                before = {"mark": hex(pkt.mark)} if trace else None
                matched.action(pkt, ctx)  # type: ignore[union-attr,misc]
                if trace:
                    steps[-1].packet_before, steps[-1].packet_after = before, {"mark": hex(pkt.mark)}
                start = matched.number  # type: ignore[union-attr]
                continue
            if matched is not None and matched.is_jump:
                nxt = chains.get(target)
                if nxt is None:
                    raise InputError(f"{tname} rule {matched.text!r}", f"jumps to chain {target} which does not exist", "check the dump")
                if not matched.goto:
                    stack.append((chain, matched.number))
                result.chains.append(target)
                if trace:
                    steps.append(TraceStep(self.name, hook, tname, chain.name, "goto" if matched.goto else "jump", detail=target))
                chain, start = nxt, 0
                continue
            if target == "RETURN":
                if stack:
                    caller, pos = stack.pop()
                    if trace:
                        steps.append(TraceStep(self.name, hook, tname, chain.name, "return", detail=caller.name))
                    chain, start = caller, pos
                    continue
                policy = builtin.policy or "ACCEPT"
                if trace:
                    steps.append(TraceStep(self.name, hook, tname, builtin.name, "policy", detail=policy))
                return policy
            if target in ("DNAT", "SNAT", "MASQUERADE"):
                nat: NatAction = matched.action(pkt, ctx)  # type: ignore[union-attr,misc,assignment]
                if nat.kind == "DNAT":
                    before = {"dst": pkt.dst, "dport": pkt.dport}
                    pkt.dst = nat.to_ip or pkt.dst
                    if nat.to_port is not None:
                        pkt.dport = nat.to_port
                    if trace:
                        steps[-1].packet_before, steps[-1].packet_after = before, {"dst": pkt.dst, "dport": pkt.dport}
                result.nat = nat
                return "ACCEPT"
            if target == "REJECT":
                opt = matched.rule.target.option("reject-with") if matched and matched.rule.target else None  # type: ignore[union-attr]
                result.reject_with = opt.args[0] if opt else "icmp-port-unreachable"
                return "REJECT"
            return target  # ACCEPT or DROP


def _addr_type(ip: str, ctx: HookContext) -> str:
    if ip in ctx.local_addresses or ip.startswith("127."):
        return "LOCAL"
    if ip in ctx.broadcast_addresses or ip == "255.255.255.255":
        return "BROADCAST"
    if ":" not in ip and 224 <= int(ip.split(".", 1)[0]) <= 239:
        return "MULTICAST"
    return "UNICAST"


def _split_hostport(to: str) -> tuple[str, int | None]:
    if to.startswith("["):
        host, _, port = to[1:].partition("]:")
        return host, int(port) if port else None
    host, _, port = to.partition(":")
    host = host.split("-")[0]
    return host, int(port.split("-")[0]) if port else None


def _index_key(r: Rule) -> tuple[int, str, int] | None:
    """(dst, proto, dport) for a rule that selects on nothing else (so an index lookup is exact)."""
    if r.dst is None or r.dst_negated or not r.dst.endswith("/32") or r.src is not None or r.in_iface or r.out_iface:
        return None
    if r.proto not in ("tcp", "udp", "sctp") or r.proto_negated:
        return None
    dport = None
    for m in r.matches:
        if m.name == "comment":
            continue
        if m.name == r.proto and len(m.options) == 1 and m.options[0].name == "dport" and not m.options[0].negated \
                and ":" not in m.options[0].args[0]:
            dport = int(m.options[0].args[0])
            continue
        return None
    if dport is None:
        return None
    return (ip_int(r.dst[:-3]), r.proto, dport)


def _build_index(cc: CompiledChain) -> None:
    index: dict[tuple[int, str, int], list[int]] = {}
    generic: list[int] = []
    for i, cr in enumerate(cc.rules):
        if cr.index_key is None:
            generic.append(i)
        else:
            index.setdefault(cr.index_key, []).append(i)
    if len(generic) * 2 > len(cc.rules):
        return  # mostly unindexable: a plain scan is as good
    cc.index, cc.generic = index, generic
