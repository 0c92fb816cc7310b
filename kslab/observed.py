"""A cluster as the API server reports it: live (or saved) objects in, :class:`ClusterState` out.

The control-plane emulation (:mod:`kslab.controlplane`) *makes* a cluster from manifests: it
allocates ClusterIPs and nodePorts, schedules pods and runs the EndpointSlice controller. A live
cluster has done all of that already, so here nothing is allocated, defaulted or admitted: the
objects are read exactly as the API server returns them (``kubectl get svc,endpointslices,nodes
-A -o yaml``, or the ``kubernetes`` client's JSON), through the same parsers manifests go
through (:func:`kslab.manifests.parse_service` and friends), and the EndpointSlices are used as
given (kube-proxy reads the slices, not the pods).

- :func:`cluster_from_objects`: Nodes, Pods, Services, EndpointSlices, Deployments (and the
  kube-proxy ConfigMap, whose ``clusterCIDR`` becomes the cluster's pod subnet) -> ClusterState.
  ``List`` objects (``kind: List`` as kubectl prints them, or ``ServiceList``... as the API
  sends them, whose items carry no kind) are unpacked; other kinds are skipped; ``endpoints:
  null``, ``managedFields``, ``status`` and unknown fields are tolerated.
- :func:`proxy_options_from_configmap`: the ``kube-system/kube-proxy`` ConfigMap (its
  ``KubeProxyConfiguration``) -> the lab's proxy options (:data:`kslab.proxy.config.FLAGS`
  names, usable as ``Lab(proxy=...)`` and ``ProxyConfig.for_node(**options)``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

import yaml

from .errors import InputError
from .manifests import (
    KNOWN_KINDS,
    Document,
    parse_deployment,
    parse_endpoint_slice,
    parse_node,
    parse_pod,
    parse_service,
)
from .model import ClusterConfig, ClusterState
from .proxy.config import DETECT_LOCAL_MODES, check_options

__all__ = ["cluster_from_objects", "cluster_from_documents", "proxy_options_from_configmap", "proxy_mode", "kube_proxy_configuration",
           "is_kube_proxy_configmap", "OBSERVED_KINDS"]

# kinds read into the cluster; every other kind (ConfigMap but kube-proxy's, Namespace, ...) is skipped
OBSERVED_KINDS = ("Node", "Pod", "Service", "EndpointSlice", "Deployment")
# what a List's kind says its items are, when the API server leaves their kind out
_LIST_ITEM_API = {"ServiceList": "v1", "PodList": "v1", "NodeList": "v1", "EndpointSliceList": "discovery.k8s.io/v1",
                  "DeploymentList": "apps/v1", "ConfigMapList": "v1"}
# KubeProxyConfiguration's data key: kubeadm and kind write config.conf, EKS's kube-proxy-config writes config
CONFIG_KEYS = ("config.conf", "config")
SUPPORTED_MODES = ("", "iptables", "nftables")  # "" is iptables on Linux


def _check_metadata(obj: dict, where: str) -> None:
    """An object's metadata, when given, is a mapping."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InputError(f"{where}: metadata", f"{meta!r:.60} is not a mapping",
                         "give objects as the API server returns them (kubectl get ... -o yaml)")


def _flatten(objects: Iterable[Any], source: str) -> list[Document]:
    docs: list[Document] = []
    for i, obj in enumerate(objects):
        where = f"{source}[{i}]"
        if not isinstance(obj, dict):
            raise InputError(where, "not an object (a mapping with kind, apiVersion, metadata)", "give API objects")
        _check_metadata(obj, where)
        kind = str(obj.get("kind") or "")
        if kind == "List" or (kind.endswith("List") and "items" in obj):
            item_kind = kind[: -len("List")] if kind != "List" else ""
            items = obj.get("items")
            if items is not None and not isinstance(items, list):
                raise InputError(f"{where}: items", f"{items!r:.60} is not a list of objects",
                                 "give the List as kubectl prints it (kubectl get ... -o yaml)")
            for j, item in enumerate(items or []):
                w = f"{where}: items[{j}]"
                if not isinstance(item, dict):
                    raise InputError(w, "not an object", "each item of a List must be a Kubernetes object")
                _check_metadata(item, w)
                if item_kind and not item.get("kind"):  # the API server's lists leave the items' kind out
                    item = {**item, "kind": item_kind, "apiVersion": item.get("apiVersion") or
                            _LIST_ITEM_API.get(kind) or obj.get("apiVersion")}
                docs.append(Document(w, item))
            continue
        docs.append(Document(where, obj))
    return docs


def is_kube_proxy_configmap(obj: dict) -> bool:
    """True for the ConfigMap kube-proxy reads: ``kube-system/kube-proxy`` (kubeadm, kind) or
    ``kube-system/kube-proxy-config`` (EKS)."""
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(md, dict):
        return False
    return (obj.get("kind") == "ConfigMap" and md.get("namespace", "kube-system") == "kube-system"
            and md.get("name") in ("kube-proxy", "kube-proxy-config"))


def cluster_from_objects(objects: list[dict], *, source: str = "objects") -> ClusterState:
    """The :class:`ClusterState` of API objects as the API server returns them (see the module
    docstring). Nothing is allocated or defaulted: a Service keeps its ``clusterIP`` and
    ``nodePort``\\ s, a Pod its ``status``, EndpointSlices are taken as given. ``source`` names
    the objects in errors (``objects.yaml``, ``context kind-myk8s``). A bad object (no name, a
    port that is not a number, an apiVersion kslab does not know for a kind it reads, the same
    object twice) is a one-line InputError naming it and the field."""
    if not isinstance(objects, (list, tuple)):
        raise InputError(source, f"expected a list of API objects, got {type(objects).__name__}", "give a list (or a kind: List)")
    return cluster_from_documents(_flatten(objects, source), source=source)


def cluster_from_documents(docs: list[Document], *, source: str = "objects") -> ClusterState:
    """:func:`cluster_from_objects` of documents read from files
    (:func:`kslab.manifests.load_documents`: errors then name the file and the item)."""
    state = ClusterState(config=ClusterConfig(name=source, pod_subnet="", service_subnet="", node_subnet=""))
    seen: dict[tuple[str, str, str], str] = {}
    proxy_cm: Document | None = None
    for d in docs:
        kind = d.kind
        if kind == "ConfigMap" and is_kube_proxy_configmap(d.obj):
            proxy_cm = d
            continue
        if kind not in OBSERVED_KINDS:
            continue  # Namespaces, Events, other ConfigMaps...: not what kube-proxy reads
        api = d.obj.get("apiVersion")
        if api not in KNOWN_KINDS[kind]:
            raise InputError(d.where("apiVersion"), f"{api!r} is not an apiVersion kslab reads for {kind}",
                             f"use {' or '.join(KNOWN_KINDS[kind])} (kubectl get ... -o yaml prints it)")
        md = d.obj.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise InputError(d.where("metadata"), f"{md!r:.60} is not a mapping",
                             "give objects as the API server returns them (kubectl get ... -o yaml)")
        if not isinstance(md, dict) or not md.get("name"):
            raise InputError(d.where("metadata.name"), "the object has no name", "give objects as the API server returns them")
        ns = "" if kind == "Node" else str(md.get("namespace") or "default")
        key = (kind, ns, str(md["name"]))
        if key in seen:
            raise InputError(d.where("metadata.name"), f"{kind} {'/'.join(key[1:]).lstrip('/')} is given twice (also {seen[key]})",
                             "give each object once")
        seen[key] = d.source
        if kind == "Node":
            state.nodes.append(parse_node(d))
        elif kind == "Pod":
            state.pods.append(parse_pod(d))
        elif kind == "Service":
            svc = parse_service(d)
            _check_allocated(d, svc)
            state.services.append(svc)
        elif kind == "EndpointSlice":
            state.endpoint_slices.append(parse_endpoint_slice(d))
        else:
            state.deployments.append(parse_deployment(d))
    if proxy_cm is not None:
        cidr = proxy_options_from_configmap(proxy_cm.obj, source=proxy_cm.source).get("cluster_cidr")
        state.config.pod_subnet = cidr or ""
    return state


def _check_allocated(d: Document, svc) -> None:
    """A Service the API server returned has its ClusterIP and nodePorts: without them the input
    is a manifest, which kube-proxy never sees (the control-plane emulation allocates those)."""
    fix = "give the objects as the API server returns them (kubectl get svc -o yaml), not manifests"
    if svc.type != "ExternalName" and not svc.cluster_ip:
        raise InputError(d.where("spec.clusterIP"), "is not set (the API server always sets it)", fix)
    if svc.type in ("NodePort", "LoadBalancer") and svc.allocate_load_balancer_node_ports is not False:
        for i, p in enumerate(svc.ports):
            if not p.node_port:
                raise InputError(d.where(f"spec.ports[{i}].nodePort"), f"is not set on a {svc.type} Service", fix)


# ---- the kube-proxy ConfigMap ----------------------------------------------------------------------


def kube_proxy_configuration(cm: dict, *, source: str = "kube-proxy ConfigMap") -> dict:
    """The ``KubeProxyConfiguration`` a ConfigMap holds (``data["config.conf"]``, or EKS's
    ``data["config"]``), parsed; a ``KubeProxyConfiguration`` object itself is returned as is."""
    if not isinstance(cm, dict):
        raise InputError(source, "not an object", "give the kube-system/kube-proxy ConfigMap")
    if cm.get("kind") == "KubeProxyConfiguration":
        return cm
    if cm.get("kind") not in (None, "ConfigMap"):
        raise InputError(f"{source}: kind", f"{cm.get('kind')!r} is not a ConfigMap",
                         "give kubectl -n kube-system get configmap kube-proxy -o yaml")
    data = cm.get("data") or {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: data", f"{data!r:.60} is not a mapping",
                         "give kube-proxy's ConfigMap (kubectl -n kube-system get configmap kube-proxy -o yaml)")
    key = next((k for k in CONFIG_KEYS if k in data), None)
    if key is None:
        raise InputError(f"{source}: data", f"has no {' or '.join(CONFIG_KEYS)} key (keys: {', '.join(data) or 'none'})",
                         "give kube-proxy's ConfigMap (kubectl -n kube-system get configmap kube-proxy -o yaml)")
    if not isinstance(data[key], str) and data[key] is not None:
        raise InputError(f"{source}: data[{key!r}]", f"{data[key]!r:.60} is not text (a KubeProxyConfiguration in YAML)",
                         "give the ConfigMap exactly as kubectl prints it")
    try:
        conf = yaml.safe_load(data[key] or "") or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{source}: data[{key!r}]{at}", f"invalid YAML ({getattr(e, 'problem', None) or e})",
                         "give the ConfigMap exactly as kubectl prints it") from None
    if not isinstance(conf, dict) or (conf.get("kind") not in (None, "KubeProxyConfiguration")):
        raise InputError(f"{source}: data[{key!r}]", "is not a KubeProxyConfiguration", "give kube-proxy's own ConfigMap")
    return conf


def proxy_mode(cm: dict, *, source: str = "kube-proxy ConfigMap") -> str:
    """kube-proxy's ``mode`` as the ConfigMap writes it (``""`` means iptables on Linux; not
    checked: :func:`proxy_options_from_configmap` checks it and returns it as option ``mode``)."""
    return str(kube_proxy_configuration(cm, source=source).get("mode") or "")


def _cidrs(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InputError(where, f"{value!r} is not a CIDR list", "write CIDRs like 10.244.0.0/16")
    out = []
    for c in items:
        c = str(c).strip()
        if c == "primary":
            out.append(c)
            continue
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise InputError(where, f"{c!r} is not a CIDR", "write it like 10.244.0.0/16") from None
        out.append(c)
    return out


def _ipv4(cidrs: list[str]) -> list[str]:
    return [c for c in cidrs if c == "primary" or ipaddress.ip_network(c, strict=False).version == 4]


def _section(conf: dict, key: str, source: str) -> dict:
    """``conf[key]``, a mapping (absent: empty); a one-line InputError naming it otherwise."""
    value = conf.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{source}: {key}", f"{value!r:.60} is not a mapping",
                         f"write {key}: as KubeProxyConfiguration does (e.g. {key}: {{}}), or leave it out")
    return value


def proxy_options_from_configmap(cm: dict, *, source: str = "kube-proxy ConfigMap") -> dict:
    """The kube-proxy options a node's kube-proxy runs with, from its ConfigMap (see
    :func:`kube_proxy_configuration`), as kslab proxy options (:data:`kslab.proxy.config.FLAGS`
    names; checked with :func:`kslab.proxy.config.check_options`, usable as ``Lab(proxy=...)``):

    ``cluster_cidr`` (``clusterCIDR``; its IPv4 CIDR when dual-stack; None when unset: no
    local-traffic detector, kube-proxy's default), ``detect_local_mode`` (``detectLocalMode``,
    default ClusterCIDR), ``bridge_interface``/``interface_name_prefix`` (``detectLocal``),
    ``masquerade_all``, ``masquerade_bit``, ``localhost_nodeports`` (``iptables.*``),
    ``nodeport_addresses`` (``nodePortAddresses``, IPv4 entries and ``primary``),
    ``conntrack_tcp_liberal`` (``conntrack.tcpBeLiberal``), ``mode`` (``"iptables"`` for
    ``mode: iptables`` or ``""``, kube-proxy's default on Linux; ``"nftables"``). A key the
    ConfigMap leaves out is kube-proxy's default. ipvs (and any other mode) is a one-line
    InputError: kslab models the iptables and nftables modes (ipvs's schedulers: :mod:`kslab.ipvs`)."""
    conf = kube_proxy_configuration(cm, source=source)
    mode = str(conf.get("mode") or "")
    if mode not in SUPPORTED_MODES:
        also = ("; its schedulers (rr, wrr, lc, sh...) are modelled in kslab.ipvs" if mode == "ipvs" else "")
        raise InputError(f"{source}: mode", f"kube-proxy runs in {mode!r} mode; kslab models the iptables and nftables "
                         f"modes only{also}",
                         "verify a node whose kube-proxy runs mode: iptables (or the default, \"\") or mode: nftables")
    ipt = _section(conf, "iptables", source)
    detect = _section(conf, "detectLocal", source)
    ct = _section(conf, "conntrack", source)
    opts: dict[str, Any] = {"mode": mode or "iptables"}
    cluster = _ipv4(_cidrs(conf.get("clusterCIDR"), f"{source}: clusterCIDR"))
    opts["cluster_cidr"] = cluster[0] if cluster else None
    mode_local = str(conf.get("detectLocalMode") or "ClusterCIDR")
    if mode_local not in DETECT_LOCAL_MODES:
        raise InputError(f"{source}: detectLocalMode", f"{mode_local!r} is not a detect-local mode",
                         "use one of: " + ", ".join(DETECT_LOCAL_MODES))
    opts["detect_local_mode"] = mode_local
    if detect.get("bridgeInterface"):
        opts["bridge_interface"] = str(detect["bridgeInterface"])
    if detect.get("interfaceNamePrefix"):
        opts["interface_name_prefix"] = str(detect["interfaceNamePrefix"])
    for key, name in (("masqueradeAll", "masquerade_all"), ("localhostNodePorts", "localhost_nodeports")):
        if ipt.get(key) is not None:
            if not isinstance(ipt[key], bool):
                raise InputError(f"{source}: iptables.{key}", f"{ipt[key]!r} is not a boolean", "write true or false")
            opts[name] = ipt[key]
    if ipt.get("masqueradeBit") is not None:
        bit = ipt["masqueradeBit"]
        if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= 31:
            raise InputError(f"{source}: iptables.masqueradeBit", f"{bit!r} is out of range", "use 0-31 (default 14)")
        opts["masquerade_bit"] = bit
    npa = conf.get("nodePortAddresses")
    if npa:
        opts["nodeport_addresses"] = tuple(_ipv4(_cidrs(npa, f"{source}: nodePortAddresses")))
    if ct.get("tcpBeLiberal") is not None:
        opts["conntrack_tcp_liberal"] = bool(ct["tcpBeLiberal"])
    check_options(opts)
    return opts
