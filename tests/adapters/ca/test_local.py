from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from adapters.ca.local import LocalCA
from adapters.ca.port import CaMisconfigured, CaRejected, Issued, csr_sha256
from adapters.ca.profiles import IPSEC_END_SYSTEM, PROFILES
from tests.adapters.ca.conftest import MakeCsr
from workflows import preflight

REPO = Path(__file__).resolve().parents[3]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def issue(ca: LocalCA, csr: str, cert_type: str = "tomcat") -> Issued:
    result = ca.submit(csr, cert_type=cert_type, node="cucm-pub")
    assert isinstance(result, Issued)
    return result


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_folder_and_key_files_are_private(tmp_path: Path, make_csr: MakeCsr) -> None:
    folder = tmp_path / "state" / "ca"
    ca = LocalCA(folder)
    issue(ca, make_csr(0))
    assert mode(folder) == 0o700 and mode(folder / "issued") == 0o700
    for name in ("root.key", "intermediate.key", "root.pem", "intermediate.pem"):
        assert mode(folder / name) == 0o600, name
    (issued,) = (folder / "issued").iterdir()
    assert mode(issued) == 0o600
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")], "no temporary file is left"


def test_the_chain_has_two_levels_and_verifies(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = LocalCA(tmp_path / "ca")
    result = issue(ca, make_csr(0))
    leaf, (inter, root) = load(result.leaf_pem), [load(p) for p in result.chain_pems]
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert result.chain_pems == ca.chain_pems and ca.root_pem == result.chain_pems[1]
    assert root.subject != inter.subject
    # A second CA gets names of its own: CUCM keeps one trust certificate per CN.
    other = LocalCA(tmp_path / "other")
    assert load(other.root_pem).subject != root.subject


def test_leaf_carries_the_csr_subject_and_sans_unchanged(tmp_path: Path, make_csr: MakeCsr) -> None:
    csr_pem = make_csr(0, "cucm-sub1.example.com", ["cucm-sub1.example.com", "sub1", "voice.example.com"])
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    leaf = load(issue(LocalCA(tmp_path / "ca"), csr_pem).leaf_pem)
    assert leaf.subject == csr.subject
    assert leaf.public_key() == csr.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [
        "cucm-sub1.example.com",
        "sub1",
        "voice.example.com",
    ]
    assert san.critical is False


@pytest.mark.parametrize("cert_type", sorted(PROFILES))
def test_key_usages_follow_the_profile_and_pass_preflight(
    tmp_path: Path, make_csr: MakeCsr, cert_type: str
) -> None:
    use_ec = cert_type.endswith("-ECDSA")
    csr = make_csr(1, use_ec=use_ec)
    ca = LocalCA(tmp_path / "ca")
    result = issue(ca, csr, cert_type)
    leaf = load(result.leaf_pem)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ku.critical and bc.critical
    assert eku[:2] == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    # IPsec End System: ipsec, and the IM&P types and their twins (IMP125).
    assert (IPSEC_END_SYSTEM in eku) == (cert_type == "ipsec" or cert_type.startswith("cup"))
    assert ku.value.digital_signature
    if cert_type == "CAPF":
        assert ku.value.key_cert_sign and bc.value.ca and bc.value.path_length == 0
        assert not ku.value.key_encipherment
    else:
        assert not bc.value.ca and not ku.value.key_cert_sign
        assert ku.value.key_encipherment == ku.value.data_encipherment == (not use_ec)
    # What the local CA signs, the pre-flight accepts: one profile table for both.
    validated = preflight.validate_issued(cert_type, csr, result, trusted_roots=[], now=datetime.now(UTC))
    assert validated.fingerprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex()
    assert len(validated.trust_to_upload) == 2


def test_validity_serial_and_clock(tmp_path: Path, make_csr: MakeCsr) -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ca = LocalCA(tmp_path / "ca", validity_days=90, clock=lambda: now)
    leaf = load(issue(ca, make_csr(0)).leaf_pem)
    assert leaf.not_valid_after_utc == now + timedelta(days=90)
    assert now - timedelta(minutes=10) < leaf.not_valid_before_utc <= now
    serials = {load(issue(ca, make_csr(i)).leaf_pem).serial_number for i in range(6)}
    assert len(serials) == 6
    assert all(0 < s < 2**159 for s in serials)
    assert max(s.bit_length() for s in serials) > 150, "serials are random 159-bit numbers"


def test_validity_is_clamped_to_the_issuing_ca(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = LocalCA(tmp_path / "ca", validity_days=100 * 365)
    leaf = load(issue(ca, make_csr(0)).leaf_pem)
    assert leaf.not_valid_after_utc == load(ca.chain_pems[0]).not_valid_after_utc


def test_same_csr_same_certificate_even_after_a_restart(tmp_path: Path, make_csr: MakeCsr) -> None:
    folder = tmp_path / "ca"
    csr = make_csr(0)
    first = issue(LocalCA(folder), csr)
    assert issue(LocalCA(folder), csr) == first
    assert issue(LocalCA(folder), csr.replace("\n", "\r\n")) == first
    assert (folder / "issued" / f"{csr_sha256(csr)}.pem").read_text() == first.leaf_pem
    assert issue(LocalCA(folder), make_csr(1)).leaf_pem != first.leaf_pem


def test_the_idempotency_key_returns_what_was_issued_across_instances(
    tmp_path: Path, make_csr: MakeCsr
) -> None:
    folder = tmp_path / "ca"
    csr = make_csr(0)
    first = LocalCA(folder).submit(csr, cert_type="tomcat", node="cucm-pub", idempotency_key="req-1")
    assert isinstance(first, Issued)
    # A new instance on the folder, as after a SIGKILL between the CA's answer and its record.
    again = LocalCA(folder).submit(csr, cert_type="tomcat", node="cucm-pub", idempotency_key="req-1")
    assert again == first
    assert (folder / "issued" / "req-1.pem").read_text() == first.leaf_pem
    # Another key names another request: a new certificate for the same key pair.
    other = LocalCA(folder).submit(csr, cert_type="tomcat", node="cucm-pub", idempotency_key="req-2")
    assert isinstance(other, Issued)
    assert load(other.leaf_pem).serial_number != load(first.leaf_pem).serial_number
    # The workflows' key is the CSR's digest, which is also the default.
    assert (
        issue(LocalCA(folder), csr).leaf_pem
        == LocalCA(folder)
        .submit(csr, cert_type="tomcat", node="cucm-pub", idempotency_key=csr_sha256(csr))
        .leaf_pem
    )  # type: ignore[union-attr]
    assert len(list((folder / "issued").iterdir())) == 3


def test_a_key_reused_for_another_public_key_or_malformed_is_refused(
    tmp_path: Path, make_csr: MakeCsr
) -> None:
    ca = LocalCA(tmp_path / "ca")
    ca.submit(make_csr(0), cert_type="tomcat", node="cucm-pub", idempotency_key="req-1")
    with pytest.raises(CaRejected, match="req-1 was used before for another public key"):
        ca.submit(make_csr(1), cert_type="tomcat", node="cucm-sub1", idempotency_key="req-1")
    for bad in ("", "../../root", "a b", "x" * 129):
        with pytest.raises(ValueError, match="idempotency key"):
            ca.submit(make_csr(1), cert_type="tomcat", node="cucm-sub1", idempotency_key=bad)
    assert sorted(p.name for p in (tmp_path / "ca" / "issued").iterdir()) == ["req-1.pem"]


def test_concurrent_signing_from_many_threads(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = LocalCA(tmp_path / "ca")
    csrs = [make_csr(i, f"node{i}.example.com") for i in range(4)]
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(4):
                i = (t + k) % 4
                results.append((i, issue(ca, csrs[i]).leaf_pem))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    assert len(results) == 32
    by_csr: dict[int, set[str]] = {}
    for i, pem in results:
        by_csr.setdefault(i, set()).add(pem)
    assert all(len(v) == 1 for v in by_csr.values()), "one certificate per CSR"
    assert len({next(iter(v)) for v in by_csr.values()}) == 4
    assert len(list((tmp_path / "ca" / "issued").iterdir())) == 4


def test_two_processes_creating_the_same_ca_agree(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    code = (
        "import sys; from adapters.ca.local import LocalCA; "
        "print(LocalCA(sys.argv[1]).root_pem.splitlines()[1])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = {p.communicate(timeout=120)[0] for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1 and LocalCA(folder).root_pem.splitlines()[1] + "\n" in outs


def test_a_shared_folder_or_key_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    LocalCA(folder)
    os.chmod(folder, 0o755)  # noqa: S103 - the point of the test
    with pytest.raises(CaMisconfigured, match="chmod 700") as caught:
        LocalCA(folder)
    assert caught.value.key == "ca.local.folder"
    os.chmod(folder, 0o700)
    os.chmod(folder / "root.key", 0o644)
    with pytest.raises(CaMisconfigured, match=r"mode 0644.*chmod 600"):
        LocalCA(folder)


def test_a_folder_of_mismatched_files_is_refused(tmp_path: Path) -> None:
    a, b = LocalCA(tmp_path / "a"), LocalCA(tmp_path / "b")
    del a, b
    (tmp_path / "a" / "intermediate.pem").write_bytes((tmp_path / "b" / "intermediate.pem").read_bytes())
    with pytest.raises(CaMisconfigured, match="does not match"):
        LocalCA(tmp_path / "a")
    for name in ("intermediate.pem", "intermediate.key"):
        (tmp_path / "a" / name).write_bytes((tmp_path / "b" / name).read_bytes())
    with pytest.raises(CaMisconfigured, match=r"was not issued by root\.pem"):
        LocalCA(tmp_path / "a")
    (tmp_path / "b" / "root.key").unlink()
    with pytest.raises(CaMisconfigured, match="has no private key"):
        LocalCA(tmp_path / "b")


def test_an_interrupted_creation_starts_over(tmp_path: Path, make_csr: MakeCsr) -> None:
    folder = tmp_path / "ca"
    LocalCA(folder)
    # A crash after writing the root key but before its certificate leaves a lone key.
    (folder / "root.pem").unlink()
    old_key = (folder / "root.key").read_bytes()
    ca = LocalCA(folder)
    assert (folder / "root.key").read_bytes() != old_key
    result = issue(ca, make_csr(0))
    load(result.chain_pems[0]).verify_directly_issued_by(load(ca.root_pem))


def test_bad_requests_are_rejected(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = LocalCA(tmp_path / "ca")
    with pytest.raises(CaRejected, match="no certificate profile for type 'Phone-SAST'"):
        ca.submit(make_csr(0), cert_type="Phone-SAST", node="imp1")
    with pytest.raises(CaRejected, match="unreadable certificate request for imp1"):
        ca.submit("garbage", cert_type="tomcat", node="imp1")
    pem = make_csr(0)
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER))
    der[-5] ^= 0xFF  # damage the signature
    body = base64.encodebytes(bytes(der)).decode()
    damaged = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CaRejected, match="invalid signature"):
        ca.submit(damaged, cert_type="tomcat", node="n")
    with pytest.raises(CaRejected, match="no pending request"):
        ca.poll("anything")
    with pytest.raises(CaMisconfigured, match="validity_days"):
        LocalCA(tmp_path / "x", validity_days=0)
