"""The study's commands on the simulator: each tool's output, in the real tool's format, made
from the simulated lab's state (:mod:`kslab.shell` parses them; the netns backend runs the real
tools instead, and ``tests/test_shell.py`` checks that both print the same).

- ``iptables -S``/``-L``, ``iptables-save``: the node's tables and rule counters
  (:mod:`kslab.xtables.listing`); a pod or ``mypc`` has empty tables. Counters count what the
  simulator walks: a connection's first packet in every table it crosses (exact for the nat
  table, which a kernel also consults for the first packet only) and its reply's first packet;
  the filter table of a kernel also counts every later packet, the simulator does not.
- ``conntrack -L``/``-C``: the node's entries (:class:`kslab.sim.conntrack.ConntrackLog`), in
  conntrack-tools' format, oldest first (a kernel lists them in its hash table's order);
  the closing line goes to stderr, as conntrack prints it. Pods and ``mypc`` load no rules, so
  their namespaces track nothing (as in the netns lab).
- ``ip route``: the routes the netns lab configures (:mod:`kslab.netns.layout`), in the kernel's
  dump order, as iproute2 prints them.
- ``curl``: one connection through the simulator, answered by the endpoint's server exactly as
  the netns lab's server answers (:func:`kslab.netns.servers.response_body`): whoami's text or
  the echo JSON with the address and port the endpoint saw, with ``-i``/``-I`` the status line
  and the headers that server sends (Python's ``http.server``: ``Server``, ``Date``,
  ``Content-Type``, ``Content-Length``); a node's healthCheckNodePort is answered by kube-proxy's
  health check server (:func:`kslab.healthcheck.service_health`, the count its last sync gave,
  headers in Go's order: the handler's three, then ``Date`` and ``Content-Length``); curl's
  error and exit status for a connection that fails (7: refused, by an empty port or a REJECT rule; 28: no answer
  within ``--max-time``); ``-w '%{http_code}'`` prints ``000`` then.
- ``nfacct list``/``nfacct get NAME``: the node's nfacct counters (kube-proxy creates
  ``ct_state_invalid_dropped_pkts`` and ``localhost_nps_accepted_pkts`` at start when the rules
  use them) in nfacct's format. A counter counts what the simulator walks through its rule:
  ``localhost_nps_accepted_pkts`` sits in a nat rule, which a kernel also consults for a
  connection's first packet only, so one packet of 60 bytes (the SYN) per connection, as on
  the kernel.
- ``hostname``: the pod's or node's name.
- ``cat /proc/net/xt_recent/LIST``: a node's xt_recent list (ClientIP affinity) as the kernel's
  ``recent_seq_show`` prints it: ``src=ADDR ttl: T last_seen: J oldest_pkt: I J0, J1, ...``
  with the stamps in jiffies (HZ 250, the simulated clock's 0 at the kernel's INITIAL_JIFFIES)
  in the order of the kernel's ring. The kernel walks its hash buckets (keyed by a random
  seed), so its order is arbitrary; the simulator lists the least recently updated address
  first. A list exists while a loaded rule names it (``ls /proc/net/xt_recent``).
  ``cat /sys/module/xt_recent/parameters/PARAM``: the module's defaults (``ip_list_tot`` 100).
- ``iperf3 -c HOST ...``: the simulator moves no bytes, so the client's report of the same test
  (same flags, same path kind: same-node, cross-node, ClusterIP, NodePort) recorded on netns
  (``data/recorded/iperf3.json``, :func:`kslab.bandwidth.recorded_run`), in iperf3's text
  (:func:`kslab.iperf3.format_text`) under a first line saying it is recorded, when and where;
  with ``-J`` the recorded JSON (the line on stderr). A host that does not resolve: iperf3's
  own error.
"""

from __future__ import annotations

import email.utils
import ipaddress
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..healthcheck import HealthResponse
from ..netns.layout import Layout, plan
from ..netns.servers import response_body
from ..shell import (
    CONNTRACK_VERSION,
    Cat,
    ListRecent,
    CURL_VERSION,
    Command,
    ConntrackCount,
    ConntrackList,
    Curl,
    Hostname,
    IpRoute,
    Iperf3,
    IptablesList,
    IptablesRules,
    IptablesSave,
    Nfacct,
    NftList,
    ROUTE_LOCALNET,
    ShellOutput,
    hostname_of,
)
from ..xtables import TableDump, listing
from .conntrack import FlowEntry
from .netfilter import RECENT_LIST_TOTAL, RECENT_STAMPS, jiffies, recent_list_names
from .network import Network
from .packet import RecentEntry

if TYPE_CHECKING:
    from ..model import ClusterState

__all__ = ["run", "conntrack_line", "routes", "recent_line", "RECENT_PARAMETER_VALUES"]

RECENT_PARAMETER_VALUES = {  # xt_recent's module parameters as a kernel loads it without options
    "ip_list_tot": RECENT_LIST_TOTAL,
    "ip_list_hash_size": 1 << RECENT_LIST_TOTAL.bit_length(),  # 1 << fls(ip_list_tot)
    "ip_list_perms": 0o644,
    "ip_list_uid": 0,
    "ip_list_gid": 0,
    "ip_pkt_list_tot": 0,
}

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}


def run(command: Command, where: str, cluster: ClusterState, tables: Mapping[str, Mapping[str, TableDump]],
        network: Network, *, nft: Mapping[str, Any] | None = None,
        tables6: Mapping[str, Mapping[str, TableDump]] | None = None) -> ShellOutput:
    """Run ``command`` (parsed and bound by :mod:`kslab.shell`) in ``where`` of the simulated lab.
    ``tables``: each node's iptables tables (a pod's or mypc's namespace has none); ``nft``: the
    :class:`kslab.nft.NftState` of each node whose kube-proxy runs nftables mode; ``tables6``:
    each node's ip6tables tables (``ip6tables``, ``ip6tables-save``; empty on a single-stack lab)."""
    family = command.family
    own = (tables6 or {}).get(where, {}) if family == 6 else tables.get(where, {})
    if isinstance(command, NftList):
        return _nft_list(command, (nft or {}).get(where))
    try:
        if isinstance(command, IptablesRules):
            return ShellOutput(listing.list_rules(own, command.table, command.chain, verbose=command.verbose, family=family))
        if isinstance(command, IptablesList):
            return ShellOutput(listing.list_table(own, command.table, command.chain, verbose=command.verbose,
                                                  exact=command.exact, line_numbers=command.line_numbers, family=family))
    except listing.NoSuchChain as e:
        return ShellOutput("", f"{e}\n", 1)
    if isinstance(command, IptablesSave):
        names = [command.table] if command.table else None
        return ShellOutput(listing.save(own, names, counters=command.counters, when=time.time(), family=family))
    if isinstance(command, ConntrackList):
        entries = [e for e in _entries(where, network) if _selected(e, command)]
        return ShellOutput("".join(conntrack_line(e) + "\n" for e in entries),
                           f"conntrack {CONNTRACK_VERSION} (conntrack-tools): {len(entries)} flow entries have been shown.\n")
    if isinstance(command, ConntrackCount):
        return ShellOutput(f"{len(_entries(where, network))}\n")
    if isinstance(command, IpRoute):
        return ShellOutput("".join(line + " \n" for line in routes(_layout(cluster), where)))
    if isinstance(command, Curl):
        return _curl(command, where, cluster, network)
    if isinstance(command, Iperf3):
        return iperf3_recorded(command, where, cluster)
    if isinstance(command, Hostname):
        return ShellOutput(hostname_of(cluster, where) + "\n")
    if isinstance(command, Nfacct):
        return _nfacct(command, where, own, network)
    if isinstance(command, Cat) and command.path == ROUTE_LOCALNET:  # set on every node (kube-proxy, localhost NodePorts)
        node = network.nodes.get(where)
        return ShellOutput(f"{int(node is not None and node.route_localnet)}\n")
    if isinstance(command, (Cat, ListRecent)):
        return _recent(command, where, own, network)
    raise InputError(command.tool, "the sim backend does not emulate it", "see kslab.shell.SUPPORTED")


# ---- nft -------------------------------------------------------------------------------------------


def _nft_list(command: NftList, state: Any) -> ShellOutput:
    """``nft list ruleset|tables|table|chain|set|map``: what ``state`` (the namespace's nftables,
    None for none) holds, printed as nft 1.0.6 prints it (:class:`kslab.nft.NftState`)."""
    tables = _nft_tables(state)
    if command.what == "tables":
        return ShellOutput("".join(f"table {family} {name}\n" for family, name in tables))
    if command.what == "ruleset":
        return ShellOutput(state.list_ruleset(handles=command.handles) if tables else "")
    if (command.family, command.table) not in tables:
        return command.missing()
    if command.what == "table":
        return ShellOutput(state.list_table(command.family, command.table, handles=command.handles))
    try:
        if command.what == "chain":
            return ShellOutput(state.list_chain(command.family, command.table, command.name, handles=command.handles))
        return ShellOutput(state.list_set(command.family, command.table, command.name, kind=command.what,
                                          handles=command.handles))
    except ValueError:
        return command.missing(table_missing=False)


def _nft_tables(state: Any) -> list[tuple[str, str]]:
    """(family, name) of every table ``state`` holds, in creation order."""
    if state is None:
        return []
    return [(t.family, t.name) for t in state.tables.values()]


# ---- conntrack -------------------------------------------------------------------------------------


def _entries(where: str, network: Network) -> list[FlowEntry]:
    if where not in network.nodes:
        return []  # a pod's or mypc's namespace loads no rules, so conntrack is not tracking there
    return [e for e in network.closed.entries(network.now) if e.node == where]


def _selected(e: FlowEntry, c: ConntrackList) -> bool:
    checks = (
        (c.proto, e.proto), (c.src, e.orig[0]), (c.sport, e.orig[1]), (c.dst, e.orig[2]), (c.dport, e.orig[3]),
        (c.reply_src, e.reply[0]), (c.reply_sport, e.reply[1]), (c.reply_dst, e.reply[2]), (c.reply_dport, e.reply[3]),
        (c.state, e.state),
    )
    if any(want is not None and want != have for want, have in checks):
        return False
    return (not c.src_nat or e.src_nat) and (not c.dst_nat or e.dst_nat)


def conntrack_line(e: FlowEntry) -> str:
    """One entry as ``conntrack -L`` (conntrack-tools 1.4.7) prints it."""
    state = f"{e.state} " if e.state else ""
    orig = f"src={e.orig[0]} dst={e.orig[2]} sport={e.orig[1]} dport={e.orig[3]} "
    reply = f"src={e.reply[0]} dst={e.reply[2]} sport={e.reply[1]} dport={e.reply[3]} "
    return (f"{e.proto:<8} {_PROTO_NUMBERS.get(e.proto, 0)} {e.timeout} {state}{orig}{'[UNREPLIED] ' if e.unreplied else ''}"
            f"{reply}{'[ASSURED] ' if e.assured else ''}mark=0 use=1")


# ---- xt_recent -------------------------------------------------------------------------------------


def _recent(command: Cat | ListRecent, where: str, own: Mapping[str, TableDump], network: Network) -> ShellOutput:
    names = recent_list_names(own)
    if isinstance(command, ListRecent):
        return ShellOutput("".join(f"{n}\n" for n in sorted(names)))
    name = command.recent_list
    if name is None:
        return ShellOutput(f"{RECENT_PARAMETER_VALUES[command.path.rsplit('/', 1)[1]]}\n")
    if name not in names:
        return command.missing()
    node = network.nodes.get(where)
    table = node.state.recent.get(name, {}) if node is not None else {}
    return ShellOutput("".join(recent_line(addr, e) + "\n" for addr, e in table.items()))


def recent_line(addr: str, e: RecentEntry, stamps: int = RECENT_STAMPS) -> str:
    """One address of an xt_recent list as ``/proc/net/xt_recent/LIST`` shows it
    (``recent_seq_show``): ``oldest_pkt`` is the ring's next slot (the kernel's ``index``), the
    stamps follow in ring order, the newest at slot ``index - 1``."""
    n = len(e.stamps)
    stamps = max(stamps, n)  # a --hitcount above 32 widens the ring
    index = (e.updates - 1) % stamps + 1
    ring = [0] * n
    first = e.updates - n  # the number of the oldest stamp kept
    for k, t in enumerate(e.stamps, start=first):
        ring[k % stamps] = jiffies(t)
    return (f"src={addr} ttl: {e.ttl} last_seen: {jiffies(e.stamps[-1])} oldest_pkt: {index} "
            + ", ".join(str(j) for j in ring))


# ---- ip route --------------------------------------------------------------------------------------


def _layout(cluster: ClusterState) -> Layout:
    return plan(cluster, "")  # interface names and addresses do not depend on the namespaces' prefix


def routes(layout: Layout, where: str) -> list[str]:
    """``where``'s main routing table as ``ip route`` prints it (without iproute2's trailing space),
    the routes the netns lab configures (:class:`kslab.netns.lab.NetnsLab`), in the kernel's
    dump order (by destination address, the longer prefix first)."""
    fabric = ipaddress.ip_network(layout.fabric_cidr)
    table: list[tuple[ipaddress.IPv4Network, str]] = []
    node = next((n for n in layout.nodes if n.name == where), None)
    pod = next((p for p in layout.pods if where in (p.name, f"{p.namespace}/{p.name}")), None)
    if node is not None:
        table.append((ipaddress.ip_network("0.0.0.0/0"), f"default via {layout.gateway} dev eth0"))
        table += [(ipaddress.ip_network(o.pod_cidr), f"{o.pod_cidr} via {o.ip} dev eth0") for o in layout.nodes if o is not node]
        table += [(ipaddress.ip_network(p.ip), f"{p.ip} dev {p.host_if} scope host") for p in layout.pods if p.node == node.name]
        table.append((fabric, f"{fabric} dev eth0 proto kernel scope link src {node.ip}"))
    elif pod is not None:
        net = ipaddress.ip_network(f"{pod.ip}/{pod.prefix_len}", strict=False)
        table.append((ipaddress.ip_network("0.0.0.0/0"), f"default via {pod.gateway} dev eth0"))
        table.append((net, f"{net} via {pod.gateway} dev eth0 src {pod.ip}"))
        table.append((ipaddress.ip_network(pod.gateway), f"{pod.gateway} dev eth0 scope link src {pod.ip}"))
    elif where == "mypc":
        table.append((ipaddress.ip_network("0.0.0.0/0"), f"default via {layout.gateway} dev eth0"))
        table.append((fabric, f"{fabric} dev eth0 proto kernel scope link src {layout.mypc_ip}"))
    else:
        raise InputError(f"where {where!r}", "has no network namespace in the lab's layout", "use a node, a scheduled pod or mypc")
    table.sort(key=lambda r: (int(r[0].network_address), -r[0].prefixlen))
    return [line for _, line in table]


# ---- curl ------------------------------------------------------------------------------------------


def _curl(command: Curl, where: str, cluster: ClusterState, network: Network) -> ShellOutput:
    if command.address is None:
        return command.error(6, f"Could not resolve host: {command.host}")
    conn = network.connect(where, command.address, command.port, "tcp", trace=False)
    if conn.outcome in ("ok", "error"):
        remote = (command.address, command.port)
        if not conn.endpoint_pod:
            answer = network.node_answer(conn.endpoint_node, conn.endpoint_port, conn.endpoint_ip, command.path)
            if answer is None:
                raise InputError(f"curl {command.host_header}", f"is answered by a process of node {conn.endpoint_node}, "
                                 "which the sim does not emulate (kubelet, the API server)",
                                 "curl a Service, a pod, a NodePort, a healthCheckNodePort or kube-proxy's 10256")
            when = network.proxy_clock()[0] / 1e9  # kube-proxy's Date: the simulated node's clock, as its 10256 body
            return command.response(answer.status, answer.reason, go_headers(answer, when), answer.body, remote)
        pod = next(p for p in _layout(cluster).pods if p.name == conn.endpoint_pod)
        seen_port = int(conn.snat_to.rsplit(":", 1)[1]) if conn.snat_to else conn.sport
        headers = [("Host", command.host_header), ("User-Agent", f"curl/{CURL_VERSION}"), ("Accept", "*/*")]
        body, ctype = response_body(pod.server or "whoami", pod.name, [pod.ip], command.method, command.path, "HTTP/1.1",
                                    headers, conn.source_ip_seen, seen_port)
        status, reason = (500, "Internal Server Error") if conn.outcome == "error" else (200, "OK")
        # what the lab's server (kslab.netns.servers, Python's http.server) sends, in its order
        sent = [("Server", "kslab-netns "), ("Date", http_date()), ("Content-Type", ctype), ("Content-Length", str(len(body)))]
        return command.response(status, reason, sent, body.decode(), remote)
    if conn.outcome == "refused":  # nothing listens, or a REJECT rule
        return command.error(7, f"Failed to connect to {command.host} port {command.port} after 0 ms: Couldn't connect to server")
    return command.error(28, f"Connection timed out after {int(command.max_time * 1000) + 1} milliseconds")


def iperf3_recorded(command: Iperf3, where: str, cluster: ClusterState) -> ShellOutput:
    """``iperf3 -c HOST ...`` on sim: the recorded report of the same test on the same path kind."""
    from ..bandwidth import recorded_run
    from ..iperf3 import format_text, parse

    if command.address is None:
        return command.unresolved()
    path = command.path(cluster, where)
    text, label = recorded_run(path.kind, command.options)  # type: ignore[arg-type]
    line = f"# {label}: iperf3 -J of the same test on a {path.kind} path of the netns lab\n"
    if command.json:
        return ShellOutput(text + "\n", line)
    return ShellOutput(line + format_text(parse(text, where="the recorded iperf3 -J output")))


def http_date(when: float | None = None) -> str:
    """An HTTP ``Date`` header's value (``http.TimeFormat``, e.g. ``Wed, 02 Dec 2026 02:18:50 GMT``)."""
    return email.utils.formatdate(time.time() if when is None else when, usegmt=True)


def go_headers(answer: HealthResponse, when: float | None = None) -> list[tuple[str, str]]:
    """The headers of a health check answer as Go's server writes them: the handler's
    (``Header.WriteSubset``: sorted by name, which is the order the handler sets them), then
    ``extraHeader.Write``'s ``Date`` and ``Content-Length``."""
    return [*sorted(answer.headers), ("Date", http_date(when)), ("Content-Length", str(len(answer.body.encode())))]


# ---- nfacct ----------------------------------------------------------------------------------------


def nfacct_line(name: str, pkts: int, nbytes: int) -> str:
    """One counter as ``nfacct list`` prints it (``nfacct_snprintf``, plain, full)."""
    return f"{{ pkts = {pkts:020d}, bytes = {nbytes:020d} }} = {name};"


def _nfacct(command: Nfacct, where: str, own: Mapping[str, TableDump], network: Network) -> ShellOutput:
    node = network.nodes.get(where)
    names = _nfacct_names(own) if node is not None else []
    if command.name is not None:
        names = [n for n in names if n == command.name]
        if not names:
            return command.missing()
    state = node.state if node is not None else None
    return ShellOutput("".join(nfacct_line(n, state.nfacct.get(n, 0), state.nfacct_bytes.get(n, 0)) + "\n"
                               for n in names) if state else "")


def _nfacct_names(own: Mapping[str, TableDump]) -> list[str]:
    """The counters a node has: kube-proxy creates its two (in this order) when its rules use
    nfacct; a rule naming another counter needs it to exist too."""
    from ..proxy.iptables.constants import NFACCT_COUNTERS

    named = []
    for dump in own.values():
        for chain in dump.chains.values():
            for rule in chain.rules:
                for m in rule.matches:
                    if m.name == "nfacct":
                        opt = next(o for o in m.options if o.name == "nfacct-name")
                        if opt.args[0] not in named:
                            named.append(opt.args[0])
    if not named:
        return []
    return [*NFACCT_COUNTERS, *(n for n in named if n not in NFACCT_COUNTERS)]
