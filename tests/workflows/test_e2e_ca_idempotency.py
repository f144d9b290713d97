"""A CA request is never duplicated: a `cucm-renew run` SIGKILLed right after a real `openssl ca`
answered, before the answer was journaled, submits again under the same idempotency key, and the
CA's own index ends with one certificate per CSR."""

from __future__ import annotations

from pathlib import Path

from tests.adapters.ca.openssl_ca import OPENSSL_CA, index_lines, make_openssl_ca
from tests.proof.harness import ProofLab, role_nodes

CRASH = "effect.after_action@ipsec/awaiting_ca/*/ca_submit:1"


def _use_openssl_ca(lab: ProofLab, ca_dir: Path, **env: str) -> None:
    # The configuration passes no environment to the program: env(1) on argv sets CA_DIR.
    argv = ["/usr/bin/env", f"CA_DIR={ca_dir}", *(f"{k}={v}" for k, v in env.items()), str(OPENSSL_CA)]
    text = lab.config_path.read_text().replace('ca = "lab"', 'ca = "openssl"')
    quoted = ", ".join(f'"{a}"' for a in argv)
    lab.config_path.write_text(text + f'\n[ca.openssl]\nkind = "command"\nargv = [{quoted}]\n')
    lab.sim.trust_ca((ca_dir / "root.pem").read_text())


def _crash_then_finish(tmp_path: Path, **env: str) -> tuple[list[list[str]], dict[str, str], list[str]]:
    ca_dir = make_openssl_ca(tmp_path / "openssl-ca")
    with ProofLab(tmp_path, nodes=2) as lab:
        _use_openssl_ca(lab, ca_dir, **env)
        nodes = role_nodes(lab.sim, "ipsec")
        crashed = lab.cli("run", "--type", "ipsec", crash=CRASH)
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        assert f"crash point {CRASH} hit" in crashed.stderr
        run = lab.run_of("ipsec")
        assert run.state == "awaiting_ca" and not (run.context.get("issued") or {})
        done = lab.cli("run", "--type", "ipsec")
        assert done.returncode == 0, done.stdout + done.stderr
        run = lab.run_of("ipsec")
        assert run.state == "done", run.state
        state = lab.sim.state()
        assert {n: state["csrs_generated"][n]["ipsec"] for n in nodes} == dict.fromkeys(nodes, 1)
        serials = {n: str(run.context["issued"][n]["serial"]).upper() for n in nodes}
    return index_lines(ca_dir), serials, nodes


def test_a_kill_between_the_ca_answer_and_its_record_yields_one_certificate_per_csr(tmp_path: Path) -> None:
    index, serials, nodes = _crash_then_finish(tmp_path)
    # One line per CSR in `openssl ca`'s database, and it is the certificate each node now holds.
    assert len(index) == len(nodes), index
    assert sorted(line[3].lstrip("0") for line in index) == sorted(s.lstrip("0") for s in serials.values())
    assert sorted(line[5].split("CN=", 1)[1].split("/", 1)[0] for line in index) == sorted(nodes)


def test_a_ca_that_ignores_the_key_signs_the_same_csr_twice(tmp_path: Path) -> None:
    """The same crash against a program that forgets the contract: what the key prevents."""
    index, _, nodes = _crash_then_finish(tmp_path, IGNORE_KEY="1")
    subjects = [line[5] for line in index]
    assert len(index) > len(nodes) and len(set(subjects)) == len(nodes), index
