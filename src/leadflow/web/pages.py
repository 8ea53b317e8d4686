"""The HTML side of the app: every domain's page router, the home page and language switch."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse

from leadflow.cadences import pages as cadences_pages
from leadflow.cadences.experiment_routes import page_router as experiments_page_router
from leadflow.campaigns import pages as campaigns_pages
from leadflow.leads import pages as leads_pages
from leadflow.messaging import pages as messaging_pages
from leadflow.queue import pages as queue_pages
from leadflow.routing import pages as routing_pages
from leadflow.scoring import pages as scoring_pages
from leadflow.users import pages as users_pages
from leadflow.web.render import LOCALES, local_path, referer_path

router = APIRouter(include_in_schema=False)
# Found without importing plotly (its import is slow and only the JS file is needed).
_PLOTLY = find_spec("plotly")
PLOTLY_JS = (Path(_PLOTLY.origin if _PLOTLY and _PLOTLY.origin else ".").parent
             / "package_data" / "plotly.min.js")


@router.get("/")
def home() -> RedirectResponse:
    """The lead list is the home page."""
    return RedirectResponse("/leads", status_code=303)


@router.get("/lang/{code}")
def switch_language(code: str, request: Request, next: str = "") -> RedirectResponse:
    """Remember the chosen language for this session and go back to the page.

    The page is the Referer (it follows URLs pushed by HTMX), else ``next``.
    """
    if code in LOCALES:
        request.session["locale"] = code
    return RedirectResponse(referer_path(request, local_path(next, "/leads")),
                            status_code=303)


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly's browser bundle, served from the Python package (no CDN, works offline)."""
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


def register_pages(app: FastAPI) -> None:
    """Mount the page routers (HTML, not part of the OpenAPI schema)."""
    app.include_router(users_pages.router)
    app.include_router(leads_pages.router)
    app.include_router(campaigns_pages.router)
    app.include_router(scoring_pages.router)
    app.include_router(routing_pages.router)
    app.include_router(queue_pages.router)
    app.include_router(cadences_pages.router)
    app.include_router(experiments_page_router)
    app.include_router(messaging_pages.router)
    app.include_router(router)
