"""The configuration file: what it accepts, and how each mistake is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, canonical_type, load_config
from app.initconfig import example_config

GOOD = """
renew_before_days = 40
types = ["tomcat", "callmanager", "TVS"]

[risport]
requests_per_minute = 12

[ca.lab]
kind = "local"
folder = "ca"

[ca.desk]
kind = "manual"

[clusters.lab]
ca_bundle = "bundle.pem"
known_hosts = "known_hosts"
ca = "lab"
ca_per_type = { Tomcat = "desk" }

[clusters.lab.platform]
username = "osadmin"
password_env = "TEST_CUCM_OS_PW"

[clusters.lab.axl]
username = "axladmin"
password_file = "axl.pw"

[[clusters.lab.nodes]]
name = "cucm-sub1.example.com"
role = "subscriber"
address = "127.0.0.1"
https_port = 40443
ports = { "5061" = 45061 }

[[clusters.lab.nodes]]
name = "cucm-pub.example.com"
role = "publisher"
address = "127.0.0.1"
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bundle.pem").write_text("x")
    (tmp_path / "known_hosts").write_text("x")
    (tmp_path / "axl.pw").write_text("axl-secret-value\n")
    monkeypatch.setenv("TEST_CUCM_OS_PW", "os-secret-value")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "cucm-renew.toml"
    path.write_text(text)
    return path


def error(folder: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, text))
    return info.value


def test_a_good_file_gives_typed_settings(folder: Path) -> None:
    config = load_config(write(folder, GOOD))
    lab = config.cluster("lab")
    assert config.renew_before_days == 40
    assert config.types == ("tomcat", "CallManager", "TVS")
    assert config.risport_per_minute == 12
    assert lab.publisher.name == "cucm-pub.example.com"
    assert [n.role for n in lab.nodes] == ["publisher", "subscriber"]
    assert lab.nodes[1].ports == {5061: 45061} and lab.nodes[1].https_port == 40443
    assert lab.platform.password.value == "os-secret-value"
    assert lab.axl.password.value == "axl-secret-value"
    assert lab.ca_for("tomcat") == "desk" and lab.ca_for("CAPF") == "lab"
    assert config.cas["lab"].folder == folder / "ca"
    assert lab.ca_bundle == folder / "bundle.pem"


def test_secrets_never_show(folder: Path) -> None:
    config = load_config(write(folder, GOOD))
    text = repr(config) + str(config.cluster("lab").platform.password)
    assert "os-secret-value" not in text and "axl-secret-value" not in text
    assert "$TEST_CUCM_OS_PW" in text


def test_env_and_default_locations(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(folder, GOOD)
    monkeypatch.setenv("CUCM_RENEW_CONFIG", str(path))
    assert load_config().path == path
    monkeypatch.delenv("CUCM_RENEW_CONFIG")
    monkeypatch.chdir(folder)
    assert load_config().cluster("lab").name == "lab"
    monkeypatch.chdir(folder / "..")
    with pytest.raises(ConfigError, match="cucm-renew init"):
        load_config()


def test_broken_toml_names_the_line(folder: Path) -> None:
    exc = error(folder, GOOD.replace('kind = "manual"', 'kind = "manual'))
    assert "line 13" in str(exc) and "cucm-renew.toml" in str(exc)


def test_unset_credential_variable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CUCM_OS_PW")
    exc = error(folder, GOOD)
    assert exc.key == "clusters.lab.platform.password_env"
    assert "export TEST_CUCM_OS_PW" in str(exc)


def test_inline_password_refused_without_echoing_it(folder: Path) -> None:
    exc = error(folder, GOOD.replace('password_file = "axl.pw"', 'password = "hunter2-inline"'))
    assert exc.key == "clusters.lab.axl.password" and "password_env" in exc.fix
    assert "hunter2-inline" not in str(exc)


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        (
            'types = ["tomcat", "callmanager", "TVS"]',
            'types = ["tomcat", "ITLRecovery"]',
            "types",
            ["unknown certificate type 'ITLRecovery'", "CallManager"],
        ),
        ('ca = "lab"', 'ca = "corp"', "clusters.lab.ca", ["unknown CA 'corp'", "[ca.corp]"]),
        ('kind = "local"', 'kind = "vault"', "ca.lab.kind", ["unknown CA kind", "command"]),
        ('role = "publisher"', 'role = "subscriber"', "clusters.lab.nodes", ["exactly one"]),
        ("https_port = 40443", "https_port = 70000", "clusters.lab.nodes[0].https_port", ["TCP port"]),
        ("renew_before_days = 40", "renew_before_dayz = 40", "renew_before_dayz", ["unknown key"]),
        (
            'known_hosts = "known_hosts"',
            'known_hosts = "missing"',
            "clusters.lab.known_hosts",
            ["does not exist"],
        ),
        (
            'ca_per_type = { Tomcat = "desk" }',
            'ca_per_type = { tomcat = "nope" }',
            "clusters.lab.ca_per_type.tomcat",
            ["unknown CA 'nope'"],
        ),
        (
            'ca = "lab"',
            'ca = "lab"\nphone_reset = "devicepool"',
            "clusters.lab.phone_reset",
            ["unknown phone reset method 'devicepool'", 'phone_reset = "pools"', '"phones"'],
        ),
    ],
)
def test_each_mistake_names_key_and_fix(folder: Path, old: str, new: str, key: str, words: list[str]) -> None:
    assert old in GOOD
    exc = error(folder, GOOD.replace(old, new))
    assert exc.key == key
    assert exc.fix
    for word in words:
        assert word in str(exc)


def test_unknown_cluster_lists_the_known_ones(folder: Path) -> None:
    config = load_config(write(folder, GOOD))
    with pytest.raises(ConfigError, match="use one of: lab"):
        config.cluster("prod")


def test_canonical_type_names() -> None:
    assert canonical_type("capf") == "CAPF" and canonical_type("Tvs") == "TVS"
    with pytest.raises(ConfigError, match="use one of: tomcat, tomcat-ECDSA, ipsec, CAPF, CallManager, "):
        canonical_type("itlrecovery")


def test_the_example_parses_once_its_files_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("prod-ca-bundle.pem", "prod-known_hosts", "prod-axl.password"):
        (tmp_path / name).write_text("secret\n")
    monkeypatch.setenv("CUCM_PROD_OS_PASSWORD", "pw")
    path = tmp_path / "cucm-renew.toml"
    path.write_text(example_config())
    config = load_config(path)
    assert config.cluster("prod").ca_for("tomcat") == "desk"
    assert [n.role for n in config.cluster("prod").nodes] == ["publisher", "subscriber", "imp"]


def test_phone_reset_method_defaults_to_phones(folder: Path) -> None:
    # Only phones by default: a device pool reset restarts gateways and trunks in the pool too.
    assert load_config(write(folder, GOOD)).cluster("lab").phone_reset == "phones"
    pools = load_config(write(folder, GOOD.replace('ca = "lab"', 'ca = "lab"\nphone_reset = "pools"')))
    assert pools.cluster("lab").phone_reset == "pools"
    # The example documents the key, commented out: uncommented, it parses.
    assert '# phone_reset = "pools"' in example_config()


def test_every_password_read_is_redacted_from_log_text_from_then_on(folder: Path) -> None:
    from engine.logging import REDACTED, redact_text

    (folder / "axl.pw").write_text("axl-pw-only-in-this-test\n")
    before = redact_text("CUCM said: bad password axl-pw-only-in-this-test")
    assert "axl-pw-only-in-this-test" in before
    load_config(write(folder, GOOD))
    after = redact_text("CUCM said: bad password axl-pw-only-in-this-test")
    assert after == f"CUCM said: bad password {REDACTED}"


def test_typos_and_types_are_refused_by_the_shared_schema(folder: Path) -> None:
    exc = error(folder, GOOD.replace("renew_before_days = 40", "renew_befor_days = 40"))
    assert exc.key == "renew_befor_days" and exc.fix.startswith("rename it to 'renew_before_days'")
    assert exc.line is None
    exc = error(folder, GOOD.replace("https_port = 40443", 'https_port = "40443"'))
    assert exc.key == "clusters.lab.nodes[0].https_port" and "must be a whole number, not '40443'" in str(exc)


def test_a_mistyped_credential_value_is_not_quoted(folder: Path) -> None:
    exc = error(folder, GOOD.replace('password_file = "axl.pw"', 'password_file = ["hunter2-typed"]'))
    assert exc.key == "clusters.lab.axl.password_file" and "must be a non-empty string" in exc.problem
    assert "hunter2-typed" not in str(exc)


COMMAND_CA = """
[ca.cmd]
kind = "command"
argv = ["{script}"]
env = {{ CA_TOKEN = {{ env = "TEST_CA_TOKEN" }}, CA_KEY = {{ file = "ca.key" }} }}
"""


def test_a_command_ca_gets_its_credentials_in_its_environment_never_on_argv(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.ca.port import CaError
    from app.wiring import build_ca

    seen = folder / "seen"
    script = folder / "sign.sh"
    script.write_text(f'#!/bin/sh\necho "$CA_TOKEN|$CA_KEY|$*" > {seen}\nexit 3\n')
    script.chmod(0o700)
    (folder / "ca.key").write_text("key-from-file\n")
    monkeypatch.setenv("TEST_CA_TOKEN", "token-from-env")
    config = load_config(write(folder, GOOD + COMMAND_CA.format(script=script)))
    ca = config.cas["cmd"]
    assert {k: v.value for k, v in ca.env.items()} == {
        "CA_TOKEN": "token-from-env",
        "CA_KEY": "key-from-file",
    }
    assert "token-from-env" not in repr(ca)
    with pytest.raises(CaError):
        build_ca(config, ca).submit("csr", cert_type="tomcat", node="n", idempotency_key="k")
    assert seen.read_text() == "token-from-env|key-from-file|\n"


@pytest.mark.parametrize(
    ("env", "key", "words"),
    [
        ('{ CA_TOKEN = "inline-secret" }', "ca.cmd.env.CA_TOKEN", "values are not accepted in the file"),
        ('{ CA_TOKEN = { env = "TEST_UNSET_VAR" } }', "ca.cmd.env.CA_TOKEN.env", "TEST_UNSET_VAR is not set"),
        ('{ CA_TOKEN = { file = "nowhere" } }', "ca.cmd.env.CA_TOKEN.file", "does not exist"),
        ('{ "A B" = { env = "TEST_CA_TOKEN" } }', "ca.cmd.env.A B", "is not a variable name"),
        (
            '{ CUCM_RENEW_NODE = { env = "TEST_CA_TOKEN" } }',
            "ca.cmd.env.CUCM_RENEW_NODE",
            "set by cucm-renew",
        ),
    ],
)
def test_command_ca_env_mistakes(
    folder: Path, monkeypatch: pytest.MonkeyPatch, env: str, key: str, words: str
) -> None:
    monkeypatch.setenv("TEST_CA_TOKEN", "token-from-env")
    text = GOOD + f'\n[ca.cmd]\nkind = "command"\nargv = ["/bin/true"]\nenv = {env}\n'
    exc = error(folder, text)
    assert key in str(exc) and words in str(exc), str(exc)
    assert "inline-secret" not in str(exc)


def test_version_optional_and_phone_settings(folder: Path) -> None:
    cluster = load_config(write(folder, GOOD)).cluster("lab")
    # No version: read from the cluster before anything else; phones as the release does.
    assert cluster.version is None and cluster.axl_version is None
    assert cluster.max_phones_missing == 0 and cluster.phone_interaction is None
    given = GOOD.replace(
        'ca = "lab"', 'ca = "lab"\nversion = "12.5"\nmax_phones_missing = 3\nphone_interaction = "manual"'
    )
    cluster = load_config(write(folder, given)).cluster("lab")
    assert cluster.version == "12.5" and not cluster.rest and cluster.axl_version == "12.5"
    assert cluster.max_phones_missing == 3 and cluster.phone_interaction == "manual"
    for setting, words in (
        ('phone_interaction = "sometimes"', ["clusters.lab.phone_interaction", '"automatic"', '"manual"']),
        ("max_phones_missing = -1", ["clusters.lab.max_phones_missing", ">= 0"]),
    ):
        with pytest.raises(ConfigError) as caught:
            load_config(write(folder, GOOD.replace('ca = "lab"', f'ca = "lab"\n{setting}')))
        for word in words:
            assert word in str(caught.value)


WINDOWED = """ca_per_type = { Tomcat = "desk" }
timezone = "Europe/Paris"
windows = ["Sat 01:00-05:00"]
blackout = ["2026-12-25"]
approval = true"""


def test_change_windows_and_approval_per_cluster(folder: Path) -> None:
    cluster = load_config(write(folder, GOOD.replace('ca_per_type = { Tomcat = "desk" }', WINDOWED))).cluster(
        "lab"
    )
    assert cluster.approval is True and cluster.windows is not None
    assert cluster.windows.describe() == "Sat 01:00-05:00; never on 2026-12-25 (Europe/Paris)"
    plain = load_config(write(folder, GOOD)).cluster("lab")
    assert plain.windows is None and plain.approval is False


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        (
            'timezone = "Europe/Paris"',
            'timezone = "Europe/Pariss"',
            "clusters.lab.timezone",
            "unknown time zone",
        ),
        (
            'windows = ["Sat 01:00-05:00"]',
            'windows = ["Saturday night"]',
            "clusters.lab.windows",
            "Sat 01:00-05:00",
        ),
        ('blackout = ["2026-12-25"]', 'blackout = ["25/12"]', "clusters.lab.blackout", "YYYY-MM-DD"),
        ('windows = ["Sat 01:00-05:00"]', "windows = [1]", "clusters.lab.windows", "list of strings"),
    ],
)
def test_a_window_that_cannot_be_read_names_its_key(
    folder: Path, old: str, new: str, key: str, words: str
) -> None:
    text = GOOD.replace('ca_per_type = { Tomcat = "desk" }', WINDOWED.replace(old, new))
    problem = error(folder, text)
    assert problem.key == key and words in str(problem)


def test_risport_lag_per_cluster(folder: Path) -> None:
    assert load_config(write(folder, GOOD)).cluster("lab").risport_lag == 30.0
    given = GOOD.replace('ca = "lab"', 'ca = "lab"\nrisport_lag = 90')
    assert load_config(write(folder, given)).cluster("lab").risport_lag == 90.0
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, GOOD.replace('ca = "lab"', 'ca = "lab"\nrisport_lag = -1')))
    assert "clusters.lab.risport_lag" in str(caught.value) and ">= 0" in str(caught.value)
