"""Routing API: rules, team policies, rep profiles, pools, and what reps and lead managers
do with a lead (reject, return, claim, touch, transfer, reroute)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from leadflow import clock
from leadflow.deps import CurrentUser, SessionDep, commits_in_handler, require
from leadflow.leads import service as leads_service
from leadflow.leads.models import ActivityKind
from leadflow.routing import service
from leadflow.routing.models import Ownership
from leadflow.routing.schemas import (
    AbsenceIn,
    OwnedMatchOut,
    OwnershipOut,
    PoolIn,
    PresenceIn,
    RejectIn,
    RepProfileIn,
    RerouteIn,
    ReturnIn,
    RuleIn,
    RuleOrderIn,
    RuleOut,
    TeamPolicyIn,
    TouchIn,
    TransferIn,
)
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["routing"])
Manager = Annotated[User, Depends(require(Permission.ROUTING_MANAGE))]
Worker = Annotated[User, Depends(require(Permission.LEADS_WORK))]


def _ownership_out(session: SessionDep, lead_id: int) -> OwnershipOut:
    lead, own = service.ownership_of(session=session, lead_id=lead_id)
    return _out(lead_id, lead.owner_id, lead.team_id, lead.pool_id, str(lead.status), own,
                lead.protected_until)


def _out(lead_id: int, owner_id: int | None, team_id: int | None, pool_id: int | None,
         status: str, own: Ownership | None, protected_until: datetime | None) -> OwnershipOut:
    return OwnershipOut(lead_id=lead_id, owner_id=owner_id, team_id=team_id, pool_id=pool_id,
                        status=status, reason=own.reason if own else None,
                        sla_due_at=own.sla_due_at if own else None,
                        protected_until=protected_until)


@router.get("/routing/rules", response_model=list[RuleOut])
def list_rules(session: SessionDep, _user: Manager) -> list[RuleOut]:
    """The routing table in order (first active match wins)."""
    return [RuleOut.model_validate(r) for r in service.list_rules(session=session)]


@router.post("/routing/rules", response_model=RuleOut, status_code=201)
def create_rule(body: RuleIn, session: SessionDep, user: Manager) -> RuleOut:
    """Add a rule at the end of the table."""
    rule = service.create_rule(session=session, data=body, actor_id=user.id, now=clock.now())
    return RuleOut.model_validate(rule)


@router.put("/routing/rules/order", status_code=204)
def reorder_rules(body: RuleOrderIn, session: SessionDep, _user: Manager) -> Response:
    """Put the rules in a new order."""
    service.reorder_rules(session=session, rule_ids=body.rule_ids, now=clock.now())
    return Response(status_code=204)


@router.put("/routing/rules/{rule_id}", response_model=RuleOut)
def update_rule(rule_id: int, body: RuleIn, session: SessionDep, user: Manager) -> RuleOut:
    """Replace a rule."""
    rule = service.update_rule(session=session, rule_id=rule_id, data=body, actor_id=user.id,
                               now=clock.now())
    return RuleOut.model_validate(rule)


@router.delete("/routing/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, session: SessionDep, _user: Manager) -> Response:
    """Remove a rule."""
    service.delete_rule(session=session, rule_id=rule_id)
    return Response(status_code=204)


@router.put("/routing/teams/{team_id}/policy", status_code=204)
@commits_in_handler
def team_policy(team_id: int, body: TeamPolicyIn, session: SessionDep,
                _user: Manager) -> Response:
    """Set a team's strategy, capacities, SLA targets, pool and away policy."""
    service.save_team_policy(session=session, team_id=team_id, data=body, now=clock.now())
    return Response(status_code=204)


@router.put("/routing/reps/{user_id}/profile", status_code=204)
@commits_in_handler
def rep_profile(user_id: int, body: RepProfileIn, session: SessionDep,
                _user: Manager) -> Response:
    """Set a rep's capacity, weight, skills, hours and presence."""
    service.save_rep_profile(session=session, user_id=user_id, data=body, now=clock.now())
    return Response(status_code=204)


@router.post("/routing/reps/{user_id}/absences", status_code=201)
def add_absence(user_id: int, body: AbsenceIn, session: SessionDep,
                _user: Manager) -> dict[str, int]:
    """Book leave or a holiday for a rep."""
    return {"id": service.add_absence(session=session, user_id=user_id, data=body).id}


@router.put("/routing/presence", status_code=204)
@commits_in_handler
def presence(body: PresenceIn, session: SessionDep, user: Worker) -> Response:
    """Switch yourself to available, away or offline."""
    service.set_presence(session=session, user=user, presence=body.presence, now=clock.now())
    return Response(status_code=204)


@router.post("/routing/pools", status_code=201)
def create_pool(body: PoolIn, session: SessionDep, _user: Manager) -> dict[str, int]:
    """Create a lead pool with its claim and protection rules."""
    return {"id": service.save_pool(session=session, data=body, now=clock.now()).id}


@router.put("/routing/pools/{pool_id}", status_code=204)
def update_pool(pool_id: int, body: PoolIn, session: SessionDep, _user: Manager) -> Response:
    """Change a pool's rules."""
    service.save_pool(session=session, data=body, now=clock.now(), pool_id=pool_id)
    return Response(status_code=204)


@router.post("/routing/route")
@commits_in_handler
def route_now(session: SessionDep, _user: Manager) -> dict[str, object]:
    """Route the leads due now (one chunk); the worker does this continuously."""
    return service.route_due(session=session, now=clock.now()).as_dict()


@router.get("/leads/{lead_id}/ownership", response_model=OwnershipOut)
def ownership(lead_id: int, session: SessionDep, user: CurrentUser) -> OwnershipOut:
    """Who owns the lead (or which pool holds it), why, and its SLA and protection times."""
    leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    return _ownership_out(session, lead_id)


@router.post("/leads/{lead_id}/reject", response_model=OwnershipOut)
@commits_in_handler
def reject(lead_id: int, body: RejectIn, session: SessionDep, user: Worker) -> OwnershipOut:
    """Reject a mismatched lead: it goes to the triage queue with your reason."""
    service.reject_lead(session=session, lead_id=lead_id, user=user, reason=body.reason,
                        now=clock.now())
    return _ownership_out(session, lead_id)


@router.post("/leads/{lead_id}/return", response_model=OwnershipOut)
@commits_in_handler
def return_(lead_id: int, body: ReturnIn, session: SessionDep, user: Worker) -> OwnershipOut:
    """Return an immature lead to the nurture pool with a reason and a follow-up date."""
    service.return_lead(session=session, lead_id=lead_id, user=user, reason=body.reason,
                        follow_up_on=body.follow_up_on, now=clock.now())
    return _ownership_out(session, lead_id)


@router.post("/leads/{lead_id}/claim", response_model=OwnershipOut)
@commits_in_handler
def claim(lead_id: int, session: SessionDep, user: Worker) -> OwnershipOut:
    """Claim a lead from a pool, within the pool's daily and holding caps."""
    service.claim_lead(session=session, lead_id=lead_id, user=user, now=clock.now())
    return _ownership_out(session, lead_id)


@router.post("/leads/{lead_id}/touches", status_code=201)
@commits_in_handler
def touch(lead_id: int, body: TouchIn, session: SessionDep, user: Worker) -> dict[str, int]:
    """Log a call, email, message or meeting: the first one accepts the lead (stops the SLA
    clock) and each one extends the protection period."""
    try:
        kind = ActivityKind(body.kind)
    except ValueError:
        kind = ActivityKind.NOTE  # rejected below with the list of touch kinds
    activity = service.record_touch(session=session, lead_id=lead_id, user=user, kind=kind,
                                    summary=body.summary, now=clock.now())
    return {"id": activity.id}


@router.post("/leads/{lead_id}/reroute")
@commits_in_handler
def reroute(lead_id: int, body: RerouteIn, session: SessionDep,
            user: CurrentUser) -> dict[str, object]:
    """Send a lead through the rules again, or into a named team (lead managers)."""
    lead, _ = service.ownership_of(session=session, lead_id=lead_id)
    service.require_team_scope(user=user, team_ids=[lead.team_id, body.team_id]
                               if body.team_id else [lead.team_id])
    return service.reroute_lead(session=session, lead_id=lead_id, actor=user, now=clock.now(),
                                team_id=body.team_id).as_dict()


@router.post("/routing/transfer")
@commits_in_handler
def transfer(body: TransferIn, session: SessionDep, user: CurrentUser) -> dict[str, int]:
    """Give leads to a named rep (manual or bulk); every one restarts its clock."""
    target = session.get(User, body.to_user_id)
    teams = service.lead_teams(session=session, lead_ids=body.lead_ids)
    service.require_team_scope(user=user, team_ids=[*teams, target.team_id if target else None])
    moved = service.transfer_leads(session=session, lead_ids=body.lead_ids,
                                   to_user_id=body.to_user_id, actor=user, reason=body.reason,
                                   now=clock.now())
    return {"transferred": moved}


@router.get("/routing/conflicts", response_model=list[OwnedMatchOut])
def conflicts(
    session: SessionDep, _user: CurrentUser,
    phone: Annotated[str | None, Query(max_length=60)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    company: Annotated[str | None, Query(max_length=200)] = None,
) -> list[OwnedMatchOut]:
    """Is this person or company already someone's lead (撞单)? Owner names, no details."""
    return [OwnedMatchOut(lead_id=m.lead_id, owner_name=m.owner_name, team_name=m.team_name,
                          matched_on=m.matched_on)
            for m in service.ownership_conflicts(session=session, phone=phone, email=email,
                                                 company=company)]
