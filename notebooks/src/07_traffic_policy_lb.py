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
# # 07 · externalTrafficPolicy and LoadBalancer (외부 트래픽 정책과 로드 밸런서)
#
# Study notes 2.5 (`externalTrafficPolicy: Local`) and 2.6 (what NodePort still lacks, and how a
# LoadBalancer's health checks answer it). By the end you will be able to:
#
# 1. predict where `externalTrafficPolicy: Local` sends a connection from outside, and which client
#    address the pod sees (the client's own: no SNAT);
# 2. read the rule change: `KUBE-EXT-…` jumps to `KUBE-SVL-…`, which has a `KUBE-SEP-…` jump only for
#    the node's **own** pods, and the "has no local endpoints" DROP on a node without one;
# 3. read a node's health check answer on the Service's `healthCheckNodePort` (200 or 503, with
#    `localEndpoints`) and explain how a load balancer uses it to send traffic only to nodes with a pod;
# 4. explain the imbalance when pods are spread unevenly, and restrict clients with
#    `loadBalancerSourceRanges`;
# 5. choose between `Cluster` and `Local`.
#
# **What this chapter uses** (besides chapter 00's API card: `lab.sh`, `lab.run`, `lab.trace`,
# `lab.cluster`, `lab.reset`, `lab.copy`, `lab.exact`, `experiments.claim`, `kslab.check`):
#
# - `lab.patch_service(name, external_traffic_policy="Local")` (and `load_balancer_source_ranges=[...]`):
#   `kubectl patch` of the Service; the cells patch it back when they finish;
# - `lab.place(deployment, {node: n, ...})`: the Deployment's pods, exactly `n` on each node, undone by
#   `lab.reset()`. The study never does this (it scales and lets the scheduler spread the pods); kslab
#   binds the pods to their nodes (`spec.nodeName`) to make an uneven placement in one step. On a real
#   cluster you would get it with one Deployment per node and a `nodeSelector`, or with node affinity;
# - `lab.set_ready(pod, False)`: what the kubelet does when a readiness probe fails (chapter 04);
# - `lab.lb_status("svc-lb")`: the load balancer in front of `svc-lb`: the status each node's health
#   check answered and the nodes it sends to; `lab.advance(seconds)`: time passes (the LB probes again);
# - `kslab.healthcheck.service_health(namespace, name, local_endpoints)`: kube-proxy's health check
#   answer, byte for byte, as upstream's `pkg/proxy/healthcheck` writes it;
# - `views.TrafficPolicyPanel` and `views.compute_traffic_policy(lab, policy, placement, entry,
#   connections)`: the panel of this chapter and the experiment behind it (on a copy of the lab);
#   `charts.health_table`, `charts.ingress_sankey`, `charts.policy_bars`: its charts.
#
# The set-up cell below adds `svc-lb` and defines `fresh(lab)`: `lab.reset()` (the study's lab as
# made), then `svc-lb` again. The cells leave the lab as they found it (they patch the Service back or
# end with `fresh`); if a cell stops halfway, run `fresh(lab)` yourself.
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# # 07 · 외부 트래픽 정책과 로드 밸런서 (externalTrafficPolicy and LoadBalancer)
#
# 스터디 노트 2.5(`externalTrafficPolicy: Local`)와 2.6(NodePort에 아직 부족한 점과, 로드 밸런서(LoadBalancer)의
# 헬스 체크(health check)가 그것을 어떻게 메우는지)에 해당합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 외부 트래픽 정책(externalTrafficPolicy)이 `Local`일 때 밖에서 온 연결이 어디로 가는지, 파드(Pod)가 어떤
#    클라이언트 주소를 보는지(클라이언트 자신의 주소: SNAT 없음) 예측할 수 있습니다.
# 2. 규칙의 변화를 읽을 수 있습니다. `KUBE-EXT-…`가 `KUBE-SVL-…`로 점프하고, 이 체인에는 노드(node) **자신의**
#    파드로 가는 `KUBE-SEP-…` 점프만 있으며, 로컬 파드가 없는 노드에는 "has no local endpoints" DROP 규칙이 있습니다.
# 3. 서비스(Service)의 헬스 체크 노드 포트(`healthCheckNodePort`)에서 노드가 주는 응답(200 또는 503, 그리고
#    `localEndpoints`)을 읽고, 로드 밸런서가 그것으로 파드가 있는 노드에만 트래픽을 보내는 방법을 설명할 수 있습니다.
# 4. 파드가 노드에 고르지 않게 퍼져 있을 때 생기는 불균형을 설명하고, `loadBalancerSourceRanges`로 클라이언트를
#    제한할 수 있습니다.
# 5. `Cluster`와 `Local` 중 하나를 고를 수 있습니다.
#
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.run`, `lab.trace`, `lab.cluster`, `lab.reset`,
# `lab.copy`, `lab.exact`, `experiments.claim`, `kslab.check` 외에):
#
# - `lab.patch_service(name, external_traffic_policy="Local")`(그리고 `load_balancer_source_ranges=[...]`):
#   서비스의 `kubectl patch`입니다. 셀은 끝날 때 서비스를 원래대로 되돌립니다.
# - `lab.place(deployment, {node: n, ...})`: 디플로이먼트(Deployment)의 파드를 노드마다 정확히 `n`개 두며,
#   `lab.reset()`이 되돌립니다. 스터디는 이렇게 하지 않습니다(레플리카 수만 정하고 배치는 스케줄러에 맡깁니다).
#   kslab은 고르지 않은 배치를 한 번에 만들기 위해 파드를 노드에 직접 묶습니다(`spec.nodeName`). 실제 클러스터에서는
#   노드마다 `nodeSelector`를 준 디플로이먼트를 하나씩 만들거나 노드 어피니티를 써서 같은 배치를 얻습니다.
# - `lab.set_ready(pod, False)`: 준비성 프로브(readiness probe)가 실패할 때 kubelet이 하는 일입니다(04장).
# - `lab.lb_status("svc-lb")`: `svc-lb` 앞의 로드 밸런서입니다. 노드마다 헬스 체크가 돌려준 상태 코드와 로드 밸런서가
#   연결을 보내는 노드를 알려 줍니다. `lab.advance(seconds)`: 시간이 흐릅니다(로드 밸런서가 다시 프로브합니다).
# - `kslab.healthcheck.service_health(namespace, name, local_endpoints)`: kube-proxy의 헬스 체크 응답을 업스트림
#   `pkg/proxy/healthcheck`이 쓰는 그대로, 바이트 단위로 만듭니다.
# - `views.TrafficPolicyPanel`과 `views.compute_traffic_policy(lab, policy, placement, entry, connections)`:
#   이 장의 패널과 그 뒤의 실험입니다(실습 환경의 복사본에서 실행). `charts.health_table`, `charts.ingress_sankey`,
#   `charts.policy_bars`: 그 차트입니다.
#
# 아래의 설정 셀은 `svc-lb`를 추가하고 `fresh(lab)`를 정의합니다. `fresh`는 `lab.reset()`(처음 만든 그대로의
# 스터디 실습 환경) 다음 `svc-lb`를 다시 적용합니다. 셀은 실습 환경을 찾은 그대로 두고 끝납니다(서비스를 되돌리거나
# `fresh`로 끝납니다). 셀이 중간에 멈췄다면 `fresh(lab)`를 직접 실행하세요.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import base64
import hashlib
import re

import plotly.graph_objects as go

import kslab
from kslab import charts, experiments, healthcheck, resources
from kslab.loadbalancer import LB_SETTLE_S

lab = kslab.Lab(seed=7, proxy_mode="iptables")  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
LIVE = not lab.dataplane.exact  # a live cluster (kind): real randomness, shared state, so its claims are statistical
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

CP, W1, W2, W3 = (n.name for n in lab.cluster.nodes)  # myk8s-control-plane, myk8s-worker, -worker2, -worker3
NODES = [CP, W1, W2, W3]
NODE_IP = {n.name: n.internal_ip for n in lab.cluster.nodes}
MYPC = lab.client("mypc").ip  # 172.18.0.100, the external client of the study
NP = lab.cluster.service("svc-nodeport").ports[0].node_port


def chain_name(prefix: str, *parts: str) -> str:
    """kube-proxy's chain name (chapter 01): prefix + the first 16 characters of base32(sha256(parts joined))."""
    return prefix + base64.b32encode(hashlib.sha256("".join(parts).encode()).digest()).decode()[:16]


SVC, SVL, EXT = (chain_name(p, "default/svc-nodeport:svc-webport", "tcp") for p in ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-"))


ECHO = "app=deploy-websrv"  # deploy-echo's pods: lab.pods(ECHO), or lab.pods_per_node(ECHO) (node -> pods)


LB_ADDON = resources.study_lab() / "loadbalancer"  # svc-lb, the LoadBalancer Service of this chapter (not in chapters 00-06)


def with_lb(l):
    """``l`` with svc-lb applied: ``lab.reset()`` goes back to the lab as made, which has no svc-lb. On a
    live cluster without a load balancer controller (its status pending) it is applied again, which
    changes nothing there and lets ``lab.copy()`` give the twin the manifest's VIP."""
    if not any(s.name == "svc-lb" and s.load_balancer_ingress for s in l.cluster.services):
        l.apply(LB_ADDON)
    return l


def fresh(l) -> None:
    """How the cells that place pods end: back to the study's lab as made, svc-lb applied again (the same ports)."""
    l.reset()
    with_lb(l)


with_lb(lab)
lb_svc = lab.cluster.service("svc-lb")
HC = lb_svc.health_check_node_port  # the healthCheckNodePort
PENDING = not lb_svc.load_balancer_ingress  # kind without a load balancer controller: EXTERNAL-IP stays <pending>
lb_side = lab.exact("a cloud load balancer, which kind does not have: EXTERNAL-IP stays <pending>") if PENDING else lab
VIP = f"{lb_side.cluster.service('svc-lb').load_balancer_ingress[0].ip}:{lb_svc.ports[0].port}"  # 172.18.0.200:9000, the VIP
print(f"svc-nodeport: nodePort {NP}; svc-lb: VIP {VIP}, healthCheckNodePort {HC}; nodes {NODE_IP}; echo pods per node: "
      + ", ".join(f"{n}: {len(pods)}" for n, pods in lab.pods_per_node(ECHO).items()))

# %% [markdown] lang="en"
# ## Local: only the node's own pods, and the client's own address
#
# Chapter 06 ended on the study's ♣ point: under the default `externalTrafficPolicy: Cluster`, the
# pod sees the ingress node's address (SNAT), not the client's, so it cannot log who called. With
# `externalTrafficPolicy: Local` (외부 트래픽 정책) a node sends an external connection only to the
# Service's pods **on that node**, without SNAT.
#
# `svc-nodeport` has three echo pods, one on each worker, and none on the control plane.
#
# **Predict** before you run the next cells: with `Local`, `mypc` connects to the **control plane's**
# `IP:nodePort`. What happens?
#
# - (a) a pod on a worker answers and sees the control plane's IP, as under `Cluster`;
# - (b) a pod on a worker answers and sees `mypc`'s IP, 172.18.0.100;
# - (c) no answer: the control plane drops the connection.

# %% [markdown] lang="ko"
# ## Local: 노드 자신의 파드만, 그리고 클라이언트 자신의 주소
#
# 06장은 스터디의 ♣ 항목으로 끝났습니다. 기본값인 `externalTrafficPolicy: Cluster`에서는 파드가 클라이언트의
# 주소가 아니라 연결이 들어온 노드의 주소를 봅니다(SNAT). 그래서 누가 접속했는지 기록할 수 없습니다.
# `externalTrafficPolicy: Local`(외부 트래픽 정책)이면 노드는 외부 연결을 **그 노드에 있는** 서비스의 파드에만
# 보내고, SNAT하지 않습니다.
#
# `svc-nodeport`에는 에코(echo) 파드가 세 개 있고, 워커마다 하나씩 있으며 컨트롤 플레인에는 없습니다.
#
# 다음 셀들을 실행하기 전에 **예측**해 보세요. `Local`에서 `mypc`가 **컨트롤 플레인의** `IP:nodePort`로 접속하면
# 어떻게 될까요?
#
# - (a) 워커의 파드가 응답하고, 그 파드는 `Cluster`에서처럼 컨트롤 플레인의 IP를 봅니다.
# - (b) 워커의 파드가 응답하고, 그 파드는 `mypc`의 IP 172.18.0.100을 봅니다.
# - (c) 응답이 없습니다. 컨트롤 플레인이 연결을 버립니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch07.local_drop")` shows its hints one at a time; once you have checked
# an answer of your own and seen every hint, `kslab.check.solution("ch07.local_drop")` shows the solution. An
# exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch07.local_drop")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch07.local_drop")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch07.local_drop"
# 1. Under Local, a node sends external traffic only to the Service's pods on that same node. How many deploy-echo
#    pods run on the control plane?
# 2. A node with no local endpoint gets a filter rule '... has no local endpoints' -j DROP for the nodePort: what
#    does the client then see?

# %% [markdown] lang="ko" hint="ch07.local_drop"
# 1. Local에서는 노드가 외부 트래픽을 같은 노드에 있는 서비스 파드로만 보냅니다. 컨트롤 플레인에는 deploy-echo 파드가 몇 개 있습니까?
# 2. 로컬 엔드포인트가 없는 노드에는 nodePort에 대해 '... has no local endpoints' -j DROP 필터 규칙이 생깁니다. 그러면 클라이언트는 무엇을 보게 됩니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "c"
kslab.check.ch07.local_drop(answer, lab)

# %% [markdown] lang="en"
# The experiment: `kubectl patch` the Service to `Local` (`lab.patch_service`; the cell prints the
# `kubectl patch` command it stands for), then 200 connections from `mypc` through each node's
# `IP:nodePort`, and the study's `curl` through a worker. The study reads the client address in the
# web pod's log (`kubectl logs`), which `lab.sh` does not run; the chapter reads the echo server's
# answer instead, which carries the same address (`ip`, `connection.remoteAddress`). The cell patches
# the Service back to `Cluster` at the end.

# %% [markdown] lang="ko"
# 실험입니다. 서비스를 `Local`로 `kubectl patch`한 다음(`lab.patch_service`. 셀은 이것이 대신하는 `kubectl
# patch` 명령을 출력합니다), `mypc`에서 각 노드의 `IP:nodePort`로 연결을 200개씩 열고, 스터디처럼 워커를 거쳐
# `curl`합니다. 스터디는 클라이언트 주소를 웹 파드의 로그(`kubectl logs`)에서 읽지만, `lab.sh`는 이 명령을
# 실행하지 않습니다. 이 장은 대신 같은 주소(`ip`, `connection.remoteAddress`)를 담은 에코 서버의 응답을 읽습니다.
# 셀은 끝날 때 서비스를 `Cluster`로 되돌립니다.

# %%
import json

lab.patch_service("svc-nodeport", external_traffic_policy="Local")
try:
    # 200 connections through each worker; 20 through the control plane, each waiting 0.3 s for an answer on a real kernel
    runs = {node: lab.run("mypc", f"{node}:{NP}", n=20 if node == CP else 200, seed=2, timeout=0.3) for node in NODES}
    echo = json.loads(lab.sh("mypc", f"curl -s {NODE_IP[W1]}:{NP}"))
    dropper = lab.sh(CP, "iptables -S KUBE-EXTERNAL-SERVICES | grep 'has no local endpoints'")
    t_cp = lab.trace("mypc", f"{CP}:{NP}")
finally:
    lab.patch_service("svc-nodeport", external_traffic_policy="Cluster")
cluster_seen = lab.run("mypc", f"{W1}:{NP}", n=50, seed=2)  # the same entry under Cluster, for comparison

print("""$ kubectl patch svc svc-nodeport -p '{"spec":{"externalTrafficPolicy":"Local"}}'   (what lab.patch_service did; '...:"Cluster"...' patched it back)""")
print(f"$ curl -s {NODE_IP[W1]}:{NP}   (on mypc)  -> pod {echo['os']['hostname']} saw ip {echo['ip']}, "
      f"remoteAddress {echo['connection']['remoteAddress']}")
print(f"$ iptables -S KUBE-EXTERNAL-SERVICES | grep 'has no local endpoints'   (on {CP})\n{dropper}")
print(f"trace mypc -> {CP}:{NP}: {' -> '.join(t_cp.chains)}; {t_cp.outcome}")
fig = go.Figure(layout=dict(title=f"externalTrafficPolicy: Local, mypc -> each node's IP:{NP} ({lab.backend} backend)",
                            barmode="stack", yaxis_title="connections", template="plotly_white", height=360))
for label in ["own pod", "another node's pod", "no answer"]:
    fig.add_bar(name=label, x=NODES, y=[int(((r["outcome"] != "ok") if label == "no answer" else
                                             (r["outcome"] == "ok") & ((r["endpoint_node"] == node) == (label == "own pod"))).sum())
                                        for node, r in runs.items()])
fig.show()
print({node: experiments.outcomes(r).to_dict() for node, r in runs.items()})
workers_ok = all((r["outcome"] == "ok").all() and (r["endpoint_node"] == node).all()
                 and set(r["source_ip_seen"]) == {MYPC} for node, r in runs.items() if node != CP)
experiments.claim(
    workers_ok and not (runs[CP]["outcome"] == "ok").any() and echo["connection"]["remoteAddress"] == MYPC
    and f"--dport {NP} -j DROP" in dropper and not (cluster_seen["source_ip_seen"] == MYPC).any()
    and t_cp.outcome != "ok" and "KUBE-EXTERNAL-SERVICES" in t_cp.chains and "has no local endpoints" in str(t_cp),
    f"under Local every worker answered 200/200 from its own pod, which saw mypc's address {MYPC} (no SNAT); "
    f"the control plane, without a pod, answered none of 20 (KUBE-EXTERNAL-SERVICES: 'has no local endpoints' DROP on --dport {NP}); "
    f"under Cluster the same entry's pods saw {W1}'s addresses {sorted(set(cluster_seen['source_ip_seen']))} "
    f"(its IP, or its pods' gateway for its own pod), never {MYPC}",
    f"the Local experiment changed: { {n: experiments.outcomes(r).to_dict() for n, r in runs.items()} }, "
    f"seen {sorted(set(runs[W1]['source_ip_seen'].dropna()))}",
)

# %% [markdown] lang="en"
# The DROP sits in the `filter` table's `KUBE-EXTERNAL-SERVICES` chain, which `INPUT` and `FORWARD`
# jump to for new connections: `-m addrtype --dst-type LOCAL --dport NP -j DROP`, commented
# "`default/svc-nodeport:svc-webport has no local endpoints`". kube-proxy writes it only on nodes
# where the Service has no ready local endpoint. A dropped SYN gets no answer at all, so a client
# like `curl` waits until its timeout: it cannot tell "no pod here" from "host down". Study notes
# 2.6: "with `externalTrafficPolicy: Local`, a NodePort connection to a node without a pod fails".

# %% [markdown] lang="ko"
# 이 DROP 규칙은 `filter` 테이블의 `KUBE-EXTERNAL-SERVICES` 체인에 있습니다. `INPUT`과 `FORWARD`가 새 연결에 대해
# 이 체인으로 점프합니다. `-m addrtype --dst-type LOCAL --dport NP -j DROP`이고, 주석은
# "`default/svc-nodeport:svc-webport has no local endpoints`"입니다. kube-proxy는 서비스의 준비된 로컬
# 엔드포인트(endpoint)가 없는 노드에만 이 규칙을 씁니다. 버려진 SYN에는 아무 응답도 없으므로 `curl` 같은
# 클라이언트는 시간 초과까지 기다립니다. "여기에 파드가 없음"과 "호스트가 꺼짐"을 구별할 수 없습니다. 스터디 노트
# 2.6: "`externalTrafficPolicy: Local`을 쓰면 파드가 없는 노드 IP로 NodePort 접속 시 실패".

# %% [markdown] lang="en"
# ## The rule change: KUBE-EXT → KUBE-SVL
#
# The chain names come from chapter 01's formula with other prefixes: `KUBE-EXT-…` (the Service's
# external destinations: nodePorts, load balancer IPs) and `KUBE-SVL-…` (service, **local**
# endpoints only) share the hash of `KUBE-SVC-…`. The cell lists `KUBE-EXT-…` on `myk8s-worker`
# under both policies, then `KUBE-SVL-…` and `KUBE-SVC-…` under `Local`, and traces one connection.

# %% [markdown] lang="ko"
# ## 규칙의 변화: KUBE-EXT → KUBE-SVL
#
# 체인 이름은 01장의 공식에 다른 접두사를 붙여 만듭니다. `KUBE-EXT-…`(서비스의 외부 목적지: 노드 포트, 로드 밸런서
# IP)와 `KUBE-SVL-…`(서비스의 **로컬** 엔드포인트만)는 `KUBE-SVC-…`와 같은 해시를 씁니다. 셀은 `myk8s-worker`에서
# 두 정책의 `KUBE-EXT-…`를 보여 주고, 이어서 `Local`에서의 `KUBE-SVL-…`와 `KUBE-SVC-…`를 보여 준 다음, 연결 하나를
# 추적합니다.

# %%
ext_cluster = lab.sh(W1, f"iptables -t nat -S {EXT}")
lab.patch_service("svc-nodeport", external_traffic_policy="Local")
try:
    ext_local = lab.sh(W1, f"iptables -t nat -S {EXT}")
    svl = lab.sh(W1, f"iptables -t nat -S {SVL}")
    svc_chain = lab.sh(W1, f"iptables -t nat -S {SVC}")
    t = lab.trace("mypc", f"{W1}:{NP}")
finally:
    lab.patch_service("svc-nodeport", external_traffic_policy="Cluster")
print(f"--- Cluster: {EXT}\n{ext_cluster}--- Local: {EXT}\n{ext_local}--- Local: {SVL}\n{svl}--- Local: {SVC}\n{svc_chain}")
print(t)
own_sep = chain_name("KUBE-SEP-", "default/svc-nodeport:svc-webport", "tcp", f"{lab.cluster.pod(lab.pods_per_node(ECHO)[W1][0]).pod_ip}:8080")
experiments.claim(
    t.chains[:5] == ["KUBE-SERVICES", "KUBE-NODEPORTS", EXT, SVL, own_sep] and "KUBE-MARK-MASQ" not in t.chains
    and not t.masquerade and t.endpoint_node == W1 and t.source_ip_seen == MYPC
    and svl.count("-j KUBE-SEP-") == 1 and f"-j {own_sep}" in svl and svc_chain.count("-j KUBE-SEP-") == 3
    and "-j KUBE-MARK-MASQ" in ext_cluster and f"-j {SVL}" in ext_local and f"-j {SVL}" not in ext_cluster,
    f"under Local: KUBE-SERVICES -> KUBE-NODEPORTS -> {EXT} -> {SVL} -> {own_sep} (worker's own pod), no KUBE-MARK-MASQ, "
    f"no masquerade; {SVL} has 1 SEP jump where {SVC} has 3: the other nodes' pods have none",
    f"the Local rules or trace changed: chains {t.chains[:6]}, masquerade {t.masquerade}, "
    f"SEP jumps in SVL {svl.count('-j KUBE-SEP-')}",
)

# %% [markdown] lang="en"
# Under `Cluster`, `KUBE-EXT-…` first marks every connection for masquerade (`-j KUBE-MARK-MASQ`),
# then jumps to `KUBE-SVC-…`, the ladder over **all** endpoints (chapter 06). Under `Local`:
#
# - pod traffic (`-s 10.10.0.0/16`) still goes to `KUBE-SVC-…`: a pod calling a nodePort is not
#   external;
# - traffic from the node itself (`--src-type LOCAL`) is masqueraded and sent to `KUBE-SVC-…` (next
#   section);
# - everything else jumps to `KUBE-SVL-…`, with **no** mark: no SNAT, the pod sees the client.
#
# `KUBE-SVL-…` lists only this node's endpoints. A pod of the Service on another node has no
# `KUBE-SEP-…` jump here, so this node never load-balances to it (study 2.5: "다른 노드에 있는
# 파드의 경우 서비스 엔드포인트(SEP) 규칙이 없기 때문에, 해당 파드로 부하분산 되지 않습니다").
#
# **Where the study notes are out of date.** The notes say "`KUBE-XLB` 삭제되고, `KUBE-EXT-#`,
# `KUBE-SVL-#` 과정 추가됨". `KUBE-XLB-…` ("external load balancer") is the name older kube-proxy
# versions (up to Kubernetes 1.23) gave one chain that did both jobs; since 1.24 (kubernetes PR
# #109060, "Kube proxy rule reorg XLB->EXT") it is split into `KUBE-EXT-…` (the entry for external
# traffic) and `KUBE-SVL-…` (local endpoints). A current node has no `KUBE-XLB-…` at all.

# %% [markdown] lang="ko"
# `Cluster`에서 `KUBE-EXT-…`는 먼저 모든 연결에 마스커레이드(masquerade) 표시를 하고(`-j KUBE-MARK-MASQ`), 그다음
# **모든** 엔드포인트에 대한 사다리인 `KUBE-SVC-…`로 점프합니다(06장). `Local`에서는 다음과 같습니다.
#
# - 파드 트래픽(`-s 10.10.0.0/16`)은 여전히 `KUBE-SVC-…`로 갑니다. 노드 포트를 부르는 파드는 외부가 아닙니다.
# - 노드 자신에서 온 트래픽(`--src-type LOCAL`)은 마스커레이드되어 `KUBE-SVC-…`로 갑니다(다음 절).
# - 나머지는 표시 **없이** `KUBE-SVL-…`로 점프합니다. SNAT가 없으므로 파드는 클라이언트를 봅니다.
#
# `KUBE-SVL-…`에는 이 노드의 엔드포인트만 있습니다. 다른 노드에 있는 서비스의 파드로 가는 `KUBE-SEP-…` 점프는
# 여기에 없으므로, 이 노드는 그 파드로 부하 분산하지 않습니다(스터디 2.5: "다른 노드에 있는 파드의 경우 서비스
# 엔드포인트(SEP) 규칙이 없기 때문에, 해당 파드로 부하분산 되지 않습니다").
#
# **스터디 노트가 오래된 부분.** 노트에는 "`KUBE-XLB` 삭제되고, `KUBE-EXT-#`, `KUBE-SVL-#` 과정 추가됨"이라고
# 적혀 있습니다. `KUBE-XLB-…`("external load balancer")는 예전 kube-proxy(쿠버네티스 1.23까지)가 두 가지 일을
# 함께 하던 체인 하나에 붙인 이름입니다. 1.24부터(kubernetes PR #109060, "Kube proxy rule reorg XLB->EXT") 그
# 체인은 `KUBE-EXT-…`(외부 트래픽의 입구)와 `KUBE-SVL-…`(로컬 엔드포인트)로 나뉘었습니다. 지금의 노드에는 `KUBE-XLB-…`가 전혀 없습니다.

# %% [markdown] lang="en"
# **Exercise (a new case).** Suppose `deploy-echo`'s pods are placed two on `myk8s-worker2`, one on
# `myk8s-worker3` and none elsewhere (`lab.place("deploy-echo", {"myk8s-worker2": 2, "myk8s-worker3": 1})`),
# and `svc-nodeport` is `Local`. How many `KUBE-SEP-…` jumps does `KUBE-SVL-…` have on `myk8s-worker2`?
# (Try it on a copy: `c = lab.copy()`, place, patch, then
# `c.sh("myk8s-worker2", f"iptables -t nat -S {SVL}")`.)

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `deploy-echo`의 파드를 `myk8s-worker2`에 두 개, `myk8s-worker3`에 하나 두고 다른
# 곳에는 두지 않았다고 합시다(`lab.place("deploy-echo", {"myk8s-worker2": 2, "myk8s-worker3": 1})`). 그리고
# `svc-nodeport`는 `Local`입니다. `myk8s-worker2`의 `KUBE-SVL-…`에는 `KUBE-SEP-…` 점프가 몇 개 있을까요?
# (복사본에서 해 보세요. `c = lab.copy()`로 만든 다음 배치하고 패치하고
# `c.sh("myk8s-worker2", f"iptables -t nat -S {SVL}")`를 실행합니다.)

# %% [markdown] lang="en" hint="ch07.sep_count"
# 1. KUBE-SVL = the Service's Local endpoints: it lists only the ready endpoints on the node whose rules you read,
#    unlike KUBE-SVC's ladder over every endpoint.
# 2. How many deploy-echo pods does the placement put on myk8s-worker2? Each gets one `-j KUBE-SEP-…` jump in that
#    node's KUBE-SVL.

# %% [markdown] lang="ko" hint="ch07.sep_count"
# 1. KUBE-SVL은 서비스의 로컬 엔드포인트입니다. 모든 엔드포인트를 나열하는 KUBE-SVC 사다리와 달리, 규칙을 읽는 그 노드의 준비된 엔드포인트만 나열합니다.
# 2. 배치가 myk8s-worker2에 deploy-echo 파드를 몇 개 둡니까? 파드마다 그 노드의 KUBE-SVL에 `-j KUBE-SEP-…` 점프가 하나씩 생깁니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number
# EXERCISE-END
c = lab.copy()
c.place("deploy-echo", {W2: 2, W3: 1})
c.patch_service("svc-nodeport", external_traffic_policy="Local")
answer = c.sh(W2, f"iptables -t nat -S {SVL}").count("-j KUBE-SEP-")
kslab.check.ch07.sep_count(answer, lab)

# %% [markdown] lang="en"
# ## Local, from the node itself
#
# A process on a node (the node's own address, or `127.0.0.1`) connecting to a nodePort is not
# external traffic that arrived at the node: it started there. Under `Local`, `KUBE-EXT-…` sends it
# to the **cluster-wide** chain `KUBE-SVC-…` ("route LOCAL traffic"), masqueraded ("masquerade
# LOCAL traffic"), so it works even on a node without a pod. kube-proxy does this because a
# process on the node (a monitoring agent, `hostNetwork` pods) would otherwise get nothing from a
# pod-less node; since the source is the node, there is no client address to keep.

# %% [markdown] lang="ko"
# ## Local에서 노드 자신이 접속할 때
#
# 노드의 프로세스가(노드 자신의 주소나 `127.0.0.1`에서) 노드 포트로 접속하는 것은 밖에서 노드로 들어온 트래픽이
# 아니라 그 노드에서 시작된 트래픽입니다. `Local`에서 `KUBE-EXT-…`는 이 트래픽을 **클러스터 전체** 체인인
# `KUBE-SVC-…`로 보내고("route LOCAL traffic"), 마스커레이드합니다("masquerade LOCAL traffic"). 그래서 파드가 없는
# 노드에서도 동작합니다. 그렇지 않으면 노드의 프로세스(모니터링 에이전트, `hostNetwork` 파드)가 파드 없는 노드에서
# 아무 응답도 받지 못하기 때문입니다. 출발지가 노드 자신이므로 보존할 클라이언트 주소도 없습니다.

# %%
lab.patch_service("svc-nodeport", external_traffic_policy="Local")
try:
    rules = lab.sh(CP, f"iptables -t nat -S {EXT}")
    t_own = lab.trace(CP, f"{NODE_IP[CP]}:{NP}")
    own = lab.run(CP, f"{NODE_IP[CP]}:{NP}", n=300, seed=3)
finally:
    lab.patch_service("svc-nodeport", external_traffic_policy="Cluster")
print(f"$ iptables -t nat -S {EXT}   (on {CP}, Local)\n{rules}")
print(f"trace {CP} -> {NODE_IP[CP]}:{NP}: {' -> '.join(t_own.chains[:6])}; masquerade {t_own.masquerade}; {t_own.outcome}")
print("300 connections:", experiments.outcomes(own).to_dict(), "pods:", own["endpoint_pod"].value_counts().to_dict())
experiments.claim(
    t_own.outcome == "ok" and t_own.masquerade and t_own.chains[:5] == ["KUBE-SERVICES", "KUBE-NODEPORTS", EXT, "KUBE-MARK-MASQ", SVC]
    and (own["outcome"] == "ok").all() and set(own["endpoint_pod"]) == set(lab.pods(ECHO)) and "route LOCAL traffic" in rules,
    f"{CP}, without a pod, reaches its own IP:{NP} under Local: {EXT} -> KUBE-MARK-MASQ -> {SVC} (all 3 pods, masqueraded)",
    f"the node's own connection under Local changed: {t_own.outcome}, chains {t_own.chains[:5]}, "
    f"outcomes {experiments.outcomes(own).to_dict()}",
)

# %% [markdown] lang="en"
# **Exercise (a new case).** Under `Local`, a process on `myk8s-worker3`, which runs one echo pod,
# connects to `myk8s-worker3`'s own `IP:nodePort` many times. Do **all** its connections land on
# `myk8s-worker3`'s own pod? Answer `True` or `False`.

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `Local`에서, 에코 파드 하나가 실행 중인 `myk8s-worker3`의 프로세스가
# `myk8s-worker3` 자신의 `IP:nodePort`로 여러 번 접속합니다. 연결이 **모두** `myk8s-worker3`의 자기 파드에
# 도착할까요? `True` 또는 `False`로 답하세요.

# %% [markdown] lang="en" hint="ch07.from_node"
# 1. Read the KUBE-EXT-… chain of svc-nodeport under Local on myk8s-worker3 (`lab.copy()`, patch, then `iptables -t
#    nat -S`), especially the rule commented 'route LOCAL traffic'.
# 2. Traffic whose source is the node itself (`-m addrtype --src-type LOCAL`) jumps to KUBE-SVC-…, not KUBE-SVL-…:
#    which endpoints does that ladder list?

# %% [markdown] lang="ko" hint="ch07.from_node"
# 1. Local에서 myk8s-worker3의 svc-nodeport KUBE-EXT-… 체인을 읽어 보세요(`lab.copy()`, 패치, 그리고 `iptables -t nat -S`). 특히 주석이
#    'route LOCAL traffic'인 규칙을 보세요.
# 2. 출발지가 노드 자신인 트래픽(`-m addrtype --src-type LOCAL`)은 KUBE-SVL-…이 아니라 KUBE-SVC-…로 점프합니다. 그 사다리는 어떤 엔드포인트를 나열합니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # True or False
# EXERCISE-END
answer = False  # "route LOCAL traffic" sends the node's own connections to KUBE-SVC-…: any of the three pods
kslab.check.ch07.from_node(answer, lab)

# %% [markdown] lang="en"
# ## What NodePort still lacks, and the LoadBalancer (study 2.6)
#
# The study lists two gaps: clients must know and reach every node's own address (the nodes'
# network is exposed), and under `Local` a client that picks a node without a pod fails. A
# Service of `type: LoadBalancer` answers both, with one caveat below. A load balancer outside the
# cluster owns one address, the VIP (`status.loadBalancer.ingress`, here 172.18.0.200), and hands
# connections to the nodes. Under `Local` it must not pick a node without a pod, so it asks each
# node first: the API server gives a `Local` LoadBalancer Service a `healthCheckNodePort` (헬스 체크
# 노드 포트), and kube-proxy on **every** node answers HTTP there (`/healthz`, any path): 200 where
# the node has a ready local endpoint, 503 where it has none.
#
# **Which load balancer.** kslab's is a *passthrough network load balancer*, like a cloud's NLB,
# GCE's external passthrough load balancer or MetalLB in BGP mode (the routers spread flows over the
# nodes by ECMP): it probes every node, spreads connections over the healthy ones and forwards the
# packet unchanged, so under `Local` the pod sees the client's own address. Others differ. MetalLB in
# L2 mode does not spread at all: one elected node answers ARP for the VIP and takes all of its
# traffic (under `Local`, a node with a local endpoint). cloud-provider-kind runs one Envoy proxy
# container per load balancer (its health checks are the same: `/healthz` on the
# `healthCheckNodePort`), and a proxy opens its own connection to the node, so the pod sees the
# proxy's address even under `Local`; so does any proxy-type load balancer, and a VIP whose
# `status.loadBalancer.ingress[].ipMode` is `Proxy`.
#
# **The caveat: the nodePort stays open.** `svc-lb` still gets a nodePort on every node
# (`spec.allocateLoadBalancerNodePorts` defaults to `true`; the load balancer sends to it when it
# is not passthrough), and `loadBalancerSourceRanges` (below) does not cover it: upstream's proxier
# says "nodeports are not subject to loadBalancerSourceRanges". So a LoadBalancer Service reduces
# what is exposed (the study's 2.6: "LoadBalancer 서비스 타입으로 외부 공개 최소화") only if the
# nodes' addresses are not reachable from outside, or `allocateLoadBalancerNodePorts: false` (for a
# passthrough LB that does not need one) or a node firewall closes the nodePort.
#
# The lab's `svc-lb` is that Service, on the same echo pods: `lab.apply(kslab.resources.study_lab() /
# "loadbalancer")` adds it (it is not part of the lab of chapters 00-06). The set-up cell applied it
# with `with_lb(lab)`, which applies it only when it is missing, for example after `lab.reset()`.
# The study's `kubectl` shows the VIP and the health check port.
#
# **On kind** there is no load balancer controller (unless you run cloud-provider-kind or MetalLB):
# the API server drops the manifest's `status`, so `EXTERNAL-IP` stays `<pending>` and `kubectl
# describe` has no `LoadBalancer Ingress` line. The API server still allocates the
# `healthCheckNodePort`, and every node's kube-proxy still serves it and writes the Service's rules:
# those parts are live. The VIP is not: the set-up cell took it from the simulator twin
# (`lab.exact(...)`, one printed line), whose `svc-lb` carries the manifest's
# `status.loadBalancer.ingress`, what a cloud load balancer would write (`lab.copy()` does that for
# a LoadBalancer Service the lab applied whose live status is pending). Every cell that sends to the
# VIP runs on such a twin. With a controller running, the live status has the address and the
# listing shows it.

# %% [markdown] lang="ko"
# ## NodePort에 아직 부족한 점, 그리고 로드 밸런서 (스터디 2.6)
#
# 스터디는 빈틈 두 가지를 꼽습니다. 클라이언트가 모든 노드 자신의 주소를 알고 거기에 닿아야 하고(노드의 네트워크가
# 드러납니다), `Local`에서는 파드가 없는 노드를 고른 클라이언트가 실패합니다. `type: LoadBalancer` 서비스가 둘 다
# 메웁니다(아래의 주의 사항 하나가 있습니다). 클러스터 밖의 로드 밸런서가 주소 하나, 곧 VIP
# (`status.loadBalancer.ingress`, 여기서는 172.18.0.200)를 갖고 연결을 노드에 넘깁니다. `Local`에서는 파드가
# 없는 노드를 고르면 안 되므로 먼저 노드마다 물어봅니다. API 서버는 `Local` 로드 밸런서 서비스에 헬스 체크
# 노드 포트(`healthCheckNodePort`)를 할당하고, **모든** 노드의 kube-proxy가 그 포트에서 HTTP로 응답합니다(`/healthz`,
# 경로는 무엇이든 같습니다). 노드에 준비된 로컬 엔드포인트가 있으면 200, 없으면 503입니다.
#
# **어떤 로드 밸런서인가.** kslab의 로드 밸런서는 *패스스루 네트워크 로드 밸런서*입니다. 클라우드의 NLB, GCE의
# 외부 패스스루 로드 밸런서, BGP 모드의 MetalLB(라우터가 ECMP로 흐름을 노드에 나눕니다)와 같습니다. 모든 노드를
# 프로브하고, 건강한 노드에 연결을 나누며, 패킷을 바꾸지 않고 넘깁니다. 그래서 `Local`에서 파드는 클라이언트 자신의
# 주소를 봅니다. 다른 로드 밸런서는 다릅니다. L2 모드의 MetalLB는 아예 나누지 않습니다. 선출된 노드 하나가 VIP의
# ARP에 응답하고 그 트래픽을 모두 받습니다(`Local`이면 로컬 엔드포인트가 있는 노드). cloud-provider-kind는 로드
# 밸런서마다 Envoy 프록시 컨테이너를 하나씩 실행합니다(헬스 체크는 같습니다: 헬스 체크 노드 포트의 `/healthz`).
# 프록시는 노드로 자기 연결을 새로 열므로 `Local`에서도 파드는 프록시의 주소를 봅니다. 프록시 방식의 로드 밸런서,
# 그리고 `status.loadBalancer.ingress[].ipMode`가 `Proxy`인 VIP도 마찬가지입니다.
#
# **주의 사항: 노드 포트는 열려 있습니다.** `svc-lb`도 모든 노드에서 노드 포트를 받고
# (`spec.allocateLoadBalancerNodePorts`의 기본값이 `true`입니다. 패스스루가 아닌 로드 밸런서는 이 포트로 보냅니다),
# `loadBalancerSourceRanges`(아래)는 이 포트를 막지 않습니다. 업스트림 프록시어의 주석 그대로 "nodeports are not
# subject to loadBalancerSourceRanges"입니다. 그래서 로드 밸런서 서비스가 외부 공개를 줄이는 것(스터디 2.6:
# "LoadBalancer 서비스 타입으로 외부 공개 최소화")은 밖에서 노드의 주소에 닿을 수 없을 때, 또는
# `allocateLoadBalancerNodePorts: false`(노드 포트가 필요 없는 패스스루 로드 밸런서라면)나 노드 방화벽이 노드 포트를
# 닫을 때뿐입니다.
#
# 실습 환경의 `svc-lb`가 바로 그 서비스이며, 같은 에코 파드를 씁니다. `lab.apply(kslab.resources.study_lab() /
# "loadbalancer")`가 이를 추가합니다(00-06장의 실습 환경에는 없습니다). 설정 셀이 `with_lb(lab)`로 이미
# 적용했습니다. `with_lb`는 예를 들어 `lab.reset()` 뒤처럼 서비스가 없을 때만 적용합니다. 스터디의 `kubectl`로 VIP와
# 헬스 체크 포트를 봅니다.
#
# **kind에서는** (cloud-provider-kind나 MetalLB를 실행하지 않는 한) 로드 밸런서 컨트롤러가 없습니다. API 서버가
# 매니페스트의 `status`를 버리므로 `EXTERNAL-IP`는 `<pending>`으로 남고 `kubectl describe`에는 `LoadBalancer
# Ingress` 줄이 없습니다. 그래도 API 서버는 `healthCheckNodePort`를 할당하고, 모든 노드의 kube-proxy는 그 포트에서
# 응답하며 서비스의 규칙을 씁니다. 이 부분은 실제 클러스터의 것입니다. VIP는 그렇지 않습니다. 설정 셀은 VIP를
# sim 복제본(`lab.exact(...)`, 한 줄로 알려 줌)에서 가져왔습니다. 복제본의 `svc-lb`에는 클라우드
# 로드 밸런서가 썼을 매니페스트의 `status.loadBalancer.ingress`가 있습니다(`lab.copy()`는 실습 환경이 적용한
# 로드 밸런서 서비스의 실제 상태가 pending이면 그렇게 합니다). VIP로 보내는 셀은 모두 그런 복제본에서 실행됩니다.
# 컨트롤러가 실행 중이면 실제 상태에 주소가 있고 목록에도 나옵니다.

# %%
with_lb(lab)  # again, in case lab.reset() removed it
listing = lab.sh(CP, "kubectl get svc svc-lb -o wide")
described = lab.sh(CP, "kubectl describe svc svc-lb | grep -E 'Type|LoadBalancer Ingress|External Traffic|HealthCheck'")
print(f"$ kubectl get svc svc-lb -o wide\n{listing}\n$ kubectl describe svc svc-lb | grep ...\n{described}")
external_ip = listing.splitlines()[1].split()[3]  # the EXTERNAL-IP column
experiments.claim(
    re.search(rf"HealthCheck NodePort:\s+{HC}\n", described) and re.search(r"External Traffic Policy:\s+Local", described)
    and (VIP.startswith("172.18.0.200:") or LIVE) and 30000 <= HC <= 32767  # a live controller picks its own address
    and external_ip == ("<pending>" if PENDING else VIP.split(":")[0]),
    f"svc-lb: type LoadBalancer, Local, nodePort {lb_svc.ports[0].node_port}, healthCheckNodePort {HC}, EXTERNAL-IP {external_ip}"
    + (f" (no load balancer controller; the sim twin's VIP is {VIP})" if PENDING else f", VIP {VIP}"),
    f"svc-lb's listing changed: {listing!r} {described!r}",
)

# %% [markdown] lang="en"
# ## A node's health check answer
#
# The study curls the health check port from outside. kube-proxy's handler (upstream
# `pkg/proxy/healthcheck/service_health.go`) answers with three headers (`Content-Type:
# application/json`, `X-Content-Type-Options: nosniff`, `X-Load-Balancing-Endpoint-Weight: <n>`) and
# a tab-indented JSON body naming the Service and its `localEndpoints`, the node's count of ready
# local endpoints. The status is 200 only if `count != 0 && kubeProxyHealthy`: a node also answers
# 503 when kube-proxy itself is unhealthy (it has not synced its rules in time), and the body's
# `serviceProxyHealthy` says which. The `X-Load-Balancing-Endpoint-Weight` header (since Kubernetes
# 1.28, PR #118999) repeats the count so that a load balancer can weight each node by its number of
# local endpoints ("weighted load balancing") without parsing the JSON.
#
# The cell compares what each node said with upstream's template filled in for `default/svc-lb`,
# written out literally in the cell for 0 and 2 local endpoints (status, weight header and body; only
# the `Date` header, the time of the answer, is left out), and every answer with
# `healthcheck.service_health(namespace, name, n)`, kslab's Python copy of that template (the one the
# sim and netns servers answer with).
#
# The cell first curls every node's health check port from `mypc` as the lab is (one echo pod per
# worker, none on the control plane). On kind these answers are live: kube-proxy opens the
# `healthCheckNodePort` on every node for a LoadBalancer Service with `Local`, load balancer
# controller or not. To see 0, 1 and 2 local endpoints at once, it then places `deploy-echo`'s pods
# two on `myk8s-worker`, one on `myk8s-worker2` and none on `myk8s-worker3` (`lab.place`) and curls
# again; it ends with `fresh(lab)` (`lab.reset()`, then `svc-lb` again). On kind that second part
# runs on the simulator twin: a live cluster's scheduler places its pods.

# %% [markdown] lang="ko"
# ## 노드의 헬스 체크 응답
#
# 스터디는 밖에서 헬스 체크 포트로 `curl`합니다. kube-proxy의 핸들러(업스트림
# `pkg/proxy/healthcheck/service_health.go`)는 헤더 세 개(`Content-Type: application/json`,
# `X-Content-Type-Options: nosniff`, `X-Load-Balancing-Endpoint-Weight: <n>`)와, 서비스 이름과 `localEndpoints`
# (그 노드의 준비된 로컬 엔드포인트 수)를 담은 탭으로 들여 쓴 JSON 본문으로 응답합니다.
# 상태 코드는 `count != 0 && kubeProxyHealthy`일 때만 200입니다. kube-proxy 자신이 건강하지 않을 때(제때 규칙을
# 동기화하지 못했을 때)도 노드는 503으로 응답하며, 본문의 `serviceProxyHealthy`가 어느 쪽인지 알려 줍니다.
# `X-Load-Balancing-Endpoint-Weight` 헤더(쿠버네티스 1.28부터, PR #118999)는 같은 수를 한 번 더 알려 줍니다.
# 로드 밸런서가 JSON을 해석하지 않고도 노드마다 로컬 엔드포인트 수로 가중치를 줄 수 있게 하려는 것입니다("weighted
# load balancing").
#
# 셀은 각 노드의 응답을 `default/svc-lb`로 채운 업스트림 템플릿과 비교합니다. 로컬 엔드포인트 0개와 2개일 때의
# 응답(상태 코드, 가중치 헤더, 본문)은 셀에 글자 그대로 적혀 있습니다(응답한 시각인 `Date` 헤더만 뺍니다). 그리고
# 모든 응답을 `healthcheck.service_health(namespace, name, n)`과도 비교합니다. 이 함수는 그 템플릿을 파이썬으로
# 옮긴 것이며, sim과 netns의 서버가 이것으로 응답합니다.
#
# 셀은 먼저 실습 환경 그대로(워커마다 에코 파드 하나, 컨트롤 플레인에는 없음) `mypc`에서 모든 노드의 헬스 체크
# 포트로 `curl`합니다. kind에서는 이 응답이 실제 클러스터의 것입니다. kube-proxy는 로드 밸런서 컨트롤러가 있든 없든
# `Local`인 로드 밸런서 서비스에 대해 모든 노드에서 `healthCheckNodePort`를 엽니다. 이어서 로컬 엔드포인트 0, 1,
# 2개를 한 번에 보기 위해 `deploy-echo`의 파드를 `myk8s-worker`에 두 개, `myk8s-worker2`에 하나,
# `myk8s-worker3`에는 두지 않고(`lab.place`) 다시 `curl`합니다. 셀은 `fresh(lab)`(`lab.reset()` 다음 `svc-lb`를
# 다시 적용)으로 끝납니다. kind에서는 이 두 번째 부분이 sim 복제본에서 실행됩니다. 실제 클러스터에서는
# 스케줄러가 파드를 배치하기 때문입니다.

# %%
def http_answer(text: str) -> tuple[int, list[tuple[str, str]], str]:
    """curl -i's output: the status code, the headers (name, value) in order, the body."""
    head, _, body = text.partition("\r\n\r\n") if "\r\n\r\n" in text else text.partition("\n\n")
    status_line, *lines = head.splitlines()
    return int(status_line.split()[1]), [tuple(line.split(": ", 1)) for line in lines], body


def upstream_said(text: str, local_endpoints: int) -> bool:
    """Whether a node's answer is service_health's, byte for byte, with exactly one Date header (left out)."""
    status, headers, body = http_answer(text)
    expected = healthcheck.service_health("default", "svc-lb", local_endpoints)
    want = [*expected.headers, ("Content-Length", str(len(expected.body.encode())))]
    return (status == expected.status and body == expected.body
            and [h for h in headers if h[0] != "Date"] == want and [h[0] for h in headers].count("Date") == 1)


# the lab as it is: kube-proxy's own health check server on every node (live on kind)
local = {node: len(pods) for node, pods in lab.pods_per_node(ECHO).items()}
said = {node: lab.sh("mypc", f"curl -i -s {NODE_IP[node]}:{HC}/healthz") for node in NODES}
on = lab.exact("deploy-echo's pods placed 2/1/0 on the workers, which a live cluster's scheduler decides")
with_lb(on)
on.place("deploy-echo", {W1: 2, W2: 1, W3: 0})
try:
    placed_local = {node: len(pods) for node, pods in on.pods_per_node(ECHO).items()}
    placed_said = {node: on.sh("mypc", f"curl -i -s {NODE_IP[node]}:{HC}/healthz") for node in NODES}
finally:
    fresh(on)
for node, text, n in ((CP, said[CP], local[CP]), (W1, placed_said[W1], placed_local[W1])):
    print(f"$ curl -i -s {NODE_IP[node]}:{HC}/healthz   (on mypc; {node}, {n} local endpoints)\n{text}\n")

# upstream's template (pkg/proxy/healthcheck/service_health.go, hcHandler.ServeHTTP) filled in for default/svc-lb
# with 0 and 2 local endpoints and a healthy kube-proxy: (status, X-Load-Balancing-Endpoint-Weight, body); tabs, no final newline
UPSTREAM = {
    0: (503, "0", '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "svc-lb"\n\t},\n\t"localEndpoints": 0,\n\t"serviceProxyHealthy": true\n}'),
    2: (200, "2", '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "svc-lb"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}'),
}


def literally_upstream(text: str, local_endpoints: int) -> bool:
    status, headers, body = http_answer(text)
    return (status, dict(headers).get("X-Load-Balancing-Endpoint-Weight"), body) == UPSTREAM[local_endpoints]


literal = {CP: literally_upstream(said[CP], 0), f"{W3} (placed)": literally_upstream(placed_said[W3], 0),
           f"{W1} (placed)": literally_upstream(placed_said[W1], 2)}
matches = {node: upstream_said(said[node], local[node]) for node in NODES}
placed_matches = {node: upstream_said(placed_said[node], placed_local[node]) for node in NODES}
codes = {node: http_answer(said[node])[0] for node in NODES}
placed_codes = {node: http_answer(placed_said[node])[0] for node in NODES}
print("as made: local endpoints", local, "status", codes)
print("placed 2/1/0: local endpoints", placed_local, "status", placed_codes)
experiments.claim(
    all(literal.values()) and placed_local[W3] == 0
    and all(matches.values()) and codes == {CP: 503, W1: 200, W2: 200, W3: 200} and local == {CP: 0, W1: 1, W2: 1, W3: 1}
    and all(placed_matches.values()) and placed_codes == {CP: 503, W1: 200, W2: 200, W3: 503} and placed_local[W1] == 2,
    f"{CP} and {W3} (0 local endpoints) said upstream's 503 answer and {W1} (2) its 200 answer, byte for byte (Date aside); "
    f"every node's answer equals service_health('default', 'svc-lb', n): as made, "
    f"503 with localEndpoints 0 ({CP}) and 200 with 1 (each worker); placed 2/1/0, 503 with 0 ({CP}, {W3}), "
    f"200 with 1 ({W2}) and with 2 ({W1})",
    f"the health check answers differ from upstream's: literal {literal}, as made {matches} {codes}, "
    f"placed {placed_matches} {placed_codes}",
)

# %% [markdown] lang="en"
# ## The load balancer probes every node and sends only to healthy ones
#
# `lab.lb_status("svc-lb")` is what the load balancer saw at its last probe of each node (status 0:
# no answer) and the nodes it sends new connections to; `charts.health_table` draws it. Then 600
# connections from `mypc` to the VIP: `ingress_node` is the node the LB chose for each. Then
# `myk8s-worker2`'s pod fails its readiness probe (`lab.set_ready`): kube-proxy on worker2 now
# counts 0 local endpoints and answers 503, and after the LB's next probe (`lab.advance(LB_SETTLE_S)`:
# two seconds pass) worker2 gets nothing.
#
# On sim the load balancer probes through each node's rules; on netns it is a real namespace with a
# real HTTP prober and real forwarding; kind has no load balancer controller (`EXTERNAL-IP` stays
# `<pending>`), so there it runs on the simulator twin.

# %% [markdown] lang="ko"
# ## 로드 밸런서는 모든 노드를 프로브하고 건강한 노드에만 보냅니다
#
# `lab.lb_status("svc-lb")`는 로드 밸런서가 마지막으로 각 노드를 프로브했을 때 본 상태 코드(0: 응답 없음)와 새 연결을
# 보내는 노드입니다. `charts.health_table`이 이를 그립니다. 이어서 `mypc`에서 VIP로 연결 600개를 엽니다.
# `ingress_node`는 로드 밸런서가 각 연결에 고른 노드입니다. 그다음 `myk8s-worker2`의 파드가 준비성 프로브에
# 실패합니다(`lab.set_ready`). worker2의 kube-proxy는 이제 로컬 엔드포인트를 0개로 세고 503으로 응답하며,
# 로드 밸런서가 다시 프로브한 뒤에는(`lab.advance(LB_SETTLE_S)`: 2초가 흐릅니다) worker2는 아무 연결도 받지 않습니다.
#
# sim에서는 로드 밸런서가 각 노드의 규칙을 거쳐 프로브합니다. netns에서는 실제 HTTP 프로버와 실제 전달을 하는 실제
# 네임스페이스입니다. kind에는 로드 밸런서 컨트롤러가 없으므로(`EXTERNAL-IP`가 `<pending>`으로 남습니다) 시뮬레이터
# 복제본에서 실행됩니다.

# %%
on = lab.exact("a load balancer in front of the nodes, which kind lacks (no load balancer controller)")
with_lb(on)
try:
    on.advance(LB_SETTLE_S)  # time for the load balancer to probe every node (a real prober polls)
    status = on.lb_status("svc-lb")
    before = on.run("mypc", VIP, n=600, seed=4)
    gone = on.pods_per_node(ECHO)[W2][0]
    on.set_ready(gone, False)  # what the kubelet does when the pod's readiness probe fails
    on.advance(LB_SETTLE_S)  # the load balancer probes again
    status_after = on.lb_status("svc-lb")
    after = on.run("mypc", VIP, n=600, seed=5)
finally:
    fresh(on)
charts.health_table(status).show()
charts.ingress_sankey(before).show()
print("before:", before["ingress_node"].value_counts().to_dict(), experiments.outcomes(before).to_dict())
print(f"{gone} not ready:", dict(status_after.probes), "->", after["ingress_node"].value_counts().to_dict())
experiments.claim(
    status.probes[CP] == 503 and set(status.healthy) == {W1, W2, W3} and set(before["ingress_node"]) == set(status.healthy)
    and (before["outcome"] == "ok").all() and set(before["source_ip_seen"]) == {MYPC}
    and status_after.probes[W2] == 503 and W2 not in status_after.healthy
    and set(after["ingress_node"]) == {W1, W3} and (after["outcome"] == "ok").all(),
    f"the LB sent 600/600 to the nodes answering 200 ({', '.join(status.healthy)}), none to {CP} (503), and every pod saw "
    f"{MYPC}; once {gone} was not ready {W2} answered 503 and got 0 of the next 600",
    f"the LB's choice changed: probes {dict(status.probes)} -> {before['ingress_node'].value_counts().to_dict()}; "
    f"after: {dict(status_after.probes)} -> {after['ingress_node'].value_counts().to_dict()}",
)

# %% [markdown] lang="en"
# ## The imbalance: an LB spreads over nodes, not pods
#
# The load balancer knows nodes, not pods: it gives each healthy node the same share, and under
# `Local` each node keeps its share on its own pods. (A load balancer that supports weights could
# read each node's `X-Load-Balancing-Endpoint-Weight` and weight it by its local endpoints; kslab's,
# like many cloud load balancers, weights every healthy node the same.) With two pods on
# `myk8s-worker`, one on `myk8s-worker2` and none on `myk8s-worker3`, **predict** each pod's share
# before you run the cell. The chart's dotted line is the even per-pod split, 1/3, that `Cluster`
# would give (with one more hop and SNAT). The Kubernetes documentation describes exactly this
# ("Create an External Load Balancer", section *Preserving the client source IP*, "Caveats and
# limitations when preserving source IPs").

# %% [markdown] lang="ko"
# ## 불균형: 로드 밸런서는 파드가 아니라 노드에 나눕니다
#
# 로드 밸런서는 파드가 아니라 노드를 압니다. 건강한 노드마다 같은 몫을 주고, `Local`에서는 각 노드가 자기 몫을 자기
# 파드에만 줍니다. (가중치를 지원하는 로드 밸런서라면 노드마다 `X-Load-Balancing-Endpoint-Weight`를 읽어 로컬
# 엔드포인트 수로 가중치를 줄 수 있습니다. kslab의 로드 밸런서는 많은 클라우드 로드 밸런서처럼 건강한 노드에 모두
# 같은 가중치를 줍니다.) `myk8s-worker`에 파드 두 개, `myk8s-worker2`에 하나, `myk8s-worker3`에 없을 때 각 파드의
# 몫을 셀을 실행하기 전에 **예측**해 보세요. 차트의 점선은 `Cluster`가 줄 고른 파드별 몫 1/3입니다(대신 홉이 하나 더
# 있고 SNAT됩니다). 쿠버네티스 문서 "외부 로드 밸런서 생성하기"의 "클라이언트 소스 IP 보존하기" 절, 그 아래
# "소스 IP를 보존할 때 주의사항 및 제한 사항"이 바로 이 현상을 설명합니다.

# %%
on = lab.exact("deploy-echo's pods placed 2/1/0 and a load balancer, neither of which a kind cluster gives")
with_lb(on)
on.place("deploy-echo", {W1: 2, W2: 1, W3: 0})
try:
    on.advance(LB_SETTLE_S)  # the load balancer probes the new placement
    healthy = on.lb_status("svc-lb").healthy
    spread = on.run("mypc", VIP, n=1200, seed=6)
    node_of = {p: node for node, on_node in on.pods_per_node(ECHO).items() for p in on_node}
    pods = sorted(node_of)
finally:
    fresh(on)
charts.distribution_figure(spread, categories=pods,
                           title=f"Local behind the LB, pods placed 2/1/0: share per pod ({spread['backend'].iloc[0]} backend)").show()
share = experiments.shares(spread, categories=pods)
print({f"{p} ({node_of[p]})": f"{s:.1%}" for p, s in share.items()})
experiments.claim(
    set(healthy) == {W1, W2} and all(abs(share[p] - (0.25 if node_of[p] == W1 else 0.5)) < 0.06 for p in pods)
    and (spread["outcome"] == "ok").all() and W3 not in set(spread["ingress_node"]),
    f"the LB split per node: {W1}'s two pods got {', '.join(f'{share[p]:.1%}' for p in pods if node_of[p] == W1)} "
    f"(1/4 each ± 6%), {W2}'s one pod {sum(share[p] for p in pods if node_of[p] == W2):.1%} (1/2 ± 6%); {W3} (503) none",
    f"the per-pod shares changed: {share.round(3).to_dict()}, healthy {healthy}",
)

# %% [markdown] lang="en"
# **Exercise (a new case).** Three pods on `myk8s-worker`, one on `myk8s-worker2`, none elsewhere,
# `svc-lb` behind its load balancer. What share of the connections does the pod on `myk8s-worker2`
# get? (A number between 0 and 1.)

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `myk8s-worker`에 파드 세 개, `myk8s-worker2`에 하나, 다른 곳에는 없고, `svc-lb`는
# 로드 밸런서 뒤에 있습니다. `myk8s-worker2`의 파드는 연결의 몇 분의 몇을 받을까요? (0과 1 사이의 수)

# %% [markdown] lang="en" hint="ch07.share"
# 1. The load balancer spreads connections over nodes, not pods: only the nodes that pass the Service's health check
#    (healthCheckNodePort: the nodes with a local pod) receive traffic.
# 2. Two nodes are healthy (myk8s-worker and myk8s-worker2), and each gets half; under Local, each node's half goes
#    only to its own pods. How many pods share myk8s-worker2's half?

# %% [markdown] lang="ko" hint="ch07.share"
# 1. 로드 밸런서는 파드가 아니라 노드에 연결을 나눕니다. 서비스의 헬스 체크(healthCheckNodePort: 로컬 파드가 있는 노드)를 통과한 노드만 트래픽을 받습니다.
# 2. 건강한 노드는 두 개(myk8s-worker와 myk8s-worker2)이고 각각 절반을 받습니다. Local에서는 노드마다 자기 절반을 자기 파드에만 보냅니다. myk8s-worker2의 절반은 파드
#    몇 개가 나눕니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a share between 0 and 1
# EXERCISE-END
answer = 1 / 2  # two healthy nodes, half each; worker2's half all goes to its one pod
kslab.check.ch07.share(answer, lab)

# %% [markdown] lang="en"
# ## loadBalancerSourceRanges: who may use the VIP
#
# `spec.loadBalancerSourceRanges` lists the client ranges allowed. A cloud LB may filter them
# itself, but kube-proxy filters too, on every node: `KUBE-SERVICES` sends the VIP to a
# `KUBE-FW-…` chain, which jumps on to `KUBE-EXT-…` only for sources in a range; everything else
# falls through, and the `filter` table's `KUBE-PROXY-FIREWALL` drops it ("traffic not accepted by
# KUBE-FW-…"). The cell allows `mypc` (172.18.0.100/32) only (the `kubectl patch` it stands for is
# printed), then connects from `mypc` and from a second external host, 172.18.0.101, to the VIP; and
# from 172.18.0.101 to `svc-lb`'s own nodePort on `myk8s-worker`, the caveat above: the source
# ranges guard the VIP only, the nodePort lets 172.18.0.101 in (under `Local`, on a node with a local
# endpoint). Closing it takes `allocateLoadBalancerNodePorts: false` or a firewall in front of the
# nodes.

# %% [markdown] lang="ko"
# ## loadBalancerSourceRanges: 누가 VIP를 쓸 수 있는가
#
# `spec.loadBalancerSourceRanges`는 허용할 클라이언트 대역을 나열합니다. 클라우드 로드 밸런서가 직접 거를 수도
# 있지만, kube-proxy도 모든 노드에서 거릅니다. `KUBE-SERVICES`는 VIP를 `KUBE-FW-…` 체인으로 보내고, 이 체인은
# 출발지가 대역 안에 있을 때만 `KUBE-EXT-…`로 넘깁니다. 나머지는 그대로 지나가고, `filter` 테이블의
# `KUBE-PROXY-FIREWALL`이 버립니다("traffic not accepted by KUBE-FW-…"). 셀은 `mypc`(172.18.0.100/32)만 허용한
# 다음(이것이 대신하는 `kubectl patch` 명령을 출력합니다), `mypc`와 두 번째 외부 호스트 172.18.0.101에서 VIP로
# 접속합니다. 그리고 172.18.0.101에서 `myk8s-worker`에 있는 `svc-lb` 자신의 노드 포트로 접속합니다. 위의 주의
# 사항입니다. 소스 범위는 VIP만 지키고, 노드 포트로는 172.18.0.101도 들어옵니다(`Local`이므로 로컬 엔드포인트가
# 있는 노드에서). 이 포트를 닫으려면 `allocateLoadBalancerNodePorts: false`나 노드 앞의 방화벽이 필요합니다.

# %%
FW = chain_name("KUBE-FW-", "default/svc-lb:svc-webport", "tcp")
OTHER = "172.18.0.101"  # a second host on the nodes' network, outside the range
on = lab.exact("a load balancer and a second external client, which a kind cluster lacks")
with_lb(on)
on.patch_service("svc-lb", load_balancer_source_ranges=[f"{MYPC}/32"])
try:
    fw = on.sh(W1, f"iptables -t nat -S {FW}")
    firewall = on.sh(W1, f"iptables -S KUBE-PROXY-FIREWALL | grep {FW}")
    allowed = on.run("mypc", VIP, n=100, seed=7)
    refused = on.run(OTHER, VIP, n=10, seed=7, timeout=0.3)  # a dropped SYN: a real client waits for its timeout
    t_other = on.trace(OTHER, VIP)
    lb_np = on.cluster.service("svc-lb").ports[0].node_port  # svc-lb's own nodePort (allocateLoadBalancerNodePorts: true)
    side_door = on.run(OTHER, f"{W1}:{lb_np}", n=20, seed=7, timeout=0.3)  # the same client, the same node's nodePort
finally:
    fresh(on)
print(f"""$ kubectl patch svc svc-lb -p '{{"spec":{{"loadBalancerSourceRanges":["{MYPC}/32"]}}}}'   (what on.patch_service did)""")
print(f"$ iptables -t nat -S {FW}   (on {W1})\n{fw}\n$ iptables -S KUBE-PROXY-FIREWALL | grep {FW}\n{firewall}")
print("mypc -> VIP:", experiments.outcomes(allowed).to_dict(), f" {OTHER} -> VIP:", experiments.outcomes(refused).to_dict(),
      f" {OTHER} -> {W1}:{lb_np}:", experiments.outcomes(side_door).to_dict())
print(f"trace {OTHER} -> {VIP}: {' -> '.join(t_other.chains[:3])}; {t_other.outcome}: {t_other.reason}")
experiments.claim(
    f"-s {MYPC}/32" in fw and "-j DROP" in firewall and (allowed["outcome"] == "ok").all()
    and not (refused["outcome"] == "ok").any()
    and t_other.chains[:3] == ["KUBE-SERVICES", FW, "KUBE-PROXY-FIREWALL"] and f"traffic not accepted by {FW}" in str(t_other)
    and "KUBE-PROXY-FIREWALL" in t_other.reason and f"traffic not accepted by {FW}" in t_other.reason
    and (side_door["outcome"] == "ok").all() and set(side_door["source_ip_seen"]) == {OTHER}
    and set(side_door["endpoint_node"]) == {W1},
    f"loadBalancerSourceRanges [{MYPC}/32]: mypc 100/100 answered through the VIP; {OTHER} 0/10: {FW} let it fall through "
    f"and KUBE-PROXY-FIREWALL dropped it (the trace's reason names the rule 'traffic not accepted by {FW}'); "
    f"yet {OTHER} got 20/20 answers through svc-lb's nodePort {W1}:{lb_np}: the source ranges do not cover the nodePort",
    f"source ranges: mypc {experiments.outcomes(allowed).to_dict()}, {OTHER} {experiments.outcomes(refused).to_dict()}, "
    f"trace {t_other.chains[:3]} reason {t_other.reason!r}, nodePort {experiments.outcomes(side_door).to_dict()}",
)

# %% [markdown] lang="en"
# **Exercise (a new case).** `svc-lb` gets `loadBalancerSourceRanges: ["172.18.0.96/29"]`. Which of
# 172.18.0.100 (`mypc`), 172.18.0.101, 172.18.0.120 and 192.168.1.10 reach the VIP? Give a set of
# addresses.

# %% [markdown] lang="ko"
# **연습 문제(새로운 경우).** `svc-lb`에 `loadBalancerSourceRanges: ["172.18.0.96/29"]`를 줍니다. 172.18.0.100
# (`mypc`), 172.18.0.101, 172.18.0.120, 192.168.1.10 중 어느 주소가 VIP에 닿을까요? 주소의 집합으로 답하세요.

# %% [markdown] lang="en" hint="ch07.source_ranges"
# 1. loadBalancerSourceRanges lets through only sources inside the listed CIDRs; kube-proxy drops the others in its
#    KUBE-FW-… chain.
# 2. 172.18.0.96/29 covers 2^(32-29) = 8 addresses starting at 172.18.0.96: which of the four addresses fall between
#    172.18.0.96 and 172.18.0.103 (`ipaddress.ip_address(a) in ipaddress.ip_network("172.18.0.96/29")`)?

# %% [markdown] lang="ko" hint="ch07.source_ranges"
# 1. loadBalancerSourceRanges는 나열한 CIDR 안의 출발지만 통과시킵니다. 나머지는 kube-proxy가 KUBE-FW-… 체인에서 버립니다.
# 2. 172.18.0.96/29는 172.18.0.96부터 2^(32-29) = 8개 주소를 포함합니다. 네 주소 중 172.18.0.96과 172.18.0.103 사이에 드는 것은
#    무엇입니까(`ipaddress.ip_address(a) in ipaddress.ip_network("172.18.0.96/29")`)?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. {"172.18.0.100"}
# EXERCISE-END
answer = {"172.18.0.100", "172.18.0.101"}  # a /29 is 8 addresses: 172.18.0.96-172.18.0.103
kslab.check.ch07.source_ranges(answer, lab)

# %% [markdown] lang="en"
# ## Explore: the traffic policy panel
#
# Toggle **Cluster / Local**, set how many pods each worker runs, and pick where the client enters:
# one node's `IP:nodePort`, or the load balancer's VIP. The left chart counts, per ingress node, the
# connections answered and dropped; the right one each pod's share, and the line under them which
# client addresses the pods saw. Try: `Local` entering at the control plane (all dropped); `Local`
# behind the LB with 3/1/0 (the imbalance); `Cluster` with the same placement (even, but the pods
# see node addresses); a worker with 0 pods under `Local` entering there. The panel works on its own
# copy of the lab, so it changes nothing in yours.

# %% [markdown] lang="ko"
# ## 탐색: 트래픽 정책 패널
#
# **Cluster / Local**을 바꾸고, 워커마다 파드 수를 정하고, 클라이언트가 들어갈 곳을 고르세요. 한 노드의
# `IP:nodePort`이거나 로드 밸런서의 VIP입니다. 왼쪽 차트는 연결이 들어온 노드마다 응답된 연결과 버려진 연결을 세고,
# 오른쪽 차트는 파드마다 몫을 보여 주며, 그 아래 줄은 파드가 본 클라이언트 주소입니다. 해 볼 것: 컨트롤 플레인으로
# 들어가는 `Local`(모두 버려짐), 3/1/0 배치로 로드 밸런서 뒤의 `Local`(불균형), 같은 배치의 `Cluster`(고르지만 파드가
# 노드 주소를 봄), 파드가 0개인 워커로 들어가는 `Local`. 패널은 자기만의 실습 환경 복사본에서 동작하므로 여러분의
# 실습 환경은 바뀌지 않습니다.

# %%
import gc

from kslab.views import TrafficPolicyPanel

panel = TrafficPolicyPanel(lab.exact("pods pinned per node and a load balancer at every move, which a live cluster cannot give"))
gc.freeze()  # keeps the controls responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# The claim below does not read the panel (whose controls you may have moved): it runs its own
# experiments with `compute_traffic_policy`, the function the panel calls on each move: one pod per
# worker, the client entering at the control plane, under each policy.

# %% [markdown] lang="ko"
# 아래의 확인은 (컨트롤을 움직였을 수도 있는) 패널을 읽지 않습니다. 패널이 움직일 때마다 부르는 함수인
# `compute_traffic_policy`로 따로 실험합니다. 워커마다 파드 하나, 클라이언트는 컨트롤 플레인으로 들어가고, 정책마다
# 한 번씩입니다.

# %%
from kslab.views import compute_traffic_policy

one_each = {W1: 1, W2: 1, W3: 1}
via_cp = {policy: compute_traffic_policy(lab, policy, one_each, CP, 600, seed=8) for policy in ("Cluster", "Local")}
cluster_share = experiments.shares(via_cp["Cluster"].df)
cluster_seen = set(via_cp["Cluster"].df["source_ip_seen"].dropna())
experiments.claim(
    len(cluster_share) == 3 and (abs(cluster_share - 1 / 3) < 0.05).all() and cluster_seen == {NODE_IP[CP]}
    and via_cp["Cluster"].dropped_share == 0 and via_cp["Local"].dropped_share == 1,
    f"entering at {CP}: Cluster spreads over the 3 pods ({', '.join(f'{s:.0%}' for s in cluster_share)}), each seeing "
    f"{NODE_IP[CP]} (SNAT); Local drops all 600 (no local pod)",
    f"compute_traffic_policy changed: Cluster shares {cluster_share.round(3).to_dict()}, seen {cluster_seen}, "
    f"dropped Cluster {via_cp['Cluster'].dropped_share}, Local {via_cp['Local'].dropped_share}",
)

# %% [markdown] lang="en"
# ## Cluster or Local?
#
# | | `externalTrafficPolicy: Cluster` (default) | `externalTrafficPolicy: Local` |
# |---|---|---|
# | hops | a node without the chosen pod forwards to another node: a possible second hop | none: the pod is on the ingress node |
# | client address the pod sees | the ingress node's (SNAT, `KUBE-MARK-MASQ` in `KUBE-EXT-…`) | the client's own (no SNAT) |
# | balance | even per pod (the ladder over all endpoints) | even per **node** behind an LB: skewed when pods are spread unevenly |
# | node without a pod | forwards, works | drops ("has no local endpoints"); an LB must probe `healthCheckNodePort` |
# | LB health probe | kube-proxy's own `:10256/healthz`: every healthy node is eligible | `healthCheckNodePort` `/healthz`: only nodes with a ready local pod |
# | the node's own traffic | to `KUBE-SVC-…`, masqueraded | the same (`route LOCAL traffic`) |
# | choose it when | balance and simplicity matter more than the client address | the app must see (log, filter by) the client address, or the extra hop costs too much; spread pods evenly (anti-affinity, topology spread) |

# %% [markdown] lang="ko"
# ## Cluster냐 Local이냐
#
# | | `externalTrafficPolicy: Cluster`(기본값) | `externalTrafficPolicy: Local` |
# |---|---|---|
# | 홉 | 고른 파드가 없는 노드는 다른 노드로 전달: 두 번째 홉이 생길 수 있음 | 없음: 파드가 연결이 들어온 노드에 있음 |
# | 파드가 보는 클라이언트 주소 | 연결이 들어온 노드의 주소(SNAT, `KUBE-EXT-…`의 `KUBE-MARK-MASQ`) | 클라이언트 자신의 주소(SNAT 없음) |
# | 균형 | 파드마다 고르게(모든 엔드포인트에 대한 사다리) | 로드 밸런서 뒤에서 **노드**마다 고르게: 파드가 고르지 않게 퍼지면 치우침 |
# | 파드가 없는 노드 | 전달하므로 동작함 | 버림("has no local endpoints"). 로드 밸런서가 `healthCheckNodePort`를 프로브해야 함 |
# | 로드 밸런서의 헬스 프로브 | kube-proxy 자신의 `:10256/healthz`: 건강한 모든 노드가 대상 | `healthCheckNodePort`의 `/healthz`: 준비된 로컬 파드가 있는 노드만 |
# | 노드 자신의 트래픽 | `KUBE-SVC-…`로, 마스커레이드됨 | 같음(`route LOCAL traffic`) |
# | 고를 때 | 클라이언트 주소보다 균형과 단순함이 중요할 때 | 앱이 클라이언트 주소를 봐야 할 때(기록, 필터링), 또는 추가 홉의 비용이 클 때. 파드를 고르게 퍼뜨리세요(안티 어피니티, 토폴로지 분배) |

# %% [markdown] lang="en"
# ## On the real kernel
#
# With `KSLAB_BACKEND=netns` (root) the same cells run on real namespaces: `lab.sh` runs the real
# `curl` and `iptables`, each node namespace runs a real HTTP health check server on the
# `healthCheckNodePort` serving kube-proxy's answer, and the load balancer is a namespace of its
# own that probes every node over real HTTP and forwards real connections only to the nodes that
# answered 200. On kind the Local patch, the rules and the health check answers of the lab as made
# are live (kube-proxy's own server on each node); kind has no load balancer (`EXTERNAL-IP`
# `<pending>`), so the VIP, placed pods, a pod made not ready and a second external client run on a
# simulator twin and say so in one line each.

# %% [markdown] lang="ko"
# ## 실제 커널에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 같은 셀이 실제 네임스페이스에서 실행됩니다. `lab.sh`는 실제 `curl`과
# `iptables`를 실행하고, 노드 네임스페이스마다 실제 HTTP 헬스 체크 서버가 `healthCheckNodePort`에서 kube-proxy의
# 응답을 주며, 로드 밸런서는 별도의 네임스페이스로서 모든 노드를 실제 HTTP로 프로브하고 200으로 응답한 노드에만 실제
# 연결을 전달합니다. kind에서는 Local 패치와 규칙, 그리고 처음 만든 그대로의 실습 환경에서 받은 헬스 체크 응답이
# 실제 클러스터의 것입니다(각 노드의 kube-proxy 자신의 서버). kind에는 로드 밸런서가 없으므로(`EXTERNAL-IP`가
# `<pending>`) VIP, 파드 배치, 준비되지 않은 파드, 두 번째 외부 클라이언트는 sim 복제본에서 실행되며, 각각
# 한 줄로 그렇다고 알려 줍니다.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - `externalTrafficPolicy: Local` (외부 트래픽 정책) keeps the client's address: `KUBE-EXT-…` jumps to
#   `KUBE-SVL-…`, the node's own endpoints only, with no masquerade mark; a node without a ready local
#   pod drops the connection (`KUBE-EXTERNAL-SERVICES`: "has no local endpoints"). The node's own
#   traffic still goes cluster-wide, masqueraded. (`KUBE-XLB-…` in the study notes is the pre-1.24 name.)
# - A LoadBalancer (로드 밸런서) Service with `Local` gets a `healthCheckNodePort` (헬스 체크 노드 포트):
#   every node's kube-proxy answers 200 with `localEndpoints: n`, or 503 with 0 (or when kube-proxy
#   itself is unhealthy), and the load balancer sends only to nodes answering 200. A passthrough
#   load balancer like kslab's spreads per node, so uneven pods get uneven shares; MetalLB's L2
#   mode sends everything to one node, and a proxy load balancer (cloud-provider-kind's Envoy)
#   hides the client's address even under `Local`.
# - `loadBalancerSourceRanges` is enforced by every node for the VIP: `KUBE-FW-…` lets listed
#   sources on, `KUBE-PROXY-FIREWALL` drops the rest. It does not cover the Service's nodePort,
#   which stays open on every node unless `allocateLoadBalancerNodePorts: false` or a firewall
#   closes it.
#
# Next: chapter 08 takes the readiness probes (준비성 프로브) the health check counts, and the
# EndpointSlice conditions behind them (study 2.7).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - `externalTrafficPolicy: Local`(외부 트래픽 정책)은 클라이언트의 주소를 보존합니다. `KUBE-EXT-…`가 노드 자신의
#   엔드포인트만 있는 `KUBE-SVL-…`로 마스커레이드 표시 없이 점프합니다. 준비된 로컬 파드가 없는 노드는 연결을
#   버립니다(`KUBE-EXTERNAL-SERVICES`: "has no local endpoints"). 노드 자신의 트래픽은 여전히 클러스터 전체로
#   마스커레이드되어 갑니다. (스터디 노트의 `KUBE-XLB-…`는 1.24 이전의 이름입니다.)
# - `Local`인 로드 밸런서(LoadBalancer) 서비스는 헬스 체크 노드 포트(`healthCheckNodePort`)를 받습니다. 모든 노드의
#   kube-proxy가 `localEndpoints: n`과 함께 200, 또는 0과 함께(또는 kube-proxy 자신이 건강하지 않으면) 503으로
#   응답하고, 로드 밸런서는 200으로 응답한 노드에만 보냅니다. kslab의 것 같은 패스스루 로드 밸런서는 노드마다
#   나누므로 파드가 고르지 않으면 몫도 고르지 않습니다. L2 모드의 MetalLB는 모두 한 노드로 보내고, 프록시 방식의
#   로드 밸런서(cloud-provider-kind의 Envoy)는 `Local`에서도 클라이언트의 주소를 가립니다.
# - `loadBalancerSourceRanges`는 모든 노드가 VIP에 대해 지킵니다. `KUBE-FW-…`가 나열된 출발지만 넘기고,
#   `KUBE-PROXY-FIREWALL`이 나머지를 버립니다. 서비스의 노드 포트는 막지 않으므로, `allocateLoadBalancerNodePorts:
#   false`나 방화벽으로 닫지 않는 한 모든 노드에서 열려 있습니다.
#
# 다음 장: 08장은 헬스 체크가 세는 준비성 프로브(readiness probe)와 그 뒤의 엔드포인트슬라이스(EndpointSlice)
# 조건을 다룹니다(스터디 2.7).
