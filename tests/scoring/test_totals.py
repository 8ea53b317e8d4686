"""Stored engagement totals: a re-score from them equals one from every event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.scoring.test_service import _varied_leads, add_activity

from leadflow.cleaning import service as cleaning_service
from leadflow.leads import imports
from leadflow.leads.models import ActivityKind, Lead
from leadflow.scoring import jobs, totals
from leadflow.scoring import service as scoring_service
from leadflow.scoring.models import LeadScore
from leadflow.scoring.rules import EngagementEvent, kind_totals

KINDS = sorted(totals.KIND_CODES)


def _stored(session: Session) -> dict[int, tuple[float, float, float, str, bytes | None]]:
    session.expire_all()
    return {s.lead_id: (s.fit, s.engagement, s.score, s.grade, s.engagement_totals)
            for s in session.scalars(select(LeadScore))}


def _change_fit(session: Session, now: datetime, bump: int) -> None:
    document = scoring_service.default_document().model_copy(deep=True)
    for rule in document.fit.rules:
        rule.points += bump
    scoring_service.save_ruleset(session=session, document=document, note=f"fit {bump}",
                                 actor_id=None, now=now)
    session.commit()


def test_every_engagement_kind_has_a_stable_code() -> None:
    from leadflow.leads.models import ENGAGEMENT_KINDS

    assert {k.value for k in ENGAGEMENT_KINDS} == set(totals.KIND_CODES)
    assert len(set(totals.KIND_CODES.values())) == len(totals.KIND_CODES)
    assert totals._PACK.size == totals.RECORD.itemsize  # one lead and a batch agree


def test_rescore_from_totals_equals_rescore_from_events(session: Session, now: datetime) -> None:
    leads = _varied_leads(session, now, 60)
    jobs.rescore_all(now=now, chunk_size=25)
    first = _stored(session)
    assert sum(1 for *_, t in first.values() if t) >= 40  # most leads have events
    later = now + timedelta(days=9)  # engagement has decayed since
    _change_fit(session, later, 2)
    from_totals = jobs.rescore_all(now=later, chunk_size=25)
    stored = _stored(session)
    jobs.rescore_all(now=later, chunk_size=25, from_events=True)
    truth = _stored(session)
    assert from_totals.leads == len(leads)
    for lead_id, (fit, engagement, score, grade, _) in truth.items():
        got = stored[lead_id]
        assert got[3] == grade, lead_id
        assert got[:3] == pytest.approx((fit, engagement, score), abs=0.01), lead_id
    # The decay really moved something, so the check above is not vacuous.
    assert any(abs(first[i][1] - truth[i][1]) > 0.5 for i in truth)


def test_a_rule_change_leaves_the_stored_totals_as_they_were(session: Session,
                                                            now: datetime) -> None:
    """Totals reused by a re-score are decayed from their own time, not rewritten: after two
    rule changes, each later, they and their time are as first stored, and the scores still
    equal a re-score from every event."""
    _varied_leads(session, now, 40)
    jobs.rescore_all(now=now, chunk_size=15)

    def kept() -> dict[int, tuple[bytes | None, datetime | None, datetime]]:
        session.expire_all()
        return {s.lead_id: (s.engagement_totals, s.totals_at, s.scored_at)
                for s in session.scalars(select(LeadScore))}

    first = kept()
    assert sum(1 for t, at, _ in first.values() if t and at == now) >= 25
    later = now
    for days, bump in ((5, 1), (12, 3)):
        later = now + timedelta(days=days)
        _change_fit(session, later, bump)
        jobs.rescore_all(now=later, chunk_size=15)
        after = kept()
        assert {i: v[:2] for i, v in after.items()} == {i: v[:2] for i, v in first.items()}
        assert {v[2] for v in after.values()} == {later}
    stored = _stored(session)
    jobs.rescore_all(now=later, chunk_size=15, from_events=True)
    truth = _stored(session)
    assert {i: v[3] for i, v in stored.items()} == {i: v[3] for i, v in truth.items()}
    for i, (fit, engagement, score, *_) in truth.items():
        assert stored[i][:3] == pytest.approx((fit, engagement, score), abs=0.01), i
    # Read from the events, the totals are stored anew as of then.
    assert {at for t, at, _ in kept().values() if t} == {later}


def test_new_engagement_points_make_the_batch_read_events(session: Session,
                                                          now: datetime) -> None:
    _varied_leads(session, now, 30)
    jobs.rescore_all(now=now)
    document = scoring_service.default_document().model_copy(deep=True)
    document.engagement.activities["email_opened"].points += 7
    scoring_service.save_ruleset(session=session, document=document, note="opens",
                                 actor_id=None, now=now)
    session.commit()
    assert scoring_service.totals_versions(session=session, document=document) == {1}
    jobs.rescore_all(now=now)
    stored = _stored(session)
    jobs.rescore_all(now=now, from_events=True)
    truth = _stored(session)
    assert {i: v[1] for i, v in stored.items()} == pytest.approx(
        {i: v[1] for i, v in truth.items()})


def _batch_and_one_lead(session: Session, lead_id: int, now: datetime) -> tuple[float, float]:
    """The lead's engagement after a batch re-score, and as the one-lead path (which reads
    every event) computes it."""
    jobs.rescore_all(now=now)
    batch = _stored(session)[lead_id][1]
    one = scoring_service.rescore_lead(session=session, lead_id=lead_id, now=now).decision
    session.commit()
    return batch, one.engagement


def test_merges_and_forgotten_totals_lose_no_events(session: Session, now: datetime) -> None:
    a, b = _varied_leads(session, now, 2, seed=11)
    jobs.rescore_all(now=now)
    before = _stored(session)
    assert before[b.id][1] > 0  # b's events are worth something to a
    # A merge moves b's events to a, and forgets a's totals by itself.
    cleaning_service.merge_leads(session=session, lead_ids=(a.id, b.id), keys=("manual",),
                                 similarity=None, actor_id=None, now=now)
    session.commit()
    merged, truth = _batch_and_one_lead(session, a.id, now)
    assert merged == pytest.approx(truth, abs=0.01)
    assert merged != pytest.approx(before[a.id][1], abs=0.01)
    # An event written behind scoring's back counts once its writer forgets the totals.
    add_activity(session, a, ActivityKind.PAID_CONSULTATION, now)
    totals.forget(session=session, lead_ids=[a.id])
    session.commit()
    later, truth = _batch_and_one_lead(session, a.id, now)
    assert later == pytest.approx(truth, abs=0.01)
    assert later > merged


_event = st.builds(
    EngagementEvent,
    kind=st.sampled_from(KINDS),
    occurred_at=st.integers(0, 400 * 24).map(
        lambda h: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h)),
    value=st.one_of(st.none(), st.floats(0, 30)),
    ref=st.one_of(st.none(), st.sampled_from(["/pricing", "/blog/x", "/PRICING/plan"])),
)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(_event, max_size=12), days_later=st.floats(0, 200))
def test_stored_totals_decay_like_their_events(events: list[EngagementEvent],
                                               days_later: float) -> None:
    config = scoring_service.default_document().engagement
    scored_at = datetime(2027, 3, 1, tzinfo=UTC)  # after every event
    later = scored_at + timedelta(days=days_later)
    blob = totals.encode(kind_totals(config, events, scored_at))
    decoded = totals.decode_rows([blob], np.array([0]), np.array([days_later]),
                                 config.half_life_days)
    expected = kind_totals(config, events, later)
    got = {str(k): (int(c), float(p))
           for k, c, p in zip(decoded.kind, decoded.count, decoded.points, strict=True)}
    assert set(got) == set(expected)
    for kind, (count, points) in expected.items():
        assert got[kind][0] == count
        assert got[kind][1] == pytest.approx(points, rel=1e-9, abs=1e-9)


def _decoded(blob: bytes) -> dict[str, tuple[int, float]]:
    sums = totals.decode_rows([blob], np.array([0]), np.array([0.0]), 30.0)
    return {str(k): (int(c), float(p))
            for k, c, p in zip(sums.kind, sums.count, sums.points, strict=True)}


def test_rows_encode_like_one_lead() -> None:
    counts = np.array([[1, 0], [0, 0], [2, 3]])
    points = np.array([[5.0, 0.0], [0.0, 0.0], [1.5, -2.0]])
    rows = totals.encode_rows(["web_visit", "replied"], counts, points)
    assert rows[1] == b""
    assert _decoded(rows[0]) == _decoded(totals.encode({"web_visit": (1, 5.0)})) \
        == {"web_visit": (1, 5.0)}
    assert _decoded(rows[2]) == {"web_visit": (2, 1.5), "replied": (3, -2.0)}
    assert _decoded(totals.encode({"web_visit": (2, 1.5), "replied": (3, -2.0)})) \
        == _decoded(rows[2])


def test_an_import_merging_into_a_scored_lead_forgets_its_totals(
        session: Session, now: datetime, tmp_path: Path) -> None:
    header = "编号,姓名,手机号,公司名称,城市\n"
    first = tmp_path / "first.csv"
    first.write_text(header + "A1,张伟,13800138000,北京星辰数据科技有限公司,北京\n", "utf-8")
    imports.import_file(path=first, source="expo", campaign_id=None, actor_id=None)
    lead_id = session.scalar(select(Lead.id))
    assert lead_id is not None
    jobs.rescore_all(now=now)
    alone = _stored(session)[lead_id][1]
    second = tmp_path / "second.csv"
    second.write_text(header + "B7,张伟,+86 138 0013 8000,北京星辰数据科技有限公司,北京\n",
                      "utf-8")
    summary = imports.import_file(path=second, source="fair", campaign_id=None, actor_id=None)
    assert summary.merged == 1
    merged, truth = _batch_and_one_lead(session, lead_id, now)
    assert merged == pytest.approx(truth, abs=0.01)
    assert merged > alone  # the second touchpoint counts
