"""Scoring API: engagement events, a lead's score with reasons, flags, the rule set, models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends

from leadflow import clock
from leadflow.deps import CurrentUser, SessionDep, commits_in_handler, require
from leadflow.leads import service as leads_service
from leadflow.scoring import jobs
from leadflow.scoring import service as scoring_service
from leadflow.scoring.rules import ScoreDecision
from leadflow.scoring.schemas import ActivityIn, FlagIn, ReasonOut, ScoreOut
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["scoring"])
Capturer = Annotated[User, Depends(require(Permission.LEADS_CAPTURE))]
Reader = Annotated[User, Depends(require(Permission.SCORING_READ))]
Admin = Annotated[User, Depends(require(Permission.SCORING_MANAGE))]


def _score_out(
    lead_id: int, decision: ScoreDecision, ruleset_version: int, model_id: int | None,
    scored_at: Any,
) -> ScoreOut:
    return ScoreOut(
        lead_id=lead_id, grade=decision.grade, score=decision.score, fit=decision.fit,
        engagement=decision.engagement, probability=decision.probability,
        is_mql=decision.is_mql, ruleset_version=ruleset_version, model_id=model_id,
        scored_at=scored_at,
        reasons=[ReasonOut(source=r.source, text=r.text, points=r.points)
                 for r in decision.reasons],
    )


@router.post("/leads/{lead_id}/activities", response_model=ScoreOut, status_code=201)
@commits_in_handler
def record_activity(
    lead_id: int, body: ActivityIn, session: SessionDep, user: Capturer
) -> ScoreOut:
    """Record what a lead did (webinar, class, visit …); answers with its new score."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    now = clock.now()
    _, result = scoring_service.record_activity(
        session=session, lead=lead, activity=body, actor_id=user.id, now=now
    )
    return _score_out(lead.id, result.decision, result.ruleset_version, result.model_id, now)


@router.get("/leads/{lead_id}/score", response_model=ScoreOut)
def lead_score(lead_id: int, session: SessionDep, user: CurrentUser) -> ScoreOut:
    """A lead's score as of now, with every reason (rules and learned contributions)."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    now = clock.now()
    result = scoring_service.explain(session=session, lead_id=lead.id, now=now)
    return _score_out(lead.id, result.decision, result.ruleset_version, result.model_id, now)


@router.post("/leads/{lead_id}/score/flags", status_code=201)
def flag_grade(lead_id: int, body: FlagIn, session: SessionDep,
               user: CurrentUser) -> dict[str, int]:
    """Report that a lead's grade looks wrong (feeds the calibration report)."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    flag = scoring_service.flag_grade(session=session, lead=lead, user_id=user.id, flag=body,
                                      now=clock.now())
    return {"id": flag.id}


@router.get("/scoring/ruleset")
def get_ruleset(session: SessionDep, user: Reader) -> dict[str, Any]:
    """The rule set in force and its version."""
    ruleset = scoring_service.current_ruleset(session=session)
    return {"version": ruleset.version, "document": ruleset.document.model_dump(mode="json")}


@router.put("/scoring/ruleset", status_code=201)
def put_ruleset(
    session: SessionDep, user: Admin,
    document: Annotated[dict[str, Any], Body()],
    note: Annotated[str, Body(max_length=500)] = "",
) -> dict[str, int]:
    """Save a new rule-set version (then re-score to apply it to stored leads)."""
    parsed = scoring_service.validate_ruleset(document)
    row = scoring_service.save_ruleset(session=session, document=parsed, note=note,
                                       actor_id=user.id, now=clock.now())
    return {"version": row.version}


@router.get("/scoring/models")
def list_models(session: SessionDep, user: Reader) -> list[dict[str, Any]]:
    """Trained model versions with their metrics."""
    return [
        {"id": m.id, "kind": m.kind, "source": m.source, "active": m.is_active,
         "n_rows": m.n_rows, "n_positive": m.n_positive, "metrics": m.metrics,
         "created_at": m.created_at}
        for m in scoring_service.model_versions(session=session)
    ]


@router.post("/scoring/rescore", status_code=202)
def rescore(background: BackgroundTasks, user: Admin) -> dict[str, str]:
    """Re-score every lead in the background (after a rule or model change)."""
    background.add_task(jobs.rescore_all, now=clock.now())
    return {"status": "started"}
