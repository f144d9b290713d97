"""Drive the unmodified PyPI client `ciscoris` (pinned in requirements.txt; run with the python of
the clients' own virtual environment, `make .venv-clients`) and print what it got as JSON.

Usage: python drive_ris.py SPEC_JSON, SPEC = {"host", "username", "password", "cucm_version",
"hosts" (optional), "steps": [...]}. Steps: ["select", criteria] calls `get_devices(**criteria)`;
["check", phones, subs] calls `checkRegistration(phones, subs)`. Each result is
{"total": TotalDevicesFound, "nodes": [{"name", "code", "devices": [[name, status], ...]}]}, or
{"fault": text}, or {"error": type, "message": text}.
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
    from ciscoris import ris
    from zeep.exceptions import Fault

    out: dict[str, Any] = {}
    try:
        client = ris(spec["username"], spec["password"], spec["host"], spec["cucm_version"])
    except Exception as exc:
        out["init"] = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(out))
        return
    out["init"] = "ok"
    results = []
    for step in spec["steps"]:
        try:
            if step[0] == "select":
                got = client.get_devices(**step[1])
            elif step[0] == "check":
                got = client.checkRegistration(step[1], step[2])
            else:
                raise ValueError(f"unknown step {step[0]}")
            # Both methods hand a fault back instead of raising it.
            results.append({"fault": got.message} if isinstance(got, Fault) else _result(got))
        except Exception as exc:
            results.append({"error": type(exc).__name__, "message": str(exc)})
    out["steps"] = results
    print(json.dumps(out))


def _result(got: Any) -> dict[str, Any]:
    nodes = []
    for item in (got["CmNodes"]["item"] if got["CmNodes"] else None) or []:
        devices = (item["CmDevices"]["item"] if item["CmDevices"] else None) or []
        nodes.append(
            {
                "name": item["Name"],
                "code": item["ReturnCode"],
                "devices": [[d["Name"], d["Status"]] for d in devices],
            }
        )
    return {"total": got["TotalDevicesFound"], "nodes": nodes}


if __name__ == "__main__":
    main()
