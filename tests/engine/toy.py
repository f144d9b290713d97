"""Toy steps, guards and validators for the engine tests (no certificates, no CUCM).

Every side effect appends one line to the run's journal file (``context["journal"]``) so the tests
can prove from outside the process that no effect ran twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.api import (
    Effect,
    GuardInput,
    GuardResult,
    Outcome,
    PermanentError,
    Registry,
    StepContext,
    SubmitRejected,
    TransientError,
)

DEFS = Path(__file__).resolve().parent / "defs"
registry = Registry()


def _journal(ctx: StepContext) -> Path:
    return Path(ctx.context["journal"])


def _key(ctx: StepContext, node: str, name: str) -> str:
    return f"{ctx.run_id}|{ctx.state}|{ctx.visit}|{node}|{name}"


def _do(ctx: StepContext, node: str, name: str) -> Any:
    key = _key(ctx, node, name)
    journal = _journal(ctx)

    def action() -> Any:
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (key + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"done": key}

    def reconcile(effect: Effect) -> Any:
        assert effect.intent["key"] == key
        lines = journal.read_text().splitlines() if journal.exists() else []
        return {"done": key, "reconciled": True} if key in lines else None

    return ctx.effect(node, name, action, intent={"key": key}, reconcile=reconcile)


@registry.step("check")
def check(ctx: StepContext) -> Outcome:
    if ctx.context.get("not_due"):
        return Outcome.advance("skip", reason="not due")
    return Outcome.advance(output={"checked_at": ctx.now().isoformat()})


@registry.step("act")
def act(ctx: StepContext) -> Outcome:
    if ctx.attempt <= int(ctx.context.get("fail_times", 0)):
        raise TransientError(f"simulated outage {ctx.attempt} password=hunter2-secret")
    fail_file = ctx.context.get("fail_file")
    if fail_file and Path(fail_file).exists():
        raise TransientError(f"outage while {fail_file} exists")
    if ctx.context.get("permanent"):
        raise PermanentError("the toy refuses for good: remove 'permanent' from the context")
    for node in ctx.params["nodes"]:
        _do(ctx, node, "act")
        ctx.progress(node, "acted")
    block = ctx.context.get("block_file")
    return Outcome.advance(output={"allow": not (block and Path(block).exists())}, evidence={"nodes": 3})


@registry.guard("allowed")
def allowed(data: GuardInput) -> GuardResult:
    if data.context.get("allow", True):
        return True, ""
    return False, "waiting for the block file to be removed"


@registry.step("poll")
def poll(ctx: StepContext) -> Outcome:
    if ctx.context.get("need_ticket"):
        if "ticket" not in ctx.submitted:
            return Outcome.wait(None, "waiting for a ticket (submit --key ticket)")
        return Outcome.advance(output={"ticket": ctx.submitted["ticket"]})
    polls = int(ctx.context.get("polls", 0)) + 1
    if polls < int(ctx.context.get("want_polls", ctx.params["polls"])):
        return Outcome.wait(None, f"poll {polls}", output={"polls": polls})
    return Outcome.advance(output={"polls": polls})


@registry.step("locked_work")
def locked_work(ctx: StepContext) -> Outcome:
    _do(ctx, "cluster", "locked_work")
    if ctx.context.get("gate_in_step") and not ctx.context.get("gated"):
        return Outcome.gate("look at the toy, then approve", output={"gated": True}, on_approve=None)
    return Outcome.advance()


@registry.step("finish")
def finish(ctx: StepContext) -> Outcome:
    _do(ctx, "cluster", "finish")
    return Outcome.advance(evidence={"finished": True})


@registry.validator("ticket")
def ticket(context: Mapping[str, Any], key: str, data: Any) -> Any:
    if key != "ticket":
        raise SubmitRejected(f"unknown key {key!r}: this state takes only 'ticket'")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise SubmitRejected('a ticket needs an \'id\' string: submit a JSON file like {"id": "CHG123"}')
    return {"id": data["id"].strip()}
