"""The lab's objects as the API server returns them (``kubectl get -o yaml/json`` shows these).

:mod:`kslab.model` keeps what kube-proxy and the controllers need; an API object carries more:
``metadata`` (uid, resourceVersion, creationTimestamp, generation, ownerReferences), the
defaults admission and the API server's defaulting add to a spec, and a ``status``. This module
builds those dictionaries from the model, as a kind cluster running Kubernetes
:data:`~kslab.model.KUBERNETES_MINOR` (the study's ``kindest/node`` image) would hold them:

- **Service** (v1), **EndpointSlice** (discovery.k8s.io/v1), **Pod** (v1), **Node** (v1),
  **Deployment** (apps/v1), and **Endpoints** (v1), which the endpoints controller still writes
  next to the EndpointSlices (derived here from the Service's controller-managed slices, the
  same pods the endpoints controller would see, packed as ``RepackSubsets`` packs them).
- **Time**: the control plane's clock (:attr:`ClusterState.clock`, seconds) counts from
  :data:`CLUSTER_EPOCH`; every object's creation time is the one
  :func:`kslab.controlplane.record_writes` recorded (kind's nodes at 0 s, the study's objects at
  :data:`~kslab.controlplane.MANIFESTS_APPLIED_AT`, later objects when they were made).
  ``resourceVersion`` is the etcd revision of the object's last write, ``uid`` a fixed function
  of the object's history: the same lab and the same changes print the same objects.

Not modelled, so left out rather than invented: fields the kubelet and the runtime report from
the machine (a node's capacity and allocatable beyond its CPU, images, system UUIDs; a container's imageID),
``managedFields`` (kubectl hides them), the ``endpoints.kubernetes.io/last-change-trigger-time``
annotation, events other than those kslab's controllers record (``ClusterState.events``), and the
kube-system workloads of a real cluster.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import math
import platform
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from .controlplane import SAFE_ALPHABET, pod_template_hash
from .proxy.util import ip_family
from .model import (
    KIND_NODE_IMAGE,
    ClusterState,
    Deployment,
    EndpointSlice,
    Event,
    Node,
    ObjectRecord,
    Pod,
    Service,
)

# The cluster's clock starts here (`kind create cluster` ran at this instant); a fixed date so
# that every run prints the same timestamps.
CLUSTER_EPOCH = datetime(2025, 6, 2, 9, 0, 0, tzinfo=timezone.utc)

KUBELET_VERSION = KIND_NODE_IMAGE.rsplit(":", 1)[1]  # v1.33.1
NODE_OS_IMAGE = "Debian GNU/Linux 12 (bookworm)"  # what kindest/node:v1.33.1 runs
NODE_CONTAINER_RUNTIME = "containerd://2.1.1"  # kind v0.29.0's node image for v1.33.1
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ENDPOINTS_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
LABEL_HEADLESS = "service.kubernetes.io/headless"


# ---- metadata and time ------------------------------------------------------------------------


def timestamp(seconds: float) -> str:
    """RFC 3339 time, seconds precision (as ``metav1.Time`` marshals), ``seconds`` after
    :data:`CLUSTER_EPOCH`."""
    return (CLUSTER_EPOCH + timedelta(seconds=int(seconds // 1))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _derived_uid(*parts: object) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:16], version=4))


def record_of(cluster: ClusterState, kind: str, namespace: str, name: str) -> ObjectRecord:
    """The API server's record of an object; objects the control plane never recorded (a state
    built with ``as_is``) count as created with the cluster, at revision 1."""
    rec = cluster.records.get((kind, namespace, name))
    if rec is None:
        rec = ObjectRecord(created=0.0, uid=_derived_uid(cluster.config.name, kind, namespace, name), resource_version=1)
    return rec



def _pod_ref(cluster: ClusterState, namespace: str, pod: str) -> dict[str, Any]:
    """An endpoint's ``targetRef`` to its Pod (Endpoints and EndpointSlices alike)."""
    return {"kind": "Pod", "name": pod, "namespace": namespace, "uid": record_of(cluster, "Pod", namespace, pod).uid}

def _metadata(cluster: ClusterState, kind: str, namespace: str, name: str, *, labels=None, annotations=None,
              generation: bool = False, rec: ObjectRecord | None = None) -> dict[str, Any]:
    rec = rec or record_of(cluster, kind, namespace, name)
    md: dict[str, Any] = {
        "creationTimestamp": timestamp(rec.created),
        "name": name,
        "resourceVersion": str(rec.resource_version),
        "uid": rec.uid,
    }
    if namespace:
        md["namespace"] = namespace
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    if generation:
        md["generation"] = rec.generation
    return md


def _ip_family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


# ---- Event ------------------------------------------------------------------------------------

EVENT_API_VERSION = {"Service": "v1", "Pod": "v1", "Node": "v1", "Endpoints": "v1", "Deployment": "apps/v1",
                     "EndpointSlice": "discovery.k8s.io/v1"}


def event_first_seen(ev: Event) -> float:
    return ev.at if ev.first_at is None else ev.first_at


def event_name(ev: Event) -> str:
    """client-go's recorder names an event ``<object name>.<first time in Unix nanoseconds, hex>``
    (a live cluster's event keeps the name it has)."""
    if ev.event_name:
        return ev.event_name
    nanos = int(round((CLUSTER_EPOCH.timestamp() + event_first_seen(ev)) * 1e9))
    return f"{ev.name}.{nanos:x}"


def event_object(cluster: ClusterState, ev: Event) -> dict[str, Any]:
    """A core/v1 Event as the recorder of kube-controller-manager writes it (``source.component``
    and ``reportingComponent`` = the controller, no ``eventTime``)."""
    ns = ev.namespace if ev.involved_kind != "Node" else "default"
    rec = record_of(cluster, ev.involved_kind, "" if ev.involved_kind == "Node" else ev.namespace, ev.name)
    involved: dict[str, Any] = {"apiVersion": EVENT_API_VERSION.get(ev.involved_kind, "v1"), "kind": ev.involved_kind,
                                "name": ev.name}
    if ev.involved_kind != "Node":
        involved["namespace"] = ev.namespace
    involved |= {"resourceVersion": str(rec.resource_version), "uid": rec.uid}
    name = event_name(ev)
    return {
        "apiVersion": "v1",
        "count": ev.count,
        "eventTime": None,
        "firstTimestamp": timestamp(event_first_seen(ev)),
        "involvedObject": involved,
        "kind": "Event",
        "lastTimestamp": timestamp(ev.at),
        "message": ev.message,
        "metadata": {"creationTimestamp": timestamp(event_first_seen(ev)), "name": name, "namespace": ns,
                     "resourceVersion": str(rec.resource_version), "uid": _derived_uid(cluster.config.name, "Event", ns, name)},
        "reason": ev.reason,
        "reportingComponent": ev.source,
        "reportingInstance": "",
        "source": {"component": ev.source},
        "type": ev.type,
    }


# ---- Service ----------------------------------------------------------------------------------


def service_object(cluster: ClusterState, s: Service) -> dict[str, Any]:
    given = (s.manifest or {}).get("spec") or {}
    spec: dict[str, Any] = {"type": s.type, "sessionAffinity": s.session_affinity or "None"}
    if s.type == "ExternalName":
        spec["externalName"] = given.get("externalName", "")
    else:
        ips = s.cluster_ips or ([s.cluster_ip] if s.cluster_ip else [])
        if ips:
            spec["clusterIP"] = ips[0]
            spec["clusterIPs"] = list(ips)
        spec["ipFamilies"] = list(s.ip_families) or [_ip_family(ips[0] if ips and ips[0] != "None" else "")]
        spec["ipFamilyPolicy"] = s.ip_family_policy or given.get("ipFamilyPolicy") or "SingleStack"
        spec["internalTrafficPolicy"] = s.internal_traffic_policy or "Cluster"
    ports = []
    for p in s.ports:
        port: dict[str, Any] = {"port": p.port, "protocol": p.protocol or "TCP"}
        if p.name:
            port["name"] = p.name
        if p.target_port not in (None, ""):
            port["targetPort"] = p.target_port
        if p.node_port:
            port["nodePort"] = p.node_port
        given_port = next((gp for gp in given.get("ports") or [] if gp.get("port") == p.port), {})
        if given_port.get("appProtocol"):
            port["appProtocol"] = given_port["appProtocol"]
        ports.append(port)
    if ports:
        spec["ports"] = ports
    if s.selector:
        spec["selector"] = dict(s.selector)
    if s.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s.session_affinity_timeout or 10800}}
    if s.external_ips:
        spec["externalIPs"] = list(s.external_ips)
    if s.external_traffic_policy:
        spec["externalTrafficPolicy"] = s.external_traffic_policy
    if s.health_check_node_port:
        spec["healthCheckNodePort"] = s.health_check_node_port
    if s.type == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = s.allocate_load_balancer_node_ports is not False
        for key in ("loadBalancerClass", "loadBalancerIP"):
            if given.get(key):
                spec[key] = given[key]
    if s.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = list(s.load_balancer_source_ranges)
    if s.publish_not_ready_addresses:
        spec["publishNotReadyAddresses"] = True
    if s.traffic_distribution:
        spec["trafficDistribution"] = s.traffic_distribution
    ingress = []
    for ing in s.load_balancer_ingress:
        entry: dict[str, Any] = {"ip": ing.ip} if ing.ip else {"hostname": ing.hostname}
        if ing.ip_mode:
            entry["ipMode"] = ing.ip_mode
        ingress.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cluster, "Service", s.namespace, s.name, labels=s.labels, annotations=s.annotations),
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


# ---- Endpoints (v1, deprecated in 1.33 but still written) ----------------------------------


def endpoints_for(cluster: ClusterState, s: Service) -> dict[str, Any] | None:
    """The v1 Endpoints object of Service ``s``, or None when no controller writes one (no
    selector: the user would write it; ExternalName)."""
    slices = sorted(cluster.slices_for(s), key=lambda sl: sl.name)
    if s.namespace == "default" and s.name == "kubernetes":
        # the API server's own endpoint reconciler: the control plane's address, no targetRef
        subsets = []
        for sl in slices:
            addrs = [{"ip": a} for ep in sl.endpoints for a in ep.addresses[:1]]
            ports = [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in sl.ports]
            if addrs:
                subsets.append({"addresses": addrs, "ports": ports})
        labels = {ENDPOINTS_SKIP_MIRROR: "true"}
    elif s.selector is None or s.type == "ExternalName":
        return None
    else:
        subsets = _repack_subsets(cluster, s, [sl for sl in slices if sl.managed])
        labels = dict(s.labels)
        if s.cluster_ip == "None":
            labels[LABEL_HEADLESS] = ""
    svc_rec = record_of(cluster, "Service", s.namespace, s.name)
    revs = [svc_rec.resource_version] + [record_of(cluster, "EndpointSlice", sl.namespace, sl.name).resource_version for sl in slices]
    rec = ObjectRecord(created=svc_rec.created, uid=_derived_uid("Endpoints", svc_rec.uid), resource_version=max(revs))
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _metadata(cluster, "Endpoints", s.namespace, s.name, labels=labels, rec=rec),
    }
    if truncate_endpoints(subsets):
        obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}), ENDPOINTS_OVER_CAPACITY: "truncated"}
    if subsets:
        obj["subsets"] = subsets
    return obj


ENDPOINTS_MAX_CAPACITY = 1000  # pkg/controller/endpoint: maxCapacity
ENDPOINTS_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"  # v1.EndpointsOverCapacity


def truncate_endpoints(subsets: list[dict[str, Any]]) -> bool:
    """The endpoints controller's ``truncateEndpoints``: over 1000 addresses, keep 1000, shared
    over the subsets in proportion (rounded up, the last subset gets what is left), ready ones
    first (when the ready ones alone are over, every not-ready one goes). Truncates in place;
    True when it did (the Endpoints then carry ``endpoints.kubernetes.io/over-capacity: truncated``)."""
    total_ready = sum(len(ss.get("addresses") or []) for ss in subsets)
    total_not_ready = sum(len(ss.get("notReadyAddresses") or []) for ss in subsets)
    if total_ready + total_not_ready <= ENDPOINTS_MAX_CAPACITY:
        return False
    truncate_ready = total_ready > ENDPOINTS_MAX_CAPACITY
    most = ENDPOINTS_MAX_CAPACITY if truncate_ready else ENDPOINTS_MAX_CAPACITY - total_ready
    num_total = total_ready if truncate_ready else total_not_ready
    can_be_added = most
    for ss in subsets:
        key = "addresses" if truncate_ready else "notReadyAddresses"
        in_subset = len(ss.get(key) or [])
        to_add = min(math.ceil(in_subset / num_total * most), can_be_added)
        ss[key] = (ss.get(key) or [])[:to_add]
        if truncate_ready:
            ss.pop("notReadyAddresses", None)
        can_be_added -= len(ss[key])
        if not ss[key]:
            del ss[key]  # an empty list is omitted (omitempty); the subset keeps its ports
    return True


def _repack_subsets(cluster: ClusterState, s: Service, slices: list[EndpointSlice]) -> list[dict[str, Any]]:
    """What the endpoints controller writes for these pods, packed like ``RepackSubsets``:
    one subset per set of addresses offering the same ports; addresses sorted by IP
    (``LessEndpointAddress``). Terminating pods are left out unless the Service publishes not-ready
    addresses (``shouldPodBeInEndpoints``). Upstream orders ports and subsets by a hash of the Go
    structs (``portsByHash``, ``subsetsByHash``); kslab keeps the Service's port order."""
    per_port: dict[tuple, dict[str, tuple[dict, bool]]] = {}
    for sl in slices:
        for ep in sl.endpoints:
            if ep.terminating and not s.publish_not_ready_addresses:
                continue
            ready = bool(ep.ready) or s.publish_not_ready_addresses
            addr: dict[str, Any] = {"ip": ep.addresses[0]}
            if ep.node_name:
                addr["nodeName"] = ep.node_name
            if ep.target_pod:
                addr["targetRef"] = _pod_ref(cluster, sl.namespace, ep.target_pod)
            for p in sl.ports or []:
                per_port.setdefault((p.name or "", p.port, p.protocol or "TCP"), {})[addr["ip"]] = (addr, ready)
    groups: dict[tuple, list[tuple]] = {}
    addr_sets: dict[tuple, dict[str, tuple[dict, bool]]] = {}
    for port, addrs in per_port.items():
        key = tuple(sorted((ip, ready) for ip, (_, ready) in addrs.items()))
        groups.setdefault(key, []).append(port)
        addr_sets[key] = addrs
    order = {p.name: i for i, p in enumerate(s.ports)}
    subsets = []
    for key, ports in groups.items():
        ports.sort(key=lambda p: (order.get(p[0], len(order)), p))
        addrs = addr_sets[key]
        ready = [a for ip, (a, r) in sorted(addrs.items()) if r]
        not_ready = [a for ip, (a, r) in sorted(addrs.items()) if not r]
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subset["ports"] = [
            ({"name": n} if n else {}) | {"port": num, "protocol": proto} for n, num, proto in ports
        ]
        subsets.append(subset)
    subsets.sort(key=lambda ss: (order.get(ss["ports"][0].get("name", ""), len(order)),
                                 (ss.get("addresses") or ss.get("notReadyAddresses"))[0]["ip"]))
    return subsets


# ---- EndpointSlice ------------------------------------------------------------------------------


def endpoint_slice_object(cluster: ClusterState, sl: EndpointSlice) -> dict[str, Any]:
    md = _metadata(cluster, "EndpointSlice", sl.namespace, sl.name, labels=sl.labels, generation=True)
    given_md = (sl.manifest or {}).get("metadata") or {}
    if given_md.get("annotations"):
        md["annotations"] = dict(given_md["annotations"])
    svc = next((s for s in cluster.services if s.namespace == sl.namespace and s.name == sl.service_name), None)
    if sl.managed and svc is not None and not (svc.namespace == "default" and svc.name == "kubernetes"):
        md["generateName"] = sl.name[: len(sl.name) - 5]
        md["ownerReferences"] = [{
            "apiVersion": "v1", "blockOwnerDeletion": True, "controller": True, "kind": "Service",
            "name": svc.name, "uid": record_of(cluster, "Service", svc.namespace, svc.name).uid,
        }]
    endpoints = []
    for ep in sl.endpoints:
        e: dict[str, Any] = {"addresses": list(ep.addresses)}
        cond = {k: v for k, v in (("ready", ep.ready), ("serving", ep.serving), ("terminating", ep.terminating)) if v is not None}
        e["conditions"] = cond
        hints: dict[str, Any] = {}
        if ep.hints_for_zones is not None:
            hints["forZones"] = [{"name": z} for z in ep.hints_for_zones]
        if ep.hints_for_nodes is not None:
            hints["forNodes"] = [{"name": n} for n in ep.hints_for_nodes]
        if hints:
            e["hints"] = hints
        if ep.node_name:
            e["nodeName"] = ep.node_name
        if ep.target_pod:
            e["targetRef"] = _pod_ref(cluster, sl.namespace, ep.target_pod)
        if ep.zone:
            e["zone"] = ep.zone
        endpoints.append(e)
    ports = []
    for p in sl.ports:
        port: dict[str, Any] = {}
        if p.name is not None:
            port["name"] = p.name
        if p.port is not None:
            port["port"] = p.port
        if p.protocol is not None:
            port["protocol"] = p.protocol
        ports.append(port)
    # `endpoints` and `ports` have no omitempty: an empty slice says null
    return {
        "addressType": sl.address_type,
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": endpoints or None,
        "kind": "EndpointSlice",
        "metadata": md,
        "ports": ports or None,
    }


# ---- Pod --------------------------------------------------------------------------------------


def _owner_deployment(cluster: ClusterState, pod: Pod) -> Deployment | None:
    if not pod.owner.startswith("Deployment/"):
        return None
    name = pod.owner.split("/", 1)[1]
    return next((d for d in cluster.deployments if d.name == name and d.namespace == pod.namespace), None)


def replica_set_name(dep: Deployment) -> str:
    return f"{dep.name}-{pod_template_hash(dep)}"


def _replica_set_uid(cluster: ClusterState, dep: Deployment) -> str:
    return _derived_uid("ReplicaSet", record_of(cluster, "Deployment", dep.namespace, dep.name).uid, replica_set_name(dep))


def normalized_image(image: str) -> str:
    """The image reference the kubelet reports: registry, repository and tag made explicit."""
    name, digest = (image.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if ":" not in name.rsplit("/", 1)[1] and not digest:
        name += ":latest"
    return name + ("@" + digest if digest else "")


def _pull_policy(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def _probe_defaults(probe: dict[str, Any]) -> dict[str, Any]:
    probe = dict(probe)
    for k, v in (("failureThreshold", 3), ("periodSeconds", 10), ("successThreshold", 1), ("timeoutSeconds", 1)):
        probe.setdefault(k, v)
    if "httpGet" in probe:
        probe["httpGet"] = {**probe["httpGet"], "scheme": probe["httpGet"].get("scheme", "HTTP")}
    return probe


def pod_spec_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The API server's defaulting of a PodSpec (``SetDefaults_PodSpec``, ``SetDefaults_Container``)."""
    spec = copy.deepcopy(spec)
    for c in spec.get("containers") or []:
        c.setdefault("imagePullPolicy", _pull_policy(str(c.get("image", ""))))
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in c:
                c[probe] = _probe_defaults(c[probe])
    for k, v in (("dnsPolicy", "ClusterFirst"), ("restartPolicy", "Always"), ("schedulerName", "default-scheduler"),
                 ("securityContext", {}), ("terminationGracePeriodSeconds", 30)):
        spec.setdefault(k, v)
    return spec


def _pod_source_spec(cluster: ClusterState, pod: Pod) -> dict[str, Any]:
    dep = _owner_deployment(cluster, pod)
    if dep is not None:
        h = pod.labels.get("pod-template-hash")
        rs = next((r for r in cluster.replica_sets if r.namespace == pod.namespace and r.deployment == dep.name
                   and r.template_hash == h), None)  # the template the pod was made from
        return dict(((rs.template if rs else dep.template).get("spec")) or {})
    if pod.manifest:
        return dict(pod.manifest.get("spec") or {})
    return {"containers": [
        {"name": c.name, "image": c.image,
         **({"ports": [{"containerPort": p.container_port, **({"name": p.name} if p.name else {}), "protocol": p.protocol} for p in c.ports]} if c.ports else {}),
         **({"readinessProbe": c.readiness_probe} if c.readiness_probe else {})}
        for c in pod.containers
    ]}


def pod_object(cluster: ClusterState, pod: Pod) -> dict[str, Any]:
    rec = record_of(cluster, "Pod", pod.namespace, pod.name)
    md = _metadata(cluster, "Pod", pod.namespace, pod.name, labels=pod.labels, rec=rec)
    given_md = (pod.manifest or {}).get("metadata") or {}
    if given_md.get("annotations"):
        md["annotations"] = dict(given_md["annotations"])
    dep = _owner_deployment(cluster, pod)
    if dep is not None:
        h = pod.labels.get("pod-template-hash")  # the ReplicaSet that made it (an old one during a rollout)
        rs = f"{dep.name}-{h}" if h else replica_set_name(dep)
        md["generateName"] = rs + "-"
        uid = _derived_uid("ReplicaSet", record_of(cluster, "Deployment", dep.namespace, dep.name).uid, rs)
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                  "kind": "ReplicaSet", "name": rs, "uid": uid}]
    spec = pod_spec_defaults(_pod_source_spec(cluster, pod))
    token = "kube-api-access-" + "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in hashlib.sha256(rec.uid.encode()).digest()[:5])
    if pod.terminating:
        md["deletionGracePeriodSeconds"] = spec["terminationGracePeriodSeconds"]
        # when it will be gone: deleted at + the grace period
        deleted = pod.deleted_at if pod.deleted_at is not None else cluster.clock
        md["deletionTimestamp"] = timestamp(deleted + spec["terminationGracePeriodSeconds"])
    for c in spec.get("containers") or []:
        c.setdefault("volumeMounts", []).append({"mountPath": SERVICE_ACCOUNT_MOUNT, "name": token, "readOnly": True})
    for k, v in (("enableServiceLinks", True), ("preemptionPolicy", "PreemptLowerPriority"), ("priority", 0),
                 ("serviceAccount", "default"), ("serviceAccountName", "default")):
        spec.setdefault(k, v)
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    tolerations = list(spec.get("tolerations") or [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):  # DefaultTolerationSeconds
        if not any(t.get("key") == key and t.get("effect", "NoExecute") == "NoExecute" for t in tolerations):
            tolerations.append({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300})
    spec["tolerations"] = tolerations
    spec.setdefault("volumes", []).append({"name": token, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
    ]}})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": _pod_status(cluster, pod, spec, rec)}


def _pod_status(cluster: ClusterState, pod: Pod, spec: dict[str, Any], rec: ObjectRecord) -> dict[str, Any]:
    started = timestamp(rec.created)
    status: dict[str, Any] = {"phase": pod.phase}
    names = [str(c.get("name", "")) for c in spec.get("containers") or []]
    if not pod.node_name:
        status["conditions"] = [{"lastProbeTime": None, "lastTransitionTime": started, "reason": "Unschedulable",
                                 "status": "False", "type": "PodScheduled"}]
        status["qosClass"] = _qos_class(spec)
        return status

    def cond(kind: str, ok: bool, containers: bool = False) -> dict[str, Any]:
        c: dict[str, Any] = {"lastProbeTime": None, "lastTransitionTime": started, "status": "True" if ok else "False", "type": kind}
        if containers and not ok:  # the kubelet's reason for Ready and ContainersReady
            c["reason"] = "ContainersNotReady"
            c["message"] = f"containers with unready status: [{' '.join(names)}]"
        return c

    running = pod.phase == "Running"
    status["conditions"] = [cond("PodReadyToStartContainers", running), cond("Initialized", True),
                            cond("Ready", pod.ready, True), cond("ContainersReady", pod.ready, True), cond("PodScheduled", True)]
    statuses = []
    for c in sorted(spec.get("containers") or [], key=lambda c: str(c.get("name", ""))):
        cs: dict[str, Any] = {
            "image": normalized_image(str(c.get("image", ""))),
            "lastState": {},
            "name": c.get("name", ""),
            "ready": pod.ready,
            "restartCount": 0,
            "started": running,
            "state": {"running": {"startedAt": started}} if running else {"waiting": {"reason": "ContainerCreating"}},
        }
        if running:
            cs["containerID"] = "containerd://" + hashlib.sha256(f"{rec.uid}/{c.get('name')}".encode()).hexdigest()
        statuses.append(cs)
    status["containerStatuses"] = statuses
    node = next((n for n in cluster.nodes if n.name == pod.node_name), None)
    if node is not None and node.internal_ip:
        status["hostIP"] = node.internal_ip
        # the kubelet's node IPs, one per family of the pod's IPs (dual-stack: both)
        pod_families = {ip_family(a) for a in pod.pod_ips} or {ip_family(node.internal_ip)}
        status["hostIPs"] = [{"ip": ip} for f in (4, 6) for ip in node.ips_of(f)[:1] if f in pod_families]
        status["hostIPs"].sort(key=lambda h: h["ip"] != node.internal_ip)
    if pod.pod_ip:
        status["podIP"] = pod.pod_ip
        status["podIPs"] = [{"ip": ip} for ip in pod.pod_ips]
    status["qosClass"] = _qos_class(spec)
    status["startTime"] = started
    return status


def _qos_class(spec: dict[str, Any]) -> str:
    """``GetPodQOS``: BestEffort without requests or limits, Guaranteed when every container
    limits cpu and memory to its requests, Burstable otherwise."""
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits = r.get("limits") or {}
        requests = r.get("requests") or limits  # requests default to the limits
        if not all(k in limits and str(requests.get(k)) == str(limits[k]) for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


# ---- Node -------------------------------------------------------------------------------------


def node_object(cluster: ClusterState, n: Node) -> dict[str, Any]:
    rec = record_of(cluster, "Node", "", n.name)
    md = _metadata(cluster, "Node", "", n.name, labels=n.labels, rec=rec, annotations={
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    })
    spec: dict[str, Any] = {"providerID": f"kind://docker/{cluster.config.name}/{n.name}"}
    if n.pod_cidr:
        spec["podCIDR"] = n.pod_cidr
        spec["podCIDRs"] = list(n.pod_cidrs)
    if n.taints:
        spec["taints"] = [dict(t) for t in n.taints]
    since = timestamp(rec.created)

    def cond(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return {"lastHeartbeatTime": timestamp(cluster.clock), "lastTransitionTime": since, "message": message,
                "reason": reason, "status": "True" if ok else "False", "type": kind}

    conditions = [
        cond("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", n.ready, "KubeletReady" if n.ready else "KubeletNotReady",
             "kubelet is posting ready status" if n.ready else "container runtime network not ready"),
    ]
    addresses = [{"address": ip, "type": "InternalIP"} for ip in n.ips] + [{"address": n.name, "type": "Hostname"}]
    status: dict[str, Any] = {"addresses": addresses}
    if n.allocatable_cpu:  # the one resource kslab models (the topology cache weighs zones by it)
        status["allocatable"] = {"cpu": cpu_quantity(n.allocatable_cpu)}
        status["capacity"] = {"cpu": cpu_quantity(n.allocatable_cpu)}
    status |= {
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": n.labels.get("kubernetes.io/arch", "amd64"),
            "containerRuntimeVersion": NODE_CONTAINER_RUNTIME,
            "kernelVersion": node_kernel_version(),
            "kubeProxyVersion": "",
            "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": n.labels.get("kubernetes.io/os", "linux"),
            "osImage": NODE_OS_IMAGE,
        },
    }
    return {"apiVersion": "v1", "kind": "Node", "metadata": md, "spec": spec, "status": status}


def cpu_quantity(milli: int) -> str:
    """Millicores as resource.Quantity prints them: ``"4"`` for 4000, ``"3500m"``."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def node_kernel_version() -> str:
    """kind's nodes are containers on this machine: they report its kernel."""
    return platform.release()


def node_roles(n: Node) -> list[str]:
    """``findNodeRoles``: ``node-role.kubernetes.io/<role>`` labels and ``kubernetes.io/role``."""
    roles = set()
    for k, v in n.labels.items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return sorted(roles)


# ---- Deployment -------------------------------------------------------------------------------


def _revision(cluster: ClusterState, dep: Deployment) -> int:
    """``deployment.kubernetes.io/revision``: the new ReplicaSet's revision (1 before any rollout)."""
    from .controlplane import new_replica_set

    rs = new_replica_set(cluster, dep)
    return rs.revision if rs else 1


def deployment_pods(cluster: ClusterState, dep: Deployment) -> list[Pod]:
    return [p for p in cluster.pods if p.owner == f"Deployment/{dep.name}" and p.namespace == dep.namespace]


def deployment_object(cluster: ClusterState, dep: Deployment) -> dict[str, Any]:
    rec = record_of(cluster, "Deployment", dep.namespace, dep.name)
    given = dep.manifest or {}
    given_md = given.get("metadata") or {}
    md = _metadata(cluster, "Deployment", dep.namespace, dep.name, labels=given_md.get("labels"), rec=rec, generation=True,
                   annotations={**(given_md.get("annotations") or {}), "deployment.kubernetes.io/revision": str(_revision(cluster, dep))})
    spec = copy.deepcopy(given.get("spec") or {})
    spec["replicas"] = dep.replicas
    spec["selector"] = {"matchLabels": dict(dep.selector)}
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("strategy", {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"})
    template = copy.deepcopy(dep.template)
    template["metadata"] = {"creationTimestamp": None, **(template.get("metadata") or {})}
    template["spec"] = pod_spec_defaults(template.get("spec") or {})
    spec["template"] = template
    pods = deployment_pods(cluster, dep)
    ready = sum(1 for p in pods if p.ready and not p.terminating)
    current = sum(1 for p in pods if not p.terminating)
    from .controlplane import new_replica_set

    new_rs = new_replica_set(cluster, dep)  # none recorded (a live cluster's): every pod is up to date
    updated = sum(1 for p in pods if not p.terminating and (new_rs is None or p.labels.get("pod-template-hash") == new_rs.template_hash))
    status: dict[str, Any] = {"observedGeneration": rec.generation}
    for key, value in (("availableReplicas", ready), ("readyReplicas", ready), ("replicas", current), ("updatedReplicas", updated)):
        if value:
            status[key] = value
    if current > ready:
        status["unavailableReplicas"] = current - ready
    from .rollout import max_unavailable as _max_unavailable, strategy_of

    max_unavailable = _max_unavailable(strategy_of(given.get("spec")), dep.replicas)  # default 25%, rounded down
    available = ready >= dep.replicas - max_unavailable
    since = timestamp(rec.created)
    status["conditions"] = [
        {"lastTransitionTime": since, "lastUpdateTime": since,
         "message": "Deployment has minimum availability." if available else "Deployment does not have minimum availability.",
         "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
         "status": "True" if available else "False", "type": "Available"},
        {"lastTransitionTime": since, "lastUpdateTime": since,
         "message": f'ReplicaSet "{replica_set_name(dep)}" has successfully progressed.',
         "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"},
    ]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md, "spec": spec, "status": status}
