"""Reading CLI output: the texts CUCM prints (and variants public tools accept)."""

from __future__ import annotations

from adapters.cucm import cli
from adapters.cucm.ssh import YES_NO, clean, strip_echo_and_prompt
from tests.adapters.cucm.servers import make_csr_pem


def test_sso_status() -> None:
    assert cli.sso_enabled("SSO Status: SAML SSO Enabled\n") is True
    assert cli.sso_enabled("SSO Status: SSO Disabled\n") is False
    assert cli.sso_enabled("SSO Status: SAML SSO Disabled\nIdP Metadata Imported Date = N/A") is False
    assert cli.sso_enabled("Executed command unsuccessfully\nInvalid command") is None


def test_drs_status() -> None:
    assert cli.drs_running("Status: Backup is in progress\nPercentage Complete: 40\n") is True
    assert cli.drs_running("Status: A restore is in progress\n") is True
    assert cli.drs_running("Status: SUCCESS :Backup Completed...\nPercentage Complete: 100\n") is False
    assert cli.drs_running("Status: ERROR :Backup failed\n") is False
    assert cli.drs_running("Executed command unsuccessfully\nInvalid command\n") is None


def test_pem_blocks_and_errors() -> None:
    csr = make_csr_pem("cucm-pub.example.com")
    noisy = "[\n  Version: V3\n]\n" + csr.replace("\n", "\r\n")
    assert cli.pem_blocks(clean(noisy), "CERTIFICATE REQUEST") == [csr]
    assert cli.pem_blocks(csr) == []  # a CSR is not a certificate
    text = "Executed command unsuccessfully\nCSR SAN and Certificate SAN Does Not Match\n"
    assert (
        cli.error_text(text) == "Executed command unsuccessfully / CSR SAN and Certificate SAN Does Not Match"
    )
    assert cli.CSR_GENERATED.search("Successfully  Generated CSR for tomcat.")


def test_service_states_and_trust_files() -> None:
    out = (
        "Cisco Tomcat[STOPPING]\nCommanded Out of Service\nCisco Tomcat[NOTRUNNING]\n"
        "Cisco Tomcat[STARTING]\nCisco Tomcat[RUNNING]"
    )
    assert cli.service_states(out) == ["STOPPING", "NOTRUNNING", "STARTING", "RUNNING"]
    listing = "\ntomcat-trust/Root.pem: Trust Certificate\nCallManager-trust/x.pem: Trust Certificate\n"
    assert cli.trust_files(listing, "tomcat-trust") == ["tomcat-trust/Root.pem"]


def test_terminal_output_cleanup() -> None:
    raw = "utils sso status\r\n\x1b[0mSSO Status: SSO Disabled\r\nadmin:"
    assert strip_echo_and_prompt(clean(raw), "utils sso status") == "SSO Status: SSO Disabled"
    assert YES_NO.search("Proceed with regeneration (yes|no)? ")
    assert YES_NO.search("Include OU in CSR (yes|no)?")


def test_show_network_cluster_members_and_not_the_processnode_block() -> None:
    from adapters.cucm.cli import network_cluster

    # Cisco's own example (T215013): the publisher adds its processnode entries after the members.
    output = (
        "192.0.2.20 cucm-pub.example.com cucm-pub Publisher callmanager DBPub authenticated\n"
        "192.0.2.30 cucm-sub1.example.com cucm-sub1 Subscriber callmanager DBSub authenticated using TCP "
        "since Mon Jul 1 13:44:09 2019\n"
        "192.0.2.40 imp-pub.example.com imp-pub Subscriber cups DBPub authenticated using TCP since Fri Oct "
        "15 10:22:20 2021\n\nServer Table (processnode) Entries\n----------------------------------\n"
        "192.0.2.20\n192.0.2.30\n"
    )
    members = network_cluster(output)
    assert [(m.ip, m.fqdn, m.role, m.product) for m in members] == [
        ("192.0.2.20", "cucm-pub.example.com", "Publisher", "callmanager"),
        ("192.0.2.30", "cucm-sub1.example.com", "Subscriber", "callmanager"),
        ("192.0.2.40", "imp-pub.example.com", "Subscriber", "cups"),
    ]
    assert all(m.authenticated for m in members)
    assert network_cluster("Executed command unsuccessfully\nInvalid command\n") == []
