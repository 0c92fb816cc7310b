"""Experiments return tidy DataFrames; summaries are plain functions on them.

One row per connection, the same columns on every backend: :data:`kslab.dataplane.rows.COLUMNS`
(described there).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .dataplane.rows import COLUMNS


def rules_path_id(chains: Sequence[str]) -> str:
    """A short stable id of the chain path (same path, same id)."""
    return hashlib.sha1(" ".join(chains).encode()).hexdigest()[:8] if chains else "-"


@functools.lru_cache(maxsize=4096)
def _chain_columns(chains: tuple[str, ...]) -> tuple[str, str]:
    unique = list(dict.fromkeys(chains))
    return rules_path_id(unique), " > ".join(unique)


def connection_row(i: int, conn, backend: str, t: float) -> dict:
    """One connection as a row (a dict of :data:`COLUMNS`), numbered ``i``."""
    row = {k: v[0] for k, v in _columns([conn], backend, [t]).items()}
    row["conn"] = i
    return row


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLUMNS)


def connections_frame(conns: Sequence, backend: str, times: Sequence[float], index: Sequence[int] | None = None) -> pd.DataFrame:
    """:func:`frame` of ``connection_row(i, conn, backend, t)`` for every connection, built column
    by column (no per-row dicts). With ``index``, connection ``i`` is ``conns[index[i]]`` (a
    :class:`~kslab.sim.network.ConnectionBatch`: each distinct connection's values are computed
    once and repeated)."""
    if index is None or not len(index):
        return pd.DataFrame(_columns(conns, backend, times), columns=COLUMNS)
    # one row per distinct connection (the same values, so pandas infers the same dtypes), then
    # repeated by index: 10,000 rows of a few distinct connections cost a take, not a build
    distinct = pd.DataFrame(_columns(conns, backend, [0.0] * len(conns)), columns=COLUMNS)
    df = distinct.take(np.asarray(index, dtype=np.intp))
    df.index = pd.RangeIndex(len(index))
    df["conn"] = np.arange(len(index), dtype=np.int64)
    df["t"] = np.asarray(times, dtype=np.float64)
    return df


def batch_frame(batch, backend: str) -> pd.DataFrame:
    """:func:`connections_frame` of a :class:`~kslab.sim.network.ConnectionBatch`."""
    return connections_frame(batch.results, backend, batch.times, batch.index)


def _columns(conns: Sequence, backend: str, times: Sequence[float]) -> dict[str, list]:
    """Every column of :data:`COLUMNS` for ``conns`` (the one definition of a connection's row)."""
    chain_cols = [_chain_columns(tuple(c.chains)) for c in conns]
    return {
        "conn": list(range(len(conns))),
        "backend": [backend] * len(conns),
        "client": [c.client.name for c in conns],
        "client_ip": [c.client.ip for c in conns],
        "ingress_node": [c.ingress_node for c in conns],
        "destination": [f"{c.dst}:{c.dport}/{c.proto}" for c in conns],
        "rules_path": [p for p, _ in chain_cols],
        "chains": [t for _, t in chain_cols],
        "endpoint_pod": [c.endpoint_pod or None for c in conns],
        "endpoint_node": [c.endpoint_node or None for c in conns],
        "endpoint_ip": [c.endpoint_ip or None for c in conns],
        "source_ip_seen": [c.source_ip_seen or None for c in conns],
        "cross_node": [bool(c.endpoint_node) and c.endpoint_node != c.ingress_node for c in conns],
        "masquerade": [c.masquerade for c in conns],
        "outcome": [c.outcome for c in conns],
        "reason": [c.reason if c.outcome != "ok" else "" for c in conns],
        "t": list(times),
        "rules_evaluated": [c.rules_evaluated for c in conns],
        "latency_ms": [None] * len(conns),  # simulated connections take no wall-clock time
    }


# ---- summaries ------------------------------------------------------------------------------------


def shares(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None) -> pd.Series:
    """Fraction of successful connections per value of ``by`` (0 for listed categories never hit)."""
    ok = df[df["outcome"] == "ok"]
    counts = ok[by].value_counts()
    if categories is not None:
        counts = counts.reindex(list(categories), fill_value=0)
    total = counts.sum()
    return (counts / total if total else counts.astype(float)).sort_index()


def counts(df: pd.DataFrame, by: str = "endpoint_pod") -> pd.Series:
    return df[df["outcome"] == "ok"][by].value_counts().sort_index()


def chi_square_uniform(df: pd.DataFrame, by: str = "endpoint_pod", categories: Sequence[str] | None = None) -> tuple[float, float]:
    """Pearson's chi-square statistic and p-value of the counts against a uniform split."""
    from scipy.stats import chisquare

    c = counts(df, by)
    if categories is not None:
        c = c.reindex(list(categories), fill_value=0)
    if len(c) < 2:
        return 0.0, 1.0
    res = chisquare(c.to_numpy())
    return float(res.statistic), float(res.pvalue)


def stickiness(df: pd.DataFrame) -> pd.DataFrame:
    """Per client IP: connections, distinct endpoints reached, and the share of its top endpoint."""
    ok = df[df["outcome"] == "ok"]
    g = ok.groupby("client_ip")["endpoint_pod"]
    return pd.DataFrame({
        "connections": g.size(),
        "endpoints": g.nunique(),
        "top_share": g.agg(lambda s: s.value_counts().iloc[0] / len(s)),
    })


def cross_node_share(df: pd.DataFrame) -> float:
    ok = df[df["outcome"] == "ok"]
    return float(ok["cross_node"].mean()) if len(ok) else 0.0


def outcomes(df: pd.DataFrame) -> pd.Series:
    return df["outcome"].value_counts()



def seen_ips(df: pd.DataFrame) -> dict[str, list[str]]:
    """Endpoint pod -> the distinct client IPs it saw (``source_ip_seen`` of its successful
    connections), pods and IPs sorted; the shape of the netns runner's ``RunResult.seen_ips()``."""
    ok = df[(df["outcome"] == "ok") & df["endpoint_pod"].notna() & df["source_ip_seen"].notna()]
    out: dict[str, set[str]] = {}
    for pod, ip in zip(ok["endpoint_pod"], ok["source_ip_seen"]):
        out.setdefault(pod, set()).add(ip)
    return {pod: sorted(ips) for pod, ips in sorted(out.items())}


INGRESS_COLUMNS = ["ingress_node", "endpoint_pod", "n", "share"]


def ingress_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Where the connections that entered each node went: one row per (``ingress_node``,
    ``endpoint_pod``) with ``n`` connections and ``share``, their fraction of all connections
    that entered that node (so each node's shares add up to 1). Failed connections count too,
    as ``endpoint_pod`` None (under ``externalTrafficPolicy: Local`` a node without a local pod
    drops them); a connection that entered no node (a load balancer with no healthy node) has
    ``ingress_node`` None. Rows sorted by node, then pod (None last)."""
    if not len(df):
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(INGRESS_COLUMNS, (object, object, "int64", "float64"))})
    counts: dict[tuple, int] = {}
    for node, pod, outcome in zip(df["ingress_node"], df["endpoint_pod"], df["outcome"]):
        key = (node if isinstance(node, str) and node else None, pod if outcome == "ok" and isinstance(pod, str) else None)
        counts[key] = counts.get(key, 0) + 1
    totals: dict[object, int] = {}
    for (node, _), n in counts.items():
        totals[node] = totals.get(node, 0) + n
    keys = sorted(counts, key=lambda k: (k[0] is None, k[0] or "", k[1] is None, k[1] or ""))
    return pd.DataFrame({"ingress_node": pd.Series([k[0] for k in keys], dtype=object),
                         "endpoint_pod": pd.Series([k[1] for k in keys], dtype=object),
                         "n": np.array([counts[k] for k in keys], dtype=np.int64),
                         "share": np.array([counts[k] / totals[k[0]] for k in keys], dtype=np.float64)},
                        columns=INGRESS_COLUMNS)


NO_NODE = "(no node)"
"""The ingress node of a connection that entered none (a load balancer without a healthy node)."""


def per_ingress_node(df: pd.DataFrame, nodes: Sequence[str] = ()) -> pd.DataFrame:
    """Connections per ingress node: ``ok`` (answered) and ``dropped`` (every other outcome: under
    ``externalTrafficPolicy: Local`` a node without a local ready pod drops them). Indexed by
    ``nodes`` first (0 where none entered), then any other ingress node, then :data:`NO_NODE`."""
    ok: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for node, outcome in zip(df["ingress_node"], df["outcome"]):
        node = node if isinstance(node, str) and node else NO_NODE
        counter = ok if outcome == "ok" else dropped
        counter[node] = counter.get(node, 0) + 1
    seen = set(ok) | set(dropped)
    order = list(nodes) + sorted(seen - set(nodes) - {NO_NODE}) + ([NO_NODE] if NO_NODE in seen else [])
    return pd.DataFrame({"ok": np.array([ok.get(n, 0) for n in order], dtype=np.int64),
                         "dropped": np.array([dropped.get(n, 0) for n in order], dtype=np.int64)},
                        index=pd.Index(order, name="ingress_node"))

# ---- checked claims (a chapter can never silently teach something false) ----------------------------


def noise(p: float, n: int, z: float = 5.0) -> float:
    """How far a share can stray from ``p`` by chance alone in ``n`` independent draws.

    ``z`` standard deviations of a binomial share, ``z * sqrt(p * (1 - p) / n)``. The kernel's
    ``--mode random`` is truly random (the simulator is seeded), so a chapter's claim about a split
    uses this bound rather than a fixed percentage: at the default ``z = 5`` a correct kernel fails
    one check in about 1.7 million, while a real change of the split (1/2 instead of 1/3 over a
    few hundred connections) still fails it.

    >>> round(noise(1 / 3, 800), 3)
    0.083
    """
    if n <= 0:
        raise ValueError(f"noise(): n must be a positive number of draws, got {n}")
    return z * float(np.sqrt(p * (1 - p) / n))


class ClaimFailed(AssertionError):
    """The behaviour a chapter teaches did not happen."""


def claim(condition: bool, confirmation: str, failure: str) -> None:
    """Print a one-line confirmation, or raise :class:`ClaimFailed` with ``failure``."""
    if not condition:
        raise ClaimFailed(failure)
    print(f"✓ {confirmation}")


def claim_uniform(df: pd.DataFrame, categories: Sequence[str], tolerance: float = 0.02, by: str = "endpoint_pod") -> None:
    """Each category got 1/len(categories) of the successful connections, within ``tolerance``."""
    s = shares(df, by=by, categories=categories)
    n = len(categories)
    worst = float((s - 1 / n).abs().max()) if n else 0.0
    claim(
        n > 0 and worst <= tolerance,
        f"each of the {n} {by.replace('_', ' ')}s got {1 / n:.1%} ± {tolerance:.0%} of {int((df['outcome'] == 'ok').sum())} "
        f"connections (largest deviation {worst:.1%})",
        f"the split is not uniform: shares {dict(s.round(3))}, largest deviation {worst:.1%} > {tolerance:.0%}",
    )
