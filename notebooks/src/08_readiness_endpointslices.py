# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] lang="en"
# # 08 · Readiness probes, Endpoints and EndpointSlices (준비성 프로브와 엔드포인트슬라이스)
#
# Study notes 2.7: the Super Mario Deployment with a readiness probe behind a NodePort Service, and
# "the difference between what Endpoints and EndpointSlice show when the health check fails". By the
# end you will be able to:
#
# 1. read a readiness probe (`readinessProbe`) and say what its five numbers do;
# 2. predict what `kubectl get endpoints` and `kubectl get endpointslices -o yaml` show for a pod whose
#    probe failed (it is not deleted: it moves to `notReadyAddresses`, and its slice endpoint says
#    `ready: false`), and what kube-proxy's rules do with it;
# 3. predict when the kubelet takes a broken pod out (`failureThreshold` × `periodSeconds` + `timeoutSeconds`
#    at worst), read the timeline from the broken app to kube-proxy's sync, and count the errors clients
#    see meanwhile; a Service without a probe never stops sending to the broken pod;
# 4. read a rolling update in the slices: terminating endpoints (`ready: false`, `terminating: true`)
#    that stay for the grace period and get no new connections;
# 5. explain why kube-proxy watches EndpointSlices (at most 100 endpoints each) instead of the one
#    Endpoints object per Service, with the bytes one change costs in each.
#
# **What this chapter uses** (besides chapter 00's API card: `lab.sh`, `lab.run`, `lab.cluster`,
# `lab.reset`, `lab.copy`, `lab.exact`, `experiments.claim`, `kslab.check`):
#
# - `lab.apply(kslab.resources.study_lab() / "readiness")`: the study's Super Mario Deployment
#   (`mario`, 3 pods, a readiness probe) and its NodePort Service `svc-mario`, an add-on like chapter
#   07's `svc-lb`; `views.readiness_addon(lab)` applies it once and waits until the pods are ready;
# - `lab.set_ready(pod, False)`: what the kubelet does when the probe has failed `failureThreshold`
#   times in a row (chapter 04); `lab.break_pod(pod)`: the app answers HTTP 500 (chapter 04);
#   `lab.scale(deployment, n)`; `lab.rollout(deployment, image=...)` (`kubectl set image`: a rolling
#   update, stepped by `lab.advance(seconds)`) and `lab.rollout_status(deployment)` (`kubectl rollout status`);
# - `lab.timeline(src, to, seconds, rate, actions=[(t, fn)])`: connections at `rate` per second while the
#   clock runs (the kubelets probe, pods turn ready or not, kube-proxy syncs), `fn(lab)` run at time `t`;
#   `lab.lifecycle_frame(since=clock)`: what happened meanwhile (columns `t`, `kind`, `pod`, `node`,
#   `detail`; `t` on the cluster's clock, `lab.cluster.clock`); `views.wait_ready(lab, label)`: the clock
#   runs until those pods passed their probes;
# - `kslab.kubelet`: `ProbeSpec.from_container(container, where)` (a probe with the API server's
#   defaults) and `detection_window(spec)` (best and worst seconds from a broken app to `Ready=False`);
# - `views.ReadinessPanel`, `views.compute_readiness(lab, broken=, probe=, period_seconds=,
#   failure_threshold=, ...)` and `views.readiness_summary(result)`: the panel of this chapter and the
#   experiment behind it (on a copy of the lab); `charts.readiness_timeline(rows, lifecycle)`: its chart;
# - `views.compute_watch_cost(lab, replicas)` and `views.watch_change(lab, deployment, service,
#   replicas)`: what one pod's readiness change sends to every kube-proxy, watching Endpoints vs
#   EndpointSlices (on copies of the lab); `charts.watch_cost`: its chart.
#
# The set-up cell below adds the add-on and defines `fresh(lab)`: `lab.reset()` (the study's lab as
# made), then the add-on again. The cells leave the lab as they found it; if a cell stops halfway,
# run `fresh(lab)` yourself.
#
# The chapter runs in either of kube-proxy's modes (`$KSLAB_PROXY_MODE`, iptables by default): where it reads
# kube-proxy's chain for `svc-mario`, `service_rules(lab, node)` lists iptables mode's `KUBE-SVC-…` chain
# (`iptables -t nat -S`; an endpoint is a `-j KUBE-SEP-…` jump) or nftables mode's `service-…` chain
# (`nft list chain ip kube-proxy …`, chapter 05; an endpoint is a `goto endpoint-…`).

# %% [markdown] lang="ko"
# # 08 · 준비성 프로브와 엔드포인트슬라이스 (Readiness probes, Endpoints and EndpointSlices)
#
# 스터디 노트 2.7에 해당합니다. NodePort 서비스(Service) 뒤에 준비성 프로브(readiness probe)를 둔 수퍼마리오
# 디플로이먼트(Deployment)를 배포하고, "헬스 체크가 실패할 때 엔드포인트(Endpoints)와
# 엔드포인트슬라이스(EndpointSlice) 출력 정보의 차이"를 확인합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 준비성 프로브(`readinessProbe`)를 읽고 다섯 개의 숫자가 각각 무엇을 하는지 말할 수 있습니다.
# 2. 프로브가 실패한 파드(Pod)에 대해 `kubectl get endpoints`와 `kubectl get endpointslices -o yaml`이 무엇을
#    보여 주는지 예측할 수 있습니다(파드는 지워지지 않습니다. `notReadyAddresses`로 옮겨지고, 슬라이스의
#    엔드포인트는 `ready: false`가 됩니다). 그리고 kube-proxy의 규칙이 그 파드를 어떻게 다루는지 말할 수 있습니다.
# 3. kubelet이 고장 난 파드를 언제 빼는지 예측하고(최악의 경우 `failureThreshold` × `periodSeconds` +
#    `timeoutSeconds`), 고장 난 앱에서 kube-proxy의 동기화까지의 타임라인을 읽고, 그사이 클라이언트가 보는 오류를 셀
#    수 있습니다. 프로브가 없는 서비스는 고장 난 파드로 보내기를 영영 멈추지 않습니다.
# 4. 롤링 업데이트를 슬라이스에서 읽을 수 있습니다. 종료 중인 엔드포인트(`ready: false`, `terminating: true`)는
#    유예 기간 동안 남아 있고 새 연결을 받지 않습니다.
# 5. kube-proxy가 서비스마다 하나인 엔드포인트 오브젝트 대신 (하나에 최대 100개의 엔드포인트를 담는)
#    엔드포인트슬라이스를 감시(watch)하는 이유를, 변경 하나가 각각에서 드는 바이트 수로 설명할 수 있습니다.
#
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.run`, `lab.cluster`, `lab.reset`, `lab.copy`,
# `lab.exact`, `experiments.claim`, `kslab.check` 외에):
#
# - `lab.apply(kslab.resources.study_lab() / "readiness")`: 스터디의 수퍼마리오 디플로이먼트(`mario`, 파드 3개,
#   준비성 프로브)와 NodePort 서비스 `svc-mario`입니다. 07장의 `svc-lb`처럼 추가 구성(add-on)입니다.
#   `views.readiness_addon(lab)`은 이것을 한 번 적용하고 파드가 준비될 때까지 기다립니다.
# - `lab.set_ready(pod, False)`: 프로브가 `failureThreshold`번 연속 실패했을 때 kubelet이 하는 일입니다(04장).
#   `lab.break_pod(pod)`: 앱이 HTTP 500으로 응답합니다(04장). `lab.scale(deployment, n)`.
#   `lab.rollout(deployment, image=...)`(`kubectl set image`: 롤링 업데이트이며 `lab.advance(seconds)`로 진행됩니다)와
#   `lab.rollout_status(deployment)`(`kubectl rollout status`).
# - `lab.timeline(src, to, seconds, rate, actions=[(t, fn)])`: 시계가 흐르는 동안(kubelet이 프로브하고, 파드가 준비되거나
#   준비되지 않고, kube-proxy가 동기화) 초당 `rate`개의 연결을 열고, 시각 `t`에 `fn(lab)`을 실행합니다.
#   `lab.lifecycle_frame(since=clock)`: 그사이 일어난 일입니다(열 `t`, `kind`, `pod`, `node`, `detail`. `t`는
#   클러스터의 시계 `lab.cluster.clock` 기준). `views.wait_ready(lab, label)`: 그 파드들이 프로브를 통과할 때까지
#   시계를 흐르게 합니다.
# - `kslab.kubelet`: `ProbeSpec.from_container(container, where)`(API 서버의 기본값을 채운 프로브)와
#   `detection_window(spec)`(앱이 고장 난 뒤 `Ready=False`까지의 최선과 최악의 초).
# - `views.ReadinessPanel`, `views.compute_readiness(lab, broken=, probe=, period_seconds=, failure_threshold=, ...)`,
#   `views.readiness_summary(result)`: 이 장의 패널과 그 뒤의 실험입니다(실습 환경의 복사본에서 실행).
#   `charts.readiness_timeline(rows, lifecycle)`: 그 차트입니다.
# - `views.compute_watch_cost(lab, replicas)`와 `views.watch_change(lab, deployment, service, replicas)`: 파드 하나의
#   준비 상태 변경이 모든 kube-proxy에게 보내는 양을, 엔드포인트를 감시할 때와 엔드포인트슬라이스를 감시할 때로
#   나누어 잽니다(실습 환경의 복사본에서). `charts.watch_cost`: 그 차트입니다.
#
# 아래의 설정 셀은 추가 구성을 적용하고 `fresh(lab)`를 정의합니다. `fresh`는 `lab.reset()`(처음 만든 그대로의
# 스터디 실습 환경) 다음 추가 구성을 다시 적용합니다. 셀은 실습 환경을 찾은 그대로 두고 끝납니다. 셀이 중간에
# 멈췄다면 `fresh(lab)`를 직접 실행하세요.
#
# 이 장은 kube-proxy의 두 모드 어느 쪽에서도 실행됩니다(`$KSLAB_PROXY_MODE`, 기본은 iptables). `svc-mario`에 대한
# kube-proxy의 체인을 읽는 곳에서 `service_rules(lab, node)`는 iptables 모드의 `KUBE-SVC-…` 체인(`iptables -t nat -S`,
# 엔드포인트 하나가 `-j KUBE-SEP-…` 점프 하나)이나 nftables 모드의 `service-…` 체인(`nft list chain ip kube-proxy …`,
# 05장, 엔드포인트 하나가 `goto endpoint-…` 하나)을 보여 줍니다.

# %%
import base64
import hashlib
import json

import pandas as pd

import kslab
from kslab import charts, experiments, views

lab = kslab.Lab(seed=8)  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
LIVE = not lab.dataplane.exact  # a live cluster (kind): real randomness, shared state, so its claims are statistical
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

CP, W1, W2, W3 = (n.name for n in lab.cluster.nodes)  # myk8s-control-plane, myk8s-worker, -worker2, -worker3


def with_mario(l):
    """``l`` with the Super Mario add-on applied (``lab.reset()`` goes back to the lab as made, without it) and
    its pods ready: ``views.readiness_addon`` applies data/myk8s/readiness once, then lets the clock run until every
    mario pod passed its readiness probe (a new pod starts not ready)."""
    return views.readiness_addon(l)


def fresh(l) -> None:
    """Back to the study's lab as made, then the add-on again (the same pod names, IPs and nodePort)."""
    l.reset()
    with_mario(l)


def mario_pods(l) -> list[str]:
    return sorted(l.pods("app=mario"))


def slice_conditions(l, service: str = "svc-mario") -> dict[str, dict]:
    """pod -> its endpoint's conditions, from every EndpointSlice of ``service`` (kubectl's JSON)."""
    items = json.loads(l.sh(CP, f"kubectl get endpointslices -l kubernetes.io/service-name={service} -o json"))["items"]
    return {ep["targetRef"]["name"]: ep["conditions"] for s in items for ep in s.get("endpoints") or []}


def chain_name(prefix: str, *parts: str) -> str:
    """kube-proxy's chain name (chapter 01): prefix + the first 16 characters of base32(sha256(parts joined))."""
    return prefix + base64.b32encode(hashlib.sha256("".join(parts).encode()).digest()).decode()[:16]


with_mario(lab)
NP = lab.cluster.service("svc-mario").ports[0].node_port
SVC = chain_name("KUBE-SVC-", "default/svc-mario:mario-webport", "tcp")


def service_rules(l, node: str) -> tuple[str, str, int]:
    """(the command, what it printed, how many endpoints it sends to) for svc-mario's chain on ``node``, in the
    lab's kube-proxy mode: iptables mode's KUBE-SVC chain (``-j KUBE-SEP-…`` jumps) or nftables mode's service
    chain (``goto endpoint-…``, chapter 05)."""
    if l.proxy_mode == "iptables":
        command = f"iptables -t nat -S {SVC}"
        text = l.sh(node, command)
        return command, text, str(text).count("-j KUBE-SEP-")
    table = l.sh(node, "nft list table ip kube-proxy")
    chain = next(line.split()[1] for line in table.splitlines()
                 if line.strip().startswith("chain service-") and "/svc-mario/" in line)
    command = f"nft list chain ip kube-proxy {chain}"
    text = l.sh(node, command)
    return command, text, str(text).count("goto endpoint-")
print(f"svc-mario: nodePort {NP}, chain {SVC}; mario pods: "
      + ", ".join(f"{p} ({lab.cluster.pod(p).node_name})" for p in mario_pods(lab)))

# %% [markdown] lang="en"
# ## The probe
#
# A **readiness probe** (준비성 프로브) is a check the kubelet on the pod's node runs against the
# container, over and over. While it passes, the pod's `Ready` condition is `True`; after
# `failureThreshold` failures in a row it becomes `False`, and the pod stops receiving Service
# traffic. The container is **not** restarted (that is what a liveness probe does). The study's
# manifest, `data/myk8s/readiness/deploy-mario.yaml`, probes `GET /` on port 8080:
#
# | field | here | default | meaning |
# |---|---|---|---|
# | `initialDelaySeconds` | 0 | 0 | no probe before the container has run this long |
# | `periodSeconds` | 5 | 10 | one probe every period |
# | `timeoutSeconds` | 1 | 1 | a probe that takes longer counts as a failure |
# | `successThreshold` | 1 | 1 | passes in a row to become Ready again |
# | `failureThreshold` | 3 | 3 | failures in a row to become not Ready |
#
# An HTTP probe passes on a status from 200 to 399. The chapter's period is 5 s instead of 10 so the
# experiments on a real kernel take seconds. The cell reads the probe back as the API server stores
# it (`kubectl get deploy -o jsonpath`), with the defaults filled in.

# %% [markdown] lang="ko"
# ## 프로브
#
# **준비성 프로브**(readiness probe)는 파드가 있는 노드(node)의 kubelet이 컨테이너를 상대로 되풀이해 실행하는
# 검사입니다. 통과하는 동안 파드의 `Ready` 조건은 `True`이고, `failureThreshold`번 연속 실패하면 `False`가 되어
# 파드는 서비스 트래픽을 더 이상 받지 않습니다. 컨테이너는 다시 시작되지 **않습니다**(그것은 활성 프로브(liveness
# probe)가 하는 일입니다). 스터디의 매니페스트 `data/myk8s/readiness/deploy-mario.yaml`은 포트 8080의 `GET /`를
# 프로브합니다.
#
# | 필드 | 여기 | 기본값 | 의미 |
# |---|---|---|---|
# | `initialDelaySeconds` | 0 | 0 | 컨테이너가 이만큼 실행되기 전에는 프로브하지 않음 |
# | `periodSeconds` | 5 | 10 | 주기마다 프로브 한 번 |
# | `timeoutSeconds` | 1 | 1 | 이보다 오래 걸린 프로브는 실패로 셈 |
# | `successThreshold` | 1 | 1 | 다시 Ready가 되려면 연속으로 통과해야 하는 횟수 |
# | `failureThreshold` | 3 | 3 | Ready가 아니게 되려면 연속으로 실패해야 하는 횟수 |
#
# HTTP 프로브는 상태 코드가 200 이상 399 이하이면 통과합니다. 실제 커널에서 실험이 몇 분이 아니라 몇 초에
# 끝나도록 이 장의 주기는 10초가 아니라 5초입니다. 셀은 API 서버가 저장한 그대로(기본값이 채워진 채로) 프로브를
# 읽어 옵니다(`kubectl get deploy -o jsonpath`).

# %%
probe_json = lab.sh(CP, "kubectl get deploy mario -o jsonpath={.spec.template.spec.containers[0].readinessProbe}")
probe = json.loads(probe_json)
print(f"$ kubectl get deploy mario -o jsonpath={{.spec.template.spec.containers[0].readinessProbe}}\n{probe_json}")
experiments.claim(
    probe["httpGet"] == {"path": "/", "port": 8080, "scheme": "HTTP"} and probe["periodSeconds"] == 5
    and probe["failureThreshold"] == 3 and probe["timeoutSeconds"] == 1 and probe["successThreshold"] == 1,
    "mario's probe: GET / on 8080 (scheme HTTP filled in by the API server), every 5 s, timeout 1 s, "
    "1 pass to be Ready, 3 failures in a row to be not Ready",
    f"the probe changed: {probe}",
)

# %% [markdown] lang="en"
# ## Before: Endpoints and EndpointSlices of a healthy Service
#
# The study's commands: the pods, the Service with its legacy **Endpoints** object (엔드포인트:
# `kubectl get svc,ep`), and its **EndpointSlices** (엔드포인트슬라이스) in full. The Endpoints
# object lists ready addresses in `subsets[].addresses`; an EndpointSlice lists every endpoint
# with three conditions: `ready` (send new traffic here), `serving` (the pod's Ready condition,
# also while it terminates) and `terminating` (the pod is being deleted).
#
# Two things changed since the study notes were written. Their EndpointSlice example says
# `discovery.k8s.io/v1beta1`, which Kubernetes 1.25 removed: slices are `discovery.k8s.io/v1`.
# And since 1.33 the Endpoints API is deprecated (kubectl warns "v1 Endpoints is deprecated in
# v1.33+; use discovery.k8s.io/v1 EndpointSlice"); the control plane still writes it for old
# clients, but kube-proxy has read EndpointSlices by default since 1.19 (and only them since 1.22).

# %% [markdown] lang="ko"
# ## 이전: 건강한 서비스의 엔드포인트와 엔드포인트슬라이스
#
# 스터디의 명령입니다. 파드, 서비스와 예전 방식의 **엔드포인트**(Endpoints) 오브젝트(`kubectl get svc,ep`),
# 그리고 **엔드포인트슬라이스**(EndpointSlice) 전체입니다. 엔드포인트 오브젝트는 준비된 주소를
# `subsets[].addresses`에 나열합니다. 엔드포인트슬라이스는 모든 엔드포인트를 세 가지 조건과 함께 나열합니다.
# `ready`(새 트래픽을 보내도 됨), `serving`(파드의 Ready 조건. 종료 중일 때도 따라감), `terminating`(파드가
# 삭제되는 중)입니다.
#
# 스터디 노트가 쓰인 뒤로 두 가지가 바뀌었습니다. 노트의 엔드포인트슬라이스 예시는 `discovery.k8s.io/v1beta1`인데,
# 쿠버네티스 1.25에서 제거되었습니다. 지금 슬라이스는 `discovery.k8s.io/v1`입니다. 그리고 1.33부터 엔드포인트
# API는 더 이상 사용되지 않습니다(deprecated. kubectl이 "v1 Endpoints is deprecated in v1.33+; use
# discovery.k8s.io/v1 EndpointSlice"라고 경고합니다). 컨트롤 플레인은 오래된 클라이언트를 위해 여전히 이것을
# 쓰지만, kube-proxy는 1.19부터 기본으로 엔드포인트슬라이스를 읽습니다(1.22부터는 엔드포인트슬라이스만 읽습니다).

# %%
pods = lab.sh(CP, "kubectl get pod -l app=mario -o wide")
svc_ep = lab.sh(CP, "kubectl get svc,ep svc-mario")
slices_yaml = lab.sh(CP, "kubectl get endpointslices -l kubernetes.io/service-name=svc-mario -o yaml")
print(f"$ kubectl get pod -l app=mario -o wide\n{pods}\n$ kubectl get svc,ep svc-mario\n{svc_ep.stderr}{svc_ep}")
print(f"$ kubectl get endpointslices -l kubernetes.io/service-name=svc-mario -o yaml\n{slices_yaml}")
before = slice_conditions(lab)
ips = {p: lab.cluster.pod(p).pod_ip for p in mario_pods(lab)}
experiments.claim(
    sorted(before) == mario_pods(lab) and all(c.get("ready") and c.get("serving") and not c.get("terminating")
                                              for c in before.values())
    and all(f"{ip}:8080" in svc_ep for ip in ips.values()) and "apiVersion: discovery.k8s.io/v1\n" in slices_yaml
    and (LIVE or "v1 Endpoints is deprecated in v1.33+" in svc_ep.stderr),  # the API server's warning, which kubectl prints
    f"before: the ENDPOINTS column lists all 3 mario pods on 8080 (and kubectl warns that v1 Endpoints is deprecated); "
    f"the discovery.k8s.io/v1 slice has each with ready: true, serving: true, terminating: false",
    f"the healthy Service changed: conditions {before}",
)

# %% [markdown] lang="en"
# **Predict** before you run the next cells: the probe of one mario pod fails three times in a row,
# and the kubelet sets its `Ready` condition to `False`. What do the two objects show then?
#
# - (a) the pod is gone from both `kubectl get endpoints` and the EndpointSlice;
# - (b) the Endpoints object moves its address to `notReadyAddresses` (it leaves the ENDPOINTS
#   column); the EndpointSlice keeps the endpoint, with `ready: false` and `serving: false`;
# - (c) both still list it as ready: only kube-proxy's rules leave it out.

# %% [markdown] lang="ko"
# 다음 셀들을 실행하기 전에 **예측**해 보세요. mario 파드 하나의 프로브가 세 번 연속 실패하고, kubelet이 그
# 파드의 `Ready` 조건을 `False`로 바꿉니다. 그러면 두 오브젝트는 무엇을 보여 줄까요?
#
# - (a) 파드가 `kubectl get endpoints`와 엔드포인트슬라이스 모두에서 사라집니다.
# - (b) 엔드포인트 오브젝트는 그 주소를 `notReadyAddresses`로 옮깁니다(ENDPOINTS 열에서 빠집니다).
#   엔드포인트슬라이스는 엔드포인트를 그대로 두고 `ready: false`, `serving: false`로 표시합니다.
# - (c) 둘 다 여전히 준비된 것으로 나열합니다. kube-proxy의 규칙만 그 파드를 뺍니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch08.after_failure")` shows its hints one at a time; once you have
# checked an answer of your own and seen every hint, `kslab.check.solution("ch08.after_failure")` shows the solution.
# An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch08.after_failure")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch08.after_failure")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch08.after_failure"
# 1. The two objects handle an unready pod differently: the Endpoints object has separate `addresses` and
#    `notReadyAddresses` lists; an EndpointSlice endpoint carries conditions (`ready`, `serving`, `terminating`).
# 2. Is the pod deleted when its readiness probe fails? If it still exists, the EndpointSlice keeps its endpoint and
#    changes its conditions; look at `kubectl get endpointslices -o yaml` after the failure.

# %% [markdown] lang="ko" hint="ch08.after_failure"
# 1. 두 객체는 준비되지 않은 파드를 다르게 다룹니다. 엔드포인트(Endpoints) 객체에는 `addresses`와 `notReadyAddresses` 목록이 따로 있고, 엔드포인트슬라이스의 엔드포인트에는
#    조건(`ready`, `serving`, `terminating`)이 있습니다.
# 2. 준비성 프로브가 실패하면 파드가 삭제됩니까? 파드가 남아 있다면 엔드포인트슬라이스는 엔드포인트를 유지하고 조건만 바꿉니다. 실패 뒤에 `kubectl get endpointslices -o yaml`을
#    보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "b"
kslab.check.ch08.after_failure(answer, lab)

# %% [markdown] lang="en"
# ## After: the pod is not ready
#
# The cell does what the kubelet does after the third failed probe: `set_ready(pod, False)` (on a
# live cluster only the pod's own kubelet can, so there the cell runs on a simulator twin and says
# so). Then the same commands again, kube-proxy's chain for `svc-mario` on a worker
# (`iptables -t nat -S KUBE-SVC-…`, through `service_rules`), and 300 connections from `mypc` through a worker's nodePort.
# The cell makes the pod ready again at the end.

# %% [markdown] lang="ko"
# ## 이후: 파드가 준비되지 않음
#
# 셀은 세 번째 프로브가 실패한 뒤 kubelet이 하는 일을 합니다. `set_ready(pod, False)`입니다(실제 클러스터에서는
# 파드 자신의 kubelet만 할 수 있으므로, 그곳에서는 셀이 시뮬레이터 복제본에서 실행되며 그렇다고 알려 줍니다).
# 그다음 같은 명령을 다시 실행하고, 워커에서 `svc-mario`에 대한 kube-proxy의 체인(`iptables -t nat -S
# KUBE-SVC-…`, `service_rules`로)을 보고, `mypc`에서 워커의 노드 포트로 연결 300개를 엽니다. 셀은 끝날 때 파드를 다시 준비
# 상태로 되돌립니다.

# %%
on = with_mario(lab.exact("a pod made not ready by hand, which only its own kubelet can do on a live cluster"))
victim = mario_pods(on)[0]
ip = on.cluster.pod(victim).pod_ip
on.set_ready(victim, False)  # what the kubelet does after failureThreshold failed probes
try:
    ep_after = on.sh(CP, "kubectl get endpoints svc-mario")
    ep_yaml = on.sh(CP, "kubectl get endpoints svc-mario -o yaml")
    after = slice_conditions(on)
    command, chain, jumps = service_rules(on, W1)
    runs = on.run("mypc", f"{W1}:{NP}", n=300, seed=8)
finally:
    on.set_ready(victim, True)
print(f"$ kubectl get endpoints svc-mario\n{ep_after}\n$ kubectl get endpoints svc-mario -o yaml\n{ep_yaml}")
print(f"{victim} in the slice: {after[victim]}")
print(f"$ {command}   (on {W1})\n{chain}")
print("mypc -> worker nodePort:", experiments.outcomes(runs).to_dict(), runs["endpoint_pod"].value_counts().to_dict())
experiments.claim(
    f"{ip}:8080" not in ep_after and f"notReadyAddresses:\n  - ip: {ip}" in ep_yaml
    and after[victim] == {"ready": False, "serving": False, "terminating": False}
    and all(after[p]["ready"] for p in after if p != victim)
    and jumps == 2 and (runs["outcome"] == "ok").all() and victim not in set(runs["endpoint_pod"]),
    f"{victim} ({ip}) left the ENDPOINTS column for notReadyAddresses; its slice endpoint stayed, ready: false, "
    f"serving: false; svc-mario's chain kept 2 endpoints ({on.proxy_mode} mode), and none of 300 connections reached it",
    f"the not-ready pod's objects changed: slice {after.get(victim)}, endpoints in the chain {jumps}, "
    f"pods reached {runs['endpoint_pod'].value_counts().to_dict()}",
)

# %% [markdown] lang="en"
# The slice keeps the endpoint because it still describes a pod the Service selects: a consumer
# that wants not-ready pods (a headless Service with `publishNotReadyAddresses`, a monitoring tool)
# reads them there, and when the probe passes again only the condition flips back. kube-proxy
# writes a `KUBE-SEP-…` jump only for `ready` endpoints (when none is ready, it falls back to the
# `serving` and `terminating` ones, chapter 07's rolling-update case).

# %% [markdown] lang="ko"
# 슬라이스가 엔드포인트를 남겨 두는 이유는 그것이 여전히 서비스가 선택하는 파드를 나타내기 때문입니다. 준비되지
# 않은 파드가 필요한 소비자(`publishNotReadyAddresses`를 쓰는 헤드리스 서비스, 모니터링 도구)는 그곳에서 읽고,
# 프로브가 다시 통과하면 조건만 되돌아갑니다. kube-proxy는 `ready`인 엔드포인트에 대해서만 `KUBE-SEP-…` 점프를
# 씁니다(준비된 엔드포인트가 하나도 없으면 `serving`이면서 `terminating`인 엔드포인트로 대신 보냅니다. 롤링
# 업데이트에서 생기는 경우입니다).

# %% [markdown] lang="en"
# ## Before the kubelet notices: what clients see
#
# Between the moment an app breaks and the moment its probe has failed `failureThreshold` times,
# the pod is still ready, so kube-proxy still sends it its share. With this probe that is up to
# 3 × 5 s + 1 s = 16 s (the app breaks right after a passing probe; three failing probes 5 s apart
# follow, the last may wait 1 s for its timeout), plus about a second until the EndpointSlice and
# kube-proxy follow. **Without** a probe, nothing ever takes the pod out: the kubelet only knows the
# container is running.
#
# The cell breaks one pod's app (`lab.break_pod`: it answers HTTP 500, as a crashed backend behind a
# web server would) and opens 600 connections within a fraction of a second, well inside one probe
# period: what every client sees during the detection window, and forever without a probe. (The
# claim's band, "± 10%", is how far a random one-in-three split of 600 connections strays by chance:
# five standard deviations, `experiments.noise`, chapter 04.)

# %% [markdown] lang="ko"
# ## kubelet이 알아차리기 전: 클라이언트가 보는 것
#
# 앱이 고장 난 순간부터 그 프로브가 `failureThreshold`번 실패할 때까지 파드는 여전히 준비 상태이므로,
# kube-proxy는 계속 그 파드에 몫을 보냅니다. 이 프로브로는 최대 3 × 5초 + 1초 = 16초입니다(앱이 프로브가 통과한
# 직후에 고장 나고, 5초 간격으로 실패하는 프로브 세 번이 이어지며, 마지막 프로브는 시간 초과까지 1초를 기다릴 수
# 있습니다). 여기에 엔드포인트슬라이스와 kube-proxy가 따라오기까지 1초 정도가 더해집니다. 프로브가 **없으면**
# 아무것도 그 파드를 빼지 않습니다. kubelet은 컨테이너가 실행 중이라는 것만 압니다.
#
# 셀은 파드 하나의 앱을 고장 내고(`lab.break_pod`: 웹 서버 뒤의 백엔드가 죽었을 때처럼 HTTP 500으로 응답합니다),
# 1초도 안 되는 동안, 즉 프로브 주기 하나 안에서 연결 600개를 엽니다. 감지 시간 동안, 그리고 프로브가 없으면
# 영원히, 모든 클라이언트가 보는 것입니다. (확인의 허용 범위 "± 10%"는 연결 600개를 3분의 1 확률로 무작위로 나눌
# 때 우연만으로 벗어날 수 있는 폭입니다. 표준 편차의 다섯 배, `experiments.noise`, 04장.)

# %%
on = with_mario(lab.exact("a broken app and an exact error count, which a live cluster's shared traffic cannot give"))
victim = mario_pods(on)[0]
on.break_pod(victim)
try:
    broken_run = on.run("mypc", f"{W1}:{NP}", n=600, seed=8)
    still = slice_conditions(on)[victim]
    code = on.sh(CP, f"curl -s -o /dev/null -w '%{{http_code}}' {on.cluster.pod(victim).pod_ip}:8080")
finally:
    on.break_pod(victim, False)
failed = broken_run[broken_run["outcome"] != "ok"]
share = len(failed) / len(broken_run)
print(f"$ curl -s -o /dev/null -w '%{{http_code}}' {on.cluster.pod(victim).pod_ip}:8080   ->  {code}")
print(f"{victim} in the slice while broken: {still}; failed: {len(failed)}/600 ({share:.1%}), "
      f"all from {sorted(set(failed['endpoint_pod']))}")
experiments.claim(
    code == "500" and still["ready"] and set(failed["endpoint_pod"]) == {victim}
    and abs(share - 1 / 3) <= experiments.noise(1 / 3, 600),
    f"the broken pod stays ready until its probe fails: {share:.1%} of the connections (1/3 ± "
    f"{experiments.noise(1 / 3, 600):.0%}) got its HTTP 500, all from {victim}",
    f"the broken pod's share changed: {share:.1%}, failed from {sorted(set(failed['endpoint_pod']))}, ready {still}",
)

# %% [markdown] lang="en"
# ## The timeline: from a broken app to kube-proxy's sync
#
# The chain of events the kubelet starts: the app breaks → the probe fails `failureThreshold` times,
# `periodSeconds` apart → the kubelet sets the pod's `Ready` to `False` → the EndpointSlice
# controller writes `ready: false` → every node's kube-proxy syncs (at most once per
# `minSyncPeriod`, 1 s) and the pod's `KUBE-SEP-…` jump is gone.
#
# **Predict** before you run the next cell: with mario's probe (`periodSeconds: 5`,
# `failureThreshold: 3`, `timeoutSeconds: 1`), at most how many seconds pass between the app
# breaking and `Ready=False`? (`kslab.kubelet.detection_window(spec)` computes it; try by hand first.)

# %% [markdown] lang="ko"
# ## 타임라인: 고장 난 앱에서 kube-proxy의 동기화까지
#
# kubelet이 시작하는 사건의 사슬입니다. 앱이 고장 남 → 프로브가 `periodSeconds` 간격으로 `failureThreshold`번
# 실패 → kubelet이 파드의 `Ready`를 `False`로 바꿈 → 엔드포인트슬라이스 컨트롤러가 `ready: false`를 씀 → 모든
# 노드의 kube-proxy가 동기화하고(`minSyncPeriod`, 1초에 많아야 한 번) 그 파드의 `KUBE-SEP-…` 점프가 사라짐.
#
# 다음 셀을 실행하기 전에 **예측**해 보세요. mario의 프로브(`periodSeconds: 5`, `failureThreshold: 3`,
# `timeoutSeconds: 1`)로는 앱이 고장 난 뒤 `Ready=False`가 될 때까지 최대 몇 초가 걸릴까요?
# (`kslab.kubelet.detection_window(spec)`가 계산합니다. 먼저 손으로 해 보세요.)

# %% [markdown] lang="en" hint="ch08.detection"
# 1. The worst case: the app breaks right after a probe passed. The kubelet needs failureThreshold failing probes in
#    a row, one every periodSeconds.
# 2. Count 3 probes 5 s apart from the moment of breaking, and let the last one take its whole timeoutSeconds (1 s)
#    before it counts as failed; `kslab.kubelet.detection_window(spec)` confirms.

# %% [markdown] lang="ko" hint="ch08.detection"
# 1. 최악의 경우는 프로브가 통과한 직후에 애플리케이션이 망가질 때입니다. kubelet은 periodSeconds마다 한 번씩, failureThreshold번 연속 실패해야 합니다.
# 2. 망가진 시점부터 5초 간격의 프로브 3번을 세고, 마지막 프로브가 실패로 판정되기까지 timeoutSeconds(1초)를 다 쓴다고 보세요.
#    `kslab.kubelet.detection_window(spec)`로 확인할 수 있습니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # seconds
# EXERCISE-END
answer = 3 * 5 + 1  # the app breaks right after a passing probe: 3 failing probes 5 s apart, the last may take 1 s to time out
kslab.check.ch08.detection(answer)

# %% [markdown] lang="en"
# The experiment: `mypc` opens 10 connections a second for 30 s through a worker's nodePort while
# the clock runs (`lab.timeline`); at 5 s the cell breaks one pod's app. `lab.lifecycle_frame()`
# lists what the kubelet, the EndpointSlice controller and each kube-proxy did meanwhile. The chart
# shows the connections per pod per second, the failed ones in red, and each step as a vertical
# line. On sim the clock is simulated; on netns it is real, the kubelet's probes are real HTTP GETs
# from the node's namespace to the pod's server, and the cell takes 30 s. The cell heals the app at
# the end and waits until the pod is ready again.

# %% [markdown] lang="ko"
# 실험입니다. 시계가 흐르는 동안(`lab.timeline`) `mypc`가 워커의 노드 포트로 1초에 10개씩 30초 동안 연결을 열고,
# 5초에 셀이 파드 하나의 앱을 고장 냅니다. `lab.lifecycle_frame()`은 그사이 kubelet, 엔드포인트슬라이스
# 컨트롤러, 각 kube-proxy가 한 일을 나열합니다. 차트는 파드별 초당 연결 수, 빨간색으로 실패한 연결, 그리고 각
# 단계를 세로선으로 보여 줍니다. sim에서는 시계가 시뮬레이션이고, netns에서는 시계가 실제이며 kubelet의 프로브는
# 노드의 네임스페이스에서 파드의 서버로 보내는 실제 HTTP GET이고, 셀은 30초가 걸립니다. 셀은 끝날 때 앱을 고치고
# 파드가 다시 준비될 때까지 기다립니다.

# %%
from kslab import kubelet

on = with_mario(lab.exact("a pod's app broken at a chosen instant, which kslab cannot do to a live cluster's pod"))
probe = json.loads(on.sh(CP, "kubectl get deploy mario -o jsonpath={.spec.template.spec.containers[0].readinessProbe}"))
spec = kubelet.ProbeSpec.from_container({"name": "mario", "readinessProbe": probe}, "mario")  # with the API server's defaults
best, worst = kubelet.detection_window(spec)
victim, BREAK = mario_pods(on)[0], 5.0
start = on.cluster.clock
try:
    tl = on.timeline("mypc", f"{W1}:svc-mario", seconds=30, rate=10, actions=[(BREAK, lambda l: l.break_pod(victim))], seed=8)
    life = on.lifecycle_frame(since=start)
finally:
    on.break_pod(victim, False)
    views.wait_ready(on, "app=mario")
life = life[life["t"] > start]  # what happened during the timeline (earlier cells' events may share its first instant)
life = life.assign(t=life["t"] - start)  # seconds since the timeline began, as tl["t"]
charts.readiness_timeline(tl, life).show()
mine = life[(life["pod"] == victim) & (life["kind"] != "probe")]
print(mine[["t", "kind", "detail"]].to_string(index=False))
not_ready_t = float(life.loc[(life["kind"] == "not-ready") & (life["pod"] == victim), "t"].min())
synced_t = float(life.loc[(life["kind"] == "synced") & (life["t"] >= not_ready_t), "t"].min())
failed = tl[tl["outcome"] != "ok"]
window = tl[(tl["t"] >= BREAK) & (tl["t"] < synced_t)]
late = tl[tl["t"] > synced_t + 0.3]  # after the sync (a real clock's client batches 0.2 s of connections)
share = len(failed) / max(len(window), 1)
print(f"predicted Ready=False {best:g}-{worst:g} s after the break; measured {not_ready_t - BREAK:.1f} s; "
      f"kube-proxy synced {synced_t - not_ready_t:.1f} s later; {len(failed)} of the {len(window)} connections in between "
      f"failed ({share:.0%}), none after")
experiments.claim(
    best <= not_ready_t - BREAK <= worst + 0.5 and synced_t - not_ready_t <= 1.5
    and set(failed["endpoint_pod"].dropna()) <= {victim} and (failed["t"] >= BREAK).all() and (failed["t"] <= synced_t + 0.3).all()
    and victim not in set(late["endpoint_pod"]) and (late["outcome"] == "ok").all()
    and abs(share - 1 / 3) <= experiments.noise(1 / 3, max(len(window), 1)),
    f"{victim} went Ready=False {not_ready_t - BREAK:.1f} s after its app broke (the window is {best:g}-{worst:g} s), "
    f"kube-proxy synced {synced_t - not_ready_t:.1f} s later (minSyncPeriod 1 s); until then 1 connection in 3 failed "
    f"({share:.0%}), afterwards none reached it",
    f"the timeline changed: Ready=False at {not_ready_t - BREAK:.1f} s after the break, synced at {synced_t:.1f}, "
    f"failed {len(failed)} ({share:.0%}) from {sorted(set(failed['endpoint_pod'].dropna()))}, late to victim "
    f"{int((late['endpoint_pod'] == victim).sum())}",
)

# %% [markdown] lang="en"
# Read the lifecycle: the probe failures come `periodSeconds` apart; the third sets `Ready=False`;
# the slice follows at once (the controller's batch period is 0) and kube-proxy at its next
# allowed sync. On a real cluster the kubelet reports to the API server, and the controller and
# kube-proxy learn it through their watches: about a second more.

# %% [markdown] lang="ko"
# 라이프사이클을 읽어 보세요. 프로브 실패는 `periodSeconds` 간격으로 옵니다. 세 번째 실패가 `Ready=False`를
# 만듭니다. 슬라이스는 곧바로 따라오고(컨트롤러의 배치 기간은 0), kube-proxy는 허용된 다음 동기화에서 따라옵니다.
# 실제 클러스터에서는 kubelet이 API 서버에 보고하고, 컨트롤러와 kube-proxy는 감시(watch)로 그것을 알게 되므로
# 1초 정도가 더 걸립니다.

# %% [markdown] lang="en"
# ## Errors before detection: with and without a probe
#
# How many connections fail? Each new connection goes to the broken pod with probability 1/3 (one
# of three ready endpoints) until kube-proxy has dropped it, so at `rate` connections per second
# the prediction is rate × 1/3 × (detection time + sync), between the window's best and worst
# case. Without a probe there is no end. `views.compute_readiness` runs the timeline on a copy of
# the lab; `probe=False` first rolls out the Deployment without its probe (new pods).

# %% [markdown] lang="ko"
# ## 감지 전의 오류: 프로브가 있을 때와 없을 때
#
# 연결은 몇 개나 실패할까요? 새 연결은 kube-proxy가 고장 난 파드를 뺄 때까지 1/3의 확률로(준비된 엔드포인트 세 개 중
# 하나) 그 파드로 갑니다. 그래서 초당 `rate`개의 연결이면 예측은 rate × 1/3 × (감지 시간 + 동기화)이고, 감지 시간
# 범위의 최선과 최악 사이에 있습니다. 프로브가 없으면 끝이 없습니다. `views.compute_readiness`는 실습 환경의
# 복사본에서 타임라인을 실행합니다. `probe=False`는 먼저 프로브 없는 디플로이먼트를 롤아웃합니다(새 파드).

# %%
RATE, SECONDS, BREAK = 10, 40, 5.0
runs = {probe: views.compute_readiness(lab, broken=1, probe=probe, seconds=SECONDS, rate=RATE, break_at=BREAK, seed=8)
        for probe in (True, False)}
with_probe, without = runs[True], runs[False]
SYNC = 1.0  # kube-proxy's minSyncPeriod: the sync after Ready=False comes at most this much later
low, high = RATE / 3 * with_probe.window[0], RATE / 3 * (with_probe.window[1] + SYNC)
in_window = with_probe.df[(with_probe.df["t"] >= BREAK) & (with_probe.df["t"] < with_probe.removed_at)]
tail = without.df[without.df["t"] >= SECONDS - 5]  # the last 5 s without a probe
print(f"with the probe: predicted {low:.0f}-{high:.0f} failed connections (10/s x 1/3 x {with_probe.window[0]:g}-"
      f"{with_probe.window[1] + SYNC:g} s), measured {with_probe.errors}; without: {without.errors} of the "
      f"{int((without.df['t'] >= BREAK).sum())} connections after the break, still {int((tail['outcome'] != 'ok').sum())} "
      f"in the last 5 s")
experiments.claim(
    with_probe.window is not None and without.window is None and not without.not_ready_at
    and low - experiments.noise(1 / 3, len(in_window)) * len(in_window) <= with_probe.errors
    <= high + experiments.noise(1 / 3, len(in_window)) * len(in_window)
    and abs(without.errors / max(int((without.df["t"] >= BREAK).sum()), 1) - 1 / 3)
    <= experiments.noise(1 / 3, int((without.df["t"] >= BREAK).sum()))
    and (tail["outcome"] != "ok").any(),
    f"with the probe {with_probe.errors} connections failed (predicted {low:.0f}-{high:.0f}), then none; without a probe "
    f"{without.errors} failed, a third of all, and they never stop",
    f"the error counts changed: with {views.readiness_summary(with_probe)}; without {views.readiness_summary(without)}",
)

# %% [markdown] lang="en"
# ## Explore: the readiness panel
#
# Break 0-3 pods (and let them heal halfway), change the probe's `periodSeconds` and
# `failureThreshold`, or remove the probe. Each move runs the timeline above on its own copy of the
# lab (a changed probe rolls out there first: the Deployment gets new pods). The line under the
# chart compares the predicted window with what happened. Try: `failureThreshold` 1 (fast, but one
# slow answer takes a healthy pod out); all 3 pods broken (no ready endpoint left: every connection
# fails); no probe (the errors never stop).

# %% [markdown] lang="ko"
# ## 탐색: 준비성 패널
#
# 파드를 0-3개 고장 내고(중간에 고쳐지게 할 수도 있습니다), 프로브의 `periodSeconds`와 `failureThreshold`를
# 바꾸거나 프로브를 없애 보세요. 컨트롤을 움직일 때마다 패널은 자기만의 실습 환경 복사본에서 위의 타임라인을
# 실행합니다(바뀐 프로브는 먼저 그곳에서 롤아웃됩니다. 디플로이먼트가 새 파드를 받습니다). 차트 아래의 줄은 예측한
# 시간 범위와 실제로 일어난 일을 비교합니다. 해 볼 것: `failureThreshold` 1(빠르지만, 느린 응답 한 번에 건강한
# 파드도 빠집니다), 파드 3개 모두 고장(준비된 엔드포인트가 없어 모든 연결이 실패), 프로브 없음(오류가 멈추지 않음).

# %%
import gc

panel = views.ReadinessPanel(lab.exact("timelines on copies at every move, which a live cluster's own clock cannot give"))
gc.freeze()  # keeps the controls responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# The claim below does not read the panel: it runs `compute_readiness`, the function behind it,
# with two pods broken.

# %% [markdown] lang="ko"
# 아래의 확인은 패널을 읽지 않습니다. 패널 뒤의 함수 `compute_readiness`를 파드 두 개를 고장 낸 채로 실행합니다.

# %%
two = views.compute_readiness(lab, broken=2, seconds=30, rate=10, break_at=5)
print(views.readiness_summary(two))
experiments.claim(
    len(two.not_ready_at) == 2 and all(two.window[0] <= t - 5 <= two.window[1] + 0.5 for t in two.not_ready_at.values())
    and two.removed_at is not None
    and not (two.df[two.df["t"] > two.removed_at + 0.3]["endpoint_pod"].isin(two.broken)).any(),
    f"two broken pods: both Ready=False within the window {two.window[0]:g}-{two.window[1]:g} s, kube-proxy synced at "
    f"{two.removed_at:.1f} s, after which only the healthy pod answered",
    f"compute_readiness changed: {views.readiness_summary(two)}",
)

# %% [markdown] lang="en"
# ## A rolling update: terminating endpoints
#
# `kubectl set image deployment/mario mario=pengbai/docker-supermario:v2` starts a rolling update
# (`lab.rollout`): a new ReplicaSet's pods come up (at most `maxSurge` = 25% extra, rounded up: 1),
# old ones go (at most `maxUnavailable` = 25%, rounded down: 0 may be missing). A deleted pod is not
# gone at once: until its containers have exited, at most `terminationGracePeriodSeconds` (10 s
# here; kslab's pods use all of it, like an app that ignores SIGTERM), it is **terminating**, and its
# endpoint stays in the slice with `ready: false`, `serving` = its readiness, `terminating: true`.
# kube-proxy sends new connections only to `ready` endpoints; the terminating ones are its fallback
# when no endpoint is ready at all.
#
# The cell starts the update, then every second reads the slices, `kubectl rollout status` and 50
# connections through a worker's nodePort, until only the new pods are left.

# %% [markdown] lang="ko"
# ## 롤링 업데이트: 종료 중인 엔드포인트
#
# `kubectl set image deployment/mario mario=pengbai/docker-supermario:v2`는 롤링 업데이트를 시작합니다
# (`lab.rollout`). 새 레플리카셋(ReplicaSet)의 파드가 올라오고(많아야 `maxSurge` = 25%, 올림해서 1개 더),
# 옛 파드가 내려갑니다(많아야 `maxUnavailable` = 25%, 내림해서 0개가 빌 수 있음). 삭제된 파드는 바로 사라지지
# 않습니다. 컨테이너가 끝날 때까지, 길어야 `terminationGracePeriodSeconds`(여기서는 10초. kslab의 파드는 SIGTERM을
# 무시하는 앱처럼 이 시간을 다 씁니다) 동안 **종료 중**(terminating)이며, 그 엔드포인트는
# `ready: false`, `serving` = 준비 상태, `terminating: true`로 슬라이스에 남습니다. kube-proxy는 새 연결을
# `ready`인 엔드포인트에만 보냅니다. 종료 중인 엔드포인트는 준비된 엔드포인트가 하나도 없을 때의 대비책입니다.
#
# 셀은 업데이트를 시작한 다음, 새 파드만 남을 때까지 1초마다 슬라이스, `kubectl rollout status`, 그리고 워커의
# 노드 포트를 거친 연결 50개를 읽습니다.

# %%
on = with_mario(lab.exact("a rolling update stepped by kslab's Deployment controller, which a live cluster runs on its own"))
old = set(mario_pods(on))
try:
    events = on.rollout("mario", image="pengbai/docker-supermario:v2")
    snaps = []
    for second in range(60):
        conds = slice_conditions(on)
        got = on.run("mypc", f"{W1}:{NP}", n=50, seed=second)
        snaps.append(dict(t=second, ready=sum(c["ready"] for c in conds.values()),
                          terminating=sum(bool(c.get("terminating")) for c in conds.values()),
                          serving_terminating=sum(bool(c.get("terminating")) and bool(c["serving"]) for c in conds.values()),
                          ok=int((got["outcome"] == "ok").sum()), to_terminating=int(got["endpoint_pod"].isin(
                              [p for p, c in conds.items() if c.get("terminating")]).sum()),
                          status=on.rollout_status("mario")))
        if not old & set(conds) and all(c["ready"] for c in conds.values()) and len(conds) == 3:
            break
        on.advance(1)
    final = slice_conditions(on)
finally:
    fresh(on)  # back to the lab as made (the old pods, the same names), the add-on again
steps = pd.DataFrame(snaps)
print("\n".join(events[:4]) + ("\n..." if len(events) > 4 else ""))
print(steps.to_string(index=False))
experiments.claim(
    steps["terminating"].max() >= 1 and (steps["serving_terminating"] <= steps["terminating"]).all()
    and (steps["ready"] >= 1).all() and (steps["ok"] == 50).all() and (steps["to_terminating"] == 0).all()
    and len(final) == 3 and not old & set(final) and all(c["ready"] for c in final.values())
    and "successfully rolled out" in steps["status"].iloc[-1],
    f"during the update up to {steps['terminating'].max()} endpoints were terminating (ready: false, still in the slice) "
    f"for the grace period; every connection was answered, none by a terminating pod; after {steps['t'].iloc[-1]} s "
    f"only the 3 new pods are left, ready",
    f"the rolling update changed:\n{steps.to_string()}",
)

# %% [markdown] lang="en"
# ## Why kube-proxy watches EndpointSlices
#
# Every kube-proxy (one per node) **watches** the API server: it receives every changed object
# whole. The Endpoints object of a Service is one object with every address, so one pod's change
# sends all of it to every node. An EndpointSlice holds at most 100 endpoints
# (`--max-endpoints-per-slice`, kube-controller-manager's flag, at most 1000); a change rewrites only
# the slice of that pod. The study's note says it: "kube-proxy had to watch every endpoint each time".
#
# First the slices: `mario` scaled to 250 pods. The cell does it on a copy of the lab
# (`lab.copy()`, always on the simulator: on a real kernel 250 pods would be 250 namespaces).

# %% [markdown] lang="ko"
# ## kube-proxy가 엔드포인트슬라이스를 감시하는 이유
#
# 모든 kube-proxy(노드마다 하나)는 API 서버를 **감시**(watch)합니다. 바뀐 오브젝트를 통째로 받습니다. 서비스의
# 엔드포인트 오브젝트는 모든 주소를 담은 오브젝트 하나이므로, 파드 하나가 바뀌어도 그 전체가 모든 노드로
# 갑니다. 엔드포인트슬라이스는 엔드포인트를 최대 100개 담습니다(kube-controller-manager의 플래그
# `--max-endpoints-per-slice`, 최대 1000). 변경은 그 파드가 든 슬라이스만 다시 씁니다. 스터디 노트의 "kube-proxy가
# 매번 모든 endpoint를 watch 해야한다"가 이 이야기입니다.
#
# 먼저 슬라이스입니다. `mario`를 파드 250개로 늘립니다. 셀은 실습 환경의 복사본에서 실행합니다(`lab.copy()`는
# 언제나 시뮬레이터입니다. 실제 커널에서 파드 250개는 네임스페이스 250개입니다).

# %%
big = with_mario(lab.copy())
big.scale("mario", 250)
listing = big.sh(CP, "kubectl get endpointslices -l kubernetes.io/service-name=svc-mario")
items = json.loads(big.sh(CP, "kubectl get endpointslices -l kubernetes.io/service-name=svc-mario -o json"))["items"]
sizes = sorted(len(s["endpoints"]) for s in items)
print(f"$ kubectl scale deploy mario --replicas 250   (on a copy)\n"
      f"$ kubectl get endpointslices -l kubernetes.io/service-name=svc-mario\n{listing}")
experiments.claim(
    sizes == [50, 100, 100] and all(s["metadata"]["labels"]["kubernetes.io/service-name"] == "svc-mario" for s in items),
    f"250 endpoints in {len(items)} slices of {sizes} endpoints, each labelled kubernetes.io/service-name=svc-mario",
    f"the slices changed: {sizes}",
)

# %% [markdown] lang="en"
# Now the cost of one change. `compute_watch_cost` scales `mario` on copies to 3, 100, 250 and 300
# pods, makes one pod not ready, and measures, from the objects as `kubectl get -o json` prints
# them (compact JSON), what every kube-proxy receives: the whole Endpoints object, or the one slice
# that changed. (kube-proxy asks for protobuf, which is smaller per object but grows the same way.)

# %% [markdown] lang="ko"
# 이제 변경 하나의 비용입니다. `compute_watch_cost`는 복사본에서 `mario`를 파드 3, 100, 250, 300개로 늘리고, 파드
# 하나를 준비되지 않은 상태로 만든 다음, 모든 kube-proxy가 받는 양을 잽니다. `kubectl get -o json`이 출력하는
# 오브젝트(공백 없는 JSON)로 셉니다. 엔드포인트 오브젝트 전체, 또는 바뀐 슬라이스 하나입니다. (kube-proxy는
# protobuf로 받는데, 오브젝트마다 더 작지만 같은 식으로 커집니다.)

# %%
cost = views.compute_watch_cost(lab, (3, 100, 250, 300))
charts.watch_cost(cost).show()
print(cost[["replicas", "slices", "endpoints_entries", "slice_entries", "endpoints_bytes", "slice_bytes",
            "watchers"]].to_string(index=False))
per_entry = cost["endpoints_bytes"] / cost["endpoints_entries"]
biggest_slice = int(cost["slice_bytes"].max())
at_300 = cost.set_index("replicas").loc[300]
print(f"5,000 pods, 5,000 nodes: Endpoints {per_entry.iloc[1:].mean() * 5000 / 1e3:.0f} KB x 5,000 watchers = "
      f"{per_entry.iloc[1:].mean() * 5000 * 5000 / 1e9:.1f} GB per change; one slice {biggest_slice / 1e3:.0f} KB x 5,000 = "
      f"{biggest_slice * 5000 / 1e6:.0f} MB")
experiments.claim(
    (cost["endpoints_entries"] == cost["replicas"]).all() and (cost["slice_entries"] <= 100).all()
    and per_entry.iloc[1:].between(per_entry.iloc[1:].mean() * 0.9, per_entry.iloc[1:].mean() * 1.1).all()
    and at_300["endpoints_bytes"] > 1.5 * at_300["slice_bytes"] and cost["slices"].tolist() == [1, 1, 3, 3],
    f"the Endpoints object grows by about {per_entry.iloc[1:].mean():.0f} bytes per pod ({int(at_300['endpoints_bytes'])} "
    f"bytes at 300 pods), sent whole to each of the {int(at_300['watchers'])} kube-proxies on every change; a change "
    f"rewrites one slice of at most 100 endpoints ({biggest_slice} bytes at most)",
    f"the watch cost changed:\n{cost.to_string()}",
)

# %% [markdown] lang="en"
# Scale that up to the cluster the EndpointSlice design was made for (KEP-752): 5,000 pods behind
# one Service, 5,000 nodes. At about 170 bytes per address the Endpoints object is some 850 KB;
# each pod change (a rolling update changes every pod, several times) sends it to 5,000 watchers:
# over 4 GB per change. The slice that changed is at most ~28 KB: about 140 MB. That was the
# problem before slices; today the Endpoints controller stops at 1000 addresses (the rest are cut,
# annotated `endpoints.kubernetes.io/over-capacity: truncated`), so for such a Service the Endpoints
# object is incomplete as well as large. Slices have no such limit.

# %% [markdown] lang="ko"
# 이것을 엔드포인트슬라이스 설계(KEP-752)가 염두에 둔 클러스터로 키워 보겠습니다. 서비스 하나 뒤에 파드 5,000개,
# 노드 5,000개입니다. 주소 하나에 약 170바이트이면 엔드포인트 오브젝트는 약 850KB입니다. 파드가 바뀔 때마다(롤링
# 업데이트는 모든 파드를 여러 번 바꿉니다) 이것이 감시자 5,000개에게 갑니다. 변경 하나에 4GB가 넘습니다. 바뀐
# 슬라이스는 많아야 약 28KB이므로 약 140MB입니다. 이것이 슬라이스 이전의 문제였습니다. 지금은 엔드포인트
# 컨트롤러가 주소 1000개에서 멈추므로(나머지는 잘리고 `endpoints.kubernetes.io/over-capacity: truncated`
# 어노테이션이 붙습니다), 이런 서비스의 엔드포인트 오브젝트는 클 뿐 아니라 불완전하기도 합니다. 슬라이스에는 그런
# 한계가 없습니다.

# %% [markdown] lang="en"
# **Exercise (a new case).** `deploy-echo` (chapter 06's Deployment behind `svc-nodeport`) is scaled
# to 230 pods, and its first pod by name, `sorted(pods)[0]`, becomes not ready. How many endpoint
# entries does that one change send to each kube-proxy (a) watching the Endpoints object, (b)
# watching EndpointSlices? Answer with two numbers. Work on a copy (`lab.copy()`), find the slice
# that holds the pod with `kubectl get endpointslices ... -o json` (`endpoints[].targetRef.name`).

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `deploy-echo`(06장에서 `svc-nodeport` 뒤에 있던 디플로이먼트)를 파드 230개로 늘리고,
# 이름순으로 첫 번째 파드 `sorted(pods)[0]`이 준비되지 않은 상태가 됩니다. 이 변경 하나가 각 kube-proxy에게
# 보내는 엔드포인트 항목은 몇 개일까요? (a) 엔드포인트 오브젝트를 감시할 때, (b) 엔드포인트슬라이스를 감시할 때.
# 숫자 두 개로 답하세요. 복사본(`lab.copy()`)에서 작업하고, 그 파드가 든 슬라이스는 `kubectl get endpointslices
# ... -o json`으로 찾으세요(`endpoints[].targetRef.name`).

# %% [markdown] lang="en" hint="ch08.watch_entries"
# 1. A watcher of the Endpoints object receives the whole object on every change: all the Service's pods. A watcher
#    of EndpointSlices receives only the slice that changed.
# 2. An EndpointSlice holds at most 100 endpoints, so 230 pods are split over several slices; find the slice whose
#    `endpoints[].targetRef.name` holds the pod and count its endpoints.

# %% [markdown] lang="ko" hint="ch08.watch_entries"
# 1. 엔드포인트 객체를 감시하는 쪽은 변경마다 객체 전체, 즉 서비스의 모든 파드를 받습니다. 엔드포인트슬라이스를 감시하는 쪽은 바뀐 슬라이스 하나만 받습니다.
# 2. 엔드포인트슬라이스 하나에는 엔드포인트가 최대 100개 들어가므로 파드 230개는 여러 슬라이스로 나뉩니다. `endpoints[].targetRef.name`에 그 파드가 있는 슬라이스를 찾아
#    엔드포인트 수를 세세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # (entries in the Endpoints object, entries in the changed EndpointSlice)
# EXERCISE-END
echo = lab.copy()
echo.scale("deploy-echo", 230)
first = sorted(echo.pods("app=deploy-websrv"))[0]
echo_slices = json.loads(echo.sh(CP, "kubectl get endpointslices -l kubernetes.io/service-name=svc-nodeport -o json"))["items"]
home = next(s for s in echo_slices if any(ep["targetRef"]["name"] == first for ep in s["endpoints"]))
answer = (230, len(home["endpoints"]))  # Endpoints: every pod, ready or not; the slice: only the pod's own
kslab.check.ch08.watch_entries(answer, lab)

# %% [markdown] lang="en"
# ## On the real kernel
#
# With `KSLAB_BACKEND=netns` (root) the mario pods are real namespaces running kslab's stand-in for
# the image (an HTTP server on 8080 that answers 500 once broken); `lab.sh` runs the real `iptables`
# and `curl`, and the connections are real. The kubelet's readiness probes are real HTTP GETs from
# each node's namespace to its pods, on the real clock: the timeline takes its 30 s, and its claim
# compares the measured time to `Ready=False` with the predicted window. The panel, the error counts,
# the 250-pod slices and the watch cost run on simulator copies everywhere. On kind the Deployment,
# the Service, the slices and kube-proxy's rules are the cluster's own; a pod made not ready by hand,
# a broken app, the timeline and the rolling update run on a simulator twin, and say so.

# %% [markdown] lang="ko"
# ## 실제 커널에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 mario 파드는 이미지 대신 kslab의 대역 서버(8080에서 응답하고, 고장 나면
# 500으로 응답하는 HTTP 서버)를 실행하는 실제 네임스페이스입니다. `lab.sh`는 실제 `iptables`와 `curl`을 실행하고,
# 연결도 실제입니다. kubelet의 준비성 프로브는 각 노드의 네임스페이스에서 그 파드로 보내는 실제 HTTP GET이며,
# 실제 시계로 돌아갑니다. 타임라인은 30초가 걸리고, 그 확인은 측정한 `Ready=False`까지의 시간을 예측한 범위와
# 비교합니다. 패널, 오류 수, 파드 250개의 슬라이스와 감시 비용은 어디서나 시뮬레이터 복사본에서 실행됩니다.
# kind에서는 디플로이먼트, 서비스, 슬라이스, kube-proxy의 규칙이 클러스터 자신의 것입니다. 직접 준비되지 않게 만든
# 파드, 고장 난 앱, 타임라인, 롤링 업데이트는 시뮬레이터 복제본에서 실행되며, 그렇다고 알려 줍니다.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A readiness probe (준비성 프로브) decides the pod's `Ready` condition: `failureThreshold` failures
#   in a row, `periodSeconds` apart, make it `False`; the container keeps running. Until then a
#   broken app keeps its share of the traffic (here up to 16 s, plus about a second for the slice
#   and kube-proxy); without a probe, forever.
# - A not-ready pod stays in its EndpointSlice (엔드포인트슬라이스) with `ready: false, serving: false`,
#   and moves to `notReadyAddresses` in the legacy Endpoints (엔드포인트) object; kube-proxy writes
#   `KUBE-SEP-…` jumps only for ready endpoints. Slices are `discovery.k8s.io/v1` (the study's
#   `v1beta1` was removed in 1.25); Endpoints are deprecated since 1.33. During a rolling update the
#   old pods' endpoints stay for the grace period as `terminating: true`, `ready: false`.
# - kube-proxy watches EndpointSlices: at most 100 endpoints each, so one pod's change sends one
#   small slice to every node instead of the Service's whole Endpoints object.
#
# Next: chapter 09 uses the slices' `hints` to keep traffic in its zone (study 2.8).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 준비성 프로브(readiness probe)가 파드의 `Ready` 조건을 정합니다. `periodSeconds` 간격으로 `failureThreshold`번
#   연속 실패하면 `False`가 되고, 컨테이너는 계속 실행됩니다. 그때까지 고장 난 앱은 트래픽의 제 몫을 계속 받습니다
#   (여기서는 최대 16초, 여기에 슬라이스와 kube-proxy를 위해 1초 정도). 프로브가 없으면 영원히 받습니다.
# - 준비되지 않은 파드는 엔드포인트슬라이스(EndpointSlice)에 `ready: false, serving: false`로 남고, 예전 방식의
#   엔드포인트(Endpoints) 오브젝트에서는 `notReadyAddresses`로 옮겨집니다. kube-proxy는 준비된 엔드포인트에
#   대해서만 `KUBE-SEP-…` 점프를 씁니다. 슬라이스는 `discovery.k8s.io/v1`입니다(스터디의 `v1beta1`은 1.25에서
#   제거되었습니다). 엔드포인트는 1.33부터 더 이상 사용되지 않습니다. 롤링 업데이트 중에 옛 파드의 엔드포인트는
#   유예 기간 동안 `terminating: true`, `ready: false`로 남습니다.
# - kube-proxy는 엔드포인트슬라이스를 감시합니다. 슬라이스 하나에 엔드포인트가 최대 100개이므로, 파드 하나의
#   변경은 서비스의 엔드포인트 오브젝트 전체 대신 작은 슬라이스 하나만 모든 노드로 보냅니다.
#
# 다음 장: 09장은 슬라이스의 `hints`로 트래픽을 그 존(zone) 안에 머물게 합니다(스터디 2.8).
