"""Routing pages: the rule table, the team capacity board and rep profiles, triage, pools
(公海) and claiming, SLA breaches, notices and presence, and the lead page's ownership
actions (reject, return, touch, transfer, reroute)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow import clock
from leadflow.deps import Csrf, DbId, FormDep, PageUser, SessionDep, form_text, require_page
from leadflow.errors import InvalidInput, NotFound, PermissionDenied
from leadflow.leads import service as leads_service
from leadflow.leads.models import TOUCH_KINDS, ActivityKind
from leadflow.routing import boards
from leadflow.routing import service as routing_service
from leadflow.routing.models import (
    AwayPolicy,
    NoticeKind,
    OwnershipKind,
    PoolKind,
    Presence,
    RoutingRule,
    Strategy,
)
from leadflow.routing.schemas import (
    AbsenceIn,
    PoolIn,
    RepProfileIn,
    RuleConditions,
    RuleIn,
    TeamPolicyIn,
)
from leadflow.scoring.schemas import GRADES
from leadflow.users.models import Segment, User
from leadflow.users.rules import Permission, has_permission
from leadflow.web.render import N_, flash, referer_path, render

router = APIRouter(include_in_schema=False)

Manager = Annotated[User, Depends(require_page(Permission.ROUTING_MANAGE))]
TeamLead = Annotated[User, Depends(require_page(Permission.ROUTING_TEAM))]
Worker = Annotated[User, Depends(require_page(Permission.LEADS_WORK))]
M = TypeVar("M", bound=BaseModel)

PER_PAGE = 50
LIST_CONDITIONS = ("product_lines", "regions", "channels", "languages", "tags")
_SPLIT = re.compile(r"[,，、;；\n]")
_HHMM = re.compile(r"(\d{1,2})[:：](\d{2})")

STRATEGY_LABELS: dict[str, str] = {
    Strategy.ROUND_ROBIN: N_("Round-robin"),
    Strategy.LEAST_LOADED: N_("Least loaded"),
    Strategy.WEIGHTED: N_("Weighted"),
}
AWAY_LABELS: dict[str, str] = {
    AwayPolicy.REASSIGN_HOT: N_("Hand hot untouched leads to a colleague"),
    AwayPolicy.KEEP: N_("Keep their leads"),
}
POOL_KIND_LABELS: dict[str, str] = {
    PoolKind.PUBLIC: N_("Public pool"),
    PoolKind.NURTURE: N_("Nurture pool"),
    PoolKind.TRIAGE: N_("Triage"),
}
PRESENCE_LABELS: dict[str, str] = {
    Presence.AVAILABLE: N_("Available"),
    Presence.AWAY: N_("Away"),
    Presence.OFFLINE: N_("Offline"),
}
# routing.rules.unavailable_reason in words.
UNAVAILABLE_LABELS: dict[str, str] = {
    "away": N_("away"), "offline": N_("offline"), "on leave": N_("on leave"),
    "holiday": N_("public holiday"), "weekend": N_("weekend"), "off hours": N_("off hours"),
}
SEGMENT_LABELS: dict[str, str] = {
    Segment.ENTERPRISE: N_("Enterprise"), Segment.MID: N_("Mid-size"),
    Segment.SMB: N_("Small business"),
}
OWNERSHIP_LABELS: dict[str, str] = {
    OwnershipKind.ROUTED: N_("Routed"),
    OwnershipKind.REROUTED: N_("Rerouted"),
    OwnershipKind.PROMOTED: N_("Promoted to sales"),
    OwnershipKind.TRANSFERRED: N_("Transferred"),
    OwnershipKind.CLAIMED: N_("Claimed from a pool"),
    OwnershipKind.POOLED: N_("Waiting in a pool"),
}
NOTICE_LABELS: dict[str, str] = {
    NoticeKind.SLA_ESCALATION: N_("SLA escalation"),
    NoticeKind.RECYCLE_WARNING: N_("Going back to the pool"),
    NoticeKind.LEAD_REROUTED: N_("Lead rerouted"),
    NoticeKind.TRIAGE: N_("Lead rejected"),
}
TOUCH_LABELS: dict[str, str] = {
    ActivityKind.CALL_LOGGED: N_("Call"),
    ActivityKind.EMAIL_SENT: N_("Email"),
    ActivityKind.MESSAGE_SENT: N_("Message"),
    ActivityKind.MEETING_HELD: N_("Meeting"),
}
MATCH_LABELS: dict[str, str] = {"phone": N_("phone"), "email": N_("email"),
                                "company": N_("company")}
CONDITION_LABELS: dict[str, str] = {
    "product_lines": N_("Product line"), "regions": N_("Region"), "channels": N_("Channel"),
    "languages": N_("Language"), "tags": N_("Tags"),
}
BREACH_LABELS: dict[int, str] = {1: N_("Escalated"), 2: N_("Rerouted")}
# Holiday calendars offered for a rep (codes of the holidays package); "" is weekends only.
CALENDARS: dict[str, str] = {
    "CN": N_("Mainland China"), "HK": N_("Hong Kong"), "TW": N_("Taiwan"),
    "SG": N_("Singapore"), "JP": N_("Japan"), "US": N_("United States"),
    "GB": N_("United Kingdom"), "": N_("Weekends only"),
}
# The system pools' names (routing.service.TRIAGE_POOL …), for the ``label`` filter.
SYSTEM_POOL_NAMES = (N_("Triage"), N_("Nurture"), N_("Public pool"))
LABELS: dict[str, Any] = {
    "strategy_labels": STRATEGY_LABELS, "away_labels": AWAY_LABELS,
    "pool_kind_labels": POOL_KIND_LABELS, "presence_labels": PRESENCE_LABELS,
    "unavailable_labels": UNAVAILABLE_LABELS, "segment_labels": SEGMENT_LABELS,
    "ownership_labels": OWNERSHIP_LABELS, "notice_labels": NOTICE_LABELS,
    "touch_labels": TOUCH_LABELS, "match_labels": MATCH_LABELS,
    "breach_labels": BREACH_LABELS, "condition_labels": CONDITION_LABELS,
    "calendars": CALENDARS, "grades": GRADES,
}


# --------------------------------------------------------------------------- helpers


def _require_any(*permissions: Permission) -> Callable[[User], User]:
    """Dependency factory: the page user, who must hold one of ``permissions``."""

    def check(user: PageUser) -> User:
        if not any(has_permission(user.role, p) for p in permissions):
            raise PermissionDenied(f"your role ({user.role}) may not {permissions[0]}")
        return user

    return check


# Pools are for those who claim from them and those who run routing.
PoolUser = Annotated[User, Depends(_require_any(Permission.LEADS_WORK,
                                                Permission.ROUTING_TEAM))]


def _team_scope(user: User) -> int | None:
    """The team a routing user works on: None (every team) for routing managers."""
    if has_permission(user.role, Permission.ROUTING_MANAGE):
        return None
    if user.team_id is None:
        raise PermissionDenied(N_("You lead no team."))
    return user.team_id


def _check_team(user: User, team_id: int | None) -> None:
    """Team leads act on their own team only."""
    scope = _team_scope(user)
    if scope is not None and team_id != scope:
        raise PermissionDenied(N_("Only routing managers may act on other teams."))


def _works_leads(user: User) -> bool:
    """Whether the user is given and claims leads: routing managers hand them out."""
    return (has_permission(user.role, Permission.LEADS_WORK)
            and not has_permission(user.role, Permission.ROUTING_MANAGE))


def _whole(form: FormData, name: str) -> int | None:
    """A whole number typed in a form (blank: None)."""
    text = form_text(form, name)
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidInput(N_("Enter a whole number of zero or more."), field=name)
    return int(text)


def _number(form: FormData, name: str) -> float | None:
    """A decimal number typed in a form (blank: None)."""
    text = form_text(form, name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(N_("Enter a number such as 1.5."), field=name) from None


def _minute(form: FormData, name: str) -> int | None:
    """A time of day as HH:MM, in minutes after midnight (blank: None)."""
    text = form_text(form, name)
    if not text:
        return None
    match = _HHMM.fullmatch(text)
    if not match or int(match[2]) > 59 or int(match[1]) * 60 + int(match[2]) > 24 * 60:
        raise InvalidInput(N_("Enter a time such as 09:00."), field=name)
    return int(match[1]) * 60 + int(match[2])


def _day(form: FormData, name: str) -> date | None:
    text = form_text(form, name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(N_("Enter a date such as 2026-12-01."), field=name) from None


def _split(form: FormData, name: str) -> list[str]:
    """Comma-separated words (Chinese commas too)."""
    return [part.strip() for part in _SPLIT.split(form_text(form, name)) if part.strip()]


def _per_grade(form: FormData, prefix: str) -> dict[str, int]:
    """``{grade: n}`` from one input per grade; a blank grade is left out."""
    out = {}
    for grade in GRADES:
        n = _whole(form, f"{prefix}_{grade}")
        if n is not None:
            out[grade] = n
    return out


def _valid(model: type[M], data: dict[str, Any]) -> M:
    """``model`` from parsed form values; a refusal is a 422 page naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise InvalidInput(f"{field}: {error['msg']}", field=field or None) from exc


def _id(form: FormData, name: str) -> int | None:
    text = form_text(form, name)
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 2**31 else None


def _back(request: Request, default: str) -> RedirectResponse:
    return RedirectResponse(referer_path(request, default), status_code=303)


# --------------------------------------------------------------------------- rules


def _rule_in(form: FormData) -> RuleIn:
    """The rule form: grades and segments as checkboxes, the rest as comma lists, and one
    target (``team:ID`` or ``pool:ID``)."""
    kind, _, ref = form_text(form, "target").partition(":")
    target = int(ref) if ref.isascii() and ref.isdigit() else None
    percent = _number(form, "min_probability")
    conditions: dict[str, Any] = {
        "grades": form.getlist("grades"), "segments": form.getlist("segments"),
        "min_probability": None if percent is None else percent / 100,
        **{name: _split(form, name) for name in LIST_CONDITIONS},
    }
    return _valid(RuleIn, {
        "name": form_text(form, "name"), "conditions": conditions,
        "team_id": target if kind == "team" else None,
        "pool_id": target if kind == "pool" else None,
        "is_active": form.get("is_active") == "on",
    })


def _rules_page(request: Request, session: Session, user: User,
                edit_id: int | None = None) -> HTMLResponse:
    rules = routing_service.list_rules(session=session)
    editing = next((r for r in rules if r.id == edit_id), None)
    if edit_id is not None and editing is None:
        raise NotFound(f"routing rule {edit_id} not found")
    teams = boards.teams(session=session)
    context = {
        "rules": rules, "editing": editing, "teams": teams,
        "team_names": {t.id: t.name for t in teams},
        "pools": boards.pool_rows(session=session, user=user),
        "pool_names": boards.pool_names(session=session),
        "segments": list(Segment), "list_conditions": LIST_CONDITIONS, **LABELS,
    }
    return render(request, "routing/rules.html", context, user=user)


@router.get("/routing")
def routing_home(user: PoolUser) -> RedirectResponse:
    """The routing section starts at the rule table (reps: at the pools)."""
    to_rules = has_permission(user.role, Permission.ROUTING_TEAM)
    return RedirectResponse("/routing/rules" if to_rules else "/routing/pools", status_code=303)


@router.get("/routing/rules", response_class=HTMLResponse)
def rules_page(request: Request, session: SessionDep, user: TeamLead) -> HTMLResponse:
    """The ordered routing table: first active match wins."""
    return _rules_page(request, session, user)


@router.get("/routing/rules/{rule_id}/edit", response_class=HTMLResponse)
def rule_edit(rule_id: DbId, request: Request, session: SessionDep,
              user: Manager) -> HTMLResponse:
    """The rule table with one rule's form filled in."""
    return _rules_page(request, session, user, edit_id=rule_id)


@router.post("/routing/rules")
def rule_create(request: Request, session: SessionDep, user: Manager, _csrf: Csrf,
                form: FormDep) -> RedirectResponse:
    """Add a rule at the end of the table."""
    routing_service.create_rule(session=session, data=_rule_in(form), actor_id=user.id,
                                now=clock.now())
    flash(request, N_("The rule was added at the end of the table."))
    return RedirectResponse("/routing/rules", status_code=303)


@router.post("/routing/rules/defaults")
def rule_defaults(request: Request, session: SessionDep, user: Manager,
                  _csrf: Csrf) -> RedirectResponse:
    """Fill an empty table with the brief's defaults for the organisation's teams."""
    routing_service.create_default_rules(session=session, actor_id=user.id, now=clock.now())
    flash(request, N_("The default routing table was created."))
    return RedirectResponse("/routing/rules", status_code=303)


@router.post("/routing/rules/{rule_id}")
def rule_update(rule_id: DbId, request: Request, session: SessionDep, user: Manager,
                _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Replace a rule's name, conditions, target and switch."""
    routing_service.update_rule(session=session, rule_id=rule_id, data=_rule_in(form),
                                actor_id=user.id, now=clock.now())
    flash(request, N_("The rule was saved."))
    return RedirectResponse("/routing/rules", status_code=303)


@router.post("/routing/rules/{rule_id}/toggle")
def rule_toggle(rule_id: DbId, request: Request, session: SessionDep, user: Manager,
                _csrf: Csrf) -> RedirectResponse:
    """Switch a rule on or off, keeping the rest of it."""
    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"routing rule {rule_id} not found")
    data = RuleIn(name=rule.name, conditions=RuleConditions.model_validate(rule.conditions),
                  team_id=rule.team_id, pool_id=rule.pool_id, is_active=not rule.is_active)
    routing_service.update_rule(session=session, rule_id=rule_id, data=data, actor_id=user.id,
                                now=clock.now())
    flash(request, N_("The rule is on.") if data.is_active else N_("The rule is off."))
    return RedirectResponse("/routing/rules", status_code=303)


@router.post("/routing/rules/{rule_id}/move")
def rule_move(rule_id: DbId, request: Request, session: SessionDep, user: Manager,
              _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Move a rule one place up or down."""
    offset = -1 if form_text(form, "direction") == "up" else 1
    routing_service.move_rule(session=session, rule_id=rule_id, offset=offset, now=clock.now())
    return RedirectResponse("/routing/rules", status_code=303)


@router.post("/routing/rules/{rule_id}/delete")
def rule_delete(rule_id: DbId, request: Request, session: SessionDep, user: Manager,
                _csrf: Csrf) -> RedirectResponse:
    """Remove a rule from the table."""
    routing_service.delete_rule(session=session, rule_id=rule_id)
    flash(request, N_("The rule was deleted."))
    return RedirectResponse("/routing/rules", status_code=303)


# --------------------------------------------------------------------------- teams and reps


@router.get("/routing/teams", response_class=HTMLResponse)
def teams_page(request: Request, session: SessionDep, user: TeamLead) -> HTMLResponse:
    """The capacity board: each team's policy and its reps' load and availability now."""
    now = clock.now()
    board = boards.capacity_board(session=session, now=now, team_id=_team_scope(user))
    holidays = sorted({r.holiday for team in board for r in team.reps if r.holiday})
    context = {"board": board, "holidays": holidays,
               "pools": boards.pool_rows(session=session, user=user), **LABELS}
    return render(request, "routing/teams.html", context, user=user)


@router.post("/routing/teams/{team_id}/policy")
def team_policy_save(team_id: DbId, request: Request, session: SessionDep, user: Manager,
                     _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Set how a team routes."""
    data = _valid(TeamPolicyIn, {
        "strategy": form_text(form, "strategy") or Strategy.ROUND_ROBIN,
        "capacity": _per_grade(form, "capacity"), "sla_minutes": _per_grade(form, "sla"),
        "pool_id": _id(form, "pool_id"),
        "away_policy": form_text(form, "away_policy") or AwayPolicy.REASSIGN_HOT,
    })
    routing_service.save_team_policy(session=session, team_id=team_id, data=data,
                                     now=clock.now())
    flash(request, N_("The team's routing policy was saved."))
    return RedirectResponse(f"/routing/teams#team-{team_id}", status_code=303)


def _managed_rep(user_id: DbId, session: SessionDep, user: TeamLead) -> User:
    """A user whose routing profile the caller may change (team leads: their team's)."""
    rep = session.get(User, user_id)
    if rep is None:
        raise NotFound(f"user {user_id} not found")
    _check_team(user, rep.team_id)
    return rep


ManagedRep = Annotated[User, Depends(_managed_rep)]


@router.get("/routing/reps/{user_id}", response_class=HTMLResponse)
def rep_page(request: Request, session: SessionDep, user: TeamLead,
             rep: ManagedRep) -> HTMLResponse:
    """One rep's routing profile and absences, with the forms to change them."""
    detail = boards.rep_detail(session=session, user_id=rep.id, now=clock.now())
    return render(request, "routing/rep.html", {"detail": detail, **LABELS}, user=user)


@router.post("/routing/reps/{user_id}/profile")
def rep_profile_save(request: Request, session: SessionDep, user: TeamLead, rep: ManagedRep,
                     _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Set a rep's capacity, weight, skills, hours and presence."""
    data = _valid(RepProfileIn, {
        "presence": form_text(form, "presence") or Presence.AVAILABLE,
        "capacity": _per_grade(form, "capacity"),
        "max_open_leads": _whole(form, "max_open_leads"),
        "weight": 1.0 if (w := _number(form, "weight")) is None else w,
        "languages": _split(form, "languages"), "product_lines": _split(form, "product_lines"),
        "work_start_minute": _minute(form, "work_start"),
        "work_end_minute": _minute(form, "work_end"),
        "holiday_calendar": _calendar(form),
    })
    routing_service.save_rep_profile(session=session, user_id=rep.id, data=data,
                                     now=clock.now())
    flash(request, N_("The rep's routing profile was saved."))
    return RedirectResponse(f"/routing/reps/{rep.id}", status_code=303)


def _calendar(form: FormData) -> str | None:
    code = form_text(form, "holiday_calendar")
    if code not in CALENDARS:
        raise InvalidInput(N_("Choose a holiday calendar from the list."),
                           field="holiday_calendar")
    return code or None


@router.post("/routing/reps/{user_id}/absences")
def rep_absence_add(request: Request, session: SessionDep, user: TeamLead, rep: ManagedRep,
                    _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Book whole days of leave (inclusive, in the rep's time zone)."""
    first, last = _day(form, "starts_on"), _day(form, "ends_on")
    if first is None or last is None:
        raise InvalidInput(N_("Enter the first and the last day of the absence."),
                           field="starts_on")
    zone = ZoneInfo(rep.timezone)
    data = _valid(AbsenceIn, {
        "starts_at": datetime.combine(first, time(0), zone).astimezone(UTC),
        "ends_at": datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC),
        "reason": form_text(form, "reason"),
    })
    routing_service.add_absence(session=session, user_id=rep.id, data=data)
    flash(request, N_("The absence was booked; routing skips the rep while it lasts."))
    return RedirectResponse(f"/routing/reps/{rep.id}", status_code=303)


# --------------------------------------------------------------------------- triage


@router.get("/routing/triage", response_class=HTMLResponse)
def triage_page(request: Request, session: SessionDep, user: TeamLead) -> HTMLResponse:
    """Rejected and unroutable leads waiting for a lead manager."""
    scope = _team_scope(user)
    context = {"rows": boards.triage_queue(session=session, team_id=scope),
               "teams": boards.teams(session=session, team_id=scope), **LABELS}
    return render(request, "routing/triage.html", context, user=user)


@router.post("/leads/{lead_id}/reroute")
def lead_reroute(lead_id: DbId, request: Request, session: SessionDep, user: TeamLead,
                 _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Send a lead through the rules again, or into a chosen team."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    team_id = _id(form, "team_id")
    if team_id is not None:
        _check_team(user, team_id)
    summary = routing_service.reroute_lead(session=session, lead_id=lead.id, actor=user,
                                           now=clock.now(), team_id=team_id)
    flash(request, N_("The lead was rerouted to a rep.") if summary.assigned
          else N_("The lead was rerouted; no rep could take it, so it waits in a pool."))
    return _back(request, "/routing/triage")


# --------------------------------------------------------------------------- pools


def _pool_in(form: FormData) -> PoolIn:
    numbers = ("claim_daily_cap", "holding_cap", "protection_days", "extension_days",
               "max_protection_days", "warn_days", "reclaim_cooldown_days")
    data: dict[str, Any] = {"name": form_text(form, "name"), "kind": form_text(form, "kind"),
                            "team_id": _id(form, "team_id")}
    data.update({name: n for name in numbers if (n := _whole(form, name)) is not None})
    return _valid(PoolIn, data)


def _pools_page(request: Request, session: Session, user: User,
                edit_id: int | None = None) -> HTMLResponse:
    rows = boards.pool_rows(session=session, user=user)
    editing = next((r.pool for r in rows if r.pool.id == edit_id), None)
    if edit_id is not None and editing is None:
        raise NotFound(f"pool {edit_id} not found")
    context = {"rows": rows, "editing": editing, "kinds": list(PoolKind),
               "teams": boards.teams(session=session), **LABELS}
    return render(request, "routing/pools.html", context, user=user)


@router.get("/routing/pools", response_class=HTMLResponse)
def pools_page(request: Request, session: SessionDep, user: PoolUser) -> HTMLResponse:
    """The pools the user may see, with their rules and lead counts."""
    return _pools_page(request, session, user)


@router.get("/routing/pools/{pool_id}/edit", response_class=HTMLResponse)
def pool_edit(pool_id: DbId, request: Request, session: SessionDep,
              user: Manager) -> HTMLResponse:
    """The pool list with one pool's form filled in."""
    return _pools_page(request, session, user, edit_id=pool_id)


@router.post("/routing/pools")
def pool_create(request: Request, session: SessionDep, user: Manager, _csrf: Csrf,
                form: FormDep) -> RedirectResponse:
    """Create a pool."""
    pool = routing_service.save_pool(session=session, data=_pool_in(form), now=clock.now())
    flash(request, N_("The pool was created."))
    return RedirectResponse(f"/routing/pools/{pool.id}", status_code=303)


@router.post("/routing/pools/{pool_id}")
def pool_update(pool_id: DbId, request: Request, session: SessionDep, user: Manager,
                _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Change a pool's name, kind, team, claim and protection rules."""
    routing_service.save_pool(session=session, data=_pool_in(form), now=clock.now(),
                              pool_id=pool_id)
    flash(request, N_("The pool was saved."))
    return RedirectResponse("/routing/pools", status_code=303)


@router.get("/routing/pools/{pool_id}", response_class=HTMLResponse)
def pool_page(pool_id: DbId, request: Request, session: SessionDep, user: PoolUser,
              page: str = "1") -> HTMLResponse:
    """A pool's leads (phones masked until claimed), with the user's claim limits."""
    pool = boards.visible_pool(session=session, user=user, pool_id=pool_id)
    number = int(page) if page.isascii() and page.isdigit() and 0 < int(page) < 10**6 else 1
    result = boards.pool_leads(session=session, pool_id=pool.id, page=number,
                               per_page=PER_PAGE)
    may_claim = _works_leads(user) and pool.kind != PoolKind.TRIAGE
    limits = routing_service.claim_limits(session=session, user=user, pool=pool,
                                          now=clock.now()) if may_claim else None

    def page_url(n: int) -> str:
        return f"/routing/pools/{pool.id}?" + urlencode({"page": n})

    context = {"pool": pool, "result": result, "limits": limits, "may_claim": may_claim,
               "page_url": page_url, **LABELS}
    return render(request, "routing/pool.html", context, user=user)


@router.post("/leads/{lead_id}/claim")
def lead_claim(lead_id: DbId, request: Request, session: SessionDep, user: Worker,
               _csrf: Csrf) -> RedirectResponse:
    """Take a lead from a pool, within the pool's caps."""
    lead = routing_service.claim_lead(session=session, lead_id=lead_id, user=user,
                                      now=clock.now())
    flash(request, N_("The lead is yours now: follow up before its protection ends."))
    return RedirectResponse(f"/leads/{lead.id}", status_code=303)


# --------------------------------------------------------------------------- SLA breaches


@router.get("/routing/sla", response_class=HTMLResponse)
def sla_page(request: Request, session: SessionDep, user: TeamLead, team: str = "",
             level: str = "") -> HTMLResponse:
    """First-touch SLA breaches, newest first, by team and level."""
    scope = _team_scope(user)
    team_id = scope if scope is not None else (int(team) if team.isdigit() else None)
    level_n = int(level) if level in ("1", "2") else None
    context = {
        "rows": boards.sla_breaches(session=session, team_id=team_id, level=level_n),
        "teams": boards.teams(session=session, team_id=scope),
        "filters": {"team": str(team_id or ""), "level": level}, **LABELS,
    }
    return render(request, "routing/sla.html", context, user=user)


# --------------------------------------------------------------------------- notices, presence


@router.get("/notices", response_class=HTMLResponse)
def notices_page(request: Request, session: SessionDep, user: PageUser) -> HTMLResponse:
    """The user's notices, newest first, and their presence switch."""
    presence = None
    if _works_leads(user):
        presence = boards.presence_of(session=session, user_id=user.id)
    context = {"notices": boards.notices(session=session, user_id=user.id),
               "presence": presence, **LABELS}
    return render(request, "routing/notices.html", context, user=user)


@router.get("/notices/unread", response_class=HTMLResponse)
def notices_unread(request: Request, session: SessionDep, user: PageUser) -> HTMLResponse:
    """The unread count for the navigation (an HTMX fragment; empty when none)."""
    count = boards.unread_notices(session=session, user_id=user.id)
    return render(request, "routing/_unread.html", {"count": count}, user=user)


@router.post("/notices/read")
def notices_read(request: Request, session: SessionDep, user: PageUser,
                 _csrf: Csrf) -> RedirectResponse:
    """Mark all of the user's notices read."""
    routing_service.mark_notices_read(session=session, user=user, now=clock.now())
    return RedirectResponse("/notices", status_code=303)


@router.post("/routing/presence")
def presence_set(request: Request, session: SessionDep, user: Worker, _csrf: Csrf,
                 form: FormDep) -> RedirectResponse:
    """A rep switches to available, away or offline."""
    value = form_text(form, "presence")
    if value not in set(Presence):
        raise InvalidInput(N_("Choose available, away or offline."), field="presence")
    routing_service.set_presence(session=session, user=user, presence=Presence(value),
                                 now=clock.now())
    flash(request, N_("Your status was changed."))
    return _back(request, "/notices")


# --------------------------------------------------------------------------- one lead


@router.post("/leads/{lead_id}/reject")
def lead_reject(lead_id: DbId, request: Request, session: SessionDep, user: Worker,
                _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """The owner rejects a lead that does not fit: it goes to triage."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    routing_service.reject_lead(session=session, lead_id=lead.id, user=user,
                                reason=form_text(form, "reason"), now=clock.now())
    flash(request, N_("The lead went to triage with your reason."))
    return RedirectResponse("/leads", status_code=303)


@router.post("/leads/{lead_id}/return")
def lead_return(lead_id: DbId, request: Request, session: SessionDep, user: Worker,
                _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """The owner returns a lead that is not ready: it goes to nurture."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    routing_service.return_lead(session=session, lead_id=lead.id, user=user,
                                reason=form_text(form, "reason"),
                                follow_up_on=_day(form, "follow_up_on"), now=clock.now())
    flash(request, N_("The lead went back to nurture."))
    return RedirectResponse("/leads", status_code=303)


@router.post("/leads/{lead_id}/touches")
def lead_touch(lead_id: DbId, request: Request, session: SessionDep, user: Worker,
               _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Log a call, email, message or meeting: the first one stops the SLA clock."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    kind = form_text(form, "kind")
    if kind not in {str(k) for k in TOUCH_KINDS}:
        raise InvalidInput(N_("Choose call, email, message or meeting."), field="kind")
    routing_service.record_touch(session=session, lead_id=lead.id, user=user,
                                 kind=ActivityKind(kind), summary=form_text(form, "summary"),
                                 now=clock.now())
    flash(request, N_("The touch was logged."))
    return RedirectResponse(f"/leads/{lead.id}#ownership", status_code=303)


@router.post("/leads/{lead_id}/transfer")
def lead_transfer(lead_id: DbId, request: Request, session: SessionDep, user: TeamLead,
                  _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Give the lead to a named rep (team leads: one of their team)."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    target = session.get(User, _id(form, "to_user_id") or 0)
    if target is None:
        raise InvalidInput(N_("Choose the rep to give the lead to."), field="to_user_id")
    _check_team(user, target.team_id)
    moved = routing_service.transfer_leads(session=session, lead_ids=[lead.id],
                                           to_user_id=target.id, actor=user,
                                           reason=form_text(form, "reason"), now=clock.now())
    flash(request, N_("The lead was transferred.") if moved
          else N_("Nothing to transfer: the rep owns the lead already, or it is closed."))
    return RedirectResponse(f"/leads/{lead.id}", status_code=303)

