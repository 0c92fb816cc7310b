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
# # 02 · sessionAffinity: ClientIP (세션 어피니티)
#
# Study notes 1.6: with `sessionAffinity: ClientIP` a client keeps reaching the same pod. You will
# be able to:
#
# 1. show what the setting changes in kube-proxy's rules (`-m recent --rcheck` / `--set`);
# 2. measure stickiness per client, with and without affinity;
# 3. predict when a client may move (`timeoutSeconds`, on the simulated clock);
# 4. explain why clients behind one NAT all stick to one pod.

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

# %% [markdown]
# The SVC chain now starts with one `--rcheck` rule per endpoint: "if this source address is in
# the list `KUBE-SEP-X` and was seen in the last 30 s, go to `KUBE-SEP-X`". Only a client not
# seen recently falls through to the usual probability ladder. Each SEP chain's DNAT rule carries
# `-m recent --set`, which records (or refreshes) the client's address in its list. xt_recent
# keeps the lists in the kernel of **each node**, up to 100 addresses each.

# %% [markdown]
# ## Predict, then run
#
# Eight clients each open 10 connections. Without affinity, how many different webpods will a
# client reach? With it?

# %%
lab.patch_service("svc-clusterip", session_affinity="None", session_affinity_timeout=None)
clients = [f"10.10.1.{100 + i}" for i in range(8)]
lab.reset()
free = lab.run(clients, "svc-clusterip", n=80, seed=1)
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=30)
lab.reset()
sticky = lab.run(clients, "svc-clusterip", n=80, seed=1, interval=0.01)
charts.stickiness_figure(free, title="sessionAffinity None: 8 clients x 10 connections").show()
charts.stickiness_figure(sticky, title="sessionAffinity ClientIP: 8 clients x 10 connections").show()
s_free, s_sticky = experiments.stickiness(free), experiments.stickiness(sticky)
experiments.claim((s_sticky["endpoints"] == 1).all() and s_free["endpoints"].mean() > 2,
                  f"with ClientIP every client stayed on one pod; without, a client reached {s_free['endpoints'].mean():.1f} pods on average",
                  f"stickiness did not change as taught: {s_sticky['endpoints'].to_dict()}")

# %% [markdown]
# ## Expiry on the simulated clock
#
# `timeoutSeconds: 30`. A client that stays silent for longer is a stranger again. The sim's clock
# moves only when told (`lab.advance(seconds)`), so the experiment is exact and instant. The
# kernel's clock (netns backend) runs in real time: there `lab.advance` really waits, so the
# window is shortened to 3 s.

# %%
window = 30 if lab.backend == "sim" else 3
tries = 30 if lab.backend == "sim" else 10
lab.patch_service("svc-clusterip", session_affinity="ClientIP", session_affinity_timeout=window)
lab.reset()
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

# %% [markdown]
# ## Explore
#
# Toggle affinity and change the number of clients.

# %%
import gc

from kslab.views import AffinityPanel

panel = AffinityPanel(lab, clients=8)
gc.freeze()  # keeps the sliders responsive: Python's collector stops rescanning everything loaded so far
panel

# %% [markdown]
# ## Exercises
#
# **1.** Which iptables match implements ClientIP affinity?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = "recent"
kslab.check.ch02.affinity_match(answer)

# %% [markdown]
# **2.** `timeoutSeconds: 30`. A client connects at t = 0 s and again at t = 45 s. May the second
# connection land on another pod? (`True`/`False`)

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = True
kslab.check.ch02.may_move(answer)

# %% [markdown]
# **3.** Twenty users sit behind one NAT (all their packets come from `mypc`'s address) and use
# `svc-nodeport` with ClientIP affinity. How many different pods do they reach?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
np = lab.cluster.service("svc-nodeport").ports[0].node_port
lab.patch_service("svc-nodeport", session_affinity="ClientIP", session_affinity_timeout=10800)
lab.reset()
answer = lab.run("mypc", f"myk8s-worker:{np}", n=20, seed=3)["endpoint_pod"].nunique()
kslab.check.ch02.behind_nat(answer, lab)

# %% [markdown]
# ## Summary (요약)
#
# - `sessionAffinity: ClientIP` (세션 어피니티) adds `-m recent --rcheck --seconds T --reap` rules
#   before the ladder and `-m recent --set` to each DNAT rule.
# - Stickiness is per source address and per node, and lasts `timeoutSeconds` (default 10800 s)
#   after the client's last new connection.
# - Behind a NAT every user has the same address: all of them stick to one pod.
#
# Next: chapter 03, a pod that reaches itself through its own Service (hairpin NAT).
