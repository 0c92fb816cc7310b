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
# # 11 · Capstone: troubleshooting Services (종합 실습: 서비스 문제 해결)
#
# Eight things that go wrong with Services in real clusters, each one broken for you in the lab. You get
# the symptom, as a colleague would report it; you find the cause with the tools of chapters 00-10
# (`lab.trace`, `lab.run`, `lab.sh`, `lab.render`, the views) and answer one precise question, which
# `kslab.check.ch11` checks. By the end you will be able to:
#
# 1. tell a hairpin problem, a traffic-policy problem and a broken pod apart from their symptoms, and prove
#    which one it is with a trace or a run;
# 2. read what the API server and the EndpointSlice controller refuse (a `nodePort` out of range, hints
#    removed for too few endpoints) from their own messages;
# 3. explain why session affinity "does not work" behind a NAT, and read its timeout from the rules;
# 4. count a Service's endpoints in a real node's `iptables-save` dump, and say what a too-small
#    `minSyncPeriod` costs.
#
# **Your variant.** Every scenario is made from a **seed**: which node, pod, replica count, port, timeout or
# dump it uses. Your seed is `kslab.capstone.learner_seed()`: the number or the name in the environment
# variable `KSLAB_LEARNER` (your instructor may set it), or the name you put in the set-up cell; 0 if
# neither. The checks know every variant's answer, because they compute it from the broken lab; nothing is
# stored. `kslab capstone show ID --seed N --lang en` prints a scenario's briefing in a terminal.

# %% [markdown] lang="ko"
# # 11 · 종합 실습: 서비스 문제 해결 (Capstone: troubleshooting Services)
#
# 실제 클러스터에서 서비스(Service)에 생기는 문제 여덟 가지를 실습 환경에서 하나씩 고장 내 두었습니다. 동료가
# 알려 주듯이 증상을 받고, 00-10장의 도구(`lab.trace`, `lab.run`, `lab.sh`, `lab.render`, views)로 원인을 찾아
# 정확한 질문 하나에 답합니다. 답은 `kslab.check.ch11`이 확인합니다. 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 헤어핀 문제, 트래픽 정책 문제, 고장 난 파드(Pod)를 증상으로 구별하고, 추적이나 실행으로 어느 것인지
#    증명할 수 있습니다.
# 2. API 서버와 엔드포인트슬라이스(EndpointSlice) 컨트롤러가 거부하는 것(범위 밖의 `nodePort`, 엔드포인트가
#    너무 적어 지운 힌트)을 그들의 메시지에서 읽을 수 있습니다.
# 3. NAT 뒤에서 세션 어피니티(session affinity)가 "안 되는" 이유를 설명하고, 그 제한 시간을 규칙에서 읽을 수
#    있습니다.
# 4. 실제 노드의 `iptables-save` 덤프에서 서비스의 엔드포인트를 세고, 너무 작은 `minSyncPeriod`의 대가를 말할
#    수 있습니다.
#
# **나만의 변형.** 시나리오는 모두 **시드**(seed)로 만들어집니다. 어떤 노드, 파드, 레플리카 수, 포트, 제한 시간,
# 덤프를 쓸지가 시드에 따라 다릅니다. 내 시드는 `kslab.capstone.learner_seed()`입니다. 환경 변수
# `KSLAB_LEARNER`의 숫자나 이름(강사가 정해 줄 수 있습니다), 또는 설정 셀에 적은 이름이며, 둘 다 없으면 0입니다.
# 확인 함수는 고장 난 실습 환경에서 답을 계산하므로 모든 변형의 답을 압니다. 저장된 답은 없습니다. 터미널에서는
# `kslab capstone show ID --seed N --lang ko`가 시나리오의 설명을 출력합니다.

# %% [markdown] lang="en"
# **How a scenario goes.** `sc = capstone.scenario(ID, SEED)` is your variant (`sc.params` says what
# differs); `on = sc.setup(lab)` resets the lab and breaks it that way, and returns the lab to work on
# (the lab itself on sim and netns; on a live kind cluster a simulator copy, announced in one line, since
# nobody should break a live cluster this way). Diagnose on `on`, put your answer in `answer`, and run
# `kslab.check.ch11.ID(answer, sc, on)`: a wrong answer gets a hint that names the tool to use. The next
# scenario's `setup` resets the lab again, so the scenarios do not depend on each other: do them in any
# order. This chapter reads kube-proxy's iptables rules, so its lab is made with `proxy_mode="iptables"`.

# %% [markdown] lang="ko"
# **시나리오 진행 방법.** `sc = capstone.scenario(ID, SEED)`가 내 변형입니다(`sc.params`가 무엇이 다른지
# 알려 줍니다). `on = sc.setup(lab)`은 실습 환경을 초기화하고 그렇게 고장 낸 다음, 작업할 실습 환경을 돌려줍니다
# (sim과 netns에서는 실습 환경 자신, 라이브 kind 클러스터에서는 한 줄로 알리는 시뮬레이터 복사본입니다. 라이브
# 클러스터를 이렇게 고장 내서는 안 되니까요). `on`에서 진단하고, 답을 `answer`에 넣고,
# `kslab.check.ch11.ID(answer, sc, on)`을 실행하세요. 틀린 답에는 쓸 도구를 알려 주는 힌트가 붙습니다. 다음
# 시나리오의 `setup`이 실습 환경을 다시 초기화하므로 시나리오끼리는 서로 기대지 않습니다. 어떤 순서로 해도
# 됩니다. 이 장은 kube-proxy의 iptables 규칙을 읽으므로 실습 환경을 `proxy_mode="iptables"`로 만듭니다.

# %%
import re

import kslab
from kslab import capstone, experiments, views, views_ch05

lab = kslab.Lab(seed=11, proxy_mode="iptables")  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))

SEED = capstone.learner_seed()  # or capstone.learner_seed("your name"): the same name, the same variants
print(f"your seed: {SEED}")
for s in capstone.scenarios(SEED):
    print(f"  {s.id:15} {s.params if s.id != 'node-dump' else {k: s.params[k] for k in ('dump', 'service')}}")

# %% [markdown] lang="en"
# ## 1. Hairpin broken on one node
#
# *"About a third of my calls to `svc-clusterip` hang, from webpod2 only."* Chapter 03: a pod that reaches
# itself through its Service needs the `KUBE-MARK-MASQ` rule at the top of its `KUBE-SEP-…` chain, so that
# `MASQUERADE` rewrites the source; without it the pod drops a SYN from its own address. Someone deleted
# those rules by hand on one node (`lab.delete_rules`). **Which node?** Find it from the symptom (which
# webpod's connections fail), then confirm it in the node's rules (`on.sh(node, "iptables -t nat -S")`: fewer
# `KUBE-MARK-MASQ` jumps than on the other workers).

# %% [markdown] lang="ko"
# ## 1. 한 노드에서 깨진 헤어핀
#
# *"svc-clusterip 호출의 약 3분의 1이 멈춰요. webpod2에서만요."* 03장에서 보았듯이, 자기 서비스를 거쳐 자기 자신에게
# 닿는 파드에는 `KUBE-SEP-…` 체인 맨 위의 `KUBE-MARK-MASQ` 규칙이 필요합니다. 그래야 `MASQUERADE`가 출발지를
# 바꿉니다. 규칙이 없으면 파드는 자기 주소에서 온 SYN을 버립니다. 누군가 한 노드에서 이 규칙을 손으로
# 지웠습니다(`lab.delete_rules`). **어느 노드일까요?** 증상(어느 webpod의 연결이 실패하는지)에서 찾은 다음, 그
# 노드의 규칙(`on.sh(node, "iptables -t nat -S")`: 다른 워커보다 `KUBE-MARK-MASQ` 점프가 적습니다)에서 확인하세요.

# %%
sc = capstone.scenario("hairpin", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)

# %% [markdown] lang="en"
# *Stuck?* `kslab.check.hint("ch11.hairpin")` shows a scenario's hints one at a time; once you have checked an answer
# of your own and seen every hint, `kslab.check.solution("ch11.hairpin")` shows the solution. A scenario's exercise
# name is its check without `kslab.check.`; `kslab progress` shows how far you are.

# %% [markdown] lang="ko"
# *막혔나요?* `kslab.check.hint("ch11.hairpin")`은 시나리오의 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본
# 뒤에는 `kslab.check.solution("ch11.hairpin")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀
# 것입니다. `kslab progress`로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch11.hairpin"
# 1. Only a pod that the ladder sends back to itself needs the hairpin rule, so only the broken node's webpod sees
#    failures: run `on.run(pod, "svc-clusterip", n=60)` from each webpod and count the rows whose `outcome` is not
#    `ok`.
# 2. Confirm it in the rules: `on.sh(node, "iptables -t nat -S | grep -c KUBE-MARK-MASQ")` on each worker; the node
#    with fewer `KUBE-MARK-MASQ` jumps lost the `-s POD_IP -j KUBE-MARK-MASQ` rule of its `KUBE-SEP-…` chain.

# %% [markdown] lang="ko" hint="ch11.hairpin"
# 1. 래더가 파드 자신에게 돌려보낸 연결만 헤어핀 규칙이 필요합니다. 그래서 고장 난 노드의 webpod만 실패를 봅니다. webpod마다 `on.run(pod, "svc-clusterip",
#    n=60)`을 실행하고 `outcome`이 `ok`가 아닌 행을 세어 보세요.
# 2. 규칙에서 확인하세요. 워커마다 `on.sh(node, "iptables -t nat -S | grep -c KUBE-MARK-MASQ")`를 실행하면, `KUBE-MARK-MASQ` 점프가 적은
#    노드가 `KUBE-SEP-…` 체인의 `-s POD_IP -j KUBE-MARK-MASQ` 규칙을 잃은 노드입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a node name, e.g. "myk8s-worker"
# EXERCISE-END
sc = capstone.scenario("hairpin", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
failing = []
for pod in on.pods("app=webpod"):
    df = on.run(pod, "svc-clusterip", n=60, seed=1)
    node = on.cluster.pod(pod).node_name
    hairpin = on.sh(node, "iptables -t nat -S").count("-j KUBE-MARK-MASQ")
    print(f"{pod} on {node}: {int((df['outcome'] != 'ok').sum())} of {len(df)} connections failed; "
          f"KUBE-MARK-MASQ jumps in its node's nat table: {hairpin}")
    if (df["outcome"] != "ok").any():  # a failed connection is one the ladder sent back to the pod itself
        failing.append(node)
answer = failing[0]
kslab.check.ch11.hairpin(answer, sc, on)

# %% [markdown] lang="en"
# ## 2. externalTrafficPolicy Local, no local pod
#
# *"The load balancer sends to one node and every connection times out."* Chapter 07: under
# `externalTrafficPolicy: Local` a node forwards external traffic only to its **own** ready pods; a node
# without one drops it (`"... has no local endpoints" -j DROP`). A load balancer that health-checks the
# nodes (`healthCheckNodePort`) avoids such a node; this one does not. **Which nodes' nodePort does answer
# mypc?** Trace mypc to each node's nodePort, and look at where deploy-echo's pods run.

# %% [markdown] lang="ko"
# ## 2. 외부 트래픽 정책 Local, 로컬 파드 없음
#
# *"로드 밸런서가 한 노드로 보내는데 연결이 모두 시간 초과예요."* 07장에서 보았듯이 `externalTrafficPolicy:
# Local`에서 노드는 외부 트래픽을 **자기** 노드의 준비된 파드로만 보냅니다. 그런 파드가 없는 노드는 버립니다
# (`"... has no local endpoints" -j DROP`). 노드를 헬스 체크하는(`healthCheckNodePort`) 로드 밸런서는 그런 노드를
# 피하지만, 이 로드 밸런서는 헬스 체크를 하지 않습니다. **어느 노드의 노드 포트가 mypc에게 응답할까요?** 노드마다
# 노드 포트로 mypc를 추적하고, deploy-echo의 파드가 어디서 도는지 보세요.

# %%
sc = capstone.scenario("local-no-pod", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)

# %% [markdown] lang="en" hint="ch11.local_no_pod"
# 1. Under `externalTrafficPolicy: Local` a node sends external traffic only to its own ready pods:
#    `on.pods_per_node("app=deploy-websrv")` says where they run.
# 2. Trace mypc to each node's nodePort (`on.cluster.service("svc-nodeport").ports[0].node_port`) with
#    `on.trace("mypc", f"{node}:{port}")` and keep the nodes whose `outcome` is `ok`; do not forget the control
#    plane.

# %% [markdown] lang="ko" hint="ch11.local_no_pod"
# 1. `externalTrafficPolicy: Local`에서 노드는 외부 트래픽을 자기 노드의 준비된 파드로만 보냅니다. `on.pods_per_node("app=deploy-websrv")`가
#    파드가 어디서 도는지 알려 줍니다.
# 2. 노드마다 노드 포트(`on.cluster.service("svc-nodeport").ports[0].node_port`)로 `on.trace("mypc", f"{node}:{port}")`를
#    실행하고 `outcome`이 `ok`인 노드를 고르세요. 컨트롤 플레인도 잊지 마세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a list of node names
# EXERCISE-END
sc = capstone.scenario("local-no-pod", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
port = on.cluster.service("svc-nodeport").ports[0].node_port
print({node: len(pods) for node, pods in on.pods_per_node("app=deploy-websrv").items()})
answer = []
for n in on.cluster.nodes:
    t = on.trace("mypc", f"{n.name}:{port}")
    print(f"mypc -> {n.name}:{port}: {t.outcome}")
    if t.outcome == "ok":
        answer.append(n.name)
kslab.check.ch11.local_no_pod(answer, sc, on)

# %% [markdown] lang="en"
# ## 3. A pod without a readiness probe serving errors
#
# *"Some requests fail, most are fine, and every pod is Running and Ready."* Chapter 08: the EndpointSlice
# controller removes a pod from a Service only when its kubelet marks it not Ready, which only a failing
# **readiness probe** does. These pods have none, so a pod whose app answers errors keeps its share of the
# connections. **Which pod serves the errors?** Run the client's connections and group them by pod and outcome.

# %% [markdown] lang="ko"
# ## 3. 준비성 프로브 없는 파드가 오류를 냅니다
#
# *"일부 요청이 실패하고 대부분은 괜찮아요. 파드는 모두 Running이고 Ready예요."* 08장에서 보았듯이 엔드포인트슬라이스
# 컨트롤러는 kubelet이 파드를 준비되지 않음(not Ready)으로 표시할 때만 서비스에서 뺍니다. 그렇게 하는 것은 실패하는
# **준비성 프로브**(readiness probe)뿐입니다. 이 파드들에는 프로브가 없어서, 앱이 오류로 응답하는 파드도 연결을
# 제 몫만큼 받습니다. **오류를 내는 파드는 무엇일까요?** 클라이언트의 연결을 실행하고 파드와 결과로 묶어 보세요.

# %%
sc = capstone.scenario("no-readiness", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)

# %% [markdown] lang="en" hint="ch11.no_readiness"
# 1. Run the client's connections as the briefing names them: `df = on.run(sc.params["client"], sc.params["to"],
#    n=90)`.
# 2. `df.groupby("endpoint_pod")["outcome"].value_counts()`: one pod's rows are all errors; that pod stays in the
#    Service because nothing (no readiness probe) marks it not Ready.

# %% [markdown] lang="ko" hint="ch11.no_readiness"
# 1. 브리핑이 말하는 클라이언트의 연결을 실행하세요. `df = on.run(sc.params["client"], sc.params["to"], n=90)`.
# 2. `df.groupby("endpoint_pod")["outcome"].value_counts()`를 보면 한 파드의 행만 모두 오류입니다. 준비성 프로브가 없어 그 파드를 준비되지 않음으로 표시하는
#    것이 없으니, 파드는 서비스에 남습니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a pod name
# EXERCISE-END
sc = capstone.scenario("no-readiness", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
df = on.run(sc.params["client"], sc.params["to"], n=90, seed=2)
print(df.groupby("endpoint_pod")["outcome"].value_counts().unstack(fill_value=0))
answer = df[df["outcome"] != "ok"]["endpoint_pod"].iloc[0]
kslab.check.ch11.no_readiness(answer, sc, on)

# %% [markdown] lang="en"
# ## 4. Topology hints disabled: too few endpoints
#
# *"We set `topology-mode: Auto` and traffic still crosses zones."* Chapter 09: the EndpointSlice controller
# gives hints only when each zone can get at least its minimum, `ceil(n/3 / 1.2)` of `n` endpoints over
# three equal zones; otherwise it removes every hint (event `TopologyAwareHintsDisabled`) and kube-proxy
# uses all endpoints everywhere. **What is the smallest replica count above yours that gets hints back?**
# Read the hints table, then scale a copy (`on.copy()`) up one by one, or compute it.

# %% [markdown] lang="ko"
# ## 4. 토폴로지 힌트 꺼짐: 엔드포인트가 너무 적음
#
# *"`topology-mode: Auto`를 켰는데도 트래픽이 존을 넘어가요."* 09장에서 보았듯이 엔드포인트슬라이스 컨트롤러는
# 존마다 최솟값(엔드포인트 `n`개를 같은 크기의 세 존에 나눌 때 `ceil(n/3 / 1.2)`)을 줄 수 있을 때만 힌트를 줍니다.
# 아니면 힌트를 모두 지우고(이벤트 `TopologyAwareHintsDisabled`) kube-proxy는 어디서나 모든 엔드포인트를 씁니다.
# **지금보다 큰 레플리카 수 중 힌트를 다시 받는 가장 작은 수는 얼마일까요?** 힌트 표를 읽은 다음, 복사본
# (`on.copy()`)을 하나씩 늘려 보거나 계산하세요.

# %%
sc = capstone.scenario("hints-disabled", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)
print(views.hints_table(on.cluster, "svc-zone").to_string())

# %% [markdown] lang="en" hint="ch11.hints_disabled"
# 1. With n endpoints in three equal zones, each zone needs at least `ceil(n/3 / 1.2)`; hints are given only if
#    three such minimums fit in n.
# 2. Scale a copy one replica at a time (`trial = on.copy(); trial.scale("deploy-zone", n)`) and read
#    `views.hints_table(trial.cluster, "svc-zone")`: the first count whose ready endpoints all have a `for_zones`
#    is the answer.

# %% [markdown] lang="ko" hint="ch11.hints_disabled"
# 1. 엔드포인트 n개가 같은 크기의 세 존에 있으면 존마다 최소 `ceil(n/3 / 1.2)`개가 필요합니다. 그 최솟값 세 개가 n 안에 들어갈 때만 힌트가 붙습니다.
# 2. 복사본을 하나씩 늘려 보세요(`trial = on.copy(); trial.scale("deploy-zone", n)`). `views.hints_table(trial.cluster, "svc-
#    zone")`에서 준비된 엔드포인트가 모두 `for_zones`를 가진 첫 개수가 답입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of replicas
# EXERCISE-END
sc = capstone.scenario("hints-disabled", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
trial = on.copy()  # a simulator copy: scaling it changes nothing in `on`
n = sc.params["replicas"]
while True:
    n += 1
    trial.scale("deploy-zone", n)
    hints = views.hints_table(trial.cluster, "svc-zone")
    hinted = (hints[hints["ready"]]["for_zones"] != "").all()
    print(f"{n} replicas: {'hints' if hinted else 'no hints'}")
    if hinted:
        break
answer = n
kslab.check.ch11.hints_disabled(answer, sc, on)

# %% [markdown] lang="en"
# ## 5. Session affinity that "doesn't work" behind SNAT
#
# *"We turned on `sessionAffinity: ClientIP` and now one pod takes all the office's traffic."* Chapter 02:
# kube-proxy's affinity is an `xt_recent` list keyed on the **source address** the node sees. Behind one NAT
# every user has the same address, so all of them are one client. **How many pods serve the users, and after
# how many idle seconds may a user move?** Run the users' connections, and read `--rcheck --seconds` in the
# rules.

# %% [markdown] lang="ko"
# ## 5. SNAT 뒤에서 "안 되는" 세션 어피니티
#
# *"`sessionAffinity: ClientIP`를 켰더니 파드 하나가 사무실 트래픽을 전부 받아요."* 02장에서 보았듯이 kube-proxy의
# 어피니티는 노드가 보는 **출발지 주소**를 키로 하는 `xt_recent` 목록입니다. NAT 하나 뒤에서는 모든 사용자의 주소가
# 같으므로 모두가 클라이언트 하나입니다. **몇 개의 파드가 사용자들을 맡고, 몇 초 동안 연결이 없으면 사용자가
# 옮겨갈 수 있을까요?** 사용자의 연결을 실행하고, 규칙에서 `--rcheck --seconds`를 읽으세요.

# %%
sc = capstone.scenario("affinity-snat", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)

# %% [markdown] lang="en" hint="ch11.affinity_snat"
# 1. xt_recent remembers the source address the node sees; behind one NAT every user is mypc. Run the users'
#    connections (`on.run("mypc", f"{ingress}:svc-nodeport", n=users)`) and count the distinct `endpoint_pod`.
# 2. The idle time is the Service's `timeoutSeconds`, written as `--rcheck --seconds N` in its `KUBE-SVC-…` chain:
#    `on.sh(ingress, "iptables -t nat -S | grep rcheck")`.

# %% [markdown] lang="ko" hint="ch11.affinity_snat"
# 1. xt_recent는 노드가 보는 출발지 주소를 기억합니다. NAT 하나 뒤에서는 모든 사용자가 mypc입니다. 사용자의 연결(`on.run("mypc", f"{ingress}:svc-
#    nodeport", n=users)`)을 실행하고 서로 다른 `endpoint_pod`를 세어 보세요.
# 2. 연결 없이 기다리는 시간은 서비스의 `timeoutSeconds`이며, `KUBE-SVC-…` 체인에 `--rcheck --seconds N`으로 적혀 있습니다. `on.sh(ingress,
#    "iptables -t nat -S | grep rcheck")`.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a tuple (pods reached, seconds)
# EXERCISE-END
sc = capstone.scenario("affinity-snat", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
ingress = sc.params["ingress"]
df = on.run("mypc", f"{ingress}:svc-nodeport", n=sc.params["users"], seed=3)
print(df["endpoint_pod"].value_counts().to_string())
rules = on.sh(ingress, "iptables -t nat -S")
print("\n".join(line for line in str(rules).splitlines() if "--rcheck" in line))
answer = (df["endpoint_pod"].nunique(), int(re.search(r"--rcheck --seconds (\d+)", str(rules)).group(1)))
kslab.check.ch11.affinity_snat(answer, sc, on)

# %% [markdown] lang="en"
# ## 6. A nodePort outside the range
#
# *"`kubectl apply` fails, but 3xxxx is a valid nodePort!"* Chapter 06: the API server allocates and
# validates nodePorts in its `--service-node-port-range`, 30000-32767 by default, and a cluster may be
# started with another one. `sc.manifest()` is the team's manifest. **What is the largest nodePort this API
# server accepts?** Apply it (`on.apply(...)`) and read the whole error.

# %% [markdown] lang="ko"
# ## 6. 범위 밖의 nodePort
#
# *"`kubectl apply`가 실패해요. 3xxxx는 올바른 nodePort인데요!"* 06장에서 보았듯이 API 서버는 자기
# `--service-node-port-range`(기본 30000-32767) 안에서 nodePort를 할당하고 검사하며, 클러스터는 다른 범위로 시작될
# 수도 있습니다. `sc.manifest()`가 팀의 매니페스트입니다. **이 API 서버가 받아들이는 가장 큰 nodePort는
# 얼마일까요?** 적용해 보고(`on.apply(...)`) 오류 메시지를 끝까지 읽으세요.

# %%
sc = capstone.scenario("nodeport-range", SEED)
on = sc.setup(lab)
print(sc.id, sc.params)
print(sc.manifest().read_text())

# %% [markdown] lang="en" hint="ch11.nodeport_range"
# 1. The API server checks a nodePort against its own `--service-node-port-range`, which need not be the default
#    30000-32767.
# 2. Apply the manifest and print the error: `try: on.apply(sc.manifest())` / `except kslab.errors.AdmissionError
#    as e: print(e)`; its last sentence names the valid range.

# %% [markdown] lang="ko" hint="ch11.nodeport_range"
# 1. API 서버는 nodePort를 자기 `--service-node-port-range`로 검사하며, 그 범위가 기본값 30000-32767이라는 보장은 없습니다.
# 2. 매니페스트를 적용하고 오류를 출력하세요. `try: on.apply(sc.manifest())` / `except kslab.errors.AdmissionError as e: print(e)`.
#    마지막 문장이 올바른 범위를 알려 줍니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a port number
# EXERCISE-END
sc = capstone.scenario("nodeport-range", SEED)
on = sc.setup(lab)  # your variant's broken lab again: this cell also runs on its own
try:
    on.apply(sc.manifest())
    message = ""
except kslab.errors.AdmissionError as e:
    message = str(e)
print(message)
experiments.claim(bool(message), "the API server refused the manifest", "the API server accepted the manifest")
answer = int(re.search(r"valid ports is (\d+)-(\d+)", message).group(2))
kslab.check.ch11.nodeport_range(answer, sc, on)

# %% [markdown] lang="en"
# ## 7. A real node's iptables dump
#
# *"Here is `iptables-save` from the node. How many backends does kube-proxy think this Service has?"* The
# dumps are real nodes' rules, published in study notes (`data/node-dumps`, sources in its `SOURCES.md`).
# Find the Service's `KUBE-SERVICES` rule (its comment is `namespace/name:port cluster IP`), follow its jump
# to the `KUBE-SVC-…` chain and count that chain's `KUBE-SEP-…` jumps, one per endpoint. No such rule? Then
# kube-proxy had no endpoint for it. `kslab trace --iptables-save FILE... --node-ip IP --from POD_IP --to IP:PORT/PROTO`
# traces one connection through the same rules.

# %% [markdown] lang="ko"
# ## 7. 실제 노드의 iptables 덤프
#
# *"노드의 `iptables-save`입니다. kube-proxy는 이 서비스의 백엔드가 몇 개라고 보나요?"* 덤프는 스터디 노트에
# 공개된 실제 노드의 규칙입니다(`data/node-dumps`, 출처는 그 `SOURCES.md`). 서비스의 `KUBE-SERVICES` 규칙(주석이
# `namespace/name:port cluster IP`)을 찾아 `KUBE-SVC-…` 체인으로 점프를 따라가고, 그 체인의 `KUBE-SEP-…` 점프를
# 세세요. 엔드포인트마다 하나입니다. 그런 규칙이 없다면 kube-proxy에게 그 서비스의 엔드포인트가 없었던 것입니다.
# `kslab trace --iptables-save FILE... --node-ip IP --from POD_IP --to IP:PORT/PROTO`는 같은 규칙으로 연결 하나를
# 추적합니다.

# %%
sc = capstone.scenario("node-dump", SEED)
on = sc.setup(lab)  # nothing to break: the dump is the artefact
print(sc.id, sc.params)

# %% [markdown] lang="en" hint="ch11.node_dump"
# 1. Read the dump's lines (`capstone.dump_paths(sc.params["dump"])`) and find the `-A KUBE-SERVICES` rule whose
#    comment is the Service's `namespace/name:port cluster IP`: its `-j KUBE-SVC-…` names the chain.
# 2. Count that chain's `-j KUBE-SEP-…` rules, one per endpoint. No cluster IP rule at all, only a "has no
#    endpoints" REJECT? Then the answer is 0.

# %% [markdown] lang="ko" hint="ch11.node_dump"
# 1. 덤프의 줄(`capstone.dump_paths(sc.params["dump"])`)을 읽고, 주석이 서비스의 `namespace/name:port cluster IP`인 `-A KUBE-
#    SERVICES` 규칙을 찾으세요. 그 규칙의 `-j KUBE-SVC-…`가 체인 이름입니다.
# 2. 그 체인의 `-j KUBE-SEP-…` 규칙을 세세요. 엔드포인트마다 하나입니다. 클러스터 IP 규칙이 아예 없고 "has no endpoints" REJECT만 있다면 답은 0입니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of endpoints
# EXERCISE-END
sc = capstone.scenario("node-dump", SEED)  # your variant: this cell also runs on its own
lines = [line for path in capstone.dump_paths(sc.params["dump"]) for line in path.read_text().splitlines()]
service = sc.params["service"]
jumps = [re.search(r"-j (KUBE-SVC-\w+)", line) for line in lines
         if line.startswith("-A KUBE-SERVICES ") and f"{service} cluster IP" in line]
chain = jumps[0].group(1) if jumps and jumps[0] else None
seps = [line for line in lines if chain and line.startswith(f"-A {chain} ") and "-j KUBE-SEP-" in line]
print(chain, *seps, sep="\n")
print("\n".join(line for line in lines if service in line and "has no endpoints" in line))
answer = len(seps)
kslab.check.ch11.node_dump(answer, sc)

# %% [markdown] lang="en"
# ## 8. A slow sync with a too-small minSyncPeriod
#
# *"We set `minSyncPeriod: 0s` so that changes apply at once; now kube-proxy's CPU is always busy."*
# Chapter 05: kube-proxy's sync runner starts a sync at once while it has a token (a burst of 2), else at
# the earliest `minSyncPeriod` after the last one; updates that arrive meanwhile go into that one sync. A
# small period batches almost nothing, and in a large cluster each sync is slow. **How many syncs does the
# deletion in your variant cause?** Run the sync loop with your variant's numbers, and compare with 1 s.

# %% [markdown] lang="ko"
# ## 8. 너무 작은 minSyncPeriod와 느린 동기화
#
# *"변경이 바로 반영되게 `minSyncPeriod: 0s`로 했더니 kube-proxy의 CPU가 늘 바빠요."* 05장에서 보았듯이
# kube-proxy의 동기화 실행기는 토큰이 있으면(버스트 2) 바로 동기화를 시작하고, 없으면 마지막 동기화에서
# `minSyncPeriod`가 지난 가장 이른 때에 시작합니다. 그동안 들어온 갱신은 그 동기화 하나로 들어갑니다. 주기가 작으면
# 거의 묶지 못하고, 큰 클러스터에서는 동기화 하나하나가 느립니다. **내 변형의 삭제는 동기화를 몇 번
# 일으킬까요?** 변형의 숫자로 동기화 루프를 실행하고 1초일 때와 비교하세요.

# %%
sc = capstone.scenario("min-sync", SEED)
on = sc.setup(lab)  # nothing to break: the sync loop runs on the simulator's clock
print(sc.id, sc.params)

# %% [markdown] lang="en" hint="ch11.min_sync"
# 1. kube-proxy syncs at once while its runner has a token (a burst of 2), else at the earliest `minSyncPeriod`
#    after the last sync; updates that arrive meanwhile share that sync.
# 2. Run the sync loop with your variant's numbers: `views_ch05.compute_min_sync(p["min_sync_period"],
#    services=p["services"], pods=p["pods"]).count`, and compare with 1.0.

# %% [markdown] lang="ko" hint="ch11.min_sync"
# 1. kube-proxy는 실행기에 토큰이 있으면(버스트 2) 바로 동기화하고, 없으면 마지막 동기화에서 `minSyncPeriod`가 지난 가장 이른 때에 동기화합니다. 그동안 들어온 갱신은 그 동기화
#    하나를 함께 씁니다.
# 2. 변형의 숫자로 동기화 루프를 실행하세요. `views_ch05.compute_min_sync(p["min_sync_period"], services=p["services"],
#    pods=p["pods"]).count`, 그리고 1.0과 비교하세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a number of syncs
# EXERCISE-END
sc = capstone.scenario("min-sync", SEED)  # your variant: this cell also runs on its own
p = sc.params
small = views_ch05.compute_min_sync(p["min_sync_period"], services=p["services"], pods=p["pods"])
default = views_ch05.compute_min_sync(1.0, services=p["services"], pods=p["pods"])
print(f"minSyncPeriod {p['min_sync_period']} s: {small.count} syncs; 1 s: {default.count} syncs")
experiments.claim(default.count < small.count, f"1 s batches the {p['pods']} updates into fewer syncs",
                  "1 s did not batch the updates")
answer = small.count
kslab.check.ch11.min_sync(answer, sc)

# %% [markdown] lang="en"
# Once you have checked your answer, see it: your variant's sync loop over time, with its `minSyncPeriod` and
# with the default 1 s. Each bar is one sync (its width: how long the sync took); the ticks at the bottom are the
# pod deletions (API events) and the circles the moments each one reached the kernel's rules.

# %% [markdown] lang="ko"
# 답을 확인했다면 눈으로 보세요. 내 변형의 `minSyncPeriod`와 기본값 1초에서 동기화 루프가 시간에 따라 어떻게 도는지
# 보여 줍니다. 막대 하나가 동기화 한 번(너비는 동기화에 걸린 시간)이고, 아래쪽 눈금은 파드 삭제(API 이벤트), 동그라미는
# 각 삭제가 커널의 규칙에 반영된 때입니다.

# %%
from IPython.display import display

from kslab import charts_ch05

p = capstone.scenario("min-sync", SEED).params  # your variant
runs = {period: views_ch05.compute_min_sync(period, services=p["services"], pods=p["pods"])
        for period in (p["min_sync_period"], 1.0)}
for period, run in runs.items():
    display(charts_ch05.sync_timeline_figure(run.syncs, run.changes,
                                             title=f"minSyncPeriod {period:g} s: {run.count} syncs for {p['pods']} deletions"))
experiments.claim(runs[1.0].count < runs[p["min_sync_period"]].count,
                  f"the default 1 s needed {runs[1.0].count} syncs, {p['min_sync_period']:g} s needed "
                  f"{runs[p['min_sync_period']].count}", "1 s did not batch the deletions")

# %%
lab.reset()  # the study's lab as it was made, for whatever you try next
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A symptom seen by **some** clients (a third of one pod's calls, one node's nodePort) points at one
#   node's rules or one pod: compare clients, nodes and pods with `lab.run`, then read the rules there.
# - What the control plane refuses or removes says why in its own words: the API server's validation error
#   (the **node port range**, 노드 포트 범위), the EndpointSlice controller's event (hints removed).
# - Affinity (세션 어피니티) and traffic policy (외부 트래픽 정책) act on what the **node** sees: the source
#   address after any NAT, the pods on that node. A real node's dump and kube-proxy's sync settings are read
#   the same way as the lab's.
#
# Instructors: `kslab capstone --answers --seed N` (or `--learner NAME`) lists every scenario's answer for a
# learner's seed; `docs/instructor-guide.md` says how to hand out seeds.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - **일부** 클라이언트만 겪는 증상(파드 하나의 호출 3분의 1, 노드 하나의 노드 포트)은 노드 하나의 규칙이나 파드
#   하나를 가리킵니다. `lab.run`으로 클라이언트, 노드, 파드를 비교한 다음 그곳의 규칙을 읽으세요.
# - 컨트롤 플레인이 거부하거나 지우는 것은 그 이유를 스스로 말합니다. API 서버의 검증 오류(**노드 포트 범위**,
#   node port range), 엔드포인트슬라이스 컨트롤러의 이벤트(힌트 제거)입니다.
# - 세션 어피니티(session affinity)와 외부 트래픽 정책(external traffic policy)은 **노드**가 보는 것에 따라
#   동작합니다. NAT를 거친 뒤의 출발지 주소, 그 노드의 파드입니다. 실제 노드의 덤프와 kube-proxy의 동기화 설정도
#   실습 환경의 것과 같은 방법으로 읽습니다.
#
# 강사용: `kslab capstone --answers --seed N`(또는 `--learner NAME`)은 학습자 시드의 모든 시나리오 답을 보여 줍니다.
# 시드를 나눠 주는 방법은 `docs/instructor-guide.md`에 있습니다.
