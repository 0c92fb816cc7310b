"""Fresh-venv helpers shared by tests/test_install.py (the README's install) and
tests/test_binder.py (what .binder/requirements.txt installs, as repo2docker does): a copy of
the checkout as a clone has it, an environment without this process's venv, kslab or backend,
and every learner notebook of an edition executed there by nbclient (a fresh kernel of that
venv's Python)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its venv, its PYTHONPATH and its backend; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "KSLAB_BACKEND")}
    env.update(extra)
    return env


def copy_checkout(dest: Path) -> None:
    """The files a clone has (tracked and new, not ignored): what an install from a clone sees."""
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode == 0 and r.stdout:
        for rel in filter(None, r.stdout.split("\0")):
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:  # not a git checkout
        shutil.copytree(REPO, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "kslab-workbook"))


NOTEBOOK_RUNNER = """\
import os, sys, time
import nbformat
from nbclient import NotebookClient
import kslab
print("kslab from", kslab.__file__, "backend", os.environ.get("KSLAB_BACKEND"), flush=True)
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    print(f"ok {os.path.basename(os.path.dirname(path))}/{os.path.basename(path)} {time.perf_counter() - t0:.1f} s", flush=True)
"""


def learner_notebooks(root: Path, edition: str) -> list[Path]:
    """Every learner notebook of one edition in ``root`` (one per chapter source, at least five)."""
    chapters = sorted((root / "notebooks" / edition).glob("[0-9][0-9]_*.ipynb"))
    assert len(chapters) == len(list((root / "notebooks" / "src").glob("[0-9][0-9]_*.py"))) >= 5, chapters
    return chapters


def run_learner_notebooks(python: Path, root: Path, editions: list[str], *, prefix: list[str] | None = None,
                          env: dict[str, str] | None = None) -> tuple[str, float]:
    """Execute every learner notebook of ``editions`` with ``python`` (``prefix`` before it, e.g. a
    start script); fails with the output's tail unless each one ran to the end. Returns (stdout, seconds)."""
    chapters = [str(p) for edition in editions for p in learner_notebooks(root, edition)]
    t0 = time.perf_counter()
    r = subprocess.run([*(prefix or []), str(python), "-c", NOTEBOOK_RUNNER, *chapters], cwd=root / "notebooks",
                       env=env if env is not None else clean_env(KSLAB_BACKEND="sim"),
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert r.stdout.count("\nok ") == len(chapters), r.stdout
    return r.stdout, time.perf_counter() - t0
