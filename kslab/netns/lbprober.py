"""The lab's cloud load balancer: one namespace on the node network that forwards each
LoadBalancer ingress IP (VIP) to a healthy node, and the prober that decides which nodes are healthy.

What it models: a passthrough network load balancer in front of a ``type: LoadBalancer``
Service (a cloud's NLB, GCE's external passthrough LB, MetalLB in BGP mode with ECMP), as
``create-external-load-balancer.md`` describes it; not MetalLB's L2 mode (one node takes all of a
VIP's traffic) nor a proxy LB such as cloud-provider-kind's Envoy (which rewrites the source; see
:mod:`kslab.loadbalancer`). It spreads *connections* over *nodes* (not
pods), it never rewrites the packet (the VIP stays the destination and the client's address the
source: kube-proxy on the node matches the VIP in KUBE-SERVICES and DNATs it), and it sends only
to nodes whose health probe answered 200 (:func:`kslab.loadbalancer.probe_target`: the
healthCheckNodePort under ``externalTrafficPolicy: Local``, kube-proxy's 10256 under Cluster;
:func:`kslab.loadbalancer.eligible`).

The kernel plumbing (all inside the lab's namespaces; see :mod:`kslab.netns.lab`)::

    mypc / 172.18.0.101   route VIP/32 via LB_IP                      (the LB owns the VIP's next hop)
    LB namespace          eth0 LB_IP/16 on the bridge, ip_forward=1, rp_filter=0, send_redirects=0
      mangle PREROUTING   -d VIP -p tcp --dports PORTS -> KSLAB-LB-<hash>:
                            HMARK over (src, sport, dst, dport) mod N healthy nodes -> 1..N,
                            then mark i -> the i-th healthy node's mark (0x100 + node index),
                            CONNMARK --save-mark (what ``conntrack -L`` shows: the node chosen), ACCEPT
                          -d VIP (any other port) -> DROP; no healthy node -> DROP
      ip rule             fwmark 0x100+i lookup table 100+i; table 100+i: default via NODE_i
    node                  the packet arrives unchanged (dst VIP, src the client): kube-proxy's
                          "loadbalancer IP" rule in KUBE-SERVICES sends it to KUBE-EXT-...;
                          the reply leaves the node straight to the client (direct server return)

Why a hash and not a ``-m statistic`` ladder with CONNMARK: the replies do not come back through
the LB (the node routes them straight to the client, as with a cloud's passthrough LB), so the
LB's conntrack sees a SYN and then, without the SYN-ACK, the client's ACK, which it classifies as
INVALID ("ACK is invalid: we haven't seen a SYN/ACK yet", nf_conntrack_proto_tcp.c) and leaves
without a conntrack entry: a connmark could not be restored, and a random draw per packet would
split a connection over nodes. A hash of the 5-tuple (xt_HMARK, what ECMP and Maglev-style LBs
do) gives every packet of a connection the same node without state; the SYN still makes a
conntrack entry, whose mark records the node chosen (:func:`parse_lb_conntrack`).

The prober (``python3 -m kslab.netns.lbprober --config FILE --state FILE``) runs in the LB
namespace: every ``interval`` (0.3 s) it GETs every node's probe port with real HTTP (0 when no
answer within ``timeout``), computes the healthy nodes of every LB, and when they change
``iptables-restore``\\s the LB's mangle table (:func:`lb_rules`). After each round it writes its
state (``round_started``/``round_finished`` on CLOCK_MONOTONIC, the probes and the healthy
nodes per LB) so the lab can read it (``NetnsLab.lb_status``) and wait for it (``wait_lb``).
It re-reads ``--config`` when the file changes (the lab rewrites it when a LoadBalancer Service
appears, goes or changes policy) or on SIGHUP. An answer counts at once (a 503 takes the node
out within one round, about 0.3 s, a 200 puts it back), so the LB follows a readiness change
within a round; silence (refused, or no answer within ``timeout``, 1.5 s) counts only after
``misses`` (3) probes in a row, as cloud LBs' unhealthy thresholds do, so slow answers on a
busy machine do not take a node out. That matters beyond the verdict: every change of the
healthy nodes re-hashes the connections in flight (mod N changes), and one moved to another
node is reset there (measured: 10 reloads during 60,000 back-to-back connections reset 2 and
timed 1 out). So the lab's connections through a VIP wait for the round after the last change
(``NetnsLab.wait_lb``), and the thresholds keep a loaded machine from flapping a node.
``probes`` reports the status each node counts as.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

NODE_MARK_BASE = 0x100  # node i (in node order) -> fwmark 0x100 + i
TABLE_BASE = 100  # node i -> routing table 100 + i
RULE_PREF_BASE = 100  # ip rule preferences 100 + i (before the main table's 32766)
CHAIN_PREFIX = "KSLAB-LB-"


@dataclass(frozen=True)
class LBNode:
    name: str
    ip: str
    index: int

    @property
    def mark(self) -> int:
        return NODE_MARK_BASE + self.index

    @property
    def table(self) -> int:
        return TABLE_BASE + self.index


@dataclass(frozen=True)
class LBSpec:
    """One LoadBalancer Service's load balancer: where it listens and what it probes."""

    service: str  # namespace/name
    vip: str
    ports: tuple[int, ...]  # TCP service ports the LB forwards (ports[0] is LBState.port)
    policy: str  # externalTrafficPolicy
    probe_port: int
    probe_path: str

    @property
    def chain(self) -> str:
        return CHAIN_PREFIX + hashlib.sha256(f"{self.service}/{self.vip}".encode()).hexdigest()[:12].upper()


@dataclass
class LBConfig:
    """What the lab tells the prober (the ``--config`` file)."""

    generation: int
    nodes: list[LBNode]
    lbs: list[LBSpec]
    iptables_restore: str = "iptables-restore"
    interval: float = 0.3
    timeout: float = 1.5
    misses: int = 3  # consecutive probes without an answer before a node counts as not answering
    rnd: int = 0x6B736C62  # the hash's seed ("kslb")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LBConfig:
        doc = dict(doc)
        doc["nodes"] = [LBNode(**n) for n in doc.get("nodes") or []]
        doc["lbs"] = [LBSpec(**{**s, "ports": tuple(s["ports"])}) for s in doc.get("lbs") or []]
        return cls(**doc)


def eligible(probes: Mapping[str, int], nodes: Sequence[str]) -> list[str]:
    """:func:`kslab.loadbalancer.eligible` (imported when kslab is importable, as it is wherever
    the lab starts the prober; this fallback keeps the module importable alone)."""
    try:
        from kslab.loadbalancer import eligible as rule
    except ImportError:  # pragma: no cover - the lab always runs it with kslab on the path
        return [n for n in nodes if probes.get(n) == 200]
    return rule(probes, nodes)


def lb_rules(config: LBConfig, healthy: Mapping[str, Sequence[str]]) -> str:
    """The LB namespace's mangle table (``iptables-restore`` input, the whole table) for the
    healthy nodes of every LB (service -> node names). Pure."""
    by_name = {n.name: n for n in config.nodes}
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
             ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    lbs = sorted(config.lbs, key=lambda s: (s.vip, s.service))
    lines += [f":{s.chain} - [0:0]" for s in lbs]
    for s in lbs:
        ports = ",".join(str(p) for p in s.ports)
        lines.append(f'-A PREROUTING -d {s.vip}/32 -p tcp -m multiport --dports {ports} '
                     f'-m comment --comment "{s.service} load balancer" -j {s.chain}')
    for vip in sorted({s.vip for s in lbs}):
        lines.append(f'-A PREROUTING -d {vip}/32 -m comment --comment "no listener of the load balancer" -j DROP')
    for s in lbs:
        nodes = [by_name[n] for n in healthy.get(s.service, ()) if n in by_name]
        if not nodes:
            lines.append(f'-A {s.chain} -m comment --comment "{s.service} has no healthy node" -j DROP')
            continue
        names = " ".join(n.name for n in nodes)
        lines.append(f'-A {s.chain} -m comment --comment "healthy: {names}" -j HMARK '
                     f"--hmark-tuple src,sport,dst,dport --hmark-mod {len(nodes)} --hmark-offset 1 --hmark-rnd {config.rnd:#x}")
        for i, n in enumerate(nodes, start=1):
            lines.append(f'-A {s.chain} -m mark --mark {i:#x} -m comment --comment "to {n.name}" -j MARK --set-mark {n.mark:#x}')
        lines.append(f"-A {s.chain} -j CONNMARK --save-mark")
        lines.append(f"-A {s.chain} -j ACCEPT")  # done: not the VIP's catch-all DROP below
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def route_lines(nodes: Sequence[LBNode]) -> list[str]:
    """``ip -batch`` lines of the LB namespace's per-node tables and fwmark rules."""
    out = []
    for n in nodes:
        out.append(f"route add default via {n.ip} dev eth0 table {n.table}")
        out.append(f"rule add pref {RULE_PREF_BASE + n.index} fwmark {n.mark:#x} lookup {n.table}")
    return out


def parse_lb_conntrack(text: str, nodes: Sequence[LBNode], vip: str, port: int) -> dict[tuple[str, int], str]:
    """``conntrack -L -p tcp`` of the LB namespace -> (client ip, client port) -> the node its
    connection to ``vip:port`` was sent to (the entry's mark; the original direction's tuple)."""
    by_mark = {n.mark: n.name for n in nodes}
    out: dict[tuple[str, int], str] = {}
    for line in text.splitlines():
        orig: dict[str, str] = {}
        mark = None
        for w in line.split():
            key, eq, value = w.partition("=")
            if not eq:
                continue
            if key == "mark":
                mark = value
            elif key in ("src", "dst", "sport", "dport") and key not in orig:
                orig[key] = value
        if mark is None or len(orig) < 4 or orig["dst"] != vip or orig["dport"] != str(port) or not orig["sport"].isdigit():
            continue
        node = by_mark.get(int(mark, 0))
        if node:
            out[(orig["src"], int(orig["sport"]))] = node
    return out


# --------------------------------------------------------------------------------------------
# The prober (inside the LB namespace)


def probe(ip: str, port: int, path: str, timeout: float) -> int:
    """One real HTTP GET; the status code, 0 if no answer (refused, timeout, reset, garbage)."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kslab-lb-prober\r\n"
                      f"Connection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        parts = data.split(b"\r\n", 1)[0].split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except OSError:
        return 0


@dataclass
class ProberState:
    config_generation: int = -1
    round: int = 0
    round_started: float = 0.0  # CLOCK_MONOTONIC, seconds
    round_finished: float = 0.0
    reloads: int = 0
    error: str = ""
    lbs: dict[str, dict[str, Any]] = field(default_factory=dict)  # service -> {"probes": {node: code}, "healthy": [...]}


def _write_json(path: str, doc: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def run(config_path: str, state_path: str) -> None:
    """Probe, reload, record, until SIGTERM/SIGINT."""
    stop = threading.Event()
    wake = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
    signal.signal(signal.SIGHUP, lambda *_: wake.set())
    config: LBConfig | None = None
    mtime = None
    applied: str | None = None
    state = ProberState()
    answered: dict[tuple[str, str, int, str], int] = {}  # probe target -> the status it counts as
    silent: dict[tuple[str, str, int, str], int] = {}  # probe target -> consecutive probes without an answer
    pool = ThreadPoolExecutor(max_workers=8)
    while not stop.is_set():
        try:
            st = os.stat(config_path)
            if config is None or (st.st_mtime_ns, st.st_size) != mtime:
                with open(config_path) as f:
                    config = LBConfig.from_json(json.load(f))
                mtime = (st.st_mtime_ns, st.st_size)
        except (OSError, ValueError, TypeError, KeyError) as err:
            state.error = f"config: {err}"
        if config is None:
            wake.wait(0.1)
            wake.clear()
            continue
        started = time.monotonic()
        targets = sorted({(n.name, n.ip, s.probe_port, s.probe_path) for s in config.lbs for n in config.nodes})
        codes = dict(zip(targets, pool.map(lambda t: probe(t[1], t[2], t[3], config.timeout), targets)))
        order = [n.name for n in config.nodes]
        lbs: dict[str, dict[str, Any]] = {}
        for target, code in codes.items():  # an answer counts at once; silence only after `misses` probes
            if code:
                answered[target], silent[target] = code, 0
            else:
                silent[target] = silent.get(target, 0) + 1
                if silent[target] >= config.misses or target not in answered:
                    answered[target] = 0
        for s in config.lbs:
            probes = {n.name: answered[(n.name, n.ip, s.probe_port, s.probe_path)] for n in config.nodes}
            lbs[s.service] = {"probes": probes, "healthy": eligible(probes, order)}
        text = lb_rules(config, {k: v["healthy"] for k, v in lbs.items()})
        if text != applied:
            r = subprocess.run([config.iptables_restore, "-w", "5"], input=text, capture_output=True, text=True, check=False)
            if r.returncode == 0:
                applied = text
                state.reloads += 1
                state.error = ""
            else:
                state.error = "iptables-restore: " + " ".join((r.stderr or r.stdout).split())[:300]
        state.config_generation = config.generation
        state.round += 1
        state.round_started, state.round_finished = started, time.monotonic()
        state.lbs = lbs
        _write_json(state_path, asdict(state))
        wake.wait(max(0.0, config.interval - (time.monotonic() - started)))
        wake.clear()
    pool.shutdown(wait=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m kslab.netns.lbprober", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--state", required=True)
    a = ap.parse_args(argv)
    print("probing", flush=True)
    run(a.config, a.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
