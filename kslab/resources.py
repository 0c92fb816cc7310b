"""Where the course's files are: the study's lab manifests (``data/``) and the notebooks, in two
editions (``notebooks/ko``, ``notebooks/en``: the same chapters in Korean and in English).

One place answers it for every caller. In a checkout (or an editable install of one) they are
the repository's top-level ``data/`` and ``notebooks/`` folders, the very files kubectl applies
and the workbook generator writes. An installed wheel carries copies inside the package
(``kslab/data``, ``kslab/notebooks``: ``[tool.hatch.build.targets.wheel.force-include]`` in
pyproject.toml), read through :mod:`importlib.resources`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Mapping

from .errors import EnvironmentProblem

STUDY_LAB = "myk8s"  # data/myk8s: the study's kind lab
DUALSTACK_LAB = "myk8s-dualstack"  # data/myk8s-dualstack: the same lab, dual-stack (IPv4 + IPv6)
LABS = (STUDY_LAB, DUALSTACK_LAB)  # the labs a name reaches: kslab.Lab("myk8s-dualstack")
WORKBOOK_COPY = "kslab-workbook"  # kslab lab's working copy outside a checkout (./kslab-workbook); progress looks there too
EDITIONS = ("ko", "en")  # the workbook's languages: notebooks/<lang>/, generated from notebooks/src
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX: the first one set decides the messages' language


def _package() -> Path:
    pkg = resources.files(__package__ or "kslab")
    if not isinstance(pkg, Path):  # e.g. imported from a zip file
        raise EnvironmentProblem(f"kslab is installed as {pkg}, not as files; reinstall it: python3 -m pip install kslab")
    return pkg


def checkout() -> Path | None:
    """The repository root when kslab runs from a checkout (plain or editable), else None."""
    root = _package().parent
    if (root / "pyproject.toml").is_file() and (root / "notebooks" / "src").is_dir() and (root / "data").is_dir():
        return root
    return None


def _folder(name: str) -> Path:
    root = checkout()
    path = root / name if root else _package() / name
    if not path.is_dir():
        raise EnvironmentProblem(f"kslab's {name}/ folder is missing ({path}); reinstall kslab: python3 -m pip install --force-reinstall kslab")
    return path


def lab_data() -> Path:
    """The ``data/`` folder: the study's lab manifests (and anything recorded beside them)."""
    return _folder("data")


def study_lab() -> Path:
    """The study's lab (``data/myk8s``): what ``kslab.Lab()`` and the CLI build by default."""
    return lab_data() / STUDY_LAB


def dualstack_lab() -> Path:
    """The study's lab made dual-stack (``data/myk8s-dualstack``): ``kind``'s ``ipFamily: dual``,
    PreferDualStack Services, a pod IP and a pod CIDR of each family."""
    return lab_data() / DUALSTACK_LAB


def named_lab(path: str | os.PathLike) -> Path | None:
    """The lab ``path`` names (``"myk8s-dualstack"`` or ``"data/myk8s-dualstack"``, one of
    :data:`LABS`) when no such file or folder exists where kslab runs, else None (a path is a path)."""
    text = os.fspath(path)
    if Path(text).exists():
        return None
    name = text.rstrip("/")
    if name.startswith("data/"):
        name = name[len("data/"):]
    return lab_data() / name if name in LABS else None


def notebooks() -> Path:
    """The chapters: one folder per edition (``ko/``, ``en/``: learner notebooks and their
    ``solutions/``) and the jupytext sources ``src/`` both are generated from."""
    return _folder("notebooks")


def edition_for_locale(environ: Mapping[str, str]) -> str:
    """The edition a locale asks for: ``ko`` when the first of ``LC_ALL``, ``LC_MESSAGES``,
    ``LANG`` that is set and not empty (POSIX's order for messages) names the Korean language
    (``ko``, ``ko_KR.UTF-8``, ``ko_KR.eucKR``, ``ko_KR@...``), else ``en`` (also for no locale,
    ``C`` or ``POSIX``)."""
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            language = value.split("@")[0].split(".")[0].split("_")[0]
            return "ko" if language.lower() == "ko" else "en"
    return "en"
