# ruff: noqa: E501  (the reference's CLI lines are kept whole)
"""The readiness parsers on the reference's shapes (part 2 §7, verbatim but for names and
addresses) and on the simulator's output for each condition."""

from __future__ import annotations

from adapters.cucm import cli
from adapters.cucm.port import ReplicationRow
from simulator.cli import run_command
from simulator.cluster import Cluster

RUNTIMESTATE = """admin:utils dbreplication runtimestate

Server Time: Tue Aug  1 15:10:52 IST 2023

Cluster Replication State: BROADCAST SYNC ended at: 2023-07-17-16-47
     Sync Result: SYNC COMPLETED on 753 tables out of 753
     Sync Status: All Tables are in sync
     Use CLI to see detail: 'file view activelog cm/trace/dbl/20230717_164617_dbl_repl_output_Broadcast.log'

DB Version: ccm15_0_0_98100_154

Repltimeout set to: 300s
PROCESS option set to: 1

Cluster Detailed View from cucm-pub (2 Servers):

                                           PING      DB/RPC/   REPL.    Replication    REPLICATION SETUP
SERVER-NAME              IP ADDRESS        (msec)    DbMon?    QUEUE    Group ID       (RTMT) & Details
-----------              ----------        ------    -------   -----    -----------    ------------------
cucm-sub1                192.0.2.57        0.163     Y/Y/Y     0        (g_3)          (2) Setup Completed
cucm-pub                 192.0.2.55        0.016     Y/Y/Y     0        (g_2)          (2) Setup Completed
"""

NETWORK_CLUSTER = """admin:show network cluster
192.0.2.20 cucm-pub.example.com cucm-pub Publisher callmanager DBPub authenticated
192.0.2.30 cucm-sub1.example.com cucm-sub1 Subscriber callmanager DBSub authenticated using TCP since Mon Jul 1 13:44:09 2019
192.0.2.40 imp-pub.example.com imp-pub Subscriber cups DBPub authenticated using TCP since Fri Oct 15 10:22:20 2021

Server Table (processnode) Entries
----------------------------------
192.0.2.20
192.0.2.30
"""

NO_CTL = """Length of CTL file: 0
CTL File not found . Please run CTLClient plugin or run the CLI - utils ctl.. to generate the CTL file.
Error parsing the CTL File.
"""

TOKEN_CTL = """CTL Record #:1
----
BYTEPOS TAG             LENGTH  VALUE
-------  ---             ------  -----
1       RECORDLENGTH    2       1186
3       SUBJECTNAME     56      cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems
4       FUNCTION        2       System Administrator Security Token
5       ISSUERNAME      42      cn=Cisco Manufacturing CA;o=Cisco Systems

This etoken was used to sign the CTL file.

CTL Record #:2
3       SUBJECTNAME     60      CN=cucm-pub.example.com;OU=Voice;O=Example;C=FR
4       FUNCTION        2       CCM+TFTP

The CTL file was verified successfully.
"""

LICENSE = """Smart Licensing is ENABLED

Registration:
  Status: REGISTERED
  Smart Account: Example
  Virtual Account: UC
  Export-Controlled Functionality: Allowed
  Initial Registration: SUCCEEDED on Jan 10 10:12:40 2024 UTC

License Authorization:
  Status: AUTHORIZED on Jan 10 10:13:01 2024 UTC
"""


def test_replication_rows_on_the_reference_shape():
    state = cli.replication_state(RUNTIMESTATE)
    assert state is not None
    assert state.rows == (
        ReplicationRow("cucm-sub1", "192.0.2.57", 2, "(2) Setup Completed"),
        ReplicationRow("cucm-pub", "192.0.2.55", 2, "(2) Setup Completed"),
    )
    broken = cli.replication_state(
        RUNTIMESTATE.replace("(2) Setup Completed\ncucm-pub", "(4) Setup Failed\ncucm-pub")
    )
    assert broken is not None and broken.rows[0].state == 4 and broken.rows[0].text == "(4) Setup Failed"
    single = cli.replication_state(
        "Runtime state cannot be performed on a cluster with a single active node; aborting operation\n"
    )
    assert single is not None and single.rows == () and "single active node" in single.note
    assert cli.replication_state("Executed command unsuccessfully\nInvalid command\n") is None


def test_network_cluster_on_the_reference_shape():
    members = cli.network_cluster(NETWORK_CLUSTER)
    assert [(m.ip, m.fqdn, m.host, m.role, m.product, m.db_role, m.authenticated) for m in members] == [
        ("192.0.2.20", "cucm-pub.example.com", "cucm-pub", "Publisher", "callmanager", "DBPub", True),
        ("192.0.2.30", "cucm-sub1.example.com", "cucm-sub1", "Subscriber", "callmanager", "DBSub", True),
        ("192.0.2.40", "imp-pub.example.com", "imp-pub", "Subscriber", "cups", "DBPub", True),
    ]
    unauth = cli.network_cluster(NETWORK_CLUSTER.replace("DBSub authenticated", "DBSub not authenticated"))
    assert [m.authenticated for m in unauth] == [True, False, True]
    bare = cli.network_cluster(
        NETWORK_CLUSTER.replace("DBSub authenticated using TCP since Mon Jul 1 13:44:09 2019", "DBSub")
    )
    assert bare[1].authenticated is False


def test_ctl_none_token_and_tokenless():
    assert cli.ctl_status(NO_CTL) is not None and cli.ctl_status(NO_CTL).present is False
    token = cli.ctl_status(TOKEN_CTL)
    assert token is not None and token.present and token.token
    assert token.signer == 'cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems'
    tokenless = cli.ctl_status(
        TOKEN_CTL.replace(
            'cn="SAST-ADN008580ef ";ou=IPCBU;o="Cisco Systems', "CN=cucm-pub.example.com;O=Example"
        ).replace("cn=Cisco Manufacturing CA;o=Cisco Systems", "CN=cucm-pub.example.com;O=Example")
    )
    assert tokenless is not None and tokenless.present and not tokenless.token
    assert cli.ctl_status("Executed command unsuccessfully\n") is None


def test_license_export_control():
    ok = cli.license_status(LICENSE)
    assert (ok.registered, ok.export_allowed) == (True, True)
    denied = cli.license_status(LICENSE.replace("Functionality: Allowed", "Functionality: Not Allowed"))
    assert (denied.registered, denied.export_allowed) == (True, False)
    unregistered = cli.license_status(LICENSE.replace("Status: REGISTERED", "Status: UNREGISTERED"))
    assert unregistered.registered is False
    assert (cli.license_status("\n").registered, cli.license_status("\n").export_allowed) == (None, None)


def test_drs_idle_and_running_shapes():
    assert cli.drs_running("drfCliMsg: No backup status available\n") is False
    assert cli.drs_running("drfCliMsg:  No history data is available\n") is not True
    running = (
        "Status: RUNNING :Backup in progress, please wait...\nTar Filename: x.tar\nPercentage Complete: 40\n"
    )
    assert cli.drs_running(running) is True


def test_parsers_read_every_simulated_condition():
    cluster = Cluster(nodes=3, imp=1, mixed_mode=True)
    pub = cluster.publisher

    def run(line: str) -> str:
        return run_command(cluster, pub, line)

    state = cli.replication_state(run("utils dbreplication runtimestate"))
    assert state is not None and {r.server: r.state for r in state.rows} == {
        "cucm-pub": 2, "cucm-sub1": 2, "cucm-sub2": 2
    }  # fmt: skip
    cluster.platform.set_replication("cucm-sub2", 3)
    state = cli.replication_state(run("utils dbreplication runtimestate"))
    assert state is not None and {r.server: r.state for r in state.rows}["cucm-sub2"] == 3

    members = cli.network_cluster(run("show network cluster"))
    assert [m.fqdn for m in members] == [n.name for n in cluster.nodes] and all(
        m.authenticated for m in members
    )
    cluster.platform.unauthenticated.add("cucm-sub1")
    cluster.platform.missing_from_cluster.add("imp1")
    members = cli.network_cluster(run("show network cluster"))
    assert {m.host: m.authenticated for m in members} == {
        "cucm-pub": True,
        "cucm-sub1": False,
        "cucm-sub2": True,
    }

    status = cli.ctl_status(run("show ctl"))
    assert status is not None and status.present and not status.token and "ITLRECOVERY" in status.signer
    cluster.platform.set_ctl("token")
    status = cli.ctl_status(run("show ctl"))
    assert status is not None and status.token

    assert cli.license_status(run("show license all")).export_allowed is True
    cluster.platform.set_license("no-export")
    assert cli.license_status(run("show license all")).export_allowed is False
    assert (
        cli.license_status(run_command(cluster, cluster.node("cucm-sub1"), "show license all")).registered
        is None
    )

    assert cli.drs_running(run("utils disaster_recovery status backup")) is False
    cluster.drs_running = "backup"
    assert cli.drs_running(run("utils disaster_recovery status backup")) is True
