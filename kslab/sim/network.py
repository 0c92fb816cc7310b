"""The lab's network: nodes, pods and outside hosts; routing like kindnet; conntrack and NAT.

One :class:`Network` holds a network namespace per node, each running the node's ruleset in a
:class:`~kslab.sim.netfilter.Netfilter` with its own conntrack table and xt_recent lists. A
node holds one ruleset per IP family (iptables' and ip6tables', or nftables' ``ip`` and ``ip6``
tables: :meth:`NodeNS.netfilter_of`); a packet goes through its own family's and keeps its
family on the whole way (no NAT64). On a dual-stack lab nodes and pods have an address of each
family (a pod CIDR each, the veth gateway being its first address), ``mypc`` has
:data:`MYPC_IP6` on the docker network's IPv6 side (:data:`FABRIC6`, kind's), and a client
connects from its address of the destination's family (none: ``no-route``). A connection
(:meth:`Network.connect`) is walked the way the kernel walks it:

- a pod's packet leaves through its veth and enters its node at PREROUTING (kindnet's ptp
  plugin: every pod routes everything through the node, whose veth end is the pod CIDR's
  ``.1``); a node's own packet starts at OUTPUT; ``mypc`` and other outside hosts reach only the
  addresses on the "docker network" (the nodes), everything else goes to the docker host's
  gateway, which knows no pod or Service routes;
- NAT is decided on the first packet (nat table only for NEW connections), DNAT right away,
  SNAT/MASQUERADE at POSTROUTING with the out interface's address; conntrack records the
  bindings and reverses them for the reply;
- routing sends the packet to a local pod's veth, another node (its pod CIDR, like kindnet's
  routes), the node itself (INPUT), or the fabric; a node that receives a packet for another
  node's pod forwards it, with its own rules and conntrack;
- a pod drops a packet whose source is its own address as a martian (``accept_local=0``, the
  kernel's default): that is what a hairpin without masquerade delivers; a pod that connects to
  its own address never leaves its namespace (local route);
- the reply leaves the endpoint pod toward the source it saw and walks back hop by hop through
  the conntrack of each node it crosses;
- a node's own processes answer on their ports: kubelet, kube-proxy's healthz (10256), the API
  server, and kube-proxy's service health check servers on every healthCheckNodePort
  (:class:`HealthServers`: the count the node's last kube-proxy sync gave, on every address or
  on the ``nodePortAddresses`` ones), reached through the node's INPUT rules;
- a ``type: LoadBalancer`` Service's ingress IP is a cloud load balancer on the docker network
  (VIP mode: it hands the unchanged packet to a node). It probes every node for the Service
  (:func:`kslab.loadbalancer.probe_target`: the healthCheckNodePort under Local, 10256 under
  Cluster) from its own address, through the node's rules, and balances each new connection
  uniformly (the network's seeded RNG) over the nodes that answered 200
  (:func:`kslab.loadbalancer.eligible`). **Probe timing**: it probes once after every change of
  the lab (rules, pods, readiness, a hand edit) and before the next connection it balances, and
  keeps the answers until the next change: never stale, like a probe interval of 0 with
  thresholds of 1, so one connection after ``set_ready`` already follows (``lab.advance(2)`` is
  more than enough). Probes add to the rule counters once per round and leave nothing for
  ``conntrack -L``.

The result, :class:`Connection`, carries the outcome, the endpoint reached, the source address
the endpoint saw, the nodes crossed both ways, and the full trace (:class:`TraceStep` list).
"""

from __future__ import annotations

import ipaddress
import random
from functools import lru_cache
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..dataplane.reasons import hairpin_without_masquerade, netfilter_verdict
from ..errors import InputError
from ..apiobjects import CLUSTER_EPOCH
from ..healthcheck import HEALTHZ_PATH, HealthResponse, go_time, hc_targets, local_endpoints, proxy_health, service_health
from ..loadbalancer import PROXY_HEALTHZ_PORT, LBState, eligible, probe_target
from ..model import ClusterState, Pod, Service
from ..xtables import TableDump
from .conntrack import ConntrackLog
from .netfilter import Netfilter, recent_list_names, split_host_port
from .nftables import NftNetfilter
from .packet import PACKET_BYTES, STATISTIC_MASK, host_port, HookContext, HookResult, NamespaceState, Packet, TraceStep

FABRIC = ipaddress.ip_network("172.18.0.0/16")  # kind's "docker network"
FABRIC_GATEWAY = "172.18.0.1"  # the docker host
MYPC_IP = "172.18.0.100"
# its IPv6 side: the ULA docker derives for the network named "kind" (`docker network inspect kind`), as kslab.netns.layout
FABRIC6 = ipaddress.ip_network("fc00:f853:ccd:e793::/64")
FABRIC_GATEWAY6 = "fc00:f853:ccd:e793::1"
MYPC_IP6 = "fc00:f853:ccd:e793::100"
EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range


@dataclass
class ConntrackEntry:
    orig: tuple[str, str, int, str, int]  # proto, src, sport, dst, dport as the client sent it
    reply: tuple[str, str, int, str, int]  # what the reply looks like before un-NAT
    dnat: tuple[str, int] | None = None
    snat: tuple[str, int] | None = None


class Conntrack:
    """One namespace's connection tracking table (both directions indexed)."""

    def __init__(self) -> None:
        self.by_orig: dict[tuple, ConntrackEntry] = {}
        self.by_reply: dict[tuple, ConntrackEntry] = {}

    def add(self, e: ConntrackEntry) -> None:
        self.by_orig[e.orig] = e
        self.by_reply[e.reply] = e

    def remove(self, e: ConntrackEntry) -> None:
        self.by_orig.pop(e.orig, None)
        self.by_reply.pop(e.reply, None)

    def clear(self) -> None:
        self.by_orig.clear()
        self.by_reply.clear()

    def __len__(self) -> int:
        return len(self.by_orig)


def family_of(ip: str) -> int:
    """4 or 6: the family of an address in text (IPv6 is the one with colons)."""
    return 6 if ":" in ip else 4


@dataclass
class NodeNS:
    """A node's network namespace. It holds one ruleset per family, as a kernel does: iptables'
    tables and ip6tables' (or nftables' ``ip`` and ``ip6`` tables); a packet goes through its
    own family's (:meth:`netfilter_of`). xt_recent lists, nfacct counters, the RNG and conntrack
    (``state``, ``conntrack``) are the namespace's, shared by both families, as the kernel's are
    (an entry or list element carries its family's address)."""

    name: str
    ip: str
    pod_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    gateway_ip: str  # the pod-side gateway (host end of every veth): first address of the pod CIDR
    netfilter: Netfilter | NftNetfilter  # iptables mode, or nftables mode (update_nft)
    state: NamespaceState
    conntrack: Conntrack = field(default_factory=Conntrack)
    route_localnet: bool = True
    local_addresses: frozenset[str] = frozenset()
    extra_ips: tuple[str, ...] = ()  # the node's further addresses (a secondary InternalIP, ...): local too
    # the second family (dual-stack): its pod CIDR, whose first address is that family's veth gateway
    pod_cidr2: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    gateway_ip2: str = ""
    netfilter6: Netfilter | NftNetfilter = field(default_factory=lambda: Netfilter({}, family=6))  # ip6tables (or ip6 nft)

    def __post_init__(self) -> None:
        self.local_addresses = frozenset(a for a in (self.ip, *self.extra_ips, "127.0.0.1", "::1", self.gateway_ip,
                                                     self.gateway_ip2) if a)
        # per family: the node's first address and the pod-side gateway (what a masquerade picks)
        self.ip_by_family = {f: next((a for a in (self.ip, *self.extra_ips) if a and family_of(a) == f), "") for f in (4, 6)}
        self.gateway_by_family = {4: "", 6: ""}
        for cidr, gw in ((self.pod_cidr2, self.gateway_ip2), (self.pod_cidr, self.gateway_ip)):
            if cidr is not None:
                self.gateway_by_family[cidr.version] = gw

    def netfilter_of(self, family: int) -> Netfilter | NftNetfilter:
        """The ruleset packets of ``family`` go through: iptables' (4) or ip6tables' (6)."""
        return self.netfilter6 if family == 6 else self.netfilter

    def set_netfilter(self, family: int, nf: Netfilter | NftNetfilter) -> None:
        if family == 6:
            self.netfilter6 = nf
        else:
            self.netfilter = nf

    def ip_of(self, family: int) -> str:
        """The node's first address of ``family`` ("" if it has none): the source a masquerade
        out of eth0 picks."""
        return self.ip_by_family[family]

    def pod_cidrs(self) -> tuple:
        return tuple(c for c in (self.pod_cidr, self.pod_cidr2) if c is not None)

    def gateway_of(self, family: int) -> str:
        """The pod-side gateway of ``family`` (the first address of that family's pod CIDR)."""
        return self.gateway_by_family[family]


def pod_ips(pod: Pod) -> tuple[str, ...]:
    """Every IP of a pod (``status.podIPs``: one per family), the primary first."""
    return pod.pod_ips


def _node_pod_cidrs(node) -> list:
    """A Node's pod CIDRs (``spec.podCIDRs``), parsed: the primary first, at most one per family."""
    return [_ip_network(c) for c in node.pod_cidrs]


@dataclass(frozen=True)
class HealthServers:
    """kube-proxy's service health check servers on one node, as its last successful sync left
    them (upstream ``SyncServices`` + ``SyncEndpoints``, called after the restore succeeded).

    ``services``: healthCheckNodePort -> (namespace, name, local ready endpoints);
    ``addresses``: the node addresses they listen on, None for every address (``0.0.0.0``,
    upstream's default) or the node IPs inside ``nodePortAddresses`` (``newServiceHealthServer``)."""

    services: Mapping[int, tuple[str, str, int]] = field(default_factory=dict)
    addresses: frozenset[str] | None = None

    def answer(self, port: int, address: str) -> HealthResponse | None:
        """What the server on ``address:port`` answers (any path, any method), None if none listens."""
        hit = self.services.get(port)
        if hit is None or (self.addresses is not None and address not in self.addresses):
            return None
        return service_health(*hit)


LB_PROBE_PORT = 40000  # the source port of the simulated load balancer's probes (fixed: probes draw nothing)


@dataclass
class Client:
    """Where a connection starts: a pod, a node, or a host outside the cluster."""

    name: str
    ip: str
    kind: str  # "pod", "node", "external"
    node: str = ""  # the pod's node, or the node itself
    ips: tuple[str, ...] = ()  # every address it has (dual-stack: one per family); () means just ``ip``


@dataclass
class Connection:
    client: Client
    dst: str
    dport: int
    proto: str
    outcome: str  # ok, rejected, dropped, refused, unreachable, reply-mismatch, no-route
    reason: str = ""
    sport: int = 0
    ingress_node: str = ""
    endpoint_pod: str = ""
    endpoint_node: str = ""
    endpoint_ip: str = ""
    endpoint_port: int = 0
    source_ip_seen: str = ""
    dnat_to: str | None = None
    masquerade: bool = False
    snat_to: str | None = None
    path: list[str] = field(default_factory=list)  # nodes the first packet crossed
    reply_path: list[str] = field(default_factory=list)  # nodes the reply crossed
    chains: list[str] = field(default_factory=list)  # chains entered, in order
    rules_evaluated: int = 0
    steps: list[TraceStep] = field(default_factory=list)
    # the conntrack entries the connection made, node by node in path order (they leave the live
    # tables when it is done; Network.closed keeps what conntrack -L would still list)
    conntrack: tuple[tuple[str, ConntrackEntry], ...] = ()
    # the rule counters its packets added to: (the matched rules' Counters, bytes) per hook walk
    counted: list[tuple[list, int]] = field(default_factory=list)
    # every place such a connection could go (kslab.sim.candidates), when worked out; None: not
    candidates: list | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _add_counts(counted: list[tuple[list, int]], times: int = 1) -> None:
    """Add ``times`` connections' packets to the counters of the rules they matched."""
    for counters, size in counted:
        for c in counters:
            c.packets += times
            c.bytes += size * times


_PORT_SPAN = EPHEMERAL[1] - EPHEMERAL[0] + 1
_PORT_BITS = _PORT_SPAN.bit_length()


def _ephemeral_port(getrandbits) -> int:
    """A client port: ``Random.randint(*EPHEMERAL)`` as CPython computes it (``randrange``'s
    rejection sampling on ``getrandbits``), the same value from the same generator state,
    without its three Python calls (tests/test_connection_batch.py compares the two)."""
    r = getrandbits(_PORT_BITS)
    while r >= _PORT_SPAN:
        r = getrandbits(_PORT_BITS)
    return EPHEMERAL[0] + r


def _flow_key(c: Client, dst: str, dport: int, proto: str) -> tuple:
    """What the flow memo keys a connection by: its client and destination."""
    return (c.name, c.ip, c.kind, c.node, dst, dport, proto)


def _with_ports(conn: Connection, sport: int, snat_port: int | None) -> Connection:
    """A copy of a memoised connection with its own client port (and ``--random-fully`` port)."""
    copy = object.__new__(Connection)  # a shallow copy (dataclasses.replace is 10x slower)
    copy.__dict__.update(conn.__dict__)
    copy.sport = sport
    if snat_port is not None and copy.snat_to:
        copy.snat_to = f"{copy.snat_to.rsplit(':', 1)[0]}:{snat_port}"
    return copy


@dataclass
class ConnectionBatch:
    """Connections opened in a row (:meth:`Network.connect_many`), stored by distinct result:
    connection ``i`` is ``results[index[i]]`` with client port ``sports[i]``, opened at
    simulated time ``times[i]`` (and, if ``--random-fully`` drew it, SNAT port
    ``snat_ports[i]``). Experiments build their columns once per distinct result
    (:func:`kslab.experiments.connections_frame`), and a 10,000-connection run allocates a few
    objects instead of 10,000."""

    results: list[Connection] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    sports: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    snat_ports: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def connection(self, i: int) -> Connection:
        """Connection ``i`` as :meth:`Network.connect` returns it (its own object)."""
        return _with_ports(self.results[self.index[i]], self.sports[i], self.snat_ports.get(i))

    def __iter__(self):
        return (self.connection(i) for i in range(len(self)))


def _pkt_dict(p: Packet) -> dict:
    return {"src": p.src, "sport": p.sport, "dst": p.dst, "dport": p.dport, "proto": p.proto, "mark": hex(p.mark)}


@dataclass(slots=True)
class _MemoNode:
    """One point of a flow's draw tree: the next draw, or (at a leaf) the finished connection."""

    draw: tuple | None = None  # (kind, owner, param)
    children: dict = field(default_factory=dict)  # outcome -> _MemoNode
    leaf: Connection | None = None
    stat: NamespaceState | None = None  # a "stat" draw's owner (set with draw): the walk's fast case
    threshold: int = 0  # and its threshold
    parent: _MemoNode | None = None  # the node whose draw led here (None at the root)
    via: object = None  # and that draw's outcome


class Network:
    """The lab's dataplane: build it from cluster state and one ruleset text per node."""

    def __init__(
        self,
        state: ClusterState,
        rulesets: dict[str, str],
        *,
        seed: int = 0,
        listening: dict[str, set[tuple[str, int]]] | None = None,
    ) -> None:
        self.state = state
        self.seed = seed
        self.rng = random.Random(f"{seed}/network")
        self.now = 0.0
        self.nodes: dict[str, NodeNS] = {}
        for i, node in enumerate(state.nodes):
            cidrs = _node_pod_cidrs(node)
            cidr = cidrs[0] if cidrs else None
            cidr2 = cidrs[1] if len(cidrs) > 1 else None
            self.nodes[node.name] = NodeNS(
                name=node.name,
                ip=node.internal_ip,
                extra_ips=node.ips[1:],
                pod_cidr=cidr,
                gateway_ip=str(cidr.network_address + 1) if cidr else "",
                pod_cidr2=cidr2,
                gateway_ip2=str(cidr2.network_address + 1) if cidr2 else "",
                netfilter=Netfilter.from_text(rulesets[node.name], name=node.name) if node.name in rulesets else Netfilter.from_text(""),
                state=NamespaceState(rng=random.Random(f"{seed}/{node.name}")),
            )
            key6 = (node.name, 6)
            if key6 in rulesets:
                self.nodes[node.name].netfilter6 = Netfilter.from_text(rulesets[key6], name=node.name, family=6)
        self.pods_by_ip: dict[str, Pod] = self._pods_by_ip(state)
        self.node_by_ip = {ip: n for n in self.nodes.values() for ip in (n.ip, *n.extra_ips) if ip}
        self._routes: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.broken: set[str] = set()  # pods whose server accepts connections but answers with errors
        self.listening = listening if listening is not None else self._default_listening()
        self.memo = True  # the flow memo (see _memo_open); False: interpret every connection
        self.memo_hits = 0  # connections answered from the memo
        self._recorder: list | None = None
        self._lb_replay: list = []
        self.closed = ConntrackLog()  # the entries finished connections leave, for conntrack -L
        self.health: dict[str, HealthServers] = {}  # per node, as its kube-proxy's last sync left them (set_health)
        self.health6: dict[str, HealthServers] = {}  # the same, of its IPv6 kube-proxy (dual-stack)
        self._health_fallback: dict[str, HealthServers] = {}
        self.clear_memo()

    # ---- topology ----------------------------------------------------------------------------
    @staticmethod
    def _pods_by_ip(state: ClusterState) -> dict[str, Pod]:
        """Every running pod by each of its IPs (a dual-stack pod is found by either)."""
        return {ip: p for p in state.pods if p.pod_ip and p.phase == "Running" for ip in pod_ips(p)}

    def _default_listening(self) -> dict[str, set[tuple[str, int]]]:
        """Pods listen on their declared container ports (whoami on 80, echo on 8080 ...), on
        every address (a server bound to ``::`` or ``0.0.0.0`` answers on each of its IPs)."""
        out: dict[str, set[tuple[str, int]]] = {}
        for ip, p in self.pods_by_ip.items():
            out[ip] = {(cp.protocol.lower(), cp.container_port) for c in p.containers for cp in c.ports}
        return out

    def update_rules(self, rulesets: Mapping[str | tuple[str, int], str]) -> None:
        """Load new rulesets (an iptables-restore), keyed by node (iptables) or by (node,
        family) (4: iptables, 6: ip6tables); xt_recent lists, counters and conntrack stay (a
        list no loaded rule names any more goes, as the kernel frees it)."""
        for key, text in rulesets.items():
            name, family = key if isinstance(key, tuple) else (key, 4)
            self.nodes[name].set_netfilter(family, Netfilter.from_text(text, name=name, family=family))
            self._drop_unnamed_lists(self.nodes[name])
        self.clear_memo()

    @staticmethod
    def _drop_unnamed_lists(node: NodeNS) -> None:
        """xt_recent frees a list with the last rule that names it (``recent_mt_destroy``); a
        restore that keeps such a rule keeps the list and its addresses. Likewise an nftables
        dynamic set's elements go with the set (``delete set``, or a table without it). The
        lists are the namespace's, named by either family's rules."""
        nf, nf6 = node.netfilter, node.netfilter6
        names = recent_list_names(nf.tables)
        if nf6.tables:
            names |= recent_list_names(nf6.tables)
        for gone in [k for k in node.state.recent if k not in names]:
            del node.state.recent[gone]
        sets = dict(nf.sets) if isinstance(nf, NftNetfilter) else {}
        if isinstance(nf6, NftNetfilter):
            sets.update(nf6.sets)
        for gone in [k for k in node.state.nft_sets if k not in sets]:
            del node.state.nft_sets[gone]

    def update_nft(self, states: Mapping[str, object], family: int | None = None) -> None:
        """Load each named node's nftables tables (a :class:`kslab.nft.NftState` after
        kube-proxy's transaction): ``table ip kube-proxy`` runs IPv4 packets and ``table ip6
        kube-proxy`` IPv6 ones. ``family`` (4 or 6) names the family that switches to nftables
        mode now; None: IPv4, and IPv6 too where the state has an ip6 table or IPv6 already runs
        nftables. Dynamic set elements (affinity), counters and conntrack stay, as they do across
        an ``nft -f``."""
        for name, st in states.items():
            node = self.nodes[name]
            families = [family] if family is not None else [4]
            if family is None and (("ip6", "kube-proxy") in getattr(st, "tables", {}) or isinstance(node.netfilter6, NftNetfilter)):
                families.append(6)
            for fam in families:
                old = node.netfilter_of(fam)
                previous = old if isinstance(old, NftNetfilter) else None
                node.set_netfilter(fam, NftNetfilter.from_state(st, name=name, previous=previous,
                                                                family="ip6" if fam == 6 else "ip"))
            self._drop_unnamed_lists(node)
        self.clear_memo()

    def update_tables(self, tables: Mapping[str, Mapping[str, TableDump]], family: int = 4) -> None:
        """Load each named node's tables as held in memory (an ``IptablesState``'s ``tables``;
        ``family`` 6: its ip6tables'): what :meth:`update_rules` does with their
        ``iptables-save`` text, without printing and parsing it again. xt_recent lists,
        counters and conntrack stay."""
        for name, t in tables.items():
            node = self.nodes[name]
            old = node.netfilter_of(family)
            previous = old if isinstance(old, Netfilter) else None
            node.set_netfilter(family, Netfilter.from_tables(t, name=name, previous=previous, family=family))
            self._drop_unnamed_lists(node)
        self.clear_memo()

    def update_pods(self, state: ClusterState) -> None:
        self.state = state
        self._health_fallback.clear()
        self.pods_by_ip = self._pods_by_ip(state)
        self.listening = self._default_listening()
        self._routes.clear()
        self.clear_memo()

    def reseed(self, seed: int) -> None:
        """Restart every random choice (client ports, ``statistic`` draws) from ``seed``."""
        self.seed = seed
        self.rng = random.Random(f"{seed}/network")
        for node in self.nodes.values():
            node.state.rng = random.Random(f"{seed}/{node.name}")

    def reset(self) -> None:
        """Forget xt_recent lists, counters and conntrack, and set the clock to 0 (fresh nodes)."""
        self.now = 0.0
        for node in self.nodes.values():
            node.state.recent.clear()
            node.state.nfacct.clear()
            node.state.nfacct_bytes.clear()
            node.state.nth_counters.clear()
            node.state.nft_sets.clear()
            node.conntrack = Conntrack()
        self.closed = ConntrackLog()
        self.clear_memo()

    def advance(self, seconds: float) -> None:
        """Move the simulated clock (what ``recent --seconds`` and affinity timeouts read)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.now += seconds

    def client(self, spec: str) -> Client:
        """The client ``spec`` names (see :func:`resolve_client`)."""
        return resolve_client(self.state, spec)

    def _route(self, node: NodeNS, dst: str) -> tuple[str, str, str]:
        """The node's routing decision: (kind, out_iface, next) with kind in
        local | pod | node | fabric | gateway | unreachable (memoised until pods change)."""
        key = (node.name, dst)
        hit = self._routes.get(key)
        if hit is None:
            hit = self._routes[key] = self._lookup_route(node, dst)
        return hit

    def _lookup_route(self, node: NodeNS, dst: str) -> tuple[str, str, str]:
        if dst in node.local_addresses or dst.startswith("127."):
            return "local", "lo", node.name
        ip = ipaddress.ip_address(dst)
        if any(ip in cidr for cidr in node.pod_cidrs()):  # an address of the other family is in no CIDR
            pod = self.pods_by_ip.get(dst)
            if pod and pod.node_name == node.name:
                return "pod", f"veth-{pod.name}"[:15], dst
            return "unreachable", "", dst
        for other in self.nodes.values():
            if other is not node and any(ip in cidr for cidr in other.pod_cidrs()):
                return "node", "eth0", other.name
        if dst in self.node_by_ip:
            return "node", "eth0", self.node_by_ip[dst].name
        if ip in FABRIC or ip in FABRIC6:
            return "fabric", "eth0", dst
        return "gateway", "eth0", FABRIC_GATEWAY6 if ip.version == 6 else FABRIC_GATEWAY

    # ---- the flow memo ------------------------------------------------------------------------
    # Without a trace, a connection that meets no stateful match (recent, nth, nfacct) is a pure
    # function of its flow (client, destination) and of the random draws made on the way
    # (statistic rules, --random-fully ports, the load balancer's node). The memo keeps, per
    # flow, a tree of those draws with the finished Connection at each leaf: a new connection
    # makes the same draws from the same generators, in the same order, and follows the tree;
    # only an unexplored branch runs the interpreter (fed the draws already made). Results are
    # identical with and without the memo (tests/test_sim.py); any change to rules, pods,
    # listeners or broken pods empties it.

    def _lb_choice(self, n: int) -> int:
        if self._lb_replay:
            kind, _, param, outcome, _ = self._lb_replay.pop(0)
            assert kind == "lb" and param == n, "flow memo replay out of step"
            return outcome
        value = self.rng.randrange(n)
        if self._recorder is not None:
            self._recorder.append(("lb", self, n, value, value))
        return value

    def clear_memo(self) -> None:
        self._lb_states: dict[tuple[str, str], LBState] = {}  # the load balancers' probes, made again after any change
        self._memo: dict[tuple, _MemoNode] = {}
        self._memo_off: set[tuple] = set()
        self._memo_broken = frozenset(self.broken)

    def _draw(self, kind: str, owner, param):
        """Make the next draw of a memoised path for real, through the same methods the
        interpreter calls (no recorder or replay is set here): (outcome for the tree, value)."""
        if kind == "stat":
            return owner.statistic(param), None
        if kind == "port":
            return None, owner.random_port()
        if kind == "numgen":
            return owner.numgen(param), None
        value = self._lb_choice(param)
        return value, value

    def _memo_open(self, c: Client, dst: str, dport: int, proto: str, sport: int) -> tuple[Connection, bool, int | None]:
        """One untraced connection through the memo: (connection, False, None) when it was
        interpreted, or (the memo's leaf, True, the port ``--random-fully`` drew on the way or
        None) on a hit. A leaf is shared by every connection of its branch: callers copy it
        before changing it (:meth:`connect`) or keep it as it is (:meth:`connect_many`)."""
        if not self._memo_usable():
            return self._interpret(c, dst, dport, proto, sport, False), False, None
        return self._memo_follow(_flow_key(c, dst, dport, proto), c, dst, dport, proto, sport)

    def _memo_usable(self) -> bool:
        """Whether the memo may answer now: it is emptied if the broken pods changed, and
        skipped while any conntrack entry exists (a connection's own entries are removed when
        it closes, so only a caller's leave the tables non-empty)."""
        if self.broken != self._memo_broken:
            self.clear_memo()
        return not any(n.conntrack.by_orig for n in self.nodes.values())

    def _memo_follow(self, key: tuple, c: Client, dst: str, dport: int, proto: str, sport: int) -> tuple[Connection, bool, int | None]:
        """:meth:`_memo_open` once :meth:`_memo_usable` said yes (``key``: the flow's :func:`_flow_key`)."""
        if self._memo_off and key in self._memo_off:
            return self._interpret(c, dst, dport, proto, sport, False), False, None
        node = self._memo.get(key)
        # the walk keeps no list of its draws: a miss finds them again through the parent links
        last: _MemoNode | None = None  # the node of the last draw made, and its outcome
        outcome = None
        values: dict[int, object] | None = None  # id(node) -> its draw's value, for draws that have one
        port = None
        while node is not None and node.leaf is None:
            st = node.stat
            if st is not None:
                # the common draws, kube-proxy's probability ladder on one node: NamespaceState.statistic
                # without its replay and recorder, which are only set while _interpret runs (never here)
                getrandbits = st.rng.getrandbits
                while True:
                    outcome = (getrandbits(32) & STATISTIC_MASK) < node.threshold
                    last, node = node, node.children.get(outcome)
                    if node is None or node.stat is not st:
                        break
            else:
                kind, owner, param = node.draw  # type: ignore[misc]
                outcome, value = self._draw(kind, owner, param)
                if values is None:
                    values = {}
                values[id(node)] = value
                if kind == "port":
                    port = value
                last, node = node, node.children.get(outcome)
        if node is not None:
            self.memo_hits += 1
            return node.leaf, True, port  # type: ignore[return-value]
        made: list[tuple] = []  # the draws made, as the recorder logs them (last first, then reversed)
        while last is not None:
            kind, owner, param = last.draw  # type: ignore[misc]
            made.append((kind, owner, param, outcome, values.get(id(last)) if values else None))
            last, outcome = last.parent, last.via
        made.reverse()
        # an unexplored branch: interpret, serving the draws already made, recording all of them
        recorder: list[tuple] = []
        states = [n.state for n in self.nodes.values()]
        for st in states:
            st.recorder, st.stateful = recorder, False
            st.replay = [d for d in made if d[1] is st]
        self._recorder, self._lb_replay = recorder, [d for d in made if d[0] == "lb"]
        try:
            conn = self._interpret(c, dst, dport, proto, sport, False)
        finally:
            for st in states:
                st.recorder, st.replay = None, []
            self._recorder, self._lb_replay = None, []
        # the recorder holds the draws made live; the served ones came first, in order
        draws = made + recorder
        if any(st.stateful for st in states):
            self._memo_off.add(key)
            self._memo.pop(key, None)
            return conn, False, None
        node = self._memo.setdefault(key, _MemoNode())
        for kind, owner, param, outcome, _ in draws:
            if node.draw is None:
                node.draw = (kind, owner, param)
                if kind == "stat":
                    node.stat, node.threshold = owner, param
            assert node.draw == (kind, owner, param), "flow memo: the same draws led elsewhere"
            child = node.children.get(outcome)
            if child is None:
                child = node.children[outcome] = _MemoNode(parent=node, via=outcome)
            node = child
        node.leaf = replace(conn)
        return conn, False, None

    def connect_many(self, clients: Sequence[Client], dst: str, dport: int, proto: str = "tcp", n: int = 1, *,
                     interval: float = 0.0) -> ConnectionBatch:
        """``n`` untraced connections from ``clients`` in turn, the clock advancing ``interval``
        after each: exactly what ``n`` calls of :meth:`connect` (``trace=False``) open, the same
        draws in the same order, kept as a :class:`ConnectionBatch` (connections that took the
        same branch share one :class:`Connection` instead of a copy each)."""
        if interval < 0:
            raise ValueError("the clock only moves forward")
        proto = proto.lower()
        batch = ConnectionBatch()
        results, index, sports, times, snat_ports = batch.results, batch.index, batch.sports, batch.times, batch.snat_ports
        position: dict[int, int] = {}  # id(result) -> its index in results (results keeps every one alive)
        getrandbits, follow = self.rng.getrandbits, self._memo_follow
        memo = self.memo and self._memo_usable()  # constant during the batch: its connections leave no conntrack entries
        keys = [_flow_key(c, dst, dport, proto) for c in clients]
        hits: dict[int, int] = {}  # result -> connections the memo answered with it (their rule counters are added at the end)
        for i in range(n):
            j = i % len(clients)
            c = clients[j]
            sport = _ephemeral_port(getrandbits)
            hit = False
            if memo:
                conn, hit, port = follow(keys[j], c, dst, dport, proto, sport)
                if port is not None and conn.snat_to:
                    snat_ports[i] = port
            else:
                conn = self._interpret(c, dst, dport, proto, sport, False)
            k = position.get(id(conn))
            if k is None:
                k = position[id(conn)] = len(results)
                results.append(conn)
            if hit:
                hits[k] = hits.get(k, 0) + 1
            index.append(k)
            sports.append(sport)
            times.append(self.now)
            if interval:
                self.now += interval  # advance(): what recent --seconds and affinity timeouts read
        for k, count in hits.items():
            _add_counts(results[k].counted, count)
        self.closed.add_batch(batch)
        return batch

    # ---- one connection ------------------------------------------------------------------------
    def connect(
        self,
        client: Client | str,
        dst: str,
        dport: int,
        proto: str = "tcp",
        *,
        sport: int | None = None,
        trace: bool = True,
    ) -> Connection:
        c = self.client(client) if isinstance(client, str) else client
        proto = proto.lower()
        if sport is None:
            sport = _ephemeral_port(self.rng.getrandbits)
        opened = self.now
        if not trace and self.memo:
            conn, leaf, port = self._memo_open(c, dst, dport, proto, sport)
            if leaf:
                _add_counts(conn.counted)
                self.closed.add(conn, sport, port, opened)
                return _with_ports(conn, sport, port)
        else:
            conn = self._interpret(c, dst, dport, proto, sport, trace)
        self.closed.add(conn, sport, None, opened)
        return conn

    def _interpret(self, c: Client, dst: str, dport: int, proto: str, sport: int, trace: bool) -> Connection:
        """One connection, hook by hook through the interpreter."""
        conn = Connection(client=c, dst=dst, dport=dport, proto=proto, outcome="", sport=sport)
        src = _source_address(c, dst)
        if not src:  # no address of the destination's family: the socket cannot even send
            fam = "IPv6" if ":" in dst else "IPv4"
            conn.outcome, conn.reason = "no-route", f"{c.name} has no {fam} address, so it cannot reach {dst} (Network is unreachable)"
            self._note(conn, c.name, "", conn.reason, trace)
            return conn
        pkt = Packet(src=src, dst=dst, proto=proto, sport=sport, dport=dport)
        created: list[tuple[NodeNS, object]] = []
        try:
            self._forward_path(conn, pkt, created, trace)
        finally:
            for node, entry in created:  # the connection is closed: its conntrack entries go
                node.conntrack.remove(entry)  # type: ignore[arg-type]
            conn.conntrack = tuple((node.name, entry) for node, entry in created)  # type: ignore[misc]
            _add_counts(conn.counted)
        return conn

    def _note(self, conn: Connection, node: str, hook: str, detail: str, trace: bool) -> None:
        if trace:
            conn.steps.append(TraceStep(node=node, hook=hook, table="", chain="", event="note", detail=detail))

    def _hook(self, conn: Connection, node: NodeNS, hook: str, pkt: Packet, ct_state: str, trace: bool,
              ct_status: frozenset[str] = frozenset()) -> HookResult:
        ctx = HookContext(hook=hook, local_addresses=node.local_addresses, now=self.now, state=node.state,
                          ct_state=ct_state, ct_status=ct_status)
        res = (node.netfilter6 if ":" in pkt.dst else node.netfilter).run_hook(hook, pkt, ctx, trace=trace)
        if res.counted:
            conn.counted.append((res.counted, PACKET_BYTES.get(pkt.proto, 40)))
        conn.rules_evaluated += res.rules_evaluated
        conn.chains.extend(res.chains)
        if trace:
            for s in res.steps:
                s.node = node.name
            conn.steps.extend(res.steps)
        return res

    def _forward_path(self, conn: Connection, pkt: Packet, created: list, trace: bool) -> None:
        c = conn.client
        orig = pkt.five_tuple()
        # where the first packet enters netfilter
        if c.kind == "external":
            target = self.node_by_ip.get(pkt.dst) or self._load_balancer_node(pkt.dst, conn, trace)
            if target is None:
                if conn.outcome:  # the load balancer had no healthy node
                    self._note(conn, "load balancer", "", conn.reason, trace)
                    return
                if _on_fabric(pkt.dst):
                    conn.outcome, conn.reason = "unreachable", f"{pkt.dst} is on the docker network but nothing answers there"
                else:
                    conn.outcome, conn.reason = "no-route", (
                        f"{c.name} has no route to {pkt.dst}: outside the cluster only the node IPs are reachable "
                        f"(Service and pod IPs exist only inside the nodes' rules and routes)"
                    )
                self._note(conn, c.name, "", conn.reason, trace)
                return
            node, hook, in_iface = target, "PREROUTING", "eth0"
        elif c.kind == "pod":
            if pkt.dst == pkt.src and pkt.src in self.pods_by_ip:
                return self._deliver_to_itself(conn, pkt, trace)
            node, hook, in_iface = self.nodes[c.node], "PREROUTING", f"veth-{c.name}"[:15]
            if trace:
                self._note(conn, c.name, "OUTPUT", f"the packet leaves {c.name}'s own namespace (OUTPUT, POSTROUTING: no rules "
                           f"there) by its default route to {node.gateway_by_family[6 if ':' in pkt.dst else 4] or node.gateway_ip} on {node.name}", trace)
        else:
            node, hook, in_iface = self.nodes[c.node], "OUTPUT", ""
        conn.ingress_node = node.name

        hops = 0
        while True:
            hops += 1
            if hops > 8:
                conn.outcome, conn.reason = "dropped", "routing loop"
                return
            conn.path.append(node.name)
            before = _pkt_dict(pkt) if trace else None
            before_t = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
            entry_existing = node.conntrack.by_orig.get(pkt.five_tuple())
            ct_state = "ESTABLISHED" if entry_existing else "NEW"
            pkt.in_iface = in_iface if hook == "PREROUTING" else ""
            pkt.out_iface = ""
            res = self._hook(conn, node, hook, pkt, ct_state, trace)
            if res.verdict != "ACCEPT":
                self._verdict(conn, node, hook, res)
                return
            dnat = None
            if res.nat and res.nat.kind == "DNAT":
                dnat = (pkt.dst, pkt.dport)
                conn.dnat_to = conn.dnat_to or (f"[{pkt.dst}]:{pkt.dport}" if ":" in pkt.dst else f"{pkt.dst}:{pkt.dport}")
                if trace:
                    conn.steps.append(TraceStep(node.name, hook, "nat", "", "nat",
                                                detail=f"DNAT {host_port(before_t[2], before_t[3])} -> {host_port(pkt.dst, pkt.dport)}",
                                                packet_before=before, packet_after=_pkt_dict(pkt)))
            kind, out_iface, nxt = self._route(node, pkt.dst)
            if kind == "local":
                pkt.out_iface = "lo"
                res = self._hook(conn, node, "INPUT", pkt, ct_state, trace)
                if res.verdict != "ACCEPT":
                    self._verdict(conn, node, "INPUT", res)
                    return
                if not self._node_listens(node.name, pkt.proto, pkt.dport, pkt.dst):
                    conn.outcome, conn.reason = "refused", f"{host_port(pkt.dst, pkt.dport)} is the node {node.name} itself and nothing listens there"
                    self._note(conn, node.name, "INPUT", conn.reason, trace)
                    return
                if ct_state == "NEW":
                    entry = ConntrackEntry(orig=(orig[0], *before_t), reply=(pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport), dnat=dnat)
                    node.conntrack.add(entry)
                    created.append((node, entry))
                conn.endpoint_node, conn.endpoint_ip, conn.endpoint_port = node.name, pkt.dst, pkt.dport
                conn.source_ip_seen = pkt.src
                self._note(conn, node.name, "INPUT", f"delivered to a process of {node.name} listening on {pkt.proto}/{pkt.dport}, "
                           f"which sees the client as {pkt.src}", trace)
                self._reply_path(conn, pkt, trace, node=node)
                return
            if kind == "unreachable":
                conn.outcome, conn.reason = "unreachable", f"no pod with IP {pkt.dst} on {node.name}"
                self._note(conn, node.name, "", conn.reason, trace)
                return
            pkt.out_iface = out_iface
            if hook == "PREROUTING":
                pkt.in_iface = in_iface
                res = self._hook(conn, node, "FORWARD", pkt, ct_state, trace, frozenset({"DNAT"}) if dnat else frozenset())
                if res.verdict != "ACCEPT":
                    self._verdict(conn, node, "FORWARD", res)
                    return
            pkt.in_iface = ""
            before_post = _pkt_dict(pkt) if trace else None
            res = self._hook(conn, node, "POSTROUTING", pkt, ct_state, trace, frozenset({"DNAT"}) if dnat else frozenset())
            if res.verdict != "ACCEPT":
                self._verdict(conn, node, "POSTROUTING", res)
                return
            snat = None
            if res.nat and res.nat.kind in ("SNAT", "MASQUERADE"):
                if res.nat.kind == "MASQUERADE":
                    # the out interface's address of the packet's family
                    new_ip = (node.gateway_by_family if out_iface.startswith("veth") else node.ip_by_family)[6 if ":" in pkt.dst else 4]
                    conn.masquerade = True
                else:
                    new_ip = res.nat.to_ip
                new_port = pkt.sport
                if res.nat.random_fully or (res.nat.to_port is not None):
                    new_port = res.nat.to_port if res.nat.to_port is not None else node.state.random_port()
                pkt.src, pkt.sport = new_ip, new_port
                snat = (new_ip, new_port)
                conn.snat_to = f"[{new_ip}]:{new_port}" if ":" in new_ip else f"{new_ip}:{new_port}"
                if trace:
                    conn.steps.append(TraceStep(node.name, "POSTROUTING", "nat", "", "nat",
                                                detail=f"{res.nat.kind} {before_post['src']} -> {new_ip} (out {out_iface})",  # type: ignore[index]
                                                packet_before=before_post, packet_after=_pkt_dict(pkt)))
            if ct_state == "NEW":
                entry = ConntrackEntry(orig=(orig[0], *before_t),
                                       reply=(pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport), dnat=dnat, snat=snat)
                node.conntrack.add(entry)
                created.append((node, entry))
            if kind == "pod":
                self._deliver(conn, node, pkt, created, trace)
                return
            if kind == "node":
                node, hook, in_iface = self.nodes[nxt], "PREROUTING", "eth0"
                pkt.mark = 0  # skb->mark does not cross the wire
                continue
            # fabric or gateway: leaves the cluster
            conn.outcome = "no-route" if kind == "gateway" else "unreachable"
            conn.reason = f"{node.name} sends {pkt.dst} out to the docker network ({nxt}); nothing there answers"
            self._note(conn, node.name, "POSTROUTING", conn.reason, trace)
            return

    def _load_balancer_node(self, ip: str, conn: Connection, trace: bool) -> NodeNS | None:
        """The node a cloud load balancer hands a packet for one of its ingress IPs to (VIP mode:
        the packet arrives unchanged, its source the client's).

        Like cloud LBs (and cloud-provider-kind) it balances per node, uniformly (the network's
        seeded RNG) over the nodes whose probe answered 200 (:meth:`lb_state`,
        :func:`kslab.loadbalancer.eligible`). None if ``ip`` is no LB IP; a connection to an LB
        with no healthy node is dropped (``conn.outcome`` set).
        """
        svc = self.lb_services().get(ip)
        if svc is None:
            return None
        st = self.lb_state(svc)
        if trace:
            probes = ", ".join(f"{n} {code or 'no answer'}" for n, code in st.probes.items())
            self._note(conn, "load balancer", "", f"the load balancer for {ip} probes http://NODE:{st.probe_port}{st.probe_path} "
                       f"on every node from {st.vip}, through each node's rules (externalTrafficPolicy {st.policy}): {probes}", trace)
        if not st.healthy:
            conn.outcome = "dropped"
            conn.reason = f"the load balancer for {ip} has no healthy node (no probe of port {st.probe_port} answered 200)"
            return None
        node = self.nodes[st.healthy[self._lb_choice(len(st.healthy))]]
        self._note(conn, "load balancer", "", f"the load balancer for {ip} sends the connection to {node.name} "
                   f"({len(st.healthy)} healthy node(s), externalTrafficPolicy {st.policy})", trace)
        return node

    # ---- kube-proxy's health check servers, the cloud load balancer ------------------------------
    # Probe timing: the simulated LB probes every node once after each change of the lab (rules,
    # pods, readiness, a hand edit: whatever empties the flow memo) and before the next connection
    # it balances, and keeps those answers until the next change. So its view is never stale (a
    # probe interval of 0, thresholds of 1): after set_ready(...) the very next connection already
    # follows, and lab.advance(2) is more than enough. The probes' packets walk the node's rules and
    # add to their counters once per round; they leave no entry for conntrack -L.

    def set_health(self, node: str, servers: HealthServers, family: int = 4) -> None:
        """What ``node``'s kube-proxy of ``family`` hands its health check servers after a
        successful sync (each family's proxier has its own, upstream's ``NewDualStackProxier``)."""
        (self.health6 if family == 6 else self.health)[node] = servers
        self.clear_memo()

    def health_servers(self, node: str, family: int = 4) -> HealthServers:
        """``node``'s health check servers of ``family``: as its kube-proxy's last sync left them
        (:meth:`set_health`); for a node no sync reached (a lab copied from another's tables, or
        IPv6 before an IPv6 sync), from the cluster state the network last got, listening on
        every address."""
        hs = self.health6.get(node) if family == 6 else None
        if hs is None:
            hs = self.health.get(node)
        if hs is None:
            hs = self._health_fallback.get(node)
            if hs is None:
                hs = self._health_fallback[node] = HealthServers(
                    {port: (svc.namespace, svc.name, local_endpoints(self.state, svc, node)) for port, svc in hc_targets(self.state).items()})
        return hs

    def node_answer(self, node: str, port: int, address: str, path: str = "/") -> HealthResponse | None:
        """What a node's own HTTP server on ``address:port`` answers a request for ``path``: a
        service health check server (:meth:`health_servers`) or kube-proxy's own health server
        (10256, every address: :func:`kslab.healthcheck.proxy_health`); None for a process the sim
        does not emulate (kubelet, the API server)."""
        answer = self.health_servers(node, family_of(address)).answer(port, address)
        if answer is None and port == PROXY_HEALTHZ_PORT:
            answer = proxy_health(path, go_time(*self.proxy_clock()))
        return answer

    def proxy_clock(self) -> tuple[int, int]:
        """kube-proxy's clock on the simulated nodes, in nanoseconds: the wall time (the control
        plane's clock from :data:`~kslab.apiobjects.CLUSTER_EPOCH`, what creationTimestamps read)
        and the monotonic reading since kube-proxy started (the network's clock, 0 on fresh nodes)."""
        wall = CLUSTER_EPOCH.timestamp() + float(getattr(self.state, "clock", 0.0))
        return round(wall * 1e9), round(self.now * 1e9)

    def _node_listens(self, node: str, proto: str, port: int, address: str) -> bool:
        if (proto, port) in self.node_listening(node, health=False):
            return True
        hs = self.health_servers(node, 6 if ":" in address else 4)
        return proto == "tcp" and port in hs.services and (hs.addresses is None or address in hs.addresses)

    def lb_services(self) -> dict[str, Service]:
        """Every ingress IP of a ``type: LoadBalancer`` Service -> the Service."""
        return {i.ip: svc for svc in self.state.services if svc.type == "LoadBalancer" for i in svc.load_balancer_ingress if i.ip}

    def lb_state(self, service: Service) -> LBState:
        """The load balancer of ``service`` now: its probe of every node (``probe_target``: the
        healthCheckNodePort under Local, 10256 under Cluster) and the nodes answering 200. Made by
        real probes through the simulated network, so hand-broken rules count."""
        key = (service.namespace, service.name)
        st = self._lb_states.get(key)
        if st is None:
            port, path = probe_target(service)
            vip = next((i.ip for i in service.load_balancer_ingress if i.ip), "")
            probes = {name: self._probe(vip, node, port) for name, node in self.nodes.items()}
            st = self._lb_states[key] = LBState(
                service=service.key, vip=vip, port=service.ports[0].port if service.ports else 0,
                policy=service.external_traffic_policy or "Cluster", probe_port=port, probe_path=path, probes=probes,
                healthy=tuple(eligible(probes, self.nodes)))
        return st

    def _probe(self, vip: str, node: NodeNS, port: int) -> int:
        """One HTTP probe of ``node.ip:port`` from the load balancer's address: the status, 0 for
        no answer. It walks the node's rules like any connection, outside the flow memo's
        bookkeeping (it draws nothing)."""
        states = [n.state for n in self.nodes.values()]
        saved = [(st.recorder, st.replay, st.stateful) for st in states]
        saved_lb = (self._recorder, self._lb_replay)
        for st in states:
            st.recorder, st.replay = None, []
        self._recorder, self._lb_replay = None, []
        try:
            family = family_of(vip) if vip else 4  # the load balancer probes the node's address of its VIP's family
            conn = self._interpret(Client("load balancer", vip or FABRIC_GATEWAY, "external"), node.ip_of(family) or node.ip,
                                   port, "tcp", LB_PROBE_PORT, False)
        finally:
            for st, (rec, rep, stateful) in zip(states, saved):
                st.recorder, st.replay, st.stateful = rec, rep, stateful
            self._recorder, self._lb_replay = saved_lb
        if conn.outcome not in ("ok", "error"):
            return 0
        if conn.endpoint_pod:  # a rule sent the probe to a pod: its server answers any path
            return 500 if conn.outcome == "error" else 200
        answer = self.node_answer(conn.endpoint_node, conn.endpoint_port, conn.endpoint_ip, HEALTHZ_PATH)
        return answer.status if answer is not None else 0

    def _verdict(self, conn: Connection, node: NodeNS, hook: str, res: HookResult) -> None:
        # what the client sees: a REJECT (icmp-port-unreachable) is "connection refused", as on the
        # kernel (the netns client's outcome); the reason names the rule
        conn.outcome = "refused" if res.verdict == "REJECT" else "dropped"
        last = next((s for s in reversed(res.steps) if s.event in ("rule", "policy")), None)
        conn.reason = netfilter_verdict(res.verdict, hook, node.name, rule=last.rule if last and last.event == "rule" else "",
                                        policy_of=last.chain if last and last.event == "policy" else "")

    def _deliver_to_itself(self, conn: Connection, pkt: Packet, trace: bool) -> None:
        """A pod connecting to its own address: the local route (lo) keeps it inside the pod."""
        pod = self.pods_by_ip[pkt.dst]
        conn.endpoint_pod, conn.endpoint_node = pod.name, pod.node_name
        conn.endpoint_ip, conn.endpoint_port = pkt.dst, pkt.dport
        conn.source_ip_seen = pkt.src
        self._note(conn, pod.name, "OUTPUT", f"{pkt.dst} is {pod.name}'s own address: the packet stays in the pod (lo), "
                   "no node and none of kube-proxy's rules see it", trace)
        if (pkt.proto, pkt.dport) not in self.listening.get(pkt.dst, set()):
            conn.outcome, conn.reason = "refused", f"pod {pod.name} does not listen on {pkt.proto}/{pkt.dport}"
        elif pod.name in self.broken:
            conn.outcome, conn.reason = "error", f"{pod.name} accepted the connection but answered HTTP 500 (its app is broken)"
        else:
            conn.outcome = "ok"

    def _deliver(self, conn: Connection, node: NodeNS, pkt: Packet, created: list, trace: bool) -> None:
        pod = self.pods_by_ip[pkt.dst]
        conn.endpoint_pod, conn.endpoint_node = pod.name, pod.node_name
        conn.endpoint_ip, conn.endpoint_port = pkt.dst, pkt.dport
        if pkt.src == pkt.dst:  # fib_validate_source(): a local source address arriving from outside is a martian
            conn.outcome, conn.reason = "dropped", hairpin_without_masquerade(pod.name, pkt.src)
            self._note(conn, pod.name, "", conn.reason, trace)
            return
        conn.source_ip_seen = pkt.src
        if trace:
            self._note(conn, node.name, "", f"delivered to pod {pod.name} ({host_port(pkt.dst, pkt.dport)}), which sees the client as {pkt.src}", trace)
        if (pkt.proto, pkt.dport) not in self.listening.get(pkt.dst, set()):
            conn.outcome, conn.reason = "refused", f"pod {pod.name} does not listen on {pkt.proto}/{pkt.dport}"
            return
        self._reply_path(conn, pkt, trace, pod=pod)
        if conn.outcome == "ok" and pod.name in self.broken:
            conn.outcome, conn.reason = "error", f"{pod.name} accepted the connection but answered HTTP 500 (its app is broken)"

    def node_listening(self, node: str, health: bool = True) -> set[tuple[str, int]]:
        """What a node's own processes listen on: kubelet (10250), kube-proxy's healthz (10256),
        the API server (6443) on control-plane nodes and, with ``health``, kube-proxy's service
        health check servers (every healthCheckNodePort; on the addresses
        :meth:`health_servers` says)."""
        ports = {("tcp", 10250), ("tcp", PROXY_HEALTHZ_PORT)}
        n = next((x for x in self.state.nodes if x.name == node), None)
        if n is not None and n.is_control_plane:
            ports.add(("tcp", 6443))
        if health:
            ports |= {("tcp", p) for p in self.health_servers(node).services}
        return ports

    def _reply_path(self, conn: Connection, fwd: Packet, trace: bool, pod: Pod | None = None, node: NodeNS | None = None) -> None:
        """The reply, from the endpoint pod (through its node) or from a node's own process."""
        c = conn.client
        reply = Packet(src=fwd.dst, dst=fwd.src, proto=fwd.proto, sport=fwd.dport, dport=fwd.sport)
        from_node = pod is None
        if pod is not None:
            node = self.nodes[pod.node_name]
            in_iface = f"veth-{pod.name}"[:15]
        else:
            in_iface = ""
        assert node is not None
        for _ in range(8):
            conn.reply_path.append(node.name)
            entry = node.conntrack.by_reply.get(reply.five_tuple())
            before = _pkt_dict(reply) if trace else None
            if entry is not None and (entry.dnat is not None or entry.snat is not None):
                if entry.dnat is not None:  # un-DNAT: the reply comes from the address the client used
                    reply.src, reply.sport = entry.orig[3], entry.orig[4]
                if entry.snat is not None:  # un-SNAT: back to the client's real address
                    reply.dst, reply.dport = entry.orig[1], entry.orig[2]
                if trace:
                    conn.steps.append(TraceStep(node.name, "PREROUTING", "", "", "nat", detail="conntrack reverses the NAT of the reply",
                                                packet_before=before, packet_after=_pkt_dict(reply)))
            pkt = reply
            pkt.in_iface = in_iface
            kind, out_iface, nxt = self._route(node, pkt.dst)
            pkt.out_iface = out_iface
            if kind == "local":
                if c.kind == "node" and c.node == node.name:
                    return self._check_reply(conn, pkt, trace)
                conn.outcome, conn.reason = "reply-mismatch", f"the reply for {pkt.dst} ended on {node.name}"
                return
            reply_hook = "OUTPUT" if from_node else "FORWARD"
            from_node = False
            res = self._hook(conn, node, reply_hook, pkt, "ESTABLISHED", trace)
            if res.verdict != "ACCEPT":
                self._verdict(conn, node, f"{reply_hook} (reply)", res)
                return
            if kind == "pod":
                return self._check_reply(conn, pkt, trace)
            if kind == "node":
                node, in_iface = self.nodes[nxt], "eth0"
                continue
            # out to the docker network: the client outside
            return self._check_reply(conn, pkt, trace)
        conn.outcome, conn.reason = "dropped", "reply routing loop"

    def _check_reply(self, conn: Connection, reply: Packet, trace: bool) -> None:
        c = conn.client
        src = _source_address(c, conn.dst)
        if reply.dst != src or reply.dport != conn.sport:
            conn.outcome, conn.reason = "reply-mismatch", f"the reply went to {host_port(reply.dst, reply.dport)}, not to {host_port(src, conn.sport)}"
        elif reply.src != conn.dst or reply.sport != conn.dport:
            conn.outcome = "reply-mismatch"
            conn.reason = (f"the reply comes from {host_port(reply.src, reply.sport)} but {c.name} talked to {host_port(conn.dst, conn.dport)}; "
                           "no conntrack entry on its way reversed the DNAT, so the client drops it")
        else:
            conn.outcome = "ok"
        if trace:
            self._note(conn, c.name, "", f"reply reaches {c.name}: {host_port(reply.src, reply.sport)} -> {host_port(reply.dst, reply.dport)} ({conn.outcome})", trace)


def _source_address(c: Client, dst: str) -> str:
    """The source address of a client's first packet: its own of the destination's family,
    except a node's connection to 127.0.0.0/8 or ::1, which the kernel sends from 127.0.0.1 or
    ::1 (the loopback route's preferred source); "" when the client has no address of that
    family (connect() fails: Network is unreachable)."""
    if ":" in dst:
        if c.kind == "node" and dst == "::1":
            return "::1"
        return c.ip if ":" in c.ip else next((a for a in c.ips if ":" in a), "")
    if c.kind == "node" and dst.startswith("127."):
        return "127.0.0.1"
    return c.ip if ":" not in c.ip else next((a for a in c.ips if ":" not in a), "")


def _on_fabric(ip: str) -> bool:
    """Whether ``ip`` is on the docker network (either family)."""
    a = _ip_address(ip)
    return a in FABRIC or a in FABRIC6


def resolve_client(state: ClusterState, spec: str) -> Client:
    """A pod name, a node name, ``mypc``, or an IP (a pod CIDR address is a pod-like client
    on that node; a fabric address is a host beside mypc; anything else is outside)."""
    if spec == "mypc":
        return Client("mypc", MYPC_IP, "external", ips=(MYPC_IP, MYPC_IP6))
    for n in state.nodes:
        if n.name == spec:
            return Client(spec, n.internal_ip, "node", spec, ips=n.ips)
    for p in state.pods:
        if p.name == spec or p.key == spec:
            if not p.pod_ip:
                raise InputError(f"--from {spec}", "the pod has no IP (it is not running)", "pick a running pod")
            return Client(p.name, p.pod_ip, "pod", p.node_name, ips=pod_ips(p))
    try:
        ip = _ip_address(spec)
    except ValueError:
        known = ", ".join(["mypc", *(n.name for n in state.nodes), *(p.name for p in state.pods)])
        raise InputError(f"--from {spec}", "no pod, node or IP by that name", f"use one of: {known}, or an IP")
    s = str(ip)
    for n in state.nodes:
        if s in n.ips:  # any of the node's addresses: a connection from the node, with that source
            return Client(n.name, s, "node", n.name)
    for p in state.pods:
        if s in pod_ips(p) and p.phase == "Running":
            return Client(p.name, s, "pod", p.node_name)
    for n in state.nodes:
        if any(ip in cidr for cidr in _node_pod_cidrs(n)):
            return Client(s, s, "pod", n.name)
    return Client(s, s, "external")


_ip_address = lru_cache(maxsize=4096)(ipaddress.ip_address)  # clients named by IP come back round after round
_ip_network = lru_cache(maxsize=256)(ipaddress.ip_network)


def _node_port(state: ClusterState, spec: str, service: str, proto: str | None) -> tuple[int, str]:
    """``service[:port]`` after ``NODE:``: the nodePort of that Service port (and its protocol)."""
    name, _, port_s = service.partition(":")
    svc = next((sv for sv in state.services if sv.name == name), None)
    exposed = sorted({sv.name for sv in state.services if any(p.node_port for p in sv.ports)})
    if svc is None:
        raise InputError(f"--to {spec}", f"no Service named {name!r} (after the node comes a nodePort or a Service's name)",
                         f"use one of: {', '.join(exposed) or 'none has a nodePort'}, or NODE:<nodePort>")
    if port_s:
        sp = svc.port_named(port_s) or next((p for p in svc.ports if port_s.isdigit() and p.port == int(port_s)), None)
        if sp is None:
            raise InputError(f"--to {spec}", f"Service {svc.name} has no port {port_s!r}",
                             f"ports: {', '.join(p.name or str(p.port) for p in svc.ports)}")
        ports = [sp]
    else:
        ports = [p for p in svc.ports if p.node_port] or svc.ports
    if not any(p.node_port for p in ports):
        raise InputError(f"--to {spec}", f"Service {svc.name} (type {svc.type}) has no nodePort",
                         f"use its ClusterIP (--to {svc.name}) or a Service with a nodePort: {', '.join(exposed) or 'none here'}")
    if len(ports) > 1:
        raise InputError(f"--to {spec}", f"Service {svc.name} has {len(ports)} ports with a nodePort",
                         f"name one: {spec.split(':')[0]}:{svc.name}:<{'|'.join(p.name or str(p.port) for p in ports)}>")
    sp = ports[0]
    if proto is not None and proto != sp.protocol.lower():
        raise InputError(f"--to {spec}", f"Service {svc.name}'s nodePort {sp.node_port} is {sp.protocol}, not {proto}",
                         f"drop /{proto} or write /{sp.protocol.lower()}")
    return sp.node_port, sp.protocol.lower()


def resolve_destination(state: ClusterState, spec: str) -> tuple[str, int, str]:
    """``IP:PORT[/proto]``, ``service[:port]`` (ClusterIP), ``NODE:nodePort`` or
    ``NODE:service[:port]`` (that Service's nodePort on the node) -> (ip, port, proto)."""
    proto = "tcp"
    s = spec
    explicit_proto = "/" in s
    if explicit_proto:
        s, proto = s.rsplit("/", 1)
        proto = proto.lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InputError(f"--to {spec}", f"unknown protocol {proto!r}", "use tcp, udp or sctp")
    if s.count(":") > 1 and not s.startswith("["):
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            pass  # NODE:service:port
        else:
            raise InputError(f"--to {spec}", "an IP destination needs a port", f"write [IPv6]:PORT, e.g. [{s}]:80")
    if s.startswith("["):  # [IPv6]:PORT, net.JoinHostPort's form
        try:
            host, port_s = split_host_port(s)
            ipaddress.ip_address(host)
        except ValueError:
            raise InputError(f"--to {spec}", "not an [IPv6]:PORT destination", "write an IPv6 address in brackets, e.g. [fd00:10:96::a]:80")
        if not port_s:
            raise InputError(f"--to {spec}", "an IP destination needs a port", f"write [IPv6]:PORT, e.g. [{host}]:80")
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise InputError(f"--to {spec}", f"port {port_s!r} is not a port number", "write a port from 1 to 65535")
        return host, int(port_s), proto
    node_name, _, rest = s.partition(":")
    if rest and not rest.isdigit() and state.has_node(node_name):
        port, proto = _node_port(state, spec, rest, proto if explicit_proto else None)
        return state.node(node_name).internal_ip, port, proto
    host, sep, port_s = s.rpartition(":")
    if not sep:
        host, port_s = s, ""
    port = int(port_s) if port_s.isdigit() else None
    # an IP
    try:
        ipaddress.ip_address(host)
        if port is None:
            raise InputError(f"--to {spec}", "an IP destination needs a port", "write IP:PORT, e.g. 10.200.1.10:9000")
        return host, port, proto
    except ValueError:
        pass
    # a node
    for n in state.nodes:
        if n.name == host:
            if port is None:
                raise InputError(f"--to {spec}", "a node destination needs the nodePort", f"write {host}:<nodePort> or {host}:<service>")
            return n.internal_ip, port, proto
    # a service
    svc = None
    ns = None
    name = host
    if "/" in host:
        ns, name = host.split("/", 1)
    for sv in state.services:
        if sv.name == name and (ns is None or sv.namespace == ns):
            svc = sv
            break
    if svc is None:
        known = ", ".join(sorted({s.name for s in state.services} | {n.name + ':PORT' for n in state.nodes}))
        raise InputError(f"--to {spec}", "no service, node or IP by that name", f"use one of: {known}, or IP:PORT")
    if not svc.cluster_ip or svc.cluster_ip == "None":
        raise InputError(f"--to {spec}", "the service has no ClusterIP (headless)", "connect to a pod IP instead")
    if port_s and not port_s.isdigit():
        sp = svc.port_named(port_s)
        if sp is None:
            raise InputError(f"--to {spec}", f"the service has no port named {port_s!r}", f"ports: {', '.join(p.name or str(p.port) for p in svc.ports)}")
        return svc.cluster_ip, sp.port, sp.protocol.lower()
    if port is None:
        sp = svc.ports[0]
        return svc.cluster_ip, sp.port, sp.protocol.lower()
    return svc.cluster_ip, port, proto

