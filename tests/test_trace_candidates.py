"""The tracer's whole answer (issue 16, deliverable 3): ``Trace.candidates``, every endpoint a new
connection could reach, with its probability, masquerade and why (kslab/sim/candidates.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from kslab.lab import Lab
from kslab.sim.candidates import STAT_SCALE, explore, network_candidates

REPO = Path(__file__).resolve().parents[1]
CLIENTS = ("net-pod", "webpod1", "webpod3", "myk8s-worker", "mypc")
MODES = ("iptables", "nftables")


def lab_of(mode: str, seed: int = 3) -> Lab:
    return Lab(proxy={"mode": mode}, seed=seed)


def destinations(lab: Lab) -> list[str]:
    """Every Service of the study's lab, by name, and every node's NodePort."""
    out = [s.name for s in lab.cluster.services]
    for s in lab.cluster.services:
        for p in s.ports:
            if p.node_port:
                out += [f"{n.name}:{p.node_port}" for n in lab.cluster.nodes]
    return out


@pytest.mark.parametrize("mode", MODES)
def test_probabilities_sum_to_one_on_every_trace_of_the_study_lab(mode):
    lab = lab_of(mode)
    seen = 0
    for client in CLIENTS:
        for to in destinations(lab):
            t = lab.trace(client, to)
            assert t.candidates, (client, to)
            assert sum(c.probability for c in t.candidates) == pytest.approx(1.0, abs=1e-12), (client, to)
            assert all(0 < c.probability <= 1 for c in t.candidates)
            # the branch the trace drew is one of them, with the same masquerade
            hit = [c for c in t.candidates if (c.ip, c.port, c.outcome) == (t.endpoint_ip, t.endpoint_port, t.outcome)]
            assert len(hit) == 1 and hit[0].masquerade == t.masquerade, (client, to, t.candidates)
            seen += 1
            d = t.to_dict()
            assert [c["probability"] for c in d["candidates"]] == [c.probability for c in t.candidates]
            assert d["candidates_source"] == "simulator"
    assert seen == len(CLIENTS) * len(destinations(lab))


@pytest.mark.parametrize("mode", MODES)
def test_three_webpods_each_one_third_and_masquerade_only_on_the_hairpin(mode):
    lab = lab_of(mode)
    t = lab.trace("webpod1", "svc-clusterip")
    by_pod = {c.pod: c for c in t.candidates}
    assert set(by_pod) == {"webpod1", "webpod2", "webpod3"}
    for c in by_pod.values():
        assert c.probability == pytest.approx(1 / 3, abs=1e-9)
    # hairpin (the pod reaches itself through the Service): KUBE-MARK-MASQ; the others keep the pod's IP
    assert by_pod["webpod1"].masquerade and not by_pod["webpod2"].masquerade and not by_pod["webpod3"].masquerade
    assert by_pod["webpod2"].source_ip_seen == lab.cluster.pod("webpod1").pod_ip
    if mode == "iptables":  # the ladder: 1/3, then 1/2 of the rest, then the rest
        assert "statistic --probability 0.33333333349" in " ".join(by_pod["webpod1"].why)
        assert "statistic --probability 0.50000000000" in " ".join(by_pod["webpod2"].why)
    else:
        assert all("numgen random mod 3" in " ".join(c.why) for c in by_pod.values())


def test_iptables_probabilities_are_the_kernels_thresholds():
    """xt_statistic matches with chance lround(p * 2^31) / 2^31: the first rung is not exactly 1/3."""
    lab = lab_of("iptables")
    t = lab.trace("net-pod", "svc-clusterip")
    first = next(c for c in t.candidates if c.pod == "webpod1")
    assert first.probability == float(Fraction(int(0.33333333349 * STAT_SCALE + 0.5), STAT_SCALE))


@pytest.mark.parametrize("mode", MODES)
def test_local_policy_lists_only_local_endpoints(mode):
    lab = lab_of(mode)
    lab.patch_service("svc-nodeport", external_traffic_policy="Local")
    port = lab.cluster.service("svc-nodeport").ports[0].node_port
    echo = {p.name: p.node_name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"}
    for node in lab.cluster.nodes:
        t = lab.trace("mypc", f"{node.name}:{port}")
        local = {name for name, n in echo.items() if n == node.name}
        if local:
            assert {c.pod for c in t.candidates} == local
            assert all(c.node == node.name and not c.masquerade and c.source_ip_seen == "172.18.0.100" for c in t.candidates)
            assert all(any("local-only traffic policy" in w for w in c.why) for c in t.candidates)
        else:  # no local endpoint: kube-proxy drops it, one certain candidate says so
            assert [(c.outcome, c.ip, c.probability) for c in t.candidates] == [("dropped", "", 1.0)]
    # from a pod, the ClusterIP still reaches every endpoint (eTP does not apply)
    assert len(lab.trace("net-pod", "svc-nodeport").candidates) == 3


def test_internal_traffic_policy_local_lists_only_the_clients_node():
    lab = lab_of("iptables")
    lab.patch_service("svc-clusterip", internal_traffic_policy="Local")
    t = lab.trace("webpod2", "svc-clusterip")
    assert [(c.pod, c.probability) for c in t.candidates] == [("webpod2", 1.0)]


@pytest.mark.parametrize("mode", MODES)
def test_affinity_with_a_remembered_client_is_one_candidate(mode):
    lab = lab_of(mode)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
    before = lab.trace("net-pod", "svc-clusterip")  # nobody remembered yet: the ladder
    assert len(before.candidates) == 3
    # the trace's connection was remembered: the next one can only go where it went
    after = lab.trace("net-pod", "svc-clusterip")
    assert [(c.pod, c.probability) for c in after.candidates] == [(before.endpoint_pod, 1.0)]
    assert any(w.startswith("affinity:") for w in after.candidates[0].why)
    # another client is not remembered
    assert len(lab.trace("webpod3", "svc-clusterip").candidates) == 3
    lab.advance(31)  # past the timeout: free again
    assert len(lab.trace("net-pod", "svc-clusterip").candidates) == 3


def _chi_square(counts: dict, probs: dict, n: int) -> float:
    return sum((counts.get(k, 0) - n * p) ** 2 / (n * p) for k, p in probs.items())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client,to", [("net-pod", "svc-clusterip"), ("mypc", "myk8s-worker:NP"), ("webpod1", "svc-nodeport")])
def test_run_distribution_agrees_with_candidates_chi_square(mode, client, to):
    lab = lab_of(mode)
    if to.endswith(":NP"):
        to = to.replace("NP", str(lab.cluster.service("svc-nodeport").ports[0].node_port))
    probs = {c.pod: c.probability for c in lab.trace(client, to).candidates}
    n = 3000
    df = lab.run(client, to, n=n, seed=11)
    counts = df["endpoint_pod"].value_counts().to_dict()
    assert set(counts) <= set(probs)
    # chi-square with len-1 degrees of freedom; 13.8 is its 0.1% critical value for 2
    assert len(probs) == 3 and _chi_square(counts, probs, n) < 13.8


def _counters(net) -> list[tuple[int, int]]:
    return [(r.counter.packets, r.counter.bytes) for node in net.nodes.values() for chains in node.netfilter.chains.values()
            for chain in chains.values() for r in chain.rules if r.counter is not None]


def test_candidates_leave_the_lab_as_it_was():
    """Working out the candidates opens no connection: counters, xt_recent, RNGs and later runs are unchanged."""
    a, b = lab_of("iptables"), lab_of("iptables")
    for lab in (a, b):
        lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
        lab.run("webpod2", "svc-clusterip", n=5, seed=1)  # some counters, one remembered client
    net = a.dataplane.network
    dst = a.cluster.service("svc-clusterip").cluster_ip
    recent = {n: repr(node.state.recent) for n, node in net.nodes.items()}
    counters = _counters(net)
    assert any(counters)
    for _ in range(3):
        network_candidates(net, "net-pod", dst, 9000, "tcp")
    assert {n: repr(node.state.recent) for n, node in net.nodes.items()} == recent
    assert _counters(net) == counters
    ra = a.run(["net-pod", "webpod1"], "svc-clusterip", n=200, seed=None)
    rb = b.run(["net-pod", "webpod1"], "svc-clusterip", n=200, seed=None)
    assert ra["endpoint_pod"].tolist() == rb["endpoint_pod"].tolist()


def test_explore_enumerates_a_ladder_and_numgen_exactly():
    """The explorer on its own: a 4-rung ladder (1/4, 1/3, 1/2, rest) and numgen mod 5."""
    from kslab.sim.packet import NamespaceState
    import random

    st = NamespaceState(rng=random.Random(1))
    thresholds = [int(p * STAT_SCALE + 0.5) for p in (0.25, 1 / 3, 0.5)]

    def ladder(_lb, _rec):
        for i, t in enumerate(thresholds):
            if st.statistic(t):
                return i
        return len(thresholds)

    got = {}
    for p, r in explore(ladder, [st]):
        got[r] = got.get(r, 0) + p
    assert sum(got.values()) == 1 and set(got) == {0, 1, 2, 3}
    assert all(abs(float(p) - 0.25) < 1e-9 for p in got.values())
    got = explore(lambda _lb, _rec: st.numgen(5), [st])
    assert sorted(r for _, r in got) == [0, 1, 2, 3, 4] and all(p == Fraction(1, 5) for p, _ in got)


def test_cli_trace_prints_and_emits_candidates():
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--from", "net-pod", "--to", "svc-clusterip", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert len(d["candidates"]) == 3 and sum(c["probability"] for c in d["candidates"]) == pytest.approx(1.0)
    assert {c["endpoint"]["pod"] for c in d["candidates"]} == {"webpod1", "webpod2", "webpod3"}
    assert all(c["masquerade"] is False for c in d["candidates"])
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--from", "net-pod", "--to", "svc-clusterip"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "where a new connection can go (3 candidates):" in r.stdout
    assert sum("webpod" in line and "masquerade: no" in line for line in r.stdout.splitlines()) >= 3


def test_iptables_save_trace_has_candidates(tmp_path):
    from kslab.controlplane import load_cluster
    from kslab.proxy.iptables import render_node

    st = load_cluster([REPO / "data" / "myk8s"], seed=1)
    p = tmp_path / "worker.iptables-save"
    p.write_text(render_node(st, "myk8s-worker").save_text())
    node_ip = st.node("myk8s-worker").internal_ip
    port = st.service("svc-nodeport").ports[0].node_port
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--iptables-save", str(p), "--node-ip", node_ip,
                        "--from", "172.18.0.100", "--to", f"{node_ip}:{port}/tcp", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    echo = {p.pod_ip for p in st.pods if p.owner == "Deployment/deploy-echo"}
    assert {c["endpoint"]["ip"] for c in d["candidates"]} == echo
    assert all(c["masquerade"] and c["verdict"] == "forwarded" for c in d["candidates"])
    assert sum(c["probability"] for c in d["candidates"]) == pytest.approx(1.0)


def test_kind_trace_candidates_come_from_the_nodes_real_dumps(live_cluster):
    """kind (the fake live cluster): the trace walks the nodes' real iptables-save in the simulator;
    the candidates are every branch of that walk, and say who worked them out."""
    import kslab

    with kslab.Lab(backend="kind") as lab:
        t = lab.trace("net-pod", "svc-clusterip")
        assert t.backend == "kind" and t.candidates_source == t.source and "live iptables-save" in t.candidates_source
        assert {c.pod for c in t.candidates} == {"webpod1", "webpod2", "webpod3"}
        assert sum(c.probability for c in t.candidates) == pytest.approx(1.0)
        assert "worked out by the" in str(t)
        t2 = lab.trace("myk8s-worker", "svc-clusterip")
        assert all(c.masquerade for c in t2.candidates)  # a node's own address is outside the cluster CIDR


def test_load_balancer_node_choice_is_a_branch_too(lb_local_webpod):
    """The cloud load balancer picks one of the nodes its probe finds healthy (1/n each), then that
    node's rules pick the pod: eTP Local, each node its own webpod; eTP Cluster, every pod through
    every node, masqueraded to the ingress node's address."""
    lab = Lab(seed=3)
    lab.apply(lb_local_webpod)
    t = lab.trace("mypc", "172.18.255.200:80")
    assert sorted((c.pod, c.ingress_nodes, c.masquerade, c.source_ip_seen) for c in t.candidates) == [
        (f"webpod{i}", [node], False, "172.18.0.100") for i, node in
        ((1, "myk8s-worker"), (2, "myk8s-worker2"), (3, "myk8s-worker3"))]
    assert all(c.probability == pytest.approx(1 / 3, abs=1e-12) for c in t.candidates)
    probs = {c.pod: c.probability for c in t.candidates}
    df = lab.run("mypc", "172.18.255.200:80", n=1500, seed=4)
    assert _chi_square(df["endpoint_pod"].value_counts().to_dict(), probs, 1500) < 13.8
    lab.patch_service("svc-lb", external_traffic_policy="Cluster")
    t = lab.trace("mypc", "172.18.255.200:80")
    assert {c.pod for c in t.candidates} == {"webpod1", "webpod2", "webpod3"} and all(c.masquerade for c in t.candidates)
    assert all(len(c.ingress_nodes) == 4 and len(c.sources_seen) == 4 and c.source_ip_seen == "" for c in t.candidates)
    assert sum(c.probability for c in t.candidates) == pytest.approx(1.0, abs=1e-12)


def test_too_many_ways_is_said_not_an_error(monkeypatch):
    """Past MAX_BRANCHES the candidates are not worked out (each branch walks the ladder: n^2);
    the trace says so in text and JSON, and is otherwise the same."""
    import kslab.sim.candidates as cand

    plain = lab_of("iptables").trace("net-pod", "svc-clusterip")
    monkeypatch.setattr(cand, "MAX_BRANCHES", 2)
    t = lab_of("iptables").trace("net-pod", "svc-clusterip")
    assert t.candidates is None and t.candidates_source.startswith("none: more than")
    assert t.to_dict()["candidates"] is None and "where a new connection can go: none" in str(t)
    assert (t.endpoint_pod, t.chains, t.steps) == (plain.endpoint_pod, plain.chains, plain.steps)


def test_parse_xt_recent_puts_the_kernels_stamps_on_the_simulated_clock():
    """/proc/net/xt_recent as recent_seq_show prints it (stamps in ring order), HZ = 250."""
    from kslab.sim.candidates import KERNEL_LISTS_AT, parse_xt_recent

    text = ("== /proc/net/xt_recent/KUBE-SEP-ABC\n"
            "src=10.10.0.2 ttl: 64 last_seen: 4314391528 oldest_pkt: 2 4314391528, 4314390778\n"
            "src=10.10.1.2 ttl: 63 last_seen: 4314391278 oldest_pkt: 1 4314391278\n"
            "== /proc/net/xt_recent/KUBE-SEP-DEF\n")
    lists = parse_xt_recent(text, 4314391778)
    assert set(lists) == {"KUBE-SEP-ABC", "KUBE-SEP-DEF"} and lists["KUBE-SEP-DEF"] == {}
    a = lists["KUBE-SEP-ABC"]
    assert list(a) == ["10.10.1.2", "10.10.0.2"]  # least recently updated first
    assert a["10.10.0.2"].stamps == [KERNEL_LISTS_AT - 4.0, KERNEL_LISTS_AT - 1.0]
    assert a["10.10.0.2"].last_seen == KERNEL_LISTS_AT - 1.0 and a["10.10.1.2"].ttl == 63


def test_nft_file_trace_has_candidates(tmp_path):
    """``kslab trace --nft``: one node's nftables ruleset; numgen's every value is a candidate."""
    lab = lab_of("nftables")
    p = tmp_path / "worker.nft"
    p.write_text(lab.nft_list("myk8s-worker"))
    node_ip = lab.cluster.node("myk8s-worker").internal_ip
    clusterip = lab.cluster.service("svc-clusterip").cluster_ip
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--nft", str(p), "--node-ip", node_ip,
                        "--from", "10.10.1.2", "--to", f"{clusterip}:9000/tcp"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if "numgen random mod 3 (each value 1/3)" in line]
    assert len(lines) == 3 and all(line.strip().startswith("33.33%") for line in lines)
    webpods = {lab.cluster.pod(f"webpod{i}").pod_ip for i in (1, 2, 3)}
    assert {line.split("(")[1].split(":")[0] for line in lines} == webpods
