"""Login and logout pages."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadflow import clock
from leadflow.deps import CsrfChecked, SessionDep, csrf_token
from leadflow.errors import NotAuthenticated, PermissionDenied
from leadflow.users import service as users_service
from leadflow.web.render import N_, local_path, render

router = APIRouter(include_in_schema=False)

DEFAULT_NEXT = "/leads"


def _check_login_csrf(request: Request, sent: str | None) -> None:
    """Guard the login form against login CSRF: the session's token must come back.

    Integrations use API tokens, never this form, so there is no token-less path.
    """
    expected = request.session.get("csrf")
    if not sent or not expected or not secrets.compare_digest(str(expected), sent):
        raise PermissionDenied("the form expired; reload the page and try again")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = DEFAULT_NEXT) -> HTMLResponse:
    """The login form."""
    return render(request, "users/login.html",
                  {"next": local_path(next, DEFAULT_NEXT), "email": ""}, user=None)


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = DEFAULT_NEXT,
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """Check the credentials, start a session and go to ``next`` (a local path only)."""
    _check_login_csrf(request, csrf)
    target = local_path(next, DEFAULT_NEXT)
    try:
        user = users_service.authenticate(session=session, email=email, password=password,
                                          now=clock.now())
    except NotAuthenticated:
        return render(
            request, "users/login.html",
            {"next": target, "email": email, "error": N_("Wrong email or password.")},
            user=None, status_code=401,
        )
    locale = request.session.get("locale")
    # A fresh session (and CSRF token) on login: nothing from before carries privileges.
    request.session.clear()
    request.session["user_id"] = user.id
    if locale:
        request.session["locale"] = locale
    csrf_token(request)
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> RedirectResponse:
    """End the session (the language choice stays)."""
    locale = request.session.get("locale")
    request.session.clear()
    if locale:
        request.session["locale"] = locale
    return RedirectResponse("/login", status_code=303)
