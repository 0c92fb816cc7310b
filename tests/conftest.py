"""Shared test set-up: what the kernel tests need, and the upstream kube-proxy replays several
files use. Test files import nothing from one another; they take these fixtures or the
``netns`` marker.

- ``@pytest.mark.netns``: the test needs root, ``ip`` and ``iptables`` (network namespaces and
  the real kernel). On a machine without them it is skipped with the one-line reason
  (:func:`netns_skip_reason`), so the same suite runs everywhere.
- ``sync_repeated``: upstream's TestSyncProxyRulesRepeated, replayed against any kernel
  (kslab's model or a real namespace): see :mod:`sync_repeated`.
"""

from __future__ import annotations

import functools

import pytest


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


# ---- parallel workers (pytest-xdist, ``--dist loadgroup``) ---------------------------------------
# Tests that make network namespaces run in one worker, one after another: several of them sweep
# every kslab- namespace they did not expect (crash cleanup is what they test), and the kernel's
# timing-sensitive checks should not compete with each other. A notebook's cells run in order in
# one kernel, so each notebook is one group. Everything else is spread over the workers.
def pytest_itemcollected(item: pytest.Item) -> None:
    # at collection, before any pytest_collection_modifyitems (xdist reads the mark in its own)
    if item.get_closest_marker("netns") is not None:
        item.add_marker(pytest.mark.xdist_group("kernel"))
    elif item.get_closest_marker("install") is not None:
        item.add_marker(pytest.mark.xdist_group("install"))
    elif item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.xdist_group(f"notebook-{item.path.parent.name}-{item.path.name}"))
