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
# # 02 · sessionAffinity: ClientIP (세션 어피니티)
#
# Study notes 1.6: with `sessionAffinity: ClientIP` a client keeps reaching the same pod. You will
# be able to:
#
# 1. show what the setting changes in kube-proxy's rules (`-m recent --rcheck` / `--set`);
# 2. measure stickiness per client, with and without affinity;
# 3. predict when a client may move (`timeoutSeconds`, on the simulated clock);
# 4. explain why clients behind one NAT all stick to one pod.

# %% [markdown] lang="ko"
# # 02 · sessionAffinity: ClientIP (세션 어피니티)
#
# 스터디 노트 1.6: `sessionAffinity: ClientIP`를 설정하면 클라이언트는 계속 같은 파드(Pod)에 연결됩니다.
# 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 이 설정이 kube-proxy의 규칙(rule)에서 무엇을 바꾸는지(`-m recent --rcheck` / `--set`) 보여 줄 수 있습니다.
# 2. 세션 어피니티(session affinity)가 있을 때와 없을 때, 클라이언트가 한 파드에 얼마나 고정되는지 측정할 수 있습니다.
# 3. 클라이언트가 다른 파드로 옮겨 갈 수 있는 때(`timeoutSeconds`, 시뮬레이션 시계 기준)를 예측할 수 있습니다.
# 4. NAT 하나 뒤에 있는 클라이언트들이 모두 한 파드에 고정되는 이유를 설명할 수 있습니다.

# %%
import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=2)
print(f"backend: {lab.backend}")
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
rules = lab.render("myk8s-control-plane").save_text().splitlines()
for line in rules:
    if "KUBE-SVC-KBDEBIL6IU6WL7RF" in line and line.startswith("-A") or ("svc-clusterip" in line and "recent" in line and "KUBE-SEP" in line.split()[1]):
        print(line)

# %% [markdown] lang="en"
# The SVC chain now starts with one `--rcheck` rule per endpoint: "if this source address is in
# the list `KUBE-SEP-X` and was seen in the last 30 s, go to `KUBE-SEP-X`". Only a client not
# seen recently falls through to the usual probability ladder. Each SEP chain's DNAT rule carries
# `-m recent --set`, which records (or refreshes) the client's address in its list. xt_recent
# keeps the lists in the kernel of **each node**, up to 100 addresses each.

# %% [markdown] lang="ko"
# 이제 서비스(Service)의 SVC 체인(chain)은 엔드포인트(endpoint)마다 `--rcheck` 규칙 하나로 시작합니다.
# "이 출발지 주소가 `KUBE-SEP-X` 목록에 있고 최근 30초 안에 보였다면 `KUBE-SEP-X`로 간다"는 뜻입니다.
# 최근에 보이지 않은 클라이언트만 평소의 확률 사다리로 내려갑니다. 각 SEP 체인의 DNAT 규칙에는
# `-m recent --set`이 붙어 클라이언트 주소를 목록에 기록(또는 갱신)합니다. xt_recent는 이 목록을
# **노드(node)마다** 커널에 두며, 목록 하나에 주소를 최대 100개까지 담습니다.

# %% [markdown] lang="en"
# ## Predict, then run
#
# Eight clients each open 10 connections. Without affinity, how many different webpods will a
# client reach? With it?

# %% [markdown] lang="ko"
# ## 예측한 다음 실행하기
#
# 클라이언트 8개가 각각 연결을 10개씩 엽니다. 세션 어피니티가 없으면 클라이언트 하나가 서로 다른 webpod
# 몇 개에 도달할까요? 세션 어피니티가 있으면요?

# %%
lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
clients = [f"10.10.1.{100 + i}" for i in range(8)]
lab.clear_kernel_state()
free = lab.run(clients, "svc-clusterip", n=80, seed=1)
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
lab.clear_kernel_state()
sticky = lab.run(clients, "svc-clusterip", n=80, seed=1, interval=0.01)
charts.stickiness_figure(free, title="sessionAffinity None: 8 clients x 10 connections").show()
charts.stickiness_figure(sticky, title="sessionAffinity ClientIP: 8 clients x 10 connections").show()
s_free, s_sticky = experiments.stickiness(free), experiments.stickiness(sticky)
experiments.claim((s_sticky["endpoints"] == 1).all() and s_free["endpoints"].mean() > 2,
                  f"with ClientIP every client stayed on one pod; without, a client reached {s_free['endpoints'].mean():.1f} pods on average",
                  f"stickiness did not change as taught: {s_sticky['endpoints'].to_dict()}")

# %% [markdown] lang="en"
# ## Expiry on the simulated clock
#
# `timeoutSeconds: 30`. A client that stays silent for longer is a stranger again. The sim's clock
# moves only when told (`lab.advance(seconds)`), so the experiment is exact and instant. The
# kernel's clock (netns backend) runs in real time: there `lab.advance` really waits, so the
# window is shortened to 3 s.

# %% [markdown] lang="ko"
# ## 시뮬레이션 시계에서의 만료
#
# `timeoutSeconds: 30`입니다. 이보다 오래 조용했던 클라이언트는 다시 처음 보는 클라이언트가 됩니다. sim의
# 시계는 지시할 때만 움직이므로(`lab.advance(seconds)`) 실험은 정확하고 즉시 끝납니다. 커널의 시계(netns
# 백엔드)는 실제 시간으로 흐르므로 그곳에서는 `lab.advance`가 정말로 기다립니다. 그래서 netns에서는 창을
# 3초로 줄입니다.

# %%
window = 30 if lab.backend == "sim" else 3
tries = 30 if lab.backend == "sim" else 10
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=window)
lab.clear_kernel_state()
first = lab.run("net-pod", "svc-clusterip", n=1, seed=11).loc[0, "endpoint_pod"]
lab.advance(window - 1)
within = lab.run("net-pod", "svc-clusterip", n=20, seed=12, interval=0)["endpoint_pod"].unique().tolist()
moves, last = 0, first
for k in range(tries):
    lab.advance(window + 1)
    now = lab.run("net-pod", "svc-clusterip", n=1, seed=100 + k).loc[0, "endpoint_pod"]
    moves += now != last
    last = now
print(f"first pod {first}; within {window - 1} s: {within}; after {window + 1} s of silence the client moved in {moves} of {tries} tries")
experiments.claim(within == [first] and moves >= tries / 3,
                  "inside the window the client always returns; after it, the ladder picks again (about 2/3 of the time another pod)",
                  f"expiry behaved differently: within={within}, moves={moves}")

# %% [markdown] lang="en"
# ## Explore
#
# Toggle affinity and change the number of clients.

# %% [markdown] lang="ko"
# ## 탐색
#
# 세션 어피니티를 켜고 끄면서 클라이언트 수를 바꿔 보세요.

# %%
import gc

from kslab.views import AffinityPanel

panel = AffinityPanel(lab, clients=8)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** Which iptables match implements ClientIP affinity?

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** ClientIP 세션 어피니티를 구현하는 iptables 매치(match)는 무엇입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "recent"
kslab.check.ch02.affinity_match(answer)

# %% [markdown] lang="en"
# **2.** `timeoutSeconds: 30`. A client connects at t = 0 s and again at t = 45 s. May the second
# connection land on another pod? (`True`/`False`)

# %% [markdown] lang="ko"
# **2.** `timeoutSeconds: 30`입니다. 클라이언트가 t = 0초에 연결하고 t = 45초에 다시 연결합니다. 두 번째
# 연결이 다른 파드에 도착할 수 있습니까? (`True`/`False`)

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = True
kslab.check.ch02.may_move(answer)

# %% [markdown] lang="en"
# **3.** Twenty users sit behind one NAT (all their packets come from `mypc`'s address) and use
# `svc-nodeport` with ClientIP affinity. How many different pods do they reach?

# %% [markdown] lang="ko"
# **3.** 사용자 20명이 NAT 하나 뒤에 있고(이들의 패킷은 모두 `mypc`의 주소에서 옵니다), ClientIP 세션
# 어피니티가 설정된 `svc-nodeport`를 사용합니다. 이들은 서로 다른 파드 몇 개에 도달합니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
np = lab.cluster.service("svc-nodeport").ports[0].node_port
lab.patch_service("svc-nodeport", session_affinity="ClientIP", session_affinity_timeout=10800)
lab.clear_kernel_state()
answer = lab.run("mypc", f"myk8s-worker:{np}", n=20, seed=3)["endpoint_pod"].nunique()
kslab.check.ch02.behind_nat(answer, lab)

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - `sessionAffinity: ClientIP` (세션 어피니티) adds `-m recent --rcheck --seconds T --reap` rules
#   before the ladder and `-m recent --set` to each DNAT rule.
# - Stickiness is per source address and per node, and lasts `timeoutSeconds` (default 10800 s)
#   after the client's last new connection.
# - Behind a NAT every user has the same address: all of them stick to one pod.
#
# Next: chapter 03, a pod that reaches itself through its own Service (hairpin NAT).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - `sessionAffinity: ClientIP`(세션 어피니티)는 사다리 앞에 `-m recent --rcheck --seconds T --reap` 규칙을,
#   각 DNAT 규칙에 `-m recent --set`을 추가합니다.
# - 고정은 출발지 주소별, 노드별로 이루어지며, 클라이언트의 마지막 새 연결 이후 `timeoutSeconds`(기본값
#   10800초) 동안 유지됩니다.
# - NAT 뒤에서는 모든 사용자가 같은 주소를 가지므로 모두 한 파드에 고정됩니다.
#
# 다음 장: 03장, 자기 서비스를 거쳐 자기 자신에게 연결하는 파드(헤어핀 NAT).
