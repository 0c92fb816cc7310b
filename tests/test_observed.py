"""kslab.observed: API objects as the API server returns them -> ClusterState; the kube-proxy
ConfigMap -> proxy options."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from kslab.errors import InputError
from kslab.observed import cluster_from_objects, proxy_mode, proxy_options_from_configmap
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render

DUMPS = Path(__file__).resolve().parents[1] / "data" / "node-dumps"


def kind_list() -> dict:
    return yaml.safe_load((DUMPS / "kind-worker3.objects.yaml").read_text())


def kind_configmap() -> dict:
    return yaml.safe_load((DUMPS / "kind-worker3.kube-proxy.yaml").read_text())


def test_kubectl_list_is_read_as_given():
    st = cluster_from_objects([kind_list()], source="kind-worker3.objects.yaml")
    assert [n.name for n in st.nodes] == ["kind-control-plane", "kind-worker", "kind-worker2", "kind-worker3"]
    w3 = st.node("kind-worker3")
    assert (w3.internal_ip, w3.pod_cidr, w3.ready) == ("172.20.0.4", "10.244.2.0/24", True)
    assert st.node("kind-control-plane").is_control_plane
    dns = st.service("kube-system/kube-dns")
    assert dns.cluster_ip == "10.96.0.10" and [(p.name, p.protocol, p.port) for p in dns.ports] == [
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)]
    sl = st.slices_for(st.service("default/my-nginx"))
    assert [(e.addresses, e.node_name, e.target_pod) for e in sl[0].endpoints] == [
        (["10.244.3.3"], "kind-worker2", "my-nginx-684dd4dcd4-5cfxn"), (["10.244.2.3"], "kind-worker3", "my-nginx-684dd4dcd4-n6zrk")]
    # nothing allocated or invented: no pods (not in the list), no kubernetes Service added twice
    assert st.pods == [] and sum(s.name == "kubernetes" for s in st.services) == 1
    nodes = [o for o in kind_list()["items"] if o["kind"] == "Node"]
    nodes[3]["status"]["conditions"][0]["status"] = "Unknown"  # a NotReady node, as the API says it
    assert cluster_from_objects(nodes).node("kind-worker3").ready is False
    assert st.config.pod_subnet == ""  # unknown without kube-proxy's ConfigMap


def test_rendered_from_observed_objects_names_the_real_chains():
    """The reconstructed objects give the dump's own chain names (hashes of service port and endpoint)."""
    st = cluster_from_objects([kind_list(), kind_configmap()])
    assert st.config.pod_subnet == "10.244.0.0/16"  # from the kube-proxy ConfigMap among the objects
    text = render(st.services, st.endpoint_slices, ProxyConfig.for_node(st, "kind-worker3")).save_text()
    real = (DUMPS / "kind-worker3.nat.S").read_text()
    for chain in ("KUBE-SVC-TCOU7JCQXEZGVUNU", "KUBE-SEP-6E7XQMQ4RAYOWTTM", "KUBE-SVC-L65ENXXZWWSAPRCR", "KUBE-SEP-ME73ZWD7U6KL3OSU"):
        assert f":{chain} -" in text and f"-N {chain}\n" in real


def test_api_server_lists_without_item_kinds_and_tolerated_fields():
    lst = kind_list()
    svcs = [o for o in lst["items"] if o["kind"] == "Service"]
    slices = [o for o in lst["items"] if o["kind"] == "EndpointSlice"]
    # the API server's ServiceList items carry no kind/apiVersion
    service_list = {"apiVersion": "v1", "kind": "ServiceList", "metadata": {"resourceVersion": "99"},
                    "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in svcs]}
    slice_list = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList", "metadata": {},
                  "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in slices]}
    empty = copy.deepcopy(slices[1])
    empty["metadata"]["name"] = "my-nginx-empty"
    empty["endpoints"] = None  # a slice of a Service with no ready pods, as the API sends it
    empty["metadata"]["managedFields"] = [{"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
                                           "fieldsV1": {"f:addressType": {}}}]
    empty["someFutureField"] = {"x": 1}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "net-pod", "namespace": "default", "uid": "u1"},
           "spec": {"nodeName": "kind-worker3", "containers": [{"name": "c", "image": "nicolaka/netshoot"}]},
           "status": {"phase": "Running", "podIP": "10.244.2.9", "conditions": [{"type": "Ready", "status": "True"}]}}
    other = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {}},
             {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kindnet", "namespace": "kube-system"}}]
    st = cluster_from_objects([service_list, slice_list, empty, pod, *other])
    assert len(st.services) == 5 and len(st.endpoint_slices) == 6
    assert next(s for s in st.endpoint_slices if s.name == "my-nginx-empty").endpoints == []
    p = st.pod("net-pod")
    assert (p.pod_ip, p.phase, p.ready, p.node_name) == ("10.244.2.9", "Running", True, "kind-worker3")


@pytest.mark.parametrize("edit,message", [
    (lambda o: o["metadata"].pop("name"), "objects[0]: items[0]: Service: metadata.name: the object has no name"),
    (lambda o: o.update(apiVersion="v2"), "'v2' is not an apiVersion kslab reads for Service"),
    (lambda o: o["spec"]["ports"][0].update(port="https"), "spec.ports[0].port: 'https' is not a number"),
])
def test_bad_objects_are_one_line_errors(edit, message):
    lst = kind_list()
    edit(lst["items"][0])
    with pytest.raises(InputError) as e:
        cluster_from_objects([lst])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("path,edit,message", [
    ("spec.clusterIP", lambda svc: svc["spec"].pop("clusterIP"), "Service my-nginx: spec.clusterIP: is not set"),
    ("nodePort", lambda svc: svc["spec"].update(type="NodePort"), "Service my-nginx: spec.ports[0].nodePort: is not set on a NodePort Service"),
])
def test_manifests_are_not_api_objects(path, edit, message):
    lst = kind_list()
    edit(lst["items"][1])
    with pytest.raises(InputError) as e:
        cluster_from_objects([lst])
    assert message in str(e.value) and "not manifests" in str(e.value)
    lst["items"][1]["spec"]["type"] = "ExternalName"  # an ExternalName Service has neither
    lst["items"][1]["spec"].pop("clusterIP", None)
    assert cluster_from_objects([lst]).service("default/my-nginx").type == "ExternalName"


def test_an_object_given_twice_and_not_a_list():
    lst = kind_list()
    with pytest.raises(InputError, match=r"Service default/kubernetes is given twice \(also objects\[0\]: items\[0\]\)"):
        cluster_from_objects([lst, lst["items"][0]])
    with pytest.raises(InputError, match="expected a list of API objects"):
        cluster_from_objects(lst)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"objects\[0\]: not an object"):
        cluster_from_objects(["Service"])  # type: ignore[list-item]


# ---- the kube-proxy ConfigMap ----------------------------------------------------------------------


def _cm(conf: str, key: str = "config.conf") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {key: conf}}


def test_kind_configmap():
    opts = proxy_options_from_configmap(kind_configmap())
    assert opts == {"cluster_cidr": "10.244.0.0/16", "detect_local_mode": "ClusterCIDR", "masquerade_all": False,
                    "mode": "iptables"}
    assert proxy_mode(kind_configmap()) == "iptables"
    ProxyConfig(node_name="n", **opts)  # usable as they are


def test_every_option_kslab_knows():
    conf = """
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ""
clusterCIDR: 10.10.0.0/16,fd00:10::/56
detectLocalMode: InterfaceNamePrefix
detectLocal: {interfaceNamePrefix: veth}
iptables: {masqueradeAll: true, masqueradeBit: 15, localhostNodePorts: false}
nodePortAddresses: [192.168.0.0/16, "fd00::/8", primary]
conntrack: {tcpBeLiberal: true}
"""
    opts = proxy_options_from_configmap(_cm(conf, key="config"))  # EKS's kube-proxy-config key
    assert opts == {"cluster_cidr": "10.10.0.0/16", "detect_local_mode": "InterfaceNamePrefix", "interface_name_prefix": "veth",
                    "masquerade_all": True, "masquerade_bit": 15, "localhost_nodeports": False,
                    "nodeport_addresses": ("192.168.0.0/16", "primary"), "conntrack_tcp_liberal": True,
                    "mode": "iptables"}  # mode "" is iptables on Linux
    cfg = ProxyConfig(node_name="n", **opts)
    assert cfg.if_local() == ["-i", "veth+"] and cfg.mark == "0x00008000"
    # a bare KubeProxyConfiguration works too
    assert proxy_options_from_configmap(yaml.safe_load(conf)) == opts


def test_defaults_when_the_configmap_says_nothing():
    assert proxy_options_from_configmap(_cm("kind: KubeProxyConfiguration\n")) == {
        "cluster_cidr": None, "detect_local_mode": "ClusterCIDR", "mode": "iptables"}


def test_nftables_mode_is_an_option():
    """A kube-proxy in nftables mode: its options carry mode nftables, usable by a Lab and a ProxyConfig."""
    opts = proxy_options_from_configmap(_cm("kind: KubeProxyConfiguration\nmode: nftables\nclusterCIDR: 10.244.0.0/16\n"))
    assert opts == {"cluster_cidr": "10.244.0.0/16", "detect_local_mode": "ClusterCIDR", "mode": "nftables"}
    assert ProxyConfig(node_name="n", **opts).mode == "nftables"
    assert proxy_options_from_configmap(_cm("mode: iptables\n"))["mode"] == "iptables"
    assert proxy_mode(_cm("mode: nftables\n")) == "nftables"


@pytest.mark.parametrize("conf,message", [
    ("mode: ipvs", "mode: kube-proxy runs in 'ipvs' mode; kslab models the iptables and nftables modes only; its "
                   "schedulers (rr, wrr, lc, sh...) are modelled in kslab.ipvs; verify a node whose kube-proxy runs mode: iptables"),
    ("mode: kernelspace", "mode: kube-proxy runs in 'kernelspace' mode; kslab models the iptables and nftables modes only;"
                          " verify"),
    ("clusterCIDR: 10.244.0.0/33", "clusterCIDR: '10.244.0.0/33' is not a CIDR"),
    ("iptables: {masqueradeAll: 'yes'}", "iptables.masqueradeAll: 'yes' is not a boolean"),
    ("iptables: {masqueradeBit: 40}", "iptables.masqueradeBit: 40 is out of range"),
    ("detectLocalMode: Magic", "detectLocalMode: 'Magic' is not a detect-local mode"),
    ("mode: [", "invalid YAML"),
    ("kind: KubeletConfiguration", "is not a KubeProxyConfiguration"),
])
def test_bad_configmaps(conf, message):
    with pytest.raises(InputError) as e:
        proxy_options_from_configmap(_cm(conf))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_not_kube_proxys_configmap():
    with pytest.raises(InputError, match=r"data: has no config.conf or config key \(keys: Corefile\)"):
        proxy_options_from_configmap({"kind": "ConfigMap", "metadata": {"name": "coredns"}, "data": {"Corefile": "."}})
    with pytest.raises(InputError, match="'Secret' is not a ConfigMap"):
        proxy_options_from_configmap({"kind": "Secret", "data": {}})


def test_an_ipvs_configmap_among_the_objects_is_refused():
    with pytest.raises(InputError, match="ipvs"):
        cluster_from_objects([kind_list(), _cm("mode: ipvs")])
