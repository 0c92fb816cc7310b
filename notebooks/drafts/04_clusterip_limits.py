# DRAFT (not built into the workbook yet): chapter 04 needs kslab.ipvs (the IPVS schedulers), which is not in the tree yet.
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
# Study notes 1.8 list four limits. You will be able to show each one:
#
# 1. no access from outside the cluster (외부 접속 불가) → NodePort (chapter 05);
# 2. no health checks (헬스체크 없음): a broken pod keeps its share → readiness probes (chapter 08);
# 3. random only (랜덤 분산만): iptables vs IPVS schedulers, side by side;
# 4. cross-node hops (다른 노드로의 홉): the ladder ignores where pods run.

# %%
import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=4)
print(f"backend: {lab.backend}")

# %% [markdown]
# ## 1. No access from outside
#
# `mypc` is on the same network as the nodes. **Predict**: can it reach `svc-clusterip`?

# %%
t = lab.trace("mypc", "svc-clusterip")
print(t)
experiments.claim(t.outcome != "ok" and t.endpoint_pod == "",
                  f"mypc cannot reach the ClusterIP: {t.reason}", "mypc reached a ClusterIP: the lesson is wrong")

# %% [markdown]
# ## 2. No health checks
#
# webpod2's app breaks (it still accepts TCP, but answers HTTP 500). kube-proxy does not look at
# pods, only at EndpointSlices, and the pod has no readiness probe, so nothing changes there.

# %%
lab.break_pod("webpod2")
before = lab.run("net-pod", "svc-clusterip", n=3000, seed=1)
lab.set_ready("webpod2", False)  # what a failing readiness probe would do
after = lab.run("net-pod", "svc-clusterip", n=3000, seed=1)
lab.set_ready("webpod2", True)
lab.break_pod("webpod2", False)
import plotly.graph_objects as go

rates = [float((d["outcome"] == "error").mean()) for d in (before, after)]
go.Figure(go.Bar(x=["no readiness probe", "readiness probe failing"], y=rates, text=[f"{r:.1%}" for r in rates]),
          layout=dict(title=f"Error rate with webpod2 broken ({lab.backend} backend)", yaxis_tickformat=".0%",
                      yaxis_title="connections answered with errors", template="plotly_white", height=340)).show()
experiments.claim(abs(rates[0] - 1 / 3) < 0.03 and rates[1] == 0,
                  f"without a probe {rates[0]:.1%} of connections hit the broken pod; once it is unready, none",
                  f"error rates {rates} differ from the lesson")

# %% [markdown]
# ## 3. Random only: iptables vs IPVS
#
# iptables mode has one algorithm: each new connection independently picks an endpoint with
# probability 1/n. IPVS mode (`--proxy-mode ipvs`) offers schedulers; here they run side by side
# on the same 3 servers, 12 clients and 3,000 connections that last a few seconds each.

# %%
from kslab import ipvs

servers = lambda: [ipvs.RealServer(name=f"webpod{i}", ip=f"10.10.{i}.2", weight=w) for i, w in ((1, 1), (2, 1), (3, 2))]
clients = [f"10.10.0.{10 + i}" for i in range(12)]
rows = []
for name in ["iptables", "rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh"]:
    df = ipvs.simulate(name, servers(), clients, 3000, seed=1, duration=2.0)
    spread = ipvs.spread(df)
    rows.append({"scheduler": name, **{k: round(float(v), 3) for k, v in spread.items()},
                 "endpoints per client": float(ipvs.per_client_endpoints(df).mean()),
                 "active-count variance": round(float(ipvs.active_variance(df)), 2)})
import pandas as pd

table = pd.DataFrame(rows).set_index("scheduler")
table

# %%
experiments.claim(table.loc["sh", "endpoints per client"] == 1 and table.loc["iptables", "endpoints per client"] > 2
                  and abs(table.loc["wrr", "webpod3"] - 0.5) < 0.02,
                  "sh pins each client to one server, iptables spreads every client over all three, wrr gives webpod3 (weight 2) half",
                  f"the scheduler comparison changed:\n{table}")

# %% [markdown]
# Read the table: `rr`/`wrr` rotate deterministically (weights respected), `lc`/`wlc`/`sed`/`nq`
# look at active connections and flatten the load (lower variance), `sh`/`dh`/`mh` hash an
# address so a client keeps its server. iptables' random choice ignores weights and load.

# %% [markdown]
# ## 4. Cross-node hops
#
# The ladder does not know where pods run. A client on `myk8s-worker` reaches a local pod only
# with probability (local pods)/(replicas); every other connection crosses to another node.

# %%
from kslab.views import CrossNodePanel

panel = CrossNodePanel(lab, max_replicas=8)
panel

# %%
worst = max(abs(r["observed"] - r["expected"]) for r in panel.rows)
experiments.claim(worst < 0.05, f"the cross-node share follows 1 − local/replicas within {worst:.1%}",
                  f"cross-node share deviates by {worst:.1%}")

# %% [markdown]
# ## Exercises
#
# **1.** One of three webpods is broken and has no readiness probe. What share of connections fail?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 1 / 3
kslab.check.ch04.error_rate(answer, lab)

# %% [markdown]
# **2.** Which IPVS scheduler always sends a client to the same server (by its address)?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "sh"
kslab.check.ch04.sticky_scheduler(answer)

# %% [markdown]
# **3.** With 6 `deploy-echo` replicas, what share of webpod1's connections to `svc-nodeport`
# leave its node?

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
# - A ClusterIP is reachable only where kube-proxy's rules run: inside the nodes (NodePort next).
# - kube-proxy balances over EndpointSlices, not over healthy apps: use readiness probes.
# - iptables mode is random only; IPVS offers rr, wrr, lc, wlc, sh, dh, sed, nq, mh.
# - Random choice ignores topology: most connections cross nodes (topology-aware routing later).
