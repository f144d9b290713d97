"""Reading the platform CLI's output: pure functions, no I/O.

CUCM's CLI texts vary a little across releases (one or two spaces, capitalisation), so matches are
regular expressions on the stable words, and an unrecognised answer is an error carrying the
CLI's own lines rather than a guess.
"""

from __future__ import annotations

import re

from adapters.cucm.port import ClusterMember, CtlStatus, LicenseStatus, ReplicationRow, ReplicationState

PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<kind>CERTIFICATE|CERTIFICATE REQUEST|NEW CERTIFICATE REQUEST)-----"
    r"[A-Za-z0-9+/=\s]+?-----END (?P=kind)-----"
)
CSR_GENERATED = re.compile(r"Successfully\s+Generated\s+CSR", re.IGNORECASE)
IMPORTED = re.compile(r"Successfully\s+imported", re.IGNORECASE)
INCLUDE_OU = re.compile(r"Include\s+OU\s+in\s+CSR.*\(\s*yes\s*\|\s*no\s*\)", re.IGNORECASE)
ACTIVE_VERSION = re.compile(r"Active Master Version:\s*(\S+)")
SERVICE_STATE = re.compile(r"\[(STOPPING|STOPPED|STARTING|STARTED|RUNNING|NOTRUNNING|FAILED)\]")
_ERROR_LINE = re.compile(
    r"(error|unsuccessful|invalid|does not exist|do not match|does not match|not available|"
    r"failed|not found|cannot|denied|not allowed|usage:)",
    re.IGNORECASE,
)


def pem_blocks(output: str, kind: str = "CERTIFICATE") -> list[str]:
    """Every PEM block of ``kind`` in the output, normalised to ``\\n`` lines and a final newline."""
    found = []
    for match in PEM_BLOCK.finditer(output):
        if match.group("kind").endswith(kind) and (kind != "CERTIFICATE" or match.group("kind") == kind):
            lines = [line.strip() for line in match.group(0).splitlines() if line.strip()]
            found.append("\n".join(lines) + "\n")
    return found


def error_text(output: str) -> str:
    """The CLI's error lines (verbatim, joined), or the whole output trimmed when none stands out."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    chosen = errors or lines
    return " / ".join(chosen)[:500] if chosen else "no output"


def sso_enabled(output: str) -> bool | None:
    """``utils sso status``: True/False, or None when the output says neither."""
    lines = [line for line in output.splitlines() if "sso" in line.lower() or "status" in line.lower()]
    for line in lines or output.splitlines():
        lowered = line.lower()
        if "disabled" in lowered or "not enabled" in lowered:
            return False
        if "enabled" in lowered:
            return True
    return None


def drs_running(output: str) -> bool | None:
    """``utils disaster_recovery status backup|restore``: is an operation in progress?

    None when the output is not a DRS status at all.
    """
    lowered = output.lower()
    if "no backup" in lowered or "no restore" in lowered or "no active" in lowered:
        return False
    status = re.search(r"status\s*:\s*(.+)", output, re.IGNORECASE)
    if status:
        value = status.group(1).strip().lower()
        if any(word in value for word in ("in progress", "in_progress", "running", "started")):
            return True
        if any(word in value for word in ("success", "completed", "error", "fail", "idle", "cancel")):
            pct = re.search(r"percentage\s+complete\s*:\s*(\d+)", output, re.IGNORECASE)
            return bool(pct and int(pct.group(1)) < 100 and "success" not in value and "error" not in value)
    pct = re.search(r"percentage\s+complete\s*:\s*(\d+)", output, re.IGNORECASE)
    if pct:
        return int(pct.group(1)) < 100
    if "in progress" in lowered or "running" in lowered:
        return True
    return None


def service_states(output: str) -> list[str]:
    """The ``[STATE]`` markers of ``utils service restart`` in order (``STOPPING``, ``STARTING`` ...)."""
    return SERVICE_STATE.findall(output)


def listed_state(output: str, service: str) -> str | None:
    """``utils service list``: the ``[STATE]`` of ``service`` (``STARTED``, ``STARTING`` ...), or
    ``None`` when it is not listed."""
    for line in output.splitlines():
        name, bracket, rest = line.strip().partition("[")
        if bracket and name.strip() == service:
            return rest.split("]", 1)[0].strip().upper()
    return None


def trust_files(output: str, store: str) -> list[str]:
    """``show cert list trust``: the ``store/file`` entries of one trust store (e.g. ``tomcat-trust``)."""
    files = []
    for line in output.splitlines():
        entry = line.strip().split(":", 1)[0].strip()
        if entry.startswith(f"{store}/"):
            files.append(entry)
    return files


# --------------------------------------------------------------------------- readiness (part 2 §7)

_REPLICATION_ROW = re.compile(
    r"^(?P<server>\S+)\s+(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]+:[0-9a-fA-F:]*)\s+.*?"
    r"\((?P<code>\d)\)\s*(?P<text>[A-Za-z][A-Za-z ]*?)\s*$"
)


def replication_state(output: str) -> ReplicationState | None:
    """``utils dbreplication runtimestate``: each server's row and Replicate_State code (PCD14's
    "REPLICATION SETUP (RTMT) & Details" column). ``None`` when the output is not that command's."""
    rows = []
    in_table = False
    for line in output.splitlines():
        if line.strip().startswith("SERVER-NAME"):
            in_table = True
            continue
        if not in_table or not line.strip() or line.strip().startswith("---"):
            continue
        match = _REPLICATION_ROW.match(line.strip())
        if match:
            code = int(match["code"])
            rows.append(ReplicationRow(match["server"], match["ip"], code, f"({code}) {match['text']}"))
    if rows:
        return ReplicationState(tuple(rows))
    lowered = output.lower()
    for marker in ("single active node", "cisco db is not running", "not running"):
        if marker in lowered:
            return ReplicationState((), note=error_text(output) if marker != "single active node" else
                                    " ".join(output.split()))  # fmt: skip
    return None


_NETWORK_LINE = re.compile(
    r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3})\s+(?P<fqdn>\S+)\s+(?P<host>\S+)\s+(?P<role>Publisher|Subscriber)"
    r"\s+(?P<product>\S+)\s+(?P<db>\S+)(?:\s+(?P<auth>.*))?$",
    re.IGNORECASE,
)


def network_cluster(output: str) -> list[ClusterMember]:
    """``show network cluster``: one member per node line (T215013); the processnode table the
    publisher adds after them is not a member list and is skipped."""
    members = []
    for line in output.splitlines():
        match = _NETWORK_LINE.match(line.strip())
        if not match:
            continue
        auth = (match["auth"] or "").lower()
        authenticated = bool(re.match(r"authenticated\b", auth))
        members.append(
            ClusterMember(
                ip=match["ip"],
                fqdn=match["fqdn"],
                host=match["host"],
                role=match["role"],
                product=match["product"],
                db_role=match["db"],
                authenticated=authenticated,
            )
        )
    return members


def ctl_status(output: str) -> CtlStatus | None:
    """``show ctl`` (T118893): no CTL (``Length of CTL file: 0`` / ``CTL File not found``), or the
    SUBJECTNAME of the record marked ``This etoken was used to sign the CTL file.``; a hardware
    token is a ``SAST-ADN`` subject issued by ``Cisco Manufacturing CA``. ``None``: not recognised."""
    if re.search(r"Length of CTL file:\s*0\b", output) or "CTL File not found" in output:
        return CtlStatus(present=False)
    marker = "This etoken was used to sign the CTL file."
    if marker not in output:
        return None
    record = output.split(marker, 1)[0].rsplit("CTL Record", 1)[-1]
    subject = re.search(r"SUBJECTNAME\s+\d+\s+(.+)", record)
    issuer = re.search(r"ISSUERNAME\s+\d+\s+(.+)", record)
    signer = subject.group(1).strip() if subject else ""
    token = "SAST-ADN" in signer.upper() or bool(issuer and "Cisco Manufacturing CA" in issuer.group(1))
    return CtlStatus(present=True, signer=signer, token=token)


def license_status(output: str) -> LicenseStatus:
    """``show license all`` / ``show license summary`` (T212915): the Registration block's
    ``Status:`` and ``Export-Controlled Functionality:``. Subscribers and releases without Smart
    Licensing print nothing: both values are then ``None``."""
    registration = output.split("Registration:", 1)[1] if "Registration:" in output else ""
    block = registration.split("License Authorization:", 1)[0]
    status = re.search(r"Status:\s*(\S+)", block)
    export = re.search(r"Export-Controlled Functionality:\s*(.+)", output, re.IGNORECASE)
    registered = None if status is None else status.group(1).upper() == "REGISTERED"
    allowed = None
    if export is not None:
        value = export.group(1).strip().lower()
        allowed = value.startswith("allowed")
    return LicenseStatus(registered, allowed, status.group(1) if status else "")


def own_units(output: str) -> list[str]:
    """``show cert list own``: the unit of each ``unit/unit.pem: description`` line (15 layout), or of
    each ``Unit:`` line (the older block layout), in order, without repeats."""
    units: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        match = re.match(r"([A-Za-z][\w-]*)/[^/\s:]+\.pem\s*:", text) or re.match(r"Unit\s*:\s*(\S+)", text)
        if match and match.group(1) not in units:
            units.append(match.group(1))
    return units


UPLOAD_LIST = re.compile(r"Certificate\s+upload\s+operation\s+successful", re.IGNORECASE)


def upload_servers(output: str) -> list[str]:
    """The servers listed under "Certificate upload operation successful" after a multi-server upload
    (T118731's list), up to the first line that is not a host name; [] when there is no list."""
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if UPLOAD_LIST.search(line):
            servers = []
            for name in lines[i + 1 :]:
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", name):
                    break
                servers.append(name)
            return servers
    return []
