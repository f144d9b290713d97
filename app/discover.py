"""``cucm-renew init --discover HOST``: a cluster section read from the publisher.

What is trusted, and when: the publisher's HTTPS must verify against the CA bundle the operator
gives, or the operator confirms one of the certificates it presents by its SHA-256 fingerprint
(``--accept-tls-fingerprint``, or a yes at the terminal after seeing the chain). Each node's SSH
host key is shown as ``ssh-keygen -l`` prints it and written to known_hosts only once confirmed
(``--accept-host-keys``, or a yes at the terminal); a key that matches no fingerprint given is
refused. Nothing is written before every node is confirmed, and no credential is sent before the
channel it travels on is trusted. Passwords come from the environment or a file and the
configuration names that source, never the value.

Then, over those channels: AXL gives the release (getCCMVersion), the process nodes and their roles
(listProcessNode) and the security mode; where a processnode name is an IP address, the node's
FQDN comes from ``show network cluster`` on the publisher (and its certificate); each node's
current certificates come from certmgr REST (14 and later) or the CLI.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from adapters.cucm import probe
from adapters.cucm.cluster import Cluster, Credentials, build_cluster
from adapters.cucm.cluster import ClusterConfig as CucmClusterConfig
from adapters.cucm.port import CucmError, NodeRef, Role
from app.config import Secret

Ask = Callable[[str], bool]
"""Asks the operator a yes/no question; False when nobody can answer (not a terminal)."""


class DiscoveryRefused(Exception):
    """Discovery stopped before writing anything: what was not trusted or not found, and the fix."""


@dataclass(frozen=True)
class PasswordSource:
    """Where a password is read from: ``env`` (a variable name) or ``file`` (a path)."""

    env: str = ""
    file: str = ""

    def read(self, what: str) -> Secret:
        if bool(self.env) == bool(self.file):
            raise DiscoveryRefused(
                f"the {what} password: give exactly one of --{what}-password-env VAR or "
                f"--{what}-password-file FILE (never the password itself on the command line)"
            )
        if self.env:
            value = os.environ.get(self.env, "")
            if not value:
                raise DiscoveryRefused(f"the {what} password: environment variable {self.env} is not set")
            return Secret(value, f"${self.env}")
        try:
            value = Path(self.file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DiscoveryRefused(f"the {what} password: cannot read {self.file}: {exc.strerror}") from None
        if not value:
            raise DiscoveryRefused(f"the {what} password: {self.file} is empty")
        return Secret(value, self.file)


@dataclass
class DiscoverOptions:
    host: str
    axl_user: str
    platform_user: str
    axl_password: PasswordSource
    platform_password: PasswordSource
    output: Path
    https_port: int = 8443
    ssh_port: int = 22
    cluster_name: str = ""
    ca_bundle: Path | None = None
    accept_tls: Sequence[str] = ()
    accept_host_keys: Sequence[str] = ()
    hosts_file: Path | None = None
    local_ca: Path | None = None
    time_scale: float = 1.0
    roles_by_type: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class FoundNode:
    name: str
    role: Role
    address: str
    processnode: str
    https_port: int
    ssh_port: int
    host_key: probe.HostKey | None = None
    certificates: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Discovery:
    cluster: str
    version: str
    security_mode: int
    nodes: list[FoundNode]
    bundle_pems: list[str]
    """Certificates the operator confirmed (or the publisher vouched for) beyond ``ca_bundle``."""


# --------------------------------------------------------------------------- helpers


def cert_names(der: bytes) -> list[str]:
    """The DNS names a certificate is for: its SAN DNS entries, else its CN."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def describe_cert(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return (
        f"subject {cert.subject.rfc4514_string()}\n      issuer  {cert.issuer.rfc4514_string()}\n"
        f"      expires {cert.not_valid_after_utc:%Y-%m-%d}  SHA256 {probe.tls_fingerprint(der)}"
    )


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def read_hosts(path: Path | None) -> dict[str, str]:
    """Name -> address from an /etc/hosts-style file (first address wins)."""
    found: dict[str, str] = {}
    if path is None:
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        for name in words[1:]:
            found.setdefault(name.lower(), words[0])
    return found


class _Discoverer:
    def __init__(self, options: DiscoverOptions, say: Callable[[str], None], ask: Ask) -> None:
        self.o = options
        self.say = say
        self.ask = ask
        self.accept_tls = {probe.normalise_fingerprint(f) for f in options.accept_tls}
        self.accept_keys = {probe.normalise_fingerprint(f) for f in options.accept_host_keys}
        self.hosts = read_hosts(options.hosts_file)
        self.base_bundle = options.ca_bundle.read_text(encoding="utf-8") if options.ca_bundle else ""
        self.extra: list[str] = []
        self.vouched: set[str] = set()
        self.work = Path(tempfile.mkdtemp(prefix="cucm-discover-"))

    # ------------------------------------------------------------------ trust

    def bundle_file(self) -> str:
        path = self.work / "bundle.pem"
        path.write_text(self.base_bundle.rstrip("\n") + "\n" + "".join(self.extra), encoding="utf-8")
        return str(path)

    def trust_tls(self, address: str, port: int, label: str) -> str:
        """Verify ``address:port``'s HTTPS, or have the operator confirm it; returns its FQDN."""
        chain = probe.presented_chain(address, port)
        if not chain:
            raise DiscoveryRefused(f"{label} ({address}:{port}) presented no certificate")
        name = (cert_names(chain[0]) or [address])[0]
        why = (
            probe.verify_tls(address, port, name, self.bundle_file())
            if (self.base_bundle or self.extra)
            else "no --ca-bundle given"
        )
        if why is None:
            self.say(f"TLS  {label} {address}:{port} is {name}: verified against the CA bundle")
            return name
        fingerprints = [probe.tls_fingerprint(d) for d in chain]
        vouched = [d for d, f in zip(chain, fingerprints, strict=True) if f in self.vouched]
        chosen: bytes | None = None
        if vouched:
            chosen = vouched[0]
            how = "the publisher's tomcat-trust holds this exact certificate"
        else:
            self.say(f"TLS  {label} {address}:{port} does not verify ({why}). It presents:")
            for i, der in enumerate(chain):
                self.say(f"  [{i}] {describe_cert(der)}")
            matched = [d for d, f in zip(chain, fingerprints, strict=True) if f in self.accept_tls]
            if matched:
                chosen, how = matched[-1], "its fingerprint was given with --accept-tls-fingerprint"
            elif self.accept_tls:
                raise DiscoveryRefused(
                    f"TLS of {label} ({address}:{port}): no certificate it presents has a fingerprint "
                    f"given with --accept-tls-fingerprint; nothing written. Check the fingerprints "
                    f"above against the node's own console (`show cert own tomcat`)."
                )
            elif self.ask(f"Trust [{len(chain) - 1}] for {name}, having checked its fingerprint?"):
                chosen, how = chain[-1], "confirmed at the terminal"
            else:
                raise DiscoveryRefused(
                    f"TLS of {label} ({address}:{port}) is not trusted; nothing written. Pass the CA "
                    f"bundle that issued it with --ca-bundle, or, having checked a fingerprint above "
                    f"on the node's console, --accept-tls-fingerprint SHA256"
                )
        self.extra.append(_pem(chosen))
        again = probe.verify_tls(address, port, name, self.bundle_file())
        if again is not None:
            raise DiscoveryRefused(
                f"TLS of {label} ({address}:{port}) still does not verify with the accepted certificate "
                f"({again}); accept the certificate that issued the leaf, or give its CA with --ca-bundle"
            )
        self.say(f"TLS  {label} {address}:{port} is {name}: trusted, {how}")
        return name

    def trust_host_key(self, address: str, port: int, name: str) -> probe.HostKey:
        key = probe.host_key(address, port)
        self.say(f"SSH  {key.describe(f'{name} ({address}:{port})')}")
        if key.fingerprint in self.accept_keys:
            return key
        if self.accept_keys:
            raise DiscoveryRefused(
                f"SSH host key of {name} ({address}:{port}) is {key.fingerprint}, which is not among "
                f"--accept-host-keys; refused, nothing written. Compare it with the node's own key "
                f"before accepting it."
            )
        if self.ask(f"Is {key.fingerprint} the host key of {name}?"):
            return key
        raise DiscoveryRefused(
            f"SSH host key of {name} ({address}:{port}) not confirmed; nothing written. Pass "
            f"--accept-host-keys {key.fingerprint} once you have checked it on the node."
        )

    def address_of(self, fqdn: str, fallback: str) -> str:
        if fqdn.lower() in self.hosts:
            return self.hosts[fqdn.lower()]
        try:
            return str(socket.getaddrinfo(fqdn, None, proto=socket.IPPROTO_TCP)[0][4][0])
        except OSError:
            if fallback:
                return fallback
            raise DiscoveryRefused(
                f"cannot resolve {fqdn}: add it to DNS, or pass --hosts FILE (/etc/hosts lines)"
            ) from None

    # ------------------------------------------------------------------ discovery

    def cluster_for(self, nodes: Sequence[FoundNode], known_hosts: Path, *, rest: bool = True) -> Cluster:
        refs = tuple(NodeRef(n.name, n.address, n.https_port, n.ssh_port, n.role) for n in nodes)
        return build_cluster(
            CucmClusterConfig(
                name=self.o.cluster_name or "discovered",
                nodes=refs,
                platform=Credentials(self.o.platform_user, self.platform.value),
                axl=Credentials(self.o.axl_user, self.axl.value),
                ca_bundle=self.bundle_file(),
                known_hosts=str(known_hosts),
                use_rest=rest,
                processnode_names={n.processnode: n.name for n in nodes if n.processnode},
            )
        )

    def write_known_hosts(self, nodes: Sequence[FoundNode]) -> Path:
        path = self.work / "known_hosts"
        path.write_text(
            "".join(
                n.host_key.known_hosts_line([n.address, n.name], n.ssh_port) + "\n"
                for n in nodes
                if n.host_key is not None
            ),
            encoding="utf-8",
        )
        return path

    def run(self) -> Discovery:
        o = self.o
        self.axl = o.axl_password.read("axl")
        self.platform = o.platform_password.read("platform")
        pub_name = self.trust_tls(o.host, o.https_port, "publisher")
        publisher = FoundNode(pub_name, "publisher", o.host, "", o.https_port, o.ssh_port)
        publisher.host_key = self.trust_host_key(o.host, o.ssh_port, pub_name)
        cluster = self.cluster_for([publisher], self.write_known_hosts([publisher]))
        try:
            version = cluster.version()
            mode = cluster.security_mode()
            rows = cluster.process_node_table()
            self.say(
                f"AXL  CUCM {version}, {'mixed' if mode == 1 else 'non-secure'} mode, {len(rows)} node(s)"
            )
            members: dict[str, str] = {}  # address -> FQDN
            if any(is_address(r["name"]) for r in rows):
                members = {m.ip: m.fqdn for m in cluster.network_cluster()}
                self.say(f"CLI  show network cluster: {len(members)} member(s)")
        finally:
            cluster.close()
        rest = _major(version) >= 14
        cluster = self.cluster_for([publisher], self.work / "known_hosts", rest=rest)
        try:
            # The exact certificates the publisher trusts for tomcat vouch for the other nodes'
            # (self-signed, on a fresh cluster) HTTPS certificates: no CA is widened by them.
            self.vouched = {
                probe.tls_fingerprint(x509.load_pem_x509_certificate(p.encode()).public_bytes(Encoding.DER))
                for p in cluster.trust_certificates(pub_name, "tomcat")
            }
        finally:
            cluster.close()
        nodes = [publisher]
        for row in rows:
            listed = row["name"]
            is_imp = "IM and Presence" in row["processNodeRole"] or "CUP" in row["processNodeRole"].upper()
            if not is_imp and row["nodeUsage"] == "Publisher":
                if listed != pub_name:
                    publisher.processnode = listed
                continue
            fqdn = members.get(listed) or listed
            if is_address(fqdn):
                fqdn = ""
            address = self.address_of(fqdn, listed if is_address(listed) else "") if fqdn else listed
            role: Role = "imp" if is_imp else "subscriber"
            name = self.trust_tls(address, o.https_port, role)
            if fqdn and name.lower() != fqdn.lower():
                self.say(f"     note: {listed} is {fqdn} to CUCM, its certificate names {name}: using {name}")
            node = FoundNode(name, role, address, listed if listed != name else "", o.https_port, o.ssh_port)
            node.host_key = self.trust_host_key(address, o.ssh_port, name)
            nodes.append(node)
        known_hosts = self.write_known_hosts(nodes)
        cluster = self.cluster_for(nodes, known_hosts, rest=rest)
        try:
            for node in nodes:
                for cert_type, roles in self.o.roles_by_type.items():
                    if node.role in roles:
                        node.certificates[cert_type] = self.read_cert(cluster, node, cert_type)
        finally:
            cluster.close()
        name = o.cluster_name or pub_name.split(".")[0]
        return Discovery(name, version, mode, nodes, list(self.extra))

    def read_cert(self, cluster: Cluster, node: FoundNode, cert_type: str) -> dict[str, str]:
        try:
            pem = cluster.identity_certificate(node.name, cert_type)
        except CucmError as exc:
            return {"error": str(exc)}
        cert = x509.load_pem_x509_certificate(pem.encode())
        return {
            "names": ", ".join(cert_names(cert.public_bytes(Encoding.DER))),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%d"),
            "issuer": "self-signed" if cert.issuer == cert.subject else cert.issuer.rfc4514_string(),
        }


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


def discover(options: DiscoverOptions, say: Callable[[str], None], ask: Ask) -> Discovery:
    """Read the cluster behind ``options.host``; raises :class:`DiscoveryRefused` before anything
    is written when a node is not trusted or not found."""
    try:
        return _Discoverer(options, say, ask).run()
    except CucmError as exc:
        raise DiscoveryRefused(f"{exc}; nothing written") from None


# --------------------------------------------------------------------------- writing


def _q(value: str) -> str:
    return json.dumps(value)


def _rel(path: Path, folder: Path) -> str:
    return os.path.relpath(path.resolve(), folder)


def write_files(found: Discovery, options: DiscoverOptions) -> list[Path]:
    """known_hosts, the CA bundle (when certificates were confirmed here) and the configuration,
    beside ``options.output``. Returns what was written."""
    out = options.output
    folder = out.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    known_hosts = folder / f"{found.cluster}-known_hosts"
    known_hosts.write_text(
        "".join(
            n.host_key.known_hosts_line([n.address, n.name], n.ssh_port) + "\n"
            for n in found.nodes
            if n.host_key is not None
        ),
        encoding="utf-8",
    )
    written.append(known_hosts)
    if found.bundle_pems or options.ca_bundle is None:
        bundle = folder / f"{found.cluster}-ca-bundle.pem"
        base = options.ca_bundle.read_text(encoding="utf-8").rstrip("\n") + "\n" if options.ca_bundle else ""
        bundle.write_text(base + "".join(found.bundle_pems), encoding="utf-8")
        written.append(bundle)
    else:
        assert options.ca_bundle is not None
        bundle = options.ca_bundle
    out.write_text(render_config(found, options, bundle, known_hosts), encoding="utf-8")
    written.append(out)
    return written


def _password_lines(source: PasswordSource, folder: Path) -> str:
    if source.env:
        return f"password_env = {_q(source.env)}"
    return f"password_file = {_q(_rel(Path(source.file), folder))}"


def render_config(found: Discovery, options: DiscoverOptions, bundle: Path, known_hosts: Path) -> str:
    folder = options.output.resolve().parent
    name = found.cluster
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# cucm-renew configuration discovered from {options.host} on {stamp}:",
        f"# CUCM {found.version}, {'mixed' if found.security_mode == 1 else 'non-secure'} mode.",
        "# Passwords are not in this file: it names where they are read from.",
        "renew_before_days = 30",
    ]
    if options.time_scale != 1.0:
        lines += [
            "# The (simulated) cluster's clock runs this much faster.",
            f"time_scale = {options.time_scale:g}",
        ]
    lines += ["", "[risport]", "requests_per_minute = 15", "", "[ca.desk]", 'kind = "manual"']
    ca = "desk"
    if options.local_ca is not None:
        lines += ["", "[ca.lab]", 'kind = "local"', f"folder = {_q(_rel(options.local_ca, folder))}"]
        ca = "lab"
    lines += [
        "",
        f"[clusters.{name}]",
        f"version = {_q(found.version.replace('(', '-').rstrip(')'))}",
        f"ca_bundle = {_q(_rel(bundle, folder))}",
        f"known_hosts = {_q(_rel(known_hosts, folder))}",
        f"ca = {_q(ca)}",
        "",
        f"[clusters.{name}.platform]",
        f"username = {_q(options.platform_user)}",
        _password_lines(options.platform_password, folder),
        "",
        f"[clusters.{name}.axl]",
        f"username = {_q(options.axl_user)}",
        _password_lines(options.axl_password, folder),
    ]
    for node in found.nodes:
        lines += ["", f"[[clusters.{name}.nodes]]"]
        for cert_type, seen in node.certificates.items():
            what = seen.get("error") or f"{seen['names']}, expires {seen['not_after']}, {seen['issuer']}"
            lines.append(f"# {cert_type}: {what}")
        lines += [
            f"name = {_q(node.name)}",
            f"role = {_q(node.role)}",
            f"address = {_q(node.address)}",
            f"https_port = {node.https_port}",
            f"ssh_port = {node.ssh_port}",
        ]
        if node.processnode:
            lines.append(f"processnode = {_q(node.processnode)}   # how CUCM's processnode table names it")
    return "\n".join(lines) + "\n"


def summary(found: Discovery) -> str:
    lines = [
        f"cluster {found.cluster}: CUCM {found.version}, "
        f"{'mixed' if found.security_mode == 1 else 'non-secure'} mode, {len(found.nodes)} node(s)"
    ]
    for node in found.nodes:
        alias = f" (processnode {node.processnode})" if node.processnode else ""
        lines.append(f"  {node.role:<10} {node.name} at {node.address}{alias}")
        for cert_type, seen in node.certificates.items():
            what = seen.get("error") or f"{seen['names']}  expires {seen['not_after']}  {seen['issuer']}"
            lines.append(f"    {cert_type:<12} {what}")
    return "\n".join(lines)
