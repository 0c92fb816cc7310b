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
# # 05 · kube-proxy at scale: minSyncPeriod, syncPeriod and nftables mode (심화: iptables 모드 성능 최적화)
#
# Study notes 1.9 ("심화") quote the Kubernetes documentation on *Optimizing iptables mode
# performance*. This chapter tests each of its claims by measuring, and adds what changed since:
# kube-proxy's **nftables mode** (GA in Kubernetes 1.33). By the end you will be able to:
#
# 1. count the rules kube-proxy writes per Service and per endpoint, in iptables and in nftables
#    mode, and say what large-cluster mode (more than 1,000 endpoints) removes;
# 2. explain why the first packet of a connection costs more with every Service in iptables mode
#    and not in nftables mode (a walk down a chain vs one verdict-map lookup);
# 3. predict what `minSyncPeriod` does to the number of syncs and to how long a change waits,
#    when a 100-pod Deployment is deleted;
# 4. say what a *partial sync* writes (iptables: still every Service's entry rules; nftables: only
#    the change) and what `syncPeriod` really does today (retry after a failure, notice outside
#    edits, large-cluster cleanup; **not** a periodic full resync);
# 5. read kernel measurements (load time per backend, first-packet latency per mode) and the
#    metrics kube-proxy exports about its syncs.
#
# | study notes 1.9 say | tested in |
# |---|---|
# | "a few iptables rules for every Service, and a few for each endpoint" | §1 |
# | with `minSyncPeriod: 0s` deleting a 100-pod Deployment makes 100 updates; a larger value aggregates them (e.g. 5 updates of 20 endpoints) | §3 |
# | a larger `minSyncPeriod` means each change may wait up to the full period | §3 |
# | raise `minSyncPeriod` when `sync_proxy_rules_duration_seconds` averages far above 1 s | §3, §6 |
# | since v1.28 iptables mode updates only what changed; drop old `minSyncPeriod` overrides | §4 |
# | `syncPeriod` notices outside interference and paces cleanup in large clusters; `1h` is no longer recommended | §4 |
#
# **What this chapter uses** (besides chapter 00's API card: `lab.sh`, `lab.render`, `lab.trace`,
# `lab.copy`, `lab.reset`, `experiments.claim`, `kslab.check`):
#
# - `kslab.synthetic.synthetic_cluster(services, endpoints)`: a cluster of N Services x M
#   endpoints made directly as the objects kube-proxy reads (for sizes the study's lab cannot reach);
#   `add_service(cluster, name, endpoints)` adds one more;
# - `kslab.proxy.rulecount`: `service_rules(info, endpoints, local_endpoints=, config=)` (what one
#   Service port costs, by formula; `info` from `kslab.proxy.serviceport.service_port_infos(service)`,
#   `config` from `lab.proxy_config(node)`), `count_rules(ruleset)` (per Service port, from rendered
#   rules), `growth(sizes, endpoints)` (a full sync's size per mode);
# - `lab.patch_service(name, **spec)`: change a Service's spec (e.g. `external_traffic_policy="Local"`);
# - `kslab.Lab(proxy_mode="nftables")`: the same study lab with kube-proxy in nftables mode;
#   `lab.render(node)` then returns nftables rules (`.text("nft")`, `.raw_text()`);
# - `kslab.proxy.proxier.Proxier(ProxyConfig.for_node(cluster, node, mode=...))`: one node's
#   kube-proxy (chapter 01's renderer behind its sync loop): `.sync(services, slices, apply)` decides
#   full or partial, renders and hands the rules to `apply`; the result has `.lines` (iptables-restore
#   lines) and `.ruleset.operations` (nft operations);
# - `kslab.proxy.syncloop.simulate(cluster, events, SyncLoopConfig(...))`: kube-proxy's sync loop
#   (the real Proxier) on a simulated clock; `delete_deployment(...)` makes the events;
# - `kslab.views_ch05`: the chapter's measurements as functions (`rules_evaluated`, `sync_cost`,
#   `compute_min_sync`, `kernel_numbers`) and the `MinSyncPanel`; `kslab.charts_ch05`: its charts;
# - `kslab.scale`: kernel measurements (`restore_time`, `first_packet_latency`) and the recorded
#   data (`recorded()`), see §5.
#
# Nothing here changes your lab except §2, which makes a second lab in nftables mode.

# %% [markdown] lang="ko"
# # 05 · 대규모 클러스터의 kube-proxy: minSyncPeriod, syncPeriod, nftables 모드 (심화: iptables 모드 성능 최적화)
#
# 스터디 노트 1.9("심화")는 쿠버네티스 문서의 *iptables 모드 성능 최적화(Optimizing iptables mode performance)*를
# 인용합니다. 이 장은 그 주장 하나하나를 측정으로 확인하고, 그 뒤에 바뀐 것을 더합니다. 바로 kube-proxy의
# **nftables 모드**(쿠버네티스 1.33에서 GA)입니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. kube-proxy가 서비스(Service)마다, 엔드포인트(endpoint)마다 쓰는 규칙(rule)을 iptables 모드와 nftables 모드에서
#    셀 수 있고, 대규모 클러스터 모드(large-cluster mode, 엔드포인트 1,000개 초과)가 무엇을 빼는지 말할 수 있습니다.
# 2. iptables 모드에서는 서비스가 늘 때마다 연결의 첫 패킷이 더 비싸지지만 nftables 모드에서는 그렇지 않은 이유를
#    설명할 수 있습니다(체인을 따라 내려가는 탐색 대 판정 맵(verdict map) 조회 한 번).
# 3. 파드(Pod) 100개짜리 디플로이먼트(Deployment)를 지울 때 `minSyncPeriod`가 동기화(sync) 횟수와 변경 하나가
#    기다리는 시간에 무엇을 하는지 예측할 수 있습니다.
# 4. *부분 동기화*(partial sync)가 무엇을 쓰는지(iptables: 여전히 모든 서비스의 진입 규칙, nftables: 바뀐 것만),
#    그리고 오늘날 `syncPeriod`가 실제로 하는 일(실패 후 재시도, 외부 수정 감지, 대규모 클러스터의 정리. 주기적인
#    전체 재동기화는 **아님**)을 말할 수 있습니다.
# 5. 커널 측정값(백엔드별 적재 시간, 모드별 첫 패킷 지연 시간(latency))과 kube-proxy가 동기화에 대해 내보내는
#    메트릭(metric)을 읽을 수 있습니다.
#
# | 스터디 노트 1.9의 내용 | 확인하는 곳 |
# |---|---|
# | "서비스마다 iptables 규칙 몇 개, 엔드포인트마다 몇 개" | 1절 |
# | `minSyncPeriod: 0s`에서 파드 100개 디플로이먼트를 지우면 갱신 100번, 더 큰 값이면 묶어서 처리(예: 엔드포인트 20개씩 5번) | 3절 |
# | `minSyncPeriod`가 클수록 변경 하나가 최대 그 시간만큼 기다릴 수 있음 | 3절 |
# | `sync_proxy_rules_duration_seconds` 평균이 1초보다 훨씬 크면 `minSyncPeriod`를 올림 | 3절, 6절 |
# | v1.28부터 iptables 모드는 바뀐 것만 갱신하므로 예전의 `minSyncPeriod` 설정은 지움 | 4절 |
# | `syncPeriod`는 외부의 간섭을 알아채고 대규모 클러스터의 정리 주기를 정함, `1h`는 더는 권장하지 않음 | 4절 |
#
# **이 장에서 쓰는 것**(00장의 API 카드에 있는 `lab.sh`, `lab.render`, `lab.trace`, `lab.copy`, `lab.reset`,
# `experiments.claim`, `kslab.check` 외에):
#
# - `kslab.synthetic.synthetic_cluster(services, endpoints)`: 서비스 N개 x 엔드포인트 M개인 클러스터를
#   kube-proxy가 읽는 오브젝트로 바로 만듭니다(스터디의 실습 환경으로는 닿을 수 없는 규모용).
#   `add_service(cluster, name, endpoints)`는 서비스를 하나 더합니다.
# - `kslab.proxy.rulecount`: `service_rules(info, endpoints, local_endpoints=, config=)`(서비스 포트 하나가
#   드는 규칙 수를 공식으로. `info`는 `kslab.proxy.serviceport.service_port_infos(service)`에서, `config`는
#   `lab.proxy_config(node)`에서 얻습니다), `count_rules(ruleset)`(렌더링한 규칙에서 서비스 포트별로 센 수),
#   `growth(sizes, endpoints)`(모드별 전체 동기화의 크기).
# - `lab.patch_service(name, **spec)`: 서비스의 spec을 바꿉니다(예: `external_traffic_policy="Local"`).
# - `kslab.Lab(proxy_mode="nftables")`: kube-proxy를 nftables 모드로 실행하는 같은 스터디 실습 환경입니다.
#   이때 `lab.render(node)`는 nftables 규칙을 돌려줍니다(`.text("nft")`, `.raw_text()`).
# - `kslab.proxy.proxier.Proxier(ProxyConfig.for_node(cluster, node, mode=...))`: 노드 하나의 kube-proxy입니다
#   (동기화 루프 뒤에 있는 01장의 렌더러). `.sync(services, slices, apply)`는 전체 또는 부분 동기화를 정하고,
#   규칙을 렌더링해 `apply`에 넘깁니다. 결과에는 `.lines`(iptables-restore 줄 수)와 `.ruleset.operations`(nft
#   연산 수)가 있습니다.
# - `kslab.proxy.syncloop.simulate(cluster, events, SyncLoopConfig(...))`: 시뮬레이션 시계 위에서 도는
#   kube-proxy의 동기화 루프(진짜 Proxier)입니다. 이벤트는 `delete_deployment(...)`가 만듭니다.
# - `kslab.views_ch05`: 이 장의 측정을 함수로 묶은 것(`rules_evaluated`, `sync_cost`, `compute_min_sync`,
#   `kernel_numbers`)과 `MinSyncPanel`, `kslab.charts_ch05`: 이 장의 차트입니다.
# - `kslab.scale`: 커널 측정(`restore_time`, `first_packet_latency`)과 기록된 데이터(`recorded()`), 5절을 보세요.
#
# 2절에서 nftables 모드의 두 번째 실습 환경을 만드는 것 말고는 여러분의 실습 환경을 바꾸지 않습니다.

# %%
import pandas as pd

import kslab
from kslab import charts_ch05, experiments, scale, views_ch05
from kslab.proxy import rulecount, syncloop
from kslab.proxy.serviceport import service_port_infos
from kslab.synthetic import add_service, synthetic_cluster

lab = kslab.Lab(seed=5)
# the same study lab with kube-proxy in nftables mode (§2 onwards; kind: its sim twin)
nft_lab = kslab.Lab(seed=5, proxy_mode="nftables", backend=lab.backend if lab.backend != "kind" else "sim")
client_node = nft_lab.cluster.pod("net-pod").node_name
node = "myk8s-worker"  # the node §1 and §4 read
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## 1. Rules per Service, rules per endpoint (규칙 수)
#
# Start with what kube-proxy wrote on one node of the study's lab. `count_rules` takes the rendered
# ruleset apart per Service port: its type, its endpoints and the rules it costs; the fixed rules
# (the jump chains, KUBE-MARK-MASQ, KUBE-POSTROUTING...) are the rest. The claim checks the
# per-Service formula (`rulecount.service_rules`) against the rendered text, line for line, and the
# study's way of counting, `iptables -t nat -S | grep -c ...` on the node, against the endpoints.

# %% [markdown] lang="ko"
# ## 1. 서비스당 규칙, 엔드포인트당 규칙 (Rules per Service, rules per endpoint)
#
# 먼저 스터디 실습 환경의 노드 하나에 kube-proxy가 쓴 것에서 시작합니다. `count_rules`는 렌더링한 규칙 집합을
# 서비스 포트별로 나눕니다. 유형, 엔드포인트, 드는 규칙 수입니다. 나머지는 고정 규칙입니다(점프 체인,
# KUBE-MARK-MASQ, KUBE-POSTROUTING 등). 확인(claim)은 서비스별 공식(`rulecount.service_rules`)을 렌더링한 텍스트와
# 한 줄 한 줄 맞춰 보고, 스터디의 방식인 노드에서의 `iptables -t nat -S | grep -c ...`를 엔드포인트 수와 맞춰 봅니다.

# %%
rules = lab.render(node)
per_service = rulecount.count_rules(rules)
print(per_service.to_string(index=False))
rendered = rules.raw_text().count("\n")
fixed = per_service[per_service["service_port"] == "(fixed)"]["lines"].iloc[0]
ports = per_service[~per_service["service_port"].str.startswith("(")]
sep = int(lab.sh(node, 'iptables -t nat -S | grep -c "^-A KUBE-SEP"'))
svc = int(lab.sh(node, 'iptables -t nat -S | grep -c "^-A KUBE-SVC"'))
print(f"$ iptables -t nat -S | grep -c '^-A KUBE-SEP'  -> {sep}\n$ iptables -t nat -S | grep -c '^-A KUBE-SVC'  -> {svc}")
experiments.claim(
    int(per_service["lines"].sum()) == rendered and sep == 2 * ports["endpoints"].sum()
    and svc == (1 + ports["endpoints"]).sum(),
    f"the per-Service formulas plus kube-proxy's {fixed} fixed lines are exactly the {rendered} lines rendered on {node}; "
    f"in its kernel tables every endpoint has 2 KUBE-SEP rules ({sep}) and every Service a masquerade rule plus one rule "
    f"per endpoint in KUBE-SVC ({svc})",
    f"the formulas, the rendered text and the node's tables disagree: {int(per_service['lines'].sum())} vs {rendered}, "
    f"{sep} SEP and {svc} SVC rules")

# %% [markdown] lang="en"
# How do these numbers grow? `growth` evaluates the same formulas for synthetic clusters of N
# Services x 10 endpoints (no rendering needed, so 30,000 Services cost nothing). In iptables mode
# a full sync writes about 43 lines per Service of this shape: a KUBE-SERVICES rule, a KUBE-SVC
# chain with its masquerade rule and one `-m statistic` rule per endpoint, and per endpoint a
# KUBE-SEP chain with two rules. nftables mode writes *operations* (one `add`/`flush`/`delete` per
# line of the `nft -f` transaction): chains, rules, set and map elements.

# %% [markdown] lang="ko"
# 이 숫자는 어떻게 늘어날까요? `growth`는 서비스 N개 x 엔드포인트 10개인 합성 클러스터에 같은 공식을 적용합니다
# (렌더링이 필요 없으므로 서비스 30,000개도 비용이 들지 않습니다). 이런 모양의 서비스라면 iptables 모드의 전체
# 동기화(full sync)는 서비스마다 약 43줄을 씁니다. KUBE-SERVICES 규칙 하나, 마스커레이드 규칙과 엔드포인트마다
# `-m statistic` 규칙 하나를 가진 KUBE-SVC 체인, 그리고 엔드포인트마다 규칙 두 개를 가진 KUBE-SEP 체인입니다.
# nftables 모드는 *연산*(operation)을 씁니다(`nft -f` 트랜잭션의 한 줄마다 `add`/`flush`/`delete` 하나): 체인,
# 규칙, 세트(set)와 맵(map)의 원소입니다.

# %%
growth = rulecount.growth([100, 1000, 10000, 30000], 10)
charts_ch05.growth_figure(growth).show()
ipt = growth[growth["mode"] == "iptables"].set_index("services")["lines"]
nft = growth[growth["mode"] == "nftables"].set_index("services")["lines"]  # nftables: operations
slope = lambda x, a, b: (x[b] - x[a]) / (b - a)  # noqa: E731 (what one more Service costs between two sizes)
experiments.claim(
    slope(ipt, 100, 1000) == slope(ipt, 10000, 30000) and slope(nft, 100, 1000) == slope(nft, 10000, 30000),
    f"a full sync grows linearly in both modes: {slope(ipt, 100, 1000):.0f} iptables lines and {slope(nft, 100, 1000):.0f} "
    f"nft operations per Service at every size (iptables {ipt[100]:,} -> {ipt[30000]:,} lines, nftables {nft[100]:,} -> "
    f"{nft[30000]:,} operations for 100 -> 30,000 Services)",
    f"growth is not linear: {dict(ipt)}, {dict(nft)}")
growth

# %% [markdown] lang="en"
# **Large-cluster mode.** When a node's Services have more than 1,000 endpoints in total,
# kube-proxy's iptables mode stops writing the `-m comment --comment "ns/svc:port -> IP:port"` of
# the per-endpoint rules (KUBE-SVC -> KUBE-SEP jumps and both KUBE-SEP rules). The number of lines
# does not change; the text shrinks. 100 Services x 10 endpoints is exactly 1,000 (not large);
# 101 x 10 is large:

# %% [markdown] lang="ko"
# **대규모 클러스터 모드.** 노드의 서비스들이 가진 엔드포인트가 모두 합해 1,000개를 넘으면, kube-proxy의 iptables
# 모드는 엔드포인트별 규칙(KUBE-SVC -> KUBE-SEP 점프와 KUBE-SEP의 두 규칙)에 붙이던
# `-m comment --comment "ns/svc:port -> IP:port"`를 더는 쓰지 않습니다. 줄 수는 그대로이고 텍스트가 줄어듭니다.
# 서비스 100개 x 엔드포인트 10개는 딱 1,000개(대규모 아님)이고, 101 x 10은 대규모입니다.

# %%
effect = views_ch05.large_cluster_effect()
small, large = effect.iloc[0], effect.iloc[1]
saved = 1 - large["bytes_per_service"] / small["bytes_per_service"]
per = int(rulecount.growth([1], 10, modes=("iptables",))["per_service"].iloc[0])  # lines one such Service costs
experiments.claim(
    not small["large_cluster_mode"] and large["large_cluster_mode"]
    and large["lines"] == small["lines"] + per and saved > 0.25 and large["comments"] < small["comments"] / 10,
    f"past 1,000 endpoints the per-endpoint comments go: the 101st Service adds its usual {per} lines, but "
    f"{saved:.0%} fewer bytes ({small['bytes_per_service']:,.0f} -> {large['bytes_per_service']:,.0f} per Service)",
    f"large-cluster mode changed:\n{effect}")
effect

# %% [markdown] lang="en"
# **Predict** (exercise 1). `svc-nodeport` has 3 `deploy-echo` endpoints. It is a NodePort Service:
# besides its ClusterIP, every node accepts it on one port of its own address (KUBE-NODEPORTS sends
# that traffic to a KUBE-EXT chain; chapter 06 teaches it). It gets `externalTrafficPolicy: Local`
# (chapter 07: outside traffic goes to this node's endpoints only, through KUBE-SVL). How many **nat-table rules** does kube-proxy's
# iptables mode write for it on `myk8s-worker`? Count with the templates of chapters 01, 06 and 07
# (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC, KUBE-SVL, KUBE-EXT, KUBE-SEP), then check;
# `rulecount.service_rules` is the formula the solution uses.

# %% [markdown] lang="ko"
# **예측**(연습 문제 1). `svc-nodeport`에는 `deploy-echo` 엔드포인트가 3개 있습니다. 이 서비스는 NodePort
# 서비스입니다. 클러스터 IP 말고도 모든 노드가 자기 주소의 포트 하나로 이 서비스를 받습니다(KUBE-NODEPORTS가 그
# 트래픽을 KUBE-EXT 체인으로 보냅니다. 06장에서 배웁니다). 여기에 `externalTrafficPolicy: Local`(07장: 외부
# 트래픽은 KUBE-SVL을 거쳐 이 노드의 엔드포인트로만 갑니다)을 설정합니다. kube-proxy의 iptables 모드는
# `myk8s-worker`에서 이 서비스를 위해 **nat 테이블 규칙**을 몇 개 쓸까요? 01, 06, 07장의 템플릿(KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC,
# KUBE-SVL, KUBE-EXT, KUBE-SEP)으로 센 다음 확인하세요. 풀이는 `rulecount.service_rules` 공식을 씁니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch05.local_nodeport_rules")` shows its hints one at a time; once you
# have checked an answer of your own and seen every hint, `kslab.check.solution("ch05.local_nodeport_rules")` shows
# the solution. An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in
# chapter 00) shows how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch05.local_nodeport_rules")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch05.local_nodeport_rules")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch05.local_nodeport_rules"
# 1. Count chain by chain for one Service port: its KUBE-SERVICES jump, its KUBE-NODEPORTS rule, the KUBE-SVC ladder
#    and mark rule, the KUBE-SVL chain (only this node's endpoints), the KUBE-EXT chain, and two rules per KUBE-SEP
#    (mark + DNAT).
# 2. Under Local, KUBE-SVL lists only the endpoints on myk8s-worker, while KUBE-SVC still lists all 3;
#    `rulecount.service_rules(info, 3, local_endpoints=..., config=...)` does the counting for you: compare it with
#    `lab.sh("myk8s-worker", "iptables -t nat -S")`.

# %% [markdown] lang="ko" hint="ch05.local_nodeport_rules"
# 1. 서비스 포트 하나에 대해 체인별로 세어 보세요. KUBE-SERVICES 점프, KUBE-NODEPORTS 규칙, KUBE-SVC 사다리와 표시 규칙, KUBE-SVL 체인(이 노드의 엔드포인트만),
#    KUBE-EXT 체인, 그리고 KUBE-SEP마다 두 규칙(표시 + DNAT)입니다.
# 2. Local에서 KUBE-SVL은 myk8s-worker의 엔드포인트만 나열하지만 KUBE-SVC는 여전히 3개를 모두 나열합니다. `rulecount.service_rules(info, 3,
#    local_endpoints=..., config=...)`가 계산해 줍니다. `lab.sh("myk8s-worker", "iptables -t nat -S")`와 비교하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of nat rules
# EXERCISE-END
twin = lab.copy()
twin.patch_service("svc-nodeport", external_traffic_policy="Local")
echo = [p for p in twin.cluster.pods if p.owner == "Deployment/deploy-echo"]
local = sum(p.node_name == node for p in echo)
info = service_port_infos(twin.cluster.service("svc-nodeport"))[0]
answer = rulecount.service_rules(info, len(echo), local_endpoints=local, config=twin.proxy_config(node)).nat
kslab.check.ch05.local_nodeport_rules(answer, lab)

# %% [markdown] lang="en"
# ## 2. One connection, two modes (같은 연결, 두 모드)
#
# The same study lab with kube-proxy in nftables mode (`--proxy-mode nftables`). Everything kube-proxy
# writes lives in one table, `ip kube-proxy`. The study's `iptables -t nat -S` shows nothing of it;
# `nft list table ip kube-proxy` does. Trace `net-pod` -> `svc-clusterip` in both labs:

# %% [markdown] lang="ko"
# ## 2. 같은 연결, 두 모드 (One connection, two modes)
#
# kube-proxy를 nftables 모드(`--proxy-mode nftables`)로 실행하는 같은 스터디 실습 환경입니다. kube-proxy가 쓰는
# 모든 것은 테이블 하나, `ip kube-proxy` 안에 있습니다. 스터디의 `iptables -t nat -S`에는 아무것도 보이지 않고,
# `nft list table ip kube-proxy`에는 보입니다. 두 실습 환경에서 `net-pod` -> `svc-clusterip`를 추적(trace)해 봅니다.

# %%
listing = nft_lab.sh(client_node, "nft list table ip kube-proxy")
print("\n".join(listing.splitlines()[:30]) + "\n...")
t_ipt = lab.trace("net-pod", "svc-clusterip")
t_nft = nft_lab.trace("net-pod", "svc-clusterip")
print(t_nft)
webpods = {p.pod_ip for p in lab.cluster.pods if p.name.startswith("webpod")}
experiments.claim(
    t_ipt.outcome == t_nft.outcome == "ok" and t_nft.dnat_to.split(":")[0] in webpods
    and any(c.startswith("service-") for c in t_nft.chains) and not any(c.startswith("KUBE-") for c in t_nft.chains)
    and "vmap @service-ips" in listing and not nft_lab.sh(client_node, "iptables -t nat -S | grep KUBE-SVC"),
    f"both modes DNAT net-pod's connection to a webpod ({t_ipt.dnat_to} / {t_nft.dnat_to}); nftables walks "
    f"{' -> '.join(t_nft.chains)} in table ip kube-proxy, and iptables -t nat -S shows no KUBE-SVC chain",
    "the two modes no longer agree, or the nftables lab still has iptables service chains")

# %% [markdown] lang="en"
# The dispatch is the difference. iptables mode's KUBE-SERVICES holds one rule per Service port,
# tested one after the other until one matches; nftables mode's `services` chain holds **one** rule,
# `ip daddr . meta l4proto . th dport vmap @service-ips`: a hash lookup in a verdict map (a set of
# `key : verdict` elements, here `ClusterIP . tcp . port : goto service-…`). The simulator counts
# the rules each new connection's first packet is tested against on the node (with one endpoint per
# Service: the dispatch depends on the number of Services, not of endpoints). **Predict**: how does
# that count grow from 10 to 1,000 Services in each mode?

# %% [markdown] lang="ko"
# 차이는 분기(dispatch)에 있습니다. iptables 모드의 KUBE-SERVICES에는 서비스 포트마다 규칙이 하나씩 있고, 맞는
# 규칙이 나올 때까지 차례로 검사합니다. nftables 모드의 `services` 체인에는 규칙이 **하나**뿐입니다.
# `ip daddr . meta l4proto . th dport vmap @service-ips`: 판정 맵(verdict map, `키 : 판정` 원소의 집합, 여기서는
# `ClusterIP . tcp . port : goto service-…`)에서 해시 조회 한 번입니다. 시뮬레이터는 새 연결의 첫 패킷이 노드에서
# 검사받는 규칙 수를 셉니다(서비스마다 엔드포인트 하나: 분기 비용은 엔드포인트 수가 아니라 서비스 수에 달려
# 있습니다). **예측**해 보세요. 서비스가 10개에서 1,000개로 늘 때 각 모드에서 이 수는 어떻게 될까요?

# %%
lookup = views_ch05.lookup_table((10, 1000), connections=20, seed=1)
mean = lookup.set_index(["mode", "services"])["rules_mean"]
experiments.claim(
    mean[("iptables", 1000)] > 10 * mean[("iptables", 10)] and mean[("nftables", 1000)] == mean[("nftables", 10)],
    f"iptables: {mean[('iptables', 10)]:.0f} -> {mean[('iptables', 1000)]:.0f} rules per first packet (a random "
    f"ClusterIP sits half-way down KUBE-SERVICES on average); nftables: {mean[('nftables', 10)]:.0f} -> "
    f"{mean[('nftables', 1000)]:.0f}, whatever the number of Services",
    f"the lookup cost changed:\n{lookup}")
lookup

# %% [markdown] lang="en"
# The rules themselves: `lab.render(node)` in nftables mode returns kube-proxy's nft transaction.
# `.text("nft")` is the layout of upstream's tests (what `kslab render --mode nftables --format nft`
# prints); the lines of `svc-clusterip`:

# %% [markdown] lang="ko"
# 규칙 자체도 봅니다. nftables 모드에서 `lab.render(node)`는 kube-proxy의 nft 트랜잭션을 돌려줍니다.
# `.text("nft")`는 업스트림 테스트의 배치(`kslab render --mode nftables --format nft`가 출력하는 것)입니다.
# `svc-clusterip`의 줄들입니다.

# %%
nft_rules = nft_lab.render(client_node)
mine = [line for line in nft_rules.text("nft").splitlines() if "svc-clusterip" in line]
print("\n".join(mine))
cip = lab.cluster.service("svc-clusterip").cluster_ip
experiments.claim(
    any(f"add element ip kube-proxy service-ips {{ {cip} . tcp . 9000 : goto service-" in line for line in mine)
    and sum("numgen random mod 3 vmap" in line for line in mine) == 1
    and sum(line.startswith("add chain ip kube-proxy endpoint-") for line in mine) == 3,
    f"svc-clusterip is one service-ips element ({cip} . tcp . 9000), one numgen rule choosing among 3 endpoint chains",
    "svc-clusterip's nftables rules changed")

# %% [markdown] lang="en"
# ## 3. minSyncPeriod: batching changes (변경 묶기)
#
# kube-proxy does not write rules on every event. Every Service, EndpointSlice or Node event asks its
# **sync runner** for a sync; the runner (Kubernetes 1.33: `BoundedFrequencyRunner` with a token
# bucket of 2) starts one at once if a token is left, else at the earliest `minSyncPeriod` after the
# previous sync *started*. Requests that arrive meanwhile are merged into that one sync. So
# `minSyncPeriod` trades **work** (syncs, lines written) against **staleness** (how long a change
# waits before it is in the kernel).
#
# The notes' example: a Deployment of 100 pods is deleted. Its pods' EndpointSlice updates arrive
# over about 3 seconds. `syncloop.simulate` runs the real Proxier on a simulated clock through these
# events; each sync takes the time kslab's duration model gives for what it writes (a fixed cost plus
# a cost per line or nft operation, `syncloop.DurationModel`, set from measurements on this project's
# machine), so the run is the same every time.
#
# **Predict** (exercise 2) before running: with the default `minSyncPeriod: 1s`, how many syncs does
# the deletion cause?

# %% [markdown] lang="ko"
# ## 3. minSyncPeriod: 변경 묶기 (Batching changes)
#
# kube-proxy는 이벤트마다 규칙을 쓰지 않습니다. 서비스, 엔드포인트슬라이스, 노드 이벤트는 모두 **동기화
# 실행기**(sync runner)에 동기화를 요청합니다. 실행기(쿠버네티스 1.33: 토큰 2개짜리 토큰 버킷을 가진
# `BoundedFrequencyRunner`)는 토큰이 남아 있으면 바로 동기화를 시작하고, 아니면 직전 동기화가 *시작된* 때로부터
# 빨라도 `minSyncPeriod` 뒤에 시작합니다. 그동안 들어온 요청은 그 동기화 하나로 합쳐집니다. 그래서
# `minSyncPeriod`는 **일**(동기화 횟수, 쓴 줄 수)과 **반영 지연**(staleness, 변경이 커널에 들어가기까지 기다리는 시간)을
# 맞바꿉니다.
#
# 노트의 예: 파드 100개짜리 디플로이먼트를 지웁니다. 파드들의 엔드포인트슬라이스 갱신이 약 3초에 걸쳐 도착합니다.
# `syncloop.simulate`는 시뮬레이션 시계 위에서 진짜 Proxier를 이 이벤트들에 돌립니다. 동기화 하나가 걸리는 시간은
# 그 동기화가 쓰는 양에 대해 kslab의 소요 시간 모델이 주는 시간입니다(고정 비용에 줄이나 nft 연산마다의 비용을
# 더한 것, `syncloop.DurationModel`. 이 프로젝트의 기계에서 잰 값으로 정했습니다). 그래서 실행할 때마다 결과가
# 같습니다.
#
# 실행하기 전에 **예측**해 보세요(연습 문제 2). 기본값 `minSyncPeriod: 1s`에서 이 삭제는 동기화를 몇 번 일으킬까요?

# %% [markdown] lang="en" hint="ch05.deletion_syncs"
# 1. The sync runner has a token bucket of 2: the first requests sync at once, then at most one sync starts per
#    minSyncPeriod, and requests in between are merged into the next sync.
# 2. The deletions arrive over about 3 seconds: count the burst at the start, then at most one sync per second while
#    the updates keep arriving. `views_ch05.compute_min_sync(1.0)` runs it.

# %% [markdown] lang="ko" hint="ch05.deletion_syncs"
# 1. 동기화 실행기는 토큰 버킷이 2입니다. 처음 요청은 바로 동기화하고, 그 뒤로는 minSyncPeriod마다 최대 한 번 시작하며, 그사이에 온 요청은 다음 동기화 하나로 합쳐집니다.
# 2. 삭제는 약 3초에 걸쳐 도착합니다. 시작할 때의 버스트, 그리고 업데이트가 계속 오는 동안 초당 최대 한 번씩의 동기화를 세어 보세요. `views_ch05.compute_min_sync(1.0)`가
#    실행해 줍니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of syncs
# EXERCISE-END
answer = views_ch05.compute_min_sync(1.0).count  # burst 2 at the start, then one per second while deletions arrive
kslab.check.ch05.deletion_syncs(answer)

# %%
table = views_ch05.min_sync_table((0.0, 1.0, 5.0, 10.0))
by = table.set_index("minSyncPeriod")
experiments.claim(
    by.loc[0.0, "syncs"] >= 90 and by.loc[1.0, "syncs"] <= 6 and by.loc[10.0, "syncs"] <= 3
    and by.loc[0.0, "written"] > 10 * by.loc[1.0, "written"]
    and by.loc[0.0, "staleness_max"] < by.loc[1.0, "staleness_max"] <= by.loc[5.0, "staleness_max"] <= by.loc[10.0, "staleness_max"],
    f"100 deletions: {by.loc[0.0, 'syncs']} syncs with minSyncPeriod 0 (one per deletion), {by.loc[1.0, 'syncs']} with 1 s, "
    f"{by.loc[10.0, 'syncs']} with 10 s; the work falls ({by.loc[0.0, 'written']:,} -> {by.loc[1.0, 'written']:,} lines) "
    f"and the longest wait grows ({by.loc[0.0, 'staleness_max']:.2f} s -> {by.loc[10.0, 'staleness_max']:.1f} s)",
    f"the minSyncPeriod trade-off changed:\n{table}")
table

# %% [markdown] lang="en"
# Move the slider: each bar is one sync (its width is how long it took), the ticks below are the
# deletions and the circles when each reached the kernel. At 0 s every deletion gets its own sync;
# from 1 s on, the first two syncs run at once (the burst of 2) and the rest wait for the period.
# Switch to nftables: its partial syncs write only the change (§4), but each `nft -f` has a fixed
# cost (about 50 ms in the simulator's duration model, from measurements on this project's machine),
# longer than the 30 ms between deletions: at 0 s the
# deletions already pile up (about 50 syncs, not 100). "100 updates" needs syncs shorter than the gap
# between changes.

# %% [markdown] lang="ko"
# 슬라이더를 움직여 보세요. 막대 하나가 동기화 하나이고(너비는 걸린 시간), 아래의 눈금은 삭제, 동그라미는 각
# 삭제가 커널에 들어간 때입니다. 0초이면 삭제마다 동기화가 하나씩 있습니다. 1초부터는 처음 두 동기화가 바로
# 실행되고(버스트 2), 나머지는 주기를 기다립니다. nftables로 바꿔 보세요. 부분 동기화는 바뀐 것만 쓰지만(4절),
# `nft -f`마다 고정 비용이 있습니다(이 프로젝트의 기계에서 잰 값으로 만든 시뮬레이터의 소요 시간 모델에서
# 약 50 ms). 이는 삭제 사이의 간격 30 ms보다 깁니다. 그래서 0초에서도 삭제가 쌓여 동기화가 100번이 아니라 약
# 50번입니다. "갱신 100번"은 동기화가 변경 사이의 간격보다 짧을 때의 이야기입니다.

# %%
panel = views_ch05.MinSyncPanel(min_sync_period=1.0)
panel

# %%
fresh = views_ch05.compute_min_sync(5.0)  # a new run, not the panel's state
waits = fresh.changes["staleness"]
longest = float(fresh.syncs["duration"].max())
experiments.claim(
    waits.max() <= 5.0 + longest + 1e-9 and fresh.count <= 3,
    f"with minSyncPeriod 5 s no deletion waited more than minSyncPeriod + the longest sync ({waits.max():.2f} s <= "
    f"5 + {longest:.2f} s), in {fresh.count} syncs",
    f"a change waited {waits.max():.2f} s, longer than minSyncPeriod + the longest sync")

# %% [markdown] lang="en"
# ## 4. Partial syncs, and what syncPeriod does (부분 동기화와 syncPeriod)
#
# Before Kubernetes 1.26 every iptables sync rewrote every chain, so large clusters raised
# `minSyncPeriod` (and `syncPeriod` to 1h) to sync less often. Since 1.28 (KEP-3453, GA) a sync is
# **partial** unless something forces a full one: only the chains of Services whose Service or
# EndpointSlices changed are written. The notes say "only making updates where Services or
# EndpointSlices have actually changed". That is true of the per-Service chains, but not the whole
# story in iptables mode: the top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, the filter chains) are
# rewritten **in full** on every sync, one rule per Service port, so a partial sync is still
# O(Services). nftables mode keeps its maps as elements and sends only the differences: O(changes),
# and **0** operations when nothing changed.

# %% [markdown] lang="ko"
# 쿠버네티스 1.26 이전에는 iptables 동기화가 매번 모든 체인을 다시 썼기 때문에, 큰 클러스터는 동기화를 덜 하려고
# `minSyncPeriod`를(그리고 `syncPeriod`를 1h로) 올렸습니다. 1.28부터(KEP-3453, GA) 동기화는 무언가가 전체 동기화를
# 강제하지 않는 한 **부분** 동기화입니다. 서비스나 엔드포인트슬라이스가 바뀐 서비스의 체인만 씁니다. 노트는
# "서비스나 엔드포인트슬라이스가 실제로 바뀐 곳만 갱신한다"고 말합니다. 서비스별 체인에 대해서는 맞지만, iptables
# 모드에서는 그것이 전부가 아닙니다. 최상위 체인(KUBE-SERVICES, KUBE-NODEPORTS, filter 체인들)은 동기화마다
# **통째로** 다시 쓰이고, 여기에는 서비스 포트마다 규칙이 하나씩 있으므로 부분 동기화도 여전히 O(서비스 수)입니다.
# nftables 모드는 맵을 원소로 유지하고 차이만 보냅니다. O(변경 수)이고, 바뀐 것이 없으면 연산이 **0**개입니다.

# %%
cost = views_ch05.sync_cost_table((100, 1000, 2000))
charts_ch05.lines_per_sync_figure(cost[cost["sync"] != "noop"]).show()
w = cost.set_index(["mode", "sync", "services"])["written"]
experiments.claim(
    w[("iptables", "partial", 2000)] > 10 * w[("iptables", "partial", 100)]
    and w[("nftables", "partial", 2000)] == w[("nftables", "partial", 100)]
    and w[("nftables", "noop", 2000)] == 0 and w[("iptables", "noop", 2000)] > 2000,
    f"after ONE Service changed, iptables' partial sync writes {w[('iptables', 'partial', 100)]:,} lines with 100 Services "
    f"and {w[('iptables', 'partial', 2000)]:,} with 2,000 (every Service's KUBE-SERVICES rule); nftables' writes "
    f"{w[('nftables', 'partial', 2000)]} operations at any size, and a sync with no change writes 0",
    f"partial syncs changed:\n{cost}")
cost.pivot_table(index=["mode", "sync"], columns="services", values="written")

# %% [markdown] lang="en"
# **What `syncPeriod` does.** It is *not* a periodic full resync (that is a fixed hourly full sync,
# `FullSyncPeriod`). It sets: (1) the retry delay after a failed sync (the next one is full);
# (2) how often iptables mode polls its canary chain `KUBE-PROXY-CANARY` to notice that someone
# flushed its tables, which forces a full sync; (3) in large-cluster mode, how often stale chains are
# deleted. Below, one endpoint goes away at t = 5 s and the sync that follows fails; nothing else
# changes; at t = 40 s someone flushes the node's tables. (A new change would start a sync, and so
# the retry, earlier: syncPeriod is the longest a failure waits.)

# %% [markdown] lang="ko"
# **`syncPeriod`가 하는 일.** 주기적인 전체 재동기화가 *아닙니다*(그것은 한 시간마다 고정으로 하는 전체 동기화,
# `FullSyncPeriod`입니다). `syncPeriod`가 정하는 것은 (1) 동기화가 실패한 뒤 재시도까지의 지연(다음 동기화는 전체),
# (2) iptables 모드가 누군가 테이블을 비웠는지 알아채려고 카나리(canary) 체인 `KUBE-PROXY-CANARY`를 확인하는 주기
# (알아채면 전체 동기화를 강제), (3) 대규모 클러스터 모드에서 오래된 체인을 지우는 주기입니다. 아래에서는 t = 5초에
# 엔드포인트 하나가 사라지고 그 뒤의 동기화가 실패합니다. 그 밖에는 아무것도 바뀌지 않습니다. t = 40초에 누군가
# 노드의 테이블을 비웁니다. (새 변경이 있으면 동기화가, 따라서 재시도도 더 일찍 시작됩니다. syncPeriod는 실패가
# 기다리는 가장 긴 시간입니다.)

# %%
small = synthetic_cluster(50, 3)
one_change = syncloop.delete_deployment(small, "svc00001", n=1, start=5.0)  # one endpoint goes at t = 5 s, then quiet
run = syncloop.simulate(small, one_change, syncloop.SyncLoopConfig(sync_period=30.0), fail_at=(5.0,), outside_edits=(40.0,))
s = run.syncs
print(s[["start", "full", "reason", "trigger", "ok", "lines"]].to_string(index=False))
failed = s[~s["ok"]]
retry = s[(s["start"] > failed["start"].iloc[0]) & s["ok"]].iloc[0]
noticed = s[s["start"] >= 40.0].iloc[0]
experiments.claim(
    len(failed) == 1 and retry["full"] and abs(retry["start"] - (failed["end"].iloc[0] + 30.0)) < 1e-6
    and noticed["full"] and 40.0 < noticed["start"] <= 40.0 + 30.0,
    f"the sync at {failed['start'].iloc[0]:.1f} s fails and is retried, in full, at {retry['start']:.2f} s (syncPeriod after "
    f"it ended); "
    f"the flush at 40 s is noticed by the canary poll and repaired by a full sync at {noticed['start']:.1f} s (within one "
    "syncPeriod); no sync ran in between: syncPeriod is not a resync timer",
    f"syncPeriod's roles changed:\n{s}")

# %% [markdown] lang="en"
# So the notes' advice holds for the reason they give: with partial syncs, keep `minSyncPeriod` at
# its default (or below what you used before 1.28), and never set `syncPeriod: 1h`: it only delays
# retries and the repair of outside edits. In nftables mode both settings live under `nftables:` in
# the KubeProxyConfiguration (`nftables.minSyncPeriod`, `nftables.syncPeriod`), with the same defaults.

# %% [markdown] lang="ko"
# 그러니 노트의 조언은 노트가 든 이유 그대로 유효합니다. 부분 동기화가 있으니 `minSyncPeriod`는 기본값으로(또는
# 1.28 이전에 쓰던 값보다 작게) 두고, `syncPeriod: 1h`는 쓰지 마세요. 재시도와 외부 수정의 복구만 늦출 뿐입니다.
# nftables 모드에서는 두 설정이 KubeProxyConfiguration의 `nftables:` 아래에 있고(`nftables.minSyncPeriod`,
# `nftables.syncPeriod`), 기본값은 같습니다.

# %% [markdown] lang="en"
# ## 5. Kernel numbers (커널 측정값)
#
# Two measurements on a real kernel, each sample in its own scratch network namespace, in a child
# process that is killed (with everything it started) past its timeout and then reported as
# *timed out*, never extrapolated:
#
# - **load time**: the full sync of N synthetic Services (10 endpoints each) loaded into a fresh
#   namespace with `iptables-legacy-restore`, `iptables-nft-restore` (Debian's default `iptables`) or
#   `nft -f`; dashed: the partial sync of one changed Service after it;
# - **first-packet latency**: a client namespace opens new TCP connections to random ClusterIPs
#   through a node namespace holding the rules; `connect()` time is one round trip plus the node's
#   lookup. Percentiles: p50 is the median, p99 the time 99% of connections beat. `front_p50` and
#   `back_p50` split the same run by where the Service's rule sits in `KUBE-SERVICES`: the median of
#   the connections to the first quarter, and to the last quarter. iptables checks the chain's rules
#   one by one, so the back pays for every rule ahead of it; nftables looks the address up in a map.
#   Comparing within one run is fairer than comparing runs: whatever else the machine is doing
#   slows both halves alike.
#
# On netns this cell measures now with sizes that fit a minute or two (loads of 200-1,000 Services;
# latency through 200 and 10,000 Services in iptables mode, 200 and 1,000 in nftables mode). On sim it shows the recording
# shipped with kslab (`data/recorded/kube-proxy-scale.json`), labelled with where and when it was
# recorded.

# %% [markdown] lang="ko"
# ## 5. 커널 측정값 (Kernel numbers)
#
# 실제 커널에서 두 가지를 측정합니다. 표본(sample)마다 임시 네트워크 네임스페이스를 따로 만들고, 자식 프로세스에서
# 실행하며, 시간 제한을 넘기면 (그것이 시작한 모든 것과 함께) 강제로 끝내고 *시간 초과*(timed out)로 보고합니다.
# 추정값으로 메우지 않습니다.
#
# - **적재 시간**(load time): 합성 서비스 N개(엔드포인트 10개씩)의 전체 동기화를 새 네임스페이스에
#   `iptables-legacy-restore`, `iptables-nft-restore`(데비안의 기본 `iptables`), `nft -f`로 적재합니다. 점선은 그
#   뒤 서비스 하나가 바뀐 부분 동기화입니다.
# - **첫 패킷 지연 시간**(first-packet latency): 클라이언트 네임스페이스가 규칙을 가진 노드 네임스페이스를 거쳐
#   무작위로 고른 클러스터 IP에 새 TCP 연결을 엽니다. `connect()` 시간은 왕복 한 번에 노드의 조회 시간을 더한
#   것입니다. 백분위수(percentile): p50은 중앙값, p99는 연결의 99%가 그보다 빨랐던 시간입니다. `front_p50`과
#   `back_p50`은 같은 실행을 서비스의 규칙이 `KUBE-SERVICES`의 어디에 있는지로 나눕니다. 앞쪽 4분의 1에 있는
#   서비스로 간 연결의 중앙값과, 뒤쪽 4분의 1로 간 연결의 중앙값입니다. iptables는 체인의 규칙을 하나씩 검사하므로
#   뒤쪽은 앞선 모든 규칙의 값을 치릅니다. nftables는 주소를 맵(map)에서 한 번에 찾습니다. 한 실행 안에서 비교하는
#   편이 실행끼리 비교하는 것보다 공정합니다. 기계가 그 사이 하는 다른 일이 두 쪽을 똑같이 느리게 하기 때문입니다.
#
# netns에서는 이 셀이 1~2분 안에 끝나는 규모로 지금 측정합니다(적재는 서비스 200~1,000개, 지연 시간은 iptables 모드에서
# 서비스 200개와 10,000개, nftables 모드에서 200개와 1,000개). sim에서는 kslab과 함께 배포되는 기록
# (`data/recorded/kube-proxy-scale.json`)을 보여 주고, 어디서 언제 기록했는지 함께 표시합니다.

# %%
numbers = views_ch05.kernel_numbers(lab.backend)
if numbers.meta:
    print(numbers.meta["label"])
    print(f"recorded with: {numbers.meta['command']}")
charts_ch05.restore_figure(numbers.restore, numbers.source).show()
charts_ch05.latency_figure(numbers.latency, numbers.source).show()
r = numbers.restore[~numbers.restore["timed_out"].astype(bool)].astype({"partial": bool, "seconds": float})
full = r[~r["partial"]].pivot_table(index="services", columns="backend", values="seconds")
pairs = r.pivot_table(index=["backend", "services"], columns="partial", values="seconds").dropna()
n0, n1 = full["iptables-legacy"].dropna().index.min(), full["iptables-legacy"].dropna().index.max()
both = full[["iptables-legacy", "iptables-nft"]].dropna().index.max()  # the largest size both backends loaded
experiments.claim(
    full.loc[n1, "iptables-legacy"] > 2 * full.loc[n0, "iptables-legacy"]
    and full.loc[both, "iptables-nft"] > full.loc[both, "iptables-legacy"]
    and len(pairs) >= 4 and (pairs[True] < pairs[False]).all(),
    f"{'measured now' if numbers.measured else 'recorded'}: loading {n1:,} Services takes {full.loc[n1, 'iptables-legacy']:.2f} s "
    f"with iptables-legacy vs {full.loc[n0, 'iptables-legacy']:.2f} s for {n0:,}; at {both:,} iptables-nft takes "
    f"{full.loc[both, 'iptables-nft']:.1f} s vs {full.loc[both, 'iptables-legacy']:.2f} s; every partial sync loads faster "
    "than the full one",
    f"the load times changed:\n{full}\n{pairs}")
lat = numbers.latency[~numbers.latency["timed_out"].astype(bool)].set_index(["mode", "services"])
ipt_sizes = sorted(lat.loc["iptables"].index)
nft_sizes = sorted(lat.loc["nftables"].index)
ipt_n, nft_n = ipt_sizes[-1], nft_sizes[-1]
ipt_growth = lat.loc[("iptables", ipt_n), "p50"] / lat.loc[("iptables", ipt_sizes[0]), "p50"]
nft_growth = lat.loc[("nftables", nft_n), "p50"] / lat.loc[("nftables", nft_sizes[0]), "p50"]
# the same run split by where the Service's rule sits: last quarter of KUBE-SERVICES over first quarter.
# A quarter holds about n/4 connections, so a ratio moves by tens of percent from run to run and with the
# machine's baseline (n=500 on netns: nftables 1.0x to 1.3x, iptables 2x to 4.7x); the extra time of the back
# quarter (ms) is the rules walked, so the claim compares the modes on it.
back, front = lat["back_p50"], lat["front_p50"]
ipt, nft = ("iptables", ipt_n), ("nftables", nft_n)
ipt_depth, nft_depth = back[ipt] / front[ipt], back[nft] / front[nft]
ipt_extra, nft_extra = back[ipt] - front[ipt], back[nft] - front[nft]
experiments.claim(
    ipt_depth > 1.3 and nft_depth < 1.6 and ipt_extra > 3 * max(nft_extra, 0.005),
    f"through {ipt_n:,} Services in iptables mode, connections to Services in the last quarter of KUBE-SERVICES take "
    f"{ipt_extra * 1000:.0f} µs more than those in the first quarter ({ipt_depth:.1f}x the median); in nftables mode "
    f"({nft_n:,} Services) {nft_extra * 1000:+.0f} µs ({nft_depth:.2f}x). Across sizes the median grew {ipt_growth:.1f}x "
    f"(iptables, {ipt_sizes[0]:,} -> {ipt_n:,}) and {nft_growth:.1f}x (nftables, {nft_sizes[0]:,} -> {nft_n:,})",
    f"the latency shape changed:\n{numbers.latency}")
numbers.latency[["mode", "backend", "services", "p01", "p50", "p90", "p99", "front_p50", "back_p50"]]

# %% [markdown] lang="en"
# Read the charts with their limits. **iptables-nft**, the `iptables` Debian and most distributions
# install today, translates every rule into nf_tables objects: its restore grows far faster than
# linearly here (1,000 Services take seconds, 5,000 took ten minutes on this machine), while
# iptables-legacy stays usable to tens of thousands of Services. That is why the latency
# measurement loads iptables mode with the legacy backend. **nft** itself (1.0.6 here) is slow on
# large *first* loads too, so the recording stops at 2,000 Services for it; kube-proxy's nftables
# mode avoids most of that cost by loading the whole ruleset once and then sending only changes
# (the dashed nft line: 44 operations, under 0.2 s at 2,000 Services, though still growing with the
# table). The Kubernetes blog's measurements (30,000
# Services, bigger machines) show the same shape: in the 30,000-Service cluster nftables' worst case
# beats iptables' best.

# %% [markdown] lang="ko"
# 차트는 한계와 함께 읽으세요. 오늘날 데비안과 대부분의 배포판이 설치하는 `iptables`인 **iptables-nft**는 모든
# 규칙을 nf_tables 오브젝트로 옮깁니다. 이 기계에서 그 복원(restore)은 선형보다 훨씬 빠르게 늘어납니다(서비스
# 1,000개에 몇 초, 5,000개에는 10분이 걸렸습니다). 반면 iptables-legacy는 서비스 수만 개까지 쓸 만합니다. 그래서
# 지연 시간 측정은 iptables 모드를 legacy 백엔드로 적재합니다. **nft** 자체(여기서는 1.0.6)도 큰 *첫* 적재는
# 느리므로, 기록은 nft에 대해 서비스 2,000개에서 멈춥니다. kube-proxy의 nftables 모드는 규칙 전체를 한 번만
# 적재하고 그 뒤로는 변경만 보내서 이 비용 대부분을 피합니다(nft의 점선: 연산 44개, 서비스 2,000개에서 0.2초
# 미만. 다만 테이블이 커지면 여전히 늘어납니다).
# 쿠버네티스 블로그의 측정(서비스 30,000개, 더 큰 기계)도 같은 모양입니다. 서비스 30,000개 클러스터에서
# nftables의 최악의 경우가 iptables의 최선의 경우보다 빠릅니다.

# %% [markdown] lang="en"
# ## 6. The metrics kube-proxy exports (메트릭)
#
# kube-proxy serves Prometheus metrics on `:10249/metrics` (prefix `kubeproxy_`). The ones about
# syncs: `sync_proxy_rules_duration_seconds` (a histogram of sync durations: counts per upper
# bound `le`, plus their sum and count; the notes' advice compares its *average*, sum / count, with
# 1 s), its `_full_` and `_partial_` variants, `sync_proxy_rules_last_timestamp_seconds` (when the
# last sync succeeded: a health check alerts when it is old), `sync_proxy_rules_last_queued_timestamp_seconds`
# (when a change last asked for a sync), `network_programming_duration_seconds` (from the
# EndpointSlice change to the rules in the kernel) and the failure counters. The minSyncPeriod run
# of §3 (1 s) exports:

# %% [markdown] lang="ko"
# ## 6. kube-proxy가 내보내는 메트릭 (Metrics)
#
# kube-proxy는 `:10249/metrics`에서 프로메테우스(Prometheus) 메트릭을 내보냅니다(접두사 `kubeproxy_`). 동기화에
# 관한 것은 다음과 같습니다. `sync_proxy_rules_duration_seconds`(동기화 시간의 히스토그램: 상한 `le`마다의 개수와
# 합계, 총 개수. 노트의 조언은 그 *평균*, 즉 합계 / 개수를 1초와 비교합니다)와 그 `_full_`, `_partial_` 변형,
# `sync_proxy_rules_last_timestamp_seconds`(마지막 동기화가 성공한 시각. 오래되면 헬스 체크가 경보를 냅니다),
# `sync_proxy_rules_last_queued_timestamp_seconds`(변경이 마지막으로 동기화를 요청한 시각),
# `network_programming_duration_seconds`(엔드포인트슬라이스 변경부터 규칙이 커널에 들어가기까지), 그리고 실패
# 카운터입니다. 3절의 minSyncPeriod 실행(1초)이 내보내는 값입니다.

# %%
cluster = synthetic_cluster(200, 10)
add_service(cluster, "web", 100)  # the Deployment's 100 pods behind Service web
one = syncloop.simulate(cluster, syncloop.delete_deployment(cluster, "web", n=100, over=3.0, start=1.0),
                        syncloop.SyncLoopConfig(min_sync_period=1.0))
text = one.metrics.prometheus_text()
print("\n".join(line for line in text.splitlines() if "sync_proxy_rules_duration_seconds" in line and "partial" not in line
                and "full" not in line))
count = next(float(line.split()[-1]) for line in text.splitlines()
             if line.startswith("kubeproxy_sync_proxy_rules_duration_seconds_count"))
experiments.claim(
    count == len(one.syncs) and "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text,
    f"the duration histogram counted the {len(one.syncs)} syncs of the run; its average is "
    f"{one.syncs['duration'].mean() * 1000:.0f} ms, far below 1 s: no reason to raise minSyncPeriod",
    "the metrics disagree with the run")

# %% [markdown] lang="en"
# ## Exercises (연습 문제)
#
# **3.** A new case: a cluster of 1,000 Services (10 endpoints each), and one Service gets an 11th
# endpoint. What does the partial sync that follows write, in iptables mode (lines) and in
# nftables mode (operations)? Give both as a pair `(lines, operations)`. Use §4's reasoning, then
# confirm with a Proxier of your own (`kslab.proxy.proxier.Proxier`) on `synthetic_cluster(1000, 10)`.

# %% [markdown] lang="ko"
# ## 연습 문제 (Exercises)
#
# **3.** 새로운 경우입니다. 서비스 1,000개(엔드포인트 10개씩)인 클러스터에서 서비스 하나가 11번째 엔드포인트를
# 얻습니다. 그다음의 부분 동기화는 iptables 모드에서 몇 줄, nftables 모드에서 연산 몇 개를 쓸까요? 두 값을 쌍
# `(lines, operations)`로 답하세요. 4절의 추론을 쓴 다음, `synthetic_cluster(1000, 10)`에 여러분의 Proxier
# (`kslab.proxy.proxier.Proxier`)를 돌려 확인하세요.

# %% [markdown] lang="en" hint="ch05.partial_written"
# 1. A partial sync in iptables mode still writes iptables-restore input for the chains it touches plus the
#    KUBE-SERVICES chain and the table's headers; nftables mode sends only the operations for what changed (the new
#    endpoint's chain and elements, the service's chain).
# 2. Build a Proxier per mode on `synthetic_cluster(1000, 10)`, sync once, append an Endpoint to one slice, sync
#    again later (after minSyncPeriod), and read what the second sync wrote (its lines / operations).

# %% [markdown] lang="ko" hint="ch05.partial_written"
# 1. iptables 모드의 부분 동기화도 건드린 체인에 KUBE-SERVICES 체인과 테이블 머리글까지 iptables-restore 입력으로 씁니다. nftables 모드는 바뀐 것(새 엔드포인트의
#    체인과 원소, 서비스의 체인)에 대한 작업만 보냅니다.
# 2. 모드마다 `synthetic_cluster(1000, 10)`로 Proxier를 만들어 한 번 동기화하고, 슬라이스 하나에 Endpoint를 추가한 뒤 (minSyncPeriod가 지난 다음) 다시
#    동기화하세요. 두 번째 동기화가 쓴 양(줄 수 / 작업 수)을 읽으면 됩니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # (lines, operations)
# EXERCISE-END
from kslab.model import Endpoint
from kslab.proxy.config import ProxyConfig
from kslab.proxy.proxier import Proxier

written = []
for mode in ("iptables", "nftables"):
    state = synthetic_cluster(1000, 10)
    proxier = Proxier(ProxyConfig.for_node(state, state.nodes[0].name, mode=mode))
    proxier.sync(state.services, state.endpoint_slices, lambda ruleset: None, now=0.0)
    state.endpoint_slices[7].endpoints.append(Endpoint(addresses=["10.14.0.1"], node_name=state.nodes[1].name))
    partial = proxier.sync(state.services, state.endpoint_slices, lambda ruleset: None, now=2.0)
    written.append(partial.ruleset.operations if mode == "nftables" else partial.lines)
answer = tuple(written)
kslab.check.ch05.partial_written(answer)

# %% [markdown] lang="en"
# **4.** Another case for minSyncPeriod: an endpoint flaps (its pod turns unready and ready again)
# every 0.4 s for 20 s. With `minSyncPeriod: 2s`, at most how long is the kernel behind the API
# server (the largest staleness)? Run `syncloop.simulate` with `syncloop.endpoint_flapping(...)`
# on `synthetic_cluster(100, 10)` (the Service `svc00001`), then check your number.

# %% [markdown] lang="ko"
# **4.** minSyncPeriod의 다른 경우입니다. 엔드포인트 하나가 20초 동안 0.4초마다 흔들립니다(flapping, 파드가
# 준비되지 않음이 되었다가 다시 준비됨). `minSyncPeriod: 2s`일 때 커널은 API 서버보다 최대 얼마나 뒤처질까요(가장
# 큰 반영 지연)? `synthetic_cluster(100, 10)`(서비스 `svc00001`)에 `syncloop.endpoint_flapping(...)`으로
# `syncloop.simulate`를 실행한 다음 값을 확인하세요.

# %% [markdown] lang="en" hint="ch05.flapping_staleness"
# 1. Staleness is how long a change waits before a sync puts it in the kernel. With a change every 0.4 s, the sync
#    runner is always busy: after the burst of 2, syncs start at most every 2 s.
# 2. A change that arrives just after a sync started waits for the next allowed start, minSyncPeriod later, plus that
#    sync's own duration. Run `syncloop.simulate(...)` and take `changes["staleness"].max()`.

# %% [markdown] lang="ko" hint="ch05.flapping_staleness"
# 1. 지연(staleness)은 변경이 동기화로 커널에 들어가기까지 기다린 시간입니다. 0.4초마다 변경이 오면 동기화 실행기는 늘 바쁩니다. 버스트 2번 뒤로는 동기화가 최대 2초에 한 번 시작합니다.
# 2. 동기화가 막 시작한 직후에 온 변경은 다음 허용 시점(minSyncPeriod 뒤)에 그 동기화 자체의 소요 시간까지 더해 기다립니다. `syncloop.simulate(...)`를 실행하고
#    `changes["staleness"].max()`를 구하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # seconds
# EXERCISE-END
flap_cluster = synthetic_cluster(100, 10)
flaps = syncloop.endpoint_flapping(flap_cluster, "svc00001", period=0.4, duration=20.0)
flap_run = syncloop.simulate(flap_cluster, flaps, syncloop.SyncLoopConfig(min_sync_period=2.0))
answer = float(flap_run.changes["staleness"].max())
kslab.check.ch05.flapping_staleness(answer)

# %% [markdown] lang="en"
# The chapter changed nothing in your lab; `nft_lab` is a second lab you can drop (`nft_lab.close()`).
# `lab.reset()` is the way back whenever a cell of another chapter stopped halfway.

# %% [markdown] lang="ko"
# 이 장은 여러분의 실습 환경을 바꾸지 않았습니다. `nft_lab`은 두 번째 실습 환경이므로 버려도 됩니다
# (`nft_lab.close()`). 다른 장의 셀이 중간에 멈췄다면 언제든 `lab.reset()`으로 돌아가세요.

# %%
nft_lab.close()
study = kslab.Lab(seed=5, backend="sim")  # the study's lab as made (the same cluster on sim and netns)
nodes = [n.name for n in lab.cluster.nodes]
experiments.claim(lab.backend == "kind" or all(lab.render(n).raw_text() == study.render(n).raw_text() for n in nodes),
                  "your lab's rules are still the study lab's, on every node", "the lab's rules changed during the chapter")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - iptables mode writes ~43 lines per Service of 10 endpoints and tests a new connection's first
#   packet against the Services one by one; nftables mode dispatches with one verdict-map lookup, so
#   first-packet cost stays flat as Services grow. Large-cluster mode (> 1,000 endpoints) drops the
#   per-endpoint comments (same lines, fewer bytes).
# - `minSyncPeriod` batches changes: fewer syncs and less work, each change waiting up to
#   `minSyncPeriod` + one sync. Keep the default 1 s unless the average of
#   `sync_proxy_rules_duration_seconds` is far above 1 s.
# - Partial syncs (GA 1.28) write only changed Services' chains, but iptables mode still rewrites
#   every Service's KUBE-SERVICES rule; nftables mode writes only the change (0 for no change).
#   `syncPeriod` is retry / outside-edit detection / large-cluster cleanup, not a periodic resync.
#
# Key terms: 동기화 (sync), 부분 동기화 (partial sync), 전체 동기화 (full sync), 판정 맵 (verdict map),
# 대규모 클러스터 모드 (large-cluster mode), 지연 시간 (latency), 백분위수 (percentile), 메트릭 (metric).
# Chapter 06 moves on to NodePort Services (study notes 2).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - iptables 모드는 엔드포인트 10개인 서비스마다 약 43줄을 쓰고, 새 연결의 첫 패킷을 서비스 하나하나와 차례로
#   비교합니다. nftables 모드는 판정 맵 조회 한 번으로 분기하므로 서비스가 늘어도 첫 패킷 비용이 그대로입니다.
#   대규모 클러스터 모드(엔드포인트 1,000개 초과)는 엔드포인트별 주석을 뺍니다(줄 수는 같고 바이트가 줄어듭니다).
# - `minSyncPeriod`는 변경을 묶습니다. 동기화와 일이 줄고, 변경 하나는 최대 `minSyncPeriod` + 동기화 한 번만큼
#   기다립니다. `sync_proxy_rules_duration_seconds`의 평균이 1초보다 훨씬 크지 않다면 기본값 1초를 유지하세요.
# - 부분 동기화(1.28 GA)는 바뀐 서비스의 체인만 쓰지만, iptables 모드는 여전히 모든 서비스의 KUBE-SERVICES 규칙을
#   다시 씁니다. nftables 모드는 변경만 씁니다(변경이 없으면 0). `syncPeriod`는 재시도, 외부 수정 감지, 대규모
#   클러스터 정리이며 주기적인 재동기화가 아닙니다.
#
# 핵심 용어: 동기화(sync), 부분 동기화(partial sync), 전체 동기화(full sync), 판정 맵(verdict map), 대규모 클러스터
# 모드(large-cluster mode), 지연 시간(latency), 백분위수(percentile), 메트릭(metric). 06장은 NodePort 서비스(스터디
# 노트 2)로 넘어갑니다.
