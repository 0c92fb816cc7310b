"""The ``kind`` dataplane: a live kind cluster, its own kube-proxy, real connections.

:func:`open_live` connects (:class:`kslab.kind.client.KindClient`: a ``kind-*`` context, the
API server answering, RBAC allowing), checks ``docker`` and the node containers, and reads the
cluster: Nodes, Pods, Services and EndpointSlices through the kubernetes client into the same
:class:`~kslab.model.ClusterState` the control-plane emulation builds
(:func:`kslab.observed.cluster_from_objects`), and kube-proxy's options from its ConfigMap. It
returns a :class:`LiveCluster`: that state, a :class:`LiveControlPlane` (the API server in the
place of :class:`kslab.controlplane.ControlPlane`) and a :class:`KindDataplane`. The Lab keeps
its Proxiers on kind: they are the *prediction* of what the node's kube-proxy wrote
(``lab.render(node)``), compared with the node's real tables by ``lab.verify(node)``.

The lab's objects are made once with ``kslab apply`` (:func:`apply_documents`: labelled as
kslab's); :func:`open_live` refuses, in one line naming that command, a cluster that lacks them or
whose copies were made outside kslab, and a context not allowed to do what the chapters do (exec,
patch: :func:`check_permissions`), so a notebook falls back to sim at once. Read-only unless
asked: nothing in the cluster changes until a verb that changes it (``lab.apply()``, ``scale``,
``patch_service``, ``delete_pod``, ``reset``), which goes to the API server, on objects carrying
kslab's label only (KindClient checks). A
pod's readiness is its kubelet's, a pod's app and a node's rules are not kslab's to break or edit:
those verbs say so in one line (try them on ``lab.copy()``, a sim twin holding the nodes' real
dumps).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pandas as pd

from ..dataplane.base import Dataplane, RealClock
from ..dataplane.rows import COLUMNS
from ..errors import EnvironmentProblem, InputError
from ..sim.network import MYPC_IP, resolve_client
from . import traffic
from .traffic import MYPC, Docker, Progress

if TYPE_CHECKING:
    from ..bandwidth import BandwidthPath
    from ..iperf3 import IperfOptions
    from ..manifests import Document
    from ..model import ClusterState
    from ..proxy.iptables import RuleSet
    from ..shell import Command, ShellOutput
    from ..dataplane.trace import Trace

BATCH = 500  # connections per exec: one exec per batch, the progress bar moves between batches
PROGRESS_FROM = 1000  # runs of more connections than this show a progress bar
ROLLOUT_TIMEOUT = 300.0  # seconds lab.apply() waits for the Deployments to roll out
SAVE_TIMEOUT = 30.0
TRACE_SOURCE = "simulator over the nodes' live iptables-save (docker exec)"
NFT_TRACE_SOURCE = "simulator over the nodes' live nft list table ip kube-proxy (docker exec)"
NFT_LIST = ("nft", "list", "table", "ip", "kube-proxy")  # what kube-proxy's nftables mode writes on a node


def _client_type():
    from .client import KindClient  # the one module that imports kubernetes

    return KindClient


def read_cluster(client: Any) -> ClusterState:
    """The live cluster's state, read through the API server (with kube-proxy's ConfigMap, whose
    clusterCIDR is the pod subnet), and the cluster-wide facts the API does not state as such
    (:func:`fill_config`)."""
    return read_live(client)[0]


def read_live(client: Any) -> tuple[ClusterState, list[dict]]:
    """:func:`read_cluster`, and the objects as the API server sent them (Nodes, Pods, Services,
    EndpointSlices, Deployments: what :func:`check_lab_objects` looks for the lab's objects in)."""
    from ..observed import cluster_from_objects

    objects = client.list_objects()
    cm = client.kube_proxy_configmap()
    deployments = client.list_kind("Deployment")  # what lab.scale and the panels count pods by
    replica_sets = client.list_kind("ReplicaSet")
    state = cluster_from_objects(objects + deployments + ([cm] if cm else []), source=f"context {client.context}")
    fill_config(state, objects, client.context)
    link_owners(state, objects, replica_sets)
    fill_records(state, [*objects, *deployments])
    state.events = live_events(client)
    for sl in state.endpoint_slices:  # the controller's slices: a sim copy's controller keeps them up to date
        if sl.labels.get("endpointslice.kubernetes.io/managed-by") == "endpointslice-controller.k8s.io":
            sl.managed = True
    return state, [*objects, *deployments]


def live_events(client: Any) -> list:
    """The cluster's core/v1 Events as ``model.Event`` (times on the control plane's clock, like
    :func:`fill_records`), so kslab's ``kubectl get events`` and describe's Events print what the
    API server holds. A context not allowed to list events gets none, as kubectl describe then
    prints no Events."""
    from datetime import datetime

    from ..apiobjects import CLUSTER_EPOCH
    from ..model import Event

    try:
        objs = client.list_kind("Event")
    except EnvironmentProblem as e:
        if "forbidden" in str(e):
            return []
        raise

    def seconds(value: Any) -> float | None:
        if not value:
            return None
        try:
            return max(0.0, datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() - CLUSTER_EPOCH.timestamp())
        except ValueError:
            return None

    out = []
    for o in objs:
        md, inv = o.get("metadata") or {}, o.get("involvedObject") or {}
        series = o.get("series") or {}
        first = seconds(o.get("firstTimestamp")) or seconds(o.get("eventTime")) or 0.0
        last = seconds(series.get("lastObservedTime")) or seconds(o.get("lastTimestamp")) or first
        count = int(series.get("count") or o.get("count") or 1)
        out.append(Event(involved_kind=str(inv.get("kind") or ""), namespace=str(inv.get("namespace") or md.get("namespace") or "default"),
                         name=str(inv.get("name") or ""), type=str(o.get("type") or ""), reason=str(o.get("reason") or ""),
                         message=str(o.get("message") or ""),
                         source=str((o.get("source") or {}).get("component") or o.get("reportingComponent") or ""),
                         at=last, count=count, first_at=first, event_name=str(md.get("name") or "")))
    return out


def fill_records(state: ClusterState, objects: Sequence[dict]) -> None:
    """The API server's bookkeeping of each object (creation time, uid, resourceVersion,
    generation) from its metadata, and the control plane's clock at now, so kslab's kubectl
    prints a live object's real AGE and metadata. An Endpoints object kslab derives from the
    slices counts from its Service's creation."""
    from datetime import datetime

    from ..apiobjects import CLUSTER_EPOCH
    from ..model import ObjectRecord

    state.clock = max(0.0, time.time() - CLUSTER_EPOCH.timestamp())
    for obj in objects:
        md = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "")
        try:
            created = datetime.fromisoformat(str(md.get("creationTimestamp")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        ns = "" if kind == "Node" else str(md.get("namespace") or "default")
        rv = str(md.get("resourceVersion") or "1")
        rec = ObjectRecord(created=max(0.0, created - CLUSTER_EPOCH.timestamp()), uid=str(md.get("uid") or ""),
                           resource_version=int(rv) if rv.isdigit() else 1, generation=int(md.get("generation") or 1))
        state.records[(kind, ns, str(md.get("name")))] = rec
        if kind == "Service":
            state.records.setdefault(("Endpoints", ns, str(md.get("name"))), rec)
    state.revision = max([r.resource_version for r in state.records.values()] or [0])


def link_owners(state: ClusterState, objects: Sequence[dict], replica_sets: Sequence[dict]) -> None:
    """Each pod's ``owner`` (``Deployment/NAME``, as the control-plane emulation sets it) from the
    live ownerReferences: pod -> its controlling ReplicaSet -> that ReplicaSet's Deployment."""
    def controller(obj: dict) -> tuple[str, str] | None:
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller"):
                return str(ref.get("kind")), str(ref.get("name"))
        return None

    rs_owner = {((rs.get("metadata") or {}).get("namespace"), (rs.get("metadata") or {}).get("name")): controller(rs)
                for rs in replica_sets}
    pod_rs = {((o.get("metadata") or {}).get("namespace") or "default", (o.get("metadata") or {}).get("name")): controller(o)
              for o in objects if o.get("kind") == "Pod"}
    for pod in state.pods:
        ref = pod_rs.get((pod.namespace, pod.name))
        if ref and ref[0] == "ReplicaSet":
            dep = rs_owner.get((pod.namespace, ref[1]))
            if dep and dep[0] == "Deployment":
                pod.owner = f"Deployment/{dep[1]}"


def _flag(objects: Sequence[dict], pod_prefix: str, flag: str) -> str:
    """A ``--flag=value`` of a kube-system static pod's command (kubeadm and kind start the control
    plane's components as static pods whose command carries their flags), or ""."""
    for obj in objects:
        md = obj.get("metadata") or {}
        if obj.get("kind") != "Pod" or md.get("namespace") != "kube-system" or not str(md.get("name", "")).startswith(pod_prefix):
            continue
        for c in (obj.get("spec") or {}).get("containers") or []:
            for arg in [*(c.get("command") or []), *(c.get("args") or [])]:
                if str(arg).startswith(f"--{flag}="):
                    return str(arg).split("=", 1)[1].split(",")[0]
    return ""


def _covering(addresses: Sequence[str], widest: int, narrowest: int) -> str:
    """The smallest network (a prefix between ``widest`` and ``narrowest`` bits) holding every address, or ""."""
    import ipaddress

    ips = [ipaddress.ip_address(a) for a in addresses if a and a != "None"]
    if not ips:
        return ""
    for bits in range(narrowest, widest - 1, -1):
        net = ipaddress.ip_network(f"{ips[0]}/{bits}", strict=False)
        if all(ip in net for ip in ips):
            return str(net)
    return ""


def fill_config(state: ClusterState, objects: Sequence[dict], context: str) -> None:
    """The cluster's name (``kind-NAME`` -> NAME), Service subnet (the API server's
    ``--service-cluster-ip-range``, else the smallest /24 or wider network holding every
    ClusterIP), pod subnet (kube-proxy's clusterCIDR, else the controller manager's
    ``--cluster-cidr``, else what holds every podCIDR) and node subnet (the smallest /16 or
    wider network holding the nodes: kind's docker network)."""
    cfg = state.config
    cfg.name = context[len("kind-"):] if context.startswith("kind-") else context
    cfg.service_subnet = (_flag(objects, "kube-apiserver", "service-cluster-ip-range")
                          or _covering([s.cluster_ip for s in state.services], 8, 24) or cfg.service_subnet)
    cfg.pod_subnet = (cfg.pod_subnet or _flag(objects, "kube-controller-manager", "cluster-cidr")
                      or _covering([n.pod_cidr.split("/")[0] for n in state.nodes if n.pod_cidr], 8, 16))
    cfg.node_subnet = _covering([n.internal_ip for n in state.nodes], 8, 16) or cfg.node_subnet


def read_proxy_options(client: Any) -> dict[str, Any]:
    """kube-proxy's options from the live ``kube-system/kube-proxy`` ConfigMap ({} when absent)."""
    from ..observed import proxy_options_from_configmap

    cm = client.kube_proxy_configmap()
    return proxy_options_from_configmap(cm) if cm else {}


@dataclass
class LiveCluster:
    """What :func:`open_live` found: the cluster's state, the API server as a control plane, the dataplane."""

    cluster: ClusterState
    control: "LiveControlPlane"
    dataplane: "KindDataplane"
    proxy_options: dict[str, Any]


def open_live(*, context: str | None = None, allow_any_context: bool = False, seed: int = 0,
              client: Any = None, docker: Docker | None = None, documents: Sequence[Document] | None = None,
              paths: Sequence[str] | None = None) -> LiveCluster:
    """Connect to the kind cluster of ``context`` (default: the kubeconfig's current context) and read it.

    Every way this can fail is one line (:class:`~kslab.errors.EnvironmentProblem`): no kubeconfig,
    context missing or not ``kind-*`` (unless ``allow_any_context``), API unreachable or slow,
    RBAC 403 (the verb and resource), docker missing, a node container missing, what the chapters
    do after opening not allowed (:func:`check_permissions`: exec in the client pods, the patches
    of the lab's objects), and the lab's objects (``documents``: the Lab's manifests, read from
    ``paths``, None for the study's lab) missing or made outside kslab (:func:`check_lab_objects`,
    whose line names the ``kslab apply`` that fixes it). ``client`` and ``docker`` are for tests
    (a KindClient and a Docker already made)."""
    docker = docker or Docker.find()
    made = client is None
    client = client or _client_type().connect(context, allow_any_context=allow_any_context)
    try:
        cluster, raw = read_live(client)
        if not cluster.nodes:
            raise EnvironmentProblem(f"context {client.context}: the API server lists no nodes")
        docker.check()
        docker.check_nodes([n.name for n in cluster.nodes], client.context)
        if documents is not None:
            check_permissions(client, documents)
            check_lab_objects(client, documents, raw, paths=paths)
        options = read_proxy_options(client)
    except BaseException:
        if made:
            client.close()  # the connection pool of a lab that will not open
        raise
    dp = KindDataplane(cluster, client=client, docker=docker, seed=seed, proxy_mode=options.get("mode") or "iptables")
    control = LiveControlPlane(cluster, client)
    return LiveCluster(cluster, control, dp, options)


def _ref(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind.lower()} {namespace + '/' if namespace else ''}{name}"


def _namespace_of(doc: Document) -> str | None:
    from .client import RESOURCES

    res = RESOURCES.get(doc.kind)
    if res is None or not res.namespaced:
        return None
    return str((doc.obj.get("metadata") or {}).get("namespace") or "default")


def check_permissions(client: Any, documents: Sequence[Document]) -> None:
    """What the chapters do on the live cluster after it opened, asked of the API server's
    authorizer up front (``kubectl auth can-i``, :meth:`~kslab.kind.client.KindClient.can_i`), so
    that a notebook falls back to sim at once instead of failing half-way: exec in the lab's pods'
    namespaces (``get`` and ``create`` on ``pods/exec``: the client's websocket handshake is a GET,
    authorized as ``get`` up to Kubernetes 1.34 and also as ``create`` from 1.35), and ``patch``
    of each kind of the lab's objects (``lab.patch_service``, ``lab.reset``) and of a Deployment's
    scale (``lab.scale``). The first refusal is one EnvironmentProblem naming the verb and resource."""
    from .client import APPLY_KINDS, RESOURCES

    checks: list[tuple[str, str, str, str, str | None]] = []  # (verb, resource, group, subresource, namespace)
    for ns in sorted({_namespace_of(d) or "default" for d in documents if d.kind == "Pod"}):
        checks += [("create", "pods", "", "exec", ns), ("get", "pods", "", "exec", ns)]
    for d in documents:
        if d.kind in APPLY_KINDS and d.kind != "Namespace":
            res = RESOURCES[d.kind]
            checks.append(("patch", res.plural, res.group, "", _namespace_of(d)))
            if d.kind == "Deployment":
                checks.append(("patch", res.plural, res.group, "scale", _namespace_of(d)))
    seen = set()
    for verb, resource, group, sub, ns in checks:
        if (verb, resource, group, sub, ns) in seen:
            continue
        seen.add((verb, resource, group, sub, ns))
        allowed, reason = client.can_i(verb, resource, namespace=ns, group=group, subresource=sub)
        if not allowed:
            what = f"{resource}{'/' + sub if sub else ''}{'.' + group if group else ''}"
            also = "exec not allowed: " if sub == "exec" else ""
            said = f" (the API server said: {' '.join(reason.split())})" if reason else ""
            raise EnvironmentProblem(f"{also}forbidden: context {client.context!r} cannot {verb} {what} in namespace {ns}{said}, "
                                     "which the chapters do on a live cluster; ask for RBAC permission (kubectl auth can-i "
                                     f"{verb} {what} -n {ns}) or use a context that has it")


def check_lab_objects(client: Any, documents: Sequence[Document], live: Sequence[dict], *,
                      paths: Sequence[str] | None = None) -> None:
    """The lab's objects (``documents``: Pods, Services, Deployments ... of its manifests) are on
    the cluster, created by kslab (:data:`~kslab.kind.client.MANAGED_LABEL`), so the chapters can
    read and change them. Otherwise one EnvironmentProblem saying what to run: none or some of them
    missing: ``kslab apply``; some made outside kslab (``kubectl apply``): delete them and
    ``kslab apply``, or ``kslab apply --adopt`` (kslab never changes an object it did not create,
    beyond adding its label to one that is exactly what the manifest says)."""
    from .client import APPLY_KINDS, MANAGED_LABEL_KEY, MANAGED_LABEL_VALUE, RESOURCES

    by_key = {(str(o.get("kind")), str((o.get("metadata") or {}).get("namespace") or ""),
               str((o.get("metadata") or {}).get("name"))): o for o in live}
    wanted = [d for d in documents if d.kind in APPLY_KINDS and d.kind != "Namespace"]
    missing: list[str] = []
    foreign: list[Document] = []
    for d in wanted:
        ns = _namespace_of(d)
        obj = by_key.get((d.kind, ns or "", d.name))
        if obj is None and d.kind not in ("Pod", "Service", "EndpointSlice", "Deployment"):  # not listed at open: ask
            res = RESOURCES[d.kind]
            obj = client._get_or_none(res, d.name, ns)
        if obj is None:
            missing.append(_ref(d.kind, ns, d.name))
        elif ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL_KEY) != MANAGED_LABEL_VALUE:
            foreign.append(d)
    ctx = client.context
    flags = f" --context {ctx}" + ("" if ctx.startswith("kind-") else " --context-any")
    files = "".join(f" -f {p}" for p in paths or ())
    apply_cmd = f"`kslab apply{flags}{files}`"

    def listed(refs: list[str]) -> str:
        return ", ".join(refs[:3]) + (f" and {len(refs) - 3} more" if len(refs) > 3 else "")

    if foreign:
        refs = [_ref(d.kind, _namespace_of(d), d.name) for d in foreign]
        sources = sorted({d.source.split("#")[0] for d in foreign})
        raise EnvironmentProblem(
            f"{ctx}: the lab's objects were made outside kslab ({listed(refs)} have no label "
            f"{MANAGED_LABEL_KEY}={MANAGED_LABEL_VALUE}), and kslab never changes what it did not create: "
            f"delete them (kubectl --context {ctx} delete -f {' -f '.join(sources)}) and create them with {apply_cmd}, "
            f"or hand them over unchanged with `kslab apply{flags}{files} --adopt`")
    if missing and len(missing) == len(wanted):
        raise EnvironmentProblem(f"{ctx} has none of the lab's objects yet (kslab changes nothing until asked): "
                                 f"create them with {apply_cmd}")
    if missing:
        raise EnvironmentProblem(f"{ctx} lacks {len(missing)} of the lab's {len(wanted)} objects ({listed(missing)}): "
                                 f"create them with {apply_cmd}")


def wait_rollouts(client: Any, deployments: Sequence[tuple[str, str]], *, timeout: float = ROLLOUT_TIMEOUT,
                  say: Any = None) -> None:
    """Wait for the ``(namespace, name)`` Deployments' rollouts: a progress bar (a widget in a
    notebook, a line on a terminal's stderr), or ``say(line)`` each time the count moves (the CLI)."""
    if not deployments:
        return
    bar = None if say else Progress(len(deployments), "rollout")
    last = [""]

    def progress(states: list[Any]) -> None:
        total = sum(s.desired for s in states) or len(states)
        ready = sum(min(s.available, s.desired) for s in states)
        if bar is not None:
            bar.total = total
            bar.update(ready)
            return
        line = f"rollout: {ready}/{total} replicas available (" + ", ".join(
            f"deployment {s.namespace}/{s.name}: {s.message}" for s in states) + ")"
        if line != last[0]:
            last[0] = line
            say(line)

    try:
        client.wait_rollout(list(deployments), timeout=timeout, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def _first_difference(want: Any, have: Any, path: str) -> str | None:
    """The first field ``want`` (a manifest's) sets that ``have`` (the live object's) does not hold
    with the same value, as a path (``spec.ports[0].targetPort``); None when every field the
    manifest sets is there, equal (the API server's defaults, fields the manifest leaves out, do
    not count). Lists must have the same length, element by element."""
    if want is None:
        return None
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return path
        for key, value in want.items():
            found = _first_difference(value, have.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return path
        for i, (a, b) in enumerate(zip(want, have)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if want == have else path


def adopt_objects(client: Any, documents: Sequence[Document]) -> list[str]:
    """``kslab apply --adopt``: the lab's objects that exist without kslab's label (made by
    ``kubectl apply -f data/myk8s/...``) get the label, and nothing else, when they are what the
    manifest says (every field it sets, the same; :func:`_first_difference`). One that differs
    stops the adoption before any label is added (InputError naming the object and the field).
    Returns ``kind/namespace/name adopted``."""
    from .client import APPLY_KINDS, FIELD_MANAGER, MANAGED_LABEL, MANAGED_LABEL_KEY, MANAGED_LABEL_VALUE, RESOURCES

    plan: list[tuple[Any, str | None, str]] = []
    for d in documents:
        if d.kind not in APPLY_KINDS or d.kind == "Namespace":
            continue
        res, ns = RESOURCES[d.kind], _namespace_of(d)
        live = client._get_or_none(res, d.name, ns)
        md = (live or {}).get("metadata") or {}
        if live is None or (md.get("labels") or {}).get(MANAGED_LABEL_KEY) == MANAGED_LABEL_VALUE:
            continue
        want = {k: v for k, v in d.obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
        want_md = d.obj.get("metadata") or {}
        want["metadata"] = {k: want_md[k] for k in ("labels", "annotations") if want_md.get(k)}
        diff = _first_difference(want, live, "")
        if diff:
            raise InputError(_ref(d.kind, ns, d.name), f"differs from the lab's manifest ({d.source}) at {diff}, "
                             "so kslab will not adopt it",
                             f"delete it (kubectl delete {res.qualified} {d.name}{' -n ' + ns if ns else ''}) "
                             "and run kslab apply without --adopt")
        plan.append((res, ns, d.name))
    done = []
    for res, ns, name in plan:
        client._request("PATCH", res.path(ns, name), body={"metadata": {"labels": dict(MANAGED_LABEL)}},
                        content_type="application/merge-patch+json", query=FIELD_MANAGER,
                        what=f"patch {res.qualified} {name}{' in namespace ' + ns if ns else ''}",
                        resource=res, namespace=ns, name=name)
        done.append(f"{res.kind.lower()}/{ns + '/' if ns else ''}{name} adopted")
    return done


def apply_documents(client: Any, documents: Sequence[Document], *, timeout: float = ROLLOUT_TIMEOUT,
                    say: Any = None, adopt: bool = False) -> list[str]:
    """``kubectl apply`` of the lab's manifests on a live cluster (what ``kslab apply`` and
    ``lab.apply()`` do): created objects carry kslab's label, an existing object without it stops
    the whole apply before anything changes (:meth:`~kslab.kind.client.KindClient.apply`), unless
    ``adopt`` and it is what its manifest says (:func:`adopt_objects`: then it only gets the
    label); then the Deployments' rollouts (:func:`wait_rollouts`). Returns
    ``kind/namespace/name created|configured|adopted``."""
    adopted = adopt_objects(client, documents) if adopt else []
    objects = [d.obj for d in documents if d.kind not in ("Cluster",)]  # a kind Cluster config is not an API object
    changed = adopted + client.apply(objects)
    wait_rollouts(client, [(_namespace_of(d) or "default", d.name) for d in documents if d.kind == "Deployment"],
                  timeout=timeout, say=say)
    return changed


# ---- the API server as the Lab's control plane ---------------------------------------------------
class LiveControlPlane:
    """The Lab's control plane on kind: the live API server (in the place of
    :class:`kslab.controlplane.ControlPlane`, with the same verbs). Each change goes to the API
    server through :class:`~kslab.kind.client.KindClient` (which changes only objects carrying
    kslab's label), waits for the cluster to follow, and re-reads it into :attr:`state`
    (the Lab takes its cluster from there)."""

    live = True

    def __init__(self, state: ClusterState, client: Any, *, rollout_timeout: float = ROLLOUT_TIMEOUT) -> None:
        self.state = state
        self.client = client
        self.rollout_timeout = rollout_timeout
        self.changed = False  # True once kslab changed the cluster (reset re-applies the lab's manifests)
        self._undo: dict[tuple[str, str], dict[tuple[str, ...], Any]] = {}  # (namespace, name) -> the Service spec fields before kslab's patches

    def refresh(self) -> ClusterState:
        self.state = read_cluster(self.client)
        return self.state

    def _wait(self, deployments: Sequence[tuple[str, str]]) -> None:
        """Wait for the ``(namespace, name)`` Deployments' rollouts, with a progress bar (ready replicas)."""
        wait_rollouts(self.client, deployments, timeout=self.rollout_timeout)

    def apply(self, docs: list[Document]) -> list[str]:
        """``kubectl apply`` of ``docs`` on the live cluster (:func:`apply_documents`: created objects
        carry kslab's label; an existing object without it is never changed), then a re-read."""
        self.changed = True  # reset() applies the manifests again, even after a rollout that timed out
        changed = apply_documents(self.client, docs, timeout=self.rollout_timeout)
        self.refresh()
        return changed

    def scale(self, name: str, replicas: int, namespace: str = "default", reconcile: bool = True) -> None:
        if replicas < 0:
            raise InputError("replicas", f"{replicas} is negative", "use 0 or more")
        self.client.scale(name, namespace, replicas)
        self.changed = True
        self._wait([(namespace, name)])
        self.refresh()

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        pod = self.state.pod(name, namespace)
        self.client.delete_pod(name, namespace)
        self.changed = True
        owner = (pod.owner or "").partition("/")
        if owner[0] == "Deployment":
            self._wait([(namespace, owner[2])])
        self.refresh()

    def set_zones(self, zones: Any) -> None:
        """kslab changes only objects it created, and a live cluster's Nodes are kind's: the zones
        are set on the simulator twin (or in the kind Cluster config's node ``labels``)."""
        from ..controlplane import check_zones

        check_zones(self.state, zones)
        raise InputError("lab.set_zones", "kslab does not relabel a live cluster's Nodes (it changes only objects it created)",
                         'run it on the simulator twin: on = lab.exact("node zones"); on.set_zones(...), or give the '
                         "nodes topology.kubernetes.io/zone labels in the kind Cluster config")

    def set_pod_ready(self, name: str, ready: bool, namespace: str = "default") -> None:
        raise EnvironmentProblem("the kind backend cannot set a live pod's readiness (its kubelet's probe does); "
                                 "try it on lab.copy()")

    def patch_service(self, name: str, namespace: str = "default", **spec: Any) -> None:
        """Patch Service fields given as kslab.model.Service names (``session_affinity="ClientIP"``,
        ``session_affinity_timeout=10800``, ``external_traffic_policy="Local"`` ...) with the API's
        names (a JSON merge patch of ``spec``; None removes a field)."""
        self.state.service(name, namespace)
        body: dict[str, Any] = {}
        for key, value in spec.items():
            path = _SERVICE_FIELDS.get(key)
            if path is None:
                raise InputError(f"service {name}: {key}", "cannot be patched on a live cluster",
                                 "use one of: " + ", ".join(sorted(_SERVICE_FIELDS)))
            # no timeout: no sessionAffinityConfig at all (the API server refuses one with sessionAffinity None)
            _put(body, path[:1] if value is None else path, value)
        live = self.client.get_object("Service", name, namespace).get("spec") or {}
        undo = self._undo.setdefault((namespace, name), {})
        for key in spec:
            path = _SERVICE_FIELDS[key][:1]  # the top spec field, restored whole
            if path not in undo:
                undo[path] = _get(live, path)  # None: the field was not set (a merge patch's null removes it)
        self.client.patch_service(name, namespace, {"spec": body})
        self.changed = True
        self.refresh()

    def advance(self, seconds: float) -> None:
        """The live cluster's clock is the real one (the dataplane waits)."""
        if seconds < 0:
            raise InputError("seconds", f"{seconds} is negative", "the clock only moves forward")

    def reset(self, docs: list[Document]) -> ClusterState:
        """Back to the lab's manifests: if kslab changed the cluster, undo its Service patches (a
        field the manifests do not set survives an apply), apply the manifests again (replicas,
        Service specs) and wait; then re-read. A lab that only read the cluster just re-reads it."""
        if self.changed:
            for (namespace, name), fields in self._undo.items():  # apply keeps fields the manifests do not set
                body: dict[str, Any] = {}
                for path, value in fields.items():
                    _put(body, path, value)
                self.client.patch_service(name, namespace, {"spec": body})
            self._undo.clear()
            self.apply(docs)
        return self.refresh()


# kslab.model.Service field -> the path of the Service's spec field in the API
_SERVICE_FIELDS: dict[str, tuple[str, ...]] = {
    "session_affinity": ("sessionAffinity",),
    "session_affinity_timeout": ("sessionAffinityConfig", "clientIP", "timeoutSeconds"),
    "external_traffic_policy": ("externalTrafficPolicy",),
    "internal_traffic_policy": ("internalTrafficPolicy",),
    "traffic_distribution": ("trafficDistribution",),
    "type": ("type",),
}


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


# ---- the dataplane -------------------------------------------------------------------------------
class KindDataplane(RealClock, Dataplane):
    """A live kind cluster as the dataplane. kube-proxy is the cluster's own: :meth:`sync_rules`
    loads nothing (the Lab's Proxiers are the prediction of what the node's kube-proxy wrote),
    :meth:`save_text` is the node's real ``iptables-save`` (``docker exec``), :meth:`connect`
    runs curl loops in the client by exec (a pod: the API server's exec; ``mypc`` or a node:
    ``docker exec``) against the Service's pods and reads who answered and the address they saw,
    :meth:`trace` walks the nodes' real dumps with kslab's netfilter interpreter. The clock and
    the kernel's randomness are real: runs repeat only statistically."""

    backend = "kind"
    loads_rules = False  # the Lab's syncs load nothing: the cluster's kube-proxy writes the rules
    exact = False  # conntrack, recent lists, counters, the clock, pods' apps: the live cluster's, not kslab's

    def __init__(self, cluster: ClusterState, *, client: Any, docker: Docker, seed: int = 0,
                 proxy_mode: str = "iptables") -> None:
        self.cluster = cluster
        self.client = client
        self.docker = docker
        self.seed = seed
        # the cluster's kube-proxy mode (its ConfigMap's): in nftables mode the nodes' kube-proxy rules are
        # table ip kube-proxy, read with `docker exec NODE nft list table ip kube-proxy` (nft_list)
        self.proxy_mode = proxy_mode
        self._t0 = time.monotonic()
        self._mypc_started = False
        self._mypc_ip: str | None = None  # read from docker's kind network when mypc is first used
        self._traces = 0  # each trace draws the ladder afresh (seed + traces so far), as new connections do
        self._exec_checked: set[str] = set()  # namespaces where RBAC allows pods/exec (iperf3 asks once each)

    # ---- rules ---------------------------------------------------------------------------------
    def sync_rules(self, node: str, ruleset: RuleSet) -> None:
        """Nothing: the node's own kube-proxy writes its rules (kslab's render is the prediction)."""

    def nat_chains(self, node: str) -> list[str]:
        """[] (no docker exec per sync): the prediction deletes no stale chains, the real kube-proxy does."""
        return []

    def existing_chains(self, node: str, mode: str = "iptables") -> list[str]:
        """[] (no docker exec per sync), in either mode: as :meth:`nat_chains`."""
        return []

    def existing_sets(self, node: str, mode: str = "nftables") -> list[str]:
        """[] (no docker exec per sync): as :meth:`nat_chains`."""
        return []

    def nft_list(self, node: str) -> str:
        """The node's real ``table ip kube-proxy``: ``docker exec NODE nft list table ip kube-proxy``
        (the exec path of :meth:`save_text`); ``""`` when the node has no such table (its
        kube-proxy runs iptables mode)."""
        self.cluster.node(node)
        r = self.docker.exec(node, list(NFT_LIST), timeout=SAVE_TIMEOUT)
        if r.exit_code != 0:
            if "No such file or directory" in r.stderr:  # nft's answer for a table that is not there
                return ""
            raise EnvironmentProblem(f"{' '.join(NFT_LIST)} on {node} failed: {traffic._one_line(r.stderr) or r.exit_code}")
        return r.stdout

    def save_text(self, node: str) -> str:
        """The node's real tables: ``docker exec NODE iptables-save``."""
        self.cluster.node(node)
        r = self.docker.exec(node, ["iptables-save"], timeout=SAVE_TIMEOUT)
        if r.exit_code != 0:
            raise EnvironmentProblem(f"iptables-save on {node} failed: {traffic._one_line(r.stderr) or r.exit_code}")
        return r.stdout

    def delete_rules(self, pattern: re.Pattern[str], nodes: Sequence[str]) -> int:
        raise EnvironmentProblem("the kind backend does not edit a live node's rules by hand (its kube-proxy owns them); "
                                 "try it on lab.copy()")

    # ---- pods ----------------------------------------------------------------------------------
    def update_pods(self, cluster: ClusterState) -> None:
        self.cluster = cluster  # the live pods are the cluster's (the control plane re-read them)

    def break_pod(self, pod: str, broken: bool = True) -> None:
        if broken:
            raise EnvironmentProblem("the kind backend cannot break a live pod's app; try it on lab.copy()")

    # ---- traffic -------------------------------------------------------------------------------
    def _run_in(self, where: str, argv: Sequence[str], timeout: float) -> traffic.Completed:
        """Run ``argv`` in a pod (the API server's exec), ``mypc`` or a node (``docker exec``)."""
        if where == MYPC:
            self.ensure_mypc()
            return self.docker.exec(MYPC, argv, timeout=timeout)
        if self.cluster.has_node(where):
            return self.docker.exec(where, argv, timeout=timeout)
        pod = next((p for p in self.cluster.pods if where in (p.name, p.key)), None)
        if pod is None:
            raise InputError(f"client {where!r}", "is not a pod, a node or mypc of the live cluster",
                             "kind clients are pods, nodes and mypc (not bare IPs)")
        r = self.client.exec(pod.name, pod.namespace, list(argv), timeout=timeout)
        return traffic.Completed(r.stdout, r.stderr, r.exit_code)

    @property
    def mypc_ip(self) -> str:
        """mypc's address: host .100 of kind's docker network as ``docker network inspect kind``
        gives it (172.18.0.100 on kind's usual 172.18.0.0/16, the study's address; another subnet
        when Docker gave kind another one), read once."""
        if self._mypc_ip is None:
            self._mypc_ip = traffic.mypc_address(self.docker.network_subnets(traffic.KIND_NETWORK),
                                                 [n.internal_ip for n in self.cluster.nodes])
        return self._mypc_ip

    def ensure_mypc(self) -> None:
        """Start ``mypc`` on kind's docker network (at :attr:`mypc_ip`) unless it runs; close() removes it if kslab started it."""
        if not self._mypc_started and self.docker.ensure_mypc(self.mypc_ip):
            self._mypc_started = True
            print(f"kslab: started the mypc container on docker network {traffic.KIND_NETWORK} ({self.mypc_ip})")

    def connect(self, clients: Sequence[str], dst: str, port: int, proto: str, n: int, *,
                seed: int | None, interval: float, timeout: float) -> pd.DataFrame:
        """Real HTTP connections (``seed`` and ``interval`` do not apply to a live cluster): each
        client's share in batches of :data:`BATCH` curls per exec, the clients side by side; a
        progress bar above :data:`PROGRESS_FROM` connections. Rows in client order."""
        if proto != "tcp":
            raise InputError("--to", f"the kind backend opens HTTP connections, not {proto}", "use a TCP port")
        if n == 0:
            return pd.DataFrame([], columns=COLUMNS)
        resolved = [resolve_client(self.cluster, c) for c in clients]
        for c in resolved:
            if c.kind == "external" and c.name != MYPC:
                raise InputError(f"client {c.name!r}", "is not a pod, a node or mypc of the live cluster",
                                 "kind clients are pods, nodes and mypc")
        resolved = [replace(c, ip=self.mypc_ip) if c.name == MYPC else c for c in resolved]  # on kind's real network
        share, extra = divmod(n, len(resolved))
        counts = [share + (1 if k < extra else 0) for k in range(len(resolved))]
        node_by_ip = {node.internal_ip: node.name for node in self.cluster.nodes}
        url = f"http://{dst}:{port}/"
        curl_timeout = max(timeout, 1.0)  # curl -m: a live cluster's first connection may need a DNS or ARP round trip
        bar = Progress(n, "connections") if n > PROGRESS_FROM else None
        done = [0]
        if any(c.name == MYPC for c in resolved):
            self.ensure_mypc()

        def run_one(job: tuple[Any, int]) -> list[tuple[float, list[traffic.Reply]]]:
            client, count = job
            out = []
            left = count
            while left:
                k = min(BATCH, left)
                t0 = self.now
                r = self._run_in(client.name, traffic.curl_loop(url, k, curl_timeout), timeout=k * (curl_timeout + 1) + 30)
                replies = traffic.parse_curl_loop(r.stdout)
                if len(replies) != k:
                    raise EnvironmentProblem(f"the curl loop in {client.name} printed {len(replies)} of {k} answers "
                                             f"(exit {r.exit_code}: {traffic._one_line(r.stderr) or 'no error'}); "
                                             "does the image have sh and curl?")
                out.append((t0, replies))
                left -= k
                done[0] += k
                if bar:
                    bar.update(done[0])
            return out

        jobs = [(c, k) for c, k in zip(resolved, counts) if k]
        try:
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                results = list(pool.map(run_one, jobs))
        finally:
            if bar:
                bar.close()
        rows: list[dict[str, Any]] = []
        for (client, _), batches in zip(jobs, results):
            ingress = node_by_ip.get(dst) or client.node or ""
            for t0, replies in batches:
                rows += traffic.rows(replies, client=client, cluster=self.cluster, dst=dst, port=port, proto=proto,
                                     ingress_node=ingress, first=len(rows), t0=t0, backend=self.backend)
        return pd.DataFrame(rows, columns=COLUMNS)

    def tables(self) -> dict[str, str]:
        """Every node's real ``iptables-save``, read side by side."""
        names = [n.name for n in self.cluster.nodes]
        with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
            return dict(zip(names, pool.map(self.save_text, names)))

    def trace(self, src: str, dst: str, port: int, proto: str) -> Trace:
        """The nodes' real ``iptables-save`` dumps, loaded into kslab's netfilter simulator with the
        live cluster's routing, and one new connection walked through them (the interpreter of
        ``kslab trace --iptables-save``). The rules are the node's own; the ``statistic`` draw
        is the simulator's (seeded; each trace draws afresh, so repeated traces spread over the
        endpoints as connections do), not the kernel's. In nftables mode the nodes' real ``nft list
        table ip kube-proxy`` is loaded too (kslab's nftables interpreter; its ``numgen`` draw is the
        simulator's)."""
        from ..dataplane import factory
        from ..sim.trace import trace_of

        nft = None
        if self.proxy_mode == "nftables":
            names = [n.name for n in self.cluster.nodes]
            with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
                nft = dict(zip(names, pool.map(self.nft_list, names)))
        sim = factory.create("sim", self.cluster, seed=self.seed + self._traces, tables=self.tables(), nft=nft)
        self._traces += 1
        if src == MYPC and self.mypc_ip != MYPC_IP:  # the simulator's mypc is the study's; the live one is elsewhere
            src = self.mypc_ip
        from ..sim.candidates import network_candidates, source_of

        found = network_candidates(sim.network, src, dst, port, proto)  # every branch of the draw below
        t = trace_of(sim.network.connect(src, dst, port, proto, trace=True), self.backend)
        t.source = NFT_TRACE_SOURCE if nft else TRACE_SOURCE
        t.candidates, t.candidates_source = found, source_of(found, t.source)
        return t

    def flush_conntrack(self) -> int:
        """``conntrack -F`` on every node (``docker exec``); how many entries there were (``conntrack -C``)."""
        total = 0
        for node in self.cluster.nodes:
            count = self.docker.exec(node.name, ["conntrack", "-C"], timeout=SAVE_TIMEOUT)
            total += int(count.stdout.strip() or 0) if count.exit_code == 0 and count.stdout.strip().isdigit() else 0
            r = self.docker.exec(node.name, ["conntrack", "-F"], timeout=SAVE_TIMEOUT)
            if r.exit_code != 0:
                raise EnvironmentProblem(f"conntrack -F on {node.name} failed: {traffic._one_line(r.stderr)}")
        return total

    def reset(self) -> None:
        """The clock back to 0. A live cluster's kernel state is not kslab's to clear: rule counters
        keep counting (read them as differences), conntrack keeps its entries
        (:meth:`flush_conntrack` asks for it)."""
        self._t0 = time.monotonic()

    # ---- iperf3 (chapter 10) -----------------------------------------------------------------------
    def _check_exec_allowed(self, namespace: str) -> None:
        """RBAC allows ``create`` and ``get`` on ``pods/exec`` in ``namespace`` (asked once per
        namespace, as :func:`check_permissions` asks at open): otherwise one line, before any test."""
        if namespace in self._exec_checked:
            return
        for verb in ("create", "get"):
            allowed, reason = self.client.can_i(verb, "pods", namespace=namespace, subresource="exec")
            if not allowed:
                said = f" (the API server said: {' '.join(reason.split())})" if reason else ""
                raise EnvironmentProblem(f"exec not allowed: forbidden: context {self.client.context!r} cannot {verb} pods/exec "
                                         f"in namespace {namespace}{said}, which an iperf3 test needs; ask for RBAC "
                                         f"permission (kubectl auth can-i {verb} pods/exec -n {namespace}) or use a context that has it")
        self._exec_checked.add(namespace)

    def iperf3(self, path: BandwidthPath, options: IperfOptions, cluster: ClusterState, *,
               progress: Callable[[float], None] | None = None, json: bool = True) -> str:
        """One iperf3 test on the live cluster: the server is ``path.server_pod``'s own ``iperf3 -s``
        (the ``iperf3-server`` Deployment of ``data/myk8s/iperf3``; checked: running, ready, serving
        the path's port), the client ``iperf3 -c HOST -p PORT ... -J`` run in ``path.client`` by the
        API server's exec (``mypc`` or a node: ``docker exec``). Returns what the client printed (its
        ``-J`` JSON, or with ``json=False`` its report). Nothing is written to the cluster. Errors
        are one line each (:mod:`kslab.kind.iperf3`): exec forbidden, no iperf3 in the client's image,
        the server busy with another test (``ServerBusy``: wait, or scale the server), not reachable.
        ``progress(seconds)`` is called about twice a second while the test runs; if it raises (an
        interrupted cell), the error goes up at once and the client in the pod ends by itself after
        ``-t`` seconds (the exec's stream is closed when it does)."""
        import threading

        from . import iperf3 as kind_iperf3

        cluster = cluster if cluster is not None else self.cluster
        kind_iperf3.check_server(cluster, path)
        pod = next((p for p in cluster.pods if path.client in (p.name, p.key)), None)
        if pod is not None:
            self._check_exec_allowed(pod.namespace)
        argv = kind_iperf3.client_argv(path, options, json=json)
        timeout = kind_iperf3.exec_timeout(options)
        if progress is None:
            r = self._run_in(path.client, argv, timeout=timeout)
        else:
            box: dict[str, Any] = {}

            def run() -> None:
                try:
                    box["result"] = self._run_in(path.client, argv, timeout=timeout)
                except BaseException as e:  # handed to the caller's thread
                    box["error"] = e

            worker = threading.Thread(target=run, name=f"kslab-iperf3-{path.client}", daemon=True)
            t0 = time.monotonic()
            worker.start()
            while worker.is_alive():
                worker.join(0.5)
                progress(time.monotonic() - t0)
            if "error" in box:
                raise box["error"]
            r = box["result"]
        return kind_iperf3.answer(path, argv, r.stdout, r.stderr, r.exit_code, json=json)

    # ---- the study's commands ------------------------------------------------------------------
    def run_tool(self, where: str, command: Command, cluster: ClusterState) -> ShellOutput:
        """The real tool in ``where``: a pod by the API server's exec (its own DNS resolves Service
        names), a node or ``mypc`` by ``docker exec`` (docker's DNS: node names, no Services).
        ``kubectl`` is answered by the base class from the live objects kslab read."""
        from ..shell import ShellOutput

        r = self._run_in(where, list(command.argv), timeout=command.timeout)
        return ShellOutput(r.stdout, r.stderr, r.exit_code)

    def close(self) -> None:
        """Remove ``mypc`` if kslab started it; the cluster itself stays as it is."""
        if self._mypc_started:
            self._mypc_started = False
            try:
                self.docker.remove(MYPC)
            except EnvironmentProblem:
                pass
