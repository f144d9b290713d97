"""The CUCM adapter's configuration for a running simulator, from the ``simulator.json`` it wrote
(tests and benchmarks; the product reaches a simulator only through ``init --from-simulator``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from adapters.cucm.cluster import ClusterConfig, Credentials
from adapters.cucm.port import NodeRef, Role
from simulator.info import SimulatorInfo


def cluster_config(path: str | Path, **overrides: Any) -> ClusterConfig:
    info = SimulatorInfo.load(path)
    values: dict[str, Any] = {
        "name": info.cluster,
        "nodes": tuple(
            NodeRef(n.name, n.address, n.https_port, n.ssh_port, cast(Role, n.role)) for n in info.nodes
        ),
        "platform": Credentials(info.platform.username, info.platform.password),
        "axl": Credentials(info.axl.username, info.axl.password),
        "ca_bundle": info.ca_bundle,
        "known_hosts": info.known_hosts,
        "use_rest": int(info.version.split(".")[0]) >= 14,
        "axl_version": min(info.version[:4], "14.0") if info.version[:2].isdigit() else "14.0",
        "port_map": {n.name: {**n.tls_ports, **n.ports} for n in info.nodes if n.tls_ports or n.ports},
    }
    values.update(overrides)
    return ClusterConfig(**values)
