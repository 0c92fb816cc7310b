"""Chapter 01 (both editions, learner and solution versions) under nbval with ``KSLAB_BACKEND=kind``
against the fake live cluster: kindapi's fake API server in a subprocess
(tests/kindfake/livecluster.py: the real kubernetes client talks to it over HTTP, pods' exec
through its websocket) and the fake ``docker`` on PATH (tests/kindfake/docker: kind's node
containers replayed from tests/data/kind-nodes). ``KSLAB_STRICT_BACKEND=1``: no silent fallback
to sim, so every cell ran on the kind backend (the first cell prints ``backend: kind``)."""

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


def test_chapter_01_passes_nbval_on_the_kind_backend(fake_cluster, tmp_path):
    env_vars, state = fake_cluster
    env = dict(os.environ, **env_vars, KSLAB_BACKEND="kind", KSLAB_STRICT_BACKEND="1", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-o", "addopts=", "-o", "testpaths=", "--rootdir", str(ROOT), *map(str, NOTEBOOKS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-40:])
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " skipped" not in r.stdout
    # the notebooks did run on the live backend: docker exec on the nodes, mypc never started (chapter 01 has no mypc)
    calls = [json.loads(line) for line in (Path(env_vars["KSLAB_FAKE_DOCKER_STATE"]) / "calls.log").read_text().splitlines()]
    assert any(c[:2] == ["exec", "myk8s-control-plane"] and "iptables" in c for c in calls)
    assert not any(c[:1] == ["run"] for c in calls)
