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
# # 07 · externalTrafficPolicy and LoadBalancer (외부 트래픽 정책과 로드밸런서)
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
# - `lab.place(deployment, {node: n, ...})`: the Deployment's pods, exactly `n` on each node (the study
#   moves pods with `nodeName`/affinity; here it is one verb), undone by `lab.reset()`;
# - `lab.set_ready(pod, False)`: what the kubelet does when a readiness probe fails (chapter 04);
# - `lab.lb_status("svc-lb")`: the load balancer in front of `svc-lb`: the status each node's health
#   check answered and the nodes it sends to; `lab.advance(seconds)`: time passes (the LB probes again);
# - `kslab.healthcheck.service_health(namespace, name, local_endpoints)`: kube-proxy's health check
#   answer, byte for byte, as upstream's `pkg/proxy/healthcheck` writes it;
# - `views.TrafficPolicyPanel` and `views.compute_traffic_policy(lab, policy, placement, entry,
#   connections)`: the panel of this chapter and the experiment behind it (on a copy of the lab);
#   `charts.health_table`, `charts.ingress_sankey`, `charts.policy_bars`: its charts.
#
# The cells leave the lab as they found it (they patch the Service back or end with `lab.reset()`).
# If a cell stops halfway, run `lab.reset()` and then the set-up cell again.

# %% [markdown] lang="ko"
# # 07 · 외부 트래픽 정책과 로드밸런서 (externalTrafficPolicy and LoadBalancer)
#
# 스터디 노트 2.5(`externalTrafficPolicy: Local`)와 2.6(NodePort에 아직 부족한 점과, 로드밸런서(LoadBalancer)의
# 헬스 체크(health check)가 그것을 어떻게 메우는지)에 해당합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 외부 트래픽 정책(externalTrafficPolicy)이 `Local`일 때 밖에서 온 연결이 어디로 가는지, 파드(Pod)가 어떤
#    클라이언트 주소를 보는지(클라이언트 자신의 주소: SNAT 없음) 예측할 수 있습니다.
# 2. 규칙의 변화를 읽을 수 있습니다. `KUBE-EXT-…`가 `KUBE-SVL-…`로 점프하고, 이 체인에는 노드(node) **자신의**
#    파드로 가는 `KUBE-SEP-…` 점프만 있으며, 로컬 파드가 없는 노드에는 "has no local endpoints" DROP 규칙이 있습니다.
# 3. 서비스(Service)의 헬스 체크 노드포트(`healthCheckNodePort`)에서 노드가 주는 응답(200 또는 503, 그리고
#    `localEndpoints`)을 읽고, 로드밸런서가 그것으로 파드가 있는 노드에만 트래픽을 보내는 방법을 설명할 수 있습니다.
# 4. 파드가 노드에 고르지 않게 퍼져 있을 때 생기는 불균형을 설명하고, `loadBalancerSourceRanges`로 클라이언트를
#    제한할 수 있습니다.
# 5. `Cluster`와 `Local` 중 하나를 고를 수 있습니다.
#
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.run`, `lab.trace`, `lab.cluster`, `lab.reset`,
# `lab.copy`, `lab.exact`, `experiments.claim`, `kslab.check` 외에):
#
# - `lab.patch_service(name, external_traffic_policy="Local")`(그리고 `load_balancer_source_ranges=[...]`):
#   서비스의 `kubectl patch`입니다. 셀은 끝날 때 서비스를 원래대로 되돌립니다.
# - `lab.place(deployment, {node: n, ...})`: 디플로이먼트(Deployment)의 파드를 노드마다 정확히 `n`개 둡니다(스터디는
#   `nodeName`이나 어피니티로 파드를 옮기지만, 여기서는 동사 하나입니다). `lab.reset()`이 되돌립니다.
# - `lab.set_ready(pod, False)`: 준비성 프로브(readiness probe)가 실패할 때 kubelet이 하는 일입니다(04장).
# - `lab.lb_status("svc-lb")`: `svc-lb` 앞의 로드밸런서입니다. 노드마다 헬스 체크가 돌려준 상태 코드와 로드밸런서가
#   연결을 보내는 노드를 알려 줍니다. `lab.advance(seconds)`: 시간이 흐릅니다(로드밸런서가 다시 프로브합니다).
# - `kslab.healthcheck.service_health(namespace, name, local_endpoints)`: kube-proxy의 헬스 체크 응답을 업스트림
#   `pkg/proxy/healthcheck`이 쓰는 그대로, 바이트 단위로 만듭니다.
# - `views.TrafficPolicyPanel`과 `views.compute_traffic_policy(lab, policy, placement, entry, connections)`:
#   이 장의 패널과 그 뒤의 실험입니다(실습 환경의 복사본에서 실행). `charts.health_table`, `charts.ingress_sankey`,
#   `charts.policy_bars`: 그 차트입니다.
#
# 셀은 실습 환경을 찾은 그대로 두고 끝납니다(서비스를 되돌리거나 `lab.reset()`으로 끝납니다). 셀이 중간에
# 멈췄다면 `lab.reset()`을 실행한 다음 설정 셀을 다시 실행하세요.

# %%
import base64
import hashlib

import plotly.graph_objects as go

import kslab
from kslab import charts, experiments, healthcheck

lab = kslab.Lab(seed=7)  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
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


def echo_pods(l, node: str | None = None) -> list[str]:
    """deploy-echo's pods (label app=deploy-websrv), only those on ``node`` if given."""
    return sorted(p for p in l.pods("app=deploy-websrv") if node is None or l.cluster.pod(p).node_name == node)


print(f"svc-nodeport: nodePort {NP}; nodes {NODE_IP}; echo pods per node: "
      + ", ".join(f"{n}: {len(echo_pods(lab, n))}" for n in NODES))

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

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "c"
kslab.check.ch07.local_drop(answer, lab)

# %% [markdown] lang="en"
# The experiment: `kubectl patch` the Service to `Local` (`lab.patch_service`), then 200 connections
# from `mypc` through each node's `IP:nodePort`, and the study's `curl` through a worker: the echo
# server prints the address it saw (`ip`, `connection.remoteAddress`), as the study reads the web
# pod's log. The cell patches the Service back to `Cluster` at the end.

# %% [markdown] lang="ko"
# 실험입니다. 서비스를 `Local`로 `kubectl patch`한 다음(`lab.patch_service`), `mypc`에서 각 노드의
# `IP:nodePort`로 연결을 200개씩 열고, 스터디처럼 워커를 거쳐 `curl`합니다. 에코 서버는 자기가 본 주소
# (`ip`, `connection.remoteAddress`)를 출력합니다. 스터디가 웹 파드의 로그에서 읽는 바로 그 주소입니다.
# 셀은 끝날 때 서비스를 `Cluster`로 되돌립니다.

# %%
import json

lab.patch_service("svc-nodeport", external_traffic_policy="Local")
try:
    runs = {node: lab.run("mypc", f"{node}:{NP}", n=200, seed=2) for node in NODES}
    echo = json.loads(lab.sh("mypc", f"curl -s {NODE_IP[W1]}:{NP}"))
    dropper = lab.sh(CP, "iptables -S KUBE-EXTERNAL-SERVICES | grep 'has no local endpoints'")
finally:
    lab.patch_service("svc-nodeport", external_traffic_policy="Cluster")
cluster_seen = lab.run("mypc", f"{W1}:{NP}", n=50, seed=2)  # the same entry under Cluster, for comparison

print(f"$ curl -s {NODE_IP[W1]}:{NP}   (on mypc)  -> pod {echo['os']['hostname']} saw ip {echo['ip']}, "
      f"remoteAddress {echo['connection']['remoteAddress']}")
print(f"$ iptables -S KUBE-EXTERNAL-SERVICES | grep 'has no local endpoints'   (on {CP})\n{dropper}")
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
    workers_ok and (runs[CP]["outcome"] == "dropped").all() and echo["connection"]["remoteAddress"] == MYPC
    and f"--dport {NP} -j DROP" in dropper and not (cluster_seen["source_ip_seen"] == MYPC).any(),
    f"under Local every worker answered 200/200 from its own pod, which saw mypc's address {MYPC} (no SNAT); "
    f"the control plane, without a pod, dropped all 200 ('has no local endpoints' DROP on --dport {NP}); "
    f"under Cluster the same entry's pods saw {sorted(set(cluster_seen['source_ip_seen']))}, never {MYPC}",
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
# 체인 이름은 01장의 공식에 다른 접두사를 붙여 만듭니다. `KUBE-EXT-…`(서비스의 외부 목적지: 노드포트, 로드밸런서
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
own_sep = chain_name("KUBE-SEP-", "default/svc-nodeport:svc-webport", "tcp", f"{lab.cluster.pod(echo_pods(lab, W1)[0]).pod_ip}:8080")
experiments.claim(
    t.chains[:5] == ["KUBE-SERVICES", "KUBE-NODEPORTS", EXT, SVL, own_sep] and "KUBE-MARK-MASQ" not in t.chains
    and not t.masquerade and t.endpoint_node == W1 and t.source_ip_seen == MYPC
    and svl.count("-j KUBE-SEP-") == 1 and f"-j {own_sep}" in svl and svc_chain.count("-j KUBE-SEP-") == 3
    and f"-j KUBE-MARK-MASQ" in ext_cluster and f"-j {SVL}" in ext_local and f"-j {SVL}" not in ext_cluster,
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
# - 파드 트래픽(`-s 10.10.0.0/16`)은 여전히 `KUBE-SVC-…`로 갑니다. 노드포트를 부르는 파드는 외부가 아닙니다.
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
# 노드의 프로세스가(노드 자신의 주소나 `127.0.0.1`에서) 노드포트로 접속하는 것은 밖에서 노드로 들어온 트래픽이
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
    and (own["outcome"] == "ok").all() and set(own["endpoint_pod"]) == set(echo_pods(lab)) and "route LOCAL traffic" in rules,
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

# %% tags=["solution"]
# EXERCISE-START
answer = None  # True or False
# EXERCISE-END
answer = False  # "route LOCAL traffic" sends the node's own connections to KUBE-SVC-…: any of the three pods
kslab.check.ch07.from_node(answer, lab)
