"""Chapter 09's experiments and panel (topology aware routing), driven without a browser: the add-on's
manifests, the hints table, the zone columns of a run, the Service patch per mode, compute_topology
(on a copy, seeded, refusing bad input) and TopologyPanel's controls."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from kslab import experiments, views
from kslab.errors import InputError
from kslab.lab import Lab
from kslab.manifests import load_documents, validate
from kslab.model import KUBERNETES_MINOR
from kslab.resources import study_lab

ADDON = study_lab() / "topology"
CP, W1, W2, W3 = "myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"
ZA, ZB, ZC = "ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = Lab(seed=9)
    lab.apply(ADDON)
    return lab


def test_the_addon_validates_for_kubectl_and_is_not_part_of_the_default_lab():
    docs = load_documents([Path(ADDON)])
    assert sorted((d.kind, d.name) for d in docs) == [("Deployment", "deploy-zone"), ("Pod", "net-2a"), ("Pod", "net-2b"),
                                                     ("Pod", "net-2c"), ("Service", "svc-zone")]
    for d in docs:
        assert kubernetes_validate.validate(d.obj, KUBERNETES_MINOR, strict=True) == KUBERNETES_MINOR
        validate(d)
    svc = next(d for d in docs if d.kind == "Service").obj
    assert svc["metadata"]["annotations"] == {"service.kubernetes.io/topology-mode": "Auto"}
    assert not any(s.name == "svc-zone" for s in Lab().cluster.services)  # an add-on: applied on purpose only


def test_the_addon_puts_one_pod_and_one_client_in_each_zone(lab):
    zone = {n.name: n.zone for n in lab.cluster.nodes}
    pods = [p for p in lab.cluster.pods if p.owner == "Deployment/deploy-zone"]
    assert sorted(zone[p.node_name] for p in pods) == [ZA, ZB, ZC]
    assert {c: zone[lab.cluster.pod(c).node_name] for c in views.ZONE_CLIENTS} == {"net-2a": ZA, "net-2b": ZB, "net-2c": ZC}


def test_hints_table_lists_every_endpoint_with_its_zone(lab):
    h = views.hints_table(lab.cluster, "svc-zone")
    assert list(h.columns) == ["slice", "pod", "address", "node", "zone", "ready", "for_zones", "for_nodes"]
    assert sorted(h["zone"]) == [ZA, ZB, ZC] and h["ready"].all()
    assert set(h["pod"]) == {p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-zone"}
    with pytest.raises(InputError):
        views.hints_table(lab.cluster, "no-such-svc")


def test_with_zones_marks_the_connections_that_crossed_zones(lab):
    twin = lab.copy()
    twin.patch_service("svc-zone", **views.topology_patch(twin.cluster.service("svc-zone"), "off"))
    rows = twin.run(["net-2a", "net-2b", W3], "svc-zone", n=1800, seed=3)
    df = views.with_zones(rows, twin.cluster)
    assert set(df["client_zone"]) == {ZA, ZB, ZC}  # a pod is in its node's zone, a node in its own
    ok = df[df["outcome"] == "ok"]
    assert len(ok) == 1800 and (ok["cross_zone"] == (ok["endpoint_zone"] != ok["client_zone"])).all()
    shares = views.cross_zone_shares(df)
    assert sorted(shares.index) == [ZA, ZB, ZC]
    assert all(abs(shares[z] - 2 / 3) <= experiments.noise(2 / 3, 600) for z in (ZA, ZB, ZC))
    twin.cluster.node(W3).labels.pop("topology.kubernetes.io/zone")  # a node without a zone: no crossing can be told
    unlabelled = views.with_zones(rows, twin.cluster)
    gone = unlabelled[(unlabelled["client"] == W3) | (unlabelled["endpoint_node"] == W3)]
    assert set(unlabelled[unlabelled["client"] == W3]["client_zone"]) == {views.NO_ZONE} and not gone["cross_zone"].any()
    assert views.cross_zone_shares(unlabelled)[views.NO_ZONE] == 0


def test_topology_patch_per_mode_keeps_other_annotations(lab):
    svc = lab.copy().cluster.service("svc-zone")
    svc.annotations = {"team": "x", views.ANNOTATION_TOPOLOGY_HINTS: "auto", views.ANNOTATION_TOPOLOGY_MODE: "Auto"}
    assert views.topology_patch(svc, "off") == {"annotations": {"team": "x"}, "traffic_distribution": None}
    assert views.topology_patch(svc, "Auto") == {"annotations": {"team": "x", views.ANNOTATION_TOPOLOGY_MODE: "Auto"},
                                                 "traffic_distribution": None}
    for mode in ("PreferClose", "PreferSameZone", "PreferSameNode"):
        assert views.topology_patch(svc, mode) == {"annotations": {"team": "x"}, "traffic_distribution": mode}
    with pytest.raises(InputError, match="mode"):
        views.topology_patch(svc, "auto")


def test_zone_cpu_skips_the_control_plane_and_unready_nodes(lab):
    twin = lab.copy()
    cpu = views.zone_cpu(twin.cluster)
    assert sorted(cpu) == [ZA, ZB, ZC] and cpu[ZA] == twin.cluster.node(W1).allocatable_cpu
    twin.cluster.node(W2).ready = False
    assert sorted(views.zone_cpu(twin.cluster)) == [ZA, ZC]


def test_compute_topology_refuses_bad_input_before_it_runs(lab):
    for kwargs, field in (({"mode": "Prefer"}, "mode"), ({"connections": 0}, "connections"),
                          ({"placement": {"nope": 1}}, "placement"), ({"placement": {W1: -1}}, "placement"),
                          ({"zones": {W1: 3}}, "zones"), ({"zones": {"nope": ZA}}, "zones"),
                          ({"clients": ("nobody",)}, "nobody")):
        args = {"mode": "off", **kwargs}
        with pytest.raises(InputError, match=field):
            views.compute_topology(lab, **args)


def test_compute_topology_off_is_seeded_and_leaves_the_lab_alone(lab):
    before = lab.save_text(W1), lab.cluster.service("svc-zone").annotations
    a = views.compute_topology(lab, "off", {W1: 2, W2: 1, W3: 0}, connections=200, seed=4)
    b = views.compute_topology(lab, "off", {W1: 2, W2: 1, W3: 0}, connections=200, seed=4)
    assert a.df.equals(b.df) and a.placement == {W1: 2, W2: 1, W3: 0} and not a.hinted and a.allocations.empty
    assert len(a.df) == 600 and set(a.matrix.columns) == {ZA, ZB}  # no pod left in zone c
    assert a.cross_zone[ZC] == 1.0  # zone c's client has no pod of its own
    assert (lab.save_text(W1), lab.cluster.service("svc-zone").annotations) == before


def test_compute_topology_auto_gives_each_zone_its_own_pod(lab):
    r = views.compute_topology(lab, "Auto", connections=300, seed=1)
    assert r.hinted and (r.hints["for_zones"] == r.hints["zone"]).all() and (r.cross_zone == 0).all()
    assert r.events[-1][1] == "TopologyAwareHintsEnabled" and len(r.allocations) == 3


def test_compute_topology_auto_moves_the_surplus_of_a_crowded_zone(lab):
    """Pods 4/1/1 in three equal zones: 2 endpoints per zone, two of zone a's hinted for b and c
    (per-zone totals as upstream's TestAddHints; which endpoint moves is the seeded map order)."""
    r = views.compute_topology(lab, "Auto", {W1: 4, W2: 1, W3: 1}, connections=600, seed=2)
    assert {z: int((r.hints["for_zones"] == z).sum()) for z in (ZA, ZB, ZC)} == {ZA: 2, ZB: 2, ZC: 2}
    moved = r.hints[r.hints["for_zones"] != r.hints["zone"]]
    assert sorted(moved["for_zones"]) == [ZB, ZC] and set(moved["zone"]) == {ZA}
    assert r.cross_zone[ZA] == 0 and all(abs(r.cross_zone[z] - 0.5) <= experiments.noise(0.5, 600) for z in (ZB, ZC))


def test_compute_topology_prefer_close_and_the_safeguards(lab):
    close = views.compute_topology(lab, "PreferClose", {W1: 4, W2: 1, W3: 1}, connections=300, seed=2)
    assert (close.hints["for_zones"] == close.hints["zone"]).all() and (close.cross_zone == 0).all()
    assert close.allocations.empty  # trafficDistribution has no allocations
    no_zone = views.compute_topology(lab, "Auto", zones={W3: ""}, connections=50)
    assert not no_zone.hinted and no_zone.message.startswith("TopologyAwareHintsDisabled: Insufficient Node information")
    one = views.compute_topology(lab, "Auto", zones={W2: ZA, W3: ZA}, connections=50)
    # one zone: SetNodes drops the ratios, so getAllocations says insufficient node information (not "one zone")
    assert not one.hinted and "Insufficient Node information" in one.message and one.zone_cpu.keys() == {ZA}


def test_panel_controls_redraw_in_place(lab):
    panel = views.TopologyPanel(lab, mode="off", connections=200)
    hints_fig, matrix_fig = panel.hints_figure, panel.matrix_figure
    assert not panel.result.hinted and "no hints" in hints_fig.layout.title.text
    panel.mode.value = "Auto"  # what a learner's click does: the observer recomputes and redraws
    assert panel.result.hinted and panel.hints_figure is hints_fig and "hints written" in hints_fig.layout.title.text
    r = panel.set(placement={W1: 4, W2: 1, W3: 1})
    assert r.placement == {W1: 4, W2: 1, W3: 1} and hints_fig.data[0].y == (2, 0, 0)  # zone a: 2 of its 4 hinted a
    assert panel.matrix_figure is matrix_fig and matrix_fig.data[0].z[0][0] == 1.0
    panel.zone_of[W3].value = ""
    assert not panel.result.hinted and "Insufficient Node information" in panel.summary.value
    with pytest.raises(InputError, match="placement"):
        panel.set(placement={W1: 99}, mode="off")
    assert panel.mode.value == "Auto" and panel.sliders[W1].value == 4  # nothing changed
    with pytest.raises(InputError, match="zones"):
        panel.set(zones={W1: "mars"})


def test_zone_cpu_decides_whether_four_endpoints_get_hints(lab):
    """Pods 2/1/1 in three zones: with equal CPU each zone's minimum is ceil(4/3/1.2) = 2, 6 > 4, so
    no hints ("Unable to allocate minimum ..."); with zone a at twice the CPU (4/2/2 cores) the
    minimums are 2/1/1 = 4: hints, each endpoint for its own zone (upstream getAllocations)."""
    equal = views.compute_topology(lab, "Auto", {W1: 2, W2: 1, W3: 1}, connections=50, cpu={W1: 2000, W2: 2000, W3: 2000})
    assert not equal.hinted and "Unable to allocate minimum required endpoints" in equal.message
    heavy = views.compute_topology(lab, "Auto", {W1: 2, W2: 1, W3: 1}, connections=300, cpu={W1: 4000, W2: 2000, W3: 2000})
    assert heavy.hinted and heavy.zone_cpu == {ZA: 4000, ZB: 2000, ZC: 2000}
    assert (heavy.hints["for_zones"] == heavy.hints["zone"]).all() and (heavy.cross_zone == 0).all()
    assert list(heavy.allocations["minimum"]) == [2, 1, 1]
    assert lab.cluster.node(W1).allocatable_cpu == 2000  # on a copy: the lab keeps its CPUs
    with pytest.raises(InputError, match=r"cpu\['myk8s-worker'\]"):
        views.compute_topology(lab, "Auto", cpu={W1: 0})
    with pytest.raises(InputError, match="no such node"):
        views.compute_topology(lab, "Auto", cpu={"nope": 1000})


def test_panel_cpu_sliders_change_the_allocation(lab):
    panel = views.TopologyPanel(lab, mode="Auto", placement={W1: 2, W2: 1, W3: 1}, connections=100)
    assert panel.cpu == {W1: 2000, W2: 2000, W3: 2000} and not panel.result.hinted
    panel.cpu_of[W1].value = 4  # a learner's drag: 4 cores in zone a
    assert panel.result.hinted and panel.result.zone_cpu[ZA] == 4000
    r = panel.set(cpu={W1: 2000})
    assert not r.hinted and panel.cpu_of[W1].value == 2
    with pytest.raises(InputError, match="whole cores"):
        panel.set(cpu={W1: 1500})
    assert panel.cpu_of[W1].value == 2  # nothing changed


def test_kube_proxy_follows_its_nodes_new_zone():
    """kube-proxy's OnNodeUpdate: once myk8s-worker3 is relabelled into zone b, its kube-proxy keeps
    zone b's endpoints (a full sync), as the node's own label says; before the fix it kept using its
    old zone and, finding no endpoint hinted for it, all of them."""
    lab = Lab(seed=9)
    lab.apply(ADDON)
    lab.place("deploy-zone", {W1: 2, W2: 2, W3: 2})
    lab.set_zones({W3: ZB})
    h = views.hints_table(lab.cluster, "svc-zone")
    zone_b = {f"{a}:8080" for a in h[h["for_zones"] == ZB]["address"]}
    assert len(zone_b) == 4
    df = lab.run(W3, "svc-zone", n=400, seed=1)
    assert set(df["endpoint_node"]) == {W2, W3} and (df["outcome"] == "ok").all()
