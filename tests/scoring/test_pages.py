"""Scoring pages: grades on lists and lead pages, the admin page, reports, flags."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.leads.models import Lead
from leadflow.scoring import learning
from leadflow.scoring import service as scoring_service
from leadflow.scoring.history import planted_history
from leadflow.scoring.models import GradeFlag, ScoringRuleset
from leadflow.scoring.schemas import ActivityIn
from leadflow.users.models import Role

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture(autouse=True)
def _browser_accept(client: TestClient) -> None:
    client.headers["Accept"] = "text/html,*/*;q=0.8"


def csrf(client: TestClient, page: str = "/leads") -> str:
    match = CSRF_META.search(client.get(page).text)
    assert match
    return match.group(1)


def hot_lead(client: TestClient, session: Session, now: datetime) -> int:
    resp = client.post("/api/v1/leads", headers=_token(client, session),
                       json={"source": "web", "external_id": "h1", "name": "王芳",
                             "phone": "13800001111", "industry": "教育"})
    lead_id = int(resp.json()["lead_id"])
    row = session.get(Lead, lead_id)
    assert row is not None
    for kind in ("community_class", "paid_consultation"):
        scoring_service.record_activity(session=session, lead=row, actor_id=None, now=now,
                                        activity=ActivityIn(kind=kind))
    session.commit()
    return lead_id


def _token(client: TestClient, session: Session) -> dict[str, str]:
    from leadflow.users import service as users_service
    from leadflow.users.models import User

    user = session.scalar(select(User).where(User.role == Role.ADMIN).limit(1))
    assert user is not None
    token = users_service.issue_api_token(session=session, user=user, name="t",
                                          now=datetime.now().astimezone())
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_lead_page_shows_grade_reasons_and_takes_a_flag(
    client: TestClient, login, session: Session, now: datetime  # type: ignore[no-untyped-def]
) -> None:
    login(Role.ADMIN)
    lead_id = hot_lead(client, session, now)
    page = client.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    assert 'class="grade grade-Aplus"' in page.text
    assert "Paid consultation after a community course" in page.text
    assert "attended community classes 1×" in page.text
    listing = client.get("/leads?grade=A%2B")
    assert f'href="/leads/{lead_id}"' in listing.text
    assert f'href="/leads/{lead_id}"' not in client.get("/leads?grade=D").text
    resp = client.post(f"/leads/{lead_id}/grade-flags", follow_redirects=False,
                       data={"csrf": csrf(client), "reason": "只是学生, 没有预算",
                             "suggested_grade": "C"})
    assert resp.status_code == 303
    assert session.scalar(select(func.count()).select_from(GradeFlag)) == 1
    report = client.get(f"/scoring/calibration?month={now:%Y-%m}")
    assert report.status_code == 200 and "只是学生, 没有预算" in report.text


def test_flag_needs_a_reason(client: TestClient, login, session: Session,  # type: ignore[no-untyped-def]
                             now: datetime) -> None:
    login(Role.ADMIN)
    lead_id = hot_lead(client, session, now)
    resp = client.post(f"/leads/{lead_id}/grade-flags", data={"csrf": csrf(client), "reason": ""})
    assert resp.status_code == 422
    assert "why the grade looks wrong" in resp.text


def test_scoring_page_edits_rules_as_new_versions(client: TestClient, login,  # type: ignore[no-untyped-def]
                                                  session: Session) -> None:
    login(Role.ADMIN)
    page = client.get("/scoring")
    assert page.status_code == 200
    assert "Fit rules" in page.text and "Paid consultation after a community course" in page.text
    yaml_text = client.get("/scoring/ruleset.yaml").text
    assert "half_life_days: 14" in yaml_text
    token = csrf(client, "/scoring")
    bad = client.post("/scoring/ruleset", data={"csrf": token, "yaml": "fit: {rules: [{field: headcount, op: gte, value: many, points: 5}]}"})
    assert bad.status_code == 422 and "gte needs a number" in bad.text
    assert session.scalar(select(func.count()).select_from(ScoringRuleset)) == 0
    edited = yaml_text.replace("half_life_days: 14", "half_life_days: 30")
    ok = client.post("/scoring/ruleset", data={"csrf": token, "yaml": edited, "note": "slower decay"},
                     follow_redirects=False)
    assert ok.status_code == 303
    assert scoring_service.current_ruleset(session=session).document.engagement.half_life_days == 30
    assert "slower decay" in client.get("/scoring").text


def test_reps_cannot_open_or_change_scoring(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.REP)
    assert client.get("/scoring").status_code == 403
    assert client.post("/scoring/ruleset", data={"yaml": "{}"}).status_code in (403, 422)


def test_analyst_reads_but_cannot_edit(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.ANALYST)
    page = client.get("/scoring")
    assert page.status_code == 200
    assert 'action="/scoring/ruleset"' not in page.text
    token = csrf(client, "/scoring")
    assert client.post("/scoring/rescore", data={"csrf": token}).status_code == 403


def test_model_report_shows_candidates_lift_and_calibration(
    client: TestClient, login, session: Session, now: datetime  # type: ignore[no-untyped-def]
) -> None:
    login(Role.MANAGER)
    frame, _ = planted_history(3000, seed=4)
    result = learning.train(frame, target="converted", id_column="lead_id", folds=3)
    row = scoring_service.store_model(session=session, result=result, source="history.csv",
                                      target="converted", id_column="lead_id", activate=False,
                                      actor_id=None, now=now)
    session.commit()
    page = client.get(f"/scoring/models/{row.id}")
    assert page.status_code == 200
    for name in ("Per-field frequency", "Regularised logistic regression", "Gradient-boosted trees"):
        assert name in page.text
    assert 'id="lift-chart"' in page.text and 'id="calibration-chart"' in page.text
    assert page.text.count("<tr>") >= 10  # lift rows and calibration bins
    assert client.get("/static/plotly.min.js").status_code == 200


def test_chinese_scoring_page(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    login(Role.ADMIN)
    client.get("/lang/zh")
    page = client.get("/scoring")
    assert page.status_code == 200
    assert "评分" in page.text
