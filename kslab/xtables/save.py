"""The ``iptables-save`` text format: the order of tables, how strings and probabilities are
printed, and ``iptables -S`` listings turned into save text.

Reading save (or restore) text into tables is :func:`kslab.xtables.state.parse_restore`; how one
rule is printed is :meth:`kslab.xtables.rule.Rule.save_text`.
"""

from __future__ import annotations

import math
import re

from .constants import BUILTIN_CHAINS

__all__ = ["SAVE_TABLE_ORDER", "save_string", "save_probability", "listing_to_save"]

SAVE_TABLE_ORDER: tuple[str, ...] = ("mangle", "raw", "filter", "nat")
"""Order in which ``iptables-save`` (no ``-t``) prints tables, for the tables kslab knows.

Measured with iptables-nft 1.8.9: the order is fixed by iptables' own table list (mangle,
security, raw, filter, nat), *not* by creation order. kube-proxy's canary creates mangle, nat,
filter in that order and iptables-save still prints mangle, filter, nat. iptables-legacy-save
prints the kernel's registration order instead, so :func:`kslab.xtables.kernel.iptables_save`
re-orders its output to this order.
"""
assert set(SAVE_TABLE_ORDER) == set(BUILTIN_CHAINS), "every table in BUILTIN_CHAINS needs a print position"


_SAFE_STRING = re.compile(r"[A-Za-z0-9_-]+")


def save_string(value: str) -> str:
    """Quote a string as ``xtables_save_string`` does (comments, for instance).

    Bare only if non-empty and every character is in ``[A-Za-z0-9_-]``; otherwise wrapped in
    double quotes with ``"``, ``\\`` and ``'`` backslash-escaped. So ``ns1/svc1:p80`` (bare in
    kube-proxy's text) prints as ``"ns1/svc1:p80"`` and an empty comment as ``""``.
    """
    if _SAFE_STRING.fullmatch(value):
        return value
    return '"' + re.sub(r"([\"\\'])", r"\\\1", value) + '"'


def save_probability(text: str) -> str:
    """The ``--probability`` value iptables-save prints for a given input value.

    libxt_statistic stores ``lround(0x80000000 * p)`` and prints ``%.11f`` of that over
    ``0x80000000``: kube-proxy's ``0.3333333333`` comes back as ``0.33333333349``.
    """
    try:
        p = float(text)
    except ValueError:
        raise ValueError(f"bad probability {text!r}") from None
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"probability {text!r} out of range (0-1)")
    return "%.11f" % (math.floor(0x80000000 * p + 0.5) / 0x80000000)


_TABLE_BY_BUILTINS = {frozenset(chains): table for table, chains in BUILTIN_CHAINS.items()}


def listing_to_save(text: str) -> str:
    """``iptables [-t T] -S`` listings (``-P``/``-N``/``-A`` lines) as ``iptables-save`` text.

    Text that already has ``*table`` sections is returned unchanged. Each listing starts with
    its ``-P`` lines, whose built-in chains tell the table (nat: PREROUTING, INPUT, OUTPUT,
    POSTROUTING; filter: INPUT, FORWARD, OUTPUT; ...). Rule lines are the same in both forms.
    Raises ValueError for a listing whose table cannot be told.
    """
    lines = [line.rstrip() for line in text.splitlines()]
    if any(line.startswith("*") for line in lines):
        return text
    blocks: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.startswith("-P ") and (not blocks or not blocks[-1][-1].startswith("-P ")):
            blocks.append([])
        if not blocks:
            raise ValueError("a listing must start with its -P (policy) lines")
        blocks[-1].append(line)
    out = []
    for block in blocks:
        builtins = frozenset(line.split()[1] for line in block if line.startswith("-P "))
        table = _TABLE_BY_BUILTINS.get(builtins)
        if table is None:
            raise ValueError(f"cannot tell the table of a listing with built-in chains {sorted(builtins)}")
        out.append(f"*{table}")
        out += [f":{l.split()[1]} {l.split()[2]} [0:0]" for l in block if l.startswith("-P ")]
        out += [f":{l.split()[1]} - [0:0]" for l in block if l.startswith("-N ")]
        out += [l for l in block if l.startswith("-A ")]
        out.append("COMMIT")
    return "\n".join(out) + "\n"
