"""The simulator's cloud load balancer and kube-proxy's health check servers (issue 12, WP2/WP3).

- every node listens on every healthCheckNodePort and answers :func:`kslab.healthcheck.service_health`
  with the count its kube-proxy's last sync gave (``curl -i`` byte for byte, ``Date`` aside);
- the load balancer probes each node through the simulated network and balances uniformly over
  the nodes answering 200 (:func:`kslab.loadbalancer.eligible`), never a 503 one, also after
  hand-broken rules;
- ``nfacct`` counts the localhost NodePort connections as the kernel does (one SYN of 60 bytes per
  connection), checked once against the real kernel (netns).
"""

from __future__ import annotations

import json
import re

import pytest

from kslab.errors import InputError
from kslab.healthcheck import service_health
from kslab.lab import Lab
from kslab.loadbalancer import LB_SETTLE_S, PROXY_HEALTHZ_PORT, eligible
from kslab.resources import study_lab
from kslab.sim.tools import http_date

VIP = "172.18.0.200"
ECHO = "app=deploy-websrv"  # deploy-echo's pods, svc-lb's endpoints
DATE = re.compile(r"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


def lb_lab(seed: int = 1) -> Lab:
    """The study's lab plus chapter 07's svc-lb (the add-on data/myk8s/loadbalancer)."""
    lab = Lab(seed=seed)
    lab.apply(study_lab() / "loadbalancer")
    return lab


def test_every_node_answers_its_health_check_node_port(curl_i):
    lab = lb_lab()
    hc = lab.cluster.service("svc-lb").health_check_node_port
    per_node = lab.pods_per_node(ECHO)
    for node in lab.cluster.nodes:
        count = len(per_node[node.name])
        answer = service_health("default", "svc-lb", count)
        for where in ("mypc", "net-pod", node.name, "myk8s-worker2"):
            out = lab.sh(where, f"curl -i -s {node.internal_ip}:{hc}/healthz")
            assert out.returncode == 0 and DATE.search(out)
            assert DATE.sub("\r\nDate: D\r\n", out) == curl_i(answer, date="D"), (where, node.name)
            code = lab.sh(where, f"curl -s -o /dev/null -w '%{{http_code}}' {node.internal_ip}:{hc}/healthz")
            assert code == ("200" if count else "503") and code.returncode == 0
        # any path, and HEAD: the same status and headers, no body
        out = lab.sh("mypc", f"curl -s -I {node.internal_ip}:{hc}/anything")
        assert DATE.sub("\r\nDate: D\r\n", out) == curl_i(answer, date="D", head=True)
    # the node's own loopback and its pods' gateway address: kube-proxy listens on 0.0.0.0
    assert lab.sh("myk8s-worker", f"curl -s 127.0.0.1:{hc}/healthz") == service_health("default", "svc-lb", 1).body
    assert lab.sh("net-pod", f"curl -s -o /dev/null -w '%{{http_code}}' {lab.pod_gateway('myk8s-control-plane')}:{hc}") == "503"
    # nothing else on a node answers: a closed port is refused, curl prints 000 and exits 7
    out = lab.sh("mypc", f"curl -s -o /dev/null -w '%{{http_code}}' {lab.cluster.node('myk8s-worker').internal_ip}:1")
    assert (str(out), out.returncode) == ("000", 7)


def test_the_count_follows_kube_proxy_syncs_and_node_port_addresses():
    lab = lb_lab()
    hc = lab.cluster.service("svc-lb").health_check_node_port
    w1 = lab.cluster.node("myk8s-worker").internal_ip
    lab.scale("deploy-echo", 6)
    n1 = len(lab.pods_per_node(ECHO)["myk8s-worker"])
    assert n1 >= 2
    assert f'"localEndpoints": {n1},' in lab.sh("mypc", f"curl -s {w1}:{hc}")
    lab.set_ready(lab.pods_per_node(ECHO)["myk8s-worker"][0], False)
    assert f'"localEndpoints": {n1 - 1},' in lab.sh("mypc", f"curl -s {w1}:{hc}")
    # the servers' count is what the node's kube-proxy synced: a hand edit of the rules leaves it,
    # the next sync sets it
    net = lab.dataplane.network
    before = dict(net.health["myk8s-worker"].services)
    lab.delete_rules("KUBE-SEP", nodes=["myk8s-worker"])
    assert net.health["myk8s-worker"].services == before
    lab.set_ready(lab.pods_per_node(ECHO)["myk8s-worker"][0], True)
    assert net.health["myk8s-worker"].services[hc][2] == n1
    # nodePortAddresses: the servers listen on the node IPs inside them only (newServiceHealthServer)
    lab.set_proxy(nodeport_addresses=("172.18.0.0/16",))
    assert lab.sh("mypc", f"curl -s -o /dev/null -w '%{{http_code}}' {w1}:{hc}") == "200"
    out = lab.sh("myk8s-worker", f"curl -s -o /dev/null -w '%{{http_code}}' 127.0.0.1:{hc}")
    assert (str(out), out.returncode) == ("000", 7)


def test_lb_status_and_the_lb_never_picks_a_503_node():
    lab = lb_lab()
    st = lab.lb_status("svc-lb")
    svc = lab.cluster.service("svc-lb")
    assert (st.service, st.vip, st.port, st.policy, st.probe_path) == ("default/svc-lb", VIP, 9000, "Local", "/healthz")
    assert st.probe_port == svc.health_check_node_port
    per_node = lab.pods_per_node(ECHO)
    assert st.probes == {n.name: 200 if per_node.get(n.name) else 503 for n in lab.cluster.nodes}
    assert list(st.healthy) == eligible(st.probes) == ["myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    df = lab.run("mypc", f"{VIP}:9000", n=600, seed=1)
    assert (df["outcome"] == "ok").all() and set(df["source_ip_seen"]) == {"172.18.0.100"}
    shares = df["ingress_node"].value_counts(normalize=True)
    assert set(shares.index) == set(st.healthy) and (abs(shares - 1 / 3) < 0.06).all()
    # the pod on worker2 stops being ready: its probe turns 503 at once, the LB leaves the node
    lab.set_ready(per_node["myk8s-worker2"][0], False)
    lab.advance(LB_SETTLE_S)
    st = lab.lb_status("svc-lb")
    assert st.probes["myk8s-worker2"] == 503 and st.healthy == ("myk8s-worker", "myk8s-worker3")
    df = lab.run("mypc", f"{VIP}:9000", n=400, seed=2)
    assert set(df["ingress_node"]) == {"myk8s-worker", "myk8s-worker3"} and (df["outcome"] == "ok").all()
    # the trace shows the probes
    t = lab.trace("mypc", f"{VIP}:9000")
    assert f"probes http://NODE:{svc.health_check_node_port}/healthz" in str(t) and "myk8s-worker2 503" in str(t)
    # equal seeds repeat, with and without the flow memo
    a = lab.run("mypc", f"{VIP}:9000", n=300, seed=5)
    lab.dataplane.network.memo = False
    b = lab.run("mypc", f"{VIP}:9000", n=300, seed=5)
    assert a["ingress_node"].tolist() == b["ingress_node"].tolist() and a["endpoint_pod"].tolist() == b["endpoint_pod"].tolist()


def test_hand_broken_rules_and_the_probes():
    lab = lb_lab()
    hc = lab.cluster.service("svc-lb").health_check_node_port
    # the health check port's ACCEPT in filter KUBE-NODEPORTS: with INPUT's policy ACCEPT (a kind
    # node's), deleting it changes nothing; it matters on a host whose INPUT drops by default
    assert lab.delete_rules("health check node port", nodes=["myk8s-worker"]) == 1
    assert lab.lb_status("svc-lb").probes["myk8s-worker"] == 200
    lab.resync()
    net = lab.dataplane.network
    for node in ("myk8s-worker", "myk8s-worker2"):
        lab.dataplane.tables[node].tables["filter"].chains["INPUT"].policy = "DROP"
        net.update_tables({node: lab.dataplane.tables[node].tables})
    lab.delete_rules("health check node port", nodes=["myk8s-worker"])
    st = lab.lb_status("svc-lb")
    assert st.probes["myk8s-worker"] == 0 and st.probes["myk8s-worker2"] == 200  # dropped in INPUT: no answer
    assert "myk8s-worker" not in st.healthy
    df = lab.run("mypc", f"{VIP}:9000", n=300, seed=3)
    assert set(df["ingress_node"]) == {"myk8s-worker2", "myk8s-worker3"}
    assert lab.sh("mypc", f"curl -s -m 1 {lab.cluster.node('myk8s-worker').internal_ip}:{hc}").returncode == 28
    # a node whose service rules are gone still answers 200 (kube-proxy's servers know nothing of
    # hand edits): the LB keeps sending there, and those connections fail; never to a 503 node
    lab.resync()
    lab.delete_rules("KUBE-SVL", nodes=["myk8s-worker3"])
    st = lab.lb_status("svc-lb")
    assert st.probes == {"myk8s-control-plane": 503, "myk8s-worker": 200, "myk8s-worker2": 200, "myk8s-worker3": 200}
    df = lab.run("mypc", f"{VIP}:9000", n=300, seed=4)
    assert "myk8s-control-plane" not in set(df["ingress_node"])
    assert (df[df["ingress_node"] == "myk8s-worker3"]["outcome"] != "ok").all()
    assert (df[df["ingress_node"] != "myk8s-worker3"]["outcome"] == "ok").all()


def test_no_healthy_node_and_cluster_policy():
    lab = lb_lab()
    lab.scale("deploy-echo", 0)
    st = lab.lb_status("svc-lb")
    assert st.healthy == () and set(st.probes.values()) == {503}
    df = lab.run("mypc", f"{VIP}:9000", n=10)
    assert (df["outcome"] == "dropped").all() and "no healthy node" in df["reason"].iloc[0]
    lab.scale("deploy-echo", 3)
    lab.patch_service("svc-lb", external_traffic_policy="Cluster", health_check_node_port=0)  # kslab keeps it otherwise
    st = lab.lb_status("svc-lb")
    assert (st.probe_port, st.policy) == (PROXY_HEALTHZ_PORT, "Cluster")
    assert set(st.probes.values()) == {200} and len(st.healthy) == 4
    df = lab.run("mypc", f"{VIP}:9000", n=400, seed=1)
    assert set(df["ingress_node"]) == set(st.healthy) and (df["outcome"] == "ok").all()


def test_lb_status_refuses_what_has_no_load_balancer():
    from kslab.errors import InputError

    lab = Lab()
    with pytest.raises(InputError, match="no load balancer"):
        lab.lb_status("svc-nodeport")


def test_lab_copy_answers_from_the_cluster():
    lab = lb_lab()
    twin = lab.copy()
    assert twin.lb_status("svc-lb").probes == lab.lb_status("svc-lb").probes


# ---- nfacct -------------------------------------------------------------------------------------


NFACCT_LINE = re.compile(r"\{ pkts = (\d{20}), bytes = (\d{20}) \} = (\S+);")


def localhost_curls(lab: Lab, node: str, times: int) -> str:
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    for _ in range(times):
        assert lab.sh(node, f"curl -s 127.0.0.1:{np_}").returncode == 0
    return lab.sh(node, "nfacct get localhost_nps_accepted_pkts")


def test_nfacct_format_and_the_localhost_nodeport_counter():
    lab = Lab(seed=2)
    listed = lab.sh("myk8s-worker", "nfacct list")
    assert [NFACCT_LINE.fullmatch(line).groups() for line in listed.splitlines()] == [
        ("0" * 20, "0" * 20, "ct_state_invalid_dropped_pkts"), ("0" * 20, "0" * 20, "localhost_nps_accepted_pkts")]
    assert localhost_curls(lab, "myk8s-worker", 3) == \
        "{ pkts = 00000000000000000003, bytes = 00000000000000000180 } = localhost_nps_accepted_pkts;\n"
    assert "pkts = 00000000000000000000" in lab.sh("myk8s-worker2", "nfacct get localhost_nps_accepted_pkts")
    missing = lab.sh("myk8s-worker", "nfacct get nope")
    assert (str(missing), missing.stderr, missing.returncode) == ("", "nfacct v1.0.2: error: No such file or directory\n", 1)
    lab.clear_kernel_state()
    assert "pkts = 00000000000000000000, bytes = 00000000000000000000" in lab.sh("myk8s-worker", "nfacct get localhost_nps_accepted_pkts")
    lab.set_proxy(nfacct=False)
    assert lab.sh("myk8s-worker", "nfacct list") == ""


@pytest.mark.netns
def test_nfacct_and_health_answers_equal_the_kernel(sim_and_kernel):
    with sim_and_kernel(5) as (sim, kern):
        kern.clear_kernel_state()
        a, b = localhost_curls(sim, "myk8s-worker", 3), localhost_curls(kern, "myk8s-worker", 3)
        assert a == b == "{ pkts = 00000000000000000003, bytes = 00000000000000000180 } = localhost_nps_accepted_pkts;\n"
        a, b = sim.sh("myk8s-worker", "nfacct list"), kern.sh("myk8s-worker", "nfacct list")
        assert a == b
        nope = kern.sh("myk8s-worker", "nfacct get nope")
        assert (nope.stderr, nope.returncode) == (sim.sh("myk8s-worker", "nfacct get nope").stderr, 1)


GO_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? \+0000 UTC m=\+\d+\.\d{9}")


def proxy_answers(lab: Lab) -> dict[str, str]:
    """``curl -i`` of kube-proxy's 10256 on every node (``/healthz``, ``/livez``, a 404 path,
    ``-w %{http_code}``), from mypc and from the node itself, with the times masked: each
    answer's Date, its Go time strings (lastUpdated equal to currentTime, both checked) and its
    Content-Length (checked against the body first)."""
    out = {}
    for node in lab.cluster.nodes:
        for where, ip in (("mypc", node.internal_ip), (node.name, "127.0.0.1")):
            for path in ("/healthz", "/livez", "/metrics"):
                text = str(lab.sh(where, f"curl -i -s {ip}:{PROXY_HEALTHZ_PORT}{path}"))
                head, _, body = text.partition("\r\n\r\n")
                assert f"\r\nContent-Length: {len(body.encode())}" in head and DATE.search(head + "\r\n"), text
                if path != "/metrics":
                    doc = json.loads(body)
                    assert doc["lastUpdated"] == doc["currentTime"] and GO_TIME.fullmatch(doc["currentTime"]), body
                masked = re.sub(r"Content-Length: \d+", "Content-Length: N", DATE.sub("\r\nDate: D\r\n", head + "\r\n"))
                out[f"{where} -> {node.name}{path}"] = masked + GO_TIME.sub("<time>", body)
            code = lab.sh(where, f"curl -s -o /dev/null -w '%{{http_code}}' {ip}:{PROXY_HEALTHZ_PORT}/nope")
            out[f"{where} -> {node.name} code"] = f"{code} {code.returncode}"
    return out


def test_kube_proxy_healthz_on_the_sim(curl_i):
    """The sim's nodes answer kube-proxy's 10256 as upstream's proxy_health.go does (what netns
    runs too), the times from the sim's clock: the wall time on the control plane's clock, the
    monotonic reading since the nodes started; lab.advance moves both."""
    from kslab.apiobjects import CLUSTER_EPOCH
    from kslab.healthcheck import go_time, proxy_health

    lab = lb_lab()
    ip = lab.cluster.node("myk8s-worker").internal_ip
    lab.advance(2.5)
    wall = round((CLUSTER_EPOCH.timestamp() + lab.cluster.clock) * 1e9)
    now = go_time(wall, round(lab.now * 1e9))
    assert now.endswith(" m=+2.500000000")
    for path in ("/healthz", "/livez", "/metrics", "/healthz?x=1"):
        want = proxy_health(path, now)
        for where, to in (("mypc", ip), ("net-pod", ip), ("myk8s-worker", "127.0.0.1")):
            out = lab.sh(where, f"curl -i -s {to}:{PROXY_HEALTHZ_PORT}{path}")
            assert str(out) == curl_i(want, date=http_date(wall / 1e9)), (where, path)
    assert "Date: Mon, 02 Jun 2025 09:02:02 GMT\r\n" in str(lab.sh("mypc", f"curl -i -s {ip}:{PROXY_HEALTHZ_PORT}/healthz"))
    assert lab.sh("mypc", f"curl -s {ip}:{PROXY_HEALTHZ_PORT}/livez") == f'{{"lastUpdated": "{now}","currentTime": "{now}"}}'
    code = lab.sh("mypc", f"curl -s -o /dev/null -w '%{{http_code}}' {ip}:{PROXY_HEALTHZ_PORT}/metrics")
    assert (str(code), code.returncode) == ("404", 0)
    with pytest.raises(InputError, match="kubelet"):  # a node process the sim does not emulate says so
        lab.sh("mypc", f"curl -s {ip}:10250/healthz")
    lab.patch_service("svc-lb", external_traffic_policy="Cluster")  # the LB probes 10256/healthz now: 200 everywhere
    st = lab.lb_status("svc-lb")
    assert st.probe_port == PROXY_HEALTHZ_PORT and set(st.probes.values()) == {200}


@pytest.mark.netns
def test_kube_proxy_healthz_equals_the_kernel(sim_and_kernel):
    """``curl -i`` of every node's 10256 (/healthz, /livez, a 404 path, the code) from mypc and
    from the node: the sim's answers equal the real servers' on netns, times masked."""
    with sim_and_kernel(7) as (sim, kern):
        a, b = proxy_answers(sim), proxy_answers(kern)
        assert a == b
        assert a["mypc -> myk8s-worker code"] == "404 0" and a["mypc -> myk8s-worker/healthz"].startswith("HTTP/1.1 200 OK\r\n")


def test_synced_health_equals_local_endpoints_of_the_synced_cluster():
    from kslab.healthcheck import hc_targets, local_endpoints, synced_health

    lab = lb_lab()
    lab.scale("deploy-echo", 5)
    lab.set_ready(lab.pods_per_node(ECHO)["myk8s-worker"][0], False)
    hc = lab.cluster.service("svc-lb").health_check_node_port
    for node in lab.cluster.nodes:
        rows = lab.render(node.name).service_port_rows
        got = synced_health((r[0], r[1]) for r in rows)
        want = {port: (svc.namespace, svc.name, local_endpoints(lab.cluster, svc, node.name)) for port, svc in hc_targets(lab.cluster).items()}
        assert got == want and got[hc][2] == lab.dataplane.network.health[node.name].services[hc][2]
