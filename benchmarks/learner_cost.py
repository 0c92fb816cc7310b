"""What one learner costs on a shared hub (issue 17, a class on shared infrastructure).

    python3 benchmarks/learner_cost.py [--lang en|ko|both] [--record data/recorded/learner-cost.json]

Each learner notebook of one edition (``--lang``, default en; ``both`` runs the two) is executed
top to bottom by nbclient in a fresh kernel on the sim backend (``KSLAB_BACKEND=sim``), the way a
learner's "Run all" does it. For each one the kernel process is measured by the kernel's own
accounting, read from /proc before the kernel is shut down:

- peak memory: ``VmHWM`` of /proc/PID/status (the resident set's high-water mark, so no sample is
  missed), plus the resident set of any child processes at the end (none on sim);
- CPU seconds: user + system time of /proc/PID/stat (ticks / SC_CLK_TCK);
- wall seconds, kernel start included.

Beside them: the idle kernel (started, one empty cell run) and the JupyterLab server a learner's
pod runs (started with ``--no-browser`` on a free port, resident set after ``/api`` and ``/lab``
answered). :func:`recommend` turns the rows into the per-learner guarantee/limit and the hub's
size for 30 and 100 learners; deploy/jupyterhub/config.yaml carries those numbers and
tests/test_binder.py checks that they equal the recording's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# the sizing rules (docs/classroom.md explains them)
MEMORY_STEP_MIB = 128          # guarantees and limits are rounded up to this
LIMIT_HEADROOM = 1.25          # the limit: the server and two kernels at the worst chapter's peak, +25%
RUN_ALL_TARGET_S = 120         # the CPU guarantee: the worst chapter's "Run all" finishes in 2 min with every learner busy
CPU_STEP = 0.05
CPU_LIMIT = 1.0                # a kernel runs on one core; bursts up to it
CLASS_SIZES = (30, 100)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def _children_rss_mib(pid: int) -> float:
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        return sum(c.memory_info().rss for c in psutil.Process(pid).children(recursive=True)) / MIB
    except psutil.Error:
        return 0.0


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env["KSLAB_BACKEND"] = "sim"
    return env


def measure_notebook(path: Path) -> dict:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3")
    t0 = time.perf_counter()
    km.start_kernel(cwd=str(path.parent), env=_kernel_env())
    try:
        pid = km.provisioner.pid
        client = NotebookClient(nb, km=km, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
        wall = time.perf_counter() - t0
        peak = _status_kib(pid, "VmHWM") / 1024
        cpu = _cpu_seconds(pid)
        children = _children_rss_mib(pid)
    finally:
        km.shutdown_kernel(now=True)
    return {"notebook": f"{path.parent.name}/{path.name}", "peak_rss_mib": round(peak + children, 1),
            "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 1)}


def measure_idle_kernel() -> dict:
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=_kernel_env())
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        kc.execute_interactive("pass", timeout=60)
        time.sleep(1)
        pid = km.provisioner.pid
        rss = _status_kib(pid, "VmRSS") / 1024
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    return {"rss_mib": round(rss, 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_jupyterlab(lang: str) -> dict:
    port = _free_port()
    with tempfile.TemporaryDirectory() as runtime:
        env = _kernel_env() | {"JUPYTER_RUNTIME_DIR": runtime}
        proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                                 "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
                                 f"--notebook-dir={ROOT / 'notebooks' / lang}",
                                 *(["--allow-root"] if os.geteuid() == 0 else [])],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    for page in ("api", "lab", "lab/tree/00_lab_tour.ipynb"):
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=5) as resp:
                            resp.read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"JupyterLab did not answer on port {port}") from None
                    time.sleep(0.5)
            time.sleep(2)
            rss = _status_kib(proc.pid, "VmRSS") / 1024
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"rss_mib": round(rss, 1)}


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def recommend(rows: list[dict], idle_kernel: dict, jupyterlab: dict) -> dict:
    """The per-learner guarantee and limit, and the hub for 30 and 100 learners, from the measurements.

    memory guarantee: the server and one kernel at the worst chapter's peak (a learner works in one
    notebook at a time); memory limit: the server and two kernels at that peak (a previous chapter
    left running), +25%; both rounded up to 128 MiB. CPU guarantee: the share of a core with which
    the costliest chapter's "Run all" takes at most 2 minutes when every learner runs it at once,
    rounded up to 0.05; CPU limit: one core (a kernel is one thread of Python)."""
    if not rows:
        raise ValueError("rows: no notebook was measured; run at least one chapter")
    peak = max(r["peak_rss_mib"] for r in rows)
    cpu = max(r["cpu_seconds"] for r in rows)
    server = jupyterlab["rss_mib"]
    mem_guarantee = int(_round_up(server + peak, MEMORY_STEP_MIB))
    mem_limit = int(_round_up(LIMIT_HEADROOM * (server + 2 * peak), MEMORY_STEP_MIB))
    cpu_guarantee = round(max(CPU_STEP, _round_up(cpu / RUN_ALL_TARGET_S, CPU_STEP)), 2)
    hub = {str(n): {"memory_gib_guaranteed": round(n * mem_guarantee / 1024, 1),
                    "memory_gib_at_limits": round(n * mem_limit / 1024, 1),
                    "cores_guaranteed": round(n * cpu_guarantee, 1),
                    "worst_chapter_run_all_by_everyone_core_seconds": round(n * cpu)} for n in CLASS_SIZES}
    return {"memory_guarantee": f"{mem_guarantee}M", "memory_limit": f"{mem_limit}M",
            "cpu_guarantee": cpu_guarantee, "cpu_limit": CPU_LIMIT,
            "basis": {"worst_peak_rss_mib": peak, "worst_cpu_seconds": cpu, "jupyterlab_rss_mib": server,
                      "idle_kernel_rss_mib": idle_kernel["rss_mib"]},
            "hub": hub}


def _machine() -> dict:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_mib": int(mem.split()[1]) // 1024, "python": platform.python_version(),
            "loadavg": Path("/proc/loadavg").read_text().strip()}


def print_table(record: dict) -> None:
    print(f"{'notebook':42} {'peak RSS MiB':>12} {'CPU s':>7} {'wall s':>7}")
    for r in record["rows"]:
        print(f"{r['notebook']:42} {r['peak_rss_mib']:12.1f} {r['cpu_seconds']:7.2f} {r['wall_seconds']:7.1f}")
    print(f"idle kernel: {record['idle_kernel']['rss_mib']:.0f} MiB; JupyterLab server: {record['jupyterlab']['rss_mib']:.0f} MiB")
    rec = record["recommendation"]
    print(f"per learner: memory guarantee {rec['memory_guarantee']}, limit {rec['memory_limit']}; "
          f"CPU guarantee {rec['cpu_guarantee']}, limit {rec['cpu_limit']}")
    for n, hub in rec["hub"].items():
        print(f"{n} learners: {hub['memory_gib_guaranteed']} GiB guaranteed ({hub['memory_gib_at_limits']} GiB at the limits), "
              f"{hub['cores_guaranteed']} cores guaranteed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", choices=["en", "ko", "both"], default="en")
    parser.add_argument("--record", metavar="PATH", help="write the measurements as JSON")
    parser.add_argument("--only", metavar="NN", action="append", default=[], help="measure only chapter NN (repeatable)")
    args = parser.parse_args(argv)
    langs = ["en", "ko"] if args.lang == "both" else [args.lang]
    rows = []
    for lang in langs:
        for path in sorted((ROOT / "notebooks" / lang).glob("[0-9][0-9]_*.ipynb")):
            if args.only and path.name[:2] not in args.only:
                continue
            row = measure_notebook(path)
            print(f"  {row['notebook']}: {row['peak_rss_mib']:.0f} MiB, {row['cpu_seconds']:.1f} CPU s", file=sys.stderr, flush=True)
            rows.append(row)
    if not rows:
        print(f"learner_cost: error: --only: no chapter {args.only} in notebooks/{langs[0]}; use two digits, e.g. --only 01",
              file=sys.stderr)
        return 2
    idle = measure_idle_kernel()
    lab = measure_jupyterlab(langs[0])
    command = "python3 benchmarks/learner_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {"schema": 1,
              "meta": {"command": command.strip(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "machine": _machine(), "backend": "sim", "editions": langs},
              "rows": rows, "idle_kernel": idle, "jupyterlab": lab,
              "recommendation": recommend(rows, idle, lab)}
    print_table(record)
    if args.record:
        Path(args.record).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded in {args.record}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
