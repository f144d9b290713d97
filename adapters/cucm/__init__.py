"""Talking to CUCM. Workflows import :mod:`adapters.cucm.port` only; :mod:`adapters.cucm.cluster`
builds the implementation from configuration (``build_cluster(ClusterConfig(...))``), and
:mod:`adapters.cucm.fake` holds a cluster in memory for tests (``FakeCucm()``)."""
