"""Campaign pages: the list with lead counts and cost per lead, and the create form."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow import clock
from leadflow.campaigns import service as campaigns_service
from leadflow.campaigns.models import Channel
from leadflow.campaigns.schemas import CampaignCreate
from leadflow.deps import CsrfChecked, SessionDep, require_page
from leadflow.errors import Conflict
from leadflow.users.models import User
from leadflow.users.rules import Permission
from leadflow.web.render import N_, flash, render

router = APIRouter(include_in_schema=False)

Reader = Annotated[User, Depends(require_page(Permission.CAMPAIGNS_READ))]
Manager = Annotated[User, Depends(require_page(Permission.CAMPAIGNS_MANAGE))]
# After the user in signatures, so an expired login redirects before the token is checked.
Csrf = Annotated[None, CsrfChecked]

CHANNEL_LABELS: dict[str, str] = {
    Channel.SEO: N_("SEO"),
    Channel.SEM: N_("Search ads (SEM)"),
    Channel.CONTENT: N_("Content marketing"),
    Channel.WEBINAR: N_("Webinar"),
    Channel.OFFLINE_EVENT: N_("Offline event"),
    Channel.SEMINAR: N_("Seminar"),
    Channel.USER_CONFERENCE: N_("User conference"),
    Channel.COMMUNITY_GROUP: N_("Community group"),
    Channel.REFERRAL: N_("Referral"),
    Channel.PAID_CONSULTATION: N_("Paid consultation"),
    Channel.GIFT: N_("Gift"),
    Channel.SOCIAL: N_("Social media"),
    Channel.EMAIL: N_("Email marketing"),
    Channel.PARTNER: N_("Partner"),
    Channel.OTHER: N_("Other"),
}
# What to tell the user about a field the schema refused.
FIELD_ERRORS: dict[str, str] = {
    "name": N_("Enter a name (up to 200 characters)."),
    "channel": N_("Choose a channel."),
    "is_online": N_("Choose online or offline."),
    "product_line": N_("Use at most 80 characters."),
    "topic": N_("Use at most 120 characters."),
    "cost": N_("Enter an amount of zero or more, with at most two decimals."),
    "currency": N_("Use a three-letter currency code such as CNY."),
    "starts_on": N_("Enter a date such as 2026-12-01."),
    "ends_on": N_("Enter a date such as 2026-12-01."),
    "_dates": N_("The end date is before the start date."),
}
_FIELDS = ("name", "channel", "is_online", "product_line", "topic", "cost", "currency",
           "starts_on", "ends_on")
_EMPTY_FORM = {"currency": "CNY"}


def _page(
    request: Request, session: Session, user: User, *, values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> HTMLResponse:
    context = {
        "rows": campaigns_service.list_campaigns(session=session),
        "channels": list(Channel),
        "channel_labels": CHANNEL_LABELS,
        "values": values or _EMPTY_FORM,
        "errors": errors or {},
    }
    return render(request, "campaigns/list.html", context, user=user, status_code=status_code)


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, session: SessionDep, user: Reader) -> HTMLResponse:
    """All campaigns with records captured, leads and cost per lead."""
    return _page(request, session, user)


async def _form(request: Request) -> FormData:
    """The parsed form (parsed once; the CSRF check reads the same one)."""
    return await request.form()


def _parse(values: dict[str, str]) -> tuple[CampaignCreate | None, dict[str, str]]:
    """The form as a :class:`CampaignCreate`, or the message of each refused field."""
    data: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
    if "is_online" in data:
        data["is_online"] = data["is_online"] == "online"
    try:
        return CampaignCreate.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "_dates"
            errors.setdefault(field if field in FIELD_ERRORS else "_dates",
                              FIELD_ERRORS.get(field, FIELD_ERRORS["_dates"]))
        return None, errors


@router.post("/campaigns", response_model=None)
def create_campaign(
    request: Request,
    session: SessionDep,
    user: Manager,
    _csrf: Csrf,
    form: Annotated[FormData, Depends(_form)],
) -> HTMLResponse | RedirectResponse:
    """Create a campaign; a refused form comes back with a message at each field."""
    values = {k: str(form.get(k) or "").strip() for k in _FIELDS}
    values["currency"] = values["currency"].upper()
    data, errors = _parse(values)
    if data is None:
        return _page(request, session, user, values=values, errors=errors, status_code=422)
    try:
        campaigns_service.create_campaign(session=session, data=data, now=clock.now())
    except Conflict:
        return _page(request, session, user, values=values,
                     errors={"name": N_("A campaign with this name already exists.")},
                     status_code=409)
    flash(request, N_("The campaign was created."))
    return RedirectResponse("/campaigns", status_code=303)
