"""``kind = "adcs"`` in the configuration file, and the adapter the wiring builds from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.ca.adcs import AdcsCA
from app.config import ConfigError, load_config
from app.wiring import build_ca

CLUSTER = """
[clusters.lab]
ca_bundle = "bundle.pem"
known_hosts = "known_hosts"
ca = "corp"

[clusters.lab.platform]
username = "osadmin"
password_env = "TEST_CUCM_OS_PW"

[clusters.lab.axl]
username = "axladmin"
password_env = "TEST_CUCM_OS_PW"

[[clusters.lab.nodes]]
name = "cucm-pub.example.com"
role = "publisher"
"""

ADCS = """
[ca.corp]
kind = "adcs"
url = "https://ca.example.com/certsrv"
template = "CUCM-Services"
templates = { callmanager = "CUCM-Services-Approval", CAPF = "CUCM-CAPF" }
ca_bundle = "corp-root.pem"
auth = "ntlm"
username = "EXAMPLE\\\\svc-cucm"
password_env = "TEST_ADCS_PW"
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("bundle.pem", "known_hosts", "corp-root.pem"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("TEST_CUCM_OS_PW", "os-secret-value")
    monkeypatch.setenv("TEST_ADCS_PW", "adcs-secret-value")
    return tmp_path


def load(folder: Path, ca: str) -> Any:
    path = folder / "cucm-renew.toml"
    path.write_text(ca + CLUSTER)
    return load_config(path)


def error(folder: Path, ca: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(folder, ca)
    return info.value


def test_an_adcs_ca_is_read_and_built(folder: Path) -> None:
    config = load(folder, ADCS)
    ca = config.cas["corp"]
    assert ca.kind == "adcs" and ca.adcs is not None
    assert ca.adcs.templates == {"CallManager": "CUCM-Services-Approval", "CAPF": "CUCM-CAPF"}
    assert ca.adcs.ca_bundle == folder / "corp-root.pem"
    assert ca.adcs.credential.username == "EXAMPLE\\svc-cucm"
    assert "adcs-secret-value" not in repr(ca)
    adapter = build_ca(config, ca)
    assert isinstance(adapter, AdcsCA) and adapter.name == "corp"
    assert adapter.template_for("CallManager") == "CUCM-Services-Approval"
    assert adapter.template_for("tomcat") == "CUCM-Services"
    assert adapter.password_key == "ca.corp.password_env"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('url = "https://', 'url = "http://', "ca.corp.url"),
        ('auth = "ntlm"', 'auth = "kerberos"', "ca.corp.auth"),
        ('ca_bundle = "corp-root.pem"', 'ca_bundle = "missing.pem"', "ca.corp.ca_bundle"),
        ("callmanager =", "callmgr =", "ca.corp.templates.callmgr"),
        ('password_env = "TEST_ADCS_PW"', 'password = "adcs-secret-value"', "ca.corp.password"),
    ],
)
def test_each_mistake_names_its_key(folder: Path, old: str, new: str, key: str) -> None:
    assert old in ADCS
    exc = error(folder, ADCS.replace(old, new))
    assert exc.key == key
    assert "adcs-secret-value" not in str(exc)


def test_per_type_templates_alone_are_enough_but_no_template_is_not(folder: Path) -> None:
    load(folder, ADCS.replace('template = "CUCM-Services"\n', ""))
    exc = error(folder, ADCS.replace('template = "CUCM-Services"\n', "").replace("templates = {", "# {"))
    assert exc.key == "ca.corp.template"


def test_the_password_file_must_be_private(folder: Path) -> None:
    pfile = folder / "adcs.pw"
    pfile.write_text("from-a-file\n")
    pfile.chmod(0o644)
    text = ADCS.replace('password_env = "TEST_ADCS_PW"', 'password_file = "adcs.pw"')
    assert error(folder, text).key == "ca.corp.password_file"
    pfile.chmod(0o600)
    config = load(folder, text)
    ca = config.cas["corp"]
    assert ca.adcs.credential.password.value == "from-a-file"
    assert build_ca(config, ca).password_key == "ca.corp.password_file"


def test_the_commented_example_in_init_parses_once_uncommented(folder: Path) -> None:
    from app.initconfig import example_config

    lines = example_config().splitlines()
    start = lines.index("# [ca.corp-adcs]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    text = (
        "\n".join(block).replace("[ca.corp-adcs]", "[ca.corp]").replace("CUCM_ADCS_PASSWORD", "TEST_ADCS_PW")
    )
    config = load(folder, text + "\n")
    assert config.cas["corp"].adcs.templates["CallManager"] == "CUCM-Services-Approval"
