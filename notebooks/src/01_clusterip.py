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
# # 01 · ClusterIP and kube-proxy's iptables chains (클러스터 IP와 kube-proxy의 iptables 체인)
#
# Study notes: section 1 (ClusterIP basics). In this chapter you will be able to:
#
# 1. list a Service (서비스) and its endpoints (엔드포인트) with the study's `kubectl get svc,ep,endpointslices`;
# 2. read the rules kube-proxy writes for a ClusterIP Service (`iptables -t nat -S | grep ...`) and
#    work out a `KUBE-SVC-…` chain's name yourself;
# 3. follow one connection from `net-pod` through `KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT`;
# 4. derive why the probabilities are 1/3, 1/2 and then nothing (the "ladder"), and read the rules'
#    counters (`iptables -v --numeric --table nat --list KUBE-SVC-…`) after a run of connections.
#
# The API used here (`lab.sh`, `lab.trace`, `lab.run`, `lab.scale`, `lab.clear_kernel_state`,
# `lab.reset`, `lab.copy`, `lab.delete_rules`, `kslab.check`, `experiments.claim`, `experiments.outcomes`)
# is on chapter 00's API card. New here:
# `charts.distribution_figure(runs, categories=pods)` (where connections landed),
# `experiments.chi_square_uniform(runs, categories=pods)` (the chi-square statistic and p-value,
# explained below), `experiments.claim_uniform(runs, pods, tolerance=…)` (a checked claim that every
# pod got 1/n), and `views.DistributionPanel(lab)` / `views.compute_distribution(lab, replicas,
# connections)` (the replica panel and the experiment behind it).
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# # 01 · 클러스터 IP와 kube-proxy의 iptables 체인 (ClusterIP and kube-proxy's iptables chains)
#
# 스터디 노트 1장(ClusterIP 기본)에 해당합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 스터디에서 쓰는 `kubectl get svc,ep,endpointslices`로 서비스(Service)와 그 엔드포인트(endpoint)를 볼 수 있습니다.
# 2. kube-proxy가 클러스터 IP(ClusterIP) 서비스에 대해 쓰는 규칙(rule)을 `iptables -t nat -S | grep ...`으로
#    읽고, `KUBE-SVC-…` 체인(chain)의 이름을 직접 계산할 수 있습니다.
# 3. `net-pod`에서 시작한 연결 하나를 `KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT` 순서로 따라갈 수 있습니다.
# 4. 확률이 왜 1/3, 1/2, 그리고 없음으로 이어지는지("사다리") 유도하고, 연결을 연 뒤 규칙의 카운터를
#    (`iptables -v --numeric --table nat --list KUBE-SVC-…`) 읽을 수 있습니다.
#
# 여기서 쓰는 API(`lab.sh`, `lab.trace`, `lab.run`, `lab.scale`, `lab.clear_kernel_state`, `lab.reset`,
# `lab.copy`, `lab.delete_rules`, `kslab.check`, `experiments.claim`, `experiments.outcomes`)는 00장의 API 카드에 있습니다. 이 장에서 새로 쓰는 것은
# `charts.distribution_figure(runs, categories=pods)`(연결이 도착한 곳),
# `experiments.chi_square_uniform(runs, categories=pods)`(아래에서 설명하는 카이제곱 통계량과 p-값),
# `experiments.claim_uniform(runs, pods, tolerance=…)`(모든 파드가 1/n을 받았다는 확인된 주장),
# 그리고 `views.DistributionPanel(lab)` / `views.compute_distribution(lab, replicas, connections)`(레플리카 패널과
# 그 뒤의 실험)입니다.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import base64
import hashlib
import re
from collections import Counter

import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=1, proxy_mode="iptables")  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
LIVE = not lab.dataplane.exact  # a live cluster (kind): real randomness and shared counters, so its claims are statistical
CP = "myk8s-control-plane"  # net-pod's node
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else "")
      + f"; nodes: {', '.join(n.name for n in lab.cluster.nodes)}")
svc = lab.cluster.service("svc-clusterip")
webpods = ["webpod1", "webpod2", "webpod3"]
pod_of_ip = {lab.cluster.pod(w).pod_ip: w for w in webpods}


def chain_name(prefix: str, *parts: str) -> str:
    """kube-proxy's chain name (explained in "The rules, as kube-proxy writes them"): prefix + the first 16 characters of base32(sha256(parts joined))."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


SVC_CHAIN = chain_name("KUBE-SVC-", "default/svc-clusterip:svc-webport", "tcp")
seps = {chain_name("KUBE-SEP-", "default/svc-clusterip:svc-webport", "tcp", f"{ip}:80"): ip for ip in pod_of_ip}

print(f"svc-clusterip: ClusterIP {svc.cluster_ip}, port {svc.ports[0].port} -> targetPort {svc.ports[0].target_port}")

# %% [markdown] lang="en"
# ## The Service and its endpoints, as the study lists them
#
# `kubectl get svc,ep,endpointslices -o wide` lists three objects: the Service with its ClusterIP
# and selector, the Endpoints object (one `IP:port` per ready pod the selector picks), and the
# EndpointSlice (엔드포인트슬라이스), the newer object kube-proxy actually reads. `lab.sh(where, command)`
# runs the command in the lab (here on the control plane); its output is a string.

# %% [markdown] lang="ko"
# ## 스터디처럼 서비스와 엔드포인트 보기
#
# `kubectl get svc,ep,endpointslices -o wide`는 세 가지 오브젝트를 보여 줍니다. 클러스터 IP와 셀렉터(selector)를
# 가진 서비스, 셀렉터가 고른 준비된 파드(Pod)마다 `IP:포트`를 하나씩 담은 엔드포인트(Endpoints) 오브젝트, 그리고
# kube-proxy가 실제로 읽는 더 새로운 오브젝트인 엔드포인트슬라이스(EndpointSlice)입니다. `lab.sh(where, command)`는
# 명령을 실습 환경 안에서(여기서는 컨트롤 플레인(control plane)에서) 실행하고, 출력을 문자열로 돌려줍니다.

# %%
listing = lab.sh(CP, "kubectl get svc,ep,endpointslices -o wide")
print(listing)
ep_line = next(l for l in listing.splitlines() if l.startswith("endpoints/svc-clusterip "))
svc_line = next(l for l in listing.splitlines() if l.startswith("service/svc-clusterip "))
experiments.claim(
    svc.cluster_ip in svc_line and all(f"{ip}:80" in ep_line for ip in pod_of_ip),
    f"svc-clusterip {svc.cluster_ip}:9000 has 3 endpoints, one per webpod: {', '.join(f'{ip}:80' for ip in pod_of_ip)}",
    f"kubectl's listing does not show svc-clusterip's ClusterIP and the three webpods: {svc_line!r}, {ep_line!r}",
)

# %% [markdown] lang="en"
# ## The rules, as kube-proxy writes them
#
# Every node's kube-proxy writes the same rules for `svc-clusterip`. The study greps the `nat`
# table for the Service's name, which kube-proxy puts in every rule's comment. First, the name of
# the Service's chain. kube-proxy derives it from the **service port name**
# `namespace/service:port-name` (here `default/svc-clusterip:svc-webport`) followed, with no
# separator, by the protocol in lower case (`tcp`):
#
# `KUBE-SVC-` + the first 16 characters of base32(sha256(`default/svc-clusterip:svc-webporttcp`))
#
# A `KUBE-SEP-…` (service endpoint) chain is named the same way from the service port name, the
# protocol and the endpoint's `IP:port`. The names are stable: the same Service gets the same
# chain on every node and in every cluster.

# %% [markdown] lang="ko"
# ## kube-proxy가 쓰는 규칙 그대로
#
# 모든 노드(node)의 kube-proxy는 `svc-clusterip`에 대해 같은 규칙을 씁니다. 스터디에서는 `nat` 테이블을 서비스
# 이름으로 grep합니다. kube-proxy가 모든 규칙의 주석(comment)에 서비스 이름을 넣기 때문입니다. 먼저 서비스 체인의
# 이름입니다. kube-proxy는 **서비스 포트 이름** `네임스페이스/서비스:포트-이름`(여기서는
# `default/svc-clusterip:svc-webport`) 바로 뒤에 구분자 없이 소문자 프로토콜(`tcp`)을 붙인 문자열에서 이름을 만듭니다.
#
# `KUBE-SVC-` + base32(sha256(`default/svc-clusterip:svc-webporttcp`))의 처음 16글자
#
# `KUBE-SEP-…`(서비스 엔드포인트) 체인도 같은 방법으로, 서비스 포트 이름과 프로토콜, 엔드포인트의 `IP:포트`에서
# 이름을 만듭니다. 이름은 변하지 않습니다. 같은 서비스는 어느 노드, 어느 클러스터에서나 같은 체인 이름을 얻습니다.

# %%
# chain_name, SVC_CHAIN and seps are set in the first code cell: kube-proxy's formula, explained above
print(SVC_CHAIN, "\n")
rules = lab.sh(CP, "iptables -t nat -S | grep svc-clusterip")
print(rules)
experiments.claim(
    f"--dport 9000 -j {SVC_CHAIN}" in rules
    and all(f"-A {sep} " in rules and f"-j DNAT --to-destination {ip}:80" in rules for sep, ip in seps.items())
    and rules.count(f"-A {SVC_CHAIN} ") == 4,
    f"KUBE-SERVICES jumps to {SVC_CHAIN} (computed above); its 4 rules: 1 masquerade mark + 3 jumps to SEP chains "
    f"named by the same formula, each DNATing to one webpod",
    "the rules do not match the chain names computed from the service port name",
)

# %% [markdown] lang="en"
# Read them top down:
#
# - `KUBE-SERVICES` matches the ClusterIP and port (`-d 10.200.1.x/32 --dport 9000`) and jumps to
#   the Service's chain;
# - the SVC chain's first rule marks connections from **outside** the pod network
#   (`! -s 10.10.0.0/16`) for masquerade (마스커레이드);
# - then one rule per endpoint, each with `-m statistic --mode random --probability p`, the last
#   without; each jumps to a `KUBE-SEP-…` chain. (kube-proxy writes `0.3333333333`; iptables keeps the
#   probability as a 31-bit integer, so it prints back as `0.33333333349`.)
# - a SEP chain DNATs (목적지 NAT) to one pod's `IP:80`, after its hairpin rule (chapter 03).

# %% [markdown] lang="ko"
# 위에서부터 읽습니다.
#
# - `KUBE-SERVICES`는 클러스터 IP와 포트(`-d 10.200.1.x/32 --dport 9000`)가 일치하면 서비스의 체인으로 점프합니다.
# - SVC 체인의 첫 규칙은 파드 네트워크 **밖에서** 온 연결(`! -s 10.10.0.0/16`)에 마스커레이드(masquerade) 표시를 합니다.
# - 그다음은 엔드포인트마다 규칙 하나씩입니다. 각 규칙에는 `-m statistic --mode random --probability p`가
#   붙고, 마지막 규칙에만 붙지 않습니다. 각 규칙은 `KUBE-SEP-…` 체인으로 점프합니다. (kube-proxy는
#   `0.3333333333`이라고 쓰지만, iptables는 확률을 31비트 정수로 저장하므로 `0.33333333349`로 다시 출력됩니다.)
# - SEP 체인은 헤어핀 규칙(03장) 다음에 파드 하나의 `IP:80`으로 DNAT(목적지 NAT, destination NAT)합니다.

# %% [markdown] lang="en"
# ## One connection, hook by hook

# %% [markdown] lang="ko"
# ## 연결 하나를 훅(hook)마다 따라가기

# %%
t = lab.trace("net-pod", "svc-clusterip")
print(t)
experiments.claim(
    t.chains[:2] == ["KUBE-SERVICES", SVC_CHAIN] and t.chains[2] in seps
    and t.dnat_to == f"{seps[t.chains[2]]}:80" and not t.masquerade and t.outcome == "ok",
    f"net-pod -> svc-clusterip: KUBE-SERVICES -> {SVC_CHAIN} -> {t.chains[2]} -> DNAT {t.dnat_to}, no masquerade",
    f"the trace changed: chains {t.chains[:3]}, DNAT {t.dnat_to}, masquerade {t.masquerade}, outcome {t.outcome}",
)

# %% [markdown] lang="en"
# ## Why 1/3, then 1/2, then nothing: the ladder
#
# Rules are tried in order. Rule 1 sees every new connection and keeps 1/3 of them. Rule 2 sees
# the remaining 2/3 and must keep another 1/3 of the *total*: (1/3) / (2/3) = 1/2. Rule 3 sees
# the last 1/3 and takes it all. In general rule *i* of *n* (from 0) matches with 1/(n−i).
#
# What if all three rules said 1/3? Rule 1 would keep 1/3, rule 2 1/3 of the remaining 2/3 = 2/9,
# rule 3 1/3 of the remaining 4/9 = 4/27, and the other 8/27 of the connections would match no rule
# at all: no DNAT, so they would go on towards the ClusterIP itself, which no machine owns, and fail.
# Measured, not just computed: 27,000 connections from net-pod through the control plane's rules
# with the three rules rewritten to `--probability 0.3333333333` (kslab's netfilter simulator; the
# test `test_an_all_third_ladder_leaves_8_27_unmatched` in tests/test_checks_ch00_ch01.py) went
# 33.1%, 22.5% and 14.9% to the three rules and 29.5% to none (1/3 = 33.3%, 2/9 = 22.2%,
# 4/27 = 14.8%, 8/27 = 29.6%).
#
# An iptables rule's counter counts the packets that **matched** it (for these `nat` rules: the
# first packet of each new connection), not the ones that were tried against it.
#
# **Predict** before you run the next cells: after many connections from `net-pod`, the rule with
# `--probability 0.50000000000` has counted about (a) 1/2 of all connections, (b) 1/3, (c) 1/6?

# %% [markdown] lang="ko"
# ## 왜 1/3, 다음 1/2, 다음은 없음인가: 사다리
#
# 규칙은 순서대로 검사합니다. 규칙 1은 모든 새 연결을 보고 그중 1/3을 가져갑니다. 규칙 2는 남은 2/3를 보고
# *전체*의 1/3을 더 가져가야 하므로 (1/3) / (2/3) = 1/2입니다. 규칙 3은 마지막 1/3을 보고 전부 가져갑니다.
# 일반적으로 *n*개 중 *i*번째 규칙(0부터 셈)은 1/(n−i)의 확률로 일치합니다.
#
# 세 규칙이 모두 1/3이라면 어떻게 될까요? 규칙 1은 1/3, 규칙 2는 남은 2/3의 1/3인 2/9, 규칙 3은 남은 4/9의
# 1/3인 4/27을 가져가고, 나머지 8/27의 연결은 어떤 규칙과도 일치하지 않습니다. DNAT가 일어나지 않으므로 그 연결은
# 어떤 머신도 갖고 있지 않은 클러스터 IP 자체로 향하다가 실패합니다. 계산만이 아니라 측정한 값입니다. 컨트롤
# 플레인의 규칙에서 세 규칙을 `--probability 0.3333333333`으로 고쳐 쓰고 net-pod에서 연결 27,000개를 보냈더니
# (kslab의 넷필터 시뮬레이터; tests/test_checks_ch00_ch01.py의 `test_an_all_third_ladder_leaves_8_27_unmatched`
# 테스트) 세 규칙에 33.1%, 22.5%, 14.9%가 가고 29.5%는 어느 규칙과도 일치하지 않았습니다(1/3 = 33.3%,
# 2/9 = 22.2%, 4/27 = 14.8%, 8/27 = 29.6%).
#
# iptables 규칙의 카운터(counter)는 그 규칙과 **일치한** 패킷을 셉니다(이 `nat` 규칙들에서는 새 연결마다 첫 패킷
# 하나). 그 규칙에서 검사만 받은 패킷은 세지 않습니다.
#
# 다음 셀들을 실행하기 전에 **예측**해 보세요. `net-pod`에서 연결을 많이 열면 `--probability 0.50000000000` 규칙의
# 카운터는 전체 연결의 대략 얼마가 될까요? (a) 1/2 (b) 1/3 (c) 1/6

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch01.middle_rule")` shows its hints one at a time; once you have checked
# an answer of your own and seen every hint, `kslab.check.solution("ch01.middle_rule")` shows the solution. An
# exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch01.middle_rule")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch01.middle_rule")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch01.middle_rule"
# 1. A rule's counter counts the connections that reached the rule AND matched it. Which connections ever reach the
#    second rule of the ladder?
# 2. Rule 1 (probability 1/3) keeps a third of all connections; the 2/3 left go on to the 0.5 rule, which keeps half
#    of what it sees. Multiply the two.

# %% [markdown] lang="ko" hint="ch01.middle_rule"
# 1. 규칙의 카운터는 그 규칙에 도달해서 일치한 연결만 셉니다. 사다리의 두 번째 규칙에는 어떤 연결이 도달합니까?
# 2. 규칙 1(확률 1/3)이 전체의 3분의 1을 가져가고, 남은 2/3가 0.5 규칙으로 가서 그중 절반이 일치합니다. 두 값을 곱해 보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "b"
kslab.check.ch01.middle_rule(answer, lab)

# %% [markdown] lang="en"
# Now the study's experiment: `curl` from `net-pod` 100 times and count which pod answered, then
# 10,000 connections with `lab.run`, then the counters of the Service's chain with the study's
# `iptables -v --numeric --table nat --list KUBE-SVC-…` (with `--exact`, so large counters print in full).
# `lab.clear_kernel_state()` first sets every counter (and the connection tracking table) back to zero,
# so the counters hold exactly this run (`iptables -Z` on a real node). On a live cluster (`kind`) kslab
# does not zero a node's counters: the cell reads them before and after and checks the differences,
# within a tolerance (other clients count too).

# %% [markdown] lang="ko"
# 이제 스터디의 실험입니다. `net-pod`에서 `curl`을 100번 실행해 어느 파드가 응답했는지 세고, `lab.run`으로 연결
# 10,000개를 연 다음, 스터디의 `iptables -v --numeric --table nat --list KUBE-SVC-…`로 서비스 체인의 카운터를
# 읽습니다(큰 카운터도 그대로 출력되도록 `--exact`를 붙입니다). 먼저 `lab.clear_kernel_state()`로 모든 카운터(와 연결
# 추적 테이블)를 0으로 되돌리므로, 카운터에는 정확히 이번 실행만 담깁니다(실제 노드에서는 `iptables -Z`). 실제
# 클러스터(`kind`)에서는 kslab이 노드의 카운터를 0으로 만들지 않습니다. 셀은 실행 전후의 카운터를 읽어 그 차이를
# 허용 오차 안에서 확인합니다(다른 클라이언트의 연결도 세어지기 때문입니다).

# %%
def svc_counters() -> tuple[str, dict[str, int], int]:
    """The SVC chain's listing, each SEP jump's packet counter (by pod) and the 0.5 rule's counter."""
    listing = lab.sh(CP, f"iptables -v --numeric --exact --table nat --list {SVC_CHAIN}")
    jumps = {pod_of_ip[m[1]]: int(l.split()[0]) for l in listing.splitlines() if (m := re.search(r"-> ([\d.]+):80 \*/", l))}
    return listing, jumps, next(int(l.split()[0]) for l in listing.splitlines() if "probability 0.5" in l)


lab.clear_kernel_state()
_, before, half_before = svc_counters()  # zero after clear_kernel_state(), except on a live node (kind)
curls = Counter(lab.sh("net-pod", "curl -s svc-clusterip:9000 | grep Hostname").split()[1] for _ in range(100))
print("curl x100:", dict(sorted(curls.items())))
runs = lab.run("net-pod", "svc-clusterip", n=10_000, seed=1)
counters, after, half_after = svc_counters()
print(counters)
matched = {w: after[w] - before[w] for w in webpods}  # pod -> new connections counted by the rule jumping to its SEP
half = half_after - half_before
made = {w: curls[w] + int((runs["endpoint_pod"] == w).sum()) for w in webpods}
if not LIVE:  # the simulator and a kernel lab count exactly what this cell made
    experiments.claim(
        matched == made and sum(made.values()) == 10_100 and abs(half / 10_100 - 1 / 3) < 0.02,
        f"each SEP jump counted exactly the connections its pod took (curl + run): {matched}; "
        f"the 0.5 rule matched {half / 10_100:.1%} of all connections, 1/3 ± 2% (1/2 of the 2/3 it saw)",
        f"the counters {matched} differ from the connections made {made}, "
        f"or the 0.5 rule's share {half / 10_100:.1%} is not 1/3 ± 2%",
    )
else:  # a live node's counters also count other clients' connections (and restart when kube-proxy rewrites the chain)
    total = sum(matched.values())
    experiments.claim(
        abs(total / 10_100 - 1) < 0.05 and all(abs(matched[w] / total - made[w] / 10_100) < 0.03 for w in webpods)
        and abs(half / total - 1 / 3) < 0.03,
        f"the SEP jumps' counters grew by {total} for the 10,100 connections made (± 5%), split as the pods answered "
        f"(± 3%): {matched}; the 0.5 rule matched {half / total:.1%} of them, 1/3 ± 3%",
        f"the live counters grew by {matched} (0.5 rule: {half}) for the connections made {made}",
    )

# %%
runs = lab.run("net-pod", "svc-clusterip", n=10_000, seed=1)  # the same 10 000 connections as above (on sim; kind: 10 000 new ones)
charts.distribution_figure(runs, categories=webpods).show()
chi2, p = experiments.chi_square_uniform(runs, categories=webpods)
print(f"chi-square vs uniform: {chi2:.2f}, p = {p:.3f}")
experiments.claim_uniform(runs, webpods, tolerance=0.02)

# %% [markdown] lang="en"
# The chi-square (카이제곱) statistic puts in one number how far the counts are from an even split:
# the sum over the pods of (observed − expected)² / expected, 0 when the split is perfectly even. The
# p-value is the chance that a truly even split strays at least that far by luck alone. A p-value
# above 0.01 means the counts give **no evidence against** an even split; it does not prove the split
# is even (a small bias needs more connections to show). A p-value below 0.01 would be evidence of a bias.

# %% [markdown] lang="ko"
# 카이제곱(chi-square) 통계량은 관측한 횟수가 고른 분배에서 얼마나 벗어났는지를 수 하나로 나타냅니다. 파드마다
# (관측값 − 기댓값)² / 기댓값을 더한 값이며, 완벽하게 고르면 0입니다. p-값(p-value)은 실제로 고른 분배가 순전히
# 우연으로 그만큼 이상 벗어날 확률입니다. p-값이 0.01보다 크다는 것은 관측한 횟수가 고른 분배에 **반하는 증거가
# 없다**는 뜻이지, 분배가 고르다는 증명은 아닙니다(작은 치우침은 연결이 더 많아야 드러납니다). p-값이 0.01보다
# 작다면 치우침이 있다는 증거가 됩니다.

# %% [markdown] lang="en"
# What happens to a connection no rule matches can be seen on the lab itself. On a copy (`lab.copy()`,
# so your lab keeps its rules), delete the ladder's last rule, the one without a probability, on
# every node with `lab.delete_rules` (`iptables -D` on a real node). The first two rules still take 1/3
# and 1/2 of the remaining 2/3; the last third of the connections matches nothing: no DNAT, so the
# packet heads for the ClusterIP, which no route leads to (`no-route`).

# %% [markdown] lang="ko"
# 어떤 규칙과도 일치하지 않는 연결이 어떻게 되는지는 실습 환경에서 직접 볼 수 있습니다. 복사본(`lab.copy()`, 여러분의
# 실습 환경은 규칙을 그대로 유지합니다)에서 `lab.delete_rules`(실제 노드에서는 `iptables -D`)로 모든 노드에서 사다리의 마지막
# 규칙, 곧 확률이 없는 규칙을 지웁니다. 처음 두 규칙은 여전히 1/3과 남은 2/3의 1/2을 가져가고, 나머지 1/3의 연결은
# 어떤 규칙과도 일치하지 않습니다. DNAT가 없으므로 패킷은 어떤 경로(route)도 없는 클러스터 IP로 향합니다(`no-route`).

# %%
cut = lab.copy()
last = rf'^-A {SVC_CHAIN} .*-> {lab.cluster.pod("webpod3").pod_ip}:80" -j KUBE-SEP-'
deleted = cut.delete_rules(last)
cut_runs = cut.run("net-pod", "svc-clusterip", n=3000, seed=1)
outcomes = experiments.outcomes(cut_runs)
print(f"deleted {deleted} rules (one per node); outcomes: {outcomes.to_dict()}")
lost = int((cut_runs["outcome"] != "ok").sum()) / len(cut_runs)
experiments.claim(
    deleted == len(lab.cluster.nodes) and abs(lost - 1 / 3) < 0.03
    and "webpod3" not in set(cut_runs["endpoint_pod"].dropna())
    and set(cut_runs.loc[cut_runs["outcome"] != "ok", "outcome"]) == {"no-route"},
    f"without the last rule {lost:.1%} of the connections matched no rule and failed (no-route); webpod3 got none",
    f"deleting the last rule gave {outcomes.to_dict()}, not 1/3 unmatched",
)

# %% [markdown] lang="en"
# ## The same Service in kube-proxy's nftables mode
#
# kube-proxy has a second mode on Linux, `--proxy-mode=nftables` (chapter 05), which writes one nftables table,
# `table ip kube-proxy`, instead of iptables chains. The cell restarts the kube-proxies of a simulator twin
# (`lab.copy()`, on every backend) in that mode with `twin.set_proxy(mode="nftables")`: they remove their iptables
# rules first. svc-clusterip's chain has no ladder there: one `numgen random mod 3` rule draws 0, 1 or 2 with
# equal chances and a verdict map (`vmap`) sends each number to one endpoint's chain. The connections split
# as they do with the ladder.

# %% [markdown] lang="ko"
# ## kube-proxy의 nftables 모드에서 본 같은 서비스
#
# 리눅스의 kube-proxy에는 두 번째 모드 `--proxy-mode=nftables`(05장)가 있어, iptables 체인 대신 nftables 테이블
# 하나(`table ip kube-proxy`)를 씁니다. 이 셀은 시뮬레이터 쌍둥이(`lab.copy()`, 모든 백엔드에서)의 kube-proxy를
# `twin.set_proxy(mode="nftables")`로 그 모드로 다시 시작합니다. kube-proxy는 먼저 자기 iptables 규칙을 지웁니다.
# 그곳의 svc-clusterip 체인에는 사다리가 없습니다. `numgen random mod 3` 규칙 하나가 0, 1, 2를 같은 확률로 뽑고,
# 판정 맵(verdict map, `vmap`)이 각 숫자를 엔드포인트 하나의 체인으로 보냅니다. 연결은 사다리와 똑같이 나뉩니다.

# %%
twin = lab.copy()  # a simulator twin: this lab stays in iptables mode
twin.set_proxy(mode="nftables")  # every node's kube-proxy restarted with --proxy-mode=nftables
table = twin.sh(CP, "nft list table ip kube-proxy")
nft_chain = next(line.split()[1] for line in table.splitlines() if line.strip().startswith("chain service-") and "svc-clusterip" in line)
nft_rules = twin.sh(CP, f"nft list chain ip kube-proxy {nft_chain}")
print(f"$ nft list chain ip kube-proxy {nft_chain}   (on {CP}, nftables mode)\n{nft_rules}")
nft_runs = twin.run("net-pod", "svc-clusterip", n=3000, seed=2)
nft_split = nft_runs["endpoint_pod"].value_counts()
print("3000 connections:", nft_split.to_dict())
experiments.claim(
    "numgen random mod 3 vmap" in nft_rules and nft_rules.count("goto endpoint-") == 3 and "probability" not in nft_rules
    and "svc-clusterip" not in twin.sh(CP, "iptables -t nat -S") and (nft_runs["outcome"] == "ok").all()
    and set(nft_split.index) == set(webpods)
    and all(abs(k / 3000 - 1 / 3) < experiments.noise(1 / 3, 3000) for k in nft_split),
    f"in nftables mode {nft_chain} picks an endpoint with one numgen rule (no ladder, no iptables rule left) "
    f"and 3000 connections split {nft_split.to_dict()}, about 1/3 each",
    f"nftables mode changed: {nft_rules!r}, split {nft_split.to_dict()}",
)

# %% [markdown] lang="en"
# ## Explore: replicas and connections
#
# `deploy-echo` is a Deployment (디플로이먼트) whose pods sit behind `svc-nodeport`. That Service is
# of type NodePort, taught in chapter 06; it also has a ClusterIP, and from inside the cluster it
# works exactly like `svc-clusterip`, which is all we use here. Move the **replicas** slider:
# kube-proxy re-renders every node's rules with a new ladder, and the chart redraws. Try 1 (no
# statistic rule at all), 2, 7 and 10; then lower **connections** to 300 and watch the noise grow.
# The bars are labelled by what differs between the pods' names; the shared part
# (`deploy-echo-<pod-template-hash>-`) is shown once, under the axis.

# %% [markdown] lang="ko"
# ## 탐색: 레플리카(replica)와 연결 수
#
# `deploy-echo`는 `svc-nodeport` 뒤에 파드를 둔 디플로이먼트(Deployment)입니다. 이 서비스는 06장에서 배울
# NodePort 유형이지만 클러스터 IP도 가지고 있고, 클러스터 안에서는 `svc-clusterip`와 똑같이 동작합니다. 여기서는
# 그 클러스터 IP만 씁니다. **replicas** 슬라이더를 움직이면 kube-proxy가 모든 노드의 규칙을 새 사다리로 다시 쓰고,
# 차트를 다시 그립니다. 1(statistic 규칙이 아예 없음), 2, 7, 10을 차례로 해 보세요. 그다음 **connections**를
# 300으로 낮추고 잡음이 커지는 것을 보세요. 막대에는 파드 이름에서 서로 다른 부분만 적고, 공통 부분
# (`deploy-echo-<pod-template-hash>-`)은 축 아래에 한 번만 적습니다.

# %%
import gc

from kslab.views import DistributionPanel, compute_distribution

# kind: a sim twin of the live lab (its nodes' real rules), see lab.exact
panel = DistributionPanel(lab.exact("deploy-echo scaled at every slider move, which on a live cluster is a rollout each time"),
                          replicas=3, connections=3000)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# The claim below does not read the panel (whose sliders you may have moved): it runs its own
# experiment with 5 replicas, `compute_distribution(lab, replicas=5, connections=3000)`, the function
# the panel calls on each move. Then `lab.reset()` puts the lab back as it was made (3 replicas, the
# same pod names, counters at zero). Use `lab.reset()` whenever you want to start over after
# exploring.

# %% [markdown] lang="ko"
# 아래의 확인은 (슬라이더를 움직였을 수도 있는) 패널을 읽지 않고, 패널이 슬라이더를 움직일 때마다 부르는 함수
# `compute_distribution(lab, replicas=5, connections=3000)`으로 레플리카 5개 실험을 따로 실행합니다.
# 그다음 `lab.reset()`이 실습 환경을 처음 만든 상태(레플리카 3개, 같은 파드 이름, 카운터 0)로 되돌립니다. 탐색한
# 뒤 처음부터 다시 하고 싶을 때마다 `lab.reset()`을 쓰세요.

# %%
from kslab.views import compute_distribution

r = compute_distribution(lab.exact("deploy-echo scaled to 5 replicas and back, which on a live cluster is two rollouts"),
                         replicas=5, connections=3000, seed=2)
experiments.claim(abs(r.shares - 1 / 5).max() < 0.05 and r.p_value > 0.001,
                  f"with 5 replicas every pod got 1/5 ± 5% ({r.shares.min():.1%}–{r.shares.max():.1%}), p = {r.p_value:.3f}",
                  f"uneven split with 5 replicas: {dict(r.shares.round(3))}")
lab.reset()
echo = [p for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]
experiments.claim(len(echo) == 3, "lab.reset(): deploy-echo is back to 3 replicas", f"{len(echo)} deploy-echo pods after reset")

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** A new case: with 4 endpoints, which probabilities does kube-proxy write on the first three
# rules? Give a list of three numbers. (You may check on the lab: `lab.scale("deploy-echo", 4)`,
# grep the rules of `svc-nodeport`, then `lab.reset()`.)

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** 새로운 경우입니다. 엔드포인트가 4개일 때 kube-proxy는 처음 세 규칙에 어떤 확률을 씁니까? 숫자 세 개의
# 리스트로 답하세요. (실습 환경에서 확인해도 됩니다. `lab.scale("deploy-echo", 4)`로 늘리고 `svc-nodeport`의 규칙을
# grep한 다음 `lab.reset()`하세요.)

# %% [markdown] lang="en" hint="ch01.ladder"
# 1. Every endpoint must end up with 1/4 of all connections, but rule i only sees the connections that the rules
#    above it did not take.
# 2. Rule 1 sees everything and keeps 1/4. Rule 2 sees the remaining 3/4 and must keep 1/4 of the total, so its
#    probability is (1/4) / (3/4). Do the same for rule 3; the 4th rule has no probability (it takes the rest).

# %% [markdown] lang="ko" hint="ch01.ladder"
# 1. 엔드포인트마다 전체 연결의 1/4을 받아야 하지만, 규칙 i는 위 규칙들이 가져가지 않은 연결만 봅니다.
# 2. 규칙 1은 모든 연결을 보고 1/4을 가져갑니다. 규칙 2는 남은 3/4를 보고 전체의 1/4을 가져가야 하므로 확률은 (1/4) / (3/4)입니다. 규칙 3도 같은 방법으로 구하세요. 네 번째
#    규칙에는 확률이 없습니다(나머지를 모두 가져갑니다).

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. [0.5, 0.5, 0.5]
# EXERCISE-END
answer = [1 / 4, 1 / 3, 1 / 2]
kslab.check.ch01.ladder(answer)

# %% [markdown] lang="en"
# **2.** What is the name of the `KUBE-SVC-…` chain of `svc-nodeport` (namespace `default`, port name
# `svc-webport`, TCP)? Compute it with the formula above; then find it with
# `lab.sh("myk8s-worker", "iptables -t nat -S KUBE-SERVICES | grep svc-nodeport")`.

# %% [markdown] lang="ko"
# **2.** `svc-nodeport`(네임스페이스 `default`, 포트 이름 `svc-webport`, TCP)의 `KUBE-SVC-…` 체인 이름은 무엇입니까?
# 위의 공식으로 계산한 다음, `lab.sh("myk8s-worker", "iptables -t nat -S KUBE-SERVICES | grep svc-nodeport")`로
# 찾아보세요.

# %% [markdown] lang="en" hint="ch01.chain_name"
# 1. The name is `KUBE-SVC-` followed by the first 16 characters of the base32 of a SHA-256 hash. What is hashed is
#    the service port name `namespace/service:port-name` followed by the protocol in lower case, with no separator.
# 2. In Python: `base64.b32encode(hashlib.sha256(b"default/svc-nodeport:svc-webporttcp").digest()).decode()[:16]`;
#    compare with the `KUBE-SVC-` jump that `grep svc-nodeport` shows in KUBE-SERVICES.

# %% [markdown] lang="ko" hint="ch01.chain_name"
# 1. 이름은 `KUBE-SVC-` 뒤에 SHA-256 해시를 base32로 인코딩한 값의 앞 16자를 붙인 것입니다. 해시하는 값은 서비스 포트 이름 `namespace/service:port-name`
#    뒤에 소문자 프로토콜을 구분자 없이 붙인 문자열입니다.
# 2. Python으로: `base64.b32encode(hashlib.sha256(b"default/svc-nodeport:svc-webporttcp").digest()).decode()[:16]`.
#    KUBE-SERVICES에서 `grep svc-nodeport`가 보여 주는 `KUBE-SVC-` 점프와 비교해 보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "KUBE-SVC-" + base64.b32encode(hashlib.sha256(b"default/svc-nodeport:svc-webporttcp").digest()).decode()[:16]
print(lab.sh("myk8s-worker", "iptables -t nat -S KUBE-SERVICES | grep svc-nodeport"))
kslab.check.ch01.chain_name(answer)

# %% [markdown] lang="en"
# **3.** A new client: a process on the node `myk8s-worker` itself (not a pod) connects to
# `svc-clusterip`. Is the connection masqueraded? Answer `True` or `False`, then confirm with
# `lab.trace`.

# %% [markdown] lang="ko"
# **3.** 새로운 클라이언트입니다. (파드가 아니라) 노드 `myk8s-worker` 자체에서 실행되는 프로세스가 `svc-clusterip`에
# 연결합니다. 이 연결은 마스커레이드됩니까? `True` 또는 `False`로 답하고 `lab.trace`로 확인하세요.

# %% [markdown] lang="en" hint="ch01.node_masquerade"
# 1. A process on the node itself (not in a pod) sends from the node's own address, 172.18.0.3 for myk8s-worker, not
#    from a pod address.
# 2. The first rule of the KUBE-SVC chain is `! -s 10.10.0.0/16 -j KUBE-MARK-MASQ`: is the node's address inside the
#    cluster CIDR? `lab.trace("myk8s-worker", "svc-clusterip").masquerade` confirms.

# %% [markdown] lang="ko" hint="ch01.node_masquerade"
# 1. 노드 자체의 프로세스(파드가 아님)는 파드 주소가 아니라 노드의 주소(myk8s-worker는 172.18.0.3)로 보냅니다.
# 2. KUBE-SVC 체인의 첫 규칙은 `! -s 10.10.0.0/16 -j KUBE-MARK-MASQ`입니다. 노드의 주소는 클러스터 CIDR 안에 있습니까?
#    `lab.trace("myk8s-worker", "svc-clusterip").masquerade`로 확인하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = True  # a node's own process has the node's address 172.18.0.3, outside 10.10.0.0/16: `! -s 10.10.0.0/16` marks it
print(f"lab.trace confirms: masquerade = {lab.trace('myk8s-worker', 'svc-clusterip').masquerade}")
kslab.check.ch01.node_masquerade(answer, lab)

# %% [markdown] lang="en"
# ## On the real kernel
#
# With `KSLAB_BACKEND=netns` (root) the same cells run against real namespaces and real TCP: `lab.sh`
# runs the real `curl` and `iptables` inside the pod's or node's namespace, and the counters above
# are the kernel's own. `kubectl` is kslab's own emulation on both backends (there is no API server
# in the lab): it prints kubectl's formats from the lab's objects. Otherwise the cells ran on the
# simulator, which executes the same rules and prints the tools' formats.
#
# With `KSLAB_BACKEND=kind` (a `kind-*` kube context, Docker) the cells run against the live cluster,
# read-only: its own kube-proxy wrote the rules (`iptables` runs in the node's container by
# `docker exec`), `curl` and `lab.run` run in `net-pod` by the API server's exec, `kubectl` prints the
# objects read from the API server, and `lab.trace` walks the nodes' real `iptables-save` in kslab's
# interpreter. Its randomness is the kernel's, so its claims are statistical; the panel and the
# 5-replica claim run on a sim copy of the live lab (`lab.exact(needs)`, which prints one line
# saying what the experiment needs; on sim and netns it is the lab itself). When the cluster cannot be used, the first cell
# printed why and everything ran on sim.

# %% [markdown] lang="ko"
# ## 실제 커널에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 같은 셀이 실제 네임스페이스와 실제 TCP 위에서 실행됩니다. `lab.sh`는 노드의
# 네임스페이스 안에서 실제 `curl`과 `iptables`를 실행하고, 위의 카운터는 커널 자신의 카운터입니다. `kubectl`은 두
# 백엔드 모두에서 kslab이 직접 흉내 낸 것입니다(실습 환경에는 API 서버가 없습니다). 실습 환경의 오브젝트로부터
# kubectl의 출력 형식을 만들어 냅니다. 그렇지 않으면 위의 셀들은 같은 규칙을 실행하고 도구의 출력 형식을 그대로
# 흉내 내는 시뮬레이터에서 실행된 것입니다.
#
# `KSLAB_BACKEND=kind`(`kind-*` kube 컨텍스트와 Docker 필요)로 실행하면 같은 셀이 실제 클러스터에서 읽기 전용으로
# 실행됩니다. 규칙은 클러스터 자신의 kube-proxy가 썼고(`iptables`는 `docker exec`로 노드 컨테이너 안에서 실행됩니다),
# `curl`과 `lab.run`은 API 서버의 exec로 `net-pod` 안에서 실행되며, `kubectl`은 API 서버에서 읽은 오브젝트를
# 출력하고, `lab.trace`는 노드의 실제 `iptables-save`를 kslab의 인터프리터로 따라갑니다. 무작위성은 커널의 것이므로
# 확인은 통계적이며, 패널과 레플리카 5개 확인은 실제 실습 환경의 sim 복사본에서 실행됩니다(`lab.exact(needs)`가
# 실험에 무엇이 필요한지 한 줄로 출력합니다. sim과 netns에서는 실습 환경 자신입니다). 클러스터를 쓸 수 없으면
# 첫 셀이 그 이유를 출력했고, 모든 셀은 sim에서 실행된 것입니다.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A ClusterIP (클러스터 IP) exists only in rules: `KUBE-SERVICES` matches it and jumps to the
#   Service's `KUBE-SVC-…` chain (named from base32(sha256(service port name + protocol))); a
#   `KUBE-SEP-…` chain per endpoint DNATs to the pod. `kubectl get svc,ep,endpointslices` shows the
#   objects kube-proxy turns into those rules.
# - The probability ladder 1/n, 1/(n−1), …, 1/2, (none) gives every endpoint 1/n: random load
#   balancing (랜덤 부하 분산), no health checks, no other algorithm (chapter 04). The counters of
#   `iptables -v --numeric --table nat --list KUBE-SVC-…` show how many connections each rule sent.
# - Pod-to-Service traffic keeps its source, except hairpin traffic (a pod reaching itself through
#   its Service, chapter 03); sources outside `--cluster-cidr` (a process on a node, exercise 3) are marked for masquerade.
#
# Next: chapter 02 pins a client to one endpoint with `sessionAffinity: ClientIP` (세션 어피니티).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 클러스터 IP는 규칙 안에만 존재합니다. `KUBE-SERVICES`가 이를 일치시켜 서비스의 `KUBE-SVC-…` 체인(이름은
#   base32(sha256(서비스 포트 이름 + 프로토콜))에서 나옵니다)으로 점프하고, 엔드포인트마다 있는 `KUBE-SEP-…` 체인이
#   파드로 DNAT합니다. `kubectl get svc,ep,endpointslices`는 kube-proxy가 이 규칙으로 바꾸는 오브젝트를 보여 줍니다.
# - 확률 사다리(probability ladder) 1/n, 1/(n−1), …, 1/2, (없음)은 모든 엔드포인트에 1/n씩 나눠 줍니다.
#   랜덤 부하 분산(random load balancing)일 뿐, 헬스 체크(health check)도 다른 알고리즘도 없습니다(04장).
#   `iptables -v --numeric --table nat --list KUBE-SVC-…`의 카운터는 규칙마다 보낸 연결 수를 보여 줍니다.
# - 파드에서 서비스로 가는 트래픽은 출발지 주소를 그대로 유지합니다. 단, 헤어핀 트래픽(파드가 자기 서비스를 거쳐
#   자기 자신에게 가는 연결, 03장)은 예외입니다. `--cluster-cidr` 밖의 출발지(노드 자체의 프로세스, 연습 문제 3)는 마스커레이드 표시를 받습니다.
#
# 다음 장: 02장에서는 `sessionAffinity: ClientIP`(세션 어피니티)로 클라이언트를 엔드포인트 하나에 고정합니다.
