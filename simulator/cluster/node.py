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
from simulator.cluster.certificates import Identity, types_for
from simulator.cluster.services import Service, services_for

if TYPE_CHECKING:
    from simulator.cluster.model import Cluster


class Node:
    def __init__(
        self,
        cluster: Cluster,
        name: str,
        role: str,
        index: int,
        deactivated: Sequence[str] = (),
        activated: Sequence[str] = (),
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
        self.services: dict[str, Service] = services_for(role, index, deactivated, activated)
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
        return types_for(self.role, self.cluster.release)

    @property
    def federates(self) -> bool:
        """XMPP federation runs here: its connection manager is activated (it does not start until
        federation is configured, T217304)."""
        svc = self.services.get("Cisco XCP XMPP Federation Connection Manager")
        return svc is not None and svc.activated

    @property
    def tomcat_running(self) -> bool:
        """Cisco Tomcat is Started: certmgr REST, AXL, RisPort70 and ControlCenterServices answer."""
        return self.services["Cisco Tomcat"].state == "Started"

    @property
    def runs_callmanager(self) -> bool:
        return self.role != "imp"

    def tomcat_context(self) -> ssl.SSLContext:
        """The TLS context for new HTTPS connections: the *presented* tomcat certificate, and
        tomcat-ECDSA too once the ``HTTPS Ciphers`` enterprise parameter allows EC ciphers (its
        default, "RSA Ciphers only", keeps ECDSA off: PA12, AG14)."""
        twin = "tomcat-ECDSA" if self.cluster.https_ciphers == "all" else None
        return self.tls_context("tomcat", twin)

    def tls_context(
        self, cert_type: str, ec_twin: str | None = None, *, haproxy: bool = False
    ) -> ssl.SSLContext:
        """A server context presenting this node's *presented* certificate of ``cert_type``; with
        ``ec_twin`` (a type this node carries) also that EC certificate, to a client that offers
        only ECDSA suites: RSA preferred, as CUCM's "All Ciphers RSA Preferred" default (PA12).
        With ``haproxy``: what Cisco HAProxy presents, which can lag behind from 14SU1."""
        with self.cluster.lock:
            self.cluster.advance()
            types = [cert_type] + ([ec_twin] if ec_twin and ec_twin in self.identities else [])
            presented = []
            for t in types:
                ident = self.identities[t]
                cert, key = ident.presented, ident.presented_key
                if haproxy and ident.haproxy is not None:
                    cert, key = ident.haproxy
                presented.append((t, cert, key))
            fp = ",".join(pki.fingerprint(cert) for _, cert, _ in presented)
            cache_key = ",".join(types) + ("@haproxy" if haproxy else "")
            cached = self._ctx_cache.get(cache_key)
            if cached and cached[0] == fp:
                return cached[1]
            parts = [(key, [cert, *self.cluster.chain_for(self, t, cert)]) for t, cert, key in presented]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if len(parts) > 1:
            # In TLS 1.2 the cipher suite picks the certificate; the server's order puts RSA first.
            # (TLS 1.3 picks by signature algorithm, which Python cannot order [simplification].)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
            ctx.set_ciphers("ECDHE+aRSA+AESGCM:ECDHE+aRSA+CHACHA20:ECDHE+aECDSA+AESGCM:ECDHE+aECDSA+CHACHA20")
        for key, chain in parts:
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
            self._ctx_cache[cache_key] = (fp, ctx)
        return ctx
