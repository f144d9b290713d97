"""The configuration file: one TOML file for every cluster, CA and policy.

Found at ``--config``, else ``$CUCM_RENEW_CONFIG``, else ``./cucm-renew.toml``. Relative paths in it
are relative to the file. Passwords are never written in it: each credential names an environment
variable (``password_env``) or a file (``password_file``) to read the password from, and the
password is held in a :class:`Secret` whose ``repr`` never shows it.

Every problem is a :class:`ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ca.profiles import profile_for
from engine.files import FileRefused, check_regular_file, read_small_file, read_small_text
from engine.logging import get_logger, register_secret
from engine.schema import ANY, BOOLEAN, INTEGER, LIST, NUMBER, TABLE, TEXT, TEXTS, Schema, SchemaError
from workflows.cert_types import ALL_TYPES, CERT_TYPES, MULTI_SERVER_TYPES
from workflows.itl_recovery import DEFAULT_ITL_RECOVERY_MIN_DAYS
from workflows.windows import WindowError, Windows, parse_windows

DEFAULT_FILE = "cucm-renew.toml"
ENV_VAR = "CUCM_RENEW_CONFIG"
CONFIG_LIMIT = 1024 * 1024
"""A configuration of many clusters is tens of kilobytes."""
SECRET_LIMIT = 64 * 1024
"""A password or key file; more is not a password."""
CA_KINDS = ("manual", "local", "command", "adcs", "acme")
DNS_KINDS = ("rfc2136", "hook")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
EAB_ALGORITHMS = ("HS256", "HS384", "HS512")
ROLES = ("publisher", "subscriber", "imp")
PHONE_RESET_METHODS = ("pools", "phones")
PHONE_INTERACTIONS = ("automatic", "manual")
DISTRIBUTIONS = ("single-server", "multi-server")
"""``distribution`` per type: one certificate per node (CUCM's default), or one multi-server (SAN)
certificate naming every node of the type's scope."""


class ConfigError(SchemaError):
    """The configuration is unusable: ``file``, ``key``, what is wrong and how to fix it. TOML's
    parser gives no line numbers, so ``line`` stays ``None``."""


@dataclass(frozen=True)
class Secret:
    """A password read from the environment or a file; never shown by ``repr`` or ``str``."""

    value: str = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        # From the moment it is read, the value is redacted wherever it would reach a log line or a
        # run's last error (a CUCM or CA message that echoes it back, say).
        register_secret(self.value)

    def __str__(self) -> str:
        return f"<secret from {self.source}>"


@dataclass(frozen=True)
class Credential:
    username: str
    password: Secret


@dataclass(frozen=True)
class NodeConfig:
    name: str
    role: str
    address: str
    https_port: int = 8443
    ssh_port: int = 22
    ports: Mapping[int, int] = field(default_factory=dict)
    """CUCM port -> the port actually reached (labs and the simulator); absent ports are as is."""
    processnode: str = ""
    """The node's name in CUCM's processnode table when that is not ``name`` (servers defined by
    IP address): how AXL and RisPort70 name it."""


@dataclass(frozen=True)
class DnsConfig:
    """How an ACME CA's DNS-01 records are published: ``rfc2136`` (dynamic update with TSIG) or
    ``hook`` (a program run with add/remove, the record name and value)."""

    kind: str
    server: str = ""
    port: int = 53
    zone: str = ""
    tsig_name: str = ""
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: Secret | None = None
    argv: tuple[str, ...] = ()
    timeout: float = 60.0
    check_servers: tuple[str, ...] = ()
    """Servers asked whether a record is visible before its challenge is answered."""


@dataclass(frozen=True)
class AcmeConfig:
    directory: str
    dns: DnsConfig
    ca_bundle: Path | None = None
    contact: tuple[str, ...] = ()
    account_folder: Path | None = None
    """None: ``acme-NAME`` in the state folder."""
    eab_kid: str = ""
    eab_hmac: Secret | None = None
    eab_algorithm: str = "HS256"
    profile: str = ""
    client_auth: bool = False
    """Whether this CA's certificates carry clientAuth: public ACME CAs are dropping it."""
    wait_seconds: float = 30.0


@dataclass(frozen=True)
class CaConfig:
    name: str
    kind: str
    folder: Path | None = None
    argv: tuple[str, ...] = ()
    timeout: float = 60.0
    adcs: AdcsSettings | None = None
    acme: AcmeConfig | None = None
    env: Mapping[str, Secret] = field(default_factory=dict)
    """``kind = "command"``: variables set for the program (its credentials), each read from an
    environment variable or a file, never written in the configuration or on ``argv``."""


@dataclass(frozen=True)
class AdcsSettings:
    """``kind = "adcs"``: an AD CS web-enrollment site. ``templates`` maps a CUCM type to its
    template, ``template`` serves the others; ``password_key`` is where the password came from."""

    url: str
    template: str
    templates: Mapping[str, str]
    ca_bundle: Path
    auth: str
    credential: Credential
    password_key: str


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: tuple[NodeConfig, ...]
    ca_bundle: Path
    known_hosts: Path
    platform: Credential
    axl: Credential
    ca: str
    ca_per_type: Mapping[str, str]
    renew_before_days: float
    types: tuple[str, ...]
    version: str | None = None
    """CUCM's version, if the file names it: a cluster reporting another release is refused.
    Unset, the release is read from the cluster (``show version active``) before anything else;
    14 and later use the certmgr REST API, older ones the SSH CLI."""
    use_rest: bool | None = None
    """``rest`` in the file: overrides what the version implies."""
    notify: tuple[str, ...] = ()
    """The ``[notify.NAME]`` targets told about this cluster's runs (opt-in: none by default)."""
    phone_reset: str = "phones"
    """How phones are reset: ``phones`` (AXL doDeviceReset per phone, throttled: only phones are
    touched) or ``pools`` (AXL resetDevicePool per device pool, phones in no pool by name: one
    request per pool, but every device in the pool restarts, gateways and trunks included)."""
    tomcat_client_auth: bool = True
    """``false``: tomcat certificates without clientAuth are accepted (an ACME CA's), giving up
    tomcat's TLS client uses (see :data:`adapters.ca.profiles.TOMCAT_CLIENT_USES`)."""

    extra_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Names every CSR of a node (key: its name or short name) or of a type (key: the type) carries
    besides those of the current certificate (``*``: every CSR)."""
    drop_names: tuple[str, ...] = ()
    """Names of the current certificates that the renewed ones may lose."""

    def names_policy(self) -> dict[str, Any]:
        """What the CSR step and pre-flight read from the run's context (``names_policy``)."""
        return {"extra": {k: list(v) for k, v in self.extra_names.items()}, "drop": list(self.drop_names)}

    def client_auth_waived(self, cert_type: str) -> bool:
        """Whether pre-flight accepts ``cert_type`` certificates without clientAuth here."""
        profile = profile_for(cert_type)
        return not self.tomcat_client_auth and profile is not None and bool(profile.waivable)

    risport_lag: float = 30.0
    """CUCM seconds RisPort70 may trail reality on this cluster (the RIS Data Collector gathers
    asynchronously), including the moment a reset phone takes to drop its registration: the phone
    steps wait that long before concluding from RisPort that a phone did
    not move (a reset whose answer was lost, phones CUCM's automatic reset missed)."""
    max_phones_missing: int = 0
    """Phones registered before a change that may stay unregistered after it before the run stops
    at a gate naming them (they are reported either way)."""
    phone_interaction: str | None = None
    """``automatic`` or ``manual``: the cluster's enterprise parameter "Phone Interaction on
    Certificate Update" (14+). Unset: the release's default (automatic from 14)."""
    windows: Windows | None = None
    """``timezone``, ``windows`` and ``blackout``: when an outage may start (see
    :mod:`workflows.windows`). ``None``: any time."""
    approval: bool = False
    """``approval = true``: each run stops before its outage until ``cucm-renew approve RUN``."""
    distribution: Mapping[str, str] = field(default_factory=dict)
    """Per type, ``multi-server`` or ``single-server`` (the top level's ``distribution`` with this
    cluster's over it); a type not named is single-server."""
    itl_recovery_min_days: float = DEFAULT_ITL_RECOVERY_MIN_DAYS
    """CallManager, CallManager-ECDSA and TVS runs stop at a gate when the publisher's ITLRecovery
    expires within this many days (see :mod:`workflows.itl_recovery` for the default's reason)."""

    def multi_server(self, cert_type: str) -> bool:
        return self.distribution.get(cert_type) == "multi-server"

    @property
    def rest(self) -> bool:
        if self.use_rest is not None:
            return self.use_rest
        return self.version is None or int(self.version.split(".")[0]) >= 14

    @property
    def axl_version(self) -> str | None:
        """The AXL schema to speak: the cluster's own major.minor, at most 14.0 (the schema the
        adapter is written against; CUCM accepts older schemas, never newer ones). ``None`` while
        the release is unknown."""
        if self.version is None:
            return None
        parts = self.version.split(".")
        try:
            own = (int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0)
        except ValueError:
            return "14.0"
        return "14.0" if own >= (14, 0) else f"{own[0]}.{own[1]}"

    @property
    def publisher(self) -> NodeConfig:
        return next(n for n in self.nodes if n.role == "publisher")

    def ca_for(self, cert_type: str) -> str:
        return self.ca_per_type.get(cert_type, self.ca)


NOTIFY_KINDS = ("webhook", "email")
NOTIFY_EVENTS = ("gate_waiting", "run_failed", "campaign_done", "window_missed", "expires_before_window")
"""What a ``[notify.NAME]`` target can be told about (``events``); ``app.notify`` documents each."""


@dataclass(frozen=True)
class NotifyConfig:
    """A ``[notify.NAME]`` target: a webhook (``url``, ``secret``) or an e-mail relay."""

    name: str
    kind: str
    events: tuple[str, ...]
    url: str = ""
    secret: Secret | None = None
    ca_bundle: Path | None = None
    """The CA bundle to verify the webhook's or the SMTP server's TLS certificate against (default:
    the system's)."""
    smtp_host: str = ""
    smtp_port: int = 587
    sender: str = ""
    recipients: tuple[str, ...] = ()
    username: str = ""
    password: Secret | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    renew_before_days: float
    types: tuple[str, ...]
    risport_per_minute: float
    time_scale: float
    clusters: Mapping[str, ClusterConfig]
    cas: Mapping[str, CaConfig]
    notices: tuple[str, ...] = ()
    """What the file gives up on purpose (a waiver), said at every load and by ``check``."""
    notify: Mapping[str, NotifyConfig] = field(default_factory=dict)
    audit: Mapping[str, Any] = field(default_factory=dict)
    """``[audit]``: ``key`` and ``log`` (paths, relative to this file), ``syslog`` (bool): where the
    audit trail is anchored (see engine/anchor.py); the command line and environment win."""

    def cluster(self, name: str) -> ClusterConfig:
        if name not in self.clusters:
            raise ConfigError(
                self.path,
                "clusters",
                f"no cluster named {name!r}",
                f"use one of: {', '.join(self.clusters) or '(none configured)'}, or add [clusters.{name}]",
            )
        return self.clusters[name]


def canonical_type(name: str, *, file: Path | str = "command line", key: str = "type") -> str:
    """``callmanager`` -> ``CallManager``; unknown names are refused with the list of known ones."""
    for known in ALL_TYPES:
        if known.lower() == name.lower():
            return known
    raise ConfigError(file, key, f"unknown certificate type {name!r}", f"use one of: {', '.join(ALL_TYPES)}")


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(DEFAULT_FILE)


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config(explicit)
    if not path.exists():
        raise ConfigError(
            path,
            "",
            "configuration file not found",
            "pass --config FILE, set CUCM_RENEW_CONFIG, or write one with `cucm-renew init`",
        )
    try:
        data = read_small_file(path, "the configuration file", limit=CONFIG_LIMIT)
    except FileRefused as exc:
        raise ConfigError(path, "", str(exc), "pass --config naming the configuration file") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read ({exc.strerror})", "check its permissions") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML ({exc})", "correct the syntax at that line") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", "not UTF-8 text", "save the file as UTF-8") from exc
    config = parse_config(raw, path)
    for notice in config.notices:
        get_logger().warning("configuration waiver", file=str(path), notice=notice)
    return config


_TOP = Schema(
    {
        "renew_before_days": NUMBER,
        "types": TEXTS,
        "time_scale": NUMBER,
        "risport": TABLE,
        "ca": TABLE,
        "clusters": TABLE,
        "notify": TABLE,
        "audit": TABLE,
        "distribution": TABLE,
        "itl_recovery_min_days": NUMBER,
    },
    kind=TABLE,
)
_NOTIFY = Schema(
    {
        "kind": TEXT,
        "events": TEXTS,
        "url": TEXT,
        "secret": ANY,
        "secret_env": TEXT,
        "secret_file": TEXT,
        "ca_bundle": TEXT,
        "smtp_host": TEXT,
        "smtp_port": INTEGER,
        "from": TEXT,
        "to": TEXTS,
        "username": TEXT,
        "password": ANY,
        "password_env": TEXT,
        "password_file": TEXT,
    },
    required=("kind",),
    kind=TABLE,
    quote=False,
)
_AUDIT = Schema({"key": TEXT, "log": TEXT, "syslog": BOOLEAN}, kind=TABLE)
_RISPORT = Schema({"requests_per_minute": NUMBER}, kind=TABLE)
_CA = Schema(
    {
        "kind": TEXT,
        "folder": TEXT,
        "argv": TEXTS,
        "timeout": NUMBER,
        "env": TABLE,  # command: NAME = { env = "VAR" } or NAME = { file = "PATH" }
        # adcs
        "url": TEXT,
        "template": TEXT,
        "templates": TABLE,
        "ca_bundle": TEXT,  # adcs and acme: the CA's web server
        "auth": TEXT,
        "username": TEXT,
        "password_env": TEXT,
        "password_file": TEXT,
        "password": ANY,
        # acme
        "directory": TEXT,
        "contact": TEXTS,
        "account_folder": TEXT,
        "eab_kid": TEXT,
        "eab_hmac_env": TEXT,
        "eab_hmac_file": TEXT,
        "eab_algorithm": TEXT,
        "eab_hmac": ANY,  # refused with its own message, never quoted
        "profile": TEXT,
        "client_auth": BOOLEAN,
        "wait_seconds": NUMBER,
        "dns": TABLE,
    },
    required=("kind",),
    kind=TABLE,
    quote=False,
)
_DNS = Schema(
    {
        "kind": TEXT,
        "server": TEXT,
        "port": INTEGER,
        "zone": TEXT,
        "tsig_name": TEXT,
        "tsig_algorithm": TEXT,
        "tsig_secret_env": TEXT,
        "tsig_secret_file": TEXT,
        "tsig_secret": ANY,  # refused with its own message, never quoted
        "argv": TEXTS,
        "timeout": NUMBER,
        "check_servers": TEXTS,
    },
    required=("kind",),
    kind=TABLE,
    quote=False,
)
ADCS_AUTH = ("basic", "ntlm")
_CLUSTER = Schema(
    {
        "ca_bundle": TEXT,
        "known_hosts": TEXT,
        "platform": TABLE,
        "axl": TABLE,
        "ca": TEXT,
        "ca_per_type": TABLE,
        "renew_before_days": NUMBER,
        "types": TEXTS,
        "nodes": LIST,
        "version": TEXT,
        "rest": BOOLEAN,
        "phone_reset": TEXT,
        "tomcat_client_auth": BOOLEAN,
        "notify": TEXTS,
        "max_phones_missing": INTEGER,
        "phone_interaction": TEXT,
        "extra_names": TABLE,
        "drop_names": TEXTS,
        "timezone": TEXT,
        "windows": LIST,
        "blackout": LIST,
        "approval": BOOLEAN,
        "risport_lag": NUMBER,
        "distribution": TABLE,
        "itl_recovery_min_days": NUMBER,
    },
    required=("ca_bundle", "known_hosts", "ca"),
    kind=TABLE,
)
_NODE = Schema(
    {
        "name": TEXT,
        "role": TEXT,
        "address": TEXT,
        "https_port": INTEGER,
        "ssh_port": INTEGER,
        "ports": TABLE,
        "processnode": TEXT,
    },
    required=("name",),
    kind=TABLE,
)
# ``password`` is accepted here only to be refused with its own message, and no value in this
# table is quoted back: a password typed into the wrong key must not reach a log.
_CREDENTIAL = Schema(
    {"username": TEXT, "password_env": TEXT, "password_file": TEXT, "password": ANY},
    required=("username",),
    kind=TABLE,
    quote=False,
)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.path, key, problem, fix)

    def table(self, value: Any, schema: Schema, where: str) -> Mapping[str, Any]:
        return schema.check(value, file=self.path, path=where, error=ConfigError)

    def number(
        self, raw: Mapping[str, Any], key: str, where: str, default: float, *, minimum: float
    ) -> float:
        value = raw.get(key, default)
        if value < minimum:
            raise self.fail(
                f"{where}.{key}" if where else key,
                f"must be a number >= {minimum:g}",
                f"set {key} = {default:g}",
            )
        return float(value)

    def port(self, raw: Mapping[str, Any], key: str, where: str, default: int) -> int:
        value: int = raw.get(key, default)
        if not 0 < value < 65536:
            raise self.fail(f"{where}.{key}", "must be a TCP port (1-65535)", f"set {key} = {default}")
        return value

    def path_(self, raw: Mapping[str, Any], key: str, where: str, *, must_exist: bool) -> Path:
        value = Path(raw[key])
        path = value if value.is_absolute() else self.base / value
        if must_exist:
            if not path.exists():
                raise self.fail(
                    f"{where}.{key}", f"file {path} does not exist", "point it at an existing file"
                )
            try:
                check_regular_file(path, "file")
            except FileRefused as exc:
                raise self.fail(f"{where}.{key}", str(exc), "point it at the file itself") from None
            except OSError as exc:
                raise self.fail(
                    f"{where}.{key}", f"cannot read {path} ({exc.strerror})", "check it"
                ) from None
        return path

    def small_text(self, path: Path, where: str) -> str:
        """A secret's file, read through the same checks as every file the tool reads."""
        try:
            return read_small_text(path, "file", limit=SECRET_LIMIT)
        except FileRefused as exc:
            raise self.fail(where, str(exc), "point it at the file itself") from None
        except OSError as exc:
            raise self.fail(where, f"cannot read {path} ({exc.strerror})", "check its permissions") from None

    def types(
        self, raw: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = raw.get(key)
        if value is None:
            return default
        full = f"{where}.{key}" if where else key
        return tuple(canonical_type(v, file=self.path, key=full) for v in value)

    def credential(self, raw: Mapping[str, Any], key: str, where: str) -> Credential:
        full = f"{where}.{key}"
        table = raw.get(key, {})
        if "password" in table:
            raise self.fail(
                f"{full}.password",
                "passwords are not accepted in the file",
                f'put it in an environment variable and write password_env = "NAME" under [{full}]',
            )
        if not table:
            raise self.fail(full, "missing", f"add [{full}] with username and password_env or password_file")
        table = self.table(table, _CREDENTIAL, full)
        username: str = table["username"]
        if "password_env" in table:
            var = table["password_env"]
            value = os.environ.get(var)
            if not value:
                raise self.fail(
                    f"{full}.password_env",
                    f"environment variable {var} is not set",
                    f"export {var}=... before running cucm-renew",
                )
            return Credential(username, Secret(value, f"${var}"))
        if "password_file" in table:
            pfile = self.path_(table, "password_file", full, must_exist=True)
            value = self.small_text(pfile, f"{full}.password_file").strip()
            if not value:
                raise self.fail(f"{full}.password_file", f"{pfile} is empty", "write the password in it")
            return Credential(username, Secret(value, str(pfile)))
        raise self.fail(full, "no password source", 'add password_env = "VAR" or password_file = "PATH"')

    def secret(self, raw: Mapping[str, Any], key: str, where: str, what: str) -> Secret | None:
        """``KEY_env`` or ``KEY_file``; None when neither is given. ``KEY`` itself is refused."""
        if key in raw:
            raise self.fail(
                f"{where}.{key}",
                f"{what} is not accepted in the file",
                f'put it in an environment variable and write {key}_env = "NAME" under [{where}]',
            )
        if f"{key}_env" in raw:
            var = raw[f"{key}_env"]
            value = os.environ.get(var)
            if not value:
                raise self.fail(
                    f"{where}.{key}_env",
                    f"environment variable {var} is not set",
                    f"export {var}=... (the {what}) before running cucm-renew",
                )
            return Secret(value, f"${var}")
        if f"{key}_file" in raw:
            sfile = self.path_(raw, f"{key}_file", where, must_exist=True)
            value = self.small_text(sfile, f"{where}.{key}_file").strip()
            if not value:
                raise self.fail(f"{where}.{key}_file", f"{sfile} is empty", f"write the {what} in it")
            return Secret(value, str(sfile))
        return None

    def acme(self, table: Mapping[str, Any], where: str) -> AcmeConfig:
        directory = table.get("directory")
        if not directory:
            raise self.fail(
                f"{where}.directory",
                "missing for an ACME CA",
                'set directory = "https://..." (the URL of the ACME directory)',
            )
        if not str(directory).startswith("https://"):
            raise self.fail(
                f"{where}.directory", "must be an https:// URL", 'e.g. "https://acme.example.com/directory"'
            )
        ca_bundle = self.path_(table, "ca_bundle", where, must_exist=True) if "ca_bundle" in table else None
        folder = None
        if "account_folder" in table:
            rel = Path(table["account_folder"])
            folder = rel if rel.is_absolute() else self.base / rel
        eab_kid = str(table.get("eab_kid", ""))
        eab_hmac = self.secret(table, "eab_hmac", where, "EAB HMAC key")
        if bool(eab_kid) != (eab_hmac is not None):
            raise self.fail(
                f"{where}.eab_kid",
                "External Account Binding needs both the key id and the HMAC key",
                'set eab_kid = "..." and eab_hmac_env = "VAR" (or eab_hmac_file), both from your CA',
            )
        eab_algorithm = str(table.get("eab_algorithm", "HS256"))
        if eab_algorithm not in EAB_ALGORITHMS:
            raise self.fail(
                f"{where}.eab_algorithm",
                f"unknown MAC algorithm {eab_algorithm!r}",
                f"use one of: {', '.join(EAB_ALGORITHMS)}",
            )
        dwhere = f"{where}.dns"
        if "dns" not in table:
            raise self.fail(
                dwhere,
                "missing: an ACME CA validates by DNS-01",
                'add dns = { kind = "rfc2136", server = "...", zone = "...", tsig_name = "...", '
                'tsig_secret_env = "VAR" } or dns = { kind = "hook", argv = ["/path/prog"] }',
            )
        raw_dns = self.table(table["dns"], _DNS, dwhere)
        kind = raw_dns["kind"]
        if kind not in DNS_KINDS:
            raise self.fail(
                f"{dwhere}.kind", f"unknown DNS kind {kind!r}", f"use one of: {', '.join(DNS_KINDS)}"
            )
        secret = self.secret(raw_dns, "tsig_secret", dwhere, "TSIG secret")
        if kind == "rfc2136":
            for need in ("server", "zone", "tsig_name"):
                if need not in raw_dns:
                    raise self.fail(f"{dwhere}.{need}", "missing for RFC 2136 updates", f'set {need} = "..."')
            if secret is None:
                raise self.fail(
                    f"{dwhere}.tsig_secret_env",
                    "no TSIG secret",
                    'add tsig_secret_env = "VAR" or tsig_secret_file = "PATH" '
                    "(base64, as tsig-keygen prints it)",
                )
            algorithm = str(raw_dns.get("tsig_algorithm", "hmac-sha256"))
            if algorithm not in TSIG_ALGORITHMS:
                raise self.fail(
                    f"{dwhere}.tsig_algorithm",
                    f"unknown TSIG algorithm {algorithm!r}",
                    f"use one of: {', '.join(TSIG_ALGORITHMS)}",
                )
        elif "argv" not in raw_dns:
            raise self.fail(
                f"{dwhere}.argv",
                "missing for a DNS hook",
                'e.g. argv = ["/usr/local/bin/dns-txt"] (run with add|remove, the name and the value)',
            )
        dns = DnsConfig(
            kind=kind,
            server=str(raw_dns.get("server", "")),
            port=self.port(raw_dns, "port", dwhere, 53),
            zone=str(raw_dns.get("zone", "")),
            tsig_name=str(raw_dns.get("tsig_name", "")),
            tsig_algorithm=str(raw_dns.get("tsig_algorithm", "hmac-sha256")),
            tsig_secret=secret,
            argv=tuple(raw_dns.get("argv", ())),
            timeout=self.number(raw_dns, "timeout", dwhere, 60, minimum=1),
            check_servers=tuple(raw_dns.get("check_servers", ())),
        )
        return AcmeConfig(
            directory=str(directory),
            dns=dns,
            ca_bundle=ca_bundle,
            contact=tuple(table.get("contact", ())),
            account_folder=folder,
            eab_kid=eab_kid,
            eab_hmac=eab_hmac,
            eab_algorithm=eab_algorithm,
            profile=str(table.get("profile", "")),
            client_auth=bool(table.get("client_auth", False)),
            wait_seconds=self.number(table, "wait_seconds", where, 30, minimum=0),
        )


def _extra_names(r: _Reader, table: Mapping[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for key, names in dict(table.get("extra_names", {})).items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise r.fail(
                f"{where}.extra_names.{key}",
                "must be a list of DNS names",
                f'write {key} = ["jabber.example.com"]',
            )
        if any("*" in n for n in names):
            raise r.fail(
                f"{where}.extra_names.{key}",
                "a wildcard name",
                "CUCM refuses wildcard certificates: list each name",
            )
        out[str(key)] = tuple(n.lower() for n in names)
    return out


def _check_client_auth(r: _Reader, where: str, cluster: ClusterConfig, cas: Mapping[str, CaConfig]) -> None:
    """A type whose certificate needs clientAuth may not go to an ACME CA that drops it: refused
    here, before any run, rather than by the pre-flight once the CA has signed."""
    for cert_type in cluster.types:
        ca = cas[cluster.ca_for(cert_type)]
        if ca.acme is None or ca.acme.client_auth:
            continue
        profile = profile_for(cert_type)
        if profile is None or not profile.needs_client_auth or cluster.client_auth_waived(cert_type):
            continue
        key = f"{where}.ca_per_type.{cert_type}" if cert_type in cluster.ca_per_type else f"{where}.ca"
        fix = (
            f'map {cert_type} to a CA that issues clientAuth with ca_per_type = {{ {cert_type} = "..." }} '
            f"under [{where}], or, if this ACME CA's profile does issue clientAuth (a private ACME CA), "
            f"set client_auth = true under [ca.{ca.name}]"
        )
        if profile.waivable:
            fix += (
                f"; or, if this cluster does without {profile.waivable}, waive clientAuth for tomcat "
                f"with tomcat_client_auth = false under [{where}]"
            )
        raise r.fail(
            key,
            f"{cert_type} certificates need the clientAuth extended key usage (CUCM uses them for "
            f"mutual TLS), and CA {ca.name!r} is an ACME CA whose certificates drop it "
            f"(ca.{ca.name}.client_auth = false)",
            fix,
        )


def _waiver_notice(where: str, cluster: ClusterConfig) -> str | None:
    waived = [t for t in cluster.types if cluster.client_auth_waived(t)]
    if not waived:
        return None
    profile = profile_for(waived[0])
    assert profile is not None
    return (
        f"{where}.tomcat_client_auth = false: {' and '.join(waived)} certificates are accepted "
        f"without the clientAuth extended key usage; on cluster {cluster.name} that gives up "
        f"{profile.waivable}, which present the tomcat certificate as a TLS client and fail "
        "against peers that require it"
    )


def parse_config(raw: Mapping[str, Any], path: Path) -> Config:
    r = _Reader(path)
    r.table(raw, _TOP, "")
    renew = r.number(raw, "renew_before_days", "", 30, minimum=0)
    types = r.types(raw, "types", "", CERT_TYPES)
    time_scale = r.number(raw, "time_scale", "", 1.0, minimum=1.0)
    risport = r.table(raw.get("risport", {}), _RISPORT, "risport")
    distribution = _distribution(r, raw.get("distribution", {}), "distribution", {})
    itl_min = r.number(raw, "itl_recovery_min_days", "", DEFAULT_ITL_RECOVERY_MIN_DAYS, minimum=0)
    per_minute = r.number(risport, "requests_per_minute", "risport", 15, minimum=0.1)

    cas: dict[str, CaConfig] = {}
    for name, table in raw.get("ca", {}).items():
        where = f"ca.{name}"
        table = r.table(table, _CA, where)
        kind = table["kind"]
        if kind not in CA_KINDS:
            raise r.fail(f"{where}.kind", f"unknown CA kind {kind!r}", f"use one of: {', '.join(CA_KINDS)}")
        folder = None
        argv: tuple[str, ...] = ()
        if kind == "local":
            if "folder" not in table:
                raise r.fail(f"{where}.folder", "missing for a local CA", 'set folder = "..."')
            rel = Path(table["folder"])
            folder = rel if rel.is_absolute() else r.base / rel
        if kind == "command":
            value = table.get("argv")
            if value is None:
                raise r.fail(
                    f"{where}.argv",
                    "must be a non-empty list of strings",
                    'e.g. argv = ["/usr/local/bin/sign-csr", "--profile", "cucm"]',
                )
            argv = tuple(value)
        env = _command_env(r, table, where) if kind == "command" else {}
        if kind != "command" and "env" in table:
            raise r.fail(f"{where}.env", f"only a command CA takes env (this one is {kind})", "remove it")
        adcs = _adcs(r, table, where) if kind == "adcs" else None
        acme = r.acme(table, where) if kind == "acme" else None
        cas[name] = CaConfig(
            name, kind, folder, argv, r.number(table, "timeout", where, 60, minimum=1), adcs, acme, env
        )

    notify = {name: _notify(r, table, f"notify.{name}") for name, table in raw.get("notify", {}).items()}

    clusters: dict[str, ClusterConfig] = {}
    notices: list[str] = []
    clusters_raw = raw.get("clusters", {})
    if not clusters_raw:
        raise r.fail(
            "clusters", "no cluster configured", "add a [clusters.NAME] table (see `cucm-renew init`)"
        )
    for name, table in clusters_raw.items():
        where = f"clusters.{name}"
        table = r.table(table, _CLUSTER, where)
        version: str | None = table.get("version")
        if version is not None and not version.split(".")[0].isdigit():
            raise r.fail(
                f"{where}.version",
                f"not a CUCM version: {version!r}",
                'e.g. version = "14.0", or leave it out: the release is read from the cluster',
            )
        interaction = table.get("phone_interaction")
        if interaction is not None and interaction not in PHONE_INTERACTIONS:
            raise r.fail(
                f"{where}.phone_interaction",
                f"unknown value {interaction!r}",
                'use "automatic" (CUCM resets phones on a CallManager/TVS/CAPF change, 14+) or "manual"',
            )
        missing_ok = table.get("max_phones_missing", 0)
        if isinstance(missing_ok, bool) or not isinstance(missing_ok, int) or missing_ok < 0:
            raise r.fail(
                f"{where}.max_phones_missing", "must be a whole number >= 0", "e.g. max_phones_missing = 0"
            )
        windows = _windows(r, table, where)
        phone_reset = table.get("phone_reset", "phones")
        if phone_reset not in PHONE_RESET_METHODS:
            raise r.fail(
                f"{where}.phone_reset",
                f"unknown phone reset method {phone_reset!r}",
                'use phone_reset = "pools" (one request per device pool) or "phones" (one per phone)',
            )
        nodes_raw = table.get("nodes")
        if not nodes_raw:
            raise r.fail(f"{where}.nodes", "no nodes", f"add [[{where}.nodes]] tables, the publisher first")
        nodes: list[NodeConfig] = []
        for i, node in enumerate(nodes_raw):
            nwhere = f"{where}.nodes[{i}]"
            node = r.table(node, _NODE, nwhere)
            role = node.get("role", "subscriber")
            if role not in ROLES:
                raise r.fail(f"{nwhere}.role", f"unknown role {role!r}", f"use one of: {', '.join(ROLES)}")
            nname = node["name"]
            ports_raw = node.get("ports", {})
            ports: dict[int, int] = {}
            for k, v in ports_raw.items():
                if not str(k).isdigit() or isinstance(v, bool) or not isinstance(v, int):
                    raise r.fail(
                        f"{nwhere}.ports.{k}",
                        "must map a CUCM port to a port number",
                        'e.g. ports = { "5061" = 45061 }',
                    )
                ports[int(k)] = v
            nodes.append(
                NodeConfig(
                    nname,
                    role,
                    node.get("address", nname),
                    r.port(node, "https_port", nwhere, 8443),
                    r.port(node, "ssh_port", nwhere, 22),
                    ports,
                    str(node.get("processnode", "")),
                )
            )
        if sum(n.role == "publisher" for n in nodes) != 1:
            raise r.fail(
                f"{where}.nodes",
                'exactly one node must have role = "publisher"',
                'mark the publisher, and only it, with role = "publisher"',
            )
        ca_default = table["ca"]
        per_type_raw = table.get("ca_per_type", {})
        per_type = {
            canonical_type(k, file=path, key=f"{where}.ca_per_type.{k}"): v for k, v in per_type_raw.items()
        }
        for key, ca_name in [("ca", ca_default), *((f"ca_per_type.{k}", v) for k, v in per_type.items())]:
            if ca_name not in cas:
                raise r.fail(
                    f"{where}.{key}",
                    f"unknown CA {ca_name!r}",
                    f"define [ca.{ca_name}] or use one of: {', '.join(cas) or '(none defined)'}",
                )
        clusters[name] = ClusterConfig(
            name=name,
            nodes=tuple(sorted(nodes, key=lambda n: ROLES.index(n.role))),
            ca_bundle=r.path_(table, "ca_bundle", where, must_exist=True),
            known_hosts=r.path_(table, "known_hosts", where, must_exist=True),
            platform=r.credential(table, "platform", where),
            axl=r.credential(table, "axl", where),
            ca=ca_default,
            ca_per_type=per_type,
            renew_before_days=r.number(table, "renew_before_days", where, renew, minimum=0),
            types=r.types(table, "types", where, types),
            version=version,
            use_rest=table.get("rest"),
            phone_reset=str(phone_reset),
            tomcat_client_auth=bool(table.get("tomcat_client_auth", True)),
            notify=_cluster_notify(r, table, where, notify),
            max_phones_missing=missing_ok,
            phone_interaction=interaction,
            extra_names=_extra_names(r, table, where),
            drop_names=tuple(str(n).lower() for n in table.get("drop_names", [])),
            windows=windows,
            approval=bool(table.get("approval", False)),
            risport_lag=r.number(table, "risport_lag", where, 30.0, minimum=0),
            distribution=_distribution(
                r, table.get("distribution", {}), f"{where}.distribution", distribution
            ),
            itl_recovery_min_days=r.number(table, "itl_recovery_min_days", where, itl_min, minimum=0),
        )
        _check_client_auth(r, where, clusters[name], cas)
        notice = _waiver_notice(where, clusters[name])
        if notice is not None:
            notices.append(notice)
    audit_raw = r.table(raw.get("audit", {}), _AUDIT, "audit")
    audit: dict[str, Any] = {
        k: r.path_(audit_raw, k, "audit", must_exist=False) for k in ("key", "log") if k in audit_raw
    }
    if "syslog" in audit_raw:
        audit["syslog"] = bool(audit_raw["syslog"])
    return Config(path, renew, types, per_minute, time_scale, clusters, cas, tuple(notices), notify, audit)


def _windows(r: _Reader, table: Mapping[str, Any], where: str) -> Windows | None:
    """A cluster's ``timezone``, ``windows`` and ``blackout``; ``None`` when it names none."""
    if not any(k in table for k in ("timezone", "windows", "blackout")):
        return None
    for key in ("windows", "blackout"):
        if not all(isinstance(v, str) for v in table.get(key, [])):
            raise r.fail(f"{where}.{key}", "must be a list of strings", 'e.g. windows = ["Sat 01:00-05:00"]')
    try:
        return parse_windows(
            table.get("windows", []), table.get("blackout", []), table.get("timezone", "UTC")
        )
    except WindowError as exc:
        key = "timezone" if "time zone" in str(exc) else "blackout" if "blackout" in str(exc) else "windows"
        raise r.fail(f"{where}.{key}", str(exc), "correct it, or remove it") from None


def _distribution(r: _Reader, raw: Any, where: str, inherited: Mapping[str, str]) -> dict[str, str]:
    """``distribution = { tomcat = "multi-server" }``: per type, over what ``inherited`` says."""
    if not isinstance(raw, Mapping):
        raise r.fail(
            where, "must be a table of type = distribution", 'e.g. distribution = { tomcat = "multi-server" }'
        )
    out = dict(inherited)
    for key, value in raw.items():
        cert_type = canonical_type(str(key), file=r.path, key=f"{where}.{key}")
        if value not in DISTRIBUTIONS:
            raise r.fail(
                f"{where}.{key}", f"unknown distribution {value!r}", f"use one of: {', '.join(DISTRIBUTIONS)}"
            )
        if value == "multi-server" and cert_type not in MULTI_SERVER_TYPES:
            raise r.fail(
                f"{where}.{key}",
                f"CUCM makes no CA-signed multi-server certificate for {cert_type}",
                f"multi-server is for {', '.join(sorted(MULTI_SERVER_TYPES))} (CUCM reference part 2 §4a)",
            )
        out[cert_type] = str(value)
    return out


def _notify(r: _Reader, raw: Any, where: str) -> NotifyConfig:
    table = r.table(raw, _NOTIFY, where)
    name = where.split(".", 1)[1]
    kind = table["kind"]
    if kind not in NOTIFY_KINDS:
        raise r.fail(f"{where}.kind", f"unknown kind {kind!r}", f"use one of: {', '.join(NOTIFY_KINDS)}")
    events = tuple(table.get("events", NOTIFY_EVENTS))
    for event in events:
        if event not in NOTIFY_EVENTS:
            raise r.fail(
                f"{where}.events", f"unknown event {event!r}", f"use any of: {', '.join(NOTIFY_EVENTS)}"
            )
    ca_bundle = r.path_(table, "ca_bundle", where, must_exist=True) if "ca_bundle" in table else None
    if kind == "webhook":
        url = str(table.get("url", ""))
        if not url.lower().startswith(("https://", "http://")):
            raise r.fail(
                f"{where}.url", "missing or not an http(s) URL", 'set url = "https://hooks.example.com/..."'
            )
        secret = r.secret(table, "secret", where, "webhook signing secret")
        if secret is None:
            raise r.fail(
                where,
                "no signing secret",
                'add secret_env = "VAR" or secret_file = "PATH": every body is signed with HMAC-SHA256',
            )
        return NotifyConfig(name, kind, events, url=url, secret=secret, ca_bundle=ca_bundle)
    for key in ("smtp_host", "from", "to"):
        if not table.get(key):
            raise r.fail(
                f"{where}.{key}",
                "missing for an e-mail target",
                'e.g. smtp_host = "smtp.example.com", '
                'from = "cucm-renew@example.com", to = ["uc-team@example.com"]',
            )
    password = r.secret(table, "password", where, "SMTP password")
    username = str(table.get("username", ""))
    if bool(username) != (password is not None):
        raise r.fail(
            where,
            "username and password go together",
            "set both username and password_env (or password_file), or neither for a relay without AUTH",
        )
    return NotifyConfig(
        name,
        kind,
        events,
        ca_bundle=ca_bundle,
        smtp_host=str(table["smtp_host"]),
        smtp_port=r.port(table, "smtp_port", where, 587),
        sender=str(table["from"]),
        recipients=tuple(table["to"]),
        username=username,
        password=password,
    )


def _cluster_notify(
    r: _Reader, table: Mapping[str, Any], where: str, targets: Mapping[str, NotifyConfig]
) -> tuple[str, ...]:
    names = tuple(table.get("notify", ()))
    for name in names:
        if name not in targets:
            raise r.fail(
                f"{where}.notify",
                f"unknown notification target {name!r}",
                f"define [notify.{name}] or use one of: {', '.join(targets) or '(none defined)'}",
            )
    return names


def _adcs(r: _Reader, table: Mapping[str, Any], where: str) -> AdcsSettings:
    url = table.get("url")
    if not url or not str(url).lower().startswith("https://"):
        raise r.fail(f"{where}.url", "missing or not https://", 'e.g. url = "https://ca.example.com/certsrv"')
    templates: dict[str, str] = {}
    for k, v in table.get("templates", {}).items():
        if not isinstance(v, str) or not v:
            raise r.fail(
                f"{where}.templates.{k}", "must be a template name", 'e.g. CallManager = "CUCM-Services"'
            )
        templates[canonical_type(k, file=r.path, key=f"{where}.templates.{k}")] = v
    template = table.get("template", "")
    if not template and not templates:
        raise r.fail(
            f"{where}.template",
            "no certificate template",
            'set template = "NAME" (the template\'s name, not its display name), per type: templates',
        )
    auth = table.get("auth", "ntlm")
    if auth not in ADCS_AUTH:
        raise r.fail(f"{where}.auth", f"unknown method {auth!r}", 'use auth = "ntlm" or "basic"')
    if "ca_bundle" not in table:
        raise r.fail(
            f"{where}.ca_bundle",
            "missing",
            "point it at the PEM file of the CA that issued the site's TLS certificate",
        )
    if "username" not in table:
        raise r.fail(f"{where}.username", "missing", 'e.g. username = "EXAMPLE\\\\svc-cucm-renew"')
    if "password_file" in table and "password_env" not in table:
        pfile = r.path_(table, "password_file", where, must_exist=True)
        if pfile.stat().st_mode & 0o077:
            raise r.fail(f"{where}.password_file", f"{pfile} is readable by others", f"chmod 600 {pfile}")
    # The credential keys sit in [ca.NAME] itself: read them as the table "NAME" under "ca".
    name = where.split(".", 1)[1]
    keys = ("username", "password_env", "password_file", "password")
    credential = r.credential({name: {k: table[k] for k in keys if k in table}}, name, "ca")
    key = f"{where}.password_env" if "password_env" in table else f"{where}.password_file"
    return AdcsSettings(
        url=str(url),
        template=str(template),
        templates=templates,
        ca_bundle=r.path_(table, "ca_bundle", where, must_exist=True),
        auth=str(auth),
        credential=credential,
        password_key=key,
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_FORM = 'NAME = { env = "VAR" } (from cucm-renew\'s environment) or NAME = { file = "PATH" }'


def _command_env(r: _Reader, table: Mapping[str, Any], where: str) -> dict[str, Secret]:
    """``env = { API_TOKEN = { env = "CA_TOKEN" }, CLIENT_KEY = { file = "ca.key" } }``: each value
    read now (so a missing one stops the command before anything is sent), never from the file
    itself, where it would sit beside everything else an operator shares."""
    raw = table.get("env", {})
    out: dict[str, Secret] = {}
    for name, source in raw.items():
        key = f"{where}.env.{name}"
        if not _ENV_NAME.fullmatch(name):
            raise r.fail(key, f"{name!r} is not a variable name", "use letters, digits and _ (e.g. CA_TOKEN)")
        if name.upper().startswith("CUCM_RENEW_") or name.upper() in _RESERVED_ENV:
            raise r.fail(key, f"{name} is set by cucm-renew itself", "choose another name for the variable")
        if not isinstance(source, Mapping) or len(source) != 1 or not ({"env", "file"} & set(source)):
            raise r.fail(key, "values are not accepted in the file", f"write {_ENV_FORM}")
        if "env" in source:
            var = source["env"]
            value = os.environ.get(var) if isinstance(var, str) else None
            if not value:
                raise r.fail(
                    f"{key}.env", f"environment variable {var} is not set", f"export {var}=... first"
                )
            out[name] = Secret(value, f"${var}")
        else:
            if not isinstance(source["file"], str):
                raise r.fail(f"{key}.file", "must be a path", f"write {_ENV_FORM}")
            path = r.path_(source, "file", key, must_exist=True)
            value = r.small_text(path, f"{key}.file").strip()
            if not value:
                raise r.fail(f"{key}.file", f"{path} is empty", f"write the value of {name} in it")
            out[name] = Secret(value, str(path))
    return out


_RESERVED_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"})
"""Passed from cucm-renew's own environment (adapters/ca/command.py): not to be overridden."""
