"""The kernel's own trace of one connection through kube-proxy's rules (netns backend).

The simulator explains a connection rule by rule (:mod:`kslab.sim.trace`), into a
:class:`kslab.dataplane.trace.Trace`. On the netns backend
the kernel can say the same thing itself: ``-j TRACE`` in the raw table sets ``nftrace`` on a
packet, and ``xtables-monitor --trace`` (iptables' nf_tables backend) prints every rule that
packet matched, in every table and chain, as ``iptables-save`` would print the rule::

    PACKET: 2 646a45bf IN=veth4e25 OUT=eth0 ... SRC=10.10.0.2 DST=10.200.1.51 ... SPORT=56210 DPORT=9000 SYN
     TRACE: 2 646a45bf nat:KUBE-SERVICES:rule:0x20:JUMP:KUBE-SVC-KBDEBIL6IU6WL7RF  -4 -t nat -A KUBE-SERVICES -d 10.200.1.51/32 ...
     TRACE: 2 646a45bf nat:KUBE-SEP-TBW2IYJKUCAC7GB3:rule:0x26:ACCEPT  -4 -t nat -A KUBE-SEP-TBW2IYJKUCAC7GB3 ... -j DNAT --to-destination 10.10.1.2:80

:func:`kernel_trace` adds ``-p tcp --syn -j TRACE`` at the top of raw PREROUTING and OUTPUT in
every node namespace (never in the root namespace), listens with one ``xtables-monitor`` per
node, opens one real connection, then removes the rules (an empty raw table stays in the node
namespaces). Only the SYN is traced: it is the packet that goes through the nat table; later
packets follow its conntrack entry. A connection to an IPv6 address is traced the same way
through ip6tables (the TRACE rules go into ip6tables' raw table as well; the monitor, started
without ``-4``/``-6``, reports both families, its rules as ``-6 -t nat -A ...``). iptables 1.8.9's
xtables-monitor cannot print an ip6tables rule that matches a protocol (``-p tcp``: "Parsing
nftables rule failed", then it exits), so there :func:`kernel_trace` of an IPv6 connection is one
:class:`EnvironmentProblem` line, never a partial trace. Needs the nf_tables backend (the legacy backend logs
traces to the kernel log instead, which network namespaces do not separate).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from typing import Any

from ..dataplane.reasons import netfilter_verdict
from ..dataplane.trace import Trace, TraceStep
from ..errors import EnvironmentProblem
from ..xtables import kernel
from . import client as _client

SOURCE = "kernel (xtables-monitor --trace)"

TRACE_RULE = ("-p", "tcp", "--syn", "-j", "TRACE")
_HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_VERDICTS = {"0xfffffffb": "RETURN", "0xfffffffd": "GOTO"}
_TRACE = re.compile(r"^\s*TRACE: \d+ ([0-9a-f]+) (\w+):([^:]+):(rule|policy|return):?(\S*)\s*(.*)$")
_PACKET = re.compile(r"^\s*PACKET: \d+ ([0-9a-f]+) (.*)$")
# what xtables-monitor prints (then exits 3) when it cannot read back a traced rule; measured with
# iptables 1.8.9 on every ip6tables rule with -p tcp ("Error: unsupported layer 4 protocol value")
MONITOR_FAILED = "Parsing nftables rule failed"


@dataclass
class KernelStep:
    """One rule the packet matched (or a chain's policy), as the kernel reported it."""

    node: str
    table: str
    chain: str
    event: str  # "rule", "policy", "return"
    verdict: str  # JUMP, GOTO, ACCEPT, DROP, RETURN, CONTINUE...
    target: str = ""  # the chain jumped to
    rule: str = ""  # the rule in iptables-save form ("-A CHAIN ...")
    packet: dict[str, str] = field(default_factory=dict)  # the packet at this hook

    @property
    def hook(self) -> str:
        return self.packet.get("hook", "")


def parse_monitor(text: str, node: str) -> dict[str, list[KernelStep]]:
    """``xtables-monitor --trace`` output -> steps per traced packet id (raw-table steps dropped)."""
    packets: dict[str, dict[str, str]] = {}
    hooks: dict[str, str] = {}
    out: dict[str, list[KernelStep]] = {}
    for line in text.splitlines():
        m = _PACKET.match(line)
        if m:
            fields = dict(f.split("=", 1) for f in m.group(2).split() if "=" in f)
            fields["flags"] = " ".join(f for f in m.group(2).split() if "=" not in f)
            packets[m.group(1)] = fields
            continue
        m = _TRACE.match(line)
        if not m:
            continue
        pid, table, chain, event, rest, rule = m.groups()
        if table == "raw":
            continue
        parts = rest.split(":") if rest else []
        if event == "rule":
            verdict = parts[1] if len(parts) > 1 else ""
            target = parts[2] if len(parts) > 2 else ""
        else:
            verdict, target = (parts[0] if parts else ""), ""
        verdict = _VERDICTS.get(verdict, verdict)
        rule = re.sub(r"^-[46] -t \w+ ", "", rule.strip())
        if chain in _HOOKS:
            hooks[pid] = chain
        packet = dict(packets.get(pid, {}), hook=hooks.get(pid, ""))
        out.setdefault(pid, []).append(
            KernelStep(node=node, table=table, chain=chain, event=event, verdict=verdict, target=target, rule=rule,
                       packet=packet))
    return out


def _packet(p: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in p.items() if k in ("SRC", "SPORT", "DST", "DPORT", "IN", "OUT")}


def trace_steps(steps: Sequence[KernelStep]) -> list[TraceStep]:
    """The kernel's steps as :class:`~kslab.dataplane.trace.TraceStep` (a jump or goto after the rule
    that made it, the packet on the first step of every node and hook), like a sim trace's."""
    out: list[TraceStep] = []
    where = None
    for s in steps:
        packet = _packet(s.packet) if (s.node, s.hook) != where else None
        where = (s.node, s.hook)
        if s.event == "rule":
            out.append(TraceStep(node=s.node, hook=s.hook, table=s.table, chain=s.chain, event="rule", rule=s.rule,
                                 packet_before=packet))
            if s.verdict in ("JUMP", "GOTO") and s.target:
                out.append(TraceStep(node=s.node, hook=s.hook, table=s.table, chain=s.chain, event=s.verdict.lower(),
                                     detail=s.target))
        elif s.event == "policy":
            out.append(TraceStep(node=s.node, hook=s.hook, table=s.table, chain=s.chain, event="policy", detail=s.verdict,
                                 packet_before=packet))
        else:
            out.append(TraceStep(node=s.node, hook=s.hook, table=s.table, chain=s.chain, event="return", packet_before=packet))
    return out


def build_trace(*, client: str, client_ip: str, client_kind: str, dst: str, dport: int, result: _client.ConnResult,
                steps: Sequence[KernelStep], nodes: Sequence[str], backend: str = "netns") -> Trace:
    """A real connection and the rules its SYN matched, node by node, as a :class:`Trace`."""
    dnat_to = next((m.group(1) for s in steps if (m := re.search(r"-j DNAT --to-destination (\S+)", s.rule))), None)
    dropped = next((s for s in steps if s.event in ("rule", "policy") and s.verdict == "DROP"), None)
    if result.ok:
        reason = ""
    elif dropped is not None:  # the kernel's own DROP (a REJECT rule's verdict is reported as DROP)
        verdict = "REJECT" if re.search(r"-j REJECT\b", dropped.rule) else "DROP"
        reason = netfilter_verdict(verdict, dropped.hook, dropped.node, rule=dropped.rule if dropped.event == "rule" else "",
                                   policy_of=dropped.chain if dropped.event == "policy" else "")
    elif not steps:
        reason = f"{result.error}: the SYN never reached a node's netfilter hooks (no route to {dst} from {client})"
    elif not dnat_to:
        reason = f"{result.error}: no rule DNATed {dst}:{dport}; nothing listens there"
    else:
        reason = f"{result.error}: {result.detail or 'no answer'}"
    return Trace(
        backend=backend, source=SOURCE, client=client, client_ip=client_ip, client_kind=client_kind,
        dst=dst, dport=dport, proto="tcp", outcome="ok" if result.ok else (result.error or "error"), reason=reason,
        chains=list(dict.fromkeys(s.target for s in steps if s.target)), dnat_to=dnat_to,
        masquerade=any("-j MASQUERADE" in s.rule for s in steps), ingress_node=nodes[0] if nodes else "",
        endpoint_pod=result.pod or "", endpoint_port=int(dnat_to.rpartition(":")[2]) if dnat_to and result.pod else 0,
        source_ip_seen=result.seen_ip or "", path=list(nodes), rules_evaluated=None, steps=trace_steps(steps),
    )


def _iptables(backend: str | None, ns: str, *args: str, family: int = 4) -> None:
    tools = kernel.iptables_tools(backend, family)
    r = kernel.run_in_namespace(ns, [tools.iptables, "-w", "5", "-t", "raw", *args])
    if r.returncode != 0:
        raise EnvironmentProblem(f"iptables in {ns} failed: {kernel.one_line(r.stderr)}")


PROBE_PORT = 9  # discard: nothing listens in a node namespace, so a probe SYN gets an RST
_PROBE = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True); "
          f"s.settimeout(0.2); s.connect_ex(('127.0.0.1', {PROBE_PORT}))")


def probe_packet(packet: dict[str, str], sports: set[str]) -> bool:
    """Whether a traced packet is one of a monitor's own readiness probes: 127.0.0.1 ->
    127.0.0.1:PROBE_PORT from a source port a probe printed (a connection the lab traces to
    127.0.0.1, e.g. a node's localhost NodePort, is not)."""
    return (packet.get("SRC") == packet.get("DST") == "127.0.0.1" and packet.get("DPORT") == str(PROBE_PORT)
            and packet.get("SPORT") in sports)


class TraceMonitor:
    """One node's trace monitor (``xtables-monitor --trace``, ``nft monitor trace``): its process
    ``proc``, whose output a thread reads line by line, and the source ports of its readiness
    probes. A subclass tells its probes (:meth:`saw_probe`) and the client's SYN
    (:meth:`saw_sport`) in the output, and ends the process (:meth:`_end`)."""

    def __init__(self, node: str, ns: str, proc: subprocess.Popen[str]) -> None:
        self.node, self.ns = node, ns
        self.lines: list[str] = []
        self.probe_sports: set[str] = set()  # the source ports of this monitor's probes
        self.proc = proc
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def probe(self) -> None:
        """A SYN from the node to its own 127.0.0.1:PROBE_PORT, from a source port it records:
        traced once the monitor listens."""
        r = kernel.run_in_namespace(self.ns, [sys.executable, "-c", _PROBE], timeout=10)
        if r.stdout.strip().isdigit():
            self.probe_sports.add(r.stdout.strip())

    def saw_probe(self) -> bool:
        """Whether the monitor reported one of its own probes' SYNs."""
        raise NotImplementedError

    def saw_sport(self, sport: str) -> bool:
        """Whether the monitor reported a packet from source port ``sport``."""
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def stop(self) -> str:
        """End the monitor; all it printed."""
        self._end()
        self.thread.join(timeout=5)
        return "".join(self.lines)


class _Monitor(TraceMonitor):
    """``xtables-monitor --trace`` in one node namespace."""

    def __init__(self, node: str, ns: str, exe: str) -> None:
        # stderr read too: xtables-monitor says there why it stopped (MONITOR_FAILED)
        super().__init__(node, ns, subprocess.Popen(["ip", "netns", "exec", ns, exe, "--trace"], stdout=subprocess.PIPE,
                                                    stderr=subprocess.STDOUT, text=True, bufsize=1))

    def saw(self, needle: str) -> bool:
        return any(needle in line for line in list(self.lines))

    def saw_sport(self, sport: str) -> bool:
        return self.saw(f"SPORT={sport} ")

    def saw_probe(self) -> bool:
        sports = set(self.probe_sports)
        return any(probe_packet(dict(f.split("=", 1) for f in m.group(2).split() if "=" in f), sports)
                   for line in list(self.lines) if (m := _PACKET.match(line)))

    def _end(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait(condition, deadline: float, step: float = 0.02) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@dataclass
class TracedConnection:
    """One client connection opened while every node's monitor listened."""

    run: _client.ClientRun
    sport: str  # the client's own source port ("" when the connection got none)
    outputs: dict[str, str]  # node name -> the monitor's whole output
    probe_sports: dict[str, set[str]]  # node name -> the source ports of its readiness probes


def traced_connection(nodes: Sequence[tuple[str, str]], start: Callable[[str, str], TraceMonitor], tool: str,
                      src_ns: str, dst: str, port: int, *, timeout: float) -> TracedConnection:
    """Start one monitor per (node name, namespace) with ``start``, prove each listens (probe SYNs
    until it reports one of them, 10 s at most, else :class:`EnvironmentProblem` naming ``tool`` and
    the namespace), open one real connection from ``src_ns`` to ``dst:port``, wait until a monitor
    reports the client's source port, and stop the monitors (also when anything failed). What
    makes the kernel trace (iptables TRACE rules, nft's trace table) is the caller's to add and
    remove."""
    monitors: list[TraceMonitor] = []
    try:
        monitors = [start(name, ns) for name, ns in nodes]
        deadline = time.monotonic() + 10
        waiting = list(monitors)
        while waiting and time.monotonic() < deadline:
            for m in waiting:
                m.probe()
            _wait(lambda: all(m.saw_probe() for m in waiting), time.monotonic() + 0.3)
            waiting = [m for m in waiting if not m.saw_probe()]
        if waiting:
            raise EnvironmentProblem(f"{tool} did not start tracing in {waiting[0].ns}")
        run = _client.run_client(src_ns, dst, port, 1, timeout=timeout)
        sport = (run.results[0].local or "").rpartition(":")[2]
        if sport:
            _wait(lambda: any(m.saw_sport(sport) for m in monitors), time.monotonic() + 3)
        time.sleep(0.1)  # the other nodes' part of the path arrives with it
    finally:
        outputs = {m.node: m.stop() for m in monitors}
    return TracedConnection(run=run, sport=sport, outputs=outputs,
                            probe_sports={m.node: m.probe_sports for m in monitors})


def order_path(per_node: list[tuple[str, list[Any]]], nodes: Sequence[tuple[str, str]], src_ns: str, dst: str,
               sport: str, *, keys: tuple[str, str, str] = ("DST", "SPORT", "IN")) -> None:
    """Sort ``per_node`` (node name, its traced steps, each with the ``packet`` its monitor
    printed) into path order: the node the client's SYN entered first, then the rest; the
    client's own node first when it is one of ``nodes``. That node saw the SYN before any DNAT
    (the destination the client asked for), with the client's own port, and from a pod's veth
    when the client is a pod; a node after it sees the DNATed destination (a pod connecting to a
    Service keeps its port, so the port alone does not tell them apart). ``keys`` name the
    destination, the source port and the in-interface among the packet's fields
    (xtables-monitor: DST, SPORT, IN; nft monitor trace: dst, sport, in)."""
    dst_key, sport_key, in_key = keys

    def entered_first(item: tuple[str, list[Any]]) -> tuple[int, int, int]:
        packet = item[1][0].packet
        return (0 if packet.get(dst_key) == dst else 1, 0 if sport and packet.get(sport_key) == sport else 1,
                0 if packet.get(in_key, "").startswith("veth") else 1)

    per_node.sort(key=entered_first)
    if src_ns in {ns for _, ns in nodes}:
        ns_of = dict(nodes)
        per_node.sort(key=lambda item: 0 if ns_of[item[0]] == src_ns else 1)


def kernel_trace(nodes: Sequence[tuple[str, str]], src_ns: str, dst: str, port: int, *, client: str, client_ip: str,
                 client_kind: str = "", iptables_backend: str | None = None, timeout: float = 1.0,
                 ignore_sources: Sequence[str] = ()) -> Trace:
    """Open one real TCP connection from the namespace ``src_ns`` (the client ``client``) to
    ``dst:port`` and return the kernel's trace; ``nodes`` are the (node name, namespace) pairs
    to trace in. SYNs from ``ignore_sources`` (the load balancer's health probes) are left out.

    Every monitor is proven to listen first (a probe SYN it must report), and the trace is read
    until the client's own SYN shows up, so a busy machine delays the trace but does not lose it.
    """
    if (iptables_backend or "nft") == "legacy":
        raise EnvironmentProblem("kernel traces need the nf_tables backend (xtables-monitor); this lab uses iptables-legacy")
    exe = kernel.require_tool("xtables-monitor")
    if ":" in dst:  # the kernel prints IPv6 addresses compressed
        dst = str(ipaddress.IPv6Address(dst))
    # IPv4's TRACE rules always (the monitors' readiness probes are IPv4), ip6tables' too for an IPv6 connection
    families = (4, 6) if ":" in dst else (4,)
    added: list[tuple[str, str, int]] = []
    try:
        for _, ns in nodes:
            for family in families:
                for chain in ("PREROUTING", "OUTPUT"):
                    _iptables(iptables_backend, ns, "-I", chain, "1", *TRACE_RULE, family=family)
                    added.append((ns, chain, family))
        traced = traced_connection(nodes, lambda name, ns: _Monitor(name, ns, exe), "xtables-monitor",
                                   src_ns, dst, port, timeout=timeout)
    finally:
        for ns, chain, family in added:
            _iptables(iptables_backend, ns, "-D", chain, *TRACE_RULE, family=family)
    result, sport, outputs, probes = traced.run.results[0], traced.sport, traced.outputs, traced.probe_sports
    failed = next((name for name, text in outputs.items() if MONITOR_FAILED in text), None)
    if failed is not None:
        raise EnvironmentProblem(f"xtables-monitor in {failed} stopped: '{MONITOR_FAILED}' printing an ip{'6' if ':' in dst else ''}tables "
                                 f"rule ({kernel.one_line(kernel.run_in_namespace(nodes[0][1], [exe, '--version']).stdout)}); its trace "
                                 "of this connection is incomplete. iptables 1.8.9's xtables-monitor cannot print ip6tables rules "
                                 "that match a protocol (-p tcp); kslab trace on the simulator explains the connection")
    per_node: list[tuple[str, list[KernelStep]]] = []
    for name, _ in nodes:
        packets = {pid: steps for pid, steps in parse_monitor(outputs.get(name, ""), name).items()
                   if not probe_packet(steps[0].packet, probes.get(name, set()))  # not the readiness probes
                   and steps[0].packet.get("SRC") not in ignore_sources}  # nor the load balancer's
        if not packets:
            continue
        chosen = None
        for steps in packets.values():  # prefer the SYN with the client's own source port
            if sport and steps[0].packet.get("SPORT") == sport:
                chosen = steps
                break
        per_node.append((name, chosen or next(iter(packets.values()))))
    order_path(per_node, nodes, src_ns, dst, sport)
    steps = [s for _, ss in per_node for s in ss]
    return build_trace(client=client, client_ip=client_ip, client_kind=client_kind, dst=dst, dport=port, result=result,
                       steps=steps, nodes=[n for n, _ in per_node])
