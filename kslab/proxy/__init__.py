"""kube-proxy emulation, laid out like kubernetes/kubernetes ``pkg/proxy``.

- :mod:`kslab.proxy.serviceport`: service ports and endpoints as kube-proxy sees them
  (``ServicePortName``, ``CategorizeEndpoints``);
- :mod:`kslab.proxy.iptables`: ``syncProxyRules``: rendering one node's ruleset (pure);
- :mod:`kslab.proxy.iptsave`: how ``iptables-save`` prints a loaded ruleset;
- :mod:`kslab.proxy.apply`: applying a rendered ruleset to a kernel (network namespace).
"""
