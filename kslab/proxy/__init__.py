"""kube-proxy emulation, laid out like kubernetes/kubernetes ``pkg/proxy``.

- :mod:`kslab.proxy.serviceport`: service ports and endpoints as kube-proxy sees them
  (``ServicePortName``, ``CategorizeEndpoints``);
- :mod:`kslab.proxy.iptables`: ``syncProxyRules``: rendering one node's ruleset (pure);
- :mod:`kslab.proxy.iptables_node`: kube-proxy's full sync (jump rules, canary chains, nfacct
  counters) on kslab's model of a node and in a kernel (network namespace); the iptables
  userspace it uses is :mod:`kslab.xtables`.
"""
