# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · What ClusterIP cannot do (서비스(ClusterIP)의 부족한 점)
#
# Study notes 1.8 list four limits of a ClusterIP Service. By the end you will be able to show
# each one with a measurement:
#
# 1. **no access from outside** the cluster (외부 접속 불가): a trace from `mypc` → NodePort (chapter 05);
# 2. **no health checks** (헬스체크 없음): a broken pod keeps its share → readiness probes (chapter 08);
# 3. **random only** (랜덤 분산만): iptables' ladder vs the IPVS schedulers (rr, wrr, lc, wlc, sh, dh,
#    sed, nq, mh), side by side;
# 4. **cross-node hops** (다른 노드로의 홉): the ladder ignores where pods run → topology aware
#    routing (chapter 09).

# %%
import pandas as pd
import plotly.graph_objects as go

import kslab
from kslab import experiments, ipvs

lab = kslab.Lab(seed=4)
print(f"backend: {lab.backend}")

# %% [markdown]
# ## 1. No access from outside (외부 접속 불가)
#
# `mypc` sits on the same "docker network" as the nodes (172.18.0.0/16), but it is not a node:
# no kube-proxy runs there, and nothing routes 10.200.1.0/24 (the Service CIDR) anywhere.
# **Predict** before running: does `mypc` reach `svc-clusterip`? Which rules does its SYN meet?

# %%
t = lab.trace("mypc", "svc-clusterip")
print(t)
experiments.claim(t.outcome != "ok" and not t.endpoint_pod and not t.dnat_to,
                  f"mypc cannot reach the ClusterIP ({t.outcome}): no kube-proxy rule ever sees its packet",
                  "mypc reached a ClusterIP: the lesson is wrong")

# %% [markdown]
# The same Service from a pod works, because the pod's node runs kube-proxy's rules. A ClusterIP
# is a *virtual* address that exists only inside the nodes' netfilter tables: that is the gap a
# NodePort Service fills (it opens a port on every node's own address).

# %% [markdown]
# ## 2. No health checks (헬스체크 없음)
#
# webpod2's app breaks: the process still accepts TCP connections, but answers HTTP 500.
# kube-proxy never looks at pods, only at EndpointSlices; without a readiness probe, nothing
# changes there. **Predict** the error rate with one of three pods broken, then with a failing
# readiness probe (the pod becomes *not ready* in the EndpointSlice).

# %%
lab.break_pod("webpod2")
before = lab.run("net-pod", "svc-clusterip", n=3000, seed=1)
lab.set_ready("webpod2", False)  # what the kubelet does when a readiness probe fails
after = lab.run("net-pod", "svc-clusterip", n=3000, seed=1)
lab.set_ready("webpod2", True)
lab.break_pod("webpod2", False)

rates = [float((d["outcome"] == "error").mean()) for d in (before, after)]
go.Figure(go.Bar(x=["no readiness probe", "readiness probe failing"], y=rates, text=[f"{r:.1%}" for r in rates],
                 marker_color=["#d62728", "#2ca02c"]),
          layout=dict(title=f"Error rate with webpod2 broken ({lab.backend} backend)", yaxis_tickformat=".0%",
                      yaxis_title="connections answered with HTTP 500", template="plotly_white", height=340)).show()
experiments.claim(abs(rates[0] - 1 / 3) < 0.03 and rates[1] == 0,
                  f"without a probe {rates[0]:.1%} of connections hit the broken pod; once it is unready, none do",
                  f"error rates {rates} differ from the lesson")

# %% [markdown]
# ## 3. Random only (랜덤 분산만): iptables vs IPVS
#
# iptables mode has one algorithm: each **new connection** independently picks an endpoint with
# probability 1/n (the ladder of chapter 01). IPVS mode (`kube-proxy --proxy-mode ipvs
# --ipvs-scheduler NAME`) hands the choice to a kernel scheduler. `kslab.ipvs` re-implements
# each scheduler from the Linux sources (`net/netfilter/ipvs/ip_vs_*.c`). Here they all get the
# same workload: 3 real servers (webpod3 with weight 2: IPVS can weigh servers, iptables
# cannot), 12 clients, 3,000 connections arriving at 2 per second and lasting 2 s on average.
#
# **Predict**: which schedulers give each client a single server? Which one gives webpod3 half?

# %%
servers = [ipvs.RealServer(name=f"webpod{i}", ip=f"10.10.{i}.2", weight=w) for i, w in ((1, 1), (2, 1), (3, 2))]
clients = [f"10.10.0.{10 + i}" for i in range(12)]
table = ipvs.compare(servers, clients, 3000, seed=1)
table

# %%
experiments.claim(
    table.loc["sh", "endpoints per client"] == 1 and table.loc["mh", "endpoints per client"] == 1
    and table.loc["iptables", "endpoints per client"] > 2 and abs(table.loc["wrr", "webpod3"] - 0.5) < 0.02
    and abs(table.loc["iptables", "webpod3"] - 1 / 3) < 0.03
    and max(table.loc[s, "active-count variance"] for s in ("lc", "wlc")) < table.loc["iptables", "active-count variance"],
    "sh/mh pin each client to one server, iptables spreads every client over all three and ignores the weight, "
    "wrr gives webpod3 (weight 2) half, lc/wlc keep the open connections more even than random",
    f"the scheduler comparison changed:\n{table}")

# %% [markdown]
# Read the table:
#
# - `rr` / `wrr` rotate deterministically (wrr respects weights: webpod3 gets 2 of every 4);
# - `lc`, `wlc`, `sed`, `nq` look at the **active connections** of each server and send the new
#   one to the least loaded (weighted for wlc/sed/nq): lower variance of open connections;
# - `sh`, `dh`, `mh` **hash an address** (source for sh/mh, destination for dh): a client keeps its
#   server, which is how IPVS offers stickiness without `recent`; dh sends everything for one VIP
#   to one server;
# - iptables' random choice ignores weights and load: over many connections it is even, but at
#   any moment one server may hold more open connections than another.
#
# Explore one scheduler at a time: the heatmap shows which server each client reached. Raise the
# load to see how the "active-count variance" of the weighted schedulers grows (they load
# webpod3 twice as much on purpose).

# %%
import gc

from kslab.views import SchedulerPanel

scheduler_panel = SchedulerPanel(scheduler="sh")
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
scheduler_panel

# %%
experiments.claim(all(sum(1 for v in row if v) == 1 for row in scheduler_panel.figure.data[0].z),
                  "in the heatmap every client row has exactly one server under sh",
                  "sh sent a client to two servers")

# %% [markdown]
# ## 4. Cross-node hops (다른 노드로의 홉)
#
# The ladder does not know where pods run. A client on node *N* reaches a pod on its own node only
# with probability (pods on N)/(replicas); every other connection crosses to another node (one
# more hop, another node's bandwidth). **Predict** the cross-node share for webpod1 as
# `deploy-echo` grows from 1 to 8 replicas.

# %%
from kslab.views import CrossNodePanel

panel = CrossNodePanel(lab, max_replicas=8)
panel

# %%
worst = max(abs(r["observed"] - r["expected"]) for r in panel.rows)
experiments.claim(worst < 0.05, f"the cross-node share follows 1 − local/replicas within {worst:.1%}",
                  f"cross-node share deviates by {worst:.1%}")

# %% [markdown]
# ## Exercises (연습 문제)
#
# **1.** One of three webpods is broken and has no readiness probe. What share of connections
# fail? (Answer with a number between 0 and 1.)

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 1 / 3
kslab.check.ch04.error_rate(answer, lab)

# %% [markdown]
# **2.** Which IPVS scheduler sends a client to the same server every time because it hashes the
# client's address with a 256-bucket table?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "sh"
kslab.check.ch04.sticky_scheduler(answer)

# %% [markdown]
# **3.** With 6 `deploy-echo` replicas, what share of webpod1's connections to `svc-nodeport`
# leave its node? Count the pods on webpod1's node.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
lab.scale("deploy-echo", 6)
local = sum(p.node_name == lab.cluster.pod("webpod1").node_name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
answer = 1 - local / 6
kslab.check.ch04.cross_node(answer, lab=lab)

# %% [markdown]
# ## Summary (요약)
#
# - A ClusterIP is reachable only where kube-proxy's rules run: inside the nodes. From outside,
#   use a NodePort (next chapter) or a LoadBalancer.
# - kube-proxy balances over EndpointSlices, not over healthy apps: add readiness probes
#   (chapter 08) so a broken pod leaves the slice.
# - iptables mode is random only (ignores weights and load); IPVS offers rr, wrr, lc, wlc, sh,
#   dh, sed, nq and mh.
# - Random choice ignores topology: most connections cross nodes (topology aware routing,
#   chapter 09, and `trafficDistribution`).
#
# Key terms: 외부 접속 (external access), 헬스체크 (health check), 준비성 프로브 (readiness probe),
# 스케줄러 (scheduler), 가중치 (weight), 노드 간 홉 (cross-node hop).
