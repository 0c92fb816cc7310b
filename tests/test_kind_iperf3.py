"""Chapter 10's iperf3 on the kind backend: the add-on's manifests (data/myk8s/iperf3) on every backend's
terms, ``KindDataplane.iperf3`` against the fake live cluster (tests/kindfake: the real kubernetes client,
the exec websocket; iperf3's answers are the REAL iperf3 3.12's, tests/data/kind/iperf3-exec.json made by
tests/kindfake/record_iperf3.py), and the pure checks of kslab/kind/iperf3.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import kubernetes_validate
import pytest

import kslab
from kslab import controlplane, resources
from kslab.errors import EnvironmentProblem, InputError
from kslab.iperf3 import C2S, S2C, ConnectFailed, IperfMissing, IperfOptions, ServerBusy, parse
from kslab.kind import iperf3 as kind_iperf3
from kslab.manifests import load_documents
from kslab.model import KUBERNETES_MINOR

ADDON = resources.study_lab() / "iperf3"
RECORDINGS = Path(__file__).resolve().parent / "data" / "kind" / "iperf3-exec.json"
CP, W1, W2, W3 = "myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"


def _pair(lab, pair: str) -> str:
    """The client pod of a pair, found by label (names are generated)."""
    [pod] = [p for pods in lab.pods_per_node(f"app=iperf3-client,pair={pair}").values() for p in pods]
    return pod


# ---- the manifests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", load_documents([ADDON]), ids=lambda d: f"{d.kind}/{d.name}")
def test_addon_manifests_validate_strictly_against_the_pinned_minor(doc):
    # tests/test_manifests_validate.py reads data/ without its add-ons: this one is checked here
    assert kubernetes_validate.validate(doc.obj, KUBERNETES_MINOR, strict=True) == KUBERNETES_MINOR


def test_addon_is_not_part_of_the_study_lab():
    names = {d.name for d in load_documents([resources.study_lab()])}
    assert not any(n.startswith("iperf3") for n in names)
    assert (ADDON / "ADDON.md").exists()


def test_nodeport_is_in_the_static_band_and_mapped_to_the_host():
    svc = next(d.obj for d in load_documents([ADDON]) if d.name == "iperf3-server-nodeport")
    ports = {(p["protocol"], p["nodePort"]) for p in svc["spec"]["ports"]}
    assert ports == {("TCP", 30002), ("UDP", 30002)}  # iperf3 -u: TCP control + UDP data on one port number
    static, _ = controlplane.node_port_bands((30000, 32767))
    assert 30002 in static
    kind_cfg = (resources.study_lab() / "kind-cluster.yaml").read_text()
    assert "{containerPort: 30002, hostPort: 30002}" in kind_cfg


def test_sim_lab_has_a_same_node_and_a_cross_node_pair_and_both_services():
    lab = kslab.Lab()
    assert sorted(lab.apply(ADDON)) == ["deployment/iperf3-client", "deployment/iperf3-client-same", "deployment/iperf3-server",
                                        "service/iperf3-server", "service/iperf3-server-nodeport"]
    [server] = lab.pods("app=iperf3-server")
    node = lab.cluster.pod(server).node_name
    same, cross = _pair(lab, "same-node"), _pair(lab, "cross-node")
    assert node == W1 and lab.cluster.pod(same).node_name == W1 and lab.cluster.pod(cross).node_name == W2
    svc = lab.cluster.service("iperf3-server")
    assert svc.type == "ClusterIP" and svc.cluster_ip.startswith("10.200.1.")
    assert {(p.port, p.protocol) for p in svc.ports} == {(5201, "TCP"), (5201, "UDP")}
    from kslab.bandwidth import path_to

    kinds = [path_to(lab, c, to).kind for c, to in [(same, server), (cross, server), (cross, "iperf3-server"), (cross, f"{W3}:30002")]]
    assert kinds == ["same-node", "cross-node", "clusterip", "nodeport"]


def test_netns_layout_gives_iperf3_pods_no_http_server():
    from kslab.netns.layout import plan

    lab = kslab.Lab()
    lab.apply(ADDON)
    layout = {p.name: p for p in plan(lab.cluster, "kslab-test-").pods}
    [server] = lab.pods("app=iperf3-server")
    assert layout[server].server is None and layout[server].ports == (5201,)  # iperf3 -s is started on demand there
    assert layout[_pair(lab, "same-node")].server is None
    assert layout[lab.pods("app=webpod")[0]].server == "whoami"  # the study's pods keep theirs


# ---- the pure parts of kslab/kind/iperf3.py -------------------------------------------------------------


@pytest.mark.parametrize("container,port", [
    ({"image": "networkstatic/iperf3", "args": ["-s"]}, 5201),
    ({"image": "networkstatic/iperf3", "args": ["-s", "-p", "5202"]}, 5202),
    ({"image": "networkstatic/iperf3", "command": ["sleep"], "args": ["infinity"]}, None),
    ({"image": "nicolaka/netshoot", "command": ["iperf3", "-s", "-J"]}, 5201),
    ({"image": "nicolaka/netshoot", "command": ["tail"], "args": ["-f", "/dev/null"]}, None),
    ({"image": "traefik/whoami"}, None),
    ({"image": "networkstatic/iperf3", "args": ["-s", "-D", "--logfile", "/x"]}, None),  # flags kslab does not model
])
def test_served_port_reads_the_containers_command(container, port):
    from kslab.model import Container, Pod

    pod = Pod("p", containers=[Container("c", image=container["image"])], manifest={"spec": {"containers": [container]}})
    assert kind_iperf3.served_port(pod) == port


def _recorded(name: str) -> dict:
    return next(r for r in json.loads(RECORDINGS.read_text())["runs"] if r["name"] == name)


def _path(**kw):
    from kslab.bandwidth import BandwidthPath

    base = dict(kind="clusterip", client="iperf3-client-x", server_pod="iperf3-server-y", host="10.200.1.2", port=5201,
                client_node=W2, server_node=W1, hops=(), host_name="iperf3-server")
    return BandwidthPath(**{**base, **kw})


def test_recordings_are_real_iperf3_3_12_outputs():
    doc = json.loads(RECORDINGS.read_text())
    assert doc["meta"]["iperf3"].startswith("iperf 3.12")
    for run in doc["runs"]:
        result_or_error = run["stdout"]
        if run["name"] in ("busy", "refused", "unresolved"):
            assert json.loads(result_or_error)["error"] and run["exit_code"] == 0  # 3.12 exits 0 after a -J error
        else:
            r = parse(result_or_error)
            assert r.version == "iperf 3.12" and r.sum(r.directions()[0]).bits_per_second > 0


def test_answer_turns_iperf3_errors_into_one_line_with_the_fix():
    path = _path()
    argv = kind_iperf3.client_argv(path, IperfOptions(seconds=2))
    assert argv == ["iperf3", "-c", "iperf3-server", "-p", "5201", "-t", "2", "-J"]
    with pytest.raises(ServerBusy) as e:
        kind_iperf3.answer(path, argv, _recorded("busy")["stdout"], "", 0)
    msg = str(e.value)
    assert "\n" not in msg and "iperf3-server-y is busy" in msg and "wait for the other test or scale the server" in msg
    with pytest.raises(ConnectFailed, match="cannot reach iperf3 server iperf3-server-y at iperf3-server:5201.*Connection refused"):
        kind_iperf3.answer(path, argv, _recorded("refused")["stdout"], "", 0)
    with pytest.raises(IperfMissing, match="iperf3 is not installed in iperf3-client-x's image"):
        kind_iperf3.answer(path, argv, "", 'exec: "iperf3": executable file not found in $PATH: unknown\n', 127)
    text = _recorded("tcp-clusterip")["stdout"]
    assert kind_iperf3.answer(path, argv, text, "", 0) is text
    # the human-readable report: iperf3's own error line, exit 1
    with pytest.raises(ServerBusy, match="wait for the other test or scale the server"):
        kind_iperf3.answer(path, argv[:-1], "", "iperf3: error - the server is busy running a test. try again later\n", 1,
                           json=False)


def test_client_argv_uses_the_paths_port_and_the_name_the_learner_types():
    path = _path(kind="nodeport", host="172.18.0.3", port=30002, host_name="")
    assert kind_iperf3.client_argv(path, IperfOptions(seconds=5, udp=True, reverse=True)) == \
        ["iperf3", "-c", "172.18.0.3", "-p", "30002", "-t", "5", "-u", "-R", "-J"]
    assert kind_iperf3.exec_timeout(IperfOptions(seconds=5, parallel=30)) > 5 + 20


# ---- on the fake live cluster -----------------------------------------------------------------------------


@pytest.fixture
def live(live_cluster):
    return live_cluster[0]


@pytest.fixture
def kind_lab(live):
    with kslab.Lab(backend="kind") as lab:
        lab.apply(ADDON)
        yield lab


def _execs(live, since: int) -> list:
    return [r for r in live.exec_log[since:] if r.argv[:1] == ("iperf3",)]


def test_the_fake_cluster_places_the_pairs_by_the_mynode_labels(live, kind_lab):
    [server] = kind_lab.pods("app=iperf3-server")
    assert kind_lab.cluster.pod(server).node_name == W1
    assert kind_lab.cluster.pod(_pair(kind_lab, "same-node")).node_name == W1
    assert kind_lab.cluster.pod(_pair(kind_lab, "cross-node")).node_name == W2


def test_four_paths_run_by_exec_in_the_client_pod(live, kind_lab):
    lab = kind_lab
    [server] = lab.pods("app=iperf3-server")
    same, cross = _pair(lab, "same-node"), _pair(lab, "cross-node")
    server_ip = lab.cluster.pod(server).pod_ip
    n = len(live.exec_log)
    runs = {
        "same": lab.iperf3(same, server, "-t 2", progress=False),
        "cross": lab.iperf3(cross, server, "-t 2", progress=False),
        "clusterip": lab.iperf3(cross, "iperf3-server", "-t 2", progress=False),
        "nodeport": lab.iperf3(cross, f"{W1}:30002", "-t 2", progress=False),
    }
    execs = _execs(live, n)
    assert [(r.pod, r.argv) for r in execs] == [
        (same, ("iperf3", "-c", server_ip, "-p", "5201", "-t", "2", "-J")),
        (cross, ("iperf3", "-c", server_ip, "-p", "5201", "-t", "2", "-J")),
        (cross, ("iperf3", "-c", "iperf3-server", "-p", "5201", "-t", "2", "-J")),  # the cluster DNS name, as typed
        (cross, ("iperf3", "-c", "172.18.0.3", "-p", "30002", "-t", "2", "-J")),
    ]
    assert [t[2] for t in live.iperf3.tests] == ["tcp-same-pod", "tcp-cross-pod", "tcp-clusterip", "tcp-nodeport"]
    assert [r.path.kind for r in runs.values()] == ["same-node", "cross-node", "clusterip", "nodeport"]
    for run in runs.values():
        assert run.backend == "kind" and run.source == "measured now on kind"
        assert run.result.version == "iperf 3.12" and run.result.sum(C2S, "receiver").bits_per_second > 0
    assert runs["same"].result.raw["start"]["connected"][0]["local_host"] == lab.cluster.pod(same).pod_ip
    assert runs["clusterip"].result.host == "iperf3-server" and "DNAT" in runs["clusterip"].path.hops_text()
    assert runs["nodeport"].command == "iperf3 -c 172.18.0.3 -p 30002 -t 2"


def test_udp_reverse_and_bidir_and_parallel_through_the_clusterip(live, kind_lab):
    cross = _pair(kind_lab, "cross-node")
    udp = kind_lab.iperf3(cross, "iperf3-server", "-u -R -t 2", progress=False)
    assert udp.result.protocol == "UDP" and udp.result.directions() == (S2C,)  # -R: one direction, the server sends
    assert udp.result.sum(S2C, "receiver").jitter_ms is not None
    bidir = kind_lab.iperf3(cross, "iperf3-server", "--bidir -t 2", progress=False)
    assert set(bidir.result.directions()) == {C2S, S2C}
    par = kind_lab.iperf3(cross, "iperf3-server", IperfOptions(seconds=1, parallel=30), progress=False)
    assert par.result.num_streams == 30 and len({s.socket for s in par.result.streams}) == 30


def test_busy_server_is_one_line_saying_wait_or_scale(live, kind_lab):
    live.iperf3.hold = 1.5  # the first test holds the server this long
    cross, same = _pair(kind_lab, "cross-node"), _pair(kind_lab, "same-node")
    first: dict = {}
    t = threading.Thread(target=lambda: first.setdefault("run", kind_lab.iperf3(cross, "iperf3-server", "-t 2", progress=False)))
    t.start()
    deadline = time.monotonic() + 10
    while not live.iperf3.tests and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(ServerBusy) as e:
        kind_lab.iperf3(same, "iperf3-server", "-t 2", progress=False)
    t.join(20)
    msg = str(e.value)
    server = kind_lab.pods("app=iperf3-server")[0]
    assert "\n" not in msg and f"iperf3 server {server} is busy" in msg and "wait for the other test or scale the server" in msg
    assert first["run"].result.sum().bits_per_second > 0  # the first test was not disturbed
    assert [x[2] for x in live.iperf3.tests] == ["tcp-clusterip", "busy"]


def test_errors_before_any_exec(live, kind_lab):
    lab = kind_lab
    cross = _pair(lab, "cross-node")
    [server] = lab.pods("app=iperf3-server")
    n = len(live.exec_log)
    with pytest.raises(InputError, match=r"^-p: iperf3 server .* listens on 5201 .*not on 5202; leave -p out"):
        lab.iperf3(cross, server, "-p 5202 -t 2", progress=False)
    with pytest.raises(InputError, match="webpod1 runs no iperf3 server .*nothing is started on demand"):
        lab.iperf3(cross, "webpod1", "-t 2", progress=False)
    with pytest.raises(InputError, match="-P"):
        lab.iperf3(cross, server, "-P 200", progress=False)
    assert _execs(live, n) == []
    live.forbid("create", "pods/exec")
    with pytest.raises(EnvironmentProblem, match=r"^exec not allowed: forbidden: .*cannot create pods/exec in namespace default"):
        lab.iperf3(cross, server, "-t 2", progress=False)
    assert _execs(live, n) == []


def test_a_client_without_iperf3_says_so(live, kind_lab):
    echo = kind_lab.pods("app=deploy-websrv")[0]  # mendhak/http-https-echo has no iperf3
    with pytest.raises(IperfMissing, match=f"iperf3 is not installed in {echo}'s image; run the test from an iperf3 client pod"):
        kind_lab.iperf3(echo, "iperf3-server", "-t 2", progress=False)
    with pytest.raises(IperfMissing):
        kind_lab.iperf3(W2, "iperf3-server", "-t 2", progress=False)  # a node: kind's node image has no iperf3


def test_mypc_through_the_nodeport_by_docker_exec(live, kind_lab):
    run = kind_lab.iperf3("mypc", f"{W1}:30002", "-t 2", progress=False)
    assert run.path.kind == "nodeport" and run.result.raw["start"]["connected"][0]["local_host"] == "172.18.0.100"
    assert live.iperf3.tests[-1] == ("mypc", kind_lab.pods("app=iperf3-server")[0], "tcp-nodeport-mypc")


def test_lab_sh_runs_the_studys_command_in_the_pod(live, kind_lab):
    cross = _pair(kind_lab, "cross-node")
    out = kind_lab.sh(cross, "iperf3 -c iperf3-server -t 2")
    assert out.returncode == 0 and out.startswith("Connecting to host iperf3-server, port 5201") and "iperf Done." in out
    assert live.exec_log[-1].argv == ("iperf3", "-c", "iperf3-server", "-t", "2")  # exactly what was typed
    js = kind_lab.sh(cross, "iperf3 -c iperf3-server -t 2 -J")
    assert parse(str(js)).sum().bits_per_second > 0


def test_an_interrupted_cell_returns_at_once(live, kind_lab):
    live.iperf3.hold = 3.0
    cross = _pair(kind_lab, "cross-node")
    from kslab.bandwidth import path_to

    path = path_to(kind_lab, cross, "iperf3-server")
    calls = []

    def progress(elapsed: float) -> None:
        calls.append(elapsed)
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        kind_lab.dataplane.iperf3(path, IperfOptions(seconds=2), kind_lab.cluster, progress=progress)
    assert time.monotonic() - t0 < 2.0 and calls  # not after the test's 3 s
