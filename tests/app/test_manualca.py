"""Matching signed certificates to waiting CSRs by public key, and exporting CSRs, without a cluster:
real keys, a real local CA, files on disk."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.ca.local import LocalCA
from adapters.ca.port import Issued
from app.manualca import WaitingCsr, certificate_files, export_csrs, exported_at, match_certificates


@pytest.fixture(scope="module")
def keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]


def _csr(key: rsa.RSAPrivateKey, host: str) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


@pytest.fixture
def world(tmp_path: Path, keys: list[rsa.RSAPrivateKey]) -> tuple[list[WaitingCsr], LocalCA]:
    csrs = [
        WaitingCsr("r1", "east", "tomcat", "pub.east", _csr(keys[0], "pub.east"), "desk", True),
        WaitingCsr("r1", "east", "tomcat", "sub.east", _csr(keys[1], "sub.east"), "desk", True),
        WaitingCsr("r2", "west", "tomcat", "pub.west", _csr(keys[2], "pub.west"), "desk", True),
        WaitingCsr(
            "r0",
            "east",
            "ipsec",
            "pub.east",
            _csr(keys[3], "pub.east"),
            "desk",
            False,
            "run r0 is finished (done)",
        ),
    ]
    return csrs, LocalCA(tmp_path / "ca", name="corp")


def _leaf(ca: LocalCA, item: WaitingCsr) -> Issued:
    issued = ca.submit(item.csr_pem, cert_type=item.cert_type, node=item.node)
    assert isinstance(issued, Issued)
    return issued


def test_each_file_is_matched_by_key_and_gets_its_chain(
    tmp_path: Path, world: tuple[list[WaitingCsr], LocalCA]
) -> None:
    csrs, ca = world
    folder = tmp_path / "in"
    folder.mkdir()
    pub, sub = _leaf(ca, csrs[0]), _leaf(ca, csrs[1])
    # One file holds its whole chain (root first, as some CAs send it); the other is the leaf alone,
    # with the chain in a file of its own.
    (folder / "a.cer").write_text(pub.chain_pems[1] + pub.leaf_pem + pub.chain_pems[0])
    (folder / "b.cer").write_text(sub.leaf_pem)
    (folder / "chain.pem").write_text("".join(ca.chain_pems))
    (folder / "pub.east-tomcat.csr").write_text(csrs[0].csr_pem)
    files = certificate_files([str(folder)])
    assert [Path(f).name for f in files] == ["a.cer", "b.cer", "chain.pem"]
    items, refused = match_certificates(files, csrs, cluster="east")
    assert refused == []
    got = {(i.run_id, i.key, Path(i.source).name): i.data for i in items}
    assert set(got) == {("r1", "pub.east", "a.cer"), ("r1", "sub.east", "b.cer")}
    for (_, node, _), data in got.items():
        issued = pub if node == "pub.east" else sub
        assert data == {"leaf_pem": issued.leaf_pem, "chain_pems": list(issued.chain_pems)}


def test_refusals_name_the_file_and_the_fix(tmp_path: Path, world: tuple[list[WaitingCsr], LocalCA]) -> None:
    csrs, ca = world
    pub, west, old = _leaf(ca, csrs[0]), _leaf(ca, csrs[2]), _leaf(ca, csrs[3])
    stranger = ca.submit(_csr(rsa.generate_private_key(public_exponent=65537, key_size=2048), "x.north"),
                         cert_type="tomcat", node="x")  # fmt: skip
    assert isinstance(stranger, Issued)
    texts = {
        "junk.txt": "hello\n",
        "west.pem": west.leaf_pem + "".join(west.chain_pems),
        "old.pem": old.leaf_pem,
        "stranger.pem": stranger.leaf_pem + "".join(stranger.chain_pems),
        "two.pem": pub.leaf_pem + _leaf(ca, csrs[1]).leaf_pem,
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    items, refused = match_certificates([str(tmp_path / n) for n in texts], csrs, cluster="east")
    assert items == []
    why = {Path(r.submission.source).name: r.reason for r in refused}
    assert set(why) == set(texts)
    assert (
        why["junk.txt"].startswith(f"{tmp_path / 'junk.txt'} is not a certificate")
        and "Fix:" in why["junk.txt"]
    )
    assert "not a CSR of cluster east: submit it with --cluster west" in why["west.pem"]
    assert "run r0 is finished (done): nothing to do, take it out" in why["old.pem"]
    assert "answers none of the CSRs the runs recorded" in why["stranger.pem"]
    assert "several CSRs" in why["two.pem"] and "one per file" in why["two.pem"]
    # Without --cluster, the west certificate is as good as any.
    items, _ = match_certificates([str(tmp_path / "west.pem")], csrs, cluster=None)
    assert [(i.run_id, i.key) for i in items] == [("r2", "pub.west")]


def test_export_writes_each_csr_once_and_never_over_another_file(
    tmp_path: Path, world: tuple[list[WaitingCsr], LocalCA]
) -> None:
    csrs, _ = world
    state = tmp_path / "state"
    state.mkdir()
    out = tmp_path / "out"
    first = export_csrs(csrs[:2], out, state)
    assert [(e.path.name, e.written) for e in first] == [
        ("pub.east-tomcat.csr", True),
        ("sub.east-tomcat.csr", True),
    ]
    assert all(stat.S_IMODE(e.path.stat().st_mode) == 0o644 for e in first)
    assert exported_at(state, csrs[0]) == (out / "pub.east-tomcat.csr").resolve()
    assert [e.written for e in export_csrs(csrs[:2], out, state)] == [False, False]
    (out / "sub.east-tomcat.csr").write_text("another CSR\n")
    assert exported_at(state, csrs[1]) is None, "a file that changed no longer counts as the export"
    with pytest.raises(
        ValueError, match=re.escape("sub.east-tomcat.csr exists and is not sub.east's tomcat CSR")
    ):
        export_csrs(csrs[:3], out, state)
    assert not (out / "pub.west-tomcat.csr").exists(), "nothing is written when one file clashes"
