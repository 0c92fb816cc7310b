"""``kslab trace --nft``: one connection through a node's nftables ruleset (kube-proxy's
nftables mode), from kslab's own raw text, upstream's test layout or ``nft list`` output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kslab.cli import main
from kslab.controlplane import load_cluster
from kslab.proxy.config import ProxyConfig
from kslab.proxy.iptables import render as render_iptables
from kslab.proxy.nftables import render

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
NODE_IP = "192.168.0.2"

# the upstream case: pod to a ClusterIP, outside to a NodePort (masquerade), the node itself to an
# eTP=Local external IP (fib saddr type local), a LoadBalancerSourceRanges drop, a wrong port
# (reject), an unallocated ClusterIP (drop), a Service without endpoints (reject), an affinity Service
CASES = [
    ("10.0.0.2", "172.30.0.41:80", "forwarded", "10.180.0.1:80", False),
    ("203.0.113.2", "192.168.0.2:3003", "forwarded", "10.180.0.3:80", True),
    (NODE_IP, "192.168.99.22:80", "forwarded", "10.180.0.2:80", True),
    ("203.0.113.130", "5.6.7.8:80", "dropped", None, False),
    ("10.0.0.2", "172.30.0.41:443", "rejected", None, False),
    ("10.0.0.2", "172.30.0.50:80", "dropped", None, False),
    ("10.0.0.2", "172.30.0.46:80", "rejected", None, False),
    ("10.0.0.2", "172.30.0.45:80", "forwarded", "10.180.0.3:80", False),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nft")
    st = load_cluster([DATA / "kube-proxy" / "overall-rules.yaml"], as_is=True)
    cfg = ProxyConfig(node_name="test-node", node_ips=(NODE_IP,), cluster_cidr="10.0.0.0/8",
                      service_cidrs=("172.30.0.0/16",), nodeport_addresses=("192.168.0.2/32",))
    raw = d / "raw.nft"
    raw.write_text(render(st.services, st.endpoint_slices, cfg).raw_text())
    ipt = d / "iptables-save.txt"
    ipt.write_text(render_iptables(st.services, st.endpoint_slices, cfg).save_text())
    listing = DATA / "nft" / "kube-proxy-overall.list.txt"  # real `nft list table ip kube-proxy` (nft 1.0.6)
    # a node's full `nft list ruleset`: iptables-nft's own table beside kube-proxy's
    ruleset = d / "ruleset.txt"
    ruleset.write_text("table ip nat {\n\tchain DOCKER_OUTPUT {\n\t\tip daddr 172.18.0.1 tcp dport 53 counter packets 0 bytes 0 "
                       "xt target \"DNAT\"\n\t}\n}\n" + listing.read_text())
    return {"raw": raw, "test-layout": DATA / "kube-proxy" / "nftables-overall.expected.txt", "list": listing,
            "ruleset": ruleset, "iptables": ipt}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def trace_json(capsys, path: Path, src: str, to: str) -> dict:
    code, out, err = run(capsys, "--nft", str(path), "--node-ip", NODE_IP, "--from", src, "--to", to, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("src, to, verdict, dnat_to, masq", CASES)
def test_same_verdict_from_raw_text_test_layout_and_nft_list(capsys, files, src, to, verdict, dnat_to, masq):
    got = {}
    for kind in ("raw", "test-layout", "list", "ruleset"):
        t = trace_json(capsys, files[kind], src, to)
        got[kind] = (t["verdict"], t["dnat_to"], t["masquerade"], t["chains"], t["rules_evaluated"])
        assert (t["verdict"], t["dnat_to"], t["masquerade"]) == (verdict, dnat_to, masq), kind
    assert len(set(map(repr, got.values()))) == 1, got


def test_json_keys_equal_iptables_save_trace(capsys, files):
    nft = trace_json(capsys, files["raw"], "10.0.0.2", "172.30.0.41:80")
    code, out, err = run(capsys, "--iptables-save", str(files["iptables"]), "--node-ip", NODE_IP, "--from", "10.0.0.2",
                         "--to", "172.30.0.41:80", "--json")
    assert code == 0, err
    ipt = json.loads(out)
    assert list(nft) == list(ipt)
    assert nft["dnat_to"] == ipt["dnat_to"] == "10.180.0.1:80" and nft["verdict"] == ipt["verdict"] == "forwarded"
    step_keys = {k for s in ipt["steps"] for k in s}
    assert {k for s in nft["steps"] for k in s} <= step_keys
    assert {s["table"] for s in nft["steps"] if s.get("table")} == {"kube-proxy"}
    assert nft["rules_evaluated"] < ipt["rules_evaluated"]


def test_rule_text_is_what_nft_list_prints(capsys, files):
    t = trace_json(capsys, files["raw"], "203.0.113.2", "192.168.0.2:3003")
    rules = [s["rule"] for s in t["steps"] if s["event"] == "rule"]
    assert "meta mark set meta mark | 0x00004000" in rules  # written as `mark set mark or 0x4000`
    listed = (DATA / "nft" / "kube-proxy-overall.list.txt").read_text()
    assert all(r in listed for r in rules), [r for r in rules if r not in listed]
    numbered = [s for s in t["steps"] if s["event"] == "rule"]
    assert all(s["rule_number"] >= 1 for s in numbered)


def test_other_tables_of_a_listing_are_skipped_with_one_note(capsys, files):
    t = trace_json(capsys, files["ruleset"], "10.0.0.2", "172.30.0.41:80")
    notes = [s["detail"] for s in t["steps"] if s["event"] == "note" and "not run" in s.get("detail", "")]
    assert notes == ["not run (only table ip kube-proxy is simulated): table ip nat"]
    code, out, _ = run(capsys, "--nft", str(files["ruleset"]), "--node-ip", NODE_IP, "--from", "10.0.0.2",
                       "--to", "172.30.0.41:80")
    assert code == 0 and "table ip nat" in out and "verdict: forwarded" in out


def test_text_output(capsys, files):
    code, out, _ = run(capsys, "--nft", str(files["list"]), "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "172.30.0.44:80")
    assert code == 0
    assert "kube-proxy services #1: ip daddr . meta l4proto . th dport vmap @service-ips" in out
    assert "numgen random mod 2 vmap" in out and "DNAT: 10.180.0." in out


def test_bad_input_is_one_line_exit_2(capsys, files, tmp_path):
    garbage = tmp_path / "garbage.nft"
    garbage.write_text("add rule ip kube-proxy nowhere drop\n")
    unbalanced = tmp_path / "unbalanced.txt"
    unbalanced.write_text("table ip kube-proxy {\n\tchain x {\n")
    ok = str(files["raw"])
    for args in (
        ["--nft", str(tmp_path / "missing.nft"), "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "172.30.0.41:80"],
        ["--nft", str(garbage), "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "172.30.0.41:80"],
        ["--nft", str(unbalanced), "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "172.30.0.41:80"],
        ["--nft", ok, "--from", "10.0.0.2", "--to", "172.30.0.41:80"],
        ["--nft", ok, "--node-ip", "nope", "--from", "10.0.0.2", "--to", "172.30.0.41:80"],
        ["--nft", ok, "--node-ip", NODE_IP, "--from", "net-pod", "--to", "172.30.0.41:80"],
        ["--nft", ok, "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "svc-clusterip"],
        ["--nft", ok, "--iptables-save", str(files["iptables"]), "--node-ip", NODE_IP, "--from", "10.0.0.2", "--to", "1.2.3.4:80"],
        ["--nft", ok, "-f", str(DATA / "kube-proxy" / "overall-rules.yaml"), "--node-ip", NODE_IP, "--from", "10.0.0.2",
         "--to", "1.2.3.4:80"],
    ):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


def test_cli_subprocess(files):
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--nft", str(files["list"]), "--node-ip", NODE_IP,
                        "--from", "203.0.113.2", "--to", "192.168.0.2:3001", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert t["verdict"] == "dropped" and t["dnat_to"] is None  # svc2: NodePort, eTP Local, no local endpoint
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "trace", "--nft", "/nonexistent.nft", "--node-ip", NODE_IP,
                        "--from", "1.2.3.4", "--to", "1.2.3.4:80"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--nft /nonexistent.nft" in r.stderr
