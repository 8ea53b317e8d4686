"""Scoring through the API: events re-score at once, reasons, rules, permissions."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.events.models import OutboxEvent
from leadflow.users.models import Role


def _capture(client: TestClient, headers: dict[str, str], **fields: str) -> int:
    body = {"source": "landing", "external_id": fields.pop("external_id", "x1"), **fields}
    resp = client.post("/api/v1/leads", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["lead_id"])


def test_captured_lead_is_graded_in_the_request(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.MARKETER)
    lead_id = _capture(client, headers, name="周杰", phone="13912345678", industry="教育",
                       title="销售总监", company="星光教育科技有限公司")
    lead = client.get(f"/api/v1/leads/{lead_id}", headers=headers).json()["lead"]
    assert lead["grade"] in ("A+", "A", "B", "C", "D")
    assert lead["score"] is not None


def test_event_moves_the_score_and_explains_it(client: TestClient, api_token,  # type: ignore[no-untyped-def]
                                                session: Session) -> None:
    headers = api_token(Role.MARKETER)
    lead_id = _capture(client, headers, name="王芳", phone="13800001111")
    before = client.get(f"/api/v1/leads/{lead_id}/score", headers=headers).json()
    for kind in ("community_class", "community_class", "paid_consultation"):
        resp = client.post(f"/api/v1/leads/{lead_id}/activities", headers=headers,
                           json={"kind": kind, "value": 9.9 if kind.startswith("paid") else None})
        assert resp.status_code == 201, resp.text
    after = resp.json()
    assert after["grade"] == "A+" and after["is_mql"]
    assert after["engagement"] > before["engagement"]
    assert after["reasons"][0]["source"] == "override"
    texts = " ".join(r["text"] for r in after["reasons"])
    assert "attended 2 community classes" in texts
    assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 1


def test_bad_event_kind_is_a_clear_error(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.MARKETER)
    lead_id = _capture(client, headers, name="李四", phone="13700001111")
    resp = client.post(f"/api/v1/leads/{lead_id}/activities", headers=headers,
                       json={"kind": "telepathy"})
    assert resp.status_code == 400
    assert "unknown activity kind" in resp.text


def test_rep_cannot_score_or_flag_leads_it_cannot_see(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    lead_id = _capture(client, api_token(Role.MARKETER), name="赵六", phone="13600001111")
    rep = api_token(Role.REP)
    assert client.post(f"/api/v1/leads/{lead_id}/activities", headers=rep,
                       json={"kind": "web_visit"}).status_code == 404
    assert client.post(f"/api/v1/leads/{lead_id}/score/flags", headers=rep,
                       json={"reason": "looks hot"}).status_code == 404


def test_only_admins_change_rules(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    analyst = api_token(Role.ANALYST)
    current = client.get("/api/v1/scoring/ruleset", headers=analyst)
    assert current.status_code == 200 and current.json()["version"] == 0
    document = current.json()["document"]
    document["grading"]["mql_grade"] = "B"
    assert client.put("/api/v1/scoring/ruleset", headers=analyst,
                      json={"document": document}).status_code == 403
    admin = api_token(Role.ADMIN)
    saved = client.put("/api/v1/scoring/ruleset", headers=admin,
                       json={"document": document, "note": "wider MQL"})
    assert saved.status_code == 201 and saved.json() == {"version": 1}
    document["fit"]["rules"][0]["op"] = "between"
    bad = client.put("/api/v1/scoring/ruleset", headers=admin, json={"document": document})
    assert bad.status_code == 422 and "between" in bad.text
    assert client.get("/api/v1/scoring/ruleset", headers=analyst).json()["version"] == 1
