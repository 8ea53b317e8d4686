"""A/B tests of cadences and step templates: create, randomise enrollments, report, stop.

The statistics are in ``abtest`` (pure); this module reads and writes the rows. Enrollment
code asks :func:`choose_arm` which variant a new enrollment gets and stamps the enrollment
with the experiment and arm; outcomes (contacted, replied, meeting, converted) are stamped
on the enrollment by the cadence service, and :func:`arm_counts` counts them in SQL.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from leadflow.audit import service as audit_service
from leadflow.cadences import abtest
from leadflow.cadences.abtest import Metric, Verdict
from leadflow.cadences.experiment_schemas import ArmIn
from leadflow.cadences.models import Cadence, CadenceStep, Enrollment, Experiment, ExperimentArm
from leadflow.errors import Conflict, InvalidInput, NotFound

# Messages users see (translated by the pages; listed for extraction in experiment_routes).
NO_CADENCE = "That cadence does not exist."
STEP_NOT_IN_CADENCE = "That step is not part of the cadence."
TWO_ARMS = "An experiment needs at least two arms."
DUPLICATE_KEYS = "Each arm needs its own key."
STEP_ARMS_NO_CADENCE = "A template test varies the step's subject and body, not the cadence."
CADENCE_ARMS_NO_TEMPLATE = "A cadence test varies the cadence; choose a step to test a template."
ALREADY_RUNNING = "This cadence already has a running experiment; stop it first."
NOT_RUNNING = "The experiment has already stopped."
WINNER_NOT_AN_ARM = "The winner must be one of the experiment's arms."
UNKNOWN_METRIC = "Choose contacted, replied, meeting or converted."

# The outcome stamp each metric counts.
OUTCOME_COLUMNS: dict[Metric, InstrumentedAttribute[datetime | None]] = {
    Metric.CONTACTED: Enrollment.contacted_at,
    Metric.REPLIED: Enrollment.replied_at,
    Metric.MEETING: Enrollment.meeting_at,
    Metric.CONVERTED: Enrollment.converted_at,
}


@dataclass(frozen=True)
class ArmChoice:
    """The variant a new enrollment gets.

    ``cadence_id`` is the cadence to enroll into (the arm's own in a cadence test, else the
    experiment's); ``subject`` / ``body``, when not None, replace the template of step
    ``step_id`` for this enrollment.
    """

    experiment_id: int
    arm_id: int
    arm_key: str
    cadence_id: int
    step_id: int | None
    subject: str | None
    body: str | None


@dataclass(frozen=True)
class ArmCounts:
    """One arm's enrollments and how many of them reached each outcome."""

    arm_id: int
    key: str
    label: str
    weight: float
    enrolled: int
    contacted: int
    replied: int
    meeting: int
    converted: int

    def successes(self, metric: Metric) -> int:
        """The count of enrollments that reached ``metric``."""
        return int(getattr(self, Metric(metric).value))


@dataclass(frozen=True)
class ExperimentReport:
    """An experiment with its counts and a verdict per metric (the deciding metric first)."""

    experiment: Experiment
    arms: list[ExperimentArm]
    counts: list[ArmCounts]
    verdicts: list[Verdict]
    days_running: float
    leads_per_day: float | None
    days_needed: float | None

    @property
    def verdict(self) -> Verdict:
        """The verdict on the metric the experiment is judged on."""
        return self.verdicts[0]

    @property
    def enrolled(self) -> int:
        """Enrollments in every arm."""
        return sum(c.enrolled for c in self.counts)


# --------------------------------------------------------------------------- set up


def create_experiment(*, session: Session, name: str, cadence_id: int, arms: Sequence[ArmIn],
                      metric: Metric | str, step_id: int | None = None,
                      actor_id: int | None, now: datetime) -> Experiment:
    """Start an A/B test on a cadence, or on one of its steps' templates.

    1. The cadence exists; a step, when given, belongs to it.
    2. At least two arms with distinct keys. In a cadence test each arm names a cadence
       (none: the experiment's own, the control) and no template; in a template test each
       arm has a subject and/or body (none: the step as it is) and no cadence.
    3. One running experiment per cadence, so an enrollment's arm is never ambiguous.
    """
    try:
        metric = Metric(metric)
    except ValueError:
        raise InvalidInput(UNKNOWN_METRIC, field="metric") from None
    if session.get(Cadence, cadence_id) is None:
        raise InvalidInput(NO_CADENCE, field="cadence_id")
    if step_id is not None:
        step = session.get(CadenceStep, step_id)
        if step is None or step.cadence_id != cadence_id:
            raise InvalidInput(STEP_NOT_IN_CADENCE, field="step_id")
    if len(arms) < 2:
        raise InvalidInput(TWO_ARMS, field="arms")
    if len({arm.key for arm in arms}) != len(arms):
        raise InvalidInput(DUPLICATE_KEYS, field="arms")
    for arm in arms:
        if step_id is not None and arm.cadence_id is not None:
            raise InvalidInput(STEP_ARMS_NO_CADENCE, field="arms")
        if step_id is None and (arm.subject is not None or arm.body is not None):
            raise InvalidInput(CADENCE_ARMS_NO_TEMPLATE, field="arms")
        if arm.cadence_id is not None and session.get(Cadence, arm.cadence_id) is None:
            raise InvalidInput(NO_CADENCE, field="arms")
    running = session.scalar(select(Experiment.id).where(
        Experiment.cadence_id == cadence_id, Experiment.is_running.is_(True)).limit(1))
    if running is not None:
        raise Conflict(ALREADY_RUNNING)

    experiment = Experiment(name=name.strip(), cadence_id=cadence_id, step_id=step_id,
                            metric=metric.value, is_running=True, started_at=now,
                            created_by_id=actor_id)
    session.add(experiment)
    session.flush()
    session.add_all([
        ExperimentArm(experiment_id=experiment.id, key=arm.key, label=arm.label.strip(),
                      cadence_id=arm.cadence_id, subject=arm.subject, body=arm.body,
                      weight=arm.weight)
        for arm in arms
    ])
    session.flush()
    audit_service.record(session=session, actor_id=actor_id, action="experiment.create",
                         now=now, target=f"experiment:{experiment.id}",
                         detail={"cadence_id": cadence_id, "step_id": step_id,
                                 "metric": metric.value, "arms": [a.key for a in arms]})
    return experiment


def get_experiment(*, session: Session, experiment_id: int) -> Experiment:
    """The experiment, else NotFound."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} not found")
    return experiment


def list_experiments(*, session: Session) -> list[Experiment]:
    """Every experiment, running ones first, newest first."""
    return list(session.scalars(
        select(Experiment).order_by(Experiment.is_running.desc(), Experiment.id.desc())))


def arms_of(*, session: Session, experiment_id: int) -> list[ExperimentArm]:
    """The experiment's arms in creation order (the first is the control)."""
    return list(session.scalars(select(ExperimentArm)
                                .where(ExperimentArm.experiment_id == experiment_id)
                                .order_by(ExperimentArm.id)))


def stop_experiment(*, session: Session, experiment_id: int, winner_arm_id: int | None,
                    actor_id: int | None, now: datetime) -> Experiment:
    """End a running experiment; new enrollments get the base cadence again.

    ``winner_arm_id`` records the decision (None: no winner, e.g. "practically the same").
    Rolling the winner out (making its cadence the default, copying its template) is the
    cadence owner's edit, not done here.
    """
    experiment = get_experiment(session=session, experiment_id=experiment_id)
    if not experiment.is_running:
        raise Conflict(NOT_RUNNING)
    if winner_arm_id is not None:
        arm = session.get(ExperimentArm, winner_arm_id)
        if arm is None or arm.experiment_id != experiment_id:
            raise InvalidInput(WINNER_NOT_AN_ARM, field="winner_arm_id")
    experiment.is_running = False
    experiment.ended_at = now
    experiment.winner_arm_id = winner_arm_id
    session.flush()
    audit_service.record(session=session, actor_id=actor_id, action="experiment.stop",
                         now=now, target=f"experiment:{experiment_id}",
                         detail={"winner_arm_id": winner_arm_id})
    return experiment


# --------------------------------------------------------------------------- enrollment


def choose_arm(*, session: Session, cadence_id: int, rng: random.Random) -> ArmChoice | None:
    """The variant for a new enrollment into ``cadence_id``, or None when nothing is tested.

    The running experiment on the cadence (the newest, should two ever run) draws an arm
    with probability proportional to its weight.
    """
    running = running_experiments(session=session, cadence_ids=[cadence_id])
    return draw_arm(*running[cadence_id], rng) if cadence_id in running else None


def running_experiments(*, session: Session, cadence_ids: Sequence[int] | None = None
                        ) -> dict[int, tuple[Experiment, list[ExperimentArm]]]:
    """The running experiment of each cadence (the newest, should two ever run) with its
    arms, in two queries: enrolling a batch draws arms without a query per lead."""
    stmt = select(Experiment).where(Experiment.is_running.is_(True)).order_by(Experiment.id)
    if cadence_ids is not None:
        stmt = stmt.where(Experiment.cadence_id.in_(cadence_ids))
    newest = {e.cadence_id: e for e in session.scalars(stmt)}
    if not newest:
        return {}
    arms: dict[int, list[ExperimentArm]] = {e.id: [] for e in newest.values()}
    for arm in session.scalars(select(ExperimentArm).where(
            ExperimentArm.experiment_id.in_(list(arms))).order_by(ExperimentArm.id)):
        arms[arm.experiment_id].append(arm)
    return {cadence: (e, arms[e.id]) for cadence, e in newest.items() if arms[e.id]}


def draw_arm(experiment: Experiment, arms: Sequence[ExperimentArm],
             rng: random.Random) -> ArmChoice:
    """Draw one of ``arms`` by weight for a new enrollment."""
    arm = pick_weighted(arms, [a.weight for a in arms], rng)
    return ArmChoice(experiment_id=experiment.id, arm_id=arm.id, arm_key=arm.key,
                     cadence_id=arm.cadence_id or experiment.cadence_id,
                     step_id=experiment.step_id, subject=arm.subject, body=arm.body)


def pick_weighted(items: Sequence[Any], weights: Sequence[float], rng: random.Random) -> Any:
    """One of ``items``, with probability proportional to its weight (equal when all 0)."""
    total = sum(max(w, 0.0) for w in weights)
    if total <= 0:
        return items[rng.randrange(len(items))]
    point = rng.random() * total
    for item, weight in zip(items, weights, strict=True):
        point -= max(weight, 0.0)
        if point < 0:
            return item
    return items[-1]  # rounding at the top end


# --------------------------------------------------------------------------- report


def arm_counts(*, session: Session, experiment_id: int) -> list[ArmCounts]:
    """Per arm: enrollments and non-null outcome stamps, counted in one GROUP BY.

    Arms without enrollments yet are listed with zeros (outer join).
    """
    stamps = [func.count(column) for column in OUTCOME_COLUMNS.values()]
    rows = session.execute(
        select(ExperimentArm.id, ExperimentArm.key, ExperimentArm.label,
               ExperimentArm.weight, func.count(Enrollment.id), *stamps)
        .select_from(ExperimentArm)
        .outerjoin(Enrollment, and_(Enrollment.arm_id == ExperimentArm.id,
                                    Enrollment.experiment_id == ExperimentArm.experiment_id))
        .where(ExperimentArm.experiment_id == experiment_id)
        .group_by(ExperimentArm.id, ExperimentArm.key, ExperimentArm.label,
                  ExperimentArm.weight)
        .order_by(ExperimentArm.id)
    ).all()
    return [ArmCounts(arm_id=r[0], key=r[1], label=r[2], weight=float(r[3]), enrolled=r[4],
                      contacted=r[5], replied=r[6], meeting=r[7], converted=r[8])
            for r in rows]


def experiment_report(*, session: Session, experiment_id: int, now: datetime,
                      rng: np.random.Generator | None = None,
                      rule: abtest.DecisionRule = abtest.DecisionRule()) -> ExperimentReport:
    """Counts and a verdict for every metric, the experiment's own metric first.

    ``rng`` drives the Monte Carlo of P(best); by default it is seeded by the experiment
    and its enrollment count, so reloading the page shows the same figures until new
    leads arrive. ``now`` gives the pace: leads per day so far, and the days the sample
    still needed takes at that pace (while running).
    """
    experiment = get_experiment(session=session, experiment_id=experiment_id)
    arms = arms_of(session=session, experiment_id=experiment_id)
    counts = arm_counts(session=session, experiment_id=experiment_id)
    enrolled = sum(c.enrolled for c in counts)
    if rng is None:
        rng = np.random.default_rng([experiment_id, enrolled])
    primary = Metric(experiment.metric)
    metrics = [primary, *(m for m in Metric if m is not primary)]
    verdicts = [
        abtest.evaluate([abtest.ArmData(key=c.key, enrolled=c.enrolled,
                                        successes=c.successes(m), weight=c.weight)
                         for c in counts], rng=rng, metric=m, rule=rule)
        for m in metrics
    ]
    end = experiment.ended_at or now
    days = max((end - experiment.started_at).total_seconds() / 86_400, 0.0)
    # Under a day the pace is noise: leave it out rather than promise "in 2 hours".
    per_day = enrolled / days if days >= 1 and enrolled else None
    needed = verdicts[0].more_total
    days_needed = (needed / per_day if experiment.is_running and per_day and needed is not None
                   else None)
    return ExperimentReport(experiment=experiment, arms=arms, counts=counts, verdicts=verdicts,
                            days_running=days, leads_per_day=per_day, days_needed=days_needed)
