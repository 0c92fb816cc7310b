"""The chapters' behaviour claims hold in kube-proxy's nftables mode too (issue 14).

Chapters 01-04, 06, 07 and 09 read iptables mode's own text (``iptables -t nat -S``, ``KUBE-SVC-…``
chains, rule counters), so their labs are made with ``proxy_mode="iptables"`` and the notebooks
do not follow ``$KSLAB_PROXY_MODE``. What they teach about connections does not depend on the
mode: where connections land, who is masqueraded, hairpin, session affinity, eTP Local,
loadBalancerSourceRanges, readiness, topology hints. Each claim below is one of those chapters'
experiments, run in both modes on the simulator with the same seed: a regression of the nftables
ruleset (kslab/proxy/nftables) or of its simulator (kslab/sim/nftables.py) fails here.

Chapters 00 and 08 do not pin a mode (where they read kube-proxy's rules they read the lab's mode's):
their English notebooks, learner and solution, run under nbval with ``KSLAB_PROXY_MODE=nftables`` at
the end (one subprocess, about 30 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kslab
from kslab import resources, views

ROOT = Path(__file__).resolve().parents[1]
MODES = ("iptables", "nftables")
MYPC = "172.18.0.100"


@pytest.fixture(autouse=True)
def _sim(monkeypatch):
    monkeypatch.delenv("KSLAB_BACKEND", raising=False)
    monkeypatch.delenv("KSLAB_PROXY_MODE", raising=False)


def lab_in(mode: str, seed: int = 1) -> kslab.Lab:
    lab = kslab.Lab(backend="sim", seed=seed, proxy_mode=mode)
    assert lab.proxy_mode == mode
    return lab


def nodes(lab):
    return [n.name for n in lab.cluster.nodes]  # control plane, worker, worker2, worker3


@pytest.mark.parametrize("mode", MODES)
def test_ch01_clusterip_spreads_evenly_without_masquerade(mode):
    lab = lab_in(mode)
    runs = lab.run("net-pod", "svc-clusterip", n=3000, seed=2)
    counts = runs["endpoint_pod"].value_counts()
    assert (runs["outcome"] == "ok").all()
    assert set(counts.index) == set(lab.pods("app=webpod")) and len(counts) == 3
    assert all(abs(k / 3000 - 1 / 3) < 0.04 for k in counts)
    assert set(runs["source_ip_seen"]) == {lab.cluster.pod("net-pod").pod_ip}  # pod to Service: no SNAT
    t = lab.trace("net-pod", "svc-clusterip")
    assert t.outcome == "ok" and not t.masquerade


@pytest.mark.parametrize("mode", MODES)
def test_ch02_client_ip_affinity_sticks_to_one_pod(mode):
    lab = lab_in(mode)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP")
    runs = lab.run("net-pod", "svc-clusterip", n=200, seed=2)
    assert (runs["outcome"] == "ok").all() and runs["endpoint_pod"].nunique() == 1
    lab.reset()  # the lab as made: no affinity
    assert lab.run("net-pod", "svc-clusterip", n=200, seed=2)["endpoint_pod"].nunique() == 3


@pytest.mark.parametrize("mode", MODES)
def test_ch03_only_the_hairpin_is_masqueraded(mode):
    lab = lab_in(mode, seed=3)
    web1 = lab.cluster.pod("webpod1")
    runs = lab.run("webpod1", "svc-clusterip", n=300, seed=3)
    assert (runs["outcome"] == "ok").all()
    back = runs[runs["endpoint_pod"] == "webpod1"]
    away = runs[runs["endpoint_pod"] != "webpod1"]
    assert len(back) > 50 and len(away) > 100
    assert not (back["source_ip_seen"] == web1.pod_ip).any()  # the hairpin: masqueraded, else the pod drops the reply
    assert set(back["source_ip_seen"]) == {lab.pod_gateway(web1.node_name)}
    assert set(away["source_ip_seen"]) == {web1.pod_ip}


@pytest.mark.parametrize("mode", MODES)
def test_ch06_nodeport_is_masqueraded_to_the_entry_node(mode):
    lab = lab_in(mode)
    cp, w1, *_ = nodes(lab)
    runs = lab.run("mypc", f"{w1}:svc-nodeport", n=300, seed=1)
    ip = {n.name: n.internal_ip for n in lab.cluster.nodes}
    assert (runs["outcome"] == "ok").all() and runs["endpoint_pod"].nunique() == 3
    assert MYPC not in set(runs["source_ip_seen"])
    assert set(runs["source_ip_seen"]) <= {ip[w1], lab.pod_gateway(w1)}
    assert (lab.run("mypc", f"{cp}:svc-nodeport", n=50, seed=1)["outcome"] == "ok").all()  # every node opens it


@pytest.mark.parametrize("mode", MODES)
def test_ch07_external_traffic_policy_local(mode):
    lab = lab_in(mode, seed=7)
    cp, *workers = nodes(lab)
    lab.patch_service("svc-nodeport", external_traffic_policy="Local")
    dropped = lab.run("mypc", f"{cp}:svc-nodeport", n=20, seed=2, timeout=0.3)
    assert not (dropped["outcome"] == "ok").any()  # no local endpoint on the control plane
    for w in workers:
        runs = lab.run("mypc", f"{w}:svc-nodeport", n=100, seed=2)
        assert (runs["outcome"] == "ok").all() and set(runs["endpoint_node"]) == {w}
        assert set(runs["source_ip_seen"]) == {MYPC}  # no SNAT under Local
    own = lab.run(cp, f"{cp}:svc-nodeport", n=100, seed=3)  # the node itself still reaches every pod
    assert (own["outcome"] == "ok").all() and own["endpoint_pod"].nunique() == 3


@pytest.mark.parametrize("mode", MODES)
def test_ch07_load_balancer_source_ranges(mode):
    lab = lab_in(mode, seed=7)
    lab.apply(resources.study_lab() / "loadbalancer")
    svc = lab.cluster.service("svc-lb")
    vip = f"{svc.load_balancer_ingress[0].ip}:{svc.ports[0].port}"
    lab.patch_service("svc-lb", load_balancer_source_ranges=[f"{MYPC}/32"])
    assert (lab.run("mypc", vip, n=50, seed=7)["outcome"] == "ok").all()
    assert not (lab.run("172.18.0.101", vip, n=10, seed=7, timeout=0.3)["outcome"] == "ok").any()
    w1 = nodes(lab)[1]
    side = lab.run("172.18.0.101", f"{w1}:{svc.ports[0].node_port}", n=20, seed=7)
    assert (side["outcome"] == "ok").all()  # the ranges do not cover the Service's nodePort


@pytest.mark.parametrize("mode", MODES)
def test_ch08_a_not_ready_pod_gets_no_connection(mode):
    lab = views.readiness_addon(lab_in(mode, seed=8))
    pods = sorted(lab.pods("app=mario"))
    w1 = nodes(lab)[1]
    lab.set_ready(pods[0], False)
    runs = lab.run("mypc", f"{w1}:svc-mario", n=300, seed=8)
    assert (runs["outcome"] == "ok").all() and pods[0] not in set(runs["endpoint_pod"])
    lab.set_ready(pods[0], True)
    assert pods[0] in set(lab.run("mypc", f"{w1}:svc-mario", n=300, seed=8)["endpoint_pod"])


@pytest.mark.parametrize("mode", MODES)
def test_ch09_topology_hints_keep_connections_in_their_zone(mode):
    lab = lab_in(mode, seed=9)
    lab.apply(resources.study_lab() / "topology")
    clients = list(views.ZONE_CLIENTS)
    hinted = views.with_zones(lab.run(clients, "svc-zone", n=300, seed=1), lab.cluster)
    assert (hinted["outcome"] == "ok").all()
    assert (views.cross_zone_shares(hinted) == 0).all()
    lab.patch_service("svc-zone", **views.topology_patch(lab.cluster.service("svc-zone"), "off"))
    off = views.with_zones(lab.run(clients, "svc-zone", n=300, seed=1), lab.cluster)
    assert (views.cross_zone_shares(off) > 0.4).all()  # 2/3 leave their zone without hints


MODE_AGNOSTIC = ("00_lab_tour", "08_readiness_endpointslices")  # the chapters whose labs follow $KSLAB_PROXY_MODE


def test_mode_agnostic_chapters_run_in_nftables_mode(tmp_path):
    """Chapters 00 and 08 (English, learner and solution) under nbval with KSLAB_PROXY_MODE=nftables, as CI runs
    notebooks: every cell's claim holds with kube-proxy's nftables ruleset in the simulator."""
    books = [ROOT / "notebooks" / "en" / sub / f"{name}.ipynb" for name in MODE_AGNOSTIC for sub in ("", "solutions")]
    src = ROOT / "notebooks" / "src"
    pinned = {f.stem for f in src.glob("[0-9][0-9]_*.py") if 'proxy_mode="iptables")' in f.read_text()}
    assert not pinned & set(MODE_AGNOSTIC) and all(b.exists() for b in books)
    env = {k: v for k, v in os.environ.items() if k != "KSLAB_BACKEND"}
    env.update(KSLAB_PROXY_MODE="nftables", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-o", "addopts=", "-o", "testpaths=", "--rootdir", str(ROOT), *map(str, books)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
    assert r.returncode == 0 and " passed" in r.stdout, tail


@pytest.mark.parametrize("mode", MODES)
def test_ch06_localhost_nodeports_are_iptables_only(mode):
    """Chapter 06's localhost NodePort (route_localnet, ``--dst-type LOCAL``) is one claim that does depend on the
    mode: kube-proxy's nftables mode does not open NodePorts on 127.0.0.1 (upstream: no localhost nodeports)."""
    lab = lab_in(mode)
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    w1 = nodes(lab)[1]
    assert lab.sh(w1, f"curl -s 127.0.0.1:{np_}").returncode == (0 if mode == "iptables" else 7)
    assert lab.sh("mypc", f"curl -s {lab.cluster.node(w1).internal_ip}:{np_}").returncode == 0
