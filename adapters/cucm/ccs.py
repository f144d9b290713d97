"""ControlCenterServices (serviceability SOAP): service status and Start/Stop/Restart on one node.

The service acts on the node it is called on only, so ``NodeName`` is always that node's name.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmRejected, ServiceStatus
from adapters.cucm.soap import AST_NS, child, children, envelope, soap_post, sub, text

PATH = "controlcenterservice2/services/ControlCenterServices"
Q = f"{{{AST_NS}}}"

_START_FORMATS = ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M:%S %Z %Y", "%Y-%m-%d %H:%M:%S")


def parse_start_time(raw: str, uptime: str = "", *, now: datetime | None = None) -> datetime | None:
    """CUCM's ``StartTime`` (a free-form string) as aware UTC; falls back to now - ``UpTime`` seconds."""
    raw = raw.strip()
    if raw:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
        if re.fullmatch(r"\d+(\.\d+)?", raw):
            return datetime.fromtimestamp(float(raw), UTC)
        for fmt in _START_FORMATS:
            try:
                return datetime.strptime(raw, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    if uptime.strip().lstrip("-").isdigit() and int(uptime) >= 0:
        return (now or datetime.now(UTC)) - timedelta(seconds=int(uptime))
    return None


def _service_items(result: ET.Element | None) -> list[ET.Element]:
    listing = child(result, "ServiceInfoList") if result is not None else None
    return list(children(listing, "item")) if listing is not None else []


def _status_of(item: ET.Element) -> ServiceStatus:
    status = text(item, "ServiceStatus", "Unknown") or "Unknown"
    started = None
    if status == "Started":
        started = parse_start_time(text(item, "StartTime"), text(item, "UpTime"))
    code = text(item, "ReasonCode")
    reason = text(item, "ReasonCodeString") if code not in ("-1", "0", "") else ""
    return ServiceStatus(name=text(item, "ServiceName"), status=status, start_time=started, reason=reason)


class ControlCenter:
    def __init__(self, http: NodeHttp) -> None:
        self.http = http

    @property
    def node(self) -> str:
        return self.http.node.name

    def status(self, service: str) -> ServiceStatus:
        body = ET.Element(f"{Q}soapGetServiceStatus")
        sub(body, f"{Q}ServiceStatus", service)

        def handle(response: ET.Element) -> ServiceStatus:
            result = child(response, "soapGetServiceStatusReturn")
            for item in _service_items(result):
                if text(item, "ServiceName") == service:
                    return _status_of(item)
            return ServiceStatus(name=service, status="NotFound", start_time=None)

        return soap_post(
            self.http,
            f"status of {service}",
            PATH,
            "soapGetServiceStatus",
            envelope(body, {"soap": AST_NS}),
            handle,
            idempotent=True,
        )

    def control(self, service: str, control: str = "Restart") -> ServiceStatus:
        """Start/Stop/Restart ``service``; returns the status CUCM reported in its answer."""
        body = ET.Element(f"{Q}soapDoControlServices")
        request = sub(body, f"{Q}ControlServiceRequest")
        sub(request, f"{Q}NodeName", self.node)
        sub(request, f"{Q}ControlType", control)
        services = sub(request, f"{Q}ServiceList")
        sub(services, f"{Q}item", service)
        operation = f"{control} {service}"

        def handle(response: ET.Element) -> ServiceStatus:
            result = child(response, "soapDoControlServicesReturn")
            items = [i for i in _service_items(result) if text(i, "ServiceName") == service]
            # ReasonCode -1 is CUCM's "no error"; another code, or a ReturnCode other than success,
            # is a refusal explained by the item's ReasonCodeString.
            reason = text(items[0], "ReasonCode") if items else text(result, "ReasonCode")
            reason_text = text(items[0], "ReasonCodeString") if items else text(result, "ReasonString")
            return_code = text(result, "ReturnCode")
            refused = return_code not in ("", "0", "Success")
            if refused or (reason.lstrip("-").isdigit() and int(reason) not in (-1, 0)):
                message = reason_text.strip() or f"ReturnCode {return_code}, ReasonCode {reason}"
                raise CucmRejected(
                    f"{operation} refused by {self.node}: {message}",
                    cucm_message=message,
                    node=self.node,
                )
            if not items:
                return ServiceStatus(name=service, status="Unknown", start_time=None)
            return _status_of(items[0])

        return soap_post(
            self.http,
            operation,
            PATH,
            "soapDoControlServices",
            envelope(body, {"soap": AST_NS}),
            handle,
        )
