"""Notifications against real receivers: a local HTTP server and an aiosmtpd server with STARTTLS.

The runs are the engine's toy definitions (a gate, a permanent failure, a quiet ``skipped``), so
what is tested is the notifier: which events become messages, for whom, signed, retried, durable.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from app.config import Config, ConfigError, load_config
from app.notify import DELIVERY_HEADER, SIGNATURE_HEADER, Notifier
from engine.definition import load_definitions
from engine.facade import Engine
from tests.app.notifyhelpers import SmtpReceiver, WebhookReceiver, make_ca_and_server_cert
from tests.engine.procs import wait_for
from tests.engine.toy import DEFS, registry

SECRET = "webhook-signing-secret-42"
QUIET = frozenset({"skipped"})


def write_config(folder: Path, notify: str, lab_targets: str = '["hook"]') -> Path:
    (folder / "bundle.pem").write_text("x")
    (folder / "known_hosts").write_text("x")
    cluster = """
[clusters.{name}]
ca_bundle = "bundle.pem"
known_hosts = "known_hosts"
ca = "desk"
{extra}
platform = {{ username = "os", password_env = "TEST_NOTIFY_PW" }}
axl = {{ username = "axl", password_env = "TEST_NOTIFY_PW" }}
nodes = [{{ name = "pub.{name}", role = "publisher" }}]
"""
    text = (
        '[ca.desk]\nkind = "manual"\n'
        + notify
        + cluster.format(name="lab", extra=f"notify = {lab_targets}")
        + cluster.format(name="quiet", extra="")
    )
    path = folder / "cucm-renew.toml"
    path.write_text(text)
    return path


def hook_table(url: str, events: str = "") -> str:
    return f'\n[notify.hook]\nkind = "webhook"\nurl = "{url}"\nsecret_env = "TEST_HOOK_SECRET"\n{events}\n'


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_NOTIFY_PW", "pw")
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("TEST_SMTP_PW", "smtp-pass-word")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "state", load_definitions(DEFS, registry), registry, time_scale=100.0)
    yield eng
    eng.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver().serve() as receiver:
        yield receiver


def make_notifier(engine: Engine, config: Config, **kwargs: Any) -> Notifier:
    kwargs.setdefault("backoff", lambda attempt: 0.05)
    kwargs.setdefault("poll", 0.1)
    return Notifier(engine, config, quiet=QUIET, **kwargs)


def signed_by_secret(request_body: bytes, header: str) -> bool:
    # Recomputed here with hmac, independently of the notifier's own code.
    return header == "sha256=" + hmac.new(SECRET.encode(), request_body, hashlib.sha256).hexdigest()


def test_a_gate_is_posted_signed_and_retried_after_a_500(tmp_path: Path, engine: Engine) -> None:
    receiver = WebhookReceiver(failures=1)
    with receiver.serve() as hook:
        config = load_config(write_config(tmp_path, hook_table(hook.url)))
        notifier = make_notifier(engine, config)
        notifier.start()
        try:
            run_id = engine.start_run("toy", "lab", {"journal": str(tmp_path / "j")})
            engine.run_until_quiet()
            assert engine.status(run_id)[0].status == "paused"
            wait_for(lambda: hook.count() >= 2, what="the webhook retried after its 500")
            wait_for(lambda: notifier.outbox()[0]["status"] == "sent", what="the message marked sent")
            (row,) = notifier.outbox()
        finally:
            notifier.stop()
            notifier.close()
    first, second = hook.requests
    assert first.body == second.body  # the same message, retried
    assert first.headers[DELIVERY_HEADER] == second.headers[DELIVERY_HEADER]
    assert first.headers["Content-Type"] == "application/json"
    assert signed_by_secret(second.body, second.headers[SIGNATURE_HEADER])
    assert not signed_by_secret(second.body + b" ", second.headers[SIGNATURE_HEADER])
    body = second.json
    assert body["kind"] == "gate_waiting"
    assert (body["cluster"], body["run"], body["type"], body["state"]) == ("lab", run_id, "toy", "approval")
    assert body["reason"] == "Confirm the toy by hand, then approve."
    assert f"cucm-renew approve {run_id}" in body["summary"]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert "HTTP 500" in row["last_error"]


def test_failures_and_a_finished_campaign_reach_only_the_clusters_that_opted_in(
    tmp_path: Path, engine: Engine, hook: WebhookReceiver
) -> None:
    config = load_config(write_config(tmp_path, hook_table(hook.url)))
    notifier = make_notifier(engine, config)
    journal = str(tmp_path / "j")
    done = engine.start_run("flow", "lab", {"journal": journal})
    failing = engine.start_run("flow", "lab", {"journal": journal, "permanent": True})
    engine.start_run("flow", "quiet", {"journal": journal, "permanent": True})  # not opted in
    engine.run_until_quiet()
    assert engine.status(failing)[0].status == "failed"
    assert notifier.pump() == 1  # the failure; the campaign is not over while a run is held
    engine.abort(failing, reason="not today")
    assert notifier.pump() == 1  # now every run of lab is final: the campaign is done
    assert notifier.deliver_due() == 2
    kinds = [r.json["kind"] for r in hook.requests]
    assert kinds == ["run_failed", "campaign_done"]
    failed, campaign = (r.json for r in hook.requests)
    assert (failed["cluster"], failed["run"], failed["state"]) == ("lab", failing, "act")
    assert "refuses for good" in failed["reason"]
    assert {(r["run"], r["state"]) for r in campaign["runs"]} == {(done, "done"), (failing, "aborted")}
    assert all(signed_by_secret(r.body, r.headers[SIGNATURE_HEADER]) for r in hook.requests)
    notifier.close()


def test_a_campaign_that_found_nothing_due_is_not_news_and_events_filter(
    tmp_path: Path, engine: Engine, hook: WebhookReceiver
) -> None:
    config = load_config(write_config(tmp_path, hook_table(hook.url, 'events = ["campaign_done"]')))
    notifier = make_notifier(engine, config)
    journal = str(tmp_path / "j")
    engine.start_run("flow", "lab", {"journal": journal, "not_due": True})
    engine.start_run("toy", "lab", {"journal": journal, "not_due": True})
    engine.run_until_quiet()
    assert notifier.pump() == 0
    gated = engine.start_run("toy", "lab", {"journal": journal})
    engine.run_until_quiet()
    assert notifier.pump() == 0  # gate_waiting is not among this target's events
    engine.approve(gated, reason="checked")
    engine.run_until_quiet()
    assert notifier.pump() == 1
    notifier.deliver_due()
    (only,) = hook.requests
    assert only.json["kind"] == "campaign_done"
    assert [r["run"] for r in only.json["runs"]] == [gated]  # the earlier quiet runs were reported as nothing
    notifier.close()


def test_what_is_owed_when_the_process_dies_is_sent_after_the_restart(
    tmp_path: Path, engine: Engine, hook: WebhookReceiver
) -> None:
    config = load_config(write_config(tmp_path, hook_table(hook.url)))
    make_notifier(engine, config).close()  # configured: the cursor starts here
    journal = str(tmp_path / "j")
    first = engine.start_run("toy", "lab", {"journal": journal})
    engine.run_until_quiet()
    # The process died before looking at the event: the next one finds it from its cursor.
    second_life = make_notifier(engine, config)
    assert second_life.pump() == 1
    second_life.close()  # ...and died again before sending
    assert hook.count() == 0
    third_life = make_notifier(engine, config)
    assert third_life.pump() == 0  # the cursor moved with the outbox: nothing is queued twice
    assert third_life.deliver_due() == 1
    assert hook.requests[0].json["run"] == first
    assert third_life.deliver_due() == 0
    third_life.close()


def test_a_hanging_receiver_never_holds_up_a_run(tmp_path: Path, engine: Engine) -> None:
    release = threading.Event()
    with WebhookReceiver(hold=release).serve() as hook:
        config = load_config(write_config(tmp_path, hook_table(hook.url)))
        notifier = make_notifier(engine, config)
        notifier.start()
        try:
            journal = str(tmp_path / "j")
            gated = engine.start_run("toy", "lab", {"journal": journal})
            engine.run_until_quiet()
            wait_for(lambda: hook.count() == 1, what="the first message in flight")
            # The receiver has not answered; the run is approved and driven to its end meanwhile.
            engine.approve(gated, reason="checked")
            engine.run_until_quiet()
            assert engine.status(gated)[0].state == "done"
            assert hook.count() == 1
            release.set()
            wait_for(lambda: hook.count() == 2, what="the campaign message after the first")
        finally:
            release.set()
            notifier.stop()
            notifier.close()


# --------------------------------------------------------------------------- e-mail


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_ca_and_server_cert(tmp_path)


def mail_table(port: int, ca: Path | None, auth: bool = True) -> str:
    lines = [
        "\n[notify.mail]",
        'kind = "email"',
        'smtp_host = "127.0.0.1"',
        f"smtp_port = {port}",
        'from = "cucm-renew@example.com"',
        'to = ["uc-team@example.com", "oncall@example.com"]',
    ]
    if ca is not None:
        lines.append(f'ca_bundle = "{ca}"')
    if auth:
        lines += ['username = "notifier"', 'password_env = "TEST_SMTP_PW"']
    return "\n".join(lines) + "\n"


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def fail_a_run(tmp_path: Path, engine: Engine) -> str:
    run_id = engine.start_run("flow", "lab", {"journal": str(tmp_path / "j"), "permanent": True})
    engine.run_until_quiet()
    return run_id


def test_email_goes_through_starttls_with_auth_only_inside_tls(
    tmp_path: Path, engine: Engine, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = tls_files
    with SmtpReceiver(tls=server_tls(cert, key)).serve() as smtp:
        config = load_config(write_config(tmp_path, mail_table(smtp.port, ca), '["mail"]'))
        notifier = make_notifier(engine, config)
        run_id = fail_a_run(tmp_path, engine)
        assert notifier.pump() == 1
        assert notifier.deliver_due() == 1
        notifier.close()
    assert smtp.auths == [("notifier", True)]
    (mail,) = smtp.mails
    assert mail.tls
    assert mail.mail_from == "cucm-renew@example.com"
    assert sorted(mail.rcpt_tos) == ["oncall@example.com", "uc-team@example.com"]
    message = message_from_bytes(mail.content, policy=policy.default)
    assert message["Subject"].strip() == f"[cucm-renew] lab: flow failed in act: cucm-renew retry {run_id}"
    assert message["Message-ID"].startswith("<cucm-renew-")
    text = message.get_content()
    assert f"run:     {run_id}" in text
    assert "refuses for good" in text


def test_a_relay_without_starttls_gets_nothing_not_even_the_login(tmp_path: Path, engine: Engine) -> None:
    with SmtpReceiver(tls=None).serve() as smtp:
        config = load_config(write_config(tmp_path, mail_table(smtp.port, None), '["mail"]'))
        notifier = make_notifier(engine, config)
        fail_a_run(tmp_path, engine)
        notifier.pump()
        assert notifier.deliver_due() == 0
        (row,) = notifier.outbox()
        notifier.close()
    assert smtp.auths == []
    assert smtp.mails == []
    assert row["status"] == "dead"  # retrying cannot make the relay offer TLS
    assert "does not offer STARTTLS" in row["last_error"]


def test_an_smtp_certificate_from_another_ca_is_refused(
    tmp_path: Path, engine: Engine, tls_files: tuple[Path, Path, Path]
) -> None:
    _, cert, key = tls_files
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other")
    with SmtpReceiver(tls=server_tls(cert, key)).serve() as smtp:
        config = load_config(write_config(tmp_path, mail_table(smtp.port, other_ca), '["mail"]'))
        notifier = make_notifier(engine, config)
        fail_a_run(tmp_path, engine)
        notifier.pump()
        assert notifier.deliver_due() == 0
        (row,) = notifier.outbox()
        notifier.close()
    assert smtp.auths == [] and smtp.mails == []
    assert "TLS verification failed" in row["last_error"]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("table", "lab", "problem"),
    [
        (
            '\n[notify.hook]\nkind = "webhook"\nurl = "https://h/x"\nsecret = "inline"\n',
            '["hook"]',
            "not accepted in the file",
        ),
        ('\n[notify.hook]\nkind = "webhook"\nurl = "https://h/x"\n', '["hook"]', "no signing secret"),
        ('\n[notify.hook]\nkind = "pager"\n', '["hook"]', "unknown kind"),
        (hook_table("https://h/x", 'events = ["coffee"]'), '["hook"]', "unknown event"),
        (hook_table("https://h/x"), '["ops"]', "unknown notification target 'ops'"),
        (
            '\n[notify.m]\nkind = "email"\nsmtp_host = "s"\nfrom = "a@b"\nto = ["c@d"]\nusername = "u"\n',
            '["m"]',
            "username and password go together",
        ),
        (
            '\n[notify.m]\nkind = "email"\nsmtp_host = "s"\nfrom = "a@b"\n',
            '["m"]',
            "missing for an e-mail target",
        ),
    ],
)
def test_notify_configuration_mistakes_are_named(tmp_path: Path, table: str, lab: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write_config(tmp_path, table, lab))


def test_notify_configuration_is_read(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, hook_table("https://hooks.example.com/x"), '["hook"]'))
    target = config.notify["hook"]
    assert (target.kind, target.url, target.events[0]) == (
        "webhook",
        "https://hooks.example.com/x",
        "gate_waiting",
    )
    assert target.secret is not None and target.secret.value == SECRET
    assert SECRET not in repr(config)
    assert config.clusters["lab"].notify == ("hook",)
    assert config.clusters["quiet"].notify == ()


def test_a_campaign_looked_at_late_is_reported_once_with_every_run(
    tmp_path: Path, engine: Engine, hook: WebhookReceiver
) -> None:
    config = load_config(write_config(tmp_path, hook_table(hook.url)))
    notifier = make_notifier(engine, config)
    journal = str(tmp_path / "j")
    runs = {engine.start_run("flow", "lab", {"journal": journal}) for _ in range(2)}
    engine.run_until_quiet()
    # Both runs ended before the notifier looked: the first end must not report half a campaign.
    assert notifier.pump() == 1
    notifier.deliver_due()
    (only,) = hook.requests
    assert {r["run"] for r in only.json["runs"]} == runs
    notifier.close()
