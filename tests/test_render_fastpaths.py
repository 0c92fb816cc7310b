"""The renderer's fast paths give exactly what the general paths give.

- :func:`kslab.proxy.endpoints.build_endpoints_map` keeps a service port whose endpoints one
  slice gives, all plain, as that slice's columns (``columns=True``); every other case goes
  through rows. Both must describe the same endpoints, in the same order, with the same fields.
- :class:`kslab.proxy.iptables.ruleset.LineBuffer` lists a batch's chains (``write_chain_blocks``)
  by sorting their blocks; a chain declared twice or written again by ``write_block`` takes the
  general way. Both must give the same text as the chain-by-chain index.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kslab.model import Endpoint, EndpointPort, EndpointSlice
from kslab.proxy.endpoints import EndpointColumns, build_endpoints_map
from kslab.proxy.iptables.chains import new_endpoint_info
from kslab.proxy.iptables.ruleset import LineBuffer, _sorted_chains

NODE = "node-a"


def _fields(info) -> tuple:
    return (info.ip, info.port, info.is_local, info.ready, info.serving, info.terminating, info.zone_hints,
            info.node_hints, info.node_name, info.zone, info.target_pod, info.endpoint, info.chain)


def _described(endpoints_map) -> dict:
    return {spn: [_fields(i) for i in (eps.infos() if isinstance(eps, EndpointColumns) else eps)]
            for spn, eps in endpoints_map.items()}


_ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.11", "10.0.1.1", "10.0.0.01", "10.1.0.3", "fd00::1", "bogus"])
_endpoint = st.builds(
    Endpoint,
    addresses=st.one_of(st.just([]), st.lists(_ips, min_size=1, max_size=2)),
    ready=st.sampled_from([True, None, False]),
    serving=st.sampled_from([True, None, False]),
    terminating=st.sampled_from([None, False, True]),
    node_name=st.sampled_from([NODE, "node-b", None]),
    zone=st.sampled_from(["z1", None]),
    hints_for_zones=st.sampled_from([None, [], ["z1"]]),
    hints_for_nodes=st.sampled_from([None, [], [NODE]]),
    target_pod=st.sampled_from(["p1", "p2", None]),
)
_port = st.builds(EndpointPort, port=st.sampled_from([80, 8080, None]), name=st.sampled_from(["", "http"]),
                  protocol=st.sampled_from(["TCP", "UDP"]))


@st.composite
def _slices(draw):
    out = []
    for i in range(draw(st.integers(1, 6))):
        out.append(EndpointSlice(
            name=f"s-{i}", namespace=draw(st.sampled_from(["default", "other"])),
            service_name=draw(st.sampled_from(["web", "db"])),
            address_type=draw(st.sampled_from(["IPv4", "IPv4", "IPv6"])),
            ports=draw(st.lists(_port, max_size=2)),
            endpoints=draw(st.lists(_endpoint, max_size=6)),
        ))
    return out


@settings(max_examples=400, deadline=None)
@given(_slices())
def test_endpoint_columns_describe_what_rows_describe(slices):
    for family in (4, 6):
        rows = build_endpoints_map(slices, NODE, family, new_endpoint_info)
        columns = build_endpoints_map(slices, NODE, family, new_endpoint_info, columns=True)
        assert columns.keys() == rows.keys()
        assert _described(columns) == _described(rows)


def test_a_second_slice_of_a_service_port_makes_its_columns_rows():
    """The first slice is plain (columns at first); the second repeats one endpoint on this node and
    adds one that is not ready: the merged list must prefer the local copy and carry readiness."""
    port = [EndpointPort(port=80, name="http")]
    first = EndpointSlice(name="web-a", service_name="web", ports=port,
                          endpoints=[Endpoint(["10.0.0.2"], node_name="node-b"), Endpoint(["10.0.0.1"], node_name="node-b")])
    second = EndpointSlice(name="web-b", service_name="web", ports=port,
                           endpoints=[Endpoint(["10.0.0.2"], node_name=NODE), Endpoint(["10.0.0.3"], ready=False)])
    (spn, eps), = build_endpoints_map([first, second], NODE, 4, new_endpoint_info, columns=True).items()
    assert isinstance(eps, list)  # not plain any more
    assert [(e.endpoint, e.is_local, e.ready) for e in eps] == [("10.0.0.1:80", False, True), ("10.0.0.2:80", True, True),
                                                               ("10.0.0.3:80", False, False)]
    one = build_endpoints_map([first], NODE, 4, new_endpoint_info, columns=True)[spn]
    assert isinstance(one, EndpointColumns) and one.endpoints == ("10.0.0.1:80", "10.0.0.2:80")
    assert one.ips == ("10.0.0.1", "10.0.0.2") and one.details() == (["node-b", "node-b"], [None, None], [None, None])


def _general_text(buf: LineBuffer) -> list[str]:
    """The restore body of one table (its lines) the general way: every chain's blocks from the full index."""
    head, rest = _sorted_chains(buf.chains)
    return [r for c in head for r in buf.rules_in(c)] + "\n".join(buf.blocks_of(rest)).split("\n")


def _fast_text(buf: LineBuffer) -> list[str]:
    head, head_rules, rest, blocks = buf.sorted_blocks()
    assert (head, rest) == _sorted_chains(buf.chains)
    return [r for rules in head_rules for r in rules] + "\n".join(blocks).split("\n")


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans(), st.booleans())
def test_sorted_blocks_equal_the_chain_by_chain_index(rnd: random.Random, clash: bool, twice: bool):
    names = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-SVC-AB", "KUBE-SVC-A", "KUBE-SEP-A1",
             "KUBE-SEP-A", "KUBE-SEP-B2", "CNI-X", "ZED", "KUBE-FW-AB", "KUBE-EXT-AB"]
    buf = LineBuffer("nat")
    fixed = rnd.sample(names[:5], rnd.randrange(1, 5))
    for c in fixed:
        buf.write_chain(c)
    batch_pool = [n for n in names if n not in fixed]
    rnd.shuffle(batch_pool)
    for _ in range(rnd.randrange(1, 10)):
        kind = rnd.random()
        if kind < 0.4:
            chain = rnd.choice(fixed)
            buf.write(chain, *[f"-j RULE{rnd.randrange(99)}" for _ in range(rnd.randrange(1, 3))])
        elif batch_pool:
            k = rnd.randrange(0, min(3, len(batch_pool)) + 1)
            chains, batch_pool = batch_pool[:k], batch_pool[k:]
            buf.write_chain_blocks(chains, [f"-A {c} -s 1.2.3.4 -j X\n-A {c} -j DNAT" for c in chains], 2)
    if clash and buf.chains:  # a batch's chain written again by write_block (the general way must be taken)
        buf.write(rnd.choice(buf.chains), "-j AGAIN")
    if twice and buf.chains:  # a chain declared twice
        buf.write_chain(rnd.choice(buf.chains))
    assert _fast_text(buf) == _general_text(buf)
