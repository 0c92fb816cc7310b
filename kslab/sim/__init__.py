"""The sim dataplane: kube-proxy's rules executed the way netfilter executes them.

- :mod:`kslab.sim.packet`: packets, hook contexts and trace steps (the shared vocabulary);
- :mod:`kslab.sim.netfilter`: an interpreter of ``iptables-save``/restore text (tables, chains,
  matches, targets), one per network namespace and IP family (``family=6``: ip6tables');
- :mod:`kslab.sim.nftables`: the same for kube-proxy's nftables mode (``table ip kube-proxy``, or
  ``table ip6 kube-proxy``, from :class:`kslab.nft.NftState`: base chains by priority, verdict
  maps, numgen, dynamic sets);
- :mod:`kslab.sim.network`: nodes, pods and ``mypc``; routing like kindnet; conntrack and NAT;
  one connection walked hook by hook, with its trace;
- :mod:`kslab.sim.trace`: a simulated connection as a :class:`kslab.dataplane.trace.Trace`.
"""
