"""Cadence pages: the list of cadences and nurture programs with the brief's presets, the
editor (settings, auto-enroll conditions, exit conditions and the steps table), and the lead
page's cadence card (enroll by hand, stop)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow import clock
from leadflow.cadences import rules as cadence_rules
from leadflow.cadences import service as cadences_service
from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Channel,
    Enrollment,
    ExitReason,
    Maturity,
    Purpose,
    Task,
    TaskStatus,
)
from leadflow.cadences.presets import PRESETS
from leadflow.cadences.schemas import CadenceIn
from leadflow.deps import Csrf, DbId, FormDep, PageUser, SessionDep, form_text, require_page
from leadflow.errors import InvalidInput, NotFound, PermissionDenied
from leadflow.leads import service as leads_service
from leadflow.leads.models import Lead
from leadflow.routing import boards as routing_boards
from leadflow.routing.models import LeadPool, PoolKind
from leadflow.scoring.schemas import GRADES
from leadflow.users.models import User
from leadflow.users.rules import Permission, has_permission
from leadflow.web.render import N_, flash, render

router = APIRouter(include_in_schema=False)

Editor = Annotated[User, Depends(require_page(Permission.CADENCES_MANAGE))]

CHANNEL_LABELS: dict[str, str] = {
    Channel.CALL: N_("Call"), Channel.EMAIL: N_("Email"), Channel.SMS: N_("SMS"),
    Channel.WECHAT: N_("WeChat"), Channel.VOICEMAIL: N_("Voicemail"),
    Channel.GHOST_CALL: N_("Ghost call"), Channel.SOCIAL: N_("Social"),
}
DISPOSITION_LABELS: dict[str, str] = {
    cadence_rules.Disposition.CONNECTED: N_("Connected"),
    cadence_rules.Disposition.NO_ANSWER: N_("No answer"),
    cadence_rules.Disposition.BUSY: N_("Busy"),
    cadence_rules.Disposition.VOICEMAIL: N_("Voicemail left"),
    cadence_rules.Disposition.WRONG_NUMBER: N_("Wrong number"),
    cadence_rules.Disposition.NOT_INTERESTED: N_("Not interested"),
    cadence_rules.Disposition.CALL_BACK: N_("Call back"),
    cadence_rules.Disposition.MEETING_BOOKED: N_("Meeting booked"),
    cadence_rules.Disposition.QUALIFIED: N_("Qualified"),
    cadence_rules.Disposition.DISQUALIFIED: N_("Disqualified"),
    cadence_rules.Disposition.SENT: N_("Sent"),
}
EXIT_LABELS: dict[str, str] = {
    ExitReason.REPLIED: N_("Replied"), ExitReason.MEETING_BOOKED: N_("Meeting booked"),
    ExitReason.QUALIFIED: N_("Qualified"), ExitReason.DISQUALIFIED: N_("Disqualified"),
    ExitReason.UNSUBSCRIBED: N_("Unsubscribed"), ExitReason.BOUNCED: N_("Email bounced"),
    ExitReason.NOT_INTERESTED: N_("Not interested"),
    ExitReason.WRONG_NUMBER: N_("Wrong number"), ExitReason.UNREACHABLE: N_("Unreachable"),
    ExitReason.COMPLETED: N_("Completed"), ExitReason.OWNER_CHANGED: N_("Owner changed"),
    ExitReason.OUT_OF_OFFICE: N_("Out of office"), ExitReason.REP_AWAY: N_("Rep away"),
    ExitReason.MANUAL: N_("Stopped by hand"), ExitReason.PROMOTED: N_("Promoted to sales"),
}
# The conditions an editor may tick: the signals that end an enrollment.
EXIT_CHOICES = (*cadence_rules.DEFAULT_EXITS, ExitReason.PROMOTED)
TASK_STATUS_LABELS: dict[str, str] = {
    TaskStatus.SCHEDULED: N_("Scheduled"), TaskStatus.OPEN: N_("Due"),
    TaskStatus.CLAIMED: N_("On a rep's screen"), TaskStatus.DONE: N_("Done"),
    TaskStatus.CANCELLED: N_("Cancelled"),
}
PURPOSE_LABELS: dict[str, str] = {Purpose.SALES: N_("Sales cadence"),
                                  Purpose.NURTURE: N_("Nurture program")}
MATURITY_LABELS: dict[str, str] = {Maturity.WARM: N_("Warm"), Maturity.COLD: N_("Cold")}
PRESET_LABELS: dict[str, tuple[str, str]] = {
    "7in7": (N_("7 touches in 7 days"),
             N_("Speed-to-lead for hot leads: call at once, then a touch a day across "
                "channels.")),
    "9in18": (N_("9 touches in 18 days"),
              N_("Warm leads: 3–4 attempts in the first 4–5 days, then spaced about 5 days.")),
    "18in35": (N_("18 touches in 35 days"),
               N_("Enterprise accounts: a long, multi-channel sequence.")),
    "persistent6": (N_("Persistent 6"),
                    N_("3–4 attempts in the first 4–5 days, then every ~5 days; 6 attempts "
                       "before closing as unreachable.")),
    "nurture_warm": (N_("Warm nurture: weekly topic email"),
                     N_("Interested, researching leads: one email a week on the topic they "
                        "cared about.")),
    "nurture_cold": (N_("Cold nurture: monthly digest"),
                     N_("Long-followed leads with no interest yet: one email a month.")),
}
LABELS: dict[str, Any] = {
    "channel_labels": CHANNEL_LABELS, "disposition_labels": DISPOSITION_LABELS,
    "exit_labels": EXIT_LABELS, "task_status_labels": TASK_STATUS_LABELS,
    "purpose_labels": PURPOSE_LABELS, "maturity_labels": MATURITY_LABELS,
}

# The schema's own refusals, listed so they get translated.
_SCHEMA_MESSAGES = (
    N_("the window must end after it starts"),
    N_("only email, SMS and WeChat steps can send themselves"),
    N_("nurture programs send by themselves: every step is automatic"),
    N_("steps must be in day order"),
)
FIELD_LABELS: dict[str, str] = {
    "name": N_("Name"), "description": N_("Description"), "purpose": N_("Kind"),
    "grades": N_("Grades"), "team_ids": N_("Teams"), "product_lines": N_("Product lines"),
    "priority": N_("Priority"), "attempt_budget": N_("Attempt budget"),
    "exit_on": N_("Exit conditions"), "out_of_office_days": N_("Out-of-office pause (days)"),
    "pool_id": N_("Pool"), "maturity": N_("Maturity"), "topic": N_("Topic"),
    "steps": N_("Steps"), "day_offset": N_("Day"), "window_start": N_("From"),
    "window_end": N_("Until"), "channel": N_("Channel"), "automatic": N_("Automatic"),
    "subject": N_("Subject"), "body": N_("Body"), "script": N_("Script"),
}
_RANGES: dict[str, tuple[str, str]] = {
    "day_offset": ("0", "365"), "priority": ("0", "10000"), "attempt_budget": ("1", "50"),
    "out_of_office_days": ("1", "60"), "window_start": ("00:00", "24:00"),
    "window_end": ("00:00", "24:00"),
}
_STEP_KEY = re.compile(r"steps-(\d{1,3})-(\w+)")
_STEP_FIELDS = ("day_offset", "window_start", "window_end", "channel", "subject", "body",
                "script")
_SPLIT = re.compile(r"[,，、;；\n]")
_HHMM = re.compile(r"(\d{1,2})[:：](\d{2})")


# --------------------------------------------------------------------------- permissions


def _viewer(user: PageUser) -> User:
    """Reps read the cadences they work; cadence managers edit them."""
    if not (has_permission(user.role, Permission.CADENCES_MANAGE)
            or has_permission(user.role, Permission.LEADS_WORK)):
        raise PermissionDenied(f"your role ({user.role}) may not {Permission.CADENCES_MANAGE}")
    return user


Viewer = Annotated[User, Depends(_viewer)]


def _cadence(cadence_id: DbId, session: SessionDep) -> Cadence:
    return cadences_service.get_cadence(session=session, cadence_id=cadence_id)


CadenceDep = Annotated[Cadence, Depends(_cadence)]


# --------------------------------------------------------------------------- the list


@dataclass(frozen=True, slots=True)
class CadenceRow:
    """One line of the cadence list."""

    cadence: Cadence
    steps: int
    channels: list[str]
    live: int


def _rows(session: Session, purpose: Purpose) -> list[CadenceRow]:
    cadences = cadences_service.list_cadences(session=session, purpose=purpose)
    ids = [c.id for c in cadences]
    channels: dict[int, list[str]] = {i: [] for i in ids}
    live: dict[int, int] = {}
    if ids:
        for cadence_id, channel in session.execute(
                select(CadenceStep.cadence_id, CadenceStep.channel)
                .where(CadenceStep.cadence_id.in_(ids)).order_by(CadenceStep.position)):
            channels[cadence_id].append(channel)
        live = dict(session.execute(
            select(Enrollment.cadence_id, func.count())
            .where(Enrollment.cadence_id.in_(ids),
                   Enrollment.status.in_(cadences_service.LIVE))
            .group_by(Enrollment.cadence_id)).all())
    order = [str(ch) for ch in Channel]
    return [CadenceRow(c, len(channels[c.id]), sorted(set(channels[c.id]), key=order.index),
                       live.get(c.id, 0)) for c in cadences]


def _list_page(request: Request, session: Session, user: User,
               purposes: tuple[Purpose, ...]) -> HTMLResponse:
    context = {
        "sections": [(p, _rows(session, p)) for p in purposes],
        "presets": [p for p in PRESETS if p.purpose in purposes],
        "preset_labels": PRESET_LABELS, "team_names": {
            t.id: t.name for t in routing_boards.teams(session=session)},
        "pool_names": routing_boards.pool_names(session=session),
        "nurture_only": purposes == (Purpose.NURTURE,), **LABELS,
    }
    return render(request, "cadences/list.html", context, user=user)


@router.get("/cadences", response_class=HTMLResponse)
def cadences_page(request: Request, session: SessionDep, user: Viewer) -> HTMLResponse:
    """Sales cadences and nurture programs, with the brief's presets to install."""
    return _list_page(request, session, user, (Purpose.SALES, Purpose.NURTURE))


@router.get("/nurture", response_class=HTMLResponse)
def nurture_page(request: Request, session: SessionDep, user: Viewer) -> HTMLResponse:
    """Nurture programs only (the same editor, with purpose "nurture")."""
    return _list_page(request, session, user, (Purpose.NURTURE,))


@router.post("/cadences/presets/{key}")
def preset_install(key: str, request: Request, session: SessionDep, user: Editor,
                   _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Install one of the brief's presets (switched on, enrolling by hand until edited)."""
    try:
        cadence = cadences_service.install_preset(
            session=session, key=key, actor_id=user.id, now=clock.now(),
            name=form_text(form, "name") or None)
    except InvalidInput:
        flash(request, N_("A cadence with this name exists already: give the copy another "
                          "name."), "error")
        return RedirectResponse("/cadences#presets", status_code=303)
    flash(request, N_("The preset was installed. Review its steps and conditions."))
    return RedirectResponse(f"/cadences/{cadence.id}", status_code=303)


# --------------------------------------------------------------------------- the editor


@dataclass(slots=True)
class FormError:
    """A refusal of the editor, placed on its field (and step row)."""

    field: str
    message: str
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    step: int | None = None


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _values_of(cadence: Cadence, steps: list[CadenceStep]) -> dict[str, Any]:
    """A stored cadence as the editor shows it (all text, like a submitted form)."""
    cond = cadence.conditions or {}
    return {
        "name": cadence.name, "purpose": cadence.purpose, "description": cadence.description,
        "is_active": cadence.is_active, "auto_enroll": cadence.auto_enroll,
        "grades": list(cond.get("grades") or ()),
        "team_ids": [str(t) for t in cond.get("team_ids") or ()],
        "product_lines": ", ".join(cond.get("product_lines") or ()),
        "priority": str(cadence.priority), "attempt_budget": str(cadence.attempt_budget),
        "exit_on": list(cadence.exit_on or (e.value for e in cadence_rules.DEFAULT_EXITS)),
        "out_of_office_days": str(cadence.out_of_office_days),
        "pool_id": str(cadence.pool_id or ""), "maturity": cadence.maturity or "",
        "topic": cadence.topic or "",
        "steps": [{"day_offset": str(s.day_offset), "window_start": _hhmm(s.window_start),
                   "window_end": _hhmm(s.window_end), "channel": s.channel,
                   "automatic": s.automatic, "subject": s.subject, "body": s.body,
                   "script": s.script} for s in steps],
    }


def _blank(purpose: Purpose) -> dict[str, Any]:
    """A new cadence: one step to start from."""
    nurture = purpose == Purpose.NURTURE
    return {
        "name": "", "purpose": purpose, "description": "", "is_active": True,
        "auto_enroll": nurture, "grades": [], "team_ids": [], "product_lines": "",
        "priority": "100", "attempt_budget": "6",
        "exit_on": [e.value for e in cadence_rules.DEFAULT_EXITS],
        "out_of_office_days": "7", "pool_id": "", "maturity": "", "topic": "",
        "steps": [{"day_offset": "0", "window_start": "09:00", "window_end": "18:00",
                   "channel": Channel.EMAIL if nurture else Channel.CALL,
                   "automatic": nurture, "subject": "", "body": "", "script": ""}],
    }


def _values_from(form: FormData) -> dict[str, Any]:
    """The editor as submitted, kept as typed so a refusal shows it again unchanged."""
    indices = sorted({int(m[1]) for key in form if (m := _STEP_KEY.fullmatch(key))})
    steps = [{name: form_text(form, f"steps-{i}-{name}") for name in _STEP_FIELDS}
             | {"automatic": form.get(f"steps-{i}-automatic") == "on"} for i in indices]
    return {
        "name": form_text(form, "name"), "purpose": form_text(form, "purpose") or Purpose.SALES,
        "description": form_text(form, "description"), "is_active": form.get("is_active") == "on",
        "auto_enroll": form.get("auto_enroll") == "on",
        "grades": [g for g in form.getlist("grades") if isinstance(g, str)],
        "team_ids": [t for t in form.getlist("team_ids") if isinstance(t, str)],
        "product_lines": form_text(form, "product_lines"), "priority": form_text(form, "priority"),
        "attempt_budget": form_text(form, "attempt_budget"),
        "exit_on": [e for e in form.getlist("exit_on") if isinstance(e, str)],
        "out_of_office_days": form_text(form, "out_of_office_days"),
        "pool_id": form_text(form, "pool_id"), "maturity": form_text(form, "maturity"),
        "topic": form_text(form, "topic"), "steps": steps,
    }


def _minute(text: str) -> int | str:
    """HH:MM in minutes after midnight; anything else as typed (the schema refuses it)."""
    match = _HHMM.fullmatch(text)
    if not match or int(match[2]) > 59:
        return text
    return int(match[1]) * 60 + int(match[2])


def _error(detail: ErrorDetails) -> FormError:
    """A schema refusal in the editor's words."""
    loc = [str(part) for part in detail["loc"]]
    step = int(loc[1]) if len(loc) >= 2 and loc[0] == "steps" and loc[1].isdigit() else None
    name = loc[-1] if loc else ""
    if step is not None and len(loc) == 2:
        name = ""  # the step as a whole: "Step 2 · …" says it all
    kind = detail["type"]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return FormError(name, N_("Enter a time such as 09:00.") if name.startswith("window")
                         else N_("Enter a whole number."), step=step)
    if kind in ("greater_than_equal", "less_than_equal") and name in _RANGES:
        low, high = _RANGES[name]
        return FormError(name, N_("Enter a value from %(low)s to %(high)s."),
                         {"low": low, "high": high}, step)
    if kind == "string_too_short" and name == "name":
        return FormError(name, N_("Give the cadence a name."))
    if kind == "too_short" and name == "steps":
        return FormError(name, N_("Add at least one step."))
    if kind in ("string_too_long", "too_long"):
        return FormError(name, N_("Too long."), step=step)
    if kind == "enum":
        return FormError(name, N_("Choose from the list."), step=step)
    message = str(detail["msg"]).removeprefix("Value error, ")
    return FormError(name, message, step=step)


def _cadence_in(values: dict[str, Any]) -> CadenceIn:
    """Validate the editor's values; raises ValidationError."""
    data = {
        **{k: values[k] for k in ("name", "purpose", "description", "is_active", "auto_enroll",
                                  "grades", "exit_on")},
        "team_ids": values["team_ids"],
        "product_lines": [p.strip() for p in _SPLIT.split(values["product_lines"])
                          if p.strip()],
        "priority": values["priority"] or 100, "attempt_budget": values["attempt_budget"] or 6,
        "out_of_office_days": values["out_of_office_days"] or 7,
        "pool_id": values["pool_id"] or None, "maturity": values["maturity"] or None,
        "topic": values["topic"] or None,
        "steps": [{**s, "day_offset": s["day_offset"] or 0,
                   "window_start": _minute(s["window_start"]),
                   "window_end": _minute(s["window_end"])} for s in values["steps"]],
    }
    return CadenceIn.model_validate(data)


def _editor(request: Request, session: Session, user: User, values: dict[str, Any],
            cadence: Cadence | None, errors: list[FormError] | None = None,
            status_code: int = 200) -> HTMLResponse:
    pools = session.scalars(select(LeadPool).where(LeadPool.kind == PoolKind.NURTURE.value)
                            .order_by(LeadPool.name))
    context = {
        "values": values, "cadence": cadence, "errors": errors or [],
        "step_errors": {e.step for e in errors or [] if e.step is not None},
        "may_edit": has_permission(user.role, Permission.CADENCES_MANAGE),
        "teams": routing_boards.teams(session=session), "pools": list(pools),
        "grades": GRADES, "channels": list(Channel), "exit_choices": EXIT_CHOICES,
        "field_labels": FIELD_LABELS, "maturities": list(Maturity), **LABELS,
    }
    return render(request, "cadences/editor.html", context, user=user,
                  status_code=status_code)


def _save(request: Request, session: Session, user: User, form: FormData,
          cadence: Cadence | None) -> HTMLResponse | RedirectResponse:
    values = _values_from(form)
    try:
        data = _cadence_in(values)
        saved = cadences_service.save_cadence(
            session=session, data=data, actor_id=user.id, now=clock.now(),
            cadence_id=cadence.id if cadence else None)
    except ValidationError as exc:
        errors = [_error(d) for d in exc.errors()]
        return _editor(request, session, user, values, cadence, errors, 422)
    except InvalidInput as exc:
        message = (N_("A cadence with this name exists already.") if exc.field == "name"
                   else exc.message)
        return _editor(request, session, user, values, cadence,
                       [FormError(exc.field or "", message)], 422)
    flash(request, N_("The cadence was saved."))
    return RedirectResponse(f"/cadences/{saved.id}", status_code=303)


@router.get("/cadences/new", response_class=HTMLResponse)
def cadence_new(request: Request, session: SessionDep, user: Editor,
                purpose: str = "sales") -> HTMLResponse:
    """An empty editor for a new cadence (``?purpose=nurture`` for a nurture program)."""
    kind = Purpose.NURTURE if purpose == Purpose.NURTURE else Purpose.SALES
    return _editor(request, session, user, _blank(kind), None)


@router.post("/cadences", response_model=None)
def cadence_create(request: Request, session: SessionDep, user: Editor, _csrf: Csrf,
                   form: FormDep) -> HTMLResponse | RedirectResponse:
    """Create a cadence or nurture program from the editor."""
    return _save(request, session, user, form, None)


@router.get("/cadences/{cadence_id}", response_class=HTMLResponse)
def cadence_page(request: Request, session: SessionDep, user: Viewer,
                 cadence: CadenceDep) -> HTMLResponse:
    """The editor of one cadence (read-only for reps)."""
    steps = cadences_service.steps_of(session=session, cadence_id=cadence.id)
    return _editor(request, session, user, _values_of(cadence, steps), cadence)


@router.post("/cadences/{cadence_id}", response_model=None)
def cadence_update(request: Request, session: SessionDep, user: Editor, _csrf: Csrf,
                   cadence: CadenceDep, form: FormDep) -> HTMLResponse | RedirectResponse:
    """Save the editor: settings and the steps as a whole (enrolled leads keep their
    position)."""
    return _save(request, session, user, form, cadence)


# --------------------------------------------------------------------------- the lead page


@dataclass(frozen=True, slots=True)
class LeadCadenceCard:
    """The lead page's cadence card: where the lead is, what is pending, what the viewer
    may do."""

    enrollment: Enrollment | None
    cadence_name: str | None
    steps: int
    tasks: list[Task]
    options: list[Cadence]
    may_change: bool
    may_work: bool


def _may_change(lead: Lead, viewer: User) -> bool:
    """The owner or a manager puts the lead in a cadence or takes it out (as the service
    enforces)."""
    return lead.owner_id == viewer.id or viewer.role in cadences_service.MANAGING_ROLES


def lead_card(*, session: Session, lead: Lead, viewer: User) -> LeadCadenceCard:
    """The cadence card of ``lead`` for ``viewer``."""
    enrollment = cadences_service.live_enrollment(session=session, lead_id=lead.id)
    name, steps = None, 0
    if enrollment is not None:
        cadence = session.get(Cadence, enrollment.cadence_id)
        name = cadence.name if cadence else None
        steps = len(cadences_service.steps_of(session=session,
                                              cadence_id=enrollment.cadence_id))
    may_change = _may_change(lead, viewer) and lead.owner_id is not None
    options = [c for c in cadences_service.list_cadences(session=session,
                                                         purpose=Purpose.SALES)
               if c.is_active] if may_change else []
    return LeadCadenceCard(
        enrollment=enrollment, cadence_name=name, steps=steps,
        tasks=cadences_service.open_tasks_of(session=session, lead_ids=[lead.id]),
        options=options, may_change=may_change,
        may_work=lead.owner_id == viewer.id
        and has_permission(viewer.role, Permission.LEADS_WORK))


@router.post("/leads/{lead_id}/enrollment")
def lead_enroll(lead_id: DbId, request: Request, session: SessionDep, user: PageUser,
                _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Put the lead in a cadence by hand (ending the one it is in)."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    text = form_text(form, "cadence_id")
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 2**31):
        raise InvalidInput(N_("Choose a cadence."), field="cadence_id")
    cadences_service.enroll(session=session, lead_id=lead.id, cadence_id=int(text), user=user,
                            now=clock.now())
    flash(request, N_("The lead was enrolled; its first step is in the owner's queue."))
    return RedirectResponse(f"/leads/{lead.id}#cadence", status_code=303)


@router.post("/leads/{lead_id}/enrollment/stop")
def lead_unenroll(lead_id: DbId, request: Request, session: SessionDep, user: PageUser,
                  _csrf: Csrf) -> RedirectResponse:
    """Take the lead out of its cadence; its pending tasks are cancelled."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    if not _may_change(lead, user):
        raise PermissionDenied(N_("Only the lead's owner or a manager may stop its cadence."))
    if not cadences_service.end_enrollment(session=session, lead_id=lead.id,
                                           reason=ExitReason.MANUAL, now=clock.now(),
                                           actor_id=user.id):
        raise NotFound(N_("The lead is not in a cadence."))
    flash(request, N_("The cadence was stopped."))
    return RedirectResponse(f"/leads/{lead.id}#cadence", status_code=303)
