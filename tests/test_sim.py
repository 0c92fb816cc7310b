"""The sim dataplane end to end: the study's lab, traces, experiments, and properties that must
hold for any number of endpoints, affinity timeout or client."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kslab import experiments
from kslab.errors import InputError
from kslab.lab import Lab

WEBPODS = ["webpod1", "webpod2", "webpod3"]


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab(seed=1)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", *args], capture_output=True, text=True, timeout=300)


# ---- acceptance: the distribution ---------------------------------------------------------------


def test_simulate_cli_distribution_and_determinism():
    r1 = run_cli("simulate", "-f", "data/myk8s", "--from", "net-pod", "--to", "svc-clusterip", "-n", "10000", "--seed", "1", "--json")
    assert r1.returncode == 0, r1.stderr
    out = json.loads(r1.stdout)
    assert out["backend"] == "sim" and out["connections"] == 10000 and out["failed"] == 0
    assert set(out["by_endpoint"]) == set(WEBPODS)
    for pod, count in out["by_endpoint"].items():
        assert abs(count / 10000 - 1 / 3) <= 0.015, (pod, count)
    # net-pod is inside the cluster CIDR: no SNAT, each pod sees net-pod's own IP
    assert all(len(ips) == 1 for ips in out["source_ip_seen"].values())
    r2 = run_cli("simulate", "-f", "data/myk8s", "--from", "net-pod", "--to", "svc-clusterip", "-n", "10000", "--seed", "1", "--json")
    assert json.loads(r2.stdout) == out  # equal seeds repeat exactly
    r3 = run_cli("simulate", "-f", "data/myk8s", "--from", "net-pod", "--to", "svc-clusterip", "-n", "10000", "--seed", "2", "--json")
    assert json.loads(r3.stdout)["by_endpoint"] != out["by_endpoint"]  # different seeds differ


# ---- acceptance: traces ----------------------------------------------------------------------------


def test_trace_net_pod_to_clusterip(lab):
    t = lab.trace("net-pod", "svc-clusterip").to_dict()
    chains = t["chains"]
    assert chains[:2] == ["KUBE-SERVICES", "KUBE-SVC-KBDEBIL6IU6WL7RF"]
    assert chains[2].startswith("KUBE-SEP-")
    assert t["verdict"] == "ok" and t["masquerade"] is False
    webpod_ips = {lab.cluster.pod(p).pod_ip + ":80" for p in WEBPODS}
    assert t["dnat_to"] in webpod_ips
    assert t["source_ip_seen"] == lab.cluster.pod("net-pod").pod_ip
    hooks = [s["hook"] for s in t["steps"] if s.get("hook")]
    assert hooks.index("PREROUTING") < hooks.index("POSTROUTING")
    # POSTROUTING ran KUBE-POSTROUTING and returned: the packet carried no masquerade mark
    post = [s for s in t["steps"] if s.get("hook") == "POSTROUTING" and s.get("chain") == "KUBE-POSTROUTING"]
    assert post and not any("MASQUERADE" in (s.get("rule") or "") for s in post)


def test_trace_cli_json_fields():
    r = run_cli("trace", "-f", "data/myk8s", "--from", "net-pod", "--to", "svc-clusterip", "--json")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    for key in ("chains", "dnat_to", "masquerade", "verdict"):
        assert key in t
    r = run_cli("trace", "-f", "data/myk8s", "--from", "net-pod", "--to", "svc-clusterip")
    assert "KUBE-SVC-KBDEBIL6IU6WL7RF" in r.stdout and "verdict: ok" in r.stdout


def test_mypc_cannot_reach_a_clusterip(lab):
    t = lab.trace("mypc", "svc-clusterip").to_dict()
    assert t["verdict"] != "ok" and t["endpoint"] is None
    assert "route" in t["reason"]


def test_trace_bad_input_is_one_line():
    r = run_cli("trace", "--from", "no-such-pod", "--to", "svc-clusterip")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no-such-pod" in r.stderr
    r = run_cli("trace", "--from", "net-pod", "--to", "nope")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


# ---- NodePort from outside -----------------------------------------------------------------------------


def test_nodeport_from_mypc_is_masqueraded_to_the_ingress_node(lab):
    np = lab.cluster.service("svc-nodeport").ports[0].node_port
    df = lab.run("mypc", f"myk8s-worker:{np}", n=300, seed=3)
    assert (df["outcome"] == "ok").all()
    worker_ip = lab.cluster.node("myk8s-worker").internal_ip
    gateway = lab.dataplane.network.nodes["myk8s-worker"].gateway_ip
    assert set(df["ingress_node"]) == {"myk8s-worker"}
    assert df["cross_node"].any() and not df["cross_node"].all()
    # MASQUERADE takes the address of the interface the packet leaves by: eth0 (the node IP)
    # toward another node, the pod's veth (kindnet/ptp puts the pod CIDR's .1 there) locally
    assert set(df[df["cross_node"]]["source_ip_seen"]) == {worker_ip}
    assert set(df[~df["cross_node"]]["source_ip_seen"]) == {gateway}
    assert df["masquerade"].all()


# ---- properties ------------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=20))
def test_shares_converge_to_one_over_n(n):
    lab = _scaled_lab(n)
    df = lab.run("net-pod", "svc-nodeport", n=300 * n, seed=n)
    pods = [p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]
    assert len(pods) == n
    shares = experiments.shares(df, categories=pods)
    assert (df["outcome"] == "ok").all()
    assert (shares - 1 / n).abs().max() < 0.05 + 2.5 / (300 * n) ** 0.5
    if n > 1:
        _, p = experiments.chi_square_uniform(df, categories=pods)
        assert p > 1e-4


_LABS: dict[int, Lab] = {}


def _scaled_lab(n: int) -> Lab:
    if n not in _LABS:
        lab = Lab(seed=7)
        lab.scale("deploy-echo", n)
        _LABS[n] = lab
    return _LABS[n]


@settings(max_examples=8, deadline=None, derandomize=True)
@given(timeout=st.integers(min_value=5, max_value=600), clients=st.integers(min_value=2, max_value=12))
def test_client_ip_affinity_holds_until_timeout(timeout, clients):
    lab = Lab(seed=5)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=timeout)
    ips = [f"10.10.1.{100 + i}" for i in range(clients)]  # pod-like clients on myk8s-worker
    first = lab.run(ips, "svc-clusterip", n=clients * 10, seed=1, interval=timeout / (clients * 20))
    per_client = first.groupby("client_ip")["endpoint_pod"].nunique()
    assert (per_client == 1).all()  # every client stays on one endpoint
    chosen = first.groupby("client_ip")["endpoint_pod"].first()
    # past the timeout the recent entries are stale: clients are balanced afresh
    lab.advance(timeout + 1)
    later = lab.run(ips * 30, "svc-clusterip", n=clients * 30, seed=2, interval=0)
    moved = (later.groupby("client_ip")["endpoint_pod"].first() != chosen).sum()
    assert later.groupby("client_ip")["endpoint_pod"].nunique().eq(1).all()
    assert moved >= 1 or clients < 3  # some client lands elsewhere after expiry (with 2 clients it may not)


def test_affinity_expiry_is_on_the_simulated_clock():
    lab = Lab(seed=5)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
    ends = set()
    for step in range(40):
        df = lab.run("net-pod", "svc-clusterip", n=1, seed=step, interval=0)
        ends.add(df.loc[0, "endpoint_pod"])
        lab.advance(29)  # always inside the window: never moves
    assert len(ends) == 1
    moved = set()
    for step in range(40):
        lab.advance(31)  # always past the window: free to move
        moved.add(lab.run("net-pod", "svc-clusterip", n=1, seed=100 + step, interval=0).loc[0, "endpoint_pod"])
    assert len(moved) == 3


@pytest.mark.parametrize("pod", WEBPODS)
def test_hairpin_is_masqueraded_and_reply_returns_through_conntrack(pod):
    lab = Lab(seed=11)
    df = lab.run(pod, "svc-clusterip", n=300, seed=4)
    assert (df["outcome"] == "ok").all()
    self_hits = df[df["endpoint_pod"] == pod]
    assert len(self_hits) > 50
    node = lab.cluster.pod(pod).node_name
    gw = lab.dataplane.network.nodes[node].gateway_ip
    assert set(self_hits["source_ip_seen"]) == {gw}  # masqueraded to the node's veth address
    assert self_hits["masquerade"].all()
    others = df[df["endpoint_pod"] != pod]
    assert set(others["source_ip_seen"]) == {lab.cluster.pod(pod).pod_ip} and not others["masquerade"].any()


def test_hairpin_without_the_rule_fails_and_says_why():
    lab = Lab(seed=11)
    rules = {n: rs.save_text() for n, rs in lab._rules.items()}
    stripped = {n: "\n".join(line for line in t.splitlines() if not (line.startswith("-A KUBE-SEP-") and "KUBE-MARK-MASQ" in line)) + "\n"
                for n, t in rules.items()}
    lab.dataplane.network.update_rules(stripped)
    df = lab.run("webpod1", "svc-clusterip", n=200, seed=4)
    bad = df[df["endpoint_pod"] == "webpod1"]
    assert len(bad) > 30 and (bad["outcome"] == "dropped").all() and bad["source_ip_seen"].isna().all()
    ip = lab.cluster.pod("webpod1").pod_ip
    # the pod drops it (accept_local=0): it does not keep a reply inside
    assert set(bad["reason"]) == {
        f"hairpin without masquerade: the node DNATed the connection back to webpod1 with its own address {ip} as "
        f"source, and webpod1 drops a packet whose source is its own address as a martian (accept_local=0), "
        f"so the client never gets an answer"}
    assert (df[df["endpoint_pod"] != "webpod1"]["outcome"] == "ok").all()
    t = next(t for seed in range(50) if (lab.reseed(seed), t := lab.trace("webpod1", "svc-clusterip"))[1].endpoint_pod == "webpod1")
    assert t.outcome == "dropped" and "martian" in t.reason and t.reason in str(t)


def test_a_pod_reaching_its_own_address_stays_inside_the_pod():
    lab = Lab(seed=11)
    web1 = lab.cluster.pod("webpod1")
    df = lab.run("webpod1", f"{web1.pod_ip}:80", n=20, seed=4)
    assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == {"webpod1"}
    assert set(df["source_ip_seen"]) == {web1.pod_ip} and not df["masquerade"].any()
    assert (lab.run("webpod1", f"{web1.pod_ip}:81", n=2)["outcome"] == "refused").all()
    t = lab.trace("webpod1", f"{web1.pod_ip}:80")
    assert t.outcome == "ok" and t.chains == [] and "stays in the pod" in str(t)


def test_load_balancer_ip_from_outside(lb_local_webpod):
    lab = Lab(seed=3)
    lab.apply(lb_local_webpod)
    assert lab.cluster.service("svc-lb").health_check_node_port > 0
    df = lab.run("mypc", "172.18.255.200:80", n=200, seed=1)
    assert (df["outcome"] == "ok").all()
    assert set(df["source_ip_seen"]) == {"172.18.0.100"}  # Local: the client IP is preserved
    assert not df["cross_node"].any()  # and the pod is always on the node the LB chose
    assert set(df["ingress_node"]) == {"myk8s-worker", "myk8s-worker2", "myk8s-worker3"}  # the control plane has no webpod


def _memo_script(lab):
    """A sequence of experiments and changes; returns every frame it produced."""
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    frames = [lab.run("net-pod", "svc-clusterip", n=1500, seed=1, interval=0)]
    frames += [lab.run("mypc", f"{n.name}:{np_}", n=400, seed=2) for n in lab.cluster.nodes]  # --random-fully SNAT
    frames.append(lab.run("webpod1", "svc-clusterip", n=600, seed=3))  # hairpin
    lab.break_pod("webpod2")
    frames.append(lab.run("net-pod", "svc-clusterip", n=600, seed=4))
    lab.break_pod("webpod2", False)
    lab.scale("deploy-echo", 5)
    frames.append(lab.run(["net-pod", "webpod3", "myk8s-worker"], "svc-nodeport", n=900, seed=5))
    lab.patch_service("svc-nodeport", external_traffic_policy="Local")
    frames += [lab.run("mypc", f"{n.name}:{np_}", n=200, seed=6) for n in lab.cluster.nodes]
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=5)  # recent: not memoised
    frames.append(lab.run([f"10.10.1.{100 + i}" for i in range(6)], "svc-clusterip", n=600, seed=7, interval=0.05))
    return frames


def test_flow_memo_gives_exactly_the_interpreters_results():
    """The flow memo is an optimisation only: the same script, memo on and off, same frames."""
    from kslab.lab import Lab

    on, off = Lab(seed=9), Lab(seed=9)
    off.dataplane.network.memo = False
    a, b = _memo_script(on), _memo_script(off)
    assert len(a) == len(b) == 13
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    assert on.dataplane.network.memo_hits > 4000 and off.dataplane.network.memo_hits == 0  # the memo was used (and only on one side)
    assert on.dataplane.network._memo_off  # the ClientIP flows went to the interpreter


def test_connections_frame_equals_the_row_by_row_frame():
    lab = Lab(seed=4)
    net = lab.dataplane.network
    conns = [net.connect(net.client(c), "10.200.1.1", 443, "tcp", trace=False) for c in ("net-pod", "mypc", "myk8s-worker")]
    conns += [net.connect(net.client("webpod1"), lab.cluster.service("svc-clusterip").cluster_ip, 9000, trace=False) for _ in range(20)]
    times = [0.5 * i for i in range(len(conns))]
    rows = experiments.frame(experiments.connection_row(i, c, "sim", t) for i, (c, t) in enumerate(zip(conns, times)))
    pd.testing.assert_frame_equal(experiments.connections_frame(conns, "sim", times), rows)


@pytest.mark.parametrize("options,names", [
    ({"masqurade_all": True}, ["masqurade_all", "masquerade_all"]),  # a typo: named, and the valid options listed
    ({"masquerade_all": "yes"}, ["masquerade_all", "True or False"]),
    ({"cluster_cidr": "10.10.0.0/99"}, ["cluster_cidr", "CIDR"]),
    ({"detect_local_mode": "Nowhere"}, ["detect_local_mode", "ClusterCIDR"]),
])
def test_set_proxy_checks_before_changing_anything(options, names):
    """A bad option is a one-line InputError naming it; the lab's rules and options are untouched
    and later changes still work."""
    lab = Lab(seed=2)
    before = {n.name: lab.render(n.name).save_text() for n in lab.cluster.nodes}
    saved = {n.name: lab.save_text(n.name) for n in lab.cluster.nodes}
    with pytest.raises(InputError) as err:
        lab.set_proxy(**options)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and all(name in message for name in names), message
    assert lab.proxy_options == {}
    assert {n.name: lab.save_text(n.name) for n in lab.cluster.nodes} == saved
    lab.scale("deploy-echo", 4)
    assert len(lab.run("net-pod", "svc-nodeport", n=50, seed=1)["endpoint_pod"].dropna()) == 50
    scaled = {n.name: lab.render(n.name).save_text() for n in lab.cluster.nodes}
    assert scaled != before
    lab.set_proxy(masquerade_all=True)  # a valid change still goes through: a full sync with the flag
    assert lab.proxy_options == {"masquerade_all": True}
    assert all(lab.render(n.name).save_text() != scaled[n.name] for n in lab.cluster.nodes)


def test_lab_proxy_options_are_checked_too():
    with pytest.raises(InputError, match="masqurade_all"):
        Lab(proxy={"masqurade_all": True})


def test_the_sync_history_is_bounded(monkeypatch):
    import kslab.lab

    monkeypatch.setattr(kslab.lab, "SYNC_HISTORY", 10)
    lab = Lab(seed=0)
    for replicas in (4, 5, 6, 7, 8):
        lab.scale("deploy-echo", replicas)
    assert len(lab.syncs) == 10  # 4 nodes x 6 syncs made, the oldest forgotten
    assert [s.full for s in lab.syncs] == [False] * 10 and lab.syncs[-1].updated_services


def test_a_node_reaching_its_localhost_nodeport_sends_from_127_0_0_1():
    """Source address selection: the route to 127.x is by lo, so a node's curl to 127.0.0.1:NP
    starts from 127.0.0.1 (route_localnet lets it be DNATed away, MASQUERADE rewrites it); with
    nodePortAddresses holding no loopback nothing is DNATed and nothing listens: refused, as on a
    kernel, not dropped by the localnet guard (which spares sources in 127.0.0.0/8)."""
    lab = Lab(seed=1)
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    t = lab.trace("myk8s-worker", f"127.0.0.1:{np_}")
    assert t.outcome == "ok" and t.masquerade and t.steps[-1].detail.startswith("reply reaches myk8s-worker: 127.0.0.1:")
    lab.clear_kernel_state()
    lab.sh("myk8s-worker", f"curl -s 127.0.0.1:{np_}")
    assert lab.sh("myk8s-worker", "conntrack -L").startswith("tcp      6 119 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 ")
    lab.set_proxy(nodeport_addresses=("172.18.0.0/16",))
    t = lab.trace("myk8s-worker", f"127.0.0.1:{np_}")
    assert t.outcome == "refused" and not t.dnat_to
    assert lab.trace("mypc", f"myk8s-worker:{np_}").outcome == "ok"


def test_the_noise_bound_holds_a_fair_split_and_catches_a_wrong_one():
    import numpy as np

    band = experiments.noise(1 / 3, 800)
    assert abs(band - 5 * (2 / 9 / 800) ** 0.5) < 1e-12
    fair = np.random.default_rng(0).binomial(800, 1 / 3, size=20_000) / 800
    assert (abs(fair - 1 / 3) < band).all()  # 20,000 fair kernels, none fails the claim
    assert (abs(fair - 1 / 3) >= 0.06).any()  # the fixed 6% it replaced failed some of them
    assert abs(1 / 2 - 1 / 3) > band  # a ladder of two (1/2 each) still fails it at 800
    assert abs(1 / 4 - 1 / 3) > experiments.noise(1 / 3, 3000)  # one of four, at 3000
    with pytest.raises(ValueError, match="n must be a positive"):
        experiments.noise(1 / 3, 0)
