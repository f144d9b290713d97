"""SOAP fidelity: every operation called through zeep loaded with Cisco's WSDLs; AXL bodies validated
with lxml against Cisco's AXLSoap.xsd (14.0 and 15.0)."""

from __future__ import annotations

import copy
import time

import pytest
import zeep
from lxml import etree
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from simulator.runtime import SimulatedCluster

from .conftest import base_url, session, wait_for

AST = "{http://schemas.cisco.com/ast/soap}"
RIS_PATH = "/realtimeservice2/services/RISService70"
CCS_PATH = "/controlcenterservice2/services/ControlCenterServices"


def criteria(max_devices=1000, status="Any", node="", items=("*",)):
    return {
        "MaxReturnedDevices": max_devices,
        "DeviceClass": "Phone",
        "Model": 255,
        "Status": status,
        "NodeName": node,
        "SelectBy": "Name",
        "SelectItems": {"item": [{"Item": i} for i in items]},
        "Protocol": "Any",
        "DownloadStatus": "Any",
    }


def service(sim, schema_dir, wsdl, binding, path, node="cucm-pub", plugins=None):
    client = zeep.Client(
        str(schema_dir / wsdl), transport=Transport(session=session(sim, node, "axl")), plugins=plugins or []
    )
    return client.create_service(binding, base_url(sim, node) + path)


@pytest.fixture(scope="module")
def ris(sim, schema_dir):
    return service(sim, schema_dir, "serviceability/RISService70.wsdl", f"{AST}RisBinding", RIS_PATH)


@pytest.fixture(scope="module")
def ccs(sim, schema_dir):
    return service(
        sim,
        schema_dir,
        "serviceability/ControlCenterServices.wsdl",
        f"{AST}ControlCenterServicesBinding",
        CCS_PATH,
        node="cucm-sub1",
    )


def wsdl_schema(path) -> etree.XMLSchema:
    """The schema embedded in a WSDL, with the definitions' namespace map copied onto it."""
    root = etree.parse(str(path)).getroot()
    embedded = root.find(".//{http://www.w3.org/2001/XMLSchema}schema")
    schema = etree.Element(embedded.tag, nsmap={**root.nsmap, **embedded.nsmap}, attrib=dict(embedded.attrib))
    for child in embedded:
        schema.append(copy.deepcopy(child))
    return etree.XMLSchema(schema)


def test_ris_and_ccs_bodies_valid_against_the_wsdl_schemas(sim, schema_dir):
    for wsdl, binding, path, call in (
        (
            "serviceability/RISService70.wsdl",
            f"{AST}RisBinding",
            RIS_PATH,
            lambda svc: svc.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria(max_devices=50)),
        ),
        (
            "serviceability/RISService70.wsdl",
            f"{AST}RisBinding",
            RIS_PATH,
            lambda svc: svc.selectCmDeviceExt(StateInfo="", CmSelectionCriteria=criteria(node="nosuch")),
        ),
        (
            "serviceability/ControlCenterServices.wsdl",
            f"{AST}ControlCenterServicesBinding",
            CCS_PATH,
            lambda svc: svc.soapGetServiceStatus(ServiceStatus=["", "No Such Service"]),
        ),
        (
            "serviceability/ControlCenterServices.wsdl",
            f"{AST}ControlCenterServicesBinding",
            CCS_PATH,
            lambda svc: svc.soapDoControlServices(
                ControlServiceRequest={
                    "NodeName": "cucm-pub.example.com",
                    "ControlType": "Restart",
                    "ServiceList": {"item": ["Cisco Tomcat", "Cisco CTIManager"]},
                }
            ),
        ),
    ):
        history = HistoryPlugin()
        call(service(sim, schema_dir, wsdl, binding, path, plugins=[history]))
        schema = wsdl_schema(schema_dir / wsdl)
        check_bodies(schema, history)


def sweep(ris, crit, ext=False):
    """Every (device, node, status) entry, page by page; returns entries and page sizes."""
    state, entries, pages = "", [], []
    while True:
        op = ris.selectCmDeviceExt if ext else ris.selectCmDevice
        ret = op(StateInfo=state, CmSelectionCriteria=crit)
        result, state = ret["SelectCmDeviceResult"], ret["StateInfo"]
        page = [
            (d["Name"], n["Name"], d["Status"])
            for n in (result["CmNodes"]["item"] if result["CmNodes"] else [])
            if n["CmDevices"]
            for d in n["CmDevices"]["item"]
        ]
        pages.append(len(page))
        entries += page
        if not page or len(entries) >= result["TotalDevicesFound"]:
            return entries, pages, result["TotalDevicesFound"]


def test_ris_paging_covers_every_device_and_duplicates(sim, ris):
    entries, pages, total = sweep(ris, criteria(max_devices=100))
    assert total == len(entries) == len(set(entries))
    assert max(pages) == 100 and len(pages) == -(-total // 100)
    names = [e[0] for e in entries]
    assert len(set(names)) == 300
    doubled = [n for n in set(names) if names.count(n) > 1]
    assert doubled, "RIS lists some devices under several nodes"
    for name in doubled[:5]:
        statuses = {e[2] for e in entries if e[0] == name}
        assert "UnRegistered" in statuses
    ext_entries, _, ext_total = sweep(ris, criteria(max_devices=100), ext=True)
    assert ext_total == 300 and len({e[0] for e in ext_entries}) == 300


def test_ris_filters(sim, ris):
    one = ris.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria(items=("SEP001A2B000005",)))
    nodes = [n for n in one["SelectCmDeviceResult"]["CmNodes"]["item"] if n["CmDevices"]]
    assert [d["Name"] for d in nodes[0]["CmDevices"]["item"]] == ["SEP001A2B000005"]
    assert nodes[0]["CmDevices"]["item"][0]["IPAddress"]["item"][0]["IPAddrType"] == "ipv4"
    sub2 = sweep(ris, criteria(node="cucm-sub2.example.com"))[0]
    assert sub2 and all(e[1] == "cucm-sub2.example.com" for e in sub2)
    bad = ris.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria(node="nosuch.example.com"))
    assert bad["SelectCmDeviceResult"]["CmNodes"]["item"][0]["ReturnCode"] == "InvalidNodeName"
    registered = sweep(ris, criteria(status="Registered"))[0]
    assert len(registered) == sim.state()["phones_registered"]


def test_ris_throttle_and_page_cap(tmp_path, schema_dir):
    with SimulatedCluster(tmp_path, nodes=2, phones=1200, time_scale=1, ris_rate_limit=3) as small:
        ris = service(small, schema_dir, "serviceability/RISService70.wsdl", f"{AST}RisBinding", RIS_PATH)
        first = ris.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria(max_devices=5000))
        counts = sum(
            len(n["CmDevices"]["item"])
            for n in first["SelectCmDeviceResult"]["CmNodes"]["item"]
            if n["CmDevices"]
        )
        assert counts == 1000
        ris.selectCmDevice(StateInfo=first["StateInfo"], CmSelectionCriteria=criteria())
        ris.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria())
        with pytest.raises(zeep.exceptions.Fault) as fault:
            ris.selectCmDevice(StateInfo="", CmSelectionCriteria=criteria())
        assert fault.value.message == (
            "Exceeded allowed rate for Reatime information. Current allowed rate for realtime information "
            "is 3 requests per minute."
        )


def test_ccs_service_status(sim, ccs):
    ret = ccs.soapGetServiceStatus(ServiceStatus=[""])
    assert ret["ReturnCode"]["_value_1"] == "Success"
    items = {i["ServiceName"]: i for i in ret["ServiceInfoList"]["item"]}
    assert items["Cisco Tomcat"]["ServiceStatus"] == "Started"
    assert items["Cisco CAR Scheduler"]["ReasonCodeString"] == "Commanded Out of Service"
    assert "Cisco Certificate Authority Proxy Function" not in items  # CAPF runs on the publisher
    one = ccs.soapGetServiceStatus(ServiceStatus=["Cisco Tftp"])["ServiceInfoList"]["item"]
    assert [i["ServiceName"] for i in one] == ["Cisco Tftp"]


def test_ccs_restart_and_tomcat_refused(sim, ccs):
    before = ccs.soapGetServiceStatus(ServiceStatus=["Cisco Tftp"])["ServiceInfoList"]["item"][0]
    ret = ccs.soapDoControlServices(
        ControlServiceRequest={
            "NodeName": "cucm-sub1.example.com",
            "ControlType": "Restart",
            "ServiceList": {"item": ["Cisco Tftp"]},
        }
    )
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] in ("Stopping", "Starting")

    def started() -> bool:
        item = ccs.soapGetServiceStatus(ServiceStatus=["Cisco Tftp"])["ServiceInfoList"]["item"][0]
        return item["ServiceStatus"] == "Started" and item["UpTime"] <= before["UpTime"] + 1

    wait_for(started, what="Cisco Tftp started again")
    ret = ccs.soapDoControlServices(
        ControlServiceRequest={
            "NodeName": "cucm-sub1.example.com",
            "ControlType": "Restart",
            "ServiceList": {"item": ["Cisco Tomcat"]},
        }
    )
    assert ret["ReturnCode"]["_value_1"] == "Rejected"
    assert ret["ServiceInfoList"]["item"][0]["ServiceStatus"] == "Started"
    with pytest.raises(zeep.exceptions.Fault, match="local node"):
        ccs.soapDoControlServices(
            ControlServiceRequest={
                "NodeName": "cucm-pub.example.com",
                "ControlType": "Restart",
                "ServiceList": {"item": ["Cisco Tftp"]},
            }
        )


def test_wsdl_served_from_schema_dir(sim, schema_dir):
    s = session(sim, "cucm-pub", "axl")
    for path, name in ((RIS_PATH, "RISService70.wsdl"), (CCS_PATH, "ControlCenterServices.wsdl")):
        r = s.get(base_url(sim, "cucm-pub") + path + "?wsdl")
        assert r.status_code == 200
        assert r.content == (schema_dir / "serviceability" / name).read_bytes()
    assert s.get(base_url(sim, "cucm-pub") + "/axl/?wsdl").status_code == 404


def test_wsdl_404_without_schema_dir(tmp_path):
    with SimulatedCluster(tmp_path, nodes=1) as bare:
        r = session(bare, "cucm-pub", "axl").get(base_url(bare, "cucm-pub") + RIS_PATH + "?wsdl")
        assert r.status_code == 404


# ---------------------------------------------------------------------------- AXL
def axl_client(sim, schema_dir, version):
    history = HistoryPlugin()
    svc = service(
        sim,
        schema_dir,
        f"axl-{version}/AXLAPI.wsdl",
        "{http://www.cisco.com/AXLAPIService/}AXLAPIBinding",
        "/axl/",
        plugins=[history],
    )
    return svc, history


@pytest.fixture(scope="module")
def axl_schemas(schema_dir):
    return {
        v: etree.XMLSchema(etree.parse(str(schema_dir / f"axl-{v}" / "AXLSoap.xsd")))
        for v in ("14.0", "15.0")
    }


def assert_valid(schema, envelope):
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    element = copy.deepcopy(body[0])
    assert schema.validate(element), schema.error_log


def check_bodies(schema, history):
    assert_valid(schema, history.last_sent["envelope"])
    assert_valid(schema, history.last_received["envelope"])


@pytest.fixture(scope="module")
def axl14(sim, schema_dir):
    return axl_client(sim, schema_dir, "14.0")


def test_axl_operations_valid_against_14(sim, axl14, axl_schemas):
    axl, history = axl14
    schema = axl_schemas["14.0"]
    rows = axl.executeSQLQuery(sql="select name from processnode where name != 'EnterpriseWideData'")[
        "return"
    ]["row"]
    check_bodies(schema, history)
    assert sorted(r[0].text for r in rows) == sorted(n.name for n in sim.info.nodes)
    rows = axl.executeSQLQuery(
        sql="select paramname,paramvalue from processconfig where paramname='ClusterSecurityMode'"
    )["return"]["row"]
    check_bodies(schema, history)
    assert [(r[0].tag, r[0].text, r[1].text) for r in rows] == [("paramname", "ClusterSecurityMode", "0")]
    rows = axl.executeSQLQuery(
        sql="select c.servername, c.subjectname, t.name from certificate c, "
        "certificateservicecertificatemap m, "
        "typecertificateservice t where c.pkid = m.fkcertificate and m.tkcertificateservice = t.enum "
        "and c.servername = 'cucm-pub.example.com'"
    )["return"]["row"]
    check_bodies(schema, history)
    assert sorted(r[2].text for r in rows) == [
        "CAPF", "CallManager", "CallManager-ECDSA", "ITLRecovery", "TVS", "ipsec", "tomcat", "tomcat-ECDSA",
    ]  # fmt: skip
    nodes = axl.listProcessNode(
        searchCriteria={"name": "%", "processNodeRole": "CUCM IM and Presence"},
        returnedTags={"name": "", "processNodeRole": ""},
    )["return"]["processNode"]
    check_bodies(schema, history)
    assert [n["name"] for n in nodes] == ["imp1.example.com"]
    version = axl.getCCMVersion()["return"]["componentVersion"]["version"]
    check_bodies(schema, history)
    assert version.startswith("14.0.1")


def test_axl_device_reset_and_faults(sim, axl14, axl_schemas):
    axl, history = axl14
    resets = sim.state()["phone_resets"]
    before = time.monotonic()
    uid = axl.doDeviceReset(deviceName="SEP001A2B000003", isHardReset="true")["return"]
    check_bodies(axl_schemas["14.0"], history)
    assert uid.startswith("{") and sim.state()["phone_resets"] == resets + 1
    # Unregistered by the reset; registers again only after the (scaled) re-registration delay.
    assert sim.cluster.phones.reg_at[3] >= before + sim.cluster.scaled(sim.cluster.reregister_seconds[0])
    wait_for(lambda: sim.cluster.phone_status(3) == "Registered", what="the phone to re-register")
    with pytest.raises(zeep.exceptions.Fault) as fault:
        axl.doDeviceReset(deviceName="SEPFFFFFFFFFFFF", isHardReset="true")
    assert "not found" in fault.value.message
    assert fault.value.detail.find("axlError/axlcode").text == "5007"
    with pytest.raises(zeep.exceptions.Fault) as fault:
        axl.executeSQLQuery(sql="select name from nosuchtable")
    assert fault.value.detail.find("axlError/axlcode").text == "-206"


def test_axl_soapaction_must_match_namespace(sim):
    s = session(sim, "cucm-pub", "axl")
    body = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ns="http://www.cisco.com/AXL/API/14.0"><soapenv:Body><ns:getCCMVersion/></soapenv:Body>'
        "</soapenv:Envelope>"
    )
    url = base_url(sim, "cucm-pub") + "/axl/"
    ok = s.post(
        url, data=body, headers={"SOAPAction": '"CUCM:DB ver=14.0 getCCMVersion"', "Content-Type": "text/xml"}
    )
    assert ok.status_code == 200
    bad = s.post(
        url, data=body, headers={"SOAPAction": '"CUCM:DB ver=12.5 getCCMVersion"', "Content-Type": "text/xml"}
    )
    assert bad.status_code == 500
    fault = etree.fromstring(bad.content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None and "does not match" in fault.findtext("faultstring")
    assert fault.find("detail/axlError/axlcode") is not None


def test_axl_15_against_a_15_cluster(tmp_path, schema_dir, axl_schemas):
    with SimulatedCluster(tmp_path / "v15", nodes=1, version="15.0.1.10000-32") as v15:
        axl, history = axl_client(v15, schema_dir, "15.0")
        rows = axl.executeSQLQuery(sql="select name from processnode")["return"]["row"]
        check_bodies(axl_schemas["15.0"], history)
        assert "cucm-pub.example.com" in [r[0].text for r in rows]
        assert axl.getCCMVersion()["return"]["componentVersion"]["version"].startswith("15.0.1")
        check_bodies(axl_schemas["15.0"], history)
    with SimulatedCluster(tmp_path / "v14", nodes=1) as v14:
        axl, _ = axl_client(v14, schema_dir, "15.0")
        with pytest.raises(zeep.exceptions.Fault, match=r"Unsupported AXL version 15\.0"):
            axl.getCCMVersion()


def test_axl_device_pools_listed_and_reset_by_name_or_uuid(sim, axl14, axl_schemas):
    axl, history = axl14
    schema = axl_schemas["14.0"]
    rows = axl.executeSQLQuery(
        sql="select d.name, dp.name as devicepool from device d, devicepool dp "
        "where d.fkdevicepool = dp.pkid and d.tkclass = 1"
    )["return"]["row"]
    check_bodies(schema, history)
    members: dict[str, list[str]] = {}
    for r in rows:
        members.setdefault(r[1].text, []).append(r[0].text)
    # Phones are homed on the subscribers: one pool per CallManager node, the publisher's empty.
    assert sorted(members) == ["DP-cucm-sub1", "DP-cucm-sub2"]
    assert sum(map(len, members.values())) == sim.cluster.phones.count
    pools = axl.listDevicePool(searchCriteria={"name": "DP-%"}, returnedTags={"name": ""})["return"][
        "devicePool"
    ]
    check_bodies(schema, history)
    assert [p["name"] for p in pools] == ["DP-cucm-pub", "DP-cucm-sub1", "DP-cucm-sub2"]

    before = sim.state()
    started = time.monotonic()
    uid = axl.resetDevicePool(name="DP-cucm-sub1")["return"]
    check_bodies(schema, history)
    assert uid == next(p["uuid"] for p in pools if p["name"] == "DP-cucm-sub1")
    state = sim.state()
    sub1 = len(members["DP-cucm-sub1"])
    assert state["phone_resets"] - before["phone_resets"] == sub1  # each phone of the pool counts once
    assert (
        len(state["device_pool_resets"]["DP-cucm-sub1"])
        == len(before["device_pool_resets"].get("DP-cucm-sub1", [])) + 1
    )
    index = sim.cluster.phones.index[members["DP-cucm-sub1"][0]]
    assert sim.cluster.phones.reg_at[index] >= started + sim.cluster.scaled(sim.cluster.reregister_seconds[0])
    other = sim.cluster.phones.index[members["DP-cucm-sub2"][0]]
    assert sim.cluster.phone_status(other) == "Registered"  # the other pool was left alone

    axl.resetDevicePool(uuid=next(p["uuid"] for p in pools if p["name"] == "DP-cucm-sub2"))
    check_bodies(schema, history)
    assert sim.state()["phone_resets"] - before["phone_resets"] == sim.cluster.phones.count
    wait_for(
        lambda: sim.state()["phones"]["registered"] == sim.cluster.phones.count,
        what="every phone of both pools to re-register",
    )
    with pytest.raises(zeep.exceptions.Fault) as fault:
        axl.resetDevicePool(name="DP-NOSUCHPOOL")
    assert "not found" in fault.value.message
    assert fault.value.detail.find("axlError/axlcode").text == "5007"


def test_axl_15_device_pool_reset(tmp_path, schema_dir, axl_schemas):
    with SimulatedCluster(
        tmp_path / "v15", nodes=2, phones=10, version="15.0.1.10000-32", device_pool="Pool {short}"
    ) as v15:
        axl, history = axl_client(v15, schema_dir, "15.0")
        assert axl.resetDevicePool(name="pool CUCM-SUB1")["return"].startswith("{")  # names: any case
        check_bodies(axl_schemas["15.0"], history)
        assert v15.state()["device_pool_resets"].keys() == {"Pool cucm-sub1"}
        assert v15.state()["phone_resets"] == 10


def test_phones_outside_any_pool_are_not_listed(tmp_path, schema_dir):
    with SimulatedCluster(tmp_path / "nopool", nodes=2, phones=5, device_pool=None) as plain:
        axl, _ = axl_client(plain, schema_dir, "14.0")
        assert (
            axl.executeSQLQuery(
                sql="select d.name, dp.name from device d, devicepool dp where d.fkdevicepool = dp.pkid"
            )["return"]
            is None
        )
        assert len(axl.executeSQLQuery(sql="select name from device where tkclass = 1")["return"]["row"]) == 5


def test_ccs_start_times_tell_back_to_back_restarts_apart(sim, ccs):
    # StartTime has one-second resolution and restarts here take ~0.1 s of real time: on the
    # cluster's own (scaled) clock each restart still starts seconds after the one before.
    def restart_and_read() -> str:
        ccs.soapDoControlServices(
            ControlServiceRequest={
                "NodeName": "cucm-sub1.example.com",
                "ControlType": "Restart",
                "ServiceList": {"item": ["Cisco Tftp"]},
            }
        )
        seen: list[str] = []

        def started() -> bool:
            item = ccs.soapGetServiceStatus(ServiceStatus=["Cisco Tftp"])["ServiceInfoList"]["item"][0]
            seen.append(item["StartTime"] or "")
            return item["ServiceStatus"] == "Started"

        wait_for(started, what="Cisco Tftp started again")
        return seen[-1]

    fmt = "%a %b %d %H:%M:%S %Y"
    first, second = restart_and_read(), restart_and_read()
    assert time.strptime(second, fmt) > time.strptime(first, fmt), (first, second)
