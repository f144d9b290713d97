"""Name resolution from the simulator's hosts snippet, for a driver that reaches nodes by FQDN.

The simulator writes `/etc/hosts` lines (`DIR/hosts`) for clients that resolve the node names
themselves; the tests never edit the machine's `/etc/hosts`, so a driver given `--hosts` looks names
up in that snippet first, as the system resolver would with the lines installed. Only resolution
changes: the client still builds its own URLs and verifies TLS against the name it was given.
"""

from __future__ import annotations

import socket
from typing import Any


def use_hosts_file(path: str) -> None:
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.partition("#")[0].split()
            for name in fields[1:]:
                table[name.lower()] = fields[0]
    system_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.lower() in table:
            host = table[host.lower()]
        return system_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
