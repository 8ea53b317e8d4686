"""The capture pipeline on a real database: clean, skip, dedup, merge, enrich."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cleaning.enrich import load_firmographics
from leadflow.cleaning.rules import MatchThresholds
from leadflow.leads.capture import IncomingRecord, Outcome, capture_batch
from leadflow.leads.models import Activity, ActivityKind, Lead, Touchpoint

T = MatchThresholds()


def capture(session: Session, now: datetime, *records: dict[str, str], source: str = "s"):  # type: ignore[no-untyped-def]
    incoming = [
        IncomingRecord(external_id=r.pop("external_id"), record=r, raw=dict(r), row_number=i + 2)
        for i, r in enumerate(records)
    ]
    result = capture_batch(session=session, records=incoming, source=source, campaign_id=None,
                           now=now, thresholds=T)
    session.commit()
    return result


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_duplicates_within_a_batch_merge_and_keep_every_touchpoint(session: Session,
                                                                  now: datetime) -> None:
    result = capture(
        session, now,
        {"external_id": "1", "name": "张伟", "phone": "13800138000", "company": "星辰数据科技有限公司"},
        {"external_id": "2", "name": "张伟", "phone": "+86 138-0013-8000", "email": "zw@qq.com"},
        {"external_id": "3", "name": "李娜", "phone": "13900139000"},
    )
    assert (result.created, result.merged, len(result.rejects)) == (2, 1, 0)
    assert [r.outcome for r in result.results] == [Outcome.CREATED, Outcome.MERGED,
                                                    Outcome.CREATED]
    lead = session.get(Lead, result.results[0].lead_id)
    assert lead is not None
    assert lead.email == "zw@qq.com"  # gap filled from the duplicate
    assert lead.phone == "+8613800138000" and lead.phone_raw == "13800138000"
    assert count(session, Touchpoint) == 3
    merge = session.scalar(select(Activity).where(Activity.kind == ActivityKind.MERGED))
    assert merge is not None and merge.lead_id == lead.id
    assert merge.detail["keys"] == ["phone"] and merge.detail["filled"] == ["email"]


def test_duplicates_of_stored_leads_are_found_through_the_database(session: Session,
                                                                  now: datetime) -> None:
    first = capture(session, now, {"external_id": "a", "name": "Jonathan Smith",
                                   "company": "Acme Analytics Ltd", "city": "Shanghai"})
    second = capture(
        session, now,
        {"external_id": "b", "name": "Smith, Jonathon", "company": "ACME Analytics Limited",
         "title": "CTO"},
        source="other",
    )
    assert second.merged == 1 and second.created == 0
    assert second.results[0].lead_id == first.results[0].lead_id
    assert second.results[0].match is not None
    assert second.results[0].match.keys == ("name", "company")
    lead = session.get(Lead, first.results[0].lead_id)
    assert lead is not None and lead.title == "CTO"


def test_conflicting_values_stay_in_history(session: Session, now: datetime) -> None:
    capture(session, now, {"external_id": "1", "name": "王芳", "email": "wf@x.cn",
                           "city": "北京"})
    capture(session, now, {"external_id": "2", "name": "王芳", "email": "WF@x.cn",
                           "city": "上海"})
    lead = session.scalars(select(Lead)).one()
    assert lead.city == "北京"  # earliest value survives
    merge = session.scalar(select(Activity).where(Activity.kind == ActivityKind.MERGED))
    assert merge is not None and merge.detail["conflicts"] == {"city": ["北京", "上海"]}


def test_same_source_and_external_id_is_captured_once(session: Session, now: datetime) -> None:
    row = {"external_id": "x1", "name": "赵敏", "phone": "13700137000"}
    capture(session, now, dict(row))
    again = capture(session, now, dict(row), dict(row))
    assert (again.created, again.merged, again.skipped) == (0, 0, 2)
    assert count(session, Touchpoint) == 1 and count(session, Lead) == 1
    elsewhere = capture(session, now, dict(row), source="another")
    assert elsewhere.merged == 1 and count(session, Touchpoint) == 2


def test_bad_records_are_rejected_with_field_and_reason(session: Session, now: datetime) -> None:
    result = capture(
        session, now,
        {"external_id": "1", "name": "A", "phone": "12345"},
        {"external_id": "2", "name": "B", "email": "foo@"},
        {"external_id": "3", "company": "Only A Company"},
        {"external_id": "4", "name": "Good", "phone": "13600136000"},
    )
    assert result.created == 1
    reasons = {(r.row_number, r.field) for r in result.rejects}
    assert reasons == {(2, "phone"), (3, "email"), (4, "name")}
    assert all(r.reason for r in result.rejects)


def test_different_people_with_one_name_stay_apart(session: Session, now: datetime) -> None:
    result = capture(
        session, now,
        {"external_id": "1", "name": "张伟", "company": "星辰数据科技有限公司", "phone": "13800000001"},
        {"external_id": "2", "name": "张伟", "company": "云帆网络技术有限公司", "phone": "13800000002"},
        {"external_id": "3", "name": "张伟", "company": "星辰数据科技有限公司", "phone": "13800000003"},
    )
    assert result.created == 3


def test_new_leads_are_enriched_from_the_firmographic_table(session: Session, now: datetime,
                                                            tmp_path: Path) -> None:
    table = tmp_path / "firms.csv"
    table.write_text("company,industry,employees,province,city,domain\n"
                     "北京星辰数据科技有限公司,教育,350,北京,北京,xingchen.cn\n"
                     "Acme Analytics Ltd,Software,1200,,Shanghai,acme.com\n", encoding="utf-8")
    assert load_firmographics(session=session, path=table, now=now) == 2
    result = capture(
        session, now,
        {"external_id": "1", "name": "刘洋", "company": "(北京)星辰数据科技有限公司"},
        {"external_id": "2", "name": "Amy Chen", "email": "amy@acme.com"},
        {"external_id": "3", "name": "Bob Lee", "email": "bob@gmail.com", "industry": "Retail"},
    )
    by_key = {r.external_id: session.get(Lead, r.lead_id) for r in result.results}
    assert by_key["1"].industry == "教育" and by_key["1"].headcount == 350  # type: ignore[union-attr]
    assert by_key["2"].industry == "Software" and by_key["2"].city == "Shanghai"  # type: ignore[union-attr]
    assert by_key["3"].industry == "Retail" and by_key["3"].headcount is None  # type: ignore[union-attr]
    tp = session.scalar(select(Touchpoint).where(Touchpoint.external_id == "2"))
    assert tp is not None and tp.payload["enriched"]["matched_on"] == "domain"


def test_concurrent_deliveries_of_one_record_create_it_once(db, now: datetime) -> None:  # type: ignore[no-untyped-def]
    import threading

    from leadflow.db import session_scope
    from leadflow.leads.capture import capture_retrying

    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            with session_scope() as s:
                record = IncomingRecord(external_id="sub-1", record={
                    "name": "黄磊", "phone": "13812345678"}, raw={})
                result = capture_retrying(session=s, records=[record], source="form",
                                          campaign_id=None, now=now, thresholds=T)
                outcomes.append(result.results[0].outcome)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sorted(outcomes) == ["created"] + ["skipped"] * 7
    with Session(db) as s:
        assert count(s, Touchpoint) == 1 and count(s, Lead) == 1
