"""The study's kind cluster built out of network namespaces, with kube-proxy's rules in each node.

Why namespaces and not containers: the lessons are about what the *kernel* does with
kube-proxy's rules (DNAT, SNAT, conntrack, routing between nodes). Network namespaces give each
kind "container" its own interfaces, routes, sysctls, iptables and conntrack table, which is
everything a kind node has that matters here, without Docker, in well under a second.

Layout (mirrors ``data/myk8s``; see DESIGN.md section 3)::

    fabric ns  (the "docker network" 172.18.0.0/16; the docker host's side of it)
      br-kind  172.18.0.1/16   ip_forward=0: it knows no pod or Service routes
      veth<7 hex> ports, one per node and one for mypc
    node ns    (one per Node: myk8s-control-plane 172.18.0.2, worker .3, worker2 .4, worker3 .5)
      eth0     NODE_IP/16, default via 172.18.0.1
      routes   every other node's podCIDR via that node's IP            (kindnet)
      veth<8 hex> per local pod: POD_CIDR.1/32 on it,
               POD_IP/32 dev veth<8 hex> scope host                     (CNI ptp, as kindnet)
      sysctl   ip_forward=1, conf.all.route_localnet=1, conf.{all,default}.rp_filter=0
      iptables what the Lab's kube-proxy syncs write (:meth:`NetnsLab.restore`)
    pod ns     (one per scheduled Pod)
      eth0     POD_IP/24 (noprefixroute); routes as kindnet's ptp leaves them in a kind pod:
               POD_CIDR.1 dev eth0 scope link; POD_CIDR via .1; default via .1
      server   whoami (port 80) or echo (8080) from :mod:`kslab.netns.servers`
    mypc ns    172.18.0.100/16 on the bridge, default via 172.18.0.1 (the external client);
               VIP/32 via the LB for every LoadBalancer ingress IP
    node ns    also kube-proxy's listeners (:mod:`kslab.netns.servers` ``--kind kube-proxy``):
               healthz on 10256 and every healthCheckNodePort, answering from the node's last sync
    lb ns      (once a LoadBalancer Service has an ingress IP) 172.18.255.254/16 on the bridge:
               the cloud load balancer and its prober (:mod:`kslab.netns.lbprober`)

Dual-stack (a cluster with ``ipFamily: dual``, e.g. ``data/myk8s-dualstack``): every namespace
above also gets its IPv6 address and routes, as kind and kindnet give them (``Layout.dual_stack``)::

    fabric ns  br-kind also fc00:f853:ccd:e793::1/64 (kind's IPv6 ULA for the network "kind")
    node ns    eth0 also NODE_IP6/64 (fc00:f853:ccd:e793::2..), default via ::1; every other
               node's IPv6 podCIDR (fd00:10:244:N::/64) via that node's IPv6 address; per local
               pod POD_CIDR6::1/128 on its veth and POD_IP6/128 dev veth<8 hex>;
               sysctl conf.all.forwarding=1 (IPv6's ip_forward)
    pod ns     eth0 also POD_IP6/64 noprefixroute; POD_CIDR6::1/128 dev eth0; default via it
    mypc ns    also fc00:f853:ccd:e793::100/64, default via ::1

Every IPv6 address is added ``nodad`` and every namespace runs with ``accept_dad=0`` (a pod's
eth0, made in the node's namespace, gets its own): without it a new address stays "tentative"
for a second or two and the first connections fail. IPv6 has no ``route_localnet`` (kube-proxy
writes ``! -d ::1/128``). The IPv6 proxier's syncs go to ip6tables (``restore(..., family=6)``),
conntrack lists each family (``-f ipv4|ipv6``), the servers listen on ``0.0.0.0`` and ``::``
(an IPv6-only socket beside the IPv4 one). Left IPv4 only: the cloud load balancer and its prober,
kube-proxy's healthz and health check listeners (they follow the IPv4 proxier's syncs), and the
nftables mode's kernel trace. An IPv6-only cluster is refused (one line).

Hairpin: with ptp there is no pod bridge, so a pod that reaches itself through a ClusterIP
goes pod -> node -> back out the same veth. It only works because kube-proxy's
``-s POD_IP -j KUBE-MARK-MASQ`` rule masquerades it to the veth's ``.1``; without the rule the
pod receives a packet from its own address and drops it as a martian.

Names: every namespace is ``kslab-<8 hex>-<role>`` (``fabric``, ``mypc``, ``node-<name>``,
``pod-<name>`` or ``pod-<k8s ns>.<name>``), so several labs can run side by side (their
addresses never meet) and ``down`` finds everything a lab made by its prefix. The prefix and
everything started are recorded in ``/run/kslab/<kslab-id>/state.json`` (``$KSLAB_RUN_DIR``
overrides ``/run/kslab``) *before* anything is created, so a crashed run can be cleaned up.

Nothing is created or changed in the root network namespace: the only commands run there are
``ip netns add/del/list``; every other command runs under ``ip netns exec`` / ``ip -n``. Every
interface is created inside a lab namespace (``ip -n NS link add ... peer ... netns OTHER``).
:mod:`kslab.netns.rootcheck` proves it in the tests.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ..dataplane.reasons import hairpin_without_masquerade
from ..dataplane.trace import Trace
from ..errors import EnvironmentProblem, InputError
from ..model import ClusterState
from ..xtables import kernel
from ..nft import kernel as nft_kernel
from ..proxy.iptables import cleanup as iptables_cleanup
from ..proxy.iptables import node as iptables_node
from . import client as _client
from . import lbprober, records
from .ktrace import kernel_trace
from .nfttrace import nft_kernel_trace
from .layout import BRIDGE, PREFIX_ROOT, Layout, NodeLayout, PodLayout, _hash, plan
from .lbprober import LBConfig, LBNode, LBSpec
from .processes import kill_namespace_processes, proc_start
from .records import LabRecord, cleanup_crashed, delete_namespaces, read_records, remove_lab, run_dir

_PODS_PER_WORKER = 8  # thread pool width for per-namespace commands

NODE_SYSCTLS = {
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",  # before the interfaces exist: they copy 'default'
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/route_localnet": "1",  # kube-proxy's localhost NodePorts need it
}
FABRIC_SYSCTLS = {
    "net/ipv4/ip_forward": "0",  # the docker host routes nothing to pods or Services
    "net/bridge/bridge-nf-call-iptables": "0",  # a plain switch (only present with br_netfilter)
    "net/bridge/bridge-nf-call-ip6tables": "0",
    "net/bridge/bridge-nf-call-arptables": "0",
}
OTHER_SYSCTLS = {"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0"}
LB_SYSCTLS = {
    **OTHER_SYSCTLS,
    "net/ipv4/ip_forward": "1",  # it forwards the VIP's packets to the nodes, unchanged
    "net/ipv4/conf/all/send_redirects": "0",  # in and out on eth0: no ICMP redirect to the client
    "net/ipv4/conf/default/send_redirects": "0",
}
# a dual-stack lab's namespaces also get these (set before the interfaces exist, so every one
# copies 'default'): no duplicate address detection, so an IPv6 address is usable at once instead
# of "tentative" for a second or two (the addresses also say ``nodad``), and IPv6 on. IPv6 has no
# route_localnet: kube-proxy writes ``! -d ::1/128`` (no localhost NodePorts on IPv6).
IPV6_SYSCTLS = {
    "net/ipv6/conf/all/disable_ipv6": "0",
    "net/ipv6/conf/default/disable_ipv6": "0",
    "net/ipv6/conf/all/accept_dad": "0",
    "net/ipv6/conf/default/accept_dad": "0",
}
NODE_SYSCTLS6 = {**IPV6_SYSCTLS, "net/ipv6/conf/all/forwarding": "1", "net/ipv6/conf/default/forwarding": "1"}
PROXY_HEALTHZ_PORT = 10256  # kube-proxy's healthz (kslab.loadbalancer.PROXY_HEALTHZ_PORT)
FAMILIES = (4, 6)


# --------------------------------------------------------------------------------------------
# Commands inside namespaces


def _sysctl_script(values: dict[str, str]) -> str:
    """Shell lines writing /proc/sys inside the namespace (optional keys skipped if absent)."""
    return "".join(f"[ ! -e /proc/sys/{k} ] || echo {v} > /proc/sys/{k}; " for k, v in values.items())


def _configure(ns: str, ip_lines: Sequence[str], sysctls: dict[str, str] | None = None, what: str = "") -> None:
    """Sysctls then ``ip -batch`` inside ``ns``, as one ``ip netns exec`` (speed: one process pair)."""
    script = "set -e; " + _sysctl_script(sysctls or {}) + "exec ip -batch -"
    result = kernel.run_in_namespace(ns, ["sh", "-c", script], stdin="\n".join(ip_lines) + "\n")
    if result.returncode != 0:
        raise EnvironmentProblem(f"setting up {what or ns} failed: {kernel.one_line(result.stderr or result.stdout)}")


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` in threads (the work is in subprocesses); re-raise the first error."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(len(items), _PODS_PER_WORKER)) as pool:
        futures = [pool.submit(fn, i) for i in items]
        return [f.result() for f in futures]

@dataclass(frozen=True)
class ConntrackEntry:
    """One line of ``conntrack -L``: the original direction's tuple and the reply's (after NAT)."""

    proto: str
    state: str  # SYN_SENT, ESTABLISHED, TIME_WAIT ... ("" for udp)
    orig: tuple[str, str, int, int]  # src, dst, sport, dport
    reply: tuple[str, str, int, int]


def parse_conntrack(text: str) -> list[ConntrackEntry]:
    """``conntrack -L`` output (``tcp 6 117 SYN_SENT src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=..``):
    the first ``src/dst/sport/dport`` group is the original tuple, the second the reply."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or not words[1].isdigit():
            continue  # the "conntrack vX: N flow entries" summary, or noise
        state = words[3] if "=" not in words[3] else ""
        groups: list[dict[str, str]] = [{}]
        for w in words:
            key, eq, value = w.partition("=")
            if not eq or key not in ("src", "dst", "sport", "dport"):
                continue
            if key in groups[-1]:
                groups.append({})
            groups[-1][key] = value
        if len(groups) < 2 or any(len(g) < 4 for g in groups[:2]):
            continue
        o, r = groups[0], groups[1]
        out.append(ConntrackEntry(words[0], state, (o["src"], o["dst"], int(o["sport"]), int(o["dport"])),
                                  (r["src"], r["dst"], int(r["sport"]), int(r["dport"]))))
    return out


# --------------------------------------------------------------------------------------------
# The lab


@dataclass
class PodStatus:
    name: str
    node: str
    ip: str
    ns: str
    server: str | None
    ports: tuple[int, ...]
    pid: int | None
    alive: bool
    namespace_exists: bool


@dataclass
class LabStatus:
    id: str
    prefix: str
    phase: str
    owner_pid: int | None
    detached: bool
    namespaces: dict[str, bool]  # expected namespace -> exists
    pods: list[PodStatus]
    rules: dict[str, dict[str, int]]  # node -> table -> rules in the kernel (ip6tables' as "nat6"... in a dual-stack lab)
    sync_seconds: dict[str, float]
    up_seconds: float | None
    unexpected: list[str]  # namespaces with the lab's prefix it did not plan
    daemons: dict[str, bool] = field(default_factory=dict)  # kube-proxy/NODE, lb-prober -> running

    def text(self) -> str:
        owner = "detached" if self.detached else f"owned by pid {self.owner_pid}"
        up = f", up in {self.up_seconds:.2f} s" if self.up_seconds is not None else ""
        missing = [n for n, ok in self.namespaces.items() if not ok]
        lines = [f"lab {self.id} ({self.phase}, {owner}{up}): {len(self.namespaces) - len(missing)}/{len(self.namespaces)} namespaces"]
        if missing:
            lines.append("  missing: " + ", ".join(missing))
        if self.unexpected:
            lines.append("  unexpected: " + ", ".join(self.unexpected))
        for node, counts in self.rules.items():
            sync = self.sync_seconds.get(node)
            lines.append(f"  node {node:<22} rules filter {counts.get('filter', 0):>4} nat {counts.get('nat', 0):>4}"
                         + (f" nft {counts['nft']:>4}" if "nft" in counts else "")
                         + (f"  ip6 filter {counts.get('filter6', 0):>4} nat {counts.get('nat6', 0):>4}" if "nat6" in counts else "")
                         + (f"  (last sync {sync * 1000:.0f} ms)" if sync is not None else ""))
        if self.daemons:
            lines.append("  daemons: " + ", ".join(f"{k} ({'running' if ok else 'STOPPED'})" for k, ok in self.daemons.items()))
        for p in self.pods:
            server = f"{p.server} :{','.join(map(str, p.ports))} pid {p.pid} {'alive' if p.alive else 'DEAD'}" if p.server else "no server"
            lines.append(f"  pod  {p.name:<30} {p.ip:<12} on {p.node:<20} {server}")
        return "\n".join(lines)


class NetnsLab:
    """The real-kernel lab for one :class:`ClusterState` (see the module docstring).

    ``with NetnsLab(state) as lab: ...`` brings it up and always down. ``up()`` returns once
    every server answers. ``down()`` is idempotent and also removes the leftovers of crashed
    runs. A lab brought up by this process is taken down at exit and on SIGTERM/SIGINT unless
    :meth:`detach` was called (``kslab netns up`` leaves its lab running that way);
    :meth:`attach` opens a running lab from its record. ``handle_signals=False`` leaves
    SIGTERM/SIGINT alone (a notebook kernel's "interrupt" is SIGINT and should stop a cell,
    not remove the lab); atexit and ``close()`` still apply.
    """

    def __init__(
        self,
        state: ClusterState,
        *,
        backend: str | None = None,
        health_timeout: float = 5.0,
        servers: bool = True,
        manifests: Sequence[str] | None = None,
        seed: int | None = None,
        directory: Path | str | None = None,
        handle_signals: bool = True,
    ):
        self.state = state
        self.handle_signals = handle_signals
        self.backend = backend
        self.health_timeout = health_timeout
        self.start_servers = servers
        self.id = f"{PREFIX_ROOT}{secrets.token_hex(4)}"
        self.prefix = self.id + "-"
        self.directory = Path(directory) if directory else run_dir()
        self.layout: Layout = plan(state, self.prefix)
        self.up_seconds: float | None = None
        self.owned = True
        self._record: LabRecord | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._nfacct = True
        self._manifests = list(manifests) if manifests else None
        self._seed = seed
        self._clients: dict[str, str] = {}  # extra client IP -> its namespace
        self._record_lock = threading.Lock()
        # node -> the proxy mode whose rules it holds ("iptables" | "nftables"); unknown after attach
        self._proxy_modes: dict[str, str] = {}
        self.nft_cleanup_failures: dict[str, int] = {}  # node -> failed stale-chain cleanup transactions
        self._init_lb_state()

    def _init_lb_state(self) -> None:
        self._hosts: set[str] = set()  # namespaces of extra clients on the bridge (they route VIPs via the LB)
        self._hc_ports: dict[str, tuple[Any, ...]] = {}  # node -> (healthCheckNodePorts, addresses) its kube-proxy listens on
        self._hc_generation = 0
        self._hc_changed = 0.0  # CLOCK_MONOTONIC of the last health answer change (a sync)
        self._lb_specs: list[LBSpec] = []
        self._lb_generation = 0
        self._lb_changed = 0.0
        self._vip_routes: set[str] = set()
        self._lb_lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        if self._record is None:
            self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NetnsLab({self.id}, {len(self.layout.nodes)} nodes, {len(self.layout.pods)} pods, {self.phase})"

    @property
    def phase(self) -> str:
        return self._record.phase if self._record else "down"

    @property
    def record_dir(self) -> Path:
        return self.directory / self.id

    @staticmethod
    def check_environment(backend: str | None = None) -> None:
        """Raise EnvironmentProblem (one line) unless this machine can run the lab."""
        kernel.require_root()
        kernel.require_tool("ip")
        kernel.iptables_tools(backend)

    def up(self) -> NetnsLab:
        """Build the namespaces, start and check the servers. The nodes' iptables start empty:
        kube-proxy's rules are loaded by :meth:`restore` (the Lab's Proxiers, :mod:`kslab.dataplane.netns`)."""
        if self._record is not None:
            return self
        self.check_environment(self.backend)
        t0 = time.perf_counter()
        cleanup_crashed(self.directory)
        self._record = LabRecord(
            id=self.id, prefix=self.prefix, owner_pid=os.getpid(), owner_start=proc_start(os.getpid()), phase="building",
            created=time.time(), path=self.record_dir / "state.json", layout=self.layout.to_json(),
            manifests=self._manifests, seed=self._seed, backend=self.backend,
        )
        self._record.save()  # before anything exists: a crash from here on is recoverable
        records.register(self)
        try:
            self._nfacct = kernel.nfacct_problem(self.backend) is None
            self._build()
            if self.start_servers:
                self._launch_servers(self.layout.pods)
                self._launch_kube_proxies()
            if self.start_servers:
                self._check_servers(self.layout.pods)
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.perf_counter() - t0
        self._record.phase = "up"
        self._record.up_seconds = self.up_seconds
        self._record.save()
        return self

    def down(self) -> None:
        """Stop the servers, delete every namespace with this lab's prefix, forget the record,
        then remove the leftovers of crashed runs. Safe to call any number of times."""
        def teardown() -> None:
            self._stop_servers()
            remove_lab(self.prefix, self.record_dir)
            self._record = None
            self._forget()
            cleanup_crashed(self.directory)

        records.guarded_teardown(teardown)

    def close(self) -> None:
        """Take the lab down if this object owns it; an attached lab is only let go of."""
        if self.owned:
            self.down()
        else:
            self._forget()

    def detach(self) -> None:
        """Leave the lab running after this process exits (``kslab netns up``): no atexit or
        signal teardown; ``kslab netns down`` removes it."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        self._record.owner_pid = None
        self._record.owner_start = None
        self._record.save()
        self.owned = False
        for proc in self._procs.values():
            proc.returncode = 0  # never reaped by us: keep Popen.__del__ quiet
        self._procs.clear()
        self._forget()

    def _forget(self) -> None:
        records.forget(self)

    @classmethod
    def attach(cls, state: ClusterState | None = None, lab_id: str | None = None, *, directory: Path | str | None = None) -> NetnsLab:
        """Open a running lab from its record (the only one, or ``lab_id``), not owning it:
        ``close()`` leaves it running, ``down()`` still removes it. ``state`` is needed only
        to :meth:`resync`."""
        directory = Path(directory) if directory else run_dir()
        records = [r for r in read_records(directory) if r.phase == "up" and (lab_id is None or r.id == lab_id)]
        if not records:
            raise EnvironmentProblem("no netns lab is running; start one with 'kslab netns up'")
        if len(records) > 1:
            raise EnvironmentProblem("several netns labs are running (" + ", ".join(r.id for r in records) + "); name one")
        rec = records[0]
        lab = cls.__new__(cls)
        lab.state = state if state is not None else ClusterState()
        lab.backend = rec.backend
        lab.health_timeout = 5.0
        lab.start_servers = bool(rec.servers)
        lab.id, lab.prefix, lab.directory = rec.id, rec.prefix, directory
        lab.layout = Layout.from_json(rec.layout or {})
        lab.up_seconds, lab.owned, lab.handle_signals = rec.up_seconds, False, False
        lab._record, lab._procs, lab._nfacct = rec, {}, kernel.nfacct_problem(rec.backend) is None
        lab._manifests, lab._seed = rec.manifests, rec.seed
        lab._clients, lab._record_lock = {}, threading.Lock()
        lab._init_lb_state()
        return lab

    # ---- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = self.layout
        _parallel(kernel.netns_add, lay.namespaces())
        # 1. the bridge, then every node's and mypc's eth0 (their peers land in the fabric),
        #    node routes, and the node ends of the pod veths (their peers land in the pods)
        dual = lay.dual_stack
        prefix6 = ipaddress.ip_network(lay.fabric_cidr6).prefixlen if dual else 0
        _configure(lay.fabric_ns, [
            "link set lo up",
            f"link add {BRIDGE} type bridge",
            f"addr add {lay.gateway}/{ipaddress.ip_network(lay.fabric_cidr).prefixlen} dev {BRIDGE}",
            *([f"addr add {lay.gateway6}/{prefix6} dev {BRIDGE} nodad"] if dual else []),
            f"link set {BRIDGE} up",
        ], {**FABRIC_SYSCTLS, **(IPV6_SYSCTLS if dual else {})}, "the fabric")
        mypc_lines = [
            "link set lo up",
            f"link add eth0 type veth peer name {lay.mypc_if} netns {lay.fabric_ns}",
            f"addr add {lay.mypc_ip}/{ipaddress.ip_network(lay.fabric_cidr).prefixlen} dev eth0",
            *([f"addr add {lay.mypc_ip6}/{prefix6} dev eth0 nodad"] if dual else []),
            "link set eth0 up",
            f"route add default via {lay.gateway} dev eth0",
            *([f"route add default via {lay.gateway6} dev eth0"] if dual else []),
        ]
        jobs: list[Callable[[], None]] = [functools.partial(self._configure_node, n) for n in lay.nodes]
        jobs.append(functools.partial(_configure, lay.mypc_ns, mypc_lines, self._other_sysctls(), "mypc"))
        _parallel(lambda job: job(), jobs)
        # 2. bridge ports, and each pod's side of its veth
        ports = [n.fabric_if for n in lay.nodes] + [lay.mypc_if]
        bridge_lines = [line for p in ports for line in (f"link set {p} master {BRIDGE}", f"link set {p} up")]
        jobs = [functools.partial(_configure, lay.fabric_ns, bridge_lines, None, "the bridge ports")]
        jobs += [functools.partial(self._configure_pod, p) for p in lay.pods]
        _parallel(lambda job: job(), jobs)

    def _other_sysctls(self) -> dict[str, str]:
        """The sysctls of a namespace that is not a node (mypc, a pod, a client)."""
        return {**OTHER_SYSCTLS, **(IPV6_SYSCTLS if self.layout.dual_stack else {})}

    def _configure_node(self, n: NodeLayout) -> None:
        lay = self.layout
        lines = [
            "link set lo up",
            f"link add eth0 type veth peer name {n.fabric_if} netns {lay.fabric_ns}",
            f"addr add {n.ip}/{n.prefix_len} dev eth0",
            *([f"addr add {n.ip6}/{n.prefix_len6} dev eth0 nodad"] if n.ip6 else []),
            "link set eth0 up",
            f"route add default via {lay.gateway} dev eth0",
            *([f"route add default via {lay.gateway6} dev eth0"] if n.ip6 else []),
        ]
        lines += [f"route add {o.pod_cidr} via {o.ip} dev eth0" for o in lay.nodes if o.name != n.name]
        lines += [f"route add {o.pod_cidr6} via {o.ip6} dev eth0" for o in lay.nodes if o.name != n.name and n.ip6 and o.pod_cidr6]
        for p in lay.pods:
            if p.node == n.name:
                lines += self._host_veth_lines(p)
        _configure(n.ns, lines, {**NODE_SYSCTLS, **(NODE_SYSCTLS6 if n.ip6 else {})}, f"node {n.name}")

    @staticmethod
    def _host_veth_lines(p: PodLayout) -> list[str]:
        """The node's side of a pod's veth, as the ptp plugin leaves it (IPv6: the gateway /128
        on the veth, the pod's /128 routed to it)."""
        lines = [f"link add {p.host_if} type veth peer name eth0 netns {p.ns}"]
        if p.ip:
            lines.append(f"addr add {p.gateway}/32 dev {p.host_if}")
        if p.ip6:
            lines.append(f"addr add {p.gateway6}/128 dev {p.host_if} nodad")
        lines.append(f"link set {p.host_if} up")
        if p.ip:
            lines.append(f"route add {p.ip}/32 dev {p.host_if} scope host")
        if p.ip6:
            lines.append(f"route add {p.ip6}/128 dev {p.host_if}")
        return lines

    def _configure_pod(self, p: PodLayout) -> None:
        lines = ["link set lo up"]
        if p.ip:
            lines.append(f"addr add {p.ip}/{p.prefix_len} dev eth0 noprefixroute")
        if p.ip6:
            lines.append(f"addr add {p.ip6}/{p.prefix_len6} dev eth0 nodad noprefixroute")
        lines.append("link set eth0 up")
        if p.ip:
            lines += [
                f"route add {p.gateway}/32 dev eth0 scope link src {p.ip}",
                f"route add {ipaddress.ip_network(f'{p.ip}/{p.prefix_len}', strict=False)} via {p.gateway} dev eth0 src {p.ip}",
                f"route add default via {p.gateway} dev eth0",
            ]
        if p.ip6:
            lines += [
                f"route add {p.gateway6}/128 dev eth0 src {p.ip6}",
                f"route add {ipaddress.ip_network(f'{p.ip6}/{p.prefix_len6}', strict=False)} via {p.gateway6} dev eth0 src {p.ip6}",
                f"route add default via {p.gateway6} dev eth0",
            ]
        # eth0 came from the node's namespace before these sysctls: it copied accept_dad there, so it gets its own
        sysctls = {**self._other_sysctls(), **({"net/ipv6/conf/eth0/accept_dad": "0"} if self.layout.dual_stack else {})}
        _configure(p.ns, lines, sysctls, f"pod {p.name}")

    # ---- servers -------------------------------------------------------------------------------
    def _launch_servers(self, pods: Iterable[PodLayout]) -> None:
        assert self._record is not None
        ip = kernel.require_tool("ip")
        env = _client.helper_env()
        for p in pods:
            if not p.server:
                continue
            log = self.record_dir / f"{p.ns[len(self.prefix):]}.log"
            argv = [ip, "netns", "exec", p.ns, sys.executable, "-m", "kslab.netns.servers",
                    "--kind", p.server, "--name", p.name, "--ip", p.ip, *(["--ip", p.ip6] if p.ip6 else []), *[a for port in p.ports for a in ("--port", str(port))]]
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=env, close_fds=True)
            self._procs[p.name] = proc
            self._record.servers[p.name] = {"pid": proc.pid, "ns": p.ns, "kind": p.server, "ports": list(p.ports), "log": str(log),
                                            "start": proc_start(proc.pid)}
        self._record.save()

    def _check_servers(self, pods: Iterable[PodLayout]) -> None:
        """From each node, GET every local pod's ports until 200; one clear line if one fails."""
        by_node: dict[str, list[PodLayout]] = {}
        for p in pods:
            if p.server:
                by_node.setdefault(p.node, []).append(p)

        def check(node: str) -> list[str]:
            targets = {_client.join_host_port(ip, port): p for p in by_node[node] for port in p.ports
                       for ip in (p.ip, p.ip6) if ip}
            results = _client.health_check(self.layout.node(node).ns, list(targets), deadline=self.health_timeout)
            problems = []
            for target, res in results.items():
                if not res.get("ok"):
                    p = targets[target]
                    problems.append(f"pod {p.name}: {p.server} server on {target} did not answer 200 within "
                                    f"{self.health_timeout:g} s from node {node} ({res.get('error')}){self._server_log_tail(p)}")
            return problems

        problems = [line for lines in _parallel(check, sorted(by_node)) for line in lines]
        if problems:
            raise EnvironmentProblem(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))

    def _server_log_tail(self, p: PodLayout) -> str:
        proc = self._procs.get(p.name)
        if proc is None or proc.poll() is None:
            return ""
        info = (self._record.servers.get(p.name) if self._record else None) or {}
        try:
            tail = Path(info["log"]).read_text(errors="replace").strip().splitlines()[-1:]
        except (OSError, KeyError):
            tail = []
        return f"; it exited with status {proc.returncode}" + (f": {tail[0]}" if tail else "")

    def _stop_servers(self) -> None:
        """SIGTERM each server's process group, give it a moment, then SIGKILL what is left."""
        procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 1.0
        for proc in procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self._procs.clear()

    def servers_alive(self) -> dict[str, bool]:
        """Pod name -> whether its server process is running."""
        if self._record is None:
            return {}
        out = {}
        for name, info in self._record.servers.items():
            start = proc_start(int(info["pid"]))
            out[name] = start is not None and (info.get("start") is None or start == info["start"])
        return out

    # ---- kube-proxy's listeners and the cloud load balancer ------------------------------------
    def _spawn(self, key: str, ns: str, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        """Start a daemon (not a pod's server) inside ``ns``, recorded before it can outlive us."""
        assert self._record is not None
        ip = kernel.require_tool("ip")
        with open(log, "wb") as out:
            proc = subprocess.Popen([ip, "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=_client.helper_env(), close_fds=True)
        self._procs[key] = proc
        with self._record_lock:
            self._record.daemons[key] = {"pid": proc.pid, "ns": ns, "log": str(log), "start": proc_start(proc.pid)}
            self._record.save()
        return proc

    def _track(self, key: str, proc: subprocess.Popen[bytes], ns: str, log: Path) -> None:
        """Record a process started inside ``ns`` (an iperf3 client) as the lab's, like :meth:`_spawn`'s."""
        assert self._record is not None
        self._procs[key] = proc
        with self._record_lock:
            self._record.daemons[key] = {"pid": proc.pid, "ns": ns, "log": str(log), "start": proc_start(proc.pid)}
            self._record.save()

    def _untrack(self, *keys: str) -> None:
        """Forget processes that ended (killed and reaped by their owner): an iperf3 test's."""
        for key in keys:
            self._procs.pop(key, None)
        if self._record is None:
            return
        with self._record_lock:
            if [self._record.daemons.pop(key) for key in keys if key in self._record.daemons]:
                self._record.save()

    def iperf3(self, client: str, server_pod: str, host: str, options: Any, server_port: int, *,
               progress: Callable[[float], None] | None = None, json: bool = True) -> Any:
        """One real iperf3 test from ``client`` to ``host`` with the server in ``server_pod``
        (:func:`kslab.netns.iperf.run_iperf3`: both processes the lab's, always stopped)."""
        from .iperf import run_iperf3

        return run_iperf3(self, client=client, server_pod=server_pod, host=host, options=options, server_port=server_port,
                          progress=progress, json=json)

    def _hc_state_path(self, node: str) -> Path:
        return self.record_dir / f"kube-proxy-{node}.json"

    def _launch_kube_proxies(self) -> None:
        """kube-proxy's listeners on every node: healthz on 10256 now, healthCheckNodePorts as the
        node's syncs add them (:meth:`set_health`)."""
        for n in self.layout.nodes:
            path = self._hc_state_path(n.name)
            lbprober._write_json(str(path), {"generation": 0, "proxy_healthy": True, "ports": {}})
            self._hc_ports[n.name] = ((), None)
            self._spawn(f"kube-proxy/{n.name}", n.ns, [sys.executable, "-m", "kslab.netns.servers", "--kind", "kube-proxy",
                                                       "--name", n.name, "--port", str(PROXY_HEALTHZ_PORT), "--state", str(path)],
                        self.record_dir / f"kube-proxy-{n.name}.log")

    def set_health(self, node: str, answers: dict[int, Any], *, addresses: Iterable[str] | None = None,
                   proxy_healthy: bool = True, timeout: float = 5.0) -> None:
        """What ``node``'s kube-proxy answers on its healthCheckNodePorts after a sync: hcnp ->
        :class:`kslab.healthcheck.HealthResponse`, listening on ``addresses`` (None: every
        address, upstream's default; else the node IPs inside nodePortAddresses). Written where
        the node's listener reads it per request; when the ports or addresses change the listener
        opens and closes them (SIGHUP) and this returns once it did (``SyncServices``)."""
        if self._record is None or not self.start_servers:
            return
        key = f"kube-proxy/{node}"
        with self._lb_lock:
            self._hc_generation += 1
            generation = self._hc_generation
        path = self._hc_state_path(node)
        ports = {str(port): {"status": a.status, "headers": [list(h) for h in a.headers], "body": a.body}
                 for port, a in sorted(answers.items())}
        listen = sorted(addresses) if addresses is not None else None
        lbprober._write_json(str(path), {"generation": generation, "proxy_healthy": proxy_healthy, "ports": ports,
                                         "addresses": listen, "last_updated_ns": time.time_ns()})
        self._hc_changed = time.monotonic()
        wanted = (tuple(sorted(answers)), tuple(listen) if listen is not None else None)
        if wanted == self._hc_ports.get(node, ((), None)) or key not in self._record.daemons:
            return
        ack_path = Path(f"{path}.ack")
        deadline = time.monotonic() + timeout
        signalled = False
        while True:
            try:
                ack = json.loads(ack_path.read_text())
            except (OSError, ValueError):
                ack = None
            if ack is not None and ack.get("generation") is not None and ack["generation"] >= generation:
                if ack.get("errors"):
                    where, why = next(iter(ack["errors"].items()))
                    raise EnvironmentProblem(f"kube-proxy's health check server on {node} could not listen on {where}: {why}")
                self._hc_ports[node] = wanted
                self._hc_changed = time.monotonic()  # the new listeners are up only now: a probe before this was refused
                return
            if ack is not None and not signalled:  # the listener is up (its first ack): ask it to re-read
                os.kill(int(self._record.daemons[key]["pid"]), signal.SIGHUP)
                signalled = True
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"kube-proxy's health check server on {node} did not take the new ports "
                                         f"{list(wanted[0])} within {timeout:g} s (log: {self.record_dir / f'kube-proxy-{node}.log'})")
            time.sleep(0.01)

    @property
    def load_balancer(self) -> bool:
        """Whether the load balancer namespace exists."""
        return bool(self._record and self._record.load_balancer)

    def _build_lb(self) -> None:
        """The load balancer's namespace on the bridge, its per-node tables, and its prober."""
        assert self._record is not None
        lay = self.layout
        prefix_len = ipaddress.ip_network(lay.fabric_cidr).prefixlen
        nodes = self._lb_nodes()
        kernel.netns_add(lay.lb_ns)
        self._record.load_balancer = True
        self._record.save()
        _configure(lay.lb_ns, [
            "link set lo up",
            f"link add eth0 type veth peer name {lay.lb_if} netns {lay.fabric_ns}",
            f"addr add {lay.lb_ip}/{prefix_len} dev eth0",
            "link set eth0 up",
            f"route add default via {lay.gateway} dev eth0",
            *lbprober.route_lines(nodes),
        ], LB_SYSCTLS, "the load balancer")
        _configure(lay.fabric_ns, [f"link set {lay.lb_if} master {BRIDGE}", f"link set {lay.lb_if} up"], None, "the bridge")
        self._write_lb_config()
        self._spawn("lb-prober", lay.lb_ns, [sys.executable, "-m", "kslab.netns.lbprober", "--config", str(self._lb_config_path),
                                             "--state", str(self._lb_state_path)], self.record_dir / "lb-prober.log")

    @property
    def _lb_config_path(self) -> Path:
        return self.record_dir / "lb-config.json"

    @property
    def _lb_state_path(self) -> Path:
        return self.record_dir / "lb-state.json"

    def _lb_nodes(self) -> list[LBNode]:
        return [LBNode(n.name, n.ip, i) for i, n in enumerate(self.layout.nodes)]

    def _write_lb_config(self) -> None:
        config = LBConfig(generation=self._lb_generation, nodes=self._lb_nodes(), lbs=list(self._lb_specs),
                          iptables_restore=kernel.iptables_tools(self.backend).restore)
        lbprober._write_json(str(self._lb_config_path), config.to_json())

    def set_load_balancers(self, specs: Sequence[LBSpec]) -> None:
        """The cloud load balancer's listeners: one :class:`~kslab.netns.lbprober.LBSpec` per
        LoadBalancer Service with an ingress IP. The first one makes the LB namespace and starts
        its prober; every client on the bridge (mypc, the docker host, extra hosts) routes each
        VIP via the LB. No-op when nothing changed."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        specs = sorted(specs, key=lambda s: s.service)
        if specs == self._lb_specs:
            return
        self._lb_specs = specs
        self._lb_generation += 1
        self._lb_changed = time.monotonic()
        if specs and not self.load_balancer:
            self._build_lb()
        elif self.load_balancer:
            self._write_lb_config()
            info = self._record.daemons.get("lb-prober")
            if info and proc_start(int(info["pid"])) == info.get("start"):
                os.kill(int(info["pid"]), signal.SIGHUP)
        self._route_vips()

    def _route_vips(self, hosts: Iterable[str] | None = None) -> None:
        """``VIP/32 via LB_IP`` in mypc, the docker host and the extra hosts on the bridge (only
        ``hosts`` if given: a host just made gets every current VIP)."""
        vips = {s.vip for s in self._lb_specs}
        lay = self.layout
        targets = list(hosts) if hosts is not None else [lay.mypc_ns, lay.fabric_ns, *sorted(self._hosts)]
        gone = set() if hosts is not None else self._vip_routes - vips
        lines = [f"route replace {v}/32 via {lay.lb_ip}" for v in sorted(vips)] + [f"route del {v}/32" for v in sorted(gone)]
        if lines and self.load_balancer:
            for ns in targets:
                _configure(ns, lines, None, f"the routes to the load balancer in {ns}")
        if hosts is None:
            self._vip_routes = vips

    def lb_state(self) -> dict[str, Any]:
        """The prober's last state file (:class:`~kslab.netns.lbprober.ProberState` as a dict:
        ``round``, ``reloads``, ``lbs``...); ``{}`` before its first round."""
        try:
            return json.loads(self._lb_state_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_lb(self, timeout: float = 5.0) -> float:
        """Wait until the prober has finished a round that began after the last change (a
        kube-proxy sync, a new or changed LoadBalancer Service) and loaded its rules; returns
        the seconds waited (0 without a load balancer). One line if it does not within ``timeout``."""
        if not self.load_balancer or not self._lb_specs:
            return 0.0
        t0 = time.monotonic()
        since = max(self._hc_changed, self._lb_changed)
        while True:
            st = self.lb_state()
            if st.get("config_generation") == self._lb_generation and st.get("round_started", 0.0) >= since:
                if st.get("error"):
                    raise EnvironmentProblem(f"the load balancer's prober: {st['error']}")
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                info = (self._record.daemons if self._record else {}).get("lb-prober") or {}
                alive = bool(info) and proc_start(int(info["pid"])) == info.get("start")
                raise EnvironmentProblem(f"the load balancer's prober did not finish a round within {timeout:g} s"
                                         + ("" if alive else f" (it is not running; log: {self.record_dir / 'lb-prober.log'})"))
            time.sleep(0.02)

    def lb_status(self, service: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The prober's last verdict for ``service`` (``namespace/name``): ``{"probes": {node:
        status}, "healthy": [...], "spec": LBSpec}``, after its first round with the current
        configuration."""
        spec = next((s for s in self._lb_specs if s.service == service), None)
        if spec is None:
            raise InputError(f"service {service!r}", "has no load balancer in the lab",
                             "give it type LoadBalancer and status.loadBalancer.ingress[0].ip")
        t0 = time.monotonic()
        while True:
            st = self.lb_state()
            if st.get("config_generation") == self._lb_generation and service in (st.get("lbs") or {}):
                return {**st["lbs"][service], "spec": spec}
            if time.monotonic() - t0 > timeout:
                raise EnvironmentProblem(f"the load balancer's prober has not probed {service} within {timeout:g} s")
            time.sleep(0.02)

    def lb_choices(self, vip: str, port: int) -> dict[tuple[str, int], str]:
        """(client ip, client port) -> the node the load balancer sent that client's connection to
        ``vip:port``, from the LB namespace's conntrack (the mark of each connection's entry)."""
        if not self.load_balancer:
            return {}
        exe = kernel.require_tool("conntrack")
        r = kernel.run_in_namespace(self.layout.lb_ns, [exe, "-L", "-p", "tcp"])
        if r.returncode != 0:
            raise EnvironmentProblem(f"conntrack -L in the load balancer failed: {kernel.one_line(r.stderr)}")
        return lbprober.parse_lb_conntrack(r.stdout, self._lb_nodes(), vip, port)

    def lb_rules(self) -> str:
        """``iptables-save -t mangle`` of the load balancer (what the prober loaded)."""
        if not self.load_balancer:
            return ""
        return kernel.iptables_save(self.layout.lb_ns, ("mangle",), backend=self.backend)

    # ---- iptables in the nodes (kube-proxy's rules are written by the Lab's Proxiers) ----------
    @property
    def nfacct(self) -> bool:
        """Whether the nfacct counters kube-proxy creates work here (kube-proxy omits them if not)."""
        return self._nfacct

    def families(self) -> tuple[int, ...]:
        """The IP families the lab's nodes route: (4,) or, dual-stack, (4, 6)."""
        return FAMILIES if self.layout.dual_stack else (4,)

    def _check_family(self, family: int) -> int:
        """``family`` if the lab routes it; else one line."""
        if family not in self.families():
            raise InputError("family", f"the lab has no IPv{family} addresses" if family in FAMILIES else f"{family!r} is not 4 or 6",
                             "bring up a dual-stack lab (data/myk8s-dualstack) for IPv6" if family == 6 else "use 4 or 6")
        return family

    def restore(self, node: str, text: str, *, full: bool, family: int = 4) -> float:
        """Load one kube-proxy sync into ``node``: ``full`` as kube-proxy's full sync
        (:func:`kslab.proxy.iptables.node.full_sync`: jump rules ensured, nfacct counters created, the
        tables restored), else ``iptables-restore --noflush`` of a partial sync. Returns the
        seconds it took (kept in the lab's record for ``status``). A full sync on a node that held
        the nftables mode's rules first deletes ``table ip kube-proxy`` (nftables'
        ``CleanupLeftovers``, as kube-proxy started in iptables mode does). ``family`` 6: the IPv6
        proxier's sync, into ip6tables (a dual-stack lab's node runs one proxier per family)."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        ns = self.layout.node(node).ns
        self._check_family(family)
        t0 = time.perf_counter()
        if full:
            if self._proxy_modes.get(node) != "iptables":
                self._cleanup_nftables(ns)
            iptables_node.full_sync(ns, text, nfacct=self._nfacct, backend=self.backend, family=family)
        else:
            kernel.iptables_restore(ns, text, backend=self.backend, family=family)
        self._proxy_modes[node] = "iptables"
        return self._timed(node, time.perf_counter() - t0)

    def _timed(self, node: str, seconds: float) -> float:
        with self._record_lock:  # the nodes' syncs may run in parallel threads
            self._record.sync_seconds[node] = seconds
            self._record.save()
        return seconds

    def apply_nft(self, node: str, ruleset: Any) -> float:
        """Load one sync of kube-proxy's nftables mode into ``node`` (``nft -f -`` in its namespace,
        :mod:`kslab.nft.kernel`): first the separate transaction deleting the chains that went
        stale at least a second ago (``ruleset.cleanup_ops``; its failure is counted in
        :attr:`nft_cleanup_failures` and the sync goes on, as upstream logs it and retries later),
        then the sync's own transaction (``ruleset.raw_text()``; refused: ``ValueError``, the
        table as it was). A full sync on a node that held the iptables mode's rules first does
        what kube-proxy started in nftables mode does: iptables' ``CleanupLeftovers``
        (:mod:`kslab.proxy.iptables.cleanup`). Returns the seconds it took, recorded like
        :meth:`restore`'s."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        ns = self.layout.node(node).ns
        t0 = time.perf_counter()
        if not ruleset.partial and self._proxy_modes.get(node) != "nftables":
            for family in self.families():
                self._cleanup_iptables(ns, family)
        def run(text: str) -> None:
            nft_kernel.nft_apply(ns, text)

        if hasattr(ruleset, "apply_with"):  # NftRuleSet: cleanup, then the sync; a cleanup failure lands in .cleanup_error
            ruleset.apply_with(run)
            failed = bool(getattr(ruleset, "cleanup_error", None))
        else:
            failed = False
            if cleanup := nft_cleanup_text(ruleset):
                try:
                    run(cleanup)
                except (ValueError, EnvironmentProblem):
                    failed = True
            if ruleset.raw_text():
                run(ruleset.raw_text())
        if failed:
            with self._record_lock:
                self.nft_cleanup_failures[node] = self.nft_cleanup_failures.get(node, 0) + 1
        self._proxy_modes[node] = "nftables"
        return self._timed(node, time.perf_counter() - t0)

    def _cleanup_nftables(self, ns: str) -> None:
        """nftables' ``CleanupLeftovers``: ``delete table ip kube-proxy`` and ``ip6 kube-proxy``
        (absent tables are fine; without ``nft`` nothing can have made them)."""
        if nft_kernel.nft_problem() is not None:
            return
        for family in ("ip", "ip6"):
            nft_kernel.delete_table(ns, family, "kube-proxy")

    def _cleanup_iptables(self, ns: str, family: int = 4) -> None:
        """iptables' ``CleanupLeftovers`` in ``ns`` (:mod:`kslab.proxy.iptables.cleanup`): the
        jump rules deleted (``-D``; not there is fine), then kube-proxy's nat and filter chains
        flushed and deleted in one ``iptables-restore --noflush`` per table (ip6tables: ``family`` 6)."""
        tools = kernel.iptables_tools(self.backend, family)
        existing = {t: set(kernel.chains(ns, t, backend=self.backend, family=family)) for t in ("nat", "filter")}
        for jump in iptables_cleanup.cleanup_jumps():
            if jump.dst not in existing[jump.table]:
                continue  # no such chain, so no jump to it
            r = kernel.run_in_namespace(ns, [tools.iptables, "-w", "5", "-t", jump.table, "-D", jump.src, *jump.args()])
            if r.returncode not in (0, 1):  # 1: no such rule (or chain), as upstream's IsNotFoundError
                raise EnvironmentProblem(f"iptables -t {jump.table} -D {jump.src} in {ns} failed: {kernel.one_line(r.stderr)}")
        for table in ("nat", "filter"):
            text = iptables_cleanup.cleanup_restore(table, existing[table])
            if text:
                kernel.iptables_restore(ns, text, backend=self.backend, family=family)

    def proxy_mode_of(self, node: str) -> str | None:
        """The proxy mode whose rules ``node`` holds, as far as this process loaded them (None: not yet)."""
        return self._proxy_modes.get(node)

    def nft_list(self, node: str, family: int = 4) -> str:
        """``nft list table ip kube-proxy`` in ``node`` (``""`` when the table does not exist;
        ``family`` 6: the IPv6 proxier's ``table ip6 kube-proxy``)."""
        return nft_kernel.nft_list_table(self.layout.node(node).ns, _nft_family(self._check_family(family)))

    def nft_chains(self, node: str, family: int = 4) -> list[str]:
        """The chains of ``node``'s ``table ip kube-proxy`` (``nft --json list chains ip``; ``ip6`` for ``family`` 6)."""
        return nft_kernel.nft_chains(self.layout.node(node).ns, _nft_family(self._check_family(family)))

    def nft_sets(self, node: str, family: int = 4) -> list[str]:
        """The sets of ``node``'s ``table ip kube-proxy`` (the affinity sets a sync may find stale; ``ip6``: ``family`` 6)."""
        return nft_kernel.nft_sets(self.layout.node(node).ns, _nft_family(self._check_family(family)))

    def nat_chains(self, node: str, family: int = 4) -> list[str]:
        """The chains of ``node``'s nat table in the kernel (ip6tables: ``family`` 6)."""
        return kernel.chains(self.layout.node(node).ns, "nat", backend=self.backend, family=self._check_family(family))

    def save_text(self, node: str, tables: Sequence[str] = ("filter", "nat", "mangle", "raw"), family: int = 4) -> str:
        """``iptables-save`` of ``node``'s tables in the kernel (``ip6tables-save``: ``family`` 6)."""
        return kernel.iptables_save(self.layout.node(node).ns, tuple(tables), backend=self.backend, family=self._check_family(family))

    def update(self, state: ClusterState) -> dict[str, list[str]]:
        """Bring the lab in line with a changed cluster (scale, delete a pod, patch a Service):
        remove the pods that are gone or changed (their veth, namespace, server), add the new
        ones, full-resync every node, then check the new servers. Nodes cannot change (bring
        the lab down and up for that). Returns ``{"added": [...], "removed": [...]}`` pod names.
        """
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        new = plan(state, self.prefix)
        if new.nodes != self.layout.nodes:
            raise InputError("nodes", "the lab's nodes changed", "bring the lab down and up again to change nodes")
        old_pods = {p.ns: p for p in self.layout.pods}
        new_pods = {p.ns: p for p in new.pods}
        removed = [p for ns, p in old_pods.items() if new_pods.get(ns) != p]
        added = [p for ns, p in new_pods.items() if old_pods.get(ns) != p]
        for p in removed:
            self._remove_pod(p)
        self.layout = new
        self._record.layout = new.to_json()
        self._record.save()
        if added:
            _parallel(kernel.netns_add, [p.ns for p in added])
            by_node: dict[str, list[str]] = {}
            for p in added:
                by_node.setdefault(p.node, []).extend(self._host_veth_lines(p))
            _parallel(lambda item: _configure(self.layout.node(item[0]).ns, item[1], None, f"node {item[0]}"), by_node.items())
            _parallel(self._configure_pod, added)
            if self.start_servers:
                self._launch_servers(added)
        self.state = state
        if added and self.start_servers:
            self._check_servers(added)
        return {"added": [p.name for p in added], "removed": [p.name for p in removed]}

    def _remove_pod(self, p: PodLayout) -> None:
        """Stop the pod's server, delete its veth from the node side (synchronously, so the
        name is free for a pod that replaces it), then its namespace."""
        proc = self._procs.pop(p.name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_namespace_processes([p.ns])
        kernel.run_in_namespace(self.layout.node(p.node).ns, ["ip", "link", "del", p.host_if])
        delete_namespaces([p.ns])
        if self._record is not None:
            self._record.servers.pop(p.name, None)

    # ---- traffic ---------------------------------------------------------------------------------
    def namespace_of(self, name: str) -> str:
        """The network namespace of a pod, a node, ``mypc`` or ``fabric`` (the docker host)."""
        if name == "mypc":
            return self.layout.mypc_ns
        if name in ("fabric", "host"):
            return self.layout.fabric_ns
        for n in self.layout.nodes:
            if n.name == name:
                return n.ns
        matches = [p for p in self.layout.pods if p.name == name or f"{p.namespace}/{p.name}" == name]
        if len(matches) == 1:
            return matches[0].ns
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            ip = None
        if ip is not None:
            for p in self.layout.pods:
                if str(ip) in (p.ip, p.ip6):
                    return p.ns
            for n in self.layout.nodes:
                if str(ip) in (n.ip, n.ip6):
                    return n.ns
            if str(ip) in (self.layout.mypc_ip, self.layout.mypc_ip6):
                return self.layout.mypc_ns
            return self.client_namespace(str(ip))
        known = ["mypc", *(n.name for n in self.layout.nodes), *(p.name for p in self.layout.pods)]
        raise InputError(f"client {name!r}", "is not a pod, node or mypc of the lab", "use one of: " + ", ".join(known))

    def pod_ip(self, name: str, family: int = 4) -> str:
        """The pod's address of ``family`` (one line if it has none)."""
        for p in self.layout.pods:
            if p.name == name:
                if not p.ip_of(family):
                    raise InputError(f"pod {name!r}", f"has no IPv{family} address in the lab")
                return p.ip_of(family)
        raise InputError(f"pod {name!r}", "is not in the lab")

    def connect(self, src: str, ip: str, port: int, n: int = 1, *, timeout: float = 0.5, interval: float = 0.0) -> _client.ClientRun:
        """``n`` sequential real HTTP GETs from ``src`` (pod, node or mypc) to ``ip:port``."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        return _client.run_client(self.namespace_of(src), ip, port, n, timeout=timeout, interval=interval)

    def client_namespace(self, ip: str) -> str:
        """A namespace for an extra client address (the sim's "an IP as a client"): an address of
        a node's pod CIDR becomes a pod-like namespace on that node (ptp veth, no server); an
        address of the node network becomes a host on the bridge beside mypc. Made once, kept
        until the lab goes down (its name has the lab's prefix, so crash cleanup covers it)."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        clients = self._clients
        if ip in clients:
            return clients[ip]
        addr = ipaddress.ip_address(ip)
        ns = f"{self.prefix}cli-{_hash('client/' + ip, 8)}"
        if addr.version == 6:
            return self._client_namespace6(ip, addr, ns)
        home = next((n for n in self.layout.nodes if addr in ipaddress.ip_network(n.pod_cidr)), None)
        fabric = ipaddress.ip_network(self.layout.fabric_cidr)
        if home is not None and ip != home.gateway:
            p = PodLayout(name=ip, namespace="", node=home.name, ns=ns, ip=ip, prefix_len=ipaddress.ip_network(home.pod_cidr).prefixlen,
                          gateway=home.gateway, host_if="veth" + _hash("client/" + ip, 8), server=None, ports=())
            kernel.netns_add(ns)
            _configure(home.ns, self._host_veth_lines(p), None, f"node {home.name}")
            self._configure_pod(p)
        elif addr in fabric and ip != self.layout.gateway:
            port = "veth" + _hash("client/" + ip, 7)
            kernel.netns_add(ns)
            _configure(ns, ["link set lo up", f"link add eth0 type veth peer name {port} netns {self.layout.fabric_ns}",
                            f"addr add {ip}/{fabric.prefixlen} dev eth0", "link set eth0 up",
                            f"route add default via {self.layout.gateway} dev eth0"], OTHER_SYSCTLS, f"client {ip}")
            _configure(self.layout.fabric_ns, [f"link set {port} master {BRIDGE}", f"link set {port} up"], None, "the bridge")
            self._hosts.add(ns)
            self._route_vips([ns])
        else:
            raise InputError(f"client {ip!r}", "is neither in a node's pod CIDR nor on the node network",
                             "use a pod, a node, mypc, or an address of 10.10.N.0/24 or 172.18.0.0/16")
        clients[ip] = ns
        return ns

    def _client_namespace6(self, ip: str, addr: ipaddress.IPv6Address, ns: str) -> str:
        """:meth:`client_namespace` for an IPv6 address of a dual-stack lab: an IPv6-only client
        (a pod-like namespace in a node's IPv6 pod CIDR, or a host on the bridge's IPv6 network;
        no route to the IPv4 load balancer)."""
        lay = self.layout
        home = next((n for n in lay.nodes if n.pod_cidr6 and addr in ipaddress.ip_network(n.pod_cidr6)), None)
        fabric6 = ipaddress.ip_network(lay.fabric_cidr6) if lay.dual_stack else None
        if home is not None and ip != home.gateway6:
            p = PodLayout(name=ip, namespace="", node=home.name, ns=ns, ip="", prefix_len=0, gateway="",
                          host_if="veth" + _hash("client/" + ip, 8), server=None, ports=(), ip6=ip,
                          prefix_len6=ipaddress.ip_network(home.pod_cidr6).prefixlen, gateway6=home.gateway6)
            kernel.netns_add(ns)
            _configure(home.ns, self._host_veth_lines(p), None, f"node {home.name}")
            self._configure_pod(p)
        elif fabric6 is not None and addr in fabric6 and ip != lay.gateway6:
            port = "veth" + _hash("client/" + ip, 7)
            kernel.netns_add(ns)
            _configure(ns, ["link set lo up", f"link add eth0 type veth peer name {port} netns {lay.fabric_ns}",
                            f"addr add {ip}/{fabric6.prefixlen} dev eth0 nodad", "link set eth0 up",
                            f"route add default via {lay.gateway6} dev eth0"], self._other_sysctls(), f"client {ip}")
            _configure(lay.fabric_ns, [f"link set {port} master {BRIDGE}", f"link set {port} up"], None, "the bridge")
        else:
            where = " or ".join([*(n.pod_cidr6 for n in lay.nodes if n.pod_cidr6), *([lay.fabric_cidr6] if fabric6 else [])])
            raise InputError(f"client {ip!r}", "is neither in a node's IPv6 pod CIDR nor on the IPv6 node network",
                             f"use an address of {where}" if where else "this lab is IPv4 only: use an IPv4 address")
        self._clients[ip] = ns
        return ns

    def delete_rules(self, pattern: Any, nodes: Iterable[str] | None = None) -> int:
        """``iptables -t TABLE -D`` every rule whose iptables-save line matches ``pattern`` (a
        compiled regular expression) in the nodes' namespaces; returns how many. A node whose
        kube-proxy runs nftables mode (:meth:`proxy_mode_of`) also loses every rule of ``table ip
        kube-proxy`` whose ``CHAIN RULE`` line (``nft -a list table`` read back,
        :meth:`kslab.nft.state.NftTable.rules_matching`, the simulator's selection) matches, in
        one ``nft delete rule ip kube-proxy CHAIN handle N`` transaction."""
        import shlex

        count = 0
        for name in (list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]):
            ns = self.layout.node(name).ns
            if self._proxy_modes.get(name) == "nftables":
                count += self._delete_nft_rules(ns, pattern)
            for family in self.families():  # a dual-stack node: ip6tables too
                tools = kernel.iptables_tools(self.backend, family)
                table = ""
                for line in kernel.iptables_save(ns, ("raw", "mangle", "filter", "nat"), backend=self.backend, family=family).splitlines():
                    if line.startswith("*"):
                        table = line[1:]
                    elif line.startswith("-A ") and pattern.search(line):
                        r = kernel.run_in_namespace(ns, [tools.iptables, "-w", "5", "-t", table, "-D", *shlex.split(line)[1:]])
                        if r.returncode != 0:
                            raise EnvironmentProblem(f"iptables -D in {ns} failed: {kernel.one_line(r.stderr)}")
                        count += 1
        return count

    def _delete_nft_rules(self, ns: str, pattern: Any) -> int:
        from ..nft.state import NftState

        listing = nft_kernel.nft_list_table(ns, handles=True)
        if not listing:
            return 0
        state = NftState()
        state.load_listing(listing)
        table = state.table()
        rules = table.rules_matching(pattern)
        if rules:
            nft_kernel.nft_apply(ns, table.delete_rules_text(rules))
        return len(rules)

    def flush_conntrack(self, nodes: Iterable[str] | None = None) -> int:
        """``conntrack -F`` in the nodes' namespaces (default all); returns how many entries went.

        Failed connections leave entries behind (SYN_SENT, two minutes): a new connection that
        happens to reuse a source port follows the old entry's NAT, not the current rules."""
        exe = kernel.require_tool("conntrack")
        total = 0
        for name in (list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]):
            ns = self.layout.node(name).ns
            count = kernel.run_in_namespace(ns, [exe, "-C"])
            r = kernel.run_in_namespace(ns, [exe, "-F"])
            if r.returncode != 0 or count.returncode != 0:
                raise EnvironmentProblem(f"conntrack -F on {name} failed: {kernel.one_line(r.stderr or count.stderr)}")
            total += int(count.stdout.strip() or 0)
        return total

    def conntrack_entries(self, node: str, *, orig_src: str | None = None, family: int | None = None) -> list[ConntrackEntry]:
        """``conntrack -L -p tcp -f ipv4|ipv6 [-s ORIG_SRC]`` in a node's namespace, parsed (``family``
        None: the family of ``orig_src``, else IPv4)."""
        exe = kernel.require_tool("conntrack")
        family = family or (6 if orig_src and ":" in orig_src else 4)
        argv = [exe, "-L", "-p", "tcp", "-f", f"ipv{family}", *(["-s", orig_src] if orig_src else [])]  # -L alone lists both
        r = kernel.run_in_namespace(self.layout.node(node).ns, argv)
        if r.returncode != 0:
            raise EnvironmentProblem(f"conntrack -L on {node} failed: {kernel.one_line(r.stderr)}")
        return parse_conntrack(r.stdout)

    def accept_local(self, pod: str) -> bool:
        """Whether a pod accepts packets from its own addresses on eth0 (``IN_DEV_ACCEPT_LOCAL``:
        ``conf/all/accept_local`` or ``conf/eth0/accept_local``; both 0 by default)."""
        r = kernel.run_in_namespace(self.namespace_of(pod), ["cat", "/proc/sys/net/ipv4/conf/all/accept_local",
                                                             "/proc/sys/net/ipv4/conf/eth0/accept_local"])
        if r.returncode != 0:
            raise EnvironmentProblem(f"reading accept_local in {pod} failed: {kernel.one_line(r.stderr)}")
        return any(v.strip() == "1" for v in r.stdout.split())

    def explain_failures(self, client: str, dst: str, port: int, locals_: Iterable[str | None]) -> dict[str, str]:
        """Why connections from the pod ``client`` to ``dst:port`` that got no answer failed, by the
        kernel's own state: for each one's local ``ip:port``, the reason its node's conntrack entry
        shows. A hairpin without masquerade is an entry DNATed to the client itself with the source
        unchanged (``reply src == reply dst == the pod``): the pod dropped it as a martian (or, with
        ``accept_local`` on, answered itself). Connections with no such entry are left out."""
        pod = next((p for p in self.layout.pods if p.name == client), None)
        ports = {int(sport) for loc in locals_ if loc and (sport := _client.split_host_port(loc)[1]).isdigit()}
        family = 6 if ":" in dst else 4
        ip = pod.ip_of(family) if pod is not None else ""
        if pod is None or not ports or not ip:
            return {}
        out: dict[str, str] = {}
        accept: bool | None = None
        for e in self.conntrack_entries(pod.node, orig_src=ip, family=family):
            if e.orig[2] in ports and e.orig[1] == dst and e.orig[3] == port and dst != ip \
                    and e.reply[0] == e.reply[1] == ip:
                if accept is None:
                    accept = self.accept_local(client)
                out[_client.join_host_port(ip, e.orig[2])] = hairpin_without_masquerade(pod.name, ip, accept_local=accept)
        return out

    def clear_recent(self, nodes: Iterable[str] | None = None) -> None:
        """Empty every xt_recent list (``echo / > /proc/net/xt_recent/NAME``) in the nodes' namespaces."""
        for name in (list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]):
            r = kernel.run_in_namespace(self.layout.node(name).ns, ["sh", "-c",
                                       "for f in /proc/net/xt_recent/*; do [ ! -e \"$f\" ] || echo / > \"$f\"; done"])
            if r.returncode != 0:
                raise EnvironmentProblem(f"clearing the recent lists on {name} failed: {kernel.one_line(r.stderr)}")

    def break_pod(self, name: str, broken: bool = True) -> None:
        """Break (or repair) a pod's app: its server keeps accepting TCP but answers HTTP 500."""
        info = (self._record.servers if self._record else {}).get(name)
        if not info:
            raise InputError(f"pod {name!r}", "runs no server in the lab", "pick a pod with a TCP container port")
        pid = int(info["pid"])
        if proc_start(pid) != info.get("start"):
            raise EnvironmentProblem(f"the server of pod {name} (pid {pid}) is not running")
        os.kill(pid, signal.SIGUSR1 if broken else signal.SIGUSR2)
        time.sleep(0.05)  # the handler runs between the server's waits

    def trace(self, src: str, ip: str, port: int, *, timeout: float = 1.0, client_kind: str = "") -> Trace:
        """One real connection, traced by the kernel (see :mod:`kslab.netns.ktrace`; in kube-proxy's
        nftables mode ``nft monitor trace``, :mod:`kslab.netns.nfttrace`)."""
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        nodes = [(n.name, n.ns) for n in self.layout.nodes]
        ignore = (self.layout.lb_ip,) if self.load_balancer else ()
        family = 6 if ":" in ip else 4
        self._check_family(family)
        if any(self._proxy_modes.get(name) == "nftables" for name, _ in nodes):  # kube-proxy's nftables mode
            if family == 6:
                raise InputError("--to", "the kernel's trace of an IPv6 connection needs kube-proxy's iptables mode here "
                                 "(nft monitor trace is read for table ip kube-proxy only)", "trace an IPv4 address, or use --proxy-mode iptables")
            trace = nft_kernel_trace(nodes, self.namespace_of(src), ip, port, client=src, client_ip=self.address_of(src, family),
                                     client_kind=client_kind, timeout=timeout, ignore_sources=ignore)
        else:
            trace = kernel_trace(nodes, self.namespace_of(src), ip, port,
                                 client=src, client_ip=self.address_of(src, family), client_kind=client_kind,
                                 iptables_backend=self.backend, timeout=timeout, ignore_sources=ignore)
        pod = next((p for p in self.layout.pods if p.name == trace.endpoint_pod), None)
        if pod is not None:
            trace.endpoint_node, trace.endpoint_ip = pod.node, pod.ip_of(family)
        client_pod = next((p for p in self.layout.pods if p.name == src), None)
        if (not trace.ok and client_pod is not None and trace.dnat_to and not trace.masquerade
                and _client.split_host_port(trace.dnat_to)[0] == client_pod.ip_of(family)):  # DNATed back to the client, unmasqueraded
            trace.reason = hairpin_without_masquerade(src, client_pod.ip_of(family), accept_local=self.accept_local(src))
        return trace

    def address_of(self, name: str, family: int = 4) -> str:
        """The IP address of a pod, a node or mypc (of ``family``: 6 for its IPv6 address in a
        dual-stack lab)."""
        if name == "mypc":
            address = self.layout.mypc_ip6 if family == 6 else self.layout.mypc_ip
            if not address:
                raise InputError("mypc", f"has no IPv{family} address in the lab")
            return address
        for n in self.layout.nodes:
            if n.name == name:
                if not n.ip_of(family):
                    raise InputError(f"node {name!r}", f"has no IPv{family} address in the lab")
                return n.ip_of(family)
        try:
            return str(ipaddress.ip_address(name))  # an extra client, named by its address
        except ValueError:
            return self.pod_ip(name, family)

    def exec(self, where: str, argv: Sequence[str], *, timeout: float = 60.0, keep_cr: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace of ``where`` (pod, node, mypc). ``keep_cr``: its
        output exactly as printed (``curl -i``'s CRLFs kept; text mode would turn them into LFs)."""
        if not keep_cr:
            return kernel.run_in_namespace(self.namespace_of(where), argv, timeout=timeout)
        argv = [kernel.require_tool("ip"), "netns", "exec", self.namespace_of(where), *argv]
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"{argv[4]} in {where} did not finish within {timeout:g} s") from None
        return subprocess.CompletedProcess(argv, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))

    # ---- status ----------------------------------------------------------------------------------
    def status(self) -> LabStatus:
        """What exists now: namespaces, servers alive, rules per node in the kernel."""
        existing = set(kernel.netns_list())
        expected = self.layout.namespaces() + ([self.layout.lb_ns] if self.load_balancer else [])
        alive = self.servers_alive()
        servers = self._record.servers if self._record else {}
        pods = [PodStatus(name=p.name, node=p.node, ip=p.ip, ns=p.ns, server=p.server, ports=p.ports,
                          pid=(servers.get(p.name) or {}).get("pid"), alive=alive.get(p.name, False),
                          namespace_exists=p.ns in existing) for p in self.layout.pods]
        rules: dict[str, dict[str, int]] = {}
        for n in self.layout.nodes:
            if n.ns in existing:
                saved = kernel.iptables_save(n.ns, ("filter", "nat", "mangle"), backend=self.backend)
                rules[n.name] = _count_rules(saved)
                if self.layout.dual_stack:  # the IPv6 proxier's: ip6tables (filter6, nat6, mangle6)
                    saved6 = kernel.iptables_save(n.ns, ("filter", "nat", "mangle"), backend=self.backend, family=6)
                    rules[n.name].update({f"{t}6": c for t, c in _count_rules(saved6).items()})
                    rules[n.name].setdefault("nat6", 0)
                if nft_kernel.nft_problem() is None and (listed := nft_kernel.nft_list_table(n.ns)):
                    rules[n.name]["nft"] = _count_nft_rules(listed)  # kube-proxy's nftables mode
        rec = self._record
        return LabStatus(
            id=self.id, prefix=self.prefix, phase=self.phase, owner_pid=rec.owner_pid if rec else None,
            detached=bool(rec and rec.detached), namespaces={ns: ns in existing for ns in expected}, pods=pods, rules=rules,
            sync_seconds=dict(rec.sync_seconds) if rec else {}, up_seconds=self.up_seconds,
            unexpected=sorted(n for n in existing if n.startswith(self.prefix) and n not in expected),
            daemons={k: proc_start(int(i["pid"])) == i.get("start") for k, i in sorted((rec.daemons if rec else {}).items())},
        )


def _nft_family(family: int) -> str:
    """nft's address family of kube-proxy's table for an IP family: ``ip`` or ``ip6``."""
    return "ip6" if family == 6 else "ip"


def nft_cleanup_text(ruleset: Any) -> str:
    """The separate transaction an nftables sync runs first (stale chains deleted), as ``nft -f``
    text: ``ruleset.cleanup_text()`` if the ruleset has one, else its ``cleanup_ops``' texts."""
    if hasattr(ruleset, "cleanup_text"):
        return ruleset.cleanup_text()
    ops = getattr(ruleset, "cleanup_ops", None) or ()
    return "".join(op.text() + "\n" for op in ops)


def _count_nft_rules(listed: str) -> int:
    """The rules of an ``nft list table`` output (a chain's body lines, less its type/comment/policy)."""
    count, in_chain = 0, False
    for line in listed.splitlines():
        if line.startswith("\tchain "):
            in_chain = True
        elif line == "\t}":
            in_chain = False
        elif in_chain and line.startswith("\t\t") and not line.startswith(("\t\ttype ", "\t\tcomment ", "\t\tpolicy ")):
            count += 1
    return count


def _count_rules(saved: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
            counts.setdefault(table, 0)
        elif line.startswith("-A "):
            counts[table] += 1
    return counts


def iter_labs(directory: Path | None = None) -> Iterator[NetnsLab]:
    """Every recorded lab that is up, attached (not owned)."""
    for rec in read_records(directory):
        if rec.phase == "up":
            yield NetnsLab.attach(lab_id=rec.id, directory=directory)
