"""The queue over HTTP with API tokens: Next, repeat, disposition, skip, list mode, and who
may touch which task."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from leadflow.users import service as users_service
from leadflow.users.models import User

from .conftest import Floor, routed


def bearer(session: Session, user: User, now: datetime) -> dict[str, str]:
    token = users_service.issue_api_token(session=session, user=user, name="t", now=now)
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_next_disposition_skip_and_list_over_the_api(
        client: TestClient, session: Session, now: datetime, floor: Floor) -> None:
    first, rep = routed(session, now, "A")
    _second, rep_again = routed(session, now, "B")
    other, other_rep = routed(session, now, "B")
    assert rep_again.id != rep.id and other_rep.id == rep.id
    session.commit()
    me = bearer(session, rep, now)
    card: dict[str, Any] = client.get("/api/v1/queue/next", headers=me).json()
    assert card["lead_id"] == first.id and card["reason"].startswith("new A lead")
    assert "connected" in card["dispositions"] and card["script"]
    assert client.get("/api/v1/queue/next", headers=me).json()["task_id"] == card["task_id"]
    # Someone else's task: refused, and the rep's claim stands.
    them = bearer(session, rep_again, now)
    refused = client.post(f"/api/v1/tasks/{card['task_id']}/disposition", headers=them,
                          json={"disposition": "connected"})
    assert refused.status_code == 403
    callback = client.post(f"/api/v1/tasks/{card['task_id']}/disposition", headers=me,
                           json={"disposition": "call_back"})
    assert callback.status_code == 422  # a callback needs its time
    done = client.post(f"/api/v1/tasks/{card['task_id']}/disposition", headers=me,
                       json={"disposition": "connected", "note": "demo on Friday"})
    assert done.status_code == 200 and done.json()["next_task_id"] is not None
    nxt = client.get("/api/v1/queue/next", headers=me).json()
    assert nxt["lead_id"] == other.id
    assert client.post(f"/api/v1/tasks/{nxt['task_id']}/skip", headers=me,
                       json={"reason": ""}).status_code == 422
    assert client.post(f"/api/v1/tasks/{nxt['task_id']}/skip", headers=me,
                       json={"reason": "in a meeting until 3pm"}).status_code == 204
    assert client.get("/api/v1/queue/next", headers=me).status_code == 204
    today = client.get("/api/v1/queue/today", headers=me).json()
    assert {item["lead_id"] for halves in today.values() for items in halves.values()
            for item in items} >= {other.id}
    assert client.get("/api/v1/queue/next").status_code == 401
