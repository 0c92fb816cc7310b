"""kslab.scale: the recorded data chapter 05 shows on sim, the timeout path of a kernel sample
(killed process group, namespaces gone, reported timed_out with its bound, no number), input
errors, and the benchmark's --quick run (root)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kslab import scale
from kslab.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


# ---- the recorded file ------------------------------------------------------------------------


def test_recorded_file_has_schema_meta_and_label():
    df, meta = scale.recorded()
    for key in scale.META_KEYS:
        assert meta.get(key), f"meta lacks {key}"
    assert meta["label"].startswith("RECORDED on ") and "not measured now" in meta["label"]
    assert meta["kernel"] in meta["label"] and meta["date"] in meta["label"]
    assert meta["command"].startswith("python3 benchmarks/bench_kube_proxy.py") and "--record" in meta["command"]
    assert len(meta["loadavg"].split()) >= 3
    assert set(df["measure"]) == {"render", "restore", "latency"}
    for measure, keys in scale.ROW_KEYS.items():
        part = df[df["measure"] == measure]
        missing = [k for k in keys if k not in part.columns or part[k].isna().all()]
        assert not missing, f"{measure} rows lack {missing}"
    restore = df[df["measure"] == "restore"]
    assert set(restore["backend"]) == set(scale.BACKENDS)
    # nothing extrapolated: a timed-out sample has no seconds, every other sample has them
    assert restore[restore["timed_out"] == True]["seconds"].isna().all()  # noqa: E712
    done = restore[restore["timed_out"] == False]  # noqa: E712
    assert done["seconds"].notna().all() and (done["seconds"] > 0).all()
    # session caps (plan §0.6): no nft load above 5k, no iptables-nft above 2k
    assert restore[restore["backend"] == "nft"]["services"].max() <= 5000
    assert restore[restore["backend"] == "iptables-nft"]["services"].max() <= 2000
    latency = df[df["measure"] == "latency"]
    assert set(latency["mode"]) == {"iptables", "nftables"}
    ok = latency[latency["timed_out"] == False]  # noqa: E712
    assert (ok["p01"] <= ok["p50"]).all() and (ok["p50"] <= ok["p90"]).all() and (ok["p90"] <= ok["p99"]).all()
    render = df[df["measure"] == "render"]
    assert set(render["mode"]) == {"iptables", "nftables"}


def test_recorded_missing_or_wrong_schema_is_a_one_line_input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "recorded_path", lambda name=scale.RECORDED: tmp_path / f"{name}.json")
    with pytest.raises(InputError, match="bench_kube_proxy.py --record"):
        scale.recorded("nothing")
    (tmp_path / "old.json").write_text(json.dumps({"schema": 0, "meta": {}, "rows": []}))
    with pytest.raises(InputError, match="schema"):
        scale.recorded("old")


def test_write_recorded_roundtrip_turns_nan_into_null(tmp_path, monkeypatch):
    frame = pd.DataFrame([{"measure": "restore", "backend": "nft", "services": 5, "seconds": float("nan"), "timed_out": True}])
    meta = {"command": "x", "kernel": "k", "iptables": "i", "nft": "n", "date": "d", "loadavg": "0 0 0 1/1 1"}
    path = scale.write_recorded(tmp_path / "r.json", [frame], meta)
    raw = json.loads(path.read_text())
    assert raw["rows"][0]["seconds"] is None and raw["meta"]["label"].startswith("RECORDED on d")
    monkeypatch.setattr(scale, "recorded_path", lambda name=scale.RECORDED: tmp_path / f"{name}.json")
    df, back = scale.recorded("r")
    assert back["label"] == raw["meta"]["label"] and pd.isna(df.loc[0, "seconds"])


# ---- pure helpers ---------------------------------------------------------------------------------


def test_ratio_to_smallest_per_group_and_nan_for_timeouts():
    df = pd.DataFrame({"backend": ["a", "a", "a", "b", "b"], "services": [1000, 200, 5000, 200, 1000],
                       "seconds": [2.0, 0.5, None, 1.0, 3.0]})
    out = scale.ratio_to_smallest(df, "seconds", ["backend"])
    assert list(out["ratio_to_smallest"][:2]) == [4.0, 1.0] and math.isnan(out["ratio_to_smallest"][2])
    assert list(out["ratio_to_smallest"][3:]) == [1.0, 3.0]


def test_service_depths_follow_kube_services_in_the_rendered_rules():
    """The depth of a ClusterIP is its rule's place in KUBE-SERVICES as rendered (read from the
    restore text), and the order kube-proxy writes Services in is the state's order."""
    from kslab.proxy.config import ProxyConfig
    from kslab.proxy.proxier import Proxier
    from kslab.synthetic import synthetic_cluster

    state = synthetic_cluster(40, 2)
    node = state.nodes[0].name
    loaded = []
    result = Proxier(ProxyConfig.for_node(state, node)).sync(state.services, state.endpoint_slices,
                                                             lambda rs: loaded.append(rs), now=0.0)
    text = result.ruleset.raw_text()
    depths = scale.service_depths(state, text)
    assert len(depths) == 40 and sorted(depths.values()) == [i / 40 for i in range(40)]
    first = next(line for line in text.splitlines() if line.startswith("-A KUBE-SERVICES ") and " -d " in line)
    assert depths[first.split(" -d ")[1].split()[0].split("/")[0]] == 0
    assert depths == scale.service_depths(state)  # nftables mode: the same order


def test_front_and_back_medians_split_by_depth():
    times = [1, 2, 3, 10, 20, 30, 5]
    depth = [0.0, 0.1, 0.2, 0.8, 0.9, 0.99, 0.5]
    assert scale._front_back(times, depth) == (2, 20)
    assert scale._front_back([1.0], [0.5]) == (None, None)
    with pytest.raises(ValueError):
        scale._front_back([1.0], [])


def test_percentiles_match_numpy_linear():
    import numpy as np

    xs = [0.5, 0.1, 0.3, 2.0, 0.2, 0.9, 0.25]
    got = scale._percentiles(xs)
    assert got == pytest.approx({f"p{p:02d}": float(np.percentile(xs, p)) for p in scale.PERCENTILES})


def test_progress_bar_writes_one_line_per_step():
    out = io.StringIO()
    bar = scale.Progress(4, "restore", stream=out)
    for i in range(4):
        bar.step(f"step {i}")
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 5 and "[######------------------] 1/4" in text and "4/4" in text and text.endswith("\n")
    silent = io.StringIO()
    scale.Progress(2, stream=silent, enabled=False).step("x")
    assert silent.getvalue() == ""


@pytest.mark.parametrize("call, field", [
    (lambda: scale.restore_time("ipvs", 10), "backend"),
    (lambda: scale.restore_time("nft", 0), "services"),
    (lambda: scale.restore_time("nft", 10, endpoints=True), "endpoints"),
    (lambda: scale.restore_time("nft", 10, timeout=0), "timeout"),
    (lambda: scale.first_packet_latency("ipvs", 10), "mode"),
    (lambda: scale.first_packet_latency("nftables", 10, backend="iptables-legacy"), "backend"),
    (lambda: scale.restore_table({"nft": (0,)}), "sizes"),
])
def test_bad_input_is_a_one_line_input_error_naming_the_field(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


# ---- the timeout path (a real child process group; namespaces need root) ------------------------

SLOW_CHILD = """
import json, subprocess, sys, time
args = json.loads(sys.argv[1])
subprocess.run(["ip", "netns", "add", args["ns"]], check=True)   # what the real child does first
grandchild = subprocess.Popen(["sleep", "60"])                     # e.g. iptables-restore under ip netns exec
open(args["pidfile"], "w").write(str(grandchild.pid))
time.sleep(60)
"""


@pytest.mark.netns
def test_a_slow_sample_is_killed_with_its_process_group_and_reported_timed_out(monkeypatch, tmp_path):
    pidfile = tmp_path / "pid"

    def slow_argv(kind, args):
        return [sys.executable, "-c", SLOW_CHILD, json.dumps({**args, "pidfile": str(pidfile)})]

    monkeypatch.setattr(scale, "_sample_argv", slow_argv)
    t0 = time.monotonic()
    sample = scale.restore_time("iptables-legacy", 20000, timeout=1.5)
    took = time.monotonic() - t0
    assert sample.timed_out and sample.seconds is None and sample.lines is None and sample.timeout == 1.5
    assert "timed out (> 1.5 s)" in str(sample)
    assert 1.5 <= took < 10
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{grandchild}").exists() or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2], \
        "the sample's grandchild survived the timeout"
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"kslab-scale-{os.getpid()}-" not in names, "the sample's namespace was left behind"


@pytest.mark.netns
def test_after_a_timeout_restore_table_skips_the_larger_sizes_without_numbers(monkeypatch):
    calls = []

    def fake(backend, services, endpoints=10, *, partial=False, timeout=60.0):
        calls.append((backend, services, partial))
        if services >= 1000:
            return scale.RestoreSample(backend, services, endpoints, partial, None, timed_out=True, timeout=timeout)
        return scale.RestoreSample(backend, services, endpoints, partial, 0.01 * services, lines=43 * services)

    monkeypatch.setattr(scale, "restore_time", fake)
    df = scale.restore_table({"nft": (200, 1000, 5000)}, timeout=7, progress=False)
    # the full load of 1000 timed out: its partial sync (which needs that load) and the larger size are not run
    assert calls == [("nft", 200, False), ("nft", 200, True), ("nft", 1000, False)]
    timed = df[df["services"] >= 1000]
    assert len(timed) == 4 and timed["timed_out"].all() and timed["seconds"].isna().all() and (timed["timeout"] == 7).all()
    assert list(timed["skipped"]) == [False, True, True, True]


@pytest.mark.netns
def test_a_small_real_sample_loads_and_cleans_up():
    full = scale.restore_time("iptables-legacy", 50, timeout=60)
    part = scale.restore_time("iptables-legacy", 50, partial=True, timeout=60)
    assert not full.timed_out and full.error is None and full.seconds > 0, full
    assert full.lines > 43 * 50 and part.lines < full.lines / 10, (full, part)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"kslab-scale-{os.getpid()}-" not in names


@pytest.mark.netns
@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_first_packet_latency_connects_through_the_nodes_rules(mode):
    """Every connection to a ClusterIP is answered (the node's rules DNAT it to an endpoint address
    local to the node): without kube-proxy's rules nothing listens on a ClusterIP, so ok == n
    proves the rules were loaded and used."""
    df = scale.first_packet_latency(mode, 50, n=40, seed=3, timeout=120)
    row = df.iloc[0]
    assert row["error"] is None and not row["timed_out"], row["error"]
    assert row["ok"] == 40 and row["backend"] == ("nft" if mode == "nftables" else "iptables-legacy")
    assert 0 < row["p01"] <= row["p50"] <= row["p90"] <= row["p99"] < 1000
    assert 0 < row["front_p50"] < 1000 and 0 < row["back_p50"] < 1000
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"kslab-scale-{os.getpid()}-" not in names


@pytest.mark.netns
def test_bench_kube_proxy_quick_smoke(tmp_path):
    modes = "iptables,nftables" if _nftables_ready() else "iptables"
    out = tmp_path / "rec.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_kube_proxy.py"), "--quick", "--modes", modes, "-n", "100",
           "--record", str(out)] + [f"--limit={k}=200" for k in (*scale.BACKENDS, *scale.MODES)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    for title in ("render time per Service", "kernel load time per backend", "first-packet latency"):
        assert title in done.stdout
    data = json.loads(out.read_text())
    assert data["schema"] == scale.SCHEMA and data["meta"]["loadavg"]
    rows = pd.DataFrame(data["rows"])
    assert set(rows["measure"]) == {"render", "restore", "latency"}
    assert (rows[rows["measure"] == "restore"]["services"] == 200).all()


def _nftables_ready() -> bool:
    try:
        import kslab.nft.kernel  # noqa: F401
        import kslab.proxy.nftables  # noqa: F401
    except ImportError:
        return False
    return True
