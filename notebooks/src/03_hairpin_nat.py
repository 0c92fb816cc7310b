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
# # 03 · Hairpin NAT (헤어핀 NAT)
#
# Study notes 1.7: a pod behind a Service calls that Service, and the ladder picks the pod
# itself. How can that connection work? You will be able to:
#
# 1. find the hairpin rule in every `KUBE-SEP` chain and say what it does;
# 2. trace a pod reaching itself: DNAT, then masquerade to the node side of its veth;
# 3. explain why the connection fails without the rule (the reply never meets conntrack);
# 4. relate this to the bridge's `hairpin_mode` / promiscuous mode.

# %% [markdown] lang="ko"
# # 03 · 헤어핀 NAT (Hairpin NAT)
#
# 스터디 노트 1.7: 서비스(Service) 뒤에 있는 파드(Pod)가 그 서비스를 호출했는데, 사다리가 그 파드 자신을
# 고릅니다. 이 연결은 어떻게 성립할까요? 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 모든 `KUBE-SEP` 체인(chain)에서 헤어핀 규칙(rule)을 찾고 그 역할을 말할 수 있습니다.
# 2. 자기 자신에게 도달하는 파드를 추적할 수 있습니다. DNAT 다음에, 자기 veth의 노드 쪽 주소로
#    마스커레이드(masquerade)됩니다.
# 3. 이 규칙이 없으면 연결이 실패하는 이유(응답이 연결 추적(conntrack)을 만나지 못함)를 설명할 수 있습니다.
# 4. 이것을 브리지의 `hairpin_mode` / 무차별 모드(promiscuous mode)와 연결 지을 수 있습니다.

# %%
import kslab
from kslab import experiments

lab = kslab.Lab(seed=3)
print(f"backend: {lab.backend}")
web1 = lab.cluster.pod("webpod1")
for line in lab.render(web1.node_name).save_text().splitlines():
    if line.startswith("-A KUBE-SEP-") and web1.pod_ip in line:
        print(line)

# %% [markdown] lang="en"
# The first rule of webpod1's SEP chain, `-s 10.10.1.x/32 -j KUBE-MARK-MASQ`, matches only when
# the **source is the endpoint itself**: the hairpin case. It marks the packet; `KUBE-POSTROUTING`
# then masquerades it.

# %% [markdown] lang="ko"
# webpod1의 SEP 체인 첫 규칙 `-s 10.10.1.x/32 -j KUBE-MARK-MASQ`는 **출발지가 엔드포인트(endpoint)
# 자신일 때만** 일치합니다. 이것이 헤어핀의 경우입니다. 이 규칙은 패킷에 표시만 하고, 실제 마스커레이드는
# `KUBE-POSTROUTING`이 합니다.

# %%
df = lab.run("webpod1", "svc-clusterip", n=600, seed=4)
self_hits = df[df["endpoint_pod"] == "webpod1"]
others = df[df["endpoint_pod"] != "webpod1"]
gateway = lab.pod_gateway(web1.node_name)
print(df.groupby("endpoint_pod")[["source_ip_seen", "masquerade"]].agg(lambda s: sorted(set(s))))
experiments.claim(
    (df["outcome"] == "ok").all() and set(self_hits["source_ip_seen"]) == {gateway} and set(others["source_ip_seen"]) == {web1.pod_ip},
    f"webpod1 reaching itself is masqueraded to {gateway} (its veth's node side); reaching the others keeps its own address",
    "hairpin behaved differently than taught",
)

# %% [markdown] lang="en"
# ## The trace of one hairpin connection

# %% [markdown] lang="ko"
# ## 헤어핀 연결 하나의 추적(trace)

# %%
lab.reseed(4)
for k in range(50):
    t = lab.trace("webpod1", "svc-clusterip")
    if t.endpoint_pod == "webpod1":
        break
print(t)

# %% [markdown] lang="en"
# ## Without the rule
#
# Delete the hairpin rules by hand on every node (`iptables -t nat -D`, what `lab.delete_rules`
# does, in the kernel too on the netns backend) and try again. **Predict** first: which
# connections fail, and why?

# %% [markdown] lang="ko"
# ## 규칙이 없으면
#
# 모든 노드(node)에서 헤어핀 규칙을 손으로 지우고(`iptables -t nat -D`: `lab.delete_rules`가 하는 일이며,
# netns 백엔드에서는 커널에서도 지웁니다) 다시 시도합니다. 먼저 **예측**해 보세요. 어떤 연결이, 왜 실패할까요?

# %%
HAIRPIN = r"^-A KUBE-SEP-\S+ -s \S+ .*-j KUBE-MARK-MASQ$"
print(f"deleted {lab.delete_rules(HAIRPIN)} hairpin rules")
broken = lab.run("webpod1", "svc-clusterip", n=600 if lab.backend == "sim" else 300, seed=4, timeout=0.2)
print(experiments.outcomes(broken))
print(broken[broken["outcome"] != "ok"]["reason"].iloc[0])
failed = float((broken["outcome"] != "ok").mean())
experiments.claim(
    abs(failed - 1 / 3) < 0.1 and "webpod1" not in set(broken[broken["outcome"] == "ok"]["endpoint_pod"]),
    f"without the rule the connections webpod1 makes to itself fail ({failed:.0%}, the ladder's 1/3); the rest work",
    "the failure pattern without the hairpin rule changed",
)

# %% [markdown] lang="en"
# kube-proxy does not notice: a partial sync rewrites only the chains of Services that changed.
# The rules come back with the next **full** sync (at start-up, hourly, or after a failed sync).

# %% [markdown] lang="ko"
# kube-proxy는 이를 알아차리지 못합니다. 부분 동기화(partial sync)는 바뀐 서비스의 체인만 다시 쓰기
# 때문입니다. 규칙은 다음 **전체** 동기화(full sync) 때 돌아옵니다(시작할 때, 한 시간마다, 또는 동기화가
# 실패한 다음).

# %%
lab.resync(full=False)
still = lab.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
lab.resync(full=True)
lab.flush_conntrack()  # the failed connections' conntrack entries would keep their old NAT (see below)
repaired = lab.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
experiments.claim((still["outcome"] != "ok").any() and (repaired["outcome"] == "ok").all(),
                  "a partial sync leaves the hand edit in place; the full sync puts the hairpin rules back",
                  "partial/full sync did not behave as taught")

# %% [markdown] lang="en"
# Why `flush_conntrack()`: each failed attempt left a conntrack entry on the node (state
# `SYN_SENT`, kept two minutes) with the NAT it got *then*. A new connection that happens to reuse
# one of those source ports is matched to the old entry and follows the old NAT, not the repaired
# rules. On the netns backend this is the real kernel's table (`conntrack -L` in the node would
# list them); `lab.flush_conntrack()` is `conntrack -F` on every node.
#
# Without masquerade webpod1 receives a packet *from its own address*. Its reply goes to itself
# inside the pod and never passes the node, so conntrack never turns the source back into the
# ClusterIP; the client socket, waiting for an answer from `10.200.1.x:9000`, never gets one.
#
# With a Linux bridge (kubenet, docker0) the same packet must also go back out of the port it came
# in by, which a bridge refuses unless the port has `hairpin_mode` on (or the bridge is
# promiscuous); kubelet's `--hairpin-mode` (`hairpin-veth`, `promiscuous-bridge`) exists for that.
# kindnet uses point-to-point veths with routes, so only the NAT part applies here.

# %% [markdown] lang="ko"
# 왜 `flush_conntrack()`인가: 실패한 시도마다 노드에 conntrack 항목이 남습니다(상태 `SYN_SENT`, 2분 동안
# 유지). 그 항목은 *그때* 받은 NAT를 기억합니다. 새 연결이 우연히 그 출발지 포트 중 하나를 다시 쓰면 옛
# 항목과 일치해, 복구된 규칙이 아니라 옛 NAT를 따릅니다. netns 백엔드에서는 이것이 실제 커널의 표입니다
# (노드에서 `conntrack -L`로 볼 수 있습니다). `lab.flush_conntrack()`은 모든 노드에서 `conntrack -F`를
# 실행하는 것과 같습니다.
#
# 마스커레이드가 없으면 webpod1은 *자기 주소에서 온* 패킷을 받습니다. 응답은 파드 안에서 자기 자신에게 가고
# 노드를 거치지 않으므로, conntrack이 출발지를 클러스터 IP(ClusterIP)로 되돌려 놓을 기회가 없습니다. `10.200.1.x:9000`의
# 응답을 기다리는 클라이언트 소켓은 끝내 응답을 받지 못합니다.
#
# 리눅스 브리지(kubenet, docker0)에서는 같은 패킷이 들어온 포트로 다시 나가야 하는데, 브리지는 그 포트에
# `hairpin_mode`가 켜져 있지 않으면(또는 브리지가 무차별 모드가 아니면) 이를 거부합니다. kubelet의
# `--hairpin-mode`(`hairpin-veth`, `promiscuous-bridge`)가 그래서 있습니다. kindnet은 경로를 설정한 점대점
# veth를 쓰므로 여기서는 NAT 부분만 해당합니다.

# %% [markdown] lang="en"
# ## Exercises
#
# **1.** Which source address does webpod1 see when it reaches itself through `svc-clusterip`?

# %% [markdown] lang="ko"
# ## 연습 문제
#
# **1.** webpod1이 `svc-clusterip`를 거쳐 자기 자신에게 도달할 때 보는 출발지 주소는 무엇입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.pod_gateway(web1.node_name)
kslab.check.ch03.hairpin_source(answer, lab)

# %% [markdown] lang="en"
# **2.** Without the hairpin rule, what share of webpod1's connections to `svc-clusterip` fail?

# %% [markdown] lang="ko"
# **2.** 헤어핀 규칙이 없으면 webpod1이 `svc-clusterip`로 여는 연결 중 몇 분의 몇이 실패합니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 1 / 3
kslab.check.ch03.hairpin_failures(answer, lab)

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - Every SEP chain starts with `-s <pod IP> -j KUBE-MARK-MASQ`: hairpin NAT (헤어핀 NAT).
# - It masquerades a pod's connection to itself, so the reply goes back through the node's
#   conntrack and is un-DNATed.
# - Without it, exactly the self-connections (1/n of them) fail.
#
# Next: chapter 04, what ClusterIP cannot do.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 모든 SEP 체인은 `-s <파드 IP> -j KUBE-MARK-MASQ`로 시작합니다: 헤어핀 NAT(hairpin NAT).
# - 이 규칙은 파드가 자기 자신에게 여는 연결을 마스커레이드하므로, 응답이 노드의 conntrack을 거쳐 DNAT가
#   되돌려집니다.
# - 이 규칙이 없으면 정확히 자기 자신으로 가는 연결(전체의 1/n)만 실패합니다.
#
# 다음 장: 04장, 클러스터 IP(ClusterIP)로는 할 수 없는 것.
