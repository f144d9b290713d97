"""AXL on the publisher: SQL queries, process nodes, version, device and device pool resets.

The SOAPAction header (``CUCM:DB ver=<v> <operation>``) and the request namespace
(``http://www.cisco.com/AXL/API/<v>``) must name the same schema version, so both come from one
configured value. AXL's child elements are unqualified (the schema's elementFormDefault).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import CucmRejected
from adapters.cucm.soap import child, children, envelope, local, path, soap_post, sub, text

PATH = "axl/"

# AXL's fault for a device (or device pool) name it does not know (axlcode 5007 in the detail).
UNKNOWN_DEVICE_MARKERS = ("was not found", "Item not valid", "5007")

# Phones (typeclass 1) by device pool. A phone always has a pool on CUCM; one whose pool row is
# missing is simply not listed, and its caller falls back to resetting it by name.
DEVICE_POOLS_SQL = (
    "select d.name, dp.name as devicepool from device d, devicepool dp "
    "where d.fkdevicepool = dp.pkid and d.tkclass = 1"
)


# The AXL operations used here that change something; every other one only reads and may be asked
# again after a lost answer.
AXL_EFFECTS = frozenset({"doDeviceReset", "resetDevicePool"})


def namespace(version: str) -> str:
    return f"http://www.cisco.com/AXL/API/{version}"


class Axl:
    def __init__(self, http: NodeHttp, *, version: str = "14.0") -> None:
        self.http = http
        self.schema_version = version
        self.ns = namespace(version)

    def _call(self, operation: str, body: ET.Element, handle_name: str) -> ET.Element:
        def handle(response: ET.Element) -> ET.Element:
            if local(response.tag) != handle_name:
                raise CucmRejected(
                    f"AXL {operation}: unexpected answer <{local(response.tag)}>",
                    cucm_message=local(response.tag),
                    node=self.http.node.name,
                )
            return response

        return soap_post(
            self.http,
            f"AXL {operation}",
            PATH,
            f"CUCM:DB ver={self.schema_version} {operation}",
            envelope(body, {"ns": self.ns}),
            handle,
            idempotent=operation not in AXL_EFFECTS,
        )

    def _request(self, operation: str) -> ET.Element:
        return ET.Element(f"{{{self.ns}}}{operation}")

    def sql(self, query: str) -> list[dict[str, str]]:
        body = self._request("executeSQLQuery")
        sub(body, "sql", query)
        response = self._call("executeSQLQuery", body, "executeSQLQueryResponse")
        ret = child(response, "return")
        rows: list[dict[str, str]] = []
        for row in children(ret, "row") if ret is not None else []:
            rows.append({local(col.tag): (col.text or "").strip() for col in row})
        return rows

    def version(self) -> str:
        response = self._call("getCCMVersion", self._request("getCCMVersion"), "getCCMVersionResponse")
        found = text(path(response, "return", "componentVersion"), "version")
        if not found:
            raise CucmRejected(
                "AXL getCCMVersion: answer carries no version",
                cucm_message="",
                node=self.http.node.name,
            )
        return found

    def process_nodes(self) -> list[tuple[str, str]]:
        """``(name, processNodeRole)`` of every process node except EnterpriseWideData."""
        body = self._request("listProcessNode")
        criteria = sub(body, "searchCriteria")
        sub(criteria, "name", "%")
        tags = sub(body, "returnedTags")
        sub(tags, "name", "")
        sub(tags, "processNodeRole", "")
        response = self._call("listProcessNode", body, "listProcessNodeResponse")
        ret = child(response, "return")
        nodes = []
        for item in children(ret, "processNode") if ret is not None else []:
            name = text(item, "name")
            if name and name != "EnterpriseWideData":
                nodes.append((name, text(item, "processNodeRole")))
        return nodes

    def process_node_table(self) -> list[dict[str, str]]:
        """Every process node but EnterpriseWideData: ``name``, ``description``, ``nodeUsage``
        (``Publisher``/``Subscriber``) and ``processNodeRole`` (``CUCM Voice/Video``, ``CUCM IM and
        Presence``). ``name`` is whatever the administrator defined the server as: an FQDN, a
        hostname or an IP address."""
        body = self._request("listProcessNode")
        criteria = sub(body, "searchCriteria")
        sub(criteria, "name", "%")
        tags = sub(body, "returnedTags")
        for tag in ("name", "description", "nodeUsage", "processNodeRole"):
            sub(tags, tag, "")
        response = self._call("listProcessNode", body, "listProcessNodeResponse")
        ret = child(response, "return")
        rows = []
        for item in children(ret, "processNode") if ret is not None else []:
            row = {tag: text(item, tag) for tag in ("name", "description", "nodeUsage", "processNodeRole")}
            if row["name"] and row["name"] != "EnterpriseWideData":
                rows.append(row)
        return rows

    def reset_device(self, name: str, *, hard: bool = True) -> bool:
        """Reset (hard) or restart (soft) one device; False when CUCM does not know the device."""
        body = self._request("doDeviceReset")
        sub(body, "deviceName", name)
        sub(body, "isHardReset", "true" if hard else "false")
        try:
            self._call("doDeviceReset", body, "doDeviceResetResponse")
        except CucmRejected as error:
            if any(marker in error.cucm_message for marker in UNKNOWN_DEVICE_MARKERS):
                return False
            raise
        return True

    def device_pools(self) -> dict[str, list[str]]:
        """Device pool name -> the names of its phones (pools without phones are absent)."""
        pools: dict[str, list[str]] = {}
        for row in self.sql(DEVICE_POOLS_SQL):
            name, pool = row.get("name", ""), row.get("devicepool", "")
            if name and pool:
                pools.setdefault(pool, []).append(name)
        return {pool: sorted(phones) for pool, phones in sorted(pools.items())}

    def reset_device_pool(self, name: str) -> bool:
        """Reset every device of the pool in one request; False when CUCM does not know the pool."""
        body = self._request("resetDevicePool")
        sub(body, "name", name)
        try:
            self._call("resetDevicePool", body, "resetDevicePoolResponse")
        except CucmRejected as error:
            if any(marker in error.cucm_message for marker in UNKNOWN_DEVICE_MARKERS):
                return False
            raise
        return True
