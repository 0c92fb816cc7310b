"""Chapter 10's bandwidth runs on the simulator (pure): the paths and their hops, the recording
the sim shows (and says it shows), ``lab.sh(..., "iperf3 -c ...")`` on sim, ``compare``.

The same runs on the real kernel are tests/test_bandwidth_netns.py.
"""

from __future__ import annotations

import json
import shlex

import pytest

from kslab import bandwidth
from kslab.bandwidth import PATH_KINDS, BandwidthPath, Hop, compare, options_of, path_to, recorded_run
from kslab.errors import InputError
from kslab.iperf3 import C2S, S2C, STUDY_TESTS, IperfOptions, parse
from kslab.lab import Lab
from kslab.resources import study_lab

SAME, CROSS = "app=iperf3-client,pair=same-node", "app=iperf3-client,pair=cross-node"


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = Lab(backend="sim", seed=10)
    lab.apply(study_lab() / "iperf3")
    return lab


def pod(lab: Lab, label: str) -> str:
    (name,) = lab.pods(label)
    return name


def node_of(lab: Lab, name: str) -> str:
    return lab.cluster.pod(name).node_name


# ---- paths -------------------------------------------------------------------------------------


def test_same_node_path_is_veth_routing_veth(lab: Lab) -> None:
    p = path_to(lab, SAME, "app=iperf3-server")
    server = pod(lab, "app=iperf3-server")
    assert (p.kind, p.server_pod, p.host, p.port, p.server_port) == ("same-node", server, lab.cluster.pod(server).pod_ip, 5201, 5201)
    assert p.client == pod(lab, "pair=same-node") and p.client_node == p.server_node == node_of(lab, server)
    assert p.hops_text() == f"veth -> routing ({p.server_node}) -> veth"
    assert [h.kind for h in p.hops] == ["veth", "routing", "veth"]
    # the veth names are the netns lab's (kslab.netns.layout.plan): the same on every backend
    from kslab.netns.layout import plan

    host_if = {q.name: q.host_if for q in plan(lab.cluster, "x-").pods}
    assert host_if[server] in p.hops[1].detail and host_if[p.client] in p.hops[0].detail


def test_cross_node_path_routes_over_the_bridge(lab: Lab) -> None:
    p = path_to(lab, CROSS, pod(lab, "app=iperf3-server"))
    assert p.kind == "cross-node" and p.client_node != p.server_node
    assert [h.kind for h in p.hops] == ["veth", "routing", "bridge", "routing", "veth"]
    there = lab.cluster.node(p.server_node)
    assert p.hops[1].detail == f"node {p.client_node} routes {there.pod_cidr} via {there.internal_ip} ({p.server_node})"
    assert not any(h.kind == "nat" for h in p.hops)


def test_clusterip_path_names_the_dnat_rule_the_trace_found(lab: Lab) -> None:
    p = path_to(lab, CROSS, "iperf3-server")
    svc = lab.cluster.service("iperf3-server")
    assert (p.kind, p.host, p.port, p.host_name) == ("clusterip", svc.cluster_ip, 5201, "iperf3-server")
    trace = lab.trace(p.client, f"{svc.cluster_ip}:5201")
    sep = next(s.chain for s in trace.steps if s.event == "rule" and "-j DNAT" in s.rule)
    nat = [h for h in p.hops if h.kind == "nat"]
    assert len(nat) == 1 and nat[0].where == p.client_node
    assert nat[0].detail == f"DNAT {svc.cluster_ip}:5201 -> {trace.dnat_to} ({sep})" and sep.startswith("KUBE-SEP-")
    assert p.hops_text().startswith(f"veth -> DNAT ({p.client_node}) -> routing ({p.client_node}) -> bridge")
    assert path_to(lab, CROSS, "iperf3-server:5201").hops == p.hops


def test_nodeport_path_from_mypc_dnat_and_masquerade(lab: Lab) -> None:
    node = node_of(lab, pod(lab, "pair=cross-node"))
    p = path_to(lab, "mypc", f"{node}:iperf3-server-nodeport")
    assert (p.kind, p.host, p.port, p.server_port, p.client_node) == ("nodeport", lab.cluster.node(node).internal_ip, 30002, 5201, "")
    assert path_to(lab, "mypc", f"{node}:30002").hops == p.hops
    kinds = [h.kind for h in p.hops]
    assert kinds[0] == "bridge" and kinds[-1] == "veth"
    nat = [h.detail for h in p.hops if h.kind == "nat"]
    assert nat[0].startswith(f"DNAT {p.host}:30002 -> ") and "(KUBE-SEP-" in nat[0]
    assert nat[1].startswith("MASQUERADE 172.18.0.100 -> ") and nat[1].endswith("(KUBE-POSTROUTING)")
    assert len(nat) == 2  # the MARK rule (KUBE-MARK-MASQ, "masquerade" in a comment) is no NAT hop


def test_path_to_bad_targets_are_one_line(lab: Lab) -> None:
    with pytest.raises(InputError) as e:
        path_to(lab, SAME, "iperf3-sever")
    msg = str(e.value)
    assert msg.startswith("to: 'iperf3-sever' is not a pod, a Service or NODE:NODEPORT") and "iperf3-server" in msg and "\n" not in msg
    with pytest.raises(InputError, match="has 3 endpoints"):
        path_to(lab, SAME, "svc-clusterip")  # iperf3's connections would be balanced to different pods
    with pytest.raises(InputError, match="docker network routes no pod address"):
        path_to(lab, "mypc", "app=iperf3-server")
    with pytest.raises(InputError, match="picks 2 pods"):
        path_to(lab, "app=iperf3-client", "iperf3-server")
    with pytest.raises(InputError, match="^client: 'nobody'"):
        path_to(lab, "nobody", "iperf3-server")
    with pytest.raises(InputError, match="no Service has the TCP nodePort 31999"):
        path_to(lab, "mypc", "myk8s-worker:31999")
    with pytest.raises(InputError, match="^-p"):
        path_to(lab, SAME, "app=iperf3-server", port=0)


def test_options_of() -> None:
    assert options_of("-u -R -t 5") == STUDY_TESTS["udp-reverse"]
    assert options_of("") == IperfOptions() and options_of(None) == IperfOptions()
    assert options_of(STUDY_TESTS["bidir"]) is STUDY_TESTS["bidir"]
    for bad, where in (("-c iperf3-server -t 5", "iperf3 options"), ("-s", "iperf3 options"), ("-x", "iperf3"), ("-P 200", "-P")):
        with pytest.raises(InputError) as e:
            options_of(bad)
        assert e.value.where == where and "\n" not in str(e.value)


# ---- the recording on sim --------------------------------------------------------------------


def test_the_recording_holds_every_study_test_on_every_path() -> None:
    data = bandwidth.recording()
    meta = data["meta"]
    for key in ("command", "kernel", "iperf3", "date", "loadavg", "cpus", "label", "nice"):
        assert meta.get(key) not in (None, ""), key
    assert meta["label"].startswith("RECORDED on ") and "(not measured now)" in meta["label"]
    assert "bench_iperf3.py --record" in meta["command"]
    have = {(r["path"], r["flags"]) for r in data["runs"]}
    wanted = {(k, o.flags()) for k in PATH_KINDS for o in [*STUDY_TESTS.values(), IperfOptions(udp=True, bitrate="0", seconds=5)]}
    assert wanted <= have
    for r in data["runs"]:
        _, _, opts = IperfOptions.from_argv(shlex.split(r["flags"]))
        res = parse(json.dumps(r["json"]))
        assert (res.protocol == "UDP") == opts.udp and res.reverse == opts.reverse and res.bidir == opts.bidir
        assert res.num_streams == opts.parallel and res.duration == opts.seconds
        assert set(res.directions()) == ({C2S, S2C} if opts.bidir else {S2C if opts.reverse else C2S})
        assert all(s.bits_per_second > 0 for s in res.sums)


def test_iperf3_on_sim_is_the_recording_and_says_so(lab: Lab) -> None:
    run = lab.iperf3(CROSS, "iperf3-server", "-u -R -t 5")
    text, label = recorded_run("clusterip", STUDY_TESTS["udp-reverse"])
    assert run.result.raw == json.loads(text) and run.source == label == bandwidth.recording()["meta"]["label"]
    assert run.backend == "sim" and run.command == "iperf3 -c iperf3-server -t 5 -u -R"
    assert run.result.directions() == (S2C,)
    df = run.frame()
    assert set(df["path"]) == {"clusterip"} and set(df["source"]) == {label} and set(df["flags"]) == {"-t 5 -u -R"}
    assert set(df["hops"]) == {run.path.hops_text()} and set(df["direction"]) == {S2C}
    doc = json.loads(run.json())
    assert doc["path"]["kind"] == "clusterip" and doc["source"] == label and doc["iperf3"] == run.result.raw
    assert "RECORDED" in str(run)


def test_a_test_not_recorded_says_what_is(lab: Lab) -> None:
    with pytest.raises(InputError) as e:
        lab.iperf3(SAME, "app=iperf3-server", "-u -b 5M -t 5")
    msg = str(e.value)
    assert msg.startswith("iperf3 options: no recording of `-t 5 -u -b 5M` on the same-node path; recorded: ")
    assert "`-t 5` on every path" in msg and "KSLAB_BACKEND=netns" in msg and "\n" not in msg


def test_recorded_run_matches_flags_not_their_order(tmp_path) -> None:
    fixture = json.loads((__import__("pathlib").Path(__file__).parent / "data" / "iperf3" / "udp_reverse.json").read_text())
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"schema": 1, "meta": {"label": "RECORDED here"}, "runs": [
        {"test": "x", "path": "same-node", "flags": "-R -u -t 2", "json": fixture}]}))
    text, label = recorded_run("same-node", IperfOptions(udp=True, reverse=True, seconds=2, port=30002), rec)
    assert json.loads(text) == fixture and label == "RECORDED here"
    with pytest.raises(InputError, match="on the cross-node path"):
        recorded_run("cross-node", IperfOptions(udp=True, reverse=True, seconds=2), rec)
    rec.write_text(json.dumps({"schema": 2, "meta": {}, "runs": []}))
    with pytest.raises(InputError, match="schema 2"):
        recorded_run("same-node", IperfOptions(), rec)


def test_sh_iperf3_on_sim_prints_the_recorded_report(lab: Lab) -> None:
    client = pod(lab, "pair=cross-node")
    out = lab.sh(client, "iperf3 -c iperf3-server -t 5")
    first, rest = str(out).split("\n", 1)
    assert first.startswith("# RECORDED on ") and "clusterip path" in first
    assert rest.startswith("Connecting to host 10.200.") and rest.rstrip().endswith("iperf Done.") and out.returncode == 0
    js = lab.sh(client, "iperf3 -c iperf3-server -t 5 -J")
    assert json.loads(str(js))["start"]["test_start"]["duration"] == 5 and js.stderr.startswith("# RECORDED on ")
    summed = lab.sh(client, "iperf3 -c iperf3-server -P 30 -t 5 | grep SUM")
    assert summed.count("[SUM]") >= 2
    gone = lab.sh(client, "iperf3 -c no-such-server -t 5")
    assert gone.returncode == 1 and gone.stderr == "iperf3: error - unable to connect to server: Name or service not known\n"
    with pytest.raises(InputError, match="the lab starts the server itself"):
        lab.sh(client, "iperf3 -s")
    with pytest.raises(InputError, match="no -c HOST"):
        lab.sh(client, "iperf3 -t 5")


def test_compare_has_one_row_per_run_with_its_hops(lab: Lab) -> None:
    node = node_of(lab, pod(lab, "pair=cross-node"))
    runs = [(SAME, "app=iperf3-server"), (CROSS, "app=iperf3-server"), (CROSS, "iperf3-server"), ("mypc", f"{node}:30002")]
    df = compare(lab, runs, "-t 5")
    assert list(df["path"]) == list(PATH_KINDS) and (df["Mbit_s"] > 0).all()
    assert df["ratio"].iloc[0] == 1.0 and list(df["hops"]) == [path_to(lab, c, t).hops_text() for c, t in runs]
    assert set(df["direction"]) == {C2S} and set(df["backend"]) == {"sim"}


def test_hop_labels() -> None:
    hops = (Hop("veth", "a", ""), Hop("nat", "n1", "DNAT 1:1 -> 2:2 (KUBE-SEP-X)"), Hop("routing", "n1", ""), Hop("bridge", "br-kind", ""))
    p = BandwidthPath("clusterip", "a", "b", "1", 1, "n1", "n2", hops)
    assert p.hops_text() == "veth -> DNAT (n1) -> routing (n1) -> bridge (br-kind)"


def test_a_services_port_is_its_own(lab: Lab) -> None:
    with pytest.raises(InputError, match="Service iperf3-server has no TCP port 5202; its TCP ports: 5201"):
        lab.iperf3(CROSS, "iperf3-server", "-p 5202 -t 5")
    assert path_to(lab, SAME, "app=iperf3-server", port=5202).server_port == 5202  # a pod: -p moves both ends


def test_deploy_slash_name_picks_the_deployments_first_pod_as_kubectl_exec_does(lab: Lab) -> None:
    pods = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/iperf3-client")
    assert len(pods) == 1
    p = path_to(lab, "deploy/iperf3-client", "iperf3-server")
    assert p.client == pods[0] and p.kind == "clusterip"
    assert path_to(lab, "deploy/iperf3-client-same", "iperf3-server").client_node == p.server_node
    with pytest.raises(InputError, match="^'deploy/nosuch': Deployment 'nosuch' has no running pod; Deployments of the lab: .*iperf3-client"):
        path_to(lab, "deploy/nosuch", "iperf3-server")
    with pytest.raises(InputError, match="or deploy/NAME"):
        path_to(lab, "iperf3-client", "iperf3-server")  # a Deployment's bare name is not a pod
