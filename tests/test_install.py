"""The base install works everywhere (issue 9, deliverable 4).

Fast, in this process: declared dependencies equal the imports (deptry); ``import kslab.cli``
stays light; ``kslab lab`` opens one edition (``--lang ko|en``, else the locale's) of the
checkout's notebooks, or of a working copy it never overwrites; the workbook generator says in
one line that it needs jupytext.

Slow (marked ``install``: ``-m "not install"`` skips them while developing), in one venv per
session built from a copy of this checkout:

(a) the README's first install step, exactly as written, then every learner notebook of one
    edition (the editions share their code) executed there (nbclient, sim backend) with nothing
    but the base dependencies;
(b) a non-editable install of the same tree (the wheel hatchling builds, with the lab's data and
    notebooks inside) builds ``kslab.Lab()`` from another directory, ``kslab render`` works
    there, and ``kslab lab`` creates its working copy and really starts JupyterLab.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from freshvenv import clean_env, copy_checkout, run_learner_notebooks
from kslab import cli, resources, workbook

REPO = Path(__file__).resolve().parents[1]
EDITION = "ko"  # the edition the fresh venv runs (the study group's)
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}  # kslab lab's default edition: en
HEAVY = ("pandas", "plotly", "numpy", "scipy", "kubernetes", "kubernetes_validate", "jsonschema", "jupytext")


# ---- declared dependencies == imports ---------------------------------------------------------------


def test_declared_dependencies_equal_the_imports():
    """deptry over kslab/ and the notebooks; the exceptions are documented in pyproject.toml."""
    r = subprocess.run([sys.executable, "-m", "deptry", "--no-ansi", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "No module named deptry" not in r.stderr, "deptry is in the [test] extra: python3 -m pip install -e '.[test]'"
    assert r.returncode == 0, r.stdout + r.stderr


# ---- the CLI starts without the heavy imports ---------------------------------------------------------


def _modules_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_import_kslab_cli_is_light():
    assert _modules_after("import kslab.cli") == []


def test_help_and_as_is_render_import_nothing_heavy():
    help_ = ("import contextlib, io\nfrom kslab import cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        cli.main(['--help'])\n    except SystemExit:\n        pass")
    assert _modules_after(help_) == []
    case = REPO / "tests" / "data" / "kube-proxy" / "overall-rules.yaml"
    render = ("import contextlib, io\nfrom kslab import cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
              f"    assert cli.main(['render', '-f', {str(case)!r}, '--as-is', '--node', 'test-node']) == 0")
    assert _modules_after(render) == []  # --as-is validates nothing, draws nothing


def test_validated_render_loads_validation_only():
    render = ("import contextlib, io\nfrom kslab import cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
              "    assert cli.main(['render', '--node', 'myk8s-worker']) == 0")
    assert _modules_after(render) == ["kubernetes_validate", "jsonschema"]


# ---- kslab lab ------------------------------------------------------------------------------------------


@pytest.fixture
def exec_calls(monkeypatch):
    """``os.execve`` recorded instead of replacing the test process."""
    calls: list[tuple[str, list[str], dict]] = []
    monkeypatch.setattr(cli.os, "execve", lambda exe, argv, env: calls.append((exe, list(argv), dict(env))))
    return calls


@pytest.fixture
def locale(monkeypatch):
    """Set the locale variables (all three, so the machine's own never leak in)."""
    def set_(**values: str) -> None:
        for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
            monkeypatch.setenv(name, values.get(name, ""))
    set_(**NO_LOCALE)
    return set_


def test_lab_in_a_checkout_opens_its_notebooks_with_this_interpreter(exec_calls, capsys, monkeypatch, locale):
    monkeypatch.delenv("KSLAB_BACKEND", raising=False)
    assert cli.main(["lab", "--no-browser", "--port", "8899"]) == 0
    [(exe, argv, env)] = exec_calls
    assert exe == sys.executable and argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--notebook-dir={REPO / 'notebooks' / 'en'}" in argv and "--no-browser" in argv and "--port=8899" in argv
    assert env["KSLAB_BACKEND"] == "sim"
    assert "opening the en edition of the workbook on the sim backend" in capsys.readouterr().err
    assert cli.main(["lab", "--backend", "netns"]) == 0
    assert exec_calls[-1][2]["KSLAB_BACKEND"] == "netns"
    monkeypatch.setenv("KSLAB_BACKEND", "netns")
    assert cli.main(["lab"]) == 0 and exec_calls[-1][2]["KSLAB_BACKEND"] == "netns"


def test_lab_dry_run_does_not_start(exec_calls, capsys, locale):
    assert cli.main(["lab", "--dry-run"]) == 0
    assert exec_calls == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and " -m jupyterlab --notebook-dir=" in err[0]


@pytest.mark.parametrize("environ, lang", [
    ({}, "en"),
    ({"LANG": "ko_KR.UTF-8"}, "ko"),
    ({"LANG": "ko"}, "ko"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "ko_KR@euro"}, "ko"),
    ({"LANG": "kok_IN"}, "en"),  # Konkani: its code starts with "ko", but it is not Korean
    ({"LC_MESSAGES": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
    ({"LC_ALL": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
    ({"LC_ALL": "C", "LANG": "ko_KR.UTF-8"}, "en"),  # LC_ALL overrides everything (POSIX)
    ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "ko_KR.eucKR"}, "ko"),  # empty means unset
    ({"LC_ALL": "KO_KR"}, "ko"),
])
def test_the_edition_follows_the_locale(environ, lang):
    assert resources.edition_for_locale(environ) == lang
    assert cli.choose_edition(None, environ) == lang
    assert cli.choose_edition("en", environ) == "en" and cli.choose_edition("ko", environ) == "ko"  # --lang wins


def test_lab_lang_flag_picks_the_edition(exec_calls, capsys, locale):
    assert cli.main(["lab", "--lang", "ko"]) == 0
    assert exec_calls[-1][1][3] == f"--notebook-dir={REPO / 'notebooks' / 'ko'}"
    assert "opening the ko edition" in capsys.readouterr().err
    locale(LANG="ko_KR.UTF-8")
    assert cli.main(["lab"]) == 0 and exec_calls[-1][1][3] == f"--notebook-dir={REPO / 'notebooks' / 'ko'}"
    assert cli.main(["lab", "--lang", "en"]) == 0 and exec_calls[-1][1][3] == f"--notebook-dir={REPO / 'notebooks' / 'en'}"
    assert cli.main(["lab", "--lang=en", "--dry-run"]) == 0 and len(exec_calls) == 3


@pytest.mark.parametrize("value", ["fr", "KO", "ko_KR", ""])
def test_lab_lang_refuses_another_value_in_one_line(exec_calls, capsys, value):
    assert cli.main(["lab", "--lang", value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"kslab: error: --lang: {value!r} is not an edition of the workbook; use --lang ko (한국어) or --lang en (English)"]
    assert exec_calls == []


def test_lab_lang_without_a_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["lab", "--lang"])
    assert err.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "kslab lab: error: argument --lang: expected one argument; see 'kslab lab --help'"]


def test_lab_dir_is_refused_in_a_checkout(exec_calls, capsys, tmp_path):
    assert cli.main(["lab", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "kslab: error: --dir: kslab runs from a checkout, which opens its own notebooks/; drop --dir, or run kslab from an installed copy"]
    assert exec_calls == []


def test_lab_outside_a_checkout_makes_a_working_copy_and_keeps_edits(exec_calls, capsys, monkeypatch, tmp_path, locale):
    monkeypatch.setattr(resources, "checkout", lambda: None)
    shipped = tmp_path / "site-packages" / "kslab" / "notebooks"
    shutil.copytree(REPO / "notebooks", shipped)
    monkeypatch.setattr(resources, "notebooks", lambda: shipped)
    work = tmp_path / "home"
    work.mkdir()
    monkeypatch.chdir(work)

    assert cli.main(["lab", "--no-browser", "--lang", "ko"]) == 0
    copy = work / "kslab-workbook"
    chapters = sorted(p.name for p in (REPO / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
    chapters = [name.replace(".py", ".ipynb") for name in chapters]
    assert len(chapters) >= 5 and list(copy.glob("*.ipynb")) == []
    for lang in ("ko", "en"):  # both editions, so --lang can change later without a new copy
        assert sorted(p.name for p in (copy / lang).glob("*.ipynb")) == chapters
        assert sorted(p.name for p in (copy / lang / "solutions").glob("*.ipynb")) == chapters
    assert not (copy / "src").exists()
    assert exec_calls[-1][1][3] == f"--notebook-dir={copy / 'ko'}"
    presented = sorted(p.name for p in (REPO / "notebooks" / "ko" / "present").glob("*.ipynb"))  # kslab present's pages
    for lang in ("ko", "en"):
        assert sorted(p.name for p in (copy / lang / "present").glob("*.ipynb")) == presented
    assert f"copied {4 * len(chapters) + 2 * len(presented)} notebooks of the course into {copy}" in capsys.readouterr().err

    edited = copy / "ko" / chapters[1]
    edited.write_text(edited.read_text().replace("kslab", "KSLAB", 1))
    mine = edited.read_text()
    (copy / "en" / chapters[0]).unlink()  # deleted: the course's version comes back
    assert cli.main(["lab", "--no-browser"]) == 0  # the locale's edition: en
    err = capsys.readouterr().err
    assert exec_calls[-1][1][3] == f"--notebook-dir={copy / 'en'}"
    assert edited.read_text() == mine
    assert f"kept your edited ko/{chapters[1]} in {copy}" in err and f"copied 1 notebook of the course into {copy}" in err
    assert (copy / "en" / chapters[0]).read_bytes() == (shipped / "en" / chapters[0]).read_bytes()

    other = tmp_path / "elsewhere"
    assert cli.main(["lab", "--dir", str(other)]) == 0
    assert exec_calls[-1][1][3] == f"--notebook-dir={other / 'en'}" and (other / "ko" / chapters[0]).is_file()


def test_workbook_says_it_needs_jupytext(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jupytext", None)  # import jupytext -> ModuleNotFoundError
    assert workbook.main(["--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kslab.workbook: error: python3 -m kslab.workbook needs jupytext, a developer tool; "
                   f"run: {sys.executable} -m pip install -e '.[test]'"]


def test_resources_in_a_checkout_are_the_top_level_folders():
    assert resources.checkout() == REPO
    assert resources.study_lab() == REPO / "data" / "myk8s"
    assert resources.notebooks() == REPO / "notebooks"


# ---- fresh installs (slow) ----------------------------------------------------------------------------


def _readme_install_steps() -> tuple[str, str]:
    """The README's first set-up command, split into (install steps, the command that opens the lab)."""
    readme = (REPO / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", readme, re.DOTALL)]
    first = next(b for b in blocks if b.endswith("kslab lab"))
    steps = first.split(" && ")
    assert len(steps) >= 2 and "pip install" in steps[-2] and "[" not in steps[-2], first  # no extras
    return " && ".join(steps[:-1]), steps[-1]


@pytest.fixture(scope="session")
def fresh_checkout(tmp_path_factory):
    """A copy of the checkout with the README's install step run in it: (folder, venv python, seconds)."""
    root = tmp_path_factory.mktemp("fresh") / "kslab"
    root.mkdir()
    copy_checkout(root)
    install, _ = _readme_install_steps()
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "-c", install], cwd=root, env=clean_env(), capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, f"{install}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    python = root / ".venv" / "bin" / "python"
    assert python.is_file()
    print(f"\nREADME install step in a fresh venv: {seconds:.0f} s")
    return root, python, seconds


@pytest.mark.install
def test_readme_install_runs_every_learner_notebook(fresh_checkout):
    root, python, _ = fresh_checkout
    out, seconds = run_learner_notebooks(python, root, [EDITION])
    assert f"kslab from {root / 'kslab' / '__init__.py'} backend sim" in out  # the venv's editable install, not this one
    print(f"\nlearner notebooks ({EDITION} edition) in the fresh venv: {seconds:.0f} s\n{out}")


@pytest.fixture(scope="session")
def wheel_install(fresh_checkout, tmp_path_factory):
    """The same tree installed non-editable (pip builds the wheel with hatchling) into its own
    folder, used with the fresh venv's dependencies: (site folder, venv python)."""
    root, python, _ = fresh_checkout
    site = tmp_path_factory.mktemp("wheel-site")
    r = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--target", str(site), str(root)],
                       env=clean_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return site, python


@pytest.mark.install
def test_non_editable_install_builds_the_lab_elsewhere(wheel_install, tmp_path, capsys):
    site, python = wheel_install
    env = clean_env(PYTHONPATH=str(site))
    code = """\
import json, kslab
from kslab import resources
lab = kslab.Lab()
df = lab.run("net-pod", "svc-clusterip", n=300, seed=1)
print(json.dumps({"kslab": kslab.__file__, "checkout": str(resources.checkout()), "lab": str(resources.study_lab()),
                  "pods": sorted(df["endpoint_pod"].dropna().unique().tolist())}))
"""
    r = subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["kslab"] == str(site / "kslab" / "__init__.py") and out["checkout"] == "None"
    assert out["lab"] == str(site / "kslab" / "data" / "myk8s")
    assert out["pods"] == ["webpod1", "webpod2", "webpod3"]

    kslab_cmd = site / "bin" / "kslab"  # the console script pip wrote for this install
    r = subprocess.run([str(kslab_cmd), "render", "--node", "myk8s-worker"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert cli.main(["render", "--node", "myk8s-worker"]) == 0  # the same lab from this checkout
    assert r.stdout == capsys.readouterr().out and "KUBE-SVC-KBDEBIL6IU6WL7RF" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.install
def test_non_editable_kslab_lab_copies_the_course_and_starts(wheel_install, tmp_path):
    site, python = wheel_install
    env = clean_env(PYTHONPATH=str(site), HOME=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                     LC_ALL="", LC_MESSAGES="", LANG="ko_KR.UTF-8")  # a Korean locale: the ko edition
    kslab_cmd = str(site / "bin" / "kslab")
    r = subprocess.run([kslab_cmd, "lab", "--dry-run", "--backend", "sim"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "kslab-workbook"
    for lang in ("ko", "en"):
        for sub in ("", "solutions"):
            assert sorted(p.name for p in (copy / lang / sub).glob("*.ipynb")) == \
                sorted(p.name for p in (REPO / "notebooks" / lang / sub).glob("*.ipynb")), (lang, sub)
    assert f"{python} -m jupyterlab --notebook-dir={copy / 'ko'}" in r.stderr

    port = _free_port()
    proc = subprocess.Popen([kslab_cmd, "lab", "--no-browser", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        version = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as resp:
                    version = json.loads(resp.read())["version"]
                break
            except OSError:
                time.sleep(0.5)
        assert version, f"JupyterLab did not answer on port {port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert f"--notebook-dir={copy / 'ko'}" in out and "KSLAB_BACKEND=sim" in out, out[-2000:]
    assert "kept your edited" not in out  # the dry run's copy was the course's own
