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
# # 04 · What ClusterIP cannot do (서비스(ClusterIP)의 부족한 점)
#
# Study notes 1.8 list four limits of a ClusterIP Service. By the end you will be able to show
# each one with a measurement:
#
# 1. **no access from outside** the cluster (외부 접속 불가): a trace from `mypc` → NodePort (chapter 06);
# 2. **no health checks** (헬스체크 없음): a broken pod keeps its share → readiness probes (chapter 08);
# 3. **random only** (랜덤 분산만): iptables' ladder vs the IPVS schedulers (rr, wrr, lc, wlc, lblc,
#    lblcr, sh, dh, sed, nq, mh), side by side;
# 4. **cross-node hops** (다른 노드로의 홉): the ladder ignores where pods run → topology aware
#    routing (chapter 09).
#
# Each section runs the study's own commands with `lab.sh(WHERE, COMMAND)` (WHERE is a node or a
# pod; `kslab sh WHERE -- COMMAND` does the same from a terminal) next to what kslab measures.
# The cells put the lab back as they found it, and the panels, the checks and the exercises work
# on copies of it (`lab.copy()`); if a cell stops halfway, run `lab.reset()` to get the study's lab
# back as it was made.
#
# What this chapter uses, besides `lab.trace`, `lab.run` and `lab.cluster` (chapters 00-01):
#
# - `lab.sh(where, command)`: a study command in a node or pod; the text it printed, with
#   `.returncode` (`curl`'s exit code, for example);
# - `lab.break_pod(pod)` / `lab.break_pod(pod, False)`: the app answers HTTP 500 (or is fixed);
#   `lab.set_ready(pod, False)`: what the kubelet does when a readiness probe fails;
#   `lab.scale(deployment, n)`; `lab.clear_kernel_state()`: empty conntrack, zero the rule counters;
#   `lab.reset()`: the study's lab as made; `lab.copy()`: a copy on sim to experiment on (your lab
#   stays as it is); `lab.exact(needs)`: the lab an experiment that needs exact state runs on, the
#   lab itself on sim and netns, a sim twin of a live kind cluster (`lab.copy()`: the nodes' real
#   rules) after one printed line saying what the experiment needs (here: a broken app and a
#   readiness set by hand, counters from zero, `ip` in webpod1, whose image has none);
# - `kslab.ipvs`: `service_servers(lab.cluster, service)` (the real servers kube-proxy programs),
#   `RealServer.plain(name, ip, weight)` (a hand-set weight, plain IPVS only), `simulate(scheduler,
#   servers, clients, n)` (one row per connection), `spread(df)` (each server's share),
#   `compare(servers, clients, n)` (one row per scheduler), `client_matrix(df)`;
# - `kslab.views`: `SchedulerPanel`, `CrossNodePanel` and `compute_cross_node(lab, clients,
#   replicas)` (the panel's measurement as a function; both work on `lab.copy()`).
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# # 04 · 서비스(ClusterIP)의 부족한 점 (What ClusterIP cannot do)
#
# 스터디 노트 1.8은 ClusterIP 서비스(Service)의 한계 네 가지를 꼽습니다. 이 장을 마치면 각 한계를 측정으로
# 보여 줄 수 있습니다.
#
# 1. 클러스터 **밖에서 접속할 수 없음**(외부 접속 불가, no access from outside): `mypc`에서 추적(trace) →
#    NodePort(06장)
# 2. **헬스 체크 없음**(no health checks): 고장 난 파드(Pod)도 자기 몫을 계속 받음 → 준비성 프로브(readiness
#    probe, 08장)
# 3. **랜덤 분산만**(random only): iptables의 사다리와 IPVS 스케줄러(scheduler: rr, wrr, lc, wlc, lblc, lblcr,
#    sh, dh, sed, nq, mh)를 나란히 비교
# 4. **다른 노드로의 홉**(cross-node hops): 사다리는 파드가 어느 노드(node)에서 실행되는지 모름 → 토폴로지
#    인지 라우팅(topology aware routing, 09장)
#
# 각 절은 스터디에서 쓰는 명령을 `lab.sh(WHERE, COMMAND)`로 그대로 실행하고(WHERE는 노드나 파드 이름이며,
# 터미널에서는 `kslab sh WHERE -- COMMAND`가 같은 일을 합니다), 그 옆에 kslab이 측정한 것을 놓습니다. 셀은
# 실습 환경을 처음 상태로 되돌려 놓고, 패널과 확인(check), 연습 문제는 실습 환경의 복사본(`lab.copy()`)에서
# 실험합니다. 셀이 중간에 멈췄다면 `lab.reset()`을 실행해 처음 만든 그대로의 실습 환경으로 돌아가세요.
#
# 이 장에서 쓰는 것(`lab.trace`, `lab.run`, `lab.cluster`는 00-01장에서 다뤘습니다):
#
# - `lab.sh(where, command)`: 노드나 파드에서 스터디의 명령을 실행합니다. 출력된 텍스트를 돌려주며
#   `.returncode`(예: `curl`의 종료 코드)도 함께 있습니다.
# - `lab.break_pod(pod)` / `lab.break_pod(pod, False)`: 앱이 HTTP 500으로 응답하게 합니다(또는 고칩니다).
#   `lab.set_ready(pod, False)`: 준비성 프로브가 실패할 때 kubelet이 하는 일입니다. `lab.scale(deployment, n)`,
#   `lab.clear_kernel_state()`: conntrack을 비우고 규칙 카운터를 0으로 만듭니다. `lab.reset()`: 처음 만든
#   그대로의 실습 환경입니다. `lab.copy()`: 실험에 쓰는 sim 위의 복사본입니다(여러분의 실습 환경은 그대로입니다).
#   `lab.exact(needs)`: 정확한 상태가 필요한 실험을 실행할 실습 환경입니다. sim과 netns에서는 실습 환경
#   자신이고, 실제 kind 클러스터에서는 그 sim 복제본(`lab.copy()`: 노드의 실제 규칙)이며, 이때 실험에 무엇이
#   필요한지 한 줄로 출력합니다(이 장에서는 손으로 고장 낸 앱과 준비 상태, 0에서 시작하는 카운터, `ip`가 없는
#   이미지를 쓰는 webpod1의 `ip`).
# - `kslab.ipvs`: `service_servers(lab.cluster, service)`(kube-proxy가 프로그래밍하는 실제 서버),
#   `RealServer.plain(name, ip, weight)`(직접 정한 가중치, 일반 IPVS 전용), `simulate(scheduler, servers,
#   clients, n)`(연결마다 한 행), `spread(df)`(서버별 몫), `compare(servers, clients, n)`(스케줄러마다 한 행),
#   `client_matrix(df)`.
# - `kslab.views`: `SchedulerPanel`, `CrossNodePanel`, `compute_cross_node(lab, clients, replicas)`(패널의
#   측정을 함수로 부른 것. 둘 다 `lab.copy()`에서 실험합니다).
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import pandas as pd
import plotly.graph_objects as go

import kslab
from kslab import experiments, ipvs

lab = kslab.Lab(seed=4, proxy_mode="iptables")
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## 1. No access from outside (외부 접속 불가)
#
# `mypc` sits on the same "docker network" as the nodes (172.18.0.0/16), but it is not a node:
# no kube-proxy runs there, and nothing routes 10.200.1.0/24 (the Service CIDR) anywhere.
# **Predict** before running: does `mypc` reach `svc-clusterip`? Which rules does its SYN meet?

# %% [markdown] lang="ko"
# ## 1. 외부 접속 불가 (No access from outside)
#
# `mypc`는 노드와 같은 "docker 네트워크"(172.18.0.0/16)에 있지만 노드가 아닙니다. 그곳에서는 kube-proxy가
# 실행되지 않고, 10.200.1.0/24(서비스 CIDR)를 어디로든 라우팅해 주는 것도 없습니다. 실행하기 전에
# **예측**해 보세요. `mypc`는 `svc-clusterip`에 도달할까요? 그 SYN 패킷은 어떤 규칙을 만날까요?

# %%
t = lab.trace("mypc", "svc-clusterip")
print(t)
experiments.claim(t.outcome != "ok" and not t.endpoint_pod and not t.dnat_to,
                  f"mypc cannot reach the ClusterIP ({t.outcome}): no kube-proxy rule ever sees its packet",
                  "mypc reached a ClusterIP: the lesson is wrong")

# %% [markdown] lang="en"
# The study's commands show the same. `mypc`'s routing table (`ip -c route`) has no route for
# 10.200.1.0/24: the packet goes to its default gateway, which knows nothing of Services, and
# `curl` gives up (exit code 28: timeout). `curl` from `net-pod`, a pod, gets an answer.

# %% [markdown] lang="ko"
# 스터디의 명령으로도 같은 것을 볼 수 있습니다. `mypc`의 라우팅 테이블(`ip -c route`)에는 10.200.1.0/24로
# 가는 경로가 없습니다. 패킷은 기본 게이트웨이로 가는데, 그곳은 서비스를 전혀 모르므로 `curl`은 포기합니다
# (종료 코드 28: 시간 초과). 파드인 `net-pod`에서 실행한 `curl`은 응답을 받습니다.

# %%
cluster_ip = lab.cluster.service("svc-clusterip").cluster_ip
mypc_routes = lab.sh("mypc", "ip -c route")
outside = lab.sh("mypc", f"curl -s -m 2 {cluster_ip}:9000")
inside = lab.sh("net-pod", "curl -s svc-clusterip:9000")
print(f"$ ip -c route   (on mypc)\n{mypc_routes}")
print(f"$ curl -s -m 2 {cluster_ip}:9000   (on mypc)  -> exit code {outside.returncode}")
print(f"$ curl -s svc-clusterip:9000   (on net-pod)\n{inside}")
experiments.claim(
    not any(line.startswith("10.200.") for line in mypc_routes.splitlines()) and outside.returncode != 0
    and not outside and inside.startswith("Hostname: webpod"),
    f"mypc has no route to the Service CIDR and its curl fails (exit {outside.returncode}); net-pod's curl is answered by a webpod",
    "mypc reached the ClusterIP, or net-pod did not")

# %% [markdown] lang="en"
# The same Service from a pod works, because the pod's node runs kube-proxy's rules. A ClusterIP
# is a *virtual* address that exists only inside the nodes' netfilter tables: that is the gap a
# NodePort Service fills (chapter 06: it opens a port on every node's own address).

# %% [markdown] lang="ko"
# 같은 서비스도 파드에서는 동작합니다. 파드의 노드가 kube-proxy의 규칙을 실행하기 때문입니다. 클러스터
# IP(ClusterIP)는 노드의 넷필터 테이블 안에만 존재하는 *가상* 주소입니다. 이 빈틈을 메우는 것이 NodePort
# 서비스입니다(06장: 모든 노드 자신의 주소에 포트를 엽니다).

# %% [markdown] lang="en"
# ## 2. No health checks (헬스체크 없음)
#
# webpod2's app breaks: the process still accepts TCP connections, but answers HTTP 500.
# kube-proxy never looks at pods, only at EndpointSlices; without a readiness probe, nothing
# changes there. **Predict** the error rate with one of three pods broken, then with a failing
# readiness probe (the pod becomes *not ready* in the EndpointSlice).
#
# Write your first prediction (a number between 0 and 1) in the next cell before running the
# experiment. The experiment cell also runs the study's check, `kubectl get endpointslices ...
# -o yaml`, filtered to each endpoint's `ready:` condition and pod name.

# %% [markdown] lang="ko"
# ## 2. 헬스 체크 없음 (No health checks)
#
# webpod2의 앱이 고장 났습니다. 프로세스는 여전히 TCP 연결을 받지만 HTTP 500으로 응답합니다. kube-proxy는
# 파드를 직접 보지 않고 엔드포인트슬라이스(EndpointSlice)만 봅니다. 준비성 프로브가 없으면 거기에는 아무
# 변화도 없습니다. 세 파드 중 하나가 고장 났을 때의 오류율을 **예측**하고, 이어서 준비성 프로브가 실패할
# 때(파드가 엔드포인트슬라이스에서 *준비되지 않음(not ready)* 상태가 될 때)의 오류율도 예측해 보세요.
#
# 실험을 실행하기 전에 첫 번째 예측(0과 1 사이의 수)을 다음 셀에 적으세요. 실험 셀은 스터디의 확인 명령
# `kubectl get endpointslices ... -o yaml`도 실행하고, 엔드포인트마다 `ready:` 조건과 파드 이름만 골라
# 보여 줍니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch04.error_rate")` shows its hints one at a time; once you have checked
# an answer of your own and seen every hint, `kslab.check.solution("ch04.error_rate")` shows the solution. An
# exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch04.error_rate")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch04.error_rate")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch04.error_rate"
# 1. kube-proxy never looks at the pods or their apps, only at the EndpointSlice. Without a readiness probe, does
#    anything in the EndpointSlice change when webpod2's app answers 500?
# 2. If webpod2 stays a ready endpoint, the ladder keeps sending it its share: with three endpoints, what share is
#    that?

# %% [markdown] lang="ko" hint="ch04.error_rate"
# 1. kube-proxy는 파드나 애플리케이션을 보지 않고 엔드포인트슬라이스(EndpointSlice)만 봅니다. 준비성 프로브(readiness probe)가 없으면, webpod2가 500으로 응답할 때
#    엔드포인트슬라이스에 바뀌는 것이 있습니까?
# 2. webpod2가 준비된 엔드포인트로 남으면 사다리는 계속 제 몫을 보냅니다. 엔드포인트가 세 개일 때 그 몫은 얼마입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # the share of connections answered with an error, one of three webpods broken, no probe
# EXERCISE-END
answer = 1 / 3  # kube-proxy knows nothing of the app: webpod2 keeps its third
kslab.check.ch04.error_rate(answer, lab)

# %%
slices = "kubectl get endpointslices -l kubernetes.io/service-name=svc-clusterip -o yaml | grep -E 'ready:|name: webpod'"
on = lab.exact("webpod2's app broken and its readiness set by hand, which on a live cluster are its image's and its kubelet's")
on.break_pod("webpod2")  # the app answers HTTP 500; the pod stays Running and ready
try:
    listed_broken = on.sh("myk8s-control-plane", slices)
    before = on.run("net-pod", "svc-clusterip", n=3000, seed=1)
    on.set_ready("webpod2", False)  # what the kubelet does when a readiness probe fails
    listed_unready = on.sh("myk8s-control-plane", slices)
    after = on.run("net-pod", "svc-clusterip", n=3000, seed=1)
finally:  # back to the study's lab, even if a step failed
    on.set_ready("webpod2", True)
    on.break_pod("webpod2", False)
print(f"$ {slices}\n--- webpod2 broken, no probe:\n{listed_broken}--- readiness probe failing:\n{listed_unready}")

rates = [float((d["outcome"] == "error").mean()) for d in (before, after)]
go.Figure(go.Bar(x=["no readiness probe", "readiness probe failing"], y=rates, text=[f"{r:.1%}" for r in rates],
                 marker_color=["#d62728", "#2ca02c"]),
          layout=dict(title=f"Error rate with webpod2 broken ({on.backend} backend)", yaxis_tickformat=".0%",
                      yaxis_title="connections answered with HTTP 500", template="plotly_white", height=340)).show()
experiments.claim(abs(rates[0] - 1 / 3) < experiments.noise(1 / 3, 3000) and rates[1] == 0
                  and listed_broken.count("ready: true") == 3 and listed_unready.count("ready: false") == 1,
                  f"without a probe webpod2 stays ready in the EndpointSlice and {rates[0]:.1%} of connections hit it; "
                  "once its probe fails it is ready: false and none do",
                  f"error rates {rates} or the EndpointSlice conditions differ from the lesson")

# %% [markdown] lang="en"
# ## 3. Random only (랜덤 분산만): iptables vs IPVS
#
# iptables mode has one algorithm: each **new connection** independently picks an endpoint with
# probability 1/n (the ladder of chapter 01). The study reads it in the Service's KUBE-SVC chain
# on the client's node: `iptables -t nat -S` lists the rules (every one `--mode random`, nothing
# else), and `iptables -v --numeric --table nat --list KUBE-SVC-...` counts, in `pkts`, the
# connections each rule sent to its endpoint (the nat table sees only a connection's first
# packet). `lab.clear_kernel_state()` zeroes the counters first (it also empties conntrack).

# %% [markdown] lang="ko"
# ## 3. 랜덤 분산만 (Random only): iptables 대 IPVS
#
# iptables 모드에는 알고리즘이 하나뿐입니다. **새 연결**마다 독립적으로 확률 1/n로 엔드포인트(endpoint)를
# 고릅니다(01장의 사다리). 스터디는 이것을 클라이언트 노드의 서비스 KUBE-SVC 체인에서 읽습니다.
# `iptables -t nat -S`는 규칙을 보여 주고(모두 `--mode random`이며 다른 방식은 없습니다),
# `iptables -v --numeric --table nat --list KUBE-SVC-...`의 `pkts`는 각 규칙이 자기 엔드포인트로 보낸 연결
# 수를 셉니다(nat 테이블은 연결의 첫 패킷만 봅니다). 먼저 `lab.clear_kernel_state()`로 카운터를
# 0으로 만듭니다(conntrack도 비웁니다).

# %%
import re

node = lab.cluster.pod("net-pod").node_name
ladder = lab.sh(node, 'iptables -t nat -S | grep "default/svc-clusterip:svc-webport -> "')
chain = re.search(r"-A (KUBE-SVC-\w+)", ladder)[1]
on = lab.exact("rule counters from zero, which a live node shares with the cluster's own traffic")  # the ladder above is live
on.clear_kernel_state()
on.run("net-pod", "svc-clusterip", n=3000, seed=2)
counted = on.sh(node, f"iptables -v --numeric --table nat --list {chain}")
print(f"$ iptables -t nat -S | grep ...   (on {node})\n{ladder}\n$ iptables -v --numeric --table nat --list {chain}\n{counted}")
probabilities = [float(p) for p in re.findall(r"--probability (\S+)", ladder)]
sent = [int(line.split()[0]) for line in counted.splitlines() if "KUBE-SEP-" in line]
experiments.claim(
    len(sent) == 3 and sum(sent) == 3000 and all(abs(k / 3000 - 1 / 3) < experiments.noise(1 / 3, 3000) for k in sent)
    and [round(p, 4) for p in probabilities] == [0.3333, 0.5] and ladder.count("--mode random") == 2
    and "--mode nth" not in ladder,
    f"the ladder is random only (1/3, then 1/2, then the rest) and its counters split 3000 connections as {sent}",
    f"the ladder or its counters changed: {probabilities}, {sent}")

# %% [markdown] lang="en"
# IPVS mode (`kube-proxy --proxy-mode ipvs --ipvs-scheduler NAME`) hands the choice to a kernel
# scheduler. `kslab.ipvs` re-implements
# each scheduler from the Linux sources (`net/netfilter/ipvs/ip_vs_*.c`). Here they all get the
# same workload: `svc-clusterip`'s three endpoints as kube-proxy programs them
# (`ipvs.service_servers(lab.cluster, "svc-clusterip")`), 12 clients, 3,000 connections arriving
# at 2 per second and lasting 2 s on average.
#
# kube-proxy gives **every endpoint weight 1** (0 while the pod is terminating): Kubernetes has
# no per-endpoint weight. So the weighted schedulers have nothing to weigh.
#
# The table's **active-count variance** measures how even the load is: just before each new
# connection, count the open connections of each server and take the variance (the mean squared
# distance from their mean); then average over all connections. 0 means the servers always held
# the same number. **variance per weight** first divides each server's count by its weight.
#
# **Predict** before running: with `--ipvs-scheduler wrr` (weighted round robin), what share of
# `svc-clusterip`'s connections does webpod3 get? Answer with a number between 0 and 1 in the
# next cell. Then, from the table: which schedulers give each client a single server? Which rows
# are identical to another row?

# %% [markdown] lang="ko"
# IPVS 모드(`kube-proxy --proxy-mode ipvs --ipvs-scheduler NAME`)는 이 선택을 커널의
# 스케줄러(scheduler)에 맡깁니다. `kslab.ipvs`는 각 스케줄러를 리눅스 소스(`net/netfilter/ipvs/ip_vs_*.c`)대로
# 다시 구현한 것입니다. 여기서는 모든 스케줄러에 같은 작업 부하를 줍니다. kube-proxy가 프로그래밍하는 그대로의
# `svc-clusterip` 엔드포인트 세 개(`ipvs.service_servers(lab.cluster, "svc-clusterip")`), 클라이언트 12개,
# 초당 2개씩 도착해 평균 2초 동안 유지되는 연결 3,000개입니다.
#
# kube-proxy는 **모든 엔드포인트에 가중치(weight) 1**을 줍니다(파드가 종료 중일 때는 0). 쿠버네티스에는
# 엔드포인트별 가중치가 없습니다. 그래서 가중치 스케줄러는 가중할 것이 없습니다.
#
# 표의 **활성 연결 수의 분산**(active-count variance)은 부하가 얼마나 고른지를 잽니다. 새 연결이 올 때마다
# 직전에 서버별 열린 연결 수를 세어 분산(평균에서 떨어진 거리의 제곱의 평균)을 구하고, 이를 모든 연결에 대해
# 평균합니다. 0이면 서버들이 항상 같은 수의 연결을 가졌다는 뜻입니다. **가중치당 분산**(variance per
# weight)은 먼저 서버별 연결 수를 가중치로 나눈 뒤 구합니다.
#
# 실행하기 전에 **예측**해 보세요. `--ipvs-scheduler wrr`(가중 라운드 로빈, weighted round robin)일 때
# webpod3은 `svc-clusterip` 연결 중 몇 분의 몇을 받을까요? 다음 셀에 0과 1 사이의 수로 답하세요. 그다음 표를
# 보고 답해 보세요. 어떤 스케줄러가 클라이언트마다 서버 하나만 줄까요? 표의 어떤 행이 다른 행과 똑같을까요?

# %% [markdown] lang="en" hint="ch04.wrr_share"
# 1. Weighted round robin gives each server a share proportional to its weight. What weight does kube-proxy program
#    for each endpoint?
# 2. Every ready endpoint gets weight 1 (Kubernetes has no per-endpoint weight), so wrr behaves like rr: divide
#    evenly over svc-clusterip's endpoints.

# %% [markdown] lang="ko" hint="ch04.wrr_share"
# 1. 가중 라운드 로빈(wrr)은 서버마다 가중치에 비례한 몫을 줍니다. kube-proxy는 각 엔드포인트에 어떤 가중치를 씁니까?
# 2. 준비된 엔드포인트는 모두 가중치 1입니다(쿠버네티스에는 엔드포인트별 가중치가 없습니다). 따라서 wrr은 rr처럼 동작합니다. svc-clusterip의 엔드포인트 수로 똑같이 나누세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # webpod3's share under kube-proxy's IPVS mode with wrr
# EXERCISE-END
answer = 1 / 3  # kube-proxy programs weight 1 for every endpoint: wrr rotates like rr
kslab.check.ch04.wrr_share(answer)

# %%
servers = ipvs.service_servers(lab.cluster, "svc-clusterip")  # what kube-proxy programs: weight 1 each
clients = [f"10.10.0.{10 + i}" for i in range(12)]
table = ipvs.compare(servers, clients, 3000, seed=1)
same = lambda a, b: table.loc[a].equals(table.loc[b])
experiments.claim(
    all(s.weight == 1 for s in servers)
    and table.loc["sh", "endpoints per client"] == 1 and table.loc["mh", "endpoints per client"] > 2
    and table.loc["iptables", "endpoints per client"] > 2
    and same("wrr", "rr") and same("wlc", "lc")
    and max(table.loc[s, "active-count variance"] for s in ("lc", "wlc")) < table.loc["iptables", "active-count variance"],
    "kube-proxy programs weight 1 for every endpoint: wrr is rr and wlc is lc; sh pins each client to one server, "
    "mh does not (kube-proxy sets mh-port, so the source port counts), iptables spreads every client over all three; "
    "lc/wlc keep the open connections more even than random",
    f"the scheduler comparison changed:\n{table}")
table

# %% [markdown] lang="en"
# Weights exist only in **plain IPVS**, a virtual service an administrator builds by hand with
# `ipvsadm -a -t VIP:PORT -r IP:PORT -w WEIGHT` (no kube-proxy involved).
# `ipvs.RealServer.plain(name, ip, weight)` builds such a server, and `flags=()` leaves out the
# scheduler flag kube-proxy adds. With webpod3 at weight 2, wrr and wlc finally differ from rr and
# lc, while iptables' ladder (which has no weights at all) stays at 1/3 each:

# %% [markdown] lang="ko"
# 가중치는 **일반 IPVS**(plain IPVS)에만 있습니다. 관리자가 `ipvsadm -a -t VIP:PORT -r IP:PORT -w WEIGHT`로
# 직접 만든 가상 서비스(virtual service)이며 kube-proxy는 관여하지 않습니다. `ipvs.RealServer.plain(name, ip,
# weight)`가 그런 서버를 만들고, `flags=()`는 kube-proxy가 붙이는 스케줄러 플래그를 뺍니다. webpod3의 가중치를
# 2로 하면 비로소 wrr와 wlc가 rr, lc와 달라집니다. 반면 가중치라는 개념이 없는 iptables의 사다리는 여전히
# 1/3씩 나눕니다.

# %%
servers = ipvs.service_servers(lab.cluster, "svc-clusterip")  # as in the table above
clients = [f"10.10.0.{10 + i}" for i in range(12)]
plain = [ipvs.RealServer.plain(s.name, s.ip, 2 if s.name == "webpod3" else 1) for s in servers]  # ipvsadm -w, by hand
plain_table = ipvs.compare(plain, clients, 3000, seed=1, names=("iptables", "rr", "wrr", "lc", "wlc"), flags=())
experiments.claim(
    abs(plain_table.loc["wrr", "webpod3"] - 0.5) < 0.02 and abs(plain_table.loc["rr", "webpod3"] - 1 / 3) < 0.02
    and abs(plain_table.loc["iptables", "webpod3"] - 1 / 3) < 0.03 and plain_table.loc["wlc", "webpod3"] > 0.37
    and plain_table["variance per weight"].idxmin() == "wlc",
    "plain IPVS only: with webpod3 at weight 2, wrr gives it half and wlc about 2/5 (the evenest load per weight); "
    "rr and iptables still give it 1/3",
    f"the plain-IPVS comparison changed:\n{plain_table}")
plain_table

# %% [markdown] lang="en"
# Read the tables:
#
# - `rr` / `wrr` rotate through the servers in list order. Under kube-proxy every weight is 1,
#   so wrr is exactly rr; only the plain IPVS service above gives webpod3 2 of every 4.
# - `lc`, `wlc`, `sed`, `nq` look at each server's connections and send the new one to the least
#   loaded. lc and wlc count **active connections** (established) and **inactive** ones too (closed
#   connections IPVS still remembers, e.g. in TIME_WAIT): overhead = active × 256 + inactive. sed
#   and nq count only active ones. This simulation forgets a closed connection at once
#   (`inactive_timeout=0`), so there are no inactive ones here: with weight 1 everywhere, wlc is
#   exactly lc, and sed and nq choose the same servers. The load-aware schedulers score a lower
#   active-count variance than random; variance per weight is the load the weighted schedulers even
#   out: the same column under kube-proxy, lowest for wlc in the plain IPVS table.
# - `lblc` and `lblcr` (locality-based least connection, with replication) were made for caches:
#   they keep one server per **destination** address. A ClusterIP is one destination, so they
#   send everything to one server until it is overloaded: more active connections than its
#   weight (here 1) *and* some server under half its weight (with weight 1: an idle server).
#   Only then do they move on, to the weighted least-connection server.
# - `sh`, `dh`, `mh` **hash an address**: sh the client's address into a 256-bucket table, so a
#   client keeps its server as long as the list of servers does not change; dh the destination,
#   so every connection to the ClusterIP goes to one server; mh (Maglev hashing, a consistent
#   hash: each server owns a fair share of a lookup table, and removing one server moves only its
#   own clients) into a table of 4,093 entries (the kernel's default size,
#   `CONFIG_IP_VS_MH_TAB_INDEX=12`), but kube-proxy turns on
#   the `mh-port` flag, which hashes the client's port too, so one client's connections spread.
# - iptables' random choice ignores weights and load: over many connections it is even, but at
#   any moment one server may hold more open connections than another.
#
# **Stickiness is not a scheduler's job.** `sessionAffinity: ClientIP` in IPVS mode turns on IPVS
# **persistence** (`ipvsadm -p timeoutSeconds`), whatever the scheduler: the kernel keeps a
# connection template per client address that sends the client's new connections to the same
# server until the timeout. `ipvs.compare(..., persistence=10800)` shows it (10,800 s is the
# affinity's default timeout):

# %% [markdown] lang="ko"
# 표 읽는 법:
#
# - `rr` / `wrr`는 목록 순서대로 서버를 돌아가며 고릅니다. kube-proxy 아래에서는 가중치가 모두 1이므로 wrr는
#   rr와 똑같습니다. webpod3이 4번 중 2번을 받는 것은 위의 일반 IPVS 서비스뿐입니다.
# - `lc`, `wlc`, `sed`, `nq`는 각 서버의 연결 수를 보고 새 연결을 가장 한가한 서버에 보냅니다. lc와 wlc는
#   **활성 연결**(active connection, 수립된 연결)과 **비활성 연결**(inactive connection, IPVS가 아직 기억하는
#   닫힌 연결, 예: TIME_WAIT)을 함께 셉니다. 부하(overhead) = 활성 × 256 + 비활성입니다. sed와 nq는 활성 연결만
#   셉니다. 이 시뮬레이션은 닫힌 연결을 바로 잊으므로(`inactive_timeout=0`) 여기에는 비활성 연결이 없습니다.
#   가중치가 모두 1이면 wlc는 lc와 똑같고, sed와 nq도 같은 서버를 고릅니다. 부하를 보는 스케줄러는 무작위보다
#   활성 연결 수의 분산이 낮습니다. 가중치당 분산은 가중치 스케줄러가 고르게 맞추는 부하입니다. kube-proxy
#   아래에서는 앞 열과 같고, 일반 IPVS 표에서는 wlc가 가장 낮습니다.
# - `lblc`와 `lblcr`(locality-based least connection, 복제 포함)는 캐시 서버용으로 만들어졌습니다. **목적지**
#   주소마다 서버 하나를 유지합니다. 클러스터 IP는 목적지 하나이므로, 서버 하나가 과부하가 될 때까지 모든
#   연결을 그 서버로 보냅니다. 과부하란 활성 연결이 가중치(여기서는 1)보다 많고, *동시에* 가중치의 절반에 못
#   미치는 서버가 있다는 뜻입니다(가중치 1이면 연결이 하나도 없는 서버). 그때에만 가중 최소 연결 서버로 옮겨
#   갑니다.
# - `sh`, `dh`, `mh`는 **주소를 해시**합니다. sh는 클라이언트 주소를 256개 버킷의 표로 해시하므로, 서버 목록이
#   바뀌지 않는 한 클라이언트가 자기 서버를 유지합니다. dh는 목적지를 해시하므로 클러스터 IP로 가는 모든 연결이
#   서버 하나로 갑니다. mh(Maglev 해싱, 일관된 해시(consistent hash)의 하나로, 서버마다 조회 표의 공평한 몫을
#   가지며 서버 하나를 빼도 그 서버의 클라이언트만 옮겨 갑니다)는 항목 4,093개짜리 표(커널 기본 크기,
#   `CONFIG_IP_VS_MH_TAB_INDEX=12`)로 해시하지만, kube-proxy가 `mh-port` 플래그를 켜서 클라이언트의 포트도 해시하므로 한 클라이언트의 연결이
#   여러 서버로 흩어집니다.
# - iptables의 무작위 선택은 가중치와 부하를 무시합니다. 연결이 많으면 고르게 나뉘지만, 어느 순간에는 한
#   서버가 다른 서버보다 열린 연결을 더 많이 가질 수 있습니다.
#
# **고정(stickiness)은 스케줄러가 하는 일이 아닙니다.** IPVS 모드에서 `sessionAffinity: ClientIP`(세션
# 어피니티, session affinity)는 스케줄러와 상관없이 IPVS **지속성**(persistence, `ipvsadm -p timeoutSeconds`)을
# 켭니다. 커널은 클라이언트 주소마다 연결 템플릿(connection template)을 두고, 시간 제한이 지날 때까지 그
# 클라이언트의 새 연결을 같은 서버로 보냅니다. `ipvs.compare(..., persistence=10800)`로 확인합니다(10,800초는
# 어피니티의 기본 시간 제한입니다).

# %%
servers = ipvs.service_servers(lab.cluster, "svc-clusterip")  # as in the table above
clients = [f"10.10.0.{10 + i}" for i in range(12)]
names = ("rr", "wrr", "lc", "mh")
sticky = ipvs.compare(servers, clients, 3000, seed=1, names=names, persistence=10800)
loose = ipvs.compare(servers, clients, 3000, seed=1, names=names)  # the same without affinity
experiments.claim(
    (sticky["endpoints per client"] == 1).all() and (loose["endpoints per client"] > 2).all(),
    "with persistence (ClientIP affinity) every scheduler keeps each client on one server; without it none of these does",
    f"persistence no longer pins clients:\n{sticky}")
sticky

# %% [markdown] lang="en"
# Explore one scheduler at a time (kube-proxy's servers, weight 1 each): the heatmap shows which
# server each client reached. Raise the load to see how the active-count variance of each
# scheduler grows as more connections are open at once. Switch affinity to `ClientIP`: every row
# keeps one server, whatever the scheduler (persistence; for `iptables`, chapter 02's `recent` list).

# %% [markdown] lang="ko"
# 스케줄러를 하나씩 탐색해 보세요(kube-proxy의 서버, 가중치는 모두 1). 히트맵은 각 클라이언트가 어느 서버에
# 도달했는지 보여 줍니다. 부하를 높여 동시에 열린 연결이 많아질수록 각 스케줄러의 활성 연결 수 분산이 어떻게
# 커지는지 보세요. affinity를 `ClientIP`로 바꾸면 스케줄러와 상관없이 모든 행이 서버 하나를 유지합니다
# (지속성, `iptables`라면 02장의 `recent` 목록).

# %%
import gc

from kslab.views import SchedulerPanel

scheduler_panel = SchedulerPanel(scheduler="sh")
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
scheduler_panel

# %%
servers = ipvs.service_servers(lab.cluster, "svc-clusterip")  # as in the table above
clients = [f"10.10.0.{10 + i}" for i in range(12)]
servers_per_client = {name: (ipvs.client_matrix(ipvs.simulate(name, servers, clients, 3000, seed=1)) > 0).sum(axis=1)
                      for name in ("sh", "mh")}  # the heatmap's rows, computed afresh
experiments.claim((servers_per_client["sh"] == 1).all() and (servers_per_client["mh"] > 1).all(),
                  "every client row of sh's heatmap has exactly one server; under kube-proxy's mh (mh-port) every row has several",
                  f"sh or mh changed: {servers_per_client}")

# %% [markdown] lang="en"
# ## 4. Cross-node hops (다른 노드로의 홉)
#
# The ladder does not know where pods run. A client on node *N* reaches a pod on its own node only
# with probability (pods on N)/(replicas); every other connection crosses to another node (one
# more hop, another node's bandwidth). The study sees the hop in the routing tables (`ip -c
# route`): a pod's only way out is its node (`default via 10.10.1.1`), and the node sends
# another node's pod range (podCIDR) to that node's address over the docker network.

# %% [markdown] lang="ko"
# ## 4. 다른 노드로의 홉 (Cross-node hops)
#
# 사다리는 파드가 어디서 실행되는지 모릅니다. 노드 *N*의 클라이언트가 자기 노드의 파드에 도달할 확률은
# (N에 있는 파드 수)/(레플리카 수)뿐이고, 나머지 연결은 모두 다른 노드로 건너갑니다(홉 하나가 더 생기고, 다른
# 노드의 대역폭을 씁니다). 스터디는 이 홉을 라우팅 테이블(`ip -c route`)에서 봅니다. 파드가 밖으로 나가는 길은
# 자기 노드뿐이고(`default via 10.10.1.1`), 노드는 다른 노드의 파드 대역(podCIDR)을 docker 네트워크를 거쳐 그
# 노드의 주소로 보냅니다.

# %%
pod_routes = lab.exact("ip in webpod1, whose image (traefik/whoami) has none").sh("webpod1", "ip -c route")
here = lab.cluster.pod("webpod1").node_name
node_routes = lab.sh(here, "ip -c route")
print(f"$ ip -c route   (on webpod1)\n{pod_routes}\n$ ip -c route   (on {here})\n{node_routes}")
hops = [f"{n.pod_cidr} via {n.internal_ip} dev eth0" for n in lab.cluster.nodes if n.name != here]
experiments.claim(pod_routes.startswith("default via 10.10.1.1 ") and all(h in node_routes for h in hops),
                  f"webpod1 leaves through its node {here}, which sends each other node's podCIDR to that node: {hops}",
                  "the pod's or the node's routes changed")

# %% [markdown] lang="en"
# The panel below uses `svc-nodeport`, the study's other Service, whose endpoints are the
# `deploy-echo` pods. It is a NodePort Service (chapter 06 teaches that part); like every NodePort
# Service it also has a ClusterIP, and that ClusterIP is all this chapter uses. **Predict** the
# cross-node share for webpod1 as `deploy-echo` grows from 1 to 8 replicas. (The panel scales
# `deploy-echo` on a copy of your lab, `lab.copy()`: your lab keeps its 3 replicas.)

# %% [markdown] lang="ko"
# 아래 패널은 스터디의 다른 서비스인 `svc-nodeport`를 씁니다. 그 엔드포인트는 `deploy-echo` 파드입니다.
# 이 서비스는 NodePort 서비스이지만(그 부분은 06장에서 배웁니다), 모든 NodePort 서비스처럼 클러스터 IP도
# 가지고 있고, 이 장은 그 클러스터 IP만 씁니다. `deploy-echo`가 레플리카(replica) 1개에서 8개로 늘어날 때
# webpod1의 노드 간 연결 비율을 **예측**해 보세요. (패널은 여러분의 실습 환경의 복사본 `lab.copy()`에서
# `deploy-echo`의 레플리카 수를 바꿉니다. 여러분의 실습 환경은 레플리카 3개를 그대로 유지합니다.)

# %%
from kslab.views import CrossNodePanel

panel = CrossNodePanel(lab, max_replicas=8)
panel

# %%
from kslab.views import compute_cross_node

fresh = compute_cross_node(lab, ("webpod1", "net-pod"), 5, seed=2)  # a new run on a copy with 5 replicas, not the panel's state
worst = max(abs(r["observed"] - r["expected"]) for r in fresh.values())
experiments.claim(worst < 0.05 and fresh["net-pod"]["local_pods"] == 0 and fresh["net-pod"]["observed"] == 1,
                  f"with 5 replicas the cross-node share follows 1 − local pods/replicas within {worst:.1%}; net-pod's node "
                  "(the control plane) runs no deploy-echo pod, so all its connections cross",
                  f"cross-node share deviates by {worst:.1%}: {fresh}")

# %% [markdown] lang="en"
# ## Exercises (연습 문제)
#
# The exercises work on copies of the lab (`twin = lab.copy()`), so your lab stays as it is.
#
# **1.** A new case for `sh`: webpod2's readiness probe fails, so kube-proxy removes its real
# server from `svc-clusterip`. Of the chapter's 12 clients (`10.10.0.10` to `10.10.0.21`), how
# many keep the server they had? **Predict** first (only webpod2's clients must move; do the
# others stay?), then simulate `sh` before and after (`ipvs.client_matrix(...).idxmax(axis=1)` is
# each client's server) and count.

# %% [markdown] lang="ko"
# ## 연습 문제 (Exercises)
#
# 연습 문제는 실습 환경의 복사본(`twin = lab.copy()`)에서 풀므로 여러분의 실습 환경은 그대로입니다.
#
# **1.** `sh`의 새로운 경우입니다. webpod2의 준비성 프로브가 실패해 kube-proxy가 `svc-clusterip`에서 그 실제
# 서버를 뺍니다. 이 장의 클라이언트 12개(`10.10.0.10`부터 `10.10.0.21`까지) 중 몇 개가 원래 서버를 유지합니까?
# 먼저 **예측**해 보세요(webpod2의 클라이언트는 옮겨 가야 합니다. 나머지는 그대로일까요?). 그다음 `sh`를 전후로
# 시뮬레이션하고(`ipvs.client_matrix(...).idxmax(axis=1)`가 클라이언트마다의 서버입니다) 세어 보세요.

# %% [markdown] lang="en" hint="ch04.sticky_scheduler"
# 1. `sh` (source hashing) hashes the client address into a table of 256 buckets, and the buckets are dealt to the
#    servers in turn. What happens to that table when a server is removed?
# 2. The table is rebuilt round robin over the two servers left, so the buckets of webpod1 and webpod3 clients can
#    move too. Simulate `sh` with `ipvs.simulate` before and after `twin.set_ready("webpod2", False)` and compare
#    `ipvs.client_matrix(...).idxmax(axis=1)` client by client.

# %% [markdown] lang="ko" hint="ch04.sticky_scheduler"
# 1. `sh`(source hashing)는 클라이언트 주소를 256개 버킷의 표로 해시하고, 버킷은 서버에 차례로 나눠 줍니다. 서버 하나가 빠지면 그 표는 어떻게 됩니까?
# 2. 표는 남은 두 서버에 라운드 로빈으로 다시 만들어지므로 webpod1과 webpod3의 클라이언트 버킷도 옮겨질 수 있습니다. `twin.set_ready("webpod2", False)` 전후로
#    `ipvs.simulate`로 `sh`를 돌리고 `ipvs.client_matrix(...).idxmax(axis=1)`를 클라이언트별로 비교하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of clients, 0 to 12
# EXERCISE-END
twin = lab.copy()
clients = [f"10.10.0.{10 + i}" for i in range(12)]
before = ipvs.client_matrix(ipvs.simulate("sh", ipvs.service_servers(twin.cluster, "svc-clusterip"), clients, 3000)).idxmax(axis=1)
twin.set_ready("webpod2", False)  # the failing probe: kube-proxy programs two real servers
after = ipvs.client_matrix(ipvs.simulate("sh", ipvs.service_servers(twin.cluster, "svc-clusterip"), clients, 3000)).idxmax(axis=1)
answer = int((before == after).sum())  # sh re-deals its 256 buckets over the servers left: not only webpod2's clients move
print(f"{answer} of 12 keep their server; {int((before != 'webpod2').sum())} were not on webpod2")
kslab.check.ch04.sticky_scheduler(answer, lab)

# %% [markdown] lang="en"
# **2.** With 6 `deploy-echo` replicas, what share of webpod1's connections to `svc-nodeport`
# leave its node? Count the pods on webpod1's node.

# %% [markdown] lang="ko"
# **2.** `deploy-echo` 레플리카가 6개일 때, webpod1이 `svc-nodeport`로 여는 연결 중 몇 분의 몇이 자기 노드를
# 떠납니까? webpod1의 노드에 있는 파드 수를 세어 보세요.

# %% [markdown] lang="en" hint="ch04.cross_node"
# 1. The ladder spreads webpod1's connections evenly over all 6 deploy-echo pods; a connection stays on the node only
#    when it lands on a pod of webpod1's own node.
# 2. Scale a copy (`twin = lab.copy(); twin.scale("deploy-echo", 6)`) and count the deploy-echo pods whose
#    `node_name` is webpod1's node; the share that leaves is 1 - local / 6.

# %% [markdown] lang="ko" hint="ch04.cross_node"
# 1. 사다리는 webpod1의 연결을 deploy-echo 파드 6개에 고르게 나눕니다. 연결이 노드 안에 머무는 것은 webpod1과 같은 노드의 파드로 갈 때뿐입니다.
# 2. 복사본에서 늘려 보고(`twin = lab.copy(); twin.scale("deploy-echo", 6)`), `node_name`이 webpod1의 노드인 deploy-echo 파드를 세세요.
#    노드를 떠나는 비율은 1 - local / 6입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
twin = lab.copy()
twin.scale("deploy-echo", 6)
local = sum(p.node_name == twin.cluster.pod("webpod1").node_name for p in twin.cluster.pods if p.owner == "Deployment/deploy-echo")
answer = 1 - local / 6
kslab.check.ch04.cross_node(answer, lab=lab)

# %% [markdown] lang="en"
# **3.** A new case: another Service. On a copy of the lab, scale `deploy-echo` to 5 replicas.
# Under kube-proxy's IPVS mode with `--ipvs-scheduler wrr`, what share of `svc-nodeport`'s new
# connections does each of its endpoints get? Build its real servers as kube-proxy would
# (`ipvs.service_servers(twin.cluster, "svc-nodeport")`) and simulate, or reason from the weights.

# %% [markdown] lang="ko"
# **3.** 새로운 경우, 다른 서비스입니다. 실습 환경의 복사본에서 `deploy-echo`를 레플리카 5개로 늘리세요.
# kube-proxy의 IPVS 모드에서 `--ipvs-scheduler wrr`일 때, `svc-nodeport`의 엔드포인트 하나하나는 새 연결 중
# 몇 분의 몇을 받습니까? kube-proxy처럼 실제 서버(real server)를 만들어(`ipvs.service_servers(twin.cluster,
# "svc-nodeport")`) 시뮬레이션하거나, 가중치로부터 추론하세요.

# %% [markdown] lang="en" hint="ch04.ipvs_share"
# 1. With 5 replicas, how many real servers does kube-proxy program for svc-nodeport
#    (`ipvs.service_servers(twin.cluster, "svc-nodeport")`), and with what weights?
# 2. Equal weights make wrr a plain rotation: each server gets 1 / (number of servers) of the new connections.

# %% [markdown] lang="ko" hint="ch04.ipvs_share"
# 1. 레플리카가 5개일 때 kube-proxy는 svc-nodeport에 리얼 서버를 몇 개, 어떤 가중치로 씁니까(`ipvs.service_servers(twin.cluster,
#    "svc-nodeport")`)?
# 2. 가중치가 모두 같으면 wrr은 단순한 순환입니다. 서버마다 새 연결의 1 / (서버 수)를 받습니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
twin = lab.copy()
twin.scale("deploy-echo", 5)
echo_servers = ipvs.service_servers(twin.cluster, "svc-nodeport")
answer = 1 / len(echo_servers)  # weight 1 each: wrr is round robin over 5 servers
print(ipvs.spread(ipvs.simulate("wrr", echo_servers, [f"10.10.0.{10 + i}" for i in range(12)], 3000, seed=1)))
kslab.check.ch04.ipvs_share(answer, lab=lab)

# %% [markdown] lang="en"
# **4.** A new case for ClientIP affinity: only 4 client addresses reach `svc-clusterip`
# (`10.10.0.10` to `10.10.0.13`; four offices, each behind one NAT address). In IPVS mode with
# `sessionAffinity: ClientIP` and `--ipvs-scheduler rr`, what share of the connections does the
# busiest server get? **Predict** it, then check with `ipvs.simulate(..., persistence=10800)`.

# %% [markdown] lang="ko"
# **4.** ClientIP 어피니티의 새로운 경우입니다. `svc-clusterip`에 클라이언트 주소 4개만 도달합니다
# (`10.10.0.10`부터 `10.10.0.13`까지. 사무실 네 곳이 각각 NAT 주소 하나 뒤에 있습니다). IPVS 모드에서
# `sessionAffinity: ClientIP`와 `--ipvs-scheduler rr`일 때, 가장 바쁜 서버는 연결 중 몇 분의 몇을 받습니까?
# **예측**한 다음 `ipvs.simulate(..., persistence=10800)`로 확인하세요.

# %% [markdown] lang="en" hint="ch04.ipvs_affinity"
# 1. With ClientIP affinity (IPVS persistence), each client address is pinned to one server for the whole run: the
#    scheduler balances clients, not connections.
# 2. rr hands the 4 clients to the 3 servers in turn: how many clients does the busiest server get, and so what share
#    of the connections (the clients connect equally often)?

# %% [markdown] lang="ko" hint="ch04.ipvs_affinity"
# 1. ClientIP 어피니티(IPVS persistence)에서는 클라이언트 주소마다 실행 내내 한 서버에 고정됩니다. 스케줄러는 연결이 아니라 클라이언트를 나눕니다.
# 2. rr은 클라이언트 4개를 서버 3개에 차례로 나눠 줍니다. 가장 바쁜 서버는 클라이언트를 몇 개 받고, 따라서 연결의 몇 분의 몇을 받습니까(클라이언트마다 연결 수는 같습니다)?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a share between 0 and 1
# EXERCISE-END
answer = 2 / 4  # persistence pins each client; rr hands the 4 clients out in turn: one server gets two of them
offices = ipvs.simulate("rr", ipvs.service_servers(lab.cluster, "svc-clusterip"), [f"10.10.0.{10 + i}" for i in range(4)],
                        3000, persistence=10800)
print(ipvs.spread(offices))  # the confirmation: about 1/2, 1/4, 1/4
kslab.check.ch04.ipvs_affinity(answer, lab)

# %% [markdown] lang="en"
# The exercises changed only copies: your lab still has 3 `deploy-echo` replicas. Whenever a cell
# stopped halfway, `lab.reset()` brings the study's lab back as it was made.

# %% [markdown] lang="ko"
# 연습 문제는 복사본만 바꿨으므로 여러분의 실습 환경에는 여전히 `deploy-echo` 레플리카가 3개 있습니다. 셀이
# 중간에 멈췄을 때는 언제든 `lab.reset()`으로 처음 만든 그대로의 실습 환경을 되돌리세요.

# %%
lab.reset()
experiments.claim(sum(1 for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo") == 3,
                  "the lab is the study's again: 3 deploy-echo replicas", "lab.reset() did not restore deploy-echo")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A ClusterIP is reachable only where kube-proxy's rules run: inside the nodes. From outside,
#   use a NodePort (chapter 06) or a LoadBalancer.
# - kube-proxy balances over EndpointSlices, not over healthy apps: add readiness probes
#   (chapter 08): a broken pod is then marked `ready: false` in the slice, and kube-proxy leaves
#   it out of its rules.
# - iptables mode is random only (ignores load); IPVS offers rr, wrr, lc, wlc, lblc, lblcr, sh,
#   dh, sed, nq and mh. kube-proxy gives every endpoint weight 1, so wrr is rr and wlc is lc;
#   ClientIP affinity in IPVS mode is persistence (`ipvsadm -p`), whatever the scheduler.
# - Random choice ignores topology: most connections cross nodes (topology aware routing,
#   chapter 09, and `trafficDistribution`).
#
# Key terms: 외부 접속 (external access), 헬스체크 (health check), 준비성 프로브 (readiness probe),
# 스케줄러 (scheduler), 가중치 (weight), 지속성 (persistence), 노드 간 홉 (cross-node hop).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 클러스터 IP는 kube-proxy의 규칙이 실행되는 곳, 즉 노드 안에서만 도달할 수 있습니다. 밖에서는 NodePort
#   (06장)나 LoadBalancer를 씁니다.
# - kube-proxy는 정상인 앱이 아니라 엔드포인트슬라이스를 기준으로 분산합니다. 준비성 프로브를 추가하면(08장)
#   고장 난 파드가 슬라이스에서 `ready: false`로 표시되고, kube-proxy는 그 파드를 규칙에서 뺍니다.
# - iptables 모드는 랜덤 분산만 합니다(부하를 무시). IPVS는 rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh를
#   제공합니다. kube-proxy는 모든 엔드포인트에 가중치 1을 주므로 wrr는 rr, wlc는 lc와 같습니다. IPVS 모드의
#   ClientIP 어피니티는 스케줄러와 상관없이 지속성(`ipvsadm -p`)입니다.
# - 무작위 선택은 토폴로지를 무시하므로 연결 대부분이 노드를 건너갑니다(토폴로지 인지 라우팅, 09장, 그리고
#   `trafficDistribution`).
#
# 핵심 용어: 외부 접속(external access), 헬스 체크(health check), 준비성 프로브(readiness probe),
# 스케줄러(scheduler), 가중치(weight), 지속성(persistence), 노드 간 홉(cross-node hop).
