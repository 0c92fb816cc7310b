"""Shared test set-up: what the kernel tests need, and the upstream kube-proxy replays several
files use. Test files import nothing from one another; they take these fixtures or the
``netns`` marker.

- ``@pytest.mark.netns``: the test needs root, ``ip`` and ``iptables`` (network namespaces and
  the real kernel). On a machine without them it is skipped with the one-line reason
  (:func:`netns_skip_reason`), so the same suite runs everywhere.
- ``netns_run_dir``: KSLAB_RUN_DIR pointed at a fresh directory for a module's netns lab fixture.
- ``lb_local_webpod``: a manifest file of an ``externalTrafficPolicy: Local`` LoadBalancer Service.
- ``live_cluster``: tests/kindfake's API server (fixture myk8s) and fake ``docker`` up, this
  process's environment pointing at them (KUBECONFIG, PATH), no backend forced; yields
  ``(server, env)``.
- upstream's TestSyncProxyRulesRepeated, replayable against any kernel, is the helper module
  :mod:`sync_repeated`; the xtables cases are :mod:`xtables_cases`.

The xdist groups (which tests share a worker) are set in the repository's top-level conftest.py,
which covers the notebooks too.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@functools.cache
def netns_skip_reason() -> str | None:
    """Why the real-kernel tests cannot run here (one line), or None."""
    from kslab.errors import EnvironmentProblem
    from kslab.netns.lab import NetnsLab

    try:
        NetnsLab.check_environment()
    except EnvironmentProblem as err:
        return str(err)
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None and (reason := netns_skip_reason()):
        pytest.skip(reason)


@pytest.fixture(scope="session")
def netns_unavailable() -> str | None:
    """:func:`netns_skip_reason` for fixtures that must decide before a test is set up."""
    return netns_skip_reason()



@pytest.fixture(scope="module")
def netns_run_dir(tmp_path_factory: pytest.TempPathFactory):
    """KSLAB_RUN_DIR set to a fresh directory for one module's netns labs (a lab records itself
    there, so a crashed run's leftovers are found and removed), restored afterwards. A module's lab
    fixture takes it, so the lab comes down before the variable is restored."""
    import os

    previous = os.environ.get("KSLAB_RUN_DIR")
    os.environ["KSLAB_RUN_DIR"] = str(tmp_path_factory.mktemp("run"))
    try:
        yield Path(os.environ["KSLAB_RUN_DIR"])
    finally:
        if previous is None:
            os.environ.pop("KSLAB_RUN_DIR", None)
        else:
            os.environ["KSLAB_RUN_DIR"] = previous


@contextlib.contextmanager
def _sim_and_kernel(seed: int, **lab_options):
    """The study's lab twice from one seed, on the simulator and on the kernel (netns), checked
    to be the same cluster; the kernel's lab comes down on exit. For module fixtures of tests
    that compare the two backends. ``lab_options`` go to both Labs (``proxy_mode="nftables"``)."""
    from kslab.lab import Lab

    sim = Lab(seed=seed, **lab_options)
    with Lab(backend="netns", seed=seed, **lab_options) as kernel:
        assert [(p.name, p.pod_ip) for p in sim.cluster.pods] == [(p.name, p.pod_ip) for p in kernel.cluster.pods]
        yield sim, kernel


@pytest.fixture(scope="session")
def sim_and_kernel():
    """``with sim_and_kernel(seed[, proxy_mode=...]) as (sim, kernel):`` (see :func:`_sim_and_kernel`)."""
    return _sim_and_kernel


@pytest.fixture
def lb_local_webpod(tmp_path) -> Path:
    """A manifest file: ``svc-lb``, a LoadBalancer Service of the study's webpods with
    ``externalTrafficPolicy: Local`` and the ingress IP 172.18.255.200 in its status."""
    path = tmp_path / "lb.yaml"
    path.write_text("""\
apiVersion: v1
kind: Service
metadata: {name: svc-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: webpod}
  ports: [{name: http, port: 80, targetPort: 80}]
status:
  loadBalancer:
    ingress: [{ip: 172.18.255.200}]
""")
    return path


@pytest.fixture(scope="session")
def curl_i():
    """``curl_i(answer, date=..., head=False)``: what ``curl -i`` prints for a kube-proxy health
    answer (:class:`kslab.healthcheck.HealthResponse`): the status line, the headers in the order
    Go's server writes them (:func:`kslab.sim.tools.go_headers`), the ``Date`` value given (a
    mask, or the expected date), a blank line, the body (none for ``-I``, a HEAD)."""
    from kslab.sim.tools import go_headers

    def render(answer, *, date: str, head: bool = False) -> str:
        lines = [f"HTTP/1.1 {answer.status} {answer.reason}",
                 *(f"{k}: {date if k == 'Date' else v}" for k, v in go_headers(answer, 0))]
        return "".join(line + "\r\n" for line in lines) + "\r\n" + ("" if head else answer.body)

    return render


@pytest.fixture
def live_cluster(tmp_path, monkeypatch):
    """The fake kind cluster up (tests/kindfake: API server + fake docker) and the environment
    pointing at it; KSLAB_BACKEND and KSLAB_STRICT_BACKEND unset, so ``Lab(backend="kind")`` decides."""
    for folder in (TESTS, TESTS / "kindfake"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from kindfake import livecluster

    server, env = livecluster.start(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KSLAB_BACKEND", raising=False)
    monkeypatch.delenv("KSLAB_STRICT_BACKEND", raising=False)
    yield server, env
    server.stop()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The workbook's static site, both editions executed on sim (``kslab.site.build_site``), built
    once per session for tests/test_site.py and tests/test_browser_site.py (both in the xdist group
    "site", so one worker builds it). Returns ``(report, seconds, progress lines)``; skips when jupyter-book or
    node is missing (the [site] extra; Debian's nodejs)."""
    import shutil
    import time

    pytest.importorskip("jupyter_book", reason="python3 -m pip install 'kslab[site]'")
    if not shutil.which("node"):
        pytest.skip("node is not installed (apt-get install nodejs): jupyter-book 2 runs mystmd on it")
    from kslab import site

    lines: list[str] = []
    started = time.monotonic()
    report = site.build_site(tmp_path_factory.mktemp("site") / "site", say=lines.append)
    seconds = time.monotonic() - started
    print(f"\nkslab site: {report.summary()} in {seconds:.0f} s", file=sys.stderr)
    return report, seconds, lines
