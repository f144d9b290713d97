"""The conditions a renewal checks before changing anything, as the simulated CLI shows them
(reference part 2 §7): each settable per test, each in the reference's shape."""

from __future__ import annotations

import re

import pytest

from simulator.cli import run_command
from simulator.cluster import Cluster
from simulator.cluster.platform import PlatformState
from simulator.main import _conditions, add_arguments


def cli(cluster: Cluster, node: str, line: str) -> str:
    return run_command(cluster, cluster.node(node), line)


def rows(output: str) -> dict[str, str]:
    """SERVER-NAME -> REPLICATION SETUP column of `utils dbreplication runtimestate`."""
    out = {}
    for line in output.splitlines():
        found = re.search(r"\(\d\) [A-Za-z ]+$", line)
        if found and line.split()[1].count(".") == 3:
            out[line.split()[0]] = found.group(0)
    return out


def test_replication_healthy_then_broken_on_one_node():
    cluster = Cluster(nodes=3)
    healthy = cli(cluster, "cucm-pub", "utils dbreplication runtimestate")
    assert "Cluster Detailed View from cucm-pub (3 Servers):" in healthy
    assert rows(healthy) == {n: "(2) Setup Completed" for n in ("cucm-pub", "cucm-sub1", "cucm-sub2")}
    assert "No Errors or Mismatches found." in cli(cluster, "cucm-pub", "utils dbreplication status")
    cluster.platform.set_replication("cucm-sub1.example.com", 3)
    broken = rows(cli(cluster, "cucm-pub", "utils dbreplication runtimestate"))
    assert broken["cucm-sub1"] == "(3) Mismatch"
    assert broken["cucm-sub2"] == "(2) Setup Completed"
    assert "Errors or Mismatches Were Found" in cli(cluster, "cucm-pub", "utils dbreplication status")


def test_single_node_runtimestate_is_refused_as_cucm_does():
    out = cli(Cluster(nodes=1), "cucm-pub", "utils dbreplication runtimestate")
    assert "cannot be performed on a cluster with a single active node" in out


def test_network_cluster_lists_authenticated_nodes_and_the_publishers_processnode_table():
    cluster = Cluster(nodes=3, imp=1, processnode_names="ip")
    out = cli(cluster, "cucm-pub", "show network cluster")
    lines = out.splitlines()
    assert lines[0] == "192.0.2.10 cucm-pub.example.com cucm-pub Publisher callmanager DBPub authenticated"
    assert lines[3].startswith("192.0.2.13 imp1.example.com imp1 Subscriber cups DBPub authenticated")
    assert lines[-3:] == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    assert "Server Table" not in cli(cluster, "cucm-sub1", "show network cluster")
    cluster.platform.missing_from_cluster.add("cucm-sub2")
    cluster.platform.unauthenticated.add("cucm-sub1")
    out = cli(cluster, "cucm-pub", "show network cluster")
    assert "cucm-sub2.example.com" not in out
    assert "cucm-sub1 Subscriber callmanager DBSub not authenticated" in out


def test_ctl_tokenless_token_and_none():
    cluster = Cluster(nodes=2, mixed_mode=True)
    out = cli(cluster, "cucm-pub", "show ctl")
    signer = out.split("This etoken was used to sign the CTL file.")[0].rsplit("CTL Record #:", 1)[1]
    assert "SUBJECTNAME" in signer and "cn=ITLRECOVERY_cucm-pub" in signer
    assert "System Administrator Security Token" in signer
    assert out.rstrip().endswith("The CTL file was verified successfully.")
    cluster.platform.set_ctl("token")
    signer = cli(cluster, "cucm-pub", "show ctl").split("This etoken was used")[0].rsplit("CTL Record", 1)[1]
    assert 'cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems' in signer
    assert "cn=Cisco Manufacturing CA;o=Cisco Systems" in signer
    assert cli(Cluster(nodes=1), "cucm-pub", "show ctl").startswith(
        "Length of CTL file: 0\nCTL File not found"
    )


def test_license_export_control_on_the_publisher_only():
    cluster = Cluster(nodes=2, mixed_mode=True)
    out = cli(cluster, "cucm-pub", "show license all")
    assert "  Status: REGISTERED\n" in out
    assert "  Export-Controlled Functionality: Allowed\n" in out
    assert cli(cluster, "cucm-sub1", "show license summary").strip() == ""
    cluster.platform.set_license("no-export")
    out = cli(cluster, "cucm-pub", "show license summary")
    assert "Export-Controlled Functionality: Not Allowed" in out
    assert "The system is currently running Mixed mode" in out
    cluster.platform.set_license("unregistered")
    assert "  Status: UNREGISTERED\n" in cli(cluster, "cucm-pub", "show license all")


def test_triggers_reenable_sso_and_start_a_backup_mid_run():
    platform = PlatformState()
    platform.add_trigger("csr", "sso")
    platform.add_trigger("identity", "drs")
    cluster = Cluster(nodes=2, platform=platform)
    assert cli(cluster, "cucm-pub", "utils sso status") == "SSO Status: SSO Disabled\n"
    cluster.generate_csr(cluster.publisher, "tomcat")
    assert cli(cluster, "cucm-sub1", "utils sso status") == "SSO Status: SAML SSO Enabled\n"
    assert cli(cluster, "cucm-pub", "utils disaster_recovery status backup").startswith("drfCliMsg")
    cluster.regenerate(cluster.publisher, "ipsec")  # an identity change fires the DRS trigger
    assert "Status: RUNNING" in cli(cluster, "cucm-pub", "utils disaster_recovery status backup")


def test_extra_sans_and_subject_in_current_certificates():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--dir", "x", "--extra-san", "cucm-pub:example.com", "--extra-san", "cucm-pub:jabber.example.com",
         "--subject", "OU=Telephony,O=ACME,L=Lyon,ST=ARA,C=FR", "--replication-broken", "cucm-sub1",
         "--trigger", "csr:sso"]
    )  # fmt: skip
    platform, extra, subject = _conditions(args)
    cluster = Cluster(nodes=2, platform=platform, extra_sans=extra, subject=subject)
    out = cli(cluster, "cucm-pub", "show cert own tomcat")
    assert "SubjectAltNames: cucm-pub.example.com, example.com, jabber.example.com" in out
    assert "OU=Telephony" in out and "O=ACME" in out
    assert "(4) Setup Failed" in cli(cluster, "cucm-pub", "utils dbreplication runtimestate")
    with pytest.raises(ValueError, match="extra_sans: no node named cucm-sub9"):
        Cluster(nodes=2, extra_sans={"cucm-sub9": ["x.example.com"]})
