"""Unit tests of kslab.xtables: kube-proxy restore text -> what iptables-save prints.

The cases live in ``tests/xtables_cases.py`` (each expected string printed by the real
``iptables-save``); ``tests/test_kernel_roundtrip.py`` loads the same tables into the kernel on
every run as root, so they stay confirmed.
"""

from __future__ import annotations

import pytest
from xtables_cases import KERNEL_REFUSES, PRINT_CASES, REFUSED_TEXTS, STATE_CASES, UNSUPPORTED, VERBATIM_CASES

from kslab.xtables import (
    IptablesState,
    Match,
    listing_to_save,
    Option,
    Rule,
    Target,
    parse_restore,
    parse_rule,
    save_probability,
    save_string,
    split_args,
)

def _rule(table: str, args: str, chain: str = "KSLAB-P") -> Rule:
    return parse_rule(f"-A {chain} {args}", table)


@pytest.mark.parametrize(("table", "given", "expected"), PRINT_CASES)
def test_save_text(table: str, given: str, expected: str) -> None:
    assert _rule(table, given).save_text() == f"-A KSLAB-P {expected}"


@pytest.mark.parametrize(("table", "given", "expected"), PRINT_CASES)
def test_save_text_is_a_fixed_point(table: str, given: str, expected: str) -> None:
    """Reading iptables-save output gives the same rule back (what the sim interpreter relies on)."""
    rule = _rule(table, given)
    assert _rule(table, expected) == rule
    assert parse_rule(rule.save_text(), table, strict=False) == rule


@pytest.mark.parametrize(("table", "given"), KERNEL_REFUSES)
def test_refused_rules_raise(table: str, given: str) -> None:
    state = IptablesState()
    with pytest.raises(ValueError, match=r"restore line \d+"):
        state.restore(f"*{table}\n:KSLAB-P - [0:0]\n:KSLAB-TARGET - [0:0]\n-A KSLAB-P {given}\nCOMMIT\n")


@pytest.mark.parametrize(("case_id", "text"), REFUSED_TEXTS)
def test_refused_texts_raise(case_id: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_restore(text)


@pytest.mark.parametrize(("case_id", "text", "expected"), STATE_CASES)
def test_state_cases(case_id: str, text: str, expected: str) -> None:
    state = IptablesState()
    state.restore(text)
    assert state.save_text() == expected


@pytest.mark.parametrize(("table", "given"), UNSUPPORTED)
def test_unsupported_rules_raise_naming_the_rule(table: str, given: str) -> None:
    with pytest.raises(ValueError) as err:
        _rule(table, given)
    assert given.split()[0] in str(err.value) and "KSLAB-P" in str(err.value)


def test_empty_table_section_creates_no_table() -> None:
    """iptables-nft (Debian's default) creates no table for ``*filter`` + ``COMMIT`` alone.

    iptables-legacy does create it; kslab models the nf_tables backend here. kube-proxy's sync
    touches every table it names, so its output is the same on both backends.
    """
    assert parse_restore("*filter\nCOMMIT\n") == {}


def test_builtin_policy_dash_keeps_the_current_policy() -> None:
    """``:BUILTIN - [0:0]`` (issue 9): the policy stays what it is, in a new or an existing table."""
    dump = "*filter\n:INPUT - [0:0]\n:FORWARD - [0:0]\n:OUTPUT - [0:0]\n-A INPUT -j DROP\nCOMMIT\n"
    tables = parse_restore(dump)
    assert {c.name: c.policy for c in tables["filter"].chains.values()} == dict.fromkeys(("INPUT", "FORWARD", "OUTPUT"), "ACCEPT")
    assert all(c.builtin for c in tables["filter"].chains.values())
    assert tables["filter"].save_text() == dump.replace(" - [0:0]", " ACCEPT [0:0]")
    state = IptablesState()
    state.restore("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
    state.restore(dump)
    assert state.tables["filter"].chains["FORWARD"].policy == "DROP"
    assert [r.save_text() for r in state.tables["filter"].chains["INPUT"].rules] == ["-A INPUT -j DROP"]
    with pytest.raises(ValueError, match=r"restore line 2: bad policy 'RETURN' for built-in chain INPUT \(ACCEPT, DROP or -\)"):
        state.restore("*filter\n:INPUT RETURN [0:0]\nCOMMIT\n")
    assert state.tables["filter"].chains["INPUT"].policy == "ACCEPT"  # the failed section changed nothing


def test_unmodelled_target_is_not_taken_for_a_chain() -> None:
    """``-j LOG`` parses like a jump, but no chain LOG exists, so the text is refused."""
    assert _rule("filter", "-j LOG").target == Target("LOG")
    with pytest.raises(ValueError, match="LOG"):
        parse_restore("*filter\n:A - [0:0]\n-A A -j LOG\nCOMMIT\n")


@pytest.mark.parametrize(("table", "line"), VERBATIM_CASES)
def test_verbatim_extensions(table: str, line: str) -> None:
    rule = parse_rule(f"-A KSLAB-P {line}", table, strict=False)
    assert rule.save_text() == f"-A KSLAB-P {line}"
    assert any(m.verbatim for m in rule.matches) or (rule.target is not None and rule.target.verbatim)


def test_rule_structure() -> None:
    """The typed structure the sim interpreter reads."""
    rule = _rule(
        "nat",
        '-m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
    )
    assert rule == Rule(
        table="nat",
        chain="KSLAB-P",
        src="10.0.0.0/8",
        src_negated=True,
        dst="172.30.0.44/32",
        proto="tcp",
        matches=(
            Match("comment", (Option("comment", ("ns4/svc4:p80 cluster IP",)),)),
            Match("tcp", (Option("dport", ("80",)),)),
        ),
        target=Target("KUBE-MARK-MASQ"),
    )
    assert rule.comment == "ns4/svc4:p80 cluster IP"
    assert rule.target is not None and rule.target.is_chain
    dnat = _rule("nat", "-m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80")
    assert dnat.target == Target("DNAT", (Option("to-destination", ("10.180.0.1:80",)),))
    assert not dnat.target.is_chain
    assert _rule("nat", "-j MARK --or-mark 0x00004000").target == Target(
        "MARK", (Option("set-xmark", ("0x4000/0x4000",)),)
    )
    assert _rule("nat", "-m comment --comment x").target is None


def test_split_args_is_iptables_restore_tokeniser() -> None:
    assert split_args('-m comment --comment "a b" -j X') == ["-m", "comment", "--comment", "a b", "-j", "X"]
    assert split_args('--comment ""') == ["--comment", ""]
    assert split_args("--comment it's") == ["--comment", "it's"]
    assert split_args(r'--comment "a\"b\\c"') == ["--comment", 'a"b\\c']
    assert split_args(r"--comment a\b") == ["--comment", "a\\b"]
    assert split_args('x"a b"') == ["xa b"]
    with pytest.raises(ValueError):
        split_args('--comment "open')


def test_save_string() -> None:
    assert save_string("abc_D-9") == "abc_D-9"
    assert save_string("ns1/svc1:p80") == '"ns1/svc1:p80"'
    assert save_string("") == '""'
    assert save_string("a\"b'c\\d") == '"a\\"b\\\'c\\\\d"'


def test_save_probability_matches_reference_table() -> None:
    """reference/kube-proxy.md §4, kube-proxy text -> iptables-save."""
    table = {
        "0.5000000000": "0.50000000000",
        "0.3333333333": "0.33333333349",
        "0.2500000000": "0.25000000000",
        "0.2000000000": "0.20000000019",
        "0.1666666667": "0.16666666651",
        "0.1428571429": "0.14285714272",
        "0.1250000000": "0.12500000000",
        "0.1111111111": "0.11111111101",
        "0.1000000000": "0.10000000009",
    }
    assert {k: save_probability(k) for k in table} == table
    for n in range(1, 1002):  # every value kube-proxy precomputes, and its saved form, are fixed points
        saved = save_probability("%0.10f" % (1.0 / n))
        assert save_probability(saved) == saved


def test_listing_to_save() -> None:
    """``iptables -S`` listings: the -P lines tell the table; save text passes through unchanged."""
    listing = "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N A\n-A INPUT -j A\n\n-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n"
    assert listing_to_save(listing) == (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\nCOMMIT\n"
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    )
    assert listing_to_save("*filter\nCOMMIT\n") == "*filter\nCOMMIT\n"
    with pytest.raises(ValueError, match="must start with its -P"):
        listing_to_save("-A INPUT -j ACCEPT\n")
    with pytest.raises(ValueError, match="cannot tell the table"):
        listing_to_save("-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n")


# ---- the parse cache and split_args' fast path -------------------------------------------------------


def _rule_lines(text: str) -> list[tuple[str, str]]:
    """(table, line) for every ``-A`` line of restore or save text."""
    lines, table = [], ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A"):
            lines.append((table, line))
    return lines


def test_cached_parse_equals_uncached_parse_for_every_known_line() -> None:
    """Every line of the study lab's rendered rules, the renderer's scenarios, the upstream dumps
    (restore_cases) and the real node dumps: the cached parse gives a rule equal to a fresh
    parse, the same object every time, and split_args' fast path splits as the full tokeniser."""
    from pathlib import Path

    from render_cases import restore_cases

    from kslab.xtables.rule import _parse_line, _split_quoted

    dumps = Path(__file__).resolve().parents[1] / "data" / "node-dumps"
    texts = [(text, True) for _case, text in restore_cases()]
    texts.append((listing_to_save((dumps / "kind-worker3.filter.S").read_text() + "\n" + (dumps / "kind-worker3.nat.S").read_text()), False))
    texts.append((listing_to_save((dumps / "eks-node.nat.S").read_text()), False))
    checked = quoted = 0
    for text, strict in texts:
        for table, line in _rule_lines(text):
            fresh = _parse_line.__wrapped__(line, table, strict)
            cached = parse_rule(line, table, strict=strict)
            assert cached == fresh, line
            assert parse_rule(line, table, strict=strict) is cached
            assert split_args(line) == _split_quoted(line), line
            checked += 1
            quoted += '"' in line
    assert checked > 3000 and quoted > 400  # the lab, the scenarios and the dumps were all read
    info = _parse_line.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize  # bounded


def test_quotes_escapes_and_odd_whitespace_take_the_full_tokeniser() -> None:
    """str.split would get these wrong; split_args must still split them as iptables-restore."""
    assert split_args('-m comment --comment "a b"') == ["-m", "comment", "--comment", "a b"]
    assert split_args(r'--comment "x\"y z\\"') == ["--comment", 'x"y z\\']
    assert split_args('--comment ""') == ["--comment", ""]
    assert split_args("-j X\x0bY") == ["-j", "X\x0bY"]  # a vertical tab is no separator for iptables-restore
    assert split_args("-j X\u00a0Y") == ["-j", "X\u00a0Y"]
    assert split_args(" -j\tX \r\n") == ["-j", "X"]
    rule = parse_rule('-A INPUT -m comment --comment "a \\"b\\" c" -j ACCEPT')
    assert rule.comment == 'a "b" c' and rule.save_text() == '-A INPUT -m comment --comment "a \\"b\\" c" -j ACCEPT'


def test_a_failing_line_is_not_cached() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown option"):
            parse_rule("-A INPUT --no-such-option 1 -j ACCEPT")


def test_restore_reads_append_lines_without_splitting_them_twice() -> None:
    """-A lines go straight to the (cached) parser: counters, tabs, --append and a broken quote
    behave as when the line was split first."""
    state = IptablesState()
    state.restore('*filter\n:A - [0:0]\n[3:4] -A\tA -j ACCEPT\n--append A -m comment --comment "x y" -j DROP\n'
                  '"-A" A -j RETURN\nCOMMIT\n')
    assert state.save_text() == ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n"
                                 '-A A -j ACCEPT\n-A A -m comment --comment "x y" -j DROP\n-A A -j RETURN\nCOMMIT\n')
    with pytest.raises(ValueError, match="restore line 3: .*unterminated quote"):
        state.restore('*filter\n:A - [0:0]\n-A A -m comment --comment "open -j DROP\nCOMMIT\n')
    with pytest.raises(ValueError, match="only -A and -X"):
        state.restore('*filter\n-AA -j DROP\nCOMMIT\n')
