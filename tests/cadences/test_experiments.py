"""A/B tests on a real database: set-up rules, randomised arms, counts from enrollment rows,
the report, stopping; the API and the pages through the test client."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from leadflow.audit.models import AuditEntry
from leadflow.cadences import experiments as service
from leadflow.cadences.abtest import Decision, Metric
from leadflow.cadences.experiment_schemas import ArmIn
from leadflow.cadences.models import (
    Cadence,
    CadenceStep,
    Channel,
    Enrollment,
    EnrollmentStatus,
    Experiment,
)
from leadflow.errors import Conflict, InvalidInput
from leadflow.leads.models import Lead
from leadflow.users.models import Role

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def make_cadence(session: Session, name: str, now: datetime) -> Cadence:
    """A cadence with one email step."""
    cadence = Cadence(name=name, created_at=now, updated_at=now)
    session.add(cadence)
    session.flush()
    session.add(CadenceStep(cadence_id=cadence.id, position=1, channel=Channel.EMAIL,
                            automatic=True, subject="你好 {name}", body="Intro"))
    session.flush()
    return cadence


def step_of(session: Session, cadence: Cadence) -> CadenceStep:
    step = session.scalar(select(CadenceStep).where(CadenceStep.cadence_id == cadence.id))
    assert step is not None
    return step


def enroll(session: Session, *, experiment: Experiment, arm_key: str, n: int, now: datetime,
           **outcomes: int) -> None:
    """``n`` enrollments of new leads into one arm; the first ``outcomes[m]`` of them
    stamped with outcome ``m`` (contacted=…, replied=…, meeting=…, converted=…)."""
    arm = next(a for a in service.arms_of(session=session, experiment_id=experiment.id)
               if a.key == arm_key)
    lead_ids = list(session.scalars(
        insert(Lead).returning(Lead.id),
        [{"name": f"Lead {arm_key}{i}", "created_at": now, "updated_at": now}
         for i in range(n)]))
    rows: list[dict[str, Any]] = []
    for i, lead_id in enumerate(lead_ids):
        row: dict[str, Any] = {
            "lead_id": lead_id, "cadence_id": arm.cadence_id or experiment.cadence_id,
            "experiment_id": experiment.id, "arm_id": arm.id,
            "status": EnrollmentStatus.COMPLETED, "started_at": now, "updated_at": now}
        for metric in Metric:
            row[f"{metric.value}_at"] = now if i < outcomes.get(metric.value, 0) else None
        rows.append(row)
    session.execute(insert(Enrollment), rows)
    session.flush()


def cadence_test(session: Session, now: datetime, *, weights: tuple[float, float] = (1, 1),
                 metric: Metric = Metric.REPLIED) -> Experiment:
    """A running test of cadence "7 in 7" (A, the control) against "9 in 18" (B)."""
    base = make_cadence(session, "7 in 7", now)
    variant = make_cadence(session, "9 in 18", now)
    return service.create_experiment(
        session=session, name="Shorter or longer", cadence_id=base.id, metric=metric,
        arms=[ArmIn(key="A", label="7 touches", weight=weights[0]),
              ArmIn(key="B", label="9 touches", cadence_id=variant.id, weight=weights[1])],
        actor_id=None, now=now)


# --------------------------------------------------------------------------- set-up rules


def test_creates_a_cadence_test_with_its_arms_and_an_audit_entry(session: Session,
                                                                  now: datetime) -> None:
    experiment = cadence_test(session, now)
    arms = service.arms_of(session=session, experiment_id=experiment.id)
    assert [a.key for a in arms] == ["A", "B"]
    assert arms[0].cadence_id is None and arms[1].cadence_id is not None
    assert experiment.is_running and experiment.started_at == now
    assert experiment.metric == "replied"
    assert session.scalar(select(AuditEntry.action)) == "experiment.create"


@pytest.mark.parametrize(("arms", "message"), [
    ([ArmIn(key="A")], service.TWO_ARMS),
    ([ArmIn(key="A"), ArmIn(key="a")], service.DUPLICATE_KEYS),
    ([ArmIn(key="A"), ArmIn(key="B", cadence_id=999_999)], service.NO_CADENCE),
    ([ArmIn(key="A"), ArmIn(key="B", subject="New subject")], service.CADENCE_ARMS_NO_TEMPLATE),
])
def test_refuses_bad_arms(session: Session, now: datetime, arms: list[ArmIn],
                          message: str) -> None:
    base = make_cadence(session, "Base", now)
    with pytest.raises(InvalidInput) as err:
        service.create_experiment(session=session, name="x", cadence_id=base.id, arms=arms,
                                  metric="replied", actor_id=None, now=now)
    assert err.value.message == message


def test_a_template_test_varies_templates_of_its_own_cadences_step(session: Session,
                                                                   now: datetime) -> None:
    base = make_cadence(session, "Base", now)
    other = make_cadence(session, "Other", now)
    with pytest.raises(InvalidInput, match="not part of the cadence"):
        service.create_experiment(session=session, name="x", cadence_id=base.id,
                                  step_id=step_of(session, other).id, metric="replied",
                                  arms=[ArmIn(key="A"), ArmIn(key="B", subject="Hi")],
                                  actor_id=None, now=now)
    with pytest.raises(InvalidInput, match="not the cadence"):
        service.create_experiment(session=session, name="x", cadence_id=base.id,
                                  step_id=step_of(session, base).id, metric="replied",
                                  arms=[ArmIn(key="A"), ArmIn(key="B", cadence_id=other.id)],
                                  actor_id=None, now=now)
    with pytest.raises(InvalidInput, match="contacted, replied"):
        service.create_experiment(session=session, name="x", cadence_id=base.id,
                                  metric="opened", arms=[ArmIn(key="A"), ArmIn(key="B")],
                                  actor_id=None, now=now)


def test_one_running_experiment_per_cadence(session: Session, now: datetime) -> None:
    experiment = cadence_test(session, now)
    with pytest.raises(Conflict):
        service.create_experiment(session=session, name="again",
                                  cadence_id=experiment.cadence_id, metric="replied",
                                  arms=[ArmIn(key="A"), ArmIn(key="B")], actor_id=None,
                                  now=now)
    service.stop_experiment(session=session, experiment_id=experiment.id, winner_arm_id=None,
                            actor_id=None, now=now)
    again = service.create_experiment(session=session, name="again",
                                      cadence_id=experiment.cadence_id, metric="replied",
                                      arms=[ArmIn(key="A"), ArmIn(key="B")], actor_id=None,
                                      now=now)
    assert again.is_running


# --------------------------------------------------------------------------- randomisation


def test_choose_arm_is_none_without_a_running_experiment(session: Session,
                                                         now: datetime) -> None:
    base = make_cadence(session, "Base", now)
    assert service.choose_arm(session=session, cadence_id=base.id,
                              rng=random.Random(1)) is None


def test_choose_arm_respects_weights(session: Session, now: datetime) -> None:
    experiment = cadence_test(session, now, weights=(1, 3))
    arms = {a.key: a for a in service.arms_of(session=session, experiment_id=experiment.id)}
    rng = random.Random(42)
    draws = 4_000
    picks = Counter()
    for _ in range(draws):
        choice = service.choose_arm(session=session, cadence_id=experiment.cadence_id, rng=rng)
        assert choice is not None and choice.experiment_id == experiment.id
        picks[choice.arm_key] += 1
        expected_cadence = arms[choice.arm_key].cadence_id or experiment.cadence_id
        assert choice.cadence_id == expected_cadence
        assert choice.step_id is None and choice.subject is None
    # 3 in 4 for B; four standard deviations is about ±0.027.
    assert abs(picks["B"] / draws - 0.75) < 0.03


def test_pick_weighted_is_uniform_for_equal_weights() -> None:
    rng = random.Random(7)
    picks = Counter(service.pick_weighted("ABC", [1.0, 1.0, 1.0], rng) for _ in range(6_000))
    assert all(abs(picks[k] / 6_000 - 1 / 3) < 0.03 for k in "ABC")


def test_choose_arm_of_a_template_test_gives_the_overrides(session: Session,
                                                           now: datetime) -> None:
    base = make_cadence(session, "Base", now)
    step = step_of(session, base)
    experiment = service.create_experiment(
        session=session, name="Subject lines", cadence_id=base.id, step_id=step.id,
        metric="replied", actor_id=None, now=now,
        arms=[ArmIn(key="A"), ArmIn(key="B", subject="最后一次打扰", weight=1e-9),
              ArmIn(key="C", subject="Quick question", body="Short body", weight=100)])
    choice = service.choose_arm(session=session, cadence_id=base.id, rng=random.Random(3))
    assert choice is not None
    assert (choice.arm_key, choice.cadence_id, choice.step_id) == ("C", base.id, step.id)
    assert (choice.subject, choice.body) == ("Quick question", "Short body")
    service.stop_experiment(session=session, experiment_id=experiment.id, winner_arm_id=None,
                            actor_id=None, now=now)
    assert service.choose_arm(session=session, cadence_id=base.id, rng=random.Random(3)) is None


# --------------------------------------------------------------------------- counts, report


def test_arm_counts_come_from_the_enrollment_rows(session: Session, now: datetime) -> None:
    experiment = cadence_test(session, now)
    enroll(session, experiment=experiment, arm_key="A", n=50, now=now, contacted=40,
           replied=5, meeting=2, converted=1)
    enroll(session, experiment=experiment, arm_key="B", n=30, now=now, contacted=30,
           replied=9)
    other = service.create_experiment(
        session=session, name="Elsewhere", cadence_id=make_cadence(session, "X", now).id,
        metric="replied", arms=[ArmIn(key="A"), ArmIn(key="B")], actor_id=None, now=now)
    enroll(session, experiment=other, arm_key="A", n=7, now=now, replied=7)
    counts = {c.key: c for c in service.arm_counts(session=session, experiment_id=experiment.id)}
    assert (counts["A"].enrolled, counts["A"].contacted, counts["A"].replied,
            counts["A"].meeting, counts["A"].converted) == (50, 40, 5, 2, 1)
    assert (counts["B"].enrolled, counts["B"].replied, counts["B"].meeting) == (30, 9, 0)
    assert counts["B"].successes(Metric.CONTACTED) == 30


def test_arms_without_enrollments_are_counted_as_zero(session: Session, now: datetime) -> None:
    experiment = cadence_test(session, now)
    counts = service.arm_counts(session=session, experiment_id=experiment.id)
    assert [(c.key, c.enrolled, c.replied) for c in counts] == [("A", 0, 0), ("B", 0, 0)]
    report = service.experiment_report(session=session, experiment_id=experiment.id, now=now)
    assert report.verdict.decision is Decision.COLLECTING
    assert report.verdict.more_per_arm == 30


def test_report_finds_the_planted_winner(session: Session, now: datetime) -> None:
    """A replies 10% of the time, B 17%, over 600 leads each: B wins on replies; contact
    rates are close (no winner), conversions too rare to read."""
    experiment = cadence_test(session, now - timedelta(days=10))
    enroll(session, experiment=experiment, arm_key="A", n=600, now=now, contacted=400,
           replied=60, meeting=12, converted=3)
    enroll(session, experiment=experiment, arm_key="B", n=600, now=now, contacted=410,
           replied=102, meeting=30, converted=4)
    report = service.experiment_report(session=session, experiment_id=experiment.id, now=now,
                                       rng=np.random.default_rng(0))
    assert [v.metric for v in report.verdicts] == ["replied", "contacted", "meeting",
                                                   "converted"]
    replied = report.verdict
    assert replied.decision is Decision.WINNER and replied.winner == "B"
    assert replied.summary.startswith("B gets replies 70% more often than A")
    by_metric = {v.metric: v for v in report.verdicts}
    assert by_metric["contacted"].decision is Decision.CONTINUE
    assert by_metric["contacted"].more_per_arm is not None
    assert by_metric["converted"].decision is Decision.COLLECTING
    assert report.enrolled == 1_200
    assert report.days_running == pytest.approx(10)
    assert report.leads_per_day == pytest.approx(120)
    assert report.days_needed is None  # the deciding metric is decided


def test_report_gives_the_days_still_needed_at_the_current_pace(session: Session,
                                                                now: datetime) -> None:
    experiment = cadence_test(session, now - timedelta(days=4))
    enroll(session, experiment=experiment, arm_key="A", n=100, now=now, replied=10)
    enroll(session, experiment=experiment, arm_key="B", n=100, now=now, replied=14)
    report = service.experiment_report(session=session, experiment_id=experiment.id, now=now)
    assert report.verdict.decision is Decision.CONTINUE
    assert report.verdict.more_total is not None and report.leads_per_day == 50
    assert report.days_needed == pytest.approx(report.verdict.more_total / 50)
    # Seeded by the experiment and its enrollments: a reload shows the same figures.
    again = service.experiment_report(session=session, experiment_id=experiment.id, now=now)
    assert again.verdict.prob_best == report.verdict.prob_best


def test_stop_records_the_winner_once(session: Session, now: datetime) -> None:
    experiment = cadence_test(session, now)
    other = service.create_experiment(
        session=session, name="Elsewhere", cadence_id=make_cadence(session, "X", now).id,
        metric="replied", arms=[ArmIn(key="A"), ArmIn(key="B")], actor_id=None, now=now)
    foreign = service.arms_of(session=session, experiment_id=other.id)[0]
    with pytest.raises(InvalidInput):
        service.stop_experiment(session=session, experiment_id=experiment.id,
                                winner_arm_id=foreign.id, actor_id=None, now=now)
    b = service.arms_of(session=session, experiment_id=experiment.id)[1]
    later = now + timedelta(days=3)
    stopped = service.stop_experiment(session=session, experiment_id=experiment.id,
                                      winner_arm_id=b.id, actor_id=None, now=later)
    assert (stopped.is_running, stopped.ended_at, stopped.winner_arm_id) == (False, later, b.id)
    with pytest.raises(Conflict):
        service.stop_experiment(session=session, experiment_id=experiment.id,
                                winner_arm_id=None, actor_id=None, now=later)


# --------------------------------------------------------------------------- API


def _cadences_committed(session: Session, now: datetime) -> tuple[int, int]:
    base, variant = make_cadence(session, "7 in 7", now), make_cadence(session, "9 in 18", now)
    session.commit()
    return base.id, variant.id


def test_api_creates_reports_and_stops(client: TestClient, session: Session, now: datetime,
                                       api_token) -> None:  # type: ignore[no-untyped-def]
    base, variant = _cadences_committed(session, now)
    headers = api_token(Role.MANAGER)
    body = {"name": "Longer cadence", "cadence_id": base, "metric": "meeting",
            "arms": [{"key": "a", "label": "control"},
                     {"key": "b", "label": "longer", "cadence_id": variant, "weight": 2}]}
    resp = client.post("/api/v1/experiments", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert [a["key"] for a in created["arms"]] == ["A", "B"]
    exp_id = created["id"]

    assert client.post("/api/v1/experiments", json=body, headers=headers).status_code == 409
    listed = client.get("/api/v1/experiments", headers=headers).json()
    assert [e["id"] for e in listed] == [exp_id]

    report = client.get(f"/api/v1/experiments/{exp_id}/report", headers=headers).json()
    assert [v["metric"] for v in report["verdicts"]] == ["meeting", "contacted", "replied",
                                                         "converted"]
    assert report["verdicts"][0]["decision"] == "collecting"
    assert {a["label"] for a in report["verdicts"][0]["arms"]} == {"control", "longer"}

    winner = created["arms"][1]["id"]
    resp = client.post(f"/api/v1/experiments/{exp_id}/stop", json={"winner_arm_id": winner},
                       headers=headers)
    assert resp.status_code == 200 and resp.json()["winner_arm_id"] == winner
    assert client.get(f"/api/v1/experiments/{exp_id}/report",
                      headers=headers).status_code == 200


def test_api_needs_the_right_role(client: TestClient, session: Session, now: datetime,
                                  api_token) -> None:  # type: ignore[no-untyped-def]
    base, _ = _cadences_committed(session, now)
    body = {"name": "x", "cadence_id": base, "arms": [{"key": "A"}, {"key": "B"}]}
    assert client.post("/api/v1/experiments", json=body).status_code == 401
    rep = api_token(Role.REP)
    assert client.post("/api/v1/experiments", json=body, headers=rep).status_code == 403
    assert client.get("/api/v1/experiments", headers=rep).status_code == 403
    lead = api_token(Role.TEAM_LEAD)
    assert client.get("/api/v1/experiments", headers=lead).status_code == 200
    assert client.post("/api/v1/experiments", json=body, headers=lead).status_code == 403
    assert client.get("/api/v1/experiments/999999/report",
                      headers=lead).status_code == 404


# --------------------------------------------------------------------------- pages


def _csrf(client: TestClient, page: str = "/experiments") -> str:
    match = CSRF_META.search(client.get(page).text)
    assert match
    return match.group(1)


def test_pages_create_report_and_stop(client: TestClient, session: Session, now: datetime,
                                      login) -> None:  # type: ignore[no-untyped-def]
    client.headers["Accept"] = "text/html,*/*;q=0.8"
    base, variant = _cadences_committed(session, now)
    login(Role.MANAGER)
    page = client.get("/experiments")
    assert page.status_code == 200 and "New A/B test" in page.text

    steps = client.get(f"/experiments/steps?cadence_id={base}")
    assert "Step 1" in steps.text

    resp = client.post("/experiments", data={
        "csrf": _csrf(client), "name": "Longer cadence", "cadence_id": str(base),
        "step_id": "", "metric": "replied", "arm_A_label": "7 touches",
        "arm_B_label": "9 touches", "arm_B_cadence_id": str(variant), "arm_B_weight": "1",
    }, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    exp_id = int(resp.headers["location"].rsplit("/", 1)[1])
    experiment = session.get(Experiment, exp_id)
    assert experiment is not None
    enroll(session, experiment=experiment, arm_key="A", n=600, now=now, replied=60)
    enroll(session, experiment=experiment, arm_key="B", n=600, now=now, replied=102)
    session.commit()

    report = client.get(f"/experiments/{exp_id}")
    assert report.status_code == 200
    text = report.text
    assert "B gets replies 70% more often than A; &gt;99% chance B is best; winner clear." in text
    assert 'id="posterior-chart"' in text and 'id="interval-chart"' in text
    assert "95% credible interval" in text and "Stop: B wins" in text
    assert "9 in 18" in text

    arm_b = service.arms_of(session=session, experiment_id=exp_id)[1]
    resp = client.post(f"/experiments/{exp_id}/stop",
                       data={"csrf": _csrf(client), "winner_arm_id": str(arm_b.id)},
                       follow_redirects=False)
    assert resp.status_code == 303
    session.expire_all()
    assert session.get(Experiment, exp_id).winner_arm_id == arm_b.id  # type: ignore[union-attr]
    assert "Stopped with B as the winner." in client.get(f"/experiments/{exp_id}").text


def test_stop_needs_the_csrf_token(client: TestClient, session: Session, now: datetime,
                                   login) -> None:  # type: ignore[no-untyped-def]
    client.headers["Accept"] = "text/html,*/*;q=0.8"
    experiment = cadence_test(session, now)
    session.commit()
    login(Role.MANAGER)
    resp = client.post(f"/experiments/{experiment.id}/stop", data={"winner_arm_id": ""},
                       follow_redirects=False)
    assert resp.status_code == 403
    session.expire_all()
    assert session.get(Experiment, experiment.id).is_running  # type: ignore[union-attr]


def test_a_bad_form_is_explained(client: TestClient, session: Session, now: datetime,
                                 login) -> None:  # type: ignore[no-untyped-def]
    client.headers["Accept"] = "text/html,*/*;q=0.8"
    base, _ = _cadences_committed(session, now)
    login(Role.MANAGER)
    resp = client.post("/experiments", data={
        "csrf": _csrf(client), "name": "x", "cadence_id": str(base), "metric": "replied",
        "arm_B_subject": "A new subject"}, follow_redirects=False)
    assert resp.status_code == 422
    assert "choose a step to test a template" in resp.text


def test_team_leads_read_reports_in_chinese_but_cannot_stop(
        client: TestClient, session: Session, now: datetime,
        login) -> None:  # type: ignore[no-untyped-def]
    client.headers["Accept"] = "text/html,*/*;q=0.8"
    experiment = cadence_test(session, now)
    session.commit()
    login(Role.TEAM_LEAD)
    client.get("/lang/zh")
    page = client.get(f"/experiments/{experiment.id}")
    assert page.status_code == 200
    assert "stop-form" not in page.text
    assert "可信区间" in page.text
    assert "新建 A/B 测试" not in client.get("/experiments").text
    assert client.post(f"/experiments/{experiment.id}/stop",
                       data={"csrf": _csrf(client), "winner_arm_id": ""},
                       follow_redirects=False).status_code == 403


def test_reps_do_not_see_experiments(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    client.headers["Accept"] = "text/html,*/*;q=0.8"
    login(Role.REP)
    assert client.get("/experiments").status_code == 403
