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
# 1. turn it on and read it back with the study's commands (`kubectl describe svc`, `iptables -t nat -S`,
#    `curl` from `net-pod`, `conntrack -L`, `cat /proc/net/xt_recent/...`);
# 2. explain each rule it adds: `-m recent --rcheck` in the SVC chain, `-m recent --set` in each SEP chain;
# 3. predict when a client moves: after `timeoutSeconds` of silence, and when more than 100 clients
#    share one endpoint's list on a node (xt_recent's `ip_list_tot`);
# 4. say which node remembers a client, and why clients behind one NAT all stick to one pod.

# %% [markdown] lang="ko"
# # 02 · sessionAffinity: ClientIP (세션 어피니티)
#
# 스터디 노트 1.6: `sessionAffinity: ClientIP`를 설정하면 클라이언트는 계속 같은 파드(Pod)에 연결됩니다.
# 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 스터디의 명령(`kubectl describe svc`, `iptables -t nat -S`, `net-pod`에서의 `curl`, `conntrack -L`,
#    `cat /proc/net/xt_recent/...`)으로 이 설정을 켜고 확인할 수 있습니다.
# 2. 이 설정이 추가하는 규칙(rule)을 하나씩 설명할 수 있습니다. SVC 체인(chain)의 `-m recent --rcheck`,
#    각 SEP 체인의 `-m recent --set`입니다.
# 3. 클라이언트가 다른 파드로 옮겨 가는 때를 예측할 수 있습니다. `timeoutSeconds`보다 오래 조용했을 때, 그리고
#    한 노드(node)에서 엔드포인트(endpoint) 하나의 목록을 100개가 넘는 클라이언트가 함께 쓸 때(xt_recent의
#    `ip_list_tot`)입니다.
# 4. 어느 노드가 클라이언트를 기억하는지, 그리고 NAT 하나 뒤의 클라이언트들이 왜 모두 한 파드에 고정되는지
#    설명할 수 있습니다.

# %% [markdown] lang="en"
# **What this chapter uses.** `lab = kslab.Lab()` is the study's lab (the same cluster in every
# chapter; `KSLAB_BACKEND` picks sim, netns or kind). `lab.patch_service(name, session_affinity=...,
# session_affinity_timeout=...)` changes a Service as `kubectl patch` would, and kube-proxy re-syncs.
# `lab.sh(where, command)` runs one of the study's commands in a node or a pod (real tools on netns,
# their output formats on sim). `lab.run(clients, service, n=..., seed=..., interval=...)` opens
# connections and returns one row per connection (`endpoint_pod`, `client_ip`, ...). `lab.client(name)`
# tells a client's address and node; `lab.cluster` holds the objects (`lab.cluster.pod("net-pod").pod_ip`,
# `lab.cluster.service("svc-clusterip").cluster_ip`, `lab.cluster.nodes`).
# `lab.advance(seconds)` lets time pass. `lab.clear_kernel_state()` empties conntrack, the
# xt_recent lists and the counters and sets the clock to 0 (the Services stay as patched);
# `lab.reset()` puts the whole lab back as made (use it at the end, or whenever you want the study's
# lab again). `kslab.views.compute_affinity` and `AffinityPanel` run their experiments on `lab.copy()`,
# a simulated twin, so they never change your lab. `lab.exact(needs)` is the lab an experiment that
# needs exact kernel state runs on: the lab itself on sim and netns; on a live kind cluster, whose
# conntrack, lists and counters are shared with the whole cluster (and which has no made-up client
# addresses), a fresh sim twin of it (`lab.copy()`: the nodes' real rules), after one printed line
# saying what the experiment needs. `experiments.claim(ok, said, otherwise)` ends each
# experiment: it prints `said` if `ok` holds and raises with `otherwise` if not.
# `experiments.stickiness(rows)` counts, per client, the connections and the different pods they reached
# (`endpoints`). `charts.stickiness_figure(rows, title=...)` draws which pod each connection reached;
# `charts.affinity_rounds_figure(result)` and `charts.affinity_summary(result)` draw and sum up a
# `compute_affinity` result (`.kept`, `.kept_share`, `.lists`). `kslab.check.ch02.*` checks your answers.
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# **이 장에서 쓰는 것.** `lab = kslab.Lab()`은 스터디의 실습 환경입니다(모든 장에서 같은 클러스터이며,
# `KSLAB_BACKEND`로 sim, netns 또는 kind를 고릅니다). `lab.patch_service(name, session_affinity=...,
# session_affinity_timeout=...)`는 `kubectl patch`처럼 서비스(Service)를 바꾸고, kube-proxy가 다시 동기화합니다.
# `lab.sh(where, command)`는 노드나 파드에서 스터디의 명령 하나를 실행합니다(netns에서는 실제 도구,
# sim에서는 같은 출력 형식). `lab.run(clients, service, n=..., seed=..., interval=...)`은 연결을 열고 연결마다
# 한 행(`endpoint_pod`, `client_ip`, ...)을 돌려줍니다. `lab.client(name)`은 클라이언트의 주소와 노드를 알려 주고,
# `lab.cluster`에는 오브젝트가 있습니다(`lab.cluster.pod("net-pod").pod_ip`,
# `lab.cluster.service("svc-clusterip").cluster_ip`, `lab.cluster.nodes`). `lab.advance(seconds)`는 시간을 흐르게 합니다.
# `lab.clear_kernel_state()`는 conntrack, xt_recent 목록, 카운터를 비우고 시계를 0으로 되돌립니다(서비스는
# 바꾼 그대로 둡니다). `lab.reset()`은 실습 환경 전체를 처음 만든 상태로 되돌립니다(이 장의 끝에서, 또는
# 스터디의 실습 환경이 다시 필요할 때 쓰세요). `kslab.views.compute_affinity`와 `AffinityPanel`은 실험을
# 시뮬레이션 복제본인 `lab.copy()`에서 돌리므로 여러분의 실습 환경을 바꾸지 않습니다. `lab.exact(needs)`는 정확한
# 커널 상태가 필요한 실험을 실행할 실습 환경입니다. sim과 netns에서는 실습 환경 자신이고, conntrack과 목록, 카운터를
# 클러스터 전체와 함께 쓰는(그리고 지어낸 클라이언트 주소가 없는) 실제 kind 클러스터에서는 그 클러스터의 새 sim
# 복제본(`lab.copy()`: 노드의 실제 규칙)이며, 이때 실험에 무엇이 필요한지 한 줄로 출력합니다.
# `experiments.claim(ok, said, otherwise)`는 각 실험을 마무리합니다. `ok`가 참이면 `said`를 출력하고, 아니면
# `otherwise`와 함께 예외를 일으킵니다. `experiments.stickiness(rows)`는 클라이언트마다 연결 수와 도달한 서로 다른
# 파드 수(`endpoints`)를 셉니다. `charts.stickiness_figure(rows, title=...)`는 연결마다 도달한 파드를 그리고,
# `charts.affinity_rounds_figure(result)`와 `charts.affinity_summary(result)`는 `compute_affinity`의 결과
# (`.kept`, `.kept_share`, `.lists`)를 그리고 요약합니다. `kslab.check.ch02.*`는 답을 확인합니다.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import collections

import kslab
from kslab import charts, experiments
from kslab.views import compute_affinity

lab = kslab.Lab(proxy_mode="iptables")
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))
client_node = lab.client("net-pod").node
print(f"net-pod runs on {client_node}")


def hostnames(times: int, on: kslab.Lab = lab) -> collections.Counter:
    """The study's loop: `curl -s svc-clusterip:9000 | grep Hostname` from net-pod, counted (`| sort | uniq -c`)."""
    return collections.Counter(str(on.sh("net-pod", "curl -s svc-clusterip:9000 | grep Hostname")).strip()
                               for _ in range(times))

# %% [markdown] lang="en"
# ## Turn it on, read it back
#
# The study types `kubectl patch svc svc-clusterip -p '{"spec":{"sessionAffinity":"ClientIP"}}'`.
# `lab.sh` only runs commands that read, so the patch is `lab.patch_service`; the API server fills
# in the default `sessionAffinityConfig.clientIP.timeoutSeconds: 10800` (3 hours), as a real one does.
# Then the study's `kubectl describe` and `kubectl get -o yaml` show the setting.

# %% [markdown] lang="ko"
# ## 켜고 확인하기
#
# 스터디에서는 `kubectl patch svc svc-clusterip -p '{"spec":{"sessionAffinity":"ClientIP"}}'`를 입력합니다.
# `lab.sh`는 읽기만 하는 명령을 실행하므로 패치는 `lab.patch_service`로 합니다. API 서버는 실제와 같이
# 기본값 `sessionAffinityConfig.clientIP.timeoutSeconds: 10800`(3시간)을 채웁니다. 그다음 스터디의
# `kubectl describe`와 `kubectl get -o yaml`이 설정을 보여 줍니다.

# %%
lab.patch_service("svc-clusterip", session_affinity="ClientIP")
described = lab.sh("myk8s-control-plane", "kubectl describe svc svc-clusterip | grep -i affinity")
spec = lab.sh("myk8s-control-plane", "kubectl get svc svc-clusterip -o yaml | grep -i -E 'affinity|timeoutSeconds'")
print(described + spec)
experiments.claim("ClientIP" in described and "timeoutSeconds: 10800" in spec,
                  "describe shows Session Affinity ClientIP; the API server defaulted timeoutSeconds to 10800",
                  f"the Service does not read back as patched: {described!r} {spec!r}")

# %% [markdown] lang="en"
# ## The rules it adds
#
# The study's `iptables -t nat -S | grep recent` on net-pod's node, then the whole SVC chain of
# `svc-clusterip` (its name is the target of the Service's rule in `KUBE-SERVICES`, chapter 01).

# %% [markdown] lang="ko"
# ## 이 설정이 추가하는 규칙
#
# net-pod의 노드에서 스터디의 `iptables -t nat -S | grep recent`를 실행하고, 이어서 `svc-clusterip`의 SVC
# 체인 전체를 봅니다(체인 이름은 `KUBE-SERVICES`에 있는 이 서비스 규칙의 대상입니다. 01장).

# %%
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)  # as above (rerunnable)
print(lab.sh(client_node, "iptables -t nat -S | grep recent"))
services = lab.sh(client_node, "iptables -t nat -S KUBE-SERVICES | grep svc-clusterip")
svc_chain = services.split("-j ")[-1].split()[0]
chain = lab.sh(client_node, f"iptables -t nat -S {svc_chain}")
print(chain)
rules = [line for line in chain.splitlines() if line.startswith("-A")]
kinds = ["masq" if "KUBE-MARK-MASQ" in r else "rcheck" if "--rcheck" in r else "ladder" for r in rules]
ready = lab.sh("myk8s-control-plane", "kubectl describe svc svc-clusterip | grep Endpoints")
n_ep = len(ready.split()[-1].split(","))  # Endpoints: 10.10.1.2:80,10.10.2.2:80,...
experiments.claim(kinds == ["masq"] + ["rcheck"] * n_ep + ["ladder"] * n_ep and "--seconds 10800 --reap" in chain,
                  f"{svc_chain}: the masquerade rule first, then {n_ep} --rcheck rules (one per endpoint), then the ladder",
                  f"the SVC chain has another shape: {kinds}")

# %% [markdown] lang="en"
# Read the chain top to bottom. **First the masquerade rule** (`! -s 10.10.0.0/16 ... -j
# KUBE-MARK-MASQ`, chapter 01): a packet from outside the pod network gets marked, as without affinity.
# **Then one `--rcheck` rule per endpoint**: "if this source address is in the list `KUBE-SEP-X` and
# one of its time stamps is at most 10800 s old, go to `KUBE-SEP-X`". `--reap`: when a check finds
# the source in the list, the kernel also drops the list's least recently updated address if its newest
# stamp is older than the timeout (xt_recent's `recent_entry_reap`); a check that finds
# nothing reaps nothing. **Then the usual probability ladder**, which only a client no list remembers
# reaches. Each SEP chain's DNAT rule carries `-m recent --set`, which records (or refreshes) the
# client's address in that endpoint's list:

# %% [markdown] lang="ko"
# 체인을 위에서 아래로 읽습니다. **먼저 마스커레이드 규칙**(`! -s 10.10.0.0/16 ... -j KUBE-MARK-MASQ`, 01장)이
# 있습니다. 파드 네트워크 밖에서 온 패킷은 세션 어피니티가 없을 때와 같이 표시(mark)됩니다. **그다음 엔드포인트마다
# `--rcheck` 규칙이 하나씩** 옵니다. "이 출발지 주소가 `KUBE-SEP-X` 목록에 있고 그 시각 기록(time stamp) 하나가
# 10800초 이내라면 `KUBE-SEP-X`로 간다"는 뜻입니다. `--reap`: 검사가 목록에서 출발지를 찾았을 때에만, 커널은
# 목록에서 가장 오래전에 갱신된 주소를, 그 최신 기록이 타임아웃보다 오래되었다면 함께 지웁니다(xt_recent의
# `recent_entry_reap`). 아무것도 찾지 못한 검사는 아무것도 지우지 않습니다.
# **그다음이 평소의 확률 사다리**이며, 어느 목록에도 없는 클라이언트만 여기에 도달합니다. 각 SEP 체인의 DNAT
# 규칙에는 `-m recent --set`이 붙어 클라이언트 주소를 그 엔드포인트의 목록에 기록(또는 갱신)합니다.

# %%
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)
rcheck = str(lab.sh(client_node, "iptables -t nat -S | grep rcheck")).splitlines()
sep_chain = rcheck[0].split("-j ")[-1].split()[0]  # where the first --rcheck rule jumps
sep = lab.sh(client_node, f"iptables -t nat -S {sep_chain}")
print(sep)
experiments.claim(f"--set --name {sep_chain}" in sep and "-j DNAT" in sep,
                  f"{sep_chain}: --set records the client in the list named after the chain, in the DNAT rule",
                  f"no --set in {sep_chain}: {sep!r}")

# %% [markdown] lang="en"
# ## Predict, then run: one client, twenty curls
#
# The study runs `curl -s svc-clusterip:9000 | grep Hostname` from `net-pod` in a shell loop and
# counts the answers (`| sort | uniq -c`). Predict: with affinity, how many different hostnames? Without?
# After the run, the study's `conntrack -L` on net-pod's node shows where each connection was
# DNATed (the reply's source), and the kernel's own list, `/proc/net/xt_recent/KUBE-SEP-...`, shows
# net-pod's address with one time stamp per connection. The study's `iptables -v --numeric --table nat
# --list KUBE-SVC-...` counts what each rule matched (the first packet of each connection): only the
# first connection went down the ladder, the 19 others matched an `--rcheck` rule. The stamps are in **jiffies**, the kernel's
# tick counter (250 ticks a second on Debian's kernels); `oldest_pkt` is, despite its name, where
# the next stamp goes in a ring of 32 (the 33rd stamp overwrites the first).

# %% [markdown] lang="ko"
# ## 예측한 다음 실행하기: 클라이언트 하나, curl 스무 번
#
# 스터디에서는 `net-pod`에서 셸 반복문으로 `curl -s svc-clusterip:9000 | grep Hostname`을 실행하고 답을 셉니다
# (`| sort | uniq -c`). 예측해 보세요. 세션 어피니티가 있으면 서로 다른 호스트 이름이 몇 개 나올까요? 없으면요?
# 실행한 뒤 net-pod의 노드에서 스터디의 `conntrack -L`을 보면 각 연결이 어디로 DNAT되었는지(응답의 출발지)
# 알 수 있고, 커널의 목록 `/proc/net/xt_recent/KUBE-SEP-...`에는 net-pod의 주소가 연결마다 시각 기록 하나씩과
# 함께 있습니다. 스터디의 `iptables -v --numeric --table nat --list KUBE-SVC-...`는 각 규칙이 일치시킨 것(연결마다
# 첫 패킷)을 셉니다. 첫 연결만 사다리로 내려갔고 나머지 19개는 `--rcheck` 규칙에 일치했습니다. 시각은 커널의 틱(tick) 카운터인 **jiffies** 단위입니다(데비안 커널은 초당 250틱).
# `oldest_pkt`는 이름과 달리 크기 32인 링에서 다음 기록이 들어갈 자리입니다(33번째 기록이 첫 번째를 덮어씁니다).

# %%
lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
lab.clear_kernel_state()
free = hostnames(20)
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)
lab.clear_kernel_state()
sticky = hostnames(20)
print("None:    ", dict(free))
print("ClientIP:", dict(sticky))
experiments.claim(len(sticky) == 1 and len(free) > 1,
                  f"with ClientIP all 20 answers came from one pod; without, from {len(free)}",
                  f"stickiness did not change as taught: None {dict(free)}, ClientIP {dict(sticky)}")

# %%
# kind: on a sim twin of the live lab (its nodes' real rules), which starts with nothing in conntrack or the lists
on = lab.exact("fresh conntrack entries, xt_recent lists and rule counters from zero, which a live node shares with "
               "the whole cluster")
on.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=10800)
on.clear_kernel_state()
answers = hostnames(20, on)  # the same 20 curls, then what they left in the kernel
cluster_ip = on.cluster.service("svc-clusterip").cluster_ip
pod = next(iter(answers)).split()[-1]
pod_ip = on.cluster.pod(pod).pod_ip
ct = on.sh(client_node, f"conntrack -L -p tcp -d {cluster_ip} --dport 9000")
print(on.sh(client_node, f"conntrack -L -p tcp -d {cluster_ip} --dport 9000 | head -n 3"), "...", ct.stderr)
lists = str(on.sh(client_node, "ls /proc/net/xt_recent")).split()
listed = {name: str(on.sh(client_node, f"cat /proc/net/xt_recent/{name}")) for name in lists}
for name, text in listed.items():
    print(f"{name}: {text or '(empty)'}")
me = on.cluster.pod("net-pod").pod_ip
mine = [line for text in listed.values() for line in text.splitlines() if line.startswith(f"src={me} ")]
replies = {line.split("src=")[2].split()[0] for line in ct.splitlines()}
svc_chain = on.sh(client_node, "iptables -t nat -S KUBE-SERVICES | grep svc-clusterip").split("-j ")[-1].split()[0]
counters = on.sh(client_node, f"iptables -v --numeric --table nat --list {svc_chain}")
print(counters)
counted = [(int(line.split()[0]), line) for line in counters.splitlines()[2:]]
by_rcheck = sum(n for n, line in counted if "recent: CHECK" in line)
by_ladder = sum(n for n, line in counted if "recent: CHECK" not in line and "KUBE-MARK-MASQ" not in line)
experiments.claim(len(answers) == 1 and replies == {pod_ip} and len(ct.splitlines()) == 20 and len(mine) == 1
                  and " oldest_pkt: 20 " in mine[0] and (by_ladder, by_rcheck) == (1, 19),
                  f"20 conntrack entries all DNATed to {pod} ({pod_ip}); net-pod is in one list, with 20 stamps; "
                  f"the counters: 1 connection down the ladder, 19 by --rcheck",
                  f"conntrack, lists or counters disagree: replies from {replies}, net-pod's lines {mine}, "
                  f"ladder {by_ladder}, rcheck {by_rcheck}")

# %% [markdown] lang="en"
# The same with eight clients and ten connections each, as a chart (`lab.run` with addresses of
# myk8s-worker's pod network as clients):

# %% [markdown] lang="ko"
# 같은 실험을 클라이언트 8개가 각각 연결 10개씩으로 하고 차트로 봅니다(`lab.run`의 클라이언트로 myk8s-worker의
# 파드 네트워크 주소를 씁니다).

# %%
clients = [f"10.10.1.{100 + i}" for i in range(8)]
on = lab.exact("eight clients at made-up addresses of myk8s-worker's pod network, which a live cluster does not have")
on.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
on.clear_kernel_state()
free_runs = on.run(clients, "svc-clusterip", n=80, seed=1)
on.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
on.clear_kernel_state()
sticky_runs = on.run(clients, "svc-clusterip", n=80, seed=1, interval=0.01)
charts.stickiness_figure(free_runs, title=f"sessionAffinity None: 8 clients x 10 connections ({on.backend})").show()
charts.stickiness_figure(sticky_runs, title=f"sessionAffinity ClientIP: 8 clients x 10 connections ({on.backend})").show()
s_free, s_sticky = experiments.stickiness(free_runs), experiments.stickiness(sticky_runs)
experiments.claim((s_sticky["endpoints"] == 1).all() and s_free["endpoints"].mean() > 2,
                  f"with ClientIP every client stayed on one pod; without, a client reached {s_free['endpoints'].mean():.1f} pods on average",
                  f"stickiness did not change as taught: {s_sticky['endpoints'].to_dict()}")

# %% [markdown] lang="en"
# ## Expiry: `timeoutSeconds`
#
# A client silent for longer than `timeoutSeconds` is a stranger again: every stamp it has is too
# old for `--rcheck --seconds`, so it goes down the ladder. The sim's clock moves only when told
# (`lab.advance(seconds)`), so the experiment is exact and instant. The kernel's clock (netns
# backend, and a live kind cluster, where this experiment runs live) runs in real time: there
# `lab.advance` really waits, so the window is shortened to 3 s.

# %% [markdown] lang="ko"
# ## 만료: `timeoutSeconds`
#
# `timeoutSeconds`보다 오래 조용했던 클라이언트는 다시 처음 보는 클라이언트가 됩니다. 가진 시각 기록이 모두
# `--rcheck --seconds`에 비해 너무 오래되었으므로 사다리로 내려갑니다. sim의 시계는 지시할 때만
# 움직이므로(`lab.advance(seconds)`) 실험은 정확하고 즉시 끝납니다. 커널의 시계(netns 백엔드)는 실제 시간으로
# 흐르므로(netns 백엔드, 그리고 이 실험을 실제로 실행하는 kind 클러스터) 그곳에서는 `lab.advance`가 정말로
# 기다립니다. 그래서 netns와 kind에서는 창을 3초로 줄입니다.

# %%
window = 30 if lab.backend == "sim" else 3  # netns and kind: the kernel's clock, lab.advance really waits
tries = 30 if lab.backend == "sim" else 12
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
experiments.claim(within == [first] and moves >= tries / 4,
                  "inside the window the client always returns; after it, the ladder picks again (about 2/3 of the time another pod)",
                  f"expiry behaved differently: within={within}, moves={moves}")

# %% [markdown] lang="en"
# ## More than 100 clients: the list is full
#
# Each list holds at most **100 addresses**: xt_recent's module parameter `ip_list_tot`, the same
# for every list of every node (read it with the study's `cat`). A new address in a full list
# evicts the **least recently updated** one, however fresh its stamp; that client is a stranger at
# its next connection. The lists are per endpoint and per node: with two ready endpoints, the
# clients of one node fit in 2 x 100 places.

# %% [markdown] lang="ko"
# ## 클라이언트가 100개보다 많을 때: 목록이 가득 찹니다
#
# 목록 하나는 주소를 최대 **100개** 담습니다. xt_recent 모듈 파라미터 `ip_list_tot`이며, 모든 노드의 모든
# 목록에 같습니다(스터디의 `cat`으로 읽어 보세요). 가득 찬 목록에 새 주소가 들어오면 시각 기록이 아무리
# 최근이어도 **가장 오래전에 갱신된** 주소가 밀려납니다. 그 클라이언트는 다음 연결에서 처음 보는 클라이언트가
# 됩니다. 목록은 엔드포인트별, 노드별입니다. 준비된(ready) 엔드포인트가 둘이면 한 노드의 클라이언트는 2 x 100
# 자리에 들어갑니다.

# %%
limit = lab.sh(client_node, "cat /sys/module/xt_recent/parameters/ip_list_tot")
print(f"ip_list_tot = {limit}")
experiments.claim(int(limit) == 100, "xt_recent keeps at most 100 addresses per list",
                  f"this kernel's ip_list_tot is {limit}")

# %% [markdown] lang="en"
# **Predict before you run.** 240 clients on myk8s-worker use `svc-clusterip` with ClientIP (timeout
# 10800 s) and only **two** ready endpoints. They connect in four rounds, 10 s apart, in the same
# order each round. How many keep their first pod in all four rounds?
#
# - (a) all of them keep their pod
# - (b) most keep it: only the clients beyond 2 x 100 lose it
# - (c) only a few keep it: most clients lose their entry before they come back
#
# Answer with the letter.

# %% [markdown] lang="ko"
# **실행하기 전에 예측하기.** myk8s-worker의 클라이언트 240개가 ClientIP(타임아웃 10800초)인 `svc-clusterip`를
# 사용하는데, 준비된 엔드포인트는 **둘**뿐입니다. 클라이언트들은 10초 간격으로 네 번, 매번 같은 순서로 연결합니다.
# 네 번 모두 처음 파드에 연결되는 클라이언트는 몇 개일까요?
#
# - (a) 모두 자기 파드를 유지합니다
# - (b) 대부분 유지합니다: 2 x 100을 넘는 클라이언트만 잃습니다
# - (c) 몇 개만 유지합니다: 대부분의 클라이언트는 돌아오기 전에 목록에서 밀려납니다
#
# 글자로 답하세요.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch02.list_size")` shows its hints one at a time; once you have checked
# an answer of your own and seen every hint, `kslab.check.solution("ch02.list_size")` shows the solution. An
# exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch02.list_size")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch02.list_size")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch02.list_size"
# 1. Affinity lives in xt_recent lists on the client's node, one list per endpoint, and each list holds at most 100
#    addresses (the module's ip_list_tot); a new address in a full list pushes out the least recently updated one.
# 2. About 120 clients land on each endpoint. When a client comes back, is it still among the 100 most recently seen
#    addresses of its list, if the others came back in the same order before it? Follow the first rounds: who gets
#    evicted, and who then picks a pod again?

# %% [markdown] lang="ko" hint="ch02.list_size"
# 1. 세션 어피니티는 클라이언트 노드의 xt_recent 목록에 있습니다. 엔드포인트마다 목록이 하나씩이고, 목록마다 주소를 최대 100개(모듈의 ip_list_tot)까지만 담습니다. 가득 찬 목록에 새
#    주소가 들어오면 가장 오래전에 갱신된 주소가 밀려납니다.
# 2. 엔드포인트마다 약 120개 클라이언트가 몰립니다. 클라이언트가 같은 순서로 돌아올 때, 자기 차례에 아직 그 목록의 최근 100개 주소 안에 남아 있습니까? 처음 몇 라운드를 따라가 보세요. 누가
#    밀려나고, 밀려난 클라이언트는 다시 파드를 고르게 됩니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "c"
kslab.check.ch02.list_size(answer, lab)

# %% [markdown] lang="en"
# Now run it. `compute_affinity` runs on a simulated copy of the lab (`lab.copy()`), whatever the
# backend: on the kernel, 240 clients would be 240 network namespaces and the pauses real waits.
# The simulator's lists follow the kernel's code (net/netfilter/xt_recent.c), and kslab's tests
# compare them with the kernel's on netns. Each column of the chart is a client, each row a round,
# the colour the pod reached.

# %% [markdown] lang="ko"
# 이제 실행합니다. `compute_affinity`는 백엔드와 상관없이 실습 환경의 시뮬레이션 복제본(`lab.copy()`)에서
# 실행됩니다. 커널에서는 클라이언트 240개가 네트워크 네임스페이스 240개가 되고 쉬는 시간도 실제로 기다려야
# 하기 때문입니다. 시뮬레이터의 목록은 커널 코드(net/netfilter/xt_recent.c)를 따르며, kslab의 테스트가 netns에서
# 커널의 목록과 비교합니다. 차트의 열은 클라이언트, 행은 회차, 색은 도달한 파드입니다.

# %%
crowd = compute_affinity(lab, True, 240, endpoints=2, timeout=10800, pause=10)
fits = compute_affinity(lab, True, 150, endpoints=2, timeout=10800, pause=10)
charts.affinity_rounds_figure(crowd).show()
print(charts.affinity_summary(crowd))
print(charts.affinity_summary(fits))
experiments.claim(sorted(crowd.lists.values()) == [100, 100] and crowd.kept_share < 0.5 and fits.kept == 150,
                  f"150 clients fit in two lists and all kept their pod; with 240 both lists are full (100 each) and only "
                  f"{crowd.kept} kept theirs",
                  f"the list size did not bite as taught: 240 -> {crowd.kept} kept, lists {crowd.lists}; 150 -> {fits.kept}")

# %% [markdown] lang="en"
# Why so few, and not "all but 40"? The clients come back in the order they came, so the least
# recently updated address, the one a newcomer evicts, is always the client due next: each
# eviction makes the next client a stranger, which evicts the one after it. The few that keep their
# pod are those the ladder happened to send back to the same pod (about 1 in 8 over three rounds
# with two pods). Real clients arrive less regularly, but once a node's clients outnumber 100 per
# endpoint, affinity quietly stops being a guarantee.

# %% [markdown] lang="ko"
# 왜 "40개만 빼고 모두"가 아니라 이렇게 적을까요? 클라이언트가 왔던 순서대로 돌아오므로, 새로 온 주소가 밀어내는
# 가장 오래전에 갱신된 주소는 언제나 다음 차례의 클라이언트입니다. 밀려날 때마다 다음 클라이언트가 처음 보는
# 클라이언트가 되고, 그 클라이언트가 또 그다음을 밀어냅니다. 파드를 유지한 몇 개는 사다리가 우연히 같은 파드로
# 다시 보낸 클라이언트입니다(파드 둘, 세 번의 회차에서 약 8분의 1). 실제 클라이언트는 이보다 불규칙하게 오지만,
# 한 노드의 클라이언트가 엔드포인트당 100개를 넘으면 세션 어피니티는 조용히 보장이 아니게 됩니다.

# %% [markdown] lang="en"
# ## Explore
#
# The panel reruns the rounds on a fresh copy at each change. Try: `timeoutSeconds` below the pause
# (every round picks again); 2 ready endpoints and 200, then 220 clients (the cliff); 3 endpoints
# and 250 clients (3 x 100 places: it still fits); 1 endpoint (losing the entry costs nothing).

# %% [markdown] lang="ko"
# ## 탐색
#
# 패널은 값을 바꿀 때마다 새 복제본에서 회차를 다시 실행합니다. 해 볼 것: `timeoutSeconds`를 쉬는 시간보다 짧게
# (회차마다 다시 고릅니다), 준비된 엔드포인트 2개에서 클라이언트 200개, 다음에 220개(절벽), 엔드포인트 3개에서
# 클라이언트 250개(3 x 100 자리: 아직 들어갑니다), 엔드포인트 1개(목록에서 밀려나도 잃는 것이 없습니다).

# %%
import gc

from kslab.views import AffinityPanel

panel = AffinityPanel(lab, clients=8, timeout=30, pause=10)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** `timeoutSeconds: 30`. A client connects at t = 0 s and again at t = 45 s. May the second
# connection land on another pod? (`True`/`False`)

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** `timeoutSeconds: 30`입니다. 클라이언트가 t = 0초에 연결하고 t = 45초에 다시 연결합니다. 두 번째
# 연결이 다른 파드에 도착할 수 있습니까? (`True`/`False`)

# %% [markdown] lang="en" hint="ch02.may_move"
# 1. The SVC chain's affinity rule is `-m recent --rcheck --seconds 30 --reap`: it matches only if the client's
#    address was seen in the last 30 seconds.
# 2. 45 s after the first connection, is the client's entry still younger than 30 s? If the rcheck rule does not
#    match, the connection goes through the probability ladder again.

# %% [markdown] lang="ko" hint="ch02.may_move"
# 1. SVC 체인의 어피니티 규칙은 `-m recent --rcheck --seconds 30 --reap`입니다. 클라이언트 주소가 최근 30초 안에 기록됐을 때만 일치합니다.
# 2. 첫 연결 후 45초가 지났을 때 그 클라이언트의 항목은 아직 30초가 안 됐습니까? rcheck 규칙이 일치하지 않으면 연결은 확률 사다리를 다시 지납니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = True
kslab.check.ch02.may_move(answer, lab)

# %% [markdown] lang="en"
# **2. A new case.** Set `svc-clusterip`'s `timeoutSeconds` to 45 and let a client at `10.10.2.200`
# (an address of myk8s-worker2's pod network) connect once. On which node is its address recorded?
# Find it with the study's commands: `ls /proc/net/xt_recent` and `cat /proc/net/xt_recent/LIST` on
# each node (`lab.cluster.nodes` lists them).

# %% [markdown] lang="ko"
# **2. 새로운 경우.** `svc-clusterip`의 `timeoutSeconds`를 45로 바꾸고 `10.10.2.200`(myk8s-worker2의 파드 네트워크
# 주소)의 클라이언트가 한 번 연결하게 합니다. 이 주소는 어느 노드에 기록됩니까? 스터디의 명령으로 찾아보세요.
# 노드마다 `ls /proc/net/xt_recent`와 `cat /proc/net/xt_recent/LIST`를 실행합니다(`lab.cluster.nodes`에 노드가
# 있습니다).

# %% [markdown] lang="en" hint="ch02.recording_node"
# 1. The `--set` rule that records a client runs in the KUBE-SEP chain, on the node whose PREROUTING sees the
#    client's first packet.
# 2. 10.10.2.200 is in myk8s-worker2's pod CIDR (10.10.2.0/24): a pod with that address would run on that node
#    (`lab.client("10.10.2.200")` tells its node). Then look at `/proc/net/xt_recent/` there.

# %% [markdown] lang="ko" hint="ch02.recording_node"
# 1. 클라이언트를 기록하는 `--set` 규칙은 KUBE-SEP 체인에 있고, 클라이언트의 첫 패킷을 PREROUTING에서 보는 노드에서 실행됩니다.
# 2. 10.10.2.200은 myk8s-worker2의 파드 CIDR(10.10.2.0/24)에 속합니다. 그 주소의 파드는 그 노드에서 실행됩니다(`lab.client("10.10.2.200")`가 노드를
#    알려 줍니다). 그 노드의 `/proc/net/xt_recent/`를 보세요.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
# the lists live where the --rcheck/--set rules run: in the client's own node, the one that owns 10.10.2.0/24
answer = "myk8s-worker2"
on = lab.exact("a client at a made-up address (10.10.2.200), which a live cluster does not have")
on.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=45)
on.clear_kernel_state()
on.run("10.10.2.200", "svc-clusterip", n=1, seed=5)
print({node.name: [name for name in str(on.sh(node.name, "ls /proc/net/xt_recent")).split()
                   if "src=10.10.2.200 " in on.sh(node.name, f"cat /proc/net/xt_recent/{name}")]
       for node in on.cluster.nodes})  # a confirmation: the node(s) whose lists hold the client
kslab.check.ch02.recording_node(answer, lab)

# %% [markdown] lang="en"
# **3.** A **NodePort** Service (chapter 06 teaches it) opens one port on every node; `mypc`, outside
# the cluster, reaches `svc-nodeport`'s pods through `myk8s-worker:svc-nodeport`. Twenty users sit
# behind one NAT (all their packets come from `mypc`'s address). With ClientIP affinity on
# `svc-nodeport`, how many different pods do they reach?

# %% [markdown] lang="ko"
# **3.** **NodePort** 서비스(06장에서 배웁니다)는 모든 노드에 포트 하나를 엽니다. 클러스터 밖의 `mypc`는
# `myk8s-worker:svc-nodeport`를 통해 `svc-nodeport`의 파드에 도달합니다. 사용자 20명이 NAT 하나 뒤에 있습니다
# (이들의 패킷은 모두 `mypc`의 주소에서 옵니다). `svc-nodeport`에 ClientIP 세션 어피니티를 설정하면 이들은
# 서로 다른 파드 몇 개에 도달합니까?

# %% [markdown] lang="en" hint="ch02.behind_nat"
# 1. xt_recent remembers source addresses, not users. Behind one NAT, what source address does the node see for each
#    of the twenty users?
# 2. The first connection from that one address picks a pod and records the address in that pod's list; every later
#    connection from the same address matches that list's `--rcheck` rule.

# %% [markdown] lang="ko" hint="ch02.behind_nat"
# 1. xt_recent는 사용자가 아니라 출발지 주소를 기억합니다. 하나의 NAT 뒤에 있는 스무 명의 사용자는 노드에게 어떤 출발지 주소로 보입니까?
# 2. 그 주소의 첫 연결이 파드를 고르고 그 파드의 목록에 주소를 기록합니다. 같은 주소의 이후 연결은 모두 그 목록의 `--rcheck` 규칙에 일치합니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
# one source address = one client to xt_recent: the first connection picks a pod, the 19 others follow it
answer = 1
lab.patch_service("svc-nodeport", session_affinity="ClientIP", session_affinity_timeout=10800)
lab.clear_kernel_state()
print(lab.run("mypc", "myk8s-worker:svc-nodeport", n=20, seed=3)["endpoint_pod"].value_counts())  # a confirmation
kslab.check.ch02.behind_nat(answer, lab)

# %% [markdown] lang="en"
# ## Back to the study's lab
#
# This chapter patched `svc-clusterip` (and, in the solutions, `svc-nodeport`). `lab.reset()` puts
# the lab back as made: both Services without affinity, empty lists, the clock at 0.

# %% [markdown] lang="ko"
# ## 스터디의 실습 환경으로 돌아가기
#
# 이 장에서는 `svc-clusterip`(풀이에서는 `svc-nodeport`도)를 바꾸었습니다. `lab.reset()`은 실습 환경을 처음 만든
# 상태로 되돌립니다. 두 서비스 모두 세션 어피니티가 없고, 목록은 비어 있으며, 시계는 0입니다.

# %%
lab.reset()
lab.advance(2)  # kube-proxy's next sync: at once on sim and netns, within its minSyncPeriod (1 s) on a live cluster
back = lab.sh("myk8s-control-plane", "kubectl describe svc svc-clusterip | grep -i affinity")
print(back)
experiments.claim("None" in back and lab.sh(client_node, "ls /proc/net/xt_recent") == "",
                  "after lab.reset(): Session Affinity None and no xt_recent list on the node",
                  f"reset left affinity behind: {back!r}")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - `sessionAffinity: ClientIP` (세션 어피니티) adds, after the SVC chain's masquerade rule, one
#   `-m recent --rcheck --seconds T --reap` rule per endpoint before the ladder, and `-m recent --set`
#   to each SEP chain's DNAT rule. The lists are in `/proc/net/xt_recent/KUBE-SEP-...` of the
#   client's node.
# - Stickiness is per source address and per node, and lasts `timeoutSeconds` (default 10800 s)
#   after the client's last new connection; a list keeps at most 100 addresses (`ip_list_tot`), and
#   a new one evicts the least recently updated.
# - Behind a NAT every user has the same address: all of them stick to one pod.
#
# Next: chapter 03, a pod that reaches itself through its own Service (hairpin NAT).

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - `sessionAffinity: ClientIP`(세션 어피니티)는 SVC 체인의 마스커레이드 규칙 다음, 사다리 앞에 엔드포인트마다
#   `-m recent --rcheck --seconds T --reap` 규칙을 하나씩, 각 SEP 체인의 DNAT 규칙에 `-m recent --set`을
#   추가합니다. 목록은 클라이언트 노드의 `/proc/net/xt_recent/KUBE-SEP-...`에 있습니다.
# - 고정은 출발지 주소별, 노드별로 이루어지며, 클라이언트의 마지막 새 연결 이후 `timeoutSeconds`(기본값
#   10800초) 동안 유지됩니다. 목록 하나는 주소를 최대 100개(`ip_list_tot`) 담고, 새 주소는 가장 오래전에
#   갱신된 주소를 밀어냅니다.
# - NAT 뒤에서는 모든 사용자가 같은 주소를 가지므로 모두 한 파드에 고정됩니다.
#
# 다음 장: 03장, 자기 서비스를 거쳐 자기 자신에게 연결하는 파드(헤어핀 NAT).
