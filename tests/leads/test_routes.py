"""Lead API and the form webhook through the real app."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadflow.config import get_settings
from leadflow.leads import forms
from leadflow.leads.models import Lead, Touchpoint
from leadflow.users import security
from leadflow.users.models import Role


def test_api_needs_a_token(client: TestClient) -> None:
    assert client.post("/api/v1/leads", json={"name": "x"}).status_code == 401
    bad = {"Authorization": "Bearer lf_not-a-token"}
    assert client.get("/api/v1/leads", headers=bad).status_code == 401


def test_capture_one_lead_is_idempotent(client: TestClient, api_token, session: Session) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.MARKETER)
    body = {"source": "landing", "external_id": "sub-1", "name": "陈静",
            "phone": "139 1234 5678", "company": "上海云帆网络技术有限公司"}
    first = client.post("/api/v1/leads", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["outcome"] == "created"
    again = client.post("/api/v1/leads", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["outcome"] == "skipped"
    assert again.json()["lead_id"] == first.json()["lead_id"]
    assert session.scalar(select(func.count()).select_from(Touchpoint)) == 1


def test_capture_without_external_id_still_recognises_a_retry(client: TestClient,
                                                              api_token) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.MARKETER)
    body = {"name": "Li Lei", "email": "lilei@example.com"}
    assert client.post("/api/v1/leads", json=body, headers=headers).json()["outcome"] == "created"
    assert client.post("/api/v1/leads", json=body, headers=headers).json()["outcome"] == "skipped"


def test_rejected_lead_says_which_field_and_why(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/leads", json={"name": "A", "phone": "12345"},
                       headers=api_token(Role.MARKETER))
    assert resp.status_code == 422
    assert resp.json()["field"] == "phone" and "phone" in resp.json()["reason"]


def test_batch_reports_each_record_in_order(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    records = [
        {"external_id": "1", "name": "张伟", "phone": "13800138000"},
        {"external_id": "2", "name": "张伟", "phone": "+86 13800138000", "email": "zw@qq.com"},
        {"external_id": "3", "name": "bad", "email": "nope@"},
    ]
    resp = client.post("/api/v1/leads/batch", json={"source": "expo", "records": records},
                       headers=api_token(Role.MARKETER))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert (data["created"], data["merged"], data["rejected"]) == (1, 1, 1)
    assert [r["outcome"] for r in data["results"]] == ["created", "merged", "rejected"]
    assert data["results"][1]["match"]["keys"] == ["phone"]


def test_reps_see_only_their_own_leads(client: TestClient, api_token, session: Session) -> None:  # type: ignore[no-untyped-def]
    admin = api_token(Role.ADMIN)
    client.post("/api/v1/leads", json={"name": "Owned", "phone": "13700000001"}, headers=admin)
    client.post("/api/v1/leads", json={"name": "Other", "phone": "13700000002"}, headers=admin)
    rep_headers = api_token(Role.REP, email="rep@example.com")
    from leadflow.users.models import User

    rep = session.scalar(select(User).where(User.email == "rep@example.com"))
    owned = session.scalar(select(Lead).where(Lead.name == "Owned"))
    assert rep is not None and owned is not None
    owned.owner_id = rep.id
    session.commit()
    listed = client.get("/api/v1/leads", headers=rep_headers).json()
    assert [item["name"] for item in listed["items"]] == ["Owned"]
    other = session.scalar(select(Lead).where(Lead.name == "Other"))
    assert other is not None
    assert client.get(f"/api/v1/leads/{other.id}", headers=rep_headers).status_code == 404
    assert client.get(f"/api/v1/leads/{owned.id}", headers=rep_headers).status_code == 200
    assert len(client.get("/api/v1/leads", headers=admin).json()["items"]) == 2


def test_analyst_cannot_capture_or_merge(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.ANALYST)
    assert client.post("/api/v1/leads", json={"name": "x", "phone": "13700000001"},
                       headers=headers).status_code == 403
    assert client.post("/api/v1/leads/merge", json={"lead_ids": [1, 2]},
                       headers=headers).status_code == 403


def test_manual_merge_and_undo(client: TestClient, api_token, session: Session) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(Role.MANAGER)
    a = client.post("/api/v1/leads", json={"name": "周杰", "phone": "13500000001",
                                           "company": "星辰"}, headers=headers).json()
    b = client.post("/api/v1/leads", json={"name": "周婕", "email": "zj@xc.cn",
                                           "city": "杭州"}, headers=headers).json()
    merge = client.post("/api/v1/leads/merge", json={"lead_ids": [b["lead_id"], a["lead_id"]]},
                        headers=headers)
    assert merge.status_code == 200, merge.text
    assert merge.json()["survivor_id"] == a["lead_id"]
    survivor = client.get(f"/api/v1/leads/{a['lead_id']}", headers=headers).json()
    assert survivor["lead"]["email"] == "zj@xc.cn"
    assert len(survivor["touchpoints"]) == 2
    assert any(e["kind"] == "merged" for e in survivor["timeline"])
    gone = client.get(f"/api/v1/leads/{b['lead_id']}", headers=headers).json()
    assert gone["lead"]["status"] == "merged"
    assert gone["lead"]["merged_into_id"] == a["lead_id"]
    undo = client.post(f"/api/v1/merges/{merge.json()['id']}/undo", headers=headers)
    assert undo.status_code == 204
    survivor = client.get(f"/api/v1/leads/{a['lead_id']}", headers=headers).json()
    assert survivor["lead"]["email"] is None and len(survivor["touchpoints"]) == 1
    back = client.get(f"/api/v1/leads/{b['lead_id']}", headers=headers).json()
    assert back["lead"]["status"] == "new" and len(back["touchpoints"]) == 1
    again = client.post(f"/api/v1/merges/{merge.json()['id']}/undo", headers=headers)
    assert again.status_code == 409


def _form(session: Session) -> tuple[str, str]:
    form = forms.create_form(session=session, name="Landing", source="web-form",
                             campaign_id=None, now=__import__("leadflow").clock.now())
    session.commit()
    return form.form_key, forms.secret_of(form, get_settings().resolved_secret_key())


def test_form_webhook_needs_a_valid_signature(client: TestClient, session: Session) -> None:
    key, secret = _form(session)
    body = json.dumps({"name": "黄磊", "mobile": "13812345678"}).encode()
    url = f"/api/v1/forms/{key}"
    assert client.post(url, content=body).status_code == 401
    wrong = security.sign_body("not-the-secret", body)
    assert client.post(url, content=body, headers={forms.SIGNATURE_HEADER: wrong}).status_code == 401
    assert client.post("/api/v1/forms/nope", content=body,
                       headers={forms.SIGNATURE_HEADER: security.sign_body(secret, body)}
                       ).status_code == 404
    assert session.scalar(select(func.count()).select_from(Lead)) == 0


def test_form_webhook_retries_create_nothing_twice(client: TestClient, session: Session) -> None:
    key, secret = _form(session)
    url = f"/api/v1/forms/{key}"
    body = json.dumps({"姓名": "黄磊", "手机号": "138 1234 5678", "公司": "云帆网络",
                       "how_heard": "朋友推荐"}, ensure_ascii=False).encode()
    headers = {forms.SIGNATURE_HEADER: security.sign_body(secret, body),
               "content-type": "application/json"}
    first = client.post(url, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "created"
    for _ in range(3):
        assert client.post(url, content=body, headers=headers).json()["outcome"] == "skipped"
    lead = session.scalars(select(Lead)).one()
    assert lead.name == "黄磊" and lead.phone == "+8613812345678"
    assert lead.custom_fields == {"how_heard": "朋友推荐"}
    assert session.scalar(select(func.count()).select_from(Touchpoint)) == 1


def test_urlencoded_form_posts_work(client: TestClient, session: Session) -> None:
    key, secret = _form(session)
    body = b"name=Amy+Chen&email=amy%40acme.com&submission_id=42"
    resp = client.post(f"/api/v1/forms/{key}", content=body, headers={
        forms.SIGNATURE_HEADER: security.sign_body(secret, body),
        "content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["external_id"] == "42"
    lead = session.scalars(select(Lead)).one()
    assert lead.custom_fields == {}  # the submission id is the identity, not a custom field


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_a_team_lead_cannot_undo_a_merge_outside_the_team(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    manager = api_token(Role.MANAGER)
    a = client.post("/api/v1/leads", json={"name": "周杰", "phone": "13500000001"},
                    headers=manager).json()
    b = client.post("/api/v1/leads", json={"name": "周杰伦", "email": "z@x.cn"},
                    headers=manager).json()
    merge = client.post("/api/v1/leads/merge", json={"lead_ids": [a["lead_id"], b["lead_id"]]},
                        headers=manager).json()
    lead = api_token(Role.TEAM_LEAD, team="东区")
    assert client.post(f"/api/v1/merges/{merge['id']}/undo", headers=lead).status_code == 404
    assert client.post(f"/api/v1/merges/{merge['id']}/undo", headers=manager).status_code == 204
