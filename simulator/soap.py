"""The SOAP services of a node: ControlCenterServices, RisPort70 and AXL.

Element names, order, namespaces and SOAPAction values follow Cisco's WSDLs (ControlCenterServices
and RISService70: ``http://schemas.cisco.com/ast/soap``, qualified elements, SOAPAction = operation
name; AXL: ``http://www.cisco.com/AXL/API/<ver>``, unqualified children, SOAPAction
``"CUCM:DB ver=<ver> <operation>"``). Faults are SOAP 1.1 faults as Axis writes them, with HTTP 500.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from simulator import sql
from simulator.cluster import NOT_CONTROLLABLE, REGISTERED, Cluster, CucmError, Node

if TYPE_CHECKING:
    from simulator.https import NodeRequestHandler

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
AST = "http://schemas.cisco.com/ast/soap"
AXL_NS = re.compile(r"^http://www\.cisco\.com/AXL/API/(\d+\.\d+)$")
AXL_ACTION = re.compile(r'^"?CUCM:DB ver=(\d+\.\d+) (\w+)"?$')
RIS_PATH = "/realtimeservice2/services/RISService70"
CCS_PATH = "/controlcenterservice2/services/ControlCenterServices"
CCS_EX_PATH = "/controlcenterservice2/services/ControlCenterServicesEx"
WSDL_FILES = {
    RIS_PATH: "RISService70.wsdl",
    CCS_PATH: "ControlCenterServices.wsdl",
    CCS_EX_PATH: "ControlCenterServicesEx.wsdl",
}
THROTTLE = (
    "Exceeded allowed rate for Reatime information. Current allowed rate for realtime information is "
    "{n} requests per minute."
)
MAX_DEVICES = 1000
XML = "text/xml; charset=utf-8"


class SoapFault(Exception):
    def __init__(self, string: str, code: str = "soapenv:Server", detail: str = "") -> None:
        super().__init__(string)
        self.string = string
        self.code = code
        self.detail = detail


class RateLimiter:
    """RisPort70's per-node limit: N requests per minute, the minute divided by the time scale."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}

    def allow(self, node: str) -> bool:
        window = 60.0 / self.cluster.time_scale
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(node, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= self.cluster.ris_rate_limit:
                return False
            calls.append(now)
            return True


def envelope(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )


def fault_xml(fault: SoapFault) -> str:
    return envelope(
        f"<soapenv:Fault><faultcode>{fault.code}</faultcode><faultstring>{escape(fault.string)}</faultstring>"
        f"<detail>{fault.detail}</detail></soapenv:Fault>"
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None, name: str, default: str = "") -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None and c.text is not None else default


def _e(tag: str, value: object) -> str:
    """An element, or xsi:nil for None."""
    if value is None:
        return f'<{tag} xsi:nil="true"/>'
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def parse_body(raw: bytes) -> ET.Element:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise SoapFault("DOCTYPE is not allowed", "soapenv:Client")
    try:
        root = ET.fromstring(raw)  # noqa: S314
    except ET.ParseError as exc:
        raise SoapFault(f"Unable to parse the request: {exc}", "soapenv:Client") from None
    if _local(root.tag) != "Envelope":
        raise SoapFault("The request is not a SOAP envelope", "soapenv:Client")
    if _ns(root.tag) != SOAP_ENV:
        raise SoapFault(
            "Transport level information does not match with SOAP Message namespace URI",
            "soapenv:VersionMismatch",
        )
    body = _child(root, "Body")
    if body is None or len(body) == 0:
        raise SoapFault("The SOAP body is empty", "soapenv:Client")
    return body[0]


def handle(handler: NodeRequestHandler, method: str, path: str, query: str) -> None:
    sim = handler.sim
    node = handler.node
    if method == "GET":
        handler.body()
        name = WSDL_FILES.get(path)
        if query.lower() == "wsdl" and name and sim.schema_dir is not None:
            wsdl = sim.schema_dir / "serviceability" / name
            if wsdl.is_file():
                return handler.send(200, wsdl.read_bytes(), XML)
        return handler.send(404, "Not Found", "text/plain")
    if method != "POST":
        handler.body()
        return handler.send(405, "Method Not Allowed", "text/plain")
    raw = handler.body()
    action = (handler.headers.get("SOAPAction") or "").strip()
    try:
        op = parse_body(raw)
        if path.rstrip("/") == "/axl":
            body = axl(sim.cluster, node, op, action)
        elif path == RIS_PATH:
            body = ris(sim, node, op)
        elif path in (CCS_PATH, CCS_EX_PATH):
            body = ccs(sim.cluster, node, op)
        else:
            return handler.send(404, "Not Found", "text/plain")
    except SoapFault as fault:
        return handler.send(500, fault_xml(fault), XML)
    return handler.send(200, envelope(body), XML)


# ---------------------------------------------------------------------------- ControlCenterServices
def _start_time(wall: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(wall))


def _service_item(cluster: Cluster, node: Node, name: str, reason: str | None = None) -> str:
    svc = node.services.get(name)
    if svc is None:
        return (
            f"<item>{_e('ServiceName', name)}{_e('ServiceStatus', 'Unknown')}{_e('ReasonCode', -1068)}"
            f"{_e('ReasonCodeString', 'Service Not Found')}{_e('StartTime', None)}{_e('UpTime', -1)}</item>"
        )
    if not svc.activated:
        code, text, start, up = -1068, "Service Not Activated", None, -1
    else:
        code, text = -1, reason or " "
        running = svc.state == "Started"
        start = _start_time(cluster.cucm_wall(svc.started_at)) if running else None
        up = int(time.time() - svc.started_at) if running else -1
    return (
        f"<item>{_e('ServiceName', name)}{_e('ServiceStatus', svc.status())}{_e('ReasonCode', code)}"
        f"{_e('ReasonCodeString', text)}{_e('StartTime', start)}{_e('UpTime', up)}</item>"
    )


def _ccs_response(element: str, items: Iterable[str], return_code: str = "Success") -> str:
    return (
        f'<{element}Response xmlns="{AST}"><{element}Return>{_e("ReturnCode", return_code)}'
        f"{_e('ReasonCode', -1)}{_e('ReasonString', None)}<ServiceInfoList>{''.join(items)}</ServiceInfoList>"
        f"</{element}Return></{element}Response>"
    )


def ccs(cluster: Cluster, node: Node, op: ET.Element) -> str:
    if _ns(op.tag) != AST:
        raise SoapFault(f"No such operation '{_local(op.tag)}'", "soapenv:Client")
    name = _local(op.tag)
    with cluster.lock:
        cluster.advance()
        if name == "soapGetServiceStatus":
            wanted = [(c.text or "").strip() for c in op if _local(c.tag) == "ServiceStatus"]
            names = list(node.services) if not any(wanted) else [w for w in wanted if w]
            return _ccs_response("soapGetServiceStatus", (_service_item(cluster, node, n) for n in names))
        if name == "soapDoControlServices":
            req = _child(op, "ControlServiceRequest")
            node_name = _text(req, "NodeName")
            control = _text(req, "ControlType")
            services = [
                (c.text or "").strip() for c in (_child(req, "ServiceList") or []) if _local(c.tag) == "item"
            ]
            if node_name not in (node.name, node.short):
                raise SoapFault(
                    f"Invalid NodeName {node_name}: this service controls only the local node {node.name}",
                    "soapenv:Client",
                )
            if control not in ("Start", "Stop", "Restart"):
                raise SoapFault(
                    f"Invalid ControlType {control}: use Start, Stop or Restart", "soapenv:Client"
                )
            items = []
            refused = False
            for s in services:
                if s in NOT_CONTROLLABLE and s in node.services:
                    refused = True
                    items.append(
                        _service_item(cluster, node, s, "Service cannot be controlled (not stoppable)")
                    )
                    continue
                try:
                    cluster.control(node, s, control)
                except CucmError:
                    refused = True
                items.append(_service_item(cluster, node, s))
            return _ccs_response("soapDoControlServices", items, "Rejected" if refused else "Success")
    raise SoapFault(f"No such operation '{name}'", "soapenv:Client")


# ---------------------------------------------------------------------------- RisPort70
def _device_xml(cluster: Cluster, i: int, status: str, stamp: int) -> str:
    p = cluster.phones
    ip = p.ip[i]
    return (
        "<item>"
        f"{_e('Name', p.names[i])}{_e('DirNumber', p.dirnum[i] + '-' + status)}{_e('DeviceClass', 'Phone')}"
        f"{_e('Model', p.model[i])}{_e('Product', 303)}{_e('BoxProduct', 0)}{_e('Httpd', 'Yes')}"
        f"{_e('RegistrationAttempts', 0)}{_e('IsCtiControllable', True)}{_e('LoginUserId', None)}"
        f"{_e('Status', status)}{_e('StatusReason', 0)}{_e('PerfMonObject', 2)}{_e('DChannel', 0)}"
        f"{_e('Description', 'Phone ' + p.dirnum[i])}{_e('H323Trunk', None)}"
        f"{_e('TimeStamp', stamp)}"
        f"{_e('Protocol', 'SIP')}{_e('NumOfLines', 1)}"
        f"<LinesStatus><item>{_e('DirectoryNumber', p.dirnum[i])}{_e('Status', status)}</item></LinesStatus>"
        f"{_e('ActiveLoadID', 'sip78xx.14-1-1-0001-136')}{_e('InactiveLoadID', None)}"
        f"{_e('DownloadStatus', 'Successful')}{_e('DownloadFailureReason', None)}{_e('DownloadServer', None)}"
        f"<IPAddress><item>{_e('IP', ip)}{_e('IPAddrType', 'ipv4')}{_e('Attribute', 'Unknown')}</item>"
        "</IPAddress>"
        "</item>"
    )


def _entries(cluster: Cluster, primary_only: bool) -> list[tuple[int, int, bool]]:
    """(phone, node, primary) in the order RIS pages them: by node, then by device name."""
    cache_key = "_ris_entries_ext" if primary_only else "_ris_entries"
    cached = getattr(cluster, cache_key, None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    p = cluster.phones
    entries = [(i, p.node[i], True) for i in range(p.count)]
    if not primary_only:
        entries += [(i, p.also[i], False) for i in range(p.count) if p.also[i] >= 0]
    entries.sort(key=lambda e: (e[1], p.names[e[0]]))
    setattr(cluster, cache_key, entries)
    return entries


def ris(sim: Any, node: Node, op: ET.Element) -> str:
    cluster: Cluster = sim.cluster
    name = _local(op.tag)
    if _ns(op.tag) != AST or name not in ("selectCmDevice", "selectCmDeviceExt"):
        raise SoapFault(f"No such operation '{name}'", "soapenv:Client")
    if not sim.ris_limiter.allow(node.name):
        raise SoapFault(
            THROTTLE.format(n=cluster.ris_rate_limit),
            detail=f'<ns1:hostname xmlns:ns1="http://xml.apache.org/axis/">{escape(node.short)}</ns1:hostname>',
        )
    state_in = _text(op, "StateInfo")
    crit = _child(op, "CmSelectionCriteria")
    try:
        max_devices = int(_text(crit, "MaxReturnedDevices", "1000") or 1000)
    except ValueError:
        raise SoapFault("MaxReturnedDevices must be a number", "soapenv:Client") from None
    max_devices = max(1, min(max_devices, MAX_DEVICES))
    device_class = _text(crit, "DeviceClass", "Any") or "Any"
    model = _text(crit, "Model", "255") or "255"
    status_filter = _text(crit, "Status", "Any") or "Any"
    node_filter = _text(crit, "NodeName")
    select_by = _text(crit, "SelectBy", "Name") or "Name"
    items_el = _child(crit, "SelectItems")
    patterns = [
        _text(it, "Item") for it in (items_el if items_el is not None else []) if _local(it.tag) == "item"
    ]
    patterns = [pt for pt in patterns if pt] or ["*"]
    m = re.search(r'Offset="(\d+)"', state_in)
    offset = int(m.group(1)) if m else 0

    with cluster.lock:
        cluster.advance()
        now = time.monotonic()
        cm_nodes = [n for n in cluster.nodes if n.runs_callmanager]
        if node_filter and not any(node_filter in (n.name, n.short) for n in cm_nodes):
            return _ris_response(
                [
                    f"<item>{_e('ReturnCode', 'InvalidNodeName')}{_e('Name', node_filter)}"
                    f"{_e('NoChange', False)}<CmDevices/></item>"
                ],
                0,
                state_in,
            )
        p = cluster.phones
        model_ok = model == "255"
        try:
            model_num = int(model)
        except ValueError:
            model_num = -1
        class_ok = device_class in ("Any", "Phone")
        attr = {"Name": p.names, "DirNumber": p.dirnum, "IPV4Address": p.ip, "Description": p.dirnum}.get(
            select_by, p.names
        )
        match_all = patterns == ["*"]
        exact = (
            None if any(any(ch in pt for ch in "*?[") for pt in patterns) else {pt.upper() for pt in patterns}
        )
        node_idx = {n.index for n in cm_nodes if not node_filter or node_filter in (n.name, n.short)}
        matched: list[tuple[int, int, bool]] = []
        if class_ok:
            for i, n_idx, primary in _entries(cluster, name == "selectCmDeviceExt"):
                if n_idx not in node_idx:
                    continue
                if not model_ok and p.model[i] != model_num:
                    continue
                if not match_all:
                    value = attr[i]
                    if exact is not None:
                        if value.upper() not in exact:
                            continue
                    elif not any(fnmatch.fnmatchcase(value.upper(), pt.upper()) for pt in patterns):
                        continue
                if status_filter != "Any":
                    status = cluster.ris_phone(i, now)[0] if primary else "UnRegistered"
                    if status != status_filter:
                        continue
                matched.append((i, n_idx, primary))
        page = matched[offset : offset + max_devices]
        by_node: dict[int, list[str]] = {}
        for i, n_idx, primary in page:
            # RIS collects asynchronously: Status and TimeStamp are as they were ris_lag ago.
            status, stamp = cluster.ris_phone(i, now)
            if not primary:
                status = "UnRegistered"
            by_node.setdefault(n_idx, []).append(_device_xml(cluster, i, status, stamp))
        node_items = []
        for n in cm_nodes:
            if node_filter and node_filter not in (n.name, n.short):
                continue
            devices = by_node.get(n.index, [])
            code = "Ok" if devices else "NotFound"
            node_items.append(
                f"<item>{_e('ReturnCode', code)}{_e('Name', n.name)}{_e('NoChange', False)}"
                f"<CmDevices>{''.join(devices)}</CmDevices></item>"
            )
        next_offset = offset + len(page)
        ris_start = int(cluster.publisher.services["Cisco RIS Data Collector"].started_at)
        state_out = (
            f'<StateInfo><Node Name="{escape(node.name)}" SubsystemStartTime="{ris_start}" '
            f'StateId="{cluster.state_id()}" TotalItemsFound="{len(matched)}" '
            f'TotalItemsReturned="{next_offset}"/>'
            f'<Page Offset="{next_offset}"/></StateInfo>'
        )
        return _ris_response(node_items, len(matched), state_out)


def _ris_response(node_items: list[str], total: int, state_info: str) -> str:
    return (
        f'<selectCmDeviceResponse xmlns="{AST}"><selectCmDeviceReturn><SelectCmDeviceResult>'
        f"{_e('TotalDevicesFound', total)}<CmNodes>{''.join(node_items)}</CmNodes></SelectCmDeviceResult>"
        f"{_e('StateInfo', state_info)}</selectCmDeviceReturn></selectCmDeviceResponse>"
    )


# ---------------------------------------------------------------------------- AXL
def _axl_versions(cluster: Cluster) -> set[str]:
    major = int(cluster.version.split(".")[0])
    versions = {"10.0", "10.5", "11.0", "11.5", "12.0", "12.5", "14.0"}
    if major >= 15:
        versions.add("15.0")
    return versions


def _axl_fault(message: str, code: int, request: str, faultcode: str = "soapenv:Client") -> SoapFault:
    detail = (
        f"<axlError><axlcode>{code}</axlcode><axlmessage>{escape(message)}</axlmessage>"
        f"<request>{escape(request)}</request></axlError>"
    )
    return SoapFault(message, faultcode, detail)


def _guid(*parts: object) -> str:
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts)))).upper() + "}"


def axl(cluster: Cluster, node: Node, op: ET.Element, action: str) -> str:
    name = _local(op.tag)
    m = AXL_NS.match(_ns(op.tag))
    if not m:
        raise SoapFault(
            f"The request namespace {_ns(op.tag)!r} is not an AXL API namespace", "soapenv:Client"
        )
    version = m.group(1)
    a = AXL_ACTION.match(action)
    if not a:
        raise _axl_fault(f'The SOAPAction header must be "CUCM:DB ver={version} {name}"', 5000, name)
    if a.group(1) != version:
        raise _axl_fault(
            f"The AXL version in the SOAPAction header (ver={a.group(1)}) does not match the request "
            f"namespace (http://www.cisco.com/AXL/API/{version})",
            5000,
            name,
        )
    if a.group(2) != name:
        raise _axl_fault(
            f"The SOAPAction operation {a.group(2)} does not match the request {name}", 5000, name
        )
    if version not in _axl_versions(cluster):
        raise _axl_fault(f"Unsupported AXL version {version} on {cluster.version}", 5000, name)
    if node.role != "publisher":
        # AXL answers on the publisher; the tool must not rely on subscribers serving it.
        raise _axl_fault("AXL is served by the publisher only", 5000, name, "soapenv:Server")
    pre = f'<ns:{name}Response xmlns:ns="http://www.cisco.com/AXL/API/{version}">'
    post = f"</ns:{name}Response>"
    if name == "executeSQLQuery":
        query = _text(op, "sql")
        try:
            columns, rows = sql.query(cluster, query)
        except sql.SqlError as exc:
            text = str(exc)
            code = -201 if "syntax" in text else -206 if "table" in text else -217
            raise _axl_fault(text, code, name, "soapenv:Server") from None
        body = "".join("<row>" + "".join(_e(c, r[c]) for c in columns) + "</row>" for r in rows)
        return f"{pre}<return>{body}</return>{post}"
    if name == "listProcessNode":
        crit = _child(op, "searchCriteria")
        tags_el = _child(op, "returnedTags")
        wanted = [_local(c.tag) for c in tags_el] if tags_el is not None else []
        order = ["name", "description", "mac", "ipv6Name", "nodeUsage", "lbmHubGroup", "processNodeRole"]
        if not wanted:
            wanted = order
        name_pat = _text(crit, "name", "%") or "%"
        role_pat = _text(crit, "processNodeRole", "%") or "%"
        desc_pat = _text(crit, "description", "%") or "%"
        out = []
        node_rows = [("EnterpriseWideData", "", "Publisher", "CUCM Voice/Video")] + [
            (
                n.name,
                n.short,
                "Publisher" if n.role == "publisher" else "Subscriber",
                "CUCM IM and Presence" if n.role == "imp" else "CUCM Voice/Video",
            )
            for n in cluster.nodes
        ]
        for node_name, desc, usage, role in node_rows:
            if not (_like(node_name, name_pat) and _like(role, role_pat) and _like(desc, desc_pat)):
                continue
            values = {
                "name": node_name,
                "description": desc,
                "ipv6Name": "",
                "nodeUsage": usage,
                "processNodeRole": role,
            }
            fields = "".join(
                _e(t, values[t]) if t in values else (f"<{t}/>" if t == "lbmHubGroup" else "")
                for t in order
                if t in wanted and t != "mac"
            )
            out.append(f'<processNode uuid="{_guid("processnode", node_name)}">{fields}</processNode>')
        return f"{pre}<return>{''.join(out)}</return>{post}"
    if name == "doDeviceReset":
        dev = _child(op, "deviceName")
        dev_name = (dev.text or "").strip() if dev is not None else ""
        try:
            cluster.reset_phone(dev_name)
        except CucmError:
            raise _axl_fault("Item not valid: The specified Device was not found", 5007, name) from None
        return f"{pre}<return>{_guid('device', dev_name)}</return>{post}"
    if name == "resetDevicePool":
        # NameAndGUIDRequest: the pool by <name> or by <uuid>, exactly one of them.
        pool_name, pool_uuid = _child(op, "name"), _child(op, "uuid")
        with cluster.lock:
            pool = cluster.find_device_pool(
                (pool_name.text or "").strip() if pool_name is not None else None,
                (pool_uuid.text or "").strip() if pool_uuid is not None else None,
            )
            if pool is None:
                raise _axl_fault("Item not valid: The specified DevicePool was not found", 5007, name)
            cluster.reset_device_pool(pool)
            return f"{pre}<return>{cluster.device_pool_uuid(pool)}</return>{post}"
    if name == "listDevicePool":
        crit = _child(op, "searchCriteria")
        tags_el = _child(op, "returnedTags")
        wanted_tags = {_local(c.tag) for c in tags_el} if tags_el is not None else set()
        name_pat = _text(crit, "name", "%") or "%"
        out = []
        with cluster.lock:
            for pool in cluster.device_pools:
                if _like(pool, name_pat):
                    fields = _e("name", pool) if not wanted_tags or "name" in wanted_tags else ""
                    out.append(f'<devicePool uuid="{cluster.device_pool_uuid(pool)}">{fields}</devicePool>')
        return f"{pre}<return>{''.join(out)}</return>{post}"
    if name == "getCCMVersion":
        v = cluster.version
        pretty = re.sub(r"-(\d+)$", r"(\1)", v)
        return f"{pre}<return><componentVersion>{_e('version', pretty)}</componentVersion></return>{post}"
    raise _axl_fault(f"Operation {name} is not implemented by this server", 5000, name)


def _like(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("%", "*").replace("_", "?"))


__all__ = ["REGISTERED", "RateLimiter", "SoapFault", "handle"]
