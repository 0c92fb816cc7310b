"""A class on shared infrastructure (issue 17): the Binder/repo2docker environment and the
JupyterHub values file that uses its image.

Fast: ``.binder/requirements.txt`` installs this repository non-editable and pins only
dependencies pyproject declares, each range admitting the version this suite runs with;
``.binder/runtime.txt`` is a Python pyproject admits; ``.binder/start`` puts the lab on sim;
``deploy/jupyterhub/config.yaml`` merged with zero-to-jupyterhub's defaults validates against the
chart's own schema (tests/data/z2jh: a misspelt key is an error, as in ``helm install``), its
resources equal the recommendation of ``data/recorded/learner-cost.json``, which
``benchmarks/learner_cost.py``'s rule recomputes from the recorded rows; docs/classroom.md quotes
the recording.

Slow (marked ``install``): no Docker here, so repo2docker cannot build the image; what it would
install is installed instead. A fresh venv, in a copy of the checkout, gets exactly
``pip install -r .binder/requirements.txt`` (run in the repository, as repo2docker runs it), and
every learner notebook of BOTH editions runs there through ``.binder/start`` (which alone sets
KSLAB_BACKEND=sim), nbclient, no errors. Both editions, although test_install already runs the
ko edition in the README's venv: that venv is an editable install of a different requirement
set, and Binder learners open either edition. Measured on the 2-core machine, niced, beside a
full suite run (2026-12-02): 251 s for pip (cold cache, from the network; in the suite it runs in
the ``install`` xdist group after test_install's venv has warmed pip's cache) and 325 s for the 22
notebooks (5-40 s each, kernel start included; 1.5-8 CPU s each in learner-cost.json), about
10 min in all on one worker while the other worker runs the rest: the suite (~52 min) stays well
inside its 90 min. Running only the en edition here would save about 2.5 min.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.specifiers import SpecifierSet

from freshvenv import clean_env, copy_checkout, learner_notebooks, run_learner_notebooks

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / ".binder"
VALUES = REPO / "deploy" / "jupyterhub" / "config.yaml"
RECORDING = REPO / "data" / "recorded" / "learner-cost.json"
Z2JH = REPO / "tests" / "data" / "z2jh"
DEFAULT_URL = "/lab/tree/notebooks/en/00_lab_tour.ipynb"


def _requirements() -> tuple[list[str], list[Requirement]]:
    lines = [line.split("#", 1)[0].strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    local = [line for line in lines if line.startswith((".", "-e", "/", "file:"))]
    return local, [Requirement(line) for line in lines if line not in local]


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in project["dependencies"]}


# ---- .binder ----------------------------------------------------------------------------------------


def test_binder_requirements_install_this_repository_and_pin_declared_dependencies():
    local, pins = _requirements()
    assert local == ["."], "the repository itself, non-editable (repo2docker copies the repo, then installs it)"
    declared = _declared()
    assert pins, "the widget stack is pinned"
    for req in pins:
        name = canonicalize_name(req.name)
        assert name in declared, f"{req.name} is not a dependency in pyproject.toml: declare it there first"
        installed = version(req.name)
        assert req.specifier.contains(installed, prereleases=True), \
            f"{req}: the version this suite tests ({installed}) is outside the pin"
        assert req.specifier.contains(installed) and declared[name].specifier.contains(installed)
        upper = [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=")]
        assert upper, f"{req}: a pin has an upper bound (the kernel's widgets and the lab's extension must agree)"


def test_binder_runtime_is_a_python_the_project_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(3\.\d+)", runtime)
    assert m, f"runtime.txt: {runtime!r} is not python-3.X"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(m.group(1) + ".0")


def test_binder_start_puts_the_lab_on_sim_and_runs_the_command():
    start = BINDER / "start"
    assert start.stat().st_mode & 0o111, "repo2docker runs .binder/start: it must be executable"
    r = subprocess.run([str(start), sys.executable, "-c", "import os, sys; print(os.environ['KSLAB_BACKEND'], sys.argv[1:])", "x"],
                       env=clean_env(KSLAB_BACKEND="netns"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "sim ['x']", r.stdout + r.stderr


# ---- the JupyterHub values file ----------------------------------------------------------------------


def _merge(base: dict, override: dict) -> dict:
    """Helm's merge of a values file onto the chart's defaults: maps merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _chart_errors(values: dict) -> list[str]:
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    schema = json.loads((Z2JH / "values.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_merge(defaults, values)))


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def recording() -> dict:
    return json.loads(RECORDING.read_text())


def test_values_are_the_charts_keys(values):
    assert _chart_errors(values) == []


@pytest.mark.parametrize("path, value", [
    (("singleuser", "memory", "limt"), "1G"),             # a misspelt key
    (("singleuser", "cpu", "guarantee"), "a lot"),        # not a number
    (("cull", "timeout"), "1h"),                          # seconds, an integer
    (("singleuser", "defaulturl"), DEFAULT_URL),
])
def test_the_chart_check_catches_a_wrong_key_or_type(values, path, value):
    bad = copy.deepcopy(values)
    node = bad
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert _chart_errors(bad), path


def test_values_use_the_measured_resources(values, recording):
    rec = recording["recommendation"]
    single = values["singleuser"]
    assert single["memory"] == {"guarantee": rec["memory_guarantee"], "limit": rec["memory_limit"]}
    assert single["cpu"] == {"guarantee": rec["cpu_guarantee"], "limit": rec["cpu_limit"]}


def test_values_open_the_workbook_on_sim_in_both_editions(values):
    single = values["singleuser"]
    assert single["image"]["name"] and single["image"]["tag"] not in ("", "latest")
    assert single["defaultUrl"] == DEFAULT_URL
    assert single["extraEnv"]["KSLAB_BACKEND"] == "sim"
    profiles = single["profileList"]
    urls = {p["kubespawner_override"]["default_url"] for p in profiles}
    assert urls == {f"/lab/tree/notebooks/{lang}/00_lab_tour.ipynb" for lang in ("en", "ko")}
    for url in urls:
        assert (REPO / url.removeprefix("/lab/tree/")).is_file(), url
    assert sum(bool(p.get("default")) for p in profiles) == 1
    kubespawner = {"default_url", "environment"}  # KubeSpawner traits this file sets per profile
    for p in profiles:
        assert set(p) <= {"display_name", "description", "default", "slug", "kubespawner_override"}, p
        assert p["display_name"] and set(p["kubespawner_override"]) <= kubespawner
    assert values["cull"]["enabled"] is True and 600 <= values["cull"]["timeout"] <= 4 * 3600


def test_values_keep_the_learners_notebooks_on_their_volume(values):
    """The image's notebooks/ would be hidden by the volume: the volume is mounted there and the
    course is copied in without overwriting what the learner changed."""
    storage = values["singleuser"]["storage"]
    assert storage["homeMountPath"] == "/home/jovyan/notebooks"
    command = " ".join(values["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert "cp -rn" in command or "cp --recursive --no-clobber" in command, command


# ---- the recording ------------------------------------------------------------------------------


def _learner_cost():
    spec = importlib.util.spec_from_file_location("learner_cost", REPO / "benchmarks" / "learner_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recording_covers_every_learner_notebook_and_its_rule(recording):
    cost = _learner_cost()
    expected = [f"{lang}/{p.name}" for lang in recording["meta"]["editions"] for p in learner_notebooks(REPO, lang)]
    assert [r["notebook"] for r in recording["rows"]] == expected
    assert all(r["peak_rss_mib"] > recording["idle_kernel"]["rss_mib"] > 0 and r["cpu_seconds"] > 0 for r in recording["rows"])
    assert cost.recommend(recording["rows"], recording["idle_kernel"], recording["jupyterlab"]) == recording["recommendation"]
    assert recording["meta"]["backend"] == "sim" and recording["meta"]["command"].startswith("python3 benchmarks/learner_cost.py")


def test_recommendation_rule():
    cost = _learner_cost()
    rows = [{"peak_rss_mib": 200.0, "cpu_seconds": 3.0}, {"peak_rss_mib": 250.0, "cpu_seconds": 9.0}]
    rec = cost.recommend(rows, {"rss_mib": 50.0}, {"rss_mib": 100.0})
    assert rec["memory_guarantee"] == "384M"                 # 100 + 250 = 350 -> 384
    assert rec["memory_limit"] == "768M"                     # 1.25 * (100 + 500) = 750 -> 768
    assert rec["cpu_guarantee"] == 0.1 and rec["cpu_limit"] == 1.0  # 9 s / 120 s = 0.075 -> 0.1
    assert rec["hub"]["30"]["memory_gib_guaranteed"] == 11.2 and rec["hub"]["100"]["cores_guaranteed"] == 10.0
    with pytest.raises(ValueError, match="rows: no notebook was measured"):
        cost.recommend([], {"rss_mib": 50.0}, {"rss_mib": 100.0})


def test_classroom_doc_quotes_the_recording_and_the_urls(recording):
    doc = (REPO / "docs" / "classroom.md").read_text()
    rec = recording["recommendation"]
    for text in (rec["memory_guarantee"], rec["memory_limit"], str(rec["cpu_guarantee"]),
                 "?urlpath=lab/tree/notebooks/en/00_lab_tour.ipynb", "?urlpath=lab/tree/notebooks/ko/00_lab_tour.ipynb",
                 "deploy/jupyterhub/config.yaml", "helm upgrade --install"):
        assert text in doc, text
    for row in recording["rows"]:
        assert f"| {row['notebook']} | {row['peak_rss_mib']:.0f} | {row['cpu_seconds']:.1f} |" in doc, row["notebook"]
    for n, hub in rec["hub"].items():
        assert f"| {n} | {hub['memory_gib_guaranteed']} | {hub['memory_gib_at_limits']} | {hub['cores_guaranteed']} |" in doc, n


# ---- the Binder environment in a fresh venv (slow) -------------------------------------------------


@pytest.mark.install
def test_binder_requirements_run_every_learner_notebook_of_both_editions(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    copy_checkout(root)
    venv = tmp_path / "binder-venv"  # repo2docker's environment lives outside the repository
    t0 = time.perf_counter()
    r = subprocess.run(["python3", "-m", "venv", str(venv)], env=clean_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    python = venv / "bin" / "python"
    r = subprocess.run([str(python), "-m", "pip", "install", "-r", ".binder/requirements.txt"], cwd=root,
                       env=clean_env(), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    installed = time.perf_counter() - t0
    out, seconds = run_learner_notebooks(python, root, ["en", "ko"], prefix=[str(root / ".binder" / "start")], env=clean_env())
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert f"kslab from {site}/kslab/__init__.py backend sim" in out, out[:500]  # installed, not this checkout
    print(f"\n.binder/requirements.txt in a fresh venv: {installed:.0f} s; learner notebooks (en, ko): {seconds:.0f} s\n{out}")
