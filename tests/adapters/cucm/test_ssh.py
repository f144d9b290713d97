"""The platform CLI over a real SSH server (paramiko server mode) with a canned ``admin:`` shell."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.cucm.cluster import ClusterConfig, Credentials, build_cluster
from adapters.cucm.port import CucmAuthError, CucmRejected, HostKeyMismatch, NodeRef
from adapters.cucm.ssh import CliSession
from tests.adapters.cucm.conftest import FAST, NAME, Pki
from tests.adapters.cucm.servers import ShellIO, SshServer, ed25519_host_key, make_csr_pem

CSR = make_csr_pem(NAME)


class Cli:
    """Canned commands whose effects the tests can inspect."""

    def __init__(self) -> None:
        self.ou_answers: list[str] = []
        self.pasted: list[str] = []
        self.csr: str | None = None
        self.pager_answers: list[str] = []

    def commands(self) -> dict[str, object]:
        return {
            "utils sso status": lambda io, _: io.write("SSO Status: SAML SSO Enabled\n"),
            "set csr gen tomcat": self.csr_gen,
            "show csr own tomcat": self.show_csr,
            "set cert import trust tomcat": self.import_cert,
            "set cert import own tomcat": self.import_cert,
            "utils service restart Cisco Tomcat": self.restart,
            "show cert list trust": self.paged_list,
            "utils disaster_recovery status backup": lambda io, _: io.write(
                "Status: Backup is in progress\nPercentage Complete: 40\n"
            ),
        }

    def paged_list(self, io: ShellIO, _: str) -> None:
        io.write("".join(f"tomcat-trust/ca{i}.pem: Trust Certificate\n" for i in range(3)))
        io.write("options: q=quit, n=next, p=prev, b=begin, e=end (lines 1 - 3 of 6) : ")
        self.pager_answers.append((io.readline() or "").strip())
        io.write("\n" + "".join(f"tomcat-trust/ca{i}.pem: Trust Certificate\n" for i in range(3, 6)))

    def csr_gen(self, io: ShellIO, _: str) -> None:
        io.write("Include OU in CSR (yes|no)?")
        answer = io.readline() or ""
        self.ou_answers.append(answer.strip())
        self.csr = CSR
        io.write("\nSuccessfully Generated CSR for tomcat.\n")

    def show_csr(self, io: ShellIO, _: str) -> None:
        if self.csr is None:
            io.write("Executed command unsuccessfully\ntomcat.csr does not exist\n")
        else:
            io.write(self.csr)

    def import_cert(self, io: ShellIO, _: str) -> None:
        io.write("Paste the Certificate and Hit Enter\n")
        lines: list[str] = []
        while True:
            line = io.readline()
            if line is None:
                return
            if not line.strip() and any("END CERTIFICATE" in x for x in lines):
                break
            lines.append(line)
        pem = "\n".join(lines) + "\n"
        self.pasted.append(pem)
        if "BEGIN CERTIFICATE" not in pem:
            io.write("Executed command unsuccessfully\nCA Certificate is Not Available in the Trust-Store\n")
            return
        io.write(
            "\nSuccessfully imported certificate for tomcat.\nPlease restart services related to tomcat.\n"
        )

    def restart(self, io: ShellIO, _: str) -> None:
        io.write("Do not press Ctrl+C while the service is restarting.\nService Manager is running\n")
        for state in ("STOPPING", "NOTRUNNING", "STARTING", "RUNNING"):
            time.sleep(0.05)
            io.write(f"Cisco Tomcat[{state}]\n")


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def sshd(cli: Cli) -> Iterator[SshServer]:
    server = SshServer(ed25519_host_key(), cli.commands()).start()  # type: ignore[arg-type]
    yield server
    server.stop()


def known_hosts(tmp_path: Path, server: SshServer, key: object | None = None) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line(key))  # type: ignore[arg-type]
    return path


def session(server: SshServer, hosts: Path, password: str = "platform-pass") -> CliSession:  # noqa: S107
    node = NodeRef(NAME, "127.0.0.1", 8443, server.port, "publisher")
    return CliSession(
        node, username="osadmin", password=password, known_hosts=str(hosts), policy=FAST, command_timeout=15
    )


def cluster_for(server: SshServer, hosts: Path, pki: Pki):  # type: ignore[no-untyped-def]
    config = ClusterConfig(
        name="lab",
        nodes=(NodeRef(NAME, "127.0.0.1", 8443, server.port, "publisher"),),
        platform=Credentials("osadmin", "platform-pass"),
        axl=Credentials("axladmin", "app-pass"),
        ca_bundle=str(pki.bundle),
        known_hosts=str(hosts),
        use_rest=False,
        retry=FAST,
        ssh_command_timeout=15,
        restart_timeout=15,
    )
    return build_cluster(config)


def test_commands_share_one_login_and_strip_echo_and_prompt(sshd: SshServer, tmp_path: Path) -> None:
    cli_session = session(sshd, known_hosts(tmp_path, sshd))
    try:
        assert cli_session.run("utils sso status") == "SSO Status: SAML SSO Enabled"
        out = cli_session.run("utils disaster_recovery status backup")
        assert out.splitlines() == ["Status: Backup is in progress", "Percentage Complete: 40"]
        assert "Executed command unsuccessfully" in cli_session.run("show nonsense")
    finally:
        cli_session.close()
    assert sshd.logins == 1
    assert sshd.received == ["utils sso status", "utils disaster_recovery status backup", "show nonsense"]


def test_changed_host_key_is_refused_naming_the_file_and_fix(sshd: SshServer, tmp_path: Path) -> None:
    hosts = known_hosts(tmp_path, sshd, ed25519_host_key())
    with capture_logs() as logs, pytest.raises(HostKeyMismatch) as caught:
        session(sshd, hosts).run("utils sso status")
    message = str(caught.value)
    assert "changed" in message and str(hosts) in message and "Fix:" in message
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert sshd.logins == 0 and not [e for e in logs if e["event"] == "cucm.retry"]


def test_unknown_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    hosts = tmp_path / "known_hosts"
    hosts.write_text("[127.0.0.1]:1 " + sshd.host_key.get_name() + " " + sshd.host_key.get_base64() + "\n")
    with pytest.raises(HostKeyMismatch, match="not in"):
        session(sshd, hosts).run("utils sso status")
    with pytest.raises(HostKeyMismatch, match="does not exist"):
        session(sshd, tmp_path / "missing").run("utils sso status")
    assert sshd.logins == 0


def test_wrong_password_is_an_auth_error_not_retried(sshd: SshServer, tmp_path: Path) -> None:
    with capture_logs() as logs, pytest.raises(CucmAuthError, match="platform"):
        session(sshd, known_hosts(tmp_path, sshd), password="wrong").run("utils sso status")
    assert not [e for e in logs if e["event"] == "cucm.retry"]


def test_exec_channel_when_the_shell_is_refused(cli: Cli, tmp_path: Path) -> None:
    server = SshServer(ed25519_host_key(), cli.commands(), allow_shell=False).start()  # type: ignore[arg-type]
    try:
        s = session(server, known_hosts(tmp_path, server))
        assert s.run("utils sso status") == "SSO Status: SAML SSO Enabled"
        assert s.run("utils sso status") == "SSO Status: SAML SSO Enabled"
        s.close()
        assert server.exec_commands == ["utils sso status", "utils sso status"]
    finally:
        server.stop()


def test_cli_csr_import_sso_drs_and_tomcat_restart_through_the_port(
    sshd: SshServer, cli: Cli, tmp_path: Path, pki: Pki
) -> None:
    cluster = cluster_for(sshd, known_hosts(tmp_path, sshd), pki)
    try:
        assert cluster.current_csr(NAME, "tomcat") is None
        csr = cluster.generate_csr(NAME, "tomcat")
        assert csr.strip() == CSR.strip() and cli.ou_answers == ["yes"]
        assert cluster.current_csr(NAME, "tomcat") == csr
        cluster.upload_trust(NAME, "tomcat", [pki.ca.pem, pki.other_ca.pem], "test roots")
        assert [p.strip() for p in cli.pasted] == [pki.ca.pem.strip(), pki.other_ca.pem.strip()]
        cluster.upload_identity(NAME, "tomcat", pki.server.pem, [pki.ca.pem])
        assert cli.pasted[-1].strip() == pki.server.pem.strip()
        assert cluster.sso_enabled(NAME) is True
        assert cluster.backup_running() is True
        cluster.restart_service(NAME, "Cisco Tomcat")
        assert sshd.received[-1] == "utils service restart Cisco Tomcat"
    finally:
        cluster.close()
    assert sshd.logins == 1


def test_cli_import_failure_carries_the_cli_text(sshd: SshServer, cli: Cli, tmp_path: Path, pki: Pki) -> None:
    cluster = cluster_for(sshd, known_hosts(tmp_path, sshd), pki)
    bogus = "-----BEGIN X-----\nAAAA\n-----END CERTIFICATE-----"
    try:
        with pytest.raises(CucmRejected) as caught:
            cluster.upload_identity(NAME, "tomcat", bogus, [])
        assert caught.value.cucm_message.endswith("CA Certificate is Not Available in the Trust-Store")
    finally:
        cluster.close()


def test_paged_output_is_read_to_the_end(sshd: SshServer, cli: Cli, tmp_path: Path) -> None:
    s = session(sshd, known_hosts(tmp_path, sshd))
    try:
        out = s.run("show cert list trust")
    finally:
        s.close()
    assert cli.pager_answers == ["n"]
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("tomcat-trust/")] == [
        f"tomcat-trust/ca{i}.pem" for i in range(6)
    ]
