"""The one definition of a connection's row: what every dataplane returns for each connection.

One row per connection, the same columns on every backend (``Lab.run`` returns a DataFrame of
them, :mod:`kslab.experiments` summarises it):

``conn`` (0..n-1), ``backend``, ``client``, ``client_ip``, ``ingress_node``, ``destination``
(``IP:PORT/proto``), ``rules_path`` (a short id of the chain path taken), ``chains`` (that path,
``" > "``-joined; empty where the backend cannot see it), ``endpoint_pod``, ``endpoint_node``,
``endpoint_ip``, ``source_ip_seen`` (the client address the endpoint saw), ``cross_node`` (the
endpoint runs on another node than the one the connection entered), ``masquerade``,
``outcome`` (``ok`` or why not: ``error``, ``timeout``, ``refused``, ``dropped`` ...),
``reason`` (one line, empty when ok), ``t`` (the dataplane's clock, seconds),
``rules_evaluated`` (rules the kernel evaluated; None where it cannot be counted),
``latency_ms`` (wall-clock time of a real connection; None on a simulated one).
"""

from __future__ import annotations

COLUMNS = [
    "conn", "backend", "client", "client_ip", "ingress_node", "destination", "rules_path", "chains",
    "endpoint_pod", "endpoint_node", "endpoint_ip", "source_ip_seen", "cross_node", "masquerade",
    "outcome", "reason", "t", "rules_evaluated", "latency_ms",
]
