"""The certificate types the workflows manage, by CUCM's own names."""

from __future__ import annotations

CERT_TYPES = ("tomcat", "ipsec", "CAPF", "CallManager", "TVS")
"""The procedure's five types, in the default campaign order (TVS last, after CallManager): what a
cluster renews when its configuration names no ``types``."""

ECDSA_TYPES = ("tomcat-ECDSA", "CallManager-ECDSA")
"""The EC twins every CUCM 14+ node carries (SG14)."""

IMP_TYPES = ("cup", "cup-ECDSA", "cup-xmpp", "cup-xmpp-ECDSA", "cup-xmpp-s2s", "cup-xmpp-s2s-ECDSA")
"""What IM&P nodes carry besides tomcat and ipsec (IMP125)."""

ALL_TYPES = (
    "tomcat",
    "tomcat-ECDSA",
    "ipsec",
    "CAPF",
    "CallManager",
    "CallManager-ECDSA",
    "TVS",
    *IMP_TYPES,
)
"""Every type a workflow renews, in campaign order. The EC twins and the IM&P types are renewed
only where a cluster's ``types`` names them: many clusters leave them self-signed on purpose, and
a CA-signed one changes what their peers must trust."""

MULTI_SERVER_TYPES = frozenset(
    {"tomcat", "tomcat-ECDSA", "CallManager", "CallManager-ECDSA", "cup-xmpp", "cup-xmpp-ECDSA"}
)
"""Types a cluster may renew with one multi-server (SAN) certificate (CUCM reference part 2 §4a:
CA-signed multi-SAN for tomcat, CallManager and their twins, and cup-xmpp on IM&P)."""
