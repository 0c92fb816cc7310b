"""kube-proxy's iptables mode (``pkg/proxy/iptables``).

- :mod:`.constants`: the fixed chains, jump rules and names of the mode;
- :mod:`.chains`: per-service chain names (KUBE-SVC/SVL/EXT/FW/SEP) and the service port and
  endpoint types that carry them;
- :mod:`.ruleset`: the LineBuffers a sync writes and the :class:`RuleSet` it returns (raw,
  sorted and iptables-save text);
- :mod:`.proxier`: ``syncProxyRules`` (:func:`render`, :func:`sync_proxy_rules`) and
  :data:`MODE`, what :class:`kslab.proxy.proxier.Proxier` drives.
"""

from .proxier import MODE, ServicePortRules, render, render_node, sync_proxy_rules
from .ruleset import LineBuffer, RuleSet

__all__ = ["MODE", "LineBuffer", "RuleSet", "ServicePortRules", "render", "render_node", "sync_proxy_rules"]
