"""Chapters 01-04 and 06-11 under nbval with ``KSLAB_BACKEND=kind`` against the fake live cluster (chapter 01:
both editions, learner and solution versions; chapters 02-09: both editions' solution versions,
the Korean one also executed to read what it printed; the editions share every code cell): kindapi's fake API server in a subprocess
(tests/kindfake/livecluster.py: the real kubernetes client talks to it over HTTP, pods' exec
through its websocket) and the fake ``docker`` on PATH (tests/kindfake/docker: kind's node
containers replayed from tests/data/kind-nodes). ``KSLAB_STRICT_BACKEND=1``: no silent fallback
to sim, so every cell ran on the kind backend (the first cell prints ``backend: kind``). Cells whose
experiment needs exact state run on a sim twin and say so (``Lab.exact``); the rest ran live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [ROOT / "notebooks" / ed / sub / "01_clusterip.ipynb" for ed in ("en", "ko") for sub in ("", "solutions")]


@pytest.fixture
def fake_cluster(tmp_path):
    state = tmp_path / "cluster"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "kindfake" / "livecluster.py"), str(state)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    env_file = state / "env.json"
    deadline = time.monotonic() + 60
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the fake cluster did not start: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    yield json.loads(env_file.read_text()), state
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_nbval(notebooks, env_vars, cwd):
    env = dict(os.environ, **env_vars, KSLAB_BACKEND="kind", KSLAB_STRICT_BACKEND="1", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-o", "addopts=", "-o", "testpaths=", "--rootdir", str(ROOT), *map(str, notebooks)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-40:])
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout
    return [json.loads(line) for line in (Path(env_vars["KSLAB_FAKE_DOCKER_STATE"]) / "calls.log").read_text().splitlines()]


def test_chapter_01_passes_nbval_on_the_kind_backend(fake_cluster, tmp_path):
    env_vars, state = fake_cluster
    calls = run_nbval(NOTEBOOKS, env_vars, tmp_path)
    # the notebooks did run on the live backend: docker exec on the nodes, mypc never started (chapter 01 has no mypc)
    assert any(c[:2] == ["exec", "myk8s-control-plane"] and "iptables" in c for c in calls)
    assert not any(c[:1] == ["run"] for c in calls)


LATER = {ch: [ROOT / "notebooks" / ed / "solutions" / f"{ch}.ipynb" for ed in ("ko", "en")]
         for ch in ("02_session_affinity", "03_hairpin_nat", "04_clusterip_limits", "06_nodeport", "07_traffic_policy_lb",
                    "08_readiness_endpointslices")}
# how many experiments of each chapter run on the sim twin on kind (Lab.exact prints one line for each); the rest run live
TWIN_LINES = {
    "02_session_affinity": 3, "03_hairpin_nat": 7, "04_clusterip_limits": 3,
    "06_nodeport": 6,  # KUBE-NODEPORTS deleted by hand, conntrack, localhost counters, nodePortAddresses, the panel and its claim
    # the VIP (EXTERNAL-IP <pending>: no cloud LB), pods placed 2/1/0 for the health checks, the LB's probes and set_ready,
    # the 2/1/0 imbalance behind the LB, source ranges with a second client, the panel
    "07_traffic_policy_lb": 6,
    # a pod made not ready by hand, a broken app's exact error count, the timeline (a broken app at a chosen instant),
    # the rolling update, the panel
    "08_readiness_endpointslices": 5,
}


@pytest.mark.parametrize("chapter", sorted(LATER))
def test_chapters_02_to_04_pass_nbval_on_the_kind_backend(fake_cluster, tmp_path, chapter):
    """Every cell runs, live where a live cluster can answer, on the sim twin where the experiment
    needs exact state (one printed line each, counted in the executed notebook's outputs)."""
    env_vars, state = fake_cluster
    out = tmp_path / "run"
    out.mkdir()
    ko = LATER[chapter][0]
    executed = out / ko.name
    calls = run_nbval(LATER[chapter], env_vars, out)
    assert any(c[:1] == ["exec"] and c[1].startswith("myk8s-") for c in calls)  # nodes read live by docker exec
    env = dict(os.environ, **env_vars, KSLAB_BACKEND="kind", KSLAB_STRICT_BACKEND="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output",
                    str(executed), str(ko)], env=env, cwd=out, check=True, capture_output=True, timeout=1800)
    nb = json.loads(executed.read_text())
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                      for o in c.get("outputs", []) if o.get("output_type") == "stream")
    twin = [line for line in printed.splitlines() if line.startswith("kind: this experiment needs ")]
    assert len(twin) == TWIN_LINES[chapter] and all(line.endswith("; it runs on the simulator copy of this lab") for line in twin)
    assert "backend: kind" in printed


def _printed_on_kind(book: Path, env_vars: dict, out: Path) -> str:
    """What ``book``'s code cells printed (stream outputs) when executed on the kind backend."""
    env = dict(os.environ, **env_vars, KSLAB_BACKEND="kind", KSLAB_STRICT_BACKEND="1", PYTHONPATH=str(ROOT))
    executed = out / book.name
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output",
                    str(executed), str(book)], env=env, cwd=out, check=True, capture_output=True, timeout=1800)
    nb = json.loads(executed.read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def test_chapter_09_passes_nbval_on_the_kind_backend(fake_cluster, tmp_path):
    """Chapter 09's add-on brings new pods (a client per zone, deploy-zone), which the fake cluster never
    starts (a real kind cluster starts them after its image pulls): the chapter says so in one line and
    runs on the study's lab on the simulator, and every cell passes in both editions."""
    env_vars, _ = fake_cluster
    out = tmp_path / "run"
    out.mkdir()
    books = [ROOT / "notebooks" / ed / "solutions" / "09_topology.ipynb" for ed in ("ko", "en")]
    run_nbval(books, env_vars, out)
    printed = _printed_on_kind(books[1], env_vars, out)
    assert "backend: kind" in printed
    assert printed.count("kind: the add-on's pods are not running on this live cluster (yet)") == 1
    assert "this chapter ran on the sim backend" in printed


CH10 = [ROOT / "notebooks" / ed / "solutions" / "10_pod_bandwidth.ipynb" for ed in ("ko", "en")]


def test_chapter_10_passes_nbval_on_the_kind_backend(fake_cluster, tmp_path):
    """Chapter 10's add-on (data/myk8s/iperf3) is applied through the API; the fake cluster's Deployment
    controller starts its pods on the nodes their nodeSelectors name, and every iperf3 test runs live: the
    client pod's exec of ``iperf3 -c ...``, answered with real iperf3 outputs (tests/kindfake/iperf3fake.py:
    the recordings of tests/data/kind/iperf3-exec.json, else the chapter's runs recorded on netns in
    data/recorded/iperf3.json), one test at a time per server pod, as iperf3 -s serves them."""
    env_vars, _ = fake_cluster
    out = tmp_path / "run"
    out.mkdir()
    run_nbval(CH10, env_vars, out)
    printed = _printed_on_kind(CH10[1], env_vars, out)
    assert "backend: kind" in printed
    assert "the add-on's pods are not running on this live cluster" not in printed  # the fake started them: ran live
    assert "measured now on kind" in printed and "(not measured now)" not in printed  # no figure came from the sim's recording label


CH11 = [ROOT / "notebooks" / ed / "solutions" / "11_capstone.ipynb" for ed in ("ko", "en")]


def test_chapter_11_passes_nbval_on_the_kind_backend(fake_cluster, tmp_path):
    """Chapter 11 breaks the lab on purpose (rules deleted by hand, pods placed and broken, the API
    server's nodePort range changed), which nobody should do to a live cluster: each of those six
    scenarios runs on a sim twin of the live lab, announced in one line per cell (``Lab.exact``); the dump and
    sync-loop scenarios need no lab. Both editions pass, and the set-up cell ran live."""
    env_vars, _ = fake_cluster
    out = tmp_path / "run"
    out.mkdir()
    run_nbval(CH11, env_vars, out)
    printed = _printed_on_kind(CH11[1], env_vars, out)
    assert "backend: kind" in printed
    twin = [line for line in printed.splitlines() if line.startswith("kind: this experiment needs ")]
    assert all(line.endswith("; it runs on the simulator copy of this lab") for line in twin)
    # six scenarios, each announced by the cell that breaks the lab and again by its solution cell
    # (which takes the scenario again so that it also runs on its own)
    assert len(set(twin)) == 6 and all(twin.count(line) == 2 for line in twin), twin
    assert "this chapter ran on the kind backend" in printed
