"""RisPort70 registration sweeps: ``selectCmDeviceExt`` in pages, deduplicated, within the rate limit.

CUCM allows a few RisPort70 requests per minute per cluster and answers a fault beyond that, so
every request first takes a slot from a shared sliding-window limiter, and a throttle fault backs
off (see :mod:`adapters.cucm.retry`). A device registered to one node can also be listed as
UnRegistered under another, so the ``Registered`` entry wins.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import PhoneState
from adapters.cucm.retry import SlidingWindowLimiter
from adapters.cucm.soap import AST_NS, child, children, envelope, soap_post, sub, text

PATH = "realtimeservice2/services/RISService70"
Q = f"{{{AST_NS}}}"
PAGE = 1000  # the most one request returns on CUCM 9.1+

log = structlog.get_logger("adapters.cucm")


@dataclass(frozen=True)
class Page:
    devices: list[PhoneState]
    entries: int  # device entries across nodes, before deduplication
    total_found: int | None
    state_info: str


def build_request(
    names: list[str] | None, state_info: str, *, device_class: str = "Phone", page: int = PAGE
) -> bytes:
    body = ET.Element(f"{Q}selectCmDeviceExt")
    sub(body, f"{Q}StateInfo", state_info)
    criteria = sub(body, f"{Q}CmSelectionCriteria")
    sub(criteria, f"{Q}MaxReturnedDevices", str(page))
    sub(criteria, f"{Q}DeviceClass", device_class)
    sub(criteria, f"{Q}Model", "255")
    sub(criteria, f"{Q}Status", "Any")
    sub(criteria, f"{Q}NodeName", "")
    sub(criteria, f"{Q}SelectBy", "Name")
    items = sub(criteria, f"{Q}SelectItems")
    for name in names if names is not None else ["*"]:
        sub(sub(items, f"{Q}item"), f"{Q}Item", name)
    sub(criteria, f"{Q}Protocol", "Any")
    sub(criteria, f"{Q}DownloadStatus", "Any")
    return envelope(body, {"soap": AST_NS})


def parse_page(response: ET.Element) -> Page:
    """Read a ``selectCmDeviceResponse`` (the WSDL's answer to ``selectCmDeviceExt`` too)."""
    ret = child(response, "selectCmDeviceReturn")
    result = child(ret, "SelectCmDeviceResult") if ret is not None else None
    total_raw = text(result, "TotalDevicesFound")
    devices: list[PhoneState] = []
    entries = 0
    nodes = child(result, "CmNodes") if result is not None else None
    for node in children(nodes, "item") if nodes is not None else []:
        node_name = text(node, "Name")
        if text(node, "ReturnCode", "Ok") not in ("Ok", ""):
            continue
        listing = child(node, "CmDevices")
        for device in children(listing, "item") if listing is not None else []:
            entries += 1
            stamp = text(device, "TimeStamp")
            devices.append(
                PhoneState(
                    name=text(device, "Name"),
                    status=text(device, "Status", "Unknown"),
                    node=node_name,
                    timestamp=int(stamp) if stamp.isdigit() else None,
                )
            )
    return Page(
        devices=devices,
        entries=entries,
        total_found=int(total_raw) if total_raw.isdigit() else None,
        state_info=text(ret, "StateInfo"),
    )


def merge(into: dict[str, PhoneState], devices: Iterable[PhoneState]) -> int:
    """Add devices, keeping a ``Registered`` entry over any other; returns how many names were new."""
    new = 0
    for device in devices:
        if not device.name:
            continue
        known = into.get(device.name)
        if known is None:
            new += 1
            into[device.name] = device
        elif known.status != "Registered" and device.status == "Registered":
            into[device.name] = device
    return new


class RisPortCounters:
    """RisPort70 requests sent and throttle faults received per node since the process started:
    what the daemon's metrics report (a counter that resets at a restart, as Prometheus expects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._throttles: dict[str, int] = {}

    def request(self, node: str) -> None:
        with self._lock:
            self._requests[node] = self._requests.get(node, 0) + 1

    def throttle(self, node: str) -> None:
        with self._lock:
            self._throttles[node] = self._throttles.get(node, 0) + 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """``(requests, throttles)`` per node."""
        with self._lock:
            return dict(self._requests), dict(self._throttles)


COUNTERS = RisPortCounters()


class RisPort:
    def __init__(self, http: NodeHttp, limiter: SlidingWindowLimiter, *, page: int = PAGE) -> None:
        self.http = http
        self.limiter = limiter
        self.page = page
        self.requests_sent = 0

    def _select(self, names: list[str] | None, state_info: str, device_class: str) -> Page:
        body = build_request(names, state_info, device_class=device_class, page=self.page)

        def take_slot() -> None:
            waited = self.limiter.acquire()
            if waited:
                log.info("cucm.risport.rate_wait", node=self.http.node.name, waited=round(waited, 3))
            self.requests_sent += 1
            COUNTERS.request(self.http.node.name)

        return soap_post(
            self.http,
            "RisPort70 selectCmDeviceExt",
            PATH,
            "selectCmDeviceExt",
            body,
            parse_page,
            before_attempt=take_slot,
            on_throttle=lambda: COUNTERS.throttle(self.http.node.name),
            idempotent=True,
        )

    def sweep(
        self, names: Iterable[str] | None = None, *, device_class: str = "Phone"
    ) -> dict[str, PhoneState]:
        found: dict[str, PhoneState] = {}
        if names is None:
            self._collect(None, device_class, found)
            return found
        wanted = list(dict.fromkeys(names))
        for start in range(0, len(wanted), self.page):
            self._collect(wanted[start : start + self.page], device_class, found)
        return found

    def _collect(self, names: list[str] | None, device_class: str, found: dict[str, PhoneState]) -> None:
        """Follow StateInfo until the selection is exhausted (a device on two nodes takes two entries)."""
        state_info = ""
        while True:
            page = self._select(names, state_info, device_class)
            new = merge(found, page.devices)
            # A short page is the last; so is a page that brought nothing new or no way forward.
            if page.entries < self.page or new == 0 or not page.state_info or page.state_info == state_info:
                return
            if names is not None and all(name in found for name in names):
                return
            if (
                page.total_found is not None
                and page.total_found > self.page
                and len(found) >= page.total_found
            ):
                return
            state_info = page.state_info
