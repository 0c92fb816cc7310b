"""The fake API server itself (tests/kindfake): what the kind tests rely on beyond the client's view.

Its command line (a subprocess for notebook tests), the exec websocket's protocol negotiation and
frames as websocket-client sees them raw, authentication of the exec handshake, the write hooks,
and the Status bodies of its errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websocket

from kindfake import TOKEN, FakeApiServer, forbidden, load_objects, not_found, server_for
from kindfake.server import BY_KIND
from kslab.kind.client import KindClient

ROOT = Path(__file__).resolve().parents[1]


def test_command_line_serves_until_terminated(tmp_path):
    kc = tmp_path / "kc" / "config"
    proc = subprocess.Popen([sys.executable, "-m", "tests.kindfake", "--kubeconfig", str(kc), "--forbid", "list:pods"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("kindfake serving http://127.0.0.1:") and f"kubeconfig {kc} context kind-myk8s" in line
        c = KindClient.connect(kubeconfig=str(kc), timeout=5)
        assert len(c.list_kind("Node")) == 4
        with pytest.raises(Exception, match="cannot list pods in all namespaces"):
            c.list_kind("Pod")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.stderr.read()


@pytest.fixture
def fake():
    with server_for() as server:
        yield server


def _exec_url(fake: FakeApiServer, pod: str = "net-pod", *argv: str) -> str:
    query = "&".join(f"command={a}" for a in argv or ("hostname",))
    return f"ws://127.0.0.1:{fake.port}/api/v1/namespaces/default/pods/{pod}/exec?{query}&stdout=true&stderr=true"


def _frames(ws: websocket.WebSocket) -> list[bytes]:
    out = []
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            return out
        out.append(data)


@pytest.mark.parametrize("offered, chosen", [
    ("v5.channel.k8s.io,v4.channel.k8s.io", "v5.channel.k8s.io"),
    ("v4.channel.k8s.io", "v4.channel.k8s.io"),
    ("v4.channel.k8s.io,v5.channel.k8s.io", "v5.channel.k8s.io"),  # the server prefers the newest
])
def test_exec_websocket_frames_and_subprotocol(fake, offered, chosen):
    ws = websocket.create_connection(_exec_url(fake), timeout=5, header=[
        f"Authorization: Bearer {TOKEN}", f"Sec-WebSocket-Protocol: {offered}"])
    assert ws.getheaders()["sec-websocket-protocol"] == chosen  # where the kubernetes client reads it
    frames = _frames(ws)
    assert frames == [b"\x01net-pod\n", b'\x03{"metadata": {}, "status": "Success"}']


def test_exec_handshake_needs_the_token_and_a_known_pod(fake):
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(_exec_url(fake), timeout=5, header=["Sec-WebSocket-Protocol: v4.channel.k8s.io"])
    assert e.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(_exec_url(fake, "nope"), timeout=5, header=[
            f"Authorization: Bearer {TOKEN}", "Sec-WebSocket-Protocol: v4.channel.k8s.io"])
    assert e.value.status_code == 404 and json.loads(e.value.resp_body)["message"] == 'pods "nope" not found'


def test_unrecorded_command_exits_127_saying_so(fake):
    c = KindClient.connect(kubeconfig=str(fake.write_kubeconfig(Path(fake.ca_file or "/tmp").parent / f"kc-{fake.port}")), timeout=5)
    r = c.exec("net-pod", "default", ["ls", "/"], timeout=5)
    assert r.exit_code == 127 and "kindfake: no recorded output for 'ls /' in pod default/net-pod" in r.stderr


def test_write_hooks_and_generation(fake, tmp_path):
    seen = []
    fake.on_write.append(lambda server, verb, obj: seen.append((verb, obj["kind"], obj["metadata"]["name"])))
    c = KindClient.connect(kubeconfig=str(fake.write_kubeconfig(tmp_path / "kc")), timeout=5)
    c.scale("deploy-echo", "default", 2)
    c.delete_pod("webpod2", "default")
    assert seen == [("patch", "Deployment", "deploy-echo"), ("delete", "Pod", "webpod2")]
    rv = int(fake.objects("Deployment")[0]["metadata"]["resourceVersion"])
    c.scale("deploy-echo", "default", 2)  # no change: nothing written
    assert len(seen) == 2
    assert max(int(o["metadata"]["resourceVersion"]) for o in fake.objects()) >= rv


def test_status_bodies_as_the_api_server_writes_them():
    assert forbidden("list", BY_KIND["EndpointSlice"], None, None)["message"] == (
        'endpointslices.discovery.k8s.io is forbidden: User "kubernetes-admin" cannot list resource "endpointslices" '
        'in API group "discovery.k8s.io" at the cluster scope')
    assert forbidden("delete", BY_KIND["Pod"], "default", "webpod1")["message"] == (
        'pods "webpod1" is forbidden: User "kubernetes-admin" cannot delete resource "pods" in API group "" '
        'in the namespace "default"')
    nf = not_found(BY_KIND["Deployment"], "nope")
    assert (nf["code"], nf["reason"], nf["message"], nf["details"]) == (
        404, "NotFound", 'deployments.apps "nope" not found', {"name": "nope", "kind": "deployments", "group": "apps"})


def test_fixture_lists_are_served_byte_for_byte_as_recorded(fake):
    """GET of a list answers the recorded list (items without kind/apiVersion), same order."""
    import urllib.request

    req = urllib.request.Request(f"{fake.url}/api/v1/nodes", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        served = json.loads(resp.read())
    recorded = json.loads((ROOT / "tests" / "data" / "kind" / "myk8s" / "nodes.json").read_text())
    assert served["items"] == recorded["items"] and served["kind"] == "NodeList"
    assert all("kind" not in i for i in served["items"])
    assert len(load_objects()) == sum(len(json.loads(p.read_text())["items"])
                                      for p in (ROOT / "tests" / "data" / "kind" / "myk8s").glob("*.json") if p.name != "exec.json")


def test_stop_closes_the_port(fake, tmp_path):
    c = KindClient.connect(kubeconfig=str(fake.write_kubeconfig(tmp_path / "kc")), timeout=2)
    fake.stop()
    t = time.monotonic()
    with pytest.raises(Exception, match="refused the connection"):
        c.list_kind("Node")
    assert time.monotonic() - t < 5


def test_sim_exec_handler_answers_as_the_sim(fake, tmp_path):
    import kslab

    from kindfake import sim_exec_handler

    fake.exec_handler = sim_exec_handler(kslab.Lab())
    c = KindClient.connect(kubeconfig=str(fake.write_kubeconfig(tmp_path / "kc")), timeout=5)
    hosts = set()
    for _ in range(12):
        r = c.exec("net-pod", "default", ["curl", "-s", "svc-clusterip:9000"], timeout=10)
        assert r.exit_code == 0 and "RemoteAddr: 10.10.0.2:" in r.stdout
        hosts.add(r.stdout.splitlines()[0])
    assert hosts == {"Hostname: webpod1", "Hostname: webpod2", "Hostname: webpod3"}
    r = c.exec("net-pod", "default", ["curl", "-s", "-m", "1", "10.200.1.99:9000"], timeout=10)
    assert (r.stdout, r.exit_code) == ("", 28)


def test_node_dumps_are_what_record_nodes_writes(tmp_path):
    """The committed node dumps (tests/data/kind-nodes) are record_nodes.py's output for the
    committed fixture: after make_fixtures changes the fixture, the dumps follow (run both)."""
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        rn = importlib.import_module("tests.kindfake.record_nodes")
    finally:
        sys.path.remove(str(ROOT))
    rn.main(out=tmp_path)
    committed = sorted((ROOT / "tests" / "data" / "kind-nodes").glob("*.iptables-save"))
    assert [f.name for f in committed] == sorted(f.name for f in tmp_path.iterdir())
    for f in committed:
        assert (tmp_path / f.name).read_text() == f.read_text(), \
            f"{f.name} is stale: run PYTHONPATH=. python tests/kindfake/record_nodes.py"
