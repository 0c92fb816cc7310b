"""nftables as text: parse transactions and listings, keep the state, print ``nft list``.

- :mod:`kslab.nft.parse` — ``parse_commands`` (``nft -f`` input), ``parse_ruleset`` (``nft list``
  output), ``normalize_rule`` (transaction form -> list form), priorities, timeouts, key order.
- :mod:`kslab.nft.state` — ``NftState`` (atomic ``apply``, ``list_table``), ``NftTable``,
  ``NftChain``, ``NftSet``, ``NftRule``, ``NftElement``.
- :mod:`kslab.nft.kernel` — the only module that runs the real ``nft`` (inside a namespace).
"""

from kslab.nft.parse import NftCommand, normalize_rule, parse_commands, parse_ruleset
from kslab.nft.state import NftChain, NftElement, NftRule, NftSet, NftState, NftTable

__all__ = ["NftState", "NftTable", "NftChain", "NftSet", "NftRule", "NftElement", "NftCommand",
           "parse_commands", "parse_ruleset", "normalize_rule"]
