"""Every case of the bad-input corpus (tests/data/badcerts/cases.json) through the pre-flight."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from workflows import preflight

CORPUS = Path(__file__).resolve().parent.parent / "data" / "badcerts"
MANIFEST = json.loads((CORPUS / "cases.json").read_text())
NOW = datetime.fromisoformat(MANIFEST["now"])
CASES: list[dict[str, Any]] = MANIFEST["cases"]


def _run(case: dict[str, Any]) -> preflight.ValidatedCertificate:
    trusted = [x509.load_pem_x509_certificate((CORPUS / f).read_bytes()) for f in case["trusted"]]
    files = [(name, (CORPUS / name).read_bytes()) for name in case["files"]]
    csr_pem = (CORPUS / case["csr"]).read_text()
    return preflight.preflight(
        case["cert_type"],
        csr_pem,
        files,
        trusted_roots=trusted,
        now=NOW,
        multi_server_nodes=case.get("multi_server_nodes", ()),
        keep_names=case.get("keep_names", ()),
    )


def test_corpus_is_large_enough_and_covers_every_error_class() -> None:
    assert len(CASES) >= 30
    expected = {c["expect"] for c in CASES}
    leaves = {
        name
        for name, obj in vars(preflight).items()
        if isinstance(obj, type) and issubclass(obj, preflight.PreflightError) and not obj.__subclasses__()
    }
    assert leaves <= expected, f"error classes without a corpus case: {sorted(leaves - expected)}"
    for case in CASES:
        for name in [*case["files"], case["csr"], *case["trusted"]]:
            assert (CORPUS / name).is_file(), name


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"] == "ok"], ids=lambda c: c["name"])
def test_valid_inputs_pass(case: dict[str, Any]) -> None:
    result = _run(case)
    assert result.fingerprint_sha256 == case["leaf_sha256"]
    leaf = x509.load_pem_x509_certificate(result.leaf_pem.encode())
    assert hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest() == case["leaf_sha256"]
    assert result.serial == leaf.serial_number
    assert result.not_after == leaf.not_valid_after_utc
    # chain_pems runs from the leaf's issuer up to a root.
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in result.chain_pems]
    assert chain, "every valid case has an issuer"
    leaf.verify_directly_issued_by(chain[0])
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    assert chain[-1].subject == chain[-1].issuer
    if "trust_to_upload" in case:
        assert len(result.trust_to_upload) == case["trust_to_upload"]
    # Upload order: every certificate's issuer is already trusted or uploaded before it.
    known = {x509.load_pem_x509_certificate((CORPUS / f).read_bytes()).subject for f in case["trusted"]}
    for pem in result.trust_to_upload:
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert cert.issuer == cert.subject or cert.issuer in known
        known.add(cert.subject)


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"] != "ok"], ids=lambda c: c["name"])
def test_bad_inputs_are_refused_with_the_cucm_error_and_the_fix(case: dict[str, Any]) -> None:
    with pytest.raises(preflight.PreflightError) as caught:
        _run(case)
    err = caught.value
    assert type(err).__name__ == case["expect"], str(err)
    message = str(err)
    assert case["message"] in message
    assert "Uploading it would lead to" in message and "Fix: " in message
    assert err.fix and err.fix in message
    assert not re.search(r"[A-Za-z0-9+/]{40,}", message), "messages never echo file contents"
