"""iptables' userspace, emulated: how iptables 1.8.9 parses rules, holds tables and prints them.

kube-proxy writes iptables-restore text in its own dialect (``-m tcp -p tcp -d 10.0.0.1 --dport
80``, ``--or-mark 0x00004000``, ``--probability 0.3333333333``). The kernel stores each rule in a
normalised binary form, and ``iptables-save`` prints that form back in another dialect
(``-d 10.0.0.1/32 -p tcp -m tcp --dport 80``, ``--set-xmark 0x4000/0x4000``,
``--probability 0.33333333349``). A learner who compares kslab's rules with a real node's
``iptables-save`` must see the second dialect, so this package reproduces it without a kernel.
The renderer prints through it and the simulator reads dumps with it. It knows iptables, not
kube-proxy (that is :mod:`kslab.proxy`).

Rooms, bottom up (all pure except :mod:`~kslab.xtables.kernel`):

- :mod:`~kslab.xtables.constants`: tables and their built-in chains, verdicts, name limits;
- :mod:`~kslab.xtables.save`: the save text format (table order, quoting, probabilities,
  ``iptables -S`` listings -> save text);
- :mod:`~kslab.xtables.extensions`: the ``libxt_*`` matches and targets kslab models: their
  options, normalisation and printing;
- :mod:`~kslab.xtables.rule`: :func:`split_args` and :func:`parse_rule`: one rule line into a
  typed, *canonical* :class:`Rule` (the rule as the kernel holds it, so a rule from restore
  text and the same rule read back from ``iptables-save`` compare equal, as ``iptables -C``
  compares them); :meth:`Rule.save_text` prints it;
- :mod:`~kslab.xtables.state`: :class:`IptablesState`, the tables of one network namespace,
  changed by ``-N``, ``-C``/``-I`` and ``iptables-restore --noflush`` and printed with
  :meth:`IptablesState.save_text`; :func:`parse_restore` loads any restore or save text;
- :mod:`~kslab.xtables.kernel`: the real tools in a network namespace, to check all of the above.

Both families: every parser and table takes ``family=4`` (iptables, the default) or
``family=6`` (ip6tables): :func:`parse_rule`/:func:`parse_argv`/:func:`parse_restore`,
:class:`IptablesState`, :class:`TableDump` and the :mod:`~kslab.xtables.kernel` operations. A
:class:`Rule` knows its family. ip6tables-save prints addresses as ``inet_ntop`` writes them
with a prefix (``fd00::1/128``, ``fd00::/64``), NAT targets as ``[addr]:port``, ``recent
--mask`` as ``ffff:...:ffff`` and REJECT's ``icmp6-*`` types; everything else kube-proxy writes
prints the same in both (measured; ``tests/xtables6_cases.py``, ``tests/test_kernel_roundtrip6.py``).

Every printed form was checked against iptables v1.8.9 (nf_tables and legacy backends) in a
network namespace; ``tests/test_kernel_roundtrip.py`` keeps checking it. Anything this package
cannot print exactly (an extension or option it does not model, a hostname to resolve, a rule
the kernel would refuse) raises :class:`ValueError` naming the rule, rather than guessing.

The two backends print kube-proxy's rules identically, but not everything (measured):
iptables-nft merges repeated port matches (``-m tcp --sport 5 -m tcp --dport 6`` prints as one
``-m tcp --sport 5 --dport 6``) where legacy keeps both, so kslab refuses a repeated ``-m tcp``;
legacy accepts and prints ``! -s 0.0.0.0/0``, nft refuses it, so kslab refuses it; legacy
creates a table for an empty ``*filter``/``COMMIT`` section, nft does not, and kslab follows
nft (Debian's default). Table order differs too (see :data:`SAVE_TABLE_ORDER`).
"""

from __future__ import annotations

from .constants import BUILTIN_CHAINS, STANDARD_TARGETS
from .extensions import Option
from .rule import Match, Rule, Target, parse_argv, parse_rule, split_args
from .save import SAVE_TABLE_ORDER, listing_to_save, save_probability, save_string
from .state import Chain, Counters, IptablesState, TableDump, parse_restore

__all__ = [
    "BUILTIN_CHAINS",
    "SAVE_TABLE_ORDER",
    "STANDARD_TARGETS",
    "Option",
    "Match",
    "Target",
    "Rule",
    "Chain",
    "Counters",
    "TableDump",
    "IptablesState",
    "split_args",
    "save_string",
    "save_probability",
    "parse_rule",
    "parse_argv",
    "parse_restore",
    "listing_to_save",
]
