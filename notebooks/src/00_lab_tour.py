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
# # 00 · Lab tour (실습 환경 둘러보기)
#
# The study builds a kind cluster `myk8s` (1 control plane, 3 workers) and a few pods and
# Services. This chapter shows that lab as kslab holds it. You will be able to:
#
# 1. name the nodes, pods and Services of the lab and their addresses;
# 2. pick a backend (`sim`, `netns`, `kind`) and see which ones work on your machine;
# 3. read a trace: hooks, chains, matched rules, NAT, verdict.

# %%
import subprocess
import sys

import kslab
from kslab import charts, experiments

lab = kslab.Lab(seed=1)
print(f"backend: {lab.backend}")
charts.topology_figure(lab.cluster).show()

# %% [markdown]
# Nodes sit on kind's "docker network" 172.18.0.0/16 (the control plane is .2, the workers .3-.5);
# `mypc` (172.18.0.100) is a machine outside the cluster on the same network. Each node owns a
# /24 of the pod network 10.10.0.0/16 (파드 네트워크), and Services get addresses from
# 10.200.1.0/24 (서비스 네트워크), which exist only in kube-proxy's rules.

# %%
for n in lab.cluster.nodes:
    pods = [f"{p.name} {p.pod_ip}" for p in lab.cluster.pods if p.node_name == n.name]
    print(f"{n.name:<22} {n.internal_ip:<12} podCIDR {n.pod_cidr:<14} {', '.join(pods)}")
for s in lab.cluster.services:
    print(f"service {s.name:<14} {s.type:<10} {s.cluster_ip}:{s.ports[0].port}" + (f" nodePort {s.ports[0].node_port}" if s.ports[0].node_port else ""))
experiments.claim(
    len(lab.cluster.nodes) == 4 and {lab.cluster.pod(f"webpod{i}").node_name for i in (1, 2, 3)} == {"myk8s-worker", "myk8s-worker2", "myk8s-worker3"},
    "4 nodes; webpod1..3 one per worker, as in the study",
    "the lab no longer matches the study's layout",
)

# %% [markdown]
# ## Three backends, one notebook
#
# | backend | what runs the rules |
# |---|---|
# | `sim` | kslab's interpreter of the very rules kube-proxy writes (runs anywhere) |
# | `netns` | the Linux kernel: one network namespace per node and pod, real TCP (root) |
# | `kind` | a live kind cluster, through the kubernetes client |
#
# Set `KSLAB_BACKEND` before starting Jupyter (`KSLAB_BACKEND=netns kslab lab`); `kslab doctor`
# says which backends this machine can run:

# %%
print(subprocess.run([sys.executable, "-m", "kslab.cli", "doctor"], capture_output=True, text=True).stdout)

# %% [markdown]
# ## Reading a trace
#
# A trace follows one new connection. `[node HOOK]` headers are netfilter hooks on that node;
# `nat KUBE-SERVICES #3: …` is the third rule of that chain, which matched; `->` is a jump;
# `*` lines show the packet before and after a NAT; the last lines give the verdict, the pod that
# answered and the source address it saw.

# %%
t = lab.trace("net-pod", "svc-clusterip")
print(t)
experiments.claim(t.outcome == "ok" and t.endpoint_pod.startswith("webpod"),
                  f"net-pod reached {t.endpoint_pod} through svc-clusterip", f"the connection failed: {t.reason}")

# %% [markdown]
# ## Exercises
#
# **1.** How many nodes carry kube-proxy rules for `svc-clusterip`? (Hint: `lab.render(node)`.)

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = sum(any(p.info.name.name == "svc-clusterip" for p in lab.render(n.name).service_ports) for n in lab.cluster.nodes)
kslab.check.ch00.nodes_with_rules(answer, lab)

# %% [markdown]
# **2.** Which node's `PREROUTING` do `net-pod`'s packets enter first?

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = lab.trace("net-pod", "svc-clusterip").path[0]
kslab.check.ch00.client_node(answer, lab)

# %% [markdown]
# ## Summary (요약)
#
# - The lab: 4 nodes (노드), pods (파드) with addresses from their node's podCIDR, Services
#   (서비스) with virtual IPs that exist only in kube-proxy's iptables rules.
# - One notebook, three backends: `sim` everywhere, `netns` with root, `kind` with a cluster.
# - A trace shows every hook, chain and rule a connection meets.
#
# Next: chapter 01 reads the ClusterIP rules line by line.
