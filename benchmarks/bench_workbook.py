"""Benchmark the workbook (issue 5 targets): each chapter executes in under 20 s on sim, and a
slider change (recompute 10,000 connections + redraw) takes under 150 ms of Python time.

    python3 benchmarks/bench_workbook.py [--chapters] [--sliders] [--repeat 5] [--lang ko|en]

Chapters: every generated notebook of one edition (``--lang``, default ko: learner and solution
versions; the editions share their code) executed top to bottom by nbclient in a fresh kernel on
the sim backend, wall time including the kernel's start.
Sliders: every control of the chapters' panels (01 replicas and connections, 02 affinity and
clients, 04 IPVS scheduler and load, 04 cross-node client and replicas, 06 replicas through
mypc -> myk8s-worker:NodePort, 07 externalTrafficPolicy
toggle, pods per worker and entry; 07's cache is emptied before each change, so every change
there is a cold one: copy, patch, place, 600 connections, redraw), driven in this process
the way a browser drives them: the frontend's comm message is applied with ``Widget.set_state``,
which runs the observer (the pure compute function, then the FigureWidget update), and every
widget message the kernel would send is serialised to JSON as a kernel does. Median and worst
wall time of ``--repeat`` changes, ratios to the target, and the process CPU time beside them
(on a shared machine wall time includes waiting for a core; CPU time does not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHAPTER_TARGET_S = 20.0
SLIDER_TARGET_MS = 150.0


def bench_chapters(lang: str = "ko") -> list[tuple[str, float]]:
    import nbformat
    from nbclient import NotebookClient

    os.environ["KSLAB_BACKEND"] = "sim"
    edition = ROOT / "notebooks" / lang
    paths = sorted(edition.glob("[0-9]*.ipynb")) + sorted((edition / "solutions").glob("[0-9]*.ipynb"))
    out = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       allow_errors=False).execute()
        seconds = time.perf_counter() - t0
        name = ("solutions/" if path.parent.name == "solutions" else "") + path.name
        out.append((name, seconds))
        print(f"chapter {name:<40} {seconds:6.2f} s   ratio to the {CHAPTER_TARGET_S:.0f} s target {seconds / CHAPTER_TARGET_S:.2f}")
    return out


class _KernelComm:
    """What a Jupyter kernel does with a widget message that this process would drop: the
    ``comm`` package's default comm publishes nothing, a kernel serialises every message to
    JSON (binary buffers go as they are). Installed as the comm factory for the benchmark."""

    @staticmethod
    def install() -> None:
        import json

        import comm

        class SerialisingComm(comm.DummyComm):
            def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
                json.dumps({"msg_type": msg_type, "data": data, "metadata": metadata or {}}, default=str)

        comm.create_comm = SerialisingComm


def _browser_sets(widget):
    """What a browser's change does to ``widget``: the frontend sends a comm message with the new
    state (a slider's ``value``, a selection's ``index``) and the kernel applies it with
    ``Widget.set_state``, which runs the observers (compute, then figure update) and echoes."""
    def change(v) -> None:
        before = widget.value
        if hasattr(widget, "index") and hasattr(widget, "options"):
            widget.set_state({"index": list(widget.options).index(v)})
        else:
            widget.set_state({"value": v})
        assert widget.value != before, f"{widget.description}: {v!r} is no change (nothing would be computed)"

    return change


def _changes(setter, values, repeat: int) -> tuple[list[float], list[float]]:
    """Set ``values`` in turn ``repeat`` times: (wall ms, process CPU ms) per change."""
    walls, cpus = [], []
    for k in range(repeat):
        v = values[k % len(values)]
        c0, t0 = time.process_time(), time.perf_counter()
        setter(v)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return walls, cpus


def bench_sliders(repeat: int, freeze: bool = True) -> list[tuple[str, float, float]]:
    """Every slider and control of the chapters' panels, built as the chapters build them
    (the connections slider set to its maximum, 10,000, first), each driven ``repeat`` times.
    Chapters 01, 02 and 04 call ``gc.freeze()`` in the cell that builds their first panel; so
    does this process unless ``freeze`` is False (then a full collection of everything loaded,
    100-200 ms, lands on some change)."""
    import gc

    _KernelComm.install()
    chapter_freeze = gc.freeze if freeze else (lambda: None)
    import kslab
    from kslab.views import AffinityPanel, CrossNodePanel, DistributionPanel, SchedulerPanel

    rows = []

    def report(name: str, times: tuple[list[float], list[float]]) -> None:
        walls, cpus = times
        med, worst = statistics.median(walls), max(walls)
        rows.append((name, med, worst))
        print(f"slider {name:<44} median {med:6.1f} ms  worst {worst:6.1f} ms   ratio to the "
              f"{SLIDER_TARGET_MS:.0f} ms target: median {med / SLIDER_TARGET_MS:.2f}, worst {worst / SLIDER_TARGET_MS:.2f}"
              f"   (CPU median {statistics.median(cpus):6.1f} ms, worst {max(cpus):6.1f} ms)")

    lab = kslab.Lab(seed=1)  # chapter 01
    panel = DistributionPanel(lab, replicas=3, connections=3000)
    chapter_freeze()
    panel.connections.value = 10000
    report("ch01 replicas (10,000 connections)", _changes(_browser_sets(panel.replicas), [4, 5, 6, 7, 3], repeat))
    assert len(panel.figure.data[0].x) == panel.replicas.value
    report("ch01 connections (10,000 <-> 9,000)", _changes(_browser_sets(panel.connections), [9000, 10000], repeat))
    lab6 = kslab.Lab(seed=1)  # chapter 06: the same panel, entered from mypc through a worker's nodePort
    nodeport = DistributionPanel(lab6, src="mypc", to=f"myk8s-worker:{lab6.cluster.service('svc-nodeport').ports[0].node_port}",
                                 replicas=3, connections=3000)
    chapter_freeze()
    nodeport.connections.value = 10000
    report("ch06 replicas, mypc -> myk8s-worker:NodePort", _changes(_browser_sets(nodeport.replicas), [4, 5, 6, 7, 3], repeat))
    assert len(nodeport.figure.data[0].x) == nodeport.replicas.value
    lab2 = kslab.Lab(seed=2)  # chapter 02
    aff = AffinityPanel(lab2, clients=8)
    chapter_freeze()
    report("ch02 affinity toggle", _changes(_browser_sets(aff.affinity), ["None", "ClientIP"], repeat))
    report("ch02 clients (1 .. 250)", _changes(_browser_sets(aff.clients), [250, 1, 120, 8, 240], repeat))
    report("ch02 timeoutSeconds (5 .. 120)", _changes(_browser_sets(aff.timeout), [5, 120, 30], repeat))
    report("ch02 pause between rounds (0 .. 60 s)", _changes(_browser_sets(aff.pause), [0, 60, 10], repeat))
    report("ch02 ready endpoints (1 .. 3)", _changes(_browser_sets(aff.endpoints), [1, 3, 2], repeat))
    sched = SchedulerPanel(scheduler="sh")  # chapter 04
    chapter_freeze()
    report("ch04 IPVS scheduler (3,000 connections)", _changes(_browser_sets(sched.scheduler),
                                                              ["wrr", "lc", "iptables", "mh", "sh"], repeat))
    report("ch04 IPVS load (conn/s)", _changes(_browser_sets(sched.rate), [50.1, 0.32, 5.0, 2.0], repeat))
    report("ch04 IPVS affinity (persistence)", _changes(_browser_sets(sched.affinity), ["ClientIP", "None"], repeat))
    lab4 = kslab.Lab(seed=1)
    cross = CrossNodePanel(lab4, max_replicas=8)
    report("ch04 cross-node client", _changes(_browser_sets(cross.client),
                                              ["webpod2", "net-pod", "webpod3", "webpod1"], repeat))
    report("ch04 cross-node replicas (up to 2 .. 12)", _changes(_browser_sets(cross.max_replicas),
                                                               [12, 2, 10, 8, 11], repeat))
    policy = _traffic_policy_panel()  # chapter 07
    chapter_freeze()

    def cold(widget):  # every change computes: the panel's results from earlier changes are forgotten first
        sets = _browser_sets(widget)
        return lambda v: (policy._cache.clear(), sets(v))

    report("ch07 externalTrafficPolicy toggle (600 conn.)", _changes(cold(policy.policy), ["Cluster", "Local"], repeat))
    for node, slider in policy.sliders.items():
        report(f"ch07 pods on {node} (0 .. 3)", _changes(cold(slider), [0, 3, 2, 1], repeat))
    report("ch07 entry (4 nodes, load balancer)", _changes(cold(policy.entry), [
        "myk8s-worker", "load balancer", "myk8s-control-plane", "myk8s-worker3", "myk8s-worker2"], repeat))
    return rows


def _traffic_policy_panel():
    """Chapter 07's panel on the study's lab with svc-lb, behind its load balancer, Local."""
    import kslab
    from kslab.resources import study_lab
    from kslab.views import TrafficPolicyPanel

    lab = kslab.Lab(seed=1)
    lab.apply(study_lab() / "loadbalancer")
    return TrafficPolicyPanel(lab, policy="Local", entry="lb")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chapters", action="store_true")
    ap.add_argument("--lang", choices=["ko", "en"], default="ko", help="the edition whose chapters --chapters runs")
    ap.add_argument("--sliders", action="store_true")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--no-freeze", action="store_true", help="do not gc.freeze() where the chapters do")
    a = ap.parse_args()
    both = not (a.chapters or a.sliders)
    worst_ratio = 0.0
    if a.sliders or both:
        rows = bench_sliders(a.repeat, freeze=not a.no_freeze)
        worst_ratio = max(worst_ratio, max(worst for _, _, worst in rows) / SLIDER_TARGET_MS)
    if a.chapters or both:
        chapters = bench_chapters(a.lang)
        worst_ratio = max(worst_ratio, max(s for _, s in chapters) / CHAPTER_TARGET_S)
    print(f"worst ratio to target: {worst_ratio:.2f} ({'within' if worst_ratio <= 1 else 'OVER'} target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
