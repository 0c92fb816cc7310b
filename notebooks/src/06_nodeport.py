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
# # 06 · NodePort Services (NodePort 서비스)
#
# Study notes 2.1-2.4 and the first half of 2.6. A NodePort Service opens one port, the same on
# every node, on the nodes' own addresses, so a client outside the cluster can reach the Service.
# By the end of this chapter you will be able to:
#
# 1. reach `svc-nodeport` from `mypc` (outside the cluster) through **every** node, the control
#    plane included, and say where the connections land;
# 2. read the rules in the study's order, `PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-…
#    → KUBE-MARK-MASQ → KUBE-SVC-… → KUBE-SEP-… → DNAT → POSTROUTING → KUBE-POSTROUTING → MASQUERADE`;
# 3. explain with `conntrack -L` why the reply goes back through the node the client entered by, and
#    why the pod never sees the client's address;
# 4. use a NodePort on a node's `127.0.0.1` (`route_localnet`, the `localhost_nps_accepted_pkts`
#    counter) and restrict the addresses with `nodePortAddresses`;
# 5. say which ports a NodePort may use (30000-32767), how the API server picks one (the static and
#    dynamic bands), and what it answers for a port outside the range.

# %% [markdown] lang="ko"
# # 06 · NodePort 서비스 (NodePort Services)
#
# 스터디 노트 2.1-2.4와 2.6의 앞부분에 해당합니다. NodePort 서비스(Service)는 모든 노드(node)의 자기 주소에 같은
# 포트 하나를 열어, 클러스터 밖의 클라이언트도 서비스에 접속할 수 있게 합니다. 이 장을 마치면 다음을 할 수
# 있습니다.
#
# 1. 클러스터 밖의 `mypc`에서 컨트롤 플레인(control plane)을 포함한 **모든** 노드를 거쳐 `svc-nodeport`에
#    접속하고, 연결이 어디에 도착하는지 말할 수 있습니다.
# 2. 규칙(rule)을 스터디의 순서대로 읽을 수 있습니다: `PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS →
#    KUBE-EXT-… → KUBE-MARK-MASQ → KUBE-SVC-… → KUBE-SEP-… → DNAT → POSTROUTING → KUBE-POSTROUTING →
#    MASQUERADE`.
# 3. 응답이 왜 클라이언트가 들어온 노드를 거쳐 돌아가는지, 파드(Pod)는 왜 클라이언트의 주소를 보지 못하는지
#    `conntrack -L`로 설명할 수 있습니다.
# 4. 노드의 `127.0.0.1`에서 NodePort를 쓰고(`route_localnet`, `localhost_nps_accepted_pkts` 카운터),
#    `nodePortAddresses`로 주소를 제한할 수 있습니다.
# 5. NodePort가 쓸 수 있는 포트(30000-32767), API 서버가 포트를 고르는 방법(정적 대역과 동적 대역), 범위 밖의
#    포트에 API 서버가 하는 대답을 말할 수 있습니다.

# %% [markdown] lang="en"
# **What this chapter uses** (chapter 00's API card has the rest):
#
# - `lab.sh(where, command)`: one of the study's commands (`kubectl`, `curl`, `iptables`,
#   `conntrack`, `cat`, `nfacct`) in a node, a pod or `mypc`; what it printed (`.returncode`: its exit
#   code, e.g. `curl`'s 7 for "connection refused");
# - `lab.run(src, to, n, seed=...)`: `n` connections, one row each (`ingress_node`: the node whose
#   rules saw the first packet, `endpoint_pod`, `endpoint_node`, `source_ip_seen`: the client address
#   the pod saw, `cross_node`, `outcome`); `lab.trace(src, to)`: one connection, rule by rule
#   (`.chains`, `.steps`, `.masquerade`, `.dnat_to`, `.endpoint_pod`, `.reply_path`);
#   `to` may be `NODE:PORT` or `NODE:svc-nodeport` (the Service's nodePort on that node's address);
# - `lab.cluster.service("svc-nodeport").ports[0].node_port`: the port the API server allocated;
# - `lab.exact(needs)`: the lab an experiment that needs exact state runs on (itself on sim and netns;
#   on a live kind cluster a sim twin, announced in one line); `lab.clear_kernel_state()`: empty
#   conntrack, counters at zero; `lab.set_proxy(nodeport_addresses=...)`: restart kube-proxy with
#   another `nodePortAddresses`; `lab.copy()`: a sim copy to experiment on; `lab.reset()`: the study's
#   lab as it was made (run it if a cell stopped halfway, or after your own experiments);
# - `kslab.controlplane.node_port_bands(range)`, `controlplane.band_of(port, range)`: the API server's
#   static and dynamic bands of a NodePort range, and which one a port is in;
#   `kslab.Lab(node_port_range="30000-30100")`: a lab whose API server has another
#   `--service-node-port-range`; `lab.set_node_port_range(...)`: the API server restarted with one
#   (the ports each Service holds, with their bands; `lab.cluster.warnings`: what it warned);
# - `lab.apply(path)`: `kubectl apply -f path`; a Service the API server refuses raises
#   `kslab.AdmissionError` with the API server's message, and changes nothing;
# - `experiments.ingress_summary(rows)`: one row per (ingress node, pod) with `n` connections and
#   `share`, the fraction of that node's connections; `charts.ingress_sankey(rows, nodes=..., pods=...)`:
#   the same as a Sankey diagram, ingress nodes on the left, pods on the right;
# - `views.DistributionPanel`, `views.compute_distribution` (chapter 01), `experiments.claim`,
#   `kslab.check.ch06.<question>(answer, lab)`.
#
# This chapter reads kube-proxy's **iptables mode** (its `iptables -t nat -S` rules, `KUBE-SVC-…`/`KUBE-SEP-…`
# chains and their counters), so its lab is made with `proxy_mode="iptables"`, whatever `$KSLAB_PROXY_MODE`
# says. In kube-proxy's nftables mode (chapter 05) the same Services live in `table ip kube-proxy`
# (`lab.sh(node, "nft list table ip kube-proxy")`, `lab.render(node)`), and the connections behave as they do here.

# %% [markdown] lang="ko"
# **이 장에서 쓰는 것**(나머지는 00장의 API 카드에 있습니다):
#
# - `lab.sh(where, command)`: 노드, 파드, `mypc`에서 스터디의 명령(`kubectl`, `curl`, `iptables`, `conntrack`,
#   `cat`, `nfacct`)을 실행하고 출력을 돌려줍니다(`.returncode`: 종료 코드, 예를 들어 "연결 거부"면 `curl`의 7).
# - `lab.run(src, to, n, seed=...)`: 연결 `n`개, 연결마다 한 행(`ingress_node`: 규칙이 첫 패킷을 본 노드,
#   `endpoint_pod`, `endpoint_node`, `source_ip_seen`: 파드가 본 클라이언트 주소, `cross_node`, `outcome`).
#   `lab.trace(src, to)`: 연결 하나를 규칙 단위로 보여 줍니다(`.chains`, `.steps`, `.masquerade`, `.dnat_to`,
#   `.endpoint_pod`, `.reply_path`). `to`에는 `NODE:PORT`나 `NODE:svc-nodeport`(그 노드 주소의 서비스
#   nodePort)를 쓸 수 있습니다.
# - `lab.cluster.service("svc-nodeport").ports[0].node_port`: API 서버가 할당한 포트입니다.
# - `lab.exact(needs)`: 정확한 상태가 필요한 실험을 실행할 실습 환경입니다(sim과 netns에서는 실습 환경 자신,
#   실제 kind 클러스터에서는 sim 복제본이며 한 줄로 알려 줍니다). `lab.clear_kernel_state()`: conntrack을 비우고
#   카운터를 0으로 만듭니다. `lab.set_proxy(nodeport_addresses=...)`: 다른 `nodePortAddresses`로 kube-proxy를
#   다시 시작합니다. `lab.copy()`: 실험에 쓰는 sim 복사본입니다. `lab.reset()`: 처음 만든 그대로의 스터디 실습
#   환경입니다(셀이 중간에 멈췄거나 직접 실험한 다음에 실행하세요).
# - `kslab.controlplane.node_port_bands(range)`, `controlplane.band_of(port, range)`: NodePort 범위에 대한 API
#   서버의 정적 대역과 동적 대역, 그리고 포트가 어느 대역에 있는지 알려 줍니다.
#   `kslab.Lab(node_port_range="30000-30100")`: API 서버의 `--service-node-port-range`가 다른 실습 환경입니다.
#   `lab.set_node_port_range(...)`: 그 범위로 API 서버를 다시 시작합니다(서비스마다 가진 포트와 대역을 돌려주며,
#   `lab.cluster.warnings`에 API 서버의 경고가 남습니다).
# - `lab.apply(path)`: `kubectl apply -f path`입니다. API 서버가 거부하는 서비스는 API 서버의 메시지와 함께
#   `kslab.AdmissionError`를 일으키고, 아무것도 바꾸지 않습니다.
# - `experiments.ingress_summary(rows)`: (인입 노드, 파드)마다 한 행이며, 연결 수 `n`과 그 노드로 들어온 연결 중의
#   비율 `share`를 담습니다. `charts.ingress_sankey(rows, nodes=..., pods=...)`: 같은 것을 생키(Sankey) 다이어그램으로
#   그립니다. 왼쪽은 인입 노드, 오른쪽은 파드입니다.
# - `views.DistributionPanel`, `views.compute_distribution`(01장), `experiments.claim`,
#   `kslab.check.ch06.<question>(answer, lab)`.
#
# 이 장은 kube-proxy의 **iptables 모드**(`iptables -t nat -S` 규칙, `KUBE-SVC-…`/`KUBE-SEP-…` 체인과 그 카운터)를
# 읽으므로, 실습 환경을 `$KSLAB_PROXY_MODE`와 관계없이 `proxy_mode="iptables"`로 만듭니다. kube-proxy의 nftables
# 모드(05장)에서는 같은 서비스가 `table ip kube-proxy`에 있고(`lab.sh(node, "nft list table ip kube-proxy")`,
# `lab.render(node)`), 연결은 여기서와 같이 동작합니다.

# %%
import base64
import gc
import hashlib
import json
import re
import tempfile
from pathlib import Path

import pandas as pd

import kslab
from kslab import charts, controlplane, experiments
from kslab.views import DistributionPanel, compute_distribution

lab = kslab.Lab(seed=1, proxy_mode="iptables")  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
LIVE = not lab.dataplane.exact  # a live cluster (kind): real randomness and shared counters, so its claims are statistical
print(f"backend: {lab.backend}" + (f" (fell back: {lab.fallback})" if lab.fallback else ""))
svc = lab.cluster.service("svc-nodeport")
NP = svc.ports[0].node_port  # the nodePort the API server allocated
NODES = [n.name for n in lab.cluster.nodes]
CP = NODES[0]  # myk8s-control-plane
W1, W2, W3 = "myk8s-worker", "myk8s-worker2", "myk8s-worker3"
IP = {n.name: n.internal_ip for n in lab.cluster.nodes}  # each node's own address on the docker network
MYPC = lab.client("mypc").ip  # 172.18.0.100, outside the cluster
ECHO = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")  # svc-nodeport's pods
NODE_OF = {p.name: p.node_name for p in lab.cluster.pods}
print(f"svc-nodeport: ClusterIP {svc.cluster_ip}:{svc.ports[0].port}, nodePort {NP} on every node: "
      + ", ".join(f"{n} {IP[n]}" for n in NODES))


def study_order(t, node: str) -> list[str]:
    """The nat chains the first packet went through on ``node``, and its NAT targets (DNAT, MASQUERADE),
    in the order it met them, each once: the study's way of writing a path."""
    seen: list[str] = []
    for s in t.steps:
        if s.node != node or s.table != "nat" or not s.chain:
            continue
        target = re.search(r"-j (DNAT|MASQUERADE)\b", s.rule) if s.event == "rule" else None
        for name in [s.chain] + ([target[1]] if target else []):
            if name not in seen:
                seen.append(name)
    return seen


def nodeport_chains(lab_, node: str) -> tuple[str, str]:
    """The KUBE-EXT-… chain KUBE-NODEPORTS jumps to for svc-nodeport's nodePort on ``node`` (as the
    node's rules hold it), and the KUBE-SVC-… chain of the same Service port (the same hash)."""
    ext = re.search(rf"--dport {NP} -j (KUBE-EXT-\S+)$", lab_.sh(node, "iptables -t nat -S KUBE-NODEPORTS"), re.M)[1]
    return ext, "KUBE-SVC-" + ext.removeprefix("KUBE-EXT-")

# %% [markdown] lang="en"
# ## The Service, as the study lists it
#
# `svc-nodeport` selects the `deploy-echo` pods (an echo server that answers with what it saw of the
# request). Its `PORT(S)` column reads `9000:NODEPORT/TCP`: port 9000 on the ClusterIP, and the
# nodePort on every node. The study leaves `nodePort` out of the manifest, so the API server picked one.

# %% [markdown] lang="ko"
# ## 스터디처럼 서비스 보기
#
# `svc-nodeport`는 `deploy-echo` 파드를 고릅니다(받은 요청에서 본 것을 그대로 돌려주는 에코 서버입니다).
# `PORT(S)` 열은 `9000:NODEPORT/TCP`입니다. 클러스터 IP(ClusterIP)의 9000번 포트와, 모든 노드의 nodePort라는
# 뜻입니다. 스터디의 매니페스트에는 `nodePort`가 없으므로 API 서버가 하나를 골랐습니다.

# %%
listing = lab.sh(CP, "kubectl get svc svc-nodeport -o wide")
print(listing)
static, dynamic = controlplane.node_port_bands((30000, 32767))  # the API server's default --service-node-port-range
print(f"static band {static.start}-{static.stop - 1}, dynamic band {dynamic.start}-{dynamic.stop - 1}")
experiments.claim(
    f"9000:{NP}/TCP" in listing and 30000 <= NP <= 32767 and (LIVE or controlplane.band_of(NP, (30000, 32767)) == "dynamic"),
    f"svc-nodeport: 9000:{NP}/TCP; {NP} is in 30000-32767" + ("" if LIVE else f", in the dynamic band {dynamic.start}-32767"),
    f"kubectl does not show nodePort {NP} in the NodePort range: {listing!r}",
)

# %% [markdown] lang="en"
# The two bands come at the end of the chapter. Now the study's first experiment.
#
# ## Through the control plane too: predict first
#
# `mypc` (172.18.0.100) sits on the nodes' docker network but is not a node. It curls the **control
# plane's** address on the nodePort. No `deploy-echo` pod runs on the control plane
# (`kubectl get pods -o wide`). **Predict:** what does `mypc` get?
#
# - (a) refused: no echo pod runs on the control plane
# - (b) answered by an echo pod on a worker
# - (c) no answer (timeout)

# %% [markdown] lang="ko"
# 두 대역은 이 장의 끝에서 다룹니다. 이제 스터디의 첫 실험입니다.
#
# ## 컨트롤 플레인을 거쳐서도: 먼저 예측하기
#
# `mypc`(172.18.0.100)는 노드와 같은 docker 네트워크에 있지만 노드가 아닙니다. `mypc`가 **컨트롤 플레인의**
# 주소와 nodePort로 `curl`을 보냅니다. 컨트롤 플레인에는 `deploy-echo` 파드가 없습니다(`kubectl get pods -o wide`).
# **예측**해 보세요. `mypc`는 무엇을 받을까요?
#
# - (a) 거부됨: 컨트롤 플레인에는 에코 파드가 없습니다
# - (b) 워커의 에코 파드가 응답합니다
# - (c) 응답이 없습니다(시간 초과)

# %% [markdown] lang="en"
# *Stuck on an exercise?* `kslab.check.hint("ch06.control_plane")` shows its hints one at a time; once you have
# checked an answer of your own and seen every hint, `kslab.check.solution("ch06.control_plane")` shows the solution.
# An exercise's name is its check without `kslab.check.`; `kslab progress` (or the progress page in chapter 00) shows
# how far you are.

# %% [markdown] lang="ko"
# *연습 문제가 막혔나요?* `kslab.check.hint("ch06.control_plane")`는 힌트를 하나씩 보여 줍니다. 직접 답을 한 번 확인하고 힌트를 모두 본 뒤에는
# `kslab.check.solution("ch06.control_plane")`이 풀이를 보여 줍니다. 연습 문제의 이름은 확인 함수에서 `kslab.check.`를 뺀 것입니다. `kslab
# progress`(또는 00장의 진도 페이지)로 어디까지 했는지 볼 수 있습니다.

# %% [markdown] lang="en" hint="ch06.control_plane"
# 1. Which node's kube-proxy writes the KUBE-NODEPORTS rules for svc-nodeport? Does it matter that no echo pod runs
#    on that node?
# 2. The control plane's KUBE-EXT/KUBE-SVC ladder lists all echo endpoints, wherever they run: DNAT to a pod on a
#    worker, and the packet is routed there.

# %% [markdown] lang="ko" hint="ch06.control_plane"
# 1. svc-nodeport의 KUBE-NODEPORTS 규칙은 어느 노드의 kube-proxy가 씁니까? 그 노드에 echo 파드가 없다는 것이 중요합니까?
# 2. 컨트롤 플레인의 KUBE-EXT/KUBE-SVC 사다리는 어디에서 실행되든 모든 echo 엔드포인트를 나열합니다. 워커의 파드로 DNAT하고, 패킷은 그곳으로 라우팅됩니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # "a", "b" or "c"
# EXERCISE-END
answer = "b"
kslab.check.ch06.control_plane(answer, lab)

# %% [markdown] lang="en"
# Now run it. The echo server answers with a JSON document: `os.hostname` is the pod that answered.

# %% [markdown] lang="ko"
# 이제 실행합니다. 에코 서버는 JSON 문서로 응답합니다. `os.hostname`이 응답한 파드입니다.

# %%
print(lab.sh(CP, "kubectl get pods -o wide | grep deploy-echo"))
out = lab.sh("mypc", f"curl -s {IP[CP]}:{NP}")
print(f"$ curl -s {IP[CP]}:{NP}   (on mypc)  -> exit code {out.returncode}")
print(out)
answered = json.loads(out)["os"]["hostname"]
experiments.claim(
    out.returncode == 0 and answered in ECHO and NODE_OF[answered] != CP,
    f"the control plane {IP[CP]}:{NP} answered, by {answered} on {NODE_OF[answered]}: "
    "every node's kube-proxy writes the NodePort rules, whether or not an endpoint runs there",
    f"mypc's curl to the control plane did not reach an echo pod on a worker: exit {out.returncode}",
)

# %% [markdown] lang="en"
# ## Every node answers, and sends anywhere
#
# The study's notes (2.1): "the NodePort listens on every node, control plane included, and
# connections are spread by the rules". First the study's loop, ten `curl`s from `mypc` through each
# node, counted by the pod that answered; then 800 connections through each node's address.
# `ingress_node` is the node the client entered by (인입 노드); `cross_node` is True when the pod
# that answered runs on another node than the one that received the connection (a second hop).

# %% [markdown] lang="ko"
# ## 모든 노드가 응답하고, 어디로든 보냅니다
#
# 스터디 노트(2.1): "노드포트는 마스터를 포함한 모든 노드에 Listen 되고, iptables 규칙에 의해 분산 접속된다."
# 먼저 스터디처럼 `mypc`에서 노드마다 `curl`을 열 번 보내 응답한 파드별로 세고, 그다음 각 노드의 주소로 연결을
# 800개씩 엽니다. `ingress_node`는 클라이언트가 들어온 노드(인입 노드, ingress node)이고, `cross_node`는 응답한
# 파드가 연결을 받은 노드와 다른 노드에서 실행될 때(두 번째 홉) True입니다.

# %%
for node in NODES:  # the study's loop: curl from mypc, keep the line naming the pod, count
    hosts = [lab.sh("mypc", f"curl -s {IP[node]}:{NP} | grep '\"hostname\": \"deploy'").split('"')[3] for _ in range(10)]
    print(f"10 x curl -s {IP[node]}:{NP}  ({node}):", dict(sorted(pd.Series(hosts).value_counts().items())))
runs = pd.concat([lab.run("mypc", f"{node}:{NP}", n=800, seed=10 + i) for i, node in enumerate(NODES)], ignore_index=True)
summary = experiments.ingress_summary(runs)  # one row per (ingress node, pod): n connections, share of the node's
table = summary.pivot(index="ingress_node", columns="endpoint_pod", values="share").reindex(index=NODES, columns=ECHO)
print(table.round(3).to_string())
charts.ingress_sankey(runs, nodes=NODES, pods=ECHO,
                      title=f"mypc -> every node:{NP}: where each node sent its 800 connections ({lab.backend} backend)").show()
worst = float((table.fillna(0) - 1 / 3).abs().max().max())
hops = runs.groupby("ingress_node")["cross_node"].mean()
expected_hops = {n: 1.0 if n == CP else 2 / 3 for n in NODES}  # one echo pod per worker, none on the control plane
band = experiments.noise(1 / 3, 800)  # the kernel draws for real: 5 standard deviations of a share of 800, about 8%
experiments.claim(
    (runs["outcome"] == "ok").all() and set(runs["ingress_node"]) == set(NODES) and worst < band
    and all(abs(hops[n] - expected_hops[n]) < band for n in NODES),
    f"all {len(NODES)} nodes answered every connection; through each node every echo pod got 1/3 ± {band:.0%} "
    f"(largest deviation {worst:.1%}); second hops: {', '.join(f'{n} {hops[n]:.0%}' for n in NODES)} "
    "(2/3 through a worker, all through the control plane)",
    f"the NodePort did not spread evenly from every node: {table.round(3).to_dict()}, cross-node {hops.round(3).to_dict()}",
)

# %% [markdown] lang="en"
# In the Sankey diagram each band is the connections one node (left) sent to one pod (right), its
# width their number (hover for the share). Every node runs the same ladder (chapter 01) over all
# three pods: the node you enter by does not prefer its own pod. Through a worker, 2/3 of the
# connections take a second hop to another node; through the control plane, all of them. Chapter
# 07's `externalTrafficPolicy: Local` changes that.

# %% [markdown] lang="ko"
# 생키 다이어그램의 띠 하나는 노드 하나(왼쪽)가 파드 하나(오른쪽)로 보낸 연결이고, 띠의 폭이 그 수입니다(마우스를
# 올리면 비율이 보입니다). 모든 노드가 세 파드 모두에 대해 같은 사다리(01장)를 실행합니다. 들어온 노드가 자기 파드를
# 더 고르지 않습니다.
# 워커로 들어오면 연결의 2/3이 다른 노드로 두 번째 홉을 하고, 컨트롤 플레인으로 들어오면 모두 그렇습니다.
# 07장의 `externalTrafficPolicy: Local`이 이것을 바꿉니다.

# %% [markdown] lang="en"
# ## The rules, in the study's order
#
# The study (2.4) writes the path as `PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-#(MARK) →
# KUBE-SVC-# → KUBE-SEP-# → KUBE-POSTROUTING(MASQUERADE)`. First the chains themselves, on
# `myk8s-worker`:
#
# - `KUBE-SERVICES` ends with the jump to `KUBE-NODEPORTS` for any destination that is one of the
#   node's own addresses (`-m addrtype --dst-type LOCAL`), after all the ClusterIP rules;
# - `KUBE-NODEPORTS` matches the nodePort and jumps to the Service port's `KUBE-EXT-…` chain (the
#   first rule, for `127.0.0.0/8`, is the localhost case, below);
# - `KUBE-EXT-…` ("external") marks the connection for masquerade (`KUBE-MARK-MASQ`), then jumps to
#   the same `KUBE-SVC-…` ladder a ClusterIP uses;
# - `KUBE-POSTROUTING` masquerades what is marked: a source NAT (SNAT) to the address of the interface
#   the packet leaves by (chapter 03).

# %% [markdown] lang="ko"
# ## 스터디의 순서대로 보는 규칙
#
# 스터디(2.4)는 경로를 `PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-#(MARK) → KUBE-SVC-# →
# KUBE-SEP-# → KUBE-POSTROUTING(MASQUERADE)`로 적습니다. 먼저 `myk8s-worker`에서 체인(chain) 자체를 봅니다.
#
# - `KUBE-SERVICES`는 모든 클러스터 IP 규칙 다음, 마지막에 목적지가 노드 자신의 주소이면
#   (`-m addrtype --dst-type LOCAL`) `KUBE-NODEPORTS`로 점프합니다.
# - `KUBE-NODEPORTS`는 nodePort가 일치하면 서비스 포트의 `KUBE-EXT-…` 체인으로 점프합니다(`127.0.0.0/8`에 대한 첫
#   규칙은 아래에서 다루는 localhost의 경우입니다).
# - `KUBE-EXT-…`("external", 외부)는 연결에 마스커레이드(masquerade) 표시를 하고(`KUBE-MARK-MASQ`), 클러스터 IP가
#   쓰는 것과 같은 `KUBE-SVC-…` 사다리로 점프합니다.
# - `KUBE-POSTROUTING`은 표시된 것을 마스커레이드합니다. 패킷이 나가는 인터페이스의 주소로 출발지를 바꾸는 소스
#   NAT(SNAT)입니다(03장).

# %%
tail = lab.sh(W1, "iptables -t nat -S KUBE-SERVICES | grep NODEPORTS")
nodeports = lab.sh(W1, "iptables -t nat -S KUBE-NODEPORTS")
EXT, SVC_CHAIN = nodeport_chains(lab, W1)  # the chain the --dport NODEPORT rule above jumps to
ext = lab.sh(W1, f"iptables -t nat -S {EXT}")
post = lab.sh(W1, "iptables -t nat -S KUBE-POSTROUTING")
print(tail, nodeports, ext, post, sep="\n")
experiments.claim(
    "--dst-type LOCAL -j KUBE-NODEPORTS" in tail and f"-A {EXT} " in ext
    and ext.index("-j KUBE-MARK-MASQ") < ext.index(f"-j {SVC_CHAIN}") and "-j MASQUERADE" in post,
    f"KUBE-SERVICES -> KUBE-NODEPORTS (dport {NP}) -> {EXT}: KUBE-MARK-MASQ first, then {SVC_CHAIN}; "
    "KUBE-POSTROUTING masquerades the marked",
    "the NodePort chains are not what the text describes",
)

# %% [markdown] lang="en"
# Now one connection from `mypc` through `myk8s-worker`, hook by hook. `study_order(t, node)` (first
# code cell) lists the `nat` chains the first packet went through on that node, with its two NAT
# targets, in the order it met them.

# %% [markdown] lang="ko"
# 이제 `mypc`에서 `myk8s-worker`를 거치는 연결 하나를 훅(hook)마다 따라갑니다. `study_order(t, node)`(첫 코드 셀)는
# 첫 패킷이 그 노드에서 거친 `nat` 체인과 두 NAT 타깃을 만난 순서대로 나열합니다.

# %%
t = lab.trace("mypc", f"{W1}:{NP}")
print(t)
order = study_order(t, W1)
EXT, SVC_CHAIN = nodeport_chains(lab, W1)
print(" -> ".join(order))
expected = ["PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS", EXT, "KUBE-MARK-MASQ", SVC_CHAIN]
experiments.claim(
    order[:6] == expected and order[6].startswith("KUBE-SEP-")
    and order[7:] == ["DNAT", "POSTROUTING", "KUBE-POSTROUTING", "MASQUERADE"]
    and t.masquerade and t.dnat_to.split(":")[0] in {lab.cluster.pod(p).pod_ip for p in ECHO} and t.outcome == "ok",
    "the study's order: " + " -> ".join(order[:7]) + " -> DNAT -> POSTROUTING -> KUBE-POSTROUTING -> MASQUERADE "
    f"(to {t.endpoint_pod})",
    f"the path changed: {order}",
)

# %% [markdown] lang="en"
# **Where the notes are out of date.** The `KUBE-EXT-…` chain the study shows (and notes as "added")
# is the layout since Kubernetes v1.24 (kubernetes/kubernetes PR #109060, "Kube proxy rule reorg
# XLB->EXT"). Before it there was no `KUBE-EXT` chain: the masquerade mark was set from
# `KUBE-NODEPORTS` or `KUBE-SVC-…`, and `externalTrafficPolicy: Local` went through a `KUBE-XLB-…`
# chain. Notes and blog posts about clusters older than v1.24 show `KUBE-XLB`; today's kube-proxy
# writes `KUBE-EXT-…` and, under Local, `KUBE-SVL-…` (chapter 07). The chain names keep the same
# 16-character hash as the Service's `KUBE-SVC-…` chain (chapter 01's formula).

# %% [markdown] lang="ko"
# **스터디 노트가 오래된 부분.** 스터디가 보여 주는(그리고 "추가됨"이라고 적은) `KUBE-EXT-…` 체인은 쿠버네티스
# v1.24부터의 구성입니다(kubernetes/kubernetes PR #109060, "Kube proxy rule reorg XLB->EXT"). 그 전에는 `KUBE-EXT`
# 체인이 없었습니다. 마스커레이드 표시는 `KUBE-NODEPORTS`나 `KUBE-SVC-…`에서 했고, `externalTrafficPolicy: Local`은
# `KUBE-XLB-…` 체인을 거쳤습니다. v1.24보다 오래된 클러스터를 다룬 노트와 블로그 글에는 `KUBE-XLB`가 나오지만, 지금의
# kube-proxy는 `KUBE-EXT-…`를 쓰고, Local에서는 `KUBE-SVL-…`을 씁니다(07장). 체인 이름에는 서비스의 `KUBE-SVC-…`
# 체인과 같은 16글자 해시가 붙습니다(01장의 공식).

# %% [markdown] lang="en"
# The notes (2.1) also say the NodePort "listens" on every node. That too is history: before v1.24
# kube-proxy held each nodePort open with a socket (`ss -tlnp` showed kube-proxy on it) so that no
# other program could take the port; since v1.24 (kubernetes/kubernetes PR #108496, "kube-proxy:
# remove port opener") no process listens on a nodePort. Only the `nat` rules catch the packets, in
# PREROUTING, before any socket could see them. Delete the `KUBE-NODEPORTS` rules by hand and the
# node refuses the connection; kube-proxy's next full sync puts them back. (Hand edits of a live
# node's rules are kube-proxy's business, so on kind this runs on the sim twin.)

# %% [markdown] lang="ko"
# 스터디 노트(2.1)는 NodePort가 모든 노드에 "Listen 된다"고도 적습니다. 이것도 지난 이야기입니다. v1.24 전에는
# kube-proxy가 nodePort마다 소켓을 열어 두어(`ss -tlnp`에 kube-proxy가 보였습니다) 다른 프로그램이 그 포트를 쓰지
# 못하게 했지만, v1.24부터(kubernetes/kubernetes PR #108496, "kube-proxy: remove port opener") nodePort에서 듣는
# 프로세스는 없습니다. 어떤 소켓이 보기도 전에 PREROUTING에서 `nat` 규칙이 패킷을 가로챌 뿐입니다.
# `KUBE-NODEPORTS` 규칙을 손으로 지우면 노드는 연결을 거부하고, kube-proxy의 다음 전체 동기화가 규칙을 되돌려
# 놓습니다. (실제 노드의 규칙을 손으로 고치는 것은 kube-proxy의 일이므로 kind에서는 sim 복제본에서 실행합니다.)

# %%
on = lab.exact("the KUBE-NODEPORTS rules deleted by hand, which a live node's kube-proxy owns")
deleted = on.delete_rules(r"^-A KUBE-NODEPORTS ", nodes=[W1])
without = on.sh("mypc", f"curl -s {IP[W1]}:{NP}")
t_without = on.trace("mypc", f"{W1}:{NP}")
on.resync(full=True, nodes=[W1])  # kube-proxy's full sync: its rules back
again = on.sh("mypc", f"curl -s {IP[W1]}:{NP}")
print(f"deleted {deleted} rules on {W1}; curl -> exit {without.returncode} ({t_without.outcome}: {t_without.reason}); "
      f"after the full sync -> exit {again.returncode}")
experiments.claim(
    deleted >= 1 and without.returncode == 7 and t_without.outcome == "refused" and not t_without.dnat_to
    and again.returncode == 0,
    f"without KUBE-NODEPORTS nothing DNATs the SYN and nothing listens on {IP[W1]}:{NP}: refused (curl exit 7); "
    "the full sync puts the rules back and it answers again",
    f"the node without its NodePort rules did not refuse: exit {without.returncode}, {t_without.outcome}",
)

# %% [markdown] lang="en"
# ## The reply goes back through the ingress node
#
# The study's summary (2.1): "the reply returns through the node the client first entered by". Why
# must it? The pod's node only ever saw the ingress node as the client (MASQUERADE rewrote the
# source). Each node that NATs a connection keeps a **conntrack** entry (연결 추적): the original
# direction first, then the reply direction it expects. Below: `curl` from `mypc` through
# `myk8s-worker3`, until one lands on a pod on another node, then `conntrack -L` on both nodes. The
# cell starts from an empty conntrack table (`clear_kernel_state()`), which a live node shares with
# the whole cluster: on kind it runs on the sim twin (`lab.exact`).

# %% [markdown] lang="ko"
# ## 응답은 들어온 노드를 거쳐 돌아갑니다
#
# 스터디의 요약(2.1): "리턴 트래픽은 최초 인입 노드를 경유해서 외부로 되돌아감". 왜 그래야 할까요? 파드의 노드는
# 클라이언트로 들어온 노드만 봅니다(MASQUERADE가 출발지를 바꿨습니다). 연결을 NAT하는 노드는 저마다
# **conntrack**(연결 추적, connection tracking) 항목을 남깁니다. 원래 방향이 먼저, 그다음에 기다리는 응답 방향이
# 나옵니다. 아래 셀은 `mypc`에서 `myk8s-worker3`를 거쳐, 다른 노드의 파드에 도착할 때까지 `curl`을 보낸 다음,
# 두 노드에서 `conntrack -L`을 읽습니다. 셀은 빈 conntrack 표(`clear_kernel_state()`)에서 시작하는데, 실제 노드의
# 표는 클러스터 전체가 함께 쓰므로 kind에서는 sim 복제본에서 실행합니다(`lab.exact`).

# %%
on = lab.exact("an empty conntrack table, which a live node shares with the whole cluster")
on.clear_kernel_state()
for _ in range(20):  # until a pod on another node answers (a third of the time it is worker3's own)
    echoed = json.loads(on.sh("mypc", f"curl -s {IP[W3]}:{NP}"))
    pod = echoed["os"]["hostname"]
    if NODE_OF[pod] != W3:
        break
pod_ip, pod_node = on.cluster.pod(pod).pod_ip, NODE_OF[pod]
snat_port = echoed["connection"]["remotePort"]  # the source port the pod saw: worker3's, after the SNAT
ingress_ct = on.sh(W3, f"conntrack -L -p tcp -d {IP[W3]} --dport {NP}")
endpoint_ct = on.sh(pod_node, f"conntrack -L -p tcp -d {pod_ip}")
print(f"$ conntrack -L -p tcp -d {IP[W3]} --dport {NP}   (on {W3})", ingress_ct, sep="\n")
print(f"$ conntrack -L -p tcp -d {pod_ip}   (on {pod_node}, where {pod} runs)", endpoint_ct, sep="\n")
# this curl's connection in each node's table, found by the port the pod saw
at_ingress = [line for line in ingress_ct.splitlines()
              if re.search(rf"src={MYPC} dst={IP[W3]} sport=\d+ dport={NP} src={pod_ip} dst={IP[W3]} sport=\d+ dport={snat_port} ", line)]
at_endpoint = [line for line in endpoint_ct.splitlines()
               if re.search(rf"src={IP[W3]} dst={pod_ip} sport={snat_port} dport=\d+ src={pod_ip} dst={IP[W3]} ", line)]
print(f"this curl (the pod saw {IP[W3]}:{snat_port}): {len(at_ingress)} entry on {W3}, {len(at_endpoint)} on {pod_node}")
for _ in range(20):  # one traced connection that also lands on another node, to follow its reply
    t3 = on.trace("mypc", f"{W3}:{NP}")
    if t3.endpoint_node != W3:
        break
if t3.reply_path:  # the simulator follows the reply packet node by node
    reply_ok = t3.reply_path[0] == t3.endpoint_node and t3.reply_path[-1] == W3
    reply_said = f"; a traced connection to {t3.endpoint_pod} shows its reply crossing {' -> '.join(t3.reply_path)}"
else:  # the kernel's trace (netns) follows the first packet only: the conntrack entries are the evidence
    reply_ok = on.backend == "netns"
    reply_said = "; the kernel's trace follows only the first packet, so the reply's way is read from conntrack alone"
experiments.claim(
    pod_node != W3 and len(at_ingress) == 1 and len(at_endpoint) == 1
    and t3.outcome == "ok" and t3.endpoint_node != W3 and reply_ok,
    f"{W3} keeps mypc {MYPC} -> {IP[W3]}:{NP}, expecting the reply from {pod_ip} to its own address {IP[W3]}; "
    f"{pod_node} only knows {IP[W3]} as the client, so the reply goes back to {W3}, which un-NATs it for mypc" + reply_said,
    f"the conntrack entries do not show the SNAT to the ingress node ({len(at_ingress)} entry on {W3}, "
    f"{len(at_endpoint)} on {pod_node}), or the reply did not come back through {W3} ({t3.reply_path})",
)

# %% [markdown] lang="en"
# Read this curl's entry on `myk8s-worker3` (the cell printed both tables). The original direction
# is what `mypc` sent: `src=<mypc> dst=<worker3> dport=<nodePort>`. The reply direction is what the
# node expects back: `src=<pod> dst=<worker3> dport=<the port the pod saw>`, from the pod to the
# node itself. That is the SNAT. The pod answers the address it saw, worker3's; worker3 finds the
# entry, rewrites the reply to `<worker3>:<nodePort> -> <mypc>`, and `mypc` gets an answer from the
# address it called. Without the SNAT the pod would answer `mypc` directly, from its own address, by
# its own node, and `mypc` would drop that reply: it talked to worker3's nodePort, not to the pod.

# %% [markdown] lang="ko"
# 이 `curl`이 `myk8s-worker3`에 남긴 항목을 읽어 봅니다(셀이 두 표를 모두 출력했습니다). 원래 방향은 `mypc`가
# 보낸 것, `src=<mypc> dst=<worker3> dport=<nodePort>`입니다. 응답 방향은 노드가 돌아오기를 기다리는 것,
# `src=<파드> dst=<worker3> dport=<파드가 본 포트>`이며, 곧 파드에서 노드 자신으로 가는 패킷입니다. 이것이
# SNAT입니다. 파드는 자기가 본 주소인 worker3의 주소로 응답하고, worker3는 그 항목을 찾아 응답을
# `<worker3>:<nodePort> -> <mypc>`로 바꾸므로, `mypc`는 자기가 호출한 주소에서 응답을 받습니다. SNAT가 없다면
# 파드는 자기 주소에서, 자기 노드를 거쳐 `mypc`에 곧바로 응답할 것이고, `mypc`는 그 응답을 버립니다. `mypc`가
# 대화한 상대는 worker3의 nodePort이지 파드가 아니기 때문입니다.

# %% [markdown] lang="en"
# ## The client's address is lost
#
# What does the pod itself see? The echo server prints it: `connection.remoteAddress` (and `ip`) is
# the address the connection came from, as the pod saw it. Six curls from `mypc` through
# `myk8s-worker2`:

# %% [markdown] lang="ko"
# ## 클라이언트의 주소는 사라집니다
#
# 파드 자신은 무엇을 볼까요? 에코 서버가 출력해 줍니다. `connection.remoteAddress`(와 `ip`)는 파드가 본, 연결이
# 온 주소입니다. `mypc`에서 `myk8s-worker2`를 거쳐 `curl`을 여섯 번 보냅니다.

# %%
gateway2 = lab.pod_gateway(W2)  # the node side of worker2's pods' veths
answers = [json.loads(lab.sh("mypc", f"curl -s {IP[W2]}:{NP}")) for _ in range(6)]
seen = [(a["os"]["hostname"], a["connection"]["remoteAddress"], a["ip"]) for a in answers]
for host, remote, ip in seen:
    print(f"{host} on {NODE_OF[host]:<14} remoteAddress {remote:<12} ip {ip}")
experiments.claim(
    all(remote != MYPC for _, remote, _ in seen)
    and all(remote == IP[W2] for host, remote, _ in seen if NODE_OF[host] != W2)
    and all(remote == gateway2 or (LIVE and remote == IP[W2]) for host, remote, _ in seen if NODE_OF[host] == W2),
    f"no pod saw mypc ({MYPC}): pods on other nodes saw {W2}'s address {IP[W2]}"
    + (f", {W2}'s own pod saw its node side of the veth ({gateway2})" if any(NODE_OF[h] == W2 for h, _, _ in seen) else ""),
    f"a pod saw another client address than the text says: {seen}",
)

# %% [markdown] lang="en"
# The same over many connections (`source_ip_seen` in `lab.run`'s rows), 300 through every node:

# %% [markdown] lang="ko"
# 같은 것을 많은 연결에 대해, 노드마다 300개씩 확인합니다(`lab.run` 행의 `source_ip_seen`).

# %%
fresh = pd.concat([lab.run("mypc", f"{node}:{NP}", n=300, seed=20 + i) for i, node in enumerate(NODES)], ignore_index=True)
seen_by = fresh.groupby(["ingress_node", "cross_node"])["source_ip_seen"].unique()
print(seen_by.to_string())
experiments.claim(
    (fresh["outcome"] == "ok").all() and (fresh["source_ip_seen"] != MYPC).all()
    and all(set(seen_by[n, True]) == {IP[n]} for n in NODES)
    and all(set(seen_by[n, False]) <= {lab.pod_gateway(n)} | ({IP[n]} if LIVE else set())
            for n in NODES if (n, False) in seen_by.index),
    "in all runs the pod saw the ingress node (its address, or for its own pod the node side of the veth), never mypc",
    f"a pod saw another client address: {seen_by.to_dict()}",
)

# %% [markdown] lang="en"
# ♣ The study's point (2.3): a service that must log who connected (a legal or security requirement
# to collect the original client's IP) cannot do it behind this NodePort: every request arrives
# SNATed to a node's address. Two ways out: `externalTrafficPolicy: Local` (chapter 07: no SNAT,
# but only nodes with a local pod answer), or a proxy in front that passes the client's address in
# the request (`X-Forwarded-For`, the PROXY protocol).
#
# **Exercise (a new case).** `mypc` enters through `myk8s-worker3` and a pod on **myk8s-worker2**
# answers. Which client address does that pod see? Work it out, then check (the check runs the
# connections on a copy of your lab).

# %% [markdown] lang="ko"
# ♣ 스터디가 강조하는 점(2.3): 중요한 서비스는 법적인 보안 요구사항으로 최초 접속자(외부 클라이언트)의 IP를
# 수집해야 하는데, 이 NodePort 뒤에서는 그럴 수 없습니다. 모든 요청이 노드의 주소로 SNAT되어 도착하기
# 때문입니다. 방법은 둘입니다. `externalTrafficPolicy: Local`(07장: SNAT가 없지만 로컬 파드가 있는 노드만
# 응답합니다), 또는 앞단의 프록시가 요청 안에 클라이언트 주소를 실어 보내는 것(`X-Forwarded-For`, PROXY
# 프로토콜)입니다.
#
# **연습 문제(새로운 경우).** `mypc`가 `myk8s-worker3`로 들어오고 **myk8s-worker2**의 파드가 응답합니다. 그 파드는
# 어떤 클라이언트 주소를 볼까요? 추론한 다음 확인하세요(확인은 실습 환경의 복사본에서 연결을 엽니다).

# %% [markdown] lang="en" hint="ch06.seen_ip"
# 1. Under externalTrafficPolicy: Cluster, the node that receives mypc's connection (myk8s-worker3) DNATs it and
#    marks it for masquerade.
# 2. The packet leaves myk8s-worker3 towards myk8s-worker2 by its node interface, eth0; MASQUERADE takes that
#    interface's address (`IP["myk8s-worker3"]`). Which node's address does the pod see?

# %% [markdown] lang="ko" hint="ch06.seen_ip"
# 1. externalTrafficPolicy: Cluster에서는 mypc의 연결을 받은 노드(myk8s-worker3)가 DNAT하고 마스커레이드 표시를 합니다.
# 2. 패킷은 노드 인터페이스 eth0를 통해 myk8s-worker3에서 myk8s-worker2로 나갑니다. MASQUERADE는 그 인터페이스의 주소(`IP["myk8s-worker3"]`)를 씁니다.
#    파드는 어느 노드의 주소를 봅니까?

# %% tags=["solution"]
# EXERCISE-START
answer = None  # an IP address, e.g. "172.18.0.100"
# EXERCISE-END
answer = IP["myk8s-worker3"]  # MASQUERADE on the node that DNATed (worker3), out of its eth0 towards worker2
kslab.check.ch06.seen_ip(answer, lab)

# %% [markdown] lang="en"
# ## NodePort on a node's localhost
#
# The notes (2.1): "every local IP of the node can be used, loopback included". A process on a node
# can reach a NodePort on `127.0.0.1`. That needs two things kube-proxy sets up:
#
# - the sysctl `net.ipv4.conf.all.route_localnet=1`: without it the kernel refuses to route a packet
#   whose source or destination is in 127.0.0.0/8 off the loopback interface (here: DNATed to a pod);
# - a `KUBE-NODEPORTS` rule for `-d 127.0.0.0/8`, with `-m nfacct --nfacct-name localhost_nps_accepted_pkts`
#   (the study's 2.4 note): an **nfacct** counter, a named packet and byte counter in the kernel
#   (`nfacct list` prints them all, `nfacct get NAME` one), so an operator can see whether anyone
#   still uses localhost NodePorts.
#
# Three curls from `myk8s-worker` to its own `127.0.0.1`, the counters before and after. The rule's
# counters and conntrack are exact only where kslab owns the node: on kind this runs on the sim twin.

# %% [markdown] lang="ko"
# ## 노드의 localhost에서 NodePort 쓰기
#
# 스터디 노트(2.1): "Node의 모든 Local IP(loopback 포함) 사용 가능". 노드의 프로세스는 `127.0.0.1`에서도 NodePort에
# 접속할 수 있습니다. 이를 위해 kube-proxy가 두 가지를 설정합니다.
#
# - sysctl `net.ipv4.conf.all.route_localnet=1`: 이것이 없으면 커널은 출발지나 목적지가 127.0.0.0/8인 패킷을
#   루프백 인터페이스 밖으로(여기서는 파드로 DNAT된 패킷을) 라우팅하지 않습니다.
# - `-d 127.0.0.0/8`에 대한 `KUBE-NODEPORTS` 규칙. 여기에 `-m nfacct --nfacct-name localhost_nps_accepted_pkts`가
#   붙습니다(스터디 2.4의 메모). **nfacct**는 커널 안에 이름 붙인 패킷·바이트 카운터이며(`nfacct list`는 전부,
#   `nfacct get NAME`은 하나를 출력합니다),
#   운영자는 이것으로 아직 localhost NodePort를 쓰는 곳이 있는지 알 수 있습니다.
#
# `myk8s-worker`에서 자기 `127.0.0.1`로 `curl`을 세 번 보내고, 전후의 카운터를 읽습니다. 규칙의 카운터와
# conntrack은 kslab이 노드를 관리하는 곳에서만 정확하므로, kind에서는 sim 복제본에서 실행합니다.

# %%
on = lab.exact("rule counters and conntrack entries of this cell's connections only, which a live node shares")
print(f"$ cat /proc/sys/net/ipv4/conf/all/route_localnet   (on {W1})\n{on.sh(W1, 'cat /proc/sys/net/ipv4/conf/all/route_localnet')}")
print(on.sh(W1, "iptables -t nat -S KUBE-NODEPORTS | grep 127.0.0.0"))


def localhost_counters(lab_) -> tuple[int, int, int]:
    """(packets, bytes) of the nfacct object localhost_nps_accepted_pkts, and the packet counter of the
    KUBE-NODEPORTS rule that counts into it (the 127.0.0.0/8 rule)."""
    nfacct = lab_.sh(W1, "nfacct get localhost_nps_accepted_pkts")
    pkts, nbytes = (int(x) for x in re.search(r"pkts = (\d+), bytes = (\d+)", nfacct).groups())
    listing = lab_.sh(W1, "iptables -t nat -L KUBE-NODEPORTS -n -v -x")
    return pkts, nbytes, sum(int(line.split()[0]) for line in listing.splitlines() if "localhost_nps_accepted_pkts" in line)


on.clear_kernel_state()
print(on.sh(W1, "nfacct list"))
before = localhost_counters(on)
curls = [on.sh(W1, f"curl -s 127.0.0.1:{NP}") for _ in range(3)]
after = localhost_counters(on)
print(on.sh(W1, "nfacct get localhost_nps_accepted_pkts"))
print(f"3 x curl -s 127.0.0.1:{NP}: exit codes {[c.returncode for c in curls]}, answered by "
      f"{[json.loads(c)['os']['hostname'] for c in curls]}")
print(on.sh(W1, f"conntrack -L -p tcp -d 127.0.0.1 --dport {NP}"))
grew = [a - b for a, b in zip(after, before)]
experiments.claim(
    all(c.returncode == 0 for c in curls) and grew[0] == grew[2] == 3 and grew[1] > 0
    and on.sh(W1, "cat /proc/sys/net/ipv4/conf/all/route_localnet").strip() == "1",
    f"127.0.0.1:{NP} on {W1} answered 3 times; localhost_nps_accepted_pkts grew by exactly 3 packets ({grew[1]} bytes): "
    "one per connection, its first packet (the nat table sees no other), as did the rule's own counter; route_localnet = 1",
    f"the localhost NodePort did not behave as described: exits {[c.returncode for c in curls]}, counters grew by {grew}",
)

# %% [markdown] lang="en"
# Opening `127.0.0.0/8` to routing opens a hole: with `route_localnet=1`, a machine on the node's
# network could send a packet to `127.0.0.1` on the node's `eth0`, and the node would accept it
# for a service listening only on localhost (kubernetes issue #90259). So kube-proxy also writes, in
# the `filter` table, the rule **"block incoming localnet connections"**: a new connection to
# 127.0.0.0/8 whose source is **not** 127.0.0.0/8 is dropped, unless it was DNATed (a NodePort).
# A local `curl` to 127.0.0.1 has source 127.0.0.1, so it passes.

# %% [markdown] lang="ko"
# `127.0.0.0/8`을 라우팅에 열면 구멍이 생깁니다. `route_localnet=1`이면 노드 네트워크의 다른 머신이 노드의 `eth0`으로
# `127.0.0.1`행 패킷을 보낼 수 있고, 노드는 localhost에서만 듣는 서비스에 그 패킷을 받아들입니다(쿠버네티스
# 이슈 #90259). 그래서 kube-proxy는 `filter` 테이블에 **"block incoming localnet connections"** 규칙도 씁니다.
# 목적지가 127.0.0.0/8인데 출발지가 127.0.0.0/8이 **아닌** 새 연결은, DNAT된 것(NodePort)이 아니면 버립니다.
# 노드 안에서 127.0.0.1로 보내는 `curl`은 출발지가 127.0.0.1이므로 통과합니다.

# %%
guard = lab.sh(W1, "iptables -S KUBE-FIREWALL")
jumps = lab.sh(W1, "iptables -S | grep -- '-j KUBE-FIREWALL'")
print(guard, jumps, sep="\n")
experiments.claim(
    re.search(r"! -s 127\.0\.0\.0/8 -d 127\.0\.0\.0/8 .*block incoming localnet connections.*"
              r"! --ctstate RELATED,ESTABLISHED,DNAT -j DROP", guard) is not None
    and all(re.search(rf"^-A {hook} (.* )?-j KUBE-FIREWALL$", jumps, re.M) for hook in ("INPUT", "OUTPUT")),
    "KUBE-FIREWALL drops new connections to 127.0.0.0/8 from outside 127.0.0.0/8 unless DNATed; INPUT and OUTPUT jump to it",
    "the localnet guard is not what the text describes",
)

# %% [markdown] lang="en"
# ## Restricting the addresses: `nodePortAddresses`
#
# The notes (2.1): "and the local IPs can be specified". kube-proxy's `nodePortAddresses` (flag
# `--nodeport-addresses`) lists the CIDRs whose node addresses accept NodePorts. With
# `172.18.0.0/16`, only the node's docker-network address does: the tail of `KUBE-SERVICES` jumps
# to `KUBE-NODEPORTS` for that address only, and since the list holds no loopback address,
# kube-proxy turns localhost NodePorts off (no 127.0.0.0/8 rule, no nfacct counter).
# `lab.set_proxy(...)` restarts kube-proxy on every node with the new setting: on kind that is the
# cluster's own kube-proxy, so the cell runs on the sim twin. The cell puts the default back at the end.

# %% [markdown] lang="ko"
# ## 주소 제한하기: `nodePortAddresses`
#
# 스터디 노트(2.1): "Local IP를 지정 가능". kube-proxy의 `nodePortAddresses`(플래그 `--nodeport-addresses`)는
# NodePort를 받을 노드 주소의 CIDR 목록입니다. `172.18.0.0/16`이면 노드의 docker 네트워크 주소만 받습니다.
# `KUBE-SERVICES`의 마지막 규칙은 그 주소일 때만 `KUBE-NODEPORTS`로 점프하고, 목록에 루프백 주소가 없으므로
# kube-proxy는 localhost NodePort를 끕니다(127.0.0.0/8 규칙도, nfacct 카운터도 없습니다). `lab.set_proxy(...)`는
# 모든 노드의 kube-proxy를 새 설정으로 다시 시작합니다. kind에서는 클러스터 자신의 kube-proxy이므로 이 셀은 sim
# 복제본에서 실행합니다. 셀은 끝에서 기본값으로 되돌립니다.

# %%
on = lab.exact("kube-proxy restarted with another nodePortAddresses, which on a live cluster is its own kube-proxy's config")
on.set_proxy(nodeport_addresses=("172.18.0.0/16",))
try:
    tail = on.sh(W1, "iptables -t nat -S KUBE-SERVICES | grep NODEPORTS")
    nodeports = on.sh(W1, "iptables -t nat -S KUBE-NODEPORTS")
    local = on.sh(W1, f"curl -s 127.0.0.1:{NP}")
    outside = on.sh("mypc", f"curl -s {IP[W1]}:{NP}")
    print(tail, nodeports, sep="\n")
    print(f"curl -s 127.0.0.1:{NP} (on {W1}) -> exit {local.returncode}; curl -s {IP[W1]}:{NP} (on mypc) -> exit {outside.returncode}")
finally:
    on.set_proxy(nodeport_addresses=())  # back to kube-proxy's default: every local address
experiments.claim(
    f"-d {IP[W1]}/32 " in tail and "--dst-type LOCAL" not in tail and "127.0.0.0/8" not in nodeports
    and local.returncode == 7 and outside.returncode == 0
    and "--dst-type LOCAL -j KUBE-NODEPORTS" in on.sh(W1, "iptables -t nat -S KUBE-SERVICES | grep NODEPORTS"),
    f"with nodePortAddresses 172.18.0.0/16 only {IP[W1]}:{NP} answers; 127.0.0.1:{NP} is refused (curl exit 7: "
    "nothing DNATs it and nothing listens there) and the localhost rule is gone; the default is back",
    f"nodePortAddresses did not restrict the NodePort as described (127.0.0.1: exit {local.returncode}, "
    f"node IP: exit {outside.returncode})",
)

# %% [markdown] lang="en"
# ## Which ports: 30000-32767, in two bands
#
# The API server allocates nodePorts from its flag `--service-node-port-range` (default
# `30000-32767`). Since Kubernetes v1.28 (KEP-3668; beta and on by default, GA in v1.29) the range is
# split in two **bands**: a small **static** band at the bottom, `min(max(16, size/32), 128)` ports
# (86 of the default 2768: 30000-30085), and the **dynamic** rest. A Service without a `nodePort`
# gets a random free port from the dynamic band first (the static band only when the dynamic one is
# full), so a port you pick yourself in the static band is unlikely to be taken already
# (`controlplane.band_of(port, range)` says which band a port is in).
#
# A port outside the range is refused at admission, in the API server's words. The cell below
# applies a copy of `svc-nodeport` asking for `nodePort: 40000`, on a copy of the lab (`lab.copy()`,
# always sim: your lab, and a live cluster, are not changed; the refused change changes nothing).

# %% [markdown] lang="ko"
# ## 어떤 포트인가: 30000-32767, 두 대역
#
# API 서버는 플래그 `--service-node-port-range`(기본값 `30000-32767`)에서 nodePort를 할당합니다. 쿠버네티스
# v1.28부터(KEP-3668, 베타이면서 기본으로 켜짐, v1.29에서 GA) 이 범위는 두 **대역**(band)으로 나뉩니다. 아래쪽의
# 작은 **정적**(static) 대역은 `min(max(16, 크기/32), 128)`개 포트(기본 범위 2768개 중 86개: 30000-30085)이고,
# 나머지가 **동적**(dynamic) 대역입니다. `nodePort`를 적지 않은 서비스는 먼저 동적 대역의 비어 있는 포트 중 하나를
# 무작위로 받고(동적 대역이 가득 찼을 때만 정적 대역), 그래서 정적 대역에서 직접 고른 포트는 이미 쓰이고 있을
# 가능성이 낮습니다(`controlplane.band_of(port, range)`가 포트가 어느 대역에 있는지 알려 줍니다).
#
# 범위 밖의 포트는 승인(admission) 단계에서 API 서버의 문구 그대로 거부됩니다. 아래 셀은 `nodePort: 40000`을
# 요청하는 `svc-nodeport`를 실습 환경의 복사본(`lab.copy()`, 언제나 sim: 여러분의 실습 환경과 실제 클러스터는
# 바뀌지 않고, 거부된 변경은 아무것도 바꾸지 않습니다)에 적용합니다.

# %%
manifest = f"""apiVersion: v1
kind: Service
metadata:
  name: svc-nodeport
spec:
  type: NodePort
  selector: {{app: deploy-websrv}}
  ports:
  - {{name: svc-webport, port: 9000, targetPort: 8080, nodePort: 40000}}
"""
twin = lab.copy()
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "svc-nodeport-40000.yaml"
    path.write_text(manifest)
    try:
        twin.apply(path)
        refused = ""
    except kslab.AdmissionError as err:  # the API server's admission refuses it (kubectl prints this line)
        refused = str(err)
print(refused)
API_SERVER = ('The Service "svc-nodeport" is invalid: spec.ports[0].nodePort: Invalid value: 40000: '
              "provided port is not in the valid range. The range of valid ports is 30000-32767")
experiments.claim(
    refused == API_SERVER and twin.cluster.service("svc-nodeport").ports[0].node_port == NP,
    f"nodePort 40000 is refused with the API server's own error; svc-nodeport keeps {NP}",
    f"a nodePort outside the range was not refused as the API server words it: {refused!r}",
)

# %% [markdown] lang="en"
# The study's other step (2.1): **changing** the range. It is the API server's flag, so it takes a
# restart of the API server (on kind, the `kubeadmConfigPatches` of the cluster's config before
# `kind create cluster`; kslab does not change a live API server). Two things follow, shown below on
# sim labs: a new lab made with `--service-node-port-range=30000-30100` allocates from that range's
# dynamic band; and an existing lab whose range is narrowed **keeps** its ports: the API server's
# repair controller only warns (`PortOutOfRange`) and never moves a Service's port.

# %% [markdown] lang="ko"
# 스터디의 다른 단계(2.1): 범위 **바꾸기**. 이것은 API 서버의 플래그이므로 API 서버를 다시 시작해야 합니다(kind에서는
# `kind create cluster` 전에 클러스터 설정의 `kubeadmConfigPatches`로 바꾸며, kslab은 실제 API 서버를 바꾸지
# 않습니다). 그 결과 두 가지가 일어나며, 아래에서 sim 실습 환경으로 보입니다. `--service-node-port-range=30000-30100`으로
# 만든 새 실습 환경은 그 범위의 동적 대역에서 할당합니다. 그리고 이미 있는 실습 환경의 범위를 좁히면 포트는 **그대로**
# 남습니다. API 서버의 복구 컨트롤러(repair controller)는 경고(`PortOutOfRange`)만 남기고 서비스의 포트를 옮기지
# 않습니다.

# %%
narrow = kslab.Lab(backend="sim", node_port_range="30000-30100")  # a new API server with a 101-port range
small_static, small_dynamic = controlplane.node_port_bands((30000, 30100))
allocated = narrow.cluster.service("svc-nodeport").ports[0].node_port
print(f"30000-30100: static {small_static.start}-{small_static.stop - 1}, dynamic {small_dynamic.start}-{small_dynamic.stop - 1}; "
      f"svc-nodeport got {allocated} ({controlplane.band_of(allocated, (30000, 30100))} band)")
narrowed = lab.copy()
uses = narrowed.set_node_port_range("30000-30100")  # the same API server, restarted with the narrower range
print(uses)
print(*narrowed.cluster.warnings, sep="\n")
experiments.claim(
    (small_static.start, small_static.stop - 1, small_dynamic.start) == (30000, 30015, 30016)
    and controlplane.band_of(allocated, (30000, 30100)) == "dynamic"
    and narrowed.cluster.service("svc-nodeport").ports[0].node_port == NP
    and any(u.port == NP and u.band == "outside" for u in uses),
    f"with 30000-30100 the static band is the minimum 16 ports (30000-30015) and svc-nodeport got {allocated}, "
    f"from the dynamic band; narrowing a running cluster's range leaves it {NP}, outside the range, with a warning",
    f"the node port range did not behave as described: got {allocated}, uses {uses}",
)

# %% [markdown] lang="en"
# **Exercise.** A cluster runs with `--service-node-port-range=30000-30999`. Which ports form its
# static band? Answer `[first, last]`.

# %% [markdown] lang="ko"
# **연습 문제.** 어떤 클러스터가 `--service-node-port-range=30000-30999`로 실행됩니다. 정적 대역은 어떤
# 포트입니까? `[처음, 마지막]`으로 답하세요.

# %% [markdown] lang="en" hint="ch06.bands"
# 1. The static band has min(max(16, size // 32), 128) ports, where size is the number of ports in the range, and it
#    starts at the range's first port.
# 2. 30000-30999 holds 1000 ports: compute 1000 // 32, apply the bounds, and give `[first, last]` with last = first +
#    ports - 1 (`controlplane.node_port_bands((30000, 30999))` confirms).

# %% [markdown] lang="ko" hint="ch06.bands"
# 1. 정적 대역의 포트 수는 min(max(16, size // 32), 128)이고, size는 범위에 든 포트 수입니다. 정적 대역은 범위의 첫 포트에서 시작합니다.
# 2. 30000-30999에는 포트가 1000개 있습니다. 1000 // 32를 계산하고 범위를 적용한 뒤 `[first, last]`로 답하세요(last = first + 포트 수 - 1).
#    `controlplane.node_port_bands((30000, 30999))`로 확인할 수 있습니다.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. [30000, 30010]
# EXERCISE-END
static, _ = controlplane.node_port_bands((30000, 30999))  # 1000 ports: min(max(16, 1000 // 32), 128) = 31
answer = [static.start, static.stop - 1]
kslab.check.ch06.bands(answer)

# %% [markdown] lang="en"
# ## Explore: where connections land through one node
#
# Chapter 01's panel, with a new entry point: 3000 connections from `mypc` through
# `myk8s-worker`'s nodePort. Move **replicas**: the node still spreads evenly over all the pods,
# wherever they run. Scaling is a rollout on a live cluster, so on kind the panel runs on the sim twin.

# %% [markdown] lang="ko"
# ## 탐색: 노드 하나로 들어온 연결이 도착하는 곳
#
# 01장의 패널에 새 진입점을 줍니다. `mypc`에서 `myk8s-worker`의 nodePort로 연결 3000개를 엽니다. **replicas**를
# 움직여 보세요. 노드는 파드가 어디에서 실행되든 모든 파드에 고르게 나눕니다. 실제 클러스터에서 스케일은
# 롤아웃이므로, kind에서는 패널이 sim 복제본에서 실행됩니다.

# %%
panel = DistributionPanel(lab.exact("deploy-echo scaled at every slider move, which on a live cluster is a rollout each time"),
                          src="mypc", to=f"{W1}:{NP}", replicas=3, connections=3000)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown] lang="en"
# The claim below runs its own experiment (not the panel's current state): 6 replicas through
# `myk8s-worker`. Then `lab.reset()` puts the study's lab back (3 replicas, the same names).

# %% [markdown] lang="ko"
# 아래의 확인은 패널의 현재 상태가 아니라 자기 실험을 실행합니다. `myk8s-worker`를 거쳐 레플리카 6개입니다.
# 그다음 `lab.reset()`이 스터디의 실습 환경(레플리카 3개, 같은 이름)으로 되돌립니다.

# %%
r = compute_distribution(lab.exact("deploy-echo scaled to 6 replicas and back, which on a live cluster is two rollouts"),
                         replicas=6, connections=3000, src="mypc", to=f"{W1}:{NP}", seed=3)
experiments.claim(abs(r.shares - 1 / 6).max() < 0.04 and (r.df["source_ip_seen"] != MYPC).all(),
                  f"through {W1}, 6 replicas each got 1/6 ± 4% ({r.shares.min():.1%}-{r.shares.max():.1%}), none saw mypc",
                  f"uneven split with 6 replicas: {dict(r.shares.round(3))}")
lab.reset()
experiments.claim(sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo") == ECHO,
                  "lab.reset(): deploy-echo is back to its 3 pods", "lab.reset() did not bring the 3 pods back")

# %% [markdown] lang="en"
# ## Exercise: a new NodePort Service
#
# Suppose `svc-clusterip` (chapter 01) is changed to `type: NodePort`. Which chain marks `mypc`'s
# connections to its nodePort for masquerade (the chain whose rule jumps to `KUBE-MARK-MASQ`)? Work
# it out from chapter 01's formula without changing your lab; the check makes the change on a copy.

# %% [markdown] lang="ko"
# ## 연습 문제: 새 NodePort 서비스
#
# `svc-clusterip`(01장)를 `type: NodePort`로 바꾼다고 합시다. `mypc`가 그 nodePort로 여는 연결에 마스커레이드
# 표시를 하는 체인(규칙이 `KUBE-MARK-MASQ`로 점프하는 체인)은 무엇입니까? 실습 환경을 바꾸지 말고 01장의 공식으로
# 계산하세요. 확인은 복사본에서 서비스를 바꿔 봅니다.

# %% [markdown] lang="en" hint="ch06.masq_chain"
# 1. For a connection to a nodePort, KUBE-NODEPORTS jumps to the Service's KUBE-EXT-… chain, and under
#    externalTrafficPolicy: Cluster that chain's first rule marks the connection for masquerade.
# 2. The KUBE-EXT chain name uses the same hash as KUBE-SVC (chapter 01): `"KUBE-EXT-" +
#    base32(sha256(b"default/svc-clusterip:svc-webporttcp"))[:16]`.

# %% [markdown] lang="ko" hint="ch06.masq_chain"
# 1. nodePort로 온 연결에 대해 KUBE-NODEPORTS는 서비스의 KUBE-EXT-… 체인으로 점프하고, externalTrafficPolicy: Cluster에서는 그 체인의 첫 규칙이 연결에
#    마스커레이드 표시를 합니다.
# 2. KUBE-EXT 체인 이름은 KUBE-SVC와 같은 해시를 씁니다(01장): `"KUBE-EXT-" +
#    base32(sha256(b"default/svc-clusterip:svc-webporttcp"))[:16]`.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # a chain name
# EXERCISE-END
answer = "KUBE-EXT-" + base64.b32encode(hashlib.sha256(b"default/svc-clusterip:svc-webporttcp").digest()).decode()[:16]
kslab.check.ch06.masq_chain(answer, lab)

# %% [markdown] lang="en"
# ## On the real kernel, or a live cluster
#
# With `KSLAB_BACKEND=netns` (root) every cell ran against real namespaces: `mypc` is a namespace on
# the same bridge as the nodes, `curl` is the real curl, the echo pods are real HTTP servers, the
# conntrack entries and counters are the kernel's. `kubectl` is kslab's own emulation of the lab's
# objects on both sim and netns.
#
# With `KSLAB_BACKEND=kind` the listing, the curls from `mypc`, the runs through every node, the
# rules and the trace read the live cluster (its own kube-proxy's rules); the cells that need an
# empty conntrack table, exact counters, another kube-proxy configuration or scaling ran on a sim
# twin and said so, and the port-range cell always runs on a sim copy. When the cluster could not
# be used, the first cell printed why and everything ran on sim.

# %% [markdown] lang="ko"
# ## 실제 커널이나 실제 클러스터에서
#
# `KSLAB_BACKEND=netns`(root)로 실행하면 모든 셀이 실제 네임스페이스에서 실행됩니다. `mypc`는 노드와 같은 브리지에
# 있는 네임스페이스이고, `curl`은 진짜 curl, 에코 파드는 진짜 HTTP 서버이며, conntrack 항목과 카운터는 커널의
# 것입니다. `kubectl`은 sim과 netns 모두에서 kslab이 실습 환경의 오브젝트로 흉내 낸 것입니다.
#
# `KSLAB_BACKEND=kind`로 실행하면 서비스 목록, `mypc`의 `curl`, 모든 노드를 거친 실행, 규칙과 추적은 실제
# 클러스터(그 자신의 kube-proxy가 쓴 규칙)를 읽습니다. 빈 conntrack 표, 정확한 카운터, 다른 kube-proxy 설정,
# 스케일이 필요한 셀은 sim 복제본에서 실행되고 그렇다고 알려 주며, 포트 범위 셀은 언제나 sim 복사본에서 실행됩니다.
# 클러스터를 쓸 수 없으면 첫 셀이 그 이유를 출력했고, 모든 셀은 sim에서 실행된 것입니다.

# %%
print(f"this chapter ran on the {lab.backend} backend" + (f"; it fell back: {lab.fallback}" if lab.fallback else ""))

# %% [markdown] lang="en"
# ## Summary (요약)
#
# - A NodePort Service (NodePort 서비스) opens the same port (30000-32767; allocated from the dynamic
#   band unless you pick one) on every node's addresses, control plane included:
#   `KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-… (KUBE-MARK-MASQ) → KUBE-SVC-… → KUBE-SEP-… (DNAT)`,
#   then `KUBE-POSTROUTING (MASQUERADE)`.
#   Any node sends to any pod (a second hop 2/3 of the time from a worker).
# - The masquerade (마스커레이드) is what makes the reply come back through the ingress node
#   (`conntrack -L` there shows the reply expected from the pod to the node), and what hides the
#   client IP (클라이언트 IP) from the pod: it sees the ingress node.
# - `127.0.0.1:NODEPORT` works on a node (route_localnet, counted by `localhost_nps_accepted_pkts`,
#   guarded by "block incoming localnet connections"); `nodePortAddresses` restricts the addresses.
#
# Next: chapter 07 keeps the client's address with `externalTrafficPolicy: Local` (외부 트래픽 정책),
# and puts a load balancer with health checks in front of the nodes.

# %% [markdown] lang="ko"
# ## 요약 (Summary)
#
# - NodePort 서비스는 컨트롤 플레인을 포함한 모든 노드의 주소에 같은 포트(30000-32767, 직접 고르지 않으면 동적
#   대역에서 할당)를 엽니다: `KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT-… (KUBE-MARK-MASQ) → KUBE-SVC-… →
#   KUBE-SEP-… (DNAT)`, 그다음 `KUBE-POSTROUTING (MASQUERADE)`. 어느 노드든 어느 파드로든 보냅니다(워커로 들어오면
#   2/3은 두 번째 홉).
# - 마스커레이드(masquerade) 때문에 응답이 들어온 노드를 거쳐 돌아오고(그 노드의 `conntrack -L`에는 파드에서 노드로
#   오는 응답이 기다리고 있습니다), 또 그 때문에 파드는 클라이언트 IP(client IP)를 보지 못하고 들어온 노드를 봅니다.
# - 노드에서는 `127.0.0.1:NODEPORT`도 동작합니다(route_localnet, `localhost_nps_accepted_pkts`로 셈,
#   "block incoming localnet connections"로 보호). `nodePortAddresses`는 주소를 제한합니다.
#
# 다음 장: 07장에서는 `externalTrafficPolicy: Local`(외부 트래픽 정책)로 클라이언트 주소를 지키고, 헬스 체크를 하는
# 로드 밸런서를 노드 앞에 둡니다.
