"""ControlCenterServices and ControlCenterServicesEx: every operation of Cisco's two WSDLs.

Both act on the node they are called on only. ``NodeName`` is nillable in the WSDL: absent, empty or
nil means the local node, as Cisco's own sample sends it; another node's name is a fault [C SXML-CC].
The plain service answers ReturnCode ``Success``/``Rejected`` (a string type); the Ex service's
ReturnCode is an ``xsd:integer``: 0, or 1 when a service was refused [M].
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from simulator.cluster import NOT_CONTROLLABLE, Cluster, CucmError, Node
from simulator.cluster.services import (
    CATALOGUE,
    PUBLISHER,
    REASON_NO_SUCH_SERVICE,
    ServiceSpec,
    present_on,
)
from simulator.soap.common import AST, SoapFault, child, e, items, local, no_such_operation, ns, text

NOT_STOPPABLE = "Service cannot be controlled (not stoppable)"  # M


def _start_time(wall: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(wall))


def service_item(cluster: Cluster, node: Node, name: str, reason: tuple[int, str] | None = None) -> str:
    svc = node.services.get(name)
    if svc is None:
        code, why = REASON_NO_SUCH_SERVICE
        return (
            f"<item>{e('ServiceName', name)}{e('ServiceStatus', 'Unknown')}{e('ReasonCode', code)}"
            f"{e('ReasonCodeString', why)}{e('StartTime', None)}{e('UpTime', -1)}</item>"
        )
    code, why = reason or svc.reason()
    status = svc.status()
    running = status == "Started"
    start = _start_time(cluster.cucm_wall(svc.started_at)) if running else None
    up = int(time.time() - svc.started_at) if running else -1
    return (
        f"<item>{e('ServiceName', name)}{e('ServiceStatus', status)}{e('ReasonCode', code)}"
        f"{e('ReasonCodeString', why)}{e('StartTime', start)}{e('UpTime', up)}</item>"
    )


def _response(element: str, service_items: Iterable[str], return_code: object = "Success") -> str:
    return (
        f'<{element}Response xmlns="{AST}"><{element}Return>{e("ReturnCode", return_code)}'
        f"{e('ReasonCode', -1)}{e('ReasonString', None)}<ServiceInfoList>{''.join(service_items)}"
        f"</ServiceInfoList></{element}Return></{element}Response>"
    )


def _check_node(node: Node, request: ET.Element | None) -> None:
    node_name = text(request, "NodeName")
    if node_name and not node.known_as(node_name):
        raise SoapFault(
            f"Invalid NodeName {node_name}: this service controls only the local node {node.name}",
            "soapenv:Client",
        )


def _control(cluster: Cluster, node: Node, request: ET.Element | None) -> tuple[list[str], bool]:
    control = text(request, "ControlType")
    if control not in ("Start", "Stop", "Restart"):
        raise SoapFault(f"Invalid ControlType {control}: use Start, Stop or Restart", "soapenv:Client")
    out: list[str] = []
    refused = False
    for name in items(child(request, "ServiceList")):
        if name in NOT_CONTROLLABLE and name in node.services:
            refused = True
            out.append(service_item(cluster, node, name, (-1, NOT_STOPPABLE)))
            continue
        try:
            cluster.control(node, name, control)
        except CucmError:
            refused = True
        out.append(service_item(cluster, node, name))
    return out, refused


def _deploy(cluster: Cluster, node: Node, request: ET.Element | None) -> tuple[list[str], bool]:
    kind = text(request, "DeployType")
    if kind not in ("Deploy", "UnDeploy"):
        raise SoapFault(f"Invalid DeployType {kind}: use Deploy or UnDeploy", "soapenv:Client")
    out: list[str] = []
    refused = False
    for name in items(child(request, "ServiceList")):
        try:
            cluster.deploy(node, name, kind == "Deploy")
        except CucmError:
            refused = True
        out.append(service_item(cluster, node, name))
    return out, refused


def _node_specs(node: Node) -> list[ServiceSpec]:
    return [s for s in CATALOGUE if present_on(s, node.role)]


def _dependents(spec: ServiceSpec) -> str:
    return "".join(e("Service", d) for d in spec.depends)


def _product(node: Node) -> tuple[str, str, str]:
    """(ProductName, ProductID, ShortName) of the node's product [M]."""
    if node.role == "imp":
        return "Cisco Unified Communications Manager IM and Presence Service", "CUP", "IM and Presence"
    return "Cisco Unified Communications Manager", "CallManager", "CallManager"


def _static_list(node: Node) -> str:
    out = []
    for spec in _node_specs(node):
        out.append(
            f"<item>{e('ServiceName', spec.name)}{e('ServiceType', 'Servlet' if spec.servlet else 'Service')}"
            f"{e('Deployable', spec.deployable)}{e('GroupName', spec.group)}"
            f"<DependentServices>{_dependents(spec)}</DependentServices></item>"
        )
    return (
        f'<soapGetStaticServiceListResponse xmlns="{AST}"><soapGetStaticServiceListReturn>'
        f"<Services>{''.join(out)}</Services></soapGetStaticServiceListReturn>"
        "</soapGetStaticServiceListResponse>"
    )


def _product_information(cluster: Cluster, node: Node) -> str:
    product, product_id, short = _product(node)
    cucm = [n for n in cluster.nodes if n.role != "imp"]
    secondary = cucm[1].processnode_name if len(cucm) > 1 else None
    products = (
        f"<item>{e('ProductName', product)}{e('ProductVersion', cluster.version)}"
        f"{e('ProductDescription', product)}{e('ProductID', product_id)}{e('ShortName', short)}</item>"
    )
    services = "".join(
        f"<item>{e('ServiceName', s.name)}{e('ServiceType', 'Servlet' if s.servlet else 'Service')}"
        f"{e('Deployable', s.deployable)}{e('GroupName', s.group)}{e('ProductID', product_id)}"
        f"<DependentServices>{_dependents(s)}</DependentServices></item>"
        for s in _node_specs(node)
    )
    return (
        f'<getProductInformationListResponse xmlns="{AST}"><getProductInformationListReturn>'
        f"{e('ActiveServerVersion', cluster.version)}{e('PrimaryNode', cluster.publisher.processnode_name)}"
        f"{e('SecondaryNode', secondary)}<Products>{products}</Products><Services>{services}</Services>"
        "</getProductInformationListReturn></getProductInformationListResponse>"
    )


def _static_list_extended(node: Node) -> str:
    _, product_id, _ = _product(node)
    out = []
    for i, spec in enumerate(_node_specs(node), start=1):
        restrict = "none"
        if spec.name in NOT_CONTROLLABLE:
            restrict = "DoNotStop"
        elif spec.where == PUBLISHER:
            restrict = "PrimaryNode"
        default = not spec.deployable or spec.active != "none"
        out.append(
            f"<item>{e('ServiceName', spec.name)}"
            f"<DependentServices>{''.join(e('item', d) for d in spec.depends)}</DependentServices>"
            f"{e('ProductID', product_id)}{e('ServiceType', 'Servlet' if spec.servlet else 'Service')}"
            f"{e('RestrictServer', 'yes' if spec.where == PUBLISHER else 'no')}{e('Restrict', restrict)}"
            f"{e('SetDefault', 'yes' if default else 'no')}{e('SequenceNumber', i)}"
            f"{e('ServiceEnum', i)}{e('GroupName', spec.group)}{e('Deployable', spec.deployable)}</item>"
        )
    return (
        f'<getStaticServiceListExtendedResponse xmlns="{AST}"><getStaticServiceListExtendedReturn>'
        f"{e('PrimaryNode', node.role == 'publisher')}{e('SecondaryNode', node.role != 'publisher')}"
        f"<Services>{''.join(out)}</Services></getStaticServiceListExtendedReturn>"
        "</getStaticServiceListExtendedResponse>"
    )


SECURITY = "/usr/local/platform/.security/"


def _files(cluster: Cluster, node: Node, path: str) -> list[str]:
    """A directory of the node's certificate store, as CUCM lays it out (paths: the CSR text of
    CUCM's upload error, reference section 5); any other directory lists nothing [M]."""
    parts = path.rstrip("/").removeprefix(SECURITY).split("/")
    if not path.startswith(SECURITY) or len(parts) != 2:
        return []
    unit, kind = parts
    ident = node.identities.get(unit)
    if kind == "certs":
        if ident is not None:
            return [f"{unit}.pem", f"{unit}.der"]
        return sorted(node.trust.get(unit, {}))
    if kind == "keys" and ident is not None:
        return [f"{unit}_priv.pem"] + ([f"{unit}.csr"] if ident.csr is not None else [])
    return []


def ccs(cluster: Cluster, node: Node, op: ET.Element) -> str:
    name = local(op.tag)
    if ns(op.tag) != AST:
        raise no_such_operation(name)
    with cluster.lock:
        cluster.advance()
        if name == "soapGetServiceStatus":
            wanted = [(c.text or "").strip() for c in op if local(c.tag) == "ServiceStatus"]
            names = list(node.services) if not any(wanted) else [w for w in wanted if w]
            return _response("soapGetServiceStatus", (service_item(cluster, node, n) for n in names))
        if name == "soapDoControlServices":
            request = child(op, "ControlServiceRequest")
            _check_node(node, request)
            out, refused = _control(cluster, node, request)
            return _response(name, out, "Rejected" if refused else "Success")
        if name == "soapDoServiceDeployment":
            request = child(op, "DeploymentServiceRequest")
            _check_node(node, request)
            out, refused = _deploy(cluster, node, request)
            return _response(name, out, "Rejected" if refused else "Success")
        if name == "soapGetStaticServiceList":
            return _static_list(node)
        if name == "getProductInformationList":
            return _product_information(cluster, node)
    raise no_such_operation(name)


def ccs_ex(cluster: Cluster, node: Node, op: ET.Element) -> str:
    name = local(op.tag)
    if ns(op.tag) != AST:
        raise no_such_operation(name)
    with cluster.lock:
        cluster.advance()
        if name == "soapDoControlServicesEx":
            out, refused = _control(cluster, node, child(op, "ControlServiceRequestEx"))
            return _response(name, out, 1 if refused else 0)
        if name == "soapDoServiceDeploymentNoDbUpdate":
            out, refused = _deploy(cluster, node, child(op, "DeploymentServiceRequestEx"))
            return _response(name, out, 1 if refused else 0)
        if name == "getStaticServiceListExtended":
            return _static_list_extended(node)
        if name == "getFileDirectoryList":
            files = "".join(e("File", f) for f in _files(cluster, node, text(op, "DirectoryPath")))
            return (
                f'<getFileDirectoryListResponse xmlns="{AST}"><ListOfFiles>{files}</ListOfFiles>'
                "</getFileDirectoryListResponse>"
            )
    raise no_such_operation(name)
