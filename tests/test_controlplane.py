"""Control-plane emulation: kind nodes, admission, allocation bands, scheduling, EndpointSlices."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

import kslab
from kslab.controlplane import band_of, load_cluster, node_port_bands, node_port_uses, parse_port_range
from kslab.errors import AdmissionError, InputError
from kslab.resources import study_lab

CLUSTER = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: myk8s
networking: {podSubnet: 10.10.0.0/16, serviceSubnet: 10.200.1.0/24}
nodes:
- role: control-plane
  labels: {topology.kubernetes.io/zone: zone-a}
- role: worker
  labels: {topology.kubernetes.io/zone: zone-a}
- role: worker
  labels: {topology.kubernetes.io/zone: zone-b}
- role: worker
  labels: {topology.kubernetes.io/zone: zone-c}
"""

WORKLOAD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: deploy-echo}
spec:
  replicas: 6
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: mendhak/http-https-echo
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-nodeport}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: svc-webport, port: 9000, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-fixed}
spec:
  type: NodePort
  clusterIP: 10.200.1.5
  selector: {app: echo}
  ports: [{name: web, port: 80, targetPort: 8080, nodePort: 30001}]
---
apiVersion: v1
kind: Pod
metadata: {name: net-pod}
spec:
  nodeName: myk8s-control-plane
  containers: [{name: netshoot, image: nicolaka/netshoot}]
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "workload.yaml").write_text(WORKLOAD)
    return tmp_path


def test_kind_nodes(lab):
    st = load_cluster([lab])
    assert [n.name for n in st.nodes] == ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    assert [n.internal_ip for n in st.nodes] == ["172.18.0.2", "172.18.0.3", "172.18.0.4", "172.18.0.5"]
    assert [n.pod_cidr for n in st.nodes] == ["10.10.0.0/24", "10.10.1.0/24", "10.10.2.0/24", "10.10.3.0/24"]
    assert st.nodes[0].is_control_plane and st.nodes[0].taints
    assert [n.zone for n in st.nodes] == ["zone-a", "zone-a", "zone-b", "zone-c"]


def test_admission_allocates_in_the_dynamic_bands(lab):
    st = load_cluster([lab])
    assert st.service("kubernetes").cluster_ip == "10.200.1.1"
    np_svc = st.service("svc-nodeport")
    static, dynamic = node_port_bands((30000, 32767))
    assert (static.start, static.stop - 1, dynamic.start, dynamic.stop - 1) == (30000, 30085, 30086, 32767)
    assert np_svc.ports[0].node_port in dynamic
    ip = ipaddress.ip_address(np_svc.cluster_ip)
    assert ipaddress.ip_address("10.200.1.17") <= ip <= ipaddress.ip_address("10.200.1.254")  # upper band of a /24
    fixed = st.service("svc-fixed")
    assert fixed.cluster_ip == "10.200.1.5" and fixed.ports[0].node_port == 30001
    assert np_svc.external_traffic_policy == "Cluster" and np_svc.internal_traffic_policy == "Cluster"


def test_deterministic_per_seed(lab):
    def fingerprint(seed):
        st = load_cluster([lab], seed=seed)
        return (
            [(p.name, p.node_name, p.pod_ip) for p in st.pods],
            [(s.name, s.cluster_ip, [p.node_port for p in s.ports]) for s in st.services],
            [s.name for s in st.endpoint_slices],
        )

    assert fingerprint(1) == fingerprint(1)
    assert fingerprint(1) != fingerprint(2)


def test_scheduling_spreads_and_respects_taints(lab):
    st = load_cluster([lab])
    echo = [p for p in st.pods if p.owner == "Deployment/deploy-echo"]
    assert len(echo) == 6
    per_node = {}
    for p in echo:
        per_node[p.node_name] = per_node.get(p.node_name, 0) + 1
    assert per_node == {"myk8s-worker": 2, "myk8s-worker2": 2, "myk8s-worker3": 2}  # no pod on the tainted control plane
    for p in st.pods:
        node = st.node(p.node_name)
        assert ipaddress.ip_address(p.pod_ip) in ipaddress.ip_network(node.pod_cidr)
        assert not p.pod_ip.endswith(".1") and not p.pod_ip.endswith(".0")
    assert st.pod("net-pod").node_name == "myk8s-control-plane"
    assert all(p.name.startswith("deploy-echo-") and len(p.name.split("-")) == 4 for p in echo)


def test_endpoint_slices_follow_the_pods(lab):
    st = load_cluster([lab])
    (sl,) = st.slices_for(st.service("svc-nodeport"))
    assert sl.name.startswith("svc-nodeport-") and len(sl.name) == len("svc-nodeport-") + 5
    assert [(p.name, p.port, p.protocol) for p in sl.ports] == [("svc-webport", 8080, "TCP")]  # named targetPort resolved
    assert len(sl.endpoints) == 6
    for e in sl.endpoints:
        pod = st.pod(e.target_pod)
        assert e.addresses == [pod.pod_ip] and e.node_name == pod.node_name
        assert e.ready and e.serving and not e.terminating
        assert e.zone == st.node(pod.node_name).zone
    (k,) = st.slices_for(st.service("kubernetes"))
    assert k.endpoints[0].addresses == ["172.18.0.2"] and k.ports[0].port == 6443


def test_given_slices_are_used_as_they_are(lab):
    (lab / "slice.yaml").write_text(
        """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: handmade, labels: {kubernetes.io/service-name: svc-fixed}}
addressType: IPv4
endpoints: [{addresses: [10.10.9.9], conditions: {ready: false, serving: true, terminating: true}}]
ports: [{name: web, port: 8080, protocol: TCP}]
"""
    )
    st = load_cluster([lab])
    (sl,) = st.slices_for(st.service("svc-fixed"))
    assert sl.name == "handmade" and sl.endpoints[0].ready is False


def test_errors_name_field_and_fix(lab):
    with pytest.raises(InputError, match=r"spec.replicas|selector"):
        (lab / "bad.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n"
            "  template: {metadata: {labels: {app: b}}, spec: {containers: [{name: c, image: i}]}}\n"
        )
        load_cluster([lab])


def test_port_range_parsing():
    assert parse_port_range("30000-32767") == (30000, 32767)
    assert parse_port_range("20000+100") == (20000, 20100)  # utilnet.PortRange: high = low + offset
    assert parse_port_range("30000") == (30000, 30000) and parse_port_range(" 30000-30100 ") == (30000, 30100)  # one port; TrimSpace
    with pytest.raises(InputError, match="--service-node-port-range"):
        parse_port_range("32767-30000")
    static, dynamic = node_port_bands((20000, 32767))
    assert len(static) == 128


@pytest.mark.parametrize("text,words", [
    ("32767-30000", "end port cannot be less than start port: 32767-30000"),  # utilnet.ParsePortRange's own errors
    ("30000-70000", "the port range cannot be greater than 65535: 30000-70000"),
    ("abc", 'strconv.Atoi: parsing "abc": invalid syntax'),
    ("30000-x", 'strconv.Atoi: parsing "x": invalid syntax'),
    ("1-2+3", "unable to parse port range: 1-2+3"),
])
def test_port_range_errors_are_the_flag_parsers(text, words):
    with pytest.raises(InputError) as e:
        parse_port_range(text)
    assert one_line(e.value).startswith("--service-node-port-range: ") and words in str(e.value) and "e.g. 30000-32767" in str(e.value)


def test_node_port_bands_refuse_a_reversed_range():
    for bad in ((32767, 30000), (30000, 70000), (0, 100)):
        with pytest.raises(InputError) as e:
            node_port_bands(bad)
        assert one_line(e.value).startswith("node_port_range: ")
    with pytest.raises(InputError, match="end port cannot be less than start port: 32767-30000"):
        band_of(30001, (32767, 30000))
    assert node_port_bands("30000-30999") == (range(30000, 30031), range(30031, 31000))  # read as the flag is


def test_a_one_port_range_is_the_flag_parsers_single_port():
    lab = kslab.Lab(node_port_range="30000")  # the study's one NodePort Service takes it
    assert lab.cluster.config.node_port_range == (30000, 30000) and lab.cluster.service("svc-nodeport").ports[0].node_port == 30000


# ---- ClusterIP allocation by integer offsets (any size of service CIDR) ---------------------------


def _cluster_with_services(tmp_path: Path, service_subnet: str, n_services: int) -> Path:
    (tmp_path / "cluster.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        f"networking: {{serviceSubnet: {service_subnet}}}\nnodes: [{{role: control-plane}}]\n"
    )
    (tmp_path / "services.yaml").write_text("---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{ports: [{{port: 80}}]}}\n" for i in range(n_services)
    ))
    return tmp_path


@pytest.mark.parametrize("cidr", ["10.96.0.0/12", "10.64.0.0/11", "10.0.0.0/8", "0.0.0.0/1", "fd00::/64"])
def test_large_service_cidrs_allocate_at_once(tmp_path, cidr, monkeypatch):
    # allocation works on integer offsets: it never lists the range's hosts (a /12 took seconds,
    # a /11 ended in IndexError)
    def enumerated(self):
        raise AssertionError(f"{self}: every host of the service CIDR enumerated")

    monkeypatch.setattr(ipaddress._BaseNetwork, "hosts", enumerated)
    monkeypatch.setattr(ipaddress._BaseNetwork, "__iter__", enumerated)
    st = load_cluster([_cluster_with_services(tmp_path, cidr, 20)], seed=3)
    net = ipaddress.ip_network(cidr)
    ips = [ipaddress.ip_address(s.cluster_ip) for s in st.services]
    assert ips[0] == net.network_address + 1  # default/kubernetes takes the first host
    assert len(set(ips)) == len(ips) == 21
    upper_band_start = net.network_address + 1 + 256  # the static band of a large range is 256 addresses
    assert all(upper_band_start <= ip < net.broadcast_address for ip in ips[1:])


@pytest.mark.parametrize("cidr, hosts", [
    ("10.96.0.7/32", ["10.96.0.7"]),
    ("10.96.0.6/31", ["10.96.0.6", "10.96.0.7"]),
    ("10.96.0.0/30", ["10.96.0.1", "10.96.0.2"]),
    ("10.96.0.0/29", [f"10.96.0.{i}" for i in range(1, 7)]),
])
def test_small_service_cidrs_fill_every_host_then_say_full(tmp_path, cidr, hosts):
    st = load_cluster([_cluster_with_services(tmp_path, cidr, len(hosts) - 1)])
    assert sorted(s.cluster_ip for s in st.services) == sorted(hosts)  # net.hosts(): no network/broadcast
    with pytest.raises(InputError, match=rf"spec.clusterIP: the service CIDR {cidr} is full; use a larger serviceSubnet"):
        load_cluster([_cluster_with_services(tmp_path, cidr, len(hosts))])


@pytest.mark.parametrize("ip", ["10.200.1.0", "10.200.1.255", "10.200.2.1"])
def test_explicit_cluster_ip_outside_the_hosts_is_refused(lab, ip):
    (lab / "extra.yaml").write_text(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}\n")
    with pytest.raises(InputError, match=rf"spec.clusterIP: {ip} is not in the service CIDR 10.200.1.0/24"):
        load_cluster([lab])


def test_explicit_cluster_ip_at_the_edges_of_a_large_cidr(tmp_path):
    lab = _cluster_with_services(tmp_path, "10.0.0.0/8", 0)
    (lab / "edge.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: last}\nspec: {clusterIP: 10.255.255.254, ports: [{port: 80}]}\n")
    assert load_cluster([lab]).service("last").cluster_ip == "10.255.255.254"


def test_bad_service_subnet_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"networking.serviceSubnet: '10.96.0.0/33' is not a CIDR; write it like 10.96.0.0/16"):
        load_cluster([_cluster_with_services(tmp_path, "10.96.0.0/33", 1)])


# ---- the API server's nodePort errors, the range and its bands ------------------------------------


SVC_NODEPORT_40000 = """\
apiVersion: v1
kind: Service
metadata: {name: svc-nodeport}
spec:
  type: NodePort
  selector: {app: deploy-websrv}
  ports: [{name: svc-webport, port: 9000, targetPort: 8080, nodePort: 40000}]
"""
API_OUT_OF_RANGE = ('The Service "svc-nodeport" is invalid: spec.ports[0].nodePort: Invalid value: 40000: '
                    "provided port is not in the valid range. The range of valid ports is 30000-32767")


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


def _service(name: str, ports: str, type_: str = "NodePort", extra: str = "") -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {type_}\n  selector: {{app: echo}}\n  ports: {ports}\n{extra}"


def test_node_port_outside_the_range_is_the_api_servers_422(tmp_path):
    # pkg/registry/core/service/portallocator ErrNotInRange, reported by the REST storage's
    # initNodePorts as field.Invalid(spec.ports[i].nodePort, ...) in a 422; kubectl prints this line
    (tmp_path / "svc.yaml").write_text(SVC_NODEPORT_40000)
    lab = kslab.Lab()
    before = (_copy_services(lab), [p.name for p in lab.cluster.pods], lab.control.rng.getstate())
    with pytest.raises(AdmissionError) as e:
        lab.apply(tmp_path / "svc.yaml")  # an update of the study's svc-nodeport: refused, nothing changed
    assert one_line(e.value) == API_OUT_OF_RANGE
    assert (_copy_services(lab), [p.name for p in lab.cluster.pods], lab.control.rng.getstate()) == before
    # and a later change draws the same allocations as in a lab that never saw the refusal
    fresh = kslab.Lab()
    for x in (lab, fresh):
        x.scale("deploy-echo", 5)
    assert [p.name for p in lab.cluster.pods] == [p.name for p in fresh.cluster.pods]


def _copy_services(lab):
    return [(s.name, s.cluster_ip, [p.node_port for p in s.ports], s.health_check_node_port) for s in lab.cluster.services]


def test_the_index_names_the_port_that_is_refused(lab):
    (lab / "two.yaml").write_text(_service("svc-two", "[{name: a, port: 80, nodePort: 30010}, {name: b, port: 81, nodePort: 40000}]"))
    with pytest.raises(AdmissionError) as e:
        load_cluster([lab])
    assert one_line(e.value) == ('The Service "svc-two" is invalid: spec.ports[1].nodePort: Invalid value: 40000: '
                                 "provided port is not in the valid range. The range of valid ports is 30000-32767")


def test_a_taken_node_port_is_already_allocated(lab):
    # svc-fixed holds 30001 (WORKLOAD); zz-: read after workload.yaml
    (lab / "zz-taken.yaml").write_text(_service("svc-taken", "[{name: a, port: 80, nodePort: 30002}, {name: b, port: 81, nodePort: 30001}]"))
    with pytest.raises(AdmissionError) as e:
        load_cluster([lab])
    assert one_line(e.value) == 'The Service "svc-taken" is invalid: spec.ports[1].nodePort: Invalid value: 30001: provided port is already allocated'


def test_duplicate_node_ports_per_protocol(lab):
    (lab / "dup.yaml").write_text(_service("svc-dup", "[{name: a, port: 80, nodePort: 30020}, {name: b, port: 81, nodePort: 30020}]"))
    with pytest.raises(AdmissionError) as e:
        load_cluster([lab])
    assert one_line(e.value) == 'The Service "svc-dup" is invalid: spec.ports[1].nodePort: Duplicate value: 30020'
    # the same nodePort for TCP and UDP is one allocation (ValidateService keys on (protocol, nodePort))
    (lab / "dup.yaml").write_text(_service("svc-dup", "[{name: a, port: 53, nodePort: 30020}, {name: b, port: 53, protocol: UDP, nodePort: 30020}]"))
    st = load_cluster([lab])
    assert [p.node_port for p in st.service("svc-dup").ports] == [30020, 30020]


def test_a_requested_health_check_node_port_out_of_range_is_an_internal_error(lab):
    # allocHealthCheckNodePort's failure goes back as errors.NewInternalError (not a field error)
    (lab / "lb.yaml").write_text(_service("svc-lb", "[{port: 80}]", "LoadBalancer", "  externalTrafficPolicy: Local\n  healthCheckNodePort: 40000\n"))
    with pytest.raises(AdmissionError) as e:
        load_cluster([lab])
    assert one_line(e.value) == ("Internal error occurred: failed to allocate requested HealthCheck NodePort 40000: "
                                 "provided port is not in the valid range. The range of valid ports is 30000-32767")


def test_a_full_range_is_the_api_servers_internal_error(lab):
    (lab / "many.yaml").write_text("---\n".join(_service(f"s{i}", "[{port: 80}]") for i in range(3)))
    with pytest.raises(AdmissionError) as e:
        load_cluster([lab], node_port_range="30000-30002")  # svc-nodeport, svc-fixed (30001) and s0 take all three
    assert one_line(e.value) == "Internal error occurred: failed to allocate a nodePort: range is full"


def test_band_of():
    assert [band_of(p, (30000, 32767)) for p in (30000, 30085, 30086, 32767)] == ["static", "static", "dynamic", "dynamic"]
    assert [band_of(p, (30000, 30100)) for p in (30015, 30016, 30100)] == ["static", "dynamic", "dynamic"]
    assert band_of(30005, (30000, 30010)) == "dynamic"  # 11 ports: too small to split, all dynamic
    with pytest.raises(InputError) as e:
        band_of(40000, (30000, 32767))
    assert one_line(e.value) == "port: 40000 is not in the NodePort range 30000-32767; give a port from 30000 to 32767"


def test_lab_with_a_node_port_range_allocates_in_its_bands():
    lab = kslab.Lab(node_port_range="30000-30100")
    static, dynamic = node_port_bands(lab.cluster.config.node_port_range)
    assert (static.start, static.stop - 1, dynamic.start, dynamic.stop - 1) == (30000, 30015, 30016, 30100)
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    assert band_of(np_, (30000, 30100)) == "dynamic"
    assert [(u.service, u.field, u.band) for u in node_port_uses(lab.cluster)] == [("default/svc-nodeport", "spec.ports[0].nodePort", "dynamic")]
    lab.apply(study_lab() / "loadbalancer")  # nodePort and healthCheckNodePort, both from the dynamic band
    assert all(30016 <= p <= 30100 for p in (lab.cluster.service("svc-lb").ports[0].node_port, lab.cluster.service("svc-lb").health_check_node_port))
    with pytest.raises(AdmissionError, match=r"The range of valid ports is 30000-30100$"):
        lab.patch_service("svc-lb", ports=[kslab.model.ServicePort(port=9000, name="svc-webport", target_port=8080, node_port=30200)])
    lab.reset()  # the range the lab was made with
    assert lab.cluster.config.node_port_range == (30000, 30100) and lab.cluster.service("svc-nodeport").ports[0].node_port == np_


@pytest.mark.parametrize("bad", ["30100-30000", "abc", "0-100", "30000-70000", "", "30000+40000"])
def test_bad_node_port_ranges_are_one_line(bad):
    with pytest.raises(InputError) as e:
        kslab.Lab(node_port_range=bad)
    assert one_line(e.value).startswith("node_port_range: ")
    assert "30000-32767" in str(e.value)  # the fix shows the form
    lab = kslab.Lab()
    with pytest.raises(InputError) as e:
        lab.set_node_port_range(bad)
    assert one_line(e.value).startswith("node_port_range: ") and lab.cluster.config.node_port_range == (30000, 32767)


def test_set_node_port_range_keeps_existing_ports_and_checks_new_ones(tmp_path):
    """As kube-apiserver restarted with a narrower --service-node-port-range: Services keep their
    ports (the repair controller's PortOutOfRange warning), new requests are checked."""
    lab = kslab.Lab()
    lab.apply(study_lab() / "loadbalancer")
    held = _copy_services(lab)
    rules = lab.render("myk8s-worker").restore_text()
    uses = lab.set_node_port_range("30000-30100")
    assert {u.band for u in uses} == {"outside"} and len(uses) == 3  # svc-nodeport, svc-lb's nodePort and HCNP
    assert _copy_services(lab) == held and lab.render("myk8s-worker").restore_text() == rules
    np_ = lab.cluster.service("svc-nodeport").ports[0].node_port
    assert f"Service default/svc-nodeport: Port {np_} is not within the port range 30000-30100; please recreate service" in lab.cluster.warnings[-3]
    # an update that keeps the out-of-range port is not checked again; a new one is
    lab.patch_service("svc-nodeport", session_affinity="ClientIP")
    assert lab.cluster.service("svc-nodeport").ports[0].node_port == np_
    (tmp_path / "svc.yaml").write_text(SVC_NODEPORT_40000.replace("svc-nodeport", "svc-new").replace("40000", "30200"))
    with pytest.raises(AdmissionError) as e:
        lab.apply(tmp_path / "svc.yaml")
    assert one_line(e.value).endswith("Invalid value: 30200: provided port is not in the valid range. The range of valid ports is 30000-30100")
    (tmp_path / "svc.yaml").write_text(SVC_NODEPORT_40000.replace("svc-nodeport", "svc-new").replace(", nodePort: 40000", ""))
    lab.apply(tmp_path / "svc.yaml")
    assert band_of(lab.cluster.service("svc-new").ports[0].node_port, (30000, 30100)) == "dynamic"
    assert lab.set_node_port_range((30000, 32767))[0].band == "dynamic"


# ---- updates: the API server drops what no longer applies (dropTypeDependentFields) ----------------


def test_local_to_cluster_releases_the_health_check_node_port():
    lab = kslab.Lab()
    lab.apply(study_lab() / "loadbalancer")
    svc = lab.cluster.service("svc-lb")
    hc, np_, ip = svc.health_check_node_port, svc.ports[0].node_port, svc.cluster_ip
    assert hc and "HealthCheck NodePort:     " + str(hc) in lab.sh("myk8s-control-plane", "kubectl describe svc svc-lb")
    assert f"--dport {hc} -j ACCEPT" in lab.render("myk8s-worker").restore_text()
    lab.patch_service("svc-lb", external_traffic_policy="Cluster")
    svc = lab.cluster.service("svc-lb")
    assert svc.health_check_node_port == 0 and (svc.ports[0].node_port, svc.cluster_ip) == (np_, ip)
    assert hc not in lab.control.allocator.port_owner  # released: another Service may take it
    assert "HealthCheck NodePort" not in lab.sh("myk8s-control-plane", "kubectl describe svc svc-lb")
    assert f"--dport {hc} " not in lab.render("myk8s-worker").restore_text()
    lab.patch_service("svc-lb", external_traffic_policy="Local")  # needs one again: a new allocation
    assert lab.cluster.service("svc-lb").health_check_node_port
    lab.patch_service("svc-lb", type="ClusterIP")  # nodePorts, HCNP, ETP and the LB status go
    svc = lab.cluster.service("svc-lb")
    assert ([p.node_port for p in svc.ports], svc.health_check_node_port, svc.external_traffic_policy, svc.load_balancer_ingress) == ([0], 0, "", [])
    assert svc.cluster_ip == ip and np_ not in lab.control.allocator.port_owner


def test_a_refused_patch_changes_nothing():
    lab = kslab.Lab()
    lab.apply(study_lab() / "loadbalancer")
    before = _copy_services(lab)
    taken = lab.cluster.service("svc-nodeport").ports[0].node_port
    with pytest.raises(AdmissionError) as e:
        lab.patch_service("svc-lb", ports=[kslab.model.ServicePort(port=9000, name="svc-webport", target_port=8080, node_port=taken)])
    assert one_line(e.value) == f'The Service "svc-lb" is invalid: spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated'
    assert _copy_services(lab) == before


# ---- loadBalancerSourceRanges: ValidateService, in the API server's words -----------------------

CIDR_WORDS = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"  # validation.IsValidCIDR
FORBIDDEN_WORDS = "Forbidden: may only be used when `type` is 'LoadBalancer'"
ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


def _fw_chains(lab) -> list[str]:
    return [line for line in lab.render("myk8s-worker").restore_text().splitlines() if line.startswith(":KUBE-FW-")]


@pytest.mark.parametrize("patch,message", [
    ({"load_balancer_source_ranges": ["not-a-cidr"]},
     f'The Service "svc-lb" is invalid: spec.LoadBalancerSourceRanges[0]: Invalid value: "not-a-cidr": {CIDR_WORDS}'),
    ({"load_balancer_source_ranges": ["172.18.0.0/24", "172.18.0.100"]},  # an address is no range: /32
     f'The Service "svc-lb" is invalid: spec.LoadBalancerSourceRanges[1]: Invalid value: "172.18.0.100": {CIDR_WORDS}'),
    ({"annotations": {ANNOTATION: "10.0.0.0/8, bad"}},
     f'The Service "svc-lb" is invalid: metadata.annotations[{ANNOTATION}]: Invalid value: "bad": {CIDR_WORDS}'),
])
def test_invalid_source_ranges_are_refused_as_the_api_server_does(patch, message):
    lab = kslab.Lab()
    lab.apply(study_lab() / "loadbalancer")
    before = (_copy_services(lab), lab.cluster.service("svc-lb").load_balancer_source_ranges, lab.render("myk8s-worker").restore_text())
    with pytest.raises(AdmissionError) as e:
        lab.patch_service("svc-lb", **patch)
    assert one_line(e.value) == message
    after = (_copy_services(lab), lab.cluster.service("svc-lb").load_balancer_source_ranges, lab.render("myk8s-worker").restore_text())
    assert after == before  # nothing half-applied


def test_source_ranges_only_on_a_load_balancer():
    lab = kslab.Lab()
    with pytest.raises(AdmissionError) as e:
        lab.patch_service("svc-nodeport", load_balancer_source_ranges=["172.18.0.0/24"])
    assert one_line(e.value) == f'The Service "svc-nodeport" is invalid: spec.LoadBalancerSourceRanges: {FORBIDDEN_WORDS}'
    with pytest.raises(AdmissionError) as e:  # both errors of the field, as kubectl prints an aggregate
        lab.patch_service("svc-nodeport", load_balancer_source_ranges=["x"])
    assert one_line(e.value) == (f'The Service "svc-nodeport" is invalid: [spec.LoadBalancerSourceRanges: {FORBIDDEN_WORDS}, '
                                 f'spec.LoadBalancerSourceRanges[0]: Invalid value: "x": {CIDR_WORDS}]')
    with pytest.raises(AdmissionError) as e:
        lab.patch_service("svc-nodeport", annotations={ANNOTATION: "10.0.0.0/8"})
    assert one_line(e.value) == f'The Service "svc-nodeport" is invalid: metadata.annotations[{ANNOTATION}]: {FORBIDDEN_WORDS}'
    assert lab.cluster.service("svc-nodeport").load_balancer_source_ranges == [] and not lab.cluster.service("svc-nodeport").annotations


def test_source_ranges_given_as_a_string_are_no_list():
    lab = kslab.Lab()
    lab.apply(study_lab() / "loadbalancer")
    for bad, where in (("172.18.0.0/24", "service svc-lb: load_balancer_source_ranges"),
                       ([172], "service svc-lb: load_balancer_source_ranges[0]")):
        with pytest.raises(InputError) as e:
            lab.patch_service("svc-lb", load_balancer_source_ranges=bad)
        assert e.value.where == where and "172.18.0.0/24" in one_line(e.value)
    with pytest.raises(InputError, match="not a mapping"):
        lab.patch_service("svc-lb", selector="app=deploy-websrv")
    assert lab.cluster.service("svc-lb").load_balancer_source_ranges == [] and not _fw_chains(lab)
    lab.patch_service("svc-lb", load_balancer_source_ranges=(" 172.18.0.96/29 ",))  # space-padded: allowed; a tuple is a list
    assert lab.cluster.service("svc-lb").load_balancer_source_ranges == [" 172.18.0.96/29 "]
    assert len(_fw_chains(lab)) == 1 and "-s 172.18.0.96/29 " in lab.render("myk8s-worker").restore_text()


def test_manifest_source_ranges_are_admitted(tmp_path):
    lb = "  loadBalancerSourceRanges: [{}]\n"
    (tmp_path / "a.yaml").write_text(_service("svc-a", "[{port: 80}]", "LoadBalancer", lb.format("not-a-cidr")))
    with pytest.raises(AdmissionError) as e:
        kslab.Lab().apply(tmp_path / "a.yaml")
    assert one_line(e.value) == f'The Service "svc-a" is invalid: spec.LoadBalancerSourceRanges[0]: Invalid value: "not-a-cidr": {CIDR_WORDS}'
    (tmp_path / "a.yaml").write_text(_service("svc-a", "[{port: 80}]", "NodePort", lb.format("10.0.0.0/8")))
    with pytest.raises(AdmissionError, match="Forbidden"):
        kslab.Lab().apply(tmp_path / "a.yaml")
    (tmp_path / "a.yaml").write_text(_service("svc-a", "[{port: 80}]", "LoadBalancer", "  loadBalancerSourceRanges: 10.0.0.0/8\n"))
    with pytest.raises(InputError) as e:  # the manifest parser: a string is no list
        kslab.Lab().apply(tmp_path / "a.yaml")
    assert "spec.loadBalancerSourceRanges" in one_line(e.value) and "10.0.0.0/8" in str(e.value)


@pytest.mark.parametrize("name", ["a--b", "http-web-server-1", "-web", "8080x-"])
def test_a_target_port_name_is_validated_as_the_probes_port_name(lab, name):
    """One IsValidPortName (controlplane.is_port_name) for a Service's targetPort and a probe's
    port: at most 15 characters, no '--' (both were accepted for targetPort before)."""
    from kslab.controlplane import is_port_name
    from kslab.kubelet import ProbeSpec

    assert not is_port_name(name)
    (lab / "tp.yaml").write_text(_service("svc-tp", f"[{{name: a, port: 80, targetPort: {name}}}]", type_="ClusterIP"))
    with pytest.raises(AdmissionError, match=r"spec\.ports\[0\]\.targetPort: .* is neither a number nor a port name"):
        load_cluster([lab])
    with pytest.raises(InputError, match=r"readinessProbe\.httpGet\.port: .* is not a valid port name"):
        ProbeSpec.from_container({"name": "c", "readinessProbe": {"httpGet": {"port": name}}}, "spec.containers[0]")
    assert is_port_name("http") and is_port_name("web-8080")


def test_scale_past_the_nodes_max_pods_leaves_pods_pending_and_changes_nothing_else():
    """kubelet maxPods (110) bounds what the scheduler puts on a node: a Deployment scaled past
    the workers' room gets Pending pods without IPs (no endpoints), not an error half-way
    (the podCIDR /24 would run out at 254); scaling back removes the Pending ones first."""
    from collections import Counter

    from kslab.controlplane import MAX_PODS_PER_NODE

    lab = kslab.Lab()
    lab.scale("deploy-echo", 400)
    pods = [p for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]
    per_node = Counter(p.node_name for p in lab.cluster.pods if p.pod_ip and p.node_name != "myk8s-control-plane")
    assert len(pods) == 400 and set(per_node.values()) == {MAX_PODS_PER_NODE}
    pending = [p for p in pods if not p.pod_ip]
    assert pending and all(p.phase == "Pending" for p in pending)
    assert sum(len(s.endpoints) for s in lab.cluster.endpoint_slices if s.service_name == "svc-nodeport") == 400 - len(pending)
    assert "Too many pods" in lab.cluster.warnings[-1]
    lab.scale("deploy-echo", 3)
    assert all(p.pod_ip for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
