"""The rep's workspace: queue mode (Next claims the one task to work now; the task card with
the reason it is next, contact details, script, template and history; disposition buttons
with keyboard shortcuts; skip with a reason) and list mode (today's tasks by channel and
half-day)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow import clock
from leadflow.cadences import jobs as cadences_jobs
from leadflow.cadences import pages as cadences_pages
from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import Channel, Task, TaskKind
from leadflow.cadences.rules import Disposition
from leadflow.cadences.schemas import DispositionIn, SkipIn
from leadflow.deps import Csrf, DbId, FormDep, SessionDep, form_text, require_page
from leadflow.errors import InvalidInput, NotFound
from leadflow.leads import pages as leads_pages
from leadflow.messaging import rules as messaging_rules
from leadflow.queue import rules as queue_rules
from leadflow.queue import service as queue_service
from leadflow.queue.service import TaskCard
from leadflow.users.models import User
from leadflow.users.rules import Permission
from leadflow.web.render import (
    N_,
    flash,
    gettext,
    is_htmx,
    render,
    resolve_locale,
    user_timezone,
)

router = APIRouter(include_in_schema=False)

Worker = Annotated[User, Depends(require_page(Permission.LEADS_WORK))]

# More due tasks than this and the workspace offers a catch-up plan (a day's work today,
# the rest spread over the coming working days).
CATCH_UP_AT = 40
# Keyboard shortcuts of the disposition buttons, in button order.
SHORTCUTS = "1234567890"
# What the rep is asked to do, by channel.
ACTIONS: dict[str, str] = {
    Channel.CALL: N_("Call the lead"),
    Channel.EMAIL: N_("Send the email below"),
    Channel.SMS: N_("Send the text message below"),
    Channel.WECHAT: N_("Send the WeChat message below"),
    Channel.VOICEMAIL: N_("Call and leave a voicemail"),
    Channel.GHOST_CALL: N_("Call; hang up if the voicemail answers"),
    Channel.SOCIAL: N_("Reach out on a social network"),
}
KIND_ACTIONS: dict[str, str] = {TaskKind.CALLBACK: N_("Call back as promised")}
HALF_LABELS: dict[str, str] = {"morning": N_("Morning"), "afternoon": N_("Afternoon")}
UNGRADED = N_("ungraded")
_AGE = re.compile(r"(\d+) (min|h|days)")
_AGE_UNITS = {"min": N_("%(n)s min"), "h": N_("%(n)s h"), "days": N_("%(n)s days")}
# queue.rules.reason's sentences, matched to be said again in the viewer's language.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"new (?P<grade>\S+) lead, (?P<age>\d+ \w+) old: reach chance now "
                r"(?P<now>\d+%), (?P<day>\d+%) after a day"),
     N_("New %(grade)s lead, %(age)s old: reach chance now %(now)s, %(day)s after a day")),
    (re.compile(r"(?P<grade>\S+) lead engaged in the last hour.*"),
     N_("%(grade)s lead engaged in the last hour: strike while it is warm")),
    (re.compile(r"never contacted, grade (?P<grade>\S+)"),
     N_("Never contacted, grade %(grade)s")),
    (re.compile(r"(?P<channel>\w+) step, attempt (?P<attempt>\d+) of (?P<budget>\d+), "
                r"grade (?P<grade>\S+), due (?P<age>\d+ \w+) ago"),
     N_("%(channel)s step, attempt %(attempt)s of %(budget)s, grade %(grade)s, due %(age)s "
        "ago")),
    (re.compile(r"(?P<channel>\w+) step, attempt (?P<attempt>\d+) of (?P<budget>\d+), "
                r"grade (?P<grade>\S+)"),
     N_("%(channel)s step, attempt %(attempt)s of %(budget)s, grade %(grade)s")),
)
_CALLBACK_REASON = N_("Call back requested for %(when)s")


def _own_task(task_id: DbId, session: SessionDep, user: Worker) -> Task:
    """A task of the rep's (owned or claimed), else 404."""
    task = session.get(Task, task_id)
    if task is None or user.id not in (task.owner_id, task.claimed_by_id):
        raise NotFound(f"task {task_id} not found")
    return task


OwnTask = Annotated[Task, Depends(_own_task)]


# --------------------------------------------------------------------------- the card


def reason_text(card: TaskCard, locale: str, user: User) -> str:
    """Why the task is next (``queue.rules.reason``), in the viewer's language."""

    def t(message: str) -> str:
        return gettext(locale, message)

    if card.bucket == queue_rules.Bucket.CALLBACK:
        when = card.due_at.astimezone(user_timezone(user)).strftime("%Y-%m-%d %H:%M")
        return t(_CALLBACK_REASON) % {"when": when}
    for pattern, message in _REASONS:
        match = pattern.fullmatch(card.reason)
        if match is None:
            continue
        params = match.groupdict()
        if params.get("grade") == "ungraded":
            params["grade"] = t(UNGRADED)
        if "age" in params and (age := _AGE.fullmatch(params["age"])):
            params["age"] = t(_AGE_UNITS[age[2]]) % {"n": age[1]}
        if "channel" in params:
            params["channel"] = t(cadences_pages.CHANNEL_LABELS.get(params["channel"],
                                                                    params["channel"]))
        return t(message) % params
    return card.reason


def _filled(source: str, card: TaskCard, user: User) -> str:
    """A step's template with the lead's variables filled in (as typed when it breaks)."""
    variables = messaging_rules.lead_variables(name=card.lead_name, company=card.company,
                                               title=card.title, city=None,
                                               rep_name=user.name, rep_email=user.email)
    try:
        return messaging_rules.render_template(source, variables)
    except messaging_rules.RenderError:
        return source


@dataclass(frozen=True, slots=True)
class Done:
    """What the rep just recorded, said above the next card."""

    lead_name: str
    what: str


def _card_context(request: Request, user: User, card: TaskCard, *, mode: str,
                  error: str | None = None, values: Mapping[str, str] | None = None
                  ) -> dict[str, Any]:
    locale = resolve_locale(request, user)
    return {
        "card": card, "mode": mode, "error": error, "values": values or {},
        "reason": reason_text(card, locale, user),
        "action": KIND_ACTIONS.get(card.kind) or ACTIONS.get(card.channel, card.channel),
        "subject": _filled(card.subject, card, user), "body": _filled(card.body, card, user),
        "buttons": [(d, SHORTCUTS[i] if i < len(SHORTCUTS) else "")
                    for i, d in enumerate(card.dispositions)],
        "timeline_labels": leads_pages.TIMELINE_LABELS,
    }


def _workspace(request: Request, session: Session, user: User, now: datetime,
               card: TaskCard | None, *, done: Done | None = None, error: str | None = None,
               values: Mapping[str, str] | None = None, pressed: bool = False,
               status_code: int = 200) -> HTMLResponse:
    """The workspace: the card in hand, else the Next panel (or, after Next found nothing,
    the empty queue). A fragment for HTMX, the whole page otherwise."""
    context: dict[str, Any] = {"done": done, "pressed": pressed, "card": None,
                               **cadences_pages.LABELS}
    if card is not None:
        context.update(_card_context(request, user, card, mode="queue", error=error,
                                     values=values))
    else:
        context["summary"] = queue_service.summary(session=session, user=user, now=now)
        context["catch_up_at"] = CATCH_UP_AT
    template = "queue/_workspace.html" if is_htmx(request) else "queue/work.html"
    return render(request, template, context, user=user, status_code=status_code)


@router.get("/work", response_class=HTMLResponse)
def work_page(request: Request, session: SessionDep, user: Worker) -> HTMLResponse:
    """The rep's workspace: the task in hand, or the Next button."""
    now = clock.now()
    card = queue_service.held_task(session=session, user=user, now=now)
    return _workspace(request, session, user, now, card,
                      pressed=request.query_params.get("empty") == "1")


@router.post("/work/next", response_model=None)
def work_next(request: Request, session: SessionDep, user: Worker,
              _csrf: Csrf) -> HTMLResponse | RedirectResponse:
    """Claim the best task to work now (the one in hand, if any)."""
    now = clock.now()
    card = queue_service.next_task(session=session, user=user, now=now)
    if not is_htmx(request):
        return RedirectResponse("/work" if card else "/work?empty=1", status_code=303)
    return _workspace(request, session, user, now, card, pressed=True)


def _after(request: Request, session: Session, user: User, done: Done,
           mode: str) -> HTMLResponse | RedirectResponse:
    """After a disposition or a skip: the queue moves on to the next task (list mode goes
    back to the list)."""
    if mode == "list":
        flash(request, N_("Recorded. The cadence moved on."))
        return RedirectResponse("/work/list", status_code=303)
    now = clock.now()
    card = queue_service.next_task(session=session, user=user, now=now)
    if not is_htmx(request):
        flash(request, N_("Recorded. The cadence moved on."))
        return RedirectResponse("/work" if card else "/work?empty=1", status_code=303)
    return _workspace(request, session, user, now, card, done=done, pressed=True)


def _refused(request: Request, session: Session, user: User, task: Task, mode: str,
             message: str, values: Mapping[str, str]) -> HTMLResponse:
    """The same card again with the refusal and what the rep typed."""
    now = clock.now()
    card = queue_service.task_card(session=session, task_id=task.id, now=now)
    if mode == "list" and not is_htmx(request):
        context = {**_card_context(request, user, card, mode=mode, error=message,
                                   values=values), **cadences_pages.LABELS}
        return render(request, "queue/task.html", context, user=user, status_code=422)
    return _workspace(request, session, user, now, card, error=message, values=values,
                      status_code=422)


def _callback_at(text: str, user: User) -> datetime | None:
    """A ``datetime-local`` value, read in the rep's time zone."""
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(N_("Enter the time to call back, such as 2026-12-01 15:00."),
                           field="callback_at") from None
    return local.replace(tzinfo=user_timezone(user)) if local.tzinfo is None else local


def _mode(form: FormData) -> str:
    return "list" if form_text(form, "mode") == "list" else "queue"


@router.post("/work/tasks/{task_id}/disposition", response_model=None)
def work_disposition(request: Request, session: SessionDep, user: Worker, _csrf: Csrf,
                     task: OwnTask, form: FormDep) -> HTMLResponse | RedirectResponse:
    """Record what happened; the cadence moves on and the next task comes up."""
    now = clock.now()
    mode = _mode(form)
    values = {"note": form_text(form, "note"), "callback_at": form_text(form, "callback_at"),
              "disposition": form_text(form, "disposition")}
    try:
        if values["disposition"] not in set(Disposition):
            raise InvalidInput(N_("Choose what happened."), field="disposition")
        callback_at = _callback_at(values["callback_at"], user)
        if values["disposition"] == Disposition.CALL_BACK:
            if callback_at is None:
                raise InvalidInput(N_("Say when to call back."), field="callback_at")
            if callback_at <= now:
                raise InvalidInput(N_("The callback must be in the future."),
                                   field="callback_at")
        else:
            callback_at = None
        data = DispositionIn(disposition=Disposition(values["disposition"]),
                             note=values["note"], callback_at=callback_at)
    except InvalidInput as exc:
        return _refused(request, session, user, task, mode, exc.message, values)
    except ValidationError:
        return _refused(request, session, user, task, mode, N_("The note is too long."),
                        values)
    lead_name = queue_service.task_card(session=session, task_id=task.id, now=now).lead_name
    cadences_service.record_disposition(session=session, task_id=task.id, user=user,
                                        data=data, now=now)
    label = cadences_pages.DISPOSITION_LABELS[data.disposition]
    return _after(request, session, user, Done(lead_name or "", label), mode)


@router.post("/work/tasks/{task_id}/skip", response_model=None)
def work_skip(request: Request, session: SessionDep, user: Worker, _csrf: Csrf,
              task: OwnTask, form: FormDep) -> HTMLResponse | RedirectResponse:
    """Skip the task for an hour; the reason is required and goes on the lead's timeline."""
    now = clock.now()
    mode = _mode(form)
    values = {"reason": form_text(form, "reason"), "note": form_text(form, "note")}
    try:
        data = SkipIn(reason=values["reason"])
    except ValidationError:
        return _refused(request, session, user, task, mode,
                        N_("Say why you skip this task (three characters or more)."), values)
    lead_name = queue_service.task_card(session=session, task_id=task.id, now=now).lead_name
    cadences_service.skip_task(session=session, task_id=task.id, user=user,
                               reason=data.reason, now=now)
    return _after(request, session, user, Done(lead_name or "", N_("Skipped")), mode)


@router.post("/work/tasks/{task_id}/release", response_model=None)
def work_release(request: Request, session: SessionDep, user: Worker, _csrf: Csrf,
                 task: OwnTask) -> HTMLResponse | RedirectResponse:
    """Put the task in hand back in the queue unchanged (the rep steps away)."""
    queue_service.release(session=session, task_id=task.id, user=user)
    if not is_htmx(request):
        return RedirectResponse("/work", status_code=303)
    return _workspace(request, session, user, clock.now(), None)


@router.post("/work/catch-up")
def work_catch_up(request: Request, session: SessionDep, user: Worker,
                  _csrf: Csrf) -> RedirectResponse:
    """Spread an overdue backlog: a day's work stays due today, the rest moves to the coming
    working days in queue order."""
    plan = cadences_jobs.plan_catch_up(session=session, user_id=user.id, now=clock.now())
    moved = sum(len(ids) for ids in plan.later.values())
    flash(request, N_("Your catch-up plan is ready: the most important tasks stay for today, "
                      "the rest moved to the coming working days.") if moved
          else N_("Nothing to spread: today's tasks fit in a day."))
    return RedirectResponse("/work", status_code=303)


# --------------------------------------------------------------------------- list mode

# Channels in the order list mode shows them: calls first, then writing, then the rest.
CHANNEL_ORDER = (Channel.CALL, Channel.VOICEMAIL, Channel.GHOST_CALL, Channel.EMAIL,
                 Channel.SMS, Channel.WECHAT, Channel.SOCIAL)


@router.get("/work/list", response_class=HTMLResponse)
def work_list(request: Request, session: SessionDep, user: Worker) -> HTMLResponse:
    """Today's tasks by channel, morning and afternoon (overdue ones count as morning)."""
    grouped = queue_service.todays_tasks(session=session, user=user, now=clock.now(),
                                         timezone=user_timezone(user).key)
    groups = [(ch, grouped[ch]) for ch in CHANNEL_ORDER if ch in grouped]
    context = {"groups": groups, "half_labels": HALF_LABELS,
               "total": sum(len(items) for _, halves in groups for items in halves.values()),
               **cadences_pages.LABELS}
    return render(request, "queue/list.html", context, user=user)


@router.get("/work/tasks/{task_id}", response_class=HTMLResponse)
def work_task(request: Request, session: SessionDep, user: Worker,
              task: OwnTask) -> HTMLResponse:
    """One task's card, opened from list mode ("work this")."""
    if task.done_at is not None:
        flash(request, N_("This task is done already."))
    card = queue_service.task_card(session=session, task_id=task.id, now=clock.now())
    context = {**_card_context(request, user, card, mode="list"), **cadences_pages.LABELS}
    return render(request, "queue/task.html", context, user=user)
