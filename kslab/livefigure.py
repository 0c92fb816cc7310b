"""The panels' plotly ``FigureWidget``, loaded so that a slow browser cannot leave a chart deaf.

plotly's ``FigureWidget`` is an anywidget: its browser side is a 5 MB JavaScript module (plotly.js
and the widget) that every figure loads for itself, from its own ``_esm`` trait. anywidget gives a
model 2 seconds, from its creation, to load and initialize that module; after that it rejects the
model's ``ready`` promise, and from then on it drops every message the kernel sends to that model
(``AnyModel._handle_comm_msg`` awaits ``ready``). The chart is still drawn, since the view only
waits for the module, but it never changes again. A page with two or more figures loads the module
once per figure, all at once: on a busy machine the later ones miss the 2 seconds. Seen with
chapter 07's presenter page in chromium (Voila): the second chart kept its first bars after every
click while the first chart and the text followed: 13 runs of 19 with anywidget 0.11 and 3 of 4
with 0.10, four runs at once on two cores; with LiveFigure, 0 of 8. The same can happen in
JupyterLab on a slow laptop.

:class:`LiveFigure` gives anywidget a small module instead (:data:`LOADER_ESM`) that initializes at
once, and loads plotly's module beside it, one copy per page shared by every figure. plotly's own
``initialize`` and ``render`` run when it has loaded. If the kernel changed the figure in the
meantime (a change plotly's side was not there to apply), the page asks for the whole figure once
more (a custom message, answered by :meth:`LiveFigure._on_page_message`) before the chart is
drawn. Everything else is plotly's ``FigureWidget``.
"""

from __future__ import annotations

from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import traitlets

# what plotly's module listens to on the model (plotly/basewidget.py: the _py2js_* traits)
PLOTLY_MESSAGES = ("_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
                   "_py2js_relayout", "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps",
                   "_py2js_removeTraceProps")
RESYNC, RESYNCED = "kslab-resync", "kslab-resynced"

LOADER_ESM = """\
// kslab.livefigure: plotly's FigureWidget module, loaded once per page, outside anywidget's 2 s limit
const KEY = Symbol.for("kslab.livefigure.plotly-%(version)s");
const MESSAGES = %(messages)s;

function plotlyWidget(model) {
  if (!globalThis[KEY]) {
    const url = URL.createObjectURL(new Blob([model.get("_plotly_esm")], { type: "text/javascript" }));
    globalThis[KEY] = import(/* webpackIgnore: true */ url)
      .then((mod) => (typeof mod.default === "function" ? mod.default : () => mod.default))
      .finally(() => URL.revokeObjectURL(url));
  }
  return globalThis[KEY];
}

function resync(model) {
  // the kernel answers with the whole figure (_widget_data, _widget_layout), then RESYNCED
  return new Promise((resolve) => {
    const done = (msg) => {
      if (msg && msg.kslab === "%(resynced)s") {
        model.off("msg:custom", done);
        resolve();
      }
    };
    model.on("msg:custom", done);
    model.send({ kslab: "%(resync)s" });
  });
}

export default () => {
  let plotly = null;
  let ready = null;
  return {
    initialize({ model, experimental }) {
      let missed = false;
      const mark = () => { missed = true; };
      for (const name of MESSAGES) model.on(`change:${name}`, mark);
      ready = plotlyWidget(model).then(async (makeWidget) => {
        for (const name of MESSAGES) model.off(`change:${name}`, mark);
        plotly = await makeWidget();
        await plotly.initialize?.({ model, experimental });
        if (missed) {
          console.debug("[kslab] LiveFigure: the figure changed while plotly loaded; resynced");
          await resync(model);
        }
      });
      // not awaited: anywidget stops listening to a model that takes over 2 s to initialize
    },
    async render(context) {
      await ready;
      return plotly.render(context);
    },
  };
};
"""


@cache
def _plotly_bundle() -> str:  # 5 MB: read once per process, not once per figure
    return (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")


class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` whose browser side loads outside anywidget's 2-second limit (see the module)."""

    _esm = LOADER_ESM % {"version": plotly.__version__, "messages": list(PLOTLY_MESSAGES),
                         "resync": RESYNC, "resynced": RESYNCED}
    _plotly_esm = traitlets.Unicode().tag(sync=True)

    @traitlets.default("_plotly_esm")
    def _default_plotly_esm(self) -> str:  # in the model's first state: the page loads it at once
        return _plotly_bundle()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_msg(self._on_page_message)

    def _on_page_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The page missed changes while plotly's module loaded: send it the whole figure, then say so."""
        if not isinstance(content, dict) or content.get("kslab") != RESYNC:
            return
        self._widget_layout = deepcopy(self._layout_obj._props)
        self._widget_data = deepcopy(self._data)
        self.send_state(["_widget_data", "_widget_layout"])
        self.send({"kslab": RESYNCED})
