"""Kubernetes YAML in, typed cluster state out.

``load_documents`` reads files and folders (multi-document YAML, ``List`` objects), with errors
that name the file, line and column. ``validate`` checks a document strictly against the pinned
Kubernetes minor (kubernetes-validate), the way ``kubectl apply`` would be refused.
``parse`` turns documents into :mod:`kslab.model` objects, keeping values exactly as written.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import InputError
from .model import (
    KIND_IP_FAMILIES,
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
    split_cidrs,
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
        md = self.obj.get("metadata")
        md = md if isinstance(md, dict) else {}
        return str(md.get("name") or self.obj.get("name") or "")

    def where(self, field_path: str = "") -> str:
        label = f"{self.kind} {self.name}".strip() or "object"
        return f"{self.source}: {label}" + (f": {field_path}" if field_path else "")


ADDON_MARKER = "ADDON.md"  # a folder holding it is an add-on (data/myk8s/loadbalancer): loaded only when named itself


def _yaml_files(path: Path) -> list[Path]:
    """The YAML files of a file or folder (recursively, in name order). A subfolder holding
    :data:`ADDON_MARKER` is an add-on of the folder above it and is skipped; naming the
    subfolder itself loads it."""
    if path.is_dir():
        addons = [m.parent for m in path.rglob(ADDON_MARKER) if m.parent != path]
        return sorted(p for p in path.rglob("*")
                      if p.suffix in (".yaml", ".yml") and p.is_file() and not any(a in p.parents for a in addons))
    return [path]


def load_documents(paths: Iterable[str | os.PathLike]) -> list[Document]:
    """Read YAML files or folders (recursively, in name order, add-on subfolders skipped: see
    :func:`_yaml_files`) into documents."""
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
            items = obj.get("items")
            if items is not None and not isinstance(items, list):
                raise InputError(f"{src}: items", f"{_short(items)} is not a list of objects",
                                 "give the List as kubectl prints it (kubectl get ... -o yaml)")
            for i, item in enumerate(items or []):
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
    if md is not None and not isinstance(md, dict):
        raise InputError(doc.where("metadata"), f"{_short(md)} is not a mapping", "give metadata: with a name")
    if not isinstance(md, dict) or not md.get("name"):
        raise InputError(doc.where("metadata.name"), "the object has no name", "add metadata.name")
    return md


def _map(v: Any, where: str, what: str = "a mapping") -> dict[str, Any]:
    """``v`` when it is a mapping (None: empty); else a one-line InputError naming ``where``."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InputError(where, f"{_short(v)} is not {what}", "give the object as the API server returns it (kubectl get ... -o yaml)")
    return v


def _list(v: Any, where: str, what: str = "a list") -> list[Any]:
    """``v`` when it is a list (None: empty); else a one-line InputError naming ``where``."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise InputError(where, f"{_short(v)} is not {what}", "give the object as the API server returns it (kubectl get ... -o yaml)")
    return v


def _maps(v: Any, where: str) -> list[dict[str, Any]]:
    """A list of mappings (``where[i]`` named when an item is not one)."""
    items = _list(v, where, "a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{where}[{i}]", f"{_short(item)} is not a mapping",
                             "give the object as the API server returns it (kubectl get ... -o yaml)")
    return items


def _strs(v: Any, where: str) -> list[str]:
    """A list of scalars, as strings."""
    items = _list(v, where, "a list")
    for i, item in enumerate(items):
        if isinstance(item, (dict, list)):
            raise InputError(f"{where}[{i}]", f"{_short(item)} is not a string", "give a list of strings")
    return [str(x) for x in items]


def _labels(v: Any, where: str) -> dict[str, str]:
    """Labels, annotations, a selector: a mapping of strings (numbers written unquoted are read as text)."""
    out = {}
    for k, x in _map(v, where).items():
        if isinstance(x, (dict, list)):
            raise InputError(f"{where}.{k}", f"{_short(x)} is not a string", "quote the value")
        out[str(k)] = "" if x is None else str(x)
    return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


PROTOCOLS = ("TCP", "UDP", "SCTP")


def _protocol(v: Any, where: str) -> str:
    if v is None or v == "":
        return "TCP"
    if v not in PROTOCOLS:
        raise InputError(where, f"{_short(v)} is not a protocol", "use TCP, UDP or SCTP")
    return str(v)


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
    spec = _map(doc.obj.get("spec"), doc.where("spec"))
    status = _map(doc.obj.get("status"), doc.where("status"))
    ports = []
    for i, p in enumerate(_list(spec.get("ports"), doc.where("spec.ports"))):
        if not isinstance(p, dict) or p.get("port") is None:
            raise InputError(doc.where(f"spec.ports[{i}].port"), "every service port needs a port", "add port: <number>")
        ports.append(
            ServicePort(
                port=_int_or(p.get("port"), doc.where(f"spec.ports[{i}].port")),
                name=str(p.get("name") or ""),
                protocol=_protocol(p.get("protocol"), doc.where(f"spec.ports[{i}].protocol")),
                target_port=p.get("targetPort"),
                node_port=_int_or(p.get("nodePort"), doc.where(f"spec.ports[{i}].nodePort")),
            )
        )
    sac_cfg = _map(spec.get("sessionAffinityConfig"), doc.where("spec.sessionAffinityConfig"))
    sac = _map(sac_cfg.get("clientIP"), doc.where("spec.sessionAffinityConfig.clientIP")).get("timeoutSeconds")
    lb = []
    lb_status = _map(status.get("loadBalancer"), doc.where("status.loadBalancer"))
    for ing in _maps(lb_status.get("ingress"), doc.where("status.loadBalancer.ingress")):
        lb.append(LoadBalancerIngress(ip=str(ing.get("ip") or ""), hostname=str(ing.get("hostname") or ""), ip_mode=ing.get("ipMode")))
    return Service(
        name=str(md["name"]),
        namespace=str(md.get("namespace") or "default"),
        type=str(spec.get("type") or "ClusterIP"),
        cluster_ip=str(spec.get("clusterIP") or ""),
        cluster_ips=_strs(spec.get("clusterIPs"), doc.where("spec.clusterIPs")),
        ports=ports,
        selector=_labels(spec["selector"], doc.where("spec.selector")) if spec.get("selector") is not None else None,
        external_ips=_strs(spec.get("externalIPs"), doc.where("spec.externalIPs")),
        load_balancer_ingress=lb,
        load_balancer_source_ranges=_strs(spec.get("loadBalancerSourceRanges"), doc.where("spec.loadBalancerSourceRanges")),
        external_traffic_policy=str(spec.get("externalTrafficPolicy") or ""),
        internal_traffic_policy=str(spec.get("internalTrafficPolicy") or ""),
        health_check_node_port=_int_or(spec.get("healthCheckNodePort"), doc.where("spec.healthCheckNodePort")),
        session_affinity=str(spec.get("sessionAffinity") or "None"),
        session_affinity_timeout=None if sac is None else _int_or(sac, doc.where("spec.sessionAffinityConfig")),
        publish_not_ready_addresses=bool(spec.get("publishNotReadyAddresses") or False),
        traffic_distribution=spec.get("trafficDistribution"),
        allocate_load_balancer_node_ports=spec.get("allocateLoadBalancerNodePorts"),
        ip_families=_strs(spec.get("ipFamilies"), doc.where("spec.ipFamilies")),
        ip_family_policy=str(spec.get("ipFamilyPolicy") or ""),
        annotations=_labels(md.get("annotations"), doc.where("metadata.annotations")),
        labels=_labels(md.get("labels"), doc.where("metadata.labels")),
        manifest=doc.obj,
    )


def parse_endpoint_slice(doc: Document) -> EndpointSlice:
    md = _meta(doc)
    labels = _labels(md.get("labels"), doc.where("metadata.labels"))
    svc_name = labels.get(LABEL_SERVICE_NAME, "")
    ports = []
    for i, p in enumerate(_maps(doc.obj.get("ports"), doc.where("ports"))):
        port = p.get("port")
        ports.append(EndpointPort(port=None if port is None else _int_or(port, doc.where(f"ports[{i}].port")),
                                  name=str(p.get("name") or ""),
                                  protocol=_protocol(p.get("protocol"), doc.where(f"ports[{i}].protocol"))))
    eps = []
    for i, e in enumerate(_maps(doc.obj.get("endpoints"), doc.where("endpoints"))):
        at = f"endpoints[{i}]"
        cond = _map(e.get("conditions"), doc.where(f"{at}.conditions"))
        hints = _map(e.get("hints"), doc.where(f"{at}.hints"))
        ref = _map(e.get("targetRef"), doc.where(f"{at}.targetRef"))
        zones = [str(z.get("name")) for z in _maps(hints.get("forZones"), doc.where(f"{at}.hints.forZones"))]
        nodes = [str(n.get("name")) for n in _maps(hints.get("forNodes"), doc.where(f"{at}.hints.forNodes"))]
        eps.append(
            Endpoint(
                addresses=_strs(e.get("addresses"), doc.where(f"{at}.addresses")),
                ready=cond.get("ready"),
                serving=cond.get("serving"),
                terminating=cond.get("terminating"),
                node_name=e.get("nodeName"),
                zone=e.get("zone"),
                hints_for_zones=zones or None,
                hints_for_nodes=nodes or None,
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


def containers_from_spec(spec: dict[str, Any], where: str = "spec") -> list[Container]:
    out = []
    for i, c in enumerate(_maps(spec.get("containers"), f"{where}.containers")):
        at = f"{where}.containers[{i}]"
        ports = []
        for j, p in enumerate(_maps(c.get("ports"), f"{at}.ports")):
            if p.get("containerPort") is not None:
                ports.append(ContainerPort(_int_or(p["containerPort"], f"{at}.ports[{j}].containerPort"),
                                           str(p.get("name") or ""), str(p.get("protocol") or "TCP")))
        out.append(
            Container(
                name=str(c.get("name") or ""),
                image=str(c.get("image") or ""),
                ports=ports,
                readiness_probe=c.get("readinessProbe"),
            )
        )
    return out


def pod_from_template(name: str, namespace: str, meta: dict[str, Any], spec: dict[str, Any], manifest=None,
                      where: str = "") -> Pod:
    at = f"{where}: " if where else ""
    meta = _map(meta, f"{at}metadata")
    spec = _map(spec, f"{at}spec")
    return Pod(
        name=name,
        namespace=namespace,
        labels=_labels(meta.get("labels"), f"{at}metadata.labels"),
        node_name=str(spec.get("nodeName") or ""),
        node_selector=_labels(spec.get("nodeSelector"), f"{at}spec.nodeSelector"),
        tolerations=list(_list(spec.get("tolerations"), f"{at}spec.tolerations")),
        containers=containers_from_spec(spec, f"{at}spec"),
        manifest=manifest,
    )


def parse_pod(doc: Document) -> Pod:
    md = _meta(doc)
    spec = _map(doc.obj.get("spec"), doc.where("spec"))
    pod = pod_from_template(str(md["name"]), str(md.get("namespace") or "default"), md, spec, doc.obj, where=doc.where())
    status = _map(doc.obj.get("status"), doc.where("status"))
    if status:  # a recorded pod: keep what the cluster said
        pod.pod_ip = str(status.get("podIP") or "")
        # status.podIPs: podIP first, then (dual-stack) the other family's
        pod_ips = [str(a.get("ip") or "") for a in _maps(status.get("podIPs"), doc.where("status.podIPs")) if a.get("ip")]
        pod.pod_ips = [pod.pod_ip, *pod_ips] if pod.pod_ip else pod_ips
        pod.phase = str(status.get("phase") or "Pending")
        pod.ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in _maps(status.get("conditions"), doc.where("status.conditions")))
    pod.terminating = bool(md.get("deletionTimestamp"))
    return pod


def parse_deployment(doc: Document) -> Deployment:
    md = _meta(doc)
    spec = _map(doc.obj.get("spec"), doc.where("spec"))
    sel = _map(_map(spec.get("selector"), doc.where("spec.selector")).get("matchLabels"), doc.where("spec.selector.matchLabels"))
    return Deployment(
        name=str(md["name"]),
        namespace=str(md.get("namespace") or "default"),
        replicas=_int_or(spec.get("replicas", 1), doc.where("spec.replicas")),
        selector=dict(sel),
        template=dict(_map(spec.get("template"), doc.where("spec.template"))),
        manifest=doc.obj,
    )


def parse_node(doc: Document) -> Node:
    md = _meta(doc)
    spec = _map(doc.obj.get("spec"), doc.where("spec"))
    status = _map(doc.obj.get("status"), doc.where("status"))
    from .proxy.util import parse_ip_sloppy

    ips = [str(a.get("address") or "") for a in _maps(status.get("addresses"), doc.where("status.addresses"))
           if a.get("type") == "InternalIP" and a.get("address")]
    for i, a in enumerate(ips):
        if parse_ip_sloppy(a) is None:
            raise InputError(doc.where(f"status.addresses (InternalIP {i + 1})"), f"{a!r} is not an IP address",
                             "write it like 172.18.0.2 or fc00:f853:ccd:e793::2")
    # spec.podCIDR is spec.podCIDRs[0]; podCIDRs holds one range per family on a dual-stack node
    pod_cidrs = [c for c in (str(spec.get("podCIDR") or ""), *_strs(spec.get("podCIDRs"), doc.where("spec.podCIDRs"))) if c]
    return Node(
        name=str(md["name"]),
        internal_ip=ips[0] if ips else "",
        extra_ips=tuple(dict.fromkeys(ips[1:])),
        pod_cidr=pod_cidrs[0] if pod_cidrs else "",
        extra_pod_cidrs=tuple(dict.fromkeys(pod_cidrs[1:])),
        labels=_labels(md.get("labels"), doc.where("metadata.labels")),
        taints=list(_list(spec.get("taints"), doc.where("spec.taints"))),
        # a recorded node: its Ready condition (a manifest without status is ready)
        ready=all(c.get("status") == "True" for c in _maps(status.get("conditions"), doc.where("status.conditions"))
                  if c.get("type") == "Ready"),
        # what the topology cache weighs zones by (0 = not given: it then disables hints)
        allocatable_cpu=parse_cpu(_map(status.get("allocatable"), doc.where("status.allocatable")).get("cpu"),
                                  doc.where("status.allocatable.cpu")),
    )


_CPU_SUFFIX = {"": 1000, "m": 1, "k": 10**6, "M": 10**9, "G": 10**12, "T": 10**15, "P": 10**18, "E": 10**21,
               "Ki": 1000 * 2**10, "Mi": 1000 * 2**20, "Gi": 1000 * 2**30, "Ti": 1000 * 2**40, "Pi": 1000 * 2**50,
               "Ei": 1000 * 2**60}
_CPU_RE = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_cpu(value: Any, where: str) -> int:
    """A CPU quantity (``"4"``, ``"3500m"``, ``"0.5"``, ``2``) in millicores, rounded up as
    ``resource.Quantity.MilliValue`` does; None -> 0 (not known)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(where, f"{value!r} is not a CPU quantity", 'write it like "4" (cores) or "3500m" (millicores)')
    m = _CPU_RE.match(str(value).strip())
    if not m or (m.group(2) and m.group(3)):
        raise InputError(where, f"{value!r} is not a CPU quantity", 'write it like "4" (cores) or "3500m" (millicores)')
    from decimal import ROUND_CEILING, Decimal

    milli = Decimal(m.group(1)) * _CPU_SUFFIX[m.group(3) or ""] * (Decimal(10) ** int(m.group(2) or 0))
    return int(milli.to_integral_value(rounding=ROUND_CEILING))


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


# kind's defaults per networking.ipFamily (pkg/apis/config/v1alpha4/default.go SetDefaultsCluster)
KIND_DEFAULT_SUBNETS = {
    "podSubnet": {"ipv4": "10.244.0.0/16", "ipv6": "fd00:10:244::/56", "dual": "10.244.0.0/16,fd00:10:244::/56"},
    "serviceSubnet": {"ipv4": "10.96.0.0/16", "ipv6": "fd00:10:96::/112", "dual": "10.96.0.0/16,fd00:10:96::/112"},
}


def check_kind_subnets(value: str, family: str, where: str, key: str = "podSubnet") -> list[str]:
    """A kind podSubnet/serviceSubnet value for ``networking.ipFamily`` ``family``, as kind's
    ``validateSubnets`` (``pkg/internal/apis/config/validate.go``) checks it, in its words:
    comma-separated CIDRs, one for single-stack, one of each family for dual; else one InputError
    naming the field. kind also refuses a single-stack CIDR of the other family ("expected IPv4
    CIDR for IPv4 family"); kslab lets it through, as it always has (an IPv6 serviceSubnet on an
    ``ipFamily: ipv4`` config gives IPv6 Services: tests/test_controlplane.py relies on it)."""
    example = KIND_DEFAULT_SUBNETS[key][family]
    cidrs = split_cidrs(value)
    nets = []
    for c in cidrs:
        try:
            nets.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            raise InputError(where, f"{c!r} is not a CIDR", f"write it like {example}") from None
    if not nets:
        raise InputError(where, "no subnets defined", f"write it like {example}")
    if family == "dual":
        if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
            raise InputError(where, "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking",
                             f"write it like {example}")
    elif len(nets) > 1:
        raise InputError(where, "only one CIDR allowed for single-stack networking",
                         f"write one CIDR, or set networking.ipFamily: dual for {value}")
    return cidrs


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
    family = str(net.get("ipFamily") or "ipv4")
    if family not in KIND_IP_FAMILIES:
        raise InputError(doc.where("networking.ipFamily"), f"{family!r} is not a kind ipFamily", "use ipv4, ipv6 or dual")
    subnets = {key: str(net.get(key) or KIND_DEFAULT_SUBNETS[key][family]) for key in KIND_DEFAULT_SUBNETS}
    for key, value in subnets.items():
        check_kind_subnets(value, family, doc.where(f"networking.{key}"), key)
    cfg = ClusterConfig(
        name=str(obj.get("name") or "kind"),
        pod_subnet=subnets["podSubnet"],
        service_subnet=subnets["serviceSubnet"],
        ip_family=family,
    )
    return cfg, nodes, str(net.get("kubeProxyMode") or "iptables")
