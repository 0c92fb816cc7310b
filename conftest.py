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

import os
import shutil
import tempfile

import pytest

_PROGRESS_DIR = "_KSLAB_TEST_PROGRESS_DIR"  # set by the first process of a run; xdist workers and nbval's kernels inherit it


def pytest_configure(config: pytest.Config) -> None:
    """Exercise checks record the learner's progress (kslab.progress): point ``KSLAB_PROGRESS`` at a
    file in a temporary folder for the whole run, so neither the tests nor nbval's notebook kernels
    (which inherit the environment) write into the repository's notebooks/."""
    if not os.environ.get(_PROGRESS_DIR):
        folder = tempfile.mkdtemp(prefix="kslab-test-progress-")
        os.environ[_PROGRESS_DIR] = folder
        config._kslab_progress_dir = folder  # type: ignore[attr-defined]
    os.environ["KSLAB_PROGRESS"] = os.path.join(os.environ[_PROGRESS_DIR], "progress.json")


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_kslab_progress_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_PROGRESS_DIR, None)


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
