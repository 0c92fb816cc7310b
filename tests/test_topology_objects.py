"""Node zones and CPU (kind nodes, Node objects in -f DIR, lab.set_zones) and Events in kubectl
(``get events`` as printEvent prints them, ``describe svc``'s Events as DescribeEvents does)."""

from __future__ import annotations

import textwrap

import pytest

from kslab import kubectl
from kslab import topology as t
from kslab.controlplane import KIND_NODE_ALLOCATABLE_CPU, ControlPlane, build_state
from kslab.errors import InputError
from kslab.lab import Lab
from kslab.manifests import load_documents, parse_cpu
from kslab.model import LABEL_ZONE, Event


@pytest.fixture(scope="module")
def lab():
    with Lab(backend="sim") as lab_:
        yield lab_


# ---- CPU quantities and nodes ----------------------------------------------------------------


@pytest.mark.parametrize("value,milli", [("4", 4000), ("3500m", 3500), ("0.5", 500), (2, 2000), ("1.5", 1500),
                                         ("100m", 100), ("0.0005", 1), (None, 0), ("1k", 1_000_000)])
def test_parse_cpu(value, milli):
    assert parse_cpu(value, "status.allocatable.cpu") == milli


@pytest.mark.parametrize("value", ["abc", "-1", "4 cores", True, "1e3m", [4]])
def test_parse_cpu_rejects(value):
    with pytest.raises(InputError, match=r"^status\.allocatable\.cpu: .* is not a CPU quantity; write it like"):
        parse_cpu(value, "status.allocatable.cpu")


def test_kind_nodes_report_fixed_cpu_and_no_zone_by_default(tmp_path):
    (tmp_path / "kind.yaml").write_text(textwrap.dedent("""\
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: z
        nodes:
        - role: control-plane
        - role: worker
        - role: worker
          labels:
            topology.kubernetes.io/zone: zone-b
        """))
    state = build_state(load_documents([tmp_path]))
    assert [n.allocatable_cpu for n in state.nodes] == [KIND_NODE_ALLOCATABLE_CPU] * 3 == [2000] * 3
    assert [n.zone for n in state.nodes] == [None, None, "zone-b"]


def test_node_objects_keep_labels_and_cpu(tmp_path):
    """Node objects given with -f DIR keep their zone label and status.allocatable.cpu; the
    topology cache weighs zones by them (TestSetNodes "3 zones, 4 nodes in 1, ..." as objects)."""
    nodes = [("a1", "zone-a", "1"), ("a2", "zone-a", "1000m"), ("a3", "zone-a", "1"), ("a4", "zone-a", "2"),
             ("b1", "zone-b", "3"), ("b2", "zone-b", "1500m"), ("c1", "zone-c", "500m")]
    text = "".join(textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Node
        metadata:
          name: {name}
          labels:
            topology.kubernetes.io/zone: {zone}
        status:
          allocatable:
            cpu: "{cpu}"
            memory: 8Gi
          conditions:
          - type: Ready
            status: "True"
        """) for name, zone, cpu in nodes)
    (tmp_path / "nodes.yaml").write_text(text)
    state = build_state(load_documents([tmp_path]))
    assert [(n.name, n.zone, n.allocatable_cpu) for n in state.nodes] == [
        ("a1", "zone-a", 1000), ("a2", "zone-a", 1000), ("a3", "zone-a", 1000), ("a4", "zone-a", 2000),
        ("b1", "zone-b", 3000), ("b2", "zone-b", 1500), ("c1", "zone-c", 500)]
    cache = t.TopologyCache()
    cache.set_nodes(state.nodes)
    assert cache.cpu_ratios == {"zone-a": 0.5, "zone-b": 0.45, "zone-c": 0.05}
    # kubectl prints the CPU back as a Quantity
    out = kubectl.run(state, "get node c1 -o jsonpath={.status.allocatable.cpu}".split())
    assert out == "500m"
    (tmp_path / "nodes.yaml").write_text(text.replace('cpu: "500m"', "cpu: lots"))
    with pytest.raises(InputError, match=r"status\.allocatable\.cpu: 'lots' is not a CPU quantity"):
        build_state(load_documents([tmp_path]))


# ---- lab.set_zones ---------------------------------------------------------------------------


def test_set_zones_labels_nodes_and_endpoints(lab):
    on = lab.copy()
    workers = [n.name for n in on.cluster.nodes if not n.is_control_plane]
    on.set_zones({workers[0]: "zone-a", workers[1]: "zone-b", workers[2]: None})
    nodes = {n.name: n for n in on.cluster.nodes}
    assert nodes[workers[0]].labels[LABEL_ZONE] == "zone-a"
    assert LABEL_ZONE not in nodes[workers[2]].labels
    zones = {e.node_name: e.zone for s in on.cluster.endpoint_slices for e in s.endpoints if e.node_name}
    assert zones[workers[0]] == "zone-a" and zones[workers[1]] == "zone-b" and zones[workers[2]] is None
    out = kubectl.run(on.cluster, ["get", "node", workers[0], "-o", "jsonpath={.metadata.labels.topology\\.kubernetes\\.io/zone}"])
    assert out == "zone-a"


@pytest.mark.parametrize("zones,match", [
    ({"nope": "zone-a"}, r"^node 'nope': no such node in the cluster; nodes are: "),
    ({"myk8s-worker": "-zone"}, r"^zones\['myk8s-worker'\]: '-zone' is not a valid label value; use at most 63"),
    ({"myk8s-worker": "z" * 64}, r"is not a valid label value"),
    (["myk8s-worker"], r"^zones: .* is not a mapping; give \{node: zone\}"),
])
def test_set_zones_bad_input_changes_nothing(lab, zones, match):
    on = lab.copy()
    before = [dict(n.labels) for n in on.cluster.nodes]
    with pytest.raises(InputError, match=match):
        on.set_zones({"myk8s-worker2": "zone-x", **zones} if isinstance(zones, dict) else zones)
    assert [dict(n.labels) for n in on.cluster.nodes] == before


def test_set_zones_on_a_live_cluster_points_to_exact():
    from kslab.kind.dataplane import LiveControlPlane

    state = ControlPlane.of(build_state(load_documents([__import__("kslab.resources", fromlist=["x"]).study_lab()]))).state
    live = LiveControlPlane(state, client=None)
    with pytest.raises(InputError, match=r'^lab\.set_zones: kslab does not relabel a live cluster\'s Nodes .*lab\.exact\("node zones"\)'):
        live.set_zones({"myk8s-worker": "zone-a"})
    with pytest.raises(InputError, match="no such node"):
        live.set_zones({"nope": "zone-a"})


# ---- Events in kubectl -----------------------------------------------------------------------

MSG = "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4"


def _with_events(lab):
    on = lab.copy()
    st = on.cluster
    st.clock = 1000.0
    t.record_events(st, [Event("Service", "default", "svc-nodeport", "Warning", t.REASON_DISABLED, MSG)])
    st.clock = 1075.0
    t.record_events(st, [Event("Service", "default", "svc-nodeport", "Warning", t.REASON_DISABLED, MSG),
                         Event("Service", "default", "svc-nodeport", "Normal", t.REASON_ENABLED,
                               "Topology Aware Hints has been enabled, addressType: IPv4")])
    st.clock = 1105.0
    return st


def test_get_events(lab):
    st = _with_events(lab)
    assert kubectl.run(st, ["get", "events"]) == (
        "LAST SEEN   TYPE      REASON                       OBJECT                 MESSAGE\n"
        f"30s         Warning   TopologyAwareHintsDisabled   service/svc-nodeport   {MSG}\n"
        "30s         Normal    TopologyAwareHintsEnabled    service/svc-nodeport   Topology Aware Hints has been enabled, addressType: IPv4\n")
    wide = kubectl.run(st, ["get", "ev", "-o", "wide"]).splitlines()
    assert wide[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST", "SEEN",
                               "COUNT", "NAME"]
    assert "endpoint-slice-controller" in wide[1] and " 105s " in wide[1] and " 2 " in wide[1]
    assert wide[1].split()[-1].startswith("svc-nodeport.")
    assert kubectl.run(st, ["get", "events", "-A"]).splitlines()[1].startswith("default     30s ")
    res = kubectl.execute(st, ["get", "events", "-n", "kube-system"])
    assert (res.stdout, res.stderr) == ("", "No resources found in kube-system namespace.\n")


def test_event_objects(lab):
    st = _with_events(lab)
    import json

    items = json.loads(kubectl.run(st, ["get", "events", "-o", "json"]))["items"]
    first = items[0]
    assert first["kind"] == "Event" and first["count"] == 2 and first["type"] == "Warning"
    assert first["involvedObject"]["kind"] == "Service" and first["involvedObject"]["name"] == "svc-nodeport"
    assert first["source"] == {"component": "endpoint-slice-controller"}
    assert first["firstTimestamp"] < first["lastTimestamp"]
    assert first["message"] == MSG
    # client-go names an event <object>.<first time in nanoseconds, hex>
    assert int(first["metadata"]["name"].split(".")[1], 16) < int(items[1]["metadata"]["name"].split(".")[1], 16)


def test_describe_service_events(lab):
    st = _with_events(lab)
    out = kubectl.run(st, ["describe", "svc", "svc-nodeport"])
    assert out.endswith(
        "Events:\n"
        "  Type     Reason                      Age                 From                       Message\n"
        "  ----     ------                      ----                ----                       -------\n"
        f"  Warning  TopologyAwareHintsDisabled  30s (x2 over 105s)  endpoint-slice-controller  {MSG}\n"
        "  Normal   TopologyAwareHintsEnabled   30s                 endpoint-slice-controller  "
        "Topology Aware Hints has been enabled, addressType: IPv4\n")
    assert kubectl.run(st, ["describe", "svc", "svc-clusterip"]).endswith("Events:                   <none>\n")


# ---- a live cluster's Events (kind backend, against the fake API server) ----------------------

from kindfake.pytest_fixtures import kind_fake, kind_kubeconfig  # noqa: E402,F401


def test_live_events_are_read_and_printed(kind_fake, kind_kubeconfig):  # noqa: F811
    """read_live reads the API server's core/v1 Events: kubectl get events and describe svc
    print them (name, times and count as the server holds them)."""
    from kslab.kind.client import KindClient
    from kslab.kind.dataplane import live_events, read_cluster

    kind_fake.store.put({
        "apiVersion": "v1", "kind": "Event", "count": 3, "type": "Warning", "reason": t.REASON_DISABLED,
        "message": MSG, "firstTimestamp": "2025-06-02T09:10:00Z", "lastTimestamp": "2025-06-02T09:12:00Z",
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "svc-nodeport", "namespace": "default"},
        "metadata": {"name": "svc-nodeport.1845aaaabbbbcccc", "namespace": "default"},
        "source": {"component": "endpoint-slice-controller"},
    })
    client = KindClient.connect("kind-myk8s", kubeconfig=str(kind_kubeconfig), timeout=5)
    try:
        (ev,) = live_events(client)
        assert (ev.involved_kind, ev.name, ev.count, ev.first_at, ev.at) == ("Service", "svc-nodeport", 3, 600.0, 720.0)
        state = read_cluster(client)
    finally:
        client.close()
    state.clock = 780.0
    rows = kubectl.run(state, ["get", "events", "-o", "wide"]).splitlines()
    assert rows[1].split()[:4] == ["60s", "Warning", t.REASON_DISABLED, "service/svc-nodeport"]
    assert rows[1].split()[-3:] == ["3m", "3", "svc-nodeport.1845aaaabbbbcccc"]
    assert f"Warning  {t.REASON_DISABLED}  60s (x3 over 3m)  endpoint-slice-controller  {MSG}\n" in \
        kubectl.run(state, ["describe", "svc", "svc-nodeport"])
