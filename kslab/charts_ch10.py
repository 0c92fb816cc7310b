"""Chapter 10's figures (pod-to-pod bandwidth): pure functions from iperf3 results and tables to
plotly figures.

Each ``*_data`` function returns what its figure draws (tested without plotly's rendering);
each figure's title says where its numbers come from (``BandwidthRun.source``: "measured now on
netns" or the recording's label).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from .charts import PALETTE

# one colour per direction and per path kind across the chapter
DIRECTION_COLORS = {"client->server": PALETTE[0], "server->client": PALETTE[1]}
PATH_COLORS = {"same-node": PALETTE[2], "cross-node": PALETTE[0], "clusterip": PALETTE[4], "nodeport": PALETTE[3]}


def _result(r: Any):
    """An IperfResult from an IperfResult or a BandwidthRun."""
    return getattr(r, "result", r)


# ---- per interval ---------------------------------------------------------------------------------


def interval_data(result: Any, *, per_stream: bool = False) -> list[dict]:
    """One series per direction: each interval's end (s) and Mbit/s of the interval's sum (the
    [SUM] line with -P, the only stream's line otherwise); with ``per_stream`` also one series
    per stream (``socket`` set). Omitted intervals (``-O``) are left out."""
    if result is None:
        return []
    result = _result(result)
    out = []
    for d in result.directions():
        rows = [i for i in result.intervals if i.direction == d and not i.omitted]
        sums = [i for i in rows if i.socket is None]
        if not sums:  # one stream: iperf3 still writes a sum; fall back to the stream's rows
            sums = rows
        out.append({"direction": d, "socket": None, "name": f"{d} (sum)" if result.num_streams > 1 else d,
                    "x": [float(i.end) for i in sums], "y": [i.bits_per_second / 1e6 for i in sums]})
        if per_stream and result.num_streams > 1:
            for sock in sorted({i.socket for i in rows if i.socket is not None}):
                part = [i for i in rows if i.socket == sock]
                out.append({"direction": d, "socket": sock, "name": f"{d} stream {sock}",
                            "x": [float(i.end) for i in part], "y": [i.bits_per_second / 1e6 for i in part]})
    return out


def interval_figure(result: Any, title: str = "iperf3: throughput per interval", *, per_stream: bool = False) -> go.Figure:
    """Mbit/s per 1 s interval, one line per direction (and thin lines per stream)."""
    fig = go.Figure()
    for s in interval_data(result, per_stream=per_stream):
        color = DIRECTION_COLORS.get(s["direction"], PALETTE[5])
        if s["socket"] is None:
            fig.add_scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines+markers", line=dict(color=color, width=3))
        else:
            fig.add_scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines", line=dict(color=color, width=1),
                            opacity=0.35, showlegend=False, hovertemplate=f"{s['name']}: %{{y:,.0f}} Mbit/s")
    fig.update_layout(title=title, xaxis_title="time (s, end of each interval)", yaxis_title="Mbit/s",
                      template="plotly_white", height=360, yaxis=dict(rangemode="tozero"))
    return fig


# ---- per stream -----------------------------------------------------------------------------------


def stream_data(result: Any, direction: str | None = None, side: str = "receiver") -> dict:
    """Each stream's Mbit/s at ``side`` in ``direction`` (default: the test's main direction),
    the sum of them, and the end's [SUM] as iperf3 wrote it."""
    from .views_ch10 import main_direction

    result = _result(result)
    direction = direction or main_direction(result)
    streams = sorted((s for s in result.streams if s.direction == direction), key=lambda s: s.socket)
    parts = [(s.receiver if side == "receiver" else s.sender) for s in streams]
    y = [p.bits_per_second / 1e6 if p is not None else 0.0 for p in parts]
    return {"direction": direction, "side": side, "sockets": [s.socket for s in streams], "y": y, "total": sum(y),
            "sum": result.sum(direction, side).bits_per_second / 1e6}


def stream_figure(result: Any, title: str = "iperf3: throughput per stream", *, direction: str | None = None) -> go.Figure:
    """One bar per stream (its socket number), the [SUM] / N as a dashed line: how evenly the
    streams shared the path."""
    d = stream_data(result, direction)
    fig = go.Figure()
    fig.add_bar(x=[str(s) for s in d["sockets"]], y=d["y"], name=f"{d['direction']} per stream",
                marker=dict(color=DIRECTION_COLORS.get(d["direction"], PALETTE[5])), hovertemplate="%{y:,.0f} Mbit/s")
    if d["sockets"]:
        fig.add_hline(y=d["sum"] / len(d["sockets"]), line_dash="dash",
                      annotation_text=f"[SUM] {d['sum']:,.0f} Mbit/s / {len(d['sockets'])} streams")
    fig.update_layout(title=title, xaxis_title="stream (socket)", yaxis_title="Mbit/s at the receiver",
                      template="plotly_white", height=360, xaxis=dict(type="category"))
    return fig


# ---- the study's tests side by side -----------------------------------------------------------------


def tests_data(table: pd.DataFrame) -> list[dict]:
    """One series per direction of a study table (:func:`kslab.views_ch10.study_table`): the
    tests and their receiver Mbit/s (0 where a test has no such direction)."""
    tests = list(dict.fromkeys(table["test"]))
    out = []
    for d in dict.fromkeys(table["direction"]):
        part = table[table["direction"] == d].set_index("test")["Mbit_s"]
        out.append({"direction": d, "x": tests, "y": [float(part.get(t, 0.0)) for t in tests]})
    return out


def tests_figure(table: pd.DataFrame, title: str = "The study's four tests") -> go.Figure:
    """Grouped bars: each test's receiver Mbit/s per direction, log scale (UDP's 1 Mbit/s beside
    TCP's Gbit/s)."""
    fig = go.Figure()
    for s in tests_data(table):
        fig.add_bar(x=s["x"], y=[v if v > 0 else None for v in s["y"]], name=s["direction"],
                    marker=dict(color=DIRECTION_COLORS.get(s["direction"], PALETTE[5])),
                    text=[f"{v:,.1f}" if 0 < v < 100 else (f"{v:,.0f}" if v else "") for v in s["y"]],
                    hovertemplate="%{y:,.1f} Mbit/s")
    fig.update_layout(title=title, barmode="group", xaxis_title="test", yaxis=dict(title="Mbit/s at the receiver (log)",
                      type="log"), template="plotly_white", height=380)
    return fig


# ---- paths compared --------------------------------------------------------------------------------


def comparison_data(df: pd.DataFrame) -> dict:
    """A comparison table (one row per path: ``path``, ``Mbit_s``, ``hops``, optional ``ratio``):
    what the bars show, the hops as each bar's label."""
    ratio = df["ratio"].tolist() if "ratio" in df.columns else [None] * len(df)
    return {"x": df["path"].tolist(), "y": df["Mbit_s"].astype(float).tolist(), "hops": df["hops"].astype(str).tolist(),
            "ratio": ratio}


def comparison_figure(df: pd.DataFrame, title: str = "TCP throughput per path") -> go.Figure:
    """One bar per path, labelled with its ratio to the first path; the hops under the path name."""
    d = comparison_data(df)
    fig = go.Figure()
    fig.add_bar(x=[f"{p}<br><sub>{h}</sub>" for p, h in zip(d["x"], d["hops"])], y=d["y"],
                marker=dict(color=[PATH_COLORS.get(p, PALETTE[5]) for p in d["x"]]),
                text=[f"× {r:.2f}" if r is not None else "" for r in d["ratio"]], textposition="outside",
                hovertemplate="%{y:,.0f} Mbit/s", showlegend=False)
    fig.update_layout(title=title, yaxis_title="Mbit/s at the receiver", template="plotly_white", height=420,
                      yaxis=dict(rangemode="tozero"))
    return fig


# ---- UDP's default rate ----------------------------------------------------------------------------


def udp_data(rates: dict[str, dict]) -> list[dict]:
    """One series per side (sender, receiver) over labelled UDP runs (label ->
    :func:`kslab.views_ch10.udp_rates`), with the 1 Mbit/s default as a reference."""
    labels = list(rates)
    return [{"side": side, "x": labels, "y": [float(rates[k][f"{side}_Mbit_s"]) for k in labels]}
            for side in ("sender", "receiver")]


def udp_figure(rates: dict[str, dict], title: str = "UDP: what -b changes") -> go.Figure:
    """Sender and receiver Mbit/s of UDP runs, log scale, a dashed line at UDP's default rate."""
    fig = go.Figure()
    for s, color in zip(udp_data(rates), (PALETTE[0], PALETTE[2])):
        fig.add_bar(x=s["x"], y=s["y"], name=s["side"], marker=dict(color=color),
                    text=[f"{v:,.2f}" if v < 10 else f"{v:,.0f}" for v in s["y"]], hovertemplate="%{y:,.2f} Mbit/s")
    default = next(iter(rates.values()))["default_Mbit_s"] if rates else 1.048576
    fig.add_hline(y=default, line_dash="dash", annotation_text=f"UDP default without -b: {default:.3f} Mbit/s")
    fig.update_layout(title=title, barmode="group", yaxis=dict(title="Mbit/s (log)", type="log"),
                      template="plotly_white", height=380)
    return fig

