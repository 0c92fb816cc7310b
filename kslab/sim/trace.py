"""A simulated connection as a :class:`kslab.dataplane.trace.Trace` (text for people, JSON for programs)."""

from __future__ import annotations

from ..dataplane.trace import SIMULATOR, Trace, TraceStep
from .network import Connection, _source_address


def trace_of(conn: Connection, backend: str = "sim") -> Trace:
    """The trace of a connection the simulator ran with ``trace=True``."""
    c = conn.client
    # client_ip: the client's address; a dual-stack client's of the destination's family
    ip = c.ip if (":" in c.ip) == (":" in conn.dst) else (_source_address(c, conn.dst) or c.ip)
    return Trace(
        backend=backend, source=SIMULATOR, client=c.name, client_ip=ip, client_kind=c.kind,
        dst=conn.dst, dport=conn.dport, proto=conn.proto, outcome=conn.outcome, reason=conn.reason,
        chains=list(dict.fromkeys(conn.chains)), dnat_to=conn.dnat_to, masquerade=conn.masquerade, snat_to=conn.snat_to,
        ingress_node=conn.ingress_node, endpoint_pod=conn.endpoint_pod, endpoint_node=conn.endpoint_node,
        endpoint_ip=conn.endpoint_ip, endpoint_port=conn.endpoint_port, source_ip_seen=conn.source_ip_seen,
        path=list(conn.path), reply_path=list(conn.reply_path), rules_evaluated=conn.rules_evaluated,
        steps=[TraceStep(node=s.node, hook=s.hook, table=s.table, chain=s.chain, event=s.event, rule=s.rule,
                         rule_number=s.rule_number, detail=s.detail, packet_before=s.packet_before,
                         packet_after=s.packet_after) for s in conn.steps],
        candidates=list(conn.candidates) if conn.candidates is not None else None,
        candidates_source=SIMULATOR if conn.candidates is not None else "",
    )
