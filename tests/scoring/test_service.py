"""Scoring on a real database: one lead, batches, rule versions, MQL events, flags, reports."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.campaigns.models import Campaign, Channel
from leadflow.events.models import EventKind, OutboxEvent
from leadflow.leads.models import Activity, ActivityKind, Lead, LeadStatus, Touchpoint
from leadflow.scoring import jobs, report
from leadflow.scoring import service as scoring_service
from leadflow.scoring.models import GradeFlag, LeadScore
from leadflow.scoring.schemas import ActivityIn, FlagIn


def make_lead(session: Session, now: datetime, **fields: Any) -> Lead:
    lead = Lead(created_at=fields.pop("created_at", now), updated_at=now, tags=[],
                custom_fields={}, **fields)
    session.add(lead)
    session.flush()
    session.add(Touchpoint(lead_id=lead.id, original_lead_id=lead.id, source="t",
                           external_id=str(lead.id), received_at=lead.created_at,
                           campaign_id=lead.campaign_id, payload={}))
    return lead


def campaign(session: Session, now: datetime, channel: Channel) -> Campaign:
    row = Campaign(name=f"c-{channel}", channel=channel, is_online=True, cost=0,
                   currency="CNY", created_at=now)
    session.add(row)
    session.flush()
    return row


def add_activity(session: Session, lead: Lead, kind: ActivityKind, at: datetime,
                 **kw: Any) -> None:
    session.add(Activity(lead_id=lead.id, kind=kind, occurred_at=at, summary="", detail={},
                         **kw))


def count(session: Session, model: type, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_activity_rescores_at_once_and_crossing_mql_hands_over(
    session: Session, now: datetime
) -> None:
    lead = make_lead(session, now, name="王芳", industry="教育", title="市场专员")
    first = scoring_service.rescore_lead(session=session, lead_id=lead.id, now=now)
    assert first.decision.grade in ("C", "D") and not first.crossed_mql
    for days in (10, 3):
        scoring_service.record_activity(
            session=session, lead=lead, now=now, actor_id=None,
            activity=ActivityIn(kind="community_class", occurred_at=now - timedelta(days=days)))
    _, result = scoring_service.record_activity(
        session=session, lead=lead, now=now, actor_id=None,
        activity=ActivityIn(kind="paid_consultation", value=9.9))
    session.commit()
    assert result.decision.grade == "A+" and result.crossed_mql
    stored = session.get(LeadScore, lead.id)
    assert stored is not None and stored.grade == "A+" and stored.is_mql
    assert stored.mql_at == now and stored.first_grade == first.decision.grade
    assert count(session, Activity, Activity.lead_id == lead.id,
                 Activity.kind == ActivityKind.MQL_REACHED) == 1
    assert count(session, Activity, Activity.lead_id == lead.id,
                 Activity.kind == ActivityKind.GRADE_CHANGED) >= 1
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.lead_id == lead.id)).all()
    assert [e.kind for e in events] == [EventKind.LEAD_MQL]
    # The handover's rows as written (one statement of SQL on PostgreSQL).
    crossing = session.scalars(select(Activity).where(
        Activity.lead_id == lead.id, Activity.kind == ActivityKind.MQL_REACHED)).one()
    expected = scoring_service.mql_detail(stored.grade, stored.score)
    assert crossing.detail == events[0].payload == expected
    assert crossing.summary == scoring_service.mql_summary(stored.grade, stored.score)
    assert crossing.occurred_at == events[0].created_at == now
    assert crossing.actor_id is None and events[0].attempts == 0
    # Scoring again crosses nothing: one MQL event per crossing.
    again = scoring_service.rescore_lead(session=session, lead_id=lead.id, now=now)
    assert not again.crossed_mql
    assert count(session, OutboxEvent) == 1


def test_unknown_activity_kind_is_refused(session: Session, now: datetime) -> None:
    lead = make_lead(session, now, name="x")
    with pytest.raises(Exception, match="unknown activity kind"):
        scoring_service.record_activity(session=session, lead=lead, now=now, actor_id=None,
                                        activity=ActivityIn(kind="teleported"))


def _varied_leads(session: Session, now: datetime, n: int, seed: int = 3) -> list[Lead]:
    rng, contact = random.Random(seed), random.Random(-seed)
    gift = campaign(session, now, Channel.GIFT)
    webinar = campaign(session, now, Channel.WEBINAR)
    leads = []
    for i in range(n):
        lead = make_lead(
            session, now,
            name=f"lead {i}",
            industry=rng.choice([None, "教育", "金融", "制造业", "Software & IT"]),
            headcount=rng.choice([None, 5, 80, 600, 5000]),
            title=rng.choice([None, "销售总监", "市场专员", "CEO", "IT经理"]),
            province=rng.choice([None, "上海", "四川"]),
            phone=rng.choice([None, f"+86138{i:08d}"]),
            # Drawn apart, so that the other fields stay what other tests planted.
            email=contact.choice([None, "", f"lead{i}@example.cn"]),
            wechat_id=contact.choice([None, f"wx_{i}"]),
            product_interest=rng.choice([None, "CRM"]) or contact.choice([None, ""]),
            campaign_id=rng.choice([None, gift.id, webinar.id]),
            created_at=now - timedelta(days=rng.randint(0, 200)),
        )
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice([ActivityKind.EMAIL_OPENED, ActivityKind.WEB_VISIT,
                               ActivityKind.COMMUNITY_CLASS, ActivityKind.PAID_CONSULTATION,
                               ActivityKind.UNSUBSCRIBED, ActivityKind.CONTENT_READ,
                               ActivityKind.NOTE])
            add_activity(session, lead, kind, now - timedelta(days=rng.uniform(0, 60)),
                         value=rng.choice([None, 4.0]), ref=rng.choice([None, "/pricing"]))
        leads.append(lead)
    session.commit()
    return leads


def test_batch_rescore_agrees_with_one_lead_path(session: Session, now: datetime) -> None:
    leads = _varied_leads(session, now, 80)
    summary = jobs.rescore_all(now=now, chunk_size=17)
    assert summary.leads == 80 and sum(summary.by_grade.values()) == 80
    session.expire_all()
    batch = {s.lead_id: (s.fit, s.engagement, s.score, s.grade, s.is_mql)
             for s in session.scalars(select(LeadScore))}
    for lead in leads:
        one = scoring_service.rescore_lead(session=session, lead_id=lead.id, now=now).decision
        fit, engagement, score, grade, mql = batch[lead.id]
        assert (grade, mql) == (one.grade, one.is_mql), lead.id
        assert fit == pytest.approx(one.fit, abs=0.01)
        assert engagement == pytest.approx(one.engagement, abs=0.01)
        assert score == pytest.approx(one.score, abs=0.01)
    assert len({g for *_, g, _ in batch.values()}) >= 3  # the data spans grades


def test_batch_reads_the_facts_one_lead_reads(session: Session, now: datetime) -> None:
    """Presence flags and the stored grade and MQL flag (each packed into one number in
    SQL) and campaign channels (looked up, not joined) come out of a batch read as the
    one-lead read has them."""
    from leadflow.scoring import facts
    from leadflow.scoring.schemas import RulesetDocument

    leads = _varied_leads(session, now, 60, seed=11)
    unscored = {lead.id for lead in leads[:5]}
    jobs.rescore_all(now=now, ids=[lead.id for lead in leads[5:]])
    flagged = {"email", "product_interest", "wechat_id"}
    read = facts.read_batch(session=session, now=now, ids=[lead.id for lead in leads],
                            fields={"industry", "phone"}, flags=flagged,
                            engagement=RulesetDocument().engagement)
    rows = read.frame.set_index("lead_id")
    position = {lead_id: i for i, lead_id in enumerate(read.frame["lead_id"])}
    seen = set()
    for lead in leads:
        one, _ = facts.read_lead(session=session, lead_id=lead.id,
                                 query=facts.lead_facts_query())
        assert one is not None
        at = position[lead.id]  # the stored grade and MQL flag (one number in SQL)
        assert read.previous_grade[at] == one.previous.grade
        assert (one.previous.grade is None) == (lead.id in unscored)
        assert read.previous_mql[at] == one.previous.is_mql
        seen.add(("mql", one.previous.is_mql))
        seen.add(("grade", one.previous.grade))
        row = rows.loc[lead.id]
        for column in ("phone", "industry", "channel", "has_phone", "has_email", "has_wechat"):
            assert row[column] == one.facts[column], (lead.id, column)
        for column in flagged:  # a flag: True when known, None when missing or blank
            expected = True if one.facts[column] not in (None, "") else None
            assert row[column] is expected, (lead.id, column)
            seen.add((column, expected))
        seen.add(("channel", one.facts["channel"]))
    # The data covers both sides of every flag, and leads without a campaign.
    assert {(c, v) for c in flagged for v in (True, None)} <= seen
    assert ("channel", None) in seen and ("channel", "gift") in seen
    assert {("mql", True), ("mql", False), ("grade", None)} <= seen
    assert len({v for c, v in seen if c == "grade"}) >= 3


def test_batch_mql_crossings_read_back_like_the_one_lead_path(
    session: Session, now: datetime
) -> None:
    """The batch writes a crossing's detail and payload JSON by hand: each must read back as
    the one-lead path's ``mql_detail``, with its summary, for the score row stored."""
    _varied_leads(session, now, 80)
    summary = jobs.rescore_all(now=now, chunk_size=17)
    session.expire_all()
    scores = {s.lead_id: s for s in session.scalars(select(LeadScore))}
    crossings = session.scalars(
        select(Activity).where(Activity.kind == ActivityKind.MQL_REACHED)).all()
    events = session.scalars(
        select(OutboxEvent).where(OutboxEvent.kind == EventKind.LEAD_MQL)).all()
    assert summary.new_mqls == len(crossings) == len(events) > 0
    for crossing in crossings:
        stored = scores[crossing.lead_id]
        expected = scoring_service.mql_detail(stored.grade, stored.score)
        assert crossing.detail == expected
        assert crossing.summary == scoring_service.mql_summary(stored.grade, stored.score)
    assert {e.lead_id: e.payload for e in events} == {
        c.lead_id: c.detail for c in crossings}


def test_new_rule_version_is_recorded_and_used_by_rescore(session: Session, now: datetime) -> None:
    leads = _varied_leads(session, now, 20)
    jobs.rescore_all(now=now)
    document = scoring_service.default_document().model_copy(deep=True)
    document.grading.thresholds = {"A+": 99.0, "A": 98.0, "B": 97.0, "C": 96.0}
    row = scoring_service.save_ruleset(session=session, document=document, note="strict",
                                       actor_id=None, now=now)
    session.commit()
    assert row.version == 1
    summary = jobs.rescore_all(now=now)
    assert summary.ruleset_version == 1
    session.expire_all()
    scores = session.scalars(select(LeadScore)).all()
    assert {s.ruleset_version for s in scores} == {1}
    overridden = {"A+", "C"}  # the brief's overrides still apply
    assert all(s.grade == "D" or s.grade in overridden for s in scores)
    changes = session.scalars(
        select(Activity).where(Activity.kind == ActivityKind.GRADE_CHANGED)).all()
    assert summary.grade_changes == len(changes) > 0 and len(leads) == 20
    by_lead = {s.lead_id: s for s in scores}
    for change in changes:  # the batch writes the detail's JSON by hand: it must read back
        stored = by_lead[change.lead_id]
        assert change.detail["to"] == stored.grade != change.detail["from"]
        assert change.detail["score"] == pytest.approx(stored.score, abs=0.01)
        assert change.summary == f"{change.detail['from']} → {stored.grade} (re-scored)"


def test_invalid_rule_set_says_where(session: Session) -> None:
    with pytest.raises(scoring_service.InvalidRuleset, match=r"fit\.rules\.0\.points"):
        scoring_service.validate_ruleset({"fit": {"rules": [
            {"field": "industry", "op": "eq", "value": "教育", "points": 1000}]}})
    with pytest.raises(scoring_service.InvalidRuleset, match="unknown activity kinds"):
        scoring_service.validate_ruleset({"engagement": {"activities": {"teleport": {"points": 1}}}})


def test_flag_goes_to_timeline_and_calibration_report(session: Session, now: datetime,
                                                       make_user: Any) -> None:
    rep = make_user()
    lead = make_lead(session, now, name="李雷", industry="教育")
    scoring_service.rescore_lead(session=session, lead_id=lead.id, now=now)
    scoring_service.flag_grade(session=session, lead=lead, user_id=rep.id, now=now,
                               flag=FlagIn(suggested_grade="A", reason="已约演示, 预算已批"))
    session.commit()
    assert count(session, GradeFlag) == 1
    assert count(session, Activity, Activity.kind == ActivityKind.GRADE_FLAGGED) == 1
    rep_ = report.calibration_report(session=session, month=now.date())
    assert [f.reason for f in rep_.flags] == ["已约演示, 预算已批"]


def test_calibration_report_recovers_planted_conversion_by_grade(
    session: Session, now: datetime
) -> None:
    rng = random.Random(11)
    planted = {"A+": 0.5, "A": 0.4, "B": 0.2, "C": 0.08, "D": 0.02}
    month_start = now.replace(day=1)
    for grade, rate in planted.items():
        for _ in range(150):
            converted = rng.random() < rate
            accepted = converted or rng.random() < rate
            lead = make_lead(
                session, now, name="x", created_at=month_start + timedelta(hours=rng.randint(0, 500)),
                status=LeadStatus.CONVERTED if converted
                else LeadStatus.QUALIFIED if accepted else LeadStatus.WORKING)
            session.add(LeadScore(lead_id=lead.id, fit=0, engagement=0, score=0, grade=grade,
                                  is_mql=grade in ("A+", "A"), first_grade=grade,
                                  mql_at=now if grade in ("A+", "A") else None,
                                  ruleset_version=0, scored_at=now))
    # A lead from last month is not in this month's cohort.
    old = make_lead(session, now, name="old", created_at=month_start - timedelta(days=3))
    session.add(LeadScore(lead_id=old.id, fit=0, engagement=0, score=0, grade="A",
                          first_grade="A", ruleset_version=0, scored_at=now))
    session.commit()
    result = report.calibration_report(session=session, month=date(now.year, now.month, 1))
    rows = {r.grade: r for r in result.rows}
    assert sum(r.leads for r in result.rows) == 750
    conversions = [rows[g].conversion for g in ("A+", "A", "B", "C", "D")]
    assert conversions == sorted(conversions, reverse=True)
    lift = result.lift("A")
    assert lift is not None and lift > 3
    assert rows["A"].mqls == 150 and rows["C"].mqls == 0
    assert rows["A"].mql_to_sql is not None and rows["A"].mql_to_sql > 0.5


def test_training_waits_for_enough_outcomes(session: Session, now: datetime) -> None:
    _varied_leads(session, now, 10)
    with pytest.raises(jobs.NotEnoughHistory, match="rules alone"):
        jobs.train_from_database(now=now)


@pytest.mark.postgres
def test_concurrent_events_cross_the_mql_line_once(db: Any, session: Session, now: datetime) -> None:
    """Eight events for one lead at the same moment: one crossing, one routing event."""
    import threading

    from leadflow.db import session_scope

    if db.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    lead = make_lead(session, now, name="并发", industry="教育")
    add_activity(session, lead, ActivityKind.COMMUNITY_CLASS, now)
    session.commit()
    scoring_service.rescore_lead(session=session, lead_id=lead.id, now=now)
    session.commit()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def event() -> None:
        try:
            start.wait()
            with session_scope() as s:
                row = s.get(Lead, lead.id)
                assert row is not None
                scoring_service.record_activity(session=s, lead=row, actor_id=None, now=now,
                                                activity=ActivityIn(kind="paid_consultation"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=event) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    session.expire_all()
    assert count(session, OutboxEvent, OutboxEvent.lead_id == lead.id) == 1
    assert count(session, Activity, Activity.lead_id == lead.id,
                 Activity.kind == ActivityKind.MQL_REACHED) == 1


def test_rescore_keeps_first_grade_and_first_mql_time(session: Session, now: datetime) -> None:
    leads = _varied_leads(session, now, 40, seed=8)
    jobs.rescore_all(now=now)
    session.expire_all()
    first = {s.lead_id: (s.first_grade, s.mql_at) for s in session.scalars(select(LeadScore))}
    assert any(mql_at is not None for _, mql_at in first.values())
    document = scoring_service.default_document().model_copy(deep=True)
    document.grading.thresholds = {"A+": 99.0, "A": 98.0, "B": 97.0, "C": 96.0}
    scoring_service.save_ruleset(session=session, document=document, note="strict",
                                 actor_id=None, now=now)
    session.commit()
    later = now + timedelta(days=3)
    jobs.rescore_all(now=later)
    session.expire_all()
    after = {s.lead_id: s for s in session.scalars(select(LeadScore))}
    assert len(after) == len(leads)
    assert {i: (s.first_grade, s.mql_at) for i, s in after.items()} == first
    assert all(s.scored_at == later and s.ruleset_version == 1 for s in after.values())
    assert any(s.grade != first[i][0] for i, s in after.items())
    # Nobody past the line (no overrides either), then a lenient line: leads that crossed
    # before cross again and keep their first time; first-time crossers get this one.
    for thresholds, overrides, again in (
            ({"A+": 99.0, "A": 98.0, "B": 97.0, "C": 96.0}, [], later + timedelta(days=1)),
            ({"A+": 75.0, "A": 30.0, "B": 20.0, "C": 10.0}, document.grading.overrides,
             later + timedelta(days=2))):
        lenient = document.model_copy(deep=True)
        lenient.grading.thresholds, lenient.grading.overrides = thresholds, overrides
        scoring_service.save_ruleset(session=session, document=lenient, note="line",
                                     actor_id=None, now=again)
        session.commit()
        summary = jobs.rescore_all(now=again)
    session.expire_all()
    final = {s.lead_id: s for s in session.scalars(select(LeadScore))}
    first_time = {i for i, s in final.items() if s.is_mql and first[i][1] is None}
    assert summary.new_mqls > len(first_time) > 0
    for i, s in final.items():
        assert s.mql_at == (first[i][1] or (again if s.is_mql else None)), i


def test_the_job_takes_back_only_chunks_the_helper_has_not_started() -> None:
    """At the end of a re-score the writing process scores queued chunks itself, last queued
    first; the chunk first in line stays with the helper, which is on it."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    release = Event()
    with ThreadPoolExecutor(max_workers=1) as helper:
        try:
            chunks = [{"id_range": (i, i + 10)} for i in range(3)]
            pending = deque((helper.submit(release.wait), chunk) for chunk in chunks)
            assert jobs._take_back(pending) == chunks[2]
            assert jobs._take_back(pending) == chunks[1]
            assert jobs._take_back(pending) is None  # the running one is left alone
            assert len(pending) == 1 and pending[0][1] == chunks[0]
        finally:
            release.set()
        assert pending[0][0].result() is True
