"""Kubernetes YAML in, typed cluster state out.

``load_documents`` reads files and folders (multi-document YAML, ``List`` objects), with errors
that name the file, line and column. ``validate`` checks a document strictly against the pinned
Kubernetes minor (kubernetes-validate), the way ``kubectl apply`` would be refused.
``parse`` turns documents into :mod:`kslab.model` objects, keeping values exactly as written.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import InputError
from .model import (
    KUBERNETES_MINOR,
    LABEL_SERVICE_NAME,
    ClusterConfig,
    ClusterState,
    Container,
    ContainerPort,
    Deployment,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    Node,
    Pod,
    Service,
    ServicePort,
)

KIND_CLUSTER_API = "kind.x-k8s.io/v1alpha4"

# kind -> accepted apiVersions
KNOWN_KINDS: dict[str, tuple[str, ...]] = {
    "Service": ("v1",),
    "Pod": ("v1",),
    "Node": ("v1",),
    "Namespace": ("v1",),
    "EndpointSlice": ("discovery.k8s.io/v1",),
    "Deployment": ("apps/v1",),
    "Cluster": (KIND_CLUSTER_API,),
}


@dataclass
class Document:
    source: str  # "path" or "path#N" for the N-th document (1-based) of a multi-document file
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        md = self.obj.get("metadata") or {}
        return str(md.get("name") or self.obj.get("name") or "")

    def where(self, field_path: str = "") -> str:
        label = f"{self.kind} {self.name}".strip() or "object"
        return f"{self.source}: {label}" + (f": {field_path}" if field_path else "")


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_documents(paths: Iterable[str | os.PathLike]) -> list[Document]:
    """Read YAML files or folders (recursively, in name order) into documents."""
    docs: list[Document] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"-f {raw}", "no such file or folder", "give a YAML file or a folder of them")
        files = _yaml_files(path)
        if path.is_dir() and not files:
            raise InputError(f"-f {raw}", "the folder holds no .yaml/.yml files", "point -f at the manifests")
        for f in files:
            docs.extend(_read_file(f))
    return docs


def _read_file(f: Path) -> list[Document]:
    try:
        text = f.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(f), f"cannot read it ({e.__class__.__name__})", "check the path and that it is UTF-8 text")
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{f}: line {mark.line + 1}, column {mark.column + 1}" if mark else str(f)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(where, f"invalid YAML ({problem})", "fix the syntax or indentation there")
    out: list[Document] = []
    n = 0
    for obj in loaded:
        if obj is None:
            continue
        n += 1
        src = f"{f}#{n}" if len([o for o in loaded if o is not None]) > 1 else str(f)
        if not isinstance(obj, dict):
            raise InputError(src, "a YAML document must be a mapping (a Kubernetes object)", "check the file")
        if obj.get("kind") == "List" or (str(obj.get("kind", "")).endswith("List") and "items" in obj):
            for i, item in enumerate(obj.get("items") or []):
                if not isinstance(item, dict):
                    raise InputError(f"{src}: items[{i}]", "not an object", "each item must be a Kubernetes object")
                out.append(Document(f"{src}: items[{i}]", item))
            continue
        out.append(Document(src, obj))
    return out


def check_kind(doc: Document) -> None:
    kind = doc.obj.get("kind")
    api = doc.obj.get("apiVersion")
    if not kind:
        raise InputError(doc.source, "the object has no 'kind'", "add kind: (Service, Pod, Deployment, EndpointSlice, Node)")
    if kind not in KNOWN_KINDS:
        known = ", ".join(k for k in KNOWN_KINDS)
        raise InputError(
            doc.where("kind"), f"kslab does not model kind {kind!r} ({api})", f"use one of: {known}"
        )
    if api not in KNOWN_KINDS[kind]:
        raise InputError(
            doc.where("apiVersion"),
            f"{api!r} is not an apiVersion kslab knows for {kind}",
            f"use {' or '.join(KNOWN_KINDS[kind])}",
        )


def _kubernetes_validate():
    """``kubernetes_validate``, imported on first use (it costs about 1.5 s).

    Most of that is jsonschema's optional ``iri`` format checker, whose import builds a Lark
    grammar for RFC 3987 (``rfc3987_syntax``, present wherever jupyter-events is). kubernetes-
    validate never checks formats (its validator has no ``format_checker``), so when jsonschema is
    not loaded yet it is loaded without that checker; nothing else in the process changes.
    """
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            import kubernetes_validate
        finally:
            if sys.modules.get("rfc3987_syntax", 0) is None:
                del sys.modules["rfc3987_syntax"]
    import kubernetes_validate

    return kubernetes_validate


def validate(doc: Document, minor: str = KUBERNETES_MINOR) -> None:
    """Strict schema validation of a Kubernetes object against the pinned minor."""
    if doc.kind == "Cluster":
        return  # a kind config, not a Kubernetes object: checked by parse_kind_cluster
    kubernetes_validate = _kubernetes_validate()
    from kubernetes_validate.utils import SchemaNotFoundError

    try:
        kubernetes_validate.validate(doc.obj, minor, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = _json_path(e.path)
        raise InputError(
            doc.where(path),
            _schema_message(e.message),
            f"fix this field (schema: Kubernetes {minor}, strict)",
        )
    except SchemaNotFoundError:
        raise InputError(doc.where("kind"), f"no Kubernetes {minor} schema for this kind/apiVersion", "check kind and apiVersion")


def _json_path(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_message(msg: str) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) < 200 else msg[:197] + "..."


# ---------------------------------------------------------------------------------------------
# documents -> model
# ---------------------------------------------------------------------------------------------


def _meta(doc: Document) -> dict[str, Any]:
    md = doc.obj.get("metadata")
    if not isinstance(md, dict) or not md.get("name"):
        raise InputError(doc.where("metadata.name"), "the object has no name", "add metadata.name")
    return md


def _int_or(v: Any, where: str) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            return int(str(v))
        except ValueError:
            raise InputError(where, f"{v!r} is not a number", "write an integer")
    return v


def parse_service(doc: Document) -> Service:
    md = _meta(doc)
    spec = doc.obj.get("spec") or {}
    status = doc.obj.get("status") or {}
    ports = []
    for i, p in enumerate(spec.get("ports") or []):
        if not isinstance(p, dict) or p.get("port") is None:
            raise InputError(doc.where(f"spec.ports[{i}].port"), "every service port needs a port", "add port: <number>")
        ports.append(
            ServicePort(
                port=_int_or(p.get("port"), doc.where(f"spec.ports[{i}].port")),
                name=str(p.get("name") or ""),
                protocol=str(p.get("protocol") or "TCP"),
                target_port=p.get("targetPort"),
                node_port=_int_or(p.get("nodePort"), doc.where(f"spec.ports[{i}].nodePort")),
            )
        )
    sac = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    lb = []
    for ing in (status.get("loadBalancer") or {}).get("ingress") or []:
        lb.append(LoadBalancerIngress(ip=str(ing.get("ip") or ""), hostname=str(ing.get("hostname") or ""), ip_mode=ing.get("ipMode")))
    return Service(
        name=str(md["name"]),
        namespace=str(md.get("namespace") or "default"),
        type=str(spec.get("type") or "ClusterIP"),
        cluster_ip=str(spec.get("clusterIP") or ""),
        cluster_ips=[str(x) for x in spec.get("clusterIPs") or []],
        ports=ports,
        selector=dict(spec["selector"]) if spec.get("selector") is not None else None,
        external_ips=[str(x) for x in spec.get("externalIPs") or []],
        load_balancer_ingress=lb,
        load_balancer_source_ranges=[str(x) for x in spec.get("loadBalancerSourceRanges") or []],
        external_traffic_policy=str(spec.get("externalTrafficPolicy") or ""),
        internal_traffic_policy=str(spec.get("internalTrafficPolicy") or ""),
        health_check_node_port=_int_or(spec.get("healthCheckNodePort"), doc.where("spec.healthCheckNodePort")),
        session_affinity=str(spec.get("sessionAffinity") or "None"),
        session_affinity_timeout=None if sac is None else _int_or(sac, doc.where("spec.sessionAffinityConfig")),
        publish_not_ready_addresses=bool(spec.get("publishNotReadyAddresses") or False),
        traffic_distribution=spec.get("trafficDistribution"),
        allocate_load_balancer_node_ports=spec.get("allocateLoadBalancerNodePorts"),
        ip_families=[str(x) for x in spec.get("ipFamilies") or []],
        annotations=dict(md.get("annotations") or {}),
        labels=dict(md.get("labels") or {}),
        manifest=doc.obj,
    )


def parse_endpoint_slice(doc: Document) -> EndpointSlice:
    md = _meta(doc)
    labels = dict(md.get("labels") or {})
    svc_name = labels.get(LABEL_SERVICE_NAME, "")
    ports = [
        EndpointPort(port=p.get("port"), name=p.get("name", ""), protocol=p.get("protocol", "TCP"))
        for p in doc.obj.get("ports") or []
    ]
    eps = []
    for e in doc.obj.get("endpoints") or []:
        cond = e.get("conditions") or {}
        hints = e.get("hints") or {}
        ref = e.get("targetRef") or {}
        eps.append(
            Endpoint(
                addresses=[str(a) for a in e.get("addresses") or []],
                ready=cond.get("ready"),
                serving=cond.get("serving"),
                terminating=cond.get("terminating"),
                node_name=e.get("nodeName"),
                zone=e.get("zone"),
                hints_for_zones=[z["name"] for z in hints.get("forZones") or []] or None,
                hints_for_nodes=[n["name"] for n in hints.get("forNodes") or []] or None,
                target_pod=ref.get("name") if ref.get("kind", "Pod") == "Pod" else None,
            )
        )
    return EndpointSlice(
        name=str(md["name"]),
        namespace=str(md.get("namespace") or "default"),
        service_name=svc_name,
        address_type=str(doc.obj.get("addressType") or "IPv4"),
        ports=ports,
        endpoints=eps,
        labels=labels,
        manifest=doc.obj,
    )


def containers_from_spec(spec: dict[str, Any]) -> list[Container]:
    out = []
    for c in spec.get("containers") or []:
        out.append(
            Container(
                name=str(c.get("name") or ""),
                image=str(c.get("image") or ""),
                ports=[
                    ContainerPort(int(p["containerPort"]), str(p.get("name") or ""), str(p.get("protocol") or "TCP"))
                    for p in c.get("ports") or []
                    if p.get("containerPort") is not None
                ],
                readiness_probe=c.get("readinessProbe"),
            )
        )
    return out


def pod_from_template(name: str, namespace: str, meta: dict[str, Any], spec: dict[str, Any], manifest=None) -> Pod:
    return Pod(
        name=name,
        namespace=namespace,
        labels=dict(meta.get("labels") or {}),
        node_name=str(spec.get("nodeName") or ""),
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=list(spec.get("tolerations") or []),
        containers=containers_from_spec(spec),
        manifest=manifest,
    )


def parse_pod(doc: Document) -> Pod:
    md = _meta(doc)
    spec = doc.obj.get("spec") or {}
    pod = pod_from_template(str(md["name"]), str(md.get("namespace") or "default"), md, spec, doc.obj)
    status = doc.obj.get("status") or {}
    if status:  # a recorded pod: keep what the cluster said
        pod.pod_ip = str(status.get("podIP") or "")
        pod.phase = str(status.get("phase") or "Pending")
        pod.ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    pod.terminating = bool(md.get("deletionTimestamp"))
    return pod


def parse_deployment(doc: Document) -> Deployment:
    md = _meta(doc)
    spec = doc.obj.get("spec") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    return Deployment(
        name=str(md["name"]),
        namespace=str(md.get("namespace") or "default"),
        replicas=_int_or(spec.get("replicas", 1), doc.where("spec.replicas")),
        selector=dict(sel),
        template=dict(spec.get("template") or {}),
        manifest=doc.obj,
    )


def parse_node(doc: Document) -> Node:
    md = _meta(doc)
    spec = doc.obj.get("spec") or {}
    status = doc.obj.get("status") or {}
    ip = ""
    for a in status.get("addresses") or []:
        if a.get("type") == "InternalIP":
            ip = str(a.get("address") or "")
            break
    return Node(
        name=str(md["name"]),
        internal_ip=ip,
        pod_cidr=str(spec.get("podCIDR") or ""),
        labels=dict(md.get("labels") or {}),
        taints=list(spec.get("taints") or []),
        # a recorded node: its Ready condition (a manifest without status is ready)
        ready=all(c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"),
    )


@dataclass
class KindNode:
    role: str
    labels: dict[str, str]


KIND_TOP_KEYS = {
    "kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
    "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
KIND_NODE_KEYS = {"role", "image", "labels", "extraPortMappings", "extraMounts", "kubeadmConfigPatches",
                  "kubeadmConfigPatchesJSON6902"}
KIND_NET_KEYS = {"ipFamily", "apiServerAddress", "apiServerPort", "podSubnet", "serviceSubnet",
                 "disableDefaultCNI", "kubeProxyMode", "dnsSearch"}


def parse_kind_cluster(doc: Document) -> tuple[ClusterConfig, list[KindNode], str]:
    """A kind ``Cluster`` config: the cluster name, subnets and nodes (roles, labels)."""
    obj = doc.obj
    for k in obj:
        if k not in KIND_TOP_KEYS:
            raise InputError(doc.where(k), f"unknown field {k!r} in a kind Cluster config", f"allowed: {', '.join(sorted(KIND_TOP_KEYS))}")
    net = obj.get("networking") or {}
    for k in net:
        if k not in KIND_NET_KEYS:
            raise InputError(doc.where(f"networking.{k}"), f"unknown networking field {k!r}", f"allowed: {', '.join(sorted(KIND_NET_KEYS))}")
    nodes = []
    for i, n in enumerate(obj.get("nodes") or [{"role": "control-plane"}]):
        for k in n:
            if k not in KIND_NODE_KEYS:
                raise InputError(doc.where(f"nodes[{i}].{k}"), f"unknown node field {k!r}", f"allowed: {', '.join(sorted(KIND_NODE_KEYS))}")
        role = n.get("role", "control-plane")
        if role not in ("control-plane", "worker"):
            raise InputError(doc.where(f"nodes[{i}].role"), f"{role!r} is not a kind node role", "use control-plane or worker")
        nodes.append(KindNode(role, {str(k): str(v) for k, v in (n.get("labels") or {}).items()}))
    for key, example in (("podSubnet", "10.244.0.0/16"), ("serviceSubnet", "10.96.0.0/16")):
        if key in net:
            try:
                ipaddress.ip_network(str(net[key]), strict=False)
            except ValueError:
                raise InputError(doc.where(f"networking.{key}"), f"{net[key]!r} is not a CIDR", f"write it like {example}") from None
    cfg = ClusterConfig(
        name=str(obj.get("name") or "kind"),
        pod_subnet=str(net.get("podSubnet") or "10.244.0.0/16"),
        service_subnet=str(net.get("serviceSubnet") or "10.96.0.0/16"),
    )
    return cfg, nodes, str(net.get("kubeProxyMode") or "iptables")
