"""AXL's phone, device pool and process node operations, each request and answer validated with lxml
against Cisco's AXLSoap.xsd 14.0 and 15.0; HTTP status lines and error pages as CUCM's Tomcat sends
them."""

from __future__ import annotations

import socket
import ssl

import pytest
import zeep
from lxml import etree

from simulator.runtime import SimulatedCluster

from .conftest import base_url, node_info, session, wait_for
from .test_soap import axl_client, axl_schemas, check_bodies

__all__ = ["axl_schemas"]  # the fixture, shared with test_soap

AXL_OPERATIONS = {
    "listPhone",
    "getPhone",
    "resetPhone",
    "restartPhone",
    "applyPhone",
    "listDevicePool",
    "getDevicePool",
    "resetDevicePool",
    "doDeviceReset",
    "listProcessNode",
    "getProcessNode",
    "getCCMVersion",
    "executeSQLQuery",
}


@pytest.fixture(scope="module", params=["14.0", "15.0"])
def cluster(request, tmp_path_factory, schema_dir):
    version = "15.0.1.12900-234" if request.param == "15.0" else "14.0.1.13900-155"
    with SimulatedCluster(
        tmp_path_factory.mktemp("axl"),
        nodes=2,
        imp=1,
        phones=12,
        time_scale=1000,
        version=version,
        schema_dir=schema_dir,
    ) as sim:
        yield request.param, sim


def test_every_axl_operation_valid_against_the_schema(cluster, schema_dir, axl_schemas):
    version, sim = cluster
    axl, history = axl_client(sim, schema_dir, version)
    schema = axl_schemas[version]
    called = set()

    def call(operation, **kwargs):
        result = getattr(axl, operation)(**kwargs)
        check_bodies(schema, history)
        called.add(operation)
        return result

    phones = call(
        "listPhone",
        searchCriteria={"name": "SEP001A2B00000%"},
        returnedTags={"name": "", "model": "", "devicePoolName": "", "securityProfileName": ""},
    )["return"]["phone"]
    assert [p["name"] for p in phones] == [f"SEP{0x001A2B000000 + i:012X}" for i in range(12)]
    assert phones[0]["model"] == "Cisco 7821" and phones[0]["securityProfileName"]["_value_1"].endswith(
        "Standard SIP Secure Profile"
    )
    page = call(
        "listPhone",
        searchCriteria={"devicePoolName": "DP-cucm-sub1"},
        returnedTags={"name": ""},
        skip=2,
        first=3,
    )
    assert len(page["return"]["phone"]) == 3
    phone = call("getPhone", name="SEP001A2B000001")["return"]["phone"]
    assert phone["devicePoolName"]["_value_1"] == "DP-cucm-sub1"
    assert phone["lines"]["line"][0]["dirn"]["pattern"] == "100001"
    assert call("getPhone", uuid=phone["uuid"])["return"]["phone"]["name"] == "SEP001A2B000001"
    resets = sim.state()["phone_resets"]
    assert call("resetPhone", name="SEP001A2B000001")["return"] == phone["uuid"]
    call("restartPhone", uuid=phone["uuid"])
    assert sim.state()["phone_resets"] == resets + 2
    call("applyPhone", name="SEP001A2B000002")
    assert sim.state()["phone_resets"] == resets + 2  # no configuration change: nothing to reset
    call("doDeviceReset", deviceName="SEP001A2B000003", isHardReset="true")
    pools = call("listDevicePool", searchCriteria={"name": "%"}, returnedTags={"name": ""})["return"][
        "devicePool"
    ]
    pool = call("getDevicePool", name=pools[1]["name"])["return"]["devicePool"]
    assert pool["uuid"] == pools[1]["uuid"] and pool["callManagerGroupName"]["_value_1"] == "Default"
    call("resetDevicePool", uuid=pool["uuid"])
    nodes = call("listProcessNode", searchCriteria={"name": "%"}, returnedTags={"name": "", "nodeUsage": ""})
    names = [n["name"] for n in nodes["return"]["processNode"]]
    assert names == [
        "EnterpriseWideData",
        "cucm-pub.example.com",
        "cucm-sub1.example.com",
        "imp1.example.com",
    ]
    imp = call("getProcessNode", name="imp1.example.com")["return"]["processNode"]
    assert imp["processNodeRole"] == "CUCM IM and Presence" and imp["nodeUsage"] == "Subscriber"
    assert call("getCCMVersion")["return"]["componentVersion"]["version"].startswith(version[:4])
    rows = call("executeSQLQuery", sql="select name from device where tkclass = 1")["return"]["row"]
    assert len(rows) == 12
    assert called == AXL_OPERATIONS
    wait_for(lambda: sim.state()["phones"]["registered"] == 12, what="every phone registered again")


@pytest.mark.parametrize(
    ("operation", "kwargs", "kind"),
    [
        ("getPhone", {"name": "SEPFFFFFFFFFFFF"}, "Phone"),
        ("resetPhone", {"name": "SEPFFFFFFFFFFFF"}, "Phone"),
        ("restartPhone", {"uuid": "{00000000-0000-0000-0000-000000000000}"}, "Phone"),
        ("getDevicePool", {"name": "nosuch"}, "DevicePool"),
        ("getProcessNode", {"name": "nosuch.example.com"}, "ProcessNode"),
    ],
)
def test_unknown_names_are_axl_5007(cluster, schema_dir, operation, kwargs, kind):
    version, sim = cluster
    axl, _ = axl_client(sim, schema_dir, version)
    with pytest.raises(zeep.exceptions.Fault) as fault:
        getattr(axl, operation)(**kwargs)
    assert fault.value.message == f"Item not valid: The specified {kind} was not found"
    assert fault.value.detail.find("axlError/axlcode").text == "5007"


def test_bad_sql_is_informix_201(cluster, schema_dir):
    version, sim = cluster
    axl, _ = axl_client(sim, schema_dir, version)
    with pytest.raises(zeep.exceptions.Fault) as fault:
        axl.executeSQLQuery(sql="selct name from device")
    assert fault.value.message == "A syntax error has occurred."
    assert fault.value.detail.find("axlError/axlcode").text == "-201"


def test_processnode_names_may_be_addresses(tmp_path, schema_dir, axl_schemas):
    with SimulatedCluster(tmp_path, nodes=2, phones=4, processnode_names="ip", schema_dir=schema_dir) as sim:
        axl, history = axl_client(sim, schema_dir, "14.0")
        rows = axl.executeSQLQuery(sql="select name from processnode where name != 'EnterpriseWideData'")
        check_bodies(axl_schemas["14.0"], history)
        names = sorted(r[0].text for r in rows["return"]["row"])
        assert names == ["192.0.2.10", "192.0.2.11"]
        listed = axl.listProcessNode(searchCriteria={"name": "192.%"}, returnedTags={"name": ""})
        assert [n["name"] for n in listed["return"]["processNode"]] == names
        assert axl.getProcessNode(name="192.0.2.11")["return"]["processNode"]["description"] == "cucm-sub1"


# ---------------------------------------------------------------------------- HTTP
def raw_status_line(sim, name, request: bytes) -> bytes:
    ctx = ssl.create_default_context(cafile=str(sim.info.ca_bundle))
    port, server_name = node_info(sim, name).https_port, node_info(sim, name).name
    with (
        socket.create_connection((node_info(sim, name).address, port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        tls.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0]


def test_status_lines_have_no_reason_phrase(sim):
    line = raw_status_line(sim, "cucm-pub", b"GET /nosuch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert line == b"HTTP/1.1 404 "
    line = raw_status_line(sim, "cucm-pub", b"GET /axl/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert line == b"HTTP/1.1 401 "


def test_unknown_paths_answer_tomcat_html(sim):
    r = session(sim, "cucm-sub1").get(base_url(sim, "cucm-sub1") + "/ccmadmin/nosuch.do")
    assert r.status_code == 404 and r.reason == ""
    assert r.headers["Content-Type"] == "text/html;charset=utf-8"
    assert "<h1>HTTP Status 404 \u2013 Not Found</h1>" in r.text
    assert "<p><b>Message</b> /ccmadmin/nosuch.do</p>" in r.text
    r = session(sim, "cucm-pub", "axl").put(base_url(sim, "cucm-pub") + "/axl/", data=b"x")
    assert r.status_code == 405 and "HTTP Status 405 \u2013 Method Not Allowed" in r.text


def test_get_axl_answers_the_banner(sim):
    s = session(sim, "cucm-pub", "axl")
    r = s.get(base_url(sim, "cucm-pub") + "/axl/")
    assert r.status_code == 200
    assert "Cisco CallManager: AXL Web Service" in r.text
    assert "The AXL Web Service is working and accepting requests." in r.text
    assert session(sim, "cucm-pub", None).get(base_url(sim, "cucm-pub") + "/axl/").status_code == 401
    parsed = etree.fromstring(r.content, etree.HTMLParser())
    assert parsed.findtext(".//title") == "Cisco CallManager: AXL Web Service"
