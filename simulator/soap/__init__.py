"""The SOAP services of a node: ControlCenterServices(Ex), RisPort70 and AXL.

Element names, order, namespaces and SOAPAction values follow Cisco's WSDLs (ControlCenterServices,
ControlCenterServicesEx and RISService70: ``http://schemas.cisco.com/ast/soap``, qualified elements,
SOAPAction = operation name; AXL: ``http://www.cisco.com/AXL/API/<ver>``, unqualified children,
SOAPAction ``"CUCM:DB ver=<ver> <operation>"``). Faults are SOAP 1.1 faults as Axis writes them,
with HTTP 500. One module per service: ``ccs``, ``ris``, ``axlapi``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from simulator.cluster import REGISTERED, Cluster, Node
from simulator.soap import axlapi, ccs, ris
from simulator.soap.common import XML, SoapFault, envelope, fault_xml, parse_body
from simulator.soap.ris import RateLimiter

if TYPE_CHECKING:
    from simulator.https import NodeRequestHandler

RIS_PATH = "/realtimeservice2/services/RISService70"
CCS_PATH = "/controlcenterservice2/services/ControlCenterServices"
CCS_EX_PATH = "/controlcenterservice2/services/ControlCenterServicesEx"
WSDL_FILES = {
    RIS_PATH: "RISService70.wsdl",
    CCS_PATH: "ControlCenterServices.wsdl",
    CCS_EX_PATH: "ControlCenterServicesEx.wsdl",
}
# What CUCM's AXL servlet answers to a GET of /axl/: clients fetch it to check AXL is up [I].
AXL_BANNER = (
    "<html><head><title>Cisco CallManager: AXL Web Service</title></head><body>"
    "<h1>Cisco CallManager: AXL Web Service</h1>"
    "<p>The AXL Web Service is working and accepting requests. Use HTTP POST to send a request.</p>"
    "</body></html>"
)


def axl(cluster: Cluster, node: Node, op: ET.Element, action: str) -> str:
    """One AXL request (a module-level name, so a benchmark can count the calls)."""
    return axlapi.axl(cluster, node, op, action)


def handle(handler: NodeRequestHandler, method: str, path: str, query: str) -> None:
    sim = handler.sim
    node = handler.node
    is_axl = path.rstrip("/") == "/axl"
    if method == "GET":
        handler.body()
        name = WSDL_FILES.get(path)
        if query.lower() == "wsdl" and name and sim.schema_dir is not None:
            wsdl = sim.schema_dir / "serviceability" / name
            if wsdl.is_file():
                return handler.send(200, wsdl.read_bytes(), XML)
        if is_axl and not query:
            return handler.send(200, AXL_BANNER, "text/html;charset=utf-8")
        return handler.not_found(path)
    if method != "POST":
        handler.body()
        return handler.tomcat_error(405, path)
    raw = handler.body()
    action = (handler.headers.get("SOAPAction") or "").strip()
    try:
        op = parse_body(raw)
        if is_axl:
            body = axl(sim.cluster, node, op, action)
        elif path == RIS_PATH:
            body = ris.ris(sim, node, op)
        elif path == CCS_PATH:
            body = ccs.ccs(sim.cluster, node, op)
        elif path == CCS_EX_PATH:
            body = ccs.ccs_ex(sim.cluster, node, op)
        else:
            return handler.not_found(path)
    except SoapFault as fault:
        return handler.send(500, fault_xml(fault), XML)
    return handler.send(200, envelope(body), XML)


__all__ = ["REGISTERED", "RateLimiter", "SoapFault", "handle"]
