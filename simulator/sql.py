"""A very small SELECT engine over the CUCM tables the tool reads (AXL executeSQLQuery, `run sql`).

Supported: ``select COLS from T [alias] [, T2 [alias] ...] [where A and B ...]`` where each
condition is ``x = y``, ``x != y`` / ``x <> y`` or ``x like 'pat%'`` with columns, quoted literals or
integers.
Tables: processnode, processconfig, certificate, certificateservicecertificatemap,
typecertificateservice, certificatetrustrolemap, typetrustrole, devicepool, device (phones only:
``tkclass`` 1; ``fkdevicepool`` empty for a phone in no pool). Column sets are a subset of CUCM's;
the enum values of the two type tables are modelled.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from typing import TYPE_CHECKING

from simulator import pki

if TYPE_CHECKING:
    from simulator.cluster import Cluster

Row = dict[str, str]

CERT_SERVICE_ENUM = {"tomcat": 1, "ipsec": 2, "CallManager": 3, "CAPF": 4, "TVS": 5, "ITLRecovery": 6}
# The enums of the EC twins and the IM&P types are modelled [U]: Cisco does not publish them.
CERT_SERVICE_ENUM.update(
    {
        t: 7 + i
        for i, t in enumerate(
            (
                "tomcat-ECDSA",
                "CallManager-ECDSA",
                "cup",
                "cup-ECDSA",
                "cup-xmpp",
                "cup-xmpp-ECDSA",
                "cup-xmpp-s2s",
                "cup-xmpp-s2s-ECDSA",
            )
        )
    }
)
TRUST_ROLES = ("tomcat", "ipsec", "CallManager", "CAPF", "TVS", "cup", "cup-xmpp")
ENTERPRISE_WIDE = "00000000-1111-0000-0000-000000000000"
# "Phone Interaction on Certificate Update" (14+): Cisco's internal paramname is unknown (part 2
# section 2, [U]); the name and the values (1 reset automatically, 0 manually) are modelled.
PHONE_INTERACTION_PARAM = "PhoneInteractionOnCertificateUpdate"


class SqlError(Exception):
    """The query cannot be run; the message is Informix-like."""


def _pkid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts)))


def tables(cluster: Cluster) -> dict[str, list[Row]]:
    with cluster.lock:
        processnode = [
            {
                "pkid": ENTERPRISE_WIDE,
                "name": "EnterpriseWideData",
                "mac": "",
                "systemnode": "t",
                "description": "",
                "nodeid": "1",
                "tknodeusage": "0",
                "tkprocessnoderole": "1",
                "isactive": "t",
            }
        ]
        for n in cluster.nodes:
            processnode.append(
                {
                    "pkid": _pkid("processnode", n.processnode_name),
                    "name": n.processnode_name,
                    "mac": "",
                    "systemnode": "f",
                    "description": n.short,
                    "nodeid": str(n.index + 2),
                    "tknodeusage": "0" if n.role == "publisher" else "1",
                    "tkprocessnoderole": "2" if n.role == "imp" else "1",
                    "isactive": "t",
                }
            )
        processconfig = [
            {
                "paramname": "ClusterSecurityMode",
                "paramvalue": "1" if cluster.mixed_mode else "0",
                "tkservice": "11",
                "fkprocessnode": ENTERPRISE_WIDE,
            },
            {
                "paramname": "EnableSSO",
                "paramvalue": "t" if cluster.sso_enabled else "f",
                "tkservice": "11",
                "fkprocessnode": ENTERPRISE_WIDE,
            },
        ]
        if cluster.release >= (14, 0):
            processconfig.append(
                {
                    "paramname": PHONE_INTERACTION_PARAM,
                    "paramvalue": "1" if cluster.phone_interaction == "automatic" else "0",
                    "tkservice": "11",
                    "fkprocessnode": ENTERPRISE_WIDE,
                }
            )
        certificate: list[Row] = []
        cscm: list[Row] = []
        ctrm: list[Row] = []
        for n in cluster.nodes:
            for t, ident in n.identities.items():
                c = ident.installed
                pk = _pkid("cert", pki.fingerprint(c), n.name)
                certificate.append(_cert_row(pk, n.name, c))
                cscm.append(
                    {
                        "pkid": _pkid("cscm", pk),
                        "fkcertificate": pk,
                        "tkcertificateservice": str(CERT_SERVICE_ENUM[t]),
                    }
                )
            for store, certs in n.trust.items():
                for c in certs.values():
                    pk = _pkid("trust", pki.fingerprint(c), n.name, store)
                    certificate.append(_cert_row(pk, n.name, c))
                    role = TRUST_ROLES.index(store.removesuffix("-trust")) + 1
                    ctrm.append({"pkid": _pkid("ctrm", pk), "fkcertificate": pk, "tktrustrole": str(role)})
        pool_pkids = [cluster.device_pool_uuid(pool).strip("{}").lower() for pool in cluster.device_pools]
        devicepool = [
            {"pkid": pk, "name": pool, "fkcallmanagergroup": _pkid("callManagerGroupName", "Default")}
            for pk, pool in zip(pool_pkids, cluster.device_pools, strict=True)
        ]
        p = cluster.phones
        device = [
            {
                "pkid": _pkid("device", p.names[i]),
                "name": p.names[i],
                "description": "Phone " + p.dirnum[i],
                "tkclass": "1",
                "tkmodel": str(p.model[i]),
                "fkdevicepool": pool_pkids[p.pool[i]] if p.pool[i] >= 0 else "",
            }
            for i in range(p.count)
        ]
        return {
            "processnode": processnode,
            "devicepool": devicepool,
            "device": device,
            "processconfig": processconfig,
            "certificate": certificate,
            "certificateservicecertificatemap": cscm,
            "typecertificateservice": [{"enum": str(v), "name": k} for k, v in CERT_SERVICE_ENUM.items()],
            "certificatetrustrolemap": ctrm,
            "typetrustrole": [{"enum": str(i + 1), "name": f"{k}-trust"} for i, k in enumerate(TRUST_ROLES)],
        }


def _cert_row(pk: str, server: str, c: object) -> Row:
    from cryptography import x509

    assert isinstance(c, x509.Certificate)
    return {
        "pkid": pk,
        "servername": server,
        "subjectname": c.subject.rfc4514_string(),
        "issuername": c.issuer.rfc4514_string(),
        "serialnumber": format(c.serial_number, "x"),
        "certificate": pki.pem(c),
        "timetolive": str(int(c.not_valid_after_utc.timestamp())),
    }


_SELECT = re.compile(
    r"^\s*select\s+(?P<cols>.+?)\s+from\s+(?P<from>.+?)(?:\s+where\s+(?P<where>.+?))?\s*;?\s*$", re.I | re.S
)
_COND = re.compile(r"^\s*(?P<l>'[^']*'|[\w.]+)\s*(?P<op>=|!=|<>|\blike\b)\s*(?P<r>'[^']*'|[\w.]+)\s*$", re.I)


def query(cluster: Cluster, sql: str) -> tuple[list[str], list[Row]]:
    """Run a SELECT; returns (column names, rows with those keys)."""
    m = _SELECT.match(sql)
    if not m:
        raise SqlError("A syntax error has occurred.")
    data = tables(cluster)
    sources: list[tuple[str, list[Row]]] = []
    for part in m.group("from").split(","):
        words = part.split()
        if not words or len(words) > 3:
            raise SqlError("A syntax error has occurred.")
        table = words[0].lower()
        alias = words[-1].lower() if len(words) > 1 else table
        if table not in data:
            raise SqlError(f"The specified table ({table}) is not in the database.")
        sources.append((alias, data[table]))
    conditions = []
    if m.group("where"):
        for text in re.split(r"\s+and\s+", m.group("where"), flags=re.I):
            c = _COND.match(text)
            if not c:
                raise SqlError("A syntax error has occurred.")
            conditions.append((c.group("l"), c.group("op").lower(), c.group("r")))

    def lookup(env: dict[str, Row], ref: str) -> str:
        if ref.startswith("'"):
            return ref[1:-1]
        if ref.isdigit():
            return ref
        alias, _, col = ref.lower().rpartition(".")
        if alias:
            row = env.get(alias)
            if row is None or col not in row:
                raise SqlError(f"Column ({col}) not found in any table in the query (or SLV is undefined).")
            return row[col]
        for row in env.values():
            if col in row:
                return row[col]
        raise SqlError(f"Column ({col}) not found in any table in the query (or SLV is undefined).")

    envs: list[dict[str, Row]] = [{}]
    for alias, rows in sources:
        envs = [{**e, alias: r} for e in envs for r in rows]
    result_envs = []
    for env in envs:
        ok = True
        for left, op, right in conditions:
            lv, rv = lookup(env, left), lookup(env, right)
            if op == "=":
                ok = lv == rv
            elif op in ("!=", "<>"):
                ok = lv != rv
            else:
                ok = fnmatch.fnmatchcase(lv, rv.replace("%", "*").replace("_", "?"))
            if not ok:
                break
        if ok:
            result_envs.append(env)
    cols_text = m.group("cols").strip()
    columns: list[tuple[str, str]] = []
    if cols_text == "*":
        if len(sources) != 1:
            raise SqlError("A syntax error has occurred.")
        keys = list(sources[0][1][0].keys()) if sources[0][1] else []
        columns = [(k, k) for k in keys]
    else:
        for col in cols_text.split(","):
            parts = col.split()
            ref = parts[0]
            name = parts[-1] if len(parts) == 3 and parts[1].lower() == "as" else ref.rpartition(".")[2]
            columns.append((ref, name.lower()))
    out = [{name: lookup(env, ref) for ref, name in columns} for env in result_envs]
    return [name for _, name in columns], out


def format_table(columns: list[str], rows: list[Row]) -> str:
    """`run sql` output: header, '=' underline, one line per row, left-aligned columns."""
    widths = [max([len(c)] + [len(r[c]) for r in rows]) for c in columns]
    lines = [" ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append(" ".join("=" * w for w in widths))
    for r in rows:
        lines.append(" ".join(r[c].ljust(w) for c, w in zip(columns, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines) + "\n"
