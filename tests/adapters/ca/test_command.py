"""The command CA: every exit code of the contract, the timeout, and a real `openssl ca`."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.ca.command import CommandCA
from adapters.ca.port import (
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
    csr_sha256,
)
from adapters.ca.profiles import IPSEC_END_SYSTEM
from tests.adapters.ca.conftest import MakeCsr
from tests.adapters.ca.openssl_ca import OPENSSL_CA, index_lines, make_openssl_ca
from workflows import preflight

HERE = Path(__file__).resolve().parent
CHAIN_PEM = HERE.parent.parent / "data" / "badcerts" / "certs" / "ok-full-chain.pem"


def script(tmp_path: Path, body: str, name: str = "ca.sh") -> list[str]:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o700)
    return [str(path)]


# ------------------------------------------------------------------ the contract


def test_exit_0_issued_leaf_first(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(script(tmp_path, f"cat >/dev/null; echo 'log line'; cat {CHAIN_PEM}\n"))
    result = ca.submit(make_csr(0), cert_type="tomcat", node="cucm-pub")
    assert isinstance(result, Issued)
    blocks = preflight.parse_bundle(CHAIN_PEM.read_bytes())
    assert x509.load_pem_x509_certificate(result.leaf_pem.encode()) == blocks[0]
    assert [x509.load_pem_x509_certificate(p.encode()) for p in result.chain_pems] == blocks[1:]


def test_program_gets_csr_on_stdin_and_parameters_in_its_environment(
    tmp_path: Path, make_csr: MakeCsr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUCM_PASSWORD", "sentinel-secret-4711")
    argv = script(
        tmp_path,
        f"""\
        cat > {tmp_path}/stdin
        env > {tmp_path}/env
        echo "$@" > {tmp_path}/argv
        cat {CHAIN_PEM}
        """,
    )
    ca = CommandCA([*argv, "--profile", "voice"], env={"CA_API_KEY": "from-config"}, timeout=30)
    csr = make_csr(0)
    ca.submit(csr, cert_type="CallManager", node="cucm-sub1")
    assert (tmp_path / "stdin").read_text() == csr
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line)
    assert env["CUCM_RENEW_OPERATION"] == "submit"
    assert env["CUCM_RENEW_CERT_TYPE"] == "CallManager"
    assert env["CUCM_RENEW_NODE"] == "cucm-sub1"
    assert env["CUCM_RENEW_IDEMPOTENCY_KEY"] == csr_sha256(csr), "by default the CSR names the request"
    assert env["CA_API_KEY"] == "from-config"
    assert "PATH" in env
    assert "sentinel-secret-4711" not in (tmp_path / "env").read_text(), "our own secrets never reach the CA"
    assert (tmp_path / "argv").read_text().strip() == "--profile voice"


def test_the_idempotency_key_reaches_the_program_on_submit_only(tmp_path: Path, make_csr: MakeCsr) -> None:
    argv = script(
        tmp_path,
        f"""\
        echo "${{CUCM_RENEW_IDEMPOTENCY_KEY-unset}}" >> {tmp_path}/keys
        [ "${{1:-}}" = poll ] && exit 1
        cat >/dev/null; echo req-9; exit 1
        """,
    )
    ca = CommandCA(argv)
    ca.submit(make_csr(0), cert_type="tomcat", node="n", idempotency_key="run-7_node-1")
    ca.poll("req-9")
    assert (tmp_path / "keys").read_text().split() == ["run-7_node-1", "unset"]
    with pytest.raises(ValueError, match="idempotency key"):
        ca.submit(make_csr(0), cert_type="tomcat", node="n", idempotency_key="a;rm -rf /")


def test_exit_1_pending_then_poll_with_the_token(tmp_path: Path, make_csr: MakeCsr) -> None:
    argv = script(
        tmp_path,
        f"""\
        if [ "${{1:-}}" = poll ]; then
            echo "$CUCM_RENEW_TOKEN $CUCM_RENEW_OPERATION" > {tmp_path}/polled
            [ -s /dev/stdin ] && exit 9
            cat {CHAIN_PEM}; exit 0
        fi
        cat >/dev/null; echo "  req-42  "; exit 1
        """,
    )
    ca = CommandCA(argv)
    pending = ca.submit(make_csr(0), cert_type="tomcat", node="n")
    assert pending == Pending("req-42", None, "the CA 'command' has not signed the request yet")
    assert isinstance(ca.poll("req-42"), Issued)
    assert (tmp_path / "polled").read_text().split() == ["req-42", "poll"]


def test_exit_1_on_poll_keeps_the_token(tmp_path: Path) -> None:
    ca = CommandCA(script(tmp_path, "exit 1\n"))
    assert ca.poll("req-1") == Pending("req-1", None, "the CA 'command' has not signed the request yet")


def test_exit_2_rejected_with_the_ca_text(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(
        script(tmp_path, "echo 'subject O=Evil not allowed by policy' >&2; exit 2\n"), name="corp-pki"
    )
    with pytest.raises(CaRejected) as caught:
        ca.submit(make_csr(0), cert_type="tomcat", node="n")
    assert caught.value.text == "subject O=Evil not allowed by policy"
    assert "CA 'corp-pki' rejected" in str(caught.value)


def test_binary_junk_from_the_program_still_gives_a_readable_error(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(script(tmp_path, "printf 'refused \\377\\376\\n' >&2; printf '\\377'; exit 2\n"))
    with pytest.raises(CaRejected, match="refused \ufffd\ufffd"):
        ca.submit(make_csr(0), cert_type="tomcat", node="n")


def test_exit_3_unreachable(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(script(tmp_path, "echo 'connection refused' >&2; exit 3\n"))
    with pytest.raises(CaUnreachable, match="connection refused"):
        ca.submit(make_csr(0), cert_type="tomcat", node="n")


def test_exit_4_misconfigured(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(script(tmp_path, "echo 'CA_API_KEY is not set' >&2; exit 4\n"))
    with pytest.raises(CaMisconfigured, match="CA_API_KEY is not set") as caught:
        ca.submit(make_csr(0), cert_type="tomcat", node="n")
    assert caught.value.key == "ca.command"


def test_exit_5_wait_with_a_token(tmp_path: Path, make_csr: MakeCsr) -> None:
    ca = CommandCA(script(tmp_path, "printf '120\\nreq-7\\n'; exit 5\n"))
    result = ca.submit(make_csr(0), cert_type="tomcat", node="n")
    assert isinstance(result, Pending)
    assert (result.token, result.retry_after) == ("req-7", 120.0)
    assert ca.poll("req-7") == Pending("req-7", 120.0, result.reason)


def test_exit_5_without_a_token_resubmits_the_same_csr(tmp_path: Path, make_csr: MakeCsr) -> None:
    argv = script(
        tmp_path,
        f"""\
        cat > {tmp_path}/csr.$(ls {tmp_path} | wc -l)
        if [ ! -f {tmp_path}/second ]; then touch {tmp_path}/second; echo 0.5; exit 5; fi
        echo "$CUCM_RENEW_CERT_TYPE $CUCM_RENEW_NODE $CUCM_RENEW_OPERATION $CUCM_RENEW_IDEMPOTENCY_KEY" \\
            > {tmp_path}/again
        cat {CHAIN_PEM}
        """,
    )
    ca = CommandCA(argv)
    csr = make_csr(0)
    pending = ca.submit(csr, cert_type="ipsec", node="cucm-sub2", idempotency_key="k-5")
    assert isinstance(pending, Pending) and pending.retry_after == 0.5
    assert "\n" not in pending.token, "the token is one line, ready to be recorded"
    assert isinstance(ca.poll(pending.token), Issued)
    assert (tmp_path / "again").read_text().split() == ["ipsec", "cucm-sub2", "submit", "k-5"]
    sent = sorted(p.read_text() for p in tmp_path.glob("csr.*"))
    assert sent == [csr, csr]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("echo 'just text'; exit 0", "exited 0 .issued. but printed no PEM"),
        ("printf 'a\\nb\\n'; exit 1", "printed several lines"),
        ("echo soon; exit 5", "did not print the seconds"),
        ("printf '%s\\n' -4; exit 5", "negative or endless wait"),
        ("echo inf; exit 5", "negative or endless wait"),
        ("echo 'disk full' >&2; exit 9", "unknown code 9: disk full"),
        ("kill -9 $$", "killed by signal 9"),
    ],
)
def test_contract_violations_are_ca_errors(tmp_path: Path, make_csr: MakeCsr, body: str, match: str) -> None:
    ca = CommandCA(script(tmp_path, "cat >/dev/null\n" + body + "\n"))
    with pytest.raises(CaError, match=match) as caught:
        ca.submit(make_csr(0), cert_type="tomcat", node="n")
    assert type(caught.value) is CaError


def test_timeout_kills_the_program_and_its_children(tmp_path: Path, make_csr: MakeCsr) -> None:
    argv = script(tmp_path, f"sleep 300 & echo $! > {tmp_path}/child; wait\n")
    ca = CommandCA(argv, timeout=1)
    with pytest.raises(CaUnreachable, match=r"did not answer within 1 s.*ca\.command\.timeout"):
        ca.submit(make_csr(0), cert_type="tomcat", node="n")
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # A killed child that is not reaped yet is a zombie: it counts as gone.
        stat = Path(f"/proc/{child}/stat")
        if stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the program's child outlived the timeout")


def test_bad_configuration(tmp_path: Path, make_csr: MakeCsr) -> None:
    with pytest.raises(CaMisconfigured, match="cannot run") as caught:
        CommandCA([str(tmp_path / "missing")]).submit(make_csr(0), cert_type="tomcat", node="n")
    assert caught.value.key == "ca.command.argv"
    with pytest.raises(CaMisconfigured, match="non-empty list"):
        CommandCA([])
    with pytest.raises(CaMisconfigured, match="timeout"):
        CommandCA(["/bin/true"], timeout=0)


# ------------------------------------------------------------------ a real openssl ca


@pytest.fixture(scope="module")
def openssl_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_openssl_ca(tmp_path_factory.mktemp("openssl-ca"))


def _openssl_adapter(ca_dir: Path, **env: str) -> CommandCA:
    return CommandCA([str(OPENSSL_CA)], env={"CA_DIR": str(ca_dir), **env}, timeout=60, name="openssl")


def _root(ca_dir: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((ca_dir / "root.pem").read_bytes())


@pytest.mark.parametrize("cert_type", ["tomcat", "CallManager", "TVS", "ipsec", "CAPF"])
def test_real_openssl_ca_issues_what_preflight_accepts(
    openssl_ca: Path, make_csr: MakeCsr, cert_type: str
) -> None:
    csr = make_csr(
        2, "cucm-sub1.example.com", ["cucm-sub1.example.com", "cucm-sub1", "sub1.voice.example.com"]
    )
    # One CSR for every type here: each type's request gets a key of its own.
    result = _openssl_adapter(openssl_ca).submit(
        csr, cert_type=cert_type, node="cucm-sub1", idempotency_key=f"preflight-{cert_type}"
    )
    assert isinstance(result, Issued) and len(result.chain_pems) == 2
    validated = preflight.validate_issued(cert_type, csr, result, trusted_roots=[], now=datetime.now(UTC))
    leaf = x509.load_pem_x509_certificate(result.leaf_pem.encode())
    # -preserveDN kept the CSR's subject order; copy_extensions = copy kept its SANs.
    assert [a.oid for a in leaf.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["cucm-sub1.example.com", "cucm-sub1", "sub1.voice.example.com"]
    eku = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= eku
    assert (IPSEC_END_SYSTEM in eku) == (cert_type == "ipsec")
    assert validated.serial == leaf.serial_number and leaf.serial_number.bit_length() > 100
    # Already trusting the root means only the intermediate is left to upload.
    again = preflight.validate_issued(
        cert_type, csr, result, trusted_roots=[_root(openssl_ca)], now=datetime.now(UTC)
    )
    assert len(again.trust_to_upload) == 1


def test_real_openssl_ca_with_approval(openssl_ca: Path, make_csr: MakeCsr) -> None:
    ca = _openssl_adapter(openssl_ca, APPROVAL="1")
    csr = make_csr(3)
    pending = ca.submit(csr, cert_type="tomcat", node="cucm-pub")
    assert isinstance(pending, Pending) and pending.token.startswith("req-")
    waiting = ca.poll(pending.token)
    assert waiting == Pending(pending.token, 30.0, "the CA 'openssl' asked to wait 30 s")
    (openssl_ca / "spool" / f"{pending.token}.approved").touch()
    issued = ca.poll(pending.token)
    assert isinstance(issued, Issued)
    assert ca.poll(pending.token) == issued, "polling again returns the same certificate"
    preflight.validate_issued("tomcat", csr, issued, trusted_roots=[], now=datetime.now(UTC))


def test_real_openssl_ca_refusals(openssl_ca: Path, make_csr: MakeCsr) -> None:
    ca = _openssl_adapter(openssl_ca)
    with pytest.raises(CaRejected, match="commonName"):
        ca.submit(make_csr(4, with_cn=False), cert_type="tomcat", node="n")
    with pytest.raises(CaMisconfigured, match="no certificate template for type 'cup-xmpp'"):
        ca.submit(make_csr(4), cert_type="cup-xmpp", node="n")
    with pytest.raises(CaRejected, match="unknown request req-0"):
        ca.poll("req-0")
    approval = _openssl_adapter(openssl_ca, APPROVAL="1")
    pending = approval.submit(make_csr(4), cert_type="tomcat", node="n")
    assert isinstance(pending, Pending)
    (openssl_ca / "spool" / f"{pending.token}.rejected").write_text("rejected by the PKI team: wrong OU\n")
    with pytest.raises(CaRejected, match="rejected by the PKI team"):
        approval.poll(pending.token)


def test_real_openssl_ca_down(openssl_ca: Path, make_csr: MakeCsr) -> None:
    (openssl_ca / "down").touch()
    try:
        with pytest.raises(CaUnreachable, match="maintenance"):
            _openssl_adapter(openssl_ca).submit(make_csr(0), cert_type="tomcat", node="n")
    finally:
        (openssl_ca / "down").unlink()


def test_real_openssl_ca_signs_for_several_nodes_at_once(openssl_ca: Path, make_csr: MakeCsr) -> None:
    ca = _openssl_adapter(openssl_ca)
    csrs = [make_csr(i, f"node{i}.example.com") for i in range(4)]
    results: dict[int, Issued | Pending] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = ca.submit(csrs[i], cert_type="CallManager", node=f"node{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    serials = set()
    for i, result in results.items():
        assert isinstance(result, Issued)
        preflight.validate_issued("CallManager", csrs[i], result, trusted_roots=[], now=datetime.now(UTC))
        serials.add(x509.load_pem_x509_certificate(result.leaf_pem.encode()).serial_number)
    assert len(serials) == 4


def test_real_openssl_ca_answers_a_known_key_with_what_it_issued(openssl_ca: Path, make_csr: MakeCsr) -> None:
    ca = _openssl_adapter(openssl_ca)
    csr = make_csr(5, "cucm-sub3.example.com")
    before = len(index_lines(openssl_ca))
    first = ca.submit(csr, cert_type="ipsec", node="cucm-sub3", idempotency_key=csr_sha256(csr))
    again = ca.submit(csr, cert_type="ipsec", node="cucm-sub3", idempotency_key=csr_sha256(csr))
    assert isinstance(first, Issued) and again == first
    assert len(index_lines(openssl_ca)) == before + 1, "one certificate in openssl's index for one key"
    # A program that ignores the key signs the CSR again: what the contract prevents.
    careless = _openssl_adapter(openssl_ca, IGNORE_KEY="1")
    second = careless.submit(csr, cert_type="ipsec", node="cucm-sub3", idempotency_key=csr_sha256(csr))
    assert isinstance(second, Issued) and second.leaf_pem != first.leaf_pem
    assert len(index_lines(openssl_ca)) == before + 2


def test_real_openssl_ca_with_approval_answers_a_known_key_with_its_token(
    openssl_ca: Path, make_csr: MakeCsr
) -> None:
    ca = _openssl_adapter(openssl_ca, APPROVAL="1")
    csr = make_csr(5, "cucm-sub4.example.com")
    pending = ca.submit(csr, cert_type="tomcat", node="cucm-sub4", idempotency_key="k-approval")
    assert isinstance(pending, Pending)
    assert ca.submit(csr, cert_type="tomcat", node="cucm-sub4", idempotency_key="k-approval") == pending
    (openssl_ca / "spool" / f"{pending.token}.approved").touch()
    issued = ca.submit(csr, cert_type="tomcat", node="cucm-sub4", idempotency_key="k-approval")
    assert isinstance(issued, Issued) and ca.poll(pending.token) == issued
    assert [p.read_text() for p in (openssl_ca / "spool").glob("*.csr")].count(csr) == 1
