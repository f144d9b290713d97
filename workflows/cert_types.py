"""The certificate types the workflows manage, by CUCM's own names."""

from __future__ import annotations

CERT_TYPES = ("tomcat", "ipsec", "CAPF", "CallManager", "TVS")
"""In the default campaign order: tomcat, ipsec, CAPF, CallManager, TVS (TVS last, after CallManager)."""
