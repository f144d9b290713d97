"""The port's EC, multi-server and inventory operations against the simulated cluster (real HTTPS,
SSH and TLS), over REST and over the CLI, and the in-memory fake keeping the same promises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from adapters.ca.local import LocalCA
from adapters.ca.port import Issued
from adapters.cucm.cluster import Cluster, build_cluster
from adapters.cucm.fake import FakeCucm
from adapters.cucm.port import CucmRejected
from simulator.cluster.certificates import MULTI_SERVER_UPLOAD_GUI_ONLY
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config

PUB, SUB, IMP = "cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"
ALL = [PUB, SUB, IMP]

pytestmark = pytest.mark.xdist_group("cucm-simulator")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    with SimulatedCluster(
        tmp_path_factory.mktemp("sim"), nodes=2, imp=1, time_scale=1000, version="14SU1", federation=["imp1"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory, sim: SimulatedCluster) -> LocalCA:
    local = LocalCA(tmp_path_factory.mktemp("ca"))
    sim.trust_ca(local.root_pem)
    return local


def port(sim: SimulatedCluster, **overrides: object) -> Cluster:
    values: dict[str, object] = {"restart_timeout": 60.0}
    values.update(overrides)
    return build_cluster(cluster_config(sim.json_path, **values))


@pytest.fixture
def rest(sim: SimulatedCluster) -> Iterator[Cluster]:
    p = port(sim)
    yield p
    p.close()


@pytest.fixture
def cli(sim: SimulatedCluster) -> Iterator[Cluster]:
    p = port(sim, use_rest=False)
    yield p
    p.close()


def sign(ca: LocalCA, csr: str, cert_type: str, node: str) -> Issued:
    issued = ca.submit(csr, cert_type=cert_type, node=node)
    assert isinstance(issued, Issued)
    return issued


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(pem.encode())


def sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)]


def test_ec_csr_on_each_curve_over_rest(sim: SimulatedCluster) -> None:
    for length in (256, 384):
        p = port(sim, csr_ec_key_length=length)
        try:
            csr = load_csr(p.generate_csr(SUB, "tomcat-ECDSA"))
        finally:
            p.close()
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size == length
        # CUCM refuses a hash weaker than the key: the adapter asks SHA-384 for P-384.
        assert csr.signature_hash_algorithm is not None
        assert csr.signature_hash_algorithm.digest_size * 8 >= length


def test_ec_csr_over_the_cli(cli: Cluster) -> None:
    csr = load_csr(cli.generate_csr(SUB, "CallManager-ECDSA"))
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(load_csr(cli.generate_csr(SUB, "CallManager")).public_key(), rsa.RSAPublicKey)


@pytest.mark.parametrize("api", ["rest", "cli"])
def test_identities_list_every_type_each_node_carries(api: str, request: pytest.FixtureRequest) -> None:
    p: Cluster = request.getfixturevalue(api)
    pub = p.identities(PUB)
    assert {"tomcat", "CallManager", "ipsec", "CAPF", "TVS", "tomcat-ECDSA", "CallManager-ECDSA"} <= set(pub)
    assert "ITLRecovery" in pub
    imp = p.identities(IMP)
    assert set(imp) == {
        "tomcat", "ipsec", "cup", "cup-xmpp", "cup-xmpp-s2s",
        "tomcat-ECDSA", "cup-ECDSA", "cup-xmpp-ECDSA", "cup-xmpp-s2s-ECDSA",
    }  # fmt: skip
    cert = x509.load_pem_x509_certificate(imp["cup-xmpp-ECDSA"].encode())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_multi_server_over_rest_is_distributed_and_the_cli_cannot_make_one(
    rest: Cluster, cli: Cluster, ca: LocalCA
) -> None:
    with pytest.raises(CucmRejected, match="set csr gen` takes only the unit"):
        cli.generate_csr(PUB, "tomcat", multi_server=True)
    csr = rest.generate_csr(PUB, "tomcat", multi_server=True)
    assert sans(load_csr(csr)) == ALL
    issued = sign(ca, csr, "tomcat", PUB)
    rest.upload_trust(PUB, "tomcat", list(reversed(issued.chain_pems)), "test CA")
    nodes = rest.upload_multi_server_identity(PUB, "tomcat", issued.leaf_pem, list(issued.chain_pems))
    assert nodes == ALL
    for node in ALL:
        assert rest.identity_certificate(node, "tomcat") == issued.leaf_pem


def test_multi_server_upload_over_the_cli_reads_cucms_list(rest: Cluster, cli: Cluster, ca: LocalCA) -> None:
    csr = rest.generate_csr(PUB, "CallManager", multi_server=True)
    issued = sign(ca, csr, "CallManager", PUB)
    rest.upload_trust(PUB, "CallManager", list(reversed(issued.chain_pems)), "test CA")
    assert cli.upload_multi_server_identity(PUB, "CallManager", issued.leaf_pem, []) == [PUB, SUB]
    assert cli.identity_certificate(SUB, "CallManager").strip() == issued.leaf_pem.strip()


def test_ecdsa_twin_is_presented_to_an_ecdsa_client(
    sim: SimulatedCluster, rest: Cluster, ca: LocalCA
) -> None:
    csr = rest.generate_csr(SUB, "CallManager-ECDSA")
    issued = sign(ca, csr, "CallManager-ECDSA", SUB)
    rest.upload_trust(SUB, "CallManager-ECDSA", list(reversed(issued.chain_pems)), "test CA")
    rest.upload_identity(SUB, "CallManager-ECDSA", issued.leaf_pem, list(issued.chain_pems))
    rest.restart_service(SUB, "Cisco CallManager")
    assert sim.cluster.wait_started(sim.cluster.node("cucm-sub1"), "Cisco CallManager", 30)
    # From 14SU1 HAProxy (6971) takes what is installed only on its own restart (SG14).
    rest.restart_service(SUB, "Cisco HAProxy")
    assert sim.cluster.wait_started(sim.cluster.node("cucm-sub1"), "Cisco HAProxy", 30)
    leaf = x509.load_pem_x509_certificate(issued.leaf_pem.encode())
    assert x509.load_der_x509_certificate(rest.presented_certificate(SUB, 5061, key_type="ec")) == leaf
    # Without the ECDSA view the port shows what CUCM prefers: the RSA CallManager certificate.
    shown = x509.load_der_x509_certificate(rest.presented_certificate(SUB, 6971, key_type="any"))
    assert isinstance(shown.public_key(), rsa.RSAPublicKey)


def test_imp_type_renewed_and_presented_on_its_port(
    sim: SimulatedCluster, rest: Cluster, ca: LocalCA
) -> None:
    csr = rest.generate_csr(IMP, "cup-xmpp-s2s")
    issued = sign(ca, csr, "cup-xmpp-s2s", IMP)
    # cup-xmpp-s2s's chain goes to cup-xmpp-trust, on the IM&P publisher.
    rest.upload_trust(IMP, "cup-xmpp", list(reversed(issued.chain_pems)), "test CA")
    rest.upload_identity(IMP, "cup-xmpp-s2s", issued.leaf_pem, list(issued.chain_pems))
    rest.restart_service(IMP, "Cisco XCP XMPP Federation Connection Manager")
    assert sim.cluster.wait_started(
        sim.cluster.node("imp1"), "Cisco XCP XMPP Federation Connection Manager", 30
    )
    presented = x509.load_der_x509_certificate(rest.presented_certificate(IMP, 5269))
    assert presented == x509.load_pem_x509_certificate(issued.leaf_pem.encode())


def test_from_14su2_the_api_refuses_multi_server_uploads(tmp_path: Path) -> None:
    local = LocalCA(tmp_path / "ca")
    with SimulatedCluster(tmp_path / "sim", nodes=2, time_scale=1000, version="14SU2", ports="random") as su2:
        p = build_cluster(cluster_config(su2.json_path))
        try:
            issued = sign(local, p.generate_csr(PUB, "tomcat", multi_server=True), "tomcat", PUB)
            p.upload_trust(PUB, "tomcat", list(reversed(issued.chain_pems)), "test CA")
            with pytest.raises(CucmRejected) as info:
                p.upload_multi_server_identity(PUB, "tomcat", issued.leaf_pem, list(issued.chain_pems))
            assert info.value.cucm_message == MULTI_SERVER_UPLOAD_GUI_ONLY
        finally:
            p.close()


def test_the_fake_keeps_the_same_promises(tmp_path: Path) -> None:
    local = LocalCA(tmp_path / "ca")
    fake = FakeCucm(csr_keys="ec")
    assert set(fake.identities("imp1.example.com")) >= {"cup", "cup-xmpp", "cup-xmpp-s2s-ECDSA"}
    with pytest.raises(CucmRejected, match="generated on the publisher"):
        fake.generate_csr(SUB, "tomcat", multi_server=True)
    with pytest.raises(CucmRejected, match="not supported for ipsec"):
        fake.generate_csr(PUB, "ipsec", multi_server=True)
    csr = fake.generate_csr(PUB, "tomcat", multi_server=True)
    assert sans(load_csr(csr)) == ALL
    issued = sign(local, csr, "tomcat", PUB)
    fake.upload_trust(PUB, "tomcat", list(reversed(issued.chain_pems)), "test CA")
    fake.release = "14.0.1.12900-161"
    with pytest.raises(CucmRejected) as info:
        fake.upload_multi_server_identity(PUB, "tomcat", issued.leaf_pem, [])
    assert info.value.cucm_message == MULTI_SERVER_UPLOAD_GUI_ONLY
    fake.release = "14.0.1.11900-132"
    assert fake.upload_multi_server_identity(PUB, "tomcat", issued.leaf_pem, []) == ALL
    assert all(fake.identity_certificate(n, "tomcat") == issued.leaf_pem for n in ALL)
    # The EC twin shares the store; the port's ECDSA view shows the twin.
    assert fake.trust_certificates(PUB, "tomcat-ECDSA") == fake.trust_certificates(PUB, "tomcat")
    ec_cert = x509.load_der_x509_certificate(fake.presented_certificate(PUB, 5061, key_type="ec"))
    assert x509.load_pem_x509_certificate(fake.presented(PUB, "CallManager-ECDSA").encode()) == ec_cert
    rsa_cert = x509.load_der_x509_certificate(fake.presented_certificate(PUB, 5061))
    assert x509.load_pem_x509_certificate(fake.presented(PUB, "CallManager").encode()) == rsa_cert
