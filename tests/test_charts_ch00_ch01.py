"""Chapters 00 and 01's charts: the lab's topology and chapter 01's distribution chart and replica panel: readable pod names, the uniform label
apart from the bars' count labels, the p-value worded as the chapter words it. (Where the text
lands on screen is checked in a real browser, tests/test_browser.py.)"""

from __future__ import annotations

from kslab import charts
from kslab.lab import Lab
from kslab.views import DistributionPanel


def test_short_pod_names_show_a_deployments_shared_prefix_once() -> None:
    pods = ["deploy-echo-gtc48pc688-clvtq", "deploy-echo-gtc48pc688-89mtp", "deploy-echo-gtc48pc688-xjvgm"]
    assert charts.short_pod_names(pods) == (["clvtq", "89mtp", "xjvgm"], "deploy-echo-gtc48pc688-")
    assert charts.short_pod_names(pods[:1]) == (["clvtq"], "deploy-echo-gtc48pc688-")
    assert charts.short_pod_names(["webpod1", "webpod2", "webpod3"]) == (["webpod1", "webpod2", "webpod3"], "")
    assert charts.short_pod_names(["web-1", "web-1x"]) == (["1", "1x"], "web-")
    assert charts.short_pod_names(["web-", "web-a"]) == (["web-", "web-a"], "")  # a label would be empty
    assert charts.short_pod_names([]) == ([], "")


def _uniform_labels(fig) -> list:
    return [a for a in fig.layout.annotations if "uniform" in (a.text or "")]


def test_distribution_figure_labels_apart() -> None:
    lab = Lab(seed=1)
    lab.scale("deploy-echo", 5)
    pods = sorted(p.name for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo")
    df = lab.run("net-pod", "svc-nodeport", n=500, seed=1)
    fig = charts.distribution_figure(df, categories=pods)
    bar = fig.data[0]
    prefix = pods[0][: pods[0].rfind("-") + 1]
    assert list(bar.customdata) == pods and list(bar.x) == [p[len(prefix):] for p in pods]
    assert prefix in fig.layout.xaxis.title.text
    (label,) = _uniform_labels(fig)
    # in the right margin, left-aligned past the plot area's right edge: never over a bar's text
    assert label.xref == "paper" and label.x > 1 and label.xanchor == "left" and "1/5" in label.text
    assert fig.layout.margin.r >= 80
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].y0 == 1 / 5
    assert bar.cliponaxis is False and fig.layout.yaxis.range[1] >= max(bar.y) * 1.25


def test_panel_redraws_short_labels_and_words_the_p_value() -> None:
    panel = DistributionPanel(Lab(seed=1), replicas=3, connections=1200)
    fig = panel.figure
    panel.replicas.value = 5
    bar = fig.data[0]
    assert len(bar.x) == 5 and all(len(x) <= 6 for x in bar.x) and len(set(bar.x)) == 5
    assert list(bar.customdata) == panel.result.pods
    (label,) = _uniform_labels(fig)
    assert label.x > 1 and "1/5" in label.text and fig.layout.shapes[0].y0 == 1 / 5
    assert "deploy-echo-" in fig.layout.xaxis.title.text
    assert "no evidence against an even split" in panel.summary.value and "consistent" not in panel.summary.value
    panel.replicas.value = 1
    assert len(fig.data[0].x) == 1 and "1/1" in _uniform_labels(fig)[0].text


def test_topology_elides_the_pod_template_hash_and_keeps_full_names_in_hover() -> None:
    lab = Lab()
    fig = charts.topology_figure(lab.cluster)
    pods = fig.data[0]
    echo = [p for p in lab.cluster.pods if p.owner == "Deployment/deploy-echo"]
    for p in echo:
        suffix = p.name.rsplit("-", 1)[1]
        assert f"deploy-echo-…-{suffix}<br>{p.pod_ip}" in pods.text
        assert any(h.startswith(f"{p.name} ({p.pod_ip})") for h in pods.hovertext)
    assert "webpod1<br>" + lab.cluster.pod("webpod1").pod_ip in pods.text  # bare pods keep their names
    # each pod's marker sits at the left of its node's box, so its label has the box's width
    boxes = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(boxes) == len(lab.cluster.nodes)
    assert all(any(b.x0 < x < b.x0 + 0.1 for b in boxes) for x in pods.x)
