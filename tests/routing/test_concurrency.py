"""Many routers at once on PostgreSQL: no lead assigned twice, no capacity exceeded."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from leadflow.db import bulk_insert, is_sqlite, session_scope
from leadflow.leads.models import Lead
from leadflow.routing import invariants, service
from leadflow.routing.models import Ownership, RepDayLoad
from leadflow.routing.schemas import RepProfileIn, RuleConditions, RuleIn, TeamPolicyIn
from leadflow.scoring.models import LeadScore
from leadflow.users import service as users_service
from leadflow.users.models import Role, TeamKind

WRITERS = 50


def _organisation(session: Session, now: datetime) -> None:
    for t in range(4):
        team = users_service.create_team(session=session, name=f"T{t}", kind=TeamKind.SALES,
                                         now=now)
        service.save_team_policy(session=session, team_id=team.id, now=now, data=TeamPolicyIn(
            capacity={"A": 3, "B": 5}))
        for r in range(5):
            rep = users_service.create_user(
                session=session, email=f"r{t}-{r}@example.com", name=f"r{t}-{r}",
                role=Role.REP, password="correct-horse-battery", team_id=team.id, now=now)
            service.save_rep_profile(session=session, user_id=rep.id, now=now,
                                     data=RepProfileIn(work_start_minute=None,
                                                       work_end_minute=None))
        service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
            name=f"region {t}", conditions=RuleConditions(regions=[f"R{t}"]), team_id=team.id))


def test_fifty_concurrent_routers_never_double_assign_or_overfill(
    db: Engine, now: datetime
) -> None:
    if is_sqlite(str(db.url)):
        pytest.skip("SQLite runs one writer at a time; the race is PostgreSQL's")
    with session_scope() as session:
        _organisation(session, now)
        leads = [{"name": f"L{i}", "region": f"R{i % 4}", "status": "new", "tags": [],
                  "custom_fields": {}, "do_not_contact": False, "recycle_count": 0,
                  "created_at": now, "updated_at": now, "route_due_at": now}
                 for i in range(800)]
        bulk_insert(session, Lead.__table__, leads)  # type: ignore[arg-type]
        ids = list(session.scalars(select(Lead.id).order_by(Lead.id)))
        bulk_insert(session, LeadScore.__table__, [  # type: ignore[arg-type]
            {"lead_id": i, "fit": 0.0, "engagement": 0.0, "score": 0.0,
             "grade": "A" if (n // 4) % 2 else "B", "is_mql": False, "first_grade": "A",
             "ruleset_version": 0, "scored_at": now} for n, i in enumerate(ids)])
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer() -> None:
        try:
            start.wait()
            while True:
                with session_scope() as session:
                    if service.route_due(session=session, now=now, limit=8).leads == 0:
                        return
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope() as session:
        assert invariants.check(session=session) == {
            "unowned": 0, "double_open": 0, "owner_mismatch": 0, "over_capacity": 0}
        per_lead = Counter(session.scalars(select(Ownership.lead_id)))
        assert len(per_lead) == 800 and set(per_lead.values()) == {1}
        # 4 teams × 5 reps × (3 A + 5 B) = 160 assigned; the rest wait in triage, the 340
        # A leads to be retried, the 300 B leads to be claimed.
        assert session.scalar(select(func.count()).where(Lead.route_due_at.is_not(None))) == 340
        loads = dict(session.execute(select(RepDayLoad.grade, func.sum(RepDayLoad.assigned))
                                     .group_by(RepDayLoad.grade)).all())
        assert loads == {"A": 60, "B": 100}
