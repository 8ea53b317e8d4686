"""The cadence API: cadences and nurture programs, presets, and enrolling a lead."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from leadflow import clock
from leadflow.cadences import service
from leadflow.cadences.models import Cadence, EnrollmentStatus, ExitReason
from leadflow.cadences.presets import PRESETS
from leadflow.cadences.schemas import CadenceIn, CadenceOut, EnrollIn, StepOut
from leadflow.deps import SessionDep, require
from leadflow.errors import NotFound
from leadflow.leads import service as leads_service
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["cadences"])
Editor = Annotated[User, Depends(require(Permission.CADENCES_MANAGE))]
Worker = Annotated[User, Depends(require(Permission.LEADS_WORK))]


def _out(session: SessionDep, cadence: Cadence) -> CadenceOut:
    out = CadenceOut.model_validate(cadence)
    out.steps = [StepOut.model_validate(s)
                 for s in service.steps_of(session=session, cadence_id=cadence.id)]
    return out


@router.get("/cadences", response_model=list[CadenceOut])
def list_cadences(session: SessionDep, _user: Worker) -> list[CadenceOut]:
    """Every cadence and nurture program with its steps."""
    return [_out(session, c) for c in service.list_cadences(session=session)]


@router.get("/cadences/presets")
def presets(_user: Editor) -> list[dict[str, object]]:
    """The brief's ready-made cadences and nurture programs."""
    return [{"key": p.key, "name": p.name, "description": p.description,
             "purpose": p.purpose.value, "steps": len(p.steps)} for p in PRESETS]


@router.post("/cadences/presets/{key}", response_model=CadenceOut, status_code=201)
def install_preset(key: str, session: SessionDep, user: Editor) -> CadenceOut:
    """Create a cadence from a preset (edit it afterwards)."""
    cadence = service.install_preset(session=session, key=key, actor_id=user.id,
                                     now=clock.now())
    return _out(session, cadence)


@router.post("/cadences", response_model=CadenceOut, status_code=201)
def create_cadence(body: CadenceIn, session: SessionDep, user: Editor) -> CadenceOut:
    """Create a cadence or nurture program."""
    cadence = service.save_cadence(session=session, data=body, actor_id=user.id,
                                   now=clock.now())
    return _out(session, cadence)


@router.get("/cadences/{cadence_id}", response_model=CadenceOut)
def get_cadence(cadence_id: int, session: SessionDep, _user: Worker) -> CadenceOut:
    """One cadence with its steps."""
    return _out(session, service.get_cadence(session=session, cadence_id=cadence_id))


@router.put("/cadences/{cadence_id}", response_model=CadenceOut)
def update_cadence(cadence_id: int, body: CadenceIn, session: SessionDep,
                   user: Editor) -> CadenceOut:
    """Replace a cadence and its steps; enrolled leads keep their position."""
    cadence = service.save_cadence(session=session, data=body, actor_id=user.id,
                                   now=clock.now(), cadence_id=cadence_id)
    return _out(session, cadence)


@router.post("/leads/{lead_id}/enrollment", status_code=201)
def enroll(lead_id: int, body: EnrollIn, session: SessionDep,
           user: Worker) -> dict[str, object]:
    """Put a lead in a cadence by hand (ending the one it is in)."""
    leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    e = service.enroll(session=session, lead_id=lead_id, cadence_id=body.cadence_id,
                       user=user, now=clock.now())
    return {"enrollment_id": e.id, "cadence_id": e.cadence_id, "arm_id": e.arm_id}


@router.delete("/leads/{lead_id}/enrollment", status_code=204)
def unenroll(lead_id: int, session: SessionDep, user: Worker) -> Response:
    """Take a lead out of its cadence."""
    leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    if not service.end_enrollment(session=session, lead_id=lead_id, reason=ExitReason.MANUAL,
                                  now=clock.now(), actor_id=user.id):
        raise NotFound("the lead is not in a cadence")
    return Response(status_code=204)


@router.get("/leads/{lead_id}/enrollment")
def enrollment(lead_id: int, session: SessionDep, user: Worker) -> dict[str, object]:
    """The lead's live enrollment: cadence, step, attempts, pause."""
    leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    e = service.live_enrollment(session=session, lead_id=lead_id)
    if e is None:
        raise NotFound("the lead is not in a cadence")
    return {"enrollment_id": e.id, "cadence_id": e.cadence_id, "status": e.status,
            "paused": e.status == EnrollmentStatus.PAUSED, "paused_until": e.paused_until,
            "step": e.next_position, "attempts": e.attempts,
            "attempt_budget": e.attempt_budget, "arm_id": e.arm_id}
