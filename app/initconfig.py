"""The configuration files ``cucm-renew init`` writes: a commented example, or one for a simulator."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from app.config import ConfigError

EXAMPLE = """\
# cucm-renew configuration. Paths are relative to this file.
# Passwords never go in this file: name an environment variable (password_env) or a file
# readable only by you (password_file).

# Renew a certificate when fewer than this many days remain (`cucm-renew run --force` renews all).
renew_before_days = 30

# Types to manage, in campaign order. TVS stays last: it never runs beside CallManager.
types = ["tomcat", "ipsec", "CAPF", "CallManager", "TVS"]

[risport]
# RisPort70 allows about 15 requests a minute; sweeps are spaced to stay under it.
requests_per_minute = 15

# Certificate authorities, referenced by name from the clusters below.
[ca.desk]
kind = "manual"          # an operator brings the signed file: `cucm-renew submit-cert`

[ca.lab]
kind = "local"           # a CA kept in a folder (labs): created on first use, keys mode 0600
folder = "state/lab-ca"

# [ca.corp]
# kind = "command"       # runs a program: CSR on stdin, certificate chain on stdout
# argv = ["/usr/local/bin/sign-csr", "--profile", "cucm"]
# timeout = 60

# [ca.corp-adcs]
# kind = "adcs"          # Microsoft AD CS web enrollment; pending approval is waited for (days)
# url = "https://ca.example.com/certsrv"
# template = "CUCM-Services"                 # the template's name, not its display name
# templates = { CallManager = "CUCM-Services-Approval", CAPF = "CUCM-CAPF" }
# ca_bundle = "corp-root.pem"                # verifies the CA's web server
# auth = "ntlm"                              # or "basic" (Kerberos is not supported)
# username = "EXAMPLE\\\\svc-cucm-renew"
# password_env = "CUCM_ADCS_PASSWORD"        # or password_file = "adcs.password" (mode 0600)

# [ca.acme]
# kind = "acme"                           # RFC 8555, DNS-01; the account key is kept in the state folder
# directory = "https://acme.example.com/directory"
# ca_bundle = "acme-server-ca.pem"        # verifies the ACME server (default: the system's CAs)
# contact = ["pki@example.com"]
# eab_kid = "kid-from-your-ca"            # External Account Binding, if the CA requires it...
# eab_hmac_env = "ACME_EAB_HMAC"          # ...its HMAC key from the environment (or eab_hmac_file)
# client_auth = false                     # public ACME CAs drop clientAuth, which CUCM's types need:
#                                         # only tomcat may go to such a CA, and only if its
#                                         # cluster says tomcat_client_auth = false; true only
#                                         # for a private ACME CA that issues clientAuth
#
# [ca.acme.dns]                           # DNS-01 records by RFC 2136 dynamic update, signed with TSIG
# kind = "rfc2136"
# server = "ns1.example.com"              # the zone's primary
# zone = "example.com"
# tsig_name = "acme-update."
# tsig_algorithm = "hmac-sha256"
# tsig_secret_env = "ACME_TSIG_SECRET"    # or tsig_secret_file
# # or, for any other DNS provider, a program run with add|remove NAME VALUE:
# # kind = "hook"
# # argv = ["/usr/local/bin/dns-txt"]

[clusters.prod]
version = "14.0"                          # 14 and later: certmgr REST; older: SSH CLI
# rest = false                            # overrides what the version implies
ca_bundle = "prod-ca-bundle.pem"          # CAs that verify the nodes' HTTPS certificates
known_hosts = "prod-known_hosts"          # the nodes' SSH host keys
ca = "desk"                               # the CA for every type...
ca_per_type = { tomcat = "desk" }         # ...unless named here
# tomcat_client_auth = false              # accept tomcat certificates without clientAuth (an ACME
#                                         # CA's); gives up ILS between clusters, DRS from 14 and
#                                         # IM&P intercluster sync (tomcat is their TLS client)
# renew_before_days = 45                  # overrides the global value for this cluster
# types = ["tomcat"]                      # overrides the global list for this cluster
# phone_reset = "pools"                   # "phones" (default): one doDeviceReset per phone,
#                                         # throttled; "pools": one resetDevicePool per device
#                                         # pool: much faster, but it restarts every device in
#                                         # the pool, gateways and trunks too

[clusters.prod.platform]                  # OS administrator: certmgr REST and the SSH CLI
username = "osadmin"
password_env = "CUCM_PROD_OS_PASSWORD"

[clusters.prod.axl]                       # application user: AXL, RisPort70, ControlCenterServices
username = "axladmin"
password_file = "prod-axl.password"

[[clusters.prod.nodes]]
name = "cucm-pub.example.com"             # the FQDN in its certificates
role = "publisher"
address = "cucm-pub.example.com"          # where it is reached (defaults to the name)
https_port = 8443
ssh_port = 22

[[clusters.prod.nodes]]
name = "cucm-sub1.example.com"
role = "subscriber"

[[clusters.prod.nodes]]
name = "imp1.example.com"
role = "imp"
"""


def example_config() -> str:
    return EXAMPLE


def _q(value: str) -> str:
    return json.dumps(value)


def simulator_config(
    simulator_json: Path, output: Path, *, ports: Mapping[str, Mapping[int, int]] | None = None
) -> str:
    """A configuration for the simulator described by ``simulator_json``.

    Its passwords go to files beside ``output`` (mode 0600), never into the configuration itself.
    ``ports`` adds, per node name, CUCM ports reached elsewhere (e.g. ``{5061: 40561}``).
    """
    # Only `init --from-simulator` and the demo come here: the one place the product reads the
    # simulator's own description of itself.
    from simulator.info import SimulatorInfo

    try:
        info = SimulatorInfo.load(simulator_json)
        name = info.cluster
    except (OSError, ValueError) as exc:
        raise ConfigError(
            simulator_json,
            "",
            f"not a simulator.json ({exc})",
            "pass the simulator.json that `cucm-renew simulate --dir DIR` wrote",
        ) from exc
    folder = output.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    secrets: dict[str, str] = {}
    for kind in ("platform", "axl"):
        path = folder / f"{name}-{kind}.password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(info.account(kind).password + "\n")
        os.chmod(path, 0o600)
        secrets[kind] = path.name
    lines = [
        f"# cucm-renew configuration for the simulator in {simulator_json.resolve().parent}",
        "renew_before_days = 30",
        "# The simulator runs its clock faster; every wait of the engine is divided by this.",
        f"time_scale = {info.time_scale}",
        "",
        "[risport]",
        "requests_per_minute = 15",
        "",
        "[ca.lab]",
        'kind = "local"',
        f"folder = {_q(str(folder / 'lab-ca'))}",
        "",
        "[ca.desk]",
        'kind = "manual"',
        "",
        f"[clusters.{name}]",
        f"version = {_q(info.version)}",
        "# certmgr REST exists from CUCM 14; before it certificates go through the SSH CLI.",
        f"rest = {'true' if _major(info.version) >= 14 else 'false'}",
        f"ca_bundle = {_q(info.ca_bundle)}",
        f"known_hosts = {_q(info.known_hosts)}",
        'ca = "lab"',
        "# The simulator's device pools hold phones only: resetting a pool resets just its phones.",
        'phone_reset = "pools"',
        "",
        f"[clusters.{name}.platform]",
        f"username = {_q(info.platform.username)}",
        f"password_file = {_q(secrets['platform'])}",
        "",
        f"[clusters.{name}.axl]",
        f"username = {_q(info.axl.username)}",
        f"password_file = {_q(secrets['axl'])}",
    ]
    for node in info.nodes:
        lines += [
            "",
            f"[[clusters.{name}.nodes]]",
            f"name = {_q(node.name)}",
            f"role = {_q(node.role)}",
            f"address = {_q(node.address)}",
            f"https_port = {node.https_port}",
            f"ssh_port = {node.ssh_port}",
        ]
        extra = (ports or {}).get(node.name, {})
        # Only the CUCM ports the simulator could not bind at their own number (8443 and 22 are
        # https_port and ssh_port above).
        listening = {**node.tls_ports, **node.ports}
        node_ports = {
            **{str(k): v for k, v in listening.items() if k != v and k not in (8443, 22)},
            **{str(k): v for k, v in extra.items()},
        }
        if node_ports:
            inner = ", ".join(f'"{k}" = {int(v)}' for k, v in sorted(node_ports.items()))
            lines.append(f"ports = {{ {inner} }}")
    return "\n".join(lines) + "\n"


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0
