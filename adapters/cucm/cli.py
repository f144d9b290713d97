"""Reading the platform CLI's output: pure functions, no I/O.

CUCM's CLI texts vary a little across releases (one or two spaces, capitalisation), so matches are
regular expressions on the stable words, and an unrecognised answer is an error carrying the
CLI's own lines rather than a guess.
"""

from __future__ import annotations

import re

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


# `show network cluster`: "IP FQDN hostname Publisher|Subscriber callmanager|cups DBPub|DBSub
# authenticated ..." per node; the publisher then lists its processnode entries under a header.
_MEMBER = re.compile(
    r"^\s*(?P<ip>[0-9a-fA-F.:]+)\s+(?P<fqdn>\S+)\s+(?P<host>\S+)\s+(?P<role>Publisher|Subscriber)\s+"
    r"(?P<product>\S+)\s+(?P<db>\S+)",
    re.IGNORECASE,
)


def network_cluster(output: str) -> list[dict[str, str]]:
    """The members `show network cluster` lists: ``ip``, ``fqdn``, ``host``, ``role``, ``product``
    (``callmanager``/``cups``), ``db`` (``DBPub``/``DBSub``). The processnode block is skipped."""
    members = []
    for line in output.splitlines():
        if "Server Table" in line:
            break
        match = _MEMBER.match(line)
        if match:
            members.append({k: match.group(k) for k in ("ip", "fqdn", "host", "role", "product", "db")})
    return members


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
