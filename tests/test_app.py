"""App-wide behaviour: errors for browsers are pages, for the API JSON."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_unknown_page_is_an_html_page_for_browsers(client: TestClient) -> None:
    resp = client.get("/no-such-page", headers={"accept": "text/html"})
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")


def test_unknown_api_route_is_json(client: TestClient) -> None:
    resp = client.get("/api/v1/no-such-thing", headers={"accept": "text/html"})
    assert resp.status_code == 404
    assert resp.json()["detail"]


def test_api_validation_errors_are_json(client: TestClient, api_token) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/leads", json={"name": 5, "unknown": 1},
                       headers=api_token())
    assert resp.status_code == 422
    assert isinstance(resp.json()["detail"], list)


def test_api_docs_need_a_login_and_work_offline(client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/docs", follow_redirects=False).status_code == 303
    assert client.get("/openapi.json", follow_redirects=False).status_code == 303
    login()
    assert "/api/v1/leads" in client.get("/openapi.json").json()["paths"]
    page = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in page and "cdn" not in page
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
