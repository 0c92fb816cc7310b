"""kslab.kubectl: ``kubectl get``/``describe`` on the study's lab, in kubectl 1.33's formats.

The expected outputs below are written from upstream's code, named in each test:
``pkg/printers/internalversion/printers.go`` (the column sets and cells the API server's
Table carries), cli-runtime's ``tableprinter.go`` (``printTable``, ``decorateTable``: upper-case
headers, ``kind/name``, NAMESPACE first, LABELS last) written through Go's ``text/tabwriter``
with kubectl's settings (minwidth 6, padding 3), ``pkg/cmd/get/get.go`` (one table per resource
type, a blank line between), ``duration.HumanDuration`` and ``pkg/describe/describe.go``
(``tabbedString``: minwidth 0, padding 2). The study's lab is fixed (its ClusterIPs, NodePorts
and names do not depend on an experiment's seed); :func:`study` checks the allocations these
outputs were written for.
"""

from __future__ import annotations

import json

import pytest
import yaml

import kslab
from kslab import kubectl
from kslab.errors import InputError
from kslab.kubectl import go_yaml_tag, human_duration, tabwrite, to_json, to_yaml
from kslab.resources import study_lab

WARNING = "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n"


def k(lab, cmd: str) -> str:
    return kubectl.run(lab.cluster, cmd.split())


@pytest.fixture(scope="module")
def study():
    """The study's lab as ``kslab.Lab()`` builds it (read-only in the tests that use it)."""
    lab = kslab.Lab(backend="sim")
    c = lab.cluster
    got = {
        "svc-clusterip": c.service("svc-clusterip").cluster_ip,
        "svc-nodeport": (c.service("svc-nodeport").cluster_ip, c.service("svc-nodeport").ports[0].node_port),
        "slices": sorted(s.name for s in c.endpoint_slices),
        "echo pods": sorted(p.name for p in c.pods if p.owner),
    }
    expected = {
        "svc-clusterip": "10.200.1.233",
        "svc-nodeport": ("10.200.1.115", 31808),
        "slices": ["kubernetes", "svc-clusterip-w58zg", "svc-nodeport-mf6d4"],
        "echo pods": ["deploy-echo-gtc48pc688-89mtp", "deploy-echo-gtc48pc688-clvtq", "deploy-echo-gtc48pc688-xjvgm"],
    }
    if got != expected:
        pytest.fail(f"the study lab's allocations changed ({got}); the expected outputs here were written for {expected}")
    yield lab
    lab.close()


@pytest.fixture
def fresh():
    lab = kslab.Lab(backend="sim")
    yield lab
    lab.close()


MANY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 12
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - {containerPort: 80, name: http}
        - {containerPort: 443, name: https}
        - {containerPort: 8080, name: alt}
        - {containerPort: 8443, name: alt-tls}
---
apiVersion: v1
kind: Service
metadata: {name: svc-many, annotations: {example.com/note: "a <b> & c"}}
spec:
  selector: {app: many}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: https, port: 443, targetPort: https}
  - {name: alt, port: 8080, targetPort: alt}
  - {name: alt-tls, port: 8443, targetPort: alt-tls}
"""


@pytest.fixture
def many(tmp_path):
    """The study's lab plus a Service of 12 pods and 4 ports (the truncation rules)."""
    (tmp_path / "many.yaml").write_text(MANY)
    lab = kslab.Lab([study_lab(), tmp_path], backend="sim")
    yield lab
    lab.close()


# ---- the machinery: text/tabwriter, HumanDuration, go-yaml -----------------------------------


# Go's own text/tabwriter test table (src/text/tabwriter/tabwriter_test.go), every case with flags 0
@pytest.mark.parametrize("minwidth, padding, padchar, src, expected", [
    (8, 1, ".", "", ""),
    (8, 1, ".", "\n\n\n", "\n\n\n"),
    (8, 1, ".", "a\nb\nc", "a\nb\nc"),
    (8, 1, ".", "\t", ""),  # 4a: a tab-terminated empty cell on the last line prints nothing
    (8, 1, ".", "*\t*", "*.......*"),
    (8, 1, ".", "*\t*\n", "*.......*\n"),
    (8, 1, ".", "*\t*\t", "*.......*"),
    (8, 1, ".", "\t\n", "........\n"),
    (8, 1, ".", "a) foo", "a) foo"),
    (8, 1, " ", "b) foo\tbar", "b) foo  bar"),
    (8, 1, ".", "c) foo\tbar\t", "c) foo..bar"),
    (8, 1, ".", "d) foo\tbar\n", "d) foo..bar\n"),
    (8, 1, ".", "e) foo\tbar\t\n", "e) foo..bar.....\n"),
    (8, 1, "*", "Hello, world!\n", "Hello, world!\n"),
    (1, 0, ".", "1\t2\t3\t4\n11\t222\t3333\t44444\n", "1.2..3...4\n11222333344444\n"),
    (5, 0, ".", "1\t2\t3\t4\n", "1....2....3....4\n"),
    (5, 0, ".", "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
    (8, 1, ".", "本\tb\tc\naa\t本本本\tcccc\tddddd\naaa\tbbbb\n", "本.......b.......c\naa......本本本.....cccc....ddddd\naaa.....bbbb\n"),
    (2, 0, " ", "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n", "a  b  c\naa bbbcccc\naaabbbb\n"),
    (8, 1, "_", "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n", "a_______b_______c\naa______bbb_____cccc\naaa_____bbbb\n"),
    (4, 1, "-", "4444\t日本語\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
     "4444------日本語-22--1---333\n999999999-22\n7---------22\n------------------88888888\n\n666666-666666-666666----4444\n"
     "1------1------999999999-0000000000\n"),
    (4, 3, ".", "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
     "4444........333...22...1...333\n999999999...22\n7...........22\n....................88888888\n\n666666...666666...666666......4444\n"
     "1........1........999999999...0000000000\n"),
    (4, 0, ".", "a\t\tb", "a.......b"),
])
def test_tabwriter_is_gos(minwidth, padding, padchar, src, expected):
    assert tabwrite(src, minwidth, padding, padchar) == expected


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (59.9, "59s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (599, "9m59s"),
    (600, "10m"), (10799, "179m"), (10800, "3h"), (3 * 3600 + 30 * 60, "3h30m"), (8 * 3600 - 1, "7h59m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"), (8 * 86400, "8d"), (2 * 365 * 86400, "2y"),
    (2 * 365 * 86400 + 10 * 86400, "2y10d"), (8 * 365 * 86400, "8y"),
])
def test_human_duration(seconds, text):
    # duration.HumanDuration: exact seconds below 2 minutes, then m/s below 10 minutes, minutes
    # below 3 hours, h/m below 8 hours, hours below 2 days, d/h below 8 days, days below 2 years
    assert human_duration(seconds) == text


def test_go_yaml_quoting_and_key_order():
    # go-yaml v2 resolve(): these plain scalars would not read back as strings
    for s in ["", "true", "Yes", "y", "off", "null", "~", "80", "0x1F", "1e3", ".5", "1.33", "2025-06-02T09:00:00Z", "1:20"]:
        assert go_yaml_tag(s) != "tag:yaml.org,2002:str", s
    for s in ["10.200.1.233", "v1.33.1", "25%", "IPv4", "fd00::1", "TCP", "svc-webport"]:
        assert go_yaml_tag(s) == "tag:yaml.org,2002:str", s
    # keyList.Less: letters after other characters, digit runs as numbers (a non-digit counts as
    # the number 0: "_" < "2")
    assert list(yaml.safe_load(to_yaml({"aB": 1, "a_b": 2, "a10": 3, "a2": 4})).keys()) == ["a_b", "a2", "a10", "aB"]
    # go-yaml v2 reads y and n as booleans, so it quotes them, keys too
    assert to_yaml({"s": ["80", "True", "", "x"], "t": "2025-06-02T09:00:00Z", "e": {}, "n": None, "m": "multi\nline"}) == (
        'e: {}\nm: |-\n  multi\n  line\n"n": null\ns:\n- "80"\n- "True"\n- ""\n- x\nt: "2025-06-02T09:00:00Z"\n')
    # Go's encoding/json: 4-space indent (MarshalIndent), sorted keys, HTML characters escaped
    assert to_json({"b": "<a & b>", "a": [1]}) == '{\n    "a": [\n        1\n    ],\n    "b": "\\u003ca \\u0026 b\\u003e"\n}\n'


# ---- get: tables -------------------------------------------------------------------------------


def test_get_svc(study):
    # printService: CLUSTER-IP is spec.clusterIPs[0]; EXTERNAL-IP <none> for ClusterIP/NodePort
    # without externalIPs (getServiceExternalIP); PORT(S) "port/proto" or "port:nodePort/proto"
    # (makePortString). AGE: kind made default/kubernetes at 0 s, the study applied its
    # manifests at 120 s, and the clock stands at 120 s.
    assert k(study, "get svc") == (
        "NAME            TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE\n"
        "kubernetes      ClusterIP   10.200.1.1     <none>        443/TCP          2m\n"
        "svc-clusterip   ClusterIP   10.200.1.233   <none>        9000/TCP         0s\n"
        "svc-nodeport    NodePort    10.200.1.115   <none>        9000:31808/TCP   0s\n"
    )
    # -o wide adds the priority-1 SELECTOR column: labels.FormatLabels(spec.selector)
    assert k(study, "get services -o wide") == (
        "NAME            TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE   SELECTOR\n"
        "kubernetes      ClusterIP   10.200.1.1     <none>        443/TCP          2m    <none>\n"
        "svc-clusterip   ClusterIP   10.200.1.233   <none>        9000/TCP         0s    app=webpod\n"
        "svc-nodeport    NodePort    10.200.1.115   <none>        9000:31808/TCP   0s    app=deploy-websrv\n"
    )


def test_get_svc_ep_endpointslices(study):
    # get.go: several resource types -> names printed as kind[.group]/name (decorateTable), the
    # tab writer flushed per type (each table aligns on its own), an empty line between tables;
    # v1 Endpoints answers with a deprecation warning (stderr)
    expected = (
        "NAME                    TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE\n"
        "service/kubernetes      ClusterIP   10.200.1.1     <none>        443/TCP          2m\n"
        "service/svc-clusterip   ClusterIP   10.200.1.233   <none>        9000/TCP         0s\n"
        "service/svc-nodeport    NodePort    10.200.1.115   <none>        9000:31808/TCP   0s\n"
        "\n"
        "NAME                      ENDPOINTS                                      AGE\n"
        "endpoints/kubernetes      172.18.0.2:6443                                2m\n"
        "endpoints/svc-clusterip   10.10.1.2:80,10.10.2.2:80,10.10.3.2:80         0s\n"
        "endpoints/svc-nodeport    10.10.1.3:8080,10.10.2.3:8080,10.10.3.3:8080   0s\n"
        "\n"
        "NAME                                                 ADDRESSTYPE   PORTS   ENDPOINTS                       AGE\n"
        "endpointslice.discovery.k8s.io/kubernetes            IPv4          6443    172.18.0.2                      2m\n"
        "endpointslice.discovery.k8s.io/svc-clusterip-w58zg   IPv4          80      10.10.1.2,10.10.2.2,10.10.3.2   0s\n"
        "endpointslice.discovery.k8s.io/svc-nodeport-mf6d4    IPv4          8080    10.10.1.3,10.10.2.3,10.10.3.3   0s\n"
    )
    assert k(study, "get svc,ep,endpointslices") == expected
    res = kubectl.execute(study.cluster, ["get", "svc,ep,endpointslices"])
    assert (res.stdout, res.stderr, res.exit_code) == (expected, WARNING, 0)
    # the same types by their other names
    assert k(study, "get service,endpoints,endpointslice.discovery.k8s.io") == expected


def test_get_ep_and_endpointslices_alone(study):
    # printEndpoints/formatEndpoints: ip:port of the ready addresses; printEndpointSlice:
    # formatDiscoveryPorts, formatDiscoveryEndpoints (every address)
    assert k(study, "get ep") == (
        "NAME            ENDPOINTS                                      AGE\n"
        "kubernetes      172.18.0.2:6443                                2m\n"
        "svc-clusterip   10.10.1.2:80,10.10.2.2:80,10.10.3.2:80         0s\n"
        "svc-nodeport    10.10.1.3:8080,10.10.2.3:8080,10.10.3.3:8080   0s\n"
    )
    assert k(study, "get endpointslices -l kubernetes.io/service-name=svc-clusterip") == (
        "NAME                  ADDRESSTYPE   PORTS   ENDPOINTS                       AGE\n"
        "svc-clusterip-w58zg   IPv4          80      10.10.1.2,10.10.2.2,10.10.3.2   0s\n"
    )


def test_get_pods(study):
    # printPod: READY ready/total containers, STATUS the phase, RESTARTS; wide: IP, NODE,
    # NOMINATED NODE and READINESS GATES (<none> when unset)
    assert k(study, "get pods") == (
        "NAME                           READY   STATUS    RESTARTS   AGE\n"
        "deploy-echo-gtc48pc688-89mtp   1/1     Running   0          0s\n"
        "deploy-echo-gtc48pc688-clvtq   1/1     Running   0          0s\n"
        "deploy-echo-gtc48pc688-xjvgm   1/1     Running   0          0s\n"
        "net-pod                        1/1     Running   0          0s\n"
        "webpod1                        1/1     Running   0          0s\n"
        "webpod2                        1/1     Running   0          0s\n"
        "webpod3                        1/1     Running   0          0s\n"
    )
    assert k(study, "get po -o wide") == (
        "NAME                           READY   STATUS    RESTARTS   AGE   IP          NODE                  NOMINATED NODE   READINESS GATES\n"
        "deploy-echo-gtc48pc688-89mtp   1/1     Running   0          0s    10.10.2.3   myk8s-worker2         <none>           <none>\n"
        "deploy-echo-gtc48pc688-clvtq   1/1     Running   0          0s    10.10.1.3   myk8s-worker          <none>           <none>\n"
        "deploy-echo-gtc48pc688-xjvgm   1/1     Running   0          0s    10.10.3.3   myk8s-worker3         <none>           <none>\n"
        "net-pod                        1/1     Running   0          0s    10.10.0.2   myk8s-control-plane   <none>           <none>\n"
        "webpod1                        1/1     Running   0          0s    10.10.1.2   myk8s-worker          <none>           <none>\n"
        "webpod2                        1/1     Running   0          0s    10.10.2.2   myk8s-worker2         <none>           <none>\n"
        "webpod3                        1/1     Running   0          0s    10.10.3.2   myk8s-worker3         <none>           <none>\n"
    )


def test_get_nodes(study):
    # printNode: STATUS from the Ready condition, ROLES from node-role.kubernetes.io/* labels
    # (findNodeRoles), VERSION the kubelet's; wide: the addresses, OS image, the kernel (kind's
    # nodes are containers on this machine: its kernel) and the container runtime
    from kslab.apiobjects import node_kernel_version

    assert k(study, "get nodes") == (
        "NAME                  STATUS   ROLES           AGE    VERSION\n"
        "myk8s-control-plane   Ready    control-plane   2m     v1.33.1\n"
        "myk8s-worker          Ready    <none>          105s   v1.33.1\n"
        "myk8s-worker2         Ready    <none>          105s   v1.33.1\n"
        "myk8s-worker3         Ready    <none>          105s   v1.33.1\n"
    )
    kernel = node_kernel_version()
    w = max(len("KERNEL-VERSION"), len(kernel)) + 3
    assert k(study, "get no -o wide") == "".join(
        f"{a}{'KERNEL-VERSION'.ljust(w) if a.startswith('NAME') else kernel.ljust(w)}{b}\n" for a, b in [
            ("NAME                  STATUS   ROLES           AGE    VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         ", "CONTAINER-RUNTIME"),
            ("myk8s-control-plane   Ready    control-plane   2m     v1.33.1   172.18.0.2    <none>        Debian GNU/Linux 12 (bookworm)   ", "containerd://2.1.1"),
            ("myk8s-worker          Ready    <none>          105s   v1.33.1   172.18.0.3    <none>        Debian GNU/Linux 12 (bookworm)   ", "containerd://2.1.1"),
            ("myk8s-worker2         Ready    <none>          105s   v1.33.1   172.18.0.4    <none>        Debian GNU/Linux 12 (bookworm)   ", "containerd://2.1.1"),
            ("myk8s-worker3         Ready    <none>          105s   v1.33.1   172.18.0.5    <none>        Debian GNU/Linux 12 (bookworm)   ", "containerd://2.1.1"),
        ])


def test_get_deployments(study):
    # printDeployment: READY ready/desired, UP-TO-DATE, AVAILABLE; wide: layoutContainerCells and
    # the selector
    assert k(study, "get deploy") == (
        "NAME          READY   UP-TO-DATE   AVAILABLE   AGE\n"
        "deploy-echo   3/3     3            3           0s\n"
    )
    assert k(study, "get deployments.apps -o wide") == (
        "NAME          READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS    IMAGES                    SELECTOR\n"
        "deploy-echo   3/3     3            3           0s    kans-websrv   mendhak/http-https-echo   app=deploy-websrv\n"
    )


def test_names_namespaces_labels(study):
    # TYPE/NAME of two types: kind/name, one table each
    assert k(study, "get svc/svc-clusterip pod/net-pod") == (
        "NAME                    TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)    AGE\n"
        "service/svc-clusterip   ClusterIP   10.200.1.233   <none>        9000/TCP   0s\n"
        "\n"
        "NAME          READY   STATUS    RESTARTS   AGE\n"
        "pod/net-pod   1/1     Running   0          0s\n"
    )
    # TYPE NAME NAME: one type, no kind prefix, in the order asked
    assert k(study, "get svc svc-nodeport kubernetes") == (
        "NAME           TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE\n"
        "svc-nodeport   NodePort    10.200.1.115   <none>        9000:31808/TCP   0s\n"
        "kubernetes     ClusterIP   10.200.1.1     <none>        443/TCP          2m\n"
    )
    # -A: NAMESPACE first for namespaced types only; --show-labels: LABELS last
    assert k(study, "get svc,nodes -A --show-labels -l component") == (
        "NAMESPACE   NAME                 TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE   LABELS\n"
        "default     service/kubernetes   ClusterIP   10.200.1.1   <none>        443/TCP   2m    component=apiserver,provider=kubernetes\n"
    )
    # a selector on two types, the first without matches: still kind/name (multipleGVKsRequested)
    assert k(study, "get svc,pod -l app=webpod") == (
        "NAME          READY   STATUS    RESTARTS   AGE\n"
        "pod/webpod1   1/1     Running   0          0s\n"
        "pod/webpod2   1/1     Running   0          0s\n"
        "pod/webpod3   1/1     Running   0          0s\n"
    )
    assert k(study, "get pods -l app=webpod,app!=x --no-headers --show-labels") == (
        "webpod1   1/1   Running   0     0s    app=webpod\n"
        "webpod2   1/1   Running   0     0s    app=webpod\n"
        "webpod3   1/1   Running   0     0s    app=webpod\n"
    )
    assert kubectl.run(study.cluster, ["get", "nodes", "-l", "mynode in (worker1,worker3)", "-o", "name"]) == (
        "node/myk8s-worker\nnode/myk8s-worker3\n")
    assert k(study, "-n default get ep,svc -o name") == (
        "endpoints/kubernetes\nendpoints/svc-clusterip\nendpoints/svc-nodeport\n"
        "service/kubernetes\nservice/svc-clusterip\nservice/svc-nodeport\n")
    # nothing there: stdout empty, kubectl's note on stderr, exit 0
    for cmd, note in [("get pods -n kube-system", "No resources found in kube-system namespace.\n"),
                      ("get pods --namespace=default -l app=nope", "No resources found in default namespace.\n"),
                      ("get nodes -l mynode=nope", "No resources found\n")]:
        assert kubectl.execute(study.cluster, cmd.split()) == kubectl.Result("", note, 0)


# ---- get: json and yaml ---------------------------------------------------------------------


def test_yaml_of_a_service_and_its_slice(study):
    # one named object: printed alone (IntoSingleItemImplied); sigs.k8s.io/yaml: sorted keys,
    # 2-space indent, sequences not indented, strings go-yaml would misread double-quoted
    c = study.cluster
    rec = {key: r for key, r in c.records.items()}
    svc = rec[("Service", "default", "svc-clusterip")]
    assert k(study, "get svc svc-clusterip -o yaml") == f"""\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: "2025-06-02T09:02:00Z"
  name: svc-clusterip
  namespace: default
  resourceVersion: "{svc.resource_version}"
  uid: {svc.uid}
spec:
  clusterIP: 10.200.1.233
  clusterIPs:
  - 10.200.1.233
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - name: svc-webport
    port: 9000
    protocol: TCP
    targetPort: 80
  selector:
    app: webpod
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer: {{}}
"""
    sl = rec[("EndpointSlice", "default", "svc-clusterip-w58zg")]
    pods = {n: rec[("Pod", "default", n)].uid for n in ("webpod1", "webpod2", "webpod3")}
    endpoints = "".join(f"""\
- addresses:
  - 10.10.{i}.2
  conditions:
    ready: true
    serving: true
    terminating: false
  nodeName: {node}
  targetRef:
    kind: Pod
    name: webpod{i}
    namespace: default
    uid: {pods[f"webpod{i}"]}
  zone: {zone}
""" for i, node, zone in [(1, "myk8s-worker", "ap-northeast-2a"), (2, "myk8s-worker2", "ap-northeast-2b"), (3, "myk8s-worker3", "ap-northeast-2c")])
    assert k(study, "get endpointslices svc-clusterip-w58zg -o yaml") == f"""\
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
{endpoints}kind: EndpointSlice
metadata:
  creationTimestamp: "2025-06-02T09:02:00Z"
  generateName: svc-clusterip-
  generation: 1
  labels:
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
    kubernetes.io/service-name: svc-clusterip
  name: svc-clusterip-w58zg
  namespace: default
  ownerReferences:
  - apiVersion: v1
    blockOwnerDeletion: true
    controller: true
    kind: Service
    name: svc-clusterip
    uid: {svc.uid}
  resourceVersion: "{sl.resource_version}"
  uid: {sl.uid}
ports:
- name: svc-webport
  port: 80
  protocol: TCP
"""


@pytest.mark.parametrize("kind", ["svc", "ep", "endpointslices", "pods", "nodes", "deploy"])
def test_json_and_yaml_round_trip(study, kind):
    # printGeneric: a listing is a v1 List (metadata.resourceVersion ""); -o json parses back,
    # -o yaml reads back to the same document (so every string that needed quotes had them)
    text = k(study, f"get {kind} -o json")
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]) == ("v1", "List", {"resourceVersion": ""})
    assert yaml.safe_load(k(study, f"get {kind} -o yaml")) == doc
    c = study.cluster
    names = [it["metadata"]["name"] for it in doc["items"]]
    assert names == sorted(names)
    for it in doc["items"]:
        md = it["metadata"]
        ns = md.get("namespace", "")
        if it["kind"] != "Endpoints":
            rec = c.records[(it["kind"], ns, md["name"])]
            assert (md["uid"], md["resourceVersion"]) == (rec.uid, str(rec.resource_version))
        if it["kind"] == "Service":
            s = c.service(md["name"])
            assert it["spec"]["clusterIP"] == s.cluster_ip
            assert [(p["port"], p["protocol"], p.get("nodePort", 0)) for p in it["spec"]["ports"]] == [
                (p.port, p.protocol, p.node_port) for p in s.ports]
        elif it["kind"] == "EndpointSlice":
            sl = next(x for x in c.endpoint_slices if x.name == md["name"])
            assert md["labels"]["kubernetes.io/service-name"] == sl.service_name
            assert [(e["addresses"], e["conditions"]["ready"], e["conditions"]["serving"], e["conditions"]["terminating"],
                     e.get("nodeName"), e.get("zone"), e.get("targetRef", {}).get("name")) for e in it["endpoints"]] == [
                (ep.addresses, ep.ready, ep.serving, ep.terminating, ep.node_name, ep.zone, ep.target_pod) for ep in sl.endpoints]
            assert [(p["name"], p["port"], p["protocol"]) for p in it["ports"]] == [(p.name, p.port, p.protocol) for p in sl.ports]
        elif it["kind"] == "Pod":
            p = c.pod(md["name"])
            assert (it["spec"].get("nodeName"), it["status"]["podIP"], it["status"]["phase"]) == (p.node_name, p.pod_ip, p.phase)
            assert it["status"]["hostIP"] == c.node(p.node_name).internal_ip
            assert [x["name"] for x in it["spec"]["containers"]] == [x.name for x in p.containers]
            assert [x["status"] for x in it["status"]["conditions"] if x["type"] == "Ready"] == ["True" if p.ready else "False"]
        elif it["kind"] == "Node":
            n = c.node(md["name"])
            assert (it["spec"]["podCIDR"], it["status"]["addresses"][0]["address"], md["labels"]) == (n.pod_cidr, n.internal_ip, n.labels)
        elif it["kind"] == "Deployment":
            d = next(x for x in c.deployments if x.name == md["name"])
            assert (it["spec"]["replicas"], it["spec"]["selector"]["matchLabels"], it["status"]["readyReplicas"]) == (d.replicas, d.selector, 3)
        elif it["kind"] == "Endpoints":
            slices = [x for x in c.endpoint_slices if x.service_name == md["name"]]
            ready = sorted(ep.addresses[0] for x in slices for ep in x.endpoints if ep.ready)
            assert sorted(a["ip"] for ss in it.get("subsets", []) for a in ss.get("addresses", [])) == ready


def test_json_escapes_like_go_and_lists_mix_kinds(many):
    # Go's encoding/json escapes <, > and & (HTMLEscape); a listing of two kinds is one List
    text = k(many, "get svc svc-many -o json")
    assert '"example.com/note": "a \\u003cb\\u003e \\u0026 c"' in text
    assert json.loads(text)["metadata"]["annotations"] == {"example.com/note": "a <b> & c"}
    doc = json.loads(k(many, "get svc/svc-many deploy/many -o json"))
    assert [(it["kind"], it["metadata"]["name"]) for it in doc["items"]] == [("Service", "svc-many"), ("Deployment", "many")]


def test_jsonpath(study):
    # client-go's jsonpath as kubectl's JSONPathPrinter runs it: the study's way to read a NodePort
    c = study.cluster

    def jp(cmd: str, template: str) -> str:
        return kubectl.run(c, [*cmd.split(), "-o", f"jsonpath={template}"])

    assert jp("get svc svc-nodeport", "{.spec.ports[0].nodePort}") == "31808"
    assert jp("get svc svc-nodeport", "{.spec.clusterIP}{'\\n'}") == "10.200.1.115\n"
    # maps and lists print as compact JSON (PrintResults), several results joined by a space
    assert jp("get svc svc-clusterip", "{.spec.selector} {.spec.clusterIPs}") == '{"app":"webpod"} ["10.200.1.233"]'
    assert jp("get pods -l app=webpod", "{.items[*].metadata.name}") == "webpod1 webpod2 webpod3"
    assert jp("get nodes", '{.items[*].status.addresses[?(@.type=="InternalIP")].address}') == "172.18.0.2 172.18.0.3 172.18.0.4 172.18.0.5"
    assert jp("get pods -l app=webpod", '{range .items[*]}{.metadata.name}{"\\t"}{.spec.nodeName}{"\\n"}{end}') == (
        "webpod1\tmyk8s-worker\nwebpod2\tmyk8s-worker2\nwebpod3\tmyk8s-worker3\n")
    assert jp("get nodes myk8s-worker2", r"{.metadata.labels.topology\.kubernetes\.io/zone}") == "ap-northeast-2b"
    assert jp("get endpointslices svc-clusterip-w58zg", "{.endpoints[*].conditions.ready} {.missing}{.endpoints[-1].zone}") == (
        "true true true ap-northeast-2c")


def test_pod_qos_class():
    # GetPodQOS: no requests or limits -> BestEffort; cpu and memory limited to the requests in
    # every container (requests default to limits) -> Guaranteed; anything else -> Burstable
    from kslab.apiobjects import _qos_class

    def spec(*resources):
        return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}

    full = {"cpu": "100m", "memory": "64Mi"}
    assert _qos_class(spec({})) == "BestEffort"
    assert _qos_class(spec({"limits": full})) == "Guaranteed"
    assert _qos_class(spec({"limits": full, "requests": full}, {"limits": full})) == "Guaranteed"
    assert _qos_class(spec({"requests": full})) == "Burstable"
    assert _qos_class(spec({"limits": full}, {})) == "Burstable"
    assert _qos_class(spec({"limits": full, "requests": {"cpu": "50m", "memory": "64Mi"}})) == "Burstable"


def test_yaml_without_libyaml_is_the_same():
    # PyYAML's pure-Python emitter (a libyaml port too) gives the same text as libyaml's
    from kslab import kubectl as kc

    class PyDumper(yaml.SafeDumper):
        resolve = kc._GoYamlDumper.resolve

    PyDumper.add_representer(str, kc._represent_str)
    lab = kslab.Lab(backend="sim")
    try:
        for kind in ("svc", "endpointslices", "pods", "nodes", "deploy", "ep"):
            doc = kc._go_yaml_ordered(json.loads(k(lab, f"get {kind} -o json")))
            assert yaml.dump(doc, Dumper=PyDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                             width=80, indent=2) == k(lab, f"get {kind} -o yaml")
    finally:
        lab.close()


# ---- truncation ------------------------------------------------------------------------------


def test_truncation_rules(many):
    c = many.cluster
    sl = next(s for s in c.endpoint_slices if s.service_name == "svc-many")
    first3 = [ep.addresses[0] for ep in sl.endpoints[:3]]
    # formatDiscoveryEndpoints: 12 addresses -> the first 3 of the slice + 9 more;
    # formatDiscoveryPorts: 4 ports -> the first 3 + 1 more
    ports, endpoints = "80,443,8080 + 1 more...", f"{','.join(first3)} + 9 more..."
    assert k(many, f"get endpointslices {sl.name}") == (  # columns: widest cell + 3
        "NAME".ljust(len(sl.name) + 3) + "ADDRESSTYPE   " + "PORTS".ljust(len(ports) + 3) + "ENDPOINTS".ljust(len(endpoints) + 3) + "AGE\n"
        + f"{sl.name}   IPv4          {ports}   {endpoints}   0s\n"
    )
    # formatEndpoints: the count grows by the addresses once per port: 12 x 4 = 48 -> 45 more;
    # the addresses come sorted by IP (RepackSubsets), ip:port of the first port (kslab keeps the
    # Service's port order where upstream orders by a hash)
    ips = sorted((ep.addresses[0] for ep in sl.endpoints), key=lambda ip: ip)
    line = next(x for x in k(many, "get ep svc-many").splitlines()[1:])
    assert line.split()[1:4] == [f"{ips[0]}:80,{ips[1]}:80,{ips[2]}:80", "+", "45"]
    assert line.split()[4] == "more..."
    # describe's formatEndpointSlices: per Service port, ready endpoints only
    desc = k(many, "describe svc svc-many")
    assert f"Endpoints:                {first3[0]}:80,{first3[1]}:80,{first3[2]}:80 + 9 more...\n" in desc
    # ... and its quirk: once 3 are listed, `more` is set by the next endpoint even if that one
    # is not ready, so 3 ready endpoints and 9 unready print "+ 0 more..."
    for ep in sl.endpoints[3:]:
        many.set_ready(ep.target_pod, False)
    desc = k(many, "describe svc svc-many")
    assert f"Endpoints:                {first3[0]}:443,{first3[1]}:443,{first3[2]}:443 + 0 more...\n" in desc
    # the table still lists every address (formatDiscoveryEndpoints ignores readiness), while
    # Endpoints moves the 9 to notReadyAddresses: 3 ready x 4 ports = 12 -> 9 more
    assert k(many, "get ep svc-many").splitlines()[1].split()[2:4] == ["+", "9"]


# ---- describe ---------------------------------------------------------------------------------


def test_describe_services(study):
    # describeService through tabbedString (minwidth 0, padding 2): the widest label of the block,
    # "Internal Traffic Policy:", sets the first column; Port and NodePort have a second column
    # of their own (a block of one line each); Endpoints from the Service's EndpointSlices
    assert k(study, "describe svc svc-clusterip") == (
        "Name:                     svc-clusterip\n"
        "Namespace:                default\n"
        "Labels:                   <none>\n"
        "Annotations:              <none>\n"
        "Selector:                 app=webpod\n"
        "Type:                     ClusterIP\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.200.1.233\n"
        "IPs:                      10.200.1.233\n"
        "Port:                     svc-webport  9000/TCP\n"
        "TargetPort:               80/TCP\n"
        "Endpoints:                10.10.1.2:80,10.10.2.2:80,10.10.3.2:80\n"
        "Session Affinity:         None\n"
        "Internal Traffic Policy:  Cluster\n"
        "Events:                   <none>\n"
    )
    assert k(study, "describe service/svc-nodeport") == (
        "Name:                     svc-nodeport\n"
        "Namespace:                default\n"
        "Labels:                   <none>\n"
        "Annotations:              <none>\n"
        "Selector:                 app=deploy-websrv\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.200.1.115\n"
        "IPs:                      10.200.1.115\n"
        "Port:                     svc-webport  9000/TCP\n"
        "TargetPort:               8080/TCP\n"
        "NodePort:                 svc-webport  31808/TCP\n"
        "Endpoints:                10.10.1.3:8080,10.10.2.3:8080,10.10.3.3:8080\n"
        "Session Affinity:         None\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n"
        "Events:                   <none>\n"
    )
    # printLabelsMultiline: one label a line, the later ones under the first
    kube = k(study, "describe svc kubernetes")
    assert kube.startswith("Name:                     kubernetes\nNamespace:                default\n"
                           "Labels:                   component=apiserver\n                          provider=kubernetes\n")
    assert "Port:                     https  443/TCP\nTargetPort:               6443/TCP\nEndpoints:                172.18.0.2:6443\n" in kube
    # several objects: separated by "\n\n" (DescribeOptions.Run)
    everything = k(study, "describe svc")
    assert everything == kube + "\n\n" + k(study, "describe svc svc-clusterip") + "\n\n" + k(study, "describe svc svc-nodeport")


def test_describe_endpointslice_and_endpoints(study):
    # describeEndpointSliceV1: lines without a tab ("Ports:", "Endpoints:", "Conditions:") end a
    # tab writer block, so each block aligns on its own
    assert k(study, "describe endpointslice svc-clusterip-w58zg") == (
        "Name:         svc-clusterip-w58zg\n"
        "Namespace:    default\n"
        "Labels:       endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io\n"
        "              kubernetes.io/service-name=svc-clusterip\n"
        "Annotations:  <none>\n"
        "AddressType:  IPv4\n"
        "Ports:\n"
        "  Name         Port  Protocol\n"
        "  ----         ----  --------\n"
        "  svc-webport  80    TCP\n"
        "Endpoints:\n"
        "  - Addresses:  10.10.1.2\n"
        "    Conditions:\n"
        "      Ready:    true\n"
        "    Hostname:   <unset>\n"
        "    TargetRef:  Pod/webpod1\n"
        "    NodeName:   myk8s-worker\n"
        "    Zone:       ap-northeast-2a\n"
        "  - Addresses:  10.10.2.2\n"
        "    Conditions:\n"
        "      Ready:    true\n"
        "    Hostname:   <unset>\n"
        "    TargetRef:  Pod/webpod2\n"
        "    NodeName:   myk8s-worker2\n"
        "    Zone:       ap-northeast-2b\n"
        "  - Addresses:  10.10.3.2\n"
        "    Conditions:\n"
        "      Ready:    true\n"
        "    Hostname:   <unset>\n"
        "    TargetRef:  Pod/webpod3\n"
        "    NodeName:   myk8s-worker3\n"
        "    Zone:       ap-northeast-2c\n"
        "Events:         <none>\n"
    )
    # DescribeMatchingResources: no slice is named svc-clusterip, so every one whose name starts
    # with it, each followed by a newline
    assert k(study, "describe endpointslices svc-clusterip") == k(study, "describe endpointslice svc-clusterip-w58zg") + "\n"
    # describeEndpoints
    assert k(study, "describe ep svc-clusterip") == (
        "Name:         svc-clusterip\n"
        "Namespace:    default\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "Subsets:\n"
        "  Addresses:          10.10.1.2,10.10.2.2,10.10.3.2\n"
        "  NotReadyAddresses:  <none>\n"
        "  Ports:\n"
        "    Name         Port  Protocol\n"
        "    ----         ----  --------\n"
        "    svc-webport  80    TCP\n"
        "\n"
        "Events:  <none>\n"
    )


# ---- the lab changes ------------------------------------------------------------------------


def test_endpointslices_follow_scale_and_the_clock(fresh):
    c = fresh.cluster
    name = next(s.name for s in c.endpoint_slices if s.service_name == "svc-nodeport")
    before = c.records[("EndpointSlice", "default", name)]
    created, rv = before.created, before.resource_version
    fresh.advance(300)  # the control plane's clock: every AGE is 5 minutes older
    assert k(fresh, f"get endpointslices {name}") == (
        "NAME                 ADDRESSTYPE   PORTS   ENDPOINTS                       AGE\n"
        f"{name}   IPv4          8080    10.10.1.3,10.10.2.3,10.10.3.3   5m\n"
    )
    fresh.scale("deploy-echo", 5)
    sl = next(s for s in c.endpoint_slices if s.service_name == "svc-nodeport")
    assert sl.name == name and len(sl.endpoints) == 5
    first3 = ",".join(ep.addresses[0] for ep in sl.endpoints[:3])
    out = k(fresh, "get endpointslices")
    w = len(f"{first3} + 2 more...") + 3
    assert out == (
        "NAME                  ADDRESSTYPE   PORTS   " + "ENDPOINTS".ljust(w) + "AGE\n"
        "kubernetes            IPv4          6443    " + "172.18.0.2".ljust(w) + "7m\n"
        "svc-clusterip-w58zg   IPv4          80      " + "10.10.1.2,10.10.2.2,10.10.3.2".ljust(w) + "5m\n"
        f"{name}    IPv4          8080    " + f"{first3} + 2 more...".ljust(w) + "5m\n"
    )
    # the same slice, written again: same uid and creationTimestamp, a newer resourceVersion and
    # generation (metadata kept by the control plane's record_writes)
    after = json.loads(k(fresh, f"get endpointslice {name} -o json"))["metadata"]
    assert after["creationTimestamp"] == "2025-06-02T09:02:00Z" and created == 120.0
    assert int(after["resourceVersion"]) > rv and after["generation"] == 2 and after["uid"] == before.uid
    # the new pods are 0 s old, the old ones 5 minutes
    ages = {line.split()[0]: line.split()[4] for line in k(fresh, "get pods -l app=deploy-websrv").splitlines()[1:]}
    assert sorted(ages.values()) == ["0s", "0s", "5m", "5m", "5m"]
    # scaled to zero: the controller keeps one slice without endpoints or ports; the printers
    # say <unset> (listWithMoreString), the object says null (no omitempty on either field)
    fresh.scale("deploy-echo", 0)
    line = k(fresh, f"get endpointslices {name}").splitlines()[1]
    assert line.split() == [name, "IPv4", "<unset>", "<unset>", "5m"]
    doc = yaml.safe_load(k(fresh, f"get endpointslices {name} -o yaml"))
    assert (doc["endpoints"], doc["ports"]) == (None, None)
    assert "endpoints: null\n" in k(fresh, f"get endpointslices {name} -o yaml")
    assert k(fresh, "get ep svc-nodeport").splitlines()[1].split() == ["svc-nodeport", "<none>", "5m"]
    assert "Endpoints:                \n" in k(fresh, "describe svc svc-nodeport")  # a ready-less slice: empty


def test_not_ready_pods(fresh):
    fresh.set_ready("webpod2", False)
    assert k(fresh, "get pod webpod2").splitlines()[1].split()[:3] == ["webpod2", "0/1", "Running"]
    # Endpoints: the pod under notReadyAddresses; the slice keeps it with ready: false
    assert "NotReadyAddresses:  10.10.2.2\n" in k(fresh, "describe ep svc-clusterip")
    assert k(fresh, "get ep svc-clusterip").splitlines()[1].split()[1] == "10.10.1.2:80,10.10.3.2:80"
    assert "Endpoints:                10.10.1.2:80,10.10.3.2:80\n" in k(fresh, "describe svc svc-clusterip")
    pod = json.loads(k(fresh, "get pod webpod2 -o json"))
    ready = next(x for x in pod["status"]["conditions"] if x["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    # none ready: Endpoints has a subset of notReadyAddresses only, which formatEndpoints prints as
    # an empty cell (not <none>, which means no subsets at all)
    fresh.set_ready("webpod1", False)
    fresh.set_ready("webpod3", False)
    assert k(fresh, "get ep svc-clusterip") == "NAME            ENDPOINTS   AGE\nsvc-clusterip               0s\n"
    assert "Endpoints:                \n" in k(fresh, "describe svc svc-clusterip")


def test_run_changes_nothing_and_is_deterministic(study):
    before = repr(study.cluster)
    outputs = [k(study, cmd) for cmd in ("get svc,ep,endpointslices,pods,nodes,deploy -A -o wide", "get pods -o yaml",
                                         "get nodes,deploy,ep -o json", "describe svc")]
    assert repr(study.cluster) == before
    other = kslab.Lab(backend="sim")
    try:
        assert [k(other, cmd) for cmd in ("get svc,ep,endpointslices,pods,nodes,deploy -A -o wide", "get pods -o yaml",
                                           "get nodes,deploy,ep -o json", "describe svc")] == outputs
    finally:
        other.close()


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd, message", [
    ("get foo", "kubectl get foo: error: the server doesn't have a resource type \"foo\""),
    ("get svc nope", "kubectl get svc nope: Error from server (NotFound): services \"nope\" not found"),
    ("get endpointslices nope", 'kubectl get endpointslices nope: Error from server (NotFound): endpointslices.discovery.k8s.io "nope" not found'),
    ("get deploy nope", 'kubectl get deploy nope: Error from server (NotFound): deployments.apps "nope" not found'),
    ("describe svc nope", 'kubectl describe svc nope: Error from server (NotFound): services "nope" not found'),
    ("get svc kubernetes -l a=b", "kubectl get svc kubernetes -l a=b: error: name cannot be provided when a selector is specified"),
    ("get pod net-pod -A", "kubectl get pod net-pod -A: error: a resource cannot be retrieved by name across all namespaces"),
    ("get svc svc/kubernetes", "kubectl get svc svc/kubernetes: error: there is no need to specify a resource type as a separate argument"),
    ("get svc -o foo", 'kubectl get svc -o foo: error: unable to match a printer suitable for the output format "foo"'),
    ("get", "kubectl get: error: Required resource not specified.; name a resource type: svc, ep, endpointslices, pods, nodes, deployments"),
    ("get rs", 'kubectl get rs: kslab\'s lab holds no "rs" objects; use one of: svc, ep, endpointslices, pods, nodes, deployments'),
    ("exec net-pod -- ls", "kubectl exec net-pod -- ls: kslab's kubectl does not emulate 'exec'; it emulates: get ("),
    ("get pods -w", "kubectl get pods -w: flag -w is not supported by kslab's kubectl; supported: -n NS, -A"),
    ("get pods --sort-by=.metadata.name", "kubectl get pods --sort-by=.metadata.name: flag --sort-by is not supported"),
    ("get pods -o custom-columns=N:.metadata.name", "kubectl get pods -o custom-columns=N:.metadata.name: output format 'custom-columns' is not supported"),
    ("get pods -o jsonpath={.items", "kubectl get pods -o jsonpath={.items: error: error parsing jsonpath {.items, unclosed action"),
    ("describe pod net-pod", "kubectl describe pod net-pod: kslab's kubectl describes services, endpoints and endpointslices, not pods"),
    ("get pods -n", "kubectl get pods -n: error: flag needs an argument: -n"),
])
def test_errors_are_one_line(study, cmd, message):
    with pytest.raises(InputError) as err:
        kubectl.run(study.cluster, cmd.split())
    text = str(err.value)
    assert "\n" not in text and text.startswith(message), text


def test_execute_reports_kubectls_errors_without_raising(study):
    # kubectl prints what it found and the errors (ContinueOnError), exits 1
    res = kubectl.execute(study.cluster, ["get", "svc", "kubernetes", "nope"])
    assert res.stdout == (
        "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\n"
        "kubernetes   ClusterIP   10.200.1.1   <none>        443/TCP   2m\n"
    )
    assert (res.stderr, res.exit_code) == ('Error from server (NotFound): services "nope" not found\n', 1)
    assert kubectl.execute(study.cluster, ["get", "foo"]) == kubectl.Result("", 'error: the server doesn\'t have a resource type "foo"\n', 1)
    with pytest.raises(InputError, match="does not emulate 'logs'"):
        kubectl.execute(study.cluster, ["logs", "net-pod"])
    with pytest.raises(InputError, match="list of words"):
        kubectl.run(study.cluster, "get svc")  # type: ignore[arg-type]
    assert kubectl.run(study.cluster, ["kubectl", "get", "svc"]) == k(study, "get svc")


HINTED = """\
apiVersion: v1
kind: Service
metadata: {name: svc-hinted}
spec:
  ports:
  - {name: web, port: 9000, targetPort: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-hinted-1
  labels: {kubernetes.io/service-name: svc-hinted}
addressType: IPv4
ports:
- {name: web, port: 80, protocol: TCP}
endpoints:
- addresses: [10.10.1.2]
  conditions: {ready: true}
  nodeName: myk8s-worker
  zone: ap-northeast-2a
  hints:
    forZones: [{name: ap-northeast-2a}]
- addresses: [10.10.2.2]
  conditions: {ready: true}
  nodeName: myk8s-worker2
  zone: ap-northeast-2b
  hints:
    forZones: [{name: ap-northeast-2b}, {name: "on"}]
"""


def test_yaml_of_a_slice_with_zone_hints(tmp_path):
    """Topology aware hints as kubectl prints them: ``hints`` sorts between ``conditions`` and
    ``nodeName`` (go-yaml v2's key order), ``forZones`` is a sequence of ``{name: ...}`` not
    indented under its key (sigs.k8s.io/yaml), and a zone go-yaml v2 would read as a boolean
    (``on``) is double-quoted."""
    (tmp_path / "hinted.yaml").write_text(HINTED)
    lab = kslab.Lab([study_lab(), tmp_path], backend="sim")
    try:
        sl = lab.cluster.records[("EndpointSlice", "default", "svc-hinted-1")]
        out = k(lab, "get endpointslices svc-hinted-1 -o yaml")
        assert out.startswith("""\
addressType: IPv4
apiVersion: discovery.k8s.io/v1
endpoints:
- addresses:
  - 10.10.1.2
  conditions:
    ready: true
  hints:
    forZones:
    - name: ap-northeast-2a
  nodeName: myk8s-worker
  zone: ap-northeast-2a
- addresses:
  - 10.10.2.2
  conditions:
    ready: true
  hints:
    forZones:
    - name: ap-northeast-2b
    - name: "on"
  nodeName: myk8s-worker2
  zone: ap-northeast-2b
kind: EndpointSlice
metadata:
"""), out
        assert out.endswith(f"""\
  name: svc-hinted-1
  namespace: default
  resourceVersion: "{sl.resource_version}"
  uid: {sl.uid}
ports:
- name: web
  port: 80
  protocol: TCP
"""), out
        doc = yaml.safe_load(out)
        assert [e["hints"]["forZones"] for e in doc["endpoints"]] == [[{"name": "ap-northeast-2a"}], [{"name": "ap-northeast-2b"}, {"name": "on"}]]
    finally:
        lab.close()
