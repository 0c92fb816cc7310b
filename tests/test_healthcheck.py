"""kslab.healthcheck against kube-proxy's service health check server.

The expected answers come from upstream (tests/data/kube-proxy/SOURCES.md): the body template
copied from ``pkg/proxy/healthcheck/service_health.go`` and formatted here as Go does
(``fmt.Sprintf``, ``lithammer/dedent``, ``strings.Trim``), the cases and header assertions of
``healthcheck_test.go`` (``TestServer``, ``tHandler``), and the count of
``EndpointsMap.LocalReadyEndpoints`` on the study's lab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kslab import healthcheck
from kslab.errors import InputError
from kslab.healthcheck import (HealthResponse, go_quote, go_time, hc_targets, local_endpoints, proxy_health,
                               proxy_healthz_body, service_health)
from kslab.lab import Lab
from kslab.model import ClusterState, Endpoint, EndpointPort, EndpointSlice, Service, ServicePort

TEMPLATE = Path(__file__).parent / "data" / "kube-proxy" / "service-health-template.txt"


def upstream_template() -> str:
    lines = TEMPLATE.read_text().split("\n")
    return "\n".join(lines[lines.index("-----BEGIN-----") + 1:lines.index("-----END-----")])


def go_dedent(text: str) -> str:
    """github.com/lithammer/dedent ``Dedent``, step by step."""
    text = re.sub(r"(?m)^[ \t]+$", "", text)
    margin = None
    for indent in re.findall(r"(?m)(^[ \t]*)(?:[^ \t\n])", text):
        if margin is None:
            margin = indent
        elif indent.startswith(margin):
            continue
        elif margin.startswith(indent):
            margin = indent
        else:
            margin = ""
            break
    if margin:
        text = re.sub("(?m)^" + re.escape(margin), "", text)
    if text[0] == "\n" and text[-1] == "\n":
        text = text[1:-1]
    return text


def upstream_body(namespace: str, name: str, count: int, healthy: bool) -> str:
    """``strings.Trim(dedent.Dedent(fmt.Sprintf(template, ns, name, count, healthy)), "\\n")`` for
    DNS-label names (for which Go's %q is JSON's quoting)."""
    args = iter([json.dumps(namespace), json.dumps(name), str(count), "true" if healthy else "false"])
    formatted = re.sub(r"%[qdv]", lambda m: next(args), upstream_template())
    return go_dedent(formatted).strip("\n")


# ---- the handler ------------------------------------------------------------------------------

def test_body_for_svc_lb_is_upstreams_bytes():
    r = service_health("default", "svc-lb", 2)
    assert r.body == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "svc-lb"\n\t},\n'
                      '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert r.body == upstream_body("default", "svc-lb", 2, True)
    assert not r.body.endswith("\n") and "  " not in r.body  # tabs, no trailing newline
    assert r.status == 200 and r.reason == "OK"


# TestServer's handler calls, in its order: (namespace, name, local endpoints, proxy healthy, status)
TEST_SERVER_CASES = [
    ("a", "b", 0, True, 503),    # a new service: 0 endpoints
    ("a", "b", 18, True, 200),   # sync an endpoint
    ("a", "b", 0, True, 503),    # sync zero endpoints
    ("a", "b", 0, True, 503),    # sync nil endpoints (count reset to 0)
    ("a", "b", 0, True, 503),    # multiple services: nsn1..3 start at 0
    ("c", "d", 0, True, 503),
    ("e", "f", 0, True, 503),
    ("a", "b", 9, True, 200),
    ("c", "d", 3, True, 200),
    ("e", "f", 7, True, 200),
    ("c", "d", 3, True, 200),    # sync new services: nsn2 left, nsn3 changed port, nsn4 added
    ("e", "f", 0, True, 503),
    ("g", "h", 0, True, 503),
    ("c", "d", 3, True, 200),
    ("e", "f", 7, True, 200),
    ("g", "h", 6, True, 200),
    ("c", "d", 0, True, 503),    # nsn2 missing from the endpoints sync
    ("e", "f", 7, True, 200),
    ("g", "h", 6, True, 200),
    ("c", "d", 0, False, 503),   # a temporarily unhealthy proxy: 503, the count kept
    ("e", "f", 7, False, 503),
    ("g", "h", 6, False, 503),
    ("c", "d", 0, True, 503),    # healthy again
    ("e", "f", 7, True, 200),
    ("g", "h", 6, True, 200),
]


@pytest.mark.parametrize("namespace,name,count,healthy,status", TEST_SERVER_CASES)
def test_upstream_test_server_cases(namespace, name, count, healthy, status):
    r = service_health(namespace, name, count, proxy_healthy=healthy)
    assert r.status == status
    # tHandler: the payload decodes to the service, the count and the proxy's health
    payload = json.loads(r.body)
    assert payload == {"service": {"namespace": namespace, "name": name}, "localEndpoints": count,
                       "serviceProxyHealthy": healthy}
    # tHandler's header assertions (one value each)
    assert [v for k, v in r.headers if k == "Content-Type"] == ["application/json"]
    assert [v for k, v in r.headers if k == "X-Content-Type-Options"] == ["nosniff"]
    assert [v for k, v in r.headers if k == "X-Load-Balancing-Endpoint-Weight"] == [str(count)]
    # and the body byte for byte
    assert r.body == upstream_body(namespace, name, count, healthy)


def test_headers_in_the_order_the_handler_sets_them():
    r = service_health("default", "svc-lb", 0)
    assert r.headers == (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
                         ("X-Load-Balancing-Endpoint-Weight", "0"))
    assert r.status == 503 and r.reason == "Service Unavailable"
    assert r.header("x-load-balancing-endpoint-weight") == "0" and r.header("Date") is None
    assert '"localEndpoints": 0' in r.body


def test_response_is_a_frozen_value():
    r = service_health("default", "svc-lb", 1)
    assert r == HealthResponse(200, r.headers, r.body)
    with pytest.raises(AttributeError):
        r.status = 503  # type: ignore[misc]


def test_negative_count_is_an_input_error():
    with pytest.raises(InputError, match="local_endpoints"):
        service_health("default", "svc-lb", -1)


@pytest.mark.parametrize("count", ["two", "2", 1.5, None, True])
def test_a_count_that_is_no_whole_number_is_one_line(count):
    with pytest.raises(InputError) as e:
        service_health("default", "svc-lb", count)
    assert e.value.where == "local_endpoints" and repr(count) in str(e.value) and "\n" not in str(e.value)


def test_proxy_health_must_be_true_or_false():
    import numpy as np

    with pytest.raises(InputError) as e:
        service_health("default", "svc-lb", 1, proxy_healthy="false")  # a string would read as True
    assert e.value.where == "proxy_healthy" and "True" in str(e.value)
    assert service_health("default", "svc-lb", np.int64(2), proxy_healthy=np.bool_(True)).status == 200


def test_go_quote_is_strconv_quote():
    # strconv.Quote's documented example (pkg.go.dev/strconv#Quote)
    assert go_quote('"Fran & Freddie\'s Diner\t☺"') == '"\\"Fran & Freddie\'s Diner\\t☺\\""'
    assert go_quote("a\\b\x00\x7f\n") == '"a\\\\b\\x00\\x7f\\n"'
    assert go_quote("svc-lb") == '"svc-lb"'


# ---- counting local endpoints on the study's lab ----------------------------------------------

LB_LOCAL = """\
apiVersion: v1
kind: Service
metadata: {name: svc-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: deploy-websrv}
  ports:
  - {name: http, port: 9000, targetPort: 8080}
  - {name: alt, port: 9001, targetPort: 8080}
status:
  loadBalancer:
    ingress: [{ip: 172.18.0.200}]
"""


@pytest.fixture()
def lb_lab(tmp_path) -> Lab:
    (tmp_path / "svc-lb.yaml").write_text(LB_LOCAL)
    lab = Lab(seed=3)
    lab.apply(tmp_path / "svc-lb.yaml")
    return lab


def ready_pods_per_node(lab: Lab, selector: dict[str, str]) -> dict[str, int]:
    """The oracle from the Pods (not the slices): ready, non-terminating selected pods per node."""
    out = {n.name: 0 for n in lab.cluster.nodes}
    for p in lab.cluster.pods:
        if all(p.labels.get(k) == v for k, v in selector.items()) and p.ready and not p.terminating and p.node_name:
            out[p.node_name] += 1
    return out


def counts(lab: Lab, name: str = "svc-lb") -> dict[str, int]:
    svc = lab.cluster.service(name)
    return {n.name: local_endpoints(lab.cluster, svc, n.name) for n in lab.cluster.nodes}


def test_study_lab_one_pod_per_worker(lb_lab):
    c = counts(lb_lab)
    # two service ports to one pod IP count once (upstream squashes by IP)
    assert c == {"myk8s-control-plane": 0, "myk8s-worker": 1, "myk8s-worker2": 1, "myk8s-worker3": 1}
    assert c == ready_pods_per_node(lb_lab, {"app": "deploy-websrv"})
    svc = lb_lab.cluster.service("svc-lb")
    assert service_health(svc.namespace, svc.name, c["myk8s-control-plane"]).status == 503
    assert service_health(svc.namespace, svc.name, c["myk8s-worker"]).status == 200


def test_count_follows_scale_readiness_and_termination(lb_lab):
    lb_lab.scale("deploy-echo", 8)
    c = counts(lb_lab)
    assert sum(c.values()) == 8 and c["myk8s-control-plane"] == 0
    assert c == ready_pods_per_node(lb_lab, {"app": "deploy-websrv"})
    assert max(c.values()) >= 2  # 8 pods on 3 workers: a node with several
    busiest = max(c, key=c.__getitem__)
    mine = [p for p in lb_lab.cluster.pods if p.node_name == busiest and p.labels.get("app") == "deploy-websrv"]

    lb_lab.set_ready(mine[0].name, False)  # not ready: not counted
    assert counts(lb_lab)[busiest] == c[busiest] - 1

    pod = lb_lab.cluster.pod(mine[1].name)  # terminating (still serving): not counted
    pod.terminating = True
    lb_lab.control.reconcile()
    eps = [e for s in lb_lab.cluster.slices_for(lb_lab.cluster.service("svc-lb")) for e in s.endpoints
           if e.addresses == [pod.pod_ip]]
    assert eps and all(e.terminating and not e.ready for e in eps)
    assert counts(lb_lab)[busiest] == c[busiest] - 2
    assert counts(lb_lab) == ready_pods_per_node(lb_lab, {"app": "deploy-websrv"})

    for p in mine:
        lb_lab.set_ready(p.name, False)
    assert counts(lb_lab)[busiest] == 0
    assert service_health("default", "svc-lb", counts(lb_lab)[busiest]).status == 503


def _state(*slices: EndpointSlice) -> tuple[ClusterState, Service]:
    svc = Service("svc-lb", type="LoadBalancer", cluster_ip="10.200.1.50", external_traffic_policy="Local",
                  health_check_node_port=31234, ports=[ServicePort(port=80, name="http")])
    return ClusterState(services=[svc], endpoint_slices=list(slices)), svc


def test_count_as_kube_proxy_reads_slices():
    a = EndpointSlice("svc-lb-a", service_name="svc-lb", ports=[EndpointPort(80, "http"), EndpointPort(443, "https")],
                      endpoints=[
                          Endpoint(["10.10.1.2"], ready=True, node_name="n1"),
                          Endpoint(["10.10.1.3"], ready=None, node_name="n1"),  # unset Ready: ready
                          Endpoint(["10.10.1.4"], ready=False, serving=True, terminating=True, node_name="n1"),
                          Endpoint(["10.10.1.5"], ready=False, node_name="n1"),
                          Endpoint(["10.10.2.2"], ready=True, node_name="n2"),
                          Endpoint(["10.10.9.9"], ready=True, node_name=None),  # no node: never local
                          Endpoint([], ready=True, node_name="n1"),  # no address: skipped
                      ])
    b = EndpointSlice("svc-lb-b", service_name="svc-lb", ports=[EndpointPort(80, "http")],
                      endpoints=[Endpoint(["10.10.1.2"], ready=True, node_name="n1")])  # the same IP again
    v6 = EndpointSlice("svc-lb-v6", service_name="svc-lb", address_type="IPv6", ports=[EndpointPort(80, "http")],
                       endpoints=[Endpoint(["fd00::5"], ready=True, node_name="n1")])  # another family
    other = EndpointSlice("other", service_name="other", ports=[EndpointPort(80, "http")],
                          endpoints=[Endpoint(["10.10.1.7"], ready=True, node_name="n1")])
    cluster, svc = _state(a, b, v6, other)
    assert local_endpoints(cluster, svc, "n1") == 2  # 10.10.1.2 (2 ports, 2 slices) and 10.10.1.3
    assert local_endpoints(cluster, svc, "n2") == 1
    assert local_endpoints(cluster, svc, "n3") == 0
    assert local_endpoints(cluster, svc, "n1", family=6) == 1
    portless = EndpointSlice("svc-lb-c", service_name="svc-lb",
                             endpoints=[Endpoint(["10.10.3.2"], ready=True, node_name="n3")])
    cluster, svc = _state(portless)
    assert local_endpoints(cluster, svc, "n3") == 0  # a slice without ports gives no endpoints


def test_ready_and_terminating_counts_as_upstream_does():
    # Upstream counts Ready only; the EndpointSlice controller never writes ready+terminating,
    # but a hand-written slice may, and kube-proxy then counts it.
    sl = EndpointSlice("svc-lb-a", service_name="svc-lb", ports=[EndpointPort(80, "http")],
                       endpoints=[Endpoint(["10.10.1.2"], ready=True, terminating=True, node_name="n1")])
    cluster, svc = _state(sl)
    assert local_endpoints(cluster, svc, "n1") == 1


# ---- which Services get a health check --------------------------------------------------------

def test_hc_targets_load_balancer_local_only(lb_lab):
    svc = lb_lab.cluster.service("svc-lb")
    assert svc.health_check_node_port > 0
    assert hc_targets(lb_lab.cluster) == {svc.health_check_node_port: svc}

    lb_lab.patch_service("svc-nodeport", external_traffic_policy="Local")  # NodePort + Local: no HC port
    assert list(hc_targets(lb_lab.cluster).values()) == [lb_lab.cluster.service("svc-lb")]

    # (the API server releases the port itself on this change; kslab's patch needs it said)
    lb_lab.patch_service("svc-lb", external_traffic_policy="Cluster", health_check_node_port=0)
    assert hc_targets(lb_lab.cluster) == {}


def test_hc_targets_skips_what_kube_proxy_skips():
    cluster, svc = _state()
    assert hc_targets(cluster) == {31234: svc}
    svc.cluster_ip = "None"  # headless: kube-proxy builds no service port
    assert hc_targets(cluster) == {}
    svc.cluster_ip, svc.type = "10.200.1.50", "NodePort"
    assert hc_targets(cluster) == {}


def test_module_cites_upstream():
    doc = healthcheck.__doc__ or ""
    for ref in ("pkg/proxy/healthcheck/service_health.go", "124526cf4904abf16a60f7cfb3404f1bfd3d8e5e",
                "pkg/proxy/healthcheck/proxy_health.go", "0645f0e50ec848af731c8f5a33b86f9e1aa39879",
                "healthcheck_test.go", "02f8803abc6620715c52992335334ea7278122b5", "LocalReadyEndpoints"):
        assert ref in doc


# --------------------------------------------------------------------------------------------
# kube-proxy's own health server (10256): pkg/proxy/healthcheck/proxy_health.go


@pytest.mark.parametrize("ns,expected", [
    (1_764_641_776_609_607_481, "2025-12-02 02:16:16.609607481 +0000 UTC"),
    (1_764_641_776_500_000_000, "2025-12-02 02:16:16.5 +0000 UTC"),
    (1_764_641_776_000_000_000, "2025-12-02 02:16:16 +0000 UTC"),
])
def test_go_time_strings(ns, expected):
    assert go_time(ns) == expected
    assert go_time(ns, 1_592_836_095) == expected + " m=+1.592836095"
    assert go_time(ns, 12_000_000_001) == expected + " m=+12.000000001"


def test_proxy_healthz_body_is_upstreams_format():
    t = "2025-12-02 02:16:16.5 +0000 UTC m=+1.000000000"
    assert proxy_healthz_body(t, t, True) == f'{{"lastUpdated": "{t}","currentTime": "{t}", "nodeEligible": true}}'


T0 = "2025-06-02 09:02:00 +0000 UTC m=+0.000000000"
T1 = "2025-06-02 09:02:02.5 +0000 UTC m=+2.500000000"
JSON_HEADERS = (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"))


def test_proxy_health_healthz_and_livez():
    """healthzHandler / livezHandler: 200 with lastUpdated = currentTime when healthy; the query
    string does not matter (ServeMux matches the path)."""
    for path in ("/healthz", "/healthz?verbose=1"):
        r = proxy_health(path, T1, T0)
        assert (r.status, r.reason, r.headers) == (200, "OK", JSON_HEADERS)
        assert r.body == f'{{"lastUpdated": "{T1}","currentTime": "{T1}", "nodeEligible": true}}' == proxy_healthz_body(T1, T1, True)
        assert json.loads(r.body) == {"lastUpdated": T1, "currentTime": T1, "nodeEligible": True}
    r = proxy_health("/livez", T1, T0)
    assert (r.status, r.headers, r.body) == (200, JSON_HEADERS, f'{{"lastUpdated": "{T1}","currentTime": "{T1}"}}')


def test_proxy_health_unhealthy_and_not_eligible():
    """An unhealthy proxy: 503 on both, lastUpdated its last sync. A node not eligible (being
    deleted, ToBeDeletedByClusterAutoscaler): /healthz 503 with nodeEligible false, /livez 200."""
    r = proxy_health("/healthz", T1, T0, proxy_healthy=False)
    assert r.status == 503 and r.reason == "Service Unavailable" and json.loads(r.body)["lastUpdated"] == T0
    assert proxy_health("/livez", T1, T0, proxy_healthy=False).body == f'{{"lastUpdated": "{T0}","currentTime": "{T1}"}}'
    r = proxy_health("/healthz", T1, T0, node_eligible=False)
    assert r.status == 503 and r.body == proxy_healthz_body(T0, T1, False)
    r = proxy_health("/livez", T1, T0, node_eligible=False)
    assert r.status == 200 and r.body == f'{{"lastUpdated": "{T1}","currentTime": "{T1}"}}'


@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz/", "/livez/x", "/HEALTHZ"])
def test_proxy_health_other_paths_get_gos_404(path):
    r = proxy_health(path, T1)
    assert (r.status, r.reason, r.body) == (404, "Not Found", "404 page not found\n")
    assert r.headers == (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))
