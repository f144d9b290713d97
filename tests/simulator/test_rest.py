"""certmgr REST: CSRs, uploads validated with CUCM's texts, trust rules, auth, tomcat swap on restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulator.cluster.certificates import BAD_FORMAT, EXPIRED, KEY_TOO_LARGE, OLDER_SAME_CN, WILDCARD
from simulator.pki import KEY_USAGE

from .conftest import CERTMGR, TestCA, base_url, node_info, pem, renew, session, ssh_client, wait_for


def post(sim, node, path, body, account="platform"):
    return session(sim, node, account).post(base_url(sim, node) + CERTMGR + path, json=body)


def get(sim, node, path, account="platform"):
    return session(sim, node, account).get(base_url(sim, node) + CERTMGR + path)


def new_csr(sim, node, cert_type, alt_names=None):
    body = {"service": cert_type, "distribution": "this-server", "commonName": node_info(sim, node).name}
    if alt_names:
        body["altNames"] = alt_names
    r = post(sim, node, "csr", body)
    assert r.status_code == 200, r.text
    return r.json()["csr"]


def upload_chain(sim, node, cert_type, ca):
    r = post(sim, node, "trust/certificates", {"service": [cert_type], "certificates": ca.chain_pems()})
    assert r.status_code == 201, r.text


def identity(sim, node, cert_type, certs):
    return post(sim, node, "identity/certificates", {"service": cert_type, "certificates": certs})


def presented_fingerprint(sim, node) -> str:
    info = node_info(sim, node)
    ctx = ssl.create_default_context(cafile=sim.info.ca_bundle)
    with (
        socket.create_connection((info.address, info.https_port), timeout=30) as raw,
        ctx.wrap_socket(raw, server_hostname=info.name) as tls,
    ):
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


@pytest.mark.parametrize("cert_type", ["tomcat", "CallManager", "ipsec", "CAPF", "TVS"])
def test_csr_subject_san_and_key_usage(sim, cert_type):
    csr = x509.load_pem_x509_csr(new_csr(sim, "cucm-pub", cert_type).encode())
    assert csr.is_signature_valid
    name = "cucm-pub.example.com"
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == name
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]
    ku = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    ds, ke, de, kcs = KEY_USAGE[cert_type]
    assert (ku.digital_signature, ku.key_encipherment, ku.data_encipherment, ku.key_cert_sign) == (
        ds,
        ke,
        de,
        kcs,
    )
    eku = list(csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert (x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5") in eku) == (cert_type == "ipsec")
    assert csr.public_key().key_size == 2048


def test_new_csr_replaces_old_with_new_key(sim):
    first = x509.load_pem_x509_csr(new_csr(sim, "cucm-sub1", "ipsec").encode())
    second = x509.load_pem_x509_csr(new_csr(sim, "cucm-sub1", "ipsec").encode())
    assert first.public_key().public_numbers() != second.public_key().public_numbers()
    r = get(sim, "cucm-sub1", "identity/certificate?service=ipsec")
    assert x509.load_pem_x509_csr(r.json()["csr"].encode()).public_key().public_numbers() == (
        second.public_key().public_numbers()
    )


def test_imp_node_has_imp_types_and_no_cucm_ones(sim):
    r = get(sim, "imp1", "snapshot/server")
    assert r.status_code == 200
    assert sorted(i["service"] for i in r.json()["identities"]) == [
        "cup", "cup-ECDSA", "cup-xmpp", "cup-xmpp-ECDSA", "cup-xmpp-s2s", "cup-xmpp-s2s-ECDSA",
        "ipsec", "tomcat", "tomcat-ECDSA",
    ]  # fmt: skip
    r = post(sim, "imp1", "csr", {"service": "CallManager", "commonName": "imp1.example.com"})
    assert r.status_code == 400
    assert "CallManager" in r.json()["message"]


def test_chain_missing_from_trust_store(sim):
    ca = TestCA("Untrusted")
    leaf = ca.sign(new_csr(sim, "cucm-sub1", "TVS"))
    r = identity(sim, "cucm-sub1", "TVS", [pem(leaf)])
    assert r.status_code == 400
    assert r.json()["message"] == "CA Certificate is Not Available in the Trust-Store"
    assert set(r.json()) == {"status", "message", "trackingId"}


def test_no_csr(sim, test_ca):
    upload_chain(sim, "cucm-sub2", "CAPF", test_ca)
    csr = new_csr(sim, "cucm-sub2", "CAPF")
    leaf = test_ca.sign(csr)
    assert identity(sim, "cucm-sub2", "CAPF", [pem(leaf)]).status_code == 201
    # The import consumed the CSR: the same upload again finds none.
    r = identity(sim, "cucm-sub2", "CAPF", [pem(leaf)])
    assert r.status_code == 400
    assert r.json()["message"] == "File /usr/local/platform/.security/CAPF/keys/CAPF.csr Does Not Exist"


def test_public_key_mismatch(sim, test_ca):
    upload_chain(sim, "cucm-sub1", "CallManager", test_ca)
    old = new_csr(sim, "cucm-sub1", "CallManager")
    new_csr(sim, "cucm-sub1", "CallManager")  # replaces the first, with a new key
    r = identity(sim, "cucm-sub1", "CallManager", [pem(test_ca.sign(old))])
    assert r.status_code == 400
    assert r.json()["message"] == "CSR Public Key and Certificate Public Key Do Not Match"


@pytest.mark.parametrize(
    ("sans", "ip_san"),
    [
        (["cucm-sub2.example.com", "extra.example.com"], None),  # a SAN the CSR did not ask for
        (["other.example.com"], None),  # the CSR's SAN is missing
        (["cucm-sub2.example.com"], "127.0.0.1"),  # a CA that adds an IP SAN
    ],
)
def test_san_mismatch(sim, test_ca, sans, ip_san):
    upload_chain(sim, "cucm-sub2", "tomcat", test_ca)
    leaf = test_ca.sign(new_csr(sim, "cucm-sub2", "tomcat"), sans=sans, ip_san=ip_san)
    r = identity(sim, "cucm-sub2", "tomcat", [pem(leaf)])
    assert r.status_code == 400
    assert r.json()["message"] == "CSR SAN and Certificate SAN Does Not Match"


def test_san_order_is_ignored_and_der_accepted(sim, test_ca):
    upload_chain(sim, "cucm-sub2", "ipsec", test_ca)
    csr = new_csr(sim, "cucm-sub2", "ipsec", alt_names=["a.example.com", "b.example.com"])
    leaf = test_ca.sign(csr, sans=["b.example.com", "cucm-sub2.example.com", "a.example.com"])
    import base64

    der = base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
    r = identity(sim, "cucm-sub2", "ipsec", [der])
    assert r.status_code == 201, r.text
    assert r.json()["message"] == "Successfully uploaded"


def test_format_wildcard_and_key_size(sim, test_ca):
    r = identity(sim, "cucm-pub", "ipsec", ["this is not a certificate"])
    assert r.status_code == 400 and r.json()["message"] == BAD_FORMAT
    upload_chain(sim, "cucm-pub", "ipsec", test_ca)
    wild = test_ca.sign(new_csr(sim, "cucm-pub", "ipsec"), sans=["*.example.com"])
    r = identity(sim, "cucm-pub", "ipsec", [pem(wild)])
    assert r.status_code == 400 and r.json()["message"] == WILDCARD
    # Only the public half matters to the check; generating a real 4160-bit key would take seconds.
    big = rsa.RSAPublicNumbers(65537, (1 << 4159) | secrets.randbits(4158) << 1 | 1).public_key()
    huge = test_ca.sign(new_csr(sim, "cucm-pub", "ipsec"), public_key=big)
    r = identity(sim, "cucm-pub", "ipsec", [pem(huge)])
    assert r.status_code == 400 and r.json()["message"] == KEY_TOO_LARGE
    r = post(sim, "cucm-pub", "trust/certificates", {"service": ["ipsec"], "certificates": [pem(huge)]})
    assert r.status_code == 400 and r.json()["message"] == KEY_TOO_LARGE
    rejected = [u["reason"] for u in sim.state()["uploads_rejected"]]
    assert WILDCARD in rejected and KEY_TOO_LARGE in rejected


def test_same_cn_trust_rules(sim):
    now = dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    newer = TestCA._ca("Same CN CA", key, None, None, now, not_before=now - dt.timedelta(days=1))
    older = TestCA._ca("Same CN CA", key, None, None, now, not_before=now - dt.timedelta(days=30))
    expired = TestCA._ca("Expired CA", key, None, None, now - dt.timedelta(days=5000))
    r = post(sim, "cucm-sub1", "trust/certificates", {"service": ["TVS"], "certificates": [pem(expired)]})
    assert r.status_code == 400 and r.json()["message"] == EXPIRED
    assert (
        post(
            sim, "cucm-sub1", "trust/certificates", {"service": ["TVS"], "certificates": [pem(newer)]}
        ).status_code
        == 201
    )
    r = post(sim, "cucm-sub1", "trust/certificates", {"service": ["TVS"], "certificates": [pem(older)]})
    assert r.status_code == 400 and r.json()["message"] == OLDER_SAME_CN
    listed = get(sim, "cucm-sub1", "trust/certificate?service=TVS").json()["certificates"]
    same = [c for c in listed if "Same_CN_CA" in c["filename"]]
    assert len(same) == 1
    assert x509.load_pem_x509_certificate(same[0]["certificate"].encode()).not_valid_before_utc > (
        now - dt.timedelta(days=2)
    )


def test_trust_replicates_except_capf(sim):
    ca = TestCA("Replication")
    assert (
        post(
            sim, "cucm-sub1", "trust/certificates", {"service": ["tomcat"], "certificates": [pem(ca.root)]}
        ).status_code
        == 201
    )
    assert (
        post(
            sim,
            "cucm-sub1",
            "trust/certificates",
            {"service": ["CAPF"], "certificates": [pem(ca.intermediate)]},
        ).status_code
        == 201
    )

    def names(node, svc):
        return {
            c["filename"] for c in get(sim, node, f"trust/certificate?service={svc}").json()["certificates"]
        }

    assert "Replication_Root_CA.pem" in names("cucm-pub", "tomcat")
    assert "Replication_Root_CA.pem" in names("imp1", "tomcat")
    assert "Replication_Issuing_CA.pem" in names("cucm-sub1", "CAPF")
    assert "Replication_Issuing_CA.pem" not in names("cucm-pub", "CAPF")


def test_wrong_kind_of_user_gets_401(sim):
    r = post(sim, "cucm-pub", "csr", {"service": "tomcat"}, account="axl")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = get(sim, "cucm-pub", "snapshot/server", account=None)
    assert r.status_code == 401
    s = session(sim, "cucm-pub", "platform")
    r = s.post(
        base_url(sim, "cucm-pub") + "/axl/",
        data="<x/>",
        headers={"SOAPAction": '"CUCM:DB ver=14.0 getCCMVersion"'},
    )
    assert r.status_code == 401
    s.auth = (sim.info.axl.username, "wrong")
    r = s.post(base_url(sim, "cucm-pub") + "/realtimeservice2/services/RISService70", data="<x/>")
    assert r.status_code == 401


def test_snapshot_shape(sim):
    body = get(sim, "cucm-pub", "snapshot/server").json()
    assert body["server"] == "cucm-pub.example.com"
    # ITLRecovery (12.0+, publisher only) is listed like the others (modelled: part 2 section 3 [U]).
    assert {i["service"] for i in body["identities"]} == {
        "tomcat",
        "CallManager",
        "ipsec",
        "CAPF",
        "TVS",
        "ITLRecovery",
        "tomcat-ECDSA",
        "CallManager-ECDSA",
    }
    trust = {t["service"]: t["certificate_data"] for t in body["trusts"]}
    assert "tomcat-trust" in trust
    files = {c["filename"] for c in trust["tomcat-trust"]}
    assert {"cucm-pub.example.com.pem", "cucm-sub1.example.com.pem"} <= files
    cm_trust = {c["filename"] for c in trust["CallManager-trust"]}
    assert {"cucm-pub.example.com.pem", "CAPF-cucm-pub.example.com.pem"} <= cm_trust
    assert body["revokedCertificates"] == []


def test_tomcat_presented_only_after_restart(sim, test_ca):
    before = presented_fingerprint(sim, "cucm-sub1")
    leaf = renew(sim, test_ca, "cucm-sub1", "tomcat")
    leaf_fp = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    sim.trust_ca(pem(test_ca.root))
    # Installed (the API shows it) but not presented until Cisco Tomcat restarts.
    shown = get(sim, "cucm-sub1", "identity/certificate?service=tomcat").json()["certificate"]
    assert x509.load_pem_x509_certificate(shown.encode()) == leaf
    assert presented_fingerprint(sim, "cucm-sub1") == before
    assert sim.state()["presented"]["cucm-sub1.example.com"]["tomcat"] == before
    client = ssh_client(sim, "cucm-sub1")
    try:
        _, out, _ = client.exec_command("utils service restart Cisco Tomcat", timeout=60)
        text = out.read().decode()
    finally:
        client.close()
    assert text.index("[STOPPING]") < text.index("[STARTING]") < text.index("[RUNNING]")
    wait_for(lambda: presented_fingerprint(sim, "cucm-sub1") == leaf_fp, what="the new tomcat certificate")
    assert sim.state()["presented"]["cucm-sub1.example.com"]["tomcat"] == leaf_fp
    assert sim.state()["restarts"]["cucm-sub1.example.com"]["Cisco Tomcat"]
    with open(sim.info.ca_bundle) as fh:
        bundle = fh.read()
    assert pem(test_ca.root) in bundle
