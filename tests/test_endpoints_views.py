"""``kubectl get endpoints`` vs ``get endpointslices`` through ``lab.sh`` for a not-ready and a
terminating pod, as kubectl 1.33 prints them: the legacy Endpoints object lists a not-ready pod
under notReadyAddresses and drops a terminating one (no publishNotReadyAddresses), the slice keeps
both with their conditions; kubectl's deprecation warning for v1 Endpoints goes to stderr."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from kslab import resources
from kslab.kubectl import ENDPOINTS_WARNING
from kslab.lab import Lab

WEB = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          terminationGracePeriodSeconds: 30
          containers:
          - name: web
            image: traefik/whoami
            ports: [{containerPort: 80}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{port: 80, targetPort: 80}]
    """)


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "web.yaml").write_text(WEB)
    with Lab([resources.study_lab(), tmp_path], backend="sim") as lab_:
        yield lab_


def test_not_ready_and_terminating_pods_in_endpoints_and_slices(lab):
    gone, not_ready, ok = sorted(lab.pods("app=web"))
    lab.set_ready(not_ready, False)
    lab.delete_pod(gone)  # grace 30 s: Terminating until then
    (new,) = set(lab.pods("app=web")) - {gone, not_ready, ok}  # the ReplicaSet's replacement (no probe: ready)
    ip = {p.name: p.pod_ip for p in lab.cluster.pods}
    out = lab.sh("myk8s-control-plane", "kubectl get endpoints web")
    assert out.stderr == ENDPOINTS_WARNING + "\n"
    # ready addresses only, as kubectl's printer formats them
    assert set(out.splitlines()[1].split()[1].split(",")) == {f"{ip[ok]}:80", f"{ip[new]}:80"}
    ep = yaml.safe_load(lab.sh("myk8s-control-plane", "kubectl get endpoints web -o yaml"))
    (subset,) = ep["subsets"]
    assert {a["targetRef"]["name"] for a in subset["addresses"]} == {ok, new}
    assert [a["targetRef"]["name"] for a in subset["notReadyAddresses"]] == [not_ready]  # the terminating one dropped
    sl = yaml.safe_load(lab.sh("myk8s-control-plane", "kubectl get endpointslices -l kubernetes.io/service-name=web -o yaml"))
    conditions = {e["targetRef"]["name"]: e["conditions"] for s in sl["items"] for e in s["endpoints"]}
    assert conditions[ok] == {"ready": True, "serving": True, "terminating": False}
    assert conditions[not_ready] == {"ready": False, "serving": False, "terminating": False}
    assert conditions[gone] == {"ready": False, "serving": True, "terminating": True}
    assert lab.sh("myk8s-control-plane", "kubectl get endpointslices").stderr == ""
    lab.advance(30)  # the grace period ends: the pod and its endpoint are gone
    sl = yaml.safe_load(lab.sh("myk8s-control-plane", "kubectl get endpointslices -l kubernetes.io/service-name=web -o yaml"))
    assert gone not in {e["targetRef"]["name"] for s in sl["items"] for e in s["endpoints"]}
