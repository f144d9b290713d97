"""`SimulatedCluster(version=...)`: what each release shows a client, from simulator/releases.py."""

from __future__ import annotations

import pytest
import requests

from simulator import releases
from simulator.cli import OU_PROMPT, CliSession, run_command
from simulator.runtime import SimulatedCluster

from .conftest import CERTMGR, base_url, session

AXL_NS = "http://www.cisco.com/AXL/API/{v}"


def _get_version(sim: SimulatedCluster, axl: str) -> requests.Response:
    s = session(sim, "cucm-pub", "axl")
    body = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:ns="{AXL_NS.format(v=axl)}"><soapenv:Body><ns:getCCMVersion/></soapenv:Body></soapenv:Envelope>'
    )
    return s.post(
        base_url(sim, "cucm-pub") + "/axl/",
        data=body,
        headers={"SOAPAction": f'"CUCM:DB ver={axl} getCCMVersion"', "Content-Type": "text/xml"},
        timeout=30,
    )


@pytest.mark.parametrize("name", ["11.5", "12.5", "14", "14SU2", "14SU3", "15"])
def test_each_release_shows_its_version_api_and_prompts(tmp_path, name):
    row = releases.release(name)
    with SimulatedCluster(tmp_path, nodes=1, version=name) as sim:
        assert sim.info.version == row.version and sim.info.release == name
        # AXL: the release's own schema answers with its version; one newer than it is refused.
        r = _get_version(sim, row.axl_versions[-1])
        assert r.status_code == 200 and f"<version>{row.ccm_version}</version>" in r.text
        newer = {"11.5": "12.0", "12.5": "14.0", "14": "15.0", "14SU2": "15.0", "14SU3": "15.0"}.get(name)
        if newer:
            r = _get_version(sim, newer)
            assert r.status_code == 500 and "<axlcode>5000</axlcode>" in r.text
        oldest_dropped = {
            "11.5": "8.5",
            "12.5": "9.1",
            "14": "10.5",
            "14SU2": "10.5",
            "14SU3": "10.5",
            "15": "11.5",
        }
        assert _get_version(sim, oldest_dropped[name]).status_code == 500
        node = sim.cluster.node("cucm-pub")
        assert f"Active Master Version: {row.version}" in run_command(
            sim.cluster, node, "show version active"
        )
        # certmgr REST from 14; below it Tomcat knows no such path.
        r = session(sim, "cucm-pub").get(
            base_url(sim, "cucm-pub") + CERTMGR + "identity/certificate?service=tomcat"
        )
        if row.certmgr_rest:
            assert r.status_code == 200 and r.json()["service"] == "tomcat"
        else:
            assert r.status_code == 404 and "HTTP Status 404" in r.text
        # The OU question from 14SU1.
        cli = CliSession(sim.cluster, node)
        out = "".join(cli.feed("set csr gen tomcat"))
        if row.include_ou_prompt:
            assert cli.prompt == OU_PROMPT and out == ""
        else:
            assert cli.prompt == "admin:" and out == "Successfully Generated CSR for tomcat.\n"
        # HAProxy's TLS ports where the release has them.
        assert (6971 in sim.info.publisher.tls_ports) == row.haproxy_ports


def test_release_lookup():
    assert releases.release("14su2").version == "14.0.1.12900-161"
    custom = releases.release("15.0.1.11900-9")  # a 15 build between rows: a 15, its own string
    assert custom.name == "15" and custom.version == "15.0.1.11900-9" and "15.0" in custom.axl_versions
    assert releases.release("12.5.1.10000-22").name == "12.5"  # older than the row's build: same facts
    with pytest.raises(releases.UnknownRelease, match="use one of"):
        releases.release("13")
    with pytest.raises(releases.UnknownRelease, match="not a release the simulator models"):
        releases.release("10.5.2.10000-5")
    names = [r.name for r in releases.RELEASES]
    assert len(names) == len(set(names)) and releases.DEFAULT in names
    assert all(r.source for r in releases.RELEASES)


def test_simulate_rejects_an_unknown_version(capsys):
    from simulator.main import main

    assert main(["--dir", "/nonexistent", "--version", "13"]) == 2
    assert "--version" in capsys.readouterr().err
