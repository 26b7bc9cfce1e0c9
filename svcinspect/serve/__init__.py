"""The node agent: ``svcinspect serve``, a Prometheus exporter.

- :mod:`.snapshot`: what one read of the node says (pure: ruleset, objects,
  conntrack flows -> a :class:`~.snapshot.Snapshot` of plain numbers);
- :mod:`.metrics`: a snapshot and the agent's own health as Prometheus metric
  families (names and labels after Prometheus' and kube-state-metrics'
  conventions);
- :mod:`.agent`: the loop (re-read every interval, keep the last good snapshot
  when a read fails), the ``/metrics`` and ``/healthz`` HTTP server and the
  atomic textfile writer.
"""
