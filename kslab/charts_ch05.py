"""Chapter 05's figures (kube-proxy at scale): pure functions from DataFrames to plotly figures.

Each ``*_data`` function returns what its figure shows (tested without plotly's rendering);
each figure says in its title where its numbers come from ("recorded on ...", "measured now on
netns", "simulated").
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from .charts import PALETTE

# one colour per proxy mode / kernel backend across the chapter
MODE_COLORS = {"iptables": PALETTE[0], "nftables": PALETTE[1]}
BACKEND_COLORS = {"iptables-legacy": PALETTE[0], "iptables-nft": PALETTE[3], "nft": PALETTE[1]}
PERCENTILE_COLUMNS = ("p01", "p50", "p90", "p99")


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


# ---- rule growth ------------------------------------------------------------------------------


def growth_data(df: pd.DataFrame, x: str = "services", columns: Mapping[str, str] | None = None) -> list[dict]:
    """One series per (mode, metric) of a growth table (``kslab.proxy.rulecount.growth`` or
    any table with ``mode``, ``services`` and count columns): iptables ``lines``, nftables
    ``operations`` by default."""
    columns = dict(columns or {"iptables": "lines", "nftables": "lines"})
    unit = {"iptables": "restore lines", "nftables": "nft operations"}
    out = []
    for mode, col in columns.items():
        part = df[df["mode"] == mode].sort_values(x) if "mode" in df.columns else df.sort_values(x)
        if part.empty or col not in part.columns:
            continue
        out.append({"name": f"{mode}: {unit.get(mode, col) if col == 'lines' else col}", "mode": mode,
                    "x": part[x].tolist(), "y": part[col].tolist()})
    return out


def growth_figure(df: pd.DataFrame, title: str = "What a full sync writes, per number of Services (10 endpoints each)",
                  columns: Mapping[str, str] | None = None) -> go.Figure:
    fig = go.Figure()
    for s in growth_data(df, columns=columns):
        fig.add_scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines+markers",
                        line=dict(color=MODE_COLORS.get(s["mode"])))
    fig.update_layout(title=title, xaxis=dict(title="Services", type="log"), yaxis=dict(title="lines / operations", type="log"),
                      template="plotly_white", height=380)
    return fig


# ---- kernel load time -------------------------------------------------------------------------


def restore_data(df: pd.DataFrame) -> list[dict]:
    """One series per (backend, full/partial) of a restore table (``kslab.scale.restore_table``
    or the ``restore`` rows of a recording): sizes with a number, and the sizes that timed out
    with their bound (drawn as a marker at the bound, labelled "> bound s": no number invented)."""
    out = []
    for (backend, partial), part in df.groupby(["backend", "partial"], sort=False):
        part = part.sort_values("services")
        done = part[part["seconds"].map(_present)]
        late = part[~part["seconds"].map(_present) & part["timed_out"].astype(bool)]
        out.append({"backend": backend, "partial": bool(partial), "name": f"{backend} {'partial' if partial else 'full'}",
                    "x": done["services"].tolist(), "y": done["seconds"].astype(float).tolist(),
                    "timed_out_x": late["services"].tolist(), "timed_out_at": late["timeout"].astype(float).tolist()})
    order = {b: i for i, b in enumerate(BACKEND_COLORS)}
    return sorted(out, key=lambda s: (s["partial"], order.get(s["backend"], 9)))


def restore_figure(df: pd.DataFrame, source: str) -> go.Figure:
    """Load time vs Services per backend, log-log; full syncs solid, partial syncs dashed;
    timed-out samples as open triangles at their bound. ``source`` names where the numbers come
    from (a recording's label, or "measured now on netns")."""
    fig = go.Figure()
    for s in restore_data(df):
        color = BACKEND_COLORS.get(s["backend"], PALETTE[4])
        dash = "dash" if s["partial"] else "solid"
        fig.add_scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines+markers", line=dict(color=color, dash=dash))
        if s["timed_out_x"]:
            fig.add_scatter(x=s["timed_out_x"], y=s["timed_out_at"], name=f"{s['name']}: timed out", mode="markers+text",
                            marker=dict(symbol="triangle-up-open", size=12, color=color),
                            text=[f"> {b:g} s" for b in s["timed_out_at"]], textposition="top center")
    fig.update_layout(title=f"Loading kube-proxy's rules into a fresh namespace<br><sup>{source}</sup>",
                      xaxis=dict(title="Services (10 endpoints each)", type="log"),
                      yaxis=dict(title="seconds (log)", type="log"), template="plotly_white", height=420)
    return fig


# ---- first-packet latency ----------------------------------------------------------------------


def latency_data(df: pd.DataFrame) -> list[dict]:
    """One bar group per (mode, Services): the percentiles p01/p50/p90/p99 in ms (the blog's
    chart shape: x = percentile, one bar per cluster size)."""
    out = []
    ok = df[~df["timed_out"].astype(bool)] if "timed_out" in df.columns else df
    for _, row in ok.sort_values(["mode", "services"]).iterrows():
        if not all(_present(row.get(p)) for p in PERCENTILE_COLUMNS):
            continue
        out.append({"mode": row["mode"], "services": int(row["services"]), "name": f"{row['mode']} {int(row['services']):,}",
                    "x": list(PERCENTILE_COLUMNS), "y": [float(row[p]) for p in PERCENTILE_COLUMNS]})
    return out


def latency_figure(df: pd.DataFrame, source: str) -> go.Figure:
    fig = go.Figure()
    shades: dict[str, int] = {}
    for s in latency_data(df):
        k = shades[s["mode"]] = shades.get(s["mode"], -1) + 1
        base = MODE_COLORS.get(s["mode"], PALETTE[4])
        fig.add_bar(x=s["x"], y=s["y"], name=s["name"], marker=dict(color=base, opacity=min(1.0, 0.45 + 0.2 * k)),
                    text=[f"{v * 1000:.0f}" for v in s["y"]], hovertemplate="%{y:.3f} ms")
    fig.update_layout(title=f"First packet: connect() time of new connections to random ClusterIPs (bar labels in µs)"
                            f"<br><sup>{source}</sup>", barmode="group", xaxis_title="percentile",
                      yaxis_title="ms", template="plotly_white", height=420)
    return fig


# ---- syncs over time (minSyncPeriod) --------------------------------------------------------------


def sync_timeline_data(syncs: pd.DataFrame, changes: pd.DataFrame | None = None) -> dict:
    """The syncs of a sync-loop run (``SyncLoopResult.syncs``: start, duration, full, lines) and,
    optionally, its changes (``t``, ``applied_at``): what the timeline chart draws."""
    full = syncs["full"].astype(bool) if "full" in syncs.columns else pd.Series(False, index=syncs.index)
    d = {"start": syncs["start"].astype(float).tolist(), "duration": syncs["duration"].astype(float).tolist(),
         "full": full.tolist(), "lines": syncs["lines"].tolist() if "lines" in syncs.columns else []}
    if changes is not None and len(changes):
        d["change_t"] = changes["t"].astype(float).tolist()
        d["applied_at"] = changes["applied_at"].astype(float).tolist()
    return d


def sync_timeline_figure(syncs: pd.DataFrame, changes: pd.DataFrame | None = None, title: str = "Syncs over time") -> go.Figure:
    d = sync_timeline_data(syncs, changes)
    fig = go.Figure()
    if "change_t" in d:
        fig.add_scatter(x=d["change_t"], y=[0] * len(d["change_t"]), mode="markers", name="change (API event)",
                        marker=dict(symbol="line-ns-open", size=14, color=PALETTE[9]))
        fig.add_scatter(x=d["applied_at"], y=[0.5] * len(d["applied_at"]), mode="markers", name="change in the kernel",
                        marker=dict(symbol="circle-open", size=6, color=PALETTE[2]))
    fig.add_bar(x=d["start"], y=[1] * len(d["start"]), width=[max(w, 0.02) * 1000 for w in d["duration"]], base=0.75,
                offset=0, name="sync (width = duration)", marker_color=[PALETTE[3] if f else PALETTE[0] for f in d["full"]],
                xperiod=None)
    fig.update_layout(title=title, xaxis_title="seconds", yaxis=dict(visible=False, range=[-0.5, 2]),
                      template="plotly_white", height=260, bargap=0)
    return fig


# ---- lines per sync (partial syncs) ---------------------------------------------------------------


def lines_per_sync_figure(df: pd.DataFrame, title: str = "What one sync writes after ONE Service changed") -> go.Figure:
    """Bars of ``written`` (lines for iptables, operations for nftables) per mode and cluster
    size from a table with columns ``mode``, ``services``, ``sync`` (full/partial), ``written``."""
    fig = go.Figure()
    for (mode, sync), part in df.groupby(["mode", "sync"], sort=False):
        part = part.sort_values("services")
        fig.add_bar(x=[f"{n:,}" for n in part["services"]], y=part["written"], name=f"{mode} {sync}",
                    marker=dict(color=MODE_COLORS.get(mode), opacity=1.0 if sync == "partial" else 0.4),
                    text=part["written"], textposition="outside")
    fig.update_layout(title=title, barmode="group", xaxis_title="Services in the cluster", yaxis=dict(title="lines / operations", type="log"),
                      template="plotly_white", height=380)
    return fig


def source_line(meta: Mapping[str, Any] | None, backend: str) -> str:
    """The line a kernel chart carries: the recording's label, or "measured now"."""
    if meta is None:
        return f"measured now on {backend} (QUICK sizes)"
    return str(meta.get("label", "recorded"))


def percent(values: Sequence[float]) -> list[str]:
    return [f"{v:.0%}" for v in values]
