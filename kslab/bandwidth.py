"""Pod-to-pod bandwidth with iperf3 (chapter 10): which path a test takes, and its runs.

The study (section 2.9) measures bandwidth between pods with ``iperf3``: a server pod runs
``iperf3 -s`` (port 5201), a client pod runs ``iperf3 -c HOST -t 5 ...``. Which figures it gets
depends on the path the packets take, so every run here carries its path:

- :func:`path_to` (pure over the lab's cluster, plus :meth:`kslab.Lab.trace` for a Service):
  the :class:`BandwidthPath` from a client to a pod, a Service (ClusterIP) or ``NODE:NODEPORT``,
  one of :data:`PATH_KINDS`, with its :class:`Hop` list: the veth pairs, each node's routing
  (kindnet's ``POD_CIDR via NODE_IP`` routes, the ptp ``POD_IP dev vethX`` routes), the docker
  bridge between nodes, and the NAT kube-proxy's rules do (the hop names the rule's chain, as the
  trace found it);
- :meth:`kslab.Lab.iperf3` runs one test on the lab's backend (:meth:`kslab.dataplane.Dataplane.iperf3`:
  real iperf3 processes in the pods' namespaces on netns, exec in the pods on kind, the
  recording :data:`RECORDING` on sim, labelled as such) into a :class:`BandwidthRun`;
- :func:`compare` runs the same flags over several paths: one row per run.

The client's iperf3 JSON is parsed by :mod:`kslab.iperf3`.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import InputError
from .iperf3 import C2S, DEFAULT_PORT, IperfOptions, IperfResult

if TYPE_CHECKING:
    import pandas as pd

    from .model import ClusterState, Service

PATH_KINDS = ("same-node", "cross-node", "clusterip", "nodeport")
HOP_KINDS = ("veth", "routing", "bridge", "nat", "socket")
BRIDGE = "br-kind"  # the "docker network" between the nodes (kslab.netns.layout.BRIDGE)
RECORDING = "iperf3"  # data/recorded/iperf3.json
RECORDING_SCHEMA = 1


# --------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class Hop:
    """One place a test's packets cross on their way from the client to the server."""

    kind: str  # one of HOP_KINDS
    where: str  # the pod, node or bridge where it happens
    detail: str  # e.g. "DNAT 10.200.1.37:5201 -> 10.10.2.4:5201 (KUBE-SEP-...)"

    def label(self) -> str:
        if self.kind == "nat":
            return f"{self.detail.split(' ', 1)[0]} ({self.where})"
        if self.kind in ("routing", "bridge"):
            return f"{self.kind} ({self.where})"
        return self.kind


@dataclass(frozen=True)
class BandwidthPath:
    """Where a test goes: the client connects to ``host:port``; the server listens in
    ``server_pod`` on ``server_port`` (the Service's targetPort; ``port`` itself for a pod)."""

    kind: str  # one of PATH_KINDS
    client: str
    server_pod: str
    host: str
    port: int
    client_node: str  # "" for a client outside the cluster (mypc)
    server_node: str
    hops: tuple[Hop, ...]
    server_port: int = DEFAULT_PORT
    target: str = ""  # what the learner named: a pod, a Service, NODE:NODEPORT
    host_name: str = ""  # what the client types after -c (the Service's DNS name, else the address)

    def hops_text(self) -> str:
        """The hops on one line: ``veth -> routing (myk8s-worker) -> veth``."""
        return " -> ".join(h.label() for h in self.hops)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "client": self.client, "server_pod": self.server_pod, "host": self.host, "port": self.port,
                "server_port": self.server_port, "client_node": self.client_node, "server_node": self.server_node,
                "target": self.target, "hops": [h.__dict__ for h in self.hops], "hops_text": self.hops_text()}


@dataclass(frozen=True)
class BandwidthRun:
    """One iperf3 test: its path, its flags, the parsed client report, and where the figures come from."""

    path: BandwidthPath
    options: IperfOptions
    result: IperfResult
    backend: str
    source: str  # "measured now on netns" | the recording's label "RECORDED on ... (not measured now) ..."
    command: str  # the iperf3 command line as a learner types it in the client pod

    def frame(self) -> pd.DataFrame:
        """The result's sums (:meth:`kslab.iperf3.IperfResult.summary_frame`) with the path, its
        hops, the backend, the source and the flags beside each figure."""
        df = self.result.summary_frame().copy()
        df.insert(0, "path", self.path.kind)
        df["hops"] = self.path.hops_text()
        df["backend"] = self.backend
        df["source"] = self.source
        df["flags"] = self.options.flags()
        return df

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path.to_dict(), "flags": self.options.flags(), "command": self.command, "backend": self.backend,
                "source": self.source, "sums": json.loads(self.result.summary_frame().to_json(orient="records")),
                "iperf3": self.result.raw}

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [f"{self.command}   ({self.path.client} -> {self.path.server_pod}, {self.path.kind})",
                 f"  path: {self.path.hops_text()}", f"  {self.source}"]
        for s in self.result.sums:
            extra = "".join([f"  retr {s.retransmits}" if s.retransmits is not None else "",
                             f"  jitter {s.jitter_ms:.3f} ms" if s.jitter_ms is not None else "",
                             f"  lost {s.lost_packets}/{s.packets} ({s.lost_percent:.2g}%)" if s.lost_packets is not None and s.packets else ""])
            lines.append(f"  {s.direction:<15} {s.side:<8} {s.bits_per_second / 1e6:10.1f} Mbit/s{extra}")
        return "\n".join(lines) + "\n"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def options_of(options: IperfOptions | str | Sequence[str] | None) -> IperfOptions:
    """``IperfOptions`` as given, or parsed from iperf3's flags (``"-u -R -t 5"``); a host (``-c``)
    or server mode (``-s``) in them is a one-line InputError."""
    if options is None or options == "":
        return IperfOptions()
    if isinstance(options, IperfOptions):
        return options
    argv = shlex.split(options) if isinstance(options, str) else list(options)
    if argv[:1] == ["iperf3"]:
        argv = argv[1:]
    host, server, opts = IperfOptions.from_argv(argv)
    if server or host is not None:
        raise InputError("iperf3 options", f"{'-s' if server else '-c ' + str(host)} is not a flag of a test: the lab starts the "
                         "server and names the host from the path", "give only the test's flags, e.g. \"-u -R -t 5\"")
    return opts


def _pods_named(cluster: ClusterState, spec: str) -> list:
    if "=" in spec:  # a label selector: app=iperf3-client,pair=same-node
        from .kubectl import _Failure, parse_selector

        try:
            match = parse_selector(spec)
        except _Failure as err:
            raise InputError(repr(spec), f"is not a label selector ({err.message.removeprefix('error: ')})",
                             "write e.g. app=iperf3-client,pair=same-node") from None
        return [p for p in sorted(cluster.pods, key=lambda p: p.name) if match(p.labels) and p.pod_ip]
    kind, slash, name = spec.partition("/")
    if slash and kind in ("deploy", "deployment", "deployments"):  # kubectl exec deploy/NAME: one of its pods
        pods = sorted((p for p in cluster.pods if p.owner == f"Deployment/{name}" and p.pod_ip), key=lambda p: p.name)
        if not pods:
            deployments = ", ".join(d.name for d in cluster.deployments) or "none"
            raise InputError(repr(spec), f"Deployment {name!r} has no running pod", f"Deployments of the lab: {deployments}")
        return pods[:1]
    return [p for p in cluster.pods if spec in (p.name, p.key)]


def resolve_pod(cluster: ClusterState, spec: str, what: str) -> str | None:
    """A pod's name from its name, ``ns/name``, ``deploy/NAME`` (as ``kubectl exec deploy/NAME``:
    the Deployment's first pod by name) or a label selector picking one pod; None if
    ``spec`` names no pod and is no selector; a selector picking none or several: InputError."""
    pods = _pods_named(cluster, spec)
    if "=" not in spec:
        return pods[0].name if pods else None
    if len(pods) != 1:
        raise InputError(what, f"the selector {spec!r} picks {len(pods)} pods" + (f" ({', '.join(p.name for p in pods)})" if pods else ""),
                         "narrow it to one pod, e.g. app=iperf3-client,pair=same-node")
    return pods[0].name


def _service_endpoints(cluster: ClusterState, svc: Service, port_name: str, protocol: str = "TCP") -> list[tuple[str, int]]:
    """(pod, port) of every ready endpoint of ``svc``'s port ``port_name``, from its EndpointSlices."""
    out = []
    for sl in cluster.slices_for(svc):
        ports = [p.port for p in sl.ports if (p.name or "") == (port_name or "") and (p.protocol or "TCP").upper() == protocol]
        if not ports or ports[0] is None:
            continue
        for ep in sl.endpoints:
            if ep.ready is not False and ep.target_pod:
                out.append((ep.target_pod, int(ports[0])))
    return sorted(set(out))


def _tcp_port(svc: Service, port: int | None, *, node_port: bool, spec: str):
    ports = [p for p in svc.ports if (p.protocol or "TCP").upper() == "TCP" and (not node_port or p.node_port)]
    if port is not None:
        ports = [p for p in ports if (p.node_port if node_port else p.port) == port]
    if not ports:
        listed = ", ".join(str(p.node_port if node_port else p.port) for p in svc.ports if (p.protocol or "TCP").upper() == "TCP")
        raise InputError("to", f"{spec}: Service {svc.name} has no TCP {'nodePort' if node_port else 'port'} {port}",
                         f"its TCP {'nodePorts' if node_port else 'ports'}: {listed or 'none'}")
    return ports[0]


@dataclass(frozen=True)
class _Target:
    kind: str  # "pod", "clusterip", "nodeport"
    server_pod: str
    server_port: int
    host: str
    port: int
    service: str = ""
    node: str = ""  # the node addressed (nodeport)


def _one_endpoint(cluster: ClusterState, svc: Service, sp, spec: str) -> tuple[str, int]:
    eps = _service_endpoints(cluster, svc, sp.name or "")
    if not eps:
        raise InputError("to", f"{spec}: Service {svc.name} has no ready endpoint", "wait for its pods: kubectl get endpointslices")
    if len(eps) > 1:
        raise InputError("to", f"{spec}: Service {svc.name} has {len(eps)} endpoints; iperf3's control and data connections "
                         "would be balanced to different pods", f"scale it to 1 replica, or measure one pod: {eps[0][0]}")
    return eps[0]


def _target(cluster: ClusterState, to: str, port: int) -> _Target | None:
    """What ``to`` names (a pod, a Service, ``NODE:NODEPORT``/``NODE:SERVICE``, an address with a
    port), or None."""
    pod_name = resolve_pod(cluster, to, "to")
    if pod_name is not None:
        pod = cluster.pod(pod_name)
        if not pod.pod_ip:
            raise InputError("to", f"pod {pod.name} is not running (no pod IP)", "wait for it: kubectl get pods -o wide")
        return _Target("pod", pod.name, port, pod.pod_ip, port)
    head, sep, tail = to.partition(":")
    tail_port = int(tail) if tail.isdigit() else None
    if sep and not tail:
        return None
    if cluster.has_node(head) and sep:
        node = cluster.node(head)
        if tail_port is None:
            svc = next((s for s in cluster.services if s.name == tail.split(":")[0]), None)
            if svc is None:
                return None
            sp = _tcp_port(svc, None, node_port=True, spec=to)
        else:
            svc = next((s for s in cluster.services for p in s.ports if p.node_port == tail_port
                        and (p.protocol or "TCP").upper() == "TCP"), None)
            if svc is None:
                exposed = sorted({f"{s.name} {p.node_port}" for s in cluster.services for p in s.ports if p.node_port})
                raise InputError("to", f"{to}: no Service has the TCP nodePort {tail_port}", f"nodePorts: {', '.join(exposed) or 'none'}")
            sp = _tcp_port(svc, tail_port, node_port=True, spec=to)
        pod, pport = _one_endpoint(cluster, svc, sp, to)
        return _Target("nodeport", pod, pport, node.internal_ip, sp.node_port, svc.name, node.name)
    svc = next((s for s in cluster.services if head in (s.name, s.key)), None)
    if svc is not None:
        if not svc.cluster_ip or svc.cluster_ip == "None":
            raise InputError("to", f"{to}: Service {svc.name} is headless (no ClusterIP)", "measure one of its pods directly")
        # SERVICE:PORT, else -p when it is given (not the default) or is one of the Service's ports, else its first TCP port
        wanted = tail_port if tail_port is not None else (port if port != DEFAULT_PORT or any(p.port == port for p in svc.ports) else None)
        sp = _tcp_port(svc, wanted, node_port=False, spec=to)
        pod, pport = _one_endpoint(cluster, svc, sp, to)
        return _Target("clusterip", pod, pport, svc.cluster_ip, sp.port, svc.name)
    try:
        ip = str(ipaddress.IPv4Address(head))
    except ValueError:
        return None
    return target_of_address(cluster, ip, tail_port if tail_port is not None else port, spec=to)


def target_of_address(cluster: ClusterState, ip: str, port: int, *, spec: str = "") -> _Target | None:
    """What a client reaches at ``ip:port`` (TCP): a pod, a Service's ClusterIP, a node's nodePort."""
    pod = next((p for p in cluster.pods if p.pod_ip == ip), None)
    if pod is not None:
        return _Target("pod", pod.name, port, ip, port)
    spec = spec or f"{ip}:{port}"
    for svc in cluster.services:
        if svc.cluster_ip == ip:
            sp = _tcp_port(svc, port, node_port=False, spec=spec)
            server, sport = _one_endpoint(cluster, svc, sp, spec)
            return _Target("clusterip", server, sport, ip, port, svc.name)
    node = next((n for n in cluster.nodes if n.internal_ip == ip), None)
    if node is not None:
        svc = next((s for s in cluster.services for p in s.ports if p.node_port == port and (p.protocol or "TCP").upper() == "TCP"), None)
        if svc is None:
            raise InputError("to", f"{spec}: node {node.name} has no nodePort {port}", "connect to a Service's nodePort")
        sp = _tcp_port(svc, port, node_port=True, spec=spec)
        server, sport = _one_endpoint(cluster, svc, sp, spec)
        return _Target("nodeport", server, sport, ip, port, svc.name, node.name)
    return None


def _unknown_target(cluster: ClusterState, to: str) -> InputError:
    pods = [p.name for p in cluster.pods if p.pod_ip]
    services = [s.name for s in cluster.services if s.cluster_ip and s.cluster_ip != "None"]
    nodeports = sorted({f"NODE:{p.node_port}" for s in cluster.services for p in s.ports if p.node_port})
    return InputError("to", f"{to!r} is not a pod, a Service or NODE:NODEPORT of the lab",
                      f"pods: {', '.join(pods) or 'none'}; Services: {', '.join(services) or 'none'}; "
                      f"nodePorts: {', '.join(nodeports) or 'none'} (NODE e.g. {cluster.nodes[0].name if cluster.nodes else 'myk8s-worker'})")


def path_kind(cluster: ClusterState, client: str, ip: str, port: int) -> tuple[str, _Target]:
    """The path kind (one of :data:`PATH_KINDS`) of a test from ``client`` to ``ip:port`` and what
    is there. Pure: what :mod:`kslab.shell`'s ``iperf3 -c`` and the sim's recording lookup use."""
    t = target_of_address(cluster, ip, port)
    if t is None:
        raise _unknown_target(cluster, f"{ip}:{port}")
    return _kind(cluster, client, t), t


def _kind(cluster: ClusterState, client: str, t: _Target) -> str:
    if t.kind != "pod":
        return t.kind
    from .sim.network import resolve_client

    c = resolve_client(cluster, client)
    server = cluster.pod(t.server_pod)
    return "same-node" if c.node == server.node_name else "cross-node"


def path_to(lab, client: str, to: str, *, port: int = DEFAULT_PORT) -> BandwidthPath:
    """The path of an iperf3 test from ``client`` (a pod, a node, ``mypc``; or a label selector
    picking one pod) to ``to``: a pod's name (or a selector), a Service (``iperf3-server`` or
    ``iperf3-server:5201``: its ClusterIP), ``NODE:NODEPORT`` (or ``NODE:SERVICE``), or an address
    ``IP:PORT``. ``port``: the server's port for a pod (iperf3's ``-p``).

    The hops come from the lab's layout (the veth pairs, kindnet's routes, the docker bridge) and,
    through a Service, from :meth:`kslab.Lab.trace`: the NAT hops name the rule's chain that did
    it (``DNAT ... (KUBE-SEP-...)``, ``MASQUERADE ... (KUBE-POSTROUTING)``). A Service with several
    endpoints is refused (iperf3's connections would be balanced to different pods). Unknown
    names: a one-line InputError listing what exists."""
    cluster = lab.cluster
    if not isinstance(to, str) or not to:
        raise InputError("to", f"{to!r} is not a pod, Service or NODE:NODEPORT", "write e.g. iperf3-server or myk8s-worker:30002")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InputError("-p", f"port {port!r} is out of range", "use 1-65535 (iperf3's default 5201)")
    client_name = resolve_pod(cluster, client, "client") or client
    try:
        c = lab.client(client_name)
    except InputError:
        known = ["mypc", *(n.name for n in cluster.nodes), *(p.name for p in cluster.pods if p.pod_ip)]
        raise InputError("client", f"{client!r} is not a pod, node or mypc of the lab", "use one of: " + ", ".join(known)
                         + "; or deploy/NAME, or a label selector such as app=iperf3-client,pair=same-node") from None
    t = _target(cluster, to, port)
    if t is None:
        raise _unknown_target(cluster, to)
    kind = _kind(cluster, c.name, t)
    server = cluster.pod(t.server_pod)
    if c.kind == "external" and t.kind == "pod":
        raise InputError("to", f"{to}: {c.name} is outside the cluster and the docker network routes no pod address",
                         "go through a NodePort: NODE:NODEPORT, e.g. " + (f"{cluster.nodes[-1].name}:30002" if cluster.nodes else "myk8s-worker:30002"))
    if c.name == t.server_pod:
        hops: tuple[Hop, ...] = (Hop("socket", c.name, f"{c.name} connects to itself (loopback)"),)
    else:
        trace = lab.trace(c.name, f"{t.host}:{t.port}") if t.kind != "pod" else None
        hops = tuple(hops_of(cluster, c, server, t, trace))
    host_name = t.service if t.kind == "clusterip" and c.kind == "pod" else t.host
    return BandwidthPath(kind=kind, client=c.name, server_pod=server.name, host=t.host, port=t.port, client_node=c.node,
                         server_node=server.node_name, hops=hops, server_port=t.server_port, target=to, host_name=host_name)


def _veth(layout, pod) -> str:
    """The node's end of ``pod``'s veth pair (:func:`kslab.netns.layout.plan`: the same name on every backend)."""
    return next((p.host_if for p in layout.pods if p.name == pod.name and p.namespace == pod.namespace), "veth?")


def _nat_rules(trace) -> list[tuple[str, str, str]]:
    """(node, chain, "DNAT"|"MASQUERADE"|"SNAT") of the NAT rules the traced SYN hit before delivery."""
    import re

    out = []
    for s in trace.steps if trace is not None else ():
        if s.event == "note" and s.detail.startswith("delivered to"):
            break
        if s.event != "rule":
            continue
        if s.rule.startswith("-A "):  # iptables: the target
            m = re.search(r" -j (DNAT|MASQUERADE|SNAT)\b", s.rule)
        else:  # nftables: the statement, outside the rule's comment
            m = re.search(r"\b(dnat|masquerade|snat)\b", re.sub(r'comment "[^"]*"', "", s.rule))
        if m:
            out.append((s.node, s.chain, m.group(1).upper()))
    return out


def hops_of(cluster: ClusterState, client, server, t: _Target, trace) -> list[Hop]:
    """The hops from ``client`` (a :class:`kslab.sim.network.Client`) to the pod ``server``."""
    from .netns.layout import plan  # pure: names and addresses, no namespace made

    layout = plan(cluster, "")
    hops: list[Hop] = []
    nodes = {n.name: n for n in cluster.nodes}
    server_node = server.node_name
    if client.kind == "pod":
        cpod = next(p for p in cluster.pods if p.name == client.name or p.key == client.name)
        hops.append(Hop("veth", client.name, f"{client.name} eth0 -> {_veth(layout, cpod)} on {client.node}"))
        first = client.node
    elif client.kind == "node":
        first = client.node or client.name
    else:  # mypc, or another host on the docker network
        first = t.node or (trace.ingress_node if trace is not None else "") or server_node
        hops.append(Hop("bridge", BRIDGE, f"{client.name} {client.ip} -> {first} {nodes[first].internal_ip} over {BRIDGE} (the docker network)"))
    nat = _nat_rules(trace)
    for node, chain, what in nat:
        if what == "DNAT" and node == first:
            dnat_to = trace.dnat_to or f"{server.pod_ip}:{t.server_port}"
            hops.append(Hop("nat", node, f"DNAT {t.host}:{t.port} -> {dnat_to} ({chain})"))
    masq = [(node, chain, what) for node, chain, what in nat if what in ("MASQUERADE", "SNAT")]

    def masquerade(node: str) -> None:
        # MASQUERADE takes the address of the interface the packet leaves by: the pod's veth (its
        # node end holds the podCIDR's first address, ptp) or eth0 (the node's IP) towards another node
        out = str(ipaddress.ip_network(nodes[node].pod_cidr, strict=False).network_address + 1) if node == server_node \
            else nodes[node].internal_ip
        for n, chain, what in masq:
            if n == node:
                hops.append(Hop("nat", node, f"{what} {client.ip} -> {out} ({chain})"))

    veth = _veth(layout, server)
    if first == server_node:
        hops.append(Hop("routing", first, f"node {first} routes {server.pod_ip} dev {veth} (the pod's veth)"))
        masquerade(first)
    else:
        there = nodes[server_node]
        hops.append(Hop("routing", first, f"node {first} routes {there.pod_cidr} via {there.internal_ip} ({server_node})"))
        masquerade(first)
        hops.append(Hop("bridge", BRIDGE, f"{BRIDGE} (the docker network) forwards {first} -> {server_node}"))
        hops.append(Hop("routing", server_node, f"node {server_node} routes {server.pod_ip} dev {veth} (the pod's veth)"))
        masquerade(server_node)
    hops.append(Hop("veth", server.name, f"{veth} on {server_node} -> {server.name} eth0"))
    return hops


def command_line(path: BandwidthPath, options: IperfOptions, *, json: bool = False) -> str:
    """The iperf3 command a learner types in the client: ``iperf3 -c iperf3-server -t 5 -u -R``."""
    flags = options.flags()
    if path.port != DEFAULT_PORT and f"-p {path.port}" not in flags:
        flags = f"-p {path.port} {flags}".strip()
    return " ".join(["iperf3", "-c", path.host_name or path.host, *([flags] if flags else []), *(["-J"] if json else [])])


# --------------------------------------------------------------------------------------------
# Comparing paths


def compare(lab, runs: Sequence[tuple[str, str]], options: IperfOptions | str = "", *, progress: bool = True) -> pd.DataFrame:
    """The same test over several paths: ``runs`` = ``[(client, to), ...]``; one row per run with
    the path kind, its hops, the receiver's sum of the run's first direction (client->server, or
    server->client with ``-R``) in Mbit/s, and ``ratio`` = that figure over the first row's."""
    import pandas as pd

    opts = options_of(options)
    rows = []
    for client, to in runs:
        run = lab.iperf3(client, to, opts, progress=progress)
        direction = run.result.directions()[0] if run.result.directions() else C2S
        s = run.result.sum(direction, "receiver")
        rows.append({"path": run.path.kind, "client": run.path.client, "to": to, "server_pod": run.path.server_pod,
                     "client_node": run.path.client_node, "server_node": run.path.server_node, "hops": run.path.hops_text(),
                     "direction": direction, "Mbit_s": s.bits_per_second / 1e6, "retransmits": s.retransmits,
                     "lost_percent": s.lost_percent, "backend": run.backend, "source": run.source, "flags": run.options.flags(),
                     "command": run.command})
    df = pd.DataFrame(rows)
    if len(df):
        first = df["Mbit_s"].iloc[0]
        df["ratio"] = df["Mbit_s"] / first if first else float("nan")
    return df


# --------------------------------------------------------------------------------------------
# The recording (the sim backend's figures)


def recording_path() -> Path:
    from .resources import lab_data

    return lab_data() / "recorded" / f"{RECORDING}.json"


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if data.get("schema") != RECORDING_SCHEMA:
        raise InputError(f"recording {path}", f"schema {data.get('schema')!r}, not {RECORDING_SCHEMA}",
                         "record it again: python3 benchmarks/bench_iperf3.py --record data/recorded/iperf3.json")
    return data


def recording(path: Path | None = None) -> dict[str, Any]:
    """``data/recorded/iperf3.json``: ``{"schema": 1, "meta": {...}, "runs": [{"test", "path",
    "flags", "json"}, ...]}`` (made by ``benchmarks/bench_iperf3.py --record`` on netns)."""
    p = path or recording_path()
    if not p.is_file():
        raise InputError("iperf3 recording", f"no file {p}", "record one on netns: python3 benchmarks/bench_iperf3.py --record "
                         "data/recorded/iperf3.json, or measure on netns (KSLAB_BACKEND=netns)")
    return _load(str(p), p.stat().st_mtime)


def recording_label(meta: dict[str, Any]) -> str:
    """The recording's label (as stored, else made from its meta the way the recorder makes it)."""
    from .scale import recorded_label

    return meta.get("label") or recorded_label(
        meta, before=f"real {str(meta.get('iperf3', 'iperf3')).split(' (')[0]} between the netns lab's pods, ")


def _same(options: IperfOptions, flags: str) -> bool:
    _, _, recorded = IperfOptions.from_argv(shlex.split(flags))
    return replace(recorded, port=DEFAULT_PORT) == replace(options, port=DEFAULT_PORT)


def recorded_run(kind: str, options: IperfOptions, path: Path | None = None) -> tuple[str, str]:
    """The recorded client ``-J`` text of the test with ``options`` on a ``kind`` path, and the
    recording's label; none: a one-line InputError listing what is recorded."""
    data = recording(path)
    for run in data["runs"]:
        if run["path"] == kind and _same(options, run["flags"]):
            return json.dumps(run["json"], indent=2), recording_label(data["meta"])
    flags = options.flags().replace(f"-p {options.port}", "").strip() if options.port != DEFAULT_PORT else options.flags()
    kinds: dict[str, set[str]] = {}
    for r in data["runs"]:
        kinds.setdefault(r["flags"], set()).add(r["path"])
    listed = [f"`{f}` on " + ("every path" if ks >= set(PATH_KINDS) else ", ".join(k for k in PATH_KINDS if k in ks))
              for f, ks in kinds.items()]
    raise InputError("iperf3 options", f"no recording of `{flags or '(defaults)'}` on the {kind} path",
                     f"recorded: {'; '.join(listed) or 'nothing'}; measure it on netns (KSLAB_BACKEND=netns)")
