"""kube-proxy's nftables mode (``pkg/proxy/nftables``).

- :mod:`.names`: chain and set names (``hash_and_truncate``: ``service-ULMVA6XW-ns1/svc1/tcp/p80``)
  and the service port and endpoint types that carry them;
- :mod:`.transaction`: one operation of a transaction (:class:`NftOp`), upstream's
  order-insensitive comparison (:func:`sort_nft_transaction`) and its fake table (:class:`FakeNft`);
- :mod:`.proxier`: ``syncProxyRules`` (:func:`sync_nft_rules`, :func:`render`), the per-sync state
  (:class:`NftSyncState`), what a sync returns (:class:`NftRuleSet`: raw ``nft -f`` text, the
  upstream test layout, ``nft list`` form) and :data:`MODE`, what :class:`kslab.proxy.proxier.Proxier` drives.
"""

from .names import hash_and_truncate
from .proxier import MODE, NftablesMode, NftRuleSet, NftSyncState, render, render_node, sync_nft_rules
from .transaction import FakeNft, NftOp, sort_nft_transaction

__all__ = ["MODE", "FakeNft", "NftOp", "NftRuleSet", "NftSyncState", "NftablesMode", "hash_and_truncate", "render",
           "render_node", "sort_nft_transaction", "sync_nft_rules"]
