"""The workbook's sources and generated notebooks agree; notebooks are committed clean; the two
editions (ko, en) come from one bilingual source and share every code cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kslab import presenter, resources, workbook
from kslab.errors import InputError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_generated_notebooks_are_up_to_date():
    assert workbook.main(["--check"]) == 0, "run: python3 -m kslab.workbook"


def test_every_chapter_has_both_editions_and_nothing_else_is_left():
    chapters = workbook.sources()
    assert len(chapters) >= 5
    expected = {NOTEBOOKS / lang / sub / f"{src.stem}.ipynb" for src in chapters for lang in ("ko", "en") for sub in ("", "solutions")}
    assert {p for t in workbook.targets() for p in (t.learner, t.solution)} == expected
    assert all(p.is_file() for p in expected)
    # the single-edition notebooks are gone (JupyterLab's own checkpoints are not chapters); presenter
    # pages (notebooks/<lang>/present, tests/test_present.py) for the chapters present.toml names
    presented = {NOTEBOOKS / lang / "present" / f"{src.stem}.ipynb" for src in chapters for lang in ("ko", "en")
                 if src.name[:2] in presenter.load_spec(NOTEBOOKS / "src")}
    assert sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts) == sorted(expected | presented)
    assert workbook.orphans(expected | presented) == []


@pytest.mark.parametrize("path", [p for t in workbook.targets() for p in (t.learner, t.solution)],
                         ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_notebook_is_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        assert "lang" not in cell["metadata"]


def _cells(path: Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


@pytest.mark.parametrize("src", workbook.sources(), ids=lambda p: p.stem)
def test_editions_share_every_code_cell(src):
    """Learner vs learner and solution vs solution, read from the committed notebooks: the same
    cells in the same places, identical code, and markdown in each edition's own language."""
    ko, en = (next(t for t in workbook.targets() if t.src == src and t.lang == lang) for lang in ("ko", "en"))
    for kind in ("learner", "solution"):
        a, b = _cells(getattr(ko, kind)), _cells(getattr(en, kind))
        assert [t for t, _ in a] == [t for t, _ in b], f"{src.name} {kind}: the editions' cells differ in kind or number"
        code = [(x, y) for (t, x), (_, y) in zip(a, b) if t == "code"]
        assert code and all(x == y for x, y in code), f"{src.name} {kind}: a code cell differs between the editions"
        markdown = [(x, y) for (t, x), (_, y) in zip(a, b) if t == "markdown"]
        hangul = re.compile("[\uac00-\ud7a3]")
        assert all(len(hangul.findall(x)) > len(hangul.findall(y)) or x == y for x, y in markdown), src.name
        assert sum(x != y for x, y in markdown) >= len(markdown) - 1, f"{src.name} {kind}: untranslated markdown"


def test_learner_and_solution_versions_differ_only_in_exercises():
    for t in workbook.targets():
        learner, solution = workbook.build(t.src, t.lang)
        assert len(learner.cells) == len(solution.cells)
        exercises = 0
        for a, b in zip(learner.cells, solution.cells):
            if "exercise" in a.metadata.get("tags", []):
                exercises += 1
                assert "answer = None" in a.source and "answer = None" not in b.source
                assert [l for l in a.source.splitlines() if l.startswith("kslab.check.")] == \
                       [l for l in b.source.splitlines() if l.startswith("kslab.check.")]
            else:
                assert a.source == b.source
        # exercises and predict-before-you-run questions; the capstone (chapter 11) is its eight scenarios
        assert 2 <= exercises <= (8 if t.src.name == "11_capstone.py" else 6), t.src.name


def test_checks_give_feedback():
    from kslab.check import Feedback, WrongAnswer, ch01

    pending = ch01.ladder(None)
    assert isinstance(pending, Feedback) and not pending and "not answered" in pending.message
    assert ch01.ladder([0.25, 1 / 3, 0.5])
    with pytest.raises(WrongAnswer, match="Hint"):
        ch01.ladder([0.25, 0.25, 0.25])


def _right_and_wrong():
    """(check, right answer, wrong answer) for every exercise, answers worked out independently."""
    from kslab import check
    from kslab.lab import Lab

    lab = Lab(seed=0)
    web1 = lab.cluster.pod("webpod1")
    return [
        (lambda a: check.ch00.nodes_with_rules(a, lab), len(lab.cluster.nodes), 1),
        (lambda a: check.ch00.client_node(a, lab), lab.cluster.pod("net-pod").node_name, "myk8s-worker3"),
        (check.ch01.ladder, [0.25, 1 / 3, 0.5], [0.25, 0.25, 0.25]),
        (check.ch01.chain_name, "KUBE-SVC-VTR7MTHHNMFZ3OFS", "KUBE-SVC-KBDEBIL6IU6WL7RF"),
        (lambda a: check.ch01.node_masquerade(a, lab), True, False),
        (check.ch02.affinity_match, "recent", "statistic"),
        (lambda a: check.ch02.may_move(a, Lab(seed=0)), True, False),
        (lambda a: check.ch02.may_move(a, Lab(seed=0), gap=20), False, True),  # still inside the timeout: stays
        (lambda a: check.ch02.behind_nat(a, Lab(seed=0)), 1, 3),
        (lambda a: check.ch02.list_size(a, Lab(seed=0)), "c", "b"),
        (lambda a: check.ch02.list_size(a, Lab(seed=0), clients=150), "a", "c"),
        (lambda a: check.ch02.recording_node(a, Lab(seed=0)), "myk8s-worker2", "myk8s-control-plane"),
        (lambda a: check.ch02.recording_node(a, Lab(seed=0), client="10.10.3.201"), "myk8s-worker3", "myk8s-worker2"),
        (lambda a: check.ch03.hairpin_source(a, Lab(seed=0)), "10.10.1.1", web1.pod_ip),
        (check.ch03.hairpin_failures, 1 / 3, 0.0),
        (lambda a: check.ch04.error_rate(a, Lab(seed=0)), 1 / 3, 0.0),
        (lambda a: check.ch04.sticky_scheduler(a, Lab(seed=0)), _sh_kept(), _sh_kept() + 3),
        (lambda a: check.ch04.ipvs_affinity(a, Lab(seed=0)), 1 / 2, 1 / 3),  # rr hands 4 clients to 3 servers: 2-1-1
        (check.ch04.wrr_share, 1 / 3, 0.5),
        (lambda a: check.ch04.cross_node(a, lab=Lab(seed=0)), None, 1.0),  # right answer computed below
        (lambda a: check.ch04.ipvs_share(a, lab=Lab(seed=0)), 1 / 5, 1 / 3),  # 5 deploy-echo endpoints, weight 1 each
        (lambda a: check.ch06.control_plane(a, lab), "b", "a"),
        (lambda a: check.ch06.seen_ip(a, lab), lab.cluster.node("myk8s-worker3").internal_ip, "172.18.0.100"),
        (lambda a: check.ch06.masq_chain(a, lab), "KUBE-EXT-KBDEBIL6IU6WL7RF", "KUBE-SVC-KBDEBIL6IU6WL7RF"),
        (check.ch06.bands, [30000, 30030], [30000, 30085]),
    ]


def test_every_exercise_check_accepts_the_right_answer_and_hints_on_a_wrong_one():
    from kslab.check import WrongAnswer
    from kslab.lab import Lab

    cases = _right_and_wrong()
    scaled = Lab(seed=0)
    scaled.scale("deploy-echo", 6)
    node = scaled.cluster.pod("webpod1").node_name
    local = sum(p.node_name == node for p in scaled.cluster.pods if p.owner == "Deployment/deploy-echo")
    for i, (fn, right, wrong) in enumerate(cases):
        if right is None:
            right = 1 - local / 6
        assert not fn(None), f"case {i}: None must be 'not answered'"
        assert fn(right), f"case {i}: {right!r} should be right"
        with pytest.raises(WrongAnswer) as err:
            fn(wrong)
        assert "Hint" in str(err.value) or "which one" in str(err.value), f"case {i}: {err.value}"


def _sh_kept(gone: str = "webpod2") -> int:
    """Chapter 04 exercise 1 worked out as the chapter does: sh simulated with and without
    ``gone``'s real server, each client's server read from ipvs.client_matrix."""
    from kslab import ipvs
    from kslab.lab import Lab

    servers = ipvs.service_servers(Lab(seed=0).cluster, "svc-clusterip")
    clients = [f"10.10.0.{10 + i}" for i in range(12)]
    first, second = (ipvs.client_matrix(ipvs.simulate("sh", s, clients, 3000, seed=1)).idxmax(axis=1)
                     for s in (servers, [s for s in servers if s.name != gone]))
    return int((first == second).sum())


def test_sh_keeps_fewer_clients_than_a_consistent_hash_when_a_server_leaves():
    from kslab.check import WrongAnswer, ch04
    from kslab.lab import Lab

    lab = Lab(seed=0)
    kept = _sh_kept()
    assert 0 < kept < 8  # not every client of webpod1/webpod3 keeps its server
    fb = ch04.sticky_scheduler(kept, lab)
    assert fb and "256 buckets" in fb.message and "would keep 8" in fb.message
    with pytest.raises(WrongAnswer, match="consistent hash"):
        ch04.sticky_scheduler(8, lab)  # only webpod2's 4 clients moving would be Maglev's answer
    with pytest.raises(WrongAnswer, match="number of clients"):
        ch04.sticky_scheduler("sh", lab)
    assert [e.ready for sl in lab.cluster.slices_for(lab.cluster.service("svc-clusterip")) for e in sl.endpoints] \
        == [True, True, True]  # the learner's lab: webpod2 still ready
    for gone in ("webpod1", "webpod3"):  # another pod leaving: the answer follows the lab
        assert ch04.sticky_scheduler(_sh_kept(gone), lab, gone=gone)


def test_ipvs_affinity_balances_clients_not_connections():
    from kslab.check import WrongAnswer, ch04
    from kslab.lab import Lab

    lab = Lab(seed=0)
    fb = ch04.ipvs_affinity(0.5, lab)
    assert fb and "1 server" in fb.message
    assert ch04.ipvs_affinity(1 / 3, lab, clients=12) and ch04.ipvs_affinity(1 / 2, lab, clients=2, scheduler="lc")
    for wrong in (1 / 3, 1 / 4, 1.0):
        with pytest.raises(WrongAnswer, match="Hint"):
            ch04.ipvs_affinity(wrong, lab)
    with pytest.raises(WrongAnswer, match="one number"):
        ch04.ipvs_affinity("persistence", lab)


def test_wrr_share_is_a_third_because_kube_proxy_weights_every_endpoint_1():
    from kslab.check import WrongAnswer, ch04

    assert ch04.wrr_share(0.33) and ch04.wrr_share(1 / 3)
    for wrong in (0.5, 0.25, 0.0):  # 0.5 was webpod3's share with a hand-set weight 2
        with pytest.raises(WrongAnswer, match="weight"):
            ch04.wrr_share(wrong)


def test_ipvs_share_follows_the_lab_and_leaves_it_unchanged():
    """ch04 exercise 4: the answer is computed from the lab's EndpointSlices (kube-proxy's real
    servers, weight 1 each), on a copy: other replica counts give other answers, and the learner's
    lab keeps its 3 replicas."""
    from kslab.check import WrongAnswer, ch04
    from kslab.lab import Lab

    lab = Lab(seed=0)
    echo = [p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]
    assert ch04.ipvs_share(1 / 4, lab=lab, replicas=4) and ch04.ipvs_share(1 / 2, lab=lab, replicas=2)
    assert ch04.ipvs_share(1 / 3, lab=lab, replicas=3, scheduler="rr")
    with pytest.raises(WrongAnswer, match="5 replicas"):
        ch04.ipvs_share(1 / 4, lab=lab)
    with pytest.raises(WrongAnswer, match="one number"):
        ch04.ipvs_share("a fifth", lab=lab)
    assert [p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"] == echo


def test_feedback_shows_nothing_more_in_a_notebook():
    from kslab.check import ch02

    result = ch02.may_move(True)
    assert result and hasattr(result, "_ipython_display_") and result._ipython_display_() is None


# ---- the bilingual source convention -----------------------------------------------------------------

HEADER = "# ---\n# jupyter:\n#   jupytext:\n#     formats: py:percent\n# ---\n\n"


def _source(tmp_path, body: str) -> Path:
    path = tmp_path / "99_probe.py"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


GOOD = """# %% [markdown] lang="en"
# # Title

# %% [markdown] lang="ko"
# # 제목

# %%
x = 1

# %% [markdown] lang="any"
# `x`

# %% [markdown] lang="ko"
# 연습 문제

# %% [markdown] lang="en"
# Exercise

# %% tags=["solution"]
# EXERCISE-START
answer = None
# EXERCISE-END
answer = x
"""


def test_each_edition_keeps_its_language_and_the_neutral_cells(tmp_path):
    src = _source(tmp_path, GOOD)
    ko, ko_solution = workbook.build(src, "ko")
    en, _ = workbook.build(src, "en")
    assert [c.source for c in ko.cells] == ["# 제목", "x = 1", "`x`", "연습 문제", "answer = None"]
    assert [c.source for c in en.cells] == ["# Title", "x = 1", "`x`", "Exercise", "answer = None"]
    assert ko_solution.cells[-1].source == "answer = x"
    assert all(c.metadata == {} for c in ko.cells[:-1]) and ko.cells[-1].metadata == {"tags": ["exercise"]}


@pytest.mark.parametrize("body, line, message", [
    ('# %% [markdown] lang="en"\n# Title\n\n# %% [markdown]\n# 제목\n', 10, "markdown cell without a language"),
    ('# %% [markdown] lang="en"\n# Title\n\n# %%\nx = 1\n', 7, "have 0 ko and 1 en parts"),
    ('# %% [markdown] lang="en"\n# A\n\n# %% [markdown] lang="en"\n# B\n\n# %% [markdown] lang="ko"\n# 가\n', 7,
     "have 1 ko and 2 en parts"),
    ('# %% [markdown] lang=ko\n# 제목\n', 7, "'lang=ko' is not valid jupytext metadata"),
    ('# %% [markdown] lang="fr"\n# Titre\n', 7, "lang='fr' is not an edition"),
    ('# %% lang="ko"\nx = 1\n', 7, "a code cell has lang='ko'"),
])
def test_a_source_breaking_the_convention_is_a_one_line_error_at_its_line(tmp_path, body, line, message):
    src = _source(tmp_path, body)
    with pytest.raises(InputError) as err:
        workbook.build(src, "en")
    text = str(err.value)
    assert "\n" not in text and f"99_probe.py:{line}: " in text and message in text, text


def test_the_generator_reports_a_broken_source_without_writing(tmp_path, monkeypatch, capsys):
    src = _source(tmp_path, '# %% [markdown]\n# untranslated\n')
    monkeypatch.setattr(workbook, "sources", lambda: [src])
    monkeypatch.setattr(workbook, "_checkout", lambda: tmp_path)
    assert workbook.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kslab.workbook: error: ") and "markdown cell without a language" in err[0]
    assert "lang=\"ko\" or lang=\"en\"" in err[0]
    assert not (tmp_path / "notebooks").exists()


def test_the_generator_writes_both_editions_and_removes_what_it_no_longer_makes(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks" / "src").mkdir(parents=True)
    src = tmp_path / "notebooks" / "src" / "99_probe.py"
    src.write_text(HEADER + GOOD, encoding="utf-8")
    old = [tmp_path / "notebooks" / "99_probe.ipynb", tmp_path / "notebooks" / "solutions" / "99_probe.ipynb"]
    for p in old:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    mine = tmp_path / "notebooks" / "ko" / "scratch.ipynb"  # not a chapter name: never touched
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    monkeypatch.setattr(workbook, "_checkout", lambda: tmp_path)
    assert workbook.main(["--check"]) == 1
    assert "no longer generated: notebooks/99_probe.ipynb" in capsys.readouterr().err
    assert workbook.main([]) == 0
    assert "1 chapters x 2 editions, written: 4 changed, 2 removed" in capsys.readouterr().out
    assert not any(p.exists() for p in old) and not (tmp_path / "notebooks" / "solutions").exists() and mine.exists()
    for lang in resources.EDITIONS:
        assert (tmp_path / "notebooks" / lang / "99_probe.ipynb").is_file()
        assert (tmp_path / "notebooks" / lang / "solutions" / "99_probe.ipynb").is_file()
    assert workbook.main(["--check"]) == 0


def test_glossary_in_chapter_00_covers_the_course_in_both_editions():
    tables = {}
    for lang in ("ko", "en"):
        nb = json.loads((NOTEBOOKS / lang / "00_lab_tour.ipynb").read_text(encoding="utf-8"))
        header = {"ko": "| 한국어 | English | 뜻 | 장 |", "en": "| English | 한국어 | meaning | chapter |"}[lang]
        [cell] = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown" and header in "".join(c["source"])]
        rows = [line for line in cell.splitlines() if line.startswith("| ") and not line.startswith("| 한국어 |")
                and not line.startswith("| English |")]
        tables[lang] = [[x.strip() for x in row.strip("|").split("|")] for row in rows]
    ko, en = tables["ko"], tables["en"]
    assert len(ko) == len(en) >= 40 and all(len(r) == 4 for r in ko + en)
    assert [(r[0], r[1], r[3]) for r in ko] == [(r[1], r[0], r[3]) for r in en]  # same terms, same chapters
    english = " ".join(r[1] for r in ko)
    for term in ("NodePort", "externalTrafficPolicy", "readiness probe", "EndpointSlice", "topology aware routing", "iperf3",
                 "Service", "Pod", "endpoint", "session affinity", "control plane", "label", "selector", "Deployment",
                 "hairpin NAT", "masquerade", "conntrack"):
        assert term in english, term
    korean = {r[0] for r in ko}
    for term in ("서비스", "엔드포인트", "엔드포인트슬라이스", "파드", "노드", "디플로이먼트", "준비성 프로브", "세션 어피니티",
                 "컨트롤 플레인", "레이블", "셀렉터", "토폴로지 인지 라우팅", "외부 트래픽 정책"):
        assert term in korean, term


@pytest.mark.parametrize("src", workbook.sources(), ids=lambda p: p.stem)
def test_sources_round_trip_through_jupytext(src):
    """lang="ko"/"en" is jupytext's own cell metadata: opening a source in Jupyter (jupytext) and
    saving it keeps every cell as written (jupytext only adds its version to the YAML header)."""
    import jupytext

    text = src.read_text(encoding="utf-8")
    again = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    def cells(t: str) -> str:
        return t[t.index("# %%"):]
    assert cells(again) == cells(text)
