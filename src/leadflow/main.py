"""The web application: API, pages, health check."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from leadflow import __version__
from leadflow.cadences.experiment_routes import api_router as experiments_api_router
from leadflow.cadences.routes import router as cadences_router
from leadflow.campaigns.routes import router as campaigns_router
from leadflow.config import get_settings
from leadflow.db import get_engine
from leadflow.deps import LoginRequired, PageUser
from leadflow.errors import DomainError, InvalidInput
from leadflow.leads.routes import router as leads_router
from leadflow.messaging.routes import router as messaging_router
from leadflow.messaging.tracking_routes import router as tracking_router
from leadflow.queue.routes import router as queue_router
from leadflow.routing.routes import router as routing_router
from leadflow.scoring.routes import router as scoring_router

STATIC_DIR = Path(__file__).parent / "web" / "static"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def create_app() -> FastAPI:
    """Build the application (one per process)."""
    settings = get_settings()
    # The API docs need a login like every page; Swagger UI is served from /static so
    # they work without internet.
    app = FastAPI(title="leadflow", version=__version__, docs_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie="leadflow_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.https_only_cookies,
    )

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        if _wants_html(request):
            from leadflow.web.render import error_page

            return error_page(request, exc)
        body: dict[str, object] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            from leadflow.web.render import error_page

            error = DomainError(str(exc.detail))
            error.status_code = exc.status_code
            return error_page(request, error)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_html(request):
            from leadflow.web.render import error_page

            return error_page(request, InvalidInput("the request is not valid"))
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_url}", status_code=303)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """200 when the app and its database answer."""
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_user: PageUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_user: PageUser) -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="leadflow API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css", swagger_favicon_url="",
        )

    app.include_router(leads_router)
    app.include_router(campaigns_router)
    app.include_router(scoring_router)
    app.include_router(routing_router)
    app.include_router(cadences_router)
    app.include_router(experiments_api_router)
    app.include_router(queue_router)
    app.include_router(messaging_router)
    app.include_router(tracking_router)
    from leadflow.web.pages import register_pages

    register_pages(app)
    if STATIC_DIR.exists():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
