"""Plotly figures built from experiment DataFrames (and cluster state): pure functions.

Every figure is titled with what it shows and the backend that produced it; the same pod keeps
the same colour across a chapter (:func:`pod_colors`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import pandas as pd
import plotly.graph_objects as go

from .model import ClusterState

if TYPE_CHECKING:
    from .loadbalancer import LBState
    from .views import AffinityResult, TopologyResult, TrafficPolicyResult

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]


def pod_colors(pods: Sequence[str]) -> dict[str, str]:
    """A stable colour per pod name (sorted order), so charts of one chapter agree."""
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(sorted(pods))}


def short_pod_names(pods: Sequence[str]) -> tuple[list[str], str]:
    """Bar labels for pod names: a Deployment's pods share ``<deployment>-<pod-template-hash>-``,
    which says nothing about which pod is which, so it is shown once (returned as the prefix)
    and each pod is labelled by what follows it. Names without such a common prefix (webpod1,
    webpod2, ...) come back unchanged with an empty prefix."""
    names = list(pods)
    if not names:
        return [], ""
    common = names[0]
    for n in names[1:]:
        i = 0
        while i < min(len(common), len(n)) and common[i] == n[i]:
            i += 1
        common = common[:i]
    prefix = common[: common.rfind("-") + 1] if "-" in common else ""
    if not prefix or any(len(n) == len(prefix) for n in names):
        return names, ""
    return [n[len(prefix):] for n in names], prefix


def distribution_data(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None) -> dict:
    """What the distribution chart shows: categories (``x``, full names) and their bar labels
    (``labels``: a Deployment's shared name prefix shown once, in ``axis_title``), shares, the
    text over each bar, colours, the uniform share and axis top."""
    ok = df[df["outcome"] == "ok"]
    counts = ok[by].value_counts()
    cats = list(categories) if categories is not None else sorted(counts.index)
    counts = counts.reindex(cats, fill_value=0)
    total = int(counts.sum())
    shares = (counts / total if total else counts.astype(float)).to_list()
    colors = pod_colors(cats)
    labels, prefix = short_pod_names(cats) if by == "endpoint_pod" else ([str(c) for c in cats], "")
    axis = by.replace("_", " ")
    return {
        "x": cats, "labels": labels, "prefix": prefix,
        "axis_title": f"{axis} ({prefix}…)" if prefix else axis,
        "y": shares, "colors": [colors[c] for c in cats],
        "text": [f"{s:.1%}<br>({n})" for s, n in zip(shares, counts.to_list())],
        "uniform": 1 / len(cats) if cats else None,
        "uniform_label": f"uniform<br>1/{len(cats)}" if cats else "",
        "ymax": max(0.5, max(shares) * 1.3 if total else 0.5),
        "backend": df["backend"].iloc[0] if len(df) else "sim",
    }


# The uniform share's label sits in the right margin, beside the dotted line and outside the plot
# area, so it never lands on a bar's count label (which sits just above a bar, near that line).
DISTRIBUTION_MARGIN = dict(l=60, r=90, t=60, b=60)


def uniform_marks(d: dict) -> tuple[list[dict], list[dict]]:
    """The dotted uniform line across the plot and its label in the right margin (layout shapes, annotations)."""
    if d["uniform"] is None:
        return [], []
    line = dict(type="line", xref="paper", x0=0, x1=1, y0=d["uniform"], y1=d["uniform"], line=dict(dash="dot", color="#444"))
    label = dict(xref="paper", x=1.01, xanchor="left", y=d["uniform"], yanchor="middle", showarrow=False, align="left",
                 text=d["uniform_label"], font=dict(size=11, color="#444"))
    return [line], [label]


def distribution_figure(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None,
                        title: str | None = None) -> go.Figure:
    """Bar chart: share of successful connections per ``by`` value, with the uniform share marked."""
    d = distribution_data(df, by, categories)
    shapes, annotations = uniform_marks(d)
    fig = go.Figure(go.Bar(
        x=d["labels"], y=d["y"], customdata=d["x"], marker_color=d["colors"], text=d["text"], textposition="outside",
        cliponaxis=False, hovertemplate="%{customdata}: %{y:.2%}<extra></extra>",
    ))
    fig.update_layout(
        title=title or f"Where {len(df)} connections landed ({d['backend']} backend)",
        xaxis_title=d["axis_title"], yaxis_title="share of connections", yaxis_tickformat=".0%",
        yaxis_range=[0, d["ymax"]], template="plotly_white", height=380, margin=DISTRIBUTION_MARGIN,
        shapes=shapes, annotations=annotations,
    )
    return fig


def _topology_label(pod) -> str:
    """A pod's label in the topology: :func:`short_pod_name` (the hover text has the full name)."""
    return short_pod_name(pod.name)


def topology_figure(cluster: ClusterState, title: str = "The lab: nodes, pods and their addresses") -> go.Figure:
    """Nodes as columns on the "docker network", their pods stacked inside (labels inside their
    node's box), mypc to the right, the Services underneath."""
    nodes = cluster.nodes
    xs, ys, labels, colors, hover = [], [], [], [], []
    fig = go.Figure()
    for i, n in enumerate(nodes):
        fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=-0.6, y1=6.4, line=dict(color="#888"), fillcolor="#F4F6F8",
                      layer="below")
        fig.add_annotation(x=i, y=6.5, yanchor="bottom", text=f"<b>{n.name}</b><br>{n.internal_ip}<br>pods {n.pod_cidr}"
                           + (f"<br>zone {n.zone}" if n.zone else ""), showarrow=False, font=dict(size=10))
        pods = [p for p in cluster.pods if p.node_name == n.name]
        for j, p in enumerate(pods[:6]):
            xs.append(i - 0.38)
            ys.append(5.5 - j)
            labels.append(f"{_topology_label(p)}<br>{p.pod_ip}")
            colors.append("#54A24B" if p.ready else "#E45756")
            hover.append(f"{p.name} ({p.pod_ip}) on {n.name}; labels {p.labels}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=labels, textposition="middle right",
                             marker=dict(size=12, color=colors, symbol="square"), hovertext=hover, hoverinfo="text",
                             textfont=dict(size=9), showlegend=False))
    fig.add_trace(go.Scatter(x=[len(nodes) - 0.1], y=[3.5], mode="markers+text", text=["mypc<br>172.18.0.100"],
                             textposition="bottom center", marker=dict(size=18, color="#4C78A8", symbol="diamond"),
                             showlegend=False, hoverinfo="text", hovertext=["external client on the docker network"]))
    svc_lines = [f"{s.name}: {s.cluster_ip}:{','.join(str(p.port) for p in s.ports)}"
                 + (f" nodePort {','.join(str(p.node_port) for p in s.ports if p.node_port)}" if s.type == "NodePort" else "")
                 for s in cluster.services]
    fig.add_annotation(x=-0.45, xanchor="left", y=-0.8, yanchor="top", text="<b>Services</b>  " + "  ·  ".join(svc_lines),
                       showarrow=False, align="left", font=dict(size=10))
    fig.update_layout(title=title, xaxis=dict(visible=False, range=[-0.6, len(nodes) + 0.4]),
                      yaxis=dict(visible=False, range=[-1.6, 8.4]), template="plotly_white", height=480,
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def stickiness_data(df: pd.DataFrame) -> dict:
    """What the stickiness chart shows: client IPs (numeric order), endpoint pods, per pod the
    connections each client made to it, the pods' colours, and the backend."""
    ok = df[df["outcome"] == "ok"]
    table = ok.groupby(["client_ip", "endpoint_pod"]).size().unstack(fill_value=0)
    clients = sorted(table.index, key=lambda ip: tuple(int(x) for x in ip.split(".")))
    table = table.reindex(clients)
    pods = list(table.columns)
    return {"clients": clients, "pods": pods, "counts": {pod: table[pod].to_list() for pod in pods},
            "colors": pod_colors(pods), "backend": df["backend"].iloc[0] if len(df) else "sim"}


STICKINESS_LAYOUT = dict(barmode="stack", template="plotly_white", height=380, xaxis_title="client IP",
                         yaxis_title="connections", legend_title="endpoint")


def stickiness_figure(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Stacked bars: for each client IP, which endpoints its connections reached."""
    d = stickiness_data(df)
    fig = go.Figure([go.Bar(name=pod, x=d["clients"], y=d["counts"][pod], marker_color=d["colors"][pod]) for pod in d["pods"]])
    fig.update_layout(**STICKINESS_LAYOUT, title=title or f"Which endpoint each client reached ({d['backend']} backend)")
    return fig


# ---- chapter 02: ClientIP affinity over rounds ---------------------------------------------------

AFFINITY_ROUNDS_LAYOUT = dict(template="plotly_white", height=320, margin=dict(t=80, b=50, l=80, r=20),
                              xaxis=dict(title="client (number)", showgrid=False),
                              yaxis=dict(title="round", autorange="reversed", showgrid=False))


def affinity_rounds_data(r: AffinityResult) -> dict:
    """The heatmap of :class:`kslab.views.AffinityResult`: one column per client, one row per
    round, coloured by the endpoint pod reached (a failed connection is blank), the hover text
    naming client, round, time and pod, and a title with the settings."""
    pods = sorted(r.endpoints)
    colors = pod_colors(pods)
    index = {p: i for i, p in enumerate(pods)}
    first: dict[tuple, object] = {}  # (round, client) -> the pod its first connection of the round reached
    for key in zip(r.rows["round"], r.rows["client_ip"], r.rows["endpoint_pod"]):
        first.setdefault(key[:2], key[2])
    z, text = [], []
    for rnd in range(1, r.rounds + 1):
        row = [(ip, first.get((rnd, ip))) for ip in r.clients]
        z.append([index.get(p) if isinstance(p, str) else None for _, p in row])
        text.append([f"client {i + 1} ({ip}), round {rnd} at t={(rnd - 1) * r.pause:g} s: {p if isinstance(p, str) else 'failed'}"
                     for i, (ip, p) in enumerate(row)])
    n = max(len(pods), 1)
    scale = []
    for i, p in enumerate(pods):  # a step per pod: value i maps to the pod's colour
        scale += [[i / n, colors[p]], [(i + 1) / n, colors[p]]]
    setting = f"ClientIP, timeoutSeconds {r.timeout}" if r.affinity else "None"
    title = (f"sessionAffinity {setting}<br><sup>{len(r.clients)} clients x {r.rounds} rounds, {r.pause:g} s apart; "
             f"{len(pods)} ready endpoints; {r.backend} copy of the lab</sup>")
    return {"z": z, "x": list(range(1, len(r.clients) + 1)), "y": [f"round {k}" for k in range(1, r.rounds + 1)],
            "text": text, "xgap": 1 if len(r.clients) <= 60 else 0, "colorscale": scale or [[0, "#ccc"], [1, "#ccc"]], "zmin": -0.5, "zmax": n - 0.5,
            "pods": pods, "colors": colors, "title": title,
            "colorbar": dict(title="pod", tickvals=list(range(len(pods))), ticktext=pods, len=0.9, thickness=14)}


def affinity_summary(r: AffinityResult) -> str:
    """One line: who kept their pod, and how full each xt_recent list is (100 at most)."""
    full = ", ".join(f"{name}: {size}" for name, size in sorted(r.lists.items())) or "none (no ClientIP rules)"
    return (f"clients that kept their first pod in all {r.rounds} rounds: {r.kept} of {len(r.clients)} "
            f"({r.kept_share:.0%}); xt_recent lists on {r.node} (addresses, at most 100 each): {full}")


def affinity_rounds_figure(r: AffinityResult) -> go.Figure:
    """A static heatmap of :func:`affinity_rounds_data` (the panel updates the same trace in place)."""
    d = affinity_rounds_data(r)
    fig = go.Figure(go.Heatmap(z=d["z"], x=d["x"], y=d["y"], text=d["text"], colorscale=d["colorscale"], zmin=d["zmin"],
                               zmax=d["zmax"], colorbar=d["colorbar"], xgap=d["xgap"], ygap=2, hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(**AFFINITY_ROUNDS_LAYOUT, title=d["title"])
    return fig


# ---- chapter 03: hairpin NAT -------------------------------------------------------------------------

# a ReplicaSet's pod: NAME-<pod-template-hash>-<5 characters>, both from Kubernetes' "safe" alphabet
_REPLICASET_POD = re.compile(r"^(?P<base>.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-(?P<suffix>[bcdfghjklmnpqrstvwxz2456789]{5})$")


def short_pod_name(name: str) -> str:
    """A Deployment's pod name with its pod-template hash cut out (``deploy-echo-gtc48pc688-clvtq``
    -> ``deploy-echo-…-clvtq``), so chart labels stay readable; other names unchanged."""
    m = _REPLICASET_POD.match(name)
    return f"{m['base']}-…-{m['suffix']}" if m else name


HAIRPIN_CASES = {"with": ("with the hairpin rule", "#4C78A8"), "without": ("without it (rules deleted)", "#E45756")}


def hairpin_data(df: pd.DataFrame) -> dict:
    """What the hairpin chart shows, from :func:`kslab.views.compute_hairpin`'s frame: the clients
    (in the frame's order, names shortened), per case the success shares, bar labels and hover
    lines, and the backend."""
    clients = list(dict.fromkeys(df["client"]))
    labels = [short_pod_name(c) for c in clients]
    cases = {}
    for case, (name, color) in HAIRPIN_CASES.items():
        part = df[df["hairpin_rule"] == case].set_index("client").reindex(clients)
        cases[case] = {"name": name, "color": color, "y": part["success_share"].to_list(),
                       "text": [f"{s:.0%}" for s in part["success_share"]],
                       "hover": [f"{c} on {node}: {ok}/{total} ok; {me:.0%} of its connections reached itself"
                                 for c, node, ok, total, me in zip(clients, part["client_node"], part["ok"],
                                                                   part["connections"], part["to_itself"])]}
    return {"clients": clients, "labels": labels, "cases": cases,
            "backend": df["backend"].iloc[0] if len(df) else "sim"}


def hairpin_figure(df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Grouped bars: for each client, the share of its connections that succeed with kube-proxy's
    hairpin rule and without it."""
    d = hairpin_data(df)
    ticks = [label.replace("-…-", "<br>…-") for label in d["labels"]]  # two short lines: no tilted, overlapping names
    fig = go.Figure([go.Bar(name=c["name"], x=d["labels"], y=c["y"], marker_color=c["color"], text=c["text"],
                            textposition="outside", textangle=0, textfont=dict(size=10), cliponaxis=False,
                            hovertext=c["hover"], hoverinfo="text") for c in d["cases"].values()])
    fig.update_layout(barmode="group", template="plotly_white", height=400, yaxis_tickformat=".0%", yaxis_range=[0, 1.12],
                      xaxis=dict(title="client pod", tickangle=0, tickvals=d["labels"], ticktext=ticks, tickfont=dict(size=10)),
                      yaxis_title="connections that succeed",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      title=title or f"Success per client, with and without the hairpin rule ({d['backend']} backend)",
                      margin=dict(t=90))
    return fig


# ---- chapters 06 and 07: NodePort, externalTrafficPolicy, the load balancer ------------------------

FAILED_SINK = "dropped / failed"
FAILED_COLOR = "#E45756"
INGRESS_COLOR = "#8C8C8C"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def ingress_sankey_data(df: pd.DataFrame, nodes: Sequence[str] | None = None, pods: Sequence[str] | None = None) -> dict:
    """What the ingress Sankey shows (:func:`kslab.experiments.ingress_summary` of ``df``): on the
    left the ingress nodes (``nodes``, default those in ``df``, in that order), on the right the
    endpoint pods (``pods`` and those reached, grouped by the node they run on in the nodes'
    order, then by name; coloured by :func:`pod_colors`) and,
    when a connection failed, a sink :data:`FAILED_SINK`; one link per (node, pod) with its
    connection count, coloured like its pod, hover text with the share of the node's connections."""
    from .experiments import NO_NODE, ingress_summary

    summary = ingress_summary(df)
    seen_nodes = [n for n in dict.fromkeys(summary["ingress_node"]) if n is not None]
    node_list = list(nodes) if nodes is not None else seen_nodes
    node_list += [n for n in seen_nodes if n not in node_list]  # a node the caller forgot still gets its box
    if any(n is None for n in summary["ingress_node"]):
        node_list.append(NO_NODE)
    reached = sorted(p for p in set(summary["endpoint_pod"]) if p is not None)
    pod_list = list(dict.fromkeys([*(pods if pods is not None else ()), *reached]))
    ok = df[df["outcome"] == "ok"]
    runs_on = dict(zip(ok["endpoint_pod"], ok["endpoint_node"]))
    rank = {n: i for i, n in enumerate(node_list)}
    pod_list.sort(key=lambda p: (rank.get(runs_on.get(p), len(rank)), p))  # facing their node: fewer crossings
    failed = bool(summary["endpoint_pod"].isna().any())
    colors = pod_colors(pod_list)
    labels = [n for n in node_list] + [short_pod_name(p) for p in pod_list] + ([FAILED_SINK] if failed else [])
    box_colors = [INGRESS_COLOR] * len(node_list) + [colors[p] for p in pod_list] + ([FAILED_COLOR] if failed else [])
    index = {("node", n): i for i, n in enumerate(node_list)}
    index.update({("pod", p): len(node_list) + i for i, p in enumerate(pod_list)})
    source, target, value, link_colors, hover = [], [], [], [], []
    for node, pod, n, share in zip(summary["ingress_node"], summary["endpoint_pod"], summary["n"], summary["share"]):
        node = NO_NODE if node is None else node
        source.append(index[("node", node)])
        target.append(index[("pod", pod)] if pod is not None else len(labels) - 1)
        value.append(int(n))
        link_colors.append(_rgba(colors[pod] if pod is not None else FAILED_COLOR, 0.45))
        hover.append(f"{node} → {pod if pod is not None else FAILED_SINK}: {int(n)} connections ({share:.1%} of {node}'s)")
    # fixed columns (ingress nodes left, pods and the sink right), each in its given order, top down
    size = [0] * len(labels)
    for src, dst, n in zip(source, target, value):
        size[src] += n
        size[dst] += n
    x, y = [0.001] * len(node_list) + [0.999] * (len(labels) - len(node_list)), [0.0] * len(labels)
    for column in (range(len(node_list)), range(len(node_list), len(labels))):
        total, above = sum(size[i] for i in column) or 1, 0
        for i in column:
            y[i] = min(max((above + size[i] / 2) / total, 0.001), 0.999)
            above += size[i]
    return {"labels": labels, "colors": box_colors, "nodes": node_list, "pods": pod_list, "failed": failed, "x": x, "y": y,
            "source": source, "target": target, "value": value, "link_colors": link_colors, "hover": hover,
            "total": int(len(df)), "backend": df["backend"].iloc[0] if len(df) else "sim"}


def ingress_sankey(df: pd.DataFrame, nodes: Sequence[str] | None = None, pods: Sequence[str] | None = None,
                   title: str | None = None) -> go.Figure:
    """Sankey diagram: ingress node -> endpoint pod (failed connections to their own sink)."""
    d = ingress_sankey_data(df, nodes, pods)
    fig = go.Figure(go.Sankey(
        arrangement="snap", valueformat="d",
        node=dict(label=d["labels"], color=d["colors"], x=d["x"], y=d["y"], pad=14, thickness=16, line=dict(width=0)),
        link=dict(source=d["source"], target=d["target"], value=d["value"], color=d["link_colors"],
                  customdata=d["hover"], hovertemplate="%{customdata}<extra></extra>")))
    fig.update_layout(title=title or f"Where the {d['total']} connections entering each node went ({d['backend']} backend)",
                      template="plotly_white", height=420, margin=dict(l=20, r=20, t=60, b=20), font=dict(size=12))
    return fig


POLICY_NODE_LAYOUT = dict(barmode="stack", template="plotly_white", height=370, xaxis_title="ingress node",
                          yaxis_title="connections", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                          margin=dict(l=60, r=20, t=110, b=60))  # t: the two-line title above the legend
POLICY_POD_LAYOUT = dict(template="plotly_white", height=340, xaxis_title="endpoint pod (node)",
                         yaxis_title="share of answered connections", yaxis_tickformat=".0%",
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), margin=dict(l=60, r=20, t=80, b=60))
OK_COLOR = "#54A24B"


def policy_bars_data(r: TrafficPolicyResult) -> dict:
    """What the traffic policy charts show, from :class:`kslab.views.TrafficPolicyResult`: per
    ingress node (every node of the lab, in order) the connections answered and dropped/failed;
    per endpoint pod (labelled with its node) its share of the answered connections, its colour,
    and the share a per-node split predicts (``expected``); the titles."""
    from .experiments import NO_NODE

    nodes = list(r.nodes) + ([NO_NODE] if NO_NODE in r.per_node.index else [])
    per_node = r.per_node.reindex(nodes, fill_value=0)
    rank = {n: i for i, n in enumerate(r.nodes)}
    pods = sorted(r.pods, key=lambda p: (rank.get(r.pods[p], len(rank)), p))  # a node's pods side by side
    colors = pod_colors(pods)
    shares = [float(r.per_pod.get(p, 0.0)) for p in pods]
    answered = int(per_node["ok"].sum())
    labels = [f"{short_pod_name(p)}<br>({r.pods[p]})" for p in pods]
    where = "the load balancer" if r.entry == "lb" else r.entry
    return {
        "nodes": nodes, "ok": per_node["ok"].astype(int).to_list(), "dropped": per_node["dropped"].astype(int).to_list(),
        "pods": pods, "labels": labels, "shares": shares, "colors": [colors[p] for p in pods],
        "text": [f"{s:.0%}" for s in shares], "expected": [r.expected.get(p, 0.0) for p in pods],
        "ymax": max([0.5] + [s * 1.25 for s in shares] + [e * 1.25 for e in r.expected.values()]),
        "node_title": (f"{r.connections} connections from mypc via {where}<br>externalTrafficPolicy {r.policy}: "
                       f"{r.dropped_share:.0%} dropped"),  # two lines: one is wider than a 700 px chart
        "pod_title": f"Share per pod of the {answered} answered connections ({r.backend} copy of the lab)",
    }


def _policy_node_traces(d: dict) -> list[go.Bar]:
    return [go.Bar(name="answered", x=d["nodes"], y=d["ok"], marker_color=OK_COLOR),
            go.Bar(name="dropped / failed", x=d["nodes"], y=d["dropped"], marker_color=FAILED_COLOR)]


def _policy_pod_traces(d: dict) -> list:
    return [go.Bar(name="observed", x=d["labels"], y=d["shares"], customdata=d["pods"], marker_color=d["colors"],
                   text=d["text"], textposition="outside", cliponaxis=False, showlegend=False,
                   hovertemplate="%{customdata}: %{y:.1%}<extra></extra>"),
            go.Scatter(name="per-node split (expected)", x=d["labels"], y=d["expected"], mode="markers",
                       marker=dict(symbol="line-ew", size=36, line=dict(width=3, color="#333")),
                       hovertemplate="expected %{y:.1%}<extra></extra>")]


def policy_node_figure(r: TrafficPolicyResult) -> go.Figure:
    """Stacked bars: connections answered and dropped per ingress node."""
    d = policy_bars_data(r)
    fig = go.Figure(_policy_node_traces(d))
    fig.update_layout(**POLICY_NODE_LAYOUT, title=d["node_title"])
    return fig


def policy_pod_figure(r: TrafficPolicyResult) -> go.Figure:
    """Bars: each pod's share of the answered connections, the per-node split marked."""
    d = policy_bars_data(r)
    fig = go.Figure(_policy_pod_traces(d))
    fig.update_layout(**POLICY_POD_LAYOUT, title=d["pod_title"], yaxis_range=[0, d["ymax"]])
    return fig


def policy_bars(r: TrafficPolicyResult) -> go.Figure:
    """Both charts of :class:`kslab.views.TrafficPolicyResult` side by side: connections answered
    and dropped per ingress node, and each pod's share with the per-node split marked."""
    from plotly.subplots import make_subplots

    d = policy_bars_data(r)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per ingress node", "per endpoint pod"), horizontal_spacing=0.12)
    for t in _policy_node_traces(d):
        fig.add_trace(t, row=1, col=1)
    for t in _policy_pod_traces(d):
        fig.add_trace(t, row=1, col=2)
    fig.update_layout(barmode="stack", template="plotly_white", height=380, title=d["node_title"],
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0), margin=dict(l=60, r=20, t=100, b=60))
    fig.update_yaxes(title_text="connections", row=1, col=1)
    fig.update_yaxes(title_text="share of answered", tickformat=".0%", range=[0, d["ymax"]], row=1, col=2)
    return fig


def seen_line(r: TrafficPolicyResult) -> str:
    """One HTML line: the client address each pod saw, named (mypc's own, a node's IP, a node's
    pod gateway), and what was dropped."""
    parts = []
    for pod, ips in r.seen_ips.items():
        named = ", ".join(f"{ip} ({r.addresses.get(ip, 'another address')})" for ip in ips)
        parts.append(f"<code>{short_pod_name(pod)}</code> on {r.pods.get(pod, '?')}: {named}")
    line = "the pod saw: " + ("; ".join(parts) if parts else "nothing (no connection was answered)")
    if r.lb is not None:
        probes = ", ".join(f"{n} {c or 'no answer'}" for n, c in r.lb.probes.items())
        line += (f"<br>the load balancer probes :{r.lb.probe_port}{r.lb.probe_path}: {probes}; it sends to "
                 f"{', '.join(r.lb.healthy) or 'no node'}")
    if r.dropped_share:
        line += f"<br>dropped or failed: {r.dropped_share:.0%} of {r.connections}"
        reasons = r.df.loc[r.df["outcome"] != "ok", "reason"]
        if len(reasons):
            line += f" ({reasons.iloc[0]})"
    return line


def health_table_data(lb: LBState) -> dict:
    """What the health table shows for a :class:`kslab.loadbalancer.LBState`: per node (probe
    order) the status its last probe got (0: no answer) and whether the LB sends it connections."""
    from http import HTTPStatus

    nodes = list(lb.probes)
    phrase = {s.value: s.phrase for s in HTTPStatus}
    status = [f"{c} {phrase.get(c, '')}".strip() if c else "no answer" for c in lb.probes.values()]
    healthy = ["yes" if n in lb.healthy else "no" for n in nodes]
    fill = ["#E3F1DF" if n in lb.healthy else "#F9DEDE" for n in nodes]
    return {"header": ["node", f"probe GET :{lb.probe_port}{lb.probe_path}", "gets connections"],
            "cells": [nodes, status, healthy], "fill": fill,
            "title": (f"Load balancer {lb.vip}:{lb.port} for {lb.service}<br><sup>externalTrafficPolicy {lb.policy}: "
                      f"{len(lb.healthy)} of {len(nodes)} nodes healthy</sup>")}


def health_table(lb: LBState) -> go.Figure:
    """A table: node, the status of the LB's last health probe, whether it is healthy."""
    d = health_table_data(lb)
    fig = go.Figure(go.Table(header=dict(values=[f"<b>{h}</b>" for h in d["header"]], fill_color="#DDE3EA", align="left"),
                             cells=dict(values=d["cells"], fill_color=[d["fill"]] * 3, align="left", height=26)))
    fig.update_layout(title=d["title"], height=130 + 28 * len(d["cells"][0]), margin=dict(l=10, r=10, t=70, b=10))
    return fig


# ---- chapter 09: topology aware routing ----------------------------------------------------------------

NO_HINT = "no hint"
NO_HINT_COLOR = "#BAB0AC"


def zone_colors(zones: Sequence[str]) -> dict[str, str]:
    """The same colour for the same zone across chapter 09's charts (and grey for "no hint")."""
    return {**{z: PALETTE[i % len(PALETTE)] for i, z in enumerate(zones)}, NO_HINT: NO_HINT_COLOR}


def _short_zone(zone: str) -> str:
    return zone or "(no zone)"


def hints_data(hints: pd.DataFrame, zones: Sequence[str]) -> dict:
    """What the hints chart shows for a :func:`kslab.views.hints_table`: per zone of an endpoint
    (x), how many of its ready endpoints are hinted for each zone (one series per zone of
    ``zones``, then "no hint"). An endpoint hinted for another zone is traffic that zone's
    clients send across zones."""
    ready = hints[hints["ready"]] if len(hints) else hints
    x = [*zones, *sorted({z for z in ready["zone"]} - set(zones))] if len(ready) else list(zones)
    names = [*zones, NO_HINT]
    counts = []
    for target in names:
        row = []
        for z in x:
            here = ready[ready["zone"] == z] if len(ready) else ready
            if target == NO_HINT:
                row.append(int((here["for_zones"] == "").sum()) if len(here) else 0)
            else:
                row.append(int(here["for_zones"].map(lambda f, t=target: t in f.split(",")).sum()) if len(here) else 0)
        counts.append(row)
    return {"zones": [_short_zone(z) for z in x], "names": names, "counts": counts, "colors": zone_colors(zones)}


def hints_title(r: "TopologyResult") -> str:
    n = int(r.hints["ready"].sum()) if len(r.hints) else 0
    state = "hints written" if r.hinted else "no hints"
    return f"{r.service}: {n} ready endpoints per zone, by the zone they are hinted for ({r.mode}: {state}; {r.backend} backend)"


def hints_figure(hints: pd.DataFrame, zones: Sequence[str], title: str = "Endpoints per zone, by hinted zone") -> go.Figure:
    """Stacked bars: per zone, its ready endpoints coloured by the zone their ``hints.forZones`` names."""
    d = hints_data(hints, zones)
    fig = go.Figure(layout=dict(title=title, barmode="stack", template="plotly_white", height=360,
                                xaxis_title="zone of the endpoint (its pod's node)", yaxis_title="ready endpoints",
                                legend_title_text="hinted for"))
    for name, y in zip(d["names"], d["counts"]):
        fig.add_bar(name=name, x=d["zones"], y=y, marker_color=d["colors"][name])
    return fig


def zone_matrix_data(matrix: pd.DataFrame, zones: Sequence[str]) -> dict:
    """A client zone x endpoint zone matrix of shares (:attr:`kslab.views.TopologyResult.matrix`)
    on the zones given, in order (0 where nothing went), with percentages as text."""
    rows = list(zones)
    cols = list(zones)
    z = [[float(matrix.loc[r, c]) if r in matrix.index and c in matrix.columns else 0.0 for c in cols] for r in rows]
    return {"x": [_short_zone(c) for c in cols], "y": [_short_zone(r) for r in rows], "z": z,
            "text": [[f"{v:.0%}" for v in row] for row in z]}


def matrix_title(r: "TopologyResult") -> str:
    cross = ", ".join(f"{z[-2:]} {s:.0%}" for z, s in r.cross_zone.items())
    return f"Where each zone's client was answered ({r.connections} connections each); across zones: {cross}"


def zone_matrix_figure(matrix: pd.DataFrame, zones: Sequence[str], title: str = "Client zone -> endpoint zone") -> go.Figure:
    """A heatmap: rows the client's zone, columns the zone of the pod that answered, cells the share
    of the client zone's answered connections (the diagonal stays in the zone)."""
    d = zone_matrix_data(matrix, zones)
    fig = go.Figure(go.Heatmap(z=d["z"], x=d["x"], y=d["y"], text=d["text"], texttemplate="%{text}", zmin=0, zmax=1,
                               colorscale="Blues", colorbar=dict(title="share")))
    fig.update_layout(title=title, template="plotly_white", height=360, xaxis_title="zone of the pod that answered",
                      yaxis_title="zone of the client", yaxis_autorange="reversed")
    return fig


def cross_zone_data(runs: "dict[str, pd.Series]") -> dict:
    """For :func:`cross_zone_bars`: per label (e.g. "hints off", "hints on"), the share of each
    client zone's answered connections that crossed zones."""
    zones = sorted({z for s in runs.values() for z in s.index})
    return {"zones": zones, "series": {label: [float(s.get(z, 0.0)) for z in zones] for label, s in runs.items()}}


def cross_zone_bars(runs: "dict[str, pd.Series]", title: str = "Share of connections answered in another zone") -> go.Figure:
    """Grouped bars: per client zone, the cross-zone share under each setting (``runs``: label ->
    :func:`kslab.views.cross_zone_shares`)."""
    d = cross_zone_data(runs)
    fig = go.Figure(layout=dict(title=title, barmode="group", template="plotly_white", height=360,
                                xaxis_title="zone of the client", yaxis_title="answered in another zone",
                                yaxis_tickformat=".0%", yaxis_range=[0, 1]))
    for i, (label, y) in enumerate(d["series"].items()):
        fig.add_bar(name=label, x=d["zones"], y=y, text=[f"{v:.0%}" for v in y], marker_color=PALETTE[i % len(PALETTE)])
    return fig


def topology_line(r: "TopologyResult") -> str:
    """The line under the topology panel: the cross-zone share per client zone, the zones' CPU and
    the controller's last event on the Service."""
    cross = ", ".join(f"{z}: {s:.0%}" for z, s in r.cross_zone.items())
    cpu = ", ".join(f"{_short_zone(z)} {c}m" for z, c in r.zone_cpu.items())
    event = f"; last event: <i>{r.message}</i>" if r.message else ""
    return f"<b>answered in another zone</b> {cross}. <b>CPU counted per zone</b> {cpu}{event}"


# ---- chapter 08: readiness probes, Endpoints and EndpointSlices ------------------------------------

# the lifecycle steps of a readiness failure (kslab.kubelet's LifecycleEvent kinds): label, colour, line dash
LIFECYCLE_MARKS = {
    "app-broken": ("app breaks", "#E45756", "solid"),
    "app-healed": ("app healed", "#54A24B", "solid"),
    "probe": ("probe failed", "#F58518", "dot"),
    "not-ready": ("Pod Ready=False", "#B279A2", "dash"),
    "ready": ("Pod Ready=True", "#72B7B2", "dash"),
    "slice": ("EndpointSlice updated", "#4C78A8", "dashdot"),
    "synced": ("kube-proxy synced", "#000000", "longdash"),
}
ERROR_COLOR = "#E45756"
READINESS_LAYOUT = dict(template="plotly_white", height=420, xaxis_title="time (s)", yaxis_title="connections per bin",
                        legend=dict(orientation="h", y=-0.2), margin=dict(t=70, b=90, l=60, r=20))


def _is_probe_failure(row) -> bool:
    """A probe event that reports a failure: kslab.kubelet writes ``"<container>: Failure (why); n in a row"``."""
    detail = str(row.get("detail", "")).lower()
    return detail.startswith("failure") or re.search(r":\s*failure\b", detail) is not None


def readiness_timeline_data(df: pd.DataFrame, lifecycle: pd.DataFrame | None = None, *, bin_s: float = 1.0,
                            pods: Sequence[str] | None = None) -> dict:
    """What the readiness timeline shows: answered connections per pod and failed ones (status 500,
    refused, dropped...) per ``bin_s`` seconds of ``df["t"]`` (the rows of ``lab.timeline``), and the
    lifecycle marks: per kind (:data:`LIFECYCLE_MARKS`) the times, the first one of each kind
    labelled. Probe events are marked only when they failed; a ``synced`` mark per node is kept once
    (the first sync at that time)."""
    ts = df["t"].astype(float) if len(df) else pd.Series(dtype=float)
    end = float(ts.max()) if len(ts) else 0.0
    edges = [i * bin_s for i in range(int(end // bin_s) + 2)]
    centers = [e + bin_s / 2 for e in edges[:-1]]
    bins = (ts // bin_s).astype(int) if len(ts) else pd.Series(dtype=int)
    ok = df["outcome"] == "ok"
    names = list(pods) if pods is not None else sorted(df.loc[ok, "endpoint_pod"].dropna().unique())
    colors = pod_colors(names)
    labels, prefix = short_pod_names(names)
    series = []
    for name, label in zip(names, labels):
        counts = bins[ok & (df["endpoint_pod"] == name)].value_counts()
        series.append(dict(name=label, pod=name, color=colors[name], x=centers, y=[int(counts.get(i, 0)) for i in range(len(centers))]))
    failed = bins[~ok].value_counts()
    errors = dict(name="failed (HTTP 500, refused, dropped)", color=ERROR_COLOR, x=centers,
                  y=[int(failed.get(i, 0)) for i in range(len(centers))])
    marks = []
    if lifecycle is not None and len(lifecycle):
        seen_sync: set[float] = set()
        for kind, (label, color, dash) in LIFECYCLE_MARKS.items():
            rows = lifecycle[lifecycle["kind"] == kind]
            if kind == "probe":
                rows = rows.loc[[bool(_is_probe_failure(r)) for _, r in rows.iterrows()]] if len(rows) else rows
            times = []
            for _, r in rows.sort_values("t").iterrows():
                t = round(float(r["t"]), 3)
                if kind == "synced":
                    if t in seen_sync:
                        continue
                    seen_sync.add(t)
                times.append(t)
            if times:
                marks.append(dict(kind=kind, label=label, color=color, dash=dash, times=times))
    return dict(series=series, errors=errors, marks=marks, bin_s=bin_s, prefix=prefix, end=end)


def readiness_timeline(df: pd.DataFrame, lifecycle: pd.DataFrame | None = None, *, title: str | None = None,
                       backend: str | None = None, bin_s: float = 1.0, pods: Sequence[str] | None = None) -> go.Figure:
    """Connections per pod over time (lines), the failed ones (red), and the lifecycle of a readiness
    failure as vertical lines: app breaks, each failed probe, Pod Ready=False, the EndpointSlice
    update, kube-proxy's sync (chapter 08)."""
    d = readiness_timeline_data(df, lifecycle, bin_s=bin_s, pods=pods)
    backend = backend or (str(df["backend"].iloc[0]) if len(df) and "backend" in df else "")
    fig = go.Figure(layout=dict(READINESS_LAYOUT, title=title or f"Connections per pod, per {bin_s:g} s, and the readiness "
                                f"lifecycle ({backend} backend)" + (f"; pods {d['prefix']}…" if d["prefix"] else "")))
    for s in d["series"]:
        fig.add_scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines", line=dict(color=s["color"], shape="hv"))
    e = d["errors"]
    fig.add_scatter(x=e["x"], y=e["y"], name=e["name"], mode="lines", line=dict(color=e["color"], width=3, shape="hv"))
    top = max([max(s["y"], default=0) for s in d["series"]] + [max(e["y"], default=0), 1])
    for m in d["marks"]:
        xs, ys = [], []
        for t in m["times"]:
            xs += [t, t, None]
            ys += [0, top * 1.05, None]
        fig.add_scatter(x=xs, y=ys, name=f"{m['label']} ({len(m['times'])})", mode="lines",
                        line=dict(color=m["color"], dash=m["dash"], width=1.5))
    return fig


WATCH_COST_LAYOUT = dict(template="plotly_white", height=380, barmode="group", xaxis_title="pods behind the Service",
                         yaxis_title="bytes sent to all watchers per change", yaxis_type="log",
                         margin=dict(t=70, b=50, l=80, r=20))


def watch_cost(df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Bytes one pod's readiness change sends to every kube-proxy (the rows of
    :func:`kslab.views.compute_watch_cost`): the whole Endpoints object vs the one EndpointSlice that
    changed, per Service size (log scale)."""
    fig = go.Figure(layout=dict(WATCH_COST_LAYOUT, title=title or "One endpoint changes: what every watcher receives"))
    x = [str(r) for r in df["replicas"]]
    fig.add_bar(x=x, y=df["endpoints_bytes_total"], name="watching Endpoints (the whole object)", marker_color="#E45756",
                text=[f"{b / 1024:.0f} KiB" for b in df["endpoints_bytes_total"]], textposition="outside")
    fig.add_bar(x=x, y=df["slice_bytes_total"], name="watching EndpointSlices (the changed slice)", marker_color="#4C78A8",
                text=[f"{b / 1024:.0f} KiB" for b in df["slice_bytes_total"]], textposition="outside")
    return fig
