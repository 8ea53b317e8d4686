"""Cadences at work on a real database: enrollment on assignment, dispositions, signals,
pauses, transfers, the attempt budget and automatic steps into the outbox."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cadences import jobs
from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import (
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    ExperimentArm,
    Task,
    TaskKind,
    TaskStatus,
)
from leadflow.cadences.rules import Disposition
from leadflow.cadences.schemas import DispositionIn
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus
from leadflow.messaging.models import Message
from leadflow.queue import rules as queue_rules
from leadflow.queue import service as queue_service
from leadflow.routing import service as routing_service
from leadflow.routing.models import LeadPool, PoolKind

from .conftest import Floor, make_lead, routed, two_c_leads_of_one_rep


def count(session: Session, model: type, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def live(session: Session, lead_id: int) -> Enrollment:
    e = cadences_service.live_enrollment(session=session, lead_id=lead_id)
    assert e is not None
    return e


def dispose(session: Session, task_id: int, user: Any, d: Disposition, now: datetime,
            **kw: Any) -> cadences_service.DispositionResult:
    return cadences_service.record_disposition(
        session=session, task_id=task_id, user=user, now=now,
        data=DispositionIn(disposition=d, **kw))


def test_assignment_enrolls_by_grade_and_the_first_call_is_at_the_front(
        session: Session, now: datetime, floor: Floor) -> None:
    hot, rep = routed(session, now, "A")
    cold, _ = routed(session, now, "C")
    assert live(session, hot.id).cadence_id == floor.hot.id
    assert live(session, cold.id).cadence_id == floor.warm.id
    card = queue_service.next_task(session=session, user=rep, now=now)
    assert card is not None and card.lead_id == hot.id
    assert card.bucket == queue_rules.Bucket.NEW_HOT
    assert card.reason.startswith("new A lead, 0 min old")
    assert card.script  # the talking points come with the task
    # Asking again returns the same claimed task: Next cannot be pressed past a lead.
    again = queue_service.next_task(session=session, user=rep, now=now)
    assert again is not None and again.task_id == card.task_id
    assert count(session, Activity, Activity.lead_id == hot.id,
                 Activity.kind == ActivityKind.ENROLLED) == 1


def test_no_answer_moves_on_and_the_budget_closes_the_lead_as_unreachable(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "C")  # persistent 6: 5 manual touches + 1 email
    e = live(session, lead.id)
    e.attempt_budget = 3
    at = now
    for attempt in range(1, 4):
        task = session.scalar(select(Task).where(Task.lead_id == lead.id,
                                                 Task.status.in_(("open", "scheduled")),
                                                 Task.automatic.is_(False)))
        if task is None:  # the cadence's automatic email is next: let the worker send it
            jobs.run_automatic(session=session, now=at + timedelta(days=3))
            task = session.scalar(select(Task).where(Task.lead_id == lead.id,
                                                     Task.status == "scheduled"))
        assert task is not None
        at = max(at, task.due_at)
        result = dispose(session, task.id, rep, Disposition.NO_ANSWER, at)
        if attempt < 3:
            assert result.exit_reason is None and "attempt" in result.why
    assert result.exit_reason == ExitReason.UNREACHABLE
    session.refresh(lead)
    nurture = session.get(LeadPool, lead.pool_id)
    assert lead.owner_id is None and nurture is not None and nurture.kind == PoolKind.NURTURE
    assert lead.status == LeadStatus.NURTURING


def test_busy_retries_in_30_minutes_and_callbacks_wait_for_their_hour(
        session: Session, now: datetime, floor: Floor) -> None:
    _lead, rep = routed(session, now, "A")
    card = queue_service.next_task(session=session, user=rep, now=now)
    assert card is not None
    retry = dispose(session, card.task_id, rep, Disposition.BUSY, now)
    retry_task = session.get(Task, retry.next_task_id)
    assert retry_task is not None and retry_task.due_at == now + timedelta(minutes=30)
    assert queue_service.next_task(session=session, user=rep, now=now) is None
    jobs.release_due(session=session, now=now + timedelta(minutes=30))
    card = queue_service.next_task(session=session, user=rep, now=now + timedelta(minutes=30))
    assert card is not None and card.task_id == retry_task.id
    at = now + timedelta(minutes=31)
    back = at + timedelta(hours=3)
    result = dispose(session, card.task_id, rep, Disposition.CALL_BACK, at, callback_at=back)
    callback = session.get(Task, result.next_task_id)
    assert callback is not None and callback.kind == TaskKind.CALLBACK
    jobs.release_due(session=session, now=back - timedelta(minutes=1))
    assert queue_service.next_task(session=session, user=rep,
                                   now=back - timedelta(minutes=1)) is None  # not before
    jobs.release_due(session=session, now=back)
    card = queue_service.next_task(session=session, user=rep, now=back)
    assert card is not None and card.task_id == callback.id
    assert card.bucket == queue_rules.Bucket.CALLBACK


def test_qualified_ends_the_cadence_and_the_lead_moves_on(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "A")
    card = queue_service.next_task(session=session, user=rep, now=now)
    assert card is not None
    result = dispose(session, card.task_id, rep, Disposition.QUALIFIED, now, note="budget ok")
    assert result.exit_reason == ExitReason.QUALIFIED
    session.refresh(lead)
    assert lead.status == LeadStatus.QUALIFIED and lead.first_touch_at == now
    assert cadences_service.live_enrollment(session=session, lead_id=lead.id) is None
    assert count(session, Task, Task.lead_id == lead.id,
                 Task.status.in_(("open", "scheduled", "claimed"))) == 0
    ended = session.scalar(select(Enrollment).where(Enrollment.lead_id == lead.id))
    assert ended is not None and ended.converted_at == now and ended.contacted_at == now


def test_out_of_office_pauses_until_the_return_date_and_resumes_by_itself(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "A")
    back = now + timedelta(days=5)
    cadences_service.on_signal(session=session, lead_id=lead.id,
                               signal=ExitReason.OUT_OF_OFFICE, now=now, until=back)
    e = live(session, lead.id)
    assert e.status == EnrollmentStatus.PAUSED and e.replied_at is None  # OOO is no reply
    assert queue_service.next_task(session=session, user=rep, now=now) is None
    assert jobs.resume_paused(session=session, now=back - timedelta(hours=1)) == 0
    assert jobs.resume_paused(session=session, now=back) == 1
    session.refresh(e)
    assert e.status == EnrollmentStatus.ACTIVE and e.next_position == 1
    task = session.scalar(select(Task).where(Task.enrollment_id == e.id,
                                             Task.status.in_(("open", "scheduled"))))
    assert task is not None and task.due_at >= back


def test_a_reply_ends_the_cadence_and_puts_an_answer_task_first(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "B")
    routed(session, now, "A")  # goes to the other rep (round-robin)
    cadences_service.on_signal(session=session, lead_id=lead.id, signal=ExitReason.REPLIED,
                               now=now)
    ended = session.scalar(select(Enrollment).where(Enrollment.lead_id == lead.id))
    assert ended is not None and ended.exit_reason == "replied" and ended.replied_at == now
    card = queue_service.next_task(session=session, user=rep, now=now)
    assert card is not None and card.lead_id == lead.id and "reply" in card.note


def test_engagement_moves_the_leads_task_ahead_of_older_work(
        session: Session, now: datetime, floor: Floor) -> None:
    _first, second, rep = two_c_leads_of_one_rep(session, now)
    later = now + timedelta(minutes=5)
    assert cadences_service.on_engagement(session=session, lead_id=second.id, now=later) == 1
    card = queue_service.next_task(session=session, user=rep, now=later)
    assert card is not None and card.lead_id == second.id
    assert card.bucket == queue_rules.Bucket.ENGAGED
    # An hour later the boost is gone.
    queue_service.release(session=session, task_id=card.task_id, user=rep)
    assert jobs.refresh_buckets(session=session, now=later + timedelta(hours=1)) == 1


def test_transfer_keeps_the_cadence_and_hands_over_the_tasks(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "A")
    other = next(r for r in floor.reps if r.id != rep.id)
    before = live(session, lead.id).id
    routing_service.transfer_leads(session=session, lead_ids=[lead.id], to_user_id=other.id,
                                   actor=floor.lead, reason="rebalancing", now=now)
    e = live(session, lead.id)
    assert e.id == before and e.owner_id == other.id
    card = queue_service.next_task(session=session, user=other, now=now)
    assert card is not None and card.lead_id == lead.id


def test_returning_a_lead_to_nurture_enrolls_it_in_the_matching_program(
        session: Session, now: datetime, floor: Floor) -> None:
    warm = cadences_service.install_preset(session=session, key="nurture_warm", actor_id=None,
                                           now=now)
    cold = cadences_service.install_preset(session=session, key="nurture_cold", actor_id=None,
                                           now=now)
    lead, rep = routed(session, now, "B")
    routing_service.return_lead(session=session, lead_id=lead.id, user=rep,
                                reason="next quarter", follow_up_on=None, now=now)
    assert live(session, lead.id).cadence_id == warm.id
    lead2, rep2 = routed(session, now, "D")
    routing_service.return_lead(session=session, lead_id=lead2.id, user=rep2,
                                reason="no budget", follow_up_on=None, now=now)
    assert live(session, lead2.id).cadence_id == cold.id


def test_automatic_steps_send_once_and_never_on_a_holiday(
        session: Session, now: datetime, floor: Floor) -> None:
    program = cadences_service.install_preset(session=session, key="nurture_warm",
                                              actor_id=None, now=now)
    lead = make_lead(session, now, "B", email="nurture@example.com")
    enrollment = cadences_service.enroll(session=session, lead_id=lead.id,
                                         cadence_id=program.id, user=floor.lead, now=now)
    sent, deferred = jobs.run_automatic(session=session, now=now)
    assert (sent, deferred) == (1, 0)
    assert count(session, Message, Message.lead_id == lead.id) == 1
    # The next weekly email is due in 5 working days; a second run now sends nothing.
    assert jobs.run_automatic(session=session, now=now) == (0, 0)
    session.refresh(enrollment)
    assert enrollment.next_position == 2
    nxt = session.scalar(select(Task).where(Task.enrollment_id == enrollment.id,
                                            Task.status == TaskStatus.SCHEDULED))
    assert nxt is not None
    # Forced onto New Year's Day (a public holiday), the step waits for the next working day.
    holiday = datetime(2027, 1, 1, 2, 0, tzinfo=now.tzinfo)
    nxt.due_at = holiday
    session.flush()
    assert jobs.run_automatic(session=session, now=holiday) == (0, 1)
    session.refresh(nxt)
    assert nxt.due_at.date() > holiday.date()
    assert count(session, Message, Message.lead_id == lead.id) == 1


def test_a_returning_rep_gets_a_days_work_not_the_whole_backlog(
        session: Session, now: datetime, floor: Floor) -> None:
    rep = floor.reps[0]
    for _ in range(7):
        routed(session, now, "C")
    mine = count(session, Task, Task.owner_id == rep.id, Task.status == "open")
    assert mine >= 3
    plan = jobs.plan_catch_up(session=session, user_id=rep.id, now=now, per_day=2)
    assert len(plan.today) == 2 and sum(len(v) for v in plan.later.values()) == mine - 2
    assert count(session, Task, Task.owner_id == rep.id, Task.status == "open") == 2
    assert all(d.weekday() < 5 for d in plan.later)


def test_skipping_needs_a_reason_and_is_on_the_timeline(
        session: Session, now: datetime, floor: Floor) -> None:
    lead, rep = routed(session, now, "A")
    card = queue_service.next_task(session=session, user=rep, now=now)
    assert card is not None
    cadences_service.skip_task(session=session, task_id=card.task_id, user=rep,
                               reason="customer in a meeting until 3pm", now=now)
    skipped = session.scalar(select(Activity).where(Activity.lead_id == lead.id,
                                                    Activity.kind == ActivityKind.TASK_SKIPPED))
    assert skipped is not None and "meeting until 3pm" in skipped.summary
    assert queue_service.next_task(session=session, user=rep, now=now) is None
    lead_row = session.get(Lead, lead.id)
    assert lead_row is not None and lead_row.owner_id == rep.id


def test_a_lead_moves_ahead_in_its_best_hour_to_contact(
        session: Session, now: datetime, floor: Floor) -> None:
    # Two C leads for one rep; the second always opened emails around 15:00 Beijing time.
    first, second, rep = two_c_leads_of_one_rep(session, now)
    for day in (1, 2):
        session.add(Activity(lead_id=second.id, kind=ActivityKind.EMAIL_OPENED,
                             occurred_at=now - timedelta(days=day, hours=-5), summary="open"))
    session.flush()
    session.execute(Task.__table__.update().where(Task.lead_id.in_((first.id, second.id)))
                    .values(rank=2.0, bucket=4))
    facts = cadences_service.lead_facts(session, [second.id])[second.id]
    assert facts.best_hour == 15  # 02:00 UTC + 5 h = 15:00 in Shanghai
    session.execute(Task.__table__.update().where(Task.lead_id == second.id)
                    .values(best_hour=15, rank=1.5))
    at_three = now + timedelta(hours=5)  # 15:00 local
    assert jobs.move_best_hour_boost(session=session, now=at_three) == 1
    card = queue_service.next_task(session=session, user=rep, now=at_three)
    assert card is not None and card.lead_id == second.id
    assert "best hour" in card.reason
    queue_service.release(session=session, task_id=card.task_id, user=rep)
    # An hour later the boost moves off again and grade order is back.
    assert jobs.move_best_hour_boost(session=session, now=at_three + timedelta(hours=1)) == 1
    card = queue_service.next_task(session=session, user=rep,
                                   now=at_three + timedelta(hours=1))
    assert card is not None and card.lead_id == first.id


def test_a_lead_assigned_after_hours_is_called_at_once_not_next_morning(
        session: Session, floor: Floor) -> None:
    from leadflow import clock
    from leadflow.routing.schemas import RepProfileIn

    late = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    for rep in floor.reps:  # a night shift: the reps work around the clock
        routing_service.save_rep_profile(session=session, user_id=rep.id, now=late,
                                         data=RepProfileIn(work_start_minute=None,
                                                           work_end_minute=None))
    clock.set_clock(lambda: late)
    try:
        lead, rep = routed(session, late, "A")
        card = queue_service.next_task(session=session, user=rep, now=late)
        assert card is not None and card.lead_id == lead.id
    finally:
        clock.set_clock(None)


def test_an_ab_test_randomises_enrollment_and_shows_the_variant_on_the_card(
        session: Session, now: datetime, floor: Floor) -> None:
    from leadflow.cadences import experiments
    from leadflow.cadences.experiment_schemas import ArmIn

    first_step = cadences_service.steps_of(session=session, cadence_id=floor.hot.id)[0]
    experiment = experiments.create_experiment(
        session=session, name="opening line", cadence_id=floor.hot.id, step_id=first_step.id,
        metric="contacted", actor_id=None, now=now,
        arms=[ArmIn(key="A"), ArmIn(key="B", body="B script: ask about their launch")])
    arm_b = session.scalar(select(ExperimentArm.id).where(
        ExperimentArm.experiment_id == experiment.id, ExperimentArm.key == "B"))
    arms: Counter[int] = Counter()
    for _ in range(40):
        lead, rep = routed(session, now, "A")
        e = live(session, lead.id)
        assert e.experiment_id == experiment.id and e.arm_id is not None
        arms[e.arm_id] += 1
        card = queue_service.next_task(session=session, user=rep, now=now)
        assert card is not None and card.lead_id == lead.id
        assert ("ask about their launch" in card.body) == (e.arm_id == arm_b)
        dispose(session, card.task_id, rep, Disposition.CONNECTED, now)
    assert len(arms) == 2 and min(arms.values()) >= 8  # both arms get leads (p ≈ 1e-5)
