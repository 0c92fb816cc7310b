"""kslab.topology: upstream's test tables, ported case by case (names kept).

Sources (kubernetes/kubernetes, staging/src/k8s.io/endpointslice/):
topologycache/topologycache_test.go (TestAddHints, TestSetNodes), topologycache/utils_test.go
(Test_redistributeHints, Test_getGivingAndReceivingZones, Test_getHintsByZone),
topologycache/sliceinfo_test.go (Test_getTotalReadyEndpoints), trafficdist/trafficdist_test.go
(TestReconcileHints, TestReconcileHints_doesNotMutateUnchangedSlices), utils_test.go
(Test_hintsEnabled), reconciler_test.go (TestReconcileTopology, TestReconcile_TrafficDistribution)
and /work/shared/reference/cases/topology-{addhints,reconcile}.txt.
"""

from __future__ import annotations

import copy
import random

import pytest

from kslab import topology as t
from kslab.model import LABEL_ZONE, ClusterState, Endpoint, EndpointSlice, Event, Node, Service

IPV4 = "IPv4"


def ep(addr: str = "", zone: str | None = None, ready: bool | None = True, hints: list[str] | None = None,
       node: str | None = None, node_hints: list[str] | None = None) -> Endpoint:
    return Endpoint(addresses=[addr] if addr else [], ready=ready, zone=zone, node_name=node,
                    hints_for_zones=hints, hints_for_nodes=node_hints)


def sl(*eps: Endpoint, name: str = "") -> EndpointSlice:
    return EndpointSlice(name=name, endpoints=list(eps))


def eq_endpoints(actual: list[EndpointSlice], expected: list[EndpointSlice]) -> None:
    """expectEquivalentSlices: same number of slices, endpoints equal one by one."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.endpoints == e.endpoints


def eq_events(expected: list[tuple[str, str, str]], events: list[t.HintEvent]) -> None:
    """compareExpectedEvents: type and reason equal, message starts with the expected one."""
    assert len(events) == len(expected)
    for ev, (typ, reason, msg) in zip(events, expected):
        assert (ev.type, ev.reason) == (typ, reason)
        assert msg and ev.message.startswith(msg)


# ---- TestAddHints (topologycache_test.go) ----------------------------------------------------

ADD_HINTS_CASES = [
    ("empty", None, [], [], None, [], [], [(t.WARNING, t.REASON_DISABLED, t.INSUFFICIENT_NODE_INFO)]),
    ("slice to create, no zone ratios", None,
     [sl(ep("10.1.2.3", "zone-a"))], [],
     None,
     [sl(ep("10.1.2.3", "zone-a"))], [],
     [(t.WARNING, t.REASON_DISABLED, t.INSUFFICIENT_NODE_INFO)]),
    ("slice to create with 2 endpoints, zone ratios require 3", {"zone-a": 0.3, "zone-b": 0.4, "zone-c": 0.3},
     [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"))], [],
     None,
     [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"))], [],
     [(t.WARNING, t.REASON_DISABLED, t.INSUFFICIENT_NUMBER_OF_ENDPOINTS)]),
    ("slice to create with 2 endpoints, zone ratios only require 2", {"zone-a": 0.45, "zone-b": 0.55},
     [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"))], [],
     {IPV4: {"zone-a": 1, "zone-b": 1}},
     [sl(ep("10.1.2.3", "zone-a", hints=["zone-a"]), ep("10.1.2.4", "zone-b", hints=["zone-b"]))], [],
     [(t.NORMAL, t.REASON_ENABLED, t.TOPOLOGY_AWARE_HINTS_ENABLED)]),
    ("slice to create with 2 ready, 1 unready, 1 unknown endpoints, zone ratios only require 2",
     {"zone-a": 0.45, "zone-b": 0.55},
     [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"), ep("10.1.2.5", "zone-b", ready=False),
         ep("10.1.2.6", "zone-b", ready=None))], [],
     {IPV4: {"zone-a": 1, "zone-b": 1}},
     [sl(ep("10.1.2.3", "zone-a", hints=["zone-a"]), ep("10.1.2.4", "zone-b", hints=["zone-b"]),
         ep("10.1.2.5", "zone-b", ready=False), ep("10.1.2.6", "zone-b", ready=None))], [],
     [(t.NORMAL, t.REASON_ENABLED, t.TOPOLOGY_AWARE_HINTS_ENABLED)]),
    ("slices to create and update within 3 zone threshold", {"zone-a": 0.35, "zone-b": 0.35, "zone-c": 0.30},
     [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b")),
      sl(ep("10.1.3.3", "zone-c"), ep("10.1.3.4", "zone-c"), ep("10.1.3.4", "zone-a"))],
     [sl(ep("10.2.2.3", "zone-a"), ep("10.2.2.4", "zone-a")),
      sl(ep("10.2.3.3", "zone-b"), ep("10.2.3.4", "zone-c"), ep("10.2.3.4", "zone-a"))],
     {IPV4: {"zone-a": 4, "zone-b": 3, "zone-c": 3}},
     [sl(ep("10.1.2.3", "zone-a", hints=["zone-b"]), ep("10.1.2.4", "zone-b", hints=["zone-b"])),
      sl(ep("10.1.3.3", "zone-c", hints=["zone-c"]), ep("10.1.3.4", "zone-c", hints=["zone-c"]),
         ep("10.1.3.4", "zone-a", hints=["zone-a"]))],
     [sl(ep("10.2.2.3", "zone-a", hints=["zone-a"]), ep("10.2.2.4", "zone-a", hints=["zone-a"])),
      sl(ep("10.2.3.3", "zone-b", hints=["zone-b"]), ep("10.2.3.4", "zone-c", hints=["zone-c"]),
         ep("10.2.3.4", "zone-a", hints=["zone-a"]))],
     [(t.NORMAL, t.REASON_ENABLED, t.TOPOLOGY_AWARE_HINTS_ENABLED)]),
]


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(
    "name,ratios,to_create,to_update,want_by_type,want_create,want_update,want_events",
    ADD_HINTS_CASES, ids=[c[0] for c in ADD_HINTS_CASES])
def test_add_hints(name, ratios, to_create, to_update, want_by_type, want_create, want_update, want_events, seed):
    cache = t.TopologyCache()
    cache.cpu_ratios = ratios
    si = t.SliceInfo("ns/svc", IPV4, copy.deepcopy(to_create), copy.deepcopy(to_update))
    got_create, got_update, events = cache.add_hints(si, random.Random(seed))
    eq_endpoints(got_create, want_create)
    eq_endpoints(got_update, want_update)
    eq_events(want_events, events)
    if want_by_type is None:
        assert "ns/svc" not in cache.endpoints_by_service
    else:
        assert cache.endpoints_by_service["ns/svc"] == want_by_type


def test_add_hints_messages_carry_the_address_type():
    """FormatWithAddressType: every message ends in ", addressType: IPv4" (verbatim event.go text)."""
    cache = t.TopologyCache()
    cache.cpu_ratios = {"zone-a": 0.3, "zone-b": 0.4, "zone-c": 0.3}
    si = t.SliceInfo("ns/svc", IPV4, [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"))])
    _, _, events = cache.add_hints(si)
    assert events[0].message == "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4"
    assert t.INSUFFICIENT_NODE_INFO == ("Insufficient Node information: allocatable CPU or zone not specified on "
                                        "one or more nodes")


def test_add_hints_enabled_event_only_the_first_time():
    cache = t.TopologyCache()
    cache.cpu_ratios = {"zone-a": 0.45, "zone-b": 0.55}
    mk = lambda: t.SliceInfo("ns/svc", IPV4, [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"))])  # noqa: E731
    assert [e.reason for e in cache.add_hints(mk())[2]] == [t.REASON_ENABLED]
    assert cache.add_hints(mk())[2] == []


def test_add_hints_endpoint_without_zone():
    cache = t.TopologyCache()
    cache.cpu_ratios = {"zone-a": 0.5, "zone-b": 0.5}
    si = t.SliceInfo("ns/svc", IPV4, [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", None))])
    create, _, events = cache.add_hints(si)
    assert [e.message for e in events] == [t.NO_ZONE_SPECIFIED + ", addressType: IPv4"]
    assert all(e.hints_for_zones is None for e in create[0].endpoints)


# ---- the reference case file: topology-addhints.txt -----------------------------------------


def _nodes(spec: list[tuple[str, int, bool, dict[str, str] | None]]) -> list[Node]:
    out = []
    for i, (zone, cpu, ready, labels) in enumerate(spec):
        lab = dict(labels or {})
        if zone:
            lab[LABEL_ZONE] = zone
        out.append(Node(name=f"n{i}", labels=lab, ready=ready, allocatable_cpu=cpu))
    return out


def test_reference_addhints_part_a_ratios():
    cache = t.TopologyCache()
    cache.set_nodes(_nodes([("zone-a", 1000, True, None), ("zone-a", 1000, True, None), ("zone-a", 1000, True, None),
                            ("zone-a", 2000, True, None), ("zone-b", 3000, True, None), ("zone-b", 1500, True, None),
                            ("zone-c", 500, True, None)]))
    assert cache.sufficient_node_info
    assert cache.cpu_by_zone == {"zone-a": 5000, "zone-b": 4500, "zone-c": 500}
    assert cache.cpu_ratios == {"zone-a": 0.5, "zone-b": 0.45, "zone-c": 0.05}


@pytest.mark.parametrize("seed", range(20))
def test_reference_addhints_part_b_from_nodes(seed):
    """Part B with the ratios made from nodes of 3500m / 3500m / 3000m: allocations 3/4 each,
    10.1.2.3 (the first zone-a endpoint walked) re-hinted to zone-b, totals a4 b3 c3."""
    cache = t.TopologyCache()
    cache.set_nodes(_nodes([("zone-a", 3500, True, None), ("zone-b", 3500, True, None), ("zone-c", 3000, True, None)]))
    assert cache.cpu_ratios == {"zone-a": 0.35, "zone-b": 0.35, "zone-c": 0.30}
    allocations, msg = cache.get_allocations(10)
    assert msg is None
    assert {z: (a.minimum, a.maximum) for z, a in allocations.items()} == {z: (3, 4) for z in ("zone-a", "zone-b", "zone-c")}
    case = ADD_HINTS_CASES[-1]
    si = t.SliceInfo("ns/svc", IPV4, copy.deepcopy(case[2]), copy.deepcopy(case[3]))
    create, update, events = cache.add_hints(si, random.Random(seed))
    eq_endpoints(create, case[5])
    eq_endpoints(update, case[6])
    assert cache.endpoints_by_service["ns/svc"][IPV4] == {"zone-a": 4, "zone-b": 3, "zone-c": 3}
    assert [e.message for e in events] == ["Topology Aware Hints has been enabled, addressType: IPv4"]


# ---- TestSetNodes (topologycache_test.go) ----------------------------------------------------

CP = {"node-role.kubernetes.io/control-plane": ""}
SET_NODES_CASES = [
    ("empty", [], False, None, None),
    ("single node", [("zone-a", 1000, True, None)], False, None, None),
    ("single zone", [("zone-a", 1000, True, None), ("zone-a", 1000, True, None)], False, None, None),
    ("2 zones", [("zone-a", 1000, True, None), ("zone-b", 1000, True, None)], True,
     {"zone-a": 1000, "zone-b": 1000}, {"zone-a": 0.5, "zone-b": 0.5}),
    ("2 zones, unready node in 1, ready node in 1", [("zone-a", 1000, False, None), ("zone-b", 1000, True, None)],
     False, None, None),
    ("2 zones, control plane node in 1, ready node in 1", [("zone-a", 1000, True, None), ("zone-b", 1000, True, CP)],
     False, None, None),
    ("2 zones, unready node in 1, ready node in 2",
     [("zone-a", 1000, True, None), ("zone-b", 1000, True, None), ("zone-b", 1000, False, None)], True,
     {"zone-a": 1000, "zone-b": 1000}, {"zone-a": 0.5, "zone-b": 0.5}),
    ("2 zones, control plane node in 1, ready node in 2",
     [("zone-a", 1000, True, None), ("zone-b", 1000, True, None), ("zone-b", 1000, True, CP)], True,
     {"zone-a": 1000, "zone-b": 1000}, {"zone-a": 0.5, "zone-b": 0.5}),
    ("3 zones, 4 nodes in 1, 2 nodes in 1, 1 node in 1",
     [("zone-a", 1000, True, None), ("zone-a", 1000, True, None), ("zone-a", 1000, True, None),
      ("zone-a", 2000, True, None), ("zone-b", 3000, True, None), ("zone-b", 1500, True, None),
      ("zone-c", 500, True, None)], True,
     {"zone-a": 5000, "zone-b": 4500, "zone-c": 500}, {"zone-a": 0.5, "zone-b": 0.45, "zone-c": 0.05}),
]


@pytest.mark.parametrize("name,nodes,sufficient,cpu,ratios", SET_NODES_CASES, ids=[c[0] for c in SET_NODES_CASES])
def test_set_nodes(name, nodes, sufficient, cpu, ratios):
    cache = t.TopologyCache()
    cache.set_nodes(_nodes(nodes))
    assert cache.sufficient_node_info is sufficient
    assert cache.cpu_ratios == ratios
    assert cache.cpu_by_zone == cpu


def test_set_nodes_one_node_without_cpu_or_zone_disables_all():
    """A counted node without allocatable CPU or zone clears everything (the code, not the KEP's
    "1 core per node")."""
    for bad in [("zone-c", 0, True, None), ("", 1000, True, None)]:
        cache = t.TopologyCache()
        cache.set_nodes(_nodes([("zone-a", 1000, True, None), ("zone-b", 1000, True, None), bad]))
        assert cache.cpu_ratios is None and not cache.sufficient_node_info
        assert cache.get_allocations(10) == (None, t.INSUFFICIENT_NODE_INFO)
    # ... but a master-labelled or unready one is skipped first
    cache = t.TopologyCache()
    cache.set_nodes(_nodes([("zone-a", 1000, True, None), ("zone-b", 1000, True, None),
                            ("", 0, True, {"node-role.kubernetes.io/master": ""}), ("", 0, False, None)]))
    assert cache.cpu_ratios == {"zone-a": 0.5, "zone-b": 0.5}


def test_new_cache_is_one_zone_until_set_nodes():
    """NewTopologyCache starts with an empty (not nil) ratio map."""
    assert t.TopologyCache().get_allocations(5) == (None, t.NODES_READY_IN_ONE_ZONE_ONLY)


# ---- getAllocations: the float expression and the feasibility table -------------------------


def test_allocation_float_expression():
    """desired 8.4 -> 8.4*(1/1.2) = 7.000000000000001 -> ceil 8 (the Go float64 expression, not
    the exact 7): CPU 6000m/4000m, 14 endpoints."""
    cache = t.TopologyCache()
    cache.set_nodes([Node(name="a", labels={LABEL_ZONE: "zone-a"}, allocatable_cpu=6000),
                     Node(name="b", labels={LABEL_ZONE: "zone-b"}, allocatable_cpu=4000)])
    allocations, _ = cache.get_allocations(14)
    assert allocations["zone-a"].desired == 8.4
    assert allocations["zone-a"].minimum == 8
    assert allocations["zone-b"].minimum == 5  # 5.6/1.2 = 4.67
    assert allocations["zone-a"].maximum == 8 + 14 - 13


@pytest.mark.parametrize("zone_cpu,with_hints,without", [
    ({"a": 1000, "b": 1000, "c": 1000}, [3, 6, 7, 9, 10, 12, 13, 14, 15], [1, 2, 4, 5, 8, 11]),
    ({"a": 1000, "b": 1000}, [2, 4, 6, 7, 8, 9, 10], [1, 3, 5]),
    ({"a": 2000, "b": 1000}, [3, 5, 6, 7, 8, 9], [1, 2, 4]),
])
def test_feasibility_table(zone_cpu, with_hints, without):
    """k8s-semantics §1.3 feasibility (derived): which n get hints."""
    df = t.feasibility(zone_cpu, sorted(with_hints + without))
    assert sorted(df.loc[df.hinted, "n"]) == with_hints
    assert sorted(df.loc[~df.hinted, "n"]) == without
    row8 = t.feasibility({"a": 1000, "b": 1000, "c": 1000}, [8]).iloc[0]
    assert row8["a min"] == 3 and row8["reason"].startswith(t.MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD)
    assert row8["reason"].endswith("(8 endpoints, 3 zones)")


def test_allocations_table():
    df = t.allocations_table({"zone-a": 3500, "zone-b": 3500, "zone-c": 3000}, 10)
    assert df.attrs == {"hinted": True, "message": None}
    assert list(df.minimum) == [3, 3, 3] and list(df.maximum) == [4, 4, 4]
    assert list(df.desired) == [3.5, 3.5, 3.0]
    off = t.allocations_table({"zone-a": 1000, "zone-b": 1000, "zone-c": 1000}, 4)
    assert off.attrs["hinted"] is False and off.attrs["message"].startswith(t.MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD)
    assert list(off.minimum) == [2, 2, 2] and off.maximum.isna().all()
    one = t.allocations_table({"zone-a": 1000}, 4)
    assert one.attrs["message"] == t.INSUFFICIENT_NODE_INFO


# ---- Test_redistributeHints (utils_test.go) --------------------------------------------------

REDISTRIBUTE_CASES = [
    ("empty", [], {}, {}, {}),
    ("single endpoint", [sl(ep(zone="zone-a", hints=["zone-a"]))], {"zone-a": 1}, {"zone-b": 1},
     {"zone-a": -1, "zone-b": 1}),
    ("endpoints from 1 zone redistributed to 2 other zones",
     [sl(ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-a"]))],
     {"zone-a": 2}, {"zone-b": 1, "zone-c": 1}, {"zone-a": -2, "zone-b": 1, "zone-c": 1}),
]


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("name,slices,giving,receiving,want", REDISTRIBUTE_CASES, ids=[c[0] for c in REDISTRIBUTE_CASES])
def test_redistribute_hints(name, slices, giving, receiving, want, seed):
    got = t.redistribute_hints(copy.deepcopy(slices), dict(giving), dict(receiving), random.Random(seed))
    assert got == want


def test_redistribute_hints_receiving_zone_follows_rng():
    """Which receiving zone an endpoint goes to is Go map order: both orders occur over seeds,
    the totals never change."""
    seen = set()
    for seed in range(30):
        slices = [sl(ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-a"]))]
        got = t.redistribute_hints(slices, {"zone-a": 2}, {"zone-b": 1, "zone-c": 1}, random.Random(seed))
        assert got == {"zone-a": -2, "zone-b": 1, "zone-c": 1}
        seen.add(tuple(e.hints_for_zones[0] for e in slices[0].endpoints))
    assert seen == {("zone-b", "zone-c"), ("zone-c", "zone-b")}


# ---- Test_getGivingAndReceivingZones (utils_test.go) -----------------------------------------


def _al(**desired: float) -> dict[str, t.Allocation]:
    return {z.replace("_", "-"): t.Allocation(0, 0, d) for z, d in desired.items()}


GIVE_RECEIVE_CASES = [
    ("empty", {}, {}, {}, {}),
    ("simple allocation with no need for rebalancing", _al(zone_a=1.2, zone_b=1.1, zone_c=1.0),
     {"zone-a": 1, "zone-b": 1, "zone-c": 1}, {}, {}),
    ("preference for same zone even when giving an extra endpoint would result in slightly better distribution",
     _al(zone_a=5.1, zone_b=5.1, zone_c=5.8), {"zone-a": 16}, {"zone-a": 10}, {"zone-b": 5, "zone-c": 5}),
    ("when 2 zones need < 1 endpoint, give to zone that needs endpoint most",
     _al(zone_a=5.0, zone_b=5.6, zone_c=5.4), {"zone-a": 16}, {"zone-a": 11}, {"zone-b": 6, "zone-c": 5}),
    ("when 2 zones have extra endpoints, give from zone with most extra",
     _al(zone_a=5.0, zone_b=5.6, zone_c=5.4), {"zone-b": 8, "zone-c": 8}, {"zone-b": 2, "zone-c": 3}, {"zone-a": 5}),
    ("ensure function can handle unexpected data (more allocated than allocations)",
     _al(zone_a=5.0, zone_b=5.0, zone_c=5.0), {"zone-a": 6, "zone-b": 6, "zone-c": 6}, {}, {}),
    ("ensure function can handle unexpected data (negative allocations)",
     _al(zone_a=-5.0, zone_b=-5.0, zone_c=-5.0), {"zone-a": 6, "zone-b": 6, "zone-c": 6}, {}, {}),
    ("ensure function can handle unexpected data (negative allocated)",
     _al(zone_a=5.0, zone_b=5.0, zone_c=5.0), {"zone-a": -4, "zone-b": -3, "zone-c": -2}, {}, {}),
    ("ensure function can handle unexpected data (negative for 1 zone)",
     _al(zone_a=5.0, zone_b=5.0, zone_c=5.0), {"zone-a": -40, "zone-b": 20, "zone-c": 20},
     {"zone-b": 15, "zone-c": 15}, {"zone-a": 30}),
]


@pytest.mark.parametrize("seed", [0, 5, 11])
@pytest.mark.parametrize("name,allocations,allocated,want_give,want_receive", GIVE_RECEIVE_CASES,
                         ids=[c[0] for c in GIVE_RECEIVE_CASES])
def test_giving_and_receiving_zones(name, allocations, allocated, want_give, want_receive, seed):
    give, receive = t.giving_and_receiving_zones(allocations, allocated, random.Random(seed))
    assert give == want_give
    assert receive == want_receive


# ---- Test_getHintsByZone (utils_test.go) -----------------------------------------------------


def _mx(**maximum: int) -> dict[str, t.Allocation]:
    return {z.replace("_", "-"): t.Allocation(0, m, 0.0) for z, m in maximum.items()}


HINTS_BY_ZONE_CASES = [
    ("empty", sl(), {}, {}, {}),
    ("single zone hint", sl(ep(zone="zone-a", hints=["zone-a"])), {"zone-a": 1}, _mx(zone_a=3), {"zone-a": 1}),
    ("single zone hint with 1 unready endpoint and 1 unknown endpoint",
     sl(ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-a"], ready=False),
        ep(zone="zone-a", hints=["zone-a"], ready=None)),
     {"zone-a": 1}, _mx(zone_a=3), {"zone-a": 1}),
    ("multiple zone hints",
     sl(ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-b"]), ep(zone="zone-b", hints=["zone-b"])),
     {"zone-a": 1, "zone-b": 1, "zone-c": 1}, _mx(zone_a=3, zone_b=3, zone_c=3), {"zone-a": 1, "zone-b": 2}),
    ("invalid by zones that no longer requires any allocations", sl(ep(zone="zone-a", hints=["zone-non-existent"])),
     {"zone-a": 1, "zone-b": 1, "zone-c": 1}, _mx(zone_a=3), None),
    ("invalid by endpoints with nil hints", sl(ep(zone="zone-a", hints=None)), {}, _mx(zone_a=3), None),
    ("invalid by endpoint with no hints", sl(ep(zone="zone-a", hints=[])), {}, _mx(zone_a=3), None),
    ("invalid by hints that would make minimum allocations impossible",
     sl(ep(zone="zone-a", hints=["zone-a"]), ep(zone="zone-a", hints=["zone-a"])), {"zone-a": 1}, _mx(zone_a=2), None),
]


@pytest.mark.parametrize("name,slice_,allocated,allocations,want", HINTS_BY_ZONE_CASES,
                         ids=[c[0] for c in HINTS_BY_ZONE_CASES])
def test_hints_by_zone(name, slice_, allocated, allocations, want):
    assert t.hints_by_zone(slice_, allocated, allocations) == want


# ---- Test_getTotalReadyEndpoints (sliceinfo_test.go) -----------------------------------------


def slice_with_n(ready: int, unready: int) -> EndpointSlice:
    """sliceWithNEndpoints."""
    return sl(*[ep(f"10.1.2.{i}") for i in range(ready)],
              *[ep(f"10.1.2.{ready + i}", ready=False) for i in range(unready)])


TOTAL_READY_CASES = [
    ("empty", [], [], [], 0, 0),
    ("empty slice", [slice_with_n(0, 0)], [], [], 0, 0),
    ("multiple slices", [slice_with_n(15, 0), slice_with_n(8, 0)], [], [], 23, 23),
    ("slices for all", [slice_with_n(15, 0), slice_with_n(8, 0)], [slice_with_n(2, 0)],
     [slice_with_n(100, 0), slice_with_n(90, 0)], 215, 215),
    ("slices for all with some unready", [slice_with_n(15, 3), slice_with_n(5, 4)], [slice_with_n(3, 8)],
     [slice_with_n(98, 2), slice_with_n(90, 6)], 211, 234),
]


@pytest.mark.parametrize("name,create,update,unchanged,ready,total", TOTAL_READY_CASES, ids=[c[0] for c in TOTAL_READY_CASES])
def test_total_ready_endpoints(name, create, update, unchanged, ready, total):
    si = t.SliceInfo("", IPV4, create, update, unchanged)
    assert sum(len(s.endpoints) for s in (*create, *update, *unchanged)) == total
    assert si.total_ready_endpoints() == ready


# ---- Test_hintsEnabled (utils_test.go) -------------------------------------------------------

H, M = t.ANNOTATION_TOPOLOGY_AWARE_HINTS, t.ANNOTATION_TOPOLOGY_MODE
HINTS_ENABLED_CASES = [
    ("empty annotations", {}, False),
    ("different annotations", {"topology-hints": "enabled"}, False),
    ("hints annotation == enabled", {H: "enabled"}, False),
    ("hints annotation == aUto", {H: "aUto"}, False),
    ("hints annotation == auto", {H: "auto"}, True),
    ("hints annotation == Auto", {H: "Auto"}, True),
    ("hints annotation == disabled", {H: "disabled"}, False),
    ("mode annotation == enabled", {M: "enabled"}, False),
    ("mode annotation == aUto", {M: "aUto"}, False),
    ("mode annotation == auto", {M: "auto"}, True),
    ("mode annotation == Auto", {M: "Auto"}, True),
    ("mode annotation == disabled", {M: "disabled"}, False),
    ("mode annotation == disabled, hints annotation == auto", {M: "disabled", H: "auto"}, True),
    ("mode annotation == auto, hints annotation == disabled", {M: "auto", H: "disabled"}, False),
]


@pytest.mark.parametrize("name,annotations,want", HINTS_ENABLED_CASES, ids=[c[0] for c in HINTS_ENABLED_CASES])
def test_hints_enabled(name, annotations, want):
    assert t.hints_enabled(annotations) is want


# ---- TestReconcileHints (trafficdist_test.go) ------------------------------------------------


def _z(addr, zone, node, hints=None, ready=True):
    return ep(addr, zone, ready=ready, hints=hints, node=node)


TRAFFICDIST_CASES = [
    ("should set zone hints with PreferClose", t.PREFER_CLOSE,
     [sl(_z("10.0.0.1", "zone-a", "node-1"), _z("10.0.0.2", "zone-b", "node-2")),
      sl(_z("10.0.0.3", "zone-a", "node-3"), _z("10.0.0.4", "zone-b", "node-4"))],
     [sl(_z("10.0.0.5", "zone-a", "node-5"), _z("10.0.0.6", "zone-a", "node-6")),
      sl(_z("10.0.0.7", "zone-b", "node-7"), _z("10.0.0.8", "zone-c", "node-8"))],
     [],
     [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-a"]), _z("10.0.0.2", "zone-b", "node-2", ["zone-b"])),
      sl(_z("10.0.0.3", "zone-a", "node-3", ["zone-a"]), _z("10.0.0.4", "zone-b", "node-4", ["zone-b"]))],
     [sl(_z("10.0.0.5", "zone-a", "node-5", ["zone-a"]), _z("10.0.0.6", "zone-a", "node-6", ["zone-a"])),
      sl(_z("10.0.0.7", "zone-b", "node-7", ["zone-b"]), _z("10.0.0.8", "zone-c", "node-8", ["zone-c"]))],
     []),
    ("should correct incorrect hints with PreferClose", t.PREFER_CLOSE,
     [],
     [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-b"]))],
     [sl(_z("10.0.0.2", "zone-b", "node-2", ["zone-c"])), sl(_z("10.0.0.3", "zone-c", "node-3"))],
     [],
     [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-a"])), sl(_z("10.0.0.2", "zone-b", "node-2", ["zone-b"])),
      sl(_z("10.0.0.3", "zone-c", "node-3", ["zone-c"]))],
     []),
    ("should not create zone hints if there are no zones", t.PREFER_CLOSE,
     [sl(_z("10.0.0.1", None, "node-1"), _z("10.0.0.2", None, "node-2")),
      sl(_z("10.0.0.3", None, "node-3"), _z("10.0.0.4", None, "node-4"))],
     [sl(_z("10.0.0.5", None, "node-5"), _z("10.0.0.6", None, "node-6")),
      sl(_z("10.0.0.7", None, "node-7"), _z("10.0.0.8", None, "node-8"))],
     [],
     [sl(_z("10.0.0.1", None, "node-1"), _z("10.0.0.2", None, "node-2")),
      sl(_z("10.0.0.3", None, "node-3"), _z("10.0.0.4", None, "node-4"))],
     [sl(_z("10.0.0.5", None, "node-5"), _z("10.0.0.6", None, "node-6")),
      sl(_z("10.0.0.7", None, "node-7"), _z("10.0.0.8", None, "node-8"))],
     []),
    ("unready endpoints should not trigger updates", t.PREFER_CLOSE,
     [], [], [sl(_z("10.0.0.2", "zone-b", "node-2", ready=False))],
     [], [], [sl(_z("10.0.0.2", "zone-b", "node-2", ready=False))]),
    ("should remove hints when trafficDistribution is unrecognized", "Unknown",
     [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-a"]), _z("10.0.0.2", "zone-b", "node-2", ["zone-b"])),
      sl(_z("10.0.0.3", "zone-a", "node-3", ["zone-a"]))],
     [sl(_z("10.0.0.5", "zone-a", "node-5", ["zone-a"]))],
     [],
     [sl(_z("10.0.0.1", "zone-a", "node-1"), _z("10.0.0.2", "zone-b", "node-2")), sl(_z("10.0.0.3", "zone-a", "node-3"))],
     [sl(_z("10.0.0.5", "zone-a", "node-5"))],
     []),
    ("should remove hints when trafficDistribution is unset", None,
     [],
     [sl(_z("10.0.0.5", "zone-a", "node-5", ["zone-a"]))],
     [sl(_z("10.0.0.6", "zone-b", "node-6", ["zone-b"]))],
     [],
     [sl(_z("10.0.0.5", "zone-a", "node-5")), sl(_z("10.0.0.6", "zone-b", "node-6"))],
     []),
]


@pytest.mark.parametrize("name,td,create,update,unchanged,want_create,want_update,want_unchanged", TRAFFICDIST_CASES,
                         ids=[c[0] for c in TRAFFICDIST_CASES])
def test_trafficdist_reconcile_hints(name, td, create, update, unchanged, want_create, want_update, want_unchanged):
    si = t.SliceInfo("ns/svc", IPV4, copy.deepcopy(create), copy.deepcopy(update), copy.deepcopy(unchanged))
    got_create, got_update = t.trafficdist_hints(si, td)
    eq_endpoints(got_create, want_create)
    eq_endpoints(got_update, want_update)
    eq_endpoints(si.unchanged, want_unchanged)


def test_trafficdist_does_not_mutate_unchanged_slices():
    """TestReconcileHints_doesNotMutateUnchangedSlices."""
    original = sl(_z("10.0.0.1", "zone-a", "node-1"))
    cloned = copy.deepcopy(original)
    si = t.SliceInfo("ns/svc", IPV4, [], [], [original])
    t.trafficdist_hints(si, t.PREFER_CLOSE)
    assert original == cloned
    assert si.to_update[0].endpoints[0].hints_for_zones == ["zone-a"]  # the copy got the hint


def test_trafficdist_prefer_same_node():
    """trafficdist.go preferCloseHeuristic{generateNodeHints: true} (derived from the code):
    zone and node hints for ready endpoints; PreferSameZone drops a stale node hint; the gate off
    (prefer_same=False) strips hints like an unknown value."""
    si = t.SliceInfo("ns/svc", IPV4, [sl(_z("10.0.0.1", "zone-a", "node-1"), _z("10.0.0.2", None, "node-2"),
                                         _z("10.0.0.3", "zone-b", "node-3", ready=False))])
    create, _ = t.trafficdist_hints(si, t.PREFER_SAME_NODE)
    e1, e2, e3 = create[0].endpoints
    assert (e1.hints_for_zones, e1.hints_for_nodes) == (["zone-a"], ["node-1"])
    assert (e2.hints_for_zones, e2.hints_for_nodes) == (None, ["node-2"])
    assert (e3.hints_for_zones, e3.hints_for_nodes) == (None, None)
    # an unchanged slice with node hints needs an update under PreferSameZone ...
    si = t.SliceInfo("ns/svc", IPV4, [], [], [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-a"]))])
    si.unchanged[0].endpoints[0].hints_for_nodes = ["node-1"]
    _, update = t.trafficdist_hints(si, t.PREFER_SAME_ZONE)
    assert len(update) == 1 and update[0].endpoints[0].hints_for_nodes is None
    # ... and is left alone under PreferSameNode
    si2 = t.SliceInfo("ns/svc", IPV4, [], [], [copy.deepcopy(si.to_update[0])])
    si2.unchanged[0].endpoints[0].hints_for_nodes = ["node-1"]
    assert t.trafficdist_hints(si2, t.PREFER_SAME_NODE) == ([], [])
    si3 = t.SliceInfo("ns/svc", IPV4, [sl(_z("10.0.0.1", "zone-a", "node-1", ["zone-a"]))])
    create, _ = t.trafficdist_hints(si3, t.PREFER_SAME_ZONE, prefer_same=False)
    assert create[0].endpoints[0].hints_for_zones is None


# ---- TestReconcileTopology (reconciler_test.go; topology-reconcile.txt) ----------------------

ZONES = ("zone-a", "zone-b", "zone-c")


def _reconcile_topology_fixture():
    nodes = [Node(name=f"node-{z}-{j}", labels={LABEL_ZONE: z}, allocatable_cpu=100) for z in ZONES for j in range(10)]
    # pods[k] on nodes[k]: 0..9 zone-a, 10..19 zone-b, 20..29 zone-c
    pods = [(f"pod{k}", nodes[k]) for k in range(30)]

    def endpoint(k: int) -> Endpoint:
        name, node = pods[k]
        return Endpoint(addresses=[f"10.0.{k // 10}.{k}"], ready=True, serving=True, terminating=False,
                        node_name=node.name, zone=node.zone, target_pod=name)

    slice_pods = {"zone-a-b": [7, 8, 16, 17, 18], "zone-a-c": [5, 6, 25, 26], "zone-c": [27, 28, 29]}
    slices = {name: EndpointSlice(name=name, namespace="testing", service_name="foo", endpoints=[endpoint(k) for k in ks])
              for name, ks in slice_pods.items()}
    return nodes, slices


RECONCILE_TOPOLOGY_CASES = [
    # name, cache enabled, annotation, existing slices, hints per zone, cross-zone hints, slices updated
    ("no change, topologyCache disabled, annotation == auto", False, "auto", ["zone-c"], None, 0, 0),
    ("enabling topologyCache, hintsAnnotation == auto", True, "auto", ["zone-c"],
     {"zone-a": 1, "zone-b": 1, "zone-c": 1}, 2, 1),
    ("topology enabled,  hintsAnnotation==auto, ratio beyond threshold", True, "auto", ["zone-a-c"], None, 0, 0),
    ("topology enabled, hintsAnnotation==Auto, more slices and endpoints", True, "Auto", ["zone-a-c", "zone-a-b"],
     {"zone-a": 3, "zone-b": 3, "zone-c": 3}, 1, 2),
    ("topology enabled, hintsAnnotation==disabled, more slices and endpoints", True, "disabled",
     ["zone-a-c", "zone-a-b"], None, 0, 0),
]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("name,enabled,annotation,existing,want_hints,want_cross,want_updated", RECONCILE_TOPOLOGY_CASES,
                         ids=[c[0] for c in RECONCILE_TOPOLOGY_CASES])
def test_reconcile_topology(name, enabled, annotation, existing, want_hints, want_cross, want_updated, seed):
    """The reconciler finds nothing to change in the endpoints (the slices already hold every
    pod), so every existing slice is Unchanged going into the hints step; what moves to
    ToUpdate is the metric numUpdated."""
    nodes, slices = _reconcile_topology_fixture()
    cache = None
    if enabled:
        cache = t.TopologyCache()
        cache.set_nodes(nodes)
    svc = Service(name="foo", namespace="testing", annotations={t.ANNOTATION_TOPOLOGY_AWARE_HINTS: annotation})
    before = [copy.deepcopy(slices[n]) for n in existing]
    si = t.SliceInfo("testing/foo", IPV4, [], [], [slices[n] for n in existing])
    create, update, _ = t.apply_hints(svc, si, cache, random.Random(seed))
    assert create == [] and len(update) == want_updated
    assert [slices[n] for n in existing] == before  # unchanged slices are never modified
    final = update + si.unchanged
    hints: dict[str, int] = {}
    cross = 0
    for s in final:
        for e in s.endpoints:
            if e.hints_for_zones:
                hints[e.hints_for_zones[0]] = hints.get(e.hints_for_zones[0], 0) + 1
                cross += e.hints_for_zones[0] != e.zone
    assert (hints or None) == want_hints
    assert cross == want_cross
    if name.startswith("enabling"):
        # pods[27], pods[28] hinted a and b (which gets which: Go map order), pods[29] keeps zone-c
        eps = update[0].endpoints
        assert sorted(e.hints_for_zones[0] for e in eps[:2]) == ["zone-a", "zone-b"]
        assert eps[2].hints_for_zones == ["zone-c"]
    if name.startswith("topology enabled, hintsAnnotation==Auto"):
        # both slices move to update in existingSlices order; pods[5] is re-hinted to zone-c
        assert [s.name for s in update] == ["zone-a-c", "zone-a-b"]
        assert update[0].endpoints[0].target_pod == "pod5" and update[0].endpoints[0].hints_for_zones == ["zone-c"]


def test_reconcile_topology_ratio_beyond_threshold_message():
    nodes, slices = _reconcile_topology_fixture()
    cache = t.TopologyCache()
    cache.set_nodes(nodes)
    svc = Service(name="foo", namespace="testing", annotations={t.ANNOTATION_TOPOLOGY_MODE: "Auto"})
    _, _, events = t.apply_hints(svc, t.SliceInfo("testing/foo", IPV4, [], [], [slices["zone-a-c"]]), cache)
    assert [(e.type, e.reason, e.message) for e in events] == [(
        "Warning", "TopologyAwareHintsDisabled",
        "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold "
        "(4 endpoints, 3 zones), addressType: IPv4")]
    assert (events[0].involved_kind, events[0].namespace, events[0].name) == ("Service", "testing", "foo")


# ---- TestReconcile_TrafficDistribution (reconciler_test.go) ----------------------------------


def _trafficdist_fixture():
    nodes = [Node(name=f"node-{i}", labels={LABEL_ZONE: z}, allocatable_cpu=100) for i, z in enumerate(ZONES)]
    on = [0, 1, 1, 1, 2, 2]  # node-0 {pod-0}, node-1 {pod-1, pod-2, pod-3}, node-2 {pod-4, pod-5}
    eps = [Endpoint(addresses=[f"10.0.0.{i}"], ready=True, node_name=nodes[n].name, zone=nodes[n].zone,
                    target_pod=f"pod-{i}") for i, n in enumerate(on)]
    return nodes, eps


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,td,annotation,want,want_cross", [
    ("trafficDistribution=PreferClose, topologyAnnotation=Disabled", t.PREFER_CLOSE, "Disabled",
     {"zone-a": 1, "zone-b": 3, "zone-c": 2}, 0),
    ("trafficDistribution=PreferClose, topologyAnnotation=Auto", t.PREFER_CLOSE, "Auto",
     {"zone-a": 2, "zone-b": 2, "zone-c": 2}, 1),
    ("trafficDistribution=<empty>, topologyAnnotation=<empty>", "", "", {"": 6}, 0),
])
def test_reconcile_traffic_distribution(name, td, annotation, want, want_cross, seed):
    nodes, eps = _trafficdist_fixture()
    cache = t.TopologyCache()
    cache.set_nodes(nodes)
    svc = Service(name="foo", namespace="ns1", traffic_distribution=td,
                  annotations={t.ANNOTATION_TOPOLOGY_AWARE_HINTS: annotation})
    si = t.SliceInfo("ns1/foo", IPV4, [EndpointSlice(name="foo-x", endpoints=eps)])
    create, update, _ = t.apply_hints(svc, si, cache, random.Random(seed))
    got: dict[str, int] = {}
    cross = 0
    for e in create[0].endpoints:
        hint = e.hints_for_zones[0] if e.hints_for_zones and len(e.hints_for_zones) == 1 else ""
        got[hint] = got.get(hint, 0) + 1
        cross += hint != "" and hint != e.zone
    assert got == want and cross == want_cross and update == []


# ---- apply_hints: annotation changes, events, overload re-check ------------------------------


def test_apply_hints_disabling_the_annotation_emits_disabled_and_clears():
    nodes, slices = _reconcile_topology_fixture()
    cache = t.TopologyCache()
    cache.set_nodes(nodes)
    svc = Service(name="foo", namespace="testing", annotations={t.ANNOTATION_TOPOLOGY_MODE: "Auto"})
    si = t.SliceInfo("testing/foo", IPV4, [], [], [slices["zone-c"]])
    _, update, events = t.apply_hints(svc, si, cache, random.Random(0))
    assert [e.reason for e in events] == ["TopologyAwareHintsEnabled"]
    assert cache.endpoints_by_service == {"testing/foo": {IPV4: {"zone-a": 1, "zone-b": 1, "zone-c": 1}}}
    hinted = update[0]
    # same endpoints again with hints: they stay unchanged, no event
    si = t.SliceInfo("testing/foo", IPV4, [], [], [hinted])
    _, update, events = t.apply_hints(svc, si, cache, random.Random(0))
    assert update == [] and events == []
    # annotation removed: Warning "has been disabled", hints removed, cache entry gone
    svc.annotations = {}
    si = t.SliceInfo("testing/foo", IPV4, [], [], [hinted])
    _, update, events = t.apply_hints(svc, si, cache, random.Random(0))
    assert [(e.type, e.message) for e in events] == [("Warning", "Topology Aware Hints has been disabled, addressType: IPv4")]
    assert all(e.hints_for_zones is None for e in update[0].endpoints)
    assert hinted.endpoints[0].hints_for_zones is not None  # the unchanged object was copied, not changed
    assert cache.endpoints_by_service == {} and not cache.has_populated_hints("testing/foo")


def test_overloaded_services_after_a_node_change():
    """GetOverloadedServices / serviceOverloaded: after a zone loses its nodes' share the stored
    hints leave a zone below its minimum."""
    cache = t.TopologyCache()
    cache.set_nodes([Node(name=f"n{z}", labels={LABEL_ZONE: z}, allocatable_cpu=1000) for z in ZONES])
    cache.set_hints("ns/a", IPV4, {"zone-a": 3, "zone-b": 3, "zone-c": 3})
    cache.set_hints("ns/b", IPV4, {"zone-a": 1, "zone-b": 1})
    assert cache.overloaded_services() == ["ns/b"]  # zone-c has no entry
    cache.set_nodes([Node(name="na", labels={LABEL_ZONE: "zone-a"}, allocatable_cpu=4000),
                     Node(name="nb", labels={LABEL_ZONE: "zone-b"}, allocatable_cpu=1000),
                     Node(name="nc", labels={LABEL_ZONE: "zone-c"}, allocatable_cpu=1000)])
    # zone-a's minimum is now ceil(9 * 4/6 / 1.2) = 5 > 3
    assert cache.overloaded_services() == ["ns/a", "ns/b"]
    assert t.service_overloaded({}, None) is False and t.service_overloaded({"zone-a": 1}, None) is True


def test_record_events_aggregates():
    state = ClusterState()
    mk = lambda: Event("Service", "default", "web", "Warning", "TopologyAwareHintsDisabled", "m")  # noqa: E731
    state.clock = 5.0
    t.record_events(state, [mk()])
    state.clock = 9.0
    t.record_events(state, [mk(), Event("Service", "default", "web", "Normal", "TopologyAwareHintsEnabled", "x")])
    assert [(e.reason, e.count, e.first_at, e.at) for e in state.events] == [
        ("TopologyAwareHintsDisabled", 2, 5.0, 9.0), ("TopologyAwareHintsEnabled", 1, 9.0, 9.0)]


def test_add_hints_leaves_not_ready_endpoints_hints_alone():
    """AddHints and redistributeHints set ``endpoint.Hints = nil`` on the loop's copy of a
    not-ready endpoint (``for i, endpoint := range slice.Endpoints``), which changes nothing:
    a not-ready endpoint keeps whatever hint it had and gets no new one (derived from
    topologycache.go/utils.go)."""
    cache = t.TopologyCache()
    cache.cpu_ratios = {"zone-a": 0.5, "zone-b": 0.5}
    si = t.SliceInfo("ns/svc", IPV4, [sl(ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"),
                                         ep("10.1.2.5", "zone-a", ready=False, hints=["zone-b"]),
                                         ep("10.1.2.6", "zone-b", ready=False))])
    create, _, _ = cache.add_hints(si)
    assert [e.hints_for_zones for e in create[0].endpoints] == [["zone-a"], ["zone-b"], ["zone-b"], None]
