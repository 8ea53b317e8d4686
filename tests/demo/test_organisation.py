"""The demo organisation on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from leadflow.cadences.models import Enrollment, Task
from leadflow.campaigns.models import Campaign, Channel
from leadflow.cleaning.models import Firmographic
from leadflow.demo.organisation import ADMIN_EMAIL, DEMO_PASSWORD, build_demo
from leadflow.errors import Conflict
from leadflow.leads.models import Activity, ActivityKind, Lead, Touchpoint
from leadflow.messaging.models import Message
from leadflow.routing import invariants
from leadflow.routing.models import Ownership
from leadflow.users import service as users_service
from leadflow.users.models import Role, Team, TeamKind, User


def count(session: Session, model: type, *where: object) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def test_demo_builds_an_organisation_with_history_and_refuses_to_run_twice(
    db: Engine, now: datetime
) -> None:
    summary = build_demo(leads=2000, seed=3, console=None)

    with Session(db) as session:
        admin = users_service.authenticate(session=session, email=ADMIN_EMAIL,
                                           password=DEMO_PASSWORD, now=now)
        assert admin.role == Role.ADMIN
        roles = set(session.scalars(select(User.role)))
        assert roles == set(Role)
        kinds = set(session.scalars(select(Team.kind)))
        assert kinds == set(TeamKind)
        assert {Channel(c) for c in session.scalars(select(Campaign.channel))} == set(Channel)
        assert count(session, Firmographic) == summary["companies"]

        leads = count(session, Lead)
        touchpoints = count(session, Touchpoint)
        merges = count(session, Activity, Activity.kind == ActivityKind.MERGED)
        assert leads == summary["leads_created"] > 1000
        assert touchpoints == summary["records"] - summary["rejected"]
        assert touchpoints >= leads
        assert merges == summary["merged"] > 0
        assert summary["rejected"] > 0  # the event list's bad rows
        enriched = count(session, Lead, Lead.industry.is_not(None))
        assert enriched > leads // 2
        # Six months of history, never in the future.
        oldest = session.scalar(select(func.min(Touchpoint.received_at)))
        newest = session.scalar(select(func.max(Touchpoint.received_at)))
        assert oldest is not None and newest is not None
        assert oldest < now - timedelta(days=150) and newest <= now
        created = session.scalar(select(func.min(Lead.created_at)))
        assert created is not None and created < now - timedelta(days=100)
        # The last weeks went through the real router: owners, pools, sound invariants.
        assert summary["routing"]["assigned"] > 0  # type: ignore[index]
        assert invariants.check(session=session) == {
            "unowned": 0, "double_open": 0, "owner_mismatch": 0, "over_capacity": 0}
        owned = count(session, Lead, Lead.owner_id.is_not(None))
        pooled = count(session, Lead, Lead.pool_id.is_not(None))
        assert owned > 0 and pooled > 0
        assert count(session, Ownership, Ownership.accepted_at.is_not(None)) > 0
        # Every lead a rep owns is in a cadence; each rep's queue holds at most a day's work.
        enrolled = set(session.scalars(select(Enrollment.lead_id).where(
            Enrollment.status.in_(("active", "paused")))))
        owned_ids = set(session.scalars(select(Lead.id).where(Lead.owner_id.is_not(None),
                                                           Lead.status.in_(("assigned",
                                                                            "working")))))
        assert owned_ids and owned_ids <= enrolled
        per_rep = session.execute(select(Task.owner_id, func.count()).where(
            Task.status == "open", Task.automatic.is_(False)).group_by(Task.owner_id)).all()
        assert per_rep and max(n for _rep, n in per_rep) <= 40
        assert summary["cadences"]["emails_queued"] > 0  # type: ignore[index]
        assert count(session, Message) == summary["cadences"]["emails_queued"]  # type: ignore[index]

    with pytest.raises(Conflict, match="empty database"):
        build_demo(leads=10, seed=3, console=None)
