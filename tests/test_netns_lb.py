"""The netns backend's kube-proxy health check servers and cloud load balancer, on the real kernel.

- every node's kube-proxy answers its healthCheckNodePorts (and 10256) over real HTTP, byte for
  byte what upstream's handler writes (``kslab.healthcheck.service_health``; Date aside), with the
  count of the node's last sync;
- the load balancer namespace forwards a VIP's connections unchanged to the nodes its real HTTP
  prober found healthy (never a node answering 503), the pods see the client's address under
  Local, and it follows a readiness change within ``advance(LB_SETTLE_S)`` (2 s);
- under Cluster every node is eligible (10256); loadBalancerSourceRanges drops other clients
  (KUBE-FW); teardown, and the cleanup after the owner is SIGKILLed, leave no namespace or process.

``svc-lb`` is the study's add-on (data/myk8s/loadbalancer); a Cluster twin of it is the add-on's
manifest under another name, policy and VIP.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kslab.healthcheck import local_endpoints, service_health
from kslab.lab import Lab
from kslab.loadbalancer import LB_SETTLE_S
from kslab.manifests import load_documents
from kslab.resources import study_lab
from kslab.netns import processes, records, rootcheck
from kslab.netns.lbprober import LBConfig, LBNode, LBSpec, lb_rules, parse_lb_conntrack
from kslab.xtables import kernel

VIP = "172.18.0.200"
VIP_CLUSTER = "172.18.0.201"
OK = 2.0  # per-connection timeout where success is expected (the machine may be busy)
ECHO = "app=deploy-websrv"  # deploy-echo's pods, svc-lb's endpoints


def nodes_with_pods(lab: Lab) -> set[str]:
    return {node for node, pods in lab.pods_per_node(ECHO).items() if pods}


def svc_lb_as(tmp_path: Path, name: str, policy: str, vip: str) -> Path:
    """The add-on's svc-lb (data/myk8s/loadbalancer/svc-lb.yaml) as another Service: ``name``,
    ``externalTrafficPolicy: policy``, its load balancer's ingress IP ``vip``."""
    (doc,) = load_documents([study_lab() / "loadbalancer"])
    obj = copy.deepcopy(doc.obj)
    obj["metadata"]["name"] = name
    obj["spec"]["externalTrafficPolicy"] = policy
    obj["status"]["loadBalancer"]["ingress"] = [{"ip": vip}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


def curl(lab: Lab, where: str, *args: str) -> bytes:
    """The real curl in ``where``'s namespace, its raw output (CR LF kept)."""
    argv = ["ip", "netns", "exec", lab.dataplane.kernel.namespace_of(where), "curl", "-s", "-m", "3", *args]
    return subprocess.run(argv, capture_output=True, check=False, timeout=10).stdout


def no_date(raw: bytes) -> bytes:
    out, n = re.subn(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n", b"\r\nDate: -\r\n", raw)
    assert n == 1, raw
    return out


@pytest.fixture(scope="module")
def lab(netns_run_dir, netns_unavailable: str | None) -> Iterator[Lab]:
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    before = rootcheck.snapshot()
    with Lab(backend="netns", seed=1) as the_lab:
        the_lab.apply(study_lab() / "loadbalancer")
        the_lab.dataplane.wait_lb()
        assert rootcheck.diff(before, rootcheck.snapshot()) == []  # the LB, its routes and rules: none in the root namespace
        yield the_lab
        prefix, pids = _lab_pids(the_lab.dataplane.kernel.directory)
    # close() took it all down: namespaces (the LB's too), pods' servers, kube-proxy's listeners, the prober
    assert [n for n in kernel.netns_list() if n.startswith(prefix)] == []
    assert [p for p in pids if processes.proc_start(p) is not None] == []
    assert rootcheck.diff(before, rootcheck.snapshot()) == [] and rootcheck.root_veths() == []


# --------------------------------------------------------------------------------------------
# Pure parts (no kernel, no root)


def test_lb_rules_and_conntrack_parsing():
    nodes = [LBNode("cp", "172.18.0.2", 0), LBNode("w1", "172.18.0.3", 1), LBNode("w2", "172.18.0.4", 2)]
    spec = LBSpec("default/svc-lb", VIP, (9000,), "Local", 32000, "/healthz")
    config = LBConfig(generation=1, nodes=nodes, lbs=[spec])
    text = lb_rules(config, {"default/svc-lb": ["w2", "w1"]})
    assert "--hmark-mod 2 --hmark-offset 1" in text
    assert f"-A {spec.chain} -m mark --mark 0x1 -m comment --comment \"to w2\" -j MARK --set-mark 0x102" in text
    assert f"-A PREROUTING -d {VIP}/32 -m comment --comment \"no listener of the load balancer\" -j DROP" in text
    assert "has no healthy node" in lb_rules(config, {"default/svc-lb": []})
    ct = (f"tcp      6 118 SYN_SENT src=172.18.0.100 dst={VIP} sport=40001 dport=9000 [UNREPLIED] "
          f"src={VIP} dst=172.18.0.100 sport=9000 dport=40001 mark=258 use=1\n"
          f"tcp      6 118 SYN_SENT src=172.18.0.101 dst={VIP} sport=40002 dport=9000 [UNREPLIED] "
          f"src={VIP} dst=172.18.0.101 sport=9000 dport=40002 mark=0 use=1\n")
    ct += (f"tcp      6 118 SYN_SENT src=172.18.0.100 dst={VIP_CLUSTER} sport=40001 dport=9000 [UNREPLIED] "
           f"src={VIP_CLUSTER} dst=172.18.0.100 sport=9000 dport=40001 mark=257 use=1\n")
    assert parse_lb_conntrack(ct, nodes, VIP, 9000) == {("172.18.0.100", 40001): "w2"}
    assert parse_lb_conntrack(ct, nodes, VIP_CLUSTER, 9000) == {("172.18.0.100", 40001): "w1"}
    assert parse_lb_conntrack(ct, nodes, VIP, 80) == {}


# --------------------------------------------------------------------------------------------
# kube-proxy's listeners on the nodes


@pytest.mark.netns
def test_health_check_answers_are_upstreams_bytes(lab: Lab, curl_i):
    svc = lab.cluster.service("svc-lb")
    hc = svc.health_check_node_port
    placement = {"myk8s-worker": 2, "myk8s-worker2": 1, "myk8s-worker3": 0}
    lab.place("deploy-echo", placement)
    try:
        twin = lab.copy()  # the simulator's answers to the same commands
        for node in lab.cluster.nodes:
            n = local_endpoints(lab.cluster, svc, node.name)
            assert n == placement.get(node.name, 0)
            answer = service_health("default", "svc-lb", n)
            url = f"http://{node.internal_ip}:{hc}/healthz"
            wire, head = curl_i(answer, date="-").encode(), curl_i(answer, date="-", head=True).encode()  # what Go's net/http sends
            assert no_date(curl(lab, "mypc", "-i", url)) == wire, node.name
            assert no_date(curl(lab, "mypc", "-I", f"http://{node.internal_ip}:{hc}/any/path")) == head
            assert no_date(curl(lab, "mypc", "-i", "-X", "POST", f"http://{node.internal_ip}:{hc}/x")) == wire
            code = curl(lab, "mypc", "-o", "/dev/null", "-w", "%{http_code}", url)
            assert code == str(answer.status).encode()
            # the study's commands print the same on the kernel and on the simulator
            for cmd in (f"curl -i -s {node.internal_ip}:{hc}/healthz", f"curl -s -o /dev/null -w '%{{http_code}}' {node.internal_ip}:{hc}"):
                real, sim = lab.sh("mypc", cmd).stdout, twin.sh("mypc", cmd).stdout
                assert re.sub(r"Date: .*", "Date: -", real) == re.sub(r"Date: .*", "Date: -", sim), cmd
    finally:
        lab.place("deploy-echo", {"myk8s-worker": 1, "myk8s-worker2": 1, "myk8s-worker3": 1})


@pytest.mark.netns
def test_health_check_listens_on_the_nodeport_addresses_only(lab: Lab):
    """nodePortAddresses: the health check servers listen on the node IPs inside them only
    (``newServiceHealthServer``), as on sim; kube-proxy's healthz (10256) stays on every address."""
    hc = lab.cluster.service("svc-lb").health_check_node_port
    worker = lab.cluster.node("myk8s-worker").internal_ip
    code = "curl -s -o /dev/null -w '%{{http_code}}' {}"
    expected = {f"{worker}:{hc}": ("200", 0), f"127.0.0.1:{hc}": ("000", 7)}  # refused: nothing listens there
    twin = lab.copy()
    for on in (lab, twin):
        on.set_proxy(nodeport_addresses=("172.18.0.0/16",))
    try:
        for target, want in expected.items():
            for on in (lab, twin):
                out = on.sh("myk8s-worker", code.format(target))
                assert (out.stdout, out.returncode) == want, (on.backend, target)
        assert lab.sh("myk8s-worker", code.format("127.0.0.1:10256/healthz")).stdout == "200"
    finally:
        lab.set_proxy(nodeport_addresses=())
    assert lab.sh("myk8s-worker", code.format(f"127.0.0.1:{hc}")).stdout == "200"


@pytest.mark.netns
def test_kube_proxy_healthz_on_every_node(lab: Lab):
    for node in lab.cluster.nodes:
        raw = curl(lab, "mypc", "-i", f"http://{node.internal_ip}:10256/healthz")
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        assert [h.split(":")[0] for h in lines[1:]] == ["Content-Type", "X-Content-Type-Options", "Date", "Content-Length"]
        assert lines[1] == "Content-Type: application/json" and lines[-1] == f"Content-Length: {len(body)}"
        doc = json.loads(body)
        assert doc["nodeEligible"] is True and doc["lastUpdated"] == doc["currentTime"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC m=\+\d+\.\d{9}", doc["currentTime"])
        assert curl(lab, "mypc", "-o", "/dev/null", "-w", "%{http_code}", f"http://{node.internal_ip}:10256/metrics") == b"404"


# --------------------------------------------------------------------------------------------
# The load balancer


@pytest.mark.netns
def test_lb_sends_only_to_nodes_answering_200_and_keeps_the_client_ip(lab: Lab):
    st = lab.lb_status("svc-lb")
    with_pod = nodes_with_pods(lab)
    assert st.vip == VIP and st.port == 9000 and st.policy == "Local"
    assert st.probe_port == lab.cluster.service("svc-lb").health_check_node_port and st.probe_path == "/healthz"
    assert {n for n, code in st.probes.items() if code == 200} == set(st.healthy) == with_pod
    assert st.probes["myk8s-control-plane"] == 503
    df = lab.run("mypc", f"{VIP}:9000", n=300, timeout=OK)
    assert (df["outcome"] == "ok").all(), df["outcome"].value_counts()
    assert set(df["ingress_node"]) == set(st.healthy)  # every healthy node got some, no 503 node any
    assert (df["ingress_node"] == df["endpoint_node"]).all() and not df["cross_node"].any()
    assert set(df["source_ip_seen"]) == {"172.18.0.100"} and not df["masquerade"].any()
    shares = df["ingress_node"].value_counts(normalize=True)
    assert shares.min() > 0.2, shares  # a hash over the flows: about 1/3 each
    t = lab.trace("mypc", f"{VIP}:9000")  # the kernel's trace: the LB's health probes are not part of it
    assert t.outcome == "ok" and t.path == [t.ingress_node] and t.ingress_node in st.healthy
    assert t.chains[:2] == ["KUBE-SERVICES", f"KUBE-EXT-{t.chains[1][len('KUBE-EXT-'):]}"] and not t.masquerade
    assert t.source_ip_seen == "172.18.0.100" and t.endpoint_node == t.ingress_node


@pytest.mark.netns
def test_lb_stops_sending_to_a_node_that_lost_its_last_ready_pod(lab: Lab):
    pod = lab.pods_per_node(ECHO)["myk8s-worker3"][0]
    lab.set_ready(pod, False)
    try:
        lab.advance(LB_SETTLE_S)
        st = lab.lb_status("svc-lb")
        assert st.probes["myk8s-worker3"] == 503 and "myk8s-worker3" not in st.healthy
        df = lab.run("mypc", f"{VIP}:9000", n=150, timeout=OK)
        assert (df["outcome"] == "ok").all()
        assert (df["ingress_node"] != "myk8s-worker3").all() and set(df["ingress_node"]) == {"myk8s-worker", "myk8s-worker2"}
    finally:
        lab.set_ready(pod, True)
    t0 = time.monotonic()
    lab.dataplane.wait_lb()
    assert time.monotonic() - t0 < 1.5  # one probe round (0.3 s) after the sync
    assert lab.lb_status("svc-lb").healthy == ("myk8s-worker", "myk8s-worker2", "myk8s-worker3")


@pytest.mark.netns
def test_a_run_through_the_vip_waits_for_the_probe_round_after_the_last_change(lab: Lab):
    """As the sim's load balancer, never stale: ``lab.run`` to a VIP right after a change (here
    ``patch_service``, which waits for no probe) goes by the prober's round that saw it, and the
    LB does not reload its rules under the run (a reload re-hashes the connection in flight onto
    another node, which resets it). Local -> Cluster, with the prober held back for 0.5 s: the
    control plane's node, with no pod, gets connections from the first on; back to Local: it gets
    nothing (it would drop them: no local endpoint)."""
    nodes = [n.name for n in lab.cluster.nodes]
    state = lab.dataplane.kernel.lb_state
    prober = int(lab.dataplane.kernel._record.daemons["lb-prober"]["pid"])
    os.kill(prober, signal.SIGSTOP)  # a prober slow to catch up, as on a busy machine
    try:
        lab.patch_service("svc-lb", external_traffic_policy="Cluster")
    finally:
        threading.Timer(0.5, os.kill, (prober, signal.SIGCONT)).start()
    try:
        df = lab.run("mypc", f"{VIP}:9000", n=200, timeout=OK)  # waits for the prober's round (about 0.5 s)
        reloads = state()["reloads"]
        assert (df["outcome"] == "ok").all(), df["outcome"].value_counts()
        assert set(df["ingress_node"]) == set(nodes)  # the control plane's node too, from the first connections on
        again = lab.run("mypc", f"{VIP}:9000", n=50, timeout=OK)  # nothing changed since: no reload
        assert (again["outcome"] == "ok").all() and state()["reloads"] == reloads
    finally:
        lab.patch_service("svc-lb", external_traffic_policy="Local")
    df = lab.run("mypc", f"{VIP}:9000", n=200, timeout=OK)
    assert (df["outcome"] == "ok").all(), df["outcome"].value_counts()
    assert set(df["ingress_node"]) == nodes_with_pods(lab)


@pytest.mark.netns
def test_lb_under_cluster_policy_probes_10256_and_uses_every_node(lab: Lab, tmp_path: Path):
    lab.apply(svc_lb_as(tmp_path, "svc-lb-cluster", "Cluster", VIP_CLUSTER))
    lab.dataplane.wait_lb()
    st = lab.lb_status("svc-lb-cluster")
    nodes = [n.name for n in lab.cluster.nodes]
    assert st.probe_port == 10256 and st.policy == "Cluster"
    assert st.healthy == tuple(nodes) and set(st.probes.values()) == {200}
    df = lab.run("mypc", f"{VIP_CLUSTER}:9000", n=200, timeout=OK)
    assert (df["outcome"] == "ok").all()
    assert set(df["ingress_node"]) == set(nodes)
    ip = {n.name: n.internal_ip for n in lab.cluster.nodes}
    # SNAT on the ingress node: the pod sees its IP (its pod-CIDR gateway when the pod is local)
    seen_ok = [row.source_ip_seen in (ip[row.ingress_node], lab.pod_gateway(row.ingress_node)) for row in df.itertuples()]
    assert all(seen_ok), df[[not ok for ok in seen_ok]][["ingress_node", "endpoint_node", "source_ip_seen"]]
    assert df["masquerade"].all()
    assert lab.lb_status("svc-lb").policy == "Local"  # the other LB is unchanged
    # the chapter's way: patch svc-lb itself (Local -> Cluster releases its healthCheckNodePort)
    lab.patch_service("svc-lb", external_traffic_policy="Cluster")
    try:
        st = lab.lb_status("svc-lb")
        assert (st.policy, st.probe_port, st.healthy) == ("Cluster", 10256, tuple(nodes))
    finally:
        lab.patch_service("svc-lb", external_traffic_policy="Local")
    st, with_pods = lab.lb_status("svc-lb"), nodes_with_pods(lab)
    hc = lab.cluster.service("svc-lb").health_check_node_port
    assert (st.policy, st.probe_port) == ("Local", hc) and hc and st.healthy == tuple(n for n in nodes if n in with_pods)


@pytest.mark.netns
def test_source_ranges_drop_other_clients(lab: Lab):
    lab.patch_service("svc-lb", load_balancer_source_ranges=["172.18.0.100/32"])
    try:
        ok = lab.run("mypc", f"{VIP}:9000", n=30, timeout=OK)
        assert (ok["outcome"] == "ok").all()
        other = lab.run("172.18.0.101", f"{VIP}:9000", n=10, timeout=0.3)
        assert (other["outcome"] == "timeout").all(), other["outcome"].value_counts()
        assert set(other["ingress_node"]) <= set(lab.lb_status("svc-lb").healthy)  # the LB forwarded, the node dropped
        assert "KUBE-PROXY-FIREWALL" in lab.save_text("myk8s-worker")
    finally:
        lab.patch_service("svc-lb", load_balancer_source_ranges=[])
    assert (lab.run("172.18.0.101", f"{VIP}:9000", n=10, timeout=OK)["outcome"] == "ok").all()


# --------------------------------------------------------------------------------------------
# Nothing outlives a lab


def _lab_pids(run_dir: Path) -> tuple[str, list[int]]:
    rec = records.read_records(run_dir)[0]
    assert sorted(rec.daemons) == ["kube-proxy/myk8s-control-plane", "kube-proxy/myk8s-worker", "kube-proxy/myk8s-worker2",
                                   "kube-proxy/myk8s-worker3", "lb-prober"] and rec.load_balancer
    pids = [int(i["pid"]) for i in (*rec.servers.values(), *rec.daemons.values())]
    assert all(processes.proc_start(p) is not None for p in pids)
    return rec.prefix, pids


@pytest.mark.netns
def test_a_killed_owners_lab_is_cleaned_up_with_its_lb_and_daemons(tmp_path: Path):
    """The owner SIGKILLed with the LB up: the next cleanup (any lab's ``up``, ``kslab netns down``)
    removes its namespaces and kills the pods' servers, kube-proxy's listeners and the prober
    (they live in the lab's namespaces). Closing normally is checked by the module's fixture."""
    script = textwrap.dedent("""
        import time
        from kslab.lab import Lab
        from kslab.resources import study_lab
        lab = Lab(backend="netns", seed=1)
        lab.apply(study_lab() / "loadbalancer")
        lab.dataplane.wait_lb()
        print("ready", flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "KSLAB_RUN_DIR": str(tmp_path / "run"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        prefix, pids = _lab_pids(tmp_path / "run")
        assert f"{prefix}lb" in kernel.netns_list()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert records.cleanup_crashed(tmp_path / "run") == [prefix.rstrip("-")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        records.cleanup_crashed(tmp_path / "run")  # whatever a failure above left behind
    assert [n for n in kernel.netns_list() if n.startswith(prefix)] == []
    assert [p for p in pids if processes.proc_start(p) is not None] == []
    assert records.read_records(tmp_path / "run") == []


@pytest.mark.netns
def test_reset_removes_the_vip_and_a_new_apply_brings_it_back(lab: Lab):
    lab.reset()  # the study's lab as made: no LoadBalancer Service
    assert f"{VIP} via" not in lab.sh("mypc", "ip route").stdout
    assert (lab.run("mypc", f"{VIP}:9000", n=3, timeout=0.3)["outcome"] != "ok").all()
    lab.apply(study_lab() / "loadbalancer")
    st = lab.lb_status("svc-lb")  # after a probe round that saw the new Service's first sync
    assert st.healthy == ("myk8s-worker", "myk8s-worker2", "myk8s-worker3") and st.probes["myk8s-control-plane"] == 503
    assert (lab.run("mypc", f"{VIP}:9000", n=20, timeout=OK)["outcome"] == "ok").all()
