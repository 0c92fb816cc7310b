"""kslab verify: what kube-proxy should have written on a node vs the node's real rules.

On recorded real dumps (data/node-dumps, sources and the reconstructed objects in
SOURCES.md): a kind worker, an EKS node and a kubeadm node (healthy, and with no endpoints).
Matching rules give an empty diff; edited dumps are reported exactly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kslab.errors import EnvironmentProblem, InputError
from kslab.observed import cluster_from_objects, proxy_options_from_configmap
from kslab.sim.single import read_dumps
from kslab.verify import ChainDiff, VerifyReport, fetch_node_dump, verify_live, verify_node

REPO = Path(__file__).resolve().parents[1]
D = REPO / "data" / "node-dumps"
EKS_NODE = "ip-192-168-0-174.ap-southeast-1.compute.internal"

# name: (objects, kube-proxy ConfigMap, dump files, node, options older templates need (SOURCES.md))
CASES = {
    "kind": ("kind-worker3.objects.yaml", "kind-worker3.kube-proxy.yaml", ["kind-worker3.filter.S", "kind-worker3.nat.S"],
             "kind-worker3", {"nfacct": False}),
    "eks": ("eks-node.objects.yaml", "eks-node.kube-proxy.yaml", ["eks-node.nat.S"], EKS_NODE, {}),
    "kubeadm": ("kubeadm-master-01.objects.yaml", "kubeadm-master-01.kube-proxy.yaml", ["kubeadm-master-01.iptables-save"],
                "master-01", {"nfacct": False, "random_fully": False}),
    "kubeadm-no-endpoints": ("kubeadm-master-01.no-endpoints.objects.yaml", "kubeadm-master-01.kube-proxy.yaml",
                             ["kubeadm-master-01.no-endpoints.iptables-save"], "master-01", {"nfacct": False, "random_fully": False}),
}


def load(case: str):
    objects, cm, dumps, node, older = CASES[case]
    cluster = cluster_from_objects([yaml.safe_load((D / objects).read_text())], source=objects)
    proxy = proxy_options_from_configmap(yaml.safe_load((D / cm).read_text()))
    return cluster, proxy, read_dumps([str(D / f) for f in dumps]), node, older


def report(case: str, text: str | None = None, **extra) -> VerifyReport:
    cluster, proxy, dump, node, older = load(case)
    return verify_node(cluster, node, dump if text is None else text, proxy={**proxy, **older, **extra})


# ---- matching rules: an empty diff --------------------------------------------------------------------


@pytest.mark.parametrize("case,first,ignored", [
    ("kind", "kind-worker3: kube-proxy's rules match what it should have written (36 chains, 70 rules compared; "
             "table not in the dump, not compared: mangle)",
     ["filter KUBE-KUBELET-CANARY", "nat DOCKER_OUTPUT", "nat DOCKER_POSTROUTING", "nat KIND-MASQ-AGENT", "nat KUBE-KUBELET-CANARY"]),
    ("eks", f"{EKS_NODE}: kube-proxy's rules match what it should have written (26 chains, 51 rules compared; "
            "tables not in the dump, not compared: mangle, filter)",
     ["nat AWS-CONNMARK-CHAIN-0", "nat AWS-SNAT-CHAIN-0", "nat KUBE-KUBELET-CANARY"]),
    ("kubeadm", "master-01: kube-proxy's rules match what it should have written (43 chains, 86 rules compared)",
     ["mangle KUBE-IPTABLES-HINT", "mangle KUBE-KUBELET-CANARY", "filter DOCKER", "filter DOCKER-ISOLATION-STAGE-1",
      "filter DOCKER-ISOLATION-STAGE-2", "filter DOCKER-USER", "filter FLANNEL-FWD", "filter KUBE-KUBELET-CANARY",
      "nat DOCKER", "nat FLANNEL-POSTRTG", "nat KUBE-KUBELET-CANARY"]),
    ("kubeadm-no-endpoints", "master-01: kube-proxy's rules match what it should have written (21 chains, 39 rules compared)",
     ["mangle KUBE-IPTABLES-HINT", "mangle KUBE-KUBELET-CANARY", "filter DOCKER", "filter DOCKER-ISOLATION-STAGE-1",
      "filter DOCKER-ISOLATION-STAGE-2", "filter DOCKER-USER", "filter FLANNEL-FWD", "filter KUBE-KUBELET-CANARY",
      "nat DOCKER", "nat FLANNEL-POSTRTG", "nat KUBE-KUBELET-CANARY"]),
])
def test_real_dumps_match(case, first, ignored):
    r = report(case)
    assert r.ok() and r.diffs == []
    assert r.text().splitlines()[0] == first
    assert r.ignored_chains == ignored


def test_other_softwares_rules_in_builtin_chains_are_listed_not_compared():
    r = report("kind")
    assert r.ignored_rules == [
        "nat -A PREROUTING -d 172.20.0.1/32 -j DOCKER_OUTPUT",
        "nat -A OUTPUT -d 172.20.0.1/32 -j DOCKER_OUTPUT",
        "nat -A POSTROUTING -d 172.20.0.1/32 -j DOCKER_POSTROUTING",
        'nat -A POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment "kind-masq-agent: ensure nat POSTROUTING '
        'directs all non-LOCAL destination traffic to our custom KIND-MASQ-AGENT chain" -j KIND-MASQ-AGENT',
    ]
    eks = report("eks")  # a CONNMARK target kslab does not model: read, listed, not compared
    assert 'nat -A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80' in eks.ignored_rules
    # the no-endpoints node: kube-proxy's REJECT rules compared, libvirt's and Docker's built-in rules not
    ne = report("kubeadm-no-endpoints")
    assert len(ne.ignored_rules) == 33 and "filter -A INPUT -j REJECT --reject-with icmp-host-prohibited" in ne.ignored_rules


# ---- older templates: exactly which lines, and why (SOURCES.md) --------------------------------------


def test_kind_dump_without_no_nfacct_differs_by_the_invalid_drop_counter_only():
    r = report("kind", nfacct=True)
    assert [(d.table, d.chain, d.missing, d.unexpected, d.status) for d in r.diffs] == [(
        "filter", "KUBE-FORWARD",
        ["-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP"],
        ["-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"], "")]


def test_kubeadm_dump_with_current_templates():
    r = report("kubeadm", nfacct=True, random_fully=True)
    assert r.text().splitlines()[:11] == [
        "master-01: kube-proxy's rules differ from what it should have written in 3 of 43 chains",
        "filter KUBE-FORWARD:",
        "  - -A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP",
        "  + -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        "nat KUBE-NODEPORTS:",
        '  - -A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ingress-nginx/ingress-nginx-controller:http" -m tcp '
        "--dport 31674 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-CG5I4G2RS3ZVWGLK",
        '  - -A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ingress-nginx/ingress-nginx-controller:https" -m tcp '
        "--dport 31306 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-EDNDUDH2C75GIR6O",
        '  - -A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "jenkins/jenkins:http" -m tcp '
        "--dport 32117 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-KLKESZFIHQ5XX6FZ",
        "nat KUBE-POSTROUTING:",
        '  - -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        '  + -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    ]


def test_the_wrong_kube_proxy_options_are_visible():
    """Verifying the kind node without its ConfigMap (kube-proxy's defaults: no clusterCIDR): every
    SVC chain has a masquerade rule kube-proxy would not have written."""
    cluster, _, dump, node, older = load("kind")
    r = verify_node(cluster, node, dump, proxy={"cluster_cidr": None, **older})
    assert len(r.diffs) == 7 and all(d.chain.startswith("KUBE-SVC-") and not d.missing and len(d.unexpected) == 1
                                     and "! -s 10.244.0.0/16" in d.unexpected[0] for d in r.diffs)
    assert "clusterCIDR none, detect-local ClusterCIDR (no local-traffic detector)" in r.rendered_for


# ---- edited dumps: reported exactly ---------------------------------------------------------------------

SEP = "KUBE-SEP-MEZP33SDGZXSPSO5"  # default/my-nginx -> 10.244.3.3:80, the ladder's last
SVC = "KUBE-SVC-L65ENXXZWWSAPRCR"  # default/my-nginx


def kind_dump(edit) -> str:
    nat = (D / "kind-worker3.nat.S").read_text().splitlines()
    return (D / "kind-worker3.filter.S").read_text() + "\n".join(edit(nat)) + "\n"


def diff_text(r: VerifyReport) -> list[str]:
    """The report's lines from the headline to the traces (or to 'rendered for:')."""
    lines = r.text().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if line.startswith(("what new connections do", "rendered for:")))]


def trace_lines(r: VerifyReport) -> list[str]:
    lines = r.text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("what new connections do"))
    j = next(i for i, line in enumerate(lines) if line.startswith("rendered for:"))
    return lines[i:j]


def test_a_missing_sep_chain():
    r = report("kind", kind_dump(lambda nat: [line for line in nat if SEP not in line]))
    assert diff_text(r) == [
        "kind-worker3: kube-proxy's rules differ from what it should have written in 2 of 36 chains; "
        "table not in the dump, not compared: mangle",
        f"nat {SEP}: chain missing (2 rules expected)",
        f'  - -A {SEP} -s 10.244.3.3/32 -m comment --comment "default/my-nginx" -j KUBE-MARK-MASQ',
        f'  - -A {SEP} -p tcp -m comment --comment "default/my-nginx" -m tcp -j DNAT --to-destination 10.244.3.3:80',
        f"nat {SVC}:",
        f'  - -A {SVC} -m comment --comment "default/my-nginx -> 10.244.3.3:80" -j {SEP}',
    ]
    # the simulator through both rulesets: half the connections are no longer DNATed at all
    assert trace_lines(r) == [
        "what new connections do (kslab's simulator over both rulesets, 100 connections each, seeds 0-99; "
        "to a ClusterIP from the node itself):",
        "  default/my-nginx 10.96.86.215:80/tcp: expected 10.244.2.3:80 51%, 10.244.3.3:80 49%; "
        "on the node 10.244.2.3:80 51%, no DNAT (forwarded) 49%",
    ]
    assert r.diffs[0] == ChainDiff("nat", SEP, missing=[
        f'-A {SEP} -s 10.244.3.3/32 -m comment --comment "default/my-nginx" -j KUBE-MARK-MASQ',
        f'-A {SEP} -p tcp -m comment --comment "default/my-nginx" -m tcp -j DNAT --to-destination 10.244.3.3:80'],
        status="missing")


def test_a_changed_probability():
    r = report("kind", kind_dump(lambda nat: [line.replace("--probability 0.50000000000 -j KUBE-SEP-TIQJFJVSHRJZTTZW",
                                                           "--probability 0.33333333349 -j KUBE-SEP-TIQJFJVSHRJZTTZW")
                                              for line in nat]))
    assert diff_text(r) == [
        "kind-worker3: kube-proxy's rules differ from what it should have written in 1 of 36 chains; "
        "table not in the dump, not compared: mangle",
        f"nat {SVC}:",
        f'  - -A {SVC} -m comment --comment "default/my-nginx -> 10.244.2.3:80" -m statistic --mode random '
        "--probability 0.50000000000 -j KUBE-SEP-TIQJFJVSHRJZTTZW",
        f'  + -A {SVC} -m comment --comment "default/my-nginx -> 10.244.2.3:80" -m statistic --mode random '
        "--probability 0.33333333349 -j KUBE-SEP-TIQJFJVSHRJZTTZW",
    ]
    assert trace_lines(r)[1:] == [
        "  default/my-nginx 10.96.86.215:80/tcp: expected 10.244.2.3:80 51%, 10.244.3.3:80 49%; "
        "on the node 10.244.3.3:80 66%, 10.244.2.3:80 34%"]
    c = r.consequences[0]
    assert (c.service_port, c.destination, c.n, sum(c.actual.values())) == ("default/my-nginx", "10.96.86.215:80/tcp", 100, 100)


def test_the_same_ladder_in_another_order_is_a_difference():
    def swap(nat):
        i = next(i for i, line in enumerate(nat) if line.startswith(f"-A {SVC} -m comment"))
        nat[i], nat[i + 1] = nat[i + 1], nat[i]
        return nat
    r = report("kind", kind_dump(swap))
    masq = (f'-A {SVC} ! -s 10.244.0.0/16 -d 10.96.86.215/32 -p tcp -m comment --comment "default/my-nginx cluster IP" '
            "-m tcp --dport 80 -j KUBE-MARK-MASQ")
    first = (f'-A {SVC} -m comment --comment "default/my-nginx -> 10.244.2.3:80" -m statistic --mode random '
             "--probability 0.50000000000 -j KUBE-SEP-TIQJFJVSHRJZTTZW")
    last = f'-A {SVC} -m comment --comment "default/my-nginx -> 10.244.3.3:80" -j {SEP}'
    assert diff_text(r)[1:] == [
        f"nat {SVC}: the same 3 rules in another order (order matters in this chain)",
        "  expected order:", f"    {masq}", f"    {first}", f"    {last}",
        "  order on the node:", f"    {masq}", f"    {last}", f"    {first}",
    ]
    assert r.diffs[0].missing == r.diffs[0].unexpected == []
    # the last rule (no probability) first: every connection takes it
    assert trace_lines(r)[1:] == [
        "  default/my-nginx 10.96.86.215:80/tcp: expected 10.244.2.3:80 51%, 10.244.3.3:80 49%; on the node 10.244.3.3:80 100%"]


def test_go_map_order_is_not_a_difference_but_the_nodeports_rule_must_stay_last():
    def shuffle(nat):
        svcs = [line for line in nat if line.startswith("-A KUBE-SERVICES")]
        rest = [line for line in nat if not line.startswith("-A KUBE-SERVICES")]
        at = nat.index(svcs[0])
        return rest[:at] + list(reversed(svcs[:-1])) + [svcs[-1]] + rest[at:]
    assert report("kind", kind_dump(shuffle)).ok()

    def tail_first(nat):
        svcs = [line for line in nat if line.startswith("-A KUBE-SERVICES")]
        rest = [line for line in nat if not line.startswith("-A KUBE-SERVICES")]
        at = nat.index(svcs[0])
        return rest[:at] + [svcs[-1]] + svcs[:-1] + rest[at:]
    r = report("kind", kind_dump(tail_first))
    assert [(d.table, d.chain, bool(d.order)) for d in r.diffs] == [("nat", "KUBE-SERVICES", True)]


def test_a_stale_service_chain_and_a_missing_jump():
    def edit(nat):
        nat = [line for line in nat if line != '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
        i = nat.index("-N KUBE-SVC-Z6GDYMWE5TV2NNJN")
        nat.insert(i + 1, "-N KUBE-SVC-ZZZZZZZZZZZZZZZZ")
        nat.append('-A KUBE-SVC-ZZZZZZZZZZZZZZZZ -m comment --comment "default/gone -> 10.244.9.9:80" -j KUBE-SEP-MEZP33SDGZXSPSO5')
        return nat
    r = report("kind", kind_dump(edit))
    assert diff_text(r)[1:] == [
        "nat PREROUTING:",
        '  - -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "nat KUBE-SVC-ZZZZZZZZZZZZZZZZ: unexpected chain (1 rule)",
        '  + -A KUBE-SVC-ZZZZZZZZZZZZZZZZ -m comment --comment "default/gone -> 10.244.9.9:80" -j KUBE-SEP-MEZP33SDGZXSPSO5',
    ]


def test_counters_and_dialect_do_not_matter():
    """iptables-save -c of the kubeadm node (every rule with its [packets:bytes]) is the same rules."""
    text = (D / "kubeadm-master-01.iptables-save").read_text()
    counted = re.sub(r"^-A ", "[7:420] -A ", text, flags=re.M)
    assert report("kubeadm", counted).ok()
    # restore dialect on one rule: kube-proxy's own words for the dns ladder's first rule
    restore = text.replace(
        '-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "kube-system/kube-dns:dns -> 10.1.0.64:53" -m statistic '
        "--mode random --probability 0.50000000000 -j KUBE-SEP-TT4D5P4LY4YRBPNS",
        '-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment "kube-system/kube-dns:dns -> 10.1.0.64:53" -m statistic '
        "--mode random --probability 0.5000000000 -j KUBE-SEP-TT4D5P4LY4YRBPNS")
    assert restore != text and report("kubeadm", restore).ok()


# ---- bad input -----------------------------------------------------------------------------------------


def test_bad_input_is_one_line():
    cluster, proxy, dump, node, _ = load("kind")
    with pytest.raises(InputError, match="node 'kind-worker9': no such node in the cluster; nodes are: kind-control-plane"):
        verify_node(cluster, "kind-worker9", dump, proxy=proxy)
    with pytest.raises(InputError, match="the iptables-save of kind-worker3: is empty"):
        verify_node(cluster, node, "  \n", proxy=proxy)
    with pytest.raises(InputError, match="a listing must start with its -P"):
        verify_node(cluster, node, "-A KUBE-SERVICES -j ACCEPT\n", proxy=proxy)
    with pytest.raises(InputError, match=r"--node-ip 172\.20\.0\.400: is not an IP address"):
        verify_node(cluster, node, dump, proxy=proxy, node_ips=["172.20.0.400"])
    with pytest.raises(InputError, match="proxy option 'ipvs_scheduler': is not a kube-proxy option"):
        verify_node(cluster, node, dump, proxy={"ipvs_scheduler": "rr"})


# ---- the command ---------------------------------------------------------------------------------------


def kslab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", "verify", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_cli_offline_exit_codes(tmp_path):
    base = ["-f", str(D / "kubeadm-master-01.objects.yaml"), "--iptables-save", str(D / "kubeadm-master-01.iptables-save"),
            "--node", "master-01", "--proxy-config", str(D / "kubeadm-master-01.kube-proxy.yaml")]
    r = kslab(*base, "--no-nfacct", "--no-random-fully")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("master-01: kube-proxy's rules match what it should have written (43 chains, 86 rules compared)\n")
    r = kslab(*base, "--no-nfacct", "--json")
    j = json.loads(r.stdout)
    assert r.returncode == 1 and j["ok"] is False and [(d["table"], d["chain"]) for d in j["diffs"]] == [("nat", "KUBE-POSTROUTING")]
    # the kube-proxy ConfigMap may come among the objects instead
    both = tmp_path / "objects.yaml"
    both.write_text((D / "kubeadm-master-01.objects.yaml").read_text() + "\n---\n" + (D / "kubeadm-master-01.kube-proxy.yaml").read_text())
    r = kslab("-f", str(both), "--iptables-save", str(D / "kubeadm-master-01.iptables-save"), "--node", "master-01",
              "--no-nfacct", "--no-random-fully")
    assert r.returncode == 0, r.stdout + r.stderr
    # iptables -S listings, several files, and --node-ip
    r = kslab("-f", str(D / "kind-worker3.objects.yaml"), "--iptables-save", str(D / "kind-worker3.filter.S"), str(D / "kind-worker3.nat.S"),
              "--node", "kind-worker3", "--node-ip", "172.20.0.4", "--proxy-config", str(D / "kind-worker3.kube-proxy.yaml"), "--no-nfacct")
    assert r.returncode == 0 and "node IP 172.20.0.4," in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--node", "n"], "kslab: error: -f/--iptables-save: the offline form needs both the objects and the node's rules"),
    (["-f", "nope.yaml", "--iptables-save", "x", "--node", "n"], "kslab: error: -f nope.yaml: no such file or folder"),
    (["-f", str(D / "eks-node.objects.yaml"), "--iptables-save", "nope.txt", "--node", EKS_NODE],
     "kslab: error: --iptables-save nope.txt: no such file"),
    (["-f", str(D / "eks-node.objects.yaml"), "--iptables-save", str(D / "eks-node.nat.S"), "--node", "ip-1"],
     "kslab: error: node 'ip-1': no such node in the cluster"),
    (["-f", str(D / "eks-node.objects.yaml"), "--iptables-save", str(D / "eks-node.nat.S"), "--node", EKS_NODE,
      "--proxy-config", str(D / "eks-node.objects.yaml")], "kslab: error: --proxy-config"),
    (["--context", "kind-x", "-f", "a.yaml", "--node", "n"], "kslab: error: --context: the live form reads the objects"),
    (["--allow-debug-pod", "--node", "n"], "kslab: error: --context: is required for the live form"),
])
def test_cli_bad_input_exits_2_with_one_line(args, message):
    r = kslab(*args)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr


def test_cli_live_without_a_kubeconfig_is_one_line(tmp_path):
    r = kslab("--context", "kind-myk8s", "--node", "myk8s-worker", env={"KUBECONFIG": str(tmp_path / "none")})
    assert r.returncode == 2 and r.stderr.startswith("kslab: error: no kubeconfig at ") and r.stderr.count("\n") == 1


# ---- Lab.verify ---------------------------------------------------------------------------------------


def test_lab_verify_on_sim_and_a_hand_edit():
    import kslab

    lab = kslab.Lab()
    r = lab.verify("myk8s-worker")
    assert r.ok() and r.ignored_chains == [] and r.text().startswith("myk8s-worker: kube-proxy's rules match")
    sep = next(line.split()[1] for line in lab.save_text("myk8s-worker").splitlines()
               if line.startswith("-A KUBE-SEP-") and "DNAT" in line and "svc-clusterip" in line)
    assert lab.delete_rules(rf"^-A {sep} .*-j DNAT", nodes=["myk8s-worker"]) == 1
    r = lab.verify("myk8s-worker")
    assert [(d.table, d.chain, len(d.missing), d.unexpected) for d in r.diffs] == [("nat", sep, 1, [])]
    assert lab.verify("myk8s-worker2").ok()  # the other nodes keep their rules
    # the lab's own options are the prediction (None: the lab's default, the cluster's pod subnet)
    lab.set_proxy(cluster_cidr=None, masquerade_all=True)
    r = lab.verify("myk8s-worker2")
    assert r.ok() and "clusterCIDR 10.10.0.0/16" in r.rendered_for and "masqueradeAll true" in r.rendered_for


@pytest.mark.netns
def test_lab_verify_on_the_real_kernel():
    """The kernel's own iptables-save of a netns node equals the rendering; a hand edit shows."""
    import kslab

    with kslab.Lab(backend="netns") as lab:
        assert lab.verify("myk8s-worker").ok()
        assert lab.delete_rules(r"^-A KUBE-SVC-\S+ .*statistic", nodes=["myk8s-worker"]) == 4  # two ladders of three
        r = lab.verify("myk8s-worker")
        assert [(d.chain, len(d.missing), len(d.unexpected)) for d in r.diffs] == [
            ("KUBE-SVC-KBDEBIL6IU6WL7RF", 2, 0), ("KUBE-SVC-VTR7MTHHNMFZ3OFS", 2, 0)]
        assert all("--probability" in line for d in r.diffs for line in d.missing)


# ---- the live form, against the fake docker (tests/kindfake) and a client serving the fake cluster's objects ----


class FixtureClient:
    """What verify_live asks of a KindClient, answered from the objects the fake API server serves
    (tests/data/kind/myk8s: the study's lab plus what kind adds, kube-dns and the kube-proxy
    ConfigMap included), with a recorded exec. ``drop``: leave out the objects it names."""

    context = "kind-myk8s"

    def __init__(self, exec_answer=None, drop=lambda o: False):
        from kindfake import load_objects

        self.objects = [o for o in load_objects("myk8s") if not drop(o)]
        self.exec_answer = exec_answer
        self.execs: list[tuple] = []
        self.listed: list[str] = []
        self.node_pods: list[tuple] = []

    def list_objects(self):
        return [o for o in self.objects if o["kind"] in ("Node", "Pod", "Service", "EndpointSlice")]

    def list_kind(self, kind, namespace=None, *, label_selector=None):
        from kindfake.server import label_selector_matches

        self.listed.append(kind)
        return [o for o in self.objects if o["kind"] == kind
                and (namespace is None or o["metadata"].get("namespace") == namespace)
                and (not label_selector or label_selector_matches(label_selector, o["metadata"].get("labels") or {}))]

    def node_pod_image(self):
        return "registry.k8s.io/kube-proxy:v1.33.1", "kslab's default image"

    def run_node_pod(self, node, argv, *, image, timeout):
        from kslab.kind.client import ExecResult

        self.node_pods.append((node, tuple(argv), image))
        return ExecResult(self.exec_answer or "", "", 0), "kslab-node-abcde"

    def kube_proxy_configmap(self):
        return next(o for o in self.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kube-proxy")

    def exec(self, pod, namespace, argv, *, timeout):
        from kslab.kind.client import ExecResult

        self.execs.append((pod, namespace, tuple(argv)))
        return ExecResult(self.exec_answer, "", 0)


KIND_NODES = REPO / "tests" / "data" / "kind-nodes"


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """The fake docker over a copy of the recorded node dumps (a test may edit its copy)."""
    import shutil

    from kslab.kind.traffic import Docker

    shutil.copytree(KIND_NODES, tmp_path / "nodes", ignore=shutil.ignore_patterns("*.md"))
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_STATE", str(tmp_path / "docker"))
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_NODES", str(tmp_path / "nodes"))
    (tmp_path / "docker").mkdir()
    return Docker(str(REPO / "tests" / "kindfake" / "docker"))


@pytest.mark.parametrize("node", ["myk8s-control-plane", "myk8s-worker", "myk8s-worker2", "myk8s-worker3"])
def test_live_kind_node_by_docker_exec(fake_docker, node):
    """The fake cluster agrees with itself: every node's recorded dump is what kube-proxy writes
    for the objects the fake API server serves (kube-dns included), so the diff is empty."""
    r = verify_live(node, client=FixtureClient(), docker=fake_docker)
    assert r.ok() and r.diffs == [], r.text()
    assert r.ignored_chains == ["nat DOCKER_OUTPUT", "nat DOCKER_POSTROUTING", "nat KIND-MASQ-AGENT"]
    assert r.source == f"docker exec {node} iptables-save (context kind-myk8s)"
    assert r.compared[0] > 30  # kube-proxy's chains were compared, kube-dns's among them


def _edit_dump(tmp_path, node, edit):
    dump = tmp_path / "nodes" / f"{node}.iptables-save"
    text = dump.read_text()
    edited = edit(text)
    assert edited != text
    dump.write_text(edited)


def test_live_kind_node_with_a_sep_chain_removed_is_reported_exactly(fake_docker, tmp_path):
    """kube-dns's endpoint 10.10.0.4:53/udp removed from myk8s-worker's dump (its SEP chain and
    the ladder's jump to it): exactly those rules are missing, nothing else differs."""
    sep, svc = "KUBE-SEP-OEOVYBFUDTUCKBZR", "KUBE-SVC-TCOU7JCQXEZGVUNU"
    _edit_dump(tmp_path, "myk8s-worker", lambda t: "".join(
        line for line in t.splitlines(keepends=True) if sep not in line))
    r = verify_live("myk8s-worker", client=FixtureClient(), docker=fake_docker)
    assert not r.ok()
    assert [(d.table, d.chain, d.status, len(d.missing), len(d.unexpected)) for d in r.diffs] == [
        ("nat", sep, "missing", 2, 0), ("nat", svc, "", 1, 0)]
    assert r.diffs[1].missing == [
        f'-A {svc} -m comment --comment "kube-system/kube-dns:dns -> 10.10.0.4:53" -j {sep}']
    assert all("10.10.0.4" in line for line in r.diffs[0].missing)


def test_live_kind_node_with_a_changed_probability_is_reported_exactly(fake_docker, tmp_path):
    """svc-clusterip's first step edited to 10% on myk8s-control-plane: one rule missing, one
    unexpected, in that Service's chain alone."""
    old = "--probability 0.33333333349 -j KUBE-SEP-TBW2IYJKUCAC7GB3"
    _edit_dump(tmp_path, "myk8s-control-plane", lambda t: t.replace(old, "--probability 0.10000000009 -j KUBE-SEP-TBW2IYJKUCAC7GB3"))
    r = verify_live("myk8s-control-plane", client=FixtureClient(), docker=fake_docker)
    assert [(d.chain, len(d.missing), len(d.unexpected)) for d in r.diffs] == [("KUBE-SVC-KBDEBIL6IU6WL7RF", 1, 1)]
    assert "0.33333333349" in r.diffs[0].missing[0] and "0.10000000009" in r.diffs[0].unexpected[0]


def test_live_node_that_is_not_a_kind_container(fake_docker, monkeypatch):
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_FAIL", "missing:myk8s-worker")
    with pytest.raises(EnvironmentProblem) as e:
        verify_live("myk8s-worker", client=FixtureClient(), docker=fake_docker)
    assert str(e.value).startswith("node myk8s-worker is not a kind node container on this machine (docker has no running "
                                   "container myk8s-worker); kslab reads a non-kind node's rules only from a privileged pod "
                                   "on it: pass --allow-debug-pod")
    # with --allow-debug-pod: iptables-save in the node's kube-proxy pod (the fixture's, on myk8s-worker), by the API server's exec
    client = FixtureClient(exec_answer=(KIND_NODES / "myk8s-worker.iptables-save").read_text())
    pod = next(o["metadata"]["name"] for o in client.objects if o["kind"] == "Pod"
               and o["metadata"]["name"].startswith("kube-proxy-") and o["spec"]["nodeName"] == "myk8s-worker")
    r = verify_live("myk8s-worker", client=client, docker=fake_docker, allow_debug_pod=True)
    assert r.ok() and r.diffs == [] and client.execs == [(pod, "kube-system", ("iptables-save",))]
    assert r.source.startswith(f"iptables-save in pod kube-system/{pod} (on myk8s-worker)")


def test_live_without_docker_and_no_kube_proxy_pod(monkeypatch):
    from kslab.kind.dataplane import read_cluster

    monkeypatch.setenv("PATH", "/nonexistent")
    client = FixtureClient(drop=lambda o: o["kind"] == "Pod" and o["metadata"]["name"].startswith("kube-proxy-"))
    cluster = read_cluster(client)
    with pytest.raises(EnvironmentProblem, match="^docker: not found on PATH.*; a node that is not a kind container: pass --allow-debug-pod"):
        fetch_node_dump("myk8s-worker", cluster, client=client)
    # no kube-proxy pod on the node (GKE's static pods, another name): a privileged pod kslab makes there
    client.exec_answer = (KIND_NODES / "myk8s-worker.iptables-save").read_text()
    text, source = fetch_node_dump("myk8s-worker", cluster, client=client, allow_debug_pod=True)
    assert text == client.exec_answer and client.execs == []
    assert client.node_pods == [("myk8s-worker", ("iptables-save",), "registry.k8s.io/kube-proxy:v1.33.1")]
    assert source.startswith("iptables-save in privileged pod kube-system/kslab-node-abcde on myk8s-worker")


# ---- the live form end to end: the real kubernetes client against the fake API server ----------------------


@pytest.fixture
def live(live_cluster):
    """tests/kindfake's API server (fixture myk8s) and fake docker, KUBECONFIG pointing at it."""
    return live_cluster


def test_live_cli_against_the_fake_api_server(live, capsys):
    """The real client reads the fake server's objects and kube-proxy ConfigMap, the fake docker
    replays the node's recorded dump (made for those objects): the node matches, exit 0."""
    from kslab.cli import main

    code = main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["ok"], report["diffs"]) == (0, True, [])
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker"]) == 0
    out = capsys.readouterr().out
    assert "node's rules from: docker exec myk8s-worker iptables-save (context kind-myk8s)" in out
    assert "clusterCIDR 10.10.0.0/16" in out  # from the live kube-proxy ConfigMap
    assert "ignored (not kube-proxy's): 3 chains: nat DOCKER_OUTPUT, nat DOCKER_POSTROUTING, nat KIND-MASQ-AGENT" in out


def test_live_cli_reports_an_edited_node_exactly(live, capsys):
    """The node's dump with svc-clusterip's SEP chain for webpod1 gone: exit 1, exactly that."""
    nodes = Path(live[1]["KSLAB_FAKE_DOCKER_NODES"])
    dump = nodes / "myk8s-worker.iptables-save"
    sep = "KUBE-SEP-TBW2IYJKUCAC7GB3"
    dump.write_text("".join(line for line in dump.read_text().splitlines(keepends=True) if sep not in line))
    from kslab.cli import main

    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(d["chain"], d["status"], len(d["missing"]), len(d["unexpected"])) for d in report["diffs"]] == [
        (sep, "missing", 2, 0), ("KUBE-SVC-KBDEBIL6IU6WL7RF", "", 1, 0)]


def test_live_cli_errors_are_one_line(live, capsys):
    from kslab.cli import main

    server, _ = live
    assert main(["verify", "--context", "kind-nope", "--node", "myk8s-worker"]) == 2
    assert capsys.readouterr().err.startswith("kslab: error: context 'kind-nope' is not in kubeconfig")
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker9"]) == 2
    assert capsys.readouterr().err.startswith("kslab: error: node 'myk8s-worker9': no such node in the cluster")
    server.forbid("list", "endpointslices")
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kslab: error: forbidden: context 'kind-myk8s' cannot list endpointslices.discovery.k8s.io") and err.count("\n") == 1


def test_what_the_difference_does_to_a_node_port():
    """EKS's NodePort Service with its ladder edited to 10%: traced to the ClusterIP from the node and
    to the nodePort from outside, through the rendering and through the edited dump."""
    text = (D / "eks-node.nat.S").read_text().replace("--probability 0.50000000000 -j KUBE-SEP-6RLR7GMXHKSBV5ON",
                                                      "--probability 0.10000000009 -j KUBE-SEP-6RLR7GMXHKSBV5ON")
    r = report("eks", text)
    assert [(d.chain, len(d.missing), len(d.unexpected)) for d in r.diffs] == [("KUBE-SVC-V7WHPSTR7G6YHTBY", 1, 1)]
    assert trace_lines(r)[1:] == [
        "  game-2048/service-2048 10.100.159.184:80/tcp: expected 192.168.2.92:80 51%, 192.168.4.161:80 49%; "
        "on the node 192.168.4.161:80 89%, 192.168.2.92:80 11%",
        "  game-2048/service-2048 192.168.0.174:31248/tcp (nodePort, from 203.0.113.10): expected 192.168.2.92:80 51%, "
        "192.168.4.161:80 49%; on the node 192.168.4.161:80 89%, 192.168.2.92:80 11%",
    ]


def test_a_table_kslab_does_not_read_is_ignored_whole():
    text = (D / "kubeadm-master-01.iptables-save").read_text() + (
        "# Generated by iptables-save v1.4.21\n*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A OUTPUT -d 168.63.129.16/32 -p tcp -m owner --uid-owner 0 -j ACCEPT\nCOMMIT\n")
    r = report("kubeadm", text)
    assert r.ok() and r.ignored_chains[-1] == "security (the whole table)"


# ---- every malformed input: exit 2, one line; exit 1 means only "the rules differ" (review of issue 11) ----------

KIND_OBJ = D / "kind-worker3.objects.yaml"
KIND_ARGS = ["--iptables-save", str(D / "kind-worker3.filter.S"), str(D / "kind-worker3.nat.S"), "--node", "kind-worker3",
             "--no-nfacct"]


def _edit_objects(edit):
    doc = yaml.safe_load(KIND_OBJ.read_text())
    edit(doc)
    return doc


def _item(doc, kind, i=0):
    return [o for o in doc["items"] if o["kind"] == kind][i]


@pytest.mark.parametrize("edit,where", [
    (lambda d: d.__setitem__("items", 5), "items: 5 is not a list of objects"),
    (lambda d: _item(d, "Node")["status"].__setitem__("addresses", 5), "status.addresses: 5 is not a list"),
    (lambda d: _item(d, "Node")["status"].__setitem__("addresses", ["x"]), "status.addresses[0]: 'x' is not a mapping"),
    (lambda d: _item(d, "EndpointSlice")["endpoints"][0].__setitem__("addresses", 5), "endpoints[0].addresses: 5 is not a list"),
    (lambda d: _item(d, "EndpointSlice").__setitem__("ports", [None]), "ports[0]: None is not a mapping"),
    (lambda d: _item(d, "Service")["spec"].__setitem__("ports", {"port": 80}), "spec.ports: {'port': 80} is not a list"),
    (lambda d: _item(d, "Service")["spec"]["ports"][0].__setitem__("protocol", 5), "spec.ports[0].protocol: 5 is not a protocol"),
    (lambda d: _item(d, "Service").__setitem__("metadata", "x"), "metadata: 'x' is not a mapping"),
    (lambda d: _item(d, "Service")["metadata"].__setitem__("labels", {"a": [1]}), "metadata.labels.a: [1] is not a string"),
])
def test_cli_malformed_objects_exit_2_with_one_line(tmp_path, capsys, edit, where):
    from kslab.cli import main

    f = tmp_path / "objects.yaml"
    f.write_text(yaml.safe_dump(_edit_objects(edit)))
    assert main(["verify", "-f", str(f), *KIND_ARGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kslab: error: ") and err.count("\n") == 1 and where in err, err
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("conf,where", [
    ("iptables: 5\n", "iptables: 5 is not a mapping"),
    ("conntrack: [1]\n", "conntrack: [1] is not a mapping"),
    ("detectLocal: x\n", "detectLocal: 'x' is not a mapping"),
    ("- a\n", "is not a KubeProxyConfiguration"),
])
def test_cli_malformed_proxy_config_exits_2(tmp_path, capsys, conf, where):
    from kslab.cli import main

    cm = tmp_path / "cm.yaml"
    cm.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "kube-proxy", "namespace": "kube-system"}, "data": {"config.conf": conf}}))
    assert main(["verify", "-f", str(KIND_OBJ), *KIND_ARGS, "--proxy-config", str(cm)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err, err
    cm.write_text(yaml.safe_dump({"kind": "ConfigMap", "metadata": {"name": "kube-proxy"}, "data": {"config.conf": 5}}))
    assert main(["verify", "-f", str(KIND_OBJ), *KIND_ARGS, "--proxy-config", str(cm)]) == 2
    assert "data['config.conf']: 5 is not text" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "ten"])
def test_cli_timeout_must_be_finite_and_positive(capsys, value):
    from kslab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["verify", "--context", "kind-myk8s", "--node", "n", f"--timeout={value}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--timeout" in err and "seconds" in err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1, "x", True])
def test_verify_live_timeout_is_checked(value):
    with pytest.raises(InputError, match="timeout: .* is not a positive, finite number of seconds; pass timeout=10 "
                                         r"\(--timeout 10 on the command line\)"):
        verify_live("n", client=FixtureClient(), timeout=value)


@pytest.mark.parametrize("text", ["contexts: 5\n", "clusters: 5\n", "users: 5\n",
                                  "contexts:\n- name: kind-myk8s\n  context: 5\n"])
def test_cli_malformed_kubeconfig_exits_2(tmp_path, capsys, monkeypatch, text):
    from kslab.cli import main

    kc = tmp_path / "kubeconfig"
    kc.write_text(text)
    assert main(["verify", "--context", "kind-myk8s", "--node", "n", "--kubeconfig", str(kc)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kslab: error: kubeconfig {kc}: ") and err.count("\n") == 1 and "is not a" in err, err


@pytest.mark.parametrize("dump,why", [
    ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "holds no nat or filter table"),
    ("*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "holds no nat or filter table"),
    ("*nat\nCOMMIT\n", "holds no nat or filter table"),
    ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
     ":DOCKER_OUTPUT - [0:0]\n-A OUTPUT -d 172.20.0.1/32 -j DOCKER_OUTPUT\nCOMMIT\n", "hold none of kube-proxy's chains"),
])
def test_nothing_compared_is_not_a_match(tmp_path, capsys, dump, why):
    """A dump holding nothing kube-proxy writes into (only raw, only security, an empty nat, or
    nat without any KUBE- chain: another iptables backend's) is neither a match nor a difference."""
    cluster, proxy, _, node, older = load("kind")
    r = verify_node(cluster, node, dump, proxy={**proxy, **older})
    assert not r.ok() and not r.comparable() and why in r.not_comparable
    assert r.text().startswith(f"{node}: nothing compared: ")
    from kslab.cli import main

    f = tmp_path / "dump.txt"
    f.write_text(dump)
    assert main(["verify", "-f", str(KIND_OBJ), "--iptables-save", str(f), "--node", node,
                 "--proxy-config", str(D / "kind-worker3.kube-proxy.yaml"), "--no-nfacct"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kslab: error: --iptables-save {f}: ") and why in err and err.count("\n") == 1
    assert capsys.readouterr().out == ""


def test_the_help_says_what_each_exit_status_means(capsys):
    from kslab.cli import main

    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 the rules match; 1 they differ (the report says where), and only then; 2 they could not be compared" in out
    assert "the cluster, docker or the node cannot be reached" in out


# ---- the live form reads only what kube-proxy reads; a privileged pod on a non-kind node ----------------------


def test_live_verify_reads_only_what_kube_proxy_reads(live, capsys):
    from kslab.cli import main

    server, _ = live
    server.requests.clear()
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker"]) == 0
    paths = sorted({p.split("?")[0] for m, p in server.requests})
    assert paths == ["/api/v1/namespaces/kube-system/configmaps/kube-proxy", "/api/v1/nodes", "/api/v1/services",
                     "/apis/discovery.k8s.io/v1/endpointslices", "/version"]
    assert all(m == "GET" for m, _ in server.requests)


def _no_kube_proxy_pods(server):
    server.load([o for o in server.objects() if not (o["kind"] == "Pod" and o["metadata"]["name"].startswith("kube-proxy-"))])


def test_live_debug_pod_on_a_node_that_is_not_a_kind_container(live, capsys, monkeypatch):
    """--allow-debug-pod where the node is no docker container and no kube-proxy pod runs on it (GKE's
    static pods): a privileged pod on the node's network, with the kube-proxy DaemonSet's image, runs
    iptables-save; its log is the dump; it is deleted afterwards."""
    from kindfake.server import pod_runner

    from kslab.cli import main

    server, env = live
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_FAIL", "missing:myk8s-worker")
    _no_kube_proxy_pods(server)
    dump = (Path(env["KSLAB_FAKE_DOCKER_NODES"]) / "myk8s-worker.iptables-save").read_text()
    server.on_write.append(pod_runner(lambda pod: (dump, 0) if pod["spec"]["containers"][0]["command"] == ["iptables-save"] else None))
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker"]) == 2  # not without the flag
    assert "pass --allow-debug-pod" in capsys.readouterr().err
    assert main(["verify", "--context", "kind-myk8s", "--node", "myk8s-worker", "--allow-debug-pod"]) == 0
    out = capsys.readouterr().out
    (pod,) = server.pods_run
    ds_image = next(o for o in server.objects("DaemonSet") if o["metadata"]["name"] == "kube-proxy")["spec"]["template"]["spec"][
        "containers"][0]["image"]
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "kube-system" and pod["metadata"]["labels"] == {"kslab.io/managed-by": "kslab"}
    assert (spec["nodeName"], spec["hostNetwork"], spec["restartPolicy"]) == ("myk8s-worker", True, "Never")
    (c,) = spec["containers"]
    assert (c["image"], c["command"], c["securityContext"]) == (ds_image, ["iptables-save"], {"privileged": True})
    assert f"node's rules from: iptables-save in privileged pod kube-system/{pod['metadata']['name']} on myk8s-worker " \
           f"(the kube-proxy DaemonSet's image, {ds_image}; created by kslab and deleted)" in out
    assert not [o for o in server.objects("Pod") if o["metadata"]["name"] == pod["metadata"]["name"]]  # deleted


def test_live_debug_pod_default_image_timeout_and_cleanup(live, monkeypatch):
    """No kube-proxy DaemonSet: kube-proxy's image of the API server's version. A pod that never
    starts (image pull) is a one-line timeout, and it is deleted all the same."""
    from kindfake.server import pod_runner

    from kslab.kind.client import KindClient

    server, _ = live
    monkeypatch.setenv("KSLAB_FAKE_DOCKER_FAIL", "missing:myk8s-worker")
    _no_kube_proxy_pods(server)
    server.load([o for o in server.objects() if o["kind"] != "DaemonSet"])
    server.on_write.append(pod_runner(lambda pod: None))
    with KindClient.connect("kind-myk8s", timeout=5) as client:
        with pytest.raises(EnvironmentProblem, match=r"^pod kube-system/kslab-node-\w+ \(iptables-save on node myk8s-worker, "
                                                     r"image registry.k8s.io/kube-proxy:v1.33.1\) did not finish within 1 s "
                                                     r"\(phase Pending, ImagePullBackOff\)"):
            fetch_node_dump("myk8s-worker", client=client, allow_debug_pod=True, timeout=1)
    assert [p["spec"]["containers"][0]["image"] for p in server.pods_run] == ["registry.k8s.io/kube-proxy:v1.33.1"]
    assert not [o for o in server.objects("Pod") if o["metadata"]["name"].startswith("kslab-node-")]
    # a failing iptables-save: its output in one line, the pod deleted
    server.on_write[-1] = pod_runner(lambda pod: ("iptables-save: permission denied\n", 1))
    with KindClient.connect("kind-myk8s", timeout=5) as client:
        with pytest.raises(EnvironmentProblem, match=r"failed \(exit 1\): iptables-save: permission denied$"):
            fetch_node_dump("myk8s-worker", client=client, allow_debug_pod=True, timeout=5)
    assert not [o for o in server.objects("Pod") if o["metadata"]["name"].startswith("kslab-node-")]


# ---- kube-proxy's nftables mode: table ip kube-proxy per chain, set and map ------------------------------

NFT_NODES = REPO / "tests" / "data" / "kind-nodes-nft"
FOREIGN_TABLE = ("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
                 "\t\ttcp dport 22 accept\n\t}\n}\n")


@pytest.fixture(scope="module")
def nft_lab():
    """The study's lab on sim with kube-proxy in nftables mode: (cluster, node, the nft list form of its full sync)."""
    import kslab

    lab = kslab.Lab(proxy_mode="nftables")
    node = "myk8s-worker"
    return lab, node, lab.render(node).list_text()


def _nft_edit(listing: str, edit) -> str:
    from kslab.nft import parse_ruleset

    state = parse_ruleset(listing)
    edit(state.table("ip", "kube-proxy"))
    return state.list_ruleset()


def test_nft_exact_listing_verifies_clean(nft_lab):
    lab, node, listing = nft_lab
    r = verify_node(lab.cluster, node, listing, proxy={"mode": "nftables"})
    assert r.ok() and r.diffs == [] and r.mode == "nftables" and r.ignored_chains == []
    chains, items = r.compared
    assert chains == 33 and items == 52
    assert r.text().startswith("myk8s-worker: kube-proxy's table ip kube-proxy matches what it should have written "
                               "(33 chains, sets and maps, 52 rules and elements compared)\nrendered for: nftables mode, node IP 172.18.0.3,")
    # no mode in the options: the listing says it; nft list ruleset with another table: that table is ignored, whole
    r = verify_node(lab.cluster, node, listing + FOREIGN_TABLE)
    assert r.ok() and r.ignored_chains == ["table inet filter (the whole table)"]
    assert "ignored (not kube-proxy's): 1 table: table inet filter (the whole table)" in r.text()


def test_nft_an_endpoint_chain_removed_is_reported_exactly(nft_lab):
    lab, node, listing = nft_lab
    ep = next(n for n in parse_nft_table(listing).chains if n.startswith("endpoint-") and "kubernetes" in n)
    expected = [r.listed for r in parse_nft_table(listing).chains[ep].rules]
    r = verify_node(lab.cluster, node, _nft_edit(listing, lambda t: t.chains.pop(ep)), proxy={"mode": "nftables"})
    assert not r.ok()
    assert [(d.table, d.kind, d.chain, d.status, d.missing, d.unexpected) for d in r.diffs] == [
        ("ip kube-proxy", "chain", ep, "missing", expected, [])]
    assert expected == ["ip saddr 172.18.0.2 jump mark-for-masquerade", "meta l4proto tcp dnat to 172.18.0.2:6443"]
    assert (f"ip kube-proxy chain {ep}: chain missing (2 rules expected)\n"
            "  - ip saddr 172.18.0.2 jump mark-for-masquerade\n  - meta l4proto tcp dnat to 172.18.0.2:6443\n") in r.text()


def test_nft_an_extra_element_and_a_foreign_table(nft_lab):
    from kslab.nft import NftElement

    lab, node, listing = nft_lab

    def edit(t):
        t.sets["cluster-ips"].elements[("10.200.1.99",)] = NftElement(("10.200.1.99",))

    r = verify_node(lab.cluster, node, _nft_edit(listing, edit) + FOREIGN_TABLE, proxy={"mode": "nftables"})
    assert [(d.kind, d.chain, d.status, d.missing, d.unexpected) for d in r.diffs] == [
        ("set", "cluster-ips", "", [], ["element 10.200.1.99"])]
    assert r.ignored_chains == ["table inet filter (the whole table)"]
    assert "ip kube-proxy set cluster-ips:\n  + element 10.200.1.99\n" in r.text()
    # a stale service chain (a chain kube-proxy did not write) and a map entry gone
    def edit2(t):
        from kslab.nft import NftChain

        t.chains["service-STALE000-default/gone/tcp/http"] = NftChain("service-STALE000-default/gone/tcp/http")
        m = t.sets["service-nodeports"]
        m.elements.pop(next(iter(m.elements)))

    r = verify_node(lab.cluster, node, _nft_edit(listing, edit2), proxy={"mode": "nftables"})
    assert [(d.kind, d.chain, d.status, len(d.missing), len(d.unexpected)) for d in r.diffs] == [
        ("map", "service-nodeports", "", 1, 0), ("chain", "service-STALE000-default/gone/tcp/http", "unexpected", 0, 0)]
    assert r.diffs[0].missing[0].startswith("element tcp . 31808 : goto external-")


def parse_nft_table(listing: str):
    from kslab.nft import parse_ruleset

    return parse_ruleset(listing).table("ip", "kube-proxy")


def test_nft_mode_mismatch_and_bad_listings_are_one_line(nft_lab):
    lab, node, listing = nft_lab
    cluster, _, dump, knode, _ = load("kind")
    with pytest.raises(InputError) as e:
        verify_node(cluster, knode, dump, proxy={"mode": "nftables"})
    assert str(e.value) == ("the rules of kind-worker3: is iptables-save output, but kube-proxy runs nftables mode (mode: "
                            "nftables in its proxy options, e.g. its ConfigMap); give the node's `nft list ruleset` (or "
                            "`nft list table ip kube-proxy`): kslab verify --nft FILE")
    with pytest.raises(InputError, match=r"^the rules of myk8s-worker: is an nft listing, but kube-proxy runs iptables mode"):
        verify_node(lab.cluster, node, listing, proxy={"mode": "iptables"})
    with pytest.raises(InputError, match=r"^the nft listing of myk8s-worker: is empty; give the output of `nft list ruleset`"):
        verify_node(lab.cluster, node, " \n", proxy={"mode": "nftables"})
    with pytest.raises(InputError, match=r"^the nft listing of myk8s-worker: table ip kube-proxy: missing closing"):
        verify_node(lab.cluster, node, "table ip kube-proxy {\n\tchain x {\n", proxy={"mode": "nftables"})
    assert "\n" not in str(e.value)
    # no table ip kube-proxy: nothing compared (not a match); iptables-nft's KUBE-* chains say what the node runs
    r = verify_node(lab.cluster, node, FOREIGN_TABLE)
    assert not r.ok() and not r.comparable() and "the listing holds no table ip kube-proxy (1 other table)" in r.not_comparable
    ipt_nft = "table ip nat {\n\tchain KUBE-SERVICES {\n\t\tcounter packets 0 bytes 0 return\n\t}\n}\n"
    r = verify_node(lab.cluster, node, ipt_nft, proxy={"mode": "nftables"})
    assert "table ip nat holds iptables mode's KUBE-* chains (iptables-nft): that node's kube-proxy runs iptables mode" \
        in r.not_comparable


def test_nft_configmap_decides_the_mode_offline(nft_lab):
    """A kube-proxy ConfigMap with mode: nftables gives verify_node its mode (cluster_from_objects + options)."""
    import copy

    from kindfake import load_objects

    objs = load_objects("myk8s")
    cm = copy.deepcopy(next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kube-proxy"))
    cm["data"]["config.conf"] = cm["data"]["config.conf"].replace("mode: iptables", "mode: nftables")
    proxy = proxy_options_from_configmap(cm)
    assert proxy["mode"] == "nftables"
    cluster = cluster_from_objects([o for o in objs if o["kind"] != "ConfigMap"] + [cm])
    text = (NFT_NODES / "myk8s-worker.nft").read_text()
    # the objects do not say the ServiceCIDR: without it kube-proxy's drop of unallocated ClusterIPs is not predicted
    r = verify_node(cluster, "myk8s-worker", text, proxy=proxy)
    assert [(d.chain, d.unexpected) for d in r.diffs] == [
        ("cluster-ips-check", ['ip daddr 10.200.1.0/24 drop comment "Drop traffic to unallocated ClusterIPs"'])]
    assert r.rendered_for.endswith(", service CIDRs none known (no drop of unallocated ClusterIPs rendered: give --service-cidrs)")
    r = verify_node(cluster, "myk8s-worker", text, proxy={**proxy, "service_cidrs": ("10.200.1.0/24",)})
    assert r.ok() and r.mode == "nftables", r.text()
    assert r.rendered_for.endswith(", service CIDRs 10.200.1.0/24")
    with pytest.raises(InputError, match="is iptables-save output, but kube-proxy runs nftables mode"):
        verify_node(cluster, "myk8s-worker", (KIND_NODES / "myk8s-worker.iptables-save").read_text(), proxy=proxy)


def _nft_configmap(tmp_path, mode="nftables") -> Path:
    from kindfake import load_objects

    cm = next(o for o in load_objects("myk8s") if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kube-proxy")
    cm["data"]["config.conf"] = cm["data"]["config.conf"].replace("mode: iptables", f"mode: {mode}")
    path = tmp_path / f"kube-proxy-{mode}.yaml"
    path.write_text(yaml.safe_dump(cm))
    return path


def _kind_objects(tmp_path) -> Path:
    """The fake cluster's objects as kubectl get svc,endpointslices,nodes -A -o yaml writes them (one List)."""
    from kindfake import load_objects

    items = [o for o in load_objects("myk8s") if o["kind"] in ("Node", "Service", "EndpointSlice")]
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def test_cli_verify_an_nft_listing(tmp_path, capsys):
    from kslab.cli import main

    objects, cm = _kind_objects(tmp_path), _nft_configmap(tmp_path)
    listing = NFT_NODES / "myk8s-worker.nft"
    args = ["verify", "-f", str(objects), "--node", "myk8s-worker", "--proxy-config", str(cm), "--service-cidrs", "10.200.1.0/24"]
    assert main([*args, "--nft", str(listing)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("myk8s-worker: kube-proxy's table ip kube-proxy matches what it should have written (")
    assert f"node's rules from: {listing}\n" in out
    # without a ConfigMap the listing says the mode; nft list ruleset with a foreign table
    ruleset = tmp_path / "ruleset.nft"
    ruleset.write_text(FOREIGN_TABLE + listing.read_text())
    assert main(["verify", "-f", str(objects), "--node", "myk8s-worker", "--nft", str(ruleset)]) == 1  # defaults: no clusterCIDR
    out = capsys.readouterr().out
    # no clusterCIDR, no local-traffic detector predicted: the node's masquerade rules for off-cluster sources are extra
    assert "  + ip daddr 10.200.1.233 ip saddr != 10.10.0.0/16 jump mark-for-masquerade\n" in out
    assert "ignored (not kube-proxy's): 1 table: table inet filter" in out
    assert "rendered for: nftables mode, node IP 172.18.0.3, clusterCIDR none," in out
    # an edited listing: exit 1, the JSON names the chain
    edited = tmp_path / "edited.nft"
    ep = next(n for n in parse_nft_table(listing.read_text()).chains if n.startswith("endpoint-") and "svc-clusterip" in n)
    edited.write_text(FOREIGN_TABLE + _nft_edit(listing.read_text(), lambda t: t.chains.pop(ep)))
    assert main([*args, "--nft", str(edited), "--json"]) == 1
    j = json.loads(capsys.readouterr().out)
    assert j["ok"] is False and j["mode"] == "nftables" and [(d["kind"], d["chain"], d["status"]) for d in j["diffs"]] == [
        ("chain", ep, "missing")]
    assert j["ignored_chains"] == ["table inet filter (the whole table)"]


@pytest.mark.parametrize("which,message", [
    ("nft-as-iptables", "kslab: error: --iptables-save {nft}: is an nft listing (nft list ruleset), not iptables-save output; "
                        "give it as --nft {nft}"),
    ("iptables-as-nft", "kslab: error: --nft {ipt}: is iptables-save output, not an nft listing; give it as --iptables-save {ipt}"),
    ("both", "kslab: error: --nft: cannot be combined with --iptables-save"),
    ("configmap-iptables", "kslab: error: the rules of myk8s-worker: is an nft listing, but kube-proxy runs iptables mode"),
    ("configmap-nftables", "kslab: error: the rules of myk8s-worker: is iptables-save output, but kube-proxy runs nftables mode"),
    ("missing", "kslab: error: --nft nope.nft: no such file"),
    ("bad-cidr", "kslab: error: --service-cidrs: '10.200.1.0/33' is not a CIDR"),
    ("configmap-ipvs", "kslab: error: "),
])
def test_cli_nft_bad_input_exits_2_with_one_line(tmp_path, capsys, which, message):
    from kslab.cli import main

    objects = _kind_objects(tmp_path)
    nft, ipt = str(NFT_NODES / "myk8s-worker.nft"), str(KIND_NODES / "myk8s-worker.iptables-save")
    base = ["verify", "-f", str(objects), "--node", "myk8s-worker"]
    args = {
        "nft-as-iptables": ["--iptables-save", nft],
        "iptables-as-nft": ["--nft", ipt],
        "both": ["--nft", nft, "--iptables-save", ipt],
        "configmap-iptables": ["--nft", nft, "--proxy-config", str(_nft_configmap(tmp_path, "iptables"))],
        "configmap-nftables": ["--iptables-save", ipt, "--proxy-config", str(_nft_configmap(tmp_path, "nftables"))],
        "missing": ["--nft", "nope.nft"],
        "bad-cidr": ["--nft", nft, "--service-cidrs", "10.200.1.0/33"],
        "configmap-ipvs": ["--nft", nft, "--proxy-config", str(_nft_configmap(tmp_path, "ipvs"))],
    }[which]
    assert main([*base, *args]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith(message.format(nft=nft, ipt=ipt)) and err.err.count("\n") == 1, err.err
    if which == "configmap-ipvs":
        assert "kube-proxy runs in 'ipvs' mode; kslab models the iptables and nftables modes only" in err.err


def test_live_kind_node_in_nftables_mode_by_docker_exec(fake_docker, tmp_path):
    """A kind cluster whose kube-proxy ConfigMap says mode: nftables: verify_live reads the node's
    `nft list ruleset` through docker exec (the generated listings, tests/data/kind-nodes-nft)."""
    import shutil

    for f in NFT_NODES.glob("*.nft"):
        shutil.copy(f, tmp_path / "nodes" / f.name)
    client = FixtureClient()
    cm = next(o for o in client.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kube-proxy")
    cm["data"]["config.conf"] = cm["data"]["config.conf"].replace("mode: iptables", "mode: nftables")
    r = verify_live("myk8s-worker", client=client, docker=fake_docker)
    assert r.ok() and r.mode == "nftables", r.text()
    assert r.source == "docker exec myk8s-worker nft list ruleset (context kind-myk8s)"
    (tmp_path / "nodes" / "myk8s-worker2.nft").write_text(
        _nft_edit((NFT_NODES / "myk8s-worker2.nft").read_text(), lambda t: t.sets["cluster-ips"].elements.clear()))
    r = verify_live("myk8s-worker2", client=client, docker=fake_docker)
    assert [(d.kind, d.chain, len(d.missing)) for d in r.diffs] == [("set", "cluster-ips", 4)]


def test_lab_verify_in_nftables_mode_on_sim_and_a_hand_edit():
    import re as _re

    import kslab

    lab = kslab.Lab(proxy_mode="nftables")
    assert lab.verify("myk8s-worker").ok()
    ep = next(n for n in _re.findall(r"^\tchain (\S+) \{$", lab.nft_list("myk8s-worker"), _re.M) if n.startswith("endpoint-"))
    assert lab.dataplane.delete_rules(_re.compile("^" + _re.escape(ep) + " "), ["myk8s-worker"]) > 0
    r = lab.verify("myk8s-worker")
    assert [(d.kind, d.chain, d.status, len(d.missing), len(d.unexpected)) for d in r.diffs] == [("chain", ep, "", 2, 0)]
