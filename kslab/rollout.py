"""The Deployment controller's rolling update and a pod's graceful termination, as upstream.

Pure parts, ported from kubernetes/kubernetes:

- ``pkg/controller/deployment/util/deployment_util.go``: :func:`resolve_fenceposts` (maxSurge
  rounded **up**, maxUnavailable rounded **down**, both 0 -> maxUnavailable 1),
  :func:`max_unavailable`, :func:`new_rs_new_replicas`;
  ``apimachinery/pkg/util/intstr``: :func:`scaled_value` (``GetScaledValueFromIntOrPercent``);
- ``pkg/controller/deployment/rolling.go``: :func:`rolling_sync` (``rolloutRolling``: scale the
  new ReplicaSet up if it can, else scale old ones down: ``reconcileNewReplicaSet``,
  ``reconcileOldReplicaSets`` with ``cleanupUnhealthyReplicas`` and
  ``scaleDownOldReplicaSetsForRollingUpdate``); ``recreate.go``: :func:`recreate_sync`;
- ``pkg/apis/apps/validation``: :func:`strategy_of` (what the API server refuses);
- ``kubectl rollout status`` (``polymorphichelpers/rollout_status.go``): :func:`rollout_status`.

One sync of the controller is one call; :class:`kslab.controlplane.ControlPlane` runs it (with
the ReplicaSet controller making and deleting pods) until nothing changes, after every change of
the cluster, as the informers would re-queue the Deployment. The ReplicaSet controller counts
**active** pods only (not terminating, not Succeeded/Failed: ``controller.FilterActivePods``),
so a terminating old pod does not hold the rollout back (feature gate
``DeploymentReplicaSetTerminatingReplicas`` off, its default in 1.33). ``minReadySeconds`` is
not modelled: a pod is available as soon as it is ready.

A deleted pod terminates gracefully: ``deletionTimestamp`` set (``Pod.terminating``,
``Pod.deleted_at``), its endpoint stays in the EndpointSlice with ``ready=false``,
``serving`` = its readiness, ``terminating=true`` until the pod object is gone
``terminationGracePeriodSeconds`` later (:func:`grace_period`; default 30, 0 = at once). kslab's
servers keep answering until then (an app that finishes its requests after SIGTERM).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import InputError

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_GRACE_PERIOD = 30  # pod spec.terminationGracePeriodSeconds default
DEFAULT_REVISION_HISTORY_LIMIT = 10
_PERCENT = re.compile(r"^[0-9]+%$")

IntOrString = int | str


# ---- intstr and the strategy ------------------------------------------------------------------
def scaled_value(value: IntOrString, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as it is, ``"N%"`` of ``total``
    rounded up (``math.Ceil``) or down (``math.Floor``); any other string is an error."""
    if isinstance(value, bool):
        raise InputError("value", f"{value!r} is not an int or a percent", 'give an int or a string like "25%"')
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise InputError("value", f"invalid value for IntOrString: invalid type: string is not a percentage ({value!r})",
                         'give an int or a string like "25%"')
    try:
        v = int(value[:-1])
    except ValueError:
        raise InputError("value", f"invalid value for IntOrString: {value!r}", 'give a string like "25%"') from None
    scaled = float(v) * float(total) / 100
    return int(math.ceil(scaled) if round_up else math.floor(scaled))


def resolve_fenceposts(max_surge: IntOrString | None, max_unavailable: IntOrString | None, desired: int) -> tuple[int, int]:
    """``deploymentutil.ResolveFenceposts``: (surge, unavailable) for ``desired`` replicas. A
    missing value counts as 0; surge rounds up, unavailable down; if both come out 0,
    unavailable is 1 (a rollout must be able to move)."""
    surge = scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class Strategy:
    """``spec.strategy`` with the API server's defaults: RollingUpdate 25%/25%."""

    type: str = "RollingUpdate"
    max_surge: IntOrString = DEFAULT_MAX_SURGE
    max_unavailable: IntOrString = DEFAULT_MAX_UNAVAILABLE


def _check_int_or_percent(value: Any, where: str) -> None:
    """``ValidatePositiveIntOrPercent``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(where, f"{value!r} is not an int or a percent", 'give an int >= 0 or a string like "25%"')
    if isinstance(value, str):
        if not _PERCENT.match(value):
            raise InputError(where, f"{value!r}: a valid percent string must be a numeric string followed by an ending '%'",
                             "write e.g. '1%' or '93%', or an int")
    elif value < 0:
        raise InputError(where, f"{value}: must be greater than or equal to 0", "give 0 or more")


def strategy_of(spec: Mapping[str, Any] | None, where: str = "spec") -> Strategy:
    """The Deployment's ``spec.strategy``, defaulted and validated as the API server does
    (``ValidateDeploymentStrategy``, ``ValidateRollingUpdateDeployment``)."""
    st = (spec or {}).get("strategy") or {}
    if not isinstance(st, Mapping):
        raise InputError(f"{where}.strategy", f"{st!r} is not a mapping", "give {type: RollingUpdate, rollingUpdate: {...}}")
    kind = st.get("type") or "RollingUpdate"
    ru = st.get("rollingUpdate")
    if kind == "Recreate":
        if ru is not None:
            raise InputError(f"{where}.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'",
                             "remove rollingUpdate or use type: RollingUpdate")
        return Strategy("Recreate", 0, 0)
    if kind != "RollingUpdate":
        raise InputError(f"{where}.strategy.type", f"Unsupported value: {kind!r}", 'use "Recreate" or "RollingUpdate"')
    ru = ru or {}
    if not isinstance(ru, Mapping):
        raise InputError(f"{where}.strategy.rollingUpdate", f"{ru!r} is not a mapping", "give {maxSurge: ..., maxUnavailable: ...}")
    surge = ru.get("maxSurge", DEFAULT_MAX_SURGE)
    unavailable = ru.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)
    _check_int_or_percent(surge, f"{where}.strategy.rollingUpdate.maxSurge")
    _check_int_or_percent(unavailable, f"{where}.strategy.rollingUpdate.maxUnavailable")
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        raise InputError(f"{where}.strategy.rollingUpdate.maxUnavailable", f"{unavailable!r}: must not be greater than 100%",
                         "give at most 100%")
    if _is_zero(surge) and _is_zero(unavailable):
        raise InputError(f"{where}.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0",
                         "let one of maxSurge / maxUnavailable be more than 0")
    return Strategy("RollingUpdate", surge, unavailable)


def _is_zero(v: IntOrString) -> bool:
    return v == 0 or v == "0%"


def max_unavailable(strategy: Strategy, replicas: int) -> int:
    """``deploymentutil.MaxUnavailable``: 0 for Recreate or 0 replicas, at most ``replicas``."""
    if strategy.type != "RollingUpdate" or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, replicas)
    return min(unavailable, replicas)


def max_surge(strategy: Strategy, replicas: int) -> int:
    if strategy.type != "RollingUpdate":
        return 0
    surge, _ = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, replicas)
    return surge


def grace_period(pod_spec: Mapping[str, Any] | None, where: str = "spec") -> int:
    """``spec.terminationGracePeriodSeconds`` (default 30; the API server wants an int >= 0)."""
    v = (pod_spec or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
    if v is None:
        return DEFAULT_GRACE_PERIOD
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"{where}.terminationGracePeriodSeconds", f"{v!r} is not a number of seconds >= 0",
                         "give a whole number of seconds, 0 or more")
    return v


# ---- the controller's sync, on counts ---------------------------------------------------------
@dataclass
class RSCount:
    """What the Deployment controller reads of one ReplicaSet: ``spec.replicas`` and
    ``status.availableReplicas`` (plus ``created`` for the oldest-first order)."""

    name: str
    replicas: int
    available: int = 0
    created: float = 0.0


@dataclass
class Scaling:
    """One ``scaleReplicaSetAndRecordEvent``: the ReplicaSet, from -> to."""

    name: str
    old: int
    new: int

    @property
    def message(self) -> str:
        """The ``ScalingReplicaSet`` event's message (``deployment_controller`` in 1.33)."""
        way = "up" if self.new > self.old else "down"
        return f"Scaled {way} replica set {self.name} from {self.old} to {self.new}"


def _total(rss: list[RSCount]) -> int:
    return sum(r.replicas for r in rss)


def new_rs_new_replicas(replicas: int, strategy: Strategy, all_rs: list[RSCount], new_rs: RSCount) -> int:
    """``deploymentutil.NewRSNewReplicas``: how far the new ReplicaSet may grow now: up to
    ``replicas + maxSurge`` pods in all ReplicaSets (their ``spec.replicas``), never past
    ``replicas``. Recreate: straight to ``replicas``."""
    if strategy.type != "RollingUpdate":
        return replicas
    surge = max_surge(strategy, replicas)
    current = _total(all_rs)
    max_total = replicas + surge
    if current >= max_total:
        return new_rs.replicas
    scale_up = min(max_total - current, replicas - new_rs.replicas)
    return new_rs.replicas + scale_up


def _scale(rs: RSCount, to: int, out: list[Scaling]) -> bool:
    if rs.replicas == to:
        return False
    out.append(Scaling(rs.name, rs.replicas, to))
    rs.replicas = to
    return True


def reconcile_new_replica_set(replicas: int, strategy: Strategy, all_rs: list[RSCount], new_rs: RSCount,
                              out: list[Scaling]) -> bool:
    """``reconcileNewReplicaSet``."""
    if new_rs.replicas == replicas:
        return False
    if new_rs.replicas > replicas:
        return _scale(new_rs, replicas, out)
    return _scale(new_rs, new_rs_new_replicas(replicas, strategy, all_rs, new_rs), out)


def cleanup_unhealthy_replicas(old_rs: list[RSCount], max_cleanup: int, out: list[Scaling]) -> int:
    """``cleanupUnhealthyReplicas``: scale old ReplicaSets down by their unavailable pods
    (oldest first), at most ``max_cleanup`` in all."""
    total = 0
    for rs in sorted(old_rs, key=lambda r: (r.created, r.name)):
        if total >= max_cleanup:
            break
        if rs.replicas == 0 or rs.replicas == rs.available:
            continue
        n = min(max_cleanup - total, rs.replicas - rs.available)
        _scale(rs, rs.replicas - n, out)
        total += n
    return total


def scale_down_old_replica_sets(replicas: int, strategy: Strategy, all_rs: list[RSCount], old_rs: list[RSCount],
                                out: list[Scaling]) -> int:
    """``scaleDownOldReplicaSetsForRollingUpdate``: keep ``replicas - maxUnavailable`` pods
    available, scale the rest of the old ones down, oldest ReplicaSet first."""
    min_available = replicas - max_unavailable(strategy, replicas)
    available = sum(r.available for r in all_rs)
    if available <= min_available:
        return 0
    want = available - min_available
    total = 0
    for rs in sorted(old_rs, key=lambda r: (r.created, r.name)):
        if total >= want:
            break
        if rs.replicas == 0:
            continue
        n = min(rs.replicas, want - total)
        _scale(rs, rs.replicas - n, out)
        total += n
    return total


def reconcile_old_replica_sets(replicas: int, strategy: Strategy, all_rs: list[RSCount], old_rs: list[RSCount],
                               new_rs: RSCount, out: list[Scaling]) -> bool:
    """``reconcileOldReplicaSets``: how many old pods may go is
    ``allPods - minAvailable - newRSUnavailable`` (so unavailable new pods never let more old
    ones go); unhealthy old pods go first, then available ones down to minAvailable."""
    if _total(old_rs) == 0:
        return False
    min_available = replicas - max_unavailable(strategy, replicas)
    new_unavailable = new_rs.replicas - new_rs.available
    max_scaled_down = _total(all_rs) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = cleanup_unhealthy_replicas(old_rs, max_scaled_down, out)
    # the scaled-down ReplicaSets' available counts do not change until the pods go (as upstream)
    scaled = scale_down_old_replica_sets(replicas, strategy, all_rs, old_rs, out)
    return cleaned + scaled > 0


def rolling_sync(replicas: int, strategy: Strategy, new_rs: RSCount, old_rs: list[RSCount]) -> list[Scaling]:
    """One ``rolloutRolling``: scale the new ReplicaSet up if it can; if it did not, scale old
    (active: ``replicas > 0``) ReplicaSets down. Changes the counts in place; returns the scalings."""
    out: list[Scaling] = []
    all_rs = [*old_rs, new_rs]
    if reconcile_new_replica_set(replicas, strategy, all_rs, new_rs, out):
        return out
    active_old = [r for r in old_rs if r.replicas > 0]
    reconcile_old_replica_sets(replicas, strategy, all_rs, active_old, new_rs, out)
    return out


def recreate_sync(replicas: int, new_rs: RSCount, old_rs: list[RSCount], old_pods_running: bool) -> list[Scaling]:
    """One ``rolloutRecreate``: every old ReplicaSet to 0; once no old pod runs (terminating
    ones still run), the new one to ``replicas``."""
    out: list[Scaling] = []
    for rs in old_rs:
        if rs.replicas > 0:
            _scale(rs, 0, out)
    if out or old_pods_running:
        return out
    if new_rs.replicas != replicas:
        _scale(new_rs, replicas, out)
    return out


# ---- kubectl rollout status -------------------------------------------------------------------
def rollout_status(name: str, replicas: int, updated: int, current: int, available: int) -> tuple[str, bool]:
    """``kubectl rollout status deployment/NAME``'s line (``DeploymentStatusViewer.Status``)
    and whether the rollout is done. ``updated``: the new ReplicaSet's active pods,
    ``current``: all active pods (``status.replicas``), ``available``: the available ones."""
    if updated < replicas:
        return f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas have been updated...', False
    if current > updated:
        return f'Waiting for deployment "{name}" rollout to finish: {current - updated} old replicas are pending termination...', False
    if available < updated:
        return f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are available...', False
    return f'deployment "{name}" successfully rolled out', True


# ---- timers: a private stand-in until ControlPlane.schedule/run_due exist ----------------------
@dataclass(order=True)
class PrivateTimer:
    at: float
    seq: int
    what: str = field(compare=False)
    fire: Callable[[], bool] = field(compare=False)


class PrivateTimers:
    """The interface kubelet's ``ControlPlane.schedule/cancel/next_due/run_due`` has, kept by
    this module until that lands (``timers_of`` then returns the control plane itself). Timers
    hold bound methods / partials of the control plane, so a deep copy of the cluster (``Lab.copy``)
    copies them with it."""

    def __init__(self) -> None:
        self.timers: list[PrivateTimer] = []
        self._seq = 0

    def schedule(self, at: float, what: str, fire: Callable[[], bool]) -> PrivateTimer:
        self._seq += 1
        t = PrivateTimer(at, self._seq, what, fire)
        self.timers.append(t)
        self.timers.sort()
        return t

    def cancel(self, what_prefix: str) -> None:
        self.timers = [t for t in self.timers if not t.what.startswith(what_prefix)]

    def next_due(self) -> float | None:
        return self.timers[0].at if self.timers else None

    def run_due(self, until: float, state=None) -> bool:
        changed = False
        while self.timers and self.timers[0].at <= until:
            t = self.timers.pop(0)
            if state is not None:
                state.clock = max(state.clock, t.at)
            changed = bool(t.fire()) or changed
        return changed


def timers_of(cp) -> Any:
    """The scheduler rollout's timers go to: the control plane's own (kubelet's
    ``ControlPlane.schedule``) when it has one, else a :class:`PrivateTimers` kept on it."""
    if callable(getattr(type(cp), "schedule", None)) and callable(getattr(type(cp), "run_due", None)):
        return cp
    mine = cp.__dict__.get("_private_timers")
    if mine is None:
        mine = cp.__dict__["_private_timers"] = PrivateTimers()
    return mine
