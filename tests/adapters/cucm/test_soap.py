"""SOAP services (AXL, RisPort70, ControlCenterServices) against a real HTTPS server speaking SOAP.

Requests are checked against Cisco's own schemas (lxml), so an element name or order that CUCM
would reject fails here.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from adapters.cucm.axl import Axl
from adapters.cucm.ccs import ControlCenter, parse_start_time
from adapters.cucm.port import CucmRejected, CucmThrottled, PhoneState
from adapters.cucm.retry import SlidingWindowLimiter
from adapters.cucm.risport import RisPort, merge
from adapters.cucm.soap import SoapFault, SoapParseError, parse
from tests.adapters.cucm.conftest import NAME, Pki, node_http
from tests.adapters.cucm.servers import HttpsServer, Reply, Request, soap_fault, soap_reply

AXL_NS = "http://www.cisco.com/AXL/API/14.0"
AST = "http://schemas.cisco.com/ast/soap"
THROTTLE = (
    "Exceeded allowed rate for Reatime information. Current allowed rate for realtime information is "
    "15 requests per minute."
)


# ------------------------------------------------------------------ schema helpers


@pytest.fixture(scope="module")
def axl_schema(schema_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(schema_dir / "axl-14.0" / "AXLSoap.xsd")))


def _wsdl_schema(wsdl: Path) -> etree.XMLSchema:
    definitions = etree.parse(str(wsdl)).getroot()
    embedded = definitions.find(".//{http://www.w3.org/2001/XMLSchema}schema")
    assert embedded is not None
    # The embedded schema relies on prefixes declared on wsdl:definitions (xsd:, tns:).
    nsmap = {**definitions.nsmap, **embedded.nsmap}
    schema = etree.Element(embedded.tag, nsmap=nsmap, attrib=dict(embedded.attrib))
    schema.extend(list(embedded))
    return etree.XMLSchema(schema)


@pytest.fixture(scope="module")
def ris_schema(schema_dir: Path) -> etree.XMLSchema:
    return _wsdl_schema(schema_dir / "serviceability" / "RISService70.wsdl")


@pytest.fixture(scope="module")
def ccs_schema(schema_dir: Path) -> etree.XMLSchema:
    return _wsdl_schema(schema_dir / "serviceability" / "ControlCenterServices.wsdl")


def body_of(request: Request) -> etree._Element:
    envelope = etree.fromstring(request.body)
    body = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None and len(body) == 1
    return etree.fromstring(etree.tostring(body[0]))


def assert_valid(schema: etree.XMLSchema, element: etree._Element) -> None:
    assert schema.validate(element), schema.error_log


# ------------------------------------------------------------------ envelope parsing


def test_parse_reads_faults_and_refuses_dtds() -> None:
    with pytest.raises(SoapFault) as caught:
        parse(soap_fault("Item not valid: The specified Device was not found", "<axlcode>5007</axlcode>")[2])
    assert caught.value.faultstring == "Item not valid: The specified Device was not found"
    assert "5007" in caught.value.detail and not caught.value.throttled
    with pytest.raises(SoapFault) as throttled:
        parse(soap_fault(THROTTLE)[2])
    assert throttled.value.throttled
    with pytest.raises(SoapParseError, match="DTD"):
        parse(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    with pytest.raises(SoapParseError, match="not a SOAP Envelope"):
        parse(b"<html/>")


# ------------------------------------------------------------------ AXL


def axl_server(https: HttpsServer, phones: set[str], *, require_concurrency: bool = False) -> list[str]:
    """AXL on ``https``. With ``require_concurrency``, a reset waits (up to 20 s) until two are in flight."""
    actions: list[str] = []
    lock = threading.Lock()
    in_flight = [0]
    overlapped = threading.Event()

    def handle(request: Request) -> Reply:
        action = request.headers["SOAPAction"].strip('"')
        actions.append(action)
        op = body_of(request)
        name = op.tag.split("}")[1]
        if name == "getCCMVersion":
            return soap_reply(
                f'<ns:getCCMVersionResponse xmlns:ns="{AXL_NS}"><return><componentVersion>'
                "<version>14.0.1.13900-155</version></componentVersion></return></ns:getCCMVersionResponse>"
            )
        if name == "executeSQLQuery":
            sql = op.findtext("sql")
            if "ClusterSecurityMode" in (sql or ""):
                return soap_reply(
                    f'<ns:executeSQLQueryResponse xmlns:ns="{AXL_NS}"><return><row><paramvalue>1</paramvalue>'
                    "</row></return></ns:executeSQLQueryResponse>"
                )
            return soap_fault("A syntax error has occurred.", "<axlcode>-201</axlcode>")
        if name == "listProcessNode":
            rows = "".join(
                f"<processNode><name>{n}</name><processNodeRole>{r}</processNodeRole></processNode>"
                for n, r in [
                    ("EnterpriseWideData", "CUCM Voice/Video"),
                    (NAME, "CUCM Voice/Video"),
                    ("cucm-sub1.example.com", "CUCM Voice/Video"),
                    ("imp1.example.com", "CUP"),
                ]
            )
            return soap_reply(
                f'<ns:listProcessNodeResponse xmlns:ns="{AXL_NS}"><return>{rows}</return>'
                "</ns:listProcessNodeResponse>"
            )
        if name == "doDeviceReset":
            with lock:
                in_flight[0] += 1
                if in_flight[0] >= 2:
                    overlapped.set()
            try:
                if require_concurrency and not overlapped.wait(timeout=20):
                    return soap_fault("resets were not concurrent")
            finally:
                with lock:
                    in_flight[0] -= 1
            device = op.findtext("deviceName")
            if device not in phones:
                return soap_fault(
                    "Item not valid: The specified Device was not found",
                    "<axlError><axlcode>5007</axlcode><axlmessage>Item not valid</axlmessage></axlError>",
                )
            return soap_reply(
                f'<ns:doDeviceResetResponse xmlns:ns="{AXL_NS}"><return>{{0000}}</return>'
                "</ns:doDeviceResetResponse>"
            )
        return soap_fault(f"unknown operation {name}")

    https.route("POST", "/axl/", handle)
    return actions


def test_axl_requests_match_the_schema_and_soapaction(
    https: HttpsServer, pki: Pki, axl_schema: etree.XMLSchema
) -> None:
    actions = axl_server(https, {"SEP001122334455"})
    axl = Axl(node_http(https, pki))
    assert axl.version() == "14.0.1.13900-155"
    assert axl.sql("select paramvalue from processconfig where paramname='ClusterSecurityMode'") == [
        {"paramvalue": "1"}
    ]
    assert axl.process_nodes() == [
        (NAME, "CUCM Voice/Video"),
        ("cucm-sub1.example.com", "CUCM Voice/Video"),
        ("imp1.example.com", "CUP"),
    ]
    assert axl.reset_device("SEP001122334455") is True
    assert axl.reset_device("SEPFFFFFFFFFFFF") is False  # unknown device: skipped, not an error
    assert actions == [
        "CUCM:DB ver=14.0 getCCMVersion",
        "CUCM:DB ver=14.0 executeSQLQuery",
        "CUCM:DB ver=14.0 listProcessNode",
        "CUCM:DB ver=14.0 doDeviceReset",
        "CUCM:DB ver=14.0 doDeviceReset",
    ]
    for request in https.requests:
        element = body_of(request)
        assert element.tag.startswith(f"{{{AXL_NS}}}")
        assert_valid(axl_schema, element)
    assert len(https.requests) == 5  # the fault for the unknown device was not retried


def test_axl_fault_is_a_rejection_with_cucms_text(https: HttpsServer, pki: Pki) -> None:
    axl_server(https, set())
    with pytest.raises(CucmRejected) as caught:
        Axl(node_http(https, pki)).sql("select nonsense")
    assert "A syntax error has occurred." in caught.value.cucm_message
    assert len(https.requests) == 1


def test_axl_version_is_configurable(https: HttpsServer, pki: Pki, schema_dir: Path) -> None:
    actions: list[str] = []

    def handle(request: Request) -> Reply:
        actions.append(request.headers["SOAPAction"])
        assert b"http://www.cisco.com/AXL/API/15.0" in request.body
        ns = "http://www.cisco.com/AXL/API/15.0"
        return soap_reply(
            f'<ns:getCCMVersionResponse xmlns:ns="{ns}"><return><componentVersion><version>15.0.1</version>'
            "</componentVersion></return></ns:getCCMVersionResponse>"
        )

    https.route("POST", "/axl/", handle)
    assert Axl(node_http(https, pki), version="15.0").version() == "15.0.1"
    assert actions == ['"CUCM:DB ver=15.0 getCCMVersion"']


def test_device_pools_and_pool_reset_requests_match_the_schema(
    https: HttpsServer, pki: Pki, axl_schema: etree.XMLSchema
) -> None:
    pools = {"DP-Sub1": ["SEP000000000002", "SEP000000000001"], "DP-Sub2": ["SEP000000000003"]}
    reset: list[str] = []

    def handle(request: Request) -> Reply:
        op = body_of(request)
        name = op.tag.split("}")[1]
        if name == "executeSQLQuery":
            sql = op.findtext("sql") or ""
            assert "fkdevicepool" in sql and "devicepool" in sql
            rows = "".join(
                f"<row><name>{phone}</name><devicepool>{pool}</devicepool></row>"
                for pool, phones in pools.items()
                for phone in phones
            )
            return soap_reply(
                f'<ns:executeSQLQueryResponse xmlns:ns="{AXL_NS}"><return>{rows}</return>'
                "</ns:executeSQLQueryResponse>"
            )
        if name == "resetDevicePool":
            pool = op.findtext("name") or ""
            if pool not in pools:
                return soap_fault(
                    "Item not valid: The specified DevicePool was not found",
                    "<axlError><axlcode>5007</axlcode><axlmessage>Item not valid</axlmessage></axlError>",
                )
            reset.append(pool)
            return soap_reply(
                f'<ns:resetDevicePoolResponse xmlns:ns="{AXL_NS}"><return>'
                "{9E5E2C4A-0D5B-4B0E-8A8C-2D0E8D1F0A11}</return></ns:resetDevicePoolResponse>"
            )
        if name == "doDeviceReset":
            return soap_fault("AXL is not available", "<axlError><axlcode>5000</axlcode></axlError>")
        return soap_fault(f"unknown operation {name}")

    https.route("POST", "/axl/", handle)
    axl = Axl(node_http(https, pki))
    assert axl.device_pools() == {
        "DP-Sub1": ["SEP000000000001", "SEP000000000002"],
        "DP-Sub2": ["SEP000000000003"],
    }
    assert axl.reset_device_pool("DP-Sub2") is True
    assert axl.reset_device_pool("DP-Nowhere") is False  # unknown pool: skipped, not an error
    assert reset == ["DP-Sub2"]
    for request in https.requests:
        assert request.headers["SOAPAction"].strip('"').split()[-1] in ("executeSQLQuery", "resetDevicePool")
        assert_valid(axl_schema, body_of(request))
    assert len(https.requests) == 3  # the fault for the unknown pool was not retried
    with pytest.raises(CucmRejected) as refused:
        axl.reset_device("SEP000000000001")
    assert "not available" in refused.value.cucm_message


# ------------------------------------------------------------------ RisPort70


class RisFake:
    """Devices listed under two nodes; one request returns at most MaxReturnedDevices entries."""

    def __init__(self, count: int, *, throttle_first: int = 0) -> None:
        self.entries: list[tuple[str, str, str]] = []
        for i in range(count):
            name = f"SEP{i:012X}"
            if i % 10 == 0:  # also seen (Registered) under the subscriber, UnRegistered on the publisher
                self.entries.append((NAME, name, "UnRegistered"))
                self.entries.append(("cucm-sub1.example.com", name, "Registered"))
            else:
                self.entries.append((NAME, name, "Registered" if i % 7 else "UnRegistered"))
        self.throttle_first = throttle_first
        self.calls = 0

    def __call__(self, request: Request) -> Reply:
        self.calls += 1
        if self.calls <= self.throttle_first:
            return soap_fault(THROTTLE)
        op = body_of(request)
        q = f"{{{AST}}}"
        state = op.findtext(f"{q}StateInfo") or "0"
        limit = int(op.findtext(f"{q}CmSelectionCriteria/{q}MaxReturnedDevices") or 1000)
        items = [
            i.findtext(f"{q}Item") for i in op.iterfind(f"{q}CmSelectionCriteria/{q}SelectItems/{q}item")
        ]
        pool = self.entries if items == ["*"] else [e for e in self.entries if e[1] in set(items)]
        offset = int(state)
        page = pool[offset : offset + limit]
        by_node: dict[str, list[tuple[str, str]]] = {}
        for node, name, status in page:
            by_node.setdefault(node, []).append((name, status))
        nodes = "".join(
            f"<ns1:item><ns1:ReturnCode>Ok</ns1:ReturnCode><ns1:Name>{node}</ns1:Name><ns1:NoChange>false</ns1:NoChange>"
            "<ns1:CmDevices>"
            + "".join(
                f"<ns1:item><ns1:Name>{n}</ns1:Name><ns1:DeviceClass>Phone</ns1:DeviceClass><ns1:Model>621</ns1:Model>"
                f"<ns1:Status>{s}</ns1:Status></ns1:item>"
                for n, s in devs
            )
            + "</ns1:CmDevices></ns1:item>"
            for node, devs in by_node.items()
        )
        return soap_reply(
            f'<ns1:selectCmDeviceResponse xmlns:ns1="{AST}"><ns1:selectCmDeviceReturn>'
            "<ns1:SelectCmDeviceResult>"
            f"<ns1:TotalDevicesFound>{len(pool)}</ns1:TotalDevicesFound><ns1:CmNodes>{nodes}</ns1:CmNodes>"
            f"</ns1:SelectCmDeviceResult><ns1:StateInfo>{offset + len(page)}</ns1:StateInfo>"
            "</ns1:selectCmDeviceReturn></ns1:selectCmDeviceResponse>"
        )


RIS_PATH = "/realtimeservice2/services/RISService70"


class RecordingLimiter(SlidingWindowLimiter):
    def __init__(self, limit: int, window: float) -> None:
        super().__init__(limit, window)
        self.granted: list[float] = []

    def acquire(self) -> float:
        waited = super().acquire()
        self.granted.append(time.monotonic())
        return waited


def test_sweep_pages_dedupes_and_prefers_registered(
    https: HttpsServer, pki: Pki, ris_schema: etree.XMLSchema
) -> None:
    fake = RisFake(2500)
    https.route("POST", RIS_PATH, fake)
    ris = RisPort(node_http(https, pki), SlidingWindowLimiter(100, 60.0))
    phones = ris.sweep()
    assert len(phones) == 2500
    entries = len(fake.entries)  # 2750 entries across nodes
    assert len(https.requests) == -(-entries // 1000) == ris.requests_sent
    assert phones["SEP000000000000"] == PhoneState("SEP000000000000", "Registered", "cucm-sub1.example.com")
    assert phones["SEP000000000007"].status == "UnRegistered"
    assert sum(p.status == "Registered" for p in phones.values()) == sum(
        1 for i in range(2500) if i % 10 == 0 or i % 7
    )
    for request in https.requests:
        assert request.headers["SOAPAction"] == '"selectCmDeviceExt"'
        assert_valid(ris_schema, body_of(request))
    # Pages continue from the StateInfo the previous answer returned.
    states = [body_of(r).findtext(f"{{{AST}}}StateInfo") or "" for r in https.requests]
    assert states == ["", "1000", "2000"]


def test_sweep_by_names_chunks_requests(https: HttpsServer, pki: Pki) -> None:
    fake = RisFake(300)
    https.route("POST", RIS_PATH, fake)
    ris = RisPort(node_http(https, pki), SlidingWindowLimiter(100, 60.0), page=100)
    wanted = [f"SEP{i:012X}" for i in range(0, 300, 2)] + ["SEPNOTTHERE0000"]
    phones = ris.sweep(wanted)
    assert set(phones) == set(wanted) - {"SEPNOTTHERE0000"}
    # 151 names in chunks of 100; the first chunk's devices take 110 entries (every tenth is listed
    # under two nodes), so that chunk needs a second page.
    assert len(https.requests) == 3


def test_sweep_never_exceeds_the_rate_limit(https: HttpsServer, pki: Pki) -> None:
    https.route("POST", RIS_PATH, RisFake(900))
    limiter = RecordingLimiter(2, 0.4)
    ris = RisPort(node_http(https, pki), limiter, page=100)
    assert len(ris.sweep()) == 900
    stamps = limiter.granted
    assert len(stamps) == 10  # 990 entries at 100 per page
    for i in range(2, len(stamps)):
        assert stamps[i] - stamps[i - 2] >= 0.4 - 1e-3, stamps


def test_throttle_fault_backs_off_then_succeeds(https: HttpsServer, pki: Pki) -> None:
    fake = RisFake(50, throttle_first=1)
    https.route("POST", RIS_PATH, fake)
    phones = RisPort(node_http(https, pki), SlidingWindowLimiter(100, 60.0)).sweep()
    assert len(phones) == 50 and fake.calls == 2


def test_persistent_throttle_raises_throttled(https: HttpsServer, pki: Pki) -> None:
    fake = RisFake(50, throttle_first=99)
    https.route("POST", RIS_PATH, fake)
    with pytest.raises(CucmThrottled, match="Exceeded allowed rate"):
        RisPort(node_http(https, pki), SlidingWindowLimiter(100, 60.0)).sweep()
    assert fake.calls == 3


def test_merge_keeps_registered_whatever_the_order() -> None:
    found: dict[str, PhoneState] = {}
    merge(found, [PhoneState("A", "Registered", "n1"), PhoneState("A", "UnRegistered", "n2")])
    merge(found, [PhoneState("B", "UnRegistered", "n1"), PhoneState("B", "Registered", "n2")])
    assert found == {"A": PhoneState("A", "Registered", "n1"), "B": PhoneState("B", "Registered", "n2")}


def test_limiter_with_injected_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter(3, 60.0, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] = 10.0
    assert limiter.acquire() == pytest.approx(50.0)
    assert slept == [pytest.approx(50.0)]
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimiter(0)


# ------------------------------------------------------------------ ControlCenterServices

CCS_PATH = "/controlcenterservice2/services/ControlCenterServices"


def ccs_reply(op: str, items: str, reason: str = "-1") -> Reply:
    return soap_reply(
        f'<ns:{op}Response xmlns:ns="{AST}"><ns:{op}Return><ns:ReturnCode>0</ns:ReturnCode>'
        f"<ns:ReasonCode>{reason}</ns:ReasonCode><ns:ReasonString/><ns:ServiceInfoList>{items}</ns:ServiceInfoList>"
        f"</ns:{op}Return></ns:{op}Response>"
    )


def ccs_item(name: str, status: str, reason: str = "-1", reason_text: str = "", start: str = "") -> str:
    return (
        f"<ns:item><ns:ServiceName>{name}</ns:ServiceName><ns:ServiceStatus>{status}</ns:ServiceStatus>"
        f"<ns:ReasonCode>{reason}</ns:ReasonCode><ns:ReasonCodeString>{reason_text}</ns:ReasonCodeString>"
        f"<ns:StartTime>{start}</ns:StartTime><ns:UpTime>42</ns:UpTime></ns:item>"
    )


def test_ccs_status_and_restart(https: HttpsServer, pki: Pki, ccs_schema: etree.XMLSchema) -> None:
    def handle(request: Request) -> Reply:
        action = request.headers["SOAPAction"].strip('"')
        if action == "soapGetServiceStatus":
            return ccs_reply(
                "soapGetServiceStatus",
                ccs_item("Cisco Tftp", "Started", start="Thu Nov 26 10:00:00 2026")
                + ccs_item("Cisco CallManager", "Stopped"),
            )
        if "Cisco Tftp" in request.body.decode():
            return ccs_reply("soapDoControlServices", ccs_item("Cisco Tftp", "Starting"))
        return ccs_reply(
            "soapDoControlServices",
            ccs_item("Cisco DB", "Started", reason="-1068", reason_text="Service cannot be controlled"),
        )

    https.route("POST", CCS_PATH, handle)
    ccs = ControlCenter(node_http(https, pki))
    status = ccs.status("Cisco Tftp")
    assert status.status == "Started" and status.start_time == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert ccs.status("Cisco CallManager").start_time is None
    assert ccs.status("Cisco Nothing").status == "NotFound"
    assert ccs.control("Cisco Tftp").status == "Starting"
    with pytest.raises(CucmRejected) as caught:
        ccs.control("Cisco DB")
    assert caught.value.cucm_message == "Service cannot be controlled"
    for request in https.requests:
        assert_valid(ccs_schema, body_of(request))
    restart = body_of(https.requests[3])
    assert restart.findtext(f"{{{AST}}}ControlServiceRequest/{{{AST}}}NodeName") == NAME
    assert restart.findtext(f"{{{AST}}}ControlServiceRequest/{{{AST}}}ControlType") == "Restart"


def test_start_time_formats() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_start_time("2026-01-01T10:00:00Z") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert parse_start_time("Thu Jan 01 10:00:00 2026") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert parse_start_time("1767261600") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert parse_start_time("", "3600", now=now) == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert parse_start_time("garbage") is None
