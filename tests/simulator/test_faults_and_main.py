"""Fault injection (deterministic by seed) and the standalone `python -m simulator` process."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time

import paramiko
import pytest
import requests

from simulator.faults import Faults, FaultSpecError
from simulator.info import NodeInfo, SimulatorInfo
from simulator.runtime import SimulatedCluster

from .conftest import CERTMGR, NameAdapter, TestCA, base_url, pem, session, ssh_client, wait_for


def test_spec_parsing():
    f = Faults.parse(
        "5xx=0.2,timeout@ris=0.05,drop=0.1,seed=7,hold=2s,down=cucm-sub1@10s:30s,slow=*:Cisco Tomcat:4"
    )
    assert f.seed == 7 and f.hold_seconds == 2.0
    assert f.probabilities["rest"] == {"5xx": 0.2, "drop": 0.1}
    assert f.probabilities["ris"] == {"5xx": 0.2, "timeout": 0.05, "drop": 0.1}
    assert f.down == [("cucm-sub1", 10.0, 40.0)]
    assert f.slow == [("*", "Cisco Tomcat", 4.0)]
    for bad, word in (
        ("5xx", "no '='"),
        ("5xx=2", "bad fault item"),
        ("nope=1", "unknown fault"),
        ("5xx@soap=0.1", "unknown endpoint"),
        ("down=:5", "bad fault item"),
    ):
        with pytest.raises(FaultSpecError, match=word):
            Faults.parse(bad)


def test_decisions_are_deterministic_by_seed():
    def draws(seed: int) -> list[str | None]:
        f = Faults.parse(f"5xx=0.3,drop=0.2,seed={seed}")
        return [f.decide("cucm-pub", "axl") for _ in range(200)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    kinds = draws(7)
    assert 30 < kinds.count("5xx") < 90 and 15 < kinds.count("drop") < 70 and None in kinds


def test_http_faults(tmp_path):
    with SimulatedCluster(tmp_path, nodes=1, faults="5xx@rest=1,drop@ris=1,timeout@ccs=1,hold=0.5") as sim:
        s = session(sim, "cucm-pub")
        r = s.get(base_url(sim, "cucm-pub") + CERTMGR + "snapshot/server")
        assert r.status_code == 503
        axl = session(sim, "cucm-pub", "axl")
        with pytest.raises(requests.ConnectionError):
            axl.post(base_url(sim, "cucm-pub") + "/realtimeservice2/services/RISService70", data="<x/>")
        with pytest.raises(requests.exceptions.ReadTimeout):
            axl.post(
                base_url(sim, "cucm-pub") + "/controlcenterservice2/services/ControlCenterServices",
                data="<x/>",
                timeout=0.2,
            )
        # Endpoints without faults still answer.
        assert s.get(base_url(sim, "cucm-pub") + "/__sim__/state").status_code == 200


def test_node_down_for_a_while(tmp_path):
    with SimulatedCluster(tmp_path, nodes=2, faults="down=cucm-sub1:4s") as sim:
        assert session(sim, "cucm-pub").get(base_url(sim, "cucm-pub") + CERTMGR + "snapshot/server").ok
        with pytest.raises(requests.ConnectionError):
            session(sim, "cucm-sub1").get(
                base_url(sim, "cucm-sub1") + CERTMGR + "snapshot/server", timeout=10
            )
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            ssh_client(sim, "cucm-sub1").close()

        def back() -> bool:
            try:
                return (
                    session(sim, "cucm-sub1")
                    .get(base_url(sim, "cucm-sub1") + CERTMGR + "snapshot/server", timeout=10)
                    .ok
                )
            except requests.ConnectionError:
                return False

        wait_for(back, timeout=60, what="the node to come back")


def test_slow_restart(tmp_path):
    with SimulatedCluster(
        tmp_path, nodes=2, faults="slow=cucm-sub1:Cisco Tomcat:5", restart_seconds=(10, 10)
    ) as sim:
        c = sim.cluster
        duration = c.service_control.restart_duration
        assert duration(c.node("cucm-sub1"), "Cisco Tomcat") == pytest.approx(5 * 10 / 100)
        assert duration(c.node("cucm-pub"), "Cisco Tomcat") == pytest.approx(10 / 100)
        assert duration(c.node("cucm-sub1"), "Cisco Tftp") == pytest.approx(10 / 100)


# ---------------------------------------------------------------------------- standalone process
def _tls_ok(info: SimulatorInfo, node: NodeInfo) -> bool:
    ctx = ssl.create_default_context(cafile=info.ca_bundle)
    with (
        socket.create_connection((node.address, node.https_port), timeout=30) as raw,
        ctx.wrap_socket(raw, server_hostname=node.name),
    ):
        return True


def test_simulate_process_writes_json_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--dir",
            str(tmp_path),
            "--nodes",
            "2",
            "--imp",
            "1",
            "--phones",
            "50",
            "--time-scale",
            "100",
            "--faults",
            "seed=3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (tmp_path / "simulator.json").exists() or proc.poll() is not None,
            timeout=60,
            what="simulator.json",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        info = SimulatorInfo.load(tmp_path / "simulator.json")
        assert [n.role for n in info.nodes] == ["publisher", "subscriber", "imp"]
        assert info.pid == proc.pid and info.time_scale == 100.0
        assert info.platform.username != info.axl.username
        known = (tmp_path / "known_hosts").read_text().splitlines()
        assert len(known) == 3 and all(" ssh-rsa " in line for line in known)  # CUCM's host key is RSA
        for node in info.nodes:
            assert _tls_ok(info, node)
        pub = info.publisher
        s = requests.Session()
        s.trust_env = False
        s.verify = info.ca_bundle
        url = f"https://{pub.address}:{pub.https_port}/__sim__/"
        s.mount(url, NameAdapter(pub.name))
        state = s.get(url + "state").json()
        assert state["phones"]["total"] == 50
        ca = TestCA("Process")
        creds = info.platform
        r = s.post(url + "trust", data=pem(ca.root), auth=(creds.username, creds.password))
        assert r.status_code == 200
        assert pem(ca.root) in (tmp_path / "ca-bundle.pem").read_text()
        r = s.post(url + "trust", data=pem(ca.root), auth=("osadmin", "wrong"))
        assert r.status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "--nodes must be at least 1"),
        (["--faults", "5xx"], "--faults"),
        (["--phones", "50000"], "--phones must be between"),
        (["--ris-lag", "-1"], "--ris-lag must be 0 or more"),
    ],
)
def test_simulate_bad_arguments(tmp_path, args, message):
    r = subprocess.run(
        [sys.executable, "-m", "simulator", "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert message in r.stderr
    assert not (tmp_path / "simulator.json").exists()


def test_in_process_api_matches_json(tmp_path):
    with SimulatedCluster(tmp_path, nodes=1, phones=5) as sim:
        assert SimulatorInfo.load(sim.json_path) == sim.info
        assert sim.state()["phones_registered"] == 5
        started = time.monotonic()
    assert time.monotonic() - started < 30
    with pytest.raises(requests.ConnectionError):
        session(sim, "cucm-pub").get(base_url(sim, "cucm-pub") + "/__sim__/state", timeout=5)


# ---------------------------------------------------------------------------- lost replies
def test_lost_spec_and_draws():
    f = Faults.parse("lost=0.2,lost@ssh=1,seed=4")
    assert f.lost == {"rest": 0.2, "axl": 0.2, "ccs": 0.2, "ssh": 1.0}
    assert f.probabilities == {}  # lost is not a pre-action fault
    with pytest.raises(FaultSpecError, match="lost applies to"):
        Faults.parse("lost@ris=0.5")

    def draws(seed: int) -> list[bool]:
        g = Faults.parse(f"lost=0.5,seed={seed}")
        return [g.lose_reply("cucm-pub", "rest") for _ in range(100)]

    assert draws(4) == draws(4) != draws(5)
    assert 20 < sum(draws(4)) < 80


def _soap(sim: SimulatedCluster, path: str, action: str, body: str) -> requests.Response:
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
    return session(sim, "cucm-pub", "axl").post(
        base_url(sim, "cucm-pub") + path,
        data=envelope,
        headers={"Content-Type": "text/xml", "SOAPAction": action},
        timeout=30,
    )


def test_lost_replies_over_https(tmp_path):
    with SimulatedCluster(tmp_path, nodes=2, phones=4, faults="lost=1", time_scale=1000) as sim:
        s = session(sim, "cucm-pub")
        url = base_url(sim, "cucm-pub") + CERTMGR
        # Carried out, answer lost: the CSR exists though the client saw the connection drop.
        with pytest.raises(requests.ConnectionError):
            s.post(url + "csr", json={"service": "tomcat", "commonName": "cucm-pub.example.com"}, timeout=30)
        assert sim.state()["csrs_generated"]["cucm-pub.example.com"] == {"tomcat": 1}
        # Refused (nothing done) or read-only: answered.
        assert s.post(url + "csr", json={"service": "nope"}, timeout=30).status_code == 400
        assert s.get(url + "identity/certificate?service=tomcat", timeout=30).json()["csr"]
        axl = "http://www.cisco.com/AXL/API/14.0"
        with pytest.raises(requests.ConnectionError):
            _soap(
                sim,
                "/axl/",
                "CUCM:DB ver=14.0 doDeviceReset",
                f'<ns:doDeviceReset xmlns:ns="{axl}"><deviceName>SEP001A2B000001</deviceName>'
                "<isHardReset>true</isHardReset></ns:doDeviceReset>",
            )
        assert sim.state()["phone_resets"] == 1
        r = _soap(
            sim,
            "/axl/",
            "CUCM:DB ver=14.0 executeSQLQuery",
            f'<ns:executeSQLQuery xmlns:ns="{axl}"><sql>select name from devicepool</sql>'  # noqa: S608
            "</ns:executeSQLQuery>",
        )
        assert r.status_code == 200
        with pytest.raises(requests.ConnectionError):
            _soap(
                sim,
                "/controlcenterservice2/services/ControlCenterServices",
                "soapDoControlServices",
                '<soap:soapDoControlServices xmlns:soap="http://schemas.cisco.com/ast/soap">'
                "<soap:ControlServiceRequest><soap:NodeName>cucm-pub.example.com</soap:NodeName>"
                "<soap:ControlType>Restart</soap:ControlType><soap:ServiceList><soap:item>Cisco Tftp"
                "</soap:item></soap:ServiceList></soap:ControlServiceRequest></soap:soapDoControlServices>",
            )
        state = sim.state()
        assert [a.split("@")[0] for a in state["restarts"]["cucm-pub.example.com"]["Cisco Tftp"]] == [
            "Restart"
        ]
        assert [(x["endpoint"], x["request"].split()[-1]) for x in state["lost_replies"]] == [
            ("rest", "/platformcom/api/v1/certmgr/config/csr"),
            ("axl", "doDeviceReset"),
            ("ccs", "soapDoControlServices"),
        ]


def test_lost_replies_over_ssh(tmp_path):
    with SimulatedCluster(
        tmp_path, nodes=2, faults="lost@ssh=1", time_scale=1000, restart_seconds=(10, 10)
    ) as sim:
        client = ssh_client(sim, "cucm-pub")
        try:
            # A command without effects is answered.
            _, out, _ = client.exec_command("show version active")
            assert "Active Master Version" in out.read().decode()
            assert out.channel.recv_exit_status() == 0
            # The restart runs to its end, then the channel closes: no output, no exit status.
            _, out, _ = client.exec_command("utils service restart Cisco Tftp")
            assert out.read() == b""
            assert out.channel.recv_exit_status() == -1
            assert sim.cluster.publisher.services["Cisco Tftp"].state == "Started"
            assert "Restart" in sim.state()["restarts"]["cucm-pub.example.com"]["Cisco Tftp"][0]
            # Interactive: the CSR is generated on the answer, whose output never comes.
            shell = client.invoke_shell()
            shell.settimeout(30)
            seen = b""
            while not seen.endswith(b"admin:"):
                seen += shell.recv(4096)
            shell.sendall(b"set csr gen CallManager\n")
            while b"(yes|no)?" not in seen:
                seen += shell.recv(4096)
            shell.sendall(b"yes\n")
            rest = b""
            while chunk := shell.recv(4096):
                rest += chunk
            assert b"Successfully" not in rest  # EOF came, the answer never did
            assert shell.recv_exit_status() == -1
            assert sim.state()["csrs_generated"]["cucm-pub.example.com"] == {"CallManager": 1}
            assert [(x["endpoint"], x["request"]) for x in sim.state()["lost_replies"]] == [
                ("ssh", "utils service restart Cisco Tftp"),
                ("ssh", "set csr gen CallManager"),
            ]
        finally:
            client.close()
