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
    record_event,
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
    """TestReconcile1EndpointSlice / TestPlaceHolderSliceCompare: an existing placeholder that
    is the same is kept (no actions); one with other labels is replaced."""
    st, svc = new_state(), new_service()
    r = Reconciler()
    sync(r, st, svc, [])
    name = slices(st, svc)[0].name
    assert counts(sync(r, st, svc, [])) == (0, 0, 0)
    slices(st, svc)[0].labels["foo"] = "bar"  # not the Service's labels: a different placeholder
    res = sync(r, st, svc, [])
    # finalize turns the new placeholder's create into an update of the one it replaces
    assert counts(res) == (0, 1, 0) and slices(st, svc)[0].name == name and "foo" not in slices(st, svc)[0].labels


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
    """utils_test.go TestGetSliceToFill: the slice that ends closest to full, none that overflows."""
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


def test_record_event_counts_repeats():
    st = ClusterState()
    ev = Event("Service", NS, "foo", "Warning", "TopologyAwareHintsDisabled", "Nodes only ready in one zone, addressType: IPv4")
    record_event(st, ev)
    st.clock = 5.0
    record_event(st, ev)
    assert len(st.events) == 1 and st.events[0].count == 2 and st.events[0].at == 5.0
