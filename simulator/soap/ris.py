"""RisPort70: selectCmDevice, selectCmDeviceExt and selectCtiItem, the operations of Cisco's
RISService70.wsdl, with paging, filters and the per-node rate limit.

Node names are CUCM's own (its processnode names: FQDNs, or IP addresses when the servers were
defined by address) [C SXML-RIS].
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from typing import Any
from xml.sax.saxutils import escape

from simulator.cluster import Cluster, Node
from simulator.soap.common import AST, SoapFault, child, no_such_operation, ns, text
from simulator.soap.common import e as _e
from simulator.soap.common import local as _local

THROTTLE = (
    "Exceeded allowed rate for Reatime information. Current allowed rate for realtime information is "
    "{n} requests per minute."
)
MAX_DEVICES = 1000
_child, _text = child, text


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
    if ns(op.tag) != AST or name not in ("selectCmDevice", "selectCmDeviceExt", "selectCtiItem"):
        raise no_such_operation(name)
    if not sim.ris_limiter.allow(node.name):
        raise SoapFault(
            THROTTLE.format(n=cluster.ris_rate_limit),
            detail=f'<ns1:hostname xmlns:ns1="http://xml.apache.org/axis/">{escape(node.short)}</ns1:hostname>',
        )
    if name == "selectCtiItem":
        return _cti(cluster, node, op)
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
        if node_filter and not any(n.known_as(node_filter) for n in cm_nodes):
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
        node_idx = {n.index for n in cm_nodes if not node_filter or n.known_as(node_filter)}
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
            if node_filter and not n.known_as(node_filter):
                continue
            devices = by_node.get(n.index, [])
            code = "Ok" if devices else "NotFound"
            node_items.append(
                f"<item>{_e('ReturnCode', code)}{_e('Name', n.processnode_name)}{_e('NoChange', False)}"
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


def _cti(cluster: Cluster, node: Node, op: ET.Element) -> str:
    """No CTI application is connected to the simulated cluster [M]: each CTIManager node answers
    NotFound, an unknown NodeName InvalidNodeName."""
    crit = _child(op, "CtiSelectionCriteria")
    cti_class = _text(crit, "CtiMgrClass", "Provider") or "Provider"
    if cti_class not in ("Provider", "Device", "Line"):
        raise SoapFault(f"Invalid CtiMgrClass {cti_class}", "soapenv:Client")
    node_filter = _text(crit, "NodeName")
    with cluster.lock:
        cluster.advance()
        cti_nodes = [
            n
            for n in cluster.nodes
            if "Cisco CTIManager" in n.services and n.services["Cisco CTIManager"].activated
        ]
        if node_filter and not any(n.known_as(node_filter) for n in cluster.nodes):
            node_items = [
                f"<item>{_e('ReturnCode', 'InvalidNodeName')}{_e('Name', node_filter)}"
                f"{_e('NoChange', False)}<CtiItems/></item>"
            ]
        else:
            node_items = [
                f"<item>{_e('ReturnCode', 'NotFound')}{_e('Name', n.processnode_name)}"
                f"{_e('NoChange', False)}<CtiItems/></item>"
                for n in cti_nodes
                if not node_filter or n.known_as(node_filter)
            ]
        state_out = (
            f'<StateInfo><Node Name="{escape(node.processnode_name)}" StateId="{cluster.state_id()}" '
            'TotalItemsFound="0" TotalItemsReturned="0"/></StateInfo>'
        )
    return (
        f'<selectCtiItemResponse xmlns="{AST}"><selectCtiItemReturn><SelectCtiItemResult>'
        f"{_e('TotalItemsFound', 0)}<CtiNodes>{''.join(node_items)}</CtiNodes></SelectCtiItemResult>"
        f"{_e('StateInfo', state_out)}</selectCtiItemReturn></selectCtiItemResponse>"
    )
