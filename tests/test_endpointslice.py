"""kslab.endpointslice: upstream's EndpointSlice reconciler, its test tables ported.

Upstream: kubernetes/kubernetes staging/src/k8s.io/endpointslice/reconciler_test.go (test names
cited on each test) and utils_test.go. Upstream's fake clientset counts create/update/delete
actions; here the ReconcileResult's lists are those actions, and ``apply_result`` is the API
server storing them.
"""

from __future__ import annotations

import random

import pytest

from kslab.endpointslice import (
    LABEL_HEADLESS,
    Reconciler,
    ReconcileResult,
    apply_result,
    get_slice_to_fill,
    new_endpoint_slice,
    pod_to_endpoint,
)
from kslab.errors import InputError
from kslab.model import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    ClusterState,
    Container,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Event,
    Node,
    Pod,
    Service,
    ServicePort,
)

NS = "test"


def new_pod(i: int, ready: bool = True, node: str = "node-1", terminating: bool = False) -> Pod:
    """reconciler_test.go newPod(n, namespace, ready, nPorts, terminating): pod<i> at 1.2.3.<i>."""
    return Pod(name=f"pod{i}", namespace=NS, labels={"foo": "bar"}, node_name=node, pod_ip=f"1.2.{i // 250}.{i % 250 + 1}",
               phase="Running", ready=ready, terminating=terminating,
               containers=[Container("container-1", ports=[ContainerPort(80 + 0, name="port-0")])])


def new_service(name: str = "foo", **kw) -> Service:
    """newServiceAndEndpointMeta: port 80 (targetPort 80), selector foo=bar, IPv4."""
    kw.setdefault("cluster_ip", "10.96.0.10")
    kw.setdefault("ip_families", ["IPv4"])
    return Service(name=name, namespace=NS, ports=[ServicePort(80, name="", protocol="TCP", target_port=80)],
                   selector={"foo": "bar"}, **kw)


def new_state(*nodes: str) -> ClusterState:
    return ClusterState(nodes=[Node(n) for n in (nodes or ("node-1",))])


def slices(state: ClusterState, svc: Service) -> list[EndpointSlice]:
    return [s for s in state.endpoint_slices if s.managed and s.service_name == svc.name and s.namespace == svc.namespace]


def sync(r: Reconciler, state: ClusterState, svc: Service, pods: list[Pod], seed: int = 1) -> ReconcileResult:
    """reconcileHelper: reconcile against what is stored, then store the result."""
    res = r.reconcile(state, svc, pods, slices(state, svc), random.Random(seed))
    apply_result(state, res)
    return res


def lengths(state: ClusterState, svc: Service) -> list[int]:
    return sorted((len(s.endpoints) for s in slices(state, svc)), reverse=True)


def existing_slice(i: int, svc: Service, pods: list[Pod], state: ClusterState) -> EndpointSlice:
    """newEmptyEndpointSlice(i, ...) filled with podToEndpoint of ``pods``, stored."""
    sl = new_endpoint_slice(svc, [EndpointPort(80, name="", protocol="TCP")], "IPv4")
    sl.name = f"{svc.name}-{i}"
    sl.endpoints = [pod_to_endpoint(p, state.nodes[0], svc, "IPv4") for p in pods]
    state.endpoint_slices.append(sl)
    return sl


def counts(res: ReconcileResult) -> tuple[int, int, int]:
    return len(res.to_create), len(res.to_update), len(res.to_delete)


# ---- TestReconcileEmpty / TestReconcile1Pod ------------------------------------------------------


def test_reconcile_empty_creates_a_placeholder():
    """TestReconcileEmpty: even when there are no pods, a placeholder slice for the Service."""
    st, svc = new_state(), new_service()
    res = sync(Reconciler(), st, svc, [])
    assert counts(res) == (1, 0, 0)
    (sl,) = slices(st, svc)
    assert sl.ports == [] and sl.endpoints == [] and sl.address_type == "IPv4"
    assert sl.labels == {LABEL_SERVICE_NAME: "foo", LABEL_MANAGED_BY: CONTROLLER_NAME}
    assert sl.name.startswith("foo-") and len(sl.name) == len("foo-") + 5


def test_reconcile_1_pod_endpoint_fields():
    """TestReconcile1Pod ("no-family-service"/"ipv4" cases): one slice, the pod's endpoint with its
    conditions, nodeName, zone and targetRef; the headless label only for a headless Service."""
    st = ClusterState(nodes=[Node("node-1", labels={"topology.kubernetes.io/zone": "us-west-2a"})])
    for svc, headless in ((new_service(), False), (new_service(cluster_ip="None"), True)):
        st.endpoint_slices.clear()
        res = sync(Reconciler(), st, svc, [new_pod(1)])
        assert counts(res) == (1, 0, 0)
        (sl,) = slices(st, svc)
        assert [(p.name, p.port, p.protocol) for p in sl.ports] == [("", 80, "TCP")]
        assert sl.endpoints == [Endpoint(addresses=["1.2.0.2"], ready=True, serving=True, terminating=False,
                                         node_name="node-1", zone="us-west-2a", target_pod="pod1")]
        assert (LABEL_HEADLESS in sl.labels) is headless


def test_reconcile_1_pod_no_family_uses_the_cluster_ip_and_headless_gets_both():
    """TestReconcile1Pod "no-family-service" / getAddressTypesForService: ipFamilies empty -> the
    ClusterIP's family; headless without families -> IPv4 and IPv6 (a placeholder for IPv6)."""
    st = new_state()
    svc = new_service(ip_families=[])
    sync(Reconciler(), st, svc, [new_pod(1)])
    assert [s.address_type for s in slices(st, svc)] == ["IPv4"]
    st2, svc2 = new_state(), new_service(ip_families=[], cluster_ip="None")
    sync(Reconciler(), st2, svc2, [new_pod(1)])
    got = {s.address_type: len(s.endpoints) for s in slices(st2, svc2)}
    assert got == {"IPv4": 1, "IPv6": 0}


def test_reconcile_1_endpoint_slice_placeholder_kept():
    """TestReconcile1EndpointSlice ("No existing placeholder": 1 create; "Existing placeholder
    that's the same": no action; "Existing placeholder that's different", labels bar=baz: 1
    update) and TestPlaceHolderSliceCompare (labels are compared)."""
    st, svc = new_state(), new_service()
    r = Reconciler()
    sync(r, st, svc, [])
    name = slices(st, svc)[0].name
    assert counts(sync(r, st, svc, [])) == (0, 0, 0)
    slices(st, svc)[0].labels = {"bar": "baz"}  # newEmptyEndpointSlice with other labels: a different placeholder
    existing = [s for s in st.endpoint_slices if s.name == name]
    res = r.reconcile(st, svc, [], existing, random.Random(1))
    apply_result(st, res)
    # finalize turns the new placeholder's create into an update of the one it replaces
    assert counts(res) == (0, 1, 0) and [s.name for s in st.endpoint_slices] == [name]
    assert st.endpoint_slices[0].labels == {LABEL_SERVICE_NAME: "foo", LABEL_MANAGED_BY: CONTROLLER_NAME}


def test_placeholder_becomes_the_first_slice():
    """finalize: the placeholder deleted when pods appear is recycled (an update, same name)."""
    st, svc = new_state(), new_service()
    r = Reconciler()
    sync(r, st, svc, [])
    name = slices(st, svc)[0].name
    res = sync(r, st, svc, [new_pod(i) for i in range(3)])
    assert counts(res) == (0, 1, 0)
    assert [s.name for s in slices(st, svc)] == [name] and lengths(st, svc) == [3]
    # and back to no pods: the slice becomes the placeholder again, still one update
    res = sync(r, st, svc, [])
    assert counts(res) == (0, 1, 0) and slices(st, svc)[0].name == name and slices(st, svc)[0].ports == []


# ---- packing ---------------------------------------------------------------------------------------


def test_reconcile_many_pods():
    """TestReconcileManyPods: 250 pods -> 3 new slices of 100, 100, 50."""
    st, svc = new_state(), new_service()
    res = sync(Reconciler(), st, svc, [new_pod(i, ready=i % 3 != 0) for i in range(250)])
    assert counts(res) == (3, 0, 0) and lengths(st, svc) == [100, 100, 50]
    assert len({s.name for s in slices(st, svc)}) == 3


def test_reconcile_endpoint_slices_some_preexisting():
    """TestReconcileEndpointSlicesSomePreexisting: 250 pods, slices of 62 and 61 exist; 127 to
    add: 100 in a new slice, 27 dropped in the slice that ends closest to full (1 update + 1
    create instead of 2 updates + 1 create)."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i, ready=i % 3 != 0) for i in range(250)]
    existing_slice(1, svc, [pods[i] for i in range(1, len(pods) - 4, 4)], st)
    existing_slice(2, svc, [pods[i] for i in range(3, len(pods) - 4, 4)], st)
    assert lengths(st, svc) == [62, 61]
    res = sync(Reconciler(), st, svc, pods)
    assert counts(res) == (1, 1, 0)
    assert [s.name for s in res.to_update] == ["foo-1"]
    assert lengths(st, svc) == [100, 89, 61]


def test_reconcile_endpoint_slices_some_preexisting_worse_allocation():
    """TestReconcileEndpointSlicesSomePreexistingWorseAllocation: 300 pods, two slices of 74; the
    52 left over could be split over both, but a new slice is fewer writes (2 creates)."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i, ready=i % 3 != 0) for i in range(300)]
    existing_slice(1, svc, [pods[i] for i in range(3, len(pods) - 4, 4)], st)
    existing_slice(2, svc, [pods[i] for i in range(1, len(pods) - 4, 4)], st)
    assert lengths(st, svc) == [74, 74]
    res = sync(Reconciler(), st, svc, pods)
    assert counts(res) == (2, 0, 0)
    assert lengths(st, svc) == [100, 74, 74, 52]


def test_reconcile_endpoint_slices_updating():
    """TestReconcileEndpointSlicesUpdating: a port change touches every slice, yet the same
    number of slices is reused (3 updates, the same names)."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i, ready=i % 3 != 0) for i in range(250)]
    r = Reconciler()
    sync(r, st, svc, pods)
    names = sorted(s.name for s in slices(st, svc))
    svc.ports[0].target_port = 81
    res = sync(r, st, svc, pods)
    assert counts(res) == (0, 3, 0)
    assert lengths(st, svc) == [100, 100, 50] and sorted(s.name for s in slices(st, svc)) == names
    assert {p.port for s in slices(st, svc) for p in s.ports} == {81}


def test_reconcile_endpoint_slices_services_labels_updating():
    """TestReconcileEndpointSlicesServicesLabelsUpdating: the Service's labels are copied onto
    its slices (3 updates); TestReconcileEndpointSlicesServicesReservedLabels: reserved keys on
    the Service change nothing."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i, ready=i % 3 != 0) for i in range(250)]
    r = Reconciler()
    sync(r, st, svc, pods)
    svc.labels = {LABEL_SERVICE_NAME: "bad", LABEL_MANAGED_BY: "actor", LABEL_HEADLESS: "invalid"}
    assert counts(sync(r, st, svc, pods)) == (0, 0, 0)
    svc.labels = {"foo": "bar"}
    res = sync(r, st, svc, pods)
    assert counts(res) == (0, 3, 0) and lengths(st, svc) == [100, 100, 50]
    assert all(s.labels["foo"] == "bar" and s.labels[LABEL_SERVICE_NAME] == "foo" for s in slices(st, svc))


def test_reconcile_endpoint_slices_recycling():
    """TestReconcileEndpointSlicesRecycling: 10 slices of 30 are left as they are (no writes);
    after a port change the endpoints are repacked into 3 full slices: 3 updates + 7 deletes."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i, ready=i % 3 != 0) for i in range(300)]
    for n in range(10):
        existing_slice(n, svc, pods[n * 30:(n + 1) * 30], st)
    r = Reconciler()
    assert counts(sync(r, st, svc, pods)) == (0, 0, 0)
    svc.ports[0].target_port = 81
    res = sync(r, st, svc, pods)
    assert counts(res) == (0, 3, 7)
    assert lengths(st, svc) == [100, 100, 100]


def test_reconcile_endpoint_slices_update_packing():
    """TestReconcileEndpointSlicesUpdatePacking: both slices change (every 10th pod becomes
    not ready); the 15 new endpoints go to the fuller slice: 2 updates, lengths 95 and 20."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i) for i in range(80)] + [new_pod(i) for i in range(100, 120)]
    existing_slice(1, svc, pods[:80], st)
    existing_slice(2, svc, pods[80:], st)
    for i, p in enumerate(pods):
        if i % 10 == 0:
            p.ready = False
    pods += [new_pod(i) for i in range(200, 215)]
    res = sync(Reconciler(), st, svc, pods)
    assert counts(res) == (0, 2, 0)
    assert {s.name: len(s.endpoints) for s in slices(st, svc)} == {"foo-1": 95, "foo-2": 20}


def test_reconcile_endpoint_slices_replace_deprecated():
    """TestReconcileEndpointSlicesReplaceDeprecated: slices of the deprecated address type "IP"
    are deleted and the endpoints perfectly packed in new IPv4 slices (finalize does not recycle
    a slice of another address type)."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i) for i in range(80)] + [new_pod(i) for i in range(100, 150)]
    for n, part in ((1, pods[:80]), (2, pods[80:])):
        existing_slice(n, svc, part, st).address_type = "IP"
    res = sync(Reconciler(), st, svc, pods)
    assert counts(res) == (2, 0, 2)
    assert lengths(st, svc) == [100, 30] and {s.address_type for s in slices(st, svc)} == {"IPv4"}


def test_reconcile_endpoint_slices_named_ports():
    """TestReconcileEndpointSlicesNamedPorts: a named targetPort resolving to 5 numbers: 5
    slices of 60, one per port."""
    st = new_state()
    svc = Service(name="named-port-example", namespace=NS, cluster_ip="10.96.0.11", ip_families=["IPv4"],
                  ports=[ServicePort(80, name="", protocol="TCP", target_port="http")], selector={"foo": "bar"})
    pods = []
    for i in range(300):
        p = new_pod(i, ready=i % 3 != 0)
        p.containers[0].ports = [ContainerPort(8080 + i % 5, name="http")]
        pods.append(p)
    res = sync(Reconciler(), st, svc, pods)
    assert counts(res) == (5, 0, 0) and lengths(st, svc) == [60] * 5
    assert sorted(s.ports[0].port for s in slices(st, svc)) == [8080, 8081, 8082, 8083, 8084]


@pytest.mark.parametrize("maxn, expected", [(50, [50] * 5), (80, [80, 80, 80, 10]), (150, [150, 100]), (250, [250]), (500, [250])])
def test_reconcile_max_endpoints_per_slice(maxn, expected):
    """TestReconcileMaxEndpointsPerSlice: 250 pods with --max-endpoints-per-slice 50/80/150/250/500."""
    st, svc = new_state(), new_service()
    sync(Reconciler(max_endpoints_per_slice=maxn), st, svc, [new_pod(i, ready=i % 3 != 0) for i in range(250)])
    assert lengths(st, svc) == expected


@pytest.mark.parametrize("bad", [0, -1, 1001, 2.5, True, "100"])
def test_max_endpoints_per_slice_bounds(bad):
    with pytest.raises(InputError, match="max_endpoints_per_slice"):
        Reconciler(max_endpoints_per_slice=bad)


def test_no_rebalancing_when_pods_go():
    """No active rebalancing: removing endpoints rewrites only the slices that held them; a
    slice left empty is deleted (reconcileByPortMapping step 1)."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i) for i in range(250)]
    r = Reconciler()
    sync(r, st, svc, pods)
    full = [s for s in slices(st, svc) if len(s.endpoints) == 50][0]
    gone = {ep.target_pod for ep in full.endpoints}
    res = sync(r, st, svc, [p for p in pods if p.name not in gone])
    assert counts(res) == (0, 0, 1) and res.to_delete[0].name == full.name
    assert lengths(st, svc) == [100, 100]
    res = sync(r, st, svc, [p for p in pods if p.name not in gone][5:])
    assert counts(res) == (0, 1, 0) and lengths(st, svc) == [100, 95]


def test_unchanged_endpoints_keep_their_slice_and_nothing_is_written():
    st, svc = new_state(), new_service()
    pods = [new_pod(i) for i in range(120)]
    r = Reconciler()
    sync(r, st, svc, pods)
    before = [(s.name, [e.target_pod for e in s.endpoints]) for s in slices(st, svc)]
    assert counts(sync(r, st, svc, pods)) == (0, 0, 0)
    assert [(s.name, [e.target_pod for e in s.endpoints]) for s in slices(st, svc)] == before


def test_get_slice_to_fill():
    """getSliceToFill (utils.go; upstream tests it through the packing tests above): the slice
    that ends closest to full, none that would overflow, the first exact fit."""
    def sl(n):
        return EndpointSlice(name=f"s{n}", endpoints=[Endpoint(addresses=[f"10.0.0.{i}"]) for i in range(n)])
    assert get_slice_to_fill([], 1, 100) is None
    assert get_slice_to_fill([sl(99)], 2, 100) is None
    assert get_slice_to_fill([sl(20), sl(60), sl(90)], 10, 100).name == "s90"
    assert get_slice_to_fill([sl(20), sl(60), sl(91)], 10, 100).name == "s60"
    assert get_slice_to_fill([sl(80), sl(90)], 10, 100).name == "s90"


# ---- conditions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ready, terminating, publish, want", [
    (True, False, False, (True, True, False)),     # ready pod
    (False, False, False, (False, False, False)),  # not-ready pod
    (True, True, False, (False, True, True)),      # terminating, still passing its probe
    (False, True, False, (False, False, True)),    # terminating, not ready
    (False, False, True, (True, False, False)),    # publishNotReadyAddresses
    (True, True, True, (True, True, True)),        # terminating + publishNotReadyAddresses
])
def test_pod_to_endpoint_conditions(ready, terminating, publish, want):
    """utils_test.go TestPodToEndpoint: serving = the pod's Ready condition, terminating = a
    deletionTimestamp, ready = publishNotReadyAddresses || (serving && !terminating)."""
    svc = new_service(publish_not_ready_addresses=publish)
    ep = pod_to_endpoint(new_pod(1, ready=ready, terminating=terminating), Node("node-1"), svc, "IPv4")
    assert (ep.ready, ep.serving, ep.terminating) == want


def test_terminating_pods_stay_in_the_slice_and_condition_changes_update_it():
    """ShouldPodBeInEndpoints(pod, includeTerminating=true): a terminating pod stays, rewritten
    with ready=false, terminating=true (one update); Succeeded/Failed pods and pods without an
    IP go."""
    st, svc = new_state(), new_service()
    pods = [new_pod(i) for i in range(3)]
    r = Reconciler()
    sync(r, st, svc, pods)
    pods[0].terminating = True
    res = sync(r, st, svc, pods)
    assert counts(res) == (0, 1, 0)
    ep = next(e for e in slices(st, svc)[0].endpoints if e.target_pod == "pod0")
    assert (ep.ready, ep.serving, ep.terminating) == (False, True, True)
    pods[1].phase = "Succeeded"
    pods[2].pod_ip = ""
    sync(r, st, svc, pods)
    assert [e.target_pod for e in slices(st, svc)[0].endpoints] == ["pod0"]


def test_reconciler_pod_missing_node():
    """TestReconcilerPodMissingNode: a pod whose Node is gone is left out, unless the Service
    publishes not-ready addresses."""
    st, svc = new_state("node-1"), new_service()
    pods = [new_pod(1), new_pod(2, node="node-2")]
    sync(Reconciler(), st, svc, pods)
    assert [e.target_pod for s in slices(st, svc) for e in s.endpoints] == ["pod1"]
    st2, svc2 = new_state("node-1"), new_service(publish_not_ready_addresses=True)
    sync(Reconciler(), st2, svc2, pods)
    assert sorted(e.target_pod for s in slices(st2, svc2) for e in s.endpoints) == ["pod1", "pod2"]


def test_address_type_change_deletes_the_old_slices():
    """Reconcile: slices of an address type the Service no longer has are deleted."""
    st, svc = new_state(), new_service(ip_families=["IPv4", "IPv6"], cluster_ip="None")
    r = Reconciler()
    sync(r, st, svc, [new_pod(1)])
    assert sorted(s.address_type for s in slices(st, svc)) == ["IPv4", "IPv6"]
    svc.ip_families = ["IPv4"]
    res = sync(r, st, svc, [new_pod(1)])
    assert counts(res) == (0, 0, 1) and res.to_delete[0].address_type == "IPv6"


def test_existing_hints_are_stripped_without_topology():
    """Neither the annotation nor trafficDistribution: hints on unchanged slices are removed
    (RemoveHintsFromSlices moves such a slice to the updates)."""
    st, svc = new_state(), new_service()
    r = Reconciler()
    pods = [new_pod(i) for i in range(3)]
    sync(r, st, svc, pods)
    slices(st, svc)[0].endpoints[0].hints_for_zones = ["zone-a"]
    res = sync(r, st, svc, pods)
    assert counts(res) == (0, 1, 0)
    assert all(e.hints_for_zones is None for e in slices(st, svc)[0].endpoints)


def test_names_are_random_from_the_seed_and_unique():
    st, svc = new_state(), new_service()
    a = sync(Reconciler(), st, svc, [new_pod(i) for i in range(300)], seed=7)
    st2 = new_state()
    b = sync(Reconciler(), st2, svc, [new_pod(i) for i in range(300)], seed=7)
    assert [s.name for s in a.to_create] == [s.name for s in b.to_create]
    assert len({s.name for s in a.to_create}) == 3
    # a name already taken in the namespace is never handed out again
    st3 = new_state()
    st3.endpoint_slices.append(EndpointSlice(name=a.to_create[0].name, namespace=NS, service_name="other"))
    c = sync(Reconciler(), st3, svc, [new_pod(i) for i in range(300)], seed=7)
    assert a.to_create[0].name not in {s.name for s in c.to_create}


# ---- the lab: ControlPlane, Lab(max_endpoints_per_slice), legacy Endpoints, kubectl ------------------

import yaml  # noqa: E402

import kslab  # noqa: E402
from kslab import kubectl  # noqa: E402
from kslab.apiobjects import ENDPOINTS_OVER_CAPACITY, endpoints_for, truncate_endpoints  # noqa: E402


@pytest.fixture(scope="module")
def lab40():
    """The study's lab with --max-endpoints-per-slice 40 (read-only use below, then scaled)."""
    return kslab.Lab(backend="sim", max_endpoints_per_slice=40)


def _svc_slices(lab, name):
    return [s for s in lab.cluster.endpoint_slices if s.service_name == name]


def test_lab_max_endpoints_per_slice_scale_and_reset(lab40):
    """Scaling to 250 packs as the reconciler does with N=40: the existing slice is kept and
    filled (closest to full), new ones made for the rest; nothing is rebuilt; reset keeps N."""
    c = lab40.cluster
    before = {s.name for s in _svc_slices(lab40, "svc-nodeport")}
    dep = next(p.owner.split("/", 1)[1] for p in c.pods if p.labels.get("app") and p.owner.startswith("Deployment/")
               and p.name in {e.target_pod for s in _svc_slices(lab40, "svc-nodeport") for e in s.endpoints})
    lab40.scale(dep, 250)
    sl = _svc_slices(lab40, "svc-nodeport")
    assert sorted(len(s.endpoints) for s in sl) == [10] + [40] * 6
    assert before <= {s.name for s in sl}  # the slice that existed is still there (updated, not recreated)
    assert sum(len(s.endpoints) for s in sl) == 250
    lab40.reset()
    assert lab40._max_endpoints_per_slice == 40 and lab40.copy()._max_endpoints_per_slice == 40
    lab40.scale(dep, 100)
    assert sorted(len(s.endpoints) for s in _svc_slices(lab40, "svc-nodeport")) == [20, 40, 40]


@pytest.mark.parametrize("bad", [0, 1001, "x"])
def test_lab_max_endpoints_per_slice_refused(bad):
    with pytest.raises(InputError, match=r"^max_endpoints_per_slice: .*1\.\.1000"):
        kslab.Lab(backend="sim", max_endpoints_per_slice=bad)


def test_kubectl_prints_conditions_and_hints_like_kubectl():
    """kubectl get endpointslices -o yaml|json: conditions ready/serving/terminating and
    hints.forZones / forNodes as [{name: ...}] (keys sorted, as kubectl prints unstructured)."""
    lab = kslab.Lab(backend="sim")
    c = lab.cluster
    sl = next(s for s in c.endpoint_slices if s.service_name == "svc-clusterip")
    sl.endpoints[0].hints_for_zones = ["ap-northeast-2a"]
    sl.endpoints[1].hints_for_zones, sl.endpoints[1].hints_for_nodes = ["ap-northeast-2b"], ["myk8s-worker2"]
    sl.endpoints[2].ready, sl.endpoints[2].terminating = False, True
    text = kubectl.run(c, ["get", "endpointslices", sl.name, "-o", "yaml"])
    assert "  hints:\n    forZones:\n    - name: ap-northeast-2a\n" in text
    assert "  hints:\n    forNodes:\n    - name: myk8s-worker2\n    forZones:\n    - name: ap-northeast-2b\n" in text
    assert "- addresses:\n  - " in text and "  conditions:\n    ready: false\n    serving: true\n    terminating: true\n" in text
    doc = yaml.safe_load(text)
    assert [e.get("hints") for e in doc["endpoints"]] == [
        {"forZones": [{"name": "ap-northeast-2a"}]},
        {"forNodes": [{"name": "myk8s-worker2"}], "forZones": [{"name": "ap-northeast-2b"}]}, None]
    js = kubectl.run(c, ["get", "endpointslices", sl.name, "-o", "json"])
    assert '"hints": {\n                "forZones": [\n                    {\n                        "name": "ap-northeast-2a"' in js


def test_legacy_endpoints_not_ready_and_terminating():
    """endpoints_controller: a not-ready pod is in notReadyAddresses; a terminating one is
    dropped unless publishNotReadyAddresses (then it is an address)."""
    lab = kslab.Lab(backend="sim")
    c = lab.cluster
    svc = c.service("svc-clusterip")
    pods = sorted(e.target_pod for s in c.slices_for(svc) for e in s.endpoints)
    lab.set_ready(pods[0], False)
    c = lab.cluster
    c.pod(pods[1]).terminating = True
    lab.control.reconcile()
    ep = endpoints_for(c, svc)
    ips = {p: c.pod(p).pod_ip for p in pods}
    (ss,) = ep["subsets"]
    assert [a["ip"] for a in ss["notReadyAddresses"]] == [ips[pods[0]]]
    assert [a["ip"] for a in ss["addresses"]] == [ips[pods[2]]]
    svc.publish_not_ready_addresses = True
    lab.control.reconcile()
    (ss,) = endpoints_for(c, svc)["subsets"]
    assert sorted(a["ip"] for a in ss["addresses"]) == sorted(ips.values()) and "notReadyAddresses" not in ss
    assert ENDPOINTS_OVER_CAPACITY not in endpoints_for(c, svc)["metadata"].get("annotations", {})


@pytest.mark.parametrize("ready, not_ready, want_ready, want_not_ready", [
    ([], [], [], []),  # "empty"
    ([50, 100, 100, 100, 100], [50, 100, 100, 100, 100], [50, 100, 100, 100, 100], [50, 100, 100, 100, 100]),  # "total endpoints < max capacity"
    ([100] * 5, [100] * 5, [100] * 5, [100] * 5),  # "total endpoints = max capacity"
    ([90, 110, 50, 10, 20], [101, 200, 200, 201, 298], [90, 110, 50, 10, 20], [73, 144, 144, 145, 214]),  # "total ready endpoints < max capacity, but total endpoints > max capacity"
    ([205, 400, 402, 400, 693], [100, 200, 200, 200, 300], [98, 191, 192, 191, 328], [0, 0, 0, 0, 0]),  # "total ready endpoints > max capacity"
])
def test_truncate_endpoints(ready, not_ready, want_ready, want_not_ready):
    """endpoints_controller_test.go TestTruncateEndpoints (its table, verbatim)."""
    subsets = []
    for k, (r, n) in enumerate(zip(ready, not_ready)):
        ss = {"ports": [{"port": 80, "protocol": "TCP"}]}
        if r:
            ss["addresses"] = [{"ip": f"10.{k}.{i // 250}.{i % 250}"} for i in range(r)]
        if n:
            ss["notReadyAddresses"] = [{"ip": f"11.{k}.{i // 250}.{i % 250}"} for i in range(n)]
        subsets.append(ss)
    over = truncate_endpoints(subsets)
    assert over is (sum(ready) + sum(not_ready) > 1000)
    assert [len(ss.get("addresses", [])) for ss in subsets] == want_ready
    assert [len(ss.get("notReadyAddresses", [])) for ss in subsets] == want_not_ready


@pytest.mark.parametrize("phase, ready, terminating, publish, want", [
    ("Running", True, False, False, (1, 0)),   # "pod running phase"
    ("Running", True, True, False, (0, 0)),    # "pod running phase being deleted"
    ("Unknown", True, False, False, (1, 0)),   # "pod unknown phase container ready"
    ("Pending", True, True, False, (0, 0)),    # "pod pending phase container ready being deleted"
    ("Pending", False, False, False, (0, 1)),  # "pod pending phase container not ready"
    ("Failed", False, False, False, (0, 0)),   # "pod failed phase"
    ("Succeeded", False, False, False, (0, 0)),  # "pod succeeded phase"
    ("Running", False, False, True, (1, 0)),   # "pod running phase and tolerate unready"
    ("Running", False, True, True, (1, 0)),    # "pod running phase and tolerate unready being deleted"
    ("Failed", False, False, True, (0, 0)),    # "pod failed phase and tolerate unready"
])
def test_sync_service_addresses(phase, ready, terminating, publish, want):
    """endpoints_controller_test.go TestSyncServiceAddresses: ready / notReady addresses of the
    legacy Endpoints for one pod (the kslab Endpoints are computed from the controller's slices)."""
    from kslab.controlplane import record_writes, reconcile_endpoint_slices
    st = ClusterState(nodes=[Node("node-1")])
    svc = Service(name="foo", namespace="ns", cluster_ip="1.1.1.1", ip_families=["IPv4"], selector={"foo": "bar"},
                  ports=[ServicePort(80, target_port=8080)], publish_not_ready_addresses=publish)
    st.services.append(svc)
    st.pods.append(Pod(name="fakepod", namespace="ns", labels={"foo": "bar"}, node_name="node-1", pod_ip="10.1.1.1",
                       phase=phase, ready=ready, terminating=terminating, containers=[Container("c", ports=[ContainerPort(8080, name="port1")])]))
    reconcile_endpoint_slices(st, random.Random(0))
    record_writes(st)
    ep = endpoints_for(st, svc)
    got = (sum(len(ss.get("addresses", [])) for ss in ep.get("subsets", [])),
           sum(len(ss.get("notReadyAddresses", [])) for ss in ep.get("subsets", [])))
    assert got == want


def test_legacy_endpoints_over_capacity_annotation():
    """endpoints_controller: over 1000 addresses the Endpoints are truncated to 1000 and carry
    endpoints.kubernetes.io/over-capacity: truncated (the slices keep all 1001, 11 slices)."""
    from kslab.controlplane import record_writes, reconcile_endpoint_slices
    st = ClusterState(nodes=[Node("node-1")])
    svc = new_service()
    st.services.append(svc)
    st.pods += [new_pod(i) for i in range(1001)]
    reconcile_endpoint_slices(st, random.Random(0))
    record_writes(st)
    assert lengths(st, svc) == [100] * 10 + [1]
    ep = endpoints_for(st, svc)
    assert ep["metadata"]["annotations"] == {ENDPOINTS_OVER_CAPACITY: "truncated"}
    assert sum(len(ss.get("addresses", [])) for ss in ep["subsets"]) == 1000
    st.pods.pop()
    reconcile_endpoint_slices(st, random.Random(0))
    record_writes(st)
    assert "annotations" not in endpoints_for(st, svc)["metadata"]


# ---- hints: the reconciler hands every Service's SliceInfo to kslab.topology.apply_hints ------------


def test_reconciler_hands_slice_info_to_apply_hints_and_records_its_events(monkeypatch):
    """The wiring of reconcileByAddressType's hint step: the SliceInfo (ToCreate, ToUpdate,
    Unchanged of one address type) goes to ``kslab.topology.apply_hints`` with the Service, the
    cache, the rng and preferSameTrafficDistribution; what it returns is written; its Events go
    to ``kslab.topology.record_events``. (A stand-in module records the calls; the real one is
    tested end to end in test_reconcile_topology.)"""
    import dataclasses as dc
    import sys
    import types

    import kslab.controlplane as cpmod

    calls = []

    @dc.dataclass
    class SliceInfo:
        service_key: str
        address_type: str
        to_create: list
        to_update: list
        unchanged: list

    def apply_hints(svc, si, cache, rng, *, prefer_same=True):
        calls.append((svc.name, si.address_type, [len(s.endpoints) for s in si.to_create],
                      [s.name for s in si.to_update], [s.name for s in si.unchanged], cache, prefer_same))
        for s in si.to_create + si.to_update:
            for ep in s.endpoints:
                ep.hints_for_zones = [ep.zone]
        return si.to_create, si.to_update, [Event("Service", svc.namespace, svc.name, "Normal", "TopologyAwareHintsEnabled",
                                                   "Topology Aware Hints has been enabled, addressType: IPv4")]

    def record_events(state, events):
        for ev in events:
            old = next((o for o in state.events if o.reason == ev.reason), None)
            if old:
                old.count += 1
            else:
                state.events.append(ev)

    fake = types.ModuleType("kslab.topology")
    fake.SliceInfo, fake.apply_hints, fake.record_events = SliceInfo, apply_hints, record_events
    monkeypatch.setitem(sys.modules, "kslab.topology", fake)
    monkeypatch.setattr(kslab, "topology", fake, raising=False)  # the package attribute `from . import topology` reads first
    cache = object()
    st = ClusterState(nodes=[Node("node-1", labels={"topology.kubernetes.io/zone": "zone-a"})])
    svc = new_service()
    st.services.append(svc)
    st.pods += [new_pod(i) for i in range(150)]
    r = Reconciler(topology=cache)
    cpmod.reconcile_endpoint_slices(st, random.Random(0), r)
    assert calls == [("foo", "IPv4", [100, 50], [], [], cache, True)]
    assert all(ep.hints_for_zones == ["zone-a"] for s in slices(st, svc) for ep in s.endpoints)
    assert [(e.reason, e.count) for e in st.events] == [("TopologyAwareHintsEnabled", 1)]
    st.pods.pop()
    cpmod.reconcile_endpoint_slices(st, random.Random(0), r)
    small = next(s.name for s in slices(st, svc) if len(s.endpoints) == 49)
    big = next(s.name for s in slices(st, svc) if len(s.endpoints) == 100)
    assert calls[-1] == ("foo", "IPv4", [], [small], [big], cache, True)
    assert [(e.reason, e.count) for e in st.events] == [("TopologyAwareHintsEnabled", 2)]


def _topology_lab():
    """TestReconcileTopology's cluster: 3 zones x 10 Ready nodes of 100m, one pod per node."""
    topology = pytest.importorskip("kslab.topology")
    zones = ["zone-a", "zone-b", "zone-c"]
    nodes, pods = [], []
    for i, zone in enumerate(zones):
        for j in range(10):
            n = Node(f"node-{zone}-{j}", labels={"topology.kubernetes.io/zone": zone}, allocatable_cpu=100)
            nodes.append(n)
            p = new_pod(i * 100 + j, node=n.name)
            pods.append(p)
    st = ClusterState(nodes=nodes)
    svc = new_service()

    def make(name, members):
        sl = new_endpoint_slice(svc, [EndpointPort(80, name="", protocol="TCP")], "IPv4")
        sl.name = name
        sl.endpoints = [pod_to_endpoint(p, st.node(p.node_name), svc, "IPv4") for p in members]
        return sl

    slice_pods = {"zone-a-b": [pods[7], pods[8], pods[16], pods[17], pods[18]],
                  "zone-a-c": [pods[5], pods[6], pods[25], pods[26]],
                  "zone-c": [pods[27], pods[28], pods[29]]}
    return topology, st, svc, make, slice_pods


@pytest.mark.parametrize("name, cache_on, annotation, slice_names, want_hints, want_cross, want_updated", [
    ("no change, topologyCache disabled, annotation == auto", False, "auto", ["zone-c"], None, 0, 0),
    ("enabling topologyCache, hintsAnnotation == auto", True, "auto", ["zone-c"], {"zone-a": 1, "zone-b": 1, "zone-c": 1}, 2, 1),
    ("topology enabled,  hintsAnnotation==auto, ratio beyond threshold", True, "auto", ["zone-a-c"], None, 0, 0),
    ("topology enabled, hintsAnnotation==Auto, more slices and endpoints", True, "Auto", ["zone-a-c", "zone-a-b"],
     {"zone-a": 3, "zone-b": 3, "zone-c": 3}, 1, 2),
    ("topology enabled, hintsAnnotation==disabled, more slices and endpoints", True, "disabled", ["zone-a-c", "zone-a-b"], None, 0, 0),
])
def test_reconcile_topology(name, cache_on, annotation, slice_names, want_hints, want_cross, want_updated):
    """reconciler_test.go TestReconcileTopology (cases/topology-reconcile.txt): hints per zone,
    cross-zone hints and the number of slices updated."""
    topology, st, svc, make, slice_pods = _topology_lab()
    svc.annotations = {"service.kubernetes.io/topology-aware-hints": annotation}
    cache = None
    if cache_on:
        cache = topology.TopologyCache()
        cache.set_nodes(st.nodes)
    st.endpoint_slices = [make(n, slice_pods[n]) for n in slice_names]
    pods = [p for n in slice_names for p in slice_pods[n]]
    res = sync(Reconciler(topology=cache), st, svc, pods)
    assert (len(res.to_create), len(res.to_update), len(res.to_delete)) == (0, want_updated, 0)
    hints: dict[str, int] = {}
    cross = 0
    for s in slices(st, svc):
        for ep in s.endpoints:
            for z in ep.hints_for_zones or []:
                hints[z] = hints.get(z, 0) + 1
                cross += z != ep.zone
    assert (hints or None) == want_hints and cross == want_cross
