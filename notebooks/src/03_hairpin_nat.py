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
# Study notes 1.7: "when a pod behind a Service calls that Service and the destination chosen is
# the pod itself, what must happen for the connection to work?" You will be able to:
#
# 1. find the hairpin rule in every `KUBE-SEP` chain with the study's `iptables` commands and say
#    what it does;
# 2. show that pod-to-Service traffic keeps its source address, **except** a hairpin, which is
#    masqueraded to the node side of the pod's veth (`curl`, `conntrack -L`, the `-v` counters);
# 3. explain why the connection fails without the rule: the pod drops a packet whose source is its
#    own address (a "martian"), so the client times out;
# 4. say which pods and nodes a missing rule affects, for any Service;
# 5. relate this to the bridge's `hairpin_mode` / promiscuous mode.

# %% [markdown] lang="ko"
# # 03 · 헤어핀 NAT (Hairpin NAT)
#
# 스터디 노트 1.7: "서비스(Service)에 묶인 엔드포인트(endpoint) 파드(Pod)에서 그 서비스로 접속할 때, 목적지
# 파드가 자기 자신으로 결정되면 어떻게 해야 통신이 될까요?" 이 장을 마치면 다음을 할 수 있습니다.
#
# 1. 스터디의 `iptables` 명령으로 모든 `KUBE-SEP` 체인(chain)에서 헤어핀 규칙(rule)을 찾고 그 역할을 말할 수
#    있습니다.
# 2. 파드에서 서비스로 가는 트래픽은 출발지 주소를 유지하지만, 헤어핀만은 **예외**로 파드 veth의 노드(node) 쪽
#    주소로 마스커레이드(masquerade)된다는 것을 보일 수 있습니다(`curl`, `conntrack -L`, `-v` 카운터).
# 3. 이 규칙이 없으면 연결이 실패하는 이유를 설명할 수 있습니다. 파드는 출발지가 자기 주소인 패킷을
#    마션(martian) 패킷으로 버리므로 클라이언트는 시간 초과(timeout)됩니다.
# 4. 규칙이 빠졌을 때 어떤 파드와 노드가 영향을 받는지, 어느 서비스에 대해서든 말할 수 있습니다.
# 5. 이것을 브리지의 `hairpin_mode` / 무차별 모드(promiscuous mode)와 연결 지을 수 있습니다.

# %% [markdown] lang="en"
# **What this chapter uses.** `lab = kslab.Lab(seed=3)` is the study's lab (the same pods, IPs and
# ClusterIPs in every chapter; `seed` only moves the traffic's random choices). Then:
#
# - `lab.sh(where, command)`: one of the study's commands (`curl`, `iptables`, `conntrack`) run
#   in a pod or node; it returns what the command printed (`.stderr`: what it printed on stderr);
# - `lab.run(src, to, n, seed=...)`: `n` connections, one row each (`endpoint_pod`,
#   `source_ip_seen`: the client address the endpoint saw, `outcome`, `reason`, ...);
#   `lab.trace(src, to)`: one connection explained rule by rule;
# - `lab.cluster.pod(name)` (`.pod_ip`, `.node_name`, `.labels`), `lab.cluster.service(name)`
#   (`.cluster_ip`, `.selector`), `lab.cluster.pods`, `lab.cluster.services`;
#   `lab.pod_gateway(node)`: the node's side of its pods' veths;
# - `lab.delete_rules(regex, nodes=...)`: a hand `iptables -D`; `lab.resync(full=...)`:
#   kube-proxy's sync now; `lab.flush_conntrack()`: `conntrack -F` on every node;
# - `lab.reset()`: back to the lab as it was made (kube-proxy's rules, empty conntrack, counters
#   at 0). The experiment cells below start with it, so each reruns alone in any order; run it
#   yourself after your own experiments;
# - `views.compute_hairpin(lab, to, nodes=...)` and `charts.hairpin_figure(df)`: the chart of
#   this chapter (on copies of the lab, so it changes nothing);
# - `experiments.outcomes(rows)`: how many connections ended in each outcome (`ok`, `timeout`, ...);
#   `experiments.claim(ok, said, otherwise)`: ends each experiment, printing `said` if `ok` holds and
#   raising with `otherwise` if not;
# - `kslab.check.ch03.<question>(answer, lab)`: checks an exercise's answer on a copy of the lab;
# - `lab.exact(needs)`: the lab an experiment that needs exact state runs on: the lab itself on sim
#   and netns; on a live kind cluster (`KSLAB_BACKEND=kind`) a sim twin of it (`lab.copy()`: the
#   nodes' real rules), after one printed line saying what the experiment needs. Here: webpod1 as a
#   client (its `traefik/whoami` image has no `curl`), conntrack and counters from zero, and hand
#   edits of rules a live node's kube-proxy owns. The rules, the trace and the chart read the live
#   cluster.
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# **이 장에서 쓰는 것.** `lab = kslab.Lab(seed=3)`은 스터디의 실습 환경입니다(모든 장에서 같은 파드, IP,
# 클러스터 IP(ClusterIP)이며, `seed`는 트래픽의 무작위 선택만 바꿉니다). 그리고 다음을 씁니다.
#
# - `lab.sh(where, command)`: 스터디의 명령(`curl`, `iptables`, `conntrack`)을 파드나 노드에서 실행하고
#   출력을 돌려줍니다(`.stderr`: 표준 오류로 출력한 내용).
# - `lab.run(src, to, n, seed=...)`: 연결 `n`개를 열고 연결마다 한 행을 돌려줍니다(`endpoint_pod`,
#   엔드포인트가 본 클라이언트 주소인 `source_ip_seen`, `outcome`, `reason` 등). `lab.trace(src, to)`:
#   연결 하나를 규칙 단위로 설명합니다.
# - `lab.cluster.pod(name)`(`.pod_ip`, `.node_name`, `.labels`), `lab.cluster.service(name)`
#   (`.cluster_ip`, `.selector`), `lab.cluster.pods`, `lab.cluster.services`. `lab.pod_gateway(node)`:
#   그 노드에 있는 파드 veth의 노드 쪽 주소입니다.
# - `lab.delete_rules(regex, nodes=...)`: 손으로 하는 `iptables -D`입니다. `lab.resync(full=...)`: 지금
#   kube-proxy의 동기화를 실행합니다. `lab.flush_conntrack()`: 모든 노드에서 `conntrack -F`입니다.
# - `lab.reset()`: 처음 만든 상태로 되돌립니다(kube-proxy의 규칙, 비어 있는 conntrack, 0인 카운터). 아래
#   실험 셀은 이것으로 시작하므로 어떤 순서로든 하나씩 다시 실행할 수 있습니다. 직접 실험한 다음에도
#   실행하세요.
# - `views.compute_hairpin(lab, to, nodes=...)`와 `charts.hairpin_figure(df)`: 이 장의 차트입니다(실습
#   환경의 복사본에서 실행하므로 아무것도 바꾸지 않습니다).
# - `experiments.outcomes(rows)`: 결과(`ok`, `timeout` 등)별 연결 수를 셉니다. `experiments.claim(ok, said,
#   otherwise)`: 각 실험을 마무리합니다. `ok`가 참이면 `said`를 출력하고, 아니면 `otherwise`와 함께 예외를
#   일으킵니다.
# - `kslab.check.ch03.<question>(answer, lab)`: 연습 문제의 답을 실습 환경의 복사본에서 확인합니다.
# - `lab.exact(needs)`: 정확한 상태가 필요한 실험을 실행할 실습 환경입니다. sim과 netns에서는 실습 환경
#   자신이고, 실제 kind 클러스터(`KSLAB_BACKEND=kind`)에서는 그 sim 복제본(`lab.copy()`: 노드의 실제 규칙)이며,
#   이때 실험에 무엇이 필요한지 한 줄로 출력합니다. 이 장에서는 클라이언트로서의 webpod1(`traefik/whoami`
#   이미지에는 `curl`이 없습니다), 0에서 시작하는 conntrack과 카운터, 실제 노드의 kube-proxy가 관리하는 규칙을
#   손으로 고치는 일이 그렇습니다. 규칙과 추적(trace), 차트는 실제 클러스터를 읽습니다.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import re

import kslab
from kslab import charts, experiments, views

lab = kslab.Lab(seed=3, proxy_mode="iptables")
HAIRPIN = r"^-A KUBE-SEP-\S+ -s \S+ .*-j KUBE-MARK-MASQ$"  # the hairpin rules, iptables-save form (used below)
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))
web1 = lab.cluster.pod("webpod1")
node1 = web1.node_name
cluster_ip = lab.cluster.service("svc-clusterip").cluster_ip
gateway = lab.pod_gateway(node1)  # the node side of webpod1's veth
print(f"webpod1 {web1.pod_ip} on {node1}; svc-clusterip {cluster_ip}:9000; the node side of webpod1's veth: {gateway}")


# three helpers the experiments below share
WEBPOD1_CLIENT = "webpod1 as a client (its image, traefik/whoami, has no curl)"  # what lab.exact says on kind


def curl_from_webpod1(n: int = 30) -> tuple[kslab.Lab, list[str]]:
    """A fresh lab (kube-proxy's rules, empty conntrack, counters at 0; on kind a sim twin of the live
    lab, see lab.exact), then the study's curl from webpod1 n times: the lab they ran on and what each
    curl printed. The next cells call it again, so each counts only its own curls."""
    lab.reset()
    on = lab.exact(f"{WEBPOD1_CLIENT}, fresh conntrack entries and counters from zero")
    return on, [on.sh("webpod1", "curl -s svc-clusterip:9000") for _ in range(n)]


def whoami(body: str) -> tuple[str, str]:
    """(Hostname, the IP of RemoteAddr) from a whoami answer."""
    return re.search(r"Hostname: (\S+)", body)[1], re.search(r"RemoteAddr: (\S+):\d+", body)[1]




def packets(listing: str) -> dict[str, int]:
    """target -> packets, from an `iptables -L -v -x` listing (rows after the two header lines)."""
    return {row.split()[2]: int(row.split()[0]) for row in listing.splitlines()[2:] if row.strip()}

# %% [markdown] lang="en"
# ## The hairpin rule, with the study's commands
#
# Follow svc-clusterip from `KUBE-SERVICES` to its `KUBE-SVC` chain, to webpod1's `KUBE-SEP`
# chain, on webpod1's node (`iptables -t nat -S CHAIN` lists one chain as `iptables-save` does).
# The `KUBE-SVC` chain is chapter 01's **ladder**: one `-m statistic --mode random` rule per
# endpoint, so each of the three webpods gets a third of the new connections, whoever the client
# is.

# %% [markdown] lang="ko"
# ## 스터디의 명령으로 보는 헤어핀 규칙
#
# webpod1의 노드에서 svc-clusterip를 `KUBE-SERVICES`부터 `KUBE-SVC` 체인을 거쳐 webpod1의 `KUBE-SEP`
# 체인까지 따라갑니다(`iptables -t nat -S CHAIN`은 체인 하나를 `iptables-save` 형식으로 보여 줍니다).
# `KUBE-SVC` 체인은 01장의 **사다리**입니다. 엔드포인트마다 `-m statistic --mode random` 규칙이 하나씩 있어,
# 클라이언트가 누구든 세 webpod가 새 연결을 3분의 1씩 받습니다.

# %%
lab.reset()  # kube-proxy's rules as it writes them (in case a later cell deleted some)
jump = lab.sh(node1, "iptables -t nat -S KUBE-SERVICES | grep svc-clusterip")
print(jump)
svc_chain = jump.split("-j ")[-1].strip()
ladder_rule = lab.sh(node1, f"iptables -t nat -S {svc_chain} | grep {web1.pod_ip}:80")
print(ladder_rule)
sep_chain = ladder_rule.split("-j ")[-1].strip()
sep = lab.sh(node1, f"iptables -t nat -S {sep_chain}")
print(sep)
print(lab.sh(node1, "iptables -t nat -S KUBE-MARK-MASQ"))
post = lab.sh(node1, "iptables -t nat -S KUBE-POSTROUTING")
print(post)
first_rule = sep.splitlines()[1]
experiments.claim(
    re.fullmatch(rf"-A {sep_chain} -s {re.escape(web1.pod_ip)}/32 .*-j KUBE-MARK-MASQ", first_rule) is not None
    and "--set-xmark 0x4000/0x4000" in lab.sh(node1, "iptables -t nat -S KUBE-MARK-MASQ")
    and "! --mark 0x4000/0x4000 -j RETURN" in post and "-j MASQUERADE" in post,
    f"{sep_chain} starts with '-s {web1.pod_ip}/32 -j KUBE-MARK-MASQ'; KUBE-POSTROUTING masquerades what is marked 0x4000",
    "the hairpin rule or the masquerade chain is not what the text describes",
)

# %% [markdown] lang="en"
# The first rule of webpod1's SEP chain, `-s 10.10.1.2/32 -j KUBE-MARK-MASQ`, matches only when
# the **source is the endpoint itself**: the hairpin case (the connection comes back to the pod it
# left, like a hairpin). `KUBE-MARK-MASQ` only sets the mark `0x4000`; at the end of the node's
# path `KUBE-POSTROUTING` returns every unmarked packet and masquerades the marked ones.
# **Masquerade** is a source NAT to the address of the interface the packet leaves by.

# %% [markdown] lang="ko"
# webpod1의 SEP 체인 첫 규칙 `-s 10.10.1.2/32 -j KUBE-MARK-MASQ`는 **출발지가 엔드포인트 자신일 때만**
# 일치합니다. 이것이 헤어핀의 경우입니다(연결이 떠난 파드로 머리핀처럼 되돌아옵니다). `KUBE-MARK-MASQ`는
# 표시 `0x4000`만 남기고, 노드 경로의 끝에서 `KUBE-POSTROUTING`이 표시 없는 패킷은 그냥 돌려보내고(RETURN)
# 표시된 패킷만 마스커레이드합니다. **마스커레이드**는 패킷이 나가는 인터페이스의 주소로 출발지를 바꾸는
# 소스 NAT(SNAT)입니다.

# %% [markdown] lang="en"
# ## Pod-to-Service traffic keeps its source, except a hairpin
#
# Now `curl` the Service from webpod1, as the study does from a pod. The whoami server answers with
# its `Hostname` and the `RemoteAddr` it saw. Then read the node's conntrack table (`conntrack -L`:
# one entry per connection, the original direction first, then the reply direction) and the
# counters of the chains (`iptables -v`: packets and bytes that matched each rule; in the `nat`
# table only a connection's first packet is evaluated, so packets here are connections).

# %% [markdown] lang="ko"
# ## 파드에서 서비스로 가는 트래픽은 출발지를 유지합니다. 헤어핀만 빼고
#
# 이제 스터디가 파드에서 하듯 webpod1에서 서비스로 `curl`을 보냅니다. whoami 서버는 자기 `Hostname`과 자기가
# 본 `RemoteAddr`를 응답합니다. 그다음 노드의 연결 추적(conntrack) 표(`conntrack -L`: 연결마다 한 항목이며,
# 원래 방향 다음에 응답 방향이 나옵니다)와 체인의 카운터(`iptables -v`: 규칙마다 일치한 패킷과 바이트 수.
# `nat` 테이블은 연결의 첫 패킷만 평가하므로 여기서 패킷 수는 연결 수입니다)를 읽습니다.

# %%
on, bodies = curl_from_webpod1()
print(bodies[-1])
answers = [whoami(b) for b in bodies]
for host in sorted({h for h, _ in answers}):
    print(f"{host}: answered {sum(h == host for h, _ in answers)} times, saw {sorted({r for h, r in answers if h == host})}")
hairpins = sum(h == "webpod1" for h, _ in answers)
experiments.claim(
    hairpins > 0 and all(r == (gateway if h == "webpod1" else web1.pod_ip) for h, r in answers),
    f"webpod1 saw its own connections ({hairpins} of 30) from {gateway}; webpod2/3 saw webpod1's own address {web1.pod_ip}",
    "the source addresses the servers saw are not what the text describes",
)

# %% [markdown] lang="en"
# The same connections in the node's conntrack table. A hairpin's reply direction reads
# `src=10.10.1.2 dst=10.10.1.1`: the reply goes from webpod1 to the node side of its veth, and
# conntrack turns it back into `10.200.1.x:9000 -> 10.10.1.2`. The other entries' replies go to
# `10.10.1.2` itself: no SNAT.

# %% [markdown] lang="ko"
# 같은 연결을 노드의 conntrack 표에서 봅니다. 헤어핀 항목의 응답 방향은 `src=10.10.1.2 dst=10.10.1.1`입니다.
# 응답은 webpod1에서 자기 veth의 노드 쪽 주소로 가고, conntrack이 이를 `10.200.1.x:9000 -> 10.10.1.2`로
# 되돌립니다. 다른 항목의 응답은 `10.10.1.2` 자신에게 갑니다. SNAT가 없습니다.

# %%
on, bodies = curl_from_webpod1()
hairpins = sum(whoami(b)[0] == "webpod1" for b in bodies)
table = on.sh(node1, f"conntrack -L -d {cluster_ip}")  # every entry, read below; printed: the first few and the hairpins
print(on.sh(node1, f"conntrack -L -d {cluster_ip} | head -n 4"))
print(on.sh(node1, f"conntrack -L -d {cluster_ip} | grep dst={gateway}"), table.stderr, sep="")
replies = re.findall(r"dport=9000 (?:\[UNREPLIED\] )?src=(\S+) dst=(\S+) ", table)
snat = [r for r in replies if r == (web1.pod_ip, gateway)]
experiments.claim(
    len(replies) == 30 and len(snat) == hairpins and all(dst == web1.pod_ip for src, dst in replies if src != web1.pod_ip),
    f"{len(snat)} entries answer to {gateway} (the hairpins, SNATed); the other {len(replies) - len(snat)} answer to {web1.pod_ip}",
    "the conntrack entries do not show the hairpin's SNAT as described",
)

# %% [markdown] lang="en"
# And the counters (`-x`: exact numbers). The hairpin rule and `MASQUERADE` counted exactly the
# hairpins; `RETURN` in `KUBE-POSTROUTING` counted the unmarked connections.

# %% [markdown] lang="ko"
# 카운터도 봅니다(`-x`: 정확한 수). 헤어핀 규칙과 `MASQUERADE`는 정확히 헤어핀 연결만 세었고,
# `KUBE-POSTROUTING`의 `RETURN`은 표시가 없는 연결을 세었습니다.

# %%
on, bodies = curl_from_webpod1()
hairpins = sum(whoami(b)[0] == "webpod1" for b in bodies)
# webpod1's SEP chain of svc-clusterip (as found above): the chain of the rule that DNATs to webpod1
sep_chain = on.sh(node1, f"iptables -t nat -S | grep svc-clusterip | grep DNAT | grep {web1.pod_ip}:80").split()[1]
sep_counts = on.sh(node1, f"iptables -v -x --numeric --table nat --list {sep_chain}")
post_counts = on.sh(node1, "iptables -v -x --numeric --table nat --list KUBE-POSTROUTING")
print(sep_counts, post_counts, sep="\n")
experiments.claim(
    packets(sep_counts)["KUBE-MARK-MASQ"] == packets(sep_counts)["DNAT"] == hairpins == packets(post_counts)["MASQUERADE"]
    and packets(post_counts)["RETURN"] >= 30 - hairpins,
    f"the hairpin rule and MASQUERADE each counted {hairpins} connections, the hairpins",
    "the counters do not match the hairpins counted from the answers",
)

# %% [markdown] lang="en"
# The same with many connections, and with `net-pod` (not an endpoint of svc-clusterip) beside
# webpod1: `source_ip_seen` is the client's own address every time, except when webpod1 reached
# itself.

# %% [markdown] lang="ko"
# 연결을 많이 열어 같은 것을 확인합니다. webpod1 옆에 `net-pod`(svc-clusterip의 엔드포인트가 아님)도
# 넣습니다. `source_ip_seen`은 매번 클라이언트 자신의 주소이고, webpod1이 자기 자신에게 도달한 경우만
# 다릅니다.

# %%
lab.reset()
on = lab.exact(WEBPOD1_CLIENT)
df = on.run(["net-pod", "webpod1"], "svc-clusterip", n=600, seed=4)
print(df.groupby(["client", "endpoint_pod"])["source_ip_seen"].agg(lambda s: ", ".join(sorted(set(s)))).to_string())
itself = df["endpoint_pod"] == df["client"]
own_node_side = df["client"].map(lambda c: on.pod_gateway(on.cluster.pod(c).node_name))
experiments.claim(
    (df["outcome"] == "ok").all() and (df[~itself]["source_ip_seen"] == df[~itself]["client_ip"]).all()
    and (df[itself]["source_ip_seen"] == own_node_side[itself]).all() and set(df[itself]["client"]) == {"webpod1"},
    f"pod-to-Service connections keep the pod's address, except webpod1's {itself.sum()} hairpins, seen from {gateway}",
    "pod-to-Service sources changed",
)

# %% [markdown] lang="en"
# ## The trace of one hairpin connection

# %% [markdown] lang="ko"
# ## 헤어핀 연결 하나의 추적(trace)

# %%
lab.reset()
for k in range(60):
    t = lab.trace("webpod1", "svc-clusterip")
    if t.endpoint_pod == "webpod1":
        break
print(t)
experiments.claim(t.endpoint_pod == "webpod1" and t.outcome == "ok" and t.masquerade and t.source_ip_seen == gateway,
                  f"DNAT to webpod1 itself, then MASQUERADE: webpod1 sees {gateway}",
                  "the hairpin trace changed")

# %% [markdown] lang="en"
# ## Without the rule: predict first
#
# Delete the hairpin rules by hand on every node (`iptables -t nat -D`, what `lab.delete_rules`
# does, in the kernel too on the netns backend), then let webpod1 call the Service again. Before
# you run it, answer two questions.
#
# **1.** What happens to a connection the ladder sends from webpod1 back to webpod1?
#
# - (a) webpod1 answers through the node; conntrack un-DNATs the reply and the connection works
# - (b) webpod1 accepts the SYN and answers itself inside the pod; the reply never reaches the
#   node's conntrack
# - (c) webpod1 drops the SYN as a martian (its source is webpod1's own address); the client times
#   out
# - (d) the node refuses the connection with a TCP RST

# %% [markdown] lang="ko"
# ## 규칙이 없으면: 먼저 예측하기
#
# 모든 노드에서 헤어핀 규칙을 손으로 지우고(`iptables -t nat -D`: `lab.delete_rules`가 하는 일이며, netns
# 백엔드에서는 커널에서도 지웁니다) webpod1이 다시 서비스를 호출하게 합니다. 실행하기 전에 두 질문에
# 답하세요.
#
# **1.** 사다리가 webpod1에서 다시 webpod1로 보낸 연결은 어떻게 될까요?
#
# - (a) webpod1이 노드를 거쳐 응답하고, conntrack이 응답의 DNAT를 되돌려 연결이 성공합니다.
# - (b) webpod1이 SYN을 받아들이고 파드 안에서 자기 자신에게 응답합니다. 응답은 노드의 conntrack에
#   닿지 않습니다.
# - (c) webpod1이 SYN을 마션 패킷으로 버립니다(출발지가 webpod1 자신의 주소). 클라이언트는 시간 초과됩니다.
# - (d) 노드가 TCP RST로 연결을 거부합니다.

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch03.without_masquerade")` shows its hints one at a time; once you have
# checked an answer of your own and seen every hint, `kslab.check.solution("ch03.without_masquerade")` shows the
# solution. An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter
# 00) shows how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch03.without_masquerade")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch03.without_masquerade")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch03.without_masquerade"
# 1. Without the hairpin masquerade, the SYN that comes back to webpod1 still carries webpod1's own address as its
#    source, and webpod1's address as its destination.
# 2. Think about what the pod's kernel does with a packet that arrives from outside on eth0 but claims to come from
#    the pod's own address: does it ever reach a listening socket?

# %% [markdown] lang="ko" hint="ch03.without_masquerade"
# 1. 헤어핀 마스커레이드가 없으면 webpod1로 돌아오는 SYN의 출발지는 여전히 webpod1 자신의 주소이고, 목적지도 webpod1의 주소입니다.
# 2. 밖에서 eth0로 들어왔는데 출발지가 자기 자신의 주소인 패킷을 파드의 커널이 어떻게 처리할지 생각해 보세요. 그 패킷이 대기 중인 소켓까지 갈 수 있습니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b", "c" or "d"
# EXERCISE-END
answer = "c"
kslab.check.ch03.without_masquerade(answer, lab)

# %% [markdown] lang="en"
# **2.** What share of webpod1's connections to `svc-clusterip` fail without the rule (a number
# between 0 and 1)?

# %% [markdown] lang="ko"
# **2.** 규칙이 없으면 webpod1이 `svc-clusterip`로 여는 연결 중 몇 분의 몇이 실패할까요(0과 1 사이의 수)?

# %% [markdown] lang="en" hint="ch03.hairpin_failures"
# 1. Only the connections that the ladder sends back to webpod1 itself need the hairpin rule; the others go to
#    another pod and work as before.
# 2. svc-clusterip has three endpoints and the ladder spreads connections evenly over them: what share lands on
#    webpod1?

# %% [markdown] lang="ko" hint="ch03.hairpin_failures"
# 1. 헤어핀 규칙이 필요한 것은 사다리가 webpod1 자신에게 돌려보내는 연결뿐입니다. 다른 파드로 가는 연결은 그대로 동작합니다.
# 2. svc-clusterip에는 엔드포인트가 세 개 있고 사다리는 연결을 고르게 나눕니다. webpod1에 가는 비율은 얼마입니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 1 / 3
kslab.check.ch03.hairpin_failures(answer, lab)

# %% [markdown] lang="en"
# Now run it. The ladder does not know who the client is: when the client is webpod1 itself, a third of
# its connections come back to it. `HAIRPIN` (set in the first code cell) is the regular expression of
# the hairpin rules in `iptables-save` form.

# %% [markdown] lang="ko"
# 이제 실행합니다. 사다리는 클라이언트가 누구인지 모릅니다. 클라이언트가 webpod1 자신이면 그 연결의 3분의 1이
# 자기에게 돌아옵니다. `HAIRPIN`(첫 코드 셀에서 정했습니다)은 `iptables-save` 형식의 헤어핀 규칙에
# 맞는 정규 표현식입니다.

# %%
lab.reset()
on = lab.exact(f"{WEBPOD1_CLIENT} and the hairpin rules deleted by hand, which a live node's kube-proxy owns")
print(f"deleted {on.delete_rules(HAIRPIN)} hairpin rules")
broken = on.run("webpod1", "svc-clusterip", n=600 if on.backend == "sim" else 300, seed=4, timeout=0.2)
print(experiments.outcomes(broken))
reasons = broken[broken["outcome"] != "ok"]["reason"]
print(reasons.iloc[0])
failed = float((broken["outcome"] != "ok").mean())
experiments.claim(
    abs(failed - 1 / 3) < 0.1 and "webpod1" not in set(broken[broken["outcome"] == "ok"]["endpoint_pod"])
    and reasons.str.contains("back to webpod1 with its own address").all()
    and reasons.str.contains("martian").all() and reasons.str.contains("accept_local=0").all(),
    f"without the rule exactly the connections webpod1 makes to itself fail ({failed:.0%}, the ladder's 1/3): "
    "webpod1 drops its own address as a martian; the rest work",
    "the failure pattern without the hairpin rule changed",
)

# %% [markdown] lang="en"
# What happened (this corrects an earlier version of this chapter, which said the reply "stays
# inside the pod"): the node DNATs webpod1's SYN back to webpod1 and, with no mark, does not
# masquerade it, so the SYN arrives on webpod1's `eth0` with source `10.10.1.2`, webpod1's own
# address. The kernel's input route check (`fib_validate_source()`) calls a packet from outside
# whose source is a local address a **martian** and drops it, unless
# `net.ipv4.conf.*.accept_local=1` (the default is 0). No socket sees the SYN, nothing answers,
# the client's retransmissions meet the same fate, and it times out. Only with `accept_local=1`
# would webpod1 accept it, and then answer itself inside the pod: that reply would never pass the
# node's conntrack to be un-DNATed, and the client, waiting for an answer from `10.200.1.x:9000`,
# would still time out.
#
# The node's conntrack shows it: each failed attempt is an entry DNATed to webpod1 with the reply
# direction `src=10.10.1.2 dst=10.10.1.2` (from webpod1 to webpod1) and `[UNREPLIED]`.

# %% [markdown] lang="ko"
# 무슨 일이 있었을까요(이 장의 이전 판은 응답이 "파드 안에 머문다"고 했는데, 그것을 바로잡습니다). 노드는
# webpod1의 SYN을 DNAT해 다시 webpod1로 보내고, 표시가 없으므로 마스커레이드하지 않습니다. 그래서 SYN은
# 출발지가 webpod1 자신의 주소 `10.10.1.2`인 채로 webpod1의 `eth0`에 도착합니다. 커널의 입력 경로 검사
# (`fib_validate_source()`)는 밖에서 들어왔는데 출발지가 로컬 주소인 패킷을 **마션(martian)** 패킷이라 보고
# 버립니다. `net.ipv4.conf.*.accept_local=1`일 때만 예외입니다(기본값은 0). 어떤 소켓도 SYN을 보지 못하니
# 아무도 응답하지 않고, 클라이언트가 다시 보낸 SYN도 같은 운명이 되어 시간 초과됩니다. `accept_local=1`이라면
# webpod1이 SYN을 받아들이지만 파드 안에서 자기 자신에게 응답합니다. 그 응답은 노드의 conntrack을 지나지
# 않아 DNAT가 되돌려지지 않으므로, `10.200.1.x:9000`의 응답을 기다리는 클라이언트는 역시 시간 초과됩니다.
#
# 노드의 conntrack이 이를 보여 줍니다. 실패한 시도마다 webpod1로 DNAT된 항목이 있고, 응답 방향은
# `src=10.10.1.2 dst=10.10.1.2`(webpod1에서 webpod1로)이며 `[UNREPLIED]`입니다.

# %%
lab.reset()
on = lab.exact(f"{WEBPOD1_CLIENT} and the hairpin rules deleted by hand, which a live node's kube-proxy owns")
on.delete_rules(HAIRPIN)
on.run("webpod1", "svc-clusterip", n=30, seed=4, timeout=0.2)
unreplied = on.sh(node1, f"conntrack -L -d {cluster_ip} | grep UNREPLIED")
print(unreplied)
lines = unreplied.splitlines()
experiments.claim(
    len(lines) > 0 and all(f"[UNREPLIED] src={web1.pod_ip} dst={web1.pod_ip} " in line for line in lines),
    f"{len(lines)} unanswered entries, each DNATed to webpod1 with the reply from {web1.pod_ip} to {web1.pod_ip}: no SNAT",
    "the failed connections' conntrack entries are not what the text describes",
)

# %% [markdown] lang="en"
# ## For every client: the chart
#
# Which clients need the rule? `views.compute_hairpin` runs every pod of the study (namespace
# `default`; a live cluster's `kube-system` pods are left out) against a Service
# on two copies of the lab, one with kube-proxy's rules and one without the hairpin rules, and
# `charts.hairpin_figure` draws the share of each client's connections that succeed. The copies
# are simulated (`lab.copy()`), whatever backend the lab runs on: the cells above already ran the
# kernel's case, and the chart changes nothing in your lab. (The Deployment's pods are named
# `deploy-echo-<hash>-<id>`; the chart cuts out the hash.)

# %% [markdown] lang="ko"
# ## 모든 클라이언트에 대해: 차트
#
# 어떤 클라이언트에 이 규칙이 필요할까요? `views.compute_hairpin`은 실습 환경의 복사본 두 개(kube-proxy의
# 규칙 그대로인 것과 헤어핀 규칙을 지운 것)에서 스터디의 모든 파드(네임스페이스 `default`; 실제 클러스터의
# `kube-system` 파드는 빼고)가 서비스에 연결하게 하고, `charts.hairpin_figure`는
# 클라이언트마다 성공한 연결의 비율을 그립니다. 복사본은 실습 환경이 어느 백엔드에서 돌든 시뮬레이션입니다
# (`lab.copy()`). 커널에서의 경우는 위의 셀들이 이미 실행했고, 차트는 여러분의 실습 환경을 바꾸지 않습니다.
# (디플로이먼트(Deployment)의 파드 이름은 `deploy-echo-<해시>-<id>`이며, 차트는 해시 부분을 줄여 보여 줍니다.)

# %%
study_pods = [p.name for p in lab.cluster.pods if p.namespace == "default"]  # a live cluster also has kube-system's
hp = views.compute_hairpin(lab, "svc-clusterip", study_pods, n=300, seed=1)
charts.hairpin_figure(hp).show()
with_rule, without = (hp[hp["hairpin_rule"] == case].set_index("client") for case in ("with", "without"))
selector = lab.cluster.service("svc-clusterip").selector
endpoints = {p.name for p in lab.cluster.pods if all(p.labels.get(k) == v for k, v in selector.items())}
experiments.claim(
    (with_rule["success_share"] == 1).all() and set(without.index[without["success_share"] < 1]) == endpoints
    and ((without["success_share"] - (1 - without["to_itself"])).abs() < 1e-9).all(),
    f"with the rule every client succeeds; without it only the Service's endpoints {sorted(endpoints)} lose connections, "
    "exactly those that reached themselves",
    "the chart does not show what the text says",
)

# %% [markdown] lang="en"
# Only the pods behind the Service have a hairpin; `net-pod` and the `deploy-echo` pods (behind
# another Service) never reach themselves through svc-clusterip. Hover a bar for the share of a
# client's connections that reached itself: without the rule, success is exactly one minus that.

# %% [markdown] lang="ko"
# 서비스 뒤에 있는 파드만 헤어핀이 생깁니다. `net-pod`와 `deploy-echo` 파드(다른 서비스 뒤에 있음)는
# svc-clusterip를 거쳐 자기 자신에게 도달하는 일이 없습니다. 막대 위에 마우스를 올리면 그 클라이언트의 연결 중
# 자기 자신에게 간 비율이 보입니다. 규칙이 없을 때 성공 비율은 정확히 1에서 그 비율을 뺀 값입니다.

# %% [markdown] lang="en"
# ## kube-proxy puts the rules back, eventually
#
# kube-proxy does not notice the hand edit: a partial sync rewrites only the chains of Services
# that changed. The rules come back with the next **full** sync (at start-up, hourly, or after a
# failed sync).

# %% [markdown] lang="ko"
# ## kube-proxy는 결국 규칙을 되돌려 놓습니다
#
# kube-proxy는 손으로 한 수정을 알아차리지 못합니다. 부분 동기화(partial sync)는 바뀐 서비스의 체인만 다시
# 쓰기 때문입니다. 규칙은 다음 **전체** 동기화(full sync) 때 돌아옵니다(시작할 때, 한 시간마다, 또는
# 동기화가 실패한 다음).

# %%
lab.reset()
on = lab.exact(f"{WEBPOD1_CLIENT} and the hairpin rules deleted by hand, which a live node's kube-proxy owns")
on.delete_rules(HAIRPIN)
on.resync(full=False)
still = on.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
on.resync(full=True)
on.flush_conntrack()  # the failed connections' conntrack entries would keep their old NAT (see below)
repaired = on.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
print(f"after the partial sync: {experiments.outcomes(still).to_dict()}; after the full sync: {experiments.outcomes(repaired).to_dict()}")
experiments.claim((still["outcome"] != "ok").any() and (repaired["outcome"] == "ok").all(),
                  "a partial sync leaves the hand edit in place; the full sync puts the hairpin rules back",
                  "partial/full sync did not behave as taught")

# %% [markdown] lang="en"
# Why `flush_conntrack()`: each failed attempt left a conntrack entry on the node (state
# `SYN_SENT`, kept two minutes) with the NAT it got *then*. A new connection that happens to reuse
# one of those source ports is matched to the old entry and follows the old NAT, not the repaired
# rules. On the netns backend this is the real kernel's table (the `conntrack -L` above);
# `lab.flush_conntrack()` is `conntrack -F` on every node.
#
# With a Linux bridge (kubenet, docker0) the hairpin packet must also go back out of the bridge
# port it came in by, which a bridge refuses unless the port has `hairpin_mode` on (or the bridge
# is promiscuous); kubelet's `--hairpin-mode` (`hairpin-veth`, `promiscuous-bridge`) exists for
# that. kindnet uses point-to-point veths with routes, so only the NAT part applies here.

# %% [markdown] lang="ko"
# 왜 `flush_conntrack()`인가: 실패한 시도마다 노드에 conntrack 항목이 남습니다(상태 `SYN_SENT`, 2분 동안
# 유지). 그 항목은 *그때* 받은 NAT를 기억합니다. 새 연결이 우연히 그 출발지 포트 중 하나를 다시 쓰면 옛
# 항목과 일치해, 복구된 규칙이 아니라 옛 NAT를 따릅니다. netns 백엔드에서는 이것이 실제 커널의 표입니다(위의
# `conntrack -L`). `lab.flush_conntrack()`은 모든 노드에서 `conntrack -F`를 실행하는 것과 같습니다.
#
# 리눅스 브리지(kubenet, docker0)에서는 헤어핀 패킷이 들어온 브리지 포트로 다시 나가야 하는데, 브리지는 그
# 포트에 `hairpin_mode`가 켜져 있지 않으면(또는 브리지가 무차별 모드가 아니면) 이를 거부합니다. kubelet의
# `--hairpin-mode`(`hairpin-veth`, `promiscuous-bridge`)가 그래서 있습니다. kindnet은 경로를 설정한
# 점대점(point-to-point) veth를 쓰므로 여기서는 NAT 부분만 해당합니다.

# %% [markdown] lang="en"
# ## Exercises: new cases
#
# **3.** Which source address does **webpod2** see when it reaches itself through
# `svc-clusterip`? Work it out from where webpod2 runs, then check.

# %% [markdown] lang="ko"
# ## 연습 문제: 새로운 경우
#
# **3.** **webpod2**가 `svc-clusterip`를 거쳐 자기 자신에게 도달할 때 보는 출발지 주소는 무엇입니까?
# webpod2가 어디에서 실행되는지로부터 알아낸 다음 확인하세요.

# %% [markdown] lang="en" hint="ch03.hairpin_source"
# 1. The hairpin connection is masqueraded on webpod2's own node, and MASQUERADE takes the address of the interface
#    the packet leaves by.
# 2. The packet goes back to webpod2 through the node's end of webpod2's veth; with kindnet's ptp plugin that end has
#    the first address of the node's podCIDR (`lab.pod_gateway(node)`). Which node runs webpod2?

# %% [markdown] lang="ko" hint="ch03.hairpin_source"
# 1. 헤어핀 연결은 webpod2가 실행되는 노드에서 마스커레이드되고, MASQUERADE는 패킷이 나가는 인터페이스의 주소를 씁니다.
# 2. 패킷은 webpod2의 veth 중 노드 쪽 끝을 거쳐 webpod2로 되돌아갑니다. kindnet의 ptp 플러그인에서 그 끝은 노드 podCIDR의 첫 주소를
#    가집니다(`lab.pod_gateway(node)`). webpod2는 어느 노드에서 실행됩니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.pod_gateway(lab.cluster.pod("webpod2").node_name)
lab.reset()  # kube-proxy's hairpin rules back, if an experiment above deleted them
kslab.check.ch03.hairpin_source(answer, lab, pod="webpod2")

# %% [markdown] lang="en"
# **4.** Someone deletes the hairpin rules on **myk8s-worker2 only**
# (`lab.delete_rules(HAIRPIN, nodes=["myk8s-worker2"])`). Which pods then lose connections to
# *some* Service of the lab? Give a set of pod names. Think about which node DNATs a pod's
# connection, and which Services have pods behind them (`svc-nodeport`, the lab's other Service,
# is of type NodePort, taught in chapter 06; from inside the cluster it is reached by its
# ClusterIP like any Service). You may check your reasoning with
# `views.compute_hairpin(lab, "svc-nodeport", nodes=["myk8s-worker2"])`.

# %% [markdown] lang="ko"
# **4.** 누군가 **myk8s-worker2에서만** 헤어핀 규칙을 지웠습니다(`lab.delete_rules(HAIRPIN,
# nodes=["myk8s-worker2"])`). 그러면 어떤 파드가 실습 환경의 *어느* 서비스로든 연결을 잃을까요? 파드 이름의
# 집합으로 답하세요. 어느 노드가 파드의 연결을 DNAT하는지, 어떤 서비스 뒤에 파드가 있는지 생각해 보세요
# (실습의 다른 서비스 `svc-nodeport`는 06장에서 배우는 NodePort 유형입니다. 클러스터 안에서는 여느 서비스처럼
# 클러스터 IP로 접속합니다). `views.compute_hairpin(lab, "svc-nodeport", nodes=["myk8s-worker2"])`로 추론을
# 확인해도 됩니다.

# %% [markdown] lang="en" hint="ch03.affected_pods"
# 1. A pod's connection to a Service is DNATed on the pod's own node, so deleting the hairpin rules on myk8s-worker2
#    can only hurt clients that run on myk8s-worker2.
# 2. A hairpin happens only when the ladder sends a pod back to itself: the pod must be an endpoint of the Service it
#    calls. Which pods on myk8s-worker2 back a Service (compare their labels with each Service's selector)?

# %% [markdown] lang="ko" hint="ch03.affected_pods"
# 1. 파드가 서비스에 연결하면 DNAT는 파드 자신의 노드에서 일어납니다. 그러니 myk8s-worker2의 헤어핀 규칙을 지우면 myk8s-worker2에서 실행되는 클라이언트만 영향을 받을 수 있습니다.
# 2. 헤어핀은 사다리가 파드를 자기 자신에게 돌려보낼 때만 생깁니다. 즉 파드가 자신이 호출하는 서비스의 엔드포인트여야 합니다. myk8s-worker2의 파드 중 어떤 파드가 서비스 뒤에 있습니까(파드의
#    레이블과 각 서비스의 셀렉터를 비교하세요)?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. {"webpod1", "net-pod"}
# EXERCISE-END
def backs_a_service(pod) -> bool:
    return any(s.selector and all(pod.labels.get(k) == v for k, v in s.selector.items()) for s in lab.cluster.services)


# the client's own node DNATs its connection, so only the endpoint pods on myk8s-worker2 can meet themselves there
answer = {p.name for p in lab.cluster.pods if p.node_name == "myk8s-worker2" and backs_a_service(p)}
kslab.check.ch03.affected_pods(answer, lab, node="myk8s-worker2")

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - Every SEP chain starts with `-s <pod IP> -j KUBE-MARK-MASQ`: hairpin NAT (헤어핀 NAT).
#   Pod-to-Service traffic keeps its source address, except a hairpin, which is masqueraded to the
#   node side of the pod's veth (`10.10.1.1` for webpod1).
# - Without the rule the node DNATs the pod's SYN back to it with the pod's own address as
#   source, and the pod drops it as a martian (`accept_local=0`): the client times out. Exactly the
#   self-connections (1/n of an endpoint's connections) fail, only for the Service's own endpoints,
#   and only on the nodes that lost the rule.
# - The study's commands show it all: `iptables -t nat -S KUBE-SEP-…`, `curl` from the pod,
#   `conntrack -L` (reply direction to `10.10.1.1`), `iptables -v -n -L KUBE-POSTROUTING`.
#
# Next: chapter 04, what ClusterIP cannot do.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - 모든 SEP 체인은 `-s <파드 IP> -j KUBE-MARK-MASQ`로 시작합니다: 헤어핀 NAT(hairpin NAT). 파드에서
#   서비스로 가는 트래픽은 출발지 주소를 유지하지만, 헤어핀만은 파드 veth의 노드 쪽 주소(webpod1이면
#   `10.10.1.1`)로 마스커레이드됩니다.
# - 이 규칙이 없으면 노드는 파드의 SYN을 출발지가 파드 자신의 주소인 채로 다시 그 파드에 DNAT하고, 파드는 그
#   패킷을 마션 패킷으로 버립니다(`accept_local=0`). 클라이언트는 시간 초과됩니다. 정확히 자기 자신으로 가는
#   연결(엔드포인트 연결의 1/n)만, 그 서비스의 엔드포인트 파드에서만, 규칙을 잃은 노드에서만 실패합니다.
# - 스터디의 명령이 이 모두를 보여 줍니다: `iptables -t nat -S KUBE-SEP-…`, 파드에서 보내는 `curl`,
#   `conntrack -L`(응답 방향이 `10.10.1.1`로 감), `iptables -v -n -L KUBE-POSTROUTING`.
#
# 다음 장: 04장, 클러스터 IP로는 할 수 없는 것.
