"""Chapter 08's add-on (data/myk8s/readiness): the Super Mario Deployment with a readiness probe
behind a NodePort Service, and kslab's stand-in for its image (server kind ``mario``)."""

from __future__ import annotations

import pytest
import yaml

from kslab import resources
from kslab.lab import Lab
from kslab.netns import client as netns_client
from kslab.netns.layout import _server_for
from kslab.netns.servers import KINDS, mario_page, response_body

ADDON = resources.study_lab() / "readiness"


def test_the_addon_is_skipped_by_the_default_lab_and_applies_on_its_own():
    lab = Lab(seed=8)
    assert not any(s.name == "svc-mario" for s in lab.cluster.services)
    assert lab.apply(ADDON) == ["deployment/mario", "service/svc-mario"]
    svc = lab.cluster.service("svc-mario")
    assert svc.type == "NodePort" and 30000 <= svc.ports[0].node_port <= 32767 and svc.ports[0].port == 80
    assert len(lab.pods("app=mario")) == 3


def test_the_manifests_use_current_api_versions_and_a_readiness_probe():
    docs = [d for f in sorted(ADDON.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert {(d["apiVersion"], d["kind"]) for d in docs} == {("apps/v1", "Deployment"), ("v1", "Service")}
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "pengbai/docker-supermario"
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": 8080}
    assert deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 0  # terminating endpoints are visible


def test_mario_pods_run_the_mario_stand_in():
    lab = Lab(seed=8)
    lab.apply(ADDON)
    pod = lab.cluster.pod(lab.pods("app=mario")[0])
    assert _server_for(pod) == ("mario", (8080,))
    assert "mario" in KINDS


def test_the_mario_page_names_the_pod_and_the_client_as_whoami_does():
    body, ctype = response_body("mario", "mario-x", ["10.10.1.4"], "GET", "/", "HTTP/1.1", [], "10.10.0.2", 41234)
    assert ctype.startswith("text/html") and body.decode() == mario_page("mario-x", "10.10.0.2", 41234)
    assert b"<title>Super Mario</title>" in body
    assert netns_client.parse_answer(body.decode()) == ("mario-x", "10.10.0.2:41234")
    from kslab.kind.traffic import parse_answer

    assert parse_answer(body.decode()) == ("mario-x", "10.10.0.2")


def test_the_probed_pods_start_not_ready_and_readiness_addon_waits_for_them():
    from kslab import views
    from kslab.kubelet import ProbeSpec, ready_window

    lab = Lab(seed=8)
    lab.apply(ADDON)
    pods = lab.pods("app=mario")
    assert not any(lab.cluster.pod(p).ready for p in pods)  # readiness starts at Failure (worker.go)
    start = lab.cluster.clock
    views.readiness_addon(lab)
    mario = next(d for d in lab.cluster.deployments if d.name == "mario")
    spec = ProbeSpec.from_container(mario.template["spec"]["containers"][0], "mario")
    assert all(lab.cluster.pod(p).ready for p in pods) and lab.cluster.clock - start <= ready_window(spec)[1]
    assert views.readiness_addon(lab) is lab and lab.cluster.clock - start <= ready_window(spec)[1]  # once is enough


def test_curl_through_svc_mario_on_sim_gets_the_page_and_a_broken_pod_answers_500():
    from kslab import views

    lab = views.readiness_addon(Lab(seed=8))
    out = str(lab.sh("net-pod", "curl -s svc-mario"))
    assert "<title>Super Mario</title>" in out and "Hostname: mario-" in out
    for p in lab.pods("app=mario"):
        lab.break_pod(p)
    assert "500" in str(lab.sh("net-pod", "curl -s -o /dev/null -w '%{http_code}' svc-mario"))


@pytest.mark.parametrize("image,kind", [("mendhak/http-https-echo", "echo"), ("traefik/whoami", "whoami"),
                                        ("docker.io/pengbai/docker-supermario:latest", "mario")])
def test_server_kind_by_image(image, kind):
    from kslab.model import Container, ContainerPort, Pod

    assert _server_for(Pod(name="p", containers=[Container("c", image, [ContainerPort(8080)])]))[0] == kind
