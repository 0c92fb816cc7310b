"""Bad input through the real CLI: one line on stderr that names the field and the fix, exit 2,
never a traceback. Runs ``python -m kslab.cli`` in a subprocess, as a learner would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLUSTER = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: myk8s
networking: {podSubnet: 10.10.0.0/16, serviceSubnet: 10.200.1.0/24}
nodes: [{role: control-plane}, {role: worker}, {role: worker}]
"""


def service(extra_ports: str = "", **spec) -> str:
    lines = ["apiVersion: v1", "kind: Service", "metadata: {name: web}", "spec:", "  selector: {app: web}"]
    for k, v in spec.items():
        lines.append(f"  {k}: {v}")
    lines.append("  ports:")
    lines.append("  - {name: http, port: 80, targetPort: 8080" + extra_ports + "}")
    return "\n".join(lines) + "\n"


POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web1, labels: {app: web}}
spec:
  nodeName: myk8s-worker
  containers: [{name: web, image: traefik/whoami, ports: [{containerPort: 8080}]}]
"""


def run(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess:
    f = tmp_path / "in.yaml"
    f.write_text(text)
    cmd = [sys.executable, "-m", "kslab.cli", "render", "-f", str(f), *args]
    if "--node" not in args:
        cmd += ["--node", "myk8s-worker"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert r.stdout == ""  # nothing half-rendered
    return lines[0]


def test_good_input_renders(tmp_path):
    r = run(tmp_path, CLUSTER + "---\n" + POD + "---\n" + service())
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert '"default/web:http cluster IP"' in r.stdout


def test_malformed_yaml(tmp_path):
    msg = assert_one_line_error(run(tmp_path, CLUSTER + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web\nspec: []\n"), "invalid YAML", "line")
    assert "in.yaml" in msg


def test_unknown_kind(tmp_path):
    assert_one_line_error(run(tmp_path, CLUSTER + "---\napiVersion: v1\nkind: Serivce\nmetadata: {name: x}\n"), "Serivce", "use one of")


@pytest.mark.parametrize("port", [29999, 40000])
def test_node_port_out_of_default_range(tmp_path, port):
    msg = assert_one_line_error(
        run(tmp_path, CLUSTER + "---\n" + POD + "---\n" + service(f", nodePort: {port}", type="NodePort")),
        "spec.ports[0].nodePort", str(port), "30000-32767",
    )
    assert "--service-node-port-range" in msg


def test_node_port_range_flag_admits_it(tmp_path):
    r = run(tmp_path, CLUSTER + "---\n" + POD + "---\n" + service(", nodePort: 40000", type="NodePort"),
            "--service-node-port-range", "30000-40000")
    assert r.returncode == 0, r.stderr
    assert "--dport 40000" in r.stdout


def test_duplicate_port_names(tmp_path):
    text = CLUSTER + "---\n" + service().rstrip("\n") + "\n  - {name: http, port: 81, targetPort: 8081}\n"
    assert_one_line_error(run(tmp_path, text), "spec.ports[1].name", "duplicate", "http")


def test_selector_matching_nothing_warns_and_rejects(tmp_path):
    r = run(tmp_path, CLUSTER + "---\n" + service())
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kslab: warning:") and "matches no pod" in lines[0]
    assert '"default/web:http has no endpoints"' in r.stdout and "-j REJECT" in r.stdout


def test_cluster_ip_outside_service_cidr(tmp_path):
    assert_one_line_error(run(tmp_path, CLUSTER + "---\n" + service(clusterIP="10.96.0.50")), "spec.clusterIP", "10.200.1.0/24")


def test_unknown_node(tmp_path):
    assert_one_line_error(run(tmp_path, CLUSTER + "---\n" + service(), "--node", "worker9"), "worker9", "myk8s-worker2")


def test_schema_violation_names_the_field(tmp_path):
    assert_one_line_error(run(tmp_path, CLUSTER + "---\n" + service(sessionAfinity="ClientIP")), "sessionAfinity")


def test_missing_file_and_bad_flag(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "render", "-f", str(tmp_path / "nope.yaml"), "--node", "x"],
                       capture_output=True, text=True)
    assert_one_line_error(r, "nope.yaml", "no such file")
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "render", "-f", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--node" in r.stderr


def test_as_is_skips_admission(tmp_path):
    """With --as-is the objects reach the renderer as kube-proxy would receive them."""
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: legacy, namespace: ns1}
        spec:
          clusterIP: 172.30.000.041
          type: NodePort
          ports: [{name: p80, port: 80, nodePort: 3001}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: legacy-1, namespace: ns1, labels: {kubernetes.io/service-name: legacy}}
        addressType: IPv4
        endpoints: [{addresses: [10.180.00.001]}]
        ports: [{name: p80, port: 80, protocol: TCP}]
        """)
    r = run(tmp_path, text, "--as-is", "--node", "test-node")
    assert r.returncode == 0, r.stderr
    assert "-d 172.30.0.41 --dport 80" in r.stdout and "--dport 3001" in r.stdout
    assert "--to-destination 10.180.0.1:80" in r.stdout
    # without --as-is the API server refuses the nodePort (and there is no cluster)
    r = run(tmp_path, text, "--node", "test-node")
    assert r.returncode == 2 and "Traceback" not in r.stderr
