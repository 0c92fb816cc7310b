"""The recorded clusters under ``tests/data/kind/<name>/`` and a fake API server serving one.

Each fixture directory holds the list responses the API server gave (``nodes.json`` is the
``NodeList`` of ``GET /api/v1/nodes``, items without ``kind``/``apiVersion``, as served), plus
``exec.json``: the recorded outputs of commands run in pods (:class:`~.server.ExecRecordings`).
``make_fixtures.py`` beside this file writes them from kslab's own control-plane emulation.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .server import BY_KIND, ExecAnswer, ExecRequest, FakeApiServer

DATA = Path(__file__).resolve().parents[1] / "data" / "kind"
FIXTURES = ("myk8s", "myk8s-echo0")
LIST_FILES = {  # file -> kind of its items
    "namespaces.json": "Namespace",
    "nodes.json": "Node",
    "pods.json": "Pod",
    "services.json": "Service",
    "endpointslices.json": "EndpointSlice",
    "endpoints.json": "Endpoints",
    "deployments.json": "Deployment",
    "replicasets.json": "ReplicaSet",
    "daemonsets.json": "DaemonSet",
    "configmaps.json": "ConfigMap",
}


def fixture_dir(name: str = "myk8s") -> Path:
    d = DATA / name
    if not d.is_dir():
        raise FileNotFoundError(f"no kind fixture {name!r} under {DATA} (have: {', '.join(FIXTURES)})")
    return d


def load_objects(name: str = "myk8s") -> list[dict[str, Any]]:
    """Every object of the fixture, each with ``kind`` and ``apiVersion`` set again."""
    d = fixture_dir(name)
    out: list[dict[str, Any]] = []
    for fname, kind in LIST_FILES.items():
        path = d / fname
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        res = BY_KIND[kind]
        for item in doc.get("items") or []:
            out.append({"apiVersion": res.api_version, "kind": kind, **item})
    return out


def load_exec(name: str = "myk8s") -> list[dict[str, Any]]:
    path = fixture_dir(name) / "exec.json"
    return json.loads(path.read_text()) if path.exists() else []


def server_for(name: str = "myk8s", **kw: Any) -> FakeApiServer:
    """A fake API server (not started) serving fixture ``name`` and its exec recordings."""
    return FakeApiServer(load_objects(name), exec_records=load_exec(name), **kw)


def sim_exec_handler(lab: Any) -> Any:
    """An exec handler answering each command with kslab's sim (``lab.sh(pod, command)``), for
    commands the sim's shell knows (curl, hostname, ip, iptables ...): the fake then answers as
    the simulated cluster would, for any argument."""

    def handler(req: ExecRequest) -> ExecAnswer:
        out = lab.sh(req.pod if req.namespace == "default" else f"{req.namespace}/{req.pod}", shlex.join(req.argv))
        return ExecAnswer(str(out), out.stderr, out.returncode)

    return handler
