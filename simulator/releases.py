"""The CUCM releases the simulator can be: one table, one row per release, each fact with its source.

A row says what a client can observe that differs by release: the version string (AXL
``getCCMVersion``, CLI ``show version active``), the AXL schema versions accepted in SOAPAction and
namespace, whether certmgr REST exists, whether ``set csr gen`` asks ``Include OU in CSR
(yes|no)?``, and whether the HAProxy TLS ports 6971/6972 listen. Source keys are those of the CUCM
reference (parts 1 and 2); ``AXLV`` is Cisco's "AXL Versioning Support" page (developer.cisco.com,
axl-versioning). The build numbers are plausible picks, not checked against Cisco's download pages,
except 15SU2's, which is a real lab's (CTM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# AXLV: from 10.0, release N keeps the schemas of the two major releases before it and drops
# N-3.*; its own examples: 10.0 serves 8.x-10.0, 11.0 serves 9.x-11.0. There was no 13, so the
# reading for 14 and 15 ("two major release cycles" back: 14 keeps 11.x and 12.x, 15 keeps 12.x
# and 14.0) is an inference [I].
_AXL_9_TO_11_5 = ("9.0", "9.1", "10.0", "10.5", "11.0", "11.5")
_AXL_10_TO_12_5 = ("10.0", "10.5", "11.0", "11.5", "12.0", "12.5")
_AXL_11_TO_14 = ("11.0", "11.5", "12.0", "12.5", "14.0")
_AXL_12_TO_15 = ("12.0", "12.5", "14.0", "15.0")


@dataclass(frozen=True)
class Release:
    name: str
    """What ``simulate --version`` takes: ``11.5``, ``12.5``, ``14``, ``14SU1`` ..."""
    version: str
    """The full version string, e.g. ``14.0.1.13900-155``."""
    axl_versions: tuple[str, ...]
    certmgr_rest: bool
    include_ou_prompt: bool
    haproxy_ports: bool
    source: str

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def ccm_version(self) -> str:
        """As AXL ``getCCMVersion`` prints it: ``14.0.1.13900(155)``."""
        return re.sub(r"-(\d+)$", r"(\1)", self.version)


RELEASES: tuple[Release, ...] = (
    Release(
        "11.5",
        "11.5.1.10000-6",
        _AXL_9_TO_11_5,
        False,
        False,
        False,
        "AXLV; no REST below 14 (S1, S3 README); OU prompt from 14SU1 (SG14); 6971/6972 not in any "
        "source for 11.5 [U]",
    ),
    Release(
        "12.5",
        "12.5.1.11900-146",
        _AXL_10_TO_12_5,
        False,
        False,
        True,
        "AXLV; no REST below 14 (S1); 6971/6972 authenticate with CallManager/tomcat (SG125SU1-DS)",
    ),
    Release(
        "14",
        "14.0.1.10000-20",
        _AXL_11_TO_14,
        True,
        False,
        True,
        "AXLV [I for 14]; certmgr REST from 14 (S1); OU prompt only from 14SU1 (SG14)",
    ),
    Release(
        "14SU1",
        "14.0.1.11900-132",
        _AXL_11_TO_14,
        True,
        True,
        True,
        "`Include OU in CSR (yes|no)?` from 14SU1 (SG14, part 1 section 2)",
    ),
    Release("14SU2", "14.0.1.12900-161", _AXL_11_TO_14, True, True, True, "as 14SU1 (SG14 14SU2 guide)"),
    Release("14SU3", "14.0.1.13900-155", _AXL_11_TO_14, True, True, True, "as 14SU1"),
    Release(
        "15",
        "15.0.1.10000-32",
        _AXL_12_TO_15,
        True,
        True,
        True,
        "AXLV [I for 15]; REST (S1); ports 6971/6972 in the 15 cipher table (CM15)",
    ),
    Release(
        "15SU2", "15.0.1.12900-234", _AXL_12_TO_15, True, True, True, "version seen on a real 15 lab (CTM)"
    ),
)

DEFAULT = "14SU3"


class UnknownRelease(ValueError):
    pass


def _build(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.split(r"[.-]", version) if p.isdigit())


def release(name_or_version: str) -> Release:
    """The row for a release name (``14SU2``) or a full version string.

    A full version string not in the table takes the row of the same major.minor with the highest
    build not above it (``15.0.1.11000-5`` is a 15 as far as these facts go), keeping its own string.
    """
    text = name_or_version.strip()
    for r in RELEASES:
        if text.lower() in (r.name.lower(), r.version):
            return r
    if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+-\d+", text):
        raise UnknownRelease(
            f"unknown CUCM release {text!r}: use one of {', '.join(r.name for r in RELEASES)} or a full "
            "version string such as 14.0.1.13900-155"
        )
    same = [r for r in RELEASES if r.major_minor == ".".join(text.split(".")[:2])]
    older = [r for r in same if _build(r.version) <= _build(text)]
    if not same:
        raise UnknownRelease(
            f"CUCM {text} is not a release the simulator models: use "
            f"{', '.join(sorted({r.major_minor for r in RELEASES}))}"
        )
    row = max(older or same[:1], key=lambda r: _build(r.version))
    return Release(row.name, text, *_rest(row))


def _rest(row: Release) -> tuple[tuple[str, ...], bool, bool, bool, str]:
    return row.axl_versions, row.certmgr_rest, row.include_ou_prompt, row.haproxy_ports, row.source


def multi_server_upload_by_api(version: str) -> bool:
    """Whether certmgr REST and the CLI take a multi-server (SAN) certificate upload: not from 14SU2,
    whose guide says to use the OS Administration GUI (SG14) [C for the CLI; I for REST]."""
    build = _build(version)
    return build < _build("14.0.1.12900-161")
