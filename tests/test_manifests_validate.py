"""Every manifest in data/ validates strictly against the pinned Kubernetes minor, so the same
files work with ``kubectl apply`` on a real kind cluster; kind configs are checked field by field.
data/node-dumps/ is not a manifest folder: it holds what real clusters' API servers printed
(``kubectl get -o yaml``, recorded for ``kslab verify`` and the capstone), as they printed it."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kslab.errors import InputError
from kslab.manifests import Document, load_documents, parse_kind_cluster, validate
from kslab.model import KIND_NODE_IMAGE, KUBERNETES_MINOR

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = DATA / "node-dumps"
DOCS = [d for d in load_documents([DATA]) if RECORDED not in Path(d.source).resolve().parents]
K8S_DOCS = [d for d in DOCS if d.kind != "Cluster"]
KIND_DOCS = [d for d in DOCS if d.kind == "Cluster"]


def test_there_is_something_to_validate():
    assert len(K8S_DOCS) >= 6 and len(KIND_DOCS) >= 1


@pytest.mark.parametrize("doc", K8S_DOCS, ids=lambda d: f"{d.source}:{d.kind}/{d.name}")
def test_manifest_validates_strict_against_pinned_minor(doc):
    used = kubernetes_validate.validate(doc.obj, KUBERNETES_MINOR, strict=True)
    assert used == KUBERNETES_MINOR  # the schema really is the pinned minor's
    validate(doc)  # and kslab's own wrapper agrees


@pytest.mark.parametrize("doc", KIND_DOCS, ids=lambda d: d.source)
def test_kind_config(doc):
    cfg, nodes, mode = parse_kind_cluster(doc)  # strict field check
    assert mode == "iptables"
    minor = KIND_NODE_IMAGE.split(":v")[1].rsplit(".", 1)[0]
    assert minor == KUBERNETES_MINOR
    for n in doc.obj["nodes"]:
        assert n["image"] == KIND_NODE_IMAGE


def test_lab_facts_match_the_study():
    cluster = next(d for d in KIND_DOCS if d.obj["name"] == "myk8s")
    cfg, nodes, _ = parse_kind_cluster(cluster)
    assert (cfg.pod_subnet, cfg.service_subnet) == ("10.10.0.0/16", "10.200.1.0/24")
    assert [n.role for n in nodes] == ["control-plane", "worker", "worker", "worker"]
    assert all("topology.kubernetes.io/zone" in n.labels for n in nodes)
    by_name = {d.name: d.obj for d in K8S_DOCS}
    assert [by_name[f"webpod{i}"]["spec"]["nodeName"] for i in (1, 2, 3)] == ["myk8s-worker", "myk8s-worker2", "myk8s-worker3"]
    assert by_name["net-pod"]["spec"]["nodeName"] == "myk8s-control-plane"
    assert by_name["svc-clusterip"]["spec"]["ports"] == [{"name": "svc-webport", "port": 9000, "targetPort": 80, "protocol": "TCP"}]
    assert by_name["svc-nodeport"]["spec"]["type"] == "NodePort"
    assert by_name["deploy-echo"]["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"sessionAfinity": "ClientIP"}, "sessionAfinity"),
        ({"ports": [{"port": "eighty"}]}, "spec.ports[0].port"),
        ({"loadBalancerSourceRanges": "172.18.0.0/24"}, "spec.loadBalancerSourceRanges"),  # a string, not a list
    ],
)
def test_broken_manifests_are_rejected(patch, field):
    obj = yaml.safe_load((DATA / "myk8s" / "clusterip" / "svc-clusterip.yaml").read_text())
    obj["spec"].update(patch)
    with pytest.raises(InputError) as e:
        validate(Document("broken.yaml", obj))
    assert field in str(e.value) and "\n" not in str(e.value)


def test_a_source_range_string_is_no_list_for_the_parser_either():
    from kslab.manifests import parse_service

    obj = yaml.safe_load((DATA / "myk8s" / "clusterip" / "svc-clusterip.yaml").read_text())
    obj["spec"]["loadBalancerSourceRanges"] = "172.18.0.0/24"
    with pytest.raises(InputError) as e:
        parse_service(Document("broken.yaml", obj))
    assert "spec.loadBalancerSourceRanges" in str(e.value) and "not a list" in str(e.value) and "\n" not in str(e.value)


def test_kind_config_typo_is_rejected():
    obj = yaml.safe_load((DATA / "myk8s" / "kind-cluster.yaml").read_text())
    obj["networking"]["podSubnett"] = "10.10.0.0/16"
    with pytest.raises(InputError, match="podSubnett"):
        parse_kind_cluster(Document("kind.yaml", obj))
