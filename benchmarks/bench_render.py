"""Benchmark: render N ClusterIP Services x M endpoints for one node (issue target: 10,000 x 10
under 2 s on one core).

Prints the time per service, the rule count, and ratios against a baseline measured in the same
run (joining the same number of pre-built lines), so results compare across machines.

    python3 benchmarks/bench_render.py [--services 10000] [--endpoints 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kslab.model import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort  # noqa: E402
from kslab.proxy.config import ProxyConfig  # noqa: E402
from kslab.proxy.iptables import render  # noqa: E402


def make_cluster(n_services: int, n_endpoints: int) -> tuple[list[Service], list[EndpointSlice]]:
    services, slices = [], []
    svc_base = int(ipaddress.IPv4Address("10.96.0.0"))
    pod_base = int(ipaddress.IPv4Address("10.10.0.0"))
    k = 0
    for i in range(n_services):
        name = f"svc{i:05d}"
        services.append(
            Service(name=name, namespace="bench", cluster_ip=str(ipaddress.IPv4Address(svc_base + 1 + i)),
                    ports=[ServicePort(port=80, name="http", protocol="TCP", target_port=8080)])
        )
        eps = []
        for j in range(n_endpoints):
            k += 1
            eps.append(Endpoint(addresses=[str(ipaddress.IPv4Address(pod_base + k))], node_name=f"node{j % 4}"))
        slices.append(EndpointSlice(name=f"{name}-abcde", namespace="bench", service_name=name,
                                    ports=[EndpointPort(port=8080, name="http", protocol="TCP")], endpoints=eps))
    return services, slices


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    services, slices = make_cluster(a.services, a.endpoints)
    cfg = ProxyConfig(node_name="node0", node_ips=("172.18.0.2",), cluster_cidr="10.10.0.0/16")

    best_render = best_text = float("inf")
    rs = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        rs = render(services, slices, cfg)
        t1 = time.perf_counter()
        text = rs.restore_text()
        t2 = time.perf_counter()
        best_render = min(best_render, t1 - t0)
        best_text = min(best_text, t2 - t1)
    assert rs is not None
    lines = text.count("\n")
    # baseline: the cheapest possible "renderer": join the same number of prebuilt lines
    proto = ["-A KUBE-SEP-XXXXXXXXXXXXXXXX -m comment --comment bench/svc:http -s 10.10.0.1 -j KUBE-MARK-MASQ"] * lines
    t0 = time.perf_counter()
    "\n".join(proto)
    base = time.perf_counter() - t0
    total = best_render + best_text
    print(f"services={a.services} endpoints/service={a.endpoints} large_cluster_mode={rs.large_cluster_mode}")
    print(f"rules={rs.rule_count()} restore_lines={lines} nat_chains={len(rs.nat.chains)}")
    print(f"render={best_render:.3f}s restore_text={best_text:.3f}s total={total:.3f}s "
          f"per_service={total / a.services * 1e6:.1f}us")
    print(f"ratio total/target(2s)={total / 2.0:.2f}  ratio total/join-baseline={total / base:.1f}x")
    return 0 if total < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
