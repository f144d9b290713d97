"""renewal_due: the one decision `check` and the expiry step share, at its boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workflows.renewal import RenewalPolicy, renewal_due

NOT_AFTER = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pub.lab")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_AFTER - timedelta(days=365))
        .not_valid_after(NOT_AFTER)
        .sign(key, hashes.SHA256())
    )


def test_exactly_renew_before_days_left_is_not_yet_due(cert: x509.Certificate) -> None:
    result = renewal_due(cert, NOT_AFTER - timedelta(days=30), RenewalPolicy(30))
    assert not result.due
    assert result.days_left == 30
    assert "30 days" in result.reason


def test_a_moment_inside_the_window_is_due(cert: x509.Certificate) -> None:
    result = renewal_due(cert, NOT_AFTER - timedelta(days=30) + timedelta(seconds=1), RenewalPolicy(30))
    assert result.due
    assert "within 30 days" in result.reason


def test_fractional_windows_are_honoured(cert: x509.Certificate) -> None:
    assert renewal_due(cert, NOT_AFTER - timedelta(hours=11), RenewalPolicy(0.5)).due
    assert not renewal_due(cert, NOT_AFTER - timedelta(hours=13), RenewalPolicy(0.5)).due


def test_an_expired_certificate_is_due_and_says_so(cert: x509.Certificate) -> None:
    result = renewal_due(cert, NOT_AFTER + timedelta(days=3), RenewalPolicy(30))
    assert result.due
    assert result.days_left == -3
    assert result.reason == "expired 3 days ago"


def test_expired_even_with_a_zero_window(cert: x509.Certificate) -> None:
    assert renewal_due(cert, NOT_AFTER + timedelta(seconds=1), RenewalPolicy(0)).due
    # notAfter itself is the last valid moment.
    assert not renewal_due(cert, NOT_AFTER, RenewalPolicy(0)).due


def test_force_renews_what_is_not_due(cert: x509.Certificate) -> None:
    now = NOT_AFTER - timedelta(days=200)
    assert not renewal_due(cert, now, RenewalPolicy(30)).due
    forced = renewal_due(cert, now, RenewalPolicy(30, force=True))
    assert forced.due
    assert "forced" in forced.reason
    assert forced.days_left == 200


def test_force_keeps_the_real_reason_when_due_anyway(cert: x509.Certificate) -> None:
    result = renewal_due(cert, NOT_AFTER + timedelta(days=1), RenewalPolicy(30, force=True))
    assert result.due and result.reason.startswith("expired")
