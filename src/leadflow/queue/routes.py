"""The queue API: the next task, recording what happened, skipping with a reason, and
today's list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from leadflow import clock
from leadflow.cadences import service as cadences_service
from leadflow.cadences.schemas import DispositionIn, SkipIn
from leadflow.config import get_settings
from leadflow.deps import SessionDep, commits_in_handler, require
from leadflow.queue import service
from leadflow.queue.service import ListItem, TaskCard
from leadflow.users.models import User
from leadflow.users.rules import Permission

router = APIRouter(prefix="/api/v1", tags=["queue"])
Worker = Annotated[User, Depends(require(Permission.LEADS_WORK))]


@router.get("/queue/next", response_model=TaskCard,
            responses={204: {"description": "nothing to do now"}})
@commits_in_handler
def next_task(session: SessionDep, user: Worker) -> TaskCard | Response:
    """Claim the single best task to work now (204 when the queue is empty).

    Safe to repeat: until an outcome is recorded (or the task skipped or released), the
    same task comes back.
    """
    card = service.next_task(session=session, user=user, now=clock.now())
    if card is None:
        return Response(status_code=204)
    return card


@router.post("/queue/release/{task_id}", status_code=204)
def release(task_id: int, session: SessionDep, user: Worker) -> Response:
    """Put a claimed task back unchanged."""
    service.release(session=session, task_id=task_id, user=user)
    return Response(status_code=204)


@router.get("/queue/today", response_model=dict[str, dict[str, list[ListItem]]])
def today(session: SessionDep, user: Worker) -> dict[str, dict[str, list[ListItem]]]:
    """List mode: today's tasks by channel, then morning / afternoon."""
    return service.todays_tasks(session=session, user=user, now=clock.now(),
                                timezone=get_settings().default_timezone)


@router.post("/tasks/{task_id}/disposition",
             response_model=cadences_service.DispositionResult)
@commits_in_handler
def disposition(task_id: int, body: DispositionIn, session: SessionDep,
                user: Worker) -> cadences_service.DispositionResult:
    """Record what happened; the cadence moves on."""
    return cadences_service.record_disposition(session=session, task_id=task_id, user=user,
                                               data=body, now=clock.now())


@router.post("/tasks/{task_id}/skip", status_code=204)
@commits_in_handler
def skip(task_id: int, body: SkipIn, session: SessionDep, user: Worker) -> Response:
    """Skip a task for an hour; the reason is logged on the lead's timeline."""
    cadences_service.skip_task(session=session, task_id=task_id, user=user,
                               reason=body.reason, now=clock.now())
    return Response(status_code=204)
