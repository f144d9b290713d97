"""``simulator.json``: where a running simulator is reached, read and written in one place.

The simulator writes it (``SimulatedCluster.start``); ``cucm-renew init --from-simulator``, the
demo, the tests and the benchmarks read it. The layout is in README.md (``simulator.json``). This
module imports nothing but the standard library, so a reader pays nothing for the simulator itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SimulatorInfoError(ValueError):
    """The file is not a ``simulator.json`` (a key missing, a value of the wrong type)."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class NodeInfo:
    """One node: its FQDN ``name`` (what TLS verifies), the ``address`` it is reached at, its ports.

    ``https_port`` and ``ssh_port`` are where CUCM's 8443 and 22 listen; ``tls_ports`` maps a CUCM
    TLS port (5061, 2443, 2445, 3804, 4040, 6971, 6972) to where the node presents that
    certificate; ``ports`` maps every CUCM port (also 8443, 443, 22) to where it listens, and
    ``fallbacks`` lists the CUCM ports that could not be bound at their own number.
    """

    name: str
    role: str
    address: str
    https_port: int
    ssh_port: int
    tls_ports: Mapping[int, int] = field(default_factory=dict)
    ports: Mapping[int, int] = field(default_factory=dict)
    fallbacks: tuple[int, ...] = ()

    def port(self, cucm_port: int) -> int:
        """Where CUCM's ``cucm_port`` listens on this node."""
        if cucm_port in self.ports:
            return self.ports[cucm_port]
        if cucm_port in self.tls_ports:
            return self.tls_ports[cucm_port]
        return {8443: self.https_port, 22: self.ssh_port}.get(cucm_port, cucm_port)

    @property
    def short(self) -> str:
        return self.name.split(".")[0]


@dataclass(frozen=True)
class SimulatorInfo:
    cluster: str
    version: str
    ca_bundle: str
    known_hosts: str
    platform: Account
    axl: Account
    nodes: tuple[NodeInfo, ...]
    time_scale: float
    pid: int | None = None
    release: str = ""
    """The row of simulator.releases the cluster plays (``14SU3``)."""
    hosts: str = ""
    """``/etc/hosts`` lines naming every node's address (also written to DIR/hosts)."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SimulatorInfo:
        """Read ``path``. Raises OSError if it cannot be read, SimulatorInfoError if it is not one."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SimulatorInfoError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> SimulatorInfo:
        try:
            creds = data["credentials"]
            return cls(
                cluster=str(data.get("cluster", "sim")),
                version=str(data.get("version", "14.0")),
                ca_bundle=str(data["ca_bundle"]),
                known_hosts=str(data["known_hosts"]),
                platform=Account(str(creds["platform"]["username"]), str(creds["platform"]["password"])),
                axl=Account(str(creds["axl"]["username"]), str(creds["axl"]["password"])),
                nodes=tuple(
                    NodeInfo(
                        name=str(n["name"]),
                        role=str(n["role"]),
                        address=str(n["address"]),
                        https_port=int(n["https_port"]),
                        ssh_port=int(n["ssh_port"]),
                        tls_ports={int(k): int(v) for k, v in (n.get("tls_ports") or {}).items()},
                        ports={int(k): int(v) for k, v in (n.get("ports") or {}).items()},
                        fallbacks=tuple(int(p) for p in n.get("fallbacks") or ()),
                    )
                    for n in data["nodes"]
                ),
                time_scale=float(data.get("time_scale", 1.0)),
                pid=int(data["pid"]) if data.get("pid") is not None else None,
                release=str(data.get("release", "")),
                hosts=str(data.get("hosts", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SimulatorInfoError(f"{type(exc).__name__}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "version": self.version,
            "release": self.release,
            "ca_bundle": self.ca_bundle,
            "known_hosts": self.known_hosts,
            "credentials": {
                "platform": {"username": self.platform.username, "password": self.platform.password},
                "axl": {"username": self.axl.username, "password": self.axl.password},
            },
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role,
                    "address": n.address,
                    "https_port": n.https_port,
                    "ssh_port": n.ssh_port,
                    "tls_ports": {str(k): v for k, v in n.tls_ports.items()},
                    "ports": {str(k): v for k, v in n.ports.items()},
                    "fallbacks": list(n.fallbacks),
                }
                for n in self.nodes
            ],
            "hosts": self.hosts,
            "time_scale": self.time_scale,
            "pid": self.pid,
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, mode 0600: the file holds passwords."""
        target = Path(path)
        tmp = target.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.to_dict(), indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(target)

    def account(self, kind: str) -> Account:
        """``"platform"`` (OS admin: certmgr REST, SSH) or ``"axl"`` (AXL, RisPort70, ControlCenter)."""
        if kind == "platform":
            return self.platform
        if kind == "axl":
            return self.axl
        raise KeyError(f"no account {kind!r}: use 'platform' or 'axl'")

    @property
    def publisher(self) -> NodeInfo:
        return next(n for n in self.nodes if n.role == "publisher")

    def node(self, name: str) -> NodeInfo:
        """The node called ``name`` (FQDN or short name)."""
        for n in self.nodes:
            if name in (n.name, n.short):
                return n
        raise KeyError(f"no node {name!r} in simulator.json; nodes: {', '.join(n.name for n in self.nodes)}")
