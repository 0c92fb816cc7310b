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
# # 01 · ClusterIP and kube-proxy's iptables chains (클러스터IP와 kube-proxy의 iptables 체인)
#
# Study notes: section 1 (ClusterIP basics). In this chapter you will be able to:
#
# 1. read the rules kube-proxy writes for a ClusterIP Service (서비스), chain by chain;
# 2. follow one connection from `net-pod` through `KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT`;
# 3. derive why the probabilities are 1/3, 1/2 and then nothing (the "ladder");
# 4. check with 10,000 connections that every endpoint (엔드포인트) gets the same share.

# %%
import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=1)  # backend from KSLAB_BACKEND (sim by default); the study's lab from data/myk8s
print(f"backend: {lab.backend}; nodes: {', '.join(n.name for n in lab.cluster.nodes)}")
svc = lab.cluster.service("svc-clusterip")
print(f"svc-clusterip: ClusterIP {svc.cluster_ip}, port {svc.ports[0].port} -> targetPort {svc.ports[0].target_port}")

# %% [markdown]
# ## The rules, as kube-proxy writes them
#
# Every node's kube-proxy writes the same rules for `svc-clusterip`. Here they are for the control
# plane, where `net-pod` runs, in the form `iptables-save` prints them.

# %%
rules = lab.render("myk8s-control-plane")
info = next(p for p in rules.service_ports if p.info.name_string == "default/svc-clusterip:svc-webport")
chains = [info.info.svc_chain] + [e.chain for e in info.categorized.cluster]
for line in rules.save_text().splitlines():
    if "svc-clusterip" in line or any(f"-A {c} " in line for c in chains):
        print(line)

# %% [markdown]
# Read them top down:
#
# - `KUBE-SERVICES` matches the ClusterIP and port (`-d 10.200.1.x/32 --dport 9000`) and jumps to
#   the Service's chain `KUBE-SVC-KBDEBIL6IU6WL7RF` (SHA-256 of `default/svc-clusterip:svc-webporttcp`);
# - the SVC chain's first rule marks connections from **outside** the pod network
#   (`! -s 10.10.0.0/16`) for masquerade (마스커레이드);
# - then one rule per endpoint, each with `-m statistic --mode random --probability p`, the last
#   without; each jumps to a `KUBE-SEP-…` chain;
# - a SEP chain DNATs (목적지 NAT) to one pod's `IP:80`, after its hairpin rule (chapter 03).

# %% [markdown]
# ## One connection, hook by hook

# %%
t = lab.trace("net-pod", "svc-clusterip")
print(t)
experiments.claim(
    t.chains[:2] == ["KUBE-SERVICES", "KUBE-SVC-KBDEBIL6IU6WL7RF"] and t.chains[2].startswith("KUBE-SEP-")
    and t.dnat_to.endswith(":80") and not t.masquerade and t.outcome == "ok",
    f"net-pod -> svc-clusterip: KUBE-SERVICES -> KUBE-SVC-KBDEBIL6IU6WL7RF -> {t.chains[2]} -> DNAT {t.dnat_to}, no masquerade",
    f"the trace changed: chains {t.chains[:3]}, DNAT {t.dnat_to}, masquerade {t.masquerade}, outcome {t.outcome}",
)

# %% [markdown]
# ## Why 1/3, then 1/2, then nothing: the ladder
#
# Rules are tried in order. Rule 1 sees every new connection and keeps 1/3 of them. Rule 2 sees
# the remaining 2/3 and must keep another 1/3 of the *total*: (1/3) / (2/3) = 1/2. Rule 3 sees
# the last 1/3 and takes it all. In general rule *i* of *n* (from 0) matches with 1/(n−i).
#
# **Predict** before you run the next cell: out of 10,000 connections from `net-pod`, how many
# reach each webpod? And would the answer change if the rules said 1/3, 1/3, 1/3?

# %%
df = lab.run("net-pod", "svc-clusterip", n=10_000, seed=1)
webpods = ["webpod1", "webpod2", "webpod3"]
charts.distribution_figure(df, categories=webpods).show()
chi2, p = experiments.chi_square_uniform(df, categories=webpods)
print(f"chi-square vs uniform: {chi2:.2f}, p = {p:.3f}")
experiments.claim_uniform(df, webpods, tolerance=0.02)

# %% [markdown]
# A p-value above 0.01 means the counts are what a fair three-way split produces by chance. (With
# 1/3, 1/3, 1/3 the first pod would get 1/3, the second 2/9, the third 4/9.)

# %% [markdown]
# ## Explore: replicas and connections
#
# `deploy-echo` (behind `svc-nodeport`) can be scaled. Move the **replicas** slider: kube-proxy
# re-renders every node's rules with a new ladder, and the chart redraws. Try 1 (no statistic
# rule at all), 2, 7 and 10; then lower **connections** to 300 and watch the noise grow.

# %%
import gc

from kslab.views import DistributionPanel

panel = DistributionPanel(lab, replicas=3, connections=3000)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %%
r = panel.result
experiments.claim(abs(r.shares - 1 / r.replicas).max() < 0.05,
                  f"with {r.replicas} replicas every pod got 1/{r.replicas} ± 5%",
                  f"uneven split with {r.replicas} replicas: {dict(r.shares.round(3))}")

# %% [markdown]
# ## Exercises
#
# **1.** With 4 endpoints, which probabilities does kube-proxy write on the first three rules?
# Give a list of three numbers.

# %% tags=["solution"]
# EXERCISE-START
answer = None  # e.g. [0.5, 0.5, 0.5]
# EXERCISE-END
answer = [1 / 4, 1 / 3, 1 / 2]
kslab.check.ch01.ladder(answer)

# %% [markdown]
# **2.** What is the name of the `KUBE-SVC-…` chain of `svc-nodeport` (port name `svc-webport`)?
# Compute it; then find it in `lab.render("myk8s-worker").restore_text()`.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
from kslab.proxy.iptables.chains import chain_hash

answer = "KUBE-SVC-" + chain_hash("default/svc-nodeport:svc-webport" + "tcp")
kslab.check.ch01.chain_name(answer)

# %% [markdown]
# **3.** A process on the node `myk8s-worker` itself (not a pod) connects to `svc-clusterip`.
# Is the connection masqueraded? Answer `True` or `False`, then confirm with `lab.trace`.

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.trace("myk8s-worker", "svc-clusterip").masquerade
kslab.check.ch01.node_masquerade(answer, lab)

# %% [markdown]
# ## On the real kernel
#
# With `KSLAB_BACKEND=netns` (root) the same cells run against real namespaces and real TCP;
# otherwise they ran on the simulator above, which executes the same rules.

# %%
print(f"this chapter ran on the {lab.backend} backend")

# %% [markdown]
# ## Summary (요약)
#
# - A ClusterIP (클러스터IP) exists only in rules: `KUBE-SERVICES` matches it and jumps to the
#   Service's `KUBE-SVC` chain; a `KUBE-SEP` chain per endpoint DNATs to the pod.
# - The probability ladder 1/n, 1/(n−1), …, 1/2, (none) gives every endpoint 1/n: random load
#   balancing (랜덤 부하분산), no health checks, no other algorithm (chapter 04).
# - Pod-to-Service traffic keeps its source; only sources outside `--cluster-cidr` are marked for
#   masquerade.
#
# Next: chapter 02 pins a client to one endpoint with `sessionAffinity: ClientIP` (세션 어피니티).
