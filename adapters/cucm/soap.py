"""SOAP 1.1 envelopes built and read with ElementTree: no WSDL at run time.

Requests are built from the element names Cisco's WSDLs define; responses are read by local name,
so any namespace prefix the server chooses is accepted. A SOAP fault becomes :class:`SoapFault`,
which the service modules turn into the adapter's errors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import requests

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmAuthError, CucmRejected, CucmThrottled, CucmUnreachable

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
AST_NS = "http://schemas.cisco.com/ast/soap"  # RisPort70 and ControlCenterServices

T = TypeVar("T")

# Cisco's own spelling ("Reatime") is kept out of the match on purpose: only the stable prefix.
THROTTLE_MARKERS = ("Exceeded allowed rate", "AXL throttle", "Maximum AXL Memory Allocation Consumed")


@dataclass(frozen=True)
class SoapFault(Exception):
    """A SOAP fault: ``faultstring`` verbatim, plus the text of ``detail`` when present."""

    faultcode: str
    faultstring: str
    detail: str = ""

    def __str__(self) -> str:
        return self.faultstring if not self.detail else f"{self.faultstring} ({self.detail})"

    @property
    def throttled(self) -> bool:
        text = f"{self.faultstring} {self.detail}"
        return any(marker in text for marker in THROTTLE_MARKERS)


class SoapParseError(ValueError):
    """The body is not a SOAP envelope this module can read."""


def envelope(body: ET.Element, namespaces: Mapping[str, str]) -> bytes:
    """Serialise ``body`` inside a SOAP 1.1 envelope declaring ``namespaces`` (prefix -> URI)."""
    env = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    ET.SubElement(env, f"{{{SOAP_ENV}}}Header")
    body_el = ET.SubElement(env, f"{{{SOAP_ENV}}}Body")
    body_el.append(body)
    for prefix, uri in namespaces.items():
        ET.register_namespace(prefix, uri)
    ET.register_namespace("soapenv", SOAP_ENV)
    data: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
    return data


def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    """Append a child ``tag`` (Clark notation for qualified names) with optional text."""
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children whose local name is ``name``."""
    return (child for child in element if local(child.tag) == name)


def child(element: ET.Element, name: str) -> ET.Element | None:
    return next(children(element, name), None)


def text(element: ET.Element | None, name: str, default: str = "") -> str:
    """The text of the direct child ``name`` (stripped), or ``default`` when absent or nil."""
    if element is None:
        return default
    found = child(element, name)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def path(element: ET.Element | None, *names: str) -> ET.Element | None:
    """Walk direct children by local names; ``None`` when any step is missing."""
    for name in names:
        if element is None:
            return None
        element = child(element, name)
    return element


def parse(data: bytes) -> ET.Element:
    """The first element inside ``Body``; raises :class:`SoapFault` for a fault, :class:`SoapParseError`."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SoapParseError("SOAP response carries a DTD, which SOAP forbids; refused")
    try:
        root = ET.fromstring(data)  # noqa: S314 - DTDs refused above, so no entity expansion
    except ET.ParseError as error:
        raise SoapParseError(f"response is not XML: {error}") from error
    if local(root.tag) != "Envelope":
        raise SoapParseError(f"response root is <{local(root.tag)}>, not a SOAP Envelope")
    body = child(root, "Body")
    if body is None or len(body) == 0:
        raise SoapParseError("SOAP envelope has no Body content")
    first = body[0]
    if local(first.tag) == "Fault":
        detail_el = child(first, "detail")
        detail = (
            " ".join(t.strip() for t in detail_el.itertext() if t.strip()) if detail_el is not None else ""
        )
        raise SoapFault(text(first, "faultcode"), text(first, "faultstring"), detail)
    return first


def soap_post(
    http: NodeHttp,
    operation: str,
    path_: str,
    soap_action: str,
    body: bytes,
    handle: Callable[[ET.Element], T],
    *,
    before_attempt: Callable[[], None] | None = None,
    on_throttle: Callable[[], None] | None = None,
    idempotent: bool = False,
) -> T:
    """POST an envelope through a :class:`~adapters.cucm.http.NodeHttp` and map the answer.

    ``idempotent``: the operation only reads (selectCmDevice, getServiceStatus, an SQL query), so a
    lost answer may be asked again; otherwise it is never resent once sent (see ``NodeHttp.call``).

    Faults are permanent (:class:`CucmRejected`, the fault string verbatim) except the throttle
    faults (:class:`CucmThrottled`, retried after a back-off). 401 is :class:`CucmAuthError`; other
    non-2xx answers without a readable fault are transient.
    """
    node = http.node.name

    def read(response: requests.Response) -> T:
        if response.status_code == 401:
            raise CucmAuthError(
                f"{operation}: {node} refused the credentials (HTTP 401). Fix: check the user and "
                f"password configured for this API and that the user has the required role.",
                node=node,
            )
        try:
            first = parse(response.content)
        except SoapFault as fault:
            if fault.throttled:
                if on_throttle is not None:
                    on_throttle()
                raise CucmThrottled(
                    f"{operation}: {node} is throttling requests: {fault}", node=node
                ) from None
            raise CucmRejected(
                f"{operation} refused by {node}: {fault}",
                cucm_message=str(fault),
                node=node,
                status=response.status_code,
            ) from None
        except SoapParseError as error:
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise CucmUnreachable(
                    f"{operation}: {node} answered HTTP {response.status_code}: {_snippet(response)}",
                    node=node,
                ) from error
            raise CucmRejected(
                f"{operation}: {node} answered HTTP {response.status_code} with no SOAP envelope ({error})",
                cucm_message=_snippet(response),
                node=node,
                status=response.status_code,
            ) from error
        if response.status_code >= 300:
            raise CucmUnreachable(f"{operation}: {node} answered HTTP {response.status_code}", node=node)
        return handle(first)

    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{soap_action}"'}
    return http.call(
        operation,
        "POST",
        path_,
        read,
        before_attempt=before_attempt,
        idempotent=idempotent,
        data=body,
        headers=headers,
    )


def _snippet(response: requests.Response, limit: int = 300) -> str:
    body = response.text.strip().replace("\n", " ")
    return body if len(body) <= limit else body[:limit] + "..."
