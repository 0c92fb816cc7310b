"""Chapter 07's LoadBalancer Service on the kind backend, against the fake live cluster (tests/kindfake:
the real kubernetes client, the fake API server with its EndpointSlice controller and kube-proxies,
the fake docker): what kind really has (the healthCheckNodePort, every node's kube-proxy answering
on it, EXTERNAL-IP ``<pending>``), and the sim twin that gets the VIP kind lacks (``Lab.copy()``)."""

from __future__ import annotations

import pytest

import kslab
from kslab import healthcheck, resources
from kslab.errors import EnvironmentProblem, InputError

LB_ADDON = resources.study_lab() / "loadbalancer"
CP, W1, W2, W3 = "myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"


@pytest.fixture
def live(live_cluster):
    return live_cluster[0]


def test_svc_lb_on_kind_is_pending_but_kube_proxy_serves_its_health_check_live(live):
    with kslab.Lab(backend="kind") as lab:
        assert lab.apply(LB_ADDON) == ["service/default/svc-lb created"]
        svc = lab.cluster.service("svc-lb")
        assert svc.load_balancer_ingress == [] and 30000 <= svc.health_check_node_port <= 32767  # status dropped, HCNP allocated
        assert svc.health_check_node_port != svc.ports[0].node_port
        assert "<pending>" in lab.sh(CP, "kubectl get svc svc-lb")
        assert lab.apply(LB_ADDON) == ["service/default/svc-lb configured"]  # applied again: the status stays pending
        assert lab.cluster.service("svc-lb").load_balancer_ingress == []
        assert lab.cluster.service("svc-lb").health_check_node_port == svc.health_check_node_port
        codes = {}
        for node in lab.cluster.nodes:
            said = lab.sh("mypc", f"curl -i -s {node.internal_ip}:{svc.health_check_node_port}/healthz")
            local = 0 if node.name == CP else 1
            expected = healthcheck.service_health("default", "svc-lb", local)
            assert said.endswith(expected.body) and f"X-Load-Balancing-Endpoint-Weight: {local}" in said
            codes[node.name] = int(said.split()[1])
        assert codes == {CP: 503, W1: 200, W2: 200, W3: 200}


def test_copy_gives_the_twin_the_manifests_vip_when_the_live_status_is_pending(live):
    with kslab.Lab(backend="kind") as lab:
        lab.apply(LB_ADDON)
        twin = lab.copy()
        assert [(i.ip, i.ip_mode) for i in twin.cluster.service("svc-lb").load_balancer_ingress] == [("172.18.0.200", "VIP")]
        assert lab.cluster.service("svc-lb").load_balancer_ingress == []  # the live lab is not changed
        assert "-d 172.18.0.200/32" in twin.sh(W1, "iptables -t nat -S KUBE-SERVICES")  # the twin's kube-proxies wrote the VIP
        twin.advance(2)
        status = twin.lb_status("svc-lb")
        assert status.probes == {CP: 503, W1: 200, W2: 200, W3: 200} and set(status.healthy) == {W1, W2, W3}
        rows = twin.run("mypc", "172.18.0.200:9000", n=60, seed=1)
        assert (rows["outcome"] == "ok").all() and set(rows["ingress_node"]) <= {W1, W2, W3}
        assert twin.copy().cluster.service("svc-lb").load_balancer_ingress[0].ip == "172.18.0.200"  # a twin's twin too
        # what kind refuses stays refused on the live lab; the twin does it
        with pytest.raises(InputError, match="lab.exact"):
            lab.place("deploy-echo", {W1: 2, W2: 1})
        with pytest.raises(EnvironmentProblem, match="readiness"):
            lab.set_ready(lab.pods("app=deploy-websrv")[0], False)
        assert len(twin.place("deploy-echo", {W1: 2, W2: 1})) == 3


def test_a_status_a_controller_wrote_is_kept_and_no_vip_is_made_up(live):
    with kslab.Lab(backend="kind") as lab:
        lab.apply(LB_ADDON)
    with kslab.Lab(backend="kind") as lab:  # a new session: kslab did not apply svc-lb, so it knows no manifest status
        assert lab.copy().cluster.service("svc-lb").load_balancer_ingress == []
    obj = live.store.get("Service", "default", "svc-lb")  # cloud-provider-kind writes the status (the /status subresource)
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "172.18.0.240", "ipMode": "VIP"}]}}
    live.store.put(obj)
    with kslab.Lab(backend="kind") as lab:
        lab.apply(LB_ADDON)  # the manifest's 172.18.0.200 does not replace the controller's address
        assert lab.cluster.service("svc-lb").load_balancer_ingress[0].ip == "172.18.0.240"
        assert [i.ip for i in lab.copy().cluster.service("svc-lb").load_balancer_ingress] == ["172.18.0.240"]
