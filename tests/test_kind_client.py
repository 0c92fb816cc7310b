"""KindClient (kslab/kind/client.py) with the REAL kubernetes client against the local fake API
server (tests/kindfake), over HTTP and HTTPS, with kubeconfigs written to tmp_path.

Covers the listing (the fixture as served: managedFields, ``endpoints: null``, fields the client's
models do not know, paging), the kube-proxy ConfigMap, exec (stdout, stderr, exit code, timeout,
forbidden), the label-checked writes (apply, scale, patch, delete: never an unlabelled object,
nothing half-applied), wait_rollout with a progress callback, and every error path of the
contract: no kubeconfig, context missing, non-kind context refused unless allow_any_context,
connection refused, timeout, RBAC 403 naming the verb and resource, 404, 401.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kindfake import ExecAnswer, FakeApiServer, free_port, load_objects, server_for
from kindfake.pytest_fixtures import kind_fake, kind_kubeconfig  # noqa: F401
from kslab.errors import EnvironmentProblem, InputError
from kslab.kind import client as kc
from kslab.kind.client import MANAGED_LABEL_KEY, KindClient
from kslab.manifests import ADDON_MARKER

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _client_imported():
    """The client's modules are imported before any test times a call (importing them takes
    seconds on a loaded machine; the timeouts under test are the calls')."""
    import kubernetes.client  # noqa: F401
    import kubernetes.config  # noqa: F401
    import kubernetes.stream  # noqa: F401


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture
def client(kind_fake, kind_kubeconfig):  # noqa: F811
    c = KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=5)
    yield c
    c.close()


def study_manifests() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "data" / "myk8s").rglob("*.yaml")):
        if path.name == "kind-cluster.yaml" or (path.parent / ADDON_MARKER).exists():  # add-ons: not the study's lab
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def without_study_objects(objects: list[dict]) -> list[dict]:
    """The fixture cluster before the workbook applied the lab (kind's own objects only)."""
    return [o for o in objects if MANAGED_LABEL_KEY not in (o["metadata"].get("labels") or {})
            and not o["metadata"]["name"].startswith("deploy-echo")]


# ---- listing ----------------------------------------------------------------------------------------


def test_list_objects_serves_the_fixture_as_the_api_server_does(client, kind_fake):
    objs = client.list_objects()
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    assert sorted(by_kind) == ["EndpointSlice", "Node", "Pod", "Service"]
    # kind and apiVersion are set again on items (a list response leaves them out)
    assert {o["apiVersion"] for o in by_kind["EndpointSlice"]} == {"discovery.k8s.io/v1"}
    assert {o["apiVersion"] for o in by_kind["Node"]} == {"v1"}
    assert [n["metadata"]["name"] for n in by_kind["Node"]] == [
        "myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    assert len(by_kind["Pod"]) == 7 + 15  # the study's 7; kind's 4 static, 8 DaemonSet, 2 coredns, local-path
    assert {p["metadata"]["namespace"] for p in by_kind["Pod"]} == {"default", "kube-system", "local-path-storage"}
    # the server's bookkeeping passes through untouched
    webpod1 = next(p for p in by_kind["Pod"] if p["metadata"]["name"] == "webpod1")
    assert webpod1["metadata"]["managedFields"][0]["manager"] == "kslab"
    assert webpod1["metadata"]["labels"][MANAGED_LABEL_KEY] == "kslab"
    # paths the client used: one page per kind, all namespaces
    paths = [p for m, p in kind_fake.requests if m == "GET"]
    assert "/api/v1/nodes?limit=500" in paths
    assert "/apis/discovery.k8s.io/v1/endpointslices?limit=500" in paths


def test_fixture_agrees_with_the_sim(client):
    """The study's objects in the fixture are the sim's: same pod IPs, ClusterIPs, NodePorts, uids."""
    import kslab

    cluster = kslab.Lab().cluster
    objs = client.list_objects()
    pods = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "Pod"}
    for p in cluster.pods:
        live = pods[(p.namespace, p.name)]
        assert live["status"]["podIP"] == p.pod_ip and live["spec"]["nodeName"] == p.node_name
    svcs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "Service"}
    for s in cluster.services:
        live = svcs[(s.namespace, s.name)]
        assert live["spec"]["clusterIP"] == s.cluster_ip
        assert [p.get("nodePort", 0) for p in live["spec"]["ports"]] == [p.node_port for p in s.ports]
    assert svcs[("kube-system", "kube-dns")]["spec"]["clusterIP"] == "10.200.1.10"  # what the sim does not model


@pytest.mark.parametrize("kind_fake", ["myk8s-echo0"], indirect=True)
def test_list_keeps_null_endpoints_and_unknown_fields(client, kind_fake):
    # a field no model of the client knows (a newer API server), on a Service and a Pod
    svc = next(o for o in kind_fake.objects("Service") if o["metadata"]["name"] == "svc-nodeport")
    svc["spec"]["kslabFutureField"] = {"nested": [1, None]}
    svc["status"]["conditions"] = None
    kind_fake.store.put(svc)
    objs = client.list_objects()
    sl = next(o for o in objs if o["kind"] == "EndpointSlice" and o["metadata"]["name"].startswith("svc-nodeport-"))
    assert "endpoints" in sl and sl["endpoints"] is None  # deploy-echo scaled to 0
    assert "ports" in sl and sl["ports"] is None  # the controller's placeholder slice: no ports either
    live = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "svc-nodeport")
    assert live["spec"]["kslabFutureField"] == {"nested": [1, None]}
    assert live["status"]["conditions"] is None
    node = next(o for o in objs if o["kind"] == "Node")
    assert node["status"]["runtimeHandlers"][0]["name"] == "runc"  # a 1.30+ field, kept


def test_list_follows_continue_tokens(client, kind_fake, monkeypatch):
    whole = client.list_kind("Pod")
    monkeypatch.setattr(kc, "LIST_PAGE_SIZE", 4)
    kind_fake.requests.clear()
    paged = client.list_kind("Pod")
    assert paged == whole
    pages = [p for _, p in kind_fake.requests if p.startswith("/api/v1/pods")]
    assert len(pages) == 6 and "continue=" in pages[1]  # 22 pods, 4 a page


def test_kube_proxy_configmap(client, kind_fake):
    cm = client.kube_proxy_configmap()
    conf = yaml.safe_load(cm["data"]["config.conf"])
    assert conf["kind"] == "KubeProxyConfiguration" and conf["mode"] == "iptables"
    assert conf["clusterCIDR"] == "10.10.0.0/16" and conf["iptables"]["masqueradeAll"] is False
    assert conf["nodePortAddresses"] is None
    assert cm["metadata"]["namespace"] == "kube-system" and cm["kind"] == "ConfigMap"
    kind_fake.store.delete("ConfigMap", "kube-system", "kube-proxy")
    assert client.kube_proxy_configmap() is None  # a cluster without kubeadm's kube-proxy


def test_get_object_404_is_an_input_error_naming_it(client):
    with pytest.raises(InputError) as e:
        client.get_object("Pod", "webpod9", "default")
    assert one_line(e.value).startswith("pod default/webpod9: not found on the cluster of context 'kind-myk8s'")


# ---- exec -----------------------------------------------------------------------------------------


def test_exec_recorded_curl_through_the_service(client, kind_fake):
    seen = []
    for _ in range(3):
        r = client.exec("net-pod", "default", ["curl", "-s", "svc-clusterip:9000"], timeout=5)
        assert r.exit_code == 0 and r.stderr == ""
        lines = r.stdout.splitlines()
        assert lines[0].startswith("Hostname: webpod") and lines[3].startswith("RemoteAddr: 10.10.0.2:")
        seen.append(lines[0].split()[1])
    assert sorted(seen) == ["webpod1", "webpod2", "webpod3"]  # as the sim answered, in its order
    req = kind_fake.exec_log[-1]
    assert (req.namespace, req.pod, req.container, req.argv) == (
        "default", "net-pod", "netshoot-pod", ("curl", "-s", "svc-clusterip:9000"))


def test_exec_stdout_stderr_and_exit_code(client, kind_fake):
    kind_fake.exec_handler = lambda req: ExecAnswer("partial\n", "curl: (7) Failed to connect\n", 7)
    r = client.exec("webpod1", "default", ["curl", "-sS", "10.10.9.9"], timeout=5, container="container")
    assert (r.stdout, r.stderr, r.exit_code) == ("partial\n", "curl: (7) Failed to connect\n", 7)
    big = "x" * 300_000 + "\n"  # many websocket frames
    kind_fake.exec_handler = lambda req: ExecAnswer(big, "", 0)
    assert client.exec("webpod1", "default", ["cat", "big"], timeout=5).stdout == big


def test_execs_side_by_side_with_rest_calls(client, kind_fake):
    """Execs in threads (as the backend runs clients side by side) next to list calls: each
    exec gets its own answer and the client's REST calls keep working afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    kind_fake.exec_handler = lambda req: ExecAnswer(f"{req.pod} {' '.join(req.argv)}\n", "", 0, delay=0.05)
    pods = ["webpod1", "webpod2", "webpod3", "net-pod"] * 3

    def run(i_pod):
        i, pod = i_pod
        if i % 3 == 2:
            return len(client.list_kind("Node"))
        return client.exec(pod, "default", ["echo", str(i)], timeout=10).stdout

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, enumerate(pods)))
    for i, (pod, got) in enumerate(zip(pods, results)):
        assert got == (4 if i % 3 == 2 else f"{pod} echo {i}\n")
    assert len(client.list_kind("Service")) == 4  # REST still goes over HTTP, not the websocket


def test_exec_recorded_timeout_exit_code(client):
    r = client.exec("net-pod", "default", ["curl", "-s", "-m", "1", "10.200.1.99:9000"], timeout=5)
    assert (r.stdout, r.exit_code) == ("", 28)


def test_exec_that_does_not_finish_times_out(client, kind_fake):
    kind_fake.exec_handler = lambda req: ExecAnswer("late\n", "", 0, delay=10)
    t = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        client.exec("net-pod", "default", ["sleep", "10"], timeout=0.5)
    assert time.monotonic() - t < 5  # not the 10 s the command takes
    assert "did not finish within 0.5 s" in one_line(e.value)


def test_exec_handshake_that_hangs_times_out(client, kind_fake):
    kind_fake.delay(10, verb="exec")
    t = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        client.exec("net-pod", "default", ["hostname"], timeout=0.5)
    assert time.monotonic() - t < 5  # not the 10 s the handshake hangs
    assert "did not answer within 0.5 s (to create pods/exec in namespace default)" in one_line(e.value)


def test_exec_forbidden(client, kind_fake):
    kind_fake.forbid("create", "pods/exec")
    with pytest.raises(EnvironmentProblem) as e:
        client.exec("net-pod", "default", ["hostname"], timeout=5)
    msg = one_line(e.value)
    assert msg.startswith("exec not allowed: forbidden: context 'kind-myk8s' cannot create pods/exec in namespace default")
    assert 'User "kubernetes-admin" cannot create resource "pods/exec" in API group "" in the namespace "default"' in msg


def test_exec_in_a_pod_that_is_not_running(client, kind_fake):
    pod = next(o for o in kind_fake.objects("Pod") if o["metadata"]["name"] == "webpod3")
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    kind_fake.store.put(pod)
    with pytest.raises(EnvironmentProblem) as e:
        client.exec("webpod3", "default", ["hostname"], timeout=5)
    assert one_line(e.value) == ('exec in pod default/webpod3 refused (400): unable to upgrade connection: container not '
                                 'found ("container"); is the pod running? (kubectl get pod -o wide)')
    with pytest.raises(EnvironmentProblem, match=r"refused \(400\): container sidecar is not valid for pod webpod1"):
        client.exec("webpod1", "default", ["hostname"], timeout=5, container="sidecar")


def test_exec_in_a_missing_pod(client):
    with pytest.raises(InputError) as e:
        client.exec("nope", "default", ["hostname"], timeout=5)
    assert one_line(e.value).startswith("pod default/nope: not found")


# ---- writes, label-checked ---------------------------------------------------------------------------


@pytest.fixture
def empty_lab(kind_fake):  # noqa: F811
    kind_fake.load(without_study_objects(load_objects("myk8s")))
    return kind_fake


def test_apply_creates_labelled_objects_then_configures_them(client, empty_lab):
    fake = empty_lab
    manifests = study_manifests()
    lines = client.apply(manifests)
    assert lines == ["pod/default/net-pod created", "service/default/svc-clusterip created",
                     "pod/default/webpod1 created", "pod/default/webpod2 created", "pod/default/webpod3 created",
                     "deployment/default/deploy-echo created", "service/default/svc-nodeport created"]
    for o in fake.objects():
        if o["metadata"].get("namespace") == "default" and o["metadata"]["name"] in ("net-pod", "svc-clusterip", "deploy-echo", "svc-nodeport"):
            assert o["metadata"]["labels"][MANAGED_LABEL_KEY] == "kslab"
    assert "labels" not in manifests[0]["metadata"]  # the caller's dicts are not changed
    svc = next(o for o in fake.objects("Service") if o["metadata"]["name"] == "svc-nodeport")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    assert ("POST", "/api/v1/namespaces/default/services?fieldManager=kslab") in fake.requests
    # again: every object exists with the label: configured, allocations kept
    assert client.apply(manifests) == [line.replace("created", "configured") for line in lines]
    svc = next(o for o in fake.objects("Service") if o["metadata"]["name"] == "svc-nodeport")
    assert (svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]) == (ip, node_port)


def test_apply_creates_a_missing_namespace(client, empty_lab):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "lab2"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    assert client.apply([svc]) == ["namespace/lab2 created", "service/lab2/web created"]
    ns = next(o for o in empty_lab.objects("Namespace") if o["metadata"]["name"] == "lab2")
    assert ns["metadata"]["labels"][MANAGED_LABEL_KEY] == "kslab"


def test_apply_never_changes_an_unlabelled_object_and_changes_nothing(client, empty_lab):
    before = empty_lab.objects()
    hijack = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
              "spec": {"ports": [{"port": 53}]}}
    with pytest.raises(InputError) as e:
        client.apply(study_manifests()[:2] + [hijack])
    assert one_line(e.value).startswith("service kube-system/kube-dns: was not created by kslab (no label kslab.io/managed-by=kslab)")
    assert empty_lab.objects() == before  # not half-applied: the two new objects were not created either
    assert not [r for r in empty_lab.requests if r[0] != "GET"]


def test_apply_rejects_unknown_kinds_before_any_write(client, empty_lab):
    with pytest.raises(InputError) as e:
        client.apply([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}])
    assert "objects[0].kind: 'Secret' is not applied by kslab" in one_line(e.value)


def test_apply_invalid_object_names_it(client, empty_lab):
    empty_lab.fail(422, verb="create", resource="pods", body={
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Invalid", "code": 422,
        "message": 'Pod "net-pod" is invalid: spec.containers: Required value'})
    with pytest.raises(InputError) as e:
        client.apply(study_manifests()[:1])
    assert one_line(e.value).startswith("pod default/net-pod: the API server refused to create it (422)")


def test_scale_a_labelled_deployment(client, kind_fake):
    client.scale("deploy-echo", "default", 5)
    dep = next(o for o in kind_fake.objects("Deployment") if o["metadata"]["name"] == "deploy-echo")
    assert dep["spec"]["replicas"] == 5 and dep["metadata"]["generation"] == 2
    assert ("PATCH", "/apis/apps/v1/namespaces/default/deployments/deploy-echo/scale?fieldManager=kslab") in kind_fake.requests


def test_scale_refuses_an_unlabelled_deployment(client, kind_fake):
    before = kind_fake.objects("Deployment")
    with pytest.raises(InputError) as e:
        client.scale("coredns", "kube-system", 0)
    assert one_line(e.value).startswith("deployment kube-system/coredns: was not created by kslab")
    assert kind_fake.objects("Deployment") == before
    with pytest.raises(InputError, match="deployment default/nope: not found"):
        client.scale("nope", "default", 1)
    with pytest.raises(InputError, match="replicas"):
        client.scale("deploy-echo", "default", -1)


def test_patch_service_labelled_only(client, kind_fake):
    client.patch_service("svc-clusterip", "default", {"spec": {"sessionAffinity": "ClientIP"}})
    svc = next(o for o in kind_fake.objects("Service") if o["metadata"]["name"] == "svc-clusterip")
    assert svc["spec"]["sessionAffinity"] == "ClientIP" and svc["spec"]["clusterIP"] == "10.200.1.233"
    before = kind_fake.objects("Service")
    for name, ns in (("kubernetes", "default"), ("kube-dns", "kube-system")):
        with pytest.raises(InputError, match=f"service {ns}/{name}: was not created by kslab"):
            client.patch_service(name, ns, {"spec": {"type": "NodePort"}})
    assert kind_fake.objects("Service") == before


def test_delete_pod_labelled_or_owned_by_a_labelled_deployment(client, kind_fake):
    client.delete_pod("webpod1", "default")
    echo = next(o["metadata"]["name"] for o in kind_fake.objects("Pod") if o["metadata"]["name"].startswith("deploy-echo-"))
    assert MANAGED_LABEL_KEY not in echo  # the pod itself is unlabelled: its Deployment is
    client.delete_pod(echo, "default")
    names = {o["metadata"]["name"] for o in kind_fake.objects("Pod")}
    assert "webpod1" not in names and echo not in names
    coredns = next(n for n in names if n.startswith("coredns-"))
    with pytest.raises(InputError, match=f"pod kube-system/{coredns}: was not created by kslab"):
        client.delete_pod(coredns, "kube-system")
    with pytest.raises(InputError, match="pod kube-system/etcd-myk8s-control-plane: was not created"):
        client.delete_pod("etcd-myk8s-control-plane", "kube-system")  # owned by its Node
    assert coredns in {o["metadata"]["name"] for o in kind_fake.objects("Pod")}


def test_wait_rollout_reports_progress(client, kind_fake):
    client.scale("deploy-echo", "default", 5)
    seen: list[tuple[int, bool, str]] = []
    client.wait_rollout([("default", "deploy-echo")], timeout=10, poll=0.01,
                        progress=lambda states: seen.append((states[0].available, states[0].done, states[0].message)))
    assert seen[-1] == (5, True, "successfully rolled out")
    assert [a for a, _, _ in seen] == [4, 5]  # the fake's controller: one replica a read
    assert seen[0][2] == "4 out of 5 new replicas have been updated"


def test_wait_rollout_times_out_naming_the_deployment(client, kind_fake):
    kind_fake.rollout_step = 0  # the controller is stuck
    client.scale("deploy-echo", "default", 4)
    with pytest.raises(EnvironmentProblem) as e:
        client.wait_rollout([("default", "deploy-echo")], timeout=0.3, poll=0.05)
    assert one_line(e.value).startswith("rollout not finished within 0.3 s: deployment default/deploy-echo: 3 out of 4")


# ---- connecting: every error path -------------------------------------------------------------------


def test_connect_uses_KUBECONFIG_and_its_current_context(kind_fake, kind_kubeconfig):  # noqa: F811
    c = KindClient.connect()
    assert (c.context, c.server, c.version["gitVersion"]) == ("kind-myk8s", kind_fake.url, "v1.33.1")


def test_KUBECONFIG_lists_several_files(kind_fake, tmp_path, monkeypatch):  # noqa: F811
    other = FakeApiServer()
    other.port = free_port()
    first = other.write_kubeconfig(tmp_path / "work", context="prod-admin")  # its current context wins
    second = kind_fake.write_kubeconfig(tmp_path / "kind")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    info = kc.read_kubeconfig()
    assert (sorted(info.contexts), info.current_context) == (["kind-myk8s", "prod-admin"], "prod-admin")
    with pytest.raises(EnvironmentProblem, match="context 'prod-admin' is not a kind cluster"):
        KindClient.connect()
    c = KindClient.connect("kind-myk8s")
    assert c.server == kind_fake.url and len(c.list_kind("Node")) == 4


def test_broken_kubeconfig(tmp_path):
    path = tmp_path / "kc"
    path.write_text("clusters: [\n")
    with pytest.raises(EnvironmentProblem, match=f"kubeconfig {path} cannot be read: "):
        KindClient.connect("kind-myk8s", kubeconfig=str(path))
    path.write_text(yaml.safe_dump({"contexts": [{"name": "kind-myk8s", "context": {"cluster": "gone", "user": "gone"}}],
                                    "current-context": "kind-myk8s"}))
    with pytest.raises(EnvironmentProblem, match="context 'kind-myk8s' cannot be used: "):
        KindClient.connect(kubeconfig=str(path))


def test_no_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("kind-myk8s")
    assert one_line(e.value).startswith(f"no kubeconfig at {tmp_path / 'none'}: create the cluster first")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match=r"no kubeconfig at .*/\.kube/config"):
        KindClient.connect()


def test_context_missing(kind_kubeconfig):  # noqa: F811
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("kind-other")
    assert one_line(e.value).startswith("context 'kind-other' is not in kubeconfig")
    assert "(it has: kind-myk8s, prod-admin)" in str(e.value)


def test_no_current_context(kind_fake, tmp_path):  # noqa: F811
    path = kind_fake.write_kubeconfig(tmp_path / "kc")
    doc = yaml.safe_load(path.read_text())
    doc["current-context"] = ""
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(EnvironmentProblem, match="has no current context: pass context='kind-myk8s'"):
        KindClient.connect(kubeconfig=str(path))


def test_non_kind_context_refused_unless_allowed(kind_fake, kind_kubeconfig):  # noqa: F811
    kind_fake.requests.clear()
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("prod-admin")
    msg = one_line(e.value)
    assert msg.startswith("context 'prod-admin' is not a kind cluster (kind-*)")
    assert "allow_any_context=True" in msg and "--context-any" in msg
    assert kind_fake.requests == []  # refused before any request
    c = KindClient.connect("prod-admin", allow_any_context=True)
    assert c.context == "prod-admin" and c.list_kind("Node")


def test_connection_refused(tmp_path):
    server = FakeApiServer()
    server.port = free_port()  # never started: nothing listens there
    path = server.write_kubeconfig(tmp_path / "kc")
    t = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect(kubeconfig=str(path), timeout=2)
    assert time.monotonic() - t < 5
    assert one_line(e.value).startswith(f"the API server http://127.0.0.1:{server.port} (context 'kind-myk8s') refused the connection")


def test_server_stopped_after_connect_is_refused(client, kind_fake):
    kind_fake.stop()
    with pytest.raises(EnvironmentProblem, match="refused the connection .to list nodes"):
        client.list_objects()


def test_timeout_on_connect_and_on_a_list(kind_fake, kind_kubeconfig):  # noqa: F811
    rule = kind_fake.delay(10, verb="get", resource="version")
    t = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect(timeout=0.5)
    assert time.monotonic() - t < 5  # not the 10 s the server takes
    assert "did not answer within 0.5 s (to read the API server's version)" in one_line(e.value)
    kind_fake.rules.remove(rule)
    c = KindClient.connect(timeout=0.5)
    kind_fake.delay(10, verb="list", resource="endpointslices")
    t = time.monotonic()
    with pytest.raises(EnvironmentProblem, match=r"did not answer within 0.5 s \(to list endpointslices.discovery.k8s.io in all namespaces\)"):
        c.list_objects()
    assert time.monotonic() - t < 5
    # one attempt, not urllib3's retries (each would wait the timeout again)
    assert [p for _, p in kind_fake.requests if p.startswith("/apis/discovery.k8s.io/v1/endpointslices")] == [
        "/apis/discovery.k8s.io/v1/endpointslices?limit=500"]
    assert [p for _, p in kind_fake.requests if p == "/version"] == ["/version", "/version"]  # the two connects


def test_rbac_403_names_the_verb_and_resource(client, kind_fake):
    kind_fake.forbid("list", "endpointslices")
    with pytest.raises(EnvironmentProblem) as e:
        client.list_objects()
    msg = one_line(e.value)
    assert msg.startswith("forbidden: context 'kind-myk8s' cannot list endpointslices.discovery.k8s.io in all namespaces")
    assert ('endpointslices.discovery.k8s.io is forbidden: User "kubernetes-admin" cannot list resource '
            '"endpointslices" in API group "discovery.k8s.io" at the cluster scope') in msg
    kind_fake.clear_rules()
    kind_fake.forbid("patch", "services")
    with pytest.raises(EnvironmentProblem, match="cannot patch services svc-clusterip in namespace default"):
        client.patch_service("svc-clusterip", "default", {"spec": {"sessionAffinity": "ClientIP"}})
    kind_fake.forbid("get", "configmaps", namespace="kube-system")
    with pytest.raises(EnvironmentProblem, match="cannot get configmaps kube-proxy in namespace kube-system"):
        client.kube_proxy_configmap()


def test_401_bad_credentials(kind_fake, tmp_path):  # noqa: F811
    path = kind_fake.write_kubeconfig(tmp_path / "kc")
    path.write_text(path.read_text().replace(kind_fake.token, "stale-token"))
    with pytest.raises(EnvironmentProblem, match="unauthorized: the API server refused the credentials of context 'kind-myk8s'"):
        KindClient.connect(kubeconfig=str(path))


def test_https_with_the_clusters_ca(tmp_path):
    with server_for(tls=True) as fake:
        path = fake.write_kubeconfig(tmp_path / "kc")
        assert "certificate-authority-data" in path.read_text()
        c = KindClient.connect(kubeconfig=str(path))
        assert c.server.startswith("https://127.0.0.1:")
        assert len(c.list_kind("Node")) == 4
        r = c.exec("net-pod", "default", ["hostname"], timeout=5)  # wss://
        assert (r.stdout, r.exit_code) == ("net-pod\n", 0)


def test_https_with_a_client_certificate_as_kind_writes_it(tmp_path):
    """kind's kubeconfig: the cluster's CA, and the admin's client certificate and key as data."""
    with server_for(client_certs=True) as fake:
        path = fake.write_kubeconfig(tmp_path / "kc")
        user = yaml.safe_load(path.read_text())["users"][0]["user"]
        assert sorted(user) == ["client-certificate-data", "client-key-data"]
        c = KindClient.connect(kubeconfig=str(path))
        assert len(c.list_kind("EndpointSlice")) == 4
        assert c.exec("net-pod", "default", ["hostname"], timeout=5).stdout == "net-pod\n"
        doc = yaml.safe_load(path.read_text())
        doc["users"][0]["user"] = {}  # no certificate: the TLS handshake fails
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(EnvironmentProblem, match=r"TLS with the API server https://127.0.0.1:\d+ \(context 'kind-myk8s'\) failed \(to read the API server's version\): SSLError"):
            KindClient.connect(kubeconfig=str(path))


def test_https_with_an_unknown_ca_is_refused(tmp_path):
    with server_for(tls=True) as fake:
        path = fake.write_kubeconfig(tmp_path / "kc")
        doc = yaml.safe_load(path.read_text())
        with server_for(tls=True) as other:  # another cluster's CA
            doc["clusters"][0]["cluster"]["certificate-authority-data"] = yaml.safe_load(
                other.write_kubeconfig(tmp_path / "other").read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(EnvironmentProblem, match="TLS with the API server https://127.0.0.1:.* failed"):
            KindClient.connect(kubeconfig=str(path))


# ---- the client stays out of `import kslab` ---------------------------------------------------------


def test_import_kslab_does_not_import_kubernetes():
    code = ("import sys, kslab, kslab.kind, kslab.kind.client; "
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_fixtures_are_what_make_fixtures_writes(tmp_path, monkeypatch):
    """The committed fixtures are the generator's output (sim and fixture agree after any change)."""
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        mf = importlib.import_module("tests.kindfake.make_fixtures")
    finally:
        sys.path.remove(str(ROOT))
    monkeypatch.setattr(mf, "OUT", tmp_path)
    mf.main()
    for name in ("myk8s", "myk8s-echo0"):
        for f in sorted((ROOT / "tests" / "data" / "kind" / name).iterdir()):
            assert (tmp_path / name / f.name).read_text() == f.read_text(), (
                f"{name}/{f.name} is stale: run python -m tests.kindfake.make_fixtures, then (the node dumps follow the "
                "fixture) PYTHONPATH=. python tests/kindfake/record_nodes.py")


# ---- review of issue 11: malformed kubeconfigs, timeouts, credential plugins, warnings, owners by uid ----------


@pytest.mark.parametrize("doc,where", [
    ({"contexts": 5}, "contexts: 5 is not a list"),
    ({"clusters": "x"}, "clusters: 'x' is not a list"),
    ({"users": {"a": 1}}, "users: {'a': 1} is not a list"),
    ({"contexts": [5]}, "contexts[0]: 5 is not a mapping"),
    ({"users": [{"name": "u", "user": "token"}]}, "users[0].user: 'token' is not a mapping"),
    ({"current-context": ["kind-myk8s"]}, "current-context: ['kind-myk8s'] is not a context name"),
])
def test_malformed_kubeconfig_is_one_input_error(tmp_path, doc, where):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as e:
        KindClient.connect("kind-myk8s", kubeconfig=str(path))
    assert one_line(e.value).startswith(f"kubeconfig {path}: {where}; ")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -2, None, "10s"])
def test_timeout_must_be_finite_and_positive(kind_kubeconfig, value):  # noqa: F811
    with pytest.raises(InputError, match=r"^timeout: .* is not a positive, finite number of seconds; pass timeout=10 "
                                         r"\(--timeout 10 on the command line\)$"):
        KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=value)


def _with_exec_plugin(path: Path, command: str, args: list[str]) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command,
                                        "args": args, "interactiveMode": "Never"}}
    path.write_text(yaml.safe_dump(doc))


def test_a_credential_plugin_that_hangs_is_a_one_line_timeout(kind_fake, kind_kubeconfig):  # noqa: F811
    _with_exec_plugin(kind_kubeconfig, "sleep", ["30"])
    start = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=1)
    assert time.monotonic() - start < 10
    assert one_line(e.value) == ("context 'kind-myk8s' cannot be used: its credential plugin (sleep 30) did not finish "
                                 "within 1 s; run the plugin yourself to see what it waits for (a login?), or raise "
                                 "timeout= (--timeout)")


def test_a_credential_plugin_that_answers_gives_the_token(kind_fake, kind_kubeconfig):  # noqa: F811
    cred = ('{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", '
            f'"status": {{"token": "{kind_fake.token}"}}}}')
    _with_exec_plugin(kind_kubeconfig, sys.executable, ["-c", f"print({cred!r})"])
    with KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=10) as c:
        assert len(c.list_kind("Node")) == 4


def test_a_cluster_without_server_is_one_line_and_no_warning(kind_fake, kind_kubeconfig):  # noqa: F811
    doc = yaml.safe_load(kind_kubeconfig.read_text())
    doc["clusters"][0]["cluster"].pop("server")
    kind_kubeconfig.write_text(yaml.safe_dump(doc))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "verify", "--context", "kind-myk8s", "--node", "myk8s-worker",
                        "--kubeconfig", str(kind_kubeconfig)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(kind_kubeconfig.parent)})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("kslab: error: "), r.stderr
    assert "Warning" not in r.stderr


def test_delete_pod_follows_owner_references_by_uid(client, kind_fake):
    """A pod whose ReplicaSet reference names the labelled Deployment's ReplicaSet by name but not by
    uid (the owner it meant was deleted; another object took its name) is not kslab's."""
    echo = next(o for o in kind_fake.objects("Pod") if o["metadata"]["name"].startswith("deploy-echo-"))
    rs_name = echo["metadata"]["ownerReferences"][0]["name"]
    rs = next(o for o in kind_fake.objects("ReplicaSet") if o["metadata"]["name"] == rs_name)
    assert echo["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    echo["metadata"]["ownerReferences"][0]["uid"] = "00000000-0000-0000-0000-000000000000"
    kind_fake.load([o for o in kind_fake.objects() if o["metadata"]["name"] != echo["metadata"]["name"]] + [echo])
    with pytest.raises(InputError, match=f"pod default/{echo['metadata']['name']}: was not created by kslab"):
        client.delete_pod(echo["metadata"]["name"], "default")
    assert echo["metadata"]["name"] in {o["metadata"]["name"] for o in kind_fake.objects("Pod")}


def test_a_token_refresh_that_hangs_is_a_one_line_timeout(kind_fake, kind_kubeconfig, tmp_path):  # noqa: F811
    """The client runs the plugin again before a request once the token's expiry passed: a plugin
    that answered the first time and then hangs is a one-line timeout too."""
    marker = tmp_path / "answered"
    cred = ('{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", '
            f'"status": {{"token": "{kind_fake.token}", "expirationTimestamp": "2000-01-01T00:00:00Z"}}}}')
    script = (f"import os, time, pathlib\np = pathlib.Path({str(marker)!r})\n"
              f"if p.exists(): time.sleep(30)\np.write_text('1')\nprint({cred!r})\n")
    _with_exec_plugin(kind_kubeconfig, sys.executable, ["-c", script])
    start = time.monotonic()
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=1)
    assert time.monotonic() - start < 10
    assert one_line(e.value).startswith("context 'kind-myk8s': refreshing its token (") and "did not finish within 1 s" in str(e.value)


def test_a_malformed_kubeconfig_is_also_an_environment_problem(tmp_path):
    """Bad input (exit 2, naming the field) that Lab(backend='kind') under KSLAB_BACKEND=kind treats as
    the backend being unavailable here (it catches EnvironmentProblem and runs on sim)."""
    path = tmp_path / "kc"
    path.write_text("contexts: 5\n")
    with pytest.raises(EnvironmentProblem) as e:
        KindClient.connect("kind-myk8s", kubeconfig=str(path))
    assert isinstance(e.value, InputError) and e.value.exit_code == 2 and e.value.where == f"kubeconfig {path}: contexts"
