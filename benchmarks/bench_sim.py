"""Benchmark: connections per second through ``Lab.run`` on the sim backend (issue 9 target:
>= 50,000/s for the study's 10,000-connection experiment net-pod -> svc-clusterip, one core),
through a 1,000-Service ruleset, and the wall time of that experiment. Ratios are printed
against the target and between the rulesets; the exit status is 1 below the target.

    python3 benchmarks/bench_sim.py [-n 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kslab.lab import Lab  # noqa: E402
from kslab.model import Service, ServicePort  # noqa: E402

TARGET = 50_000  # connections per second through Lab.run (issue 9)


def timed(lab: Lab, src: str, to: str, n: int, repeat: int = 3) -> tuple[float, int]:
    """Best of ``repeat`` runs of the same seeded experiment."""
    best, ok = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        df = lab.run(src, to, n=n, seed=1)
        best = min(best, time.perf_counter() - t0)
        ok = int((df["outcome"] == "ok").sum())
    return best, ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    a = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    lab = Lab(seed=1)
    lab.run("net-pod", "svc-clusterip", n=200, seed=0)  # warm up
    wall, ok = timed(lab, "net-pod", "svc-clusterip", a.n)
    rate = a.n / wall
    print(f"lab ruleset: {a.n} connections net-pod -> svc-clusterip in {wall:.3f}s = {rate:,.0f} conn/s (ok={ok})")

    # the same lab plus 1,000 more ClusterIP Services (selecting the webpods), all nodes re-rendered
    big = Lab(seed=1)
    for i in range(1000):  # ClusterIPs from a /16 beside the lab's /24, which is too small
        ip = f"10.201.{i // 250}.{i % 250 + 1}"
        big.cluster.services.append(Service(name=f"bulk{i:04d}", cluster_ip=ip, cluster_ips=[ip], internal_traffic_policy="Cluster",
                                            ports=[ServicePort(port=8000, name="http", target_port=80)], selector={"app": "webpod"}))
    big.control.reconcile()
    big.resync()  # kube-proxy's full sync on every node, as after the Services were created
    nodes = [n.name for n in big.cluster.nodes]
    rules = sum(big.render(n).rule_count() for n in nodes) // len(nodes)
    wall_big, ok_big = timed(big, "net-pod", "svc-clusterip", a.n)
    rate_big = a.n / wall_big
    print(f"1,000-service ruleset ({rules} rules per node): {rate_big:,.0f} conn/s (ok={ok_big})")
    t = big.trace("net-pod", "svc-clusterip")
    print(f"  rules the kernel evaluates for one new connection: lab {lab.trace('net-pod', 'svc-clusterip').rules_evaluated}, "
          f"1,000-service {t.rules_evaluated}")
    print(f"ratio lab rate / target {TARGET:,} = {rate / TARGET:.2f}; 1,000-service rate / lab rate = {rate_big / rate:.2f}")
    print(f"10,000-connection experiment wall time: {wall * 10000 / a.n:.3f}s")

    # the dual-stack lab (issue 16): the same experiment to the Service's IPv4 and IPv6 ClusterIPs
    dual = Lab("myk8s-dualstack", seed=1)
    svc = dual.cluster.service("svc-clusterip")
    port = svc.ports[0].port
    rates = {}
    for ip in svc.cluster_ips:
        to = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        dual.run("net-pod", to, n=200, seed=0)  # warm up
        wall_f, ok_f = timed(dual, "net-pod", to, a.n)
        rates[6 if ":" in ip else 4] = a.n / wall_f
        print(f"dual-stack lab, IPv{6 if ':' in ip else 4} ClusterIP {ip}: {a.n / wall_f:,.0f} conn/s (ok={ok_f})")
    print(f"ratio dual-stack IPv6 rate / IPv4 rate = {rates[6] / rates[4]:.2f}")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
