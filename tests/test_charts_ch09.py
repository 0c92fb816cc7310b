"""Chapter 09's charts (topology aware routing): the hints per zone, the client zone x endpoint zone
matrix, the cross-zone bars and the panel's line. The pure ``*_data`` functions are checked
without a browser, on small hand-made tables."""

from __future__ import annotations

import pandas as pd

from kslab import charts
from kslab.views import TopologyResult

ZONES = ["za", "zb", "zc"]


def _hints(rows):
    """(zone, ready, for_zones) -> a hints table with the columns views.hints_table gives."""
    return pd.DataFrame([{"slice": "s", "pod": f"p{i}", "address": f"10.0.0.{i}", "node": f"n-{z}", "zone": z,
                          "ready": ready, "for_zones": f, "for_nodes": ""} for i, (z, ready, f) in enumerate(rows)])


UNEVEN = _hints([("za", True, "za"), ("za", True, "za"), ("za", True, "zb"), ("za", True, "zc"),
                 ("zb", True, "zb"), ("zc", True, "zc"), ("zc", False, "")])


def test_hints_data_counts_ready_endpoints_by_the_zone_they_are_hinted_for():
    d = charts.hints_data(UNEVEN, ZONES)
    assert d["zones"] == ZONES and d["names"] == [*ZONES, charts.NO_HINT]
    by = dict(zip(d["names"], d["counts"]))
    assert by == {"za": [2, 0, 0], "zb": [1, 1, 0], "zc": [1, 0, 1], charts.NO_HINT: [0, 0, 0]}  # the unready one is left out
    none = charts.hints_data(_hints([("za", True, ""), ("zb", True, "")]), ZONES)
    assert dict(zip(none["names"], none["counts"]))[charts.NO_HINT] == [1, 1, 0]
    fig = charts.hints_figure(UNEVEN, ZONES, title="t")
    assert [t.name for t in fig.data] == [*ZONES, charts.NO_HINT] and fig.layout.barmode == "stack"
    assert fig.data[0].marker.color == charts.zone_colors(ZONES)["za"]


def test_hints_data_shows_a_zone_outside_the_given_ones_and_no_zone():
    d = charts.hints_data(_hints([("za", True, "za"), ("", True, "")]), ZONES)
    assert d["zones"] == [*ZONES, "(no zone)"] and dict(zip(d["names"], d["counts"]))[charts.NO_HINT] == [0, 0, 0, 1]


def test_zone_matrix_data_orders_the_zones_and_fills_the_gaps():
    m = pd.DataFrame([[0.5, 0.5], [0.0, 1.0]], index=["za", "zb"], columns=["za", "zb"])
    d = charts.zone_matrix_data(m, ZONES)
    assert d["x"] == d["y"] == ZONES
    assert d["z"] == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]] and d["text"][0] == ["50%", "50%", "0%"]
    fig = charts.zone_matrix_figure(m, ZONES, title="t")
    assert fig.data[0].zmax == 1 and list(fig.data[0].x) == ZONES


def test_cross_zone_data_and_bars_keep_each_setting_per_zone():
    runs = {"off": pd.Series({"za": 0.66, "zb": 0.7}), "Auto": pd.Series({"za": 0.0, "zc": 0.0})}
    d = charts.cross_zone_data(runs)
    assert d["zones"] == ZONES and d["series"] == {"off": [0.66, 0.7, 0.0], "Auto": [0.0, 0.0, 0.0]}
    fig = charts.cross_zone_bars(runs, title="t")
    assert [t.name for t in fig.data] == ["off", "Auto"] and list(fig.data[0].text) == ["66%", "70%", "0%"]


def test_titles_and_the_panel_line_say_what_happened():
    r = TopologyResult(df=pd.DataFrame(), hints=UNEVEN, events=[("Normal", "TopologyAwareHintsEnabled", "Topology Aware "
                                                                 "Hints has been enabled, addressType: IPv4")],
                       cross_zone=pd.Series({"za": 0.0, "zb": 0.5}), matrix=pd.DataFrame(), zone_cpu={"za": 1000, "zb": 1000},
                       allocations=pd.DataFrame(), mode="Auto", connections=300)
    assert r.hinted is True and r.message.startswith("TopologyAwareHintsEnabled: Topology Aware Hints")
    assert "6 ready endpoints" in charts.hints_title(r) and "hints written" in charts.hints_title(r)
    assert "za 0%, zb 50%" in charts.matrix_title(r) and "300 connections" in charts.matrix_title(r)
    line = charts.topology_line(r)
    assert "za: 0%, zb: 50%" in line and "za 1000m" in line and "has been enabled" in line
    unhinted = TopologyResult(df=pd.DataFrame(), hints=_hints([("za", True, ""), ("zb", True, "zb")]), events=[],
                              cross_zone=pd.Series(dtype=float), matrix=pd.DataFrame(), zone_cpu={}, allocations=pd.DataFrame())
    assert unhinted.hinted is False and unhinted.message == "" and "no hints" in charts.hints_title(unhinted)
