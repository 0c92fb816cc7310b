"""The netns backend's kernel: the study's kind cluster on the real Linux kernel, in network namespaces.

- :mod:`kslab.netns.layout`: the plan (namespace names and addresses, a pure function of the cluster);
- :mod:`kslab.netns.lab`: :class:`NetnsLab` (namespaces, veths, routes, sysctls, servers,
  ``iptables-restore``/``-save``, conntrack, clients, kernel traces); kube-proxy's rules come
  from the Lab's Proxiers through :class:`kslab.dataplane.netns.NetnsDataplane`;
- :mod:`kslab.netns.records`: what a lab created (``state.json``), crash cleanup, ``down_all``,
  the signal and atexit hooks;
- :mod:`kslab.netns.processes`: the processes in a lab's namespaces (find, kill);
- :mod:`kslab.netns.ktrace`: the kernel's own trace of one connection (``xtables-monitor --trace``);
- :mod:`kslab.netns.servers`: the pods' whoami / echo servers (``python3 -m kslab.netns.servers``);
- :mod:`kslab.netns.client`: real connections from inside a namespace (``python3 -m kslab.netns.client``);
- :mod:`kslab.netns.rootcheck`: a snapshot of the root namespace, to prove it is left untouched;
- :mod:`kslab.netns.cli`: ``kslab netns up|down|status``.

Imports are lazy: the server and client helpers start in every pod and must start fast.
"""
