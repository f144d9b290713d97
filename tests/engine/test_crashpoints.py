"""Crash specifications: what they arm, which arrivals they count, and the kill itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine import crashpoints
from engine.crashpoints import ENV, POINTS, Target, _parse

TOMCAT_CSR = ("tomcat", "csr_generated", "cucm-pub.example.com", "generate_csr")
TFTP_RESTART = ("TVS", "restarted", "cucm-sub1.example.com", "restart:Cisco Tftp")


def test_unqualified_specs_keep_the_nth_arrival_meaning() -> None:
    parsed = _parse("effect.after_action:3, transition.before_commit:1")
    assert parsed == {
        "effect.after_action": [Target("effect.after_action:3", "effect.after_action", (), 3)],
        "transition.before_commit": [Target("transition.before_commit:1", "transition.before_commit", (), 1)],
    }
    assert _parse("") == {} and _parse(" , ") == {}
    assert parsed["effect.after_action"][0].matches(()) and parsed["effect.after_action"][0].matches(
        (TOMCAT_CSR,)
    )


def test_a_qualifier_names_fields_from_the_definition_down_to_the_effect() -> None:
    (target,) = _parse("effect.after_intent@TVS/restarted/*/restart:Cisco Tftp:2")["effect.after_intent"]
    # The effect's own colon stays in its name: only the last one separates N.
    assert target.patterns == ("TVS", "restarted", "*", "restart:Cisco Tftp") and target.count == 2
    assert target.matches((TFTP_RESTART,))
    assert not target.matches((TOMCAT_CSR,))
    assert not target.matches((("TVS", "restarted", "cucm-pub.example.com", "restart:Cisco Tomcat"),))
    # Fewer fields match on the leading ones; a transition carries one identity per run it commits.
    (short,) = _parse("transition.after_commit@CAPF/restart*:1")["transition.after_commit"]
    assert short.matches((("tomcat", "verified"), ("CAPF", "restarted")))
    assert not short.matches((("CAPF", "verified"),))
    assert not _parse("effect.before_intent@a/b/c/d/e:1")["effect.before_intent"][0].matches((TOMCAT_CSR,))


@pytest.mark.parametrize(
    "spec", ["nonsense", "x:1", "effect.after_action:0", "effect.after_action", "effect.after_action@:1"]
)
def test_a_spec_that_could_never_fire_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="point\\[@qualifier\\]:N"):
        _parse(spec)


CHILD = """
from engine.crashpoints import crashpoint
other = ("tomcat", "csr_generated", "cucm-sub1.example.com", "generate_csr")
mine = ("tomcat", "csr_generated", "cucm-pub.example.com", "generate_csr")
for identity in (other, mine, other, other, mine, mine):
    crashpoint("effect.after_action", identity)
    print("passed", "/".join(identity[2:]), flush=True)
"""


def crash_child(spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV: spec}
    return subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=60)


def test_the_armed_arrival_kills_the_process_and_says_where() -> None:
    spec = "effect.after_action@tomcat/*/cucm-pub.example.com:2"
    done = crash_child(spec)
    assert done.returncode == -signal.SIGKILL, done.stderr
    # cucm-sub1's arrivals do not count: cucm-pub's first passed, its second killed.
    passed = [line.split()[1].split(".")[0] for line in done.stdout.splitlines()]
    assert passed == ["cucm-sub1", "cucm-pub", "cucm-sub1", "cucm-sub1"]
    assert done.stderr == f"crash point {spec} hit at effect.after_action {'/'.join(TOMCAT_CSR)}\n"


def test_an_unqualified_spec_counts_every_arrival_and_an_unmatched_one_never_fires() -> None:
    assert crash_child("effect.after_action:3").stdout.count("passed") == 2
    done = crash_child("effect.after_action@ipsec:1,effect.after_output:1")
    assert done.returncode == 0 and done.stdout.count("passed") == 6 and done.stderr == ""


def test_every_point_is_documented() -> None:
    assert all(f"``{p}``" in (crashpoints.__doc__ or "") for p in POINTS)
