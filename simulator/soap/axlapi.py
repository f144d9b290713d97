"""AXL: the SQL, node, device pool and phone operations the tool and common tools use.

Requests and answers follow Cisco's AXLSoap.xsd (14.0, 15.0): ``http://www.cisco.com/AXL/API/<ver>``,
unqualified children, SOAPAction ``"CUCM:DB ver=<ver> <operation>"``. Unknown names are AXL fault
5007 ``Item not valid: The specified <Type> was not found`` [I public tooling]; SQL errors carry
Informix codes (-201 syntax, -206 table, -217 column) [C Informix].
"""

from __future__ import annotations

import fnmatch
import re
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from simulator import sql
from simulator.cluster import Cluster, CucmError, Node
from simulator.soap.common import SoapFault, child, local, ns, text
from simulator.soap.common import e as _e

AXL_NS = re.compile(r"^http://www\.cisco\.com/AXL/API/(\d+\.\d+)$")
AXL_ACTION = re.compile(r'^"?CUCM:DB ver=(\d+\.\d+) (\w+)"?$')
_local, _ns, _child, _text = local, ns, child, text


def _axl_versions(cluster: Cluster) -> set[str]:
    from simulator.releases import release

    return set(release(cluster.version).axl_versions)


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
        for node_name, desc, usage, role in _process_nodes(cluster):
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
            raise _not_found("Device", name) from None
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
                raise _not_found("DevicePool", name)
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
    if name == "getProcessNode":
        wanted_name, wanted_uuid = _name_or_uuid(op)
        for node_name, desc, usage, role in _process_nodes(cluster):
            pn_uuid = _guid("processnode", node_name)
            if node_name.lower() == (wanted_name or "").lower() or _same_uuid(pn_uuid, wanted_uuid):
                fields = (
                    f"{_e('name', node_name)}{_e('description', desc)}{_e('ipv6Name', '')}"
                    f"{_e('nodeUsage', usage)}<lbmHubGroup/>{_e('processNodeRole', role)}"
                )
                return f'{pre}<return><processNode uuid="{pn_uuid}">{fields}</processNode></return>{post}'
        raise _not_found("ProcessNode", name)
    if name == "getDevicePool":
        wanted_name, wanted_uuid = _name_or_uuid(op)
        with cluster.lock:
            pool = cluster.find_device_pool(wanted_name, wanted_uuid)
            if pool is None:
                raise _not_found("DevicePool", name)
            pool_fields = (
                f"{_e('name', pool)}{_fk('dateTimeSettingName', 'CMLocal')}"
                f"{_fk('callManagerGroupName', 'Default')}{_fk('regionName', 'Default')}"
                f"{_fk('srstName', 'Disable')}{_fk('locationName', 'Hub_None')}"
            )
            found_uuid = cluster.device_pool_uuid(pool)
        return f'{pre}<return><devicePool uuid="{found_uuid}">{pool_fields}</devicePool></return>{post}'
    if name == "listPhone":
        return f"{pre}<return>{_list_phones(cluster, op)}</return>{post}"
    if name == "getPhone":
        wanted_name, wanted_uuid = _name_or_uuid(op)
        with cluster.lock:
            i = _find_phone(cluster, wanted_name, wanted_uuid)
            if i is None:
                raise _not_found("Phone", name)
            tags = _requested(op, (*PHONE_TAGS, "lines"))
            return f"{pre}<return>{_phone_xml(cluster, i, tags, 'phone', lines=True)}</return>{post}"
    if name in ("resetPhone", "restartPhone", "applyPhone"):
        wanted_name, wanted_uuid = _name_or_uuid(op)
        with cluster.lock:
            i = _find_phone(cluster, wanted_name, wanted_uuid)
            if i is None:
                raise _not_found("Phone", name)
            phone = cluster.phones.names[i]
            # applyPhone pushes changed configuration; the simulator models no phone configuration,
            # so the phone stays registered [M]. Reset (hard) and restart (soft) both re-register.
            if name != "applyPhone":
                cluster.reset_phone(phone)
        return f"{pre}<return>{_guid('device', phone)}</return>{post}"
    raise _axl_fault(f"Operation {name} is not implemented by this server", 5000, name)


def _like(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("%", "*").replace("_", "?"))


def _not_found(kind: str, request: str) -> SoapFault:
    return _axl_fault(f"Item not valid: The specified {kind} was not found", 5007, request)


def _name_or_uuid(op: ET.Element) -> tuple[str | None, str | None]:
    """A NameAndGUIDRequest: ``name`` or ``uuid``, exactly one of them."""
    by_name, by_uuid = _child(op, "name"), _child(op, "uuid")
    return (
        (by_name.text or "").strip() if by_name is not None else None,
        (by_uuid.text or "").strip() if by_uuid is not None else None,
    )


def _same_uuid(a: str, b: str | None) -> bool:
    return b is not None and a.strip("{}").lower() == b.strip("{}").lower()


def _fk(tag: str, value: str | None) -> str:
    """An XFkType: the referenced name with its uuid, or empty for no reference."""
    if not value:
        return f"<{tag}/>"
    return f'<{tag} uuid="{_guid(tag, value)}">{escape(value)}</{tag}>'


def _process_nodes(cluster: Cluster) -> list[tuple[str, str, str, str]]:
    """(name, description, nodeUsage, processNodeRole) per processnode row, EnterpriseWideData first."""
    return [("EnterpriseWideData", "", "Publisher", "CUCM Voice/Video")] + [
        (
            n.processnode_name,
            n.short,
            "Publisher" if n.role == "publisher" else "Subscriber",
            "CUCM IM and Presence" if n.role == "imp" else "CUCM Voice/Video",
        )
        for n in cluster.nodes
    ]


# RIS model enum -> AXL product/model name (typemodel) [I].
MODEL_NAMES = {
    621: "Cisco 7821",
    622: "Cisco 7841",
    623: "Cisco 7861",
    36670: "Cisco 8845",
    36217: "Cisco 8811",
}
# The LPhone/RPhone elements modelled, in the schema's order.
PHONE_TAGS = (
    "name",
    "description",
    "product",
    "model",
    "class",
    "protocol",
    "protocolSide",
    "callingSearchSpaceName",
    "devicePoolName",
    "commonPhoneConfigName",
    "locationName",
    "securityProfileName",
    "sipProfileName",
)


def _requested(op: ET.Element, modelled: tuple[str, ...]) -> tuple[str, ...]:
    tags = _child(op, "returnedTags")
    if tags is None or len(tags) == 0:
        return modelled
    wanted = {_local(c.tag) for c in tags}
    return tuple(t for t in modelled if t in wanted)


def _phone_values(cluster: Cluster, i: int) -> dict[str, str]:
    p = cluster.phones
    model = MODEL_NAMES.get(p.model[i], "Cisco 8845")
    pool = cluster.device_pools[p.pool[i]] if p.pool[i] >= 0 else ""
    secure = "Secure" if p.secure[i] else "Non-Secure"
    return {
        "name": p.names[i],
        "description": "Phone " + p.dirnum[i],
        "product": model,
        "model": model,
        "class": "Phone",
        "protocol": "SIP",
        "protocolSide": "User",
        "callingSearchSpaceName": "",
        "devicePoolName": pool,
        "commonPhoneConfigName": "Standard Common Phone Profile",
        "locationName": "Hub_None",
        "securityProfileName": f"{model} - Standard SIP {secure} Profile",
        "sipProfileName": "Standard SIP Profile",
    }


FK_TAGS = frozenset(
    {
        "callingSearchSpaceName",
        "devicePoolName",
        "commonPhoneConfigName",
        "locationName",
        "securityProfileName",
        "sipProfileName",
    }
)


def _phone_xml(cluster: Cluster, i: int, tags: tuple[str, ...], element: str, lines: bool = False) -> str:
    values = _phone_values(cluster, i)
    parts = []
    for t in tags:
        if t == "lines":
            continue
        if t == "devicePoolName" and values[t]:
            pool_uuid = cluster.device_pool_uuid(values[t])
            parts.append(f'<devicePoolName uuid="{pool_uuid}">{escape(values[t])}</devicePoolName>')
        elif t in FK_TAGS:
            parts.append(_fk(t, values[t]))
        else:
            parts.append(_e(t, values[t]))
    if lines and "lines" in tags:
        dn = cluster.phones.dirnum[i]
        parts.append(
            f'<lines><line><index>1</index><dirn uuid="{_guid("numplan", dn)}">{_e("pattern", dn)}'
            "<routePartitionName/></dirn></line></lines>"
        )
    pk = _guid("device", values["name"])
    return f'<{element} ctiid="{1000 + i}" uuid="{pk}">{"".join(parts)}</{element}>'


def _find_phone(cluster: Cluster, name: str | None, phone_uuid: str | None) -> int | None:
    p = cluster.phones
    if name is not None:
        return p.index.get(name.upper())
    for i, phone in enumerate(p.names):
        if _same_uuid(_guid("device", phone), phone_uuid):
            return i
    return None


def _list_phones(cluster: Cluster, op: ET.Element) -> str:
    crit = _child(op, "searchCriteria")
    if crit is None or len(crit) == 0:
        raise _axl_fault("searchCriteria: at least one element has to be mentioned", 5003, "listPhone")
    patterns = {_local(c.tag): (c.text or "").strip() or "%" for c in crit}
    tags = _requested(op, PHONE_TAGS)
    try:
        skip = int(_text(op, "skip", "0") or 0)
        first = int(_text(op, "first", "0") or 0)
    except ValueError:
        raise _axl_fault("skip and first must be numbers", 5003, "listPhone") from None
    out = []
    with cluster.lock:
        matched = 0
        for i in range(cluster.phones.count):
            values = _phone_values(cluster, i)
            ok = all(
                _like(values.get(field_name, ""), pattern)
                for field_name, pattern in patterns.items()
                if field_name
                in (
                    "name",
                    "description",
                    "protocol",
                    "callingSearchSpaceName",
                    "devicePoolName",
                    "securityProfileName",
                )
            )
            if not ok:
                continue
            matched += 1
            if matched <= skip:
                continue
            out.append(_phone_xml(cluster, i, tags, "phone"))
            if first and len(out) >= first:
                break
    return "".join(out)
