"""kube-proxy's iptables mode (``pkg/proxy/iptables``): :mod:`.proxier` renders a node's rules,
:mod:`.constants` holds the mode's fixed chains and jump rules."""

from .proxier import ProxyConfig, RuleSet, ServicePortRules, render, render_node

__all__ = ["ProxyConfig", "RuleSet", "ServicePortRules", "render", "render_node"]
