"""``kind = "acme"`` in the configuration file: what it accepts, what it refuses before any run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.ca.acme import AcmeCA
from adapters.ca.dns import HookPublisher, Rfc2136Publisher
from app.config import ConfigError, load_config
from app.wiring import build_ca

BASE = """
types = {types}

[ca.lab]
kind = "local"
folder = "ca"

[ca.le]
kind = "acme"
directory = "https://127.0.0.1:14000/dir"
ca_bundle = "acme-ca.pem"
contact = ["pki@example.com"]
eab_kid = "kid-1"
eab_hmac_env = "TEST_EAB_HMAC"
{extra}
dns = {dns}

[clusters.lab]
ca_bundle = "bundle.pem"
known_hosts = "known_hosts"
ca = "{default}"
{per_type}

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

RFC2136 = (
    '{ kind = "rfc2136", server = "127.0.0.1", port = 5353, zone = "example.com", '
    'tsig_name = "acme-update.", tsig_secret_file = "tsig.key" }'
)
HOOK = '{ kind = "hook", argv = ["/usr/local/bin/dns-txt"], check_servers = ["192.0.2.53:53"] }'
TSIG = "c2VjcmV0LXRzaWcta2V5LXZhbHVlLWZvci10ZXN0cw=="
HMAC = "aG1hYy1rZXktZm9yLXRoZS10ZXN0cy1vbmx5LTAwMDA"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("bundle.pem", "known_hosts", "acme-ca.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "tsig.key").write_text(TSIG + "\n")
    monkeypatch.setenv("TEST_CUCM_OS_PW", "os-secret-value")
    monkeypatch.setenv("TEST_EAB_HMAC", HMAC)
    return tmp_path


def write(
    folder: Path,
    *,
    types: str = '["tomcat"]',
    default: str = "lab",
    per_type: str = "",
    extra: str = "",
    dns: str = RFC2136,
) -> Path:
    path = folder / "cucm-renew.toml"
    path.write_text(BASE.format(types=types, default=default, per_type=per_type, extra=extra, dns=dns))
    return path


def test_client_auth_types_cannot_go_to_an_acme_ca_that_drops_it(folder: Path) -> None:
    path = write(folder, types='["tomcat", "CallManager"]', per_type='ca_per_type = { CallManager = "le" }')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert info.value.key == "clusters.lab.ca_per_type.CallManager"
    assert "CallManager" in text and "'le'" in text and "clientAuth" in text
    assert "client_auth = true" in text and "ca_per_type" in text


def test_the_default_ca_is_checked_too_and_client_auth_true_allows_it(folder: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, types='["TVS"]', default="le"))
    assert info.value.key == "clusters.lab.ca" and "TVS" in str(info.value)
    config = load_config(write(folder, types='["TVS"]', default="le", extra="client_auth = true"))
    assert config.cas["le"].acme is not None and config.cas["le"].acme.client_auth


def test_tomcat_to_acme_needs_the_waiver_which_is_said_aloud(folder: Path) -> None:
    from structlog.testing import capture_logs

    per_type = 'ca_per_type = { tomcat = "le" }'
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, types='["tomcat", "CallManager"]', per_type=per_type))
    text = str(info.value)
    assert info.value.key == "clusters.lab.ca_per_type.tomcat"
    assert "tomcat_client_auth = false under [clusters.lab]" in text
    assert "ILS" in text and "DRS" in text and "intercluster sync" in text

    waived = per_type + "\ntomcat_client_auth = false"
    # Captured at the logger, whatever stream an earlier test configured logging to write to.
    with capture_logs() as logged:
        config = load_config(write(folder, types='["tomcat", "CallManager"]', per_type=waived))
    cluster = config.cluster("lab")
    assert cluster.client_auth_waived("tomcat") and cluster.client_auth_waived("tomcat-ECDSA")
    assert not cluster.client_auth_waived("CallManager")
    (notice,) = config.notices
    assert notice.startswith("clusters.lab.tomcat_client_auth = false: tomcat certificates")
    for gives_up in ("ILS between clusters", "DRS backup and restore from release 14", "intercluster sync"):
        assert gives_up in notice
    # Said at every load, on the log, not only by `check`.
    (said,) = [entry for entry in logged if entry["event"] == "configuration waiver"]
    assert said["log_level"] == "warning" and "ILS" in said["notice"]


def test_the_waiver_is_for_tomcat_only(folder: Path) -> None:
    both = 'ca_per_type = { tomcat = "le", CallManager = "le" }\ntomcat_client_auth = false'
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, types='["tomcat", "CallManager"]', per_type=both))
    assert info.value.key == "clusters.lab.ca_per_type.CallManager"
    assert "tomcat_client_auth" not in str(info.value)


def test_no_waiver_no_notice(folder: Path) -> None:
    config = load_config(write(folder, types='["tomcat"]'))
    assert config.notices == () and not config.cluster("lab").client_auth_waived("tomcat")
    # Waived but tomcat not renewed here: nothing given up, nothing to say.
    quiet = load_config(write(folder, types='["CallManager"]', per_type="tomcat_client_auth = false"))
    assert quiet.notices == ()


def test_a_type_not_managed_is_not_refused(folder: Path) -> None:
    # CallManager maps to the ACME CA but the cluster does not renew it.
    config = load_config(write(folder, types='["tomcat"]', per_type='ca_per_type = { CallManager = "le" }'))
    assert config.cluster("lab").ca_for("CallManager") == "le"


def test_acme_settings_build_the_adapter(folder: Path, tmp_path: Path) -> None:
    config = load_config(write(folder, extra="client_auth = true"))
    acme = config.cas["le"].acme
    assert acme is not None and acme.eab_hmac is not None and acme.dns.tsig_secret is not None
    assert HMAC not in repr(config) and TSIG not in repr(config)
    ca = build_ca(config, config.cas["le"], tmp_path / "state")
    assert isinstance(ca, AcmeCA) and isinstance(ca.dns, Rfc2136Publisher)
    assert ca.folder == tmp_path / "state" / "acme-le"
    assert ca.eab is not None and ca.eab.kid == "kid-1"
    hooked = load_config(write(folder, extra="client_auth = true", dns=HOOK))
    ca2 = build_ca(hooked, hooked.cas["le"], tmp_path / "state")
    assert isinstance(ca2, AcmeCA) and isinstance(ca2.dns, HookPublisher)
    assert ca2.dns.check_servers == (("192.0.2.53", 53),)


@pytest.mark.parametrize(
    ("extra", "dns", "key", "words"),
    [
        ('eab_hmac = "' + HMAC + '"', RFC2136, "ca.le.eab_hmac", "not accepted in the file"),
        (
            "",
            RFC2136.replace('tsig_secret_file = "tsig.key"', 'tsig_secret = "' + TSIG + '"'),
            "ca.le.dns.tsig_secret",
            "not accepted in the file",
        ),
        (
            "",
            RFC2136.replace('tsig_secret_file = "tsig.key"', 'tsig_secret_env = "TEST_UNSET_VAR"'),
            "ca.le.dns.tsig_secret_env",
            "TEST_UNSET_VAR is not set",
        ),
        ("", RFC2136.replace('zone = "example.com", ', ""), "ca.le.dns.zone", "missing"),
        ("", '{ kind = "route53" }', "ca.le.dns.kind", "unknown DNS kind"),
        ("", '{ kind = "hook" }', "ca.le.dns.argv", "missing"),
        (
            "",
            RFC2136.replace("tsig_name", 'tsig_algorithm = "hmac-md5", tsig_name'),
            "ca.le.dns.tsig_algorithm",
            "hmac-md5",
        ),
    ],
)
def test_refusals_name_the_key_and_never_the_secret(
    folder: Path, extra: str, dns: str, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, extra=extra + "\nclient_auth = true", dns=dns))
    assert info.value.key == key
    assert words in str(info.value)
    assert HMAC not in str(info.value) and TSIG not in str(info.value)


def test_eab_kid_without_hmac_is_refused(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(folder, extra="client_auth = true")
    path.write_text(path.read_text().replace('eab_hmac_env = "TEST_EAB_HMAC"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "ca.le.eab_kid"


def test_directory_must_be_https(folder: Path) -> None:
    path = write(folder, extra="client_auth = true")
    path.write_text(path.read_text().replace("https://127.0.0.1:14000/dir", "http://127.0.0.1:14000/dir"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "ca.le.directory"


def test_the_init_example_with_every_ca_uncommented_and_tomcat_on_acme_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.initconfig import example_config

    for name in (
        "prod-ca-bundle.pem",
        "prod-known_hosts",
        "prod-axl.password",
        "corp-root.pem",
        "acme-server-ca.pem",
    ):
        (tmp_path / name).write_text("x\n")
    for var in ("CUCM_PROD_OS_PASSWORD", "CUCM_ADCS_PASSWORD", "ACME_EAB_HMAC", "ACME_TSIG_SECRET"):
        monkeypatch.setenv(var, HMAC)
    lines = example_config().splitlines()
    start, end = lines.index("# [ca.corp]"), lines.index("[clusters.prod]")
    # Each commented CA block, uncommented once (the hook alternative stays a comment).
    lines[start:end] = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[start:end]]
    text = "\n".join(lines).replace('ca_per_type = { tomcat = "desk" }', 'ca_per_type = { tomcat = "acme" }')
    path = tmp_path / "cucm-renew.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "clusters.prod.ca_per_type.tomcat" and "tomcat_client_auth" in str(info.value)
    path.write_text(re.sub(r"^# tomcat_client_auth = false", "tomcat_client_auth = false", text, flags=re.M))
    config = load_config(path)
    assert {ca.kind for ca in config.cas.values()} == {"manual", "local", "command", "adcs", "acme"}
    assert config.cluster("prod").ca_for("tomcat") == "acme" and config.notices
