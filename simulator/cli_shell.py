"""The `admin:` CLI as a program, for a real OpenSSH server to host with ``ForceCommand``.

    ForceCommand /path/to/python -m simulator.cli_shell --sim-json DIR/simulator.json --node cucm-pub

Each line is sent to the running simulator (``POST /__sim__/cli`` on that node's address and HTTPS
port, TLS verified against the simulator's CA bundle, platform credentials from simulator.json). With
``SSH_ORIGINAL_COMMAND`` set (an exec channel) it runs that one command, answering follow-up prompts
from stdin; otherwise it is an interactive prompt loop. Exit status 1 when a command failed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import sys
from typing import Any

from simulator.cli import BANNER, PROMPT
from simulator.info import SimulatorInfo


class _Connection(http.client.HTTPSConnection):
    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(address, port, context=context, timeout=600)
        self._server_name = server_name
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


class RemoteCli:
    def __init__(self, info: SimulatorInfo, node: str) -> None:
        try:
            self.node = info.node(node)
        except KeyError as exc:
            raise SystemExit(f"error: {exc.args[0]}") from None
        self.info = info
        creds = info.platform
        self.auth = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        self.session: str | None = None

    def send(self, line: str) -> dict[str, Any]:
        # The bundle is re-read per request: it grows when a CA is added and tomcat restarts.
        ctx = ssl.create_default_context(cafile=self.info.ca_bundle)
        conn = _Connection(self.node.address, self.node.https_port, self.node.name, ctx)
        try:
            conn.request(
                "POST",
                "/__sim__/cli",
                body=json.dumps({"session": self.session, "line": line}),
                headers={"Authorization": self.auth, "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status != 200:
            raise SystemExit(f"error: simulator answered HTTP {resp.status}: {data}")
        self.session = data["session"]
        return dict(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.cli_shell", description=__doc__)
    parser.add_argument("--sim-json", required=True, help="the simulator.json of a running simulator")
    parser.add_argument("--node", required=True, help="node name (FQDN or short) this shell runs on")
    args = parser.parse_args(argv)
    cli = RemoteCli(SimulatorInfo.load(args.sim_json), args.node)
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    out = sys.stdout
    failed = False
    if command:
        reply = cli.send(command)
        out.write(reply["output"])
        failed = reply["failed"]
        while not reply["ready"] and not reply["closed"]:
            if reply["prompt"]:
                out.write(reply["prompt"] + "\n")
            out.flush()
            line = sys.stdin.readline()
            if not line:
                break
            reply = cli.send(line.rstrip("\n"))
            out.write(reply["output"])
            failed = failed or reply["failed"]
        out.flush()
        return 1 if failed else 0
    out.write(BANNER + PROMPT)
    out.flush()
    for line in sys.stdin:
        reply = cli.send(line.rstrip("\n"))
        out.write(reply["output"])
        if reply["closed"]:
            break
        out.write(reply["prompt"])
        out.flush()
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
