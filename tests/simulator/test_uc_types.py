"""The certificates a UC cluster carries beyond the five of the procedure: the EC twins, the IM&P
types and their services and ports, multi-server (SAN) CSRs and their distribution, ITLRecovery's
validity. Real HTTPS, real TLS listeners, real keys."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from simulator.cli import run_command
from simulator.cluster import Cluster, CucmError
from simulator.cluster.certificates import (
    EC_KEY_LENGTH,
    KEY_TYPE_MISMATCH,
    MULTI_SERVER,
    MULTI_SERVER_NODE,
    MULTI_SERVER_TYPE,
    MULTI_SERVER_UPLOAD_GUI_ONLY,
    WEAK_HASH,
    trust_store,
)
from simulator.runtime import SimulatedCluster

from .conftest import CERTMGR, TestCA, base_url, node_info, pem, session

PUB, SUB, IMP1, IMP2 = "cucm-pub", "cucm-sub1", "imp1", "imp2"
FED = "Cisco XCP XMPP Federation Connection Manager"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    """14SU1 (multi-server uploads still taken by the API), two IM&P nodes, imp1 federates."""
    with SimulatedCluster(
        tmp_path_factory.mktemp("uc"),
        nodes=2,
        imp=2,
        time_scale=1000,
        version="14SU1",
        federation=["imp1"],
        ports="random",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("UC Types")


def post(sim: SimulatedCluster, node: str, path: str, body: object):  # type: ignore[no-untyped-def]
    return session(sim, node).post(base_url(sim, node) + CERTMGR + path, json=body)


def get(sim: SimulatedCluster, node: str, path: str):  # type: ignore[no-untyped-def]
    return session(sim, node).get(base_url(sim, node) + CERTMGR + path)


def csr_of(response) -> x509.CertificateSigningRequest:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return x509.load_pem_x509_csr(response.json()["csr"].encode())


def presented(sim: SimulatedCluster, node: str, port: int, *, ec_only: bool = False) -> x509.Certificate:
    """The certificate a listener hands a client: any suite, or ECDSA suites only."""
    info = node_info(sim, node)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # which certificate is shown, not whether it verifies
    if ec_only:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE+aECDSA")
    local = info.https_port if port == 8443 else info.tls_ports[port]
    with socket.create_connection((info.address, local), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def restart(sim: SimulatedCluster, node: str, service: str) -> None:
    n = sim.cluster.node(node)
    sim.cluster.control(n, service, "Restart")
    assert sim.cluster.wait_started(n, service, 30)


def trust_chain(sim: SimulatedCluster, node: str, service: str, ca: TestCA) -> None:
    r = post(sim, node, "trust/certificates", {"service": [service], "certificates": ca.chain_pems()})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------- inventory


def test_every_type_a_node_carries_with_trust_stores(sim: SimulatedCluster) -> None:
    snap = get(sim, PUB, "snapshot/server").json()
    assert {i["service"] for i in snap["identities"]} == {
        "tomcat", "CallManager", "ipsec", "CAPF", "TVS", "tomcat-ECDSA", "CallManager-ECDSA", "ITLRecovery",
    }  # fmt: skip
    snap = get(sim, IMP1, "snapshot/server").json()
    assert {i["service"] for i in snap["identities"]} == {
        "tomcat", "ipsec", "cup", "cup-xmpp", "cup-xmpp-s2s",
        "tomcat-ECDSA", "cup-ECDSA", "cup-xmpp-ECDSA", "cup-xmpp-s2s-ECDSA",
    }  # fmt: skip
    assert {t["service"] for t in snap["trusts"]} == {
        "tomcat-trust",
        "ipsec-trust",
        "cup-trust",
        "cup-xmpp-trust",
    }
    # The EC twins have EC keys, the RSA types RSA keys; both twins' self-signed certificates are
    # in the one shared trust store of every node.
    pub = sim.cluster.node(PUB)
    assert isinstance(pub.identities["tomcat-ECDSA"].installed.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(pub.identities["tomcat"].installed.public_key(), rsa.RSAPublicKey)
    sub_trust = sim.cluster.node(SUB).trust["tomcat-trust"].values()
    assert pub.identities["tomcat-ECDSA"].installed in sub_trust
    assert pub.identities["tomcat"].installed in sub_trust
    imp2_store = sim.cluster.node(IMP2).trust["cup-xmpp-trust"].values()
    imp1 = sim.cluster.node(IMP1)
    assert imp1.identities["cup-xmpp"].installed in imp2_store
    assert imp1.identities["cup-xmpp-s2s"].installed in imp2_store


def test_twins_exist_from_14_only_and_stores_are_shared() -> None:
    old = Cluster(nodes=1, imp=1, version="12.5.1.11900-146")
    try:
        assert "tomcat-ECDSA" not in old.publisher.identities
        assert "cup-xmpp" in old.node("imp1").identities  # IM&P types on every release
    finally:
        old.stop_clock()
    assert trust_store("CallManager-ECDSA") == "CallManager-trust"
    assert trust_store("cup-xmpp-s2s-ECDSA") == "cup-xmpp-trust"
    assert trust_store("cup-ECDSA") == "cup-trust"


def test_federation_services_and_ports(sim: SimulatedCluster) -> None:
    imp1, imp2 = sim.cluster.node(IMP1), sim.cluster.node(IMP2)
    assert imp1.services[FED].status() == "Started"
    assert imp2.services[FED].status() == "Stopped"
    assert imp2.services[FED].reason()[1] == "Service Not Activated"
    with pytest.raises(CucmError, match="Service Not Activated"):
        sim.cluster.control(imp2, FED, "Restart")
    assert {5061, 5062, 5222, 5269} <= set(node_info(sim, IMP1).tls_ports)
    assert 5269 not in node_info(sim, IMP2).tls_ports
    assert 5222 in node_info(sim, IMP2).tls_ports
    for name in ("Cisco SIP Proxy", "Cisco Presence Engine", "Cisco XCP Router"):
        assert imp2.services[name].status() == "Started"


# ---------------------------------------------------------------------------- EC CSRs


def test_ec_csr_over_rest_on_each_curve(sim: SimulatedCluster) -> None:
    for length, digest in ((256, "sha256"), (384, "sha384")):
        body = {
            "service": "tomcat-ECDSA",
            "distribution": "this-server",
            "keyType": "ec",
            "keyLength": length,
        }
        body["hashAlgorithm"] = digest
        csr = csr_of(post(sim, SUB, "csr", body))
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size == length
        assert csr.signature_hash_algorithm is not None and csr.signature_hash_algorithm.name == digest
        assert csr.is_signature_valid


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            {"service": "tomcat-ECDSA", "keyType": "ec", "keyLength": 384, "hashAlgorithm": "sha256"},
            WEAK_HASH.format(hash="SHA256", length=384, choices="SHA384 or SHA512"),
        ),
        ({"service": "tomcat-ECDSA", "keyType": "ec", "keyLength": 521}, EC_KEY_LENGTH.format(length=521)),
        (
            {"service": "tomcat-ECDSA", "keyType": "rsa", "keyLength": 2048},
            KEY_TYPE_MISMATCH.format(key_type="rsa", cert_type="tomcat-ECDSA", expected="EC"),
        ),
        (
            {"service": "tomcat", "keyType": "ec", "keyLength": 256},
            KEY_TYPE_MISMATCH.format(key_type="ec", cert_type="tomcat", expected="RSA"),
        ),
        ({"service": "ipsec", "distribution": MULTI_SERVER}, MULTI_SERVER_TYPE.format(cert_type="ipsec")),
        ({"service": "cup", "distribution": MULTI_SERVER}, MULTI_SERVER_TYPE.format(cert_type="cup")),
    ],
)
def test_csr_refusals_carry_cucm_text(sim: SimulatedCluster, body: dict[str, object], text: str) -> None:
    node = IMP1 if body["service"] == "cup" else PUB
    r = post(sim, node, "csr", body)
    assert r.status_code == 400
    assert r.json()["message"] == text


def test_cli_generates_an_ec_csr_and_describes_ec_keys(sim: SimulatedCluster) -> None:
    cluster, node = sim.cluster, sim.cluster.node(SUB)
    out = run_command(cluster, node, "set csr gen CallManager-ECDSA", ["yes"])
    assert "Successfully Generated CSR for CallManager-ECDSA." in out
    csr = x509.load_pem_x509_csr(run_command(cluster, node, "show csr own CallManager-ECDSA").encode())
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    shown = run_command(cluster, node, "show cert own tomcat-ECDSA")
    assert "Key: EC (256 bits)" in shown and "SHA256withECDSA" in shown


# ---------------------------------------------------------------------------- renewals and ports


def test_callmanager_ecdsa_is_presented_to_ecdsa_clients_after_callmanager_restarts(
    sim: SimulatedCluster, ca: TestCA
) -> None:
    trust_chain(sim, PUB, "CallManager-ECDSA", ca)  # lands in CallManager-trust, shared with the RSA twin
    body = {"service": "CallManager-ECDSA", "keyType": "ec", "keyLength": 384, "hashAlgorithm": "sha384"}
    leaf = ca.sign(pem_of(csr_of(post(sim, PUB, "csr", body))))
    rsa_before = presented(sim, PUB, 5061)
    r = post(sim, PUB, "identity/certificates", {"service": "CallManager-ECDSA", "certificates": [pem(leaf)]})
    assert r.status_code == 201, r.text
    assert presented(sim, PUB, 5061, ec_only=True) != leaf  # installed, not yet presented
    restart(sim, PUB, "Cisco CallManager")
    assert presented(sim, PUB, 5061, ec_only=True) == leaf
    assert presented(sim, PUB, 6971, ec_only=True) == leaf
    # RSA stays preferred: a client offering every suite still gets the RSA CallManager certificate.
    assert presented(sim, PUB, 5061) == rsa_before
    assert isinstance(presented(sim, PUB, 2443, ec_only=False).public_key(), rsa.RSAPublicKey)


@pytest.mark.parametrize(
    ("cert_type", "port", "presenter", "bystander"),
    [
        ("cup", 5061, "Cisco SIP Proxy", "Cisco Presence Engine"),
        ("cup-xmpp", 5222, "Cisco XCP Router", "Cisco XCP Connection Manager"),
        ("cup-xmpp-s2s", 5269, FED, "Cisco XCP Router"),
    ],
)
def test_imp_type_is_presented_once_its_service_restarts(
    sim: SimulatedCluster, ca: TestCA, cert_type: str, port: int, presenter: str, bystander: str
) -> None:
    trust_chain(sim, IMP1, cert_type, ca)
    leaf = ca.sign(pem_of(csr_of(post(sim, IMP1, "csr", {"service": cert_type}))))
    r = post(sim, IMP1, "identity/certificates", {"service": cert_type, "certificates": [pem(leaf)]})
    assert r.status_code == 201, r.text
    restart(sim, IMP1, bystander)
    assert presented(sim, IMP1, port) != leaf
    restart(sim, IMP1, presenter)
    assert presented(sim, IMP1, port) == leaf
    if cert_type == "cup":
        assert presented(sim, IMP1, 5062) == leaf


def test_tomcat_ecdsa_on_8443_only_with_ec_https_ciphers(tmp_path: Path) -> None:
    with SimulatedCluster(
        tmp_path, nodes=1, time_scale=1000, https_ciphers="all", ports="random"
    ) as all_ciphers:
        shown = presented(all_ciphers, PUB, 8443, ec_only=True)
        assert shown == all_ciphers.cluster.publisher.identities["tomcat-ECDSA"].presented
        assert isinstance(presented(all_ciphers, PUB, 8443).public_key(), rsa.RSAPublicKey)


def test_rsa_ciphers_only_keeps_ecdsa_off_8443(sim: SimulatedCluster) -> None:
    with pytest.raises(ssl.SSLError):
        presented(sim, PUB, 8443, ec_only=True)


# ---------------------------------------------------------------------------- multi-server


def test_multi_server_csr_names_every_node_and_upload_is_distributed(
    sim: SimulatedCluster, ca: TestCA
) -> None:
    r = post(sim, SUB, "csr", {"service": "tomcat", "distribution": MULTI_SERVER})
    assert r.status_code == 400
    assert r.json()["message"] == MULTI_SERVER_NODE.format(publisher="cucm-pub.example.com")
    csr = csr_of(post(sim, PUB, "csr", {"service": "tomcat", "distribution": MULTI_SERVER}))
    names = [n.name for n in sim.cluster.nodes]
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cucm-pub-ms.example.com"
    assert sans(csr) == names  # CUCM and IM&P nodes
    trust_chain(sim, PUB, "tomcat", ca)
    leaf = ca.sign(pem_of(csr))
    r = post(sim, PUB, "identity/certificates", {"service": "tomcat", "certificates": [pem(leaf)]})
    assert r.status_code == 201, r.text
    assert r.json()["servers"] == names
    for node in (PUB, SUB, IMP1, IMP2):
        got = get(sim, node, "identity/certificate?service=tomcat").json()["certificate"]
        assert x509.load_pem_x509_certificate(got.encode()) == leaf
    # Each node presents it once its own Tomcat restarts.
    restart(sim, SUB, "Cisco Tomcat")
    assert sim.cluster.node(SUB).identities["tomcat"].presented == leaf
    assert sim.cluster.node(PUB).identities["tomcat"].presented != leaf


def test_callmanager_multi_server_names_cucm_nodes_only(sim: SimulatedCluster) -> None:
    csr = csr_of(
        post(
            sim, PUB, "csr", {"service": "CallManager-ECDSA", "distribution": MULTI_SERVER, "keyLength": 256}
        )
    )
    assert (
        csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cucm-pub-EC-ms.example.com"
    )
    assert sans(csr) == ["cucm-pub.example.com", "cucm-sub1.example.com"]
    csr = csr_of(post(sim, IMP1, "csr", {"service": "cup-xmpp", "distribution": MULTI_SERVER}))
    assert sans(csr) == ["imp1.example.com", "imp2.example.com"]


def test_a_node_added_later_is_not_covered() -> None:
    ca = TestCA("Later")
    cluster = Cluster(nodes=2, version="14.0.1.11900-132")
    try:
        pub = cluster.publisher
        csr = cluster.generate_csr(pub, "tomcat", multi_server=True)
        cluster.upload_trust(pub, ["tomcat"], ca.chain_pems())
        late = cluster.add_node("cucm-sub2.example.com")
        leaf, nodes = cluster.upload_identity_to(pub, "tomcat", [pem(ca.sign(pem_of(csr)))])
        assert nodes == ["cucm-pub.example.com", "cucm-sub1.example.com"]
        assert late.identities["tomcat"].installed != leaf
        assert late.identities["tomcat"].installed.issuer == late.identities["tomcat"].installed.subject
        assert "cucm-sub2.example.com" not in [v.value for v in leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value]  # fmt: skip
    finally:
        cluster.stop_clock()


def test_from_14su2_multi_server_uploads_are_gui_only(tmp_path: Path) -> None:
    ca = TestCA("GUI only")
    with SimulatedCluster(tmp_path, nodes=2, time_scale=1000, version="14SU2", ports="random") as su2:
        trust_chain(su2, PUB, "tomcat", ca)
        leaf = ca.sign(
            pem_of(csr_of(post(su2, PUB, "csr", {"service": "tomcat", "distribution": MULTI_SERVER})))
        )
        r = post(su2, PUB, "identity/certificates", {"service": "tomcat", "certificates": [pem(leaf)]})
        assert r.status_code == 400
        assert r.json()["message"] == MULTI_SERVER_UPLOAD_GUI_ONLY
        pub = su2.cluster.publisher
        out = run_command(su2.cluster, pub, "set cert import own tomcat", [*pem(leaf).splitlines(), ""])
        assert MULTI_SERVER_UPLOAD_GUI_ONLY in out and "Executed command unsuccessfully" in out
        # The OS Administration GUI still takes it, and CUCM distributes it.
        _, nodes = su2.cluster.upload_identity_to(pub, "tomcat", [pem(leaf)], via="gui")
        assert nodes == ["cucm-pub.example.com", "cucm-sub1.example.com"]
        # A node-based upload is unaffected.
        trust_chain(su2, SUB, "CallManager", ca)
        leaf = ca.sign(pem_of(csr_of(post(su2, SUB, "csr", {"service": "CallManager"}))))
        r = post(su2, SUB, "identity/certificates", {"service": "CallManager", "certificates": [pem(leaf)]})
        assert r.status_code == 201, r.text


def test_cli_import_of_a_multi_server_certificate_lists_each_node(sim: SimulatedCluster, ca: TestCA) -> None:
    csr = csr_of(post(sim, PUB, "csr", {"service": "TVS", "distribution": MULTI_SERVER}))
    trust_chain(sim, PUB, "TVS", ca)
    leaf = ca.sign(pem_of(csr))
    out = run_command(
        sim.cluster, sim.cluster.publisher, "set cert import own TVS", [*pem(leaf).splitlines(), ""]
    )
    assert "Certificate upload operation successful\ncucm-pub.example.com\ncucm-sub1.example.com\n" in out
    assert sim.cluster.node(SUB).identities["TVS"].installed == leaf


# ---------------------------------------------------------------------------- ITLRecovery


def test_itl_recovery_validity_is_configurable() -> None:
    cluster = Cluster(nodes=1, itl_recovery_days=30)
    try:
        pub = cluster.publisher
        left = pub.identities["ITLRecovery"].installed.not_valid_after_utc - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=29) < left <= dt.timedelta(days=30)
        cert = cluster.regenerate(pub, "ITLRecovery")
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30)
    finally:
        cluster.stop_clock()


# ---------------------------------------------------------------------------- helpers


def pem_of(csr: x509.CertificateSigningRequest) -> str:
    from cryptography.hazmat.primitives import serialization

    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sans(obj: x509.CertificateSigningRequest | x509.Certificate) -> list[str]:
    ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)]
