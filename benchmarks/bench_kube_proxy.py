"""Benchmark: kube-proxy at scale, iptables vs nftables (issue 14, chapter 05).

Prints, all measured in this one run (so every ratio compares numbers taken on the same machine
under the same load):

1. render time per Service at 1k / 10k / 30k synthetic Services (x 10 endpoints) for both proxy
   modes, with the ratio to 1k ("linear" = per-Service time within 1.5x of 1k's);
2. the kernel's load time per size per backend (``iptables-legacy-restore``,
   ``iptables-nft-restore``, ``nft -f``), full and partial (one changed Service after a full
   sync), with the ratio to the backend's smallest size; a sample past ``--timeout`` is killed
   and printed as timed out (never extrapolated), and the backend's larger sizes are skipped;
3. first-packet latency (``connect()`` of new connections to random ClusterIPs through a node
   namespace) per size for both modes, p01/p50/p90/p99 in ms, with the p50 ratio to the smallest size.

Needs root for 2 and 3 (scratch namespaces; the root namespace is never touched). nft and
iptables-nft grow superlinearly (plan §5): their sizes stop at 2k/5k.

    python3 benchmarks/bench_kube_proxy.py [--quick] [--timeout 120] [--limit nft=2000]
                                           [--record data/recorded/kube-proxy-scale.json]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from kslab import scale  # noqa: E402
from kslab.errors import EnvironmentProblem, InputError  # noqa: E402

RENDER_SIZES = (1000, 10000, 30000)
QUICK_RENDER_SIZES = (200, 1000)
LINEAR_WITHIN = 1.5


def render_rows(sizes, modes, endpoints: int) -> pd.DataFrame:
    """Render time (the mode's full sync text, rendered from scratch) per size and mode."""
    from kslab.proxy.config import ProxyConfig
    from kslab.synthetic import synthetic_cluster

    rows = []
    bar = scale.Progress(len(sizes) * len(modes), "render")
    for n in sizes:
        state = synthetic_cluster(n, endpoints)
        for mode in modes:
            bar.step(f"{mode} {n}")
            if mode == "nftables":
                from kslab.proxy.nftables import render
            else:
                from kslab.proxy.iptables import render
            cfg = ProxyConfig.for_node(state, state.nodes[0].name, mode=mode)
            gc.collect()
            t0 = time.perf_counter()
            ruleset = render(state.services, state.endpoint_slices, cfg)
            text = ruleset.raw_text()
            seconds = time.perf_counter() - t0
            rows.append({"measure": "render", "mode": mode, "services": n, "endpoints": endpoints, "seconds": seconds,
                         "per_service_us": seconds / n * 1e6, "lines": text.count("\n"),
                         "operations": ruleset.operations if mode == "nftables" else None})
            del ruleset, text
        del state
    bar.close()
    df = scale.ratio_to_smallest(pd.DataFrame(rows), "seconds", ["mode"])
    per = scale.ratio_to_smallest(df, "per_service_us", ["mode"])["ratio_to_smallest"]
    df["per_service_ratio"] = per
    df["linear"] = per <= LINEAR_WITHIN
    return df


def limited(sizes: dict, limits: dict) -> dict:
    return {k: tuple(n for n in v if n <= limits.get(k, n)) for k, v in sizes.items()}


def parse_limits(items) -> dict:
    out = {}
    for item in items or ():
        key, _, value = item.partition("=")
        if key not in (*scale.BACKENDS, *scale.MODES) or not value.isdigit():
            raise InputError("--limit", f"{item!r} is not BACKEND=N or MODE=N",
                             "e.g. --limit nft=2000 --limit nftables=2000 (backends: " + ", ".join(scale.BACKENDS) + ")")
        out[key] = int(value)
    return out


def show(title: str, df: pd.DataFrame, columns) -> None:
    print(f"\n== {title}")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(df[[c for c in columns if c in df.columns]].to_string(index=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (the chapter's QUICK sizes), 500 connections")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per kernel sample before it is killed")
    ap.add_argument("--endpoints", type=int, default=scale.ENDPOINTS)
    ap.add_argument("-n", type=int, default=None, help="connections per latency sample (default 2000, --quick 500)")
    ap.add_argument("--limit", action="append", metavar="BACKEND=N", help="largest size for a backend or mode")
    ap.add_argument("--modes", default="iptables,nftables", help="proxy modes to render/measure (comma-separated)")
    ap.add_argument("--skip", default="", help="parts to skip: render,restore,latency (comma-separated)")
    ap.add_argument("--record", metavar="PATH", help="write the data and meta (kslab.scale.recorded reads it)")
    a = ap.parse_args()
    try:
        limits = parse_limits(a.limit)
        modes = tuple(m for m in a.modes.split(",") if m)
        for m in modes:
            if m not in scale.MODES:
                raise InputError("--modes", f"unknown mode {m!r}", "use iptables,nftables")
    except InputError as err:
        print(f"bench_kube_proxy: {err}", file=sys.stderr)
        return 2
    skip = set(a.skip.split(",")) - {""}
    meta = scale.environment_meta(["python3", "benchmarks/bench_kube_proxy.py", *sys.argv[1:]])
    print(f"# {meta['date']} kernel {meta['kernel']}, {meta['iptables']}, nft {meta['nft']}, "
          f"{meta['cpus']} CPUs, /proc/loadavg {meta['loadavg']}")
    frames = []

    if "render" not in skip:
        df = render_rows(QUICK_RENDER_SIZES if a.quick else RENDER_SIZES, modes, a.endpoints)
        show("render time per Service (one core of Python; ratio to the smallest size)", df,
             ["mode", "services", "seconds", "per_service_us", "per_service_ratio", "linear", "lines", "operations"])
        frames.append(df)

    kernel_ok = os.geteuid() == 0
    if not kernel_ok:
        print("\n(restore and latency need root: skipped)")
    backends = [b for b in scale.BACKENDS if scale._mode_of(b) in modes]
    if kernel_ok and "restore" not in skip:
        sizes = limited({b: (scale.QUICK if a.quick else scale.SIZES)[b] for b in backends}, limits)
        df = scale.restore_table(sizes, endpoints=a.endpoints, timeout=a.timeout)
        show(f"kernel load time per backend (each sample in a fresh namespace, timeout {a.timeout:g} s; "
             "ratio to the backend's smallest size)", df,
             ["backend", "partial", "services", "seconds", "per_service_ms", "ratio_to_smallest", "lines", "operations",
              "timed_out", "skipped", "error"])
        frames.append(df)

    if kernel_ok and "latency" not in skip:
        sizes = limited({m: (scale.QUICK_LATENCY if a.quick else scale.LATENCY_SIZES)[m] for m in modes}, limits)
        n = a.n or (500 if a.quick else 2000)
        try:
            df = scale.latency_table(sizes, n=n, timeout=a.timeout)
        except EnvironmentProblem as err:
            print(f"bench_kube_proxy: {err}", file=sys.stderr)
            return 1
        show(f"first-packet latency, ms ({n} new connections per size; p50 ratio to the smallest size)", df,
             ["mode", "backend", "services", "p01", "p50", "p90", "p99", "mean", "front_p50", "back_p50", "ratio_to_smallest",
              "timed_out", "error"])
        frames.append(df)

    if a.record:
        path = scale.write_recorded(a.record, frames, meta)
        print(f"\nrecorded: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
