"""The AD CS simulator, checked with a client written against real AD CS: PyPI ``certsrv`` 2.1.1,
unmodified. It builds ``https://{server}/certsrv/...`` itself and parses the pages with its own
regular expressions, so what it accepts is what the adapter may rely on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import certsrv
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from simulator.adcs import AdcsServer, running

USERS = {"alice": "Al1ce-Passw0rd"}


@pytest.fixture(scope="module")
def sim() -> Iterator[AdcsServer]:
    with running(USERS) as server:
        yield server


@pytest.fixture(scope="module")
def csr() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = "cucm-pub.example.com"
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def client(sim: AdcsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> certsrv.Certsrv:
    # certsrv's cafile is session-wide, which these variables override in requests.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    bundle = tmp_path / "root.pem"
    bundle.write_text(sim.root_pem)
    return certsrv.Certsrv(
        sim.server, "EXAMPLE\\alice", USERS["alice"], auth_method="ntlm", cafile=str(bundle)
    )


def make(sim: AdcsServer, tmp_path: Path, auth: str, password: str = USERS["alice"]) -> certsrv.Certsrv:
    bundle = tmp_path / "root.pem"
    bundle.write_text(sim.root_pem)
    return certsrv.Certsrv(sim.server, "EXAMPLE\\alice", password, auth_method=auth, cafile=str(bundle))


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_certsrv_obtains_a_certificate_issued_by_the_ca(
    sim: AdcsServer, csr: str, tmp_path: Path, auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    client = make(sim, tmp_path, auth)
    assert client.check_credentials()
    pem = client.get_cert(csr, "CUCM-Services")
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(sim.issuing_pem.encode()))
    assert cert.public_key() == x509.load_pem_x509_csr(csr.encode()).public_key()
    der = client.get_cert(csr, "CUCM-Services", encoding="bin")
    assert x509.load_der_x509_certificate(der).subject == cert.subject


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_certsrv_sees_a_wrong_password(
    sim: AdcsServer, tmp_path: Path, auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    assert make(sim, tmp_path, auth, password="not-it").check_credentials() is False


def test_certsrv_sees_a_pending_request_then_fetches_it_once_approved(
    sim: AdcsServer, csr: str, client: certsrv.Certsrv
) -> None:
    with pytest.raises(certsrv.CertificatePendingException) as info:
        client.get_cert(csr, "CUCM-Services-Approval")
    req_id = info.value.req_id
    with pytest.raises(certsrv.CouldNotRetrieveCertificateException, match="Taken Under Submission"):
        client.get_existing_cert(req_id)
    sim.approve(int(req_id))
    x509.load_pem_x509_certificate(client.get_existing_cert(req_id))


def test_certsrv_sees_an_officers_denial(sim: AdcsServer, csr: str, client: certsrv.Certsrv) -> None:
    with pytest.raises(certsrv.CertificatePendingException) as info:
        client.get_cert(csr, "CUCM-Services-Approval")
    sim.deny(int(info.value.req_id))
    with pytest.raises(certsrv.CouldNotRetrieveCertificateException, match=r"Denied by EXAMPLE\\certmgr"):
        client.get_existing_cert(info.value.req_id)


def test_certsrv_sees_template_errors_as_denials(sim: AdcsServer, csr: str, client: certsrv.Certsrv) -> None:
    with pytest.raises(certsrv.RequestDeniedException, match=r"0x80094800.*not supported.*: Web Server"):
        client.get_cert(csr, "Web Server")
    with pytest.raises(certsrv.RequestDeniedException, match="0x80094012"):
        client.get_cert(csr, "CUCM-Restricted")
    with pytest.raises(certsrv.RequestDeniedException, match="Error Parsing Request"):
        client.get_cert("not a CSR", "CUCM-Services")


def test_certsrv_fetches_the_ca_certificate_and_chain(sim: AdcsServer, client: certsrv.Certsrv) -> None:
    assert (
        x509.load_pem_x509_certificate(client.get_ca_cert()).subject
        == x509.load_pem_x509_certificate(sim.issuing_pem.encode()).subject
    )
    chain = pkcs7.load_der_pkcs7_certificates(client.get_chain())
    assert {c.subject.rfc4514_string() for c in chain} == {
        "CN=EXAMPLE-ISSUING-CA,DC=example,DC=com",
        "CN=EXAMPLE-ISSUING-CA-Root,DC=example,DC=com",
    }
    armoured = client.get_chain(encoding="b64")
    assert armoured.startswith(b"-----BEGIN CERTIFICATE-----")  # PKCS#7 in CERTIFICATE armour


def test_without_credentials_iis_offers_its_schemes(sim: AdcsServer, tmp_path: Path) -> None:
    bundle = tmp_path / "root.pem"
    bundle.write_text(sim.root_pem)
    answer = requests.get(f"{sim.url}/", verify=str(bundle), timeout=10)
    assert answer.status_code == 401
    assert answer.raw.headers.getlist("WWW-Authenticate") == [
        "Negotiate",
        "NTLM",
        'Basic realm="ca.example.com"',
    ]
    assert "401 - Unauthorized: Access is denied due to invalid credentials." in answer.text
    assert answer.headers["Server"] == "Microsoft-IIS/10.0"


def test_standalone_process_writes_its_description_and_takes_admin_calls(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-m", "simulator.adcs", "--dir", str(tmp_path)], env=env)
    try:
        info_file = tmp_path / "adcs.json"
        deadline = time.monotonic() + 60
        while not info_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        assert os.stat(info["password_file"]).st_mode & 0o077 == 0
        password = Path(info["password_file"]).read_text().strip()
        auth = (info["username"], password)
        bundle = info["ca_bundle"]
        assert requests.get(f"{info['url']}/", auth=auth, verify=bundle, timeout=10).status_code == 200
        admin = {"X-Sim-Token": info["admin_token"]}
        base = info["url"].replace("/certsrv", "/__sim__")
        assert requests.get(f"{base}/requests", verify=bundle, timeout=10).status_code == 403
        assert requests.get(f"{base}/requests", headers=admin, verify=bundle, timeout=10).json() == []
        assert (
            requests.post(f"{base}/requests/1/approve", headers=admin, verify=bundle, timeout=10).status_code
            == 409
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
