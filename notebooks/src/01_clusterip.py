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
# # 01 · ClusterIP and kube-proxy's iptables chains (클러스터IP와 kube-proxy의 iptables 체인)
#
# Study notes: section 1 (ClusterIP basics). In this chapter you will be able to:
#
# 1. read the rules kube-proxy writes for a ClusterIP Service (서비스), chain by chain;
# 2. follow one connection from `net-pod` through `KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT`;
# 3. derive why the probabilities are 1/3, 1/2 and then nothing (the "ladder");
# 4. check with 10,000 connections that every endpoint (엔드포인트) gets the same share.

# %% [markdown] lang="ko"
# # 01 · 클러스터 IP와 kube-proxy의 iptables 체인 (ClusterIP and kube-proxy's iptables chains)
#
# 스터디 노트 1장(ClusterIP 기본)에 해당합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. kube-proxy가 클러스터 IP(ClusterIP) 서비스(Service)에 대해 쓰는 규칙(rule)을 체인(chain)별로 읽을 수 있습니다.
# 2. `net-pod`에서 시작한 연결 하나를 `KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT` 순서로 따라갈 수 있습니다.
# 3. 확률이 왜 1/3, 1/2, 그리고 없음으로 이어지는지("사다리") 유도할 수 있습니다.
# 4. 연결 10,000개로 모든 엔드포인트(endpoint)가 같은 몫을 받는지 확인할 수 있습니다.

# %%
import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=1)  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
print(f"backend: {lab.backend}; nodes: {', '.join(n.name for n in lab.cluster.nodes)}")
svc = lab.cluster.service("svc-clusterip")
print(f"svc-clusterip: ClusterIP {svc.cluster_ip}, port {svc.ports[0].port} -> targetPort {svc.ports[0].target_port}")

# %% [markdown] lang="en"
# ## The rules, as kube-proxy writes them
#
# Every node's kube-proxy writes the same rules for `svc-clusterip`. Here they are for the control
# plane, where `net-pod` runs, in the form `iptables-save` prints them.

# %% [markdown] lang="ko"
# ## kube-proxy가 쓰는 규칙 그대로
#
# 모든 노드(node)의 kube-proxy는 `svc-clusterip`에 대해 같은 규칙을 씁니다. 아래는 `net-pod`가 실행되는
# 컨트롤 플레인(control plane) 노드의 규칙을 `iptables-save`가 출력하는 형식 그대로 보여 줍니다.

# %%
rules = lab.render("myk8s-control-plane")
info = next(p for p in rules.service_ports if p.info.name_string == "default/svc-clusterip:svc-webport")
chains = [info.info.svc_chain] + [e.chain for e in info.categorized.cluster]
for line in rules.save_text().splitlines():
    if "svc-clusterip" in line or any(f"-A {c} " in line for c in chains):
        print(line)

# %% [markdown] lang="en"
# Read them top down:
#
# - `KUBE-SERVICES` matches the ClusterIP and port (`-d 10.200.1.x/32 --dport 9000`) and jumps to
#   the Service's chain `KUBE-SVC-KBDEBIL6IU6WL7RF` (SHA-256 of `default/svc-clusterip:svc-webporttcp`);
# - the SVC chain's first rule marks connections from **outside** the pod network
#   (`! -s 10.10.0.0/16`) for masquerade (마스커레이드);
# - then one rule per endpoint, each with `-m statistic --mode random --probability p`, the last
#   without; each jumps to a `KUBE-SEP-…` chain;
# - a SEP chain DNATs (목적지 NAT) to one pod's `IP:80`, after its hairpin rule (chapter 03).

# %% [markdown] lang="ko"
# 위에서부터 읽습니다.
#
# - `KUBE-SERVICES`는 클러스터 IP와 포트(`-d 10.200.1.x/32 --dport 9000`)가 일치하면 서비스의 체인
#   `KUBE-SVC-KBDEBIL6IU6WL7RF`로 점프합니다(이 이름은 `default/svc-clusterip:svc-webporttcp`의 SHA-256에서 나옵니다).
# - SVC 체인의 첫 규칙은 파드(Pod) 네트워크 **밖에서** 온 연결(`! -s 10.10.0.0/16`)에 마스커레이드(masquerade)
#   표시를 합니다.
# - 그다음은 엔드포인트마다 규칙 하나씩입니다. 각 규칙에는 `-m statistic --mode random --probability p`가
#   붙고, 마지막 규칙에만 붙지 않습니다. 각 규칙은 `KUBE-SEP-…` 체인으로 점프합니다.
# - SEP 체인은 헤어핀 규칙(03장) 다음에 파드 하나의 `IP:80`으로 DNAT(목적지 NAT, destination NAT)합니다.

# %% [markdown] lang="en"
# ## One connection, hook by hook

# %% [markdown] lang="ko"
# ## 연결 하나를 훅(hook)마다 따라가기

# %%
t = lab.trace("net-pod", "svc-clusterip")
print(t)
experiments.claim(
    t.chains[:2] == ["KUBE-SERVICES", "KUBE-SVC-KBDEBIL6IU6WL7RF"] and t.chains[2].startswith("KUBE-SEP-")
    and t.dnat_to.endswith(":80") and not t.masquerade and t.outcome == "ok",
    f"net-pod -> svc-clusterip: KUBE-SERVICES -> KUBE-SVC-KBDEBIL6IU6WL7RF -> {t.chains[2]} -> DNAT {t.dnat_to}, no masquerade",
    f"the trace changed: chains {t.chains[:3]}, DNAT {t.dnat_to}, masquerade {t.masquerade}, outcome {t.outcome}",
)

# %% [markdown] lang="en"
# ## Why 1/3, then 1/2, then nothing: the ladder
#
# Rules are tried in order. Rule 1 sees every new connection and keeps 1/3 of them. Rule 2 sees
# the remaining 2/3 and must keep another 1/3 of the *total*: (1/3) / (2/3) = 1/2. Rule 3 sees
# the last 1/3 and takes it all. In general rule *i* of *n* (from 0) matches with 1/(n−i).
#
# **Predict** before you run the next cell: out of 10,000 connections from `net-pod`, how many
# reach each webpod? And would the answer change if the rules said 1/3, 1/3, 1/3?

# %% [markdown] lang="ko"
# ## 왜 1/3, 다음 1/2, 다음은 없음인가: 사다리
#
# 규칙은 순서대로 검사합니다. 규칙 1은 모든 새 연결을 보고 그중 1/3을 가져갑니다. 규칙 2는 남은 2/3를 보고
# *전체*의 1/3을 더 가져가야 하므로 (1/3) / (2/3) = 1/2입니다. 규칙 3은 마지막 1/3을 보고 전부 가져갑니다.
# 일반적으로 *n*개 중 *i*번째 규칙(0부터 셈)은 1/(n−i)의 확률로 일치합니다.
#
# 다음 셀을 실행하기 전에 **예측**해 보세요. `net-pod`에서 연결 10,000개를 열면 webpod마다 몇 개씩 도착할까요?
# 규칙이 1/3, 1/3, 1/3이었다면 답이 달라질까요?

# %%
df = lab.run("net-pod", "svc-clusterip", n=10_000, seed=1)
webpods = ["webpod1", "webpod2", "webpod3"]
charts.distribution_figure(df, categories=webpods).show()
chi2, p = experiments.chi_square_uniform(df, categories=webpods)
print(f"chi-square vs uniform: {chi2:.2f}, p = {p:.3f}")
experiments.claim_uniform(df, webpods, tolerance=0.02)

# %% [markdown] lang="en"
# The chi-square statistic says in one number how far the counts are from an even split; the
# p-value is the chance that a fair three-way split strays at least that far. A p-value above
# 0.01 means the counts are what a fair split produces by chance. (With 1/3, 1/3, 1/3 the first
# pod would get 1/3, the second 2/9, the third 4/9.)

# %% [markdown] lang="ko"
# 카이제곱(chi-square) 통계량은 관측한 횟수가 고른 분배에서 얼마나 벗어났는지를 수 하나로 나타내고,
# p-값(p-value)은 공정한 3등분이 우연히 그만큼 이상 벗어날 확률입니다. p-값이 0.01보다 크면 관측한 횟수는
# 공정한 분배에서 우연히 나올 수 있는 수준이라는 뜻입니다. (규칙이 1/3, 1/3, 1/3이었다면 첫 번째 파드는 1/3,
# 두 번째는 2/9, 세 번째는 4/9를 받았을 것입니다.)

# %% [markdown] lang="en"
# ## Explore: replicas and connections
#
# `deploy-echo` (behind `svc-nodeport`) can be scaled. Move the **replicas** slider: kube-proxy
# re-renders every node's rules with a new ladder, and the chart redraws. Try 1 (no statistic
# rule at all), 2, 7 and 10; then lower **connections** to 300 and watch the noise grow.

# %% [markdown] lang="ko"
# ## 탐색: 레플리카(replica)와 연결 수
#
# `deploy-echo`(`svc-nodeport` 뒤에 있는 디플로이먼트(Deployment))는 규모를 바꿀 수 있습니다. **replicas**
# 슬라이더를 움직이면 kube-proxy가 모든 노드의 규칙을 새 사다리로 다시 쓰고, 차트를 다시 그립니다.
# 1(statistic 규칙이 아예 없음), 2, 7, 10을 차례로 해 보세요. 그다음 **connections**를 300으로 낮추고
# 잡음이 커지는 것을 보세요.

# %%
import gc

from kslab.views import DistributionPanel

panel = DistributionPanel(lab, replicas=3, connections=3000)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %%
r = panel.result
experiments.claim(abs(r.shares - 1 / r.replicas).max() < 0.05,
                  f"with {r.replicas} replicas every pod got 1/{r.replicas} ± 5%",
                  f"uneven split with {r.replicas} replicas: {dict(r.shares.round(3))}")

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** With 4 endpoints, which probabilities does kube-proxy write on the first three rules?
# Give a list of three numbers.

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** 엔드포인트가 4개일 때 kube-proxy는 처음 세 규칙에 어떤 확률을 씁니까? 숫자 세 개의 리스트로 답하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. [0.5, 0.5, 0.5]
# EXERCISE-END
answer = [1 / 4, 1 / 3, 1 / 2]
kslab.check.ch01.ladder(answer)

# %% [markdown] lang="en"
# **2.** What is the name of the `KUBE-SVC-…` chain of `svc-nodeport` (port name `svc-webport`)?
# Compute it; then find it in `lab.render("myk8s-worker").restore_text()`.

# %% [markdown] lang="ko"
# **2.** `svc-nodeport`(포트 이름 `svc-webport`)의 `KUBE-SVC-…` 체인 이름은 무엇입니까? 직접 계산한 다음,
# `lab.render("myk8s-worker").restore_text()`에서 찾아보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
from kslab.proxy.iptables.chains import chain_hash

answer = "KUBE-SVC-" + chain_hash("default/svc-nodeport:svc-webport" + "tcp")
kslab.check.ch01.chain_name(answer)

# %% [markdown] lang="en"
# **3.** A process on the node `myk8s-worker` itself (not a pod) connects to `svc-clusterip`.
# Is the connection masqueraded? Answer `True` or `False`, then confirm with `lab.trace`.

# %% [markdown] lang="ko"
# **3.** (파드가 아니라) 노드 `myk8s-worker` 자체에서 실행되는 프로세스가 `svc-clusterip`에 연결합니다.
# 이 연결은 마스커레이드됩니까? `True` 또는 `False`로 답하고 `lab.trace`로 확인하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.trace("myk8s-worker", "svc-clusterip").masquerade
kslab.check.ch01.node_masquerade(answer, lab)

# %% [markdown] lang="en"
# ## On the real kernel
#
# With `KSLAB_BACKEND=netns` (root) the same cells run against real namespaces and real TCP;
# otherwise they ran on the simulator above, which executes the same rules.

# %% [markdown] lang="ko"
# ## 실제 커널에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 같은 셀이 실제 네임스페이스와 실제 TCP 위에서 실행됩니다.
# 그렇지 않으면 위의 셀들은 같은 규칙을 실행하는 시뮬레이터에서 실행된 것입니다.

# %%
print(f"this chapter ran on the {lab.backend} backend")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A ClusterIP (클러스터IP) exists only in rules: `KUBE-SERVICES` matches it and jumps to the
#   Service's `KUBE-SVC` chain; a `KUBE-SEP` chain per endpoint DNATs to the pod.
# - The probability ladder 1/n, 1/(n−1), …, 1/2, (none) gives every endpoint 1/n: random load
#   balancing (랜덤 부하분산), no health checks, no other algorithm (chapter 04).
# - Pod-to-Service traffic keeps its source; only sources outside `--cluster-cidr` are marked for
#   masquerade.
#
# Next: chapter 02 pins a client to one endpoint with `sessionAffinity: ClientIP` (세션 어피니티).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 클러스터 IP는 규칙 안에만 존재합니다. `KUBE-SERVICES`가 이를 일치시켜 서비스의 `KUBE-SVC` 체인으로
#   점프하고, 엔드포인트마다 있는 `KUBE-SEP` 체인이 파드로 DNAT합니다.
# - 확률 사다리(probability ladder) 1/n, 1/(n−1), …, 1/2, (없음)은 모든 엔드포인트에 1/n씩 나눠 줍니다.
#   랜덤 부하 분산(random load balancing)일 뿐, 헬스 체크(health check)도 다른 알고리즘도 없습니다(04장).
# - 파드에서 서비스로 가는 트래픽은 출발지 주소를 그대로 유지합니다. `--cluster-cidr` 밖의 출발지만
#   마스커레이드 표시를 받습니다.
#
# 다음 장: 02장에서는 `sessionAffinity: ClientIP`(세션 어피니티)로 클라이언트를 엔드포인트 하나에 고정합니다.
