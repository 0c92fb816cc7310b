"""The study's lab is one cluster: the same pods, pod IPs, ClusterIPs and nodePorts in every
``kslab.Lab()``, every chapter and every ``kslab`` command, whatever an experiment's seed (which
moves only traffic); ``lab.reset()`` brings that cluster back exactly; ``lab.copy()`` is an
independent twin on sim, and the exercise checks run on one, so they never change the learner's
lab; ``NODE:SERVICE`` names a Service's nodePort wherever a destination is given."""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import kslab
from kslab import check
from kslab.check import WrongAnswer
from kslab.errors import AdmissionError, InputError
from kslab.lab import HAIRPIN_RULES, Lab

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks" / "src").glob("[0-9]*.py"))


def cluster_of(lab: Lab) -> dict:
    """Everything the control plane allocated or decided, as plain data."""
    c = lab.cluster
    return {
        "pods": [(p.namespace, p.name, p.pod_ip, p.node_name, p.ready, p.phase) for p in c.pods],
        "services": [(s.key, s.type, s.cluster_ip, [(p.name, p.port, p.node_port, p.protocol) for p in s.ports],
                      s.session_affinity, s.session_affinity_timeout, s.external_traffic_policy) for s in c.services],
        "slices": sorted((s.name, s.service_name, [(e.addresses, e.ready, e.node_name, e.target_pod) for e in s.endpoints])
                         for s in c.endpoint_slices),
        "deployments": [(d.key, d.replicas) for d in c.deployments],
        "api": (c.clock, c.revision, sorted((k, r.created, r.uid, r.resource_version, r.generation) for k, r in c.records.items())),
    }


def rules_of(lab: Lab) -> dict:
    """What kube-proxy renders and what each node's tables hold."""
    return {n.name: (lab.render(n.name).save_text(), lab.save_text(n.name)) for n in lab.cluster.nodes}


def sim_kernel_of(lab: Lab) -> dict:
    """The simulated kernels' state: conntrack, recent lists, counters, broken pods, clock."""
    net = lab.dataplane.network
    return {
        "now": lab.now,
        "broken": sorted(net.broken),
        "nodes": {name: (sorted(repr(e) for e in node.conntrack.by_orig.values()), repr(node.state.recent),
                         dict(node.state.nfacct), dict(node.state.nth_counters))
                  for name, node in net.nodes.items()},
    }


def tables_of(lab: Lab) -> dict[str, dict[str, str]]:
    """Each node's tables as ``iptables-save`` prints them, per table (backends list the tables in
    different orders)."""
    out = {}
    for n in lab.cluster.nodes:
        sections = re.split(r"^(?=\*)", lab.save_text(n.name), flags=re.M)
        out[n.name] = {sec.split("\n", 1)[0]: sec for sec in sections if sec}
    return out


def chapter_lab_calls() -> dict[str, dict]:
    """Each chapter's ``kslab.Lab(...)`` keywords, read from its source: its first call, the lab
    the chapter is built on (chapter 06 later makes a lab with another NodePort range on purpose)."""
    calls = {}
    for path in CHAPTERS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "Lab":
                assert not node.args, f"{path.name}: Lab() with positional arguments"
                if path.name not in calls:  # later labs may take computed keywords (chapter 05's backend)
                    calls[path.name] = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return calls


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kslab.cli", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


# ---- one cluster ---------------------------------------------------------------------------------


def test_every_lab_of_the_study_is_the_same_cluster_whatever_the_traffic_seed():
    calls = chapter_lab_calls()
    assert len(calls) == len(CHAPTERS) >= 5
    reference = Lab(backend="sim")
    want_cluster, want_rules = cluster_of(reference), rules_of(reference)
    labs = [Lab(backend="sim", seed=s) for s in (1, 3, 12345)] + [Lab(**{**kw, "backend": "sim"}) for kw in calls.values()]
    for lab in labs:
        assert cluster_of(lab) == want_cluster, f"Lab(seed={lab.seed}) is another cluster"
        assert rules_of(lab) == want_rules
    # the same changes make the same pods in every lab (the control plane's random state is the cluster's)
    a, b = Lab(seed=1), Lab(seed=4)
    a.scale("deploy-echo", 6)
    b.scale("deploy-echo", 6)
    assert cluster_of(a) == cluster_of(b)
    # the traffic seed still moves traffic, and only traffic
    one = Lab(seed=1).run("net-pod", "svc-nodeport", n=300)
    two = Lab(seed=2).run("net-pod", "svc-nodeport", n=300)
    assert list(one["endpoint_pod"]) != list(two["endpoint_pod"])
    assert set(one["endpoint_pod"]) == set(two["endpoint_pod"])
    # the cluster's own seed is the one thing that changes allocations
    other = Lab(cluster_seed=1)
    assert other.cluster_seed == 1 and cluster_of(other) != want_cluster
    assert cluster_of(Lab(cluster_seed=1, seed=9)) == cluster_of(other)


def test_cli_calls_see_one_cluster_whatever_their_seed():
    renders = [run_cli("render", "--node", "myk8s-worker", "--seed", s) for s in ("0", "3", "77")]
    assert all(r.returncode == 0 for r in renders), renders[0].stderr
    assert renders[0].stdout == renders[1].stdout == renders[2].stdout
    lab = Lab()
    svc = lab.cluster.service("svc-nodeport")
    node_port = svc.ports[0].node_port
    # the port read from render's output is the lab's nodePort, reachable with any traffic seed
    (read,) = set(re.findall(r"-A KUBE-NODEPORTS .*--dport (\d+) -j KUBE-EXT-", renders[0].stdout))
    assert int(read) == node_port
    echo = {p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"}
    by_port = json.loads(run_cli("simulate", "--from", "mypc", "--to", f"myk8s-worker:{read}", "-n", "300", "--seed", "3",
                                 "--json").stdout)
    assert by_port["failed"] == 0 and by_port["connections"] == 300 and set(by_port["by_endpoint"]) == echo
    by_name = json.loads(run_cli("simulate", "--from", "mypc", "--to", "myk8s-worker:svc-nodeport", "-n", "300", "--seed", "3",
                                 "--json").stdout)
    assert by_name["by_endpoint"] == by_port["by_endpoint"] and by_name["source_ip_seen"] == by_port["source_ip_seen"]
    other = json.loads(run_cli("simulate", "--from", "mypc", "--to", f"myk8s-worker:{read}", "-n", "300", "--seed", "8",
                               "--json").stdout)
    assert set(other["by_endpoint"]) == echo and other["by_endpoint"] != by_port["by_endpoint"]  # only traffic moved
    traces = [json.loads(run_cli("trace", "--from", "net-pod", "--to", "svc-nodeport", "--json", "--seed", s).stdout)
              for s in ("0", "5")]
    assert {t["to"] for t in traces} == {f"{svc.cluster_ip}:9000/tcp"}
    ips = {p.pod_ip for p in lab.cluster.pods}
    assert all(t["dnat_to"].split(":")[0] in ips for t in traces)
    by_node = json.loads(run_cli("trace", "--from", "mypc", "--to", "myk8s-worker2:svc-nodeport", "--json", "--seed", "4").stdout)
    assert by_node["to"] == f"{lab.cluster.node('myk8s-worker2').internal_ip}:{node_port}/tcp" and by_node["verdict"] == "ok"


# ---- NODE:SERVICE --------------------------------------------------------------------------------


def test_node_colon_service_is_that_services_node_port():
    lab = Lab()
    worker = lab.cluster.node("myk8s-worker").internal_ip
    port = lab.cluster.service("svc-nodeport").ports[0]
    want = (worker, port.node_port, "tcp")
    for to in ("myk8s-worker:svc-nodeport", f"myk8s-worker:svc-nodeport:{port.name}", f"myk8s-worker:svc-nodeport:{port.port}",
               "myk8s-worker:svc-nodeport/tcp", f"myk8s-worker:{port.node_port}"):
        assert lab.destination(to) == want, to
    by_name = Lab().run("mypc", "myk8s-worker:svc-nodeport", n=200, seed=6)
    by_port = Lab().run("mypc", f"myk8s-worker:{port.node_port}", n=200, seed=6)
    pd.testing.assert_frame_equal(by_name, by_port)
    assert (by_name["outcome"] == "ok").all()
    t = lab.trace("mypc", "myk8s-worker3:svc-nodeport")
    assert t.ok and t.dport == port.node_port and "KUBE-NODEPORTS" in t.chains
    bad = {
        "myk8s-worker:svc-clusterip": ("has no nodePort", "--to svc-clusterip"),
        "myk8s-worker:no-such-svc": ("no Service named 'no-such-svc'", "svc-nodeport"),
        "myk8s-worker:svc-nodeport:nope": ("has no port 'nope'", "svc-webport"),
        "myk8s-worker:svc-nodeport/udp": ("is TCP, not udp", "/tcp"),
        "myk8s-worker": ("needs the nodePort", "myk8s-worker:<service>"),
    }
    for to, (problem, fix) in bad.items():
        with pytest.raises(InputError) as err:
            lab.run("mypc", to, n=1)
        text = str(err.value)
        assert text.startswith(f"--to {to}: ") and problem in text and fix in text and "\n" not in text, text
    r = run_cli("simulate", "--from", "mypc", "--to", "myk8s-worker:svc-clusterip", "-n", "5")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--to myk8s-worker:svc-clusterip" in r.stderr and "has no nodePort" in r.stderr


# ---- reset -----------------------------------------------------------------------------------------

EXTRA = """\
apiVersion: v1
kind: Service
metadata:
  name: svc-extra
spec:
  type: NodePort
  selector:
    app: webpod
  ports:
  - name: web
    port: 8000
    targetPort: 80
"""


def change_everything(lab: Lab, tmp_path: Path) -> None:
    """Every kind of change a learner can make, and some traffic."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA)
    lab.apply(extra)
    lab.scale("deploy-echo", 6)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
    lab.set_proxy(masquerade_all=True)
    lab.break_pod("webpod1")
    lab.break_pod("webpod3")
    lab.delete_pod("webpod3")  # broken, then gone: back healthy after the reset
    lab.set_ready("webpod2", False)
    lab.run(["net-pod", "10.10.1.200"], "svc-clusterip", n=50, seed=4)
    lab.advance(120 if lab.backend == "sim" else 0.5)  # a kernel's clock is waited for
    assert lab.delete_rules(HAIRPIN_RULES) > 0
    assert lab.delete_rules(r"^-A (PREROUTING|FORWARD) .*-j KUBE-(SERVICES|PROXY-FIREWALL)$") > 0  # kube-proxy's jumps too
    lab.resync(full=False)


def test_reset_restores_the_study_lab_exactly_on_sim(tmp_path):
    fresh = Lab(seed=7)
    lab = Lab(seed=7)
    before_gen = lab.generation
    change_everything(lab, tmp_path)
    assert cluster_of(lab) != cluster_of(fresh) and rules_of(lab) != rules_of(fresh) and lab.now > 0
    lab.reset()
    assert cluster_of(lab) == cluster_of(fresh)
    assert rules_of(lab) == rules_of(fresh)
    assert lab.proxy_options == fresh.proxy_options == {}
    assert sim_kernel_of(lab) == sim_kernel_of(fresh)
    assert lab.generation > before_gen  # a change the views must notice
    # the traffic's random choices restart from the lab's seed, as in a new lab
    pd.testing.assert_frame_equal(lab.run("net-pod", "svc-clusterip", n=200), fresh.run("net-pod", "svc-clusterip", n=200))
    df = lab.run(["net-pod", "webpod1"], "svc-clusterip", n=600, seed=3)
    assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == {"webpod1", "webpod2", "webpod3"}
    # and it keeps working as a lab: the same changes make the same cluster again
    lab.scale("deploy-echo", 5)
    fresh.scale("deploy-echo", 5)
    assert cluster_of(lab) == cluster_of(fresh) and rules_of(lab) == rules_of(fresh)


def test_reset_keeps_the_labs_own_proxy_options():
    lab = Lab(proxy={"masquerade_all": True})
    lab.set_proxy(masquerade_all=False)
    lab.reset()
    assert lab.proxy_options == {"masquerade_all": True}
    assert rules_of(lab) == rules_of(Lab(proxy={"masquerade_all": True}))


@pytest.mark.netns
def test_reset_and_copy_on_the_kernel(tmp_path):
    fresh = Lab(seed=2)  # the same cluster on sim
    with Lab(backend="netns", seed=2) as lab:
        start = tables_of(lab)
        assert cluster_of(lab) == cluster_of(fresh)
        change_everything(lab, tmp_path)
        # a copy is the kernel's lab as it is now, on sim, and changing it changes nothing here
        twin = lab.copy()
        kernel_now = tables_of(lab)
        assert twin.backend == "sim" and cluster_of(twin) == cluster_of(lab) and tables_of(twin) == kernel_now != start
        twin.reset()
        twin.scale("deploy-echo", 2)
        assert tables_of(lab) == kernel_now
        # the kernel's lab back as it was made
        lab.reset()
        assert lab.flush_conntrack() == 0
        assert cluster_of(lab) == cluster_of(fresh)
        assert tables_of(lab) == start
        assert lab.proxy_options == {} and lab.now < 5
        df = lab.run(["net-pod", "webpod1"], "svc-clusterip", n=90)
        assert (df["outcome"] == "ok").all() and set(df["endpoint_pod"]) == {"webpod1", "webpod2", "webpod3"}
        lab.break_pod("webpod2")
        check.ch04.error_rate(1 / 3, lab)  # a check on the kernel's lab runs on a sim copy
        assert "error" in set(lab.run("net-pod", "svc-clusterip", n=30)["outcome"])  # and left webpod2 broken


# ---- copies and checks ------------------------------------------------------------------------------


def test_copy_is_an_independent_twin():
    lab = Lab(seed=3)
    lab.scale("deploy-echo", 4)
    lab.break_pod("webpod2")
    lab.delete_rules(HAIRPIN_RULES, nodes=["myk8s-worker"])
    lab.advance(50)
    twin = lab.copy()
    assert twin.backend == "sim" and twin.seed == lab.seed and twin.now == lab.now
    assert cluster_of(twin) == cluster_of(lab) and rules_of(twin) == rules_of(lab)  # the hand deletion included
    assert "error" in set(twin.run("net-pod", "svc-clusterip", n=60, seed=1)["outcome"])  # webpod2 still broken
    before = (cluster_of(lab), rules_of(lab), sim_kernel_of(lab), lab.generation)
    twin.scale("deploy-echo", 7)
    twin.patch_service("svc-nodeport", external_traffic_policy="Local")
    twin.break_pod("webpod2", False)
    twin.set_proxy(masquerade_all=True)
    twin.delete_rules("KUBE-SERVICES")
    twin.run("mypc", "myk8s-worker:svc-nodeport", n=100)
    assert (cluster_of(lab), rules_of(lab), sim_kernel_of(lab), lab.generation) == before
    # the control plane's random state came along: the same change makes the same pods
    a, b = lab.copy(), lab.copy()
    a.scale("deploy-echo", 6)
    lab.scale("deploy-echo", 6)
    assert cluster_of(a) == cluster_of(lab) and cluster_of(b) != cluster_of(lab)
    # a full resync of the copy undoes the hand edit, as on the lab
    b.resync(full=True)
    assert b.save_text("myk8s-worker") != lab.save_text("myk8s-worker")


def check_functions():
    out = []
    for chapter, ns in sorted(vars(check).items()):
        if re.fullmatch(r"ch\d\d", chapter):
            for name, fn in sorted(vars(ns).items()):
                params = inspect.signature(fn).parameters
                if "lab" in params and "scenario" not in params:  # ch11's scenario checks: the next test
                    out.append(pytest.param(fn, id=f"{chapter}.{name}"))
    return out


def scenario_checks():
    from kslab import capstone

    return [pytest.param(sid, id=sid) for sid in capstone.IDS]


@pytest.mark.parametrize("sid", scenario_checks())
def test_capstone_checks_leave_the_learners_broken_lab_as_it_was(sid, monkeypatch):
    """Chapter 11: a scenario's check computes its answer from the learner's broken lab (``on``),
    right or wrong, on a copy (or on a lab of its own when the scenario needs none), and leaves
    ``on`` as it was; a lab not in the scenario's state gets one line, not an internal error."""
    from kslab import capstone

    sc = capstone.scenario(sid, 4)
    fn = getattr(check.ch11, sid.replace("-", "_"))
    on = sc.setup(Lab(seed=4))
    right = sc.answer(on)
    before = (cluster_of(on), rules_of(on), sim_kernel_of(on), on.generation, dict(on.proxy_options), len(on.syncs))
    copies = []
    real_copy = Lab.copy
    monkeypatch.setattr(Lab, "copy", lambda self: copies.append(self) or real_copy(self))
    assert fn(right, sc, on)
    with pytest.raises(WrongAnswer):
        fn("not an answer" if not isinstance(right, str) else "myk8s-nowhere", sc, on)
    assert all(c is on for c in copies), "a check copied a lab other than the learner's"
    assert (cluster_of(on), rules_of(on), sim_kernel_of(on), on.generation, dict(on.proxy_options), len(on.syncs)) == before
    other = Lab(seed=4)  # the study's lab, not broken this way
    try:
        fn(right, sc, other)
    except WrongAnswer as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("fn", check_functions())
def test_checks_run_on_a_copy_and_leave_the_learners_lab_as_it_was(fn, monkeypatch):
    lab = Lab(seed=4)
    lab.scale("deploy-echo", 5)
    lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=60)
    lab.break_pod("webpod3")
    lab.run(["net-pod", "10.10.2.77"], "svc-clusterip", n=40, seed=2)
    lab.advance(7)
    before = (cluster_of(lab), rules_of(lab), sim_kernel_of(lab), lab.generation, dict(lab.proxy_options), len(lab.syncs))
    copies = []
    real_copy = Lab.copy
    monkeypatch.setattr(Lab, "copy", lambda self: copies.append(self) or real_copy(self))
    # a number, a truth value, a list, a letter, a pair: a shape each check reads, so its experiment runs
    for answer in (0, False, ["172.18.0.100"], "a", (0, 0)):
        try:
            fn(answer, lab=lab)
        except WrongAnswer:
            pass
        if copies:
            break
    assert copies and all(c is lab for c in copies), "the check did not run on a copy of the lab"
    assert (cluster_of(lab), rules_of(lab), sim_kernel_of(lab), lab.generation, dict(lab.proxy_options), len(lab.syncs)) == before


def test_checks_judge_answers_on_the_learners_lab_as_it_is():
    lab = Lab(seed=1)
    gateway = lab.pod_gateway(lab.cluster.pod("webpod1").node_name)
    assert check.ch03.hairpin_source(gateway, lab)
    lab.delete_rules(HAIRPIN_RULES)  # webpod1 can no longer reach itself: the copy has the hand edit too
    with pytest.raises(WrongAnswer):
        check.ch03.hairpin_source(gateway, lab)
    assert lab.save_text("myk8s-worker") != Lab().save_text("myk8s-worker")
    lab.reset()
    assert check.ch03.hairpin_source(gateway, lab)
    lab.scale("deploy-echo", 6)  # the copy scales nothing more: the learner's 6 pods are the check's
    local = sum(p.node_name == "myk8s-worker" for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
    assert kslab.check.ch04.cross_node(1 - local / 6, lab=lab)


def test_a_refused_apply_changes_nothing(tmp_path):
    """kubectl apply of a Service the API server refuses (a nodePort outside the range) leaves the
    lab as it was: the old Service, its ports and rules stay; nothing is half-applied."""
    lab = Lab()
    before = (lab.cluster.service("svc-nodeport").ports[0].node_port, lab.save_text("myk8s-worker"))
    bad = tmp_path / "svc.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: svc-nodeport}\nspec:\n  type: NodePort\n"
                   "  selector: {app: deploy-websrv}\n  ports: [{name: svc-webport, port: 9000, targetPort: 8080, nodePort: 40000}]\n")
    with pytest.raises(AdmissionError, match="40000"):
        lab.apply(bad)
    assert (lab.cluster.service("svc-nodeport").ports[0].node_port, lab.save_text("myk8s-worker")) == before
    assert lab.trace("mypc", "myk8s-worker:svc-nodeport").outcome == "ok"
