"""``kubectl get`` and ``kubectl describe`` on the lab, printed as kubectl 1.33 prints them.

    from kslab import kubectl
    print(kubectl.run(lab.cluster, ["get", "svc,ep,endpointslices"]))
    print(kubectl.run(lab.cluster, "get pod -o wide".split()))
    kubectl.execute(lab.cluster, ["get", "ep"])   # Result(stdout, stderr, exit_code)

``args`` are the words after ``kubectl``. :func:`run` returns what kubectl writes on stdout and
raises :class:`~kslab.errors.InputError` (one line, with kubectl's own error text) where kubectl
would fail; :func:`execute` returns stdout, stderr (warnings, "No resources found") and the exit
status without raising.

Supported: ``get`` with resource lists and aliases (``svc``, ``ep``, ``endpointslices``,
``po``, ``no``, ``deploy`` ..., ``svc,ep``, ``TYPE NAME...``, ``TYPE/NAME``), ``-n NS``,
``-A``, ``-l SELECTOR``, ``-o wide|yaml|json|name``, ``--show-labels``, ``--no-headers``;
``describe`` of services, endpoints and endpointslices (by name, name prefix, selector or all).

The formats follow upstream code, named where each piece is implemented: the table printers
of ``pkg/printers/internalversion/printers.go`` (the API server builds the Table and kubectl
prints it), cli-runtime's ``tableprinter.go`` (``printTable``, ``decorateTable``) through Go's
``text/tabwriter`` with kubectl's settings (minwidth 6, padding 3), ``kubectl get``'s loop over
resource types (``pkg/cmd/get/get.go``: ``kind/name`` when several kinds are printed, a blank
line between tables), ``duration.HumanDuration`` for AGE, the JSON and YAML printers (Go's
``encoding/json`` with 4-space indent; ``sigs.k8s.io/yaml``, i.e. go-yaml v2's key order and
quoting), and the describers of ``pkg/describe/describe.go``. Ages count on the control plane's
clock (see :mod:`kslab.apiobjects`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import yaml

from .apiobjects import (
    NODE_CONTAINER_RUNTIME,
    NODE_OS_IMAGE,
    deployment_object,
    endpoint_slice_object,
    endpoints_for,
    event_first_seen,
    event_name,
    event_object,
    node_kernel_version,
    node_object,
    node_roles,
    pod_object,
    record_of,
    service_object,
)
from .errors import InputError
from .model import LABEL_SERVICE_NAME, ClusterState

ENDPOINTS_WARNING = "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Result:
    """What a kubectl command wrote and how it exited."""

    stdout: str
    stderr: str = ""
    exit_code: int = 0


class _Failure(Exception):
    """A kubectl error: ``message`` is the line kubectl prints (``error: ...``)."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix


def run(cluster: ClusterState, args: Sequence[str]) -> str:
    """What ``kubectl ARGS`` prints on stdout for this cluster; an :class:`InputError` naming the
    command and kubectl's error where kubectl would fail (or kslab does not emulate the command)."""
    args = _check_args(args)
    try:
        res = _execute(cluster, args)
    except _Failure as f:
        raise InputError(_command(args), f.message, f.fix) from None
    if res.exit_code:
        errors = [line for line in res.stderr.splitlines() if not line.startswith("Warning:")]
        raise InputError(_command(args), "; ".join(errors))
    return res.stdout


def execute(cluster: ClusterState, args: Sequence[str]) -> Result:
    """Like :func:`run`, but returns stdout, stderr and the exit status (1 for kubectl's errors)
    instead of raising; an unsupported command still raises :class:`InputError`."""
    args = _check_args(args)
    try:
        return _execute(cluster, args)
    except _Failure as f:
        if f.fix is None:  # kubectl's own error
            return Result("", f.message + "\n", 1)
        raise InputError(_command(args), f.message, f.fix) from None


def _check_args(args: Sequence[str]) -> list[str]:
    if isinstance(args, str):
        raise InputError("kubectl", "args must be a list of words, not one string", "split it: 'get svc'.split()")
    args = [str(a) for a in args]
    if args and args[0] == "kubectl":
        args = args[1:]
    return args


def _command(args: Sequence[str]) -> str:
    return " ".join(["kubectl", *args])


# ---- time ------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``: kubectl's AGE."""
    secs = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _age(cluster: ClusterState, kind: str, namespace: str, name: str) -> str:
    # translateTimestampSince(obj.CreationTimestamp)
    return human_duration(cluster.clock - record_of(cluster, kind, namespace, name).created)


# ---- text/tabwriter --------------------------------------------------------------------------


def tabwrite(text: str, minwidth: int, padding: int, padchar: str = " ") -> str:
    """Go's ``text/tabwriter`` (flags 0, align left) over ``text``: a cell ends at a tab; a
    column's width, per block of consecutive lines that have that column, is its widest cell
    plus ``padding`` (at least ``minwidth``); a line's last cell is not part of any column, and
    the text after the last newline keeps a trailing empty cell only if it is not empty
    (``Writer.Flush``). kubectl's tables use minwidth 6, padding 3 (``printers.GetNewTabWriter``),
    its describers minwidth 0, padding 2 (``tabbedString``)."""
    lines = [line.split("\t") for line in text.split("\n")]
    if lines[-1][-1] == "":
        lines[-1].pop()
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            for j, c in enumerate(cells):
                out.append(c)
                if j < len(widths):
                    out.append(padchar * (widths[j] - len(c)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)  # the lines before this column's block
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "".join(out)


def format_labels(labels: dict[str, str] | None) -> str:
    """``labels.FormatLabels``: ``k=v`` sorted by key, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---- label selectors (k8s.io/apimachinery/pkg/labels.Parse) --------------------------------

_SELECTOR_TERM = re.compile(
    r"\s*(?:(?P<notexists>!)\s*(?P<nkey>[^\s=!,()]+)"
    r"|(?P<key>[^\s=!,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*(?:,|$)"
)


def parse_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """A label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``,
    ``k notin (a,b)``, comma-separated, all must hold) as a predicate over labels."""
    terms: list[Callable[[dict[str, str]], bool]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _SELECTOR_TERM.match(text, pos)
        if not m or m.end() == pos:
            raise _Failure(f"error: unable to parse requirement: found '{text[pos:]}', expected: identifier, !, or a comparison")
        pos = m.end()
        if m.group("notexists"):
            k = m.group("nkey")
            terms.append(lambda lb, k=k: k not in lb)
        elif m.group("op"):
            k, v, op = m.group("key"), m.group("value"), m.group("op")
            if op == "!=":
                terms.append(lambda lb, k=k, v=v: lb.get(k) != v)
            else:
                terms.append(lambda lb, k=k, v=v: lb.get(k) == v)
        elif m.group("setop"):
            k = m.group("key")
            values = {x.strip() for x in m.group("values").split(",") if x.strip()}
            if m.group("setop") == "in":
                terms.append(lambda lb, k=k, vs=values: lb.get(k) in vs)
            else:
                terms.append(lambda lb, k=k, vs=values: lb.get(k) not in vs)
        else:
            k = m.group("key")
            terms.append(lambda lb, k=k: k in lb)
    return lambda labels: all(t(labels or {}) for t in terms)


# ---- resource types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One object of a resource type: where it lives, its labels, and the model object."""

    namespace: str
    name: str
    labels: dict[str, str]
    obj: Any


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    group: str
    namespaced: bool
    names: tuple[str, ...]  # what kubectl accepts: plural, singular, short names, qualified forms
    columns: tuple[tuple[str, int], ...]  # (name, priority): priority 1 only with -o wide
    items: Callable[[ClusterState], list[Item]] = field(compare=False)
    cells: Callable[[ClusterState, Item, bool], list[str]] = field(compare=False)
    api: Callable[[ClusterState, Item], dict[str, Any]] = field(compare=False)

    @property
    def qualified(self) -> str:
        """The resource as API errors name it: ``services``, ``deployments.apps``."""
        return self.plural + (f".{self.group}" if self.group else "")

    @property
    def kind_prefix(self) -> str:
        """``strings.ToLower(GroupKind.String())``: ``service``, ``endpointslice.discovery.k8s.io``."""
        return (self.kind + (f".{self.group}" if self.group else "")).lower()


# Service: printService, getServiceExternalIP, makePortString, loadBalancerStatusStringer
LOAD_BALANCER_WIDTH = 16


def _lb_status(svc_obj: dict[str, Any], wide: bool) -> str:
    found = set()
    for ing in (svc_obj["status"].get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    r = ",".join(sorted(found))
    if not wide and len(r) > LOAD_BALANCER_WIDTH:
        r = r[: LOAD_BALANCER_WIDTH - 3] + "..."
    return r


def _service_external_ip(svc_obj: dict[str, Any], wide: bool) -> str:
    spec = svc_obj["spec"]
    t = spec.get("type")
    external = spec.get("externalIPs") or []
    if t in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if t == "LoadBalancer":
        lb = _lb_status(svc_obj, wide)
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if t == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _make_port_string(ports: list[dict[str, Any]]) -> str:
    pieces = []
    for p in ports:
        if p.get("nodePort", 0) > 0:
            pieces.append(f"{p['port']}:{p['nodePort']}/{p['protocol']}")
        else:
            pieces.append(f"{p['port']}/{p['protocol']}")
    return ",".join(pieces)


def _service_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    o = service_object(cluster, it.obj)
    spec = o["spec"]
    cells = [
        it.name,
        spec["type"],
        (spec.get("clusterIPs") or ["<none>"])[0],
        _service_external_ip(o, wide),
        _make_port_string(spec.get("ports") or []) or "<none>",
        _age(cluster, "Service", it.namespace, it.name),
    ]
    if wide:
        cells.append(format_labels(spec.get("selector")))
    return cells


def _service_items(cluster: ClusterState) -> list[Item]:
    return [Item(s.namespace, s.name, s.labels, s) for s in cluster.services]


# Endpoints: printEndpoints, formatEndpoints
def _format_endpoints(ep: dict[str, Any]) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    out: list[str] = []
    max_, more, count = 3, False, 0
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:  # headless services without ports
            count += len(addresses)
            for a in addresses:
                if len(out) == max_:
                    more = True
                    break
                out.append(a["ip"])
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(out) == max_:
                    more = True
                    break
                out.append(_join_host_port(a["ip"], port["port"]))
    ret = ",".join(out)
    if more:
        return f"{ret} + {count - max_} more..."
    return ret


def _join_host_port(host: str, port: Any) -> str:
    """``net.JoinHostPort``: IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoints_items(cluster: ClusterState) -> list[Item]:
    out = []
    for s in cluster.services:
        ep = endpoints_for(cluster, s)
        if ep is not None:
            out.append(Item(s.namespace, s.name, ep["metadata"].get("labels") or {}, ep))
    return out


def _endpoints_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    # the Endpoints object is as old as its Service
    return [it.name, _format_endpoints(it.obj), _age(cluster, "Service", it.namespace, it.name)]


# EndpointSlice: printEndpointSlice, formatDiscoveryPorts, formatDiscoveryEndpoints, listWithMoreString
def _list_with_more(items: list[str], more: bool, count: int, max_: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - max_} more..."
    return ret or "<unset>"


def _format_discovery_ports(ports: list[dict[str, Any]]) -> str:
    out: list[str] = []
    max_, more, count = 3, False, 0
    for p in ports:
        if len(out) < max_:
            num = "*"
            if p.get("port") is not None:
                num = str(p["port"])
            elif p.get("name") is not None:
                num = p["name"]
            out.append(num)
        elif len(out) == max_:
            more = True
        count += 1
    return _list_with_more(out, more, count, max_)


def _format_discovery_endpoints(endpoints: list[dict[str, Any]]) -> str:
    out: list[str] = []
    max_, more, count = 3, False, 0
    for e in endpoints:
        for a in e.get("addresses") or []:
            if len(out) < max_:
                out.append(a)
            elif len(out) == max_:
                more = True
            count += 1
    return _list_with_more(out, more, count, max_)


def _slice_items(cluster: ClusterState) -> list[Item]:
    return [Item(s.namespace, s.name, s.labels, s) for s in cluster.endpoint_slices]


def _slice_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    o = endpoint_slice_object(cluster, it.obj)
    return [it.name, o["addressType"], _format_discovery_ports(o["ports"] or []),
            _format_discovery_endpoints(o["endpoints"] or []), _age(cluster, "EndpointSlice", it.namespace, it.name)]


# Pod: printPod
def _pod_items(cluster: ClusterState) -> list[Item]:
    return [Item(p.namespace, p.name, p.labels, p) for p in cluster.pods]


def _pod_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    p = it.obj
    total = len(p.containers)
    ready = total if (p.ready and p.phase == "Running") else 0
    reason = p.phase
    if p.terminating and p.phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    cells = [p.name, f"{ready}/{total}", reason, "0", _age(cluster, "Pod", p.namespace, p.name)]
    if wide:
        gates = (((p.manifest or {}).get("spec") or {}).get("readinessGates")) or []
        cells += [p.pod_ip or "<none>", p.node_name or "<none>", "<none>", f"0/{len(gates)}" if gates else "<none>"]
    return cells


# Node: printNode, findNodeRoles, getNodeInternalIP, getNodeExternalIP
def _node_items(cluster: ClusterState) -> list[Item]:
    return [Item("", n.name, n.labels, n) for n in cluster.nodes]


def _node_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    n = it.obj
    from .apiobjects import KUBELET_VERSION

    cells = [n.name, "Ready" if n.ready else "NotReady", ",".join(node_roles(n)) or "<none>",
             _age(cluster, "Node", "", n.name), KUBELET_VERSION]
    if wide:
        cells += [n.internal_ip or "<none>", "<none>", NODE_OS_IMAGE, node_kernel_version() or "<unknown>", NODE_CONTAINER_RUNTIME]
    return cells


# Deployment: printDeployment, layoutContainerCells
def _deployment_items(cluster: ClusterState) -> list[Item]:
    return [Item(d.namespace, d.name, ((d.manifest or {}).get("metadata") or {}).get("labels") or {}, d) for d in cluster.deployments]


def _deployment_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    o = deployment_object(cluster, it.obj)
    st = o["status"]
    cells = [it.name, f"{st.get('readyReplicas', 0)}/{o['spec']['replicas']}", str(st.get("updatedReplicas", 0)),
             str(st.get("availableReplicas", 0)), _age(cluster, "Deployment", it.namespace, it.name)]
    if wide:
        containers = o["spec"]["template"]["spec"].get("containers") or []
        selector = o["spec"]["selector"].get("matchLabels") or {}
        cells += [",".join(str(c.get("name", "")) for c in containers), ",".join(str(c.get("image", "")) for c in containers),
                  ",".join(f"{k}={selector[k]}" for k in sorted(selector))]
    return cells


# Event: printEvent (core/v1 Events; the API server lists them by name)
def _event_items(cluster: ClusterState) -> list[Item]:
    return sorted((Item(e.namespace, event_name(e), {}, e) for e in cluster.events), key=lambda it: it.name)


def _event_cells(cluster: ClusterState, it: Item, wide: bool) -> list[str]:
    e = it.obj
    last = human_duration(cluster.clock - e.at)
    target = f"{e.involved_kind.lower()}/{e.name}" if e.name else e.involved_kind.lower()
    if wide:
        return [last, e.type, e.reason, target, "", e.source, e.message.strip(),
                human_duration(cluster.clock - event_first_seen(e)), str(e.count or 1), it.name]
    return [last, e.type, e.reason, target, e.message.strip()]


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("services", "Service", "", True, ("services", "service", "svc"),
                 (("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0), ("Selector", 1)),
                 _service_items, _service_cells, lambda c, it: service_object(c, it.obj)),
    ResourceType("endpoints", "Endpoints", "", True, ("endpoints", "ep"),
                 (("Name", 0), ("Endpoints", 0), ("Age", 0)),
                 _endpoints_items, _endpoints_cells, lambda c, it: it.obj),
    ResourceType("endpointslices", "EndpointSlice", "discovery.k8s.io", True, ("endpointslices", "endpointslice"),
                 (("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)),
                 _slice_items, _slice_cells, lambda c, it: endpoint_slice_object(c, it.obj)),
    ResourceType("pods", "Pod", "", True, ("pods", "pod", "po"),
                 (("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1), ("Node", 1),
                  ("Nominated Node", 1), ("Readiness Gates", 1)),
                 _pod_items, _pod_cells, lambda c, it: pod_object(c, it.obj)),
    ResourceType("nodes", "Node", "", False, ("nodes", "node", "no"),
                 (("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0), ("Internal-IP", 1), ("External-IP", 1),
                  ("OS-Image", 1), ("Kernel-Version", 1), ("Container-Runtime", 1)),
                 _node_items, _node_cells, lambda c, it: node_object(c, it.obj)),
    ResourceType("deployments", "Deployment", "apps", True, ("deployments", "deployment", "deploy"),
                 (("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0), ("Containers", 1), ("Images", 1),
                  ("Selector", 1)),
                 _deployment_items, _deployment_cells, lambda c, it: deployment_object(c, it.obj)),
    ResourceType("events", "Event", "", True, ("events", "event", "ev"),
                 (("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1), ("Message", 0),
                  ("First Seen", 1), ("Count", 1), ("Name", 1)),
                 _event_items, _event_cells, lambda c, it: event_object(c, it.obj)),
)

# Resource types kubectl knows that kslab's lab does not hold (answered with "not modelled", not
# with kubectl's "the server doesn't have a resource type").
NOT_MODELLED = {
    "all", "replicasets", "replicaset", "rs", "namespaces", "namespace", "ns", "configmaps", "configmap", "cm", "secrets",
    "secret", "ingresses", "ingress", "ing", "daemonsets", "daemonset", "ds", "statefulsets",
    "statefulset", "sts", "jobs", "job", "cronjobs", "cronjob", "cj", "serviceaccounts", "serviceaccount", "sa",
    "networkpolicies", "networkpolicy", "netpol", "persistentvolumes", "persistentvolume", "pv", "persistentvolumeclaims",
    "persistentvolumeclaim", "pvc", "replicationcontrollers", "replicationcontroller", "rc", "horizontalpodautoscalers",
    "horizontalpodautoscaler", "hpa", "ingressclasses", "storageclasses", "sc", "leases", "lease", "componentstatuses", "cs",
    "limitranges", "limits", "resourcequotas", "quota", "podtemplates", "servicecidrs", "ipaddresses", "crd",
    "customresourcedefinitions", "clusterroles", "roles", "clusterrolebindings", "rolebindings", "poddisruptionbudgets", "pdb",
}


def _supported_types() -> str:
    return "svc, ep, endpointslices, pods, nodes, deployments, events"


def resolve_type(name: str) -> ResourceType:
    """The resource type ``name`` stands for, as kubectl's REST mapper resolves it."""
    key = name.lower()
    for rt in RESOURCE_TYPES:
        qualified = {f"{n}.{rt.group}" for n in rt.names} | {f"{n}.v1.{rt.group}" for n in rt.names} if rt.group else set()
        if key in rt.names or key in qualified or key == rt.kind.lower():
            return rt
    if key in NOT_MODELLED or key.split(".", 1)[0] in NOT_MODELLED:
        raise _Failure(f'kslab\'s lab holds no "{name}" objects', f"use one of: {_supported_types()}")
    raise _Failure(f'error: the server doesn\'t have a resource type "{name}"')


# ---- arguments --------------------------------------------------------------------------------


@dataclass
class Options:
    namespace: str = DEFAULT_NAMESPACE
    all_namespaces: bool = False
    selector: str | None = None
    output: str = ""
    show_labels: bool = False
    no_headers: bool = False
    show_events: bool = True
    positional: list[str] = field(default_factory=list)


# flag -> (Options field, takes a value)
LONG_FLAGS = {
    "namespace": ("namespace", True),
    "all-namespaces": ("all_namespaces", False),
    "selector": ("selector", True),
    "output": ("output", True),
    "show-labels": ("show_labels", False),
    "no-headers": ("no_headers", False),
    "show-events": ("show_events", False),
}
SHORT_FLAGS = {"n": "namespace", "A": "all-namespaces", "l": "selector", "o": "output"}
OUTPUTS = ("wide", "yaml", "json", "name")
KUBECTL_OUTPUTS = ("custom-columns", "custom-columns-file", "go-template", "go-template-file", "json", "jsonpath",
                   "jsonpath-as-json", "jsonpath-file", "kyaml", "name", "template", "templatefile", "wide", "yaml")
SUPPORTED_FLAGS = "-n NS, -A, -l SELECTOR, -o wide|yaml|json|name|jsonpath=TEMPLATE, --show-labels, --no-headers"


def _bool(value: str, flag: str) -> bool:
    if value.lower() in ("true", "1", "t"):
        return True
    if value.lower() in ("false", "0", "f"):
        return False
    raise _Failure(f'error: invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_args(args: Sequence[str]) -> Options:
    """kubectl's flags (pflag syntax: ``-n ns``, ``-nns``, ``-n=ns``, ``--namespace ns``,
    ``--namespace=ns``) anywhere among the words; the rest in order."""
    o = Options()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            o.positional += args[i + 1:]
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            flag = f"--{name}"
        elif a.startswith("-") and len(a) > 1:
            short = a[1]
            if short not in SHORT_FLAGS:
                raise _Failure(f"flag -{short} is not supported by kslab's kubectl", f"supported: {SUPPORTED_FLAGS}")
            name = SHORT_FLAGS[short]
            rest = a[2:]
            eq, value = ("=", rest[1:]) if rest.startswith("=") else (("=", rest) if rest else ("", ""))
            flag = f"-{short}"
        else:
            o.positional.append(a)
            i += 1
            continue
        if name not in LONG_FLAGS:
            raise _Failure(f"flag {flag} is not supported by kslab's kubectl", f"supported: {SUPPORTED_FLAGS}")
        attr, takes_value = LONG_FLAGS[name]
        if takes_value:
            if not eq:
                i += 1
                if i >= len(args):
                    raise _Failure(f"error: flag needs an argument: {flag}")
                value = args[i]
            setattr(o, attr, value)
        else:
            if flag.startswith("-") and not flag.startswith("--") and eq:  # -A combined with more letters
                raise _Failure(f"flag {a} is not supported by kslab's kubectl", f"supported: {SUPPORTED_FLAGS}")
            setattr(o, attr, _bool(value, f"--{name}") if eq else True)
        i += 1
    if o.output and o.output not in OUTPUTS and not o.output.startswith("jsonpath="):
        fmt = o.output.split("=", 1)[0]
        if fmt in KUBECTL_OUTPUTS:
            raise _Failure(f"output format {fmt!r} is not supported by kslab's kubectl", "use -o wide, yaml, json, name or jsonpath=...")
        raise _Failure(f'error: unable to match a printer suitable for the output format "{o.output}", allowed formats are: '
                       + ",".join(KUBECTL_OUTPUTS))
    if not o.namespace:
        o.namespace = DEFAULT_NAMESPACE
    return o


@dataclass(frozen=True)
class Target:
    rtype: ResourceType
    names: tuple[str, ...] | None  # None: every object of the type (in the namespace, matching -l)


def _targets(words: list[str], verb: str) -> tuple[list[Target], bool]:
    """``ResourceTypeOrNameArgs``: ``TYPE[,TYPE...] [NAME...]`` or ``TYPE/NAME...``. Returns the
    targets and whether a single object was named (``IntoSingleItemImplied``)."""
    slashed = sum(1 for w in words if "/" in w)
    if slashed and slashed != len(words):
        raise _Failure(
            "error: there is no need to specify a resource type as a separate argument when passing arguments in "
            f"resource/name form (e.g. 'kubectl {verb} resource/<resource_name>' instead of 'kubectl {verb} resource "
            "resource/<resource_name>'"
        )
    if slashed:
        targets: list[Target] = []
        for w in words:
            t, _, name = w.partition("/")
            if not t or not name:
                raise _Failure(f"error: arguments in resource/name form must have a single resource and name, got {w!r}")
            rt = resolve_type(t)
            if targets and targets[-1].rtype == rt:
                targets[-1] = Target(rt, (*targets[-1].names, name))  # type: ignore[misc]
            else:
                targets.append(Target(rt, (name,)))
        return targets, len(words) == 1
    types = words[0].split(",")
    if any(not t for t in types):
        raise _Failure(f"error: arguments in resource/name form may not have more than one slash, or an empty resource: {words[0]!r}")
    rts = []
    for t in types:
        rt = resolve_type(t)
        if rt not in rts:
            rts.append(rt)
    names = tuple(words[1:]) or None
    return [Target(rt, names) for rt in rts], len(rts) == 1 and names is not None and len(names) == 1


def _namespace_ok(o: Options, rt: ResourceType, it: Item) -> bool:
    return not rt.namespaced or o.all_namespaces or it.namespace == o.namespace


@dataclass
class _Info:
    """What the resource builder returns for one request: a list of one type, or one object."""

    rtype: ResourceType
    items: list[Item]
    is_list: bool


def _collect(cluster: ClusterState, o: Options, targets: list[Target]) -> tuple[list[_Info], list[str]]:
    """The resource builder's visit: the objects of each target, or kubectl's NotFound lines."""
    named = any(t.names is not None for t in targets)
    if named and o.selector is not None:
        raise _Failure("error: name cannot be provided when a selector is specified")
    if named and o.all_namespaces:
        raise _Failure("error: a resource cannot be retrieved by name across all namespaces")
    match = parse_selector(o.selector) if o.selector is not None else None
    infos: list[_Info] = []
    errors: list[str] = []
    for t in targets:
        all_items = [it for it in t.rtype.items(cluster) if _namespace_ok(o, t.rtype, it)]
        if t.names is None:
            chosen = [it for it in all_items if match is None or match(it.labels)]
            chosen.sort(key=lambda it: (it.namespace, it.name))  # the API server lists in key order
            infos.append(_Info(t.rtype, chosen, True))
            continue
        for name in t.names:
            found = [it for it in all_items if it.name == name and (not t.rtype.namespaced or it.namespace == o.namespace)]
            if found:
                infos.append(_Info(t.rtype, found[:1], False))
            else:
                errors.append(f'Error from server (NotFound): {t.rtype.qualified} "{name}" not found')
    return infos, errors


# ---- output: tables ---------------------------------------------------------------------------


def _print_tables(cluster: ClusterState, o: Options, infos: list[_Info]) -> str:
    """``GetOptions.Run``'s human-readable loop: one printer per resource type, the table header
    once per printer (``HumanReadablePrinter``), a tab writer flushed between types and an empty
    line before the next type's output when something was written (``separatorWriterWrapper``)."""
    wide = o.output == "wide"
    with_kind = len({id(info.rtype) for info in infos}) > 1  # multipleGVKsRequested
    out: list[str] = []
    pending: list[str] = []
    separator_ready = False
    last: ResourceType | None = None
    printed_headers = False

    def flush() -> None:
        nonlocal separator_ready
        if pending:
            text = tabwrite("".join(pending), 6, 3)
            if text and separator_ready:
                out.append("\n")
                separator_ready = False
            out.append(text)
            pending.clear()

    for info in infos:
        rt = info.rtype
        if last is None or rt is not last:  # shouldGetNewPrinterForMapping
            flush()
            if last is not None and not o.no_headers and any(out):  # trackingWriter.Written > 0
                separator_ready = True
            last, printed_headers = rt, False
        with_ns = o.all_namespaces and rt.namespaced
        rows = []
        for it in info.items:
            cells = rt.cells(cluster, it, wide)
            if with_kind:
                cells[0] = f"{rt.kind_prefix}/{cells[0]}"
            if with_ns:
                cells.insert(0, it.namespace)
            if o.show_labels:
                cells.append(format_labels(it.labels))
            rows.append(cells)
        if not o.no_headers and not printed_headers:
            if not rows:
                continue  # printTable: no header for a table without rows
            header = [name.upper() for name, priority in rt.columns if wide or priority == 0]
            if with_ns:
                header.insert(0, "NAMESPACE")
            if o.show_labels:
                header.append("LABELS")
            pending.append("\t".join(header) + "\n")
        if rows:
            printed_headers = True
        for cells in rows:
            pending.append("\t".join(cells) + "\n")
    flush()
    return "".join(out)


# ---- output: json, yaml, name ----------------------------------------------------------------


def to_json(obj: Any, indent: int | None = 4) -> str:
    """Go's ``json.MarshalIndent(obj, "", "    ")`` of an unstructured object, plus the newline
    kubectl's JSONPrinter adds: keys sorted, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped
    (``indent=None``: ``json.Marshal``'s compact form)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False, separators=(",", ": ") if indent else (",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)  # these characters only occur inside strings
    return text + "\n"


def _go_yaml_key_less(a: str, b: str) -> bool:
    """go-yaml v2's ``keyList.Less`` for string keys: letters after other characters, runs of
    digits compared as numbers."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()  # unicode.IsLetter
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():  # unicode.IsDigit
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


_KEY_ORDER = functools.cmp_to_key(lambda a, b: -1 if _go_yaml_key_less(a, b) else (1 if _go_yaml_key_less(b, a) else 0))


def _go_yaml_ordered(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _go_yaml_ordered(obj[k]) for k in sorted(obj, key=_KEY_ORDER)}
    if isinstance(obj, list):
        return [_go_yaml_ordered(v) for v in obj]
    return obj


_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))
_GO_YAML_MAP = {
    **{v: _BOOL for v in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
                          "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")},
    **{v: _NULL for v in ("", "~", "null", "Null", "NULL")},
    **{v: _FLOAT for v in (".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF")},
}
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]*|0[bB][01]+|[1-9][0-9]*)")
_GO_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?"
                           r"([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?")
_GO_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def go_yaml_tag(s: str) -> str:
    """The tag go-yaml v2's ``resolve`` gives the plain scalar ``s`` (``!!str`` if none other);
    base-60 floats count as floats, as its encoder's ``isBase60Float`` quotes them."""
    hint = s[:1]
    if s in _GO_YAML_MAP and (hint == "" or hint in "yYnNtTfFoO~.+-"):
        return _GO_YAML_MAP[s]
    if hint == ".":
        return _FLOAT if _GO_YAML_FLOAT.fullmatch(s) else _STR
    if hint and hint in "0123456789+-":
        if _GO_TIMESTAMP.fullmatch(s):
            return _TIMESTAMP
        plain = s.replace("_", "")
        if _GO_INT.fullmatch(plain) or re.fullmatch(r"-0[bB][01]+", plain):
            return _INT
        if _GO_YAML_FLOAT.fullmatch(plain):
            return _FLOAT
    if _GO_BASE60_FLOAT.fullmatch(s):
        return _FLOAT
    return _STR


class _GoYamlDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter (go-yaml's is a port of it; PyYAML's pure-Python one when PyYAML was built
    without libyaml, same output, slower) with go-yaml v2's scalar resolution: a string go-yaml
    would read as another type is double-quoted, a multi-line one is a literal block, any other
    left to the emitter (plain when it can be)."""

    def resolve(self, kind, value, implicit):  # type: ignore[override]
        if kind is yaml.ScalarNode and implicit[0]:
            return go_yaml_tag(value)
        return yaml.resolver.BaseResolver.resolve(self, kind, value, implicit)


def _represent_str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    if "\n" in s:
        style = "|"
    elif go_yaml_tag(s) != _STR:
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_STR, s, style=style)


_GoYamlDumper.add_representer(str, _represent_str)


def to_yaml(obj: Any) -> str:
    """``sigs.k8s.io/yaml.Marshal``: the JSON form through go-yaml v2 (keys in its order, 2-space
    indent, sequences not indented under their key, go-yaml's quoting)."""
    return yaml.dump(_go_yaml_ordered(json.loads(json.dumps(obj))), Dumper=_GoYamlDumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=80, indent=2)


# ---- output: jsonpath (k8s.io/client-go/util/jsonpath, as kubectl's JSONPathPrinter runs it) ----

_JP_STEP = re.compile(
    r"\.\.|\.(?P<field>(?:\\.|[^.\[\]\\])+)|\[(?P<index>[^\]\[]*(?:\[[^\]]*\][^\]\[]*)*)\]"
)


def _jp_steps(path: str, template: str) -> list[tuple[str, str]]:
    steps, pos = [], 0
    path = path.strip()
    if path.startswith(("$", "@")):
        pos = 1
    while pos < len(path):
        m = _JP_STEP.match(path, pos)
        if not m or m.group(0) == "..":
            raise _Failure(f"error: error parsing jsonpath {template}, unrecognized character in action: {path[pos:]!r}")
        steps.append(("field", m.group("field").replace("\\.", ".")) if m.group("field") is not None else ("index", m.group("index").strip()))
        pos = m.end()
    return steps


_JP_FILTER = re.compile(r"\?\(\s*(?P<left>@[^=!<>\s]*)\s*(?:(?P<op>==|!=)\s*(?P<right>.+?))?\s*\)")


def _jp_unquote(text: str) -> str:
    """``UnquoteExtend``: a double- or single-quoted string, escapes as Go's strconv.Unquote reads them."""
    inner = text[1:-1]
    if text[0] == "'":
        inner = inner.replace("\\'", "'").replace('"', '\\"')
    return json.loads(f'"{inner}"')


def _jp_literal(text: str) -> Any:
    text = text.strip()
    try:
        if text[:1] in "\"'" and text[-1:] == text[:1]:
            return _jp_unquote(text)
        return json.loads(text)
    except ValueError:
        return text


def _jp_eval(values: list[Any], steps: list[tuple[str, str]], template: str) -> list[Any]:
    for kind, arg in steps:
        out: list[Any] = []
        for v in values:
            if kind == "field":
                if arg == "*":
                    out += list(v.values()) if isinstance(v, dict) else (list(v) if isinstance(v, list) else [])
                elif isinstance(v, dict) and arg in v:
                    out.append(v[arg])
            elif arg.startswith("?"):
                m = _JP_FILTER.fullmatch(arg)
                if not m:
                    raise _Failure(f"error: error parsing jsonpath {template}, unrecognized filter: [{arg}]")
                for item in v if isinstance(v, list) else []:
                    found = _jp_eval([item], _jp_steps(m.group("left"), template), template)
                    if m.group("op") is None:
                        keep = bool(found)
                    else:
                        equal = bool(found) and found[0] == _jp_literal(m.group("right"))
                        keep = equal if m.group("op") == "==" else (bool(found) and not equal)
                    if keep:
                        out.append(item)
            elif isinstance(v, list):
                if arg == "*":
                    out += v
                elif ":" in arg:
                    a, _, b = arg.partition(":")
                    out += v[int(a) if a.strip() else None: int(b) if b.strip() else None]
                else:
                    try:
                        i = int(arg)
                    except ValueError:
                        raise _Failure(f"error: error parsing jsonpath {template}, unrecognized index: [{arg}]") from None
                    if -len(v) <= i < len(v):
                        out.append(v[i])
                    else:
                        raise _Failure(f"error: error executing jsonpath {template!r}: array index out of bounds: index {i}, length {len(v)}")
            elif isinstance(v, dict) and arg[:1] in "'\"":
                key = arg[1:-1]
                if key in v:
                    out.append(v[key])
        values = out
    return values


def _jp_text(value: Any) -> str:
    """``JSONPath.PrintResults``: maps and lists as compact JSON, anything else as Go's fmt prints it."""
    if isinstance(value, (dict, list)):
        return to_json(value, indent=None).rstrip("\n")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def jsonpath(template: str, doc: Any) -> str:
    r"""A kubectl ``-o jsonpath=TEMPLATE`` over ``doc``: text outside braces as is; in braces a path
    (``.a.b``, ``[0]``, ``[*]``, ``[a:b]``, ``['k']``, ``[?(@.k=="v")]``, ``\.`` in a key), a quoted
    string, or ``range PATH`` ... ``end``; several results joined by spaces; missing keys print
    nothing (``--allow-missing-template-keys``)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(template):
        start = template.find("{", pos)
        if start < 0:
            tokens.append(("text", template[pos:]))
            break
        if start > pos:
            tokens.append(("text", template[pos:start]))
        end = template.find("}", start)
        if end < 0:
            raise _Failure(f"error: error parsing jsonpath {template}, unclosed action")
        tokens.append(("action", template[start + 1:end].strip()))
        pos = end + 1

    def run_block(i: int, data: Any) -> tuple[str, int]:
        out: list[str] = []
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "text":
                out.append(text)
            elif text == "end":
                return "".join(out), i
            elif text.startswith("range ") or text == "range":
                items = _jp_eval([data], _jp_steps(text[5:], template), template)
                depth, j = 0, i + 1
                while j < len(tokens) and not (tokens[j] == ("action", "end") and depth == 0):
                    if tokens[j][0] == "action" and tokens[j][1].startswith("range"):
                        depth += 1
                    elif tokens[j] == ("action", "end"):
                        depth -= 1
                    j += 1
                if j >= len(tokens):
                    raise _Failure(f"error: error parsing jsonpath {template}, unclosed range")
                for item in items:
                    out.append(run_block(i + 1, item)[0])
                i = j
            elif text[:1] in "\"'":
                try:
                    out.append(_jp_unquote(text))
                except ValueError:
                    raise _Failure(f"error: error parsing jsonpath {template}, invalid string {text}") from None
            elif text:
                out.append(" ".join(_jp_text(v) for v in _jp_eval([data], _jp_steps(text, template), template)))
            i += 1
        return "".join(out), i

    text, i = run_block(0, doc)
    if i < len(tokens):
        raise _Failure(f"error: error parsing jsonpath {template}, unexpected end")
    return text


def _print_generic(cluster: ClusterState, o: Options, infos: list[_Info], single: bool) -> str:
    """``GetOptions.printGeneric``: one named object alone, anything else as a ``List``."""
    objs = [(info.rtype, it) for info in infos for it in info.items]
    if o.output == "name":  # NamePrinter: kind[.group]/name
        return "".join(f"{rt.kind_prefix}/{it.name}\n" for rt, it in objs)
    dicts = [rt.api(cluster, it) for rt, it in objs]
    if single and len(dicts) == 1:
        doc: Any = dicts[0]
    else:
        doc = {"apiVersion": "v1", "items": dicts, "kind": "List", "metadata": {"resourceVersion": ""}}
    if o.output.startswith("jsonpath="):
        return jsonpath(o.output.split("=", 1)[1], doc)
    return to_json(doc) if o.output == "json" else to_yaml(doc)


# ---- get --------------------------------------------------------------------------------------


def _get(cluster: ClusterState, o: Options, words: list[str]) -> Result:
    if not words:
        raise _Failure("error: Required resource not specified.", f"name a resource type: {_supported_types()}")
    targets, single = _targets(words, "get")
    infos, errors = _collect(cluster, o, targets)
    stderr = ENDPOINTS_WARNING + "\n" if any(t.rtype.plural == "endpoints" for t in targets) else ""
    if single and errors:  # IntoSingleItemImplied: the error alone
        return Result("", stderr + "\n".join(errors) + "\n", 1)
    if o.output in ("yaml", "json", "name") or o.output.startswith("jsonpath="):
        stdout = _print_generic(cluster, o, infos, single)
    else:
        stdout = _print_tables(cluster, o, infos)
    if not stdout and not errors and o.output in ("", "wide"):
        namespaced = all(t.rtype.namespaced for t in targets) and not o.all_namespaces
        stderr += f"No resources found in {o.namespace} namespace.\n" if namespaced else "No resources found\n"
    if errors:
        stderr += "\n".join(errors) + "\n"
    return Result(stdout, stderr, 1 if errors else 0)


# ---- describe ---------------------------------------------------------------------------------


class _PrefixWriter:
    """``describe.prefixWriter``: each level indents two spaces; text goes to a tab writer."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def write_line(self, text: str) -> None:
        self.parts.append(text + "\n")

    def text(self) -> str:
        return tabwrite("".join(self.parts), 0, 2)  # tabbedString: tabwriter.NewWriter(buf, 0, 8, 2, ' ', 0)


MAX_ANNOTATION_LEN = 140


def _print_labels_multiline(w: _PrefixWriter, title: str, labels: dict[str, str] | None) -> None:
    # printLabelsMultilineWithIndent(w, "", title, "\t", labels, none)
    w.write(0, f"{title}:\t")
    if not labels:
        w.write_line("<none>")
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            w.write(0, "\t")
        w.write(0, f"{key}={labels[key]}\n")


def _print_annotations_multiline(w: _PrefixWriter, title: str, annotations: dict[str, str] | None) -> None:
    # printAnnotationsMultiline (skipAnnotations: kubectl.kubernetes.io/last-applied-configuration)
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k != "kubectl.kubernetes.io/last-applied-configuration")
    if not keys:
        w.write_line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")  # type: ignore[index]
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for s in value.split("\n"):
                short = s if len(s) <= MAX_ANNOTATION_LEN - 2 else s[: MAX_ANNOTATION_LEN - 2] + "..."
                w.write(0, f"\t  {short}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _format_endpoint_slices(slices: list[dict[str, Any]], port_name: str) -> str:
    """describe's ``formatEndpointSlices(endpointSlices, sets.New(sp.Name))``: the ready
    endpoints' ``ip:port`` for the Service port named ``port_name``, three at most."""
    if not slices:
        return "<none>"
    out: list[str] = []
    max_, more, count = 3, False, 0
    for sl in slices:
        ports = sl.get("ports") or []
        endpoints = sl.get("endpoints") or []
        if not ports:
            for e in endpoints:
                if len(out) == max_:
                    more = True
                if not (e.get("conditions") or {}).get("ready", True):
                    continue
                if not more:
                    out.append(e["addresses"][0])
                count += 1
            continue
        for p in ports:
            if p.get("name") != port_name:
                continue
            for e in endpoints:
                if len(out) == max_:
                    more = True
                if not (e.get("conditions") or {}).get("ready", True):
                    continue
                if not more:
                    out.append(_join_host_port(e["addresses"][0], p.get("port")))
                count += 1
    ret = ",".join(out)
    return f"{ret} + {count - max_} more..." if more else ret


def _describe_metadata(w: "_PrefixWriter", md: dict[str, Any]) -> None:
    """The lines every describer starts with: Name, Namespace, Labels, Annotations."""
    w.write(0, f"Name:\t{md['name']}\n")
    w.write(0, f"Namespace:\t{md['namespace']}\n")
    _print_labels_multiline(w, "Labels", md.get("labels"))
    _print_annotations_multiline(w, "Annotations", md.get("annotations"))


def describe_service(cluster: ClusterState, svc, events: bool = True) -> str:
    """``describeService`` (kubectl 1.33), Endpoints from the Service's EndpointSlices."""
    o = service_object(cluster, svc)
    md, spec = o["metadata"], o["spec"]
    slices = [endpoint_slice_object(cluster, sl) for sl in sorted(cluster.endpoint_slices, key=lambda s: s.name)
              if sl.namespace == svc.namespace and sl.labels.get(LABEL_SERVICE_NAME) == svc.name]
    w = _PrefixWriter()
    _describe_metadata(w, md)
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec['type']}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (o["status"].get("loadBalancer") or {}).get("ingress") or []
    if ingress:  # buildIngressString
        w.write(0, "LoadBalancer Ingress:\t" + ", ".join(
            (i["ip"] + (f" ({i['ipMode']})" if i.get("ipMode") else "")) if i.get("ip") else i.get("hostname", "") for i in ingress) + "\n")
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        w.write(0, f"Port:\t{name}\t{p['port']}/{p['protocol']}\n")
        w.write(0, f"TargetPort:\t{p.get('targetPort', p['port'])}/{p['protocol']}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{p['protocol']}\n")
        w.write(0, f"Endpoints:\t{_format_endpoint_slices(slices, p.get('name', ''))}\n")
    w.write(0, f"Session Affinity:\t{spec['sessionAffinity']}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if events:
        _describe_events(w, cluster, "Service", svc.namespace, svc.name)
    return w.text()


def _describe_events(w: "_PrefixWriter", cluster: ClusterState, kind: str, namespace: str, name: str) -> None:
    """``DescribeEvents`` of the events whose involvedObject is the object, oldest last-seen first
    (``SortableEvents``)."""
    evs = sorted((e for e in cluster.events if (e.involved_kind, e.name) == (kind, name)
                  and (kind == "Node" or e.namespace == namespace)), key=lambda e: e.at)
    if not evs:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in evs:
        first = human_duration(cluster.clock - event_first_seen(e))
        interval = f"{human_duration(cluster.clock - e.at)} (x{e.count} over {first})" if e.count > 1 else first
        w.write(1, f"{e.type}\t{e.reason}\t{interval}\t{e.source}\t{e.message.strip()}\n")


def describe_endpoint_slice(cluster: ClusterState, sl, events: bool = True) -> str:
    """``describeEndpointSliceV1``."""
    o = endpoint_slice_object(cluster, sl)
    md = o["metadata"]
    w = _PrefixWriter()
    _describe_metadata(w, md)
    w.write(0, f"AddressType:\t{o['addressType']}\n")
    if not o["ports"]:
        w.write(0, "Ports: <unset>\n")
    else:
        w.write(0, "Ports:\n")
        w.write(1, "Name\tPort\tProtocol\n")
        w.write(1, "----\t----\t--------\n")
        for p in o["ports"]:
            w.write(1, f"{p.get('name') or '<unset>'}\t{p.get('port', '<unset>')}\t{p.get('protocol')}\n")
    if not o["endpoints"]:
        w.write(0, "Endpoints: <none>\n")
    else:
        w.write(0, "Endpoints:\n")
        for e in o["endpoints"]:
            w.write(1, f"- Addresses:\t{', '.join(e['addresses']) or '<none>'}\n")
            w.write(2, "Conditions:\n")
            ready = e["conditions"].get("ready")
            w.write(3, f"Ready:\t{'<unset>' if ready is None else str(ready).lower()}\n")
            w.write(2, f"Hostname:\t{e.get('hostname', '<unset>')}\n")
            if e.get("targetRef"):
                w.write(2, f"TargetRef:\t{e['targetRef']['kind']}/{e['targetRef']['name']}\n")
            w.write(2, f"NodeName:\t{e.get('nodeName', '<unset>')}\n")
            w.write(2, f"Zone:\t{e.get('zone', '<unset>')}\n")
    if events:
        w.write(0, "Events:\t<none>\n")
    return w.text()


def describe_endpoints(cluster: ClusterState, ep: dict[str, Any], events: bool = True) -> str:
    """``describeEndpoints``."""
    md = ep["metadata"]
    w = _PrefixWriter()
    _describe_metadata(w, md)
    w.write(0, "Subsets:\n")
    for ss in ep.get("subsets") or []:
        w.write(1, f"Addresses:\t{','.join(a['ip'] for a in ss.get('addresses') or []) or '<none>'}\n")
        w.write(1, f"NotReadyAddresses:\t{','.join(a['ip'] for a in ss.get('notReadyAddresses') or []) or '<none>'}\n")
        if ss.get("ports"):
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for p in ss["ports"]:
                w.write(2, f"{p.get('name') or '<unset>'}\t{p['port']}\t{p['protocol']}\n")
        w.write(0, "\n")
    if events:
        w.write(0, "Events:\t<none>\n")
    return w.text()


DESCRIBERS: dict[str, Callable[[ClusterState, Item, bool], str]] = {
    "services": lambda c, it, ev: describe_service(c, it.obj, ev),
    "endpointslices": lambda c, it, ev: describe_endpoint_slice(c, it.obj, ev),
    "endpoints": lambda c, it, ev: describe_endpoints(c, it.obj, ev),
}


def _describe(cluster: ClusterState, o: Options, words: list[str]) -> Result:
    """``DescribeOptions.Run``: each object's description, separated by a blank line; with
    ``TYPE NAME`` and no object of that name, every object whose name starts with NAME
    (``DescribeMatchingResources``)."""
    if not words:
        raise _Failure("error: You must specify the type of resource to describe.", f"name a resource type: {_supported_types()}")
    targets, _ = _targets(words, "describe")
    for t in targets:
        if t.rtype.plural not in DESCRIBERS:
            raise _Failure(f"kslab's kubectl describes services, endpoints and endpointslices, not {t.rtype.plural}",
                           f"use kubectl get {t.rtype.plural} -o yaml")
    infos, errors = _collect(cluster, o, targets)
    if errors and len(words) == 2 and "/" not in words[0] and len(targets) == 1:
        rt = targets[0].rtype
        prefix = words[1]
        matching = sorted((it for it in rt.items(cluster) if _namespace_ok(o, rt, it) and it.name.startswith(prefix)),
                          key=lambda it: it.name)
        if not matching:
            return Result("", errors[0] + "\n", 1)
        return Result("".join(DESCRIBERS[rt.plural](cluster, it, o.show_events) + "\n" for it in matching))
    texts = [DESCRIBERS[info.rtype.plural](cluster, it, o.show_events) for info in infos for it in info.items]
    stderr = ""
    if not texts and not errors:
        stderr = "No resources found\n" if o.all_namespaces else f"No resources found in {o.namespace} namespace.\n"
    if errors:
        stderr += "\n".join(errors) + "\n"
    return Result("\n\n".join(texts), stderr, 1 if errors else 0)


# ---- entry ------------------------------------------------------------------------------------

VERBS: dict[str, Callable[[ClusterState, Options, list[str]], Result]] = {"get": _get, "describe": _describe}


def _execute(cluster: ClusterState, args: list[str]) -> Result:
    o = parse_args(args)
    if not o.positional:
        raise _Failure("no kubectl command given", "kslab emulates: kubectl get ..., kubectl describe ...")
    verb, words = o.positional[0], o.positional[1:]
    if verb not in VERBS:
        raise _Failure(f"kslab's kubectl does not emulate {verb!r}",
                       f"it emulates: get ({_supported_types()}), describe (svc, ep, endpointslices)")
    return VERBS[verb](cluster, o, words)


def supported_commands() -> Iterable[str]:
    """The verbs and resource types this emulation answers (for help texts)."""
    return [f"get {_supported_types()}", "describe svc, ep, endpointslices"]
