"""Drive the unmodified PyPI client `ciscoaxl` (pinned in pyproject.toml's dev extras) and print
what it got as one JSON object.

Usage: python drive_axl.py SPEC_JSON, SPEC = {"host", "username", "password", "cucm_version",
"strict_ssl", "hosts" (optional), "steps": [...]}. Each step is a list: ["version"], ["phones"],
["phone", name], ["reset", name], ["process_nodes"], ["sql", query]. A step's result is the value
read through the client's own methods, or {"fault": text} when the client returned or raised a SOAP
fault, or {"error": type, "message": text} for anything else.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from _hosts import use_hosts_file


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("hosts"):
        use_hosts_file(spec["hosts"])
    from ciscoaxl import axl
    from zeep.exceptions import Fault

    out: dict[str, Any] = {}
    try:
        ucm = axl(
            spec["username"],
            spec["password"],
            spec["host"],
            spec["cucm_version"],
            strict_ssl=spec.get("strict_ssl", False),
        )
    except Exception as exc:
        out["init"] = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(out))
        return
    out["init"] = "ok"
    # ciscoaxl falls back to an unverified session when verification fails and strict_ssl is off.
    out["verify"] = ucm._zeep.transport.session.verify
    results = []
    for step in spec["steps"]:
        try:
            results.append(_step(ucm, step, Fault))
        except Fault as fault:
            results.append({"fault": fault.message})
        except Exception as exc:
            results.append({"error": type(exc).__name__, "message": str(exc)})
    out["steps"] = results
    print(json.dumps(out))


def _step(ucm: Any, step: list[str], fault_type: type) -> Any:
    kind = step[0]
    if kind == "version":
        # ciscoaxl has no wrapper for getCCMVersion: its zeep service proxy calls the operation.
        got = ucm.client.getCCMVersion()
        return got["return"]["componentVersion"]["version"]
    if kind == "phones":
        return [p["name"] for p in ucm.get_phones()]
    if kind == "phone":
        got = ucm.get_phone(name=step[1])
        if isinstance(got, fault_type):
            return {"fault": got.message}
        return {
            "name": got["name"],
            "product": got["product"],
            "devicePoolName": got["devicePoolName"]["_value_1"],
            "uuid": got["uuid"],
        }
    if kind == "reset":
        got = ucm.do_device_reset(name=step[1])
        if isinstance(got, fault_type):
            return {"fault": got.message}
        return got["return"]
    if kind == "process_nodes":
        got = ucm.list_process_nodes()
        if isinstance(got, fault_type):
            return {"fault": got.message}
        return [n["name"] for n in got]
    if kind == "sql":
        got = ucm.run_sql_query(step[1])
        if "rows" not in got and getattr(ucm, "last_exception", None) is not None:
            return {"fault": str(ucm.last_exception)}
        return got.get("rows", [])
    raise ValueError(f"unknown step {kind}")


if __name__ == "__main__":
    main()
