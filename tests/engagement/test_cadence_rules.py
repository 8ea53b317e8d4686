"""Cadence timing and decisions as pure functions, with hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.cadences import rules
from leadflow.cadences.models import Channel, ExitReason, Maturity
from leadflow.cadences.rules import Disposition
from leadflow.queue import rules as queue_rules
from leadflow.routing.rules import is_working_day

CAL = rules.Calendar("Asia/Shanghai", "CN")
ZONE = ZoneInfo("Asia/Shanghai")
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1),
                       timezones=st.just(UTC))
windows = st.tuples(st.integers(0, 22 * 60), st.integers(30, 10 * 60)).map(
    lambda t: (t[0], min(t[0] + t[1], 24 * 60 - 1)))


@settings(max_examples=300, deadline=None)
@given(previous=moments, prev_offset=st.integers(0, 10), gap=st.integers(0, 20),
       window=windows)
def test_a_step_is_due_on_a_working_day_inside_its_window_never_before_the_last(
        previous: datetime, prev_offset: int, gap: int, window: tuple[int, int]) -> None:
    step = rules.StepTiming(prev_offset + gap, *window)
    due, end = rules.step_due(previous, prev_offset, step, CAL)
    local = due.astimezone(ZONE)
    assert due >= previous
    assert is_working_day(local.date(), "CN")
    minute = local.hour * 60 + local.minute
    assert window[0] <= minute < window[1] or (due == previous and minute < window[1])
    assert end > due
    # At least ``gap`` working days later (calendar days can only be more).
    assert (local.date() - previous.astimezone(ZONE).date()).days >= gap


@settings(max_examples=200, deadline=None)
@given(when=moments, window=windows)
def test_deferred_sends_land_in_working_time(when: datetime, window: tuple[int, int]) -> None:
    at = rules.defer_to_working_time(when, window[0], window[1], CAL)
    local = at.astimezone(ZONE)
    assert at >= when
    assert is_working_day(local.date(), "CN")
    assert window[0] <= local.hour * 60 + local.minute < window[1] or at == when


def test_national_day_week_is_skipped_and_make_up_saturdays_count() -> None:
    # 2026-09-30 (Wed) + 1 working day skips the National Day holiday (Oct 1–7).
    assert rules.add_working_days(date(2026, 9, 30), 1, CAL) > date(2026, 10, 7)
    assert rules.next_working_day(date(2026, 10, 3), CAL) > date(2026, 10, 7)


@given(attempts=st.integers(0, 10), budget=st.integers(1, 10))
def test_the_budget_closes_a_lead_exactly_when_spent(attempts: int, budget: int) -> None:
    now = datetime(2026, 11, 26, 2, tzinfo=UTC)
    out = rules.disposition_outcome(Disposition.NO_ANSWER, Channel.CALL, attempts=attempts,
                                    budget=budget, now=now)
    assert (out.exit == ExitReason.UNREACHABLE) == (attempts + 1 >= budget)
    assert out.counts_attempt


def test_dispositions_decide_retries_callbacks_and_exits() -> None:
    now = datetime(2026, 11, 26, 2, tzinfo=UTC)
    busy = rules.disposition_outcome(Disposition.BUSY, Channel.CALL, attempts=0, budget=6,
                                     now=now)
    assert busy.retry_at == now + timedelta(minutes=30) and not busy.advance
    later = now + timedelta(hours=5)
    back = rules.disposition_outcome(Disposition.CALL_BACK, Channel.CALL, attempts=0,
                                     budget=6, now=now, callback_at=later)
    assert back.callback_at == later and back.contacted
    meeting = rules.disposition_outcome(Disposition.MEETING_BOOKED, Channel.CALL,
                                        attempts=0, budget=6, now=now)
    assert meeting.exit == ExitReason.MEETING_BOOKED and meeting.scoring_kind
    assert rules.dispositions_for(Channel.EMAIL)[0] == Disposition.SENT


def test_enrollment_picks_the_first_matching_cadence_and_the_most_specific_program() -> None:
    hot = rules.CadenceSpec(1, 10, grades=("A+", "A"))
    crm = rules.CadenceSpec(2, 5, product_lines=("CRM",))
    rest = rules.CadenceSpec(3, 50)
    facts = rules.EnrollFacts("A", 7, "ERP")
    assert rules.choose_cadence([rest, hot, crm], facts) == hot
    assert rules.choose_cadence([rest, hot, crm], rules.EnrollFacts("A", 7, "CRM")) == crm
    assert rules.choose_cadence([hot], rules.EnrollFacts("C", 7, None)) is None
    any_warm = rules.CadenceSpec(4, 100, maturity=Maturity.WARM)
    crm_warm = rules.CadenceSpec(5, 100, maturity=Maturity.WARM, topic="crm")
    cold = rules.CadenceSpec(6, 100, maturity=Maturity.COLD)
    programs = [any_warm, crm_warm, cold]
    assert rules.choose_program(programs, rules.EnrollFacts("B", None, "CRM", 9)) == crm_warm
    assert rules.choose_program(programs, rules.EnrollFacts("B", None, "ERP", 9)) == any_warm
    assert rules.choose_program(programs, rules.EnrollFacts("D", None, "CRM", 9)) == cold


@given(sizes=st.integers(0, 200), per_day=st.integers(1, 50))
def test_catch_up_keeps_a_days_work_and_loses_nothing(sizes: int, per_day: int) -> None:
    backlog = [rules.Backlog(i, i % 5, float(i % 13)) for i in range(sizes)]
    thursday = date(2026, 11, 26)
    plan = rules.catch_up_plan(backlog, per_day=per_day, today=thursday, calendar=CAL)
    later = [t for ids in plan.later.values() for t in ids]
    assert sorted(plan.today + later) == list(range(sizes))
    assert len(plan.today) <= per_day and all(len(v) <= per_day for v in plan.later.values())
    assert all(is_working_day(d, "CN") and d > thursday for d in plan.later)
    if plan.today:  # the best tasks stay today
        best = min(backlog, key=lambda b: (b.bucket, -b.rank, b.task_id))
        assert best.task_id in plan.today


@given(age=st.floats(0, 3000))
def test_hot_leads_are_ordered_newest_first_and_expire_after_a_day(age: float) -> None:
    now = datetime(2026, 11, 26, 2, tzinfo=UTC)
    assigned = now - timedelta(minutes=age)
    p = queue_rules.place(callback=False, grade="A", probability=0.5, touched=False,
                          assigned_at=assigned, due_at=assigned, now=now)
    if age < 24 * 60:
        assert p.bucket == queue_rules.Bucket.NEW_HOT and p.until is not None
        newer = queue_rules.place(callback=False, grade="A", probability=0.1, touched=False,
                                  assigned_at=assigned + timedelta(minutes=1),
                                  due_at=assigned, now=now + timedelta(minutes=1))
        assert newer.rank > p.rank
    else:
        assert p.bucket == queue_rules.Bucket.NEVER_CONTACTED
    assert 0.05 <= queue_rules.reach_chance(age) <= 0.15
