"""One connection explained rule by rule: the one ``Trace`` type every dataplane produces.

The simulator builds it from its own interpretation of the rules (:mod:`kslab.sim.trace`); the
netns backend from the kernel's own report (``xtables-monitor --trace``, :mod:`kslab.netns.ktrace`).
The fields, ``str()`` text and ``to_dict()``/``json()`` are the same whichever produced it;
where a backend cannot know a value (the kernel does not count the rules it evaluates, nor
report the reply's path) it is None or empty, and ``backend``/``source`` say who traced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SIMULATOR = "simulator"
STEP_EVENTS = ("rule", "jump", "goto", "return", "policy", "nat", "verdict", "note")


def _host_port(ip: object, port: object) -> str:
    """``ip:port``, an IPv6 address in brackets (``net.JoinHostPort``): ``[fd00::5]:80``."""
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


@dataclass
class TraceStep:
    """One thing netfilter did to the traced packet on one node."""

    node: str
    hook: str  # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING ("" for a note)
    table: str
    chain: str
    event: str  # one of STEP_EVENTS
    rule: str = ""  # the matched rule as iptables-save prints it ("-A CHAIN ...")
    rule_number: int = 0  # 1-based position in its chain (0: the backend does not know it)
    detail: str = ""  # jump/goto target, policy verdict, NAT description, note text
    packet_before: dict[str, Any] | None = None  # src, sport, dst, dport (and what else is known)
    packet_after: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {
            "node": self.node, "hook": self.hook, "table": self.table, "chain": self.chain, "event": self.event,
            "rule_number": self.rule_number or None, "rule": self.rule or None, "detail": self.detail or None,
            "packet_before": self.packet_before, "packet_after": self.packet_after,
        }.items() if v not in (None, "")}


@dataclass
class Candidate:
    """One place the traced connection could have gone, with its probability (the statistic
    ladder's, ``numgen``'s, the load balancer's choice of node), and why: the rules that decide
    it (the ladder, an affinity hit, a local-only traffic policy)."""

    probability: float
    outcome: str  # "ok", or why that branch fails (dropped, rejected, refused, ...)
    pod: str = ""
    node: str = ""
    ip: str = ""
    port: int = 0
    masquerade: bool = False
    snat_to: str | None = None
    source_ip_seen: str = ""  # the client address the endpoint sees ("" when it depends on the branch)
    sources_seen: list[str] = field(default_factory=list)  # every address it may see (several: one per ingress node)
    ingress_nodes: list[str] = field(default_factory=list)  # the nodes whose rules may choose it
    why: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return _host_port(self.ip, self.port) if self.ip else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "probability": self.probability, "verdict": self.outcome,
            "endpoint": {"pod": self.pod or None, "node": self.node or None, "ip": self.ip or None,
                         "port": self.port or None} if self.ip else None,
            "masquerade": self.masquerade, "snat_to": self.snat_to, "source_ip_seen": self.source_ip_seen or None,
            "sources_seen": list(self.sources_seen), "ingress_nodes": list(self.ingress_nodes), "why": list(self.why),
        }

    def line(self) -> str:
        where = (f"{self.pod or self.ip}" + (f" on {self.node}" if self.node else "")
                 + (f" ({_host_port(self.ip, self.port)})" if self.ip else "")) if self.ip else "(no endpoint)"
        verdict = "" if self.outcome == "ok" else f" [{self.outcome}]"
        masq = f"masquerade: {'yes' if self.masquerade else 'no'}"
        if len(self.sources_seen) > 1:
            masq += f" (sees {', '.join(self.sources_seen)}: it depends on the node the connection enters)"
        why = f"  <- {'; '.join(self.why)}" if self.why else ""
        return f"  {self.probability:7.2%}  {where}{verdict}, {masq}{why}"


@dataclass
class Trace:
    """One connection's trace: ``str()`` for people, ``.json()`` / ``.to_dict()`` for programs."""

    backend: str  # the dataplane that produced it: "sim", "netns", ...
    source: str  # who traced it: SIMULATOR, "kernel (xtables-monitor --trace)"
    client: str  # the client's name (pod, node, mypc, or the IP)
    client_ip: str
    client_kind: str  # "pod", "node", "external"
    dst: str
    dport: int
    proto: str
    outcome: str  # "ok" or why not
    reason: str = ""
    chains: list[str] = field(default_factory=list)  # user chains entered, in order, each once
    dnat_to: str | None = None  # "IP:PORT" the connection was DNATed to
    masquerade: bool = False
    snat_to: str | None = None
    ingress_node: str = ""  # the node whose netfilter saw the first packet first
    endpoint_pod: str = ""
    endpoint_node: str = ""
    endpoint_ip: str = ""
    endpoint_port: int = 0
    source_ip_seen: str = ""  # the client address the endpoint saw
    path: list[str] = field(default_factory=list)  # nodes the first packet crossed
    reply_path: list[str] = field(default_factory=list)  # nodes the reply crossed (empty: unknown)
    rules_evaluated: int | None = None  # None: the backend cannot count them
    steps: list[TraceStep] = field(default_factory=list)
    # every endpoint the connection could have reached, each with its probability (they sum to 1);
    # None: the backend could not work them out; candidates_source says who did
    candidates: list[Candidate] | None = None
    candidates_source: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def verdict(self) -> str:
        return self.outcome

    def rules(self) -> list[tuple[str, str, str]]:
        """(node, table, rule) of every rule the first packet matched, in order (up to its delivery)."""
        out = []
        for s in self.steps:
            if s.event == "note" and s.detail.startswith("delivered to"):
                break
            if s.event == "rule":
                out.append((s.node, s.table, s.rule))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "source": self.source,
            "from": {"name": self.client, "ip": self.client_ip, "kind": self.client_kind},
            "to": f"{_host_port(self.dst, self.dport)}/{self.proto}",
            "verdict": self.outcome,
            "reason": self.reason,
            "chains": list(self.chains),
            "dnat_to": self.dnat_to or None,
            "masquerade": self.masquerade,
            "snat_to": self.snat_to,
            "ingress_node": self.ingress_node,
            "endpoint": {"pod": self.endpoint_pod, "node": self.endpoint_node or None, "ip": self.endpoint_ip or None,
                         "port": self.endpoint_port or None} if self.endpoint_pod else None,
            "source_ip_seen": self.source_ip_seen or None,
            "path": list(self.path),
            "reply_path": list(self.reply_path),
            "rules_evaluated": self.rules_evaluated,
            "candidates": [c.to_dict() for c in self.candidates] if self.candidates is not None else None,
            "candidates_source": self.candidates_source or None,
            "steps": [s.to_dict() for s in self.steps],
        }

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        out = [f"connection {self.client} ({self.client_ip}) -> {_host_port(self.dst, self.dport)}/{self.proto}"
               + ("" if self.source == SIMULATOR else f"   [traced by the {self.source}]")]
        where = ""
        for s in self.steps:
            head = f"{s.node} {s.hook}".strip()
            if head != where and s.event != "note":
                p = s.packet_before if s.event != "nat" else None
                out.append(f"  [{head}]" + (f"  {_host_port(p.get('src'), p.get('sport'))} -> {_host_port(p.get('dst'), p.get('dport'))}" if p else ""))
                where = head
            out.append(_step_line(s))
        if not self.steps:
            out.append("  (no node's netfilter saw the first packet)")
        out.append(f"verdict: {self.outcome}" + (f" ({self.reason})" if self.reason and self.outcome != "ok" else ""))
        if self.endpoint_pod:
            at = f" on {self.endpoint_node} ({_host_port(self.endpoint_ip, self.endpoint_port)})" if self.endpoint_node else ""
            out.append(f"endpoint: {self.endpoint_pod}{at}, sees the client as {self.source_ip_seen}")
        out.append(f"DNAT: {self.dnat_to or 'none'}; masquerade: {'yes' if self.masquerade else 'no'}"
                   + (f" (SNAT to {self.snat_to})" if self.snat_to else ""))
        out.append(f"path: {' -> '.join(self.path) or '-'}; reply: {' -> '.join(self.reply_path) or '-'}; "
                   f"rules the kernel evaluated: {'-' if self.rules_evaluated is None else self.rules_evaluated}")
        if self.candidates is not None:
            by = "" if self.candidates_source in ("", SIMULATOR) else f"   [worked out by the {self.candidates_source}]"
            out.append(f"where a new connection can go ({len(self.candidates)} candidate"
                       f"{'' if len(self.candidates) == 1 else 's'}):{by}")
            out.extend(c.line() for c in self.candidates)
        elif self.candidates_source.startswith("none"):
            out.append(f"where a new connection can go: {self.candidates_source}")
        return "\n".join(out) + "\n"

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the text
        p.text(str(self))


def _step_line(s: TraceStep) -> str:
    if s.event == "rule":
        return f"    {s.table:<6} {s.chain}" + (f" #{s.rule_number}" if s.rule_number else "") + f": {s.rule}"
    if s.event in ("jump", "goto"):
        return f"    {s.table:<6} {s.chain} -> {s.detail}" + (" (goto)" if s.event == "goto" else "")
    if s.event == "return":
        return f"    {s.table:<6} {s.chain} RETURN" + (f" to {s.detail}" if s.detail else "")
    if s.event == "policy":
        return f"    {s.table:<6} {s.chain} policy {s.detail}"
    if s.event == "nat":
        b, a = s.packet_before or {}, s.packet_after or {}
        arrow = (f"  {_host_port(b.get('src'), b.get('sport'))} -> {_host_port(b.get('dst'), b.get('dport'))}  =>  "
                 f"{_host_port(a.get('src'), a.get('sport'))} -> {_host_port(a.get('dst'), a.get('dport'))}")
        return f"    * {s.detail}" + (arrow if b else "")
    if s.event == "verdict":
        # iptables: one built-in chain per table at a hook, named by the block ("nat    verdict
        # ACCEPT"); nftables: a table's base chains at one hook (filter-prerouting-pre-dnat,
        # nat-prerouting), so the line names the base chain that gave the verdict
        base = f" {s.chain}" if s.chain and s.chain != s.hook else ""
        return f"    {s.table:<6}{base} verdict {s.detail}"
    if s.event == "note":
        return f"  - {s.detail}"
    return f"    {s.event}: {s.detail}"
