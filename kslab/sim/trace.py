"""A connection's trace as text (for people) and JSON (for programs and tests)."""

from __future__ import annotations

import json
from typing import Any

from .network import Connection


def trace_dict(conn: Connection) -> dict[str, Any]:
    return {
        "from": {"name": conn.client.name, "ip": conn.client.ip, "kind": conn.client.kind},
        "to": f"{conn.dst}:{conn.dport}/{conn.proto}",
        "verdict": conn.outcome,
        "reason": conn.reason,
        "chains": list(dict.fromkeys(conn.chains)),
        "dnat_to": conn.dnat_to,
        "masquerade": conn.masquerade,
        "snat_to": conn.snat_to,
        "ingress_node": conn.ingress_node,
        "endpoint": {"pod": conn.endpoint_pod, "node": conn.endpoint_node, "ip": conn.endpoint_ip, "port": conn.endpoint_port}
        if conn.endpoint_pod
        else None,
        "source_ip_seen": conn.source_ip_seen or None,
        "path": conn.path,
        "reply_path": conn.reply_path,
        "rules_evaluated": conn.rules_evaluated,
        "steps": [
            {k: v for k, v in {
                "node": s.node, "hook": s.hook, "table": s.table, "chain": s.chain, "event": s.event,
                "rule_number": s.rule_number or None, "rule": s.rule or None, "detail": s.detail or None,
                "packet_before": s.packet_before, "packet_after": s.packet_after,
            }.items() if v not in (None, "")}
            for s in conn.steps
        ],
    }


def trace_json(conn: Connection) -> str:
    return json.dumps(trace_dict(conn), indent=2)


def trace_text(conn: Connection) -> str:
    c = conn.client
    out = [f"connection {c.name} ({c.ip}) -> {conn.dst}:{conn.dport}/{conn.proto}"]
    where = ""
    for s in conn.steps:
        head = f"{s.node} {s.hook}".strip()
        if head != where and s.event != "note":
            out.append(f"  [{head}]")
            where = head
        if s.event == "rule":
            out.append(f"    {s.table:<6} {s.chain} #{s.rule_number}: {s.rule}")
        elif s.event in ("jump", "goto"):
            out.append(f"    {s.table:<6} {s.chain} -> {s.detail}" + (" (goto)" if s.event == "goto" else ""))
        elif s.event == "return":
            out.append(f"    {s.table:<6} {s.chain} RETURN" + (f" to {s.detail}" if s.detail else ""))
        elif s.event == "policy":
            out.append(f"    {s.table:<6} {s.chain} policy {s.detail}")
        elif s.event == "nat":
            b, a = s.packet_before or {}, s.packet_after or {}
            arrow = f"  {b.get('src')}:{b.get('sport')} -> {b.get('dst')}:{b.get('dport')}  =>  {a.get('src')}:{a.get('sport')} -> {a.get('dst')}:{a.get('dport')}"
            out.append(f"    * {s.detail}" + (arrow if b else ""))
        elif s.event == "verdict":
            out.append(f"    {s.table:<6} verdict {s.detail}")
        elif s.event == "note":
            out.append(f"  - {s.detail}")
        else:
            out.append(f"    {s.event}: {s.detail}")
    out.append(f"verdict: {conn.outcome}" + (f" ({conn.reason})" if conn.reason and conn.outcome != "ok" else ""))
    if conn.endpoint_pod:
        out.append(f"endpoint: {conn.endpoint_pod} on {conn.endpoint_node} ({conn.endpoint_ip}:{conn.endpoint_port}), "
                   f"sees the client as {conn.source_ip_seen}")
    out.append(f"DNAT: {conn.dnat_to or 'none'}; masquerade: {'yes' if conn.masquerade else 'no'}"
               + (f" (SNAT to {conn.snat_to})" if conn.snat_to else ""))
    out.append(f"path: {' -> '.join(conn.path) or '-'}; reply: {' -> '.join(conn.reply_path) or '-'}; "
               f"rules the kernel evaluated: {conn.rules_evaluated}")
    return "\n".join(out) + "\n"
