"""Bad input through the CLI: one line on stderr that names the field and the fix, exit 2,
never a traceback. ``kslab.cli.main`` runs in-process (capsys); two tests run the installed
``kslab`` console script in a subprocess, as a learner would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from kslab import cli

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


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def kslab(capsys):
    """``kslab ARGS...`` in this process: its exit status, stdout and stderr."""

    def call(*args: str) -> Result:
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse's usage errors and --help
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture
def run(tmp_path, kslab):
    """``kslab render -f in.yaml ...`` with ``text`` as in.yaml (``--node myk8s-worker`` unless given)."""

    def render(text: str, *args: str) -> Result:
        f = tmp_path / "in.yaml"
        f.write_text(text)
        extra = [] if "--node" in args else ["--node", "myk8s-worker"]
        return kslab("render", "-f", str(f), *args, *extra)

    return render


def console_script() -> list[str]:
    """The installed ``kslab`` command beside this interpreter (``python -m kslab.cli`` if there is none)."""
    script = Path(sys.executable).with_name("kslab")
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "kslab.cli"]


def assert_one_line_error(r: Result, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert r.stdout == ""  # nothing half-rendered
    return lines[0]


def test_good_input_renders(run):
    r = run(CLUSTER + "---\n" + POD + "---\n" + service())
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert '"default/web:http cluster IP"' in r.stdout


def test_malformed_yaml(run):
    msg = assert_one_line_error(run(CLUSTER + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web\nspec: []\n"), "invalid YAML", "line")
    assert "in.yaml" in msg


def test_unknown_kind(run):
    assert_one_line_error(run(CLUSTER + "---\napiVersion: v1\nkind: Serivce\nmetadata: {name: x}\n"), "Serivce", "use one of")


@pytest.mark.parametrize("port", [29999, 40000])
def test_node_port_out_of_default_range(run, port):
    msg = assert_one_line_error(
        run(CLUSTER + "---\n" + POD + "---\n" + service(f", nodePort: {port}", type="NodePort")),
        "spec.ports[0].nodePort", str(port), "30000-32767",
    )
    # the API server's own words (portallocator ErrNotInRange in a 422), as kubectl prints them
    assert msg.endswith(f'is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is not in the valid range. '
                        "The range of valid ports is 30000-32767")


def test_node_port_range_flag_admits_it(run):
    r = run(CLUSTER + "---\n" + POD + "---\n" + service(", nodePort: 40000", type="NodePort"),
            "--service-node-port-range", "30000-40000")
    assert r.returncode == 0, r.stderr
    assert "--dport 40000" in r.stdout


def test_load_balancer_source_ranges_in_the_api_servers_words(run):
    msg = assert_one_line_error(run(CLUSTER + "---\n" + POD + "---\n" + service(type="LoadBalancer", loadBalancerSourceRanges="[not-a-cidr]")))
    assert msg.endswith('The Service "web" is invalid: spec.LoadBalancerSourceRanges[0]: Invalid value: "not-a-cidr": '
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
    msg = assert_one_line_error(run(CLUSTER + "---\n" + POD + "---\n" + service(type="NodePort", loadBalancerSourceRanges="[10.0.0.0/8]")))
    assert msg.endswith("The Service \"web\" is invalid: spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'")
    assert_one_line_error(run(CLUSTER + "---\n" + POD + "---\n" + service(type="LoadBalancer", loadBalancerSourceRanges="10.0.0.0/8")),
                          "spec.loadBalancerSourceRanges", "array")  # a string: the schema names the field


def test_reversed_node_port_range_flag(run):
    assert_one_line_error(run(CLUSTER + "---\n" + service(), "--service-node-port-range", "32767-30000"),
                          "--service-node-port-range", "end port cannot be less than start port: 32767-30000")


def test_duplicate_port_names(run):
    text = CLUSTER + "---\n" + service().rstrip("\n") + "\n  - {name: http, port: 81, targetPort: 8081}\n"
    assert_one_line_error(run(text), "spec.ports[1].name", "duplicate", "http")


def test_selector_matching_nothing_warns_and_rejects(run):
    r = run(CLUSTER + "---\n" + service())
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kslab: warning:") and "matches no pod" in lines[0]
    assert '"default/web:http has no endpoints"' in r.stdout and "-j REJECT" in r.stdout


def test_cluster_ip_outside_service_cidr(run):
    assert_one_line_error(run(CLUSTER + "---\n" + service(clusterIP="10.96.0.50")), "spec.clusterIP", "10.200.1.0/24")


def test_unknown_node(run):
    assert_one_line_error(run(CLUSTER + "---\n" + service(), "--node", "worker9"), "worker9", "myk8s-worker2")


def test_schema_violation_names_the_field(run):
    assert_one_line_error(run(CLUSTER + "---\n" + service(sessionAfinity="ClientIP")), "sessionAfinity")


def test_missing_file_and_bad_flag(kslab, tmp_path):
    assert_one_line_error(kslab("render", "-f", str(tmp_path / "nope.yaml"), "--node", "x"), "nope.yaml", "no such file")
    r = kslab("render", "-f", "x")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--node" in r.stderr


def test_internal_error_is_one_line_unless_debugging(kslab, monkeypatch):
    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "cmd_doctor", broken)
    monkeypatch.delenv("KSLAB_DEBUG", raising=False)
    r = kslab("doctor")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "kslab: internal error: KeyError: 'boom' (set KSLAB_DEBUG=1 for the traceback, and please report it)"]
    monkeypatch.setenv("KSLAB_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["doctor"])


# ---- the console script itself, in a subprocess ----------------------------------------------------


def test_console_script_renders_the_study_lab():
    r = subprocess.run([*console_script(), "render", "-f", str(Path(__file__).resolve().parents[1] / "data" / "myk8s"),
                        "--node", "myk8s-worker"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("*filter\n") and "KUBE-SVC-KBDEBIL6IU6WL7RF" in r.stdout


def test_console_script_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "in.yaml"
    bad.write_text(CLUSTER + "---\napiVersion: v1\nkind: Serivce\nmetadata: {name: x}\n")
    r = subprocess.run([*console_script(), "render", "-f", str(bad), "--node", "myk8s-worker"],
                       capture_output=True, text=True, timeout=120)
    assert_one_line_error(Result(r.returncode, r.stdout, r.stderr), "Serivce", "use one of")


def test_as_is_skips_admission(run):
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
    r = run(text, "--as-is", "--node", "test-node")
    assert r.returncode == 0, r.stderr
    assert "-d 172.30.0.41 --dport 80" in r.stdout and "--dport 3001" in r.stdout
    assert "--to-destination 10.180.0.1:80" in r.stdout
    # without --as-is the API server refuses the nodePort (and there is no cluster)
    r = run(text, "--node", "test-node")
    assert r.returncode == 2 and "Traceback" not in r.stderr


# ---- --context / --context-any with --backend kind (sh, simulate, trace) --------------------------------------


LIVE_COMMANDS = [["sh", "net-pod", "--", "hostname"], ["simulate", "--from", "net-pod", "--to", "svc-clusterip", "-n", "2"],
                 ["trace", "--from", "net-pod", "--to", "svc-clusterip"],
                 ["iperf3", "app=iperf3-client,pair=cross-node", "iperf3-server", "-t", "5"]]


@pytest.mark.parametrize("command", LIVE_COMMANDS, ids=lambda c: c[0])
def test_kind_commands_take_a_context(kslab, command, tmp_path, monkeypatch):
    """--context names the kubeconfig context (missing here: one line naming it); --context-any is
    what lets a context not named kind-* through; either without --backend kind is refused."""
    from kindfake.server import FakeApiServer

    kc = FakeApiServer().write_kubeconfig(tmp_path / "kubeconfig", extra_contexts={"prod": ""})
    monkeypatch.setenv("KUBECONFIG", str(kc))
    head, rest = command[:1], command[1:]
    r = kslab(*head, "--backend", "kind", "--context", "kind-nope", *rest)
    assert r.returncode == 1 and r.stderr.startswith("kslab: error: context 'kind-nope' is not in kubeconfig") and r.stderr.count("\n") == 1
    r = kslab(*head, "--backend", "kind", "--context", "prod", *rest)
    assert r.returncode == 1 and "context 'prod' is not a kind cluster (kind-*)" in r.stderr and "(--context-any)" in r.stderr
    r = kslab(*head, "--context", "kind-myk8s", *rest)
    assert r.returncode == 2 and r.stderr.startswith("kslab: error: --context: only applies to --backend kind")
    r = kslab(*head, "--context-any", *rest)
    assert r.returncode == 2 and r.stderr.startswith("kslab: error: --context-any: only applies to --backend kind")


# ---- kslab iperf3 (chapter 10) ------------------------------------------------------------------------------------

CROSS = "app=iperf3-client,pair=cross-node"


@pytest.mark.parametrize("args, needles", [
    (["nobody", "iperf3-server", "-t", "5"], ["client: 'nobody' is not a pod, node or mypc", "iperf3-client-"]),
    ([CROSS, "iperf3-sever", "-t", "5"], ["to: 'iperf3-sever' is not a pod, a Service or NODE:NODEPORT", "Services: "]),
    ([CROSS, "iperf3-server", "-t", "5", "-x"], ["iperf3: unknown flag -x", "--bidir"]),
    ([CROSS, "iperf3-server", "-P", "200"], ["-P: 200 parallel streams is out of range", "1..128"]),
    ([CROSS, "iperf3-server", "-p", "0"], ["-p: port 0 is out of range"]),
    ([CROSS, "iperf3-server", "-R", "--bidir"], ["-R and --bidir together"]),
    ([CROSS, "iperf3-server", "-c", "x"], ["iperf3 options: -c x is not a flag of a test"]),
    ([CROSS, "iperf3-server", "-t", "7"], ["no recording of `-t 7` on the clusterip path", "recorded: ", "KSLAB_BACKEND=netns"]),
    ([CROSS, "svc-clusterip"], ["has 3 endpoints"]),
], ids=["unknown-pod", "unknown-target", "bad-flag", "P-200", "port-0", "R-and-bidir", "host-in-flags", "no-recording",
        "several-endpoints"])
def test_iperf3_bad_input_is_one_line(kslab, args, needles):
    assert_one_line_error(kslab("iperf3", *args), *needles)


def test_iperf3_missing_is_one_line_before_any_lab(kslab, monkeypatch):
    from kslab.netns import iperf as netns_iperf

    monkeypatch.setattr(netns_iperf.shutil, "which", lambda name: None)
    monkeypatch.setattr("kslab.lab.Lab.__init__", lambda *a, **k: pytest.fail("no lab may be built"))
    line = assert_one_line_error(kslab("iperf3", "--backend", "netns", CROSS, "iperf3-server", "-t", "5"))
    assert line == "kslab: error: iperf3 is not installed: apt-get install iperf3; `kslab doctor` lists what this machine can run"


def test_iperf3_busy_server_is_one_line(kslab, monkeypatch):
    busy = (Path(__file__).parent / "data" / "iperf3" / "busy.json").read_text()
    monkeypatch.setattr("kslab.dataplane.sim.SimDataplane.iperf3", lambda self, *a, **k: busy)
    assert_one_line_error(kslab("iperf3", CROSS, "iperf3-server", "-t", "5"), "the server is busy running a test")


def test_iperf3_good_input_prints_the_sums_and_hops(kslab):
    import json

    r = kslab("iperf3", CROSS, "iperf3-server", "-t", "5", "-u", "-R")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("iperf3 -c iperf3-server -t 5 -u -R   (iperf3-client-") and lines[0].endswith(", clusterip)")
    assert lines[1].startswith("  path: veth -> DNAT (") and lines[2].startswith("  RECORDED on ")
    assert "server->client  receiver" in r.stdout
    r = kslab("iperf3", "mypc", "myk8s-worker2:iperf3-server-nodeport", "--bidir", "-t", "5", "--json")
    doc = json.loads(r.stdout)
    assert doc["path"]["kind"] == "nodeport" and doc["path"]["port"] == 30002 and doc["flags"] == "-p 30002 -t 5 --bidir" and doc["command"] == "iperf3 -c 172.18.0.4 -p 30002 -t 5 --bidir"
    assert {s["direction"] for s in doc["sums"]} == {"client->server", "server->client"}


def test_sh_iperf3_takes_the_iperf3_add_on_by_default(kslab):
    from kslab.lab import Lab
    from kslab.resources import study_lab

    lab = Lab([study_lab(), study_lab() / "iperf3"])
    (client,) = lab.pods("pair=cross-node")
    r = kslab("sh", client, "--", "iperf3 -c iperf3-server -t 5 | head -n 2")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("# RECORDED on ") and second.startswith("Connecting to host ")
    assert_one_line_error(kslab("sh", client, "--", "iperf3 -s"), "the lab starts the server itself")


# ---- IP family mistakes (issue 16; decisions D2 and D3) ------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    # D2: an explicit flag with no value of the rendered family
    (["--family", "ipv6", "--node-ip", "172.18.0.3"],
     ["--family ipv6", "every --node-ip is IPv4 (172.18.0.3)", "render --family ipv4"]),
    (["--node-ip", "fd00::3", "--cluster-cidr", "10.10.0.0/16"],  # the "IPv6 node IP with an IPv4 cluster CIDR"
     ["--cluster-cidr 10.10.0.0/16", "holds no IPv6 CIDR", "IPv6 node IP with an IPv4 cluster CIDR", "--family ipv4"]),
    (["--family", "ipv4", "--cluster-cidr", "fd00:10:244::/56"], ["--cluster-cidr fd00:10:244::/56", "holds no IPv4 CIDR"]),
    # kube-proxy's validateDualStackCIDRStrings
    (["--cluster-cidr", "10.10.0.0/16,10.20.0.0/16"], ["--cluster-cidr 10.10.0.0/16,10.20.0.0/16", "dual-stack pair"]),
    (["--cluster-cidr", "10.10.0.0/16,fd00::/56,fd01::/56"], ["single CIDR or a dual-stack pair"]),
    (["--cluster-cidr", "10.10.0.0/16,fd00::/999"], ["--cluster-cidr", "'fd00::/999' is not a CIDR"]),
    # validateKubeProxyNodePortAddress
    (["--nodeport-addresses", "172.18.0.0/16,primary"], ["--nodeport-addresses 172.18.0.0/16,primary", "can't use both 'primary' and CIDRs"]),
    (["--nodeport-addresses", "primary,fd00::/8"], ["can't use both 'primary' and CIDRs"]),
    (["--nodeport-addresses", "fd00::/8,eth0"], ["--nodeport-addresses eth0", "is neither a CIDR nor 'primary'"]),
    (["--family", "ipv7"], ["--family", "invalid choice"]),
])
def test_family_mistakes_are_one_line(run, args, needles):
    r = run(CLUSTER + "---\n" + POD + "---\n" + service(), *args)
    if args[:2] == ["--family", "ipv7"]:  # argparse's own usage error: one line, exit 2
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and all(n in r.stderr for n in needles)
        return
    assert_one_line_error(r, *needles)


@pytest.mark.parametrize("npa", ["172.18.0.0/16,fd00::/8", "fd00::/8,172.18.0.0/16,10.0.0.0/8", "172.18.0.3/24", "primary"])
def test_mixed_family_nodeport_addresses_are_valid(run, npa):
    """D3: upstream's TestNodePorts/TestOnlyLocalNodePorts pass mixed-family nodePortAddresses
    (and ParseCIDRSloppy takes host bits): valid, each family's proxier keeps its own CIDRs."""
    r = run(CLUSTER + "---\n" + POD + "---\n" + service(type="NodePort"), "--nodeport-addresses", npa, "--format", "save")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
