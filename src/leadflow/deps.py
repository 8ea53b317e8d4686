"""Request dependencies: the session, the current user, permission checks."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterator
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from leadflow.db import session_scope
from leadflow.errors import NotAuthenticated, PermissionDenied
from leadflow.users import service as users_service
from leadflow.users.models import User
from leadflow.users.rules import Permission, has_permission


def get_session() -> Iterator[Session]:
    """One transaction per request, committed before the response is sent."""
    with session_scope() as session:
        yield session


# scope="function": the commit runs as soon as the handler returns, before the response,
# so a client that got 2xx can rely on the data being stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

P = ParamSpec("P")
R = TypeVar("R")


def commits_in_handler(endpoint: Callable[P, R]) -> Callable[P, R]:
    """Commit the request's session in the handler's own thread, right after it returns.

    For JSON endpoints that take locks other requests wait for (routing a lead locks its
    team's policy). FastAPI validates a plain ``def`` endpoint's response in a thread-pool
    slot *before* the session dependency commits; under load every slot can be taken by
    requests waiting for that lock, and the holder then waits for a slot: a deadlock until
    the connection pool times out. Committing here releases the locks first.
    """

    @functools.wraps(endpoint)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        result = endpoint(*args, **kwargs)
        session = kwargs["session"]
        assert isinstance(session, Session)
        session.commit()
        return result

    return wrapper


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def _user_from_request(request: Request, session: Session) -> User | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return users_service.user_for_token(session=session, token=auth[7:].strip())
    user_id = request.session.get("user_id")
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    return user


def current_user(request: Request, session: SessionDep) -> User:
    """The caller of an API endpoint (bearer token or session cookie), else 401."""
    user = _user_from_request(request, session)
    if user is None:
        raise NotAuthenticated("log in or send 'Authorization: Bearer <token>'")
    return user


def page_user(request: Request, session: SessionDep) -> User:
    """The logged-in user of a page, else a redirect to the login page."""
    user = _user_from_request(request, session)
    if user is None:
        raise LoginRequired(str(request.url.path))
    return user


CurrentUser = Annotated[User, Depends(current_user)]
PageUser = Annotated[User, Depends(page_user)]


def require(permission: Permission) -> Callable[[User], User]:
    """Dependency factory: the current API user, who must hold ``permission``."""

    def check(user: CurrentUser) -> User:
        if not has_permission(user.role, permission):
            raise PermissionDenied(f"your role ({user.role}) may not {permission}")
        return user

    return check


def require_page(permission: Permission) -> Callable[[User], User]:
    """Like :func:`require`, for pages."""

    def check(user: PageUser) -> User:
        if not has_permission(user.role, permission):
            raise PermissionDenied(f"your role ({user.role}) may not {permission}")
        return user

    return check


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Page POSTs must echo the session's CSRF token (form field or HX header)."""
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise PermissionDenied("the form expired; reload the page and try again")


CsrfChecked = Depends(check_csrf)

# After the user in page signatures, so an expired login redirects before the token is checked.
Csrf = Annotated[None, CsrfChecked]
# A database id in a page path: out-of-range numbers are a 422, not a database error.
DbId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def _form(request: Request) -> FormData:
    """The parsed form (parsed once; the CSRF check reads the same one)."""
    return await request.form()


FormDep = Annotated[FormData, Depends(_form)]


def form_text(form: FormData, name: str) -> str:
    """A form field's text, stripped ("" when missing or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
