"""Dual-stack (issue 16): the API server's IP family admission, kind's ipFamily, node and pod
addresses per family, EndpointSlices per family, and the dual-stack study lab (one proxier per
node per family).

The admission cases are ported from kubernetes/kubernetes
``pkg/registry/core/service/storage/storage_test.go`` ``TestCreateInitIPFields`` (a
representative subset of its table, the case names kept) and ``TestCreateIgnoresIPsForExternalName``,
with the clusters of that file's ``newStorage``: IPv4 ``10.0.0.0/16``, IPv6 ``2000::/108``. The
exact error texts are those of ``pkg/registry/core/service/storage/alloc.go``
(``initIPFamilyFields``) and ``pkg/apis/core/validation/validation.go``
(``ValidateServiceClusterIPsRelatedFields``, ``ValidateService``), as kubectl prints a 422.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
import yaml

import kslab
from kslab.controlplane import ControlPlane, load_cluster
from kslab.errors import AdmissionError, InputError
from kslab.manifests import Document, parse_kind_cluster, parse_node, parse_pod, parse_service
from kslab.model import ClusterConfig, ClusterState, Node, Pod, Service
from kslab.resources import dualstack_lab, named_lab

V4, V6 = "10.0.0.0/16", "2000::/108"  # storage_test.go newStorage
CLUSTERS = {"singlestack:v4": V4, "singlestack:v6": V6, "dualstack:v4v6": f"{V4},{V6}", "dualstack:v6v4": f"{V6},{V4}"}
FAMILIES = {"unset": None, "v4": ["IPv4"], "v6": ["IPv6"], "v4v6": ["IPv4", "IPv6"], "v6v4": ["IPv6", "IPv4"]}
IPS = {"unset": None, "v4": ["10.0.0.1"], "v6": ["2000::1"], "v4v6": ["10.0.0.1", "2000::1"], "v6v4": ["2000::1", "10.0.0.1"]}


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


def _state(cluster: str) -> ClusterState:
    return ClusterState(config=ClusterConfig(service_subnet=CLUSTERS[cluster]))


def create(cluster: str, case: str, *, type_: str = "ClusterIP", state: ClusterState | None = None) -> Service:
    """``storage.Create`` of svctest.MakeService("foo", ...) as the case name says
    (``ClusterIPs:X_Policy:Y_Families:Z``, ``Headless_...``, ``HeadlessSelectorless_...``)."""
    parts = dict(p.split(":", 1) for p in case.replace("Headless_", "Headless:yes_").replace(
        "HeadlessSelectorless_", "HeadlessSelectorless:yes_").split("_"))
    spec: dict = {"type": type_, "selector": {"k": "v"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
                  "sessionAffinity": "None"}
    if "Headless" in parts or "HeadlessSelectorless" in parts:
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
    if "HeadlessSelectorless" in parts:
        del spec["selector"]
    if IPS.get(parts.get("ClusterIPs", "unset")):
        spec["clusterIP"], spec["clusterIPs"] = IPS[parts["ClusterIPs"]][0], IPS[parts["ClusterIPs"]]
    if parts.get("Policy", "unset") != "unset":
        spec["ipFamilyPolicy"] = parts["Policy"]
    if FAMILIES[parts.get("Families", "unset")]:
        spec["ipFamilies"] = FAMILIES[parts["Families"]]
    if type_ == "ExternalName":
        spec["externalName"] = "example.com"
    doc = Document("svc.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "foo"}, "spec": spec})
    st = state or _state(cluster)
    ControlPlane(st, random.Random(1)).admit([(doc, parse_service(doc))], [], [])
    return st.services[-1]


# TestCreateInitIPFields: (cluster, case, expected policy, expected families, headless) or an error
OK = [
    ("singlestack:v4", "ClusterIPs:unset_Policy:unset_Families:unset", "SingleStack", ["IPv4"], False),
    ("singlestack:v4", "ClusterIPs:unset_Policy:unset_Families:v4", "SingleStack", ["IPv4"], False),
    ("singlestack:v4", "ClusterIPs:unset_Policy:SingleStack_Families:v4", "SingleStack", ["IPv4"], False),
    ("singlestack:v4", "ClusterIPs:unset_Policy:PreferDualStack_Families:unset", "PreferDualStack", ["IPv4"], False),
    ("singlestack:v4", "ClusterIPs:v4_Policy:unset_Families:unset", "SingleStack", ["IPv4"], False),
    ("singlestack:v4", "ClusterIPs:v4_Policy:PreferDualStack_Families:v4", "PreferDualStack", ["IPv4"], False),
    ("singlestack:v4", "Headless_Policy:unset_Families:v4", "SingleStack", ["IPv4"], True),
    ("singlestack:v4", "Headless_Policy:PreferDualStack_Families:unset", "PreferDualStack", ["IPv4"], True),
    ("singlestack:v4", "HeadlessSelectorless_Policy:unset_Families:unset", "RequireDualStack", ["IPv4", "IPv6"], True),
    ("singlestack:v4", "HeadlessSelectorless_Policy:unset_Families:v6", "RequireDualStack", ["IPv6", "IPv4"], True),
    ("singlestack:v4", "HeadlessSelectorless_Policy:SingleStack_Families:v6", "SingleStack", ["IPv6"], True),
    ("singlestack:v4", "HeadlessSelectorless_Policy:PreferDualStack_Families:v6v4", "PreferDualStack", ["IPv6", "IPv4"], True),
    ("singlestack:v6", "ClusterIPs:unset_Policy:unset_Families:unset", "SingleStack", ["IPv6"], False),
    ("singlestack:v6", "ClusterIPs:unset_Policy:PreferDualStack_Families:v6", "PreferDualStack", ["IPv6"], False),
    ("singlestack:v6", "ClusterIPs:v6_Policy:unset_Families:unset", "SingleStack", ["IPv6"], False),
    ("singlestack:v6", "ClusterIPs:v6_Policy:SingleStack_Families:unset", "SingleStack", ["IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:unset_Families:unset", "SingleStack", ["IPv4"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:unset_Families:v6", "SingleStack", ["IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:PreferDualStack_Families:unset", "PreferDualStack", ["IPv4", "IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:PreferDualStack_Families:v6", "PreferDualStack", ["IPv6", "IPv4"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:RequireDualStack_Families:unset", "RequireDualStack", ["IPv4", "IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:RequireDualStack_Families:v6v4", "RequireDualStack", ["IPv6", "IPv4"], False),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:unset_Families:unset", "SingleStack", ["IPv4"], False),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:PreferDualStack_Families:unset", "PreferDualStack", ["IPv4", "IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:RequireDualStack_Families:v4v6", "RequireDualStack", ["IPv4", "IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:v6_Policy:unset_Families:unset", "SingleStack", ["IPv6"], False),
    ("dualstack:v4v6", "ClusterIPs:v6_Policy:SingleStack_Families:v6", "SingleStack", ["IPv6"], False),
    ("dualstack:v6v4", "ClusterIPs:unset_Policy:unset_Families:unset", "SingleStack", ["IPv6"], False),
    ("dualstack:v6v4", "ClusterIPs:unset_Policy:PreferDualStack_Families:unset", "PreferDualStack", ["IPv6", "IPv4"], False),
    ("dualstack:v6v4", "ClusterIPs:unset_Policy:RequireDualStack_Families:v4", "RequireDualStack", ["IPv4", "IPv6"], False),
]

ERRORS = [
    ("singlestack:v4", "ClusterIPs:unset_Policy:unset_Families:v6"),
    ("singlestack:v4", "ClusterIPs:unset_Policy:unset_Families:v4v6"),
    ("singlestack:v4", "ClusterIPs:unset_Policy:SingleStack_Families:v6v4"),
    ("singlestack:v4", "ClusterIPs:unset_Policy:PreferDualStack_Families:v4v6"),
    ("singlestack:v4", "ClusterIPs:unset_Policy:RequireDualStack_Families:unset"),
    ("singlestack:v4", "ClusterIPs:unset_Policy:RequireDualStack_Families:v4"),
    ("singlestack:v4", "ClusterIPs:v4_Policy:unset_Families:v6"),
    ("singlestack:v4", "ClusterIPs:v4_Policy:RequireDualStack_Families:unset"),
    ("singlestack:v4", "ClusterIPs:v4v6_Policy:unset_Families:unset"),
    ("singlestack:v4", "ClusterIPs:v4v6_Policy:SingleStack_Families:v4"),
    ("singlestack:v4", "ClusterIPs:v4v6_Policy:PreferDualStack_Families:unset"),
    ("singlestack:v4", "Headless_Policy:unset_Families:v6"),
    ("singlestack:v4", "Headless_Policy:RequireDualStack_Families:unset"),
    ("singlestack:v4", "HeadlessSelectorless_Policy:SingleStack_Families:v4v6"),
    ("singlestack:v6", "ClusterIPs:unset_Policy:unset_Families:v4"),
    ("singlestack:v6", "ClusterIPs:unset_Policy:RequireDualStack_Families:v6"),
    ("singlestack:v6", "ClusterIPs:v6_Policy:unset_Families:v4"),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:unset_Families:v4v6"),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:SingleStack_Families:v6v4"),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:unset_Families:v6"),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:PreferDualStack_Families:v6v4"),
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:RequireDualStack_Families:v6"),
    ("dualstack:v4v6", "ClusterIPs:v6_Policy:unset_Families:v4"),
]


@pytest.mark.parametrize("cluster, case, policy, families, headless", OK, ids=[f"{c}/{n}" for c, n, *_ in OK])
def test_create_init_ip_fields(cluster, case, policy, families, headless):
    """TestCreateInitIPFields: the policy and families the API server stores, and one
    cluster IP per family from that family's range (none when headless)."""
    svc = create(cluster, case)
    assert (svc.ip_family_policy, svc.ip_families) == (policy, families)
    if headless:
        assert (svc.cluster_ip, svc.cluster_ips) == ("None", ["None"])
        return
    assert svc.cluster_ip == svc.cluster_ips[0] and len(svc.cluster_ips) == len(families)
    nets = {4: ipaddress.ip_network(V4), 6: ipaddress.ip_network(V6)}
    for ip, fam in zip(svc.cluster_ips, families):
        assert ipaddress.ip_address(ip) in nets[6 if fam == "IPv6" else 4]
    requested = IPS[dict(p.split(":", 1) for p in case.split("_"))["ClusterIPs"]]
    if requested:
        assert svc.cluster_ips[:len(requested)] == requested  # what was asked for is kept, in its place


@pytest.mark.parametrize("cluster, case", ERRORS, ids=[f"{c}/{n}" for c, n in ERRORS])
def test_create_init_ip_fields_errors(cluster, case):
    """TestCreateInitIPFields ``expectError: true``: refused in one line, nothing stored."""
    st = _state(cluster)
    with pytest.raises(AdmissionError) as e:
        create(cluster, case, state=st)
    assert one_line(e.value).startswith('The Service "foo" is invalid')
    assert st.services == []


@pytest.mark.parametrize("cluster, case, message", [
    # alloc.go initIPFamilyFields
    ("singlestack:v4", "ClusterIPs:unset_Policy:RequireDualStack_Families:unset",
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services'),
    ("singlestack:v4", "ClusterIPs:unset_Policy:unset_Families:v6",
     'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'),
    ("singlestack:v6", "ClusterIPs:unset_Policy:PreferDualStack_Families:v4v6",
     'spec.ipFamilies[0]: Invalid value: "IPv4": not configured on this cluster'),
    ("singlestack:v4", "ClusterIPs:v6_Policy:unset_Families:unset",
     'spec.clusterIPs[0]: Invalid value: []string{"2000::1"}: IPv6 is not configured on this cluster'),
    ("dualstack:v4v6", "ClusterIPs:unset_Policy:SingleStack_Families:v4v6",
     'spec.ipFamilyPolicy: Invalid value: "SingleStack": must be \'RequireDualStack\' or \'PreferDualStack\' when multiple IP families are specified'),
    ("singlestack:v4", "ClusterIPs:v4v6_Policy:unset_Families:unset",
     '[spec.ipFamilyPolicy: Invalid value: "SingleStack": must be \'RequireDualStack\' or \'PreferDualStack\' when multiple cluster IPs are specified, '
     'spec.clusterIPs[1]: Invalid value: []string{"10.0.0.1", "2000::1"}: IPv6 is not configured on this cluster]'),
    # validation.go ValidateServiceClusterIPsRelatedFields
    ("dualstack:v4v6", "ClusterIPs:v4_Policy:unset_Families:v6",
     'spec.clusterIPs[0]: Invalid value: "10.0.0.1": expected an IPv6 value as indicated by `ipFamilies[0]`'),
    ("dualstack:v4v6", "ClusterIPs:v4v6_Policy:PreferDualStack_Families:v6v4",
     '[spec.clusterIPs[0]: Invalid value: "10.0.0.1": expected an IPv6 value as indicated by `ipFamilies[0]`, '
     'spec.clusterIPs[1]: Invalid value: "2000::1": expected an IPv4 value as indicated by `ipFamilies[1]`]'),
])
def test_create_init_ip_fields_messages(cluster, case, message):
    """The API server's words for TestCreateInitIPFields' errors (one line, as kubectl prints a 422)."""
    with pytest.raises(AdmissionError) as e:
        create(cluster, case)
    assert one_line(e.value) == f'The Service "foo" is invalid: {message}'


def test_validate_cluster_ips_related_fields_messages():
    """ValidateServiceClusterIPsRelatedFields: two IPs of one family, an unknown family and policy, a duplicate."""
    def refused(spec_extra: dict) -> str:
        spec = {"selector": {"k": "v"}, "ports": [{"port": 80}], **spec_extra}
        doc = Document("svc.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "foo"}, "spec": spec})
        with pytest.raises(AdmissionError) as e:
            ControlPlane(_state("dualstack:v4v6"), random.Random(1)).admit([(doc, parse_service(doc))], [], [])
        return one_line(e.value)

    assert refused({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.2"], "ipFamilyPolicy": "PreferDualStack"}) == (
        'The Service "foo" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1", "10.0.0.2"}: '
        "may specify no more than one IP for each IP family")
    assert refused({"ipFamilies": ["IPv5"]}) == (
        'The Service "foo" is invalid: spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"')
    assert refused({"ipFamilyPolicy": "DualStack"}) == (
        'The Service "foo" is invalid: spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: '
        '"PreferDualStack", "RequireDualStack", "SingleStack"')
    assert refused({"ipFamilies": ["IPv4", "IPv4"], "ipFamilyPolicy": "PreferDualStack"}) == (
        'The Service "foo" is invalid: spec.ipFamilies[1]: Duplicate value: "IPv4"')
    assert refused({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]}) == (
        'The Service "foo" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.2"}: first value must match `clusterIP`')


@pytest.mark.parametrize("cluster", ["singlestack:v6", "dualstack:v6v4"])
@pytest.mark.parametrize("case, error", [
    ("Policy:unset_Families:unset", None),
    ("Policy:SingleStack_Families:v6", "[spec.ipFamilies: Forbidden: may not be set for ExternalName services, "
                                       "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services]"),
    ("Policy:RequireDualStack_Families:unset", "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"),
])
def test_create_ignores_ips_for_external_name(cluster, case, error):
    """TestCreateIgnoresIPsForExternalName: no policy, families or cluster IPs; setting them is Forbidden."""
    if error is None:
        svc = create(cluster, case, type_="ExternalName")
        assert (svc.ip_family_policy, svc.ip_families, svc.cluster_ip, svc.cluster_ips) == ("", [], "", [])
        return
    with pytest.raises(AdmissionError) as e:
        create(cluster, case, type_="ExternalName")
    assert one_line(e.value) == f'The Service "foo" is invalid: {error}'


def test_a_refused_dual_stack_service_takes_no_address():
    """All or nothing: the IPv4 address taken before the IPv6 one is refused (already allocated) is freed."""
    st = _state("dualstack:v4v6")
    first = create("dualstack:v4v6", "ClusterIPs:v6_Policy:SingleStack_Families:v6", state=st)
    assert first.cluster_ips == ["2000::1"]
    cp = ControlPlane.of(st)
    spec = {"selector": {"k": "v"}, "ports": [{"port": 80}], "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7", "2000::1"],
            "ipFamilyPolicy": "RequireDualStack"}
    doc = Document("svc.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bar"}, "spec": spec})
    with pytest.raises(AdmissionError, match=r"spec.clusterIPs\[1\]: 2000::1 is already allocated to default/foo"):
        cp.admit([(doc, parse_service(doc))], [], [])
    assert "10.0.0.7" not in cp.allocator.ip_owner
    again = dict(spec, clusterIPs=["10.0.0.7"], ipFamilyPolicy="PreferDualStack")
    doc = Document("svc.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bar"}, "spec": again})
    cp.admit([(doc, parse_service(doc))], [], [])
    bar = st.services[-1]
    assert bar.cluster_ips[0] == "10.0.0.7" and ipaddress.ip_address(bar.cluster_ips[1]) in ipaddress.ip_network(V6)


# ---- kind's ipFamily, nodes and pods --------------------------------------------------------------


def _kind(net: dict, workers: int = 1) -> Document:
    return Document("kind.yaml", {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "k",
                                  "networking": net, "nodes": [{"role": "control-plane"}] + [{"role": "worker"}] * workers})


@pytest.mark.parametrize("family, pods, services", [
    ("ipv4", "10.244.0.0/16", "10.96.0.0/16"),
    ("ipv6", "fd00:10:244::/56", "fd00:10:96::/112"),
    ("dual", "10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/16,fd00:10:96::/112"),
])
def test_kind_ip_family_defaults(family, pods, services):
    """kind's SetDefaultsCluster: the subnets of each networking.ipFamily."""
    cfg, _, _ = parse_kind_cluster(_kind({"ipFamily": family}))
    assert (cfg.ip_family, cfg.pod_subnet, cfg.service_subnet) == (family, pods, services)
    assert cfg.families() == {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}[family]


@pytest.mark.parametrize("net, where, problem", [
    ({"ipFamily": "dual", "podSubnet": "10.1.0.0/16,10.2.0.0/16"}, "networking.podSubnet",
     "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"),
    ({"ipFamily": "dual", "serviceSubnet": "10.1.0.0/16,fd00::/112,fd01::/112"}, "networking.serviceSubnet",
     "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"),
    ({"podSubnet": "10.1.0.0/16,fd00::/56"}, "networking.podSubnet", "only one CIDR allowed for single-stack networking"),
    ({"ipFamily": "dual", "podSubnet": "10.1.0.0/16,fd00::/129"}, "networking.podSubnet", "'fd00::/129' is not a CIDR"),
    ({"ipFamily": "both"}, "networking.ipFamily", "'both' is not a kind ipFamily"),
])
def test_kind_subnets_checked_per_family(net, where, problem):
    with pytest.raises(InputError) as e:
        parse_kind_cluster(_kind(net))
    assert where in one_line(e.value) and problem in one_line(e.value)


def test_dual_kind_nodes_get_an_address_and_a_slash64_of_each_family(tmp_path):
    (tmp_path / "kind.yaml").write_text(yaml.safe_dump(_kind({"ipFamily": "dual"}, workers=2).obj))
    st = load_cluster([tmp_path])
    assert [(n.addresses, n.pod_cidrs) for n in st.nodes] == [
        (("172.18.0.2", "fc00:f853:ccd:e793::2"), ("10.244.0.0/24", "fd00:10:244::/64")),
        (("172.18.0.3", "fc00:f853:ccd:e793::3"), ("10.244.1.0/24", "fd00:10:244:1::/64")),
        (("172.18.0.4", "fc00:f853:ccd:e793::4"), ("10.244.2.0/24", "fd00:10:244:2::/64")),
    ]
    n = st.nodes[1]
    assert (n.internal_ip, n.pod_cidr, n.ip_of(6), n.pod_cidr_of(6), n.ips_of(4)) == (
        "172.18.0.3", "10.244.1.0/24", "fc00:f853:ccd:e793::3", "fd00:10:244:1::/64", ("172.18.0.3",))
    kubernetes = st.service("default/kubernetes")
    assert (kubernetes.cluster_ips, kubernetes.ip_families, kubernetes.ip_family_policy) == (["10.96.0.1"], ["IPv4"], "SingleStack")


def test_ipv6_kind_cluster_is_ipv6_only(tmp_path):
    (tmp_path / "kind.yaml").write_text(yaml.safe_dump(_kind({"ipFamily": "ipv6"}).obj))
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: k-worker\n"
                                       "  containers: [{name: c, image: nginx}]\n")
    st = load_cluster([tmp_path])
    assert [(n.addresses, n.pod_cidrs) for n in st.nodes] == [
        (("fc00:f853:ccd:e793::2",), ("fd00:10:244::/64",)), (("fc00:f853:ccd:e793::3",), ("fd00:10:244:1::/64",))]
    assert st.pod("p").pod_ips == ("fd00:10:244:1::2",)
    assert st.service("default/kubernetes").cluster_ips == ["fd00:10:96::1"]


def test_manifests_read_every_family():
    node = parse_node(Document("n.yaml", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                                          "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
                                          "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"},
                                                                   {"type": "InternalIP", "address": "fc00:f853:ccd:e793::3"},
                                                                   {"type": "Hostname", "address": "n"}]}}))
    assert (node.addresses, node.pod_cidrs) == (("172.18.0.3", "fc00:f853:ccd:e793::3"), ("10.244.1.0/24", "fd00:10:244:1::/64"))
    pod = parse_pod(Document("p.yaml", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []},
                                        "status": {"phase": "Running", "podIP": "10.244.1.5",
                                                   "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00:10:244:1::5"}]}}))
    assert (pod.pod_ip, pod.pod_ips, pod.pod_ip_of(6)) == ("10.244.1.5", ("10.244.1.5", "fd00:10:244:1::5"), "fd00:10:244:1::5")
    svc = parse_service(Document("s.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                            "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}}))
    assert svc.ip_family_policy == "PreferDualStack"


def test_model_setters_keep_the_old_fields():
    n = Node("n", internal_ip="10.0.0.1")
    n.addresses = ["10.0.0.2", "fd00::2"]
    n.pod_cidrs = ["10.1.0.0/24", "fd00:1::/64"]
    assert (n.internal_ip, n.extra_ips, n.pod_cidr, n.extra_pod_cidrs) == ("10.0.0.2", ("fd00::2",), "10.1.0.0/24", ("fd00:1::/64",))
    p = Pod("p")
    p.pod_ips = ["10.1.0.5", "fd00:1::5"]
    assert (p.pod_ip, p.extra_pod_ips, p.pod_ip_of(4), p.pod_ip_of(6)) == ("10.1.0.5", ("fd00:1::5",), "10.1.0.5", "fd00:1::5")
    p.pod_ips = []
    assert (p.pod_ip, p.pod_ips) == ("", ())


# ---- the dual-stack study lab -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dual():
    lab = kslab.Lab("myk8s-dualstack", backend="sim")
    yield lab
    lab.close()


def test_the_dual_lab_is_reachable_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wherever kslab runs
    assert named_lab("myk8s-dualstack") == named_lab("data/myk8s-dualstack") == dualstack_lab()
    assert named_lab("no-such-lab") is None
    (tmp_path / "myk8s-dualstack").mkdir()
    assert named_lab("myk8s-dualstack") is None  # a folder of that name here is what the user means


def test_dual_lab_pods_get_one_ip_per_family(dual):
    for p in dual.cluster.pods:
        node = dual.cluster.node(p.node_name)
        assert len(p.pod_ips) == 2
        assert ipaddress.ip_address(p.pod_ip_of(4)) in ipaddress.ip_network(node.pod_cidr_of(4))
        assert ipaddress.ip_address(p.pod_ip_of(6)) in ipaddress.ip_network(node.pod_cidr_of(6))
    assert dual.cluster.pod("webpod1").pod_ips == ("10.10.1.2", "fd00:10:244:1::2")


def test_dual_lab_services_and_slices_per_family(dual):
    for name in ("svc-clusterip", "svc-nodeport"):
        svc = dual.cluster.service(name)
        assert (svc.ip_family_policy, svc.ip_families) == ("PreferDualStack", ["IPv4", "IPv6"])
        assert ipaddress.ip_address(svc.cluster_ips[0]) in ipaddress.ip_network("10.200.1.0/24")
        assert ipaddress.ip_address(svc.cluster_ips[1]) in ipaddress.ip_network("fd00:10:96::/112")
        slices = {s.address_type: s for s in dual.cluster.slices_for(svc)}
        assert set(slices) == {"IPv4", "IPv6"}
        for fam, sl in slices.items():
            pods = {e.target_pod: e.addresses for e in sl.endpoints}
            for pod, addrs in pods.items():
                want = dual.cluster.pod(pod).pod_ip_of(6 if fam == "IPv6" else 4)
                assert addrs == [want]


def test_dual_lab_renders_both_families(dual):
    """One proxier per node per family: the IPv4 rules hold only IPv4 addresses, the IPv6 rules
    only IPv6 ones; the Service's chain name is the same in both (servicePortChainName hashes no IP)."""
    svc = dual.cluster.service("svc-clusterip")
    v4, v6 = dual.render("myk8s-worker"), dual.render("myk8s-worker", family=6)
    assert (v4.config.family, v6.config.family) == (4, 6)
    assert v6.config.node_ips == ("fc00:f853:ccd:e793::3",) and v6.config.cluster_cidr == "fd00:10:244::/56"
    t4, t6 = v4.raw_text(), v6.raw_text()
    assert f"-d {svc.cluster_ips[0]} " in t4 and svc.cluster_ips[1] not in t4
    assert f"-d {svc.cluster_ips[1]} " in t6 and svc.cluster_ips[0] not in t6
    assert "KUBE-SVC-KBDEBIL6IU6WL7RF" in t4 and "KUBE-SVC-KBDEBIL6IU6WL7RF" in t6
    assert "DNAT --to-destination [fd00:10:244:1::2]:80" in t6
    assert "! -d ::1/128 -j KUBE-NODEPORTS" in t6 and "KUBE-FIREWALL" not in t6
    assert dual.render("myk8s-worker", family="ipv6") is v6
    assert {r.ruleset.config.family for r in dual.syncs} == {4, 6}


def test_single_stack_lab_has_one_proxier_per_node():
    lab = kslab.Lab(backend="sim")
    try:
        assert lab.families == (4,)
        with pytest.raises(InputError) as e:
            lab.render("myk8s-worker", family=6)
        assert one_line(e.value).startswith("family 6: this cluster is IPv4 only")
        assert {r.ruleset.config.family for r in lab.syncs} == {4}
    finally:
        lab.close()


def test_dual_lab_changes_keep_both_families(dual):
    """An update keeps both cluster IPs; scaling makes dual-stack pods and both slices follow."""
    twin = dual.copy()
    before = twin.cluster.service("svc-clusterip").cluster_ips
    twin.patch_service("svc-clusterip", session_affinity="ClientIP")
    assert twin.cluster.service("svc-clusterip").cluster_ips == before
    twin.scale("deploy-echo", 4)
    svc = twin.cluster.service("svc-nodeport")
    counts = {s.address_type: len(s.endpoints) for s in twin.cluster.slices_for(svc)}
    assert counts == {"IPv4": 4, "IPv6": 4}
    assert twin.render("myk8s-worker", family=6).raw_text().count("-j DNAT") == 4 + 3  # echo pods + webpods


def test_dual_lab_per_family_views(dual):
    """metrics, verify and save_text take the family; the primary's work as before."""
    assert 'ip_family="IPv6"' in dual.metrics("myk8s-worker", family=6).prometheus_text()
    assert 'ip_family="IPv4"' in dual.metrics("myk8s-worker").prometheus_text()
    assert dual.verify("myk8s-worker").ok()
    # the IPv6 proxier's tables (the simulator's ip6tables) compared with its prediction
    report = dual.verify("myk8s-worker", family=6)
    assert report.ok(), report.text()
    assert "fd00:10:244::/56" in report.rendered_for or "2001" in report.rendered_for or "fc00:" in report.rendered_for
    with pytest.raises(InputError) as e:
        dual.render("myk8s-worker", family=5)
    assert one_line(e.value).startswith("family 5: is not an IP family")
    assert dual.save_text("myk8s-worker") == dual.save_text("myk8s-worker", family=4)


def test_updates_upgrade_and_downgrade_as_init_ip_family_fields_does():
    """alloc.go initIPFamilyFields on an update: RequireDualStack adds the other family's address
    (the first kept); SingleStack releases the secondary (freed in the allocator, its slice
    removed); dropping the secondary under PreferDualStack is refused in the API server's words."""
    lab = kslab.Lab("myk8s-dualstack", backend="sim")
    try:
        first = lab.cluster.service("kubernetes").cluster_ip
        lab.patch_service("kubernetes", ip_family_policy="RequireDualStack")
        k = lab.cluster.service("kubernetes")
        assert (k.cluster_ips[0], k.ip_families, k.ip_family_policy) == (first, ["IPv4", "IPv6"], "RequireDualStack")
        assert ipaddress.ip_address(k.cluster_ips[1]) in ipaddress.ip_network("fd00:10:96::/112")
        v6 = lab.cluster.service("svc-clusterip").cluster_ips[1]
        lab.patch_service("svc-clusterip", ip_family_policy="SingleStack")
        s = lab.cluster.service("svc-clusterip")
        assert (len(s.cluster_ips), s.ip_families) == (1, ["IPv4"])
        assert v6 not in lab.control.allocator.ip_owner
        assert [sl.address_type for sl in lab.cluster.slices_for(s)] == ["IPv4"]
        assert "KUBE-SVC-KBDEBIL6IU6WL7RF" not in lab.render("myk8s-worker", family=6).raw_text()
        np_ = lab.cluster.service("svc-nodeport")
        with pytest.raises(AdmissionError) as e:
            lab.patch_service("svc-nodeport", cluster_ips=np_.cluster_ips[:1])
        assert one_line(e.value) == ('The Service "svc-nodeport" is invalid: spec.ipFamilyPolicy: Invalid value: '
                                     '"PreferDualStack": must be \'SingleStack\' to release the secondary cluster IP')
        assert lab.cluster.service("svc-nodeport").cluster_ips == np_.cluster_ips
    finally:
        lab.close()
