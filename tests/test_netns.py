"""The netns backend: the study's lab on the real kernel (kslab.netns).

As root with ``ip`` and ``iptables``, these tests build the lab in network namespaces and send
real TCP connections through kube-proxy's rules: pod to pod, pod to ClusterIP (no SNAT), mypc to
every node's NodePort (SNAT to the ingress node), mypc to a ClusterIP (fails), the hairpin, and
the kernel's iptables-save against kslab's model. They also prove the lab's promises: the root
namespace is identical before ``up`` and after ``down``; a lab whose owner was SIGKILLed (after
or during ``up``) is removed by the next ``down``; SIGTERM, SIGINT and exit take a lab down; 50
up/down cycles leave nothing behind.

Every lab here records itself in a temporary run directory and only ever removes namespaces by
its own prefix, so these tests can run beside other kslab runs on the same machine. Without
root or the tools, the kernel tests skip with the reason; the tests of error messages and of the
helpers' parsing run everywhere.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kslab.controlplane import load_cluster
from kslab.errors import EnvironmentProblem
from kslab.model import ClusterState
from kslab.netns import cli as netns_cli
from kslab.lab import Lab
from kslab.netns import layout, processes, records, rootcheck
from kslab.netns.client import parse_answer
from kslab.netns.lab import NetnsLab
from kslab.xtables import kernel
from kslab.proxy.iptables import render_node
from kslab.proxy.iptables.node import restore_to_save

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "myk8s"
NET_POD_IP = "10.10.0.2"
OK = 2.0  # per-connection timeout where success is expected (the machine may be busy)
WEBPODS = {"webpod1": "10.10.1.2", "webpod2": "10.10.2.2", "webpod3": "10.10.3.2"}




@functools.cache
def _state() -> ClusterState:
    return load_cluster([str(DATA)], seed=1)


def study_state() -> ClusterState:
    """The study's lab: 4 nodes, 7 pods, svc-clusterip, svc-nodeport, kubernetes."""
    return _state().copy()


def small_state() -> ClusterState:
    """Two nodes, net-pod and webpod1 (one server): the cheap lab of the cycle tests."""
    state = study_state()
    state.nodes = [n for n in state.nodes if n.name in ("myk8s-control-plane", "myk8s-worker")]
    state.pods = [p for p in state.pods if p.name in ("net-pod", "webpod1")]
    return state


def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie)."""
    return processes.proc_start(pid) is None


def namespaces_with(prefix: str) -> list[str]:
    return [n for n in kernel.netns_list() if n.startswith(prefix)]


def assert_lab_gone(prefix: str, server_pids: list[int], record_dir: Path | None = None) -> None:
    assert namespaces_with(prefix) == []
    assert [pid for pid in server_pids if not gone(pid)] == []
    assert rootcheck.root_veths() == []
    if record_dir is not None:
        assert not record_dir.exists()


def nodeport(state: ClusterState) -> int:
    return state.service("svc-nodeport").ports[0].node_port


# --------------------------------------------------------------------------------------------
# The study's lab, up once for the traffic tests


@pytest.fixture(scope="module")
def kslab_lab(netns_run_dir, netns_unavailable: str | None) -> Iterator[Lab]:
    """The study's lab on the netns backend: the Lab's kube-proxy writes the kernel's rules."""
    if netns_unavailable:
        pytest.skip(netns_unavailable)
    with Lab(backend="netns", seed=1) as the_lab:
        prefix = the_lab.dataplane.kernel.prefix
        yield the_lab
    assert namespaces_with(prefix) == []


@pytest.fixture(scope="module")
def lab(kslab_lab: Lab) -> NetnsLab:
    """The kernel of :func:`kslab_lab`."""
    return kslab_lab.dataplane.kernel


@pytest.mark.netns
def test_up_builds_every_namespace_and_server(lab: NetnsLab, kslab_lab: Lab) -> None:
    status = lab.status()
    assert all(status.namespaces.values()), status.text()
    assert len(status.namespaces) == 1 + 4 + 1 + 7  # fabric, nodes, mypc, pods
    servers = {p.name: p.alive for p in status.pods if p.server}
    assert len(servers) == 6 and all(servers.values()), status.text()
    assert {p.name: p.server for p in lab.layout.pods}["webpod1"] == "whoami"
    assert sorted(p.server or "" for p in lab.layout.pods).count("echo") == 3
    assert set(status.rules) == {n.name for n in lab.layout.nodes}
    assert lab.up_seconds is not None and lab.up_seconds < 30
    assert {s.node for s in kslab_lab.syncs} == set(status.rules)
    assert lab.state is kslab_lab.cluster


@pytest.mark.netns
def test_layout_names_and_addresses(lab: NetnsLab) -> None:
    lay = lab.layout
    assert all(ns.startswith(lab.prefix) and ns.startswith("kslab-") for ns in lay.namespaces())
    assert [(n.name, n.ip, n.pod_cidr, n.gateway) for n in lay.nodes] == [
        ("myk8s-control-plane", "172.18.0.2", "10.10.0.0/24", "10.10.0.1"),
        ("myk8s-worker", "172.18.0.3", "10.10.1.0/24", "10.10.1.1"),
        ("myk8s-worker2", "172.18.0.4", "10.10.2.0/24", "10.10.2.1"),
        ("myk8s-worker3", "172.18.0.5", "10.10.3.0/24", "10.10.3.1"),
    ]
    assert all(len(p.host_if) <= 15 and p.host_if.startswith("veth") for p in lay.pods)
    node = lab.exec("myk8s-worker", ["ip", "-o", "-4", "addr", "show"]).stdout
    assert "eth0    inet 172.18.0.3/16" in node and "inet 10.10.1.1/32" in node
    routes = lab.exec("myk8s-worker", ["ip", "route"]).stdout
    assert "10.10.0.0/24 via 172.18.0.2 dev eth0" in routes and "10.10.1.2 dev veth" in routes
    pod = lab.exec("webpod1", ["ip", "route"]).stdout.splitlines()
    assert pod[0].startswith("default via 10.10.1.1 dev eth0")
    sysctl = lab.exec("myk8s-worker", ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/route_localnet",
                                       "/proc/sys/net/ipv4/conf/all/rp_filter"]).stdout.split()
    assert sysctl == ["1", "1", "0"]
    fabric = kernel.run_in_namespace(lay.fabric_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
    assert fabric == "0"


@pytest.mark.netns
def test_pod_to_each_webpod_directly(lab: NetnsLab) -> None:
    for name, ip in WEBPODS.items():
        run = lab.connect("net-pod", ip, 80, n=3, timeout=OK)
        assert run.failed == 0, run.results
        assert run.by_pod() == {name: 3}
        assert run.seen_ips() == {name: [NET_POD_IP]}
        assert all(r.remote_addr == r.local for r in run.results)  # no NAT at all


@pytest.mark.netns
def test_whoami_and_echo_answer_like_the_study_images(lab: NetnsLab) -> None:
    get = "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    text = lab.exec("net-pod", [sys.executable, "-c", get, "http://10.10.1.2/"]).stdout
    assert text.startswith("Hostname: webpod1\n")
    assert "IP: 10.10.1.2\n" in text and f"RemoteAddr: {NET_POD_IP}:" in text and "GET / HTTP/1.1" in text
    echo_pod = next(p for p in lab.layout.pods if p.server == "echo")
    doc = json.loads(lab.exec("net-pod", [sys.executable, "-c", get, f"http://{echo_pod.ip}:8080/x?a=1"]).stdout)
    assert doc["os"]["hostname"] == echo_pod.name and doc["ip"] == f"::ffff:{NET_POD_IP}"
    assert doc["path"] == "/x" and doc["query"] == {"a": "1"} and doc["method"] == "GET"
    refused = lab.connect("net-pod", "10.10.1.2", 81, n=1, timeout=OK)
    assert refused.errors() == {"refused": 1}


@pytest.mark.netns
def test_clusterip_reaches_every_webpod_without_snat(lab: NetnsLab) -> None:
    cip = lab.state.service("svc-clusterip").cluster_ip
    run = lab.connect("net-pod", cip, 9000, n=150, timeout=OK)
    assert run.failed == 0, run.errors()
    assert set(run.by_pod()) == set(WEBPODS)
    assert run.seen_ips() == {name: [NET_POD_IP] for name in WEBPODS}
    assert run.rate > 0


@pytest.mark.netns
def test_nodeport_from_mypc_is_snat_to_the_ingress_node(lab: NetnsLab) -> None:
    port = nodeport(lab.state)
    echo_node = {p.name: p.node for p in lab.layout.pods if p.server == "echo"}
    for node in lab.layout.nodes:
        run = lab.connect("mypc", node.ip, port, n=30, timeout=OK)
        assert run.failed == 0, (node.name, run.errors())
        assert set(run.by_pod()) <= set(echo_node) and len(run.by_pod()) >= 2
        for pod, seen in run.seen_ips().items():
            # MASQUERADE takes the out interface's address: the ingress node's eth0 for a pod
            # on another node, the veth's .1 (also the ingress node's) for a local pod
            assert seen == ([node.gateway] if echo_node[pod] == node.name else [node.ip]), (node.name, pod, seen)


@pytest.mark.netns
def test_mypc_cannot_reach_a_clusterip(lab: NetnsLab) -> None:
    run = lab.connect("mypc", lab.state.service("svc-clusterip").cluster_ip, 9000, n=2, timeout=0.3)
    assert run.ok == 0
    assert set(run.errors()) <= {"timeout", "unreachable"}


@pytest.mark.netns
def test_kernel_iptables_save_equals_kslab_model(lab: NetnsLab) -> None:
    overrides = {} if lab._nfacct else {"nfacct": False}
    for node in lab.layout.nodes:
        expected = restore_to_save(render_node(lab.state, node.name, **overrides).raw_text())
        assert kernel.iptables_save(node.ns) == expected, node.name
        counts = lab.status().rules[node.name]
        assert counts["nat"] == sum(1 for line in expected.split("*nat", 1)[1].splitlines() if line.startswith("-A "))


@pytest.mark.netns
def test_hairpin_needs_kube_proxys_masquerade_rule(lab: NetnsLab, kslab_lab: Lab) -> None:
    cip = lab.state.service("svc-clusterip").cluster_ip
    run = lab.connect("webpod1", cip, 9000, n=60, timeout=OK)
    assert run.failed == 0 and "webpod1" in run.by_pod()
    assert run.seen_ips()["webpod1"] == ["10.10.1.1"]  # masqueraded to its veth's .1
    ns = lab.layout.node("myk8s-worker").ns
    rule = next(line for line in kernel.iptables_save(ns, ("nat",)).splitlines() if line.startswith("-A KUBE-SEP-") and "-s 10.10.1.2/32" in line)
    deleted = kernel.run_in_namespace(ns, ["iptables", "-t", "nat", "-D", *shlex.split(rule)[1:]])
    assert deleted.returncode == 0, deleted.stderr
    try:
        run = lab.connect("webpod1", cip, 9000, n=60, timeout=0.3)
        assert "webpod1" not in run.by_pod() and run.failed > 0  # it drops its own address as a martian
        assert run.ok > 0  # the other webpods still answer
        # kube-proxy does not repair hand-edited rules: with nothing changed, a partial sync
        # leaves the SEP chain alone; only a full sync (hourly, or forced) writes it again
        kslab_lab.resync(full=False, nodes=["myk8s-worker"])
        assert not kslab_lab.syncs[-1].full and len(kslab_lab.syncs[-1].updated_services) == 0
        assert rule not in kernel.iptables_save(ns, ("nat",))
    finally:
        kslab_lab.resync(full=True, nodes=["myk8s-worker"])
        # the failed attempts left SYN_SENT entries whose old NAT a reused source port would follow
        assert lab.flush_conntrack(["myk8s-worker"]) > 0
    assert kslab_lab.syncs[-1].full and kslab_lab.syncs[-1].reason == "forced"
    run = lab.connect("webpod1", cip, 9000, n=60, timeout=OK)
    assert run.failed == 0 and "webpod1" in run.by_pod(), (run.by_pod(), [r for r in run.results if not r.ok][:3])


def _ip_counters(ns: str) -> dict[str, int]:
    """The IPv4 counters of a namespace's own stack (``Ip:`` in /proc/net/snmp, per namespace)."""
    r = kernel.run_in_namespace(ns, ["cat", "/proc/net/snmp"])
    header, values = [line.split() for line in r.stdout.splitlines() if line.startswith("Ip:")][:2]
    return dict(zip(header[1:], map(int, values[1:])))


@pytest.mark.netns
def test_hairpin_without_masquerade_is_a_martian_drop_in_the_pod_as_the_sim_says(lab: NetnsLab, kslab_lab: Lab) -> None:
    from kslab.dataplane.reasons import hairpin_without_masquerade

    web1 = next(p for p in lab.layout.pods if p.name == "webpod1")
    ns = lab.layout.node(web1.node).ns
    rule = next(line for line in kernel.iptables_save(ns, ("nat",)).splitlines() if line.startswith("-A KUBE-SEP-") and f"-s {web1.ip}/32" in line)
    assert kernel.run_in_namespace(ns, ["iptables", "-t", "nat", "-D", *shlex.split(rule)[1:]]).returncode == 0
    sysctl = ["sh", "-c", "echo $0 > /proc/sys/net/ipv4/conf/all/accept_local; echo $0 > /proc/sys/net/ipv4/conf/eth0/accept_local"]
    try:
        before = _ip_counters(web1.ns)
        df = kslab_lab.run("webpod1", "svc-clusterip", n=60, timeout=0.3)
        after = _ip_counters(web1.ns)
        failed = df[df["outcome"] != "ok"]
        assert len(failed) > 0 and (df["outcome"] == "ok").sum() > 0
        # the same sentence the sim gives, derived from the kernel's conntrack (DNATed to itself, source unchanged)
        assert set(failed["reason"]) == {hairpin_without_masquerade("webpod1", web1.ip)}
        # webpod1's IP layer received each failed SYN and delivered none of them: dropped on input, before any socket
        undelivered = (after["InReceives"] - before["InReceives"]) - (after["InDelivers"] - before["InDelivers"])
        assert undelivered == len(failed), (undelivered, len(failed))
        t = next(t for _ in range(30) if not (t := kslab_lab.trace("webpod1", "svc-clusterip")).ok)
        assert t.reason == hairpin_without_masquerade("webpod1", web1.ip)
        # control: with accept_local=1 webpod1 takes those packets (delivered), and the connections still fail
        assert kernel.run_in_namespace(web1.ns, [*sysctl, "1"]).returncode == 0
        lab.flush_conntrack([web1.node])  # no old SYN_SENT entry for a reused port
        before = _ip_counters(web1.ns)
        df = kslab_lab.run("webpod1", "svc-clusterip", n=60, timeout=0.3)
        after = _ip_counters(web1.ns)
        failed = df[df["outcome"] != "ok"]
        assert len(failed) > 0
        assert set(failed["reason"]) == {hairpin_without_masquerade("webpod1", web1.ip, accept_local=True)}
        assert (after["InReceives"] - before["InReceives"]) == (after["InDelivers"] - before["InDelivers"])
    finally:
        kernel.run_in_namespace(web1.ns, [*sysctl, "0"])
        kslab_lab.resync(full=True, nodes=[web1.node])
        lab.flush_conntrack([web1.node])
    assert (kslab_lab.run("webpod1", "svc-clusterip", n=30, timeout=OK)["outcome"] == "ok").all()


@pytest.mark.netns
def test_resync_removes_stale_service_chains(lab: NetnsLab, kslab_lab: Lab) -> None:
    cluster = kslab_lab.cluster
    services, slices = cluster.services, cluster.endpoint_slices
    port = nodeport(cluster)
    cluster.services = [s for s in services if s.name != "svc-nodeport"]
    cluster.endpoint_slices = [s for s in slices if s.service_name != "svc-nodeport"]
    try:
        kslab_lab.resync(full=False)  # partial syncs: only svc-nodeport changed
        syncs = kslab_lab.syncs[-4:]
        assert {r.node for r in syncs} == {n.name for n in lab.layout.nodes}
        assert all(not r.full and len(r.updated_services) == 0 and r.error is None for r in syncs)
        assert all(len(r.deleted_chains) >= 4 for r in syncs)  # SVC, EXT and 3 SEP chains
        for node in lab.layout.nodes:
            saved = kernel.iptables_save(node.ns)
            assert "svc-nodeport" not in saved
            assert saved == restore_to_save(kslab_lab.render(node.name).raw_text())  # = a fresh full sync
        assert lab.connect("mypc", lab.layout.nodes[1].ip, port, n=1, timeout=0.3).ok == 0
    finally:
        cluster.services, cluster.endpoint_slices = services, slices
        kslab_lab.resync(full=False)
    assert all(not r.full and len(r.updated_services) == 1 for r in kslab_lab.syncs[-4:])  # svc-nodeport written again
    assert lab.connect("mypc", lab.layout.nodes[1].ip, port, n=3, timeout=OK).failed == 0
    for node in lab.layout.nodes:
        assert kernel.iptables_save(node.ns) == restore_to_save(kslab_lab.render(node.name).raw_text())


@pytest.mark.netns
def test_update_follows_scaling(lab: NetnsLab, kslab_lab: Lab) -> None:
    port = nodeport(kslab_lab.cluster)

    def scale(replicas: int) -> dict[str, list[str]]:
        before = set(lab.layout.pods)
        kslab_lab.scale("deploy-echo", replicas)  # the kernel's pods follow, then kube-proxy syncs
        after = set(lab.layout.pods)
        return {"added": [p.name for p in after - before], "removed": [p.name for p in before - after]}

    try:
        change = scale(5)
        assert len(change["added"]) == 2 and change["removed"] == []
        assert all(lab.servers_alive().values()) and len(lab.servers_alive()) == 8
        run = lab.connect("mypc", lab.layout.nodes[0].ip, port, n=100, timeout=OK)
        assert run.failed == 0 and len(run.by_pod()) == 5
        change = scale(1)
        assert len(change["removed"]) == 4 and change["added"] == []
        run = lab.connect("mypc", lab.layout.nodes[0].ip, port, n=10, timeout=OK)
        assert run.failed == 0 and len(run.by_pod()) == 1
        assert not [n for n in kernel.netns_list() if n.startswith(lab.prefix) and n not in lab.layout.namespaces()]
    finally:
        scale(3)
    assert len(lab.connect("mypc", lab.layout.nodes[0].ip, port, n=60, timeout=OK).by_pod()) == 3
    assert all(lab.status().namespaces.values())


@pytest.mark.netns
def test_unknown_client_is_an_input_error(lab: NetnsLab) -> None:
    from kslab.errors import InputError

    with pytest.raises(InputError, match="mypc"):
        lab.namespace_of("nope")
    assert lab.namespace_of("mypc") == lab.layout.mypc_ns
    assert lab.namespace_of("myk8s-worker2").endswith("node-myk8s-worker2")


@pytest.mark.netns
def test_set_proxy_typo_leaves_the_kernel_alone(lab: NetnsLab, kslab_lab: Lab) -> None:
    """On netns too: a bad kube-proxy option is one line, and the kernel's rules stay as they were."""
    from kslab.errors import InputError

    saved = {n.name: kernel.iptables_save(n.ns) for n in lab.layout.nodes}
    syncs = len(kslab_lab.syncs)
    with pytest.raises(InputError, match="masqurade_all.*masquerade_all"):
        kslab_lab.set_proxy(masqurade_all=True)
    assert len(kslab_lab.syncs) == syncs and kslab_lab.proxy_options == {}
    assert {n.name: kernel.iptables_save(n.ns) for n in lab.layout.nodes} == saved
    kslab_lab.resync(full=False)  # kube-proxy still syncs: nothing changed, nothing written
    assert all(not r.full and r.error is None for r in kslab_lab.syncs[-4:])
    assert lab.connect("net-pod", kslab_lab.cluster.service("svc-clusterip").cluster_ip, 9000, n=3, timeout=OK).failed == 0


# --------------------------------------------------------------------------------------------
# Leaving nothing behind


@pytest.mark.netns
def test_root_namespace_identical_before_up_and_after_down(tmp_path: Path) -> None:
    before = rootcheck.snapshot()
    lab = NetnsLab(study_state(), directory=tmp_path)
    lab.up()
    during = rootcheck.snapshot()
    pids = [int(s["pid"]) for s in lab._record.servers.values()] if lab._record else []
    lab.down()
    lab.down()  # idempotent
    after = rootcheck.snapshot()
    assert rootcheck.diff(before, during) == []
    assert rootcheck.diff(before, after) == []
    assert_lab_gone(lab.prefix, pids, lab.record_dir)


CHILD = r"""
import sys, time
from kslab.controlplane import load_cluster
from kslab.netns.lab import NetnsLab
state = load_cluster([sys.argv[1]], seed=1)
if sys.argv[2] == "small":
    state.nodes = [n for n in state.nodes if n.name in ("myk8s-control-plane", "myk8s-worker")]
    state.pods = [p for p in state.pods if p.name in ("net-pod", "webpod1")]
lab = NetnsLab(state)
lab.up()
print("UP", lab.id, flush=True)
if sys.argv[3] == "exit":
    sys.exit(0)
time.sleep(600)
"""


def start_child(run_dir: Path, size: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KSLAB_RUN_DIR": str(run_dir), "PYTHONPATH": str(ROOT)}
    # the child starts with SIGINT at its default whatever this test runner ignores (a background job
    # of a non-interactive shell ignores SIGINT, and a Python child would inherit that)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(DATA), size, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_up(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("UP "), (line, child.stderr.read() if child.stderr else "")
    return line.split()[1]


def record_of(run_dir: Path, lab_id: str) -> dict:
    return json.loads((run_dir / lab_id / "state.json").read_text())


@pytest.mark.netns
def test_kill9_after_up_then_down_removes_everything(tmp_path: Path) -> None:
    child = start_child(tmp_path, "full", "sleep")
    try:
        lab_id = wait_up(child)
        rec = record_of(tmp_path, lab_id)
        pids = [int(s["pid"]) for s in rec["servers"].values()]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        # the servers survive their owner: a crash really leaves the lab behind
        assert len(namespaces_with(rec["prefix"])) == 13 and not any(gone(p) for p in pids)
        status = {r.id: r for r in records.read_records(tmp_path)}
        assert status[lab_id].crashed
        NetnsLab(small_state(), directory=tmp_path).down()  # any lab's down cleans crashed runs
        assert_lab_gone(rec["prefix"], pids, tmp_path / lab_id)
    finally:
        child.kill()
        child.wait()
        records.down_all(tmp_path, sweep=False)


@pytest.mark.netns
@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_kill9_during_up_then_down_removes_everything(tmp_path: Path, delay: float) -> None:
    child = start_child(tmp_path, "full", "sleep")
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("kslab-*/state.json")) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        (record,) = tmp_path.glob("kslab-*/state.json")
        rec = json.loads(record.read_text())
        pids = [int(s["pid"]) for s in rec["servers"].values()]
        assert records.cleanup_crashed(tmp_path) == [rec["id"]]
        assert_lab_gone(rec["prefix"], pids, record.parent)
    finally:
        child.kill()
        child.wait()
        records.down_all(tmp_path, sweep=False)


@pytest.mark.netns
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "exit"])
def test_signals_and_exit_take_the_lab_down(tmp_path: Path, how: str) -> None:
    child = start_child(tmp_path, "small", "exit" if how == "exit" else "sleep")
    try:
        lab_id = wait_up(child)
        rec = record_of(tmp_path, lab_id)
        pids = [int(s["pid"]) for s in rec["servers"].values()]
        if how != "exit":
            os.kill(child.pid, getattr(signal, how))
        try:
            code = child.wait(90)  # a teardown takes about a second
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail(f"the lab's process did not exit within 90 s of {how}: {child.communicate()[1][-2000:]}")
        assert code == {"SIGTERM": -signal.SIGTERM, "SIGINT": -signal.SIGINT, "exit": 0}[how], child.stderr.read() if child.stderr else ""
        assert_lab_gone(rec["prefix"], pids, tmp_path / lab_id)
    finally:
        child.kill()
        child.wait()
        records.down_all(tmp_path, sweep=False)


@pytest.mark.netns
def test_an_ignored_signal_stays_ignored(tmp_path: Path) -> None:
    """A process that ignores SIGINT (``nohup``, a script's background job) keeps ignoring it: the
    lab must not take itself down on a signal that would not have stopped the process."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with NetnsLab(small_state(), directory=tmp_path):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is records._on_signal
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.netns
def test_signal_handlers_installed_and_restored(tmp_path: Path) -> None:
    runner = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the runner ignores
    try:
        before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        with NetnsLab(small_state(), directory=tmp_path, handle_signals=False):
            assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # notebooks
        with NetnsLab(small_state(), directory=tmp_path):
            assert signal.getsignal(signal.SIGINT) is records._on_signal is signal.getsignal(signal.SIGTERM)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        assert records._LIVE == []
    finally:
        signal.signal(signal.SIGINT, runner)


CYCLES = 50


@pytest.mark.netns
def test_fifty_up_down_cycles_leave_nothing(tmp_path: Path) -> None:
    before = rootcheck.snapshot()
    prefixes, pids = [], []
    t0 = time.perf_counter()
    for _ in range(CYCLES):
        with NetnsLab(small_state(), directory=tmp_path) as lab:
            prefixes.append(lab.prefix)
            pids += [int(s["pid"]) for s in lab._record.servers.values()] if lab._record else []
    seconds = time.perf_counter() - t0
    existing = kernel.netns_list()
    assert [n for n in existing if n.startswith(tuple(prefixes))] == []
    assert [p for p in pids if not gone(p)] == []
    assert rootcheck.root_veths() == []
    assert list(tmp_path.iterdir()) == []
    assert rootcheck.diff(before, rootcheck.snapshot()) == []
    print(f"{CYCLES} up/down cycles of the small lab: {seconds:.1f} s ({seconds / CYCLES * 1000:.0f} ms per cycle)")


@pytest.mark.netns
def test_failed_health_check_is_one_line_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = NetnsLab(small_state(), directory=tmp_path, health_timeout=0.3)
    monkeypatch.setattr(lab, "_launch_servers", lambda pods: None)  # nobody will answer
    with pytest.raises(EnvironmentProblem) as err:
        lab.up()
    message = str(err.value)
    assert "\n" not in message and "pod webpod1: whoami server on 10.10.1.2:80 did not answer 200" in message
    assert namespaces_with(lab.prefix) == [] and not lab.record_dir.exists()


@pytest.mark.netns
def test_cli_up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KSLAB_RUN_DIR", str(tmp_path))
    assert netns_cli.netns_up(None, seed=1) == 0
    out = capsys.readouterr().out
    lab_id = out.split()[2]
    try:
        assert lab_id.startswith("kslab-") and "7 pods" in out
        rec = record_of(tmp_path, lab_id)
        assert rec["owner_pid"] is None  # detached: this process's exit would not remove it
        assert records._LIVE == []
        stray = f"{rec['prefix']}stray"
        kernel.netns_add(stray)  # an unrecorded leftover with the lab's prefix
        assert netns_cli.netns_status() == 0
        out = capsys.readouterr().out
        assert f"lab {lab_id} (up, detached" in out and "13/13 namespaces" in out and "unexpected: " + stray in out
        assert out.count(" alive") == 6
        attached = NetnsLab.attach(lab_id=lab_id)
        assert attached.connect("net-pod", "10.10.2.2", 80, timeout=OK).by_pod() == {"webpod2": 1}
        attached.close()  # not owned: the lab stays
        assert len(namespaces_with(rec["prefix"])) == 14
        pids = [int(s["pid"]) for s in rec["servers"].values()]
        monkeypatch.setattr(records, "SWEEP_PREFIX", rec["prefix"])  # stay off other runs' namespaces
        assert netns_cli.netns_down() == 0
        assert "removed 14 network namespaces" in capsys.readouterr().out
        assert_lab_gone(rec["prefix"], pids, tmp_path / lab_id)
    finally:
        records.remove_lab(lab_id + "-", tmp_path / lab_id)


# --------------------------------------------------------------------------------------------
# Without root or tools; the helpers' parsing (run everywhere)


def test_without_root_up_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(kernel.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root"):
        NetnsLab(small_state()).up()
    assert netns_cli.netns_up(None) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "root" in err
    assert netns_cli.netns_down() == 1 and netns_cli.netns_status() == 1


def test_without_ip_up_names_the_package(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(kernel.os, "geteuid", lambda: 0)
    real_which = kernel.shutil.which
    monkeypatch.setattr(kernel.shutil, "which", lambda name, path=None: None if name == "ip" else real_which(name, path=path))
    assert netns_cli.netns_up(None) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "iproute2" in err


def test_plan_rejects_nodes_off_the_node_network() -> None:
    from kslab.errors import InputError

    state = small_state()
    state.nodes[0].internal_ip = "192.168.9.9"
    with pytest.raises(InputError, match="not a free address"):
        layout.plan(state, "kslab-x-")


def test_parse_conntrack_reads_both_directions() -> None:
    from kslab.netns.lab import ConntrackEntry, parse_conntrack

    text = ("tcp      6 117 SYN_SENT src=10.10.1.2 dst=10.200.1.233 sport=45678 dport=9000 [UNREPLIED] "
            "src=10.10.1.2 dst=10.10.1.2 sport=80 dport=45678 mark=0 use=1\n"
            "tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.200.1.233 sport=40000 dport=9000 src=10.10.2.2 "
            "dst=10.10.0.2 sport=80 dport=40000 [ASSURED] mark=0 use=1\n"
            "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n")
    assert parse_conntrack(text) == [
        ConntrackEntry("tcp", "SYN_SENT", ("10.10.1.2", "10.200.1.233", 45678, 9000), ("10.10.1.2", "10.10.1.2", 80, 45678)),
        ConntrackEntry("tcp", "ESTABLISHED", ("10.10.0.2", "10.200.1.233", 40000, 9000), ("10.10.2.2", "10.10.0.2", 80, 40000)),
    ]


def test_parse_answer_reads_whoami_and_echo() -> None:
    whoami = "Hostname: webpod2\nIP: 127.0.0.1\nIP: 10.10.2.2\nRemoteAddr: 10.10.0.2:41234\nGET / HTTP/1.1\n"
    assert parse_answer(whoami) == ("webpod2", "10.10.0.2:41234")
    echo = json.dumps({"path": "/", "ip": "::ffff:172.18.0.3", "os": {"hostname": "deploy-echo-x"}})
    assert parse_answer(echo) == ("deploy-echo-x", "172.18.0.3")
    echo = json.dumps({"ip": "::ffff:172.18.0.3", "os": {"hostname": "e"}, "connection": {"remoteAddress": "172.18.0.3", "remotePort": 5}})
    assert parse_answer(echo) == ("e", "172.18.0.3:5")
    assert parse_answer("garbage") == (None, None)


def test_helpers_start_without_heavy_imports() -> None:
    """The server and client start in every pod: they must not pull in pandas and friends."""
    code = "import sys, kslab.netns.servers, kslab.netns.client; print(sorted(m for m in ('pandas', 'yaml', 'kslab.netns.lab') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"



@pytest.mark.netns
def test_crash_cleanup_removes_scratch_namespaces_of_dead_processes(tmp_path: Path) -> None:
    """A SIGKILL during kernel.scratch_namespace (the nfacct probe of a lab coming up) leaves
    ``kslab-nfacct-probe-PID-N`` without a record: the next cleanup removes it, and spares a
    live process's."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan, live = f"kslab-nfacct-probe-{dead.pid}-0", f"kslab-nfacct-probe-{os.getpid()}-999"
    from kslab.xtables import kernel

    kernel.netns_add(orphan)
    kernel.netns_add(live)
    try:
        records.cleanup_crashed(tmp_path)
        names = kernel.netns_list()
        assert orphan not in names and live in names
    finally:
        for n in (orphan, live):
            if n in kernel.netns_list():
                kernel.netns_delete(n)
