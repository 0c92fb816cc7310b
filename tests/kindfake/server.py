"""A local fake Kubernetes API server, for the real ``kubernetes`` client (tests only).

kmock 0.8 (the aiohttp mock server for Kubernetes) answers REST calls but cannot upgrade a
request to a websocket (its payloads are bodies and streams, not a hijacked connection), so the
client's exec stream could not be served; this fake is built on tornado (installed with
Jupyter) instead. It serves, on 127.0.0.1 over HTTP or HTTPS:

- ``/version``, ``/api``, ``/apis``, ``/healthz``;
- list (paged with ``limit``/``continue``, ``labelSelector`` with ``k=v``/``k!=v``/``k``), get,
  create, patch (merge and strategic merge, treated as a JSON merge patch; a Service keeps its
  allocated clusterIP and nodePorts as the registry's ``patchAllocatedValues`` does), update and
  delete of the kinds in :data:`RESOURCES`, and a Deployment's ``scale`` subresource;
- the exec websocket (``v5.channel.k8s.io``, ``v4.channel.k8s.io``): stdout on channel 1, stderr
  on 2, the exit status (a ``metav1.Status``) on 3, answered by :attr:`FakeApiServer.exec_handler`
  (default: the recorded outputs of the fixture, :class:`ExecRecordings`);
- errors as the real API server writes them (a ``Status`` object: 403 naming the user, verb,
  resource, group and scope; 404 naming the object; 401 without the bearer token; 409; 422),
  injected per test with :meth:`FakeApiServer.fail`, slow answers with :meth:`FakeApiServer.delay`.

Deployments roll out one replica per read of the Deployment (``status`` walks towards
``spec.replicas``), so ``wait_rollout`` sees progress. Writes can be followed by
:attr:`FakeApiServer.on_write` hooks (a test may re-derive pods and slices from kslab's sim).
See README.md beside this file.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

import tornado.httpserver
import tornado.web
import tornado.websocket

USER = "kubernetes-admin"  # kind's kubeconfig user; a 403 names it as the API server does
TOKEN = "kslab-fake-token"
VERSION = {
    "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33", "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32", "gitVersion": "v1.33.1", "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
    "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z", "goVersion": "go1.24.2", "compiler": "gc",
    "platform": "linux/amd64",
}
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


@dataclass(frozen=True)
class Res:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = [
    Res("Node", "", "v1", "nodes", False),
    Res("Namespace", "", "v1", "namespaces", False),
    Res("Pod", "", "v1", "pods", True),
    Res("Service", "", "v1", "services", True),
    Res("ConfigMap", "", "v1", "configmaps", True),
    Res("Endpoints", "", "v1", "endpoints", True),
    Res("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", True),
    Res("Deployment", "apps", "v1", "deployments", True),
    Res("ReplicaSet", "apps", "v1", "replicasets", True),
    Res("DaemonSet", "apps", "v1", "daemonsets", True),
    Res("Event", "", "v1", "events", True),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}


# ---- errors as the API server writes them ---------------------------------------------------------


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    st: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason}
    if details:
        st["details"] = details
    st["code"] = code
    return st


def forbidden(verb: str, res: Res, namespace: str | None, name: str | None, sub: str | None = None,
              user: str = USER) -> dict:
    """``apierrors.NewForbidden`` with the RBAC authorizer's reason, word for word."""
    resource = f"{res.plural}/{sub}" if sub else res.plural
    qual = f"{res.plural}.{res.group}" if res.group else res.plural
    what = f'{qual} "{name}"' if name else qual
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    msg = f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{res.group}" {scope}'
    details: dict[str, Any] = {"group": res.group, "kind": res.plural}
    if name:
        details = {"name": name, **details}
    return status_object(403, "Forbidden", msg, details)


def not_found(res: Res, name: str) -> dict:
    qual = f"{res.plural}.{res.group}" if res.group else res.plural
    details: dict[str, Any] = {"name": name, "kind": res.plural}
    if res.group:
        details["group"] = res.group
    return status_object(404, "NotFound", f'{qual} "{name}" not found', details)


# ---- injected behaviour ---------------------------------------------------------------------------


@dataclass
class Rule:
    """Answer matching requests with ``status`` (a Status object, or ``body``) after ``delay``
    seconds; ``times`` matches at most that many requests (None: all). ``None`` fields match anything.
    ``verb``: list, get, create, patch, update, delete, exec (the exec websocket's handshake)."""

    verb: str | None = None
    resource: str | None = None  # plural, e.g. "endpointslices" (or "pods/exec")
    namespace: str | None = None
    name: str | None = None
    status: int | None = None
    body: dict | None = None
    delay: float = 0.0
    times: int | None = None
    hits: int = 0

    def matches(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return ((self.verb is None or self.verb == verb) and (self.resource is None or self.resource == resource)
                and (self.namespace is None or self.namespace == namespace) and (self.name is None or self.name == name))


@dataclass(frozen=True)
class ExecRequest:
    namespace: str
    pod: str
    container: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class ExecAnswer:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    delay: float = 0.0  # seconds before the output (a slow command)


class ExecRecordings:
    """Recorded exec outputs (``exec.json`` of a fixture): a list of
    ``{"namespace", "pod", "argv", "stdout", "stderr", "exit_code"}``. The same command run again
    in the same pod gets the next recording for it (the last one repeats): a curl through a
    Service reaches different pods in turn, as recorded."""

    def __init__(self, records: list[dict]):
        self.records: dict[tuple[str, str, tuple[str, ...]], list[dict]] = {}
        for r in records:
            key = (r.get("namespace", "default"), r["pod"], tuple(r["argv"]))
            self.records.setdefault(key, []).append(r)
        self.calls: dict[tuple, int] = {}
        self.lock = threading.Lock()

    def __call__(self, req: ExecRequest) -> ExecAnswer:
        key = (req.namespace, req.pod, req.argv)
        with self.lock:
            recs = self.records.get(key)
            if not recs:
                # what a container's shell says for a command nobody recorded (and the fake says why)
                return ExecAnswer("", f"kindfake: no recorded output for {' '.join(req.argv)!r} in pod "
                                      f"{req.namespace}/{req.pod}\n", 127)
            n = self.calls.get(key, 0)
            self.calls[key] = n + 1
            r = recs[min(n, len(recs) - 1)]
        return ExecAnswer(r.get("stdout", ""), r.get("stderr", ""), int(r.get("exit_code", 0)), float(r.get("delay", 0)))


# ---- the store ------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes a key, lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class Store:
    """The objects, keyed by (kind, namespace, name), with a resourceVersion counter."""

    def __init__(self, objects: list[dict] = ()):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.revision = 1
        self.lock = threading.RLock()
        self.load(objects)

    def load(self, objects: list[dict]) -> None:
        with self.lock:
            self.objects.clear()
            for obj in objects:
                md = obj.get("metadata") or {}
                self.objects[(obj["kind"], md.get("namespace", ""), md["name"])] = copy.deepcopy(obj)
                self.revision = max(self.revision, int(md.get("resourceVersion") or 0))

    def bump(self, obj: dict) -> None:
        self.revision += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.revision)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items()) if k == kind and (namespace is None or ns == namespace)]

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            o = self.objects.get((kind, namespace, name))
            return copy.deepcopy(o) if o is not None else None

    def put(self, obj: dict) -> dict:
        with self.lock:
            md = obj["metadata"]
            self.bump(obj)
            self.objects[(obj["kind"], md.get("namespace", ""), md["name"])] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def delete(self, kind: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            return self.objects.pop((kind, namespace, name), None)

    def all(self) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for _, o in sorted(self.objects.items())]


# ---- the server -----------------------------------------------------------------------------------


WriteHook = Callable[["FakeApiServer", str, dict], None]  # (server, verb, object after the write)


class FakeApiServer:
    """The fake API server; ``start()`` runs it in a thread on 127.0.0.1 (``port=0``: any free
    port). ``url`` is what a kubeconfig's ``server:`` says; :meth:`write_kubeconfig` writes one."""

    def __init__(self, objects: list[dict] = (), *, exec_records: list[dict] = (), tls: bool = False,
                 token: str | None = TOKEN, user: str = USER, rollout_step: int = 1, client_certs: bool = False):
        self.store = Store(objects)
        self.rules: list[Rule] = []
        self.exec_handler: Callable[[ExecRequest], ExecAnswer] = ExecRecordings(list(exec_records))
        self.exec_log: list[ExecRequest] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query), in order
        self.on_write: list[WriteHook] = []
        self.tls = tls or client_certs
        self.client_certs = client_certs  # kind's way: the kubeconfig's user is a client certificate
        self.token = None if client_certs else token
        self.cert_paths: dict[str, Path] = {}
        self.user = user
        self.rollout_step = rollout_step
        self.port = 0
        self.ca_file: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._certdir: Path | None = None

    # -- life ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, port: int = 0, certdir: str | Path | None = None) -> "FakeApiServer":
        ssl_ctx = None
        if self.tls:
            from .certs import make_certs, server_ssl_context

            self._certdir = Path(certdir) if certdir else None
            paths = make_certs(self._certdir)
            self.cert_paths = paths
            self.ca_file = str(paths["ca"])
            ssl_ctx = server_ssl_context(paths, client_certs=self.client_certs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            app = _application(self)
            self._server = tornado.httpserver.HTTPServer(app, ssl_options=ssl_ctx)
            self._server.add_sockets([sock])
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"kindfake:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving: the port is closed (connections to it are refused)."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.stop()
            await server.close_all_connections()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), loop)
        try:
            fut.result(5)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = self._server = None

    def __enter__(self) -> "FakeApiServer":
        return self if self._loop else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------------------

    def fail(self, status: int, *, verb: str | None = None, resource: str | None = None, namespace: str | None = None,
             name: str | None = None, times: int | None = None, body: dict | None = None, delay: float = 0.0) -> Rule:
        """Answer matching requests with ``status``: 403 as RBAC words it (naming the user, verb,
        resource and scope), 404 naming the object, anything else with a Status object."""
        rule = Rule(verb, resource, namespace, name, status, body, delay, times)
        self.rules.append(rule)
        return rule

    def forbid(self, verb: str, resource: str, **kw: Any) -> Rule:
        """RBAC says no to ``verb`` on ``resource`` (plural, or ``pods/exec``)."""
        return self.fail(403, verb=verb, resource=resource, **kw)

    def delay(self, seconds: float, **match: Any) -> Rule:
        """Answer matching requests only after ``seconds`` (a client timeout shorter than that fires)."""
        rule = Rule(match.get("verb"), match.get("resource"), match.get("namespace"), match.get("name"),
                    None, None, seconds, match.get("times"))
        self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        self.rules.clear()

    def objects(self, kind: str | None = None) -> list[dict]:
        return [o for o in self.store.all() if kind is None or o["kind"] == kind]

    def load(self, objects: list[dict]) -> None:
        """Replace every object (the cluster changed under the client)."""
        self.store.load(objects)

    def write_kubeconfig(self, path: str | Path, *, context: str = "kind-myk8s", cluster: str | None = None,
                         extra_contexts: dict[str, str] | None = None, current: str | None = None) -> Path:
        """A kubeconfig for this server, as ``kind`` writes one (``kind-<name>`` context, cluster
        and user), plus ``extra_contexts`` (name -> the same server) for the context checks."""
        import yaml

        path = Path(path)
        cluster = cluster or context
        server: dict[str, Any] = {"server": self.url}
        if self.tls and self.ca_file:
            server["certificate-authority-data"] = base64.b64encode(Path(self.ca_file).read_bytes()).decode()
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        if self.client_certs and self.cert_paths:
            user = {"client-certificate-data": base64.b64encode(self.cert_paths["client_cert"].read_bytes()).decode(),
                    "client-key-data": base64.b64encode(self.cert_paths["client_key"].read_bytes()).decode()}
        users = [{"name": cluster, "user": user}]
        contexts = [{"name": context, "context": {"cluster": cluster, "user": cluster}}]
        clusters = [{"name": cluster, "cluster": server}]
        for name in (extra_contexts or {}):
            contexts.append({"name": name, "context": {"cluster": cluster, "user": cluster}})
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": clusters, "users": users,
               "contexts": contexts, "current-context": current or context}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    # -- request handling (on the server's loop) ---------------------------------------------------

    def _rule_for(self, verb: str, resource: str, namespace: str | None, name: str | None) -> Rule | None:
        for rule in list(self.rules):
            if rule.matches(verb, resource, namespace, name):
                rule.hits += 1
                return rule
        return None

    def _rule_answer(self, rule: Rule, verb: str, res: Res, namespace: str | None, name: str | None,
                     sub: str | None) -> tuple[int, dict] | None:
        if rule.status is None:
            return None
        if rule.body is not None:
            return rule.status, rule.body
        if rule.status == 403:
            return 403, forbidden(verb, res, namespace, name, sub, self.user)
        if rule.status == 404:
            return 404, not_found(res, name or "")
        reasons = {400: "BadRequest", 401: "Unauthorized", 409: "Conflict", 422: "Invalid", 429: "TooManyRequests",
                   500: "InternalError", 503: "ServiceUnavailable"}
        return rule.status, status_object(rule.status, reasons.get(rule.status, "Unknown"), f"injected {rule.status}")

    def _written(self, verb: str, obj: dict) -> None:
        for hook in list(self.on_write):
            hook(self, verb, obj)

    def _advance_rollout(self, obj: dict) -> dict:
        """One step of the deployment controller: status walks towards spec.replicas."""
        if obj.get("kind") != "Deployment":
            return obj
        spec, st = obj.get("spec") or {}, obj.setdefault("status", {})
        desired = int(spec.get("replicas", 1))
        gen = int(obj["metadata"].get("generation") or 1)
        changed = int(st.get("observedGeneration") or 0) != gen
        st["observedGeneration"] = gen
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            cur = int(st.get(key) or 0)
            new = min(desired, cur + self.rollout_step) if cur < desired else desired
            if new != cur:
                changed = True
            if new:
                st[key] = new
            else:
                st.pop(key, None)
        ready = int(st.get("availableReplicas") or 0)
        if desired > ready:
            st["unavailableReplicas"] = desired - ready
        else:
            st.pop("unavailableReplicas", None)
        if changed:
            self.store.put(obj)
        return obj


def _application(fake: FakeApiServer) -> tornado.web.Application:
    kw = {"fake": fake}
    return tornado.web.Application([
        (r"/version/?", _VersionHandler, kw),
        (r"/healthz|/livez|/readyz", _HealthHandler, kw),
        (r"/api/?", _ApiVersionsHandler, kw),
        (r"/apis/?", _ApiGroupsHandler, kw),
        (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec", _ExecHandler, kw),
        (r"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/?", _AccessReviewHandler, kw),
        (r"/api/(v1)/(.*)", _RestHandler, {**kw, "group": ""}),
        (r"/apis/([^/]+)/([^/]+)/(.*)", _RestHandler, kw),
    ])


class _Base(tornado.web.RequestHandler):
    fake: FakeApiServer

    def initialize(self, fake: FakeApiServer, group: str | None = None) -> None:
        self.fake = fake
        self.fixed_group = group

    def check_xsrf_cookie(self) -> None:  # an API server, not a form
        pass

    def send_json(self, status: int, doc: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Audit-Id", str(uuid.uuid4()))
        self.finish(json.dumps(doc))

    def authorized(self) -> bool:
        self.fake.requests.append((self.request.method or "", self.request.uri or ""))
        if self.fake.token is None:
            return True
        if self.request.headers.get("Authorization", "") == f"Bearer {self.fake.token}":
            return True
        self.send_json(401, status_object(401, "Unauthorized", "Unauthorized"))
        return False


class _VersionHandler(_Base):
    async def get(self) -> None:
        if not self.authorized():
            return
        rule = self.fake._rule_for("get", "version", None, None)
        if rule and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule and rule.status:
            self.send_json(rule.status, rule.body or status_object(rule.status, "InternalError", f"injected {rule.status}"))
            return
        self.send_json(200, VERSION)


class _HealthHandler(_Base):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("ok")


class _ApiVersionsHandler(_Base):
    def get(self) -> None:
        if self.authorized():
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}]})


class _ApiGroupsHandler(_Base):
    def get(self) -> None:
        if not self.authorized():
            return
        groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
        self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups]})


class _AccessReviewHandler(_Base):
    """``kubectl auth can-i``'s SelfSubjectAccessReview: allowed, unless a 403 rule the test set
    (:meth:`FakeApiServer.forbid`) matches the verb and resource asked about (a rule on verb
    ``exec`` matches ``get`` and ``create`` on ``pods/exec``, as the exec handshake does); the
    answer is the review with ``status`` filled in, as the API server returns it (201)."""

    async def post(self) -> None:
        if not self.authorized():
            return
        rule = self.fake._rule_for("create", "selfsubjectaccessreviews", None, None)
        if rule is not None and rule.status:
            self.send_json(rule.status, rule.body or status_object(rule.status, "InternalError", f"injected {rule.status}"))
            return
        try:
            review = json.loads(self.request.body or b"{}")
            attrs = review["spec"]["resourceAttributes"]
        except (ValueError, KeyError, TypeError):
            self.send_json(400, status_object(400, "BadRequest", "a SelfSubjectAccessReview needs spec.resourceAttributes"))
            return
        verb, sub = str(attrs.get("verb") or ""), str(attrs.get("subresource") or "")
        resource = f"{attrs.get('resource')}/{sub}" if sub else str(attrs.get("resource"))
        ns, name = attrs.get("namespace") or None, attrs.get("name") or None
        verbs = {verb, "exec"} if resource == "pods/exec" and verb in ("get", "create") else {verb}
        denied = any(r.status == 403 and any(r.matches(v, resource, ns, name) for v in verbs) for r in list(self.fake.rules))
        review["status"] = {"allowed": False, "denied": True, "reason": "no RBAC rule allows it (kindfake)"} if denied \
            else {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" (kindfake)'}
        review.setdefault("metadata", {})["creationTimestamp"] = None
        self.send_json(201, review)


class _RestHandler(_Base):
    """/api/v1/... and /apis/GROUP/VERSION/...: [namespaces/NS/]PLURAL[/NAME[/SUB]]."""

    def _route(self, args: tuple[str, ...]) -> tuple[Res, str | None, str | None, str | None] | None:
        if self.fixed_group is not None:
            group, (version, rest) = self.fixed_group, args
        else:
            group, version, rest = args
        parts = [p for p in rest.split("/") if p]
        ns = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            ns, parts = parts[1], parts[2:]
        if not parts or len(parts) > 3:
            return None
        res = BY_PATH.get((group, version, parts[0]))
        if res is None or (ns is not None and not res.namespaced):
            return None
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        return res, ns, name, sub

    async def _handle(self, method: str, *args: str) -> None:
        if not self.authorized():
            return
        route = self._route(args)
        if route is None:
            self.send_json(404, status_object(404, "NotFound", "the server could not find the requested resource"))
            return
        res, ns, name, sub = route
        query = dict(parse_qsl(self.request.query))
        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch", "PUT": "update",
                "DELETE": "delete" if name else "deletecollection"}[method]
        if method == "GET" and query.get("watch") in ("true", "1"):
            verb = "watch"
        resource = f"{res.plural}/{sub}" if sub else res.plural
        rule = self.fake._rule_for(verb, resource, ns, name)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None:
            answer = self.fake._rule_answer(rule, verb, res, ns, name, sub)
            if answer is not None:
                self.send_json(*answer)
                return
        try:
            status, doc = self._serve(method, verb, res, ns, name, sub, query)
        except _Answer as a:
            status, doc = a.status, a.doc
        self.send_json(status, doc)

    def _body(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError:
            raise _Answer(400, status_object(400, "BadRequest", "the request body is not JSON")) from None

    def _serve(self, method: str, verb: str, res: Res, ns: str | None, name: str | None, sub: str | None,
               query: dict[str, str]) -> tuple[int, Any]:
        fake, store = self.fake, self.fake.store
        if verb == "watch":
            raise _Answer(405, status_object(405, "MethodNotAllowed", "kindfake does not serve watches"))
        if sub is not None and not (res.kind == "Deployment" and sub == "scale"):
            raise _Answer(404, status_object(404, "NotFound", "the server could not find the requested resource"))
        if verb == "list":
            items = store.list(res.kind, ns)
            if query.get("labelSelector"):
                items = [o for o in items if label_selector_matches(query["labelSelector"], (o["metadata"].get("labels") or {}))]
            start = int(base64.b64decode(query["continue"]).decode()) if query.get("continue") else 0
            limit = int(query.get("limit") or 0)
            page = items[start:start + limit] if limit else items[start:]
            meta: dict[str, Any] = {"resourceVersion": str(store.revision)}
            if limit and start + limit < len(items):
                meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
                meta["remainingItemCount"] = len(items) - start - limit
            for o in page:  # a list's items carry neither kind nor apiVersion
                o.pop("kind", None)
                o.pop("apiVersion", None)
            return 200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": page}
        key_ns = ns or ""
        if verb == "create":
            body = self._body()
            md = body.setdefault("metadata", {})
            new_name = md.get("name") or (md.get("generateName", "") + uuid.uuid4().hex[:5] if md.get("generateName") else "")
            if not new_name:
                raise _Answer(422, status_object(422, "Invalid", f"{res.kind} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                                                 {"kind": res.kind}))
            if body.get("kind") and body["kind"] != res.kind:
                raise _Answer(400, status_object(400, "BadRequest", f"the body's kind {body['kind']} does not match {res.plural}"))
            if res.namespaced and store.get("Namespace", "", key_ns) is None:
                raise _Answer(404, not_found(BY_KIND["Namespace"], key_ns))
            if store.get(res.kind, key_ns, new_name) is not None:
                raise _Answer(409, status_object(409, "AlreadyExists", f'{res.qualified} "{new_name}" already exists',
                                                 {"name": new_name, "group": res.group, "kind": res.plural}))
            md["name"] = new_name
            if res.namespaced:
                md["namespace"] = key_ns
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = _now()
            body["kind"], body["apiVersion"] = res.kind, res.api_version
            if res.kind in ("Deployment", "ReplicaSet", "DaemonSet", "EndpointSlice"):
                md["generation"] = 1
            _defaults_on_create(store, body)
            saved = store.put(body)
            fake._written("create", saved)
            return 201, saved
        current = store.get(res.kind, key_ns, name or "")
        if current is None:
            raise _Answer(404, not_found(res, name or ""))
        if verb == "get":
            if sub == "scale":
                return 200, _scale_of(current)
            return 200, fake._advance_rollout(current) if res.kind == "Deployment" else current
        if verb == "delete":
            store.delete(res.kind, key_ns, name or "")
            fake._written("delete", current)
            if res.kind == "Pod":  # graceful deletion: the object comes back with deletionTimestamp
                current["metadata"]["deletionTimestamp"] = _now()
                current["metadata"]["deletionGracePeriodSeconds"] = int(
                    (current.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                return 200, current
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": res.group, "kind": res.plural, "uid": current["metadata"].get("uid")}}
        if verb in ("patch", "update"):
            body = self._body()
            if not isinstance(body, dict):
                raise _Answer(415, status_object(415, "UnsupportedMediaType", "kindfake patches with merge and strategic merge patches only"))
            if sub == "scale":
                replicas = (body.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise _Answer(422, status_object(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value'))
                new = merge_patch(current, {"spec": {"replicas": replicas}})
            elif verb == "update":
                new = body
            else:
                new = merge_patch(current, body)
            new["kind"], new["apiVersion"] = res.kind, res.api_version
            new["metadata"] = {**(new.get("metadata") or {}), "name": name, "uid": current["metadata"].get("uid"),
                               "creationTimestamp": current["metadata"].get("creationTimestamp")}
            if res.namespaced:
                new["metadata"]["namespace"] = key_ns
            if res.kind == "Service":
                _keep_allocated(current, new)
                _health_check_node_port(store, new["spec"], keep=int((current.get("spec") or {}).get("healthCheckNodePort") or 0))
            if (new.get("spec") != current.get("spec")) and "generation" in current["metadata"]:
                new["metadata"]["generation"] = int(current["metadata"]["generation"]) + 1
            if new == current:  # a no-op patch writes nothing
                return 200, (_scale_of(current) if sub == "scale" else current)
            saved = store.put(new)
            fake._written(verb, saved)
            return 200, (_scale_of(saved) if sub == "scale" else saved)
        raise _Answer(405, status_object(405, "MethodNotAllowed", f"{verb} is not served by kindfake"))

    async def get(self, *args: str) -> None:
        await self._handle("GET", *args)

    async def post(self, *args: str) -> None:
        await self._handle("POST", *args)

    async def patch(self, *args: str) -> None:
        await self._handle("PATCH", *args)

    async def put(self, *args: str) -> None:
        await self._handle("PUT", *args)

    async def delete(self, *args: str) -> None:
        await self._handle("DELETE", *args)


class _Answer(Exception):
    def __init__(self, status: int, doc: dict):
        self.status, self.doc = status, doc


def _scale_of(dep: dict) -> dict:
    md = dep["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in md},
            "spec": {"replicas": int((dep.get("spec") or {}).get("replicas", 1))},
            "status": {"replicas": int((dep.get("status") or {}).get("replicas") or 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(((dep.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items()))}}


def _defaults_on_create(store: Store, obj: dict) -> None:
    """The little defaulting the tests rely on: a Service gets a ClusterIP (the next free address
    of the fixture's service range) and NodePorts, a Pod a Pending status, a Deployment an empty status."""
    kind = obj["kind"]
    spec = obj.setdefault("spec", {}) if kind in ("Service", "Pod", "Deployment") else None
    if kind == "Service" and spec is not None:
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if stype != "ExternalName" and spec.get("clusterIP") in (None, ""):
            used = {s["spec"].get("clusterIP") for s in store.list("Service")}
            ip = next(f"10.200.1.{i}" for i in range(2, 255) if f"10.200.1.{i}" not in used)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        used_np = {p.get("nodePort") for s in store.list("Service") for p in s["spec"].get("ports") or []}
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
            if stype in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                p["nodePort"] = next(n for n in range(30000, 32768) if n not in used_np)
                used_np.add(p["nodePort"])
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        _health_check_node_port(store, spec)
        obj["status"] = {"loadBalancer": {}}  # a manifest's status is dropped: no load balancer controller writes one
    elif kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif kind == "Deployment" and spec is not None:
        spec.setdefault("replicas", 1)
        obj["status"] = {}


def _health_check_node_port(store: Store, spec: dict, keep: int = 0) -> None:
    """The API server's healthCheckNodePort: allocated (the first free port of the range, as the
    fake's nodePorts) for ``type: LoadBalancer`` with ``externalTrafficPolicy: Local`` when none
    is set (``keep``: the one the Service already holds), released otherwise."""
    if spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
        if not spec.get("healthCheckNodePort"):
            used = {p.get("nodePort") for s in store.list("Service") for p in s["spec"].get("ports") or []}
            used |= {s["spec"].get("healthCheckNodePort") for s in store.list("Service")}
            used |= {p.get("nodePort") for p in spec.get("ports") or []}
            spec["healthCheckNodePort"] = keep or next(n for n in range(30000, 32768) if n not in used)
    else:
        spec.pop("healthCheckNodePort", None)


def _keep_allocated(current: dict, new: dict) -> None:
    """``patchAllocatedValues``: an update that leaves clusterIP or a nodePort empty keeps the
    allocated one (the healthCheckNodePort too, while the Service needs one). A write to the
    Service itself never changes its status (a subresource: only a load balancer controller's
    ``/status`` write does, and kind has none)."""
    new["status"] = copy.deepcopy(current.get("status") or {"loadBalancer": {}})
    cur, nxt = current.get("spec") or {}, new.setdefault("spec", {})
    for key in ("clusterIP", "clusterIPs"):
        if not nxt.get(key) and cur.get(key):
            nxt[key] = copy.deepcopy(cur[key])
    if nxt.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
        old = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in cur.get("ports") or []}
        for p in nxt.get("ports") or []:
            if not p.get("nodePort") and old.get((p.get("port"), p.get("protocol", "TCP"))):
                p["nodePort"] = old[(p.get("port"), p.get("protocol", "TCP"))]


class _ExecHandler(tornado.websocket.WebSocketHandler):
    """The exec websocket, as the API server (proxying the kubelet's stream) speaks it."""

    def initialize(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.answer: ExecAnswer | None = None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        offered = [p.strip() for p in subprotocols]
        for proto in EXEC_PROTOCOLS:  # the API server prefers the newest it shares with the client
            if proto in offered:
                return proto
        return None

    def check_origin(self, origin: str) -> bool:
        return True

    def _error(self, status: int, doc: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(doc))

    async def get(self, namespace: str, pod: str) -> None:  # type: ignore[override]
        fake = self.fake
        fake.requests.append(("GET", self.request.uri or ""))
        if fake.token is not None and self.request.headers.get("Authorization", "") != f"Bearer {fake.token}":
            self._error(401, status_object(401, "Unauthorized", "Unauthorized"))
            return
        pods = BY_KIND["Pod"]
        rule = fake._rule_for("exec", "pods/exec", namespace, pod) or fake._rule_for("create", "pods/exec", namespace, pod)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.status:
            answer = fake._rule_answer(rule, "create", pods, namespace, pod, "exec")
            if answer is not None:
                self._error(*answer)
                return
        obj = fake.store.get("Pod", namespace, pod)
        if obj is None:
            self._error(404, not_found(pods, pod))
            return
        query = parse_qsl(self.request.query)
        argv = tuple(v for k, v in query if k == "command")
        containers = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
        container = next((v for k, v in query if k == "container"), None) or (containers[0] if containers else "")
        if container not in containers:
            self._error(400, status_object(400, "BadRequest", f"container {container} is not valid for pod {pod}"))
            return
        if not argv:
            self._error(400, status_object(400, "BadRequest", "you must specify at least 1 command"))
            return
        if (obj.get("status") or {}).get("phase") != "Running":
            self._error(400, status_object(400, "BadRequest",
                                           f'unable to upgrade connection: container not found ("{container}")'))
            return
        req = ExecRequest(namespace, pod, container, argv)
        fake.exec_log.append(req)
        self.answer = fake.exec_handler(req)
        await super().get(namespace, pod)

    async def open(self, namespace: str, pod: str) -> None:  # type: ignore[override]
        ans = self.answer or ExecAnswer()
        if ans.delay:
            await asyncio.sleep(ans.delay)
        try:
            if ans.stdout:
                await self.write_message(b"\x01" + ans.stdout.encode(), binary=True)
            if ans.stderr:
                await self.write_message(b"\x02" + ans.stderr.encode(), binary=True)
            if ans.exit_code == 0:
                status: dict[str, Any] = {"metadata": {}, "status": "Success"}
            else:
                argv = " ".join(self.fake.exec_log[-1].argv) if self.fake.exec_log else ""
                status = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: error executing command [{argv}], exit code {ans.exit_code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(ans.exit_code)}]}}
            await self.write_message(b"\x03" + json.dumps(status).encode(), binary=True)
        except tornado.websocket.WebSocketClosedError:
            return
        self.close()

    def on_message(self, message: str | bytes) -> None:  # stdin is not used (stdin=false)
        pass


def free_port() -> int:
    """A port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


# ---- pods that run to completion, and their logs (kslab verify --allow-debug-pod) -----------------


class _PodLogHandler(_Base):
    """``GET /api/v1/namespaces/NS/pods/NAME/log``: what :func:`pod_runner` recorded for the pod
    (text/plain, as the API server streams the kubelet's container log); 404 for a pod not there,
    400 for one that has not started (as the API server says ``container ... is waiting to start``)."""

    def get(self, ns: str, name: str) -> None:
        if not self.authorized():
            return
        pod = self.fake.store.get("Pod", ns, name)
        if pod is None:
            self.send_json(404, not_found(BY_KIND["Pod"], name))
            return
        logs = getattr(self.fake, "pod_logs", {})
        if (ns, name) not in logs:
            self.send_json(400, status_object(400, "BadRequest", f'container "kslab" in pod "{name}" is waiting to start: '
                                                                  "ContainerCreating"))
            return
        self.set_status(200)
        self.set_header("Content-Type", "text/plain")
        self.finish(logs[(ns, name)])


def pod_runner(run: Callable[[dict], tuple[str, int] | None]) -> WriteHook:
    """A write hook (``fake.on_write.append(pod_runner(run))``) playing the kubelet for pods created
    with a command: ``run(pod)`` returns (its output, its exit code), and the pod is then
    ``Succeeded`` (exit 0) or ``Failed`` with that output as its log; None leaves it Pending (an
    image that cannot be pulled). The pods' specs are kept in ``fake.pods_run``."""

    def hook(fake: "FakeApiServer", verb: str, obj: dict) -> None:
        if verb != "create" or obj.get("kind") != "Pod":
            return
        fake.__dict__.setdefault("pods_run", []).append(json.loads(json.dumps(obj)))
        answer = run(obj)
        md = obj["metadata"]
        pod = fake.store.get("Pod", md["namespace"], md["name"])
        if pod is None:
            return
        if answer is None:
            pod["status"] = {"phase": "Pending", "containerStatuses": [
                {"name": "kslab", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        else:
            out, code = answer
            fake.__dict__.setdefault("pod_logs", {})[(md["namespace"], md["name"])] = out
            pod["status"] = {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
                {"name": "kslab", "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}]}
        fake.store.put(pod)

    return hook


_application_without_pod_logs = _application


def _application(fake: FakeApiServer) -> tornado.web.Application:  # noqa: F811 - the pods' log route added
    app = _application_without_pod_logs(fake)
    app.add_handlers(r".*", [(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", _PodLogHandler, {"fake": fake})])
    return app
