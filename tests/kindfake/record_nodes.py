"""Write tests/data/kind-nodes/NODE.iptables-save: what the fake ``docker`` (tests/kindfake/docker)
answers for ``docker exec NODE iptables-save -c``. Not a capture of a live cluster (there is no
Docker here): every node's kube-proxy (kslab's Proxier, its first sync) for the cluster the fake
API server serves, the fixture tests/data/kind/myk8s read as the kind backend reads a live
cluster (kube-system's coredns and the kube-proxy ConfigMap included, so ``lab.verify`` on the
fake cluster is an empty diff), loaded into kslab's simulator and driven with 10,100 connections
from net-pod to svc-clusterip (so the rule counters are those of a node that carried chapter
01's traffic), plus the chains that kind's own software writes on every node (Docker's embedded
DNS: DOCKER_OUTPUT and DOCKER_POSTROUTING; kindnet: KIND-MASQ-AGENT), copied from the real kind
worker dump in data/node-dumps/kind-worker3.nat.S with this cluster's addresses (docker
network gateway 172.18.0.1, pod subnet 10.10.0.0/16).

    PYTHONPATH=. python tests/kindfake/record_nodes.py

Run it after ``python -m tests.kindfake.make_fixtures`` (the dumps follow the fixture);
tests/test_kindfake.py fails when the committed dumps are not what it writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kslab.xtables import listing  # noqa: E402

OUT = ROOT / "tests" / "data" / "kind-nodes"
GATEWAY = "172.18.0.1"  # the kind docker network's gateway: Docker's embedded DNS answers there
POD_SUBNET = "10.10.0.0/16"

KIND_CHAINS = ["DOCKER_OUTPUT", "DOCKER_POSTROUTING", "KIND-MASQ-AGENT"]
KIND_RULES = {  # chain -> rules, appended after kube-proxy's (as on kind-worker3)
    "PREROUTING": [f"-A PREROUTING -d {GATEWAY}/32 -j DOCKER_OUTPUT"],
    "OUTPUT": [f"-A OUTPUT -d {GATEWAY}/32 -j DOCKER_OUTPUT"],
    "POSTROUTING": [
        f"-A POSTROUTING -d {GATEWAY}/32 -j DOCKER_POSTROUTING",
        '-A POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment "kind-masq-agent: ensure nat POSTROUTING '
        'directs all non-LOCAL destination traffic to our custom KIND-MASQ-AGENT chain" -j KIND-MASQ-AGENT',
    ],
    "DOCKER_OUTPUT": [
        f"-A DOCKER_OUTPUT -d {GATEWAY}/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:37389",
        f"-A DOCKER_OUTPUT -d {GATEWAY}/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:37347",
    ],
    "DOCKER_POSTROUTING": [
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport 37389 -j SNAT --to-source {GATEWAY}:53",
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport 37347 -j SNAT --to-source {GATEWAY}:53",
    ],
    "KIND-MASQ-AGENT": [
        f'-A KIND-MASQ-AGENT -d {POD_SUBNET} -m comment --comment "kind-masq-agent: local traffic is not subject to '
        'MASQUERADE" -j RETURN',
        '-A KIND-MASQ-AGENT -m comment --comment "kind-masq-agent: outbound traffic is subject to MASQUERADE (must be '
        'last in chain)" -j MASQUERADE',
    ],
}


def with_kind_chains(save: str) -> str:
    """``save`` (iptables-save -c) with kind's chains added to its nat table."""
    out: list[str] = []
    table = ""
    lines = save.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("*"):
            table = line[1:]
        if table == "nat" and line.startswith(":") and (i + 1 == len(lines) or not lines[i + 1].startswith(":")):
            out.append(line)
            out += [f":{c} - [0:0]" for c in KIND_CHAINS]
            continue
        if table == "nat" and line == "COMMIT":
            for chain in ("DOCKER_OUTPUT", "DOCKER_POSTROUTING", "KIND-MASQ-AGENT"):
                out += [f"[0:0] {r}" for r in KIND_RULES[chain]]
        out.append(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if table == "nat" and line.startswith("[") and " -A " in line:
            chain = line.split()[2]
            if chain in ("PREROUTING", "OUTPUT", "POSTROUTING") and f"-A {chain} " not in nxt:
                out += [f"[0:0] {r}" for r in KIND_RULES[chain]]
    return "\n".join(out) + "\n"


def main(out: Path = OUT) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "kindfake"))
    from dockerfake import kube_proxy_tables

    fake, dp = kube_proxy_tables(seed=11)
    cluster, tables = fake.cluster, dp.tables
    svc = cluster.service("svc-clusterip")
    for _ in range(101):  # the chapter's 100 curls, then its 10,000 connections (here 101 x 100)
        dp.connect(["net-pod"], svc.cluster_ip, 9000, "tcp", 100, seed=None, interval=0.001, timeout=1.0)
    out.mkdir(parents=True, exist_ok=True)
    for node in cluster.nodes:
        text = listing.save(tables[node.name].tables, counters=True, when=0.0)
        (out / f"{node.name}.iptables-save").write_text(with_kind_chains(text))
    print(f"wrote {len(cluster.nodes)} dumps to {out}")


if __name__ == "__main__":
    main()
