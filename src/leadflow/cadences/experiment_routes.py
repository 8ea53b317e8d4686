"""A/B tests over HTTP: the JSON API (``api_router``) and the pages (``page_router``).

Managers who configure routing set experiments up and stop them; team leads read reports.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow import clock
from leadflow.cadences import abtest, experiment_charts
from leadflow.cadences import experiments as service
from leadflow.cadences.abtest import Decision, Metric, Verdict
from leadflow.cadences.experiment_schemas import (
    ArmOut,
    ArmResultOut,
    ExperimentIn,
    ExperimentOut,
    ReportOut,
    StopIn,
    VerdictOut,
)
from leadflow.cadences.models import Cadence, CadenceStep, Experiment
from leadflow.deps import Csrf, DbId, FormDep, SessionDep, form_text, require, require_page
from leadflow.errors import InvalidInput
from leadflow.users.models import User
from leadflow.users.rules import Permission
from leadflow.web.render import N_, flash, gettext, render, resolve_locale

api_router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
page_router = APIRouter(include_in_schema=False)

ApiManager = Annotated[User, Depends(require(Permission.ROUTING_MANAGE))]
ApiReader = Annotated[User, Depends(require(Permission.ROUTING_TEAM))]
Manager = Annotated[User, Depends(require_page(Permission.ROUTING_MANAGE))]
Reader = Annotated[User, Depends(require_page(Permission.ROUTING_TEAM))]

# The create form offers this many arm rows; blank rows after the first two are ignored.
FORM_ARMS = "ABCD"

METRIC_LABELS: dict[str, str] = {
    Metric.CONTACTED: N_("Contacted"), Metric.REPLIED: N_("Replied"),
    Metric.MEETING: N_("Meeting booked"), Metric.CONVERTED: N_("Converted"),
}
DECISION_LABELS: dict[str, str] = {
    Decision.COLLECTING: N_("Too early"), Decision.CONTINUE: N_("No clear winner yet"),
    Decision.WINNER: N_("Winner clear"), Decision.NO_DIFFERENCE: N_("Practically the same"),
}
# The verdict's first clause per metric (abtest.METRIC_PHRASES, translatable).
LIFT_PHRASES: dict[str, str] = {
    Metric.CONTACTED: N_("%(leader)s reaches leads %(pct)s more often than %(other)s"),
    Metric.REPLIED: N_("%(leader)s gets replies %(pct)s more often than %(other)s"),
    Metric.MEETING: N_("%(leader)s books meetings %(pct)s more often than %(other)s"),
    Metric.CONVERTED: N_("%(leader)s converts leads %(pct)s more often than %(other)s"),
}
# Service messages that reach users verbatim, listed for translation.
_KNOWN_MESSAGES = (
    N_(service.NO_CADENCE), N_(service.STEP_NOT_IN_CADENCE), N_(service.TWO_ARMS),
    N_(service.DUPLICATE_KEYS), N_(service.STEP_ARMS_NO_CADENCE),
    N_(service.CADENCE_ARMS_NO_TEMPLATE), N_(service.ALREADY_RUNNING), N_(service.NOT_RUNNING),
    N_(service.WINNER_NOT_AN_ARM), N_(service.UNKNOWN_METRIC),
)


# --------------------------------------------------------------------------- shapes


def _experiment_out(session: Session, experiment: Experiment) -> ExperimentOut:
    out = ExperimentOut.model_validate(experiment)
    out.arms = [ArmOut.model_validate(a)
                for a in service.arms_of(session=session, experiment_id=experiment.id)]
    return out


def _verdict_out(verdict: Verdict, arm_ids: dict[str, int], labels: dict[str, str]) -> VerdictOut:
    return VerdictOut(
        metric=Metric(verdict.metric), decision=verdict.decision, leader=verdict.leader,
        compared_with=verdict.compared_with, winner=verdict.winner, lift=verdict.lift,
        prob_best=verdict.prob_best, p_value=verdict.p_value,
        more_per_arm=verdict.more_per_arm, more_total=verdict.more_total,
        summary=verdict.summary,
        arms=[ArmResultOut(arm_id=arm_ids[a.key], label=labels[a.key],
                           **{f: getattr(a, f) for f in ArmResultOut.model_fields
                              if f not in ("arm_id", "label")})
              for a in verdict.arms],
    )


# --------------------------------------------------------------------------- API


@api_router.post("", response_model=ExperimentOut, status_code=201)
def create(body: ExperimentIn, session: SessionDep, user: ApiManager) -> ExperimentOut:
    """Start an A/B test on a cadence (or on one step's template, with ``step_id``)."""
    experiment = service.create_experiment(
        session=session, name=body.name, cadence_id=body.cadence_id, arms=body.arms,
        metric=body.metric, step_id=body.step_id, actor_id=user.id, now=clock.now())
    return _experiment_out(session, experiment)


@api_router.get("", response_model=list[ExperimentOut])
def list_all(session: SessionDep, _user: ApiReader) -> list[ExperimentOut]:
    """Every experiment, running ones first."""
    return [_experiment_out(session, e) for e in service.list_experiments(session=session)]


@api_router.get("/{experiment_id}", response_model=ExperimentOut)
def read(experiment_id: DbId, session: SessionDep, _user: ApiReader) -> ExperimentOut:
    """One experiment with its arms."""
    return _experiment_out(session, service.get_experiment(session=session,
                                                           experiment_id=experiment_id))


@api_router.get("/{experiment_id}/report", response_model=ReportOut)
def report(experiment_id: DbId, session: SessionDep, _user: ApiReader) -> ReportOut:
    """Rates, credible intervals, P(best), the always-valid decision and the sample still
    needed, for every metric (the experiment's own first)."""
    rep = service.experiment_report(session=session, experiment_id=experiment_id,
                                    now=clock.now())
    arm_ids = {c.key: c.arm_id for c in rep.counts}
    labels = {c.key: c.label for c in rep.counts}
    return ReportOut(experiment=_experiment_out(session, rep.experiment),
                     days_running=round(rep.days_running, 2), enrolled=rep.enrolled,
                     leads_per_day=rep.leads_per_day, days_needed=rep.days_needed,
                     verdicts=[_verdict_out(v, arm_ids, labels) for v in rep.verdicts])


@api_router.post("/{experiment_id}/stop", response_model=ExperimentOut)
def stop(experiment_id: DbId, body: StopIn, session: SessionDep,
         user: ApiManager) -> ExperimentOut:
    """Stop the experiment, recording the winning arm (or none)."""
    experiment = service.stop_experiment(session=session, experiment_id=experiment_id,
                                         winner_arm_id=body.winner_arm_id, actor_id=user.id,
                                         now=clock.now())
    return _experiment_out(session, experiment)


# --------------------------------------------------------------------------- pages


def _optional_id(form: FormData, name: str) -> int | None:
    text = form_text(form, name)
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidInput(N_("Choose from the list."), field=name)
    return int(text)


def _experiment_in(form: FormData) -> ExperimentIn:
    """The create form as an ``ExperimentIn``: arm rows A and B always, C and D when filled."""
    arms: list[dict[str, Any]] = []
    for i, key in enumerate(FORM_ARMS):
        fields = {f: form_text(form, f"arm_{key}_{f}")
                  for f in ("label", "cadence_id", "subject", "body", "weight")}
        if i >= 2 and not any(fields.values()):
            continue
        arms.append({"key": key, "label": fields["label"],
                     "cadence_id": _optional_id(form, f"arm_{key}_cadence_id"),
                     "subject": fields["subject"] or None, "body": fields["body"] or None,
                     "weight": fields["weight"] or 1.0})
    try:
        return ExperimentIn.model_validate({
            "name": form_text(form, "name"), "cadence_id": _optional_id(form, "cadence_id"),
            "step_id": _optional_id(form, "step_id"), "metric": form_text(form, "metric"),
            "arms": arms,
        })
    except ValidationError as exc:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise InvalidInput(N_("Please check the form: a name, a cadence and at least two "
                              "arms; weights are positive numbers."), field=field) from None


def _cadences(session: Session) -> list[Cadence]:
    return list(session.scalars(select(Cadence).order_by(Cadence.name)))


def _steps(session: Session, cadence_id: int | None) -> list[CadenceStep]:
    if cadence_id is None:
        return []
    return list(session.scalars(select(CadenceStep).where(CadenceStep.cadence_id == cadence_id)
                                .order_by(CadenceStep.position)))


LABELS: dict[str, Any] = {
    "metric_labels": METRIC_LABELS, "decision_labels": DECISION_LABELS,
    "lift_phrases": LIFT_PHRASES, "metrics": list(Metric), "form_arms": FORM_ARMS,
    "percent": abtest.percent, "level": abtest.LEVEL,
    "min_lift_pct": f"{abtest.DecisionRule().min_lift * 100:.0f}%",
}


@page_router.get("/experiments", response_class=HTMLResponse)
def list_page(request: Request, session: SessionDep, user: Reader) -> HTMLResponse:
    """Experiments, running first, each with its verdict; the form to start one."""
    now = clock.now()
    rows = []
    for experiment in service.list_experiments(session=session):
        rep = service.experiment_report(session=session, experiment_id=experiment.id, now=now)
        rows.append(rep)
    cadences = _cadences(session)
    return render(request, "experiments/list.html",
                  {"reports": rows, "cadences": cadences,
                   "cadence_names": {c.id: c.name for c in cadences}, **LABELS}, user=user)


@page_router.get("/experiments/steps", response_class=HTMLResponse)
def steps_fragment(request: Request, session: SessionDep, user: Manager,
                   cadence_id: str = "") -> HTMLResponse:
    """The step choices of a cadence (HTMX swaps them in when the cadence changes)."""
    chosen = int(cadence_id) if cadence_id.isdigit() and len(cadence_id) <= 9 else None
    return render(request, "experiments/_steps.html", {"steps": _steps(session, chosen)},
                  user=user)


@page_router.post("/experiments")
def create_page(request: Request, session: SessionDep, user: Manager, _csrf: Csrf,
                form: FormDep) -> RedirectResponse:
    """Start an experiment from the form."""
    data = _experiment_in(form)
    experiment = service.create_experiment(
        session=session, name=data.name, cadence_id=data.cadence_id, arms=data.arms,
        metric=data.metric, step_id=data.step_id, actor_id=user.id, now=clock.now())
    flash(request, N_("The experiment is running: new enrollments are split between the arms."))
    return RedirectResponse(f"/experiments/{experiment.id}", status_code=303)


@page_router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def report_page(experiment_id: DbId, request: Request, session: SessionDep,
                user: Reader) -> HTMLResponse:
    """The report: verdict, sample still needed, a table and charts per metric, stop."""
    rep = service.experiment_report(session=session, experiment_id=experiment_id,
                                    now=clock.now())
    locale = resolve_locale(request, user)
    metric_names = {m: gettext(locale, label) for m, label in METRIC_LABELS.items()}
    cadence_ids = {rep.experiment.cadence_id, *(a.cadence_id for a in rep.arms if a.cadence_id)}
    cadences = {c.id: c.name for c in session.scalars(select(Cadence)
                                                       .where(Cadence.id.in_(cadence_ids)))}
    step = session.get(CadenceStep, rep.experiment.step_id) if rep.experiment.step_id else None
    return render(request, "experiments/report.html", {
        "report": rep, "experiment": rep.experiment, "cadence_names": cadences, "step": step,
        "arm_labels": {a.key: a.label for a in rep.arms},
        "arm_by_key": {a.key: a for a in rep.arms},
        "winner_arm": next((a for a in rep.arms if a.id == rep.experiment.winner_arm_id), None),
        "posterior_chart": experiment_charts.posteriors(rep.verdict),
        "interval_chart": experiment_charts.intervals(rep.verdicts, metric_names),
        **LABELS,
    }, user=user)


@page_router.post("/experiments/{experiment_id}/stop")
def stop_page(experiment_id: DbId, request: Request, session: SessionDep, user: Manager,
              _csrf: Csrf, form: FormDep) -> RedirectResponse:
    """Stop the experiment; the button names the winner (or none)."""
    winner = _optional_id(form, "winner_arm_id")
    service.stop_experiment(session=session, experiment_id=experiment_id,
                            winner_arm_id=winner, actor_id=user.id, now=clock.now())
    flash(request, N_("The experiment was stopped."))
    return RedirectResponse(f"/experiments/{experiment_id}", status_code=303)
