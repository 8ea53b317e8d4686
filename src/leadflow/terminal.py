"""What every CLI command shares: the console, ``--json`` output, progress bars, the actor."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from leadflow.errors import PermissionDenied
from leadflow.users.models import User
from leadflow.users.rules import Permission, has_permission

console = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def emit(data: dict[str, Any], as_json: bool, title: str) -> None:
    """Print a result: one JSON object on stdout, or a two-column table."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        return
    table = Table(title=title, show_header=False)
    for key, value in data.items():
        table.add_row(str(key), str(value))
    Console().print(table)


def fail(message: str) -> None:
    """Stop the command with one clear line and exit code 2."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


def acting_user(
    session: Any, email: str | None, permission: Permission | None = None
) -> User | None:
    """The user named by ``--user``, checked for ``permission``."""
    if email is None:
        if permission is not None:
            fail(f"--user EMAIL is required: this needs the {permission} permission")
        return None
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        fail(f"no user {email}")
    assert user is not None
    if permission is not None and not has_permission(user.role, permission):
        raise PermissionDenied(f"{email} ({user.role}) may not {permission}")
    return user


def progress(*, auto_refresh: bool = True) -> Progress:
    """A Rich progress bar with a rate column (``rate=`` field).

    ``auto_refresh=False`` redraws only on updates, without Rich's refresh thread (for jobs
    that fork helper processes, which is only safe from a single-threaded process)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
        transient=False, auto_refresh=auto_refresh,
    )
