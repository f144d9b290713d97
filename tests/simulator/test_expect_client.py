"""An unmodified expect client (paramiko-expect) drives the CLI as people script CUCM: wait for a
line ending in `admin:`, send, wait again; input typed ahead of a prompt must not pile prompts up."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from paramiko_expect import SSHClientInteraction

from simulator.cli import OU_PROMPT, PASTE_PROMPT
from simulator.runtime import SimulatedCluster

from .conftest import TestCA, pem, ssh_client

PROMPT = "admin:"


@pytest.fixture
def shell(sim: SimulatedCluster) -> Iterator[SSHClientInteraction]:
    client = ssh_client(sim, "cucm-sub1")
    interact = SSHClientInteraction(client, timeout=30, display=False, tty_height=200)
    try:
        assert interact.expect(PROMPT) == 0
        yield interact
    finally:
        interact.close()
        client.close()


def test_set_csr_gen_with_the_include_ou_answer(sim, shell):
    before = sim.state()["csrs_generated"].get("cucm-sub1.example.com", {}).get("tomcat", 0)
    shell.send("set csr gen tomcat")
    assert shell.expect(re.escape(OU_PROMPT)) == 0
    shell.send("yes")
    assert shell.expect(PROMPT) == 0
    assert "Successfully Generated CSR for tomcat." in shell.current_output
    assert sim.state()["csrs_generated"]["cucm-sub1.example.com"]["tomcat"] == before + 1


def test_answer_typed_ahead_is_echoed_after_the_question(sim, shell):
    # Command and answer in one burst, plus the client's own CR: an extra empty line for `admin:`.
    shell.send("set csr gen ipsec\nno\n")
    assert shell.expect(PROMPT) == 0
    out = shell.current_output
    assert f"{OU_PROMPT}no\n" in out
    assert "Successfully Generated CSR for ipsec." in out
    assert not re.search(r"admin:admin:", out)


def test_set_cert_import_trust_with_a_paste(sim, shell, test_ca: TestCA):
    shell.send("set cert import trust tomcat")
    assert shell.expect(re.escape(PASTE_PROMPT)) == 0
    # The paste and its closing empty line, then the CR the client adds: an extra Enter.
    shell.send(pem(test_ca.root).strip() + "\n")
    assert shell.expect(PROMPT) == 0
    assert "Successfully imported certificate for tomcat." in shell.current_output
    store = sim.cluster.node("cucm-sub1").trust["tomcat-trust"]
    assert any(c == test_ca.root for c in store.values())


def test_a_paste_typed_ahead_is_echoed_after_the_paste_prompt(sim, shell, test_ca: TestCA):
    ca = TestCA("Typed Ahead")
    # Command, paste, closing empty line and one more Enter in one burst, before any prompt.
    shell.send("set cert import trust tomcat\n" + pem(ca.intermediate).strip() + "\n\n")
    assert shell.expect(PROMPT) == 0
    out = shell.current_output
    assert out.index(PASTE_PROMPT) < out.index("-----BEGIN CERTIFICATE-----")
    assert "Successfully imported certificate for tomcat." in out
    assert "admin:admin:" not in out
    assert out.rstrip().endswith("\nadmin:")
