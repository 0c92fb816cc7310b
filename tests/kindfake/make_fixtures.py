"""Write the kind fixtures under tests/data/kind/ from kslab's own control-plane emulation.

    python -m tests.kindfake.make_fixtures      (from the repository root)

The study's objects (nodes, webpod1..3, net-pod, svc-clusterip, deploy-echo, svc-nodeport, the
``kubernetes`` Service) are :func:`kslab.apiobjects` of ``kslab.Lab().cluster``: the same names,
IPs, NodePorts, uids and times as the sim, so that the sim and the fixture agree. They carry the
ownership label ``kslab.io/managed-by=kslab`` (the workbook's ``lab.apply()`` made them; the
EndpointSlice controller copies a Service's labels onto its slices). Around them, what a kind
v0.29 cluster (``kindest/node:v1.33.1``) holds that the sim does not model: the kube-system
workloads (coredns, etcd, the API server, controller manager, scheduler, kindnet and
kube-proxy DaemonSets), local-path-storage, the kube-dns Service and its slice, kubeadm's
kube-proxy ConfigMap, the namespaces, the v1 Endpoints the endpoints controller still writes;
and on every object what the API server adds
(``managedFields``, ``ownerReferences``, ``status``). Written as the API server serves a list:
``{"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": ...}, "items": [...]}``.

Fixtures:
- ``myk8s``: the lab as made (``kslab.Lab()``).
- ``myk8s-echo0``: after ``lab.scale("deploy-echo", 0)``: svc-nodeport's slice has
  ``endpoints: null`` (no ready pod), as the EndpointSlice controller writes it.

``exec.json``: the outputs of commands in pods, recorded from the sim (``lab.sh``): net-pod's
``curl -s svc-clusterip:9000`` (whoami's text of the webpod that answered, in the sim's order),
``hostname``, and a curl that times out (exit 28).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kslab import Lab  # noqa: E402
from kslab import apiobjects as ao  # noqa: E402
from kslab.kind.client import MANAGED_LABEL  # noqa: E402

OUT = ROOT / "tests" / "data" / "kind"
CLUSTER = "myk8s"
CP = f"{CLUSTER}-control-plane"
NODES = [CP, f"{CLUSTER}-worker", f"{CLUSTER}-worker2", f"{CLUSTER}-worker3"]
KUBE_DNS_IP = "10.200.1.10"  # kubeadm: the 10th address of the service range
COREDNS_IPS = ["10.10.0.3", "10.10.0.4"]  # the sim gives net-pod 10.10.0.2 (it does not model kube-system)
LOCAL_PATH_IP = "10.10.0.5"
NODE_KERNEL = "6.8.0-1029-aws"  # the host kernel the fixture's kind nodes report (a cloud VM's)
SYSTEM_RV = 300  # kube-system objects' revisions start here (the study's come from the sim)

KUBE_PROXY_CONF = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.10.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
featureGates:
  InPlacePodVerticalScaling: true
  MultiCIDRServiceAllocator: true
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 1s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: iptables
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"""

KUBE_PROXY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: https://myk8s-control-plane:6443
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
"""


def uid(*parts: object) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:16], version=4))


def suffix(*parts: object, n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def fields_v1(obj: Any) -> Any:
    """A managedFields ``fieldsV1`` set for ``obj`` (every field it sets; list items by their
    ``name`` key, or ``port``/``containerPort``, or value)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out[f"f:{k}"] = fields_v1(v) if isinstance(v, (dict, list)) and v else {}
        return out
    if isinstance(obj, list):
        out = {}
        for item in obj:
            if isinstance(item, dict):
                key = next(({k: item[k]} for k in ("name", "containerPort", "port", "type", "ip", "key") if k in item), None)
                if key is not None:
                    out["k:" + json.dumps(key, separators=(",", ":"))] = {".": {}, **fields_v1(item)}
            else:
                out["v:" + json.dumps(item)] = {}
        return out
    return {}


def managed(manager: str, operation: str, api_version: str, time: str, fields: dict, subresource: str | None = None) -> dict:
    entry = {"apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": fields, "manager": manager,
             "operation": operation}
    if subresource:
        entry["subresource"] = subresource
    entry["time"] = time
    return entry


def with_managed_fields(obj: dict, manager: str, *, status_manager: str | None = None) -> dict:
    """managedFields as the API server records them: the writer of metadata+spec (or the whole
    object for a slice/ConfigMap), and the status writer (the kubelet, a controller) apart."""
    md = obj["metadata"]
    t = md.get("creationTimestamp")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")}
    meta = {k: v for k, v in md.items() if k in ("labels", "annotations", "generateName", "ownerReferences")}
    fields = fields_v1({**({"metadata": meta} if meta else {}), **body})
    entries = [managed(manager, "Update" if manager != "kubectl-client-side-apply" else "Update", obj["apiVersion"], t, fields)]
    if status_manager and obj.get("status"):
        entries.append(managed(status_manager, "Update", obj["apiVersion"], t, fields_v1({"status": obj["status"]}), "status"))
    md["managedFields"] = entries
    return obj


def label(obj: dict) -> dict:
    obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}), **MANAGED_LABEL}
    return obj


def ts(seconds: float) -> str:
    return ao.timestamp(seconds)


class Revisions:
    def __init__(self, start: int):
        self.n = start

    def __call__(self) -> str:
        self.n += 1
        return str(self.n)


# ---- kube-system, as kind creates it ------------------------------------------------------------


def node_extras(node: dict) -> dict:
    """What the kubelet reports of the machine that the sim leaves out (a kind node is a
    container on a 2-core, 24 GiB host): capacity, allocatable, images, ids, runtime handlers."""
    n = copy.deepcopy(node)
    st = n["status"]
    name = n["metadata"]["name"]
    cap = {"cpu": "2", "ephemeral-storage": "102625208Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
           "memory": "24590012Ki", "pods": "110"}
    st["capacity"] = cap
    st["allocatable"] = dict(cap)
    st["images"] = [
        {"names": ["registry.k8s.io/kube-proxy-amd64:v1.33.1", "registry.k8s.io/kube-proxy:v1.33.1"], "sizeBytes": 97850342},
        {"names": ["docker.io/kindest/kindnetd:v20250512-df8de77b"], "sizeBytes": 44375501},
        {"names": ["docker.io/kindest/local-path-provisioner:v20250214-acbabc1a"], "sizeBytes": 22541737},
        {"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368},
    ]
    info = st["nodeInfo"]
    info["kernelVersion"] = NODE_KERNEL  # recorded, not this machine's (the sim reports the host's)
    info["bootID"] = uid("boot", CLUSTER)
    info["machineID"] = hashlib.sha256(f"machine/{name}".encode()).hexdigest()[:32]
    info["systemUUID"] = uid("system", name)
    st["runtimeHandlers"] = [
        {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": "runc"},
        {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": "test-handler"},
        {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": ""},
    ]
    st["features"] = {"supplementalGroupsPolicy": True}
    st["nodeInfo"] = dict(sorted(info.items()))
    return with_managed_fields(n, "kubeadm", status_manager="kubelet")


def namespace(name: str, rv: Revisions, created: float = 0.0) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"creationTimestamp": ts(created), "labels": {"kubernetes.io/metadata.name": name},
                         "name": name, "resourceVersion": rv(), "uid": uid("Namespace", name)},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def system_pod(name: str, ns: str, node: str, ip: str, node_ip: str, containers: list[dict], rv: Revisions, *,
               owner: tuple[str, str, str] | None = None, host_network: bool = False, priority_class: str = "system-node-critical",
               labels: dict | None = None, created: float = 5.0, annotations: dict | None = None, extra_spec: dict | None = None) -> dict:
    md: dict[str, Any] = {"creationTimestamp": ts(created), "name": name, "namespace": ns, "resourceVersion": rv(),
                          "uid": uid("Pod", ns, name)}
    if annotations:
        md["annotations"] = annotations
    if owner:
        kind, oname, ouid = owner
        md["generateName"] = oname + "-"
        md["ownerReferences"] = [{"apiVersion": "apps/v1" if kind != "Node" else "v1", "blockOwnerDeletion": True,
                                  "controller": True, "kind": kind, "name": oname, "uid": ouid}]
    if labels:
        md["labels"] = labels
    spec = ao.pod_spec_defaults({"containers": containers, **(extra_spec or {})})
    spec.update({"enableServiceLinks": True, "nodeName": node, "preemptionPolicy": "PreemptLowerPriority",
                 "priority": 2000001000 if priority_class == "system-node-critical" else 2000000000,
                 "priorityClassName": priority_class})
    if host_network:
        spec["hostNetwork"] = True
    spec["tolerations"] = [{"effect": "NoExecute", "operator": "Exists"}] if not owner or owner[0] != "ReplicaSet" else [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"},
        {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
        {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}]
    started = ts(created + 10)
    status = {
        "conditions": [{"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": t}
                       for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "containerStatuses": [{
            "containerID": "containerd://" + hashlib.sha256(f"{ns}/{name}/{c['name']}".encode()).hexdigest(),
            "image": ao.normalized_image(c["image"]),
            "imageID": "sha256:" + hashlib.sha256(c["image"].encode()).hexdigest(),
            "lastState": {}, "name": c["name"], "ready": True, "restartCount": 0, "started": True,
            "state": {"running": {"startedAt": started}},
            "volumeMounts": [{"mountPath": m["mountPath"], "name": m["name"], **({"readOnly": True, "recursiveReadOnly": "Disabled"} if m.get("readOnly") else {})}
                             for m in c.get("volumeMounts") or []],
        } for c in sorted(containers, key=lambda c: c["name"])],
        "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "qosClass": ao._qos_class(spec), "startTime": ts(created + 1),
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}
    writer = "kube-controller-manager" if owner and owner[0] != "Node" else "kubelet"
    return with_managed_fields(pod, writer, status_manager="kubelet")


def kube_system(cluster, rv: Revisions) -> list[dict]:
    node_ip = {n.name: n.internal_ip for n in cluster.nodes}
    out: list[dict] = []
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system", "local-path-storage"):
        out.append(namespace(ns, rv))
    # static pods of the control plane (owned by the Node, hostNetwork)
    cp_uid = ao.record_of(cluster, "Node", "", CP).uid
    statics = [
        ("etcd", "registry.k8s.io/etcd:3.5.21-0", ["etcd", "--advertise-client-urls=https://172.18.0.2:2379"]),
        ("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.33.1", ["kube-apiserver", "--advertise-address=172.18.0.2",
                                                                      "--service-cluster-ip-range=10.200.1.0/24",
                                                                      "--runtime-config=api/all=true"]),
        ("kube-controller-manager", "registry.k8s.io/kube-controller-manager:v1.33.1",
         ["kube-controller-manager", "--allocate-node-cidrs=true", "--cluster-cidr=10.10.0.0/16",
          "--service-cluster-ip-range=10.200.1.0/24"]),
        ("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.33.1", ["kube-scheduler", "--bind-address=127.0.0.1"]),
    ]
    for comp, image, cmd in statics:
        out.append(system_pod(f"{comp}-{CP}", "kube-system", CP, node_ip[CP], node_ip[CP],
                              [{"name": comp, "image": image, "command": cmd}], rv, owner=("Node", CP, cp_uid),
                              host_network=True, labels={"component": comp, "tier": "control-plane"}, created=2.0,
                              annotations={"kubernetes.io/config.hash": hashlib.md5(comp.encode()).hexdigest(),
                                           "kubernetes.io/config.source": "file"}))
    # DaemonSets: kindnet and kube-proxy, one hostNetwork pod per node
    for ds_name, image, labels in (
        ("kindnet", "docker.io/kindest/kindnetd:v20250512-df8de77b", {"app": "kindnet", "k8s-app": "kindnet", "tier": "node"}),
        ("kube-proxy", "registry.k8s.io/kube-proxy:v1.33.1", {"k8s-app": "kube-proxy"}),
    ):
        ds_uid = uid("DaemonSet", "kube-system", ds_name)
        template_hash = suffix("crh", ds_name, n=10)
        container = {"name": ds_name if ds_name != "kindnet" else "kindnet-cni", "image": image,
                     "command": (["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                  "--hostname-override=$(NODE_NAME)"] if ds_name == "kube-proxy" else ["/bin/kindnetd"]),
                     "securityContext": {"privileged": True} if ds_name == "kube-proxy" else {
                         "capabilities": {"add": ["NET_RAW", "NET_ADMIN"]}, "privileged": False}}
        ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"annotations": {"deprecated.daemonset.template.generation": "1"}, "creationTimestamp": ts(3),
                           "generation": 1, "labels": labels, "name": ds_name, "namespace": "kube-system",
                           "resourceVersion": rv(), "uid": ds_uid},
              "spec": {"revisionHistoryLimit": 10, "selector": {"matchLabels": {k: v for k, v in labels.items() if k != "tier"}},
                       "template": {"metadata": {"creationTimestamp": None, "labels": labels},
                                    "spec": ao.pod_spec_defaults({"containers": [container], "hostNetwork": True})},
                       "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"}},
              "status": {"currentNumberScheduled": 4, "desiredNumberScheduled": 4, "numberAvailable": 4,
                         "numberMisscheduled": 0, "numberReady": 4, "observedGeneration": 1, "updatedNumberScheduled": 4}}
        out.append(with_managed_fields(ds, "kubeadm" if ds_name == "kube-proxy" else "kubectl-create",
                                       status_manager="kube-controller-manager"))
        for node in NODES:
            pod_labels = {**labels, "controller-revision-hash": template_hash, "pod-template-generation": "1"}
            out.append(system_pod(f"{ds_name}-{suffix(ds_name, node)}", "kube-system", node, node_ip[node], node_ip[node],
                                  [container], rv, owner=("DaemonSet", ds_name, ds_uid), host_network=True,
                                  labels=pod_labels, created=16.0 if node != CP else 6.0,
                                  extra_spec={"serviceAccount": ds_name, "serviceAccountName": ds_name}))
    # Deployments on the control plane: coredns (kube-system), local-path-provisioner
    for ns, dep_name, image, replicas, ips, labels, port_specs in (
        ("kube-system", "coredns", "registry.k8s.io/coredns/coredns:v1.12.0", 2, COREDNS_IPS, {"k8s-app": "kube-dns"},
         [{"containerPort": 53, "name": "dns", "protocol": "UDP"}, {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
          {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}]),
        ("local-path-storage", "local-path-provisioner", "docker.io/kindest/local-path-provisioner:v20250214-acbabc1a", 1,
         [LOCAL_PATH_IP], {"app": "local-path-provisioner"}, []),
    ):
        dep_uid = uid("Deployment", ns, dep_name)
        pth = suffix("pth", dep_name, n=10)
        rs_name = f"{dep_name}-{pth}"
        rs_uid = uid("ReplicaSet", ns, rs_name)
        container = {"name": dep_name, "image": image, **({"ports": port_specs} if port_specs else {}),
                     **({"args": ["-conf", "/etc/coredns/Corefile"]} if dep_name == "coredns" else {})}
        template = {"metadata": {"creationTimestamp": None, "labels": labels},
                    "spec": ao.pod_spec_defaults({"containers": [container], "priorityClassName": "system-cluster-critical"})}
        full = {"availableReplicas": replicas, "readyReplicas": replicas, "replicas": replicas,
                "updatedReplicas": replicas, "observedGeneration": 1}
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}, "creationTimestamp": ts(3), "generation": 1,
                            "labels": labels, "name": dep_name, "namespace": ns, "resourceVersion": rv(), "uid": dep_uid},
               "spec": {"progressDeadlineSeconds": 600, "replicas": replicas, "revisionHistoryLimit": 10,
                        "selector": {"matchLabels": labels},
                        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}, "type": "RollingUpdate"},
                        "template": template},
               "status": {**full, "conditions": [
                   {"lastTransitionTime": ts(20), "lastUpdateTime": ts(20), "message": "Deployment has minimum availability.",
                    "reason": "MinimumReplicasAvailable", "status": "True", "type": "Available"},
                   {"lastTransitionTime": ts(3), "lastUpdateTime": ts(20),
                    "message": f'ReplicaSet "{rs_name}" has successfully progressed.', "reason": "NewReplicaSetAvailable",
                    "status": "True", "type": "Progressing"}]}}
        out.append(with_managed_fields(dep, "kubeadm" if dep_name == "coredns" else "kubectl-create",
                                       status_manager="kube-controller-manager"))
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                           "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                                           "deployment.kubernetes.io/revision": "1"},
                           "creationTimestamp": ts(5), "generation": 1, "labels": {**labels, "pod-template-hash": pth},
                           "name": rs_name, "namespace": ns,
                           "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                                "kind": "Deployment", "name": dep_name, "uid": dep_uid}],
                           "resourceVersion": rv(), "uid": rs_uid},
              "spec": {"replicas": replicas, "selector": {"matchLabels": {**labels, "pod-template-hash": pth}},
                       "template": {**template, "metadata": {"creationTimestamp": None, "labels": {**labels, "pod-template-hash": pth}}}},
              "status": {"availableReplicas": replicas, "fullyLabeledReplicas": replicas, "observedGeneration": 1,
                         "readyReplicas": replicas, "replicas": replicas}}
        out.append(with_managed_fields(rs, "kube-controller-manager", status_manager="kube-controller-manager"))
        for i, ip in enumerate(ips):
            out.append(system_pod(f"{rs_name}-{suffix(rs_name, i)}", ns, CP, ip, node_ip[CP], [container], rv,
                                  owner=("ReplicaSet", rs_name, rs_uid), labels={**labels, "pod-template-hash": pth},
                                  priority_class="system-cluster-critical", created=18.0))
    # kube-dns: the Service and its slice
    dns_pods = [o for o in out if o["kind"] == "Pod" and o["metadata"]["name"].startswith("coredns-")]
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
                        "creationTimestamp": ts(3),
                        "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                        "name": "kube-dns", "namespace": "kube-system", "resourceVersion": rv(), "uid": uid("Service", "kube-system", "kube-dns")},
           "spec": {"clusterIP": KUBE_DNS_IP, "clusterIPs": [KUBE_DNS_IP], "internalTrafficPolicy": "Cluster",
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                              {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                              {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
                    "selector": {"k8s-app": "kube-dns"}, "sessionAffinity": "None", "type": "ClusterIP"},
           "status": {"loadBalancer": {}}}
    out.append(with_managed_fields(svc, "kubeadm"))
    slice_name = f"kube-dns-{suffix('kube-dns-slice')}"
    sl = {"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1",
          "endpoints": [{"addresses": [p["status"]["podIP"]],
                         "conditions": {"ready": True, "serving": True, "terminating": False},
                         "nodeName": CP, "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": "kube-system",
                                                       "uid": p["metadata"]["uid"]},
                         "zone": "ap-northeast-2a"} for p in dns_pods],
          "kind": "EndpointSlice",
          "metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": ts(30)},
                       "creationTimestamp": ts(3), "generateName": "kube-dns-", "generation": 3,
                       "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                                  "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                  "kubernetes.io/name": "CoreDNS", "kubernetes.io/service-name": "kube-dns"},
                       "name": slice_name, "namespace": "kube-system",
                       "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                            "kind": "Service", "name": "kube-dns", "uid": svc["metadata"]["uid"]}],
                       "resourceVersion": rv(), "uid": uid("EndpointSlice", "kube-system", slice_name)},
          "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"}]}
    out.append(with_managed_fields(sl, "kube-controller-manager"))
    eps = {"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": ts(30)},
                        "creationTimestamp": ts(3), "labels": dict(svc["metadata"]["labels"]), "name": "kube-dns",
                        "namespace": "kube-system", "resourceVersion": rv(), "uid": uid("Endpoints", "kube-system", "kube-dns")},
           "subsets": [{"addresses": [{"ip": e["addresses"][0], "nodeName": CP, "targetRef": e["targetRef"]}
                                      for e in sorted(sl["endpoints"], key=lambda e: e["addresses"][0])],
                        "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
                                  {"name": "metrics", "port": 9153, "protocol": "TCP"}]}]}
    out.append(with_managed_fields(eps, "kube-controller-manager"))
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "data": {"config.conf": KUBE_PROXY_CONF, "kubeconfig.conf": KUBE_PROXY_KUBECONFIG},
          "metadata": {"annotations": {"kubeadm.kubernetes.io/component-config.hash":
                                       "sha256:" + hashlib.sha256(KUBE_PROXY_CONF.encode()).hexdigest()},
                       "creationTimestamp": ts(3), "labels": {"app": "kube-proxy"}, "name": "kube-proxy",
                       "namespace": "kube-system", "resourceVersion": rv(), "uid": uid("ConfigMap", "kube-system", "kube-proxy")}}
    out.append(with_managed_fields(cm, "kubeadm"))
    return out


# ---- the study's objects, from the sim --------------------------------------------------------


def study_objects(lab: Lab) -> list[dict]:
    c = lab.cluster
    out: list[dict] = []
    for n in c.nodes:
        out.append(node_extras(ao.node_object(c, n)))
    labelled_services = {(s.namespace, s.name) for s in c.services if not (s.namespace == "default" and s.name == "kubernetes")}
    for s in c.services:
        obj = ao.service_object(c, s)
        if (s.namespace, s.name) in labelled_services:
            label(obj)
            out.append(with_managed_fields(obj, "kslab"))
        else:
            out.append(with_managed_fields(obj, "kube-apiserver"))
    for s in c.services:
        ep = ao.endpoints_for(c, s)  # the endpoints controller's v1 Endpoints (deprecated, still written)
        if ep is not None:
            if (s.namespace, s.name) in labelled_services:
                label(ep)  # it copies the Service's labels too
            out.append(with_managed_fields(ep, "kube-controller-manager" if s.selector else "kube-apiserver"))
    for sl in c.endpoint_slices:
        obj = ao.endpoint_slice_object(c, sl)
        if (sl.namespace, sl.service_name) in labelled_services:
            label(obj)  # the controller copies the Service's labels
        out.append(with_managed_fields(obj, "kube-controller-manager" if sl.managed else "kube-apiserver"))
    for d in c.deployments:
        obj = label(ao.deployment_object(c, d))
        out.append(with_managed_fields(obj, "kslab", status_manager="kube-controller-manager"))
        rs_name = ao.replica_set_name(d)
        pods = ao.deployment_pods(c, d)
        ready = sum(1 for p in pods if p.ready and not p.terminating)
        pth = rs_name.rsplit("-", 1)[1]
        labels = {**(d.template.get("metadata") or {}).get("labels", {}), "pod-template-hash": pth}
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": str(d.replicas),
                                           "deployment.kubernetes.io/max-replicas": str(d.replicas + (d.replicas + 3) // 4),
                                           "deployment.kubernetes.io/revision": "1"},
                           "creationTimestamp": obj["metadata"]["creationTimestamp"], "generation": obj["metadata"]["generation"],
                           "labels": labels, "name": rs_name, "namespace": d.namespace,
                           "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                                "kind": "Deployment", "name": d.name, "uid": obj["metadata"]["uid"]}],
                           "resourceVersion": obj["metadata"]["resourceVersion"], "uid": ao._replica_set_uid(c, d)},
              "spec": {"replicas": d.replicas, "selector": {"matchLabels": labels},
                       "template": {**obj["spec"]["template"], "metadata": {"creationTimestamp": None, "labels": labels}}},
              "status": {k: v for k, v in (("availableReplicas", ready), ("fullyLabeledReplicas", len(pods)),
                                           ("observedGeneration", obj["metadata"]["generation"]),
                                           ("readyReplicas", ready), ("replicas", len(pods))) if v or k == "replicas"}}
        out.append(with_managed_fields(rs, "kube-controller-manager", status_manager="kube-controller-manager"))
    for p in c.pods:
        obj = ao.pod_object(c, p)
        if p.owner.startswith("Deployment/"):
            out.append(with_managed_fields(obj, "kube-controller-manager", status_manager="kubelet"))
        else:
            label(obj)
            out.append(with_managed_fields(obj, "kslab", status_manager="kubelet"))
    return out


def exec_records(lab: Lab) -> list[dict]:
    recs: list[dict] = []

    def rec(pod: str, command: str, times: int = 1) -> None:
        import shlex

        for _ in range(times):
            out = lab.sh(pod, command)
            recs.append({"namespace": "default", "pod": pod, "argv": shlex.split(command),
                         "stdout": str(out), "stderr": out.stderr, "exit_code": out.returncode})

    rec("net-pod", "curl -s svc-clusterip:9000", times=6)
    svc_ip = next(s.cluster_ip for s in lab.cluster.services if s.name == "svc-clusterip")
    rec("net-pod", f"curl -s {svc_ip}:9000", times=3)
    rec("net-pod", "hostname")
    rec("net-pod", "curl -s -m 1 10.200.1.99:9000")  # no Service there: curl gives up (28)
    return recs


def write_fixture(name: str, objects: list[dict], execs: list[dict]) -> None:
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    from tests.kindfake.fixtures import LIST_FILES
    from tests.kindfake.server import BY_KIND

    top = max(int(o["metadata"]["resourceVersion"]) for o in objects)
    for fname, kind in LIST_FILES.items():
        res = BY_KIND[kind]
        items = sorted((o for o in objects if o["kind"] == kind),
                       key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        served = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        doc = {"kind": f"{kind}List", "apiVersion": res.api_version, "metadata": {"resourceVersion": str(top)}, "items": served}
        (d / fname).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    (d / "exec.json").write_text(json.dumps(execs, indent=1, ensure_ascii=False) + "\n")


def build(lab: Lab) -> list[dict]:
    return kube_system(lab.cluster, Revisions(SYSTEM_RV)) + study_objects(lab)


def main() -> None:
    lab = Lab()
    write_fixture("myk8s", build(lab), exec_records(lab.copy()))
    lab.scale("deploy-echo", 0)
    write_fixture("myk8s-echo0", build(lab), [])
    print(f"wrote {OUT}/myk8s and {OUT}/myk8s-echo0")


if __name__ == "__main__":
    main()
