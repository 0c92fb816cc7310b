"""kslab.livefigure.LiveFigure: plotly's FigureWidget with a small anywidget module that loads
plotly's own module once per page, outside anywidget's 2-second limit (a model that misses it
drops every later message: chapter 07's presenter page lost a chart's redraws that way), and a
resync answer for a page that missed changes while plotly loaded. The browser side runs in
tests/test_browser_present.py and tests/test_browser.py."""

from __future__ import annotations

from pathlib import Path

import plotly
import plotly.graph_objects as go

from kslab import livefigure, views
from kslab.livefigure import PLOTLY_MESSAGES, RESYNC, RESYNCED, LiveFigure


def _bars():
    return go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))


def test_the_page_gets_a_small_module_and_plotly_s_own_beside_it():
    fig = LiveFigure(_bars())
    state = fig.get_state()
    bundle = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")
    assert len(state["_esm"]) < 5_000 < len(bundle) and state["_plotly_esm"] == bundle  # in the first state
    esm = state["_esm"]
    assert "%(" not in esm and f"plotly-{plotly.__version__}" in esm and "export default" in esm
    assert all(f"'{name}'" in esm for name in PLOTLY_MESSAGES) and RESYNC in esm and RESYNCED in esm


def test_plotly_s_module_still_listens_to_the_messages_the_loader_watches():
    """If plotly renames its message traits, the loader would miss changes: fail here first."""
    fig = LiveFigure(_bars())
    assert set(PLOTLY_MESSAGES) <= set(fig.get_state())
    bundle = fig._plotly_esm
    assert all(f'change:{name}"' in bundle for name in PLOTLY_MESSAGES)
    assert "initialize(" in bundle and "render(" in bundle


def test_resync_sends_the_whole_figure_then_says_so():
    fig = LiveFigure(_bars())
    with fig.batch_update():
        fig.data[0].y = [5, 6]
        fig.layout.title.text = "changed"
    sent_state, sent = [], []
    fig.send_state = lambda key=None: sent_state.append(key)
    fig.send = lambda content, buffers=None: sent.append(content)
    fig._handle_custom_msg({"something": "else"}, [])   # not ours: ignored
    assert sent == [] and sent_state == []
    fig._handle_custom_msg({"kslab": RESYNC}, [])
    assert sent_state[-1] == ["_widget_data", "_widget_layout"] and sent == [{"kslab": RESYNCED}]  # even if unchanged
    assert list(fig._widget_data[0]["y"]) == [5, 6] and fig._widget_layout["title"]["text"] == "changed"


def test_panels_draw_with_live_figures():
    import kslab

    panel = views.TrafficPolicyPanel(kslab.Lab(), connections=60)
    assert isinstance(panel.node_figure, LiveFigure) and isinstance(panel.pod_figure, LiveFigure)
    seen = []
    panel.pod_figure.observe(lambda change: seen.append(change["new"]), names="_py2js_update")
    panel.set(policy="Local")
    assert seen and seen[0]["style_data"], seen
    assert livefigure.LiveFigure.__mro__[1] is go.FigureWidget
