"""pytest set-up for the whole repository (``tests/`` and the nbval run of ``notebooks/``).

Parallel workers (pytest-xdist, ``--dist loadgroup`` in pyproject): tests that make network
namespaces run in one worker, one after another (several sweep every kslab- namespace they did
not expect: crash cleanup is what they test; and the kernel's timing-sensitive checks should not
compete). A notebook's cells run in order in one kernel, so each notebook is one group (each
edition's learner and solution versions are separate notebooks, named by their paths); this hook
lives here, not in tests/conftest.py, because a conftest's collection hooks only see the items
under its own folder. Everything else is spread over the workers.
"""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    # at collection, before any pytest_collection_modifyitems (xdist reads the mark in its own)
    if item.get_closest_marker("netns") is not None:
        item.add_marker(pytest.mark.xdist_group("kernel"))
    elif item.get_closest_marker("install") is not None:
        item.add_marker(pytest.mark.xdist_group("install"))
    elif item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.xdist_group(notebook_group(item.path, item.config.rootpath)))


def notebook_group(path, root) -> str:
    """One xdist group per notebook, named by its path (``notebook-notebooks/ko/solutions/01_clusterip.ipynb``):
    the editions and their ``solutions/`` folders share file names, so the name alone is not enough."""
    try:
        return f"notebook-{path.relative_to(root).as_posix()}"
    except ValueError:  # a notebook outside the rootdir
        return f"notebook-{path.as_posix()}"
