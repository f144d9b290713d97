"""The CUCM platform CLI (`admin:`), as a plain function of (cluster, node, input line) -> output.

A :class:`CliSession` holds what one SSH session remembers between lines: a pending question
(`Include OU in CSR (yes|no)?`) or a certificate being pasted. :meth:`CliSession.feed` yields the
output in chunks, so a long command (a service restart) can be streamed as it progresses;
:attr:`CliSession.prompt` is what to print next. Unknown commands answer ``Executed command
unsuccessfully`` followed by ``Invalid command`` (modelled; CUCM prints a usage hint).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from simulator import pki, sql
from simulator.cluster import Cluster, CucmError, Node
from simulator.cluster.platform import REPLICATION_TEXTS
from simulator.releases import release

PROMPT = "admin:"
OU_PROMPT = "Include OU in CSR (yes|no)?"
PASTE_PROMPT = "Paste the Certificate and Hit Enter"
REGEN_PROMPT = "Proceed with regeneration (yes|no)?"
FAILED = "Executed command unsuccessfully"
BANNER = (
    "\nCommand Line Interface is starting up, please wait ...\n\n"
    "   Welcome to the Platform Command Line Interface\n\n"
)


class CliSession:
    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node
        self.prompt = PROMPT
        self.closed = False
        self._continuation: Callable[[str], Iterator[str]] | None = None

    def feed(self, line: str) -> Iterator[str]:
        line = line.rstrip("\r\n")
        if self._continuation is not None:
            cont, self._continuation = self._continuation, None
            self.prompt = PROMPT
            yield from cont(line)
            return
        yield from self._command(line.strip())

    def _ask(self, prompt: str, then: Callable[[str], Iterator[str]]) -> None:
        self.prompt = prompt
        self._continuation = then

    # ------------------------------------------------------------------ commands
    def _command(self, line: str) -> Iterator[str]:
        words = line.split()
        low = [w.lower() for w in words]
        if not words:
            return
        if low[0] in ("exit", "quit"):
            self.closed = True
            return
        handlers: list[tuple[tuple[str, ...], Callable[[list[str]], Iterator[str]]]] = [
            (("show", "version", "active"), self._show_version),
            (("show", "csr", "list", "own"), self._show_csr_list),
            (("show", "csr", "own"), self._show_csr),
            (("show", "cert", "list"), self._show_cert_list),
            (("show", "cert", "own"), self._show_cert_own),
            (("show", "cert", "trust"), self._show_cert_trust),
            (("set", "csr", "gen"), self._set_csr_gen),
            (("set", "cert", "import"), self._set_cert_import),
            (("set", "cert", "regen"), self._set_cert_regen),
            (("utils", "service", "list"), self._service_list),
            (("utils", "service"), self._service_control),
            (("utils", "ctl", "update", "ctlfile"), self._ctl_update),
            (("utils", "sso"), self._sso),
            (("utils", "disaster_recovery", "status"), self._drs_status),
            (("utils", "itl", "reset", "localkey"), self._itl_reset),
            (("utils", "dbreplication", "runtimestate"), self._replication_runtimestate),
            (("utils", "dbreplication", "status"), self._replication_status),
            (("show", "network", "cluster"), self._network_cluster),
            (("show", "ctl"), self._show_ctl),
            (("show", "license", "all"), self._show_license),
            (("show", "license", "summary"), self._show_license),
            (("run", "sql"), self._run_sql),
        ]
        for prefix, handler in handlers:
            if tuple(low[: len(prefix)]) == prefix:
                yield from handler(words[len(prefix) :])
                return
        yield f"{FAILED}\nInvalid command\n"

    def _unit(self, arg: str, types: tuple[str, ...]) -> str | None:
        unit = arg.split("/")[0]
        return next((t for t in types if t.lower() == unit.lower()), None)

    def _show_version(self, args: list[str]) -> Iterator[str]:
        yield (
            f"\nActive Master Version: {self.cluster.version}\n"
            "Active Version Installed Software Options:\nNo Installed Software Options Found.\n"
        )

    def _show_csr_list(self, args: list[str]) -> Iterator[str]:
        with self.cluster.lock:
            lines = [f"{t}/{t}.csr" for t, i in self.node.identities.items() if i.csr is not None]
        yield "".join(f"{line}\n" for line in lines)

    def _show_csr(self, args: list[str]) -> Iterator[str]:
        unit = self._unit(args[0], self.node.cert_types) if args else None
        if unit is None:
            yield f"{FAILED}\nInvalid unit: {' '.join(args)}\n"
            return
        ident = self.node.identities[unit]
        if ident.csr is None:
            yield f"{FAILED}\n{sql_safe(unit)}.csr does not exist\n"
            return
        yield pki.csr_pem(ident.csr)

    def _show_cert_list(self, args: list[str]) -> Iterator[str]:
        kind = args[0].lower() if args else ""
        with self.cluster.lock:
            if kind == "own":
                lines = [f"{t}/{t}.pem: {i.description}" for t, i in self.node.identities.items()]
            elif kind == "trust":
                lines = [
                    f"{store}/{f}: Trust Certificate"
                    for store, certs in self.node.trust.items()
                    for f in certs
                ]
            else:
                yield f"{FAILED}\nInvalid command\n"
                return
        yield "\n" + "".join(f"{line}\n" for line in lines)

    def _show_cert_own(self, args: list[str]) -> Iterator[str]:
        unit = self._unit(args[0], tuple(self.node.identities)) if args else None
        if unit is None:
            yield f"{FAILED}\nInvalid unit: {' '.join(args)}\n"
            return
        yield describe(self.node.identities[unit].installed)

    def _show_cert_trust(self, args: list[str]) -> Iterator[str]:
        if not args or "/" not in args[0]:
            yield f"{FAILED}\nInvalid command\n"
            return
        store, _, filename = args[0].partition("/")
        cert = self.node.trust.get(store, {}).get(filename)
        if cert is None:
            yield f"{FAILED}\nCertificate {args[0]} not found\n"
            return
        yield describe(cert)

    def _set_csr_gen(self, args: list[str]) -> Iterator[str]:
        unit = self._unit(args[0], self.node.cert_types) if args else None
        if unit is None:
            yield f"{FAILED}\nInvalid unit: {' '.join(args)}\n"
            return

        def generate(include_ou: bool) -> Iterator[str]:
            try:
                self.cluster.generate_csr(self.node, unit, include_ou=include_ou)
            except CucmError as exc:
                yield f"{FAILED}\n{exc.message}\n"
                return
            yield f"Successfully Generated CSR for {unit}.\n"

        def answer(text: str) -> Iterator[str]:
            choice = text.strip().lower()
            if choice not in ("yes", "no"):
                yield f"{FAILED}\nPlease answer yes or no\n"
                return
            yield from generate(choice == "yes")

        # The question exists from 14SU1 (SG14); before it the OU is always in the subject.
        if release(self.cluster.version).include_ou_prompt:
            self._ask(OU_PROMPT, answer)
        else:
            yield from generate(True)

    def _set_cert_import(self, args: list[str]) -> Iterator[str]:
        if len(args) < 2 or args[0].lower() not in ("own", "trust"):
            yield f"{FAILED}\nInvalid command\n"
            return
        kind = args[0].lower()
        unit = self._unit(args[1].removesuffix("-trust"), self.node.cert_types)
        if unit is None:
            yield f"{FAILED}\nInvalid unit: {args[1]}\n"
            return
        pasted: list[str] = []

        def collect(text: str) -> Iterator[str]:
            if text.strip() or not any("END CERTIFICATE" in p for p in pasted):
                pasted.append(text)
                self._ask("", collect)
                return
            body = "\n".join(pasted) + "\n"
            installed_on = [self.node.name]
            try:
                if kind == "own":
                    _, installed_on = self.cluster.upload_identity_to(self.node, unit, [body], via="cli")
                else:
                    self.cluster.upload_trust(self.node, [unit], [body])
            except CucmError as exc:
                yield f"{FAILED}\n{exc.message}\n"
                return
            if installed_on != [self.node.name]:
                # A multi-server certificate lands on every node its CSR named (T118731's list) [I].
                yield "\nCertificate upload operation successful\n" + "".join(f"{n}\n" for n in installed_on)
            yield (
                f"\nSuccessfully imported certificate for {unit}.\n"
                f"Please restart services related to {unit} for the new certificate to become active.\n"
            )

        yield f"{PASTE_PROMPT}\n"
        self._ask("", collect)

    def _set_cert_regen(self, args: list[str]) -> Iterator[str]:
        unit = self._unit(args[0], tuple(self.node.identities)) if args else None
        if unit is None:
            yield f"{FAILED}\nInvalid unit: {' '.join(args)}\n"
            return

        def answer(text: str) -> Iterator[str]:
            if text.strip().lower() != "yes":
                yield "Certificate regeneration cancelled.\n"
                return
            self.cluster.regenerate(self.node, unit)
            yield (
                f"Successfully Regenerated Certificate for {unit}.\n"
                f"You must restart services related to {unit} for the regenerated certificates to become "
                "active.\n"
            )

        yield (
            "WARNING: This operation will overwrite any CA signed certificate previously imported for "
            f"{unit}\n"
        )
        self._ask(REGEN_PROMPT, answer)

    def _service_list(self, args: list[str]) -> Iterator[str]:
        with self.cluster.lock:
            self.cluster.advance()
            lines = ["Requesting service status, please wait...", "System SSH [STARTED]"]
            for svc in self.node.services.values():
                status = svc.status()
                if status == "Stopped":
                    lines.append(f"{svc.name}[STOPPED]  {svc.reason()[1]}")
                else:
                    lines.append(f"{svc.name}[{status.upper()}]")
            lines.append(f"Primary Node ={'true' if self.node.role == 'publisher' else 'false'}")
        yield "".join(f"{line}\n" for line in lines)

    def _service_control(self, args: list[str]) -> Iterator[str]:
        if len(args) < 2 or args[0].lower() not in ("restart", "start", "stop"):
            yield f"{FAILED}\nInvalid command\n"
            return
        action = args[0].capitalize()
        wanted = " ".join(args[1:])
        svc_name = next((n for n in self.node.services if n.lower() == wanted.lower()), None)
        if svc_name is None:
            yield f"{FAILED}\nService Not Found\n"
            return
        try:
            self.cluster.control(self.node, svc_name, action)
        except CucmError as exc:
            yield f"{FAILED}\n{exc.message}\n"
            return
        if action == "Restart":
            yield (
                "Do not press Ctrl+C while the service is restarting. If the service has not restarted "
                "properly, execute the same command again.\nService Manager is running\n"
            )
        budget = self.cluster.scaled(self.cluster.restart_seconds[1]) * 20 + 30
        deadline = time.monotonic() + budget
        last = ""
        targets = {"Restart": "Started", "Start": "Started", "Stop": "Stopped"}
        while time.monotonic() < deadline:
            with self.cluster.lock:
                self.cluster.advance()
                state = self.node.services[svc_name].state
            if state != last:
                label = {"Started": "RUNNING", "Stopped": "NOTRUNNING"}.get(state, state.upper())
                if state == "Stopped":
                    yield "Commanded Out of Service\n"
                yield f"{svc_name}[{label}]\n"
                last = state
            if state == targets[action] and (action != "Restart" or last == "Started"):
                return
            time.sleep(0.01)
        yield f"{FAILED}\n{svc_name} did not reach {targets[action]}\n"

    def _ctl_update(self, args: list[str]) -> Iterator[str]:
        try:
            self.cluster.update_ctl(self.node)
        except CucmError as exc:
            yield f"{FAILED}\n{exc.message}\n"
            return
        yield (
            "Updating CTL file\nCTL file Updated\nPlease Restart the TFTP and Cisco CallManager services "
            "on all nodes in the cluster that run these services\n"
        )

    def _sso(self, args: list[str]) -> Iterator[str]:
        sub = args[0].lower() if args else ""
        if sub == "status":
            state = "SAML SSO Enabled" if self.cluster.sso_enabled else "SSO Disabled"
            yield f"SSO Status: {state}\n"
        elif sub == "disable":
            with self.cluster.lock:
                was = self.cluster.sso_enabled
                self.cluster.sso_enabled = False
            yield "SAML SSO disabled successfully\n" if was else "SSO is already disabled\n"
        elif sub == "enable":
            yield f"{FAILED}\nSSO can be enabled only from the Cisco Unified CM Administration GUI\n"
        else:
            yield f"{FAILED}\nInvalid command\n"

    def _drs_status(self, args: list[str]) -> Iterator[str]:
        kind = args[0].lower() if args else ""
        if kind not in ("backup", "restore"):
            yield f"{FAILED}\nInvalid command\n"
            return
        running = self.cluster.drs_running
        if running == kind:
            # The running shape a public parser reads (ANS): Status, Tar Filename, Storage Location,
            # Operation, Percentage Complete, then one row per server and component [I].
            stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(self.cluster.cucm_wall(time.time())))
            rows = "".join(
                f"{'CUCM':<12}{n.short:<16}{'PLATFORM':<20}{'Active':<12}"
                f"{time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}  "
                f"{stamp}_{n.short}_cucm_platform.log\n"
                for n in self.cluster.nodes
                if n.role != "imp"
            )
            yield (
                f"Status: RUNNING :{kind.capitalize()} in progress, please wait...\n"
                f"Tar Filename: {stamp}.tar\nStorage Location: NETWORK\nOperation: {kind}\n"
                f"Percentage Complete: 40\n{rows}"
            )
        elif running:
            yield f"Status: RUNNING :A {running} is in progress\n"
        else:
            # Idle, as a real 15.0 publisher prints it (CTM) [I].
            yield f"drfCliMsg: No {kind} status available\n"

    def _itl_reset(self, args: list[str]) -> Iterator[str]:
        self.cluster.itl_reset(self.node)
        yield (
            "Generating the reset ITL file.....\nThe reset ITL file was generated successfully\n"
            "Locating active TFTP servers...\nPlease restart the TFTP service and reset all phones\n"
        )

    def _run_sql(self, args: list[str]) -> Iterator[str]:
        try:
            columns, rows = sql.query(self.cluster, " ".join(args))
        except sql.SqlError as exc:
            yield f"{FAILED}\n{exc}\n"
            return
        yield sql.format_table(columns, rows)

    # ------------------------------------------------------------------ readiness (part 2 §7)
    def _replication_runtimestate(self, args: list[str]) -> Iterator[str]:
        """PCD14/T215013's shape: a summary, then one row per CUCM node with its Replicate_State."""
        if self.node.role == "imp":
            yield f"{FAILED}\nCommand not supported on this node\n"  # [U]: IM&P has its own
            return
        platform = self.cluster.platform
        members = [n for n in self.cluster.nodes if n.role != "imp"]
        if len(members) == 1:
            yield (
                "Runtime state cannot be performed on a cluster with a single active node; "
                "aborting operation\n"
            )
            return
        wall = self.cluster.cucm_wall(time.time())
        broken = any(platform.replication_code(n) != 2 for n in members)
        lines = [
            "",
            f"Server Time: {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime(wall))}",
            "",
            "Cluster Replication State: BROADCAST SYNC ended at: "
            + time.strftime("%Y-%m-%d-%H-%M", time.gmtime(wall - 86400)),
            "     Sync Result: SYNC COMPLETED on 753 tables out of 753",
            "     Sync Status: " + ("Errors were found" if broken else "All Tables are in sync"),
            "",
            f"DB Version: ccm{self.cluster.version.split('-')[0].replace('.', '_')}",
            "",
            "Repltimeout set to: 300s",
            "PROCESS option set to: 1",
            "",
            f"Cluster Detailed View from {self.node.short} ({len(members)} Servers):",
            "",
            f"{'':43}PING      DB/RPC/   REPL.    Replication    REPLICATION SETUP",
            f"{'SERVER-NAME':<25}{'IP ADDRESS':<18}(msec)    DbMon?    QUEUE    Group ID       "
            "(RTMT) & Details",
            f"{'-----------':<25}{'----------':<18}------    -------   -----    -----------    "
            "------------------",
        ]
        for i, n in enumerate(reversed(members)):
            code = platform.replication_code(n)
            rpc = "Y/Y/Y" if code == 2 else "Y/N/N"
            queue = "0" if code == 2 else "312"
            lines.append(
                f"{n.short:<25}{n.lan_ip:<18}{0.016 + 0.05 * i:<10.3f}{rpc:<10}{queue:<9}"
                f"{f'(g_{len(members) + 1 - i})':<15}{REPLICATION_TEXTS[code]}"
            )
        yield "\n".join(lines) + "\n"

    def _replication_status(self, args: list[str]) -> Iterator[str]:
        members = [n for n in self.cluster.nodes if n.role != "imp"]
        broken = any(self.cluster.platform.replication_code(n) != 2 for n in members)
        wall = time.strftime("%Y-%m-%d-%H-%M", time.gmtime(self.cluster.cucm_wall(time.time())))
        yield (
            f"\nReplication status command started at: {wall}\n"
            "Replication status command COMPLETED 681 tables checked out of 681\n"
            # The mismatch wording is [I]; the clean one is T215013's.
            + ("Errors or Mismatches Were Found!!!\n" if broken else "No Errors or Mismatches found.\n")
            + "\nUse 'file view activelog cm/trace/dbl/sdi/ReplicationStatus."
            f"{wall}.out' to see the details\n"
        )

    def _network_cluster(self, args: list[str]) -> Iterator[str]:
        """T215013's shape: IP, FQDN, host, role, product, DB role, authentication; then, on the
        publisher only, the processnode entries."""
        platform = self.cluster.platform
        lines = []
        imp_pub = next((n for n in self.cluster.nodes if n.role == "imp"), None)
        for n in self.cluster.nodes:
            if n.short in platform.missing_from_cluster:
                continue
            role = "Publisher" if n.role == "publisher" else "Subscriber"
            product = "cups" if n.role == "imp" else "callmanager"
            db = "DBPub" if n.role == "publisher" or n is imp_pub else "DBSub"
            if n.short in platform.unauthenticated:
                auth = "not authenticated"  # the wording of a failed peer is [U]
            elif n is self.node:
                auth = "authenticated"
            else:
                auth = "authenticated using TCP since Mon Jul 1 13:44:09 2019"
            lines.append(f"{n.lan_ip} {n.name} {n.short} {role} {product} {db} {auth}")
        if self.node.role == "publisher":
            lines += ["", "Server Table (processnode) Entries", "----------------------------------"]
            lines += [n.processnode_name for n in self.cluster.nodes if n.role != "imp"]
        yield "\n".join(lines) + "\n"

    def _show_ctl(self, args: list[str]) -> Iterator[str]:
        """T118893's shapes: no CTL, or records with the signer marked; the token's or the
        cluster's own key (tokenless: CallManager up to 11.5, ITLRecovery from 12.0 [I])."""
        kind = self.cluster.platform.ctl
        if not self.cluster.mixed_mode and kind != "token":
            kind = "none"
        if kind == "none":
            yield (
                "Length of CTL file: 0\nCTL File not found . Please run CTLClient plugin or run the CLI - "
                "utils ctl.. to generate the CTL file.\nError parsing the CTL File.\n"
            )
            return
        pub = self.cluster.publisher
        records = []
        if kind == "token":
            signer = 'cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems'
            records.append(
                (
                    signer,
                    "System Administrator Security Token",
                    "cn=Cisco Manufacturing CA;o=Cisco Systems",
                    "83:E9:08:00:00:00:55:45:AF:31",
                    True,
                )
            )
            records.append(('cn="SAST-ADN00854b1b ";ou=IPCBU;o="Cisco Systems',
                            "System Administrator Security Token",
                            "cn=Cisco Manufacturing CA;o=Cisco Systems", "41:AC:2B:00:00:00:55:4F:6A:0B",
                            False))  # fmt: skip
        else:
            unit = "ITLRecovery" if self.cluster.release >= (12, 0) else "CallManager"
            cert = pub.identities[unit].installed
            subject = _ctl_name(cert.subject)
            serial = format(cert.serial_number, "X")
            records.append((subject, "System Administrator Security Token", subject, serial, True))
        for n in self.cluster.nodes:
            if n.role == "imp":
                continue
            cert = n.identities["CallManager"].installed
            records.append((_ctl_name(cert.subject), "CCM+TFTP", _ctl_name(cert.issuer),
                            format(cert.serial_number, "X"), False))  # fmt: skip
        capf = pub.identities["CAPF"].installed
        records.append((_ctl_name(capf.subject), "CAPF", _ctl_name(capf.issuer),
                        format(capf.serial_number, "X"), False))  # fmt: skip
        out = [
            "The checksum value of the CTL file:",
            "0c05655de63fe2a98e6c1a0a7d0b8f1d(MD5)",
            "8f1d0a7d0b8e6c1a2a98e63fe0c05655de4f7a1b(SHA1)",
            "",
            "Length of CTL file: 4947",
            "The CTL File was last modified on Fri Mar 06 19:45:13 UTC 2015",
            "",
            "Parse CTL File",
            "----------------",
            "",
            "Version:        1.2",
            "HeaderLength:   336 (BYTES)",
            "",
        ]
        for i, (subject, function, issuer, serial, signed) in enumerate(records, 1):
            out += [
                f"CTL Record #:{i}",
                "----",
                "BYTEPOS TAG             LENGTH  VALUE",
                "-------  ---             ------  -----",
                "1       RECORDLENGTH    2       1186",
                "2       DNSNAME         16      ",
                f"3       SUBJECTNAME     {len(subject):<8}{subject}",
                f"4       FUNCTION        2       {function}",
                f"5       ISSUERNAME      {len(issuer):<8}{issuer}",
                f"6       SERIALNUMBER    {len(serial) // 2:<8}{serial}",
                "7       PUBLICKEY       140",
                "8       CERTIFICATE     902     (SEE BELOW)",
                "9       IPADDRESS       4       ",
                "",
            ]
            if signed:
                out += ["This etoken was used to sign the CTL file.", ""]
        out.append("The CTL file was verified successfully.")
        yield "\n".join(out) + "\n"

    def _show_license(self, args: list[str]) -> Iterator[str]:
        """T212915's registration block; the Smart License Manager runs on the publisher only, and
        the command prints nothing elsewhere (T212915)."""
        if self.node.role != "publisher" or self.cluster.release < (12, 0):
            yield "\n"
            return
        kind = self.cluster.platform.license
        registered = kind != "unregistered"
        lines = ["Smart Licensing Status", "======================", "", "Smart Licensing is ENABLED", ""]
        lines += ["Registration:", f"  Status: {'REGISTERED' if registered else 'UNREGISTERED'}"]
        if registered:
            lines += ["  Smart Account: Example Org", "  Virtual Account: UC"]
        lines.append(
            "  Export-Controlled Functionality: " + ("Allowed" if kind == "export" else "Not Allowed")
        )
        if registered:
            lines += ["  Initial Registration: SUCCEEDED on Jan 10 10:12:40 2024 UTC"]
        lines += ["", "License Authorization:"]
        lines.append(
            "  Status: AUTHORIZED on Jan 10 10:13:01 2024 UTC" if registered else "  Status: EVAL MODE"
        )
        if self.cluster.mixed_mode and kind != "export":
            # SCG125-SL's banner for mixed mode without an export-controlled registration.
            lines += [
                "",
                "The system is currently running Mixed mode. To continue running Mixed mode, please ensure "
                "Smart Licensing registration is completed using the Registration Token received from the "
                "Smart/Virtual Account that has Allow export-controlled functionality checked.",
            ]
        yield "\n".join(lines) + "\n"


def _ctl_name(name: object) -> str:
    """A DN as `show ctl` prints it: ``cn=...;ou=...;o=...`` (lower-case keys, `;`-separated)."""
    from cryptography import x509

    assert isinstance(name, x509.Name)
    keys = {"CN": "cn", "OU": "ou", "O": "o", "L": "l", "ST": "st", "C": "c"}
    parts = []
    for attr in name:
        short = attr.rfc4514_attribute_name
        parts.append(f"{keys.get(short, short.lower())}={attr.value!s}")
    return ";".join(parts)


def sql_safe(text: str) -> str:
    return text.replace("\n", " ")


def describe(cert: object) -> str:
    """`show cert own`: a decoded summary followed by the PEM (the layout is modelled)."""
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    fmt = "%a %b %d %H:%M:%S UTC %Y"
    return (
        "[\n"
        "  Version: V3\n"
        f"  Serial Number: {format(cert.serial_number, 'X')}\n"
        f"  SignatureAlgorithm: {pki.signature_description(cert)}\n"
        f"  Issuer Name: {_dn(cert.issuer)}\n"
        f"  Validity From: {cert.not_valid_before_utc.strftime(fmt)}\n"
        f"           To:   {cert.not_valid_after_utc.strftime(fmt)}\n"
        f"  Subject Name: {_dn(cert.subject)}\n"
        f"  Key: {pki.key_description(cert)}\n"
        f"  SubjectAltNames: {', '.join(pki.dns_sans(cert))}\n"
        "]\n" + pki.pem(cert)
    )


def _dn(name: object) -> str:
    from cryptography import x509

    assert isinstance(name, x509.Name)
    return ", ".join(f"{a.rfc4514_attribute_name}={a.value!s}" for a in name)


def run_command(cluster: Cluster, node: Node, line: str, answers: list[str] | None = None) -> str:
    """Run one command line (answering any follow-up prompts from ``answers``) and return its output."""
    session = CliSession(cluster, node)
    out = "".join(session.feed(line))
    for answer in answers or []:
        if session.prompt == PROMPT:
            break
        out += "".join(session.feed(answer))
    return out
