"""The fake live cluster for the kind backend's tests: kindapi's fake API server (fixture
``myk8s``) with pods' exec answered by the same simulated machine the fake ``docker`` answers for
nodes (:class:`dockerfake.Sim`: the recorded node dumps in kslab's simulator).

- :func:`start` (in-process, for tests): the server started, a kubeconfig written, the fake
  docker's environment (PATH, state and nodes directories) returned for the test to set;
- ``python tests/kindfake/livecluster.py DIR`` (a subprocess, for the notebooks): the same, then
  ``DIR/env.json`` (the environment a notebook needs: KUBECONFIG, PATH, ...) and it serves until
  killed.

A Deployment created through the API gets its pods (:func:`deployment_controller`, chapter 08's
``mario``), and a Service created through the API gets its EndpointSlice (:func:`endpointslice_controller`, the
pods its selector matches, as the EndpointSlice controller writes it; chapter 07's ``svc-lb``).
A write to a Service or an EndpointSlice is followed by every node's kube-proxy (kslab's Proxier,
a partial sync into the same simulator: :func:`kube_proxy`), so the nodes' rules follow the API
as on a live cluster. A pod's ``iperf3 -c ...`` is answered with real iperf3 outputs by :mod:`kindfake.iperf3fake`
(the servers are the pods running ``iperf3 -s``, one test at a time; chapter 10). A pod's other execs (``kubectl exec
net-pod -- curl ...``, kslab's curl loop) run through the simulator
(except in a pod whose image is the app's binary alone, traefik/whoami: there nothing can be exec'd, as on a live
cluster),
which then writes the nodes' tables back to the fake docker's nodes directory (a copy of the
recorded dumps): the counters a later ``docker exec NODE iptables -L -v`` prints have moved by
the connections made, as on a live node.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def environment(state: Path) -> dict[str, str]:
    """The fake docker's environment for a run whose state lives in ``state``."""
    return {
        "PATH": f"{HERE}{os.pathsep}{os.environ.get('PATH', '')}",
        "KSLAB_FAKE_DOCKER_STATE": str(state / "docker"),
        "KSLAB_FAKE_DOCKER_NODES": str(state / "nodes"),
    }


def kube_proxy(sim, nodes: Path, lock: threading.Lock):
    """A write hook playing every node's kube-proxy: after a write to a Service or an EndpointSlice,
    each node's Proxier syncs (partially, as kube-proxy does after a change: only the changed
    Services' chains are rewritten, the other rules keep their counters) from the objects the
    server now stores, into the simulator the fake docker reads. Each Proxier starts primed with
    the cluster the recorded dumps were made for."""
    from kslab.kind.dataplane import read_cluster
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.proxier import Proxier

    base, options = sim.lab.cluster, sim.lab.proxy_options
    proxiers = {}
    for node in base.nodes:
        proxiers[node.name] = Proxier(ProxyConfig.for_node(base, node.name, **options))
        proxiers[node.name].sync_and_retry(base.services, base.endpoint_slices, lambda rs: None, now=0.0)  # what the dumps hold

    class Objects:  # the reading side of a KindClient, over the server's store
        context = "kind-myk8s"

        def __init__(self, server):
            self.server = server

        def list_objects(self):
            return [o for o in self.server.objects() if o["kind"] in ("Node", "Pod", "Service", "EndpointSlice")]

        def list_kind(self, kind):
            return self.server.objects(kind)

        def kube_proxy_configmap(self):
            return next((o for o in self.server.objects("ConfigMap") if o["metadata"]["name"] == "kube-proxy"), None)

    def hook(server, verb: str, obj: dict) -> None:
        if obj.get("kind") not in ("Service", "EndpointSlice"):
            return
        cluster = read_cluster(Objects(server))
        with lock:
            for name, proxier in proxiers.items():
                proxier.sync_and_retry(cluster.services, cluster.endpoint_slices,
                                       lambda rs, n=name: sim.dp.sync_rules(n, rs), list_nat_chains=lambda n=name: sim.dp.nat_chains(n),
                                       now=0.0)
            sim.persist(nodes)

    return hook


def endpointslice_controller():
    """A write hook playing the EndpointSlice controller for a Service created through the API (the
    recorded Services have their slices already): one slice, ``<service>-<5 letters>``, with every
    pod its selector matches (``ready`` as the pod's Ready condition) and the Service's ports by
    their target port, labelled ``kubernetes.io/service-name``; a deleted Service's slices go with
    it. Written with the server's own write path, so the kube-proxy hook follows."""
    import uuid

    def hook(server, verb: str, obj: dict) -> None:
        if obj.get("kind") != "Service":
            return
        md, spec = obj["metadata"], obj.get("spec") or {}
        ns, name = md.get("namespace", "default"), md["name"]
        mine = [o for o in server.objects("EndpointSlice")
                if o["metadata"].get("namespace") == ns and (o["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name]
        if verb == "delete":
            for o in mine:
                server.store.delete("EndpointSlice", ns, o["metadata"]["name"])
                server._written("delete", o)
            return
        selector = spec.get("selector")
        if verb != "create" or mine or not selector:
            return
        pods = [o for o in server.objects("Pod") if o["metadata"].get("namespace") == ns
                and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and (o.get("status") or {}).get("podIP")]
        ready = {o["metadata"]["name"]: any(c.get("type") == "Ready" and c.get("status") == "True"
                                           for c in (o.get("status") or {}).get("conditions") or []) for o in pods}
        slice_name = f"{name}-{uuid.uuid4().hex[:5]}"
        sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
              "metadata": {"name": slice_name, "namespace": ns, "generateName": f"{name}-", "generation": 1,
                           "uid": str(uuid.uuid4()),
                           "labels": {"kubernetes.io/service-name": name,
                                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                           "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                                "kind": "Service", "name": name, "uid": md.get("uid")}]},
              "endpoints": [{"addresses": [o["status"]["podIP"]],
                             "conditions": {"ready": ready[o["metadata"]["name"]], "serving": ready[o["metadata"]["name"]],
                                            "terminating": False},
                             "nodeName": o["spec"].get("nodeName"),
                             "targetRef": {"kind": "Pod", "name": o["metadata"]["name"], "namespace": ns,
                                           "uid": o["metadata"].get("uid")}} for o in sorted(pods, key=lambda o: o["metadata"]["name"])],
              "ports": [{"name": p.get("name", ""), "port": p.get("targetPort", p.get("port")), "protocol": p.get("protocol", "TCP")}
                        for p in spec.get("ports") or []]}
        server._written("create", server.store.put(sl))

    return hook


def deployment_controller():
    """A write hook playing the Deployment controller and the scheduler for a Deployment created
    through the API (the recorded Deployments have their pods already; chapter 08's ``mario``):
    its ReplicaSet ``<deployment>-<hash>`` and ``spec.replicas`` pods ``<deployment>-<hash>-<5 letters>`` from the template, spread over the
    workers in turn (over the nodes the template's ``nodeSelector`` / ``nodeName`` allow, when it has one: chapter 10's iperf3
    pods are pinned by the study's ``mynode`` labels), each with the next free address of its node's podCIDR, Running and Ready (as
    once their readiness probes passed). Written before the add-on's Service, so its slice lists them."""
    import ipaddress
    import uuid

    def hook(server, verb: str, obj: dict) -> None:
        if obj.get("kind") != "Deployment" or verb != "create":
            return
        md, spec = obj["metadata"], obj.get("spec") or {}
        ns, name = md.get("namespace", "default"), md["name"]
        template = copy.deepcopy(spec.get("template") or {})
        pth = uuid.uuid4().hex[:10]
        workers = [n for n in sorted(server.objects("Node"), key=lambda n: n["metadata"]["name"])
                   if "node-role.kubernetes.io/control-plane" not in (n["metadata"].get("labels") or {})]
        pod_spec = (template.get("spec") or {})
        selector = pod_spec.get("nodeSelector") or {}
        if selector or pod_spec.get("nodeName"):  # the scheduler's NodeName and NodeAffinity (nodeSelector) filters
            workers = [n for n in sorted(server.objects("Node"), key=lambda n: n["metadata"]["name"])
                       if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                       and pod_spec.get("nodeName") in (None, n["metadata"]["name"])]
            if not workers:
                return  # no node fits: the pods stay Pending, unscheduled (none made here)
        used = {(o.get("status") or {}).get("podIP") for o in server.objects("Pod")}
        labels = {**(template.get("metadata") or {}).get("labels", {}), "pod-template-hash": pth}
        replicas = int(spec.get("replicas", 1))
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{name}-{pth}", "namespace": ns, "uid": str(uuid.uuid4()), "labels": labels,
                           "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                                "kind": "Deployment", "name": name, "uid": md.get("uid")}]},
              "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
              "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}}
        server._written("create", server.store.put(rs))
        for i in range(replicas):
            node = workers[i % len(workers)]
            cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
            ip = next(str(a) for a in list(cidr.hosts())[1:] if str(a) not in used)
            used.add(ip)
            pod_name = f"{name}-{pth}-{uuid.uuid4().hex[:5]}"
            containers = template.get("spec", {}).get("containers") or []
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "namespace": ns, "uid": str(uuid.uuid4()), "generateName": f"{name}-{pth}-",
                                "labels": dict(labels),
                                "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                                     "kind": "ReplicaSet", "name": f"{name}-{pth}", "uid": rs["metadata"]["uid"]}]},
                   "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": node["metadata"]["name"]},
                   "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                              "hostIP": next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"),
                              "conditions": [{"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                              "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "ready": True, "restartCount": 0,
                                                     "started": True, "state": {"running": {"startedAt": "2025-06-02T09:02:00Z"}}}
                                                    for c in containers]}}
            server._written("create", server.store.put(pod))

    return hook


def serve_machine(sim, nodes: Path, lock: threading.Lock, iperf3: Any = None) -> str:
    """The simulator as the fake docker's machine: a tiny HTTP endpoint on 127.0.0.1 that runs
    ``docker exec CONTAINER ARGV`` in this process's simulator (POST JSON ``{"where", "argv"}`` ->
    ``{"stdout", "stderr", "code"}``), so nodes and pods share one kernel state (conntrack,
    ``recent`` lists, counters), as on one live cluster. Returns its URL."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if req["argv"][:1] == ["iperf3"] and req["where"] == "mypc" and iperf3:  # netshoot has iperf3; nodes do not
                ans = iperf3[0].answer("mypc", MYPC_FAKE_IP, "", "default", req["argv"])
                time.sleep(ans.delay)
                stdout, stderr, code = ans.stdout, ans.stderr, ans.exit_code
            else:
                with lock:
                    stdout, stderr, code = sim.answer(req["where"], req["argv"])
                    if req["argv"][:1] == ["curl"] or req["argv"][:2] == ["sh", "-c"]:
                        sim.persist(nodes)
            body = json.dumps({"stdout": stdout, "stderr": stderr, "code": code}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


SCRATCH_IMAGES = ("traefik/whoami",)  # images with the app's binary alone: no sh, curl, ip or hostname to exec
IPERF3_IMAGES = ("networkstatic/iperf3", "nicolaka/netshoot")  # images that have iperf3 (netshoot: net-pod, mypc)
MYPC_FAKE_IP = "172.18.0.100"  # mypc on the fake docker's default kind network (KSLAB_FAKE_DOCKER_SUBNET unset)


def _image(server, namespace: str, pod: str) -> str:
    """The image of the pod's first container, as the server stores it ("" for no such pod)."""
    for o in server.objects("Pod"):
        if (o["metadata"].get("namespace"), o["metadata"]["name"]) == (namespace, pod):
            return str(o["spec"]["containers"][0].get("image", ""))
    return ""


def start(state: Path, *, fixture: str = "myk8s", context: str = "kind-myk8s", **server_kw: Any):
    """Start the fake cluster; returns (server, env): ``env`` has KUBECONFIG and the fake docker's variables."""
    sys.path.insert(0, str(ROOT))
    state = Path(state)
    env = environment(state)
    nodes = Path(env["KSLAB_FAKE_DOCKER_NODES"])
    if not nodes.exists():
        shutil.copytree(ROOT / "tests" / "data" / "kind-nodes", nodes, ignore=shutil.ignore_patterns("*.md"))
    Path(env["KSLAB_FAKE_DOCKER_STATE"]).mkdir(parents=True, exist_ok=True)
    import dockerfake
    from kindfake.fixtures import server_for
    from kindfake.server import ExecAnswer

    dockerfake.NODES = nodes  # this process's simulator reads and writes the run's copy of the dumps
    sim = dockerfake.Sim()
    lock = threading.Lock()

    def handler(req) -> ExecAnswer:
        where = req.pod if req.namespace == "default" else f"{req.namespace}/{req.pod}"
        image = _image(server, req.namespace, req.pod).split(":")[0]
        if image in SCRATCH_IMAGES:  # nothing to run but the app
            return ExecAnswer("", dockerfake.missing_executable(req.argv[0] if req.argv else ""), 127)
        if req.argv[:1] == ("iperf3",):  # chapter 10: real iperf3 outputs (iperf3fake), where the image has iperf3
            if image not in IPERF3_IMAGES:
                return ExecAnswer("", dockerfake.missing_executable("iperf3"), 127)
            return server.iperf3(req)
        with lock:
            stdout, stderr, code = sim.answer(where, list(req.argv))
            if req.argv[:1] == ("curl",) or req.argv[:2] == ("sh", "-c"):
                sim.persist(nodes)
        return ExecAnswer(stdout, stderr, code)

    iperf3: list = []  # the iperf3 servers, once the API server exists (mypc's docker exec of iperf3 -c asks them)
    env["KSLAB_FAKE_DOCKER_MACHINE"] = serve_machine(sim, nodes, lock, iperf3)
    server = server_for(fixture, **server_kw)
    server.exec_handler = handler
    from kindfake.iperf3fake import Iperf3Servers

    server.iperf3 = Iperf3Servers(server)  # the iperf3 pods' answers; tests read server.iperf3.tests, set .hold
    iperf3.append(server.iperf3)
    server.on_write.append(deployment_controller())
    server.on_write.append(endpointslice_controller())
    server.on_write.append(kube_proxy(sim, nodes, lock))
    server.start()
    env["KUBECONFIG"] = str(server.write_kubeconfig(state / "kubeconfig", context=context))
    return server, env


def main(argv: list[str]) -> int:
    state = Path(argv[0])
    state.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE.parent))  # the kindfake package
    server, env = start(state)
    (state / "env.json").write_text(json.dumps(env))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
