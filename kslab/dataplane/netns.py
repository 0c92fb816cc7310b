"""The ``netns`` dataplane: the Linux kernel itself, one network namespace per node and pod.

:class:`~kslab.netns.lab.NetnsLab` is the kernel: namespaces, servers, ``iptables-restore`` and
``iptables-save``, conntrack, real clients and the kernel's own traces. It runs no kube-proxy:
it loads the rulesets the Lab's Proxiers produce. The clock is the real one (``advance``
waits); the kernel's randomness cannot be seeded, so runs repeat only statistically.

kube-proxy's health check servers follow its syncs: after each node's sync is loaded, the answers
of that node's healthCheckNodePorts (:func:`health_answers`: the local ready endpoints the sync
saw, :func:`kslab.healthcheck.service_health`) go to the node's listener. The cloud load balancer
(:mod:`kslab.netns.lbprober`) follows the cluster's LoadBalancer Services (:func:`lb_specs`); a
connection to a VIP is reported with the node the LB chose as ``ingress_node``.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pandas as pd

from ..errors import EnvironmentProblem, InputError
from ..healthcheck import HealthResponse, service_health, synced_health
from ..loadbalancer import LBState, probe_target
from ..netns.client import split_host_port
from ..netns.lab import NetnsLab
from ..netns.lbprober import LBSpec
from ..nft import kernel as nft_kernel
from ..sim.network import resolve_client
from ..xtables import kernel as xtables_kernel
from .base import Dataplane, RealClock
from .rows import COLUMNS

if TYPE_CHECKING:
    from ..bandwidth import BandwidthPath
    from ..iperf3 import IperfOptions
    from ..model import ClusterState, Service
    from ..proxy.iptables import RuleSet
    from ..shell import Command, ShellOutput
    from .trace import Trace


class NetnsDataplane(RealClock, Dataplane):
    backend = "netns"
    concurrent_syncs = True  # each node's restore is its own iptables-restore in its own namespace

    def __init__(self, cluster: ClusterState, *, seed: int = 0) -> None:
        self.cluster = cluster
        # a notebook kernel's "interrupt" is SIGINT: it stops a cell, it does not remove the lab
        self.kernel = NetnsLab(cluster, handle_signals=False, seed=seed)
        self.kernel.up()
        self._t0 = time.monotonic()
        try:
            self.kernel.set_load_balancers(lb_specs(cluster))
        except BaseException:
            self.kernel.close()
            raise

    @staticmethod
    def check_environment() -> None:
        """Raise EnvironmentProblem (one line) unless this machine can run the lab."""
        NetnsLab.check_environment()

    # ---- rules ---------------------------------------------------------------------------------
    def kernel_features(self) -> dict[str, Any]:
        return {} if self.kernel.nfacct else {"nfacct": False}

    def sync_rules(self, node: str, ruleset: RuleSet) -> None:
        """Load one proxier's sync into ``node``: the IPv4 proxier's into iptables, the IPv6
        proxier's (``ruleset.config.family`` 6, a dual-stack cluster) into ip6tables."""
        cfg = ruleset.config
        family = getattr(cfg, "family", 4) or 4
        if getattr(ruleset, "mode", "iptables") == "nftables":
            self.kernel.apply_nft(node, ruleset)  # nft -f in the node's namespace (kslab.nft.kernel)
        else:
            self.kernel.restore(node, ruleset.raw_text(), full=not ruleset.partial, family=family)
        if family != 4:  # the health check listeners follow the IPv4 proxier (the LB and its prober are IPv4 only)
            return
        # as kube-proxy after a successful restore: SyncServices + SyncEndpoints of its health check server
        addresses = None if cfg.nodeport_addrs.match_all else cfg.nodeport_ips()
        self.kernel.set_health(node, health_answers(ruleset), addresses=addresses)

    def nat_chains(self, node: str, family: int = 4) -> list[str]:
        return self.kernel.nat_chains(node, family)

    def existing_chains(self, node: str, mode: str = "iptables", family: int = 4) -> list[str]:
        return self.kernel.nft_chains(node, family) if mode == "nftables" else self.kernel.nat_chains(node, family)

    def existing_sets(self, node: str, mode: str = "nftables", family: int = 4) -> list[str]:
        return self.kernel.nft_sets(node, family) if mode == "nftables" else []

    def nft_list(self, node: str, family: int = 4) -> str:
        return self.kernel.nft_list(node, family)

    def save_text(self, node: str, family: int = 4) -> str:
        return self.kernel.save_text(node, family=family)

    def delete_rules(self, pattern: re.Pattern[str], nodes: Sequence[str]) -> int:
        return self.kernel.delete_rules(pattern, nodes)

    # ---- pods ----------------------------------------------------------------------------------
    def update_pods(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.kernel.update(cluster)
        self.kernel.set_load_balancers(lb_specs(cluster))

    # ---- the cloud load balancer ---------------------------------------------------------------
    def lb_status(self, service: Service, cluster: ClusterState) -> LBState:
        """The LB namespace's prober, as it stands: its last probe of every node (real HTTP) and
        the nodes its rules send new connections to."""
        specs = {s.service: s for s in lb_specs(cluster)}
        if service.key not in specs:
            raise InputError(f"service {service.key}", "has no load balancer (not type LoadBalancer, or no ingress IP)",
                             "give it type: LoadBalancer and status.loadBalancer.ingress: [{ip: ...}]")
        self.kernel.set_load_balancers(list(specs.values()))
        self.kernel.wait_lb()  # a probe round that saw the last sync and the last Service change
        got = self.kernel.lb_status(service.key)
        spec: LBSpec = got["spec"]
        nodes = [n.name for n in cluster.nodes]
        probes = {n: int(got["probes"].get(n, 0)) for n in nodes}
        return LBState(service=spec.service, vip=spec.vip, port=spec.ports[0], policy=spec.policy, probe_port=spec.probe_port,
                       probe_path=spec.probe_path, probes=probes, healthy=tuple(n for n in nodes if n in got["healthy"]))

    def wait_lb(self, timeout: float = 5.0) -> float:
        return self.kernel.wait_lb(timeout)

    def advance(self, seconds: float) -> None:
        """Wait ``seconds`` (real time), then until the load balancer's prober has seen the last
        change (a sync after ``set_ready``, ``scale``, ``place``): a probe round takes about 0.3 s."""
        time.sleep(seconds)
        self.kernel.wait_lb()

    def break_pod(self, pod: str, broken: bool = True) -> None:
        self.kernel.break_pod(pod, broken)

    # ---- traffic -------------------------------------------------------------------------------
    def connect(self, clients: Sequence[str], dst: str, port: int, proto: str, n: int, *,
                seed: int | None, interval: float, timeout: float) -> pd.DataFrame:
        """Real TCP connections (``seed`` and ``interval`` do not apply to the kernel): one helper
        process per client (:func:`kslab.netns.client.run_client`), the clients' processes side by
        side, each opening its share one connection after another; rows in client order.
        To a load balancer's VIP, first the prober's round after the last change (``wait_lb``):
        the LB is as current as the sim's, and does not reload its rules under the run."""
        if proto != "tcp":
            raise InputError("--to", f"the netns backend opens TCP connections, not {proto}", "use a TCP port")
        pods = {p.name: p for p in self.cluster.pods}
        node_by_ip = {ip: node.name for node in self.cluster.nodes for ip in node.ips}
        family = 6 if ":" in dst else 4
        pod_ips6 = {p.name: p.ip6 for p in self.kernel.layout.pods if p.ip6}
        rows = []
        share, extra = divmod(n, len(clients))
        counts = [share + (1 if k < extra else 0) for k in range(len(clients))]
        jobs = [(src, count) for src, count in zip(clients, counts) if count]
        for src, _count in jobs:  # a client IP's namespace is made on first use: one at a time
            self.kernel.namespace_of(src)
        vip = any(s.vip == dst and port in s.ports for s in lb_specs(self.cluster))
        if vip:  # as the sim's LB, never stale: its healthy nodes as of the last change, and no reload mid-run
            self.kernel.wait_lb()  # (a reload re-hashes connections in flight onto another node, which resets them)
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            runs = list(pool.map(lambda job: self.kernel.connect(job[0], dst, port, job[1], timeout=timeout), jobs))
        chosen = self.kernel.lb_choices(dst, port) if vip else {}  # the LB's conntrack: client ip:port -> node
        i = 0
        for (src, _count), run in zip(jobs, runs):
            client = resolve_client(self.cluster, src)
            client_ip = self.kernel.address_of(client.name, family) if family == 6 else client.ip
            ingress = node_by_ip.get(dst) or client.node or ""
            unanswered = [r.local for r in run.results if not r.ok and r.pod is None]
            why = self.kernel.explain_failures(client.name, dst, port, unanswered) if unanswered and client.kind == "pod" else {}
            for r in run.results:
                if vip:
                    ip_, sport = split_host_port(r.local or "")
                    ingress = chosen.get((ip_, int(sport)), "") if sport.isdigit() else ""
                pod = pods.get(r.pod or "")
                answered = r.ok or (r.error == "http" and r.pod is not None)  # a broken app still identifies itself
                rows.append({
                    "conn": i, "backend": self.backend, "client": client.name, "client_ip": client_ip, "ingress_node": ingress,
                    "destination": f"{dst}:{port}/tcp", "rules_path": "-", "chains": "",
                    "endpoint_pod": r.pod if answered else None, "endpoint_node": pod.node_name if pod and answered else None,
                    "endpoint_ip": (pod_ips6.get(pod.name) if family == 6 else pod.pod_ip) if pod and answered else None,
                    "source_ip_seen": r.seen_ip if answered else None,
                    "cross_node": bool(pod and answered and ingress and pod.node_name != ingress),
                    "masquerade": bool(answered and r.seen_ip != client_ip),
                    "outcome": "ok" if r.ok else ("error" if r.error == "http" else (r.error or "error")),
                    "reason": (why.get(r.local or "") or r.detail or "") if not r.ok else "", "t": float(i),
                    "rules_evaluated": None, "latency_ms": r.ms,
                })
                i += 1
        return pd.DataFrame(rows, columns=COLUMNS)

    def trace(self, src: str, dst: str, port: int, proto: str) -> Trace:
        if proto != "tcp":
            raise InputError("--to", f"the netns backend traces TCP connections, not {proto}", "use a TCP port")
        found, source = self._candidates(src, dst, port, proto)  # before the connection: the state it meets
        trace = self.kernel.trace(src, dst, port, client_kind=resolve_client(self.cluster, src).kind)
        trace.candidates, trace.candidates_source = found, source
        return trace

    def _candidates(self, src: str, dst: str, port: int, proto: str) -> tuple[list | None, str]:
        """The kernel traces the one connection it opens; where a connection could go is worked out
        by the simulator over the rules the kernel holds (``candidates_source`` says so)."""
        from ..sim.candidates import RULES_SOURCE, candidates_over, parse_xt_recent, source_of

        if ":" in dst:  # the simulator is started from the kernel's iptables-save only (kslab.dataplane.factory: IPv4)
            return None, "none: the candidates of an IPv6 connection over the kernel's ip6tables are not worked out (kslab trace on sim lists them)"
        names = [n.name for n in self.cluster.nodes]
        modes = getattr(self.kernel, "_proxy_modes", {})
        nft = {n: self.nft_list(n) for n in names if modes.get(n) == "nftables"}
        tables = {n: self.save_text(n) for n in names if n not in nft}
        recent = {}  # the kernel's xt_recent lists (ClientIP affinity), copied into the simulator
        for n in names:
            out = self.kernel.exec(n, ["sh", "-c", 'grep -m1 "^jiffies" /proc/timer_list; for f in /proc/net/xt_recent/*; '
                                                   'do [ ! -e "$f" ] || { echo "== $f"; cat "$f"; }; done'], timeout=10.0).stdout
            if "src=" in out:
                first, _, rest = out.partition("\n")
                recent[n] = parse_xt_recent(rest, int(first.split()[1]))
        try:
            found = candidates_over(self.cluster, tables, nft, src, dst, port, proto, recent=recent)
        except (EnvironmentProblem, InputError) as e:  # rules the simulator cannot run: no candidates, and why
            return None, f"none: {e}"
        source = source_of(found, RULES_SOURCE)
        if found is not None and recent:
            source += f" and the kernel's xt_recent lists on {', '.join(recent)}"
        return found, source

    def flush_conntrack(self) -> int:
        return self.kernel.flush_conntrack()

    def reset(self) -> None:
        self.kernel.flush_conntrack()
        self.kernel.clear_recent()
        self._zero_counters()
        self._t0 = time.monotonic()

    def _zero_counters(self) -> None:
        """Every rule's counters back to 0 in every node, by ``iptables-restore --noflush`` of ``-Z``
        lines: ``-Z CHAIN`` for a user chain, ``-Z CHAIN N`` for each rule of a built-in chain.
        Not a plain ``iptables -Z``: on nf_tables that also turns on the built-in chains' policy
        counters, which a node (kube-proxy never zeroes) does not keep."""
        restore = xtables_kernel.iptables_tools(self.kernel.backend).restore

        def zero(node) -> None:
            lines: list[str] = []
            rules: dict[str, int] = {}
            for line in xtables_kernel.iptables_save(node.ns, ("raw", "mangle", "filter", "nat"), backend=self.kernel.backend).splitlines():
                if line.startswith("*"):
                    lines.append(line)
                    rules = {}
                elif line.startswith(":"):
                    name, policy = line[1:].split()[:2]
                    rules[name] = 0 if policy != "-" else -1
                elif line.startswith("-A "):
                    chain = line.split()[1]
                    rules[chain] += 1 if rules[chain] >= 0 else 0
                elif line == "COMMIT":
                    for name, count in rules.items():
                        lines += [f"-Z {name}"] if count < 0 else [f"-Z {name} {i}" for i in range(1, count + 1)]
                    lines.append(line)
            r = xtables_kernel.run_in_namespace(node.ns, [restore, "-w", "5", "--noflush"], stdin="\n".join(lines) + "\n")
            if r.returncode != 0:
                raise EnvironmentProblem(f"zeroing the counters on {node.name} failed: {xtables_kernel.one_line(r.stderr)}")

        with ThreadPoolExecutor(max_workers=len(self.kernel.layout.nodes) or 1) as pool:
            list(pool.map(zero, self.kernel.layout.nodes))

    # ---- bandwidth (iperf3) --------------------------------------------------------------------
    def iperf3(self, path: BandwidthPath, options: IperfOptions, cluster: ClusterState, *,
               progress: Callable[[float], None] | None = None, json: bool = True) -> str:
        """Real iperf3 processes in the pods' namespaces (:mod:`kslab.netns.iperf`): ``iperf3 -s
        -1 -J`` started in ``path.server_pod`` (the lab's process, stopped whatever happens), the
        client ``iperf3 -c path.host -p path.port ... -J`` in ``path.client``."""
        out = self.kernel.iperf3(path.client, path.server_pod, path.host, replace(options, port=path.port), path.server_port,
                                 progress=progress, json=json)
        if not out.stdout.strip() and out.returncode != 0:
            raise EnvironmentProblem(f"iperf3 -c {path.host} in {path.client} exited with status {out.returncode}: "
                                     f"{xtables_kernel.one_line(out.stderr) or 'no output'}")
        return out.stdout

    # ---- the study's commands ------------------------------------------------------------------
    def run_tool(self, where: str, command: Command, cluster: ClusterState) -> ShellOutput:
        """The real tool inside ``where``'s network namespace (``ip netns exec``), with a timeout.
        ``iptables``/``iptables-save`` are the lab's iptables backend; a ``curl`` to a name gets
        the address the lab's DNS gave (``--resolve``, so the Host header keeps the name), a name
        it cannot resolve gets curl's own answer (exit 6) without running; ``hostname`` runs in a
        UTS namespace named like the container (a kind pod's or node's hostname is its name);
        ``nft`` (``nft list ruleset``) runs through :func:`kslab.nft.kernel.nft_run`."""
        from ..shell import (Cat, Curl, Hostname, IptablesList, IptablesRules, IptablesSave, Iperf3, ListRecent, ShellOutput,
                             hostname_of)

        if isinstance(command, Iperf3):  # the real client; the server started on demand where the host leads
            path = command.path(cluster, where)
            out = self.kernel.iperf3(where, path.server_pod, path.host, command.options, path.server_port, json=command.json)
            return ShellOutput(out.stdout, out.stderr, out.returncode)
        argv = list(command.argv)
        if command.tool == "nft":  # kslab.nft.kernel is the one module that runs nft (inside the namespace)
            r = nft_kernel.nft_run(self.kernel.namespace_of(where), argv[1:], timeout=command.timeout)
            return ShellOutput(r.stdout, r.stderr, r.returncode)
        if isinstance(command, (IptablesList, IptablesRules)):
            argv[0] = xtables_kernel.iptables_tools(self.kernel.backend, family=command.family).iptables
        elif isinstance(command, IptablesSave):
            argv[0] = xtables_kernel.iptables_tools(self.kernel.backend, family=command.family).save
        elif isinstance(command, (Cat, ListRecent)):
            xtables_kernel.require_tool(argv[0])  # run by name: cat's and ls's messages start with it
        elif isinstance(command, Hostname):
            argv = [xtables_kernel.require_tool("unshare"), "--uts", "sh", "-c", 'hostname "$1" && exec hostname', "sh",
                    hostname_of(cluster, where)]
        else:
            argv[0] = xtables_kernel.require_tool(argv[0])
        if isinstance(command, Curl):
            if command.address is None:
                return command.error(6, f"Could not resolve host: {command.host}")
            if command.address != command.host:
                argv[1:1] = ["--resolve", f"{command.host}:{command.port}:{command.address}"]
        r = self.kernel.exec(where, argv, timeout=command.timeout, keep_cr=isinstance(command, Curl))  # curl -i: CRLF as printed
        return ShellOutput(r.stdout, r.stderr, r.returncode)

    def close(self) -> None:
        self.kernel.close()  # down, unless the lab was detached (kslab netns up)


def health_answers(ruleset: RuleSet) -> dict[int, HealthResponse]:
    """What a node's kube-proxy answers on each healthCheckNodePort after the sync that made
    ``ruleset``: :func:`kslab.healthcheck.synced_health` of the sync's own service ports and
    endpoints (every one the sync saw, partial or full), answered as
    :func:`kslab.healthcheck.service_health`. Not from the cluster: the count changes when
    kube-proxy syncs, as upstream's."""
    rows = ((row[0], row[1]) for row in getattr(ruleset, "service_port_rows", ()))
    return {port: service_health(ns, name, n) for port, (ns, name, n) in synced_health(rows).items()}


def lb_specs(cluster: ClusterState) -> list[LBSpec]:
    """The load balancers the cluster's LoadBalancer Services get (one per Service with an
    ingress IP: its first one; TCP ports; probe as :func:`kslab.loadbalancer.probe_target`)."""
    out = []
    for svc in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
        ip = next((i.ip for i in svc.load_balancer_ingress if i.ip), "") if svc.type == "LoadBalancer" else ""
        ports = tuple(p.port for p in svc.ports if (p.protocol or "TCP").upper() == "TCP")
        if not ip or not ports:
            continue
        probe_port, probe_path = probe_target(svc)
        out.append(LBSpec(service=svc.key, vip=ip, ports=ports, policy=svc.external_traffic_policy or "Cluster",
                          probe_port=probe_port, probe_path=probe_path))
    return out
