"""Issue 13's acceptance command, through the CLI as a learner types it:
``kslab sh -f DIR myk8s-control-plane -- kubectl get endpointslices -o json`` prints each slice
with its endpoints' conditions and ``hints.forZones`` as upstream's EndpointSlice controller sets
them for the Nodes (zone label, status.allocatable.cpu), Pods (nodeName, podIP, Ready condition)
and Service in DIR; a Service whose hints are disabled shows upstream's Warning event in
``kubectl get events`` and ``kubectl describe svc``."""

from __future__ import annotations

import json

import pytest
import yaml

from kslab import cli

ZONES = {"myk8s-worker": "a", "myk8s-worker2": "b", "myk8s-worker3": "c"}


def objects(*, annotation: tuple[str, str] | None = ("service.kubernetes.io/topology-mode", "Auto"),
            pods_per_zone: int | dict[str, int] = 2, not_ready: tuple[str, ...] = (), cpu: dict[str, str | None] | None = None) -> list[dict]:
    cpu = cpu or {}
    docs: list[dict] = []
    for i, name in enumerate(["myk8s-control-plane", *ZONES]):
        labels = {"kubernetes.io/hostname": name}
        if name in ZONES:
            labels["topology.kubernetes.io/zone"] = ZONES[name]
        else:
            labels["node-role.kubernetes.io/control-plane"] = ""
        status: dict = {"addresses": [{"type": "InternalIP", "address": f"172.18.0.{i + 2}"}],
                        "conditions": [{"type": "Ready", "status": "True"}]}
        if cpu.get(name, "4") is not None:
            status["allocatable"] = {"cpu": cpu.get(name, "4")}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                "spec": {"podCIDR": f"10.244.{i}.0/24"}, "status": status}
        if name not in ZONES:
            node["spec"]["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        docs.append(node)
    for n, (node, zone) in enumerate(ZONES.items(), start=1):
        for j in range(pods_per_zone if isinstance(pods_per_zone, int) else pods_per_zone[zone]):
            name = f"web-{zone}{j}"
            ready = "False" if name in not_ready else "True"
            docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
                         "spec": {"nodeName": node, "containers": [{"name": "web", "image": "traefik/whoami",
                                                                    "ports": [{"containerPort": 80}]}]},
                         "status": {"phase": "Running", "podIP": f"10.244.{n}.{10 + j}",
                                    "conditions": [{"type": "Ready", "status": ready}]}})
    md: dict = {"name": "web"}
    if annotation:
        md["annotations"] = {annotation[0]: annotation[1]}
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": md,
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}})
    return docs


@pytest.fixture
def sh(tmp_path, capsys):
    """``kslab sh -f DIR myk8s-control-plane -- kubectl ARGS`` for DIR holding ``docs``: its stdout."""

    def call(docs: list[dict], *kubectl_args: str) -> str:
        d = tmp_path / "objects"
        d.mkdir(exist_ok=True)
        (d / "all.yaml").write_text(yaml.safe_dump_all(docs))
        code = cli.main(["sh", "-f", str(d), "myk8s-control-plane", "--", "kubectl", *kubectl_args])
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, err
        return out

    return call


def web_endpoints(out: str) -> dict[str, dict]:
    """The web Service's endpoints from ``get endpointslices -o json``, by Pod name."""
    items = json.loads(out)["items"]
    return {e["targetRef"]["name"]: e for s in items if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
            for e in s["endpoints"]}


@pytest.mark.parametrize("annotation", [("service.kubernetes.io/topology-mode", "Auto"),
                                        ("service.kubernetes.io/topology-aware-hints", "auto")])
def test_hints_for_zones_from_node_objects(sh, annotation):
    """Three zones of equal CPU, two ready endpoints each: every endpoint is hinted for its own
    zone (upstream TestAddHints "2 endpoints per zone, 3 zones, equal CPU"-like), with the new
    annotation and the old one the study shows; a third, not-ready endpoint in zone c gets no hint
    and is ready=false, serving=false (it does not count in the allocation: 6 ready endpoints)."""
    docs = objects(annotation=annotation, pods_per_zone={"a": 2, "b": 2, "c": 3}, not_ready=("web-c2",))
    eps = web_endpoints(sh(docs, "get", "endpointslices", "-o", "json"))
    assert sorted(eps) == ["web-a0", "web-a1", "web-b0", "web-b1", "web-c0", "web-c1", "web-c2"]
    for name, e in eps.items():
        zone = name[4]
        assert e["zone"] == zone and e["nodeName"] == {v: k for k, v in ZONES.items()}[zone]
        if name == "web-c2":
            assert e["conditions"] == {"ready": False, "serving": False, "terminating": False}
            assert "hints" not in e
        else:
            assert e["conditions"] == {"ready": True, "serving": True, "terminating": False}
            assert e["hints"] == {"forZones": [{"name": zone}]}


def test_no_annotation_no_hints(sh):
    eps = web_endpoints(sh(objects(annotation=None), "get", "endpointslices", "-o", "json"))
    assert len(eps) == 6 and not any("hints" in e for e in eps.values())
    assert "TopologyAwareHints" not in sh(objects(annotation=None), "get", "events")


@pytest.mark.parametrize("docs,message", [
    # 5 ready endpoints, 3 equal zones: each zone's minimum is ceil(5/3 / 1.2) = 2, 6 > 5
    (objects(not_ready=("web-c1",)), "Unable to allocate minimum required endpoints to each zone without exceeding "
                                     "overload threshold (5 endpoints, 3 zones), addressType: IPv4"),
    (objects(pods_per_zone=1, not_ready=("web-c0",)),
     "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4"),
    (objects(cpu={"myk8s-worker3": None}),
     "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4"),
])
def test_disabled_hints_show_the_warning_event(sh, docs, message):
    """Hints disabled (upstream event.go messages): no endpoint has hints; ``get events`` and
    ``describe svc`` show the TopologyAwareHintsDisabled Warning for service/web."""
    eps = web_endpoints(sh(docs, "get", "endpointslices", "-o", "json"))
    assert eps and not any("hints" in e for e in eps.values())
    events = sh(docs, "get", "events")
    assert any(line.split()[1:4] == ["Warning", "TopologyAwareHintsDisabled", "service/web"] and line.endswith(message)
               for line in events.splitlines()), events
    describe = sh(docs, "describe", "svc", "web")
    assert "Annotations:              service.kubernetes.io/topology-mode: Auto" in describe
    assert f"Warning  TopologyAwareHintsDisabled" in describe and message in describe


def test_sh_f_takes_one_path_so_where_follows_it(tmp_path, capsys):
    """``-f DIR WHERE -- CMD``: -f takes one path (as kubectl's does), WHERE is not read as a second path."""
    d = tmp_path / "objects"
    d.mkdir()
    (d / "all.yaml").write_text(yaml.safe_dump_all(objects()))
    assert cli.main(["sh", "-f", str(d), "myk8s-worker", "--", "hostname"]) == 0
    assert capsys.readouterr().out.strip() == "myk8s-worker"
