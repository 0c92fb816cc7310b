"""kube-proxy emulation, laid out like kubernetes/kubernetes ``pkg/proxy``.

The mode-agnostic layer:

- :mod:`kslab.proxy.config`: ``ProxyConfig``, what one kube-proxy knows (node, flags);
- :mod:`kslab.proxy.serviceport`: service ports (``ServicePortName``, ``BaseServicePortInfo``);
- :mod:`kslab.proxy.endpoints`: endpoints from EndpointSlices (``BaseEndpointInfo``);
- :mod:`kslab.proxy.topology`: ``CategorizeEndpoints`` by traffic policy, readiness, hints;
- :mod:`kslab.proxy.changetracker`: the service port and endpoints maps across syncs, and
  which Services changed;
- :mod:`kslab.proxy.proxier`: the sync loop (full vs partial, stale chains, failures,
  metrics), driving a mode through ``ProxyMode``;
- :mod:`kslab.proxy.util`: IP parsing as kube-proxy does it, ``--nodeport-addresses``.

One package per mode: :mod:`kslab.proxy.iptables` (chain names, rule writing, restore text) and
:mod:`kslab.proxy.nftables` (chain and set names, the nft transaction, element diffs and stale
chains across partial syncs; its ``nft list`` form through :mod:`kslab.nft`).
What kube-proxy does to a node's tables beyond the restore (canary chains, jump rules, nfacct
counters), on kslab's model and in a kernel: :mod:`kslab.proxy.iptables.node`; the iptables
userspace it uses: :mod:`kslab.xtables`.
"""
