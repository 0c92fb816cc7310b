"""The Deployment controller's rolling update and graceful pod termination (kslab/rollout.py,
ControlPlane's ReplicaSets). The tables are upstream's: pkg/controller/deployment/rolling_test.go
and util/deployment_util_test.go (test names cited per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kslab.errors import InputError
from kslab.lab import Lab
from kslab.rollout import (
    RSCount,
    Strategy,
    cleanup_unhealthy_replicas,
    max_unavailable,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    resolve_fenceposts,
    rolling_sync,
    scale_down_old_replica_sets,
    scaled_value,
    strategy_of,
)

WEB = Path(__file__).parent / "data" / "rollout"


# ---- deployment_util_test.go TestResolveFenceposts --------------------------------------------
@pytest.mark.parametrize("surge,unavailable,desired,want", [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),
    (None, "39%", 10, (0, 3)),
    ("39%", None, 10, (4, 0)),
    (None, None, 10, (0, 1)),
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 3, (1, 0)),  # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    (2, 0, 10, (2, 0)),
])
def test_resolve_fenceposts(surge, unavailable, desired, want):
    assert resolve_fenceposts(surge, unavailable, desired) == want


@pytest.mark.parametrize("surge,unavailable", [("oops", "39%"), ("55%", "urg")])
def test_resolve_fenceposts_refuses_non_percent_strings(surge, unavailable):
    with pytest.raises(InputError, match="not a percentage"):
        resolve_fenceposts(surge, unavailable, 10)


def test_scaled_value_rounding():
    assert scaled_value("50%", 3, True) == 2 and scaled_value("50%", 3, False) == 1 and scaled_value(7, 3, True) == 7


def _rolling(surge, unavailable) -> Strategy:
    return Strategy("RollingUpdate", surge, unavailable)


# ---- rolling_test.go TestDeploymentController_reconcileNewReplicaSet --------------------------
@pytest.mark.parametrize("replicas,surge,old,new,scaled,want", [
    (10, 0, 10, 0, False, None),
    (10, 2, 10, 0, True, 2),
    (10, 2, 5, 0, True, 7),
    (10, 2, 10, 2, False, None),
    (10, 2, 2, 11, True, 10),  # scale down
])
def test_reconcile_new_replica_set(replicas, surge, old, new, scaled, want):
    new_rs, old_rs = RSCount("foo-v2", new), RSCount("foo-v1", old)
    out = []
    assert reconcile_new_replica_set(replicas, _rolling(surge, 0), [new_rs, old_rs], new_rs, out) is scaled
    if scaled:
        assert len(out) == 1 and new_rs.replicas == want
    else:
        assert out == [] and new_rs.replicas == new


# ---- rolling_test.go TestDeploymentController_reconcileOldReplicaSets ---------------------------
@pytest.mark.parametrize("replicas,unavailable,old,new,ready_old,ready_new,scaled,want_old", [
    (10, 0, 10, 0, 10, 0, True, 9),
    (10, 2, 10, 0, 10, 0, True, 8),
    (10, 2, 10, 0, 8, 0, True, 8),   # unhealthy old replicas cleaned up
    (10, 2, 10, 0, 9, 0, True, 8),   # 1 unhealthy cleaned up, 1 ready scaled down
    (10, 2, 8, 2, 8, 0, False, 8),   # unavailable new pods keep old ones
])
def test_reconcile_old_replica_sets(replicas, unavailable, old, new, ready_old, ready_new, scaled, want_old):
    new_rs, old_rs = RSCount("foo-new", new, ready_new), RSCount("foo-old", old, ready_old)
    out = []
    got = reconcile_old_replica_sets(replicas, _rolling(0, unavailable), [old_rs, new_rs], [old_rs], new_rs, out)
    assert got is scaled and old_rs.replicas == want_old


# ---- rolling_test.go TestDeploymentController_cleanupUnhealthyReplicas ------------------------
@pytest.mark.parametrize("old,ready,max_cleanup,want", [(10, 8, 1, 1), (10, 8, 3, 2), (10, 8, 0, 0), (10, 10, 3, 0)])
def test_cleanup_unhealthy_replicas(old, ready, max_cleanup, want):
    rs = RSCount("foo-v2", old, ready)
    assert cleanup_unhealthy_replicas([rs], max_cleanup, []) == want and rs.replicas == old - want


# ---- rolling_test.go TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate ---------
@pytest.mark.parametrize("replicas,unavailable,ready,old,scaled,want_old", [
    (10, 0, 10, 10, True, 9),
    (10, 2, 10, 10, True, 8),
    (10, 2, 8, 10, False, 10),
    (10, 2, 10, 0, False, 0),
    (10, 2, 1, 10, False, 10),
])
def test_scale_down_old_replica_sets(replicas, unavailable, ready, old, scaled, want_old):
    rs = RSCount("foo-v2", old, ready)
    n = scale_down_old_replica_sets(replicas, _rolling(0, unavailable), [rs], [rs], [])
    assert (n > 0) is scaled and rs.replicas == want_old


def test_max_unavailable_caps_at_replicas_and_is_zero_for_recreate():
    assert max_unavailable(_rolling(0, 5), 3) == 3
    assert max_unavailable(Strategy("Recreate", 0, 0), 3) == 0
    assert max_unavailable(_rolling("25%", "25%"), 0) == 0


def test_a_whole_rollout_with_new_pods_that_never_become_ready_stops_at_max_unavailable():
    """4 replicas, 25%/25% (surge 1, unavailable 1): one surge pod, one old pod goes, then nothing
    while the new pods stay unavailable (upstream's case 1 in reconcileOldReplicaSets' comment)."""
    new, old = RSCount("new", 0, 0, 2.0), RSCount("old", 4, 4, 1.0)
    s = _rolling("25%", "25%")
    steps = [m.message for _ in range(5) for m in rolling_sync(4, s, new, [old])]
    assert steps == ["Scaled up replica set new from 0 to 1", "Scaled down replica set old from 4 to 3",
                     "Scaled up replica set new from 1 to 2"]
    assert (new.replicas, old.replicas) == (2, 3)


# ---- the API server's validation --------------------------------------------------------------
@pytest.mark.parametrize("strategy,field,problem", [
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, "rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}}, "rollingUpdate.maxUnavailable", "may not be 0"),
    ({"rollingUpdate": {"maxUnavailable": "101%"}}, "rollingUpdate.maxUnavailable", "not be greater than 100%"),
    ({"rollingUpdate": {"maxSurge": "1.5"}}, "rollingUpdate.maxSurge", "valid percent string"),
    ({"rollingUpdate": {"maxSurge": -1}}, "rollingUpdate.maxSurge", "greater than or equal to 0"),
    ({"type": "Recreate", "rollingUpdate": {}}, "strategy.rollingUpdate", "may not be specified"),
    ({"type": "Blue"}, "strategy.type", "Unsupported value"),
])
def test_bad_strategies_are_refused_naming_the_field(strategy, field, problem):
    with pytest.raises(InputError) as e:
        strategy_of({"strategy": strategy}, "spec")
    assert field in str(e.value) and problem in str(e.value) and "\n" not in str(e.value)


def test_default_strategy():
    assert strategy_of({}) == Strategy("RollingUpdate", "25%", "25%")
    assert strategy_of({"strategy": {"type": "Recreate"}}).type == "Recreate"


# ---- in a lab ---------------------------------------------------------------------------------
@pytest.fixture
def lab():
    lab = Lab()
    lab.apply(WEB)
    return lab


def web_pods(lab: Lab):
    return [p for p in lab.cluster.pods if p.labels.get("app") == "web"]


def endpoints(lab: Lab, svc: str = "svc-web"):
    return {ep.target_pod: (ep.ready, ep.serving, ep.terminating)
            for s in lab.cluster.slices_for(lab.cluster.service(svc)) for ep in s.endpoints}


def test_rollout_surges_and_old_pods_terminate_for_their_grace_period(lab):
    old = {p.name for p in web_pods(lab)}
    steps = lab.rollout("web", image="mendhak/http-https-echo:v2")
    # 4 replicas, 25%/25%: surge 1 (rounded up), unavailable 1 (rounded down); new pods ready at once
    assert steps[0].startswith("Scaled up replica set web-") and steps[0].endswith("from 0 to 1")
    assert steps[1].endswith("from 4 to 2") and steps[-1].endswith("from 3 to 4")
    pods = web_pods(lab)
    gone = [p for p in pods if p.name in old]
    assert len(gone) == 4 and all(p.terminating and p.deleted_at == lab.cluster.clock for p in gone)
    eps = endpoints(lab)
    for p in gone:  # terminating endpoints: ready=false, serving = readiness, terminating=true
        assert eps[p.name] == (False, True, True)
    assert sum(1 for v in eps.values() if v == (True, True, False)) == 4
    # kube-proxy sends new connections to the ready ones only
    df = lab.run("net-pod", "svc-web", n=40, seed=1)
    assert set(df["outcome"]) == {"ok"} and not set(df["endpoint_pod"]) & old
    lab.advance(29.5)
    assert len(web_pods(lab)) == 8
    lab.advance(0.5)
    assert {p.name for p in web_pods(lab)}.isdisjoint(old) and len(web_pods(lab)) == 4
    assert lab.rollout_status("web") == 'deployment "web" successfully rolled out'
    assert lab.sh("myk8s-control-plane", "kubectl get deploy web").stdout.split("\n")[1].split()[1:4] == ["4/4", "4", "4"]


def test_rollout_waits_for_new_pods_to_become_ready(lab):
    """The new ReplicaSet's pods are not ready (a readiness probe failing): the rollout stops at
    maxSurge + maxUnavailable and resumes as they become ready."""
    cp = lab.control
    orig = cp._manage_replicas

    def not_ready_new(dep):  # the kubelet's probes have not passed yet on new pods
        made = orig(dep)
        for p in lab.cluster.pods:
            if p.labels.get("app") == "web" and p.labels.get("pod-template-hash") != old_hash and not p.terminating:
                p.ready = p.name in ready_now
        return made

    old_hash = web_pods(lab)[0].labels["pod-template-hash"]
    ready_now: set[str] = set()
    cp._manage_replicas = not_ready_new
    lab.rollout("web", image="v2")
    new = [p for p in web_pods(lab) if p.labels["pod-template-hash"] != old_hash]
    old_active = [p for p in web_pods(lab) if p.labels["pod-template-hash"] == old_hash and not p.terminating]
    assert (len(new), len(old_active)) == (2, 3)
    assert lab.rollout_status("web") == 'Waiting for deployment "web" rollout to finish: 2 out of 4 new replicas have been updated...'
    ready_now.update(p.name for p in new)
    lab.set_ready(new[0].name, True)  # a pod became ready: the controllers move on
    assert len([p for p in web_pods(lab) if p.labels["pod-template-hash"] != old_hash]) == 4
    ready_now.update(p.name for p in web_pods(lab))
    lab.set_ready(new[0].name, True)
    assert lab.rollout_status("web").startswith('Waiting for deployment "web" rollout to finish: ') or \
        lab.rollout_status("web") == 'deployment "web" successfully rolled out'
    assert all(p.terminating for p in web_pods(lab) if p.labels["pod-template-hash"] == old_hash)


def test_delete_pod_is_graceful_and_grace_zero_is_at_once(lab):
    victim = web_pods(lab)[0].name
    lab.delete_pod(victim)
    p = lab.cluster.pod(victim)
    assert p.terminating and len([q for q in web_pods(lab) if not q.terminating]) == 4  # replaced at once
    assert endpoints(lab)[victim] == (False, True, True)
    y = lab.sh("myk8s-control-plane", f"kubectl get pod {victim} -o yaml").stdout
    assert "deletionGracePeriodSeconds: 30" in y
    lab.advance(30)
    assert victim not in lab.pods()
    study = next(n for n in lab.pods() if n.startswith("deploy-echo-"))  # the study's pods: grace 0
    lab.delete_pod(study)
    assert study not in lab.pods()


def test_serving_terminating_fallback_on_sim(lab):
    """All endpoints terminating: kube-proxy still sends traffic to the serving terminating ones
    (Cluster policy); once they are gone the Service rejects."""
    lab.scale("web", 0)
    eps = endpoints(lab)
    assert len(eps) == 4 and set(eps.values()) == {(False, True, True)}
    df = lab.run("net-pod", "svc-web", n=40, seed=2)
    assert set(df["outcome"]) == {"ok"} and len(set(df["endpoint_pod"])) == 4
    lab.advance(30)
    df = lab.run("net-pod", "svc-web", n=5, seed=2)
    assert "ok" not in set(df["outcome"])


def local_fallback_setup(lab: Lab) -> tuple[str, str]:
    """One web pod on each of two workers, scaled to 1: the deleted pod's node has only a
    terminating local endpoint (no replacement: the ReplicaSet wants one pod)."""
    lab.place("web", {"myk8s-worker": 1, "myk8s-worker2": 1})
    lab.scale("web", 1)
    victim = next(p for p in web_pods(lab) if p.terminating)
    assert not any(p.node_name == victim.node_name and not p.terminating for p in web_pods(lab))
    return victim.name, f"{victim.node_name}:{lab.cluster.service('svc-web-local').ports[0].node_port}"


def test_local_policy_falls_back_to_the_local_terminating_endpoint_on_sim(lab):
    victim, to = local_fallback_setup(lab)
    df = lab.run("mypc", to, n=20, seed=3)
    assert set(df["outcome"]) == {"ok"} and set(df["endpoint_pod"]) == {victim}
    lab.advance(30)
    df = lab.run("mypc", to, n=5, seed=3)
    assert "ok" not in set(df["outcome"])  # no local endpoint at all: dropped


def test_bad_rollouts_are_one_line_and_change_nothing(lab):
    before = [(p.name, p.terminating) for p in lab.cluster.pods]
    for kwargs, field in (({}, "rollout"), ({"image": ""}, "image"),
                          ({"template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
                           "spec.template.metadata.labels"),
                          ({"template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"terminationGracePeriodSeconds": -1, "containers": [{"name": "c", "image": "x"}]}}},
                           "terminationGracePeriodSeconds")):
        with pytest.raises(InputError) as e:
            lab.rollout("web", **kwargs)
        assert field in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="no such deployment"):
        lab.rollout("nope", image="x")
    assert [(p.name, p.terminating) for p in lab.cluster.pods] == before
    assert lab.rollout("web", image="mendhak/http-https-echo") == []  # the same template: nothing to do


def test_recreate_waits_for_old_pods_to_be_gone(tmp_path):
    text = (WEB / "web.yaml").read_text().replace("  replicas: 4\n", "  replicas: 2\n  strategy:\n    type: Recreate\n")
    (tmp_path / "web.yaml").write_text(text)
    lab = Lab()
    lab.apply(tmp_path)
    old = {p.name for p in web_pods(lab)}
    old_rs = lab.control.replica_sets(lab.cluster.deployments[-1])[0].name
    assert lab.rollout("web", image="v2") == [f"Scaled down replica set {old_rs} from 2 to 0"]  # new one waits
    assert {p.name for p in web_pods(lab)} == old and all(p.terminating for p in web_pods(lab))
    lab.advance(30)
    assert len(web_pods(lab)) == 2 and not {p.name for p in web_pods(lab)} & old
    assert lab.rollout_status("web") == 'deployment "web" successfully rolled out'


def test_copy_keeps_the_pending_terminations(lab):
    lab.scale("web", 2)
    twin = lab.copy()
    twin.advance(30)
    assert len(web_pods(twin)) == 2 and len(web_pods(lab)) == 4
    lab.advance(30)
    assert len(web_pods(lab)) == 2


def test_place_and_scale_go_through_the_replica_set_without_extra_pods(lab):
    """The Deployment controller sizes the ReplicaSet before the ReplicaSet controller acts: a
    placement makes no pod it then has to delete."""
    lab.place("web", {"myk8s-worker": 1, "myk8s-worker2": 1})
    assert len(web_pods(lab)) == 2 and not any(p.terminating for p in web_pods(lab))
    assert lab.control.replica_sets(lab.cluster.deployments[-1])[0].replicas == 2
    lab.scale("web", 3)
    assert len([p for p in web_pods(lab) if not p.terminating]) == 3


@pytest.mark.netns
def test_rollout_on_the_kernel():
    """The same rolling update on netns: the new pods' servers answer, the old ones keep running
    (terminating) until their grace period is over, then their namespaces' servers are gone."""
    with Lab(backend="netns", seed=7) as k:
        k.apply(WEB)
        old = {p.name for p in web_pods(k)}
        k.rollout("web", image="mendhak/http-https-echo:v2")
        assert {p.name for p in web_pods(k) if p.terminating} == old
        df = k.run("net-pod", "svc-web", n=40, seed=1)
        assert set(df["outcome"]) == {"ok"} and not set(df["endpoint_pod"]) & old and len(set(df["endpoint_pod"])) == 4
        k.advance(30)
        assert {p.name for p in web_pods(k)}.isdisjoint(old)
        assert k.rollout_status("web") == 'deployment "web" successfully rolled out'


def test_a_copy_ends_its_own_terminating_pods_and_leaves_the_originals():
    """Lab.copy(): the control plane's pending pod-gone timers act on the twin's pods, not on
    the lab it was copied from (the timers are rebound to the copied control plane)."""
    import copy as _copy

    lab = Lab()
    tmpl = _copy.deepcopy(lab.cluster.deployments[0].template)
    tmpl["spec"]["terminationGracePeriodSeconds"] = 30
    lab.rollout("deploy-echo", template=tmpl)  # the study's pods have grace 0: gone at once; the new ones have 30
    tmpl = _copy.deepcopy(tmpl)
    tmpl["spec"]["containers"][0]["image"] = "mendhak/http-https-echo:32"
    lab.rollout("deploy-echo", template=tmpl)
    terminating = sorted(p.name for p in lab.cluster.pods if p.terminating)
    assert len(terminating) == 3
    twin = lab.copy()
    twin.advance(31)
    assert not any(p.terminating for p in twin.cluster.pods) and len(twin.cluster.pods) == len(lab.cluster.pods) - 3
    assert sorted(p.name for p in lab.cluster.pods if p.terminating) == terminating  # the original still waits
    lab.advance(31)
    assert not any(p.terminating for p in lab.cluster.pods)
