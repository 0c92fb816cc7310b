"""``lab.place``: a Deployment's pods pinned per node (sim, netns; refused on a live cluster),
and the LoadBalancer add-on of chapter 07 (``data/myk8s/loadbalancer``)."""

from __future__ import annotations

from collections import Counter

import kubernetes_validate
import pytest

import kslab
from kslab.errors import InputError
from kslab.healthcheck import local_endpoints
from kslab.manifests import load_documents
from kslab.model import KUBERNETES_MINOR
from kslab.resources import study_lab

W1, W2, W3, CP = "myk8s-worker", "myk8s-worker2", "myk8s-worker3", "myk8s-control-plane"
PLACEMENT = {W1: 2, W2: 1, W3: 0}
LB = study_lab() / "loadbalancer"


def echo_per_node(lab) -> dict[str, int]:
    return dict(Counter(p.node_name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


def snapshot(lab):
    return ([(p.name, p.node_name, p.pod_ip) for p in lab.cluster.pods], lab.save_text(W1))  # what the node holds


def test_place_pins_exactly_and_keeps_the_pods_already_there():
    lab = kslab.Lab()
    before = {p.node_name: p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"}
    names = lab.place("deploy-echo", PLACEMENT)
    assert echo_per_node(lab) == {W1: 2, W2: 1}
    pods = {p.name: p for p in lab.cluster.pods}
    assert [pods[n].node_name for n in names] == [W1, W1, W2]  # node order
    assert before[W1] in names and before[W2] in names and before[W3] not in pods  # kept, kept, deleted
    new = pods[names[1]] if names[0] == before[W1] else pods[names[0]]
    assert new.name.startswith("deploy-echo-") and new.pod_ip.startswith("10.10.1.") and new.ready
    assert [d.replicas for d in lab.cluster.deployments if d.name == "deploy-echo"] == [3]
    # the EndpointSlice controller and kube-proxy follow: 2 local endpoints on worker, 0 on worker3
    (sl,) = lab.cluster.slices_for(lab.cluster.service("svc-nodeport"))
    assert sorted(e.node_name for e in sl.endpoints) == [W1, W1, W2]
    # deterministic: the same placement in another lab makes the same pods and IPs
    other = kslab.Lab()
    assert other.place("deploy-echo", PLACEMENT) == names and snapshot(other) == snapshot(lab)
    # a second placement moves only what differs
    again = lab.place("deploy-echo", {W1: 1, W3: 2})
    assert echo_per_node(lab) == {W1: 1, W3: 2} and names[0] in again


def kubectl_wide(lab, selector: str) -> dict[str, str]:
    """pod -> node, read from ``kubectl get pods -l SELECTOR -o wide`` (the NAME and NODE columns)."""
    lines = str(lab.sh("mypc", f"kubectl get pods -l {selector} -o wide")).splitlines()
    node_col = lines[0].split().index("NODE")
    return {line.split()[0]: line.split()[node_col] for line in lines[1:]}


def test_pods_per_node_groups_the_selected_pods_by_node():
    lab = kslab.Lab()
    nodes = [n.name for n in lab.cluster.nodes]
    for selector in ("app=deploy-websrv", "app in (deploy-websrv, webpod)", "app!=deploy-websrv", "app", "!app"):
        got = lab.pods_per_node(selector)
        assert list(got) == nodes and all(ps == sorted(ps) for ps in got.values())  # every node, in order; names sorted
        assert {p: n for n, ps in got.items() for p in ps} == kubectl_wide(lab, f"'{selector}'"), selector
    assert lab.pods_per_node("app=nothing") == {n: [] for n in nodes}
    # the echo pods (by their owner, the oracle) after a placement; a pod not ready is still there
    names = lab.place("deploy-echo", PLACEMENT)
    got = lab.pods_per_node("app=deploy-websrv")
    assert {n: len(ps) for n, ps in got.items() if ps} == echo_per_node(lab) == {W1: 2, W2: 1}
    assert sorted(p for ps in got.values() for p in ps) == sorted(names) and got[CP] == got[W3] == []
    lab.set_ready(got[W1][0], False)
    assert lab.pods_per_node("app=deploy-websrv") == got
    assert lab.pods_per_node("app=deploy-websrv", namespace="kube-system") == {n: [] for n in nodes}


@pytest.mark.parametrize("selector", ["app=(x", "app in deploy-websrv", "a b", None, {"app": "deploy-websrv"}])
def test_pods_per_node_refuses_a_bad_selector_in_one_line(selector):
    lab = kslab.Lab()
    with pytest.raises(InputError) as e:
        lab.pods_per_node(selector)
    assert e.value.where == "selector" and "app=deploy-websrv" in one_line(e.value)


def test_place_on_the_control_plane_binds_past_its_taint():
    lab = kslab.Lab()
    (name,) = lab.place("deploy-echo", {CP: 1})
    assert lab.cluster.pod(name).node_name == CP and lab.cluster.pod(name).pod_ip.startswith("10.10.0.")


def test_traffic_follows_the_placement_under_local():
    lab = kslab.Lab(seed=1)
    lab.apply(LB)
    lab.place("deploy-echo", PLACEMENT)
    svc = lab.cluster.service("svc-lb")
    assert {n.name: local_endpoints(lab.cluster, svc, n.name) for n in lab.cluster.nodes} == {CP: 0, W1: 2, W2: 1, W3: 0}
    on_w1 = {p.name for p in lab.cluster.pods if p.owner and p.node_name == W1}
    df = lab.run("mypc", f"{W1}:svc-lb", n=200, seed=2)
    assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == on_w1  # Local: only worker's two pods
    assert (lab.run("mypc", f"{W3}:svc-lb", n=20)["outcome"] != "ok").all()  # no local pod: dropped


@pytest.mark.parametrize("deployment, per_node, start", [
    ("deploy-echo", {"myk8s-worker9": 1}, "per_node['myk8s-worker9']: there is no such node; nodes are: myk8s-control-plane, "),
    ("deploy-echo", {W1: -1}, "per_node['myk8s-worker']: -1 is negative; give 0 or more pods"),
    ("deploy-echo", {W1: 1.5}, "per_node['myk8s-worker']: 1.5 is not a number of pods"),
    ("deploy-echo", {W1: True}, "per_node['myk8s-worker']: True is not a number of pods"),
    ("deploy-echo", [W1], "per_node: ['myk8s-worker'] is not a mapping"),
    ("deploy-nope", {W1: 1}, "deployment 'deploy-nope': no such deployment; deployments are: deploy-echo"),
])
def test_bad_placements_are_one_line_and_change_nothing(deployment, per_node, start):
    lab = kslab.Lab()
    before, gen = snapshot(lab), lab.generation
    with pytest.raises(InputError) as e:
        lab.place(deployment, per_node)
    assert one_line(e.value).startswith(start)
    assert snapshot(lab) == before and lab.generation == gen


def test_reset_undoes_a_placement():
    lab, fresh = kslab.Lab(), kslab.Lab()
    lab.place("deploy-echo", PLACEMENT)
    lab.reset()
    assert snapshot(lab) == snapshot(fresh)


@pytest.mark.netns
def test_place_on_the_kernel():
    with kslab.Lab(backend="netns", seed=1) as lab:
        names = lab.place("deploy-echo", PLACEMENT)
        assert snapshot(lab)[0] == snapshot(_placed_sim())[0]  # the same pods, names and IPs as on sim
        df = lab.run("mypc", f"{W2}:svc-nodeport", n=60)
        assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == set(names)  # the new pod answers, the deleted one is gone
        lab.reset()
        assert echo_per_node(lab) == {W1: 1, W2: 1, W3: 1}
        df = lab.run("mypc", f"{W2}:svc-nodeport", n=60)
        assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == set(lab.pods("app=deploy-websrv"))


def _placed_sim():
    sim = kslab.Lab(seed=1)
    sim.place("deploy-echo", PLACEMENT)
    return sim


# ---- data/myk8s/loadbalancer: the add-on of chapter 07 ---------------------------------------------


def test_the_load_balancer_is_an_add_on():
    assert "svc-lb" not in [s.name for s in kslab.Lab().cluster.services]  # chapters 00-06's lab unchanged
    assert not [d for d in load_documents([study_lab()]) if d.name == "svc-lb"]  # nor -f data/myk8s
    (doc,) = load_documents([LB])
    assert (doc.kind, doc.name) == ("Service", "svc-lb")
    assert kubernetes_validate.validate(doc.obj, KUBERNETES_MINOR, strict=True) == KUBERNETES_MINOR
    spec = doc.obj["spec"]
    assert (spec["type"], spec["externalTrafficPolicy"], spec["selector"]) == ("LoadBalancer", "Local", {"app": "deploy-websrv"})
    assert spec["ports"] == [{"name": "svc-webport", "port": 9000, "targetPort": 8080, "protocol": "TCP"}]
    assert doc.obj["status"] == {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}


def test_chapter_07_adds_it_to_the_running_lab():
    lab, fresh = kslab.Lab(), kslab.Lab()
    assert lab.apply(LB) == ["service/svc-lb"]
    assert [(p.name, p.pod_ip) for p in lab.cluster.pods] == [(p.name, p.pod_ip) for p in fresh.cluster.pods]  # the same pods as chapter 06
    svc = lab.cluster.service("svc-lb")
    hc, np_ = svc.health_check_node_port, svc.ports[0].node_port
    assert hc and np_ and hc != np_ and lab.control.allocator.port_owner[hc] == "default/svc-lb"
    out = lab.sh(CP, "kubectl describe svc svc-lb")
    assert f"HealthCheck NodePort:     {hc}\n" in out and "LoadBalancer Ingress:     172.18.0.200 (VIP)\n" in out
    assert "172.18.0.200   9000:" in lab.sh(CP, "kubectl get svc svc-lb")
    assert "- ip: 172.18.0.200\n      ipMode: VIP" in lab.sh(CP, "kubectl get svc svc-lb -o yaml")  # the API server's default
    assert all(lab.verify(n).ok() for n in (CP, W1))
    # reset: the lab as made (without svc-lb); applied again it gets the very same allocations
    lab.reset()
    assert "svc-lb" not in [s.name for s in lab.cluster.services]
    lab.apply(LB)
    again = lab.cluster.service("svc-lb")
    assert (again.cluster_ip, again.ports[0].node_port, again.health_check_node_port) == (svc.cluster_ip, np_, hc)


# ---- a live cluster (kind, against the fake API server) --------------------------------------------


@pytest.fixture
def live(live_cluster):
    return live_cluster[0]


def test_a_live_cluster_refuses_place_and_ranges(live):
    with pytest.raises(InputError) as e:
        kslab.Lab(backend="kind", node_port_range="30000-30100")
    assert one_line(e.value).startswith("node_port_range: a live cluster's NodePort range is its API server's --service-node-port-range")
    with kslab.Lab(backend="kind") as lab:
        pods = [p.name for p in lab.cluster.pods]
        with pytest.raises(InputError) as e:
            lab.place("deploy-echo", PLACEMENT)
        assert "lab.exact(" in one_line(e.value)
        with pytest.raises(InputError):
            lab.set_node_port_range("30000-30100")
        assert [p.name for p in lab.cluster.pods] == pods
        # what the message says works: the twin places
        twin = lab.exact("pods pinned per node")
        twin.place("deploy-echo", PLACEMENT)
        assert echo_per_node(twin) == {W1: 2, W2: 1}
