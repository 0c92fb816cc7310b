"""The kind backend end to end: ``kslab.Lab(backend="kind")`` with the real kubernetes client
against the local fake API server (tests/kindfake, fixture ``myk8s``) and the fake ``docker``
(tests/kindfake/docker: kind's node containers replayed from tests/data/kind-nodes, pods' and
nodes' commands answered by kslab's simulator over those recorded dumps).

What is real here: the kubernetes client (REST and the exec websocket), kslab's parsing of the
live objects, the curl loop's text and its parsing, docker's command lines. What is not: the
cluster (no Docker on this machine); README "The kind backend" says which paths were exercised
only this way.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import kslab
from kslab.dataplane.rows import COLUMNS
from kslab.errors import EnvironmentProblem, InputError
from kslab.kind import traffic

ROOT = Path(__file__).resolve().parents[1]

SVC_CHAIN = "KUBE-SVC-KBDEBIL6IU6WL7RF"
WEBPODS = ["webpod1", "webpod2", "webpod3"]


@pytest.fixture
def live(live_cluster):
    """The fake cluster (conftest's ``live_cluster``) and the fake docker's state folder."""
    server, env = live_cluster
    return server, Path(env["KSLAB_FAKE_DOCKER_STATE"])


def docker_calls(state: Path) -> list[list[str]]:
    log = state / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ---- the curl loop (pure) ------------------------------------------------------------------------
def test_parse_curl_loop_reads_whoami_echo_and_failures():
    whoami = ("Hostname: webpod2\nIP: 127.0.0.1\nIP: 10.10.2.2\nRemoteAddr: 10.10.0.2:41234\nGET / HTTP/1.1\n"
              "Host: 10.200.1.233:9000\n\n")
    echo = json.dumps({"ip": "::ffff:172.18.0.3", "os": {"hostname": "deploy-echo-x-abcde"}}, indent=2)
    out = (f"{whoami}\n{traffic.MARK} code=200 local=10.10.0.2:41234 time=0.004 exit=0\n"
           f"{echo}\n{traffic.MARK} code=200 local=172.18.0.100:5000 time=0.010 exit=0\n"
           f"\n{traffic.MARK} code=000 local=:0 time=1.001 exit=28\n"
           f"\n{traffic.MARK} code=000 local=10.10.0.2:40000 time=0.001 exit=7\n")
    r = traffic.parse_curl_loop(out)
    assert [(x.hostname, x.seen_ip, x.outcome) for x in r] == [
        ("webpod2", "10.10.0.2", "ok"), ("deploy-echo-x-abcde", "172.18.0.3", "ok"), (None, None, "timeout"), (None, None, "refused")]
    assert r[0].local == "10.10.0.2:41234" and r[2].local == "" and r[3].reason == "curl exit 7 (refused)"


def test_curl_loop_is_one_command_for_n_connections():
    argv = traffic.curl_loop("http://10.200.1.233:9000/", 250, 2.0)
    assert argv[:2] == ["sh", "-c"] and argv[-1] == "http://10.200.1.233:9000/" and "-lt 250 ]" in argv[2]
    with pytest.raises(InputError):
        traffic.curl_loop("http://x/", 0, 1)


# ---- the live lab --------------------------------------------------------------------------------
def test_lab_reads_the_live_cluster_and_predicts_the_real_rules(live):
    _, state = live
    with kslab.Lab(backend="kind") as lab:
        sim = kslab.Lab()
        assert lab.backend == "kind" and lab.fallback is None
        assert {n.name for n in lab.cluster.nodes} == {n.name for n in sim.cluster.nodes}
        assert lab.cluster.service("svc-clusterip").cluster_ip == sim.cluster.service("svc-clusterip").cluster_ip
        assert lab.cluster.config.name == "myk8s" and lab.cluster.config.service_subnet
        # the prediction (the Lab's Proxiers) loaded nothing: the node's rules are its own kube-proxy's
        real = lab.save_text("myk8s-worker")
        assert "KIND-MASQ-AGENT" in real and f"-j {SVC_CHAIN}" in real
        predicted = lab.render("myk8s-worker").save_text()
        assert f":{SVC_CHAIN}" in predicted and "KIND-MASQ-AGENT" not in predicted
        assert ["exec", "myk8s-worker", "iptables-save"] in docker_calls(state)
        assert not any(c[:1] == ["exec"] and "iptables-restore" in c for c in docker_calls(state))  # sync_rules loads nothing


def test_run_is_one_exec_per_batch_with_rows_of_the_one_definition(live, monkeypatch):
    server, _ = live
    monkeypatch.setattr("kslab.kind.dataplane.BATCH", 400)
    with kslab.Lab(backend="kind") as lab:
        before = len(server.exec_log) if hasattr(server, "exec_log") else None
        df = lab.run("net-pod", "svc-clusterip", n=1000)
        assert list(df.columns) == COLUMNS and len(df) == 1000 and (df["backend"] == "kind").all()
        assert (df["outcome"] == "ok").all() and list(df["conn"]) == list(range(1000))
        shares = df["endpoint_pod"].value_counts(normalize=True)
        assert set(shares.index) == set(WEBPODS) and (abs(shares - 1 / 3) < 0.06).all()  # random, so statistical
        pod = lab.cluster.pod("net-pod")
        assert (df["source_ip_seen"] == pod.pod_ip).all() and not df["masquerade"].any()
        for w in WEBPODS:
            rows = df[df["endpoint_pod"] == w]
            assert (rows["endpoint_ip"] == lab.cluster.pod(w).pod_ip).all()
            assert (rows["endpoint_node"] == lab.cluster.pod(w).node_name).all()
        assert (df["ingress_node"] == "myk8s-control-plane").all()
        if before is not None:
            loops = [r for r in server.exec_log[before:] if r.argv[:2] == ("sh", "-c")]
            assert len(loops) == 3  # 400 + 400 + 200: one exec per batch, not per connection


def test_mypc_is_started_on_request_on_the_kind_network_and_removed(live):
    _, state = live
    with kslab.Lab(backend="kind") as lab:
        assert not any(c[:1] == ["run"] for c in docker_calls(state))  # read-only and nothing started until asked
        df = lab.run("mypc", "myk8s-worker:svc-nodeport", n=30)
        run = next(c for c in docker_calls(state) if c[:1] == ["run"])
        assert run[run.index("--network") + 1] == "kind" and run[run.index("--ip") + 1] == "172.18.0.100"
        assert (df["outcome"] == "ok").all() and (df["client_ip"] == "172.18.0.100").all()
        assert df["masquerade"].all() and (df["ingress_node"] == "myk8s-worker").all()  # a NodePort SNATs (Cluster policy)
        assert df["endpoint_pod"].str.startswith("deploy-echo-").all()
    assert ["rm", "-f", "mypc"] in docker_calls(state)


def test_mypc_is_host_100_of_the_kind_networks_subnet():
    assert traffic.mypc_address(["172.18.0.0/16", "fc00:f853:ccd:e793::/64"]) == "172.18.0.100"
    assert traffic.mypc_address(["fc00:f853:ccd:e793::/64", "172.19.0.0/16"]) == "172.19.0.100"
    assert traffic.mypc_address(["10.89.3.0/24"], taken=["10.89.3.100"]) == "10.89.3.101"  # a node holds .100
    with pytest.raises(EnvironmentProblem, match="no IPv4 subnet"):
        traffic.mypc_address(["fc00:f853:ccd:e793::/64"])


def test_mypc_takes_its_address_from_dockers_kind_network(live, monkeypatch):
    """Docker gave kind another subnet than the study's 172.18.0.0/16: mypc is started at that
    network's .100 (docker network inspect kind), and the rows name that address."""
    _, state = live
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_SUBNET", "172.16.0.0/12")
    with kslab.Lab(backend="kind") as lab:
        df = lab.run("mypc", "myk8s-worker:svc-nodeport", n=10)
        run = next(c for c in docker_calls(state) if c[:1] == ["run"])
        assert run[run.index("--ip") + 1] == "172.16.0.100" and (df["client_ip"] == "172.16.0.100").all()
        assert ["network", "inspect", "kind", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"] in docker_calls(state)
        assert (df["outcome"] == "ok").all() and df["masquerade"].all()
        t = lab.trace("mypc", "myk8s-worker:svc-nodeport")
        assert t.outcome == "ok" and t.masquerade


def test_sh_runs_in_pods_by_exec_and_in_nodes_by_docker_exec(live):
    server, state = live
    with kslab.Lab(backend="kind") as lab:
        out = lab.sh("net-pod", "curl -s svc-clusterip:9000 | grep Hostname")
        assert out.split()[1] in WEBPODS
        assert any(r.argv[0] == "curl" and r.pod == "net-pod" for r in server.exec_log)
        rules = lab.sh("myk8s-control-plane", f"iptables -t nat -S {SVC_CHAIN}")
        assert rules.count(f"-A {SVC_CHAIN} ") == 4
        assert any(c[:3] == ["exec", "myk8s-control-plane", "iptables"] for c in docker_calls(state))
        assert lab.sh("net-pod", "hostname").strip() == "net-pod"
        # webpod1's image (traefik/whoami) is the app's binary alone: nothing to exec, as on a live cluster
        r = lab.sh("webpod1", "curl -s svc-clusterip:9000")
        assert r.returncode == 127 and 'exec: "curl": executable file not found' in r.stderr and not str(r)
        # a live cluster's objects come from the API server: kubectl lists what it read
        assert "svc-clusterip" in lab.sh("myk8s-control-plane", "kubectl get svc")


def test_trace_walks_the_nodes_real_dumps(live):
    with kslab.Lab(backend="kind") as lab:
        t = lab.trace("net-pod", "svc-clusterip")
        assert t.backend == "kind" and "live iptables-save" in t.source
        assert t.chains[:2] == ["KUBE-SERVICES", SVC_CHAIN] and t.outcome == "ok" and not t.masquerade
        assert t.endpoint_pod in WEBPODS and t.dnat_to == f"{lab.cluster.pod(t.endpoint_pod).pod_ip}:80"
        t2 = lab.trace("myk8s-worker", "svc-clusterip")
        assert t2.masquerade  # a node's own address is outside the cluster CIDR


def test_counters_move_with_the_connections_made(live):
    with kslab.Lab(backend="kind") as lab:
        def counts() -> int:
            listing = lab.sh("myk8s-control-plane", f"iptables -v -n -x -t nat -L {SVC_CHAIN}")
            return sum(int(line.split()[0]) for line in listing.splitlines() if "KUBE-SEP-" in line)
        before = counts()
        lab.clear_kernel_state()  # a live node's counters are not kslab's to zero
        lab.run("net-pod", "svc-clusterip", n=300)
        assert counts() - before == 300


def test_copy_is_a_sim_twin_of_the_live_rules(live):
    with kslab.Lab(backend="kind") as lab:
        twin = lab.copy()
        assert twin.backend == "sim" and "KIND-MASQ-AGENT" in twin.save_text("myk8s-worker")
        assert twin.delete_rules("KIND-MASQ-AGENT", nodes=["myk8s-worker"]) >= 1
        with pytest.raises(EnvironmentProblem, match="kube-proxy owns them"):
            lab.delete_rules("KIND-MASQ-AGENT")


def test_changes_go_to_the_api_server_and_only_to_labelled_objects(live):
    server, _ = live
    with kslab.Lab(backend="kind") as lab:
        writes = [(m, p) for m, p in server.requests if m != "GET"]
        assert writes and all(p.startswith("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") for _, p in writes)  # read-only until asked (reviews change nothing)
        with pytest.raises((InputError, EnvironmentProblem), match="coredns"):
            lab.scale("coredns", 3, namespace="kube-system")  # not kslab's: never changed
        lab.scale("deploy-echo", 4)  # the fixture's deploy-echo carries kslab's label (applied by kslab)
        dep = next(o for o in server.objects("Deployment") if o["metadata"]["name"] == "deploy-echo")
        assert dep["spec"]["replicas"] == 4
        assert any(m in ("PATCH", "PUT") and "deployments/deploy-echo/scale" in p for m, p in server.requests)
        assert [d.replicas for d in lab.cluster.deployments if d.name == "deploy-echo"] == [4]  # re-read after the rollout
        lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=45)
        svc = next(o for o in server.objects("Service") if o["metadata"]["name"] == "svc-clusterip")
        assert svc["spec"]["sessionAffinity"] == "ClientIP" and lab.cluster.service("svc-clusterip").session_affinity == "ClientIP"
        assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 45}}
        assert lab.cluster.service("svc-clusterip").session_affinity_timeout == 45
        with pytest.raises(InputError, match="cannot be patched on a live cluster"):
            lab.patch_service("svc-clusterip", cluster_ip="10.200.1.9")
        lab.reset()  # kslab changed the cluster: the lab's manifests are applied again
        dep = next(o for o in server.objects("Deployment") if o["metadata"]["name"] == "deploy-echo")
        svc = next(o for o in server.objects("Service") if o["metadata"]["name"] == "svc-clusterip")
        assert dep["spec"]["replicas"] == 3 and svc["spec"].get("sessionAffinity", "None") == "None"
        assert "sessionAffinityConfig" not in svc["spec"]


STUDY_OBJECTS = {"webpod1", "webpod2", "webpod3", "net-pod", "svc-clusterip", "svc-nodeport", "deploy-echo"}


def _without_the_lab(server, keep=()):
    """The fake cluster as kind creates it: none of the lab's objects (their slices and deploy-echo's pods gone too)."""
    gone = STUDY_OBJECTS - set(keep)
    server.load([o for o in server.objects()
                 if o["metadata"]["name"] not in gone
                 and (o["metadata"].get("labels") or {}).get("kubernetes.io/service-name") not in gone
                 and not o["metadata"]["name"].startswith("deploy-echo-")])


def test_a_cluster_without_the_labs_objects_falls_back_naming_kslab_apply(live, monkeypatch, capsys):
    server, _ = live
    _without_the_lab(server)
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    printed = capsys.readouterr().out.strip().splitlines()
    assert lab.backend == "sim" and len(printed) == 1
    assert printed[0] == ("kslab: kind backend unavailable (kind-myk8s has none of the lab's objects yet (kslab changes "
                          "nothing until asked): create them with `kslab apply --context kind-myk8s`); running on sim")
    assert not [m for m, p in server.requests if m != "GET" and "selfsubjectaccessreviews" not in p]  # nothing written
    with pytest.raises(EnvironmentProblem, match="kslab apply --context kind-myk8s"):
        kslab.Lab(backend="kind")  # asked by argument: the same line, as an error


def test_some_objects_missing_are_named(live):
    server, _ = live
    _without_the_lab(server, keep=STUDY_OBJECTS - {"svc-nodeport", "deploy-echo"})
    with pytest.raises(EnvironmentProblem) as e:
        kslab.Lab(backend="kind")
    assert str(e.value) == ("kind-myk8s lacks 2 of the lab's 7 objects (deployment default/deploy-echo, service "
                            "default/svc-nodeport): create them with `kslab apply --context kind-myk8s`")


def test_kslab_apply_creates_the_objects_labelled_then_the_lab_opens_live(live):
    import subprocess

    server, _ = live
    _without_the_lab(server)
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "apply", "--context", "kind-myk8s"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{k}/default/{n} created" for k, n in [
        ("pod", "net-pod"), ("service", "svc-clusterip"), ("pod", "webpod1"), ("pod", "webpod2"), ("pod", "webpod3"),
        ("deployment", "deploy-echo"), ("service", "svc-nodeport")]]
    assert "rollout: 3/3 replicas available (deployment default/deploy-echo: successfully rolled out)" in r.stderr
    assert "Traceback" not in r.stderr
    made = [o for o in server.objects() if o["metadata"]["name"] in STUDY_OBJECTS]
    assert len(made) == 7 and all(o["metadata"]["labels"]["kslab.io/managed-by"] == "kslab" for o in made)
    with kslab.Lab(backend="kind") as lab:  # the lab's objects are there, kslab's: it opens live
        assert lab.backend == "kind" and lab.cluster.service("svc-clusterip")
        lab.patch_service("svc-clusterip", session_affinity="ClientIP")  # and kslab may change them
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "apply"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=120)  # again: every object configured, nothing refused
    assert r.returncode == 0 and all(line.endswith(" configured") for line in r.stdout.splitlines()), r.stderr


def test_objects_made_outside_kslab_fall_back_saying_how_to_hand_them_over(live, monkeypatch, capsys):
    """kubectl apply -f data/myk8s/...: the objects have no kslab label, so kslab would refuse every
    change the chapters make: the lab falls back at open, saying to delete them and kslab apply."""
    server, _ = live
    for o in server.objects():
        if o["metadata"]["name"] in STUDY_OBJECTS and o["kind"] in ("Pod", "Service", "Deployment"):  # the manifests' objects
            o["metadata"]["labels"].pop("kslab.io/managed-by", None)
            server.store.put(o)
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    printed = capsys.readouterr().out.strip().splitlines()
    assert lab.backend == "sim" and len(printed) == 1
    data = kslab.resources.study_lab()
    assert lab.fallback == (
        "kind backend unavailable (kind-myk8s: the lab's objects were made outside kslab (pod default/net-pod, service "
        "default/svc-clusterip, pod default/webpod1 and 4 more have no label kslab.io/managed-by=kslab), and kslab never "
        "changes what it did not create: delete them (kubectl --context kind-myk8s delete "
        f"-f {data}/clusterip/netpod.yaml -f {data}/clusterip/svc-clusterip.yaml -f {data}/clusterip/webpods.yaml "
        f"-f {data}/nodeport/deploy-echo.yaml -f {data}/nodeport/svc-nodeport.yaml) and create them with "
        "`kslab apply --context kind-myk8s`, or hand them over unchanged with `kslab apply --context kind-myk8s --adopt`)")
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "apply"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "was not created by kslab" in r.stderr and len(r.stderr.splitlines()) == 2  # refused, nothing changed
    assert not [p for m, p in server.requests if m in ("POST", "PATCH", "PUT", "DELETE") and "selfsubjectaccessreviews" not in p]

    # --adopt: an object that is not what its manifest says stops the adoption before any label is added
    svc = next(o for o in server.objects("Service") if o["metadata"]["name"] == "svc-nodeport")
    svc["spec"]["ports"][0]["targetPort"] = 8081
    server.store.put(svc)
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "apply", "--adopt"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        f"kslab: error: service default/svc-nodeport: differs from the lab's manifest ({data}/nodeport/svc-nodeport.yaml) at "
        "spec.ports[0].targetPort, so kslab will not adopt it; delete it (kubectl delete services svc-nodeport -n default) "
        "and run kslab apply without --adopt")
    assert not any("kslab.io/managed-by" in (o["metadata"].get("labels") or {}) for o in server.objects()
                   if o["metadata"]["name"] in STUDY_OBJECTS and o["kind"] in ("Pod", "Service", "Deployment"))
    # as kubectl apply made them: adopted, only the label added, then the lab opens live
    svc["spec"]["ports"][0]["targetPort"] = 8080
    server.store.put(svc)
    before = {(o["kind"], o["metadata"]["name"]): o for o in server.objects()
              if o["metadata"]["name"] in STUDY_OBJECTS and o["kind"] in ("Pod", "Service", "Deployment")}
    writes: list[dict] = []
    server.on_write.append(lambda _server, verb, obj: writes.append(obj))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "apply", "--adopt"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(line for line in r.stdout.splitlines() if line.endswith(" adopted")) == sorted(
        f"{k.lower()}/default/{n} adopted" for k, n in before)
    first = {}
    for o in writes:  # each object's first write is the adoption's: the label added, nothing else
        first.setdefault((o["kind"], o["metadata"]["name"]), o)
    assert set(first) == set(before)
    for key, o in first.items():
        was = before[key]
        assert o["metadata"]["labels"] == {**was["metadata"]["labels"], "kslab.io/managed-by": "kslab"}
        same = ("spec",) if o["kind"] == "Deployment" else tuple(k for k in {*o, *was} if k != "metadata")  # (a read moves a fake Deployment's status)
        assert {k: o.get(k) for k in same} == {k: was.get(k) for k in same}, key
    monkeypatch.delenv("KSLAB_BACKEND")
    with kslab.Lab(backend="kind") as lab:
        assert lab.backend == "kind"


def test_lab_apply_applies_the_lab_manifests_live_with_the_label(live):
    server, _ = live
    with kslab.Lab(backend="kind") as lab:
        server.load([o for o in server.objects() if o["metadata"]["name"] != "svc-clusterip"])  # deleted under the lab
        changed = lab.apply()
        assert "service/default/svc-clusterip created" in changed
        svc = next(o for o in server.objects("Service") if o["metadata"]["name"] == "svc-clusterip")
        assert svc["metadata"]["labels"]["kslab.io/managed-by"] == "kslab"
        assert lab.cluster.service("svc-clusterip")


# ---- fallback and errors -------------------------------------------------------------------------
def test_env_fallback_is_one_line_and_runs_on_sim(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    monkeypatch.delenv("KSLAB_STRICT_BACKEND", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    lab = kslab.Lab()
    out = capsys.readouterr().out.strip().splitlines()
    assert lab.backend == "sim" and lab.fallback and len(out) == 1 and out[0].startswith("kslab: kind backend unavailable")
    monkeypatch.setenv("KSLAB_STRICT_BACKEND", "1")
    with pytest.raises(EnvironmentProblem):
        kslab.Lab()


def test_asked_by_argument_it_is_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(EnvironmentProblem):
        kslab.Lab(backend="kind")


@pytest.mark.parametrize("failure, message", [
    ("daemon", "daemon does not answer"),
    ("missing:myk8s-worker2", "myk8s-worker2 is not running"),
])
def test_docker_problems_fall_back_with_the_reason(live, monkeypatch, capsys, failure, message):
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_FAIL", failure)
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    assert lab.backend == "sim" and message in lab.fallback
    assert message in capsys.readouterr().out


def test_docker_missing(live, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="docker: not found"):
        kslab.Lab(backend="kind")


def test_api_403_names_the_verb_and_resource(live):
    server, _ = live
    server.forbid("list", "endpointslices")
    with pytest.raises(EnvironmentProblem, match="endpointslices"):
        kslab.Lab(backend="kind")


def test_context_not_named_kind_is_refused_unless_allowed(live, tmp_path, monkeypatch):
    server, _ = live
    cfg = server.write_kubeconfig(tmp_path / "other", context="prod")
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    with pytest.raises(EnvironmentProblem, match="kind-"):
        kslab.Lab(backend="kind", context="prod")
    with kslab.Lab(backend="kind", context="prod", allow_any_context=True) as lab:
        assert lab.backend == "kind"


@pytest.mark.parametrize("verb", ["exec", "create"])
def test_exec_forbidden_falls_back_at_open_in_one_line(live, monkeypatch, capsys, verb):
    """Exec not allowed (RBAC: no create on pods/exec): asked by the API's SelfSubjectAccessReview
    when the lab opens, so a notebook runs on sim from its first cell instead of failing at lab.run."""
    server, _ = live
    server.forbid(verb, "pods/exec")
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    printed = capsys.readouterr().out.strip().splitlines()
    assert lab.backend == "sim" and len(printed) == 1
    assert printed[0].startswith("kslab: kind backend unavailable (exec not allowed: forbidden: context 'kind-myk8s' "
                                 "cannot create pods/exec in namespace default (the API server said: no RBAC rule allows it")
    assert "kubectl auth can-i create pods/exec -n default" in printed[0] and printed[0].endswith("; running on sim")
    monkeypatch.setenv("KSLAB_STRICT_BACKEND", "1")
    with pytest.raises(EnvironmentProblem, match=r"^exec not allowed: forbidden") as e:
        kslab.Lab()
    assert "\n" not in str(e.value)
    assert not any(r.argv for r in server.exec_log)  # refused before any exec was tried


def test_a_patch_the_chapters_need_forbidden_falls_back_at_open(live, monkeypatch):
    server, _ = live
    server.forbid("patch", "services", namespace="default")
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    assert lab.backend == "sim" and "cannot patch services in namespace default" in lab.fallback


def test_exec_refused_after_open_is_still_one_line(live):
    """A refusal the review did not foresee (the handshake itself refused): one line at lab.run."""
    server, _ = live
    with kslab.Lab(backend="kind") as lab:
        server.fail(403, verb="exec", resource="pods/exec", body={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                                  "message": "denied by a webhook", "reason": "Forbidden", "code": 403})
        with pytest.raises(EnvironmentProblem) as e:
            lab.run("net-pod", "svc-clusterip", n=5)
        assert "\n" not in str(e.value) and "exec not allowed" in str(e.value)


def test_a_node_dump_the_simulator_cannot_read_is_one_line(live):
    """Another CNI's rule (EKS's CONNMARK) in a node's nat table: trace says so in one line."""
    nodes = Path(os.environ["KSLAB_FAKE_DOCKER_NODES"])
    dump = nodes / "myk8s-worker.iptables-save"
    text = dump.read_text()
    nat_start = text.index("*nat")
    commit = text.index("COMMIT", nat_start)
    dump.write_text(text[:commit] + '[0:0] -A PREROUTING -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80\n' + text[commit:])
    with kslab.Lab(backend="kind") as lab:
        with pytest.raises(EnvironmentProblem, match="myk8s-worker's tables: kslab's simulator cannot load them") as e:
            lab.trace("net-pod", "svc-clusterip")
        assert "\n" not in str(e.value)


def test_api_unreachable_falls_back_in_one_line(live, monkeypatch, capsys):
    server, _ = live
    server.stop()  # the port is closed: connection refused
    monkeypatch.setenv("KSLAB_BACKEND", "kind")
    lab = kslab.Lab()
    printed = capsys.readouterr().out.strip().splitlines()
    assert lab.backend == "sim" and len(printed) == 1 and "kind backend unavailable" in printed[0]
    assert "kind-myk8s" in lab.fallback or "127.0.0.1" in lab.fallback


def test_verify_compares_the_prediction_with_the_nodes_real_rules(live):
    """lab.verify(node) on kind: the live objects' prediction against the node's iptables-save by
    docker exec, kind's own chains ignored. The fake cluster agrees with itself (the recorded dumps
    were made for the objects the fake API server serves): an empty diff on every node."""
    with kslab.Lab(backend="kind") as lab:
        for node in lab.cluster.nodes:
            r = lab.verify(node.name)
            assert r.ignored_chains == ["nat DOCKER_OUTPUT", "nat DOCKER_POSTROUTING", "nat KIND-MASQ-AGENT"]
            assert r.ok() and r.diffs == [], r.text()


def test_verify_reports_an_edited_node_exactly(live):
    """A node whose dump lost svc-nodeport's SEP chain for one deploy-echo pod: lab.verify names
    that chain (missing whole) and the jump to it, nothing else; the other nodes still match."""
    nodes = Path(os.environ["KSLAB_FAKE_DOCKER_NODES"])
    dump = nodes / "myk8s-worker2.iptables-save"
    sep = "KUBE-SEP-XEXGJWEWSC2GPNPZ"  # default/svc-nodeport:svc-webport -> 10.10.1.3:8080
    text = dump.read_text()
    assert sep in text
    dump.write_text("".join(line for line in text.splitlines(keepends=True) if sep not in line))
    with kslab.Lab(backend="kind") as lab:
        r = lab.verify("myk8s-worker2")
        assert [(d.chain, d.status, len(d.missing), len(d.unexpected)) for d in r.diffs] == [
            (sep, "missing", 2, 0), ("KUBE-SVC-VTR7MTHHNMFZ3OFS", "", 1, 0)], r.text()
        assert r.diffs[1].missing[0].endswith(f"-j {sep}") and "10.10.1.3:8080" in r.diffs[1].missing[0]
        assert lab.verify("myk8s-worker3").ok()


def test_cli_sh_and_simulate_on_kind(live):
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "sh", "--backend", "kind", "net-pod", "--",
                        "curl -s svc-clusterip:9000 | grep Hostname"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split()[1] in WEBPODS, r.stderr
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "simulate", "--backend", "kind", "--from", "net-pod",
                        "--to", "svc-clusterip", "-n", "60", "--json"], env=env, capture_output=True, text=True, timeout=120)
    doc = json.loads(r.stdout)
    assert doc["backend"] == "kind" and doc["connections"] == 60 and set(doc["by_endpoint"]) <= set(WEBPODS)
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "sh", "--backend", "kind", "net-pod", "--", "hostname"],
                       env=dict(env, KUBECONFIG=str(ROOT / "no-such-kubeconfig")), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_delete_pod_goes_to_the_api_server_for_kslabs_pods_only(live):
    server, _ = live
    with kslab.Lab(backend="kind") as lab:
        coredns = next(p.name for p in lab.cluster.pods if p.name.startswith("coredns-"))
        with pytest.raises((InputError, EnvironmentProblem), match=coredns):
            lab.delete_pod(coredns, namespace="kube-system")
        echo = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
        lab.delete_pod(echo[0])  # owned by the labelled deploy-echo (through its ReplicaSet)
        assert any(m == "DELETE" and f"/pods/{echo[0]}" in p for m, p in server.requests)
        assert echo[0] not in {p.name for p in lab.cluster.pods}  # re-read (the fake runs no ReplicaSet controller)
        with pytest.raises(EnvironmentProblem, match="readiness"):
            lab.set_ready("webpod1", False)


def test_a_missing_context_is_one_line(live):
    with pytest.raises(EnvironmentProblem, match="kind-nope") as e:
        kslab.Lab(backend="kind", context="kind-nope")
    assert "\n" not in str(e.value)


def test_a_live_patch_reaches_the_nodes_rules_through_their_kube_proxy(live):
    """The fake cluster's kube-proxy (tests/kindfake/livecluster.py) follows the API: after
    patch_service, the node's real rules hold the --rcheck rules that the Lab's prediction has."""
    with kslab.Lab(backend="kind") as lab:
        assert "--rcheck" not in lab.save_text("myk8s-worker")
        lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)
        real = lab.sh("myk8s-worker", f"iptables -t nat -S {SVC_CHAIN}")
        assert real.count("--rcheck --seconds 10800 --reap") == 3
        assert all(line in lab.render("myk8s-worker").save_text() for line in real.splitlines() if line.startswith("-A"))
        df = lab.run("net-pod", "svc-clusterip", n=50)
        assert df["endpoint_pod"].nunique() == 1  # ClientIP affinity: one client, one endpoint


def test_exact_is_the_lab_itself_where_kslab_sets_the_state_and_a_sim_twin_on_kind(live, capsys):
    """Lab.exact: the one place a chapter's experiment that needs exact state (fresh conntrack,
    counters from zero, a broken pod, a made-up client) decides where it runs, saying so in one line."""
    sim = kslab.Lab()
    assert sim.exact("fresh conntrack entries") is sim and capsys.readouterr().out == ""
    with kslab.Lab(backend="kind") as lab:
        capsys.readouterr()
        twin = lab.exact("fresh conntrack entries, which a live node shares with the cluster")
        assert capsys.readouterr().out == ("kind: this experiment needs fresh conntrack entries, which a live node shares "
                                           "with the cluster; it runs on the simulator copy of this lab\n")
        assert twin is not lab and twin.backend == "sim" and twin.dataplane.exact
        assert "KIND-MASQ-AGENT" in twin.save_text("myk8s-worker")  # the nodes' real rules
        twin.break_pod("webpod2")
        df = twin.run("10.10.1.100", "svc-clusterip", n=300, seed=1)  # a made-up client: the sim has one
        assert set(df[df["outcome"] == "error"]["endpoint_pod"]) == {"webpod2"}
        assert twin.exact("anything") is twin


def test_kslab_apply_bad_input_and_no_cluster_are_one_line(tmp_path, monkeypatch, capsys):
    from kslab.cli import main

    assert main(["apply", "--timeout", "nan"]) == 2
    assert capsys.readouterr().err == "kslab: error: --timeout: nan is not a positive number of seconds; give e.g. --timeout 300\n"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    assert main(["apply", "--context", "kind-myk8s"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kslab: error: no kubeconfig at ") and len(err.splitlines()) == 1
    assert main(["apply", "-f", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


# ---- a kind cluster whose kube-proxy runs nftables mode ---------------------------------------------
NFT_NODES = ROOT / "tests" / "data" / "kind-nodes-nft"


def _kube_proxy_in_nftables_mode(server, state: Path) -> None:
    """The fake cluster's kube-proxy ConfigMap switched to mode: nftables, and each node's `nft list
    ruleset` (the generated listings, tests/data/kind-nodes-nft/SOURCES.md) in the fake docker's nodes."""
    import shutil

    cm = server.store.get("ConfigMap", "kube-system", "kube-proxy")
    assert "mode: iptables" in cm["data"]["config.conf"]
    cm["data"]["config.conf"] = cm["data"]["config.conf"].replace("mode: iptables", "mode: nftables")
    server.store.put(cm)
    nodes = Path(os.environ["KSLAB_FAKE_DOCKER_NODES"])
    for f in NFT_NODES.glob("*.nft"):
        shutil.copy(f, nodes / f.name)


def test_the_recorded_nft_listings_are_what_the_script_writes():
    sys.path.insert(0, str(ROOT / "tests" / "kindfake"))
    from record_nft import listings

    made = listings()
    assert sorted(made) == sorted(p.stem for p in NFT_NODES.glob("*.nft"))
    for node, text in made.items():
        assert (NFT_NODES / f"{node}.nft").read_text() == text, f"regenerate: PYTHONPATH=. python tests/kindfake/record_nft.py ({node})"


def test_lab_on_a_live_cluster_in_nftables_mode(live):
    server, state = live
    _kube_proxy_in_nftables_mode(server, state)
    with kslab.Lab(backend="kind") as lab:
        assert lab.backend == "kind" and lab.proxy_mode == "nftables" and lab.proxy_options["mode"] == "nftables"
        ruleset = lab.render("myk8s-worker")
        assert ruleset.mode == "nftables"
        predicted = ruleset.list_text()
        real = lab.nft_list("myk8s-worker")  # docker exec NODE nft list table ip kube-proxy
        assert real == (NFT_NODES / "myk8s-worker.nft").read_text() == predicted
        assert ["exec", "myk8s-worker", "nft", "list", "table", "ip", "kube-proxy"] in docker_calls(state)
        out = lab.sh("myk8s-worker", "nft list table ip kube-proxy")
        assert out.returncode == 0 and str(out) == real
        chains = lab.sh("myk8s-worker", "nft list ruleset | grep -c 'chain service-'")
        assert int(str(chains)) == predicted.count("\tchain service-")
        # the nodes' real tables and the prediction agree: lab.verify compares table ip kube-proxy
        r = lab.verify("myk8s-worker")
        assert r.ok() and r.mode == "nftables", r.text()
        # no exec per sync: the Lab's Proxiers list no chains on the live nodes
        assert lab.dataplane.existing_chains("myk8s-worker", "nftables") == []
        with pytest.raises(InputError, match=r"^mode: 'iptables': the live cluster's kube-proxy runs nftables mode"):
            lab.set_proxy(mode="iptables")
        assert lab.proxy_mode == "nftables"
    # the mode is the cluster's: asking another one is a one-line error, not a wrong prediction
    with pytest.raises(InputError) as e:
        kslab.Lab(backend="kind", proxy_mode="iptables")
    assert str(e.value).startswith("proxy_mode: 'iptables': the live cluster's kube-proxy runs nftables mode") and "\n" not in str(e.value)


def test_a_live_node_without_table_ip_kube_proxy(live):
    """iptables mode (the fixture's): nft list table ip kube-proxy fails with nft's own error: nft_list is ""."""
    with kslab.Lab(backend="kind") as lab:
        assert lab.proxy_mode == "iptables" and lab.dataplane.nft_list("myk8s-worker") == ""
        out = lab.sh("myk8s-worker", "nft list table ip kube-proxy")
        assert out.returncode == 1 and out.stderr.startswith("Error: No such file or directory\nlist table ip kube-proxy")
