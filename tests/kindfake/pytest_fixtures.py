"""pytest fixtures for the fake API server; import them into a test module:

    from kindfake.pytest_fixtures import kind_fake, kind_kubeconfig  # noqa: F401

``kind_fake``: a started :class:`~kindfake.server.FakeApiServer` serving the ``myk8s`` fixture
(parametrize indirectly with another fixture name: ``@pytest.mark.parametrize("kind_fake",
["myk8s-echo0"], indirect=True)``), stopped after the test. ``kind_kubeconfig``: the path of a
kubeconfig for it (context ``kind-myk8s``, plus ``prod-admin`` on the same server for the
context checks), also exported as ``$KUBECONFIG`` for the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fixtures import server_for
from .server import FakeApiServer


@pytest.fixture
def kind_fake(request: pytest.FixtureRequest) -> Iterator[FakeApiServer]:
    name = getattr(request, "param", "myk8s")
    server = server_for(name).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kind_kubeconfig(kind_fake: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = kind_fake.write_kubeconfig(tmp_path / "kubeconfig", extra_contexts={"prod-admin": ""})
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
