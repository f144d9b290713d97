"""One node of the cluster: its identities, trust stores and services, and its TLS contexts."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulator import pki
from simulator.cluster.certificates import CERT_TYPES, IMP_CERT_TYPES, Identity
from simulator.cluster.services import Service, services_for

if TYPE_CHECKING:
    from simulator.cluster.model import Cluster


class Node:
    def __init__(
        self, cluster: Cluster, name: str, role: str, index: int, deactivated: Sequence[str] = ()
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.role = role  # publisher | subscriber | imp
        self.index = index
        self.address = "127.0.0.1"
        self.https_port = 0
        self.ssh_port = 0
        self.identities: dict[str, Identity] = {}
        self.trust: dict[str, dict[str, x509.Certificate]] = {}
        self.services: dict[str, Service] = services_for(role, index, deactivated)
        # The address CUCM itself knows the node by (System > Server), distinct per node unlike
        # ``address``, which is where the simulator listens [M: documentation range].
        self.lan_ip = f"192.0.2.{10 + index}"
        # DNS names beyond the FQDN that the node's current certificates carry (a parent domain for
        # Jabber/MRA, an alias a SIP trunk uses): a renewal must not lose them.
        self.extra_sans: list[str] = []
        self._ctx_cache: dict[str, tuple[str, ssl.SSLContext]] = {}

    @property
    def short(self) -> str:
        return self.name.split(".")[0]

    @property
    def processnode_name(self) -> str:
        """The node's name in CUCM's processnode table: its FQDN, or its IP address when the cluster's
        servers were defined by address."""
        return self.lan_ip if self.cluster.processnode_names == "ip" else self.name

    def known_as(self, name: str) -> bool:
        return name in (self.name, self.short, self.processnode_name)

    @property
    def cert_types(self) -> tuple[str, ...]:
        return IMP_CERT_TYPES if self.role == "imp" else CERT_TYPES

    @property
    def tomcat_running(self) -> bool:
        """Cisco Tomcat is Started: certmgr REST, AXL, RisPort70 and ControlCenterServices answer."""
        return self.services["Cisco Tomcat"].state == "Started"

    @property
    def runs_callmanager(self) -> bool:
        return self.role != "imp"

    def tomcat_context(self) -> ssl.SSLContext:
        """The TLS context for new HTTPS connections: the *presented* tomcat certificate."""
        return self.tls_context("tomcat")

    def tls_context(self, cert_type: str) -> ssl.SSLContext:
        """A server context presenting this node's *presented* certificate of ``cert_type``."""
        with self.cluster.lock:
            self.cluster.advance()
            ident = self.identities[cert_type]
            fp = pki.fingerprint(ident.presented)
            cached = self._ctx_cache.get(cert_type)
            if cached and cached[0] == fp:
                return cached[1]
            chain = [ident.presented, *self.cluster.chain_for(self, cert_type, ident.presented)]
            key = ident.presented_key
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        fd, path = tempfile.mkstemp(prefix=f"sim-{cert_type}-", dir=self.cluster.workdir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
                for c in chain:
                    fh.write(c.public_bytes(serialization.Encoding.PEM))
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        with self.cluster.lock:
            self._ctx_cache[cert_type] = (fp, ctx)
        return ctx
