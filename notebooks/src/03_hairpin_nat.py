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
# # 03 · Hairpin NAT (헤어핀 NAT)
#
# Study notes 1.7: a pod behind a Service calls that Service, and the ladder picks the pod
# itself. How can that connection work? You will be able to:
#
# 1. find the hairpin rule in every `KUBE-SEP` chain and say what it does;
# 2. trace a pod reaching itself: DNAT, then masquerade to the node side of its veth;
# 3. explain why the connection fails without the rule (the reply never meets conntrack);
# 4. relate this to the bridge's `hairpin_mode` / promiscuous mode.

# %%
import kslab
from kslab import experiments

lab = kslab.Lab(seed=3)
print(f"backend: {lab.backend}")
web1 = lab.cluster.pod("webpod1")
for line in lab.render(web1.node_name).save_text().splitlines():
    if line.startswith("-A KUBE-SEP-") and web1.pod_ip in line:
        print(line)

# %% [markdown]
# The first rule of webpod1's SEP chain, `-s 10.10.1.x/32 -j KUBE-MARK-MASQ`, matches only when
# the **source is the endpoint itself**: the hairpin case. It marks the packet; `KUBE-POSTROUTING`
# then masquerades it.

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

# %% [markdown]
# ## The trace of one hairpin connection

# %%
lab.reseed(4)
for k in range(50):
    t = lab.trace("webpod1", "svc-clusterip")
    if t.endpoint_pod == "webpod1":
        break
print(t)

# %% [markdown]
# ## Without the rule
#
# Delete the hairpin rules by hand on every node (`iptables -t nat -D`, what `lab.delete_rules`
# does, in the kernel too on the netns backend) and try again. **Predict** first: which
# connections fail, and why?

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

# %% [markdown]
# kube-proxy does not notice: a partial sync rewrites only the chains of Services that changed.
# The rules come back with the next **full** sync (at start-up, hourly, or after a failed sync).

# %%
lab.resync(full=False)
still = lab.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
lab.resync(full=True)
lab.flush_conntrack()  # the failed connections' conntrack entries would keep their old NAT (see below)
repaired = lab.run("webpod1", "svc-clusterip", n=60, seed=5, timeout=0.2)
experiments.claim((still["outcome"] != "ok").any() and (repaired["outcome"] == "ok").all(),
                  "a partial sync leaves the hand edit in place; the full sync puts the hairpin rules back",
                  "partial/full sync did not behave as taught")

# %% [markdown]
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

# %% [markdown]
# ## Exercises
#
# **1.** Which source address does webpod1 see when it reaches itself through `svc-clusterip`?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.pod_gateway(web1.node_name)
kslab.check.ch03.hairpin_source(answer, lab)

# %% [markdown]
# **2.** Without the hairpin rule, what share of webpod1's connections to `svc-clusterip` fail?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = 1 / 3
kslab.check.ch03.hairpin_failures(answer, lab)

# %% [markdown]
# ## Summary (요약)
#
# - Every SEP chain starts with `-s <pod IP> -j KUBE-MARK-MASQ`: hairpin NAT (헤어핀 NAT).
# - It masquerades a pod's connection to itself, so the reply goes back through the node's
#   conntrack and is un-DNATed.
# - Without it, exactly the self-connections (1/n of them) fail.
#
# Next: chapter 04, what ClusterIP cannot do.
