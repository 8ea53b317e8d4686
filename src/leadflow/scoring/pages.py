"""Scoring pages: rules and model versions, the model report, the calibration report, flags."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow import clock
from leadflow.deps import CsrfChecked, PageUser, SessionDep, require_page
from leadflow.errors import InvalidInput
from leadflow.leads import service as leads_service
from leadflow.scoring import charts, jobs, report
from leadflow.scoring import service as scoring_service
from leadflow.scoring.models import LeadScore
from leadflow.scoring.schemas import GRADES, FlagIn
from leadflow.users.models import User
from leadflow.users.rules import Permission
from leadflow.web.render import N_, flash, render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

Reader = Annotated[User, Depends(require_page(Permission.SCORING_READ))]
Admin = Annotated[User, Depends(require_page(Permission.SCORING_MANAGE))]
Csrf = Annotated[None, CsrfChecked]
DbId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]

OP_LABELS: dict[str, str] = {
    "eq": N_("is"), "ne": N_("is not"), "in": N_("is one of"), "not_in": N_("is none of"),
    "contains": N_("contains"), "between": N_("is between"), "gte": N_("is at least"),
    "lte": N_("is at most"), "present": N_("is known"), "missing": N_("is unknown"),
}
MODE_LABELS: dict[str, str] = {"set": N_("set to"), "floor": N_("at least"),
                               "cap": N_("at most")}
ACTIVITY_LABELS: dict[str, str] = {
    "captured": N_("Left details (form, file, API)"),
    "form_submitted": N_("Form submitted"),
    "email_opened": N_("Email opened"),
    "email_clicked": N_("Email link clicked"),
    "content_read": N_("Content read (per minute)"),
    "web_visit": N_("Website visit"),
    "webinar_attended": N_("Webinar attended"),
    "community_class": N_("Community class attended"),
    "paid_consultation": N_("Paid consultation"),
    "gift_claimed": N_("Free gift claimed"),
    "replied": N_("Replied"),
    "meeting_booked": N_("Meeting booked"),
    "email_bounced": N_("Email bounced"),
    "unsubscribed": N_("Unsubscribed"),
    "not_interested": N_("Said not interested"),
}
CANDIDATE_LABELS: dict[str, str] = {
    "frequency": N_("Per-field frequency (naive Bayes)"),
    "logistic": N_("Regularised logistic regression"),
    "gbt": N_("Gradient-boosted trees"),
}

# The built-in rule set's labels (default_ruleset.yaml), so the ``label`` filter can show
# them in Chinese; labels an admin writes are shown as written.
DEFAULT_LABELS = (
    N_("Target industry"), N_("Mid-size company"), N_("Enterprise"), N_("Micro business"),
    N_("Decision maker"), N_("Manager"), N_("Core region"), N_("Product interest given"),
    N_("Reachable by phone"), N_("Work email"), N_("High-intent channel"), N_("Gift channel"),
    N_("Paid consultation after a community course"),
    N_("Free-gift lead with no other engagement"), N_("Said not interested"),
)

# What the last background job of this process did, shown on the scoring page.
_last_job: dict[str, str] = {}
_job_lock = threading.Lock()


def _run_in_background(name: str, work: Callable[[], str]) -> bool:
    """Start ``work`` on a thread unless a scoring job is already running here."""
    with _job_lock:
        if _last_job.get("state") == "running":
            return False
        _last_job.update(name=name, state="running", message="")

    def body() -> None:
        try:
            message = work()
            state = "done"
        except Exception as exc:  # the page shows it; nothing to re-raise to
            log.exception("scoring job %s failed", name)
            message, state = str(getattr(exc, "message", exc)), "failed"
        with _job_lock:
            _last_job.update(state=state, message=message)

    threading.Thread(target=body, name=f"scoring-{name}", daemon=True).start()
    return True


def _grade_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(LeadScore.grade, func.count()).group_by(LeadScore.grade))
    counts = dict.fromkeys(GRADES, 0)
    counts.update({grade: int(n) for grade, n in rows})
    return counts


def _scoring_page(
    request: Request, session: Session, user: User, *, yaml_text: str | None = None,
    error: str | None = None, status_code: int = 200,
) -> HTMLResponse:
    ruleset = scoring_service.current_ruleset(session=session)
    counts = _grade_counts(session)
    context: dict[str, Any] = {
        "ruleset": ruleset,
        "document": ruleset.document,
        "yaml_text": yaml_text if yaml_text is not None
        else scoring_service.ruleset_yaml(ruleset.document),
        "error": error,
        "history": scoring_service.ruleset_history(session=session),
        "models": scoring_service.model_versions(session=session),
        "grade_counts": counts,
        "scored": sum(counts.values()),
        "grade_chart": charts.grade_distribution(counts),
        "last_job": dict(_last_job),
        "op_labels": OP_LABELS, "mode_labels": MODE_LABELS,
        "activity_labels": ACTIVITY_LABELS, "candidate_labels": CANDIDATE_LABELS,
    }
    return render(request, "scoring/index.html", context, user=user, status_code=status_code)


@router.get("/scoring", response_class=HTMLResponse)
def scoring_index(request: Request, session: SessionDep, user: Reader) -> HTMLResponse:
    """Rules, weights, thresholds, versions and models."""
    return _scoring_page(request, session, user)


@router.get("/scoring/ruleset.yaml", response_class=PlainTextResponse)
def ruleset_download(session: SessionDep, user: Reader) -> PlainTextResponse:
    """The rule set in force as a YAML file."""
    ruleset = scoring_service.current_ruleset(session=session)
    text = f"# leadflow scoring rule set, version {ruleset.version}\n" + \
        scoring_service.ruleset_yaml(ruleset.document)
    return PlainTextResponse(text, media_type="application/x-yaml", headers={
        "Content-Disposition": f'attachment; filename="scoring-rules-v{ruleset.version}.yaml"'})


@router.post("/scoring/ruleset", response_model=None)
def ruleset_save(
    request: Request, session: SessionDep, user: Admin, _csrf: Csrf,
    yaml_text: Annotated[str, Form(alias="yaml", max_length=200_000)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse | RedirectResponse:
    """Save the edited YAML as the next version; a refused document comes back with why."""
    try:
        document = scoring_service.parse_ruleset_yaml(yaml_text)
    except scoring_service.InvalidRuleset as exc:
        return _scoring_page(request, session, user, yaml_text=yaml_text, error=exc.message,
                             status_code=422)
    scoring_service.save_ruleset(session=session, document=document, note=note.strip(),
                                 actor_id=user.id, now=clock.now())
    flash(request, N_("A new rule-set version was saved. Re-score the leads to apply it."))
    return RedirectResponse("/scoring", status_code=303)


@router.post("/scoring/rescore")
def rescore(request: Request, user: Admin, _csrf: Csrf) -> RedirectResponse:
    """Re-score every lead in the background."""
    def work() -> str:
        summary = jobs.rescore_all(now=clock.now())
        return f"{summary.leads} leads, {summary.grade_changes} grade changes"

    started = _run_in_background("rescore", work)
    flash(request, N_("Re-scoring started.") if started
          else N_("A scoring job is already running."), "success" if started else "error")
    return RedirectResponse("/scoring", status_code=303)


@router.post("/scoring/train")
def train(request: Request, user: Admin, _csrf: Csrf) -> RedirectResponse:
    """Train the model on the leads' history in the background, then re-score."""
    def work() -> str:
        row = jobs.train_from_database(now=clock.now(), actor_id=user.id)
        summary = jobs.rescore_all(now=clock.now())
        return f"model {row.id} ({row.kind}); {summary.leads} leads re-scored"

    started = _run_in_background("train", work)
    flash(request, N_("Training started.") if started
          else N_("A scoring job is already running."), "success" if started else "error")
    return RedirectResponse("/scoring", status_code=303)


@router.post("/scoring/models/{model_id}/activate")
def activate(model_id: DbId, request: Request, session: SessionDep, user: Admin,
             _csrf: Csrf) -> RedirectResponse:
    """Make this model score the leads (re-score to apply)."""
    scoring_service.activate_model(session=session, model_id=model_id, actor_id=user.id,
                                   now=clock.now())
    flash(request, N_("The model is now in force. Re-score the leads to apply it."))
    return RedirectResponse("/scoring", status_code=303)


@router.get("/scoring/models/{model_id}", response_class=HTMLResponse)
def model_report(model_id: DbId, request: Request, session: SessionDep,
                 user: Reader) -> HTMLResponse:
    """One model version: the candidates compared, lift and calibration on held-out data."""
    row = scoring_service.get_model(session=session, model_id=model_id)
    holdout = row.metrics.get("holdout", {})
    context = {
        "model": row, "metrics": row.metrics, "holdout": holdout,
        "candidate_labels": CANDIDATE_LABELS,
        "lift_chart": charts.lift(holdout.get("lift", [])),
        "calibration_chart": charts.calibration(holdout.get("calibration", [])),
    }
    return render(request, "scoring/model.html", context, user=user)


@router.get("/scoring/calibration", response_class=HTMLResponse)
def calibration(request: Request, session: SessionDep, user: Reader,
                month: str = "") -> HTMLResponse:
    """The monthly calibration report: MQL → SQL and conversion by grade, flagged grades."""
    today = clock.now().date()
    try:
        first = date.fromisoformat(month + "-01") if month else today.replace(day=1)
    except ValueError:
        first = today.replace(day=1)
    rep = report.calibration_report(session=session, month=first)
    context = {"report": rep, "month": first.isoformat()[:7],
               "chart": charts.conversion_by_grade(rep)}
    return render(request, "scoring/calibration.html", context, user=user)


@router.post("/leads/{lead_id}/grade-flags")
def flag_grade(
    lead_id: DbId, request: Request, session: SessionDep, user: PageUser, _csrf: Csrf,
    reason: Annotated[str, Form(max_length=1000)] = "",
    suggested_grade: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """A rep reports that a lead's grade looks wrong."""
    lead = leads_service.get_lead(session=session, user=user, lead_id=lead_id)
    if len(reason.strip()) < 3:
        raise InvalidInput(N_("Say in a few words why the grade looks wrong."), field="reason")
    flag = FlagIn(reason=reason.strip(),
                  suggested_grade=suggested_grade if suggested_grade in GRADES else None)
    scoring_service.flag_grade(session=session, lead=lead, user_id=user.id, flag=flag,
                               now=clock.now())
    flash(request, N_("Thank you: the grade was flagged for the calibration review."))
    return RedirectResponse(f"/leads/{lead.id}", status_code=303)
