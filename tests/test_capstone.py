"""Chapter 11's capstone (kslab.capstone, kslab.check.ch11, ``kslab capstone``): for every scenario and
several seeds the right answer passes and a typical wrong one fails with a hint; variants differ across
seeds and are the same for the same seed; the answers are computed from the broken lab (a check given
the learner's broken lab agrees with one built from the seed, and leaves that lab as it was)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kslab import capstone
from kslab.check import WrongAnswer, ch11
from kslab.errors import InputError
from kslab.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
CHECK_SEEDS = (0, 3, 11)


def wrong_answer(sc: capstone.Scenario, right):
    """A typical wrong answer of the scenario's kind."""
    if sc.id == "hairpin":
        return next(w for w in capstone.WORKERS if w != right)
    if sc.id == "local-no-pod":
        return list(capstone.WORKERS)  # as if the policy were Cluster
    if sc.id == "no-readiness":
        return "net-pod" if sc.params["client"] == "net-pod" else "mypc"
    if sc.id == "hints-disabled":
        return right - 1 if right - 1 > sc.params["replicas"] else right + 1
    if sc.id == "affinity-snat":
        return (sc.params["replicas"], right[1])  # every replica, as if each user had its own address
    if sc.id == "nodeport-range":
        return 32767  # the default range's end
    return right + 1  # node-dump, min-sync


def check_of(sc):
    return getattr(ch11, sc.id.replace("-", "_"))


@pytest.mark.parametrize("seed", CHECK_SEEDS)
@pytest.mark.parametrize("id", capstone.IDS)
def test_right_answer_passes_wrong_answer_gets_a_hint(id, seed, capsys):
    sc = capstone.scenario(id, seed)
    right = sc.answer()
    assert check_of(sc)(right, sc)
    assert check_of(sc)(right, seed)  # a seed names the same variant
    with pytest.raises(WrongAnswer, match="(?i)hint|give|question|default|port the API"):
        check_of(sc)(wrong_answer(sc, right), sc)
    assert not check_of(sc)(None, sc)  # unanswered: a line, no error
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("id", capstone.IDS)
def test_an_answer_of_the_wrong_form_is_refused_with_a_line(id):
    sc = capstone.scenario(id, 0)
    with pytest.raises(WrongAnswer):
        check_of(sc)(["not", "this"] if id != "local-no-pod" else "myk8s-worker", sc)


def test_typical_wrong_answers_get_their_own_hints():
    sc = capstone.scenario("nodeport-range", 1)
    with pytest.raises(WrongAnswer, match="default range"):
        ch11.nodeport_range(32767, sc)
    with pytest.raises(WrongAnswer, match="refused"):
        ch11.nodeport_range(sc.params["node_port"], sc)
    sc = capstone.scenario("affinity-snat", 2)
    pods, seconds = sc.answer()
    with pytest.raises(WrongAnswer, match="every replica"):
        ch11.affinity_snat((sc.params["replicas"], seconds), sc)
    with pytest.raises(WrongAnswer, match="default timeoutSeconds"):
        ch11.affinity_snat((pods, 10800), sc)
    sc = capstone.scenario("local-no-pod", 0)
    with pytest.raises(WrongAnswer, match="has no deploy-echo pod"):
        ch11.local_no_pod(list(capstone.WORKERS), sc)
    sc = capstone.scenario("hairpin", 0)
    with pytest.raises(WrongAnswer, match="control plane"):
        ch11.hairpin("myk8s-control-plane", sc)
    with pytest.raises(WrongAnswer, match="not a node"):
        ch11.hairpin("webpod1", sc)
    with pytest.raises(WrongAnswer, match="for scenario 'hairpin'"):
        ch11.hairpin("myk8s-worker", capstone.scenario("min-sync", 0))


def test_variants_differ_across_seeds_and_repeat_for_a_seed():
    for id in capstone.IDS:
        variants = {repr(capstone.scenario(id, s).params) for s in range(30)}
        assert len(variants) >= 3, f"{id}: only {len(variants)} variants in 30 seeds"
        assert capstone.scenario(id, 17).params == capstone.scenario(id, 17).params
    # the answers too differ: a class gets different answers, not only different wording
    for id in ("hairpin", "local-no-pod", "nodeport-range", "node-dump"):
        assert len({repr(capstone.scenario(id, s).answer()) for s in range(6)}) >= 2, id


def test_answers_are_deterministic():
    for id in capstone.IDS:
        assert capstone.scenario(id, 5).answer() == capstone.scenario(id, 5).answer()


@pytest.mark.parametrize("id", ["hairpin", "local-no-pod", "no-readiness", "hints-disabled", "affinity-snat", "nodeport-range"])
def test_the_answer_comes_from_the_broken_lab_and_the_check_leaves_it_alone(id):
    lab = Lab(backend="sim", proxy_mode="iptables")
    sc = capstone.scenario(id, 4)
    on = sc.setup(lab)
    assert on is lab  # sim: the lab itself
    before = (on.generation, [p.name for p in on.cluster.pods], {n.name: on.save_text(n.name) for n in on.cluster.nodes})
    assert sc.answer(on) == sc.answer()
    assert check_of(sc)(sc.answer(), sc, on)
    assert before == (on.generation, [p.name for p in on.cluster.pods], {n.name: on.save_text(n.name) for n in on.cluster.nodes})
    # setup really broke it: the unbroken lab gives another answer or none
    fresh = Lab(backend="sim", proxy_mode="iptables")
    try:
        unbroken = capstone._KINDS[id].answer(sc, fresh)
    except (AssertionError, InputError):  # e.g. no svc-zone without the scenario's add-on
        unbroken = None
    assert unbroken != sc.answer()


def test_setup_resets_what_the_previous_scenario_broke():
    lab = Lab(backend="sim", proxy_mode="iptables")
    capstone.scenario("nodeport-range", 0).setup(lab)
    capstone.scenario("hairpin", 0).setup(lab)
    on = capstone.scenario("local-no-pod", 0).setup(lab)
    df = on.run("webpod1", "svc-clusterip", n=40, seed=1)
    assert (df["outcome"] == "ok").all()  # the hairpin rules are back
    assert on.cluster.service("svc-nodeport").external_traffic_policy == "Local"


def test_node_dump_counts_match_the_published_dumps():
    # SOURCES.md: kube-dns -> two CoreDNS pods on the kind worker and on EKS; game-2048 -> two pods; no endpoints after the reboot
    assert capstone.dump_endpoints("kind-worker3", "kube-system/kube-dns:dns") == 2
    assert capstone.dump_endpoints("eks-node", "game-2048/service-2048") == 2
    assert capstone.dump_endpoints("kubeadm-master-01.no-endpoints", "kube-system/kube-dns:dns") == 0
    assert capstone.dump_endpoints("kubeadm-master-01", "kube-system/kube-dns:dns") == 2
    for name in capstone.DUMPS:
        assert capstone.dump_services(name), name
        assert all(p.is_file() for p in capstone.dump_paths(name))


def test_learner_seed(monkeypatch):
    monkeypatch.delenv("KSLAB_LEARNER", raising=False)
    assert capstone.learner_seed() == 0
    monkeypatch.setenv("KSLAB_LEARNER", "42")
    assert capstone.learner_seed() == 42
    monkeypatch.setenv("KSLAB_LEARNER", "Kim Minji")
    seed = capstone.learner_seed()
    assert seed == capstone.learner_seed("Kim Minji") and 0 <= seed < 100000
    assert capstone.learner_seed("Lee Jiho") != seed
    assert capstone.learner_seed(7) == 7
    for bad in (-1, 2**31, "x1", True, 1.5):
        with pytest.raises(InputError):
            capstone.scenario("hairpin", bad)
    with pytest.raises(InputError, match="not a capstone scenario"):
        capstone.scenario("nope", 0)
    with pytest.raises(InputError):
        capstone.learner_seed("  ")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kslab.cli", "capstone", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_cli():
    r = run_cli()
    assert r.returncode == 0 and [line.split()[0] for line in r.stdout.splitlines()] == list(capstone.IDS)
    r = run_cli("show", "nodeport-range", "--seed", "3")
    sc = capstone.scenario("nodeport-range", 3)
    assert r.returncode == 0 and str(sc.params["node_port"]) in r.stdout and "[nodeport-range, seed 3]" in r.stdout
    r = run_cli("show", "hairpin", "--seed", "3", "--lang", "ko")
    assert r.returncode == 0 and "노드" in r.stdout
    r = run_cli("--answers", "--seed", "3")
    assert r.returncode == 0
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(rows) == len(capstone.IDS) and [row[1] for row in rows] == list(capstone.IDS)
    assert rows[5] == ["seed 3", "nodeport-range", repr(sc.answer())]
    r = run_cli("--answers", "--learner", "Kim Minji")
    assert r.returncode == 0 and r.stdout.startswith(f"seed {capstone.learner_seed('Kim Minji')}\t")
    for args, what in ((("show", "nope"), "not a capstone scenario"), (("--answers",), "needs the learners' seeds"),
                       (("show", "hairpin", "--seed", "-3"), "out of range"), (("--seed", "x"), "not a whole number"),
                       (("frob",), "not an action"), (("show",), "needs a scenario id")):
        r = run_cli(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and what in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_a_lab_no_longer_broken_is_said_in_one_line():
    lab = Lab(backend="sim", proxy_mode="iptables")
    sc = capstone.scenario("hairpin", 2)
    on = sc.setup(lab)
    on.reset()  # the learner reset the lab before checking
    with pytest.raises(WrongAnswer, match="not in scenario 'hairpin'.s state any more"):
        ch11.hairpin("myk8s-worker", sc, on)
