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
      iptables exactly ``render_node(state, node).raw_text()`` loaded by kube-proxy's full sync
    pod ns     (one per scheduled Pod)
      eth0     POD_IP/24 (noprefixroute); routes as kindnet's ptp leaves them in a kind pod:
               POD_CIDR.1 dev eth0 scope link; POD_CIDR via .1; default via .1
      server   whoami (port 80) or echo (8080) from :mod:`kslab.netns.servers`
    mypc ns    172.18.0.100/16 on the bridge, default via 172.18.0.1 (the external client)

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

import atexit
import functools
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Self

from ..errors import EnvironmentProblem, InputError
from ..model import ClusterState, Pod
from ..proxy import apply
from ..proxy.config import ProxyConfig
from ..proxy.iptables import RuleSet, render_node
from ..proxy.proxier import Proxier, SyncResult
from . import client as _client

PREFIX_ROOT = "kslab-"
BRIDGE = "br-kind"
MYPC_IP = "172.18.0.100"
SCRATCH_PREFIXES = ("kslab-test-", "kslab-nfacct-probe-")  # apply.scratch_namespace: NAME-PID-N
SWEEP_PREFIX = PREFIX_ROOT  # what ``down_all`` sweeps; tests narrow it to stay off other runs' namespaces
STATE_VERSION = 1
DEFAULT_RUN_DIR = "/run/kslab"
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


def run_dir() -> Path:
    """Where labs record themselves: ``$KSLAB_RUN_DIR`` or ``/run/kslab``."""
    return Path(os.environ.get("KSLAB_RUN_DIR") or DEFAULT_RUN_DIR)


# --------------------------------------------------------------------------------------------
# Layout: names and addresses, a pure function of the cluster state


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class NodeLayout:
    name: str
    ns: str
    ip: str
    prefix_len: int  # of the "docker network"
    pod_cidr: str
    gateway: str  # the pod CIDR's first address: on every local pod's veth (ptp)
    fabric_if: str  # the node's port on the bridge, in the fabric namespace


@dataclass(frozen=True)
class PodLayout:
    name: str
    namespace: str  # Kubernetes namespace
    node: str
    ns: str  # network namespace
    ip: str
    prefix_len: int  # of the node's pod CIDR
    gateway: str
    host_if: str  # veth<8 hex>, the node's end
    server: str | None  # "whoami", "echo" or None (no TCP container port)
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    prefix: str
    fabric_ns: str
    fabric_cidr: str
    gateway: str
    mypc_ns: str
    mypc_ip: str
    mypc_if: str
    nodes: tuple[NodeLayout, ...]
    pods: tuple[PodLayout, ...]
    skipped: tuple[str, ...] = ()  # pods that get no namespace, with the reason

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, in creation order."""
        return [self.fabric_ns, *(n.ns for n in self.nodes), self.mypc_ns, *(p.ns for p in self.pods)]

    def node(self, name: str) -> NodeLayout:
        for n in self.nodes:
            if n.name == name:
                return n
        raise InputError(f"node {name!r}", "not in the lab", "nodes are: " + ", ".join(n.name for n in self.nodes))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Layout:
        doc = dict(doc)
        doc["nodes"] = tuple(NodeLayout(**n) for n in doc["nodes"])
        doc["pods"] = tuple(PodLayout(**{**p, "ports": tuple(p["ports"])}) for p in doc["pods"])
        doc["skipped"] = tuple(doc.get("skipped") or ())
        return cls(**doc)


def _server_for(pod: Pod) -> tuple[str | None, tuple[int, ...]]:
    """Which server a pod runs: echo for mendhak-like images, whoami for any other pod with a
    TCP container port (so custom manifests get an answering pod too), none without ports."""
    ports = tuple(sorted({p.container_port for c in pod.containers for p in c.ports if (p.protocol or "TCP").upper() == "TCP"}))
    if not ports:
        return None, ()
    images = " ".join(c.image for c in pod.containers).lower()
    return ("echo" if "echo" in images else "whoami"), ports


def pod_namespace_name(prefix: str, pod: Pod) -> str:
    return f"{prefix}pod-{pod.name}" if pod.namespace == "default" else f"{prefix}pod-{pod.namespace}.{pod.name}"


def plan(state: ClusterState, prefix: str) -> Layout:
    """Names and addresses of the lab for ``state`` (see the module docstring)."""
    fabric = ipaddress.ip_network(state.config.node_subnet or "172.18.0.0/16", strict=False)
    gateway = str(next(fabric.hosts()))
    if not state.nodes:
        raise InputError("manifests", "the cluster has no nodes", "give a kind Cluster config (data/myk8s/kind-cluster.yaml) or Node objects")
    nodes = []
    for node in state.nodes:
        try:
            ip = ipaddress.ip_address(node.internal_ip)
            cidr = ipaddress.ip_network(node.pod_cidr, strict=False)
        except ValueError:
            raise InputError(f"node {node.name}", f"needs an IPv4 InternalIP and podCIDR (has {node.internal_ip!r}, {node.pod_cidr!r})") from None
        if ip not in fabric or str(ip) in (gateway, MYPC_IP):
            raise InputError(f"node {node.name}", f"IP {ip} is not a free address of the node network {fabric}")
        nodes.append(NodeLayout(
            name=node.name, ns=f"{prefix}node-{node.name}", ip=str(ip), prefix_len=fabric.prefixlen,
            pod_cidr=str(cidr), gateway=str(next(cidr.hosts())), fabric_if="veth" + _hash("node/" + node.name, 7),
        ))
    by_name = {n.name: n for n in nodes}
    pods, skipped = [], []
    for pod in state.pods:
        home = by_name.get(pod.node_name)
        if home is None or not pod.pod_ip:
            skipped.append(f"{pod.key}: not scheduled or no pod IP")
            continue
        pod_net = ipaddress.ip_network(home.pod_cidr)
        if ipaddress.ip_address(pod.pod_ip) not in pod_net or pod.pod_ip == home.gateway:
            skipped.append(f"{pod.key}: IP {pod.pod_ip} is not a pod address of {home.name}'s podCIDR {pod_net}")
            continue
        server, ports = _server_for(pod)
        pods.append(PodLayout(
            name=pod.name, namespace=pod.namespace, node=home.name, ns=pod_namespace_name(prefix, pod), ip=pod.pod_ip,
            prefix_len=pod_net.prefixlen, gateway=home.gateway, host_if="veth" + _hash(pod.key, 8), server=server, ports=ports,
        ))
    return Layout(
        prefix=prefix, fabric_ns=f"{prefix}fabric", fabric_cidr=str(fabric), gateway=gateway,
        mypc_ns=f"{prefix}mypc", mypc_ip=MYPC_IP, mypc_if="veth" + _hash("mypc", 7),
        nodes=tuple(nodes), pods=tuple(pods), skipped=tuple(skipped),
    )


# --------------------------------------------------------------------------------------------
# Commands inside namespaces


def _sysctl_script(values: dict[str, str]) -> str:
    """Shell lines writing /proc/sys inside the namespace (optional keys skipped if absent)."""
    return "".join(f"[ ! -e /proc/sys/{k} ] || echo {v} > /proc/sys/{k}; " for k, v in values.items())


def _configure(ns: str, ip_lines: Sequence[str], sysctls: dict[str, str] | None = None, what: str = "") -> None:
    """Sysctls then ``ip -batch`` inside ``ns``, as one ``ip netns exec`` (speed: one process pair)."""
    script = "set -e; " + _sysctl_script(sysctls or {}) + "exec ip -batch -"
    result = apply.run_in_namespace(ns, ["sh", "-c", script], stdin="\n".join(ip_lines) + "\n")
    if result.returncode != 0:
        raise EnvironmentProblem(f"setting up {what or ns} failed: {apply.one_line(result.stderr or result.stdout)}")


def _parallel(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` in threads (the work is in subprocesses); re-raise the first error."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(len(items), _PODS_PER_WORKER)) as pool:
        futures = [pool.submit(fn, i) for i in items]
        return [f.result() for f in futures]


def _netns_inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/run/netns/{name}")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_namespaces(names: Iterable[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of ``names`` (what ``ip netns pids`` does:
    compare /proc/PID/ns/net with /run/netns/NAME), zombies excluded."""
    wanted = {ino: name for name in names if (ino := _netns_inode(name)) is not None}
    out: dict[str, list[int]] = {}
    if not wanted:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue  # gone, or a zombie
        name = wanted.get((st.st_dev, st.st_ino))
        if name is not None:
            out.setdefault(name, []).append(int(entry.name))
    return out


def kill_namespace_processes(names: Iterable[str], timeout: float = 5.0) -> list[int]:
    """SIGKILL every process living in one of ``names`` and wait until none is left."""
    names = list(names)
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for ps in pids_in_namespaces(names).values() for p in ps if p != os.getpid()]
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"processes {pids[:5]} in the lab's namespaces survived SIGKILL")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
            try:  # reap it if it is our child (server of this process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.01)


def lab_namespaces(prefix: str) -> list[str]:
    """Existing namespaces whose name starts with ``prefix``."""
    return [n for n in apply.netns_list() if n.startswith(prefix)]


def _delete_namespaces(names: Sequence[str]) -> None:
    """Pods first, the fabric last (each deletion also destroys the veths it holds)."""
    order = sorted(names, key=lambda n: (0 if "-pod-" in n else 2 if n.endswith("-fabric") else 1, n))
    for name in order:
        try:
            apply.netns_delete(name)
        except EnvironmentProblem:
            if name in apply.netns_list():
                raise


# --------------------------------------------------------------------------------------------
# State files


def _proc_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks (tells a live owner from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class LabRecord:
    """A lab's ``state.json``: what it made, who owns it."""

    id: str
    prefix: str
    owner_pid: int | None  # None once detached (``kslab netns up``): only ``down`` removes it
    owner_start: int | None
    phase: str  # building, up
    created: float
    path: Path
    layout: dict[str, Any] | None = None
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_seconds: dict[str, float] = field(default_factory=dict)
    up_seconds: float | None = None
    manifests: list[str] | None = None
    seed: int | None = None
    backend: str | None = None

    @property
    def detached(self) -> bool:
        return self.owner_pid is None

    def owner_alive(self) -> bool:
        return self.owner_pid is not None and _proc_start(self.owner_pid) == self.owner_start

    @property
    def crashed(self) -> bool:
        """Owned by a process that no longer exists (killed, crashed) and never detached."""
        return not self.detached and not self.owner_alive()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {k: v for k, v in asdict(self).items() if k != "path"}
        doc["version"] = STATE_VERSION
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> LabRecord:
        doc = json.loads(path.read_text())
        doc.pop("version", None)
        known = set(cls.__dataclass_fields__) - {"path"}
        return cls(path=path, **{k: v for k, v in doc.items() if k in known})


def read_records(directory: Path | None = None) -> list[LabRecord]:
    """Every lab recorded under the run directory (unreadable records are skipped)."""
    directory = directory or run_dir()
    out = []
    for path in sorted(directory.glob(f"{PREFIX_ROOT}*/state.json")) if directory.is_dir() else []:
        try:
            out.append(LabRecord.load(path))
        except (OSError, ValueError, TypeError):
            out.append(LabRecord(id=path.parent.name, prefix=path.parent.name + "-", owner_pid=None, owner_start=None,
                                 phase="unreadable", created=0.0, path=path))
    return out


def remove_lab(prefix: str, record_dir: Path | None = None) -> list[str]:
    """Remove everything of the lab with ``prefix``: kill its processes, delete its namespaces,
    then its record directory. Returns the namespaces deleted. Idempotent."""
    if not prefix.startswith(PREFIX_ROOT) or len(prefix) <= len(PREFIX_ROOT):
        raise ValueError(f"refusing to remove namespaces by the prefix {prefix!r}")
    names = lab_namespaces(prefix)
    kill_namespace_processes(names)
    _delete_namespaces(names)
    if record_dir is not None:
        shutil.rmtree(record_dir, ignore_errors=True)
    return names


def cleanup_crashed(directory: Path | None = None) -> list[str]:
    """Remove the labs whose owner process died without taking them down; return their ids."""
    done = []
    for rec in read_records(directory):
        if rec.crashed or rec.phase == "unreadable":
            remove_lab(rec.prefix, rec.path.parent)
            done.append(rec.id)
    return done


def _live_scratch(name: str) -> bool:
    """``apply.scratch_namespace`` names end in ``-PID-N``: in use while that process lives."""
    if not name.startswith(SCRATCH_PREFIXES):
        return False
    parts = name.rsplit("-", 2)
    return len(parts) == 3 and parts[1].isdigit() and _proc_start(int(parts[1])) is not None


def down_all(directory: Path | None = None, *, sweep: bool = True, sweep_prefix: str | None = None) -> list[str]:
    """``kslab netns down``: remove every recorded lab, then (``sweep``) every other namespace
    whose name starts with ``kslab-`` (leftovers of runs that left no record), sparing only
    the scratch namespaces of processes still running. Returns the namespaces deleted."""
    removed: list[str] = []
    for lab in tuple(_LIVE):  # this process's own labs: reap their servers too
        removed += lab_namespaces(lab.prefix)
        lab.down()
    for rec in read_records(directory):
        removed += remove_lab(rec.prefix, rec.path.parent)
    if sweep:
        prefix = sweep_prefix or SWEEP_PREFIX
        if not prefix.startswith(PREFIX_ROOT):
            raise ValueError(f"refusing to sweep namespaces by the prefix {prefix!r}")
        rest = [n for n in apply.netns_list() if n.startswith(prefix) and not _live_scratch(n)]
        kill_namespace_processes(rest)
        _delete_namespaces(rest)
        removed += rest
    return removed


# --------------------------------------------------------------------------------------------
# Signals and atexit: every lab this process owns comes down with it

_LIVE: list[NetnsLab] = []
_HOOKS = {"atexit": False}
_PREVIOUS: dict[int, Any] = {}
_BUSY = [0]
_DEFERRED: list[int] = []
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _teardown_all(why: str, *, signalled: bool = False) -> None:
    for lab in tuple(_LIVE):
        if signalled and not lab.handle_signals:
            continue
        try:
            lab.down()
        except Exception as err:  # noqa: BLE001 - the process is ending; say it and go on
            print(f"kslab: could not remove netns lab {lab.id} on {why}: {err}", file=sys.stderr)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _BUSY[0]:
        _DEFERRED.append(signum)  # down() is running: finish it, then handle the signal
        return
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)  # before teardown uninstalls the hooks
    _teardown_all(signal.Signals(signum).name, signalled=True)
    _PREVIOUS.pop(signum, None)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # the default action, now that the handler is gone


def _install_hooks(signals: bool) -> None:
    if not _HOOKS["atexit"]:
        atexit.register(_teardown_all, "exit")
        _HOOKS["atexit"] = True
    if not signals or threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers exit
    for sig in _SIGNALS:
        current = signal.getsignal(sig)
        if current is not _on_signal:
            _PREVIOUS[sig] = current
            signal.signal(sig, _on_signal)


def _uninstall_hooks() -> None:
    if any(lab.handle_signals for lab in _LIVE) or threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_PREVIOUS.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous)
        del _PREVIOUS[sig]


# --------------------------------------------------------------------------------------------
# The lab


@dataclass
class SyncRecord:
    """One kube-proxy sync of one node (``sync_proxy_rules_duration_seconds`` = ``seconds``)."""

    node: str
    full: bool
    seconds: float  # render + iptables-save listing + restore
    rules: int  # filter + nat rules written
    stale_chains: int  # chains flushed and deleted because no service uses them any more
    at: float
    reason: str = ""  # why full or partial (first sync, forced, after a failed sync, hourly, partial)
    services: int = 0  # Services whose SVC/SEP chains were rewritten
    lines: int = 0  # lines of iptables-restore input
    error: str | None = None

    @classmethod
    def of(cls, r: SyncResult) -> SyncRecord:
        last = r.ruleset.iptables_last()
        return cls(node=r.node, full=r.full, seconds=r.seconds, rules=last["filter"] + last["nat"],
                   stale_chains=len(r.deleted_chains), at=time.time(), reason=r.reason,
                   services=len(r.updated_services), lines=r.lines, error=r.error)


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
    rules: dict[str, dict[str, int]]  # node -> table -> rules in the kernel
    sync_seconds: dict[str, float]
    up_seconds: float | None
    unexpected: list[str]  # namespaces with the lab's prefix it did not plan

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
                         + (f"  (last sync {sync * 1000:.0f} ms)" if sync is not None else ""))
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
        proxy_options: dict[str, Any] | None = None,
    ):
        self.state = state
        self.proxy_options: dict[str, Any] = dict(proxy_options or {})  # ProxyConfig overrides (masquerade_all...)
        self.handle_signals = handle_signals
        self.backend = backend
        self.health_timeout = health_timeout
        self.start_servers = servers
        self.id = f"{PREFIX_ROOT}{secrets.token_hex(4)}"
        self.prefix = self.id + "-"
        self.directory = Path(directory) if directory else run_dir()
        self.layout: Layout = plan(state, self.prefix)
        self.syncs: list[SyncRecord] = []
        self.up_seconds: float | None = None
        self.owned = True
        self._record: LabRecord | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._nfacct = True
        self._manifests = list(manifests) if manifests else None
        self._seed = seed
        self._proxiers: dict[str, Proxier] = {}  # each node's kube-proxy across syncs
        self._clients: dict[str, str] = {}  # extra client IP -> its namespace

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
        apply.require_root()
        apply.require_tool("ip")
        apply.iptables_tools(backend)

    def up(self) -> NetnsLab:
        """Build the namespaces, load kube-proxy's rules in every node, start and check the servers."""
        if self._record is not None:
            return self
        self.check_environment(self.backend)
        t0 = time.perf_counter()
        cleanup_crashed(self.directory)
        self._record = LabRecord(
            id=self.id, prefix=self.prefix, owner_pid=os.getpid(), owner_start=_proc_start(os.getpid()), phase="building",
            created=time.time(), path=self.record_dir / "state.json", layout=self.layout.to_json(),
            manifests=self._manifests, seed=self._seed, backend=self.backend,
        )
        self._record.save()  # before anything exists: a crash from here on is recoverable
        _LIVE.append(self)
        _install_hooks(self.handle_signals)
        try:
            self._nfacct = apply.nfacct_problem(self.backend) is None
            self._build()
            if self.start_servers:
                self._launch_servers(self.layout.pods)
            self.resync(full=True)
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
        _BUSY[0] += 1
        try:
            self._stop_servers()
            remove_lab(self.prefix, self.record_dir)
            self._record = None
            self._forget()
            cleanup_crashed(self.directory)
        finally:
            _BUSY[0] -= 1
        if not _BUSY[0] and _DEFERRED:
            _on_signal(_DEFERRED.pop(0), None)

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
        if self in _LIVE:
            _LIVE.remove(self)
        _uninstall_hooks()

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
        lab.syncs, lab.up_seconds, lab.owned, lab.handle_signals = [], rec.up_seconds, False, False
        lab._record, lab._procs, lab._nfacct = rec, {}, apply.nfacct_problem(rec.backend) is None
        lab._manifests, lab._seed = rec.manifests, rec.seed
        lab._proxiers, lab._clients, lab.proxy_options = {}, {}, {}  # a restarted kube-proxy: its first sync is full
        return lab

    # ---- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = self.layout
        _parallel(apply.netns_add, lay.namespaces())
        # 1. the bridge, then every node's and mypc's eth0 (their peers land in the fabric),
        #    node routes, and the node ends of the pod veths (their peers land in the pods)
        _configure(lay.fabric_ns, [
            "link set lo up",
            f"link add {BRIDGE} type bridge",
            f"addr add {lay.gateway}/{ipaddress.ip_network(lay.fabric_cidr).prefixlen} dev {BRIDGE}",
            f"link set {BRIDGE} up",
        ], FABRIC_SYSCTLS, "the fabric")
        mypc_lines = [
            "link set lo up",
            f"link add eth0 type veth peer name {lay.mypc_if} netns {lay.fabric_ns}",
            f"addr add {lay.mypc_ip}/{ipaddress.ip_network(lay.fabric_cidr).prefixlen} dev eth0",
            "link set eth0 up",
            f"route add default via {lay.gateway} dev eth0",
        ]
        jobs: list[Callable[[], None]] = [functools.partial(self._configure_node, n) for n in lay.nodes]
        jobs.append(functools.partial(_configure, lay.mypc_ns, mypc_lines, OTHER_SYSCTLS, "mypc"))
        _parallel(lambda job: job(), jobs)
        # 2. bridge ports, and each pod's side of its veth
        ports = [n.fabric_if for n in lay.nodes] + [lay.mypc_if]
        bridge_lines = [line for p in ports for line in (f"link set {p} master {BRIDGE}", f"link set {p} up")]
        jobs = [functools.partial(_configure, lay.fabric_ns, bridge_lines, None, "the bridge ports")]
        jobs += [functools.partial(self._configure_pod, p) for p in lay.pods]
        _parallel(lambda job: job(), jobs)

    def _configure_node(self, n: NodeLayout) -> None:
        lay = self.layout
        lines = [
            "link set lo up",
            f"link add eth0 type veth peer name {n.fabric_if} netns {lay.fabric_ns}",
            f"addr add {n.ip}/{n.prefix_len} dev eth0",
            "link set eth0 up",
            f"route add default via {lay.gateway} dev eth0",
        ]
        lines += [f"route add {o.pod_cidr} via {o.ip} dev eth0" for o in lay.nodes if o.name != n.name]
        for p in lay.pods:
            if p.node == n.name:
                lines += self._host_veth_lines(p)
        _configure(n.ns, lines, NODE_SYSCTLS, f"node {n.name}")

    @staticmethod
    def _host_veth_lines(p: PodLayout) -> list[str]:
        """The node's side of a pod's veth, as the ptp plugin leaves it."""
        return [
            f"link add {p.host_if} type veth peer name eth0 netns {p.ns}",
            f"addr add {p.gateway}/32 dev {p.host_if}",
            f"link set {p.host_if} up",
            f"route add {p.ip}/32 dev {p.host_if} scope host",
        ]

    @staticmethod
    def _configure_pod(p: PodLayout) -> None:
        _configure(p.ns, [
            "link set lo up",
            f"addr add {p.ip}/{p.prefix_len} dev eth0 noprefixroute",
            "link set eth0 up",
            f"route add {p.gateway}/32 dev eth0 scope link src {p.ip}",
            f"route add {ipaddress.ip_network(f'{p.ip}/{p.prefix_len}', strict=False)} via {p.gateway} dev eth0 src {p.ip}",
            f"route add default via {p.gateway} dev eth0",
        ], OTHER_SYSCTLS, f"pod {p.name}")

    # ---- servers -------------------------------------------------------------------------------
    def _launch_servers(self, pods: Iterable[PodLayout]) -> None:
        assert self._record is not None
        ip = apply.require_tool("ip")
        env = _client.helper_env()
        for p in pods:
            if not p.server:
                continue
            log = self.record_dir / f"{p.ns[len(self.prefix):]}.log"
            argv = [ip, "netns", "exec", p.ns, sys.executable, "-m", "kslab.netns.servers",
                    "--kind", p.server, "--name", p.name, "--ip", p.ip, *[a for port in p.ports for a in ("--port", str(port))]]
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=env, close_fds=True)
            self._procs[p.name] = proc
            self._record.servers[p.name] = {"pid": proc.pid, "ns": p.ns, "kind": p.server, "ports": list(p.ports), "log": str(log),
                                            "start": _proc_start(proc.pid)}
        self._record.save()

    def _check_servers(self, pods: Iterable[PodLayout]) -> None:
        """From each node, GET every local pod's ports until 200; one clear line if one fails."""
        by_node: dict[str, list[PodLayout]] = {}
        for p in pods:
            if p.server:
                by_node.setdefault(p.node, []).append(p)

        def check(node: str) -> list[str]:
            targets = {f"{p.ip}:{port}": p for p in by_node[node] for port in p.ports}
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
            start = _proc_start(int(info["pid"]))
            out[name] = start is not None and (info.get("start") is None or start == info["start"])
        return out

    # ---- kube-proxy ------------------------------------------------------------------------------
    def _config_overrides(self) -> dict[str, Any]:
        return {**self.proxy_options, **({} if self._nfacct else {"nfacct": False})}

    def render(self, node: str, state: ClusterState | None = None) -> RuleSet:
        """The ruleset a full sync writes on ``node`` (nfacct clauses only if the counters work here)."""
        return render_node(state or self.state, node, **self._config_overrides())

    def set_proxy_options(self, **options: Any) -> dict[str, float]:
        """Change kube-proxy's flags on every node: a restarted kube-proxy, so a full sync."""
        self.proxy_options.update(options)
        self._proxiers.clear()
        return self.resync()

    def proxier(self, node: str) -> Proxier:
        """The node's kube-proxy state across syncs (created at the first sync: a full one)."""
        if node not in self._proxiers:
            self._proxiers[node] = Proxier(ProxyConfig.for_node(self.state, node, **self._config_overrides()))
        return self._proxiers[node]

    def resync(self, state: ClusterState | None = None, nodes: Iterable[str] | None = None, *,
               full: bool | None = None) -> dict[str, float]:
        """Re-render and re-apply kube-proxy's rules on ``nodes`` (default all), as each node's
        kube-proxy would; return the seconds each sync took (also in :attr:`syncs`).

        ``full=None`` lets kube-proxy decide (KEP-3453): the first sync of a node, and the one
        after a failed sync, are full (jump rules ensured, every chain written); later ones are
        partial (top-level chains plus the changed Services' chains, ``iptables-restore
        --noflush``). ``full=True`` forces a full sync, ``full=False`` asks for a partial one
        (a node that needs a full sync still gets one). Every sync lists the nat table first and
        flushes + deletes the service chains no longer used. A failed partial restore is
        retried at once as a full sync (kube-proxy waits ``syncPeriod``); both are recorded.
        """
        if self._record is None:
            raise EnvironmentProblem("the lab is not up")
        if state is not None:
            self.state = state
        names = list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]
        for name in names:
            self.layout.node(name)
        if full:
            for name in names:
                self.proxier(name).force_full_sync("forced")
        per_node = _parallel(self._sync_node, names)
        self.syncs += [rec for recs in per_node for rec in recs]
        self._record.sync_seconds.update({recs[-1].node: recs[-1].seconds for recs in per_node if not recs[-1].error})
        self._record.save()
        for recs in per_node:
            if recs[-1].error:  # even the full sync failed: the node's rules are not what kslab rendered
                raise EnvironmentProblem(f"kube-proxy's sync failed on {recs[-1].node}: {recs[-1].error}")
        return {recs[-1].node: recs[-1].seconds for recs in per_node}

    def _sync_node(self, name: str) -> list[SyncRecord]:
        ns = self.layout.node(name).ns
        proxier = self.proxier(name)

        def apply_rules(ruleset: RuleSet) -> None:
            if ruleset.partial:
                apply.iptables_restore(ns, ruleset.raw_text(), backend=self.backend)
            else:
                apply.full_sync(ns, ruleset.raw_text(), nfacct=self._nfacct, backend=self.backend)

        return [SyncRecord.of(r) for r in proxier.sync_and_retry(self.state.services, self.state.endpoint_slices,
                                                                 apply_rules, list_nat_chains=lambda: apply.chains(ns, "nat", backend=self.backend))]

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
            _parallel(apply.netns_add, [p.ns for p in added])
            by_node: dict[str, list[str]] = {}
            for p in added:
                by_node.setdefault(p.node, []).extend(self._host_veth_lines(p))
            _parallel(lambda item: _configure(self.layout.node(item[0]).ns, item[1], None, f"node {item[0]}"), by_node.items())
            _parallel(self._configure_pod, added)
            if self.start_servers:
                self._launch_servers(added)
        self.resync(state)
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
        apply.run_in_namespace(self.layout.node(p.node).ns, ["ip", "link", "del", p.host_if])
        _delete_namespaces([p.ns])
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
                if p.ip == str(ip):
                    return p.ns
            for n in self.layout.nodes:
                if n.ip == str(ip):
                    return n.ns
            if str(ip) == self.layout.mypc_ip:
                return self.layout.mypc_ns
            return self.client_namespace(str(ip))
        known = ["mypc", *(n.name for n in self.layout.nodes), *(p.name for p in self.layout.pods)]
        raise InputError(f"client {name!r}", "is not a pod, node or mypc of the lab", "use one of: " + ", ".join(known))

    def pod_ip(self, name: str) -> str:
        for p in self.layout.pods:
            if p.name == name:
                return p.ip
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
        home = next((n for n in self.layout.nodes if addr in ipaddress.ip_network(n.pod_cidr)), None)
        fabric = ipaddress.ip_network(self.layout.fabric_cidr)
        if home is not None and ip != home.gateway:
            p = PodLayout(name=ip, namespace="", node=home.name, ns=ns, ip=ip, prefix_len=ipaddress.ip_network(home.pod_cidr).prefixlen,
                          gateway=home.gateway, host_if="veth" + _hash("client/" + ip, 8), server=None, ports=())
            apply.netns_add(ns)
            _configure(home.ns, self._host_veth_lines(p), None, f"node {home.name}")
            self._configure_pod(p)
        elif addr in fabric and ip != self.layout.gateway:
            port = "veth" + _hash("client/" + ip, 7)
            apply.netns_add(ns)
            _configure(ns, ["link set lo up", f"link add eth0 type veth peer name {port} netns {self.layout.fabric_ns}",
                            f"addr add {ip}/{fabric.prefixlen} dev eth0", "link set eth0 up",
                            f"route add default via {self.layout.gateway} dev eth0"], OTHER_SYSCTLS, f"client {ip}")
            _configure(self.layout.fabric_ns, [f"link set {port} master {BRIDGE}", f"link set {port} up"], None, "the bridge")
        else:
            raise InputError(f"client {ip!r}", "is neither in a node's pod CIDR nor on the node network",
                             "use a pod, a node, mypc, or an address of 10.10.N.0/24 or 172.18.0.0/16")
        clients[ip] = ns
        return ns

    def delete_rules(self, pattern: Any, nodes: Iterable[str] | None = None) -> int:
        """``iptables -t TABLE -D`` every rule whose iptables-save line matches ``pattern`` (a
        compiled regular expression) in the nodes' namespaces; returns how many."""
        import shlex

        tools = apply.iptables_tools(self.backend)
        count = 0
        for name in (list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]):
            ns = self.layout.node(name).ns
            table = ""
            for line in apply.iptables_save(ns, ("raw", "mangle", "filter", "nat"), backend=self.backend).splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith("-A ") and pattern.search(line):
                    r = apply.run_in_namespace(ns, [tools.iptables, "-w", "5", "-t", table, "-D", *shlex.split(line)[1:]])
                    if r.returncode != 0:
                        raise EnvironmentProblem(f"iptables -D in {ns} failed: {apply.one_line(r.stderr)}")
                    count += 1
        return count

    def flush_conntrack(self, nodes: Iterable[str] | None = None) -> int:
        """``conntrack -F`` in the nodes' namespaces (default all); returns how many entries went.

        Failed connections leave entries behind (SYN_SENT, two minutes): a new connection that
        happens to reuse a source port follows the old entry's NAT, not the current rules."""
        exe = apply.require_tool("conntrack")
        total = 0
        for name in (list(nodes) if nodes is not None else [n.name for n in self.layout.nodes]):
            ns = self.layout.node(name).ns
            count = apply.run_in_namespace(ns, [exe, "-C"])
            r = apply.run_in_namespace(ns, [exe, "-F"])
            if r.returncode != 0 or count.returncode != 0:
                raise EnvironmentProblem(f"conntrack -F on {name} failed: {apply.one_line(r.stderr or count.stderr)}")
            total += int(count.stdout.strip() or 0)
        return total

    def break_pod(self, name: str, broken: bool = True) -> None:
        """Break (or repair) a pod's app: its server keeps accepting TCP but answers HTTP 500."""
        info = (self._record.servers if self._record else {}).get(name)
        if not info:
            raise InputError(f"pod {name!r}", "runs no server in the lab", "pick a pod with a TCP container port")
        pid = int(info["pid"])
        if _proc_start(pid) != info.get("start"):
            raise EnvironmentProblem(f"the server of pod {name} (pid {pid}) is not running")
        os.kill(pid, signal.SIGUSR1 if broken else signal.SIGUSR2)
        time.sleep(0.05)  # the handler runs between the server's waits

    def trace(self, src: str, ip: str, port: int, *, timeout: float = 1.0):
        """One real connection, traced by the kernel (see :mod:`kslab.netns.ktrace`)."""
        from .ktrace import kernel_trace

        return kernel_trace(self, src, ip, port, timeout=timeout)

    def address_of(self, name: str) -> str:
        """The IP address of a pod, a node or mypc."""
        if name == "mypc":
            return self.layout.mypc_ip
        for n in self.layout.nodes:
            if n.name == name:
                return n.ip
        return self.pod_ip(name)

    def exec(self, where: str, argv: Sequence[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace of ``where`` (pod, node, mypc)."""
        return apply.run_in_namespace(self.namespace_of(where), argv, timeout=timeout)

    # ---- status ----------------------------------------------------------------------------------
    def status(self) -> LabStatus:
        """What exists now: namespaces, servers alive, rules per node in the kernel."""
        existing = set(apply.netns_list())
        expected = self.layout.namespaces()
        alive = self.servers_alive()
        servers = self._record.servers if self._record else {}
        pods = [PodStatus(name=p.name, node=p.node, ip=p.ip, ns=p.ns, server=p.server, ports=p.ports,
                          pid=(servers.get(p.name) or {}).get("pid"), alive=alive.get(p.name, False),
                          namespace_exists=p.ns in existing) for p in self.layout.pods]
        rules: dict[str, dict[str, int]] = {}
        for n in self.layout.nodes:
            if n.ns in existing:
                saved = apply.iptables_save(n.ns, ("filter", "nat", "mangle"), backend=self.backend)
                rules[n.name] = _count_rules(saved)
        rec = self._record
        return LabStatus(
            id=self.id, prefix=self.prefix, phase=self.phase, owner_pid=rec.owner_pid if rec else None,
            detached=bool(rec and rec.detached), namespaces={ns: ns in existing for ns in expected}, pods=pods, rules=rules,
            sync_seconds=dict(rec.sync_seconds) if rec else {}, up_seconds=self.up_seconds,
            unexpected=sorted(n for n in existing if n.startswith(self.prefix) and n not in expected),
        )


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
