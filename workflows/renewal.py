"""Whether a certificate is due for renewal: one pure decision for ``check`` and the expiry step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class RenewalPolicy:
    renew_before_days: float
    """Renew when fewer than this many days remain (exactly this many is not yet due)."""
    force: bool = False
    """Renew whatever remains (``run --force``)."""


@dataclass(frozen=True)
class RenewalDue:
    due: bool
    reason: str
    """For an operator: why it is, or is not, due."""
    days_left: float
    """Days until the certificate expires; negative once it has."""


def renewal_due(certificate: x509.Certificate, now: datetime, policy: RenewalPolicy) -> RenewalDue:
    """Decide for ``certificate`` at ``now`` (an aware datetime) under ``policy``.

    Due when fewer than ``renew_before_days`` remain (an expired certificate always is), or when
    the policy forces it.
    """
    left = (certificate.not_valid_after_utc - now).total_seconds() / SECONDS_PER_DAY
    threshold = policy.renew_before_days
    if left < 0:  # notAfter itself is still within validity
        return RenewalDue(True, f"expired {-left:.0f} days ago", left)
    if left < threshold:
        return RenewalDue(True, f"expires in {left:.0f} days, within {threshold:g} days", left)
    if policy.force:
        return RenewalDue(True, f"expires in {left:.0f} days; renewal forced", left)
    return RenewalDue(False, f"expires in {left:.0f} days; renewal starts {threshold:g} days before", left)
