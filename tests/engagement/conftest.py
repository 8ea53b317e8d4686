"""An organisation with a sales team, reps, routing to them, and cadences installed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import Cadence
from leadflow.leads.models import Lead, LeadStatus
from leadflow.routing import service as routing_service
from leadflow.routing.models import Strategy
from leadflow.routing.schemas import RuleConditions, RuleIn, TeamPolicyIn
from leadflow.scoring.models import LeadScore
from leadflow.users import service as users_service
from leadflow.users.models import Role, Team, TeamKind, User


@dataclass
class Floor:
    team: Team
    reps: list[User]
    lead: User
    hot: Cadence
    warm: Cadence


def _user(session: Session, name: str, role: Role, team: Team, now: datetime) -> User:
    return users_service.create_user(session=session, email=f"{name}@example.com", name=name,
                                     role=role, password="correct-horse-battery",
                                     team_id=team.id, now=now)


@pytest.fixture
def floor(session: Session, now: datetime) -> Floor:
    team = users_service.create_team(session=session, name="Sales", kind=TeamKind.SALES,
                                     now=now)
    reps = [_user(session, f"rep{i}", Role.REP, team, now) for i in (1, 2)]
    lead = _user(session, "tl", Role.TEAM_LEAD, team, now)
    routing_service.save_team_policy(session=session, team_id=team.id, now=now,
                                     data=TeamPolicyIn(strategy=Strategy.ROUND_ROBIN))
    routing_service.create_rule(session=session, actor_id=None, now=now, data=RuleIn(
        name="All to sales", conditions=RuleConditions(), team_id=team.id))
    hot = cadences_service.install_preset(session=session, key="7in7", actor_id=None, now=now,
                                          auto_enroll=True, grades=["A+", "A"], priority=10)
    warm = cadences_service.install_preset(session=session, key="persistent6", actor_id=None,
                                           now=now, auto_enroll=True, priority=20)
    session.commit()
    return Floor(team, reps, lead, hot, warm)


def make_lead(session: Session, now: datetime, grade: str | None, **fields: Any) -> Lead:
    """A new lead due for routing, with a score of ``grade``."""
    fields.setdefault("name", "王伟")
    fields.setdefault("email", f"lead{session.scalar(select(func.count(Lead.id)))}@example.com")
    lead = Lead(created_at=fields.pop("created_at", now), updated_at=now, tags=[],
                custom_fields={}, route_due_at=now, status=LeadStatus.NEW, **fields)
    session.add(lead)
    session.flush()
    if grade:
        session.add(LeadScore(lead_id=lead.id, fit=0, engagement=0, score=0, grade=grade,
                              probability=0.3, is_mql=grade in ("A+", "A"),
                              first_grade=grade, ruleset_version=0, scored_at=now))
        session.flush()
    return lead


def routed(session: Session, now: datetime, grade: str, **fields: Any) -> tuple[Lead, User]:
    """A lead of ``grade`` routed (and so enrolled), with its rep."""
    lead = make_lead(session, now, grade, **fields)
    routing_service.route_due(session=session, now=now, lead_ids=[lead.id])
    session.refresh(lead)
    owner = session.get(User, lead.owner_id)
    assert owner is not None
    return lead, owner


def two_c_leads_of_one_rep(session: Session, now: datetime) -> tuple[Lead, Lead, User]:
    """Two C leads routed round-robin to the same rep (the other rep gets one between)."""
    first, rep = routed(session, now, "C")
    routed(session, now, "C")  # the other rep's
    second, rep2 = routed(session, now, "C")
    assert rep2.id == rep.id
    return first, second, rep
