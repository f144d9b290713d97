"""Fixtures for the simulator's fidelity tests: running clusters, clients that verify TLS against a
node's name while connecting to its address, and a small real CA that signs the simulator's CSRs."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from simulator.info import NodeInfo
from simulator.runtime import SimulatedCluster

CERTMGR = "/platformcom/api/v1/certmgr/config/"


class NameAdapter(HTTPAdapter):
    """Connect to the node's address but verify the certificate against its FQDN."""

    def __init__(self, server_hostname: str) -> None:
        self.server_hostname = server_hostname
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self.server_hostname
        super().init_poolmanager(*args, **kwargs)


def node_info(sim: SimulatedCluster, name: str) -> NodeInfo:
    return sim.info.node(name)


def base_url(sim: SimulatedCluster, name: str) -> str:
    node = node_info(sim, name)
    return f"https://{node.address}:{node.https_port}"


def session(sim: SimulatedCluster, name: str, account: str | None = "platform") -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = sim.info.ca_bundle
    if account:
        creds = sim.info.account(account)
        s.auth = (creds.username, creds.password)
    s.mount(base_url(sim, name), NameAdapter(node_info(sim, name).name))
    return s


def ssh_client(sim: SimulatedCluster, name: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(sim.info.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    creds = sim.info.platform
    client.connect(
        node_info(sim, name).address,
        port=node_info(sim, name).ssh_port,
        username=creds.username,
        password=creds.password,
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
    )
    return client


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class TestCA:
    """A root and an intermediate CA that sign CSRs the way a CA with copy_extensions does."""

    __test__ = False

    def __init__(self, name: str = "Sim Test") -> None:
        now = dt.datetime.now(dt.UTC)
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.root = self._ca(f"{name} Root CA", self.root_key, None, None, now)
        self.int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.intermediate = self._ca(f"{name} Issuing CA", self.int_key, self.root, self.root_key, now)

    @staticmethod
    def _ca(
        cn: str,
        key: rsa.RSAPrivateKey,
        issuer: x509.Certificate | None,
        issuer_key: rsa.RSAPrivateKey | None,
        now: dt.datetime,
        not_before: dt.datetime | None = None,
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski, critical=False)
        )
        return builder.sign(issuer_key or key, hashes.SHA256())

    def sign(
        self,
        csr_pem: str,
        sans: list[str] | None = None,
        public_key: Any = None,
        days: int = 365,
        ip_san: str | None = None,
    ) -> x509.Certificate:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        now = dt.datetime.now(dt.UTC)
        if sans is None:
            ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        general: list[x509.GeneralName] = [x509.DNSName(s) for s in sans]
        if ip_san:
            import ipaddress

            general.append(x509.IPAddress(ipaddress.ip_address(ip_san)))
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.intermediate.subject)
            .public_key(public_key or csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(general), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        for ext in csr.extensions:
            if isinstance(ext.value, (x509.KeyUsage, x509.ExtendedKeyUsage)):
                builder = builder.add_extension(ext.value, critical=ext.critical)
        return builder.sign(self.int_key, hashes.SHA256())

    def chain_pems(self) -> list[str]:
        return [pem(self.root), pem(self.intermediate)]


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def renew(sim: SimulatedCluster, ca: TestCA, node: str, cert_type: str) -> x509.Certificate:
    """Trust chain, CSR, signed leaf upload over REST: the leaf is installed (not yet presented)."""
    s = session(sim, node)
    base = base_url(sim, node) + CERTMGR
    r = s.post(
        base + "trust/certificates",
        json={"service": [cert_type], "certificates": ca.chain_pems(), "description": "test CA"},
    )
    assert r.status_code == 201, r.text
    r = s.post(
        base + "csr",
        json={
            "service": cert_type,
            "distribution": "this-server",
            "commonName": node_info(sim, node).name,
        },
    )
    assert r.status_code == 200, r.text
    leaf = ca.sign(r.json()["csr"])
    r = s.post(base + "identity/certificates", json={"service": cert_type, "certificates": [pem(leaf)]})
    assert r.status_code == 201, r.text
    return leaf


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, schema_dir: Path) -> Iterator[SimulatedCluster]:
    """A 3-node cluster with one IM&P node and 300 phones; restarts take ~0.1-0.2 s."""
    with SimulatedCluster(
        tmp_path_factory.mktemp("sim"),
        nodes=3,
        imp=1,
        phones=300,
        time_scale=1000,
        schema_dir=schema_dir,
        ris_rate_limit=10000,
    ) as cluster:
        yield cluster
