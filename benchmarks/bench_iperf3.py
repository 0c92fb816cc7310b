"""Chapter 10's iperf3 runs on the netns backend: real iperf3 between the lab's pod namespaces.

    sudo python3 benchmarks/bench_iperf3.py                        # print the table (about 2 minutes)
    sudo python3 benchmarks/bench_iperf3.py --record data/recorded/iperf3.json   # and write the recording

Runs the study's four tests (:data:`kslab.iperf3.STUDY_TESTS`: ``-t 5``, ``-u -R -t 5``,
``--bidir -t 5``, ``-P 30 -t 5``) plus UDP without a rate cap (``-u -b 0 -t 5``) on every path kind
(:data:`kslab.bandwidth.PATH_KINDS`): the server pod from the client beside it (same-node) and
from the client on another node (cross-node), the ``iperf3-server`` Service from that client
(clusterip), and the NodePort Service on that client's node from ``mypc`` (nodeport). Pods are
found by their labels (``app=iperf3-client,pair=same-node`` ...), never by generated names.

Prints one row per run (receiver Mbit/s of the test's main direction) and the ratios
cross-node/same-node, clusterip/cross-node and nodeport/cross-node per test. iperf3's figures
are CPU-bound on one host: they move with the machine's load, which the recording's meta keeps
(``/proc/loadavg`` at the start and the end, this process's nice value). Record with ``nice -n 0``
on an otherwise idle machine. ``--record`` writes ``{"schema": 1, "meta": {...}, "runs": [{"test",
"path", "flags", "json"}]}``, what the sim backend shows (:func:`kslab.bandwidth.recorded_run`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kslab import Lab, scale  # noqa: E402
from kslab.bandwidth import PATH_KINDS, RECORDING_SCHEMA, recording_label  # noqa: E402
from kslab.iperf3 import C2S, S2C, STUDY_TESTS, IperfOptions  # noqa: E402
from kslab.resources import study_lab  # noqa: E402

TESTS: dict[str, IperfOptions] = {**STUDY_TESTS, "udp-unlimited": IperfOptions(udp=True, bitrate="0", seconds=5)}
SAME, CROSS, SERVER = "app=iperf3-client,pair=same-node", "app=iperf3-client,pair=cross-node", "app=iperf3-server"


def paths(lab: Lab) -> dict[str, tuple[str, str]]:
    """(client, to) for each path kind, by the add-on's labels."""
    cross_node = lab.cluster.pod(lab.pods("pair=cross-node")[0]).node_name
    return {"same-node": (SAME, SERVER), "cross-node": (CROSS, SERVER), "clusterip": (CROSS, "iperf3-server"),
            "nodeport": ("mypc", f"{cross_node}:iperf3-server-nodeport")}


def main_direction(options: IperfOptions) -> str:
    return S2C if options.reverse else C2S


def meta(argv: list[str]) -> dict:
    import shutil
    import subprocess

    m = scale.environment_meta(["python3", "benchmarks/bench_iperf3.py", *argv])
    exe = shutil.which("iperf3")
    m["iperf3"] = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0] if exe else "not installed"
    m["nice"] = os.nice(0)
    m["backend"] = "netns"
    return m


def label(m: dict) -> str:
    return recording_label({k: v for k, v in m.items() if k != "label"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", metavar="PATH", help="write the recording (data/recorded/iperf3.json)")
    ap.add_argument("--tests", default=",".join(TESTS), help="comma-separated: " + ", ".join(TESTS))
    ap.add_argument("--paths", default=",".join(PATH_KINDS), help="comma-separated: " + ", ".join(PATH_KINDS))
    a = ap.parse_args()
    tests = [t for t in a.tests.split(",") if t]
    kinds = [k for k in a.paths.split(",") if k]
    for t in tests:
        if t not in TESTS:
            ap.error(f"unknown test {t!r}: use {', '.join(TESTS)}")
    for k in kinds:
        if k not in PATH_KINDS:
            ap.error(f"unknown path {k!r}: use {', '.join(PATH_KINDS)}")
    m = meta(sys.argv[1:])
    print(f"# {m['date']} kernel {m['kernel']}, {m['iperf3']}, {m['cpus']} CPUs, nice {m['nice']}, /proc/loadavg {m['loadavg']}")
    runs, rows = [], []
    bar = scale.Progress(len(tests) * len(kinds), "iperf3")
    with Lab(backend="netns", seed=10) as lab:
        lab.apply(study_lab() / "iperf3")
        targets = paths(lab)
        for test in tests:
            opts = TESTS[test]
            for kind in kinds:
                client, to = targets[kind]
                bar.show(f"{test} {kind}")
                t0 = time.monotonic()
                run = lab.iperf3(client, to, opts, progress=False)
                assert run.path.kind == kind, (run.path.kind, kind)
                s = run.result.sum(main_direction(opts), "receiver")
                sent = run.result.sum(main_direction(opts), "sender")
                rows.append({"test": test, "path": kind, "flags": opts.flags(), "Mbit_s": s.bits_per_second / 1e6,
                             "sender_Mbit_s": sent.bits_per_second / 1e6, "retransmits": sent.retransmits,
                             "lost_percent": s.lost_percent, "seconds": time.monotonic() - t0, "hops": run.path.hops_text()})
                runs.append({"test": test, "path": kind, "flags": opts.flags(), "command": run.command,
                             "hops": run.path.hops_text(), "json": run.result.raw})
                bar.step(f"{test} {kind}")
    bar.close()
    try:
        m["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    except OSError:
        m["loadavg_end"] = "unknown"
    m["label"] = label(m)
    import pandas as pd

    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.drop(columns=["hops"]).to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    wide = df.pivot(index="test", columns="path", values="Mbit_s")
    ratios = pd.DataFrame(index=wide.index)
    for num, den in (("cross-node", "same-node"), ("clusterip", "cross-node"), ("nodeport", "cross-node")):
        if num in wide and den in wide:
            ratios[f"{num}/{den}"] = wide[num] / wide[den]
    print("\nratios (receiver Mbit/s):")
    print(ratios.to_string(float_format=lambda x: f"{x:.2f}"))
    print(f"\n# load average at the end: {m['loadavg_end']}")
    if a.record:
        path = Path(a.record)
        path.parent.mkdir(parents=True, exist_ok=True)
        # one run per line, its JSON compact: small, and a diff shows which runs changed
        body = ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in runs)
        path.write_text('{"schema": %d,\n "meta": %s,\n "runs": [\n%s\n ]}\n'
                        % (RECORDING_SCHEMA, json.dumps(m, sort_keys=True), body))
        json.loads(path.read_text())
        print(f"recorded: {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
