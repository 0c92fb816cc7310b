"""The kernel's own trace of one connection through kube-proxy's nftables rules (netns backend).

The iptables mode's kernel trace is :mod:`kslab.netns.ktrace` (``-j TRACE`` and
``xtables-monitor --trace``). In nftables mode the kernel says the same thing through ``nft
monitor trace``: a packet whose ``meta nftrace`` is set is reported rule by rule, in every table,
with each rule in the form ``nft list`` prints it::

    trace id 12847839 ip kube-proxy nat-output packet: oif "lo" ip saddr 127.0.0.1 ... tcp sport 49062 tcp dport 9 ...
    trace id 12847839 ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto svc)
    trace id 12847839 ip kube-proxy svc2 rule meta l4proto tcp dnat to 127.0.0.1:10 (verdict accept)

:func:`nft_kernel_trace` adds a table of its own to every node namespace (``table ip
kslab-trace``: a filter chain at prerouting and one at output, priority -400, before every
kube-proxy chain, setting ``nftrace`` on TCP SYNs), runs one ``nft monitor trace`` per node
(:func:`kslab.nft.kernel.nft_monitor_trace`), proves each listens (a probe SYN it must report),
opens one real connection, then deletes the table. kube-proxy's table is never changed. Only
the steps in ``table ip kube-proxy`` are kept (kubelet's iptables-nft tables and kslab's own are
left out), so the trace lists what the simulator's nftables trace lists. Only the SYN is traced,
as in iptables mode: it is the packet that goes through the nat chains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..dataplane.trace import Trace, TraceStep
from ..nft import kernel as nft_kernel
from . import client as _client
from .ktrace import PROBE_PORT, TraceMonitor, order_path, traced_connection

SOURCE = "kernel (nft monitor trace)"
TRACE_TABLE = "kslab-trace"
KUBE_PROXY_TABLE = "kube-proxy"
_SYN = "tcp flags & (fin | syn | rst | ack) == syn"
TRACE_TABLE_TEXT = (
    f'add table ip {TRACE_TABLE} {{ comment "kslab: nftrace on TCP SYNs, for nft monitor trace" ; }}\n'
    f"add chain ip {TRACE_TABLE} prerouting {{ type filter hook prerouting priority -400 ; }}\n"
    f"add chain ip {TRACE_TABLE} output {{ type filter hook output priority -400 ; }}\n"
    f"add rule ip {TRACE_TABLE} prerouting {_SYN} meta nftrace set 1\n"
    f"add rule ip {TRACE_TABLE} output {_SYN} meta nftrace set 1\n"
)
_LINE = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (packet|rule|policy|verdict):? ?(.*?)\s*$")
_RULE_VERDICT = re.compile(r"^(.*) \(verdict (\w+)(?: (\S+))?\)$")
_FIELDS = {"src": r"ip saddr (\S+)", "dst": r"ip daddr (\S+)", "sport": r"(?:tcp|th) sport (\d+)",
           "dport": r"(?:tcp|th) dport (\d+)", "in": r'iif "([^"]+)"', "out": r'oif "([^"]+)"'}
_BASE_CHAIN = re.compile(r"^\tchain (\S+) \{\n(?:\t\tcomment .*\n)?\t\ttype \w+ hook (\w+) ", re.M)


@dataclass
class NftEvent:
    """One line of ``nft monitor trace`` for one packet."""

    table: str
    chain: str
    kind: str  # packet, rule, policy, verdict
    text: str = ""  # the rule as nft lists it (rule), or the packet's fields (packet)
    verdict: str = ""  # accept, drop, continue, jump, goto, return
    target: str = ""  # the chain jumped or gone to
    packet: dict[str, str] = field(default_factory=dict)


def parse_monitor(text: str, table: str = KUBE_PROXY_TABLE) -> dict[str, list[NftEvent]]:
    """``nft monitor trace`` output -> the events of ``table`` (family ip) per traced packet id,
    each packet's events in order; the packet fields are carried onto every event."""
    out: dict[str, list[NftEvent]] = {}
    seen: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        pid, family, tbl, chain, kind, rest = m.groups()
        if kind == "packet":
            seen[pid] = {k: g.group(1) for k, rx in _FIELDS.items() if (g := re.search(rx, rest))}
        if family != "ip" or tbl != table:
            continue
        event = NftEvent(tbl, chain, kind, packet=dict(seen.get(pid, {})))
        if kind == "rule":
            v = _RULE_VERDICT.match(rest)
            event.text, event.verdict, event.target = (v.group(1), v.group(2), v.group(3) or "") if v else (rest, "", "")
        elif kind == "packet":
            event.text = rest
        else:  # policy accept / verdict continue
            words = rest.split()
            event.verdict, event.target = (words[0] if words else ""), (words[1] if len(words) > 1 else "")
        out.setdefault(pid, []).append(event)
    return out


def base_chain_hooks(listing: str) -> dict[str, str]:
    """Base chain -> hook (``PREROUTING``...) from ``nft list table ip kube-proxy``."""
    return {name: hook.upper() for name, hook in _BASE_CHAIN.findall(listing)}


def trace_steps(node: str, events: Sequence[NftEvent], hooks: dict[str, str]) -> list[TraceStep]:
    """One node's events as :class:`~kslab.dataplane.trace.TraceStep` (the rule, then the jump or
    goto it made; the packet on the first step of every hook), table ``kube-proxy``."""
    out: list[TraceStep] = []
    hook, packet, stack = "", None, []
    for e in events:
        if e.kind == "packet":
            if e.chain in hooks and hooks[e.chain] != hook:
                hook = hooks[e.chain]
                packet = {k: v for k, v in e.packet.items() if k in ("src", "sport", "dst", "dport", "in", "out")}
            stack = [e.chain]
            continue
        step = dict(node=node, hook=hook, table=e.table, chain=e.chain, packet_before=packet)
        packet = None
        if e.kind == "rule":
            out.append(TraceStep(event="rule", rule=e.text, **step))
            if e.verdict in ("jump", "goto") and e.target:
                out.append(TraceStep(node=node, hook=hook, table=e.table, chain=e.chain, event=e.verdict, detail=e.target))
                stack = stack + [e.target] if e.verdict == "jump" else stack[:-1] + [e.target]
            elif e.verdict == "return":
                stack = stack[:-1]
                out.append(TraceStep(node=node, hook=hook, table=e.table, chain=e.chain, event="return",
                                     detail=stack[-1] if stack else ""))
        elif e.kind == "policy":
            out.append(TraceStep(event="policy", detail=e.verdict.upper(), **step))
        elif e.kind == "verdict" and e.verdict == "return":  # the end of a jumped-to chain
            stack = stack[:-1]
            out.append(TraceStep(event="return", detail=stack[-1] if stack else "", **step))
    return out


def build_trace(*, client: str, client_ip: str, client_kind: str, dst: str, dport: int, result: _client.ConnResult,
                per_node: Sequence[tuple[str, list[NftEvent]]], hooks: dict[str, dict[str, str]],
                backend: str = "netns") -> Trace:
    """A real connection and the kube-proxy rules its SYN matched, node by node, as a :class:`Trace`."""
    events = [e for _, es in per_node for e in es]
    rules = [e for e in events if e.kind == "rule"]
    dnat_to = next((m.group(1) for e in rules if (m := re.search(r"\bdnat to (\S+)", e.text))), None)
    dropped = next((e for e in rules if e.verdict == "drop"), None)  # a reject rule's verdict is reported as drop
    if result.ok:
        reason = ""
    elif dropped is not None:
        what = "rejected" if re.search(r"\breject\b", dropped.text) else "dropped"
        reason = f"{what} by nftables rule '{dropped.text}' in chain {dropped.chain}"
    elif not events:
        reason = f"{result.error}: no node's kube-proxy table saw the SYN (no route to {dst} from {client}, or no rule for it)"
    elif not dnat_to:
        reason = f"{result.error}: no rule DNATed {dst}:{dport}; nothing listens there"
    else:
        reason = f"{result.error}: {result.detail or 'no answer'}"
    base = {c for h in hooks.values() for c in h}
    steps = [s for node, es in per_node for s in trace_steps(node, es, hooks.get(node, {}))]
    return Trace(
        backend=backend, source=SOURCE, client=client, client_ip=client_ip, client_kind=client_kind,
        dst=dst, dport=dport, proto="tcp", outcome="ok" if result.ok else (result.error or "error"), reason=reason,
        chains=list(dict.fromkeys(e.target for e in rules if e.target and e.target not in base)), dnat_to=dnat_to,
        masquerade=any(re.search(r"\bmasquerade\b", e.text) for e in rules),
        ingress_node=per_node[0][0] if per_node else "", endpoint_pod=result.pod or "",
        endpoint_port=int(dnat_to.rpartition(":")[2]) if dnat_to and result.pod else 0,
        source_ip_seen=result.seen_ip or "", path=[n for n, _ in per_node], rules_evaluated=None, steps=steps,
    )


class _Monitor(TraceMonitor):
    """``nft monitor trace`` in one node namespace."""

    def __init__(self, node: str, ns: str) -> None:
        super().__init__(node, ns, nft_kernel.nft_monitor_trace(ns))

    def packets(self) -> list[dict[str, str]]:
        return [{k: g.group(1) for k, rx in _FIELDS.items() if (g := re.search(rx, m.group(6)))}
                for line in list(self.lines) if (m := _LINE.match(line)) and m.group(5) == "packet"]

    def saw_probe(self) -> bool:
        return any(p.get("dst") == "127.0.0.1" and p.get("dport") == str(PROBE_PORT) and p.get("sport") in self.probe_sports
                   for p in self.packets())

    def saw_sport(self, sport: str) -> bool:
        return any(p.get("sport") == sport for p in self.packets())

    def _end(self) -> None:
        nft_kernel.stop_process(self.proc)


def nft_kernel_trace(nodes: Sequence[tuple[str, str]], src_ns: str, dst: str, port: int, *, client: str, client_ip: str,
                     client_kind: str = "", timeout: float = 1.0, ignore_sources: Sequence[str] = ()) -> Trace:
    """Open one real TCP connection from ``src_ns`` to ``dst:port`` and return the kernel's trace of
    its SYN through every node's ``table ip kube-proxy`` (``nodes``: (node name, namespace) pairs).
    SYNs from ``ignore_sources`` (the load balancer's health probes) are left out."""
    hooks = {name: base_chain_hooks(nft_kernel.nft_list_table(ns)) for name, ns in nodes}
    added: list[str] = []
    try:
        for _, ns in nodes:
            nft_kernel.nft_apply(ns, TRACE_TABLE_TEXT)
            added.append(ns)
        traced = traced_connection(nodes, _Monitor, "nft monitor trace", src_ns, dst, port, timeout=timeout)
    finally:
        for ns in added:
            nft_kernel.delete_table(ns, "ip", TRACE_TABLE)
    result, sport, outputs = traced.run.results[0], traced.sport, traced.outputs
    per_node: list[tuple[str, list[NftEvent]]] = []
    for name, _ in nodes:
        probes = traced.probe_sports.get(name, set())
        packets = {}
        for pid, events in parse_monitor(outputs.get(name, "")).items():
            first = events[0].packet
            if first.get("dport") == str(PROBE_PORT) and first.get("sport") in probes and first.get("dst") == "127.0.0.1":
                continue  # the readiness probes
            if first.get("src") in ignore_sources:
                continue  # the load balancer's health probes
            packets[pid] = events
        if not packets:
            continue
        chosen = next((es for es in packets.values() if sport and es[0].packet.get("sport") == sport), None)
        per_node.append((name, chosen or next(iter(packets.values()))))
    order_path(per_node, nodes, src_ns, dst, sport, keys=("dst", "sport", "in"))
    return build_trace(client=client, client_ip=client_ip, client_kind=client_kind, dst=dst, dport=port, result=result,
                       per_node=per_node, hooks=hooks)
