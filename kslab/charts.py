"""Plotly figures built from experiment DataFrames (and cluster state): pure functions.

Every figure is titled with what it shows and the backend that produced it; the same pod keeps
the same colour across a chapter (:func:`pod_colors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pandas as pd
import plotly.graph_objects as go

from .model import ClusterState

if TYPE_CHECKING:
    from .views import AffinityResult

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]


def pod_colors(pods: Sequence[str]) -> dict[str, str]:
    """A stable colour per pod name (sorted order), so charts of one chapter agree."""
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(sorted(pods))}


def distribution_data(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None) -> dict:
    """What the distribution chart shows: categories, shares, bar labels, colours, axis top."""
    ok = df[df["outcome"] == "ok"]
    counts = ok[by].value_counts()
    cats = list(categories) if categories is not None else sorted(counts.index)
    counts = counts.reindex(cats, fill_value=0)
    total = int(counts.sum())
    shares = (counts / total if total else counts.astype(float)).to_list()
    colors = pod_colors(cats)
    return {
        "x": cats, "y": shares, "colors": [colors[c] for c in cats],
        "text": [f"{s:.1%}<br>({n})" for s, n in zip(shares, counts.to_list())],
        "uniform": 1 / len(cats) if cats else None,
        "ymax": max(0.5, max(shares) * 1.25 if total else 0.5),
        "backend": df["backend"].iloc[0] if len(df) else "sim",
    }


def distribution_figure(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None,
                        title: str | None = None) -> go.Figure:
    """Bar chart: share of successful connections per ``by`` value, with the uniform share marked."""
    d = distribution_data(df, by, categories)
    fig = go.Figure(go.Bar(
        x=d["x"], y=d["y"], marker_color=d["colors"], text=d["text"], textposition="outside",
        hovertemplate="%{x}: %{y:.2%}<extra></extra>",
    ))
    if d["uniform"] is not None:
        fig.add_hline(y=d["uniform"], line_dash="dot", annotation_text=f"uniform 1/{len(d['x'])}", annotation_position="top left")
    fig.update_layout(
        title=title or f"Where {len(df)} connections landed ({d['backend']} backend)",
        xaxis_title=by.replace("_", " "), yaxis_title="share of connections", yaxis_tickformat=".0%",
        yaxis_range=[0, d["ymax"]], template="plotly_white", height=380,
    )
    return fig


def topology_figure(cluster: ClusterState, title: str = "The lab: nodes, pods and their addresses") -> go.Figure:
    """Nodes as columns on the "docker network", their pods stacked inside, plus mypc outside."""
    nodes = cluster.nodes
    xs, ys, labels, colors, hover = [], [], [], [], []
    fig = go.Figure()
    for i, n in enumerate(nodes):
        fig.add_shape(type="rect", x0=i - 0.42, x1=i + 0.42, y0=-0.6, y1=6.4, line=dict(color="#888"), fillcolor="#F4F6F8",
                      layer="below")
        fig.add_annotation(x=i, y=6.9, text=f"<b>{n.name}</b><br>{n.internal_ip} · pods {n.pod_cidr}"
                           + (f"<br>zone {n.zone}" if n.zone else ""), showarrow=False, font=dict(size=10))
        pods = [p for p in cluster.pods if p.node_name == n.name]
        for j, p in enumerate(pods[:6]):
            xs.append(i)
            ys.append(5.5 - j)
            labels.append(f"{p.name}<br>{p.pod_ip}")
            colors.append("#54A24B" if p.ready else "#E45756")
            hover.append(f"{p.name} ({p.pod_ip}) on {n.name}; labels {p.labels}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=labels, textposition="middle right",
                             marker=dict(size=14, color=colors, symbol="square"), hovertext=hover, hoverinfo="text",
                             textfont=dict(size=9), showlegend=False))
    fig.add_trace(go.Scatter(x=[len(nodes)], y=[2.5], mode="markers+text", text=["mypc<br>172.18.0.100"], textposition="bottom center",
                             marker=dict(size=18, color="#4C78A8", symbol="diamond"), showlegend=False, hoverinfo="text",
                             hovertext=["external client on the docker network"]))
    svc_lines = [f"{s.name}: {s.cluster_ip}:{','.join(str(p.port) for p in s.ports)}"
                 + (f" nodePort {','.join(str(p.node_port) for p in s.ports if p.node_port)}" if s.type == "NodePort" else "")
                 for s in cluster.services]
    fig.add_annotation(x=len(nodes), y=5.5, text="<b>Services</b><br>" + "<br>".join(svc_lines), showarrow=False, align="left",
                       font=dict(size=9))
    fig.update_layout(title=title, xaxis=dict(visible=False, range=[-0.6, len(nodes) + 0.9]),
                      yaxis=dict(visible=False, range=[-1, 7.6]), template="plotly_white", height=460,
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
    wide = r.rows.pivot_table(index="round", columns="client_ip", values="endpoint_pod", aggfunc="first")
    wide = wide.reindex(columns=list(r.clients))
    z, text = [], []
    for rnd in range(1, r.rounds + 1):
        row = wide.loc[rnd] if rnd in wide.index else pd.Series(index=list(r.clients), dtype=object)
        z.append([index.get(p) if isinstance(p, str) else None for p in row])
        text.append([f"client {i + 1} ({ip}), round {rnd} at t={(rnd - 1) * r.pause:g} s: {p if isinstance(p, str) else 'failed'}"
                     for i, (ip, p) in enumerate(row.items())])
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
