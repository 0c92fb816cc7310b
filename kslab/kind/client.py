"""A live cluster through the official ``kubernetes`` client (Contract 3 of issue 11).

:class:`KindClient` is the one place kslab talks to an API server. It is deliberately small:

- **connect**: read the kubeconfig (``kubeconfig=``, else ``$KUBECONFIG``, else
  ``~/.kube/config``; ``$KUBECONFIG`` may list several files), pick the context, refuse one not
  named ``kind-*`` unless ``allow_any_context=True`` (the workbook creates and deletes objects:
  a production cluster is not a lab), then ask the API server for ``/version`` so that a dead
  cluster is reported at once, in one line.
- **read**: :meth:`KindClient.list_objects` (Nodes, Pods, Services, EndpointSlices in every
  namespace, paged as the API server pages them), :meth:`KindClient.kube_proxy_configmap`,
  :meth:`KindClient.get_object`. Objects come back as the JSON the API server sent (raw dicts,
  not the client's typed models: a field the client's models do not know, or an EndpointSlice
  whose ``endpoints`` is ``null``, passes through untouched), with ``kind`` and ``apiVersion``
  set on every item (a list response leaves them out of its items).
- **exec**: the client's exec websocket (``v5.channel.k8s.io``/``v4.channel.k8s.io``: stdout on
  channel 1, stderr 2, the exit status 3), into :class:`ExecResult`.
- **write**, only when asked: :meth:`KindClient.apply` creates objects carrying the ownership
  label ``kslab.io/managed-by=kslab`` (:data:`MANAGED_LABEL`) and updates only objects that carry
  it; :meth:`KindClient.scale`, :meth:`KindClient.patch_service`, :meth:`KindClient.delete_pod`
  check the label first (a pod counts when its ReplicaSet's Deployment carries it). Every check
  runs before the first write: a refused apply changes nothing.

Every request carries a timeout (``_request_timeout``; the exec websocket's handshake too), and
every failure is one line: :class:`~kslab.errors.EnvironmentProblem` for the machine or the
cluster (no kubeconfig, context missing, refused, timed out, RBAC 403 naming the verb and the
resource, exec not allowed), :class:`~kslab.errors.InputError` for a name that is not there
(404) or an object the API server rejects (422).

``kubernetes`` is imported inside the methods: ``import kslab`` and the kubeconfig checks
(:func:`read_kubeconfig`, :func:`check_context`, used by ``kslab doctor`` too) stay fast.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlencode, urlsplit

import yaml

from ..errors import EnvironmentProblem, InputError

MANAGED_LABEL_KEY = "kslab.io/managed-by"
MANAGED_LABEL_VALUE = "kslab"
MANAGED_LABEL = {MANAGED_LABEL_KEY: MANAGED_LABEL_VALUE}

KIND_CONTEXT_PREFIX = "kind-"
# kslab verify --allow-debug-pod on a node that is not a kind container: the pod's image when the
# cluster has no kube-proxy DaemonSet (GKE's static kube-proxy pods...): kube-proxy's own image of
# the API server's version, which holds iptables-save and picks nft or legacy as kube-proxy does
DEBUG_POD_IMAGE = "registry.k8s.io/kube-proxy:{version}"
DEBUG_POD_DEFAULT_VERSION = "v1.33.1"
DEBUG_POD_NAMESPACE = "kube-system"
LIST_PAGE_SIZE = 500  # kubectl's --chunk-size
FIELD_MANAGER = (("fieldManager", "kslab"),)  # managedFields name kslab as the writer

# ---- resources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One API resource: where its objects live (``/api/v1/...`` or ``/apis/GROUP/VERSION/...``)."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""

    @property
    def qualified(self) -> str:
        """``endpointslices.discovery.k8s.io``, ``pods`` (the name RBAC and kubectl use)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("Node", "v1", "nodes", False),
    Resource("Namespace", "v1", "namespaces", False),
    Resource("Pod", "v1", "pods", True),
    Resource("Service", "v1", "services", True),
    Resource("ConfigMap", "v1", "configmaps", True),
    Resource("Endpoints", "v1", "endpoints", True),
    Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True),
    Resource("Deployment", "apps/v1", "deployments", True),
    Resource("ReplicaSet", "apps/v1", "replicasets", True),
    Resource("DaemonSet", "apps/v1", "daemonsets", True),
    Resource("Event", "v1", "events", True),
)}

# what kube-proxy watches (and kslab.observed turns into a ClusterState), in this order
LISTED_KINDS = ("Node", "Pod", "Service", "EndpointSlice")
# what apply() accepts: the lab's manifests
APPLY_KINDS = ("Namespace", "ConfigMap", "Pod", "Service", "Deployment", "EndpointSlice")


def resource_for(kind: str, where: str = "kind") -> Resource:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise InputError(where, f"kind {kind!r} is not one kslab reads or writes on a live cluster",
                         f"use one of {', '.join(sorted(RESOURCES))}") from None


# ---- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a container by the exec stream printed, and how it ended."""

    stdout: str
    stderr: str
    exit_code: int


@dataclass(frozen=True)
class RolloutProgress:
    """One Deployment's rollout, as ``kubectl rollout status`` judges it."""

    namespace: str
    name: str
    desired: int
    updated: int
    available: int
    done: bool
    message: str


# ---- kubeconfig (plain YAML: no kubernetes import) ----------------------------------------------


class KubeconfigError(InputError, EnvironmentProblem):
    """A kubeconfig kslab cannot read (a list that is not a list...): bad input, one line naming the
    field (exit 2), and also a reason the live backend cannot run here, so ``Lab()`` under
    ``KSLAB_BACKEND=kind`` falls back to sim on it as on any other :class:`EnvironmentProblem`."""


def default_kubeconfig_path() -> str:
    """``$KUBECONFIG`` (possibly several files, ``:``-separated) or ``~/.kube/config``, read now
    (not at import time, unlike the client's own default)."""
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


@dataclass
class KubeconfigInfo:
    """The contexts a kubeconfig (or a ``:``-separated list of them, merged as kubectl merges:
    the first file to name a context wins) offers, and its current context."""

    paths: list[str]
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {cluster, user, namespace}
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_context: str | None = None

    def server(self, context: str) -> str:
        cluster = self.contexts.get(context, {}).get("cluster", "")
        return str(self.clusters.get(cluster, {}).get("server", ""))


def read_kubeconfig(kubeconfig: str | None = None) -> KubeconfigInfo:
    """Read the kubeconfig; EnvironmentProblem (one line) when there is none or it is not YAML."""
    spec = kubeconfig or default_kubeconfig_path()
    paths = [p for p in spec.split(os.pathsep) if p]
    existing = [p for p in paths if Path(p).expanduser().is_file()]
    if not existing:
        raise EnvironmentProblem(
            f"no kubeconfig at {spec}: create the cluster first (kind create cluster --config "
            "data/myk8s/kind-cluster.yaml writes one), or pass kubeconfig=PATH (--kubeconfig PATH) / set KUBECONFIG")
    info = KubeconfigInfo(paths=existing)
    for p in existing:
        try:
            doc = yaml.safe_load(Path(p).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise EnvironmentProblem(f"kubeconfig {p} cannot be read: {' '.join(str(e).split())}") from None
        if not isinstance(doc, dict):
            raise EnvironmentProblem(f"kubeconfig {p} is not a kubeconfig (a YAML mapping with contexts)")
        for key, into in (("contexts", info.contexts), ("clusters", info.clusters), ("users", None)):
            items = doc.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                raise KubeconfigError(f"kubeconfig {p}: {key}", f"{_short(items)} is not a list",
                                 f"write {key}: as a list of '- name: ...' entries (kubectl config view shows the shape), "
                                 "or let kind write the file (kind export kubeconfig --name CLUSTER)")
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise KubeconfigError(f"kubeconfig {p}: {key}[{i}]", f"{_short(item)} is not a mapping",
                                     "give each entry a name and its settings")
                inner = item.get(key[:-1])
                if inner is not None and not isinstance(inner, dict):
                    raise KubeconfigError(f"kubeconfig {p}: {key}[{i}].{key[:-1]}", f"{_short(inner)} is not a mapping",
                                     f"write {key[:-1]}: with its fields (kubectl config view shows the shape)")
                if into is not None and item.get("name"):
                    into.setdefault(str(item["name"]), dict(inner or {}))
        if doc.get("current-context") is not None and not isinstance(doc.get("current-context"), str):
            raise KubeconfigError(f"kubeconfig {p}: current-context", f"{_short(doc['current-context'])} is not a context name",
                             "write current-context: kind-myk8s (or kubectl config use-context NAME)")
        if info.current_context is None and doc.get("current-context"):
            info.current_context = str(doc["current-context"])
    return info


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_timeout(timeout: Any, where: str = "timeout") -> float:
    """A timeout in seconds: a finite number above zero (``nan``, ``inf``, 0, -1 are refused in one line)."""
    import math

    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(timeout, bool) or not math.isfinite(value) or value <= 0:
        raise InputError(where, f"{timeout!r} is not a positive, finite number of seconds",
                         "pass timeout=10 (--timeout 10 on the command line)")
    return value


def context_is_safe(context: str) -> bool:
    """A context kind wrote (``kind-<cluster>``): a throw-away cluster the workbook may change."""
    return context.startswith(KIND_CONTEXT_PREFIX)


def check_context(info: KubeconfigInfo, context: str | None, *, allow_any_context: bool = False) -> str:
    """The context to use (``context`` or the current one), or EnvironmentProblem saying why not:
    missing from the kubeconfig, none chosen, or not a kind context (refused unless
    ``allow_any_context``)."""
    name = context or info.current_context
    where = " or ".join(info.paths)
    if not name:
        raise EnvironmentProblem(f"kubeconfig {where} has no current context: pass context='kind-myk8s' (--context kind-myk8s)")
    if name not in info.contexts:
        known = ", ".join(sorted(info.contexts)) or "none"
        raise EnvironmentProblem(f"context {name!r} is not in kubeconfig {where} (it has: {known}); "
                                 "create the cluster (kind create cluster --config data/myk8s/kind-cluster.yaml) "
                                 "or pick one of those")
    if not allow_any_context and not context_is_safe(name):
        raise EnvironmentProblem(
            f"context {name!r} is not a kind cluster (kind-*): kslab creates, scales and deletes objects, "
            "so it only uses throw-away kind clusters by default; pass allow_any_context=True "
            "(--context-any) if you mean this cluster")
    return name


# ---- loading a context: one line on failure, and a timeout around credential plugins -------------


def _quiet_urllib3() -> None:
    """urllib3 warns (two lines, FutureWarning/InsecureRequestWarning...) about URLs and TLS the
    kubeconfig names; kslab reports its own one-line errors instead, so silence urllib3's
    warnings where the client is built (only urllib3's: other warnings still show)."""
    import warnings

    # (by module and message, without importing urllib3: it is the kubernetes client's dependency, not kslab's)
    warnings.filterwarnings("ignore", module=r"urllib3(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*urllib3.*")


def _load_kube_config(info: KubeconfigInfo, name: str, timeout: float) -> Any:
    """The client's Configuration for context ``name``. ``load_kube_config`` runs the user's
    credential plugin when the kubeconfig has one (``users[].user.exec``: aws eks get-token,
    gke-gcloud-auth-plugin, kubelogin...), which the kubernetes client starts with no timeout and
    which may wait forever (a browser login, a hung network). So the load runs in a daemon thread
    joined with ``timeout``: past it, a one-line EnvironmentProblem names the plugin (the thread
    is left behind, as a daemon, with the plugin's process: the client gives no handle to kill it;
    it ends when the plugin does, or with kslab). The client runs the plugin again before a request
    when the token it returned has expired (its ``refresh_api_key_hook``): that call is timed the
    same way (:func:`_timed_refresh`)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    cfg = k8s.Configuration()
    outcome: dict[str, Any] = {}

    def load() -> None:
        try:
            k8s_config.load_kube_config(config_file=os.pathsep.join(info.paths), context=name,
                                        client_configuration=cfg, persist_config=False)
            outcome["ok"] = True
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=load, name=f"kslab-kubeconfig-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        plugin = _exec_plugin(info, name)
        what = f"its credential plugin ({plugin})" if plugin else "loading its credentials"
        raise EnvironmentProblem(f"context {name!r} cannot be used: {what} did not finish within {timeout:g} s; "
                                 "run the plugin yourself to see what it waits for (a login?), or raise timeout= (--timeout)")
    err = outcome.get("error")
    if isinstance(err, (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError)):
        raise EnvironmentProblem(f"context {name!r} cannot be used: {' '.join(str(err).split())}") from None
    if err is not None:
        raise err
    hook = getattr(cfg, "refresh_api_key_hook", None)
    if hook is not None:  # the client re-runs the plugin before a request once its token expired: timed too
        cfg.refresh_api_key_hook = _timed_refresh(hook, info, name, timeout)
    return cfg


def _timed_refresh(hook: Callable[[Any], None], info: KubeconfigInfo, name: str, timeout: float) -> Callable[[Any], None]:
    """The client's token refresh (``refresh_api_key_hook``: the credential plugin again, when the
    token it gave has expired) under the same timeout as the first load."""

    def refresh(configuration: Any) -> None:
        outcome: dict[str, BaseException] = {}

        def run() -> None:
            try:
                hook(configuration)
            except BaseException as e:
                outcome["error"] = e

        worker = threading.Thread(target=run, name=f"kslab-refresh-{name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            plugin = _exec_plugin(info, name) or "the credential plugin"
            raise EnvironmentProblem(f"context {name!r}: refreshing its token ({plugin}) did not finish within "
                                     f"{timeout:g} s; run the plugin yourself to see what it waits for, or raise timeout= (--timeout)")
        if "error" in outcome:
            raise EnvironmentProblem(f"context {name!r}: refreshing its token failed: "
                                     f"{' '.join(str(outcome['error']).split())[:200]}") from None

    return refresh


def _exec_plugin(info: KubeconfigInfo, name: str) -> str:
    """The command of context ``name``'s credential plugin (``users[].user.exec.command``), or ""."""
    user = str(info.contexts.get(name, {}).get("user") or "")
    for p in info.paths:
        try:
            doc = yaml.safe_load(Path(p).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for item in (doc.get("users") or []) if isinstance(doc, dict) else []:
            if isinstance(item, dict) and item.get("name") == user and isinstance(item.get("user"), dict):
                ex = item["user"].get("exec")
                if isinstance(ex, dict) and ex.get("command"):
                    return " ".join([str(ex["command"]), *[str(a) for a in ex.get("args") or []]])[:120]
    return ""


# ---- the exec websocket's handshake gets a timeout too -------------------------------------------

_ws_timeout = threading.local()
_ws_patch_lock = threading.Lock()


def _install_websocket_timeout() -> None:
    """The client opens the exec websocket without a timeout (a server that accepts the TCP
    connection and never answers the upgrade would block forever): give its WebSocket class
    the timeout of the calling thread's exec (none outside kslab's calls: unchanged there)."""
    from kubernetes.stream import ws_client

    with _ws_patch_lock:
        if getattr(ws_client.WebSocket, "_kslab_timeout", False):
            return
        base = ws_client.WebSocket

        class _TimedWebSocket(base):  # type: ignore[misc, valid-type]
            _kslab_timeout = True

            def connect(self, url: str, **options: Any) -> None:
                timeout = getattr(_ws_timeout, "value", None)
                if timeout is not None:
                    options.setdefault("timeout", timeout)
                super().connect(url, **options)

        ws_client.WebSocket = _TimedWebSocket


# ---- the client -----------------------------------------------------------------------------------


class KindClient:
    """A live cluster's API server, through the official client. Make one with :meth:`connect`."""

    def __init__(self, api_client: Any, *, context: str, server: str, timeout: float = 10.0):
        self.api = api_client
        self.context = context
        self.server = server
        self.timeout = float(timeout)

    # -- connecting -----------------------------------------------------------------------------

    @classmethod
    def connect(cls, context: str | None = None, *, kubeconfig: str | None = None,
                allow_any_context: bool = False, timeout: float = 10.0) -> "KindClient":
        """The API server of ``context`` (default: the kubeconfig's current context), checked:
        EnvironmentProblem (one line) for no kubeconfig, a missing context, a context not named
        ``kind-*`` (unless ``allow_any_context``), an API server that refuses or does not answer
        within ``timeout`` seconds."""
        timeout = check_timeout(timeout)
        info = read_kubeconfig(kubeconfig)
        name = check_context(info, context, allow_any_context=allow_any_context)
        _quiet_urllib3()

        from kubernetes import client as k8s

        cfg = _load_kube_config(info, name, timeout)
        cfg.retries = False  # one attempt per call: the timeout is the caller's, not 4 times it
        api = k8s.ApiClient(cfg)
        self = cls(api, context=name, server=cfg.host, timeout=timeout)
        self.version = self._request("GET", "/version", what="read the API server's version")
        return self

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # pragma: no cover - closing a pool that never opened
            pass

    def __enter__(self) -> "KindClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] = (), body: Any = None,
                 content_type: str | None = None, what: str, resource: Resource | None = None,
                 namespace: str | None = None, name: str | None = None, raw: bool = False) -> Any:
        """One REST call through the client's ApiClient (its auth, TLS and connection pool), with
        the timeout; the JSON answer, or the one-line error for what went wrong. ``what`` says
        the verb and resource for messages ("list endpointslices.discovery.k8s.io in all namespaces")."""
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        url = path + ("?" + urlencode(list(query)) if query else "")
        _, full_url, headers, body_out, _ = self.api.param_serialize(
            method=method, resource_path=url, header_params=headers, body=body, auth_settings=["BearerToken"])
        try:
            resp = self.api.call_api(method, full_url, header_params=headers, body=body_out,
                                     _request_timeout=self.timeout)
            data = resp.read()
            status = resp.status
        except ApiException as e:  # the REST layer wraps TLS errors as status 0
            raise self._transport_problem(e.reason or str(e), what) from None
        except Exception as e:  # urllib3: refused, timed out, name not resolved ...
            if type(e).__module__.startswith(("urllib3", "socket", "ssl")) or isinstance(e, OSError):
                raise self._transport_problem(e, what) from None
            raise
        if not 200 <= status <= 299:
            raise self._status_problem(status, data, what, resource=resource, namespace=namespace, name=name)
        if raw:
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError:
            raise EnvironmentProblem(f"the API server of context {self.context!r} answered {what} with "
                                     f"something that is not JSON ({data[:60]!r})") from None

    def _transport_problem(self, err: Any, what: str, timeout: float | None = None) -> EnvironmentProblem:
        text = " ".join(str(err).split())
        low = text.lower()
        if "timed out" in low or "timeout" in low:
            return EnvironmentProblem(f"the API server {self.server} (context {self.context!r}) did not answer "
                                      f"within {timeout or self.timeout:g} s (to {what}): is the cluster overloaded or paused? "
                                      "(docker ps; kind get clusters)")
        if "refused" in low or "errno 111" in low:
            return EnvironmentProblem(f"the API server {self.server} (context {self.context!r}) refused the connection "
                                      f"(to {what}): is the cluster running? (docker ps; kind get clusters)")
        if "certificate" in low or "ssl" in low:
            return EnvironmentProblem(f"TLS with the API server {self.server} (context {self.context!r}) failed "
                                      f"(to {what}): {text[:160]}")
        return EnvironmentProblem(f"the API server {self.server} (context {self.context!r}) is unreachable "
                                  f"(to {what}): {text[:160]}")

    def _status_problem(self, status: int, data: bytes, what: str, *, resource: Resource | None,
                        namespace: str | None, name: str | None) -> Exception:
        message = ""
        try:
            doc = json.loads(data)
            if isinstance(doc, dict):
                message = str(doc.get("message") or "")
        except ValueError:
            message = data[:200].decode("utf-8", "replace") if data else ""
        said = f" (the API server said: {' '.join(message.split())})" if message else ""
        if status == 403:
            return EnvironmentProblem(f"forbidden: context {self.context!r} cannot {what}{said}; "
                                      "ask for RBAC permission (kubectl auth can-i) or use a context that has it")
        if status == 401:
            return EnvironmentProblem(f"unauthorized: the API server refused the credentials of context "
                                      f"{self.context!r} (to {what}){said}; refresh the kubeconfig "
                                      "(kind export kubeconfig --name CLUSTER)")
        if status == 404 and resource is not None and name:
            ref = f"{resource.kind.lower()} {namespace + '/' if namespace and resource.namespaced else ''}{name}"
            return InputError(ref, f"not found on the cluster of context {self.context!r}",
                              "check the name and namespace (kubectl get " + resource.qualified + " -A)")
        if status == 404:
            return EnvironmentProblem(f"the API server of context {self.context!r} does not serve this (to {what}): "
                                      f"404{said}")
        if status in (400, 409, 422) and resource is not None:
            ref = f"{resource.kind.lower()} {namespace + '/' if namespace and resource.namespaced else ''}{name or ''}".strip()
            return InputError(ref, f"the API server refused to {what.split(' ')[0]} it ({status}){said}",
                              "fix the object (kubectl explain " + resource.qualified + ")")
        return EnvironmentProblem(f"the API server of context {self.context!r} answered {status} (to {what}){said}")

    @staticmethod
    def _scope(resource: Resource, namespace: str | None) -> str:
        if not resource.namespaced:
            return ""
        return f" in namespace {namespace}" if namespace else " in all namespaces"

    # -- reading ----------------------------------------------------------------------------------

    def list_kind(self, kind: str, namespace: str | None = None, *, label_selector: str | None = None) -> list[dict]:
        """Every object of ``kind`` (in ``namespace``, or all), paged with ``limit``/``continue``
        as kubectl pages, each with ``kind`` and ``apiVersion`` set."""
        res = resource_for(kind)
        what = f"list {res.qualified}{self._scope(res, namespace)}"
        items: list[dict] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", LIST_PAGE_SIZE)]
            if token:
                query.append(("continue", token))
            if label_selector:
                query.append(("labelSelector", label_selector))
            doc = self._request("GET", res.path(namespace), query=query, what=what, resource=res)
            for item in doc.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("kind", res.kind)
                    item.setdefault("apiVersion", res.api_version)
                    items.append(item)
            token = str((doc.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    def list_objects(self) -> list[dict]:
        """Nodes, Pods, Services and EndpointSlices of all namespaces, as the API server sent them."""
        out: list[dict] = []
        for kind in LISTED_KINDS:
            out += self.list_kind(kind)
        return out

    def get_object(self, kind: str, name: str, namespace: str | None = "default") -> dict:
        """One object; InputError naming it when it does not exist."""
        res = resource_for(kind)
        ns = namespace if res.namespaced else None
        obj = self._request("GET", res.path(ns, name), what=f"get {res.qualified} {name}{self._scope(res, ns)}",
                            resource=res, namespace=ns, name=name)
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        return obj

    def _get_or_none(self, res: Resource, name: str, namespace: str | None) -> dict | None:
        try:
            return self.get_object(res.kind, name, namespace)
        except InputError as e:
            if "not found" in e.problem:
                return None
            raise

    def kube_proxy_configmap(self) -> dict | None:
        """``kube-system/kube-proxy`` (kubeadm's and so kind's; its ``data["config.conf"]`` is the
        KubeProxyConfiguration), or None when the cluster has none (no kube-proxy, or another
        installer's name)."""
        return self._get_or_none(RESOURCES["ConfigMap"], "kube-proxy", "kube-system")

    # -- exec -------------------------------------------------------------------------------------

    def exec(self, pod: str, namespace: str, argv: list[str], *, timeout: float,
             container: str | None = None) -> ExecResult:
        """Run ``argv`` in ``pod`` (its first container, or ``container``) through the exec
        websocket, as ``kubectl exec`` does; wait at most ``timeout`` seconds for it to end."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise InputError("argv", f"{argv!r} is not a command", "pass a list of strings, e.g. ['curl', '-s', 'svc-clusterip:9000']")
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream

        _install_websocket_timeout()
        what = f"create pods/exec in namespace {namespace}"
        # the client's stream() swaps call_api on the ApiClient it is given for the handshake:
        # an ApiClient of its own per exec keeps concurrent execs and REST calls apart
        exec_api = k8s.ApiClient(self.api.configuration)
        core = k8s.CoreV1Api(exec_api)
        kwargs: dict[str, Any] = {"command": list(argv), "stderr": True, "stdin": False, "stdout": True, "tty": False,
                                  "_preload_content": False, "_request_timeout": timeout}
        if container:
            kwargs["container"] = container
        handshake = min(timeout, self.timeout)
        _ws_timeout.value = handshake
        try:
            ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
        except ApiException as e:
            raise self._exec_problem(str(e.reason or e), pod, namespace, what, handshake) from None
        finally:
            _ws_timeout.value = None
            exec_api.close()
        stdout: list[str] = []
        stderr: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while ws.is_open():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EnvironmentProblem(f"exec in pod {namespace}/{pod} ({' '.join(argv)[:80]}) did not finish "
                                             f"within {timeout:g} s")
                ws.update(timeout=min(left, 1.0))
                stdout.append(ws.read_stdout(timeout=0) or "")
                stderr.append(ws.read_stderr(timeout=0) or "")
            stdout.append(ws.read_stdout(timeout=0) or "")
            stderr.append(ws.read_stderr(timeout=0) or "")
            status_text = ws.read_channel(3)
        except EnvironmentProblem:
            raise
        except Exception as e:  # the socket broke mid-stream
            raise EnvironmentProblem(f"exec in pod {namespace}/{pod} broke off: {' '.join(str(e).split())[:160]}") from None
        finally:
            ws.close(timeout=0)  # no waiting for the server's close frame (a hung command never sends it)
        return ExecResult("".join(stdout), "".join(stderr), _exit_code(status_text, pod, namespace))

    def _exec_problem(self, reason: str, pod: str, namespace: str, what: str, timeout: float) -> Exception:
        m = re.search(r"Handshake status (\d+)", reason)
        if m:
            status = int(m.group(1))
            body = reason.rsplit("-+-+-", 1)[-1].strip()
            if body.startswith(("b'", 'b"')):
                try:
                    import ast

                    body = ast.literal_eval(body).decode("utf-8", "replace")
                except (ValueError, SyntaxError):
                    pass
            err = self._status_problem(status, body.encode(), what, resource=RESOURCES["Pod"],
                                       namespace=namespace, name=pod)
            if status == 403:
                return EnvironmentProblem(f"exec not allowed: {err}")
            if status in (400, 409, 422, 500, 503):  # the pod or container cannot run commands now
                try:
                    message = " ".join(str(json.loads(body).get("message") or "").split())
                except (ValueError, AttributeError):
                    message = " ".join(body.split())[:200]
                return EnvironmentProblem(f"exec in pod {namespace}/{pod} refused ({status}): {message or 'no reason given'}; "
                                          "is the pod running? (kubectl get pod -o wide)")
            return err
        return self._transport_problem(reason, what, timeout)

    # -- writing (label-checked) ------------------------------------------------------------------

    def _check_managed(self, obj: dict, res: Resource, action: str) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_LABEL_KEY) != MANAGED_LABEL_VALUE:
            md = obj.get("metadata") or {}
            ref = f"{res.kind.lower()} {md.get('namespace') + '/' if md.get('namespace') else ''}{md.get('name')}"
            raise InputError(ref, f"was not created by kslab (no label {MANAGED_LABEL_KEY}={MANAGED_LABEL_VALUE}), "
                                  f"so kslab will not {action} it",
                             "change it yourself with kubectl, or delete it and let `kslab apply` (lab.apply()) create it")

    def apply(self, objects: Iterable[dict]) -> list[str]:
        """Create each object (labelled :data:`MANAGED_LABEL`), or update it when it exists and
        carries the label; a missing namespace is created first (labelled too). Every object is
        checked before the first write: one that exists without the label (or an unknown kind)
        stops the whole apply with nothing changed. Returns ``kind/namespace/name created|configured``."""
        plan: list[tuple[str, Resource, dict, str | None]] = []  # (action, resource, body, namespace)
        namespaces: dict[str, bool] = {}
        for i, obj in enumerate(objects):
            if not isinstance(obj, dict):
                raise InputError(f"objects[{i}]", "is not an object (a mapping)", "pass the manifests as dicts")
            kind = str(obj.get("kind") or "")
            md = obj.get("metadata") or {}
            name = str(md.get("name") or "")
            if kind not in APPLY_KINDS:
                raise InputError(f"objects[{i}].kind", f"{kind!r} is not applied by kslab",
                                 f"use one of {', '.join(APPLY_KINDS)}")
            if not name:
                raise InputError(f"objects[{i}].metadata.name", "is missing", "name the object")
            res = RESOURCES[kind]
            ns = str(md.get("namespace") or "default") if res.namespaced else None
            body = copy.deepcopy(obj)
            body.setdefault("apiVersion", res.api_version)
            body_md = body.setdefault("metadata", {})
            if ns:
                body_md["namespace"] = ns
            body_md["labels"] = {**(body_md.get("labels") or {}), **MANAGED_LABEL}
            if ns and ns not in namespaces:
                namespaces[ns] = self._get_or_none(RESOURCES["Namespace"], ns, None) is not None
            existing = None if (ns and not namespaces[ns]) else self._get_or_none(res, name, ns)
            if existing is not None:
                self._check_managed(existing, res, "change")
            plan.append(("configured" if existing is not None else "created", res, body, ns))
        done: list[str] = []
        for ns, exists in namespaces.items():
            if not exists:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(MANAGED_LABEL)}}
                nres = RESOURCES["Namespace"]
                self._request("POST", nres.path(), body=body, content_type="application/json", query=FIELD_MANAGER,
                              what=f"create namespaces {ns}", resource=nres, name=ns)
                done.append(f"namespace/{ns} created")
        for action, res, body, ns in plan:
            name = body["metadata"]["name"]
            scope = self._scope(res, ns)
            if action == "created":
                self._request("POST", res.path(ns), body=body, content_type="application/json", query=FIELD_MANAGER,
                              what=f"create {res.qualified}{scope}", resource=res, namespace=ns, name=name)
            else:
                self._request("PATCH", res.path(ns, name), body=body, content_type="application/strategic-merge-patch+json",
                              query=FIELD_MANAGER, what=f"patch {res.qualified} {name}{scope}", resource=res, namespace=ns, name=name)
            done.append(f"{res.kind.lower()}/{ns + '/' if ns else ''}{name} {action}")
        return done

    def scale(self, deployment: str, namespace: str, replicas: int) -> None:
        """``kubectl scale deployment``: the scale subresource, after the label check."""
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise InputError("replicas", f"{replicas!r} is not a number of replicas", "pass 0 or more")
        res = RESOURCES["Deployment"]
        self._check_managed(self.get_object("Deployment", deployment, namespace), res, "scale")
        self._request("PATCH", res.path(namespace, deployment, "scale"), body={"spec": {"replicas": replicas}},
                      content_type="application/merge-patch+json", query=FIELD_MANAGER,
                      what=f"patch deployments.apps/scale {deployment} in namespace {namespace}",
                      resource=res, namespace=namespace, name=deployment)

    def patch_service(self, name: str, namespace: str, patch: dict) -> None:
        """A strategic merge patch of a Service the workbook created."""
        if not isinstance(patch, dict) or not patch:
            raise InputError("patch", f"{patch!r} is not a patch", "pass a mapping such as {'spec': {'type': 'NodePort'}}")
        res = RESOURCES["Service"]
        self._check_managed(self.get_object("Service", name, namespace), res, "patch")
        self._request("PATCH", res.path(namespace, name), body=patch, content_type="application/strategic-merge-patch+json",
                      query=FIELD_MANAGER,
                      what=f"patch services {name} in namespace {namespace}", resource=res, namespace=namespace, name=name)

    def delete_pod(self, name: str, namespace: str) -> None:
        """Delete a pod the workbook made: labelled itself, or owned by a ReplicaSet whose
        Deployment (or which itself) is labelled."""
        res = RESOURCES["Pod"]
        pod = self.get_object("Pod", name, namespace)
        if not self._owned_by_kslab(pod, namespace):
            self._check_managed(pod, res, "delete")
        self._request("DELETE", res.path(namespace, name), what=f"delete pods {name} in namespace {namespace}",
                      resource=res, namespace=namespace, name=name)

    def _owned_by_kslab(self, obj: dict, namespace: str, depth: int = 0) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_LABEL_KEY) == MANAGED_LABEL_VALUE:
            return True
        if depth >= 2:
            return False
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        for ref in refs if isinstance(refs, list) else []:
            if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") in ("ReplicaSet", "Deployment"):
                owner = self._get_or_none(RESOURCES[ref["kind"]], str(ref.get("name")), namespace)
                # the owner is the object the reference names by uid: one deleted and re-created
                # under the same name (by someone else, unlabelled or labelled) is not it
                if owner is None or not ref.get("uid") or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
                    continue
                if self._owned_by_kslab(owner, namespace, depth + 1):
                    return True
        return False

    # -- a pod on a node, run to completion (kslab verify --allow-debug-pod) ------------------------

    def node_pod_image(self) -> tuple[str, str]:
        """The image for a privileged pod that reads a node's iptables (:meth:`run_node_pod`), and
        where it came from: the kube-proxy DaemonSet's (kube-system/kube-proxy: its iptables
        picks the same backend, nft or legacy, as kube-proxy's), else :data:`DEBUG_POD_IMAGE`
        of the API server's version (``registry.k8s.io/kube-proxy:vX.Y.Z``, which holds
        iptables-save and the same backend-choosing wrapper)."""
        ds = self._get_or_none(RESOURCES["DaemonSet"], "kube-proxy", "kube-system")
        containers = ((((ds or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for c in containers if isinstance(containers, list) else []:
            if isinstance(c, dict) and c.get("image"):
                return str(c["image"]), "the kube-proxy DaemonSet's image"
        version = str((getattr(self, "version", None) or {}).get("gitVersion") or "")
        m = re.match(r"v\d+\.\d+\.\d+", version)
        return DEBUG_POD_IMAGE.format(version=m.group(0) if m else DEBUG_POD_DEFAULT_VERSION), "kslab's default image"

    def run_node_pod(self, node: str, argv: list[str], *, image: str, timeout: float,
                     namespace: str = DEBUG_POD_NAMESPACE) -> tuple[ExecResult, str]:
        """Run ``argv`` once on ``node`` in a privileged pod on the node's network (what ``kubectl
        debug node/NODE --profile=sysadmin`` makes: ``hostNetwork``, ``privileged``, ``nodeName``,
        every taint tolerated, ``restartPolicy: Never``), labelled :data:`MANAGED_LABEL`, in
        ``namespace`` (kube-system: where Pod Security admission lets privileged pods run on
        kubeadm, kind, EKS and GKE). Waits at most ``timeout`` seconds for it to end, reads its log
        (the command's stdout and stderr, as the container runtime keeps them) and deletes it,
        also when anything failed. Returns (the result, the pod's name)."""
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "kslab-node-", "namespace": namespace, "labels": dict(MANAGED_LABEL)},
            "spec": {
                "nodeName": node, "hostNetwork": True, "hostPID": False, "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0, "automountServiceAccountToken": False,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "kslab", "image": image, "command": list(argv),
                                "securityContext": {"privileged": True}}],
            },
        }
        res = RESOURCES["Pod"]
        pod = self._request("POST", res.path(namespace), body=body, content_type="application/json", query=FIELD_MANAGER,
                            what=f"create pods in namespace {namespace}", resource=res, namespace=namespace)
        name = str((pod.get("metadata") or {}).get("name") or "")
        if not name:
            raise EnvironmentProblem(f"the API server of context {self.context!r} created a pod without a name")
        try:
            deadline = time.monotonic() + timeout
            while True:
                current = self.get_object("Pod", name, namespace)
                status = current.get("status") or {}
                phase = str(status.get("phase") or "")
                if phase in ("Succeeded", "Failed"):
                    break
                if time.monotonic() >= deadline:
                    raise EnvironmentProblem(
                        f"pod {namespace}/{name} ({' '.join(argv)[:60]} on node {node}, image {image}) did not finish "
                        f"within {timeout:g} s (phase {phase or 'unknown'}{_waiting_reason(status)}); "
                        "can the node pull the image? (kubectl -n " + namespace + " describe pod)")
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            log = self._request("GET", res.path(namespace, name, "log"), query=[("container", "kslab")], raw=True,
                                what=f"get pods/log {name} in namespace {namespace}", resource=res,
                                namespace=namespace, name=name)
            code = 0 if phase == "Succeeded" else _terminated_exit_code(status)
            return ExecResult(log, "", code), name
        finally:
            try:
                got = self._get_or_none(res, name, namespace)
                if got is not None:
                    self._check_managed(got, res, "delete")
                    self._request("DELETE", res.path(namespace, name), query=[("gracePeriodSeconds", 0)],
                                  what=f"delete pods {name} in namespace {namespace}",
                                  resource=res, namespace=namespace, name=name)
            except (EnvironmentProblem, InputError):
                pass  # the first error is the one to report; the pod carries kslab's label for a manual cleanup

    # -- rollouts ---------------------------------------------------------------------------------

    def rollout_status(self, name: str, namespace: str) -> RolloutProgress:
        """One Deployment's rollout, judged as ``kubectl rollout status`` judges it."""
        dep = self.get_object("Deployment", name, namespace)
        return rollout_progress(dep)

    def wait_rollout(self, deployments: list[tuple[str, str]], *, timeout: float,
                     progress: Callable[[list[RolloutProgress]], None] | None = None, poll: float = 0.5) -> None:
        """Wait until every ``(namespace, name)`` Deployment has rolled out, calling ``progress``
        with every Deployment's :class:`RolloutProgress` after each poll; EnvironmentProblem
        naming the ones still rolling out after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            states = [self.rollout_status(name, ns) for ns, name in deployments]
            if progress is not None:
                progress(states)
            pending = [s for s in states if not s.done]
            if not pending:
                return
            if time.monotonic() + poll > deadline:
                raise EnvironmentProblem("rollout not finished within %g s: %s" % (
                    timeout, "; ".join(f"deployment {s.namespace}/{s.name}: {s.message}" for s in pending)))
            time.sleep(poll)

    # -- permissions ------------------------------------------------------------------------------

    def can_i(self, verb: str, resource: str, *, namespace: str | None = None, group: str = "",
              subresource: str = "") -> tuple[bool, str]:
        """``kubectl auth can-i``: a SelfSubjectAccessReview (authorization.k8s.io/v1) of ``verb``
        on ``resource`` (``/subresource``) in ``namespace``; (allowed, the authorizer's reason)."""
        attrs: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
        if subresource:
            attrs["subresource"] = subresource
        if namespace:
            attrs["namespace"] = namespace
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        doc = self._request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body,
                            content_type="application/json", what="create selfsubjectaccessreviews.authorization.k8s.io")
        status = doc.get("status") if isinstance(doc, dict) else None
        status = status if isinstance(status, dict) else {}
        return bool(status.get("allowed")), str(status.get("reason") or status.get("evaluationError") or "")


def rollout_progress(dep: dict) -> RolloutProgress:
    """``DeploymentStatusViewer.Status`` (kubectl rollout status) for one Deployment object."""
    md = dep.get("metadata") or {}
    spec = dep.get("spec") or {}
    st = dep.get("status") or {}
    name, ns = str(md.get("name")), str(md.get("namespace") or "default")
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(st.get("updatedReplicas") or 0)
    replicas = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    if int(md.get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return RolloutProgress(ns, name, desired, updated, available, False, "waiting for the rollout to be observed")
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutProgress(ns, name, desired, updated, available, False, f"exceeded its progress deadline")
    if updated < desired:
        msg = f"{updated} out of {desired} new replicas have been updated"
    elif replicas > updated:
        msg = f"{replicas - updated} old replicas are pending termination"
    elif available < updated:
        msg = f"{available} of {updated} updated replicas are available"
    else:
        return RolloutProgress(ns, name, desired, updated, available, True, "successfully rolled out")
    return RolloutProgress(ns, name, desired, updated, available, False, msg)


def _waiting_reason(status: dict) -> str:
    for cs in status.get("containerStatuses") or []:
        waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f", {waiting['reason']}"
    return ""


def _terminated_exit_code(status: dict) -> int:
    for cs in status.get("containerStatuses") or []:
        term = ((cs or {}).get("state") or {}).get("terminated") or {}
        if term.get("exitCode") is not None:
            try:
                return int(term["exitCode"])
            except (TypeError, ValueError):
                break
    return 1


def _exit_code(status_text: str, pod: str, namespace: str) -> int:
    """The exit code from the exec stream's status channel (a ``metav1.Status``: Success, or
    Failure with reason NonZeroExitCode and the code in ``details.causes``)."""
    if not status_text:
        raise EnvironmentProblem(f"exec in pod {namespace}/{pod} ended without an exit status (the stream was cut)")
    try:
        st = json.loads(status_text)
    except ValueError:
        raise EnvironmentProblem(f"exec in pod {namespace}/{pod}: unreadable exit status {status_text[:80]!r}") from None
    if st.get("status") == "Success":
        return 0
    if st.get("reason") == "NonZeroExitCode":
        for cause in (st.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message"))
    raise EnvironmentProblem(f"exec in pod {namespace}/{pod} failed: {' '.join(str(st.get('message') or st).split())[:200]}")


def server_host(server: str) -> str:
    return urlsplit(server).netloc or server
