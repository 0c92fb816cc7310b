"""kslab.ipvs: the IPVS schedulers against sequences worked out by hand from the kernel sources,
independent reference formulations, the kernel's own hash test vectors, and the chapter's claims."""

from __future__ import annotations

import ipaddress
import math
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kslab import ipvs
from kslab.errors import InputError

CLIENTS = [f"10.10.0.{10 + i}" for i in range(12)]


def webpods(*weights: int) -> list[ipvs.RealServer]:
    """Plain IPVS real servers with hand-set weights (``ipvsadm -w``)."""
    return [ipvs.RealServer.plain(f"webpod{i}", f"10.10.{i}.2", w) for i, w in enumerate(weights, 1)]


def endpoints(n: int = 3, terminating: tuple[int, ...] = ()) -> list[ipvs.RealServer]:
    """The real servers kube-proxy programs for n endpoints: weight 1, 0 for the terminating ones (1-based)."""
    return [ipvs.RealServer.endpoint(f"webpod{i}", f"10.10.{i}.2", terminating=i in terminating) for i in range(1, n + 1)]


def conn(client: str = "10.10.0.10", port: int = 40000, vip: str = ipvs.DEFAULT_VIP) -> ipvs.Connection:
    return ipvs.Connection(client=client, client_port=port, vip=vip)


def picks(sched: ipvs.Scheduler, k: int, client: str = "10.10.0.10") -> list[str | None]:
    out = []
    for _ in range(k):
        s = sched.schedule(conn(client))
        out.append(None if s is None else s.name)
    return out


def random_clients(k: int, seed: int = 5) -> list[str]:
    r = random.Random(seed)
    return [str(ipaddress.IPv4Address(r.getrandbits(32))) for _ in range(k)]


# ---- names and input errors -----------------------------------------------------------------------


def test_scheduler_names_are_kube_proxys_and_iptables():
    # kube-proxy's validation accepts rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq and mh
    assert ipvs.SCHEDULERS == ("iptables", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh")
    for name in ipvs.SCHEDULERS:
        assert ipvs.scheduler(name, webpods(1, 1, 2)).name == name


@pytest.mark.parametrize("call", [
    lambda: ipvs.scheduler("lcx", webpods(1)),
    lambda: ipvs.simulate("round-robin", webpods(1), CLIENTS, 10),
    lambda: ipvs.scheduler(None, webpods(1)),  # type: ignore[arg-type]
])
def test_unknown_scheduler_is_an_input_error_naming_the_field_and_the_choices(call):
    with pytest.raises(InputError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("scheduler: unknown scheduler")
    assert all(name in msg for name in ipvs.SCHEDULERS)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("call, field", [
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", weight=-1), "weight"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", weight=1.5), "weight"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", weight=True), "weight"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", weight=65536), "weight"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.300"), "ip"),
    (lambda: ipvs.RealServer(name="", ip="10.0.0.1"), "name"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", port=0), "port"),
    (lambda: ipvs.Connection(client="nope"), "client"),
    (lambda: ipvs.scheduler("rr", [ipvs.RealServer("a", "10.0.0.1"), ipvs.RealServer("a", "10.0.0.2")]), "servers"),
    (lambda: ipvs.scheduler("rr", [ipvs.RealServer("a", "10.0.0.1"), ipvs.RealServer("b", "10.0.0.1")]), "servers"),
    (lambda: ipvs.scheduler("rr", ["10.0.0.1"]), "servers"),
    (lambda: ipvs.scheduler("rr", webpods(1), flags=["sh-port"]), "flags"),
    (lambda: ipvs.scheduler("sh", webpods(1), flags=["mh-port"]), "flags"),
    (lambda: ipvs.scheduler("rr", webpods(1), seed=-1), "seed"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, -1), "n"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 2.5), "n"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, rate=0), "rate"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, duration=-1), "duration"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, duration=float("inf")), "duration"),
    (lambda: ipvs.simulate("rr", webpods(1), [], 10), "clients"),
    (lambda: ipvs.simulate("rr", webpods(1), ["10.0.0.1", "x"], 10), "clients"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, vip="10.200.1"), "vip"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, port=70000), "port"),
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", weight=2), "weight"),  # kube-proxy never programs 2
    (lambda: ipvs.RealServer(name="a", ip="10.0.0.1", plain_ipvs="yes"), "plain_ipvs"),
    (lambda: ipvs.scheduler("rr", endpoints(2)).set_weight("webpod1", 3), "weight"),
    (lambda: ipvs.scheduler("rr", webpods(1), expiration=60), "expiration"),
    (lambda: ipvs.scheduler("lblc", webpods(1), expiration=0), "expiration"),
    (lambda: ipvs.scheduler("lblc", webpods(1)).advance(-1), "now"),
    (lambda: ipvs.simulate("rr", webpods(1), CLIENTS, 10, persistence=0), "persistence"),
    (lambda: ipvs.Persistence("rr"), "scheduler"),  # type: ignore[arg-type]
    (lambda: ipvs.Persistence(ipvs.scheduler("rr", webpods(1)), netmask="255.255.255"), "netmask"),
    (lambda: ipvs.service_servers(object(), "svc-clusterip"), "cluster"),
])
def test_bad_input_is_a_one_line_input_error_naming_the_field(call, field):
    with pytest.raises(InputError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and field in msg, msg


def test_counters_refuse_to_go_negative_and_unknown_servers():
    s = ipvs.scheduler("lc", webpods(1, 1))
    with pytest.raises(InputError):
        s.finish("webpod1")
    with pytest.raises(InputError):
        s.expire("webpod1")
    with pytest.raises(InputError, match="webpod9"):
        s.bind("webpod9")
    with pytest.raises(InputError):
        s.schedule("10.10.0.10")  # type: ignore[arg-type]


# ---- the kernel's hashes --------------------------------------------------------------------------

# lib/siphash_kunit.c, BITS_PER_LONG == 64: hsiphash of the bytes 0, 1, ..., i-1 under this key
HSIPHASH_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
HSIPHASH_VECTORS = {0: 0x050FC4DC, 1: 0x7D57CA93, 2: 0x4DC7D44D, 3: 0xE7DDF7FB, 4: 0x88D38328, 5: 0x49533B67,
                    6: 0xC59F22A7, 7: 0x9BB11140, 8: 0x8D299A8E, 9: 0x6C063DE4, 15: 0x2A519956, 63: 0xB7BBB3A8}


@pytest.mark.parametrize("length, expected", sorted(HSIPHASH_VECTORS.items()))
def test_hsiphash_matches_the_kernel_self_test_vectors(length, expected):
    assert ipvs.hsiphash(bytes(range(length)), HSIPHASH_KEY) == expected


def test_hash_32_is_the_golden_ratio_multiply():
    assert ipvs.hash_32(1, 8) == 0x61  # top byte of 0x61C88647
    assert ipvs.hash_32(0, 8) == 0
    assert ipvs.hash_32(2, 32) == (2 * 0x61C88647) & 0xFFFFFFFF
    assert all(0 <= ipvs.hash_32(v, 8) < 256 for v in (1, 0xFFFFFFFF, 0x0A0A000A))


# ---- rr, wrr --------------------------------------------------------------------------------------


def test_rr_cycles_in_list_order_from_the_first_server():
    s = ipvs.scheduler("rr", webpods(1, 1, 2))
    assert picks(s, 7) == ["webpod1", "webpod2", "webpod3", "webpod1", "webpod2", "webpod3", "webpod1"]


def test_rr_skips_quiesced_servers_and_keeps_returning_the_only_one_left():
    assert picks(ipvs.scheduler("rr", webpods(1, 0, 1)), 4) == ["webpod1", "webpod3", "webpod1", "webpod3"]
    assert picks(ipvs.scheduler("rr", webpods(0, 5, 0)), 3) == ["webpod2"] * 3
    assert picks(ipvs.scheduler("rr", webpods(0, 0)), 2) == [None, None]
    assert picks(ipvs.scheduler("rr", []), 1) == [None]


def test_wrr_1_1_2_exact_sequence():
    # ip_vs_wrr.c by hand: di = gcd = 1, mw = 2 - (1 - 1) = 2, cw = 2, cl = head.
    #  1: cw=2 -> webpod1 (1<2) no, webpod2 no, webpod3 (2>=2) yes
    #  2: end of list, cw=1 -> webpod1;  3: webpod2;  4: webpod3
    #  5: end of list, cw=0 -> cw=mw=2 (restarted) -> webpod3;  6-8: cw=1 -> webpod1, webpod2, webpod3
    s = ipvs.scheduler("wrr", webpods(1, 1, 2))
    assert picks(s, 8) == ["webpod3", "webpod1", "webpod2", "webpod3", "webpod3", "webpod1", "webpod2", "webpod3"]
    assert (s.di, s.mw) == (1, 2)


def test_wrr_4_3_2_is_the_lvs_documentation_sequence():
    # LVS docs: weights A=4, B=3, C=2 give "AABABCABC" per cycle
    s = ipvs.scheduler("wrr", webpods(4, 3, 2))
    seq = "".join("ABC"[int(p[-1]) - 1] for p in picks(s, 18))
    assert seq == "AABABCABC" * 2


def test_wrr_steps_by_the_gcd():
    # weights 2, 4: di = 2, mw = 4 - 1 = 3; passes cw = 3 then 1
    s = ipvs.scheduler("wrr", webpods(2, 4))
    assert (s.di, s.mw) == (2, 3)
    assert picks(s, 6) == ["webpod2", "webpod1", "webpod2"] * 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=6).filter(any))
def test_wrr_cycle_gives_each_server_weight_over_gcd_picks(weights):
    g = math.gcd(*[w for w in weights if w])
    cycle = sum(weights) // g
    s = ipvs.scheduler("wrr", webpods(*weights))
    got = Counter(picks(s, 2 * cycle))
    assert got == Counter({f"webpod{i}": 2 * w // g for i, w in enumerate(weights, 1) if w})


# ---- lc, wlc, sed, nq -----------------------------------------------------------------------------


def state(name: str, weights, active, inactive=None) -> ipvs.Scheduler:
    s = ipvs.scheduler(name, webpods(*weights))
    for i, a in enumerate(active):
        s.set_conns(f"webpod{i + 1}", active=a, inactive=(inactive or [0] * len(active))[i])
    return s


def test_lc_minimum_overhead_first_in_list_wins_ties():
    # overheads: 1<<8 = 256, 0<<8 + 300 = 300, 256: webpod1 and webpod3 tie, the first wins
    assert state("lc", (1, 1, 1), [1, 0, 1], [0, 300, 0]).schedule(conn()).name == "webpod1"
    # 255 inactive conns weigh less than one active one
    assert state("lc", (1, 1, 1), [1, 0, 1], [0, 255, 0]).schedule(conn()).name == "webpod2"
    # lc ignores weights except 0: the idle weight-0 server is skipped
    assert state("lc", (0, 5, 1), [0, 3, 2]).schedule(conn()).name == "webpod3"
    assert state("lc", (1, 1, 1), [0, 0, 0]).schedule(conn()).name == "webpod1"


def test_wlc_sed_nq_differ_on_a_hand_built_state():
    # webpod1 weight 1 idle, webpod2 weight 3 with one active connection
    weights, active = (1, 3), [0, 1]
    # wlc: 0*3 > 256*1? no -> keeps webpod1 (load 0 beats 256/3)
    assert state("wlc", weights, active).schedule(conn()).name == "webpod1"
    # sed: (0+1)/1 = 1 vs (1+1)/3 = 0.67 -> 1*3 > 2*1 -> webpod2 (the fast server, despite the queue)
    assert state("sed", weights, active).schedule(conn()).name == "webpod2"
    # nq: webpod1 is idle -> taken at once
    assert state("nq", weights, active).schedule(conn()).name == "webpod1"


def test_nq_picks_the_first_idle_server_and_ignores_inactive_connections():
    # wlc counts the 5 inactive conns of webpod1 and takes webpod2; nq/sed look at active only
    weights, active, inactive = (1, 1), [0, 0], [5, 0]
    assert state("wlc", weights, active, inactive).schedule(conn()).name == "webpod2"
    assert state("nq", weights, active, inactive).schedule(conn()).name == "webpod1"
    # nq: the idle weight-1 server beats the busy weight-10 one that sed prefers
    assert state("sed", (10, 1), [1, 0]).schedule(conn()).name == "webpod1"  # 2/10 < 1/1
    assert state("nq", (10, 1), [1, 0]).schedule(conn()).name == "webpod2"
    # no idle server: nq is sed
    assert state("nq", (10, 1), [3, 1]).schedule(conn()).name == state("sed", (10, 1), [3, 1]).schedule(conn()).name


def reference(name: str, weights, active, inactive):
    """Each algorithm restated with exact fractions (no cross-multiplication): first minimum wins."""
    live = [i for i, w in enumerate(weights) if w > 0]
    if not live:
        return None
    if name == "nq":
        idle = [i for i in live if active[i] == 0]
        if idle:
            return idle[0]
    cost = {
        "lc": lambda i: Fraction(active[i] * 256 + inactive[i]),
        "wlc": lambda i: Fraction(active[i] * 256 + inactive[i], weights[i]),
        "sed": lambda i: Fraction(active[i] + 1, weights[i]),
        "nq": lambda i: Fraction(active[i] + 1, weights[i]),
    }[name]
    return min(live, key=lambda i: (cost(i), i))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["lc", "wlc", "sed", "nq"]),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6), st.integers(0, 600)), min_size=1, max_size=6))
def test_least_connection_family_matches_a_fraction_reference(name, rows):
    weights, active, inactive = zip(*rows)
    got = state(name, weights, active, inactive).schedule(conn())
    want = reference(name, weights, active, inactive)
    assert (None if got is None else int(got.name[-1]) - 1) == want


def test_counters_move_with_bind_finish_expire():
    s = ipvs.scheduler("lc", webpods(1, 1))
    s.bind("webpod1")
    assert (s.activeconns("webpod1"), s.inactconns("webpod1"), s.overhead(0)) == (1, 0, 256)
    s.finish("webpod1", linger=True)
    assert (s.activeconns("webpod1"), s.inactconns("webpod1"), s.overhead(0)) == (0, 1, 1)
    assert s.schedule(conn()).name == "webpod2"  # 1 inactive conn still counts for lc
    s.expire("webpod1")
    assert s.schedule(conn()).name == "webpod1"


# ---- sh, dh ---------------------------------------------------------------------------------------


def test_sh_table_has_256_buckets_filled_round_robin_by_weight():
    t = ipvs.scheduler("sh", webpods(1, 1, 2)).table()
    assert len(t) == ipvs.SH_TAB_SIZE == 256
    assert list(t) == ["webpod1", "webpod2", "webpod3", "webpod3"] * 64
    assert Counter(t) == {"webpod1": 64, "webpod2": 64, "webpod3": 128}
    # a weight-0 server still takes one bucket per round (++d_count >= 0)
    assert list(ipvs.scheduler("sh", webpods(1, 0, 2)).table()[:8]) == ["webpod1", "webpod2", "webpod3", "webpod3"] * 2


def test_sh_bucket_is_hash_32_of_the_source_address():
    s = ipvs.scheduler("sh", webpods(1, 1, 2))
    for c in CLIENTS:
        b = ipvs.hash_32(int(ipaddress.IPv4Address(c)), 8)
        assert s.bucket(c) == b
        assert s.schedule(conn(c)).name == s.table()[b]


def test_sh_same_client_same_server_and_clients_spread_by_weight():
    s = ipvs.scheduler("sh", webpods(1, 1, 2))
    r = random.Random(3)
    for c in CLIENTS:
        assert len({s.schedule(conn(c, r.randrange(32768, 61000))).name for _ in range(50)}) == 1
    assert len({s.schedule(conn(c)).name for c in CLIENTS}) >= 2
    share = Counter(s.schedule(conn(c)).name for c in random_clients(4000))
    assert abs(share["webpod3"] / 4000 - 0.5) < 0.04
    assert abs(share["webpod1"] / 4000 - 0.25) < 0.04


def test_sh_quiesced_bucket_gives_nothing_unless_sh_fallback():
    servers = webpods(1, 0, 1)
    plain, fb = ipvs.scheduler("sh", servers), ipvs.scheduler("sh", servers, flags=["sh-fallback"])
    hit = [c for c in random_clients(500) if plain.table()[plain.bucket(c)] == "webpod2"]
    assert hit
    for c in hit:
        assert plain.schedule(conn(c)) is None
        assert fb.schedule(conn(c)).name in {"webpod1", "webpod3"}


def test_sh_port_flag_hashes_the_source_port_too():
    s = ipvs.scheduler("sh", webpods(1, 1, 2), flags=["sh-port"])
    assert len({s.schedule(conn("10.10.0.10", p)).name for p in range(40000, 40100)}) == 3


def test_dh_sends_every_connection_to_one_vip_to_one_server():
    s = ipvs.scheduler("dh", webpods(1, 1, 2))
    assert list(s.table()) == (["webpod1", "webpod2", "webpod3"] * 86)[:256]  # weights do not count
    got = {s.schedule(conn(c, p)).name for c in CLIENTS for p in (33000, 45000, 60000)}
    assert len(got) == 1
    vips = {s.schedule(conn(vip=f"10.200.{i}.{j}")).name for i in range(4) for j in range(1, 40)}
    assert vips == {"webpod1", "webpod2", "webpod3"}
    b = ipvs.hash_32(int(ipaddress.IPv4Address(ipvs.DEFAULT_VIP)), 8)
    assert got == {s.table()[b]}


# ---- mh -------------------------------------------------------------------------------------------


def test_mh_table_size_is_the_kernels_default_prime_4093():
    # net/netfilter/ipvs/ip_vs_mh.c: primes[] = {251, 509, 1021, 2039, 4093, ...};
    # IP_VS_MH_TAB_SIZE = primes[CONFIG_IP_VS_MH_TAB_INDEX - 8], Kconfig default index 12
    assert ipvs.MH_PRIMES[:5] == (251, 509, 1021, 2039, 4093) and len(ipvs.MH_PRIMES) == 10
    assert ipvs.MH_TAB_INDEX == 12 and ipvs.MH_TAB_SIZE == ipvs.MH_PRIMES[12 - 8] == 4093
    assert ipvs._MH_TAB_BITS == 6  # IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2
    assert all(p > 1 and all(p % q for q in range(2, int(p ** 0.5) + 1)) for p in ipvs.MH_PRIMES)


def test_mh_table_has_4093_slots_shared_by_weight():
    t = ipvs.scheduler("mh", webpods(1, 1, 2)).table()
    assert len(t) == ipvs.MH_TAB_SIZE == 4093 and None not in t
    c = Counter(t)
    assert 1.95 <= c["webpod3"] / c["webpod1"] <= 2.05 and abs(c["webpod1"] - c["webpod2"]) <= 3
    assert Counter(ipvs.scheduler("mh", endpoints(3)).table()) == {"webpod1": 1365, "webpod2": 1364, "webpod3": 1364}
    # a server added with weight 0 gets no slot at all (turns = 0)
    assert "webpod2" not in ipvs.scheduler("mh", webpods(1, 0, 1)).table()
    assert set(ipvs.scheduler("mh", webpods(0, 0)).table()) == {None}


def test_mh_shifts_large_weights_to_its_6_table_bits():
    # ip_vs_mh_shift_weight: shift = fls(max weight / gcd) - IP_VS_MH_TAB_BITS; fls(100) = 7 -> 1,
    # turns = (weight / gcd) >> 1, at least 1 for a non-zero weight: 1 -> 1 turn, 100 -> 50 turns
    s = ipvs.scheduler("mh", webpods(1, 100))
    assert (s.gcd, s.rshift) == (1, 1)
    c = Counter(s.table())
    assert c["webpod2"] + c["webpod1"] == 4093 and 48 <= c["webpod2"] / c["webpod1"] <= 52
    assert ipvs.scheduler("mh", webpods(1, 63)).rshift == 0  # fls(63) = 6: fits


def test_mh_is_the_same_table_whatever_the_seed():
    # the kernel's keys are fixed constants (generate_hash_secret), not random
    assert ipvs.scheduler("mh", webpods(1, 1, 2), seed=0).table() == ipvs.scheduler("mh", webpods(1, 1, 2), seed=99).table()


def test_kube_proxy_sets_mh_port_so_mh_does_not_pin_a_client():
    # pkg/proxy/ipvs/proxier.go sets FlagSourceHash (0x10 = IP_VS_SVC_F_SCHED2 = mh-port) for mh
    assert ipvs.KUBE_PROXY_SCHED_FLAGS == {"mh": ("mh-port",)}
    kube, plain = ipvs.scheduler("mh", endpoints(3)), ipvs.scheduler("mh", endpoints(3), flags=())
    assert kube.flags == {"mh-port"} and plain.flags == frozenset() and ipvs.scheduler("sh", endpoints(3)).flags == frozenset()
    ports = range(40000, 40060)
    assert len({kube.schedule(conn("10.10.0.10", p)).name for p in ports}) == 3  # spread by source port
    assert len({plain.schedule(conn("10.10.0.10", p)).name for p in ports}) == 1  # plain mh: one server per address
    for p in ports:  # the slot is the hash of address + port, as ip_vs_mh_hashkey adds them
        assert kube.schedule(conn("10.10.0.10", p)).name == kube.table()[kube.slot("10.10.0.10", p)]
    df = ipvs.simulate("mh", endpoints(3), CLIENTS, 600, seed=1)
    assert df.attrs["flags"] == ("mh-port",) and ipvs.per_client_endpoints(df).min() >= 2


@pytest.mark.parametrize("k, drop", [(3, 0), (3, 2), (5, 2), (10, 9)])
def test_mh_removing_a_server_remaps_few_other_keys_unlike_sh(k, drop):
    servers = [ipvs.RealServer(name=f"s{i}", ip=f"10.10.{i}.2") for i in range(k)]
    rest = [s for s in servers if s.name != f"s{drop}"]
    keep = {}
    for name in ("mh", "sh"):
        before, after = ipvs.scheduler(name, servers), ipvs.scheduler(name, rest)
        stayed = total = 0
        for c in random_clients(3000):
            old = before.schedule(conn(c)).name
            if old == f"s{drop}":
                continue
            total += 1
            stayed += after.schedule(conn(c)).name == old
        keep[name] = stayed / total
    assert keep["mh"] >= 0.9, keep
    assert keep["sh"] <= 0.6, keep


def test_mh_quiesced_slot_gives_nothing_unless_mh_fallback():
    # kube-proxy quiesces a terminating endpoint with weight 0: it keeps its slots (last_weight)
    plain = ipvs.scheduler("mh", endpoints(3), flags=())
    fb = ipvs.scheduler("mh", endpoints(3), flags=["mh-fallback"])
    table = plain.table()
    for s in (plain, fb):
        s.terminate("webpod2")
        assert s.table() == table
    hit = [c for c in random_clients(500) if table[plain.slot(c)] == "webpod2"]
    assert hit
    for c in hit:
        assert plain.schedule(conn(c)) is None
        assert fb.schedule(conn(c)).name in {"webpod1", "webpod3"}
    others = [c for c in random_clients(500) if table[plain.slot(c)] != "webpod2"]
    assert all(fb.schedule(conn(c)).name == table[plain.slot(c)] for c in others)
    # a server added with weight 0 gets no slot at all
    assert "webpod2" not in ipvs.scheduler("mh", endpoints(3, terminating=(2,))).table()


def test_set_weight_runs_each_modules_update_hook():
    wrr = ipvs.scheduler("wrr", webpods(1, 1, 2))
    assert picks(wrr, 2) == ["webpod3", "webpod1"]
    wrr.set_weight("webpod3", 0)  # ip_vs_wrr_dest_changed: cl = head, mw = 1
    assert (wrr.di, wrr.mw) == (1, 1)
    assert picks(wrr, 4) == ["webpod1", "webpod2"] * 2
    sh = ipvs.scheduler("sh", webpods(1, 1, 2))
    sh.set_weight("webpod1", 3)  # ip_vs_sh_reassign with the new weights
    # 256 = 42 rounds of 6 + [webpod1 x3, webpod2]
    assert Counter(sh.table()) == {"webpod1": 42 * 3 + 3, "webpod2": 42 + 1, "webpod3": 42 * 2}
    ipt = ipvs.scheduler("iptables", webpods(1, 1, 1), seed=1)
    ipt.set_weight("webpod1", 0)
    assert set(picks(ipt, 200)) == {"webpod2", "webpod3"}
    assert ipt.servers[0].weight == 0


# ---- iptables -------------------------------------------------------------------------------------


def test_iptables_thresholds_are_kube_proxys_probabilities_as_libxt_statistic_stores_them():
    assert ipvs.iptables_thresholds(1) == ()
    assert ipvs.iptables_thresholds(2) == (0x40000000,)
    assert ipvs.iptables_thresholds(3) == (round(0x80000000 * 0.3333333333), 0x40000000)


def test_iptables_is_uniform_ignores_weights_and_is_seeded():
    from scipy.stats import chisquare

    s = ipvs.scheduler("iptables", webpods(1, 1, 2), seed=7)
    got = Counter(picks(s, 30000))
    counts = [got[f"webpod{i}"] for i in (1, 2, 3)]
    assert sum(counts) == 30000
    assert chisquare(counts).pvalue > 1e-4, counts
    assert all(abs(c / 30000 - 1 / 3) < 0.015 for c in counts)
    assert picks(ipvs.scheduler("iptables", webpods(1, 1, 2), seed=7), 50) == picks(ipvs.scheduler("iptables", webpods(1, 1, 2), seed=7), 50)
    assert picks(ipvs.scheduler("iptables", webpods(1, 1, 2), seed=7), 50) != picks(ipvs.scheduler("iptables", webpods(1, 1, 2), seed=8), 50)


# ---- weight 0, all schedulers ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ipvs.SCHEDULERS), st.lists(st.integers(0, 3), min_size=1, max_size=5),
       st.integers(0, 2**32 - 1), st.sampled_from([(), ("fallback",), ("port",), ("fallback", "port")]))
def test_weight_zero_server_never_gets_a_new_connection(name, weights, seed, flags):
    servers = webpods(*weights)
    fl = [f"{name}-{f}" for f in flags] if name in ipvs.SCHED_FLAGS else []
    s = ipvs.scheduler(name, servers, flags=fl)
    r = random.Random(seed)
    zero = {x.name for x in servers if x.weight == 0}
    for _ in range(60):
        if r.random() < 0.3:  # random load for the least-connection family
            i = r.randrange(len(servers))
            s.set_conns(servers[i].name, r.randrange(5), r.randrange(300))
        c = ipvs.Connection(client=str(ipaddress.IPv4Address(r.getrandbits(32))), client_port=r.randrange(65536),
                            vip=f"10.200.{r.randrange(256)}.{r.randrange(256)}")
        got = s.schedule(c)
        assert got is None or got.name not in zero
        if all(w == 0 for w in weights):
            assert got is None


# ---- simulate and the summaries -------------------------------------------------------------------


def test_simulate_frame_shape_columns_and_types():
    df = ipvs.simulate("wrr", webpods(1, 1, 2), CLIENTS, 500, seed=1)
    assert len(df) == 500 and list(df["conn"]) == list(range(500))
    assert list(df.columns) == ["conn", "time", "client", "client_port", "vip", "vip_port", "server", "server_ip",
                                "lifetime", "active:webpod1", "active:webpod2", "active:webpod3"]
    assert df["time"].is_monotonic_increasing and (df["time"] > 0).all()
    assert set(df["client"]) <= set(CLIENTS) and len(set(df["client"])) == 12
    assert df["client_port"].between(*ipvs.EPHEMERAL_PORTS).all()
    assert (df["vip"] == ipvs.DEFAULT_VIP).all() and (df["vip_port"] == 80).all()
    assert dict(zip(df["server"], df["server_ip"])) == {"webpod1": "10.10.1.2", "webpod2": "10.10.2.2", "webpod3": "10.10.3.2"}
    assert df.attrs["scheduler"] == "wrr" and df.attrs["weights"] == {"webpod1": 1, "webpod2": 1, "webpod3": 2}
    assert all(str(df[c].dtype) == "int64" for c in df.columns if c.startswith("active:"))
    # about rate * duration connections are open at once
    mean_open = df[[c for c in df.columns if c.startswith("active:")]].sum(axis=1).mean()
    assert 0.5 * ipvs.DEFAULT_RATE * 2.0 < mean_open < 1.5 * ipvs.DEFAULT_RATE * 2.0


def test_simulate_empty_and_no_server():
    empty = ipvs.simulate("rr", webpods(1, 1), CLIENTS, 0)
    assert empty.empty and ipvs.spread(empty) == {"webpod1": 0.0, "webpod2": 0.0}
    assert ipvs.active_variance(empty) == 0.0
    none = ipvs.simulate("rr", webpods(0, 0), CLIENTS, 20)
    assert (none["server"] == "").all() and (none["server_ip"] == "").all()
    assert ipvs.spread(none) == {"webpod1": 0.0, "webpod2": 0.0}
    assert (ipvs.per_client_endpoints(none) == 0).all()


@pytest.mark.parametrize("name", ipvs.SCHEDULERS)
def test_simulate_is_deterministic_per_seed(name):
    a = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 300, seed=4)
    b = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 300, seed=4)
    pd.testing.assert_frame_equal(a, b)
    c = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 300, seed=5)
    assert not a.equals(c)
    if name == "iptables":  # the choice itself is random: same workload, other scheduler seed
        assert list(a["server"]) != list(c["server"])


@pytest.mark.parametrize("name", ["iptables", "lc", "sed", "nq", "wlc"])
def test_active_columns_count_the_connections_still_open(name):
    df = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 400, seed=2, rate=5.0)
    t, end, srv = df["time"].to_numpy(), (df["time"] + df["lifetime"]).to_numpy(), df["server"].to_numpy()
    for k in range(len(df)):
        for s in ("webpod1", "webpod2", "webpod3"):
            assert df.at[k, f"active:{s}"] == int(((srv[:k] == s) & (end[:k] > t[k])).sum())


def test_lingering_connections_count_as_inactive_for_lc():
    fast = ipvs.simulate("lc", webpods(1, 1, 1), CLIENTS, 400, seed=3, rate=5.0)
    slow = ipvs.simulate("lc", webpods(1, 1, 1), CLIENTS, 400, seed=3, rate=5.0, inactive_timeout=120.0)
    assert list(fast["time"]) == list(slow["time"])  # same workload
    assert list(fast["server"]) != list(slow["server"])  # TIME_WAIT entries steer lc
    sed = ipvs.simulate("sed", webpods(1, 1, 1), CLIENTS, 400, seed=3, rate=5.0, inactive_timeout=120.0)
    assert list(sed["server"]) == list(ipvs.simulate("sed", webpods(1, 1, 1), CLIENTS, 400, seed=3, rate=5.0)["server"])


def test_spread_per_client_endpoints_and_active_variance_on_a_hand_made_frame():
    df = pd.DataFrame({
        "client": ["a", "a", "b", "b", "c"],
        "server": ["s1", "s2", "s1", "s1", ""],
        "active:s1": [0, 1, 1, 2, 3],
        "active:s2": [0, 0, 1, 0, 1],
        "active:s3": [0, 0, 1, 0, 2],
    })
    assert ipvs.spread(df) == {"s1": 0.6, "s2": 0.2, "s3": 0.0}
    assert ipvs.per_client_endpoints(df).to_dict() == {"a": 2, "b": 1, "c": 0}
    rows = [[0, 0, 0], [1, 0, 0], [1, 1, 1], [2, 0, 0], [3, 1, 2]]
    assert ipvs.active_variance(df) == pytest.approx(float(np.mean([np.var(r) for r in rows])))
    with pytest.raises(InputError):
        ipvs.active_variance(df, per_weight=True)  # no weights in attrs
    df.attrs["weights"] = {"s1": 1, "s2": 1, "s3": 0}
    assert ipvs.active_variance(df, per_weight=True) == pytest.approx(float(np.mean([np.var(r[:2]) for r in rows])))


@pytest.mark.parametrize("name", ipvs.SCHEDULERS)
def test_spread_sums_to_one_and_lists_every_server(name):
    df = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 600, seed=1)
    sp = ipvs.spread(df)
    assert list(sp) == ["webpod1", "webpod2", "webpod3"]
    assert sum(sp.values()) == pytest.approx(1.0)
    assert ipvs.per_client_endpoints(df).index.tolist() == sorted(CLIENTS)


# ---- the old chapter's claims, for plain IPVS (hand-set weights, no scheduler flags) --------------


@pytest.fixture(scope="module")
def plain_table() -> pd.DataFrame:
    rows = []
    for name in ipvs.SCHEDULERS:
        df = ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 3000, seed=1, duration=2.0, flags=())
        rows.append({"scheduler": name, **ipvs.spread(df),
                     "endpoints per client": float(ipvs.per_client_endpoints(df).mean()),
                     "active-count variance": ipvs.active_variance(df),
                     "per-weight variance": ipvs.active_variance(df, per_weight=True)})
    return pd.DataFrame(rows).set_index("scheduler")


def test_plain_ipvs_sh_and_mh_pin_iptables_spreads_wrr_halves(plain_table):
    t = plain_table
    assert t.loc["sh", "endpoints per client"] == 1
    assert t.loc["iptables", "endpoints per client"] > 2
    assert abs(t.loc["wrr", "webpod3"] - 0.5) < 0.02
    assert t.loc["dh", "webpod1"] + t.loc["dh", "webpod2"] + t.loc["dh", "webpod3"] == pytest.approx(1.0)
    assert sorted(t.loc["dh", ["webpod1", "webpod2", "webpod3"]]) == [0.0, 0.0, 1.0]
    assert t.loc["mh", "endpoints per client"] == 1  # without mh-port


def test_plain_ipvs_load_aware_schedulers_flatten_active_counts(plain_table):
    t = plain_table
    for name in ("lc", "wlc", "sed", "nq"):
        assert t.loc[name, "active-count variance"] < t.loc["iptables", "active-count variance"], t
        assert t.loc[name, "per-weight variance"] < t.loc["iptables", "per-weight variance"], t


def test_weighted_schedulers_equalise_load_per_weight_at_higher_concurrency():
    # with ~50 connections open, raw counts favour random choice (a weight-2 server rightly holds
    # twice as many), but load per unit of weight is far flatter under wlc/sed/nq
    var = {name: ipvs.active_variance(ipvs.simulate(name, webpods(1, 1, 2), CLIENTS, 3000, seed=1, rate=25.0), per_weight=True)
           for name in ("iptables", "wlc", "sed", "nq")}
    assert all(var[n] < var["iptables"] / 10 for n in ("wlc", "sed", "nq")), var


# ---- what kube-proxy programs: weight 1 (0 while terminating), mh-port -----------------------------


def test_real_servers_default_to_kube_proxys_weight():
    assert ipvs.RealServer("a", "10.0.0.1").weight == 1
    assert ipvs.RealServer.endpoint("a", "10.0.0.1").weight == 1
    assert ipvs.RealServer.endpoint("a", "10.0.0.1", 8080, terminating=True) == ipvs.RealServer("a", "10.0.0.1", 0, 8080)
    p = ipvs.RealServer.plain("a", "10.0.0.1", 7)
    assert p.weight == 7 and p.plain_ipvs
    with pytest.raises(InputError, match="plain"):
        ipvs.RealServer("a", "10.0.0.1", weight=7)
    s = ipvs.scheduler("wrr", [p, ipvs.RealServer("b", "10.0.0.2")])
    s.set_weight("a", 3)  # ipvsadm -e on a plain server
    with pytest.raises(InputError, match="kube-proxy"):
        s.set_weight("b", 2)
    s.terminate("b")
    assert [x.weight for x in s.servers] == [3, 0]


def test_service_servers_are_the_lab_services_endpoints_with_weight_1_and_0_while_terminating():
    from kslab.lab import Lab

    lab = Lab(seed=0)
    got = ipvs.service_servers(lab.cluster, "svc-clusterip")
    pods = {p: lab.cluster.pod(p).pod_ip for p in ("webpod1", "webpod2", "webpod3")}
    assert got == [ipvs.RealServer.endpoint(p, ip, 80) for p, ip in sorted(pods.items(), key=lambda kv: kv[1] + ":80")]
    assert [s.port for s in ipvs.service_servers(lab.cluster, "svc-nodeport", port="svc-webport")] == [8080] * 3
    lab.cluster.pod("webpod2").terminating = True  # a deleted pod inside its grace period
    lab.control.reconcile()
    got = {s.name: s.weight for s in ipvs.service_servers(lab.cluster, "svc-clusterip")}
    assert got == {"webpod1": 1, "webpod2": 0, "webpod3": 1}
    for p in ("webpod1", "webpod3"):  # none ready: kube-proxy falls back to the serving terminating ones
        lab.cluster.pod(p).terminating = True
    lab.control.reconcile()
    assert {s.weight for s in ipvs.service_servers(lab.cluster, "svc-clusterip")} == {1}
    with pytest.raises(InputError, match="service"):
        ipvs.service_servers(lab.cluster, "svc-nope")
    with pytest.raises(InputError, match="port"):
        ipvs.service_servers(lab.cluster, "svc-clusterip", port="http")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=5), st.integers(0, 2**16), st.sampled_from([0.0, 30.0]),
       st.sampled_from([2.0, 25.0]))
def test_with_kube_proxys_weights_wrr_is_rr_and_wlc_is_lc_exactly(terminating, seed, linger, rate):
    servers = endpoints(len(terminating), tuple(i for i, t in enumerate(terminating, 1) if t))
    for weighted, plain in (("wrr", "rr"), ("wlc", "lc")):
        a = ipvs.simulate(weighted, servers, CLIENTS, 300, seed=seed, rate=rate, inactive_timeout=linger)
        b = ipvs.simulate(plain, servers, CLIENTS, 300, seed=seed, rate=rate, inactive_timeout=linger)
        pd.testing.assert_frame_equal(a, b, check_flags=False)  # every row, every column, the same
        assert a.attrs["scheduler"] == weighted and b.attrs["scheduler"] == plain


def test_compare_defaults_to_kube_proxy_and_takes_plain_flags_and_persistence():
    kube = ipvs.compare(endpoints(3), CLIENTS, 600, names=("wrr", "rr", "mh", "sh"))
    assert kube.loc["wrr"].equals(kube.loc["rr"]) and kube.loc["mh", "endpoints per client"] > 2
    plain = ipvs.compare(webpods(1, 1, 2), CLIENTS, 600, names=("wrr", "mh", "sh"), flags=())
    assert plain.loc["mh", "endpoints per client"] == 1 and abs(plain.loc["wrr", "webpod3"] - 0.5) < 0.01
    sticky = ipvs.compare(endpoints(3), CLIENTS, 600, names=("rr", "lc", "mh"), persistence=10800)
    assert (sticky["endpoints per client"] == 1).all()


def test_with_plain_weights_wrr_and_wlc_differ_from_rr_and_lc():
    for weighted, plain in (("wrr", "rr"), ("wlc", "lc")):
        a = ipvs.simulate(weighted, webpods(1, 1, 2), CLIENTS, 600, seed=1, rate=10.0)
        b = ipvs.simulate(plain, webpods(1, 1, 2), CLIENTS, 600, seed=1, rate=10.0)
        assert list(a["server"]) != list(b["server"])


def test_kube_proxy_table_sh_pins_mh_does_not_wrr_is_even():
    rows = {name: ipvs.simulate(name, endpoints(3), CLIENTS, 3000, seed=1) for name in ipvs.SCHEDULERS}
    per_client = {name: ipvs.per_client_endpoints(df).mean() for name, df in rows.items()}
    assert per_client["sh"] == 1 and per_client["mh"] > 2 and per_client["iptables"] > 2
    assert ipvs.spread(rows["wrr"]) == ipvs.spread(rows["rr"]) == {f"webpod{i}": pytest.approx(1 / 3, abs=1e-3) for i in (1, 2, 3)}
    assert list(rows["wlc"]["server"]) == list(rows["lc"]["server"])


# ---- persistence (sessionAffinity: ClientIP) -------------------------------------------------------


def test_persistence_keeps_each_client_on_its_first_rr_server():
    p = ipvs.Persistence(ipvs.scheduler("rr", endpoints(3)), timeout=10800)
    first = {}
    for k, c in enumerate(["10.10.0.1", "10.10.0.2", "10.10.0.3", "10.10.0.4"] * 5):
        server, tmpl = p.schedule(conn(c, 40000 + k), now=float(k))
        first.setdefault(c, server.name)
        assert server.name == first[c] and tmpl.server.name == server.name and tmpl.client == c
    # rr is asked once per client, in arrival order: webpod1, webpod2, webpod3, webpod1
    assert first == {"10.10.0.1": "webpod1", "10.10.0.2": "webpod2", "10.10.0.3": "webpod3", "10.10.0.4": "webpod1"}
    assert {t.client: t.n_control for t in p.templates()} == {c: 5 for c in first}


def test_persistence_template_expires_timeout_after_its_last_use_when_it_controls_nothing():
    p = ipvs.Persistence(ipvs.scheduler("rr", endpoints(3)), timeout=30)
    s, t = p.schedule(conn("10.10.0.1"), now=0)
    p.release(t)  # the connection left the table at once
    assert p.schedule(conn("10.10.0.1"), now=20)[0] == s  # re-armed: expires at 50
    p.release(t)
    assert t.expires == 50 and p.schedule(conn("10.10.0.1"), now=49.5)[0] == s
    p.release(t)
    assert p.schedule(conn("10.10.0.2"), now=60)[0].name == "webpod2"  # another client, meanwhile
    again, t2 = p.schedule(conn("10.10.0.1"), now=80)  # 30 s after 49.5: the template is gone
    assert t2 is not t and not t.valid and again.name == "webpod3"  # rr was asked again


def test_persistence_template_outlives_its_timeout_while_it_controls_a_connection():
    # ip_vs_conn_expire(): "do I control anybody?" -> timeout = 60 s, try again
    p = ipvs.Persistence(ipvs.scheduler("rr", endpoints(3)), timeout=10)
    s, t = p.schedule(conn("10.10.0.1"), now=0)  # this connection stays open
    p.advance(10)
    assert t.valid and t.timeout == 60 and t.expires == 70
    assert p.schedule(conn("10.10.0.1"), now=65)[0] == s  # still sticky, and re-armed with 60 s
    assert t.expires == 125
    p.release(t)
    p.release(t)  # both connections gone
    p.advance(124.9)
    assert t.valid
    p.advance(125)
    assert not t.valid and p.templates() == []


def test_persistence_moves_clients_of_a_quiesced_server_as_kube_proxy_sets_it():
    for expire_quiescent, moves in ((True, True), (False, False)):
        p = ipvs.Persistence(ipvs.scheduler("rr", endpoints(3)), timeout=10800, expire_quiescent_template=expire_quiescent)
        s, _ = p.schedule(conn("10.10.0.1"), now=0)
        p.scheduler.terminate(s.name)
        s2, _ = p.schedule(conn("10.10.0.1"), now=1)
        assert (s2.name != s.name) is moves and s2.name in {"webpod1", "webpod2", "webpod3"}


def test_persistence_netmask_groups_clients_and_no_server_makes_no_template():
    p = ipvs.Persistence(ipvs.scheduler("rr", endpoints(3)), timeout=60, netmask="255.255.255.0")
    assert {p.schedule(conn(f"10.10.0.{i}"), now=i)[0].name for i in range(1, 9)} == {"webpod1"}
    assert p.templates()[0].client == "10.10.0.0"
    empty = ipvs.Persistence(ipvs.scheduler("rr", endpoints(2, terminating=(1, 2))), timeout=60)
    assert empty.schedule(conn(), now=0) == (None, None) and empty.templates() == []
    t = p.templates()[0]
    assert t.n_control == 8
    for _ in range(8):
        p.release(t)
    with pytest.raises(InputError):
        p.release(t)  # it controls nothing any more


@pytest.mark.parametrize("name", ipvs.SCHEDULERS)
def test_simulated_client_ip_affinity_pins_every_client_whatever_the_scheduler(name):
    free = ipvs.simulate(name, endpoints(3), CLIENTS, 600, seed=2)
    sticky = ipvs.simulate(name, endpoints(3), CLIENTS, 600, seed=2, persistence=ipvs.DEFAULT_AFFINITY_TIMEOUT)
    assert (ipvs.per_client_endpoints(sticky) == 1).all() and sticky.attrs["persistence"] == 10800
    assert list(free["time"]) == list(sticky["time"])  # the same workload
    if name not in ("sh", "dh"):  # the others send a client to several servers without affinity
        assert ipvs.per_client_endpoints(free).mean() > 1.5


def test_short_persistence_lets_idle_clients_move_unless_a_connection_outlives_it():
    # 12 clients, one connection each every 6 s on average. Short connections: a 1 s template is
    # gone before the client comes back, so rr places it again.
    short = ipvs.simulate("rr", endpoints(3), CLIENTS, 600, seed=2, persistence=1, duration=0.01)
    assert ipvs.per_client_endpoints(short).mean() > 2
    # Connections of 2 s on average usually outlive a 1 s template: its timer finds it controlling
    # one, so it lives on with 60 s timeouts (ip_vs_conn_expire), and the client mostly stays.
    long = ipvs.simulate("rr", endpoints(3), CLIENTS, 600, seed=2, persistence=1, duration=2.0)
    assert ipvs.per_client_endpoints(long).mean() < 1.8


# ---- lblc, lblcr -----------------------------------------------------------------------------------


def test_lblc_keeps_the_destination_on_one_server_until_it_is_overloaded():
    s = ipvs.scheduler("lblc", endpoints(3))
    first = s.schedule(conn(), now=1)
    assert first.name == "webpod1" and s.entries() == {ipvs.DEFAULT_VIP: ("webpod1",)}
    s.bind(first)
    assert s.schedule(conn("10.10.0.99", 50000), now=2).name == "webpod1"  # 1 active, not > weight 1
    s.bind("webpod1")
    # 2 active > weight 1, and webpod2 is under half its weight (0 * 2 < 1): overloaded -> wlc -> webpod2
    assert s.schedule(conn(), now=3).name == "webpod2" and s.entries() == {ipvs.DEFAULT_VIP: ("webpod2",)}


def test_lblc_overload_needs_a_server_under_half_its_weight():
    # dest->activeconns > dest->weight, and some d with d->activeconns * 2 < d->weight
    for active2, overloaded in ((2, False), (1, True)):
        s = ipvs.scheduler("lblc", webpods(4, 4))
        s.schedule(conn())
        s.set_conns("webpod1", 5)
        s.set_conns("webpod2", active2)  # 2 * 2 < 4 is False, 1 * 2 < 4 is True
        assert s.schedule(conn()).name == ("webpod2" if overloaded else "webpod1")


def test_lblc_and_lblcr_go_by_destination_address():
    for name in ("lblc", "lblcr"):
        s = ipvs.scheduler(name, endpoints(3))
        got = {}
        for i in range(6):
            vip = f"10.200.1.{10 + i}"
            got[vip] = s.schedule(conn(vip=vip)).name
            s.bind(got[vip])
        assert list(got.values()) == ["webpod1", "webpod2", "webpod3"] * 2  # a new destination: the least loaded
        for vip, server in got.items():
            assert s.schedule(conn("10.10.0.77", 41000, vip=vip)).name == server  # cached per destination


def test_lblc_reschedules_when_its_server_is_quiesced():
    s = ipvs.scheduler("lblc", endpoints(3))
    assert s.schedule(conn()).name == "webpod1"
    s.terminate("webpod1")
    assert s.schedule(conn()).name == "webpod2" and s.entries() == {ipvs.DEFAULT_VIP: ("webpod2",)}


def test_lblc_forgets_a_destination_at_the_full_check_after_expiration():
    # the timer runs every 60 s; every 30th run (t = 1800 s) drops entries unused for `expiration`
    s = ipvs.scheduler("lblc", endpoints(3), expiration=100)
    s.schedule(conn(), now=0)
    s.advance(1799)
    assert s.entries() == {ipvs.DEFAULT_VIP: ("webpod1",)}
    s.advance(1800)
    assert s.entries() == {}
    s.schedule(conn(), now=1801)
    s.advance(3599)
    assert s.entries() != {}
    s.advance(3600)  # the next full check, 30 runs later
    assert s.entries() == {}
    kept = ipvs.scheduler("lblc", endpoints(3))  # the default: 24 hours
    kept.schedule(conn(), now=0)
    kept.advance(86399)
    assert kept.entries() != {}
    kept.advance(86400 + 1800)
    assert kept.entries() == {}


def test_lblcr_server_set_grows_under_overload_and_shrinks_after_expiration():
    s = ipvs.scheduler("lblcr", endpoints(3), expiration=100)
    vip = ipvs.DEFAULT_VIP
    assert s.schedule(conn(), now=0).name == "webpod1" and s.server_set(vip) == ("webpod1",)
    s.set_conns("webpod1", 2)  # overloaded (2 > 1, and webpod2 is idle): the least loaded joins the set
    assert s.schedule(conn(), now=1).name == "webpod2" and s.server_set(vip) == ("webpod2", "webpod1")
    s.set_conns("webpod2", 1)
    assert s.schedule(conn(), now=2).name == "webpod2"  # the set's least loaded (256 < 512), not overloaded
    s.set_conns("webpod2", 2)
    s.set_conns("webpod1", 3)  # both overloaded, webpod3 idle
    assert s.schedule(conn(), now=3).name == "webpod3" and s.server_set(vip) == ("webpod3", "webpod2", "webpod1")
    # lastmod = 3: at now > 103 the most loaded member (webpod1) leaves, one per connection
    s.set_conns("webpod3", 1)
    assert s.schedule(conn(), now=103).name == "webpod3" and len(s.server_set(vip)) == 3
    assert s.schedule(conn(), now=103.5).name == "webpod3" and s.server_set(vip) == ("webpod3", "webpod2")
    assert s.schedule(conn(), now=104).name == "webpod3" and s.server_set(vip) == ("webpod3", "webpod2")  # lastmod moved
    assert s.schedule(conn(), now=204).name == "webpod3" and s.server_set(vip) == ("webpod3",)


@pytest.mark.parametrize("name", ["lblc", "lblcr"])
def test_for_a_service_vip_lblc_and_lblcr_are_one_server_until_it_is_overloaded(name):
    # every connection to a Service has the same destination, the VIP: one cache entry, one server
    quiet = ipvs.simulate(name, endpoints(3), CLIENTS, 500, seed=3, rate=0.2, duration=0.01)
    assert set(quiet["server"]) == {"webpod1"}  # connections never overlap: never overloaded
    busy = ipvs.simulate(name, endpoints(3), CLIENTS, 500, seed=3, rate=5.0, duration=2.0)
    assert len(set(busy["server"])) == 3
    # the server changes only when the one in use holds more than its weight (1) and another is idle
    prev = None
    for _, row in busy.iterrows():
        if prev is not None and row["server"] != prev:
            active = {s: row[f"active:{s}"] for s in ("webpod1", "webpod2", "webpod3")}
            if name == "lblc":
                assert active[prev] > 1 and min(active.values()) == 0, (prev, dict(row))
        prev = row["server"]


# ---- Maglev against an independent formulation -------------------------------------------------------


def maglev_reference(servers: list[ipvs.RealServer], size: int = ipvs.MH_TAB_SIZE) -> list[str]:
    """Maglev's population (NSDI'16, Algorithm 1) with the kernel's offset/skip hashes and keys; a
    server of weight w (gcd 1, all below 64) claims w slots per turn, as ip_vs_mh_populate does."""
    key1, key2 = (2654435761, 2654435761), (2654446892, 2654446892)

    def h(s, key):
        v = (s.port + int(ipaddress.IPv4Address(s.ip))) & 0xFFFFFFFF
        return ipvs.hsiphash(v.to_bytes(4, "little"), key)

    offset = [h(s, key1) % size for s in servers]
    skip = [h(s, key2) % (size - 1) + 1 for s in servers]
    nxt = [0] * len(servers)
    entry: list[str | None] = [None] * size
    n = 0
    while True:
        for i, s in enumerate(servers):
            for _ in range(s.weight):
                c = (offset[i] + nxt[i] * skip[i]) % size  # permutation[i][j]
                while entry[c] is not None:
                    nxt[i] += 1
                    c = (offset[i] + nxt[i] * skip[i]) % size
                entry[c] = s.name
                nxt[i] += 1
                n += 1
                if n == size:
                    return entry  # type: ignore[return-value]


@pytest.mark.parametrize("weights", [(1, 1, 1), (1, 1, 2), (1, 1, 1, 1, 1), (3, 1), (1, 2, 3, 4)])
def test_mh_table_is_maglev_population_with_the_kernel_hashes(weights):
    servers = webpods(*weights)
    assert list(ipvs.scheduler("mh", servers).table()) == maglev_reference(servers)
