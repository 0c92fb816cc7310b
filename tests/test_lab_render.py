"""The study's lab (data/myk8s) through the control-plane emulation and the renderer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kslab.controlplane import load_cluster
from kslab.proxy.iptables import render_node

LAB = Path(__file__).resolve().parents[1] / "data" / "myk8s"


@pytest.fixture(scope="module")
def lab():
    return load_cluster([LAB], seed=1)


def test_lab_state(lab):
    assert [n.name for n in lab.nodes] == ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    assert lab.config.pod_subnet == "10.10.0.0/16" and lab.config.service_subnet == "10.200.1.0/24"
    web = {p.name: p for p in lab.pods if p.labels.get("app") == "webpod"}
    assert {n: p.node_name for n, p in web.items()} == {
        "webpod1": "myk8s-worker", "webpod2": "myk8s-worker2", "webpod3": "myk8s-worker3"}
    assert lab.pod("net-pod").node_name == "myk8s-control-plane"
    echo = [p for p in lab.pods if p.owner == "Deployment/deploy-echo"]
    assert len(echo) == 3 and {p.node_name for p in echo} <= {"myk8s-worker", "myk8s-worker2", "myk8s-worker3"}
    np = lab.service("svc-nodeport")
    assert np.type == "NodePort" and 30086 <= np.ports[0].node_port <= 32767


@pytest.mark.parametrize("node", ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"])
def test_every_node_gets_the_same_clusterip_rules(lab, node):
    rs = render_node(lab, node)
    svc = next(p for p in rs.service_ports if p.info.name_string == "default/svc-clusterip:svc-webport")
    assert svc.info.svc_chain == "KUBE-SVC-KBDEBIL6IU6WL7RF"
    rules = rs.nat.rules_in("KUBE-SVC-KBDEBIL6IU6WL7RF")
    assert "! -s 10.10.0.0/16 -j KUBE-MARK-MASQ" in rules[0]
    probs = [r.split("--probability ")[1].split()[0] for r in rules[1:] if "--probability" in r]
    assert probs == ["0.3333333333", "0.5000000000"] and "statistic" not in rules[-1]
    web_ips = sorted(p.pod_ip for p in lab.pods if p.labels.get("app") == "webpod")
    assert sorted(e.ip for e in svc.categorized.cluster) == web_ips
    assert all(e.port == 80 for e in svc.categorized.cluster)
    assert f"-d {lab.service('svc-clusterip').cluster_ip} --dport 9000 -j KUBE-SVC-KBDEBIL6IU6WL7RF" in rs.restore_text()


def test_nodeport_rules(lab):
    rs = render_node(lab, "myk8s-worker")
    np = lab.service("svc-nodeport").ports[0].node_port
    svc = next(p for p in rs.service_ports if p.info.name.name == "svc-nodeport")
    ext = svc.info.ext_chain
    assert rs.nat.rules_in("KUBE-NODEPORTS") == [
        f"-A KUBE-NODEPORTS -m comment --comment default/svc-nodeport:svc-webport -m tcp -p tcp -d 127.0.0.0/8 --dport {np} "
        f"-m nfacct --nfacct-name localhost_nps_accepted_pkts -j {ext}",
        f"-A KUBE-NODEPORTS -m comment --comment default/svc-nodeport:svc-webport -m tcp -p tcp --dport {np} -j {ext}",
    ]
    assert rs.nat.rules_in(ext)[0].endswith("external destinations\" -j KUBE-MARK-MASQ")
    assert all(e.port == 8080 for e in svc.categorized.cluster)


def test_cli_render_lab_save_format():
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "render", "-f", str(LAB), "--node", "myk8s-worker", "--format", "save",
                        "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("*mangle\n") and "\n*filter\n" in out and "\n*nat\n" in out
    assert ":KUBE-SVC-KBDEBIL6IU6WL7RF - [0:0]" in out
    assert "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES" in out
    assert "--probability 0.33333333349" in out and "--set-xmark 0x4000/0x4000" in out
    assert "-j MASQUERADE --random-fully" in out
