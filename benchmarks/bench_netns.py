"""Benchmark: the real-kernel lab (issue 4 target: ``up`` of the study's lab with its 7 pods in
under 5 s) and real connections per second through kube-proxy's rules.

Figures: the time to bring the lab up (namespaces, veths, routes, kube-proxy's full sync on
every node, servers answering) and down; connections/s from net-pod to svc-clusterip, with the
same client to webpod1's IP directly as the baseline measured in the same run (the ratio is
the price of DNAT + conntrack + a second node hop when the endpoint is remote), and mypc to a
NodePort; the time of full-lab up/down cycles. Needs root, ``ip`` and ``iptables``.

    python3 benchmarks/bench_netns.py [-n 2000] [--ups 3] [--cycles 10] [--services 200] [--repeat 5]

The last figure is kube-proxy's partial sync (KEP-3453: top-level chains plus the changed
Service's chains) against a forced full sync, in the kernel, with 200 extra Services.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kslab.controlplane import load_cluster  # noqa: E402
from kslab.errors import EnvironmentProblem  # noqa: E402
from kslab.lab import Lab  # noqa: E402
from kslab.netns.lab import NetnsLab  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "myk8s"
TARGET_UP_SECONDS = 5.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000, help="connections per traffic figure")
    ap.add_argument("--ups", type=int, default=3, help="up/down repetitions for the timing")
    ap.add_argument("--cycles", type=int, default=10, help="full-lab up/down cycles to time (0: skip)")
    ap.add_argument("--services", type=int, default=200, help="extra ClusterIP Services for the partial vs full sync figure (0: skip)")
    ap.add_argument("--repeat", type=int, default=5, help="syncs of each kind to time")
    a = ap.parse_args()
    try:
        NetnsLab.check_environment()
    except EnvironmentProblem as err:
        print(f"bench_netns: {err}", file=sys.stderr)
        return 1
    state = load_cluster([str(DATA)], seed=1)

    ups, downs, syncs = [], [], []
    for _ in range(a.ups):
        t0 = time.perf_counter()
        lab = Lab(backend="netns", seed=1)  # namespaces, servers, then every node's first (full) sync
        ups.append(time.perf_counter() - t0)
        syncs += [s.seconds for s in lab.syncs]
        t0 = time.perf_counter()
        lab.close()
        downs.append(time.perf_counter() - t0)
    up = statistics.median(ups)
    print(f"up (4 nodes, 7 pods, 6 servers): median {up:.2f} s, best {min(ups):.2f} s over {a.ups}; "
          f"down median {statistics.median(downs):.2f} s")
    print(f"  kube-proxy full sync per node (4 in parallel): median {statistics.median(syncs) * 1000:.0f} ms")
    print(f"ratio up / target {TARGET_UP_SECONDS:.0f} s = {up / TARGET_UP_SECONDS:.2f}")

    with Lab(backend="netns", seed=1) as on_kernel:
        lab = on_kernel.dataplane.kernel
        cip = state.service("svc-clusterip").cluster_ip
        node_port = state.service("svc-nodeport").ports[0].node_port
        lab.connect("net-pod", cip, 9000, n=100)  # warm up
        direct = lab.connect("net-pod", "10.10.1.2", 80, n=a.n)
        service = lab.connect("net-pod", cip, 9000, n=a.n)
        nodeport = lab.connect("mypc", lab.layout.nodes[0].ip, node_port, n=a.n)
        for label, run in (("net-pod -> webpod1 10.10.1.2:80 (baseline)", direct),
                           (f"net-pod -> svc-clusterip {cip}:9000", service),
                           (f"mypc -> {lab.layout.nodes[0].name}:{node_port} (NodePort)", nodeport)):
            print(f"{label}: {run.rate:,.0f} conn/s ({run.ok}/{len(run.results)} ok, by pod {run.by_pod()})")
        print(f"ratio svc-clusterip / direct = {service.rate / direct.rate:.2f}; NodePort / direct = {nodeport.rate / direct.rate:.2f}")

    # the same 10,000-connection experiment on the simulator and on the kernel (wall time, ratio)
    sim = Lab(seed=1)
    t0 = time.perf_counter()
    sim.run("net-pod", "svc-clusterip", n=10_000, seed=1)
    sim_wall = time.perf_counter() - t0
    with Lab(backend="netns", seed=1) as kernel:
        t0 = time.perf_counter()
        kdf = kernel.run("net-pod", "svc-clusterip", n=10_000)
        kernel_wall = time.perf_counter() - t0
    print(f"10,000 connections net-pod -> svc-clusterip: sim {sim_wall:.2f} s, kernel {kernel_wall:.2f} s "
          f"({int((kdf['outcome'] == 'ok').sum())} ok); ratio kernel / sim = {kernel_wall / sim_wall:.1f}")

    if a.services:
        bench_syncs(a.services, a.repeat)

    if a.cycles:
        t0 = time.perf_counter()
        for _ in range(a.cycles):
            with Lab(backend="netns", seed=1):
                pass
        per = (time.perf_counter() - t0) / a.cycles
        print(f"{a.cycles} full-lab up/down cycles: {per:.2f} s per cycle; 50 cycles would take {per * 50:.0f} s")
    return 0 if up < TARGET_UP_SECONDS else 1


def extra_services(n: int) -> str:
    """``n`` ClusterIP Services with two endpoints each (the webpods), as manifests."""
    docs = []
    for i in range(n):
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: bulk-{i}, namespace: default}}
spec: {{ports: [{{name: web, port: 80, targetPort: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: bulk-{i}-1, namespace: default, labels: {{kubernetes.io/service-name: bulk-{i}}}}}
addressType: IPv4
endpoints: [{{addresses: [10.10.1.2]}}, {{addresses: [10.10.2.2]}}]
ports: [{{name: web, port: 80, protocol: TCP}}]""")
    return "\n---\n".join(docs) + "\n"


def bench_syncs(n_services: int, repeat: int) -> None:
    """kube-proxy's partial sync (one Service changed) against a forced full sync, in the kernel,
    with ``n_services`` extra Services: seconds per node sync and restore lines written."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "bulk.yaml"
        extra.write_text(extra_services(n_services))
        lab = Lab([str(DATA), str(extra)], backend="netns", seed=1)
    with lab:
        partial, full = [], []
        replicas = 3
        for k in range(repeat):
            replicas = 4 if replicas == 3 else 3
            lab.scale("deploy-echo", replicas)  # new pods, then kube-proxy's own choice: partial syncs
            partial += [s for s in lab.syncs[-4:] if not s.full]
            lab.resync(full=True)
            full += [s for s in lab.syncs[-4:] if s.full]
        assert len(partial) == 4 * repeat and len(full) == 4 * repeat, (len(partial), len(full))
        p_s, f_s = statistics.median(s.seconds for s in partial), statistics.median(s.seconds for s in full)
        p_l, f_l = statistics.median(s.lines for s in partial), statistics.median(s.lines for s in full)
        print(f"{len(lab.cluster.services)} Services: partial sync (deploy-echo scaled) median {p_s * 1000:.0f} ms, "
              f"{p_l:.0f} restore lines; full sync median {f_s * 1000:.0f} ms, {f_l:.0f} lines per node")
        print(f"ratio partial / full: time {p_s / f_s:.2f}, lines {p_l / f_l:.2f}")


if __name__ == "__main__":
    sys.exit(main())
