"""reset_phones, watch_phones: reset the registered phones once, then wait for them to register again."""

from __future__ import annotations

from typing import Any

from engine.testing import StepContextDouble
from tests.workflows.steps.conftest import PUB, SUB, Lab
from workflows.steps.phones import sweep_for

PHONES = [f"SEP{i:012X}" for i in range(5)]


def reset_by_name(lab: Lab) -> list[str]:
    return [n for c in lab.fake.calls_to("reset_phones") for n in c.args["names"]]


def test_types_without_phone_reset_and_no_registered_phones(lab: Lab) -> None:
    assert lab.run(lab.ctx("tomcat", "phones_reregistered")).kind == "advance"
    lab.fake.add_phones(["SEPOFF"], registered=False)
    outcome = lab.run(lab.phones())
    assert outcome.kind == "advance" and "no phone was registered" in outcome.reason
    assert lab.fake.calls_to("reset_phones") == []


def test_resets_in_batches_then_waits_for_every_phone(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:3])
    lab.fake.add_phones(PHONES[3:], node=SUB)
    lab.fake.add_phones(["SEPDOWN"], registered=False)
    ctx = lab.phones()
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 20
    assert [c.args["names"] for c in lab.fake.calls_to("reset_phones")] == [
        PHONES[:2],
        PHONES[2:4],
        PHONES[4:],
    ]
    lab.fake.phones[PHONES[1]].stuck = True
    outcome = lab.run(ctx)  # the first sweep: the phones are still coming back
    assert outcome.kind == "wait" and "0/5" in outcome.reason
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "4/5" in outcome.reason and PHONES[1] in outcome.reason
    assert ctx.context["phones"]["missing"] == [PHONES[1]]
    lab.fake.phones[PHONES[1]].stuck = False
    lab.run(ctx)
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and outcome.evidence["phones_reset"] == 5
    assert len(reset_by_name(lab)) == 5  # never reset again while watching


def test_sweeps_are_spaced_for_the_risport_rate(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones(risport_per_minute=2.0)
    lab.run(ctx)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 30.0


def test_a_batch_intent_is_reconciled_from_timestamps(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones()
    baseline = lab.fake.registered_phones()
    ctx.record_output(
        PUB,
        "phone_baseline",
        {"names": PHONES, "stamps": {n: s.timestamp for n, s in baseline.items()}, "at": "then"},
    )
    ctx.record_intent(f"{PUB}#phones-1-2", "phone_reset", {"first": PHONES[0], "last": PHONES[1], "count": 2})
    lab.fake.reset_phones([PHONES[0]])  # the batch had reached one phone before the crash
    lab.fake.forget_calls()
    lab.run(ctx)
    assert reset_by_name(lab) == [PHONES[1], *PHONES[2:]]
    assert ctx.context["phones"]["reset"] == 5


def test_without_baseline_timestamps_a_batch_counts_as_done_unconfirmed(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones()
    ctx.record_output(PUB, "phone_baseline", {"names": PHONES, "at": "then"})
    ctx.record_intent(f"{PUB}#phones-1-2", "phone_reset", {"first": PHONES[0], "last": PHONES[1], "count": 2})
    lab.run(ctx)
    assert reset_by_name(lab) == PHONES[2:]
    assert ctx.context["phones"]["reset_unconfirmed"] == 2


def test_by_pool_with_the_phones_in_no_pool_by_name(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:2], pool="DP-A")
    lab.fake.add_phones(PHONES[2:4], pool="DP-B", node=SUB)
    lab.fake.add_phones(PHONES[4:])
    ctx = lab.phones(phone_reset="pools")
    lab.run(ctx)
    assert [c.args["names"] for c in lab.fake.calls_to("reset_device_pools")] == [["DP-A"], ["DP-B"]]
    assert reset_by_name(lab) == PHONES[4:]
    assert ctx.context["phones"]["reset_pools"] == 2 and ctx.context["phones"]["reset"] == 5


def test_a_pool_intent_is_reset_again_only_if_no_phone_of_it_moved(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:2], pool="DP-A")
    lab.fake.add_phones(PHONES[2:], pool="DP-B")
    ctx = lab.phones(phone_reset="pools")
    baseline = lab.fake.registered_phones()
    stamps = {n: s.timestamp for n, s in baseline.items()}
    ctx.record_output(PUB, "phone_baseline", {"names": PHONES, "stamps": stamps, "at": "then"})
    ctx.record_intent(f"{PUB}#pool-DP-A", "phone_reset", {"device_pool": "DP-A", "count": 2})
    ctx.record_intent(f"{PUB}#pool-DP-B", "phone_reset", {"device_pool": "DP-B", "count": 3})
    lab.fake.reset_device_pools(["DP-A"])  # DP-A's request reached CUCM, DP-B's did not
    lab.fake.forget_calls()
    lab.run(ctx)
    assert [c.args["names"] for c in lab.fake.calls_to("reset_device_pools")] == [["DP-B"]]


def test_unreadable_pools_fall_back_to_names(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:2], pool="DP-A")
    lab.fake.reject("device_pools", "Access denied to devicepool")
    ctx = lab.phones(phone_reset="pools")
    lab.run(ctx)
    assert reset_by_name(lab) == PHONES[:2]
    assert any("Access denied to devicepool" in text for _, text in ctx.progress_log)


def timed_out(lab: Lab, stuck: list[str], **deps: Any) -> StepContextDouble:
    """A run whose wait for the phones ran out, ``stuck`` never back, in phones_missing."""
    lab.fake.add_phones(PHONES)
    ctx = lab.phones(**deps)
    lab.run(ctx)  # baseline, every phone reset
    for name in stuck:
        lab.fake.phones[name].stuck = True
    lab.run(ctx)  # the first sweep: the phones are still coming back
    lab.run(ctx)
    ctx.state = "phones_missing"
    return ctx


def test_missing_phones_are_reported_to_an_operator(lab: Lab) -> None:
    outcome = lab.run(timed_out(lab, PHONES[:2]))
    assert outcome.kind == "gate" and "2 phone(s)" in outcome.reason and PHONES[0] in outcome.reason


def test_the_report_takes_a_last_look_rather_than_the_last_sweep_recorded(lab: Lab) -> None:
    # The daemon was stopped past the wait's timeout while the phones came back: the sweep the run
    # recorded last says they are missing; RisPort says they are back.
    ctx = timed_out(lab, PHONES[:2])
    assert ctx.context["phones"]["missing"] == PHONES[:2]
    for name in PHONES[:2]:
        lab.fake.phones[name].stuck = False
    lab.fake.registered_phones()  # they register again meanwhile
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and outcome.evidence["phones_missing_count"] == 0
    assert f"all {len(PHONES)} phones" in outcome.reason


def test_a_timeout_before_any_reset_is_not_reported_as_every_phone_back(lab: Lab) -> None:
    # Nothing was reset (the reset step never finished): every phone still shows its baseline
    # registration, so every one is missing, not "0 missing".
    lab.fake.add_phones(PHONES)
    context = lab.context_at("CallManager", "phones_reset", force=True)
    reset = lab.ctx("CallManager", "phones_reset", context, phone_interaction="manual", risport_lag=30.0)
    assert lab.run(reset).kind == "wait"  # RisPort's lag waited out first: nothing reset
    report = lab.ctx("CallManager", "phones_missing", reset.context)
    outcome = lab.run(report)
    assert outcome.kind == "gate" and f"{len(PHONES)} phone(s)" in outcome.reason


def test_a_phone_back_with_its_baseline_timestamp_is_not_counted(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:2])
    ctx = lab.phones()
    lab.run(ctx)  # baseline, then every phone reset
    lab.fake.phones[PHONES[0]].stuck = True
    stamp = ctx.context["baseline"]["stamps"][PHONES[0]]
    # RisPort still shows the registration from before the change (a phone a stale CTL keeps
    # off would look so while RIS lags): it is not back.
    lab.fake.phones[PHONES[0]].status, lab.fake.phones[PHONES[0]].timestamp = "Registered", stamp
    lab.run(ctx)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "1/2" in outcome.reason and PHONES[0] in outcome.reason


def test_automatic_reset_each_phone_once_and_baseline_before_the_upload(lab: Lab) -> None:
    # 14+: CUCM resets the phones of each node whose CallManager identity is uploaded.
    lab.fake.add_phones(PHONES[:3], node=SUB)
    lab.fake.add_phones(PHONES[3:], node=PUB)
    context = lab.context_at("CallManager", "leaf_uploaded", force=True)
    before = {n: p.timestamp for n, p in lab.fake.phones.items()}
    only_sub = {**context, "targets": [SUB]}  # the publisher's upload is left out: CUCM resets none there
    upload = lab.ctx("CallManager", "leaf_uploaded", only_sub)
    assert lab.run(upload).kind == "advance"
    assert upload.context["baseline"]["before"] == "upload"
    assert upload.context["baseline"]["stamps"] == before  # taken before CUCM's reset
    assert [lab.fake.phones[n].automatic_resets for n in PHONES] == [1, 1, 1, 0, 0]
    ctx = lab.ctx("CallManager", "phones_reset", upload.context)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "Phone Interaction on Certificate Update" in outcome.reason
    outcome = lab.run(ctx)  # after the grace: only the phones CUCM did not reset
    assert reset_by_name(lab) == PHONES[3:]
    lab.settle(ctx)
    assert ctx.context["phones"]["automatic"] is True
    assert [lab.fake.phones[n].resets + lab.fake.phones[n].automatic_resets for n in PHONES] == [1] * 5


def test_missing_phones_within_the_tolerance_are_reported_not_gated(lab: Lab) -> None:
    outcome = lab.run(timed_out(lab, PHONES[:1], max_phones_missing=1))
    assert outcome.kind == "advance" and PHONES[0] in outcome.reason
    assert outcome.evidence["phones_missing"] == PHONES[:1]


def test_missing_phones_beyond_the_tolerance_are_gated_with_the_way_to_fix_them(lab: Lab) -> None:
    gated = lab.run(timed_out(lab, PHONES[:2], max_phones_missing=1))
    assert (
        gated.kind == "gate"
        and "utils itl reset localkey" in gated.reason
        and "max_phones_missing = 1" in gated.reason
    )


def test_after_cucms_own_reset_one_sweep_finds_every_phone_back(lab: Lab) -> None:
    # 14+: CUCM reset every phone on the upload and they are all back by the end of the grace. The
    # sweep that looks for phones CUCM missed also shows them back: no second sweep.
    lab.fake.add_phones(PHONES, node=SUB)
    context = lab.context_at("CallManager", "leaf_uploaded", force=True)
    upload = lab.ctx("CallManager", "leaf_uploaded", {**context, "targets": [SUB]})
    assert lab.run(upload).kind == "advance"
    ctx = lab.ctx("CallManager", "phones_reset", upload.context)
    assert lab.run(ctx).kind == "wait"  # the grace
    lab.fake.registered_phones()  # the phones register again meanwhile
    lab.fake.forget_calls()
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and outcome.evidence["phones_registered"] == len(PHONES)
    assert reset_by_name(lab) == []
    assert len(lab.fake.calls_to("registered_phones")) == 1


def test_later_sweeps_ask_only_for_the_phones_still_missing(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones()
    lab.run(ctx)  # baseline, then every phone reset
    lab.fake.phones[PHONES[2]].stuck = True
    lab.run(ctx)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "4/5" in outcome.reason
    lab.fake.phones[PHONES[2]].stuck = False
    lab.fake.forget_calls()
    lab.run(ctx)
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and outcome.evidence["phones_registered"] == len(PHONES)
    assert [c.args["names"] for c in lab.fake.calls_to("registered_phones")] == [[PHONES[2]], [PHONES[2]]]


def test_many_phones_are_asked_by_name_when_that_takes_fewer_requests(lab: Lab) -> None:
    names = [f"SEP{i:012X}" for i in range(1500)]
    lab.fake.add_phones(names)
    wanted = names[:1200]  # two requests by name
    for of, by_name in ((None, True), (1500, False), (2500, True)):
        lab.fake.forget_calls()
        assert sorted(sweep_for(lab.fake, wanted, of=of)) == wanted
        asked = lab.fake.calls_to("registered_phones")[0].args["names"]
        assert (asked == wanted) if by_name else asked is None, of
