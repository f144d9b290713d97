"""What the SOAP services share: envelopes, Axis-style faults and small element helpers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
AST = "http://schemas.cisco.com/ast/soap"
XML = "text/xml; charset=utf-8"


class SoapFault(Exception):
    def __init__(self, string: str, code: str = "soapenv:Server", detail: str = "") -> None:
        super().__init__(string)
        self.string = string
        self.code = code
        self.detail = detail


def no_such_operation(name: str) -> SoapFault:
    # Axis' own text for a body element no operation of the service is bound to.
    return SoapFault(f"No such operation '{name}'", "soapenv:Client")


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


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    return next((c for c in el if local(c.tag) == name), None)


def text(el: ET.Element | None, name: str, default: str = "") -> str:
    c = child(el, name)
    return (c.text or "").strip() if c is not None and c.text is not None else default


def items(el: ET.Element | None, name: str = "item") -> list[str]:
    """The texts of ``el``'s ``name`` children (an ArrayOfServices, a ListOfFiles)."""
    if el is None:
        return []
    return [(c.text or "").strip() for c in el if local(c.tag) == name]


def e(tag: str, value: object) -> str:
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
    if local(root.tag) != "Envelope":
        raise SoapFault("The request is not a SOAP envelope", "soapenv:Client")
    if ns(root.tag) != SOAP_ENV:
        raise SoapFault(
            "Transport level information does not match with SOAP Message namespace URI",
            "soapenv:VersionMismatch",
        )
    body = child(root, "Body")
    if body is None or len(body) == 0:
        raise SoapFault("The SOAP body is empty", "soapenv:Client")
    return body[0]
